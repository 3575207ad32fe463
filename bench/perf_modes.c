/*
 * ringp2p's security modes against iperf3 and js-libp2p, side by side in one
 * run (issue 5, "Benchmarks"), plus connection and stream rates.
 *
 *   build/bench/perf_modes [--rounds N] [--size SIZE] [--js-size SIZE] [--modes LIST]
 *                          [--placement split|same|both] [--json FILE] [--verbose]
 *                          [--ringp2p PATH] [--iperf3 PATH] [--node PATH] [--js-peer PATH]
 *                          [--no-js] [--no-throughput] [--no-handshakes] [--no-streams]
 *                          [--hs-conns N] [--hs-inflight N] [--hs-server-shards N]
 *                          [--streams-seconds S] [--streams-inflight N]
 *                          [--streams-security MODE] [--crypto-seconds S]
 *
 * Throughput: each round runs every contender once, in turn (round-robin), so
 * drift on a shared machine hits all alike; tables give medians.
 *   - iperf3 -N -l 256K -n SIZE on loopback, placed by the scheduler (the
 *     issue's baseline), and again with each placement the ringp2p runs get;
 *   - `ringp2p perf MADDR --upload SIZE --json --security MODE` against a
 *     `ringp2p listen --security MODE --shards 1` started once per mode: two
 *     processes of the tool binary, nothing of this program in the path;
 *   - js-libp2p perf between two js nodes (tests/interop/peer/node.mjs, Noise +
 *     yamux): `node.mjs dial MADDR perf SIZE 0` against `node.mjs listen`,
 *     placed by the scheduler (node runs helper threads beside its main one).
 * Placement: the runtime pins each shard to a CPU of the process's mask, so a
 * ringp2p process cannot be "placed by the scheduler". The listener runs on
 * CPU 0; the client on CPU 1 ("split": seal and open on two cores) and/or on
 * CPU 0 ("same": both ends on one core, where iperf3's two processes end up
 * on loopback when the machine is busy, see docs/PERFORMANCE.md).
 * MB/s is payload bytes (10^6) per second as the perf client reports it. CPU
 * is CPU-seconds per GB (10^9 bytes) of payload: the client whole from wait4
 * (ringp2p: node start included, a few ms, measured once per mode with a
 * 1-byte transfer and printed), js's client from its own process.cpuUsage()
 * over the transfer (node's start-up is seconds of CPU, not transfer cost);
 * listeners from /proc/<pid>/task/<tid>/schedstat before and after the transfer.
 * Each round also measures the AEADs alone on one core (the ceiling the crypto
 * allows) and prints a CPU-bound projection: the MB/s each contender's own CPU
 * cost allows, which a busy machine disturbs less than the MB/s.
 *
 * Handshakes and streams: see common/conn_rate.h. The server node runs in a
 * child (this program with --serve), the client node in this process.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/error.h"
#include "common/bench.h"
#include "common/conn_rate.h"

#define ROUNDS_DEFAULT           5
#define SIZE_DEFAULT             (512ull << 20)
#define HS_CONNS_DEFAULT         2000
#define HS_INFLIGHT_DEFAULT      64
#define STREAMS_SECONDS_DEFAULT  2.0
#define STREAMS_INFLIGHT_DEFAULT 256
#define CRYPTO_SECONDS_DEFAULT   0.2
#define MODES_MAX                4
#define CASES_MAX                (4 + 2 * MODES_MAX)
#define READY_TIMEOUT            30.0 /* seconds for a listener to print its address */
#define ROUND_TIMEOUT_MIN        30.0 /* a transfer may take this long plus 1 s per 10 MB */
#define RATE_TIMEOUT             60.0
#define LINE_MAX_LEN             8192

/* The targets: throughput ratios to iperf3 (and to js-libp2p for Noise). */
typedef struct mode_info {
    const char *name;  /* --security name */
    const char *label; /* table label */
    double min_vs_iperf3;
    double min_vs_js; /* 0: none */
} mode_info;

static const mode_info MODES[MODES_MAX] = {
    { "plaintext", "clear", 0.95, 0 },
    { "signed", "signed", 0.80, 0 },
    { "tls", "tls", 0.70, 0 },
    { "noise", "noise", 0.50, 5.0 },
};
#define HS_TARGET      4000.0
#define STREAMS_TARGET 500000.0

typedef struct opts {
    unsigned rounds;
    unsigned long long size, js_size;
    bool modes[MODES_MAX];
    bool split, same; /* throughput placements (see the top) */
    int rate_cpu;     /* the client of the rate rounds: CPU_SPLIT when there are 2 CPUs */
    const char *json_path;
    bool verbose;
    char ringp2p[PATH_MAX];
    const char *iperf3, *node, *js_peer;
    bool js, throughput, handshakes, streams;
    unsigned hs_conns, hs_inflight, hs_server_shards;
    double streams_seconds;
    unsigned streams_inflight;
    const char *streams_security;
    double crypto_seconds;
} opts;

/* ---- small helpers ---------------------------------------------------------------------- */

/* The number after `"key":` in a JSON line; NAN if absent. */
static double json_num(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *k = strstr(line, pat);
    if (k == NULL) return NAN;
    char *end;
    double v = strtod(k + strlen(pat), &end);
    return end == k + strlen(pat) ? NAN : v;
}

/* The first string of the JSON array or string after `"key":` into dst; 0 or -1. */
static int json_first_str(const char *line, const char *key, char *dst, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *k = strstr(line, pat);
    if (k == NULL) return -1;
    const char *q = strchr(k + strlen(pat), '"');
    const char *e = q != NULL ? strchr(q + 1, '"') : NULL;
    if (e == NULL || (size_t)(e - q - 1) >= cap) return -1;
    memcpy(dst, q + 1, (size_t)(e - q - 1));
    dst[e - q - 1] = '\0';
    return 0;
}

static int parse_size(const char *t, unsigned long long *out)
{
    char *end;
    if (t == NULL || *t < '0' || *t > '9') return -1;
    errno = 0;
    unsigned long long v = strtoull(t, &end, 10);
    unsigned shift = 0;
    switch (*end) {
    case 'K':
    case 'k': shift = 10; break;
    case 'M':
    case 'm': shift = 20; break;
    case 'G':
    case 'g': shift = 30; break;
    case 0: break;
    default: return -1;
    }
    if (shift != 0) end++;
    if (errno != 0 || *end != 0 || v == 0 || v > (ULLONG_MAX >> shift)) return -1;
    *out = v << shift;
    return 0;
}

/* Servers and listeners run on CPU 0; clients on CPU_SPLIT or CPU 0. */
#define CPU_SERVER 0
#define CPU_SPLIT  1

/* A child with a pipe on stdout (and stderr); *rd is the read end. */
static int spawn_piped(const char *const av[], int in_fd, const cpu_set_t *cpus, pid_t *pid,
                       int *rd, ringp2p_errinfo *ei)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return rp_err(ei, RINGP2P_EIO, "pipe: %s", strerror(errno));
    int rc = rp_bench_spawn(av, in_fd, p[1], p[1], cpus, pid);
    close(p[1]);
    if (rc != 0) {
        close(p[0]);
        return rp_err(ei, RINGP2P_EIO, "cannot run %s: %s", av[0], strerror(rc));
    }
    *rd = p[0];
    return 0;
}

/* ---- long-running listeners (ringp2p listen, node.mjs listen) --------------------------- */

typedef struct listener {
    pid_t pid;
    int in_fd; /* node.mjs stops at the end of its stdin; -1 for ringp2p (SIGTERM) */
    rp_bench_lines out;
    char addr[512];
    char ready[2048]; /* its ready line (cut) */
} listener;

static void listener_stop(listener *l);

/*
 * Long-running children, stopped by on_signal when the run is interrupted
 * (`ringp2p listen` waits for a signal, not for its parent).
 */
#define CHILDREN_MAX (MODES_MAX + 2)
static volatile pid_t children[CHILDREN_MAX];

static void children_set(pid_t old, pid_t pid)
{
    for (int i = 0; i < CHILDREN_MAX; i++)
        if (children[i] == old) {
            children[i] = pid;
            return;
        }
}

static void on_signal(int sig)
{
    for (int i = 0; i < CHILDREN_MAX; i++)
        if (children[i] > 0) kill(children[i], SIGTERM);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Starts av and reads its {"event":"ready",...,"addrs":[...]} line. */
static int listener_start(listener *l, const char *const av[], bool stdin_pipe,
                          const cpu_set_t *cpus, ringp2p_errinfo *ei)
{
    memset(l, 0, sizeof(*l));
    l->pid = -1;
    l->in_fd = -1;
    int in[2] = { -1, -1 };
    if (stdin_pipe && pipe2(in, O_CLOEXEC) != 0)
        return rp_err(ei, RINGP2P_EIO, "pipe: %s", strerror(errno));
    int rd;
    int r = spawn_piped(av, in[0], cpus, &l->pid, &rd, ei);
    if (in[0] >= 0) close(in[0]);
    if (r < 0) {
        if (in[1] >= 0) close(in[1]);
        return r;
    }
    l->in_fd = in[1];
    children_set(0, l->pid);
    fcntl(rd, F_SETFL, O_NONBLOCK);
    rp_bench_lines_init(&l->out, rd);
    char line[LINE_MAX_LEN], seen[512] = "";
    double deadline = rp_bench_now() + READY_TIMEOUT;
    int got;
    while ((got = rp_bench_lines_next(&l->out, line, sizeof(line), deadline)) == 1) {
        if (strstr(line, "\"event\":\"ready\"") != NULL &&
            json_first_str(line, "addrs", l->addr, sizeof(l->addr)) == 0) {
            snprintf(l->ready, sizeof(l->ready), "%.2000s", line);
            return 0;
        }
        snprintf(seen, sizeof(seen), "%.500s", line);
    }
    r = rp_err(ei, RINGP2P_EIO, "%s did not start: %s", av[0],
               seen[0]    ? seen
               : got == 0 ? "exited without output"
                          : "no ready line in time");
    listener_stop(l);
    return r;
}

static void listener_stop(listener *l)
{
    if (l->pid <= 0) return;
    if (l->in_fd >= 0) close(l->in_fd);
    kill(l->pid, SIGTERM);
    int st;
    struct rusage ru;
    rp_bench_reap(l->pid, rp_bench_now() + 5, &st, &ru);
    children_set(l->pid, 0);
    close(l->out.fd);
    l->pid = -1;
}

/* ---- throughput contenders -------------------------------------------------------------- */

typedef struct ringp2p_ctx {
    const opts *o;
    const mode_info *mode;
    listener l;
    double startup_cpu; /* client CPU of a 1-byte transfer (node start, handshake, exit) */
} ringp2p_ctx;

/*
 * One `ringp2p perf` (or node.mjs dial) against a listener. Client CPU: from
 * `cpu_key` in its JSON when given (js), else wait4.
 */
static int client_round(listener *l, const char *const av[], int cpu, const char *marker,
                        unsigned long long size, const char *cpu_key, rp_bench_sample *out,
                        ringp2p_errinfo *ei)
{
    *out = rp_bench_sample_none();
    rp_bench_lines_drain(&l->out); /* the listener's event lines of earlier rounds */
    cpu_set_t cc;
    if (cpu >= 0) rp_bench_cpus_one(&cc, cpu);
    double cpu0 = rp_bench_proc_cpu(l->pid);
    pid_t pid;
    int rd;
    int r = spawn_piped(av, -1, cpu >= 0 ? &cc : NULL, &pid, &rd, ei);
    if (r < 0) return r;
    rp_bench_lines lr;
    rp_bench_lines_init(&lr, rd);
    double deadline = rp_bench_now() + ROUND_TIMEOUT_MIN + (double)size / 1e7;
    char line[LINE_MAX_LEN], result[LINE_MAX_LEN] = "", last[LINE_MAX_LEN] = "";
    int got;
    while ((got = rp_bench_lines_next(&lr, line, sizeof(line), deadline)) == 1) {
        if (strstr(line, marker) != NULL)
            snprintf(result, sizeof(result), "%s", line);
        else if (line[0] != '\0')
            snprintf(last, sizeof(last), "%s", line);
    }
    close(rd);
    int st = 0;
    struct rusage ru;
    bool exited = rp_bench_reap(pid, got < 0 ? 0 : deadline, &st, &ru) == 0;
    double cpu1 = rp_bench_proc_cpu(l->pid);
    if (!exited || got < 0) return rp_err(ei, RINGP2P_ETIMEDOUT, "%s: no result in time", av[0]);
    if (result[0] == '\0' || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return rp_err(ei, RINGP2P_EIO, "%s failed (status %d): %s", av[0], st,
                      result[0] ? result
                      : last[0] ? last
                                : "no output");
    if (strstr(result, "\"ok\":false") != NULL)
        return rp_err(ei, RINGP2P_EIO, "%s: %s", av[0], result);
    double bytes = json_num(result, "uploadBytes"), secs = json_num(result, "seconds");
    if (bytes != (double)size || !(secs > 0))
        return rp_err(ei, RINGP2P_EIO, "%s moved %.0f of %llu bytes: %s", av[0], bytes, size,
                      result);
    out->bytes = bytes;
    out->seconds = secs;
    out->cpu_send = cpu_key != NULL ? json_num(result, cpu_key) : rp_bench_rusage_cpu(&ru);
    out->cpu_recv = cpu1 - cpu0;
    out->cpu = out->cpu_send + out->cpu_recv;
    out->same_cpu = cpu < 0 ? NAN : cpu == CPU_SERVER;
    return 0;
}

static int ringp2p_transfer(ringp2p_ctx *c, unsigned long long size, int cpu, rp_bench_sample *out,
                            ringp2p_errinfo *ei)
{
    char sz[32];
    snprintf(sz, sizeof(sz), "%llu", size);
    const char *av[] = { c->o->ringp2p, "perf",       c->l.addr,     "--upload", sz,
                         "--json",      "--security", c->mode->name, NULL };
    return client_round(&c->l, av, cpu, "\"event\":\"perf\"", size, NULL, out, ei);
}

/* A throughput case: a mode's listener and where its client runs. */
typedef struct ringp2p_case {
    ringp2p_ctx *m;
    int cpu;
    char name[32], label[64];
} ringp2p_case;

static int ringp2p_round(void *ctx, rp_bench_sample *out, ringp2p_errinfo *ei)
{
    ringp2p_case *c = ctx;
    return ringp2p_transfer(c->m, c->m->o->size, c->cpu, out, ei);
}

/* Starts the mode's listener and checks the mode end to end with a 1-byte transfer. */
static int ringp2p_setup(ringp2p_ctx *c, ringp2p_errinfo *ei)
{
    const char *av[] = { c->o->ringp2p, "listen", "--security", c->mode->name,
                         "--shards",    "1",      "--json",     NULL };
    cpu_set_t sc;
    rp_bench_cpus_one(&sc, CPU_SERVER);
    int r = listener_start(&c->l, av, false, &sc, ei);
    if (r < 0) return r;
    rp_bench_sample s;
    r = ringp2p_transfer(c, 1, CPU_SERVER, &s, ei);
    if (r < 0) {
        listener_stop(&c->l);
        return r;
    }
    c->startup_cpu = s.cpu_send;
    return 0;
}

typedef struct js_ctx {
    const opts *o;
    listener l;
} js_ctx;

static int js_round(void *ctx, rp_bench_sample *out, ringp2p_errinfo *ei)
{
    js_ctx *c = ctx;
    char sz[32];
    snprintf(sz, sizeof(sz), "%llu", c->o->js_size);
    const char *av[] = { c->o->node, c->o->js_peer, "dial", c->l.addr, "perf", sz, "0", NULL };
    return client_round(&c->l, av, -1, "\"action\":\"perf ", c->o->js_size, "cpuSeconds", out, ei);
}

/* The js listener, if node.mjs serves /perf/1.0.0 (its ready line lists its protocols). */
static int js_setup(js_ctx *c, ringp2p_errinfo *ei)
{
    if (access(c->o->node, X_OK) != 0)
        return rp_err(ei, RINGP2P_ENOENT, "%s: %s", c->o->node, strerror(errno));
    const char *av[] = { c->o->node, c->o->js_peer, "listen", "--security",
                         "noise",    "--muxer",     "yamux",  NULL };
    int r = listener_start(&c->l, av, true, NULL, ei);
    if (r == 0 && strstr(c->l.ready, "\"/perf/1.0.0\"") == NULL) {
        listener_stop(&c->l);
        r = rp_err(ei, RINGP2P_EUNSUPPORTED, "%s does not serve /perf/1.0.0 yet", c->o->js_peer);
    }
    return r;
}

/* iperf3 with a known placement: pinned runs get their same-CPU share from the pinning. */
typedef struct iperf3_case {
    rp_bench_iperf3 cfg;
    double same; /* 1, 0, or NAN: sampled */
} iperf3_case;

static int iperf3_round(void *ctx, rp_bench_sample *out, ringp2p_errinfo *ei)
{
    iperf3_case *c = ctx;
    int r = rp_bench_iperf3_run(&c->cfg, out, ei);
    if (r == 0 && !isnan(c->same)) out->same_cpu = c->same;
    return r;
}

/* ---- the run ---------------------------------------------------------------------------- */

typedef struct tcase {
    rp_bench_case k;
    const mode_info *mode; /* ringp2p cases */
    bool is_iperf3, is_js;
    unsigned failures;
    char last_err[RINGP2P_ERRINFO_MSG_MAX];
} tcase;

typedef struct rates {
    bool avail[MODES_MAX];
    char why[MODES_MAX][RINGP2P_ERRINFO_MSG_MAX];
    rp_rate_result hs[MODES_MAX][RP_BENCH_ROUNDS_MAX];
    unsigned hs_n[MODES_MAX], hs_fail[MODES_MAX];
    char hs_err[MODES_MAX][RINGP2P_ERRINFO_MSG_MAX];
    rp_rate_result st[RP_BENCH_ROUNDS_MAX];
    unsigned st_n, st_fail;
    char st_err[RINGP2P_ERRINFO_MSG_MAX];
    /* Crypto, per round. */
    rp_rate_primitives prim[RP_BENCH_ROUNDS_MAX];
    rp_rate_aead aead[RP_BENCH_ROUNDS_MAX]; /* with the throughput rounds */
    unsigned aead_n;
    double pair_us[MODES_MAX][RP_BENCH_ROUNDS_MAX];
    char pair_err[MODES_MAX][RINGP2P_ERRINFO_MSG_MAX];
    unsigned crypto_n;
} rates;

static void usage(void)
{
    fprintf(stderr,
            "usage: perf_modes [--rounds N] [--size SIZE] [--js-size SIZE] [--modes LIST]\n"
            "                  [--placement split|same|both] [--json FILE] [--verbose]\n"
            "                  [--ringp2p PATH] [--iperf3 PATH] [--node PATH] [--js-peer PATH]\n"
            "                  [--no-js] [--no-throughput] [--no-handshakes] [--no-streams]\n"
            "                  [--hs-conns N] [--hs-inflight N] [--hs-server-shards N]\n"
            "                  [--streams-seconds S] [--streams-inflight N]\n"
            "                  [--streams-security MODE] [--crypto-seconds S]\n"
            "SIZE: bytes, suffixes K, M, G (powers of 1024). LIST: plaintext,signed,tls,noise\n");
    exit(2);
}

static unsigned long num_arg(const char *s, unsigned long lo, unsigned long hi)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != 0 || *s == 0 || v < lo || v > hi) usage();
    return v;
}

static double sec_arg(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (*end != 0 || !(v > 0) || v > 600) usage();
    return v;
}

static void parse_opts(int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof(*o));
    o->rounds = ROUNDS_DEFAULT;
    o->size = o->js_size = SIZE_DEFAULT;
    for (int m = 0; m < MODES_MAX; m++) o->modes[m] = true;
    o->split = o->same = true;
    o->iperf3 = "iperf3";
    o->node = "tests/interop/node_modules/.bin/node";
    o->js_peer = "tests/interop/peer/node.mjs";
    o->js = o->throughput = o->handshakes = o->streams = true;
    o->hs_conns = HS_CONNS_DEFAULT;
    o->hs_inflight = HS_INFLIGHT_DEFAULT;
    o->hs_server_shards = 1;
    o->streams_seconds = STREAMS_SECONDS_DEFAULT;
    o->streams_inflight = STREAMS_INFLIGHT_DEFAULT;
    o->streams_security = "noise";
    o->crypto_seconds = CRYPTO_SECONDS_DEFAULT;
    /* The tool is built next to the benchmarks: BUILD/bench/perf_modes -> BUILD/ringp2p. */
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(self, '/');
    if (slash != NULL) *slash = '\0';
    char tool[PATH_MAX];
    snprintf(tool, sizeof(tool), "%.*s/../ringp2p", PATH_MAX - 16, self);
    if (realpath(tool, o->ringp2p) == NULL) snprintf(o->ringp2p, sizeof(o->ringp2p), "%s", tool);
    bool js_size_set = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(a, "--rounds") == 0 && has)
            o->rounds = (unsigned)num_arg(argv[++i], 1, RP_BENCH_ROUNDS_MAX);
        else if (strcmp(a, "--size") == 0 && has) {
            if (parse_size(argv[++i], &o->size) < 0) usage();
        } else if (strcmp(a, "--js-size") == 0 && has) {
            if (parse_size(argv[++i], &o->js_size) < 0) usage();
            js_size_set = true;
        } else if (strcmp(a, "--modes") == 0 && has) {
            char buf[256];
            snprintf(buf, sizeof(buf), "%s", argv[++i]);
            for (int m = 0; m < MODES_MAX; m++) o->modes[m] = false;
            for (char *sv = NULL, *t = strtok_r(buf, ",", &sv); t != NULL;
                 t = strtok_r(NULL, ",", &sv)) {
                int m = 0;
                while (m < MODES_MAX && strcmp(MODES[m].name, t) != 0) m++;
                if (m == MODES_MAX) usage();
                o->modes[m] = true;
            }
        } else if (strcmp(a, "--placement") == 0 && has) {
            const char *p = argv[++i];
            if (strcmp(p, "split") != 0 && strcmp(p, "same") != 0 && strcmp(p, "both") != 0)
                usage();
            o->split = strcmp(p, "same") != 0;
            o->same = strcmp(p, "split") != 0;
        } else if (strcmp(a, "--json") == 0 && has)
            o->json_path = argv[++i];
        else if (strcmp(a, "--verbose") == 0)
            o->verbose = true;
        else if (strcmp(a, "--ringp2p") == 0 && has)
            snprintf(o->ringp2p, sizeof(o->ringp2p), "%s", argv[++i]);
        else if (strcmp(a, "--iperf3") == 0 && has)
            o->iperf3 = argv[++i];
        else if (strcmp(a, "--node") == 0 && has)
            o->node = argv[++i];
        else if (strcmp(a, "--js-peer") == 0 && has)
            o->js_peer = argv[++i];
        else if (strcmp(a, "--no-js") == 0)
            o->js = false;
        else if (strcmp(a, "--no-throughput") == 0)
            o->throughput = false;
        else if (strcmp(a, "--no-handshakes") == 0)
            o->handshakes = false;
        else if (strcmp(a, "--no-streams") == 0)
            o->streams = false;
        else if (strcmp(a, "--hs-conns") == 0 && has)
            o->hs_conns = (unsigned)num_arg(argv[++i], 1, 15000);
        else if (strcmp(a, "--hs-inflight") == 0 && has)
            o->hs_inflight = (unsigned)num_arg(argv[++i], 1, RP_RATE_INFLIGHT_MAX);
        else if (strcmp(a, "--hs-server-shards") == 0 && has)
            o->hs_server_shards = (unsigned)num_arg(argv[++i], 1, 64);
        else if (strcmp(a, "--streams-seconds") == 0 && has)
            o->streams_seconds = sec_arg(argv[++i]);
        else if (strcmp(a, "--streams-inflight") == 0 && has)
            o->streams_inflight = (unsigned)num_arg(argv[++i], 1, RP_RATE_INFLIGHT_MAX);
        else if (strcmp(a, "--streams-security") == 0 && has)
            o->streams_security = argv[++i];
        else if (strcmp(a, "--crypto-seconds") == 0 && has)
            o->crypto_seconds = sec_arg(argv[++i]);
        else
            usage();
    }
    if (!js_size_set) o->js_size = o->size;
}

/* The 1-minute load average, NAN if unreadable. */
static double loadavg(void)
{
    double l[1];
    return getloadavg(l, 1) == 1 ? l[0] : NAN;
}

static void self_exe(char *dst, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", dst, cap - 1);
    dst[n > 0 ? n : 0] = '\0';
}

/* ---- reporting -------------------------------------------------------------------------- */

static const char *fmt(char *buf, size_t cap, double v, int prec)
{
    if (isnan(v) || isinf(v))
        snprintf(buf, cap, "-");
    else
        snprintf(buf, cap, "%.*f", prec, v);
    return buf;
}

typedef struct tsum {
    rp_bench_stat mbps, cpu_c, cpu_s, cpu_t, same;
} tsum;

static tsum tsum_of(const rp_bench_case *k)
{
    double mb[RP_BENCH_ROUNDS_MAX], c[RP_BENCH_ROUNDS_MAX], s[RP_BENCH_ROUNDS_MAX],
        t[RP_BENCH_ROUNDS_MAX], sm[RP_BENCH_ROUNDS_MAX];
    for (size_t i = 0; i < k->n; i++) {
        const rp_bench_sample *x = &k->samples[i];
        mb[i] = x->bytes > 0 && x->seconds > 0 ? x->bytes / x->seconds / 1e6 : NAN;
        c[i] = rp_bench_cpu_per_gb(x->cpu_send, x->bytes);
        s[i] = rp_bench_cpu_per_gb(x->cpu_recv, x->bytes);
        t[i] = rp_bench_cpu_per_gb(x->cpu, x->bytes);
        sm[i] = x->same_cpu;
    }
    tsum r = { rp_bench_stat_of(mb, k->n), rp_bench_stat_of(c, k->n), rp_bench_stat_of(s, k->n),
               rp_bench_stat_of(t, k->n), rp_bench_stat_of(sm, k->n) };
    return r;
}

static rp_bench_stat aead_stat(const rates *rt, size_t off)
{
    double v[RP_BENCH_ROUNDS_MAX];
    for (unsigned i = 0; i < rt->aead_n; i++)
        v[i] = *(const double *)((const char *)&rt->aead[i] + off);
    return rp_bench_stat_of(v, rt->aead_n);
}

/*
 * What the AEAD alone allows, in MB/s: split, each end on its own core, the
 * slower of seal and open; same, one core doing both.
 */
static void print_aead(const rates *rt, double iperf3_mbps)
{
    static const struct {
        const char *mode, *what;
        size_t seal, open;
    } rows[] = {
        { "noise", "ChaCha20-Poly1305, 65519-byte records", offsetof(rp_rate_aead, chacha_seal),
          offsetof(rp_rate_aead, chacha_open) },
        { "tls", "AES-256-GCM, 16384-byte records", offsetof(rp_rate_aead, gcm_seal),
          offsetof(rp_rate_aead, gcm_open) },
        { "signed", "AES-256-GCM tag of a 65519-byte message", offsetof(rp_rate_aead, gmac_tag),
          offsetof(rp_rate_aead, gmac_verify) },
    };
    if (rt->aead_n == 0) return;
    printf("AEAD alone on one core, medians of %u measurements in the rounds (GB/s seal / open);\n"
           "ceiling = MB/s the AEAD alone allows (split: the slower side; same: one core does "
           "both), x iperf3\n",
           rt->aead_n);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        double se = aead_stat(rt, rows[i].seal).median, op = aead_stat(rt, rows[i].open).median;
        double split = 1e3 * (se < op ? se : op), same = 1e3 / (1 / se + 1 / op);
        printf("  %-7s %-40s %5.2f / %5.2f   ceiling split %6.0f (%.2fx)  same %6.0f (%.2fx)\n",
               rows[i].mode, rows[i].what, se, op, split, split / iperf3_mbps, same,
               same / iperf3_mbps);
    }
}

/*
 * MB/s if the contender had its CPUs to itself, from its CPU-s per GB: ends
 * that shared one CPU (iperf3 scheduler placed, "same") are bound by their
 * sum, ends on two CPUs by the busier one. On a loaded machine the measured
 * MB/s follow the other jobs; this follows only the contender's own cost.
 */
static double projected_mbps(const tsum *s)
{
    /* Unknown (a transfer shorter than one sample): taken as shared, as iperf3 mostly is. */
    double per_gb = !(s->same.median < 0.5)             ? s->cpu_t.median
                    : s->cpu_c.median > s->cpu_s.median ? s->cpu_c.median
                                                        : s->cpu_s.median;
    return per_gb > 0 ? 1e3 / per_gb : NAN;
}

/* "target: pass|MISS|unknown" for ratios vi (to iperf3) and vj (to js). */
static void target_text(const mode_info *m, double vi, double vj, char *dst, size_t cap)
{
    bool ok = vi >= m->min_vs_iperf3;
    size_t tl = (size_t)snprintf(dst, cap, ">= %.2fx iperf3", m->min_vs_iperf3);
    if (m->min_vs_js > 0) {
        snprintf(dst + tl, cap - tl, ", >= %.0fx js", m->min_vs_js);
        ok = ok && vj >= m->min_vs_js;
    }
    bool known = !isnan(vi) && (m->min_vs_js == 0 || !isnan(vj));
    tl = strlen(dst);
    snprintf(dst + tl, cap - tl, ": %s", !known ? "unknown" : ok ? "pass" : "MISS");
}

static void print_projection(tcase *cases, size_t nc, const tcase *base, const tcase *js)
{
    tsum bs = base != NULL ? tsum_of(&base->k) : (tsum){ 0 };
    tsum jss = js != NULL ? tsum_of(&js->k) : (tsum){ 0 };
    double pb = base != NULL ? projected_mbps(&bs) : NAN,
           pj = js != NULL ? projected_mbps(&jss) : NAN;
    printf("CPU-bound projection (independent of the other jobs): MB/s = 1000 / CPU-s per GB of "
           "the busier end\n(of both ends when they shared a CPU or when that is unknown: "
           "iperf3 scheduler placed, \"same\")\n");
    printf("%-36s %9s %8s %8s  %s\n", "contender", "MB/s", "x iperf3", "x js", "target");
    for (size_t i = 0; i < nc; i++) {
        tsum s = tsum_of(&cases[i].k);
        double p = projected_mbps(&s);
        char a[24], b[24], c[24], target[96] = "";
        if (cases[i].mode != NULL)
            target_text(cases[i].mode, p / pb, p / pj, target, sizeof(target));
        printf("%-36s %9s %8s %8s  %s\n", cases[i].k.label, fmt(a, sizeof(a), p, 0),
               fmt(b, sizeof(b), p / pb, 2), fmt(c, sizeof(c), p / pj, 1), target);
    }
}

static void print_throughput(const opts *o, tcase *cases, size_t nc, const tcase *base,
                             const tcase *js, const ringp2p_ctx *rctx, const rates *rt)
{
    tsum bs = base != NULL ? tsum_of(&base->k) : (tsum){ 0 };
    tsum jss = js != NULL ? tsum_of(&js->k) : (tsum){ 0 };
    printf("\nthroughput: medians of %u rounds, %llu bytes per transfer (js: %llu); MB = 10^6 "
           "bytes;\nCPU-s per GB of payload (client, server, both); ratios of medians\n",
           o->rounds, o->size, o->js_size);
    printf("clear = /plaintext/2.0.0, signed = /ringp2p/signed/1.0.0 (AES-256-GCM tags), tls = "
           "/tls/1.0.0, noise = /noise; all with yamux\n");
    printf("%-36s %20s %7s %7s %7s %6s %8s %8s  %s\n", "contender", "MB/s (min-max)", "cpu-cli",
           "cpu-srv", "cpu-sum", "1 CPU", "x iperf3", "x js", "target");
    for (size_t i = 0; i < nc; i++) {
        tcase *c = &cases[i];
        tsum s = tsum_of(&c->k);
        char a[24], b[24], d[24], e[24], f[24], g[24], h[24], ii[24], tput[96], same[16];
        snprintf(tput, sizeof(tput), "%s (%s-%s)", fmt(a, sizeof(a), s.mbps.median, 0),
                 fmt(b, sizeof(b), s.mbps.min, 0), fmt(d, sizeof(d), s.mbps.max, 0));
        if (isnan(s.same.median))
            snprintf(same, sizeof(same), "-");
        else
            snprintf(same, sizeof(same), "%.0f%%", 100 * s.same.median);
        double vi = base != NULL ? s.mbps.median / bs.mbps.median : NAN;
        double vj = js != NULL ? s.mbps.median / jss.mbps.median : NAN;
        char target[96] = "";
        if (c->mode != NULL) target_text(c->mode, vi, vj, target, sizeof(target));
        printf("%-36s %20s %7s %7s %7s %6s %8s %8s  %s\n", c->k.label, tput,
               fmt(e, sizeof(e), s.cpu_c.median, 3), fmt(f, sizeof(f), s.cpu_s.median, 3),
               fmt(g, sizeof(g), s.cpu_t.median, 3), same, fmt(h, sizeof(h), vi, 2),
               fmt(ii, sizeof(ii), vj, 1), target);
        if (c->failures > 0)
            printf("%-36s %u of %u rounds failed; last: %s\n", "", c->failures, o->rounds,
                   c->last_err);
    }
    for (size_t m = 0; m < MODES_MAX; m++)
        if (rctx[m].l.pid > 0)
            printf("  (ringp2p %s: the client's start, handshake and exit cost %.1f ms of CPU, "
                   "counted in cpu-cli)\n",
                   rctx[m].mode->name, rctx[m].startup_cpu * 1e3);
    print_projection(cases, nc, base, js);
    if (base != NULL) print_aead(rt, bs.mbps.median);
}

/* Medians of one mode's handshake rounds. */
typedef struct rsum {
    rp_bench_stat rate, cpu_us, cpu_us_c, cpu_us_s;
} rsum;

static rsum rsum_of(const rp_rate_result *r, size_t n)
{
    double a[RP_BENCH_ROUNDS_MAX], b[RP_BENCH_ROUNDS_MAX], c[RP_BENCH_ROUNDS_MAX],
        d[RP_BENCH_ROUNDS_MAX];
    for (size_t i = 0; i < n; i++) {
        a[i] = rp_rate_per_second(&r[i]);
        b[i] = rp_rate_cpu_us(&r[i]);
        c[i] = r[i].count > 0 ? r[i].cpu_client / r[i].count * 1e6 : NAN;
        d[i] = r[i].count > 0 ? r[i].cpu_server / r[i].count * 1e6 : NAN;
    }
    rsum s = { rp_bench_stat_of(a, n), rp_bench_stat_of(b, n), rp_bench_stat_of(c, n),
               rp_bench_stat_of(d, n) };
    return s;
}

static rp_bench_stat prim_stat(const rates *rt, size_t off)
{
    double v[RP_BENCH_ROUNDS_MAX];
    for (unsigned i = 0; i < rt->crypto_n; i++)
        v[i] = *(const double *)((const char *)&rt->prim[i] + off);
    return rp_bench_stat_of(v, rt->crypto_n);
}

/* Connections per second the crypto alone allows: both sides' work spread over every CPU. */
static double ceiling_of(double pair_us, long cpus)
{
    return pair_us > 0 ? (double)cpus / (pair_us * 1e-6) : NAN;
}

static void print_rates(const opts *o, const rates *rt, long cpus)
{
    char a[24], b[24], c[24], d[24], e[24], f[24], g[24];
    rp_bench_stat kp = prim_stat(rt, offsetof(rp_rate_primitives, x25519_keypair_us));
    rp_bench_stat dh = prim_stat(rt, offsetof(rp_rate_primitives, x25519_dh_us));
    rp_bench_stat sg = prim_stat(rt, offsetof(rp_rate_primitives, ed25519_sign_us));
    rp_bench_stat vf = prim_stat(rt, offsetof(rp_rate_primitives, ed25519_verify_us));
    if (o->handshakes) {
        printf("\nhandshakes: new TCP + security + muxer connections per second, %u per round, %u "
               "in flight;\nclient node in this process, server node in a child (%u shard), %s\n",
               o->hs_conns, o->hs_inflight, o->hs_server_shards,
               o->rate_cpu != CPU_SERVER ? "client on CPU 1, server on CPU 0"
                                         : "both on CPU 0 (one CPU)");
        printf("%-10s %22s %24s %10s %8s %10s  %s\n", "mode", "conn/s (min-max)",
               "CPU-us/conn (cli + srv)", "CPU ceil/s", "pair us", "crypto/s", "target");
        for (int m = 0; m < MODES_MAX; m++) {
            if (!o->modes[m]) continue;
            if (!rt->avail[m]) {
                printf("%-10s unavailable: %s\n", MODES[m].name, rt->why[m]);
                continue;
            }
            rsum s = rsum_of(rt->hs[m], rt->hs_n[m]);
            double pair = rp_bench_stat_of(rt->pair_us[m], rt->crypto_n).median;
            /*
             * Identify adds one Ed25519 verify: the client checks the server's signed peer
             * record; the client listens nowhere, so it sends no record to check.
             */
            double ceil_conn = ceiling_of(pair + vf.median, cpus);
            char rate[96], cpu[96];
            snprintf(rate, sizeof(rate), "%s (%s-%s)", fmt(a, sizeof(a), s.rate.median, 0),
                     fmt(b, sizeof(b), s.rate.min, 0), fmt(c, sizeof(c), s.rate.max, 0));
            snprintf(cpu, sizeof(cpu), "%s (%s + %s)", fmt(d, sizeof(d), s.cpu_us.median, 0),
                     fmt(e, sizeof(e), s.cpu_us_c.median, 0),
                     fmt(f, sizeof(f), s.cpu_us_s.median, 0));
            printf("%-10s %22s %24s %10s %8s %10s  >= %.0f: %s\n", MODES[m].name, rate, cpu,
                   fmt(b, sizeof(b), (double)cpus * 1e6 / s.cpu_us.median, 0),
                   fmt(g, sizeof(g), pair, 0), fmt(a, sizeof(a), ceil_conn, 0), HS_TARGET,
                   isnan(s.rate.median)         ? "unknown"
                   : s.rate.median >= HS_TARGET ? "pass"
                                                : "MISS");
            if (rt->hs_fail[m] > 0)
                printf("%-10s %u of %u rounds failed; last: %s\n", "", rt->hs_fail[m], o->rounds,
                       rt->hs_err[m]);
            if (rt->pair_err[m][0]) printf("%-10s in-memory pair: %s\n", "", rt->pair_err[m]);
        }
        printf("CPU ceil/s = %ld CPUs / CPU-us per connection (the rate if both processes had "
               "every CPU);\npair us: one in-memory handshake, initiator + responder, on one "
               "thread, through the host's\nsecurity vtable; crypto/s = %ld CPUs / (pair + 1 "
               "Ed25519 verify of the server's record in identify)\n",
               cpus, cpus);
        printf("primitives (us, one thread): X25519 key pair %s, X25519 DH %s, Ed25519 sign %s, "
               "verify %s;\nNoise XX per side = 2 key pairs + 3 DH + 1 sign + 1 verify = %s us\n",
               fmt(a, sizeof(a), kp.median, 1), fmt(b, sizeof(b), dh.median, 1),
               fmt(c, sizeof(c), sg.median, 1), fmt(d, sizeof(d), vf.median, 1),
               fmt(e, sizeof(e), 2 * kp.median + 3 * dh.median + sg.median + vf.median, 1));
    }
    if (o->streams) {
        rsum s = rsum_of(rt->st, rt->st_n);
        printf("\nstreams: open + close per second on one %s connection, %u in flight, %.1f s "
               "per round\n",
               o->streams_security, o->streams_inflight, o->streams_seconds);
        printf("  %s /s (%s-%s), CPU %s us per stream (client %s + server %s), CPU ceil %s /s"
               "  >= %.0f: %s\n",
               fmt(a, sizeof(a), s.rate.median, 0), fmt(b, sizeof(b), s.rate.min, 0),
               fmt(c, sizeof(c), s.rate.max, 0), fmt(d, sizeof(d), s.cpu_us.median, 2),
               fmt(e, sizeof(e), s.cpu_us_c.median, 2), fmt(f, sizeof(f), s.cpu_us_s.median, 2),
               fmt(g, sizeof(g), (double)cpus * 1e6 / s.cpu_us.median, 0), STREAMS_TARGET,
               isnan(s.rate.median)              ? "unknown"
               : s.rate.median >= STREAMS_TARGET ? "pass"
                                                 : "MISS");
        if (rt->st_fail > 0)
            printf("  %u of %u rounds failed; last: %s\n", rt->st_fail, o->rounds, rt->st_err);
    }
}

/* ---- JSON ------------------------------------------------------------------------------- */

static void json_stat(rp_bench_json *j, const char *key, rp_bench_stat s)
{
    rp_bench_json_stat(j, key, &s);
}

static void json_rate_rounds(rp_bench_json *j, const rp_rate_result *r, size_t n)
{
    rp_bench_json_begin(j, "rounds");
    for (size_t i = 0; i < n; i++) {
        char k[16];
        snprintf(k, sizeof(k), "%zu", i + 1);
        rp_bench_json_begin(j, k);
        rp_bench_json_num(j, "count", r[i].count);
        rp_bench_json_num(j, "seconds", r[i].seconds);
        rp_bench_json_num(j, "cpu_client_s", r[i].cpu_client);
        rp_bench_json_num(j, "cpu_server_s", r[i].cpu_server);
        rp_bench_json_num(j, "per_second", rp_rate_per_second(&r[i]));
        rp_bench_json_end(j);
    }
    rp_bench_json_end(j);
    rsum s = rsum_of(r, n);
    json_stat(j, "per_second", s.rate);
    json_stat(j, "cpu_us", s.cpu_us);
    json_stat(j, "cpu_us_client", s.cpu_us_c);
    json_stat(j, "cpu_us_server", s.cpu_us_s);
}

static int write_json(const opts *o, const char *cmd, const rp_bench_machine *mach, tcase *cases,
                      size_t nc, const tcase *base, const tcase *js, const rates *rt,
                      const ringp2p_ctx *rctx, const char *unavailable, double load0, double load1)
{
    rp_bench_json *j = malloc(sizeof(*j));
    if (j == NULL) return RINGP2P_ENOMEM;
    rp_bench_json_init(j);
    rp_bench_json_str(j, "bench", "perf_modes");
    rp_bench_json_str(j, "command", cmd);
    rp_bench_json_begin(j, "machine");
    rp_bench_json_int(j, "cpus", mach->cpus);
    rp_bench_json_str(j, "cpu_model", mach->cpu_model);
    rp_bench_json_str(j, "kernel", mach->kernel);
    rp_bench_json_end(j);
    rp_bench_json_int(j, "rounds", o->rounds);
    rp_bench_json_int(j, "size", (long long)o->size);
    rp_bench_json_int(j, "js_size", (long long)o->js_size);
    rp_bench_json_str(j, "placement", o->split && o->same ? "both" : o->split ? "split" : "same");
    rp_bench_json_str(j, "unavailable", unavailable);
    rp_bench_json_num(j, "loadavg_1min_start", load0);
    rp_bench_json_num(j, "loadavg_1min_end", load1);
    rp_bench_json_begin(j, "throughput");
    tsum bs = base != NULL ? tsum_of(&base->k) : (tsum){ 0 };
    tsum jss = js != NULL ? tsum_of(&js->k) : (tsum){ 0 };
    for (size_t i = 0; i < nc; i++) {
        const tcase *c = &cases[i];
        rp_bench_json_begin(j, c->k.name);
        rp_bench_json_str(j, "label", c->k.label);
        rp_bench_json_begin(j, "rounds");
        for (size_t r = 0; r < c->k.n; r++) {
            const rp_bench_sample *x = &c->k.samples[r];
            char k[16];
            snprintf(k, sizeof(k), "%zu", r + 1);
            rp_bench_json_begin(j, k);
            rp_bench_json_int(j, "bytes", isnan(x->bytes) ? -1 : (long long)x->bytes);
            rp_bench_json_num(j, "seconds", x->seconds);
            rp_bench_json_num(j, "mbps", x->bytes / x->seconds / 1e6);
            rp_bench_json_num(j, "cpu_client_s", x->cpu_send);
            rp_bench_json_num(j, "cpu_server_s", x->cpu_recv);
            rp_bench_json_num(j, "same_cpu", x->same_cpu);
            rp_bench_json_end(j);
        }
        rp_bench_json_end(j);
        tsum s = tsum_of(&c->k);
        json_stat(j, "mbps", s.mbps);
        json_stat(j, "cpu_s_per_gb_client", s.cpu_c);
        json_stat(j, "cpu_s_per_gb_server", s.cpu_s);
        json_stat(j, "cpu_s_per_gb", s.cpu_t);
        json_stat(j, "same_cpu_share", s.same);
        rp_bench_json_num(j, "projected_mbps", projected_mbps(&s));
        rp_bench_json_num(j, "projected_ratio_vs_iperf3",
                          base != NULL ? projected_mbps(&s) / projected_mbps(&bs) : NAN);
        rp_bench_json_num(j, "ratio_vs_iperf3",
                          base != NULL ? s.mbps.median / bs.mbps.median : NAN);
        rp_bench_json_num(j, "ratio_vs_js", js != NULL ? s.mbps.median / jss.mbps.median : NAN);
        if (base != NULL && c != base)
            rp_bench_json_num(j, "paired_ratio_vs_iperf3",
                              rp_bench_paired_ratio(&c->k, &base->k, 0));
        if (c->mode != NULL) {
            rp_bench_json_num(j, "target_vs_iperf3", c->mode->min_vs_iperf3);
            if (c->mode->min_vs_js > 0) rp_bench_json_num(j, "target_vs_js", c->mode->min_vs_js);
            rp_bench_json_num(j, "client_startup_cpu_s", rctx[c->mode - MODES].startup_cpu);
        }
        rp_bench_json_int(j, "failed_rounds", c->failures);
        if (c->failures > 0) rp_bench_json_str(j, "last_error", c->last_err);
        rp_bench_json_end(j);
    }
    rp_bench_json_end(j);
    if (rt->aead_n > 0) {
        rp_bench_json_begin(j, "aead_gbps_one_core");
        json_stat(j, "chacha20_poly1305_seal", aead_stat(rt, offsetof(rp_rate_aead, chacha_seal)));
        json_stat(j, "chacha20_poly1305_open", aead_stat(rt, offsetof(rp_rate_aead, chacha_open)));
        json_stat(j, "aes_256_gcm_seal", aead_stat(rt, offsetof(rp_rate_aead, gcm_seal)));
        json_stat(j, "aes_256_gcm_open", aead_stat(rt, offsetof(rp_rate_aead, gcm_open)));
        json_stat(j, "gmac_tag", aead_stat(rt, offsetof(rp_rate_aead, gmac_tag)));
        json_stat(j, "gmac_verify", aead_stat(rt, offsetof(rp_rate_aead, gmac_verify)));
        rp_bench_json_end(j);
    }
    if (o->handshakes) {
        rp_bench_json_begin(j, "handshakes");
        rp_bench_json_int(j, "per_round", o->hs_conns);
        rp_bench_json_int(j, "inflight", o->hs_inflight);
        rp_bench_json_num(j, "target_per_second", HS_TARGET);
        for (int m = 0; m < MODES_MAX; m++) {
            if (!o->modes[m]) continue;
            rp_bench_json_begin(j, MODES[m].name);
            if (!rt->avail[m]) {
                rp_bench_json_str(j, "unavailable", rt->why[m]);
            } else {
                json_rate_rounds(j, rt->hs[m], rt->hs_n[m]);
                json_stat(j, "pair_us", rp_bench_stat_of(rt->pair_us[m], rt->crypto_n));
                rp_bench_json_int(j, "failed_rounds", rt->hs_fail[m]);
            }
            rp_bench_json_end(j);
        }
        rp_bench_json_begin(j, "primitives_us");
        json_stat(j, "x25519_keypair",
                  prim_stat(rt, offsetof(rp_rate_primitives, x25519_keypair_us)));
        json_stat(j, "x25519_dh", prim_stat(rt, offsetof(rp_rate_primitives, x25519_dh_us)));
        json_stat(j, "ed25519_sign", prim_stat(rt, offsetof(rp_rate_primitives, ed25519_sign_us)));
        json_stat(j, "ed25519_verify",
                  prim_stat(rt, offsetof(rp_rate_primitives, ed25519_verify_us)));
        rp_bench_json_end(j);
        rp_bench_json_end(j);
    }
    if (o->streams) {
        rp_bench_json_begin(j, "streams");
        rp_bench_json_str(j, "security", o->streams_security);
        rp_bench_json_int(j, "inflight", o->streams_inflight);
        rp_bench_json_num(j, "seconds_per_round", o->streams_seconds);
        rp_bench_json_num(j, "target_per_second", STREAMS_TARGET);
        json_rate_rounds(j, rt->st, rt->st_n);
        rp_bench_json_int(j, "failed_rounds", rt->st_fail);
        rp_bench_json_end(j);
    }
    FILE *f = fopen(o->json_path, "w");
    int r = f == NULL ? RINGP2P_EIO : rp_bench_json_print(j, f);
    if (f != NULL && fclose(f) != 0) r = RINGP2P_EIO;
    free(j);
    return r;
}

/* ---- main ------------------------------------------------------------------------------- */

/* One round of every throughput contender; failures are recorded and the run goes on. */
static void throughput_round(const opts *o, tcase *cases, size_t nc, unsigned round)
{
    for (size_t i = 0; i < nc; i++) {
        tcase *c = &cases[i];
        rp_bench_sample s = rp_bench_sample_none();
        ringp2p_errinfo e = { 0 };
        int r = c->k.round(c->k.ctx, &s, &e);
        if (r < 0) {
            c->failures++;
            snprintf(c->last_err, sizeof(c->last_err), "%s",
                     e.code != 0 ? e.msg : ringp2p_strerror(r));
            s = rp_bench_sample_none();
            fprintf(stderr, "  round %u %s: FAILED: %s\n", round, c->k.name, c->last_err);
        }
        c->k.samples[c->k.n++] = s;
        if (o->verbose && r == 0)
            fprintf(stderr, "  round %u %-10s %8.0f MB/s  cpu %.3f + %.3f s\n", round, c->k.name,
                    s.bytes / s.seconds / 1e6, s.cpu_send, s.cpu_recv);
    }
}

static void rates_round(const opts *o, rates *rt, const rp_rate_server *srv, unsigned round)
{
    cpu_set_t cc;
    rp_bench_cpus_one(&cc, o->rate_cpu);
    if (o->throughput) {
        /* The AEADs' own speed, in the same round, on a client's CPU. */
        cpu_set_t saved;
        bool pinned = sched_getaffinity(0, sizeof(saved), &saved) == 0 &&
                      sched_setaffinity(0, sizeof(cc), &cc) == 0;
        rp_rate_measure_aead(o->crypto_seconds * 3, &rt->aead[rt->aead_n++]);
        if (pinned) sched_setaffinity(0, sizeof(saved), &saved);
    }
    if (o->handshakes) {
        for (int m = 0; m < MODES_MAX; m++) {
            if (!o->modes[m] || !rt->avail[m]) continue;
            rp_rate_config cfg = { .server = srv,
                                   .security = MODES[m].name,
                                   .count = o->hs_conns,
                                   .inflight = o->hs_inflight,
                                   .shards = 1,
                                   .cpus = &cc,
                                   .timeout = RATE_TIMEOUT };
            ringp2p_errinfo e = { 0 };
            rp_rate_result *res = &rt->hs[m][rt->hs_n[m]++];
            int r = rp_rate_handshakes(&cfg, res, &e);
            if (r < 0) {
                rt->hs_fail[m]++;
                snprintf(rt->hs_err[m], sizeof(rt->hs_err[m]), "%s",
                         e.code ? e.msg : ringp2p_strerror(r));
                fprintf(stderr, "  round %u handshakes %s: FAILED: %s\n", round, MODES[m].name,
                        rt->hs_err[m]);
            } else if (o->verbose) {
                fprintf(stderr, "  round %u handshakes %-9s %8.0f /s  cpu %.0f + %.0f us\n", round,
                        MODES[m].name, rp_rate_per_second(res), res->cpu_client / res->count * 1e6,
                        res->cpu_server / res->count * 1e6);
            }
        }
        /* The crypto ceiling, in the same round, on this (client) CPU. */
        cpu_set_t saved;
        bool pinned = sched_getaffinity(0, sizeof(saved), &saved) == 0 &&
                      sched_setaffinity(0, sizeof(cc), &cc) == 0;
        rp_rate_measure_primitives(o->crypto_seconds, &rt->prim[rt->crypto_n]);
        for (int m = 0; m < MODES_MAX; m++) {
            rt->pair_us[m][rt->crypto_n] = NAN;
            if (!o->modes[m]) continue;
            ringp2p_errinfo e = { 0 };
            if (rp_rate_handshake_pair_us(MODES[m].name, o->crypto_seconds,
                                          &rt->pair_us[m][rt->crypto_n], &e) < 0)
                snprintf(rt->pair_err[m], sizeof(rt->pair_err[m]), "%s", e.msg);
        }
        if (pinned) sched_setaffinity(0, sizeof(saved), &saved);
        rt->crypto_n++;
    }
    if (o->streams) {
        rp_rate_config cfg = { .server = srv,
                               .security = o->streams_security,
                               .seconds = o->streams_seconds,
                               .inflight = o->streams_inflight,
                               .shards = 1,
                               .cpus = &cc,
                               .timeout = RATE_TIMEOUT };
        ringp2p_errinfo e = { 0 };
        rp_rate_result *res = &rt->st[rt->st_n++];
        int r = rp_rate_streams(&cfg, res, &e);
        if (r < 0) {
            rt->st_fail++;
            snprintf(rt->st_err, sizeof(rt->st_err), "%s", e.code ? e.msg : ringp2p_strerror(r));
            fprintf(stderr, "  round %u streams: FAILED: %s\n", round, rt->st_err);
        } else if (o->verbose) {
            fprintf(stderr, "  round %u streams %8.0f /s  cpu %.2f + %.2f us\n", round,
                    rp_rate_per_second(res), res->cpu_client / res->count * 1e6,
                    res->cpu_server / res->count * 1e6);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--serve") == 0)
        return rp_rate_serve(argv[2], (unsigned)atoi(argv[3]));
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    opts o;
    parse_opts(argc, argv, &o);
    static char cmd[4096];
    rp_bench_command(argc, argv, cmd, sizeof(cmd));
    rp_bench_machine mach;
    rp_bench_machine_get(&mach);
    if (mach.cpus < 2) {
        o.same = o.same || o.split;
        o.split = false;
    }
    o.rate_cpu = mach.cpus >= 2 ? CPU_SPLIT : CPU_SERVER;
    printf("perf_modes: ringp2p security modes, iperf3 and js-libp2p, %u rounds interleaved\n",
           o.rounds);
    double load0 = loadavg();
    printf("machine: %ld CPUs, %s, Linux %s; load average (1 min) %.2f\n", mach.cpus,
           mach.cpu_model, mach.kernel, load0);
    printf("placement: listeners and servers on CPU 0; ringp2p clients on %s; iperf3 also "
           "scheduler placed; js scheduler placed\n",
           o.split && o.same ? "CPU 1 (split) and CPU 0 (same)"
           : o.split         ? "CPU 1 (split)"
                             : "CPU 0 (same)");
    fflush(stdout);

    static char unavailable[2048];
    size_t ul = 0;
    static ringp2p_ctx rctx[MODES_MAX];
    static ringp2p_case rcase[MODES_MAX][2];
    static js_ctx jctx;
    static tcase cases[CASES_MAX];
    size_t nc = 0;
    tcase *base = NULL, *js = NULL;
    cpu_set_t c_split, c_same;
    rp_bench_cpus_one(&c_split, CPU_SPLIT);
    rp_bench_cpus_one(&c_same, CPU_SERVER);
    iperf3_case ip = { .cfg = { .exe = o.iperf3, .bytes = o.size, .streams = 1 }, .same = NAN };
    iperf3_case ip_split = { .cfg = ip.cfg, .same = 0 }, ip_same = { .cfg = ip.cfg, .same = 1 };
    ip_split.cfg.client_cpus = &c_split;
    ip_split.cfg.server_cpus = &c_same;
    ip_same.cfg.client_cpus = &c_same;
    ip_same.cfg.server_cpus = &c_same;
    if (o.throughput) {
        ringp2p_errinfo e = { 0 };
        if (rp_bench_iperf3_check(&ip.cfg, &e) == 0) {
            base = &cases[nc++];
            *base = (tcase){ .k = { .name = "iperf3",
                                    .label = "iperf3 -N -l 256K, scheduler placed",
                                    .round = iperf3_round,
                                    .ctx = &ip },
                             .is_iperf3 = true };
            if (o.split)
                cases[nc++] = (tcase){ .k = { .name = "iperf3_split",
                                              .label = "iperf3, split (client CPU 1)",
                                              .round = iperf3_round,
                                              .ctx = &ip_split },
                                       .is_iperf3 = true };
            if (o.same)
                cases[nc++] = (tcase){ .k = { .name = "iperf3_same",
                                              .label = "iperf3, same (both CPU 0)",
                                              .round = iperf3_round,
                                              .ctx = &ip_same },
                                       .is_iperf3 = true };
        } else {
            ul +=
                (size_t)snprintf(unavailable + ul, sizeof(unavailable) - ul, "iperf3: %s; ", e.msg);
        }
        for (int m = 0; m < MODES_MAX; m++) {
            if (!o.modes[m]) continue;
            rctx[m].o = &o;
            rctx[m].mode = &MODES[m];
            memset(&e, 0, sizeof(e));
            if (ringp2p_setup(&rctx[m], &e) < 0) {
                ul += (size_t)snprintf(unavailable + ul, sizeof(unavailable) - ul,
                                       "ringp2p %s: %s; ", MODES[m].name, e.msg);
                rctx[m].l.pid = -1;
                continue;
            }
            for (int p = 0; p < 2; p++) {
                if (!(p == 0 ? o.split : o.same)) continue;
                ringp2p_case *rc = &rcase[m][p];
                rc->m = &rctx[m];
                rc->cpu = p == 0 ? CPU_SPLIT : CPU_SERVER;
                snprintf(rc->name, sizeof(rc->name), "%s_%s", MODES[m].name,
                         p == 0 ? "split" : "same");
                snprintf(rc->label, sizeof(rc->label), "ringp2p %s, %s", MODES[m].label,
                         p == 0 ? "split" : "same");
                cases[nc++] = (tcase){ .k = { .name = rc->name,
                                              .label = rc->label,
                                              .round = ringp2p_round,
                                              .ctx = rc },
                                       .mode = &MODES[m] };
            }
        }
        if (o.js) {
            jctx.o = &o;
            memset(&e, 0, sizeof(e));
            if (js_setup(&jctx, &e) < 0) {
                ul += (size_t)snprintf(unavailable + ul, sizeof(unavailable) - ul,
                                       "js-libp2p: %s; ", e.msg);
                jctx.l.pid = -1;
            } else {
                js = &cases[nc++];
                *js = (tcase){ .k = { .name = "js_libp2p",
                                      .label = "js-libp2p noise+yamux, sched. placed",
                                      .round = js_round,
                                      .ctx = &jctx },
                               .is_js = true };
            }
        }
    }
    static rates rt;
    rp_rate_server srv = { .pid = -1, .in_fd = -1 };
    if (o.handshakes || o.streams) {
        char list[128] = "";
        for (int m = 0; m < MODES_MAX; m++) {
            bool want =
                (o.handshakes && o.modes[m]) || strcmp(MODES[m].name, o.streams_security) == 0;
            if (!want) continue;
            ringp2p_errinfo e = { 0 };
            rt.avail[m] = rp_rate_security_available(MODES[m].name, &e) == 0;
            if (!rt.avail[m]) {
                snprintf(rt.why[m], sizeof(rt.why[m]), "%s", e.msg);
                continue;
            }
            size_t l = strlen(list);
            snprintf(list + l, sizeof(list) - l, "%s%s", l ? "," : "", MODES[m].name);
        }
        char exe[PATH_MAX], shards[16];
        self_exe(exe, sizeof(exe));
        snprintf(shards, sizeof(shards), "%u", o.hs_server_shards);
        const char *args[] = { "--serve", list, shards };
        ringp2p_errinfo e = { 0 };
        if (list[0] == '\0' || rp_rate_server_start(exe, args, 3, &c_same, &srv, &e) < 0) {
            fprintf(stderr, "perf_modes: no bench server: %s\n", list[0] ? e.msg : "no mode");
            o.handshakes = o.streams = false;
        }
    }
    if (unavailable[0]) printf("unavailable: %s\n", unavailable);
    fflush(stdout);

    for (unsigned r = 1; r <= o.rounds; r++) {
        if (o.verbose) fprintf(stderr, "round %u\n", r);
        throughput_round(&o, cases, nc, r);
        rates_round(&o, &rt, &srv, r);
    }

    double load1 = loadavg();
    printf("\nload average (1 min): %.2f at the start, %.2f at the end (other jobs share these "
           "CPUs)\n",
           load0, load1);
    if (o.throughput) print_throughput(&o, cases, nc, base, js, rctx, &rt);
    print_rates(&o, &rt, mach.cpus);
    printf("\nreproduce: %s\n", cmd);
    char ic_cmd[512];
    if (base != NULL) {
        rp_bench_iperf3_command(&ip.cfg, ic_cmd, sizeof(ic_cmd));
        printf("baseline:  %s\n", ic_cmd);
        if (o.split) {
            rp_bench_iperf3_command(&ip_split.cfg, ic_cmd, sizeof(ic_cmd));
            printf("           %s\n", ic_cmd);
        }
        if (o.same) {
            rp_bench_iperf3_command(&ip_same.cfg, ic_cmd, sizeof(ic_cmd));
            printf("           %s\n", ic_cmd);
        }
    }
    for (int m = 0; m < MODES_MAX; m++)
        if (rctx[m].l.pid > 0)
            printf("ringp2p:   taskset -c 0 %s listen --security %s --shards 1 --json & "
                   "taskset -c %s %s perf MADDR --upload %llu --json --security %s\n",
                   o.ringp2p, MODES[m].name,
                   o.split && o.same ? "1|0"
                   : o.split         ? "1"
                                     : "0",
                   o.ringp2p, o.size, MODES[m].name);
    if (js != NULL)
        printf(
            "js:        %s %s listen --security noise --muxer yamux & %s %s dial MADDR perf %llu "
            "0\n",
            o.node, o.js_peer, o.node, o.js_peer, o.js_size);
    int rc = 0;
    if (o.json_path != NULL) {
        if (write_json(&o, cmd, &mach, cases, nc, base, js, &rt, rctx, unavailable, load0, load1) <
            0) {
            fprintf(stderr, "perf_modes: cannot write %s\n", o.json_path);
            rc = 1;
        } else {
            printf("json:      %s\n", o.json_path);
        }
    }
    for (int m = 0; m < MODES_MAX; m++) listener_stop(&rctx[m].l);
    listener_stop(&jctx.l);
    rp_rate_server_stop(&srv);
    return rc;
}
