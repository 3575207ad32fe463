/*
 * CID (multiformats/cid): v1 = <varint 0x01><varint codec><multihash>, and
 * v0 = a bare sha2-256 multihash. ringp2p uses v1 with the libp2p-key codec
 * (0x72) for text peer IDs (libp2p RFC 0001).
 */
#ifndef RP_MULTIFORMATS_CID_H
#define RP_MULTIFORMATS_CID_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "multiformats/multibase.h"
#include "multiformats/multihash.h"

#define RP_CODEC_LIBP2P_KEY 0x72
#define RP_CODEC_DAG_PB     0x70

typedef struct rp_cid {
    unsigned version; /* 0 or 1 */
    uint64_t codec;   /* dag-pb for v0 */
    rp_multihash mh;  /* view into the decoded bytes */
    const uint8_t *mh_bytes;
    size_t mh_len;
} rp_cid;

/* Parses binary CID bytes (exactly one CID, nothing after). Views point into buf. */
int rp_cid_parse(const uint8_t *buf, size_t len, rp_cid *out, ringp2p_errinfo *ei);

/* Writes binary CIDv1 <0x01><codec><multihash bytes>. */
ssize_t rp_cid_v1_encode(uint64_t codec, const uint8_t *mh, size_t mh_len, uint8_t *dst,
                         size_t cap);

/* Writes CIDv1 text in `base` with its multibase prefix, NUL-terminated. */
ssize_t rp_cid_v1_to_text(rp_base base, uint64_t codec, const uint8_t *mh, size_t mh_len, char *dst,
                          size_t cap);

/*
 * Parses CID text: a multibase-prefixed CIDv1 or a base58btc CIDv0 ("Qm...").
 * The binary CID is written to `bin` (cap bytes) and `out` views into it.
 */
int rp_cid_from_text(const char *text, size_t len, uint8_t *bin, size_t cap, rp_cid *out,
                     ringp2p_errinfo *ei);

#endif
