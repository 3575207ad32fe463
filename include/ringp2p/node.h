/*
 * A libp2p node: identity, listen addresses, protocol handlers and streams
 * (the interface of the IPFS network spec: ID(), NewStream(protocol, peer),
 * SetStreamHandler(protocol, handler), listen). Raw connections are never
 * exported, only streams.
 *
 * Threads. A node runs N shards (threads with their own io_uring). Every
 * connection, and every stream on it, belongs to one shard; the callbacks of
 * a stream run on that shard, one at a time, and must not block. Functions
 * marked "shard" may only be called from a callback of the stream (or node
 * event) they name; functions marked "any thread" are safe anywhere. Threads
 * that are not shards (a storage service's workers) use the blocking side at
 * the end of this file, which talks to the shards through lock-free queues.
 *
 * Errors are negative RINGP2P_E* codes; functions that can fail for reasons
 * worth a sentence fill an optional ringp2p_errinfo.
 */
#ifndef RINGP2P_NODE_H
#define RINGP2P_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ringp2p/error.h"
#include "ringp2p/key.h"
#include "ringp2p/log.h"
#include "ringp2p/multiaddr.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ringp2p_config ringp2p_config;
typedef struct ringp2p_node ringp2p_node;
typedef struct ringp2p_stream ringp2p_stream;

/* ---- configuration ------------------------------------------------------------------------ */

/* A config with the defaults: fresh Ed25519 identity, no listen address, security
 * "noise,tls", muxers "yamux", one shard per CPU. NULL when out of memory. */
RINGP2P_API ringp2p_config *ringp2p_config_new(void);
RINGP2P_API void ringp2p_config_free(ringp2p_config *cfg);

/* The node's identity (copied; the caller keeps `key`). */
RINGP2P_API int ringp2p_config_identity(ringp2p_config *cfg, const ringp2p_privkey *key);

/* Adds a listen address ("/ip4/0.0.0.0/tcp/4001"). Errors: parse errors, RINGP2P_EUNSUPPORTED
 * (no transport for it). A node that listens dials from its listen port (SO_REUSEPORT, as
 * go-libp2p's TCP transport does: a listen address of the same family, wildcard or matching
 * loopback-ness), so peers observe the address a hole punch comes from (DCUtR); when that
 * address pair is taken the dial uses an ephemeral port instead. */
RINGP2P_API int ringp2p_config_listen(ringp2p_config *cfg, const char *maddr, ringp2p_errinfo *ei);

/* Preference lists, comma-separated names: security "noise,tls,signed,plaintext", muxers
 * "yamux,mplex". Each call replaces the list (a failed call keeps the previous one); the
 * dialer proposes in list order, a listener accepts only what it lists. Unknown or
 * not-yet-built names are RINGP2P_EUNSUPPORTED, named in `ei`. */
RINGP2P_API int ringp2p_config_security(ringp2p_config *cfg, const char *list, ringp2p_errinfo *ei);
RINGP2P_API int ringp2p_config_muxers(ringp2p_config *cfg, const char *list, ringp2p_errinfo *ei);

/* Shard count; 0 = one per CPU. */
RINGP2P_API int ringp2p_config_shards(ringp2p_config *cfg, unsigned n);

/* Named limits with defaults; each is documented where it is defined (node.c). */
typedef enum ringp2p_limit {
    RINGP2P_LIMIT_DIAL_TIMEOUT_MS,         /* dial + security + muxer; default 10000 */
    RINGP2P_LIMIT_STREAMS_INBOUND,         /* concurrent inbound streams per connection */
    RINGP2P_LIMIT_STREAMS_UNACKED,         /* inbound streams not yet accepted */
    RINGP2P_LIMIT_STREAM_WINDOW_MAX,       /* yamux receive window ceiling, bytes */
    RINGP2P_LIMIT_STREAM_WRITE_HIGH,       /* queued bytes per stream that stop writes */
    RINGP2P_LIMIT_CONNECTIONS,             /* total connections */
    RINGP2P_LIMIT_NEGOTIATION_TIMEOUT_MS,  /* multistream per stream */
    RINGP2P_LIMIT_AUTONAT_DIAL_TIMEOUT_MS, /* AutoNAT server: one dial-back; default 15000 */
} ringp2p_limit;
RINGP2P_API int ringp2p_config_limit(ringp2p_config *cfg, ringp2p_limit which, uint64_t value);

/* Log sink for the node (NULL sink: stderr). */
RINGP2P_API void ringp2p_config_log(ringp2p_config *cfg, ringp2p_log_level level,
                                    ringp2p_log_sink sink, void *ctx);

/*
 * Circuit relay v2, the relay side (libp2p specs relay/circuit-v2.md). When
 * enabled the node serves /libp2p/circuit/relay/0.2.0/hop: a RESERVE gets a
 * reservation (our advertised addresses and a voucher signed with the node's
 * key) that lasts reservation_ttl_s or until the peer's last connection to us
 * closes; a CONNECT to a peer holding one opens /libp2p/circuit/relay/0.2.0/stop
 * to it over the connection it already has to us (the relay never dials a
 * target) and, once the target accepts, relays bytes both ways. A relayed
 * connection that passes `data` bytes in one direction, or lasts `duration_s`,
 * is reset at both ends (the spec and js-libp2p; go-libp2p half-closes the
 * spent direction instead).
 *
 * Limits (defaults are go-libp2p's relay.DefaultResources):
 *   reservation_ttl_s        3600; > 0
 *   max_reservations         128 held at once; > 0 (a renewal does not count twice)
 *   max_reservations_per_ip  8 from one IP address; 0: no limit
 *   max_circuits             16 relayed connections a peer may be part of at once; > 0
 *   duration_s               120 per relayed connection; 0: no limit
 *   data                     131072 bytes per direction per relayed connection; 0: no limit
 * With both duration_s and data 0 the relay announces no limit at all.
 */
typedef struct ringp2p_relay_limits {
    uint64_t reservation_ttl_s;
    uint32_t max_reservations;
    uint32_t max_reservations_per_ip;
    uint32_t max_circuits;
    uint32_t duration_s;
    uint64_t data;
} ringp2p_relay_limits;

/* Fills *l with the defaults above. */
RINGP2P_API void ringp2p_relay_limits_default(ringp2p_relay_limits *l);

/* Enables (or disables) the relay service with `limits` (copied; NULL: the defaults).
 * Errors: RINGP2P_EINVAL (a limit that must be > 0 is 0). Off by default. */
RINGP2P_API int ringp2p_config_relay_service(ringp2p_config *cfg, bool enabled,
                                             const ringp2p_relay_limits *limits);

/*
 * Circuit relay v2, the client side (on by default). The node dials
 * RELAY/p2p/R/p2p-circuit/p2p/PEER addresses: it connects to the relay (or
 * reuses a connection to it), asks it over /libp2p/circuit/relay/0.2.0/hop to
 * CONNECT to PEER, and runs security and the muxer over that relayed stream, as
 * over TCP; and it serves /libp2p/circuit/relay/0.2.0/stop, so peers reach it
 * through relays it holds a reservation on (or any relay: the spec does not
 * ask for one). Such connections have `relayed` set in ringp2p_conn_info, and
 * `limited` when the relay announced limits (by default a relay resets a
 * relayed connection after 2 min or 128 KiB each way). new_stream prefers a
 * direct connection to a relayed one when both exist.
 */
RINGP2P_API void ringp2p_config_relay_client(ringp2p_config *cfg, bool enabled);

/*
 * Adds a relay to reserve on: its TCP address with /p2p/<relay id>. After start
 * the node connects to each relay and reserves a slot (RESERVE); every answer,
 * renewal (five minutes before expiry), refusal and loss of the connection to
 * the relay raises RINGP2P_EVENT_RESERVATION; a failed or lost reservation is
 * retried with exponential backoff (2 s up to 5 min). While a reservation is
 * held the node advertises RELAYADDR/p2p/R/p2p-circuit (for the address it
 * reached the relay on and the addresses the relay reported, at most 4 per
 * relay) in identify and in its signed peer record. Ignored with the relay client off
 * (ringp2p_config_relay_client). Errors: parse errors,
 * RINGP2P_EMULTIADDR (no /p2p/ at the end, or a /p2p-circuit address),
 * RINGP2P_EUNSUPPORTED (not TCP), RINGP2P_ELIMIT (more than 8 relays).
 */
RINGP2P_API int ringp2p_config_relay(ringp2p_config *cfg, const char *maddr, ringp2p_errinfo *ei);

/*
 * AutoNAT v1 (libp2p specs autonat/autonat-v1.md): is this node reachable from outside?
 *
 * Client (on by default): once connected peers that serve AutoNAT are known (their identify
 * lists /libp2p/autonat/1.0.0), the node asks one of them at a time, on go-libp2p's schedule
 * (at once when the first such server appears, then every 90 s while unsure and every 15 min
 * once sure), to dial it back on its advertised addresses and on the address that server
 * observed it at (identify's observedAddr). go-libp2p's confidence rule turns the answers into
 * a reachability; every change raises RINGP2P_EVENT_REACHABILITY.
 *
 * Server (off by default): serves /libp2p/autonat/1.0.0. It dials back only the requested
 * addresses on the IP the request came from, each on a new connection that must prove the
 * requester's peer ID and is then closed, within 15 s (RINGP2P_LIMIT_AUTONAT_DIAL_TIMEOUT_MS);
 * at most 3 dial-backs per peer and 30 in all per minute (go-libp2p's limits); a failure is
 * answered no sooner than that timeout, so the service reveals no timing (it is no port
 * scanner); a client waits 30 s for an answer, so a longer timeout only makes clients give up
 * first, and a shorter one (tests) may miss slow peers. Off by default because it makes the node
 * dial addresses on request; unlike go-libp2p, an enabled server serves even while its own
 * reachability is private (a dial-back goes out through a NAT as well as any dial).
 *
 * ALLOW_PRIVATE: private and unroutable addresses count (client) and are dialed (server). By
 * go-libp2p's rule only public IPs do: 10/8, 172.16/12, 192.168/16, 127/8, 100.64/10 and the
 * documentation ranges such as 203.0.113/24 never do without it.
 */
#define RINGP2P_AUTONAT_CLIENT        0x1u /* probe our reachability (default) */
#define RINGP2P_AUTONAT_SERVER        0x2u /* serve dial-backs to others */
#define RINGP2P_AUTONAT_ALLOW_PRIVATE 0x4u /* private IPs count and are dialed */

/* Sets the AutoNAT flags above (replacing RINGP2P_AUTONAT_CLIENT, the default; 0 turns
 * AutoNAT off). Errors: RINGP2P_EINVAL (an unknown bit). */
RINGP2P_API int ringp2p_config_autonat(ringp2p_config *cfg, unsigned flags);

/*
 * DCUtR (libp2p specs relay/DCUtR.md), on by default with the relay client: hole
 * punching over relayed connections. The node serves /libp2p/dcutr; when it receives a
 * relayed connection from a peer whose identify lists the protocol, it first dials the
 * peer's public addresses directly if it knows any, then, up to 3 times, exchanges
 * addresses with it over the relayed connection (our listen addresses and the addresses
 * peers observe us at, confirmed or not), measures the round trip, and both sides dial
 * each other at the same moment from their listen port (TCP simultaneous open through
 * port-preserving NATs). Each hole-punch dial gets the node's dial timeout
 * (RINGP2P_LIMIT_DIAL_TIMEOUT_MS). The outcome is RINGP2P_EVENT_HOLEPUNCH. A node without
 * a listen address has nothing to offer: its hole punches end at once with RINGP2P_ENOENT.
 *
 * ALLOW_PRIVATE: private and unroutable addresses (go-libp2p's rule, as for AutoNAT) are
 * offered and dialed too; loopback ones only when the relay itself is on loopback.
 */
#define RINGP2P_DCUTR_ON            0x1u /* hole punching (default) */
#define RINGP2P_DCUTR_ALLOW_PRIVATE 0x2u /* private IPs are offered and dialed */

/* Sets the DCUtR flags above (RINGP2P_DCUTR_ON is the default; 0 turns DCUtR off).
 * Errors: RINGP2P_EINVAL (an unknown bit, or ALLOW_PRIVATE without ON). */
RINGP2P_API int ringp2p_config_dcutr(ringp2p_config *cfg, unsigned flags);

typedef enum ringp2p_reachability {
    RINGP2P_REACHABILITY_UNKNOWN = 0,
    RINGP2P_REACHABILITY_PUBLIC,
    RINGP2P_REACHABILITY_PRIVATE,
} ringp2p_reachability;

/* "unknown", "public", "private". */
RINGP2P_API const char *ringp2p_reachability_name(ringp2p_reachability r);

/* ---- node events -------------------------------------------------------------------------- */

typedef enum ringp2p_event_type {
    RINGP2P_EVENT_CONNECTED,         /* a connection finished its upgrade */
    RINGP2P_EVENT_DISCONNECTED,      /* a connection closed (err says why) */
    RINGP2P_EVENT_IDENTIFIED,        /* identify (or a push) from a peer was applied */
    RINGP2P_EVENT_ADDRS_CHANGED,     /* our own advertised addresses changed */
    RINGP2P_EVENT_RELAY_RESERVATION, /* relay service: a peer made or renewed a reservation */
    RINGP2P_EVENT_RELAY_CIRCUIT,     /* relay service: a relayed connection ended (err says why) */
    RINGP2P_EVENT_REACHABILITY,      /* AutoNAT: our reachability changed (ev->reachability) */
    RINGP2P_EVENT_RESERVATION, /* relay client: our reservation on a relay (ev->reservation) */
    RINGP2P_EVENT_HOLEPUNCH    /* DCUtR: a hole punch to a peer ended (ev->holepunch) */
} ringp2p_event_type;

/* What a callback is told about a connection; valid during the callback only. */
typedef struct ringp2p_conn_info {
    ringp2p_peer_id peer;
    const ringp2p_multiaddr *remote_addr;
    const ringp2p_multiaddr *local_addr;
    bool inbound;         /* the peer dialed; a hole-punched one: we had the server role (B) */
    bool relayed;         /* over a circuit relay (remote_addr RELAY/p2p-circuit/p2p/PEER) */
    bool limited;         /* relayed with limits the relay announced (it resets past them) */
    const char *security; /* "/noise" */
    const char *muxer;    /* "/yamux/1.0.0" */
    uint64_t id;          /* unique per connection over the node's life, never 0 */
    unsigned shard;
} ringp2p_conn_info;

/*
 * What the relay service tells about a reservation or a relayed connection
 * (ringp2p_config_relay_service); valid during the callback only.
 */
typedef struct ringp2p_relay_info {
    ringp2p_peer_id src;   /* RESERVATION: the reserving peer; CIRCUIT: the initiator */
    ringp2p_peer_id dst;   /* CIRCUIT: the target (the peer holding the reservation) */
    uint64_t expire;       /* RESERVATION: Unix seconds */
    uint64_t bytes_to_dst; /* CIRCUIT: bytes relayed from src to dst */
    uint64_t bytes_to_src; /* CIRCUIT: bytes relayed from dst to src */
    uint64_t duration_ms;  /* CIRCUIT: from the target's answer to the end */
} ringp2p_relay_info;

/*
 * Our reservation on a relay (ringp2p_config_relay); valid during the callback only.
 * ok: made or renewed, until `expire`. Otherwise `error` says why: the relay refused
 * (its status, e.g. a node that does not serve the hop protocol or is full), it could
 * not be reached, or `lost`: a reservation we held ended because the connection to
 * the relay closed. Failures are retried with backoff.
 */
typedef struct ringp2p_reservation_info {
    ringp2p_peer_id relay;
    const ringp2p_multiaddr *relay_addr; /* as configured, with /p2p/<relay> */
    bool ok;
    bool lost;
    uint64_t expire;   /* ok: Unix seconds */
    const char *error; /* !ok: what went wrong */
} ringp2p_reservation_info;

/*
 * A hole punch (ringp2p_config_dcutr) ended; valid during the callback only. The
 * initiator (the node that received the relayed connection) reports once per
 * relayed connection, after its last attempt; the responder (the node that dialed
 * through the relay) reports each exchange it answered. ok: a direct connection to
 * `peer` exists (a CONNECTED event with `relayed` false came before this), new
 * streams take it, and the relayed connection closes once no stream is open on it.
 */
typedef struct ringp2p_holepunch_info {
    ringp2p_peer_id peer;
    bool ok;
    bool initiator;    /* we received the relayed connection and drove the exchange */
    unsigned attempts; /* hole-punch attempts (0: a plain direct dial did it) */
    uint64_t rtt_ns;   /* the round trip over the relay last measured (0: none) */
    const char *error; /* !ok: what went wrong */
} ringp2p_holepunch_info;

/*
 * An event. conn: CONNECTED, DISCONNECTED, IDENTIFIED and RELAY_RESERVATION (the connection
 * the request came on); NULL for RELAY_CIRCUIT. err: DISCONNECTED: 0 or the reason;
 * RELAY_CIRCUIT: 0 (both ends closed), RINGP2P_ELIMIT (the data limit), RINGP2P_ETIMEDOUT
 * (the duration limit), or the reset or error that ended it. RELAY_CIRCUIT runs on the shard
 * of one of the circuit's two streams; REACHABILITY (conn NULL) on the shard of the
 * connection to the AutoNAT server whose answer changed it. RESERVATION (conn NULL): err 0
 * when ok, else the error (RINGP2P_ECONNREFUSED: the relay refused), on some shard.
 * HOLEPUNCH: conn is the relayed connection (NULL once it is gone); err 0 when ok, else
 * why not (RINGP2P_ETIMEDOUT: the punch did not connect in time; RINGP2P_ENOENT: one side
 * had no address to offer), on the relayed connection's shard.
 */
typedef struct ringp2p_event {
    ringp2p_event_type type;
    const ringp2p_conn_info *conn;
    int err;
    const char *agent_version;                   /* IDENTIFIED */
    const ringp2p_relay_info *relay;             /* RELAY_RESERVATION, RELAY_CIRCUIT */
    ringp2p_reachability reachability;           /* REACHABILITY: the new status */
    const ringp2p_reservation_info *reservation; /* RESERVATION (conn NULL) */
    const ringp2p_holepunch_info *holepunch;     /* HOLEPUNCH */
} ringp2p_event;

/* Node events, on the shard of the connection concerned. Must not block. */
typedef void (*ringp2p_event_fn)(ringp2p_node *node, const ringp2p_event *ev, void *ctx);
RINGP2P_API void ringp2p_config_events(ringp2p_config *cfg, ringp2p_event_fn fn, void *ctx);

/* ---- node --------------------------------------------------------------------------------- */

/* Creates a node from `cfg` (read, not retained). Any thread. */
RINGP2P_API int ringp2p_node_new(const ringp2p_config *cfg, ringp2p_node **out,
                                 ringp2p_errinfo *ei);

/* Starts the shards and listens on the configured addresses. Any thread, once. Errors:
 * RINGP2P_EADDRINUSE, RINGP2P_EUNSUPPORTED (kernel lacks io_uring), ... with `ei`. */
RINGP2P_API int ringp2p_node_start(ringp2p_node *node, ringp2p_errinfo *ei);

/* Closes every connection gracefully and joins the shards. Any thread but a shard. */
RINGP2P_API void ringp2p_node_stop(ringp2p_node *node);
RINGP2P_API void ringp2p_node_free(ringp2p_node *node);

/* The node's peer ID, valid as long as the node. Any thread. */
RINGP2P_API const ringp2p_peer_id *ringp2p_node_id(const ringp2p_node *node);

/* The addresses we advertise, each with /p2p/<id> appended: the listen addresses after start
 * (ports resolved, wildcard addresses expanded to the interfaces' addresses), the circuit
 * addresses of held relay reservations and observed addresses that two peers confirmed. New
 * caller-owned multiaddrs are written to out[0..max); returns the total count. Any thread. */
RINGP2P_API size_t ringp2p_node_addrs(ringp2p_node *node, ringp2p_multiaddr **out, size_t max);

/* What AutoNAT's client believes now (UNKNOWN with the client off). Any thread. */
RINGP2P_API ringp2p_reachability ringp2p_node_reachability(ringp2p_node *node);

/* ---- streams ------------------------------------------------------------------------------ */

/*
 * Callbacks of one stream, set with ringp2p_stream_set_callbacks; the struct
 * is read by pointer and must outlive the stream (a static const table).
 */
typedef struct ringp2p_stream_callbacks {
    /* Bytes from the peer, borrowed until the callback returns. Returning
     * fewer than `len` is not possible: copy what you keep, or pause. */
    void (*on_data)(ringp2p_stream *s, void *ctx, const uint8_t *data, size_t len);
    /* The peer closed its write side; no more on_data. */
    void (*on_eof)(ringp2p_stream *s, void *ctx);
    /* Writes are accepted again after ringp2p_stream_write returned RINGP2P_EAGAIN. */
    void (*on_writable)(ringp2p_stream *s, void *ctx);
    /* The stream is finished: err 0 when both sides closed, else the reset or connection
     * error. `s` is invalid once this returns. Required. */
    void (*on_close)(ringp2p_stream *s, void *ctx, int err);
} ringp2p_stream_callbacks;

/* Shard. Installs callbacks; call it in the handler or open callback, before it returns. */
RINGP2P_API void ringp2p_stream_set_callbacks(ringp2p_stream *s,
                                              const ringp2p_stream_callbacks *cbs, void *ctx);

/* An inbound stream for a registered protocol, on its shard. Set callbacks before returning
 * (or reset the stream). */
typedef void (*ringp2p_stream_handler)(ringp2p_node *node, ringp2p_stream *s, void *ctx);

/* Registers (or replaces) the handler of `protocol` (copied). Any thread; may be called
 * before or after start (identify push tells peers). */
RINGP2P_API int ringp2p_node_set_stream_handler(ringp2p_node *node, const char *protocol,
                                                ringp2p_stream_handler fn, void *ctx);
RINGP2P_API int ringp2p_node_remove_stream_handler(ringp2p_node *node, const char *protocol);

/* Result of ringp2p_node_new_stream on the stream's shard: s is NULL when err < 0, and `ei`
 * (valid during the callback) says why (refused, timeout, wrong peer ID, no common
 * security, muxer or protocol: each its own code). */
typedef void (*ringp2p_open_fn)(ringp2p_node *node, ringp2p_stream *s, int err,
                                const ringp2p_errinfo *ei, void *ctx);

/*
 * Any thread. Opens a stream to the peer at `addr` speaking the first of
 * protocols[0..n) the peer accepts. `addr` is a TCP address, normally ending
 * in /p2p/<id> (without it, any peer there is accepted), a bare /p2p/<id>
 * naming a peer we are connected to, or a relayed address
 * RELAY/p2p/R/p2p-circuit/p2p/<id> (ringp2p_config_relay_client; with the
 * client off `fn` hears RINGP2P_EUNSUPPORTED). A connection to that peer is reused,
 * whichever shard owns it; otherwise one is dialed (a bare /p2p/<id> then
 * fails with RINGP2P_ENOENT). `addr` and `protocols` are read during the
 * call. Errors returned here: RINGP2P_EINVAL, RINGP2P_ECLOSED (not started
 * or stopping), RINGP2P_EUNSUPPORTED (no transport for `addr`),
 * RINGP2P_EPEERID, RINGP2P_ENOMEM; every other outcome reaches `fn`.
 *
 * Lazy negotiation (as go-libp2p does): with exactly one protocol, which the
 * peer listed in identify on that connection, `fn` runs as soon as the
 * proposal is queued, without waiting for the peer's answer, so what the
 * stream writes travels with the proposal (a half-close waits for the answer,
 * except to a ringp2p peer: js-libp2p 3.3 loses a FIN that arrives with the
 * proposal). Should the peer refuse after all,
 * or not answer within RINGP2P_LIMIT_NEGOTIATION_TIMEOUT_MS, the open stream
 * ends in on_close with RINGP2P_ENEGOTIATION (RINGP2P_ESTREAMRESET if the
 * peer resets it as it refuses) or RINGP2P_ETIMEDOUT, and no byte the peer
 * sent is delivered. With several protocols, or one the peer
 * did not list, `fn` hears the outcome of the negotiation itself.
 */
RINGP2P_API int ringp2p_node_new_stream(ringp2p_node *node, const ringp2p_multiaddr *addr,
                                        const char *const *protocols, size_t n, ringp2p_open_fn fn,
                                        void *ctx);

/*
 * Any thread; does not wait. Hangs up on `peer` (read during the call), as
 * go-libp2p's Network().ClosePeer and js-libp2p's hangUp do: every connection
 * to it is closed, direct and relayed, and so is every connection being dialed
 * or upgraded to it.
 *
 * A connection that is up closes gracefully: the muxer says goodbye (yamux
 * GoAway with the normal code; mplex has no such frame), each stream is reset,
 * what is queued is flushed, then the transport closes (TCP FIN; a relayed
 * connection's relay stream closes at both ends). Here, each open stream's
 * on_close runs with RINGP2P_ECLOSED; an open still negotiating, and each
 * new_stream waiting for one of these connections (dialing, upgrading, or
 * queued behind the muxer's open backlog), hears RINGP2P_ECLOSED with `ei`
 * saying the peer was hung up on; then RINGP2P_EVENT_DISCONNECTED (err 0)
 * follows for each connection that had been CONNECTED. The peer sees its
 * streams reset (RINGP2P_ESTREAMRESET) and the connection end (its
 * DISCONNECTED, err 0). Whatever the node holds because of the connection
 * goes with it, as on any disconnect (the relay service's reservation of a
 * peer whose last connection this was, circuits through it).
 *
 * Each shard does this on one of its next loop turns, after every
 * ringp2p_node_new_stream made before this call and before every one made
 * after it returns (from any thread): a new_stream made afterwards never gets
 * one of these connections, it dials a new one (a bare /p2p/<id> fails with
 * RINGP2P_ENOENT). The events above tell when the connections are gone.
 *
 * Returns 0 also when there was nothing to close, as go-libp2p's ClosePeer
 * returns nil: hanging up twice is harmless. It bans nothing: the peer may
 * connect again, and so may the node itself (a relay of ringp2p_config_relay
 * is reserved on again after the backoff). Not reached: an inbound connection
 * still in its security handshake (whose peer is not known yet) and a dial
 * through a relay that has not answered CONNECT yet; either may become a
 * connection to `peer` after the call. Errors: RINGP2P_EINVAL (NULL, or not a
 * peer ID's length), RINGP2P_ECLOSED (not started, or stopping: the stop
 * closes everything anyway), RINGP2P_ENOMEM (some shards may not have hung
 * up; calling again is safe).
 */
RINGP2P_API int ringp2p_node_hangup(ringp2p_node *node, const ringp2p_peer_id *peer);

/* Shard. Copies len bytes into the stream. Returns len, or RINGP2P_EAGAIN when the stream's
 * queue is full (wait for on_writable), RINGP2P_ECLOSED after close_write or reset. */
RINGP2P_API ssize_t ringp2p_stream_write(ringp2p_stream *s, const void *data, size_t len);

/* Shard. Queues caller memory without copying; release(ctx, data, len) runs on this shard
 * when ringp2p no longer needs it. Errors as ringp2p_stream_write (nothing queued then). */
typedef void (*ringp2p_release_fn)(void *ctx, const void *data, size_t len);
RINGP2P_API int ringp2p_stream_write_ref(ringp2p_stream *s, const void *data, size_t len,
                                         ringp2p_release_fn release, void *ctx);

/* Shard. Half-close: no more writes; queued bytes are still delivered. */
RINGP2P_API int ringp2p_stream_close_write(ringp2p_stream *s);
/* Shard. Abort both directions; on_close follows with RINGP2P_ESTREAMRESET. */
RINGP2P_API void ringp2p_stream_reset(ringp2p_stream *s);
/* Shard. Backpressure on the read side: the peer's window stops growing while paused
 * (yamux). mplex has no window: once the stream's unread bytes fill its buffer (4 MiB,
 * RINGP2P_LIMIT_STREAM_WINDOW_MAX) the whole connection stops reading, so every stream on
 * it waits, until the stream is resumed and has room, or is reset; if it reads nothing
 * for 5 s meanwhile, it is reset (on_close with RINGP2P_ELIMIT). */
RINGP2P_API void ringp2p_stream_pause_read(ringp2p_stream *s);
RINGP2P_API void ringp2p_stream_resume_read(ringp2p_stream *s);

/* Shard. About the stream; strings and structs valid as long as the stream. */
RINGP2P_API const char *ringp2p_stream_protocol(const ringp2p_stream *s);
RINGP2P_API const ringp2p_conn_info *ringp2p_stream_conn(const ringp2p_stream *s);

/* ---- the blocking side (threads that are not shards) -------------------------------------- */

typedef struct ringp2p_bstream ringp2p_bstream;

/* Opens a stream as ringp2p_node_new_stream does and waits up to timeout_ms for it. Not on a
 * shard. On success *out is owned by the caller (ringp2p_bstream_close). */
RINGP2P_API int ringp2p_bstream_open(ringp2p_node *node, const ringp2p_multiaddr *addr,
                                     const char *const *protocols, size_t n, int timeout_ms,
                                     ringp2p_bstream **out, ringp2p_errinfo *ei);

/* Wraps an inbound stream (call from its handler, on the shard) so another thread can use it
 * with the functions below; the shard side's callbacks then belong to ringp2p. */
RINGP2P_API int ringp2p_bstream_adopt(ringp2p_stream *s, ringp2p_bstream **out);

/* Reads up to len bytes, waiting up to timeout_ms (-1: forever). Returns the count, 0 at
 * end of stream, RINGP2P_ETIMEDOUT, RINGP2P_ESTREAMRESET or another error. One thread. */
RINGP2P_API ssize_t ringp2p_bstream_read(ringp2p_bstream *bs, void *buf, size_t len,
                                         int timeout_ms);
/* Writes all len bytes (copied), waiting for window as needed. One thread. */
RINGP2P_API ssize_t ringp2p_bstream_write(ringp2p_bstream *bs, const void *buf, size_t len,
                                          int timeout_ms);
/* Half-close the write side. */
RINGP2P_API int ringp2p_bstream_close_write(ringp2p_bstream *bs);
/* A file descriptor that becomes readable when ringp2p_bstream_read would not block (for
 * poll/epoll loops). Owned by the bstream. */
RINGP2P_API int ringp2p_bstream_fd(const ringp2p_bstream *bs);
/* Closes (resetting if the stream is not finished) and frees. */
RINGP2P_API void ringp2p_bstream_close(ringp2p_bstream *bs);

#ifdef __cplusplus
}
#endif
#endif
