/* Output: the reproducing command, the comparison table and one-line JSON. */
#include "bench.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "base/error.h"

#define LABEL_WIDTH 40

/* Appends to dst[0..cap) at *len, keeping it NUL-terminated; excess is dropped. */
static void append(char *dst, size_t cap, size_t *len, const char *s, size_t n)
{
    if (*len >= cap) return;
    size_t room = cap - 1 - *len;
    if (n > room) n = room;
    memcpy(dst + *len, s, n);
    *len += n;
    dst[*len] = '\0';
}

void rp_bench_command(int argc, char **argv, char *dst, size_t cap)
{
    size_t len = 0;
    if (cap == 0) return;
    dst[0] = '\0';
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (i > 0) append(dst, cap, &len, " ", 1);
        if (*a != '\0' && strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                    "0123456789-_./=:,+@%") == strlen(a)) {
            append(dst, cap, &len, a, strlen(a));
            continue;
        }
        append(dst, cap, &len, "'", 1);
        for (; *a != '\0'; a++) {
            if (*a == '\'')
                append(dst, cap, &len, "'\\''", 4);
            else
                append(dst, cap, &len, a, 1);
        }
        append(dst, cap, &len, "'", 1);
    }
}

/* `v` with `prec` decimals, or "-" when it was not measured. */
static const char *num(char *buf, size_t cap, double v, int prec)
{
    if (isnan(v) || isinf(v))
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "%.*f", prec, v);
    return buf;
}

void rp_bench_table_header(FILE *f)
{
    fprintf(f, "%-*s %22s %26s %6s %7s %7s\n", LABEL_WIDTH, "case", "GB/s median (min-max)",
            "CPU-s/GB (send + recv)", "1 CPU", "ratio", "CPU rat");
}

void rp_bench_table_row(FILE *f, const char *label, const rp_bench_summary *s,
                        const rp_bench_summary *base)
{
    char a[16], b[16], c[16], d[16], e[16], g[16], h[16];
    char tput[64], cpu[64], same[16];
    snprintf(tput, sizeof(tput), "%s (%s-%s)", num(a, sizeof(a), s->gbps.median, 3),
             num(b, sizeof(b), s->gbps.min, 2), num(c, sizeof(c), s->gbps.max, 2));
    snprintf(cpu, sizeof(cpu), "%s (%s + %s)", num(d, sizeof(d), s->cpu_per_gb.median, 3),
             num(e, sizeof(e), s->send_cpu_per_gb.median, 3),
             num(g, sizeof(g), s->recv_cpu_per_gb.median, 3));
    if (isnan(s->same_cpu.median))
        snprintf(same, sizeof(same), "-");
    else
        snprintf(same, sizeof(same), "%.0f%%", 100 * s->same_cpu.median);
    fprintf(f, "%-*s %22s %26s %6s", LABEL_WIDTH, label, tput, cpu, same);
    if (base == NULL) {
        fprintf(f, " %7s %7s\n", "base", "base");
        return;
    }
    fprintf(f, " %7s %7s\n", num(h, sizeof(h), s->gbps.median / base->gbps.median, 3),
            num(a, sizeof(a), s->cpu_per_gb.median / base->cpu_per_gb.median, 3));
}

/* ---- JSON -------------------------------------------------------------------------------- */

static void jraw(rp_bench_json *j, const char *s, size_t n)
{
    if (j->overflow || n > sizeof(j->buf) - 1 - j->len) {
        j->overflow = 1;
        return;
    }
    memcpy(j->buf + j->len, s, n);
    j->len += n;
    j->buf[j->len] = '\0';
}

static void jprintf(rp_bench_json *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void jprintf(rp_bench_json *j, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        j->overflow = 1;
        return;
    }
    jraw(j, tmp, (size_t)n);
}

static void jstring(rp_bench_json *j, const char *s)
{
    jraw(j, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = { '\\', (char)*p };
            jraw(j, esc, 2);
        } else if (*p < 0x20) {
            jprintf(j, "\\u%04x", *p);
        } else {
            jraw(j, (const char *)p, 1);
        }
    }
    jraw(j, "\"", 1);
}

static void jkey(rp_bench_json *j, const char *key)
{
    if (!j->first[j->depth]) jraw(j, ",", 1);
    j->first[j->depth] = 0;
    jstring(j, key);
    jraw(j, ":", 1);
}

void rp_bench_json_init(rp_bench_json *j)
{
    j->len = 0;
    j->depth = 0;
    j->overflow = 0;
    j->first[0] = 1;
    j->buf[0] = '\0';
    jraw(j, "{", 1);
}

void rp_bench_json_num(rp_bench_json *j, const char *key, double v)
{
    jkey(j, key);
    if (isnan(v) || isinf(v))
        jraw(j, "null", 4);
    else
        jprintf(j, "%.6g", v);
}

void rp_bench_json_int(rp_bench_json *j, const char *key, long long v)
{
    jkey(j, key);
    jprintf(j, "%lld", v);
}

void rp_bench_json_str(rp_bench_json *j, const char *key, const char *v)
{
    jkey(j, key);
    jstring(j, v);
}

void rp_bench_json_bool(rp_bench_json *j, const char *key, int v)
{
    jkey(j, key);
    jraw(j, v ? "true" : "false", v ? 4 : 5);
}

void rp_bench_json_begin(rp_bench_json *j, const char *key)
{
    if (j->depth + 1 >= RP_BENCH_DEPTH_MAX) {
        j->overflow = 1;
        return;
    }
    jkey(j, key);
    jraw(j, "{", 1);
    j->first[++j->depth] = 1;
}

void rp_bench_json_end(rp_bench_json *j)
{
    if (j->depth == 0) {
        j->overflow = 1;
        return;
    }
    j->depth--;
    jraw(j, "}", 1);
}

void rp_bench_json_stat(rp_bench_json *j, const char *key, const rp_bench_stat *s)
{
    rp_bench_json_begin(j, key);
    rp_bench_json_num(j, "median", s->median);
    rp_bench_json_num(j, "min", s->min);
    rp_bench_json_num(j, "max", s->max);
    rp_bench_json_int(j, "n", (long long)s->n);
    rp_bench_json_end(j);
}

void rp_bench_json_summary(rp_bench_json *j, const char *key, const rp_bench_summary *s)
{
    rp_bench_json_begin(j, key);
    rp_bench_json_stat(j, "gbps", &s->gbps);
    rp_bench_json_stat(j, "cpu_s_per_gb", &s->cpu_per_gb);
    rp_bench_json_stat(j, "send_cpu_s_per_gb", &s->send_cpu_per_gb);
    rp_bench_json_stat(j, "recv_cpu_s_per_gb", &s->recv_cpu_per_gb);
    rp_bench_json_stat(j, "same_cpu_share", &s->same_cpu);
    rp_bench_json_end(j);
}

int rp_bench_json_print(rp_bench_json *j, FILE *f)
{
    while (j->depth > 0) rp_bench_json_end(j);
    jraw(j, "}", 1);
    if (j->overflow) return RINGP2P_ENOBUF;
    fprintf(f, "%s\n", j->buf);
    fflush(f);
    return 0;
}
