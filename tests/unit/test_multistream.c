#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multistream/multistream.h"

/*
 * Wire bytes come from the spec ("na" is 0x036e610a, "ls" is 0x036c730a,
 * connections/README.md and the multistream-select README); the listing
 * layout is the README's "ls example in detail", which go-multistream
 * (before v0.3) and js-libp2p's handle.ts both produce.
 */

#define HDR "\x13/multistream/1.0.0\n"
#define NA  "\x03na\n"
#define LS  "\x03ls\n"

/* One direction of an in-memory channel: everything written, plus where the reader is. */
typedef struct pipe_ {
    uint8_t *b;
    size_t cap, len, off;
    size_t writes; /* rp_mss_send calls that produced bytes (each is one write to the socket) */
} pipe_;

static void pipe_init(pipe_ *p)
{
    memset(p, 0, sizeof(*p));
    p->cap = 1 << 18;
    p->b = malloc(p->cap);
    cr_assert_not_null(p->b);
}

static void pipe_free(pipe_ *p)
{
    free(p->b);
}

static void pipe_put(pipe_ *p, const void *data, size_t len)
{
    cr_assert_leq(p->len + len, p->cap);
    memcpy(p->b + p->len, data, len);
    p->len += len;
}

static bool drain(rp_mss *m, pipe_ *p)
{
    rp_wbuf w = { p->b, p->cap, p->len };
    size_t want = rp_mss_pending(m);
    ssize_t n = rp_mss_send(m, &w);
    if (n < 0 && rp_mss_status(m) == RP_MSS_FAILED && want == 0) {
        cr_assert_eq(n, rp_mss_error(m));
        return false;
    }
    cr_assert_geq(n, 0, "send failed: %zd", n);
    cr_assert_eq((size_t)n, want, "send wrote what pending announced");
    cr_assert_eq(rp_mss_pending(m), 0);
    p->len = w.len;
    if (n > 0) p->writes++;
    return n > 0;
}

/* Feeds the unread part of `p` to `m`, `chunk` bytes per call at most. */
static bool feed(rp_mss *m, pipe_ *p, size_t chunk, ringp2p_errinfo *ei)
{
    bool progress = false;
    while (rp_mss_status(m) == RP_MSS_IN_PROGRESS && p->off < p->len) {
        size_t take = p->len - p->off < chunk ? p->len - p->off : chunk;
        ssize_t r = rp_mss_recv(m, p->b + p->off, take, ei);
        if (r < 0) {
            cr_assert_eq(rp_mss_status(m), RP_MSS_FAILED);
            cr_assert_eq(rp_mss_error(m), (int)r);
            return true;
        }
        cr_assert_leq((size_t)r, take);
        cr_assert(r == (ssize_t)take || rp_mss_status(m) == RP_MSS_DONE,
                  "only the completing message may leave input unconsumed");
        p->off += (size_t)r;
        progress = true;
    }
    return progress;
}

typedef struct pair {
    rp_mss d, l;
    pipe_ d2l, l2d;
    ringp2p_errinfo dei, lei;
} pair;

static pair *pair_new(void)
{
    pair *p = calloc(1, sizeof(*p));
    cr_assert_not_null(p);
    pipe_init(&p->d2l);
    pipe_init(&p->l2d);
    return p;
}

static void pair_free(pair *p)
{
    pipe_free(&p->d2l);
    pipe_free(&p->l2d);
    free(p);
}

/* Runs both sides until nothing moves; bytes left unread in a pipe are application data. */
static void pump(pair *p, size_t chunk)
{
    for (int i = 0; i < 10000; i++) {
        bool progress = drain(&p->d, &p->d2l);
        progress |= drain(&p->l, &p->l2d);
        progress |= feed(&p->l, &p->d2l, chunk, &p->lei);
        progress |= feed(&p->d, &p->l2d, chunk, &p->dei);
        if (!progress) return;
    }
    cr_assert_fail("negotiation did not settle");
}

static void assert_bytes(const pipe_ *p, const char *want, size_t want_len)
{
    cr_assert_eq(p->len, want_len, "wire length %zu, want %zu", p->len, want_len);
    cr_assert_arr_eq(p->b, want, want_len);
}
#define ASSERT_WIRE(p, lit) assert_bytes((p), (lit), sizeof(lit) - 1)

static void assert_agreed(const rp_mss *m, const char *proto, int idx)
{
    cr_assert_eq(rp_mss_status(m), RP_MSS_DONE);
    size_t len = 0;
    const char *got = rp_mss_protocol(m, &len);
    cr_assert_not_null(got);
    cr_assert_str_eq(got, proto);
    cr_assert_eq(len, strlen(proto));
    cr_assert_eq(rp_mss_protocol_index(m), idx);
}

/* ---- the message codec ------------------------------------------------------------------- */

Test(multistream, encode_line_vectors)
{
    static const struct {
        const char *msg;
        const char *wire;
        size_t wire_len;
    } v[] = {
        { "na", NA, 4 },
        { "ls", LS, 4 },
        { "/multistream/1.0.0", HDR, 20 },
        { "/yamux/1.0.0", "\x0d/yamux/1.0.0\n", 14 },
        { "", "\x01\n", 2 },
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        uint8_t buf[64];
        ssize_t n = rp_mss_encode_line(v[i].msg, strlen(v[i].msg), buf, sizeof(buf));
        cr_assert_eq(n, (ssize_t)v[i].wire_len, "%s", v[i].msg);
        cr_assert_arr_eq(buf, v[i].wire, v[i].wire_len);

        const uint8_t *p = (const uint8_t *)v[i].wire, *msg = NULL;
        size_t len = 99;
        cr_assert_eq(rp_mss_decode_line(&p, p + v[i].wire_len, &msg, &len, NULL), 0);
        cr_assert_eq(len, strlen(v[i].msg));
        cr_assert_arr_eq(msg, v[i].msg, len);
        cr_assert_eq(p, (const uint8_t *)v[i].wire + v[i].wire_len);
    }
    /* 0x036e610a from connections/README.md, byte for byte. */
    static const uint8_t na_hex[] = { 0x03, 0x6e, 0x61, 0x0a };
    cr_assert_arr_eq(NA, na_hex, 4);
}

Test(multistream, encode_line_limits)
{
    static char big[RP_MSS_MSG_MAX + 1];
    memset(big, 'x', sizeof(big));
    uint8_t buf[RP_MSS_MSG_MAX + 8];
    /* 1023 bytes + newline = 1024: the largest message, with a 2-byte prefix 0x80 0x08. */
    cr_assert_eq(rp_mss_encode_line(big, RP_MSS_PROTO_MAX, buf, sizeof(buf)), 1026);
    cr_assert_eq(buf[0], 0x80);
    cr_assert_eq(buf[1], 0x08);
    cr_assert_eq(buf[1025], '\n');
    cr_assert_eq(rp_mss_encode_line(big, RP_MSS_PROTO_MAX + 1, buf, sizeof(buf)), RINGP2P_EINVAL);
    cr_assert_eq(rp_mss_encode_line("na", 2, buf, 3), RINGP2P_ENOBUF);
}

Test(multistream, decode_line_malformed)
{
    static const struct {
        const char *wire;
        size_t len;
        int err;
        const char *words; /* must appear in the error message */
    } v[] = {
        { "", 0, RINGP2P_ETRUNCATED, "length prefix" },
        { "\x80", 1, RINGP2P_ETRUNCATED, "length prefix" },
        { "\x03na", 3, RINGP2P_ETRUNCATED, "inside a message" },
        { "\x00", 1, RINGP2P_EPROTOCOL, "zero-length" },
        { "\x03nax", 4, RINGP2P_EPROTOCOL, "newline" },
        { "\x80\x00", 2, RINGP2P_EVARINT, "minimal" },
        { "\x83\x00na\n", 5, RINGP2P_EVARINT, "minimal" },
        { "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10, RINGP2P_EVARINT, "9 bytes" },
        { "\x81\x08", 2, RINGP2P_ELIMIT, "1025 bytes" },
        { "\xff\xff\x03", 3, RINGP2P_ELIMIT, "exceeds" },
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        const uint8_t *start = (const uint8_t *)v[i].wire, *p = start, *msg = NULL;
        size_t len = 0;
        ringp2p_errinfo ei = { 0 };
        cr_assert_eq(rp_mss_decode_line(&p, p + v[i].len, &msg, &len, &ei), v[i].err, "case %zu",
                     i);
        cr_assert_eq(p, start, "cursor must not move on error");
        cr_assert_eq(ei.code, v[i].err);
        cr_assert_not_null(strstr(ei.msg, v[i].words), "case %zu: '%s'", i, ei.msg);
    }
}

/* ---- exact exchanges ----------------------------------------------------------------------- */

Test(multistream, single_protocol_exact_wire)
{
    static const char *const dprotos[] = { "/yamux/1.0.0" };
    static const char *const lprotos[] = { "/mplex/6.7.0", "/yamux/1.0.0" };
    pair *p = pair_new();
    cr_assert_eq(rp_mss_init_dialer(&p->d, dprotos, 1, 0, NULL), 0);
    cr_assert_eq(rp_mss_init_listener(&p->l, lprotos, 2, NULL, NULL, NULL), 0);
    cr_assert_not(rp_mss_may_write(&p->d));
    pump(p, SIZE_MAX);

    assert_agreed(&p->d, "/yamux/1.0.0", 0);
    assert_agreed(&p->l, "/yamux/1.0.0", 1);
    cr_assert(rp_mss_may_write(&p->d));
    cr_assert(rp_mss_may_write(&p->l));
    /* The dialer pipelines header and proposal in one write (multistream-select README). */
    ASSERT_WIRE(&p->d2l, HDR "\x0d/yamux/1.0.0\n");
    ASSERT_WIRE(&p->l2d, HDR "\x0d/yamux/1.0.0\n");
    cr_assert_eq(p->d2l.writes, 1);
    cr_assert_eq(p->d2l.off, p->d2l.len, "every byte was negotiation");
    cr_assert_eq(p->l2d.off, p->l2d.len);
    /* Done: later input is not the negotiator's. */
    cr_assert_eq(rp_mss_recv(&p->l, (const uint8_t *)"abc", 3, NULL), 0);
    cr_assert_eq(rp_mss_recv(&p->d, (const uint8_t *)"abc", 3, NULL), 0);
    pair_free(p);
}

Test(multistream, listener_answers_header_and_reply_in_one_write)
{
    /* A host that reads before it writes sends header and answer together. */
    static const char *const lprotos[] = { "/noise" };
    rp_mss l;
    cr_assert_eq(rp_mss_init_listener(&l, lprotos, 1, NULL, NULL, NULL), 0);
    static const char in[] = HDR "\x07/noise\n";
    cr_assert_eq(rp_mss_recv(&l, (const uint8_t *)in, sizeof(in) - 1, NULL), sizeof(in) - 1);
    uint8_t out[64];
    rp_wbuf w = rp_wbuf_make(out, sizeof(out));
    cr_assert_eq(rp_mss_send(&l, &w), sizeof(in) - 1);
    cr_assert_arr_eq(out, in, sizeof(in) - 1);
}

Test(multistream, preference_list_with_na_fallbacks)
{
    static const char *const dprotos[] = { "/tls/1.0.0", "/ringp2p/signed/1.0.0", "/noise" };
    static const char *const lprotos[] = { "/plaintext/2.0.0", "/noise" };
    static const size_t chunks[] = { SIZE_MAX, 1, 2, 3, 7 };
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        pair *p = pair_new();
        cr_assert_eq(rp_mss_init_dialer(&p->d, dprotos, 3, 0, NULL), 0);
        cr_assert_eq(rp_mss_init_listener(&p->l, lprotos, 2, NULL, NULL, NULL), 0);
        pump(p, chunks[c]);
        assert_agreed(&p->d, "/noise", 2);
        assert_agreed(&p->l, "/noise", 1);
        ASSERT_WIRE(&p->d2l, HDR "\x0b/tls/1.0.0\n"
                                 "\x16/ringp2p/signed/1.0.0\n"
                                 "\x07/noise\n");
        ASSERT_WIRE(&p->l2d, HDR NA NA "\x07/noise\n");
        cr_assert_eq(p->d2l.writes, 3, "one proposal per round trip after the first");
        pair_free(p);
    }
}

Test(multistream, no_common_protocol_names_the_offer)
{
    static const char *const dprotos[] = { "/yamux/1.0.0", "/mplex/6.7.0" };
    static const char *const lprotos[] = { "/quic-muxer/1" };
    pair *p = pair_new();
    cr_assert_eq(rp_mss_init_dialer(&p->d, dprotos, 2, 0, NULL), 0);
    cr_assert_eq(rp_mss_init_listener(&p->l, lprotos, 1, NULL, NULL, NULL), 0);
    pump(p, SIZE_MAX);
    cr_assert_eq(rp_mss_status(&p->d), RP_MSS_FAILED);
    cr_assert_eq(rp_mss_error(&p->d), RINGP2P_ENEGOTIATION);
    cr_assert_eq(p->dei.code, RINGP2P_ENEGOTIATION);
    cr_assert_not_null(strstr(p->dei.msg, "no common protocol"), "%s", p->dei.msg);
    cr_assert_not_null(strstr(p->dei.msg, "/yamux/1.0.0, /mplex/6.7.0"), "%s", p->dei.msg);
    cr_assert_null(rp_mss_protocol(&p->d, NULL));
    cr_assert_eq(rp_mss_protocol_index(&p->d), -1);
    /* The listener just waits for another proposal; the dialer's host closes the channel. */
    cr_assert_eq(rp_mss_status(&p->l), RP_MSS_IN_PROGRESS);
    ASSERT_WIRE(&p->l2d, HDR NA NA);

    /* Sticky: the same error again, and no output. */
    ringp2p_errinfo ei = { 0 };
    cr_assert_eq(rp_mss_recv(&p->d, (const uint8_t *)NA, 4, &ei), RINGP2P_ENEGOTIATION);
    cr_assert_eq(ei.code, RINGP2P_ENEGOTIATION);
    uint8_t out[64];
    rp_wbuf w = rp_wbuf_make(out, sizeof(out));
    cr_assert_eq(rp_mss_send(&p->d, &w), RINGP2P_ENEGOTIATION);
    cr_assert_eq(w.len, 0);
    cr_assert_not(rp_mss_may_write(&p->d));
    pair_free(p);
}

/* ---- lazy select ------------------------------------------------------------------------- */

Test(multistream, lazy_dialer_data_in_same_write)
{
    static const char *const dprotos[] = { "/echo/1.0.0" };
    static const char *const lprotos[] = { "/ipfs/ping/1.0.0", "/echo/1.0.0" };
    rp_mss d, l;
    cr_assert_eq(rp_mss_init_dialer(&d, dprotos, 1, RP_MSS_LAZY, NULL), 0);
    cr_assert_eq(rp_mss_init_listener(&l, lprotos, 2, NULL, NULL, NULL), 0);

    /* Dialer: header, proposal and application bytes in one buffer, one write. */
    uint8_t wire[256];
    rp_wbuf w = rp_wbuf_make(wire, sizeof(wire));
    cr_assert_not(rp_mss_may_write(&d));
    cr_assert_eq(rp_mss_send(&d, &w), 20 + 13);
    cr_assert(rp_mss_may_write(&d), "lazy: application data may follow the proposal");
    cr_assert_eq(rp_mss_status(&d), RP_MSS_IN_PROGRESS);
    rp_wbuf_put(&w, "hello world", 11);
    static const char want[] = HDR "\x0c/echo/1.0.0\nhello world";
    cr_assert_eq(w.len, sizeof(want) - 1);
    cr_assert_arr_eq(wire, want, sizeof(want) - 1);

    /* Listener takes exactly the negotiation bytes and hands the rest back. */
    ssize_t n = rp_mss_recv(&l, wire, w.len, NULL);
    cr_assert_eq(n, 33);
    assert_agreed(&l, "/echo/1.0.0", 1);
    cr_assert_arr_eq(wire + n, "hello world", 11);

    /* Listener answers and its own application bytes follow in the same buffer. */
    uint8_t back[256];
    rp_wbuf b = rp_wbuf_make(back, sizeof(back));
    cr_assert(!rp_mss_may_write(&l), "the echo is still pending");
    cr_assert_eq(rp_mss_send(&l, &b), 33);
    cr_assert(rp_mss_may_write(&l));
    rp_wbuf_put(&b, "HELLO WORLD", 11);

    /* Dialer confirms on the echo; the reply bytes after it are the application's. */
    for (size_t split = 0; split <= b.len; split++) {
        rp_mss d2 = d; /* the object holds no self pointers: copies are independent */
        ssize_t a = rp_mss_recv(&d2, back, split, NULL);
        cr_assert_eq(a, split < 33 ? (ssize_t)split : 33);
        ssize_t c = rp_mss_recv(&d2, back + a, b.len - (size_t)a, NULL);
        cr_assert_eq((size_t)(a + c), 33, "split %zu", split);
        assert_agreed(&d2, "/echo/1.0.0", 0);
    }
}

Test(multistream, lazy_dialer_refused)
{
    static const char *const dprotos[] = { "/echo/1.0.0" };
    static const char *const lprotos[] = { "/ipfs/ping/1.0.0" };
    pair *p = pair_new();
    cr_assert_eq(rp_mss_init_dialer(&p->d, dprotos, 1, RP_MSS_LAZY, NULL), 0);
    cr_assert_eq(rp_mss_init_listener(&p->l, lprotos, 1, NULL, NULL, NULL), 0);
    drain(&p->d, &p->d2l);
    cr_assert(rp_mss_may_write(&p->d));
    pipe_put(&p->d2l, "\x05hello", 6); /* optimistic application bytes */
    pump(p, SIZE_MAX);
    cr_assert_eq(rp_mss_error(&p->d), RINGP2P_ENEGOTIATION);
    cr_assert_not_null(strstr(p->dei.msg, "/echo/1.0.0"), "%s", p->dei.msg);
    cr_assert_not_null(strstr(p->dei.msg, "lazy"), "%s", p->dei.msg);
    cr_assert_not(rp_mss_may_write(&p->d));
    /* The listener then reads the optimistic bytes as a message and fails, but the "na" it
     * owed still goes out first. */
    cr_assert_eq(rp_mss_error(&p->l), RINGP2P_EPROTOCOL);
    ASSERT_WIRE(&p->l2d, HDR NA);
    pair_free(p);
}

/* ---- incremental input ------------------------------------------------------------------- */

Test(multistream, listener_byte_by_byte)
{
    static const char *const lprotos[] = { "/ipfs/id/1.0.0" };
    rp_mss l;
    cr_assert_eq(rp_mss_init_listener(&l, lprotos, 1, NULL, NULL, NULL), 0);
    static const char in[] = HDR "\x0b/unknown/1\n"
                                 "\x0f/ipfs/id/1.0.0\nPAYLOAD";
    size_t neg = sizeof(in) - 1 - 7;
    for (size_t i = 0; i < sizeof(in) - 1; i++) {
        ssize_t n = rp_mss_recv(&l, (const uint8_t *)in + i, 1, NULL);
        if (i < neg) {
            cr_assert_eq(n, 1, "byte %zu", i);
            cr_assert_eq(rp_mss_status(&l), i + 1 == neg ? RP_MSS_DONE : RP_MSS_IN_PROGRESS,
                         "byte %zu", i);
        } else {
            cr_assert_eq(n, 0, "byte %zu is application data", i);
        }
    }
    assert_agreed(&l, "/ipfs/id/1.0.0", 0);
    uint8_t out[128];
    rp_wbuf w = rp_wbuf_make(out, sizeof(out));
    static const char want[] = HDR NA "\x0f/ipfs/id/1.0.0\n";
    cr_assert_eq(rp_mss_send(&l, &w), sizeof(want) - 1);
    cr_assert_arr_eq(out, want, sizeof(want) - 1);
}

Test(multistream, pipelined_requests_answered_in_order)
{
    static const char *const lprotos[] = { "/a", "/yes" };
    rp_mss l;
    cr_assert_eq(rp_mss_init_listener(&l, lprotos, 2, NULL, NULL, NULL), 0);
    static const char in[] = HDR "\x04/no\n" LS "\x05/yes\n"
                                 "rest";
    cr_assert_eq(rp_mss_recv(&l, (const uint8_t *)in, sizeof(in) - 1, NULL), sizeof(in) - 5);
    assert_agreed(&l, "/yes", 1);
    static const char want[] = HDR NA "\x0b\x03/a\n\x05/yes\n\n"
                                      "\x05/yes\n";
    cr_assert_eq(rp_mss_pending(&l), sizeof(want) - 1);
    uint8_t out[128];
    rp_wbuf w = rp_wbuf_make(out, sizeof(out));
    cr_assert_eq(rp_mss_send(&l, &w), sizeof(want) - 1);
    cr_assert_arr_eq(out, want, sizeof(want) - 1);
}

Test(multistream, dialer_answers_before_send_keep_order)
{
    /* A listener that answers early (go sends its header before reading): output order holds. */
    static const char *const dprotos[] = { "/a", "/b" };
    rp_mss d;
    cr_assert_eq(rp_mss_init_dialer(&d, dprotos, 2, 0, NULL), 0);
    static const char in[] = HDR NA;
    cr_assert_eq(rp_mss_recv(&d, (const uint8_t *)in, sizeof(in) - 1, NULL), sizeof(in) - 1);
    uint8_t out[64];
    rp_wbuf w = rp_wbuf_make(out, sizeof(out));
    static const char want[] = HDR "\x03/a\n\x03/b\n";
    cr_assert_eq(rp_mss_send(&d, &w), sizeof(want) - 1);
    cr_assert_arr_eq(out, want, sizeof(want) - 1);
    cr_assert_eq(rp_mss_recv(&d, (const uint8_t *)"\x03/b\n", 4, NULL), 4);
    assert_agreed(&d, "/b", 1);
}

Test(multistream, send_is_all_or_nothing)
{
    static const char *const dprotos[] = { "/yamux/1.0.0" };
    rp_mss d;
    cr_assert_eq(rp_mss_init_dialer(&d, dprotos, 1, 0, NULL), 0);
    cr_assert_eq(rp_mss_pending(&d), 34);
    uint8_t out[40];
    memset(out, 0xaa, sizeof(out));
    rp_wbuf w = rp_wbuf_make(out, 33);
    cr_assert_eq(rp_mss_send(&d, &w), RINGP2P_ENOBUF);
    cr_assert_eq(w.len, 0);
    cr_assert_eq(out[0], 0xaa, "nothing written");
    cr_assert_eq(rp_mss_pending(&d), 34);
    /* Appends after bytes already in the buffer. */
    w = rp_wbuf_make(out, sizeof(out));
    rp_wbuf_put(&w, "xy", 2);
    cr_assert_eq(rp_mss_send(&d, &w), 34);
    cr_assert_eq(w.len, 36);
    cr_assert_arr_eq(out + 2, HDR, 20);
    cr_assert_eq(rp_mss_send(&d, &w), 0, "nothing left");
}

/* ---- ls ---------------------------------------------------------------------------------- */

typedef struct listing {
    char names[64][80];
    size_t n;
} listing;

static void on_ls(void *ctx, const char *proto, size_t len)
{
    listing *l = ctx;
    cr_assert_lt(l->n, 64);
    cr_assert_lt(len, sizeof(l->names[0]));
    cr_assert_eq(strlen(proto), len);
    memcpy(l->names[l->n], proto, len + 1);
    l->n++;
}

Test(multistream, ls_then_select)
{
    static const char *const dprotos[] = { "/b" };
    static const char *const lprotos[] = { "/a", "/b", "/c" };
    static const size_t chunks[] = { SIZE_MAX, 1, 5 };
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        pair *p = pair_new();
        listing got = { 0 };
        cr_assert_eq(rp_mss_init_dialer(&p->d, dprotos, 1, 0, NULL), 0);
        cr_assert_eq(rp_mss_request_ls(&p->d, on_ls, &got), 0);
        cr_assert_eq(rp_mss_ls_count(&p->d), RINGP2P_EAGAIN);
        cr_assert_eq(rp_mss_init_listener(&p->l, lprotos, 3, NULL, NULL, NULL), 0);
        pump(p, chunks[c]);
        assert_agreed(&p->d, "/b", 0);
        assert_agreed(&p->l, "/b", 1);
        cr_assert_eq(got.n, 3);
        cr_assert_str_eq(got.names[0], "/a");
        cr_assert_str_eq(got.names[1], "/b");
        cr_assert_str_eq(got.names[2], "/c");
        cr_assert_eq(rp_mss_ls_count(&p->d), 3);
        ASSERT_WIRE(&p->d2l, HDR LS "\x03/b\n");
        cr_assert_eq(p->d2l.writes, 1);
        /* <len 13><3 /a\n><3 /b\n><3 /c\n>\n: the README's layout, as go and js send it. */
        ASSERT_WIRE(&p->l2d, HDR "\x0d\x03/a\n\x03/b\n\x03/c\n\n"
                                 "\x03/b\n");
        pair_free(p);
    }
}

Test(multistream, ls_only_dialer)
{
    static const char *const lprotos[] = { "/ipfs/kad/0.2.3", "/ipfs/kad/1.0.0",
                                           "/ipfs/bitswap/1.0.0" };
    pair *p = pair_new();
    listing got = { 0 };
    cr_assert_eq(rp_mss_init_ls_dialer(&p->d, on_ls, &got), 0);
    cr_assert_eq(rp_mss_init_listener(&p->l, lprotos, 3, NULL, NULL, NULL), 0);
    pump(p, SIZE_MAX);
    cr_assert_eq(rp_mss_status(&p->d), RP_MSS_DONE);
    cr_assert_null(rp_mss_protocol(&p->d, NULL));
    cr_assert_eq(rp_mss_ls_count(&p->d), 3);
    cr_assert_str_eq(got.names[2], "/ipfs/bitswap/1.0.0");
    ASSERT_WIRE(&p->d2l, HDR LS);
    cr_assert_eq(rp_mss_status(&p->l), RP_MSS_IN_PROGRESS, "listener waits for a proposal");
    pair_free(p);
}

static bool accept_cb_prefix(void *ctx, const char *proto, size_t len)
{
    int *calls = ctx;
    (*calls)++;
    return len >= 4 && memcmp(proto, "/cb/", 4) == 0;
}

Test(multistream, ls_refused_with_na_then_select)
{
    /* Current go-multistream answers "ls" with "na"; so does a callback-only listener. */
    static const char *const dprotos[] = { "/cb/x" };
    int calls = 0;
    pair *p = pair_new();
    listing got = { 0 };
    cr_assert_eq(rp_mss_init_dialer(&p->d, dprotos, 1, 0, NULL), 0);
    cr_assert_eq(rp_mss_request_ls(&p->d, on_ls, &got), 0);
    cr_assert_eq(rp_mss_init_listener(&p->l, NULL, 0, accept_cb_prefix, &calls, NULL), 0);
    pump(p, 1);
    cr_assert_eq(rp_mss_ls_count(&p->d), RINGP2P_EUNSUPPORTED);
    cr_assert_eq(got.n, 0);
    assert_agreed(&p->d, "/cb/x", 0);
    assert_agreed(&p->l, "/cb/x", -1);
    cr_assert_eq(calls, 1, "the callback never sees 'ls'");
    ASSERT_WIRE(&p->l2d, HDR NA "\x06/cb/x\n");
    pair_free(p);
}

Test(multistream, ls_large_listing_byte_by_byte)
{
    /* More than RP_MSS_MSG_MAX bytes: the listing is streamed, not buffered. */
    char names[40][64];
    const char *protos[40];
    for (int i = 0; i < 40; i++) {
        snprintf(names[i], sizeof(names[i]), "/some/long/protocol/name/for/listing/%02d/1.0.0", i);
        protos[i] = names[i];
    }
    static const char *const dprotos[] = { "/none" };
    pair *p = pair_new();
    listing *got = calloc(1, sizeof(*got));
    cr_assert_eq(rp_mss_init_dialer(&p->d, dprotos, 1, 0, NULL), 0);
    cr_assert_eq(rp_mss_request_ls(&p->d, on_ls, got), 0);
    cr_assert_eq(rp_mss_init_listener(&p->l, protos, 40, NULL, NULL, NULL), 0);
    pump(p, 1);
    cr_assert_gt(p->l2d.len, RP_MSS_MSG_MAX);
    cr_assert_eq(got->n, 40);
    for (int i = 0; i < 40; i++) cr_assert_str_eq(got->names[i], names[i]);
    cr_assert_eq(rp_mss_ls_count(&p->d), 40);
    cr_assert_eq(rp_mss_error(&p->d), RINGP2P_ENEGOTIATION);
    free(got);
    pair_free(p);
}

Test(multistream, ls_small_listings)
{
    /* 3-byte answers are "na" or the one-entry listing "\x01\n\n"; 1 byte is the empty list. */
    static const struct {
        const char *wire;
        size_t len;
        ssize_t count;
        size_t entries;
    } v[] = {
        { HDR NA, 24, RINGP2P_EUNSUPPORTED, 0 },
        { HDR "\x03\x01\n\n", 24, 1, 1 },
        { HDR "\x01\n", 22, 0, 0 },
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        for (size_t chunk = 1; chunk <= v[i].len; chunk++) {
            rp_mss d;
            listing got = { 0 };
            cr_assert_eq(rp_mss_init_ls_dialer(&d, on_ls, &got), 0);
            for (size_t o = 0; o < v[i].len; o += chunk) {
                size_t n = v[i].len - o < chunk ? v[i].len - o : chunk;
                cr_assert_eq(rp_mss_recv(&d, (const uint8_t *)v[i].wire + o, n, NULL), (ssize_t)n);
            }
            cr_assert_eq(rp_mss_status(&d), RP_MSS_DONE, "case %zu chunk %zu", i, chunk);
            cr_assert_eq(rp_mss_ls_count(&d), v[i].count);
            cr_assert_eq(got.n, v[i].entries);
            if (got.n) cr_assert_str_eq(got.names[0], "");
        }
    }
}

Test(multistream, ls_malformed_listings)
{
    static const struct {
        const char *wire; /* after the header */
        size_t len;
        int err;
        const char *words;
    } v[] = {
        { "\x02\x01\n", 3, RINGP2P_EPROTOCOL, "overruns" },
        { "\x04\x03/a\n", 5, RINGP2P_EPROTOCOL, "overruns" },
        { "\x05\x03/a\nx", 6, RINGP2P_EPROTOCOL, "does not end with a newline" },
        { "\x05\x03/ax\n", 6, RINGP2P_EPROTOCOL, "newline" },
        { "\x03\x02\n\n", 4, RINGP2P_EPROTOCOL, "overruns" },
        { "\x03"
          "ab\n",
          4, RINGP2P_EPROTOCOL, "overruns" },
        { "\x03\x80\x80\n", 4, RINGP2P_ELIMIT, "exceeds" },
        { "\x02\x80\x80", 3, RINGP2P_EPROTOCOL, "inside an entry" },
        { "\x06\x00", 2, RINGP2P_EPROTOCOL, "zero-length" },
        { "\x00", 1, RINGP2P_EPROTOCOL, "zero-length" },
        { "\x81\x80\x04", 3, RINGP2P_ELIMIT, "65537" },
        { "\x85\x08\x81\x08", 4, RINGP2P_ELIMIT, "1025" },
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        rp_mss d;
        listing got = { 0 };
        ringp2p_errinfo ei = { 0 };
        cr_assert_eq(rp_mss_init_ls_dialer(&d, on_ls, &got), 0);
        cr_assert_eq(rp_mss_recv(&d, (const uint8_t *)HDR, 20, NULL), 20);
        cr_assert_eq(rp_mss_recv(&d, (const uint8_t *)v[i].wire, v[i].len, &ei), v[i].err,
                     "case %zu: %s", i, ei.msg);
        cr_assert_not_null(strstr(ei.msg, v[i].words), "case %zu: '%s'", i, ei.msg);
        cr_assert_eq(rp_mss_ls_count(&d), RINGP2P_EAGAIN);
    }
}

/* ---- listener matching ------------------------------------------------------------------- */

Test(multistream, listener_callback_match)
{
    int calls = 0;
    rp_mss l;
    cr_assert_eq(rp_mss_init_listener(&l, NULL, 0, accept_cb_prefix, &calls, NULL), 0);
    /* "na" as a proposal is refused without asking the callback; "/x" is asked and refused. */
    static const char in[] = HDR NA "\x03/x\n\x0c/cb/dynamic\n";
    cr_assert_eq(rp_mss_recv(&l, (const uint8_t *)in, sizeof(in) - 1, NULL), sizeof(in) - 1);
    cr_assert_eq(calls, 2);
    assert_agreed(&l, "/cb/dynamic", -1);
    rp_mss copy = l; /* the agreed string lives inside the object, not behind a pointer */
    memset(&l, 0, sizeof(l));
    assert_agreed(&copy, "/cb/dynamic", -1);
    uint8_t out[128];
    rp_wbuf w = rp_wbuf_make(out, sizeof(out));
    static const char want[] = HDR NA NA "\x0c/cb/dynamic\n";
    cr_assert_eq(rp_mss_send(&copy, &w), sizeof(want) - 1);
    cr_assert_arr_eq(out, want, sizeof(want) - 1);
}

Test(multistream, listener_list_wins_over_callback)
{
    static const char *const lprotos[] = { "/cb/listed" };
    int calls = 0;
    rp_mss l;
    cr_assert_eq(rp_mss_init_listener(&l, lprotos, 1, accept_cb_prefix, &calls, NULL), 0);
    static const char in[] = HDR "\x0b/cb/listed\n";
    cr_assert_eq(rp_mss_recv(&l, (const uint8_t *)in, sizeof(in) - 1, NULL), sizeof(in) - 1);
    assert_agreed(&l, "/cb/listed", 0);
    cr_assert_eq(calls, 0);
}

Test(multistream, listener_accepts_longest_message)
{
    static const char *const lprotos[] = { "/x" };
    rp_mss l;
    cr_assert_eq(rp_mss_init_listener(&l, lprotos, 1, NULL, NULL, NULL), 0);
    uint8_t in[20 + 2 + RP_MSS_MSG_MAX];
    memcpy(in, HDR, 20);
    in[20] = 0x80; /* 1024 */
    in[21] = 0x08;
    memset(in + 22, 'p', RP_MSS_MSG_MAX - 1);
    in[sizeof(in) - 1] = '\n';
    cr_assert_eq(rp_mss_recv(&l, in, sizeof(in), NULL), sizeof(in));
    cr_assert_eq(rp_mss_status(&l), RP_MSS_IN_PROGRESS);
    cr_assert_eq(rp_mss_pending(&l), 24, "header + na");
}

/* ---- malformed peer input ---------------------------------------------------------------- */

Test(multistream, malformed_input_fails_clearly)
{
    static const struct {
        bool listener;
        const char *wire;
        size_t len;
        int err;
        const char *words;
    } v[] = {
        /* header mismatch: a peer speaking another version, or skipping the header */
        { true, "\x13/multistream/2.0.0\n", 20, RINGP2P_EPROTOCOL, "'/multistream/2.0.0'" },
        { false, "\x13/multistream/2.0.0\n", 20, RINGP2P_EPROTOCOL, "header mismatch" },
        { true, "\x0c/echo/1.0.0\n", 13, RINGP2P_EPROTOCOL, "header mismatch" },
        { false, NA, 4, RINGP2P_EPROTOCOL, "peer sent 'na'" },
        { true, "\x05\x01\x02\x03\x04\n", 6, RINGP2P_EPROTOCOL, "\\x01\\x02\\x03\\x04" },
        /* missing newline, zero length */
        { true, "\x13/multistream/1.0.0x", 20, RINGP2P_EPROTOCOL, "newline" },
        { false, HDR "\x03/ab", 24, RINGP2P_EPROTOCOL, "newline" },
        { true, "\x00", 1, RINGP2P_EPROTOCOL, "zero-length" },
        { true, HDR "\x00", 21, RINGP2P_EPROTOCOL, "zero-length" },
        /* bad varint */
        { true, "\x80\x00", 2, RINGP2P_EVARINT, "minimal" },
        { false, HDR "\x93\x00", 22, RINGP2P_EVARINT, "minimal" },
        { true, "\xff\xff\xff\xff\xff\xff\xff\xff\xff", 9, RINGP2P_EVARINT, "9 bytes" },
        /* oversize: rejected at the prefix, without waiting for the payload */
        { true, "\x81\x08", 2, RINGP2P_ELIMIT, "1025 bytes" },
        { false, HDR "\xff\xff\x7f", 23, RINGP2P_ELIMIT, "exceeds the limit of 1024" },
        /* a dialer answer that is neither the proposal nor "na" */
        { false, HDR "\x04/no\n", 25, RINGP2P_EPROTOCOL,
          "unexpected answer '/no' to proposal '/p'" },
        { false, HDR "\x03NA\n", 24, RINGP2P_EPROTOCOL, "unexpected answer" },
    };
    static const char *const protos[] = { "/p" };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        for (int bytewise = 0; bytewise < 2; bytewise++) {
            rp_mss m;
            if (v[i].listener)
                cr_assert_eq(rp_mss_init_listener(&m, protos, 1, NULL, NULL, NULL), 0);
            else
                cr_assert_eq(rp_mss_init_dialer(&m, protos, 1, 0, NULL), 0);
            ringp2p_errinfo ei = { 0 };
            ssize_t r = 0;
            if (bytewise) {
                for (size_t o = 0; o < v[i].len && r >= 0; o++) {
                    r = rp_mss_recv(&m, (const uint8_t *)v[i].wire + o, 1, &ei);
                    if (o + 1 < v[i].len) cr_assert_eq(r, 1, "case %zu byte %zu", i, o);
                }
            } else {
                r = rp_mss_recv(&m, (const uint8_t *)v[i].wire, v[i].len, &ei);
            }
            cr_assert_eq(r, v[i].err, "case %zu bytewise %d: %zd '%s'", i, bytewise, r, ei.msg);
            cr_assert_eq(rp_mss_status(&m), RP_MSS_FAILED);
            cr_assert_eq(ei.code, v[i].err);
            cr_assert_not_null(strstr(ei.msg, v[i].words), "case %zu: '%s'", i, ei.msg);
        }
    }
}

Test(multistream, listener_cuts_off_endless_proposals)
{
    static const char *const lprotos[] = { "/x" };
    char in[RP_MSS_MAX_ROUNDS + 1][8];
    for (int last = 0; last < 2; last++) {
        rp_mss l;
        ringp2p_errinfo ei = { 0 };
        cr_assert_eq(rp_mss_init_listener(&l, lprotos, 1, NULL, NULL, NULL), 0);
        cr_assert_eq(rp_mss_recv(&l, (const uint8_t *)HDR, 20, NULL), 20);
        for (unsigned i = 0; i < RP_MSS_MAX_ROUNDS - 1; i++) {
            snprintf(in[i], sizeof(in[i]), "\x04/%02u\n", i % 100);
            cr_assert_eq(rp_mss_recv(&l, (const uint8_t *)in[i], 5, &ei), 5, "%s", ei.msg);
        }
        if (last == 0) {
            /* The 32nd proposal is still answered. */
            cr_assert_eq(rp_mss_recv(&l, (const uint8_t *)"\x03/x\n", 4, NULL), 4);
            assert_agreed(&l, "/x", 0);
            cr_assert_eq(rp_mss_pending(&l), 20 + (RP_MSS_MAX_ROUNDS - 1) * 4 + 4);
        } else {
            cr_assert_eq(rp_mss_recv(&l, (const uint8_t *)LS, 4, NULL), 4, "ls counts as a round");
            cr_assert_eq(rp_mss_recv(&l, (const uint8_t *)"\x03/x\n", 4, &ei), RINGP2P_ELIMIT);
            cr_assert_not_null(strstr(ei.msg, "more than 32 proposals"), "%s", ei.msg);
        }
    }
}

Test(multistream, dialer_longest_preference_list)
{
    char names[RP_MSS_MAX_ROUNDS + 1][16];
    const char *protos[RP_MSS_MAX_ROUNDS + 1];
    for (int i = 0; i <= RP_MSS_MAX_ROUNDS; i++) {
        snprintf(names[i], sizeof(names[i]), "/p/%d", i);
        protos[i] = names[i];
    }
    static const char *const lprotos[] = { "/other" };
    pair *p = pair_new();
    ringp2p_errinfo ei = { 0 };
    cr_assert_eq(rp_mss_init_dialer(&p->d, protos, RP_MSS_MAX_ROUNDS + 1, 0, &ei), RINGP2P_EINVAL);
    cr_assert_not_null(strstr(ei.msg, "33 protocols"), "%s", ei.msg);
    /* 32 refusals end the dialer cleanly; the listener is within its limit. */
    cr_assert_eq(rp_mss_init_dialer(&p->d, protos, RP_MSS_MAX_ROUNDS, 0, NULL), 0);
    cr_assert_eq(rp_mss_init_listener(&p->l, lprotos, 1, NULL, NULL, NULL), 0);
    pump(p, SIZE_MAX);
    cr_assert_eq(rp_mss_error(&p->d), RINGP2P_ENEGOTIATION);
    cr_assert_eq(rp_mss_status(&p->l), RP_MSS_IN_PROGRESS);
    cr_assert_not_null(strstr(p->dei.msg, "..."), "long offer is cut: %s", p->dei.msg);
    pair_free(p);
}

/* ---- setup ------------------------------------------------------------------------------- */

Test(multistream, init_rejects_bad_arguments)
{
    static char longp[RP_MSS_PROTO_MAX + 2];
    memset(longp, 'l', sizeof(longp) - 1);
    longp[0] = '/';
    static const char *const ok[] = { "/a", "/b" };
    static const char *const empty[] = { "" };
    static const char *const na[] = { "na" };
    static const char *const ls[] = { "/a", "ls" };
    static const char *const hdr[] = { "/multistream/1.0.0" };
    static const char *const nul[] = { NULL };
    const char *const lng[] = { longp };
    static const struct {
        const char *const *protos;
        size_t n;
        unsigned flags;
        const char *words;
    } v[] = {
        { ok, 0, 0, "at least one" },    { NULL, 1, 0, "at least one" },
        { empty, 1, 0, "empty" },        { na, 1, 0, "reserved" },
        { ls, 2, 0, "protocol 1 'ls'" }, { hdr, 1, 0, "reserved" },
        { nul, 1, 0, "NULL" },           { ok, 2, RP_MSS_LAZY, "exactly one" },
        { ok, 1, 0x80, "flags" },        { NULL, 0, 0, "at least one" },
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        rp_mss m;
        ringp2p_errinfo ei = { 0 };
        cr_assert_eq(rp_mss_init_dialer(&m, v[i].protos, v[i].n, v[i].flags, &ei), RINGP2P_EINVAL,
                     "case %zu", i);
        cr_assert_not_null(strstr(ei.msg, v[i].words), "case %zu: '%s'", i, ei.msg);
    }
    rp_mss m;
    ringp2p_errinfo ei = { 0 };
    cr_assert_eq(rp_mss_init_dialer(&m, lng, 1, 0, &ei), RINGP2P_EINVAL);
    cr_assert_not_null(strstr(ei.msg, "longer than 1023"), "%s", ei.msg);
    longp[RP_MSS_PROTO_MAX] = 0; /* exactly 1023 bytes is fine */
    cr_assert_eq(rp_mss_init_dialer(&m, lng, 1, 0, NULL), 0);

    cr_assert_eq(rp_mss_init_listener(&m, NULL, 0, NULL, NULL, &ei), RINGP2P_EINVAL);
    cr_assert_not_null(strstr(ei.msg, "callback"), "%s", ei.msg);
    cr_assert_eq(rp_mss_init_listener(&m, na, 1, NULL, NULL, &ei), RINGP2P_EINVAL);
    /* 70 protocols of 1023 bytes would need a listing above RP_MSS_LS_MAX. */
    const char *many[70];
    for (int i = 0; i < 70; i++) many[i] = longp;
    cr_assert_eq(rp_mss_init_listener(&m, many, 70, NULL, NULL, &ei), RINGP2P_EINVAL);
    cr_assert_not_null(strstr(ei.msg, "65536"), "%s", ei.msg);
    cr_assert_eq(rp_mss_init_listener(&m, many, 60, NULL, NULL, NULL), 0);

    /* ls: only on a fresh, non-lazy dialer. */
    listing got = { 0 };
    cr_assert_eq(rp_mss_init_listener(&m, ok, 2, NULL, NULL, NULL), 0);
    cr_assert_eq(rp_mss_request_ls(&m, on_ls, &got), RINGP2P_EINVAL);
    cr_assert_eq(rp_mss_init_dialer(&m, ok, 1, RP_MSS_LAZY, NULL), 0);
    cr_assert_eq(rp_mss_request_ls(&m, on_ls, &got), RINGP2P_EINVAL);
    cr_assert_eq(rp_mss_init_dialer(&m, ok, 2, 0, NULL), 0);
    cr_assert_eq(rp_mss_request_ls(&m, NULL, &got), RINGP2P_EINVAL);
    cr_assert_eq(rp_mss_ls_count(&m), RINGP2P_EINVAL);
    uint8_t out[64];
    rp_wbuf w = rp_wbuf_make(out, sizeof(out));
    cr_assert_gt(rp_mss_send(&m, &w), 0);
    cr_assert_eq(rp_mss_request_ls(&m, on_ls, &got), RINGP2P_EINVAL, "output already taken");
    cr_assert_eq(rp_mss_init_ls_dialer(&m, NULL, NULL), RINGP2P_EINVAL);
}

Test(multistream, reused_for_security_then_muxer)
{
    /* One object per side negotiates twice on the same channel, as a connection upgrade does. */
    static const char *const sec[] = { "/noise" };
    static const char *const mux[] = { "/yamux/1.0.0" };
    cr_assert_leq(sizeof(rp_mss), 1200, "cheap enough to embed per stream: %zu", sizeof(rp_mss));
    pair *p = pair_new();
    cr_assert_eq(rp_mss_init_dialer(&p->d, sec, 1, 0, NULL), 0);
    cr_assert_eq(rp_mss_init_listener(&p->l, sec, 1, NULL, NULL, NULL), 0);
    pump(p, SIZE_MAX);
    assert_agreed(&p->d, "/noise", 0);
    assert_agreed(&p->l, "/noise", 0);
    cr_assert_eq(rp_mss_init_dialer(&p->d, mux, 1, 0, NULL), 0);
    cr_assert_eq(rp_mss_init_listener(&p->l, mux, 1, NULL, NULL, NULL), 0);
    pump(p, 3);
    assert_agreed(&p->d, "/yamux/1.0.0", 0);
    assert_agreed(&p->l, "/yamux/1.0.0", 0);
    ASSERT_WIRE(&p->d2l, HDR "\x07/noise\n" HDR "\x0d/yamux/1.0.0\n");
    pair_free(p);
}
