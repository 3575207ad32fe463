/*
 * Signed envelopes (libp2p specs, RFC/0002-signed-envelopes.md).
 *
 * An envelope carries a payload, a payload type, the signer's public key and
 * a signature over the "unsigned" buffer of RFC 0002 "Signature Production":
 *
 *     uvarint(len(domain)) domain uvarint(len(type)) type uvarint(len(payload)) payload
 *
 * The domain is never on the wire; the sealer and the opener must agree on
 * it, so a signature made for one purpose (domain) never verifies for
 * another. Everything here is sans-IO: decoders move a cursor and return
 * views into the caller's bytes, encoders write into caller buffers.
 *
 * Wire form (the RFC's protobuf, proto3): public_key = 1 (a PublicKey message
 * of peer-ids.md), payload_type = 2, payload = 3, signature = 5. We write the
 * fields in number order and omit empty ones, as go-libp2p's proto.Marshal
 * does, so an envelope we seal is byte for byte the one go or js would make
 * from the same key and payload (Ed25519 signatures are deterministic).
 *
 * Decoding is stricter than protobuf where a lax reading could let two
 * implementations see different envelopes: a known field given twice is
 * refused (go would merge two public_key messages), known fields must have
 * their wire type; unknown fields are skipped as protobuf says.
 *
 * The second half of this header is the small protobuf wire reader/writer the
 * record and identify modules share (see "Protobuf wire helpers").
 */
#ifndef RP_CRYPTO_ENVELOPE_H
#define RP_CRYPTO_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/bytes.h"
#include "base/pb.h"
#include "crypto/sigcache.h"
#include "ringp2p/error.h"
#include "ringp2p/key.h"

/*
 * Largest envelope we decode or write. RFC 0002 sets none. Envelopes reach us
 * inside identify messages, which go-libp2p and js-libp2p cap at 8 KiB
 * (identify signedIDSize, MAX_IDENTIFY_MESSAGE_SIZE), so nothing larger could
 * come from them; it also bounds the signing buffer.
 */
#define RP_ENVELOPE_MAX 8192
/* Longest domain string (RFC 0002 "Domain Separation": "fairly short"); ours are ~20 bytes. */
#define RP_ENVELOPE_DOMAIN_MAX 255
/*
 * Longest payload_type (RFC 0002 "Payload Type Information": a multicodec,
 * optionally followed by a path); the peer record's is 2 bytes.
 */
#define RP_ENVELOPE_PAYLOAD_TYPE_MAX 255

/* Field numbers of RFC 0002 "Wire Format". */
#define RP_ENVELOPE_FIELD_PUBLIC_KEY   1
#define RP_ENVELOPE_FIELD_PAYLOAD_TYPE 2
#define RP_ENVELOPE_FIELD_PAYLOAD      3
#define RP_ENVELOPE_FIELD_SIGNATURE    5

/*
 * A decoded envelope: views into the decoded bytes, valid as long as they
 * are. An absent field has base NULL and len 0 (proto3: absent = empty).
 */
typedef struct rp_envelope {
    rp_iov public_key; /* protobuf PublicKey bytes (peer-ids.md "Keys") */
    rp_iov payload_type;
    rp_iov payload;
    rp_iov signature;
} rp_envelope;

/*
 * Decodes an envelope from [*src, end) (all of it) without checking the
 * signature, and moves *src to end. Errors (*src unchanged, `ei` names the
 * problem): RINGP2P_EPROTOBUF (malformed, a field twice or of the wrong wire
 * type, no public_key or no signature), RINGP2P_ELIMIT (more than
 * RP_ENVELOPE_MAX bytes, a payload_type over RP_ENVELOPE_PAYLOAD_TYPE_MAX).
 */
int rp_envelope_decode(const uint8_t **src, const uint8_t *end, rp_envelope *out,
                       ringp2p_errinfo *ei);

/*
 * Writes the protobuf form of e (views read, not retained) into dst[cap]:
 * fields in number order, empty ones omitted. Returns the length or
 * RINGP2P_ENOBUF; dst NULL with cap 0 measures (returns the length).
 */
ssize_t rp_envelope_encode(const rp_envelope *e, uint8_t *dst, size_t cap);

/*
 * Writes the buffer that is signed (RFC 0002 "Signature Production") into
 * dst[cap]. Inputs are the caller's, read-only. Returns its length or
 * RINGP2P_ENOBUF; dst NULL with cap 0 measures.
 */
ssize_t rp_envelope_unsigned(const char *domain, size_t domain_len, const uint8_t *type,
                             size_t type_len, const uint8_t *payload, size_t payload_len,
                             uint8_t *dst, size_t cap);

/*
 * Seals: signs payload (type `type`) for `domain` (NUL-terminated) with key
 * and writes the encoded envelope into dst[cap] (the caller's). Inputs are
 * read, not retained. Returns the envelope's length or: RINGP2P_EINVAL (empty
 * or over-long domain, payload_type over its limit), RINGP2P_ELIMIT (the
 * envelope would pass RP_ENVELOPE_MAX), RINGP2P_ENOBUF (cap too small; dst
 * NULL with cap 0 never measures here, as the signature length is only known
 * after signing: RP_ENVELOPE_MAX bytes always suffice), RINGP2P_ENOMEM,
 * RINGP2P_ECRYPTO.
 */
ssize_t rp_envelope_seal(const ringp2p_privkey *key, const char *domain, const uint8_t *type,
                         size_t type_len, const uint8_t *payload, size_t payload_len, uint8_t *dst,
                         size_t cap, ringp2p_errinfo *ei);

/*
 * Opens: decodes the envelope in [*src, end), decodes its public key and
 * verifies the signature for `domain` (NUL-terminated). When `type` is not
 * NULL the payload_type must equal type[type_len]. On success *src moves to
 * end, *out views the envelope (inside the caller's bytes) and, if `key` is
 * not NULL, *key is the signer's key (the caller's: ringp2p_pubkey_free).
 * Errors (*src unchanged, nothing to free): those of rp_envelope_decode and
 * ringp2p_pubkey_from_protobuf, RINGP2P_ESIGNATURE (the signature does not
 * verify: tampered payload, type or signature, another domain, another key),
 * RINGP2P_EPROTOCOL (payload_type is not the expected one), RINGP2P_EINVAL
 * (bad domain), RINGP2P_ENOMEM.
 */
int rp_envelope_open(const uint8_t **src, const uint8_t *end, const char *domain,
                     const uint8_t *type, size_t type_len, rp_envelope *out, ringp2p_pubkey **key,
                     ringp2p_errinfo *ei);

/*
 * rp_envelope_open with the signature checked through `verified` (the
 * caller's, crypto/sigcache.h; NULL verifies always): an envelope whose exact
 * public key, domain, payload_type, payload and signature verified before is
 * not verified again. A peer's signed record repeats on each connection to it
 * until it reseals. Same results and errors as rp_envelope_open.
 */
int rp_envelope_open_cached(const uint8_t **src, const uint8_t *end, const char *domain,
                            const uint8_t *type, size_t type_len, rp_sigcache *verified,
                            rp_envelope *out, ringp2p_pubkey **key, ringp2p_errinfo *ei);

#endif
