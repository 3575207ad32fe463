/*
 * The host's security protocols end to end over loopback (two in-process
 * nodes, two shards each): /noise, /tls/1.0.0, /ringp2p/signed/1.0.0 and
 * /plaintext/2.0.0 chosen by multistream-select from each node's preference
 * list, echoed streams checked byte for byte, refusals checked by code and
 * message, and the connection info naming the protocol (and the muxer) on
 * both ends.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* An open that is expected to fail (the raw listener below never answers): its error. */
static void open_failed(ringp2p_node *n, ringp2p_stream *s, int err, const ringp2p_errinfo *ei,
                        void *ctx)
{
    (void)n;
    (void)ei;
    if (s != NULL) ringp2p_stream_reset(s);
    atomic_store((_Atomic int *)ctx, err < 0 ? err : 1);
}

/*
 * Bytes a node dialing a raw TCP listener sends before it hears anything
 * (read until `quiet_ms` pass without more), into buf; returns the count.
 */
static size_t first_flight(const char *sec, uint8_t *buf, size_t cap, int quiet_ms)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(ls, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    cr_assert_eq(bind(ls, (struct sockaddr *)&sa, sl), 0);
    cr_assert_eq(listen(ls, 4), 0);
    cr_assert_eq(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);
    char text[64];
    snprintf(text, sizeof(text), "/ip4/127.0.0.1/tcp/%u", ntohs(sa.sin_port));
    ringp2p_multiaddr *to;
    cr_assert_eq(ringp2p_multiaddr_parse(text, &to, NULL), 0);
    ringp2p_node *cli = mk_node(false, sec, NULL);
    const char *protos[1] = { "/echo/1.0.0" };
    static _Atomic int done;
    atomic_store(&done, 0);
    cr_assert_eq(ringp2p_node_new_stream(cli, to, protos, 1, open_failed, (void *)&done), 0);
    int c = accept(ls, NULL, NULL);
    cr_assert_geq(c, 0);
    size_t got = 0;
    struct pollfd p = { .fd = c, .events = POLLIN };
    while (got < cap && poll(&p, 1, quiet_ms) == 1) {
        ssize_t n = read(c, buf + got, cap - got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(c);
    close(ls);
    cr_assert(WAIT_UNTIL(atomic_load(&done) != 0, 5000), "the open never ended");
    cr_assert_lt(atomic_load(&done), 0, "an open to a silent listener succeeded");
    ringp2p_node_free(cli);
    ringp2p_multiaddr_free(to);
    return got;
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
        static echo_job jobs[STREAMS];
        /* lengths not frame-aligned */
        echo_many(cli, to, jobs, STREAMS, (uint32_t)(c * 100 + 1), LEN, 4099, cases[c].cfg,
                  cases[c].id, NULL);
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
        char what[32];
        snprintf(what, sizeof(what), "row %zu", c);
        echo_job j = { .seed = 7, .len = 100000 };
        echo_wait(cli, to, &j, 20000, what);
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
 * A dialer with one security protocol proposes it lazily: its first Noise
 * message (a 2-byte length and the 32-byte ephemeral key) follows the
 * proposal before the listener has said anything, so both leave in one
 * segment. With two to choose from it waits for the listener's answer.
 */
Test(host_security, one_protocol_is_proposed_with_its_first_message)
{
    static const uint8_t proposal[] = "\x13/multistream/1.0.0\n\x07/noise\n";
    const size_t plen = sizeof(proposal) - 1;
    uint8_t buf[4096];
    size_t n = first_flight("noise", buf, sizeof(buf), 300);
    cr_assert_eq(n, plen + 2 + 32, "one protocol: %zu bytes before any answer", n);
    cr_assert_eq(memcmp(buf, proposal, plen), 0);
    cr_assert_eq(buf[plen], 0);
    cr_assert_eq(buf[plen + 1], 32, "a Noise XX first message of 32 bytes");
    n = first_flight("noise,tls", buf, sizeof(buf), 300);
    cr_assert_eq(n, plen, "two protocols: %zu bytes before any answer", n);
    cr_assert_eq(memcmp(buf, proposal, plen), 0);
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
        char what[32];
        snprintf(what, sizeof(what), "row %zu", c);
        echo_job j = { .seed = 1, .len = 10 };
        echo_wait(cli, to, &j, 20000, what);
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
    static const host_list_case cases[] = {
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
    check_lists(ringp2p_config_security, cases, sizeof(cases) / sizeof(cases[0]));
}

/* After a refused list the node still runs the previous one (noise by default). */
Test(host_security, failed_list_keeps_previous)
{
    seclog log = { 0 };
    ringp2p_node *srv = host_node_after_failed_list(ringp2p_config_security, "signed", "noise,quic",
                                                    on_event, &log);
    ringp2p_node *cli = mk_node(false, "noise,signed", NULL);
    ringp2p_multiaddr *to = addr_of(srv);
    echo_job j = { .seed = 3, .len = 5000 };
    echo_wait(cli, to, &j, 20000, "after a failed list");
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
    ringp2p_config *cfg = host_config(listen ? HOST_LOOPBACK : NULL, 2);
    ringp2p_errinfo ei;
    cr_assert_eq(ringp2p_config_security(cfg, "tls", &ei), 0);
    if (log != NULL) ringp2p_config_events(cfg, on_event, log);
    ringp2p_node *n = host_new(cfg);
    rp_host_no_early_muxer(n);
    return host_start(n);
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
        static echo_job jobs[STREAMS];
        char what[32];
        snprintf(what, sizeof(what), "mode %d", mode);
        /* lengths not record-aligned */
        echo_many(cli, to, jobs, STREAMS, (uint32_t)(mode * 10 + 50), LEN, 16381, what,
                  "/tls/1.0.0", "/yamux/1.0.0");
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
    char real[RINGP2P_PEER_ID_STR_MAX], ids[RINGP2P_PEER_ID_STR_MAX];
    cr_assert_gt(ringp2p_peer_id_to_string(ringp2p_node_id(srv), real, sizeof(real)), 0);
    ringp2p_multiaddr *bad = addr_of_other_peer(to, RINGP2P_KEY_SECP256K1, ids, sizeof(ids));
    echo_job j = { .seed = 1, .len = 10 };
    echo_wait(cli, bad, &j, 20000, "to another peer's ID");
    cr_assert_eq(j.open_err, RINGP2P_EPEERMISMATCH, "got %d: %s", j.open_err, j.errmsg);
    cr_assert_not_null(strstr(j.errmsg, ids), "names the expected ID: %s", j.errmsg);
    cr_assert_not_null(strstr(j.errmsg, real), "names the certificate's ID: %s", j.errmsg);
    cr_assert_eq(log.connected, 0, "the listener reported the connection");
    ringp2p_multiaddr_free(bad);
    ringp2p_multiaddr_free(to);
    ringp2p_node_free(cli);
    ringp2p_node_free(srv);
}
