/*
 * iperf3 as the baseline: one server/client pair per round on a fresh
 * loopback port, the client's JSON read for what the server received, and the
 * CPU time of both processes from wait4().
 *
 * iperf3 3.x is one thread per process, so each process's rusage is one end
 * of the transfer, whole (startup and the control connection included, a few
 * milliseconds against seconds of transfer).
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/error.h"

/* Server startup: how long to wait for its listening socket, and how many ports to try. */
#define IPERF3_LISTEN_TIMEOUT 5.0
#define IPERF3_PORT_TRIES     3
/* The client's JSON grows with -P and -t (one entry per stream per second). */
#define IPERF3_JSON_MAX ((size_t)64 << 20)

static const char *exe_of(const rp_bench_iperf3 *cfg)
{
    return cfg->exe != NULL ? cfg->exe : "iperf3";
}

static const char *len_of(const rp_bench_iperf3 *cfg)
{
    return cfg->len != NULL ? cfg->len : "256K";
}

/* argv of the client; strings point into `num` (caller storage, 3 x 24 bytes). */
static void client_argv(const rp_bench_iperf3 *cfg, int port, char num[3][24], const char *av[16])
{
    size_t n = 0;
    snprintf(num[0], 24, "%d", port);
    if (cfg->bytes != 0)
        snprintf(num[1], 24, "%llu", cfg->bytes);
    else
        snprintf(num[1], 24, "%u", cfg->seconds);
    snprintf(num[2], 24, "%u", cfg->streams);
    av[n++] = exe_of(cfg);
    av[n++] = "-c";
    av[n++] = "127.0.0.1";
    av[n++] = "-p";
    av[n++] = num[0];
    av[n++] = "-N";
    av[n++] = "-l";
    av[n++] = len_of(cfg);
    av[n++] = cfg->bytes != 0 ? "-n" : "-t";
    av[n++] = num[1];
    if (cfg->streams > 1) {
        av[n++] = "-P";
        av[n++] = num[2];
    }
    av[n++] = "-J";
    av[n] = NULL;
}

/* "taskset -c 0,1 " for a CPU set, "" for none. */
static void taskset_prefix(const cpu_set_t *cpus, char *dst, size_t cap)
{
    size_t len = 0;
    dst[0] = '\0';
    if (cpus == NULL) return;
    for (int c = 0; c < CPU_SETSIZE && len < cap; c++) {
        if (!CPU_ISSET(c, cpus)) continue;
        int n = snprintf(dst + len, cap - len, "%s%d", len ? "," : "taskset -c ", c);
        if (n < 0) break;
        len += (size_t)n;
    }
    if (len > 0 && len + 1 < cap) snprintf(dst + len, cap - len, " ");
}

void rp_bench_iperf3_command(const rp_bench_iperf3 *cfg, char *dst, size_t cap)
{
    const char *e = exe_of(cfg);
    char p[16] = "", tc[128], ts[128], amount[40];
    if (cfg->streams > 1) snprintf(p, sizeof(p), " -P %u", cfg->streams);
    if (cfg->bytes != 0)
        snprintf(amount, sizeof(amount), "-n %llu", cfg->bytes);
    else
        snprintf(amount, sizeof(amount), "-t %u", cfg->seconds);
    taskset_prefix(cfg->client_cpus, tc, sizeof(tc));
    taskset_prefix(cfg->server_cpus, ts, sizeof(ts));
    snprintf(dst, cap, "%s%s -s -1 -p PORT & %s%s -c 127.0.0.1 -p PORT -N -l %s %s%s -J", ts, e, tc,
             e, len_of(cfg), amount, p);
}

/* Starts `av` with stdin and stderr on /dev/null, stdout on `out_fd` (or /dev/null if < 0). */
static int spawn(const char *const av[], int out_fd, const cpu_set_t *cpus, pid_t *pid)
{
    return rp_bench_spawn(av, -1, out_fd, -1, cpus, pid);
}

/* Whether /proc/net/tcp or tcp6 shows a socket listening on `port`. */
static int port_listening(int port)
{
    static const char *const tables[] = { "/proc/net/tcp", "/proc/net/tcp6" };
    for (size_t t = 0; t < 2; t++) {
        FILE *f = fopen(tables[t], "r");
        if (f == NULL) continue;
        char line[512];
        int found = 0;
        while (!found && fgets(line, sizeof(line), f) != NULL) {
            unsigned lport, state;
            if (sscanf(line, " %*u: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x", &lport, &state) == 2)
                found = lport == (unsigned)port && state == 0x0A; /* TCP_LISTEN */
        }
        fclose(f);
        if (found) return 1;
    }
    return 0;
}

/*
 * Starts `iperf3 -s -1 -p PORT` and waits until it listens. Returns 0, or -1
 * if it exited first (port taken) or did not listen in time (it is then
 * reaped); a spawn failure returns its errno.
 */
static int start_server(const rp_bench_iperf3 *cfg, int port, pid_t *pid)
{
    char p[16];
    snprintf(p, sizeof(p), "%d", port);
    const char *av[] = { exe_of(cfg), "-s", "-1", "-p", p, NULL };
    int rc = spawn(av, -1, cfg->server_cpus, pid);
    if (rc != 0) return rc;
    double deadline = rp_bench_now() + IPERF3_LISTEN_TIMEOUT;
    for (;;) {
        if (port_listening(port)) return 0;
        int status;
        if (waitpid(*pid, &status, WNOHANG) == *pid) return -1;
        if (rp_bench_now() > deadline) {
            kill(*pid, SIGKILL);
            waitpid(*pid, &status, 0);
            return -1;
        }
        poll(NULL, 0, 2);
    }
}

/*
 * Reads all of `fd` into a malloc'ed NUL-terminated string (caller frees),
 * until EOF or deadline, sampling meanwhile whether tasks a and b share a CPU.
 */
static char *slurp(int fd, double deadline, pid_t a, pid_t b, rp_bench_colo *colo)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL) return NULL;
    for (;;) {
        if (len + 1 == cap) {
            char *nb = cap < IPERF3_JSON_MAX ? realloc(buf, cap * 2) : NULL;
            if (nb == NULL) break;
            buf = nb;
            cap *= 2;
        }
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int ms = (int)((deadline - rp_bench_now()) * 1000);
        if (ms <= 0) break;
        int pr = poll(&pfd, 1, ms < RP_BENCH_SAMPLE_MS ? ms : RP_BENCH_SAMPLE_MS);
        if (pr < 0 && errno == EINTR) continue;
        if (pr < 0) break;
        if (pr == 0) {
            rp_bench_colo_sample(colo, a, b);
            continue;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
}

/* The number after `"key":` within [from, to); NAN if absent. */
static double json_number(const char *from, const char *to, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\"", key);
    const char *k = strstr(from, pat);
    if (k == NULL || k >= to) return NAN;
    k += strlen(pat);
    k += strspn(k, " \t\r\n");
    if (*k != ':') return NAN;
    char *end;
    double v = strtod(k + 1, &end);
    return end == k + 1 ? NAN : v;
}

/*
 * Fills bytes/seconds from end.sum_received. iperf3 -J reports failures as a
 * top-level "error" string (with exit status 0 in 3.12), so that is checked
 * first and copied into `ei`.
 */
static int parse_client_json(const char *js, rp_bench_sample *out, ringp2p_errinfo *ei)
{
    const char *e = strstr(js, "\"error\"");
    if (e != NULL) {
        const char *q = strchr(e + 7, '"');
        const char *q2 = q != NULL ? strchr(q + 1, '"') : NULL;
        int n = q2 != NULL ? (int)(q2 - q - 1) : 0;
        return rp_err(ei, RINGP2P_EIO, "iperf3: %.*s", n, q != NULL ? q + 1 : "");
    }
    const char *s = strstr(js, "\"sum_received\"");
    const char *close = s != NULL ? strchr(s, '}') : NULL;
    if (close == NULL) return rp_err(ei, RINGP2P_EIO, "iperf3: no end.sum_received in its JSON");
    out->bytes = json_number(s, close, "bytes");
    out->seconds = json_number(s, close, "seconds");
    if (!(out->bytes > 0) || !(out->seconds > 0))
        return rp_err(ei, RINGP2P_EIO, "iperf3: end.sum_received lacks bytes or seconds");
    return 0;
}

int rp_bench_iperf3_run(const rp_bench_iperf3 *cfg, rp_bench_sample *out, ringp2p_errinfo *ei)
{
    *out = rp_bench_sample_none();
    pid_t server = -1;
    int port = -1;
    for (int t = 0; t < IPERF3_PORT_TRIES && server < 0; t++) {
        port = rp_bench_free_port();
        if (port < 0) return rp_err(ei, RINGP2P_EIO, "no free loopback port for iperf3");
        int rc = start_server(cfg, port, &server);
        if (rc > 0) return rp_err(ei, RINGP2P_EIO, "cannot run %s: %s", exe_of(cfg), strerror(rc));
        if (rc < 0) server = -1;
    }
    if (server < 0)
        return rp_err(ei, RINGP2P_EIO, "%s -s did not listen on %d tries", exe_of(cfg),
                      IPERF3_PORT_TRIES);

    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        kill(server, SIGKILL);
        waitpid(server, NULL, 0);
        return rp_err(ei, RINGP2P_EIO, "pipe: %s", strerror(errno));
    }
    char num[3][24];
    const char *av[16];
    client_argv(cfg, port, num, av);
    pid_t client;
    int rc = spawn(av, pfd[1], cfg->client_cpus, &client);
    close(pfd[1]);
    if (rc != 0) {
        close(pfd[0]);
        kill(server, SIGKILL);
        waitpid(server, NULL, 0);
        return rp_err(ei, RINGP2P_EIO, "cannot run %s: %s", exe_of(cfg), strerror(rc));
    }

    /* With -n, allow for a slow machine: 100 MB/s at least. */
    double planned = cfg->bytes != 0 ? (double)cfg->bytes / 1e8 : (double)cfg->seconds;
    double deadline = rp_bench_now() + planned + RP_BENCH_GRACE_SECONDS;
    rp_bench_colo colo = { 0, 0 };
    char *js = slurp(pfd[0], deadline, client, server, &colo);
    close(pfd[0]);
    struct rusage cru, sru;
    int cst = 0, sst = 0;
    int ret;
    if (rp_bench_reap(client, deadline, &cst, &cru) != 0)
        ret = rp_err(ei, RINGP2P_EIO, "iperf3 client overran its time and was killed");
    else if (js == NULL)
        ret = rp_err(ei, RINGP2P_ENOMEM, "no memory for iperf3's output");
    else
        ret = parse_client_json(js, out, ei);
    free(js);
    /* The server leaves after its one test; after a failed client it might never. */
    if (rp_bench_reap(server, ret == 0 ? deadline : 0, &sst, &sru) != 0 && ret == 0)
        ret = rp_err(ei, RINGP2P_EIO, "iperf3 server overran its time and was killed");
    if (ret == 0 && (!WIFEXITED(sst) || WEXITSTATUS(sst) != 0))
        ret = rp_err(ei, RINGP2P_EIO, "iperf3 server exited with status %d", sst);
    if (ret < 0) {
        *out = rp_bench_sample_none();
        return ret;
    }
    out->cpu_send = rp_bench_rusage_cpu(&cru);
    out->cpu_recv = rp_bench_rusage_cpu(&sru);
    out->cpu = out->cpu_send + out->cpu_recv;
    out->same_cpu = rp_bench_colo_share(&colo);
    return 0;
}

int rp_bench_iperf3_round(void *ctx, rp_bench_sample *out, ringp2p_errinfo *ei)
{
    return rp_bench_iperf3_run(ctx, out, ei);
}

int rp_bench_iperf3_check(const rp_bench_iperf3 *cfg, ringp2p_errinfo *ei)
{
    const char *av[] = { exe_of(cfg), "--version", NULL };
    pid_t pid;
    int rc = spawn(av, -1, NULL, &pid);
    if (rc != 0) return rp_err(ei, RINGP2P_ENOENT, "cannot run %s: %s", exe_of(cfg), strerror(rc));
    int st;
    struct rusage ru;
    if (rp_bench_reap(pid, rp_bench_now() + RP_BENCH_GRACE_SECONDS, &st, &ru) != 0 ||
        !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return rp_err(ei, RINGP2P_ENOENT, "%s --version failed", exe_of(cfg));
    return 0;
}
