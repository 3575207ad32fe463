/*
 * Poly1305 (crypto/poly1305.h) on every path: portable; vector with its own
 * threshold; vector from the first byte (the lanes, the fold and the buffered
 * tail on even the shortest messages). Published vectors (RFC 8439 §2.5.2 and
 * A.3), then BoringSSL's CRYPTO_poly1305_* as the reference: every length to
 * 2100, random lengths to 70000, random split points, misaligned input, keys
 * and messages of all ones, and accumulators that end exactly around p (built
 * with BoringSSL's BN, which also gives the expected tag independently).
 */
#include <criterion/criterion.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/poly1305.h>

#include "crypto/poly1305.h"
#include "../fuzz/poly1305_bn.h"
#include "testutil.h"

enum path { PORTABLE, SIMD, SIMD_EARLY, NPATHS };
static const char *const path_name[NPATHS] = { "portable", "simd", "simd-from-1-byte" };

static void set_path(enum path p)
{
    rp_poly1305_force_portable(p == PORTABLE);
    rp_poly1305_set_simd_min(p == SIMD_EARLY ? 1 : RP_POLY1305_SIMD_MIN);
}

static void reset_path(void)
{
    set_path(SIMD);
}

/* xorshift64*: reproducible, so a failure names its seed and iteration. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

static void fill(uint64_t *s, uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(rnd(s) >> 56);
}

static void ref_tag(const uint8_t key[32], const uint8_t *m, size_t n, uint8_t tag[16])
{
    poly1305_state st;
    CRYPTO_poly1305_init(&st, key);
    CRYPTO_poly1305_update(&st, m, n);
    CRYPTO_poly1305_finish(&st, tag);
}

static void our_tag(const uint8_t key[32], const uint8_t *m, size_t n, uint8_t tag[16])
{
    rp_poly1305 st;
    rp_poly1305_init(&st, key);
    rp_poly1305_update(&st, m, n);
    rp_poly1305_finish(&st, tag);
}

/*
 * Our tag with the message cut at random points. The piece sizes mix single
 * bytes, sizes around a block and a lane group, and the 2-4 KiB pieces Noise
 * feeds, with some empty updates between.
 */
static void our_tag_split(uint64_t *seed, const uint8_t key[32], const uint8_t *m, size_t n,
                          uint8_t tag[16])
{
    rp_poly1305 st;
    rp_poly1305_init(&st, key);
    size_t off = 0;
    while (off < n) {
        size_t c;
        switch (rnd(seed) % 6) {
        case 0: c = 1 + rnd(seed) % 17; break;
        case 1: c = 120 + rnd(seed) % 20; break;
        case 2: c = 380 + rnd(seed) % 10; break;
        case 3: c = 2048 + rnd(seed) % 2100; break;
        case 4: c = 0; break;
        default: c = rnd(seed) % 1000; break;
        }
        if (c > n - off) c = n - off;
        rp_poly1305_update(&st, m + off, c);
        off += c;
    }
    rp_poly1305_finish(&st, tag);
}

/* RFC 8439 §2.5.2 and Appendix A.3 (#1-#11). A message is text when msg is NULL. */
static const char ietf_text[] =
    "Any submission to the IETF intended by the Contributor for publication as all or part of an "
    "IETF Internet-Draft or RFC and any statement made within the context of an IETF activity is "
    "considered an \"IETF Contribution\". Such statements include oral statements in IETF "
    "sessions, as well as written and electronic communications made at any time or place, which "
    "are addressed to";
static const char jabberwocky[] = "'Twas brillig, and the slithy toves\nDid gyre and gimble in the "
                                  "wabe:\nAll mimsy were the borogoves,\nAnd the mome raths "
                                  "outgrabe.";

static const struct vector {
    const char *name, *key, *msg, *text, *tag;
} vectors[] = {
    { "2.5.2", "85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b",
      "43727970746f6772617068696320466f72756d2052657365617263682047726f7570", NULL,
      "a8061dc1305136c6c22b8baf0c0127a9" },
    { "A.3 #1", "0000000000000000000000000000000000000000000000000000000000000000",
      "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
      "000000000000000000000000000000000000",
      NULL, "00000000000000000000000000000000" },
    { "A.3 #2", "0000000000000000000000000000000036e5f6b5c5e06070f0efca96227a863e", NULL, ietf_text,
      "36e5f6b5c5e06070f0efca96227a863e" },
    { "A.3 #3", "36e5f6b5c5e06070f0efca96227a863e00000000000000000000000000000000", NULL, ietf_text,
      "f3477e7cd95417af89a6b8794c310cf0" },
    { "A.3 #4", "1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0", NULL,
      jabberwocky, "4541669a7eaaee61e708dc7cbcc5eb62" },
    { "A.3 #5", "0200000000000000000000000000000000000000000000000000000000000000",
      "ffffffffffffffffffffffffffffffff", NULL, "03000000000000000000000000000000" },
    { "A.3 #6", "02000000000000000000000000000000ffffffffffffffffffffffffffffffff",
      "02000000000000000000000000000000", NULL, "03000000000000000000000000000000" },
    { "A.3 #7", "0100000000000000000000000000000000000000000000000000000000000000",
      "ffffffffffffffffffffffffffffffff f0ffffffffffffffffffffffffffffff"
      "11000000000000000000000000000000",
      NULL, "05000000000000000000000000000000" },
    { "A.3 #8", "0100000000000000000000000000000000000000000000000000000000000000",
      "ffffffffffffffffffffffffffffffff fbfefefefefefefefefefefefefefefe"
      "01010101010101010101010101010101",
      NULL, "00000000000000000000000000000000" },
    { "A.3 #9", "0200000000000000000000000000000000000000000000000000000000000000",
      "fdffffffffffffffffffffffffffffff", NULL, "faffffffffffffffffffffffffffffff" },
    { "A.3 #10", "0100000000000000040000000000000000000000000000000000000000000000",
      "e33594d7505e43b90000000000000000 3394d7505e4379cd0100000000000000"
      "00000000000000000000000000000000 01000000000000000000000000000000",
      NULL, "14000000000000005500000000000000" },
    { "A.3 #11", "0100000000000000040000000000000000000000000000000000000000000000",
      "e33594d7505e43b90000000000000000 3394d7505e4379cd0100000000000000"
      "00000000000000000000000000000000",
      NULL, "13000000000000000000000000000000" },
};

Test(poly1305, rfc8439_vectors, .fini = reset_path)
{
    for (int p = 0; p < NPATHS; p++) {
        set_path((enum path)p);
        for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
            const struct vector *v = &vectors[i];
            uint8_t key[32], msg[512], want[16], got[16], ref[16];
            cr_assert_eq(unhex(v->key, key, sizeof(key)), 32);
            size_t n;
            if (v->text) {
                n = strlen(v->text);
                memcpy(msg, v->text, n);
            } else {
                n = unhex(v->msg, msg, sizeof(msg));
            }
            cr_assert_eq(unhex(v->tag, want, sizeof(want)), 16);
            ref_tag(key, msg, n, ref);
            cr_assert_arr_eq(ref, want, 16, "%s: BoringSSL disagrees with the RFC", v->name);

            our_tag(key, msg, n, got);
            cr_assert_arr_eq(got, want, 16, "%s (%s): one update", v->name, path_name[p]);

            rp_poly1305 st;
            rp_poly1305_init(&st, key);
            for (size_t j = 0; j < n; j++) rp_poly1305_update(&st, msg + j, 1);
            rp_poly1305_finish(&st, got);
            cr_assert_arr_eq(got, want, 16, "%s (%s): byte by byte", v->name, path_name[p]);
        }
    }
}

/* One message per length, on every path, in one update and in random pieces. */
Test(poly1305, matches_boringssl_every_length_to_2100, .fini = reset_path)
{
    static uint8_t msg[2100];
    for (int p = 0; p < NPATHS; p++) {
        set_path((enum path)p);
        uint64_t seed = 0x9e3779b97f4a7c15 + (uint64_t)p;
        for (size_t n = 0; n <= sizeof(msg); n++) {
            uint8_t key[32], want[16], got[16];
            fill(&seed, key, sizeof(key));
            fill(&seed, msg, n);
            ref_tag(key, msg, n, want);
            our_tag(key, msg, n, got);
            cr_assert_arr_eq(got, want, 16, "%s: length %zu, one update", path_name[p], n);
            our_tag_split(&seed, key, msg, n, got);
            cr_assert_arr_eq(got, want, 16, "%s: length %zu, in pieces", path_name[p], n);
        }
    }
}

Test(poly1305, matches_boringssl_random_long_lengths, .fini = reset_path)
{
    enum { MAX = 70000 };
    uint8_t *msg = malloc(MAX);
    cr_assert_not_null(msg);
    for (int p = 0; p < NPATHS; p++) {
        set_path((enum path)p);
        uint64_t seed = 0x243f6a8885a308d3 + (uint64_t)p;
        for (int it = 0; it < 60; it++) {
            size_t n = it == 0 ? MAX : (size_t)(rnd(&seed) % (MAX + 1));
            uint8_t key[32], want[16], got[16];
            fill(&seed, key, sizeof(key));
            fill(&seed, msg, n);
            ref_tag(key, msg, n, want);
            our_tag(key, msg, n, got);
            cr_assert_arr_eq(got, want, 16, "%s: #%d length %zu, one update", path_name[p], it, n);
            our_tag_split(&seed, key, msg, n, got);
            cr_assert_arr_eq(got, want, 16, "%s: #%d length %zu, in pieces", path_name[p], it, n);
        }
    }
    free(msg);
}

/* The 64 KiB record shapes: 4 KiB and 2 KiB pieces, and pieces that straddle lane groups. */
Test(poly1305, record_in_fixed_pieces, .fini = reset_path)
{
    enum { LEN = 65536 + 16 };
    uint8_t *msg = malloc(LEN);
    cr_assert_not_null(msg);
    uint64_t seed = 7;
    static const size_t pieces[] = { 4096, 2048, 3000, 129, 127, 16, 15, 17, 384, 383 };
    for (int p = 0; p < NPATHS; p++) {
        set_path((enum path)p);
        for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
            uint8_t key[32], want[16], got[16];
            fill(&seed, key, sizeof(key));
            fill(&seed, msg, LEN);
            for (size_t n = LEN - 16; n <= LEN; n += 5) {
                ref_tag(key, msg, n, want);
                rp_poly1305 st;
                rp_poly1305_init(&st, key);
                for (size_t off = 0; off < n; off += pieces[i])
                    rp_poly1305_update(&st, msg + off, n - off < pieces[i] ? n - off : pieces[i]);
                rp_poly1305_finish(&st, got);
                cr_assert_arr_eq(got, want, 16, "%s: length %zu in %zu-byte pieces", path_name[p],
                                 n, pieces[i]);
            }
        }
    }
    free(msg);
}

Test(poly1305, misaligned_input, .fini = reset_path)
{
    enum { LEN = 5000 };
    uint8_t *raw = malloc(LEN + 64);
    uint8_t *msg = malloc(LEN);
    cr_assert(raw && msg);
    uint64_t seed = 11;
    fill(&seed, msg, LEN);
    for (int p = 0; p < NPATHS; p++) {
        set_path((enum path)p);
        for (size_t off = 0; off < 64; off++) {
            static const size_t lens[] = { 1, 100, 777, 4096 + 13, LEN };
            for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
                uint8_t key[32], want[16], got[16];
                fill(&seed, key, sizeof(key));
                memcpy(raw + off, msg, lens[i]);
                ref_tag(key, msg, lens[i], want);
                our_tag(key, raw + off, lens[i], got);
                cr_assert_arr_eq(got, want, 16, "%s: offset %zu length %zu", path_name[p], off,
                                 lens[i]);
                our_tag_split(&seed, key, raw + off, lens[i], got);
                cr_assert_arr_eq(got, want, 16, "%s: offset %zu length %zu, in pieces",
                                 path_name[p], off, lens[i]);
            }
        }
    }
    free(raw);
    free(msg);
}

/*
 * All-ones patterns: r at its clamped maximum, s of all ones (the final
 * addition wraps 2^128), messages of 0xff bytes (every limb of every block at
 * its maximum, so the delayed carries reach their bounds), and zero r and s.
 */
Test(poly1305, carry_edges_all_ones, .fini = reset_path)
{
    enum { MAX = 70000 };
    uint8_t *ff = malloc(MAX);
    cr_assert_not_null(ff);
    memset(ff, 0xff, MAX);
    uint8_t keys[8][32];
    memset(keys[0], 0xff, 32);                              /* r max, s ones */
    memset(keys[1], 0xff, 16), memset(keys[1] + 16, 0, 16); /* r max, s zero */
    memset(keys[2], 0, 16), memset(keys[2] + 16, 0xff, 16); /* r zero, s ones */
    memset(keys[3], 0, 32);
    memset(keys[4], 0xff, 32), keys[4][0] = 0xfe; /* r max less one */
    for (int i = 0; i < 32; i++) keys[5][i] = (uint8_t)(i & 1 ? 0xff : 0x0f);
    /* r = 1: sums of 0xff blocks carry through every limb in the reduction */
    memset(keys[6], 0, 32), keys[6][0] = 1;
    memset(keys[7], 0xff, 32), memset(keys[7], 0, 16), keys[7][0] = 1;
    static const size_t lens[] = { 0,   1,   15,  16,  17,   127,  128,   129,   255,
                                   256, 383, 384, 385, 1024, 4096, 65536, 65537, MAX };
    for (int p = 0; p < NPATHS; p++) {
        set_path((enum path)p);
        uint64_t seed = 99;
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
            for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
                uint8_t want[16], got[16];
                ref_tag(keys[k], ff, lens[i], want);
                our_tag(keys[k], ff, lens[i], got);
                cr_assert_arr_eq(got, want, 16, "%s: key %zu, %zu bytes of 0xff", path_name[p], k,
                                 lens[i]);
                our_tag_split(&seed, keys[k], ff, lens[i], got);
                cr_assert_arr_eq(got, want, 16, "%s: key %zu, %zu bytes of 0xff in pieces",
                                 path_name[p], k, lens[i]);
            }
        }
    }
    free(ff);
}

/* ---- accumulators that end around p, built with BN ---------------------------------------- */

static BIGNUM *le(const uint8_t *p, size_t n)
{
    BIGNUM *b = poly1305_bn_le(p, n);
    cr_assert_not_null(b);
    return b;
}

static void bn_tag(const uint8_t key[32], const uint8_t *m, size_t n, uint8_t tag[16])
{
    cr_assert(poly1305_bn_tag(key, m, n, tag));
}

/*
 * Builds a message of `blocks` full blocks whose accumulator before "+ s" is
 * exactly p + delta (mod p): random blocks, then a last block solved for
 * (h + c) * r = target, retried until c lands in [2^128, 2^129) (a full
 * block). Returns the expected tag, (target + s) mod 2^128, computed by BN.
 * With r = 1 (fixed_r) no multiplication hides the sum, so an implementation
 * that keeps h unreduced ends holding p + delta itself.
 */
static void craft(uint64_t *seed, uint8_t key[32], bool fixed_r, int delta, size_t blocks,
                  uint8_t *msg, uint8_t want[16])
{
    static const uint8_t clamp[16] = { 0xff, 0xff, 0xff, 0x0f, 0xfc, 0xff, 0xff, 0x0f,
                                       0xfc, 0xff, 0xff, 0x0f, 0xfc, 0xff, 0xff, 0x0f };
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *p = BN_new(), *rinv = BN_new(), *h = BN_new(), *t = BN_new(), *two128 = BN_new(),
           *target = BN_new(), *c = BN_new();
    cr_assert(ctx && p && rinv && h && t && two128 && target && c);
    cr_assert(BN_set_word(p, 1) && BN_lshift(p, p, 130) && BN_sub_word(p, 5));
    cr_assert(BN_set_word(two128, 1) && BN_lshift(two128, two128, 128));
    /* target = p + delta, as a residue */
    if (delta >= 0)
        cr_assert(BN_set_word(target, (BN_ULONG)delta));
    else
        cr_assert(BN_copy(target, p) && BN_sub_word(target, (BN_ULONG)-delta));

    cr_assert_gt(blocks, 0);
    for (int tries = 0;; tries++) {
        cr_assert_lt(tries, 200, "%zu blocks, p%+d: no last block fits", blocks, delta);
        /* A fresh prefix, and r unless fixed, each try (with one block, only r can change). */
        if (!fixed_r) fill(seed, key, 16);
        uint8_t rb[16];
        for (int i = 0; i < 16; i++) rb[i] = key[i] & clamp[i];
        BIGNUM *r = le(rb, 16);
        cr_assert_not_null(BN_mod_inverse(rinv, r, p, ctx));
        fill(seed, msg, 16 * (blocks - 1));
        /* r = 1, two blocks: only a first block near 2^128 - 1 leaves the second one in reach */
        if (fixed_r && blocks == 2) memset(msg, 0xff, 16);
        BN_zero(h);
        for (size_t b = 0; b + 1 < blocks; b++) {
            BIGNUM *m = le(msg + 16 * b, 16);
            cr_assert(BN_add(h, h, m) && BN_add(h, h, two128) && BN_mod_mul(h, h, r, p, ctx));
            BN_free(m);
        }
        BN_free(r);
        /* c = target / r - h mod p must be a full block: 2^128 + m, m < 2^128 */
        cr_assert(BN_mod_mul(c, target, rinv, p, ctx) && BN_mod_sub(c, c, h, p, ctx));
        if (BN_cmp(c, two128) < 0) continue;
        cr_assert(BN_sub(c, c, two128));
        if (BN_cmp(c, two128) >= 0) continue;
        cr_assert(BN_bn2le_padded(msg + 16 * (blocks - 1), 16, c));
        break;
    }
    BIGNUM *s = le(key + 16, 16);
    cr_assert(BN_add(t, target, s) && BN_mask_bits(t, 128));
    cr_assert(BN_bn2le_padded(want, 16, t));
    BN_free(s);
    BN_free(p), BN_free(rinv), BN_free(h), BN_free(t), BN_free(two128);
    BN_free(target), BN_free(c);
    BN_CTX_free(ctx);
}

Test(poly1305, accumulator_around_p, .fini = reset_path)
{
    static uint8_t msg[16 * 4200];
    static const size_t blocks[] = { 1, 2, 3, 8, 9, 24, 25, 40, 256, 4097 };
    uint64_t seed = 0x5eed;
    for (int r_one = 0; r_one < 2; r_one++) {
        for (size_t bi = 0; bi < sizeof(blocks) / sizeof(blocks[0]); bi++) {
            for (int delta = -3; delta <= 3; delta++) {
                /* One block cannot reach 0 (c * r = 0 mod p needs c = 0 or p, neither a full
                 * block), nor anything with r = 1 (c = 2^128 + m < 2^129 is far from p). */
                if (blocks[bi] == 1 && (delta == 0 || r_one)) continue;
                uint8_t key[32], want[16], ref[16], got[16];
                fill(&seed, key, sizeof(key));
                if (r_one) memset(key, 0, 16), key[0] = 1;
                if (delta & 1) memset(key + 16, 0xff, 16); /* s of all ones: the sum wraps */
                craft(&seed, key, r_one, delta, blocks[bi], msg, want);
                size_t n = 16 * blocks[bi];
                ref_tag(key, msg, n, ref);
                cr_assert_arr_eq(ref, want, 16, "BoringSSL: r=1 %d, %zu blocks, p%+d", r_one,
                                 blocks[bi], delta);
                for (int p = 0; p < NPATHS; p++) {
                    set_path((enum path)p);
                    our_tag(key, msg, n, got);
                    cr_assert_arr_eq(got, want, 16, "%s: r=1 %d, %zu blocks, p%+d", path_name[p],
                                     r_one, blocks[bi], delta);
                    our_tag_split(&seed, key, msg, n, got);
                    cr_assert_arr_eq(got, want, 16, "%s: r=1 %d, %zu blocks, p%+d, in pieces",
                                     path_name[p], r_one, blocks[bi], delta);
                }
            }
        }
    }
}

/*
 * Found by fuzz_poly1305: with r = 1 this message makes Debian's
 * android-libboringssl 13.0.0+r24 return 030002000000f0fc ffffffffffffffff,
 * off by 2^52 (a carry lost between 26-bit limbs). OpenSSL 3.0's
 * `openssl mac POLY1305`, a big-integer model of §2.5.1 and BN here agree on
 * the tag below, so BoringSSL is not asked.
 */
Test(poly1305, where_boringssl_errs, .fini = reset_path)
{
    uint8_t key[32] = { 1 }, msg[66], want[16], got[16], bn[16];
    cr_assert_eq(unhex("00000000000000ffffffffffffffffff ffffffffffffffffffffffffffffffff"
                       "00000000000000ffffffffffffffffff 00000000000000ffffffffffffffffff"
                       "ffff",
                       msg, sizeof(msg)),
                 sizeof(msg));
    cr_assert_eq(unhex("03000200000000fdffffffffffffffff", want, sizeof(want)), 16);
    bn_tag(key, msg, sizeof(msg), bn);
    cr_assert_arr_eq(bn, want, 16);
    for (int p = 0; p < NPATHS; p++) {
        set_path((enum path)p);
        our_tag(key, msg, sizeof(msg), got);
        cr_assert_arr_eq(got, want, 16, "%s", path_name[p]);
        uint64_t seed = 3;
        our_tag_split(&seed, key, msg, sizeof(msg), got);
        cr_assert_arr_eq(got, want, 16, "%s, in pieces", path_name[p]);
    }
}

/* The path choice: short updates stay portable; the first long one moves the state over. */
Test(poly1305, a_long_update_takes_the_vector_path, .fini = reset_path)
{
    static uint8_t msg[1024];
    uint8_t key[32] = { 1 }, tag[16];
    if (!rp_poly1305_simd_available()) cr_skip_test("no AVX-512 IFMA on this CPU");
    rp_poly1305 st;
    rp_poly1305_init(&st, key);
    rp_poly1305_update(&st, msg, RP_POLY1305_SIMD_MIN - 1);
    cr_assert_eq(st.simd, 0);
    rp_poly1305_update(&st, msg, sizeof(msg));
    cr_assert_eq(st.simd, 1);
    rp_poly1305_finish(&st, tag);

    rp_poly1305_force_portable(true);
    cr_assert_not(rp_poly1305_simd_available());
    rp_poly1305_init(&st, key);
    rp_poly1305_update(&st, msg, sizeof(msg));
    cr_assert_eq(st.simd, 0);
    rp_poly1305_finish(&st, tag);
}

/* finish leaves no key material in the state: all of it after the vector path. */
Test(poly1305, finish_wipes_the_state, .fini = reset_path)
{
    static uint8_t msg[4096];
    uint8_t key[32], tag[16];
    memset(key, 0x5a, sizeof(key));
    for (int p = 0; p < NPATHS; p++) {
        set_path((enum path)p);
        rp_poly1305 st, zero;
        memset(&st, 0, sizeof(st));
        memset(&zero, 0, sizeof(zero));
        rp_poly1305_init(&st, key);
        rp_poly1305_update(&st, msg, sizeof(msg) - 3);
        rp_poly1305_finish(&st, tag);
        cr_assert_arr_eq(&st, &zero, sizeof(st), "%s", path_name[p]);
    }
}
