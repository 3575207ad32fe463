/*
 * The runtime's sockets (runtime/conn.h) and the TCP transport's multiaddr
 * layer (transport/tcp.h), over loopback.
 *
 * Callbacks run on shard threads; the test thread starts work with
 * rp_runtime_post and waits on atomic counters. Every byte that crosses a
 * connection is generated from (connection index, offset) and checked.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "multiformats/multiaddr.h"
#include "runtime/conn.h"
#include "transport/tcp.h"

/* ---- helpers ------------------------------------------------------------------------------ */

/*
 * Checks on shard threads: Criterion's asserts are for the test's own
 * thread, so callbacks count failures here and the suite's fini asserts.
 */
static _Atomic uint64_t bg_failures;

#define BG_CHECK(cond, ...)                                                                     \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "%s:%d: shard-side check failed: %s\n", __FILE__, __LINE__, #cond); \
            atomic_fetch_add(&bg_failures, 1);                                                  \
        }                                                                                       \
    } while (0)
#define BG_CHECK_EQ(a, b, ...) BG_CHECK((a) == (b))

static void bg_fini(void)
{
    alarm(0);
    cr_assert_eq(atomic_load(&bg_failures), 0, "checks on shard threads failed");
}

/*
 * A hung test dies by SIGALRM (reported as a crash). Not Criterion's
 * .timeout: its runner leaks a timeout record when a test process whose
 * io_uring teardown delays its exit races the timer, and LeakSanitizer then
 * fails the whole run.
 */
static void watchdog(void)
{
    alarm(60);
}

TestSuite(tcp, .init = watchdog, .fini = bg_fini);

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

static uint64_t wait_for(_Atomic uint64_t *v, uint64_t want, double seconds)
{
    uint64_t end = mono_ns() + (uint64_t)(seconds * 1e9);
    uint64_t x;
    while ((x = atomic_load(v)) < want && mono_ns() < end) sleep_ms(1);
    return x;
}

static uint8_t pat(unsigned idx, size_t off)
{
    return (uint8_t)(((idx + 1) * 2654435761u >> 13) ^ (off * 131) ^ (off >> 10));
}

static void fill(uint8_t *dst, unsigned idx, size_t off, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = pat(idx, off + i);
}

/* Index of the first byte of data[n] that is not pat(idx, off + i), or n. */
static size_t check(const uint8_t *data, unsigned idx, size_t off, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (data[i] != pat(idx, off + i)) return i;
    return n;
}

static void base_cfg(rp_runtime_config *cfg, unsigned nshards)
{
    rp_runtime_config_default(cfg);
    cfg->nshards = nshards;
    cfg->recv_buf_size = 16 * 1024;
    cfg->recv_buf_count = 256;
    cfg->shutdown_ns = 300000000ull;
    cfg->close_linger_ns = 500000000ull;
}

static rp_runtime *start_cfg(const rp_runtime_config *cfg)
{
    rp_runtime *rt = NULL;
    ringp2p_errinfo ei;
    int r = rp_runtime_new(cfg, &rt, &ei);
    if (r == RINGP2P_EUNSUPPORTED) cr_skip_test("io_uring runtime unsupported: %s", ei.msg);
    cr_assert_eq(r, 0, "rp_runtime_new: %s", ei.msg);
    return rt;
}

static rp_runtime *start(unsigned nshards)
{
    rp_runtime_config cfg;
    base_cfg(&cfg, nshards);
    return start_cfg(&cfg);
}

static struct sockaddr_in loopback4(uint16_t port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
                                          : ((const struct sockaddr_in6 *)ss)->sin6_port);
}

static void shard_stats(rp_runtime *rt, unsigned i, rp_shard_stats *st)
{
    rp_runtime_shard_stats(rt, i, st);
}

static void assert_no_leaks(rp_runtime *rt)
{
    for (unsigned i = 0; i < rp_runtime_nshards(rt); i++) {
        rp_shard_stats st;
        shard_stats(rt, i, &st);
        cr_assert_eq(st.leaked_buffers, 0, "shard %u leaked %llu buffers", i,
                     (unsigned long long)st.leaked_buffers);
        cr_assert_eq(st.conns_open, 0, "shard %u still counts %llu conns", i,
                     (unsigned long long)st.conns_open);
        cr_assert_eq(st.conns_closed, st.conns_accepted + st.conns_dialed,
                     "shard %u: every delivered connection got its on_close", i);
    }
}

/* A blocking client socket outside the runtime, connected to 127.0.0.1:port. */
static int raw_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct timeval tv = { 10, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = loopback4(port);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0, "connect: %s", strerror(errno));
    return fd;
}

static void raw_reset(int fd)
{
    struct linger lg = { 1, 0 };
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

/* ---- an echo server ----------------------------------------------------------------------- */

typedef struct server {
    rp_listener *l;
    uint16_t port;
    _Atomic uint64_t accepted, closed, close_errors, send_errors, listen_errors, emfile;
    _Atomic int last_err;
} server;

static void echo_data(rp_conn *c, void *arg, rp_rbuf *b, const uint8_t *data, size_t len)
{
    server *s = arg;
    if (rp_conn_send(c, data, len) != 0) atomic_fetch_add(&s->send_errors, 1);
}

static void echo_close(rp_conn *c, void *arg, int err)
{
    server *s = arg;
    if (err != 0) {
        atomic_fetch_add(&s->close_errors, 1);
        atomic_store(&s->last_err, err);
    }
    atomic_fetch_add(&s->closed, 1);
}

static const rp_conn_cbs echo_cbs = { .on_data = echo_data, .on_close = echo_close };

static void echo_accept(rp_shard *sh, void *arg, rp_conn *c)
{
    server *s = arg;
    atomic_fetch_add(&s->accepted, 1);
    rp_conn_set_cbs(c, &echo_cbs, s);
}

static void server_error(rp_shard *sh, void *arg, int err)
{
    server *s = arg;
    atomic_fetch_add(&s->listen_errors, 1);
    if (err == RINGP2P_EMFILE) atomic_fetch_add(&s->emfile, 1);
}

static void listen_on(rp_runtime *rt, server *s, const struct sockaddr *a, socklen_t alen,
                      rp_accept_fn fn)
{
    rp_listen_opts o = { .on_error = server_error };
    ringp2p_errinfo ei;
    int r = rp_listen(rt, a, alen, &o, fn, s, &s->l, &ei);
    cr_assert_eq(r, 0, "rp_listen: %s", ei.msg);
    struct sockaddr_storage ss;
    socklen_t sl;
    rp_listener_addr(s->l, &ss, &sl);
    s->port = port_of(&ss);
    cr_assert_neq(s->port, 0, "port 0 resolved");
}

static void listen_echo(rp_runtime *rt, server *s)
{
    struct sockaddr_in a = loopback4(0);
    listen_on(rt, s, (struct sockaddr *)&a, sizeof(a), echo_accept);
}

/* ---- echo clients ------------------------------------------------------------------------- */

typedef struct client client;

typedef struct fleet {
    client *cl;
    unsigned n;
    struct sockaddr_storage to;
    socklen_t tolen;
    rp_dial_opts opts;
    _Atomic uint64_t dialed, dial_failed, closed, released, mismatches;
} fleet;

struct client {
    fleet *f;
    unsigned idx;
    rp_conn *c;
    size_t total; /* bytes sent and expected back */
    size_t recvd;
    uint8_t *ref; /* the second half, sent by reference */
    int dial_err, close_err;
    unsigned shard;
    bool bad;
};

static void ref_release(void *arg, const void *data, size_t len)
{
    client *cl = arg;
    BG_CHECK_EQ(data, cl->ref);
    memset(cl->ref, 0xee, len); /* a release before the kernel is done would corrupt the echo */
    free(cl->ref);
    cl->ref = NULL;
    atomic_fetch_add(&cl->f->released, 1);
}

static void client_data(rp_conn *c, void *arg, rp_rbuf *b, const uint8_t *data, size_t len)
{
    client *cl = arg;
    if (cl->recvd + len > cl->total || check(data, cl->idx, cl->recvd, len) != len) {
        if (!cl->bad) atomic_fetch_add(&cl->f->mismatches, 1);
        cl->bad = true;
    }
    cl->recvd += len;
    if (cl->recvd >= cl->total) rp_conn_close(c);
}

static void client_close(rp_conn *c, void *arg, int err)
{
    client *cl = arg;
    cl->close_err = err;
    atomic_fetch_add(&cl->f->closed, 1);
}

static const rp_conn_cbs client_cbs = { .on_data = client_data, .on_close = client_close };

static void client_dialed(rp_shard *sh, void *arg, rp_conn *c, int err)
{
    client *cl = arg;
    if (err != 0) {
        cl->dial_err = err;
        atomic_fetch_add(&cl->f->dial_failed, 1);
        return;
    }
    cl->c = c;
    cl->shard = rp_shard_id(sh);
    rp_conn_set_cbs(c, &client_cbs, cl);
    /* First half copied (in pieces, so chunks coalesce), second half by reference. */
    size_t half = cl->total / 2;
    uint8_t tmp[1000];
    for (size_t off = 0; off < half;) {
        size_t k = half - off < sizeof(tmp) ? half - off : sizeof(tmp);
        fill(tmp, cl->idx, off, k);
        BG_CHECK_EQ(rp_conn_send(c, tmp, k), 0);
        off += k;
    }
    cl->ref = malloc(cl->total - half);
    fill(cl->ref, cl->idx, half, cl->total - half);
    BG_CHECK_EQ(rp_conn_send_ref(c, cl->ref, cl->total - half, ref_release, cl), 0);
    atomic_fetch_add(&cl->f->dialed, 1);
}

typedef struct dial_job {
    fleet *f;
    unsigned first, count;
} dial_job;

static void dial_task(rp_shard *sh, void *arg)
{
    dial_job *j = arg;
    for (unsigned i = j->first; i < j->first + j->count; i++) {
        client *cl = &j->f->cl[i];
        int r =
            rp_dial(sh, (struct sockaddr *)&j->f->to, j->f->tolen, &j->f->opts, client_dialed, cl);
        if (r != 0) {
            cl->dial_err = r;
            atomic_fetch_add(&j->f->dial_failed, 1);
        }
    }
}

static fleet *fleet_new(unsigned n, const struct sockaddr *to, socklen_t tolen, size_t base,
                        size_t spread)
{
    fleet *f = calloc(1, sizeof(*f));
    f->cl = calloc(n, sizeof(*f->cl));
    f->n = n;
    memcpy(&f->to, to, tolen);
    f->tolen = tolen;
    for (unsigned i = 0; i < n; i++) {
        f->cl[i].f = f;
        f->cl[i].idx = i;
        f->cl[i].total = base + (spread ? (i * 7919u) % spread : 0);
    }
    return f;
}

static void fleet_free(fleet *f)
{
    for (unsigned i = 0; i < f->n; i++) free(f->cl[i].ref);
    free(f->cl);
    free(f);
}

/* Dials the fleet from every shard in turn, evenly. */
static void fleet_launch(rp_runtime *rt, fleet *f, dial_job *jobs)
{
    unsigned ns = rp_runtime_nshards(rt), per = f->n / ns;
    for (unsigned s = 0; s < ns; s++) {
        jobs[s].f = f;
        jobs[s].first = s * per;
        jobs[s].count = s + 1 == ns ? f->n - s * per : per;
        cr_assert_eq(rp_runtime_post(rt, s, dial_task, &jobs[s]), 0);
    }
}

static void fleet_assert_done(fleet *f, double seconds)
{
    uint64_t closed = wait_for(&f->closed, f->n - atomic_load(&f->dial_failed), seconds);
    cr_assert_eq(atomic_load(&f->dial_failed), 0);
    cr_assert_eq(closed, f->n, "%llu of %u clients closed", (unsigned long long)closed, f->n);
    cr_assert_eq(atomic_load(&f->mismatches), 0, "every echoed byte matches");
    cr_assert_eq(wait_for(&f->released, f->n, 5), f->n, "every reference released");
    for (unsigned i = 0; i < f->n; i++) {
        client *cl = &f->cl[i];
        cr_assert_eq(cl->recvd, cl->total, "client %u: %zu of %zu bytes", i, cl->recvd, cl->total);
        cr_assert_eq(cl->close_err, 0, "client %u closed with %s", i,
                     ringp2p_strerror(cl->close_err));
    }
}

/* ---- multiaddr conversions ---------------------------------------------------------------- */

Test(tcp, multiaddr_to_sockaddr_and_back)
{
    static const struct {
        const char *text;
        int want;       /* 0 or the error */
        int family;     /* when want == 0 */
        const char *ip; /* inet_ntop form */
        uint16_t port;
        const char *back; /* canonical text written back (no /p2p) */
    } cases[] = {
        { "/ip4/127.0.0.1/tcp/4001", 0, AF_INET, "127.0.0.1", 4001, "/ip4/127.0.0.1/tcp/4001" },
        { "/ip4/0.0.0.0/tcp/0", 0, AF_INET, "0.0.0.0", 0, "/ip4/0.0.0.0/tcp/0" },
        { "/ip6/::1/tcp/65535", 0, AF_INET6, "::1", 65535, "/ip6/::1/tcp/65535" },
        { "/ip4/10.0.0.1/tcp/80/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", 0, AF_INET,
          "10.0.0.1", 80, "/ip4/10.0.0.1/tcp/80" },
        { "/ip4/127.0.0.1/udp/4001", RINGP2P_EUNSUPPORTED, 0, NULL, 0, NULL },
        { "/ip4/127.0.0.1", RINGP2P_EUNSUPPORTED, 0, NULL, 0, NULL },
        { "/dns4/example.com/tcp/80", RINGP2P_EUNSUPPORTED, 0, NULL, 0, NULL },
        { "/ip4/127.0.0.1/tcp/1/ws", RINGP2P_EUNSUPPORTED, 0, NULL, 0, NULL },
        { "/tcp/80/ip4/127.0.0.1", RINGP2P_EUNSUPPORTED, 0, NULL, 0, NULL },
        { "/ip4/127.0.0.1/tcp/1/p2p-circuit", RINGP2P_EUNSUPPORTED, 0, NULL, 0, NULL },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t ma[256];
        ssize_t n = rp_maddr_from_text(cases[i].text, strlen(cases[i].text), ma, sizeof(ma), NULL);
        cr_assert_gt(n, 0, "%s", cases[i].text);
        struct sockaddr_storage ss;
        socklen_t sl = 0;
        ringp2p_errinfo ei;
        int r = rp_tcp_sockaddr(ma, (size_t)n, &ss, &sl, &ei);
        cr_assert_eq(r, cases[i].want, "%s: %d", cases[i].text, r);
        cr_assert_eq(rp_tcp_matches(ma, (size_t)n), cases[i].want == 0, "%s", cases[i].text);
        if (r != 0) {
            cr_assert_eq(ei.code, r);
            continue;
        }
        cr_assert_eq(ss.ss_family, cases[i].family);
        char ip[64];
        const void *src = ss.ss_family == AF_INET
                              ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
                              : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
        inet_ntop(ss.ss_family, src, ip, sizeof(ip));
        cr_assert_str_eq(ip, cases[i].ip);
        cr_assert_eq(port_of(&ss), cases[i].port);
        uint8_t back[RP_TCP_MADDR_MAX];
        ssize_t bn = rp_tcp_maddr((struct sockaddr *)&ss, sl, back, sizeof(back));
        cr_assert_gt(bn, 0);
        char text[128];
        cr_assert_gt(rp_maddr_to_text(back, (size_t)bn, text, sizeof(text), NULL), 0);
        cr_assert_str_eq(text, cases[i].back);
        cr_assert_eq(rp_tcp_maddr((struct sockaddr *)&ss, sl, back, 3), RINGP2P_ENOBUF);
    }
    /* An IPv4-mapped IPv6 peer is reported as /ip4. */
    struct sockaddr_in6 m;
    memset(&m, 0, sizeof(m));
    m.sin6_family = AF_INET6;
    m.sin6_port = htons(9);
    inet_pton(AF_INET6, "::ffff:192.0.2.7", &m.sin6_addr);
    uint8_t back[RP_TCP_MADDR_MAX];
    ssize_t bn = rp_tcp_maddr((struct sockaddr *)&m, sizeof(m), back, sizeof(back));
    char text[128];
    cr_assert_gt(rp_maddr_to_text(back, (size_t)bn, text, sizeof(text), NULL), 0);
    cr_assert_str_eq(text, "/ip4/192.0.2.7/tcp/9");
}

/* ---- echo at scale ------------------------------------------------------------------------ */

Test(tcp, echo_1000_connections_over_two_shards)
{
    rp_runtime *rt = start(2);
    static server s;
    listen_echo(rt, &s);
    struct sockaddr_in to = loopback4(s.port);
    fleet *f = fleet_new(1000, (struct sockaddr *)&to, sizeof(to), 2000, 6000);
    dial_job jobs[2];
    fleet_launch(rt, f, jobs);
    /* All 1000 are open at once before the first closes? Not required; they are concurrent. */
    fleet_assert_done(f, 45);
    cr_assert_eq(wait_for(&s.closed, 1000, 10), 1000);
    cr_assert_eq(atomic_load(&s.accepted), 1000);
    cr_assert_eq(atomic_load(&s.close_errors), 0, "server close error %s",
                 ringp2p_strerror(atomic_load(&s.last_err)));
    cr_assert_eq(atomic_load(&s.send_errors), 0);

    rp_shard_stats st[2];
    uint64_t bytes = 0;
    for (unsigned i = 0; i < f->n; i++) bytes += f->cl[i].total;
    for (unsigned i = 0; i < 2; i++) shard_stats(rt, i, &st[i]);
    /* The kernel spread the accepts (SO_REUSEPORT) and connections live on both shards. */
    cr_assert_gt(st[0].accepts, 0, "shard 0 accepted nothing");
    cr_assert_gt(st[1].accepts, 0, "shard 1 accepted nothing");
    cr_assert_gt(st[0].conns_accepted, 100);
    cr_assert_gt(st[1].conns_accepted, 100);
    cr_assert_eq(st[0].conns_accepted + st[1].conns_accepted, 1000);
    cr_assert_eq(st[0].handoffs_out + st[1].handoffs_out, st[0].handoffs_in + st[1].handoffs_in);
    cr_assert_eq(st[0].conns_dialed + st[1].conns_dialed, 1000);
    /* Each payload crossed the loopback twice (to the server and back). */
    cr_assert_eq(st[0].bytes_in + st[1].bytes_in, 2 * bytes);
    cr_assert_eq(st[0].bytes_out + st[1].bytes_out, 2 * bytes);
    unsigned on_shard[2] = { 0, 0 };
    for (unsigned i = 0; i < f->n; i++) on_shard[f->cl[i].shard]++;
    cr_assert_eq(on_shard[0], 500);
    cr_assert_eq(on_shard[1], 500);
    rp_runtime_stop(rt);
    assert_no_leaks(rt);
    rp_runtime_free(rt);
    fleet_free(f);
}

Test(tcp, echo_with_every_optional_kernel_feature_off)
{
    rp_runtime_config cfg;
    base_cfg(&cfg, 2);
    cfg.features_off = RP_FEAT_DEFER_TASKRUN | RP_FEAT_SINGLE_ISSUER | RP_FEAT_REG_RING_FD |
                       RP_FEAT_MSG_RING | RP_FEAT_SEND_ZC | RP_FEAT_RECV_MULTISHOT |
                       RP_FEAT_ACCEPT_MULTISHOT | RP_FEAT_CQE_SKIP;
    rp_runtime *rt = start_cfg(&cfg);
    cr_assert_eq(rp_runtime_features(rt), 0);
    static server s;
    listen_echo(rt, &s);
    struct sockaddr_in to = loopback4(s.port);
    fleet *f = fleet_new(100, (struct sockaddr *)&to, sizeof(to), 30000, 50000);
    dial_job jobs[2];
    fleet_launch(rt, f, jobs);
    fleet_assert_done(f, 25);
    cr_assert_eq(wait_for(&s.closed, 100, 10), 100);
    rp_runtime_stop(rt);
    assert_no_leaks(rt);
    rp_runtime_free(rt);
    fleet_free(f);
}

/* ---- IPv6, through the multiaddr API ------------------------------------------------------ */

typedef struct maddr_dial {
    fleet *f;
    uint8_t ma[64];
    size_t len;
} maddr_dial;

static void maddr_dial_task(rp_shard *sh, void *arg)
{
    maddr_dial *d = arg;
    for (unsigned i = 0; i < d->f->n; i++) {
        ringp2p_errinfo ei;
        if (rp_tcp_dial(sh, d->ma, d->len, NULL, 0, 0, client_dialed, &d->f->cl[i], &ei) != 0)
            atomic_fetch_add(&d->f->dial_failed, 1);
    }
}

Test(tcp, echo_over_ipv6_with_multiaddrs)
{
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 lo6;
    memset(&lo6, 0, sizeof(lo6));
    lo6.sin6_family = AF_INET6;
    lo6.sin6_addr = in6addr_loopback;
    if (probe < 0 || bind(probe, (struct sockaddr *)&lo6, sizeof(lo6)) != 0) {
        if (probe >= 0) close(probe);
        cr_skip_test("no IPv6 loopback here");
    }
    close(probe);
    rp_runtime *rt = start(2);
    static server s;
    uint8_t ma[64];
    const char *text = "/ip6/::1/tcp/0";
    ssize_t n = rp_maddr_from_text(text, strlen(text), ma, sizeof(ma), NULL);
    rp_listen_opts o = { 0 };
    ringp2p_errinfo ei;
    cr_assert_eq(rp_tcp_listen(rt, ma, (size_t)n, &o, echo_accept, &s, &s.l, &ei), 0, "%s", ei.msg);
    static maddr_dial d;
    d.len = (size_t)rp_tcp_listener_maddr(s.l, d.ma, sizeof(d.ma));
    char back[128];
    cr_assert_gt(rp_maddr_to_text(d.ma, d.len, back, sizeof(back), NULL), 0);
    cr_assert(strncmp(back, "/ip6/::1/tcp/", 13) == 0 && strcmp(back, "/ip6/::1/tcp/0") != 0,
              "listener address %s", back);
    d.f = fleet_new(20, (struct sockaddr *)&lo6, sizeof(lo6), 10000, 3000);
    cr_assert_eq(rp_runtime_post(rt, 1, maddr_dial_task, &d), 0);
    fleet_assert_done(d.f, 20);
    rp_runtime_free(rt);
    fleet_free(d.f);
}

/* ---- dial failures ------------------------------------------------------------------------ */

typedef struct dial_result {
    struct sockaddr_in to;
    rp_dial_opts opts;
    _Atomic uint64_t done;
    _Atomic int err;
    _Atomic int sync_err;
    uint64_t t0, t1;
} dial_result;

static void result_dialed(rp_shard *sh, void *arg, rp_conn *c, int err)
{
    dial_result *d = arg;
    d->t1 = rp_shard_now(sh);
    if (c != NULL) rp_conn_abort(c);
    atomic_store(&d->err, err);
    atomic_fetch_add(&d->done, 1);
}

static void result_dial_task(rp_shard *sh, void *arg)
{
    dial_result *d = arg;
    d->t0 = rp_shard_now(sh);
    int r = rp_dial(sh, (struct sockaddr *)&d->to, sizeof(d->to), &d->opts, result_dialed, d);
    if (r != 0) {
        atomic_store(&d->sync_err, r);
        atomic_fetch_add(&d->done, 1);
    }
}

Test(tcp, dial_to_a_closed_port_is_refused)
{
    /* A port that was free a moment ago and has no listener. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback4(0);
    socklen_t al = sizeof(a);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    rp_runtime *rt = start(2);
    static dial_result d;
    d.to = a;
    cr_assert_eq(rp_runtime_post(rt, 1, result_dial_task, &d), 0);
    cr_assert_eq(wait_for(&d.done, 1, 10), 1);
    cr_assert_eq(atomic_load(&d.sync_err), 0);
    cr_assert_eq(atomic_load(&d.err), RINGP2P_ECONNREFUSED, "%s",
                 ringp2p_strerror(atomic_load(&d.err)));
    rp_shard_stats st;
    shard_stats(rt, 1, &st);
    cr_assert_eq(st.dial_failures, 1);
    rp_runtime_free(rt);
}

Test(tcp, dial_into_a_full_accept_queue_times_out)
{
    /* A listener that never accepts, with its queue already full: SYNs are dropped. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback4(0);
    socklen_t al = sizeof(a);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(lfd, 0), 0);
    getsockname(lfd, (struct sockaddr *)&a, &al);
    int fillers[3];
    for (int i = 0; i < 3; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fillers[i], (struct sockaddr *)&a, sizeof(a));
    }
    sleep_ms(50);
    rp_runtime *rt = start(2);
    static dial_result d;
    d.to = a;
    d.opts.timeout_ns = 300000000ull;
    cr_assert_eq(rp_runtime_post(rt, 0, result_dial_task, &d), 0);
    cr_assert_eq(wait_for(&d.done, 1, 10), 1);
    cr_assert_eq(atomic_load(&d.err), RINGP2P_ETIMEDOUT, "%s",
                 ringp2p_strerror(atomic_load(&d.err)));
    uint64_t ms = (d.t1 - d.t0) / 1000000;
    cr_assert(ms >= 290 && ms < 2000, "timed out after %llu ms", (unsigned long long)ms);
    rp_runtime_free(rt);
    for (int i = 0; i < 3; i++) close(fillers[i]);
    close(lfd);
}

Test(tcp, dial_rejects_bad_arguments)
{
    rp_runtime *rt = start(1);
    static dial_result d;
    d.to = loopback4(1);
    d.to.sin_family = AF_UNIX;
    cr_assert_eq(rp_runtime_post(rt, 0, result_dial_task, &d), 0);
    cr_assert_eq(wait_for(&d.done, 1, 10), 1);
    cr_assert_eq(atomic_load(&d.sync_err), RINGP2P_EINVAL);
    rp_runtime_free(rt);
}

/* ---- dial from the listen port (SO_REUSEPORT on dial sockets) ----------------------------- */

typedef struct local_dial {
    struct sockaddr_in to, from;
    _Atomic uint64_t done;
    _Atomic int err;
    uint16_t local_port;
} local_dial;

static void local_dialed(rp_shard *sh, void *arg, rp_conn *c, int err)
{
    local_dial *d = arg;
    atomic_store(&d->err, err);
    if (c != NULL) {
        struct sockaddr_storage ss;
        socklen_t sl;
        if (rp_conn_local_addr(c, &ss, &sl) == 0) d->local_port = port_of(&ss);
        rp_conn_abort(c);
    }
    atomic_fetch_add(&d->done, 1);
}

static void local_dial_task(rp_shard *sh, void *arg)
{
    local_dial *d = arg;
    rp_dial_opts o = { .local = (struct sockaddr *)&d->from, .local_len = sizeof(d->from) };
    int r = rp_dial(sh, (struct sockaddr *)&d->to, sizeof(d->to), &o, local_dialed, d);
    if (r != 0) {
        atomic_store(&d->err, r);
        atomic_fetch_add(&d->done, 1);
    }
}

Test(tcp, dial_from_the_listen_port)
{
    rp_runtime *rt = start(2);
    static server a, b;
    listen_echo(rt, &a);
    listen_echo(rt, &b);
    static local_dial d;
    d.to = loopback4(b.port);
    d.from = loopback4(a.port); /* a's listen port, as hole punching does */
    cr_assert_eq(rp_runtime_post(rt, 0, local_dial_task, &d), 0);
    cr_assert_eq(wait_for(&d.done, 1, 10), 1);
    cr_assert_eq(atomic_load(&d.err), 0, "%s", ringp2p_strerror(atomic_load(&d.err)));
    cr_assert_eq(d.local_port, a.port);
    rp_runtime_free(rt);
}

/* ---- a peer that resets ------------------------------------------------------------------- */

typedef struct reset_srv {
    server base;
    _Atomic uint64_t bytes;
    _Atomic int err;
    _Atomic uint64_t closed;
    int stream; /* send continuously instead of reading */
} reset_srv;

static void sink_data(rp_conn *c, void *arg, rp_rbuf *b, const uint8_t *data, size_t len)
{
    reset_srv *r = arg;
    atomic_fetch_add(&r->bytes, len);
}

static void sink_close(rp_conn *c, void *arg, int err)
{
    reset_srv *r = arg;
    atomic_store(&r->err, err);
    atomic_fetch_add(&r->closed, 1);
}

static void stream_more(rp_conn *c, void *arg)
{
    static const uint8_t junk[64 * 1024];
    while (rp_conn_writable(c))
        if (rp_conn_send(c, junk, sizeof(junk)) != 0) break;
}

static const rp_conn_cbs sink_cbs = { .on_data = sink_data, .on_close = sink_close };
static const rp_conn_cbs streamer_cbs = { .on_data = sink_data,
                                          .on_writable = stream_more,
                                          .on_close = sink_close };

static void reset_accept(rp_shard *sh, void *arg, rp_conn *c)
{
    reset_srv *r = arg;
    rp_conn_set_cbs(c, r->stream ? &streamer_cbs : &sink_cbs, r);
    if (r->stream) stream_more(c, r);
}

Test(tcp, peer_reset_mid_transfer_is_reported_and_the_shard_carries_on)
{
    rp_runtime *rt = start(1); /* one shard: the survivors share it with the victims */
    static reset_srv sink, streamer;
    static server echo;
    streamer.stream = 1;
    struct sockaddr_in any = loopback4(0);
    listen_on(rt, &sink.base, (struct sockaddr *)&any, sizeof(any), reset_accept);
    rp_listener *l = sink.base.l;
    (void)l;
    {
        rp_listen_opts o = { 0 };
        cr_assert_eq(rp_listen(rt, (struct sockaddr *)&any, sizeof(any), &o, reset_accept,
                               &streamer, &streamer.base.l, NULL),
                     0);
        struct sockaddr_storage ss;
        socklen_t sl;
        rp_listener_addr(streamer.base.l, &ss, &sl);
        streamer.base.port = port_of(&ss);
    }
    listen_echo(rt, &echo);

    /* A survivor: an echo connection on the same shard, opened first. */
    struct sockaddr_in to = loopback4(echo.port);
    fleet *f = fleet_new(1, (struct sockaddr *)&to, sizeof(to), 1000, 0);
    dial_job jobs[1];
    fleet_launch(rt, f, jobs);
    cr_assert_eq(wait_for(&f->dialed, 1, 10), 1);

    /* Receiving side: the peer resets in the middle of sending. */
    int fd = raw_connect(sink.base.port);
    static uint8_t buf[256 * 1024];
    for (int i = 0; i < 4; i++) cr_assert_eq(send(fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
    while (atomic_load(&sink.bytes) < sizeof(buf)) sleep_ms(1);
    raw_reset(fd);
    cr_assert_eq(wait_for(&sink.closed, 1, 10), 1);
    cr_assert_eq(atomic_load(&sink.err), RINGP2P_ECONNRESET, "%s",
                 ringp2p_strerror(atomic_load(&sink.err)));

    /* Sending side: the runtime streams to a peer that reads a little, then resets. */
    fd = raw_connect(streamer.base.port);
    cr_assert_gt(recv(fd, buf, sizeof(buf), MSG_WAITALL), 0);
    raw_reset(fd);
    cr_assert_eq(wait_for(&streamer.closed, 1, 10), 1);
    cr_assert_eq(atomic_load(&streamer.err), RINGP2P_ECONNRESET, "%s",
                 ringp2p_strerror(atomic_load(&streamer.err)));

    /* The survivor, opened before both resets, finishes its echo. */
    fleet_assert_done(f, 10);
    rp_shard_stats st;
    shard_stats(rt, 0, &st);
    cr_assert_geq(st.errors, 2);
    rp_runtime_stop(rt);
    assert_no_leaks(rt);
    rp_runtime_free(rt);
    fleet_free(f);
}

/* ---- fd exhaustion ------------------------------------------------------------------------ */

/*
 * The smallest fd limit under which exactly `room` descriptor numbers are
 * free (new descriptors take the lowest free number; those at or above the
 * limit stay usable).
 */
static rlim_t limit_with_room(unsigned room)
{
    static unsigned char used[65536];
    memset(used, 0, sizeof(used));
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        int fd = atoi(e->d_name);
        if (fd != self && fd >= 0 && fd < (int)sizeof(used)) used[fd] = 1;
    }
    closedir(d);
    unsigned free_below = 0;
    for (unsigned l = 0; l < sizeof(used); l++) {
        if (free_below == room) return l;
        if (!used[l]) free_below++;
    }
    cr_assert_fail("no fd limit leaves %u free", room);
    return 0;
}

/* One message through an echo server on a blocking socket. */
static void echo_roundtrip(int fd, unsigned idx)
{
    uint8_t msg[32], back[32];
    fill(msg, idx, 0, sizeof(msg));
    cr_assert_eq(send(fd, msg, sizeof(msg), 0), (ssize_t)sizeof(msg));
    cr_assert_eq(recv(fd, back, sizeof(back), MSG_WAITALL), (ssize_t)sizeof(back),
                 "peer %u not served: %s", idx, strerror(errno));
    cr_assert_eq(memcmp(msg, back, sizeof(msg)), 0);
}

static void emfile_dial_task(rp_shard *sh, void *arg)
{
    dial_result *d = arg;
    int r = rp_dial(sh, (struct sockaddr *)&d->to, sizeof(d->to), NULL, result_dialed, d);
    atomic_store(&d->sync_err, r);
    if (r != 0) atomic_fetch_add(&d->done, 1);
}

Test(tcp, fd_exhaustion_emfile_is_survived)
{
    rp_runtime *rt = start(1);
    static server s;
    enum { CLIENTS = 12 };
    int cfd[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) cfd[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int keeper = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    /*
     * Room for the listen socket, the keeper's accepted socket and two more. The limit is set
     * before listening because the kernel reads it when an accept is armed
     * (io_accept_prep), not when it completes.
     */
    struct rlimit old, low;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = limit_with_room(4);
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    listen_echo(rt, &s);
    struct sockaddr_in to = loopback4(s.port);
    fleet *keep = fleet_new(1, (struct sockaddr *)&to, sizeof(to), 4000, 0);
    dial_job jobs[1];

    /* A connection that exists before the descriptors run out and must keep working. */
    struct timeval ktv = { 10, 0 };
    setsockopt(keeper, SOL_SOCKET, SO_RCVTIMEO, &ktv, sizeof(ktv));
    cr_assert_eq(connect(keeper, (struct sockaddr *)&to, sizeof(to)), 0);
    echo_roundtrip(keeper, 100);

    /* Twelve peers connect at once: the kernel completes them all, the shard can hold two. */
    for (int i = 0; i < CLIENTS; i++) {
        struct timeval tv = { 10, 0 };
        setsockopt(cfd[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        cr_assert_eq(connect(cfd[i], (struct sockaddr *)&to, sizeof(to)), 0);
    }
    cr_assert_geq(wait_for(&s.emfile, 1, 10), 1, "the listener reported EMFILE");
    sleep_ms(60); /* a few accept retries fail meanwhile */
    echo_roundtrip(keeper, 101);
    /* A dial now fails synchronously with EMFILE. */
    static dial_result d;
    d.to = to;
    cr_assert_eq(rp_runtime_post(rt, 0, emfile_dial_task, &d), 0);
    cr_assert_eq(wait_for(&d.done, 1, 10), 1);
    cr_assert_eq(atomic_load(&d.sync_err), RINGP2P_EMFILE, "%s",
                 ringp2p_strerror(atomic_load(&d.sync_err)));

    /* Served one after another as each finished peer frees a descriptor. */
    for (int i = 0; i < CLIENTS; i++) {
        echo_roundtrip(cfd[i], (unsigned)i);
        close(cfd[i]);
    }
    cr_assert_eq(wait_for(&s.closed, CLIENTS, 10), CLIENTS);
    cr_assert_eq(atomic_load(&s.accepted), CLIENTS + 1);
    echo_roundtrip(keeper, 102);
    close(keeper);

    /* Still under the low limit: a dialed connection echoes end to end. */
    fleet_launch(rt, keep, jobs);
    fleet_assert_done(keep, 10);
    rp_shard_stats st;
    shard_stats(rt, 0, &st);
    cr_assert_gt(st.accept_errors, 0);
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    rp_runtime_stop(rt);
    assert_no_leaks(rt);
    rp_runtime_free(rt);
    fleet_free(keep);
}

/* ---- an exhausted buffer ring ------------------------------------------------------------- */

Test(tcp, empty_buffer_ring_enobufs_is_survived)
{
    rp_runtime_config cfg;
    base_cfg(&cfg, 1);
    cfg.recv_buf_count = 4; /* four 2 KiB buffers for 64 connections both ways */
    cfg.recv_buf_size = 2048;
    rp_runtime *rt = start_cfg(&cfg);
    static server s;
    listen_echo(rt, &s);
    struct sockaddr_in to = loopback4(s.port);
    fleet *f = fleet_new(64, (struct sockaddr *)&to, sizeof(to), 100000, 50000);
    dial_job jobs[1];
    fleet_launch(rt, f, jobs);
    fleet_assert_done(f, 30);
    rp_shard_stats st;
    shard_stats(rt, 0, &st);
    cr_assert_gt(st.enobufs, 0, "the ring never ran dry: the test proves nothing");
    rp_runtime_stop(rt);
    assert_no_leaks(rt);
    rp_runtime_free(rt);
    fleet_free(f);
}

/* ---- backpressure: pause, resume, held buffers, watermarks --------------------------------- */

enum { BP_TOTAL = 24 << 20, BP_CHUNK = 64 << 10 };

typedef struct bp {
    rp_conn *srv, *cli;
    size_t sent, recvd;
    rp_rbuf *held;
    const uint8_t *held_data;
    uint8_t held_copy[64];
    size_t held_len;
    _Atomic uint64_t paused, cli_blocked, writable_calls, recv_at_pause, recv_now, done, bad,
        closed, resumed;
    uint64_t recv_snapshot;
} bp;

static void bp_pump(rp_conn *c, void *arg)
{
    bp *b = arg;
    static uint8_t chunk[BP_CHUNK];
    while (b->sent < BP_TOTAL && rp_conn_writable(c)) {
        size_t k = BP_TOTAL - b->sent < BP_CHUNK ? BP_TOTAL - b->sent : BP_CHUNK;
        fill(chunk, 7, b->sent, k);
        if (rp_conn_send(c, chunk, k) != 0) {
            atomic_fetch_add(&b->bad, 1);
            return;
        }
        b->sent += k;
    }
    if (!rp_conn_writable(c)) atomic_store(&b->cli_blocked, 1);
    if (b->sent == BP_TOTAL) rp_conn_close(c);
}

static void bp_writable(rp_conn *c, void *arg)
{
    bp *b = arg;
    atomic_fetch_add(&b->writable_calls, 1);
    BG_CHECK(rp_conn_queued(c) <= 64 * 1024, "on_writable above the low watermark");
    bp_pump(c, arg);
}

static void bp_srv_data(rp_conn *c, void *arg, rp_rbuf *buf, const uint8_t *data, size_t len)
{
    bp *b = arg;
    if (check(data, 7, b->recvd, len) != len) atomic_fetch_add(&b->bad, 1);
    b->recvd += len;
    atomic_store(&b->recv_now, b->recvd);
    if (b->held == NULL && !atomic_load(&b->paused)) {
        /* Keep this buffer past the callback and stop reading. */
        b->held = rp_rbuf_hold(buf);
        b->held_data = data;
        b->held_len = len < sizeof(b->held_copy) ? len : sizeof(b->held_copy);
        memcpy(b->held_copy, data, b->held_len);
        rp_conn_recv_pause(c);
        atomic_store(&b->paused, 1);
        atomic_store(&b->recv_at_pause, b->recvd);
    }
}

static void bp_srv_eof(rp_conn *c, void *arg)
{
    bp *b = arg;
    if (b->recvd == BP_TOTAL) atomic_store(&b->done, 1);
    rp_conn_close(c);
}

static void bp_close(rp_conn *c, void *arg, int err)
{
    bp *b = arg;
    if (err != 0) atomic_fetch_add(&b->bad, 1);
    atomic_fetch_add(&b->closed, 1);
}

static const rp_conn_cbs bp_srv_cbs = { .on_data = bp_srv_data,
                                        .on_eof = bp_srv_eof,
                                        .on_close = bp_close };
static void bp_cli_data(rp_conn *c, void *arg, rp_rbuf *buf, const uint8_t *d, size_t n)
{
    atomic_fetch_add(&((bp *)arg)->bad, 1);
}
static const rp_conn_cbs bp_cli_cbs = { .on_data = bp_cli_data,
                                        .on_writable = bp_writable,
                                        .on_close = bp_close };

static void bp_accept(rp_shard *sh, void *arg, rp_conn *c)
{
    bp *b = arg;
    b->srv = c;
    rp_conn_set_cbs(c, &bp_srv_cbs, b);
}

static void bp_dialed(rp_shard *sh, void *arg, rp_conn *c, int err)
{
    bp *b = arg;
    if (err != 0) {
        atomic_fetch_add(&b->bad, 1);
        return;
    }
    b->cli = c;
    rp_conn_set_cbs(c, &bp_cli_cbs, b);
    rp_conn_set_watermarks(c, 256 * 1024, 64 * 1024);
    bp_pump(c, b);
}

typedef struct bp_dial {
    bp *b;
    struct sockaddr_in to;
} bp_dial;

static void bp_dial_task(rp_shard *sh, void *arg)
{
    bp_dial *d = arg;
    BG_CHECK_EQ(rp_dial(sh, (struct sockaddr *)&d->to, sizeof(d->to), NULL, bp_dialed, d->b), 0);
}

static void bp_resume_task(rp_shard *sh, void *arg)
{
    bp *b = arg;
    /* The held buffer kept its bytes although thousands of receives went by... */
    if (memcmp(b->held_data, b->held_copy, b->held_len) != 0) atomic_fetch_add(&b->bad, 1);
    rp_rbuf_release(b->held);
    b->recv_snapshot = b->recvd;
    rp_conn_recv_resume(b->srv);
    atomic_store(&b->resumed, 1);
}

Test(tcp, pause_resume_backpressure_and_held_buffers)
{
    rp_runtime *rt = start(2);
    static bp b;
    static server s; /* only for the listener plumbing */
    struct sockaddr_in any = loopback4(0);
    rp_listen_opts o = { 0 };
    cr_assert_eq(rp_listen(rt, (struct sockaddr *)&any, sizeof(any), &o, bp_accept, &b, &s.l, NULL),
                 0);
    struct sockaddr_storage ss;
    socklen_t sl;
    rp_listener_addr(s.l, &ss, &sl);
    static bp_dial d;
    d.b = &b;
    d.to = loopback4(port_of(&ss));
    cr_assert_eq(rp_runtime_post(rt, 0, bp_dial_task, &d), 0);

    cr_assert_eq(wait_for(&b.paused, 1, 10), 1);
    cr_assert_eq(wait_for(&b.cli_blocked, 1, 10), 1, "the sender never hit its high watermark");
    /* Paused: nothing more is delivered, however long we wait. */
    uint64_t at = atomic_load(&b.recv_now);
    sleep_ms(300);
    cr_assert_eq(atomic_load(&b.recv_now), at, "data delivered while paused");
    cr_assert_lt(at, BP_TOTAL);
    /* Resume on the server's shard (found through the stats: whichever accepted). */
    rp_shard_stats st0;
    shard_stats(rt, 0, &st0);
    unsigned srv_shard = st0.conns_accepted == 1 ? 0 : 1;
    cr_assert_eq(rp_runtime_post(rt, srv_shard, bp_resume_task, &b), 0);
    cr_assert_eq(wait_for(&b.done, 1, 30), 1, "received %llu of %d",
                 (unsigned long long)atomic_load(&b.recv_now), BP_TOTAL);
    cr_assert_eq(wait_for(&b.closed, 2, 10), 2);
    cr_assert_eq(atomic_load(&b.bad), 0);
    cr_assert_gt(atomic_load(&b.writable_calls), 0);
    rp_runtime_stop(rt);
    assert_no_leaks(rt);
    rp_runtime_free(rt);
}

/* ---- send by reference, zero copy --------------------------------------------------------- */

enum { ZC_BUFS = 48, ZC_SIZE = 256 * 1024 };

typedef struct zc {
    uint8_t *buf[ZC_BUFS];
    _Atomic uint64_t released[ZC_BUFS];
    _Atomic uint64_t release_total, recvd_done, bad, closed;
    size_t recvd;
    struct sockaddr_in to;
    rp_shard *cli_shard;
} zc;

static void zc_release(void *arg, const void *data, size_t len)
{
    zc *z = arg;
    for (int i = 0; i < ZC_BUFS; i++) {
        if (data == z->buf[i]) {
            if (len != ZC_SIZE) atomic_fetch_add(&z->bad, 1);
            atomic_fetch_add(&z->released[i], 1);
            memset(z->buf[i], 0xee, ZC_SIZE); /* early release would corrupt what the server sees */
            break;
        }
    }
    atomic_fetch_add(&z->release_total, 1);
}

static void zc_srv_data(rp_conn *c, void *arg, rp_rbuf *b, const uint8_t *data, size_t len)
{
    zc *z = arg;
    if (check(data, 3, z->recvd, len) != len) atomic_fetch_add(&z->bad, 1);
    z->recvd += len;
    if (z->recvd == (size_t)ZC_BUFS * ZC_SIZE) atomic_store(&z->recvd_done, 1);
}

static void zc_close(rp_conn *c, void *arg, int err)
{
    zc *z = arg;
    if (err != 0) atomic_fetch_add(&z->bad, 1);
    atomic_fetch_add(&z->closed, 1);
}

static const rp_conn_cbs zc_srv_cbs = { .on_data = zc_srv_data, .on_close = zc_close };
static const rp_conn_cbs zc_cli_cbs = { .on_data = zc_srv_data, .on_close = zc_close };

static void zc_accept(rp_shard *sh, void *arg, rp_conn *c)
{
    rp_conn_set_cbs(c, &zc_srv_cbs, arg);
}

static void zc_dialed(rp_shard *sh, void *arg, rp_conn *c, int err)
{
    zc *z = arg;
    if (err != 0) {
        atomic_fetch_add(&z->bad, 1);
        return;
    }
    rp_conn_set_cbs(c, &zc_cli_cbs, z);
    for (int i = 0; i < ZC_BUFS; i++)
        if (rp_conn_send_ref(c, z->buf[i], ZC_SIZE, zc_release, z) != 0)
            atomic_fetch_add(&z->bad, 1);
    BG_CHECK_EQ(rp_conn_send_ref(c, z->buf[0], 0, zc_release, z), RINGP2P_EINVAL);
    rp_conn_close(c);
    BG_CHECK_EQ(rp_conn_send_ref(c, z->buf[0], 1, zc_release, z), RINGP2P_ECLOSED);
}

static void zc_dial_task(rp_shard *sh, void *arg)
{
    zc *z = arg;
    BG_CHECK_EQ(rp_dial(sh, (struct sockaddr *)&z->to, sizeof(z->to), NULL, zc_dialed, z), 0);
}

Test(tcp, send_by_reference_releases_once_after_the_kernel_is_done)
{
    rp_runtime_config cfg;
    base_cfg(&cfg, 2);
    cfg.send_zc_threshold = 16 * 1024; /* large sends go SEND_ZC where the kernel has it */
    rp_runtime *rt = start_cfg(&cfg);
    static zc z;
    for (int i = 0; i < ZC_BUFS; i++) {
        z.buf[i] = malloc(ZC_SIZE);
        fill(z.buf[i], 3, (size_t)i * ZC_SIZE, ZC_SIZE);
    }
    static server s;
    struct sockaddr_in any = loopback4(0);
    rp_listen_opts o = { 0 };
    cr_assert_eq(rp_listen(rt, (struct sockaddr *)&any, sizeof(any), &o, zc_accept, &z, &s.l, NULL),
                 0);
    struct sockaddr_storage ss;
    socklen_t sl;
    rp_listener_addr(s.l, &ss, &sl);
    z.to = loopback4(port_of(&ss));
    cr_assert_eq(rp_runtime_post(rt, 1, zc_dial_task, &z), 0);
    cr_assert_eq(wait_for(&z.recvd_done, 1, 20), 1);
    cr_assert_eq(wait_for(&z.closed, 2, 10), 2);
    cr_assert_eq(wait_for(&z.release_total, ZC_BUFS, 5), ZC_BUFS);
    for (int i = 0; i < ZC_BUFS; i++) cr_assert_eq(atomic_load(&z.released[i]), 1, "buffer %d", i);
    cr_assert_eq(atomic_load(&z.bad), 0);
    rp_shard_stats st;
    shard_stats(rt, 1, &st);
    if (!(rp_runtime_features(rt) & RP_FEAT_SEND_ZC))
        cr_log_info("no SEND_ZC on this kernel: references went out with plain SEND");
    if (rp_runtime_features(rt) & RP_FEAT_SEND_ZC) {
        cr_assert_gt(st.sends_zc, 0, "large sends used SEND_ZC");
        /* Loopback copies anyway; once the kernel says so the connection stops using ZC. */
        if (st.zc_copied > 0) cr_assert_gt(st.sends, 0);
    }
    rp_runtime_stop(rt);
    assert_no_leaks(rt);
    rp_runtime_free(rt);
    for (int i = 0; i < ZC_BUFS; i++) free(z.buf[i]);
}

/* ---- half-close ----------------------------------------------------------------------------- */

enum { HC_REQ = 100000, HC_REPLY = 50000 };

typedef struct hc {
    size_t srv_recvd, cli_recvd;
    struct sockaddr_in to;
    _Atomic uint64_t closed, bad, eof_at_full;
    _Atomic int errs[2];
} hc;

static void hc_srv_data(rp_conn *c, void *arg, rp_rbuf *b, const uint8_t *d, size_t n)
{
    hc *h = arg;
    if (check(d, 11, h->srv_recvd, n) != n) atomic_fetch_add(&h->bad, 1);
    h->srv_recvd += n;
}

static void hc_srv_eof(rp_conn *c, void *arg)
{
    hc *h = arg;
    /* The peer's FIN: the request is complete; the reply still goes out. */
    if (h->srv_recvd == HC_REQ) atomic_store(&h->eof_at_full, 1);
    static uint8_t reply[HC_REPLY];
    fill(reply, 12, 0, HC_REPLY);
    if (rp_conn_send(c, reply, HC_REPLY) != 0) atomic_fetch_add(&h->bad, 1);
    rp_conn_close(c);
}

static void hc_srv_close(rp_conn *c, void *arg, int err)
{
    hc *h = arg;
    atomic_store(&h->errs[0], err);
    atomic_fetch_add(&h->closed, 1);
}

static void hc_cli_data(rp_conn *c, void *arg, rp_rbuf *b, const uint8_t *d, size_t n)
{
    hc *h = arg;
    if (check(d, 12, h->cli_recvd, n) != n) atomic_fetch_add(&h->bad, 1);
    h->cli_recvd += n;
}

static void hc_cli_close(rp_conn *c, void *arg, int err)
{
    hc *h = arg;
    if (h->cli_recvd != HC_REPLY) atomic_fetch_add(&h->bad, 1);
    atomic_store(&h->errs[1], err);
    atomic_fetch_add(&h->closed, 1);
}

static const rp_conn_cbs hc_srv_cbs = { .on_data = hc_srv_data,
                                        .on_eof = hc_srv_eof,
                                        .on_close = hc_srv_close };
static const rp_conn_cbs hc_cli_cbs = { .on_data = hc_cli_data, .on_close = hc_cli_close };

static void hc_accept(rp_shard *sh, void *arg, rp_conn *c)
{
    rp_conn_set_cbs(c, &hc_srv_cbs, arg);
}

static void hc_dialed(rp_shard *sh, void *arg, rp_conn *c, int err)
{
    hc *h = arg;
    if (err != 0) {
        atomic_fetch_add(&h->bad, 1);
        atomic_fetch_add(&h->closed, 2);
        return;
    }
    rp_conn_set_cbs(c, &hc_cli_cbs, h);
    static uint8_t req[HC_REQ];
    fill(req, 11, 0, HC_REQ);
    BG_CHECK_EQ(rp_conn_send(c, req, HC_REQ), 0);
    rp_conn_close(c); /* FIN after the request; the reply must still arrive */
    BG_CHECK_EQ(rp_conn_send(c, req, 1), RINGP2P_ECLOSED);
}

static void hc_dial_task(rp_shard *sh, void *arg)
{
    hc *h = arg;
    BG_CHECK_EQ(rp_dial(sh, (struct sockaddr *)&h->to, sizeof(h->to), NULL, hc_dialed, h), 0);
}

Test(tcp, graceful_close_is_a_half_close)
{
    rp_runtime *rt = start(2);
    static hc h;
    static server s;
    struct sockaddr_in any = loopback4(0);
    rp_listen_opts o = { 0 };
    cr_assert_eq(rp_listen(rt, (struct sockaddr *)&any, sizeof(any), &o, hc_accept, &h, &s.l, NULL),
                 0);
    struct sockaddr_storage ss;
    socklen_t sl;
    rp_listener_addr(s.l, &ss, &sl);
    h.to = loopback4(port_of(&ss));
    cr_assert_eq(rp_runtime_post(rt, 0, hc_dial_task, &h), 0);
    cr_assert_eq(wait_for(&h.closed, 2, 10), 2);
    cr_assert_eq(atomic_load(&h.bad), 0);
    cr_assert_eq(atomic_load(&h.eof_at_full), 1);
    cr_assert_eq(atomic_load(&h.errs[0]), 0);
    cr_assert_eq(atomic_load(&h.errs[1]), 0);
    rp_runtime_free(rt);
}

/* ---- accept balancing --------------------------------------------------------------------- */

typedef struct hold_srv {
    _Atomic uint64_t accepted, closed;
} hold_srv;

static void hold_data(rp_conn *c, void *arg, rp_rbuf *b, const uint8_t *d, size_t n) {}

static void hold_close(rp_conn *c, void *arg, int err)
{
    atomic_fetch_add(&((hold_srv *)arg)->closed, 1);
}

static const rp_conn_cbs hold_cbs = { .on_data = hold_data, .on_close = hold_close };

static void hold_accept(rp_shard *sh, void *arg, rp_conn *c)
{
    atomic_fetch_add(&((hold_srv *)arg)->accepted, 1);
    rp_conn_set_cbs(c, &hold_cbs, arg);
}

typedef struct preload {
    struct sockaddr_in to;
    unsigned n;
    hold_srv *h;
    _Atomic uint64_t up;
} preload;

static void preload_dialed(rp_shard *sh, void *arg, rp_conn *c, int err)
{
    preload *p = arg;
    if (c != NULL) {
        rp_conn_set_cbs(c, &hold_cbs, p->h);
        atomic_fetch_add(&p->up, 1);
    }
}

static void preload_task(rp_shard *sh, void *arg)
{
    preload *p = arg;
    for (unsigned i = 0; i < p->n; i++)
        rp_dial(sh, (struct sockaddr *)&p->to, sizeof(p->to), NULL, preload_dialed, p);
}

static void run_balance(unsigned ratio, rp_shard_stats st[2])
{
    rp_runtime_config cfg;
    base_cfg(&cfg, 2);
    cfg.balance_ratio_pct = ratio;
    rp_runtime *rt = start_cfg(&cfg);
    /* Load shard 0 with 40 outbound connections to a listener outside the runtime. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback4(0);
    socklen_t al = sizeof(a);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(lfd, 128), 0);
    getsockname(lfd, (struct sockaddr *)&a, &al);
    static hold_srv h;
    memset(&h, 0, sizeof(h));
    static preload p;
    memset(&p, 0, sizeof(p));
    p.to = a;
    p.n = 40;
    p.h = &h;
    cr_assert_eq(rp_runtime_post(rt, 0, preload_task, &p), 0);
    cr_assert_eq(wait_for(&p.up, 40, 10), 40);
    /* Then 40 peers connect to the runtime's listener; the kernel splits them by hash. */
    rp_listener *l;
    struct sockaddr_in any = loopback4(0);
    rp_listen_opts o = { 0 };
    cr_assert_eq(rp_listen(rt, (struct sockaddr *)&any, sizeof(any), &o, hold_accept, &h, &l, NULL),
                 0);
    struct sockaddr_storage ss;
    socklen_t sl;
    rp_listener_addr(l, &ss, &sl);
    int cfd[40];
    for (int i = 0; i < 40; i++) cfd[i] = raw_connect(port_of(&ss));
    cr_assert_eq(wait_for(&h.accepted, 40, 10), 40);
    for (unsigned i = 0; i < 2; i++) shard_stats(rt, i, &st[i]);
    for (int i = 0; i < 40; i++) close(cfd[i]);
    rp_runtime_free(rt);
    close(lfd);
}

Test(tcp, accepts_move_to_the_least_loaded_shard)
{
    rp_shard_stats st[2];
    run_balance(0, st);
    cr_assert_gt(st[0].accepts, 0, "the kernel gave shard 0 no accepts (1 in 2^40)");
    cr_assert_gt(st[0].handoffs_out, 0);
    cr_assert_eq(st[1].handoffs_in, st[0].handoffs_out);
    cr_assert_eq(st[1].handoffs_out, 0, "shard 1 is the lighter one");
    cr_assert_eq(st[0].conns_accepted + st[1].conns_accepted, 40);
    cr_assert_gt(st[1].conns_accepted, st[0].conns_accepted);
}

Test(tcp, accept_balancing_can_be_turned_off)
{
    rp_shard_stats st[2];
    run_balance(UINT32_MAX, st);
    cr_assert_eq(st[0].handoffs_out + st[1].handoffs_out, 0);
    cr_assert_eq(st[0].conns_accepted, st[0].accepts);
    cr_assert_eq(st[1].conns_accepted, st[1].accepts);
}

/* ---- shutdown under load ------------------------------------------------------------------ */

typedef struct load {
    struct sockaddr_in to;
    unsigned per_shard;
    _Atomic uint64_t up, closed_cli, closed_srv, refs_sent, refs_released, srv_accepted;
} load;

static void load_release(void *arg, const void *data, size_t len)
{
    atomic_fetch_add(&((load *)arg)->refs_released, 1);
}

static void load_pump(rp_conn *c, void *arg)
{
    load *l = arg;
    static const uint8_t blob[32 * 1024];
    static uint8_t copybuf[8 * 1024];
    while (rp_conn_writable(c)) {
        if (rp_conn_send(c, copybuf, sizeof(copybuf)) != 0) return;
        if (rp_conn_send_ref(c, blob, sizeof(blob), load_release, l) != 0) return;
        atomic_fetch_add(&l->refs_sent, 1);
    }
}

static void load_data(rp_conn *c, void *arg, rp_rbuf *b, const uint8_t *d, size_t n) {}

static void load_cli_close(rp_conn *c, void *arg, int err)
{
    atomic_fetch_add(&((load *)arg)->closed_cli, 1);
}

static void load_srv_close(rp_conn *c, void *arg, int err)
{
    atomic_fetch_add(&((load *)arg)->closed_srv, 1);
}

static void load_srv_data(rp_conn *c, void *arg, rp_rbuf *b, const uint8_t *d, size_t n)
{
    /* Echo and keep some buffers for a while: stop must cope with both. */
    rp_conn_send(c, d, n);
}

static const rp_conn_cbs load_cli_cbs = { .on_data = load_data,
                                          .on_writable = load_pump,
                                          .on_close = load_cli_close };
static const rp_conn_cbs load_srv_cbs = { .on_data = load_srv_data, .on_close = load_srv_close };

static void load_accept(rp_shard *sh, void *arg, rp_conn *c)
{
    atomic_fetch_add(&((load *)arg)->srv_accepted, 1);
    rp_conn_set_cbs(c, &load_srv_cbs, arg);
}

static void load_dialed(rp_shard *sh, void *arg, rp_conn *c, int err)
{
    load *l = arg;
    if (c == NULL) return;
    rp_conn_set_cbs(c, &load_cli_cbs, l);
    atomic_fetch_add(&l->up, 1);
    load_pump(c, l);
}

static void load_task(rp_shard *sh, void *arg)
{
    load *l = arg;
    for (unsigned i = 0; i < l->per_shard; i++)
        BG_CHECK_EQ(rp_dial(sh, (struct sockaddr *)&l->to, sizeof(l->to), NULL, load_dialed, l), 0);
}

Test(tcp, stop_under_load_closes_everything_and_leaks_nothing)
{
    rp_runtime *rt = start(2);
    static load l;
    static server s;
    struct sockaddr_in any = loopback4(0);
    rp_listen_opts o = { 0 };
    cr_assert_eq(
        rp_listen(rt, (struct sockaddr *)&any, sizeof(any), &o, load_accept, &l, &s.l, NULL), 0);
    struct sockaddr_storage ss;
    socklen_t sl;
    rp_listener_addr(s.l, &ss, &sl);
    l.to = loopback4(port_of(&ss));
    l.per_shard = 50;
    cr_assert_eq(rp_runtime_post(rt, 0, load_task, &l), 0);
    cr_assert_eq(rp_runtime_post(rt, 1, load_task, &l), 0);
    cr_assert_eq(wait_for(&l.up, 100, 10), 100);
    cr_assert_eq(wait_for(&l.srv_accepted, 100, 10), 100);
    sleep_ms(300); /* traffic in both directions on every connection */
    uint64_t t0 = mono_ns();
    rp_runtime_stop(rt);
    uint64_t ms = (mono_ns() - t0) / 1000000;
    cr_assert_eq(atomic_load(&l.closed_cli), 100);
    cr_assert_eq(atomic_load(&l.closed_srv), 100);
    cr_assert_eq(atomic_load(&l.refs_released), atomic_load(&l.refs_sent));
    cr_assert_lt(ms, 5000, "stop took %llu ms", (unsigned long long)ms);
    assert_no_leaks(rt);
    rp_runtime_free(rt);
}

Test(tcp, listener_close_stops_accepting)
{
    rp_runtime *rt = start(2);
    static server s;
    listen_echo(rt, &s);
    int fd = raw_connect(s.port);
    close(fd);
    cr_assert_eq(wait_for(&s.accepted, 1, 10), 1);
    rp_listener_close(s.l);
    rp_listener_close(s.l); /* idempotent */
    sleep_ms(100);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = loopback4(s.port);
    cr_assert_neq(connect(c, (struct sockaddr *)&to, sizeof(to)), 0, "still listening");
    cr_assert_eq(errno, ECONNREFUSED);
    close(c);
    rp_runtime_free(rt);
}
