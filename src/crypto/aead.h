/*
 * AEAD behind a vtable: ChaCha20-Poly1305 (RFC 8439) and AES-256-GCM (NIST SP
 * 800-38D). Each is our own where the CPU has the instructions our code needs
 * (crypto/chacha20.c and poly1305.c: AVX-512 and IFMA; crypto/aesgcm.c:
 * AVX-512, VAES and VPCLMULQDQ), else BoringSSL's EVP_AEAD.
 *
 * Records are sealed and opened in place, in the caller's buffers: a record is
 * `len` bytes of plaintext followed by room for the tag, so a sealer writes
 * plaintext (gathered from an rp_iov list) where the ciphertext will be and
 * the transport sends the buffer as is; an opener authenticates and decrypts
 * where the bytes were received. seal_batch takes every record of one send in
 * one call, so a backend that interleaves several records (multi-lane SIMD)
 * can drop in without touching its callers.
 *
 * The nonce is a plain 12-byte value: each protocol builds it its own way
 * (Noise from a counter, rp_aead_counter_nonce; TLS 1.3 by XOR with an IV).
 * Sealing an empty plaintext with associated data gives a bare tag, which is
 * what an authenticate-only framing needs.
 */
#ifndef RP_CRYPTO_AEAD_H
#define RP_CRYPTO_AEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/aead.h>

#include "base/bytes.h"
#include "crypto/aesgcm.h"

/* Both ciphers: 256-bit keys, 96-bit nonces, 128-bit tags (RFC 8439 §2.8, SP 800-38D §5.2.1). */
#define RP_AEAD_KEY_MAX   32
#define RP_AEAD_NONCE_LEN 12
#define RP_AEAD_TAG_LEN   16

typedef struct rp_aead rp_aead;
typedef struct rp_iov_cursor rp_iov_cursor; /* below */

/*
 * One record to seal in place. On input `buf` holds `len` plaintext bytes and
 * has room for RP_AEAD_TAG_LEN more; on output it holds the ciphertext and
 * then the tag. All memory is the caller's, borrowed for the call only.
 */
typedef struct rp_aead_job {
    uint8_t *buf;
    size_t len;
    const uint8_t *ad; /* associated data, may be NULL when ad_len is 0 */
    size_t ad_len;
    uint8_t nonce[RP_AEAD_NONCE_LEN];
} rp_aead_job;

/* One AEAD algorithm and backend. Tables are const and static; contexts point at them. */
typedef struct rp_aead_alg {
    const char *name; /* as the Noise spec names the cipher: "ChaChaPoly", "AESGCM" */
    size_t key_len;
    size_t tag_len;
    /* Encoding of a counter nonce: Noise ChaChaPoly is little-endian, AESGCM big-endian. */
    bool counter_be;
    /* Keys ctx (key_len bytes, copied). 0 or RINGP2P_ECRYPTO. */
    int (*init)(rp_aead *ctx, const uint8_t *key);
    /* Wipes the key schedule. */
    void (*clear)(rp_aead *ctx);
    /* Seals every job in place. 0 or RINGP2P_ECRYPTO (then no job's output is meaningful). */
    int (*seal_batch)(const rp_aead *ctx, rp_aead_job *jobs, size_t n);
    /*
     * Opens one record in place: `buf` holds `len` ciphertext bytes and then the
     * tag. 0 with the plaintext in buf[0..len), or RINGP2P_EAUTH when the record
     * is not authentic (buf contents are then unspecified and must be dropped).
     */
    int (*open)(const rp_aead *ctx, uint8_t *buf, size_t len,
                const uint8_t nonce[RP_AEAD_NONCE_LEN], const uint8_t *ad, size_t ad_len);
    /*
     * Optional (NULL: the plaintext is copied into out, then sealed in place).
     * Seals the next `len` bytes read from `in` (advanced past them) into out,
     * which receives len + tag_len bytes. 0, RINGP2P_ECRYPTO, or RINGP2P_EINVAL
     * if `in` holds fewer than len bytes.
     */
    int (*seal_iov)(const rp_aead *ctx, uint8_t *out, const uint8_t nonce[RP_AEAD_NONCE_LEN],
                    rp_iov_cursor *in, size_t len, const uint8_t *ad, size_t ad_len);
} rp_aead_alg;

/* A keyed context. Plain struct so it can live inside a connection; clear it with rp_aead_clear. */
struct rp_aead {
    const rp_aead_alg *alg; /* as keyed; NULL: not keyed */
    /*
     * The backend doing the work: alg itself, or for rp_aead_chacha20_poly1305
     * one of the two concrete tables below. rp_aead_seal & co. call it directly;
     * alg's own functions forward to it.
     */
    const rp_aead_alg *impl;
    union {
        EVP_AEAD_CTX evp;
        uint8_t chacha_key[32]; /* rp_aead_chacha20_poly1305_rp */
        rp_aesgcm_key gcm;      /* rp_aead_aes_256_gcm_rp */
        uint64_t align;
    } u;
};

/*
 * ChaCha20-Poly1305: picks rp_aead_chacha20_poly1305_rp at rp_aead_init when
 * the CPU has AVX-512 and IFMA (rp_chacha20_simd_available and
 * rp_poly1305_simd_available: our portable Poly1305 is slower than
 * BoringSSL's), else _evp. The environment
 * variable RINGP2P_CHACHA=boringssl or =ringp2p overrides the choice (read
 * once, for A/B measurements).
 */
extern const rp_aead_alg rp_aead_chacha20_poly1305;
/* The two ChaCha20-Poly1305 backends, for tests and benchmarks: ours (any CPU) and BoringSSL's. */
extern const rp_aead_alg rp_aead_chacha20_poly1305_rp;
extern const rp_aead_alg rp_aead_chacha20_poly1305_evp;
/* Which Poly1305 rp_aead_chacha20_poly1305_rp runs on, for benchmark reports. */
const char *rp_aead_chacha20_poly1305_rp_mac(void);
/*
 * AES-256-GCM: picks rp_aead_aes_256_gcm_rp (crypto/aesgcm.c) at rp_aead_init
 * when the CPU has AVX-512, VAES and VPCLMULQDQ (rp_aesgcm_simd_available),
 * else _evp (BoringSSL). RINGP2P_AESGCM=boringssl forces BoringSSL's (read
 * once, for A/B measurements).
 */
extern const rp_aead_alg rp_aead_aes_256_gcm;
extern const rp_aead_alg rp_aead_aes_256_gcm_rp;
extern const rp_aead_alg rp_aead_aes_256_gcm_evp;
/* Whether AES-GCM runs on crypto/aesgcm.c here (the choice above; TLS records use it too). */
bool rp_aead_aes_gcm_ours(void);

/* Keys ctx with `alg` (key: alg->key_len bytes, copied). 0 or RINGP2P_ECRYPTO. */
int rp_aead_init(rp_aead *ctx, const rp_aead_alg *alg, const uint8_t *key);

/* Wipes ctx (a never-keyed or already cleared one is fine). */
void rp_aead_clear(rp_aead *ctx);

/* Fills nonce with the 96-bit encoding of counter n: four zero bytes, then n as alg says. */
void rp_aead_counter_nonce(const rp_aead_alg *alg, uint8_t nonce[RP_AEAD_NONCE_LEN], uint64_t n);

/*
 * Seals `len` bytes from `in` into `out`, which receives len + tag_len bytes
 * (caller's buffer). `in` may equal `out` (in place) but must not otherwise
 * overlap it. 0 or RINGP2P_ECRYPTO.
 */
int rp_aead_seal(const rp_aead *ctx, uint8_t *out, const uint8_t nonce[RP_AEAD_NONCE_LEN],
                 const uint8_t *in, size_t len, const uint8_t *ad, size_t ad_len);

/*
 * Gather seal: the plaintext is the concatenation of in[0..n) (caller's,
 * read-only, not overlapping out); `out` receives its total length plus
 * tag_len bytes. 0 or RINGP2P_ECRYPTO.
 */
int rp_aead_seal_iov(const rp_aead *ctx, uint8_t *out, const uint8_t nonce[RP_AEAD_NONCE_LEN],
                     const rp_iov *in, size_t n, const uint8_t *ad, size_t ad_len);

/* Seals every job in place (see rp_aead_job). 0 or RINGP2P_ECRYPTO. */
int rp_aead_seal_batch(const rp_aead *ctx, rp_aead_job *jobs, size_t n);

/*
 * Gather seal of one record from a cursor: the next `len` bytes of `in` (the
 * cursor advances past them; its pieces are the caller's, read-only, not
 * overlapping out) go into out as ciphertext, then the tag: len + tag_len
 * bytes. With a backend that has seal_iov nothing is copied. 0,
 * RINGP2P_ECRYPTO, or RINGP2P_EINVAL if the cursor holds fewer than len bytes
 * (out is then unspecified).
 */
int rp_aead_seal_cursor(const rp_aead *ctx, uint8_t *out, const uint8_t nonce[RP_AEAD_NONCE_LEN],
                        rp_iov_cursor *in, size_t len, const uint8_t *ad, size_t ad_len);

/*
 * Opens a record in place: buf holds `len` bytes, ciphertext then tag. Returns
 * the plaintext length (len - tag_len; plaintext at buf), RINGP2P_EAUTH if the
 * record is not authentic (buf must then be dropped) or RINGP2P_ETRUNCATED if
 * len is shorter than a tag.
 */
ssize_t rp_aead_open(const rp_aead *ctx, uint8_t *buf, size_t len,
                     const uint8_t nonce[RP_AEAD_NONCE_LEN], const uint8_t *ad, size_t ad_len);

/*
 * A read cursor over an rp_iov list, for splitting a gathered plaintext into
 * records without flattening it. The list stays the caller's.
 */
struct rp_iov_cursor {
    const rp_iov *iov;
    size_t n;   /* entries left, starting at iov */
    size_t off; /* bytes of iov[0] already taken */
};

static inline rp_iov_cursor rp_iov_cursor_make(const rp_iov *iov, size_t n)
{
    rp_iov_cursor c = { iov, n, 0 };
    return c;
}

/* Copies the next `len` bytes into dst and advances; returns the count copied (less at the end). */
size_t rp_iov_cursor_copy(rp_iov_cursor *c, uint8_t *dst, size_t len);

#endif
