/* /plaintext/2.0.0: two sessions wired together in memory, spec key vectors, malformed Exchanges.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "base/varint.h"
#include "key_vectors.h"
#include "security/plaintext.h"

/* The public keys of the peer-ids spec vectors, as pubkey objects. */
static ringp2p_pubkey *spec_pub(const char *hex)
{
    uint8_t pb[1024];
    size_t n = unhex(hex, pb, sizeof(pb));
    ringp2p_pubkey *k = NULL;
    cr_assert_eq(ringp2p_pubkey_from_protobuf(pb, n, &k, NULL), 0);
    return k;
}

static rp_plaintext *session(const ringp2p_pubkey *k, const ringp2p_peer_id *expected)
{
    rp_plaintext_config cfg = { .local_key = k, .expected_peer = expected };
    rp_plaintext *s = NULL;
    ringp2p_errinfo ei;
    cr_assert_eq(rp_plaintext_new(&cfg, &s, &ei), 0, "%s", ei.msg);
    return s;
}

/* Runs the first call with no input and returns the frame it wrote. */
static size_t first_flight(rp_plaintext *s, uint8_t *buf, size_t cap)
{
    const uint8_t *p = NULL;
    rp_wbuf w = rp_wbuf_make(buf, cap);
    cr_assert_eq(rp_plaintext_handshake(s, &p, NULL, &w, NULL), 0);
    return w.len;
}

Test(plaintext, exchange_is_the_spec_protobuf_byte_for_byte)
{
    /* Exchange = 0x0a len(id) id 0x12 len(pubkey) pubkey (plaintext/README.md "Messages"). */
    uint8_t pb[64];
    size_t n = unhex(SPEC_ED25519_PUBLIC_KEY, pb, sizeof(pb));
    ringp2p_pubkey *k = spec_pub(SPEC_ED25519_PUBLIC_KEY);
    ringp2p_peer_id id;
    ringp2p_peer_id_from_pubkey(k, &id);
    uint8_t want[128];
    size_t wl = 0;
    want[wl++] = 0x0a;
    want[wl++] = id.len;
    memcpy(want + wl, id.bytes, id.len);
    wl += id.len;
    want[wl++] = 0x12;
    want[wl++] = (uint8_t)n;
    memcpy(want + wl, pb, n);
    wl += n;
    /* An identity peer ID inlines the key: 0x00 len key. */
    cr_assert_eq(id.bytes[0], 0x00);
    cr_assert_eq(id.bytes[1], n);
    cr_assert_eq(memcmp(id.bytes + 2, pb, n), 0);

    uint8_t got[128];
    cr_assert_eq(rp_plaintext_exchange_encode(id.bytes, id.len, pb, n, got, sizeof(got)),
                 (ssize_t)wl);
    cr_assert_eq(memcmp(got, want, wl), 0);
    cr_assert_eq(rp_plaintext_exchange_encode(id.bytes, id.len, pb, n, got, wl - 1),
                 RINGP2P_ENOBUF);

    /* The session frames it with a uvarint length. */
    rp_plaintext *s = session(k, NULL);
    uint8_t frame[RP_PLAINTEXT_FRAME_MAX];
    size_t fl = first_flight(s, frame, sizeof(frame));
    cr_assert_eq(fl, 1 + wl);
    cr_assert_eq(frame[0], wl);
    cr_assert_eq(memcmp(frame + 1, want, wl), 0);

    const uint8_t *p = want;
    rp_plaintext_exchange ex;
    cr_assert_eq(rp_plaintext_exchange_decode(&p, want + wl, &ex, NULL), 0);
    cr_assert_eq(p, want + wl);
    cr_assert_eq(ex.id.len, id.len);
    cr_assert_eq(memcmp(ex.id.base, id.bytes, id.len), 0);
    cr_assert_eq(ex.pubkey.len, n);
    rp_plaintext_free(s);
    ringp2p_pubkey_free(k);
}

/* Both sides exchange, feeding `chunk` bytes at a time; the dialer expects `expect` (may be NULL).
 */
static void run_pair(const ringp2p_pubkey *kd, const ringp2p_pubkey *kl, size_t chunk)
{
    ringp2p_peer_id idd, idl;
    ringp2p_peer_id_from_pubkey(kd, &idd);
    ringp2p_peer_id_from_pubkey(kl, &idl);
    rp_plaintext *d = session(kd, &idl), *l = session(kl, NULL);
    uint8_t fd[RP_PLAINTEXT_FRAME_MAX + 8], fl[RP_PLAINTEXT_FRAME_MAX + 8];
    size_t nd = first_flight(d, fd, sizeof(fd));
    size_t nl = first_flight(l, fl, sizeof(fl));
    /* Payload right behind the exchange must be left for the connection. */
    memcpy(fd + nd, "abc", 3);
    memcpy(fl + nl, "xyz", 3);
    rp_plaintext *sides[2] = { d, l };
    uint8_t *in[2] = { fl, fd };
    size_t in_len[2] = { nl + 3, nd + 3 };
    for (int i = 0; i < 2; i++) {
        size_t avail = 0;
        const uint8_t *p = in[i];
        int r = 0;
        while (r == 0) {
            avail = avail + chunk > in_len[i] ? in_len[i] : avail + chunk;
            rp_wbuf w = rp_wbuf_make(NULL, 0);
            ringp2p_errinfo ei;
            r = rp_plaintext_handshake(sides[i], &p, in[i] + avail, &w, &ei);
            cr_assert_geq(r, 0, "%s", ei.msg);
            cr_assert_eq(w.len, 0, "our Exchange goes out once");
            cr_assert(r == RP_PLAINTEXT_DONE || p == in[i], "a partial frame is not consumed");
        }
        cr_assert_eq(in[i] + in_len[i] - p, 3);
        cr_assert(rp_plaintext_is_done(sides[i]));
    }
    cr_assert(ringp2p_peer_id_equal(rp_plaintext_remote_peer(d), &idl));
    cr_assert(ringp2p_peer_id_equal(rp_plaintext_remote_peer(l), &idd));
    cr_assert(ringp2p_pubkey_equal(rp_plaintext_remote_key(d), kl));
    cr_assert(ringp2p_pubkey_equal(rp_plaintext_remote_key(l), kd));
    rp_plaintext_free(d);
    rp_plaintext_free(l);
}

Test(plaintext, pairs_of_every_key_type_whole_and_byte_by_byte)
{
    /* Ed25519 and secp256k1 give identity peer IDs, ECDSA and RSA sha2-256 ones. */
    const char *keys[] = { SPEC_ED25519_PUBLIC_KEY, SPEC_SECP256K1_PUBLIC_KEY,
                           SPEC_ECDSA_PUBLIC_KEY, SPEC_RSA_PUBLIC_KEY };
    for (size_t i = 0; i < 4; i++) {
        for (size_t j = 0; j < 4; j++) {
            ringp2p_pubkey *a = spec_pub(keys[i]), *b = spec_pub(keys[j]);
            run_pair(a, b, RP_PLAINTEXT_FRAME_MAX);
            run_pair(a, b, 1);
            run_pair(a, b, 7);
            ringp2p_pubkey_free(a);
            ringp2p_pubkey_free(b);
        }
    }
}

Test(plaintext, no_room_for_our_exchange_is_not_fatal)
{
    ringp2p_pubkey *k = spec_pub(SPEC_RSA_PUBLIC_KEY);
    rp_plaintext *s = session(k, NULL);
    const uint8_t *p = NULL;
    uint8_t small[16];
    rp_wbuf w = rp_wbuf_make(small, sizeof(small));
    cr_assert_eq(rp_plaintext_handshake(s, &p, NULL, &w, NULL), RINGP2P_ENOBUF);
    cr_assert_eq(w.len, 0);
    uint8_t big[RP_PLAINTEXT_FRAME_MAX];
    cr_assert_gt(first_flight(s, big, sizeof(big)), 300);
    cr_assert_eq(rp_plaintext_new(&(rp_plaintext_config){ 0 }, &s, NULL), RINGP2P_EINVAL);
    rp_plaintext_free(s);
    rp_plaintext_free(NULL);
    ringp2p_pubkey_free(k);
}

Test(plaintext, dialer_refuses_an_unexpected_peer_and_names_both)
{
    ringp2p_pubkey *a = spec_pub(SPEC_ED25519_PUBLIC_KEY), *b = spec_pub(SPEC_SECP256K1_PUBLIC_KEY);
    ringp2p_pubkey *c = spec_pub(SPEC_ECDSA_PUBLIC_KEY);
    ringp2p_peer_id want, got;
    ringp2p_peer_id_from_pubkey(c, &want);
    ringp2p_peer_id_from_pubkey(b, &got);
    rp_plaintext *d = session(a, &want), *l = session(b, NULL);
    uint8_t fd[RP_PLAINTEXT_FRAME_MAX], fl[RP_PLAINTEXT_FRAME_MAX];
    first_flight(d, fd, sizeof(fd));
    size_t nl = first_flight(l, fl, sizeof(fl));
    const uint8_t *p = fl;
    ringp2p_errinfo ei;
    cr_assert_eq(rp_plaintext_handshake(d, &p, fl + nl, NULL, &ei), RINGP2P_EPEERMISMATCH);
    cr_assert_eq(p, fl);
    char sw[RINGP2P_PEER_ID_STR_MAX], sg[RINGP2P_PEER_ID_STR_MAX];
    ringp2p_peer_id_to_string(&want, sw, sizeof(sw));
    ringp2p_peer_id_to_string(&got, sg, sizeof(sg));
    cr_assert(strstr(ei.msg, sw) != NULL, "%s", ei.msg);
    cr_assert(strstr(ei.msg, sg) != NULL, "%s", ei.msg);
    /* Sticky: the same error and message again, and no remote peer. */
    ringp2p_errinfo ei2;
    cr_assert_eq(rp_plaintext_handshake(d, &p, fl + nl, NULL, &ei2), RINGP2P_EPEERMISMATCH);
    cr_assert_str_eq(ei2.msg, ei.msg);
    cr_assert_null(rp_plaintext_remote_peer(d));
    cr_assert_not(rp_plaintext_is_done(d));
    rp_plaintext_free(d);
    rp_plaintext_free(l);
    ringp2p_pubkey_free(a);
    ringp2p_pubkey_free(b);
    ringp2p_pubkey_free(c);
}

/* Builds a frame: uvarint(len) body. */
static size_t frame_of(const uint8_t *body, size_t n, uint8_t *out)
{
    ssize_t pl = rp_uvarint_encode(out, 9, n);
    cr_assert_gt(pl, 0);
    memcpy(out + pl, body, n);
    return (size_t)pl + n;
}

static size_t put_field(uint8_t *out, uint8_t tag, const uint8_t *b, size_t n)
{
    out[0] = tag;
    ssize_t l = rp_uvarint_encode(out + 1, 9, n);
    if (n != 0) memcpy(out + 1 + l, b, n);
    return 1 + (size_t)l + n;
}

Test(plaintext, malformed_exchanges_are_refused_with_the_exact_problem)
{
    uint8_t ed[64], secp[64];
    size_t edn = unhex(SPEC_ED25519_PUBLIC_KEY, ed, sizeof(ed));
    size_t secpn = unhex(SPEC_SECP256K1_PUBLIC_KEY, secp, sizeof(secp));
    ringp2p_pubkey *ek = spec_pub(SPEC_ED25519_PUBLIC_KEY),
                   *sk = spec_pub(SPEC_SECP256K1_PUBLIC_KEY);
    ringp2p_peer_id eid, sid;
    ringp2p_peer_id_from_pubkey(ek, &eid);
    ringp2p_peer_id_from_pubkey(sk, &sid);
    uint8_t bad_key[64];
    memcpy(bad_key, secp, secpn);
    bad_key[4] = 0x05; /* a compressed secp256k1 point starts with 02 or 03 */
    uint8_t bad_type[64];
    memcpy(bad_type, ed, edn);
    bad_type[1] = 9;                                       /* KeyType 9 */
    const uint8_t sha_garbage[] = { 0x12, 0x20, 1, 2, 3 }; /* sha2-256 digest of 3 bytes */

    enum { ID, KEY, BOTH, DUP_ID, WRONG_WT, ID_OF_OTHER, BADKEY, BADTYPE, BADID, EMPTYID, TRUNC };
    struct {
        const char *name;
        int kind;
        int code;
        const char *needle;
    } cases[] = {
        { "only id", ID, RINGP2P_EPROTOBUF, "without pubkey" },
        { "only pubkey", KEY, RINGP2P_EPROTOBUF, "without id" },
        { "id twice", DUP_ID, RINGP2P_EPROTOBUF, "twice" },
        { "id as a varint", WRONG_WT, RINGP2P_EPROTOBUF, "id" },
        { "id of another key", ID_OF_OTHER, RINGP2P_EPROTOCOL, "claims peer" },
        { "bad key data", BADKEY, RINGP2P_EKEY, NULL },
        { "bad key type", BADTYPE, RINGP2P_EKEYTYPE, NULL },
        { "bad id", BADID, RINGP2P_EPEERID, NULL },
        { "empty id", EMPTYID, RINGP2P_EPEERID, NULL },
        { "truncated field", TRUNC, RINGP2P_EPROTOBUF, NULL },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t body[256];
        size_t n = 0;
        switch (cases[i].kind) {
        case ID: n += put_field(body + n, 0x0a, eid.bytes, eid.len); break;
        case KEY: n += put_field(body + n, 0x12, ed, edn); break;
        case DUP_ID:
            n += put_field(body + n, 0x0a, eid.bytes, eid.len);
            n += put_field(body + n, 0x0a, eid.bytes, eid.len);
            n += put_field(body + n, 0x12, ed, edn);
            break;
        case WRONG_WT:
            body[n++] = 0x08;
            body[n++] = 1;
            n += put_field(body + n, 0x12, ed, edn);
            break;
        case ID_OF_OTHER:
            n += put_field(body + n, 0x0a, sid.bytes, sid.len);
            n += put_field(body + n, 0x12, ed, edn);
            break;
        case BADKEY:
            n += put_field(body + n, 0x0a, eid.bytes, eid.len);
            n += put_field(body + n, 0x12, bad_key, secpn);
            break;
        case BADTYPE:
            n += put_field(body + n, 0x0a, eid.bytes, eid.len);
            n += put_field(body + n, 0x12, bad_type, edn);
            break;
        case BADID:
            n += put_field(body + n, 0x0a, sha_garbage, sizeof(sha_garbage));
            n += put_field(body + n, 0x12, ed, edn);
            break;
        case EMPTYID:
            n += put_field(body + n, 0x0a, NULL, 0);
            n += put_field(body + n, 0x12, secp, secpn);
            break;
        case TRUNC:
            n += put_field(body + n, 0x0a, eid.bytes, eid.len);
            body[n++] = 0x12;
            body[n++] = 0x40; /* 64 bytes announced, none there */
            break;
        default: break;
        }
        uint8_t fr[300];
        size_t fl = frame_of(body, n, fr);
        rp_plaintext *s = session(sk, NULL);
        uint8_t out[RP_PLAINTEXT_FRAME_MAX];
        rp_wbuf w = rp_wbuf_make(out, sizeof(out));
        const uint8_t *p = fr;
        ringp2p_errinfo ei = { 0 };
        int r = rp_plaintext_handshake(s, &p, fr + fl, &w, &ei);
        cr_assert_eq(r, cases[i].code, "%s: %d (%s)", cases[i].name, r, ei.msg);
        cr_assert_eq(ei.code, cases[i].code, "%s", cases[i].name);
        cr_assert_eq(p, fr, "%s: cursor moved", cases[i].name);
        if (cases[i].needle)
            cr_assert(strstr(ei.msg, cases[i].needle) != NULL, "%s: %s", cases[i].name, ei.msg);
        cr_assert_null(rp_plaintext_remote_key(s));
        rp_plaintext_free(s);
    }
    ringp2p_pubkey_free(ek);
    ringp2p_pubkey_free(sk);
}

Test(plaintext, framing_errors_and_limits)
{
    ringp2p_pubkey *k = spec_pub(SPEC_ED25519_PUBLIC_KEY);
    struct {
        uint8_t in[12];
        size_t len;
        int code; /* 0: waits for more */
    } cases[] = {
        { { 0x80, 0x00 }, 2, RINGP2P_EVARINT }, /* non-minimal length */
        { { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 }, 10, RINGP2P_EVARINT },
        /* 8253 = RP_PLAINTEXT_EXCHANGE_MAX + 1, refused before any body arrives */
        { { 0xbd, 0x40 }, 2, RINGP2P_ELIMIT },
        { { 0x80 }, 1, 0 },                 /* prefix incomplete */
        { { 0x05, 0x0a }, 2, 0 },           /* body incomplete */
        { { 0x00 }, 1, RINGP2P_EPROTOBUF }, /* empty Exchange */
    };
    cr_assert_eq(RP_PLAINTEXT_EXCHANGE_MAX + 1, 0x40 * 128 + 0x3d);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rp_plaintext *s = session(k, NULL);
        uint8_t out[RP_PLAINTEXT_FRAME_MAX];
        rp_wbuf w = rp_wbuf_make(out, sizeof(out));
        const uint8_t *p = cases[i].in;
        ringp2p_errinfo ei;
        int r = rp_plaintext_handshake(s, &p, cases[i].in + cases[i].len, &w, &ei);
        cr_assert_eq(r, cases[i].code, "case %zu: %d", i, r);
        cr_assert_eq(p, cases[i].in);
        rp_plaintext_free(s);
    }
    /* The body decoder has the same limit on its own. */
    static uint8_t big[RP_PLAINTEXT_EXCHANGE_MAX + 1];
    const uint8_t *p = big;
    rp_plaintext_exchange ex;
    cr_assert_eq(rp_plaintext_exchange_decode(&p, big + sizeof(big), &ex, NULL), RINGP2P_ELIMIT);
    cr_assert_eq(p, big);
    ringp2p_pubkey_free(k);
}
