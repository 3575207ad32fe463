#include "crypto/sigcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "crypto/key.h"

#define WAYS 2
#define SETS (RP_SIGCACHE_SLOTS / WAYS)
_Static_assert(RP_SIGCACHE_DIGEST_LEN == SHA256_DIGEST_LENGTH, "entries are SHA-256 digests");
_Static_assert(WAYS == 2, "older[] and its 1 - w name one of two ways");

struct rp_sigcache {
    pthread_mutex_t mu;
    uint64_t hits, inserted;
    uint8_t older[SETS];                            /* per set: the way replaced next */
    uint8_t slot[SETS][WAYS][SHA256_DIGEST_LENGTH]; /* all zeros: empty */
};

rp_sigcache *rp_sigcache_new(void)
{
    rp_sigcache *c = calloc(1, sizeof(*c));
    if (c != NULL && pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        c = NULL;
    }
    return c;
}

void rp_sigcache_free(rp_sigcache *c)
{
    if (c == NULL) return;
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void rp_sigcache_stats(rp_sigcache *c, uint64_t *hits, uint64_t *inserted)
{
    pthread_mutex_lock(&c->mu);
    *hits = c->hits;
    *inserted = c->inserted;
    pthread_mutex_unlock(&c->mu);
}

static void put_len(SHA256_CTX *sha, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (56 - 8 * i));
    SHA256_Update(sha, b, sizeof(b));
}

/* Each field's length before its bytes, so no two splits of the same bytes collide. */
static void digest(const ringp2p_pubkey *key, const uint8_t *msg, size_t len, const uint8_t *sig,
                   size_t siglen, uint8_t out[SHA256_DIGEST_LENGTH])
{
    SHA256_CTX sha;
    SHA256_Init(&sha);
    put_len(&sha, (uint64_t)key->ops->type);
    put_len(&sha, key->raw_len);
    SHA256_Update(&sha, key->raw, key->raw_len);
    put_len(&sha, len);
    SHA256_Update(&sha, msg, len);
    put_len(&sha, siglen);
    SHA256_Update(&sha, sig, siglen);
    SHA256_Final(out, &sha);
}

static size_t set_of(const uint8_t d[SHA256_DIGEST_LENGTH])
{
    return ((size_t)d[0] | (size_t)d[1] << 8) % SETS;
}

/* Called with c->mu held: the way holding d, or -1. */
static int find(rp_sigcache *c, size_t set, const uint8_t d[SHA256_DIGEST_LENGTH])
{
    for (int w = 0; w < WAYS; w++)
        if (memcmp(c->slot[set][w], d, SHA256_DIGEST_LENGTH) == 0) return w;
    return -1;
}

bool rp_sigcache_has(rp_sigcache *c, const uint8_t d[RP_SIGCACHE_DIGEST_LEN])
{
    size_t set = set_of(d);
    pthread_mutex_lock(&c->mu);
    int w = find(c, set, d);
    if (w >= 0) {
        c->hits++;
        c->older[set] = (uint8_t)(1 - w); /* the other way was used less recently */
    }
    pthread_mutex_unlock(&c->mu);
    return w >= 0;
}

void rp_sigcache_put(rp_sigcache *c, const uint8_t d[RP_SIGCACHE_DIGEST_LEN])
{
    size_t set = set_of(d);
    pthread_mutex_lock(&c->mu);
    if (find(c, set, d) < 0) { /* another thread may have verified the same bytes meanwhile */
        int w = c->older[set];
        memcpy(c->slot[set][w], d, SHA256_DIGEST_LENGTH);
        c->older[set] = (uint8_t)(1 - w);
        c->inserted++;
    }
    pthread_mutex_unlock(&c->mu);
}

int rp_sigcache_verify(rp_sigcache *c, const ringp2p_pubkey *key, const uint8_t *msg, size_t len,
                       const uint8_t *sig, size_t siglen)
{
    if (c == NULL) return ringp2p_pubkey_verify(key, msg, len, sig, siglen);
    uint8_t d[SHA256_DIGEST_LENGTH];
    digest(key, msg, len, sig, siglen, d);
    if (rp_sigcache_has(c, d)) return 0;
    int r = ringp2p_pubkey_verify(key, msg, len, sig, siglen);
    if (r == 0) rp_sigcache_put(c, d);
    return r;
}
