/*
 * Identify and identify/push (libp2p specs, identify/README.md), sans-IO.
 *
 * On `/ipfs/id/1.0.0` the listener writes its Identify message and closes the
 * stream; on `/ipfs/id/push/1.0.0` the dialer writes one and closes. Each
 * message is length-prefixed with an unsigned varint (go-libp2p pbio,
 * js-libp2p pbStream; the spec does not say). A sender may split what it has
 * to say over several messages on one stream, which the reader merges as
 * protobuf merges messages — scalars: the last one wins; lists: appended.
 * go-libp2p does this when its message is over 2 KiB (the signed peer record
 * goes alone in a second message); go and js read up to 10 (libp2p/specs
 * PR 709).
 *
 * The pieces, for the host that wires them to streams:
 *
 *   responder / pusher   rp_identify_write(&me, observed, ...)  -> bytes to send, then close
 *   requester / receiver rp_identify_msg_init(&m);
 *                        while bytes arrive: rp_identify_read_frame(&m, &p, end, &ei) (until 0)
 *                        at EOF:             rp_identify_read_end(&m, p, end, &ei)
 *                        rp_identify_peer_apply(peer, &m, &ei)   verify, then merge into
 *                                                                the peer's record
 *                        rp_obsaddr_record(&obs, ..., m.observed_addr, ...)  our address as seen
 *                        when it returns 1: push to every peer (the adopted set changed)
 *
 * Decoded messages are views into the host's receive buffer, which must hold
 * the whole stream (at most RP_IDENTIFY_STREAM_MAX bytes) until the message is
 * applied; rp_identify_peer keeps its own copies.
 *
 * Peer input is checked where it matters and tolerated where go and js
 * tolerate it: a listen address that is not a valid multiaddr is skipped and
 * counted (not the whole message), as are protocol IDs that could never be
 * negotiated; the public key must be the connection's peer and a signed peer
 * record must verify and be that peer's, or the message is refused.
 */
#ifndef RP_PROTOCOLS_IDENTIFY_H
#define RP_PROTOCOLS_IDENTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/bytes.h"
#include "protocols/peer_record.h"
#include "ringp2p/key.h"
#include "ringp2p/ringp2p.h"

/* identify/README.md "Overview". */
#define RP_IDENTIFY_PROTOCOL_ID      "/ipfs/id/1.0.0"
#define RP_IDENTIFY_PUSH_PROTOCOL_ID "/ipfs/id/push/1.0.0"

/*
 * identify/README.md "protocolVersion" / "agentVersion": what we send unless
 * the host says otherwise. "ipfs/0.1.0" is what go-libp2p and js-libp2p send.
 */
#define RP_IDENTIFY_PROTOCOL_VERSION "ipfs/0.1.0"
#define RP_IDENTIFY_AGENT_VERSION    "ringp2p/" RINGP2P_VERSION

/* Field numbers of identify/README.md "The Identify Message" (8: go/js identify.proto). */
#define RP_IDENTIFY_FIELD_PUBLIC_KEY         1
#define RP_IDENTIFY_FIELD_LISTEN_ADDRS       2
#define RP_IDENTIFY_FIELD_PROTOCOLS          3
#define RP_IDENTIFY_FIELD_OBSERVED_ADDR      4
#define RP_IDENTIFY_FIELD_PROTOCOL_VERSION   5
#define RP_IDENTIFY_FIELD_AGENT_VERSION      6
#define RP_IDENTIFY_FIELD_SIGNED_PEER_RECORD 8

/*
 * Limits. The spec has none; these are the implementations'.
 *
 * RP_IDENTIFY_MSG_MAX: one received message (its length prefix excluded):
 *   go-libp2p signedIDSize and js-libp2p MAX_IDENTIFY_MESSAGE_SIZE, 8 KiB.
 * RP_IDENTIFY_MSGS_MAX: messages read from one stream (go maxMessages, js
 *   MAX_IDENTIFY_MESSAGES).
 * RP_IDENTIFY_OWN_MSG_MAX: one message we send: go-libp2p's
 *   maxOwnIdentifyMsgSize, 4 KiB, because rust-libp2p reads no more.
 * RP_IDENTIFY_SPLIT_MIN: above this size a message of ours with a signed peer
 *   record is sent as two, the record alone in the second (go legacyIDSize,
 *   so readers of one 2 KiB message still get everything but the record).
 */
#define RP_IDENTIFY_MSG_MAX     8192
#define RP_IDENTIFY_MSGS_MAX    10
#define RP_IDENTIFY_OWN_MSG_MAX 4096
#define RP_IDENTIFY_SPLIT_MIN   2048
/* The largest stream a receiver buffers: RP_IDENTIFY_MSGS_MAX prefixed messages (2-byte prefix). */
#define RP_IDENTIFY_STREAM_MAX (RP_IDENTIFY_MSGS_MAX * (RP_IDENTIFY_MSG_MAX + 2))
/*
 * Listen addresses and protocols kept from one (merged) message; the rest are
 * skipped and counted. go-libp2p keeps at most 1024 protocols (maxPeerProtocols)
 * and 500 addresses per peer; real peers send a few dozen of each.
 */
#define RP_IDENTIFY_LISTEN_ADDRS_MAX 128
#define RP_IDENTIFY_PROTOCOLS_MAX    256
/*
 * Longest protocol ID kept: the longest multistream-select can negotiate
 * (RP_MSS_PROTO_MAX: a 1024-byte message less its newline).
 */
#define RP_IDENTIFY_PROTOCOL_LEN_MAX 1023

/* ---- Message ------------------------------------------------------------------------------- */

/*
 * One identify message, or several merged. Every view points into the
 * decoded bytes and lives as long as they do. An absent scalar field has base
 * NULL; a present empty string has base non-NULL and len 0.
 */
typedef struct rp_identify_msg {
    rp_iov protocol_version;
    rp_iov agent_version;
    rp_iov public_key;         /* protobuf PublicKey bytes, not yet checked */
    rp_iov observed_addr;      /* a valid, non-empty multiaddr, else absent */
    rp_iov signed_peer_record; /* an Envelope, not yet checked */
    size_t n_listen_addrs;
    rp_iov listen_addrs[RP_IDENTIFY_LISTEN_ADDRS_MAX]; /* valid, non-empty multiaddrs */
    size_t n_protocols;
    rp_iov protocols[RP_IDENTIFY_PROTOCOLS_MAX];
    size_t n_addrs_skipped;     /* listen/observed addresses invalid, empty or over the limit */
    size_t n_protocols_skipped; /* empty, longer than the limit, with '\n' or NUL, or over it */
    size_t n_frames;            /* messages merged in by rp_identify_read_frame */
} rp_identify_msg;

/* An empty message (nothing present, no frames). */
void rp_identify_msg_init(rp_identify_msg *m);

/*
 * Decodes one Identify protobuf (all of [*src, end), no length prefix) and
 * merges it into *m; moves *src to end. Unknown fields are skipped. Known
 * fields of the wrong wire type and malformed protobuf are RINGP2P_EPROTOBUF;
 * more than RP_IDENTIFY_MSG_MAX bytes is RINGP2P_ELIMIT. On error *src and *m
 * are unchanged and `ei` says what is wrong.
 */
int rp_identify_decode(const uint8_t **src, const uint8_t *end, rp_identify_msg *m,
                       ringp2p_errinfo *ei);

/*
 * Reads the next length-prefixed message at *src (the stream's bytes so far,
 * kept by the host in one buffer) and merges it into *m. Returns 1 (a message
 * was read: *src moved past it, m->n_frames counts it), 0 (no whole message
 * yet: nothing consumed) or an error, after which the stream must be reset:
 * RINGP2P_EVARINT (bad prefix), RINGP2P_ELIMIT (a message over
 * RP_IDENTIFY_MSG_MAX, or more than RP_IDENTIFY_MSGS_MAX), and those of
 * rp_identify_decode. On error *src and *m are unchanged.
 */
int rp_identify_read_frame(rp_identify_msg *m, const uint8_t **src, const uint8_t *end,
                           ringp2p_errinfo *ei);

/*
 * At the end of the stream, with [src, end) what rp_identify_read_frame left:
 * 0 if the stream ended cleanly after at least one message, else
 * RINGP2P_ETRUNCATED (a partial message, or none at all).
 */
int rp_identify_read_end(const rp_identify_msg *m, const uint8_t *src, const uint8_t *end,
                         ringp2p_errinfo *ei);

/*
 * Writes *m as one Identify protobuf (no length prefix, fields in number
 * order, the present ones only) into dst[cap]. Returns the length or
 * RINGP2P_ENOBUF; dst NULL with cap 0 measures.
 */
ssize_t rp_identify_msg_encode(const rp_identify_msg *m, uint8_t *dst, size_t cap);

/* ---- Our message --------------------------------------------------------------------------- */

/* What this node says about itself. Everything is the host's, read during the call only. */
typedef struct rp_identify_info {
    const char *protocol_version; /* NULL: RP_IDENTIFY_PROTOCOL_VERSION */
    const char *agent_version;    /* NULL: RP_IDENTIFY_AGENT_VERSION */
    const uint8_t *public_key;    /* protobuf PublicKey bytes (ringp2p_pubkey_to_protobuf) */
    size_t public_key_len;
    const rp_iov *listen_addrs; /* binary multiaddrs, most preferred first */
    size_t n_listen_addrs;
    const char *const *protocols; /* protocol IDs we accept inbound streams for */
    size_t n_protocols;
    const uint8_t *signed_peer_record; /* rp_peer_record_seal output, or NULL */
    size_t signed_peer_record_len;
} rp_identify_info;

/*
 * Writes this node's identify (or push) message, length-prefixed, into
 * dst[cap]: one message, or two when it is over RP_IDENTIFY_SPLIT_MIN and has
 * a signed peer record (see above). `observed` (the remote end's address of
 * the connection, binary; read only) is included when not NULL — identify
 * responses carry it, pushes need not. Returns the total length, or:
 * RINGP2P_EINVAL (more than RP_IDENTIFY_LISTEN_ADDRS_MAX addresses or
 * RP_IDENTIFY_PROTOCOLS_MAX protocols, an empty or invalid address, a protocol
 * ID that is empty, longer than RP_IDENTIFY_PROTOCOL_LEN_MAX or holds '\n'),
 * RINGP2P_ELIMIT (a message would pass RP_IDENTIFY_OWN_MSG_MAX: send fewer
 * addresses or protocols), RINGP2P_ENOBUF. dst NULL with cap 0 measures.
 * `ei` names the problem.
 */
ssize_t rp_identify_write(const rp_identify_info *me, const uint8_t *observed, size_t observed_len,
                          uint8_t *dst, size_t cap, ringp2p_errinfo *ei);

/* ---- Verification --------------------------------------------------------------------------- */

typedef struct rp_identify_verified {
    ringp2p_pubkey *key;   /* the message's public key (the caller's), NULL if it had none */
    bool has_record;       /* it had a signed peer record, and it verified */
    rp_peer_record record; /* views into the message's signed_peer_record */
} rp_identify_verified;

/*
 * Checks a received message against the peer the connection authenticated
 * (`remote`, copied): its public key, when present, must be remote's; its
 * signed peer record, when present, must verify (rp_peer_record_open, through
 * the cache `verified` when not NULL: the node's, crypto/sigcache.h) and be
 * remote's. Nothing else in the message is signed. On success *out is set (free
 * it with rp_identify_verified_clear). Errors: RINGP2P_EPEERMISMATCH (a key or
 * record of another peer, both IDs in `ei`), the errors of
 * ringp2p_pubkey_from_protobuf and rp_peer_record_open.
 */
int rp_identify_verify(const rp_identify_msg *m, const ringp2p_peer_id *remote,
                       rp_sigcache *verified, rp_identify_verified *out, ringp2p_errinfo *ei);

/* Frees what rp_identify_verify allocated (the key). */
void rp_identify_verified_clear(rp_identify_verified *v);

/* ---- What we know about a peer ----------------------------------------------------------------
 */

/*
 * The identify state of one remote peer: everything it told us, in memory of
 * its own (nothing points into received buffers). Messages are applied to it
 * with the push rule of identify/README.md "identify/push": fields present
 * replace what we had, missing fields are left alone. A list with no entries
 * counts as missing (protobuf cannot tell them apart).
 *
 * Addresses: a signed peer record, when one is applied, is the source of the
 * peer's addresses (certified), as go-libp2p and js-libp2p prefer it; a record
 * only replaces the stored one when its seq is larger (RFC 0003 "Peer Store
 * APIs"), and an older or equal one keeps the stored addresses (js-libp2p).
 * A message with listen addresses and no record sets uncertified addresses.
 */
typedef struct rp_identify_peer rp_identify_peer;

/* rp_identify_peer_apply's result bits: what changed. */
#define RP_IDENTIFY_CHANGED_PROTOCOLS 0x01u
#define RP_IDENTIFY_CHANGED_ADDRS     0x02u /* the address list or its certification */
#define RP_IDENTIFY_CHANGED_VERSIONS  0x04u /* protocol or agent version */
#define RP_IDENTIFY_CHANGED_KEY       0x08u /* first learned the public key */
#define RP_IDENTIFY_CHANGED_RECORD    0x10u /* a newer signed peer record was stored */

/* A new, empty state for peer `id` (copied). *out is the caller's. RINGP2P_ENOMEM. */
int rp_identify_peer_new(const ringp2p_peer_id *id, rp_identify_peer **out);

/* NULL is fine. */
void rp_identify_peer_free(rp_identify_peer *p);

/*
 * Verifies m against the peer (rp_identify_verify, with the cache `verified`,
 * may be NULL) and merges it in; m and its buffer are only read. Returns the
 * RP_IDENTIFY_CHANGED_* bits (0: nothing new), or an error of
 * rp_identify_verify or RINGP2P_ENOMEM, in which case the state is unchanged.
 */
int rp_identify_peer_apply(rp_identify_peer *p, const rp_identify_msg *m, rp_sigcache *verified,
                           ringp2p_errinfo *ei);

/* The accessors' results are owned by p and valid until the next apply or free. */
const ringp2p_peer_id *rp_identify_peer_id(const rp_identify_peer *p);
/* The public key, or NULL if no message carried one. */
const ringp2p_pubkey *rp_identify_peer_key(const rp_identify_peer *p);
/* base NULL when never received. */
rp_iov rp_identify_peer_protocol_version(const rp_identify_peer *p);
rp_iov rp_identify_peer_agent_version(const rp_identify_peer *p);
/* The peer's protocols, without duplicates, in the order first sent. */
size_t rp_identify_peer_protocols(const rp_identify_peer *p, const rp_iov **list);
bool rp_identify_peer_supports(const rp_identify_peer *p, const char *protocol);
/* The addresses to dial; *certified (may be NULL) says whether they come from a signed record. */
size_t rp_identify_peer_addrs(const rp_identify_peer *p, const rp_iov **list, bool *certified);
/* The stored signed record (the envelope's bytes, to pass on) and its seq; false if none. */
bool rp_identify_peer_record(const rp_identify_peer *p, rp_iov *envelope, uint64_t *seq);

/* ---- Observed addresses ------------------------------------------------------------------------
 */

/*
 * Our own public addresses as other peers see them (identify's observedAddr),
 * adopted only once enough different peers agree: the rule of the original
 * requirements (DESIGN.md §1: two different peers), which a single peer
 * cannot satisfy alone, however many times it repeats itself.
 *
 * Choices, settled against go-libp2p (p2p/host/observedaddrs):
 *  - An observer is counted once per IP group of the address it connected
 *    from — IPv4: the address; IPv6: its /56 — as go does, so one machine with
 *    many peer IDs counts once. With `by_peer_only` the peer ID alone counts
 *    (for test networks where every peer shares one IP). Either way two
 *    reports from one peer ID never count twice.
 *  - Threshold 2 (go uses 4; the requirement says two).
 *  - Reports are per (observer, our listen address): a newer report from the
 *    same peer about the same listen address replaces the older one (its NAT
 *    mapping may have changed), as go keeps one per connection.
 *  - Only "thin waist" addresses are considered: ip4|ip6 then tcp|udp, with
 *    the same protocols as our listen address; loopback, unspecified, NAT64
 *    (64:ff9b::/96) and relayed (p2p-circuit) observations are ignored. The
 *    adopted address is the observed ip/port followed by the rest of our
 *    listen address (e.g. /quic-v1), as go builds it.
 *  - At most RP_OBSADDR_PER_LOCAL_MAX adopted addresses per listen address,
 *    those with the most observers (go: maxExternalThinWaistAddrsPerLocalAddr).
 *  - Reports expire RP_OBSADDR_TTL_NS after they were made (go's
 *    ObservedAddrManager used the peerstore's OwnObservedAddrTTL, 30 min);
 *    rp_obsaddr_forget drops a peer's reports when it disconnects.
 *
 * All state is in the struct (no heap); time is passed in.
 */
#define RP_OBSADDR_THRESHOLD     2
#define RP_OBSADDR_TTL_NS        (UINT64_C(30) * 60 * 1000000000)
#define RP_OBSADDR_REPORTS_MAX   64 /* the oldest report goes when a new one needs room */
#define RP_OBSADDR_PER_LOCAL_MAX 3
/* Longest listen address (and adopted address) tracked, in bytes; longer ones are refused. */
#define RP_OBSADDR_ADDR_MAX 64
/* The most addresses that can be adopted at once. */
#define RP_OBSADDR_ADOPTED_MAX RP_OBSADDR_REPORTS_MAX
/* ip6 (1 + 16) and tcp|udp (2 + 2) code bytes and values: the longest thin waist. */
#define RP_OBSADDR_TW_MAX 24

typedef struct rp_obsaddr_config {
    unsigned threshold; /* distinct observers needed; 0: RP_OBSADDR_THRESHOLD */
    uint64_t ttl_ns;    /* report lifetime; 0: RP_OBSADDR_TTL_NS */
    bool by_peer_only;  /* count observers by peer ID, not by IP group */
} rp_obsaddr_config;

typedef struct rp_obsaddr_report {
    ringp2p_peer_id observer;
    uint64_t at_ns;
    uint8_t group[7]; /* IPv4 address or IPv6 /56 of the observer */
    uint8_t group_len;
    uint8_t local_len, tw_len, adopt_len;
    uint8_t local[RP_OBSADDR_ADDR_MAX]; /* our listen address */
    uint8_t adopt[RP_OBSADDR_ADDR_MAX]; /* observed thin waist + local's rest */
} rp_obsaddr_report;

typedef struct rp_obsaddr_addr {
    uint8_t len;
    uint8_t bytes[RP_OBSADDR_ADDR_MAX];
} rp_obsaddr_addr;

typedef struct rp_obsaddr {
    unsigned threshold;
    uint64_t ttl_ns;
    bool by_peer_only;
    size_t n_reports;
    rp_obsaddr_report reports[RP_OBSADDR_REPORTS_MAX];
    size_t n_adopted;
    rp_obsaddr_addr adopted[RP_OBSADDR_ADOPTED_MAX]; /* sorted by bytes */
} rp_obsaddr;

/* Initializes o (the caller's memory) from cfg (NULL: defaults). */
void rp_obsaddr_init(rp_obsaddr *o, const rp_obsaddr_config *cfg);

/*
 * Records that `observer` (peer ID, copied), connected from `observer_addr`
 * (the connection's remote address), saw us at `observed` (from its identify
 * message) on a connection whose local end is our listen address `local`.
 * Addresses are binary multiaddrs, read only. Expired reports go first.
 * Returns 1 when the set of adopted addresses changed (the host should push
 * identify), 0 when not — including observations ignored by the rules above
 * — or RINGP2P_EMULTIADDR / RINGP2P_ELIMIT (local longer than
 * RP_OBSADDR_ADDR_MAX) for arguments that are not valid addresses.
 */
int rp_obsaddr_record(rp_obsaddr *o, const ringp2p_peer_id *observer, const uint8_t *observer_addr,
                      size_t observer_addr_len, const uint8_t *local, size_t local_len,
                      const uint8_t *observed, size_t observed_len, uint64_t now_ns,
                      ringp2p_errinfo *ei);

/* Drops reports older than the TTL. 1 if the adopted set changed, else 0. */
int rp_obsaddr_expire(rp_obsaddr *o, uint64_t now_ns);

/* Drops every report of `observer` (it disconnected). 1 if the adopted set changed, else 0. */
int rp_obsaddr_forget(rp_obsaddr *o, const ringp2p_peer_id *observer);

/* When the next report expires (call rp_obsaddr_expire then); UINT64_MAX if none. */
uint64_t rp_obsaddr_next_expiry(const rp_obsaddr *o);

/* The adopted addresses: count, and the i-th (binary, owned by o, valid until o changes). */
size_t rp_obsaddr_count(const rp_obsaddr *o);
rp_iov rp_obsaddr_get(const rp_obsaddr *o, size_t i);

#endif
