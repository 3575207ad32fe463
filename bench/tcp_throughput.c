/*
 * Loopback TCP throughput of the ringp2p runtime against iperf3, measured
 * side by side in one run.
 *
 *   build/bench/tcp_throughput [--mode single|many] [--seconds N] [--rounds N] [--conns N]
 *                              [--json] [--verbose] [--iperf3 PATH]
 *                              [--no-pin] [--high-watermark B] [--recv-buf-size B]
 *                              [--recv-buf-count N] [--features-off RP_FEAT_BITS]
 *
 * single: one TCP connection between two endpoints of one runtime with two
 *   shards, the sending end on one shard (one core) and the receiving end on
 *   the other, like iperf3's two processes. The sender keeps its send queue
 *   at the high watermark with references to one 256 KiB buffer (as iperf3
 *   -l 256K rewrites one buffer), so the datapath is measured, not memcpy;
 *   the receiver counts bytes. Baseline: iperf3 -N -l 256K, one stream.
 *
 * many: N connections (default 64) between the endpoints of a runtime with
 *   1 shard, then of one with 2 shards (dialed ends spread over the shards,
 *   accepted ends where the kernel and the runtime's balancing put them);
 *   every dialed end sends. Baselines: iperf3 -P N with both processes
 *   confined to the 1-shard runtime's CPU, and iperf3 -P N unconfined. The
 *   scaling figure is the 2-shard aggregate over the 1-shard one.
 *
 * Every case runs in rounds interleaved with its baseline and reports the
 * median, with CPU-seconds per GB of both ends (getrusage of this process
 * over the measured window; wait4 of the iperf3 processes).
 */
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "common/bench.h"
#include "runtime/conn.h"
#include "runtime/runtime.h"

#define PAYLOAD_SIZE    (256u * 1024) /* one reference; iperf3 -l 256K */
#define CONNS_MAX       128           /* iperf3 -P allows at most 128 streams */
#define CONNS_DEFAULT   64
#define SECONDS_DEFAULT 3
#define ROUNDS_DEFAULT  5
#define SECONDS_MAX     600
#define SHARDS_MAX      2
#define SETUP_TIMEOUT   10.0 /* seconds for connections to come up or go down */
#define DRAIN_TIMEOUT   10.0 /* seconds for in-flight bytes to arrive after a round */
#define DIAL_TRIES      16   /* single mode: dials until the ends land on different shards */
#define WAIT_SLICE_NS   1000000L
#define LINE_PAIR       128 /* adjacent-line prefetch moves lines in pairs */

/* Targets of the issue, for one connection. */
#define TARGET_RATIO_MIN     0.95
#define TARGET_CPU_RATIO_MAX 1.10

typedef struct tp tp;

/* One end of a connection. Fields are written on the end's shard; main reads the atomics. */
typedef struct tp_end {
    tp *t;
    rp_conn *c; /* runtime-owned, valid until on_close */
    unsigned shard;
    int close_err; /* on_close's, read by main after `closed` */
    atomic_bool up;
    atomic_bool closed;
    atomic_int dial_err;
} tp_end;

/*
 * Per-shard state, on lines of its own: the counters have one writer (the
 * shard) and are read by the main thread between rounds.
 */
typedef struct shard_ctx {
    alignas(LINE_PAIR) _Atomic uint64_t received; /* by receiving ends here */
    _Atomic uint64_t queued;                      /* bytes referenced by sending ends here */
    _Atomic uint64_t released;                    /* of those, bytes whose references came back */
    _Atomic uint64_t errors;                      /* failed rp_conn_send_ref */
    _Atomic uint64_t stops; /* stop tasks run: main waits for them before draining */
    atomic_bool clock_ready;
    clockid_t clock; /* the shard thread's CPU-time clock */
    pid_t tid;       /* the shard thread */
    int cpu;         /* the one CPU it is pinned to, or -1 */
    tp *t;
    unsigned id;
    bool sending; /* shard-local */
    alignas(LINE_PAIR) char end_pad;
} shard_ctx;

/* Runtime settings the command line may change; zero fields keep the runtime's defaults. */
typedef struct tuning {
    bool pin;
    size_t high_watermark;
    unsigned recv_buf_size;
    unsigned recv_buf_count;
    unsigned features_off;
} tuning;

/* One runtime and the connections between its endpoints. */
struct tp {
    rp_runtime *rt;
    unsigned nshards;
    unsigned nconns;
    const uint8_t *payload; /* PAYLOAD_SIZE bytes, read-only while the runtime runs */
    rp_listener *ln;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    double seconds;
    atomic_uint naccepted;
    shard_ctx *sh;              /* nshards of them */
    tp_end dialed[CONNS_MAX];   /* senders */
    tp_end accepted[CONNS_MAX]; /* receivers */
};

static void bump(_Atomic uint64_t *a, uint64_t d)
{
    /* Single writer: a plain read-add-store, no locked instruction. */
    atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

static uint64_t get(_Atomic uint64_t *a)
{
    return atomic_load_explicit(a, memory_order_acquire);
}

/* ---- on the shards ------------------------------------------------------------------------ */

/* Called by the runtime on the sending shard when the kernel is done with a reference. */
static void on_release(void *arg, const void *data, size_t len)
{
    bump(&((shard_ctx *)arg)->released, len);
}

/* Tops the send queue up to the high watermark with references to the one payload. */
static void fill(tp_end *e)
{
    shard_ctx *s = &e->t->sh[e->shard];
    while (s->sending && rp_conn_writable(e->c)) {
        if (rp_conn_send_ref(e->c, e->t->payload, PAYLOAD_SIZE, on_release, s) < 0) {
            bump(&s->errors, 1);
            return;
        }
        bump(&s->queued, PAYLOAD_SIZE);
    }
}

static void on_data(rp_conn *c, void *arg, rp_rbuf *buf, const uint8_t *data, size_t len)
{
    tp_end *e = arg;
    /* Bytes at a sending end would be a bug: counted here, they break the drain check. */
    bump(&e->t->sh[e->shard].received, len);
}

static void on_writable(rp_conn *c, void *arg)
{
    fill(arg);
}

static void on_close(rp_conn *c, void *arg, int err)
{
    tp_end *e = arg;
    e->close_err = err;
    e->c = NULL;
    atomic_store_explicit(&e->closed, true, memory_order_release);
}

static const rp_conn_cbs end_cbs = {
    .on_data = on_data,
    .on_eof = NULL,
    .on_writable = on_writable,
    .on_close = on_close,
};

static void adopt(tp_end *e, rp_shard *sh, rp_conn *c)
{
    e->c = c;
    e->shard = rp_shard_id(sh);
    rp_conn_set_cbs(c, &end_cbs, e);
    atomic_store_explicit(&e->up, true, memory_order_release);
}

static void on_accept(rp_shard *sh, void *arg, rp_conn *c)
{
    tp *t = arg;
    unsigned i = atomic_fetch_add(&t->naccepted, 1);
    if (i >= t->nconns) {
        rp_conn_abort(c); /* not ours: someone else found the port */
        return;
    }
    t->accepted[i].t = t;
    adopt(&t->accepted[i], sh, c);
}

static void on_dialed(rp_shard *sh, void *arg, rp_conn *c, int err)
{
    tp_end *e = arg;
    if (err < 0) {
        atomic_store_explicit(&e->dial_err, err, memory_order_release);
        return;
    }
    adopt(e, sh, c);
}

static void dial_task(rp_shard *sh, void *arg)
{
    tp_end *e = arg;
    int rc = rp_dial(sh, (const struct sockaddr *)&e->t->addr, e->t->addrlen, NULL, on_dialed, e);
    if (rc < 0) atomic_store_explicit(&e->dial_err, rc, memory_order_release);
}

/* Learns the shard thread's identity: its CPU clock, tid and pinned CPU. */
static void clock_task(rp_shard *sh, void *arg)
{
    shard_ctx *s = arg;
    cpu_set_t set;
    s->tid = gettid();
    s->cpu = -1;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) == 1)
        for (int c = 0; c < CPU_SETSIZE; c++)
            if (CPU_ISSET(c, &set)) s->cpu = c;
    if (pthread_getcpuclockid(pthread_self(), &s->clock) == 0)
        atomic_store_explicit(&s->clock_ready, true, memory_order_release);
}

static void start_task(rp_shard *sh, void *arg)
{
    shard_ctx *s = arg;
    s->sending = true;
    for (unsigned i = 0; i < s->t->nconns; i++) {
        tp_end *e = &s->t->dialed[i];
        if (e->shard == s->id && e->c != NULL) fill(e);
    }
}

static void stop_task(rp_shard *sh, void *arg)
{
    shard_ctx *s = arg;
    s->sending = false;
    bump(&s->stops, 1);
}

static void abort_task(rp_shard *sh, void *arg)
{
    tp_end *e = arg;
    if (e->c != NULL) rp_conn_abort(e->c);
}

/* ---- on the main thread ------------------------------------------------------------------- */

static void nap(void)
{
    struct timespec ts = { 0, WAIT_SLICE_NS };
    nanosleep(&ts, NULL);
}

/* rp_runtime_post, retried while the shard's inbox is full. */
static int post(tp *t, unsigned shard, rp_task_fn fn, void *arg)
{
    for (;;) {
        int rc = rp_runtime_post(t->rt, shard, fn, arg);
        if (rc != RINGP2P_EAGAIN) return rc;
        nap();
    }
}

static uint64_t total(tp *t, size_t field)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < t->nshards; i++)
        sum += get((_Atomic uint64_t *)((char *)&t->sh[i] + field));
    return sum;
}

#define TOTAL(t, f) total((t), offsetof(shard_ctx, f))

/* How many ends have closed; *err gets the close code of one of them. */
static int ends_closed(tp *t, int *err)
{
    int n = 0;
    for (unsigned i = 0; i < 2 * t->nconns; i++) {
        tp_end *e = i < t->nconns ? &t->dialed[i] : &t->accepted[i - t->nconns];
        if (atomic_load_explicit(&e->closed, memory_order_acquire)) {
            n++;
            *err = e->close_err;
        }
    }
    return n;
}

/* Dials connection i from shard `from` and waits for both of its ends. */
static int connect_one(tp *t, unsigned i, unsigned from, ringp2p_errinfo *ei)
{
    tp_end *d = &t->dialed[i];
    *d = (tp_end){ .t = t };
    int rc = post(t, from, dial_task, d);
    if (rc < 0) return rp_err(ei, rc, "posting a dial: %s", ringp2p_strerror(rc));
    return 0;
}

/* Waits until connections [0, n) have both ends up, or one failed. */
static int wait_up(tp *t, unsigned n, ringp2p_errinfo *ei)
{
    double deadline = rp_bench_now() + SETUP_TIMEOUT;
    for (;;) {
        unsigned up = 0;
        for (unsigned i = 0; i < n; i++) {
            int err = atomic_load_explicit(&t->dialed[i].dial_err, memory_order_acquire);
            if (err < 0) return rp_err(ei, err, "dial to 127.0.0.1: %s", ringp2p_strerror(err));
            up += atomic_load_explicit(&t->dialed[i].up, memory_order_acquire) &&
                  atomic_load_explicit(&t->accepted[i].up, memory_order_acquire);
        }
        if (up == n && atomic_load(&t->naccepted) >= n) return 0;
        if (rp_bench_now() > deadline)
            return rp_err(ei, RINGP2P_ETIMEDOUT, "%u of %u connections up after %.0f s", up, n,
                          SETUP_TIMEOUT);
        nap();
    }
}

/* The runtime's own counters per shard, for --verbose: where a loss of throughput shows. */
static void print_stats(const tp *t, const char *name, FILE *f)
{
    for (unsigned i = 0; i < t->nshards; i++) {
        rp_shard_stats st;
        rp_runtime_shard_stats(t->rt, i, &st);
        fprintf(f,
                "  %s shard %u: loops %llu sleeps %llu sends %llu sends_zc %llu zc_copied %llu "
                "short_sends %llu recv_cqes %llu enobufs %llu bytes_out %llu bytes_in %llu "
                "msgs_in %llu conns_open %llu accepts %llu handoffs_out %llu handoffs_in %llu\n",
                name, i, (unsigned long long)st.loops, (unsigned long long)st.sleeps,
                (unsigned long long)st.sends, (unsigned long long)st.sends_zc,
                (unsigned long long)st.zc_copied, (unsigned long long)st.short_sends,
                (unsigned long long)st.recv_cqes, (unsigned long long)st.enobufs,
                (unsigned long long)st.bytes_out, (unsigned long long)st.bytes_in,
                (unsigned long long)st.msgs_in, (unsigned long long)st.conns_open,
                (unsigned long long)st.accepts, (unsigned long long)st.handoffs_out,
                (unsigned long long)st.handoffs_in);
    }
}

static void tp_free(tp *t)
{
    if (t == NULL) return;
    rp_runtime_free(t->rt); /* closes the connections; every reference is released */
    free(t->sh);
    free(t);
}

/*
 * Starts a runtime of `nshards` and connects `nconns` pairs of its endpoints
 * over 127.0.0.1. Single mode (`split`): one connection whose ends must sit
 * on different shards; dials alternate their shard until the accepted end
 * lands on the other one.
 */
static int tp_new(unsigned nshards, unsigned nconns, const tuning *tu, bool split,
                  const uint8_t *payload, double seconds, tp **out, ringp2p_errinfo *ei)
{
    tp *t = calloc(1, sizeof(*t));
    if (t == NULL) return rp_err(ei, RINGP2P_ENOMEM, NULL);
    t->sh = aligned_alloc(alignof(shard_ctx), nshards * sizeof(shard_ctx));
    if (t->sh == NULL) {
        free(t);
        return rp_err(ei, RINGP2P_ENOMEM, NULL);
    }
    memset(t->sh, 0, nshards * sizeof(shard_ctx));
    t->nshards = nshards;
    t->nconns = nconns;
    t->payload = payload;
    t->seconds = seconds;
    for (unsigned i = 0; i < nshards; i++) {
        t->sh[i].t = t;
        t->sh[i].id = i;
    }

    rp_runtime_config cfg;
    rp_runtime_config_default(&cfg);
    cfg.nshards = nshards;
    cfg.pin = tu->pin;
    if (tu->high_watermark != 0) {
        cfg.high_watermark = tu->high_watermark;
        cfg.low_watermark = tu->high_watermark / 4; /* the defaults' proportion */
    }
    cfg.recv_buf_size = tu->recv_buf_size;
    cfg.recv_buf_count = tu->recv_buf_count;
    cfg.features_off = tu->features_off;
    int rc = rp_runtime_new(&cfg, &t->rt, ei);
    if (rc < 0) goto fail;
    for (unsigned i = 0; i < nshards; i++) {
        rc = post(t, i, clock_task, &t->sh[i]);
        if (rc < 0) goto fail;
    }

    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    rc = rp_listen(t->rt, (struct sockaddr *)&sa, sizeof(sa), NULL, on_accept, t, &t->ln, ei);
    if (rc < 0) goto fail;
    rp_listener_addr(t->ln, &t->addr, &t->addrlen);

    if (!split) {
        for (unsigned i = 0; i < nconns && rc == 0; i++) rc = connect_one(t, i, i % nshards, ei);
        if (rc == 0) rc = wait_up(t, nconns, ei);
        if (rc < 0) goto fail;
    } else {
        for (unsigned k = 0;; k++) {
            if (k == DIAL_TRIES) {
                rc = rp_err(ei, RINGP2P_EIO,
                            "%u dials all landed both ends on one shard; cannot split them",
                            DIAL_TRIES);
                goto fail;
            }
            atomic_store(&t->naccepted, 0);
            t->accepted[0] = (tp_end){ .t = t };
            if ((rc = connect_one(t, 0, k % nshards, ei)) < 0) goto fail;
            if ((rc = wait_up(t, 1, ei)) < 0) goto fail;
            if (t->dialed[0].shard != t->accepted[0].shard) break;
            /* Same shard: reset both ends and wait until the runtime is done with them. */
            post(t, t->dialed[0].shard, abort_task, &t->dialed[0]);
            post(t, t->accepted[0].shard, abort_task, &t->accepted[0]);
            double deadline = rp_bench_now() + SETUP_TIMEOUT;
            int err;
            while (ends_closed(t, &err) < 2) {
                if (rp_bench_now() > deadline) {
                    rc = rp_err(ei, RINGP2P_ETIMEDOUT, "an aborted connection did not close");
                    goto fail;
                }
                nap();
            }
        }
    }
    /* The listener has done its job; a stray connection must not join the measurement. */
    rp_listener_close(t->ln);

    double deadline = rp_bench_now() + SETUP_TIMEOUT;
    for (unsigned i = 0; i < nshards; i++) {
        while (!atomic_load_explicit(&t->sh[i].clock_ready, memory_order_acquire)) {
            if (rp_bench_now() > deadline) {
                rc = rp_err(ei, RINGP2P_ETIMEDOUT, "shard %u did not run a posted task", i);
                goto fail;
            }
            nap();
        }
    }
    *out = t;
    return 0;
fail:
    tp_free(t);
    return rc;
}

static void sleep_until(double when)
{
    struct timespec ts;
    double whole = floor(when);
    ts.tv_sec = (time_t)whole;
    ts.tv_nsec = (long)((when - whole) * 1e9);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* Sleeps until `end`, sampling every RP_BENCH_SAMPLE_MS whether the threads a and b share a CPU. */
static double sample_until(double end, pid_t a, pid_t b)
{
    rp_bench_colo colo = { 0, 0 };
    for (;;) {
        double next = rp_bench_now() + RP_BENCH_SAMPLE_MS * 1e-3;
        if (next >= end) break;
        sleep_until(next);
        rp_bench_colo_sample(&colo, a, b);
    }
    sleep_until(end);
    return rp_bench_colo_share(&colo);
}

/*
 * One round: every sending end fills its queue for `seconds`; the bytes the
 * receiving ends got in that window are the result. Then sending stops and
 * the round waits until every referenced byte has arrived, so the next case
 * runs on a quiet machine and a lost or duplicated byte fails the run.
 */
static int tp_round(void *ctx, rp_bench_sample *out, ringp2p_errinfo *ei)
{
    tp *t = ctx;
    double c0[SHARDS_MAX], c1[SHARDS_MAX];
    uint64_t r0 = TOTAL(t, received);
    double cpu0 = rp_bench_self_cpu();
    for (unsigned i = 0; i < t->nshards; i++) c0[i] = rp_bench_clock_cpu(t->sh[i].clock);
    double t0 = rp_bench_now();
    int rc = 0;
    for (unsigned i = 0; i < t->nshards && rc == 0; i++) rc = post(t, i, start_task, &t->sh[i]);
    /* With one connection, where its two ends ran (they are two threads, or one). */
    double same = NAN;
    if (rc == 0 && t->nconns == 1)
        same = sample_until(t0 + t->seconds, t->sh[t->dialed[0].shard].tid,
                            t->sh[t->accepted[0].shard].tid);
    else if (rc == 0)
        sleep_until(t0 + t->seconds);
    double t1 = rp_bench_now();
    uint64_t r1 = TOTAL(t, received), stops = TOTAL(t, stops);
    double cpu1 = rp_bench_self_cpu();
    for (unsigned i = 0; i < t->nshards; i++) c1[i] = rp_bench_clock_cpu(t->sh[i].clock);
    for (unsigned i = 0; i < t->nshards; i++) {
        int r = post(t, i, stop_task, &t->sh[i]);
        if (rc == 0) rc = r;
    }
    if (rc < 0) return rp_err(ei, rc, "posting to a shard: %s", ringp2p_strerror(rc));

    /* Quiet once every shard has stopped and every queued byte has arrived and come back. */
    double deadline = rp_bench_now() + DRAIN_TIMEOUT;
    for (;;) {
        int err = 0;
        if (ends_closed(t, &err) != 0)
            return rp_err(ei, RINGP2P_ECLOSED, "a connection closed during the round (%s)",
                          ringp2p_strerror(err));
        if (TOTAL(t, errors) != 0) return rp_err(ei, RINGP2P_EIO, "rp_conn_send_ref failed");
        /* Received first: bytes are queued before they arrive, so received <= queued holds. */
        uint64_t r = TOTAL(t, received), q = TOTAL(t, queued), rel = TOTAL(t, released);
        if (r > q)
            return rp_err(ei, RINGP2P_EIO, "received %llu bytes, sent only %llu",
                          (unsigned long long)r, (unsigned long long)q);
        if (TOTAL(t, stops) == stops + t->nshards && r == q && rel == q) break;
        if (rp_bench_now() > deadline)
            return rp_err(ei, RINGP2P_ETIMEDOUT,
                          "%.0f s after the round, %llu of %llu sent bytes received, %llu released",
                          DRAIN_TIMEOUT, (unsigned long long)r, (unsigned long long)q,
                          (unsigned long long)rel);
        nap();
    }

    out->bytes = (double)(r1 - r0);
    out->seconds = t1 - t0;
    out->cpu = cpu1 - cpu0;
    if (t->nconns == 1 && t->dialed[0].shard != t->accepted[0].shard) {
        unsigned s = t->dialed[0].shard, r = t->accepted[0].shard;
        out->cpu_send = c1[s] - c0[s];
        out->cpu_recv = c1[r] - c0[r];
    }
    out->same_cpu = same;
    return 0;
}

/* ---- command line and report -------------------------------------------------------------- */

typedef struct opts {
    bool many, json, verbose;
    tuning rt;
    unsigned seconds, rounds, conns;
    const char *iperf3;
} opts;

static void usage(void)
{
    fprintf(stderr, "usage: tcp_throughput [--mode single|many] [--seconds N] [--rounds N] "
                    "[--conns N] [--json] [--verbose] [--iperf3 PATH]\n"
                    "       runtime settings: [--no-pin] [--high-watermark BYTES] "
                    "[--recv-buf-size BYTES] [--recv-buf-count N]\n"
                    "                         [--features-off RP_FEAT_BITS]\n");
    exit(2);
}

static unsigned parse_uint(const char *s, unsigned lo, unsigned hi)
{
    char *endp;
    errno = 0;
    unsigned long v = strtoul(s, &endp, 10);
    if (errno != 0 || *endp != '\0' || *s == '\0' || v < lo || v > hi) usage();
    return (unsigned)v;
}

static void parse_args(int argc, char **argv, opts *o)
{
    *o = (opts){ .rt.pin = true,
                 .seconds = SECONDS_DEFAULT,
                 .rounds = ROUNDS_DEFAULT,
                 .conns = CONNS_DEFAULT,
                 .iperf3 = "iperf3" };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(a, "--json") == 0)
            o->json = true;
        else if (strcmp(a, "--verbose") == 0)
            o->verbose = true;
        else if (strcmp(a, "--no-pin") == 0)
            o->rt.pin = false;
        else if (strcmp(a, "--mode") == 0 && has) {
            const char *m = argv[++i];
            if (strcmp(m, "single") == 0)
                o->many = false;
            else if (strcmp(m, "many") == 0)
                o->many = true;
            else
                usage();
        } else if (strcmp(a, "--seconds") == 0 && has)
            o->seconds = parse_uint(argv[++i], 1, SECONDS_MAX);
        else if (strcmp(a, "--rounds") == 0 && has)
            o->rounds = parse_uint(argv[++i], 1, RP_BENCH_ROUNDS_MAX);
        else if (strcmp(a, "--conns") == 0 && has)
            o->conns = parse_uint(argv[++i], 1, CONNS_MAX);
        else if (strcmp(a, "--high-watermark") == 0 && has)
            o->rt.high_watermark = parse_uint(argv[++i], 4096, 1u << 30);
        else if (strcmp(a, "--recv-buf-size") == 0 && has)
            o->rt.recv_buf_size = parse_uint(argv[++i], 4096, 1u << 24);
        else if (strcmp(a, "--recv-buf-count") == 0 && has) {
            o->rt.recv_buf_count = parse_uint(argv[++i], 1, 32768);
            if (o->rt.recv_buf_count & (o->rt.recv_buf_count - 1)) usage();
        } else if (strcmp(a, "--features-off") == 0 && has)
            o->rt.features_off = parse_uint(argv[++i], 0, 0xffff);
        else if (strcmp(a, "--iperf3") == 0 && has)
            o->iperf3 = argv[++i];
        else
            usage();
    }
}

/* The command line with every option spelled out, so it reproduces this run whatever the defaults.
 */
static void effective_command(const char *argv0, const opts *o, char *dst, size_t cap)
{
    char secs[16], rounds[16], conns[16];
    snprintf(secs, sizeof(secs), "%u", o->seconds);
    snprintf(rounds, sizeof(rounds), "%u", o->rounds);
    snprintf(conns, sizeof(conns), "%u", o->conns);
    char *av[24];
    int n = 0;
    av[n++] = (char *)(uintptr_t)argv0;
    av[n++] = "--mode";
    av[n++] = o->many ? "many" : "single";
    av[n++] = "--seconds";
    av[n++] = secs;
    av[n++] = "--rounds";
    av[n++] = rounds;
    if (o->many) {
        av[n++] = "--conns";
        av[n++] = conns;
    }
    if (!o->rt.pin) av[n++] = "--no-pin";
    char hw[24], rb[24], rc[24], fo[24];
    if (o->rt.high_watermark != 0) {
        snprintf(hw, sizeof(hw), "%zu", o->rt.high_watermark);
        av[n++] = "--high-watermark";
        av[n++] = hw;
    }
    if (o->rt.recv_buf_size != 0) {
        snprintf(rb, sizeof(rb), "%u", o->rt.recv_buf_size);
        av[n++] = "--recv-buf-size";
        av[n++] = rb;
    }
    if (o->rt.recv_buf_count != 0) {
        snprintf(rc, sizeof(rc), "%u", o->rt.recv_buf_count);
        av[n++] = "--recv-buf-count";
        av[n++] = rc;
    }
    if (o->rt.features_off != 0) {
        snprintf(fo, sizeof(fo), "%u", o->rt.features_off);
        av[n++] = "--features-off";
        av[n++] = fo;
    }
    if (strcmp(o->iperf3, "iperf3") != 0) {
        av[n++] = "--iperf3";
        av[n++] = (char *)(uintptr_t)o->iperf3;
    }
    if (o->json) av[n++] = "--json";
    rp_bench_command(n, av, dst, cap);
}

static void json_head(rp_bench_json *j, const opts *o, const char *cmd, bool ok)
{
    rp_bench_machine m;
    rp_bench_machine_get(&m);
    rp_bench_json_init(j);
    rp_bench_json_str(j, "bench", "tcp_throughput");
    rp_bench_json_str(j, "mode", o->many ? "many" : "single");
    rp_bench_json_bool(j, "ok", ok);
    rp_bench_json_int(j, "seconds", o->seconds);
    rp_bench_json_int(j, "rounds", o->rounds);
    rp_bench_json_str(j, "command", cmd);
    rp_bench_json_begin(j, "machine");
    rp_bench_json_int(j, "cpus", m.cpus);
    rp_bench_json_str(j, "cpu_model", m.cpu_model);
    rp_bench_json_str(j, "kernel", m.kernel);
    rp_bench_json_end(j);
}

static void print_machine(void)
{
    rp_bench_machine m;
    rp_bench_machine_get(&m);
    printf("machine: %ld CPUs, %s, Linux %s\n", m.cpus, m.cpu_model, m.kernel);
}

/* The CPU shard `i` of `t` is pinned to, else the n-th CPU we may run on (n = i). */
static int cpu_of(const tp *t, unsigned i)
{
    if (t->sh[i].cpu >= 0) return t->sh[i].cpu;
    cpu_set_t all;
    if (sched_getaffinity(0, sizeof(all), &all) != 0) return (int)i;
    for (int c = 0, n = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &all) && n++ == (int)i) return c;
    return (int)i;
}

static void one_cpu(cpu_set_t *set, int cpu)
{
    CPU_ZERO(set);
    CPU_SET(cpu, set);
}

/*
 * Single mode. The comparison is ringp2p with its ends on two shards
 * (two cores) against iperf3 placed by the scheduler. On loopback the
 * scheduler tends to put iperf3's two processes on one CPU (wake-affine),
 * where the receiver copies cache-hot data; so the same run also measures
 * each placement on both sides: ends on two given CPUs, and both ends on one.
 */
enum { S_RP, S_IP, S_IP_SPLIT, S_RP_ONE, S_IP_ONE, S_N };

static int run_single(const opts *o, const uint8_t *payload, const char *cmd, ringp2p_errinfo *ei)
{
    tp *t = NULL, *t1 = NULL;
    int rc = tp_new(2, 1, &o->rt, true, payload, o->seconds, &t, ei);
    if (rc == 0) rc = tp_new(1, 1, &o->rt, false, payload, o->seconds, &t1, ei);
    if (rc < 0) {
        tp_free(t);
        return rc;
    }
    int cs = cpu_of(t, t->dialed[0].shard), cr = cpu_of(t, t->accepted[0].shard),
        c1 = cpu_of(t1, 0);
    cpu_set_t send_set, recv_set, one_set;
    one_cpu(&send_set, cs);
    one_cpu(&recv_set, cr);
    one_cpu(&one_set, c1);
    rp_bench_iperf3 ip = { .exe = o->iperf3, .seconds = o->seconds, .streams = 1 };
    rp_bench_iperf3 ip_split = ip, ip_one = ip;
    ip_split.client_cpus = &send_set;
    ip_split.server_cpus = &recv_set;
    ip_one.client_cpus = ip_one.server_cpus = &one_set;

    char l_rp[64], l_split[64], l_rp1[64], l_ip1[64];
    bool pinned = t->sh[0].cpu >= 0 && t1->sh[0].cpu >= 0;
    if (pinned) {
        snprintf(l_rp, sizeof(l_rp), "ringp2p, 2 shards, CPU %d -> %d", cs, cr);
        snprintf(l_rp1, sizeof(l_rp1), "ringp2p, 1 shard (both ends), CPU %d", c1);
    } else {
        snprintf(l_rp, sizeof(l_rp), "ringp2p, 2 shards, unpinned");
        snprintf(l_rp1, sizeof(l_rp1), "ringp2p, 1 shard (both ends), unpinned");
    }
    snprintf(l_split, sizeof(l_split), "iperf3, taskset CPU %d -> %d", cs, cr);
    snprintf(l_ip1, sizeof(l_ip1), "iperf3, both taskset to CPU %d", c1);
    rp_bench_case cases[S_N];
    cases[S_RP] = (rp_bench_case){ .name = "ringp2p", .label = l_rp, .round = tp_round, .ctx = t };
    cases[S_IP] = (rp_bench_case){ .name = "iperf3",
                                   .label = "iperf3 -N -l 256K, scheduler placed",
                                   .round = rp_bench_iperf3_round,
                                   .ctx = &ip };
    cases[S_IP_SPLIT] = (rp_bench_case){
        .name = "iperf3_split", .label = l_split, .round = rp_bench_iperf3_round, .ctx = &ip_split
    };
    cases[S_RP_ONE] =
        (rp_bench_case){ .name = "ringp2p_one_cpu", .label = l_rp1, .round = tp_round, .ctx = t1 };
    cases[S_IP_ONE] = (rp_bench_case){
        .name = "iperf3_one_cpu", .label = l_ip1, .round = rp_bench_iperf3_round, .ctx = &ip_one
    };
    if (!o->json) {
        printf("tcp_throughput: one loopback TCP connection, %u rounds x %u s, cases interleaved; "
               "medians\n",
               o->rounds, o->seconds);
        printf("ringp2p: runtime%s, send_ref of one %u KiB buffer, receiver counts bytes, "
               "features 0x%x\n",
               o->rt.pin ? " (shards pinned)" : "", PAYLOAD_SIZE / 1024,
               rp_runtime_features(t->rt));
        print_machine();
        fflush(stdout);
    }
    rc = rp_bench_interleave(cases, S_N, o->rounds, o->verbose ? stderr : NULL, ei);
    if (o->verbose) {
        print_stats(t, "2-shard", stderr);
        print_stats(t1, "1-shard", stderr);
    }
    unsigned features = rp_runtime_features(t->rt);
    tp_free(t);
    tp_free(t1);
    if (rc < 0) return rc;

    rp_bench_summary s[S_N];
    for (int i = 0; i < S_N; i++) s[i] = rp_bench_summarize(&cases[i]);
    double r = s[S_RP].gbps.median / s[S_IP].gbps.median;
    double cpur = s[S_RP].cpu_per_gb.median / s[S_IP].cpu_per_gb.median;
    double r_split = s[S_RP].gbps.median / s[S_IP_SPLIT].gbps.median;
    double cpur_split = s[S_RP].cpu_per_gb.median / s[S_IP_SPLIT].cpu_per_gb.median;
    double r_one = s[S_RP_ONE].gbps.median / s[S_IP_ONE].gbps.median;
    double cpur_one = s[S_RP_ONE].cpu_per_gb.median / s[S_IP_ONE].cpu_per_gb.median;
    bool met = r >= TARGET_RATIO_MIN && cpur <= TARGET_CPU_RATIO_MAX;
    char c_ip[256], c_split[256], c_one[256];
    rp_bench_iperf3_command(&ip, c_ip, sizeof(c_ip));
    rp_bench_iperf3_command(&ip_split, c_split, sizeof(c_split));
    rp_bench_iperf3_command(&ip_one, c_one, sizeof(c_one));
    if (o->json) {
        rp_bench_json j;
        json_head(&j, o, cmd, true);
        rp_bench_json_int(&j, "runtime_features", features);
        rp_bench_json_bool(&j, "shards_pinned", pinned);
        rp_bench_json_str(&j, "iperf3_command", c_ip);
        rp_bench_json_str(&j, "iperf3_split_command", c_split);
        rp_bench_json_str(&j, "iperf3_one_cpu_command", c_one);
        for (int i = 0; i < S_N; i++) rp_bench_json_summary(&j, cases[i].name, &s[i]);
        rp_bench_json_num(&j, "ratio_vs_iperf3", r);
        rp_bench_json_num(&j, "cpu_ratio_vs_iperf3", cpur);
        rp_bench_json_num(&j, "paired_ratio_vs_iperf3",
                          rp_bench_paired_ratio(&cases[S_RP], &cases[S_IP], 0));
        rp_bench_json_num(&j, "paired_cpu_ratio_vs_iperf3",
                          rp_bench_paired_ratio(&cases[S_RP], &cases[S_IP], 1));
        rp_bench_json_num(&j, "ratio_vs_iperf3_split", r_split);
        rp_bench_json_num(&j, "cpu_ratio_vs_iperf3_split", cpur_split);
        rp_bench_json_num(&j, "ratio_one_cpu_vs_iperf3_one_cpu", r_one);
        rp_bench_json_num(&j, "cpu_ratio_one_cpu_vs_iperf3_one_cpu", cpur_one);
        rp_bench_json_num(&j, "target_ratio_min", TARGET_RATIO_MIN);
        rp_bench_json_num(&j, "target_cpu_ratio_max", TARGET_CPU_RATIO_MAX);
        rp_bench_json_bool(&j, "target_met", met);
        return rp_bench_json_print(&j, stdout);
    }
    rp_bench_table_header(stdout);
    printf(
        "-- the issue's comparison: ringp2p on two cores vs iperf3 where the scheduler puts it\n");
    rp_bench_table_row(stdout, cases[S_RP].label, &s[S_RP], &s[S_IP]);
    rp_bench_table_row(stdout, cases[S_IP].label, &s[S_IP], NULL);
    printf(pinned ? "-- same placement on both sides: two given cores\n"
                  : "-- iperf3 on two given cores (ringp2p unpinned: placements differ)\n");
    rp_bench_table_row(stdout, cases[S_RP].label, &s[S_RP], &s[S_IP_SPLIT]);
    rp_bench_table_row(stdout, cases[S_IP_SPLIT].label, &s[S_IP_SPLIT], NULL);
    printf(pinned ? "-- same placement on both sides: one core\n"
                  : "-- iperf3 on one given core (ringp2p unpinned: placements differ)\n");
    rp_bench_table_row(stdout, cases[S_RP_ONE].label, &s[S_RP_ONE], &s[S_IP_ONE]);
    rp_bench_table_row(stdout, cases[S_IP_ONE].label, &s[S_IP_ONE], NULL);
    printf("ratio_vs_iperf3 %.3f (target >= %.2f), cpu_ratio_vs_iperf3 %.3f (target <= %.2f): "
           "%s; paired per round: %.3f, %.3f\n",
           r, TARGET_RATIO_MIN, cpur, TARGET_CPU_RATIO_MAX, met ? "met" : "NOT met",
           rp_bench_paired_ratio(&cases[S_RP], &cases[S_IP], 0),
           rp_bench_paired_ratio(&cases[S_RP], &cases[S_IP], 1));
    printf("%s: two cores %.3f (CPU %.3f), one core %.3f (CPU %.3f)\n",
           pinned ? "same placement" : "vs iperf3 on given cores", r_split, cpur_split, r_one,
           cpur_one);
    printf("reproduce: %s\nbaselines: %s\n           %s\n           %s\n", cmd, c_ip, c_split,
           c_one);
    return 0;
}

/* Where the ends of `t`'s connections landed: "shard 0: 32 send, 30 recv; shard 1: ...". */
static void placement(const tp *t, char *dst, size_t cap)
{
    size_t len = 0;
    dst[0] = '\0';
    for (unsigned s = 0; s < t->nshards; s++) {
        unsigned ns = 0, nr = 0;
        for (unsigned i = 0; i < t->nconns; i++) {
            ns += t->dialed[i].shard == s;
            nr += t->accepted[i].shard == s;
        }
        int n = snprintf(dst + len, cap - len, "%sshard %u: %u send, %u recv", s ? "; " : "", s, ns,
                         nr);
        if (n < 0 || (size_t)n >= cap - len) return;
        len += (size_t)n;
    }
}

static int run_many(const opts *o, const uint8_t *payload, const char *cmd, ringp2p_errinfo *ei)
{
    tp *t1 = NULL, *t2 = NULL;
    int rc = tp_new(1, o->conns, &o->rt, false, payload, o->seconds, &t1, ei);
    if (rc == 0) rc = tp_new(2, o->conns, &o->rt, false, payload, o->seconds, &t2, ei);
    if (rc < 0) {
        tp_free(t1);
        return rc;
    }
    /* The 1-shard baseline gets one CPU too: the one shard 0 runs on. */
    cpu_set_t one;
    one_cpu(&one, cpu_of(t1, 0));
    rp_bench_iperf3 ip1 = { .exe = o->iperf3,
                            .seconds = o->seconds,
                            .streams = o->conns,
                            .client_cpus = &one,
                            .server_cpus = &one };
    rp_bench_iperf3 ip2 = { .exe = o->iperf3, .seconds = o->seconds, .streams = o->conns };
    rp_bench_case cases[4];
    cases[0] = (rp_bench_case){
        .name = "ringp2p_1shard", .label = "ringp2p, 1 shard", .round = tp_round, .ctx = t1
    };
    cases[1] = (rp_bench_case){ .name = "iperf3_1cpu",
                                .label = "iperf3 -P N, both on 1 CPU",
                                .round = rp_bench_iperf3_round,
                                .ctx = &ip1 };
    cases[2] = (rp_bench_case){
        .name = "ringp2p_2shards", .label = "ringp2p, 2 shards", .round = tp_round, .ctx = t2
    };
    cases[3] = (rp_bench_case){
        .name = "iperf3", .label = "iperf3 -P N", .round = rp_bench_iperf3_round, .ctx = &ip2
    };
    char place[256];
    placement(t2, place, sizeof(place));
    if (!o->json) {
        printf("tcp_throughput: %u loopback TCP connections, aggregate, %u rounds x %u s, "
               "interleaved; medians\n",
               o->conns, o->rounds, o->seconds);
        printf("ringp2p 2 shards: %s\n", place);
        print_machine();
        fflush(stdout);
    }
    rc = rp_bench_interleave(cases, 4, o->rounds, o->verbose ? stderr : NULL, ei);
    if (o->verbose) {
        print_stats(t1, "1-shard", stderr);
        print_stats(t2, "2-shard", stderr);
    }
    tp_free(t1);
    tp_free(t2);
    if (rc < 0) return rc;

    rp_bench_summary s[4];
    for (int i = 0; i < 4; i++) s[i] = rp_bench_summarize(&cases[i]);
    double scaling = s[2].gbps.median / s[0].gbps.median;
    double iscaling = s[3].gbps.median / s[1].gbps.median;
    char c1[256], c2[256];
    rp_bench_iperf3_command(&ip1, c1, sizeof(c1));
    rp_bench_iperf3_command(&ip2, c2, sizeof(c2));
    if (o->json) {
        rp_bench_json j;
        json_head(&j, o, cmd, true);
        rp_bench_json_int(&j, "conns", o->conns);
        rp_bench_json_str(&j, "placement_2shards", place);
        rp_bench_json_str(&j, "iperf3_1cpu_command", c1);
        rp_bench_json_str(&j, "iperf3_command", c2);
        for (int i = 0; i < 4; i++) rp_bench_json_summary(&j, cases[i].name, &s[i]);
        rp_bench_json_num(&j, "scaling_2_over_1_shard", scaling);
        rp_bench_json_num(&j, "iperf3_scaling_2_over_1_cpu", iscaling);
        rp_bench_json_num(&j, "ratio_1shard_vs_iperf3_1cpu", s[0].gbps.median / s[1].gbps.median);
        rp_bench_json_num(&j, "cpu_ratio_1shard_vs_iperf3_1cpu",
                          s[0].cpu_per_gb.median / s[1].cpu_per_gb.median);
        rp_bench_json_num(&j, "ratio_vs_iperf3", s[2].gbps.median / s[3].gbps.median);
        rp_bench_json_num(&j, "cpu_ratio_vs_iperf3",
                          s[2].cpu_per_gb.median / s[3].cpu_per_gb.median);
        return rp_bench_json_print(&j, stdout);
    }
    rp_bench_table_header(stdout);
    rp_bench_table_row(stdout, cases[0].label, &s[0], &s[1]);
    rp_bench_table_row(stdout, cases[1].label, &s[1], NULL);
    rp_bench_table_row(stdout, cases[2].label, &s[2], &s[3]);
    rp_bench_table_row(stdout, cases[3].label, &s[3], NULL);
    printf("scaling 2 shards / 1 shard: %.3f (iperf3 2 CPUs / 1 CPU: %.3f); "
           "ratio_vs_iperf3 (2 shards) %.3f, cpu_ratio_vs_iperf3 %.3f\n",
           scaling, iscaling, s[2].gbps.median / s[3].gbps.median,
           s[2].cpu_per_gb.median / s[3].cpu_per_gb.median);
    printf("reproduce: %s\nbaselines: %s\n           %s\n", cmd, c1, c2);
    return 0;
}

int main(int argc, char **argv)
{
    opts o;
    parse_args(argc, argv, &o);
    char cmd[512];
    effective_command(argv[0], &o, cmd, sizeof(cmd));

    ringp2p_errinfo ei = { 0 };
    rp_bench_iperf3 probe = { .exe = o.iperf3 };
    int rc = rp_bench_iperf3_check(&probe, &ei);
    uint8_t *payload = NULL;
    if (rc == 0) {
        payload = aligned_alloc(4096, PAYLOAD_SIZE);
        if (payload == NULL)
            rc = rp_err(&ei, RINGP2P_ENOMEM, NULL);
        else
            for (size_t i = 0; i < PAYLOAD_SIZE; i++) payload[i] = (uint8_t)(i * 131u + 7u);
    }
    if (rc == 0) rc = o.many ? run_many(&o, payload, cmd, &ei) : run_single(&o, payload, cmd, &ei);
    free(payload);
    if (rc < 0) {
        const char *msg = ei.code != 0 ? ei.msg : ringp2p_strerror(rc);
        fprintf(stderr, "tcp_throughput: %s (no numbers reported)\n", msg);
        if (o.json) {
            rp_bench_json j;
            json_head(&j, &o, cmd, false);
            rp_bench_json_str(&j, "error", msg);
            rp_bench_json_print(&j, stdout);
        }
        return 1;
    }
    return 0;
}
