/*
 * A yamux session (either role, default or tight limits) driven by a script:
 * peer bytes (raw, or frames built from a few input bytes so the fuzzer gets
 * deep fast) interleaved with application calls (open, accept, write,
 * consume, close, reset, release, ping, go-away, timers) and sends into
 * caller buffers of every size. Invariants checked on every step:
 * - every frame the session emits decodes, re-encodes to the same bytes and
 *   follows the rules: version 0, known type, ping/go-away on stream 0 and
 *   data/window updates off it, FIN never on a data frame, nothing after a
 *   go-away with an error code, no data after our FIN or RST;
 * - data never exceeds the window the peer granted (shadow accounting from
 *   the bytes the session consumed);
 * - the caller's buffers and budget are respected;
 * - data events are views inside the input just fed; SESSION_ERROR is last;
 * - inbound streams reported never exceed the accept backlog and the
 *   concurrent inbound limit.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "muxer/yamux.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                              \
    do {                                                                                      \
        if (!(c)) {                                                                           \
            fprintf(stderr, "fuzz_yamux: %s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

#define MAX_HANDLES 64
#define SHADOW_CAP  4096 /* ids tracked for window accounting (power of two) */

/* Memory written to streams: referenced by the session, never changed. */
static const uint8_t wmem[RP_YAMUX_INITIAL_WINDOW + 4096];

typedef struct handle {
    rp_yamux_stream *st;
    bool inbound, accepted, peer_reset, released, closed;
    uint64_t unconsumed;
} handle;

typedef struct shadow {
    uint32_t id;
    bool used;
    bool fin_out, rst_out, syn_out;
    uint64_t credit; /* window the peer granted us */
    uint64_t sent;   /* data bytes we emitted */
} shadow;

typedef struct fz {
    rp_yamux *s;
    rp_yamux_config cfg;
    bool dialer;
    uint64_t now;
    handle h[MAX_HANDLES];
    size_t nh;
    shadow sh[SHADOW_CAP];
    size_t nsh;
    bool dead_event, goaway_err_out;
    uint32_t backlog; /* inbound reported, not accepted, not finished */
    uint32_t opened;  /* streams we opened */
    /* shadow parser of the bytes the session consumed */
    uint8_t hdr[RP_YAMUX_HEADER_LEN];
    size_t hdr_have;
    uint64_t skip;
    bool dead;
} fz;

static shadow *sh_get(fz *f, uint32_t id, bool create)
{
    uint32_t mask = SHADOW_CAP - 1, i = (id * 2654435761u) & mask;
    for (;; i = (i + 1) & mask) {
        if (!f->sh[i].used) {
            if (!create || f->nsh == SHADOW_CAP / 2) return NULL;
            f->nsh++;
            f->sh[i] = (shadow){ .id = id, .used = true };
            return &f->sh[i];
        }
        if (f->sh[i].id == id) return &f->sh[i];
    }
}

static bool ours(const fz *f, uint32_t id)
{
    return f->dialer ? (id & 1) : !(id & 1);
}

/* Mirrors the window grants in consumed peer bytes. */
static void shadow_parse(fz *f, const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (f->skip) {
            size_t k = f->skip < n ? (size_t)f->skip : n;
            f->skip -= k;
            p += k;
            n -= k;
            continue;
        }
        size_t k = RP_YAMUX_HEADER_LEN - f->hdr_have;
        if (k > n) k = n;
        memcpy(f->hdr + f->hdr_have, p, k);
        f->hdr_have += k;
        p += k;
        n -= k;
        if (f->hdr_have < RP_YAMUX_HEADER_LEN) return;
        f->hdr_have = 0;
        rp_yamux_hdr h;
        const uint8_t *q = f->hdr;
        CHECK(rp_yamux_hdr_decode(&q, f->hdr + RP_YAMUX_HEADER_LEN, &h, NULL) == 0);
        if (h.type == RP_YAMUX_TYPE_DATA) f->skip = h.length;
        if (h.type > RP_YAMUX_TYPE_WINDOW_UPDATE || h.stream_id == 0) continue;
        shadow *s = NULL;
        if ((h.flags & RP_YAMUX_FLAG_SYN) && !ours(f, h.stream_id)) {
            s = sh_get(f, h.stream_id, true);
            if (s != NULL) {
                *s = (shadow){ .id = h.stream_id, .used = true };
                s->credit = RP_YAMUX_INITIAL_WINDOW;
            }
        } else {
            s = sh_get(f, h.stream_id, false);
        }
        if (s != NULL && h.type == RP_YAMUX_TYPE_WINDOW_UPDATE && !(h.flags & RP_YAMUX_FLAG_RST))
            s->credit += h.length;
    }
}

static void do_send(fz *f, uint8_t sel);

/* do_send selector with buffers that always fit a frame. */
#define SEND_ROOMY 35

static void drain_events(fz *f, const uint8_t *in, size_t inlen)
{
    rp_yamux_event ev;
    while (rp_yamux_next_event(f->s, &ev)) {
        CHECK(!f->dead_event); /* SESSION_ERROR is the last event */
        handle *h = ev.user;
        switch (ev.type) {
        case RP_YAMUX_EV_STREAM_OPENED:
            CHECK(ev.stream != NULL && h == NULL);
            CHECK(!ours(f, rp_yamux_stream_id(ev.stream)));
            f->backlog++;
            CHECK(f->backlog <= f->cfg.accept_backlog);
            if (f->nh < MAX_HANDLES) {
                h = &f->h[f->nh++];
                *h = (handle){ .st = ev.stream, .inbound = true };
                rp_yamux_stream_set_user(ev.stream, h);
            } else {
                /* No room to track it: decline. */
                rp_yamux_stream_release(ev.stream);
                f->backlog--;
            }
            break;
        case RP_YAMUX_EV_STREAM_DATA:
            CHECK(h != NULL && !h->released && ev.len > 0);
            CHECK(in != NULL && ev.data >= in && ev.data + ev.len <= in + inlen);
            h->unconsumed += ev.len;
            break;
        case RP_YAMUX_EV_STREAM_RESET:
            CHECK(h != NULL && !h->released);
            if (h->inbound && !h->accepted && !h->peer_reset) f->backlog--;
            h->peer_reset = true;
            break;
        case RP_YAMUX_EV_STREAM_FIN:
        case RP_YAMUX_EV_STREAM_WRITABLE: CHECK(h != NULL && !h->released); break;
        case RP_YAMUX_EV_SESSION_ERROR:
            CHECK(ev.err < 0 && ev.err == rp_yamux_error(f->s));
            f->dead_event = true;
            break;
        case RP_YAMUX_EV_OPEN_READY:
        case RP_YAMUX_EV_PING_RTT:
        case RP_YAMUX_EV_PING_TIMEOUT:
        case RP_YAMUX_EV_GO_AWAY: break;
        default: CHECK(0);
        }
    }
}

static void feed(fz *f, const uint8_t *in, size_t n)
{
    const uint8_t *p = in, *end = in + n;
    for (int rounds = 0; p < end && rounds < 1000; rounds++) {
        const uint8_t *start = p;
        int r = rp_yamux_receive(f->s, &p, end, f->now, NULL);
        CHECK(p >= start && p <= end);
        if (!f->dead) shadow_parse(f, start, (size_t)(p - start));
        drain_events(f, in, n);
        if (r == 0) {
            CHECK(p == end);
            return;
        }
        if (r != RINGP2P_EAGAIN) {
            CHECK(r == RINGP2P_EPROTOCOL || r == RINGP2P_EGOAWAY || r == rp_yamux_error(f->s));
            f->dead = true;
            return;
        }
        /* Queues full: the host has drained events, now it sends, then feeds the rest. */
        do_send(f, SEND_ROOMY);
    }
}

static void check_frames(fz *f, const rp_yamux_out *o, size_t total)
{
    /* Reassemble the described bytes, then walk the frames. */
    uint8_t *buf = malloc(total ? total : 1);
    CHECK(buf != NULL);
    size_t off = 0;
    for (size_t i = 0; i < o->niov; i++) {
        CHECK(o->iov[i].len > 0);
        memcpy(buf + off, o->iov[i].base, o->iov[i].len);
        off += o->iov[i].len;
    }
    CHECK(off == total);
    const uint8_t *p = buf, *end = buf + total;
    while (p < end) {
        const uint8_t *start = p;
        rp_yamux_hdr h;
        CHECK(!f->goaway_err_out);
        CHECK(rp_yamux_hdr_decode(&p, end, &h, NULL) == 0);
        uint8_t again[RP_YAMUX_HEADER_LEN];
        CHECK(rp_yamux_hdr_encode(again, sizeof(again), &h) == RP_YAMUX_HEADER_LEN);
        CHECK(memcmp(again, start, RP_YAMUX_HEADER_LEN) == 0);
        CHECK((h.flags & ~0xfu) == 0);
        switch (h.type) {
        case RP_YAMUX_TYPE_PING:
            CHECK(h.stream_id == 0);
            CHECK(h.flags == RP_YAMUX_FLAG_SYN || h.flags == RP_YAMUX_FLAG_ACK);
            break;
        case RP_YAMUX_TYPE_GO_AWAY:
            CHECK(h.stream_id == 0 && h.flags == 0);
            if (h.length != RP_YAMUX_GOAWAY_NORMAL) f->goaway_err_out = true;
            break;
        case RP_YAMUX_TYPE_DATA:
        case RP_YAMUX_TYPE_WINDOW_UPDATE: {
            CHECK(h.stream_id != 0);
            shadow *s = sh_get(f, h.stream_id, false);
            if (h.flags & RP_YAMUX_FLAG_SYN) {
                /* Only for our own new streams, and once. */
                CHECK(ours(f, h.stream_id));
                CHECK(s == NULL || !s->syn_out);
                if (s != NULL) s->syn_out = true;
            }
            if (h.type == RP_YAMUX_TYPE_DATA) {
                CHECK(h.length > 0 && h.length <= f->cfg.max_frame);
                CHECK((size_t)(end - p) >= h.length);
                p += h.length;
                CHECK(!(h.flags & (RP_YAMUX_FLAG_FIN | RP_YAMUX_FLAG_RST)));
                if (s != NULL) {
                    CHECK(!s->fin_out && !s->rst_out);
                    s->sent += h.length;
                    CHECK(s->sent <= s->credit);
                }
            } else if (s != NULL) {
                if (h.flags & RP_YAMUX_FLAG_FIN) {
                    CHECK(!s->fin_out);
                    s->fin_out = true;
                }
                if (h.flags & RP_YAMUX_FLAG_RST) {
                    CHECK(h.flags == RP_YAMUX_FLAG_RST && h.length == 0);
                    s->rst_out = true;
                }
            }
            break;
        }
        default: CHECK(0);
        }
    }
    free(buf);
}

static void do_send(fz *f, uint8_t sel)
{
    static const size_t hdr_caps[] = { 0, 11, 12, 24, 100, 4096 };
    static const size_t iov_caps[] = { 0, 1, 2, 3, 8, 256 };
    static const size_t budgets[] = { 0, 12, 13, 100, 20000, 0, 0, 0 };
    uint8_t hdr[4096];
    rp_iov iov[256];
    for (int round = 0; round < 64; round++) {
        rp_yamux_out o = {
            hdr, hdr_caps[sel % 6], iov, iov_caps[(sel / 6) % 6], budgets[(sel / 36) % 8], 0, 0
        };
        bool wanted = rp_yamux_want_send(f->s);
        ssize_t n = rp_yamux_send(f->s, &o, f->now);
        CHECK(n >= 0 || n == RINGP2P_ENOBUF);
        if (n == RINGP2P_ENOBUF) {
            CHECK(wanted && sel != SEND_ROOMY);
            /* Retry with roomy buffers so progress is always possible. */
            sel = SEND_ROOMY;
            continue;
        }
        CHECK(o.hdr_len <= o.hdr_cap && o.niov <= o.iov_cap);
        if (o.max_bytes) CHECK((size_t)n <= o.max_bytes);
        if (n == 0) {
            CHECK(!rp_yamux_want_send(f->s));
            return;
        }
        check_frames(f, &o, (size_t)n);
    }
}

static handle *pick(fz *f, uint8_t b)
{
    if (f->nh == 0) return NULL;
    handle *h = &f->h[b % f->nh];
    return h->released ? NULL : h;
}

static void app_op(fz *f, uint8_t op, uint8_t arg)
{
    static const size_t wlens[] = { 1, 7, 100, 1000, 16384, 65536, RP_YAMUX_INITIAL_WINDOW, 3 };
    handle *h = pick(f, arg);
    switch (op) {
    case 0: { /* open */
        if (f->nh == MAX_HANDLES) return;
        rp_yamux_stream *st;
        int r = rp_yamux_open(f->s, NULL, &st);
        if (r != 0) {
            CHECK(r == RINGP2P_EAGAIN || r == RINGP2P_EGOAWAY || r == RINGP2P_ECLOSED ||
                  r == RINGP2P_ELIMIT || r == rp_yamux_error(f->s));
            return;
        }
        CHECK(ours(f, rp_yamux_stream_id(st)));
        f->opened++;
        shadow *s = sh_get(f, rp_yamux_stream_id(st), true);
        if (s != NULL) s->credit = RP_YAMUX_INITIAL_WINDOW;
        handle *nh = &f->h[f->nh++];
        *nh = (handle){ .st = st };
        rp_yamux_stream_set_user(st, nh);
        return;
    }
    case 1: /* accept */
        if (h == NULL) return;
        if (rp_yamux_stream_accept(h->st, h) == 0) {
            CHECK(h->inbound && !h->accepted);
            h->accepted = true;
            f->backlog--;
        }
        return;
    case 2: { /* write */
        if (h == NULL) return;
        size_t len = wlens[arg >> 5], off = (size_t)(arg & 31) * 97;
        size_t before = rp_yamux_stream_writable(h->st);
        uint64_t win = rp_yamux_stream_send_window(h->st);
        ssize_t n = rp_yamux_stream_write(h->st, wmem + off, len);
        if (n >= 0) {
            CHECK((size_t)n <= len && (uint64_t)n <= win);
            if (before >= len) CHECK((size_t)n == len);
            if (h->inbound && !h->accepted) {
                h->accepted = true; /* a write accepts implicitly */
                if (!h->peer_reset) f->backlog--;
            }
        } else {
            CHECK(n == RINGP2P_ECLOSED || n == RINGP2P_ESTREAMRESET || n == rp_yamux_error(f->s));
        }
        return;
    }
    case 3: { /* consume all, half, or too much */
        if (h == NULL) return;
        uint64_t n = (arg & 0x80)   ? h->unconsumed + 1
                     : (arg & 0x40) ? h->unconsumed / 2
                                    : h->unconsumed;
        int r = rp_yamux_stream_consumed(h->st, (size_t)n, f->now);
        if (n > h->unconsumed) {
            CHECK(r == RINGP2P_EINVAL);
        } else {
            CHECK(r == 0);
            h->unconsumed -= n;
        }
        return;
    }
    case 4: /* close */
        if (h == NULL) return;
        if (rp_yamux_stream_close(h->st) == 0 && h->inbound && !h->accepted) {
            h->accepted = true;
            if (!h->peer_reset) f->backlog--;
        }
        return;
    case 5: /* reset */
        if (h == NULL) return;
        CHECK(rp_yamux_stream_reset(h->st) == 0);
        if (h->inbound && !h->accepted && !h->peer_reset) f->backlog--;
        h->peer_reset = true; /* out of the backlog either way */
        return;
    case 6: /* release */
        if (h == NULL) return;
        if (h->inbound && !h->accepted && !h->peer_reset) f->backlog--;
        rp_yamux_stream_release(h->st);
        h->released = true;
        return;
    case 7: rp_yamux_ping(f->s); return;
    case 8: rp_yamux_go_away(f->s, arg & 3); return;
    case 9: /* time passes */
        f->now += (uint64_t)arg * 50000000ull;
        if (f->now >= rp_yamux_next_timeout(f->s)) rp_yamux_on_timeout(f->s, f->now);
        return;
    default: return;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    fz *f = calloc(1, sizeof(*f));
    CHECK(f != NULL);
    uint8_t mode = data[0];
    f->dialer = mode & 1;
    rp_yamux_config_default(&f->cfg);
    if (mode & 2) {
        f->cfg.max_inbound_streams = 3;
        f->cfg.accept_backlog = 2;
        f->cfg.open_backlog = 2;
        f->cfg.max_frame = RP_YAMUX_MAX_FRAME_MIN;
    }
    if (mode & 4) f->cfg.initial_window = 2 * RP_YAMUX_INITIAL_WINDOW;
    if (mode & 8) f->cfg.ping_interval_ns = 0;
    f->now = 1000;
    CHECK(rp_yamux_new(&f->cfg, f->dialer, f->now, &f->s) == 0);

    static const uint32_t lens[] = { 0,
                                     1,
                                     2,
                                     5,
                                     12,
                                     RP_YAMUX_INITIAL_WINDOW - 1,
                                     RP_YAMUX_INITIAL_WINDOW,
                                     RP_YAMUX_INITIAL_WINDOW + 1,
                                     0x7fffffff,
                                     0xffffffff,
                                     16384,
                                     3 };
    size_t i = 1;
    while (i < size) {
        uint8_t op = data[i++];
        if (op < 0x40) {
            /* Raw peer bytes: the next (op + 1) bytes. */
            size_t n = (size_t)op + 1;
            if (n > size - i) n = size - i;
            feed(f, data + i, n);
            i += n;
        } else if (op < 0x80) {
            /*
             * Frames from 3 more bytes: type (op & 3), flags, id, length; repeated
             * (op >> 3 & 7 picks a count, ids step by 2 so repeated SYNs flood), and
             * a data payload of the header's length when small, or when op & 4, up
             * to a window and more (zeros), so windows are consumed and credited.
             */
            static const unsigned reps[] = { 1, 1, 1, 1, 2, 8, 70, 200 };
            if (size - i < 3) break;
            uint8_t b0 = data[i], b1 = data[i + 1], b2 = data[i + 2];
            i += 3;
            uint32_t id = (b1 & 0x80) ? b1 & 0x7f : b1 & 0x0f;
            uint32_t len = (b2 & 0x80) ? lens[(b2 & 0x7f) % 12] : b2 & 0x3f;
            unsigned rep = reps[(op >> 3) & 7];
            uint8_t type = (uint8_t)(op & 3);
            size_t pay = 0;
            if (type == RP_YAMUX_TYPE_DATA && (len <= 63 || ((op & 4) && rep == 1)))
                pay = len <= sizeof(wmem) ? len : 0;
            size_t n = rep * (RP_YAMUX_HEADER_LEN + pay);
            uint8_t *fr = malloc(n);
            CHECK(fr != NULL);
            for (unsigned k = 0; k < rep; k++) {
                uint8_t *q = fr + k * (RP_YAMUX_HEADER_LEN + pay);
                rp_yamux_hdr h = { 0, type, (uint16_t)(b0 & 0xf), id + 2 * k, len };
                CHECK(rp_yamux_hdr_encode(q, RP_YAMUX_HEADER_LEN, &h) == RP_YAMUX_HEADER_LEN);
                memcpy(q + RP_YAMUX_HEADER_LEN, wmem, pay);
            }
            /* Fed in one piece, or split at an awkward place (inside a header). */
            size_t cut = (b0 & 0x10) ? n / 3 + 5 : n;
            if (cut > n) cut = n;
            feed(f, fr, cut);
            feed(f, fr + cut, n - cut);
            free(fr);
        } else if (op < 0xc0) {
            do_send(f, (uint8_t)(op & 0x3f) * 5);
        } else {
            if (i >= size) break;
            app_op(f, (uint8_t)(op & 0x0f), data[i++]);
        }
        /* Limits hold at every step. */
        CHECK(f->backlog <= f->cfg.accept_backlog);
        CHECK(rp_yamux_num_streams(f->s) <= f->cfg.max_inbound_streams + f->opened);
    }
    do_send(f, SEND_ROOMY);
    drain_events(f, NULL, 0);
    rp_yamux_free(f->s);
    free(f);
    return 0;
}
