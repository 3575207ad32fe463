/*
 * An mplex session (default or tight limits) driven by a script: peer bytes
 * (raw, or messages built from a few input bytes so the fuzzer gets deep
 * fast, some large enough to fill a stream's buffer) interleaved with
 * application calls (open, accept, write, consume, close, reset, release),
 * a fake clock moving on, and sends into caller buffers of every size.
 * Bytes receive does not take while blocked on a full stream wait in order
 * and are given again after every step, as the host does.
 * Invariants checked on every step:
 * - everything the session emits decodes as mplex headers, re-encodes to the
 *   same bytes, and obeys the protocol: messages within the frame size, empty
 *   NewStream/Close/Reset; for our streams NewStream once and first, nothing
 *   after our Close but a Reset, nothing after a Reset;
 * - the caller's buffers and byte budget are respected;
 * - data events point inside the input just fed and never push a stream past
 *   its buffer limit; SESSION_ERROR is the last event;
 * - the peer's streams reported never exceed the inbound limit;
 * - a blocked receive names a stream the application still holds, never
 *   outlives its deadline, and never happens with a block timeout of 0.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "muxer/mplex.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                              \
    do {                                                                                      \
        if (!(c)) {                                                                           \
            fprintf(stderr, "fuzz_mplex: %s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

#define MAX_HANDLES 64
#define MAX_IDS     256 /* our stream ids tracked for output rules */

static const uint8_t wmem[16 * 256 + 20 * 256]; /* every offset and length the script makes */

typedef struct handle {
    rp_mplex_stream *st;
    bool mine;
} handle;

typedef struct out_state {
    /* Per our own id / per peer id below MAX_IDS: 1 opened, 2 closed, 3 reset. */
    /*
     * Only our streams: the peer may reuse its ids (the spec leaves that
     * undefined), and then our output for its old and new stream cannot be
     * told apart without modelling the input.
     */
    uint8_t ours[MAX_IDS];
} out_state;

typedef struct fz {
    rp_mplex *s;
    rp_mplex_config cfg;
    handle h[MAX_HANDLES];
    size_t nh;
    size_t reported_inbound_live;
    bool dead;
    out_state o;
    const uint8_t *in_lo, *in_hi;
    uint64_t now;
    uint8_t *pend; /* input not taken while blocked, in order */
    size_t pend_len;
} fz;

static void on_output(fz *f, const uint8_t *b, size_t n)
{
    const uint8_t *p = b, *end = b + n;
    while (p < end) {
        rp_mplex_hdr h;
        const uint8_t *start = p;
        CHECK(rp_mplex_hdr_decode(&p, end, &h, NULL) == 0);
        uint8_t re[RP_MPLEX_HEADER_MAX];
        ssize_t rl = rp_mplex_hdr_encode(re, sizeof(re), &h);
        CHECK(rl == p - start && memcmp(re, start, (size_t)rl) == 0);
        CHECK((size_t)(end - p) >= h.length);
        p += h.length;
        bool ours = h.flag == RP_MPLEX_NEW_STREAM || (h.flag & 1) == 0;
        if (h.flag == RP_MPLEX_MESSAGE_INITIATOR || h.flag == RP_MPLEX_MESSAGE_RECEIVER)
            CHECK(h.length > 0 && h.length <= f->cfg.max_frame);
        else
            CHECK(h.length == 0);
        if (h.id >= MAX_IDS || !ours) continue;
        uint8_t *st = &f->o.ours[h.id];
        switch (h.flag) {
        case RP_MPLEX_NEW_STREAM:
            CHECK(*st == 0);
            CHECK(h.length == 0);
            *st = 1;
            break;
        case RP_MPLEX_MESSAGE_INITIATOR:
        case RP_MPLEX_MESSAGE_RECEIVER:
            CHECK(h.length > 0 && h.length <= f->cfg.max_frame);
            CHECK(*st == 1);
            break;
        case RP_MPLEX_CLOSE_INITIATOR:
        case RP_MPLEX_CLOSE_RECEIVER:
            CHECK(h.length == 0);
            CHECK(*st == 1);
            *st = 2;
            break;
        default:
            CHECK(h.length == 0);
            CHECK(*st == 1 || *st == 2);
            *st = 3;
            break;
        }
    }
}

static void do_send(fz *f, size_t hdr_cap, size_t iov_cap, size_t max_bytes)
{
    uint8_t hdr[512];
    rp_iov iov[32];
    if (hdr_cap > sizeof(hdr)) hdr_cap = sizeof(hdr);
    if (iov_cap > 32) iov_cap = 32;
    for (int round = 0; round < 8; round++) {
        rp_mplex_out o = { hdr, hdr_cap, iov, iov_cap, max_bytes, 0, 0 };
        ssize_t r = rp_mplex_send(f->s, &o);
        CHECK(r >= 0 || r == RINGP2P_ENOBUF);
        if (r <= 0) return;
        CHECK(o.hdr_len <= hdr_cap && o.niov <= iov_cap);
        CHECK((size_t)r == rp_iov_total(iov, o.niov));
        CHECK(max_bytes == 0 || (size_t)r <= max_bytes);
        static uint8_t flat[1 << 20];
        size_t n = 0;
        for (size_t i = 0; i < o.niov; i++) {
            CHECK(n + iov[i].len <= sizeof(flat));
            memcpy(flat + n, iov[i].base, iov[i].len);
            n += iov[i].len;
        }
        on_output(f, flat, n);
    }
}

static void drain(fz *f)
{
    rp_mplex_event ev;
    bool saw_error = false;
    while (rp_mplex_next_event(f->s, &ev)) {
        CHECK(!saw_error);
        switch (ev.type) {
        case RP_MPLEX_EV_SESSION_ERROR:
            saw_error = true;
            f->dead = true;
            CHECK(ev.err < 0);
            break;
        case RP_MPLEX_EV_STREAM_OPENED:
            CHECK(!rp_mplex_stream_is_local(ev.stream));
            CHECK(rp_mplex_num_streams(f->s) <=
                  f->cfg.max_inbound_streams + f->cfg.max_outbound_streams);
            if (f->nh < MAX_HANDLES) {
                f->h[f->nh++] = (handle){ ev.stream, false };
            } else {
                rp_mplex_stream_reset(ev.stream);
                rp_mplex_stream_release(ev.stream);
            }
            break;
        case RP_MPLEX_EV_STREAM_DATA:
            CHECK(ev.len > 0 && ev.data >= f->in_lo && ev.data + ev.len <= f->in_hi);
            CHECK(rp_mplex_stream_unconsumed(ev.stream) <= f->cfg.max_stream_buffer);
            break;
        case RP_MPLEX_EV_STREAM_RESET:
            CHECK(ev.err == RINGP2P_ESTREAMRESET || ev.err == RINGP2P_ELIMIT);
            break;
        case RP_MPLEX_EV_STREAM_FIN:
        case RP_MPLEX_EV_STREAM_WRITABLE: break;
        default: CHECK(0);
        }
    }
}

/* Checks the block state after a receive call; true when blocked on a full stream. */
static bool check_blocked(fz *f)
{
    uint64_t since = 0;
    rp_mplex_stream *st = rp_mplex_blocked(f->s, &since);
    if (st == NULL) {
        CHECK(rp_mplex_next_timeout(f->s) == UINT64_MAX);
        return false;
    }
    CHECK(f->cfg.block_timeout_ns > 0);
    CHECK(since <= f->now && f->now - since < f->cfg.block_timeout_ns);
    CHECK(rp_mplex_next_timeout(f->s) == since + f->cfg.block_timeout_ns);
    bool held = false;
    for (size_t i = 0; i < f->nh; i++) held = held || f->h[i].st == st;
    CHECK(held); /* released streams never block */
    return true;
}

/* Gives [*p, end) to the session until all is taken, it blocks (true) or dies. */
static bool give(fz *f, const uint8_t **p, const uint8_t *end)
{
    f->in_lo = *p;
    f->in_hi = end;
    for (int guard = 0; guard < 10000; guard++) {
        const uint8_t *before = *p;
        int r = rp_mplex_receive(f->s, p, end, f->now, NULL);
        CHECK(*p >= before && *p <= end);
        bool blocked = r == RINGP2P_EAGAIN && check_blocked(f);
        drain(f);
        if (blocked) return true;
        if (r == RINGP2P_EAGAIN) {
            do_send(f, 512, 32, 0);
            continue;
        }
        if (r < 0) {
            CHECK(rp_mplex_error(f->s) == r);
            return false;
        }
        CHECK(*p == end);
        CHECK(!check_blocked(f));
        return false;
    }
    return false;
}

static void pend_add(fz *f, const uint8_t *b, size_t n)
{
    if (n == 0) return;
    uint8_t *np = realloc(f->pend, f->pend_len + n);
    CHECK(np != NULL);
    f->pend = np;
    memcpy(f->pend + f->pend_len, b, n);
    f->pend_len += n;
}

static void feed(fz *f, const uint8_t *b, size_t n)
{
    const uint8_t *p = b, *end = b + n;
    if (f->pend_len > 0 || rp_mplex_blocked(f->s, NULL) != NULL || give(f, &p, end))
        pend_add(f, p, (size_t)(end - p));
}

/* After any step: ask again (room, a reset or release, the clock) and give what waits. */
static void resume(fz *f)
{
    if (f->dead || (f->pend_len == 0 && rp_mplex_blocked(f->s, NULL) == NULL)) return;
    static const uint8_t none[1];
    const uint8_t *p = f->pend_len > 0 ? f->pend : none;
    const uint8_t *end = f->pend_len > 0 ? f->pend + f->pend_len : none;
    give(f, &p, end);
    if (f->pend_len > 0) {
        size_t used = (size_t)(p - f->pend);
        memmove(f->pend, p, f->pend_len - used);
        f->pend_len -= used;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    fz f;
    memset(&f, 0, sizeof(f));
    rp_mplex_config_default(&f.cfg);
    if (data[0] & 1) {
        f.cfg.max_stream_buffer = RP_MPLEX_MAX_MSG;
        f.cfg.max_inbound_streams = data[0] >> 4;
        f.cfg.max_outbound_streams = 4;
        f.cfg.max_frame = 1 + (data[0] >> 1) * 37u;
        f.cfg.max_queued = 300;
        f.cfg.block_timeout_ns = data[0] & 2 ? 0 : 100 * 1000 * 1000;
    }
    CHECK(rp_mplex_new(&f.cfg, &f.s) == 0);
    const uint8_t *p = data + 1, *end = data + size;
    uint8_t msg[64];
    while (p < end && !f.dead) {
        uint8_t op = *p++;
        size_t left = (size_t)(end - p);
        uint8_t a = left > 0 ? p[0] : 0, b = left > 1 ? p[1] : 0;
        handle *h = f.nh > 0 ? &f.h[a % f.nh] : NULL;
        switch (op % 14) {
        case 0: { /* raw peer bytes: a length byte, then that many */
            if (left == 0) break;
            size_t n = a < left - 1 ? a : left - 1;
            feed(&f, p + 1, n);
            p += 1 + n;
            break;
        }
        case 1:
        case 2: { /* a built message: flag, small id, short payload */
            rp_mplex_hdr hd = { (uint64_t)(a >> 3) % 8, (uint8_t)(a & 7 ? (a & 7) % 7 : 0),
                                (uint32_t)(b % 16) };
            if (op % 14 == 2) hd.length = b % 16 < 8 ? 0 : (uint32_t)(b * 97u);
            ssize_t hl = rp_mplex_hdr_encode(msg, sizeof(msg), &hd);
            CHECK(hl > 0);
            static uint8_t fr[RP_MPLEX_HEADER_MAX + 255 * 97];
            memcpy(fr, msg, (size_t)hl);
            memset(fr + hl, 'x', hd.length);
            /* Split the message in two inputs to exercise header and payload straddling. */
            size_t tot = (size_t)hl + hd.length, cut = b % (tot + 1);
            feed(&f, fr, cut);
            if (!f.dead) feed(&f, fr + cut, tot - cut);
            p += left >= 2 ? 2 : left;
            break;
        }
        case 3: { /* open */
            rp_mplex_stream *st;
            int r = rp_mplex_open(f.s, NULL, &st);
            CHECK(r == 0 || r == RINGP2P_ELIMIT);
            if (r == 0) {
                if (f.nh < MAX_HANDLES) {
                    f.h[f.nh++] = (handle){ st, true };
                } else {
                    rp_mplex_stream_release(st);
                }
            }
            break;
        }
        case 4:
            if (h != NULL) {
                ssize_t r = rp_mplex_stream_write(h->st, wmem + a * 16, 1 + (size_t)b * 20);
                CHECK(r >= 0 || r == RINGP2P_ECLOSED || r == RINGP2P_ESTREAMRESET);
            }
            p += left >= 2 ? 2 : left;
            break;
        case 5:
            if (h != NULL) rp_mplex_stream_consumed(h->st, rp_mplex_stream_unconsumed(h->st));
            p += left >= 1 ? 1 : 0;
            break;
        case 6:
            if (h != NULL) {
                int r = rp_mplex_stream_close(h->st);
                CHECK(r == 0 || r == RINGP2P_ESTREAMRESET);
            }
            p += left >= 1 ? 1 : 0;
            break;
        case 7:
            if (h != NULL) CHECK(rp_mplex_stream_reset(h->st) == 0);
            p += left >= 1 ? 1 : 0;
            break;
        case 8:
            if (h != NULL) {
                rp_mplex_stream_release(h->st);
                *h = f.h[--f.nh];
            }
            p += left >= 1 ? 1 : 0;
            break;
        case 9:
            if (h != NULL && !h->mine) rp_mplex_stream_accept(h->st, NULL);
            p += left >= 1 ? 1 : 0;
            break;
        case 10: do_send(&f, 1 + a * 2u, 1 + b % 32, b & 1 ? 0 : 1 + a * 40u); break;
        case 11: /* time passes: up to 25.5 s */
            f.now += (uint64_t)a * 100 * 1000 * 1000;
            p += left >= 1 ? 1 : 0;
            break;
        case 12: { /* a large message (4 KiB .. 1 MiB) on a small id: fills buffers fast */
            rp_mplex_hdr hd = { (uint64_t)(a >> 3) % 8, (uint8_t)(a & 1 ? 1 : 2),
                                (uint32_t)(b + 1) * 4096u };
            static uint8_t big[RP_MPLEX_HEADER_MAX + RP_MPLEX_MAX_MSG];
            static bool big_set;
            if (!big_set) memset(big, 'y', sizeof(big)); /* headers overwrite only their bytes */
            big_set = true;
            uint8_t hb[RP_MPLEX_HEADER_MAX];
            ssize_t hl = rp_mplex_hdr_encode(hb, sizeof(hb), &hd);
            CHECK(hl > 0);
            memcpy(big, hb, (size_t)hl);
            memset(big + hl, 'y', RP_MPLEX_HEADER_MAX - (size_t)hl);
            size_t tot = (size_t)hl + hd.length, cut = (size_t)a * 4099 % (tot + 1);
            feed(&f, big, cut);
            if (!f.dead) feed(&f, big + cut, tot - cut);
            p += left >= 2 ? 2 : left;
            break;
        }
        default: do_send(&f, 512, 32, 0); break;
        }
        resume(&f);
    }
    if (!f.dead) do_send(&f, 512, 32, 0);
    drain(&f);
    for (size_t i = 0; i < f.nh; i++) rp_mplex_stream_release(f.h[i].st);
    free(f.pend);
    rp_mplex_free(f.s);
    return 0;
}
