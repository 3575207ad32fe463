/*
 * Poly1305 (RFC 8439 §2.5.1) as the RFC writes it, on BoringSSL's BN: the
 * independent model the Poly1305 unit tests and fuzz target check against
 * (where our code and BoringSSL's disagree, this decides).
 */
#ifndef RP_TESTS_POLY1305_BN_H
#define RP_TESTS_POLY1305_BN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <openssl/bn.h>

/* Little-endian bytes as a BIGNUM (NULL when out of memory). */
static inline BIGNUM *poly1305_bn_le(const uint8_t *p, size_t n)
{
    return BN_le2bn(p, n, NULL);
}

/* h = (h + block + 2^(8 len)) * r mod 2^130-5, tag = h + s mod 2^128. false if BN failed. */
static inline bool poly1305_bn_tag(const uint8_t key[32], const uint8_t *m, size_t n,
                                   uint8_t tag[16])
{
    static const uint8_t clamp[16] = { 0xff, 0xff, 0xff, 0x0f, 0xfc, 0xff, 0xff, 0x0f,
                                       0xfc, 0xff, 0xff, 0x0f, 0xfc, 0xff, 0xff, 0x0f };
    uint8_t rb[16];
    for (int i = 0; i < 16; i++) rb[i] = key[i] & clamp[i];
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *p = BN_new(), *h = BN_new(), *r = poly1305_bn_le(rb, 16),
           *s = poly1305_bn_le(key + 16, 16);
    bool ok =
        ctx && p && h && r && s && BN_set_word(p, 1) && BN_lshift(p, p, 130) && BN_sub_word(p, 5);
    if (ok) BN_zero(h);
    for (size_t off = 0; ok && off < n; off += 16) {
        uint8_t b[17] = { 0 };
        size_t len = n - off < 16 ? n - off : 16;
        memcpy(b, m + off, len);
        b[len] = 1;
        BIGNUM *c = poly1305_bn_le(b, sizeof(b));
        ok = c != NULL && BN_add(h, h, c) && BN_mod_mul(h, h, r, p, ctx);
        BN_free(c);
    }
    ok = ok && BN_add(h, h, s) && BN_mask_bits(h, 128) && BN_bn2le_padded(tag, 16, h);
    BN_free(p), BN_free(h), BN_free(r), BN_free(s);
    BN_CTX_free(ctx);
    return ok;
}

#endif
