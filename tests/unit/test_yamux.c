#include <criterion/criterion.h>

#include "testutil.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "muxer/yamux.h"

#define MS           1000000ull
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define KIB          1024u
#define MIB          (1024u * 1024u)

/* ---- byte helpers ------------------------------------------------------------------------------
 */

typedef struct bbuf {
    uint8_t *p;
    size_t len, cap;
} bbuf;

static void bbuf_put(bbuf *b, const void *src, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        b->p = realloc(b->p, cap);
        cr_assert_not_null(b->p);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_hdr(bbuf *b, uint8_t type, uint16_t flags, uint32_t id, uint32_t len)
{
    uint8_t h[RP_YAMUX_HEADER_LEN];
    rp_yamux_hdr hd = { 0, type, flags, id, len };
    cr_assert_eq(rp_yamux_hdr_encode(h, sizeof(h), &hd), RP_YAMUX_HEADER_LEN);
    bbuf_put(b, h, sizeof(h));
}

static rp_yamux_config quiet_cfg(void)
{
    rp_yamux_config c;
    rp_yamux_config_default(&c);
    c.ping_interval_ns = 0; /* no automatic ping: byte-exact outputs */
    return c;
}

static rp_yamux *mk(bool dialer, const rp_yamux_config *cfg)
{
    rp_yamux *s = NULL;
    cr_assert_eq(rp_yamux_new(cfg, dialer, 0, &s), 0);
    return s;
}

/* Appends a session's whole pending output (copied) to b. */
static void drain_out(rp_yamux *s, bbuf *b, uint64_t now)
{
    for (;;) {
        uint8_t hdr[2048];
        rp_iov iov[64];
        rp_yamux_out o = { hdr, sizeof(hdr), iov, ARRAY_LEN(iov), 0, 0, 0 };
        ssize_t n = rp_yamux_send(s, &o, now);
        cr_assert_geq(n, 0, "send: %zd", n);
        if (n == 0) break;
        cr_assert_eq((size_t)n, rp_iov_total(iov, o.niov));
        for (size_t i = 0; i < o.niov; i++) bbuf_put(b, iov[i].base, iov[i].len);
    }
    cr_assert(!rp_yamux_want_send(s));
}

typedef struct frame {
    rp_yamux_hdr h;
    const uint8_t *payload; /* data frames */
} frame;

/* Splits well-formed frames; returns the count. */
static size_t parse_frames(const bbuf *b, frame *f, size_t max)
{
    const uint8_t *p = b->p, *end = b->p + b->len;
    size_t n = 0;
    while (p < end) {
        cr_assert_lt(n, max);
        cr_assert_eq(rp_yamux_hdr_decode(&p, end, &f[n].h, NULL), 0);
        f[n].payload = p;
        if (f[n].h.type == RP_YAMUX_TYPE_DATA) {
            cr_assert_leq(f[n].h.length, (size_t)(end - p));
            p += f[n].h.length;
        }
        n++;
    }
    return n;
}

/* Events of one session, collected. */
typedef struct evlog {
    rp_yamux_event *ev;
    size_t n, cap;
} evlog;

static void drain_events(rp_yamux *s, evlog *log)
{
    rp_yamux_event e;
    while (rp_yamux_next_event(s, &e)) {
        if (log == NULL) continue;
        if (log->n == log->cap) {
            log->cap = log->cap ? log->cap * 2 : 64;
            log->ev = realloc(log->ev, log->cap * sizeof(*log->ev));
            cr_assert_not_null(log->ev);
        }
        log->ev[log->n++] = e;
    }
}

static size_t count_ev(const evlog *log, rp_yamux_event_type t)
{
    size_t n = 0;
    for (size_t i = 0; i < log->n; i++) n += log->ev[i].type == t;
    return n;
}

/* Feeds all of buf, draining events into log and output into out when the queues fill. */
static int feed(rp_yamux *s, const uint8_t *buf, size_t len, uint64_t now, evlog *log, bbuf *out,
                ringp2p_errinfo *ei)
{
    const uint8_t *p = buf;
    for (;;) {
        int r = rp_yamux_receive(s, &p, buf + len, now, ei);
        drain_events(s, log);
        if (r != RINGP2P_EAGAIN) {
            if (r == 0) cr_assert_eq(p, buf + len);
            return r;
        }
        cr_assert_not_null(out, "queue full but no output sink");
        drain_out(s, out, now);
    }
}

/* ---- an in-memory pair under a fake clock ------------------------------------------------------
 */

#define PATLEN  ((1u << 20) + 4093u)
#define MAXS    1200
#define MAXPEND 64

typedef struct chunk {
    struct chunk *next;
    uint64_t at;
    size_t len, off;
    uint8_t buf[];
} chunk;

typedef struct tpeer tpeer;

typedef struct tstream {
    tpeer *peer;
    rp_yamux_stream *st;
    uint32_t id;
    bool inbound;
    uint64_t rx, unconsumed;
    uint32_t rx_seed;
    bool rx_check;
    uint8_t *echo;
    size_t echo_cap;
    uint64_t echo_tx;
    uint32_t tx_seed;
    uint64_t tx_total, tx_acc;
    bool close_when_done, closed, fin, reset, released;
    uint32_t reset_code;
    unsigned writable;
} tstream;

struct tpeer {
    const char *name;
    rp_yamux *s;
    tpeer *other;
    const uint8_t *pat;
    tstream *ts[MAXS];
    size_t nts;
    bool auto_accept, auto_consume, echo_inbound, rx_check_inbound;
    size_t echo_cap;
    uint64_t consume_rate; /* bytes per tick per stream when !auto_consume */
    unsigned opened, rtts, goaways, errors, open_ready, ping_timeouts, data_events;
    uint64_t last_rtt;
    uint32_t goaway_code;
    int error;
    uint64_t delay; /* latency of this peer's output */
    chunk *in_head, *in_tail;
    uint64_t bytes_out;
};

typedef struct pair {
    tpeer a, b; /* a dials (odd ids), b listens */
    uint8_t *pat;
    uint64_t now, tick;
} pair;

static uint8_t pat_at(const pair *pp, uint32_t seed, uint64_t off)
{
    return pp->pat[(seed + off) % PATLEN];
}

static void pair_init(pair *pp, const rp_yamux_config *ca, const rp_yamux_config *cb)
{
    memset(pp, 0, sizeof(*pp));
    pp->pat = malloc(PATLEN);
    cr_assert_not_null(pp->pat);
    uint64_t x = 0x243f6a8885a308d3ull;
    for (size_t i = 0; i < PATLEN; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pp->pat[i] = (uint8_t)x;
    }
    pp->tick = MS;
    pp->a.name = "dialer";
    pp->b.name = "listener";
    cr_assert_eq(rp_yamux_new(ca, true, 0, &pp->a.s), 0);
    cr_assert_eq(rp_yamux_new(cb, false, 0, &pp->b.s), 0);
    pp->a.other = &pp->b;
    pp->b.other = &pp->a;
    pp->a.pat = pp->b.pat = pp->pat;
    pp->a.auto_accept = pp->b.auto_accept = true;
    pp->a.auto_consume = pp->b.auto_consume = true;
    pp->a.rx_check_inbound = pp->b.rx_check_inbound = true;
}

static void pair_free(pair *pp)
{
    tpeer *ps[2] = { &pp->a, &pp->b };
    for (int k = 0; k < 2; k++) {
        rp_yamux_free(ps[k]->s);
        for (size_t i = 0; i < ps[k]->nts; i++) {
            free(ps[k]->ts[i]->echo);
            free(ps[k]->ts[i]);
        }
        while (ps[k]->in_head) {
            chunk *c = ps[k]->in_head;
            ps[k]->in_head = c->next;
            free(c);
        }
    }
    free(pp->pat);
}

static tstream *ts_new(tpeer *p, rp_yamux_stream *st, bool inbound)
{
    cr_assert_lt(p->nts, MAXS);
    tstream *ts = calloc(1, sizeof(*ts));
    cr_assert_not_null(ts);
    ts->peer = p;
    ts->st = st;
    ts->id = rp_yamux_stream_id(st);
    ts->inbound = inbound;
    p->ts[p->nts++] = ts;
    return ts;
}

/* Opens a stream on p that sends `total` pattern bytes (seed = its id) and closes if asked. */
static tstream *ts_open(tpeer *p, uint64_t total, bool close_when_done)
{
    rp_yamux_stream *st;
    cr_assert_eq(rp_yamux_open(p->s, NULL, &st), 0);
    tstream *ts = ts_new(p, st, false);
    rp_yamux_stream_set_user(st, ts);
    ts->tx_seed = ts->id;
    ts->tx_total = total;
    ts->close_when_done = close_when_done;
    return ts;
}

static tstream *ts_find(tpeer *p, uint32_t id)
{
    for (size_t i = 0; i < p->nts; i++)
        if (p->ts[i]->id == id) return p->ts[i];
    return NULL;
}

static void peer_events(pair *pp, tpeer *p)
{
    rp_yamux_event ev;
    while (rp_yamux_next_event(p->s, &ev)) {
        tstream *ts = ev.user;
        switch (ev.type) {
        case RP_YAMUX_EV_STREAM_OPENED:
            cr_assert_null(ts);
            p->opened++;
            ts = ts_new(p, ev.stream, true);
            rp_yamux_stream_set_user(ev.stream, ts);
            ts->rx_seed = ts->id;
            ts->rx_check = p->rx_check_inbound;
            if (p->echo_inbound) {
                ts->echo_cap = p->echo_cap;
                ts->echo = malloc(ts->echo_cap);
                cr_assert_not_null(ts->echo);
            }
            if (p->auto_accept) cr_assert_eq(rp_yamux_stream_accept(ev.stream, ts), 0);
            break;
        case RP_YAMUX_EV_STREAM_DATA:
            cr_assert_not_null(ts);
            cr_assert_gt(ev.len, 0);
            cr_assert(!ts->fin, "%s: data after FIN on %u", p->name, ts->id);
            p->data_events++;
            if (ts->rx_check) {
                for (size_t i = 0; i < ev.len; i++)
                    if (ev.data[i] != pat_at(pp, ts->rx_seed, ts->rx + i))
                        cr_assert_fail("%s: stream %u byte %llu differs", p->name, ts->id,
                                       (unsigned long long)(ts->rx + i));
            }
            if (ts->echo != NULL) {
                cr_assert_leq(ts->rx + ev.len, ts->echo_cap);
                memcpy(ts->echo + ts->rx, ev.data, ev.len);
            }
            ts->rx += ev.len;
            if (p->auto_consume)
                cr_assert_eq(rp_yamux_stream_consumed(ev.stream, ev.len, pp->now), 0);
            else
                ts->unconsumed += ev.len;
            break;
        case RP_YAMUX_EV_STREAM_FIN:
            cr_assert_not_null(ts);
            ts->fin = true;
            break;
        case RP_YAMUX_EV_STREAM_RESET:
            cr_assert_not_null(ts);
            ts->reset = true;
            ts->reset_code = ev.code;
            break;
        case RP_YAMUX_EV_STREAM_WRITABLE:
            cr_assert_not_null(ts);
            ts->writable++;
            break;
        case RP_YAMUX_EV_OPEN_READY: p->open_ready++; break;
        case RP_YAMUX_EV_PING_RTT:
            p->rtts++;
            p->last_rtt = ev.rtt_ns;
            break;
        case RP_YAMUX_EV_PING_TIMEOUT: p->ping_timeouts++; break;
        case RP_YAMUX_EV_GO_AWAY:
            p->goaways++;
            p->goaway_code = ev.code;
            break;
        case RP_YAMUX_EV_SESSION_ERROR:
            p->errors++;
            p->error = ev.err;
            break;
        default: cr_assert_fail("unknown event %d", ev.type);
        }
    }
}

static void peer_flush(pair *pp, tpeer *p)
{
    for (;;) {
        uint8_t hdr[4096];
        rp_iov iov[256];
        rp_yamux_out o = { hdr, sizeof(hdr), iov, ARRAY_LEN(iov), 0, 0, 0 };
        ssize_t n = rp_yamux_send(p->s, &o, pp->now);
        cr_assert_geq(n, 0);
        if (n == 0) return;
        chunk *c = malloc(sizeof(*c) + (size_t)n);
        cr_assert_not_null(c);
        c->next = NULL;
        c->at = pp->now + p->delay;
        c->len = (size_t)n;
        c->off = 0;
        size_t off = 0;
        for (size_t i = 0; i < o.niov; i++) {
            memcpy(c->buf + off, iov[i].base, iov[i].len);
            off += iov[i].len;
        }
        cr_assert_eq(off, (size_t)n);
        tpeer *q = p->other;
        if (q->in_tail)
            q->in_tail->next = c;
        else
            q->in_head = c;
        q->in_tail = c;
        p->bytes_out += (size_t)n;
    }
}

static void peer_recv(pair *pp, tpeer *p)
{
    while (p->in_head && p->in_head->at <= pp->now && p->error == 0) {
        chunk *c = p->in_head;
        const uint8_t *q = c->buf + c->off;
        ringp2p_errinfo ei = { 0 };
        int r = rp_yamux_receive(p->s, &q, c->buf + c->len, pp->now, &ei);
        c->off = (size_t)(q - c->buf);
        peer_events(pp, p);
        if (r == RINGP2P_EAGAIN) {
            peer_flush(pp, p);
            continue;
        }
        cr_assert_eq(r, 0, "%s: receive: %s", p->name, ei.msg);
        cr_assert_eq(c->off, c->len);
        p->in_head = c->next;
        if (!p->in_head) p->in_tail = NULL;
        free(c);
    }
}

static void peer_app(pair *pp, tpeer *p)
{
    for (size_t i = 0; i < p->nts; i++) {
        tstream *ts = p->ts[i];
        if (ts->released || ts->reset) continue;
        while (ts->tx_acc < ts->tx_total) {
            size_t pos = (size_t)((ts->tx_seed + ts->tx_acc) % PATLEN);
            uint64_t n = ts->tx_total - ts->tx_acc;
            if (n > PATLEN - pos) n = PATLEN - pos;
            ssize_t w = rp_yamux_stream_write(ts->st, pp->pat + pos, (size_t)n);
            cr_assert_geq(w, 0, "%s: write on %u: %zd", p->name, ts->id, w);
            if (w == 0) break;
            ts->tx_acc += (uint64_t)w;
        }
        while (ts->echo != NULL && ts->echo_tx < ts->rx) {
            ssize_t w = rp_yamux_stream_write(ts->st, ts->echo + ts->echo_tx,
                                              (size_t)(ts->rx - ts->echo_tx));
            cr_assert_geq(w, 0);
            if (w == 0) break;
            ts->echo_tx += (uint64_t)w;
        }
        bool done_tx = ts->tx_acc == ts->tx_total && (ts->echo == NULL || ts->echo_tx == ts->rx);
        if (!ts->closed && done_tx && (ts->close_when_done || (ts->echo != NULL && ts->fin))) {
            cr_assert_eq(rp_yamux_stream_close(ts->st), 0);
            ts->closed = true;
        }
        if (!p->auto_consume && ts->unconsumed && p->consume_rate) {
            uint64_t c = ts->unconsumed < p->consume_rate ? ts->unconsumed : p->consume_rate;
            cr_assert_eq(rp_yamux_stream_consumed(ts->st, (size_t)c, pp->now), 0);
            ts->unconsumed -= c;
        }
    }
}

static void pair_tick(pair *pp)
{
    tpeer *ps[2] = { &pp->a, &pp->b };
    for (int k = 0; k < 2; k++) {
        tpeer *p = ps[k];
        if (pp->now >= rp_yamux_next_timeout(p->s)) rp_yamux_on_timeout(p->s, pp->now);
        peer_events(pp, p);
        peer_recv(pp, p);
        peer_app(pp, p);
        peer_flush(pp, p);
    }
    pp->now += pp->tick;
}

/* A slow reader with bytes left to consume is still making progress. */
static bool peer_consuming(const tpeer *p)
{
    if (p->auto_consume || p->consume_rate == 0) return false;
    for (size_t i = 0; i < p->nts; i++)
        if (p->ts[i]->unconsumed && !p->ts[i]->released && !p->ts[i]->reset) return true;
    return false;
}

static bool pair_idle(const pair *pp)
{
    return !pp->a.in_head && !pp->b.in_head && !rp_yamux_want_send(pp->a.s) &&
           !rp_yamux_want_send(pp->b.s) && !peer_consuming(&pp->a) && !peer_consuming(&pp->b);
}

/* Ticks until idle (or max ticks); returns the ticks run. */
static unsigned pair_settle(pair *pp, unsigned max)
{
    unsigned t = 0;
    do {
        pair_tick(pp);
        t++;
    } while (!pair_idle(pp) && t < max);
    cr_assert(pair_idle(pp), "pair still busy after %u ticks", max);
    return t;
}

/* ---- header vectors ----------------------------------------------------------------------------
 */

static const struct {
    const char *hex;
    rp_yamux_hdr h;
} hdr_vectors[] = {
    { "00 00 00 01 00000001 00000005", { 0, RP_YAMUX_TYPE_DATA, RP_YAMUX_FLAG_SYN, 1, 5 } },
    { "00 01 00 02 00000002 00040000",
      { 0, RP_YAMUX_TYPE_WINDOW_UPDATE, RP_YAMUX_FLAG_ACK, 2, 256 * 1024 } },
    { "00 01 00 04 7fffffff 00000000",
      { 0, RP_YAMUX_TYPE_WINDOW_UPDATE, RP_YAMUX_FLAG_FIN, 0x7fffffff, 0 } },
    { "00 01 00 08 00000003 00000000",
      { 0, RP_YAMUX_TYPE_WINDOW_UPDATE, RP_YAMUX_FLAG_RST, 3, 0 } },
    { "00 02 00 01 00000000 deadbeef",
      { 0, RP_YAMUX_TYPE_PING, RP_YAMUX_FLAG_SYN, 0, 0xdeadbeef } },
    { "00 02 00 02 00000000 deadbeef",
      { 0, RP_YAMUX_TYPE_PING, RP_YAMUX_FLAG_ACK, 0, 0xdeadbeef } },
    { "00 03 00 00 00000000 00000001", { 0, RP_YAMUX_TYPE_GO_AWAY, 0, 0, 1 } },
    { "00 00 00 0f ffffffff ffffffff", { 0, RP_YAMUX_TYPE_DATA, 0xf, 0xffffffff, 0xffffffff } },
};

Test(yamux, header_vectors)
{
    for (size_t i = 0; i < ARRAY_LEN(hdr_vectors); i++) {
        uint8_t want[12], got[12];
        cr_assert_eq(unhex(hdr_vectors[i].hex, want, sizeof(want)), 12);
        cr_assert_eq(rp_yamux_hdr_encode(got, sizeof(got), &hdr_vectors[i].h), 12);
        cr_assert_arr_eq(got, want, 12, "vector %zu", i);
        const uint8_t *p = want;
        rp_yamux_hdr h;
        cr_assert_eq(rp_yamux_hdr_decode(&p, want + 12, &h, NULL), 0);
        cr_assert_eq(p, want + 12);
        cr_assert_eq(h.type, hdr_vectors[i].h.type);
        cr_assert_eq(h.flags, hdr_vectors[i].h.flags);
        cr_assert_eq(h.stream_id, hdr_vectors[i].h.stream_id);
        cr_assert_eq(h.length, hdr_vectors[i].h.length);
    }
    uint8_t small[11];
    cr_assert_eq(rp_yamux_hdr_encode(small, sizeof(small), &hdr_vectors[0].h), RINGP2P_ENOBUF);
}

Test(yamux, header_decode_errors)
{
    static const struct {
        const char *hex;
        int err;
        const char *msg;
    } cases[] = {
        { "00 00 00 01 00000001 000000", RINGP2P_ETRUNCATED, "needs 12" },
        { "", RINGP2P_ETRUNCATED, "needs 12" },
        { "01 00 00 01 00000001 00000000", RINGP2P_EPROTOCOL, "version 1" },
        { "00 04 00 00 00000001 00000000", RINGP2P_EPROTOCOL, "type 4" },
        { "00 ff 00 00 00000001 00000000", RINGP2P_EPROTOCOL, "type 255" },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        uint8_t b[16];
        size_t n = unhex(cases[i].hex, b, sizeof(b));
        const uint8_t *p = b;
        rp_yamux_hdr h;
        ringp2p_errinfo ei = { 0 };
        cr_assert_eq(rp_yamux_hdr_decode(&p, b + n, &h, &ei), cases[i].err, "case %zu", i);
        cr_assert_eq(p, b, "cursor must not move on error");
        cr_assert(strstr(ei.msg, cases[i].msg), "case %zu: %s", i, ei.msg);
    }
}

Test(yamux, config_bounds)
{
    rp_yamux_config c;
    rp_yamux *s;
    rp_yamux_config_default(&c);
    cr_assert_eq(c.initial_window, 256 * 1024);
    cr_assert_eq(c.max_window, 16 * 1024 * 1024);
    cr_assert_eq(c.max_inbound_streams, 1000);
    cr_assert_eq(c.accept_backlog, 256);
    c.initial_window = RP_YAMUX_INITIAL_WINDOW - 1;
    cr_assert_eq(rp_yamux_new(&c, true, 0, &s), RINGP2P_EINVAL);
    rp_yamux_config_default(&c);
    c.max_window = c.initial_window - 1;
    cr_assert_eq(rp_yamux_new(&c, true, 0, &s), RINGP2P_EINVAL);
    rp_yamux_config_default(&c);
    c.max_frame = 1023;
    cr_assert_eq(rp_yamux_new(&c, true, 0, &s), RINGP2P_EINVAL);
    rp_yamux_config_default(&c);
    c.accept_backlog = 0;
    cr_assert_eq(rp_yamux_new(&c, true, 0, &s), RINGP2P_EINVAL);
    cr_assert_eq(rp_yamux_new(NULL, true, 0, &s), 0);
    rp_yamux_free(s);
}

/* ---- byte-exact output -------------------------------------------------------------------------
 */

static void expect_out(rp_yamux *s, const char *hex)
{
    uint8_t want[256];
    size_t n = unhex(hex, want, sizeof(want));
    bbuf b = { 0 };
    drain_out(s, &b, 0);
    cr_assert_eq(b.len, n, "output length %zu, want %zu", b.len, n);
    if (n) cr_assert_arr_eq(b.p, want, n);
    free(b.p);
}

Test(yamux, output_vectors_dialer)
{
    rp_yamux_config c = quiet_cfg();
    rp_yamux *s = mk(true, &c);
    rp_yamux_stream *st, *st3;
    cr_assert_eq(rp_yamux_open(s, NULL, &st), 0);
    cr_assert_eq(rp_yamux_stream_id(st), 1);
    /* Opening alone: SYN in a window update of 0. */
    expect_out(s, "00 01 0001 00000001 00000000");
    cr_assert_eq(rp_yamux_stream_write(st, "hello", 5), 5);
    expect_out(s, "00 00 0000 00000001 00000005 68656c6c6f");
    cr_assert_eq(rp_yamux_stream_emitted(st), 5);
    /* FIN travels alone in a window update. */
    cr_assert_eq(rp_yamux_stream_close(st), 0);
    expect_out(s, "00 01 0004 00000001 00000000");
    /* A stream written before its first frame carries the SYN on the data. */
    cr_assert_eq(rp_yamux_open(s, NULL, &st3), 0);
    cr_assert_eq(rp_yamux_stream_id(st3), 3);
    cr_assert_eq(rp_yamux_stream_write(st3, "hi", 2), 2);
    cr_assert_eq(rp_yamux_stream_close(st3), 0);
    expect_out(s, "00 00 0001 00000003 00000002 6869  00 01 0004 00000003 00000000");
    cr_assert_eq(rp_yamux_stream_reset(st3), 0);
    expect_out(s, "00 01 0008 00000003 00000000");
    cr_assert_eq(rp_yamux_ping(s), 0);
    expect_out(s, "00 02 0001 00000000 00000001");
    cr_assert_eq(rp_yamux_go_away(s, RP_YAMUX_GOAWAY_NORMAL), 0);
    expect_out(s, "00 03 0000 00000000 00000000");
    rp_yamux_free(s);
}

Test(yamux, output_vectors_listener)
{
    rp_yamux_config c = quiet_cfg();
    c.initial_window = 1024 * 1024; /* announced with the ACK */
    rp_yamux *s = mk(false, &c);
    uint8_t in[64];
    size_t n = unhex("00 01 0001 00000001 00000000  00 02 0001 00000000 cafebabe", in, sizeof(in));
    evlog log = { 0 };
    cr_assert_eq(feed(s, in, n, 0, &log, NULL, NULL), 0);
    cr_assert_eq(log.n, 1);
    cr_assert_eq(log.ev[0].type, RP_YAMUX_EV_STREAM_OPENED);
    rp_yamux_stream *st = log.ev[0].stream;
    cr_assert_eq(rp_yamux_stream_id(st), 1);
    /* The ping is answered before the stream is even accepted. */
    expect_out(s, "00 02 0002 00000000 cafebabe");
    cr_assert_eq(rp_yamux_stream_accept(st, NULL), 0);
    cr_assert_eq(rp_yamux_stream_accept(st, NULL), RINGP2P_EINVAL);
    expect_out(s, "00 01 0002 00000001 000c0000");
    rp_yamux_stream *mine;
    cr_assert_eq(rp_yamux_open(s, NULL, &mine), 0);
    cr_assert_eq(rp_yamux_stream_id(mine), 2);
    expect_out(s, "00 01 0001 00000002 000c0000");
    free(log.ev);
    rp_yamux_free(s);
}

Test(yamux, data_is_a_view_of_the_input)
{
    rp_yamux_config c = quiet_cfg();
    rp_yamux *s = mk(false, &c);
    bbuf in = { 0 };
    put_hdr(&in, RP_YAMUX_TYPE_DATA, RP_YAMUX_FLAG_SYN, 1, 3);
    bbuf_put(&in, "abc", 3);
    put_hdr(&in, RP_YAMUX_TYPE_DATA, RP_YAMUX_FLAG_FIN, 1, 2);
    bbuf_put(&in, "de", 2);
    evlog log = { 0 };
    cr_assert_eq(feed(s, in.p, in.len, 0, &log, NULL, NULL), 0);
    cr_assert_eq(log.n, 4);
    cr_assert_eq(log.ev[1].type, RP_YAMUX_EV_STREAM_DATA);
    cr_assert_eq(log.ev[1].data, in.p + 12, "zero copy: points into the input");
    cr_assert_eq(log.ev[2].data, in.p + 27);
    cr_assert_eq(log.ev[2].len, 2);
    cr_assert_eq(log.ev[3].type, RP_YAMUX_EV_STREAM_FIN, "FIN after the frame's payload");
    free(log.ev);
    free(in.p);
    rp_yamux_free(s);
}

/* The same bytes fed whole or one at a time give the same events and data. */
Test(yamux, split_input_same_result)
{
    rp_yamux_config c = quiet_cfg();
    rp_yamux *cl = mk(true, &c);
    rp_yamux_stream *st[3];
    static uint8_t payload[40000];
    for (size_t i = 0; i < sizeof(payload); i++) payload[i] = (uint8_t)(i * 7);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(rp_yamux_open(cl, NULL, &st[i]), 0);
        cr_assert_eq(rp_yamux_stream_write(st[i], payload, sizeof(payload) - (size_t)i * 1000),
                     (ssize_t)(sizeof(payload) - (size_t)i * 1000));
    }
    cr_assert_eq(rp_yamux_stream_close(st[1]), 0);
    cr_assert_eq(rp_yamux_ping(cl), 0);
    bbuf wire = { 0 };
    drain_out(cl, &wire, 0);

    uint8_t *got[2];
    size_t events[2];
    for (int mode = 0; mode < 2; mode++) {
        rp_yamux *sv = mk(false, &c);
        got[mode] = calloc(3, sizeof(payload));
        evlog log = { 0 };
        bbuf out = { 0 };
        size_t step = mode == 0 ? wire.len : 1;
        for (size_t off = 0; off < wire.len; off += step) {
            size_t n = wire.len - off < step ? wire.len - off : step;
            cr_assert_eq(feed(sv, wire.p + off, n, 0, &log, &out, NULL), 0);
        }
        size_t have[3] = { 0 };
        for (size_t i = 0; i < log.n; i++) {
            if (log.ev[i].type != RP_YAMUX_EV_STREAM_DATA) continue;
            uint32_t k = (rp_yamux_stream_id(log.ev[i].stream) - 1) / 2;
            memcpy(got[mode] + k * sizeof(payload) + have[k], log.ev[i].data, log.ev[i].len);
            have[k] += log.ev[i].len;
        }
        for (int k = 0; k < 3; k++)
            cr_assert_eq(have[k], sizeof(payload) - (size_t)k * 1000, "mode %d stream %d", mode, k);
        cr_assert_eq(count_ev(&log, RP_YAMUX_EV_STREAM_OPENED), 3);
        cr_assert_eq(count_ev(&log, RP_YAMUX_EV_STREAM_FIN), 1);
        events[mode] = count_ev(&log, RP_YAMUX_EV_STREAM_DATA);
        drain_out(sv, &out, 0);
        cr_assert_eq(out.len, 12, "one ping answer");
        free(out.p);
        free(log.ev);
        rp_yamux_free(sv);
    }
    cr_assert_arr_eq(got[0], got[1], 3 * sizeof(payload));
    cr_assert_lt(events[0], events[1], "byte-wise feeding delivers more, smaller pieces");
    for (int k = 0; k < 3; k++)
        cr_assert_arr_eq(got[0] + (size_t)k * sizeof(payload), payload,
                         sizeof(payload) - (size_t)k * 1000);
    free(got[0]);
    free(got[1]);
    free(wire.p);
    rp_yamux_free(cl);
}

/* ---- malformed input ---------------------------------------------------------------------------
 */

static const struct {
    const char *name;
    const char *hex; /* fed to a listener (the peer dials: odd ids) */
    int err;
    const char *msg;
} bad_cases[] = {
    { "bad version", "01 00 0001 00000001 00000000", RINGP2P_EPROTOCOL, "version 1" },
    { "unknown type", "00 04 0001 00000001 00000000", RINGP2P_EPROTOCOL, "type 4" },
    { "data on stream 0", "00 00 0000 00000000 00000000", RINGP2P_EPROTOCOL, "on stream 0" },
    { "window update on stream 0", "00 01 0001 00000000 00000000", RINGP2P_EPROTOCOL,
      "on stream 0" },
    { "ping on a stream", "00 02 0001 00000001 00000000", RINGP2P_EPROTOCOL, "ping on stream 1" },
    { "go-away on a stream", "00 03 0000 00000003 00000000", RINGP2P_EPROTOCOL,
      "go-away on stream" },
    { "ping without flags", "00 02 0000 00000000 00000007", RINGP2P_EPROTOCOL,
      "neither SYN nor ACK" },
    { "data on unknown stream", "00 00 0000 00000005 00000001 ff", RINGP2P_EPROTOCOL,
      "never opened" },
    { "data on unknown stream above an open one",
      "00 01 0001 00000001 00000000 00 00 0000 00000003 00000000", RINGP2P_EPROTOCOL,
      "never opened" },
    { "window update on our unopened id", "00 01 0000 00000002 00000010", RINGP2P_EPROTOCOL,
      "never opened" },
    { "SYN with our parity", "00 01 0001 00000002 00000000", RINGP2P_EPROTOCOL, "id of ours" },
    { "duplicate SYN", "00 01 0001 00000001 00000000 00 01 0001 00000001 00000000",
      RINGP2P_EPROTOCOL, "duplicate SYN" },
    { "oversized frame vs window", "00 00 0001 00000001 00040001", RINGP2P_EPROTOCOL,
      "exceeds the receive window" },
    { "window overflow", "00 01 0001 00000001 fffc0000", RINGP2P_EPROTOCOL, "overflows" },
    { "window overflow in two steps", "00 01 0001 00000001 7fffffff 00 01 0000 00000001 7fffffff",
      RINGP2P_EPROTOCOL, "overflows" },
    { "data after FIN", "00 01 0005 00000001 00000000 00 00 0000 00000001 00000001 00",
      RINGP2P_EPROTOCOL, "after its FIN" },
    { "go-away with error", "00 03 0000 00000000 00000002", RINGP2P_EGOAWAY, "code 2" },
};

Test(yamux, malformed_frames_kill_the_session)
{
    rp_yamux_config c = quiet_cfg();
    for (size_t i = 0; i < ARRAY_LEN(bad_cases); i++) {
        rp_yamux *s = mk(false, &c);
        uint8_t in[64];
        size_t n = unhex(bad_cases[i].hex, in, sizeof(in));
        evlog log = { 0 };
        ringp2p_errinfo ei = { 0 };
        int r = feed(s, in, n, 0, &log, NULL, &ei);
        cr_assert_eq(r, bad_cases[i].err, "%s: got %d (%s)", bad_cases[i].name, r, ei.msg);
        cr_assert(strstr(ei.msg, bad_cases[i].msg), "%s: message '%s'", bad_cases[i].name, ei.msg);
        cr_assert_eq(rp_yamux_error(s), r);
        cr_assert_gt(log.n, 0);
        cr_assert_eq(log.ev[log.n - 1].type, RP_YAMUX_EV_SESSION_ERROR, "%s", bad_cases[i].name);
        cr_assert_eq(log.ev[log.n - 1].err, r);
        /* We tell the peer about its protocol error; a peer's error go-away is not answered. */
        if (r == RINGP2P_EPROTOCOL)
            expect_out(s, "00 03 0000 00000000 00000001");
        else
            expect_out(s, "");
        /* Dead for good: more input, opens and writes all fail with the same error. */
        const uint8_t *p = in;
        ringp2p_errinfo ei2 = { 0 };
        cr_assert_eq(rp_yamux_receive(s, &p, in + n, 0, &ei2), r);
        cr_assert_str_eq(ei2.msg, ei.msg);
        rp_yamux_stream *st;
        cr_assert_eq(rp_yamux_open(s, NULL, &st), r);
        cr_assert_eq(rp_yamux_num_streams(s), 0);
        free(log.ev);
        rp_yamux_free(s);
    }
}

/* Window accounting across frames: exactly the window is fine, one byte more is not. */
Test(yamux, window_exceeded_by_one_byte)
{
    rp_yamux_config c = quiet_cfg();
    rp_yamux *s = mk(false, &c);
    bbuf in = { 0 };
    static uint8_t zeros[RP_YAMUX_INITIAL_WINDOW];
    put_hdr(&in, RP_YAMUX_TYPE_DATA, RP_YAMUX_FLAG_SYN, 1, 100 * KIB);
    bbuf_put(&in, zeros, 100 * KIB);
    put_hdr(&in, RP_YAMUX_TYPE_DATA, 0, 1, RP_YAMUX_INITIAL_WINDOW - 100 * KIB);
    bbuf_put(&in, zeros, RP_YAMUX_INITIAL_WINDOW - 100 * KIB);
    evlog log = { 0 };
    cr_assert_eq(feed(s, in.p, in.len, 0, &log, NULL, NULL), 0);
    uint8_t one[13];
    size_t n = unhex("00 00 0000 00000001 00000001 00", one, sizeof(one));
    ringp2p_errinfo ei;
    cr_assert_eq(feed(s, one, n, 0, &log, NULL, &ei), RINGP2P_EPROTOCOL);
    cr_assert(strstr(ei.msg, "(0 left)"), "%s", ei.msg);
    free(log.ev);
    free(in.p);
    rp_yamux_free(s);
}

/* Frames for a stream that finished are dropped, not errors (the peer has not seen our RST). */
Test(yamux, late_frames_for_finished_streams_ignored)
{
    rp_yamux_config c = quiet_cfg();
    rp_yamux *s = mk(false, &c);
    bbuf in = { 0 }, out = { 0 };
    put_hdr(&in, RP_YAMUX_TYPE_WINDOW_UPDATE, RP_YAMUX_FLAG_SYN, 1, 0);
    evlog log = { 0 };
    cr_assert_eq(feed(s, in.p, in.len, 0, &log, NULL, NULL), 0);
    cr_assert_eq(rp_yamux_stream_reset(log.ev[0].stream), 0);
    rp_yamux_stream_release(log.ev[0].stream);
    drain_out(s, &out, 0);
    in.len = 0;
    put_hdr(&in, RP_YAMUX_TYPE_DATA, 0, 1, 5);
    bbuf_put(&in, "late!", 5);
    put_hdr(&in, RP_YAMUX_TYPE_WINDOW_UPDATE, RP_YAMUX_FLAG_FIN, 1, 100);
    log.n = 0;
    cr_assert_eq(feed(s, in.p, in.len, 0, &log, NULL, NULL), 0);
    cr_assert_eq(log.n, 0);
    cr_assert_eq(rp_yamux_error(s), 0);
    free(log.ev);
    free(in.p);
    free(out.p);
    rp_yamux_free(s);
}

/*
 * A peer may only reuse a stream id once it can have seen our RST: a SYN for an
 * id whose reset (or refusal) is still queued is a protocol error, after is fine.
 */
Test(yamux, syn_reusing_an_id_before_our_rst)
{
    rp_yamux_config c = quiet_cfg();
    c.max_inbound_streams = 1;
    for (int variant = 0; variant < 3; variant++) {
        rp_yamux *s = mk(false, &c);
        bbuf in = { 0 }, out = { 0 };
        evlog log = { 0 };
        put_hdr(&in, RP_YAMUX_TYPE_WINDOW_UPDATE, RP_YAMUX_FLAG_SYN, 1, 0);
        /* Refused (over the limit of 1): its RST sits in the control queue. */
        put_hdr(&in, RP_YAMUX_TYPE_WINDOW_UPDATE, RP_YAMUX_FLAG_SYN, 3, 0);
        cr_assert_eq(feed(s, in.p, in.len, 0, &log, NULL, NULL), 0);
        cr_assert_eq(rp_yamux_stream_reset(log.ev[0].stream), 0);
        if (variant == 2) drain_out(s, &out, 0); /* both RSTs leave: ids are free again */
        in.len = 0;
        put_hdr(&in, RP_YAMUX_TYPE_WINDOW_UPDATE, RP_YAMUX_FLAG_SYN, variant == 0 ? 1 : 3, 0);
        ringp2p_errinfo ei = { 0 };
        int r = feed(s, in.p, in.len, 0, &log, NULL, &ei);
        if (variant < 2) {
            cr_assert_eq(r, RINGP2P_EPROTOCOL, "variant %d", variant);
            cr_assert(strstr(ei.msg, "before our RST"), "%s", ei.msg);
        } else {
            cr_assert_eq(r, 0);
            cr_assert_eq(log.ev[log.n - 1].type, RP_YAMUX_EV_STREAM_OPENED);
            cr_assert_eq(rp_yamux_stream_id(log.ev[log.n - 1].stream), 3);
        }
        free(in.p);
        free(out.p);
        free(log.ev);
        rp_yamux_free(s);
    }
}

/* ---- pairs: open, echo, close, reset -----------------------------------------------------------
 */

Test(yamux, open_accept_ids_by_role)
{
    rp_yamux_config c = quiet_cfg();
    pair pp;
    pair_init(&pp, &c, &c);
    tstream *a1 = ts_open(&pp.a, 10, true);
    tstream *a3 = ts_open(&pp.a, 10, true);
    tstream *b2 = ts_open(&pp.b, 10, true);
    cr_assert_eq(a1->id, 1);
    cr_assert_eq(a3->id, 3);
    cr_assert_eq(b2->id, 2);
    pp.a.rx_check_inbound = false;
    pair_settle(&pp, 100);
    cr_assert_eq(pp.b.opened, 2);
    cr_assert_eq(pp.a.opened, 1);
    cr_assert_eq(ts_find(&pp.b, 1)->rx, 10);
    cr_assert(ts_find(&pp.b, 3)->fin);
    cr_assert(ts_find(&pp.a, 2)->fin);
    pair_free(&pp);
}

Test(yamux, echo_many_streams_byte_exact)
{
    rp_yamux_config c = quiet_cfg();
    pair pp;
    pair_init(&pp, &c, &c);
    enum { NS = 16 };
    const uint64_t size = 1 * MIB + 12345;
    pp.b.echo_inbound = true;
    pp.b.echo_cap = size;
    pp.b.rx_check_inbound = true;
    tstream *ts[NS];
    for (int i = 0; i < NS; i++) {
        ts[i] = ts_open(&pp.a, size - (uint64_t)i * 1000, true);
        ts[i]->rx_check = true;
        ts[i]->rx_seed = ts[i]->id; /* the echo returns our own pattern */
    }
    pair_settle(&pp, 10000);
    for (int i = 0; i < NS; i++) {
        cr_assert_eq(ts[i]->rx, size - (uint64_t)i * 1000, "stream %u got %llu", ts[i]->id,
                     (unsigned long long)ts[i]->rx);
        cr_assert(ts[i]->fin);
        cr_assert(!ts[i]->reset);
        tstream *peer = ts_find(&pp.b, ts[i]->id);
        cr_assert(peer->fin && peer->closed);
    }
    /* Both directions finished everywhere: nothing left in either session. */
    cr_assert_eq(rp_yamux_num_streams(pp.a.s), 0);
    cr_assert_eq(rp_yamux_num_streams(pp.b.s), 0);
    pair_free(&pp);
}

Test(yamux, half_close_both_ways)
{
    rp_yamux_config c = quiet_cfg();
    pair pp;
    pair_init(&pp, &c, &c);
    /* Dialer sends 100 KiB and closes first; the listener keeps sending 700 KiB after. */
    tstream *a = ts_open(&pp.a, 100 * KIB, true);
    pair_settle(&pp, 1000);
    tstream *b = ts_find(&pp.b, a->id);
    cr_assert(b->fin);
    cr_assert_eq(b->rx, 100 * KIB);
    cr_assert_eq(rp_yamux_num_streams(pp.b.s), 1, "half-closed is still open");
    b->tx_seed = 777;
    b->tx_total = 700 * KIB;
    a->rx_check = true;
    a->rx_seed = 777;
    pair_settle(&pp, 1000);
    cr_assert_eq(a->rx, 700 * KIB, "data flows after our FIN");
    cr_assert(!a->fin);
    b->close_when_done = true;
    pair_settle(&pp, 1000);
    cr_assert(a->fin);
    cr_assert_eq(rp_yamux_num_streams(pp.a.s), 0);
    cr_assert_eq(rp_yamux_num_streams(pp.b.s), 0);
    /* Writing after our own FIN is refused. */
    cr_assert_eq(rp_yamux_stream_write(a->st, "x", 1), RINGP2P_ECLOSED);

    /* Now the listener closes first on a new stream. */
    tstream *a2 = ts_open(&pp.a, 0, false);
    pair_settle(&pp, 100);
    tstream *b2 = ts_find(&pp.b, a2->id);
    cr_assert_eq(rp_yamux_stream_close(b2->st), 0);
    pair_settle(&pp, 100);
    cr_assert(a2->fin);
    a2->tx_total = 300 * KIB;
    pair_settle(&pp, 1000);
    cr_assert_eq(b2->rx, 300 * KIB);
    cr_assert_eq(rp_yamux_num_streams(pp.a.s), 1);
    cr_assert_eq(rp_yamux_stream_close(a2->st), 0);
    pair_settle(&pp, 100);
    cr_assert(b2->fin);
    cr_assert_eq(rp_yamux_num_streams(pp.a.s), 0);
    cr_assert_eq(rp_yamux_num_streams(pp.b.s), 0);
    pair_free(&pp);
}

Test(yamux, reset_both_ways)
{
    rp_yamux_config c = quiet_cfg();
    pair pp;
    pair_init(&pp, &c, &c);
    pp.b.auto_consume = false; /* keep data in flight */
    tstream *a = ts_open(&pp.a, 4 * MIB, false);
    pair_settle(&pp, 100);
    tstream *b = ts_find(&pp.b, a->id);
    cr_assert_eq(b->rx, RP_YAMUX_INITIAL_WINDOW);
    cr_assert_eq(rp_yamux_stream_reset(a->st), 0);
    cr_assert_eq(rp_yamux_stream_write(a->st, "x", 1), RINGP2P_ESTREAMRESET);
    cr_assert_eq(rp_yamux_stream_queued(a->st), 0);
    a->reset = true; /* stop the harness writing */
    pair_settle(&pp, 100);
    cr_assert(b->reset);
    cr_assert_eq(b->reset_code, 0);
    cr_assert_eq(rp_yamux_stream_write(b->st, "x", 1), RINGP2P_ESTREAMRESET);
    cr_assert_eq(rp_yamux_stream_close(b->st), RINGP2P_ESTREAMRESET);
    cr_assert_eq(rp_yamux_num_streams(pp.a.s), 0);
    cr_assert_eq(rp_yamux_num_streams(pp.b.s), 0);

    /* The other way: the listener resets while the dialer is writing. */
    pp.b.auto_consume = true;
    tstream *a2 = ts_open(&pp.a, 4 * MIB, false);
    pair_tick(&pp);
    pair_tick(&pp);
    tstream *b2 = ts_find(&pp.b, a2->id);
    cr_assert_not_null(b2);
    cr_assert_eq(rp_yamux_stream_reset(b2->st), 0);
    b2->reset = true;
    pair_settle(&pp, 100);
    cr_assert(a2->reset);
    cr_assert_lt(a2->tx_acc, 4 * MIB);
    cr_assert_eq(rp_yamux_stream_write(a2->st, "x", 1), RINGP2P_ESTREAMRESET);
    cr_assert_eq(rp_yamux_num_streams(pp.a.s), 0);
    cr_assert_eq(rp_yamux_num_streams(pp.b.s), 0);
    cr_assert_eq(rp_yamux_error(pp.a.s), 0);
    cr_assert_eq(rp_yamux_error(pp.b.s), 0);
    pair_free(&pp);
}

Test(yamux, reset_error_code_reported)
{
    rp_yamux_config c = quiet_cfg();
    rp_yamux *s = mk(true, &c);
    rp_yamux_stream *st;
    cr_assert_eq(rp_yamux_open(s, NULL, &st), 0);
    bbuf out = { 0 }, in = { 0 };
    drain_out(s, &out, 0);
    put_hdr(&in, RP_YAMUX_TYPE_WINDOW_UPDATE, RP_YAMUX_FLAG_RST, 1, 42);
    evlog log = { 0 };
    cr_assert_eq(feed(s, in.p, in.len, 0, &log, NULL, NULL), 0);
    cr_assert_eq(log.n, 1);
    cr_assert_eq(log.ev[0].type, RP_YAMUX_EV_STREAM_RESET);
    cr_assert_eq(log.ev[0].code, 42);
    /* An aborted stream that never left needs no RST. */
    rp_yamux_stream *st3;
    cr_assert_eq(rp_yamux_open(s, NULL, &st3), 0);
    cr_assert_eq(rp_yamux_stream_reset(st3), 0);
    cr_assert(!rp_yamux_want_send(s));
    free(out.p);
    free(in.p);
    free(log.ev);
    rp_yamux_free(s);
}

/* ---- flow control ------------------------------------------------------------------------------
 */

Test(yamux, window_exhaustion_stalls_and_resumes)
{
    rp_yamux_config c = quiet_cfg();
    pair pp;
    pair_init(&pp, &c, &c);
    pp.b.auto_consume = false;
    pp.b.consume_rate = 0; /* the reader does not read */
    tstream *a = ts_open(&pp.a, 1 * MIB, true);
    pair_settle(&pp, 100);
    tstream *b = ts_find(&pp.b, a->id);
    cr_assert_eq(b->rx, RP_YAMUX_INITIAL_WINDOW, "exactly one window arrives");
    cr_assert_eq(a->tx_acc, RP_YAMUX_INITIAL_WINDOW, "the writer accepted only the window");
    cr_assert_eq(rp_yamux_stream_send_window(a->st), 0);
    cr_assert_eq(rp_yamux_stream_writable(a->st), 0);
    cr_assert_eq(rp_yamux_stream_queued(a->st), 0, "nothing buffered beyond the window");
    for (int i = 0; i < 50; i++) pair_tick(&pp);
    cr_assert_eq(b->rx, RP_YAMUX_INITIAL_WINDOW, "still stalled");
    cr_assert_eq(a->writable, 0);
    /* Consuming less than half a window sends no update yet. */
    cr_assert_eq(rp_yamux_stream_consumed(b->st, 100 * KIB, pp.now), 0);
    b->unconsumed -= 100 * KIB;
    cr_assert(!rp_yamux_want_send(pp.b.s));
    cr_assert_eq(rp_yamux_stream_consumed(b->st, b->unconsumed + 1, pp.now), RINGP2P_EINVAL);
    /* The reader catches up: the writer is told and goes on to the end. */
    pp.b.consume_rate = UINT64_MAX;
    pair_settle(&pp, 1000);
    cr_assert_gt(a->writable, 0);
    cr_assert_eq(b->rx, 1 * MIB);
    cr_assert(b->fin);
    pair_free(&pp);
}

/* Memory held by a non-reading receiver stays at one window per stream. */
Test(yamux, slow_reader_bounds_memory)
{
    rp_yamux_config c = quiet_cfg();
    pair pp;
    pair_init(&pp, &c, &c);
    pp.b.auto_consume = false;
    pp.b.consume_rate = 0;
    for (int i = 0; i < 8; i++) ts_open(&pp.a, 8 * MIB, false);
    pair_settle(&pp, 200);
    uint64_t total = 0;
    for (size_t i = 0; i < pp.b.nts; i++) total += pp.b.ts[i]->rx;
    cr_assert_eq(total, 8ull * RP_YAMUX_INITIAL_WINDOW);
    cr_assert_lt(pp.a.bytes_out, 8ull * RP_YAMUX_INITIAL_WINDOW + 64 * KIB);
    pair_free(&pp);
}

static void run_autotune(bool fast, uint32_t *window_out, uint64_t *rtt_out)
{
    rp_yamux_config c;
    rp_yamux_config_default(&c);
    pair pp;
    pair_init(&pp, &c, &c);
    pp.a.delay = pp.b.delay = 10 * MS; /* RTT 20 ms */
    const uint64_t size = fast ? 96 * MIB : 3 * MIB;
    if (!fast) {
        pp.b.auto_consume = false;
        pp.b.consume_rate = 1 * KIB; /* per 1 ms tick: half a window takes 128 ms > 4 RTT */
    }
    tstream *a = ts_open(&pp.a, size, true);
    pair_settle(&pp, 20000);
    tstream *b = ts_find(&pp.b, a->id);
    cr_assert_eq(b->rx, size);
    cr_assert(b->fin);
    *window_out = rp_yamux_stream_recv_window(b->st);
    *rtt_out = rp_yamux_rtt_ns(pp.b.s);
    pair_free(&pp);
}

Test(yamux, autotune_grows_to_max_with_fast_reader)
{
    uint32_t w;
    uint64_t rtt;
    run_autotune(true, &w, &rtt);
    cr_assert_eq(rtt, 20 * MS);
    cr_assert_eq(w, RP_YAMUX_MAX_WINDOW_DEFAULT);
}

Test(yamux, autotune_stays_with_slow_reader)
{
    uint32_t w;
    uint64_t rtt;
    run_autotune(false, &w, &rtt);
    cr_assert_eq(rtt, 20 * MS);
    cr_assert_eq(w, RP_YAMUX_INITIAL_WINDOW);
}

Test(yamux, autotune_respects_configured_max)
{
    rp_yamux_config c;
    rp_yamux_config_default(&c);
    c.max_window = 1 * MIB;
    pair pp;
    pair_init(&pp, &c, &c);
    pp.a.delay = pp.b.delay = 5 * MS;
    tstream *a = ts_open(&pp.a, 32 * MIB, true);
    pair_settle(&pp, 20000);
    tstream *b = ts_find(&pp.b, a->id);
    cr_assert_eq(b->rx, 32 * MIB);
    cr_assert_eq(rp_yamux_stream_recv_window(b->st), 1 * MIB);
    pair_free(&pp);
}

Test(yamux, writes_limited_to_segments)
{
    rp_yamux_config c = quiet_cfg();
    rp_yamux *s = mk(true, &c);
    rp_yamux_stream *st;
    cr_assert_eq(rp_yamux_open(s, NULL, &st), 0);
    static uint8_t bufs[RP_YAMUX_STREAM_SEGS + 1][128];
    for (int i = 0; i < RP_YAMUX_STREAM_SEGS; i++)
        cr_assert_eq(rp_yamux_stream_write(st, bufs[i], 32), 32);
    /* Adjacent to the previous write: merged, takes no new segment. */
    cr_assert_eq(rp_yamux_stream_write(st, bufs[RP_YAMUX_STREAM_SEGS - 1] + 32, 32), 32);
    cr_assert_eq(rp_yamux_stream_write(st, bufs[RP_YAMUX_STREAM_SEGS], 32), 0);
    cr_assert_eq(rp_yamux_stream_writable(st), 0);
    bbuf out = { 0 };
    drain_out(s, &out, 0);
    evlog log = { 0 };
    drain_events(s, &log);
    cr_assert_eq(log.n, 1);
    cr_assert_eq(log.ev[0].type, RP_YAMUX_EV_STREAM_WRITABLE);
    cr_assert_eq(rp_yamux_stream_write(st, bufs[RP_YAMUX_STREAM_SEGS], 32), 32);
    cr_assert_eq(rp_yamux_stream_emitted(st), RP_YAMUX_STREAM_SEGS * 32 + 32);
    /* One data frame holding all 17 pieces: the payload was described, not copied. */
    frame f[4];
    cr_assert_eq(parse_frames(&out, f, 4), 1);
    cr_assert_eq(f[0].h.length, RP_YAMUX_STREAM_SEGS * 32 + 32);
    free(out.p);
    free(log.ev);
    rp_yamux_free(s);
}

/* ---- fairness ----------------------------------------------------------------------------------
 */

Test(yamux, round_robin_between_streams)
{
    rp_yamux_config c = quiet_cfg();
    rp_yamux *s = mk(true, &c);
    static uint8_t big[RP_YAMUX_INITIAL_WINDOW], small[1000];
    rp_yamux_stream *bulk, *bulk2, *tiny;
    cr_assert_eq(rp_yamux_open(s, NULL, &bulk), 0);
    cr_assert_eq(rp_yamux_stream_write(bulk, big, sizeof(big)), (ssize_t)sizeof(big));
    cr_assert_eq(rp_yamux_open(s, NULL, &bulk2), 0);
    cr_assert_eq(rp_yamux_stream_write(bulk2, big, sizeof(big)), (ssize_t)sizeof(big));
    cr_assert_eq(rp_yamux_open(s, NULL, &tiny), 0);
    cr_assert_eq(rp_yamux_stream_write(tiny, small, sizeof(small)), (ssize_t)sizeof(small));
    bbuf out = { 0 };
    drain_out(s, &out, 0);
    static frame f[64];
    size_t n = parse_frames(&out, f, ARRAY_LEN(f));
    cr_assert_eq(n, 2 * (RP_YAMUX_INITIAL_WINDOW / RP_YAMUX_MAX_FRAME_DEFAULT) + 1);
    cr_assert_eq(f[0].h.stream_id, 1);
    cr_assert_eq(f[1].h.stream_id, 3);
    cr_assert_eq(f[2].h.stream_id, 5, "the small stream goes in the first round");
    cr_assert_eq(f[2].h.length, sizeof(small));
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(f[i].h.type, RP_YAMUX_TYPE_DATA);
        cr_assert_leq(f[i].h.length, RP_YAMUX_MAX_FRAME_DEFAULT);
        if (i >= 3) cr_assert_eq(f[i].h.stream_id, i % 2 ? 1 : 3, "bulk streams alternate");
    }
    free(out.p);
    rp_yamux_free(s);
}

Test(yamux, send_respects_caller_buffers)
{
    rp_yamux_config c = quiet_cfg();
    rp_yamux *s = mk(true, &c);
    static uint8_t data[100000];
    rp_yamux_stream *st;
    cr_assert_eq(rp_yamux_open(s, NULL, &st), 0);
    cr_assert_eq(rp_yamux_stream_write(st, data, sizeof(data)), (ssize_t)sizeof(data));
    uint8_t hdr[64];
    rp_iov iov[8];
    rp_yamux_out o = { hdr, 11, iov, 8, 0, 0, 0 };
    cr_assert_eq(rp_yamux_send(s, &o, 0), RINGP2P_ENOBUF);
    o = (rp_yamux_out){ hdr, sizeof(hdr), iov, 1, 0, 0, 0 };
    cr_assert_eq(rp_yamux_send(s, &o, 0), RINGP2P_ENOBUF, "header and payload need two iovs");
    o = (rp_yamux_out){ hdr, sizeof(hdr), iov, 8, 12, 0, 0 };
    cr_assert_eq(rp_yamux_send(s, &o, 0), RINGP2P_ENOBUF, "budget of a bare header");
    o = (rp_yamux_out){ hdr, sizeof(hdr), iov, 8, 1012, 0, 0 };
    cr_assert_eq(rp_yamux_send(s, &o, 0), 1012);
    cr_assert_eq(o.niov, 2);
    cr_assert_eq(iov[1].base, data, "payload by reference");
    cr_assert_eq(iov[1].len, 1000);
    o = (rp_yamux_out){ hdr, 24, iov, 8, 0, 0, 0 };
    cr_assert_eq(rp_yamux_send(s, &o, 0), 24 + 2 * RP_YAMUX_MAX_FRAME_DEFAULT);
    cr_assert_eq(iov[1].base, data + 1000);
    cr_assert_eq(rp_yamux_stream_emitted(st), 1000 + 2 * RP_YAMUX_MAX_FRAME_DEFAULT);
    o = (rp_yamux_out){ NULL, 4, iov, 8, 0, 0, 0 };
    cr_assert_eq(rp_yamux_send(s, &o, 0), RINGP2P_EINVAL);
    rp_yamux_free(s);
}

/* ---- limits ------------------------------------------------------------------------------------
 */

/* Feeds n SYNs (ids first, first+2, ...) and returns the RST'd ids in the output. */
static size_t flood(rp_yamux *s, uint32_t first, size_t n, evlog *log, uint32_t *rst, size_t max)
{
    bbuf in = { 0 }, out = { 0 };
    for (size_t i = 0; i < n; i++) {
        put_hdr(&in, RP_YAMUX_TYPE_DATA, RP_YAMUX_FLAG_SYN, first + 2 * (uint32_t)i, 4);
        bbuf_put(&in, "data", 4);
    }
    cr_assert_eq(feed(s, in.p, in.len, 0, log, &out, NULL), 0);
    drain_out(s, &out, 0);
    frame *f = calloc(n + 16, sizeof(*f));
    size_t nf = parse_frames(&out, f, n + 16), nr = 0;
    for (size_t i = 0; i < nf; i++) {
        if (!(f[i].h.flags & RP_YAMUX_FLAG_RST)) continue;
        cr_assert_eq(f[i].h.type, RP_YAMUX_TYPE_WINDOW_UPDATE);
        cr_assert_lt(nr, max);
        rst[nr++] = f[i].h.stream_id;
    }
    free(f);
    free(in.p);
    free(out.p);
    return nr;
}

Test(yamux, accept_backlog_flood_gets_rst)
{
    rp_yamux_config c = quiet_cfg();
    rp_yamux *s = mk(false, &c);
    evlog log = { 0 };
    uint32_t rst[128];
    size_t nr = flood(s, 1, 300, &log, rst, ARRAY_LEN(rst));
    cr_assert_eq(count_ev(&log, RP_YAMUX_EV_STREAM_OPENED), RP_YAMUX_ACCEPT_BACKLOG_DEFAULT);
    cr_assert_eq(nr, 300 - RP_YAMUX_ACCEPT_BACKLOG_DEFAULT);
    for (size_t i = 0; i < nr; i++)
        cr_assert_eq(rst[i], 1 + 2 * (RP_YAMUX_ACCEPT_BACKLOG_DEFAULT + i));
    /* Refused streams' data is not reported; accepted ones' is. */
    cr_assert_eq(count_ev(&log, RP_YAMUX_EV_STREAM_DATA), RP_YAMUX_ACCEPT_BACKLOG_DEFAULT);
    cr_assert_eq(rp_yamux_error(s), 0, "the session survives");
    /* Accepting one makes room for one more. */
    cr_assert_eq(rp_yamux_stream_accept(log.ev[0].stream, NULL), 0);
    log.n = 0;
    nr = flood(s, 601, 2, &log, rst, ARRAY_LEN(rst));
    cr_assert_eq(count_ev(&log, RP_YAMUX_EV_STREAM_OPENED), 1);
    cr_assert_eq(nr, 1);
    cr_assert_eq(rst[0], 603);
    /* And it still answers pings. */
    uint8_t ping[12];
    unhex("00 02 0001 00000000 00000009", ping, sizeof(ping));
    cr_assert_eq(feed(s, ping, 12, 0, &log, NULL, NULL), 0);
    expect_out(s, "00 02 0002 00000000 00000009");
    free(log.ev);
    rp_yamux_free(s);
}

Test(yamux, max_inbound_streams_default_flood)
{
    rp_yamux_config c = quiet_cfg();
    c.accept_backlog = 2000; /* isolate the concurrent limit */
    rp_yamux *s = mk(false, &c);
    evlog log = { 0 };
    uint32_t *rst = calloc(200, sizeof(*rst));
    size_t nr = flood(s, 1, 1100, &log, rst, 200);
    cr_assert_eq(count_ev(&log, RP_YAMUX_EV_STREAM_OPENED), RP_YAMUX_MAX_INBOUND_STREAMS_DEFAULT);
    cr_assert_eq(nr, 100);
    cr_assert_eq(rp_yamux_num_streams(s), RP_YAMUX_MAX_INBOUND_STREAMS_DEFAULT);
    /* A stream that finishes frees a slot. */
    rp_yamux_stream *first = log.ev[0].stream;
    cr_assert_eq(rp_yamux_stream_reset(first), 0);
    expect_out(s, "00 01 0008 00000001 00000000");
    log.n = 0;
    nr = flood(s, 2201, 2, &log, rst, 200);
    cr_assert_eq(count_ev(&log, RP_YAMUX_EV_STREAM_OPENED), 1);
    cr_assert_eq(nr, 1);
    cr_assert_eq(rp_yamux_error(s), 0);
    free(rst);
    free(log.ev);
    rp_yamux_free(s);
}

Test(yamux, max_inbound_streams_configured)
{
    rp_yamux_config c = quiet_cfg();
    c.max_inbound_streams = 3;
    pair pp;
    pair_init(&pp, &c, &c);
    tstream *a[5];
    for (int i = 0; i < 5; i++) a[i] = ts_open(&pp.a, 1000, false);
    pair_settle(&pp, 100);
    cr_assert_eq(pp.b.opened, 3);
    for (int i = 0; i < 5; i++) cr_assert_eq(a[i]->reset, i >= 3, "stream %d", i);
    /* A peer's finished stream frees a slot: close both ways. */
    cr_assert_eq(rp_yamux_stream_close(a[0]->st), 0);
    cr_assert_eq(rp_yamux_stream_close(ts_find(&pp.b, a[0]->id)->st), 0);
    pair_settle(&pp, 100);
    tstream *a6 = ts_open(&pp.a, 10, true);
    pair_settle(&pp, 100);
    cr_assert(!a6->reset);
    cr_assert_eq(pp.b.opened, 4);
    pair_free(&pp);
}

Test(yamux, open_backlog_limits_unacked_streams)
{
    rp_yamux_config c = quiet_cfg();
    rp_yamux *s = mk(true, &c);
    rp_yamux_stream *st;
    for (unsigned i = 0; i < RP_YAMUX_OPEN_BACKLOG_DEFAULT; i++)
        cr_assert_eq(rp_yamux_open(s, NULL, &st), 0);
    cr_assert_eq(rp_yamux_open(s, NULL, &st), RINGP2P_EAGAIN);
    bbuf out = { 0 }, in = { 0 };
    drain_out(s, &out, 0);
    put_hdr(&in, RP_YAMUX_TYPE_WINDOW_UPDATE, RP_YAMUX_FLAG_ACK, 7, 0);
    evlog log = { 0 };
    cr_assert_eq(feed(s, in.p, in.len, 0, &log, NULL, NULL), 0);
    cr_assert_eq(log.n, 1);
    cr_assert_eq(log.ev[0].type, RP_YAMUX_EV_OPEN_READY);
    cr_assert_eq(rp_yamux_open(s, NULL, &st), 0);
    cr_assert_eq(rp_yamux_stream_id(st), 2 * RP_YAMUX_OPEN_BACKLOG_DEFAULT + 1);
    free(out.p);
    free(in.p);
    free(log.ev);
    rp_yamux_free(s);
}

Test(yamux, event_queue_full_stops_receive)
{
    rp_yamux_config c = quiet_cfg();
    rp_yamux *s = mk(false, &c);
    bbuf in = { 0 };
    for (uint32_t i = 0; i < 100; i++)
        put_hdr(&in, RP_YAMUX_TYPE_WINDOW_UPDATE, RP_YAMUX_FLAG_SYN, 2 * i + 1, 0);
    const uint8_t *p = in.p;
    cr_assert_eq(rp_yamux_receive(s, &p, in.p + in.len, 0, NULL), RINGP2P_EAGAIN);
    cr_assert_lt(p, in.p + in.len);
    cr_assert_eq((size_t)(p - in.p) % RP_YAMUX_HEADER_LEN, 0, "stops at a frame boundary");
    size_t first = (size_t)(p - in.p) / RP_YAMUX_HEADER_LEN;
    cr_assert_geq(first, RP_YAMUX_EVENT_QUEUE / 2);
    cr_assert_leq(first, RP_YAMUX_EVENT_QUEUE);
    evlog log = { 0 };
    drain_events(s, &log);
    cr_assert_eq(log.n, first);
    cr_assert_eq(feed(s, p, (size_t)(in.p + in.len - p), 0, &log, NULL, NULL), 0);
    cr_assert_eq(count_ev(&log, RP_YAMUX_EV_STREAM_OPENED), 100);
    free(log.ev);
    free(in.p);
    rp_yamux_free(s);
}

Test(yamux, control_queue_full_stops_receive)
{
    rp_yamux_config c = quiet_cfg();
    rp_yamux *s = mk(false, &c);
    bbuf in = { 0 };
    for (uint32_t i = 0; i < 200; i++) put_hdr(&in, RP_YAMUX_TYPE_PING, RP_YAMUX_FLAG_SYN, 0, i);
    const uint8_t *p = in.p;
    cr_assert_eq(rp_yamux_receive(s, &p, in.p + in.len, 0, NULL), RINGP2P_EAGAIN);
    cr_assert_eq(p, in.p + RP_YAMUX_CTRL_QUEUE * RP_YAMUX_HEADER_LEN,
                 "answers owed are bounded: reading stops");
    bbuf out = { 0 };
    cr_assert_eq(feed(s, p, (size_t)(in.p + in.len - p), 0, NULL, &out, NULL), 0);
    drain_out(s, &out, 0);
    frame f[200];
    cr_assert_eq(parse_frames(&out, f, 200), 200);
    for (uint32_t i = 0; i < 200; i++) {
        cr_assert_eq(f[i].h.flags, RP_YAMUX_FLAG_ACK);
        cr_assert_eq(f[i].h.length, i, "answered in order");
    }
    free(out.p);
    free(in.p);
    rp_yamux_free(s);
}

/* ---- ping -------------------------------------------------------------------------------------
 */

Test(yamux, ping_rtt_measured_under_fake_clock)
{
    rp_yamux_config c;
    rp_yamux_config_default(&c);
    pair pp;
    pair_init(&pp, &c, &c);
    pp.a.delay = 3 * MS;
    pp.b.delay = 4 * MS;
    for (int i = 0; i < 20; i++) pair_tick(&pp);
    /* Both sides ping at start. */
    cr_assert_eq(pp.a.rtts, 1);
    cr_assert_eq(pp.b.rtts, 1);
    cr_assert_eq(pp.a.last_rtt, 7 * MS);
    cr_assert_eq(rp_yamux_rtt_ns(pp.a.s), 7 * MS);
    /* An explicit ping; a second one while it is out joins it. */
    cr_assert_eq(rp_yamux_ping(pp.a.s), 0);
    cr_assert_eq(rp_yamux_ping(pp.a.s), 0);
    pp.a.delay = 13 * MS;
    for (int i = 0; i < 30; i++) pair_tick(&pp);
    cr_assert_eq(pp.a.rtts, 2);
    cr_assert_eq(pp.a.last_rtt, 17 * MS);
    cr_assert_eq(rp_yamux_rtt_ns(pp.a.s), 12 * MS, "smoothed: half old, half new");
    /* The next automatic ping is due one interval after the answer. */
    uint64_t due = rp_yamux_next_timeout(pp.a.s);
    cr_assert_gt(due, pp.now);
    cr_assert_leq(due, pp.now + RP_YAMUX_PING_INTERVAL_NS_DEFAULT);
    pair_free(&pp);
}

Test(yamux, ping_timeout_reported)
{
    rp_yamux_config c;
    rp_yamux_config_default(&c);
    rp_yamux *s = NULL;
    cr_assert_eq(rp_yamux_new(&c, true, 1000, &s), 0);
    bbuf out = { 0 };
    drain_out(s, &out, 5000);
    cr_assert_eq(out.len, 12, "the initial ping");
    cr_assert_eq(rp_yamux_next_timeout(s), 5000 + RP_YAMUX_PING_TIMEOUT_NS_DEFAULT);
    rp_yamux_on_timeout(s, 5000 + RP_YAMUX_PING_TIMEOUT_NS_DEFAULT - 1);
    evlog log = { 0 };
    drain_events(s, &log);
    cr_assert_eq(log.n, 0);
    rp_yamux_on_timeout(s, 5000 + RP_YAMUX_PING_TIMEOUT_NS_DEFAULT);
    drain_events(s, &log);
    cr_assert_eq(log.n, 1);
    cr_assert_eq(log.ev[0].type, RP_YAMUX_EV_PING_TIMEOUT);
    /* A late answer to the abandoned ping is ignored. */
    uint8_t late[12];
    unhex("00 02 0002 00000000 00000000", late, 12);
    cr_assert_eq(feed(s, late, 12, 0, &log, NULL, NULL), 0);
    cr_assert_eq(log.n, 1);
    cr_assert_eq(rp_yamux_rtt_ns(s), 0);
    free(out.p);
    free(log.ev);
    rp_yamux_free(s);
}

/* ---- go-away -----------------------------------------------------------------------------------
 */

Test(yamux, go_away_graceful)
{
    rp_yamux_config c = quiet_cfg();
    pair pp;
    pair_init(&pp, &c, &c);
    pp.b.echo_inbound = true;
    pp.b.echo_cap = 2 * MIB;
    tstream *a = ts_open(&pp.a, 2 * MIB, false);
    a->rx_check = true;
    a->rx_seed = a->id;
    pair_tick(&pp);
    pair_tick(&pp);
    cr_assert_eq(rp_yamux_go_away(pp.b.s, RP_YAMUX_GOAWAY_NORMAL), 0);
    pair_tick(&pp);
    pair_tick(&pp);
    cr_assert_eq(pp.a.goaways, 1);
    cr_assert_eq(pp.a.goaway_code, 0);
    rp_yamux_stream *st;
    cr_assert_eq(rp_yamux_open(pp.a.s, NULL, &st), RINGP2P_EGOAWAY, "no new streams after");
    cr_assert_eq(rp_yamux_open(pp.b.s, NULL, &st), RINGP2P_ECLOSED);
    /* The existing stream finishes: all data echoed, both FINs. */
    a->close_when_done = true;
    pair_settle(&pp, 5000);
    cr_assert_eq(a->rx, 2 * MIB);
    cr_assert(a->fin);
    cr_assert_eq(rp_yamux_num_streams(pp.a.s), 0);
    cr_assert_eq(rp_yamux_num_streams(pp.b.s), 0);
    cr_assert_eq(rp_yamux_error(pp.a.s), 0);
    cr_assert_eq(pp.a.errors + pp.b.errors, 0);
    /* A peer that opens anyway is refused. */
    bbuf in = { 0 }, out = { 0 };
    put_hdr(&in, RP_YAMUX_TYPE_WINDOW_UPDATE, RP_YAMUX_FLAG_SYN, 99, 0);
    evlog log = { 0 };
    cr_assert_eq(feed(pp.b.s, in.p, in.len, pp.now, &log, NULL, NULL), 0);
    cr_assert_eq(log.n, 0);
    drain_out(pp.b.s, &out, pp.now);
    uint8_t want[12];
    unhex("00 01 0008 00000063 00000000", want, 12);
    cr_assert_eq(out.len, 12);
    cr_assert_arr_eq(out.p, want, 12);
    free(in.p);
    free(out.p);
    free(log.ev);
    pair_free(&pp);
}

Test(yamux, go_away_with_error_ends_session)
{
    rp_yamux_config c = quiet_cfg();
    pair pp;
    pair_init(&pp, &c, &c);
    tstream *a = ts_open(&pp.a, 1 * MIB, false);
    pair_tick(&pp);
    cr_assert_eq(rp_yamux_go_away(pp.a.s, RP_YAMUX_GOAWAY_INTERNAL), 0);
    cr_assert_eq(rp_yamux_error(pp.a.s), RINGP2P_ECLOSED);
    cr_assert_eq(rp_yamux_stream_write(a->st, "x", 1), RINGP2P_ECLOSED);
    a->reset = true;
    /* Only the go-away leaves now, then nothing. */
    bbuf out = { 0 };
    drain_out(pp.a.s, &out, pp.now);
    uint8_t want[12];
    unhex("00 03 0000 00000000 00000002", want, 12);
    cr_assert_eq(out.len, 12);
    cr_assert_arr_eq(out.p, want, 12);
    const uint8_t *p = out.p;
    ringp2p_errinfo ei;
    cr_assert_eq(rp_yamux_receive(pp.b.s, &p, out.p + out.len, 0, &ei), RINGP2P_EGOAWAY);
    peer_events(&pp, &pp.b);
    cr_assert_eq(pp.b.goaways, 1);
    cr_assert_eq(pp.b.goaway_code, 2);
    cr_assert_eq(pp.b.errors, 1);
    cr_assert_eq(pp.b.error, RINGP2P_EGOAWAY);
    cr_assert_eq(rp_yamux_num_streams(pp.b.s), 0);
    free(out.p);
    pair_free(&pp);
}

/* ---- stream release -----------------------------------------------------------------------------
 */

Test(yamux, release_closes_gracefully)
{
    rp_yamux_config c = quiet_cfg();
    pair pp;
    pair_init(&pp, &c, &c);
    /* Fire and forget: write, release at once; data and FIN still arrive. */
    tstream *a = ts_open(&pp.a, 500 * KIB, false);
    peer_app(&pp, &pp.a);
    rp_yamux_stream_release(a->st);
    a->released = true;
    pair_settle(&pp, 1000);
    tstream *b = ts_find(&pp.b, a->id);
    cr_assert_eq(b->rx, RP_YAMUX_INITIAL_WINDOW, "only what write accepted");
    cr_assert(b->fin);
    cr_assert_eq(rp_yamux_num_streams(pp.a.s), 1, "waiting for the peer's FIN");
    /* The peer's data to a released stream is swallowed and credited. */
    b->tx_seed = 5;
    b->tx_total = 1 * MIB;
    b->close_when_done = true;
    pair_settle(&pp, 1000);
    cr_assert_eq(b->tx_acc, 1 * MIB);
    cr_assert_eq(rp_yamux_num_streams(pp.a.s), 0);
    cr_assert_eq(rp_yamux_num_streams(pp.b.s), 0);
    /* Releasing an unaccepted inbound stream refuses it. */
    pp.b.auto_accept = false;
    tstream *a2 = ts_open(&pp.a, 0, false);
    pair_settle(&pp, 100);
    tstream *b2 = ts_find(&pp.b, a2->id);
    rp_yamux_stream_release(b2->st);
    b2->released = true;
    pair_settle(&pp, 100);
    cr_assert(a2->reset);
    pair_free(&pp);
}
