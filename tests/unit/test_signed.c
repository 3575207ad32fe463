#include <criterion/criterion.h>

#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "security/signed.h"

static void split_fixed(uint8_t split[RP_SIGNED_SPLIT_LEN])
{
    for (int i = 0; i < RP_SIGNED_SPLIT_LEN; i++) split[i] = (uint8_t)i;
}

/* ---- docs/signed-mode.md §10 vectors (tags cross-checked with Python's cryptography AESGCM) -- */

static const struct {
    bool from_initiator;
    uint64_t n;
    const char *payload; /* text */
    const char *frame;   /* hex */
} frame_vectors[] = {
    { true, 0, "", "0010ff73b0e66ef90f92ee14acc4e57e4bc6" },
    { true, 1, "hello", "001568656c6c6f1fbb34ac491a03b717c0288f40a89637" },
    { true, 2, "/yamux/1.0.0\n", "001d2f79616d75782f312e302e300afad3d656c3c8656fe2cb4041259eee1c" },
    { false, 0, "signed by the responder",
      "00277369676e65642062792074686520726573706f6e646572b7eb8d0c203ece91281d375d03bf415d" },
    { true, UINT64_MAX - 1, "last", "00146c617374778d38141c6a79dbb873416c6f4c0e28" },
};

Test(signed_vec, key_derivation)
{
    uint8_t split[RP_SIGNED_SPLIT_LEN], i2r[32], r2i[32], want[32];
    split_fixed(split);
    cr_assert_eq(rp_signed_derive_keys(split, i2r, r2i), 0);
    unhex("bbe9acccc3545d4075e29828f69107c664c01805a2266e6d805fab0e2878b16a", want, 32);
    cr_assert_arr_eq(i2r, want, 32);
    unhex("dee730de2d3fba31d7f75d9c24e7250bf8d149540fc13cd1a039efe11ffc6dda", want, 32);
    cr_assert_arr_eq(r2i, want, 32);
}

Test(signed_vec, frames_byte_exact_and_verified)
{
    uint8_t split[RP_SIGNED_SPLIT_LEN];
    split_fixed(split);
    for (size_t k = 0; k < sizeof(frame_vectors) / sizeof(frame_vectors[0]); k++) {
        rp_signed *ini, *res;
        cr_assert_eq(rp_signed_new_keyed(split, true, &ini, NULL), 0);
        cr_assert_eq(rp_signed_new_keyed(split, false, &res, NULL), 0);
        rp_signed *tx = frame_vectors[k].from_initiator ? ini : res;
        rp_signed *rx = frame_vectors[k].from_initiator ? res : ini;
        rp_signed_set_nonces(tx, frame_vectors[k].n, 0);
        rp_signed_set_nonces(rx, 0, frame_vectors[k].n);
        const char *pl = frame_vectors[k].payload;
        rp_iov v = rp_iov_make(pl, strlen(pl));
        uint8_t out[128], want[128];
        size_t wl = unhex(frame_vectors[k].frame, want, sizeof(want));
        cr_assert_eq(rp_signed_seal(tx, &v, 1, out, sizeof(out), NULL), (ssize_t)wl, "vector %zu",
                     k);
        cr_assert_arr_eq(out, want, wl, "vector %zu", k);
        uint8_t *p = want;
        rp_iov got;
        ringp2p_errinfo ei;
        cr_assert_eq(rp_signed_open(rx, &p, want + wl, &got, &ei), 1, "vector %zu: %s", k, ei.msg);
        cr_assert_eq(got.len, strlen(pl));
        cr_assert_arr_eq(got.base, pl, got.len);
        /* The same frame at the wrong position does not verify. */
        rp_signed *rx2;
        cr_assert_eq(rp_signed_new_keyed(split, !frame_vectors[k].from_initiator, &rx2, NULL), 0);
        rp_signed_set_nonces(rx2, 0, frame_vectors[k].n == 0 ? 1 : frame_vectors[k].n - 1);
        p = want;
        cr_assert_eq(rp_signed_open(rx2, &p, want + wl, &got, &ei), RINGP2P_EAUTH);
        rp_signed_free(rx2);
        rp_signed_free(ini);
        rp_signed_free(res);
    }
}

/* ---- in-memory pairs ---------------------------------------------------------------------- */

#define RX_CAP (1u << 20)

struct end {
    rp_signed *s;
    uint8_t *rx;
    size_t len, off;
    int last;
    ringp2p_errinfo ei;
};

static void end_init(struct end *e, rp_signed *s)
{
    memset(e, 0, sizeof(*e));
    e->s = s;
    e->rx = malloc(RX_CAP);
    cr_assert_not_null(e->rx);
}

static void end_fini(struct end *e)
{
    rp_signed_free(e->s);
    free(e->rx);
}

static void handshake(struct end *ini, struct end *res)
{
    struct end *sides[2] = { ini, res };
    for (int round = 0; round < 8; round++) {
        for (int k = 0; k < 2; k++) {
            struct end *me = sides[k], *peer = sides[1 - k];
            uint8_t *p = me->rx + me->off;
            rp_wbuf w = rp_wbuf_make(peer->rx + peer->len, RX_CAP - peer->len);
            me->last = rp_signed_handshake(me->s, &p, me->rx + me->len, &w, &me->ei);
            cr_assert_geq(me->last, 0, "handshake: %s", me->ei.msg);
            me->off = (size_t)(p - me->rx);
            peer->len += w.len;
        }
        if (ini->last == RP_SIGNED_DONE && res->last == RP_SIGNED_DONE) return;
    }
    cr_assert_fail("handshake did not finish");
}

static ringp2p_privkey *gen(void)
{
    ringp2p_privkey *k = NULL;
    cr_assert_eq(ringp2p_privkey_generate(RINGP2P_KEY_ED25519, &k), 0);
    return k;
}

/* Opens everything whole in me->rx, appending payload to out; returns its length or an error. */
static ssize_t recv_bytes(struct end *me, uint8_t *out)
{
    size_t total = 0;
    for (;;) {
        rp_iov views[8];
        uint8_t *p = me->rx + me->off;
        ssize_t n = rp_signed_open_batch(me->s, &p, me->rx + me->len, views, 8, &me->ei);
        if (n < 0) return n;
        me->off = (size_t)(p - me->rx);
        for (ssize_t i = 0; i < n; i++) {
            memcpy(out + total, views[i].base, views[i].len);
            total += views[i].len;
        }
        if (n < 8) return (ssize_t)total;
    }
}

struct pair {
    ringp2p_privkey *ki, *kr;
    struct end a, b; /* initiator, responder */
};

static const char *const yamux[] = { "/yamux/1.0.0" };

static void pair_up(struct pair *pr)
{
    pr->ki = gen();
    pr->kr = gen();
    ringp2p_peer_id want;
    ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(pr->kr), &want);
    rp_noise_config ci = { .identity = pr->ki,
                           .initiator = true,
                           .expected_peer = &want,
                           .muxers = yamux,
                           .n_muxers = 1 };
    rp_noise_config cr = { .identity = pr->kr, .muxers = yamux, .n_muxers = 1 };
    rp_signed *si, *sr;
    cr_assert_eq(rp_signed_new(&ci, &si, NULL), 0);
    cr_assert_eq(rp_signed_new(&cr, &sr, NULL), 0);
    end_init(&pr->a, si);
    end_init(&pr->b, sr);
    handshake(&pr->a, &pr->b);
}

static void pair_down(struct pair *pr)
{
    end_fini(&pr->a);
    end_fini(&pr->b);
    ringp2p_privkey_free(pr->ki);
    ringp2p_privkey_free(pr->kr);
}

static uint8_t *pattern(size_t len, unsigned seed)
{
    uint8_t *d = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++) d[i] = (uint8_t)(i * 131 + seed * 7 + (i >> 9));
    return d;
}

Test(signed_pair, handshake_identifies_both_and_negotiates_muxer)
{
    struct pair pr;
    pair_up(&pr);
    ringp2p_peer_id id;
    ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(pr.kr), &id);
    cr_assert(ringp2p_peer_id_equal(rp_signed_remote_peer(pr.a.s), &id));
    ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(pr.ki), &id);
    cr_assert(ringp2p_peer_id_equal(rp_signed_remote_peer(pr.b.s), &id));
    cr_assert(ringp2p_pubkey_equal(rp_signed_remote_key(pr.b.s), ringp2p_privkey_public(pr.ki)));
    cr_assert_str_eq(rp_signed_muxer(pr.a.s), "/yamux/1.0.0");
    cr_assert_str_eq(rp_signed_muxer(pr.b.s), "/yamux/1.0.0");
    cr_assert(rp_signed_is_done(pr.a.s) && rp_signed_is_done(pr.b.s));
    pair_down(&pr);
}

/* Transfers of many sizes, both directions, with copy sealing: byte-exact, and in the clear. */
Test(signed_pair, transfers_byte_exact_copy_seal)
{
    static const size_t sizes[] = { 0,
                                    1,
                                    17,
                                    RP_SIGNED_PAYLOAD_MAX - 1,
                                    RP_SIGNED_PAYLOAD_MAX,
                                    RP_SIGNED_PAYLOAD_MAX + 1,
                                    3 * RP_SIGNED_PAYLOAD_MAX + 5,
                                    700000 };
    struct pair pr;
    pair_up(&pr);
    uint8_t *got = malloc(RX_CAP);
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        for (int dir = 0; dir < 2; dir++) {
            struct end *from = dir ? &pr.b : &pr.a, *to = dir ? &pr.a : &pr.b;
            size_t len = sizes[k];
            uint8_t *d = pattern(len, (unsigned)k);
            rp_iov iov[3] = { rp_iov_make(d, len / 3), rp_iov_make(d + len / 3, 0),
                              rp_iov_make(d + len / 3, len - len / 3) };
            to->len = to->off = 0;
            ssize_t n = rp_signed_seal(from->s, iov, 3, to->rx, RX_CAP, &from->ei);
            cr_assert_eq(n, (ssize_t)rp_signed_sealed_len(len), "%s", from->ei.msg);
            to->len = (size_t)n;
            /* Signed, not encrypted: the first payload bytes are on the wire as they are. */
            if (len > 0) cr_assert_eq(memcmp(to->rx + 2, d, len < 100 ? len : 100), 0);
            cr_assert_eq(recv_bytes(to, got), (ssize_t)len, "size %zu: %s", len, to->ei.msg);
            cr_assert_eq(to->off, to->len);
            if (len) cr_assert_arr_eq(got, d, len, "size %zu", len);
            free(d);
        }
    }
    free(got);
    pair_down(&pr);
}

/* Flattens views into dst; returns the length. */
static size_t flatten(const rp_iov *v, size_t n, uint8_t *dst)
{
    size_t t = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(dst + t, v[i].base, v[i].len);
        t += v[i].len;
    }
    return t;
}

/* By-reference sealing: payload views point into the input; receiver gets the bytes exactly. */
Test(signed_pair, transfers_byte_exact_seal_by_reference)
{
    struct pair pr;
    pair_up(&pr);
    uint8_t *big = pattern(200000, 1), *mid = pattern(4000, 2), *got = malloc(RX_CAP);
    static const uint8_t hdr1[12] = "yamux-hdr-1", hdr2[12] = "yamux-hdr-2";
    /* Small header, large data, small header, mid data, empty, tiny. */
    rp_iov in[6] = { rp_iov_make(hdr1, 12),  rp_iov_make(big, 200000), rp_iov_make(hdr2, 12),
                     rp_iov_make(mid, 4000), rp_iov_make(hdr1, 0),     rp_iov_make(hdr2, 5) };
    size_t total = rp_iov_total(in, 6);
    uint8_t *want = malloc(total);
    rp_iov_cursor c = rp_iov_cursor_make(in, 6);
    rp_iov_cursor_copy(&c, want, total);

    uint8_t scratch[1024];
    rp_iov views[64];
    size_t nv = 0;
    /* Too little scratch or too few views: ENOBUF, nothing changed (the next seal still verifies).
     */
    cr_assert_eq(rp_signed_seal_ref(pr.a.s, in, 6, scratch, 20, views, 64, &nv, NULL),
                 RINGP2P_ENOBUF);
    cr_assert_eq(rp_signed_seal_ref(pr.a.s, in, 6, scratch, sizeof(scratch), views, 3, &nv, NULL),
                 RINGP2P_ENOBUF);
    ssize_t w =
        rp_signed_seal_ref(pr.a.s, in, 6, scratch, sizeof(scratch), views, 64, &nv, &pr.a.ei);
    cr_assert_gt(w, 0, "%s", pr.a.ei.msg);
    /* Payload views point into the caller's buffers, not copies. */
    bool by_ref = false;
    for (size_t i = 0; i < nv; i++) by_ref |= views[i].base == (void *)big;
    cr_assert(by_ref, "the 200000-byte piece is sent by reference");
    /* 12 | 65519 65519 65519 1443 | 12 | 4000 | 5: 7 messages (the header is its own message). */
    cr_assert_eq((size_t)w, total + 8 * RP_SIGNED_OVERHEAD);
    /* Every scratch view is a tag followed by a header, merged: at most 2 views per message + 1. */
    cr_assert_leq(nv, 2 * 8 + 1);
    pr.b.off = 0;
    pr.b.len = flatten(views, nv, pr.b.rx);
    cr_assert_eq(pr.b.len, (size_t)w);
    cr_assert_eq(recv_bytes(&pr.b, got), (ssize_t)total, "%s", pr.b.ei.msg);
    cr_assert_arr_eq(got, want, total);

    /* An empty input makes one empty message; then copy sealing continues the same nonces. */
    w = rp_signed_seal_ref(pr.a.s, in, 0, scratch, sizeof(scratch), views, 64, &nv, &pr.a.ei);
    cr_assert_eq(w, RP_SIGNED_OVERHEAD);
    cr_assert_eq(nv, 1);
    size_t at = pr.b.len;
    pr.b.len += flatten(views, nv, pr.b.rx + at);
    rp_iov one = rp_iov_make("x", 1);
    pr.b.len +=
        (size_t)rp_signed_seal(pr.a.s, &one, 1, pr.b.rx + pr.b.len, RX_CAP - pr.b.len, NULL);
    cr_assert_eq(recv_bytes(&pr.b, got), 1, "%s", pr.b.ei.msg);
    cr_assert_eq(got[0], 'x');

    /* A single large piece: seal_ref's wire bytes equal seal's. */
    struct pair q;
    pair_up(&q);
    uint8_t *copy = malloc(RX_CAP);
    rp_iov b1 = rp_iov_make(big, 200000);
    ssize_t cw = rp_signed_seal(pr.b.s, &b1, 1, copy, RX_CAP, NULL);
    w = rp_signed_seal_ref(pr.b.s, &b1, 1, scratch, sizeof(scratch), views, 64, &nv, NULL);
    cr_assert_eq(w, cw);
    /* Different nonces (n and n+4), so compare structure: same lengths, same payload bytes. */
    uint8_t *flat = malloc(RX_CAP);
    cr_assert_eq(flatten(views, nv, flat), (size_t)cw);
    for (size_t off = 0; off < (size_t)cw;) {
        size_t l = (size_t)flat[off] << 8 | flat[off + 1];
        cr_assert_eq(memcmp(flat + off, copy + off, 2 + l - RP_SIGNED_TAG_LEN), 0);
        off += 2 + l;
    }
    free(flat);
    free(copy);
    pair_down(&q);
    free(big);
    free(mid);
    free(got);
    free(want);
    pair_down(&pr);
}

/* ---- tampering: every kind ends the session, nothing after the bad message is delivered ---- */

enum tamper {
    T_NONE,
    T_PAYLOAD_BYTE,
    T_TAG_BYTE,
    T_LEN_PLUS,
    T_LEN_MINUS,
    T_LEN_SHORT,
    T_DROP,
    T_DUPLICATE,
    T_REORDER,
    T_REPLAY_FIRST,
    T_REFLECT,
};

static const struct {
    enum tamper t;
    const char *name;
    int code; /* expected error; 0: none */
} tampers[] = {
    { T_NONE, "untouched", 0 },
    { T_PAYLOAD_BYTE, "one payload byte flipped", RINGP2P_EAUTH },
    { T_TAG_BYTE, "one tag byte flipped", RINGP2P_EAUTH },
    { T_LEN_PLUS, "length + 3", RINGP2P_EAUTH },
    { T_LEN_MINUS, "length - 1", RINGP2P_EAUTH },
    { T_LEN_SHORT, "length below the tag", RINGP2P_EPROTOCOL },
    { T_DROP, "message dropped", RINGP2P_EAUTH },
    { T_DUPLICATE, "a message duplicated", RINGP2P_EAUTH },
    { T_REORDER, "two messages swapped", RINGP2P_EAUTH },
    { T_REPLAY_FIRST, "first message replayed later", RINGP2P_EAUTH },
    { T_REFLECT, "our own message sent back to us", RINGP2P_EAUTH },
};

#define N_MSG 4

Test(signed_tamper, every_kind_kills_the_session_and_nothing_after_is_delivered)
{
    struct pair pr;
    pair_up(&pr);
    static const size_t lens[N_MSG] = { 100, 3000, 40, 777 };
    uint8_t *frames[N_MSG], *reflected = malloc(4096);
    size_t flen[N_MSG];
    uint8_t *data[N_MSG];
    for (int m = 0; m < N_MSG; m++) {
        data[m] = pattern(lens[m], (unsigned)m + 10);
        frames[m] = malloc(rp_signed_sealed_len(lens[m]));
        rp_iov v = rp_iov_make(data[m], lens[m]);
        ssize_t n = rp_signed_seal(pr.a.s, &v, 1, frames[m], rp_signed_sealed_len(lens[m]), NULL);
        cr_assert_eq(n, (ssize_t)rp_signed_sealed_len(lens[m]));
        flen[m] = (size_t)n;
    }
    /* What the responder sends as its message 0: reflected back to it in T_REFLECT. */
    rp_iov rv = rp_iov_make(data[1], lens[1]);
    ssize_t rlen = rp_signed_seal(pr.b.s, &rv, 1, reflected, 4096, NULL);
    cr_assert_gt(rlen, 0);

    for (size_t k = 0; k < sizeof(tampers) / sizeof(tampers[0]); k++) {
        /* Each case on a fresh connection, resealing the same plaintexts (same frame lengths). */
        struct pair q;
        pair_up(&q);
        uint8_t *f[N_MSG];
        for (int m = 0; m < N_MSG; m++) {
            f[m] = malloc(flen[m] + 8);
            rp_iov v = rp_iov_make(data[m], lens[m]);
            cr_assert_eq(rp_signed_seal(q.a.s, &v, 1, f[m], flen[m], NULL), (ssize_t)flen[m]);
        }
        uint8_t rf[4096];
        ssize_t rfl = rp_signed_seal(q.b.s, &rv, 1, rf, sizeof(rf), NULL);
        cr_assert_eq(rfl, rlen);
        /* Message 1 is the victim; message 0 before it must be delivered, nothing after. */
        int order[N_MSG + 1] = { 0, 1, 2, 3, -1 };
        size_t n_order = N_MSG;
        switch (tampers[k].t) {
        case T_PAYLOAD_BYTE: f[1][2 + 1500] ^= 0x01; break;
        case T_TAG_BYTE: f[1][flen[1] - 5] ^= 0x80; break;
        case T_LEN_PLUS: f[1][1] = (uint8_t)(f[1][1] + 3); break;
        case T_LEN_MINUS: f[1][1] = (uint8_t)(f[1][1] - 1); break;
        case T_LEN_SHORT:
            f[1][0] = 0;
            f[1][1] = RP_SIGNED_TAG_LEN - 1;
            break;
        case T_DROP: order[1] = 2, order[2] = 3, n_order = 3; break;
        case T_DUPLICATE:
            order[1] = 0, order[2] = 1, order[3] = 2, order[4] = 3, n_order = 5;
            break;
        case T_REORDER: order[1] = 2, order[2] = 1; break;
        case T_REPLAY_FIRST: order[1] = 0, order[2] = 1, order[3] = 2; break;
        case T_REFLECT: break;
        case T_NONE: break;
        }
        /* Receiver: the responder, or for T_REFLECT the responder fed its own message 1. */
        struct end *rx = &q.b;
        for (size_t i = 0; i < n_order; i++) {
            int m = order[i];
            if (tampers[k].t == T_REFLECT && i == 1) {
                memcpy(rx->rx + rx->len, rf, (size_t)rfl);
                rx->len += (size_t)rfl;
                continue;
            }
            memcpy(rx->rx + rx->len, f[m], flen[m]);
            rx->len += flen[m];
        }
        uint8_t *got = malloc(RX_CAP);
        size_t total = 0;
        int err = 0;
        /* Open one frame at a time, recording exactly what is delivered. */
        for (;;) {
            uint8_t *p = rx->rx + rx->off, *before = p;
            rp_iov v;
            int r = rp_signed_open(rx->s, &p, rx->rx + rx->len, &v, &rx->ei);
            if (r < 0) {
                err = r;
                cr_assert_eq(p, before, "%s: cursor unchanged on error", tampers[k].name);
                break;
            }
            if (r == 0) break;
            memcpy(got + total, v.base, v.len);
            total += v.len;
            rx->off = (size_t)(p - rx->rx);
        }
        cr_assert_eq(err, tampers[k].code, "%s: got %d (%s)", tampers[k].name, err, rx->ei.msg);
        if (tampers[k].code == 0) {
            size_t want = 0;
            for (int m = 0; m < N_MSG; m++) want += lens[m];
            cr_assert_eq(total, want);
        } else {
            /* Exactly message 0 was delivered, intact. */
            cr_assert_eq(total, lens[0], "%s: %zu bytes delivered", tampers[k].name, total);
            cr_assert_arr_eq(got, data[0], lens[0]);
            cr_assert_neq(strstr(rx->ei.msg, "signed mode"), NULL, "%s", rx->ei.msg);
            /* Dead: the same code again, and nothing from any later (valid) frame. */
            uint8_t *p = rx->rx + rx->off;
            rp_iov v;
            cr_assert_eq(rp_signed_open(rx->s, &p, rx->rx + rx->len, &v, &rx->ei), tampers[k].code);
            rp_iov views[4];
            cr_assert_eq(rp_signed_open_batch(rx->s, &p, rx->rx + rx->len, views, 4, NULL),
                         tampers[k].code);
            rp_iov one = rp_iov_make("z", 1);
            uint8_t out[64];
            cr_assert_eq(rp_signed_seal(rx->s, &one, 1, out, sizeof(out), NULL), tampers[k].code);
        }
        free(got);
        for (int m = 0; m < N_MSG; m++) free(f[m]);
        pair_down(&q);
    }
    for (int m = 0; m < N_MSG; m++) {
        free(frames[m]);
        free(data[m]);
    }
    free(reflected);
    pair_down(&pr);
}

/* A frame from another connection (same peers, new handshake) does not verify. */
Test(signed_tamper, frame_from_another_connection)
{
    struct pair p1, p2;
    pair_up(&p1);
    pair_up(&p2);
    rp_iov v = rp_iov_make("same bytes", 10);
    uint8_t f[64];
    ssize_t n = rp_signed_seal(p1.a.s, &v, 1, f, sizeof(f), NULL);
    uint8_t *p = f;
    rp_iov got;
    ringp2p_errinfo ei;
    cr_assert_eq(rp_signed_open(p2.b.s, &p, f + n, &got, &ei), RINGP2P_EAUTH);
    cr_assert_eq(p, f);
    pair_down(&p1);
    pair_down(&p2);
}

/* Partial frames wait; a frame split anywhere is delivered once whole. */
Test(signed_pair, partial_frames_wait)
{
    uint8_t split[RP_SIGNED_SPLIT_LEN];
    split_fixed(split);
    rp_signed *i, *r;
    cr_assert_eq(rp_signed_new_keyed(split, true, &i, NULL), 0);
    cr_assert_eq(rp_signed_new_keyed(split, false, &r, NULL), 0);
    uint8_t *d = pattern(300, 3), f[400];
    rp_iov v = rp_iov_make(d, 300);
    ssize_t n = rp_signed_seal(i, &v, 1, f, sizeof(f), NULL);
    for (ssize_t cut = 0; cut < n; cut++) {
        uint8_t *p = f;
        rp_iov got;
        cr_assert_eq(rp_signed_open(r, &p, f + cut, &got, NULL), 0, "cut %zd", cut);
        cr_assert_eq(p, f);
    }
    uint8_t *p = f;
    rp_iov got;
    cr_assert_eq(rp_signed_open(r, &p, f + n, &got, NULL), 1);
    cr_assert_eq(got.len, 300);
    cr_assert_arr_eq(got.base, d, 300);
    free(d);
    rp_signed_free(i);
    rp_signed_free(r);
}

Test(signed_pair, nonce_exhaustion_ends_both_directions)
{
    uint8_t split[RP_SIGNED_SPLIT_LEN];
    split_fixed(split);
    rp_signed *i, *r;
    cr_assert_eq(rp_signed_new_keyed(split, true, &i, NULL), 0);
    cr_assert_eq(rp_signed_new_keyed(split, false, &r, NULL), 0);
    rp_signed_set_nonces(i, RP_SIGNED_NONCE_MAX - 1, 0);
    rp_signed_set_nonces(r, 0, RP_SIGNED_NONCE_MAX - 1);
    uint8_t f[256], big[2 * RP_SIGNED_PAYLOAD_MAX];
    memset(big, 7, sizeof(big));
    /* Two messages would need nonce 2^64-1: refused as a whole (ELIMIT kills the session)... */
    rp_signed *i2;
    cr_assert_eq(rp_signed_new_keyed(split, true, &i2, NULL), 0);
    rp_signed_set_nonces(i2, RP_SIGNED_NONCE_MAX, 0);
    rp_iov bv = rp_iov_make(big, sizeof(big));
    uint8_t *bigout = malloc(rp_signed_sealed_len(sizeof(big)));
    ringp2p_errinfo ei;
    cr_assert_eq(rp_signed_seal(i2, &bv, 1, bigout, rp_signed_sealed_len(sizeof(big)), &ei),
                 RINGP2P_ELIMIT);
    cr_assert_neq(strstr(ei.msg, "nonces exhausted"), NULL);
    free(bigout);
    rp_signed_free(i2);
    /* ...while the last two nonces work one message at a time. */
    size_t len = 0;
    for (int k = 0; k < 2; k++) {
        rp_iov v = rp_iov_make("ab", 2);
        ssize_t n = rp_signed_seal(i, &v, 1, f + len, sizeof(f) - len, NULL);
        cr_assert_eq(n, 2 + RP_SIGNED_OVERHEAD);
        len += (size_t)n;
    }
    rp_iov v = rp_iov_make("ab", 2);
    cr_assert_eq(rp_signed_seal(i, &v, 1, f + len, sizeof(f) - len, NULL), RINGP2P_ELIMIT);
    /* The receiver opens both, and refuses anything after nonce 2^64-2. */
    memcpy(f + len, f, 2 + RP_SIGNED_OVERHEAD);
    uint8_t *p = f;
    rp_iov got;
    cr_assert_eq(rp_signed_open(r, &p, f + len + 20, &got, NULL), 1);
    cr_assert_eq(rp_signed_open(r, &p, f + len + 20, &got, NULL), 1);
    cr_assert_eq(rp_signed_open(r, &p, f + len + 20, &got, &ei), RINGP2P_ELIMIT);
    rp_signed_free(i);
    rp_signed_free(r);
}

Test(signed_pair, seal_enobuf_changes_nothing)
{
    uint8_t split[RP_SIGNED_SPLIT_LEN];
    split_fixed(split);
    rp_signed *i, *r;
    cr_assert_eq(rp_signed_new_keyed(split, true, &i, NULL), 0);
    cr_assert_eq(rp_signed_new_keyed(split, false, &r, NULL), 0);
    uint8_t f[64];
    rp_iov v = rp_iov_make("hello", 5);
    cr_assert_eq(rp_signed_seal(i, &v, 1, f, 5 + RP_SIGNED_OVERHEAD - 1, NULL), RINGP2P_ENOBUF);
    cr_assert_eq(rp_signed_seal(i, &v, 1, f, sizeof(f), NULL), 5 + RP_SIGNED_OVERHEAD);
    uint8_t *p = f;
    rp_iov got;
    cr_assert_eq(rp_signed_open(r, &p, f + 5 + RP_SIGNED_OVERHEAD, &got, NULL), 1);
    cr_assert_eq(rp_signed_plaintext_fit(RP_SIGNED_FRAME_MAX), RP_SIGNED_PAYLOAD_MAX);
    cr_assert_eq(rp_signed_plaintext_fit(RP_SIGNED_OVERHEAD), 0);
    cr_assert_eq(rp_signed_sealed_len(rp_signed_plaintext_fit(100000)) <= 100000, 1);
    rp_signed_free(i);
    rp_signed_free(r);
}

/* The mode is bound into the handshake: /noise on one side, signed on the other, fails early. */
Test(signed_pair, noise_and_signed_do_not_complete_a_handshake)
{
    ringp2p_privkey *ki = gen(), *kr = gen();
    for (int noise_is_initiator = 0; noise_is_initiator < 2; noise_is_initiator++) {
        rp_noise_config ci = { .identity = ki, .initiator = true };
        rp_noise_config cr = { .identity = kr };
        rp_noise *n;
        rp_signed *s;
        cr_assert_eq(rp_noise_new(noise_is_initiator ? &ci : &cr, &n, NULL), 0);
        cr_assert_eq(rp_signed_new(noise_is_initiator ? &cr : &ci, &s, NULL), 0);
        uint8_t nb[4096], sb[4096]; /* what each receives */
        size_t nl = 0, sl = 0, noff = 0, soff = 0;
        int rn = 0, rs = 0;
        ringp2p_errinfo ein, eis;
        for (int round = 0; round < 4 && rn >= 0 && rs >= 0; round++) {
            uint8_t *p = nb + noff;
            rp_wbuf w = rp_wbuf_make(sb + sl, sizeof(sb) - sl);
            rn = rp_noise_handshake(n, &p, nb + nl, &w, &ein);
            noff = (size_t)(p - nb);
            sl += w.len;
            if (rn < 0) break;
            p = sb + soff;
            w = rp_wbuf_make(nb + nl, sizeof(nb) - nl);
            rs = rp_signed_handshake(s, &p, sb + sl, &w, &eis);
            soff = (size_t)(p - sb);
            nl += w.len;
        }
        /* The initiator fails on message 2: the responder's static key does not decrypt. */
        int init_r = noise_is_initiator ? rn : rs;
        cr_assert_eq(init_r, RINGP2P_EAUTH, "noise initiator %d: %d", noise_is_initiator, init_r);
        cr_assert_neq(strstr(noise_is_initiator ? ein.msg : eis.msg, "message 2"), NULL);
        cr_assert(!rp_signed_is_done(s));
        rp_noise_free(n);
        rp_signed_free(s);
    }
    ringp2p_privkey_free(ki);
    ringp2p_privkey_free(kr);
}

Test(signed_pair, wrong_peer_and_misuse)
{
    ringp2p_privkey *ki = gen(), *kr = gen(), *other = gen();
    ringp2p_peer_id want;
    ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(other), &want);
    rp_noise_config ci = { .identity = ki, .initiator = true, .expected_peer = &want };
    rp_noise_config cr = { .identity = kr };
    rp_signed *si, *sr;
    cr_assert_eq(rp_signed_new(&ci, &si, NULL), 0);
    cr_assert_eq(rp_signed_new(&cr, &sr, NULL), 0);
    /* Before the handshake: seal and open refuse. */
    uint8_t buf[4096];
    rp_iov v = rp_iov_make("x", 1);
    cr_assert_eq(rp_signed_seal(si, &v, 1, buf, sizeof(buf), NULL), RINGP2P_EINVAL);
    uint8_t *p = buf;
    rp_iov got;
    cr_assert_eq(rp_signed_open(si, &p, buf + 10, &got, NULL), RINGP2P_EINVAL);
    struct end a, b;
    end_init(&a, si);
    end_init(&b, sr);
    int ra = 0;
    for (int round = 0; round < 4 && ra >= 0; round++) {
        p = a.rx + a.off;
        rp_wbuf w = rp_wbuf_make(b.rx + b.len, RX_CAP - b.len);
        ra = rp_signed_handshake(si, &p, a.rx + a.len, &w, &a.ei);
        a.off = (size_t)(p - a.rx);
        b.len += w.len;
        if (ra < 0) break;
        p = b.rx + b.off;
        w = rp_wbuf_make(a.rx + a.len, RX_CAP - a.len);
        cr_assert_geq(rp_signed_handshake(sr, &p, b.rx + b.len, &w, &b.ei), 0);
        b.off = (size_t)(p - b.rx);
        a.len += w.len;
    }
    cr_assert_eq(ra, RINGP2P_EPEERMISMATCH, "%s", a.ei.msg);
    cr_assert_eq(rp_signed_handshake(si, &p, p, NULL, NULL), RINGP2P_EPEERMISMATCH);
    cr_assert_null(rp_signed_remote_peer(si));
    end_fini(&a);
    end_fini(&b);
    ringp2p_privkey_free(ki);
    ringp2p_privkey_free(kr);
    ringp2p_privkey_free(other);
}
