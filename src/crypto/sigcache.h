/*
 * A cache of signatures that verified, shared by a node's sessions.
 *
 * A peer signs the same bytes again and again: its Noise static key
 * (noise.c, when it keeps one key for all its sessions, as ringp2p,
 * rust-libp2p and js-libp2p do) and its signed peer record (identify,
 * RFC 0003, resealed only when its addresses change). Each connection would
 * verify those signatures anew; with this cache a peer costs one verification
 * per distinct signature.
 *
 * An entry is the SHA-256 digest of the exact (key type, key bytes, signed
 * message, signature) that verified. Verification is a pure function of
 * those bytes, so a hit is as good as verifying; any other byte is another
 * digest and runs the real verification. Purposes cannot mix: the signed
 * message carries its own domain (Noise's "noise-libp2p-static-key:" prefix,
 * an envelope's domain in RFC 0002's unsigned buffer). Failures are never
 * stored. A fixed number of entries (RP_SIGCACHE_SLOTS, 32 bytes each), in
 * two-way sets, the older of a set replaced; internally locked, so sessions on
 * any thread may share one.
 */
#ifndef RP_CRYPTO_SIGCACHE_H
#define RP_CRYPTO_SIGCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringp2p/key.h"

typedef struct rp_sigcache rp_sigcache;

/*
 * Entries of an rp_sigcache (16 KiB). A peer takes one per signed thing it
 * sends: its Noise static key or TLS certificate, and its peer record.
 */
#define RP_SIGCACHE_SLOTS 512
/* An entry: a SHA-256 digest. */
#define RP_SIGCACHE_DIGEST_LEN 32

/* A new empty cache (the caller's: rp_sigcache_free), or NULL without memory. */
rp_sigcache *rp_sigcache_new(void);

/* Frees (NULL is fine). */
void rp_sigcache_free(rp_sigcache *c);

/*
 * ringp2p_pubkey_verify(key, msg, len, sig, siglen) through the cache: 0 if
 * the same bytes verified before (a hit) or verify now (then remembered),
 * else ringp2p_pubkey_verify's error. c NULL always verifies. Inputs are read,
 * not retained.
 */
int rp_sigcache_verify(rp_sigcache *c, const ringp2p_pubkey *key, const uint8_t *msg, size_t len,
                       const uint8_t *sig, size_t siglen);

/*
 * For a check of more than one signature (a TLS certificate: its
 * self-signature and the identity key's): whether the caller's digest d is
 * stored, and storing it once the whole check passed. d must be the SHA-256 of
 * bytes that fix the check's result and cannot be mistaken for another
 * user's: rp_sigcache_verify's start with a zero byte (the key type as 8
 * bytes), a DER certificate with 0x30.
 */
bool rp_sigcache_has(rp_sigcache *c, const uint8_t d[RP_SIGCACHE_DIGEST_LEN]);
void rp_sigcache_put(rp_sigcache *c, const uint8_t d[RP_SIGCACHE_DIGEST_LEN]);

/* Verifications the cache spared (hits) and digests it stored (misses that verified). */
void rp_sigcache_stats(rp_sigcache *c, uint64_t *hits, uint64_t *inserted);

#endif
