/*
 * Circuit relay v2 (libp2p specs, relay/circuit-v2.md), sans-IO: the message
 * codec, the voucher, the relay (hop server) state, the client and stop-side
 * checks, and a meter for the limits of a relayed connection.
 *
 * Two protocols, one message exchange each, then the stream becomes the
 * relayed connection:
 *
 *   /libp2p/circuit/relay/0.2.0/hop   client -> relay: RESERVE or CONNECT, relay answers STATUS
 *   /libp2p/circuit/relay/0.2.0/stop  relay -> target: CONNECT, target answers STATUS
 *
 * Every message is a protobuf preceded by its length as an unsigned varint
 * (go-libp2p util.DelimitedReader / pbio, js-libp2p pbStream).
 *
 * How the host drives it (bytes in, bytes out, time passed in, no sockets):
 *
 *   relay, on a hop stream     rp_relay_hop_request(r, peer, conn addr, own addrs, now, &p, end,
 *                                  out, ...)  until it returns 1; then res.action says:
 *                              REPLY: write out, close the stream.
 *                              STOP:  open a stop stream to res.dst over an existing
 *                                     connection (never dial), write out on it, then feed
 *                                     its bytes to rp_relay_stop_response (or call
 *                                     rp_relay_stop_failed); write its reply on the hop
 *                                     stream; if OK bridge the two streams under
 *                                     rp_relay_meter, and rp_relay_circuit_close at the end.
 *                              peer disconnected: rp_relay_peer_gone;
 *                              timer: rp_relay_expire at rp_relay_next_expiry.
 *   client, reserving          write rp_relay_reserve_write; rp_relay_hop_read the answer;
 *                              rp_relay_reserve_check; advertise rp_relay_circuit_addr of
 *                              each address; reserve again at rp_relay_refresh_at.
 *   client, dialing            rp_relay_addr_split the /p2p-circuit address; on a hop stream
 *                              write rp_relay_connect_write; rp_relay_hop_read;
 *                              rp_relay_connect_check; the stream is now the connection
 *                              (security and muxer on top), limited by the returned limit.
 *   target, on a stop stream   rp_relay_stop_read; rp_relay_stop_check; write
 *                              rp_relay_stop_status_write(OK or the refusal); on OK the
 *                              stream is an inbound connection from req.src.
 *
 * Open points of the spec, settled by reading go-libp2p (p2p/protocol/circuitv2,
 * 2025) and js-libp2p (@libp2p/circuit-relay-v2 4.2.13):
 *  - Message size: RP_RELAY_MSG_MAX below (go's 4 KiB; js reads any size).
 *  - A request without `type` is MALFORMED_MESSAGE (js; go reads it as
 *    RESERVE, proto3's zero value; both always send the field). A known type
 *    that the receiver does not serve (STATUS to the relay, STATUS to the
 *    target) is UNEXPECTED_MESSAGE (js; go answers MALFORMED_MESSAGE on hop,
 *    UNEXPECTED_MESSAGE on stop); an unknown type value is MALFORMED_MESSAGE.
 *  - A singular field given twice is malformed. protobuf would merge (go) or
 *    keep the last (js): two readers could see two different messages.
 *  - Peer.addrs are not used (active relay is deprecated) and not checked
 *    (go skips bad ones; js refuses the request).
 *  - The relay reads the target's answer as go does: it must be a STATUS
 *    message with status OK (js only looks at the status), anything else is
 *    CONNECTION_FAILED to the initiator.
 *  - The client refuses a reservation that is not OK, has no reservation
 *    field, expires at or before `now`, or carries a voucher that does not
 *    verify, is not signed by the relay, or is not for us (go
 *    client/reservation.go; js checks none of this). No voucher is accepted,
 *    as go does (the spec calls vouchers advisory).
 *  - Limits are per direction, as the spec and go say: js's relay counts both
 *    directions against one budget, and sends its duration in milliseconds
 *    in a field the spec defines in seconds (js DEFAULT_DURATION_LIMIT is
 *    120000, so a js relay announces 120000 s and resets after 2 min).
 */
#ifndef RP_PROTOCOLS_RELAY_H
#define RP_PROTOCOLS_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/bytes.h"
#include "crypto/envelope.h"
#include "ringp2p/error.h"
#include "ringp2p/key.h"

/* "Hop Protocol", "Stop Protocol". */
#define RP_RELAY_HOP_PROTOCOL_ID  "/libp2p/circuit/relay/0.2.0/hop"
#define RP_RELAY_STOP_PROTOCOL_ID "/libp2p/circuit/relay/0.2.0/stop"

/*
 * "Reservation Vouchers": domain and payload type (the multicodec 0x0302
 * written as two big-endian bytes, as go proto.RecordCodec and js
 * ReservationVoucherRecord.codec do, like the peer record's 03 01).
 */
#define RP_RELAY_VOUCHER_DOMAIN           "libp2p-relay-rsvp"
#define RP_RELAY_VOUCHER_PAYLOAD_TYPE     "\x03\x02"
#define RP_RELAY_VOUCHER_PAYLOAD_TYPE_LEN 2

/*
 * Largest message read or written (its length prefix excluded): go-libp2p's
 * maxMessageSize (relay and client) is 4096, and go refuses anything longer,
 * so a larger message of ours would not reach a go peer. js sets no limit
 * (pbStream without maxDataLength). A reservation answer is the largest
 * message: an Ed25519 voucher is ~200 bytes, an RSA-4096 one ~1.1 KiB, which
 * leaves room for dozens of addresses; the relay drops addresses that do not
 * fit rather than send more.
 */
#define RP_RELAY_MSG_MAX 4096
/* A whole frame: the 2-byte varint of RP_RELAY_MSG_MAX and the message. */
#define RP_RELAY_FRAME_MAX (RP_RELAY_MSG_MAX + 2)
/* Addresses kept from one Peer or Reservation; more are counted in n_addrs_dropped. */
#define RP_RELAY_ADDRS_MAX 32

/*
 * How long the host should give each handshake (reading the request, opening
 * the stop stream and reading its answer, reading a relay's answer): js
 * DEFAULT_HOP_TIMEOUT and go ConnectTimeout are 30 s (go allows a minute to
 * read a request).
 */
#define RP_RELAY_HANDSHAKE_TIMEOUT_MS 30000

/* Field numbers of "Protobuf". */
#define RP_RELAY_HOP_FIELD_TYPE        1
#define RP_RELAY_HOP_FIELD_PEER        2
#define RP_RELAY_HOP_FIELD_RESERVATION 3
#define RP_RELAY_HOP_FIELD_LIMIT       4
#define RP_RELAY_HOP_FIELD_STATUS      5
#define RP_RELAY_STOP_FIELD_TYPE       1
#define RP_RELAY_STOP_FIELD_PEER       2
#define RP_RELAY_STOP_FIELD_LIMIT      3
#define RP_RELAY_STOP_FIELD_STATUS     4
#define RP_RELAY_PEER_FIELD_ID         1
#define RP_RELAY_PEER_FIELD_ADDRS      2
#define RP_RELAY_RSVP_FIELD_EXPIRE     1
#define RP_RELAY_RSVP_FIELD_ADDRS      2
#define RP_RELAY_RSVP_FIELD_VOUCHER    3
#define RP_RELAY_LIMIT_FIELD_DURATION  1
#define RP_RELAY_LIMIT_FIELD_DATA      2
#define RP_RELAY_VOUCHER_FIELD_RELAY   1
#define RP_RELAY_VOUCHER_FIELD_PEER    2
#define RP_RELAY_VOUCHER_FIELD_EXPIRE  3

/* HopMessage.Type and StopMessage.Type. */
enum { RP_RELAY_HOP_RESERVE = 0, RP_RELAY_HOP_CONNECT = 1, RP_RELAY_HOP_STATUS = 2 };
enum { RP_RELAY_STOP_CONNECT = 0, RP_RELAY_STOP_STATUS = 1 };

/* Status. */
typedef enum rp_relay_status {
    RP_RELAY_UNUSED = 0,
    RP_RELAY_OK = 100,
    RP_RELAY_RESERVATION_REFUSED = 200,
    RP_RELAY_RESOURCE_LIMIT_EXCEEDED = 201,
    RP_RELAY_PERMISSION_DENIED = 202,
    RP_RELAY_CONNECTION_FAILED = 203,
    RP_RELAY_NO_RESERVATION = 204,
    RP_RELAY_MALFORMED_MESSAGE = 400,
    RP_RELAY_UNEXPECTED_MESSAGE = 401,
} rp_relay_status;

/* The spec's name of a status ("OK", "NO_RESERVATION", ...), or "unknown". */
const char *rp_relay_status_name(int32_t status);

/* ---- Messages ---------------------------------------------------------------------------- */

/*
 * Limit: duration in seconds, data in bytes per direction; 0 is "no limit"
 * for each. An absent field reads as 0. Written with both fields, as go does.
 */
typedef struct rp_relay_limit {
    uint32_t duration;
    uint64_t data;
} rp_relay_limit;

/* Peer: id (multihash bytes, base NULL if absent) and addrs (not validated). */
typedef struct rp_relay_peer {
    rp_iov id;
    size_t n_addrs;
    rp_iov addrs[RP_RELAY_ADDRS_MAX];
    size_t n_addrs_dropped; /* past RP_RELAY_ADDRS_MAX */
} rp_relay_peer;

/* Reservation: expire (Unix seconds, 0 if absent), addrs, voucher (envelope bytes or base NULL). */
typedef struct rp_relay_rsvp {
    uint64_t expire;
    size_t n_addrs;
    rp_iov addrs[RP_RELAY_ADDRS_MAX];
    size_t n_addrs_dropped;
    rp_iov voucher;
} rp_relay_rsvp;

/*
 * A HopMessage. Views point into the decoded bytes and live as long as they
 * do. Enum fields keep the value read (an int32, as protobuf reads enums),
 * known or not.
 */
typedef struct rp_relay_hop_msg {
    bool has_type, has_peer, has_reservation, has_limit, has_status;
    int32_t type;
    rp_relay_peer peer;
    rp_relay_rsvp reservation;
    rp_relay_limit limit;
    int32_t status;
} rp_relay_hop_msg;

/* A StopMessage, as rp_relay_hop_msg. */
typedef struct rp_relay_stop_msg {
    bool has_type, has_peer, has_limit, has_status;
    int32_t type;
    rp_relay_peer peer;
    rp_relay_limit limit;
    int32_t status;
} rp_relay_stop_msg;

/*
 * Decodes a HopMessage (all of [*src, end), no length prefix) into *out and
 * moves *src to end. Unknown fields are skipped. Errors (*src unchanged, `ei`
 * says what): RINGP2P_EPROTOBUF (malformed, a known field of the wrong wire
 * type, a singular field twice), RINGP2P_ELIMIT (over RP_RELAY_MSG_MAX).
 * Nothing is checked beyond the wire format.
 */
int rp_relay_hop_decode(const uint8_t **src, const uint8_t *end, rp_relay_hop_msg *out,
                        ringp2p_errinfo *ei);

/* Decodes a StopMessage, as rp_relay_hop_decode. */
int rp_relay_stop_decode(const uint8_t **src, const uint8_t *end, rp_relay_stop_msg *out,
                         ringp2p_errinfo *ei);

/*
 * Writes *m as protobuf (no prefix) into dst[cap]: present fields in number
 * order, type and status even when 0, a Limit with both fields, a Reservation
 * with expire even when 0, a Peer without an empty id. Views are read, not
 * retained. Returns the length or RINGP2P_ENOBUF; dst NULL with cap 0 measures.
 */
ssize_t rp_relay_hop_encode(const rp_relay_hop_msg *m, uint8_t *dst, size_t cap);
ssize_t rp_relay_stop_encode(const rp_relay_stop_msg *m, uint8_t *dst, size_t cap);

/*
 * As the encoders, with the varint length prefix: what goes on the stream.
 * RINGP2P_ELIMIT if the message is over RP_RELAY_MSG_MAX (nobody would read
 * it); RP_RELAY_FRAME_MAX bytes always suffice otherwise.
 */
ssize_t rp_relay_hop_write(const rp_relay_hop_msg *m, uint8_t *dst, size_t cap);
ssize_t rp_relay_stop_write(const rp_relay_stop_msg *m, uint8_t *dst, size_t cap);

/*
 * Finds the next length-prefixed message at *src (the stream's bytes so
 * far). Returns 1 (*body views it, *src moved past it), 0 (not all there yet:
 * nothing consumed) or, after which the stream is useless, RINGP2P_EVARINT (a
 * prefix that is not a minimal unsigned varint, as go-varint refuses) or
 * RINGP2P_ELIMIT (announces more than RP_RELAY_MSG_MAX). *src is unchanged
 * unless 1.
 */
int rp_relay_read_frame(const uint8_t **src, const uint8_t *end, rp_iov *body, ringp2p_errinfo *ei);

/*
 * rp_relay_read_frame then the decoder: 1 (a message: *out set, *src moved),
 * 0 (need more bytes) or the errors of both (*src unchanged).
 */
int rp_relay_hop_read(const uint8_t **src, const uint8_t *end, rp_relay_hop_msg *out,
                      ringp2p_errinfo *ei);
int rp_relay_stop_read(const uint8_t **src, const uint8_t *end, rp_relay_stop_msg *out,
                       ringp2p_errinfo *ei);

/*
 * A framed status-only answer ({type = STATUS, status}), for refusals the host
 * decides itself (a request that never came whole: MALFORMED_MESSAGE, as go;
 * a gated peer: PERMISSION_DENIED). Returns the length or RINGP2P_ENOBUF
 * (16 bytes always suffice).
 */
ssize_t rp_relay_hop_status_write(int32_t status, uint8_t *dst, size_t cap);
ssize_t rp_relay_stop_status_write(int32_t status, uint8_t *dst, size_t cap);

/* ---- Reservation vouchers ---------------------------------------------------------------- */

/* "Reservation Vouchers": relay and peer IDs, expiration in Unix seconds. */
typedef struct rp_relay_voucher {
    ringp2p_peer_id relay;
    ringp2p_peer_id peer;
    uint64_t expiration;
} rp_relay_voucher;

/*
 * Decodes a voucher payload (all of [*src, end)); relay and peer must be
 * valid peer IDs (go peer.IDFromBytes). Unknown fields are skipped. Errors
 * (*src unchanged): RINGP2P_EPROTOBUF (malformed, wrong wire type, a field
 * twice, relay or peer missing), RINGP2P_EPEERID, RINGP2P_ELIMIT (over
 * RP_RELAY_MSG_MAX).
 */
int rp_relay_voucher_decode(const uint8_t **src, const uint8_t *end, rp_relay_voucher *out,
                            ringp2p_errinfo *ei);

/*
 * Writes the canonical payload (relay, peer, expiration, in that order, all
 * three always, as go's MarshalRecord; js omits an expiration of 0, which no
 * relay sends). Returns the length or RINGP2P_ENOBUF; dst NULL, cap 0 measures.
 */
ssize_t rp_relay_voucher_encode(const rp_relay_voucher *v, uint8_t *dst, size_t cap);

/*
 * Seals a voucher for `peer` expiring at `expiration`, signed by the relay's
 * `key` (the relay is key's peer ID), into dst[cap] as an envelope. Returns
 * its length or the errors of rp_envelope_seal (RP_ENVELOPE_MAX bytes always
 * suffice), or RINGP2P_EINVAL for a peer ID that was never set.
 */
ssize_t rp_relay_voucher_seal(const ringp2p_privkey *key, const ringp2p_peer_id *peer,
                              uint64_t expiration, uint8_t *dst, size_t cap, ringp2p_errinfo *ei);

/*
 * Opens a voucher envelope (all of [*src, end)): it must verify for
 * RP_RELAY_VOUCHER_DOMAIN with type RP_RELAY_VOUCHER_PAYLOAD_TYPE, and be
 * signed by its relay (go client/reservation.go). On success *src moves to
 * end. Errors (*src unchanged): those of rp_envelope_open and
 * rp_relay_voucher_decode, RINGP2P_EPEERMISMATCH (signed by another key than
 * the relay's it names).
 */
int rp_relay_voucher_open(const uint8_t **src, const uint8_t *end, rp_relay_voucher *out,
                          ringp2p_errinfo *ei);

/* ---- Limits of a relayed connection ------------------------------------------------------- */

/*
 * What a relayed connection may still carry: bytes per direction and a
 * deadline on the host's monotonic clock (ns). The relay meters the two
 * streams it bridges; an endpoint may meter its side to know when the relay
 * will cut it (and that it is limited at all).
 *
 * When a direction's budget is spent, go forwards exactly `data` bytes, then
 * half-closes that direction; the spec and js reset both streams. At the
 * deadline go and js reset both streams. Either is interoperable.
 */
typedef struct rp_relay_meter {
    uint64_t left[2];     /* bytes; UINT64_MAX: no data limit */
    uint64_t deadline_ns; /* UINT64_MAX: no duration limit */
} rp_relay_meter;

/* Directions: from the initiator (the CONNECT side) to the target, and back. */
enum { RP_RELAY_DIR_TO_TARGET = 0, RP_RELAY_DIR_TO_INITIATOR = 1 };

/* Starts a meter for `limit` (NULL: unlimited; 0 fields: unlimited) at now_ns. */
void rp_relay_meter_init(rp_relay_meter *m, const rp_relay_limit *limit, uint64_t now_ns);

/*
 * Takes up to n bytes in direction `dir` (0 or 1): returns how many may pass
 * (n, or what was left), and counts them.
 */
size_t rp_relay_meter_take(rp_relay_meter *m, unsigned dir, size_t n);

/* Bytes left in `dir` (UINT64_MAX when unlimited); 0 means spent. */
uint64_t rp_relay_meter_left(const rp_relay_meter *m, unsigned dir);

/* True at or past the deadline. */
bool rp_relay_meter_expired(const rp_relay_meter *m, uint64_t now_ns);

/* ---- The relay (hop server) --------------------------------------------------------------- */

/*
 * Resources, go-libp2p relay.DefaultResources() unless said otherwise:
 *  - reservation_ttl_s 3600 (go ReservationTTL 1 h; js 2 h);
 *  - max_reservations 128 (go MaxReservations; js 15);
 *  - one reservation per peer: a new RESERVE renews it and does not count
 *    again (go keys its map by peer, MaxReservationsPerPeer 1 is deprecated
 *    and unused; js renews too);
 *  - max_reservations_per_ip 8 (go MaxReservationsPerIP, exact IP of the
 *    connection; 0: no limit; js has none). go's per-ASN limit (32, IPv6
 *    only, from a compiled-in ASN table) is not implemented;
 *  - max_circuits 16 (go MaxCircuits): relayed connections a peer may be part
 *    of at once, as initiator or target, counted for both (js has none but a
 *    per-connection stream cap of 300). We also cap all circuits at
 *    max_reservations * max_circuits (ours: go relies on its resource manager);
 *  - limit {120 s, 131072 bytes} (go DefaultLimit: 2 min, 128 KiB per
 *    direction; js the same values, see above), `limited` false: no Limit
 *    sent and none applied.
 * ACL callbacks (NULL: allow) run on the host's thread inside the calls;
 * false is PERMISSION_DENIED (go ACLFilter, js connection gater).
 */
typedef struct rp_relay_config {
    uint64_t reservation_ttl_s;
    uint32_t max_reservations;
    uint32_t max_reservations_per_ip;
    uint32_t max_circuits;
    bool limited;
    rp_relay_limit limit;
    bool (*allow_reserve)(void *arg, const ringp2p_peer_id *peer, const uint8_t *addr,
                          size_t addr_len);
    bool (*allow_connect)(void *arg, const ringp2p_peer_id *src, const uint8_t *src_addr,
                          size_t src_addr_len, const ringp2p_peer_id *dst);
    void *acl_arg;
} rp_relay_config;

#define RP_RELAY_DEFAULT_TTL_S            3600
#define RP_RELAY_DEFAULT_MAX_RESERVATIONS 128
#define RP_RELAY_DEFAULT_MAX_PER_IP       8
#define RP_RELAY_DEFAULT_MAX_CIRCUITS     16
#define RP_RELAY_DEFAULT_LIMIT_DURATION_S 120
#define RP_RELAY_DEFAULT_LIMIT_DATA       (UINT64_C(1) << 17)

/* Fills *cfg with the defaults above (limited, no ACLs). */
void rp_relay_config_default(rp_relay_config *cfg);

/*
 * The relay's state: reservations and circuits. Not thread-safe: the host
 * calls it from one thread or under one lock.
 */
typedef struct rp_relay rp_relay;

/*
 * A new relay with `cfg` (copied) that signs vouchers with `key` (borrowed:
 * it must outlive the relay). Errors: RINGP2P_EINVAL (ttl, max_reservations
 * or max_circuits 0), RINGP2P_ENOMEM.
 */
int rp_relay_new(const rp_relay_config *cfg, const ringp2p_privkey *key, rp_relay **out);

/* NULL is fine. */
void rp_relay_free(rp_relay *r);

/* What the host does after rp_relay_hop_request or rp_relay_stop_response. */
typedef enum rp_relay_action {
    RP_RELAY_ACT_REPLY = 1, /* write out[0, len) on the hop stream; then close it, unless
                               status is OK after CONNECT: then bridge */
    RP_RELAY_ACT_STOP = 2,  /* open a stop stream to dst, write out[0, len) on it */
} rp_relay_action;

typedef struct rp_relay_hop_result {
    rp_relay_action action;
    int32_t request;        /* RP_RELAY_HOP_RESERVE or _CONNECT; -1 if unreadable or other */
    rp_relay_status status; /* REPLY: the status written (OK: reservation made / bridge) */
    ringp2p_peer_id dst;    /* CONNECT: the target */
    uint64_t circuit;       /* CONNECT: the circuit, from STOP until closed; 0 if none */
    uint64_t expire;        /* RESERVE OK: the reservation's expiry (Unix seconds) */
    bool limited;           /* CONNECT OK: the limit to meter with (else unlimited) */
    rp_relay_limit limit;
    size_t len; /* bytes in out */
} rp_relay_hop_result;

/*
 * Handles the request on a hop stream from `peer` (copied), connected from
 * `addr` (the connection's remote multiaddr, binary; NULL if unknown), with
 * [*src, end) the stream's bytes so far. `self_addrs` are the addresses the
 * relay reports in a reservation (binary, read only): addresses with
 * /p2p-circuit are skipped (js), /p2p/RELAY is appended where missing and an
 * address naming another peer is skipped (go makeReservationMsg); go also
 * keeps only public addresses, which is the host's choice. now_s is Unix time
 * (reservations expire at now_s + ttl and go on the wire).
 *
 * Returns 0 (no whole request yet: nothing consumed; call again with more,
 * and at EOF or after RP_RELAY_HANDSHAKE_TIMEOUT_MS answer MALFORMED_MESSAGE
 * with rp_relay_hop_status_write) or 1: *res says what to do, out[0, res->len)
 * holds the bytes to write, and *src has moved past the request (unless it
 * could not be framed). Refusals are answers, not errors: res->status says
 * which, and `ei`, if given, says why. In order:
 *   unreadable, over RP_RELAY_MSG_MAX, no type or an unknown one: MALFORMED_MESSAGE;
 *   type STATUS: UNEXPECTED_MESSAGE;
 *   RESERVE over a relayed connection (addr has /p2p-circuit): PERMISSION_DENIED;
 *   RESERVE refused by allow_reserve: PERMISSION_DENIED;
 *   RESERVE with max_reservations held by others, or max_reservations_per_ip
 *     from addr's IP: RESERVATION_REFUSED;
 *   RESERVE accepted (made or renewed): OK with reservation, voucher and limit;
 *   CONNECT over a relayed connection: PERMISSION_DENIED;
 *   CONNECT without a peer or with an invalid peer ID: MALFORMED_MESSAGE;
 *   CONNECT refused by allow_connect: PERMISSION_DENIED;
 *   CONNECT to a peer without an unexpired reservation: NO_RESERVATION;
 *   CONNECT when either peer is in max_circuits circuits, or all circuits
 *     are taken: RESOURCE_LIMIT_EXCEEDED;
 *   CONNECT accepted: action STOP, a circuit counted from now, out the
 *     StopMessage (peer = the initiator, limit).
 * out[cap] must hold RP_RELAY_FRAME_MAX bytes. Errors, after which the host
 * resets the stream: RINGP2P_ENOBUF (cap too small), RINGP2P_ENOMEM and the
 * errors of rp_relay_voucher_seal (the reservation is then not made).
 */
int rp_relay_hop_request(rp_relay *r, const ringp2p_peer_id *peer, const uint8_t *addr,
                         size_t addr_len, const rp_iov *self_addrs, size_t n_self_addrs,
                         uint64_t now_s, const uint8_t **src, const uint8_t *end, uint8_t *out,
                         size_t cap, rp_relay_hop_result *res, ringp2p_errinfo *ei);

/*
 * The target's answer on the stop stream of `circuit`, [*src, end) its bytes
 * so far. Returns 0 (need more; at EOF or timeout call rp_relay_stop_failed)
 * or 1: action REPLY with out the answer for the hop stream: OK with the limit
 * (then bridge the streams, meter with res->limit if res->limited, and call
 * rp_relay_circuit_close when both end), or CONNECTION_FAILED when the answer
 * is unreadable, not a STATUS or not OK (the circuit is then released; reset
 * the stop stream). Errors: RINGP2P_ENOENT (no such pending circuit),
 * RINGP2P_ENOBUF (out must hold RP_RELAY_FRAME_MAX bytes).
 */
int rp_relay_stop_response(rp_relay *r, uint64_t circuit, const uint8_t **src, const uint8_t *end,
                           uint8_t *out, size_t cap, rp_relay_hop_result *res, ringp2p_errinfo *ei);

/*
 * The stop stream of a pending `circuit` could not be opened or answered in
 * time: releases the circuit and writes the CONNECTION_FAILED answer for the
 * hop stream. Returns its length, RINGP2P_ENOENT or RINGP2P_ENOBUF.
 */
ssize_t rp_relay_stop_failed(rp_relay *r, uint64_t circuit, uint8_t *out, size_t cap);

/* A bridged circuit ended: its counts are released. RINGP2P_ENOENT if unknown. */
int rp_relay_circuit_close(rp_relay *r, uint64_t circuit);

/*
 * The host has no connection to `peer` any more: its reservation ends (the
 * spec: "If the peer disconnects, the reservation is no longer valid").
 * Returns 1 if it had one, else 0. Its circuits end with their streams.
 */
int rp_relay_peer_gone(rp_relay *r, const ringp2p_peer_id *peer);

/* Drops reservations that expired by now_s; returns how many. */
size_t rp_relay_expire(rp_relay *r, uint64_t now_s);

/* The earliest expiry (Unix seconds) of a held reservation, UINT64_MAX if none. */
uint64_t rp_relay_next_expiry(const rp_relay *r);

/* Whether `peer` holds a reservation unexpired at now_s, and its expiry (may be NULL). */
bool rp_relay_has_reservation(const rp_relay *r, const ringp2p_peer_id *peer, uint64_t now_s,
                              uint64_t *expire);

/* Reservations held (expired ones included until rp_relay_expire), and circuits counted. */
size_t rp_relay_reservation_count(const rp_relay *r);
size_t rp_relay_circuit_count(const rp_relay *r);

/* ---- The client ---------------------------------------------------------------------------- */

/* The framed RESERVE request ({type = RESERVE}, 3 bytes). Length or RINGP2P_ENOBUF. */
ssize_t rp_relay_reserve_write(uint8_t *dst, size_t cap);

/*
 * A reservation, checked. addrs view the answer's bytes (copy them before
 * freeing those): the relay's addresses that are valid multiaddrs without
 * /p2p-circuit and not ending with another peer's /p2p (the rest, and those
 * past RP_RELAY_ADDRS_MAX, are counted in n_addrs_skipped).
 */
typedef struct rp_relay_reservation {
    uint64_t expire; /* Unix seconds */
    bool limited;    /* the relay sent a Limit */
    rp_relay_limit limit;
    bool has_voucher;
    rp_relay_voucher voucher;
    size_t n_addrs;
    rp_iov addrs[RP_RELAY_ADDRS_MAX];
    size_t n_addrs_skipped;
} rp_relay_reservation;

/*
 * Checks the relay's answer to RESERVE. `relay` is the peer the hop stream
 * goes to and `self` is us. *status (may be NULL) receives the answer's
 * status. Returns 0 (*out set) or: RINGP2P_ECONNREFUSED (a status other than
 * OK: the relay refused, `ei` names the status), RINGP2P_EPROTOCOL (not a
 * STATUS message, OK without a reservation, an expiry at or before now_s),
 * and for a voucher that does not hold: the errors of rp_relay_voucher_open,
 * RINGP2P_EPEERMISMATCH (a voucher from another relay or for another peer).
 */
int rp_relay_reserve_check(const rp_relay_hop_msg *m, const ringp2p_peer_id *relay,
                           const ringp2p_peer_id *self, uint64_t now_s, rp_relay_reservation *out,
                           int32_t *status, ringp2p_errinfo *ei);

/*
 * When to renew a reservation expiring at expire_s: five minutes before (js
 * REFRESH_TIMEOUT; go renews within two minutes of expiry, checking every
 * minute), or halfway through a reservation shorter than ten minutes.
 */
uint64_t rp_relay_refresh_at(uint64_t expire_s, uint64_t now_s);

/*
 * The address to advertise for a relay address `addr` (binary, from a
 * reservation or the connection to the relay): addr, /p2p/RELAY appended
 * unless addr already ends with it, then /p2p-circuit (go autorelay
 * "<relay's-addr>/p2p/<relay's-id>/p2p-circuit"; the host appends nothing for
 * itself, as for its other listen addresses). Returns the length written in
 * dst[cap], or RINGP2P_EMULTIADDR (invalid, or with /p2p-circuit already),
 * RINGP2P_EPEERMISMATCH (its last component is another peer's /p2p),
 * RINGP2P_ELIMIT (the result would pass RP_MADDR_MAX_BYTES or
 * RP_MADDR_MAX_COMPONENTS), RINGP2P_ENOBUF.
 */
ssize_t rp_relay_circuit_addr(const uint8_t *addr, size_t len, const ringp2p_peer_id *relay,
                              uint8_t *dst, size_t cap, ringp2p_errinfo *ei);

/* The parts of a relayed address to dial. */
typedef struct rp_relay_target {
    rp_iov relay_addr; /* the address before /p2p-circuit, ending with /p2p/RELAY */
    ringp2p_peer_id relay;
    ringp2p_peer_id dst;
} rp_relay_target;

/*
 * Splits RELAYADDR/p2p/RELAY/p2p-circuit/p2p/DST (binary; views into it):
 * both peer IDs are required (js CircuitRelayTransport.dial), DST must be the
 * last component right after /p2p-circuit, which must appear once (we do not
 * do active relay, so no address of DST may follow). Errors: those of
 * rp_maddr_validate, RINGP2P_EMULTIADDR (no /p2p-circuit, no or misplaced
 * /p2p), RINGP2P_EPEERID.
 */
int rp_relay_addr_split(const uint8_t *addr, size_t len, rp_relay_target *out, ringp2p_errinfo *ei);

/* The framed CONNECT request to `dst` ({type = CONNECT, peer = {id}}). Length or ENOBUF. */
ssize_t rp_relay_connect_write(const ringp2p_peer_id *dst, uint8_t *dst_buf, size_t cap);

/*
 * Checks the relay's answer to CONNECT. Returns 0 (the hop stream is now the
 * connection; *limited and *limit say what the relay applies) or:
 * RINGP2P_ECONNREFUSED (another status, in *status and `ei`),
 * RINGP2P_EPROTOCOL (not a STATUS message). Out pointers may be NULL.
 */
int rp_relay_connect_check(const rp_relay_hop_msg *m, bool *limited, rp_relay_limit *limit,
                           int32_t *status, ringp2p_errinfo *ei);

/* ---- The stop side (target) --------------------------------------------------------------- */

typedef struct rp_relay_stop_request {
    ringp2p_peer_id src; /* the initiator */
    bool limited;        /* the relay sent a Limit (the connection is limited) */
    rp_relay_limit limit;
} rp_relay_stop_request;

/*
 * Checks a StopMessage from a relay. Returns 0 (*out set: accept, answer OK
 * with rp_relay_stop_status_write; the host may still refuse, e.g.
 * PERMISSION_DENIED by policy) or RINGP2P_EPROTOCOL with *reply the status to
 * answer: MALFORMED_MESSAGE (no type, an unknown type, no peer or an invalid
 * peer ID), UNEXPECTED_MESSAGE (a STATUS message).
 */
int rp_relay_stop_check(const rp_relay_stop_msg *m, rp_relay_stop_request *out, int32_t *reply,
                        ringp2p_errinfo *ei);

#endif
