/*
 * AES-GCM (crypto/aesgcm.c): the test cases of McGrew and Viega's GCM
 * specification (as used in NIST's validation), then differential runs
 * against BoringSSL (EVP_aead_aes_128_gcm, EVP_aead_aes_256_gcm) over every
 * length up to 2100, random longer ones, AD lengths 0..100 and 64 KiB of AD
 * with no plaintext (a bare tag), misaligned, in place and not; then records
 * with a flipped bit in the tag, the ciphertext or the AD, which must be
 * refused. Skipped on CPUs without AVX-512, VAES and VPCLMULQDQ.
 */
#include <criterion/criterion.h>

#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/aead.h>

#include "crypto/aesgcm.h"

static void need_simd(void)
{
    if (!rp_aesgcm_simd_available()) cr_skip_test("no AVX-512 with VAES and VPCLMULQDQ");
}

static const struct gcm_vector {
    const char *name, *key, *iv, *pt, *ad, *ct, *tag;
} vectors[] = {
    { "1", "00000000000000000000000000000000", "000000000000000000000000", "", "", "",
      "58e2fccefa7e3061367f1d57a4e7455a" },
    { "2", "00000000000000000000000000000000", "000000000000000000000000",
      "00000000000000000000000000000000", "", "0388dace60b6a392f328c2b971b2fe78",
      "ab6e47d42cec13bdf53a67b21257bddf" },
    { "3", "feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
      "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
      "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
      "",
      "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
      "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
      "4d5c2af327cd64a62cf35abd2ba6fab4" },
    { "4", "feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
      "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
      "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
      "feedfacedeadbeeffeedfacedeadbeefabaddad2",
      "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
      "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
      "5bc94fbc3221a5db94fae95ae7121a47" },
    { "13", "0000000000000000000000000000000000000000000000000000000000000000",
      "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b" },
    { "14", "0000000000000000000000000000000000000000000000000000000000000000",
      "000000000000000000000000", "00000000000000000000000000000000", "",
      "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919" },
    { "15", "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
      "cafebabefacedbaddecaf888",
      "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
      "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
      "",
      "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
      "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
      "b094dac5d93471bdec1a502270e3cc6c" },
    { "16", "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
      "cafebabefacedbaddecaf888",
      "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
      "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
      "feedfacedeadbeeffeedfacedeadbeefabaddad2",
      "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
      "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
      "76fc6ece0f4e1768cddf8853bb2d551b" },
};

Test(aesgcm, spec_vectors)
{
    need_simd();
    for (size_t v = 0; v < sizeof(vectors) / sizeof(vectors[0]); v++) {
        const struct gcm_vector *tv = &vectors[v];
        uint8_t key[32], iv[12], pt[64], ad[32], ct[64], tag[16], out[64], got[16];
        size_t kl = unhex(tv->key, key, sizeof(key));
        cr_assert_eq(unhex(tv->iv, iv, sizeof(iv)), 12);
        size_t pl = unhex(tv->pt, pt, sizeof(pt)), al = unhex(tv->ad, ad, sizeof(ad));
        cr_assert_eq(unhex(tv->ct, ct, sizeof(ct)), pl);
        unhex(tv->tag, tag, sizeof(tag));
        rp_aesgcm_key k;
        cr_assert_eq(rp_aesgcm_init(&k, key, kl), 0);
        cr_assert_eq(rp_aesgcm_seal(&k, out, iv, pt, pl, ad, al, got), 0);
        cr_assert_eq(memcmp(out, ct, pl), 0, "test case %s: ciphertext", tv->name);
        cr_assert_eq(memcmp(got, tag, 16), 0, "test case %s: tag", tv->name);
        cr_assert_eq(rp_aesgcm_open(&k, out, iv, ct, pl, ad, al, tag), 0, "test case %s", tv->name);
        cr_assert_eq(memcmp(out, pt, pl), 0, "test case %s: plaintext", tv->name);
        rp_aesgcm_clear(&k);
    }
}

Test(aesgcm, bad_key_lengths)
{
    uint8_t key[32] = { 0 };
    rp_aesgcm_key k;
    cr_assert_eq(rp_aesgcm_init(&k, key, 24), -1);
    cr_assert_eq(rp_aesgcm_init(&k, key, 0), -1);
}

enum { MAXLEN = 70000, SLACK = 64 };

typedef struct rig {
    uint8_t key[32], nonce[12];
    size_t key_len;
    rp_aesgcm_key ours;
    EVP_AEAD_CTX ref;
    uint8_t *pt, *ad, *out, *want, *back;
} rig;

static void fill(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)rand();
}

static void rig_init(rig *r, size_t key_len)
{
    r->key_len = key_len;
    fill(r->key, sizeof(r->key));
    fill(r->nonce, sizeof(r->nonce));
    cr_assert_eq(rp_aesgcm_init(&r->ours, r->key, key_len), 0);
    cr_assert(EVP_AEAD_CTX_init(&r->ref,
                                key_len == 16 ? EVP_aead_aes_128_gcm() : EVP_aead_aes_256_gcm(),
                                r->key, key_len, 16, NULL));
    r->pt = malloc(MAXLEN + SLACK);
    r->ad = malloc(65536 + 200 + SLACK);
    r->out = malloc(MAXLEN + SLACK);
    r->want = malloc(MAXLEN + 16);
    r->back = malloc(MAXLEN + SLACK);
    cr_assert(r->pt && r->ad && r->out && r->want && r->back);
}

static void rig_free(rig *r)
{
    EVP_AEAD_CTX_cleanup(&r->ref);
    rp_aesgcm_clear(&r->ours);
    free(r->pt);
    free(r->ad);
    free(r->out);
    free(r->want);
    free(r->back);
}

/*
 * Seals len bytes at pt+pmis with ad_len bytes of AD at ad+amis, into out+omis
 * (or in place), compares with BoringSSL, opens it back (in place or not).
 */
static void check(rig *r, size_t len, size_t ad_len, size_t pmis, size_t amis, size_t omis,
                  bool inplace)
{
    uint8_t *pt = r->pt + pmis, *ad = r->ad + amis;
    fill(pt, len);
    fill(ad, ad_len);
    size_t wl = 0;
    cr_assert(
        EVP_AEAD_CTX_seal(&r->ref, r->want, &wl, len + 16, r->nonce, 12, pt, len, ad, ad_len));
    cr_assert_eq(wl, len + 16);
    uint8_t tag[16];
    uint8_t *out = inplace ? r->out + pmis : r->out + omis;
    if (inplace) memcpy(out, pt, len);
    cr_assert_eq(rp_aesgcm_seal(&r->ours, out, r->nonce, inplace ? out : pt, len, ad, ad_len, tag),
                 0);
    cr_assert_eq(memcmp(out, r->want, len), 0, "AES-%zu ciphertext, len %zu ad %zu", r->key_len * 8,
                 len, ad_len);
    cr_assert_eq(memcmp(tag, r->want + len, 16), 0, "AES-%zu tag, len %zu ad %zu", r->key_len * 8,
                 len, ad_len);
    uint8_t *dst = inplace ? out : r->back + omis;
    cr_assert_eq(rp_aesgcm_open(&r->ours, dst, r->nonce, out, len, ad, ad_len, tag), 0,
                 "open, len %zu ad %zu", len, ad_len);
    cr_assert_eq(memcmp(dst, pt, len), 0, "plaintext, len %zu ad %zu", len, ad_len);
    r->nonce[rand() % 12] ^= (uint8_t)(1 + rand() % 255);
}

Test(aesgcm, every_length, .timeout = 120)
{
    need_simd();
    srand(1);
    for (size_t kl = 16; kl <= 32; kl += 16) {
        rig r;
        rig_init(&r, kl);
        for (size_t len = 0; len <= 2100; len++)
            check(&r, len, (size_t)rand() % 40, (size_t)rand() % 64, (size_t)rand() % 64,
                  (size_t)rand() % 64, len % 2 == 0);
        rig_free(&r);
    }
}

Test(aesgcm, random_lengths, .timeout = 120)
{
    need_simd();
    srand(2);
    for (size_t kl = 16; kl <= 32; kl += 16) {
        rig r;
        rig_init(&r, kl);
        for (int i = 0; i < 120; i++) {
            size_t len = (size_t)rand() % (MAXLEN + 1);
            if (i < 8) len = (size_t[]){ 16384, 16383, 16385, 65536, 4096, 256, 255, 257 }[i];
            check(&r, len, (size_t)rand() % 200, (size_t)rand() % 64, (size_t)rand() % 64,
                  (size_t)rand() % 64, i % 2 == 0);
        }
        rig_free(&r);
    }
}

Test(aesgcm, ad_lengths, .timeout = 60)
{
    need_simd();
    srand(3);
    for (size_t kl = 16; kl <= 32; kl += 16) {
        rig r;
        rig_init(&r, kl);
        for (size_t ad_len = 0; ad_len <= 100; ad_len++)
            for (size_t len = 0; len <= 300; len += 37)
                check(&r, len, ad_len, (size_t)rand() % 64, (size_t)rand() % 64,
                      (size_t)rand() % 64, ad_len % 2 == 1);
        /* Tag only over long AD (signed mode): 64 KiB and around it. */
        size_t big[] = { 65536, 65535, 65537, 65536 + 200, 4096, 257, 256, 255, 16, 15 };
        for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++)
            for (size_t mis = 0; mis < 3; mis++) check(&r, 0, big[i], 0, mis * 7, 0, false);
        rig_free(&r);
    }
}

/* Every flipped bit of the tag, and a sample of the ciphertext's and the AD's, is refused. */
Test(aesgcm, tampered, .timeout = 60)
{
    need_simd();
    srand(4);
    for (size_t kl = 16; kl <= 32; kl += 16) {
        rig r;
        rig_init(&r, kl);
        size_t lens[] = { 0, 1, 15, 16, 17, 255, 256, 257, 1000, 16384 };
        for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
            size_t len = lens[li], ad_len = 13 + li * 7;
            fill(r.pt, len);
            fill(r.ad, ad_len);
            uint8_t tag[16];
            cr_assert_eq(rp_aesgcm_seal(&r.ours, r.out, r.nonce, r.pt, len, r.ad, ad_len, tag), 0);
            for (size_t bit = 0; bit < 128; bit++) {
                tag[bit / 8] ^= (uint8_t)(1u << (bit % 8));
                memset(r.back, 0xaa, len);
                cr_assert_eq(
                    rp_aesgcm_open(&r.ours, r.back, r.nonce, r.out, len, r.ad, ad_len, tag), -1);
                for (size_t i = 0; i < len; i++)
                    cr_assert_eq(r.back[i], 0, "refused plaintext not wiped");
                tag[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            }
            for (int t = 0; t < 40 && len > 0; t++) {
                size_t bit = (size_t)rand() % (len * 8);
                r.out[bit / 8] ^= (uint8_t)(1u << (bit % 8));
                cr_assert_eq(
                    rp_aesgcm_open(&r.ours, r.back, r.nonce, r.out, len, r.ad, ad_len, tag), -1);
                r.out[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            }
            for (int t = 0; t < 40; t++) {
                size_t bit = (size_t)rand() % (ad_len * 8);
                r.ad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
                cr_assert_eq(
                    rp_aesgcm_open(&r.ours, r.back, r.nonce, r.out, len, r.ad, ad_len, tag), -1);
                r.ad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            }
            /* Shorter AD, other nonce: refused too. */
            cr_assert_eq(
                rp_aesgcm_open(&r.ours, r.back, r.nonce, r.out, len, r.ad, ad_len - 1, tag), -1);
            r.nonce[0] ^= 1;
            cr_assert_eq(rp_aesgcm_open(&r.ours, r.back, r.nonce, r.out, len, r.ad, ad_len, tag),
                         -1);
            r.nonce[0] ^= 1;
            cr_assert_eq(rp_aesgcm_open(&r.ours, r.back, r.nonce, r.out, len, r.ad, ad_len, tag),
                         0);
            cr_assert_eq(memcmp(r.back, r.pt, len), 0);
        }
        rig_free(&r);
    }
}

/*
 * seal_extra over in || extra (TLS 1.3's inner type and padding) against
 * BoringSSL's EVP_AEAD_CTX_seal_scatter with the same extra_in.
 */
Test(aesgcm, seal_extra, .timeout = 60)
{
    need_simd();
    srand(5);
    for (size_t kl = 16; kl <= 32; kl += 16) {
        rig r;
        rig_init(&r, kl);
        for (int i = 0; i < 1500; i++) {
            size_t len = i < 600 ? (size_t)i : (size_t)rand() % 20000;
            if (i % 50 == 0) len = 16384;
            size_t extra_len =
                i % 7 == 0 ? (size_t)rand() % (RP_AESGCM_EXTRA_MAX + 1) : 1 + (size_t)rand() % 20;
            size_t ad_len = 5;
            uint8_t extra[RP_AESGCM_EXTRA_MAX], tag[16], wtag[16 + RP_AESGCM_EXTRA_MAX];
            fill(r.pt, len);
            fill(extra, extra_len);
            fill(r.ad, ad_len);
            size_t wt = 0;
            cr_assert(EVP_AEAD_CTX_seal_scatter(&r.ref, r.want, wtag, &wt, sizeof(wtag), r.nonce,
                                                12, r.pt, len, extra, extra_len, r.ad, ad_len));
            cr_assert_eq(wt, extra_len + 16);
            bool inplace = i % 2 == 1;
            uint8_t *out = inplace ? r.pt : r.out + (size_t)rand() % 64;
            cr_assert_eq(rp_aesgcm_seal_extra(&r.ours, out, r.nonce, r.pt, len, extra, extra_len,
                                              r.ad, ad_len, tag),
                         0);
            cr_assert_eq(memcmp(out, r.want, len), 0, "len %zu extra %zu", len, extra_len);
            cr_assert_eq(memcmp(out + len, wtag, extra_len), 0, "extra, len %zu extra %zu", len,
                         extra_len);
            cr_assert_eq(memcmp(tag, wtag + extra_len, 16), 0, "tag, len %zu extra %zu", len,
                         extra_len);
            /* The record opens as one ciphertext of len + extra_len bytes. */
            cr_assert_eq(
                rp_aesgcm_open(&r.ours, r.back, r.nonce, out, len + extra_len, r.ad, ad_len, tag),
                0);
            cr_assert_eq(memcmp(r.back + len, extra, extra_len), 0);
            r.nonce[rand() % 12] ^= 0x5a;
        }
        uint8_t big[RP_AESGCM_EXTRA_MAX + 1] = { 0 }, tag[16];
        cr_assert_eq(
            rp_aesgcm_seal_extra(&r.ours, r.out, r.nonce, r.pt, 10, big, sizeof(big), NULL, 0, tag),
            -1);
        rig_free(&r);
    }
}
