/*
 * multistream-select negotiator fed arbitrary peer bytes.
 *
 * data[0] picks a mode, data[1] a chunk size, the rest is input. Modes 0-5 run
 * one role (listener, listener with callback, dialer, lazy dialer, dialer with
 * "ls", "ls"-only dialer) over the input twice, once whole and once in chunks,
 * and require the same outcome (status, error, bytes consumed, output,
 * listing, agreed protocol), consumption that ends on a message boundary, and
 * the same verdict on the first message as rp_mss_decode_line. Mode 6 wires a
 * dialer and a listener built from the input together and checks the agreed
 * protocol is the dialer's first one the listener supports. Mode 7 checks
 * the line codec round-trips.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "multistream/multistream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)           \
    do {                   \
        if (!(c)) abort(); \
    } while (0)

#define OUT_CAP 4096

static const char *const lprotos[] = { "/a", "/yamux/1.0.0", "/noise", "/ipfs/id/1.0.0" };
static const char *const dprotos[] = { "/noise", "/tls/1.0.0", "/a" };
static const char *const lazy[] = { "/echo/1.0.0" };

typedef struct listing {
    uint64_t hash;
    size_t n;
} listing;

static void on_ls(void *ctx, const char *proto, size_t len)
{
    listing *l = ctx;
    CHECK(proto[len] == 0);
    l->hash = (l->hash ^ len) * 1099511628211u;
    for (size_t i = 0; i < len; i++) l->hash = (l->hash ^ (uint8_t)proto[i]) * 1099511628211u;
    l->n++;
}

static bool match_cb(void *ctx, const char *proto, size_t len)
{
    CHECK(proto[len] == 0);
    return len >= 3 && memcmp(proto, "/cb", 3) == 0;
}

typedef struct run {
    rp_mss m;
    listing ls;
    int status, err;
    size_t consumed;
    uint8_t out[OUT_CAP];
    size_t out_len;
} run;

static void init_role(run *r, unsigned role)
{
    int rc = 0;
    memset(&r->ls, 0, sizeof(r->ls));
    switch (role) {
    case 0: rc = rp_mss_init_listener(&r->m, lprotos, 4, NULL, NULL, NULL); break;
    case 1: rc = rp_mss_init_listener(&r->m, lprotos, 2, match_cb, NULL, NULL); break;
    case 2: rc = rp_mss_init_dialer(&r->m, dprotos, 3, 0, NULL); break;
    case 3: rc = rp_mss_init_dialer(&r->m, lazy, 1, RP_MSS_LAZY, NULL); break;
    case 4:
        rc = rp_mss_init_dialer(&r->m, dprotos, 3, 0, NULL);
        if (rc == 0) rc = rp_mss_request_ls(&r->m, on_ls, &r->ls);
        break;
    default: rc = rp_mss_init_ls_dialer(&r->m, on_ls, &r->ls); break;
    }
    CHECK(rc == 0);
    r->consumed = 0;
    r->out_len = 0;
}

static void take_output(run *r)
{
    size_t want = rp_mss_pending(&r->m);
    CHECK(want <= OUT_CAP - r->out_len);
    rp_wbuf w = rp_wbuf_make(r->out, OUT_CAP);
    w.len = r->out_len;
    ssize_t n = rp_mss_send(&r->m, &w);
    if (want == 0) {
        CHECK(n == 0 || (n == rp_mss_error(&r->m) && n < 0));
        return;
    }
    CHECK(n == (ssize_t)want);
    CHECK(w.len == r->out_len + want);
    CHECK(rp_mss_pending(&r->m) == 0);
    r->out_len = w.len;
}

/* Feeds `in` in chunks of `chunk` bytes, taking output after every call like a host would. */
static void drive(run *r, const uint8_t *in, size_t len, size_t chunk)
{
    take_output(r);
    size_t off = 0;
    r->err = 0;
    while (off < len && rp_mss_status(&r->m) == RP_MSS_IN_PROGRESS) {
        size_t n = len - off < chunk ? len - off : chunk;
        ringp2p_errinfo ei;
        ssize_t c = rp_mss_recv(&r->m, in + off, n, &ei);
        take_output(r);
        if (c < 0) {
            CHECK(rp_mss_status(&r->m) == RP_MSS_FAILED && rp_mss_error(&r->m) == c);
            CHECK(ei.code == c && memchr(ei.msg, 0, sizeof(ei.msg)) != NULL);
            /* Sticky. */
            CHECK(rp_mss_recv(&r->m, in, len, NULL) == c);
            r->err = (int)c;
            break;
        }
        CHECK((size_t)c <= n);
        CHECK((size_t)c == n || rp_mss_status(&r->m) == RP_MSS_DONE);
        off += (size_t)c;
    }
    r->consumed = off;
    r->status = rp_mss_status(&r->m);
    if (r->status == RP_MSS_DONE) CHECK(rp_mss_recv(&r->m, in, len, NULL) == 0);
}

static bool msg_eq(const uint8_t *msg, size_t len, const char *s)
{
    return len == strlen(s) && memcmp(msg, s, len) == 0;
}

static void one_role(unsigned role, size_t chunk, const uint8_t *in, size_t len)
{
    run *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
    CHECK(a != NULL && b != NULL);
    init_role(a, role);
    init_role(b, role);
    drive(a, in, len, len ? len : 1);
    drive(b, in, len, chunk);

    /* Chunking must not change anything. */
    CHECK(a->status == b->status && a->err == b->err);
    /* Bytes consumed mean something only without an error (the failing call returns none). */
    CHECK(a->err != 0 || (a->consumed == b->consumed && a->consumed <= len));
    CHECK(a->out_len == b->out_len && memcmp(a->out, b->out, a->out_len) == 0);
    CHECK(a->ls.n == b->ls.n && a->ls.hash == b->ls.hash);
    CHECK(rp_mss_ls_count(&a->m) == rp_mss_ls_count(&b->m));
    size_t la = 0, lb = 0;
    const char *pa = rp_mss_protocol(&a->m, &la), *pb = rp_mss_protocol(&b->m, &lb);
    CHECK((pa == NULL) == (pb == NULL));
    if (pa != NULL) CHECK(la == lb && memcmp(pa, pb, la) == 0 && pa[la] == 0);
    CHECK(rp_mss_protocol_index(&a->m) == rp_mss_protocol_index(&b->m));
    if (a->status != RP_MSS_DONE) CHECK(a->err != 0 || a->consumed == len);

    /* The first message decides the header check exactly as the standalone decoder does. */
    const uint8_t *p = in, *msg = NULL;
    size_t mlen = 0;
    int dr = rp_mss_decode_line(&p, in + len, &msg, &mlen, NULL);
    if (dr != 0 && dr != RINGP2P_ETRUNCATED) CHECK(a->err == dr);
    if (dr == 0 && !msg_eq(msg, mlen, RP_MSS_PROTOCOL_ID)) CHECK(a->err == RINGP2P_EPROTOCOL);
    if (dr == RINGP2P_ETRUNCATED) CHECK(a->err == 0 && a->consumed == len);

    /* Done: the consumed bytes are whole messages, so no application byte was taken. Only
     * roles without "ls" (whose answer is not one line) can be re-read line by line. */
    if (a->status == RP_MSS_DONE && (role <= 3)) {
        const uint8_t *q = in, *end = in + a->consumed, *last = NULL;
        size_t last_len = 0;
        while (q < end) CHECK(rp_mss_decode_line(&q, end, &last, &last_len, NULL) == 0);
        CHECK(q == end && last != NULL);
        CHECK(pa != NULL && last_len == la && memcmp(last, pa, la) == 0);
    }
    if (role <= 1 && a->status == RP_MSS_DONE) {
        /* A listener's output ends with its echo of the agreed protocol. */
        uint8_t echo[RP_MSS_MSG_MAX + 8];
        ssize_t n = rp_mss_encode_line(pa, la, echo, sizeof(echo));
        CHECK(n > 0 && (size_t)n <= a->out_len);
        CHECK(memcmp(a->out + a->out_len - (size_t)n, echo, (size_t)n) == 0);
    }
    free(a);
    free(b);
}

/* Mode 6: a dialer and listener over a pool of protocols, both chosen by the input. */
static void self_play(size_t chunk, const uint8_t *in, size_t len)
{
    static const char *const pool[] = { "/p0", "/p1", "/p2", "/p3", "/p4", "/p5", "/p6", "/p7" };
    if (len < 3) return;
    unsigned mask = in[0], flags = in[1];
    size_t nd = 1 + (in[2] % 6);
    if (len < 3 + nd) return;
    const char *dl[6];
    for (size_t i = 0; i < nd; i++) dl[i] = pool[in[3 + i] & 7];
    bool lz = (flags & 1) && nd == 1, want_ls = (flags & 2) && !lz;
    const char *ll[8];
    size_t nl = 0;
    for (unsigned i = 0; i < 8; i++)
        if (mask & (1u << i)) ll[nl++] = pool[i];

    rp_mss *d = malloc(sizeof(*d)), *l = malloc(sizeof(*l));
    CHECK(d != NULL && l != NULL);
    listing got = { 0 }, want = { 0 };
    CHECK(rp_mss_init_dialer(d, dl, nd, lz ? RP_MSS_LAZY : 0, NULL) == 0);
    if (want_ls) CHECK(rp_mss_request_ls(d, on_ls, &got) == 0);
    int lrc = rp_mss_init_listener(l, ll, nl, NULL, NULL, NULL);
    if (nl == 0) {
        CHECK(lrc == RINGP2P_EINVAL);
        free(d);
        free(l);
        return;
    }
    CHECK(lrc == 0);
    for (size_t i = 0; i < nl; i++) on_ls(&want, ll[i], strlen(ll[i]));

    uint8_t d2l[1024], l2d[1024];
    size_t d2l_len = 0, l2d_len = 0, d2l_off = 0, l2d_off = 0;
    for (int round = 0; round < 200; round++) {
        rp_wbuf w = rp_wbuf_make(d2l, sizeof(d2l));
        w.len = d2l_len;
        CHECK(rp_mss_send(d, &w) >= 0 || rp_mss_status(d) == RP_MSS_FAILED);
        d2l_len = w.len;
        w = rp_wbuf_make(l2d, sizeof(l2d));
        w.len = l2d_len;
        CHECK(rp_mss_send(l, &w) >= 0 || rp_mss_status(l) == RP_MSS_FAILED);
        l2d_len = w.len;
        bool moved = false;
        if (rp_mss_status(l) == RP_MSS_IN_PROGRESS && d2l_off < d2l_len) {
            size_t n = d2l_len - d2l_off < chunk ? d2l_len - d2l_off : chunk;
            ssize_t c = rp_mss_recv(l, d2l + d2l_off, n, NULL);
            CHECK(c >= 0);
            d2l_off += (size_t)c;
            moved = true;
        }
        if (rp_mss_status(d) == RP_MSS_IN_PROGRESS && l2d_off < l2d_len) {
            size_t n = l2d_len - l2d_off < chunk ? l2d_len - l2d_off : chunk;
            ssize_t c = rp_mss_recv(d, l2d + l2d_off, n, NULL);
            CHECK(c >= 0 || c == RINGP2P_ENEGOTIATION);
            if (c > 0) l2d_off += (size_t)c;
            moved = true;
        }
        if (!moved && rp_mss_pending(d) == 0 && rp_mss_pending(l) == 0) break;
    }

    int expect = -1;
    for (size_t i = 0; i < nd && expect < 0; i++)
        if (mask & (1u << (dl[i][2] - '0'))) expect = (int)i;
    if (expect >= 0) {
        CHECK(rp_mss_status(d) == RP_MSS_DONE && rp_mss_status(l) == RP_MSS_DONE);
        CHECK(rp_mss_protocol_index(d) == expect);
        CHECK(strcmp(rp_mss_protocol(l, NULL), dl[expect]) == 0);
        CHECK(d2l_off == d2l_len && l2d_off == l2d_len);
    } else {
        CHECK(rp_mss_error(d) == RINGP2P_ENEGOTIATION);
        CHECK(rp_mss_status(l) == RP_MSS_IN_PROGRESS);
    }
    if (want_ls) {
        CHECK(got.n == want.n && got.hash == want.hash);
        CHECK(rp_mss_ls_count(d) == (ssize_t)nl);
    }
    free(d);
    free(l);
}

/* Mode 7: every message decoded re-encodes to the same bytes; any short input round-trips. */
static void line_codec(const uint8_t *in, size_t len)
{
    const uint8_t *p = in, *end = in + len;
    while (p < end) {
        const uint8_t *start = p, *msg;
        size_t mlen;
        if (rp_mss_decode_line(&p, end, &msg, &mlen, NULL) != 0) {
            CHECK(p == start);
            break;
        }
        uint8_t buf[RP_MSS_MSG_MAX + 8];
        ssize_t n = rp_mss_encode_line(msg, mlen, buf, sizeof(buf));
        CHECK(n == p - start && memcmp(buf, start, (size_t)n) == 0);
    }
    if (len <= RP_MSS_PROTO_MAX) {
        uint8_t buf[RP_MSS_MSG_MAX + 8];
        ssize_t n = rp_mss_encode_line(in, len, buf, sizeof(buf));
        CHECK(n > 0);
        const uint8_t *q = buf, *msg;
        size_t mlen;
        CHECK(rp_mss_decode_line(&q, buf + n, &msg, &mlen, NULL) == 0);
        CHECK(q == buf + n && mlen == len && memcmp(msg, in, len) == 0);
        CHECK(rp_mss_encode_line(in, len, buf, (size_t)n - 1) == RINGP2P_ENOBUF);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    unsigned mode = data[0] & 7;
    size_t chunk = data[1] ? data[1] : 1;
    const uint8_t *in = data + 2;
    size_t len = size - 2;
    if (mode <= 5)
        one_role(mode, chunk, in, len);
    else if (mode == 6)
        self_play(chunk, in, len);
    else
        line_codec(in, len);
    return 0;
}
