/*
 * The blocking side of a stream (node.h, "the blocking side"): a thread
 * that is not a shard reads, writes and closes a stream without locks on the
 * datapath.
 *
 *   shard -> thread: received bytes go through a lock-free SPSC ring of
 *     malloc'd chunks (the shard produces, the one user thread consumes); an
 *     eventfd wakes the thread. When RP_BSTREAM_RX_HIGH bytes are unread (or
 *     the ring is full) the shard pauses the stream's reading, so yamux stops
 *     crediting the peer (mplex cannot slow it: a stream left paused is reset
 *     at mplex's buffer limit); the thread asks for a resume below
 *     RP_BSTREAM_RX_LOW.
 *   thread -> shard: writes, half-close and close are tasks posted to the
 *     owning shard (rp_runtime_post: one push on its MPSC inbox). Bytes posted
 *     and not yet accepted by the stream are counted; the writer waits on the
 *     eventfd while they exceed RP_BSTREAM_TX_HIGH.
 *   Ordering: data is pushed before the end/error flag is published
 *     (release), and the reader pops again after seeing the flag (acquire),
 *     so no byte is lost at the end of the stream.
 *   Lifetime: two references, the thread's (dropped by the close task on the
 *     shard) and the shard's (dropped at on_close or a failed open).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/spsc.h"
#include "host/host.h"

#define RP_BSTREAM_RING    1024
#define RP_BSTREAM_RX_HIGH (1u << 20)
#define RP_BSTREAM_RX_LOW  (256u << 10)
#define RP_BSTREAM_TX_HIGH (1u << 20)

enum { BS_OPENING = 0, BS_OPEN, BS_FAILED, BS_ABANDONED };

typedef struct bchunk {
    struct bchunk *next;
    size_t len, off;
    uint8_t data[];
} bchunk;

struct ringp2p_bstream {
    ringp2p_node *node;
    unsigned shard;
    int efd;  /* the reading (and opening) thread waits here */
    int wefd; /* the writing thread waits here: a reader and a writer may be two threads, and a
                 wakeup one of them consumed from a shared eventfd would be lost to the other */
    atomic_int refs;
    atomic_int state;
    atomic_int open_err;
    ringp2p_errinfo open_ei;
    rp_spsc *rx;
    atomic_size_t rx_bytes, tx_pending;
    atomic_bool rx_paused, resume_posted, eof, closed_write_posted;
    atomic_int err; /* stream ended with this error (or ECLOSED after a clean end) */
    atomic_bool ended;
    /* shard side */
    ringp2p_stream *s;
    bchunk *ovf_head, *ovf_tail; /* chunks the ring had no room for */
    bool pending_eof;
    int pending_err;
    bool pending_end;
    bchunk *wq_head, *wq_tail; /* writes the stream refused (EAGAIN) */
    bool want_close_write;
    /* thread side */
    bchunk *cur;
};

/* Wakes both sides; each waiter rechecks its own condition, so a spare wakeup costs a loop. */
static void wake(ringp2p_bstream *bs)
{
    uint64_t one = 1;
    ssize_t r = write(bs->efd, &one, sizeof(one));
    r = write(bs->wefd, &one, sizeof(one));
    (void)r;
}

static void bs_unref(ringp2p_bstream *bs)
{
    if (atomic_fetch_sub(&bs->refs, 1) != 1) return;
    void *p;
    while (rp_spsc_pop(bs->rx, &p) == 0) free(p);
    free(bs->cur);
    for (bchunk *c = bs->ovf_head, *n; c != NULL; c = n) n = c->next, free(c);
    for (bchunk *c = bs->wq_head, *n; c != NULL; c = n) n = c->next, free(c);
    rp_spsc_free(bs->rx);
    close(bs->efd);
    close(bs->wefd);
    free(bs);
}

static ringp2p_bstream *bs_new(ringp2p_node *n)
{
    ringp2p_bstream *bs = calloc(1, sizeof(*bs));
    if (bs == NULL) return NULL;
    bs->node = n;
    bs->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    bs->wefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (bs->efd < 0 || bs->wefd < 0 || rp_spsc_new(RP_BSTREAM_RING, &bs->rx) != 0) {
        if (bs->efd >= 0) close(bs->efd);
        if (bs->wefd >= 0) close(bs->wefd);
        free(bs);
        return NULL;
    }
    atomic_init(&bs->refs, 2);
    return bs;
}

/* ---- shard side --------------------------------------------------------------------------- */

static void publish_end(ringp2p_bstream *bs)
{
    if (bs->ovf_head != NULL) return;
    if (bs->pending_eof) {
        atomic_store_explicit(&bs->eof, true, memory_order_release);
        bs->pending_eof = false;
    }
    if (bs->pending_end) {
        atomic_store_explicit(&bs->err, bs->pending_err, memory_order_relaxed);
        atomic_store_explicit(&bs->ended, true, memory_order_release);
        bs->pending_end = false;
    }
    wake(bs);
}

static void drain_ovf(ringp2p_bstream *bs)
{
    while (bs->ovf_head != NULL && rp_spsc_push(bs->rx, bs->ovf_head) == 0) {
        bchunk *c = bs->ovf_head;
        bs->ovf_head = c->next;
        if (bs->ovf_head == NULL) bs->ovf_tail = NULL;
    }
    publish_end(bs);
}

static void sh_data(ringp2p_stream *s, void *ctx, const uint8_t *data, size_t len)
{
    ringp2p_bstream *bs = ctx;
    bchunk *c = malloc(sizeof(*c) + len);
    if (c == NULL) {
        ringp2p_stream_reset(s);
        return;
    }
    c->next = NULL;
    c->len = len;
    c->off = 0;
    memcpy(c->data, data, len);
    size_t total = atomic_fetch_add(&bs->rx_bytes, len) + len;
    if (bs->ovf_head != NULL || rp_spsc_push(bs->rx, c) != 0) {
        if (bs->ovf_tail != NULL)
            bs->ovf_tail->next = c;
        else
            bs->ovf_head = c;
        bs->ovf_tail = c;
        total = SIZE_MAX;
    }
    if (total > RP_BSTREAM_RX_HIGH) {
        atomic_store(&bs->rx_paused, true);
        ringp2p_stream_pause_read(s);
    }
    wake(bs);
}

static void sh_eof(ringp2p_stream *s, void *ctx)
{
    ringp2p_bstream *bs = ctx;
    (void)s;
    bs->pending_eof = true;
    publish_end(bs);
}

static void sh_try_writes(ringp2p_bstream *bs)
{
    while (bs->s != NULL && bs->wq_head != NULL) {
        bchunk *c = bs->wq_head;
        ssize_t r = ringp2p_stream_write(bs->s, c->data + c->off, c->len - c->off);
        if (r == RINGP2P_EAGAIN) return;
        bs->wq_head = c->next;
        if (bs->wq_head == NULL) bs->wq_tail = NULL;
        atomic_fetch_sub(&bs->tx_pending, c->len - c->off);
        free(c);
        wake(bs);
        if (r < 0) {
            ringp2p_stream_reset(bs->s);
            return;
        }
    }
    if (bs->s != NULL && bs->wq_head == NULL && bs->want_close_write) {
        bs->want_close_write = false;
        ringp2p_stream_close_write(bs->s);
    }
}

static void sh_writable(ringp2p_stream *s, void *ctx)
{
    (void)s;
    sh_try_writes(ctx);
}

static void sh_close(ringp2p_stream *s, void *ctx, int err)
{
    ringp2p_bstream *bs = ctx;
    (void)s;
    bs->s = NULL;
    for (bchunk *c = bs->wq_head, *n; c != NULL; c = n) {
        n = c->next;
        atomic_fetch_sub(&bs->tx_pending, c->len - c->off);
        free(c);
    }
    bs->wq_head = bs->wq_tail = NULL;
    /* eof (clean end) was published by on_eof; writers learn the end from `ended` */
    bs->pending_end = true;
    bs->pending_err = err != 0 ? err : RINGP2P_ECLOSED;
    /* chunks still in overflow go out with the reader's resume requests (t_resume) */
    drain_ovf(bs);
    wake(bs);
    bs_unref(bs);
}

static const ringp2p_stream_callbacks bs_cbs = {
    .on_data = sh_data,
    .on_eof = sh_eof,
    .on_writable = sh_writable,
    .on_close = sh_close,
};

/* Tasks from the thread. */
typedef struct bs_task {
    ringp2p_bstream *bs;
    bchunk *c;
} bs_task;

static void t_write(rp_shard *sh, void *arg)
{
    bs_task *t = arg;
    ringp2p_bstream *bs = t->bs;
    (void)sh;
    if (bs->s == NULL) {
        atomic_fetch_sub(&bs->tx_pending, t->c->len);
        free(t->c);
        wake(bs);
    } else {
        t->c->next = NULL;
        if (bs->wq_tail != NULL)
            bs->wq_tail->next = t->c;
        else
            bs->wq_head = t->c;
        bs->wq_tail = t->c;
        sh_try_writes(bs);
    }
    free(t);
}

static void t_close_write(rp_shard *sh, void *arg)
{
    ringp2p_bstream *bs = arg;
    (void)sh;
    bs->want_close_write = true;
    sh_try_writes(bs);
}

static void t_resume(rp_shard *sh, void *arg)
{
    ringp2p_bstream *bs = arg;
    (void)sh;
    atomic_store(&bs->resume_posted, false);
    drain_ovf(bs);
    if (bs->s != NULL && bs->ovf_head == NULL) {
        atomic_store(&bs->rx_paused, false);
        ringp2p_stream_resume_read(bs->s);
    }
}

static void t_close(rp_shard *sh, void *arg)
{
    ringp2p_bstream *bs = arg;
    (void)sh;
    if (bs->s != NULL) {
        /* writes still queued are delivered when the stream ended cleanly on our side */
        if (atomic_load(&bs->eof) && bs->wq_head == NULL)
            ringp2p_stream_close_write(bs->s);
        else
            ringp2p_stream_reset(bs->s);
    }
    bs_unref(bs);
}

static int post(ringp2p_bstream *bs, rp_task_fn fn, void *arg)
{
    for (;;) {
        int r = rp_runtime_post(bs->node->rt, bs->shard, fn, arg);
        if (r != RINGP2P_EAGAIN) return r;
        usleep(100);
    }
}

/* ---- thread side -------------------------------------------------------------------------- */

/* Waits for a wakeup until deadline (UINT64_MAX: forever); false on timeout. */
static bool wait_fd(int fd, uint64_t deadline)
{
    int ms = -1;
    if (deadline != UINT64_MAX) {
        uint64_t now = (rp_clock_ns() / 1000000);
        if (now >= deadline) return false;
        ms = (int)(deadline - now);
    }
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int r = poll(&p, 1, ms);
    if (r > 0) {
        uint64_t v;
        ssize_t n = read(fd, &v, sizeof(v));
        (void)n;
        return true;
    }
    return r != 0;
}

static uint64_t deadline_of(int timeout_ms)
{
    return timeout_ms < 0 ? UINT64_MAX : (rp_clock_ns() / 1000000) + (uint64_t)timeout_ms;
}

static void bs_opened(ringp2p_node *n, ringp2p_stream *s, int err, const ringp2p_errinfo *ei,
                      void *ctx)
{
    ringp2p_bstream *bs = ctx;
    (void)n;
    int expect = BS_OPENING;
    if (err < 0) {
        if (ei != NULL) bs->open_ei = *ei;
        atomic_store(&bs->open_err, err);
        if (atomic_compare_exchange_strong(&bs->state, &expect, BS_FAILED)) wake(bs);
        bs_unref(bs);
        return;
    }
    if (!atomic_compare_exchange_strong(&bs->state, &expect, BS_OPEN)) {
        /* the thread gave up waiting */
        ringp2p_stream_set_callbacks(s, &bs_cbs, bs);
        bs->s = s;
        ringp2p_stream_reset(s);
        return;
    }
    bs->shard = ringp2p_stream_conn(s)->shard;
    bs->s = s;
    ringp2p_stream_set_callbacks(s, &bs_cbs, bs);
    wake(bs);
}

RINGP2P_API int ringp2p_bstream_open(ringp2p_node *node, const ringp2p_multiaddr *addr,
                                     const char *const *protocols, size_t n, int timeout_ms,
                                     ringp2p_bstream **out, ringp2p_errinfo *ei)
{
    ringp2p_bstream *bs = bs_new(node);
    if (bs == NULL) return RINGP2P_ENOMEM;
    int r = ringp2p_node_new_stream(node, addr, protocols, n, bs_opened, bs);
    if (r < 0) {
        atomic_store(&bs->refs, 1);
        bs_unref(bs);
        if (ei != NULL) {
            ei->code = r;
            strcpy(ei->msg, ringp2p_strerror(r));
        }
        return r;
    }
    uint64_t dl = deadline_of(timeout_ms);
    for (;;) {
        int st = atomic_load(&bs->state);
        if (st == BS_OPEN) {
            *out = bs;
            return 0;
        }
        if (st == BS_FAILED) {
            r = atomic_load(&bs->open_err);
            if (ei != NULL) *ei = bs->open_ei;
            bs_unref(bs);
            return r;
        }
        if (!wait_fd(bs->efd, dl)) {
            int expect = BS_OPENING;
            if (atomic_compare_exchange_strong(&bs->state, &expect, BS_ABANDONED)) {
                bs_unref(bs);
                if (ei != NULL) {
                    ei->code = RINGP2P_ETIMEDOUT;
                    strcpy(ei->msg, "timed out opening the stream");
                }
                return RINGP2P_ETIMEDOUT;
            }
        }
    }
}

RINGP2P_API int ringp2p_bstream_adopt(ringp2p_stream *s, ringp2p_bstream **out)
{
    ringp2p_bstream *bs = bs_new(rp_stream_node(s));
    if (bs == NULL) return RINGP2P_ENOMEM;
    atomic_store(&bs->state, BS_OPEN);
    bs->shard = ringp2p_stream_conn(s)->shard;
    bs->s = s;
    ringp2p_stream_set_callbacks(s, &bs_cbs, bs);
    *out = bs;
    return 0;
}

RINGP2P_API ssize_t ringp2p_bstream_read(ringp2p_bstream *bs, void *buf, size_t len, int timeout_ms)
{
    uint64_t dl = deadline_of(timeout_ms);
    for (;;) {
        if (bs->cur == NULL) {
            void *p;
            if (rp_spsc_pop(bs->rx, &p) == 0) bs->cur = p;
        }
        if (bs->cur != NULL) {
            bchunk *c = bs->cur;
            size_t n = c->len - c->off < len ? c->len - c->off : len;
            memcpy(buf, c->data + c->off, n);
            c->off += n;
            if (c->off == c->len) {
                free(c);
                bs->cur = NULL;
            }
            size_t left = atomic_fetch_sub(&bs->rx_bytes, n) - n;
            if (atomic_load(&bs->rx_paused) && left < RP_BSTREAM_RX_LOW &&
                !atomic_exchange(&bs->resume_posted, true))
                post(bs, t_resume, bs);
            return (ssize_t)n;
        }
        bool eof = atomic_load_explicit(&bs->eof, memory_order_acquire);
        bool ended = atomic_load_explicit(&bs->ended, memory_order_acquire);
        if (eof || ended) {
            void *p;
            if (rp_spsc_pop(bs->rx, &p) == 0) {
                bs->cur = p;
                continue;
            }
            return eof ? 0 : atomic_load(&bs->err);
        }
        if (!wait_fd(bs->efd, dl)) return RINGP2P_ETIMEDOUT;
    }
}

RINGP2P_API ssize_t ringp2p_bstream_write(ringp2p_bstream *bs, const void *buf, size_t len,
                                          int timeout_ms)
{
    uint64_t dl = deadline_of(timeout_ms);
    size_t done = 0;
    while (done < len) {
        if (atomic_load(&bs->ended)) {
            int e = atomic_load(&bs->err);
            return e != 0 ? e : RINGP2P_ECLOSED;
        }
        if (atomic_load(&bs->tx_pending) >= RP_BSTREAM_TX_HIGH) {
            if (!wait_fd(bs->wefd, dl)) return done > 0 ? (ssize_t)done : RINGP2P_ETIMEDOUT;
            continue;
        }
        size_t n = len - done < 65536 ? len - done : 65536;
        bs_task *t = malloc(sizeof(*t));
        bchunk *c = malloc(sizeof(*c) + n);
        if (t == NULL || c == NULL) {
            free(t);
            free(c);
            return RINGP2P_ENOMEM;
        }
        c->next = NULL;
        c->len = n;
        c->off = 0;
        memcpy(c->data, (const uint8_t *)buf + done, n);
        t->bs = bs;
        t->c = c;
        atomic_fetch_add(&bs->tx_pending, n);
        int r = post(bs, t_write, t);
        if (r < 0) {
            atomic_fetch_sub(&bs->tx_pending, n);
            free(t);
            free(c);
            return r;
        }
        done += n;
    }
    return (ssize_t)done;
}

RINGP2P_API int ringp2p_bstream_close_write(ringp2p_bstream *bs)
{
    if (atomic_exchange(&bs->closed_write_posted, true)) return 0;
    return post(bs, t_close_write, bs);
}

RINGP2P_API int ringp2p_bstream_fd(const ringp2p_bstream *bs)
{
    return bs->efd;
}

RINGP2P_API void ringp2p_bstream_close(ringp2p_bstream *bs)
{
    if (bs == NULL) return;
    if (post(bs, t_close, bs) != 0) {
        /* the node is stopped: the shard side is gone already */
        bs_unref(bs);
    }
}
