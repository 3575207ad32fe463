/*
 * The host's addresses and limits over loopback: observed addresses adopted
 * from two observers (and dropped again when one disconnects or the reports
 * expire), identify push carrying them, per-connection identify records,
 * wildcard listen addresses, the connection limit and the negotiation
 * timeout.
 *
 * Every node here shares 127.0.0.1, so two observers would count as one IP
 * group under the default rule: these nodes count observers by peer ID
 * (rp_obsaddr_config.by_peer_only). And since loopback observations are
 * never adopted (they say nothing about how the Internet reaches us), the
 * observers are ringp2p nodes whose identify handler is replaced by one that
 * reports a documentation address (203.0.113.7, RFC 5737 TEST-NET-3; nothing
 * is ever sent to it) with our real port.
 */
#include <criterion/criterion.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "host/host.h"
#include "protocols/identify.h"
#include "ringp2p/node.h"
#include "hostutil.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------------------------ */

/* What a node's event callback saw. `want_*` are set before the node connects anywhere. */
typedef struct evs {
    waiter identified, addrs_changed, disconnected, saw_addr, saw_proto, saw_loop;
    _Atomic int n_addrs_changed;
    /* IDENTIFIED: does the peer's record hold this address (certified) / protocol? */
    uint8_t want_addr[64];
    size_t want_addr_len;
    const char *want_proto;
    _Atomic bool last_has_addr, last_has_proto, last_has_wild;
    _Atomic bool agent_ok;
} evs;

static void evs_init(evs *e)
{
    memset(e, 0, sizeof(*e));
    w_init(&e->identified);
    w_init(&e->addrs_changed);
    w_init(&e->disconnected);
    w_init(&e->saw_addr);
    w_init(&e->saw_proto);
    w_init(&e->saw_loop);
}

static void on_event(ringp2p_node *n, const ringp2p_event *ev, void *ctx)
{
    evs *e = ctx;
    (void)n;
    switch (ev->type) {
    case RINGP2P_EVENT_IDENTIFIED: {
        const rp_identify_peer *p = rp_host_conn_peer(ev->conn);
        if (p == NULL) break;
        const rp_iov *list;
        bool cert = false;
        size_t k = rp_identify_peer_addrs(p, &list, &cert);
        bool has = false, loop = false, wild = false;
        for (size_t i = 0; i < k; i++) {
            const uint8_t *b = list[i].base;
            if (e->want_addr_len > 0 && list[i].len == e->want_addr_len &&
                memcmp(b, e->want_addr, e->want_addr_len) == 0)
                has = true;
            /* /ip4/127.0.0.1 and /ip4/0.0.0.0 (code 4 then the address) */
            if (list[i].len >= 5 && b[0] == 4 && b[1] == 127) loop = true;
            if (list[i].len >= 5 && b[0] == 4 && memcmp(b + 1, "\0\0\0\0", 4) == 0) wild = true;
        }
        e->last_has_addr = has && cert;
        e->last_has_wild = wild;
        if (has && cert) w_signal(&e->saw_addr);
        if (loop && cert) w_signal(&e->saw_loop);
        bool proto = e->want_proto != NULL && rp_identify_peer_supports(p, e->want_proto);
        e->last_has_proto = proto;
        if (proto) w_signal(&e->saw_proto);
        rp_iov av = rp_identify_peer_agent_version(p);
        if (ev->agent_version != NULL && av.base != NULL && av.len == strlen(ev->agent_version) &&
            memcmp(av.base, ev->agent_version, av.len) == 0)
            e->agent_ok = true;
        w_signal(&e->identified);
        break;
    }
    case RINGP2P_EVENT_ADDRS_CHANGED:
        e->n_addrs_changed++;
        w_signal(&e->addrs_changed);
        break;
    case RINGP2P_EVENT_DISCONNECTED: w_signal(&e->disconnected); break;
    default: break;
    }
}

typedef struct node_opts {
    const char *listen;
    evs *ev;
    uint64_t obs_ttl_ns; /* 0: default */
    uint64_t max_conns, neg_ms;
} node_opts;

static ringp2p_node *mk(const node_opts *o)
{
    ringp2p_config *cfg = host_config(o->listen, 2);
    if (o->ev != NULL) ringp2p_config_events(cfg, on_event, o->ev);
    if (o->max_conns != 0) ringp2p_config_limit(cfg, RINGP2P_LIMIT_CONNECTIONS, o->max_conns);
    if (o->neg_ms != 0) ringp2p_config_limit(cfg, RINGP2P_LIMIT_NEGOTIATION_TIMEOUT_MS, o->neg_ms);
    ringp2p_node *n = host_new(cfg);
    /* all nodes share 127.0.0.1: count observers by peer ID */
    rp_obsaddr_config oc = { .by_peer_only = true, .ttl_ns = o->obs_ttl_ns };
    rp_host_set_obsaddr(n, &oc);
    return host_start(n);
}

static size_t n_addrs(ringp2p_node *n)
{
    ringp2p_multiaddr *a[RP_HOST_ADDRS_MAX];
    size_t k = ringp2p_node_addrs(n, a, RP_HOST_ADDRS_MAX);
    for (size_t i = 0; i < k && i < RP_HOST_ADDRS_MAX; i++) ringp2p_multiaddr_free(a[i]);
    return k;
}

/* Whether n advertises `bin` (binary, without /p2p). */
static bool advertises(ringp2p_node *n, const uint8_t *bin, size_t len)
{
    ringp2p_multiaddr *a[RP_HOST_ADDRS_MAX];
    size_t k = ringp2p_node_addrs(n, a, RP_HOST_ADDRS_MAX);
    bool found = false;
    for (size_t i = 0; i < k && i < RP_HOST_ADDRS_MAX; i++) {
        size_t l;
        const uint8_t *b = ringp2p_multiaddr_bytes(a[i], &l);
        if (l > len && memcmp(b, bin, len) == 0 && b[len] == 0xa5 /* /p2p varint 421: a5 03 */)
            found = true;
        ringp2p_multiaddr_free(a[i]);
    }
    return found;
}

/* A stream that opens, sends a few bytes to echo and closes: it brings a connection up. */
typedef struct opener {
    waiter w;
    _Atomic int err;
    char msg[RINGP2P_ERRINFO_MSG_MAX];
} opener;

static const ringp2p_stream_callbacks nop_cbs = { .on_data = nop_data, .on_close = nop_close };

static void opened(ringp2p_node *n, ringp2p_stream *s, int err, const ringp2p_errinfo *ei,
                   void *ctx)
{
    opener *o = ctx;
    (void)n;
    o->err = err;
    if (err < 0) {
        snprintf(o->msg, sizeof(o->msg), "%s", ei != NULL ? ei->msg : "");
    } else {
        ringp2p_stream_set_callbacks(s, &nop_cbs, NULL);
        ringp2p_stream_write(s, "hi", 2);
        ringp2p_stream_close_write(s);
    }
    w_signal(&o->w);
}

/* Opens /echo/1.0.0 from `from` to `to` and waits for the result; returns the error (0 ok). */
static int connect_echo(ringp2p_node *from, ringp2p_multiaddr *to, opener *o)
{
    w_init(&o->w);
    o->err = 1;
    const char *protos[1] = { "/echo/1.0.0" };
    cr_assert_eq(ringp2p_node_new_stream(from, to, protos, 1, opened, o), 0);
    cr_assert_eq(w_wait(&o->w, 1, 10000), 1, "open did not finish");
    return o->err;
}

/* ---- a lying observer --------------------------------------------------------------------- */

typedef struct lie {
    uint8_t addr[32];
    size_t len;
} lie;

/* Answers /ipfs/id/1.0.0 with only an agent and the observed address in `ctx`. */
static void liar_identify(ringp2p_node *n, ringp2p_stream *s, void *ctx)
{
    lie *l = ctx;
    (void)n;
    rp_identify_msg m;
    rp_identify_msg_init(&m);
    m.observed_addr = rp_iov_make(l->addr, l->len);
    m.agent_version = rp_iov_make("liar", 4);
    identify_answer(s, &m);
}

static ringp2p_node *mk_liar(evs *ev, lie *l)
{
    node_opts o = { .ev = ev };
    ringp2p_node *n = mk(&o);
    cr_assert_eq(ringp2p_node_set_stream_handler(n, RP_IDENTIFY_PROTOCOL_ID, liar_identify, l), 0);
    return n;
}

/* /ip4/203.0.113.7/tcp/<port of a> in binary, from a's /ip4/127.0.0.1/tcp/<port>/p2p/... */
static void fake_addr(ringp2p_multiaddr *a, lie *l)
{
    size_t len;
    const uint8_t *b = ringp2p_multiaddr_bytes(a, &len);
    cr_assert(len > 8 && b[0] == 0x04 && b[5] == 0x06, "expected /ip4/x/tcp/y");
    memcpy(l->addr, b, 8);
    static const uint8_t ip[4] = { 203, 0, 113, 7 };
    memcpy(l->addr + 1, ip, 4);
    l->len = 8;
}

/* ---- tests -------------------------------------------------------------------------------- */

TestSuite(host_addrs, .timeout = 60);

/*
 * One observer's report is not adopted; a second observer's is: A raises
 * ADDRS_CHANGED, advertises the address (ringp2p_node_addrs), and pushes it:
 * the first observer's record of A (per connection) then holds it,
 * certified by A's new signed record. When the second observer disconnects
 * its report is forgotten and the address goes again.
 */
Test(host_addrs, observed_adopted_from_two_observers)
{
    static evs ea, eb, ec;
    evs_init(&ea);
    evs_init(&eb);
    evs_init(&ec);
    node_opts oa = { .listen = "/ip4/127.0.0.1/tcp/0", .ev = &ea };
    ringp2p_node *a = mk(&oa);
    ringp2p_multiaddr *to = first_addr(a);
    static lie l;
    fake_addr(to, &l);
    memcpy(eb.want_addr, l.addr, l.len);
    eb.want_addr_len = l.len;
    ringp2p_node *b = mk_liar(&eb, &l), *c = mk_liar(&ec, &l);
    cr_assert_eq(n_addrs(a), 1);

    opener ob, oc;
    cr_assert_eq(connect_echo(b, to, &ob), 0, "%s", ob.msg);
    cr_assert_eq(w_wait(&ea.identified, 1, 10000), 1, "A identified B");
    cr_assert_eq(ea.n_addrs_changed, 0, "one observer is not enough");
    cr_assert_eq(n_addrs(a), 1);
    cr_assert(!advertises(a, l.addr, l.len));

    cr_assert_eq(connect_echo(c, to, &oc), 0, "%s", oc.msg);
    cr_assert_eq(w_wait(&ea.addrs_changed, 1, 10000), 1, "ADDRS_CHANGED after the second");
    cr_assert_eq(n_addrs(a), 2);
    cr_assert(advertises(a, l.addr, l.len), "A advertises the observed address");
    cr_assert_geq(w_wait(&eb.saw_addr, 1, 10000), 1, "B got the address by identify push");

    /* C goes: its report is forgotten, the address is no longer adopted */
    ringp2p_node_free(c);
    cr_assert_eq(w_wait(&ea.addrs_changed, 2, 10000), 2, "ADDRS_CHANGED after C left");
    cr_assert_eq(n_addrs(a), 1);
    cr_assert(!advertises(a, l.addr, l.len));
    /* and B hears that by push too: its last record of A lacks the address */
    for (int i = 0; i < 100 && eb.last_has_addr; i++) usleep(20000);
    cr_assert(!eb.last_has_addr, "B's record of A was updated by the second push");

    ringp2p_node_free(b);
    ringp2p_node_free(a);
    ringp2p_multiaddr_free(to);
}

/* Adopted addresses go when their reports expire (TTL 1 s here), with ADDRS_CHANGED. */
Test(host_addrs, observed_reports_expire)
{
    static evs ea;
    evs_init(&ea);
    node_opts oa = { .listen = "/ip4/127.0.0.1/tcp/0", .ev = &ea, .obs_ttl_ns = 1000000000ull };
    ringp2p_node *a = mk(&oa);
    ringp2p_multiaddr *to = first_addr(a);
    static lie l;
    fake_addr(to, &l);
    ringp2p_node *b = mk_liar(NULL, &l), *c = mk_liar(NULL, &l);
    opener ob, oc;
    cr_assert_eq(connect_echo(b, to, &ob), 0, "%s", ob.msg);
    cr_assert_eq(connect_echo(c, to, &oc), 0, "%s", oc.msg);
    cr_assert_eq(w_wait(&ea.addrs_changed, 1, 10000), 1);
    cr_assert(advertises(a, l.addr, l.len));
    /* both observers stay connected; only time passes */
    cr_assert_eq(w_wait(&ea.addrs_changed, 2, 10000), 2, "ADDRS_CHANGED at expiry");
    cr_assert(!advertises(a, l.addr, l.len));
    cr_assert_eq(n_addrs(a), 1);
    ringp2p_node_free(b);
    ringp2p_node_free(c);
    ringp2p_node_free(a);
    ringp2p_multiaddr_free(to);
}

/* Honest observers on loopback report 127.0.0.1, which is never adopted. */
Test(host_addrs, loopback_observations_ignored)
{
    static evs ea;
    evs_init(&ea);
    node_opts oa = { .listen = "/ip4/127.0.0.1/tcp/0", .ev = &ea };
    ringp2p_node *a = mk(&oa);
    ringp2p_multiaddr *to = first_addr(a);
    node_opts plain = { 0 };
    ringp2p_node *b = mk(&plain), *c = mk(&plain);
    opener ob, oc;
    cr_assert_eq(connect_echo(b, to, &ob), 0, "%s", ob.msg);
    cr_assert_eq(connect_echo(c, to, &oc), 0, "%s", oc.msg);
    cr_assert_eq(w_wait(&ea.identified, 2, 10000), 2);
    cr_assert_eq(ea.n_addrs_changed, 0);
    cr_assert_eq(n_addrs(a), 1);
    ringp2p_node_free(b);
    ringp2p_node_free(c);
    ringp2p_node_free(a);
    ringp2p_multiaddr_free(to);
}

static void x_handler(ringp2p_node *n, ringp2p_stream *s, void *ctx)
{
    (void)n, (void)ctx;
    ringp2p_stream_reset(s);
}

/*
 * The per-connection identify record: the server's record of the client
 * has the client's agent; when the client registers a protocol it pushes,
 * and the server's record then lists that protocol.
 */
Test(host_addrs, push_updates_peer_record)
{
    static evs es;
    evs_init(&es);
    es.want_proto = "/x-test/1.0.0";
    node_opts os = { .listen = "/ip4/127.0.0.1/tcp/0", .ev = &es };
    ringp2p_node *srv = mk(&os);
    ringp2p_multiaddr *to = first_addr(srv);
    node_opts oc = { 0 };
    ringp2p_node *cli = mk(&oc);
    opener o;
    cr_assert_eq(connect_echo(cli, to, &o), 0, "%s", o.msg);
    cr_assert_eq(w_wait(&es.identified, 1, 10000), 1);
    cr_assert(es.agent_ok, "the record's agent is the event's");
    cr_assert(!es.last_has_proto, "not registered yet");
    cr_assert_eq(ringp2p_node_set_stream_handler(cli, "/x-test/1.0.0", x_handler, NULL), 0);
    cr_assert_eq(w_wait(&es.saw_proto, 1, 10000), 1, "the push reached the server's record");
    cr_assert_geq(w_wait(&es.identified, 2, 100), 2);
    ringp2p_node_free(cli);
    ringp2p_node_free(srv);
    ringp2p_multiaddr_free(to);
}

/*
 * A wildcard listen address is advertised as the interfaces' addresses:
 * 127.0.0.1 among them, 0.0.0.0 never, one per up IPv4 interface address;
 * a client's identify record of the node shows the same.
 */
Test(host_addrs, wildcard_expanded)
{
    static evs ec;
    evs_init(&ec);
    node_opts os = { .listen = "/ip4/0.0.0.0/tcp/0" };
    ringp2p_node *srv = mk(&os);
    ringp2p_multiaddr *a[RP_HOST_ADDRS_MAX];
    size_t k = ringp2p_node_addrs(srv, a, RP_HOST_ADDRS_MAX);
    /* the IPv4 addresses of up interfaces, as getifaddrs tells the test */
    struct ifaddrs *ifs;
    cr_assert_eq(getifaddrs(&ifs), 0);
    uint32_t want[RP_HOST_ADDRS_MAX];
    size_t nwant = 0;
    for (struct ifaddrs *f = ifs; f != NULL; f = f->ifa_next) {
        if (f->ifa_addr == NULL || f->ifa_addr->sa_family != AF_INET || !(f->ifa_flags & IFF_UP))
            continue;
        uint32_t ip = ((struct sockaddr_in *)f->ifa_addr)->sin_addr.s_addr;
        bool dup = false;
        for (size_t i = 0; i < nwant; i++) dup |= want[i] == ip;
        if (!dup && nwant < RP_HOST_ADDRS_MAX) want[nwant++] = ip;
    }
    freeifaddrs(ifs);
    cr_assert_eq(k, nwant, "one address per interface address (%zu, want %zu)", k, nwant);
    ringp2p_multiaddr *loop = NULL;
    for (size_t i = 0; i < k; i++) {
        char t[256];
        cr_assert_gt(ringp2p_multiaddr_to_string(a[i], t, sizeof(t)), 0);
        cr_assert_null(strstr(t, "/0.0.0.0/"), "no wildcard advertised: %s", t);
        size_t len;
        const uint8_t *b = ringp2p_multiaddr_bytes(a[i], &len);
        uint32_t ip;
        memcpy(&ip, b + 1, 4);
        bool known = false;
        for (size_t j = 0; j < nwant; j++) known |= want[j] == ip;
        cr_assert(known, "%s is an interface address", t);
        if (strncmp(t, "/ip4/127.0.0.1/tcp/", 19) == 0)
            loop = a[i];
        else
            ringp2p_multiaddr_free(a[i]);
    }
    cr_assert_not_null(loop, "loopback kept");
    node_opts oc = { .ev = &ec };
    ringp2p_node *cli = mk(&oc);
    opener o;
    cr_assert_eq(connect_echo(cli, loop, &o), 0, "%s", o.msg);
    cr_assert_eq(w_wait(&ec.saw_loop, 1, 10000), 1, "the client's record has 127.0.0.1");
    cr_assert(!ec.last_has_wild, "and no 0.0.0.0");
    ringp2p_node_free(cli);
    ringp2p_node_free(srv);
    ringp2p_multiaddr_free(loop);
}

/*
 * RINGP2P_LIMIT_CONNECTIONS 2: the third and fourth inbound connections are
 * refused and counted while the first two keep working; when one of them
 * goes, a new one is accepted.
 */
Test(host_addrs, connection_limit)
{
    static evs es;
    evs_init(&es);
    node_opts os = { .listen = "/ip4/127.0.0.1/tcp/0", .ev = &es, .max_conns = 2 };
    ringp2p_node *srv = mk(&os);
    ringp2p_multiaddr *to = first_addr(srv);
    node_opts oc = { 0 };
    ringp2p_node *cl[5];
    opener o[5];
    for (int i = 0; i < 5; i++) cl[i] = mk(&oc);
    cr_assert_eq(connect_echo(cl[0], to, &o[0]), 0, "%s", o[0].msg);
    cr_assert_eq(connect_echo(cl[1], to, &o[1]), 0, "%s", o[1].msg);
    cr_assert_lt(connect_echo(cl[2], to, &o[2]), 0, "third connection refused");
    cr_assert_lt(connect_echo(cl[3], to, &o[3]), 0, "fourth connection refused");
    cr_assert_eq(rp_host_conns_refused(srv), 2);
    /* the two admitted ones still serve */
    cr_assert_eq(connect_echo(cl[0], to, &o[0]), 0, "%s", o[0].msg);
    cr_assert_eq(connect_echo(cl[1], to, &o[1]), 0, "%s", o[1].msg);
    ringp2p_node_free(cl[0]);
    cr_assert_eq(w_wait(&es.disconnected, 1, 10000), 1);
    cr_assert_eq(connect_echo(cl[4], to, &o[4]), 0, "a freed slot is used: %s", o[4].msg);
    cr_assert_eq(rp_host_conns_refused(srv), 2);
    for (int i = 1; i < 5; i++) ringp2p_node_free(cl[i]);
    ringp2p_node_free(srv);
    ringp2p_multiaddr_free(to);
}

/*
 * RINGP2P_LIMIT_NEGOTIATION_TIMEOUT_MS 300 on the client: a stream whose
 * multistream-select the (stalled) server does not answer in time is reset
 * and its opener hears RINGP2P_ETIMEDOUT; the connection survives it.
 */
Test(host_addrs, negotiation_timeout)
{
    static stall st = { .ms = 1000 }; /* a server stalled for 1 s on /stall/1.0.0 */
    w_init(&st.started);
    node_opts os = { .listen = "/ip4/127.0.0.1/tcp/0" };
    ringp2p_node *srv = mk(&os);
    cr_assert_eq(ringp2p_node_set_stream_handler(srv, "/stall/1.0.0", stall_handler, &st), 0);
    ringp2p_multiaddr *to = first_addr(srv);
    node_opts oc = { .neg_ms = 300 };
    ringp2p_node *cli = mk(&oc);
    opener o1, o2, o3;
    w_init(&o1.w);
    const char *stall_p[1] = { "/stall/1.0.0" };
    cr_assert_eq(ringp2p_node_new_stream(cli, to, stall_p, 1, opened, &o1), 0);
    cr_assert_eq(w_wait(&st.started, 1, 10000), 1, "the server is stalled");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* two protocols: negotiated fully (one that identify listed would be opened lazily) */
    const char *echo_p[2] = { "/echo/1.0.0", "/echo/0.0.1" };
    w_init(&o2.w);
    o2.err = 1;
    cr_assert_eq(ringp2p_node_new_stream(cli, to, echo_p, 2, opened, &o2), 0);
    cr_assert_eq(w_wait(&o2.w, 1, 10000), 1, "open did not finish");
    cr_assert_eq(o2.err, RINGP2P_ETIMEDOUT, "got %d: %s", o2.err, o2.msg);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    cr_assert(ms >= 250 && ms < 900, "timed out after %.0f ms (limit 300)", ms);
    cr_assert_not_null(strstr(o2.msg, "300 ms"), "%s", o2.msg);
    /* after the stall the same connection negotiates again */
    usleep(900000);
    cr_assert_eq(connect_echo(cli, to, &o3), 0, "%s", o3.msg);
    ringp2p_node_free(cli);
    ringp2p_node_free(srv);
    ringp2p_multiaddr_free(to);
}
