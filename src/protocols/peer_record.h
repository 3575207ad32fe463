/*
 * Peer records (libp2p specs, RFC/0003-routing-records.md) in signed
 * envelopes (RFC/0002, crypto/envelope.h).
 *
 * A peer record says "peer P listens on these addresses", numbered by `seq`,
 * and is only ever trusted inside an envelope signed by P's own key. Identify
 * carries one (signedPeerRecord); the DHT and others may later.
 *
 * Wire constants, as go-libp2p (core/peer/record.go) and js-libp2p
 * (@libp2p/peer-record) use them, which is where RFC 0003 is out of date: the
 * RFC still names the draft domain "libp2p-routing-state" and payload type
 * "/libp2p/routing-state-record"; every implementation signs with the domain
 * "libp2p-peer-record" and the payload type 0x03 0x01 — the multicodec
 * libp2p-peer-record (0x0301) written as two big-endian bytes, not as a
 * uvarint (which would be 0x81 0x06). We follow the implementations, or no
 * record would verify between us and them.
 *
 * PeerRecord (proto3): peer_id = 1 (multihash bytes), seq = 2 (uint64),
 * addresses = 3 (repeated AddressInfo { multiaddr = 1 }).
 */
#ifndef RP_PROTOCOLS_PEER_RECORD_H
#define RP_PROTOCOLS_PEER_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/bytes.h"
#include "crypto/envelope.h"
#include "ringp2p/key.h"

/* See above: go-libp2p PeerRecordEnvelopeDomain / js ENVELOPE_DOMAIN_PEER_RECORD. */
#define RP_PEER_RECORD_DOMAIN "libp2p-peer-record"
/* go-libp2p PeerRecordEnvelopePayloadType / js ENVELOPE_PAYLOAD_TYPE_PEER_RECORD. */
#define RP_PEER_RECORD_PAYLOAD_TYPE     "\x03\x01"
#define RP_PEER_RECORD_PAYLOAD_TYPE_LEN 2

/* RFC 0003 "Address Record Format" field numbers. */
#define RP_PEER_RECORD_FIELD_PEER_ID   1
#define RP_PEER_RECORD_FIELD_SEQ       2
#define RP_PEER_RECORD_FIELD_ADDRESSES 3
#define RP_PEER_RECORD_FIELD_MULTIADDR 1 /* in AddressInfo */

/*
 * Addresses of one record we keep; the RFC sets no bound. A record fits in
 * an 8 KiB identify message, and real peers list a few dozen addresses at
 * most (go-libp2p keeps 500 per connected peer in its peerstore but trims its
 * own identify message to 4 KiB). Addresses past this are skipped and
 * counted, not refused.
 */
#define RP_PEER_RECORD_ADDRS_MAX 128

/*
 * A decoded record: views into the decoded payload (valid as long as it is).
 * Each address passed rp_maddr_validate; invalid or empty ones (go-libp2p
 * drops both) and those past the limit are skipped and counted, so one bad
 * address does not cost the record.
 */
typedef struct rp_peer_record {
    ringp2p_peer_id peer_id;
    uint64_t seq;
    size_t n_addrs;
    rp_iov addrs[RP_PEER_RECORD_ADDRS_MAX];
    size_t n_skipped;
} rp_peer_record;

/*
 * Decodes a PeerRecord (the envelope's payload, all of [*src, end)) and moves
 * *src to end. The peer_id must be a valid peer ID (ringp2p_peer_id_from_bytes).
 * Errors (*src unchanged, `ei` says what): RINGP2P_EPROTOBUF (malformed, a
 * known field of the wrong wire type, peer_id or seq twice, no peer_id),
 * RINGP2P_EPEERID, RINGP2P_ELIMIT (more than RP_ENVELOPE_MAX bytes).
 */
int rp_peer_record_decode(const uint8_t **src, const uint8_t *end, rp_peer_record *out,
                          ringp2p_errinfo *ei);

/*
 * Writes a PeerRecord (proto3, fields in number order, seq omitted when 0,
 * empty addresses skipped as go-libp2p does) into dst[cap]. Inputs are read,
 * not retained. Returns the length or RINGP2P_ENOBUF; dst NULL with cap 0
 * measures.
 */
ssize_t rp_peer_record_encode(const ringp2p_peer_id *id, uint64_t seq, const rp_iov *addrs,
                              size_t n_addrs, uint8_t *dst, size_t cap);

/*
 * Makes this node's signed record: a PeerRecord for key's peer ID with `seq`
 * and `addrs` (binary multiaddrs, validated here), sealed in an envelope
 * (domain RP_PEER_RECORD_DOMAIN, type RP_PEER_RECORD_PAYLOAD_TYPE) written
 * into dst[cap]. `seq` must be larger than that of every record this key
 * signed before (rp_peer_record_next_seq). Returns the envelope's length or:
 * RINGP2P_EINVAL (more than RP_PEER_RECORD_ADDRS_MAX addresses, or an empty
 * one), the errors of rp_maddr_validate (an invalid address, named in `ei`),
 * and those of rp_envelope_seal.
 */
ssize_t rp_peer_record_seal(const ringp2p_privkey *key, uint64_t seq, const rp_iov *addrs,
                            size_t n_addrs, uint8_t *dst, size_t cap, ringp2p_errinfo *ei);

/*
 * Opens a signed record: the envelope in [*src, end) must verify for
 * RP_PEER_RECORD_DOMAIN, carry RP_PEER_RECORD_PAYLOAD_TYPE, and its peer_id
 * must be the signer's (RFC 0003 "Certification / Verification"). `verified`
 * (may be NULL) is the cache of signatures that verified before
 * (rp_envelope_open_cached). On success *src moves to end and *rec (and *env,
 * if not NULL) view the caller's bytes. Errors (*src unchanged): those of
 * rp_envelope_open and rp_peer_record_decode, RINGP2P_EPEERMISMATCH (signed by
 * another peer than the record names).
 */
int rp_peer_record_open(const uint8_t **src, const uint8_t *end, rp_sigcache *verified,
                        rp_peer_record *rec, rp_envelope *env, ringp2p_errinfo *ei);

/*
 * A sequence number for a new record: the time (Unix nanoseconds, as
 * go-libp2p's TimestampSeq; the caller reads the clock), or prev + 1 when the
 * clock did not move past the previous one, so seq always increases.
 */
uint64_t rp_peer_record_next_seq(uint64_t unix_ns, uint64_t prev);

#endif
