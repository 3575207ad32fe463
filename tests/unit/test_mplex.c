/*
 * mplex: header vectors, two sessions wired together in memory, limits,
 * blocking on a full stream under a fake clock, malformed input.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "muxer/mplex.h"

/* ---- header codec ---------------------------------------------------------------------------- */

Test(mplex, header_vectors)
{
    /* header = uvarint(id << 3 | flag), uvarint(length) ("Message format"). */
    struct {
        uint64_t id;
        uint8_t flag;
        uint32_t len;
        uint8_t bytes[12];
        size_t n;
    } v[] = {
        { 0, RP_MPLEX_NEW_STREAM, 0, { 0x00, 0x00 }, 2 },
        { 1, RP_MPLEX_MESSAGE_INITIATOR, 3, { 0x0a, 0x03 }, 2 },
        { 17, RP_MPLEX_MESSAGE_RECEIVER, 0, { 0x89, 0x01, 0x00 }, 3 },
        { 15, RP_MPLEX_RESET_INITIATOR, 300, { 0x7e, 0xac, 0x02 }, 3 },
        { 16, RP_MPLEX_NEW_STREAM, 128, { 0x80, 0x01, 0x80, 0x01 }, 4 },
        { 5, RP_MPLEX_CLOSE_RECEIVER, RP_MPLEX_MAX_MSG, { 0x2b, 0x80, 0x80, 0x40 }, 4 },
        { RP_MPLEX_MAX_STREAM_ID,
          RP_MPLEX_RESET_RECEIVER,
          1,
          { 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x01 },
          10 },
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        uint8_t buf[RP_MPLEX_HEADER_MAX];
        rp_mplex_hdr h = { v[i].id, v[i].flag, v[i].len };
        cr_assert_eq(rp_mplex_hdr_encode(buf, sizeof(buf), &h), (ssize_t)v[i].n, "vector %zu", i);
        cr_assert_eq(memcmp(buf, v[i].bytes, v[i].n), 0, "vector %zu", i);
        cr_assert_eq(rp_mplex_hdr_encode(buf, v[i].n - 1, &h), RINGP2P_ENOBUF);
        const uint8_t *p = v[i].bytes;
        rp_mplex_hdr d;
        cr_assert_eq(rp_mplex_hdr_decode(&p, v[i].bytes + v[i].n, &d, NULL), 0);
        cr_assert_eq(p, v[i].bytes + v[i].n);
        cr_assert(d.id == v[i].id && d.flag == v[i].flag && d.length == v[i].len, "vector %zu", i);
        for (size_t k = 0; k < v[i].n; k++) {
            p = v[i].bytes;
            cr_assert_eq(rp_mplex_hdr_decode(&p, v[i].bytes + k, &d, NULL), RINGP2P_ETRUNCATED);
            cr_assert_eq(p, v[i].bytes);
        }
    }
    struct {
        uint8_t in[12];
        size_t n;
        int code;
    } bad[] = {
        { { 0x07, 0x00 }, 2, RINGP2P_EPROTOCOL },             /* flag 7 */
        { { 0x02, 0x81, 0x80, 0x40 }, 4, RINGP2P_EPROTOCOL }, /* 1 MiB + 1 */
        { { 0x02, 0x80, 0x80, 0x80 }, 4, RINGP2P_EPROTOCOL }, /* >= 2^21, known early */
        { { 0x82, 0x00, 0x00 }, 3, RINGP2P_EVARINT },         /* non-minimal header */
        { { 0x02, 0x80, 0x00 }, 3, RINGP2P_EVARINT },         /* non-minimal length */
        { { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00 },
          11,
          RINGP2P_EVARINT }, /* 10-byte varint */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const uint8_t *p = bad[i].in;
        rp_mplex_hdr d;
        ringp2p_errinfo ei = { 0 };
        cr_assert_eq(rp_mplex_hdr_decode(&p, bad[i].in + bad[i].n, &d, &ei), bad[i].code, "bad %zu",
                     i);
        cr_assert_eq(p, bad[i].in);
        cr_assert_eq(ei.code, bad[i].code);
    }
    uint8_t buf[16];
    rp_mplex_hdr h = { RP_MPLEX_MAX_STREAM_ID + 1, 0, 0 };
    cr_assert_eq(rp_mplex_hdr_encode(buf, sizeof(buf), &h), RINGP2P_EINVAL);
    h = (rp_mplex_hdr){ 0, 7, 0 };
    cr_assert_eq(rp_mplex_hdr_encode(buf, sizeof(buf), &h), RINGP2P_EINVAL);
    h = (rp_mplex_hdr){ 0, 0, RP_MPLEX_MAX_MSG + 1 };
    cr_assert_eq(rp_mplex_hdr_encode(buf, sizeof(buf), &h), RINGP2P_EINVAL);
}

/* ---- harness: a peer that records events ----------------------------------------------------- */

typedef struct sdata {
    rp_mplex_stream *st;
    uint8_t *buf;
    size_t len, cap;
    int opened, fin, reset, reset_err, writable;
} sdata;

typedef struct peer {
    rp_mplex *s;
    sdata streams[2048];
    size_t n;
    bool consume;      /* report data consumed as it comes */
    bool accept;       /* accept opened streams */
    int session_error; /* from SESSION_ERROR */
    int last_type;     /* type of the last event */
    uint64_t now;      /* the fake clock given to receive */
    /* Input not taken while receive is blocked on a full stream, in order (as the host keeps). */
    uint8_t *pend;
    size_t pend_len;
} peer;

static sdata *find(peer *p, rp_mplex_stream *st)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->streams[i].st == st) return &p->streams[i];
    cr_assert_lt(p->n, 2048);
    sdata *d = &p->streams[p->n++];
    memset(d, 0, sizeof(*d));
    d->st = st;
    return d;
}

static void peer_init(peer *p, const rp_mplex_config *cfg)
{
    memset(p, 0, sizeof(*p));
    cr_assert_eq(rp_mplex_new(cfg, &p->s), 0);
    p->consume = p->accept = true;
}

static void peer_fini(peer *p)
{
    for (size_t i = 0; i < p->n; i++) free(p->streams[i].buf);
    free(p->pend);
    rp_mplex_free(p->s);
}

static void drain(peer *p)
{
    rp_mplex_event ev;
    while (rp_mplex_next_event(p->s, &ev)) {
        cr_assert_neq(p->last_type, RP_MPLEX_EV_SESSION_ERROR, "an event after SESSION_ERROR");
        p->last_type = ev.type;
        if (ev.type == RP_MPLEX_EV_SESSION_ERROR) {
            p->session_error = ev.err;
            continue;
        }
        sdata *d = find(p, ev.stream);
        switch (ev.type) {
        case RP_MPLEX_EV_STREAM_OPENED:
            d->opened++;
            /* The session may have died later in the same input: then accept says so. */
            if (p->accept) cr_assert_eq(rp_mplex_stream_accept(ev.stream, d), rp_mplex_error(p->s));
            break;
        case RP_MPLEX_EV_STREAM_DATA:
            cr_assert_gt(ev.len, 0);
            cr_assert_eq(d->fin, 0, "data after FIN");
            if (d->len + ev.len > d->cap) {
                d->cap = (d->len + ev.len) * 2;
                d->buf = realloc(d->buf, d->cap);
            }
            memcpy(d->buf + d->len, ev.data, ev.len);
            d->len += ev.len;
            if (p->consume) cr_assert_eq(rp_mplex_stream_consumed(ev.stream, ev.len), 0);
            break;
        case RP_MPLEX_EV_STREAM_FIN: d->fin++; break;
        case RP_MPLEX_EV_STREAM_RESET:
            d->reset++;
            d->reset_err = ev.err;
            break;
        case RP_MPLEX_EV_STREAM_WRITABLE: d->writable++; break;
        default: cr_assert_fail("unknown event %d", ev.type);
        }
    }
}

static void pend_add(peer *p, const uint8_t *b, size_t n)
{
    if (n == 0) return;
    p->pend = realloc(p->pend, p->pend_len + n);
    cr_assert_not_null(p->pend);
    memcpy(p->pend + p->pend_len, b, n);
    p->pend_len += n;
}

/*
 * Gives [*q, end) to p's session, draining events, until it is all taken or
 * receive blocks on a full stream (true: *q is where it stopped). *err gets
 * the first fatal error.
 */
static bool give(peer *p, const uint8_t **q, const uint8_t *end, int *err)
{
    for (;;) {
        ringp2p_errinfo ei;
        int r = rp_mplex_receive(p->s, q, end, p->now, &ei);
        drain(p);
        if (r == RINGP2P_EAGAIN && rp_mplex_blocked(p->s, NULL) != NULL) return true;
        if (r < 0 && r != RINGP2P_EAGAIN) {
            *err = r;
            return false;
        }
        if (r == 0 && *q == end) return false;
    }
}

/*
 * Feeds bytes to p in chunks of `chunk`, draining events; returns the first
 * fatal error or 0. While receive is blocked, bytes join p->pend instead.
 */
static int feed(peer *p, const uint8_t *b, size_t n, size_t chunk)
{
    int err = 0;
    for (size_t off = 0; off < n;) {
        size_t c = n - off < chunk ? n - off : chunk;
        const uint8_t *q = b + off, *end = b + off + c;
        if (p->pend_len > 0 || give(p, &q, end, &err)) {
            pend_add(p, q, (size_t)(b + n - q)); /* the rest waits, in order */
            return err;
        }
        if (err != 0) return err;
        off += c;
    }
    return 0;
}

/*
 * Asks p's session again (after consumed, reset, release or time passing) and
 * gives it the pending bytes; returns true while it is still blocked.
 */
static bool resume(peer *p)
{
    static const uint8_t none[1];
    int err = 0;
    const uint8_t *q = p->pend_len > 0 ? p->pend : none;
    const uint8_t *end = p->pend_len > 0 ? p->pend + p->pend_len : none;
    bool blocked = give(p, &q, end, &err);
    cr_assert_eq(err, 0);
    if (p->pend_len > 0) {
        size_t used = (size_t)(q - p->pend);
        memmove(p->pend, q, p->pend_len - used);
        p->pend_len -= used;
    }
    return blocked;
}

/* Everything `from` wants to send, as one byte string (caller frees). */
static uint8_t *collect(peer *from, size_t *len)
{
    size_t cap = 4096, n = 0;
    uint8_t *all = malloc(cap);
    while (rp_mplex_want_send(from->s)) {
        uint8_t hdr[512];
        rp_iov iov[64];
        rp_mplex_out o = { hdr, sizeof(hdr), iov, 64, 0, 0, 0 };
        ssize_t r = rp_mplex_send(from->s, &o);
        cr_assert_geq(r, 0);
        if (r == 0) break;
        cr_assert_eq((size_t)r, rp_iov_total(iov, o.niov));
        for (size_t i = 0; i < o.niov; i++) {
            if (n + iov[i].len > cap) {
                cap = (n + iov[i].len) * 2;
                all = realloc(all, cap);
            }
            memcpy(all + n, iov[i].base, iov[i].len);
            n += iov[i].len;
        }
    }
    *len = n;
    return all;
}

/* Moves everything pending from `from` to `to`. */
static int pump(peer *from, peer *to, size_t chunk)
{
    size_t n;
    uint8_t *b = collect(from, &n);
    int r = feed(to, b, n, chunk);
    free(b);
    return r;
}

static void pump_both(peer *a, peer *b, size_t chunk)
{
    for (int i = 0; i < 100 && (rp_mplex_want_send(a->s) || rp_mplex_want_send(b->s)); i++) {
        cr_assert_eq(pump(a, b, chunk), 0);
        cr_assert_eq(pump(b, a, chunk), 0);
    }
}

/* ---- in-memory pairs ------------------------------------------------------------------------- */

Test(mplex, open_write_close_exact_wire_bytes)
{
    peer a, b;
    peer_init(&a, NULL);
    peer_init(&b, NULL);
    rp_mplex_stream *st;
    cr_assert_eq(rp_mplex_open(a.s, NULL, &st), 0);
    cr_assert_eq(rp_mplex_stream_write(st, "hello", 5), 5);
    cr_assert_eq(rp_mplex_stream_close(st), 0);
    size_t n;
    uint8_t *w = collect(&a, &n);
    const uint8_t want[] = { 0x00, 0x00, 0x02, 0x05, 'h', 'e', 'l', 'l', 'o', 0x04, 0x00 };
    cr_assert_eq(n, sizeof(want));
    cr_assert_eq(memcmp(w, want, n), 0);
    cr_assert_eq(rp_mplex_stream_emitted(st), 5);
    cr_assert_eq(feed(&b, w, n, 1), 0);
    free(w);
    cr_assert_eq(b.n, 1);
    sdata *d = &b.streams[0];
    cr_assert(d->opened == 1 && d->fin == 1 && d->len == 5 && memcmp(d->buf, "hello", 5) == 0);
    cr_assert_eq(rp_mplex_stream_id(d->st), 0);
    cr_assert_not(rp_mplex_stream_is_local(d->st));
    cr_assert_eq(rp_mplex_stream_user(d->st), d);
    /* The receiver answers on the same stream with receiver flags (1, then 3). */
    cr_assert_eq(rp_mplex_stream_write(d->st, "ok", 2), 2);
    cr_assert_eq(rp_mplex_stream_close(d->st), 0);
    w = collect(&b, &n);
    const uint8_t back[] = { 0x01, 0x02, 'o', 'k', 0x03, 0x00 };
    cr_assert_eq(n, sizeof(back));
    cr_assert_eq(memcmp(w, back, n), 0);
    cr_assert_eq(feed(&a, w, n, 3), 0);
    free(w);
    cr_assert(a.streams[0].st == st && a.streams[0].len == 2 && a.streams[0].fin == 1);
    cr_assert_eq(rp_mplex_num_streams(a.s), 0);
    cr_assert_eq(rp_mplex_num_streams(b.s), 0);
    rp_mplex_stream_release(st);
    rp_mplex_stream_release(d->st);
    peer_fini(&a);
    peer_fini(&b);
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 8));
}

Test(mplex, many_streams_both_ways_every_chunking)
{
    size_t chunks[] = { 1, 5, 4096, 1 << 20 };
    for (size_t c = 0; c < 4; c++) {
        peer a, b;
        peer_init(&a, NULL);
        peer_init(&b, NULL);
        enum { N = 40 };
        static uint8_t data[2][N][40000];
        rp_mplex_stream *sa[N], *sb[N];
        for (unsigned i = 0; i < N; i++) {
            /* Both sides open stream ids 0..N-1: the flag's parity keeps them apart. */
            size_t len = (i * 997) % 40000;
            fill(data[0][i], len, i);
            fill(data[1][i], len, i + 1000);
            cr_assert_eq(rp_mplex_open(a.s, NULL, &sa[i]), 0);
            cr_assert_eq(rp_mplex_open(b.s, NULL, &sb[i]), 0);
            cr_assert_eq(rp_mplex_stream_write(sa[i], data[0][i], len), (ssize_t)len);
            cr_assert_eq(rp_mplex_stream_write(sb[i], data[1][i], len), (ssize_t)len);
            cr_assert_eq(rp_mplex_stream_close(sa[i]), 0);
            cr_assert_eq(rp_mplex_stream_close(sb[i]), 0);
        }
        pump_both(&a, &b, chunks[c]);
        for (int side = 0; side < 2; side++) {
            peer *p = side ? &a : &b; /* receives data[1 - side...] */
            int opened = 0;
            for (size_t k = 0; k < p->n; k++) {
                sdata *d = &p->streams[k];
                if (!d->opened) continue;
                opened++;
                uint64_t id = rp_mplex_stream_id(d->st);
                size_t len = (id * 997) % 40000;
                cr_assert_eq(d->len, len, "chunk %zu stream %llu", chunks[c],
                             (unsigned long long)id);
                if (len > 0) cr_assert_eq(memcmp(d->buf, data[side][id], len), 0);
                cr_assert_eq(d->fin, 1);
            }
            cr_assert_eq(opened, N);
        }
        /* Every stream is half-closed: each side closed only the ones it opened. */
        cr_assert_eq(rp_mplex_num_streams(a.s), 2 * N);
        cr_assert_eq(rp_mplex_num_streams(b.s), 2 * N);
        for (unsigned i = 0; i < N; i++) {
            rp_mplex_stream_release(sa[i]);
            rp_mplex_stream_release(sb[i]);
        }
        /* Releasing the accepted streams closes them too, and everything finishes. */
        for (size_t k = 0; k < a.n; k++)
            if (a.streams[k].opened) rp_mplex_stream_release(a.streams[k].st);
        for (size_t k = 0; k < b.n; k++)
            if (b.streams[k].opened) rp_mplex_stream_release(b.streams[k].st);
        pump_both(&a, &b, chunks[c]);
        cr_assert_eq(rp_mplex_num_streams(a.s), 0);
        cr_assert_eq(rp_mplex_num_streams(b.s), 0);
        peer_fini(&a);
        peer_fini(&b);
    }
}

Test(mplex, output_is_round_robin_and_frames_are_bounded)
{
    rp_mplex_config cfg;
    rp_mplex_config_default(&cfg);
    cfg.max_frame = 1000;
    peer a;
    peer_init(&a, &cfg);
    static uint8_t big[3][5000];
    rp_mplex_stream *st[3];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(rp_mplex_open(a.s, NULL, &st[i]), 0);
        cr_assert_eq(rp_mplex_stream_write(st[i], big[i], sizeof(big[i])), 5000);
    }
    size_t n;
    uint8_t *w = collect(&a, &n);
    const uint8_t *p = w, *end = w + n;
    uint64_t order[32];
    size_t k = 0;
    while (p < end) {
        rp_mplex_hdr h;
        cr_assert_eq(rp_mplex_hdr_decode(&p, end, &h, NULL), 0);
        if (h.flag == RP_MPLEX_MESSAGE_INITIATOR) {
            cr_assert_leq(h.length, 1000);
            cr_assert_lt(k, 32);
            order[k++] = h.id;
        }
        p += h.length;
    }
    cr_assert_eq(k, 15);
    for (size_t i = 0; i < k; i++) cr_assert_eq(order[i], i % 3, "message %zu", i);
    free(w);
    peer_fini(&a);
}

Test(mplex, half_close_both_ways)
{
    peer a, b;
    peer_init(&a, NULL);
    peer_init(&b, NULL);
    rp_mplex_stream *st;
    cr_assert_eq(rp_mplex_open(a.s, NULL, &st), 0);
    cr_assert_eq(rp_mplex_stream_close(st), 0);
    cr_assert_eq(rp_mplex_stream_close(st), 0); /* idempotent */
    cr_assert_eq(rp_mplex_stream_write(st, "x", 1), RINGP2P_ECLOSED);
    cr_assert_eq(rp_mplex_stream_writable(st), 0);
    pump_both(&a, &b, 64);
    sdata *d = &b.streams[0];
    cr_assert(d->opened == 1 && d->fin == 1);
    /* The receiver can still write after the initiator's half-close. */
    for (int i = 0; i < 3; i++) cr_assert_eq(rp_mplex_stream_write(d->st, "abc", 3), 3);
    pump_both(&a, &b, 64);
    cr_assert_eq(a.streams[0].len, 9);
    cr_assert_eq(rp_mplex_num_streams(a.s), 1);
    cr_assert_eq(rp_mplex_stream_close(d->st), 0);
    pump_both(&a, &b, 64);
    cr_assert_eq(a.streams[0].fin, 1);
    cr_assert_eq(rp_mplex_num_streams(a.s), 0);
    cr_assert_eq(rp_mplex_num_streams(b.s), 0);

    /* The other way round: the receiver closes first, the initiator keeps writing. */
    rp_mplex_stream *s2;
    cr_assert_eq(rp_mplex_open(a.s, NULL, &s2), 0);
    pump_both(&a, &b, 64);
    sdata *d2 = &b.streams[1];
    cr_assert_eq(d2->opened, 1);
    cr_assert_eq(rp_mplex_stream_close(d2->st), 0);
    pump_both(&a, &b, 64);
    cr_assert_eq(find(&a, s2)->fin, 1);
    cr_assert_eq(rp_mplex_stream_write(s2, "late", 4), 4);
    cr_assert_eq(rp_mplex_stream_close(s2), 0);
    pump_both(&a, &b, 64);
    cr_assert(d2->len == 4 && d2->fin == 1);
    cr_assert_eq(rp_mplex_num_streams(a.s), 0);
    rp_mplex_stream_release(st);
    rp_mplex_stream_release(s2);
    rp_mplex_stream_release(d->st);
    rp_mplex_stream_release(d2->st);
    peer_fini(&a);
    peer_fini(&b);
}

Test(mplex, reset_both_directions)
{
    peer a, b;
    peer_init(&a, NULL);
    peer_init(&b, NULL);
    rp_mplex_stream *st;
    cr_assert_eq(rp_mplex_open(a.s, NULL, &st), 0);
    cr_assert_eq(rp_mplex_stream_write(st, "data", 4), 4);
    pump_both(&a, &b, 64);
    sdata *d = &b.streams[0];
    cr_assert_eq(d->len, 4);
    /* a resets with data still queued: it is dropped, b sees the reset. */
    static const uint8_t more[100];
    cr_assert_eq(rp_mplex_stream_write(st, more, 100), 100);
    cr_assert_eq(rp_mplex_stream_reset(st), 0);
    cr_assert_eq(rp_mplex_stream_queued(st), 0);
    cr_assert_eq(rp_mplex_stream_write(st, "x", 1), RINGP2P_ESTREAMRESET);
    cr_assert_eq(rp_mplex_stream_close(st), RINGP2P_ESTREAMRESET);
    size_t n;
    uint8_t *w = collect(&a, &n);
    const uint8_t rst[] = { 0x06, 0x00 };
    cr_assert_eq(n, 2);
    cr_assert_eq(memcmp(w, rst, 2), 0);
    cr_assert_eq(feed(&b, w, n, 64), 0);
    free(w);
    cr_assert(d->reset == 1 && d->reset_err == RINGP2P_ESTREAMRESET && d->len == 4);
    cr_assert_eq(find(&a, st)->reset, 0, "no event for our own reset");
    cr_assert_eq(rp_mplex_stream_write(d->st, "x", 1), RINGP2P_ESTREAMRESET);
    cr_assert_eq(rp_mplex_stream_accept(d->st, NULL), RINGP2P_ESTREAMRESET);
    cr_assert_eq(rp_mplex_num_streams(a.s), 0);
    cr_assert_eq(rp_mplex_num_streams(b.s), 0);
    /* A message that crossed our reset is ignored. */
    const uint8_t crossed[] = { 0x01, 0x01, 'z', 0x03, 0x00 };
    cr_assert_eq(feed(&a, crossed, sizeof(crossed), 64), 0);
    cr_assert_eq(find(&a, st)->len, 0);

    /* A stream reset before its NewStream left is never mentioned on the wire. */
    rp_mplex_stream *s2;
    cr_assert_eq(rp_mplex_open(a.s, NULL, &s2), 0);
    cr_assert_eq(rp_mplex_stream_reset(s2), 0);
    cr_assert_eq(rp_mplex_stream_reset(s2), 0);
    w = collect(&a, &n);
    cr_assert_eq(n, 0);
    free(w);
    /* The receiver resets: flag 5 on the wire. */
    rp_mplex_stream *s3;
    cr_assert_eq(rp_mplex_open(a.s, NULL, &s3), 0);
    pump_both(&a, &b, 64);
    sdata *d3 = &b.streams[1];
    cr_assert_eq(rp_mplex_stream_id(d3->st), 2);
    cr_assert_eq(rp_mplex_stream_reset(d3->st), 0);
    w = collect(&b, &n);
    const uint8_t rst5[] = { 0x15, 0x00 };
    cr_assert(n == 2 && memcmp(w, rst5, 2) == 0);
    cr_assert_eq(feed(&a, w, n, 64), 0);
    free(w);
    cr_assert_eq(find(&a, s3)->reset_err, RINGP2P_ESTREAMRESET);
    rp_mplex_stream_release(st);
    rp_mplex_stream_release(s2);
    rp_mplex_stream_release(s3);
    rp_mplex_stream_release(d->st);
    rp_mplex_stream_release(d3->st);
    peer_fini(&a);
    peer_fini(&b);
}

Test(mplex, inbound_flood_is_refused_with_reset)
{
    rp_mplex_config cfg;
    rp_mplex_config_default(&cfg);
    cfg.max_inbound_streams = 4;
    peer a, b;
    peer_init(&a, NULL);
    peer_init(&b, &cfg);
    rp_mplex_stream *st[10];
    for (int i = 0; i < 10; i++) cr_assert_eq(rp_mplex_open(a.s, NULL, &st[i]), 0);
    cr_assert_eq(pump(&a, &b, 4096), 0);
    int opened = 0;
    for (size_t k = 0; k < b.n; k++) opened += b.streams[k].opened;
    cr_assert_eq(opened, 4);
    cr_assert_eq(rp_mplex_num_streams(b.s), 4);
    size_t n;
    uint8_t *w = collect(&b, &n);
    /* Six Resets with the receiver flag, for ids 4..9. */
    cr_assert_eq(n, 12);
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(w[2 * i], (uint8_t)((4 + i) << 3 | RP_MPLEX_RESET_RECEIVER));
        cr_assert_eq(w[2 * i + 1], 0);
    }
    cr_assert_eq(feed(&a, w, n, 4096), 0);
    free(w);
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(find(&a, st[i])->reset, i >= 4, "stream %d", i);
        rp_mplex_stream_release(st[i]);
    }
    peer_fini(&a);
    peer_fini(&b);

    /* A raw flood bigger than the control queue: reading stops until the refusals are sent. */
    cfg.max_inbound_streams = 0;
    peer_init(&b, &cfg);
    enum { M = 200 };
    uint8_t flood[M * 4];
    size_t fl = 0;
    for (int i = 0; i < M; i++) {
        rp_mplex_hdr h = { (uint64_t)i, RP_MPLEX_NEW_STREAM, 0 };
        fl += (size_t)rp_mplex_hdr_encode(flood + fl, sizeof(flood) - fl, &h);
    }
    const uint8_t *p = flood;
    int refused = 0, calls = 0;
    while (p < flood + fl) {
        int r = rp_mplex_receive(b.s, &p, flood + fl, 0, NULL);
        calls++;
        cr_assert(r == 0 || r == RINGP2P_EAGAIN);
        if (r == RINGP2P_EAGAIN) cr_assert_lt(p, flood + fl);
        size_t wn;
        uint8_t *ww = collect(&b, &wn);
        for (const uint8_t *q = ww; q < ww + wn;) {
            rp_mplex_hdr h;
            cr_assert_eq(rp_mplex_hdr_decode(&q, ww + wn, &h, NULL), 0);
            cr_assert(h.flag == RP_MPLEX_RESET_RECEIVER && h.length == 0);
            cr_assert_eq(h.id, (uint64_t)refused, "refusals in order");
            refused++;
        }
        free(ww);
    }
    cr_assert_eq(refused, M);
    cr_assert_geq(calls, M / RP_MPLEX_CTRL_QUEUE);
    cr_assert_eq(b.n, 0, "refused streams are not reported");
    cr_assert_eq(rp_mplex_num_streams(b.s), 0);
    peer_fini(&b);
}

/* block_timeout_ns = 0: the old behaviour, a message past the buffer limit resets at once. */
Test(mplex, zero_block_timeout_resets_at_the_limit)
{
    rp_mplex_config cfg;
    rp_mplex_config_default(&cfg);
    cfg.block_timeout_ns = 0;
    cfg.max_stream_buffer = RP_MPLEX_MAX_MSG; /* the smallest allowed */
    cfg.max_queued = 4 * RP_MPLEX_MAX_MSG;
    cfg.max_frame = 256 * 1024;
    peer a, b;
    peer_init(&a, &cfg);
    peer_init(&b, &cfg);
    b.consume = false;
    static uint8_t payload[RP_MPLEX_MAX_MSG + 256 * 1024];
    rp_mplex_stream *st, *ok;
    cr_assert_eq(rp_mplex_open(a.s, NULL, &st), 0);
    cr_assert_eq(rp_mplex_open(a.s, NULL, &ok), 0);
    cr_assert_eq(rp_mplex_stream_write(st, payload, sizeof(payload)), (ssize_t)sizeof(payload));
    cr_assert_eq(rp_mplex_stream_write(ok, payload, RP_MPLEX_MAX_MSG), RP_MPLEX_MAX_MSG);
    cr_assert_eq(pump(&a, &b, 65536), 0);
    sdata *ds = NULL, *dok = NULL;
    for (size_t k = 0; k < b.n; k++) {
        if (b.streams[k].st == NULL) continue;
        if (rp_mplex_stream_id(b.streams[k].st) == 0) ds = &b.streams[k];
        if (rp_mplex_stream_id(b.streams[k].st) == 1) dok = &b.streams[k];
    }
    cr_assert_not_null(ds);
    cr_assert_not_null(dok);
    /* Exactly the limit is fine; the message past it resets the stream. */
    cr_assert_eq(ds->len, RP_MPLEX_MAX_MSG);
    cr_assert_eq(ds->reset, 1);
    cr_assert_eq(ds->reset_err, RINGP2P_ELIMIT);
    cr_assert_eq(dok->len, RP_MPLEX_MAX_MSG);
    cr_assert_eq(dok->reset, 0, "the other stream is untouched");
    cr_assert_eq(rp_mplex_stream_consumed(dok->st, RP_MPLEX_MAX_MSG + 1), RINGP2P_EINVAL);
    cr_assert_eq(rp_mplex_stream_consumed(dok->st, RP_MPLEX_MAX_MSG), 0);
    cr_assert_eq(rp_mplex_stream_unconsumed(dok->st), 0);
    cr_assert_eq(pump(&b, &a, 64), 0);
    cr_assert_eq(find(&a, st)->reset_err, RINGP2P_ESTREAMRESET);
    cr_assert_eq(find(&a, ok)->reset, 0);
    /* After consuming, the limit allows more. */
    cr_assert_eq(rp_mplex_stream_write(ok, payload, RP_MPLEX_MAX_MSG), RP_MPLEX_MAX_MSG);
    cr_assert_eq(pump(&a, &b, 65536), 0);
    cr_assert_eq(dok->len, 2 * RP_MPLEX_MAX_MSG);
    cr_assert_eq(dok->reset, 0);
    rp_mplex_stream_release(st);
    rp_mplex_stream_release(ok);
    peer_fini(&a);
    peer_fini(&b);
}

Test(mplex, malformed_input_kills_the_session)
{
    struct {
        const char *name;
        uint8_t in[16];
        size_t n;
        int code;
        const char *needle;
    } v[] = {
        { "flag 7", { 0x07, 0x00 }, 2, RINGP2P_EPROTOCOL, "flag 7" },
        { "too long", { 0x00, 0x81, 0x80, 0x40 }, 4, RINGP2P_EPROTOCOL, "exceeds" },
        { "bad varint", { 0x80, 0x00 }, 2, RINGP2P_EVARINT, "varint" },
        { "duplicate NewStream", { 0x08, 0x00, 0x08, 0x00 }, 4, RINGP2P_EPROTOCOL, "open already" },
        { "data after close",
          { 0x08, 0x00, 0x0c, 0x00, 0x0a, 0x01, 'x' },
          7,
          RINGP2P_EPROTOCOL,
          "after the peer closed" },
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        for (size_t chunk = 1; chunk <= 16; chunk += 15) {
            peer b;
            peer_init(&b, NULL);
            rp_mplex_stream *mine;
            cr_assert_eq(rp_mplex_open(b.s, NULL, &mine), 0);
            cr_assert_eq(feed(&b, v[i].in, v[i].n, chunk), v[i].code, "%s", v[i].name);
            cr_assert_eq(b.session_error, v[i].code, "%s", v[i].name);
            cr_assert_eq(b.last_type, RP_MPLEX_EV_SESSION_ERROR);
            cr_assert_eq(rp_mplex_error(b.s), v[i].code);
            ringp2p_errinfo ei;
            const uint8_t *p = v[i].in;
            cr_assert_eq(rp_mplex_receive(b.s, &p, v[i].in + v[i].n, 0, &ei), v[i].code);
            cr_assert(strstr(ei.msg, v[i].needle) != NULL, "%s: %s", v[i].name, ei.msg);
            cr_assert_eq(p, v[i].in, "a dead session consumes nothing");
            cr_assert_not(rp_mplex_want_send(b.s));
            cr_assert_eq(rp_mplex_open(b.s, NULL, &mine), v[i].code);
            cr_assert_eq(rp_mplex_stream_write(mine, "x", 1), v[i].code);
            cr_assert_eq(rp_mplex_num_streams(b.s), 0);
            rp_mplex_stream_release(mine);
            peer_fini(&b);
        }
    }
    /* Tolerated: unknown streams, a second Close, bodies on Close and Reset, NewStream names. */
    const uint8_t ok[] = { 0x0a, 0x01, 'x',  0x0c, 0x00, 0x0e, 0x00, 0x00, 0x03, 'a', 'b',
                           'c',  0x04, 0x02, 'z',  'z',  0x04, 0x00, 0x06, 0x01, 'q' };
    peer b;
    peer_init(&b, NULL);
    cr_assert_eq(feed(&b, ok, sizeof(ok), 1), 0);
    cr_assert_eq(b.n, 1);
    cr_assert(b.streams[0].opened == 1 && b.streams[0].fin == 1 && b.streams[0].reset == 1);
    peer_fini(&b);
}

Test(mplex, event_queue_backpressure_stops_reading_at_a_boundary)
{
    peer b;
    peer_init(&b, NULL);
    enum { M = 300 };
    size_t n = 0;
    uint8_t buf[M * 4];
    for (int i = 0; i < M; i++) {
        rp_mplex_hdr h = { (uint64_t)i, RP_MPLEX_NEW_STREAM, 0 };
        n += (size_t)rp_mplex_hdr_encode(buf + n, sizeof(buf) - n, &h);
    }
    const uint8_t *p = buf;
    int r = rp_mplex_receive(b.s, &p, buf + n, 0, NULL);
    cr_assert_eq(r, RINGP2P_EAGAIN);
    cr_assert_null(rp_mplex_blocked(b.s, NULL), "the event queue, not a stream");
    cr_assert_gt(p, buf);
    cr_assert_lt(p, buf + n);
    rp_mplex_hdr h;
    const uint8_t *q = p;
    cr_assert_eq(rp_mplex_hdr_decode(&q, buf + n, &h, NULL), 0, "stopped at a header");
    size_t before = b.n;
    drain(&b);
    cr_assert_eq(b.n - before, RP_MPLEX_EVENT_QUEUE - 1);
    cr_assert_eq(feed(&b, p, (size_t)(buf + n - p), n), 0);
    cr_assert_eq(b.n, M);
    cr_assert_eq(rp_mplex_num_streams(b.s), M);
    peer_fini(&b);
}

Test(mplex, writable_after_queue_limits)
{
    rp_mplex_config cfg;
    rp_mplex_config_default(&cfg);
    cfg.max_queued = 10;
    peer a;
    peer_init(&a, &cfg);
    rp_mplex_stream *st;
    cr_assert_eq(rp_mplex_open(a.s, NULL, &st), 0);
    static const uint8_t buf[64];
    cr_assert_eq(rp_mplex_stream_write(st, buf, 20), 10);
    cr_assert_eq(rp_mplex_stream_writable(st), 0);
    cr_assert_eq(rp_mplex_stream_write(st, buf + 10, 5), 0);
    drain(&a);
    cr_assert_eq(a.n, 0);
    size_t n;
    free(collect(&a, &n));
    cr_assert_eq(n, 2 + 2 + 10);
    drain(&a);
    cr_assert_eq(find(&a, st)->writable, 1);
    cr_assert_eq(rp_mplex_stream_writable(st), 10);
    rp_mplex_stream_release(st);
    peer_fini(&a);
    peer_init(&a, NULL);
    cr_assert_eq(rp_mplex_open(a.s, NULL, &st), 0);
    /* Distinct buffers: at most RP_MPLEX_STREAM_SEGS referenced; adjacent writes merge. */
    static uint8_t many[RP_MPLEX_STREAM_SEGS + 1][2];
    for (int i = 0; i < RP_MPLEX_STREAM_SEGS; i++)
        cr_assert_eq(rp_mplex_stream_write(st, many[i], 1), 0 + 1);
    cr_assert_eq(rp_mplex_stream_write(st, many[RP_MPLEX_STREAM_SEGS], 1), 0);
    cr_assert_eq(rp_mplex_stream_write(st, many[RP_MPLEX_STREAM_SEGS - 1] + 1, 1), 1, "merges");
    cr_assert_eq(rp_mplex_stream_queued(st), RP_MPLEX_STREAM_SEGS + 1);
    free(collect(&a, &n));
    cr_assert_eq(rp_mplex_stream_emitted(st), RP_MPLEX_STREAM_SEGS + 1);
    rp_mplex_stream_release(st);
    peer_fini(&a);
}

Test(mplex, send_limits_and_config_bounds)
{
    peer a;
    peer_init(&a, NULL);
    rp_mplex_stream *st;
    cr_assert_eq(rp_mplex_open(a.s, NULL, &st), 0);
    static const uint8_t buf[1000];
    cr_assert_eq(rp_mplex_stream_write(st, buf, sizeof(buf)), 1000);
    uint8_t hdr[64];
    rp_iov iov[8];
    rp_mplex_out o = { hdr, 1, iov, 8, 0, 0, 0 };
    cr_assert_eq(rp_mplex_send(a.s, &o), RINGP2P_ENOBUF);
    o = (rp_mplex_out){ hdr, sizeof(hdr), iov, 8, 100, 0, 0 };
    ssize_t r = rp_mplex_send(a.s, &o);
    cr_assert_leq(r, 100);
    cr_assert_gt(r, 2);
    /* NewStream, then a message cut short to fit the budget. */
    uint64_t e = rp_mplex_stream_emitted(st);
    cr_assert_gt(e, 0);
    cr_assert_eq((uint64_t)r, 2 + (e < 128 ? 2 : 3) + e);
    o = (rp_mplex_out){ NULL, 0, iov, 8, 0, 0, 0 };
    cr_assert_eq(rp_mplex_send(a.s, &o), RINGP2P_EINVAL);
    rp_mplex_stream_release(st);
    peer_fini(&a);

    rp_mplex_config cfg;
    rp_mplex_config_default(&cfg);
    cfg.max_outbound_streams = 2;
    peer_init(&a, &cfg);
    rp_mplex_stream *x, *y, *z;
    cr_assert_eq(rp_mplex_open(a.s, NULL, &x), 0);
    cr_assert_eq(rp_mplex_open(a.s, NULL, &y), 0);
    cr_assert_eq(rp_mplex_open(a.s, NULL, &z), RINGP2P_ELIMIT);
    cr_assert_eq(rp_mplex_stream_reset(x), 0);
    cr_assert_eq(rp_mplex_open(a.s, NULL, &z), 0);
    cr_assert_eq(rp_mplex_stream_id(z), 2);
    rp_mplex_stream_release(x);
    rp_mplex_stream_release(y);
    rp_mplex_stream_release(z);
    peer_fini(&a);

    rp_mplex *s;
    struct {
        rp_mplex_config c;
    } bad[5];
    for (int i = 0; i < 5; i++) rp_mplex_config_default(&bad[i].c);
    bad[0].c.max_stream_buffer = RP_MPLEX_MAX_MSG - 1;
    bad[1].c.max_outbound_streams = 0;
    bad[2].c.max_frame = 0;
    bad[3].c.max_frame = RP_MPLEX_MAX_MSG + 1;
    bad[4].c.max_queued = 0;
    for (int i = 0; i < 5; i++) cr_assert_eq(rp_mplex_new(&bad[i].c, &s), RINGP2P_EINVAL);
    rp_mplex_free(NULL);
}

/* ---- blocking on a full stream (fake clock) -------------------------------------------------- */

#define SEC UINT64_C(1000000000)
#define BIG (RP_MPLEX_MAX_MSG + 300 * 1024) /* the limit, then two more messages */

/*
 * Two peers with the smallest buffer, 256 KiB messages and the default 5 s
 * block timeout; b consumes nothing by itself.
 */
static void block_pair(peer *a, peer *b)
{
    rp_mplex_config cfg;
    rp_mplex_config_default(&cfg);
    cfg.max_stream_buffer = RP_MPLEX_MAX_MSG;
    cfg.max_frame = 256 * 1024;
    cfg.max_queued = 4 * RP_MPLEX_MAX_MSG;
    peer_init(a, &cfg);
    peer_init(b, &cfg);
    b->consume = false;
}

/* b's record of the peer's stream with id `id` (opened by a). */
static sdata *theirs(peer *b, uint64_t id)
{
    for (size_t k = 0; k < b->n; k++)
        if (b->streams[k].opened && rp_mplex_stream_id(b->streams[k].st) == id)
            return &b->streams[k];
    cr_assert_fail("no stream %llu", (unsigned long long)id);
    return NULL;
}

/*
 * a writes BIG bytes on a new stream to b, which reads nothing: b takes
 * exactly its buffer's worth, then blocks after the next message's header.
 */
static sdata *fill_until_blocked(peer *a, peer *b, const uint8_t *payload, size_t chunk,
                                 rp_mplex_stream **st)
{
    cr_assert_eq(rp_mplex_open(a->s, NULL, st), 0);
    cr_assert_eq(rp_mplex_stream_write(*st, payload, BIG), (ssize_t)BIG);
    cr_assert_eq(pump(a, b, chunk), 0);
    sdata *d = theirs(b, rp_mplex_stream_id(*st));
    cr_assert_eq(d->len, RP_MPLEX_MAX_MSG, "exactly the buffer's worth (%zu)", d->len);
    cr_assert_eq(d->reset, 0);
    uint64_t since = 0;
    cr_assert_eq(rp_mplex_blocked(b->s, &since), d->st);
    cr_assert_eq(since, b->now);
    cr_assert_eq(rp_mplex_next_timeout(b->s), b->now + 5 * SEC);
    /* what waits: the blocked message's payload and the last message, header and all */
    cr_assert_gt(b->pend_len, BIG - RP_MPLEX_MAX_MSG);
    cr_assert_lt(b->pend_len, BIG - RP_MPLEX_MAX_MSG + 2 * RP_MPLEX_HEADER_MAX);
    return d;
}

/*
 * As fill_until_blocked (65536-byte reads), with another stream `*other`
 * opened first whose message `msg`, written after, waits behind the blocked
 * one; b's record of it in *dother.
 */
static sdata *block_behind(peer *a, peer *b, const uint8_t *payload, rp_mplex_stream **st,
                           rp_mplex_stream **other, const char *msg, sdata **dother)
{
    cr_assert_eq(rp_mplex_open(a->s, NULL, other), 0);
    sdata *d = fill_until_blocked(a, b, payload, 65536, st);
    *dother = theirs(b, rp_mplex_stream_id(*other));
    cr_assert_eq(rp_mplex_stream_write(*other, msg, strlen(msg)), (ssize_t)strlen(msg));
    cr_assert_eq(pump(a, b, 65536), 0);
    cr_assert_eq((*dother)->len, 0, "another stream's message waits behind the blocked one");
    return d;
}

/*
 * A message that would pass the stream's buffer stops reading at its
 * boundary; consuming too little keeps it blocked (but restarts the wait),
 * consuming enough lets the rest through byte-exact. Headers split across
 * inputs (5-byte chunks) block alike.
 */
Test(mplex, full_stream_blocks_until_consumed)
{
    static uint8_t payload[BIG];
    fill(payload, sizeof(payload), 7);
    static const size_t chunks[] = { 5, 65536 };
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        peer a, b;
        block_pair(&a, &b);
        b.now = 1000;
        rp_mplex_stream *st;
        sdata *d = fill_until_blocked(&a, &b, payload, chunks[c], &st);
        cr_assert(memcmp(d->buf, payload, d->len) == 0);
        /* blocked: nothing more is taken, new bytes included */
        const uint8_t *q = payload;
        cr_assert_eq(rp_mplex_receive(b.s, &q, payload + 10, b.now, NULL), RINGP2P_EAGAIN);
        cr_assert_eq(q, payload);
        /* too little room for the 256 KiB message: still blocked, but the wait starts over */
        b.now += 3 * SEC;
        cr_assert_eq(rp_mplex_stream_consumed(d->st, 100 * 1024), 0);
        cr_assert(resume(&b));
        cr_assert_eq(rp_mplex_next_timeout(b.s), b.now + 5 * SEC);
        cr_assert_eq(d->len, RP_MPLEX_MAX_MSG);
        /* room: the rest arrives in order, and reading goes on */
        cr_assert_eq(rp_mplex_stream_consumed(d->st, RP_MPLEX_MAX_MSG - 100 * 1024), 0);
        cr_assert_not(resume(&b));
        cr_assert_eq(b.pend_len, 0);
        cr_assert_null(rp_mplex_blocked(b.s, NULL));
        cr_assert_eq(rp_mplex_next_timeout(b.s), UINT64_MAX);
        cr_assert_eq(d->len, BIG);
        cr_assert(memcmp(d->buf, payload, BIG) == 0, "chunk %zu: bytes differ", chunks[c]);
        cr_assert_eq(d->reset, 0);
        cr_assert_leq(rp_mplex_stream_unconsumed(d->st), RP_MPLEX_MAX_MSG);
        rp_mplex_stream_release(st);
        peer_fini(&a);
        peer_fini(&b);
    }
}

/*
 * A stream whose reader makes no progress for block_timeout_ns is reset
 * (RINGP2P_ELIMIT here, a Reset at the writer) and reading goes on; a
 * message for another stream that arrived behind the blocked one waits until
 * then (head-of-line blocking: the price of blocking).
 */
Test(mplex, full_stream_reset_after_the_block_timeout)
{
    static uint8_t payload[BIG];
    fill(payload, sizeof(payload), 9);
    peer a, b;
    block_pair(&a, &b);
    b.now = 42;
    rp_mplex_stream *other, *st;
    sdata *dother;
    sdata *d = block_behind(&a, &b, payload, &st, &other, "hello", &dother);
    b.now += 5 * SEC - 1;
    cr_assert(resume(&b), "still blocked 1 ns before the deadline");
    cr_assert_eq(d->reset, 0);
    cr_assert_eq(dother->len, 0);
    b.now += 1;
    cr_assert_not(resume(&b));
    cr_assert_eq(d->reset, 1);
    cr_assert_eq(d->reset_err, RINGP2P_ELIMIT);
    cr_assert_eq(d->len, RP_MPLEX_MAX_MSG, "nothing more of the reset stream");
    cr_assert_eq(dother->len, 5);
    cr_assert(memcmp(dother->buf, "hello", 5) == 0);
    cr_assert_eq(b.pend_len, 0);
    cr_assert_null(rp_mplex_blocked(b.s, NULL));
    /* the writer hears the reset; the other stream lives on */
    cr_assert_eq(pump(&b, &a, 64), 0);
    cr_assert_eq(find(&a, st)->reset_err, RINGP2P_ESTREAMRESET);
    cr_assert_eq(rp_mplex_stream_write(other, "again", 5), 5);
    cr_assert_eq(pump(&a, &b, 65536), 0);
    cr_assert_eq(dother->len, 10);
    cr_assert_eq(find(&a, other)->reset, 0);
    rp_mplex_stream_release(st);
    rp_mplex_stream_release(other);
    peer_fini(&a);
    peer_fini(&b);
}

/*
 * The application releasing or resetting the full stream ends the block at
 * once, without waiting for the timeout: the rest of its message is skipped
 * and what waited behind it is read.
 */
Test(mplex, releasing_or_resetting_the_full_stream_unblocks)
{
    static uint8_t payload[BIG];
    fill(payload, sizeof(payload), 11);
    for (int how = 0; how < 2; how++) {
        peer a, b;
        block_pair(&a, &b);
        rp_mplex_stream *other, *st;
        sdata *dother;
        sdata *d = block_behind(&a, &b, payload, &st, &other, "behind", &dother);
        if (how == 0)
            rp_mplex_stream_release(d->st);
        else
            cr_assert_eq(rp_mplex_stream_reset(d->st), 0);
        cr_assert_null(rp_mplex_blocked(b.s, NULL), "how %d: still blocked", how);
        cr_assert_eq(rp_mplex_next_timeout(b.s), UINT64_MAX);
        cr_assert_not(resume(&b));
        cr_assert_eq(b.pend_len, 0);
        cr_assert_eq(d->len, RP_MPLEX_MAX_MSG, "how %d: the rest is skipped", how);
        cr_assert_eq(d->reset, 0, "how %d: no event for our own action", how);
        cr_assert_eq(dother->len, 6, "how %d", how);
        cr_assert_eq(pump(&b, &a, 64), 0);
        /* release closes our direction gracefully; reset resets the writer */
        cr_assert_eq(find(&a, st)->reset, how == 1, "how %d", how);
        if (how == 0) cr_assert_eq(find(&a, st)->fin, 1);
        if (how == 1) rp_mplex_stream_release(d->st);
        rp_mplex_stream_release(st);
        rp_mplex_stream_release(other);
        peer_fini(&a);
        peer_fini(&b);
    }
}
