/*
 * The runtime: N shards, each one thread with its own io_uring, buffer pools,
 * timer wheel and table of connections (DESIGN.md section 4).
 *
 * Threading rule: everything a shard owns (its connections, listeners'
 * per-shard halves, timers, pools, messages it sent) is touched only by that
 * shard's thread. Functions below say where they may be called:
 *   - "shard": only on the shard given (from a callback it runs);
 *   - "any thread": anywhere, including threads that are not shards.
 * Callbacks always run on a shard thread and must not block.
 *
 * Cross-shard work is message passing (Seastar's smp queues): one lock-free
 * SPSC ring per ordered pair of shards, filled in batches at the end of a
 * loop turn and drained in batches at the start of the next; a message goes
 * back to its sender after it has run, so the sender frees what it sent.
 * Threads that are not shards post through one MPSC ring per shard. A shard
 * that sleeps in io_uring_enter is woken with IORING_OP_MSG_RING from
 * another shard, or through an eventfd read it keeps armed (threads that are
 * not shards, kernels without MSG_RING).
 *
 * Lifecycle: rp_runtime_new starts the shard threads and returns when every
 * shard is serving (or failed to start). rp_runtime_stop closes every
 * listener and connection, waits for every in-flight operation and
 * cross-shard message, returns every buffer and joins every thread.
 */
#ifndef RP_RUNTIME_RUNTIME_H
#define RP_RUNTIME_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/log.h"
#include "runtime/timer.h"

/* Most shards a runtime runs (shard ids travel in 8 bits of a connection id). */
#define RP_RUNTIME_SHARDS_MAX 256

/* Defaults for rp_runtime_config; each field's comment says what 0 means. */
#define RP_RUNTIME_RING_ENTRIES_DEFAULT  1024u /* SQ entries; the CQ gets 8 times as many */
#define RP_RUNTIME_RECV_BUF_SIZE_DEFAULT (64u * 1024)
/*
 * 32 x 64 KiB = 2 MiB per shard, the L2 size here. The kernel takes provided
 * buffers in ring order, so a buffer comes back only after all the others: a
 * ring much larger than the cache makes every receive copy write cold memory.
 * Measured with bench/tcp_throughput (docs/PERFORMANCE.md): 512 buffers cost
 * 1.25-1.29x more time and 1.2x more CPU per byte than 32, and with 64
 * connections 32 still won (1.25x vs 0.67x iperf3) despite ENOBUFS pauses.
 * Larger buffers (16 x 128 KiB, 8 x 256 KiB) cut the secure channels' records
 * split across two buffers (copied by the host) but made the sending end
 * dearer: its process pays for waking the receiver, which idles more often
 * (docs/PERFORMANCE.md, "Receive buffers larger than a record").
 */
#define RP_RUNTIME_RECV_BUF_COUNT_DEFAULT 32u          /* power of two, at most 32768 */
#define RP_RUNTIME_SEND_CHUNK_DEFAULT     (64u * 1024) /* rp_conn_send copies into chunks this big */
#define RP_RUNTIME_HIGH_WATERMARK_DEFAULT                  \
    (1u << 20) /* queued bytes that make a conn unwritable \
                */
#define RP_RUNTIME_LOW_WATERMARK_DEFAULT                     \
    (256u << 10) /* queued bytes that make it writable again \
                  */
/*
 * SEND_ZC is used for a send of at least this many bytes (one gathered send
 * per connection per turn, so this is also "enough in flight"). Loopback
 * always copies, so there ZC never pays: a connection whose notification
 * reports a copy (IORING_NOTIF_USAGE_ZC_COPIED) goes back to plain SEND for
 * good. The value is set from the measurement recorded in conn.c (ZC_NOTE).
 */
#define RP_RUNTIME_SEND_ZC_THRESHOLD_DEFAULT (64u * 1024)
#define RP_RUNTIME_INBOX_DEFAULT             1024u /* slots per SPSC ring and per MPSC inbox */
#define RP_RUNTIME_CLOSE_LINGER_NS_DEFAULT   2000000000ull /* graceful close waits this for EOF */
#define RP_RUNTIME_SHUTDOWN_NS_DEFAULT       1000000000ull /* stop: graceful closes, then resets */

/* Kernel features the runtime probes; a config can turn any of them off (to test fallbacks). */
enum rp_feature {
    RP_FEAT_SINGLE_ISSUER = 1u << 0,    /* IORING_SETUP_SINGLE_ISSUER */
    RP_FEAT_DEFER_TASKRUN = 1u << 1,    /* IORING_SETUP_DEFER_TASKRUN (implies SINGLE_ISSUER) */
    RP_FEAT_REG_RING_FD = 1u << 2,      /* io_uring_register_ring_fd */
    RP_FEAT_MSG_RING = 1u << 3,         /* IORING_OP_MSG_RING wakeups (else eventfd) */
    RP_FEAT_SEND_ZC = 1u << 4,          /* IORING_OP_SEND_ZC / SENDMSG_ZC */
    RP_FEAT_RECV_MULTISHOT = 1u << 5,   /* multishot recv (else one-shot recv, re-armed) */
    RP_FEAT_ACCEPT_MULTISHOT = 1u << 6, /* multishot accept (else one-shot accept, re-armed) */
    RP_FEAT_CQE_SKIP = 1u << 7,         /* IOSQE_CQE_SKIP_SUCCESS */
};

typedef struct rp_runtime rp_runtime;
typedef struct rp_shard rp_shard;

typedef struct rp_runtime_config {
    unsigned nshards;         /* 0: one per CPU this process may run on */
    bool pin;                 /* pin shard i to the i-th allowed CPU (modulo their count) */
    unsigned ring_entries;    /* 0: RP_RUNTIME_RING_ENTRIES_DEFAULT */
    unsigned recv_buf_size;   /* bytes per provided receive buffer; 0: default */
    unsigned recv_buf_count;  /* provided buffers per shard, power of two; 0: default */
    unsigned send_chunk_size; /* 0: default */
    size_t high_watermark;    /* per-connection default; 0: default */
    size_t low_watermark;     /* per-connection default, below high; 0: default */
    size_t send_zc_threshold; /* 0: default; SIZE_MAX: never SEND_ZC */
    unsigned inbox_capacity;  /* 0: default */
    uint64_t close_linger_ns; /* 0: default */
    uint64_t shutdown_ns;     /* 0: default */
    /*
     * Accept balancing: a shard that accepts a connection while it owns more
     * than `balance_ratio_pct` percent of the least-loaded shard's
     * connections (and at least `balance_slack` more) hands the new one to
     * that shard. 0 for either: defaults (125 %, 8); UINT32_MAX ratio: off.
     */
    unsigned balance_ratio_pct;
    unsigned balance_slack;
    unsigned features_off; /* RP_FEAT_* bits never to use even if the kernel has them */
    const rp_logger *log;  /* NULL: rp_logger_off. Must outlive the runtime. */
} rp_runtime_config;

/* Fills `cfg` with the defaults (nshards 0 = CPUs, pinning on). */
void rp_runtime_config_default(rp_runtime_config *cfg);

/*
 * Starts the shards of `cfg` (read, not retained) and returns when all serve.
 * Any thread that is not a shard. On success *out is owned by the caller
 * (rp_runtime_free). Errors: RINGP2P_EINVAL (bad config), RINGP2P_ENOMEM,
 * RINGP2P_EUNSUPPORTED (the kernel lacks io_uring or provided buffer rings,
 * with a message in `ei`), RINGP2P_EMFILE, RINGP2P_EIO (other setup
 * failure, message in `ei`). `ei` may be NULL.
 */
int rp_runtime_new(const rp_runtime_config *cfg, rp_runtime **out, ringp2p_errinfo *ei);

/*
 * Graceful shutdown; blocks until every shard thread has exited. Each shard
 * closes its listeners, closes its connections gracefully (queued output
 * flushed, FIN) and resets what is still open after cfg.shutdown_ns; every
 * on_close runs, every buffer goes back to its pool. Meanwhile shards keep
 * running messages (an on_close may still tell another shard), dials fail
 * with RINGP2P_ECLOSED, and rp_runtime_post from outside fails with
 * RINGP2P_ECLOSED. A shard exits once every shard has no connection, no
 * listener, no armed timer and no message out: timers that re-arm forever
 * must stop when their owner closes. Idempotent. Any thread that is not a
 * shard (a shard calling it would wait for itself).
 */
void rp_runtime_stop(rp_runtime *rt);

/* Stops (if needed) and frees the runtime. NULL is a no-op. Not on a shard. */
void rp_runtime_free(rp_runtime *rt);

unsigned rp_runtime_nshards(const rp_runtime *rt);

/* Shard `i` (< nshards). The pointer is valid until rp_runtime_free. Any thread. */
rp_shard *rp_runtime_shard(rp_runtime *rt, unsigned i);

/* The features in use on the shards (RP_FEAT_* bits): probed, minus features_off. Any thread. */
unsigned rp_runtime_features(const rp_runtime *rt);

/* Any thread. */
unsigned rp_shard_id(const rp_shard *sh);
rp_runtime *rp_shard_runtime(rp_shard *sh);

/* True on `sh`'s own thread: debug assertions and dispatch decisions. Any thread. */
bool rp_shard_is_current(const rp_shard *sh);

/*
 * Shard. The CLOCK_MONOTONIC time in nanoseconds read once at the top of the
 * current loop turn: cheap, and the same for every callback in one turn.
 */
uint64_t rp_shard_now(const rp_shard *sh);

/* Shard. The shard's timer wheel: arm rp_timers on it with deadlines from rp_shard_now. */
rp_timer_wheel *rp_shard_timers(rp_shard *sh);

/* Shard. The shard's logger (never NULL). */
const rp_logger *rp_shard_log(const rp_shard *sh);

/* ---- cross-shard messages ----------------------------------------------------------------- */

typedef struct rp_msg rp_msg;
typedef void (*rp_msg_fn)(rp_shard *sh, rp_msg *m);

/*
 * An intrusive message: embed it in your own object. The sender owns the
 * object throughout: `run` is called on the target shard with the target as
 * `sh`; then the message travels back and `done` (if not NULL) is called on
 * the sending shard, which may free or reuse the object there. Between
 * rp_shard_send and `done`, only `run` may touch the object. The fields
 * after `done` belong to the runtime.
 */
struct rp_msg {
    rp_msg_fn run;
    rp_msg_fn done;
    rp_msg *next; /* runtime: overflow and local queues */
    uint16_t from;
    uint16_t to;
    uint8_t state; /* runtime: outbound or returning */
};

/*
 * Shard `self`. Queues `m` for shard `to` (may be `self`: it then runs on a
 * later loop turn, never inside this call). Messages from one shard to
 * another run in the order sent. Never blocks, never fails for lack of room
 * (a full ring overflows into a local list drained on later turns).
 * Works during a stop too (see rp_runtime_stop). Errors: RINGP2P_EINVAL
 * (bad `to` or no `run`; `m` was not queued and stays the caller's).
 */
int rp_shard_send(rp_shard *self, unsigned to, rp_msg *m);

typedef void (*rp_task_fn)(rp_shard *sh, void *arg);

/*
 * Shard `self`. Runs fn(target, arg) on shard `to` on a later loop turn. The
 * message is allocated from self's pool and freed there when it returns.
 * Errors: RINGP2P_EINVAL, RINGP2P_ENOMEM.
 */
int rp_shard_post(rp_shard *self, unsigned to, rp_task_fn fn, void *arg);

/*
 * Work for the end of the current loop turn: it runs after the turn's
 * messages, completions and timers, just before output is flushed, so the
 * bytes it queues leave in this turn's send of each connection (a muxer
 * sealing the frames its streams wrote). Intrusive: the caller owns the
 * task, initialized once with rp_turn_task_init.
 */
typedef struct rp_turn_task {
    rp_task_fn fn;
    void *arg;
    struct rp_turn_task *next;
    bool queued;
} rp_turn_task;

void rp_turn_task_init(rp_turn_task *t, rp_task_fn fn, void *arg);

/*
 * Shard. Queues t to run once at this turn's end (nothing if already queued).
 * A task queued while the end-of-turn tasks run (by one of them) runs in the
 * same pass; one queued by the flush itself runs on the next turn, which does
 * not sleep first.
 */
void rp_shard_at_turn_end(rp_shard *sh, rp_turn_task *t);

/*
 * Any thread (meant for threads that are not shards: an embedding
 * application). Runs fn(shard, arg) on shard `to`. Lock-free: one push on
 * the shard's MPSC inbox and, if the shard sleeps, one eventfd write. The
 * message is malloc'd here and freed by the target (a thread outside the
 * shards has no inbox for the return trip). Errors: RINGP2P_EINVAL,
 * RINGP2P_ENOMEM, RINGP2P_EAGAIN (the inbox is full: retry later),
 * RINGP2P_ECLOSED (stopping; fn will not run).
 */
int rp_runtime_post(rp_runtime *rt, unsigned to, rp_task_fn fn, void *arg);

/* ---- counters ----------------------------------------------------------------------------- */

/*
 * Per-shard counters. The shard is their only writer (plain stores of
 * relaxed atomics on a cache line of their own); any thread may read them
 * with rp_shard_get_stats, getting each field exact and the set approximately
 * simultaneous.
 */
typedef struct rp_shard_stats {
    uint64_t conns_open;     /* connections owned now */
    uint64_t conns_accepted; /* accepted connections that ended up on this shard */
    uint64_t conns_dialed;   /* dials that connected */
    uint64_t conns_closed;   /* on_close callbacks run */
    uint64_t accepts;        /* accept completions on this shard's listen sockets */
    uint64_t handoffs_out;   /* accepted here, handed to a less-loaded shard */
    uint64_t handoffs_in;    /* accepted elsewhere, handed here */
    uint64_t bytes_in;       /* received from sockets */
    uint64_t bytes_out;      /* accepted by the kernel (sent) */
    uint64_t recv_cqes;      /* receive completions carrying data */
    uint64_t sends;          /* send operations submitted (plain) */
    uint64_t sends_zc;       /* SEND_ZC/SENDMSG_ZC operations submitted */
    uint64_t zc_copied;      /* ZC notifications where the kernel copied anyway */
    uint64_t short_sends;    /* sends the kernel took only part of */
    uint64_t enobufs;        /* receives stopped by an empty provided-buffer ring */
    uint64_t errors;         /* connection/accept/dial errors reported to callbacks */
    uint64_t accept_errors;  /* accept failures (EMFILE, ENFILE, ENOMEM, ...) */
    uint64_t dial_failures;  /* dials reported with an error */
    uint64_t msgs_in;        /* cross-shard/external messages run here */
    uint64_t msgs_out;       /* messages this shard sent to others */
    uint64_t wakeups_sent;   /* MSG_RING or eventfd wakeups this shard sent */
    uint64_t loops;          /* loop turns */
    uint64_t sleeps;         /* turns that blocked in io_uring_enter */
    uint64_t leaked_buffers; /* pool buffers outstanding at shard exit (0 = clean) */
} rp_shard_stats;

/* Any thread. Copies shard i's counters into *out. */
void rp_runtime_shard_stats(const rp_runtime *rt, unsigned i, rp_shard_stats *out);

#endif
