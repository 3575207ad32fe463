/*
 * Multihash (multiformats/multihash): <varint code><varint length><digest>.
 * ringp2p computes identity and sha2-256; decoding accepts any code with a
 * digest length that matches the bytes present.
 */
#ifndef RP_MULTIFORMATS_MULTIHASH_H
#define RP_MULTIFORMATS_MULTIHASH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ringp2p/error.h"

#define RP_MH_IDENTITY     0x00
#define RP_MH_SHA2_256     0x12
#define RP_MH_SHA2_256_LEN 32
/* Limit on digests we accept from the wire (sha2-512 is 64; identity keys are smaller). */
#define RP_MH_DIGEST_MAX 128

/* A decoded multihash: a view into the input, valid while the input is. */
typedef struct rp_multihash {
    uint64_t code;
    const uint8_t *digest;
    size_t len;
} rp_multihash;

/*
 * Decodes one multihash at *src and advances *src past it. Returns 0,
 * RINGP2P_ETRUNCATED, RINGP2P_EVARINT or RINGP2P_EMULTIHASH (digest longer
 * than RP_MH_DIGEST_MAX, or sha2-256 with a length other than 32).
 */
int rp_multihash_decode(const uint8_t **src, const uint8_t *end, rp_multihash *out,
                        ringp2p_errinfo *ei);

/* Decodes a buffer that must hold exactly one multihash and nothing else. */
int rp_multihash_parse(const uint8_t *buf, size_t len, rp_multihash *out, ringp2p_errinfo *ei);

/* Writes <code><len><digest>; returns the byte count or RINGP2P_ENOBUF. */
ssize_t rp_multihash_encode(uint64_t code, const uint8_t *digest, size_t len, uint8_t *dst,
                            size_t cap);

/* Writes the sha2-256 multihash of data (34 bytes). */
ssize_t rp_multihash_sha256(const uint8_t *data, size_t len, uint8_t *dst, size_t cap);

#endif
