/*
 * ringp2p_node_hangup end to end on loopback: streams open both ways end at
 * both ends (RINGP2P_ECLOSED here, a reset at the peer) under yamux and
 * mplex, both ends hear DISCONNECTED and a new stream dials a new
 * connection; requests waiting for a dial or an upgrade fail with the
 * hang-up's message, and a socket that connects after the hang-up is dropped;
 * nothing to hang up on; a hang-up from a thread of its own while shards and
 * the blocking side move data, and from inside an event callback; a relayed
 * connection (the relay connection and the reservation stay), and a relay
 * hanging up on a peer holding a reservation (the reservation ends, the peer
 * reserves again).
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "host/host.h"
#include "host/relay_svc.h"
#include "ringp2p/node.h"
#include "hostutil.h"
#include "testutil.h"

#define HOLD_PROTO "/ringp2p-test/hold/1.0.0"

/* ---- events ------------------------------------------------------------------------------- */

typedef struct evs {
    pthread_mutex_t mu;
    _Atomic int connected, disconnected, rel_connected, rel_disconnected;
    int disc_err, rel_disc_err;
    /* relay client */
    _Atomic int rsv_ok, rsv_lost;
    /* hang up on every peer once it is identified, from this callback (on a shard) */
    bool hangup_on_identified;
    _Atomic int hangups, hangup_bad;
} evs;

static void evs_init(evs *e)
{
    memset(e, 0, sizeof(*e));
    pthread_mutex_init(&e->mu, NULL);
}

static void on_event(ringp2p_node *n, const ringp2p_event *ev, void *ctx)
{
    evs *e = ctx;
    pthread_mutex_lock(&e->mu);
    switch (ev->type) {
    case RINGP2P_EVENT_CONNECTED:
        if (ev->conn->relayed)
            e->rel_connected++;
        else
            e->connected++;
        break;
    case RINGP2P_EVENT_DISCONNECTED:
        if (ev->conn->relayed) {
            e->rel_disc_err = ev->err;
            e->rel_disconnected++;
        } else {
            e->disc_err = ev->err;
            e->disconnected++;
        }
        break;
    case RINGP2P_EVENT_IDENTIFIED:
        if (e->hangup_on_identified) {
            if (ringp2p_node_hangup(n, &ev->conn->peer) != 0) e->hangup_bad++;
            e->hangups++;
        }
        break;
    case RINGP2P_EVENT_RESERVATION:
        if (ev->reservation->ok) e->rsv_ok++;
        if (ev->reservation->lost) e->rsv_lost++;
        break;
    default: break;
    }
    pthread_mutex_unlock(&e->mu);
}

/* ---- streams that stay open until something ends them ------------------------------------ */

enum { HOLD_MAX = 16 };

typedef struct hold_side hold_side;

typedef struct hold_st {
    hold_side *side;
    _Atomic bool closed;
    _Atomic int close_err;
} hold_st;

/* The hold streams of one node, inbound (its handler) and outbound (its opens). */
struct hold_side {
    hold_st st[HOLD_MAX];
    _Atomic int n, closed, open_failed;
    waiter opened, ended;
};

static void hold_close(ringp2p_stream *s, void *ctx, int err)
{
    hold_st *h = ctx;
    (void)s;
    h->close_err = err;
    h->closed = true;
    h->side->closed++;
    w_signal(&h->side->ended);
}

static const ringp2p_stream_callbacks hold_cbs = { .on_data = nop_data, .on_close = hold_close };

/* A stream of `side`, inbound or just opened, with callbacks `cbs` (on_close hold_close):
 * recorded until its on_close. */
static void side_take(ringp2p_stream *s, hold_side *side, const ringp2p_stream_callbacks *cbs)
{
    int i = atomic_fetch_add(&side->n, 1);
    if (i >= HOLD_MAX) {
        ringp2p_stream_reset(s);
        return;
    }
    side->st[i].side = side;
    ringp2p_stream_set_callbacks(s, cbs, &side->st[i]);
    w_signal(&side->opened);
}

static void hold_handler(ringp2p_node *n, ringp2p_stream *s, void *ctx)
{
    (void)n;
    side_take(s, ctx, &hold_cbs);
}

static void hold_opened(ringp2p_node *n, ringp2p_stream *s, int err, const ringp2p_errinfo *ei,
                        void *ctx)
{
    hold_side *side = ctx;
    (void)n, (void)ei;
    if (err < 0) {
        side->open_failed++;
        w_signal(&side->opened);
        return;
    }
    side_take(s, side, &hold_cbs);
}

static void hold_side_init(hold_side *h)
{
    memset(h, 0, sizeof(*h));
    w_init(&h->opened);
    w_init(&h->ended);
}

static void hold_open(ringp2p_node *n, ringp2p_multiaddr *to, hold_side *side)
{
    const char *protos[1] = { HOLD_PROTO };
    cr_assert_eq(ringp2p_node_new_stream(n, to, protos, 1, hold_opened, side), 0);
}

/* ---- nodes -------------------------------------------------------------------------------- */

/* A started node with 2 shards, listening if `listen`, muxers `mux` (NULL: the default). */
static ringp2p_node *mk_node(bool listen, const char *mux, evs *e, hold_side *hold)
{
    ringp2p_config *cfg = host_config(listen ? HOST_LOOPBACK : NULL, 2);
    ringp2p_errinfo ei;
    if (mux != NULL) cr_assert_eq(ringp2p_config_muxers(cfg, mux, &ei), 0, "%s", ei.msg);
    if (e != NULL) ringp2p_config_events(cfg, on_event, e);
    ringp2p_node *n = host_new(cfg);
    if (hold != NULL)
        cr_assert_eq(ringp2p_node_set_stream_handler(n, HOLD_PROTO, hold_handler, hold), 0);
    return host_start(n);
}

/* /p2p/<id of n> */
static ringp2p_multiaddr *bare_of(ringp2p_node *n)
{
    char id[RINGP2P_PEER_ID_STR_MAX], text[RINGP2P_PEER_ID_STR_MAX + 8];
    cr_assert_gt(ringp2p_peer_id_to_string(ringp2p_node_id(n), id, sizeof(id)), 0);
    snprintf(text, sizeof(text), "/p2p/%s", id);
    ringp2p_multiaddr *ma;
    cr_assert_eq(ringp2p_multiaddr_parse(text, &ma, NULL), 0);
    return ma;
}

/* A 1000-byte echo from n to `to` that must succeed; returns its connection's id. */
static uint64_t echo_ok(ringp2p_node *n, ringp2p_multiaddr *to, uint32_t seed, const char *what)
{
    static echo_job e;
    memset(&e, 0, sizeof(e));
    e.seed = seed;
    e.len = 1000;
    echo_wait(n, to, &e, 10000, what);
    echo_check(what, &e, 1, NULL, NULL);
    return e.conn_id;
}

TestSuite(host_hangup, .timeout = 60);

/* ---- streams both ways -------------------------------------------------------------------- */

/*
 * The client holds 4 streams to the server and the server 3 to the client,
 * one connection. The client hangs up: its 7 streams end with RINGP2P_ECLOSED,
 * the server's 7 with a reset, both ends hear DISCONNECTED with err 0 (a
 * graceful close, not an error), and a new stream afterwards gets a new
 * connection that works.
 */
static void streams_both_sides(const char *mux)
{
    enum { OUT = 4, IN = 3 };
    static evs se, ce;
    static hold_side sh, ch;
    evs_init(&se);
    evs_init(&ce);
    hold_side_init(&sh);
    hold_side_init(&ch);
    ringp2p_node *srv = mk_node(true, mux, &se, &sh), *cli = mk_node(false, mux, &ce, &ch);
    ringp2p_multiaddr *to = addr_of(srv), *cli_bare = bare_of(cli);
    for (int i = 0; i < OUT; i++) hold_open(cli, to, &ch);
    cr_assert_eq(w_wait(&ch.opened, OUT, 10000), OUT, "%s: client opens", mux);
    cr_assert_eq(w_wait(&sh.opened, OUT, 10000), OUT, "%s: server accepts", mux);
    for (int i = 0; i < IN; i++) hold_open(srv, cli_bare, &sh);
    cr_assert_eq(w_wait(&sh.opened, OUT + IN, 10000), OUT + IN, "%s: server opens", mux);
    cr_assert_eq(w_wait(&ch.opened, OUT + IN, 10000), OUT + IN, "%s: client accepts", mux);
    cr_assert_eq(ch.open_failed + sh.open_failed, 0);
    cr_assert_eq(ce.connected, 1, "one connection for all: %d", (int)ce.connected);
    cr_assert_eq(ch.closed + sh.closed, 0);

    cr_assert_eq(ringp2p_node_hangup(cli, ringp2p_node_id(srv)), 0);
    cr_assert_eq(w_wait(&ch.ended, OUT + IN, 10000), OUT + IN, "%s: client streams ended", mux);
    cr_assert_eq(w_wait(&sh.ended, OUT + IN, 10000), OUT + IN, "%s: server streams ended", mux);
    for (int i = 0; i < OUT + IN; i++) {
        cr_assert_eq(ch.st[i].close_err, RINGP2P_ECLOSED, "%s: client stream %d: %d", mux, i,
                     (int)ch.st[i].close_err);
        cr_assert_eq(sh.st[i].close_err, RINGP2P_ESTREAMRESET, "%s: server stream %d: %d", mux, i,
                     (int)sh.st[i].close_err);
    }
    cr_assert(WAIT_UNTIL(ce.disconnected == 1 && se.disconnected == 1, 5000),
              "%s: DISCONNECTED client %d server %d", mux, (int)ce.disconnected,
              (int)se.disconnected);
    cr_assert_eq(ce.disc_err, 0, "%s: client DISCONNECTED err %d", mux, ce.disc_err);
    cr_assert_eq(se.disc_err, 0, "%s: server DISCONNECTED err %d", mux, se.disc_err);

    /* nothing left: a second hang-up is harmless */
    cr_assert_eq(ringp2p_node_hangup(cli, ringp2p_node_id(srv)), 0);
    /* at once, before the directory forgot the old connection: a new one is dialed */
    echo_ok(cli, to, 11, mux);
    cr_assert_eq(ce.connected, 2, "%s: a new connection (%d)", mux, (int)ce.connected);
    cr_assert_eq(ce.disconnected, 1);
    cr_assert_eq(se.connected, 2);
    ringp2p_node_free(cli);
    ringp2p_node_free(srv);
    ringp2p_multiaddr_free(to);
    ringp2p_multiaddr_free(cli_bare);
}

Test(host_hangup, streams_both_sides_yamux)
{
    streams_both_sides("yamux");
}

Test(host_hangup, streams_both_sides_mplex)
{
    streams_both_sides("mplex");
}

/* ---- the other end answers in kind ------------------------------------------------------- */

/* Connection errors (resets included) n's shards have seen. */
static uint64_t conn_errors(ringp2p_node *n)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < rp_runtime_nshards(n->rt); i++) {
        rp_shard_stats st;
        rp_runtime_shard_stats(n->rt, i, &st);
        sum += st.errors;
    }
    return sum;
}

/*
 * A hang-up closes gracefully (TLS: close_notify, then a FIN) and the peer
 * answers the same way instead of resetting: the side that hung up, waiting
 * for the peer's FIN, sees no connection error. Before, the peer answered a
 * close_notify or a FIN with a reset.
 */
Test(host_hangup, the_peer_answers_with_its_own_close)
{
    static const char *const secs[] = { "tls", "noise" };
    for (size_t i = 0; i < sizeof(secs) / sizeof(secs[0]); i++) {
        static evs se, ce;
        evs_init(&se);
        evs_init(&ce);
        ringp2p_node *nodes[2];
        for (int k = 0; k < 2; k++) {
            ringp2p_config *cfg = host_config(k == 0 ? HOST_LOOPBACK : NULL, 2);
            ringp2p_errinfo ei;
            cr_assert_eq(ringp2p_config_security(cfg, secs[i], &ei), 0, "%s", ei.msg);
            ringp2p_config_events(cfg, on_event, k == 0 ? &se : &ce);
            nodes[k] = host_start(host_new(cfg));
        }
        ringp2p_node *srv = nodes[0], *cli = nodes[1];
        ringp2p_multiaddr *to = addr_of(srv);
        echo_ok(cli, to, 5, secs[i]);
        cr_assert_eq(ringp2p_node_hangup(cli, ringp2p_node_id(srv)), 0);
        cr_assert(WAIT_UNTIL(ce.disconnected == 1 && se.disconnected == 1, 5000),
                  "%s: DISCONNECTED client %d server %d", secs[i], (int)ce.disconnected,
                  (int)se.disconnected);
        cr_assert_eq(conn_errors(cli), 0, "%s: the peer reset the connection we closed", secs[i]);
        cr_assert_eq(conn_errors(srv), 0, "%s: errors on the side that was hung up on", secs[i]);
        ringp2p_node_free(cli);
        ringp2p_node_free(srv);
        ringp2p_multiaddr_free(to);
    }
}

/* ---- the peer says go-away ---------------------------------------------------------------- */

/*
 * A go-away from the peer (yamux, code 0) with the connection kept open: an
 * idle connection is closed by us at once; a busy one keeps its streams,
 * leaves the directory, and the next stream to the peer takes a new
 * connection instead of failing on this one.
 */
Test(host_hangup, go_away_from_the_peer_moves_new_streams_elsewhere)
{
    static evs se, ce;
    static hold_side sh, ch;
    evs_init(&se);
    evs_init(&ce);
    hold_side_init(&sh);
    hold_side_init(&ch);
    ringp2p_node *srv = mk_node(true, NULL, &se, &sh), *cli = mk_node(false, NULL, &ce, &ch);
    ringp2p_multiaddr *to = addr_of(srv);
    const ringp2p_peer_id *sid = ringp2p_node_id(srv);

    /* idle: closed once the go-away came */
    uint64_t a = echo_ok(cli, to, 3, "first connection");
    cr_assert_eq(rp_host_test_go_away(srv, ringp2p_node_id(cli)), 0);
    cr_assert(WAIT_UNTIL(ce.disconnected == 1, 5000), "an idle connection stayed after go-away");
    cr_assert_eq(ce.disc_err, 0);

    /* busy: the held stream stays, new streams take a new connection */
    hold_open(cli, to, &ch);
    cr_assert_eq(w_wait(&sh.opened, 1, 10000), 1, "held stream accepted");
    cr_assert_eq(ce.connected, 2);
    cr_assert_eq(rp_host_test_go_away(srv, ringp2p_node_id(cli)), 0);
    cr_assert(WAIT_UNTIL(!rp_host_dir_has(cli, sid), 5000), "still in the directory after go-away");
    uint64_t c = echo_ok(cli, to, 4, "after go-away");
    cr_assert_neq(c, a);
    cr_assert_eq(ce.connected, 3, "a new connection for the new stream (%d)", (int)ce.connected);
    cr_assert_eq(ch.closed + sh.closed, 0, "the held stream ended");
    cr_assert_eq(ce.disconnected, 1, "the busy connection closed");
    cr_assert_eq(echo_ok(cli, to, 5, "again"), c, "the new connection is reused");
    ringp2p_node_free(cli);
    ringp2p_node_free(srv);
    ringp2p_multiaddr_free(to);
}

/* ---- nothing to hang up on ---------------------------------------------------------------- */

/*
 * A peer never connected: 0, and the node is unharmed. Arguments: EINVAL;
 * a node not started (or stopped): ECLOSED.
 */
Test(host_hangup, nothing_to_close)
{
    ringp2p_node *srv = mk_node(true, NULL, NULL, NULL), *cli = mk_node(false, NULL, NULL, NULL);
    ringp2p_multiaddr *to = addr_of(srv);
    ringp2p_privkey *k;
    cr_assert_eq(ringp2p_privkey_generate(RINGP2P_KEY_ED25519, &k), 0);
    ringp2p_peer_id stranger, empty = { 0 };
    ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(k), &stranger);
    ringp2p_privkey_free(k);
    cr_assert_eq(ringp2p_node_hangup(cli, &stranger), 0);
    cr_assert_eq(ringp2p_node_hangup(cli, ringp2p_node_id(srv)), 0, "known, not connected");
    cr_assert_eq(ringp2p_node_hangup(cli, ringp2p_node_id(cli)), 0, "ourselves");
    cr_assert_eq(ringp2p_node_hangup(cli, NULL), RINGP2P_EINVAL);
    cr_assert_eq(ringp2p_node_hangup(NULL, &stranger), RINGP2P_EINVAL);
    cr_assert_eq(ringp2p_node_hangup(cli, &empty), RINGP2P_EINVAL);
    uint64_t a = echo_ok(cli, to, 1, "after hanging up on nobody");
    /* a hang-up on someone else leaves this connection alone */
    cr_assert_eq(ringp2p_node_hangup(cli, &stranger), 0);
    cr_assert_eq(echo_ok(cli, to, 2, "after hanging up on a stranger"), a);

    ringp2p_node *idle = host_new(host_config(NULL, 1));
    cr_assert_eq(ringp2p_node_hangup(idle, &stranger), RINGP2P_ECLOSED, "not started");
    ringp2p_node_free(idle);
    ringp2p_node_stop(cli);
    cr_assert_eq(ringp2p_node_hangup(cli, ringp2p_node_id(srv)), RINGP2P_ECLOSED, "stopped");
    ringp2p_node_free(cli);
    ringp2p_node_free(srv);
    ringp2p_multiaddr_free(to);
}

/* ---- requests waiting for a connection ---------------------------------------------------- */

/* A TCP listener on 127.0.0.1 that never speaks (backlog 0); its port in *port. */
static int mute_listener(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof(sa);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(fd, 0), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/* accept() within ms, or -1. */
static int accept_within(int lfd, int ms)
{
    struct pollfd p = { .fd = lfd, .events = POLLIN };
    if (poll(&p, 1, ms) != 1) return -1;
    return accept(lfd, NULL, NULL);
}

/* What fd reads within ms: its byte count, 0 at EOF, -errno, or -ETIME when nothing came. */
static ssize_t read_within(int fd, uint8_t *buf, size_t cap, int ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, ms) != 1) return -ETIME;
    ssize_t n = read(fd, buf, cap);
    return n < 0 ? -errno : n;
}

/*
 * Dials to a peer ID at a listener that never answers. First the dial itself
 * is stuck (the listener's accept queue is full, so its SYN is dropped): the
 * request fails at the hang-up with RINGP2P_ECLOSED and a message naming the
 * hang-up, well before the dial timeout, and when the queue frees and the SYN
 * retried gets through, the late socket is dropped (the listener reads an end,
 * never multistream). Then a dial that connected and sent its multistream
 * header, waiting in the upgrade: the same.
 */
Test(host_hangup, waiting_requests_fail)
{
    static evs ce;
    evs_init(&ce);
    ringp2p_node *cli = mk_node(false, NULL, &ce, NULL);
    uint16_t port;
    int lfd = mute_listener(&port);
    int filler = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_port = htons(port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    cr_assert_eq(connect(filler, (struct sockaddr *)&sa, sizeof(sa)), 0); /* fills the queue */

    char ids[RINGP2P_PEER_ID_STR_MAX];
    ringp2p_multiaddr *any;
    ringp2p_privkey *k;
    cr_assert_eq(ringp2p_privkey_generate(RINGP2P_KEY_ED25519, &k), 0);
    ringp2p_peer_id peer;
    ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(k), &peer);
    ringp2p_privkey_free(k);
    ringp2p_peer_id_to_string(&peer, ids, sizeof(ids));
    char text[256];
    snprintf(text, sizeof(text), "/ip4/127.0.0.1/tcp/%u/p2p/%s", (unsigned)port, ids);
    cr_assert_eq(ringp2p_multiaddr_parse(text, &any, NULL), 0, "%s", text);

    /* 1: the dial is stuck in connect */
    waiter w;
    w_init(&w);
    static echo_job a, b;
    memset(&a, 0, sizeof(a));
    a.seed = 1, a.len = 10, a.w = &w;
    echo_start(cli, any, &a);
    usleep(100 * 1000);
    cr_assert_not(a.done, "the dial is not stuck: %d %s", (int)a.open_err, a.errmsg);
    cr_assert_eq(ringp2p_node_hangup(cli, &peer), 0);
    cr_assert_eq(w_wait(&w, 1, 2000), 1, "the waiting request did not fail");
    cr_assert_eq(a.open_err, RINGP2P_ECLOSED, "%d: %s", (int)a.open_err, a.errmsg);
    cr_assert(strstr(a.errmsg, "hung up on") != NULL && strstr(a.errmsg, ids) != NULL, "%s",
              a.errmsg);
    /* the queue frees: the SYN the kernel retries connects, and our side drops it */
    int q = accept(lfd, NULL, NULL);
    cr_assert_geq(q, 0);
    close(q);
    close(filler);
    int late = accept_within(lfd, 8000);
    cr_assert_geq(late, 0, "the retried SYN never came");
    uint8_t buf[256];
    ssize_t r = read_within(late, buf, sizeof(buf), 5000);
    cr_assert(r == 0 || r == -ECONNRESET, "the late socket of a hung-up dial: %zd", r);
    close(late);

    /* 2: the dial connected and waits in multistream-select for the security protocol */
    memset(&b, 0, sizeof(b));
    b.seed = 2, b.len = 10, b.w = &w;
    echo_start(cli, any, &b);
    int up = accept_within(lfd, 5000);
    cr_assert_geq(up, 0);
    r = read_within(up, buf, sizeof(buf), 5000);
    cr_assert_gt(r, 0, "no multistream header: %zd", r);
    cr_assert_not(b.done);
    cr_assert_eq(ringp2p_node_hangup(cli, &peer), 0);
    cr_assert_eq(w_wait(&w, 2, 2000), 2, "the upgrading request did not fail");
    cr_assert_eq(b.open_err, RINGP2P_ECLOSED, "%d: %s", (int)b.open_err, b.errmsg);
    cr_assert(strstr(b.errmsg, "hung up on") != NULL, "%s", b.errmsg);
    for (;;) { /* then the socket ends (a reset: it was not up) */
        r = read_within(up, buf, sizeof(buf), 5000);
        if (r <= 0) break;
    }
    cr_assert(r == 0 || r == -ECONNRESET, "the upgrading socket: %zd", r);
    close(up);
    cr_assert_eq(ce.connected, 0);
    cr_assert_eq(ce.disconnected, 0, "no DISCONNECTED for connections never CONNECTED");
    close(lfd);
    ringp2p_node_free(cli);
    ringp2p_multiaddr_free(any);
}

/* ---- while data flows --------------------------------------------------------------------- */

typedef struct hangup_thread_arg {
    ringp2p_node *n;
    const ringp2p_peer_id *peer;
    int r;
} hangup_thread_arg;

static void *hangup_thread(void *p)
{
    hangup_thread_arg *a = p;
    a->r = ringp2p_node_hangup(a->n, a->peer);
    return NULL;
}

/* A sink: the server's side of a stream the client writes to without end (a hold stream). */
static _Atomic size_t sink_got;

static void sink_data(ringp2p_stream *s, void *ctx, const uint8_t *d, size_t len)
{
    (void)s, (void)ctx, (void)d;
    sink_got += len;
}

static const ringp2p_stream_callbacks sink_cbs = { .on_data = sink_data, .on_close = hold_close };

static void sink_handler(ringp2p_node *n, ringp2p_stream *s, void *ctx)
{
    (void)n;
    side_take(s, ctx, &sink_cbs);
}

/*
 * Mid-flight, a thread of its own hangs up: a 1 GiB echo and a 1 GiB upload
 * to a sink on the client's shards, and a 1 GiB echo through the blocking
 * side (a writer thread, this thread reading). The client's streams end with
 * RINGP2P_ECLOSED, the blocking reader and writer get RINGP2P_ECLOSED, no byte
 * delivered was wrong; the server's sink stream is reset although the
 * client's send queue was full, the server hears DISCONNECTED, and a new
 * stream works.
 */
Test(host_hangup, foreign_thread_while_data_flows)
{
    enum { BIG = 1u << 30, SHARD_ECHOES = 2 };
    static evs se, ce;
    static hold_side sk;
    evs_init(&se);
    evs_init(&ce);
    hold_side_init(&sk);
    sink_got = 0;
    ringp2p_config *scfg = host_config(HOST_LOOPBACK, 2);
    ringp2p_config_events(scfg, on_event, &se);
    ringp2p_node *srv = host_new(scfg);
    cr_assert_eq(ringp2p_node_set_stream_handler(srv, "/sink", sink_handler, &sk), 0);
    host_start(srv);
    ringp2p_node *cli = mk_node(false, NULL, &ce, NULL);
    ringp2p_multiaddr *to = addr_of(srv);
    waiter w;
    w_init(&w);
    static echo_job e[SHARD_ECHOES];
    for (int i = 0; i < SHARD_ECHOES; i++) {
        memset(&e[i], 0, sizeof(e[i]));
        e[i].seed = 20 + (uint32_t)i, e[i].len = BIG, e[i].lax = true, e[i].w = &w;
        cr_assert_eq(echo_open(cli, to, i == 0 ? ECHO_PROTO : "/sink", &e[i]), 0);
    }
    ringp2p_bstream *bs = bstream_to(cli, to, ECHO_PROTO, 10000);
    bs_writer bw = { .bs = bs, .seed = 9, .len = BIG, .chunk = 65536, .timeout_ms = 10000 };
    pthread_t wt, ht;
    pthread_create(&wt, NULL, bs_write_thread, &bw);
    size_t got = 0;
    bool bad = false, hung = false;
    uint8_t buf[65536];
    ssize_t n;
    hangup_thread_arg ha = { cli, ringp2p_node_id(srv), 1 };
    while ((n = ringp2p_bstream_read(bs, buf, sizeof(buf), 10000)) > 0) {
        if (pat_differs(9, got, buf, (size_t)n)) bad = true;
        got += (size_t)n;
        if (!hung && got >= (4u << 20) && e[0].got > 0 && sink_got >= (4u << 20)) {
            hung = true;
            pthread_create(&ht, NULL, hangup_thread, &ha);
        }
    }
    pthread_join(wt, NULL);
    cr_assert(hung, "the read ended before the hang-up: %zd after %zu bytes", n, got);
    pthread_join(ht, NULL);
    cr_assert_eq(ha.r, 0);
    cr_assert_eq(n, RINGP2P_ECLOSED, "read: %zd after %zu bytes", n, got);
    cr_assert_lt(got, BIG);
    cr_assert(!bad);
    cr_assert_eq(bw.result, RINGP2P_ECLOSED, "write: %zd", bw.result);
    ringp2p_bstream_close(bs);
    cr_assert_eq(w_wait(&w, SHARD_ECHOES, 10000), SHARD_ECHOES);
    for (int i = 0; i < SHARD_ECHOES; i++) {
        cr_assert_eq(e[i].open_err, 0, "%s", e[i].errmsg);
        cr_assert_eq(e[i].close_err, RINGP2P_ECLOSED, "stream %d: %d", i, (int)e[i].close_err);
        cr_assert_lt(e[i].got, BIG);
        cr_assert(!e[i].bad, "stream %d: wrong bytes", i);
    }
    cr_assert_eq(w_wait(&sk.ended, 1, 5000), 1, "the sink stream did not end");
    cr_assert_eq(sk.st[0].close_err, RINGP2P_ESTREAMRESET, "the sink stream: %d",
                 (int)sk.st[0].close_err);
    cr_assert_lt(sink_got, BIG);
    cr_assert(WAIT_UNTIL(se.disconnected == 1 && ce.disconnected == 1, 5000));
    echo_ok(cli, to, 3, "after the hang-up");
    cr_assert_eq(ce.connected, 2);
    ringp2p_node_free(cli);
    ringp2p_node_free(srv);
    ringp2p_multiaddr_free(to);
}

/*
 * From a shard: the server hangs up on each client from its IDENTIFIED event.
 * The call returns 0 there (it waits for nothing), the client's connection
 * ends, and the server goes on serving (a client that dials again is hung up
 * on again, every time).
 */
Test(host_hangup, from_an_event_callback)
{
    static evs se, ce;
    evs_init(&se);
    evs_init(&ce);
    se.hangup_on_identified = true;
    ringp2p_node *srv = mk_node(true, NULL, &se, NULL), *cli = mk_node(false, NULL, &ce, NULL);
    ringp2p_multiaddr *to = addr_of(srv);
    for (int round = 1; round <= 3; round++) {
        static echo_job e;
        memset(&e, 0, sizeof(e));
        e.seed = (uint32_t)round, e.len = 64u << 20, e.lax = true; /* longer than identify */
        echo_wait(cli, to, &e, 10000, "hung up on from the callback");
        cr_assert(e.open_err != 0 || e.close_err != 0, "round %d: the echo survived", round);
        cr_assert(WAIT_UNTIL(ce.disconnected == round, 5000), "round %d: %d", round,
                  (int)ce.disconnected);
        cr_assert_eq(ce.disc_err, 0);
    }
    cr_assert(WAIT_UNTIL(se.hangups >= 3, 2000));
    cr_assert_eq(se.hangup_bad, 0);
    ringp2p_node_free(cli);
    ringp2p_node_free(srv);
    ringp2p_multiaddr_free(to);
}

/* ---- relayed connections ------------------------------------------------------------------ */

/* A relay with the service and a target holding a reservation on it (events to tl). */
static void relay_and_target(ringp2p_node **relay, ringp2p_node **t, evs *tl, char *circ,
                             size_t cap)
{
    ringp2p_config *cfg = host_config(HOST_LOOPBACK, 2);
    cr_assert_eq(ringp2p_config_relay_service(cfg, true, NULL), 0);
    *relay = host_start(host_new(cfg));
    char ra[256], tid[RINGP2P_PEER_ID_STR_MAX];
    ringp2p_multiaddr *a = addr_of(*relay);
    cr_assert_gt(ringp2p_multiaddr_to_string(a, ra, sizeof(ra)), 0);
    ringp2p_multiaddr_free(a);
    cfg = host_config(NULL, 2);
    ringp2p_errinfo ei;
    cr_assert_eq(ringp2p_config_relay(cfg, ra, &ei), 0, "%s", ei.msg);
    ringp2p_config_events(cfg, on_event, tl);
    *t = host_start(host_new(cfg));
    cr_assert(WAIT_UNTIL(tl->rsv_ok > 0, 10000), "no reservation");
    ringp2p_peer_id_to_string(ringp2p_node_id(*t), tid, sizeof(tid));
    snprintf(circ, cap, "%s/p2p-circuit/p2p/%s", ra, tid);
}

/*
 * A dialer holds an echo stream to a target over a relayed connection and
 * hangs up on the target: the stream ends with RINGP2P_ECLOSED, both ends hear
 * the relayed connection's DISCONNECTED, the relay's circuit ends, while the
 * dialer's connection to the relay and the target's reservation stay. A new
 * stream then makes a new relayed connection.
 */
Test(host_hangup, relayed_connection)
{
    static evs tl, dl;
    evs_init(&tl);
    evs_init(&dl);
    ringp2p_node *relay, *t;
    char circ[512];
    relay_and_target(&relay, &t, &tl, circ, sizeof(circ));
    ringp2p_node *d = mk_node(false, NULL, &dl, NULL);
    ringp2p_multiaddr *cma;
    cr_assert_eq(ringp2p_multiaddr_parse(circ, &cma, NULL), 0);
    static echo_job e;
    memset(&e, 0, sizeof(e));
    waiter w;
    w_init(&w);
    e.seed = 5, e.len = 4000, e.no_close = true, e.w = &w;
    echo_start(d, cma, &e);
    cr_assert_eq(w_wait(&w, 1, 10000), 1, "the relayed echo did not come back");
    cr_assert_eq(e.open_err, 0, "%s", e.errmsg);
    cr_assert(e.relayed);
    cr_assert_eq(rp_relay_svc_circuits(relay), 1);
    cr_assert(WAIT_UNTIL(tl.rel_connected == 1, 2000));

    cr_assert_eq(ringp2p_node_hangup(d, ringp2p_node_id(t)), 0);
    cr_assert(WAIT_UNTIL(e.closed, 5000), "the relayed stream did not end");
    cr_assert_eq(e.close_err, RINGP2P_ECLOSED, "%d", (int)e.close_err);
    cr_assert(WAIT_UNTIL(dl.rel_disconnected == 1, 5000));
    cr_assert_eq(dl.rel_disc_err, 0);
    cr_assert(WAIT_UNTIL(tl.rel_disconnected == 1, 5000), "the target kept the relayed connection");
    cr_assert(WAIT_UNTIL(rp_relay_svc_circuits(relay) == 0, 5000), "the circuit outlived it");
    cr_assert_eq(dl.disconnected, 0, "the connection to the relay went too");
    cr_assert_eq(tl.rsv_lost, 0);
    cr_assert(rp_relay_svc_has_reservation(relay, ringp2p_node_id(t)));

    static echo_job f;
    memset(&f, 0, sizeof(f));
    f.seed = 6, f.len = 4000;
    echo_wait(d, cma, &f, 10000, "relayed, after the hang-up");
    echo_check("relayed, after the hang-up", &f, 1, NULL, NULL);
    cr_assert(f.relayed);
    cr_assert_neq(f.conn_id, e.conn_id);
    cr_assert_eq(dl.rel_connected, 2);
    cr_assert_eq(dl.connected, 1, "the relay connection was reused");
    ringp2p_multiaddr_free(cma);
    ringp2p_node_free(d);
    ringp2p_node_free(t);
    ringp2p_node_free(relay);
}

/*
 * The relay hangs up on a peer holding a reservation: the reservation ends
 * with the peer's last connection (nothing of it stays at the relay), the
 * peer reports it lost, and after its backoff reserves again.
 */
Test(host_hangup, relay_hangs_up_on_reserving_peer)
{
    static evs tl;
    evs_init(&tl);
    ringp2p_node *relay, *t;
    char circ[512];
    relay_and_target(&relay, &t, &tl, circ, sizeof(circ));
    cr_assert(rp_relay_svc_has_reservation(relay, ringp2p_node_id(t)));
    cr_assert_eq(rp_relay_svc_reservations(relay), 1);
    cr_assert_eq(ringp2p_node_hangup(relay, ringp2p_node_id(t)), 0);
    cr_assert(WAIT_UNTIL(rp_relay_svc_reservations(relay) == 0, 5000), "the reservation stayed");
    cr_assert_not(rp_relay_svc_has_reservation(relay, ringp2p_node_id(t)));
    cr_assert(WAIT_UNTIL(tl.rsv_lost == 1, 5000), "the target did not notice");
    cr_assert(WAIT_UNTIL(tl.rsv_ok == 2, 10000), "no new reservation after the backoff");
    cr_assert(WAIT_UNTIL(rp_relay_svc_has_reservation(relay, ringp2p_node_id(t)), 2000));
    ringp2p_node_free(t);
    ringp2p_node_free(relay);
}
