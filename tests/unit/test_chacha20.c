/*
 * ChaCha20 (crypto/chacha20.c) and our ChaCha20-Poly1305 backend: the RFC 8439
 * vectors, then differential runs against BoringSSL (CRYPTO_chacha_20,
 * EVP_aead_chacha20_poly1305) over every length up to 2100 and random longer
 * ones, misaligned, in place and not, split into random pieces. Every test
 * runs on both paths: AVX-512 (when the CPU has it) and the portable one, for
 * ChaCha20 and Poly1305 alike.
 */
#include <criterion/criterion.h>

#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/aead.h>
#include <openssl/chacha.h>

#include "base/error.h"
#include "crypto/aead.h"
#include "crypto/chacha20.h"
#include "crypto/poly1305.h"

/* RFC 8439 §2.3.2 and A.1: one keystream block each. */
static const struct block_vector {
    const char *name, *key, *nonce;
    uint32_t counter;
    const char *keystream;
} block_vectors[] = {
    { "2.3.2", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
      "000000090000004a00000000", 1,
      "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
      "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e" },
    { "A.1 #1", "0000000000000000000000000000000000000000000000000000000000000000",
      "000000000000000000000000", 0,
      "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
      "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586" },
    { "A.1 #2", "0000000000000000000000000000000000000000000000000000000000000000",
      "000000000000000000000000", 1,
      "9f07e7be5551387a98ba977c732d080dcb0f29a048e3656912c6533e32ee7aed"
      "29b721769ce64e43d57133b074d839d531ed1f28510afb45ace10a1f4b794d6f" },
    { "A.1 #3", "0000000000000000000000000000000000000000000000000000000000000001",
      "000000000000000000000000", 1,
      "3aeb5224ecf849929b9d828db1ced4dd832025e8018b8160b82284f3c949aa5a"
      "8eca00bbb4a73bdad192b5c42f73f2fd4e273644c8b36125a64addeb006c13a0" },
    { "A.1 #4", "00ff000000000000000000000000000000000000000000000000000000000000",
      "000000000000000000000000", 2,
      "72d54dfbf12ec44b362692df94137f328fea8da73990265ec1bbbea1ae9af0ca"
      "13b25aa26cb4a648cb9b9d1be65b2c0924a66c54d545ec1b7374f4872e99f096" },
    { "A.1 #5", "0000000000000000000000000000000000000000000000000000000000000000",
      "000000000000000000000002", 0,
      "c2c64d378cd536374ae204b9ef933fcd1a8b2288b3dfa49672ab765b54ee27c7"
      "8a970e0e955c14f3a88e741b97c286f75f8fc299e8148362fa198a39531bed6d" },
};

/* RFC 8439 §2.4.2 and A.2: encryption. */
static const struct cipher_vector {
    const char *name, *key, *nonce;
    uint32_t counter;
    const char *pt, *ct;
} cipher_vectors[] = {
    { "2.4.2", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
      "000000000000004a00000000", 1,
      "4c616469657320616e642047656e746c656d656e206f662074686520636c6173"
      "73206f66202739393a204966204920636f756c64206f6666657220796f75206f"
      "6e6c79206f6e652074697020666f7220746865206675747572652c2073756e73"
      "637265656e20776f756c642062652069742e",
      "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b"
      "f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8"
      "07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736"
      "5af90bbf74a35be6b40b8eedf2785e42874d" },
    { "A.2 #1", "0000000000000000000000000000000000000000000000000000000000000000",
      "000000000000000000000000", 0,
      "0000000000000000000000000000000000000000000000000000000000000000"
      "0000000000000000000000000000000000000000000000000000000000000000",
      "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
      "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586" },
    { "A.2 #2", "0000000000000000000000000000000000000000000000000000000000000001",
      "000000000000000000000002", 1,
      "416e79207375626d697373696f6e20746f20746865204945544620696e74656e"
      "6465642062792074686520436f6e7472696275746f7220666f72207075626c69"
      "636174696f6e20617320616c6c206f722070617274206f6620616e2049455446"
      "20496e7465726e65742d4472616674206f722052464320616e6420616e792073"
      "746174656d656e74206d6164652077697468696e2074686520636f6e74657874"
      "206f6620616e204945544620616374697669747920697320636f6e7369646572"
      "656420616e20224945544620436f6e747269627574696f6e222e205375636820"
      "73746174656d656e747320696e636c756465206f72616c2073746174656d656e"
      "747320696e20494554462073657373696f6e732c2061732077656c6c20617320"
      "7772697474656e20616e6420656c656374726f6e696320636f6d6d756e696361"
      "74696f6e73206d61646520617420616e792074696d65206f7220706c6163652c"
      "207768696368206172652061646472657373656420746f",
      "a3fbf07df3fa2fde4f376ca23e82737041605d9f4f4f57bd8cff2c1d4b7955ec"
      "2a97948bd3722915c8f3d337f7d370050e9e96d647b7c39f56e031ca5eb6250d"
      "4042e02785ececfa4b4bb5e8ead0440e20b6e8db09d881a7c6132f420e527950"
      "42bdfa7773d8a9051447b3291ce1411c680465552aa6c405b7764d5e87bea85a"
      "d00f8449ed8f72d0d662ab052691ca66424bc86d2df80ea41f43abf937d3259d"
      "c4b2d0dfb48a6c9139ddd7f76966e928e635553ba76c5c879d7b35d49eb2e62b"
      "0871cdac638939e25e8a1e0ef9d5280fa8ca328b351c3c765989cbcf3daa8b6c"
      "cc3aaf9f3979c92b3720fc88dc95ed84a1be059c6499b9fda236e7e818b04b0b"
      "c39c1e876b193bfe5569753f88128cc08aaa9b63d1a16f80ef2554d7189c411f"
      "5869ca52c5b83fa36ff216b9c1d30062bebcfd2dc5bce0911934fda79a86f6e6"
      "98ced759c3ff9b6477338f3da4f9cd8514ea9982ccafb341b2384dd902f3d1ab"
      "7ac61dd29c6f21ba5b862f3730e37cfdc4fd806c22f221" },
    { "A.2 #3", "1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0",
      "000000000000000000000002", 42,
      "2754776173206272696c6c69672c20616e642074686520736c6974687920746f"
      "7665730a446964206779726520616e642067696d626c6520696e207468652077"
      "6162653a0a416c6c206d696d737920776572652074686520626f726f676f7665"
      "732c0a416e6420746865206d6f6d65207261746873206f757467726162652e",
      "62e6347f95ed87a45ffae7426f27a1df5fb69110044c0d73118effa95b01e5cf"
      "166d3df2d721caf9b21e5fb14c616871fd84c54f9d65b283196c7fe4f60553eb"
      "f39c6402c42234e32a356b3e764312a61a5532055716ead6962568f87d3f3f77"
      "04c6a8d1bcd1bf4d50d6154b6da731b187b58dfd728afa36757a797ac188d1" },
};

/* RFC 8439 §2.8.2 (seal) and A.5 (open). */
static const struct aead_vector {
    const char *name, *key, *nonce, *ad, *pt, *ct, *tag;
} aead_vectors[] = {
    { "2.8.2", "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
      "070000004041424344454647", "50515253c0c1c2c3c4c5c6c7",
      "4c616469657320616e642047656e746c656d656e206f662074686520636c6173"
      "73206f66202739393a204966204920636f756c64206f6666657220796f75206f"
      "6e6c79206f6e652074697020666f7220746865206675747572652c2073756e73"
      "637265656e20776f756c642062652069742e",
      "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
      "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
      "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
      "3ff4def08e4b7a9de576d26586cec64b6116",
      "1ae10b594f09e26a7e902ecbd0600691" },
    { "A.5", "1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0",
      "000000000102030405060708", "f33388860000000000004e91",
      "496e7465726e65742d4472616674732061726520647261667420646f63756d65"
      "6e74732076616c696420666f722061206d6178696d756d206f6620736978206d"
      "6f6e74687320616e64206d617920626520757064617465642c207265706c6163"
      "65642c206f72206f62736f6c65746564206279206f7468657220646f63756d65"
      "6e747320617420616e792074696d652e20497420697320696e617070726f7072"
      "6961746520746f2075736520496e7465726e65742d4472616674732061732072"
      "65666572656e6365206d6174657269616c206f7220746f206369746520746865"
      "6d206f74686572207468616e206173202fe2809c776f726b20696e2070726f67"
      "726573732e2fe2809d",
      "64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb2"
      "4c6cfc18755d43eea09ee94e382d26b0bdb7b73c321b0100d4f03b7f355894cf"
      "332f830e710b97ce98c8a84abd0b948114ad176e008d33bd60f982b1ff37c855"
      "9797a06ef4f0ef61c186324e2b3506383606907b6a7c02b0f9f6157b53c867e4"
      "b9166c767b804d46a59b5216cde7a4e99040c5a40433225ee282a1b0a06c523e"
      "af4534d7f83fa1155b0047718cbc546a0d072b04b3564eea1b422273f548271a"
      "0bb2316053fa76991955ebd63159434ecebb4e466dae5a1073a6727627097a10"
      "49e617d91d361094fa68f0ff77987130305beaba2eda04df997b714d6c6f2c29"
      "a6ad5cb4022b02709b",
      "eead9d67890cbb22392336fea1851f38" },
};

/* Deterministic xorshift64*, so a failure names a reproducible case. */
static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint32_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (uint32_t)((rng * 0x2545f4914f6cdd1du) >> 32);
}

static void fill(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rnd();
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    cr_assert_not_null(p);
    return p;
}

/* The portable pass runs ChaCha20 and Poly1305 both as on a CPU without AVX-512. */
static void set_portable(bool on)
{
    rp_chacha20_force_portable(on);
    rp_poly1305_force_portable(on);
}

/* The paths a test runs: portable always, AVX-512 when the CPU has it. */
static size_t paths(bool out[2])
{
    size_t n = 0;
    if (rp_chacha20_simd_available()) out[n++] = false;
    out[n++] = true;
    return n;
}

static const char *path_name(bool portable)
{
    return portable ? "portable" : "avx512";
}

Test(chacha20, rfc8439_block_vectors)
{
    bool pv[2];
    for (size_t p = 0, np = paths(pv); p < np; p++) {
        set_portable(pv[p]);
        for (size_t i = 0; i < sizeof(block_vectors) / sizeof(block_vectors[0]); i++) {
            const struct block_vector *v = &block_vectors[i];
            uint8_t key[32], nonce[12], want[64], zero[64] = { 0 }, got[64];
            cr_assert_eq(unhex(v->key, key, sizeof(key)), 32);
            cr_assert_eq(unhex(v->nonce, nonce, sizeof(nonce)), 12);
            cr_assert_eq(unhex(v->keystream, want, sizeof(want)), 64);
            rp_chacha20_xor(got, zero, 64, key, nonce, v->counter);
            cr_assert_arr_eq(got, want, 64, "%s (%s)", v->name, path_name(pv[p]));
        }
    }
    set_portable(false);
}

Test(chacha20, rfc8439_encryption_vectors)
{
    bool pv[2];
    for (size_t p = 0, np = paths(pv); p < np; p++) {
        set_portable(pv[p]);
        for (size_t i = 0; i < sizeof(cipher_vectors) / sizeof(cipher_vectors[0]); i++) {
            const struct cipher_vector *v = &cipher_vectors[i];
            uint8_t key[32], nonce[12], pt[512], ct[512], got[512];
            cr_assert_eq(unhex(v->key, key, sizeof(key)), 32);
            cr_assert_eq(unhex(v->nonce, nonce, sizeof(nonce)), 12);
            size_t len = unhex(v->pt, pt, sizeof(pt));
            cr_assert_eq(unhex(v->ct, ct, sizeof(ct)), len);
            const char *pn = path_name(pv[p]);
            rp_chacha20_xor(got, pt, len, key, nonce, v->counter);
            cr_assert_arr_eq(got, ct, len, "%s (%s): encrypt", v->name, pn);
            rp_chacha20_xor(got, got, len, key, nonce, v->counter);
            cr_assert_arr_eq(got, pt, len, "%s (%s): decrypt in place", v->name, pn);
            /* Byte by byte through a stream. */
            rp_chacha20 c;
            rp_chacha20_init(&c, key, nonce, v->counter);
            for (size_t k = 0; k < len; k++) rp_chacha20_stream(&c, got + k, pt + k, 1);
            rp_chacha20_wipe(&c);
            cr_assert_arr_eq(got, ct, len, "%s (%s): streamed a byte at a time", v->name, pn);
        }
    }
    set_portable(false);
}

typedef struct aead_case {
    uint8_t key[32], nonce[12], ad[32], pt[512], ct[512 + 16];
    size_t ad_len, len;
} aead_case;

static void aead_decode(const struct aead_vector *v, aead_case *d)
{
    cr_assert_eq(unhex(v->key, d->key, sizeof(d->key)), 32);
    cr_assert_eq(unhex(v->nonce, d->nonce, sizeof(d->nonce)), 12);
    d->ad_len = unhex(v->ad, d->ad, sizeof(d->ad));
    d->len = unhex(v->pt, d->pt, sizeof(d->pt));
    cr_assert_eq(unhex(v->ct, d->ct, sizeof(d->ct)), d->len);
    cr_assert_eq(unhex(v->tag, d->ct + d->len, 16), 16);
}

Test(chacha20, rfc8439_aead_vectors)
{
    static const rp_aead_alg *const algs[] = { &rp_aead_chacha20_poly1305_rp,
                                               &rp_aead_chacha20_poly1305_evp,
                                               &rp_aead_chacha20_poly1305 };
    bool pv[2];
    for (size_t p = 0, np = paths(pv); p < np; p++) {
        set_portable(pv[p]);
        for (size_t a = 0; a < 3; a++) {
            for (size_t i = 0; i < sizeof(aead_vectors) / sizeof(aead_vectors[0]); i++) {
                const struct aead_vector *v = &aead_vectors[i];
                aead_case d;
                aead_decode(v, &d);
                rp_aead ctx;
                cr_assert_eq(rp_aead_init(&ctx, algs[a], d.key), 0);
                uint8_t buf[512 + 16];
                cr_assert_eq(rp_aead_seal(&ctx, buf, d.nonce, d.pt, d.len, d.ad, d.ad_len), 0);
                cr_assert_arr_eq(buf, d.ct, d.len + 16, "%s, alg %zu (%s): seal", v->name, a,
                                 path_name(pv[p]));
                cr_assert_eq(rp_aead_open(&ctx, buf, d.len + 16, d.nonce, d.ad, d.ad_len),
                             (ssize_t)d.len, "%s, alg %zu: open", v->name, a);
                cr_assert_arr_eq(buf, d.pt, d.len, "%s, alg %zu: opened", v->name, a);
                rp_aead_clear(&ctx);
            }
        }
    }
    set_portable(false);
}

/* On an AVX-512 + IFMA CPU the generic ChaCha20-Poly1305 runs on ours, else on BoringSSL's. */
Test(chacha20, generic_aead_picks_our_backend_with_avx512)
{
    uint8_t key[32] = { 1 };
    rp_aead ctx;
    cr_assert_eq(rp_aead_init(&ctx, &rp_aead_chacha20_poly1305, key), 0);
    cr_assert_eq(ctx.alg, &rp_aead_chacha20_poly1305);
    const char *env = getenv("RINGP2P_CHACHA");
    if (env == NULL)
        cr_assert_eq(ctx.impl, rp_chacha20_simd_available() && rp_poly1305_simd_available()
                                   ? &rp_aead_chacha20_poly1305_rp
                                   : &rp_aead_chacha20_poly1305_evp);
    rp_aead_clear(&ctx);
    cr_assert_null(ctx.alg);
}

/* Offsets that misalign in and out against each other and against 16/64. */
static const size_t offs[][2] = { { 0, 0 }, { 1, 3 }, { 7, 0 }, { 0, 13 }, { 63, 5 }, { 33, 33 } };

static void check_xor(const uint8_t *src, size_t len, const uint8_t key[32],
                      const uint8_t nonce[12], uint32_t ctr, size_t oi, const char *pn)
{
    uint8_t *want = xmalloc(len + 64), *in = xmalloc(len + 64), *out = xmalloc(len + 64 + 1);
    CRYPTO_chacha_20(want, src, len, key, nonce, ctr);
    size_t io = offs[oi][0], oo = offs[oi][1];
    memcpy(in + io, src, len);
    out[oo + len] = 0xa5;
    rp_chacha20_xor(out + oo, in + io, len, key, nonce, ctr);
    cr_assert_arr_eq(out + oo, want, len, "len %zu ctr %u offsets %zu/%zu (%s)", len, ctr, io, oo,
                     pn);
    cr_assert_eq(out[oo + len], 0xa5, "len %zu: wrote past the end", len);
    /* In place. */
    rp_chacha20_xor(in + io, in + io, len, key, nonce, ctr);
    cr_assert_arr_eq(in + io, want, len, "len %zu ctr %u in place (%s)", len, ctr, pn);
    free(want);
    free(in);
    free(out);
}

Test(chacha20, matches_boringssl_every_length_to_2100)
{
    uint8_t key[32], nonce[12];
    fill(key, 32);
    fill(nonce, 12);
    uint8_t *src = xmalloc(2100);
    fill(src, 2100);
    static const uint32_t ctrs[] = { 0, 1, 7, 0xfffffff0u, 0xffffffffu };
    bool pv[2];
    for (size_t p = 0, np = paths(pv); p < np; p++) {
        set_portable(pv[p]);
        for (size_t len = 0; len <= 2100; len++)
            check_xor(src, len, key, nonce, ctrs[len % 5], len % 6, path_name(pv[p]));
    }
    set_portable(false);
    free(src);
}

Test(chacha20, matches_boringssl_random_long_lengths)
{
    uint8_t key[32], nonce[12];
    uint8_t *src = xmalloc(70000);
    fill(src, 70000);
    bool pv[2];
    for (size_t p = 0, np = paths(pv); p < np; p++) {
        set_portable(pv[p]);
        for (int t = 0; t < 40; t++) {
            fill(key, 32);
            fill(nonce, 12);
            size_t len = 2100 + rnd() % (70000 - 2100 + 1);
            check_xor(src, len, key, nonce, t % 8 == 0 ? 0xffffffe0u + rnd() % 32 : rnd() % 1000,
                      (size_t)t % 6, path_name(pv[p]));
        }
    }
    set_portable(false);
    free(src);
}

/* A stream fed pieces of random lengths gives the bytes of one call over their concatenation. */
Test(chacha20, stream_pieces_equal_one_call)
{
    uint8_t key[32], nonce[12];
    enum { MAX = 20000 };
    uint8_t *src = xmalloc(MAX), *want = xmalloc(MAX), *got = xmalloc(MAX);
    fill(src, MAX);
    bool pv[2];
    for (size_t p = 0, np = paths(pv); p < np; p++) {
        set_portable(pv[p]);
        for (int t = 0; t < 300; t++) {
            fill(key, 32);
            fill(nonce, 12);
            size_t len = rnd() % MAX;
            uint32_t ctr = rnd() % 4;
            CRYPTO_chacha_20(want, src, len, key, nonce, ctr);
            rp_chacha20 c;
            rp_chacha20_init(&c, key, nonce, ctr);
            bool inplace = t % 2;
            if (inplace) memcpy(got, src, len);
            for (size_t o = 0; o < len;) {
                /* Mostly short pieces, some across the 1 KiB bulk size. */
                uint32_t kind = rnd() % 8;
                size_t k = kind == 0 ? rnd() % 5000 : kind < 3 ? rnd() % 70 : rnd() % 300;
                if (k > len - o) k = len - o;
                rp_chacha20_stream(&c, got + o, inplace ? got + o : src + o, k);
                o += k;
            }
            rp_chacha20_wipe(&c);
            cr_assert_arr_eq(got, want, len, "t %d len %zu (%s)", t, len, path_name(pv[p]));
        }
    }
    set_portable(false);
    free(src);
    free(want);
    free(got);
}

/* ---- AEAD against BoringSSL ------------------------------------------------------------- */

static void evp_seal(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *pt, size_t len,
                     const uint8_t *ad, size_t ad_len, uint8_t *out)
{
    EVP_AEAD_CTX e;
    cr_assert(EVP_AEAD_CTX_init(&e, EVP_aead_chacha20_poly1305(), key, 32, 16, NULL));
    size_t out_len;
    cr_assert(EVP_AEAD_CTX_seal(&e, out, &out_len, len + 16, nonce, 12, pt, len, ad, ad_len));
    cr_assert_eq(out_len, len + 16);
    EVP_AEAD_CTX_cleanup(&e);
}

/* Splits [0, len) into up to 40 pieces at random points (some empty) over src. */
static size_t random_iov(const uint8_t *src, size_t len, rp_iov *iov)
{
    size_t n = 0, pos = 0;
    while (pos < len && n < 39) {
        size_t k = rnd() % 4 == 0 ? 0 : rnd() % (len - pos + 1);
        if (rnd() % 3 == 0 && k > 64) k = rnd() % 64;
        iov[n++] = rp_iov_make(src + pos, k);
        pos += k;
    }
    iov[n++] = rp_iov_make(src + pos, len - pos);
    return n;
}

/*
 * One case: ours seals exactly as BoringSSL (plain, in place, gathered from
 * random pieces), opens BoringSSL's record, and refuses it with one bit of
 * the ciphertext, the tag or the AD flipped.
 */
static void check_aead(size_t len, size_t ad_len, const char *pn)
{
    uint8_t key[32], nonce[12], ad[64];
    fill(key, 32);
    fill(nonce, 12);
    fill(ad, ad_len);
    size_t io = rnd() % 8, oo = rnd() % 8;
    uint8_t *pt = xmalloc(len + 8), *want = xmalloc(len + 16), *out = xmalloc(len + 16 + 8);
    fill(pt + io, len);
    evp_seal(key, nonce, pt + io, len, ad, ad_len, want);

    rp_aead ctx;
    cr_assert_eq(rp_aead_init(&ctx, &rp_aead_chacha20_poly1305_rp, key), 0);
    cr_assert_eq(rp_aead_seal(&ctx, out + oo, nonce, pt + io, len, ad, ad_len), 0);
    cr_assert_arr_eq(out + oo, want, len + 16, "seal len %zu ad %zu (%s)", len, ad_len, pn);

    memcpy(out + oo, pt + io, len);
    rp_aead_job j = { .buf = out + oo, .len = len, .ad = ad, .ad_len = ad_len };
    memcpy(j.nonce, nonce, 12);
    cr_assert_eq(rp_aead_seal_batch(&ctx, &j, 1), 0);
    cr_assert_arr_eq(out + oo, want, len + 16, "in-place seal len %zu (%s)", len, pn);

    rp_iov iov[40];
    size_t n = random_iov(pt + io, len, iov);
    memset(out, 0, len + 16 + 8);
    cr_assert_eq(rp_aead_seal_iov(&ctx, out + oo, nonce, iov, n, ad, ad_len), 0);
    cr_assert_arr_eq(out + oo, want, len + 16, "gather seal len %zu in %zu pieces (%s)", len, n,
                     pn);

    memcpy(out + oo, want, len + 16);
    cr_assert_eq(rp_aead_open(&ctx, out + oo, len + 16, nonce, ad, ad_len), (ssize_t)len,
                 "open len %zu (%s)", len, pn);
    cr_assert_arr_eq(out + oo, pt + io, len, "opened len %zu (%s)", len, pn);

    /* Tampering: a bit of the ciphertext or tag, then of the AD. */
    size_t pos = rnd() % (len + 16);
    memcpy(out + oo, want, len + 16);
    out[oo + pos] ^= (uint8_t)(1u << (rnd() % 8));
    cr_assert_eq(rp_aead_open(&ctx, out + oo, len + 16, nonce, ad, ad_len), RINGP2P_EAUTH,
                 "len %zu: byte %zu flipped yet opened (%s)", len, pos, pn);
    for (size_t i = 0; i < len; i++)
        cr_assert_eq(out[oo + i], 0, "len %zu: a refused record's plaintext was left", len);
    if (ad_len > 0) {
        memcpy(out + oo, want, len + 16);
        ad[rnd() % ad_len] ^= 0x10;
        cr_assert_eq(rp_aead_open(&ctx, out + oo, len + 16, nonce, ad, ad_len), RINGP2P_EAUTH,
                     "len %zu: AD changed yet opened (%s)", len, pn);
    }
    rp_aead_clear(&ctx);
    free(pt);
    free(want);
    free(out);
}

Test(chacha20, aead_matches_boringssl_every_length_to_2100)
{
    bool pv[2];
    for (size_t p = 0, np = paths(pv); p < np; p++) {
        set_portable(pv[p]);
        for (size_t len = 0; len <= 2100; len++) check_aead(len, len % 37, path_name(pv[p]));
    }
    set_portable(false);
}

Test(chacha20, aead_matches_boringssl_random_long_lengths)
{
    bool pv[2];
    for (size_t p = 0, np = paths(pv); p < np; p++) {
        set_portable(pv[p]);
        check_aead(65519, 0, path_name(pv[p])); /* Noise's largest plaintext */
        check_aead(16384, 13, path_name(pv[p]));
        for (int t = 0; t < 30; t++)
            check_aead(2100 + rnd() % (70000 - 2100 + 1), rnd() % 65, path_name(pv[p]));
    }
    set_portable(false);
}

/* Bare tags (empty plaintext, the record as AD) over long AD, as an authenticate-only framing. */
Test(chacha20, aead_bare_tag_over_long_ad)
{
    enum { AD = 70000 };
    uint8_t *ad = xmalloc(AD);
    fill(ad, AD);
    uint8_t key[32], nonce[12];
    fill(key, 32);
    fill(nonce, 12);
    bool pv[2];
    for (size_t p = 0, np = paths(pv); p < np; p++) {
        set_portable(pv[p]);
        rp_aead ctx;
        cr_assert_eq(rp_aead_init(&ctx, &rp_aead_chacha20_poly1305_rp, key), 0);
        for (size_t len = 0; len < AD; len = len * 3 + 1) {
            uint8_t want[16], tag[16];
            evp_seal(key, nonce, NULL, 0, ad, len, want);
            cr_assert_eq(rp_aead_seal(&ctx, tag, nonce, NULL, 0, ad, len), 0);
            cr_assert_arr_eq(tag, want, 16, "bare tag over %zu bytes (%s)", len, path_name(pv[p]));
            cr_assert_eq(rp_aead_open(&ctx, tag, 16, nonce, ad, len), 0);
            if (len > 0) {
                ad[len / 2] ^= 1;
                memcpy(tag, want, 16);
                cr_assert_eq(rp_aead_open(&ctx, tag, 16, nonce, ad, len), RINGP2P_EAUTH);
                ad[len / 2] ^= 1;
            }
        }
        rp_aead_clear(&ctx);
    }
    set_portable(false);
    free(ad);
}

/*
 * Records cut from one gathered plaintext with rp_aead_seal_cursor equal
 * separate seals of the same bytes (the Noise sender's shape), on both
 * backends; a cursor short of the asked length is refused.
 */
Test(chacha20, seal_cursor_cuts_records_from_pieces)
{
    enum { TOTAL = 150000, REC = 65519 };
    uint8_t *plain = xmalloc(TOTAL), *a = xmalloc(TOTAL + 64), *b = xmalloc(TOTAL + 64);
    fill(plain, TOTAL);
    rp_iov iov[40];
    size_t n = random_iov(plain, TOTAL, iov);
    uint8_t key[32] = { 3, 1, 4, 1, 5 };
    static const rp_aead_alg *const algs[] = { &rp_aead_chacha20_poly1305_rp,
                                               &rp_aead_chacha20_poly1305_evp };
    for (size_t al = 0; al < 2; al++) {
        rp_aead ctx;
        cr_assert_eq(rp_aead_init(&ctx, algs[al], key), 0);
        rp_iov_cursor cur = rp_iov_cursor_make(iov, n);
        size_t in_off = 0, out_off = 0;
        for (uint64_t r = 0; in_off < TOTAL; r++) {
            size_t len = TOTAL - in_off < REC ? TOTAL - in_off : REC;
            uint8_t nonce[12];
            rp_aead_counter_nonce(algs[al], nonce, r);
            cr_assert_eq(rp_aead_seal(&ctx, a + out_off, nonce, plain + in_off, len, NULL, 0), 0);
            cr_assert_eq(rp_aead_seal_cursor(&ctx, b + out_off, nonce, &cur, len, NULL, 0), 0);
            in_off += len;
            out_off += len + 16;
        }
        cr_assert_arr_eq(a, b, out_off, "%zu: records cut from a cursor differ", al);
        uint8_t nonce[12] = { 0 };
        cr_assert_eq(rp_aead_seal_cursor(&ctx, b, nonce, &cur, 1, NULL, 0), RINGP2P_EINVAL,
                     "%zu: sealing past the cursor's end", al);
        rp_aead_clear(&ctx);
    }
    free(plain);
    free(a);
    free(b);
}
