#include "muxer/mplex.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/varint.h"

typedef struct seg {
    const uint8_t *p;
    size_t len;
} seg;

struct rp_mplex_stream {
    rp_mplex *s;
    uint64_t id;
    bool local; /* we are the initiator */
    void *user;
    bool accepted, released;
    bool need_open;     /* NewStream not yet emitted */
    bool write_closed;  /* close() or release(): Close follows the queued data */
    bool close_sent;    /* our direction is finished on the wire */
    bool remote_closed; /* the peer's direction is finished */
    bool reset;         /* by either side: both directions finished */
    bool rst_pending;   /* our Reset is still to be emitted */
    bool want_writable; /* write refused bytes: report WRITABLE when some are emitted */
    /* Membership; list entries are removed lazily when popped. */
    bool in_map, in_urgent, in_active, in_writable;
    uint64_t unconsumed, emitted, queued;
    seg segs[RP_MPLEX_STREAM_SEGS];
    unsigned seg_head, seg_n;
    rp_mplex_stream *hnext;               /* hash chain */
    rp_mplex_stream *unext;               /* urgent list: NewStream, Reset */
    rp_mplex_stream *anext;               /* active list: data, Close (round-robin) */
    rp_mplex_stream *wnext;               /* streams owed a WRITABLE event */
    rp_mplex_stream *all_prev, *all_next; /* every allocated stream */
};

typedef struct slist {
    rp_mplex_stream *head, *tail;
} slist;

struct rp_mplex {
    rp_mplex_config cfg;
    int error;
    ringp2p_errinfo error_info;
    /* Streams by (id, local); chained, power-of-two buckets. */
    rp_mplex_stream **buckets;
    size_t nbuckets, nstreams, n_inbound, n_outbound;
    rp_mplex_stream *all;
    uint64_t next_id;
    /* Receive state: a header split across inputs, or the rest of a payload. */
    uint8_t hbuf[RP_MPLEX_HEADER_MAX];
    size_t hlen;
    uint32_t remaining;
    rp_mplex_stream *target; /* payload goes to it as data events; NULL: skipped */
    /*
     * The stream whose message (header consumed, `remaining` bytes of payload
     * to come, target NULL) waits for room; NULL when not blocked. Reset and
     * release clear it, so it never dangles.
     */
    rp_mplex_stream *blocked;
    uint64_t blocked_since;      /* the wait began, or the stream last made progress */
    uint64_t blocked_unconsumed; /* the stream's unconsumed bytes at blocked_since */
    /* Events; one slot beyond RP_MPLEX_EVENT_QUEUE is kept for SESSION_ERROR. */
    rp_mplex_event ev[RP_MPLEX_EVENT_QUEUE + 1];
    size_t ev_head, ev_n;
    /* Ids of refused inbound streams, owed a Reset. */
    uint64_t ctrl[RP_MPLEX_CTRL_QUEUE];
    size_t ctrl_head, ctrl_n;
    slist urgent, active, writable;
};

/* ---- header codec ---------------------------------------------------------------------------- */

int rp_mplex_hdr_decode(const uint8_t **src, const uint8_t *end, rp_mplex_hdr *h,
                        ringp2p_errinfo *ei)
{
    const uint8_t *p = *src;
    uint64_t v, len;
    int r = rp_uvarint_decode(&p, end, &v);
    if (r == RINGP2P_ETRUNCATED) return r;
    if (r < 0) return rp_err(ei, r, "mplex: malformed header varint");
    if ((v & 7) == 7) return rp_err(ei, RINGP2P_EPROTOCOL, "mplex: unknown flag 7");
    const uint8_t *q = p;
    r = rp_uvarint_decode(&q, end, &len);
    if (r == RINGP2P_ETRUNCATED) {
        /* Three bytes that all continue already mean at least 2^21: too long, say so now. */
        if (end - p >= 3)
            return rp_err(ei, RINGP2P_EPROTOCOL, "mplex: message length exceeds %u",
                          (unsigned)RP_MPLEX_MAX_MSG);
        return r;
    }
    if (r < 0) return rp_err(ei, r, "mplex: malformed length varint");
    if (len > RP_MPLEX_MAX_MSG)
        return rp_err(ei, RINGP2P_EPROTOCOL, "mplex: message of %llu bytes exceeds %u",
                      (unsigned long long)len, (unsigned)RP_MPLEX_MAX_MSG);
    h->id = v >> 3;
    h->flag = (uint8_t)(v & 7);
    h->length = (uint32_t)len;
    *src = q;
    return 0;
}

ssize_t rp_mplex_hdr_encode(uint8_t *dst, size_t cap, const rp_mplex_hdr *h)
{
    if (h->id > RP_MPLEX_MAX_STREAM_ID || h->flag > RP_MPLEX_RESET_INITIATOR ||
        h->length > RP_MPLEX_MAX_MSG)
        return RINGP2P_EINVAL;
    rp_wbuf w = rp_wbuf_make(dst, cap);
    rp_wbuf_uvarint(&w, h->id << 3 | h->flag);
    rp_wbuf_uvarint(&w, h->length);
    return rp_wbuf_result(&w);
}

/* ---- config ---------------------------------------------------------------------------------- */

void rp_mplex_config_default(rp_mplex_config *cfg)
{
    cfg->max_stream_buffer = RP_MPLEX_MAX_STREAM_BUFFER_DEFAULT;
    cfg->max_inbound_streams = RP_MPLEX_MAX_INBOUND_STREAMS_DEFAULT;
    cfg->max_outbound_streams = RP_MPLEX_MAX_OUTBOUND_STREAMS_DEFAULT;
    cfg->max_frame = RP_MPLEX_MAX_FRAME_DEFAULT;
    cfg->max_queued = RP_MPLEX_MAX_QUEUED_DEFAULT;
    cfg->block_timeout_ns = RP_MPLEX_BLOCK_TIMEOUT_NS_DEFAULT;
}

int rp_mplex_new(const rp_mplex_config *cfg, rp_mplex **out)
{
    rp_mplex_config c;
    if (cfg != NULL)
        c = *cfg;
    else
        rp_mplex_config_default(&c);
    if (c.max_stream_buffer < RP_MPLEX_MAX_MSG || c.max_outbound_streams == 0 || c.max_frame == 0 ||
        c.max_frame > RP_MPLEX_MAX_MSG || c.max_queued == 0)
        return RINGP2P_EINVAL;
    rp_mplex *s = calloc(1, sizeof(*s));
    if (s == NULL) return RINGP2P_ENOMEM;
    s->cfg = c;
    s->nbuckets = 64;
    s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
    if (s->buckets == NULL) {
        free(s);
        return RINGP2P_ENOMEM;
    }
    *out = s;
    return 0;
}

void rp_mplex_free(rp_mplex *s)
{
    if (s == NULL) return;
    for (rp_mplex_stream *st = s->all, *n; st != NULL; st = n) {
        n = st->all_next;
        free(st);
    }
    free(s->buckets);
    free(s);
}

/* ---- stream table ---------------------------------------------------------------------------- */

static size_t bucket_of(const rp_mplex *s, uint64_t id, bool local)
{
    uint64_t k = (id << 1 | (local ? 1u : 0u)) * UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(k >> 32) & (s->nbuckets - 1);
}

static rp_mplex_stream *map_find(const rp_mplex *s, uint64_t id, bool local)
{
    for (rp_mplex_stream *st = s->buckets[bucket_of(s, id, local)]; st != NULL; st = st->hnext)
        if (st->id == id && st->local == local) return st;
    return NULL;
}

static int map_insert(rp_mplex *s, rp_mplex_stream *st)
{
    if (s->nstreams >= s->nbuckets) {
        size_t nb = s->nbuckets * 2;
        rp_mplex_stream **b = calloc(nb, sizeof(*b));
        if (b == NULL) return RINGP2P_ENOMEM;
        rp_mplex_stream **old = s->buckets;
        size_t on = s->nbuckets;
        s->buckets = b;
        s->nbuckets = nb;
        for (size_t i = 0; i < on; i++) {
            for (rp_mplex_stream *x = old[i], *n; x != NULL; x = n) {
                n = x->hnext;
                size_t j = bucket_of(s, x->id, x->local);
                x->hnext = b[j];
                b[j] = x;
            }
        }
        free(old);
    }
    size_t j = bucket_of(s, st->id, st->local);
    st->hnext = s->buckets[j];
    s->buckets[j] = st;
    st->in_map = true;
    s->nstreams++;
    if (st->local)
        s->n_outbound++;
    else
        s->n_inbound++;
    return 0;
}

static void map_remove(rp_mplex *s, rp_mplex_stream *st)
{
    if (!st->in_map) return;
    for (rp_mplex_stream **pp = &s->buckets[bucket_of(s, st->id, st->local)]; *pp != NULL;
         pp = &(*pp)->hnext) {
        if (*pp == st) {
            *pp = st->hnext;
            break;
        }
    }
    st->in_map = false;
    s->nstreams--;
    if (st->local)
        s->n_outbound--;
    else
        s->n_inbound--;
}

static rp_mplex_stream *stream_new(rp_mplex *s, uint64_t id, bool local)
{
    rp_mplex_stream *st = calloc(1, sizeof(*st));
    if (st == NULL) return NULL;
    st->s = s;
    st->id = id;
    st->local = local;
    if (map_insert(s, st) < 0) {
        free(st);
        return NULL;
    }
    st->all_next = s->all;
    if (s->all != NULL) s->all->all_prev = st;
    s->all = st;
    return st;
}

/* Frees a released stream once nothing refers to it any more. */
static void maybe_free(rp_mplex_stream *st)
{
    rp_mplex *s = st->s;
    if (!st->released || st->in_map || st->in_urgent || st->in_active || st->in_writable) return;
    if (st->all_prev != NULL)
        st->all_prev->all_next = st->all_next;
    else
        s->all = st->all_next;
    if (st->all_next != NULL) st->all_next->all_prev = st->all_prev;
    free(st);
}

/* Leaves the table once both directions are finished on the wire. */
static void maybe_done(rp_mplex_stream *st)
{
    if (st->in_map && (st->reset || (st->close_sent && st->remote_closed))) map_remove(st->s, st);
}

/* ---- lists (intrusive FIFOs; a stream is in each at most once) ------------------------------ */

#define LIST_PUSH(l, st, link, flag)    \
    do {                                \
        if (!(st)->flag) {              \
            (st)->flag = true;          \
            (st)->link = NULL;          \
            if ((l)->tail != NULL)      \
                (l)->tail->link = (st); \
            else                        \
                (l)->head = (st);       \
            (l)->tail = (st);           \
        }                               \
    } while (0)

#define LIST_POP(l, link, flag)                  \
    do {                                         \
        rp_mplex_stream *p_ = (l)->head;         \
        (l)->head = p_->link;                    \
        if ((l)->head == NULL) (l)->tail = NULL; \
        p_->flag = false;                        \
    } while (0)

/* ---- events ---------------------------------------------------------------------------------- */

static size_t ev_free(const rp_mplex *s)
{
    return s->ev_n >= RP_MPLEX_EVENT_QUEUE ? 0 : RP_MPLEX_EVENT_QUEUE - s->ev_n;
}

static void push_ev(rp_mplex *s, rp_mplex_event_type type, rp_mplex_stream *st, int err,
                    const uint8_t *data, size_t len)
{
    rp_mplex_event *e = &s->ev[(s->ev_head + s->ev_n) % (RP_MPLEX_EVENT_QUEUE + 1)];
    s->ev_n++;
    memset(e, 0, sizeof(*e));
    e->type = type;
    e->stream = st;
    e->err = err;
    e->data = data;
    e->len = len;
}

bool rp_mplex_next_event(rp_mplex *s, rp_mplex_event *ev)
{
    while (s->ev_n > 0) {
        rp_mplex_event *e = &s->ev[s->ev_head];
        s->ev_head = (s->ev_head + 1) % (RP_MPLEX_EVENT_QUEUE + 1);
        s->ev_n--;
        if (e->type == 0) continue; /* its stream was released */
        *ev = *e;
        ev->user = e->stream != NULL ? e->stream->user : NULL;
        return true;
    }
    while (s->writable.head != NULL) {
        rp_mplex_stream *st = s->writable.head;
        LIST_POP(&s->writable, wnext, in_writable);
        if (st->released || st->reset || s->error != 0) {
            maybe_free(st);
            continue;
        }
        memset(ev, 0, sizeof(*ev));
        ev->type = RP_MPLEX_EV_STREAM_WRITABLE;
        ev->stream = st;
        ev->user = st->user;
        return true;
    }
    return false;
}

/* Kills the session: s->error_info is already set. Every stream is gone; released ones are freed.
 */
static int die(rp_mplex *s, int code)
{
    s->error = code;
    s->error_info.code = code;
    push_ev(s, RP_MPLEX_EV_SESSION_ERROR, NULL, code, NULL, 0);
    s->urgent.head = s->urgent.tail = NULL;
    s->active.head = s->active.tail = NULL;
    s->writable.head = s->writable.tail = NULL;
    s->ctrl_n = 0;
    s->blocked = NULL;
    for (rp_mplex_stream *st = s->all, *n; st != NULL; st = n) {
        n = st->all_next;
        map_remove(s, st);
        st->in_urgent = st->in_active = st->in_writable = false;
        st->seg_n = 0;
        st->queued = 0;
        maybe_free(st);
    }
    return code;
}

/* ---- receive --------------------------------------------------------------------------------- */

/* Our reset of a stream (application or buffer limit). The caller reports it if needed. */
static void local_reset(rp_mplex_stream *st)
{
    rp_mplex *s = st->s;
    if (!st->in_map || st->reset) return;
    st->reset = true;
    st->seg_n = 0;
    st->queued = 0;
    if (s->blocked == st) s->blocked = NULL; /* its message is skipped */
    if (st->need_open) {
        st->need_open = false; /* the peer never heard of it: nothing to send */
    } else {
        st->rst_pending = true;
        LIST_PUSH(&s->urgent, st, unext, in_urgent);
    }
    map_remove(s, st);
}

static int start_frame(rp_mplex *s, const rp_mplex_hdr *h, uint64_t now)
{
    /* Even flags come from a stream's initiator: the peer's streams. Odd ones name ours. */
    bool local = (h->flag & 1) != 0;
    rp_mplex_stream *st = h->flag == RP_MPLEX_NEW_STREAM ? NULL : map_find(s, h->id, local);
    s->target = NULL;
    s->remaining = h->length;
    switch (h->flag) {
    case RP_MPLEX_NEW_STREAM:
        if (map_find(s, h->id, false) != NULL) {
            rp_err(&s->error_info, RINGP2P_EPROTOCOL,
                   "mplex: NewStream for stream %llu, which the peer has open already",
                   (unsigned long long)h->id);
            return die(s, RINGP2P_EPROTOCOL);
        }
        if (s->n_inbound >= s->cfg.max_inbound_streams) {
            s->ctrl[(s->ctrl_head + s->ctrl_n) % RP_MPLEX_CTRL_QUEUE] = h->id;
            s->ctrl_n++;
            break;
        }
        st = stream_new(s, h->id, false);
        if (st == NULL) {
            rp_err(&s->error_info, RINGP2P_ENOMEM, NULL);
            return die(s, RINGP2P_ENOMEM);
        }
        push_ev(s, RP_MPLEX_EV_STREAM_OPENED, st, 0, NULL, 0);
        break;
    case RP_MPLEX_MESSAGE_RECEIVER:
    case RP_MPLEX_MESSAGE_INITIATOR:
        if (st == NULL) break; /* finished or reset by us: ignored */
        if (st->remote_closed) {
            rp_err(&s->error_info, RINGP2P_EPROTOCOL,
                   "mplex: message on stream %llu (%s) after the peer closed it",
                   (unsigned long long)h->id, local ? "ours" : "theirs");
            return die(s, RINGP2P_EPROTOCOL);
        }
        if (st->released || h->length == 0) break;
        if (st->unconsumed + h->length > s->cfg.max_stream_buffer) {
            if (s->cfg.block_timeout_ns == 0) {
                local_reset(st);
                push_ev(s, RP_MPLEX_EV_STREAM_RESET, st, RINGP2P_ELIMIT, NULL, 0);
                break;
            }
            s->blocked = st; /* the payload waits; receive reports it */
            s->blocked_since = now;
            s->blocked_unconsumed = st->unconsumed;
            break;
        }
        s->target = st;
        break;
    case RP_MPLEX_CLOSE_RECEIVER:
    case RP_MPLEX_CLOSE_INITIATOR:
        if (st == NULL || st->remote_closed) break;
        st->remote_closed = true;
        if (!st->released) push_ev(s, RP_MPLEX_EV_STREAM_FIN, st, 0, NULL, 0);
        maybe_done(st);
        maybe_free(st);
        break;
    default: /* reset */
        if (st == NULL) break;
        st->reset = true;
        st->seg_n = 0;
        st->queued = 0;
        st->rst_pending = false;
        st->need_open = false; /* a guessed id: the stream need not be announced any more */
        map_remove(s, st);
        if (!st->released) push_ev(s, RP_MPLEX_EV_STREAM_RESET, st, RINGP2P_ESTREAMRESET, NULL, 0);
        maybe_free(st);
        break;
    }
    return 0;
}

/*
 * True while the blocked message still waits: ends it when its stream has
 * room (the payload then goes to the stream) or when the stream made no
 * progress for cfg.block_timeout_ns (the stream is reset, the payload
 * skipped). Reset and release end it themselves.
 */
static bool still_blocked(rp_mplex *s, uint64_t now)
{
    rp_mplex_stream *st = s->blocked;
    if (st == NULL) return false;
    if (st->unconsumed + s->remaining <= s->cfg.max_stream_buffer) {
        s->blocked = NULL;
        s->target = st;
        return false;
    }
    if (st->unconsumed < s->blocked_unconsumed) {
        /* the reader consumed since the last look: a slow reader, not a stuck one */
        s->blocked_since = now;
        s->blocked_unconsumed = st->unconsumed;
    }
    if (now < s->blocked_since || now - s->blocked_since < s->cfg.block_timeout_ns) return true;
    if (ev_free(s) == 0) return true; /* the caller drains events and comes back */
    local_reset(st);
    push_ev(s, RP_MPLEX_EV_STREAM_RESET, st, RINGP2P_ELIMIT, NULL, 0);
    return false;
}

int rp_mplex_receive(rp_mplex *s, const uint8_t **src, const uint8_t *end, uint64_t now_ns,
                     ringp2p_errinfo *ei)
{
    if (s->error != 0) {
        if (ei != NULL) *ei = s->error_info;
        return s->error;
    }
    const uint8_t *p = *src;
    int r = 0;
    if (still_blocked(s, now_ns)) return RINGP2P_EAGAIN;
    while (p < end && r == 0) {
        if (s->remaining > 0) {
            size_t n = (size_t)(end - p) < s->remaining ? (size_t)(end - p) : s->remaining;
            if (s->target != NULL) {
                if (ev_free(s) == 0) {
                    r = RINGP2P_EAGAIN;
                    break;
                }
                push_ev(s, RP_MPLEX_EV_STREAM_DATA, s->target, 0, p, n);
                s->target->unconsumed += n;
            }
            p += n;
            s->remaining -= (uint32_t)n;
            if (s->remaining == 0) s->target = NULL;
            continue;
        }
        /* A message makes at most two events (opened or reset, then data) and one refusal. */
        if (ev_free(s) < 2 || s->ctrl_n == RP_MPLEX_CTRL_QUEUE) {
            r = RINGP2P_EAGAIN;
            break;
        }
        rp_mplex_hdr h;
        int d;
        if (s->hlen == 0) {
            const uint8_t *q = p;
            d = rp_mplex_hdr_decode(&q, end, &h, &s->error_info);
            if (d == 0) p = q;
        } else {
            size_t take = sizeof(s->hbuf) - s->hlen;
            if (take > (size_t)(end - p)) take = (size_t)(end - p);
            memcpy(s->hbuf + s->hlen, p, take);
            const uint8_t *q = s->hbuf;
            d = rp_mplex_hdr_decode(&q, s->hbuf + s->hlen + take, &h, &s->error_info);
            if (d == 0) {
                p += (size_t)(q - s->hbuf) - s->hlen;
                s->hlen = 0;
            }
        }
        if (d == RINGP2P_ETRUNCATED) {
            /* Less than a whole header is left (a truncated one is shorter than the buffer). */
            size_t n = (size_t)(end - p);
            memcpy(s->hbuf + s->hlen, p, n);
            s->hlen += n;
            p = end;
            break;
        }
        if (d < 0) {
            r = die(s, d);
            break;
        }
        r = start_frame(s, &h, now_ns);
        if (r == 0 && still_blocked(s, now_ns)) r = RINGP2P_EAGAIN;
    }
    *src = p;
    if (r < 0 && r != RINGP2P_EAGAIN && ei != NULL) *ei = s->error_info;
    return r;
}

/* ---- send ------------------------------------------------------------------------------------ */

/* Appends one message (header, then `plen` payload bytes at `payload`) if it fits. */
static bool emit(rp_mplex_out *out, size_t *total, uint64_t id, uint8_t flag,
                 const uint8_t *payload, size_t plen)
{
    uint8_t h[RP_MPLEX_HEADER_MAX];
    rp_mplex_hdr hd = { id, flag, (uint32_t)plen };
    ssize_t hl = rp_mplex_hdr_encode(h, sizeof(h), &hd);
    if (hl < 0) return false;
    bool merge =
        out->niov > 0 && (uint8_t *)out->iov[out->niov - 1].base + out->iov[out->niov - 1].len ==
                             out->hdr + out->hdr_len;
    size_t need_iov = (merge ? 0 : 1) + (plen > 0 ? 1 : 0);
    if (out->hdr_cap - out->hdr_len < (size_t)hl || out->iov_cap - out->niov < need_iov)
        return false;
    if (out->max_bytes != 0 && *total + (size_t)hl + plen > out->max_bytes) return false;
    memcpy(out->hdr + out->hdr_len, h, (size_t)hl);
    if (merge)
        out->iov[out->niov - 1].len += (size_t)hl;
    else
        out->iov[out->niov++] = rp_iov_make(out->hdr + out->hdr_len, (size_t)hl);
    out->hdr_len += (size_t)hl;
    if (plen > 0) out->iov[out->niov++] = rp_iov_make(payload, plen);
    *total += (size_t)hl + plen;
    return true;
}

static bool has_work(const rp_mplex_stream *st)
{
    return !st->reset && (st->queued > 0 || (st->write_closed && !st->close_sent));
}

ssize_t rp_mplex_send(rp_mplex *s, rp_mplex_out *out)
{
    if (out == NULL || out->hdr == NULL || out->iov == NULL) return RINGP2P_EINVAL;
    out->hdr_len = 0;
    out->niov = 0;
    if (s->error != 0) return 0;
    size_t total = 0;
    bool stuck = false;
    while (s->ctrl_n > 0) {
        if (!emit(out, &total, s->ctrl[s->ctrl_head], RP_MPLEX_RESET_RECEIVER, NULL, 0)) {
            stuck = true;
            goto done;
        }
        s->ctrl_head = (s->ctrl_head + 1) % RP_MPLEX_CTRL_QUEUE;
        s->ctrl_n--;
    }
    while (s->urgent.head != NULL) {
        rp_mplex_stream *st = s->urgent.head;
        if (st->need_open) {
            if (!emit(out, &total, st->id, RP_MPLEX_NEW_STREAM, NULL, 0)) {
                stuck = true;
                goto done;
            }
            st->need_open = false;
            if (has_work(st)) LIST_PUSH(&s->active, st, anext, in_active);
        } else if (st->rst_pending) {
            uint8_t f = st->local ? RP_MPLEX_RESET_INITIATOR : RP_MPLEX_RESET_RECEIVER;
            if (!emit(out, &total, st->id, f, NULL, 0)) {
                stuck = true;
                goto done;
            }
            st->rst_pending = false;
        }
        LIST_POP(&s->urgent, unext, in_urgent);
        maybe_free(st);
    }
    while (s->active.head != NULL) {
        rp_mplex_stream *st = s->active.head;
        if (!has_work(st)) {
            LIST_POP(&s->active, anext, in_active);
            maybe_free(st);
            continue;
        }
        if (st->queued > 0) {
            seg *g = &st->segs[st->seg_head];
            size_t n = g->len < s->cfg.max_frame ? g->len : s->cfg.max_frame;
            /* Under a byte budget, a shorter message is better than none. */
            if (out->max_bytes != 0) {
                size_t room = out->max_bytes > total ? out->max_bytes - total : 0;
                room = room > RP_MPLEX_HEADER_MAX ? room - RP_MPLEX_HEADER_MAX : 0;
                if (n > room) n = room;
            }
            uint8_t f = st->local ? RP_MPLEX_MESSAGE_INITIATOR : RP_MPLEX_MESSAGE_RECEIVER;
            if (n == 0 || !emit(out, &total, st->id, f, g->p, n)) {
                stuck = true;
                goto done;
            }
            g->p += n;
            g->len -= n;
            if (g->len == 0) {
                st->seg_head = (st->seg_head + 1) % RP_MPLEX_STREAM_SEGS;
                st->seg_n--;
            }
            st->queued -= n;
            st->emitted += n;
            if (st->want_writable) {
                st->want_writable = false;
                LIST_PUSH(&s->writable, st, wnext, in_writable);
            }
        } else {
            uint8_t f = st->local ? RP_MPLEX_CLOSE_INITIATOR : RP_MPLEX_CLOSE_RECEIVER;
            if (!emit(out, &total, st->id, f, NULL, 0)) {
                stuck = true;
                goto done;
            }
            st->close_sent = true;
        }
        /* Round-robin: one message per stream per turn. */
        LIST_POP(&s->active, anext, in_active);
        if (has_work(st)) LIST_PUSH(&s->active, st, anext, in_active);
        maybe_done(st);
        maybe_free(st);
    }
done:
    if (total == 0 && stuck) return RINGP2P_ENOBUF;
    return (ssize_t)total;
}

rp_mplex_stream *rp_mplex_blocked(const rp_mplex *s, uint64_t *since_ns)
{
    if (s->blocked != NULL && since_ns != NULL) *since_ns = s->blocked_since;
    return s->blocked;
}

uint64_t rp_mplex_next_timeout(const rp_mplex *s)
{
    if (s->blocked == NULL) return UINT64_MAX;
    uint64_t t = s->blocked_since + s->cfg.block_timeout_ns;
    return t < s->blocked_since ? UINT64_MAX - 1 : t;
}

bool rp_mplex_want_send(const rp_mplex *s)
{
    return s->error == 0 && (s->ctrl_n > 0 || s->urgent.head != NULL || s->active.head != NULL);
}

int rp_mplex_error(const rp_mplex *s)
{
    return s->error;
}

size_t rp_mplex_num_streams(const rp_mplex *s)
{
    return s->nstreams;
}

/* ---- streams --------------------------------------------------------------------------------- */

int rp_mplex_open(rp_mplex *s, void *user, rp_mplex_stream **out)
{
    if (s->error != 0) return s->error;
    if (s->n_outbound >= s->cfg.max_outbound_streams || s->next_id > RP_MPLEX_MAX_STREAM_ID)
        return RINGP2P_ELIMIT;
    rp_mplex_stream *st = stream_new(s, s->next_id, true);
    if (st == NULL) return RINGP2P_ENOMEM;
    s->next_id++;
    st->user = user;
    st->accepted = true;
    st->need_open = true;
    LIST_PUSH(&s->urgent, st, unext, in_urgent);
    *out = st;
    return 0;
}

int rp_mplex_stream_accept(rp_mplex_stream *st, void *user)
{
    if (st->s->error != 0) return st->s->error;
    if (st->reset) return RINGP2P_ESTREAMRESET;
    if (st->local || st->accepted) return RINGP2P_EINVAL;
    st->accepted = true;
    st->user = user;
    return 0;
}

static int write_check(const rp_mplex_stream *st)
{
    if (st->s->error != 0) return st->s->error;
    if (st->reset) return RINGP2P_ESTREAMRESET;
    if (st->write_closed) return RINGP2P_ECLOSED;
    return 0;
}

size_t rp_mplex_stream_writable(const rp_mplex_stream *st)
{
    if (write_check(st) != 0 || st->queued >= st->s->cfg.max_queued) return 0;
    return (size_t)(st->s->cfg.max_queued - st->queued);
}

ssize_t rp_mplex_stream_write(rp_mplex_stream *st, const void *data, size_t len)
{
    RP_TRY(write_check(st));
    if (len == 0) return 0;
    size_t n = rp_mplex_stream_writable(st);
    if (n > len) n = len;
    if (n > 0) {
        seg *last =
            st->seg_n > 0 ? &st->segs[(st->seg_head + st->seg_n - 1) % RP_MPLEX_STREAM_SEGS] : NULL;
        if (last != NULL && last->p + last->len == (const uint8_t *)data) {
            last->len += n;
        } else if (st->seg_n < RP_MPLEX_STREAM_SEGS) {
            seg *g = &st->segs[(st->seg_head + st->seg_n) % RP_MPLEX_STREAM_SEGS];
            g->p = data;
            g->len = n;
            st->seg_n++;
        } else {
            n = 0;
        }
    }
    if (n < len) st->want_writable = true;
    if (n > 0) {
        st->queued += n;
        if (!st->need_open) LIST_PUSH(&st->s->active, st, anext, in_active);
    }
    return (ssize_t)n;
}

int rp_mplex_stream_close(rp_mplex_stream *st)
{
    if (st->s->error != 0) return st->s->error;
    if (st->reset) return RINGP2P_ESTREAMRESET;
    if (st->write_closed) return 0;
    st->write_closed = true;
    if (!st->need_open) LIST_PUSH(&st->s->active, st, anext, in_active);
    return 0;
}

int rp_mplex_stream_reset(rp_mplex_stream *st)
{
    if (st->s->error != 0) return st->s->error;
    local_reset(st);
    return 0;
}

int rp_mplex_stream_consumed(rp_mplex_stream *st, size_t n)
{
    if (n > st->unconsumed) return RINGP2P_EINVAL;
    st->unconsumed -= n;
    return 0;
}

void rp_mplex_stream_release(rp_mplex_stream *st)
{
    rp_mplex *s = st->s;
    st->released = true;
    for (size_t i = 0; i < s->ev_n; i++) {
        rp_mplex_event *e = &s->ev[(s->ev_head + i) % (RP_MPLEX_EVENT_QUEUE + 1)];
        if (e->stream == st) e->type = 0;
    }
    if (s->target == st) s->target = NULL;   /* the rest of its message is discarded */
    if (s->blocked == st) s->blocked = NULL; /* so is a message waiting for room */
    if (s->error == 0 && !st->reset && !st->write_closed) rp_mplex_stream_close(st);
    st->unconsumed = 0;
    maybe_done(st);
    maybe_free(st);
}

uint64_t rp_mplex_stream_id(const rp_mplex_stream *st)
{
    return st->id;
}

bool rp_mplex_stream_is_local(const rp_mplex_stream *st)
{
    return st->local;
}

void *rp_mplex_stream_user(const rp_mplex_stream *st)
{
    return st->user;
}

void rp_mplex_stream_set_user(rp_mplex_stream *st, void *user)
{
    st->user = user;
}

uint64_t rp_mplex_stream_unconsumed(const rp_mplex_stream *st)
{
    return st->unconsumed;
}

uint64_t rp_mplex_stream_emitted(const rp_mplex_stream *st)
{
    return st->emitted;
}

uint64_t rp_mplex_stream_queued(const rp_mplex_stream *st)
{
    return st->queued;
}
