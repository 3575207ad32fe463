#include <criterion/criterion.h>

#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "security/noise.h"

/* ---- Noise XX against published vectors ---------------------------------------------------- */

/*
 * Every Noise_XX_25519_ChaChaPoly_SHA256 vector of cacophony
 * (haskell-cryptography/cacophony vectors/cacophony.txt) and snow
 * (mcginty/snow tests/vectors/snow.txt): fixed keys, a prologue, payloads on
 * each handshake message, then transport messages, alternating from the
 * initiator. The same code runs libp2p's handshake with an empty prologue.
 */
static const struct xx_vector {
    const char *source;
    const char *prologue;
    const char *init_static, *init_ephemeral, *resp_static, *resp_ephemeral;
    const char *handshake_hash; /* NULL where the file gives none */
    struct {
        const char *payload, *ciphertext;
    } msgs[8];
    size_t n_msgs;
} xx_vectors[] = {
    { "cacophony",
      "4a6f686e2047616c74",
      "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1",
      "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a",
      "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893",
      "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b",
      "c8e5f64e846193be2a834104c2a009868d6c9f3bd3c186299888b488b2f1f58e",
      {
          { "4c756477696720766f6e204d69736573",
            "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944"
            "4c756477696720766f6e204d69736573" },
          { "4d757272617920526f746862617264",
            "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f144808843"
            "81cbad1f276e038c48378ffce2b65285e08d6b68aaa3629a5a8639392490e5b9"
            "bd5269c2f1e4f488ed8831161f19b7815528f8982ffe09be9b5c412f8a0db50f"
            "8814c7194e83f23dbd8d162c9326ad" },
          { "462e20412e20486179656b",
            "c7195ffacac1307ff99046f219750fc47693e23c3cb08b89c2af808b444850a8"
            "0ae475b9df0f169ae80a89be0865b57f58c9fea0d4ec82a286427402f113e4b6"
            "ae769a1d95941d49b25030" },
          { "4361726c204d656e676572", "96763ed773f8e47bb3712f0e29b3060ffc956ffc146cee53d5e1df" },
          { "4a65616e2d426170746973746520536179",
            "3e40f15f6f3a46ae446b253bf8b1d9ffb6ed9b174d272328ff91a7e2e5c79c07"
            "f5" },
          { "457567656e2042f6686d20766f6e2042617765726b",
            "eb3f3515110702e047a6c9da4478b6ead94873c11c0f2d710ddb3f09fce024b3"
            "a58502ae3f" },
      },
      6 },
    { "snow",
      "5468657265206973206e6f20726967687420616e642077726f6e672e20546865"
      "72652773206f6e6c792066756e20616e6420626f72696e672e",
      "7dec208517a3b81a2861d7a71266d5d6dc944c5a8816634a86fe63198a0148ee",
      "a32daf21e93c0131495ce1d903181fde81cc46937daaeb990bae7c992709421e",
      "4d0aed5098e3b4ef20357e9f686ce66204c792b358da2e475017d6c485304881",
      "4eece0f195d026db035ff987597c429d3ad3bcc2944df37d649528951b2a27c5",
      NULL,
      {
          { "d03c489139e645d0711a3c9e810d776b46a84912463fafa87b884eebf242dc34",
            "f9fa868ba97ab8a2686deccfaad5a484ee10a5bb85e3d1dce015a84797f92818"
            "d03c489139e645d0711a3c9e810d776b46a84912463fafa87b884eebf242dc34" },
          { "d8190a92f7dc0c93dbea9118ba8055751fb7c6590c416ffbd419964132b99a85",
            "8c4e6fdb7d09d501a86f7eca5c234522751706ed409182c05cdf5f827d4dae47"
            "b81c6c5f43b025692c24391eefee725c17d8cb0fbe3e4abb8aedf42c4fd2592d"
            "4ea48ac08989d6ae8b4adae08b2c34087c808c7aa55a63c02b0fab9e93061233"
            "6bd43eaea04d3c670a0a146691aa9cc9d357872320dc735dbc48580cffb553db" },
          { "77891b19dcb92ef7c055b672c4a5aa7fdf1c84146b8b303459022729473ce254",
            "933ca6b5ed60df3df66121f0ab49a09e49efa45c613a86a3cecbf4c535cef2f8"
            "3f72b42837b18e3572f2fdc2b74c331e2368a545cef54bdca081678ab0e9dd53"
            "48122459e0c034c851984d88ce610963d43cde6cfe73a67fbd5a63e8bfca96d0" },
          { "d7efdf988072881941db045a42882433817555128fbf5663e56081712ec7d212",
            "54ef0ff0629e1aaa7685a2806ab111cba76b52331f2642276736f415868eacb6"
            "9ab2577f3bda0cbf72f879685f6ed25f" },
          { "dd7bf01a588bafb52c6cfba952e5d8fe35cc2b3f92b4730ae2474615157345ce",
            "356be70f110306d5c699bb834bb9d58d909e325924dfbec972e406e6f294dc63"
            "e1daebefe8a62a334facc8048ab4ad66" },
      },
      5 },
};

Test(noise_hs, published_vectors_byte_exact)
{
    for (size_t vi = 0; vi < sizeof(xx_vectors) / sizeof(xx_vectors[0]); vi++) {
        const struct xx_vector *v = &xx_vectors[vi];
        uint8_t prologue[128], is[32], ie[32], rs[32], re[32];
        size_t plen = unhex(v->prologue, prologue, sizeof(prologue));
        unhex(v->init_static, is, 32);
        unhex(v->init_ephemeral, ie, 32);
        unhex(v->resp_static, rs, 32);
        unhex(v->resp_ephemeral, re, 32);
        rp_noise_hs ini, res;
        rp_noise_hs_init(&ini, true, prologue, plen, is, ie);
        rp_noise_hs_init(&res, false, prologue, plen, rs, re);
        rp_noise_cipher isend = { 0 }, irecv = { 0 }, rsend = { 0 }, rrecv = { 0 };
        for (size_t m = 0; m < v->n_msgs; m++) {
            uint8_t payload[256], want[512], buf[512];
            size_t pl = unhex(v->msgs[m].payload, payload, sizeof(payload));
            size_t wl = unhex(v->msgs[m].ciphertext, want, sizeof(want));
            bool from_init = m % 2 == 0;
            ssize_t n;
            if (m < 3) {
                rp_noise_hs *w = from_init ? &ini : &res, *r = from_init ? &res : &ini;
                cr_assert(rp_noise_hs_writes_next(w));
                cr_assert_not(rp_noise_hs_writes_next(r));
                cr_assert_eq(rp_noise_hs_write_len(w, pl), wl);
                n = rp_noise_hs_write(w, payload, pl, buf, sizeof(buf), NULL);
                cr_assert_eq(n, (ssize_t)wl, "%s msg %zu: length %zd", v->source, m, n);
                cr_assert_arr_eq(buf, want, wl, "%s: handshake message %zu differs", v->source, m);
                rp_iov got;
                cr_assert_eq(rp_noise_hs_read(r, buf, wl, &got, NULL), 0, "%s msg %zu read",
                             v->source, m);
                cr_assert_eq(got.len, pl);
                cr_assert_arr_eq(got.base, payload, pl);
                if (m == 2) {
                    cr_assert(rp_noise_hs_done(&ini) && rp_noise_hs_done(&res));
                    cr_assert_arr_eq(rp_noise_hs_hash(&ini), rp_noise_hs_hash(&res), 32);
                    if (v->handshake_hash != NULL) {
                        uint8_t h[32];
                        unhex(v->handshake_hash, h, 32);
                        cr_assert_arr_eq(rp_noise_hs_hash(&ini), h, 32, "%s: handshake hash",
                                         v->source);
                    }
                    cr_assert_eq(rp_noise_hs_split(&ini, &isend, &irecv), 0);
                    cr_assert_eq(rp_noise_hs_split(&res, &rsend, &rrecv), 0);
                }
            } else {
                rp_noise_cipher *tx = from_init ? &isend : &rsend;
                rp_noise_cipher *rx = from_init ? &rrecv : &irecv;
                memcpy(buf, payload, pl);
                n = rp_noise_cipher_encrypt(tx, NULL, 0, buf, pl);
                cr_assert_eq(n, (ssize_t)wl);
                cr_assert_arr_eq(buf, want, wl, "%s: transport message %zu differs", v->source, m);
                cr_assert_eq(rp_noise_cipher_decrypt(rx, NULL, 0, buf, wl), (ssize_t)pl);
                cr_assert_arr_eq(buf, payload, pl);
            }
        }
        rp_noise_hs_clear(&ini);
        rp_noise_hs_clear(&res);
        rp_noise_cipher_clear(&isend);
        rp_noise_cipher_clear(&irecv);
        rp_noise_cipher_clear(&rsend);
        rp_noise_cipher_clear(&rrecv);
    }
}

Test(noise_hs, misuse_and_short_messages)
{
    rp_noise_hs ini, res;
    rp_noise_hs_init(&ini, true, NULL, 0, NULL, NULL);
    rp_noise_hs_init(&res, false, NULL, 0, NULL, NULL);
    uint8_t buf[256];
    rp_iov pl;
    ringp2p_errinfo ei;
    cr_assert_eq(rp_noise_hs_write(&res, NULL, 0, buf, sizeof(buf), &ei), RINGP2P_EINVAL);
    cr_assert_eq(rp_noise_hs_read(&ini, buf, 32, &pl, &ei), RINGP2P_EINVAL);
    cr_assert_eq(rp_noise_hs_write(&ini, NULL, 0, buf, 31, &ei), RINGP2P_ENOBUF);
    cr_assert_eq(rp_noise_hs_write(&ini, NULL, 0, buf, 32, &ei), 32, "ENOBUF changed nothing");
    cr_assert_eq(rp_noise_hs_read(&res, buf, 31, &pl, &ei), RINGP2P_EPROTOCOL);
    cr_assert(strstr(ei.msg, "message 1") != NULL, "%s", ei.msg);
    rp_noise_cipher a = { 0 }, b = { 0 };
    cr_assert_eq(rp_noise_hs_split(&ini, &a, &b), RINGP2P_EINVAL);
    rp_noise_hs_clear(&ini);
    rp_noise_hs_clear(&res);
}

Test(noise_hs, cipher_nonce_exhaustion)
{
    uint8_t key[32] = { 1 }, buf[64] = { 0 };
    rp_noise_cipher tx = { 0 }, rx = { 0 };
    cr_assert_eq(rp_noise_cipher_init(&tx, key), 0);
    cr_assert_eq(rp_noise_cipher_init(&rx, key), 0);
    rp_noise_cipher_set_nonce(&tx, RP_NOISE_NONCE_MAX);
    rp_noise_cipher_set_nonce(&rx, RP_NOISE_NONCE_MAX);
    cr_assert_eq(rp_noise_cipher_encrypt(&tx, NULL, 0, buf, 8), 24, "2^64-2 is still usable");
    cr_assert_eq(rp_noise_cipher_decrypt(&rx, NULL, 0, buf, 24), 8);
    cr_assert_eq(rp_noise_cipher_encrypt(&tx, NULL, 0, buf, 8), RINGP2P_ELIMIT,
                 "2^64-1 is reserved (Noise 5.1)");
    cr_assert_eq(rp_noise_cipher_decrypt(&rx, NULL, 0, buf, 24), RINGP2P_ELIMIT);
    rp_noise_cipher_clear(&tx);
    rp_noise_cipher_clear(&rx);
}

/* A low-order ephemeral key (here 0) must fail the handshake, not key it with zeros. */
Test(noise_hs, low_order_remote_key_fails)
{
    rp_noise_hs res;
    rp_noise_hs_init(&res, false, NULL, 0, NULL, NULL);
    uint8_t msg1[32] = { 0 }, out[256];
    rp_iov pl;
    cr_assert_eq(rp_noise_hs_read(&res, msg1, sizeof(msg1), &pl, NULL), 0);
    ringp2p_errinfo ei;
    cr_assert_eq(rp_noise_hs_write(&res, NULL, 0, out, sizeof(out), &ei), RINGP2P_EPROTOCOL);
    cr_assert(strstr(ei.msg, "low-order") != NULL, "%s", ei.msg);
    rp_noise_hs_clear(&res);
}

/* ---- handshake payload ------------------------------------------------------------------- */

Test(noise_payload, encode_decode_roundtrip)
{
    static const char *const muxers[] = { "/yamux/1.0.0", "/mplex/6.7.0" };
    const uint8_t key[] = { 8, 1, 18, 3, 'a', 'b', 'c' }, sig[] = { 1, 2, 3, 4 };
    uint8_t buf[256];
    ssize_t n = rp_noise_payload_encode(key, sizeof(key), sig, sizeof(sig), muxers, 2, NULL, 0);
    cr_assert_gt(n, 0);
    cr_assert_eq(
        rp_noise_payload_encode(key, sizeof(key), sig, sizeof(sig), muxers, 2, buf, (size_t)n - 1),
        RINGP2P_ENOBUF);
    cr_assert_eq(
        rp_noise_payload_encode(key, sizeof(key), sig, sizeof(sig), muxers, 2, buf, sizeof(buf)),
        n);
    /* field 1, field 2, field 4 { field 2, field 2 }: the spec's order, as go-libp2p writes it. */
    static const uint8_t want[] = { 0x0a, 7,   8,   1,    18,  3,    'a', 'b',  'c', 0x12, 4,   1,
                                    2,    3,   4,   0x22, 28,  0x12, 12,  '/',  'y', 'a',  'm', 'u',
                                    'x',  '/', '1', '.',  '0', '.',  '0', 0x12, 12,  '/',  'm', 'p',
                                    'l',  'e', 'x', '/',  '6', '.',  '7', '.',  '0' };
    cr_assert_eq((size_t)n, sizeof(want));
    cr_assert_arr_eq(buf, want, sizeof(want));
    rp_noise_payload pl;
    const uint8_t *p = buf;
    cr_assert_eq(rp_noise_payload_decode(&p, buf + n, &pl, NULL), 0);
    cr_assert_eq(p, buf + n);
    cr_assert_eq(pl.identity_key.len, sizeof(key));
    cr_assert_arr_eq(pl.identity_key.base, key, sizeof(key));
    cr_assert_arr_eq(pl.identity_sig.base, sig, sizeof(sig));
    cr_assert(pl.has_extensions);
    cr_assert_eq(pl.n_muxers, 2);
    cr_assert_eq(pl.muxers[1].len, 12);
    cr_assert_arr_eq(pl.muxers[1].base, "/mplex/6.7.0", 12);
    cr_assert_eq(pl.n_certhashes, 0);

    /* No muxers: no extensions field at all. */
    n = rp_noise_payload_encode(key, sizeof(key), sig, sizeof(sig), NULL, 0, buf, sizeof(buf));
    cr_assert_eq(n, 15);
    p = buf;
    cr_assert_eq(rp_noise_payload_decode(&p, buf + n, &pl, NULL), 0);
    cr_assert_not(pl.has_extensions);
}

static const struct payload_case {
    const char *name;
    const char *hex;
    int want;             /* 0 or the error */
    size_t muxers, certs; /* on success */
    const char *msg_part; /* in ei.msg on failure */
} payload_cases[] = {
    { "empty message", "", 0, 0, 0, NULL },
    { "unknown top-level varint, fixed64, fixed32 and bytes fields are skipped",
      "0a0161"
      "18ff01"
      "290102030405060708"
      "3d01020304"
      "2a0100"
      "120162",
      0, 0, 0, NULL },
    { "unknown extension fields are skipped (registry)",
      "2212"
      "0a0178"
      "1a0179"
      "1203"
      "2f6d78"
      "4001"
      "5a0100"
      "0a00",
      0, 1, 2, NULL },
    { "empty extensions", "2200", 0, 0, 0, NULL },
    { "identity_key twice", "0a01610a0162", RINGP2P_EPROTOBUF, 0, 0,
      "identity_key (1) appears twice" },
    { "extensions twice", "22002200", RINGP2P_EPROTOBUF, 0, 0, "extensions (4) appears twice" },
    { "identity_sig as varint", "1001", RINGP2P_EPROTOBUF, 0, 0, "wire type 0" },
    { "stream_muxers as varint", "22021001", RINGP2P_EPROTOBUF, 0, 0, "stream_muxers (2)" },
    { "length past the end", "0a05616263", RINGP2P_EPROTOBUF, 0, 0, "only 3 bytes follow" },
    { "extension length past its message", "2203120561", RINGP2P_EPROTOBUF, 0, 0, "only 1 bytes" },
    { "group wire type", "0b", RINGP2P_EPROTOBUF, 0, 0, "wire type 3" },
    { "field number 0", "0200", RINGP2P_EPROTOBUF, 0, 0, "field number 0" },
    { "truncated tag", "80", RINGP2P_EPROTOBUF, 0, 0, "tag" },
    { "truncated varint value", "1880", RINGP2P_EPROTOBUF, 0, 0, "varint" },
    { "truncated fixed64", "29010203", RINGP2P_EPROTOBUF, 0, 0, "fixed-width" },
};

Test(noise_payload, decode_table)
{
    for (size_t i = 0; i < sizeof(payload_cases) / sizeof(payload_cases[0]); i++) {
        const struct payload_case *c = &payload_cases[i];
        uint8_t buf[256];
        size_t n = unhex(c->hex, buf, sizeof(buf));
        rp_noise_payload pl;
        ringp2p_errinfo ei = { 0 };
        const uint8_t *p = buf;
        int r = rp_noise_payload_decode(&p, buf + n, &pl, &ei);
        cr_assert_eq(r, c->want, "%s: got %d (%s)", c->name, r, ei.msg);
        if (r == 0) {
            cr_assert_eq(p, buf + n, "%s: cursor at end", c->name);
            cr_assert_eq(pl.n_muxers, c->muxers, "%s", c->name);
            cr_assert_eq(pl.n_certhashes, c->certs, "%s", c->name);
        } else {
            cr_assert_eq(p, buf, "%s: cursor must not move on error", c->name);
            cr_assert(strstr(ei.msg, c->msg_part) != NULL, "%s: message '%s' lacks '%s'", c->name,
                      ei.msg, c->msg_part);
        }
    }
}

Test(noise_payload, list_limits)
{
    /* extensions with RP_NOISE_MUXERS_MAX + 1 one-byte muxers. */
    uint8_t buf[1024];
    size_t n = 0, body = 3 * (RP_NOISE_MUXERS_MAX + 1);
    buf[n++] = 0x22;
    buf[n++] = (uint8_t)(0x80 | (body & 0x7f));
    buf[n++] = (uint8_t)(body >> 7);
    for (int i = 0; i <= RP_NOISE_MUXERS_MAX; i++) {
        buf[n++] = 0x12;
        buf[n++] = 1;
        buf[n++] = 'm';
    }
    rp_noise_payload pl;
    ringp2p_errinfo ei;
    const uint8_t *p = buf;
    cr_assert_eq(rp_noise_payload_decode(&p, buf + n, &pl, &ei), RINGP2P_ELIMIT, "%s", ei.msg);
    /* Exactly the limit is fine. */
    body -= 3;
    buf[1] = (uint8_t)(0x80 | (body & 0x7f));
    buf[2] = (uint8_t)(body >> 7);
    p = buf;
    cr_assert_eq(rp_noise_payload_decode(&p, buf + n - 3, &pl, &ei), 0, "%s", ei.msg);
    cr_assert_eq(pl.n_muxers, RP_NOISE_MUXERS_MAX);
}

/* ---- libp2p sessions wired together in memory ------------------------------------------------ */

#define RX_CAP (1u << 20)

struct end {
    rp_noise *s;
    uint8_t *rx; /* bytes from the peer, opened in place */
    size_t len, off;
    int last;
    ringp2p_errinfo ei;
};

static void end_open(struct end *e, const rp_noise_config *cfg)
{
    memset(e, 0, sizeof(*e));
    int r = rp_noise_new(cfg, &e->s, &e->ei);
    cr_assert_eq(r, 0, "rp_noise_new: %s", e->ei.msg);
    e->rx = malloc(RX_CAP);
    cr_assert_not_null(e->rx);
}

static void end_close(struct end *e)
{
    rp_noise_free(e->s);
    free(e->rx);
}

/* One handshake call of `me`; what it writes goes to `peer`. */
static int hs_step(struct end *me, struct end *peer)
{
    uint8_t *p = me->rx + me->off;
    rp_wbuf w = rp_wbuf_make(peer->rx + peer->len, RX_CAP - peer->len);
    me->last = rp_noise_handshake(me->s, &p, me->rx + me->len, &w, &me->ei);
    cr_assert_leq(w.len, w.cap);
    me->off = (size_t)(p - me->rx);
    peer->len += w.len;
    return me->last;
}

static void handshake(struct end *ini, struct end *res)
{
    for (int k = 0; k < 6; k++) {
        hs_step(ini, res);
        if (ini->last < 0) return;
        hs_step(res, ini);
        if (res->last < 0) return;
        if (ini->last == RP_NOISE_DONE && res->last == RP_NOISE_DONE) return;
    }
}

static ringp2p_privkey *gen(ringp2p_key_type t)
{
    ringp2p_privkey *k = NULL;
    cr_assert_eq(ringp2p_privkey_generate(t, &k), 0);
    return k;
}

static rp_noise_config cfg_of(const ringp2p_privkey *k, bool initiator)
{
    rp_noise_config c = { .identity = k, .initiator = initiator };
    return c;
}

/* Seals `len` bytes of data (as a few uneven pieces) from `from` into `to`'s receive buffer. */
static void send_bytes(struct end *from, struct end *to, const uint8_t *data, size_t len)
{
    rp_iov iov[3] = { rp_iov_make(data, len / 3), rp_iov_make(data + len / 3, 0),
                      rp_iov_make(data + len / 3, len - len / 3) };
    ssize_t n = rp_noise_seal(from->s, iov, 3, to->rx + to->len, RX_CAP - to->len, &from->ei);
    cr_assert_eq(n, (ssize_t)rp_noise_sealed_len(len), "seal: %s", from->ei.msg);
    to->len += (size_t)n;
}

/* Opens everything whole in me->rx, appending plaintext to out; returns its length or an error. */
static ssize_t recv_bytes(struct end *me, uint8_t *out)
{
    size_t total = 0;
    for (;;) {
        rp_iov views[8];
        uint8_t *p = me->rx + me->off;
        ssize_t n = rp_noise_open_batch(me->s, &p, me->rx + me->len, views, 8, &me->ei);
        if (n < 0) return n;
        me->off = (size_t)(p - me->rx);
        for (ssize_t i = 0; i < n; i++) {
            memcpy(out + total, views[i].base, views[i].len);
            total += views[i].len;
        }
        if (n < 8) return (ssize_t)total;
    }
}

static void check_pair_talks(struct end *a, struct end *b)
{
    uint8_t msg[3000], got[3000];
    for (size_t i = 0; i < sizeof(msg); i++) msg[i] = (uint8_t)(i * 31 + 7);
    send_bytes(a, b, msg, sizeof(msg));
    send_bytes(b, a, msg, 100);
    cr_assert_eq(recv_bytes(b, got), (ssize_t)sizeof(msg), "%s", b->ei.msg);
    cr_assert_arr_eq(got, msg, sizeof(msg));
    cr_assert_eq(recv_bytes(a, got), 100, "%s", a->ei.msg);
    cr_assert_arr_eq(got, msg, 100);
}

Test(noise, every_key_type_as_identity_both_roles, .timeout = 120)
{
    static const ringp2p_key_type types[] = { RINGP2P_KEY_ED25519, RINGP2P_KEY_SECP256K1,
                                              RINGP2P_KEY_ECDSA, RINGP2P_KEY_RSA };
    ringp2p_privkey *keys[4];
    for (int i = 0; i < 4; i++) keys[i] = gen(types[i]);
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 4; j++) {
            rp_noise_config ci = cfg_of(keys[i], true), cr = cfg_of(keys[j], false);
            ringp2p_peer_id want_r, want_i;
            ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(keys[j]), &want_r);
            ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(keys[i]), &want_i);
            ci.expected_peer = &want_r; /* the dialer knows whom it dials */
            struct end a, b;
            end_open(&a, &ci);
            end_open(&b, &cr);
            cr_assert_null(rp_noise_remote_peer(a.s));
            handshake(&a, &b);
            cr_assert_eq(a.last, RP_NOISE_DONE, "%s -> %s: initiator %d %s",
                         ringp2p_key_type_name(types[i]), ringp2p_key_type_name(types[j]), a.last,
                         a.ei.msg);
            cr_assert_eq(b.last, RP_NOISE_DONE, "%s -> %s: responder %d %s",
                         ringp2p_key_type_name(types[i]), ringp2p_key_type_name(types[j]), b.last,
                         b.ei.msg);
            cr_assert(ringp2p_peer_id_equal(rp_noise_remote_peer(a.s), &want_r));
            cr_assert(ringp2p_peer_id_equal(rp_noise_remote_peer(b.s), &want_i));
            cr_assert(
                ringp2p_pubkey_equal(rp_noise_remote_key(a.s), ringp2p_privkey_public(keys[j])));
            cr_assert(
                ringp2p_pubkey_equal(rp_noise_remote_key(b.s), ringp2p_privkey_public(keys[i])));
            cr_assert_null(rp_noise_muxer(a.s));
            cr_assert_eq(a.off, a.len, "initiator consumed all handshake bytes");
            cr_assert_eq(b.off, b.len);
            check_pair_talks(&a, &b);
            end_close(&a);
            end_close(&b);
        }
    }
    for (int i = 0; i < 4; i++) ringp2p_privkey_free(keys[i]);
}

Test(noise, handshake_calls_after_done_and_output_room)
{
    ringp2p_privkey *k1 = gen(RINGP2P_KEY_ED25519), *k2 = gen(RINGP2P_KEY_ED25519);
    rp_noise_config ci = cfg_of(k1, true), cr = cfg_of(k2, false);
    struct end a, b;
    end_open(&a, &ci);
    end_open(&b, &cr);
    uint8_t small[34];
    rp_wbuf w = rp_wbuf_make(small, 33);
    uint8_t *p = a.rx;
    cr_assert_eq(rp_noise_handshake(a.s, &p, a.rx, &w, &a.ei), RINGP2P_ENOBUF);
    cr_assert_eq(w.len, 0);
    uint8_t dummy[16] = { 0 };
    ssize_t n = rp_noise_seal(a.s, NULL, 0, dummy, sizeof(dummy), &a.ei);
    cr_assert_eq(n, RINGP2P_EINVAL, "no sealing before the handshake");
    rp_iov v;
    p = a.rx;
    cr_assert_eq(rp_noise_open(a.s, &p, a.rx, &v, &a.ei), RINGP2P_EINVAL);
    /* Message 1 is exactly 2 + 32 bytes. */
    w = rp_wbuf_make(small, 34);
    cr_assert_eq(rp_noise_handshake(a.s, &p, a.rx, &w, &a.ei), 0, "%s", a.ei.msg);
    cr_assert_eq(w.len, 34);
    cr_assert_eq(small[0], 0);
    cr_assert_eq(small[1], 32);
    memcpy(b.rx, small, 34);
    b.len = 34;
    /* Feed message 1 one byte at a time: nothing happens until it is whole. */
    size_t full = b.len;
    for (b.len = 0; b.len < full; b.len++) {
        cr_assert_eq(hs_step(&b, &a), 0);
        cr_assert_eq(b.off, 0);
        cr_assert_eq(a.len, 0);
    }
    handshake(&a, &b);
    cr_assert_eq(a.last, RP_NOISE_DONE);
    cr_assert_eq(b.last, RP_NOISE_DONE);
    size_t before = a.len;
    cr_assert_eq(hs_step(&a, &b), RP_NOISE_DONE);
    cr_assert_eq(hs_step(&b, &a), RP_NOISE_DONE);
    cr_assert_eq(a.len, before, "nothing more is written once done");
    check_pair_talks(&a, &b);
    end_close(&a);
    end_close(&b);
    ringp2p_privkey_free(k1);
    ringp2p_privkey_free(k2);
}

/* The initiator's first data may ride in the same read as message 3. */
Test(noise, data_pipelined_after_message_3)
{
    ringp2p_privkey *k1 = gen(RINGP2P_KEY_ED25519), *k2 = gen(RINGP2P_KEY_SECP256K1);
    rp_noise_config ci = cfg_of(k1, true), cr = cfg_of(k2, false);
    struct end a, b;
    end_open(&a, &ci);
    end_open(&b, &cr);
    hs_step(&a, &b);
    hs_step(&b, &a);
    cr_assert_eq(hs_step(&a, &b), RP_NOISE_DONE);
    const uint8_t hello[] = "/multistream/1.0.0\n";
    send_bytes(&a, &b, hello, sizeof(hello));
    cr_assert_eq(hs_step(&b, &a), RP_NOISE_DONE, "%s", b.ei.msg);
    cr_assert_lt(b.off, b.len, "the transport message is left for rp_noise_open");
    uint8_t got[64];
    cr_assert_eq(recv_bytes(&b, got), (ssize_t)sizeof(hello));
    cr_assert_arr_eq(got, hello, sizeof(hello));
    end_close(&a);
    end_close(&b);
    ringp2p_privkey_free(k1);
    ringp2p_privkey_free(k2);
}

Test(noise, peer_id_mismatch_names_both_ids)
{
    ringp2p_privkey *ki = gen(RINGP2P_KEY_ED25519), *kr = gen(RINGP2P_KEY_ED25519),
                    *other = gen(RINGP2P_KEY_SECP256K1);
    ringp2p_peer_id want, real;
    ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(other), &want);
    ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(kr), &real);
    char want_s[RINGP2P_PEER_ID_STR_MAX], real_s[RINGP2P_PEER_ID_STR_MAX];
    ringp2p_peer_id_to_string(&want, want_s, sizeof(want_s));
    ringp2p_peer_id_to_string(&real, real_s, sizeof(real_s));

    /* Dialer expects someone else. */
    rp_noise_config ci = cfg_of(ki, true), cr = cfg_of(kr, false);
    ci.expected_peer = &want;
    struct end a, b;
    end_open(&a, &ci);
    end_open(&b, &cr);
    handshake(&a, &b);
    cr_assert_eq(a.last, RINGP2P_EPEERMISMATCH, "%d %s", a.last, a.ei.msg);
    cr_assert(strstr(a.ei.msg, want_s) != NULL && strstr(a.ei.msg, real_s) != NULL, "%s", a.ei.msg);
    cr_assert_neq(b.last, RP_NOISE_DONE, "message 3 is never sent");
    cr_assert_null(rp_noise_remote_peer(a.s));
    /* Dead from then on. */
    uint8_t *p = a.rx;
    rp_wbuf w = rp_wbuf_make(NULL, 0);
    cr_assert_eq(rp_noise_handshake(a.s, &p, a.rx, &w, &a.ei), RINGP2P_EPEERMISMATCH);
    end_close(&a);
    end_close(&b);

    /* A listener that expects a particular dialer checks message 3. */
    ci = cfg_of(ki, true);
    cr = cfg_of(kr, false);
    cr.expected_peer = &want;
    end_open(&a, &ci);
    end_open(&b, &cr);
    handshake(&a, &b);
    cr_assert_eq(b.last, RINGP2P_EPEERMISMATCH, "%d %s", b.last, b.ei.msg);
    end_close(&a);
    end_close(&b);
    ringp2p_privkey_free(ki);
    ringp2p_privkey_free(kr);
    ringp2p_privkey_free(other);
}

/* Flips one bit at every byte of each handshake frame (length header included). */
Test(noise, tampered_handshake_bytes_fail_cleanly, .timeout = 120)
{
    ringp2p_privkey *ki = gen(RINGP2P_KEY_ED25519), *kr = gen(RINGP2P_KEY_ED25519);
    static const char *const muxers[] = { "/yamux/1.0.0" };
    rp_noise_config ci = cfg_of(ki, true), cr = cfg_of(kr, false);
    ci.muxers = cr.muxers = muxers;
    ci.n_muxers = cr.n_muxers = 1;
    size_t frame_len[3] = { 0 };
    {
        struct end a, b;
        end_open(&a, &ci);
        end_open(&b, &cr);
        hs_step(&a, &b);
        frame_len[0] = b.len;
        hs_step(&b, &a);
        frame_len[1] = a.len;
        hs_step(&a, &b);
        frame_len[2] = b.len - frame_len[0];
        end_close(&a);
        end_close(&b);
    }
    size_t cases = 0;
    for (int m = 0; m < 3; m++) {
        for (size_t pos = 0; pos < frame_len[m]; pos++) {
            struct end a, b;
            end_open(&a, &ci);
            end_open(&b, &cr);
            uint8_t flip = (uint8_t)(1u << (pos % 8));
            hs_step(&a, &b); /* message 1 -> b */
            if (m == 0) b.rx[pos] ^= flip;
            hs_step(&b, &a); /* message 2 -> a */
            if (m == 1) a.rx[pos] ^= flip;
            hs_step(&a, &b); /* message 3 -> b */
            if (m == 2) b.rx[frame_len[0] + pos] ^= flip;
            if (a.last >= 0) hs_step(&b, &a);
            if (a.last >= 0 && b.last >= 0) handshake(&a, &b);
            /* The side that reads the bad message never completes. */
            struct end *reader = m == 1 ? &a : &b;
            cr_assert_neq(reader->last, RP_NOISE_DONE, "message %d byte %zu: accepted", m + 1, pos);
            cr_assert_not(a.last == RP_NOISE_DONE && b.last == RP_NOISE_DONE);
            if (pos >= RP_NOISE_FRAME_HEADER_LEN) {
                /* A body byte is caught by AEAD: message 1's e at the initiator's next read. */
                struct end *catcher = m == 0 ? &a : reader;
                cr_assert_eq(catcher->last, RINGP2P_EAUTH, "message %d byte %zu: got %d (%s)",
                             m + 1, pos, catcher->last, catcher->ei.msg);
            } else {
                cr_assert(reader->last == 0 || reader->last < 0 || (m == 0 && a.last < 0),
                          "message %d header byte %zu", m + 1, pos);
            }
            cases++;
            end_close(&a);
            end_close(&b);
        }
    }
    cr_assert_gt(cases, 200);
    ringp2p_privkey_free(ki);
    ringp2p_privkey_free(kr);
}

static void ready_pair(struct end *a, struct end *b, const ringp2p_privkey *k1,
                       const ringp2p_privkey *k2)
{
    rp_noise_config ci = cfg_of(k1, true), cr = cfg_of(k2, false);
    end_open(a, &ci);
    end_open(b, &cr);
    handshake(a, b);
    cr_assert_eq(a->last, RP_NOISE_DONE);
    cr_assert_eq(b->last, RP_NOISE_DONE);
    /* Start the transport phase with empty receive buffers. */
    cr_assert_eq(a->off, a->len);
    cr_assert_eq(b->off, b->len);
    a->off = a->len = b->off = b->len = 0;
}

Test(noise, tampered_transport_messages_kill_the_session)
{
    ringp2p_privkey *k1 = gen(RINGP2P_KEY_ED25519), *k2 = gen(RINGP2P_KEY_ED25519);
    const uint8_t data[10] = "0123456789";
    const size_t frame = 2 + sizeof(data) + 16;
    for (size_t pos = 0; pos < frame; pos++) {
        struct end a, b;
        ready_pair(&a, &b, k1, k2);
        send_bytes(&a, &b, data, sizeof(data));
        send_bytes(&a, &b, data, sizeof(data));
        b.rx[b.off + pos] ^= (uint8_t)(1u << (pos % 8));
        uint8_t got[64];
        ssize_t n = recv_bytes(&b, got);
        if (pos >= 2) {
            cr_assert_eq(n, RINGP2P_EAUTH, "byte %zu: %zd", pos, n);
        } else {
            /* A changed length either waits for bytes that never come or cuts the frame. */
            cr_assert(n == 0 || n == RINGP2P_EAUTH || n == RINGP2P_EPROTOCOL, "byte %zu: %zd", pos,
                      n);
        }
        if (n < 0) {
            /* Dead for good: even an intact message is refused, and nothing can be sent. */
            send_bytes(&a, &b, data, sizeof(data));
            cr_assert_eq(recv_bytes(&b, got), n);
            cr_assert_eq(rp_noise_seal(b.s, NULL, 0, got, sizeof(got), &b.ei), n);
        }
        end_close(&a);
        end_close(&b);
    }
    ringp2p_privkey_free(k1);
    ringp2p_privkey_free(k2);
}

Test(noise, reordered_replayed_short_and_foreign_messages_fail)
{
    ringp2p_privkey *k1 = gen(RINGP2P_KEY_ED25519), *k2 = gen(RINGP2P_KEY_ED25519);
    const uint8_t m1[] = "first", m2[] = "second";
    uint8_t got[64];
    struct end a, b;

    /* Reordered. */
    ready_pair(&a, &b, k1, k2);
    send_bytes(&a, &b, m1, sizeof(m1));
    size_t l1 = b.len;
    send_bytes(&a, &b, m2, sizeof(m2));
    uint8_t swapped[128];
    memcpy(swapped, b.rx + l1, b.len - l1);
    memcpy(swapped + (b.len - l1), b.rx, l1);
    memcpy(b.rx, swapped, b.len);
    cr_assert_eq(recv_bytes(&b, got), RINGP2P_EAUTH);
    cr_assert(strstr(b.ei.msg, "message 0") != NULL, "%s", b.ei.msg);
    end_close(&a);
    end_close(&b);

    /* Replayed. */
    ready_pair(&a, &b, k1, k2);
    send_bytes(&a, &b, m1, sizeof(m1));
    memcpy(b.rx + b.len, b.rx, b.len);
    b.len *= 2;
    rp_iov v;
    uint8_t *p = b.rx;
    cr_assert_eq(rp_noise_open(b.s, &p, b.rx + b.len, &v, &b.ei), 1);
    cr_assert_eq(v.len, sizeof(m1));
    cr_assert_arr_eq(v.base, m1, sizeof(m1));
    cr_assert_eq(rp_noise_open(b.s, &p, b.rx + b.len, &v, &b.ei), RINGP2P_EAUTH);
    end_close(&a);
    end_close(&b);

    /* Shorter than a tag. */
    ready_pair(&a, &b, k1, k2);
    static const uint8_t short_frame[] = {
        0, 15, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
    };
    memcpy(b.rx, short_frame, sizeof(short_frame));
    b.len = sizeof(short_frame);
    cr_assert_eq(recv_bytes(&b, got), RINGP2P_EPROTOCOL);
    end_close(&a);
    end_close(&b);

    /* From another session (other keys). */
    struct end c, d;
    ready_pair(&a, &b, k1, k2);
    ready_pair(&c, &d, k1, k2);
    send_bytes(&c, &b, m1, sizeof(m1));
    cr_assert_eq(recv_bytes(&b, got), RINGP2P_EAUTH);
    /* The wrong direction: a's own sending key does not open a's receive side. */
    send_bytes(&a, &a, m1, sizeof(m1));
    cr_assert_eq(recv_bytes(&a, got), RINGP2P_EAUTH);
    end_close(&a);
    end_close(&b);
    end_close(&c);
    end_close(&d);
    ringp2p_privkey_free(k1);
    ringp2p_privkey_free(k2);
}

static const char *const YAMUX = "/yamux/1.0.0", *const MPLEX = "/mplex/6.7.0";

Test(noise, early_muxer_negotiation)
{
    static const struct {
        const char *name;
        const char *init[2], *resp[2];
        size_t ni, nr;
        const char *want; /* NULL: multistream-select decides */
        int init_result, resp_result;
    } cases[] = {
        /* The spec's example: the initiator's preference wins. */
        { "both offer, preferences differ",
          { YAMUX, MPLEX },
          { MPLEX, YAMUX },
          2,
          2,
          YAMUX,
          RP_NOISE_DONE,
          RP_NOISE_DONE },
        { "initiator prefers mplex",
          { MPLEX, YAMUX },
          { YAMUX, MPLEX },
          2,
          2,
          MPLEX,
          RP_NOISE_DONE,
          RP_NOISE_DONE },
        { "one in common", { MPLEX, YAMUX }, { YAMUX }, 2, 1, YAMUX, RP_NOISE_DONE, RP_NOISE_DONE },
        { "only the initiator offers",
          { YAMUX },
          { NULL },
          1,
          0,
          NULL,
          RP_NOISE_DONE,
          RP_NOISE_DONE },
        { "only the responder offers",
          { NULL },
          { YAMUX },
          0,
          1,
          NULL,
          RP_NOISE_DONE,
          RP_NOISE_DONE },
        { "neither offers", { NULL }, { NULL }, 0, 0, NULL, RP_NOISE_DONE, RP_NOISE_DONE },
        /* inlined-muxer-negotiation.md: no overlap MUST fail; the initiator sees it first. */
        { "no overlap", { YAMUX }, { MPLEX }, 1, 1, NULL, RINGP2P_ENEGOTIATION, 0 },
    };
    ringp2p_privkey *k1 = gen(RINGP2P_KEY_ED25519), *k2 = gen(RINGP2P_KEY_ED25519);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rp_noise_config ci = cfg_of(k1, true), cr = cfg_of(k2, false);
        ci.muxers = cases[i].init;
        ci.n_muxers = cases[i].ni;
        cr.muxers = cases[i].resp;
        cr.n_muxers = cases[i].nr;
        struct end a, b;
        end_open(&a, &ci);
        end_open(&b, &cr);
        handshake(&a, &b);
        cr_assert_eq(a.last, cases[i].init_result, "%s: initiator %d %s", cases[i].name, a.last,
                     a.ei.msg);
        cr_assert_eq(b.last, cases[i].resp_result, "%s: responder %d %s", cases[i].name, b.last,
                     b.ei.msg);
        if (a.last == RP_NOISE_DONE) {
            /* The very pointer from the config, on both sides. */
            cr_assert_eq(rp_noise_muxer(a.s), cases[i].want, "%s: initiator got %s", cases[i].name,
                         rp_noise_muxer(a.s) ? rp_noise_muxer(a.s) : "none");
            cr_assert_eq(rp_noise_muxer(b.s), cases[i].want, "%s: responder got %s", cases[i].name,
                         rp_noise_muxer(b.s) ? rp_noise_muxer(b.s) : "none");
        } else {
            cr_assert(strstr(a.ei.msg, YAMUX) != NULL && strstr(a.ei.msg, MPLEX) != NULL, "%s",
                      a.ei.msg);
        }
        end_close(&a);
        end_close(&b);
    }
    ringp2p_privkey_free(k1);
    ringp2p_privkey_free(k2);
}

/* The responder's side of "no overlap": a fake initiator that completes message 3 anyway. */
Test(noise, no_common_muxer_fails_the_responder_too)
{
    ringp2p_privkey *ki = gen(RINGP2P_KEY_ED25519), *kr = gen(RINGP2P_KEY_ED25519);
    static const char *const theirs[] = { "/mplex/6.7.0" }, *const ours[] = { "/yamux/1.0.0" };
    rp_noise_config cr = cfg_of(kr, false);
    cr.muxers = ours;
    cr.n_muxers = 1;
    struct end b;
    end_open(&b, &cr);
    rp_noise_hs ini;
    rp_noise_hs_init(&ini, true, NULL, 0, NULL, NULL);
    uint8_t buf[4096];
    ssize_t n = rp_noise_hs_write(&ini, NULL, 0, b.rx + 2, 100, NULL);
    b.rx[0] = 0;
    b.rx[1] = (uint8_t)n;
    b.len = 2 + (size_t)n;
    uint8_t *p = b.rx;
    rp_wbuf w = rp_wbuf_make(buf, sizeof(buf));
    cr_assert_eq(rp_noise_handshake(b.s, &p, b.rx + b.len, &w, &b.ei), 0);
    rp_iov pl;
    cr_assert_eq(rp_noise_hs_read(&ini, buf + 2, w.len - 2, &pl, NULL), 0);
    /* A correct libp2p payload offering only mplex. */
    uint8_t tbs[RP_NOISE_SIG_PREFIX_LEN + 32], sig[RINGP2P_SIGNATURE_MAX], key[256], payload[512];
    memcpy(tbs, RP_NOISE_SIG_PREFIX, RP_NOISE_SIG_PREFIX_LEN);
    memcpy(tbs + RP_NOISE_SIG_PREFIX_LEN, ini.s_pub, 32);
    ssize_t sl = ringp2p_privkey_sign(ki, tbs, sizeof(tbs), sig, sizeof(sig));
    ssize_t kl = ringp2p_pubkey_to_protobuf(ringp2p_privkey_public(ki), key, sizeof(key));
    ssize_t pll = rp_noise_payload_encode(key, (size_t)kl, sig, (size_t)sl, theirs, 1, payload,
                                          sizeof(payload));
    cr_assert_gt(pll, 0);
    n = rp_noise_hs_write(&ini, payload, (size_t)pll, b.rx + b.len + 2, 1000, NULL);
    cr_assert_gt(n, 0);
    b.rx[b.len] = (uint8_t)(n >> 8);
    b.rx[b.len + 1] = (uint8_t)n;
    b.len += 2 + (size_t)n;
    w = rp_wbuf_make(buf, sizeof(buf));
    cr_assert_eq(rp_noise_handshake(b.s, &p, b.rx + b.len, &w, &b.ei), RINGP2P_ENEGOTIATION, "%s",
                 b.ei.msg);
    rp_noise_hs_clear(&ini);
    end_close(&b);
    ringp2p_privkey_free(ki);
    ringp2p_privkey_free(kr);
}

/* A fake responder sends message 2 with a payload of our making; the initiator must refuse it. */
static int initiator_against_payload_vc(const ringp2p_privkey *ki, const uint8_t *payload,
                                        size_t len, rp_noise_hs *res, rp_sigcache *vc,
                                        ringp2p_errinfo *ei)
{
    rp_noise_config ci = cfg_of(ki, true);
    ci.verified = vc;
    struct end a;
    end_open(&a, &ci);
    uint8_t out[4096];
    rp_wbuf w = rp_wbuf_make(out, sizeof(out));
    uint8_t *p = a.rx;
    cr_assert_eq(rp_noise_handshake(a.s, &p, a.rx, &w, &a.ei), 0);
    rp_iov pl;
    cr_assert_eq(rp_noise_hs_read(res, out + 2, w.len - 2, &pl, NULL), 0);
    ssize_t n = rp_noise_hs_write(res, payload, len, a.rx + 2, RX_CAP - 2, NULL);
    cr_assert_gt(n, 0);
    a.rx[0] = (uint8_t)(n >> 8);
    a.rx[1] = (uint8_t)n;
    a.len = 2 + (size_t)n;
    w = rp_wbuf_make(out, sizeof(out));
    int r = rp_noise_handshake(a.s, &p, a.rx + a.len, &w, ei);
    end_close(&a);
    return r;
}

static int initiator_against_payload(const ringp2p_privkey *ki, const uint8_t *payload, size_t len,
                                     rp_noise_hs *res, ringp2p_errinfo *ei)
{
    return initiator_against_payload_vc(ki, payload, len, res, NULL, ei);
}

/*
 * The verified-signature cache spares the second verification of the same
 * (key, static key, signature) and nothing else: with the good signature
 * cached, a signature over other bytes or by another key still fails.
 */
Test(noise, vcache_spares_only_the_same_signature)
{
    ringp2p_privkey *ki = gen(RINGP2P_KEY_ED25519), *kr = gen(RINGP2P_KEY_ED25519),
                    *other = gen(RINGP2P_KEY_ED25519);
    rp_sigcache *vc = rp_sigcache_new();
    cr_assert_not_null(vc);
    const uint8_t s_priv[32] = { 9, 8, 7 }; /* one static key for every case */
    uint8_t key[512], okey[512], sig[RINGP2P_SIGNATURE_MAX], payload[2048];
    ssize_t kl = ringp2p_pubkey_to_protobuf(ringp2p_privkey_public(kr), key, sizeof(key));
    ssize_t okl = ringp2p_pubkey_to_protobuf(ringp2p_privkey_public(other), okey, sizeof(okey));
    static const struct {
        int tamper; /* 0 good, 1 signs other bytes, 2 signed by kr with other's key, 3 good */
        int want;
        uint64_t hits, inserted;
    } cases[] = {
        { 0, RP_NOISE_DONE, 0, 1 },      { 0, RP_NOISE_DONE, 1, 1 },
        { 1, RINGP2P_ESIGNATURE, 1, 1 }, { 2, RINGP2P_ESIGNATURE, 1, 1 },
        { 0, RP_NOISE_DONE, 2, 1 },
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        rp_noise_hs res;
        rp_noise_hs_init(&res, false, NULL, 0, s_priv, NULL);
        uint8_t tbs[RP_NOISE_SIG_PREFIX_LEN + 32];
        memcpy(tbs, RP_NOISE_SIG_PREFIX, RP_NOISE_SIG_PREFIX_LEN);
        memcpy(tbs + RP_NOISE_SIG_PREFIX_LEN, res.s_pub, 32);
        if (cases[c].tamper == 1) tbs[RP_NOISE_SIG_PREFIX_LEN] ^= 1;
        ssize_t sl = ringp2p_privkey_sign(kr, tbs, sizeof(tbs), sig, sizeof(sig));
        const uint8_t *k = cases[c].tamper == 2 ? okey : key;
        size_t klen = (size_t)(cases[c].tamper == 2 ? okl : kl);
        ssize_t pl =
            rp_noise_payload_encode(k, klen, sig, (size_t)sl, NULL, 0, payload, sizeof(payload));
        ringp2p_errinfo ei = { 0 };
        int r = initiator_against_payload_vc(ki, payload, (size_t)pl, &res, vc, &ei);
        cr_assert_eq(r, cases[c].want, "case %zu: got %d (%s)", c, r, ei.msg);
        uint64_t hits, ins;
        rp_sigcache_stats(vc, &hits, &ins);
        cr_assert_eq(hits, cases[c].hits, "case %zu: %llu hits", c, (unsigned long long)hits);
        cr_assert_eq(ins, cases[c].inserted, "case %zu: %llu inserted", c, (unsigned long long)ins);
        rp_noise_hs_clear(&res);
    }
    rp_sigcache_free(vc);
    rp_sigcache_free(NULL);
    ringp2p_privkey_free(ki);
    ringp2p_privkey_free(kr);
    ringp2p_privkey_free(other);
}

Test(noise, bad_identity_payloads_are_refused)
{
    ringp2p_privkey *ki = gen(RINGP2P_KEY_ED25519), *kr = gen(RINGP2P_KEY_ECDSA),
                    *other = gen(RINGP2P_KEY_ED25519);
    uint8_t key[512], okey[512], sig[RINGP2P_SIGNATURE_MAX], payload[2048];
    ssize_t kl = ringp2p_pubkey_to_protobuf(ringp2p_privkey_public(kr), key, sizeof(key));
    ssize_t okl = ringp2p_pubkey_to_protobuf(ringp2p_privkey_public(other), okey, sizeof(okey));
    for (int c = 0; c < 6; c++) {
        rp_noise_hs res;
        rp_noise_hs_init(&res, false, NULL, 0, NULL, NULL);
        uint8_t tbs[RP_NOISE_SIG_PREFIX_LEN + 32];
        memcpy(tbs, RP_NOISE_SIG_PREFIX, RP_NOISE_SIG_PREFIX_LEN);
        memcpy(tbs + RP_NOISE_SIG_PREFIX_LEN, res.s_pub, 32);
        if (c == 1) tbs[0] ^= 1; /* signs something else */
        ssize_t sl = ringp2p_privkey_sign(kr, tbs, sizeof(tbs), sig, sizeof(sig));
        const uint8_t *k = key;
        size_t klen = (size_t)kl;
        if (c == 2) k = okey, klen = (size_t)okl; /* signature by kr, key of `other` */
        if (c == 3) { /* a well-formed PublicKey whose Ed25519 key is 31 bytes */
            static const uint8_t bad[35] = { 0x08, 0x01, 0x12, 0x1f };
            k = bad, klen = sizeof(bad);
        }
        ssize_t pl =
            rp_noise_payload_encode(k, klen, sig, (size_t)sl, NULL, 0, payload, sizeof(payload));
        size_t plen = (size_t)pl;
        if (c == 4) plen = 2 + (size_t)payload[1]; /* identity_key only: no identity_sig */
        if (c == 5) {
            payload[0] = 0x0b; /* a group tag: not protobuf we read */
        }
        ringp2p_errinfo ei = { 0 };
        int r = initiator_against_payload(ki, payload, plen, &res, &ei);
        static const int want[] = { RP_NOISE_DONE, RINGP2P_ESIGNATURE, RINGP2P_ESIGNATURE,
                                    RINGP2P_EKEY,  RINGP2P_EPROTOBUF,  RINGP2P_EPROTOBUF };
        if (c == 0) {
            cr_assert_eq(r, RP_NOISE_DONE, "the well-formed case completes (%d %s)", r, ei.msg);
        } else {
            cr_assert_eq(r, want[c], "case %d: got %d (%s)", c, r, ei.msg);
        }
        rp_noise_hs_clear(&res);
    }
    ringp2p_privkey_free(ki);
    ringp2p_privkey_free(kr);
    ringp2p_privkey_free(other);
}

/* ---- transport: batches, boundaries, nonces ------------------------------------------------- */

Test(noise, message_boundaries)
{
    ringp2p_privkey *k1 = gen(RINGP2P_KEY_ED25519), *k2 = gen(RINGP2P_KEY_ED25519);
    struct end a, b;
    ready_pair(&a, &b, k1, k2);
    static const size_t sizes[] = { 0,
                                    1,
                                    RP_NOISE_PLAINTEXT_MAX - 1,
                                    RP_NOISE_PLAINTEXT_MAX,
                                    RP_NOISE_PLAINTEXT_MAX + 1,
                                    2 * RP_NOISE_PLAINTEXT_MAX,
                                    2 * RP_NOISE_PLAINTEXT_MAX + 1 };
    static uint8_t data[3 * RP_NOISE_PLAINTEXT_MAX];
    for (size_t i = 0; i < sizeof(data); i++) data[i] = (uint8_t)(i * 13 + (i >> 9));
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t len = sizes[i];
        size_t msgs = len == 0 ? 1 : (len + RP_NOISE_PLAINTEXT_MAX - 1) / RP_NOISE_PLAINTEXT_MAX;
        cr_assert_eq(rp_noise_sealed_len(len), len + msgs * 18);
        b.len = b.off = 0;
        rp_iov iov = rp_iov_make(data, len);
        cr_assert_eq(rp_noise_seal(a.s, &iov, 1, b.rx, rp_noise_sealed_len(len) - 1, &a.ei),
                     RINGP2P_ENOBUF);
        ssize_t n = rp_noise_seal(a.s, &iov, 1, b.rx, RX_CAP, &a.ei);
        cr_assert_eq(n, (ssize_t)rp_noise_sealed_len(len));
        b.len = (size_t)n;
        /* Every frame is full but the last, and no frame exceeds 65535. */
        size_t off = 0, left = len;
        for (size_t m = 0; m < msgs; m++) {
            size_t fl = (size_t)b.rx[off] << 8 | b.rx[off + 1];
            size_t want = (left < RP_NOISE_PLAINTEXT_MAX ? left : RP_NOISE_PLAINTEXT_MAX) + 16;
            cr_assert_eq(fl, want, "size %zu frame %zu", len, m);
            cr_assert_leq(fl, RP_NOISE_MSG_MAX);
            off += 2 + fl;
            left -= want - 16;
        }
        cr_assert_eq(off, (size_t)n);
        /* Open one at a time: each view is in place, right after its 2-byte header. */
        uint8_t *p = b.rx;
        size_t got = 0;
        for (size_t m = 0; m < msgs; m++) {
            rp_iov v;
            uint8_t *frame_start = p;
            cr_assert_eq(rp_noise_open(b.s, &p, b.rx + b.len, &v, &b.ei), 1, "%s", b.ei.msg);
            cr_assert_eq(v.base, frame_start + 2);
            cr_assert_arr_eq(v.base, data + got, v.len);
            got += v.len;
        }
        cr_assert_eq(got, len);
        cr_assert_eq(p, b.rx + b.len);
        rp_iov v;
        cr_assert_eq(rp_noise_open(b.s, &p, b.rx + b.len, &v, &b.ei), 0);
    }
    /* The empty message is consumed but not reported by the batch opener. */
    b.len = b.off = 0;
    send_bytes(&a, &b, data, 0);
    cr_assert_eq(b.len, 18);
    rp_iov views[2];
    uint8_t *p = b.rx;
    cr_assert_eq(rp_noise_open_batch(b.s, &p, b.rx + b.len, views, 2, &b.ei), 0);
    cr_assert_eq(p, b.rx + 18);
    /* plaintext_fit is the largest input whose sealed form fits. */
    for (size_t cap = 0; cap < 3 * RP_NOISE_FRAME_MAX; cap += cap < 200 ? 1 : 4093) {
        size_t fit = rp_noise_plaintext_fit(cap);
        if (cap >= 18) cr_assert_leq(rp_noise_sealed_len(fit), cap, "cap %zu", cap);
        cr_assert_gt(rp_noise_sealed_len(fit + 1), cap, "cap %zu fit %zu", cap, fit);
    }
    end_close(&a);
    end_close(&b);
    ringp2p_privkey_free(k1);
    ringp2p_privkey_free(k2);
}

/* Several MB in batches of uneven iovs, delivered in odd-sized reads and opened in place. */
Test(noise, large_transfer_batches_in_place, .timeout = 120)
{
    ringp2p_privkey *k1 = gen(RINGP2P_KEY_ED25519), *k2 = gen(RINGP2P_KEY_ED25519);
    struct end a, b;
    ready_pair(&a, &b, k1, k2);
    const size_t total = 6u << 20;
    uint8_t *data = malloc(total), *wire = malloc(rp_noise_sealed_len(total) + 64 * 18),
            *got = malloc(total);
    cr_assert(data && wire && got);
    uint64_t x = 88172645463325252u;
    for (size_t i = 0; i < total; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        data[i] = (uint8_t)x;
    }
    /* Seal: batches of 1..20 iovs of 0..300000 bytes each. */
    size_t pos = 0, wlen = 0, batches = 0;
    while (pos < total) {
        rp_iov iov[20];
        size_t n = 1 + (size_t)(x % 20), k = 0;
        for (; k < n && pos < total; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t len = (size_t)(x % 300000);
            if (len > total - pos) len = total - pos;
            iov[k] = rp_iov_make(data + pos, len);
            pos += len;
        }
        ssize_t s = rp_noise_seal(a.s, iov, k, wire + wlen,
                                  rp_noise_sealed_len(total) + 64 * 18 - wlen, &a.ei);
        cr_assert_gt(s, 0, "%s", a.ei.msg);
        wlen += (size_t)s;
        batches++;
    }
    /* Receive: copy odd-sized chunks into a small buffer, open in place, compact the rest. */
    enum { BUF = 3 * RP_NOISE_FRAME_MAX };
    uint8_t *rbuf = malloc(BUF);
    size_t have = 0, fed = 0, out = 0;
    while (fed < wlen || have > 0) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t chunk = 1 + (size_t)(x % 100000);
        if (chunk > BUF - have) chunk = BUF - have;
        if (chunk > wlen - fed) chunk = wlen - fed;
        memcpy(rbuf + have, wire + fed, chunk);
        have += chunk;
        fed += chunk;
        uint8_t *p = rbuf;
        rp_iov views[4];
        ssize_t n;
        do {
            n = rp_noise_open_batch(b.s, &p, rbuf + have, views, 4, &b.ei);
            cr_assert_geq(n, 0, "%s", b.ei.msg);
            for (ssize_t i = 0; i < n; i++) {
                cr_assert_geq((uint8_t *)views[i].base, rbuf);
                cr_assert_leq((uint8_t *)views[i].base + views[i].len, rbuf + have);
                memcpy(got + out, views[i].base, views[i].len);
                out += views[i].len;
            }
        } while (n == 4);
        size_t used = (size_t)(p - rbuf);
        memmove(rbuf, p, have - used);
        have -= used;
        if (fed == wlen && used == 0) break;
    }
    cr_assert_eq(have, 0);
    cr_assert_eq(out, total);
    cr_assert(memcmp(got, data, total) == 0, "byte-exact after %zu batches", batches);
    free(rbuf);
    free(data);
    free(wire);
    free(got);
    end_close(&a);
    end_close(&b);
    ringp2p_privkey_free(k1);
    ringp2p_privkey_free(k2);
}

Test(noise, nonce_exhaustion_ends_the_session)
{
    ringp2p_privkey *k1 = gen(RINGP2P_KEY_ED25519), *k2 = gen(RINGP2P_KEY_ED25519);
    struct end a, b;
    ready_pair(&a, &b, k1, k2);
    rp_noise_set_nonces(a.s, RP_NOISE_NONCE_MAX - 1, 0);
    rp_noise_set_nonces(b.s, 0, RP_NOISE_NONCE_MAX - 1);
    const uint8_t d[] = "x";
    static uint8_t two[RP_NOISE_PLAINTEXT_MAX + 1];
    rp_iov big = rp_iov_make(two, sizeof(two)), small = rp_iov_make(d, 1);
    /* Two messages fit in the last two nonces, but not three. */
    send_bytes(&a, &b, d, 1);
    uint8_t got[8];
    cr_assert_eq(recv_bytes(&b, got), 1);
    ssize_t n = rp_noise_seal(a.s, &big, 1, b.rx + b.len, RX_CAP - b.len, &a.ei);
    cr_assert_eq(n, RINGP2P_ELIMIT, "a batch needing nonce 2^64-1 is refused whole");
    cr_assert(strstr(a.ei.msg, "exhausted") != NULL, "%s", a.ei.msg);
    cr_assert_eq(rp_noise_seal(a.s, &small, 1, b.rx + b.len, RX_CAP - b.len, &a.ei), RINGP2P_ELIMIT,
                 "and the session stays dead");
    end_close(&a);
    end_close(&b);

    ready_pair(&a, &b, k1, k2);
    rp_noise_set_nonces(a.s, RP_NOISE_NONCE_MAX, 0);
    rp_noise_set_nonces(b.s, 0, RP_NOISE_NONCE_MAX);
    send_bytes(&a, &b, d, 1);
    cr_assert_eq(recv_bytes(&b, got), 1, "nonce 2^64-2 is the last one used");
    memcpy(b.rx + b.len, b.rx + b.off - 19, 19);
    b.len += 19;
    cr_assert_eq(recv_bytes(&b, got), RINGP2P_ELIMIT, "%s", b.ei.msg);
    end_close(&a);
    end_close(&b);
    ringp2p_privkey_free(k1);
    ringp2p_privkey_free(k2);
}

Test(noise, config_errors)
{
    ringp2p_privkey *k = gen(RINGP2P_KEY_ED25519);
    rp_noise *s = NULL;
    ringp2p_errinfo ei;
    rp_noise_config c = { 0 };
    cr_assert_eq(rp_noise_new(&c, &s, &ei), RINGP2P_EINVAL);
    c = cfg_of(k, true);
    const char *muxers[] = { "/yamux/1.0.0", NULL };
    c.muxers = muxers;
    c.n_muxers = 2;
    cr_assert_eq(rp_noise_new(&c, &s, &ei), RINGP2P_EINVAL);
    c.n_muxers = RP_NOISE_MUXERS_MAX + 1;
    cr_assert_eq(rp_noise_new(&c, &s, &ei), RINGP2P_EINVAL);
    cr_assert_null(s);
    rp_noise_free(NULL);
    ringp2p_privkey_free(k);
}

/* With fixed Noise keys and a deterministic signature scheme the whole transcript repeats. */
Test(noise, fixed_keys_make_a_deterministic_transcript)
{
    ringp2p_privkey *k1 = gen(RINGP2P_KEY_ED25519), *k2 = gen(RINGP2P_KEY_ED25519);
    uint8_t s1[32] = { 1 }, e1[32] = { 2 }, s2[32] = { 3 }, e2[32] = { 4 };
    uint8_t t[2][1024];
    size_t tl[2];
    for (int run = 0; run < 2; run++) {
        rp_noise_config ci = cfg_of(k1, true), cr = cfg_of(k2, false);
        ci.test_static_priv = s1;
        ci.test_ephemeral_priv = e1;
        cr.test_static_priv = s2;
        cr.test_ephemeral_priv = e2;
        struct end a, b;
        end_open(&a, &ci);
        end_open(&b, &cr);
        handshake(&a, &b);
        cr_assert_eq(a.last, RP_NOISE_DONE);
        cr_assert_eq(b.last, RP_NOISE_DONE);
        memcpy(t[run], b.rx, b.len);
        memcpy(t[run] + b.len, a.rx, a.len);
        tl[run] = a.len + b.len;
        end_close(&a);
        end_close(&b);
    }
    cr_assert_eq(tl[0], tl[1]);
    cr_assert_arr_eq(t[0], t[1], tl[0]);
    /* Message 1 is exactly the fixed ephemeral public key. */
    uint8_t e1_pub[32];
    rp_x25519_public(e1_pub, e1);
    cr_assert_arr_eq(t[0] + 2, e1_pub, 32);
    ringp2p_privkey_free(k1);
    ringp2p_privkey_free(k2);
}

/*
 * A node's shared static key (noise/README.md allows one for all sessions):
 * every session that takes it presents the same static key, each handshake
 * still authenticates (signature made once, verified by each peer) and the
 * transport keys differ per session (fresh ephemerals). Without one, each
 * session makes its own.
 */
Test(noise, shared_static_key_across_sessions)
{
    ringp2p_privkey *kr = gen(RINGP2P_KEY_ED25519), *ki = gen(RINGP2P_KEY_SECP256K1);
    ringp2p_errinfo ei;
    rp_noise_static *st = NULL;
    cr_assert_eq(rp_noise_static_new(NULL, &st, &ei), RINGP2P_EINVAL);
    cr_assert_eq(rp_noise_static_new(kr, &st, &ei), 0, "%s", ei.msg);
    ringp2p_peer_id want_r;
    ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(kr), &want_r);
    uint8_t seen[3][RP_NOISE_DHLEN], sent[3][64];
    for (int run = 0; run < 3; run++) {
        rp_noise_config ci = cfg_of(ki, true), cr = cfg_of(NULL, false);
        ci.expected_peer = &want_r;
        if (run < 2) {
            cr.static_key = st; /* runs 0 and 1 share it; the identity is not needed */
        } else {
            cr.identity = kr; /* run 2: a key of its own */
        }
        struct end a, b;
        end_open(&a, &ci);
        end_open(&b, &cr);
        handshake(&a, &b);
        cr_assert_eq(a.last, RP_NOISE_DONE, "initiator: %s", a.ei.msg);
        cr_assert_eq(b.last, RP_NOISE_DONE, "responder: %s", b.ei.msg);
        cr_assert(ringp2p_peer_id_equal(rp_noise_remote_peer(a.s), &want_r));
        memcpy(seen[run], rp_noise_remote_static(a.s), RP_NOISE_DHLEN);
        check_pair_talks(&a, &b);
        /* the first transport message of the same plaintext differs: fresh keys */
        uint8_t msg[16] = { 0 };
        size_t before = b.len;
        send_bytes(&a, &b, msg, sizeof(msg));
        memcpy(sent[run], b.rx + before, rp_noise_sealed_len(sizeof(msg)));
        end_close(&a);
        end_close(&b);
    }
    cr_assert_arr_eq(seen[0], rp_noise_static_public(st), RP_NOISE_DHLEN);
    cr_assert_arr_eq(seen[1], rp_noise_static_public(st), RP_NOISE_DHLEN);
    cr_assert_arr_neq(seen[2], seen[0], RP_NOISE_DHLEN);
    cr_assert_arr_neq(sent[0], sent[1], rp_noise_sealed_len(16));
    rp_noise_static_free(st);
    rp_noise_static_free(NULL);
    ringp2p_privkey_free(kr);
    ringp2p_privkey_free(ki);
}
