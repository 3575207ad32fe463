/*
 * The host: the libp2p connection pipeline and the stream layer on the
 * sharded runtime (DESIGN.md sections 4 and 6; include/ringp2p/node.h is the
 * public face). Internal to src/host; nothing here is public API.
 *
 * Pipeline of one connection, all on the shard that owns it:
 *   TCP (runtime) -> multistream-select of the security protocol from the
 *        node's list ("/noise" then "/tls/1.0.0" by default;
 *        "/ringp2p/signed/1.0.0" and "/plaintext/2.0.0" only when
 *        configured), driven through rp_hsec_ops
 *     -> its handshake (Noise XX for both /noise and signed mode, TLS 1.3 in
 *        libssl for /tls/1.0.0; expected peer from the dialed /p2p/)
 *     -> muxer from the node's list ("/yamux/1.0.0" by default, "/mplex/6.7.0"
 *        when configured): early negotiation when both sides offered muxers
 *        (noise, signed: extensions; tls: ALPN), else multistream-select
 *        over the channel
 *     -> the muxer, driven through rp_hmux_ops -> per stream
 *        multistream-select -> handler / open callback.
 *
 * Receive: in the upgrade phases bytes are copied into a small buffer
 * (handshake messages are tiny). Once the handshake is done, transport frames are
 * opened in place in the runtime's receive buffer; a frame cut by the end of
 * a receive is copied into a per-connection reassembly buffer and opened
 * there. Stream payload reaches on_data as views into those buffers; a paused
 * stream keeps its payload by holding the receive buffer (rp_rbuf_hold) or,
 * for bytes in the reassembly buffer, by a copy.
 *
 * Send: stream writes are referenced by the muxer; a write marks its connection
 * dirty and puts it on the shard's flush list; one self-posted message per
 * loop turn seals every dirty connection's pending muxer output in one pass
 * (Noise records of up to 64 KiB, TLS records of 16 KiB) and hands the ciphertext to the runtime
 * by reference (rp_conn_send_ref). The message runs in step 1 of the next
 * turn and the runtime gathers the sends in step 4 of the same turn.
 *
 * Shared state: the node-wide peer directory (peer -> shard, connection id)
 * and the handler table master copy, both behind one mutex (not on the
 * datapath: touched once per connection, per dial and per handler change).
 * Each shard has its own reference to an immutable handler table, replaced by
 * a message when the table changes.
 */
#ifndef RP_HOST_HOST_H
#define RP_HOST_HOST_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/log.h"
#include "multistream/multistream.h"
#include "muxer/mplex.h"
#include "muxer/yamux.h"
#include "protocols/identify.h"
#include "ringp2p/node.h"
#include "runtime/conn.h"
#include "runtime/runtime.h"
#include "runtime/timer.h"
#include "security/noise.h"
#include "transport/tcp.h"

/* Listen addresses a config holds. */
#define RP_HOST_LISTEN_MAX 16
/*
 * Addresses we advertise (listen addresses with wildcards expanded to the
 * interfaces' addresses, then adopted observed addresses); the rest are
 * dropped. 32 short TCP addresses keep our identify message and its signed
 * record well under RP_IDENTIFY_OWN_MSG_MAX.
 */
#define RP_HOST_ADDRS_MAX 32
/* Upgrade-phase bytes buffered (multistream lines and handshake frames; signed mode
 * and plaintext frames are no larger than Noise ones). */
#define RP_HOST_PRE_MAX (2 * RP_NOISE_FRAME_MAX)
/* Plaintext sealed per batch (several full Noise records); the seal loop repeats. */
#define RP_HOST_SEAL_BATCH (4 * (size_t)RP_NOISE_PLAINTEXT_MAX)
/* Muxer iovs and header room per seal batch. */
#define RP_HOST_SEAL_IOV 256
/* The longest frame header of any muxer (yamux 12, mplex at most 12). */
#define RP_HOST_MUX_HDR_MAX 12
_Static_assert(RP_YAMUX_HEADER_LEN <= RP_HOST_MUX_HDR_MAX &&
                   RP_MPLEX_HEADER_MAX <= RP_HOST_MUX_HDR_MAX,
               "a muxer header outgrows the seal batch's header room");
/* Defaults of the ringp2p_limit values (node.h). */
#define RP_HOST_DIAL_TIMEOUT_MS_DEFAULT        10000u
#define RP_HOST_STREAM_WRITE_HIGH_DEFAULT      (1u << 20)
#define RP_HOST_NEGOTIATION_TIMEOUT_MS_DEFAULT 10000u
#define RP_HOST_CONNECTIONS_DEFAULT            100000u
/* Copy buffer size of ringp2p_stream_write (small writes coalesce into one). */
#define RP_HOST_WCHUNK 16384
/* Stream muxers a config lists (yamux, mplex). */
#define RP_HOST_MUXERS_MAX 4

/* Security protocols a config lists (noise, tls, signed, plaintext). */
#define RP_HOST_SECURITY_MAX 4
/* Relays a config lists (ringp2p_config_relay) and the longest address of one (binary). */
#define RP_HOST_RELAYS_MAX     8
#define RP_HOST_RELAY_ADDR_MAX 128
/* Circuit addresses advertised for held reservations, in all and per relay (relay_client.c). */
#define RP_HOST_RADDRS_MAX       16
#define RP_HOST_RADDRS_PER_RELAY 4

/*
 * One security protocol as the host drives it (hsec.c). A session is opaque
 * (`void *`); every entry mirrors the rp_noise function of the same role.
 *
 * Framing: a frame is frame_header_len bytes whose bytes frame_len_off and
 * frame_len_off + 1 hold the big-endian length of what follows (noise and
 * signed: offset 0 of a 2-byte header; TLS: offset 3 of a 5-byte record
 * header), at most frame_max bytes in all. The host reassembles a frame cut
 * by the end of a receive and opens whole frames. A protocol without framing
 * (plaintext) has frame_header_len 0: its open takes everything given, so the
 * host never reassembles for it.
 *
 * pending/take (NULL when a protocol never queues): output the session
 * produced outside seal (the rest of a handshake flight, a reply to a
 * post-handshake message, an alert), which the host sends after handshake
 * steps and opens. seal writes queued output ahead of its records, and
 * sealed_len counts it.
 */
typedef struct rp_hsec_ops {
    const char *name; /* config name: "noise" */
    const char *id;   /* multistream protocol ID: "/noise" */
    size_t frame_header_len, frame_len_off, frame_max;
    /* A session for a connection of node n (n's key and muxers); *out the caller's (free). */
    int (*new_session)(ringp2p_node *n, bool initiator, const ringp2p_peer_id *expect, void **out,
                       ringp2p_errinfo *ei);
    int (*handshake)(void *s, uint8_t **src, uint8_t *end, rp_wbuf *out, ringp2p_errinfo *ei);
    /* Room seal needs for plaintext_len bytes, queued output included. */
    size_t (*sealed_len)(const void *s, size_t plaintext_len);
    ssize_t (*seal)(void *s, const rp_iov *in, size_t n, uint8_t *out, size_t cap,
                    ringp2p_errinfo *ei);
    int (*open)(void *s, uint8_t **src, uint8_t *end, rp_iov *plain, ringp2p_errinfo *ei);
    size_t (*pending)(const void *s);
    size_t (*take)(void *s, uint8_t *dst, size_t cap);
    /*
     * Optional: ends our sending side of the channel on a graceful close
     * (TLS: queues close_notify, RFC 8446 §6.1), after the last sealed
     * output; the host then sends what pending/take hold and closes.
     */
    void (*close_write)(void *s);
    const ringp2p_peer_id *(*remote_peer)(const void *s);
    const ringp2p_pubkey *(*remote_key)(const void *s);
    const char *(*muxer)(const void *s); /* early-negotiated muxer or NULL */
    void (*free)(void *s);
} rp_hsec_ops;

/* rp_hsec_ops.handshake's return when done (RP_NOISE_DONE, RP_TLS_DONE, RP_SIGNED_DONE, ...). */
#define RP_HSEC_DONE 1

/* hsec.c: the protocol of a config name ("noise", len bytes); NULL if none. */
const rp_hsec_ops *rp_hsec_by_name(const char *name, size_t len);
/* hsec.c: frees what the node's sessions share (made at the first handshake; NULL is fine). */
struct rp_hsec_shared;
void rp_hsec_shared_free(struct rp_hsec_shared *sh);
/* hsec.c: the node's cache of verified signatures (crypto/sigcache.h), NULL without memory. */
rp_sigcache *rp_hsec_sigcache(ringp2p_node *n);

/*
 * One stream muxer as the host drives it (hmux.c). A session is opaque
 * (`void *`), a stream an opaque rp_hmux_stream; each entry mirrors the
 * rp_yamux function of the same role. mplex has no timers (next_timeout is
 * UINT64_MAX), no go-away (a no-op), no open backlog (no OPEN_READY) and no
 * window: consumed frees buffer allowance, and when a stream that is not read
 * fills its buffer, receive blocks (RINGP2P_EAGAIN with `blocked` true) until
 * it has room, is reset or released, or the block deadline passes (the
 * stream is then reset: RP_HMUX_EV_RESET with RINGP2P_ELIMIT).
 */
typedef struct rp_hmux_stream rp_hmux_stream;

typedef enum rp_hmux_event_type {
    RP_HMUX_EV_NONE = 0,      /* nothing for the host (yamux RTT, ping timeout) */
    RP_HMUX_EV_OPENED,        /* the peer opened `stream`: accept or reset it, release it */
    RP_HMUX_EV_DATA,          /* `len` bytes at `data` (a view into the input); report consumed */
    RP_HMUX_EV_FIN,           /* the peer closed its direction */
    RP_HMUX_EV_RESET,         /* err: RINGP2P_ESTREAMRESET (the peer) or RINGP2P_ELIMIT (buffer) */
    RP_HMUX_EV_WRITABLE,      /* write would take bytes it refused */
    RP_HMUX_EV_OPEN_READY,    /* open, refused with RINGP2P_EAGAIN, may succeed (yamux) */
    RP_HMUX_EV_SESSION_ERROR, /* err; the last event */
    RP_HMUX_EV_GO_AWAY,       /* the peer takes no new streams (yamux GoAway, normal) */
} rp_hmux_event_type;

typedef struct rp_hmux_event {
    rp_hmux_event_type type;
    int err;
    rp_hmux_stream *stream;
    void *user;
    const uint8_t *data;
    size_t len;
} rp_hmux_event;

/* As rp_yamux_out / rp_mplex_out. */
typedef struct rp_hmux_out {
    uint8_t *hdr;
    size_t hdr_cap;
    rp_iov *iov;
    size_t iov_cap;
    size_t max_bytes;
    size_t hdr_len, niov; /* out */
} rp_hmux_out;

typedef struct rp_hmux_ops {
    const char *name; /* config name: "yamux" */
    const char *id;   /* protocol ID: "/yamux/1.0.0" */
    /* A session for a connection of node n (its limits); *out the caller's (free). */
    int (*new_session)(ringp2p_node *n, bool dialer, uint64_t now_ns, void **out);
    void (*free)(void *m);
    int (*receive)(void *m, const uint8_t **src, const uint8_t *end, uint64_t now_ns,
                   ringp2p_errinfo *ei);
    bool (*next_event)(void *m, rp_hmux_event *ev);
    ssize_t (*send)(void *m, rp_hmux_out *out, uint64_t now_ns);
    bool (*want_send)(const void *m);
    uint64_t (*next_timeout)(const void *m); /* UINT64_MAX: never */
    void (*on_timeout)(void *m, uint64_t now_ns);
    void (*go_away)(void *m); /* graceful: no new streams */
    int (*open)(void *m, void *user, rp_hmux_stream **out);
    int (*accept)(rp_hmux_stream *st, void *user);
    ssize_t (*write)(rp_hmux_stream *st, const void *data, size_t len);
    size_t (*writable)(rp_hmux_stream *st);
    int (*close)(rp_hmux_stream *st);
    int (*reset)(rp_hmux_stream *st);
    int (*consumed)(rp_hmux_stream *st, size_t n, uint64_t now_ns);
    void (*release)(rp_hmux_stream *st);
    uint64_t (*emitted)(const rp_hmux_stream *st);
    /*
     * True while receive is blocked on a full stream (mplex; yamux never is):
     * *deadline_ns gets the time by which receive must be called again.
     */
    bool (*blocked)(const void *m, uint64_t *deadline_ns);
} rp_hmux_ops;

/* hmux.c: the muxer of a config name ("yamux", len bytes) or of a protocol ID; NULL if none. */
const rp_hmux_ops *rp_hmux_by_name(const char *name, size_t len);
const rp_hmux_ops *rp_hmux_by_id(const char *id);

typedef struct rp_hshard rp_hshard;
typedef struct rp_hconn rp_hconn;
typedef struct rp_hopen rp_hopen;

/* An immutable handler table; shards hold references. */
typedef struct rp_htable {
    atomic_int refs;
    size_t n;
    const char **names; /* the strings are owned by the table */
    ringp2p_stream_handler *fns;
    void **ctxs;
} rp_htable;

rp_htable *rp_htable_ref(rp_htable *t);
void rp_htable_unref(rp_htable *t);
/* Index of `proto` in t, or -1. */
int rp_htable_find(const rp_htable *t, const char *proto, size_t len);

struct ringp2p_config {
    ringp2p_privkey *key;
    size_t nlisten;
    char *listen[RP_HOST_LISTEN_MAX];
    size_t nsec;
    const rp_hsec_ops *sec[RP_HOST_SECURITY_MAX]; /* preference order */
    size_t nmux;
    const char *muxers[RP_HOST_MUXERS_MAX]; /* protocol IDs (rp_hmux_ops.id), preference order */
    unsigned shards;
    uint64_t limits[RINGP2P_LIMIT_AUTONAT_DIAL_TIMEOUT_MS + 1];
    uint64_t mplex_block_ms; /* internal, for tests: mplex's block timeout (0: the default) */
    ringp2p_log_level log_level;
    ringp2p_log_sink log_sink;
    void *log_ctx;
    ringp2p_event_fn ev_fn;
    void *ev_ctx;
    bool relay_service; /* serve circuit relay v2's hop protocol (relay_svc.c) */
    ringp2p_relay_limits relay_limits;
    unsigned autonat;      /* RINGP2P_AUTONAT_* flags (autonat_svc.c) */
    bool relay_client_off; /* no relayed dialing, no stop handler (relay_client.c) */
    size_t nrelays;        /* relays to reserve on (binary addresses ending with /p2p/RELAY) */
    uint8_t relays[RP_HOST_RELAYS_MAX][RP_HOST_RELAY_ADDR_MAX];
    size_t relay_len[RP_HOST_RELAYS_MAX];
    unsigned dcutr; /* RINGP2P_DCUTR_* flags (dcutr_svc.c) */
};

/* A directory entry: where the connection to a peer lives. */
typedef struct rp_hdir {
    ringp2p_peer_id peer;
    unsigned shard;
    uint64_t conn_id;
    bool relayed; /* new streams prefer a direct connection */
} rp_hdir;

struct ringp2p_node {
    ringp2p_privkey *key;
    ringp2p_peer_id id;
    uint8_t *pubkey_pb;
    size_t pubkey_pb_len;
    ringp2p_config cfg; /* copied strings */
    rp_logger log;
    rp_runtime *rt;
    unsigned nshards;
    rp_hshard **shards;
    size_t nlisteners;
    rp_listener *listeners[RP_HOST_LISTEN_MAX];
    /* The listeners' bound addresses (binary, port resolved, wildcards kept); fixed after start. */
    size_t nladdrs;
    uint8_t laddrs[RP_HOST_LISTEN_MAX][RP_TCP_MADDR_MAX];
    size_t laddr_len[RP_HOST_LISTEN_MAX];
    /* laddrs with wildcards expanded (getifaddrs at start): the base of what we advertise. */
    size_t nbase;
    uint8_t base[RP_HOST_ADDRS_MAX][RP_TCP_MADDR_MAX];
    size_t base_len[RP_HOST_ADDRS_MAX];
    atomic_bool started, stopped;
    atomic_uint next_dial_shard;
    atomic_uint_fast64_t nconns;        /* live connections (every phase), for LIMIT_CONNECTIONS */
    atomic_uint_fast64_t conns_refused; /* inbound connections refused by LIMIT_CONNECTIONS */

    /*
     * Our observed and advertised addresses, behind their own mutex rather
     * than owned by one shard: reports arrive on every shard once per
     * identify (not on the datapath), and the advertised set is read from
     * every shard (identify) and from any thread (ringp2p_node_addrs), so a
     * shard owner would need a round trip or a published copy for each read.
     * The lock is held for microseconds (plus one record signature when the
     * set changes). Lock order: amu before mu.
     */
    pthread_mutex_t amu;
    rp_obsaddr_config obs_cfg; /* set before start (tests: by_peer_only, short TTL) */
    bool no_early_muxer;       /* tests: offer no muxer in the security handshake (hsec.c) */
    /* Noise static key and verified-signature cache of /noise and signed sessions (hsec.c). */
    _Atomic(struct rp_hsec_shared *) sec_shared;
    rp_obsaddr obs;
    bool obs_timer_armed; /* shard 0's expiry timer is armed or being armed */
    size_t naddrs;
    uint8_t addrs[RP_HOST_ADDRS_MAX][RP_OBSADDR_ADDR_MAX]; /* advertised, binary, no /p2p */
    size_t addr_len[RP_HOST_ADDRS_MAX];
    uint8_t *record; /* signed peer record (envelope) of addrs */
    size_t record_len;
    uint64_t record_seq;

    struct rp_relay_svc *relay;      /* the relay service, NULL unless cfg.relay_service */
    struct rp_autonat_svc *autonat;  /* AutoNAT client and server, NULL when cfg.autonat is 0 */
    struct rp_relay_client *rclient; /* the relay client, NULL when cfg.relay_client_off */
    struct rp_dcutr_svc *dcutr;      /* hole punching, NULL when off (or no relay client) */
    /* Circuit addresses of held reservations (binary, no /p2p of ours), under amu. */
    size_t nraddrs;
    uint8_t raddrs[RP_HOST_RADDRS_MAX][RP_OBSADDR_ADDR_MAX];
    size_t raddr_len[RP_HOST_RADDRS_MAX];

    pthread_mutex_t mu; /* guards everything below */
    rp_htable *handlers;
    rp_hdir *dir;
    size_t ndir, capdir;
};

/* Per-shard host state; touched only by its shard (after start). */
struct rp_hshard {
    ringp2p_node *node;
    unsigned idx;
    rp_shard *sh;
    rp_hconn *conns;
    rp_hconn *flush_list;    /* connections whose muxer has frames to seal */
    rp_turn_task flush_turn; /* rp_hconn_flush_turn at the end of the loop turn */
    bool stopping;
    rp_htable *handlers;
    rp_timer obs_timer; /* shard 0: expiry of observed-address reports */
    /*
     * autonat_svc.c: the observedAddr of the identify response being applied on this shard
     * (peer, the connection's remote address), taken by the IDENTIFIED event that follows it.
     */
    ringp2p_peer_id an_peer;
    uint8_t an_remote[RP_TCP_MADDR_MAX], an_obs[RP_OBSADDR_ADDR_MAX];
    size_t an_remote_len, an_obs_len;
    /* Scratch for one seal batch. */
    uint8_t hdr[RP_HOST_SEAL_IOV * RP_HOST_MUX_HDR_MAX];
    rp_iov iov[RP_HOST_SEAL_IOV];
};

/* A request for a stream, travelling to the shard that will serve it. */
struct rp_hopen {
    rp_hopen *next;
    ringp2p_node *node;
    uint8_t *addr; /* binary multiaddr (owned) */
    size_t addr_len;
    bool has_peer;
    ringp2p_peer_id peer;
    char **protos; /* owned: one malloc block, the nprotos pointers then their strings */
    size_t nprotos;
    ringp2p_open_fn fn;
    void *ctx;
    uint64_t conn_id;          /* directory hint, 0 none */
    bool circuit;              /* addr is RELAY/p2p-circuit/p2p/PEER (relay_client.c) */
    bool probe;                /* rp_host_probe_dial: a fresh connection, closed once secured */
    uint64_t probe_timeout_ns; /* probe: dial + upgrade deadline */
    /*
     * dcutr_svc.c. conn_only: no stream; fn(node, NULL, 0, NULL, ctx) once the dialed
     * connection is ready. punch: a hole-punch dial, from the listen port (no ephemeral
     * fallback), taking the client role of the upgrade if punch_client, else the server's.
     */
    bool conn_only, punch, punch_client;
};

/* node.c */
void rp_host_dir_add(ringp2p_node *n, const ringp2p_peer_id *peer, unsigned shard, uint64_t id,
                     bool relayed);
void rp_host_dir_remove(ringp2p_node *n, uint64_t id);
void rp_host_emit(ringp2p_node *n, ringp2p_event_type type, const ringp2p_conn_info *ci, int err,
                  const char *agent);
uint64_t rp_host_limit(const ringp2p_node *n, ringp2p_limit which);
void rp_hopen_free(rp_hopen *o);
/* Fails the request on the current shard: fn(node, NULL, err, ei). */
void rp_hopen_fail(rp_hopen *o, int err, const ringp2p_errinfo *ei);
/* Runs an open request on shard hs (reuse or dial). */
void rp_host_open_on_shard(rp_hshard *hs, rp_hopen *o);
/*
 * Shard hs. An identify response from `observer` (connected from
 * remote/rlen, to our socket address local/llen) said it sees us at
 * observed/olen. Recorded against the listen address the local end belongs
 * to (none: an outbound connection from an ephemeral port, ignored); when the
 * adopted set changes, the advertised addresses and record are rebuilt, every
 * shard pushes identify and ADDRS_CHANGED is raised on hs.
 */
void rp_host_observed(rp_hshard *hs, const ringp2p_peer_id *observer, const uint8_t *remote,
                      size_t rlen, const uint8_t *local, size_t llen, const uint8_t *observed,
                      size_t olen);
/* Shard hs. The last connection to `peer` closed: its reports go. */
void rp_host_observer_gone(rp_hshard *hs, const ringp2p_peer_id *peer);
/* Whether some live connection to `peer` is in the directory. Any thread. */
bool rp_host_dir_has(ringp2p_node *n, const ringp2p_peer_id *peer);
/* A live direct (not relayed) connection to `peer`: true with its id and shard. Any thread. */
bool rp_host_dir_direct(ringp2p_node *n, const ringp2p_peer_id *peer, uint64_t *id,
                        unsigned *shard);
/*
 * The local address a dial to dst[len] (binary TCP multiaddr) binds, go-libp2p's
 * reuseport rule: a listen address of the same family, the wildcard one first, else a
 * specific one of the same loopback-ness (a non-loopback one only when it is the only
 * one); none when dst is one of our own listen addresses. Writes it to out
 * (RP_TCP_MADDR_MAX bytes) and returns its length, or 0 for none.
 */
size_t rp_host_dial_local(ringp2p_node *n, const uint8_t *dst, size_t len, uint8_t *out);
/*
 * Before start. The observed-address rules (identify.h rp_obsaddr_config);
 * tests on loopback use by_peer_only since every node there shares 127.0.0.1.
 */
void rp_host_set_obsaddr(ringp2p_node *n, const rp_obsaddr_config *cfg);
/*
 * Tests, before start (hsec.c). The node offers no muxer inside the security
 * handshake (Noise extensions, TLS ALPN: only "libp2p"), so the muxer is
 * chosen by multistream-select after it.
 */
void rp_host_no_early_muxer(ringp2p_node *n);
/*
 * Shard hs. The circuit addresses (n->raddrs, under amu) changed: rebuilds the
 * advertised set and record, pushes identify everywhere, raises ADDRS_CHANGED.
 */
void rp_host_addrs_rebuild(rp_hshard *hs);
/* Inbound connections refused so far by RINGP2P_LIMIT_CONNECTIONS. Any thread. */
uint64_t rp_host_conns_refused(const ringp2p_node *n);

/* hconn.c */
/*
 * Shard. Whether new streams may go over hc: ready, not closing, and not
 * waiting to close once idle (a go-away from the peer, DCUtR's relayed one).
 */
bool rp_hconn_takes_streams(const rp_hconn *hc);

/*
 * Tests, any thread: a go-away on every ready connection to `peer`, which
 * stay open; posted to every shard as ringp2p_node_hangup is, with its errors.
 */
int rp_host_test_go_away(ringp2p_node *n, const ringp2p_peer_id *peer);

/* Shard (arg: its rp_hshard). Seals the frames of the connections on its flush list. */
void rp_hconn_flush_turn(rp_shard *sh, void *arg);
int rp_hconn_accept(rp_hshard *hs, rp_conn *c);
int rp_hconn_dial(rp_hshard *hs, rp_hopen *o);
rp_hconn *rp_hconn_find(rp_hshard *hs, uint64_t id);
void rp_hconn_open_stream(rp_hconn *hc, rp_hopen *o);
void rp_hshard_close_all(rp_hshard *hs);
/*
 * A live or upgrading connection to `peer` on this shard (for reuse), or NULL:
 * direct before relayed, ready before upgrading; relayed ones only if allow_relayed.
 */
rp_hconn *rp_hshard_find_peer(rp_hshard *hs, const ringp2p_peer_id *peer, bool allow_relayed);
/*
 * Shard hs. Runs `c` (one end of a socketpair whose other end carries a circuit
 * relay stream, relay_client.c) through the connection pipeline: outbound for
 * the open request `o` (its peer expected; o is then the connection's) or
 * inbound if o is NULL. The connection is marked relayed (and limited), its
 * remote address is remote/rlen (binary, copied). On error c is aborted and o
 * failed. Returns 0 or the error.
 */
int rp_hconn_adopt(rp_hshard *hs, rp_conn *c, rp_hopen *o, const uint8_t *remote, size_t rlen,
                   bool limited);
/* Shard hs. Fails the connection `id` (if alive) with err and `ei` (its streams hear them). */
void rp_hconn_abort_id(rp_hshard *hs, uint64_t id, int err, const ringp2p_errinfo *ei);
/*
 * Shard hs. The connection `id` (if alive) is closed, gracefully, as soon as it is idle:
 * no stream open on it (negotiating or open) and no request waiting for it; at once if it
 * is idle now. It takes no new stream request meanwhile (rp_hshard_find_peer skips it).
 */
void rp_hconn_close_when_idle(rp_hshard *hs, uint64_t id);
/* hc's remote address, binary (NULL when unknown); owned by hc. */
const uint8_t *rp_hconn_remote_bin(const rp_hconn *hc, size_t *len);
/* Every ready connection on the shard, for identify push. */
void rp_hshard_push_identify(rp_hshard *hs);

/* builtin.c */
void rp_host_identify_start(ringp2p_node *n, rp_hconn *hc);
void rp_host_identify_handler(ringp2p_node *n, ringp2p_stream *s, void *ctx);
void rp_host_push_handler(ringp2p_node *n, ringp2p_stream *s, void *ctx);
void rp_host_ping_handler(ringp2p_node *n, ringp2p_stream *s, void *ctx);
void rp_host_echo_handler(ringp2p_node *n, ringp2p_stream *s, void *ctx);
/*
 * The most one /perf/1.0.0 stream may ask us to send (perf/perf.md "Security
 * Considerations": a client asks for work). 64 GiB: minutes at link speed.
 */
#define RP_HOST_PERF_DOWNLOAD_MAX (UINT64_C(1) << 36)
void rp_host_perf_handler(ringp2p_node *n, ringp2p_stream *s, void *ctx);
/* Opens an identify push stream on hc. */
void rp_host_push_start(ringp2p_node *n, rp_hconn *hc);
/* Our identify message (length-prefixed) for a connection with observed address obs. */
ssize_t rp_host_identify_msg(ringp2p_node *n, const uint8_t *obs, size_t obs_len, uint8_t *dst,
                             size_t cap);

/* The connection's info struct, and a stream's connection (for builtins). */
const ringp2p_conn_info *rp_hconn_info(const rp_hconn *hc);
rp_hconn *rp_stream_hconn(const ringp2p_stream *s);
ringp2p_node *rp_stream_node(const ringp2p_stream *s);
/* The host shard of a stream's connection. */
rp_hshard *rp_stream_hshard(const ringp2p_stream *s);
/* Wall-clock time (CLOCK_REALTIME), ns since the Unix epoch: relay expiries, records, certificates.
 */
uint64_t rp_host_unix_ns(void);
/* Posts fn(arg) to shard `to` from any thread, retrying while its inbox is full. 0 or an error. */
int rp_host_post_retry(ringp2p_node *n, unsigned to, rp_task_fn fn, void *arg);
/* The shard the calling thread runs, or NULL (a callback with no stream to ask). */
rp_shard *rp_host_current_shard(ringp2p_node *n);
/* A copy of our advertised addresses (binary, no /p2p), taken under amu. */
typedef struct rp_host_addrs {
    size_t n;
    rp_iov v[RP_HOST_ADDRS_MAX];
    uint8_t b[RP_HOST_ADDRS_MAX][RP_OBSADDR_ADDR_MAX];
} rp_host_addrs;
/* Fills a; skip_relayed leaves circuit addresses out (their IP is our relay's, not ours). */
void rp_host_addrs_copy(ringp2p_node *n, bool skip_relayed, rp_host_addrs *a);
/* A peer ID as text for logs and messages ("?" if it cannot be written). */
void rp_host_peer_text(const ringp2p_peer_id *id, char *buf, size_t cap);
/* Opens an internal stream (no directory round trip) speaking `proto`. */
int rp_hconn_open_internal(rp_hconn *hc, const char *proto, ringp2p_open_fn fn, void *ctx);
/* Stores the agent version learnt by identify (copied). */
void rp_hconn_set_agent(rp_hconn *hc, const uint8_t *agent, size_t len);
const char *rp_hconn_agent(const rp_hconn *hc);
/*
 * The connection's identify record of its peer (agent, protocols, certified
 * addresses), created on first use; NULL when out of memory. Owned by hc.
 */
rp_identify_peer *rp_hconn_peer(rp_hconn *hc);
/* hc's peer reported seeing us at observed/len in an identify response (rp_host_observed). */
void rp_hconn_observed(rp_hconn *hc, const uint8_t *observed, size_t len);
/*
 * Shard; during a callback about the connection `ci` (an event or a stream's
 * ringp2p_stream_conn). What identify and pushes told us about its peer so
 * far, or NULL before the first identify. Valid during the callback.
 */
const rp_identify_peer *rp_host_conn_peer(const ringp2p_conn_info *ci);

#endif
