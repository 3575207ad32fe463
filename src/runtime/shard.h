/*
 * Runtime internals shared by runtime.c (shards, loop, messages) and conn.c
 * (sockets). Not for use outside src/runtime/.
 *
 * user_data of every SQE is an object pointer (aligned to RP_UD_ALIGN) with
 * the operation in its low bits, as in liburing's proxy example: the CQE
 * says which object and what completed without any lookup.
 */
#ifndef RP_RUNTIME_SHARD_H
#define RP_RUNTIME_SHARD_H

#include <liburing.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/mpsc.h"
#include "base/pool.h"
#include "base/spsc.h"
#include "runtime/conn.h"
#include "runtime/runtime.h"

enum rp_op {
    RP_OP_IGNORE = 0,    /* cancels (their CQEs are skipped where the kernel can) */
    RP_OP_WAKE = 1,      /* MSG_RING arriving on the woken shard */
    RP_OP_EVENTFD = 2,   /* the shard's eventfd read (object: shard) */
    RP_OP_RECV = 3,      /* object: rp_conn */
    RP_OP_SEND = 4,      /* object: rp_sendop (also its ZC notification) */
    RP_OP_CONNECT = 5,   /* object: rp_conn */
    RP_OP_ACCEPT = 6,    /* object: rp_lsock */
    RP_OP_SHUTDOWN = 7,  /* object: shard; the final eventfd cancel */
    RP_OP_WAKE_SENT = 8, /* MSG_RING on the sender (object: the target shard); errors only */
};
/* Every cross-shard message the runtime allocates itself fits one msg-pool object. */
#define RP_MSG_OBJ_SIZE 64
#define RP_UD_ALIGN     16
#define RP_UD_MASK      ((uint64_t)(RP_UD_ALIGN - 1))

static inline uint64_t rp_ud(const void *obj, enum rp_op op)
{
    return (uint64_t)(uintptr_t)obj | (uint64_t)op;
}
static inline void *rp_ud_obj(uint64_t ud)
{
    return (void *)(uintptr_t)(ud & ~RP_UD_MASK);
}
static inline enum rp_op rp_ud_op(uint64_t ud)
{
    return (enum rp_op)(ud & RP_UD_MASK);
}

/* A provided receive buffer: either in the ring (slot of its bid) or lent/held/stashed. */
struct rp_rbuf {
    uint8_t *base;
    rp_shard *sh;
    uint32_t refs; /* holders: on_data's lender, rp_rbuf_hold, a pause stash */
    uint16_t bid;  /* ring slot it came from */
    bool detached; /* its slot was refilled: freed (not recycled) on the last release */
    rp_rbuf *next; /* pause stash FIFO */
    uint32_t len;  /* stashed bytes */
};

/* One piece of a connection's send queue: a copy chunk of the shard's, or a caller's reference. */
typedef struct rp_sitem {
    struct rp_sitem *next;
    const uint8_t *base;
    size_t len; /* bytes queued in it (a chunk grows while it is the tail) */
    size_t off; /* bytes the kernel has taken */
    size_t cap; /* chunk capacity; 0 for references */
    rp_release_fn release;
    void *arg;
    uint32_t refs; /* the queue's, plus one per ZC send still holding its pages */
} rp_sitem;

/* One send in flight; lives until its CQE and, for ZC, its notification. */
typedef struct rp_sendop {
    rp_conn *c;
    struct msghdr msg;
    struct iovec iov[RP_SEND_IOV_MAX];
    rp_sitem *items[RP_SEND_IOV_MAX];
    unsigned n;
    size_t bytes;
    bool zc;
    bool result_seen;
    bool notif_pending;
} rp_sendop;

enum rp_conn_state {
    RP_CONN_CONNECTING,
    RP_CONN_OPEN,
    RP_CONN_CLOSING,  /* rp_conn_close: flushing, FIN not yet sent */
    RP_CONN_FIN_SENT, /* waiting for the peer's FIN or the linger timer */
    RP_CONN_DEAD,     /* socket closed; waiting for the last CQE */
};

struct rp_conn {
    alignas(64) rp_shard *sh;
    int fd;
    uint8_t state;
    bool inbound;
    bool delivered;  /* the user has it: on_close is owed */
    bool recv_armed; /* a recv (multishot or not) is in the kernel */
    bool recv_paused;
    bool eof_seen;
    bool eof_pending; /* EOF arrived while paused */
    bool writable;
    bool zc_ok; /* SEND_ZC allowed (off once the kernel reports it copies) */
    bool dial_timed_out;
    bool on_dirty, on_starved, on_deferred, on_zombie;
    int close_err;
    uint32_t refs; /* operations in the kernel + live sendops */
    uint32_t slot;
    uint64_t id;
    const rp_conn_cbs *cbs;
    void *arg;

    rp_sitem *sq_head, *sq_tail;
    size_t queued;
    size_t high, low;
    rp_sendop *inflight; /* the one send whose result is outstanding */

    rp_rbuf *stash_head, *stash_tail;

    rp_timer timer; /* dial timeout, then linger */
    rp_dial_fn dial_done;
    void *dial_arg;
    struct sockaddr_storage peer;
    socklen_t peer_len;

    rp_conn *prev, *next; /* the shard's list of conns */
    rp_conn *dirty_next, *starved_next, *deferred_next, *zombie_next;
};

/* One listener's socket on one shard. */
typedef struct rp_lsock {
    alignas(RP_UD_ALIGN) rp_listener *l;
    rp_shard *sh;
    int fd;
    bool armed;
    bool closed;
    bool registered; /* on the shard's list */
    uint32_t refs;
    rp_timer retry;
    struct rp_lsock *next;
} rp_lsock;

struct rp_listener {
    rp_runtime *rt;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    rp_listen_opts opts;
    rp_accept_fn on_accept;
    void *arg;
    unsigned n;
    atomic_bool closing;
    rp_lsock *socks; /* n of them, index = shard */
    rp_listener *next;
};

/* Counters: written by the shard only (load+store, no RMW), read by anyone. */
typedef struct rp_stats_atomic {
#define RP_STAT_FIELD(name) _Atomic uint64_t name;
    RP_STAT_FIELD(conns_open)
    RP_STAT_FIELD(conns_accepted)
    RP_STAT_FIELD(conns_dialed)
    RP_STAT_FIELD(conns_closed)
    RP_STAT_FIELD(accepts)
    RP_STAT_FIELD(handoffs_out)
    RP_STAT_FIELD(handoffs_in)
    RP_STAT_FIELD(bytes_in)
    RP_STAT_FIELD(bytes_out)
    RP_STAT_FIELD(recv_cqes)
    RP_STAT_FIELD(sends)
    RP_STAT_FIELD(sends_zc)
    RP_STAT_FIELD(zc_copied)
    RP_STAT_FIELD(short_sends)
    RP_STAT_FIELD(enobufs)
    RP_STAT_FIELD(errors)
    RP_STAT_FIELD(accept_errors)
    RP_STAT_FIELD(dial_failures)
    RP_STAT_FIELD(msgs_in)
    RP_STAT_FIELD(msgs_out)
    RP_STAT_FIELD(wakeups_sent)
    RP_STAT_FIELD(loops)
    RP_STAT_FIELD(sleeps)
    RP_STAT_FIELD(leaked_buffers)
#undef RP_STAT_FIELD
} rp_stats_atomic;

/* Single-writer increment: no locked instruction on the datapath. */
#define RP_STAT_ADD(sh, field, v)                                                          \
    atomic_store_explicit(&(sh)->stats.field,                                              \
                          atomic_load_explicit(&(sh)->stats.field, memory_order_relaxed) + \
                              (uint64_t)(v),                                               \
                          memory_order_relaxed)
#define RP_STAT_SUB(sh, field, v) RP_STAT_ADD(sh, field, -(uint64_t)(v))

typedef struct rp_msgq {
    rp_msg *head, *tail;
} rp_msgq;

struct rp_shard {
    /* Owner-only state. */
    struct io_uring ring;
    rp_runtime *rt;
    unsigned id;
    unsigned n; /* shards in the runtime */
    unsigned features;
    pthread_t thread;
    uint64_t now;
    const rp_logger *log;
    rp_timer_wheel timers;
    int ring_fd; /* raw fd, the MSG_RING target; written before the shards start */
    int efd;     /* eventfd: wakeups from threads that are not shards, or without MSG_RING */
    uint64_t efd_val;
    bool efd_armed;

    /* Pools (each on its own mimalloc heap, owned by this thread). */
    rp_pool *conn_pool, *sendop_pool, *item_pool, *chunk_pool, *rbuf_pool, *rxbuf_pool, *msg_pool;

    /* Provided receive buffers. */
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    unsigned br_count, br_mask;
    unsigned br_added;   /* adds not yet published with io_uring_buf_ring_advance */
    unsigned br_missing; /* slots whose refill allocation failed */
    rp_rbuf **slots;     /* per bid: the rbuf whose buffer the ring holds (NULL: missing) */
    unsigned bufs_out;   /* buffers the kernel filled and the runtime has not put back */
    bool buf_returned;   /* since the last flush (starved receives may re-arm) */

    /* Connections. */
    rp_conn **table;
    uint32_t *gens;
    uint32_t table_cap, table_free_head;
    uint32_t *table_free; /* stack of free slots */
    uint32_t table_nfree;
    rp_conn *conns;    /* all live (not finalized) conns */
    unsigned nconns;   /* conns not finalized, delivered or not */
    rp_conn *dirty;    /* output to flush */
    rp_conn *starved;  /* receive stopped by ENOBUFS */
    rp_conn *deferred; /* resumed: stash to deliver */
    rp_conn *zombies;  /* dead, last CQE seen: finalize */
    rp_lsock *lsocks;
    uint64_t send_chunk, zc_threshold, high, low, linger_ns;
    unsigned recv_buf_size;

    /* Messages. */
    rp_msgq *outbox;          /* per destination: queued, not yet in the ring */
    rp_msgq local;            /* sent to self */
    rp_turn_task *turn_tasks; /* rp_shard_at_turn_end, newest first */
    size_t pending_return;
    unsigned *handoffs_pending; /* per destination: accepts handed over, not yet acknowledged */
    rp_msg *ext_held;           /* popped from the MPSC inbox by the sleep check */
    bool outbox_nonempty;

    /* Shutdown. */
    bool stop_begun;
    bool declared_done;
    rp_timer stop_timer;

    /* Written by other threads. */
    alignas(RP_FALSE_SHARING_SIZE) atomic_int sleeping;

    alignas(RP_FALSE_SHARING_SIZE) rp_stats_atomic stats;
};

struct rp_runtime {
    rp_runtime_config cfg;
    unsigned n;
    unsigned features;
    rp_shard **shards;
    pthread_t *threads; /* for joining; a shard's own `thread` field is written by itself */
    rp_spsc **rings;    /* rings[from * n + to] */
    rp_mpsc **ext;      /* per shard */
    pthread_mutex_t mu; /* start-up handshake and the listener list only: never on the datapath */
    pthread_cond_t cv;
    unsigned nready;
    int start_err;
    char start_msg[RINGP2P_ERRINFO_MSG_MAX];
    bool go;
    bool stopped;
    rp_listener *listeners;
    alignas(RP_FALSE_SHARING_SIZE) atomic_int stopping;
    atomic_uint ext_active;
    atomic_uint ndone;
};

/* ---- runtime.c ---------------------------------------------------------------------------- */

/* An SQE, submitting first if the SQ is full; never NULL (aborts if the ring is broken). */
struct io_uring_sqe *rp_shard_sqe(rp_shard *sh);

/* Translates a negative errno into a RINGP2P_E* code. */
int rp_errno_code(int neg_errno);

/* ---- conn.c, called by the loop in runtime.c ---------------------------------------------- */

int rp_conn_shard_init(rp_shard *sh);  /* pools for conns, buffer ring */
void rp_conn_shard_fini(rp_shard *sh); /* after the loop: return ring buffers, free pools */
void rp_conn_dispatch(rp_shard *sh, struct io_uring_cqe *cqe);
void rp_conn_flush(rp_shard *sh); /* deferred deliveries, sends, starved receives */
void rp_conn_finalize_zombies(rp_shard *sh);
void rp_conn_begin_stop(rp_shard *sh);   /* close listeners, close conns */
void rp_conn_stop_expired(rp_shard *sh); /* shutdown time is up: reset what is left */
bool rp_conn_quiesced(const rp_shard *sh);
void rp_lsock_arm_task(rp_shard *sh, void *arg);
void rp_lsock_close_task(rp_shard *sh, void *arg);

#endif
