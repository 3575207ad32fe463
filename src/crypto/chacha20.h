/*
 * ChaCha20 stream cipher (RFC 8439 §2.3-2.4): 256-bit key, 96-bit nonce,
 * 32-bit block counter, for the ChaCha20-Poly1305 AEAD backend.
 *
 * Two paths, chosen per call:
 *  - AVX-512 (checked at run time): the bulk runs 16 blocks (1 KiB) at a
 *    time, one state word of all 16 blocks per zmm register, then a 16x16
 *    transpose; short tails run 4 or 8 blocks with one row of four blocks per
 *    register;
 *  - portable C, one block at a time, for other CPUs (and tests).
 *
 * The counter wraps modulo 2^32 into the same nonce, as BoringSSL's
 * CRYPTO_chacha_20 does; a caller that must not reuse keystream (the AEAD
 * limits a record to 2^32-1 blocks) keeps lengths below that itself.
 */
#ifndef RP_CRYPTO_CHACHA20_H
#define RP_CRYPTO_CHACHA20_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RP_CHACHA20_KEY_LEN   32
#define RP_CHACHA20_NONCE_LEN 12
#define RP_CHACHA20_BLOCK_LEN 64

/* Keystream generated ahead and not yet used is kept here, at most 16 blocks. */
#define RP_CHACHA20_BUF_LEN (16 * RP_CHACHA20_BLOCK_LEN)

/*
 * XORs len bytes of `in` with the keystream for (key, nonce) starting at block
 * `counter`, into `out` (caller's buffers; out == in is fine, any other
 * overlap is not). Any length and alignment.
 */
void rp_chacha20_xor(uint8_t *out, const uint8_t *in, size_t len,
                     const uint8_t key[RP_CHACHA20_KEY_LEN],
                     const uint8_t nonce[RP_CHACHA20_NONCE_LEN], uint32_t counter);

/*
 * A keystream position, for XORing a sequence of pieces of any lengths as one
 * message: rp_chacha20_stream(c, ...) calls in turn give the same bytes as one
 * rp_chacha20_xor over their concatenation. A plain struct the caller
 * allocates (the stack is fine); fields are private. It holds key material:
 * wipe it with rp_chacha20_wipe.
 */
typedef struct rp_chacha20 {
    _Alignas(64) uint8_t ks[RP_CHACHA20_BUF_LEN]; /* keystream ks[ks_off..ks_len) is unused */
    uint32_t state[16];                           /* §2.3 state; state[12]: next block to make */
    uint32_t ks_off, ks_len;
} rp_chacha20;

/* Starts a stream at block `counter`. key and nonce are copied. */
void rp_chacha20_init(rp_chacha20 *c, const uint8_t key[RP_CHACHA20_KEY_LEN],
                      const uint8_t nonce[RP_CHACHA20_NONCE_LEN], uint32_t counter);

/* XORs the next len bytes of keystream with in into out (out == in is fine, other overlap not). */
void rp_chacha20_stream(rp_chacha20 *c, uint8_t *out, const uint8_t *in, size_t len);

/* Keystream bytes already made and not yet used (a stream's next call takes these first). */
static inline size_t rp_chacha20_buffered(const rp_chacha20 *c)
{
    return c->ks_len - c->ks_off;
}

/* Zeroes the state and the buffered keystream. */
void rp_chacha20_wipe(rp_chacha20 *c);

/* Whether the CPU runs the AVX-512 path (AVX-512 F, VL, BW, DQ and OS support for zmm state). */
bool rp_chacha20_simd_available(void);

/*
 * Tests only: while on, every call takes the portable path even on an AVX-512
 * CPU. Process-wide; takes effect at the next call.
 */
void rp_chacha20_force_portable(bool on);

#endif
