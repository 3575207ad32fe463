/*
 * AEAD backends. BoringSSL's EVP_AEAD seals and opens in place when input and
 * output are the same pointer, so with it "copy the plaintext into the record,
 * then seal in place" costs one memcpy over a separate-buffer seal.
 *
 * Our ChaCha20-Poly1305 (RFC 8439 §2.8) has no such copy: it reads the
 * plaintext from the caller's pieces and writes ciphertext straight into the
 * record. It runs in chunks of CC_CHUNK bytes, encrypting a chunk and then
 * MACing it (opening: MAC then decrypt), so each chunk is read back from L1.
 */
#include "crypto/aead.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/mem.h>

#include "base/error.h"
#include "crypto/aesgcm.h"
#include "crypto/chacha20.h"
#include "crypto/poly1305.h"

/*
 * Poly1305 (RFC 8439 §2.5) for our ChaCha20-Poly1305: crypto/poly1305.c
 * (AVX-512 IFMA when the CPU has it). BoringSSL's CRYPTO_poly1305_* has the
 * same shape and drops in here if ever needed.
 */
typedef rp_poly1305 mac_state;

static inline void mac_init(mac_state *m, const uint8_t key[32])
{
    rp_poly1305_init(m, key);
}

static inline void mac_update(mac_state *m, const uint8_t *in, size_t len)
{
    rp_poly1305_update(m, in, len);
}

/* Also wipes the state. */
static inline void mac_finish(mac_state *m, uint8_t tag[16])
{
    rp_poly1305_finish(m, tag);
}

const char *rp_aead_chacha20_poly1305_rp_mac(void)
{
    return rp_poly1305_simd_available() ? "rp_poly1305 (AVX-512 IFMA)" : "rp_poly1305 (portable)";
}

static int evp_init(rp_aead *ctx, const EVP_AEAD *aead, const uint8_t *key)
{
    if (!EVP_AEAD_CTX_init(&ctx->u.evp, aead, key, EVP_AEAD_key_length(aead), RP_AEAD_TAG_LEN,
                           NULL)) {
        ERR_clear_error();
        return RINGP2P_ECRYPTO;
    }
    return 0;
}

static int chacha_evp_init(rp_aead *ctx, const uint8_t *key)
{
    return evp_init(ctx, EVP_aead_chacha20_poly1305(), key);
}

static int aes256gcm_init(rp_aead *ctx, const uint8_t *key)
{
    return evp_init(ctx, EVP_aead_aes_256_gcm(), key);
}

static void evp_clear(rp_aead *ctx)
{
    EVP_AEAD_CTX_cleanup(&ctx->u.evp);
}

static int evp_seal_batch(const rp_aead *ctx, rp_aead_job *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rp_aead_job *j = &jobs[i];
        size_t out_len;
        if (!EVP_AEAD_CTX_seal(&ctx->u.evp, j->buf, &out_len, j->len + RP_AEAD_TAG_LEN, j->nonce,
                               RP_AEAD_NONCE_LEN, j->buf, j->len, j->ad, j->ad_len)) {
            ERR_clear_error();
            return RINGP2P_ECRYPTO;
        }
    }
    return 0;
}

static int evp_open(const rp_aead *ctx, uint8_t *buf, size_t len,
                    const uint8_t nonce[RP_AEAD_NONCE_LEN], const uint8_t *ad, size_t ad_len)
{
    size_t out_len;
    if (!EVP_AEAD_CTX_open(&ctx->u.evp, buf, &out_len, len, nonce, RP_AEAD_NONCE_LEN, buf,
                           len + RP_AEAD_TAG_LEN, ad, ad_len)) {
        ERR_clear_error();
        return RINGP2P_EAUTH;
    }
    return 0;
}

const rp_aead_alg rp_aead_chacha20_poly1305_evp = {
    .name = "ChaChaPoly",
    .key_len = 32,
    .tag_len = RP_AEAD_TAG_LEN,
    .counter_be = false,
    .init = chacha_evp_init,
    .clear = evp_clear,
    .seal_batch = evp_seal_batch,
    .open = evp_open,
};

/* ---- ChaCha20-Poly1305 on crypto/chacha20.c (RFC 8439 §2.8) ------------------------------ */

/* Bytes encrypted then MACed (or MACed then decrypted) per step; a multiple of 1 KiB. */
#define CC_CHUNK 4096

/* §2.8: counter 1 onwards encrypts, so a record has at most 2^32-1 blocks. */
#define CC_MAX_LEN (((uint64_t)1 << 38) - 64)

static const uint8_t zeros[64];

static int cc_init(rp_aead *ctx, const uint8_t *key)
{
    memcpy(ctx->u.chacha_key, key, sizeof(ctx->u.chacha_key));
    return 0;
}

static void cc_clear(rp_aead *ctx)
{
    OPENSSL_cleanse(ctx->u.chacha_key, sizeof(ctx->u.chacha_key));
}

static void mac_pad16(mac_state *m, size_t len)
{
    if (len % 16 != 0) mac_update(m, zeros, 16 - len % 16);
}

/*
 * §2.8 up to the ciphertext: the one-time Poly1305 key is the first half of
 * block 0 (§2.6), the stream then stands at block 1; MACs AD and its padding.
 */
static void cc_start(const rp_aead *ctx, rp_chacha20 *cs, mac_state *mac,
                     const uint8_t nonce[RP_AEAD_NONCE_LEN], const uint8_t *ad, size_t ad_len)
{
    uint8_t block0[64];
    rp_chacha20_init(cs, ctx->u.chacha_key, nonce, 0);
    rp_chacha20_stream(cs, block0, zeros, sizeof(block0));
    mac_init(mac, block0);
    OPENSSL_cleanse(block0, sizeof(block0));
    if (ad_len != 0) {
        mac_update(mac, ad, ad_len);
        mac_pad16(mac, ad_len);
    }
}

/* §2.8 after the ciphertext: its padding, then both lengths as 64-bit little-endian. */
static void cc_finish(mac_state *mac, size_t ad_len, size_t ct_len, uint8_t tag[16])
{
    uint8_t lens[16];
    for (int i = 0; i < 8; i++) {
        lens[i] = (uint8_t)((uint64_t)ad_len >> (8 * i));
        lens[8 + i] = (uint8_t)((uint64_t)ct_len >> (8 * i));
    }
    mac_pad16(mac, ct_len);
    mac_update(mac, lens, sizeof(lens));
    mac_finish(mac, tag);
}

/* The next chunk: up to CC_CHUNK bytes past the keystream already made, so bulk calls stay whole
 * KiBs. */
static size_t cc_chunk(const rp_chacha20 *cs, size_t left)
{
    size_t lim = rp_chacha20_buffered(cs) + CC_CHUNK;
    return left < lim ? left : lim;
}

static int cc_seal_iov(const rp_aead *ctx, uint8_t *out, const uint8_t nonce[RP_AEAD_NONCE_LEN],
                       rp_iov_cursor *in, size_t len, const uint8_t *ad, size_t ad_len)
{
    if ((uint64_t)len > CC_MAX_LEN) return RINGP2P_ECRYPTO;
    rp_chacha20 cs;
    mac_state mac;
    cc_start(ctx, &cs, &mac, nonce, ad, ad_len);
    int r = 0;
    for (size_t done = 0; done < len;) {
        size_t chunk = cc_chunk(&cs, len - done);
        for (size_t k = 0; k < chunk;) {
            if (in->n == 0) {
                r = RINGP2P_EINVAL;
                break;
            }
            size_t take = in->iov->len - in->off;
            if (take > chunk - k) take = chunk - k;
            if (take != 0)
                rp_chacha20_stream(&cs, out + done + k, (const uint8_t *)in->iov->base + in->off,
                                   take);
            k += take;
            in->off += take;
            if (in->off == in->iov->len) {
                in->iov++;
                in->n--;
                in->off = 0;
            }
        }
        if (r < 0) break;
        mac_update(&mac, out + done, chunk);
        done += chunk;
    }
    if (r == 0)
        cc_finish(&mac, ad_len, len, out + len);
    else
        OPENSSL_cleanse(&mac, sizeof(mac));
    rp_chacha20_wipe(&cs);
    return r;
}

static int cc_seal_batch(const rp_aead *ctx, rp_aead_job *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rp_aead_job *j = &jobs[i];
        rp_iov v = rp_iov_make(j->buf, j->len);
        rp_iov_cursor c = rp_iov_cursor_make(&v, 1);
        int r = cc_seal_iov(ctx, j->buf, j->nonce, &c, j->len, j->ad, j->ad_len);
        if (r < 0) return RINGP2P_ECRYPTO;
    }
    return 0;
}

static int cc_open(const rp_aead *ctx, uint8_t *buf, size_t len,
                   const uint8_t nonce[RP_AEAD_NONCE_LEN], const uint8_t *ad, size_t ad_len)
{
    if ((uint64_t)len > CC_MAX_LEN) return RINGP2P_EAUTH;
    rp_chacha20 cs;
    mac_state mac;
    cc_start(ctx, &cs, &mac, nonce, ad, ad_len);
    for (size_t done = 0; done < len;) {
        size_t chunk = cc_chunk(&cs, len - done);
        mac_update(&mac, buf + done, chunk);
        rp_chacha20_stream(&cs, buf + done, buf + done, chunk);
        done += chunk;
    }
    uint8_t tag[16];
    cc_finish(&mac, ad_len, len, tag);
    rp_chacha20_wipe(&cs);
    int ok = CRYPTO_memcmp(tag, buf + len, sizeof(tag)) == 0;
    OPENSSL_cleanse(tag, sizeof(tag));
    if (ok) return 0;
    /* Not authentic: release none of the unauthenticated plaintext. */
    OPENSSL_cleanse(buf, len);
    return RINGP2P_EAUTH;
}

const rp_aead_alg rp_aead_chacha20_poly1305_rp = {
    .name = "ChaChaPoly",
    .key_len = 32,
    .tag_len = RP_AEAD_TAG_LEN,
    .counter_be = false,
    .init = cc_init,
    .clear = cc_clear,
    .seal_batch = cc_seal_batch,
    .open = cc_open,
    .seal_iov = cc_seal_iov,
};

/* ---- ChaCha20-Poly1305, backend picked at init ------------------------------------------- */

/*
 * Reads env once into *choice (0 not yet read, 1 BoringSSL, 2 ours):
 * "boringssl" or "ringp2p" force a backend (for A/B measurements; ours only
 * where it can run), else ours when `ours_fast`.
 */
static bool pick_ours(atomic_int *choice, const char *env, bool ours_runs, bool ours_fast)
{
    int v = atomic_load_explicit(choice, memory_order_relaxed);
    if (v == 0) {
        const char *e = getenv(env);
        if (e != NULL && strcmp(e, "boringssl") == 0)
            v = 1;
        else if (e != NULL && strcmp(e, "ringp2p") == 0)
            v = ours_runs ? 2 : 1;
        else
            v = ours_fast ? 2 : 1;
        atomic_store_explicit(choice, v, memory_order_relaxed);
    }
    return v == 2;
}

static const rp_aead_alg *chacha_pick(void)
{
    static atomic_int choice;
    bool simd = rp_chacha20_simd_available() && rp_poly1305_simd_available();
    return pick_ours(&choice, "RINGP2P_CHACHA", true, simd) ? &rp_aead_chacha20_poly1305_rp
                                                            : &rp_aead_chacha20_poly1305_evp;
}

static int chacha_init(rp_aead *ctx, const uint8_t *key)
{
    ctx->impl = chacha_pick();
    return ctx->impl->init(ctx, key);
}

static void impl_clear(rp_aead *ctx)
{
    ctx->impl->clear(ctx);
}

static int impl_seal_batch(const rp_aead *ctx, rp_aead_job *jobs, size_t n)
{
    return ctx->impl->seal_batch(ctx, jobs, n);
}

static int impl_open(const rp_aead *ctx, uint8_t *buf, size_t len,
                     const uint8_t nonce[RP_AEAD_NONCE_LEN], const uint8_t *ad, size_t ad_len)
{
    return ctx->impl->open(ctx, buf, len, nonce, ad, ad_len);
}

/* seal_iov stays NULL here: the rp_aead_seal* wrappers look it up on ctx->impl. */
const rp_aead_alg rp_aead_chacha20_poly1305 = {
    .name = "ChaChaPoly",
    .key_len = 32,
    .tag_len = RP_AEAD_TAG_LEN,
    .counter_be = false,
    .init = chacha_init,
    .clear = impl_clear,
    .seal_batch = impl_seal_batch,
    .open = impl_open,
};

/* ---- AES-256-GCM: ours (crypto/aesgcm.c, VAES + VPCLMULQDQ) or BoringSSL's ------------- */

const rp_aead_alg rp_aead_aes_256_gcm_evp = {
    .name = "AESGCM",
    .key_len = 32,
    .tag_len = RP_AEAD_TAG_LEN,
    .counter_be = true,
    .init = aes256gcm_init,
    .clear = evp_clear,
    .seal_batch = evp_seal_batch,
    .open = evp_open,
};

static int gcm_init(rp_aead *ctx, const uint8_t *key)
{
    return rp_aesgcm_init(&ctx->u.gcm, key, 32) == 0 ? 0 : RINGP2P_ECRYPTO;
}

static void gcm_clear(rp_aead *ctx)
{
    rp_aesgcm_clear(&ctx->u.gcm);
}

static int gcm_seal_batch(const rp_aead *ctx, rp_aead_job *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rp_aead_job *j = &jobs[i];
        if (rp_aesgcm_seal(&ctx->u.gcm, j->buf, j->nonce, j->buf, j->len, j->ad, j->ad_len,
                           j->buf + j->len) != 0)
            return RINGP2P_ECRYPTO;
    }
    return 0;
}

static int gcm_open(const rp_aead *ctx, uint8_t *buf, size_t len,
                    const uint8_t nonce[RP_AEAD_NONCE_LEN], const uint8_t *ad, size_t ad_len)
{
    return rp_aesgcm_open(&ctx->u.gcm, buf, nonce, buf, len, ad, ad_len, buf + len) == 0
               ? 0
               : RINGP2P_EAUTH;
}

const rp_aead_alg rp_aead_aes_256_gcm_rp = {
    .name = "AESGCM",
    .key_len = 32,
    .tag_len = RP_AEAD_TAG_LEN,
    .counter_be = true,
    .init = gcm_init,
    .clear = gcm_clear,
    .seal_batch = gcm_seal_batch,
    .open = gcm_open,
};

bool rp_aead_aes_gcm_ours(void)
{
    static atomic_int choice;
    bool simd = rp_aesgcm_simd_available();
    return pick_ours(&choice, "RINGP2P_AESGCM", simd, simd);
}

static int gcm_pick_init(rp_aead *ctx, const uint8_t *key)
{
    ctx->impl = rp_aead_aes_gcm_ours() ? &rp_aead_aes_256_gcm_rp : &rp_aead_aes_256_gcm_evp;
    return ctx->impl->init(ctx, key);
}

const rp_aead_alg rp_aead_aes_256_gcm = {
    .name = "AESGCM",
    .key_len = 32,
    .tag_len = RP_AEAD_TAG_LEN,
    .counter_be = true,
    .init = gcm_pick_init,
    .clear = impl_clear,
    .seal_batch = impl_seal_batch,
    .open = impl_open,
};

int rp_aead_init(rp_aead *ctx, const rp_aead_alg *alg, const uint8_t *key)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->impl = alg; /* init may pick another backend */
    int r = alg->init(ctx, key);
    if (r < 0) {
        OPENSSL_cleanse(ctx, sizeof(*ctx));
        return r;
    }
    ctx->alg = alg;
    return 0;
}

void rp_aead_clear(rp_aead *ctx)
{
    if (ctx->alg != NULL) ctx->alg->clear(ctx);
    OPENSSL_cleanse(ctx, sizeof(*ctx));
}

void rp_aead_counter_nonce(const rp_aead_alg *alg, uint8_t nonce[RP_AEAD_NONCE_LEN], uint64_t n)
{
    memset(nonce, 0, 4);
    for (int i = 0; i < 8; i++) {
        uint8_t b = (uint8_t)(n >> (8 * i));
        nonce[alg->counter_be ? 11 - i : 4 + i] = b;
    }
}

int rp_aead_seal(const rp_aead *ctx, uint8_t *out, const uint8_t nonce[RP_AEAD_NONCE_LEN],
                 const uint8_t *in, size_t len, const uint8_t *ad, size_t ad_len)
{
    if (ctx->impl->seal_iov != NULL) {
        rp_iov v = rp_iov_make(in, len);
        rp_iov_cursor c = rp_iov_cursor_make(&v, 1);
        return ctx->impl->seal_iov(ctx, out, nonce, &c, len, ad, ad_len);
    }
    if (in != out && len != 0) memcpy(out, in, len);
    rp_aead_job j = { .buf = out, .len = len, .ad = ad, .ad_len = ad_len };
    memcpy(j.nonce, nonce, RP_AEAD_NONCE_LEN);
    return ctx->impl->seal_batch(ctx, &j, 1);
}

int rp_aead_seal_iov(const rp_aead *ctx, uint8_t *out, const uint8_t nonce[RP_AEAD_NONCE_LEN],
                     const rp_iov *in, size_t n, const uint8_t *ad, size_t ad_len)
{
    rp_iov_cursor c = rp_iov_cursor_make(in, n);
    return rp_aead_seal_cursor(ctx, out, nonce, &c, rp_iov_total(in, n), ad, ad_len);
}

int rp_aead_seal_cursor(const rp_aead *ctx, uint8_t *out, const uint8_t nonce[RP_AEAD_NONCE_LEN],
                        rp_iov_cursor *in, size_t len, const uint8_t *ad, size_t ad_len)
{
    if (ctx->impl->seal_iov != NULL)
        return ctx->impl->seal_iov(ctx, out, nonce, in, len, ad, ad_len);
    if (rp_iov_cursor_copy(in, out, len) != len) return RINGP2P_EINVAL;
    rp_aead_job j = { .buf = out, .len = len, .ad = ad, .ad_len = ad_len };
    memcpy(j.nonce, nonce, RP_AEAD_NONCE_LEN);
    return ctx->impl->seal_batch(ctx, &j, 1);
}

int rp_aead_seal_batch(const rp_aead *ctx, rp_aead_job *jobs, size_t n)
{
    return ctx->impl->seal_batch(ctx, jobs, n);
}

ssize_t rp_aead_open(const rp_aead *ctx, uint8_t *buf, size_t len,
                     const uint8_t nonce[RP_AEAD_NONCE_LEN], const uint8_t *ad, size_t ad_len)
{
    if (len < ctx->impl->tag_len) return RINGP2P_ETRUNCATED;
    size_t pt = len - ctx->impl->tag_len;
    int r = ctx->impl->open(ctx, buf, pt, nonce, ad, ad_len);
    return r < 0 ? r : (ssize_t)pt;
}

size_t rp_iov_cursor_copy(rp_iov_cursor *c, uint8_t *dst, size_t len)
{
    size_t done = 0;
    while (done < len && c->n > 0) {
        size_t avail = c->iov->len - c->off;
        size_t take = avail < len - done ? avail : len - done;
        if (take != 0) memcpy(dst + done, (const uint8_t *)c->iov->base + c->off, take);
        done += take;
        c->off += take;
        if (c->off == c->iov->len) {
            c->iov++;
            c->n--;
            c->off = 0;
        }
    }
    return done;
}
