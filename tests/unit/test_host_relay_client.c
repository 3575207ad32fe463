/*
 * The relay client (src/host/relay_client.c) end to end on loopback, with
 * three ringp2p nodes: a relay (the relay service on), a target that reserves
 * on it (ringp2p_config_relay) and a dialer. Reservations (event, circuit
 * address advertised in ringp2p_node_addrs and in identify's certified
 * addresses as the dialer sees them, renewal), a byte-exact echo through the
 * circuit with both ends' connections marked relayed, the data limit's reset
 * reaching both ends as an error, a refusal by a node without the service, the
 * loss of a reservation when the relay stops, --no-relay, and new streams
 * preferring a direct connection to a relayed one.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "host/host.h"
#include "host/relay_svc.h"
#include "multiformats/multiaddr.h"
#include "protocols/identify.h"
#include "protocols/relay.h"
#include "ringp2p/node.h"
#include "hostutil.h"
#include "testutil.h"

/* ---- events ------------------------------------------------------------------------------- */

typedef struct evlog {
    pthread_mutex_t mu;
    _Atomic int rsv_ok, rsv_fail, rsv_lost;
    int rsv_err;
    char rsv_error[RINGP2P_ERRINFO_MSG_MAX];
    uint64_t expire[2]; /* of the first two ok events */
    char rsv_relay[512];
    /* relayed connections */
    _Atomic int rel_connected, rel_disconnected, direct_connected;
    bool rel_inbound;
    bool rel_limited;
    char rel_remote[512];
    int rel_disc_err;
    /* identify as this node sees its peers: want_addr among their addresses, certified */
    char want_addr[512];
    _Atomic bool id_seen, id_certified;
} evlog;

static void ev_init(evlog *l)
{
    memset(l, 0, sizeof(*l));
    pthread_mutex_init(&l->mu, NULL);
}

static void on_event(ringp2p_node *n, const ringp2p_event *ev, void *ctx)
{
    evlog *l = ctx;
    (void)n;
    pthread_mutex_lock(&l->mu);
    switch (ev->type) {
    case RINGP2P_EVENT_RESERVATION: {
        const ringp2p_reservation_info *ri = ev->reservation;
        cr_assert_null(ev->conn);
        ringp2p_multiaddr_to_string(ri->relay_addr, l->rsv_relay, sizeof(l->rsv_relay));
        if (ri->ok) {
            cr_assert_eq(ev->err, 0);
            if (l->rsv_ok < 2) l->expire[l->rsv_ok] = ri->expire;
            l->rsv_ok++;
        } else {
            cr_assert_lt(ev->err, 0);
            cr_assert_not_null(ri->error);
            snprintf(l->rsv_error, sizeof(l->rsv_error), "%s", ri->error);
            l->rsv_err = ev->err;
            if (ri->lost) l->rsv_lost++;
            l->rsv_fail++;
        }
        break;
    }
    case RINGP2P_EVENT_CONNECTED:
        if (ev->conn->relayed) {
            l->rel_inbound = ev->conn->inbound;
            l->rel_limited = ev->conn->limited;
            ringp2p_multiaddr_to_string(ev->conn->remote_addr, l->rel_remote,
                                        sizeof(l->rel_remote));
            l->rel_connected++;
        } else {
            l->direct_connected++;
        }
        break;
    case RINGP2P_EVENT_DISCONNECTED:
        if (ev->conn->relayed) {
            l->rel_disc_err = ev->err;
            l->rel_disconnected++;
        }
        break;
    case RINGP2P_EVENT_IDENTIFIED: {
        const rp_identify_peer *p = rp_host_conn_peer(ev->conn);
        const rp_iov *list;
        bool certified = false;
        size_t k = p != NULL ? rp_identify_peer_addrs(p, &list, &certified) : 0;
        for (size_t i = 0; i < k && l->want_addr[0] != 0; i++) {
            char t[512];
            if (rp_maddr_to_text(list[i].base, list[i].len, t, sizeof(t), NULL) > 0 &&
                strcmp(t, l->want_addr) == 0) {
                l->id_certified = certified;
                l->id_seen = true;
            }
        }
        break;
    }
    default: break;
    }
    pthread_mutex_unlock(&l->mu);
}

/* ---- nodes -------------------------------------------------------------------------------- */

typedef struct nopts {
    bool listen, service, client_off;
    const ringp2p_relay_limits *limits;
    const char *relay; /* reserve on it */
    evlog *log;
} nopts;

static ringp2p_node *mk_node(nopts o)
{
    ringp2p_config *cfg = host_config(o.listen ? HOST_LOOPBACK : NULL, 2);
    ringp2p_errinfo ei;
    if (o.service) cr_assert_eq(ringp2p_config_relay_service(cfg, true, o.limits), 0);
    if (o.client_off) ringp2p_config_relay_client(cfg, false);
    if (o.relay != NULL) cr_assert_eq(ringp2p_config_relay(cfg, o.relay, &ei), 0, "%s", ei.msg);
    if (o.log != NULL) {
        ev_init(o.log);
        ringp2p_config_events(cfg, on_event, o.log);
    }
    return host_start(host_new(cfg));
}

static void text_of(ringp2p_node *n, char *buf, size_t cap)
{
    ringp2p_multiaddr *a = addr_of(n);
    cr_assert_gt(ringp2p_multiaddr_to_string(a, buf, cap), 0);
    ringp2p_multiaddr_free(a);
}

/* RELAY/p2p-circuit/p2p/TARGET as text. */
static void circuit_of(ringp2p_node *relay, ringp2p_node *t, char *buf, size_t cap)
{
    char r[256], id[RINGP2P_PEER_ID_STR_MAX];
    text_of(relay, r, sizeof(r));
    ringp2p_peer_id_to_string(ringp2p_node_id(t), id, sizeof(id));
    snprintf(buf, cap, "%s/p2p-circuit/p2p/%s", r, id);
}

static bool has_addr(ringp2p_node *n, const char *want)
{
    ringp2p_multiaddr *a[16];
    size_t k = ringp2p_node_addrs(n, a, 16);
    bool found = false;
    for (size_t i = 0; i < k && i < 16; i++) {
        char t[512];
        if (a[i] != NULL && ringp2p_multiaddr_to_string(a[i], t, sizeof(t)) > 0 &&
            strcmp(t, want) == 0)
            found = true;
        ringp2p_multiaddr_free(a[i]);
    }
    return found;
}

/* ---- an echo client: len pattern bytes out, the same expected back ------------------------ */

/* Opens an echo stream from n to `to` (text) with len bytes and waits for its end. */
static void echo_run(ringp2p_node *n, const char *to, echo_job *e, size_t len, uint32_t seed)
{
    memset(e, 0, sizeof(*e));
    e->len = len;
    e->seed = seed;
    e->lax = true; /* a relay's limit may reset the stream */
    echo_to(n, to, e, 15000);
}

/* A relay with the service and a target holding a reservation on it. */
static void relay_and_target(ringp2p_node **relay, ringp2p_node **t, evlog *tl,
                             const ringp2p_relay_limits *lim)
{
    *relay = mk_node((nopts){ .listen = true, .service = true, .limits = lim });
    char ra[256];
    text_of(*relay, ra, sizeof(ra));
    *t = mk_node((nopts){ .relay = ra, .log = tl });
    cr_assert(WAIT_UNTIL(tl->rsv_ok > 0 || tl->rsv_fail > 0, 10000), "no reservation event");
    cr_assert_eq(tl->rsv_fail, 0, "reservation failed: %s", tl->rsv_error);
    cr_assert_str_eq(tl->rsv_relay, ra);
}

TestSuite(host_relay_client, .timeout = 60);

/*
 * The target reserves, advertises RELAY/p2p-circuit (ringp2p_node_addrs, and
 * identify's signed addresses as the dialer sees them over the relayed
 * connection), and a dialer reaches it through the circuit: 64 KiB echoed
 * byte for byte, both ends' connections relayed and limited, with the circuit
 * address as the remote address.
 */
Test(host_relay_client, reserve_and_dial)
{
    static evlog tl, dl;
    ringp2p_node *relay, *t;
    uint64_t before = (uint64_t)time(NULL);
    relay_and_target(&relay, &t, &tl, NULL);
    cr_assert(tl.expire[0] >= before + RP_RELAY_DEFAULT_TTL_S - 2 &&
                  tl.expire[0] <= (uint64_t)time(NULL) + RP_RELAY_DEFAULT_TTL_S + 2,
              "expire %llu", (unsigned long long)tl.expire[0]);
    char circ[512];
    circuit_of(relay, t, circ, sizeof(circ));
    cr_assert(WAIT_UNTIL(has_addr(t, circ), 2000), "the target does not advertise %s", circ);
    cr_assert(rp_relay_svc_has_reservation(relay, ringp2p_node_id(t)));

    ringp2p_node *d = mk_node((nopts){ .log = &dl });
    snprintf(dl.want_addr, sizeof(dl.want_addr), "%s", circ);
    *strstr(dl.want_addr, "/p2p-circuit") = 0; /* identify carries it without the target's /p2p */
    strcat(dl.want_addr, "/p2p-circuit");
    static echo_job e;
    echo_run(d, circ, &e, 65536, 7);
    cr_assert_eq(e.open_err, 0, "open: %s", e.errmsg);
    cr_assert_eq(e.close_err, 0);
    cr_assert_not(e.bad);
    cr_assert_eq(e.got, 65536);
    cr_assert(e.relayed);
    cr_assert(e.limited);
    cr_assert_str_eq(e.remote, circ);
    /* the dialer's side, from its events */
    cr_assert(WAIT_UNTIL(dl.rel_connected == 1, 2000));
    cr_assert_not(dl.rel_inbound);
    cr_assert(dl.rel_limited);
    cr_assert_eq(dl.direct_connected, 1); /* to the relay */
    cr_assert(WAIT_UNTIL(dl.id_seen, 5000), "identify over the circuit lacks %s", dl.want_addr);
    cr_assert(dl.id_certified, "%s is not in the target's signed record", dl.want_addr);
    /* the target's side: an inbound relayed connection from the dialer, through the relay */
    cr_assert(WAIT_UNTIL(tl.rel_connected == 1, 2000));
    cr_assert(tl.rel_inbound);
    cr_assert(tl.rel_limited);
    char want[512], did[RINGP2P_PEER_ID_STR_MAX], ra[256];
    text_of(relay, ra, sizeof(ra));
    ringp2p_peer_id_to_string(ringp2p_node_id(d), did, sizeof(did));
    snprintf(want, sizeof(want), "%s/p2p-circuit/p2p/%s", ra, did);
    pthread_mutex_lock(&tl.mu);
    cr_assert_str_eq(tl.rel_remote, want);
    pthread_mutex_unlock(&tl.mu);
    ringp2p_node_free(d);
    ringp2p_node_free(t);
    ringp2p_node_free(relay);
}

/*
 * Past the relay's data limit (16 KiB here) the relay resets the circuit:
 * the dialer's stream and relayed connection end with RINGP2P_ELIMIT naming
 * the limit, the target's relayed connection with an error too.
 */
Test(host_relay_client, data_limit_reaches_both_ends)
{
    static evlog tl, dl;
    ringp2p_relay_limits lim;
    ringp2p_relay_limits_default(&lim);
    lim.data = 16384;
    ringp2p_node *relay, *t;
    relay_and_target(&relay, &t, &tl, &lim);
    char circ[512];
    circuit_of(relay, t, circ, sizeof(circ));
    ringp2p_node *d = mk_node((nopts){ .log = &dl });
    static echo_job e;
    echo_run(d, circ, &e, 65536, 9);
    cr_assert_eq(e.open_err, 0, "open: %s", e.errmsg);
    cr_assert_eq(e.close_err, RINGP2P_ELIMIT, "stream ended with %d", (int)e.close_err);
    cr_assert_lt(e.got, 16384);
    cr_assert(WAIT_UNTIL(dl.rel_disconnected == 1, 5000));
    cr_assert_eq(dl.rel_disc_err, RINGP2P_ELIMIT);
    cr_assert(WAIT_UNTIL(tl.rel_disconnected == 1, 5000), "the target's relayed connection lives");
    cr_assert(tl.rel_disc_err == RINGP2P_ELIMIT || tl.rel_disc_err == RINGP2P_ESTREAMRESET,
              "target: %d", tl.rel_disc_err);
    /* the reservation outlives the circuit */
    cr_assert_eq(tl.rsv_fail, 0);
    ringp2p_node_free(d);
    ringp2p_node_free(t);
    ringp2p_node_free(relay);
}

/* A node without the relay service refuses the reservation, in so many words. */
Test(host_relay_client, refused_without_service)
{
    static evlog tl;
    ringp2p_node *plain = mk_node((nopts){ .listen = true });
    char ra[256];
    text_of(plain, ra, sizeof(ra));
    ringp2p_node *t = mk_node((nopts){ .relay = ra, .log = &tl });
    cr_assert(WAIT_UNTIL(tl.rsv_fail > 0, 10000), "no reservation event");
    cr_assert_eq(tl.rsv_ok, 0);
    cr_assert_eq(tl.rsv_lost, 0);
    cr_assert_eq(tl.rsv_err, RINGP2P_ECONNREFUSED);
    cr_assert(strstr(tl.rsv_error, "does not serve " RP_RELAY_HOP_PROTOCOL_ID) != NULL, "%s",
              tl.rsv_error);
    ringp2p_multiaddr *a[8];
    size_t k = ringp2p_node_addrs(t, a, 8);
    for (size_t i = 0; i < k && i < 8; i++) ringp2p_multiaddr_free(a[i]);
    cr_assert_eq(k, 0, "a node with a refused reservation advertises %zu addresses", k);
    ringp2p_node_free(t);
    ringp2p_node_free(plain);
}

/* The relay goes away: the target reports the loss and stops advertising the circuit. */
Test(host_relay_client, relay_stops)
{
    static evlog tl;
    ringp2p_node *relay, *t;
    relay_and_target(&relay, &t, &tl, NULL);
    char circ[512];
    circuit_of(relay, t, circ, sizeof(circ));
    cr_assert(WAIT_UNTIL(has_addr(t, circ), 2000));
    ringp2p_node_free(relay);
    cr_assert(WAIT_UNTIL(tl.rsv_lost > 0, 5000), "the loss was not reported");
    cr_assert_eq(tl.rsv_err, RINGP2P_ECONNRESET);
    cr_assert(strstr(tl.rsv_error, "reservation is lost") != NULL, "%s", tl.rsv_error);
    cr_assert(WAIT_UNTIL(!has_addr(t, circ), 2000), "still advertised after the loss");
    ringp2p_node_free(t);
}

/* A short reservation is renewed halfway through: a second event with a later expiry. */
Test(host_relay_client, renewal)
{
    static evlog tl;
    ringp2p_relay_limits lim;
    ringp2p_relay_limits_default(&lim);
    lim.reservation_ttl_s = 2;
    ringp2p_node *relay, *t;
    relay_and_target(&relay, &t, &tl, &lim);
    cr_assert(WAIT_UNTIL(tl.rsv_ok >= 2, 3000), "no renewal");
    cr_assert_gt(tl.expire[1], tl.expire[0]);
    cr_assert_eq(tl.rsv_fail, 0, "%s", tl.rsv_error);
    ringp2p_node_free(t);
    ringp2p_node_free(relay);
}

/*
 * With the client off a circuit address is refused clearly and the stop
 * protocol is not served; a dial through a relay to a peer without a
 * reservation there is refused with the relay's NO_RESERVATION.
 */
Test(host_relay_client, no_relay)
{
    static evlog tl;
    ringp2p_node *relay, *t;
    relay_and_target(&relay, &t, &tl, NULL);
    char circ[512];
    circuit_of(relay, t, circ, sizeof(circ));
    ringp2p_node *d = mk_node((nopts){ .client_off = true });
    static echo_job e;
    echo_run(d, circ, &e, 10, 1);
    cr_assert_eq(e.open_err, RINGP2P_EUNSUPPORTED);
    cr_assert(strstr(e.errmsg, "relayed dialing is off") != NULL, "%s", e.errmsg);
    cr_assert(strstr(e.errmsg, circ) != NULL, "%s", e.errmsg);
    pthread_mutex_lock(&d->mu);
    cr_assert_lt(
        rp_htable_find(d->handlers, RP_RELAY_STOP_PROTOCOL_ID, strlen(RP_RELAY_STOP_PROTOCOL_ID)),
        0);
    pthread_mutex_unlock(&d->mu);
    pthread_mutex_lock(&t->mu);
    cr_assert_geq(
        rp_htable_find(t->handlers, RP_RELAY_STOP_PROTOCOL_ID, strlen(RP_RELAY_STOP_PROTOCOL_ID)),
        0);
    pthread_mutex_unlock(&t->mu);
    ringp2p_node *off = mk_node((nopts){ .client_off = true });
    ringp2p_node *d2 = mk_node((nopts){ 0 });
    char ra[256], oid[RINGP2P_PEER_ID_STR_MAX], c2[512];
    text_of(relay, ra, sizeof(ra));
    ringp2p_peer_id_to_string(ringp2p_node_id(off), oid, sizeof(oid));
    snprintf(c2, sizeof(c2), "%s/p2p-circuit/p2p/%s", ra, oid);
    echo_run(d2, c2, &e, 10, 1);
    cr_assert_eq(e.open_err, RINGP2P_ECONNREFUSED);
    cr_assert(strstr(e.errmsg, "NO_RESERVATION") != NULL, "%s", e.errmsg);
    ringp2p_node_free(d2);
    ringp2p_node_free(off);
    ringp2p_node_free(d);
    ringp2p_node_free(t);
    ringp2p_node_free(relay);
}

/*
 * Relayed and direct connections to one peer: a direct address dials even
 * though a relayed connection exists, and once both exist new streams (to the
 * circuit address or the bare peer ID) take the direct one.
 */
Test(host_relay_client, prefers_direct)
{
    static evlog tl;
    ringp2p_node *relay = mk_node((nopts){ .listen = true, .service = true });
    char ra[256];
    text_of(relay, ra, sizeof(ra));
    ringp2p_node *t = mk_node((nopts){ .listen = true, .relay = ra, .log = &tl });
    cr_assert(WAIT_UNTIL(tl.rsv_ok > 0, 10000), "no reservation: %s", tl.rsv_error);
    char circ[512], direct[512], bare[128], tid[RINGP2P_PEER_ID_STR_MAX];
    ringp2p_multiaddr *a[8];
    size_t k = ringp2p_node_addrs(t, a, 8);
    cr_assert_geq(k, 2);
    direct[0] = 0;
    for (size_t i = 0; i < k && i < 8; i++) {
        char s[512];
        ringp2p_multiaddr_to_string(a[i], s, sizeof(s));
        if (strstr(s, "/p2p-circuit") == NULL) snprintf(direct, sizeof(direct), "%s", s);
        ringp2p_multiaddr_free(a[i]);
    }
    cr_assert(direct[0] != 0);
    snprintf(circ, sizeof(circ), "%s/p2p-circuit/p2p/%s", ra,
             (ringp2p_peer_id_to_string(ringp2p_node_id(t), tid, sizeof(tid)), tid));
    snprintf(bare, sizeof(bare), "/p2p/%s", tid);
    ringp2p_node *d = mk_node((nopts){ 0 });
    static echo_job e;
    echo_run(d, circ, &e, 1000, 2);
    cr_assert_eq(e.open_err, 0, "%s", e.errmsg);
    cr_assert(e.relayed);
    echo_run(d, bare, &e, 1000, 3); /* only the relayed connection: a bare ID takes it */
    cr_assert_eq(e.open_err, 0, "%s", e.errmsg);
    cr_assert(e.relayed);
    echo_run(d, direct, &e, 1000, 4); /* a direct address dials */
    cr_assert_eq(e.open_err, 0, "%s", e.errmsg);
    cr_assert_not(e.relayed);
    echo_run(d, circ, &e, 1000, 5);
    cr_assert_eq(e.open_err, 0, "%s", e.errmsg);
    cr_assert_not(e.relayed, "a circuit address took the relayed connection over the direct one");
    echo_run(d, bare, &e, 1000, 6);
    cr_assert_not(e.relayed);
    cr_assert_eq(e.got, 1000);
    ringp2p_node_free(d);
    ringp2p_node_free(t);
    ringp2p_node_free(relay);
}
