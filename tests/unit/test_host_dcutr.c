/*
 * DCUtR in the host (src/host/dcutr_svc.c) end to end on loopback, with three
 * ringp2p nodes of two shards each: a relay R, a target B that reserves on R,
 * and a dialer A that reaches B through R. B, which received the relayed
 * connection, drives the hole punch. Loopback has no NAT, so the punch's
 * dials either open simultaneously or meet the other side's listener (the
 * host handles both); every node allows private addresses (127/8 is private
 * by go's rule).
 *
 * Covered: the punch upgrades A and B to one direct connection (events at
 * both ends, the dials left from the listen ports), the relayed connection
 * stays while a stream is open on it and closes once idle, new streams go
 * direct both ways; the plain direct dial that comes first when A advertises
 * a dialable address; no attempt at all with a peer that does not serve
 * /libp2p/dcutr; and a punch whose every dial fails, which ends with ok false
 * after the three attempts while the relayed connection keeps working.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "host/dcutr_svc.h"
#include "protocols/dcutr.h"
#include "ringp2p/node.h"
#include "hostutil.h"

/* ---- events -------------------------------------------------------------------------------- */

typedef struct hlog {
    pthread_mutex_t mu;
    ringp2p_peer_id other; /* events about this peer are counted */
    _Atomic int rsv_ok, hp_ok, hp_fail, identified_rel;
    _Atomic int rel_up, rel_down, direct_up, direct_down;
    bool hp_initiator;
    unsigned hp_attempts[8];
    uint64_t hp_rtt_ns;
    char hp_error[RINGP2P_ERRINFO_MSG_MAX];
    char direct_local[128]; /* our end of the last direct connection */
} hlog;

static void on_event(ringp2p_node *n, const ringp2p_event *ev, void *ctx)
{
    hlog *l = ctx;
    (void)n;
    pthread_mutex_lock(&l->mu);
    if (ev->type == RINGP2P_EVENT_RESERVATION && ev->reservation->ok) l->rsv_ok++;
    if (ev->type == RINGP2P_EVENT_HOLEPUNCH) {
        const ringp2p_holepunch_info *hi = ev->holepunch;
        cr_assert(ringp2p_peer_id_equal(&hi->peer, &l->other));
        cr_assert_eq(hi->ok, ev->err == 0);
        int k = l->hp_ok + l->hp_fail;
        if (k < 8) l->hp_attempts[k] = hi->attempts;
        l->hp_initiator = hi->initiator;
        l->hp_rtt_ns = hi->rtt_ns;
        if (hi->ok) {
            l->hp_ok++;
        } else {
            cr_assert_not_null(hi->error);
            snprintf(l->hp_error, sizeof(l->hp_error), "%s", hi->error);
            l->hp_fail++;
        }
    }
    if (ev->conn != NULL && ringp2p_peer_id_equal(&ev->conn->peer, &l->other)) {
        bool rel = ev->conn->relayed;
        if (ev->type == RINGP2P_EVENT_CONNECTED) {
            if (rel) {
                l->rel_up++;
            } else {
                l->direct_up++;
                ringp2p_multiaddr_to_string(ev->conn->local_addr, l->direct_local,
                                            sizeof(l->direct_local));
            }
        }
        if (ev->type == RINGP2P_EVENT_DISCONNECTED) {
            if (rel)
                l->rel_down++;
            else
                l->direct_down++;
        }
        if (ev->type == RINGP2P_EVENT_IDENTIFIED && rel) l->identified_rel++;
    }
    pthread_mutex_unlock(&l->mu);
}

/* ---- nodes --------------------------------------------------------------------------------- */

typedef struct nopts {
    bool service;
    unsigned dcutr;    /* ringp2p_config_dcutr flags */
    const char *relay; /* reserve on it */
    hlog *log;
    const rp_dcutr_svc_test *test;
} nopts;

static ringp2p_node *mk_node(nopts o)
{
    ringp2p_config *cfg = host_config(HOST_LOOPBACK, 2);
    ringp2p_errinfo ei;
    ringp2p_config_autonat(cfg, 0);
    cr_assert_eq(ringp2p_config_dcutr(cfg, o.dcutr), 0);
    if (o.service) cr_assert_eq(ringp2p_config_relay_service(cfg, true, NULL), 0);
    if (o.relay != NULL) cr_assert_eq(ringp2p_config_relay(cfg, o.relay, &ei), 0, "%s", ei.msg);
    if (o.log != NULL) ringp2p_config_events(cfg, on_event, o.log);
    ringp2p_node *n = host_new(cfg);
    if (o.test != NULL) rp_dcutr_svc_test_set(n, o.test);
    return host_start(n);
}

static void text_of(ringp2p_node *n, char *buf, size_t cap)
{
    ringp2p_multiaddr *a[4];
    size_t k = ringp2p_node_addrs(n, a, 4);
    cr_assert_geq(k, 1);
    cr_assert_gt(ringp2p_multiaddr_to_string(a[0], buf, cap), 0);
    for (size_t i = 0; i < k && i < 4; i++) ringp2p_multiaddr_free(a[i]);
}

#define ALLOW (RINGP2P_DCUTR_ON | RINGP2P_DCUTR_ALLOW_PRIVATE)

typedef struct trio {
    ringp2p_node *r, *a, *b;
    hlog al, bl;
    char circ[512]; /* R/p2p-circuit/p2p/B */
    char bare_a[128];
} trio;

/* R, then B reserving on it (with `bt`), then A (with a_dcutr); logs watch each other. */
static void trio_up(trio *t, const rp_dcutr_svc_test *bt, unsigned a_dcutr,
                    const rp_dcutr_svc_test *at)
{
    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->al.mu, NULL);
    pthread_mutex_init(&t->bl.mu, NULL);
    t->r = mk_node((nopts){ .service = true, .dcutr = ALLOW });
    char ra[256];
    text_of(t->r, ra, sizeof(ra));
    t->b = mk_node((nopts){ .dcutr = ALLOW, .relay = ra, .log = &t->bl, .test = bt });
    t->a = mk_node((nopts){ .dcutr = a_dcutr, .log = &t->al, .test = at });
    t->al.other = *ringp2p_node_id(t->b);
    t->bl.other = *ringp2p_node_id(t->a);
    cr_assert(WAIT_UNTIL(t->bl.rsv_ok > 0, 10000), "B made no reservation");
    char id[RINGP2P_PEER_ID_STR_MAX];
    ringp2p_peer_id_to_string(ringp2p_node_id(t->b), id, sizeof(id));
    snprintf(t->circ, sizeof(t->circ), "%s/p2p-circuit/p2p/%s", ra, id);
    ringp2p_peer_id_to_string(ringp2p_node_id(t->a), id, sizeof(id));
    snprintf(t->bare_a, sizeof(t->bare_a), "/p2p/%s", id);
}

static void trio_down(trio *t)
{
    ringp2p_node_free(t->a);
    ringp2p_node_free(t->b);
    ringp2p_node_free(t->r);
}

/* ---- echo streams -------------------------------------------------------------------------- */

#define ECHO_LEN 1000

/* An echo of 1000 bytes from n to `to` (text); returns whether it went over a relayed conn. */
static bool echo_run(ringp2p_node *n, const char *to)
{
    echo_job e;
    memset(&e, 0, sizeof(e));
    e.len = ECHO_LEN;
    e.lax = true;
    echo_to(n, to, &e, 10000);
    cr_assert_eq(e.open_err, 0, "echo to %s: %s", to, e.errmsg);
    cr_assert_eq(e.close_err, 0, "echo to %s ended with %d", to, (int)e.close_err);
    cr_assert_eq(e.got, ECHO_LEN);
    return e.relayed;
}

/* A blocking echo stream: 32 bytes there and back. */
static void bs_echo(ringp2p_bstream *bs)
{
    uint8_t out[32], in[32];
    for (size_t i = 0; i < sizeof(out); i++) out[i] = pat(5, i);
    cr_assert_eq(ringp2p_bstream_write(bs, out, sizeof(out), 2000), (ssize_t)sizeof(out));
    size_t got = 0;
    while (got < sizeof(in)) {
        ssize_t r = ringp2p_bstream_read(bs, in + got, sizeof(in) - got, 2000);
        cr_assert_gt(r, 0, "echo read: %d", (int)r);
        got += (size_t)r;
    }
    cr_assert_eq(memcmp(in, out, sizeof(in)), 0);
}

static int get(hlog *l, _Atomic int *f)
{
    (void)l;
    return atomic_load(f);
}

TestSuite(host_dcutr, .timeout = 60);

/*
 * The hole punch proper (B skips the plain direct dial that would otherwise do it on
 * loopback): both ends report it, each from its own side, after one attempt with a
 * measured round trip; both see a direct connection to the other, dialed from its listen
 * port; the relayed connection lives on while a stream is open on it (and that stream
 * still echoes), then closes at both ends once it ends; new streams go direct both ways.
 */
Test(host_dcutr, punch_upgrades_to_direct)
{
    static trio t;
    rp_dcutr_svc_test bt = { .no_direct = true };
    trio_up(&t, &bt, ALLOW, NULL);
    /* A stream over the relay: it makes the relayed connection, and it stays open */
    ringp2p_multiaddr *ma;
    cr_assert_eq(ringp2p_multiaddr_parse(t.circ, &ma, NULL), 0);
    ringp2p_bstream *held = bstream_to(t.a, ma, ECHO_PROTO, 5000);
    ringp2p_multiaddr_free(ma);
    bs_echo(held);
    cr_assert(WAIT_UNTIL(t.bl.hp_ok + t.bl.hp_fail > 0, 8000), "B reported no hole punch");
    cr_assert_eq(t.bl.hp_ok, 1, "B: %s", t.bl.hp_error);
    cr_assert(WAIT_UNTIL(t.al.hp_ok + t.al.hp_fail > 0, 3000), "A reported no hole punch");
    cr_assert_eq(t.al.hp_ok, 1, "A: %s", t.al.hp_error);
    pthread_mutex_lock(&t.bl.mu);
    cr_assert(t.bl.hp_initiator);
    cr_assert_geq(t.bl.hp_attempts[0], 1);
    cr_assert_gt(t.bl.hp_rtt_ns, 0);
    pthread_mutex_unlock(&t.bl.mu);
    pthread_mutex_lock(&t.al.mu);
    cr_assert_not(t.al.hp_initiator);
    cr_assert_eq(t.al.hp_attempts[0], 1);
    cr_assert_gt(t.al.hp_rtt_ns, 0);
    pthread_mutex_unlock(&t.al.mu);
    /* a side whose peer's SYN met its listener first finds the connection there and need
     * not dial; at least one side dialed */
    cr_assert_gt(rp_dcutr_svc_punch_dials(t.a) + rp_dcutr_svc_punch_dials(t.b), 0);
    cr_assert_eq(rp_dcutr_svc_exchanges(t.b), 1);
    /* one direct connection, seen at both ends, from the listen ports */
    cr_assert(
        WAIT_UNTIL(get(&t.al, &t.al.direct_up) == 1 && get(&t.bl, &t.bl.direct_up) == 1, 2000));
    char la[256], lb[256];
    text_of(t.a, la, sizeof(la));
    text_of(t.b, lb, sizeof(lb));
    pthread_mutex_lock(&t.al.mu);
    cr_assert(strncmp(la, t.al.direct_local, strlen(t.al.direct_local)) == 0,
              "A's end %s is not its listen address %s", t.al.direct_local, la);
    pthread_mutex_unlock(&t.al.mu);
    pthread_mutex_lock(&t.bl.mu);
    cr_assert(strncmp(lb, t.bl.direct_local, strlen(t.bl.direct_local)) == 0,
              "B's end %s is not its listen address %s", t.bl.direct_local, lb);
    pthread_mutex_unlock(&t.bl.mu);
    /* the relayed connection is not idle: it stays, and the stream on it still works */
    usleep(300 * 1000);
    cr_assert_eq(get(&t.al, &t.al.rel_down), 0);
    cr_assert_eq(get(&t.bl, &t.bl.rel_down), 0);
    bs_echo(held);
    /* new streams take the direct connection, either way */
    cr_assert_not(echo_run(t.a, t.circ), "A's new stream went over the relay");
    cr_assert_not(echo_run(t.b, t.bare_a), "B's new stream went over the relay");
    /* the last stream on the relayed connection ends: it is idle, and closes at both ends */
    cr_assert_eq(ringp2p_bstream_close_write(held), 0);
    uint8_t b[8];
    cr_assert_eq(ringp2p_bstream_read(held, b, sizeof(b), 2000), 0);
    ringp2p_bstream_close(held);
    cr_assert(WAIT_UNTIL(get(&t.al, &t.al.rel_down) == 1 && get(&t.bl, &t.bl.rel_down) == 1, 3000),
              "the idle relayed connection stayed (A %d, B %d closed)", get(&t.al, &t.al.rel_down),
              get(&t.bl, &t.bl.rel_down));
    cr_assert_eq(get(&t.al, &t.al.direct_down), 0);
    cr_assert_not(echo_run(t.a, t.circ));
    trio_down(&t);
}

/*
 * B's SYN reaches A before A dials (A's punch is held back 100 ms, as when no NAT waits
 * for A's own SYN): A's listener accepts it, and A takes the client role there that
 * its own dial would have had; the roles agree and the punch succeeds at both ends. With
 * the server role on both sides the handshake could not start.
 */
Test(host_dcutr, peer_syn_meets_listener)
{
    static trio t;
    rp_dcutr_svc_test bt = { .no_direct = true };
    rp_dcutr_svc_test at = { .responder_delay_ns = 100000000ull };
    trio_up(&t, &bt, ALLOW, &at);
    cr_assert(echo_run(t.a, t.circ));
    cr_assert(WAIT_UNTIL(t.bl.hp_ok + t.bl.hp_fail > 0, 8000), "B reported no hole punch");
    cr_assert_eq(t.bl.hp_ok, 1, "B: %s", t.bl.hp_error);
    cr_assert(WAIT_UNTIL(t.al.hp_ok + t.al.hp_fail > 0, 3000), "A reported no hole punch");
    cr_assert_eq(t.al.hp_ok, 1, "A: %s", t.al.hp_error);
    cr_assert_gt(rp_dcutr_svc_punch_dials(t.b), 0);
    cr_assert(
        WAIT_UNTIL(get(&t.al, &t.al.direct_up) == 1 && get(&t.bl, &t.bl.direct_up) == 1, 2000));
    cr_assert_not(echo_run(t.a, t.circ));
    cr_assert_not(echo_run(t.b, t.bare_a));
    trio_down(&t);
}

/*
 * A advertises an address B can dial: B's plain direct dial does it before any hole
 * punch (go's order): B reports 0 attempts, no exchange ran, A reports nothing. The
 * relayed connection closes at both ends, and A's new streams go direct once A has the
 * direct connection too: B, the dialer, has it first (A's upgrade ends only when B's last
 * handshake message arrives), so B's report and B's close of the relayed connection may
 * come before A's CONNECTED, and an open from A before that dials a new circuit.
 */
Test(host_dcutr, direct_dial_first)
{
    static trio t;
    trio_up(&t, NULL, ALLOW, NULL);
    cr_assert(echo_run(t.a, t.circ), "the first stream did not take the relay");
    cr_assert(WAIT_UNTIL(t.bl.hp_ok + t.bl.hp_fail > 0, 8000), "B reported no hole punch");
    cr_assert_eq(t.bl.hp_ok, 1, "B: %s", t.bl.hp_error);
    cr_assert_eq(t.bl.hp_attempts[0], 0);
    cr_assert_eq(rp_dcutr_svc_exchanges(t.b), 0);
    cr_assert_eq(rp_dcutr_svc_punch_dials(t.b), 0);
    cr_assert(WAIT_UNTIL(get(&t.bl, &t.bl.rel_down) == 1, 3000), "the relayed connection stayed");
    cr_assert(WAIT_UNTIL(get(&t.al, &t.al.direct_up) == 1 && get(&t.al, &t.al.rel_down) == 1, 3000),
              "A: direct connection %d up, relayed connection %d down", get(&t.al, &t.al.direct_up),
              get(&t.al, &t.al.rel_down));
    cr_assert_eq(get(&t.al, &t.al.hp_ok) + get(&t.al, &t.al.hp_fail), 0);
    cr_assert_not(echo_run(t.a, t.circ), "A's new stream went over the relay");
    trio_down(&t);
}

/* A does not serve /libp2p/dcutr: B never tries, and the relayed connection just works. */
Test(host_dcutr, peer_without_dcutr)
{
    static trio t;
    trio_up(&t, NULL, 0, NULL);
    cr_assert(echo_run(t.a, t.circ));
    cr_assert(WAIT_UNTIL(get(&t.bl, &t.bl.identified_rel) > 0, 3000), "B never identified A");
    usleep(300 * 1000);
    cr_assert_eq(get(&t.bl, &t.bl.hp_ok) + get(&t.bl, &t.bl.hp_fail), 0);
    cr_assert_eq(rp_dcutr_svc_exchanges(t.b), 0);
    cr_assert_eq(rp_dcutr_svc_punch_dials(t.b), 0);
    cr_assert_eq(get(&t.bl, &t.bl.direct_up), 0);
    cr_assert(echo_run(t.a, t.circ));
    cr_assert_eq(get(&t.bl, &t.bl.rel_down), 0);
    trio_down(&t);
}

/*
 * Every punch dial fails (each side offers an address nobody listens on): B gives up
 * after its three attempts with ok false and says why, A reports each exchange it
 * answered, no direct connection appears, and the relayed connection keeps working.
 */
Test(host_dcutr, all_dials_fail)
{
    static trio t;
    rp_dcutr_svc_test bt = { .no_direct = true, .dial_timeout_ns = 2000000000ull, .n_own = 1 };
    rp_dcutr_svc_test at = { .dial_timeout_ns = 2000000000ull, .n_own = 1 };
    ringp2p_multiaddr *dead;
    cr_assert_eq(ringp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/1", &dead, NULL), 0);
    size_t dl;
    const uint8_t *db = ringp2p_multiaddr_bytes(dead, &dl);
    memcpy(bt.own[0], db, dl);
    bt.own_len[0] = dl;
    memcpy(at.own[0], db, dl);
    at.own_len[0] = dl;
    ringp2p_multiaddr_free(dead);
    trio_up(&t, &bt, ALLOW, &at);
    cr_assert(echo_run(t.a, t.circ));
    cr_assert(WAIT_UNTIL(t.bl.hp_ok + t.bl.hp_fail > 0, 10000), "B reported no hole punch");
    cr_assert_eq(t.bl.hp_ok, 0);
    cr_assert_eq(t.bl.hp_fail, 1);
    pthread_mutex_lock(&t.bl.mu);
    cr_assert_eq(t.bl.hp_attempts[0], RP_DCUTR_ATTEMPTS);
    cr_assert(t.bl.hp_initiator);
    cr_assert(t.bl.hp_error[0] != 0);
    pthread_mutex_unlock(&t.bl.mu);
    cr_assert_eq(rp_dcutr_svc_exchanges(t.b), RP_DCUTR_ATTEMPTS);
    cr_assert(WAIT_UNTIL(get(&t.al, &t.al.hp_fail) == RP_DCUTR_ATTEMPTS, 3000),
              "A reported %d failed exchanges", get(&t.al, &t.al.hp_fail));
    pthread_mutex_lock(&t.al.mu);
    for (unsigned i = 0; i < RP_DCUTR_ATTEMPTS; i++) cr_assert_eq(t.al.hp_attempts[i], i + 1);
    pthread_mutex_unlock(&t.al.mu);
    cr_assert_eq(get(&t.al, &t.al.hp_ok), 0);
    cr_assert_eq(get(&t.bl, &t.bl.direct_up), 0);
    cr_assert_eq(get(&t.al, &t.al.direct_up), 0);
    cr_assert(echo_run(t.a, t.circ), "the relayed connection stopped serving streams");
    cr_assert_eq(get(&t.al, &t.al.rel_down), 0);
    cr_assert_eq(get(&t.bl, &t.bl.rel_down), 0);
    trio_down(&t);
}
