/*
 * Our ChaCha20-Poly1305 (rp_aead_chacha20_poly1305_rp) against BoringSSL's
 * (EVP_aead_chacha20_poly1305) on arbitrary key, nonce, AD and text.
 *
 * Input: byte 0 is flags (bit 0: mode, bit 1: portable ChaCha20 and Poly1305, bits
 * 2-7: a misalignment of 0..63), bytes 1-2 the AD length (little-endian,
 * clipped), bytes 3-34 the key, 35-46 the nonce (missing bytes are zero), then
 * the AD, then the body.
 *
 *  mode 0  the body is plaintext: ours must seal it to BoringSSL's bytes
 *          (separate buffers, in place, and gathered from pieces cut at
 *          points drawn from the input), open that record back, and refuse
 *          it with one bit flipped where the input says;
 *  mode 1  the body is a received record (ciphertext then tag): both must
 *          give the same verdict and, when both accept, the same plaintext.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/aead.h>
#include <openssl/err.h>

#include "base/error.h"
#include "crypto/aead.h"
#include "crypto/chacha20.h"
#include "crypto/poly1305.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                             \
    do {                                                                                     \
        if (!(c)) {                                                                          \
            fprintf(stderr, "fuzz_aead: %s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

#define HDR 47

static size_t evp_seal(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *pt,
                       size_t len, const uint8_t *ad, size_t ad_len, uint8_t *out)
{
    EVP_AEAD_CTX e;
    CHECK(EVP_AEAD_CTX_init(&e, EVP_aead_chacha20_poly1305(), key, 32, 16, NULL));
    size_t out_len = 0;
    CHECK(EVP_AEAD_CTX_seal(&e, out, &out_len, len + 16, nonce, 12, pt, len, ad, ad_len));
    EVP_AEAD_CTX_cleanup(&e);
    return out_len;
}

/* 1 with the plaintext in out, or 0. */
static int evp_open(const uint8_t key[32], const uint8_t nonce[12], const uint8_t *rec, size_t len,
                    const uint8_t *ad, size_t ad_len, uint8_t *out)
{
    EVP_AEAD_CTX e;
    CHECK(EVP_AEAD_CTX_init(&e, EVP_aead_chacha20_poly1305(), key, 32, 16, NULL));
    size_t out_len = 0;
    int ok = EVP_AEAD_CTX_open(&e, out, &out_len, len, nonce, 12, rec, len, ad, ad_len);
    if (ok) CHECK(out_len + 16 == len);
    ERR_clear_error();
    EVP_AEAD_CTX_cleanup(&e);
    return ok;
}

static uint64_t seed_of(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3u;
    return h | 1;
}

static uint32_t next(uint64_t *s)
{
    *s ^= *s >> 12, *s ^= *s << 25, *s ^= *s >> 27;
    return (uint32_t)((*s * 0x2545f4914f6cdd1du) >> 32);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t hdr[HDR] = { 0 };
    memcpy(hdr, data, size < HDR ? size : HDR);
    data += size < HDR ? size : HDR;
    size -= size < HDR ? size : HDR;
    int mode = hdr[0] & 1;
    rp_chacha20_force_portable(hdr[0] & 2);
    rp_poly1305_force_portable(hdr[0] & 2);
    size_t mis = hdr[0] >> 2;
    size_t ad_len = (size_t)hdr[1] | (size_t)hdr[2] << 8;
    if (ad_len > size) ad_len = size;
    const uint8_t *key = hdr + 3, *nonce = hdr + 35, *ad = data;
    const uint8_t *body = data + ad_len;
    size_t len = size - ad_len;

    rp_aead ctx;
    CHECK(rp_aead_init(&ctx, &rp_aead_chacha20_poly1305_rp, key) == 0);
    uint8_t *want = malloc(len + 16), *buf = malloc(len + 16 + 64), *pt = malloc(len + 16);
    CHECK(want != NULL && buf != NULL && pt != NULL);
    uint8_t *out = buf + mis;

    if (mode == 0) {
        CHECK(evp_seal(key, nonce, body, len, ad, ad_len, want) == len + 16);
        CHECK(rp_aead_seal(&ctx, out, nonce, body, len, ad, ad_len) == 0);
        CHECK(memcmp(out, want, len + 16) == 0);

        memcpy(out, body, len);
        rp_aead_job j = { .buf = out, .len = len, .ad = ad, .ad_len = ad_len };
        memcpy(j.nonce, nonce, 12);
        CHECK(rp_aead_seal_batch(&ctx, &j, 1) == 0);
        CHECK(memcmp(out, want, len + 16) == 0);

        rp_iov iov[32];
        size_t n = 0, pos = 0;
        uint64_t s = seed_of(body, len);
        while (pos < len && n < 31) {
            size_t k = next(&s) % 3 == 0 ? next(&s) % 80 : next(&s) % (len - pos + 1);
            if (k > len - pos) k = len - pos;
            iov[n++] = rp_iov_make(body + pos, k);
            pos += k;
        }
        iov[n++] = rp_iov_make(body + pos, len - pos);
        memset(out, 0, len + 16);
        CHECK(rp_aead_seal_iov(&ctx, out, nonce, iov, n, ad, ad_len) == 0);
        CHECK(memcmp(out, want, len + 16) == 0);

        CHECK(rp_aead_open(&ctx, out, len + 16, nonce, ad, ad_len) == (ssize_t)len);
        CHECK(memcmp(out, body, len) == 0);

        size_t at = (size_t)(s % (len + 16));
        memcpy(out, want, len + 16);
        out[at] ^= (uint8_t)(1u << (s >> 32) % 8);
        CHECK(rp_aead_open(&ctx, out, len + 16, nonce, ad, ad_len) == RINGP2P_EAUTH);
        memcpy(buf, want, len + 16);
        buf[at] ^= (uint8_t)(1u << (s >> 32) % 8);
        CHECK(evp_open(key, nonce, buf, len + 16, ad, ad_len, pt) == 0);
    } else {
        memcpy(out, body, len);
        ssize_t r = rp_aead_open(&ctx, out, len, nonce, ad, ad_len);
        if (len < 16) {
            CHECK(r == RINGP2P_ETRUNCATED);
        } else {
            int ok = evp_open(key, nonce, body, len, ad, ad_len, pt);
            CHECK(ok ? r == (ssize_t)(len - 16) : r == RINGP2P_EAUTH);
            if (ok) CHECK(memcmp(out, pt, len - 16) == 0);
        }
    }
    rp_aead_clear(&ctx);
    free(want);
    free(buf);
    free(pt);
    return 0;
}
