/*
 * Our AES-GCM (crypto/aesgcm.h) against BoringSSL's EVP_aead_aes_{128,256}_gcm
 * on arbitrary key, nonce, AD and text.
 *
 * Input: byte 0 is flags (bit 0: AES-256, bit 1: in place, bits 2-7: a
 * misalignment of 0..63), bytes 1-2 the AD length (little-endian, clipped),
 * byte 3 how many times the body is repeated after itself (so short inputs
 * reach the 256-byte loop; capped at BODY_MAX), bytes 4-35 the key, 36-47 the
 * nonce (missing bytes are zero), then the AD, then the body.
 *
 * Invariants: ours seals the body to BoringSSL's ciphertext and tag (also as
 * rp_aesgcm_seal_extra with the body cut in two at a point drawn from the
 * input); it opens
 * that record back to the body and refuses it with one bit flipped (a bit
 * chosen from the input); read as a received record (ciphertext then tag),
 * the body gets the same verdict and, when accepted, the same plaintext from
 * both.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/aead.h>

#include "crypto/aesgcm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) ((c) ? (void)0 : abort())

enum { BODY_MAX = 70000, HDR = 48 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!rp_aesgcm_simd_available()) return 0;
    uint8_t hdr[HDR] = { 0 };
    memcpy(hdr, data, size < HDR ? size : HDR);
    const uint8_t *rest = data + (size < HDR ? size : HDR);
    size_t rest_len = size < HDR ? 0 : size - HDR;
    size_t key_len = (hdr[0] & 1) ? 32 : 16, mis = hdr[0] >> 2;
    bool inplace = (hdr[0] & 2) != 0;
    size_t ad_len = (size_t)hdr[1] | (size_t)hdr[2] << 8;
    if (ad_len > rest_len) ad_len = rest_len;
    const uint8_t *ad = rest, *piece = rest + ad_len;
    size_t piece_len = rest_len - ad_len;
    size_t body_len = piece_len * (1 + (size_t)hdr[3]);
    if (body_len > BODY_MAX) body_len = BODY_MAX;
    const uint8_t *key = hdr + 4, *nonce = hdr + 36;

    uint8_t *body = malloc(body_len + 1), *buf = malloc(body_len + 64 + 16),
            *want = malloc(body_len + 16), *back = malloc(body_len + 1);
    CHECK(body && buf && want && back);
    for (size_t i = 0; i < body_len; i++) body[i] = piece[i % piece_len];

    rp_aesgcm_key ours;
    CHECK(rp_aesgcm_init(&ours, key, key_len) == 0);
    EVP_AEAD_CTX ref;
    CHECK(EVP_AEAD_CTX_init(&ref, key_len == 32 ? EVP_aead_aes_256_gcm() : EVP_aead_aes_128_gcm(),
                            key, key_len, 16, NULL));

    /* Seal: same bytes as BoringSSL. */
    size_t wl = 0;
    CHECK(EVP_AEAD_CTX_seal(&ref, want, &wl, body_len + 16, nonce, 12, body, body_len, ad, ad_len));
    uint8_t *out = buf + mis, tag[16];
    if (inplace) memcpy(out, body, body_len);
    CHECK(rp_aesgcm_seal(&ours, out, nonce, inplace ? out : body, body_len, ad, ad_len, tag) == 0);
    CHECK(memcmp(out, want, body_len) == 0 && memcmp(tag, want + body_len, 16) == 0);

    /* The same record sealed as body[0..n) || extra (the rest, at most RP_AESGCM_EXTRA_MAX). */
    size_t emax = body_len < RP_AESGCM_EXTRA_MAX ? body_len : RP_AESGCM_EXTRA_MAX;
    size_t extra_len = (size_t)(hdr[1] ^ hdr[3]) * 3 % (emax + 1), head = body_len - extra_len;
    uint8_t etag[16];
    CHECK(rp_aesgcm_seal_extra(&ours, back, nonce, body, head, body + head, extra_len, ad, ad_len,
                               etag) == 0);
    CHECK(memcmp(back, want, body_len) == 0 && memcmp(etag, want + body_len, 16) == 0);

    /* Open it back, then refuse it with one bit flipped. */
    uint8_t *dst = inplace ? out : back;
    CHECK(rp_aesgcm_open(&ours, dst, nonce, out, body_len, ad, ad_len, tag) == 0);
    CHECK(memcmp(dst, body, body_len) == 0);
    if (inplace) memcpy(out, want, body_len);
    size_t nbits = (body_len + 16 + ad_len) * 8;
    size_t bit = ((size_t)hdr[1] * 131 + (size_t)hdr[3] * 7 + size) % nbits;
    uint8_t *flip = bit < body_len * 8          ? out + bit / 8
                    : bit < (body_len + 16) * 8 ? tag + (bit / 8 - body_len)
                                                : NULL;
    if (flip != NULL) {
        *flip ^= (uint8_t)(1u << (bit % 8));
        CHECK(rp_aesgcm_open(&ours, back, nonce, out, body_len, ad, ad_len, tag) == -1);
        *flip ^= (uint8_t)(1u << (bit % 8));
    } else if (ad_len > 0) {
        uint8_t *adc = malloc(ad_len);
        CHECK(adc != NULL);
        memcpy(adc, ad, ad_len);
        size_t b = bit - (body_len + 16) * 8;
        adc[b / 8] ^= (uint8_t)(1u << (b % 8));
        CHECK(rp_aesgcm_open(&ours, back, nonce, out, body_len, adc, ad_len, tag) == -1);
        free(adc);
    }

    /* The body as a received record: same verdict, same plaintext. */
    if (body_len >= 16) {
        size_t ct_len = body_len - 16;
        size_t rl = 0;
        int ref_ok =
            EVP_AEAD_CTX_open(&ref, want, &rl, body_len, nonce, 12, body, body_len, ad, ad_len);
        int our_ok =
            rp_aesgcm_open(&ours, back, nonce, body, ct_len, ad, ad_len, body + ct_len) == 0;
        CHECK(ref_ok == our_ok);
        if (our_ok) CHECK(rl == ct_len && memcmp(back, want, ct_len) == 0);
    }

    EVP_AEAD_CTX_cleanup(&ref);
    rp_aesgcm_clear(&ours);
    free(body);
    free(buf);
    free(want);
    free(back);
    return 0;
}
