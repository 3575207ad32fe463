/* yamux session state machine; see yamux.h for the model and the settled spec points. */
#include "muxer/yamux.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

/* ---- intrusive lists ------------------------------------------------------------------------ */

typedef struct ylink {
    struct ylink *prev, *next; /* both NULL when not on a list */
} ylink;

static void ylist_init(ylink *h)
{
    h->prev = h->next = h;
}

static bool ylist_empty(const ylink *h)
{
    return h->next == h;
}

static bool ylinked(const ylink *n)
{
    return n->next != NULL;
}

static void ylist_append(ylink *h, ylink *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

static void yunlink(ylink *n)
{
    if (n->next == NULL) return;
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = NULL;
}

#define YSTREAM(ptr, member) \
    ((rp_yamux_stream *)(void *)((char *)(ptr)-offsetof(rp_yamux_stream, member)))

/* ---- state ---------------------------------------------------------------------------------- */

enum {
    ST_OUTBOUND = 1u << 0,
    ST_SYN_PENDING = 1u << 1,  /* our SYN rides on the stream's first frame */
    ST_ACK_PENDING = 1u << 2,  /* our ACK rides on the next frame */
    ST_ACCEPTED = 1u << 3,     /* inbound: the application took it */
    ST_IN_BACKLOG = 1u << 4,   /* inbound, not yet accepted: counts against accept_backlog */
    ST_OPEN_BACKLOG = 1u << 5, /* outbound, not yet acknowledged: counts against open_backlog */
    ST_FIN_QUEUED = 1u << 6,   /* our FIN goes after the queued data */
    ST_FIN_SENT = 1u << 7,
    ST_FIN_RECV = 1u << 8,
    ST_RST_PENDING = 1u << 9,
    ST_RESET = 1u << 10,
    ST_TERMINAL = 1u << 11, /* finished on the wire: out of the id map */
    ST_RELEASED = 1u << 12, /* the application dropped the handle */
    ST_IN_MAP = 1u << 13,
    ST_WANT_WRITABLE = 1u << 14, /* a write fell short: report when it would not */
    ST_EPOCH = 1u << 15,         /* epoch_ns is set */
};

struct rp_yamux_stream {
    rp_yamux *s;
    void *user;
    uint32_t id;
    uint32_t flags;
    uint32_t nev;         /* queued events that point here: the memory must outlive them */
    uint32_t recv_window; /* target window (auto-tuned) */
    /*
     * Receive accounting; recv_credit + recv_pending + recv_buffered <=
     * recv_window, the difference being consumed bytes not yet credited back.
     */
    uint64_t recv_credit;   /* bytes the peer may still send */
    uint64_t recv_pending;  /* announced by a data header, not yet delivered */
    uint64_t recv_buffered; /* delivered, not yet consumed */
    uint64_t wu_pending;    /* window delta to send */
    uint64_t epoch_ns;      /* time of the previous window update (auto-tuning) */
    /* Send accounting: the peer's window is send_credit + queued. */
    uint64_t send_credit;
    uint64_t queued;
    uint64_t emitted;
    uint32_t seg_head, seg_count;
    size_t seg_off; /* bytes of segs[seg_head] already emitted */
    rp_iov segs[RP_YAMUX_STREAM_SEGS];
    ylink all;  /* every stream of the session */
    ylink data; /* round-robin queue of streams with data queued */
    ylink ctrl; /* streams owing a SYN/ACK/FIN/RST or a window update */
    ylink wr;   /* streams with a WRITABLE event to report */
};

struct rp_yamux {
    rp_yamux_config cfg;
    bool client;
    bool dead;
    bool local_goaway, remote_goaway;
    bool goaway_pending;
    bool want_open, ev_open_ready, ev_ping_timeout, ev_fatal;
    bool ping_pending, ping_active;
    bool rx_active; /* inside a data payload */
    uint8_t hdr_have;
    uint8_t hdr[RP_YAMUX_HEADER_LEN]; /* a header split across inputs */
    uint16_t rx_flags;
    uint32_t goaway_code;
    int err;
    uint32_t rx_remaining;
    rp_yamux_stream *rx_stream; /* NULL: discard the payload */
    uint64_t next_id;           /* next id we open (64 bits so exhaustion shows) */
    uint32_t max_peer_id;       /* highest id the peer opened */
    uint32_t n_live;            /* streams not finished on the wire */
    uint32_t n_inbound, n_backlog, n_open_backlog;
    uint32_t ping_id;
    uint64_t ping_sent_ns, next_ping_ns, rtt_ns;
    uint64_t now_ns; /* latest time seen, for release() which takes none */
    rp_yamux_stream **map;
    uint32_t map_cap, map_count;
    ylink all, data, ctrl, wr;
    uint32_t ev_head, ev_count;
    uint32_t ctl_head, ctl_count;
    rp_yamux_event ev[RP_YAMUX_EVENT_QUEUE];
    rp_yamux_hdr ctl[RP_YAMUX_CTRL_QUEUE];
    char errmsg[RINGP2P_ERRINFO_MSG_MAX];
};

/* ---- header codec --------------------------------------------------------------------------- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void hdr_parse(const uint8_t *p, rp_yamux_hdr *h)
{
    h->version = p[0];
    h->type = p[1];
    h->flags = (uint16_t)(p[2] << 8 | p[3]);
    h->stream_id = be32(p + 4);
    h->length = be32(p + 8);
}

static void hdr_write(uint8_t *p, uint8_t type, uint16_t flags, uint32_t id, uint32_t length)
{
    p[0] = RP_YAMUX_VERSION;
    p[1] = type;
    p[2] = (uint8_t)(flags >> 8);
    p[3] = (uint8_t)flags;
    put_be32(p + 4, id);
    put_be32(p + 8, length);
}

int rp_yamux_hdr_decode(const uint8_t **src, const uint8_t *end, rp_yamux_hdr *h,
                        ringp2p_errinfo *ei)
{
    const uint8_t *p = *src;
    if (end - p < RP_YAMUX_HEADER_LEN)
        return rp_err(ei, RINGP2P_ETRUNCATED, "yamux header needs 12 bytes, have %zu",
                      (size_t)(end - p));
    rp_yamux_hdr t;
    hdr_parse(p, &t);
    if (t.version != RP_YAMUX_VERSION)
        return rp_err(ei, RINGP2P_EPROTOCOL, "yamux version %u unsupported", t.version);
    if (t.type > RP_YAMUX_TYPE_GO_AWAY)
        return rp_err(ei, RINGP2P_EPROTOCOL, "yamux frame type %u unknown", t.type);
    *h = t;
    *src = p + RP_YAMUX_HEADER_LEN;
    return 0;
}

ssize_t rp_yamux_hdr_encode(uint8_t *dst, size_t cap, const rp_yamux_hdr *h)
{
    if (cap < RP_YAMUX_HEADER_LEN) return RINGP2P_ENOBUF;
    hdr_write(dst, h->type, h->flags, h->stream_id, h->length);
    dst[0] = h->version;
    return RP_YAMUX_HEADER_LEN;
}

/* ---- configuration -------------------------------------------------------------------------- */

void rp_yamux_config_default(rp_yamux_config *cfg)
{
    cfg->initial_window = RP_YAMUX_INITIAL_WINDOW;
    cfg->max_window = RP_YAMUX_MAX_WINDOW_DEFAULT;
    cfg->max_inbound_streams = RP_YAMUX_MAX_INBOUND_STREAMS_DEFAULT;
    cfg->accept_backlog = RP_YAMUX_ACCEPT_BACKLOG_DEFAULT;
    cfg->open_backlog = RP_YAMUX_OPEN_BACKLOG_DEFAULT;
    cfg->max_frame = RP_YAMUX_MAX_FRAME_DEFAULT;
    cfg->ping_interval_ns = RP_YAMUX_PING_INTERVAL_NS_DEFAULT;
    cfg->ping_timeout_ns = RP_YAMUX_PING_TIMEOUT_NS_DEFAULT;
}

static bool config_ok(const rp_yamux_config *c)
{
    return c->initial_window >= RP_YAMUX_INITIAL_WINDOW && c->max_window >= c->initial_window &&
           c->accept_backlog >= 1 && c->open_backlog >= 1 &&
           c->max_frame >= RP_YAMUX_MAX_FRAME_MIN && c->ping_timeout_ns > 0;
}

/* ---- stream id map (open addressing, linear probing, backward-shift deletion) --------------- */

static uint32_t map_hash(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

static rp_yamux_stream *map_get(const rp_yamux *s, uint32_t id)
{
    if (s->map_cap == 0) return NULL;
    uint32_t mask = s->map_cap - 1;
    for (uint32_t i = map_hash(id) & mask;; i = (i + 1) & mask) {
        rp_yamux_stream *st = s->map[i];
        if (st == NULL || st->id == id) return st;
    }
}

static void map_place(rp_yamux_stream **slots, uint32_t cap, rp_yamux_stream *st)
{
    uint32_t mask = cap - 1, i = map_hash(st->id) & mask;
    while (slots[i] != NULL) i = (i + 1) & mask;
    slots[i] = st;
}

static int map_put(rp_yamux *s, rp_yamux_stream *st)
{
    /* Load at most 1/2 keeps probes short. */
    if ((uint64_t)(s->map_count + 1) * 2 > s->map_cap) {
        uint32_t cap = s->map_cap ? s->map_cap * 2 : 16;
        rp_yamux_stream **slots = calloc(cap, sizeof(*slots));
        if (slots == NULL) return RINGP2P_ENOMEM;
        for (uint32_t i = 0; i < s->map_cap; i++)
            if (s->map[i] != NULL) map_place(slots, cap, s->map[i]);
        free(s->map);
        s->map = slots;
        s->map_cap = cap;
    }
    map_place(s->map, s->map_cap, st);
    s->map_count++;
    return 0;
}

static void map_del(rp_yamux *s, rp_yamux_stream *st)
{
    uint32_t mask = s->map_cap - 1, i = map_hash(st->id) & mask;
    while (s->map[i] != st) i = (i + 1) & mask;
    s->map[i] = NULL;
    s->map_count--;
    for (uint32_t j = (i + 1) & mask; s->map[j] != NULL; j = (j + 1) & mask) {
        uint32_t k = map_hash(s->map[j]->id) & mask;
        /* An entry stays if its home slot lies cyclically in (i, j]. */
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            s->map[i] = s->map[j];
            s->map[j] = NULL;
            i = j;
        }
    }
}

/* ---- events and the control queue ----------------------------------------------------------- */

static bool ev_room(const rp_yamux *s, uint32_t n)
{
    return RP_YAMUX_EVENT_QUEUE - s->ev_count >= n;
}

/* Queues an event; stream events of released streams are not reported (returns NULL). */
static rp_yamux_event *ev_push(rp_yamux *s, rp_yamux_event_type type, rp_yamux_stream *st)
{
    if (st != NULL && (st->flags & ST_RELEASED)) return NULL;
    assert(s->ev_count < RP_YAMUX_EVENT_QUEUE);
    rp_yamux_event *e = &s->ev[(s->ev_head + s->ev_count) % RP_YAMUX_EVENT_QUEUE];
    s->ev_count++;
    memset(e, 0, sizeof(*e));
    e->type = type;
    e->stream = st;
    if (st != NULL) st->nev++;
    return e;
}

static void ctl_push(rp_yamux *s, uint8_t type, uint16_t flags, uint32_t id, uint32_t length)
{
    assert(s->ctl_count < RP_YAMUX_CTRL_QUEUE);
    rp_yamux_hdr *h = &s->ctl[(s->ctl_head + s->ctl_count) % RP_YAMUX_CTRL_QUEUE];
    s->ctl_count++;
    h->version = RP_YAMUX_VERSION;
    h->type = type;
    h->flags = flags;
    h->stream_id = id;
    h->length = length;
}

static bool ctl_has_rst(const rp_yamux *s, uint32_t id)
{
    for (uint32_t i = 0; i < s->ctl_count; i++) {
        const rp_yamux_hdr *h = &s->ctl[(s->ctl_head + i) % RP_YAMUX_CTRL_QUEUE];
        if (h->stream_id == id && (h->flags & RP_YAMUX_FLAG_RST)) return true;
    }
    return false;
}

/* ---- stream lifecycle ----------------------------------------------------------------------- */

static void ctrl_link(rp_yamux *s, rp_yamux_stream *st)
{
    if (!ylinked(&st->ctrl)) ylist_append(&s->ctrl, &st->ctrl);
}

static rp_yamux_stream *stream_new(rp_yamux *s, uint32_t id, uint32_t flags)
{
    rp_yamux_stream *st = calloc(1, sizeof(*st));
    if (st == NULL) return NULL;
    st->s = s;
    st->id = id;
    st->flags = flags | ST_IN_MAP;
    st->recv_window = s->cfg.initial_window;
    st->recv_credit = s->cfg.initial_window;
    /* Both sides start from the spec's window; a larger one is announced with SYN/ACK. */
    st->wu_pending = s->cfg.initial_window - RP_YAMUX_INITIAL_WINDOW;
    st->send_credit = RP_YAMUX_INITIAL_WINDOW;
    if (map_put(s, st) < 0) {
        free(st);
        return NULL;
    }
    ylist_append(&s->all, &st->all);
    s->n_live++;
    return st;
}

static void stream_maybe_free(rp_yamux *s, rp_yamux_stream *st)
{
    if ((st->flags & (ST_RELEASED | ST_TERMINAL)) != (ST_RELEASED | ST_TERMINAL)) return;
    if (st->nev != 0 || ylinked(&st->ctrl) || ylinked(&st->data)) return;
    (void)s;
    yunlink(&st->all);
    yunlink(&st->wr);
    free(st);
}

static void leave_open_backlog(rp_yamux *s, rp_yamux_stream *st)
{
    if (!(st->flags & ST_OPEN_BACKLOG)) return;
    st->flags &= ~(uint32_t)ST_OPEN_BACKLOG;
    s->n_open_backlog--;
    if (s->want_open && s->n_open_backlog < s->cfg.open_backlog) {
        s->want_open = false;
        s->ev_open_ready = true;
    }
}

static void leave_accept_backlog(rp_yamux *s, rp_yamux_stream *st)
{
    if (!(st->flags & ST_IN_BACKLOG)) return;
    st->flags &= ~(uint32_t)ST_IN_BACKLOG;
    s->n_backlog--;
}

static void stream_drop_data(rp_yamux_stream *st)
{
    st->seg_count = 0;
    st->seg_off = 0;
    st->queued = 0;
    yunlink(&st->data);
}

static void map_leave(rp_yamux *s, rp_yamux_stream *st)
{
    if (!(st->flags & ST_IN_MAP)) return;
    map_del(s, st);
    st->flags &= ~(uint32_t)ST_IN_MAP;
}

/*
 * The stream is finished on the wire; later frames for its id are dropped.
 * One whose RST is still to be sent stays in the id map (terminal) until it
 * leaves, so a peer reusing the id before it can have seen the RST is caught
 * instead of getting its new stream killed by our late RST.
 */
static void stream_finish(rp_yamux *s, rp_yamux_stream *st)
{
    if (st->flags & ST_TERMINAL) return;
    s->n_live--;
    if (!(st->flags & ST_OUTBOUND)) s->n_inbound--;
    if (!(st->flags & ST_RST_PENDING)) {
        map_leave(s, st);
        yunlink(&st->ctrl); /* a window update is moot now */
    }
    st->wu_pending = 0;
    leave_accept_backlog(s, st);
    leave_open_backlog(s, st);
    if (s->rx_stream == st) s->rx_stream = NULL;
    st->flags = (st->flags & ~(uint32_t)ST_WANT_WRITABLE) | ST_TERMINAL;
    yunlink(&st->wr);
}

static void stream_check_done(rp_yamux *s, rp_yamux_stream *st)
{
    if ((st->flags & (ST_FIN_SENT | ST_FIN_RECV)) == (ST_FIN_SENT | ST_FIN_RECV))
        stream_finish(s, st);
    stream_maybe_free(s, st);
}

static size_t stream_writable_now(const rp_yamux_stream *st)
{
    if (st->s->dead ||
        (st->flags & (ST_RESET | ST_TERMINAL | ST_FIN_QUEUED | ST_RELEASED | ST_FIN_SENT)))
        return 0;
    if (st->seg_count == RP_YAMUX_STREAM_SEGS) return 0;
    return st->send_credit > SIZE_MAX ? SIZE_MAX : (size_t)st->send_credit;
}

static void stream_check_writable(rp_yamux *s, rp_yamux_stream *st)
{
    if (!(st->flags & ST_WANT_WRITABLE) || stream_writable_now(st) == 0) return;
    st->flags &= ~(uint32_t)ST_WANT_WRITABLE;
    if (!ylinked(&st->wr)) ylist_append(&s->wr, &st->wr);
}

/*
 * Credits consumed bytes back once half the window is consumed (go-yamux's
 * threshold: fewer, larger updates), doubling the window when the previous
 * update is less than RP_YAMUX_TUNE_RTT_FACTOR RTTs ago.
 */
static void stream_update_window(rp_yamux *s, rp_yamux_stream *st, uint64_t now)
{
    if (st->flags & (ST_FIN_RECV | ST_RESET | ST_TERMINAL)) return;
    uint64_t held = st->recv_credit + st->recv_pending + st->recv_buffered;
    assert(held <= st->recv_window);
    uint64_t delta = st->recv_window - held;
    if (delta == 0 || delta < st->recv_window / 2) return;
    if (s->rtt_ns != 0 && (st->flags & ST_EPOCH) && now >= st->epoch_ns &&
        now - st->epoch_ns < RP_YAMUX_TUNE_RTT_FACTOR * s->rtt_ns &&
        st->recv_window < s->cfg.max_window) {
        uint64_t w = (uint64_t)st->recv_window * 2;
        if (w > s->cfg.max_window) w = s->cfg.max_window;
        delta += w - st->recv_window;
        st->recv_window = (uint32_t)w;
    }
    st->epoch_ns = now;
    st->flags |= ST_EPOCH;
    st->recv_credit += delta;
    st->wu_pending += delta;
    ctrl_link(s, st);
}

static void stream_accept(rp_yamux *s, rp_yamux_stream *st)
{
    st->flags |= ST_ACCEPTED | ST_ACK_PENDING;
    leave_accept_backlog(s, st);
    ctrl_link(s, st);
}

static void stream_remote_reset(rp_yamux *s, rp_yamux_stream *st, uint32_t code)
{
    rp_yamux_event *e = ev_push(s, RP_YAMUX_EV_STREAM_RESET, st);
    if (e != NULL) e->code = code;
    st->flags |= ST_RESET;
    st->flags &= ~(uint32_t)(ST_SYN_PENDING | ST_ACK_PENDING | ST_RST_PENDING);
    st->wu_pending = 0;
    stream_drop_data(st);
    yunlink(&st->ctrl);
    stream_finish(s, st);
    stream_maybe_free(s, st);
}

static void stream_apply_close_flags(rp_yamux *s, rp_yamux_stream *st, uint16_t flags,
                                     uint32_t code)
{
    if (flags & RP_YAMUX_FLAG_RST) {
        stream_remote_reset(s, st, code);
        return;
    }
    if ((flags & RP_YAMUX_FLAG_FIN) && !(st->flags & ST_FIN_RECV)) {
        st->flags |= ST_FIN_RECV;
        ev_push(s, RP_YAMUX_EV_STREAM_FIN, st);
        stream_check_done(s, st);
    }
}

/* ---- session lifecycle ---------------------------------------------------------------------- */

int rp_yamux_new(const rp_yamux_config *cfg, bool dialer, uint64_t now_ns, rp_yamux **out)
{
    rp_yamux_config def;
    if (cfg == NULL) {
        rp_yamux_config_default(&def);
        cfg = &def;
    }
    if (out == NULL || !config_ok(cfg)) return RINGP2P_EINVAL;
    rp_yamux *s = calloc(1, sizeof(*s));
    if (s == NULL) return RINGP2P_ENOMEM;
    s->cfg = *cfg;
    s->client = dialer;
    s->next_id = dialer ? 1 : 2;
    s->now_ns = now_ns;
    ylist_init(&s->all);
    ylist_init(&s->data);
    ylist_init(&s->ctrl);
    ylist_init(&s->wr);
    /* Measure the RTT at once, as go-yamux and js do: auto-tuning needs it. */
    if (cfg->ping_interval_ns != 0) s->ping_pending = true;
    *out = s;
    return 0;
}

void rp_yamux_free(rp_yamux *s)
{
    if (s == NULL) return;
    while (!ylist_empty(&s->all)) {
        ylink *n = s->all.next;
        yunlink(n);
        free(YSTREAM(n, all));
    }
    free(s->map);
    free(s);
}

/* Kills the session: every stream is gone on the wire, only a GoAway may still leave. */
static void session_die(rp_yamux *s, int err, bool send_goaway, uint32_t code, bool report,
                        const char *msg)
{
    s->dead = true;
    s->err = err;
    snprintf(s->errmsg, sizeof(s->errmsg), "%s", msg);
    s->goaway_pending = send_goaway;
    s->goaway_code = code;
    s->ev_fatal = report;
    s->ping_pending = s->ping_active = false;
    s->ctl_count = 0;
    s->rx_active = false;
    s->rx_stream = NULL;
    s->want_open = s->ev_open_ready = false;
    ylink *n = s->all.next;
    while (n != &s->all) {
        rp_yamux_stream *st = YSTREAM(n, all);
        n = n->next;
        yunlink(&st->ctrl);
        yunlink(&st->wr);
        stream_drop_data(st);
        st->flags =
            (st->flags & ~(uint32_t)(ST_IN_MAP | ST_IN_BACKLOG | ST_OPEN_BACKLOG)) | ST_TERMINAL;
        stream_maybe_free(s, st);
    }
    if (s->map != NULL) memset(s->map, 0, s->map_cap * sizeof(*s->map));
    s->map_count = 0;
    s->n_live = s->n_inbound = s->n_backlog = s->n_open_backlog = 0;
}

static int dead_error(const rp_yamux *s, ringp2p_errinfo *ei)
{
    return rp_err(ei, s->err, "%s", s->errmsg);
}

static int proto_error(rp_yamux *s, ringp2p_errinfo *ei, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int proto_error(rp_yamux *s, ringp2p_errinfo *ei, const char *fmt, ...)
{
    char msg[RINGP2P_ERRINFO_MSG_MAX - 16];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char full[RINGP2P_ERRINFO_MSG_MAX];
    snprintf(full, sizeof(full), "yamux: %s", msg);
    session_die(s, RINGP2P_EPROTOCOL, true, RP_YAMUX_GOAWAY_PROTOCOL, true, full);
    return dead_error(s, ei);
}

int rp_yamux_error(const rp_yamux *s)
{
    return s->dead ? s->err : 0;
}

size_t rp_yamux_num_streams(const rp_yamux *s)
{
    return s->n_live;
}

uint64_t rp_yamux_rtt_ns(const rp_yamux *s)
{
    return s->rtt_ns;
}

/* ---- receive -------------------------------------------------------------------------------- */

static int on_ping(rp_yamux *s, const rp_yamux_hdr *h, uint64_t now, ringp2p_errinfo *ei)
{
    if (h->stream_id != 0) return proto_error(s, ei, "ping on stream %u", h->stream_id);
    if (h->flags & RP_YAMUX_FLAG_SYN) {
        ctl_push(s, RP_YAMUX_TYPE_PING, RP_YAMUX_FLAG_ACK, 0, h->length);
        return 0;
    }
    if (!(h->flags & RP_YAMUX_FLAG_ACK))
        return proto_error(s, ei, "ping with neither SYN nor ACK (flags 0x%x)", h->flags);
    /* An answer to no ping of ours is ignored, as go-yamux does. */
    if (!s->ping_active || h->length != s->ping_id) return 0;
    uint64_t rtt = now > s->ping_sent_ns ? now - s->ping_sent_ns : 0;
    s->rtt_ns = s->rtt_ns == 0 ? rtt : s->rtt_ns / 2 + rtt / 2;
    if (s->rtt_ns == 0) s->rtt_ns = 1; /* "measured" even on a zero-latency test link */
    s->ping_active = false;
    s->next_ping_ns = now + s->cfg.ping_interval_ns;
    rp_yamux_event *e = ev_push(s, RP_YAMUX_EV_PING_RTT, NULL);
    e->rtt_ns = rtt;
    return 0;
}

static int on_go_away(rp_yamux *s, const rp_yamux_hdr *h, ringp2p_errinfo *ei)
{
    if (h->stream_id != 0) return proto_error(s, ei, "go-away on stream %u", h->stream_id);
    rp_yamux_event *e = ev_push(s, RP_YAMUX_EV_GO_AWAY, NULL);
    e->code = h->length;
    s->remote_goaway = true;
    if (h->length == RP_YAMUX_GOAWAY_NORMAL) return 0;
    char msg[96];
    snprintf(msg, sizeof(msg), "yamux: peer sent go-away with error code %u", h->length);
    session_die(s, RINGP2P_EGOAWAY, false, 0, true, msg);
    return dead_error(s, ei);
}

static bool is_peer_id(const rp_yamux *s, uint32_t id)
{
    /* The dialer (client) uses odd ids, the listener even ones. */
    return s->client ? (id & 1) == 0 : (id & 1) == 1;
}

static int on_stream_frame(rp_yamux *s, const rp_yamux_hdr *h, uint64_t now, ringp2p_errinfo *ei)
{
    const char *what = h->type == RP_YAMUX_TYPE_DATA ? "data frame" : "window update";
    uint32_t id = h->stream_id;
    if (id == 0) return proto_error(s, ei, "%s on stream 0", what);
    bool peer = is_peer_id(s, id);
    rp_yamux_stream *st = map_get(s, id);
    if (st != NULL && (st->flags & ST_TERMINAL)) {
        /* Reset by us, RST not yet sent: frames are late, but the id is not free. */
        if (h->flags & RP_YAMUX_FLAG_SYN)
            return proto_error(s, ei, "SYN reuses stream %u before our RST", id);
        st = NULL;
    }

    if (h->flags & RP_YAMUX_FLAG_SYN) {
        if (!peer) return proto_error(s, ei, "peer opened stream %u, an id of ours", id);
        if (st != NULL) return proto_error(s, ei, "duplicate SYN for open stream %u", id);
        if (id <= s->max_peer_id && ctl_has_rst(s, id))
            return proto_error(s, ei, "SYN reuses stream %u before our RST", id);
        if (id > s->max_peer_id) s->max_peer_id = id;
        if (!s->local_goaway && s->n_inbound < s->cfg.max_inbound_streams &&
            s->n_backlog < s->cfg.accept_backlog)
            st = stream_new(s, id, ST_IN_BACKLOG);
        if (st == NULL) {
            /* Over a limit, going away, or out of memory: refuse, do not obey. */
            ctl_push(s, RP_YAMUX_TYPE_WINDOW_UPDATE, RP_YAMUX_FLAG_RST, id, 0);
        } else {
            s->n_inbound++;
            s->n_backlog++;
            ev_push(s, RP_YAMUX_EV_STREAM_OPENED, st);
        }
    } else if (st == NULL) {
        bool never = peer ? id > s->max_peer_id : (uint64_t)id >= s->next_id;
        if (never) return proto_error(s, ei, "%s for stream %u, never opened", what, id);
        /* Else a stream that finished: late frames (the peer has not seen our RST) are dropped. */
    }
    if (st != NULL && (h->flags & RP_YAMUX_FLAG_ACK) && (st->flags & ST_OUTBOUND))
        leave_open_backlog(s, st);

    if (h->type == RP_YAMUX_TYPE_WINDOW_UPDATE) {
        if (st == NULL) return 0;
        if (!(h->flags & RP_YAMUX_FLAG_RST)) {
            /* The peer's view of our window is what we may still send plus what is queued. */
            uint64_t win = st->send_credit + st->queued + h->length;
            if (win > UINT32_MAX)
                return proto_error(s, ei,
                                   "window update of %u on stream %u overflows the window (%llu)",
                                   h->length, id, (unsigned long long)(win - h->length));
            st->send_credit += h->length;
            if (h->length != 0) stream_check_writable(s, st);
        }
        /* The length of a RST window update is an error code (go-yamux). */
        stream_apply_close_flags(s, st, h->flags, h->length);
        return 0;
    }

    if (st != NULL) {
        if ((st->flags & ST_FIN_RECV) && h->length != 0)
            return proto_error(s, ei, "data on stream %u after its FIN", id);
        if (h->length > st->recv_credit)
            return proto_error(s, ei,
                               "stream %u: data frame of %u bytes exceeds the receive window "
                               "(%llu left)",
                               id, h->length, (unsigned long long)st->recv_credit);
        st->recv_credit -= h->length;
        st->recv_pending += h->length;
        if (!(st->flags & ST_EPOCH)) {
            st->epoch_ns = now;
            st->flags |= ST_EPOCH;
        }
    }
    if (h->length == 0) {
        if (st != NULL) stream_apply_close_flags(s, st, h->flags, 0);
        return 0;
    }
    s->rx_active = true;
    s->rx_remaining = h->length;
    s->rx_stream = st;
    s->rx_flags = h->flags;
    return 0;
}

static int on_frame(rp_yamux *s, const uint8_t *p, uint64_t now, ringp2p_errinfo *ei)
{
    rp_yamux_hdr h;
    hdr_parse(p, &h);
    if (h.version != RP_YAMUX_VERSION)
        return proto_error(s, ei, "version %u unsupported (type %u, stream %u)", h.version, h.type,
                           h.stream_id);
    switch (h.type) {
    case RP_YAMUX_TYPE_DATA:
    case RP_YAMUX_TYPE_WINDOW_UPDATE: return on_stream_frame(s, &h, now, ei);
    case RP_YAMUX_TYPE_PING: return on_ping(s, &h, now, ei);
    case RP_YAMUX_TYPE_GO_AWAY: return on_go_away(s, &h, ei);
    default: return proto_error(s, ei, "frame type %u unknown", h.type);
    }
}

static void deliver(rp_yamux *s, const uint8_t *data, size_t len, uint64_t now)
{
    rp_yamux_stream *st = s->rx_stream;
    if (st == NULL) return;
    st->recv_pending -= len;
    rp_yamux_event *e = ev_push(s, RP_YAMUX_EV_STREAM_DATA, st);
    if (e == NULL) {
        /* Released: nobody reads, so the bytes count as consumed at once. */
        stream_update_window(s, st, now);
        return;
    }
    e->data = data;
    e->len = len;
    st->recv_buffered += len;
}

/*
 * Events one step may queue: a header (opened + fin/reset, go-away, rtt) or
 * a payload piece (data + fin/reset at its end).
 */
#define EV_PER_STEP 3

int rp_yamux_receive(rp_yamux *s, const uint8_t **src, const uint8_t *end, uint64_t now_ns,
                     ringp2p_errinfo *ei)
{
    if (s->dead) return dead_error(s, ei);
    s->now_ns = now_ns;
    const uint8_t *p = *src;
    while (p < end) {
        if (!ev_room(s, EV_PER_STEP) || s->ctl_count == RP_YAMUX_CTRL_QUEUE) {
            *src = p;
            return rp_err(ei, RINGP2P_EAGAIN, "yamux: event or control queue full");
        }
        if (s->rx_active) {
            size_t take = (size_t)(end - p);
            if (take > s->rx_remaining) take = s->rx_remaining;
            deliver(s, p, take, now_ns);
            p += take;
            s->rx_remaining -= (uint32_t)take;
            if (s->rx_remaining == 0) {
                rp_yamux_stream *st = s->rx_stream;
                s->rx_active = false;
                s->rx_stream = NULL;
                if (st != NULL) stream_apply_close_flags(s, st, s->rx_flags, 0);
            }
            continue;
        }
        const uint8_t *start = p, *hp;
        if (s->hdr_have == 0 && end - p >= RP_YAMUX_HEADER_LEN) {
            hp = p;
            p += RP_YAMUX_HEADER_LEN;
        } else {
            size_t take = RP_YAMUX_HEADER_LEN - s->hdr_have;
            if (take > (size_t)(end - p)) take = (size_t)(end - p);
            memcpy(s->hdr + s->hdr_have, p, take);
            s->hdr_have = (uint8_t)(s->hdr_have + take);
            p += take;
            if (s->hdr_have < RP_YAMUX_HEADER_LEN) break;
            s->hdr_have = 0;
            hp = s->hdr;
        }
        int r = on_frame(s, hp, now_ns, ei);
        if (r < 0) {
            *src = start;
            return r;
        }
    }
    *src = p;
    return 0;
}

bool rp_yamux_next_event(rp_yamux *s, rp_yamux_event *ev)
{
    while (s->ev_count != 0) {
        rp_yamux_event e = s->ev[s->ev_head];
        s->ev_head = (s->ev_head + 1) % RP_YAMUX_EVENT_QUEUE;
        s->ev_count--;
        rp_yamux_stream *st = e.stream;
        if (st != NULL) {
            st->nev--;
            if (st->flags & ST_RELEASED) {
                stream_maybe_free(s, st);
                continue;
            }
            e.user = st->user;
        }
        *ev = e;
        return true;
    }
    memset(ev, 0, sizeof(*ev));
    if (!ylist_empty(&s->wr)) {
        rp_yamux_stream *st = YSTREAM(s->wr.next, wr);
        yunlink(&st->wr);
        ev->type = RP_YAMUX_EV_STREAM_WRITABLE;
        ev->stream = st;
        ev->user = st->user;
        return true;
    }
    if (s->ev_open_ready) {
        s->ev_open_ready = false;
        ev->type = RP_YAMUX_EV_OPEN_READY;
        return true;
    }
    if (s->ev_ping_timeout) {
        s->ev_ping_timeout = false;
        ev->type = RP_YAMUX_EV_PING_TIMEOUT;
        return true;
    }
    if (s->ev_fatal) {
        s->ev_fatal = false;
        ev->type = RP_YAMUX_EV_SESSION_ERROR;
        ev->err = s->err;
        return true;
    }
    return false;
}

/* ---- send ----------------------------------------------------------------------------------- */

typedef struct emitter {
    rp_yamux_out *out;
    size_t budget;
    size_t bytes;
    bool last_is_hdr; /* the last iov is a span of out->hdr that the next header may extend */
} emitter;

static bool emit_hdr(emitter *e, uint8_t type, uint16_t flags, uint32_t id, uint32_t length)
{
    rp_yamux_out *o = e->out;
    if (o->hdr_cap - o->hdr_len < RP_YAMUX_HEADER_LEN || e->budget - e->bytes < RP_YAMUX_HEADER_LEN)
        return false;
    if (!e->last_is_hdr && o->niov == o->iov_cap) return false;
    uint8_t *dst = o->hdr + o->hdr_len;
    hdr_write(dst, type, flags, id, length);
    o->hdr_len += RP_YAMUX_HEADER_LEN;
    e->bytes += RP_YAMUX_HEADER_LEN;
    if (e->last_is_hdr) {
        o->iov[o->niov - 1].len += RP_YAMUX_HEADER_LEN;
    } else {
        o->iov[o->niov++] = rp_iov_make(dst, RP_YAMUX_HEADER_LEN);
        e->last_is_hdr = true;
    }
    return true;
}

/* Emits every control frame; false if one did not fit. */
static bool emit_control(rp_yamux *s, emitter *e, uint64_t now)
{
    if (s->ping_pending) {
        if (!emit_hdr(e, RP_YAMUX_TYPE_PING, RP_YAMUX_FLAG_SYN, 0, s->ping_id)) return false;
        s->ping_pending = false;
        s->ping_active = true;
        /* The clock starts when the ping leaves, not when it was asked for (go-yamux). */
        s->ping_sent_ns = now;
    }
    while (s->ctl_count != 0) {
        const rp_yamux_hdr *h = &s->ctl[s->ctl_head];
        if (!emit_hdr(e, h->type, h->flags, h->stream_id, h->length)) return false;
        s->ctl_head = (s->ctl_head + 1) % RP_YAMUX_CTRL_QUEUE;
        s->ctl_count--;
    }
    if (s->goaway_pending) {
        if (!emit_hdr(e, RP_YAMUX_TYPE_GO_AWAY, 0, 0, s->goaway_code)) return false;
        s->goaway_pending = false;
    }
    while (!ylist_empty(&s->ctrl)) {
        rp_yamux_stream *st = YSTREAM(s->ctrl.next, ctrl);
        uint16_t flags = 0;
        uint32_t len = 0;
        if (st->flags & ST_RST_PENDING) {
            flags = RP_YAMUX_FLAG_RST;
        } else {
            if ((st->flags & (ST_SYN_PENDING | ST_ACK_PENDING)) && st->queued != 0 &&
                st->wu_pending == 0) {
                /* The SYN/ACK rides on the stream's first data frame instead. */
                yunlink(&st->ctrl);
                continue;
            }
            if (st->flags & ST_SYN_PENDING) flags |= RP_YAMUX_FLAG_SYN;
            if (st->flags & ST_ACK_PENDING) flags |= RP_YAMUX_FLAG_ACK;
            /* FIN never rides on a data frame (see yamux.h): js drops such a payload. */
            if ((st->flags & ST_FIN_QUEUED) && !(st->flags & ST_FIN_SENT) && st->queued == 0)
                flags |= RP_YAMUX_FLAG_FIN;
            len = (uint32_t)st->wu_pending;
            if (flags == 0 && len == 0) {
                yunlink(&st->ctrl);
                stream_maybe_free(s, st);
                continue;
            }
        }
        if (!emit_hdr(e, RP_YAMUX_TYPE_WINDOW_UPDATE, flags, st->id, len)) return false;
        yunlink(&st->ctrl);
        if (flags & RP_YAMUX_FLAG_RST) {
            st->flags &= ~(uint32_t)ST_RST_PENDING;
            map_leave(s, st);
        } else {
            st->flags &= ~(uint32_t)(ST_SYN_PENDING | ST_ACK_PENDING);
            st->wu_pending = 0;
            if (flags & RP_YAMUX_FLAG_FIN) st->flags |= ST_FIN_SENT;
        }
        stream_check_done(s, st);
    }
    return true;
}

/* Emits one data frame of the stream at the head of the round-robin queue; false if none fits. */
static bool emit_data(rp_yamux *s, emitter *e, rp_yamux_stream *st)
{
    rp_yamux_out *o = e->out;
    size_t room = e->budget - e->bytes;
    if (room <= RP_YAMUX_HEADER_LEN || o->hdr_cap - o->hdr_len < RP_YAMUX_HEADER_LEN) return false;
    size_t iov_free = o->iov_cap - o->niov + (e->last_is_hdr ? 1 : 0);
    if (iov_free < 2) return false;
    size_t pieces = iov_free - 1;
    uint64_t max = st->queued;
    if (max > s->cfg.max_frame) max = s->cfg.max_frame;
    if (max > room - RP_YAMUX_HEADER_LEN) max = room - RP_YAMUX_HEADER_LEN;

    /* Size the frame: as much as fits in `max` bytes and `pieces` iovs. */
    size_t len = 0, off = st->seg_off;
    for (uint32_t i = 0, idx = st->seg_head; i < st->seg_count && i < pieces && len < max; i++) {
        size_t take = st->segs[idx].len - off;
        if (take > max - len) take = (size_t)(max - len);
        len += take;
        off = 0;
        idx = (idx + 1) % RP_YAMUX_STREAM_SEGS;
    }
    assert(len > 0);

    uint16_t flags = 0;
    if (st->flags & ST_SYN_PENDING) flags |= RP_YAMUX_FLAG_SYN;
    if (st->flags & ST_ACK_PENDING) flags |= RP_YAMUX_FLAG_ACK;
    bool ok = emit_hdr(e, RP_YAMUX_TYPE_DATA, flags, st->id, (uint32_t)len);
    assert(ok);
    (void)ok;
    st->flags &= ~(uint32_t)(ST_SYN_PENDING | ST_ACK_PENDING);

    bool freed_seg = false;
    for (size_t left = len; left != 0;) {
        rp_iov *seg = &st->segs[st->seg_head];
        size_t take = seg->len - st->seg_off;
        if (take > left) take = left;
        o->iov[o->niov++] = rp_iov_make((const uint8_t *)seg->base + st->seg_off, take);
        left -= take;
        st->seg_off += take;
        if (st->seg_off == seg->len) {
            st->seg_head = (st->seg_head + 1) % RP_YAMUX_STREAM_SEGS;
            st->seg_count--;
            st->seg_off = 0;
            freed_seg = true;
        }
    }
    e->last_is_hdr = false;
    e->bytes += len;
    st->queued -= len;
    st->emitted += len;

    yunlink(&st->data);
    if (st->queued != 0) {
        ylist_append(&s->data, &st->data); /* to the back: round robin */
    } else if (st->flags & ST_FIN_QUEUED) {
        ctrl_link(s, st);
    } else {
        stream_maybe_free(s, st);
    }
    if (freed_seg) stream_check_writable(s, st);
    return true;
}

bool rp_yamux_want_send(const rp_yamux *s)
{
    if (s->dead) return s->goaway_pending;
    return s->ping_pending || s->ctl_count != 0 || s->goaway_pending || !ylist_empty(&s->ctrl) ||
           !ylist_empty(&s->data);
}

ssize_t rp_yamux_send(rp_yamux *s, rp_yamux_out *out, uint64_t now_ns)
{
    if (out == NULL || (out->hdr == NULL && out->hdr_cap != 0) ||
        (out->iov == NULL && out->iov_cap != 0))
        return RINGP2P_EINVAL;
    out->hdr_len = 0;
    out->niov = 0;
    if (!rp_yamux_want_send(s)) return 0;
    s->now_ns = now_ns;
    emitter e = { out, out->max_bytes ? out->max_bytes : SIZE_MAX, 0, false };
    if (s->dead) {
        if (!emit_hdr(&e, RP_YAMUX_TYPE_GO_AWAY, 0, 0, s->goaway_code)) return RINGP2P_ENOBUF;
        s->goaway_pending = false;
        return (ssize_t)e.bytes;
    }
    while (emit_control(s, &e, now_ns) && !ylist_empty(&s->data)) {
        if (!emit_data(s, &e, YSTREAM(s->data.next, data))) break;
    }
    /* Nothing left pending (e.g. a SYN waiting to ride on data) is not a full buffer. */
    if (e.bytes == 0 && rp_yamux_want_send(s)) return RINGP2P_ENOBUF;
    return (ssize_t)e.bytes;
}

/* ---- timers --------------------------------------------------------------------------------- */

uint64_t rp_yamux_next_timeout(const rp_yamux *s)
{
    if (s->dead) return UINT64_MAX;
    if (s->ping_active) return s->ping_sent_ns + s->cfg.ping_timeout_ns;
    if (s->ping_pending || s->cfg.ping_interval_ns == 0) return UINT64_MAX;
    return s->next_ping_ns;
}

void rp_yamux_on_timeout(rp_yamux *s, uint64_t now_ns)
{
    if (s->dead) return;
    s->now_ns = now_ns;
    if (s->ping_active && now_ns >= s->ping_sent_ns &&
        now_ns - s->ping_sent_ns >= s->cfg.ping_timeout_ns) {
        s->ping_active = false;
        s->ev_ping_timeout = true;
        s->next_ping_ns = now_ns + s->cfg.ping_interval_ns;
    }
    if (!s->ping_active && !s->ping_pending && s->cfg.ping_interval_ns != 0 &&
        now_ns >= s->next_ping_ns) {
        s->ping_id++;
        s->ping_pending = true;
    }
}

int rp_yamux_ping(rp_yamux *s)
{
    if (s->dead) return s->err;
    if (!s->ping_active && !s->ping_pending) {
        s->ping_id++;
        s->ping_pending = true;
    }
    return 0;
}

int rp_yamux_go_away(rp_yamux *s, uint32_t code)
{
    if (s->dead) return s->err;
    if (code == RP_YAMUX_GOAWAY_NORMAL) {
        if (!s->local_goaway) s->goaway_pending = true;
        s->local_goaway = true;
        s->goaway_code = code;
        return 0;
    }
    char msg[80];
    snprintf(msg, sizeof(msg), "yamux: session closed with go-away code %u", code);
    session_die(s, RINGP2P_ECLOSED, true, code, false, msg);
    return 0;
}

/* ---- streams -------------------------------------------------------------------------------- */

int rp_yamux_open(rp_yamux *s, void *user, rp_yamux_stream **out)
{
    if (s->dead) return s->err;
    if (s->remote_goaway) return RINGP2P_EGOAWAY;
    if (s->local_goaway) return RINGP2P_ECLOSED;
    if (s->n_open_backlog >= s->cfg.open_backlog) {
        s->want_open = true;
        return RINGP2P_EAGAIN;
    }
    if (s->next_id > UINT32_MAX) return RINGP2P_ELIMIT;
    rp_yamux_stream *st =
        stream_new(s, (uint32_t)s->next_id, ST_OUTBOUND | ST_SYN_PENDING | ST_OPEN_BACKLOG);
    if (st == NULL) return RINGP2P_ENOMEM;
    s->next_id += 2;
    s->n_open_backlog++;
    st->user = user;
    ctrl_link(s, st);
    *out = st;
    return 0;
}

int rp_yamux_stream_accept(rp_yamux_stream *st, void *user)
{
    rp_yamux *s = st->s;
    if (s->dead) return s->err;
    if (st->flags & (ST_OUTBOUND | ST_ACCEPTED)) return RINGP2P_EINVAL;
    if (st->flags & ST_RESET) return RINGP2P_ESTREAMRESET;
    st->user = user;
    stream_accept(s, st);
    return 0;
}

static int stream_write_state(const rp_yamux_stream *st)
{
    if (st->s->dead) return st->s->err;
    if (st->flags & ST_RESET) return RINGP2P_ESTREAMRESET;
    if (st->flags & (ST_FIN_QUEUED | ST_FIN_SENT | ST_TERMINAL | ST_RELEASED))
        return RINGP2P_ECLOSED;
    return 0;
}

ssize_t rp_yamux_stream_write(rp_yamux_stream *st, const void *data, size_t len)
{
    rp_yamux *s = st->s;
    int r = stream_write_state(st);
    if (r < 0) return r;
    if (len == 0) return 0;
    if (data == NULL) return RINGP2P_EINVAL;
    if (!(st->flags & (ST_OUTBOUND | ST_ACCEPTED))) stream_accept(s, st);
    size_t n = len;
    if (n > st->send_credit) n = (size_t)st->send_credit;
    if (n == 0) {
        st->flags |= ST_WANT_WRITABLE;
        return 0;
    }
    rp_iov *last =
        st->seg_count ? &st->segs[(st->seg_head + st->seg_count - 1) % RP_YAMUX_STREAM_SEGS] : NULL;
    if (last != NULL && (const uint8_t *)last->base + last->len == (const uint8_t *)data) {
        last->len += n; /* the continuation of the previous write: one segment */
    } else if (st->seg_count < RP_YAMUX_STREAM_SEGS) {
        st->segs[(st->seg_head + st->seg_count) % RP_YAMUX_STREAM_SEGS] = rp_iov_make(data, n);
        st->seg_count++;
    } else {
        st->flags |= ST_WANT_WRITABLE;
        return 0;
    }
    st->send_credit -= n;
    st->queued += n;
    if (!ylinked(&st->data)) ylist_append(&s->data, &st->data);
    if (n < len) st->flags |= ST_WANT_WRITABLE;
    return (ssize_t)n;
}

size_t rp_yamux_stream_writable(rp_yamux_stream *st)
{
    size_t n = stream_writable_now(st);
    if (n == 0 && stream_write_state(st) == 0) st->flags |= ST_WANT_WRITABLE;
    return n;
}

int rp_yamux_stream_close(rp_yamux_stream *st)
{
    rp_yamux *s = st->s;
    if (s->dead) return s->err;
    if (st->flags & ST_RESET) return RINGP2P_ESTREAMRESET;
    if (st->flags & (ST_FIN_QUEUED | ST_TERMINAL)) return 0;
    if (!(st->flags & (ST_OUTBOUND | ST_ACCEPTED))) stream_accept(s, st);
    st->flags |= ST_FIN_QUEUED;
    st->flags &= ~(uint32_t)ST_WANT_WRITABLE;
    yunlink(&st->wr);
    if (st->queued == 0) ctrl_link(s, st);
    return 0;
}

int rp_yamux_stream_reset(rp_yamux_stream *st)
{
    rp_yamux *s = st->s;
    if (s->dead || (st->flags & ST_TERMINAL)) return 0;
    /* An outbound stream whose SYN never left is unknown to the peer: nothing to send. */
    bool announced = !(st->flags & ST_SYN_PENDING);
    st->flags |= ST_RESET;
    st->flags &= ~(uint32_t)(ST_SYN_PENDING | ST_ACK_PENDING);
    st->wu_pending = 0;
    stream_drop_data(st);
    if (announced) {
        st->flags |= ST_RST_PENDING;
        ctrl_link(s, st);
    } else {
        yunlink(&st->ctrl);
    }
    stream_finish(s, st);
    stream_maybe_free(s, st);
    return 0;
}

int rp_yamux_stream_consumed(rp_yamux_stream *st, size_t n, uint64_t now_ns)
{
    if (n > st->recv_buffered) return RINGP2P_EINVAL;
    st->recv_buffered -= n;
    rp_yamux *s = st->s;
    s->now_ns = now_ns;
    if (!s->dead) stream_update_window(s, st, now_ns);
    return 0;
}

void rp_yamux_stream_release(rp_yamux_stream *st)
{
    if (st == NULL) return;
    rp_yamux *s = st->s;
    if (!s->dead && !(st->flags & ST_TERMINAL)) {
        if (!(st->flags & (ST_OUTBOUND | ST_ACCEPTED))) {
            /* Never accepted: the application declines it. */
            rp_yamux_stream_reset(st);
        } else {
            rp_yamux_stream_close(st);
            st->recv_buffered = 0;
            stream_update_window(s, st, s->now_ns);
        }
    }
    st->flags |= ST_RELEASED;
    st->flags &= ~(uint32_t)ST_WANT_WRITABLE;
    yunlink(&st->wr);
    stream_maybe_free(s, st);
}

uint32_t rp_yamux_stream_id(const rp_yamux_stream *st)
{
    return st->id;
}

void *rp_yamux_stream_user(const rp_yamux_stream *st)
{
    return st->user;
}

void rp_yamux_stream_set_user(rp_yamux_stream *st, void *user)
{
    st->user = user;
}

uint64_t rp_yamux_stream_send_window(const rp_yamux_stream *st)
{
    return st->send_credit;
}

uint32_t rp_yamux_stream_recv_window(const rp_yamux_stream *st)
{
    return st->recv_window;
}

uint64_t rp_yamux_stream_emitted(const rp_yamux_stream *st)
{
    return st->emitted;
}

uint64_t rp_yamux_stream_queued(const rp_yamux_stream *st)
{
    return st->queued;
}
