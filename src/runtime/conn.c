#include "runtime/conn.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/error.h"
#include "runtime/shard.h"
#include "runtime/uring_compat.h"

#define MOD "conn"

/* The one provided-buffer group of a shard. */
#define BGID 0
/* One send's length travels in the SQE's 32-bit len field; a bigger reference goes in pieces. */
#define SEND_PIECE_MAX ((size_t)1 << 30)

#define ON_SHARD(sh) assert(rp_shard_is_current(sh) && "runtime object used off its shard")

typedef struct handoff_msg {
    rp_msg m;
    int fd;
    rp_listener *l;
} handoff_msg;

_Static_assert(sizeof(handoff_msg) <= RP_MSG_OBJ_SIZE, "handoff_msg fits a msg-pool object");
_Static_assert(_Alignof(rp_conn) >= RP_UD_ALIGN, "rp_conn leaves user_data bits free");
_Static_assert(_Alignof(rp_lsock) >= RP_UD_ALIGN, "rp_lsock leaves user_data bits free");

static void teardown(rp_conn *c, int err, bool rst);
static void arm_recv(rp_conn *c);
static void timer_fired(rp_timer *t, void *arg);
static void deliver_eof(rp_conn *c);

/* ---- small helpers ------------------------------------------------------------------------ */

static void prep_cancel(rp_shard *sh, uint64_t ud)
{
    struct io_uring_sqe *sqe = rp_shard_sqe(sh);
    io_uring_prep_cancel64(sqe, ud, 0);
    io_uring_sqe_set_data64(sqe, rp_ud(NULL, RP_OP_IGNORE));
    if (sh->features & RP_FEAT_CQE_SKIP) sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

static void conn_unref(rp_conn *c)
{
    assert(c->refs > 0);
    if (--c->refs == 0 && c->state == RP_CONN_DEAD && !c->on_zombie) {
        c->on_zombie = true;
        c->zombie_next = c->sh->zombies;
        c->sh->zombies = c;
    }
}

static void mark_dirty(rp_conn *c)
{
    if (c->on_dirty || c->inflight != NULL || c->state == RP_CONN_DEAD) return;
    c->on_dirty = true;
    c->dirty_next = c->sh->dirty;
    c->sh->dirty = c;
}

/* ---- connection table --------------------------------------------------------------------- */

#define SLOT_BITS 24
#define SLOT_MAX  ((uint32_t)1 << SLOT_BITS)

static int table_insert(rp_shard *sh, rp_conn *c)
{
    if (sh->table_nfree == 0) {
        uint32_t cap = sh->table_cap ? sh->table_cap * 2 : 64;
        if (cap > SLOT_MAX) return RINGP2P_ELIMIT;
        rp_conn **t = realloc(sh->table, cap * sizeof(*t));
        if (t == NULL) return RINGP2P_ENOMEM;
        sh->table = t;
        uint32_t *g = realloc(sh->gens, cap * sizeof(*g));
        if (g == NULL) return RINGP2P_ENOMEM;
        sh->gens = g;
        uint32_t *f = realloc(sh->table_free, cap * sizeof(*f));
        if (f == NULL) return RINGP2P_ENOMEM;
        sh->table_free = f;
        for (uint32_t i = cap; i-- > sh->table_cap;) {
            sh->table[i] = NULL;
            sh->gens[i] = 1; /* from 1, so that no id is 0 (callers' "no connection") */
            sh->table_free[sh->table_nfree++] = i;
        }
        sh->table_cap = cap;
    }
    uint32_t slot = sh->table_free[--sh->table_nfree];
    sh->table[slot] = c;
    c->slot = slot;
    c->id = (uint64_t)sh->id << 56 | (uint64_t)sh->gens[slot] << SLOT_BITS | slot;
    return 0;
}

static void table_remove(rp_shard *sh, rp_conn *c)
{
    sh->table[c->slot] = NULL;
    if (++sh->gens[c->slot] == 0) sh->gens[c->slot] = 1;
    sh->table_free[sh->table_nfree++] = c->slot;
}

uint64_t rp_conn_id(const rp_conn *c)
{
    return c->id;
}

unsigned rp_conn_id_shard(uint64_t id)
{
    return (unsigned)(id >> 56);
}

rp_conn *rp_shard_find_conn(rp_shard *sh, uint64_t id)
{
    ON_SHARD(sh);
    uint32_t slot = (uint32_t)(id & (SLOT_MAX - 1));
    if (rp_conn_id_shard(id) != sh->id || slot >= sh->table_cap) return NULL;
    rp_conn *c = sh->table[slot];
    return c != NULL && c->id == id && c->delivered && c->state != RP_CONN_DEAD ? c : NULL;
}

/* ---- provided receive buffers ------------------------------------------------------------- */

static void ring_add(rp_shard *sh, rp_rbuf *rb)
{
    sh->slots[rb->bid] = rb;
    io_uring_buf_ring_add(sh->br, rb->base, sh->recv_buf_size, rb->bid, (int)sh->br_mask,
                          (int)sh->br_added++);
    sh->bufs_out--;
    sh->buf_returned = true;
}

/* Makes the adds since the last publish visible to the kernel: one tail store per batch. */
static void ring_publish(rp_shard *sh)
{
    if (sh->br_added == 0) return;
    io_uring_buf_ring_advance(sh->br, (int)sh->br_added);
    sh->br_added = 0;
}

/* Refills slot `bid` with a fresh buffer; on allocation failure it stays empty for a retry. */
static void refill_slot(rp_shard *sh, uint16_t bid)
{
    rp_rbuf *nrb = rp_pool_get(sh->rbuf_pool);
    uint8_t *buf = nrb != NULL ? rp_pool_get(sh->rxbuf_pool) : NULL;
    if (buf == NULL) {
        rp_pool_put(sh->rbuf_pool, nrb);
        if (sh->slots[bid] != NULL) sh->br_missing++;
        sh->slots[bid] = NULL;
        return;
    }
    memset(nrb, 0, sizeof(*nrb));
    nrb->base = buf;
    nrb->sh = sh;
    nrb->bid = bid;
    if (sh->slots[bid] == NULL && sh->br_missing > 0) sh->br_missing--;
    ring_add(sh, nrb);
}

/* `rb` leaves its slot for good (held past on_data, or stashed): the slot gets a new buffer. */
static void detach(rp_shard *sh, rp_rbuf *rb)
{
    rb->detached = true;
    refill_slot(sh, rb->bid);
}

/* The lender's reference ends: back into the ring, or detached if someone holds it. */
static void lend_done(rp_shard *sh, rp_rbuf *rb)
{
    if (--rb->refs == 0)
        ring_add(sh, rb);
    else
        detach(sh, rb);
}

rp_rbuf *rp_rbuf_hold(rp_rbuf *b)
{
    ON_SHARD(b->sh);
    b->refs++;
    return b;
}

void rp_rbuf_release(rp_rbuf *b)
{
    rp_shard *sh = b->sh;
    ON_SHARD(sh);
    assert(b->refs > 0 && "rp_rbuf_release without a hold");
    if (--b->refs != 0) return;
    if (b->detached) {
        rp_pool_put(sh->rxbuf_pool, b->base);
        rp_pool_put(sh->rbuf_pool, b);
    } else {
        ring_add(sh, b);
    }
}

rp_shard *rp_rbuf_shard(const rp_rbuf *b)
{
    return b->sh;
}

/* ---- shard set-up and teardown ------------------------------------------------------------ */

int rp_conn_shard_init(rp_shard *sh)
{
    const rp_runtime_config *cfg = &sh->rt->cfg;
    sh->recv_buf_size = cfg->recv_buf_size ? cfg->recv_buf_size : RP_RUNTIME_RECV_BUF_SIZE_DEFAULT;
    sh->br_count = cfg->recv_buf_count ? cfg->recv_buf_count : RP_RUNTIME_RECV_BUF_COUNT_DEFAULT;
    sh->br_mask = (unsigned)io_uring_buf_ring_mask(sh->br_count);
    sh->send_chunk = cfg->send_chunk_size ? cfg->send_chunk_size : RP_RUNTIME_SEND_CHUNK_DEFAULT;
    sh->zc_threshold =
        cfg->send_zc_threshold ? cfg->send_zc_threshold : RP_RUNTIME_SEND_ZC_THRESHOLD_DEFAULT;
    sh->high = cfg->high_watermark ? cfg->high_watermark : RP_RUNTIME_HIGH_WATERMARK_DEFAULT;
    sh->low = cfg->low_watermark ? cfg->low_watermark : RP_RUNTIME_LOW_WATERMARK_DEFAULT;
    if (sh->low >= sh->high) sh->low = sh->high / 2;
    sh->linger_ns =
        cfg->close_linger_ns ? cfg->close_linger_ns : RP_RUNTIME_CLOSE_LINGER_NS_DEFAULT;

    int r;
    if ((r = rp_pool_new(sizeof(rp_conn), 1024, &sh->conn_pool)) != 0 ||
        (r = rp_pool_new(sizeof(rp_sendop), 256, &sh->sendop_pool)) != 0 ||
        (r = rp_pool_new(sizeof(rp_sitem), 4096, &sh->item_pool)) != 0 ||
        (r = rp_pool_new_aligned(sh->send_chunk, 4096, 256, &sh->chunk_pool)) != 0 ||
        (r = rp_pool_new(sizeof(rp_rbuf), sh->br_count * 2, &sh->rbuf_pool)) != 0 ||
        (r = rp_pool_new(sh->recv_buf_size, sh->br_count, &sh->rxbuf_pool)) != 0 ||
        (r = rp_pool_new(RP_MSG_OBJ_SIZE, 1024, &sh->msg_pool)) != 0)
        return r;

    int err = 0;
    sh->br = rp_setup_buf_ring(&sh->ring, sh->br_count, BGID, &err, &sh->br_bytes);
    if (sh->br == NULL)
        return err == -EINVAL || err == -ENOSYS ? RINGP2P_EUNSUPPORTED : rp_errno_code(err);
    sh->slots = calloc(sh->br_count, sizeof(*sh->slots));
    if (sh->slots == NULL) return RINGP2P_ENOMEM;
    /* Every slot starts "out" so each ring_add below brings the count to 0. */
    sh->bufs_out = sh->br_count;
    for (unsigned bid = 0; bid < sh->br_count; bid++) {
        sh->slots[bid] = (rp_rbuf *)1; /* not missing: refill must not count it */
        refill_slot(sh, (uint16_t)bid);
        if (sh->slots[bid] == NULL) return RINGP2P_ENOMEM;
    }
    ring_publish(sh);
    sh->buf_returned = false;
    return 0;
}

void rp_conn_shard_fini(rp_shard *sh)
{
    if (sh->br != NULL) {
        rp_free_buf_ring(&sh->ring, sh->br, BGID, sh->br_bytes);
        sh->br = NULL;
    }
    if (sh->slots != NULL) {
        for (unsigned bid = 0; bid < sh->br_count; bid++) {
            rp_rbuf *rb = sh->slots[bid];
            if (rb == NULL || rb == (rp_rbuf *)1) continue;
            rp_pool_put(sh->rxbuf_pool, rb->base);
            rp_pool_put(sh->rbuf_pool, rb);
        }
        free(sh->slots);
        sh->slots = NULL;
    }
    free(sh->table);
    free(sh->gens);
    free(sh->table_free);
    sh->table = NULL;
    size_t leaked = 0;
    rp_pool **pools[] = { &sh->conn_pool, &sh->sendop_pool, &sh->item_pool, &sh->chunk_pool,
                          &sh->rbuf_pool, &sh->rxbuf_pool,  &sh->msg_pool };
    for (size_t i = 0; i < sizeof(pools) / sizeof(pools[0]); i++) {
        leaked += rp_pool_free(*pools[i]);
        *pools[i] = NULL;
    }
    if (leaked != 0)
        rp_log_warn(sh->log, MOD, "shard %u: %zu buffers still held at exit", sh->id, leaked);
    RP_STAT_ADD(sh, leaked_buffers, leaked);
}

/* ---- connection objects ------------------------------------------------------------------- */

static rp_conn *conn_new(rp_shard *sh, int fd, bool inbound)
{
    rp_conn *c = rp_pool_get(sh->conn_pool);
    if (c == NULL) return NULL;
    memset(c, 0, sizeof(*c));
    c->sh = sh;
    c->fd = fd;
    c->inbound = inbound;
    c->writable = true;
    c->zc_ok = true;
    c->high = sh->high;
    c->low = sh->low;
    rp_timer_init(&c->timer, timer_fired, c);
    if (table_insert(sh, c) != 0) {
        rp_pool_put(sh->conn_pool, c);
        return NULL;
    }
    c->next = sh->conns;
    if (sh->conns != NULL) sh->conns->prev = c;
    sh->conns = c;
    sh->nconns++;
    return c;
}

static void conn_finalize(rp_shard *sh, rp_conn *c)
{
    table_remove(sh, c);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        sh->conns = c->next;
    if (c->next != NULL) c->next->prev = c->prev;
    sh->nconns--;
    if (c->delivered) {
        RP_STAT_SUB(sh, conns_open, 1);
        RP_STAT_ADD(sh, conns_closed, 1);
        if (c->cbs != NULL) c->cbs->on_close(c, c->arg, c->close_err);
    }
    rp_pool_put(sh->conn_pool, c);
}

void rp_conn_finalize_zombies(rp_shard *sh)
{
    rp_conn *later = NULL;
    while (sh->zombies != NULL) {
        rp_conn *c = sh->zombies;
        sh->zombies = c->zombie_next;
        /* Still linked on a list that the next flush walks: free it after that. */
        if (c->on_dirty || c->on_deferred) {
            c->zombie_next = later;
            later = c;
            continue;
        }
        c->on_zombie = false;
        conn_finalize(sh, c);
    }
    sh->zombies = later;
}

rp_shard *rp_conn_shard(const rp_conn *c)
{
    return c->sh;
}

bool rp_conn_inbound(const rp_conn *c)
{
    return c->inbound;
}

int rp_conn_local_addr(const rp_conn *c, struct sockaddr_storage *ss, socklen_t *len)
{
    *len = sizeof(*ss);
    if (c->fd < 0 || getsockname(c->fd, (struct sockaddr *)ss, len) != 0) return RINGP2P_EIO;
    return 0;
}

int rp_conn_peer_addr(const rp_conn *c, struct sockaddr_storage *ss, socklen_t *len)
{
    if (c->peer_len != 0) {
        memcpy(ss, &c->peer, c->peer_len);
        *len = c->peer_len;
        return 0;
    }
    *len = sizeof(*ss);
    if (c->fd < 0 || getpeername(c->fd, (struct sockaddr *)ss, len) != 0) return RINGP2P_EIO;
    return 0;
}

void rp_conn_set_cbs(rp_conn *c, const rp_conn_cbs *cbs, void *arg)
{
    ON_SHARD(c->sh);
    assert(cbs != NULL && cbs->on_data != NULL && cbs->on_close != NULL);
    c->cbs = cbs;
    c->arg = arg;
    if (c->state != RP_CONN_DEAD && c->state != RP_CONN_CONNECTING && !c->recv_armed &&
        !c->recv_paused && !c->eof_seen && !c->on_starved)
        arm_recv(c);
}

/* ---- send queue --------------------------------------------------------------------------- */

static void item_unref(rp_shard *sh, rp_sitem *it)
{
    if (--it->refs != 0) return;
    if (it->cap != 0)
        rp_pool_put(sh->chunk_pool, (void *)(uintptr_t)it->base);
    else
        it->release(it->arg, it->base, it->len);
    rp_pool_put(sh->item_pool, it);
}

static void queue_append(rp_conn *c, rp_sitem *it)
{
    it->next = NULL;
    if (c->sq_tail != NULL)
        c->sq_tail->next = it;
    else
        c->sq_head = it;
    c->sq_tail = it;
}

static void queued_grew(rp_conn *c, size_t len)
{
    c->queued += len;
    if (c->writable && c->queued >= c->high) c->writable = false;
    mark_dirty(c);
}

int rp_conn_send(rp_conn *c, const void *data, size_t len)
{
    rp_shard *sh = c->sh;
    ON_SHARD(sh);
    if (c->state != RP_CONN_OPEN) return RINGP2P_ECLOSED;
    if (len == 0) return 0;
    const uint8_t *src = data;
    rp_sitem *tail = c->sq_tail;
    size_t room = tail != NULL && tail->cap != 0 ? tail->cap - tail->len : 0;
    /* Get every new chunk first, so a failure leaves nothing half-queued. */
    rp_sitem *fresh = NULL, **fresh_end = &fresh;
    size_t need = len > room ? len - room : 0;
    while (need > 0) {
        rp_sitem *it = rp_pool_get(sh->item_pool);
        void *buf = it != NULL ? rp_pool_get(sh->chunk_pool) : NULL;
        if (buf == NULL) {
            rp_pool_put(sh->item_pool, it);
            while (fresh != NULL) {
                rp_sitem *n = fresh->next;
                rp_pool_put(sh->chunk_pool, (void *)(uintptr_t)fresh->base);
                rp_pool_put(sh->item_pool, fresh);
                fresh = n;
            }
            return RINGP2P_ENOMEM;
        }
        memset(it, 0, sizeof(*it));
        it->base = buf;
        it->cap = sh->send_chunk;
        it->refs = 1;
        *fresh_end = it;
        fresh_end = &it->next;
        need -= need < sh->send_chunk ? need : sh->send_chunk;
    }
    size_t left = len;
    if (room > 0) {
        size_t k = left < room ? left : room;
        memcpy((uint8_t *)(uintptr_t)tail->base + tail->len, src, k);
        tail->len += k;
        src += k;
        left -= k;
    }
    while (fresh != NULL) {
        rp_sitem *it = fresh;
        fresh = it->next;
        size_t k = left < it->cap ? left : it->cap;
        memcpy((uint8_t *)(uintptr_t)it->base, src, k);
        it->len = k;
        src += k;
        left -= k;
        queue_append(c, it);
    }
    queued_grew(c, len);
    return 0;
}

int rp_conn_send_ref(rp_conn *c, const void *data, size_t len, rp_release_fn release, void *arg)
{
    rp_shard *sh = c->sh;
    ON_SHARD(sh);
    if (len == 0 || release == NULL) return RINGP2P_EINVAL;
    if (c->state != RP_CONN_OPEN) return RINGP2P_ECLOSED;
    rp_sitem *it = rp_pool_get(sh->item_pool);
    if (it == NULL) return RINGP2P_ENOMEM;
    memset(it, 0, sizeof(*it));
    it->base = data;
    it->len = len;
    it->release = release;
    it->arg = arg;
    it->refs = 1;
    queue_append(c, it);
    queued_grew(c, len);
    return 0;
}

size_t rp_conn_queued(const rp_conn *c)
{
    return c->queued;
}

bool rp_conn_writable(const rp_conn *c)
{
    return c->writable && c->state == RP_CONN_OPEN;
}

void rp_conn_set_watermarks(rp_conn *c, size_t high, size_t low)
{
    ON_SHARD(c->sh);
    if (high == 0) {
        high = c->sh->high;
        low = c->sh->low;
    }
    if (low >= high) low = high / 2;
    c->high = high;
    c->low = low;
    if (c->writable && c->queued >= c->high) c->writable = false;
}

static void drop_queue(rp_conn *c)
{
    rp_sitem *it = c->sq_head;
    c->sq_head = c->sq_tail = NULL;
    c->queued = 0;
    while (it != NULL) {
        rp_sitem *next = it->next;
        item_unref(c->sh, it);
        it = next;
    }
}

/* The kernel took `n` bytes from the head of the queue. */
static void consume(rp_conn *c, size_t n)
{
    while (n > 0 && c->sq_head != NULL) {
        rp_sitem *it = c->sq_head;
        size_t take = it->len - it->off;
        if (take > n) take = n;
        it->off += take;
        n -= take;
        c->queued -= take;
        if (it->off == it->len) {
            /* Unlinked before release: the callback may queue more on this connection. */
            c->sq_head = it->next;
            if (c->sq_head == NULL) c->sq_tail = NULL;
            item_unref(c->sh, it);
        }
    }
}

static void send_fin(rp_conn *c)
{
    if (shutdown(c->fd, SHUT_WR) != 0) {
        teardown(c, rp_errno_code(-errno), false);
        return;
    }
    c->state = RP_CONN_FIN_SENT;
    if (c->eof_seen) teardown(c, 0, false);
    /* else the linger timer armed by rp_conn_close still runs */
}

/*
 * One gathered send of everything queued (up to RP_SEND_IOV_MAX pieces).
 *
 * ZC_NOTE, the SEND_ZC threshold. Measured here (kernel 6.18, 2 shared
 * cores, one loopback TCP connection, liburing SEND vs SEND_ZC from one
 * buffer, GB/s, queue depth 1 / 4):
 *
 *     size      SEND        SEND_ZC (the kernel reported a copy every time)
 *     4 KiB     0.59 / 0.55 0.02 / 0.06
 *     16 KiB    0.80 / 0.97 0.07 / 0.15
 *     64 KiB    0.83 / 0.79 0.17 / 0.56
 *     256 KiB   1.04 / 1.02 0.34 / 1.02
 *     1 MiB     1.17 / 0.83 0.62 / 0.79
 *
 * On loopback ZC never pays: the kernel copies anyway, and the pages stay
 * pinned until the receiver has copied them, so a connection goes back to
 * SEND at its first notification with IORING_NOTIF_USAGE_ZC_COPIED. For
 * real NICs the default is not a measurement (no NIC with a peer here): the
 * kernel's MSG_ZEROCOPY notes put the break-even around 10 KB per write, and
 * 64 KiB keeps a margin for the notification round trip. Re-measure with
 * the benchmark on a NIC before changing it.
 */
static void start_send(rp_conn *c)
{
    rp_shard *sh = c->sh;
    rp_sendop *op = rp_pool_get(sh->sendop_pool);
    if (op == NULL) {
        mark_dirty(c); /* retried next turn */
        return;
    }
    op->c = c;
    op->n = 0;
    op->bytes = 0;
    op->result_seen = false;
    op->notif_pending = false;
    for (rp_sitem *it = c->sq_head; it != NULL && op->n < RP_SEND_IOV_MAX; it = it->next) {
        size_t avail = it->len - it->off;
        if (avail == 0) continue;
        if (avail > SEND_PIECE_MAX) avail = SEND_PIECE_MAX;
        op->iov[op->n].iov_base = (void *)(uintptr_t)(it->base + it->off);
        op->iov[op->n].iov_len = avail;
        op->items[op->n] = it;
        op->n++;
        op->bytes += avail;
        if (op->bytes >= SEND_PIECE_MAX) break;
    }
    op->zc = (sh->features & RP_FEAT_SEND_ZC) && c->zc_ok && op->bytes >= sh->zc_threshold;
    /*
     * The op holds its items until the kernel is done reading them: the CQE
     * for SEND (a send parked on a full socket reads them late), the
     * notification for SEND_ZC. A reset meanwhile cannot free them.
     */
    for (unsigned i = 0; i < op->n; i++) op->items[i]->refs++;
    struct io_uring_sqe *sqe = rp_shard_sqe(sh);
    if (op->n == 1) {
        if (op->zc)
            io_uring_prep_send_zc(sqe, c->fd, op->iov[0].iov_base, op->iov[0].iov_len, MSG_NOSIGNAL,
                                  IORING_SEND_ZC_REPORT_USAGE);
        else
            io_uring_prep_send(sqe, c->fd, op->iov[0].iov_base, op->iov[0].iov_len, MSG_NOSIGNAL);
    } else {
        memset(&op->msg, 0, sizeof(op->msg));
        op->msg.msg_iov = op->iov;
        op->msg.msg_iovlen = op->n;
        if (op->zc) {
            io_uring_prep_sendmsg_zc(sqe, c->fd, &op->msg, MSG_NOSIGNAL);
            sqe->ioprio |= IORING_SEND_ZC_REPORT_USAGE;
        } else {
            io_uring_prep_sendmsg(sqe, c->fd, &op->msg, MSG_NOSIGNAL);
        }
    }
    io_uring_sqe_set_data64(sqe, rp_ud(op, RP_OP_SEND));
    c->inflight = op;
    c->refs++;
    if (op->zc)
        RP_STAT_ADD(sh, sends_zc, 1);
    else
        RP_STAT_ADD(sh, sends, 1);
}

static void sendop_drop_refs(rp_shard *sh, rp_sendop *op)
{
    for (unsigned i = 0; i < op->n; i++) item_unref(sh, op->items[i]);
    op->n = 0;
}

static void sendop_maybe_free(rp_shard *sh, rp_sendop *op)
{
    if (!op->result_seen || op->notif_pending) return;
    rp_conn *c = op->c;
    rp_pool_put(sh->sendop_pool, op);
    conn_unref(c);
}

static void on_send_cqe(rp_shard *sh, rp_sendop *op, const struct io_uring_cqe *cqe)
{
    rp_conn *c = op->c;
    if (cqe->flags & IORING_CQE_F_NOTIF) {
        /* The kernel let go of the pages: now the buffers may be reused. */
        if ((uint32_t)cqe->res & IORING_NOTIF_USAGE_ZC_COPIED) {
            RP_STAT_ADD(sh, zc_copied, 1);
            c->zc_ok = false; /* it copies on this path (loopback, no SG): ZC only costs */
        }
        op->notif_pending = false;
        sendop_drop_refs(sh, op);
        sendop_maybe_free(sh, op);
        return;
    }
    op->result_seen = true;
    if (op->zc && (cqe->flags & IORING_CQE_F_MORE)) op->notif_pending = true;
    if (c->inflight == op) c->inflight = NULL;
    int res = cqe->res;
    if (res >= 0) {
        RP_STAT_ADD(sh, bytes_out, (uint64_t)res);
        if ((size_t)res < op->bytes) RP_STAT_ADD(sh, short_sends, 1);
        if (c->state != RP_CONN_DEAD) consume(c, (size_t)res);
    } else if (res == -EINVAL && op->zc) {
        /* No SEND_ZC usage reports (before 6.2): plain sends from now on. */
        sh->features &= ~(unsigned)RP_FEAT_SEND_ZC;
        rp_log_info(sh->log, MOD, "shard %u: SEND_ZC refused, using SEND", sh->id);
    } else if (res != -EINTR && res != -EAGAIN && res != -ECANCELED && c->state != RP_CONN_DEAD) {
        RP_STAT_ADD(sh, errors, 1);
        teardown(c, rp_errno_code(res), false);
    }
    if (!op->notif_pending) sendop_drop_refs(sh, op);
    if (c->state != RP_CONN_DEAD) {
        if (c->sq_head != NULL || c->state == RP_CONN_CLOSING) mark_dirty(c);
        if (!c->writable && c->queued <= c->low) {
            c->writable = true;
            if (c->state == RP_CONN_OPEN && c->cbs != NULL && c->cbs->on_writable != NULL)
                c->cbs->on_writable(c, c->arg);
        }
    }
    sendop_maybe_free(sh, op);
}

/* ---- receive ------------------------------------------------------------------------------ */

static void arm_recv(rp_conn *c)
{
    rp_shard *sh = c->sh;
    struct io_uring_sqe *sqe = rp_shard_sqe(sh);
    if (sh->features & RP_FEAT_RECV_MULTISHOT)
        io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    else
        io_uring_prep_recv(sqe, c->fd, NULL, sh->recv_buf_size, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, rp_ud(c, RP_OP_RECV));
    c->recv_armed = true;
    c->refs++;
}

static bool wants_recv(const rp_conn *c)
{
    return c->state != RP_CONN_DEAD && c->state != RP_CONN_CONNECTING && c->cbs != NULL &&
           !c->recv_armed && !c->recv_paused && !c->eof_seen && !c->eof_pending && !c->on_starved &&
           c->stash_head == NULL;
}

static void starve(rp_conn *c)
{
    if (c->on_starved) return;
    c->on_starved = true;
    c->starved_next = c->sh->starved;
    c->sh->starved = c;
}

static void unstarve(rp_conn *c)
{
    if (!c->on_starved) return;
    rp_conn **pp = &c->sh->starved;
    while (*pp != c) pp = &(*pp)->starved_next;
    *pp = c->starved_next;
    c->on_starved = false;
}

static void defer(rp_conn *c)
{
    if (c->on_deferred) return;
    c->on_deferred = true;
    c->deferred_next = c->sh->deferred;
    c->sh->deferred = c;
}

static void stash(rp_conn *c, rp_rbuf *rb, uint32_t len)
{
    rb->refs = 1; /* the stash's */
    rb->len = len;
    rb->next = NULL;
    detach(c->sh, rb);
    if (c->stash_tail != NULL)
        c->stash_tail->next = rb;
    else
        c->stash_head = rb;
    c->stash_tail = rb;
}

static void drop_stash(rp_conn *c)
{
    rp_rbuf *rb = c->stash_head;
    c->stash_head = c->stash_tail = NULL;
    while (rb != NULL) {
        rp_rbuf *next = rb->next;
        rp_rbuf_release(rb);
        rb = next;
    }
}

static void deliver_eof(rp_conn *c)
{
    c->eof_seen = true;
    c->eof_pending = false;
    switch (c->state) {
    case RP_CONN_FIN_SENT: teardown(c, 0, false); break;
    case RP_CONN_CLOSING: break; /* send_fin sees eof_seen */
    case RP_CONN_OPEN:
        if (c->cbs->on_eof != NULL)
            c->cbs->on_eof(c, c->arg);
        else
            rp_conn_close(c);
        break;
    default: break;
    }
}

static void on_recv_cqe(rp_shard *sh, rp_conn *c, const struct io_uring_cqe *cqe)
{
    int res = cqe->res;
    bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    rp_rbuf *rb = NULL;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        rb = sh->slots[cqe->flags >> IORING_CQE_BUFFER_SHIFT];
        sh->bufs_out++;
    }
    if (!more) c->recv_armed = false;
    if (res > 0 && rb != NULL) {
        RP_STAT_ADD(sh, bytes_in, (uint64_t)res);
        RP_STAT_ADD(sh, recv_cqes, 1);
        if (c->state == RP_CONN_DEAD) {
            ring_add(sh, rb);
        } else if (c->recv_paused || c->stash_head != NULL) {
            stash(c, rb, (uint32_t)res);
        } else {
            rb->refs = 1; /* the lender's */
            c->cbs->on_data(c, c->arg, rb, rb->base, (size_t)res);
            lend_done(sh, rb);
        }
    } else if (rb != NULL) {
        ring_add(sh, rb);
    }
    if (res == 0 && c->state != RP_CONN_DEAD) {
        if (c->recv_paused || c->stash_head != NULL)
            c->eof_pending = true;
        else
            deliver_eof(c);
    } else if (res < 0 && c->state != RP_CONN_DEAD) {
        switch (-res) {
        case ENOBUFS:
            RP_STAT_ADD(sh, enobufs, 1);
            if (!more) starve(c);
            break;
        case ECANCELED:
        case EINTR:
        case EAGAIN: break;
        case EINVAL:
            if (sh->features & RP_FEAT_RECV_MULTISHOT) {
                sh->features &= ~(unsigned)RP_FEAT_RECV_MULTISHOT;
                rp_log_info(sh->log, MOD, "shard %u: multishot recv refused, one-shot", sh->id);
            } else {
                RP_STAT_ADD(sh, errors, 1);
                teardown(c, RINGP2P_EINVAL, false);
            }
            break;
        default:
            RP_STAT_ADD(sh, errors, 1);
            teardown(c, rp_errno_code(res), false);
            break;
        }
    }
    if (!more) {
        if (wants_recv(c)) arm_recv(c);
        conn_unref(c);
    }
}

void rp_conn_recv_pause(rp_conn *c)
{
    ON_SHARD(c->sh);
    if (c->recv_paused) return;
    c->recv_paused = true;
    unstarve(c);
    if (c->recv_armed && c->state != RP_CONN_DEAD) prep_cancel(c->sh, rp_ud(c, RP_OP_RECV));
}

void rp_conn_recv_resume(rp_conn *c)
{
    ON_SHARD(c->sh);
    if (!c->recv_paused) return;
    c->recv_paused = false;
    if (c->state == RP_CONN_DEAD) return;
    if (c->stash_head != NULL || c->eof_pending)
        defer(c); /* delivered from the loop, never inside this call */
    else if (wants_recv(c))
        arm_recv(c);
}

/* Deliveries a resume deferred, in arrival order; a pause inside on_data stops them. */
static void run_deferred(rp_shard *sh)
{
    rp_conn *list = sh->deferred;
    sh->deferred = NULL;
    while (list != NULL) {
        rp_conn *c = list;
        list = c->deferred_next;
        c->on_deferred = false;
        while (c->state != RP_CONN_DEAD && !c->recv_paused && c->stash_head != NULL) {
            rp_rbuf *rb = c->stash_head;
            c->stash_head = rb->next;
            if (c->stash_head == NULL) c->stash_tail = NULL;
            c->cbs->on_data(c, c->arg, rb, rb->base, rb->len);
            rp_rbuf_release(rb); /* the stash's reference, now the lender's */
        }
        if (c->state != RP_CONN_DEAD && !c->recv_paused && c->stash_head == NULL && c->eof_pending)
            deliver_eof(c);
        if (wants_recv(c)) arm_recv(c);
    }
}

/* ---- close -------------------------------------------------------------------------------- */

static void timer_fired(rp_timer *t, void *arg)
{
    rp_conn *c = arg;
    if (c->state == RP_CONN_CONNECTING) {
        c->dial_timed_out = true;
        prep_cancel(c->sh, rp_ud(c, RP_OP_CONNECT));
    } else if (c->state == RP_CONN_CLOSING) {
        /* The queue never drained (the peer stopped reading): give up with a reset. */
        teardown(c, RINGP2P_ETIMEDOUT, true);
    } else if (c->state == RP_CONN_FIN_SENT) {
        teardown(c, 0, false); /* everything sent; the peer just never sent its FIN */
    }
}

/*
 * The socket goes now; the object goes after its last CQE. Cancellation is
 * by user_data, not fd, so closing the fd right away cannot hit a new
 * socket that reuses the number; in-flight operations hold their own file
 * reference until they complete with -ECANCELED.
 */
static void teardown(rp_conn *c, int err, bool rst)
{
    rp_shard *sh = c->sh;
    if (c->state == RP_CONN_DEAD) return;
    bool connecting = c->state == RP_CONN_CONNECTING;
    c->state = RP_CONN_DEAD;
    c->close_err = err;
    rp_timer_cancel(&c->timer);
    unstarve(c);
    drop_queue(c);
    drop_stash(c);
    if (c->recv_armed) prep_cancel(sh, rp_ud(c, RP_OP_RECV));
    if (c->inflight != NULL) prep_cancel(sh, rp_ud(c->inflight, RP_OP_SEND));
    if (connecting) prep_cancel(sh, rp_ud(c, RP_OP_CONNECT));
    if (rst) {
        struct linger lg = { .l_onoff = 1, .l_linger = 0 };
        (void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(c->fd);
    c->fd = -1;
    if (c->refs == 0 && !c->on_zombie) {
        c->on_zombie = true;
        c->zombie_next = sh->zombies;
        sh->zombies = c;
    }
}

void rp_conn_close(rp_conn *c)
{
    ON_SHARD(c->sh);
    if (c->state != RP_CONN_OPEN) return;
    c->state = RP_CONN_CLOSING;
    /* One deadline for the whole close: flushing the queue, then the peer's FIN. */
    rp_timer_arm(&c->sh->timers, &c->timer, c->sh->now + c->sh->linger_ns);
    mark_dirty(c); /* the flush sends what is queued, then the FIN */
}

void rp_conn_abort(rp_conn *c)
{
    ON_SHARD(c->sh);
    teardown(c, RINGP2P_ECANCELED, true);
}

/* ---- flush (loop step 4) ------------------------------------------------------------------ */

void rp_conn_flush(rp_shard *sh)
{
    if (sh->br_missing != 0) {
        for (unsigned bid = 0; bid < sh->br_count && sh->br_missing != 0; bid++)
            if (sh->slots[bid] == NULL) refill_slot(sh, (uint16_t)bid);
    }
    run_deferred(sh);

    rp_conn *list = sh->dirty;
    sh->dirty = NULL;
    while (list != NULL) {
        rp_conn *c = list;
        list = c->dirty_next;
        c->on_dirty = false;
        if (c->state == RP_CONN_DEAD || c->inflight != NULL) continue;
        if (c->sq_head != NULL)
            start_send(c);
        else if (c->state == RP_CONN_CLOSING)
            send_fin(c);
    }

    /* Receives stopped by an empty ring resume once buffers have come back. */
    if (sh->starved != NULL && sh->buf_returned) {
        rp_conn *s = sh->starved;
        sh->starved = NULL;
        while (s != NULL) {
            rp_conn *c = s;
            s = c->starved_next;
            c->on_starved = false;
            if (wants_recv(c)) arm_recv(c);
        }
    }
    sh->buf_returned = false;
    ring_publish(sh);
}

/* ---- dial --------------------------------------------------------------------------------- */

static int addr_ok(const struct sockaddr *a, socklen_t len)
{
    if (a == NULL) return 0;
    if (a->sa_family == AF_INET) return len >= sizeof(struct sockaddr_in);
    if (a->sa_family == AF_INET6) return len >= sizeof(struct sockaddr_in6);
    return 0;
}

static void set_int(int fd, int level, int opt, int v)
{
    (void)setsockopt(fd, level, opt, &v, sizeof(v));
}

int rp_dial(rp_shard *sh, const struct sockaddr *addr, socklen_t addrlen, const rp_dial_opts *opts,
            rp_dial_fn done, void *arg)
{
    ON_SHARD(sh);
    if (!addr_ok(addr, addrlen) || done == NULL) return RINGP2P_EINVAL;
    if (opts != NULL && opts->local != NULL &&
        (!addr_ok(opts->local, opts->local_len) || opts->local->sa_family != addr->sa_family))
        return RINGP2P_EINVAL;
    if (sh->stop_begun || atomic_load_explicit(&sh->rt->stopping, memory_order_relaxed))
        return RINGP2P_ECLOSED;
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0) return rp_errno_code(-errno);
    set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
    if (opts != NULL && opts->local != NULL && bind(fd, opts->local, opts->local_len) != 0) {
        int e = rp_errno_code(-errno);
        close(fd);
        return e;
    }
    rp_conn *c = conn_new(sh, fd, false);
    if (c == NULL) {
        close(fd);
        return RINGP2P_ENOMEM;
    }
    c->state = RP_CONN_CONNECTING;
    c->dial_done = done;
    c->dial_arg = arg;
    socklen_t len =
        addr->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    memcpy(&c->peer, addr, len);
    c->peer_len = len;
    struct io_uring_sqe *sqe = rp_shard_sqe(sh);
    io_uring_prep_connect(sqe, fd, (struct sockaddr *)&c->peer, len);
    io_uring_sqe_set_data64(sqe, rp_ud(c, RP_OP_CONNECT));
    c->refs++;
    uint64_t tmo = opts != NULL && opts->timeout_ns ? opts->timeout_ns : RP_DIAL_TIMEOUT_NS_DEFAULT;
    rp_timer_init(&c->timer, timer_fired, c);
    rp_timer_arm(&sh->timers, &c->timer, sh->now + tmo);
    return 0;
}

static void on_connect_cqe(rp_shard *sh, rp_conn *c, const struct io_uring_cqe *cqe)
{
    int res = cqe->res;
    rp_dial_fn done = c->dial_done;
    void *arg = c->dial_arg;
    c->dial_done = NULL;
    if (c->state == RP_CONN_CONNECTING && res == 0) {
        rp_timer_cancel(&c->timer);
        rp_timer_init(&c->timer, timer_fired, c);
        c->state = RP_CONN_OPEN;
        c->delivered = true;
        RP_STAT_ADD(sh, conns_dialed, 1);
        RP_STAT_ADD(sh, conns_open, 1);
        done(sh, arg, c, 0);
        if (c->cbs == NULL) teardown(c, RINGP2P_ECANCELED, true);
    } else {
        int err;
        if (c->state == RP_CONN_DEAD)
            err = RINGP2P_ECLOSED; /* torn down by a runtime stop */
        else if (c->dial_timed_out && (res == -ECANCELED || res == -EINTR))
            err = RINGP2P_ETIMEDOUT;
        else
            err = res == 0 ? RINGP2P_EIO : rp_errno_code(res);
        RP_STAT_ADD(sh, dial_failures, 1);
        RP_STAT_ADD(sh, errors, 1);
        teardown(c, err, false);
        done(sh, arg, NULL, err);
    }
    conn_unref(c);
}

int rp_conn_adopt(rp_shard *sh, int fd, bool inbound, rp_conn **out)
{
    ON_SHARD(sh);
    if (fd < 0 || out == NULL) return RINGP2P_EINVAL;
    if (sh->stop_begun || atomic_load_explicit(&sh->rt->stopping, memory_order_relaxed))
        return RINGP2P_ECLOSED;
    rp_conn *c = conn_new(sh, fd, inbound);
    if (c == NULL) return RINGP2P_ENOMEM;
    c->zc_ok = false; /* not necessarily TCP: AF_UNIX refuses SEND_ZC */
    c->state = RP_CONN_OPEN;
    c->delivered = true;
    if (inbound)
        RP_STAT_ADD(sh, conns_accepted, 1);
    else
        RP_STAT_ADD(sh, conns_dialed, 1);
    RP_STAT_ADD(sh, conns_open, 1);
    *out = c;
    return 0;
}

/* ---- listen and accept -------------------------------------------------------------------- */

typedef struct arm_msg {
    rp_lsock *ls;
} arm_msg;

static void arm_accept(rp_lsock *ls)
{
    rp_shard *sh = ls->sh;
    struct io_uring_sqe *sqe = rp_shard_sqe(sh);
    if (sh->features & RP_FEAT_ACCEPT_MULTISHOT)
        io_uring_prep_multishot_accept(sqe, ls->fd, NULL, NULL, SOCK_CLOEXEC);
    else
        io_uring_prep_accept(sqe, ls->fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, rp_ud(ls, RP_OP_ACCEPT));
    ls->armed = true;
    ls->refs++;
}

static void lsock_close(rp_lsock *ls)
{
    if (ls->closed) return;
    ls->closed = true;
    rp_timer_cancel(&ls->retry);
    if (ls->armed) prep_cancel(ls->sh, rp_ud(ls, RP_OP_ACCEPT));
    close(ls->fd);
    ls->fd = -1;
}

static void retry_fired(rp_timer *t, void *arg)
{
    rp_lsock *ls = arg;
    if (!ls->closed && !ls->armed) arm_accept(ls);
}

void rp_lsock_arm_task(rp_shard *sh, void *arg)
{
    rp_lsock *ls = arg;
    ls->sh = sh;
    rp_timer_init(&ls->retry, retry_fired, ls);
    ls->registered = true;
    ls->next = sh->lsocks;
    sh->lsocks = ls;
    if (sh->stop_begun || atomic_load(&ls->l->closing))
        lsock_close(ls);
    else
        arm_accept(ls);
}

void rp_lsock_close_task(rp_shard *sh, void *arg)
{
    rp_lsock *ls = arg;
    if (ls->registered) lsock_close(ls); /* else the arm task, still queued, sees `closing` */
}

static void deliver_inbound(rp_shard *sh, rp_listener *l, int fd)
{
    rp_conn *c = conn_new(sh, fd, true);
    if (c == NULL) {
        close(fd);
        RP_STAT_ADD(sh, errors, 1);
        return;
    }
    c->state = RP_CONN_OPEN;
    c->delivered = true;
    RP_STAT_ADD(sh, conns_accepted, 1);
    RP_STAT_ADD(sh, conns_open, 1);
    rp_timer_init(&c->timer, timer_fired, c);
    l->on_accept(sh, l->arg, c);
    if (c->cbs == NULL) teardown(c, RINGP2P_ECANCELED, true);
}

static void handoff_run(rp_shard *sh, rp_msg *m)
{
    handoff_msg *h = (handoff_msg *)m;
    RP_STAT_ADD(sh, handoffs_in, 1);
    if (sh->stop_begun)
        close(h->fd);
    else
        deliver_inbound(sh, h->l, h->fd);
}

static void handoff_done(rp_shard *sh, rp_msg *m)
{
    sh->handoffs_pending[m->to]--;
    rp_pool_put(sh->msg_pool, m);
}

/*
 * SO_REUSEPORT spreads accepts by a hash of the 4-tuple, which balances
 * many connections well and a few badly, and knows nothing of how busy a
 * shard is. Keep the kernel's choice (no cross-shard traffic at all in the
 * common case) unless this shard already owns clearly more connections
 * than the least-loaded one; then hand the fresh fd over before any
 * io_uring operation exists on it, which costs one message. Load is the
 * count of open connections (cheap to read across shards, and what memory
 * and fairness scale with) plus handoffs this shard has sent there and not
 * yet seen acknowledged, so a burst does not all go to one target.
 */
static unsigned pick_shard(rp_shard *sh)
{
    const rp_runtime_config *cfg = &sh->rt->cfg;
    unsigned ratio = cfg->balance_ratio_pct ? cfg->balance_ratio_pct : 125;
    unsigned slack = cfg->balance_slack ? cfg->balance_slack : 8;
    if (ratio == UINT32_MAX || sh->n == 1) return sh->id;
    uint64_t mine = atomic_load_explicit(&sh->stats.conns_open, memory_order_relaxed);
    unsigned best = sh->id;
    uint64_t best_load = mine;
    for (unsigned i = 0; i < sh->n; i++) {
        if (i == sh->id) continue;
        uint64_t load =
            atomic_load_explicit(&sh->rt->shards[i]->stats.conns_open, memory_order_relaxed) +
            sh->handoffs_pending[i];
        if (load < best_load) {
            best_load = load;
            best = i;
        }
    }
    if (best == sh->id || mine < best_load + slack || mine * 100 <= best_load * ratio)
        return sh->id;
    return best;
}

static void accept_fd(rp_shard *sh, rp_listener *l, int fd)
{
    unsigned to = pick_shard(sh);
    if (to != sh->id) {
        handoff_msg *h = rp_pool_get(sh->msg_pool);
        if (h != NULL) {
            memset(h, 0, sizeof(*h));
            h->m.run = handoff_run;
            h->m.done = handoff_done;
            h->fd = fd;
            h->l = l;
            if (rp_shard_send(sh, to, &h->m) == 0) {
                sh->handoffs_pending[to]++;
                RP_STAT_ADD(sh, handoffs_out, 1);
                return;
            }
            rp_pool_put(sh->msg_pool, h);
        }
    }
    deliver_inbound(sh, l, fd);
}

static void on_accept_cqe(rp_shard *sh, rp_lsock *ls, const struct io_uring_cqe *cqe)
{
    int res = cqe->res;
    bool more = (cqe->flags & IORING_CQE_F_MORE) != 0;
    if (!more) {
        ls->armed = false;
        ls->refs--;
    }
    if (res >= 0) {
        RP_STAT_ADD(sh, accepts, 1);
        if (ls->closed || sh->stop_begun)
            close(res);
        else
            accept_fd(sh, ls->l, res);
    } else if (res == -EINVAL && (sh->features & RP_FEAT_ACCEPT_MULTISHOT) && !ls->closed) {
        sh->features &= ~(unsigned)RP_FEAT_ACCEPT_MULTISHOT;
        rp_log_info(sh->log, MOD, "shard %u: multishot accept refused, one-shot", sh->id);
    } else if (res != -ECANCELED && !ls->closed) {
        int err = rp_errno_code(res);
        RP_STAT_ADD(sh, accept_errors, 1);
        RP_STAT_ADD(sh, errors, 1);
        rp_log_debug(sh->log, MOD, "shard %u: accept: %s", sh->id, ringp2p_strerror(err));
        if (ls->l->opts.on_error != NULL) ls->l->opts.on_error(sh, ls->l->arg, err);
        /*
         * Out of fds or memory: retrying at once would spin; closing conns
         * frees fds meanwhile. The re-arm also picks up a changed
         * RLIMIT_NOFILE, which the kernel reads when an accept is armed.
         */
        if (!ls->armed && !ls->closed && !rp_timer_armed(&ls->retry))
            rp_timer_arm(&sh->timers, &ls->retry, sh->now + RP_ACCEPT_RETRY_NS);
        return;
    }
    if (!ls->armed && !ls->closed && !rp_timer_armed(&ls->retry)) arm_accept(ls);
}

int rp_listen(rp_runtime *rt, const struct sockaddr *addr, socklen_t addrlen,
              const rp_listen_opts *opts, rp_accept_fn on_accept, void *arg, rp_listener **out,
              ringp2p_errinfo *ei)
{
    if (!addr_ok(addr, addrlen) || on_accept == NULL || out == NULL)
        return rp_err(ei, RINGP2P_EINVAL, "listen: need an IPv4/IPv6 address and a callback");
    if (atomic_load(&rt->stopping)) return rp_err(ei, RINGP2P_ECLOSED, "runtime stopping");
    rp_listener *l = calloc(1, sizeof(*l));
    rp_lsock *socks = calloc(rt->n, sizeof(*socks));
    if (l == NULL || socks == NULL) {
        free(l);
        free(socks);
        return rp_err(ei, RINGP2P_ENOMEM, NULL);
    }
    l->rt = rt;
    l->n = rt->n;
    l->socks = socks;
    l->on_accept = on_accept;
    l->arg = arg;
    if (opts != NULL) l->opts = *opts;
    atomic_init(&l->closing, false);
    int backlog = l->opts.backlog > 0 ? l->opts.backlog : RP_LISTEN_BACKLOG_DEFAULT;
    socklen_t len =
        addr->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    memcpy(&l->addr, addr, len);
    l->addrlen = len;
    for (unsigned i = 0; i < rt->n; i++) socks[i].fd = -1;
    int err = 0;
    const char *what = "";
    for (unsigned i = 0; i < rt->n && err == 0; i++) {
        int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
        if (fd < 0) {
            err = rp_errno_code(-errno);
            what = "socket";
            break;
        }
        socks[i].fd = fd;
        socks[i].l = l;
        set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
        set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
        set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1); /* accepted sockets inherit it */
        if (addr->sa_family == AF_INET6)
            set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, !l->opts.dual_stack);
        /* The first bind resolves port 0; the others join its port's reuseport group. */
        if (bind(fd, (struct sockaddr *)&l->addr, l->addrlen) != 0) {
            err = rp_errno_code(-errno);
            what = "bind";
        } else if (i == 0 && getsockname(fd, (struct sockaddr *)&l->addr, &l->addrlen) != 0) {
            err = rp_errno_code(-errno);
            what = "getsockname";
        } else if (listen(fd, backlog) != 0) {
            err = rp_errno_code(-errno);
            what = "listen";
        }
    }
    if (err != 0) {
        for (unsigned i = 0; i < rt->n; i++)
            if (socks[i].fd >= 0) close(socks[i].fd);
        free(socks);
        free(l);
        return rp_err(ei, err, "listen: %s failed", what);
    }
    pthread_mutex_lock(&rt->mu);
    l->next = rt->listeners;
    rt->listeners = l;
    pthread_mutex_unlock(&rt->mu);
    for (unsigned i = 0; i < rt->n; i++) {
        int r;
        while ((r = rp_runtime_post(rt, i, rp_lsock_arm_task, &socks[i])) == RINGP2P_EAGAIN)
            sched_yield();
        /* ECLOSED: a stop began; its sockets are closed when the runtime is freed. */
    }
    *out = l;
    return 0;
}

void rp_listener_addr(const rp_listener *l, struct sockaddr_storage *ss, socklen_t *len)
{
    memcpy(ss, &l->addr, l->addrlen);
    *len = l->addrlen;
}

void rp_listener_close(rp_listener *l)
{
    if (atomic_exchange(&l->closing, true)) return;
    for (unsigned i = 0; i < l->n; i++) {
        while (rp_runtime_post(l->rt, i, rp_lsock_close_task, &l->socks[i]) == RINGP2P_EAGAIN)
            sched_yield();
    }
}

/* ---- dispatch and stop -------------------------------------------------------------------- */

void rp_conn_dispatch(rp_shard *sh, struct io_uring_cqe *cqe)
{
    void *obj = rp_ud_obj(cqe->user_data);
    switch (rp_ud_op(cqe->user_data)) {
    case RP_OP_RECV: on_recv_cqe(sh, obj, cqe); break;
    case RP_OP_SEND: on_send_cqe(sh, obj, cqe); break;
    case RP_OP_CONNECT: on_connect_cqe(sh, obj, cqe); break;
    case RP_OP_ACCEPT: on_accept_cqe(sh, obj, cqe); break;
    default: break;
    }
}

void rp_conn_begin_stop(rp_shard *sh)
{
    for (rp_lsock *ls = sh->lsocks; ls != NULL; ls = ls->next) lsock_close(ls);
    for (rp_conn *c = sh->conns; c != NULL; c = c->next) {
        if (c->state == RP_CONN_CONNECTING)
            teardown(c, RINGP2P_ECLOSED, false);
        else
            rp_conn_close(c);
    }
}

void rp_conn_stop_expired(rp_shard *sh)
{
    for (rp_conn *c = sh->conns; c != NULL; c = c->next)
        if (c->state != RP_CONN_DEAD) teardown(c, RINGP2P_ECANCELED, true);
}

bool rp_conn_quiesced(const rp_shard *sh)
{
    if (sh->nconns != 0) return false;
    for (const rp_lsock *ls = sh->lsocks; ls != NULL; ls = ls->next)
        if (ls->refs != 0 || !ls->closed) return false;
    return true;
}
