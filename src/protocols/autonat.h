/*
 * AutoNAT v1 (libp2p specs, autonat/autonat-v1.md), sans-IO.
 *
 * A node asks a peer to dial it back on the addresses it believes are its own
 * public ones; from the answers of several peers it learns whether it is
 * publicly reachable. One request and one response per stream, each
 * length-prefixed with an unsigned varint.
 *
 *   client (asks)   rp_autonat_write_dial(&self, addrs, ...)            -> bytes to send
 *                   rp_autonat_read_frame(&p, end, &msg)                -> 1 when the response is
 * in rp_autonat_response_observation(&msg, &addr)        -> what it says
 *                   rp_autonat_client_probe_done(&cl, peer, obs, now)   -> 1: reachability changed
 *   server (dials)  rp_autonat_read_frame(&p, end, &msg)                -> the request
 *                   rp_autonat_server_handle(&sv, &msg, ..., now, &d)   -> dial d.addrs, or refuse
 *                   rp_autonat_server_respond(&d, dial_result, ...)     -> bytes to send, then
 * close
 *
 * The client's state machine (rp_autonat_client) decides when to probe and
 * turns answers into a reachability; the host picks the server, runs the
 * stream and feeds the results in. Time is always passed in (monotonic ns).
 *
 * What to ask about: since a server dials only requested addresses on the IP
 * it sees the request come from, a node behind a NAT must ask about the
 * address that server observed it at (identify's observedAddr on the same
 * connection, confirmed or not), with its listen addresses; asking only about
 * a private listen address gets E_DIAL_REFUSED, which says nothing.
 *
 * Decisions where the spec is silent (go-libp2p p2p/host/autonat, js-libp2p
 * @libp2p/autonat 3.0.28):
 *  - Dial back only what was asked: the server dials the requested addresses
 *    whose IP is the requester's observed IP, and no others. js filters this
 *    way; go instead rewrites every requested address to the observed IP and
 *    adds the observed address itself, dialing addresses nobody asked about,
 *    which the issue rules out.
 *  - A request without a peer ID is served (go; js refuses it): the dial-back
 *    goes to the connection's peer either way. A peer ID that is not the
 *    connection's is E_BAD_REQUEST (both).
 *  - Refusals, in go's order: missing peer info or bad/mismatched peer ID:
 *    E_BAD_REQUEST; a relayed requester, or one whose observed IP is private
 *    (without allow_private) or ours: E_DIAL_REFUSED; no requested address
 *    left after filtering: E_DIAL_REFUSED; over the rate limits: E_DIAL_REFUSED;
 *    an observed address that is not IP: E_INTERNAL_ERROR. A message that is
 *    not a DIAL resets the stream (go).
 *  - Rate limits are go's: 3 dial-backs per peer and 30 in total per window of
 *    1 min plus up to 15 s of jitter; only requests that would be dialed
 *    count.
 *  - A failed dial-back is answered no earlier than the dial timeout (go
 *    waits out its context "to avoid leaking timing information", so the
 *    service is no port scanner): rp_autonat_decision.respond_at.
 *  - Message size: up to 8 KiB is read (js MAX_MESSAGE_SIZE; go reads 4 KiB),
 *    at most 4 KiB is written so go can read it.
 *  - Only TCP addresses are dialed back (see protocols/nataddr.h); private
 *    addresses only with allow_private (go skips them; the network-namespace
 *    tests need them).
 *  - Reachability follows go's AmbientAutoNAT exactly (see rp_autonat_client).
 */
#ifndef RP_PROTOCOLS_AUTONAT_H
#define RP_PROTOCOLS_AUTONAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/bytes.h"
#include "protocols/nataddr.h"
#include "ringp2p/error.h"
#include "ringp2p/key.h"

/* autonat-v1.md "AutoNAT Protocol". */
#define RP_AUTONAT_PROTOCOL_ID "/libp2p/autonat/1.0.0"

/* autonat-v1.md "RPC messages": field numbers. */
#define RP_AUTONAT_FIELD_TYPE          1 /* Message.type */
#define RP_AUTONAT_FIELD_DIAL          2 /* Message.dial */
#define RP_AUTONAT_FIELD_DIAL_RESPONSE 3 /* Message.dialResponse */
#define RP_AUTONAT_FIELD_DIAL_PEER     1 /* Dial.peer */
#define RP_AUTONAT_FIELD_PEER_ID       1 /* PeerInfo.id */
#define RP_AUTONAT_FIELD_PEER_ADDRS    2 /* PeerInfo.addrs */
#define RP_AUTONAT_FIELD_STATUS        1 /* DialResponse.status */
#define RP_AUTONAT_FIELD_STATUS_TEXT   2 /* DialResponse.statusText */
#define RP_AUTONAT_FIELD_ADDR          3 /* DialResponse.addr */

/* Message.MessageType. */
#define RP_AUTONAT_DIAL          0
#define RP_AUTONAT_DIAL_RESPONSE 1

/* Message.ResponseStatus. */
#define RP_AUTONAT_OK               0
#define RP_AUTONAT_E_DIAL_ERROR     100
#define RP_AUTONAT_E_DIAL_REFUSED   101
#define RP_AUTONAT_E_BAD_REQUEST    200
#define RP_AUTONAT_E_INTERNAL_ERROR 300

/*
 * Limits. RP_AUTONAT_MSG_MAX: one received message, prefix excluded (js
 * MAX_MESSAGE_SIZE 8192; go maxMsgSize 4096). RP_AUTONAT_OWN_MSG_MAX: one we
 * write (go's limit). RP_AUTONAT_ADDRS_MAX: PeerInfo addresses kept from one
 * message (the rest are counted in n_addrs_skipped; go dials at most 16).
 */
#define RP_AUTONAT_MSG_MAX     8192
#define RP_AUTONAT_OWN_MSG_MAX 4096
#define RP_AUTONAT_ADDRS_MAX   64

/* ---- Messages -------------------------------------------------------------------------------- */

/*
 * A decoded Message (all three kinds in one struct, as the protobuf is). Views
 * point into the decoded bytes. Absent bytes fields have base NULL; enums are
 * kept as sent (unknown values included). Repeated occurrences merge as
 * protobuf merges them: scalars, last one wins; lists append.
 */
typedef struct rp_autonat_msg {
    bool has_type;
    uint64_t type; /* RP_AUTONAT_DIAL when absent (the protobuf default) */
    bool has_dial;
    bool has_peer;  /* dial.peer present */
    rp_iov peer_id; /* dial.peer.id: multihash bytes, not yet checked */
    size_t n_addrs;
    rp_iov addrs[RP_AUTONAT_ADDRS_MAX]; /* dial.peer.addrs, not yet checked */
    size_t n_addrs_skipped;             /* addresses past RP_AUTONAT_ADDRS_MAX */
    bool has_response;
    bool has_status;
    uint64_t status;    /* RP_AUTONAT_OK when absent */
    rp_iov status_text; /* not checked for UTF-8 */
    rp_iov addr;        /* dialResponse.addr, not yet checked */
} rp_autonat_msg;

/* An empty message. */
void rp_autonat_msg_init(rp_autonat_msg *m);

/*
 * Decodes one Message body (all of [*src, end), no prefix) and merges it into
 * *m; moves *src to end. Unknown fields are skipped. Errors (*src and *m
 * unchanged, `ei` says where): RINGP2P_EPROTOBUF (malformed, or a known field
 * of the wrong wire type), RINGP2P_ELIMIT (over RP_AUTONAT_MSG_MAX).
 */
int rp_autonat_msg_decode(const uint8_t **src, const uint8_t *end, rp_autonat_msg *m,
                          ringp2p_errinfo *ei);

/*
 * Encodes *m as a Message body (no prefix): type when has_type; dial (with
 * peer when has_peer) when has_dial; dialResponse when has_response, its
 * status when has_status; bytes fields when their base is not NULL. Field
 * number order, as go and js write. Returns the length or RINGP2P_ENOBUF;
 * dst NULL with cap 0 measures.
 */
ssize_t rp_autonat_msg_encode(const rp_autonat_msg *m, uint8_t *dst, size_t cap);

/*
 * Reads one length-prefixed message at *src (the stream's bytes so far) into
 * *m (initialized here). Returns 1 (read; *src past it), 0 (not all there yet;
 * nothing consumed) or an error after which the stream is reset:
 * RINGP2P_EVARINT, RINGP2P_ELIMIT (announced over RP_AUTONAT_MSG_MAX) and the
 * errors of rp_autonat_msg_decode. *src unchanged on 0 or error.
 */
int rp_autonat_read_frame(const uint8_t **src, const uint8_t *end, rp_autonat_msg *m,
                          ringp2p_errinfo *ei);

/*
 * Writes a length-prefixed DIAL for peer `self` (copied) asking to be dialed
 * on addrs[n] (binary multiaddrs, read only) into dst[cap]. Returns the length
 * or RINGP2P_EINVAL (an empty or invalid address, no peer ID), RINGP2P_ELIMIT
 * (over RP_AUTONAT_OWN_MSG_MAX or RP_AUTONAT_ADDRS_MAX addresses: ask about
 * fewer), RINGP2P_ENOBUF. dst NULL with cap 0 measures.
 */
ssize_t rp_autonat_write_dial(const ringp2p_peer_id *self, const rp_iov *addrs, size_t n,
                              uint8_t *dst, size_t cap, ringp2p_errinfo *ei);

/*
 * Writes a length-prefixed DIAL_RESPONSE: `status`, `text` (NUL-terminated, or
 * NULL for none) and addr[addr_len] (NULL for none). Same returns as
 * rp_autonat_write_dial (text is cut to fit RP_AUTONAT_OWN_MSG_MAX).
 */
ssize_t rp_autonat_write_response(uint32_t status, const char *text, const uint8_t *addr,
                                  size_t addr_len, uint8_t *dst, size_t cap, ringp2p_errinfo *ei);

/* "OK", "E_DIAL_ERROR", ... or "unknown". */
const char *rp_autonat_status_name(uint64_t status);

/* ---- Server ---------------------------------------------------------------------------------- */

/* go-libp2p options.go defaults. */
#define RP_AUTONAT_SERVER_PEER_MAX     3
#define RP_AUTONAT_SERVER_GLOBAL_MAX   30
#define RP_AUTONAT_SERVER_WINDOW_NS    (UINT64_C(60) * 1000000000)
#define RP_AUTONAT_SERVER_JITTER_NS    (UINT64_C(15) * 1000000000)
#define RP_AUTONAT_SERVER_DIAL_ADDRS   16 /* go maxPeerAddresses */
#define RP_AUTONAT_SERVER_DIAL_TIMEOUT (UINT64_C(15) * 1000000000)
/* Peers counted per window; when full, new peers are refused until it ends. */
#define RP_AUTONAT_SERVER_PEERS_MAX 64

typedef struct rp_autonat_server_config {
    unsigned peer_max;        /* dial-backs per peer per window */
    unsigned global_max;      /* dial-backs per window; 0: no global limit (go) */
    uint64_t window_ns;       /* counts reset after window_ns + up to jitter_ns */
    uint64_t jitter_ns;       /* drawn from `seed`; 0: none */
    uint64_t seed;            /* for the jitter (the host passes random bits) */
    unsigned max_addrs;       /* addresses dialed per request, <= RP_AUTONAT_SERVER_DIAL_ADDRS */
    uint64_t dial_timeout_ns; /* how long a dial-back may take */
    bool allow_private;       /* dial private addresses (go: never) */
    bool allow_self;          /* serve requesters whose IP is one of ours (go: never) */
} rp_autonat_server_config;

/* go's values (the constants above), allow_private and allow_self false. */
void rp_autonat_server_config_default(rp_autonat_server_config *cfg);

typedef struct rp_autonat_server_peer {
    ringp2p_peer_id id;
    unsigned count;
} rp_autonat_server_peer;

typedef struct rp_autonat_server {
    rp_autonat_server_config cfg;
    uint64_t window_end_ns; /* 0: no window open */
    uint64_t rng;
    unsigned global_count;
    size_t n_peers;
    rp_autonat_server_peer peers[RP_AUTONAT_SERVER_PEERS_MAX];
} rp_autonat_server;

/* cfg NULL: defaults. Out-of-range values are clamped (max_addrs to 1..16). */
void rp_autonat_server_init(rp_autonat_server *s, const rp_autonat_server_config *cfg);

/* What to do with one request. */
typedef struct rp_autonat_decision {
    uint32_t status;  /* RP_AUTONAT_OK: dial back; else answer at once with this */
    const char *text; /* a static statusText for refusals (go's texts) */
    ringp2p_peer_id peer;
    size_t n_addrs; /* OK: dial these (thin waists, add /p2p/<peer>); first success wins */
    rp_nataddr addrs[RP_AUTONAT_SERVER_DIAL_ADDRS];
    uint64_t deadline_ns;   /* OK: give up dialing at this time */
    uint64_t respond_at_ns; /* OK: a failure is answered no earlier than this */
} rp_autonat_decision;

/*
 * Handles a request `req` that arrived on a connection to peer `remote` whose
 * remote address is remote_addr[remote_addr_len] (binary; the requester's
 * observed address; a relayed one is refused). own[n_own] (may be NULL/0) are
 * this node's addresses, whose IPs are not dialed unless allow_self. Fills *d:
 * status RP_AUTONAT_OK means dial d->addrs (and count it against the limits),
 * any other status is the answer to send now. Returns 0, or
 * RINGP2P_EPROTOCOL when req is not a DIAL (reset the stream).
 */
int rp_autonat_server_handle(rp_autonat_server *s, const rp_autonat_msg *req,
                             const ringp2p_peer_id *remote, const uint8_t *remote_addr,
                             size_t remote_addr_len, const rp_iov *own, size_t n_own,
                             uint64_t now_ns, rp_autonat_decision *d, ringp2p_errinfo *ei);

/*
 * The answer (length-prefixed) for decision d: its refusal, or for a dial-back
 * OK with `dialed` (binary, the address that connected; NULL: none) when
 * dial_result is 0, else E_DIAL_ERROR. Returns as rp_autonat_write_response.
 */
ssize_t rp_autonat_server_respond(const rp_autonat_decision *d, int dial_result,
                                  const uint8_t *dialed, size_t dialed_len, uint8_t *dst,
                                  size_t cap, ringp2p_errinfo *ei);

/* ---- Client ---------------------------------------------------------------------------------- */

typedef enum rp_autonat_reachability {
    RP_AUTONAT_UNKNOWN = 0,
    RP_AUTONAT_PUBLIC,
    RP_AUTONAT_PRIVATE,
} rp_autonat_reachability;

/* "unknown", "public", "private" (the tool's JSON words). */
const char *rp_autonat_reachability_name(rp_autonat_reachability r);

/* What one probe said. */
typedef enum rp_autonat_observation {
    RP_AUTONAT_OBS_PUBLIC,  /* OK: the server dialed us back */
    RP_AUTONAT_OBS_PRIVATE, /* E_DIAL_ERROR: it tried and failed */
    RP_AUTONAT_OBS_REFUSED, /* E_DIAL_REFUSED: it did not try; says nothing */
    RP_AUTONAT_OBS_ERROR,   /* anything else: other statuses, bad answers, stream failures */
} rp_autonat_observation;

/*
 * Reads a server's answer: OK -> PUBLIC (*addr, if not NULL, the dialed
 * address when it sent one, else base NULL), E_DIAL_ERROR -> PRIVATE,
 * E_DIAL_REFUSED -> REFUSED, anything else — another status, not a
 * DIAL_RESPONSE, no dialResponse — ERROR. A missing status is OK, as
 * protobuf's default (go reads it so).
 */
rp_autonat_observation rp_autonat_response_observation(const rp_autonat_msg *resp, rp_iov *addr);

/* go-libp2p options.go and autonat.go. */
#define RP_AUTONAT_MAX_CONFIDENCE    3
#define RP_AUTONAT_BOOT_DELAY_NS     (UINT64_C(15) * 1000000000)
#define RP_AUTONAT_RETRY_NS          (UINT64_C(90) * 1000000000)
#define RP_AUTONAT_REFRESH_NS        (UINT64_C(15) * 60 * 1000000000)
#define RP_AUTONAT_FORCE_RETRY_NS    (UINT64_C(2) * 1000000000)
#define RP_AUTONAT_REQUEST_TIMEOUT   (UINT64_C(30) * 1000000000)
#define RP_AUTONAT_PEER_THROTTLE_NS  (UINT64_C(90) * 1000000000)
#define RP_AUTONAT_MAX_REFRESH_NS    (UINT64_C(24) * 3600 * 1000000000)
#define RP_AUTONAT_PENDING_MAX       5
#define RP_AUTONAT_CLIENT_RECENT_MAX 64 /* servers remembered as recently asked */

typedef struct rp_autonat_client_config {
    unsigned max_confidence;
    uint64_t boot_delay_ns;      /* before the first probe */
    uint64_t retry_ns;           /* next probe while unsure */
    uint64_t refresh_ns;         /* next probe once sure */
    uint64_t force_retry_ns;     /* next probe when a new server appears and we know nothing */
    uint64_t request_timeout_ns; /* for the host: how long one probe's stream may take */
    uint64_t peer_throttle_ns;   /* a server is not asked again within this */
    unsigned pending_max;        /* probes in flight at once */
    bool allow_private;          /* private servers and inbound connections count */
} rp_autonat_client_config;

/* go's values (the constants above), allow_private false. */
void rp_autonat_client_config_default(rp_autonat_client_config *cfg);

typedef struct rp_autonat_recent {
    ringp2p_peer_id id;
    uint64_t at_ns;
} rp_autonat_recent;

/*
 * The reachability state machine of go's AmbientAutoNAT (autonat.go), with
 * `confidence` in 0..max_confidence:
 *  - PUBLIC observed: from another status, flip to public at once with
 *    confidence 0 (go "aggressively switch to public"); when public,
 *    confidence + 1.
 *  - PRIVATE observed: when private, confidence + 1; otherwise confidence - 1,
 *    and at 0 flip to private. From unknown (confidence 0) the first one flips;
 *    a public status at full confidence needs 4 private results in a row.
 *  - ERROR observed: confidence - 1; at 0, the status becomes unknown.
 *  - REFUSED: no observation; the next probe comes sooner (go forceProbe).
 * Our addresses changing takes one off a full confidence.
 * Probe schedule (go scheduleProbe), from the last probe: force_retry when a
 * server appeared or refused and the status is unknown; retry when unknown,
 * unsure (confidence < max) or private but reached by an inbound connection;
 * refresh otherwise, doubled (at most 24 h) when public and reached by an
 * inbound connection since the last probe. The first probe is boot_delay after
 * init, or as soon as a server appears.
 */
typedef struct rp_autonat_client {
    rp_autonat_client_config cfg;
    rp_autonat_reachability status;
    unsigned confidence;
    bool probed; /* a probe was started since init */
    bool force;  /* probe sooner (a server appeared, or refused) */
    bool inbound_seen;
    uint64_t boot_end_ns;
    uint64_t last_probe_ns;
    uint64_t last_inbound_ns; /* valid when inbound_seen */
    uint64_t next_probe_ns;
    unsigned pending;
    size_t n_recent;
    rp_autonat_recent recent[RP_AUTONAT_CLIENT_RECENT_MAX];
} rp_autonat_client;

/* Starts unknown; cfg NULL: defaults; the first probe is due at now + boot_delay. */
void rp_autonat_client_init(rp_autonat_client *c, const rp_autonat_client_config *cfg,
                            uint64_t now_ns);

/* The current reachability and confidence. */
rp_autonat_reachability rp_autonat_client_status(const rp_autonat_client *c);

/* When the next probe is due (for the host's timer). */
uint64_t rp_autonat_client_next_probe(const rp_autonat_client *c);

/*
 * Whether `server` (its addresses addrs[n], binary, read only) may be asked
 * now: it has a public IP address that is not relayed (any IP with
 * allow_private), none of its public IPs is one of own[n_own] (ours), it was
 * not asked within peer_throttle, and fewer than pending_max probes are in
 * flight (go getPeerToProbe, skipPeer, tryProbe).
 */
bool rp_autonat_client_server_ok(const rp_autonat_client *c, const ringp2p_peer_id *server,
                                 const rp_iov *addrs, size_t n, const rp_iov *own, size_t n_own,
                                 uint64_t now_ns);

/*
 * A probe is due when now_ns >= rp_autonat_client_next_probe: returns true,
 * notes the probe time and schedules the next one. The host then asks one
 * server that passes rp_autonat_client_server_ok (if any) and calls
 * rp_autonat_client_probe_started. False when not due.
 */
bool rp_autonat_client_tick(rp_autonat_client *c, uint64_t now_ns);

/* The host opened a probe to `server` (copied): it is not asked again for a while. */
void rp_autonat_client_probe_started(rp_autonat_client *c, const ringp2p_peer_id *server,
                                     uint64_t now_ns);

/*
 * A probe to `server` ended with `obs` (a stream that failed or timed out is
 * RP_AUTONAT_OBS_ERROR). Returns 1 when the reachability changed (read it
 * with rp_autonat_client_status and report it), else 0.
 */
int rp_autonat_client_probe_done(rp_autonat_client *c, const ringp2p_peer_id *server,
                                 rp_autonat_observation obs, uint64_t now_ns);

/*
 * A peer that speaks AutoNAT finished identify (go
 * EvtPeerIdentificationCompleted): probe soon.
 */
void rp_autonat_client_server_appeared(rp_autonat_client *c, uint64_t now_ns);

/*
 * An inbound connection from remote_addr (binary) arrived: evidence of being
 * reachable, counted when its IP is public (any, with allow_private) and not
 * one of own[n_own].
 */
void rp_autonat_client_inbound(rp_autonat_client *c, const uint8_t *remote_addr, size_t len,
                               const rp_iov *own, size_t n_own, uint64_t now_ns);

/* Our set of addresses changed (a new one appeared): re-check sooner. */
void rp_autonat_client_addrs_changed(rp_autonat_client *c, uint64_t now_ns);

#endif
