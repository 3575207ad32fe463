/*
 * Lazy multistream-select on outbound streams (ringp2p_node_new_stream, node.h):
 * one protocol that the peer listed in identify is opened without waiting for
 * the listener's echo; a refusal or a silent peer then ends the open stream
 * (on_close) instead of failing the open. Several protocols, or one the peer
 * did not list, are negotiated fully as before.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "protocols/identify.h"
#include "ringp2p/node.h"
#include "hostutil.h"
#include "testutil.h"

#define STALL "/stall/1.0.0" /* a stall (hostutil.h): blocks the server's only shard */
#define GHOST "/ghost/1.0.0"

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* ---- nodes -------------------------------------------------------------------------------- */

typedef struct evs {
    waiter identified;
} evs;

static void on_event(ringp2p_node *n, const ringp2p_event *ev, void *ctx)
{
    (void)n;
    if (ev->type == RINGP2P_EVENT_IDENTIFIED) w_signal(&((evs *)ctx)->identified);
}

/* One shard, so that every stream of a connection meets the same stalled thread. */
static ringp2p_node *mk(bool listen, evs *ev, uint64_t neg_ms)
{
    ringp2p_config *cfg = host_config(listen ? HOST_LOOPBACK : NULL, 1);
    if (ev != NULL) ringp2p_config_events(cfg, on_event, ev);
    if (neg_ms != 0) ringp2p_config_limit(cfg, RINGP2P_LIMIT_NEGOTIATION_TIMEOUT_MS, neg_ms);
    return host_start(host_new(cfg));
}

/* ---- the server's handlers ---------------------------------------------------------------- */

/* An identify answer that lists GHOST (no handler) besides ECHO_PROTO. */
static void ghost_identify(ringp2p_node *n, ringp2p_stream *s, void *ctx)
{
    (void)n, (void)ctx;
    rp_identify_msg m;
    rp_identify_msg_init(&m);
    m.agent_version = rp_iov_make("ghost", 5);
    m.n_protocols = 2;
    m.protocols[0] = rp_iov_make(ECHO_PROTO, strlen(ECHO_PROTO));
    m.protocols[1] = rp_iov_make(GHOST, strlen(GHOST));
    identify_answer(s, &m);
}

/* ---- the client's streams ----------------------------------------------------------------- */

typedef struct opener {
    waiter opened, closed;
    _Atomic int open_err, close_err;
    _Atomic double opened_at, closed_at;
    const char *send; /* written in the open callback (NULL: nothing) */
    bool keep_open;   /* else half-closed in the open callback */
    uint8_t got[64];
    _Atomic size_t got_len;
} opener;

static void op_init(opener *o, const char *send)
{
    memset(o, 0, sizeof(*o));
    w_init(&o->opened);
    w_init(&o->closed);
    o->open_err = o->close_err = 1;
    o->send = send;
}

static void op_data(ringp2p_stream *s, void *ctx, const uint8_t *d, size_t len)
{
    opener *o = ctx;
    (void)s;
    size_t have = o->got_len;
    if (len > sizeof(o->got) - have) len = sizeof(o->got) - have;
    memcpy(o->got + have, d, len);
    o->got_len = have + len;
}

static void op_close(ringp2p_stream *s, void *ctx, int err)
{
    opener *o = ctx;
    (void)s;
    o->close_err = err;
    o->closed_at = now_ms();
    w_signal(&o->closed);
}

static const ringp2p_stream_callbacks op_cbs = { .on_data = op_data, .on_close = op_close };

static void op_opened(ringp2p_node *n, ringp2p_stream *s, int err, const ringp2p_errinfo *ei,
                      void *ctx)
{
    opener *o = ctx;
    (void)n, (void)ei;
    o->open_err = err;
    o->opened_at = now_ms();
    if (err == 0) {
        ringp2p_stream_set_callbacks(s, &op_cbs, o);
        if (o->send != NULL) ringp2p_stream_write(s, o->send, strlen(o->send));
        if (!o->keep_open) ringp2p_stream_close_write(s);
    }
    w_signal(&o->opened);
}

static void open1(ringp2p_node *cli, ringp2p_multiaddr *to, const char *proto, opener *o)
{
    const char *p[1] = { proto };
    cr_assert_eq(ringp2p_node_new_stream(cli, to, p, 1, op_opened, o), 0);
}

/* Connects cli to srv and waits until cli has applied srv's identify. */
static void connect_identified(ringp2p_node *cli, evs *ev, ringp2p_multiaddr *to)
{
    opener o;
    op_init(&o, "x");
    open1(cli, to, ECHO_PROTO, &o);
    cr_assert_eq(w_wait(&o.opened, 1, 10000), 1, "the first open finished");
    cr_assert_eq(o.open_err, 0);
    cr_assert_eq(w_wait(&o.closed, 1, 10000), 1);
    cr_assert_geq(w_wait(&ev->identified, 1, 10000), 1, "identify applied");
}

/* A server and a client that has applied the server's identify. */
typedef struct pair {
    ringp2p_node *srv, *cli;
    ringp2p_multiaddr *to;
    evs ev;
} pair;

/* The server serves `proto` with h(ctx); the client's negotiation limit is neg_ms (0: default). */
static void pair_up(pair *p, const char *proto, ringp2p_stream_handler h, void *ctx,
                    uint64_t neg_ms)
{
    p->srv = mk(true, NULL, 0);
    cr_assert_eq(ringp2p_node_set_stream_handler(p->srv, proto, h, ctx), 0);
    p->to = first_addr(p->srv);
    w_init(&p->ev.identified);
    p->cli = mk(false, &p->ev, neg_ms);
    connect_identified(p->cli, &p->ev, p->to);
}

static void pair_down(pair *p)
{
    ringp2p_node_free(p->cli);
    ringp2p_node_free(p->srv);
    ringp2p_multiaddr_free(p->to);
}

/*
 * Blocks the server's shard with `os` on STALL, then opens `oe` on ECHO_PROTO
 * sending "hello"; returns once oe opened, with the time it was asked for.
 */
static double stall_then_echo(pair *p, stall *st, opener *os, opener *oe)
{
    op_init(os, "z");
    open1(p->cli, p->to, STALL, os);
    cr_assert_eq(w_wait(&st->started, 1, 10000), 1, "the server is blocked");
    double t0 = now_ms();
    op_init(oe, "hello");
    open1(p->cli, p->to, ECHO_PROTO, oe);
    cr_assert_eq(w_wait(&oe->opened, 1, 10000), 1);
    cr_assert_eq(oe->open_err, 0);
    return t0;
}

TestSuite(host_lazy, .timeout = 60);

/*
 * While the server's shard is blocked, a lazy open completes at once (no
 * round trip: a full negotiation could not finish before the block ends) and
 * its bytes travel with the proposal; the echo arrives after the block.
 */
Test(host_lazy, open_does_not_wait_for_the_listener)
{
    static stall st = { .ms = 700 };
    w_init(&st.started);
    static pair p;
    pair_up(&p, STALL, stall_handler, &st, 0);
    opener os, oe;
    double t0 = stall_then_echo(&p, &st, &os, &oe);
    cr_assert_lt(oe.opened_at - t0, 300, "opened after %.0f ms: waited for the blocked listener",
                 oe.opened_at - t0);
    cr_assert_eq(w_wait(&oe.closed, 1, 10000), 1);
    cr_assert_eq(oe.close_err, 0);
    cr_assert_eq(oe.got_len, 5);
    cr_assert_arr_eq(oe.got, "hello", 5);
    cr_assert_gt(oe.closed_at - t0, 300, "the echo came back before the block ended");
    w_wait(&os.closed, 1, 10000);
    pair_down(&p);
}

/*
 * The peer listed GHOST in identify but refuses it: the lazy open succeeds,
 * then the stream ends with RINGP2P_ENEGOTIATION ("na") and nothing is
 * delivered. Had the opener also closed its side, a ringp2p listener resets
 * the stream as it refuses (its "na" is dropped with the reset), so the opener
 * hears RINGP2P_ESTREAMRESET instead. Offered with a second protocol, the same
 * refusal fails the open itself.
 */
Test(host_lazy, refusal_after_a_lazy_open_ends_the_stream)
{
    static pair p;
    pair_up(&p, RP_IDENTIFY_PROTOCOL_ID, ghost_identify, NULL, 0);
    ringp2p_node *cli = p.cli;
    ringp2p_multiaddr *to = p.to;

    opener o;
    op_init(&o, "boo");
    o.keep_open = true;
    open1(cli, to, GHOST, &o);
    cr_assert_eq(w_wait(&o.opened, 1, 10000), 1);
    cr_assert_eq(o.open_err, 0, "lazy: opened before the refusal");
    cr_assert_eq(w_wait(&o.closed, 1, 10000), 1);
    cr_assert_eq(o.close_err, RINGP2P_ENEGOTIATION, "got %d", o.close_err);
    cr_assert_eq(o.got_len, 0);

    opener oc;
    op_init(&oc, "boo");
    open1(cli, to, GHOST, &oc);
    cr_assert_eq(w_wait(&oc.opened, 1, 10000), 1);
    cr_assert_eq(oc.open_err, 0);
    cr_assert_eq(w_wait(&oc.closed, 1, 10000), 1);
    cr_assert(oc.close_err == RINGP2P_ENEGOTIATION || oc.close_err == RINGP2P_ESTREAMRESET,
              "got %d", oc.close_err);
    cr_assert_eq(oc.got_len, 0);

    opener o2;
    op_init(&o2, NULL);
    const char *two[2] = { GHOST, "/ghost/2.0.0" };
    cr_assert_eq(ringp2p_node_new_stream(cli, to, two, 2, op_opened, &o2), 0);
    cr_assert_eq(w_wait(&o2.opened, 1, 10000), 1);
    cr_assert_eq(o2.open_err, RINGP2P_ENEGOTIATION, "got %d", o2.open_err);

    /* and the connection still serves the protocols the peer has */
    opener o3;
    op_init(&o3, "ok");
    open1(cli, to, ECHO_PROTO, &o3);
    cr_assert_eq(w_wait(&o3.closed, 1, 10000), 1);
    cr_assert_eq(o3.close_err, 0);
    cr_assert_eq(o3.got_len, 2);
    pair_down(&p);
}

/*
 * A lazy open whose echo does not come within the negotiation limit (300 ms
 * here; the server is blocked for 1 s) ends with RINGP2P_ETIMEDOUT.
 */
Test(host_lazy, silent_listener_times_the_stream_out)
{
    static stall st = { .ms = 1000 };
    w_init(&st.started);
    static pair p;
    pair_up(&p, STALL, stall_handler, &st, 300);
    opener os, oe;
    double t0 = stall_then_echo(&p, &st, &os, &oe);
    cr_assert_eq(w_wait(&oe.closed, 1, 10000), 1);
    cr_assert_eq(oe.close_err, RINGP2P_ETIMEDOUT, "got %d", oe.close_err);
    double ms = oe.closed_at - t0;
    cr_assert(ms >= 250 && ms < 900, "ended after %.0f ms (limit 300)", ms);
    cr_assert_eq(oe.got_len, 0);
    w_wait(&os.closed, 1, 10000);
    pair_down(&p);
}

/* ---- addresses new_stream takes (parsed once, peer matched by its bytes) ------------------ */

/* parts[0] + a + parts[1] + b, parsed. */
static ringp2p_multiaddr *ma(const char *p0, const char *a, const char *p1, const char *b)
{
    char text[512];
    snprintf(text, sizeof(text), "%s%s%s%s", p0, a, p1, b);
    ringp2p_multiaddr *m = NULL;
    ringp2p_errinfo ei;
    cr_assert_eq(ringp2p_multiaddr_parse(text, &m, &ei), 0, "%s: %s", text, ei.msg);
    return m;
}

static int open_result(ringp2p_node *cli, ringp2p_multiaddr *to)
{
    opener o;
    op_init(&o, "hi");
    int r = 0;
    open1(cli, to, ECHO_PROTO, &o);
    cr_assert_eq(w_wait(&o.opened, 1, 10000), 1);
    r = o.open_err;
    if (r == 0) {
        cr_assert_eq(w_wait(&o.closed, 1, 10000), 1);
        cr_assert_eq(o.close_err, 0);
        cr_assert_eq(o.got_len, 2);
    }
    return r;
}

/*
 * ringp2p_node_new_stream with the address forms node.h lists: TCP with and
 * without /p2p/, a bare /p2p/ of a connected peer and of an unknown one, a
 * /p2p/ that names another peer than the one listening there, and shapes no
 * transport takes. The connected peer's ID is recognised by its bytes; any
 * other is decoded and checked as before.
 */
Test(host_lazy, new_stream_address_forms)
{
    ringp2p_node *srv = mk(true, NULL, 0);
    ringp2p_multiaddr *full = first_addr(srv);
    char id[RINGP2P_PEER_ID_STR_MAX], other[RINGP2P_PEER_ID_STR_MAX], port[16];
    cr_assert_gt(ringp2p_peer_id_to_string(ringp2p_node_id(srv), id, sizeof(id)), 0);
    ringp2p_privkey *k = NULL;
    cr_assert_eq(ringp2p_privkey_generate(RINGP2P_KEY_ED25519, &k), 0);
    ringp2p_peer_id oid;
    ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(k), &oid);
    ringp2p_privkey_free(k);
    cr_assert_gt(ringp2p_peer_id_to_string(&oid, other, sizeof(other)), 0);
    char text[512];
    cr_assert_gt(ringp2p_multiaddr_to_string(full, text, sizeof(text)), 0);
    const char *tcp = strstr(text, "/tcp/");
    cr_assert_not_null(tcp);
    snprintf(port, sizeof(port), "%d", atoi(tcp + 5));

    static evs ev;
    w_init(&ev.identified);
    ringp2p_node *cli = mk(false, &ev, 0);
    const char *p[1] = { ECHO_PROTO };
    ringp2p_multiaddr *bare = ma("/p2p/", id, "", "");
    cr_assert_eq(open_result(cli, bare), RINGP2P_ENOENT, "not connected yet");
    cr_assert_eq(open_result(cli, full), 0);
    cr_assert_eq(open_result(cli, bare), 0, "bare /p2p/ of the connected peer");
    ringp2p_multiaddr *nopeer = ma("/ip4/127.0.0.1/tcp/", port, "", "");
    cr_assert_eq(open_result(cli, nopeer), 0, "no /p2p/: any peer there");
    ringp2p_multiaddr *wrong = ma("/ip4/127.0.0.1/tcp/", port, "/p2p/", other);
    cr_assert_eq(open_result(cli, wrong), RINGP2P_EPEERMISMATCH, "another peer listens there");
    ringp2p_multiaddr *obare = ma("/p2p/", other, "", "");
    cr_assert_eq(open_result(cli, obare), RINGP2P_ENOENT);
    ringp2p_multiaddr *udp = ma("/ip4/127.0.0.1/udp/", port, "", "");
    cr_assert_eq(ringp2p_node_new_stream(cli, udp, p, 1, op_opened, NULL), RINGP2P_EUNSUPPORTED);
    ringp2p_multiaddr *dns = ma("/dns4/localhost/tcp/", port, "", "");
    cr_assert_eq(ringp2p_node_new_stream(cli, dns, p, 1, op_opened, NULL), RINGP2P_EUNSUPPORTED);
    ringp2p_multiaddr *two = ma("/p2p/", id, "/p2p/", id);
    cr_assert_eq(ringp2p_node_new_stream(cli, two, p, 1, op_opened, NULL), RINGP2P_EUNSUPPORTED);
    ringp2p_node_free(cli);
    ringp2p_node_free(srv);
    ringp2p_multiaddr *all[] = { full, bare, nopeer, wrong, obare, udp, dns, two };
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) ringp2p_multiaddr_free(all[i]);
}
