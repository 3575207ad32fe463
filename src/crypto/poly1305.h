/*
 * Poly1305 one-time authenticator (RFC 8439 §2.5), for the ChaCha20-Poly1305
 * AEAD backend.
 *
 * Two paths, chosen once per state at init:
 *  - portable: radix 2^64 with unsigned __int128, one block at a time;
 *  - AVX-512 IFMA (checked at run time): radix 2^44, eight lanes, each taking
 *    every eighth block with multiplier r^8 (two sets of lanes, r^16, in the
 *    main loop), folded with r^8..r^1 at finish. A state switches to it on the
 *    first update of at least RP_POLY1305_SIMD_MIN bytes, and only then
 *    computes the powers of r, so short messages stay on the cheap path. The
 *    lanes stay unfolded across update calls, so a message fed in 2-4 KiB
 *    pieces runs the vector loop for each piece without redoing any setup.
 *
 * Both paths are constant time: no branch or memory index depends on the key
 * or the message, only on lengths.
 */
#ifndef RP_CRYPTO_POLY1305_H
#define RP_CRYPTO_POLY1305_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RP_POLY1305_KEY_LEN   32
#define RP_POLY1305_TAG_LEN   16
#define RP_POLY1305_BLOCK_LEN 16

/* One update at least this long moves a state onto the vector path. */
#define RP_POLY1305_SIMD_MIN 384

/*
 * The state. A plain struct the caller allocates (the stack is fine); no
 * alignment beyond the natural one is required. Its fields are private.
 */
typedef struct rp_poly1305 {
    uint64_t h[3];       /* accumulator, radix 2^64, partially reduced (h[2] <= 7) */
    uint64_t r[2], s[2]; /* clamped r; s */
    uint64_t acc[3][8];  /* vector path: lane accumulators, radix 2^44 */
    uint64_t pw[5][8];   /* lane j holds r^(8-j): limbs 0..2, then 20*limb1, 20*limb2 */
    uint64_t pw16[5];    /* r^16, same layout */
    uint8_t buf[128];    /* input not yet taken: < 16 bytes (portable), < 128 (vector) */
    uint32_t buf_len;
    uint32_t simd_min; /* RP_POLY1305_SIMD_MIN, unless a test changed it */
    uint8_t simd_ok;   /* the CPU has IFMA and the state may use it */
    uint8_t simd;      /* on the vector path (acc and pw are live) */
    uint8_t fresh;     /* acc lane 0 holds h, to be added to the next group, not multiplied */
} rp_poly1305;

/* Keys a state: key[0..16) is r (clamped here), key[16..32) is s. key is read, not kept. */
void rp_poly1305_init(rp_poly1305 *st, const uint8_t key[RP_POLY1305_KEY_LEN]);

/* Adds len bytes of message (any length, any number of calls; in may be NULL when len is 0). */
void rp_poly1305_update(rp_poly1305 *st, const uint8_t *in, size_t len);

/* Writes the 16-byte tag and wipes the state; it must be initialised again before any reuse. */
void rp_poly1305_finish(rp_poly1305 *st, uint8_t mac[RP_POLY1305_TAG_LEN]);

/*
 * Tests only: while on, rp_poly1305_init picks the portable path even when the
 * CPU has IFMA. States already initialised keep their path. Process-wide.
 */
void rp_poly1305_force_portable(bool on);

/*
 * Tests only: the update length that moves a state onto the vector path, for
 * states initialised from now on (default RP_POLY1305_SIMD_MIN; 1 sends even
 * a one-byte message through the lanes and the fold). Process-wide.
 */
void rp_poly1305_set_simd_min(size_t min);

/* Whether rp_poly1305_init would pick the vector path now (for tests and benchmarks). */
bool rp_poly1305_simd_available(void);

#endif
