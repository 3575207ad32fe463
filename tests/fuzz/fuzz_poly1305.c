/*
 * Poly1305 (crypto/poly1305.h) against BoringSSL's CRYPTO_poly1305_*. The
 * input is read as:
 *
 *   byte 0     bit 0: portable path; bit 1: vector path from the first byte;
 *              bits 2-7: how many split points follow (0-63)
 *   byte 1     the message is the body repeated 1 + this many times (capped at
 *              MSG_MAX), so short inputs reach the vector path's long loop
 *   32 bytes   the key
 *   2 bytes    per split point: a little-endian piece length (pieces are fed
 *              in turn; whatever is left goes in one last update)
 *   the rest   the body
 *
 * Invariant: the tag equals BoringSSL's over the same message, whatever the
 * path and the pieces. Where they differ, the RFC's arithmetic done plainly
 * with BN decides: this fuzzer found inputs (r = 1, 66 bytes; seed
 * boringssl_errs_r1) where Debian's android-libboringssl 13.0.0+r24 is the
 * one that is wrong, as OpenSSL 3 and a big-integer model agree.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/poly1305.h>

#include "crypto/poly1305.h"
#include "poly1305_bn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) ((c) ? (void)0 : abort())

enum { MSG_MAX = 70000 };

static void bn_tag(const uint8_t key[32], const uint8_t *m, size_t n, uint8_t tag[16])
{
    CHECK(poly1305_bn_tag(key, m, n, tag));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t msg[MSG_MAX];
    if (size < 2 + RP_POLY1305_KEY_LEN) return 0;
    const uint8_t flags = data[0], reps = data[1];
    const uint8_t *key = data + 2;
    data += 2 + RP_POLY1305_KEY_LEN, size -= 2 + RP_POLY1305_KEY_LEN;
    size_t nsplit = flags >> 2;
    if (size < 2 * nsplit) nsplit = size / 2;
    const uint8_t *splits = data;
    data += 2 * nsplit, size -= 2 * nsplit;

    size_t len = 0;
    for (int r = 0; r <= reps && size > 0 && len < MSG_MAX; r++) {
        size_t n = size < MSG_MAX - len ? size : MSG_MAX - len;
        memcpy(msg + len, data, n);
        len += n;
    }

    uint8_t want[16], got[16];
    poly1305_state ref;
    CRYPTO_poly1305_init(&ref, key);
    CRYPTO_poly1305_update(&ref, msg, len);
    CRYPTO_poly1305_finish(&ref, want);

    rp_poly1305_force_portable(flags & 1);
    rp_poly1305_set_simd_min(flags & 2 ? 1 : RP_POLY1305_SIMD_MIN);
    rp_poly1305 st;
    rp_poly1305_init(&st, key);
    size_t off = 0;
    for (size_t i = 0; i < nsplit; i++) {
        size_t piece = (size_t)splits[2 * i] | (size_t)splits[2 * i + 1] << 8;
        if (piece > len - off) piece = len - off;
        rp_poly1305_update(&st, msg + off, piece);
        off += piece;
    }
    rp_poly1305_update(&st, msg + off, len - off);
    rp_poly1305_finish(&st, got);
    if (memcmp(got, want, sizeof(want)) != 0) {
        bn_tag(key, msg, len, want);
        CHECK(memcmp(got, want, sizeof(want)) == 0);
    }
    return 0;
}
