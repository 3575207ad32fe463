/*
 * AEAD backends on BoringSSL's EVP_AEAD. BoringSSL seals and opens in place
 * when input and output are the same pointer, and its ChaCha20-Poly1305 is one
 * fused pass (encrypt and MAC together), so "copy the plaintext into the
 * record, then seal in place" costs one memcpy over a separate-buffer seal.
 */
#include "crypto/aead.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/mem.h>

#include "base/error.h"

static int evp_init(rp_aead *ctx, const EVP_AEAD *aead, const uint8_t *key)
{
    if (!EVP_AEAD_CTX_init(&ctx->u.evp, aead, key, EVP_AEAD_key_length(aead), RP_AEAD_TAG_LEN,
                           NULL)) {
        ERR_clear_error();
        return RINGP2P_ECRYPTO;
    }
    return 0;
}

static int chacha_init(rp_aead *ctx, const uint8_t *key)
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

const rp_aead_alg rp_aead_chacha20_poly1305 = {
    .name = "ChaChaPoly",
    .key_len = 32,
    .tag_len = RP_AEAD_TAG_LEN,
    .counter_be = false,
    .init = chacha_init,
    .clear = evp_clear,
    .seal_batch = evp_seal_batch,
    .open = evp_open,
};

const rp_aead_alg rp_aead_aes_256_gcm = {
    .name = "AESGCM",
    .key_len = 32,
    .tag_len = RP_AEAD_TAG_LEN,
    .counter_be = true,
    .init = aes256gcm_init,
    .clear = evp_clear,
    .seal_batch = evp_seal_batch,
    .open = evp_open,
};

int rp_aead_init(rp_aead *ctx, const rp_aead_alg *alg, const uint8_t *key)
{
    memset(ctx, 0, sizeof(*ctx));
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
    if (in != out && len != 0) memcpy(out, in, len);
    rp_aead_job j = { .buf = out, .len = len, .ad = ad, .ad_len = ad_len };
    memcpy(j.nonce, nonce, RP_AEAD_NONCE_LEN);
    return ctx->alg->seal_batch(ctx, &j, 1);
}

int rp_aead_seal_iov(const rp_aead *ctx, uint8_t *out, const uint8_t nonce[RP_AEAD_NONCE_LEN],
                     const rp_iov *in, size_t n, const uint8_t *ad, size_t ad_len)
{
    rp_iov_cursor c = rp_iov_cursor_make(in, n);
    size_t len = rp_iov_cursor_copy(&c, out, SIZE_MAX);
    rp_aead_job j = { .buf = out, .len = len, .ad = ad, .ad_len = ad_len };
    memcpy(j.nonce, nonce, RP_AEAD_NONCE_LEN);
    return ctx->alg->seal_batch(ctx, &j, 1);
}

int rp_aead_seal_batch(const rp_aead *ctx, rp_aead_job *jobs, size_t n)
{
    return ctx->alg->seal_batch(ctx, jobs, n);
}

ssize_t rp_aead_open(const rp_aead *ctx, uint8_t *buf, size_t len,
                     const uint8_t nonce[RP_AEAD_NONCE_LEN], const uint8_t *ad, size_t ad_len)
{
    if (len < ctx->alg->tag_len) return RINGP2P_ETRUNCATED;
    size_t pt = len - ctx->alg->tag_len;
    int r = ctx->alg->open(ctx, buf, pt, nonce, ad, ad_len);
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
