/*
 * Stream sockets on a shard's io_uring: listen, dial, receive into provided
 * buffers, send by copy or by reference, close (DESIGN.md section 4).
 *
 * This is the runtime's socket layer and speaks socket addresses; the TCP
 * transport (src/transport/tcp.h) speaks multiaddrs on top of it. Only the
 * runtime touches io_uring.
 *
 * Ownership: a connection (rp_conn) belongs to one shard for its whole life;
 * every function on it runs on that shard (assertion) and every callback of
 * it runs there. The runtime owns the rp_conn memory. It stays valid from
 * the callback that delivers it (on_accept, dial callback) until on_close
 * has returned; on_close runs exactly once for every delivered connection.
 *
 * Receive path: each shard registers one ring of provided buffers; the
 * kernel picks a buffer per receive completion (multishot recv), the runtime
 * lends it to on_data and puts it back in the ring when on_data returns,
 * unless on_data kept it with rp_rbuf_hold (the ring is then refilled with a
 * fresh buffer, so keeping buffers never starves the ring). When the ring is
 * empty anyway, receiving pauses (counted as `enobufs`) and resumes as soon
 * as buffers come back.
 *
 * Send path: rp_conn_send copies into the shard's send chunks (small writes
 * coalesce); rp_conn_send_ref queues caller memory without copying and calls
 * its release function when the kernel is done with it. Once per loop turn
 * the runtime gathers each connection's queued bytes into one send (SEND_ZC
 * at or above the zero-copy threshold, SEND below), so at most one send per
 * connection is in flight and bytes leave in the order queued.
 */
#ifndef RP_RUNTIME_CONN_H
#define RP_RUNTIME_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "runtime/runtime.h"

/* Listen backlog (the kernel clamps it to net.core.somaxconn). */
#define RP_LISTEN_BACKLOG_DEFAULT 4096
/* Iovecs gathered into one send; bytes beyond wait for the next turn. */
#define RP_SEND_IOV_MAX 64
/* Dial timeout when the options give none. */
#define RP_DIAL_TIMEOUT_NS_DEFAULT 10000000000ull
/* After an accept failure (EMFILE, ENFILE, ENOMEM) the shard re-arms accept after this delay. */
#define RP_ACCEPT_RETRY_NS 20000000ull

typedef struct rp_conn rp_conn;
typedef struct rp_listener rp_listener;
typedef struct rp_rbuf rp_rbuf;

/*
 * Callbacks of one connection, set with rp_conn_set_cbs. The struct is read
 * by pointer and must outlive the connection (a static const table is the
 * idiom). `arg` is the pointer given to rp_conn_set_cbs.
 */
typedef struct rp_conn_cbs {
    /*
     * Bytes arrived. `data` points into the provided buffer `buf` and is
     * borrowed: valid until on_data returns, unless the callback calls
     * rp_rbuf_hold(buf), which keeps the whole buffer (and so `data`)
     * valid and unchanged until the matching rp_rbuf_release. Required.
     */
    void (*on_data)(rp_conn *c, void *arg, rp_rbuf *buf, const uint8_t *data, size_t len);
    /*
     * The peer finished sending (FIN). Optional: NULL closes the connection
     * gracefully (rp_conn_close), which suits request/response protocols.
     */
    void (*on_eof)(rp_conn *c, void *arg);
    /*
     * Queued bytes fell to the low watermark after having reached the high
     * one (rp_conn_writable went false). Optional. With watermarks (1, 0)
     * (rp_conn_set_watermarks) this is "send queue drained" after any send.
     */
    void (*on_writable)(rp_conn *c, void *arg);
    /*
     * The connection is gone: the socket is closed, every operation on it
     * has completed, every queued reference has been released. `err` is 0
     * for an orderly close (rp_conn_close, then the peer's FIN or the linger
     * time), RINGP2P_ECANCELED for rp_conn_abort or a runtime stop,
     * RINGP2P_ETIMEDOUT when a graceful close could not flush in time,
     * RINGP2P_ECONNRESET when the peer reset, RINGP2P_EIO (or another
     * RINGP2P_E* code) for other socket errors. `c` is invalid once this
     * returns. Required.
     */
    void (*on_close)(rp_conn *c, void *arg, int err);
} rp_conn_cbs;

/*
 * Shard. Installs the callbacks (read by pointer, must outlive `c`) and
 * starts receiving. Call it from on_accept or the dial callback, before
 * they return (otherwise the runtime resets the connection), or later to
 * change callbacks.
 */
void rp_conn_set_cbs(rp_conn *c, const rp_conn_cbs *cbs, void *arg);

/* ---- send --------------------------------------------------------------------------------- */

/*
 * Shard. Copies `len` bytes of `data` (read during the call only) to the
 * end of the send queue. Returns 0, or RINGP2P_ECLOSED (closing or closed:
 * nothing queued), RINGP2P_ENOMEM (nothing queued). Queued bytes count
 * towards the high watermark; the call never refuses for backpressure:
 * callers check rp_conn_writable and wait for on_writable.
 */
int rp_conn_send(rp_conn *c, const void *data, size_t len);

/* Called once when the kernel no longer needs the bytes of a rp_conn_send_ref (on their shard). */
typedef void (*rp_release_fn)(void *arg, const void *data, size_t len);

/*
 * Shard. Queues the caller's `len` bytes at `data` without copying. The
 * memory must stay valid and unchanged until release(arg, data, len) is
 * called on this shard: after the send completed (after the zero-copy
 * notification for SEND_ZC), or when the connection closes with the bytes
 * unsent (possibly inside rp_conn_abort). On error the reference was not
 * taken and release is not called: RINGP2P_ECLOSED, RINGP2P_ENOMEM,
 * RINGP2P_EINVAL (len 0 or release NULL).
 */
int rp_conn_send_ref(rp_conn *c, const void *data, size_t len, rp_release_fn release, void *arg);

/* Shard. Bytes queued and not yet taken by the kernel. */
size_t rp_conn_queued(const rp_conn *c);

/* Shard. False from the moment queued bytes reach the high watermark until on_writable. */
bool rp_conn_writable(const rp_conn *c);

/* Shard. Per-connection watermarks (low < high; high 0 restores the runtime's defaults). */
void rp_conn_set_watermarks(rp_conn *c, size_t high, size_t low);

/* ---- receive ------------------------------------------------------------------------------ */

/*
 * Shard. Stops delivering on_data/on_eof until rp_conn_recv_resume: the
 * receive is cancelled so the kernel's socket buffer (and then TCP's window)
 * fills and the peer slows down. Bytes already received when pause is called
 * are kept and delivered, in order, after resume. Idempotent.
 */
void rp_conn_recv_pause(rp_conn *c);
void rp_conn_recv_resume(rp_conn *c);

/*
 * Shard (the buffer's shard: the one whose on_data lent it). Keeps the
 * buffer past on_data; returns `b` for convenience. Each hold needs one
 * rp_rbuf_release. The bytes on_data saw stay valid and unchanged until the
 * last release. Holding never starves the receive ring (the ring slot is
 * refilled with a fresh buffer), but held buffers are memory: release them,
 * at the latest in on_close or a message that runs before rp_runtime_stop
 * returns (a buffer still held when its shard exits is counted in
 * leaked_buffers and must not be released afterwards).
 */
rp_rbuf *rp_rbuf_hold(rp_rbuf *b);
void rp_rbuf_release(rp_rbuf *b);

/* The shard a buffer belongs to (releases from elsewhere post there). Any thread. */
rp_shard *rp_rbuf_shard(const rp_rbuf *b);

/* ---- close -------------------------------------------------------------------------------- */

/*
 * Shard. Graceful close: further sends fail with RINGP2P_ECLOSED; queued
 * bytes are flushed; then FIN (shutdown SHUT_WR); received bytes keep
 * arriving in on_data until the peer's FIN, then the socket is closed and
 * on_close(c, 0) runs. The whole close has one deadline, close_linger_ns
 * from this call: if the peer's FIN has not come by then, the socket is
 * closed with on_close(c, 0); if the queue has not even drained (the peer
 * stopped reading), it is reset with on_close(c, RINGP2P_ETIMEDOUT). Wait
 * for on_writable with a low watermark of 0 before closing a connection
 * with a large queue on a slow path. Idempotent.
 */
void rp_conn_close(rp_conn *c);

/*
 * Shard. Reset: queued bytes are dropped (their references released), the
 * socket closes with SO_LINGER 0 (RST), on_close(c, RINGP2P_ECANCELED)
 * runs once the in-flight operations have completed. Idempotent; turns a
 * graceful close in progress into a reset.
 */
void rp_conn_abort(rp_conn *c);

/* ---- identity ----------------------------------------------------------------------------- */

rp_shard *rp_conn_shard(const rp_conn *c);

/*
 * A 64-bit id unique over the runtime's life, never 0 (free for callers to
 * mean "none"): shard index in the top 8 bits. With rp_shard_find_conn it lets other shards name a
 * connection without holding its pointer (post to its shard, look it up there).
 */
uint64_t rp_conn_id(const rp_conn *c);
unsigned rp_conn_id_shard(uint64_t id);

/* Shard `sh`. The live connection with this id on sh, or NULL (closed, or not sh's). */
rp_conn *rp_shard_find_conn(rp_shard *sh, uint64_t id);

/* Shard. Socket addresses (copied into *ss); 0 or RINGP2P_EIO. */
int rp_conn_local_addr(const rp_conn *c, struct sockaddr_storage *ss, socklen_t *len);
int rp_conn_peer_addr(const rp_conn *c, struct sockaddr_storage *ss, socklen_t *len);

/* Shard. Whether the connection was accepted (true) or dialed (false). */
bool rp_conn_inbound(const rp_conn *c);

/* ---- listen ------------------------------------------------------------------------------- */

/*
 * A connection accepted by a listener, on the shard that will own it (the
 * accepting shard, or a less-loaded one it handed the connection to).
 * Call rp_conn_set_cbs (or rp_conn_abort) before returning.
 */
typedef void (*rp_accept_fn)(rp_shard *sh, void *arg, rp_conn *c);

/*
 * An accept failure on one shard's socket (RINGP2P_EMFILE for EMFILE or
 * ENFILE, RINGP2P_ENOMEM, RINGP2P_EIO). The shard re-arms its accept after
 * RP_ACCEPT_RETRY_NS and keeps serving its connections. Optional.
 */
typedef void (*rp_listen_error_fn)(rp_shard *sh, void *arg, int err);

typedef struct rp_listen_opts {
    int backlog;     /* 0: RP_LISTEN_BACKLOG_DEFAULT */
    bool dual_stack; /* IPv6 wildcard: also accept IPv4 (default: IPV6_V6ONLY, so /ip4 and
                        /ip6 listeners can share a port) */
    rp_listen_error_fn on_error; /* optional */
} rp_listen_opts;

/*
 * Any thread. Listens on `addr` (AF_INET or AF_INET6, read during the call)
 * with one SO_REUSEPORT socket per shard, so the kernel spreads accepts over
 * the shards. Port 0 is resolved once by the first socket and shared by the
 * others. Sockets are bound and listening when this returns; each shard
 * arms its accept on its next loop turn. on_accept(arg) runs on the owning
 * shard; `arg` must outlive the listener. On success *out is valid until
 * rp_runtime_free (rp_listener_close stops it earlier). Errors:
 * RINGP2P_EINVAL, RINGP2P_EADDRINUSE, RINGP2P_EMFILE, RINGP2P_ENOMEM,
 * RINGP2P_EPERM, RINGP2P_ECLOSED (stopping), RINGP2P_EIO.
 */
int rp_listen(rp_runtime *rt, const struct sockaddr *addr, socklen_t addrlen,
              const rp_listen_opts *opts, rp_accept_fn on_accept, void *arg, rp_listener **out,
              ringp2p_errinfo *ei);

/* Any thread. The bound address (resolved port). */
void rp_listener_addr(const rp_listener *l, struct sockaddr_storage *ss, socklen_t *len);

/*
 * Any thread. Stops accepting on every shard and closes the sockets
 * (asynchronously; connections already accepted are untouched). The
 * listener's memory stays valid until rp_runtime_free. Idempotent.
 */
void rp_listener_close(rp_listener *l);

/* ---- dial --------------------------------------------------------------------------------- */

/*
 * The result of a dial, on the dialing shard. err 0: `c` is connected and
 * the callback must call rp_conn_set_cbs (or rp_conn_abort) before
 * returning. Otherwise c is NULL and err is RINGP2P_ECONNREFUSED,
 * RINGP2P_ETIMEDOUT, RINGP2P_EUNREACHABLE, RINGP2P_EMFILE,
 * RINGP2P_EADDRINUSE (local address taken), RINGP2P_ECLOSED (runtime
 * stopping) or RINGP2P_EIO. Called exactly once per successful rp_dial.
 */
typedef void (*rp_dial_fn)(rp_shard *sh, void *arg, rp_conn *c, int err);

typedef struct rp_dial_opts {
    uint64_t timeout_ns;          /* 0: RP_DIAL_TIMEOUT_NS_DEFAULT */
    const struct sockaddr *local; /* optional local address to bind (e.g. the listen port) */
    socklen_t local_len;
} rp_dial_opts;

/*
 * Shard `sh`. Connects to `addr` (read during the call) from a new socket
 * with TCP_NODELAY and SO_REUSEPORT (so it may bind the port a listener
 * uses: hole punching dials from the listen port). `opts` may be NULL.
 * Returns 0 when the dial is under way (done(arg) will run later, on sh,
 * never inside this call), or an error with no callback: RINGP2P_EINVAL,
 * RINGP2P_EMFILE, RINGP2P_ENOMEM, RINGP2P_EADDRINUSE, RINGP2P_ECLOSED.
 */
int rp_dial(rp_shard *sh, const struct sockaddr *addr, socklen_t addrlen, const rp_dial_opts *opts,
            rp_dial_fn done, void *arg);

/* ---- adopt -------------------------------------------------------------------------------- */

/*
 * Shard `sh`. Makes `fd`, a connected stream socket made elsewhere (one end
 * of a socketpair, for instance), a connection of sh: the runtime owns the fd
 * from a successful call on (it closes it) and the connection behaves like a
 * dialed (or, if `inbound`, accepted) one, except that it never uses SEND_ZC
 * (AF_UNIX has none). The caller must call rp_conn_set_cbs (or rp_conn_abort)
 * before returning to the loop. Errors (fd untouched, still the caller's):
 * RINGP2P_EINVAL, RINGP2P_ECLOSED (stopping), RINGP2P_ENOMEM.
 */
int rp_conn_adopt(rp_shard *sh, int fd, bool inbound, rp_conn **out);

#endif
