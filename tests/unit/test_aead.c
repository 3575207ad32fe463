#include <criterion/criterion.h>

#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/aead.h"

/* Published vectors: RFC 8439 §2.8.2; the GCM spec's test cases 13, 14, 16 (AES-256). */
static const struct vector {
    const char *name;
    const rp_aead_alg *alg;
    const char *key, *nonce, *ad, *pt, *ct, *tag;
} vectors[] = {
    { "RFC 8439 2.8.2", &rp_aead_chacha20_poly1305,
      "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
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
    { "GCM TC16", &rp_aead_aes_256_gcm,
      "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
      "cafebabefacedbaddecaf888", "feedfacedeadbeeffeedfacedeadbeefabaddad2",
      "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
      "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
      "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
      "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
      "76fc6ece0f4e1768cddf8853bb2d551b" },
    /* Empty plaintext and no AD: the tag alone, the "signed" mode's shape. */
    { "GCM TC13", &rp_aead_aes_256_gcm,
      "0000000000000000000000000000000000000000000000000000000000000000",
      "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b" },
    { "GCM TC14", &rp_aead_aes_256_gcm,
      "0000000000000000000000000000000000000000000000000000000000000000",
      "000000000000000000000000", "", "00000000000000000000000000000000",
      "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919" },
};

struct decoded {
    uint8_t key[32], nonce[12], ad[64], pt[256], want[256 + 16];
    size_t ad_len, pt_len;
};

static void decode(const struct vector *v, struct decoded *d)
{
    cr_assert_eq(unhex(v->key, d->key, sizeof(d->key)), v->alg->key_len);
    cr_assert_eq(unhex(v->nonce, d->nonce, sizeof(d->nonce)), RP_AEAD_NONCE_LEN);
    d->ad_len = unhex(v->ad, d->ad, sizeof(d->ad));
    d->pt_len = unhex(v->pt, d->pt, sizeof(d->pt));
    cr_assert_eq(unhex(v->ct, d->want, sizeof(d->want)), d->pt_len);
    cr_assert_eq(unhex(v->tag, d->want + d->pt_len, 16), 16);
}

Test(aead, published_vectors_seal_and_open)
{
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const struct vector *v = &vectors[i];
        struct decoded d;
        decode(v, &d);
        rp_aead ctx;
        cr_assert_eq(rp_aead_init(&ctx, v->alg, d.key), 0, "%s: init", v->name);

        uint8_t out[256 + 16];
        memset(out, 0xee, sizeof(out));
        cr_assert_eq(rp_aead_seal(&ctx, out, d.nonce, d.pt, d.pt_len, d.ad, d.ad_len), 0);
        cr_assert_arr_eq(out, d.want, d.pt_len + 16, "%s: separate-buffer seal", v->name);
        cr_assert_eq(out[d.pt_len + 16], 0xee, "%s: wrote past the tag", v->name);

        uint8_t inplace[256 + 16];
        memcpy(inplace, d.pt, d.pt_len);
        cr_assert_eq(rp_aead_seal(&ctx, inplace, d.nonce, inplace, d.pt_len, d.ad, d.ad_len), 0);
        cr_assert_arr_eq(inplace, d.want, d.pt_len + 16, "%s: in-place seal", v->name);

        cr_assert_eq(rp_aead_open(&ctx, inplace, d.pt_len + 16, d.nonce, d.ad, d.ad_len),
                     (ssize_t)d.pt_len, "%s: open", v->name);
        cr_assert_arr_eq(inplace, d.pt, d.pt_len, "%s: opened plaintext", v->name);
        rp_aead_clear(&ctx);
        cr_assert_null(ctx.alg);
    }
}

Test(aead, every_flipped_bit_fails_authentication)
{
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        const struct vector *v = &vectors[i];
        struct decoded d;
        decode(v, &d);
        rp_aead ctx;
        cr_assert_eq(rp_aead_init(&ctx, v->alg, d.key), 0);
        size_t len = d.pt_len + 16;
        for (size_t pos = 0; pos < len; pos++) {
            for (int bit = 0; bit < 8; bit += 3) {
                uint8_t buf[256 + 16];
                memcpy(buf, d.want, len);
                buf[pos] ^= (uint8_t)(1u << bit);
                cr_assert_eq(rp_aead_open(&ctx, buf, len, d.nonce, d.ad, d.ad_len), RINGP2P_EAUTH,
                             "%s: byte %zu bit %d flipped yet opened", v->name, pos, bit);
            }
        }
        for (size_t pos = 0; pos < d.ad_len; pos++) {
            uint8_t buf[256 + 16], ad[64];
            memcpy(buf, d.want, len);
            memcpy(ad, d.ad, d.ad_len);
            ad[pos] ^= 0x80;
            cr_assert_eq(rp_aead_open(&ctx, buf, len, d.nonce, ad, d.ad_len), RINGP2P_EAUTH,
                         "%s: AD byte %zu changed yet opened", v->name, pos);
        }
        uint8_t buf[256 + 16], nonce[12];
        memcpy(buf, d.want, len);
        memcpy(nonce, d.nonce, 12);
        nonce[11] ^= 1;
        cr_assert_eq(rp_aead_open(&ctx, buf, len, nonce, d.ad, d.ad_len), RINGP2P_EAUTH,
                     "%s: other nonce yet opened", v->name);
        cr_assert_eq(rp_aead_open(&ctx, buf, 15, d.nonce, NULL, 0), RINGP2P_ETRUNCATED);
        rp_aead_clear(&ctx);
    }
}

/*
 * The generic ChaCha20-Poly1305 and AES-256-GCM (ours where the CPU allows),
 * then both ChaCha backends and BoringSSL's AES-256-GCM (ours is the generic
 * one on such CPUs; test_aesgcm.c compares the two).
 */
static const rp_aead_alg *const algs[] = { &rp_aead_chacha20_poly1305, &rp_aead_aes_256_gcm,
                                           &rp_aead_chacha20_poly1305_rp,
                                           &rp_aead_chacha20_poly1305_evp,
                                           &rp_aead_aes_256_gcm_evp };
#define NALGS (sizeof(algs) / sizeof(algs[0]))

Test(aead, tag_only_seal_authenticates_associated_data)
{
    uint8_t key[32], frame[300];
    for (size_t i = 0; i < sizeof(key); i++) key[i] = (uint8_t)(i * 7 + 1);
    for (size_t i = 0; i < sizeof(frame); i++) frame[i] = (uint8_t)(i ^ 0x5a);
    for (size_t a = 0; a < NALGS; a++) {
        rp_aead ctx;
        cr_assert_eq(rp_aead_init(&ctx, algs[a], key), 0);
        uint8_t nonce[12], tag[16];
        rp_aead_counter_nonce(algs[a], nonce, 42);
        cr_assert_eq(rp_aead_seal(&ctx, tag, nonce, NULL, 0, frame, sizeof(frame)), 0);
        uint8_t t2[16];
        memcpy(t2, tag, 16);
        cr_assert_eq(rp_aead_open(&ctx, t2, 16, nonce, frame, sizeof(frame)), 0);
        frame[150] ^= 1;
        memcpy(t2, tag, 16);
        cr_assert_eq(rp_aead_open(&ctx, t2, 16, nonce, frame, sizeof(frame)), RINGP2P_EAUTH,
                     "%s: a changed frame must not verify", algs[a]->name);
        frame[150] ^= 1;
        rp_aead_clear(&ctx);
    }
}

Test(aead, counter_nonce_encodings)
{
    uint8_t n[12];
    static const uint8_t le[12] = { 0, 0, 0, 0, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01 };
    static const uint8_t be[12] = { 0, 0, 0, 0, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08 };
    memset(n, 0xff, sizeof(n));
    rp_aead_counter_nonce(&rp_aead_chacha20_poly1305, n, UINT64_C(0x0102030405060708));
    cr_assert_arr_eq(n, le, 12, "Noise ChaChaPoly nonces are little-endian (Noise 12.3)");
    memset(n, 0xff, sizeof(n));
    rp_aead_counter_nonce(&rp_aead_aes_256_gcm, n, UINT64_C(0x0102030405060708));
    cr_assert_arr_eq(n, be, 12, "Noise AESGCM nonces are big-endian (Noise 12.4)");
}

/* Batch sealing (and gathering) must give exactly the bytes of one seal per record. */
Test(aead, batch_and_gather_equal_single_seals)
{
    enum { RECS = 37 };
    static uint8_t plain[RECS * 1000], a[RECS * 1100], b[RECS * 1100];
    for (size_t i = 0; i < sizeof(plain); i++) plain[i] = (uint8_t)(i * 2654435761u >> 13);
    uint8_t key[32] = { 9, 8, 7 };
    for (size_t al = 0; al < NALGS; al++) {
        rp_aead ctx;
        cr_assert_eq(rp_aead_init(&ctx, algs[al], key), 0);
        rp_aead_job jobs[RECS];
        size_t off_in = 0, off_out = 0;
        for (size_t r = 0; r < RECS; r++) {
            size_t len = (r * 97) % 1000; /* includes an empty record */
            uint8_t nonce[12];
            rp_aead_counter_nonce(algs[al], nonce, r);
            cr_assert_eq(rp_aead_seal(&ctx, a + off_out, nonce, plain + off_in, len, NULL, 0), 0);
            memcpy(b + off_out, plain + off_in, len);
            jobs[r] = (rp_aead_job){ .buf = b + off_out, .len = len };
            memcpy(jobs[r].nonce, nonce, 12);
            off_in += len;
            off_out += len + 16;
        }
        cr_assert_eq(rp_aead_seal_batch(&ctx, jobs, RECS), 0);
        cr_assert_arr_eq(a, b, off_out, "%s: batch differs from single seals", algs[al]->name);

        /* Gather: the same plaintext scattered over uneven pieces, some empty. */
        rp_iov iov[64];
        size_t n = 0, total = 5000, pos = 0;
        while (pos < total) {
            size_t len = (n * 131) % 400;
            if (len > total - pos) len = total - pos;
            iov[n++] = rp_iov_make(plain + pos, len);
            pos += len;
            cr_assert_lt(n, 64);
        }
        uint8_t nonce[12];
        rp_aead_counter_nonce(algs[al], nonce, 7);
        cr_assert_eq(rp_aead_seal(&ctx, a, nonce, plain, total, (const uint8_t *)"ad", 2), 0);
        cr_assert_eq(rp_aead_seal_iov(&ctx, b, nonce, iov, n, (const uint8_t *)"ad", 2), 0);
        cr_assert_arr_eq(a, b, total + 16, "%s: gather seal differs", algs[al]->name);
        rp_aead_clear(&ctx);
    }
}

Test(aead, iov_cursor_walks_pieces_and_empty_entries)
{
    const char *s = "abcdefghij";
    rp_iov v[5] = { rp_iov_make(s, 0), rp_iov_make(s, 3), rp_iov_make(s + 3, 0),
                    rp_iov_make(s + 3, 5), rp_iov_make(s + 8, 2) };
    rp_iov_cursor c = rp_iov_cursor_make(v, 5);
    char out[16] = { 0 };
    cr_assert_eq(rp_iov_cursor_copy(&c, (uint8_t *)out, 4), 4);
    cr_assert_str_eq(out, "abcd");
    cr_assert_eq(rp_iov_cursor_copy(&c, (uint8_t *)out + 4, 100), 6);
    cr_assert_str_eq(out, "abcdefghij");
    cr_assert_eq(rp_iov_cursor_copy(&c, (uint8_t *)out, 1), 0);
}
