/*
 * The host's security protocols end to end over loopback (two in-process
 * nodes, two shards each): /noise, /tls/1.0.0, /ringp2p/signed/1.0.0 and
 * /plaintext/2.0.0 chosen by multistream-select from each node's preference
 * list, echoed streams checked byte for byte, refusals checked by code and
 * message, and the connection info naming the protocol (and the muxer) on
 * both ends.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "host/host.h"
#include "ringp2p/node.h"
#include "hostutil.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------------------ */

/* What the listener saw: CONNECTED events and the security and muxer of the last one. */
typedef struct seclog {
    _Atomic int connected;
    _Atomic(const char *) security; /* the info's strings: static, outlive the event */
    _Atomic(const char *) muxer;
} seclog;

static void on_event(ringp2p_node *n, const ringp2p_event *ev, void *ctx)
{
    seclog *l = ctx;
    (void)n;
    if (ev->type != RINGP2P_EVENT_CONNECTED) return;
    l->security = ev->conn->security;
    l->muxer = ev->conn->muxer;
    l->connected++;
}

/* A node with security list `sec` (NULL: the default), listening when `listen`. */
static ringp2p_node *mk_node(bool listen, const char *sec, seclog *log)
{
    return host_node(listen, sec, log != NULL ? on_event : NULL, log);
}

/* An echo client stream: writes len pattern bytes, checks what comes back. */
typedef struct job {
    uint32_t seed;
    size_t len, sent, got;
    _Atomic int open_err, close_err;
    _Atomic bool bad;
    char security[64]; /* the connection info's security protocol ID */
    char muxer[64];    /* ... and muxer */
    char errmsg[RINGP2P_ERRINFO_MSG_MAX];
    waiter *w;
} job;

static void job_pump(ringp2p_stream *s, job *j)
{
    uint8_t buf[8192];
    while (j->sent < j->len) {
        size_t n = j->len - j->sent < sizeof(buf) ? j->len - j->sent : sizeof(buf);
        for (size_t i = 0; i < n; i++) buf[i] = pat(j->seed, j->sent + i);
        ssize_t r = ringp2p_stream_write(s, buf, n);
        if (r == RINGP2P_EAGAIN) return;
        if (r < 0) {
            j->bad = true;
            ringp2p_stream_reset(s);
            return;
        }
        j->sent += n;
    }
    ringp2p_stream_close_write(s);
}

static void job_data(ringp2p_stream *s, void *ctx, const uint8_t *d, size_t len)
{
    job *j = ctx;
    (void)s;
    for (size_t i = 0; i < len; i++)
        if (d[i] != pat(j->seed, j->got + i)) j->bad = true;
    j->got += len;
}

static void job_writable(ringp2p_stream *s, void *ctx)
{
    job_pump(s, ctx);
}

static void job_close(ringp2p_stream *s, void *ctx, int err)
{
    job *j = ctx;
    (void)s;
    j->close_err = err;
    w_signal(j->w);
}

static const ringp2p_stream_callbacks job_cbs = {
    .on_data = job_data,
    .on_writable = job_writable,
    .on_close = job_close,
};

static void job_open(ringp2p_node *n, ringp2p_stream *s, int err, const ringp2p_errinfo *ei,
                     void *ctx)
{
    job *j = ctx;
    (void)n;
    if (err < 0) {
        snprintf(j->errmsg, sizeof(j->errmsg), "%s", ei != NULL ? ei->msg : "");
        j->open_err = err;
        w_signal(j->w);
        return;
    }
    const char *sec = ringp2p_stream_conn(s)->security, *mux = ringp2p_stream_conn(s)->muxer;
    snprintf(j->security, sizeof(j->security), "%s", sec != NULL ? sec : "(null)");
    snprintf(j->muxer, sizeof(j->muxer), "%s", mux != NULL ? mux : "(null)");
    ringp2p_stream_set_callbacks(s, &job_cbs, j);
    job_pump(s, j);
}

static void open_job(ringp2p_node *n, ringp2p_multiaddr *to, job *j)
{
    const char *protos[1] = { "/echo/1.0.0" };
    cr_assert_eq(ringp2p_node_new_stream(n, to, protos, 1, job_open, j), 0);
}

/* ---- tests -------------------------------------------------------------------------------- */

TestSuite(host_security, .timeout = 90);

/*
 * Each protocol, configured on both sides, carries 4 echo streams of 1 MiB
 * (4 MiB each way) byte-exact; both ends' connection info names it.
 */
Test(host_security, echo_each_protocol)
{
    static const struct {
        const char *cfg, *id;
    } cases[] = {
        { "noise", "/noise" },
        { "tls", "/tls/1.0.0" },
        { "signed", "/ringp2p/signed/1.0.0" },
        { "plaintext", "/plaintext/2.0.0" },
    };
    enum { STREAMS = 4, LEN = 1 << 20 };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        seclog log = { 0 };
        ringp2p_node *srv = mk_node(true, cases[c].cfg, &log);
        ringp2p_node *cli = mk_node(false, cases[c].cfg, NULL);
        ringp2p_multiaddr *to = addr_of(srv);
        waiter w;
        w_init(&w);
        static job jobs[STREAMS];
        memset(jobs, 0, sizeof(jobs));
        for (int i = 0; i < STREAMS; i++) {
            jobs[i].seed = (uint32_t)(c * 100 + (size_t)i + 1);
            jobs[i].len = LEN + (size_t)i * 4099; /* not frame-aligned */
            jobs[i].w = &w;
            open_job(cli, to, &jobs[i]);
        }
        int got = w_wait(&w, STREAMS, 60000);
        cr_assert_eq(got, STREAMS, "%s: %d of %d streams finished", cases[c].cfg, got, STREAMS);
        for (int i = 0; i < STREAMS; i++) {
            job *j = &jobs[i];
            cr_assert_eq(j->open_err, 0, "%s stream %d: %s", cases[c].cfg, i, j->errmsg);
            cr_assert(!j->bad, "%s stream %d: wrong bytes", cases[c].cfg, i);
            cr_assert_eq(j->got, j->len, "%s stream %d: %zu of %zu", cases[c].cfg, i, j->got,
                         j->len);
            cr_assert_eq(j->close_err, 0, "%s stream %d", cases[c].cfg, i);
            cr_assert_str_eq(j->security, cases[c].id);
        }
        cr_assert_eq(log.connected, 1, "%s: one connection", cases[c].cfg);
        cr_assert_str_eq(log.security, cases[c].id, "listener's info");
        ringp2p_node_free(cli);
        ringp2p_node_free(srv);
        ringp2p_multiaddr_free(to);
    }
}

/*
 * The dialer proposes its list in order; the listener takes the first it has
 * configured. Each row: dialer list, listener list, agreed protocol ID.
 */
Test(host_security, preference_negotiation)
{
    static const struct {
        const char *dialer, *listener, *id;
    } cases[] = {
        { "signed,noise", "noise", "/noise" },
        { "signed,noise", "noise,signed", "/ringp2p/signed/1.0.0" },
        { "noise,signed", "signed,noise", "/noise" },
        { "plaintext,signed", "noise,signed", "/ringp2p/signed/1.0.0" },
        { "signed,plaintext", "plaintext", "/plaintext/2.0.0" },
        { "tls,noise", "noise,tls", "/tls/1.0.0" },
        { "noise,tls", "tls,noise", "/noise" },
        { "tls,noise", "noise", "/noise" },
        { "noise,tls", "tls", "/tls/1.0.0" },
        { "signed,tls", "tls,signed,noise", "/ringp2p/signed/1.0.0" },
        { NULL, "tls", "/tls/1.0.0" }, /* the default list, "noise,tls", reaches TLS */
        { NULL, NULL, "/noise" },      /* ... and prefers Noise */
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        seclog log = { 0 };
        ringp2p_node *srv = mk_node(true, cases[c].listener, &log);
        ringp2p_node *cli = mk_node(false, cases[c].dialer, NULL);
        ringp2p_multiaddr *to = addr_of(srv);
        waiter w;
        w_init(&w);
        job j = { .seed = 7, .len = 100000, .w = &w };
        open_job(cli, to, &j);
        cr_assert_eq(w_wait(&w, 1, 20000), 1, "row %zu", c);
        cr_assert_eq(j.open_err, 0, "row %zu: %s", c, j.errmsg);
        cr_assert(!j.bad);
        cr_assert_eq(j.got, j.len);
        cr_assert_str_eq(j.security, cases[c].id, "row %zu (%s vs %s)", c,
                         cases[c].dialer != NULL ? cases[c].dialer : "default",
                         cases[c].listener != NULL ? cases[c].listener : "default");
        cr_assert_str_eq(log.security, cases[c].id, "row %zu listener", c);
        ringp2p_node_free(cli);
        ringp2p_node_free(srv);
        ringp2p_multiaddr_free(to);
    }
}

/*
 * A node that did not enable a protocol never accepts it: the dial fails
 * with RINGP2P_ENEGOTIATION naming the security step, and the listener never
 * reports a connection. Rows: dialer list, listener list (NULL = default).
 */
Test(host_security, refused_without_common_protocol)
{
    static const struct {
        const char *dialer, *listener;
    } cases[] = {
        { "signed", NULL }, { "plaintext", NULL },         { "signed,plaintext", "noise" },
        { NULL, "signed" }, { "noise", "plaintext" },      { "tls", "noise" },
        { "noise", "tls" }, { "tls", "signed,plaintext" },
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        seclog log = { 0 };
        ringp2p_node *srv = mk_node(true, cases[c].listener, &log);
        ringp2p_node *cli = mk_node(false, cases[c].dialer, NULL);
        ringp2p_multiaddr *to = addr_of(srv);
        waiter w;
        w_init(&w);
        job j = { .seed = 1, .len = 10, .w = &w };
        open_job(cli, to, &j);
        cr_assert_eq(w_wait(&w, 1, 20000), 1, "row %zu", c);
        cr_assert_eq(j.open_err, RINGP2P_ENEGOTIATION, "row %zu: got %d: %s", c, j.open_err,
                     j.errmsg);
        cr_assert_not_null(strstr(j.errmsg, "no common security protocol"), "row %zu: %s", c,
                           j.errmsg);
        cr_assert_eq(log.connected, 0, "row %zu: the listener accepted", c);
        ringp2p_node_free(cli);
        ringp2p_node_free(srv);
        ringp2p_multiaddr_free(to);
    }
}

/* The config parser: known names, refusals with their codes, a failed call keeps the old list. */
Test(host_security, config_lists)
{
    static const struct {
        const char *list;
        int want;
    } cases[] = {
        { "noise", 0 },
        { "signed", 0 },
        { "plaintext", 0 },
        { "noise, signed ,plaintext", 0 },
        { "signed,signed", 0 },
        { "tls", 0 },
        { "noise,tls,signed,plaintext", 0 },
        { "noise,quic", RINGP2P_EUNSUPPORTED },
        { "", RINGP2P_EINVAL },
        { ",", RINGP2P_EUNSUPPORTED }, /* an empty name is an unknown one */
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        ringp2p_config *cfg = ringp2p_config_new();
        cr_assert_not_null(cfg);
        ringp2p_errinfo ei = { 0, "" };
        int r = ringp2p_config_security(cfg, cases[c].list, &ei);
        cr_assert_eq(r, cases[c].want, "\"%s\": got %d (%s)", cases[c].list, r, ei.msg);
        if (r < 0) cr_assert_neq(ei.msg[0], 0, "\"%s\": the error is explained", cases[c].list);
        ringp2p_config_free(cfg);
    }
}

/* After a refused list the node still runs the previous one (noise by default). */
Test(host_security, failed_list_keeps_previous)
{
    ringp2p_config *cfg = ringp2p_config_new();
    cr_assert_not_null(cfg);
    ringp2p_errinfo ei;
    cr_assert_eq(ringp2p_config_security(cfg, "signed", &ei), 0);
    cr_assert_eq(ringp2p_config_security(cfg, "noise,quic", &ei), RINGP2P_EUNSUPPORTED);
    cr_assert_eq(ringp2p_config_listen(cfg, "/ip4/127.0.0.1/tcp/0", &ei), 0);
    ringp2p_config_shards(cfg, 2);
    seclog log = { 0 };
    ringp2p_config_events(cfg, on_event, &log);
    ringp2p_node *srv;
    cr_assert_eq(ringp2p_node_new(cfg, &srv, &ei), 0, "%s", ei.msg);
    ringp2p_config_free(cfg);
    int r = ringp2p_node_start(srv, &ei);
    if (r == RINGP2P_EUNSUPPORTED) cr_skip_test("io_uring unsupported: %s", ei.msg);
    cr_assert_eq(r, 0, "%s", ei.msg);
    ringp2p_node *cli = mk_node(false, "noise,signed", NULL);
    ringp2p_multiaddr *to = addr_of(srv);
    waiter w;
    w_init(&w);
    job j = { .seed = 3, .len = 5000, .w = &w };
    open_job(cli, to, &j);
    cr_assert_eq(w_wait(&w, 1, 20000), 1);
    cr_assert_eq(j.open_err, 0, "%s", j.errmsg);
    cr_assert_str_eq(j.security, "/ringp2p/signed/1.0.0");
    ringp2p_node_free(cli);
    ringp2p_node_free(srv);
    ringp2p_multiaddr_free(to);
}

/* ---- TLS ---------------------------------------------------------------------------------- */

/* A started TLS node (2 shards) that offers no muxer in ALPN (only "libp2p"). */
static ringp2p_node *tls_node_no_alpn_muxer(bool listen, seclog *log)
{
    ringp2p_config *cfg = ringp2p_config_new();
    cr_assert_not_null(cfg);
    ringp2p_errinfo ei;
    if (listen) cr_assert_eq(ringp2p_config_listen(cfg, "/ip4/127.0.0.1/tcp/0", &ei), 0);
    cr_assert_eq(ringp2p_config_security(cfg, "tls", &ei), 0);
    ringp2p_config_shards(cfg, 2);
    if (log != NULL) ringp2p_config_events(cfg, on_event, log);
    ringp2p_node *n;
    cr_assert_eq(ringp2p_node_new(cfg, &n, &ei), 0, "%s", ei.msg);
    ringp2p_config_free(cfg);
    rp_host_no_early_muxer(n);
    int r = ringp2p_node_start(n, &ei);
    if (r == RINGP2P_EUNSUPPORTED) cr_skip_test("io_uring unsupported: %s", ei.msg);
    cr_assert_eq(r, 0, "start: %s", ei.msg);
    return n;
}

/*
 * The muxer over TLS: chosen by ALPN when both offer it, else (one side
 * offers only "libp2p") by multistream-select inside the TLS channel. Either
 * way three echo streams of 2 MiB come back byte for byte and both ends name
 * /tls/1.0.0 and /yamux/1.0.0.
 */
Test(host_security, tls_muxer_by_alpn_or_multistream)
{
    enum { STREAMS = 3, LEN = 2 << 20 };
    for (int mode = 0; mode < 3; mode++) {
        /* 0: ALPN; 1: the dialer offers no muxer in ALPN; 2: the listener does not */
        seclog log = { 0 };
        ringp2p_node *srv =
            mode == 2 ? tls_node_no_alpn_muxer(true, &log) : mk_node(true, "tls", &log);
        ringp2p_node *cli =
            mode == 1 ? tls_node_no_alpn_muxer(false, NULL) : mk_node(false, "tls", NULL);
        ringp2p_multiaddr *to = addr_of(srv);
        waiter w;
        w_init(&w);
        static job jobs[STREAMS];
        memset(jobs, 0, sizeof(jobs));
        for (int i = 0; i < STREAMS; i++) {
            jobs[i].seed = (uint32_t)(mode * 10 + i + 50);
            jobs[i].len = LEN + (size_t)i * 16381; /* not record-aligned */
            jobs[i].w = &w;
            open_job(cli, to, &jobs[i]);
        }
        cr_assert_eq(w_wait(&w, STREAMS, 60000), STREAMS, "mode %d", mode);
        for (int i = 0; i < STREAMS; i++) {
            job *j = &jobs[i];
            cr_assert_eq(j->open_err, 0, "mode %d stream %d: %s", mode, i, j->errmsg);
            cr_assert(!j->bad, "mode %d stream %d: wrong bytes", mode, i);
            cr_assert_eq(j->got, j->len, "mode %d stream %d", mode, i);
            cr_assert_eq(j->close_err, 0);
            cr_assert_str_eq(j->security, "/tls/1.0.0");
            cr_assert_str_eq(j->muxer, "/yamux/1.0.0");
        }
        cr_assert_eq(log.connected, 1, "mode %d: one connection", mode);
        cr_assert_str_eq(log.security, "/tls/1.0.0");
        cr_assert_str_eq(log.muxer, "/yamux/1.0.0");
        ringp2p_node_free(cli);
        ringp2p_node_free(srv);
        ringp2p_multiaddr_free(to);
    }
}

/*
 * Dialing a TLS listener under another peer's ID: the certificate names the
 * real peer, the dial fails with EPEERMISMATCH naming both IDs, and the
 * listener never reports a connection.
 */
Test(host_security, tls_peer_id_mismatch_names_both)
{
    seclog log = { 0 };
    ringp2p_node *srv = mk_node(true, "tls", &log), *cli = mk_node(false, "tls", NULL);
    ringp2p_multiaddr *to = addr_of(srv);
    char text[512], real[RINGP2P_PEER_ID_STR_MAX], ids[RINGP2P_PEER_ID_STR_MAX];
    cr_assert_gt(ringp2p_multiaddr_to_string(to, text, sizeof(text)), 0);
    snprintf(real, sizeof(real), "%s", strstr(text, "/p2p/") + 5);
    ringp2p_privkey *k;
    cr_assert_eq(ringp2p_privkey_generate(RINGP2P_KEY_SECP256K1, &k), 0);
    ringp2p_peer_id other;
    ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(k), &other);
    ringp2p_peer_id_to_string(&other, ids, sizeof(ids));
    *strstr(text, "/p2p/") = 0;
    strcat(text, "/p2p/");
    strcat(text, ids);
    ringp2p_multiaddr *bad;
    cr_assert_eq(ringp2p_multiaddr_parse(text, &bad, NULL), 0);
    waiter w;
    w_init(&w);
    job j = { .seed = 1, .len = 10, .w = &w };
    open_job(cli, bad, &j);
    cr_assert_eq(w_wait(&w, 1, 20000), 1);
    cr_assert_eq(j.open_err, RINGP2P_EPEERMISMATCH, "got %d: %s", j.open_err, j.errmsg);
    cr_assert_not_null(strstr(j.errmsg, ids), "names the expected ID: %s", j.errmsg);
    cr_assert_not_null(strstr(j.errmsg, real), "names the certificate's ID: %s", j.errmsg);
    cr_assert_eq(log.connected, 0, "the listener reported the connection");
    ringp2p_privkey_free(k);
    ringp2p_multiaddr_free(bad);
    ringp2p_multiaddr_free(to);
    ringp2p_node_free(cli);
    ringp2p_node_free(srv);
}
