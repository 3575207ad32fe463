/* Clocks, statistics, interleaved rounds and the machine description. */
#include "bench.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "base/error.h"

double rp_bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double tv_seconds(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

double rp_bench_self_cpu(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return NAN;
    return tv_seconds(ru.ru_utime) + tv_seconds(ru.ru_stime);
}

double rp_bench_clock_cpu(clockid_t clock)
{
    struct timespec ts;
    if (clock_gettime(clock, &ts) != 0) return NAN;
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int rp_bench_task_cpu(pid_t tid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)tid);
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Field 2 (comm) may hold spaces and parentheses: fields are counted from its last ')'. */
    const char *p = strrchr(buf, ')');
    for (int field = 2; field < 39 && p != NULL; field++) p = strchr(p + 1, ' ');
    int cpu;
    if (p == NULL || sscanf(p + 1, "%d", &cpu) != 1) return -1;
    return cpu;
}

void rp_bench_colo_sample(rp_bench_colo *c, pid_t a, pid_t b)
{
    int ca = rp_bench_task_cpu(a), cb = rp_bench_task_cpu(b);
    if (ca < 0 || cb < 0) return;
    c->samples++;
    c->same += ca == cb;
}

double rp_bench_colo_share(const rp_bench_colo *c)
{
    return c->samples != 0 ? (double)c->same / c->samples : NAN;
}

rp_bench_sample rp_bench_sample_none(void)
{
    rp_bench_sample s = { NAN, NAN, NAN, NAN, NAN, NAN };
    return s;
}

double rp_bench_gbps(const rp_bench_sample *s)
{
    if (!(s->bytes > 0) || !(s->seconds > 0)) return NAN;
    return s->bytes / s->seconds / 1e9;
}

double rp_bench_cpu_per_gb(double cpu_seconds, double bytes)
{
    if (!(bytes > 0) || !(cpu_seconds >= 0)) return NAN;
    return cpu_seconds / (bytes / 1e9);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

rp_bench_stat rp_bench_stat_of(const double *v, size_t n)
{
    rp_bench_stat st = { NAN, NAN, NAN, 0 };
    double s[RP_BENCH_ROUNDS_MAX];
    if (n > RP_BENCH_ROUNDS_MAX) n = RP_BENCH_ROUNDS_MAX;
    for (size_t i = 0; i < n; i++)
        if (!isnan(v[i])) s[st.n++] = v[i];
    if (st.n == 0) return st;
    qsort(s, st.n, sizeof(double), cmp_double);
    st.min = s[0];
    st.max = s[st.n - 1];
    st.median = st.n % 2 ? s[st.n / 2] : (s[st.n / 2 - 1] + s[st.n / 2]) / 2;
    return st;
}

int rp_bench_interleave(rp_bench_case *cases, size_t ncases, size_t rounds, FILE *log,
                        ringp2p_errinfo *ei)
{
    for (size_t r = 0; r < rounds; r++) {
        for (size_t c = 0; c < ncases; c++) {
            rp_bench_case *k = &cases[c];
            if (k->n >= RP_BENCH_ROUNDS_MAX)
                return rp_err(ei, RINGP2P_ELIMIT, "%s: more than %d rounds", k->name,
                              RP_BENCH_ROUNDS_MAX);
            rp_bench_sample s = rp_bench_sample_none();
            ringp2p_errinfo e = { 0 };
            int rc = k->round(k->ctx, &s, &e);
            if (rc < 0)
                return rp_err(ei, rc, "%s, round %zu: %s", k->name, r + 1,
                              e.code != 0 ? e.msg : ringp2p_strerror(rc));
            k->samples[k->n++] = s;
            if (log != NULL) {
                fprintf(log, "  round %zu %-10s %7.3f GB/s  %7.3f CPU-s/GB", r + 1, k->name,
                        rp_bench_gbps(&s), rp_bench_cpu_per_gb(s.cpu, s.bytes));
                if (!isnan(s.cpu_send) && !isnan(s.cpu_recv))
                    fprintf(log, " (send %.3f + recv %.3f)",
                            rp_bench_cpu_per_gb(s.cpu_send, s.bytes),
                            rp_bench_cpu_per_gb(s.cpu_recv, s.bytes));
                if (!isnan(s.same_cpu)) fprintf(log, "  ends on one CPU %.0f%%", 100 * s.same_cpu);
                fprintf(log, "  %.3g bytes in %.2f s\n", s.bytes, s.seconds);
                fflush(log);
            }
        }
    }
    return 0;
}

rp_bench_summary rp_bench_summarize(const rp_bench_case *c)
{
    double g[RP_BENCH_ROUNDS_MAX], t[RP_BENCH_ROUNDS_MAX], snd[RP_BENCH_ROUNDS_MAX],
        rcv[RP_BENCH_ROUNDS_MAX], same[RP_BENCH_ROUNDS_MAX];
    size_t n = c->n < RP_BENCH_ROUNDS_MAX ? c->n : RP_BENCH_ROUNDS_MAX;
    for (size_t i = 0; i < n; i++) {
        const rp_bench_sample *s = &c->samples[i];
        g[i] = rp_bench_gbps(s);
        t[i] = rp_bench_cpu_per_gb(s->cpu, s->bytes);
        snd[i] = rp_bench_cpu_per_gb(s->cpu_send, s->bytes);
        rcv[i] = rp_bench_cpu_per_gb(s->cpu_recv, s->bytes);
        same[i] = s->same_cpu;
    }
    rp_bench_summary sum = { rp_bench_stat_of(g, n), rp_bench_stat_of(t, n),
                             rp_bench_stat_of(snd, n), rp_bench_stat_of(rcv, n),
                             rp_bench_stat_of(same, n) };
    return sum;
}

double rp_bench_paired_ratio(const rp_bench_case *a, const rp_bench_case *b, int cpu)
{
    double r[RP_BENCH_ROUNDS_MAX];
    size_t n = a->n < b->n ? a->n : b->n;
    for (size_t i = 0; i < n; i++) {
        const rp_bench_sample *x = &a->samples[i], *y = &b->samples[i];
        r[i] = cpu ? rp_bench_cpu_per_gb(x->cpu, x->bytes) / rp_bench_cpu_per_gb(y->cpu, y->bytes)
                   : rp_bench_gbps(x) / rp_bench_gbps(y);
    }
    return rp_bench_stat_of(r, n).median;
}

int rp_bench_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return RINGP2P_EIO;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    int port = RINGP2P_EIO;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

void rp_bench_machine_get(rp_bench_machine *m)
{
    m->cpus = sysconf(_SC_NPROCESSORS_ONLN);
    struct utsname u;
    snprintf(m->kernel, sizeof(m->kernel), "%s", uname(&u) == 0 ? u.release : "unknown");
    snprintf(m->cpu_model, sizeof(m->cpu_model), "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f == NULL) return;
    char line[512];
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "model name", 10) != 0) continue;
        const char *v = strchr(line, ':');
        if (v == NULL) continue;
        v += strspn(v + 1, " \t") + 1;
        snprintf(m->cpu_model, sizeof(m->cpu_model), "%.*s", (int)strcspn(v, "\n"), v);
        break;
    }
    fclose(f);
}
