/*
 * AES-GCM (NIST SP 800-38D) with 128- and 256-bit keys, 96-bit IVs and
 * 16-byte tags, on x86-64 CPUs with AVX-512, VAES and VPCLMULQDQ: CTR mode
 * with VAES on zmm registers (16 blocks in flight), GHASH with VPCLMULQDQ on
 * zmm registers and one reduction per 16 blocks (aggregated reduction).
 *
 * There is no portable path: callers check rp_aesgcm_simd_available() (or
 * the return of rp_aesgcm_init) and otherwise use BoringSSL's EVP_AEAD.
 */
#ifndef RP_CRYPTO_AESGCM_H
#define RP_CRYPTO_AESGCM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RP_AESGCM_NONCE_LEN 12
#define RP_AESGCM_TAG_LEN   16
/* Most bytes rp_aesgcm_seal_extra takes as `extra` (a TLS 1.3 inner type and padding). */
#define RP_AESGCM_EXTRA_MAX 512

/* Key schedule and hash-key powers. Plain data: copyable, wipe with rp_aesgcm_clear. */
typedef struct rp_aesgcm_key {
    /* H^16 .. H^1 (index 0 is H^16), each byte-reflected and times x^-1 as GHASH uses them. */
    uint8_t hpow[16][16];
    uint8_t rk[15][16]; /* AES round keys */
    unsigned rounds;    /* 10 or 14 */
} rp_aesgcm_key;

/* True when the CPU (and OS) can run this implementation. Cached after the first call. */
bool rp_aesgcm_simd_available(void);

/* Keys `key` with `len` (16 or 32) bytes. 0, or -1 for another length or a CPU without support. */
int rp_aesgcm_init(rp_aesgcm_key *key, const uint8_t *bytes, size_t len);

/* Wipes the key schedule. */
void rp_aesgcm_clear(rp_aesgcm_key *key);

/*
 * Encrypts len bytes from in to out (in may equal out, no other overlap) and
 * writes the tag over the AD and the ciphertext. 0, or -1 if len exceeds
 * GCM's limit of 2^36 - 32 bytes. ad may be NULL when ad_len is 0.
 */
int rp_aesgcm_seal(const rp_aesgcm_key *key, uint8_t *out, const uint8_t nonce[RP_AESGCM_NONCE_LEN],
                   const uint8_t *in, size_t len, const uint8_t *ad, size_t ad_len,
                   uint8_t tag[RP_AESGCM_TAG_LEN]);

/*
 * Like rp_aesgcm_seal over the concatenation in[0..len) || extra[0..extra_len)
 * (as BoringSSL's EVP_AEAD_CTX_seal_scatter with extra_in): out receives len +
 * extra_len bytes of ciphertext. in may equal out; extra must not overlap out.
 * -1 also when extra_len exceeds RP_AESGCM_EXTRA_MAX.
 */
int rp_aesgcm_seal_extra(const rp_aesgcm_key *key, uint8_t *out,
                         const uint8_t nonce[RP_AESGCM_NONCE_LEN], const uint8_t *in, size_t len,
                         const uint8_t *extra, size_t extra_len, const uint8_t *ad, size_t ad_len,
                         uint8_t tag[RP_AESGCM_TAG_LEN]);

/*
 * Checks tag over the AD and the ciphertext in[0..len) (in constant time) and
 * decrypts it to out (in may equal out). 0, or -1 when the record is not
 * authentic; out[0..len) is then zeroed.
 */
int rp_aesgcm_open(const rp_aesgcm_key *key, uint8_t *out, const uint8_t nonce[RP_AESGCM_NONCE_LEN],
                   const uint8_t *in, size_t len, const uint8_t *ad, size_t ad_len,
                   const uint8_t tag[RP_AESGCM_TAG_LEN]);

#endif
