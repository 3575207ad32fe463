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
 * "noise", muxers "yamux", one shard per CPU. NULL when out of memory. */
RINGP2P_API ringp2p_config *ringp2p_config_new(void);
RINGP2P_API void ringp2p_config_free(ringp2p_config *cfg);

/* The node's identity (copied; the caller keeps `key`). */
RINGP2P_API int ringp2p_config_identity(ringp2p_config *cfg, const ringp2p_privkey *key);

/* Adds a listen address ("/ip4/0.0.0.0/tcp/4001"). Errors: parse errors, RINGP2P_EUNSUPPORTED
 * (no transport for it). */
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
    RINGP2P_LIMIT_DIAL_TIMEOUT_MS,        /* dial + security + muxer; default 10000 */
    RINGP2P_LIMIT_STREAMS_INBOUND,        /* concurrent inbound streams per connection */
    RINGP2P_LIMIT_STREAMS_UNACKED,        /* inbound streams not yet accepted */
    RINGP2P_LIMIT_STREAM_WINDOW_MAX,      /* yamux receive window ceiling, bytes */
    RINGP2P_LIMIT_STREAM_WRITE_HIGH,      /* queued bytes per stream that stop writes */
    RINGP2P_LIMIT_CONNECTIONS,            /* total connections */
    RINGP2P_LIMIT_NEGOTIATION_TIMEOUT_MS, /* multistream per stream */
} ringp2p_limit;
RINGP2P_API int ringp2p_config_limit(ringp2p_config *cfg, ringp2p_limit which, uint64_t value);

/* Log sink for the node (NULL sink: stderr). */
RINGP2P_API void ringp2p_config_log(ringp2p_config *cfg, ringp2p_log_level level,
                                    ringp2p_log_sink sink, void *ctx);

/* ---- node events -------------------------------------------------------------------------- */

typedef enum ringp2p_event_type {
    RINGP2P_EVENT_CONNECTED,    /* a connection finished its upgrade */
    RINGP2P_EVENT_DISCONNECTED, /* a connection closed (err says why) */
    RINGP2P_EVENT_IDENTIFIED,   /* identify (or a push) from a peer was applied */
    RINGP2P_EVENT_ADDRS_CHANGED /* our own advertised addresses changed */
} ringp2p_event_type;

/* What a callback is told about a connection; valid during the callback only. */
typedef struct ringp2p_conn_info {
    ringp2p_peer_id peer;
    const ringp2p_multiaddr *remote_addr;
    const ringp2p_multiaddr *local_addr;
    bool inbound;
    bool relayed;
    const char *security; /* "/noise" */
    const char *muxer;    /* "/yamux/1.0.0" */
    uint64_t id;          /* unique per connection over the node's life */
    unsigned shard;
} ringp2p_conn_info;

typedef struct ringp2p_event {
    ringp2p_event_type type;
    const ringp2p_conn_info *conn; /* CONNECTED, DISCONNECTED, IDENTIFIED */
    int err;                       /* DISCONNECTED: 0 or the reason */
    const char *agent_version;     /* IDENTIFIED */
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
 * (ports resolved, wildcard addresses expanded to the interfaces' addresses) and observed
 * addresses that two peers confirmed. New caller-owned multiaddrs are written to
 * out[0..max); returns the total count. Any thread. */
RINGP2P_API size_t ringp2p_node_addrs(ringp2p_node *node, ringp2p_multiaddr **out, size_t max);

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
 * in /p2p/<id> (without it, any peer there is accepted), or a bare /p2p/<id>
 * naming a peer we are connected to. A connection to that peer is reused,
 * whichever shard owns it; otherwise one is dialed (a bare /p2p/<id> then
 * fails with RINGP2P_ENOENT). `addr` and `protocols` are read during the
 * call. Errors returned here: RINGP2P_EINVAL, RINGP2P_ECLOSED (not started
 * or stopping), RINGP2P_EUNSUPPORTED (no transport for `addr`),
 * RINGP2P_EPEERID, RINGP2P_ENOMEM; every other outcome reaches `fn`.
 */
RINGP2P_API int ringp2p_node_new_stream(ringp2p_node *node, const ringp2p_multiaddr *addr,
                                        const char *const *protocols, size_t n, ringp2p_open_fn fn,
                                        void *ctx);

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
/* Shard. Backpressure on the read side: the peer's window stops growing while paused. */
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
