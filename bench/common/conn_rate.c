/* Connection and stream rates of the ringp2p host, and crypto ceilings (conn_rate.h). */
#include "conn_rate.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "bench.h"
#include "crypto/aead.h"
#include "crypto/x25519.h"
#include "host/host.h"
#include "ringp2p/node.h"

/* Seconds for the server to print its ready line, and to leave after its stdin closes. */
#define SERVER_READY_TIMEOUT 10.0
#define SERVER_STOP_TIMEOUT  5.0
/* Seconds the server gets to close a finished round's connections. */
#define SERVER_SETTLE_TIMEOUT 30.0
/* fds the server may hold above its idle count and still count as settled (listener, ring). */
#define SERVER_SETTLE_SLACK 4
/* Buffer of one in-memory handshake direction: TLS flights with certificates fit. */
#define PAIR_BUF (64 * 1024)
/* Handshake steps before an in-memory pair is declared stuck. */
#define PAIR_STEPS_MAX 64

/* ---- the server process ----------------------------------------------------------------- */

static void srv_eof(ringp2p_stream *s, void *ctx)
{
    (void)ctx;
    ringp2p_stream_close_write(s);
}

static void srv_data(ringp2p_stream *s, void *ctx, const uint8_t *data, size_t len)
{
    (void)s, (void)ctx, (void)data, (void)len;
}

static void srv_close(ringp2p_stream *s, void *ctx, int err)
{
    (void)s, (void)ctx, (void)err;
}

static const ringp2p_stream_callbacks srv_cbs = {
    .on_data = srv_data,
    .on_eof = srv_eof,
    .on_close = srv_close,
};

static void srv_handler(ringp2p_node *n, ringp2p_stream *s, void *ctx)
{
    (void)n, (void)ctx;
    ringp2p_stream_set_callbacks(s, &srv_cbs, NULL);
}

int rp_rate_serve(const char *security, unsigned shards)
{
    ringp2p_errinfo ei = { 0 };
    ringp2p_config *cfg = ringp2p_config_new();
    if (cfg == NULL) return 1;
    int r = ringp2p_config_listen(cfg, "/ip4/127.0.0.1/tcp/0", &ei);
    if (r == 0) r = ringp2p_config_security(cfg, security, &ei);
    if (r == 0) r = ringp2p_config_shards(cfg, shards);
    ringp2p_node *node = NULL;
    if (r == 0) r = ringp2p_node_new(cfg, &node, &ei);
    ringp2p_config_free(cfg);
    if (r == 0) r = ringp2p_node_set_stream_handler(node, RP_RATE_PROTOCOL, srv_handler, NULL);
    if (r == 0) r = ringp2p_node_start(node, &ei);
    if (r < 0) {
        printf("error %s: %s\n", ringp2p_errname(r), ei.code != 0 ? ei.msg : ringp2p_strerror(r));
        fflush(stdout);
        ringp2p_node_free(node);
        return 1;
    }
    ringp2p_multiaddr *a[4];
    size_t na = ringp2p_node_addrs(node, a, 4);
    char text[RP_RATE_ADDR_MAX] = "";
    if (na > 0) ringp2p_multiaddr_to_string(a[0], text, sizeof(text));
    for (size_t i = 0; i < na && i < 4; i++) ringp2p_multiaddr_free(a[i]);
    printf("ready %s\n", text);
    fflush(stdout);
    char buf[256];
    while (read(0, buf, sizeof(buf)) > 0) {
    }
    ringp2p_node_stop(node);
    ringp2p_node_free(node);
    return 0;
}

int rp_rate_server_start(const char *argv0, const char *const *args, size_t nargs,
                         const cpu_set_t *cpus, rp_rate_server *out, ringp2p_errinfo *ei)
{
    memset(out, 0, sizeof(*out));
    out->pid = -1;
    out->in_fd = -1;
    const char *av[32];
    if (nargs + 2 > sizeof(av) / sizeof(av[0]))
        return rp_err(ei, RINGP2P_EINVAL, "too many server arguments");
    av[0] = argv0;
    for (size_t i = 0; i < nargs; i++) av[i + 1] = args[i];
    av[nargs + 1] = NULL;
    int in[2], o[2];
    if (pipe2(in, O_CLOEXEC) != 0) return rp_err(ei, RINGP2P_EIO, "pipe: %s", strerror(errno));
    if (pipe2(o, O_CLOEXEC) != 0) {
        close(in[0]), close(in[1]);
        return rp_err(ei, RINGP2P_EIO, "pipe: %s", strerror(errno));
    }
    int rc = rp_bench_spawn(av, in[0], o[1], o[1], cpus, &out->pid);
    close(in[0]);
    close(o[1]);
    if (rc != 0) {
        close(in[1]), close(o[0]);
        out->pid = -1;
        return rp_err(ei, RINGP2P_EIO, "cannot run %s: %s", argv0, strerror(rc));
    }
    out->in_fd = in[1];
    rp_bench_lines lr;
    rp_bench_lines_init(&lr, o[0]);
    char line[1024];
    double deadline = rp_bench_now() + SERVER_READY_TIMEOUT;
    int got;
    while ((got = rp_bench_lines_next(&lr, line, sizeof(line), deadline)) == 1)
        if (strncmp(line, "ready ", 6) == 0 || strncmp(line, "error ", 6) == 0) break;
    /* The server writes nothing more: the pipe can go (a later write would get SIGPIPE, ignored).
     */
    close(o[0]);
    if (got != 1 || strncmp(line, "ready ", 6) != 0) {
        rp_rate_server_stop(out);
        return rp_err(ei, RINGP2P_EIO, "bench server: %s",
                      got == 1   ? line
                      : got == 0 ? "exited before it was ready"
                                 : "not ready in time");
    }
    snprintf(out->addr, sizeof(out->addr), "%.*s", (int)sizeof(out->addr) - 1, line + 6);
    snprintf(out->tcp_addr, sizeof(out->tcp_addr), "%s", out->addr);
    char *p2p = strstr(out->tcp_addr, "/p2p/");
    if (p2p != NULL) *p2p = '\0';
    return 0;
}

void rp_rate_server_stop(rp_rate_server *srv)
{
    if (srv->in_fd >= 0) close(srv->in_fd);
    srv->in_fd = -1;
    if (srv->pid > 0) {
        int st;
        struct rusage ru;
        rp_bench_reap(srv->pid, rp_bench_now() + SERVER_STOP_TIMEOUT, &st, &ru);
    }
    srv->pid = -1;
}

/* Waits until the server holds no more fds than `idle` (+ slack); 0, or -1 at the timeout. */
static int server_settle(const rp_rate_server *srv, long idle)
{
    double deadline = rp_bench_now() + SERVER_SETTLE_TIMEOUT;
    for (;;) {
        long n = rp_bench_proc_fds(srv->pid);
        if (n < 0) return -1;
        if (n <= idle + SERVER_SETTLE_SLACK) return 0;
        if (rp_bench_now() > deadline) return -1;
        usleep(2000);
    }
}

/* ---- rounds: shared parts --------------------------------------------------------------- */

double rp_rate_per_second(const rp_rate_result *r)
{
    return r->count > 0 && r->seconds > 0 ? r->count / r->seconds : NAN;
}

double rp_rate_cpu_us(const rp_rate_result *r)
{
    double cpu = r->cpu_client + r->cpu_server;
    return r->count > 0 && cpu >= 0 ? cpu / r->count * 1e6 : NAN;
}

int rp_rate_security_available(const char *name, ringp2p_errinfo *ei)
{
    ringp2p_config *cfg = ringp2p_config_new();
    if (cfg == NULL) return rp_err(ei, RINGP2P_ENOMEM, "no memory for a config");
    int r = ringp2p_config_security(cfg, name, ei);
    ringp2p_config_free(cfg);
    return r;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* State of one round, shared by the shard's callbacks and the main thread. */
typedef struct rate_run {
    ringp2p_node *node;
    ringp2p_multiaddr *addr;
    const char *proto;
    unsigned target;          /* handshakes: connections to make */
    _Atomic uint64_t stop_ns; /* streams: no new stream after this */
    _Atomic unsigned issued;
    _Atomic unsigned connected; /* handshakes: CONNECTED events of our dials */
    _Atomic unsigned opened;    /* open callbacks run (success or not) */
    _Atomic unsigned done;      /* streams finished cleanly */
    _Atomic unsigned live;      /* streams: opened or opening, not finished */
    _Atomic uint64_t last_ns;   /* the last completion */
    _Atomic int err;
    char err_msg[RINGP2P_ERRINFO_MSG_MAX + 64];
    pthread_mutex_t mu;
    pthread_cond_t cv;
} rate_run;

static void run_wake(rate_run *run)
{
    pthread_mutex_lock(&run->mu);
    pthread_cond_broadcast(&run->cv);
    pthread_mutex_unlock(&run->mu);
}

/* Records the round's first error; the main thread sees it and fails the round. */
static void run_fail(rate_run *run, int err, const char *what, const ringp2p_errinfo *ei)
{
    int zero = 0;
    pthread_mutex_lock(&run->mu);
    if (atomic_compare_exchange_strong(&run->err, &zero, err))
        snprintf(run->err_msg, sizeof(run->err_msg), "%s: %s", what,
                 ei != NULL && ei->code != 0 ? ei->msg : ringp2p_strerror(err));
    pthread_cond_broadcast(&run->cv);
    pthread_mutex_unlock(&run->mu);
}

/* Waits until pred(run) or an error or the deadline; 0, the error, or RINGP2P_ETIMEDOUT. */
static int run_wait(rate_run *run, bool (*pred)(rate_run *), double deadline)
{
    pthread_mutex_lock(&run->mu);
    int r = 0;
    while (!pred(run) && (r = atomic_load(&run->err)) == 0) {
        if (rp_bench_now() > deadline) {
            r = RINGP2P_ETIMEDOUT;
            break;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&run->cv, &run->mu, &ts);
    }
    pthread_mutex_unlock(&run->mu);
    return r;
}

/* A started client node for one round; its shards confined to cfg->cpus. */
static int client_node(const rp_rate_config *cfg, ringp2p_event_fn ev, void *ev_ctx,
                       ringp2p_node **out, ringp2p_errinfo *ei)
{
    ringp2p_config *c = ringp2p_config_new();
    if (c == NULL) return rp_err(ei, RINGP2P_ENOMEM, "no memory for a config");
    int r = ringp2p_config_security(c, cfg->security, ei);
    if (r == 0) r = ringp2p_config_shards(c, cfg->shards);
    if (r == 0 && ev != NULL) ringp2p_config_events(c, ev, ev_ctx);
    ringp2p_node *n = NULL;
    if (r == 0) r = ringp2p_node_new(c, &n, ei);
    ringp2p_config_free(c);
    if (r < 0) return r;
    /* Shards pin themselves inside the CPUs their creating thread may use. */
    cpu_set_t saved;
    bool restrict_cpus = cfg->cpus != NULL && sched_getaffinity(0, sizeof(saved), &saved) == 0 &&
                         sched_setaffinity(0, sizeof(*cfg->cpus), cfg->cpus) == 0;
    r = ringp2p_node_start(n, ei);
    if (restrict_cpus) sched_setaffinity(0, sizeof(saved), &saved);
    if (r < 0) {
        ringp2p_node_free(n);
        return r;
    }
    *out = n;
    return 0;
}

static int run_init(rate_run *run, const rp_rate_config *cfg, const char *addr, ringp2p_errinfo *ei)
{
    memset(run, 0, sizeof(*run));
    pthread_mutex_init(&run->mu, NULL);
    pthread_cond_init(&run->cv, NULL);
    run->proto = RP_RATE_PROTOCOL;
    if (cfg->inflight < 1 || cfg->inflight > RP_RATE_INFLIGHT_MAX)
        return rp_err(ei, RINGP2P_EINVAL, "in flight must be 1..%d", RP_RATE_INFLIGHT_MAX);
    return ringp2p_multiaddr_parse(addr, &run->addr, ei);
}

static void run_destroy(rate_run *run)
{
    if (run->node != NULL) {
        ringp2p_node_stop(run->node);
        ringp2p_node_free(run->node);
    }
    ringp2p_multiaddr_free(run->addr);
    pthread_cond_destroy(&run->cv);
    pthread_mutex_destroy(&run->mu);
}

/* ---- handshakes ------------------------------------------------------------------------- */

static const ringp2p_stream_callbacks quiet_cbs = {
    .on_data = srv_data,
    .on_close = srv_close,
};

static void hs_issue(rate_run *run);

static void hs_opened(ringp2p_node *n, ringp2p_stream *s, int err, const ringp2p_errinfo *ei,
                      void *ctx)
{
    rate_run *run = ctx;
    (void)n;
    if (err < 0) {
        run_fail(run, err, "a dial failed", ei);
    } else {
        ringp2p_stream_set_callbacks(s, &quiet_cbs, NULL);
        ringp2p_stream_close_write(s);
    }
    if (atomic_fetch_add(&run->opened, 1) + 1 == run->target) run_wake(run);
}

static void hs_event(ringp2p_node *n, const ringp2p_event *ev, void *ctx)
{
    rate_run *run = ctx;
    (void)n;
    if (ev->type != RINGP2P_EVENT_CONNECTED || ev->conn == NULL || ev->conn->inbound) return;
    atomic_store(&run->last_ns, mono_ns());
    if (atomic_fetch_add(&run->connected, 1) + 1 == run->target)
        run_wake(run);
    else
        hs_issue(run);
}

/* Starts one more dial if the round wants more (on the shard, or on main at the start). */
static void hs_issue(rate_run *run)
{
    if (atomic_load(&run->err) != 0) return;
    unsigned i = atomic_fetch_add(&run->issued, 1);
    if (i >= run->target) return;
    const char *protos[1] = { run->proto };
    int r = ringp2p_node_new_stream(run->node, run->addr, protos, 1, hs_opened, run);
    if (r < 0) run_fail(run, r, "ringp2p_node_new_stream", NULL);
}

static bool hs_all_open(rate_run *run)
{
    return atomic_load(&run->connected) >= run->target && atomic_load(&run->opened) >= run->target;
}

int rp_rate_handshakes(const rp_rate_config *cfg, rp_rate_result *out, ringp2p_errinfo *ei)
{
    out->count = out->seconds = out->cpu_client = out->cpu_server = NAN;
    long idle = rp_bench_proc_fds(cfg->server->pid);
    if (idle < 0) return rp_err(ei, RINGP2P_EIO, "the bench server is gone");
    rate_run run;
    int r = run_init(&run, cfg, cfg->server->tcp_addr, ei);
    if (r < 0) goto out;
    run.target = cfg->count;
    if ((r = client_node(cfg, hs_event, &run, &run.node, ei)) < 0) goto out;
    double cpu_c0 = rp_bench_self_cpu(), cpu_s0 = rp_bench_proc_cpu(cfg->server->pid);
    uint64_t t0 = mono_ns();
    for (unsigned i = 0; i < cfg->inflight && i < cfg->count; i++) hs_issue(&run);
    r = run_wait(&run, hs_all_open, rp_bench_now() + cfg->timeout);
    double cpu_c1 = rp_bench_self_cpu(), cpu_s1 = rp_bench_proc_cpu(cfg->server->pid);
    if (r != 0) {
        if (r == RINGP2P_ETIMEDOUT)
            r = rp_err(ei, r, "%u of %u connections up after %.0f s", atomic_load(&run.connected),
                       run.target, cfg->timeout);
        else
            r = rp_err(ei, r, "%s", run.err_msg);
        goto out;
    }
    out->count = atomic_load(&run.connected);
    out->seconds = (double)(atomic_load(&run.last_ns) - t0) * 1e-9;
    out->cpu_client = cpu_c1 - cpu_c0;
    out->cpu_server = cpu_s1 - cpu_s0;
out:
    run_destroy(&run);
    /* The next round must not pay for closing this one's connections. */
    if (server_settle(cfg->server, idle) != 0 && r == 0)
        r = rp_err(ei, RINGP2P_ETIMEDOUT, "the bench server kept %ld fds (idle: %ld)",
                   rp_bench_proc_fds(cfg->server->pid), idle);
    return r;
}

/* ---- streams ---------------------------------------------------------------------------- */

static void st_issue(rate_run *run);

static void st_data(ringp2p_stream *s, void *ctx, const uint8_t *data, size_t len)
{
    (void)s, (void)ctx, (void)data, (void)len;
}

static void st_close(ringp2p_stream *s, void *ctx, int err)
{
    rate_run *run = ctx;
    (void)s;
    if (err < 0) {
        run_fail(run, err, "a stream ended with an error", NULL);
        return;
    }
    atomic_fetch_add(&run->done, 1);
    uint64_t now = mono_ns();
    atomic_store(&run->last_ns, now);
    if (now < atomic_load(&run->stop_ns) && atomic_load(&run->err) == 0) {
        st_issue(run); /* keeps `live` constant: this one leaves, the new one enters */
        return;
    }
    if (atomic_fetch_sub(&run->live, 1) == 1) run_wake(run);
}

static const ringp2p_stream_callbacks st_cbs = {
    .on_data = st_data,
    .on_close = st_close,
};

static void st_opened(ringp2p_node *n, ringp2p_stream *s, int err, const ringp2p_errinfo *ei,
                      void *ctx)
{
    rate_run *run = ctx;
    (void)n;
    atomic_fetch_add(&run->opened, 1);
    if (err < 0) {
        run_fail(run, err, "a stream did not open", ei);
        return;
    }
    ringp2p_stream_set_callbacks(s, &st_cbs, run);
    int r = ringp2p_stream_close_write(s);
    if (r < 0) run_fail(run, r, "close_write", NULL);
}

static void st_issue(rate_run *run)
{
    atomic_fetch_add(&run->issued, 1);
    const char *protos[1] = { run->proto };
    int r = ringp2p_node_new_stream(run->node, run->addr, protos, 1, st_opened, run);
    if (r < 0) run_fail(run, r, "ringp2p_node_new_stream", NULL);
}

static bool st_none_live(rate_run *run)
{
    return atomic_load(&run->live) == 0;
}

int rp_rate_streams(const rp_rate_config *cfg, rp_rate_result *out, ringp2p_errinfo *ei)
{
    out->count = out->seconds = out->cpu_client = out->cpu_server = NAN;
    rate_run run;
    int r = run_init(&run, cfg, cfg->server->addr, ei);
    if (r < 0) goto out;
    if ((r = client_node(cfg, NULL, NULL, &run.node, ei)) < 0) goto out;
    /* One stream first: it dials the connection, which the measured streams then share. */
    atomic_store(&run.stop_ns, 0);
    atomic_store(&run.live, 1);
    st_issue(&run);
    double deadline = rp_bench_now() + cfg->timeout;
    if ((r = run_wait(&run, st_none_live, deadline)) != 0) goto fail;
    atomic_store(&run.done, 0);
    double cpu_c0 = rp_bench_self_cpu(), cpu_s0 = rp_bench_proc_cpu(cfg->server->pid);
    uint64_t t0 = mono_ns();
    atomic_store(&run.stop_ns, t0 + (uint64_t)(cfg->seconds * 1e9));
    atomic_store(&run.live, cfg->inflight);
    for (unsigned i = 0; i < cfg->inflight; i++) st_issue(&run);
    r = run_wait(&run, st_none_live, rp_bench_now() + cfg->seconds + cfg->timeout);
    double cpu_c1 = rp_bench_self_cpu(), cpu_s1 = rp_bench_proc_cpu(cfg->server->pid);
    if (r != 0) goto fail;
    out->count = atomic_load(&run.done);
    out->seconds = (double)(atomic_load(&run.last_ns) - t0) * 1e-9;
    out->cpu_client = cpu_c1 - cpu_c0;
    out->cpu_server = cpu_s1 - cpu_s0;
    goto out;
fail:
    if (r == RINGP2P_ETIMEDOUT)
        r = rp_err(ei, r, "%u streams still open after the round's time", atomic_load(&run.live));
    else
        r = rp_err(ei, r, "%s", run.err_msg);
out:
    run_destroy(&run);
    return r;
}

/* ---- crypto ceilings -------------------------------------------------------------------- */

static double thread_cpu(void)
{
    return rp_bench_clock_cpu(CLOCK_THREAD_CPUTIME_ID);
}

/* The compiler must not drop work whose result is unused. */
static volatile uint8_t sink;

void rp_rate_measure_primitives(double seconds, rp_rate_primitives *out)
{
    uint8_t pub[RP_X25519_KEY_LEN], priv[RP_X25519_KEY_LEN], pub2[RP_X25519_KEY_LEN],
        priv2[RP_X25519_KEY_LEN], shared[RP_X25519_KEY_LEN];
    double slice = seconds / 4;
    size_t n = 0;
    double t0 = thread_cpu();
    do {
        for (int i = 0; i < 32; i++, n++) rp_x25519_keypair(pub, priv);
    } while (thread_cpu() - t0 < slice);
    out->x25519_keypair_us = (thread_cpu() - t0) / (double)n * 1e6;
    rp_x25519_keypair(pub2, priv2);
    n = 0;
    t0 = thread_cpu();
    do {
        for (int i = 0; i < 32; i++, n++) sink ^= (uint8_t)rp_x25519_dh(shared, priv, pub2);
    } while (thread_cpu() - t0 < slice);
    out->x25519_dh_us = (thread_cpu() - t0) / (double)n * 1e6;
    out->ed25519_sign_us = out->ed25519_verify_us = NAN;
    ringp2p_privkey *k;
    if (ringp2p_privkey_generate(RINGP2P_KEY_ED25519, &k) < 0) return;
    uint8_t msg[64] = { 1 }, sig[RINGP2P_SIGNATURE_MAX];
    ssize_t sl = 0;
    n = 0;
    t0 = thread_cpu();
    do {
        for (int i = 0; i < 32; i++, n++)
            sl = ringp2p_privkey_sign(k, msg, sizeof(msg), sig, sizeof(sig));
    } while (thread_cpu() - t0 < slice);
    out->ed25519_sign_us = (thread_cpu() - t0) / (double)n * 1e6;
    if (sl > 0) {
        const ringp2p_pubkey *pk = ringp2p_privkey_public(k);
        n = 0;
        t0 = thread_cpu();
        do {
            for (int i = 0; i < 32; i++, n++)
                sink ^= (uint8_t)ringp2p_pubkey_verify(pk, msg, sizeof(msg), sig, (size_t)sl);
        } while (thread_cpu() - t0 < slice);
        out->ed25519_verify_us = (thread_cpu() - t0) / (double)n * 1e6;
    }
    ringp2p_privkey_free(k);
}

/* Record sizes: Noise's largest plaintext, a full TLS record. */
#define AEAD_NOISE_LEN 65519
#define AEAD_TLS_LEN   16384

/*
 * GB/s of one AEAD direction: `tag_only` seals/opens an empty plaintext with
 * the record as associated data (signed mode). Opens check what was sealed.
 */
static double aead_gbps(const rp_aead_alg *alg, size_t len, bool open, bool tag_only,
                        double seconds)
{
    uint8_t key[RP_AEAD_KEY_MAX] = { 7 };
    rp_aead ctx;
    if (rp_aead_init(&ctx, alg, key) != 0) return NAN;
    uint8_t *buf = calloc(1, len + RP_AEAD_TAG_LEN), *sealed = calloc(1, len + RP_AEAD_TAG_LEN);
    uint8_t *msg = calloc(1, len);
    double gbps = NAN;
    if (buf == NULL || sealed == NULL || msg == NULL) goto out;
    uint8_t nonce[RP_AEAD_NONCE_LEN] = { 0 };
    rp_aead_job job = { .buf = sealed,
                        .len = tag_only ? 0 : len,
                        .ad = tag_only ? msg : NULL,
                        .ad_len = tag_only ? len : 0 };
    memcpy(job.nonce, nonce, sizeof(nonce));
    if (alg->seal_batch(&ctx, &job, 1) != 0) goto out;
    size_t n = 0;
    double t0 = thread_cpu(), t1;
    do {
        for (int i = 0; i < 16; i++, n++) {
            if (open) {
                memcpy(buf, sealed, (tag_only ? 0 : len) + RP_AEAD_TAG_LEN);
                if (alg->open(&ctx, buf, tag_only ? 0 : len, nonce, tag_only ? msg : NULL,
                              tag_only ? len : 0) != 0)
                    goto out;
            } else {
                rp_aead_job j = job;
                j.buf = buf;
                if (alg->seal_batch(&ctx, &j, 1) != 0) goto out;
            }
        }
        t1 = thread_cpu();
    } while (t1 - t0 < seconds);
    gbps = (double)n * (double)len / (t1 - t0) / 1e9;
    /* The open loop also copies the record back each time (a memcpy, ~20x faster than the AEAD). */
out:
    rp_aead_clear(&ctx);
    free(buf);
    free(sealed);
    free(msg);
    return gbps;
}

void rp_rate_measure_aead(double seconds, rp_rate_aead *out)
{
    double s = seconds / 6;
    out->chacha_seal = aead_gbps(&rp_aead_chacha20_poly1305, AEAD_NOISE_LEN, false, false, s);
    out->chacha_open = aead_gbps(&rp_aead_chacha20_poly1305, AEAD_NOISE_LEN, true, false, s);
    out->gcm_seal = aead_gbps(&rp_aead_aes_256_gcm, AEAD_TLS_LEN, false, false, s);
    out->gcm_open = aead_gbps(&rp_aead_aes_256_gcm, AEAD_TLS_LEN, true, false, s);
    out->gmac_tag = aead_gbps(&rp_aead_aes_256_gcm, AEAD_NOISE_LEN, false, true, s);
    out->gmac_verify = aead_gbps(&rp_aead_aes_256_gcm, AEAD_NOISE_LEN, true, true, s);
}

/* One side of an in-memory handshake: its session and the bytes waiting for it. */
typedef struct pair_side {
    void *s;
    uint8_t in[PAIR_BUF];
    size_t in_len;
    bool done;
} pair_side;

/*
 * Runs side a's handshake over its pending input, as hconn's pre_process does
 * (repeat while it makes progress), appending its output to b's input.
 */
static int pair_step(const rp_hsec_ops *ops, pair_side *a, pair_side *b, ringp2p_errinfo *ei)
{
    uint8_t out[PAIR_BUF];
    uint8_t *src = a->in, *end = a->in + a->in_len;
    for (;;) {
        uint8_t *before = src;
        rp_wbuf w = rp_wbuf_make(out, sizeof(out));
        int r = ops->handshake(a->s, &src, end, &w, ei);
        if (r < 0) return r;
        if (w.len > sizeof(b->in) - b->in_len)
            return rp_err(ei, RINGP2P_ENOBUF, "handshake output over %d bytes", PAIR_BUF);
        memcpy(b->in + b->in_len, out, w.len);
        b->in_len += w.len;
        if (r == RP_HSEC_DONE) a->done = true;
        if (r == RP_HSEC_DONE || (src == before && w.len == 0)) break;
    }
    size_t used = (size_t)(src - a->in);
    memmove(a->in, src, a->in_len - used);
    a->in_len -= used;
    return 0;
}

static int pair_once(const rp_hsec_ops *ops, ringp2p_node *ni, ringp2p_node *nr, pair_side *i,
                     pair_side *r, ringp2p_errinfo *ei)
{
    i->in_len = r->in_len = 0;
    i->done = r->done = false;
    i->s = r->s = NULL;
    int rc = ops->new_session(ni, true, ringp2p_node_id(nr), &i->s, ei);
    if (rc == 0) rc = ops->new_session(nr, false, NULL, &r->s, ei);
    for (int step = 0; rc == 0 && !(i->done && r->done); step++) {
        if (step == PAIR_STEPS_MAX) {
            rc = rp_err(ei, RINGP2P_EPROTOCOL, "in-memory handshake stuck");
            break;
        }
        if (!i->done) rc = pair_step(ops, i, r, ei);
        if (rc == 0 && !r->done) rc = pair_step(ops, r, i, ei);
        /* A side that finished still reads what the other sends after it (none in XX/TLS 1.3). */
    }
    if (rc == 0 && (!ringp2p_peer_id_equal(ops->remote_peer(i->s), ringp2p_node_id(nr)) ||
                    !ringp2p_peer_id_equal(ops->remote_peer(r->s), ringp2p_node_id(ni))))
        rc = rp_err(ei, RINGP2P_EPEERMISMATCH, "in-memory handshake learnt the wrong peer");
    if (i->s != NULL) ops->free(i->s);
    if (r->s != NULL) ops->free(r->s);
    return rc;
}

int rp_rate_handshake_pair_us(const char *security, double seconds, double *us, ringp2p_errinfo *ei)
{
    *us = NAN;
    const rp_hsec_ops *ops = rp_hsec_by_name(security, strlen(security));
    if (ops == NULL)
        return rp_err(ei, RINGP2P_EUNSUPPORTED, "no security \"%s\" in the host", security);
    ringp2p_node *n[2] = { NULL, NULL };
    pair_side *sides = calloc(2, sizeof(*sides));
    int r = sides == NULL ? rp_err(ei, RINGP2P_ENOMEM, "no memory") : 0;
    for (int k = 0; k < 2 && r == 0; k++) {
        ringp2p_config *c = ringp2p_config_new();
        if (c == NULL) {
            r = rp_err(ei, RINGP2P_ENOMEM, "no memory");
            break;
        }
        r = ringp2p_config_security(c, security, ei);
        if (r == 0) r = ringp2p_node_new(c, &n[k], ei);
        ringp2p_config_free(c);
    }
    size_t count = 0;
    double t0 = thread_cpu(), t1 = t0;
    while (r == 0 && (t1 - t0 < seconds || count == 0)) {
        r = pair_once(ops, n[0], n[1], &sides[0], &sides[1], ei);
        count++;
        t1 = thread_cpu();
    }
    if (r == 0) *us = (t1 - t0) / (double)count * 1e6;
    ringp2p_node_free(n[0]);
    ringp2p_node_free(n[1]);
    free(sides);
    return r;
}
