/*
 * The host: the libp2p connection pipeline and the stream layer on the
 * sharded runtime (DESIGN.md sections 4 and 6; include/ringp2p/node.h is the
 * public face). Internal to src/host; nothing here is public API.
 *
 * Pipeline of one connection, all on the shard that owns it:
 *   TCP (runtime) -> multistream-select of the security protocol from the
 *        node's list ("/noise" by default; "/ringp2p/signed/1.0.0" and
 *        "/plaintext/2.0.0" only when configured), driven through rp_hsec_ops
 *     -> its handshake (Noise XX for both /noise and signed mode; expected
 *        peer from the dialed /p2p/)
 *     -> muxer: early negotiation when both sides offered muxers (noise,
 *        signed), else multistream-select "/yamux/1.0.0" over the channel
 *     -> yamux -> per stream multistream-select -> handler / open callback.
 *
 * Receive: in the upgrade phases bytes are copied into a small buffer
 * (handshake messages are tiny). Once the handshake is done, transport frames are
 * opened in place in the runtime's receive buffer; a frame cut by the end of
 * a receive is copied into a per-connection reassembly buffer and opened
 * there. Stream payload reaches on_data as views into those buffers; a paused
 * stream keeps its payload by holding the receive buffer (rp_rbuf_hold) or,
 * for bytes in the reassembly buffer, by a copy.
 *
 * Send: stream writes are referenced by yamux; a write marks its connection
 * dirty and puts it on the shard's flush list; one self-posted message per
 * loop turn seals every dirty connection's pending yamux output in one pass
 * (Noise records of up to 64 KiB) and hands the ciphertext to the runtime
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
/* yamux iovs and header room per seal batch. */
#define RP_HOST_SEAL_IOV 256
/* Defaults of the ringp2p_limit values (node.h). */
#define RP_HOST_DIAL_TIMEOUT_MS_DEFAULT        10000u
#define RP_HOST_STREAM_WRITE_HIGH_DEFAULT      (1u << 20)
#define RP_HOST_NEGOTIATION_TIMEOUT_MS_DEFAULT 10000u
#define RP_HOST_CONNECTIONS_DEFAULT            100000u
/* Copy buffer size of ringp2p_stream_write (small writes coalesce into one). */
#define RP_HOST_WCHUNK 16384
/* Identify response we buffer (the identify core's stream limit). */
#define RP_HOST_MUXERS_MAX 4

/* Security protocols a config lists (noise, signed, plaintext; tls later). */
#define RP_HOST_SECURITY_MAX 4

/*
 * One security protocol as the host drives it (hsec.c). A session is opaque
 * (`void *`); every entry mirrors the rp_noise function of the same role, and
 * a protocol without framing (plaintext) has frame_header_len 0: its open
 * takes everything given, so the host never reassembles for it.
 */
typedef struct rp_hsec_ops {
    const char *name; /* config name: "noise" */
    const char *id;   /* multistream protocol ID: "/noise" */
    size_t frame_header_len, frame_max;
    /* A session for a connection of node n (n's key and muxers); *out the caller's (free). */
    int (*new_session)(ringp2p_node *n, bool initiator, const ringp2p_peer_id *expect, void **out,
                       ringp2p_errinfo *ei);
    int (*handshake)(void *s, uint8_t **src, uint8_t *end, rp_wbuf *out, ringp2p_errinfo *ei);
    size_t (*sealed_len)(size_t plaintext_len);
    ssize_t (*seal)(void *s, const rp_iov *in, size_t n, uint8_t *out, size_t cap,
                    ringp2p_errinfo *ei);
    int (*open)(void *s, uint8_t **src, uint8_t *end, rp_iov *plain, ringp2p_errinfo *ei);
    const ringp2p_peer_id *(*remote_peer)(const void *s);
    const ringp2p_pubkey *(*remote_key)(const void *s);
    const char *(*muxer)(const void *s); /* early-negotiated muxer or NULL */
    void (*free)(void *s);
} rp_hsec_ops;

/* rp_hsec_ops.handshake's return when done (RP_NOISE_DONE, RP_SIGNED_DONE, RP_PLAINTEXT_DONE). */
#define RP_HSEC_DONE 1

/* hsec.c: the protocol of a config name ("noise", len bytes) or of a protocol ID; NULL if none. */
const rp_hsec_ops *rp_hsec_by_name(const char *name, size_t len);
const rp_hsec_ops *rp_hsec_by_id(const char *id);

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
    const char *muxers[RP_HOST_MUXERS_MAX];
    unsigned shards;
    uint64_t limits[RINGP2P_LIMIT_NEGOTIATION_TIMEOUT_MS + 1];
    ringp2p_log_level log_level;
    ringp2p_log_sink log_sink;
    void *log_ctx;
    ringp2p_event_fn ev_fn;
    void *ev_ctx;
};

/* A directory entry: where the connection to a peer lives. */
typedef struct rp_hdir {
    ringp2p_peer_id peer;
    unsigned shard;
    uint64_t conn_id;
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
    rp_obsaddr obs;
    bool obs_timer_armed; /* shard 0's expiry timer is armed or being armed */
    size_t naddrs;
    uint8_t addrs[RP_HOST_ADDRS_MAX][RP_OBSADDR_ADDR_MAX]; /* advertised, binary, no /p2p */
    size_t addr_len[RP_HOST_ADDRS_MAX];
    uint8_t *record; /* signed peer record (envelope) of addrs */
    size_t record_len;
    uint64_t record_seq;

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
    rp_hconn *flush_list;
    bool flush_posted;
    bool stopping;
    rp_htable *handlers;
    rp_timer obs_timer; /* shard 0: expiry of observed-address reports */
    /* Scratch for one seal batch. */
    uint8_t hdr[RP_HOST_SEAL_IOV * RP_YAMUX_HEADER_LEN];
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
    char **protos; /* owned */
    size_t nprotos;
    ringp2p_open_fn fn;
    void *ctx;
    uint64_t conn_id; /* directory hint, 0 none */
};

/* node.c */
void rp_host_dir_add(ringp2p_node *n, const ringp2p_peer_id *peer, unsigned shard, uint64_t id);
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
/*
 * Before start. The observed-address rules (identify.h rp_obsaddr_config);
 * tests on loopback use by_peer_only since every node there shares 127.0.0.1.
 */
void rp_host_set_obsaddr(ringp2p_node *n, const rp_obsaddr_config *cfg);
/* Inbound connections refused so far by RINGP2P_LIMIT_CONNECTIONS. Any thread. */
uint64_t rp_host_conns_refused(const ringp2p_node *n);

/* hconn.c */
int rp_hconn_accept(rp_hshard *hs, rp_conn *c);
int rp_hconn_dial(rp_hshard *hs, rp_hopen *o);
rp_hconn *rp_hconn_find(rp_hshard *hs, uint64_t id);
void rp_hconn_open_stream(rp_hconn *hc, rp_hopen *o);
void rp_hshard_close_all(rp_hshard *hs);
/* A live or upgrading connection to `peer` on this shard (for reuse), or NULL. */
rp_hconn *rp_hshard_find_peer(rp_hshard *hs, const ringp2p_peer_id *peer);
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
