/*
 * The verified-signature cache (crypto/sigcache.h): a hit only for the exact
 * bytes that verified, every other byte verifies for real; failures are never
 * stored; a bounded number of entries, the older of a set replaced; two
 * threads sharing one cache get correct answers.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <string.h>

#include "crypto/sigcache.h"
#include "key_vectors.h"

#define MSG "a signed peer record, or a Noise static key, stands here"

static void stats(rp_sigcache *c, uint64_t *hits, uint64_t *inserted)
{
    rp_sigcache_stats(c, hits, inserted);
}

/* Verifies through c and checks the result and that the counters moved as said. */
static void expect(rp_sigcache *c, const ringp2p_pubkey *key, const uint8_t *msg, size_t len,
                   const uint8_t *sig, size_t siglen, int want, uint64_t d_hits,
                   uint64_t d_inserted, const char *what, size_t at)
{
    uint64_t h0, i0, h1, i1;
    stats(c, &h0, &i0);
    int r = rp_sigcache_verify(c, key, msg, len, sig, siglen);
    stats(c, &h1, &i1);
    cr_assert_eq(r, want, "%s (byte %zu): got %d", what, at, r);
    cr_assert_eq(h1 - h0, d_hits, "%s (byte %zu): %llu hits", what, at,
                 (unsigned long long)(h1 - h0));
    cr_assert_eq(i1 - i0, d_inserted, "%s (byte %zu): %llu inserted", what, at,
                 (unsigned long long)(i1 - i0));
}

Test(sigcache, a_hit_needs_the_same_bytes)
{
    ringp2p_privkey *priv = load_key(JS_ED_VERIFY_PRIVATEKEY);
    const ringp2p_pubkey *key = ringp2p_privkey_public(priv);
    uint8_t msg[sizeof(MSG) - 1], sig[RINGP2P_SIGNATURE_MAX];
    memcpy(msg, MSG, sizeof(msg));
    ssize_t sl = ringp2p_privkey_sign(priv, msg, sizeof(msg), sig, sizeof(sig));
    cr_assert_gt(sl, 0);
    size_t siglen = (size_t)sl;
    rp_sigcache *c = rp_sigcache_new();
    cr_assert_not_null(c);

    expect(c, key, msg, sizeof(msg), sig, siglen, 0, 0, 1, "first", 0);
    expect(c, key, msg, sizeof(msg), sig, siglen, 0, 1, 0, "again", 0);

    /* Every byte of the message and of the signature: a real verification, which fails. */
    for (size_t i = 0; i < sizeof(msg); i++) {
        msg[i] ^= 0x01;
        expect(c, key, msg, sizeof(msg), sig, siglen, RINGP2P_ESIGNATURE, 0, 0, "message", i);
        msg[i] ^= 0x01;
    }
    for (size_t i = 0; i < siglen; i++) {
        sig[i] ^= 0x01;
        expect(c, key, msg, sizeof(msg), sig, siglen, RINGP2P_ESIGNATURE, 0, 0, "signature", i);
        sig[i] ^= 0x01;
    }
    /* A prefix of the message or signature, and a message one byte longer. */
    expect(c, key, msg, sizeof(msg) - 1, sig, siglen, RINGP2P_ESIGNATURE, 0, 0, "short msg", 0);
    expect(c, key, msg, sizeof(msg), sig, siglen - 1, RINGP2P_ESIGNATURE, 0, 0, "short sig", 0);
    uint8_t longer[sizeof(msg) + 1];
    memcpy(longer, msg, sizeof(msg));
    longer[sizeof(msg)] = 0;
    expect(c, key, longer, sizeof(longer), sig, siglen, RINGP2P_ESIGNATURE, 0, 0, "long msg", 0);

    /* Every byte of the key: another key (or none that decodes), never the cached entry. */
    uint8_t pb[128];
    ssize_t pbl = ringp2p_pubkey_to_protobuf(key, pb, sizeof(pb));
    cr_assert_eq(pbl, 36);
    size_t decoded = 0;
    for (size_t i = 4; i < (size_t)pbl; i++) { /* the 32 key bytes after the 4-byte header */
        pb[i] ^= 0x01;
        ringp2p_pubkey *other = NULL;
        if (ringp2p_pubkey_from_protobuf(pb, (size_t)pbl, &other, NULL) == 0) {
            decoded++;
            expect(c, other, msg, sizeof(msg), sig, siglen, RINGP2P_ESIGNATURE, 0, 0, "key", i);
            ringp2p_pubkey_free(other);
        }
        pb[i] ^= 0x01;
    }
    cr_assert_gt(decoded, 16, "most flipped Ed25519 keys decode: %zu", decoded);
    ringp2p_privkey *other_priv = load_key(GO_2_PRIV); /* secp256k1 */
    expect(c, ringp2p_privkey_public(other_priv), msg, sizeof(msg), sig, siglen, RINGP2P_ESIGNATURE,
           0, 0, "another key type", 0);

    /* Failures were not stored: the same bad signature fails again, for real. */
    sig[0] ^= 0x80;
    expect(c, key, msg, sizeof(msg), sig, siglen, RINGP2P_ESIGNATURE, 0, 0, "bad", 0);
    expect(c, key, msg, sizeof(msg), sig, siglen, RINGP2P_ESIGNATURE, 0, 0, "bad again", 0);
    sig[0] ^= 0x80;
    expect(c, key, msg, sizeof(msg), sig, siglen, 0, 1, 0, "the good one still", 0);

    /* No cache: verifies, and refuses as well. */
    cr_assert_eq(rp_sigcache_verify(NULL, key, msg, sizeof(msg), sig, siglen), 0);
    sig[1] ^= 0x01;
    cr_assert_eq(rp_sigcache_verify(NULL, key, msg, sizeof(msg), sig, siglen), RINGP2P_ESIGNATURE);
    rp_sigcache_free(c);
    rp_sigcache_free(NULL);
    ringp2p_privkey_free(other_priv);
    ringp2p_privkey_free(priv);
}

/* Each key type's signature is remembered under its own key; one key's never hits for another. */
Test(sigcache, every_key_type)
{
    static const char *const privs[] = { GO_0_PRIV, JS_ED_VERIFY_PRIVATEKEY, GO_2_PRIV, GO_3_PRIV };
    enum { N = sizeof(privs) / sizeof(privs[0]) };
    ringp2p_privkey *k[N];
    uint8_t sig[N][RINGP2P_SIGNATURE_MAX];
    size_t siglen[N];
    rp_sigcache *c = rp_sigcache_new();
    for (size_t i = 0; i < N; i++) {
        k[i] = load_key(privs[i]);
        ssize_t sl =
            ringp2p_privkey_sign(k[i], (const uint8_t *)MSG, strlen(MSG), sig[i], sizeof(sig[i]));
        cr_assert_gt(sl, 0);
        siglen[i] = (size_t)sl;
        expect(c, ringp2p_privkey_public(k[i]), (const uint8_t *)MSG, strlen(MSG), sig[i],
               siglen[i], 0, 0, 1, "first", i);
        expect(c, ringp2p_privkey_public(k[i]), (const uint8_t *)MSG, strlen(MSG), sig[i],
               siglen[i], 0, 1, 0, "again", i);
    }
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < N; j++)
            if (i != j)
                expect(c, ringp2p_privkey_public(k[j]), (const uint8_t *)MSG, strlen(MSG), sig[i],
                       siglen[i], RINGP2P_ESIGNATURE, 0, 0, "another key's signature", i * N + j);
    for (size_t i = 0; i < N; i++) ringp2p_privkey_free(k[i]);
    rp_sigcache_free(c);
}

/* A digest naming set `set` (the sets are the first two bytes, mod the set count) and `id`. */
static void digest_of(uint8_t d[RP_SIGCACHE_DIGEST_LEN], uint32_t set, uint32_t id)
{
    memset(d, 0xa5, RP_SIGCACHE_DIGEST_LEN);
    d[0] = (uint8_t)set;
    d[1] = (uint8_t)(set >> 8);
    memcpy(d + 2, &id, sizeof(id));
}

Test(sigcache, bounded_and_the_older_of_a_set_goes)
{
    enum { SETS = RP_SIGCACHE_SLOTS / 2, ROUNDS = 3 };
    rp_sigcache *c = rp_sigcache_new();
    uint8_t d[RP_SIGCACHE_DIGEST_LEN];
    /* ROUNDS digests for every slot: only the last two of each set stay. */
    for (uint32_t i = 0; i < ROUNDS * RP_SIGCACHE_SLOTS; i++) {
        digest_of(d, i % SETS, i);
        rp_sigcache_put(c, d);
    }
    uint64_t hits, inserted;
    stats(c, &hits, &inserted);
    cr_assert_eq(inserted, ROUNDS * RP_SIGCACHE_SLOTS);
    size_t present = 0;
    for (uint32_t i = 0; i < ROUNDS * RP_SIGCACHE_SLOTS; i++) {
        digest_of(d, i % SETS, i);
        bool in = rp_sigcache_has(c, d);
        present += in;
        cr_assert_eq(in, i >= (ROUNDS - 1) * RP_SIGCACHE_SLOTS, "digest %u", i);
    }
    cr_assert_eq(present, RP_SIGCACHE_SLOTS);

    /* In one set: A, B, a hit on A, then C replaces B (used less recently), not A. */
    uint8_t a[RP_SIGCACHE_DIGEST_LEN], b[RP_SIGCACHE_DIGEST_LEN], cc[RP_SIGCACHE_DIGEST_LEN];
    digest_of(a, 7, 1000001);
    digest_of(b, 7, 1000002);
    digest_of(cc, 7, 1000003);
    rp_sigcache_put(c, a);
    rp_sigcache_put(c, b);
    cr_assert(rp_sigcache_has(c, a));
    rp_sigcache_put(c, cc);
    cr_assert(rp_sigcache_has(c, a));
    cr_assert(!rp_sigcache_has(c, b));
    cr_assert(rp_sigcache_has(c, cc));
    /* Storing what is there already changes nothing. */
    stats(c, &hits, &inserted);
    rp_sigcache_put(c, cc);
    uint64_t h2, i2;
    stats(c, &h2, &i2);
    cr_assert_eq(i2, inserted);
    cr_assert(rp_sigcache_has(c, a));
    rp_sigcache_free(c);
}

/* ---- two threads ----------------------------------------------------------------------------- */

#define N_MSG    8
#define N_ROUNDS 60

struct shared {
    rp_sigcache *c;
    const ringp2p_pubkey *key;
    uint8_t msg[N_MSG][16];
    uint8_t sig[N_MSG][RINGP2P_SIGNATURE_MAX];
    uint8_t bad[N_MSG][RINGP2P_SIGNATURE_MAX];
    size_t siglen[N_MSG];
};

struct worker {
    const struct shared *sh;
    unsigned start; /* the threads walk the messages in different orders */
    size_t wrong;   /* answers that were not what a real verification says */
};

static void *work(void *arg)
{
    struct worker *w = arg;
    const struct shared *sh = w->sh;
    for (unsigned r = 0; r < N_ROUNDS; r++)
        for (unsigned k = 0; k < N_MSG; k++) {
            unsigned i = (k + w->start + r) % N_MSG;
            if (rp_sigcache_verify(sh->c, sh->key, sh->msg[i], sizeof(sh->msg[i]), sh->sig[i],
                                   sh->siglen[i]) != 0)
                w->wrong++;
            if (rp_sigcache_verify(sh->c, sh->key, sh->msg[i], sizeof(sh->msg[i]), sh->bad[i],
                                   sh->siglen[i]) != RINGP2P_ESIGNATURE)
                w->wrong++;
        }
    return NULL;
}

Test(sigcache, two_threads_share_one)
{
    ringp2p_privkey *priv = load_key(JS_ED_VERIFY_PRIVATEKEY);
    static struct shared sh;
    sh.c = rp_sigcache_new();
    sh.key = ringp2p_privkey_public(priv);
    for (int i = 0; i < N_MSG; i++) {
        memset(sh.msg[i], 'a' + i, sizeof(sh.msg[i]));
        ssize_t sl =
            ringp2p_privkey_sign(priv, sh.msg[i], sizeof(sh.msg[i]), sh.sig[i], sizeof(sh.sig[i]));
        cr_assert_gt(sl, 0);
        sh.siglen[i] = (size_t)sl;
        memcpy(sh.bad[i], sh.sig[i], (size_t)sl);
        sh.bad[i][i] ^= 0x04;
    }
    struct worker w[2] = { { &sh, 0, 0 }, { &sh, N_MSG / 2, 0 } };
    pthread_t t[2];
    for (int i = 0; i < 2; i++) cr_assert_eq(pthread_create(&t[i], NULL, work, &w[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    cr_assert_eq(w[0].wrong + w[1].wrong, 0, "%zu + %zu wrong answers", w[0].wrong, w[1].wrong);
    uint64_t hits, inserted;
    stats(sh.c, &hits, &inserted);
    /* Each good signature stored once; each thread misses it at most once (before it is in). */
    cr_assert_eq(inserted, N_MSG);
    uint64_t good = 2 * N_ROUNDS * N_MSG;
    cr_assert(hits >= good - 2 * N_MSG && hits <= good - N_MSG, "%llu hits of %llu",
              (unsigned long long)hits, (unsigned long long)good);
    rp_sigcache_free(sh.c);
    ringp2p_privkey_free(priv);
}
