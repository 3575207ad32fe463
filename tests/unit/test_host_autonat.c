/*
 * AutoNAT v1 in the host (src/host/autonat_svc.c) over loopback, with
 * allow_private (127/8 is not public by go's rule). The server listens on
 * 127.0.0.3 and the clients on 127.0.0.1: connections to 127.0.0.3 leave from
 * 127.0.0.1, so the server sees its requesters on an IP that is not its own,
 * as across a real network.
 *
 * Client: a node with a listen address learns it is public, one without
 * (only the ephemeral port of its connection to the server to offer) learns
 * it is private; the dial-back arrives on a fresh connection. Server, asked
 * with hand-written DIALs over a real stream: it dials only the requested
 * address, refuses an address on another IP, checks the peer ID of what it
 * dials, answers a failure no sooner than its dial timeout, and refuses the
 * fourth request of a peer within the window.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "host/autonat_svc.h"
#include "protocols/autonat.h"
#include "ringp2p/node.h"
#include "hostutil.h"

/* Server dial timeout in these tests: failures are answered after it. */
#define DIAL_TIMEOUT_MS 300

/* ---- nodes and their events ---------------------------------------------------------------- */

typedef struct alog {
    pthread_mutex_t mu;
    int reach_events;
    ringp2p_reachability last;
    int in_conns, out_conns, in_closed, identified;
    ringp2p_peer_id in_peer[8];
    int in_local_port[8];
    uint64_t in_id[8];
} alog;

static int port_of(const ringp2p_multiaddr *ma)
{
    char t[256];
    int port = -1;
    if (ma != NULL && ringp2p_multiaddr_to_string(ma, t, sizeof(t)) > 0)
        sscanf(t, "/ip4/%*[0-9.]/tcp/%d", &port);
    return port;
}

static void ev_fn(ringp2p_node *n, const ringp2p_event *ev, void *ctx)
{
    alog *l = ctx;
    (void)n;
    pthread_mutex_lock(&l->mu);
    switch (ev->type) {
    case RINGP2P_EVENT_REACHABILITY:
        cr_assert_null(ev->conn);
        l->last = ev->reachability;
        l->reach_events++;
        break;
    case RINGP2P_EVENT_CONNECTED:
        if (ev->conn->inbound) {
            if (l->in_conns < 8) {
                l->in_peer[l->in_conns] = ev->conn->peer;
                l->in_local_port[l->in_conns] = port_of(ev->conn->local_addr);
                l->in_id[l->in_conns] = ev->conn->id;
            }
            l->in_conns++;
        } else {
            l->out_conns++;
        }
        break;
    case RINGP2P_EVENT_DISCONNECTED:
        if (ev->conn->inbound) l->in_closed++;
        break;
    case RINGP2P_EVENT_IDENTIFIED: l->identified++; break;
    default: break;
    }
    pthread_mutex_unlock(&l->mu);
}

static int logged(alog *l, int *field)
{
    pthread_mutex_lock(&l->mu);
    int v = *field;
    pthread_mutex_unlock(&l->mu);
    return v;
}

/*
 * A started node (2 shards) listening on each of listen[0..nlisten) with the
 * AutoNAT `flags`; servers get a DIAL_TIMEOUT_MS dial timeout.
 */
static ringp2p_node *anode(const char *const *listen, size_t nlisten, unsigned flags, alog *l)
{
    ringp2p_config *cfg = host_config(NULL, 2);
    ringp2p_errinfo ei;
    for (size_t i = 0; i < nlisten; i++)
        cr_assert_eq(ringp2p_config_listen(cfg, listen[i], &ei), 0, "%s", ei.msg);
    cr_assert_eq(ringp2p_config_autonat(cfg, flags), 0);
    if (l != NULL) {
        memset(l, 0, sizeof(*l));
        pthread_mutex_init(&l->mu, NULL);
        ringp2p_config_events(cfg, ev_fn, l);
    }
    ringp2p_node *n = host_new(cfg);
    if (flags & RINGP2P_AUTONAT_SERVER) {
        rp_autonat_server_config sc;
        rp_autonat_server_config_default(&sc);
        sc.allow_private = (flags & RINGP2P_AUTONAT_ALLOW_PRIVATE) != 0;
        sc.dial_timeout_ns = (uint64_t)DIAL_TIMEOUT_MS * 1000000;
        rp_autonat_svc_test_config(n, &sc, NULL);
    }
    return host_start(n);
}

static const char *const SERVER_LISTEN[] = { "/ip4/127.0.0.3/tcp/0" };
static const char *const CLIENT_LISTEN[] = { "/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0" };

static ringp2p_node *server_node(alog *l)
{
    return anode(SERVER_LISTEN, 1, RINGP2P_AUTONAT_SERVER | RINGP2P_AUTONAT_ALLOW_PRIVATE, l);
}

/* A stream from `from` to `to` (its first address) speaking `proto`. */
static ringp2p_bstream *open_to(ringp2p_node *from, ringp2p_node *to, const char *proto)
{
    ringp2p_multiaddr *a = addr_of(to);
    ringp2p_bstream *bs = bstream_to(from, a, proto, 5000);
    ringp2p_multiaddr_free(a);
    return bs;
}

/* ---- the client ------------------------------------------------------------------------------ */

Test(host_autonat, reachable_node_becomes_public_over_a_fresh_connection)
{
    alog sl, cl;
    ringp2p_node *srv = server_node(&sl);
    ringp2p_node *cli =
        anode(CLIENT_LISTEN, 1, RINGP2P_AUTONAT_CLIENT | RINGP2P_AUTONAT_ALLOW_PRIVATE, &cl);
    cr_assert_eq(ringp2p_node_reachability(cli), RINGP2P_REACHABILITY_UNKNOWN);
    ringp2p_multiaddr *ca = addr_of(cli);
    int cport = port_of(ca);
    ringp2p_multiaddr_free(ca);
    /* any connection will do: identify tells the client it may ask this peer */
    ringp2p_bstream *bs = open_to(cli, srv, "/ipfs/ping/1.0.0");
    cr_assert(WAIT_UNTIL(logged(&cl, &cl.reach_events) >= 1, 1800), "no reachability event");
    /* the dial-back: a second connection, from the server, to our listen port (its event
     * and the answer on the first connection may come in either order) */
    cr_assert(WAIT_UNTIL(logged(&cl, &cl.in_conns) >= 1, 1000), "no dial-back connection");
    pthread_mutex_lock(&cl.mu);
    cr_assert_eq(cl.reach_events, 1);
    cr_assert_eq(cl.last, RINGP2P_REACHABILITY_PUBLIC);
    cr_assert_eq(cl.out_conns, 1);
    cr_assert_eq(cl.in_conns, 1);
    cr_assert(ringp2p_peer_id_equal(&cl.in_peer[0], ringp2p_node_id(srv)));
    cr_assert_eq(cl.in_local_port[0], cport);
    pthread_mutex_unlock(&cl.mu);
    cr_assert_eq(ringp2p_node_reachability(cli), RINGP2P_REACHABILITY_PUBLIC);
    /* the server dialed our observed address, which is our listen address (a node that
     * listens dials from its listen port); its probe connections raised no event there and
     * never became the server's connection to us */
    cr_assert_eq(rp_autonat_svc_dialbacks(srv), 1);
    cr_assert_eq(logged(&sl, &sl.out_conns), 0);
    cr_assert_eq(logged(&sl, &sl.in_conns), 1);
    /* the server closes its probe connection once secured; ours to it stays */
    cr_assert(WAIT_UNTIL(logged(&cl, &cl.in_closed) == 1, 1000));
    cr_assert_eq(ringp2p_bstream_write(bs, "12345678901234567890123456789012", 32, 1000), 32);
    uint8_t pong[32];
    cr_assert_eq(ringp2p_bstream_read(bs, pong, 32, 1000), 32);
    ringp2p_bstream_close(bs);
    ringp2p_node_free(cli);
    ringp2p_node_free(srv);
}

Test(host_autonat, unreachable_node_becomes_private)
{
    alog sl, cl;
    ringp2p_node *srv = server_node(&sl);
    /* no listen address: all it can offer is where the server sees it, an ephemeral port */
    ringp2p_node *cli = anode(NULL, 0, RINGP2P_AUTONAT_CLIENT | RINGP2P_AUTONAT_ALLOW_PRIVATE, &cl);
    ringp2p_bstream *bs = open_to(cli, srv, "/ipfs/ping/1.0.0");
    uint64_t t0 = rp_clock_ns();
    cr_assert(WAIT_UNTIL(logged(&cl, &cl.reach_events) >= 1, 1800), "no reachability event");
    uint64_t waited_ms = (rp_clock_ns() - t0) / 1000000;
    pthread_mutex_lock(&cl.mu);
    cr_assert_eq(cl.last, RINGP2P_REACHABILITY_PRIVATE);
    cr_assert_eq(cl.in_conns, 0);
    pthread_mutex_unlock(&cl.mu);
    cr_assert_eq(ringp2p_node_reachability(cli), RINGP2P_REACHABILITY_PRIVATE);
    cr_assert_eq(rp_autonat_svc_dialbacks(srv), 1);
    /* the refused dial was answered only at the server's dial timeout */
    cr_assert_geq(waited_ms, DIAL_TIMEOUT_MS - 50, "answered after %llu ms",
                  (unsigned long long)waited_ms);
    ringp2p_bstream_close(bs);
    ringp2p_node_free(cli);
    ringp2p_node_free(srv);
}

Test(host_autonat, client_off_never_asks)
{
    alog sl, cl;
    ringp2p_node *srv = server_node(&sl);
    ringp2p_node *cli = anode(CLIENT_LISTEN, 1, 0, &cl);
    ringp2p_bstream *bs = open_to(cli, srv, "/ipfs/ping/1.0.0");
    cr_assert(WAIT_UNTIL(logged(&cl, &cl.identified) >= 1, 1000));
    usleep(300 * 1000);
    cr_assert_eq(logged(&cl, &cl.reach_events), 0);
    cr_assert_eq(rp_autonat_svc_dialbacks(srv), 0);
    ringp2p_bstream_close(bs);
    ringp2p_node_free(cli);
    ringp2p_node_free(srv);
}

/* ---- the server, asked by hand ----------------------------------------------------------------
 */

/* Sends a DIAL for `self` asking about addrs (text) and reads the answer into *m. */
static void ask(ringp2p_bstream *bs, const ringp2p_peer_id *self, const char *const *addrs,
                size_t n, rp_autonat_msg *m, uint8_t *buf, size_t cap)
{
    ringp2p_multiaddr *ma[4];
    rp_iov v[4];
    cr_assert_leq(n, 4);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(ringp2p_multiaddr_parse(addrs[i], &ma[i], NULL), 0, "%s", addrs[i]);
        size_t len;
        const uint8_t *b = ringp2p_multiaddr_bytes(ma[i], &len);
        v[i] = rp_iov_make(b, len);
    }
    uint8_t out[512];
    ssize_t len = rp_autonat_write_dial(self, v, n, out, sizeof(out), NULL);
    cr_assert_gt(len, 0);
    for (size_t i = 0; i < n; i++) ringp2p_multiaddr_free(ma[i]);
    cr_assert_eq(ringp2p_bstream_write(bs, out, (size_t)len, 2000), len);
    size_t got = 0;
    for (;;) {
        const uint8_t *p = buf;
        int r = rp_autonat_read_frame(&p, buf + got, m, NULL);
        if (r == 1) return;
        cr_assert_eq(r, 0, "bad answer");
        cr_assert_lt(got, cap);
        ssize_t k = ringp2p_bstream_read(bs, buf + got, cap - got, 2000);
        cr_assert_gt(k, 0, "no answer: %zd", k);
        got += (size_t)k;
    }
}

static char *tcp_text(char *buf, size_t cap, const char *ip, int port)
{
    snprintf(buf, cap, "/ip4/%s/tcp/%d", ip, port);
    return buf;
}

Test(host_autonat, server_dials_only_the_asked_address)
{
    alog sl, rl;
    ringp2p_node *srv = server_node(&sl);
    /* a requester with two listen ports and no client of its own */
    ringp2p_node *req = anode(CLIENT_LISTEN, 2, 0, &rl);
    ringp2p_multiaddr *ra[2];
    cr_assert_eq(ringp2p_node_addrs(req, ra, 2), 2);
    int p1 = port_of(ra[0]), p2 = port_of(ra[1]);
    ringp2p_multiaddr_free(ra[0]);
    ringp2p_multiaddr_free(ra[1]);
    cr_assert(p1 > 0 && p2 > 0 && p1 != p2);

    ringp2p_bstream *bs = open_to(req, srv, RP_AUTONAT_PROTOCOL_ID);
    char a[64];
    const char *asked[1] = { tcp_text(a, sizeof(a), "127.0.0.1", p2) };
    uint8_t buf[RP_AUTONAT_MSG_MAX + 16];
    rp_autonat_msg m;
    ask(bs, ringp2p_node_id(req), asked, 1, &m, buf, sizeof(buf));
    rp_iov dialed;
    cr_assert_eq(rp_autonat_response_observation(&m, &dialed), RP_AUTONAT_OBS_PUBLIC, "status %s",
                 rp_autonat_status_name(m.status));
    ringp2p_multiaddr *want;
    cr_assert_eq(ringp2p_multiaddr_parse(asked[0], &want, NULL), 0);
    size_t wl;
    const uint8_t *wb = ringp2p_multiaddr_bytes(want, &wl);
    cr_assert_eq(dialed.len, wl);
    cr_assert_arr_eq(dialed.base, wb, wl);
    ringp2p_multiaddr_free(want);
    ringp2p_bstream_close(bs);
    /* one dial-back, to p2 alone */
    cr_assert_eq(rp_autonat_svc_dialbacks(srv), 1);
    cr_assert(WAIT_UNTIL(logged(&rl, &rl.in_conns) >= 1, 500));
    pthread_mutex_lock(&rl.mu);
    cr_assert_eq(rl.in_conns, 1);
    cr_assert_eq(rl.in_local_port[0], p2);
    pthread_mutex_unlock(&rl.mu);

    /* an address on another IP than the one the request came from: refused, not dialed */
    bs = open_to(req, srv, RP_AUTONAT_PROTOCOL_ID);
    asked[0] = tcp_text(a, sizeof(a), "127.0.0.2", p1);
    ask(bs, ringp2p_node_id(req), asked, 1, &m, buf, sizeof(buf));
    cr_assert_eq(m.status, RP_AUTONAT_E_DIAL_REFUSED, "status %s",
                 rp_autonat_status_name(m.status));
    ringp2p_bstream_close(bs);
    usleep(100 * 1000);
    cr_assert_eq(rp_autonat_svc_dialbacks(srv), 1);
    cr_assert_eq(logged(&rl, &rl.in_conns), 1);

    /* a DIAL naming another peer than the connection's */
    bs = open_to(req, srv, RP_AUTONAT_PROTOCOL_ID);
    asked[0] = tcp_text(a, sizeof(a), "127.0.0.1", p1);
    ask(bs, ringp2p_node_id(srv), asked, 1, &m, buf, sizeof(buf));
    cr_assert_eq(m.status, RP_AUTONAT_E_BAD_REQUEST);
    ringp2p_bstream_close(bs);
    cr_assert_eq(rp_autonat_svc_dialbacks(srv), 1);
    ringp2p_node_free(req);
    ringp2p_node_free(srv);
}

Test(host_autonat, server_checks_the_peer_and_answers_failure_at_the_timeout)
{
    alog sl, rl;
    ringp2p_node *srv = server_node(&sl);
    ringp2p_node *req = anode(CLIENT_LISTEN, 1, 0, &rl);
    /* another peer listening on the requester's IP */
    ringp2p_node *other = anode(CLIENT_LISTEN, 1, 0, NULL);
    ringp2p_multiaddr *oa = addr_of(other);
    int op = port_of(oa);
    ringp2p_multiaddr_free(oa);

    ringp2p_bstream *bs = open_to(req, srv, RP_AUTONAT_PROTOCOL_ID);
    char a[64];
    const char *asked[1] = { tcp_text(a, sizeof(a), "127.0.0.1", op) };
    uint8_t buf[RP_AUTONAT_MSG_MAX + 16];
    rp_autonat_msg m;
    uint64_t t0 = rp_clock_ns();
    ask(bs, ringp2p_node_id(req), asked, 1, &m, buf, sizeof(buf));
    uint64_t ms = (rp_clock_ns() - t0) / 1000000;
    /* `other` answered the handshake, but as itself: no proof about the requester */
    cr_assert_eq(m.status, RP_AUTONAT_E_DIAL_ERROR, "status %s", rp_autonat_status_name(m.status));
    cr_assert_geq(ms, DIAL_TIMEOUT_MS, "answered after %llu ms", (unsigned long long)ms);
    cr_assert_lt(ms, DIAL_TIMEOUT_MS + 1000);
    cr_assert_eq(rp_autonat_svc_dialbacks(srv), 1);
    ringp2p_bstream_close(bs);
    ringp2p_node_free(other);
    ringp2p_node_free(req);
    ringp2p_node_free(srv);
}

Test(host_autonat, server_rate_limits_a_peer)
{
    alog sl, rl;
    ringp2p_node *srv = server_node(&sl);
    ringp2p_node *req = anode(CLIENT_LISTEN, 1, 0, &rl);
    ringp2p_multiaddr *ra = addr_of(req);
    int port = port_of(ra);
    ringp2p_multiaddr_free(ra);
    char a[64];
    const char *asked[1] = { tcp_text(a, sizeof(a), "127.0.0.1", port) };
    uint8_t buf[RP_AUTONAT_MSG_MAX + 16];
    rp_autonat_msg m;
    for (int i = 0; i < RP_AUTONAT_SERVER_PEER_MAX + 1; i++) {
        ringp2p_bstream *bs = open_to(req, srv, RP_AUTONAT_PROTOCOL_ID);
        ask(bs, ringp2p_node_id(req), asked, 1, &m, buf, sizeof(buf));
        ringp2p_bstream_close(bs);
        if (i < RP_AUTONAT_SERVER_PEER_MAX)
            cr_assert_eq(m.status, RP_AUTONAT_OK, "request %d: %s", i,
                         rp_autonat_status_name(m.status));
        else
            cr_assert_eq(m.status, RP_AUTONAT_E_DIAL_REFUSED, "request %d: %s", i,
                         rp_autonat_status_name(m.status));
    }
    cr_assert_eq(rp_autonat_svc_dialbacks(srv), RP_AUTONAT_SERVER_PEER_MAX);
    ringp2p_node_free(req);
    ringp2p_node_free(srv);
}

Test(host_autonat, server_off_does_not_speak_autonat)
{
    ringp2p_node *srv = anode(SERVER_LISTEN, 1, RINGP2P_AUTONAT_CLIENT, NULL);
    ringp2p_node *req = anode(CLIENT_LISTEN, 1, 0, NULL);
    ringp2p_multiaddr *a = addr_of(srv);
    const char *protos[1] = { RP_AUTONAT_PROTOCOL_ID };
    ringp2p_bstream *bs;
    ringp2p_errinfo ei;
    int r = ringp2p_bstream_open(req, a, protos, 1, 5000, &bs, &ei);
    cr_assert_eq(r, RINGP2P_ENEGOTIATION, "%d %s", r, ei.msg);
    ringp2p_multiaddr_free(a);
    ringp2p_config *cfg = ringp2p_config_new();
    cr_assert_eq(ringp2p_config_autonat(cfg, 0x80), RINGP2P_EINVAL);
    ringp2p_config_free(cfg);
    ringp2p_node_free(req);
    ringp2p_node_free(srv);
}
