/*
 * The relay service (src/host/relay_svc.c) end to end over loopback: a
 * ringp2p relay node and in-process client nodes that speak the hop and stop
 * protocols with the relay core's client functions (protocols/relay.h) over
 * real ringp2p streams. Reservations (voucher checked), refusals (service
 * off, limits, no reservation, a target that refuses or is not there),
 * relayed bytes both ways byte for byte across one or two relay shards,
 * backpressure through the relay, the data and duration limits, the end of a
 * reservation when its peer disconnects, and circuits cut by a target that
 * leaves or a relay that stops.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "host/host.h"
#include "host/relay_svc.h"
#include "protocols/relay.h"
#include "ringp2p/node.h"
#include "hostutil.h"
#include "testutil.h"

/* ---- the relay node and its events -------------------------------------------------------- */

typedef struct rlog {
    pthread_mutex_t mu;
    int reservations;
    ringp2p_peer_id res_peer;
    uint64_t res_expire;
    _Atomic int circuits;
    int circ_err;
    ringp2p_peer_id csrc, cdst;
    uint64_t to_dst, to_src, duration_ms;
} rlog;

static void relay_ev(ringp2p_node *n, const ringp2p_event *ev, void *ctx)
{
    rlog *l = ctx;
    (void)n;
    pthread_mutex_lock(&l->mu);
    if (ev->type == RINGP2P_EVENT_RELAY_RESERVATION) {
        cr_assert_not_null(ev->conn);
        cr_assert(ringp2p_peer_id_equal(&ev->conn->peer, &ev->relay->src));
        l->res_peer = ev->relay->src;
        l->res_expire = ev->relay->expire;
        l->reservations++;
    } else if (ev->type == RINGP2P_EVENT_RELAY_CIRCUIT) {
        l->circ_err = ev->err;
        l->csrc = ev->relay->src;
        l->cdst = ev->relay->dst;
        l->to_dst = ev->relay->bytes_to_dst;
        l->to_src = ev->relay->bytes_to_src;
        l->duration_ms = ev->relay->duration_ms;
        l->circuits++;
    }
    pthread_mutex_unlock(&l->mu);
}

/* A started relay (2 shards, 127.0.0.1:0): service on with `lim` (NULL: defaults) or off. */
static ringp2p_node *relay_node(bool service, const ringp2p_relay_limits *lim, rlog *log)
{
    ringp2p_config *cfg = host_config(HOST_LOOPBACK, 2);
    if (service) cr_assert_eq(ringp2p_config_relay_service(cfg, true, lim), 0);
    if (log != NULL) {
        memset(log, 0, sizeof(*log));
        pthread_mutex_init(&log->mu, NULL);
        ringp2p_config_events(cfg, relay_ev, log);
    }
    return host_start(host_new(cfg));
}

static ringp2p_relay_limits limits_of(uint32_t duration_s, uint64_t data)
{
    ringp2p_relay_limits l;
    ringp2p_relay_limits_default(&l);
    l.duration_s = duration_s;
    l.data = data;
    return l;
}

/* ---- a hop client: one request, its answer, then (CONNECT OK) the relayed bytes ----------- */

typedef struct hopc {
    uint8_t req[RP_RELAY_FRAME_MAX];
    size_t req_len;
    bool close_after_req; /* half-close right after the request */
    uint8_t buf[RP_RELAY_FRAME_MAX + 16];
    size_t buf_len;
    uint8_t ans[RP_RELAY_FRAME_MAX]; /* the answer's frame, prefix included */
    size_t ans_len;
    _Atomic bool answered, bridged;
    /* relayed bytes: tx_len pattern bytes out (then half-close), pattern bytes expected in */
    uint32_t seed_tx, seed_rx;
    size_t tx_len, tx_sent;
    _Atomic size_t tx_seen; /* tx_sent, for the test thread */
    bool hold;              /* keep the stream open after tx_len */
    _Atomic size_t rx_got;
    _Atomic bool bad;
    _Atomic int open_err, close_err;
    _Atomic bool closed;
    char errmsg[RINGP2P_ERRINFO_MSG_MAX];
} hopc;

/* Writes pattern bytes until len went out, then half-closes unless `hold`. */
static void pump(ringp2p_stream *s, uint32_t seed, size_t len, size_t *sent, bool hold,
                 _Atomic bool *bad)
{
    ssize_t r = pat_write(s, seed, len, sent);
    if (r == 0 && !hold) ringp2p_stream_close_write(s);
    if (r < 0 && r != RINGP2P_EAGAIN && r != RINGP2P_ECLOSED) *bad = true;
}

static void check_rx(uint32_t seed, _Atomic size_t *got, const uint8_t *d, size_t len,
                     _Atomic bool *bad)
{
    size_t g = *got;
    if (pat_differs(seed, g, d, len)) *bad = true;
    *got = g + len;
}

static void hc_data(ringp2p_stream *s, void *ctx, const uint8_t *d, size_t len)
{
    hopc *h = ctx;
    if (h->answered) {
        check_rx(h->seed_rx, &h->rx_got, d, len, &h->bad);
        return;
    }
    size_t take = len < sizeof(h->buf) - h->buf_len ? len : sizeof(h->buf) - h->buf_len;
    memcpy(h->buf + h->buf_len, d, take);
    h->buf_len += take;
    const uint8_t *p = h->buf;
    rp_iov body;
    if (rp_relay_read_frame(&p, h->buf + h->buf_len, &body, NULL) != 1) return;
    h->ans_len = (size_t)(p - h->buf);
    memcpy(h->ans, h->buf, h->ans_len);
    const uint8_t *q = h->ans;
    rp_relay_hop_msg m;
    bool ok = rp_relay_hop_read(&q, h->ans + h->ans_len, &m, NULL) == 1 && m.has_type &&
              m.type == RP_RELAY_HOP_STATUS && m.status == RP_RELAY_OK && !m.has_reservation;
    size_t rest = h->buf_len - h->ans_len;
    h->answered = true;
    if (rest > 0) check_rx(h->seed_rx, &h->rx_got, h->buf + h->ans_len, rest, &h->bad);
    rest = len - take; /* the answer frame is at most the buffer: this is relayed data */
    if (rest > 0) check_rx(h->seed_rx, &h->rx_got, d + take, rest, &h->bad);
    if (ok) {
        h->bridged = true;
        pump(s, h->seed_tx, h->tx_len, &h->tx_sent, h->hold, &h->bad);
        h->tx_seen = h->tx_sent;
    }
}

static void hc_eof(ringp2p_stream *s, void *ctx)
{
    hopc *h = ctx;
    if (!h->bridged || (h->tx_sent == h->tx_len && !h->hold)) ringp2p_stream_close_write(s);
}

static void hc_writable(ringp2p_stream *s, void *ctx)
{
    hopc *h = ctx;
    if (h->bridged) pump(s, h->seed_tx, h->tx_len, &h->tx_sent, h->hold, &h->bad);
    h->tx_seen = h->tx_sent;
}

static void hc_close(ringp2p_stream *s, void *ctx, int err)
{
    hopc *h = ctx;
    (void)s;
    h->close_err = err;
    h->closed = true;
}

static const ringp2p_stream_callbacks hc_cbs = {
    .on_data = hc_data,
    .on_eof = hc_eof,
    .on_writable = hc_writable,
    .on_close = hc_close,
};

static void hc_open(ringp2p_node *n, ringp2p_stream *s, int err, const ringp2p_errinfo *ei,
                    void *ctx)
{
    hopc *h = ctx;
    (void)n;
    if (err < 0) {
        snprintf(h->errmsg, sizeof(h->errmsg), "%s", ei != NULL ? ei->msg : "");
        h->open_err = err;
        h->closed = true;
        return;
    }
    ringp2p_stream_set_callbacks(s, &hc_cbs, h);
    ringp2p_stream_write(s, h->req, h->req_len);
    if (h->close_after_req) ringp2p_stream_close_write(s);
}

/* Sends h->req on a new hop stream from `cli` to `relay` and waits for the answer. */
static void hop_send(ringp2p_node *cli, ringp2p_node *relay, hopc *h)
{
    ringp2p_multiaddr *to = addr_of(relay);
    const char *protos[1] = { RP_RELAY_HOP_PROTOCOL_ID };
    cr_assert_eq(ringp2p_node_new_stream(cli, to, protos, 1, hc_open, h), 0);
    ringp2p_multiaddr_free(to);
    cr_assert(WAIT_UNTIL(h->answered || h->closed, 10000), "no answer to the hop request");
}

/* A decoded answer (views into h->ans). */
static rp_relay_hop_msg answer_of(hopc *h)
{
    cr_assert(h->answered, "no answer (open: %d %s)", (int)h->open_err, h->errmsg);
    const uint8_t *p = h->ans;
    rp_relay_hop_msg m;
    cr_assert_eq(rp_relay_hop_read(&p, h->ans + h->ans_len, &m, NULL), 1);
    return m;
}

static void reserve(ringp2p_node *cli, ringp2p_node *relay, hopc *h)
{
    memset(h, 0, sizeof(*h));
    ssize_t n = rp_relay_reserve_write(h->req, sizeof(h->req));
    cr_assert_gt(n, 0);
    h->req_len = (size_t)n;
    hop_send(cli, relay, h);
}

/* Reserves and checks the answer is an OK reservation; returns it (views into h). */
static rp_relay_reservation reserve_ok(ringp2p_node *cli, ringp2p_node *relay, hopc *h)
{
    reserve(cli, relay, h);
    rp_relay_hop_msg m = answer_of(h);
    rp_relay_reservation rs;
    int32_t st;
    ringp2p_errinfo ei = { 0 };
    cr_assert_eq(rp_relay_reserve_check(&m, ringp2p_node_id(relay), ringp2p_node_id(cli),
                                        (uint64_t)time(NULL), &rs, &st, &ei),
                 0, "reservation: %s", ei.msg);
    cr_assert(WAIT_UNTIL(h->closed, 5000), "the reservation's stream did not close");
    return rs;
}

static void connect_to(ringp2p_node *cli, ringp2p_node *relay, const ringp2p_peer_id *dst, hopc *h)
{
    ssize_t n = rp_relay_connect_write(dst, h->req, sizeof(h->req));
    cr_assert_gt(n, 0);
    h->req_len = (size_t)n;
    hop_send(cli, relay, h);
}

/* The status of an answer that must be a refusal. */
static int32_t refused_status(hopc *h)
{
    rp_relay_hop_msg m = answer_of(h);
    int32_t st = 0;
    cr_assert_eq(rp_relay_connect_check(&m, NULL, NULL, &st, NULL), RINGP2P_ECONNREFUSED);
    cr_assert(WAIT_UNTIL(h->closed, 5000), "the refused stream did not close");
    cr_assert_eq(h->close_err, 0);
    return st;
}

/* ---- the target: a stop handler answering with the core's stop functions ------------------ */

typedef struct tgt {
    int32_t answer; /* RP_RELAY_OK or the refusal to give */
    uint8_t buf[RP_RELAY_FRAME_MAX + 16];
    size_t buf_len;
    _Atomic bool got_req;
    rp_relay_stop_request req;
    _Atomic int check_err;
    uint32_t seed_tx, seed_rx;
    size_t tx_len, tx_sent;
    bool hold;
    bool gate;            /* pause reading once bridged, until resumed (backpressure test) */
    ringp2p_stream *self; /* the stop stream, for resume_gate */
    _Atomic size_t rx_got;
    _Atomic bool bad, closed;
    _Atomic int close_err;
} tgt;

/* Up to 16 stop streams, one tgt each in arrival order. */
typedef struct tgts {
    tgt t[16];
    _Atomic int n;
} tgts;

static void tg_data(ringp2p_stream *s, void *ctx, const uint8_t *d, size_t len)
{
    tgt *t = ctx;
    if (t->got_req) {
        check_rx(t->seed_rx, &t->rx_got, d, len, &t->bad);
        return;
    }
    size_t take = len < sizeof(t->buf) - t->buf_len ? len : sizeof(t->buf) - t->buf_len;
    memcpy(t->buf + t->buf_len, d, take);
    t->buf_len += take;
    const uint8_t *p = t->buf;
    rp_relay_stop_msg m;
    if (rp_relay_stop_read(&p, t->buf + t->buf_len, &m, NULL) != 1) return;
    int32_t reply = RP_RELAY_OK;
    t->check_err = rp_relay_stop_check(&m, &t->req, &reply, NULL);
    if (t->check_err == 0) reply = t->answer;
    uint8_t out[16];
    ssize_t n = rp_relay_stop_status_write(reply, out, sizeof(out));
    ringp2p_stream_write(s, out, (size_t)n);
    t->got_req = true;
    if (reply != RP_RELAY_OK) {
        ringp2p_stream_close_write(s);
        return;
    }
    if (t->gate) {
        t->self = s;
        ringp2p_stream_pause_read(s);
    }
    size_t rest = (size_t)(t->buf + t->buf_len - p);
    if (rest > 0) check_rx(t->seed_rx, &t->rx_got, p, rest, &t->bad);
    if (len > take) check_rx(t->seed_rx, &t->rx_got, d + take, len - take, &t->bad);
    pump(s, t->seed_tx, t->tx_len, &t->tx_sent, t->hold, &t->bad);
}

static void tg_eof(ringp2p_stream *s, void *ctx)
{
    tgt *t = ctx;
    if ((t->tx_sent == t->tx_len && !t->hold) || t->answer != RP_RELAY_OK)
        ringp2p_stream_close_write(s);
}

static void tg_writable(ringp2p_stream *s, void *ctx)
{
    tgt *t = ctx;
    if (t->got_req && t->answer == RP_RELAY_OK)
        pump(s, t->seed_tx, t->tx_len, &t->tx_sent, t->hold, &t->bad);
}

static void tg_close(ringp2p_stream *s, void *ctx, int err)
{
    tgt *t = ctx;
    (void)s;
    t->close_err = err;
    t->closed = true;
}

static const ringp2p_stream_callbacks tg_cbs = {
    .on_data = tg_data,
    .on_eof = tg_eof,
    .on_writable = tg_writable,
    .on_close = tg_close,
};

static void stop_handler(ringp2p_node *n, ringp2p_stream *s, void *ctx)
{
    tgts *ts = ctx;
    (void)n;
    int i = atomic_fetch_add(&ts->n, 1);
    if (i >= 16) {
        ringp2p_stream_reset(s);
        return;
    }
    ringp2p_stream_set_callbacks(s, &tg_cbs, &ts->t[i]);
}

/* A target node: its stop handler serves ts (NULL: no stop handler). */
static ringp2p_node *target_node(tgts *ts)
{
    ringp2p_node *t = host_node(false, NULL, NULL, NULL);
    if (ts != NULL)
        cr_assert_eq(
            ringp2p_node_set_stream_handler(t, RP_RELAY_STOP_PROTOCOL_ID, stop_handler, ts), 0);
    else /* the relay client (on by default) serves the stop protocol */
        cr_assert_eq(ringp2p_node_remove_stream_handler(t, RP_RELAY_STOP_PROTOCOL_ID), 0);
    return t;
}

/*
 * A relay with the service on (limits `lim`, NULL: the defaults) and its
 * events in `log`, and a target serving `ts` that holds a reservation on it,
 * made with `h` (reused for the next hop request).
 */
typedef struct scene {
    rlog log;
    ringp2p_node *relay, *t;
    tgts ts;
    hopc h;
} scene;

static void scene_up(scene *s, const ringp2p_relay_limits *lim)
{
    s->relay = relay_node(true, lim, &s->log);
    memset(&s->ts, 0, sizeof(s->ts));
    s->t = target_node(&s->ts);
    reserve_ok(s->t, s->relay, &s->h);
}

static void scene_down(scene *s)
{
    ringp2p_node_free(s->t);
    ringp2p_node_free(s->relay);
}

/* What one end of a circuit writes: `len` bytes of pattern `seed`, then a half-close unless `hold`.
 */
typedef struct flow {
    uint32_t seed;
    size_t len;
    bool hold;
} flow;

/*
 * A CONNECT to the scene's target through its relay from a new node
 * (returned), whose hop stream s->h (cleared here) sends `in`; the target's
 * stop stream `tg` takes it and sends `out`. Each end expects what the other
 * sends.
 */
static ringp2p_node *circuit(scene *s, tgt *tg, flow in, flow out)
{
    hopc *h = &s->h;
    tg->answer = RP_RELAY_OK;
    tg->seed_rx = in.seed;
    tg->seed_tx = out.seed;
    tg->tx_len = out.len;
    tg->hold = out.hold;
    ringp2p_node *i = host_node(false, NULL, NULL, NULL);
    memset(h, 0, sizeof(*h));
    h->seed_tx = in.seed;
    h->seed_rx = out.seed;
    h->tx_len = in.len;
    h->hold = in.hold;
    connect_to(i, s->relay, ringp2p_node_id(s->t), h);
    return i;
}

/* ---- tests -------------------------------------------------------------------------------- */

TestSuite(host_relay, .timeout = 60);

/* Unix seconds from the clock the relay stamps expiries with (relay_svc.c unix_now). Not
 * time(): glibc's time() reads the coarse clock, which can still say second S for a tick
 * (a few ms) after CLOCK_REALTIME reached S + 1, so a bound from time() taken after the
 * reservation could be one second below the relay's expiry. */
static uint64_t realtime_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec;
}

/*
 * A reservation: OK, a voucher signed by the relay for us that verifies, the
 * relay's address, go's default limit; the relay tells its application, and
 * the reservation is held.
 */
Test(host_relay, reserve)
{
    rlog log;
    ringp2p_node *relay = relay_node(true, NULL, &log);
    ringp2p_node *a = host_node(false, NULL, NULL, NULL);
    static hopc h;
    uint64_t before = realtime_s();
    rp_relay_reservation rs = reserve_ok(a, relay, &h);
    uint64_t after = realtime_s();
    cr_assert(rs.has_voucher);
    cr_assert(ringp2p_peer_id_equal(&rs.voucher.relay, ringp2p_node_id(relay)));
    cr_assert(ringp2p_peer_id_equal(&rs.voucher.peer, ringp2p_node_id(a)));
    cr_assert_eq(rs.voucher.expiration, rs.expire);
    cr_assert(rs.expire >= before + 3600 && rs.expire <= after + 3600,
              "expire %llu outside [%llu, %llu] + 3600", (unsigned long long)rs.expire,
              (unsigned long long)before, (unsigned long long)after);
    cr_assert(rs.limited);
    cr_assert_eq(rs.limit.duration, 120);
    cr_assert_eq(rs.limit.data, 131072);
    ringp2p_multiaddr *ra = addr_of(relay);
    size_t ralen;
    const uint8_t *rab = ringp2p_multiaddr_bytes(ra, &ralen);
    cr_assert_eq(rs.n_addrs, 1);
    cr_assert_eq(rs.addrs[0].len, ralen);
    cr_assert_arr_eq(rs.addrs[0].base, rab, ralen, "the relay's address with /p2p/RELAY");
    ringp2p_multiaddr_free(ra);
    cr_assert(WAIT_UNTIL(h.closed, 5000));
    cr_assert_eq(h.close_err, 0);
    cr_assert(rp_relay_svc_has_reservation(relay, ringp2p_node_id(a)));
    cr_assert_eq(rp_relay_svc_reservations(relay), 1);
    pthread_mutex_lock(&log.mu);
    cr_assert_eq(log.reservations, 1);
    cr_assert(ringp2p_peer_id_equal(&log.res_peer, ringp2p_node_id(a)));
    cr_assert_eq(log.res_expire, rs.expire);
    pthread_mutex_unlock(&log.mu);
    /* the voucher's signature is what the check relied on: one flipped byte fails it */
    rp_relay_hop_msg m = answer_of(&h);
    ((uint8_t *)m.reservation.voucher.base)[m.reservation.voucher.len - 1] ^= 1;
    cr_assert_lt(rp_relay_reserve_check(&m, ringp2p_node_id(relay), ringp2p_node_id(a),
                                        (uint64_t)time(NULL), &rs, NULL, NULL),
                 0);
    ringp2p_node_free(a);
    ringp2p_node_free(relay);
}

/* Without the service the hop protocol is not served: the stream cannot open, and says why. */
Test(host_relay, service_off)
{
    ringp2p_node *relay = relay_node(false, NULL, NULL);
    ringp2p_node *a = host_node(false, NULL, NULL, NULL);
    static hopc h;
    reserve(a, relay, &h);
    cr_assert(!h.answered);
    cr_assert_eq(h.open_err, RINGP2P_ENEGOTIATION, "%d: %s", (int)h.open_err, h.errmsg);
    cr_assert_not_null(strstr(h.errmsg, RP_RELAY_HOP_PROTOCOL_ID), "%s", h.errmsg);
    ringp2p_node_free(a);
    ringp2p_node_free(relay);
}

/* max_reservations 1: a second peer is refused, the holder renews. */
Test(host_relay, reservation_limit)
{
    ringp2p_relay_limits l = limits_of(120, 131072);
    l.max_reservations = 1;
    ringp2p_node *relay = relay_node(true, &l, NULL);
    ringp2p_node *a = host_node(false, NULL, NULL, NULL);
    ringp2p_node *b = host_node(false, NULL, NULL, NULL);
    static hopc h;
    reserve_ok(a, relay, &h);
    reserve(b, relay, &h);
    rp_relay_hop_msg m = answer_of(&h);
    int32_t st = 0;
    rp_relay_reservation rs;
    ringp2p_errinfo ei = { 0 };
    cr_assert_eq(rp_relay_reserve_check(&m, ringp2p_node_id(relay), ringp2p_node_id(b),
                                        (uint64_t)time(NULL), &rs, &st, &ei),
                 RINGP2P_ECONNREFUSED);
    cr_assert_eq(st, RP_RELAY_RESERVATION_REFUSED, "%d", (int)st);
    cr_assert_not_null(strstr(ei.msg, "RESERVATION_REFUSED"), "%s", ei.msg);
    reserve_ok(a, relay, &h); /* a renewal */
    cr_assert_eq(rp_relay_svc_reservations(relay), 1);
    cr_assert(!rp_relay_svc_has_reservation(relay, ringp2p_node_id(b)));
    ringp2p_node_free(b);
    ringp2p_node_free(a);
    ringp2p_node_free(relay);
}

/* CONNECT to a peer with no reservation (connected to the relay, or not at all). */
Test(host_relay, connect_no_reservation)
{
    ringp2p_node *relay = relay_node(true, NULL, NULL);
    static tgts ts;
    memset(&ts, 0, sizeof(ts));
    ringp2p_node *t = target_node(&ts);
    ringp2p_node *stranger = host_node(false, NULL, NULL, NULL);
    ringp2p_node *i = host_node(false, NULL, NULL, NULL);
    /* t is connected to the relay (its own refused CONNECT), but holds no reservation */
    static hopc h;
    memset(&h, 0, sizeof(h));
    connect_to(t, relay, ringp2p_node_id(stranger), &h);
    cr_assert_eq(refused_status(&h), RP_RELAY_NO_RESERVATION);
    memset(&h, 0, sizeof(h));
    connect_to(i, relay, ringp2p_node_id(t), &h);
    cr_assert_eq(refused_status(&h), RP_RELAY_NO_RESERVATION);
    cr_assert(WAIT_UNTIL(h.closed, 5000));
    cr_assert_eq(h.close_err, 0);
    cr_assert_eq(ts.n, 0, "no stop stream without a reservation");
    cr_assert_eq(rp_relay_svc_circuits(relay), 0);
    ringp2p_node_free(i);
    ringp2p_node_free(stranger);
    ringp2p_node_free(t);
    ringp2p_node_free(relay);
}

/* A truncated request followed by EOF is answered MALFORMED_MESSAGE. */
Test(host_relay, truncated_request)
{
    ringp2p_node *relay = relay_node(true, NULL, NULL);
    ringp2p_node *a = host_node(false, NULL, NULL, NULL);
    static hopc h;
    memset(&h, 0, sizeof(h));
    ssize_t n = rp_relay_connect_write(ringp2p_node_id(a), h.req, sizeof(h.req));
    cr_assert_gt(n, 3);
    h.req_len = (size_t)n - 3;
    h.close_after_req = true;
    hop_send(a, relay, &h);
    cr_assert_eq(refused_status(&h), RP_RELAY_MALFORMED_MESSAGE);
    ringp2p_node_free(a);
    ringp2p_node_free(relay);
}

/*
 * Relayed connections, unlimited: the target gets a stop stream naming the
 * initiator and no limit, then N bytes go each way byte for byte and both
 * streams end cleanly; the relay reports the counts. New initiators are
 * added until circuits were seen with both streams on one relay shard and on
 * two (the kernel spreads connections over the relay's shards).
 */
Test(host_relay, bridge_both_ways)
{
    ringp2p_relay_limits l = limits_of(0, 0);
    static scene s;
    scene_up(&s, &l);
    cr_assert(rp_relay_svc_has_reservation(s.relay, ringp2p_node_id(s.t)));
    uint64_t same = 0, cross = 0;
    int k = 0;
    for (; k < 16 && (same == 0 || cross == 0 || k < 2); k++) {
        size_t len = k == 0 ? (size_t)3 << 20 : (size_t)65536 + (size_t)k * 1237;
        tgt *tg = &s.ts.t[k];
        ringp2p_node *i = circuit(&s, tg, (flow){ 2000u + (uint32_t)k, len, false },
                                  (flow){ 1000u + (uint32_t)k, len + 17, false });
        rp_relay_hop_msg m = answer_of(&s.h);
        bool limited = true;
        cr_assert_eq(rp_relay_connect_check(&m, &limited, NULL, NULL, NULL), 0);
        cr_assert(!limited);
        cr_assert(WAIT_UNTIL(s.h.closed && tg->closed, 30000), "circuit %d did not end", k);
        cr_assert_eq(tg->check_err, 0);
        cr_assert(ringp2p_peer_id_equal(&tg->req.src, ringp2p_node_id(i)));
        cr_assert(!tg->req.limited);
        cr_assert(!s.h.bad && !tg->bad, "circuit %d: wrong bytes", k);
        cr_assert_eq(tg->rx_got, len, "circuit %d: target got %zu of %zu", k, (size_t)tg->rx_got,
                     len);
        cr_assert_eq(s.h.rx_got, len + 17, "circuit %d: initiator got %zu", k, (size_t)s.h.rx_got);
        cr_assert_eq(s.h.close_err, 0, "circuit %d: %d", k, (int)s.h.close_err);
        cr_assert_eq(tg->close_err, 0, "circuit %d: %d", k, (int)tg->close_err);
        cr_assert(WAIT_UNTIL(s.log.circuits == k + 1, 5000));
        pthread_mutex_lock(&s.log.mu);
        cr_assert_eq(s.log.circ_err, 0);
        cr_assert_eq(s.log.to_dst, len);
        cr_assert_eq(s.log.to_src, len + 17);
        cr_assert(ringp2p_peer_id_equal(&s.log.csrc, ringp2p_node_id(i)));
        cr_assert(ringp2p_peer_id_equal(&s.log.cdst, ringp2p_node_id(s.t)));
        pthread_mutex_unlock(&s.log.mu);
        ringp2p_node_free(i);
        rp_relay_svc_shard_mix(s.relay, &same, &cross);
    }
    cr_assert(same > 0 && cross > 0, "after %d circuits: %llu on one shard, %llu on two", k,
              (unsigned long long)same, (unsigned long long)cross);
    cr_assert_eq(rp_relay_svc_circuits(s.relay), 0);
    scene_down(&s);
}

/* The data limit: the target sees the limit; past it both ends are reset. */
Test(host_relay, data_limit_resets)
{
    ringp2p_relay_limits l = limits_of(120, 65536);
    static scene s;
    scene_up(&s, &l);
    /* a target that half-closed could let the initiator finish cleanly: it holds */
    ringp2p_node *i = circuit(&s, &s.ts.t[0], (flow){ 7, 256 * 1024, false }, (flow){ 0, 0, true });
    rp_relay_hop_msg m = answer_of(&s.h);
    bool limited = false;
    rp_relay_limit lim;
    cr_assert_eq(rp_relay_connect_check(&m, &limited, &lim, NULL, NULL), 0);
    cr_assert(limited && lim.duration == 120 && lim.data == 65536);
    cr_assert(WAIT_UNTIL(s.h.closed && s.ts.t[0].closed, 10000));
    cr_assert(s.ts.t[0].req.limited && s.ts.t[0].req.limit.data == 65536);
    cr_assert_neq(s.h.close_err, 0, "the initiator's stream was reset");
    cr_assert_neq(s.ts.t[0].close_err, 0, "the target's stream was reset");
    cr_assert(!s.ts.t[0].bad);
    cr_assert_leq(s.ts.t[0].rx_got, 65536, "%zu bytes passed", (size_t)s.ts.t[0].rx_got);
    cr_assert(WAIT_UNTIL(s.log.circuits == 1, 5000));
    cr_assert_eq(s.log.circ_err, RINGP2P_ELIMIT);
    cr_assert_eq(s.log.to_dst, 65536);
    cr_assert_eq(rp_relay_svc_circuits(s.relay), 0);
    ringp2p_node_free(i);
    scene_down(&s);
}

/* The duration limit: an idle relayed connection is reset after duration_s. */
Test(host_relay, duration_limit_resets)
{
    ringp2p_relay_limits l = limits_of(1, 0);
    static scene s;
    scene_up(&s, &l);
    /* one byte each way; both streams stay open */
    ringp2p_node *i = circuit(&s, &s.ts.t[0], (flow){ 3, 1, true }, (flow){ 4, 1, true });
    cr_assert(answer_of(&s.h).status == RP_RELAY_OK);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert(WAIT_UNTIL(s.h.closed && s.ts.t[0].closed, 5000));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    cr_assert(secs > 0.8 && secs < 3.0, "reset after %.2f s", secs);
    cr_assert_neq(s.h.close_err, 0);
    cr_assert_neq(s.ts.t[0].close_err, 0);
    cr_assert_eq(s.ts.t[0].rx_got, 1);
    cr_assert_eq(s.h.rx_got, 1);
    cr_assert(!s.h.bad && !s.ts.t[0].bad);
    cr_assert(WAIT_UNTIL(s.log.circuits == 1, 5000));
    cr_assert_eq(s.log.circ_err, RINGP2P_ETIMEDOUT);
    cr_assert_geq(s.log.duration_ms, 1000);
    ringp2p_node_free(i);
    scene_down(&s);
}

/* A target that refuses, or serves no stop protocol: the initiator hears CONNECTION_FAILED. */
Test(host_relay, target_refuses)
{
    static scene s;
    scene_up(&s, NULL);
    ringp2p_node *bare = target_node(NULL);
    ringp2p_node *i = host_node(false, NULL, NULL, NULL);
    reserve_ok(bare, s.relay, &s.h);
    s.ts.t[0].answer = RP_RELAY_PERMISSION_DENIED;
    memset(&s.h, 0, sizeof(s.h));
    connect_to(i, s.relay, ringp2p_node_id(s.t), &s.h);
    cr_assert_eq(refused_status(&s.h), RP_RELAY_CONNECTION_FAILED);
    cr_assert_eq(s.ts.n, 1);
    cr_assert(ringp2p_peer_id_equal(&s.ts.t[0].req.src, ringp2p_node_id(i)));
    memset(&s.h, 0, sizeof(s.h));
    connect_to(i, s.relay, ringp2p_node_id(bare), &s.h);
    cr_assert_eq(refused_status(&s.h), RP_RELAY_CONNECTION_FAILED);
    cr_assert(WAIT_UNTIL(rp_relay_svc_circuits(s.relay) == 0, 5000));
    ringp2p_node_free(i);
    ringp2p_node_free(bare);
    scene_down(&s);
}

/* The reservation ends with the target's connection: a CONNECT then finds none. */
Test(host_relay, reservation_ends_on_disconnect)
{
    static scene s;
    scene_up(&s, NULL);
    ringp2p_peer_id tid = *ringp2p_node_id(s.t);
    cr_assert(rp_relay_svc_has_reservation(s.relay, &tid));
    ringp2p_node_free(s.t);
    cr_assert(WAIT_UNTIL(!rp_relay_svc_has_reservation(s.relay, &tid), 5000));
    cr_assert_eq(rp_relay_svc_reservations(s.relay), 0);
    ringp2p_node *i = host_node(false, NULL, NULL, NULL);
    memset(&s.h, 0, sizeof(s.h));
    connect_to(i, s.relay, &tid, &s.h);
    cr_assert_eq(refused_status(&s.h), RP_RELAY_NO_RESERVATION);
    ringp2p_node_free(i);
    ringp2p_node_free(s.relay);
}

/* Starts a held circuit (one byte each way, both streams stay open) from a new node `*ip`. */
static void held_circuit(scene *s, ringp2p_node **ip)
{
    tgt *tg = &s->ts.t[0];
    *ip = circuit(s, tg, (flow){ 5, 1, true }, (flow){ 6, 1, true });
    cr_assert(answer_of(&s->h).status == RP_RELAY_OK);
    cr_assert(WAIT_UNTIL(s->h.rx_got == 1 && tg->rx_got == 1, 5000),
              "the held circuit carries bytes");
    cr_assert_eq(rp_relay_svc_circuits(s->relay), 1);
}

/* The target's connection drops mid-circuit: the initiator's stream is reset, the circuit ends. */
Test(host_relay, target_leaves_mid_circuit)
{
    ringp2p_relay_limits l = limits_of(0, 0);
    static scene s;
    scene_up(&s, &l);
    ringp2p_node *i;
    held_circuit(&s, &i);
    ringp2p_node_free(s.t);
    cr_assert(WAIT_UNTIL(s.h.closed, 5000));
    cr_assert_neq(s.h.close_err, 0);
    cr_assert(WAIT_UNTIL(s.log.circuits == 1, 5000));
    cr_assert_neq(s.log.circ_err, 0);
    cr_assert_eq(s.log.to_dst, 1);
    cr_assert_eq(s.log.to_src, 1);
    cr_assert(WAIT_UNTIL(rp_relay_svc_circuits(s.relay) == 0, 5000));
    ringp2p_node_free(i);
    ringp2p_node_free(s.relay);
}

/* The relay stops with a circuit open: both ends are reset, nothing leaks, nothing hangs. */
Test(host_relay, relay_stops_mid_circuit)
{
    static scene s;
    scene_up(&s, NULL);
    ringp2p_node *i;
    held_circuit(&s, &i);
    ringp2p_node_free(s.relay);
    cr_assert(WAIT_UNTIL(s.h.closed && s.ts.t[0].closed, 5000));
    cr_assert_neq(s.h.close_err, 0);
    cr_assert_neq(s.ts.t[0].close_err, 0);
    ringp2p_node_free(i);
    ringp2p_node_free(s.t);
}

/* Runs on the target's one connection, so on its stop stream's shard: lifts the gate. */
static void resume_gate(ringp2p_node *n, ringp2p_stream *s, int err, const ringp2p_errinfo *ei,
                        void *ctx)
{
    tgt *t = ctx;
    (void)n;
    (void)ei;
    cr_assert_eq(err, 0);
    cr_assert_eq(ringp2p_stream_conn(s)->shard, ringp2p_stream_conn(t->self)->shard);
    ringp2p_stream_resume_read(t->self);
    ringp2p_stream_reset(s);
}

/*
 * Backpressure through the relay: while the target reads nothing, the
 * initiator cannot push 16 MiB (the relay pauses its reading instead of
 * buffering); once the target reads, everything arrives byte for byte.
 */
Test(host_relay, backpressure)
{
    enum { LEN = 16 << 20 };
    ringp2p_relay_limits l = limits_of(0, 0);
    static scene s;
    scene_up(&s, &l);
    tgt *tg = &s.ts.t[0];
    tg->gate = true;
    ringp2p_node *i = circuit(&s, tg, (flow){ 9, LEN, false }, (flow){ 0, 0, false });
    cr_assert(answer_of(&s.h).status == RP_RELAY_OK);
    /* the sender stalls: what it got out is bounded by the windows and queues on the way */
    size_t prev = 0;
    for (int k = 0; k < 40 && (prev == 0 || prev != s.h.tx_seen); k++) {
        prev = s.h.tx_seen;
        usleep(50000);
    }
    size_t stalled = s.h.tx_seen;
    cr_assert_lt(stalled, (size_t)6 << 20,
                 "%zu bytes left the initiator with the target not reading", stalled);
    cr_assert_eq(tg->rx_got, 0);
    const char *protos[1] = { "/echo/1.0.0" };
    ringp2p_multiaddr *ra = addr_of(s.relay);
    cr_assert_eq(ringp2p_node_new_stream(s.t, ra, protos, 1, resume_gate, tg), 0);
    ringp2p_multiaddr_free(ra);
    cr_assert(WAIT_UNTIL(tg->rx_got == LEN || tg->closed, 30000));
    cr_assert(!tg->bad);
    cr_assert_eq(tg->rx_got, LEN, "got %zu of %d (stalled at %zu; closes %d %d)",
                 (size_t)tg->rx_got, LEN, stalled, (int)s.h.close_err, (int)tg->close_err);
    cr_assert(WAIT_UNTIL(s.h.closed && tg->closed, 5000));
    cr_assert_eq(s.h.close_err, 0);
    cr_assert_eq(tg->close_err, 0);
    ringp2p_node_free(i);
    scene_down(&s);
}
