/* ringp2p addr: multiaddr text <-> binary. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int print_addr(const ringp2p_multiaddr *ma, bool json)
{
    size_t len;
    const uint8_t *bytes = ringp2p_multiaddr_bytes(ma, &len);
    size_t tmax = ringp2p_multiaddr_text_max(ma);
    char *hex = malloc(2 * len + 1), *text = malloc(tmax);
    int rc = CLI_OK;
    if (hex == NULL || text == NULL) {
        rc = cli_fail("addr", "printing", RINGP2P_ENOMEM, NULL);
        goto out;
    }
    hex_encode(bytes, len, hex);
    ssize_t r = ringp2p_multiaddr_to_string(ma, text, tmax);
    if (r < 0) {
        rc = cli_fail("addr", "printing", (int)r, NULL);
        goto out;
    }
    ringp2p_peer_id pid;
    char pidtext[RINGP2P_PEER_ID_STR_MAX];
    bool has_pid = ringp2p_multiaddr_peer_id(ma, &pid) == 0 &&
                   ringp2p_peer_id_to_string(&pid, pidtext, sizeof(pidtext)) > 0;

    if (json) {
        printf("{\"hex\":\"%s\",\"text\":", hex);
        json_str(stdout, text);
        if (has_pid) {
            printf(",\"peerId\":");
            json_str(stdout, pidtext);
        }
        printf(",\"components\":[");
    } else {
        printf("text  %s\nhex   %s\n", text, hex);
        if (has_pid) printf("peer  %s\n", pidtext);
    }
    ringp2p_multiaddr_iter it;
    ringp2p_multiaddr_component c;
    bool first = true;
    ringp2p_multiaddr_iter_init(&it, ma);
    while (ringp2p_multiaddr_iter_next(&it, &c) == 1) {
        char *value = NULL;
        if (c.value != NULL) {
            size_t vmax = tmax;
            value = malloc(vmax);
            if (value == NULL || ringp2p_multiaddr_component_value_string(&c, value, vmax) < 0) {
                free(value);
                value = NULL;
            }
        }
        if (json) {
            printf("%s{\"name\":", first ? "" : ",");
            json_str(stdout, c.name);
            printf(",\"code\":%u", c.code);
            if (value != NULL) {
                printf(",\"value\":");
                json_str(stdout, value);
            }
            printf("}");
        } else {
            printf("  %-14s %s\n", c.name, value != NULL ? value : "");
        }
        first = false;
        free(value);
    }
    if (json) printf("]}\n");
    if (fflush(stdout) != 0) rc = CLI_FAIL;
out:
    free(hex);
    free(text);
    return rc;
}

int cmd_addr(const cli_cmd *cmd, cli_flag *flags, size_t nflags, char **args, size_t nargs)
{
    const char *hex = cli_flag_get(flags, nflags, "hex")->value;
    bool json = cli_flag_get(flags, nflags, "json")->set;
    ringp2p_multiaddr *ma = NULL;
    ringp2p_errinfo ei = { 0 };
    int r;

    if ((hex != NULL) == (nargs == 1)) {
        fprintf(stderr,
                "ringp2p addr: give either an address TEXT or --hex HEX\nusage: ringp2p %s\n",
                cmd->synopsis);
        return CLI_USAGE;
    }
    if (hex != NULL) {
        size_t cap = strlen(hex) / 2 + 1;
        uint8_t *buf = malloc(cap);
        if (buf == NULL) return cli_fail("addr", "decoding", RINGP2P_ENOMEM, NULL);
        ssize_t n = hex_decode(hex, buf, cap);
        if (n < 0) {
            free(buf);
            fprintf(stderr, "ringp2p addr: --hex '%s' is not an even-length hex string\n", hex);
            return CLI_FAIL;
        }
        r = ringp2p_multiaddr_from_bytes(buf, (size_t)n, &ma, &ei);
        free(buf);
        if (r < 0) return cli_fail("addr", "invalid binary multiaddr", r, &ei);
    } else {
        r = ringp2p_multiaddr_parse(args[0], &ma, &ei);
        if (r < 0) return cli_fail("addr", "invalid multiaddr", r, &ei);
    }
    int rc = print_addr(ma, json);
    ringp2p_multiaddr_free(ma);
    return rc;
}
