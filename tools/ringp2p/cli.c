#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

cli_flag *cli_flag_get(cli_flag *flags, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(flags[i].name, name) == 0) return &flags[i];
    return NULL;
}

void cli_print_help(const cli_cmd *cmd, FILE *out)
{
    fprintf(out, "usage: ringp2p %s\n\n%s\n", cmd->synopsis, cmd->summary);
    if (cmd->nflags == 0) return;
    fprintf(out, "\nflags:\n");
    for (size_t i = 0; i < cmd->nflags; i++) {
        char left[64];
        snprintf(left, sizeof(left), "--%s%s", cmd->flags[i].name,
                 cmd->flags[i].takes_value ? " VALUE" : "");
        fprintf(out, "  %-22s %s\n", left, cmd->flags[i].help);
    }
    fprintf(out, "  %-22s %s\n", "--help", "show this help");
}

int cli_parse(const cli_cmd *cmd, int argc, char **argv, char **args, size_t *nargs)
{
    bool flags_done = false;
    *nargs = 0;
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        if (flags_done || a[0] != '-' || strcmp(a, "-") == 0) {
            if (*nargs >= cmd->max_args) {
                fprintf(stderr, "ringp2p %s: unexpected argument '%s' (see 'ringp2p %s --help')\n",
                        cmd->name, a, cmd->name);
                return CLI_USAGE;
            }
            args[(*nargs)++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            flags_done = true;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli_print_help(cmd, stdout);
            return -1;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "ringp2p %s: unknown flag '%s' (flags are spelled --name)\n", cmd->name,
                    a);
            return CLI_USAGE;
        }
        char *name = a + 2;
        char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        cli_flag *f = NULL;
        for (size_t k = 0; k < cmd->nflags; k++)
            if (strlen(cmd->flags[k].name) == nlen && strncmp(cmd->flags[k].name, name, nlen) == 0)
                f = &cmd->flags[k];
        if (f == NULL) {
            fprintf(stderr, "ringp2p %s: unknown flag '--%.*s' (see 'ringp2p %s --help')\n",
                    cmd->name, (int)nlen, name, cmd->name);
            return CLI_USAGE;
        }
        if (!f->takes_value) {
            if (eq) {
                fprintf(stderr, "ringp2p %s: flag '--%s' takes no value\n", cmd->name, f->name);
                return CLI_USAGE;
            }
            f->set = true;
            continue;
        }
        if (eq) {
            f->value = eq + 1;
        } else if (i + 1 < argc) {
            f->value = argv[++i];
        } else {
            fprintf(stderr, "ringp2p %s: flag '--%s' needs a value\n", cmd->name, f->name);
            return CLI_USAGE;
        }
        f->set = true;
    }
    if (*nargs < cmd->min_args) {
        fprintf(stderr, "ringp2p %s: missing argument\nusage: ringp2p %s\n", cmd->name,
                cmd->synopsis);
        return CLI_USAGE;
    }
    return 0;
}

int cli_fail(const char *cmd, const char *what, int code, const ringp2p_errinfo *ei)
{
    const char *reason =
        (ei != NULL && ei->code == code && ei->msg[0] != '\0') ? ei->msg : ringp2p_strerror(code);
    fprintf(stderr, "ringp2p %s: %s: %s\n", cmd, what, reason);
    return CLI_FAIL;
}

int cli_long(const char *cmd, const char *flag, const char *value, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = value != NULL ? strtol(value, &end, 10) : 0;
    if (value == NULL || end == value || *end != '\0' || errno != 0 || v < lo || v > hi) {
        fprintf(stderr, "ringp2p %s: %s wants %ld..%ld\n", cmd, flag, lo, hi);
        return CLI_USAGE;
    }
    *out = v;
    return 0;
}

void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        default:
            if (*p < 0x20)
                fprintf(out, "\\u%04x", *p);
            else
                fputc(*p, out);
        }
    }
    fputc('"', out);
}

void hex_encode(const uint8_t *src, size_t len, char *dst)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        dst[2 * i] = digits[src[i] >> 4];
        dst[2 * i + 1] = digits[src[i] & 15];
    }
    dst[2 * len] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

ssize_t hex_decode(const char *src, uint8_t *dst, size_t cap)
{
    size_t len = strlen(src);
    if (len % 2 != 0 || len / 2 > cap) return -1;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hexval(src[2 * i]), lo = hexval(src[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        dst[i] = (uint8_t)(hi << 4 | lo);
    }
    return (ssize_t)(len / 2);
}
