#include "runtime/runtime.h"

#include <assert.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "runtime/shard.h"
#include "runtime/uring_compat.h"

#define MOD "runtime"

/* Messages popped from one ring per pop_n call, and the cap per source per turn (fairness). */
#define DRAIN_BATCH        64
#define DRAIN_MAX_PER_RING 1024
/* Messages pushed per push_n call when flushing an outbox. */
#define FLUSH_BATCH 64

enum { MSG_OUT = 1, MSG_BACK = 2 };

/* A post from a shard: from the sender's msg pool, back to it when done. */
typedef struct post_msg {
    rp_msg m;
    rp_task_fn fn;
    void *arg;
} post_msg;

_Static_assert(sizeof(post_msg) <= RP_MSG_OBJ_SIZE, "post_msg fits a msg-pool object");

/* A post from a thread that is not a shard: malloc'd, freed by the target. */
typedef struct ext_msg {
    rp_msg m;
    rp_task_fn fn;
    void *arg;
} ext_msg;

static uint64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int rp_errno_code(int neg_errno)
{
    switch (-neg_errno) {
    case 0: return 0;
    case ECONNREFUSED: return RINGP2P_ECONNREFUSED;
    case ECONNRESET:
    case EPIPE:
    case ECONNABORTED: return RINGP2P_ECONNRESET;
    case ETIMEDOUT:
    case ETIME: return RINGP2P_ETIMEDOUT;
    case EMFILE:
    case ENFILE: return RINGP2P_EMFILE;
    case EADDRINUSE:
    case EADDRNOTAVAIL: return RINGP2P_EADDRINUSE;
    case ENETUNREACH:
    case EHOSTUNREACH:
    case ENETDOWN:
    case EHOSTDOWN: return RINGP2P_EUNREACHABLE;
    case ENOMEM:
    case ENOBUFS: return RINGP2P_ENOMEM;
    case EACCES:
    case EPERM: return RINGP2P_EPERM;
    case EINVAL:
    case EAFNOSUPPORT: return RINGP2P_EINVAL;
    case ECANCELED: return RINGP2P_ECANCELED;
    case EAGAIN: return RINGP2P_EAGAIN;
    default: return RINGP2P_EIO;
    }
}

void rp_runtime_config_default(rp_runtime_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->pin = true;
}

/* ---- accessors ---------------------------------------------------------------------------- */

unsigned rp_runtime_nshards(const rp_runtime *rt)
{
    return rt->n;
}

rp_shard *rp_runtime_shard(rp_runtime *rt, unsigned i)
{
    return i < rt->n ? rt->shards[i] : NULL;
}

unsigned rp_runtime_features(const rp_runtime *rt)
{
    return rt->features;
}

unsigned rp_shard_id(const rp_shard *sh)
{
    return sh->id;
}

rp_runtime *rp_shard_runtime(rp_shard *sh)
{
    return sh->rt;
}

bool rp_shard_is_current(const rp_shard *sh)
{
    return pthread_equal(sh->thread, pthread_self()) != 0;
}

uint64_t rp_shard_now(const rp_shard *sh)
{
    return sh->now;
}

rp_timer_wheel *rp_shard_timers(rp_shard *sh)
{
    return &sh->timers;
}

const rp_logger *rp_shard_log(const rp_shard *sh)
{
    return sh->log;
}

void rp_runtime_shard_stats(const rp_runtime *rt, unsigned i, rp_shard_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (i >= rt->n) return;
    const rp_stats_atomic *s = &rt->shards[i]->stats;
#define LOAD(f) out->f = atomic_load_explicit(&s->f, memory_order_relaxed)
    LOAD(conns_open);
    LOAD(conns_accepted);
    LOAD(conns_dialed);
    LOAD(conns_closed);
    LOAD(accepts);
    LOAD(handoffs_out);
    LOAD(handoffs_in);
    LOAD(bytes_in);
    LOAD(bytes_out);
    LOAD(recv_cqes);
    LOAD(sends);
    LOAD(sends_zc);
    LOAD(zc_copied);
    LOAD(short_sends);
    LOAD(enobufs);
    LOAD(errors);
    LOAD(accept_errors);
    LOAD(dial_failures);
    LOAD(msgs_in);
    LOAD(msgs_out);
    LOAD(wakeups_sent);
    LOAD(loops);
    LOAD(sleeps);
    LOAD(leaked_buffers);
#undef LOAD
}

/* ---- SQEs and wakeups --------------------------------------------------------------------- */

struct io_uring_sqe *rp_shard_sqe(rp_shard *sh)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&sh->ring);
    while (sqe == NULL) {
        /* SQ full: hand what is there to the kernel (completions stay queued until we reap). */
        int r = io_uring_submit(&sh->ring);
        if (r < 0 && r != -EAGAIN && r != -EBUSY && r != -EINTR) {
            rp_log_error(sh->log, MOD, "shard %u: io_uring_submit: %s", sh->id, strerror(-r));
            abort();
        }
        sqe = io_uring_get_sqe(&sh->ring);
    }
    return sqe;
}

static void efd_poke(int efd)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is already non-zero: the shard will wake anyway. */
    ssize_t r = write(efd, &one, sizeof(one));
    (void)r;
}

static void arm_eventfd(rp_shard *sh)
{
    if (sh->efd_armed) return;
    struct io_uring_sqe *sqe = rp_shard_sqe(sh);
    io_uring_prep_read(sqe, sh->efd, &sh->efd_val, sizeof(sh->efd_val), 0);
    io_uring_sqe_set_data64(sqe, rp_ud(sh, RP_OP_EVENTFD));
    sh->efd_armed = true;
}

/*
 * The target sleeps (it set `sleeping` and found its inboxes empty) or is
 * about to: whoever clears the flag first wakes it, once. The fence orders
 * our ring push before the load, mirroring the target's store-then-check.
 */
static void wake(rp_shard *from, rp_shard *to)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&to->sleeping, memory_order_relaxed) == 0) return;
    if (atomic_exchange(&to->sleeping, 0) == 0) return;
    if (from != NULL && (from->features & RP_FEAT_MSG_RING)) {
        struct io_uring_sqe *sqe = rp_shard_sqe(from);
        io_uring_prep_msg_ring(sqe, to->ring_fd, 0, rp_ud(NULL, RP_OP_WAKE), 0);
        io_uring_sqe_set_data64(sqe, rp_ud(to, RP_OP_WAKE_SENT));
        if (from->features & RP_FEAT_CQE_SKIP) sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    } else {
        efd_poke(to->efd);
    }
    if (from != NULL) RP_STAT_ADD(from, wakeups_sent, 1);
}

/* ---- messages ----------------------------------------------------------------------------- */

static void msgq_push(rp_msgq *q, rp_msg *m)
{
    m->next = NULL;
    if (q->tail != NULL)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
}

/* A shard that had declared itself finished has work again (see check_done). */
static void undeclare(rp_shard *sh)
{
    if (!sh->declared_done) return;
    sh->declared_done = false;
    atomic_fetch_sub(&sh->rt->ndone, 1);
}

int rp_shard_send(rp_shard *self, unsigned to, rp_msg *m)
{
    assert(rp_shard_is_current(self) && "rp_shard_send off its shard");
    if (to >= self->n || m == NULL || m->run == NULL) return RINGP2P_EINVAL;
    m->from = (uint16_t)self->id;
    m->to = (uint16_t)to;
    m->state = MSG_OUT;
    if (to == self->id) {
        msgq_push(&self->local, m);
        return 0;
    }
    undeclare(self);
    self->pending_return++;
    msgq_push(&self->outbox[to], m);
    self->outbox_nonempty = true;
    RP_STAT_ADD(self, msgs_out, 1);
    return 0;
}

static void post_run(rp_shard *sh, rp_msg *m)
{
    post_msg *p = (post_msg *)m;
    p->fn(sh, p->arg);
}

static void post_done(rp_shard *sh, rp_msg *m)
{
    rp_pool_put(sh->msg_pool, m);
}

int rp_shard_post(rp_shard *self, unsigned to, rp_task_fn fn, void *arg)
{
    assert(rp_shard_is_current(self) && "rp_shard_post off its shard");
    if (fn == NULL || to >= self->n) return RINGP2P_EINVAL;
    post_msg *p = rp_pool_get(self->msg_pool);
    if (p == NULL) return RINGP2P_ENOMEM;
    memset(p, 0, sizeof(*p));
    p->m.run = post_run;
    p->m.done = post_done;
    p->fn = fn;
    p->arg = arg;
    int r = rp_shard_send(self, to, &p->m);
    if (r != 0) rp_pool_put(self->msg_pool, p);
    return r;
}

static void ext_run(rp_shard *sh, rp_msg *m)
{
    ext_msg *e = (ext_msg *)m;
    rp_task_fn fn = e->fn;
    void *arg = e->arg;
    free(e);
    fn(sh, arg);
}

int rp_runtime_post(rp_runtime *rt, unsigned to, rp_task_fn fn, void *arg)
{
    if (fn == NULL || to >= rt->n) return RINGP2P_EINVAL;
    /* The active count lets a stopping shard know no push is half-done (see check_done). */
    atomic_fetch_add(&rt->ext_active, 1);
    int r = 0;
    if (atomic_load(&rt->stopping)) {
        r = RINGP2P_ECLOSED;
        goto out;
    }
    ext_msg *e = malloc(sizeof(*e));
    if (e == NULL) {
        r = RINGP2P_ENOMEM;
        goto out;
    }
    memset(e, 0, sizeof(*e));
    e->m.run = ext_run;
    e->fn = fn;
    e->arg = arg;
    if (rp_mpsc_push(rt->ext[to], &e->m) != 0) {
        free(e);
        r = RINGP2P_EAGAIN;
        goto out;
    }
    wake(NULL, rt->shards[to]);
out:
    atomic_fetch_sub(&rt->ext_active, 1);
    return r;
}

void rp_turn_task_init(rp_turn_task *t, rp_task_fn fn, void *arg)
{
    t->fn = fn;
    t->arg = arg;
    t->next = NULL;
    t->queued = false;
}

void rp_shard_at_turn_end(rp_shard *sh, rp_turn_task *t)
{
    assert(rp_shard_is_current(sh) && "rp_shard_at_turn_end off its shard");
    if (t->queued) return;
    t->queued = true;
    t->next = sh->turn_tasks;
    sh->turn_tasks = t;
}

/*
 * The end-of-turn tasks, and those they queue, for a bounded number of passes
 * (a task that always queues itself again must not hold the turn; what is
 * left runs next turn, which does not sleep first).
 */
static void run_turn_tasks(rp_shard *sh)
{
    for (int pass = 0; pass < 8 && sh->turn_tasks != NULL; pass++) {
        rp_turn_task *t = sh->turn_tasks;
        sh->turn_tasks = NULL;
        while (t != NULL) {
            rp_turn_task *next = t->next;
            t->next = NULL;
            t->queued = false;
            t->fn(sh, t->arg);
            t = next;
        }
    }
}

static size_t drain_local(rp_shard *sh)
{
    /* Only what was queued before this turn: messages sent by these runs wait for the next. */
    rp_msg *m = sh->local.head;
    sh->local.head = sh->local.tail = NULL;
    size_t n = 0;
    while (m != NULL) {
        rp_msg *next = m->next;
        m->run(sh, m);
        if (m->done != NULL) m->done(sh, m);
        m = next;
        n++;
    }
    return n;
}

static void handle_ring_msg(rp_shard *sh, rp_msg *m)
{
    if (m->state == MSG_OUT) {
        RP_STAT_ADD(sh, msgs_in, 1);
        m->run(sh, m);
        m->state = MSG_BACK;
        msgq_push(&sh->outbox[m->from], m);
        sh->outbox_nonempty = true;
    } else {
        sh->pending_return--;
        if (m->done != NULL) m->done(sh, m);
    }
}

static size_t drain_inboxes(rp_shard *sh)
{
    rp_runtime *rt = sh->rt;
    size_t total = drain_local(sh);
    void *batch[DRAIN_BATCH];
    for (unsigned from = 0; from < sh->n; from++) {
        if (from == sh->id) continue;
        rp_spsc *r = rt->rings[from * sh->n + sh->id];
        size_t got, done = 0;
        while (done < DRAIN_MAX_PER_RING && (got = rp_spsc_pop_n(r, batch, DRAIN_BATCH)) != 0) {
            for (size_t i = 0; i < got; i++) handle_ring_msg(sh, batch[i]);
            done += got;
        }
        total += done;
    }
    if (sh->ext_held != NULL) {
        rp_msg *m = sh->ext_held;
        sh->ext_held = NULL;
        RP_STAT_ADD(sh, msgs_in, 1);
        m->run(sh, m);
        total++;
    }
    size_t got;
    while ((got = rp_mpsc_pop_n(rt->ext[sh->id], batch, DRAIN_BATCH)) != 0) {
        for (size_t i = 0; i < got; i++) {
            RP_STAT_ADD(sh, msgs_in, 1);
            ((rp_msg *)batch[i])->run(sh, batch[i]);
        }
        total += got;
        if (got < DRAIN_BATCH) break;
    }
    return total;
}

/* Pushes each outbox into its ring in batches; what does not fit waits for the next turn. */
static void flush_outboxes(rp_shard *sh)
{
    if (!sh->outbox_nonempty) return;
    rp_runtime *rt = sh->rt;
    bool left = false;
    void *batch[FLUSH_BATCH];
    for (unsigned to = 0; to < sh->n; to++) {
        rp_msgq *q = &sh->outbox[to];
        if (q->head == NULL) continue;
        rp_spsc *r = rt->rings[sh->id * sh->n + to];
        bool pushed = false;
        while (q->head != NULL) {
            size_t k = 0;
            rp_msg *m = q->head;
            while (m != NULL && k < FLUSH_BATCH) {
                batch[k++] = m;
                m = m->next;
            }
            size_t put = rp_spsc_push_n(r, batch, k);
            if (put == 0) break;
            pushed = true;
            if (put == k) {
                q->head = m;
            } else {
                q->head = batch[put];
            }
            if (q->head == NULL) q->tail = NULL;
            if (put < k) break;
        }
        if (q->head != NULL) left = true;
        if (pushed) wake(sh, rt->shards[to]);
    }
    sh->outbox_nonempty = left;
}

/* Whether any inbox holds something; may move one external message into ext_held. */
static bool inbox_pending(rp_shard *sh)
{
    rp_runtime *rt = sh->rt;
    if (sh->local.head != NULL || sh->ext_held != NULL) return true;
    for (unsigned from = 0; from < sh->n; from++) {
        if (from == sh->id) continue;
        if (rp_spsc_size(rt->rings[from * sh->n + sh->id]) != 0) return true;
    }
    void *m;
    if (rp_mpsc_pop(rt->ext[sh->id], &m) == 0) {
        sh->ext_held = m;
        return true;
    }
    return false;
}

/* ---- completions -------------------------------------------------------------------------- */

static size_t reap(rp_shard *sh)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&sh->ring, head, cqe)
    {
        n++;
        uint64_t ud = cqe->user_data;
        if (ud == LIBURING_UDATA_TIMEOUT) continue; /* liburing's wait timeout on old kernels */
        switch (rp_ud_op(ud)) {
        case RP_OP_IGNORE:
        case RP_OP_WAKE: break;
        case RP_OP_EVENTFD: sh->efd_armed = false; break;
        case RP_OP_WAKE_SENT:
            if (cqe->res < 0) {
                /* The kernel would not post to that ring: wake it the other way from now on. */
                rp_shard *to = rp_ud_obj(ud);
                sh->features &= ~(unsigned)RP_FEAT_MSG_RING;
                rp_log_warn(sh->log, MOD, "shard %u: MSG_RING failed (%s), using eventfd", sh->id,
                            strerror(-cqe->res));
                efd_poke(to->efd);
            }
            break;
        case RP_OP_SHUTDOWN: break;
        default: rp_conn_dispatch(sh, cqe); break;
        }
    }
    /* One CQ head update for the whole batch. */
    if (n != 0) io_uring_cq_advance(&sh->ring, n);
    return n;
}

/* ---- shutdown ----------------------------------------------------------------------------- */

static void stop_timer_fired(rp_timer *t, void *arg)
{
    rp_conn_stop_expired(arg);
}

/*
 * A stopping shard declares itself done when nothing of its own is left: no
 * connections, listeners, timers or messages awaiting their return, and no
 * external post half-pushed. Only messages can give a done shard new work,
 * and a message's sender is not done until the message comes back, so when
 * every shard has declared (ndone == n) nothing is left anywhere and all may
 * exit. A done shard that gets work again undeclares before it pushes any
 * return, so no sender can see ndone == n too early.
 */
static void check_done(rp_shard *sh)
{
    rp_runtime *rt = sh->rt;
    if (!sh->stop_begun) return;
    bool quiet = rp_conn_quiesced(sh) && sh->pending_return == 0 && sh->local.head == NULL &&
                 sh->turn_tasks == NULL && sh->ext_held == NULL &&
                 rp_timer_wheel_count(&sh->timers) == 0;
    if (quiet) {
        /* No poster between its stopping check and its push, then nothing left in the MPSC. */
        if (atomic_load(&rt->ext_active) != 0 || inbox_pending(sh)) quiet = false;
    }
    if (!quiet) {
        undeclare(sh);
        return;
    }
    if (sh->declared_done) return;
    sh->declared_done = true;
    if (atomic_fetch_add(&rt->ndone, 1) + 1 == sh->n) {
        /* Last one: the others may be asleep. Eventfds stay open until rp_runtime_free. */
        for (unsigned i = 0; i < sh->n; i++)
            if (i != sh->id) efd_poke(rt->shards[i]->efd);
    }
}

static void begin_stop(rp_shard *sh)
{
    sh->stop_begun = true;
    rp_conn_begin_stop(sh);
    uint64_t ns =
        sh->rt->cfg.shutdown_ns ? sh->rt->cfg.shutdown_ns : RP_RUNTIME_SHUTDOWN_NS_DEFAULT;
    rp_timer_init(&sh->stop_timer, stop_timer_fired, sh);
    if (!rp_conn_quiesced(sh)) rp_timer_arm(&sh->timers, &sh->stop_timer, sh->now + ns);
}

/* ---- the loop ----------------------------------------------------------------------------- */

static void submit_and_maybe_sleep(rp_shard *sh, bool busy)
{
    arm_eventfd(sh);
    if (busy) {
        /* Non-blocking enter: submit, and run deferred task work so its CQEs become visible. */
        io_uring_submit_and_get_events(&sh->ring);
        return;
    }
    atomic_store(&sh->sleeping, 1);
    atomic_thread_fence(memory_order_seq_cst);
    bool exit_ready = sh->declared_done && atomic_load(&sh->rt->ndone) == sh->n;
    if (inbox_pending(sh) || exit_ready ||
        (atomic_load_explicit(&sh->rt->stopping, memory_order_relaxed) && !sh->stop_begun)) {
        atomic_store(&sh->sleeping, 0);
        io_uring_submit_and_get_events(&sh->ring);
        return;
    }
    uint64_t tmo = rp_timer_wheel_timeout_ns(&sh->timers, clock_ns());
    struct io_uring_cqe *cqe;
    RP_STAT_ADD(sh, sleeps, 1);
    if (tmo == UINT64_MAX) {
        io_uring_submit_and_wait_timeout(&sh->ring, &cqe, 1, NULL, NULL);
    } else {
        struct __kernel_timespec ts = { .tv_sec = (long long)(tmo / 1000000000ull),
                                        .tv_nsec = (long long)(tmo % 1000000000ull) };
        io_uring_submit_and_wait_timeout(&sh->ring, &cqe, 1, &ts, NULL);
    }
    atomic_store(&sh->sleeping, 0);
}

static void shard_loop(rp_shard *sh)
{
    rp_runtime *rt = sh->rt;
    for (;;) {
        /*
         * Poll order (Seastar's do_run, reduced to what a shard has):
         *  1. drain inboxes: other shards' messages and posts first, so the
         *     work they start is submitted in this same turn;
         *  2. reap completions as one batch, acknowledged with one CQ
         *     advance; their callbacks run the protocol code, which queues
         *     output and messages;
         *  3. run what they woke: expired timers;
         *  4. run the end-of-turn tasks (rp_shard_at_turn_end: a muxer
         *     sealing what its streams wrote), then flush output:
         *     deliveries deferred by a resume, one gathered
         *     send per connection with queued bytes, receives re-armed where
         *     buffers came back; then on_close for connections whose last
         *     completion came in; then outboxes pushed to the rings, with
         *     wakeups (after the done check, see check_done);
         *  5. submit, and when the turn found nothing to do, sleep in the
         *     same syscall until a completion, a wakeup or the next timer.
         */
        sh->now = clock_ns();
        RP_STAT_ADD(sh, loops, 1);
        if (!sh->stop_begun && atomic_load_explicit(&rt->stopping, memory_order_acquire))
            begin_stop(sh);

        size_t work = drain_inboxes(sh);                      /* 1 */
        work += reap(sh);                                     /* 2 */
        work += rp_timer_wheel_advance(&sh->timers, sh->now); /* 3 */
        run_turn_tasks(sh);                                   /* 4 */
        rp_conn_flush(sh);
        rp_conn_finalize_zombies(sh); /* on_close, once no list or CQE refers to the conn */
        if (sh->stop_begun && rp_conn_quiesced(sh)) rp_timer_cancel(&sh->stop_timer);
        check_done(sh); /* before the outboxes: see check_done */
        flush_outboxes(sh);
        if (sh->declared_done && !sh->outbox_nonempty && atomic_load(&rt->ndone) == sh->n) break;

        bool busy = work != 0 || sh->local.head != NULL || sh->turn_tasks != NULL ||
                    sh->zombies != NULL || sh->deferred != NULL || sh->outbox_nonempty ||
                    sh->dirty != NULL;
        submit_and_maybe_sleep(sh, busy); /* 5 */
    }
}

/* ---- start-up and teardown ---------------------------------------------------------------- */

static int setup_ring(rp_shard *sh, unsigned entries, unsigned off, char *msg, size_t msgcap)
{
    /* Most capable first; each step drops what an older kernel refuses with EINVAL. */
    static const unsigned try_flags[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int r = -EINVAL;
    for (size_t i = 0; i < sizeof(try_flags) / sizeof(try_flags[0]); i++) {
        unsigned f = try_flags[i];
        if ((off & RP_FEAT_SINGLE_ISSUER) && (f & IORING_SETUP_SINGLE_ISSUER)) continue;
        if ((off & RP_FEAT_DEFER_TASKRUN) && (f & IORING_SETUP_DEFER_TASKRUN)) continue;
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = f | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_SUBMIT_ALL;
        p.cq_entries = entries * 8;
        r = io_uring_queue_init_params(entries, &sh->ring, &p);
        if (r == -EINVAL) {
            /* SUBMIT_ALL is 5.18; retry this step without it before giving the step up. */
            memset(&p, 0, sizeof(p));
            p.flags = f | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
            p.cq_entries = entries * 8;
            r = io_uring_queue_init_params(entries, &sh->ring, &p);
        }
        if (r == 0) {
            if (f & IORING_SETUP_SINGLE_ISSUER) sh->features |= RP_FEAT_SINGLE_ISSUER;
            if (f & IORING_SETUP_DEFER_TASKRUN) sh->features |= RP_FEAT_DEFER_TASKRUN;
            if (p.features & IORING_FEAT_CQE_SKIP) sh->features |= RP_FEAT_CQE_SKIP;
            break;
        }
        if (r != -EINVAL) break;
    }
    if (r != 0) {
        snprintf(msg, msgcap, "io_uring_queue_init: %s", strerror(-r));
        return r == -ENOSYS || r == -EPERM ? RINGP2P_EUNSUPPORTED : rp_errno_code(r);
    }
    sh->ring_fd = sh->ring.ring_fd;
    if (!(off & RP_FEAT_REG_RING_FD) && io_uring_register_ring_fd(&sh->ring) == 1)
        sh->features |= RP_FEAT_REG_RING_FD;

    struct io_uring_probe *probe = io_uring_get_probe_ring(&sh->ring);
    if (probe != NULL) {
        if (io_uring_opcode_supported(probe, IORING_OP_MSG_RING)) sh->features |= RP_FEAT_MSG_RING;
        /*
         * Multishot recv came with SEND_ZC in 6.0, multishot accept with
         * IORING_OP_SOCKET in 5.19. Flags are not in the probe, so opcodes of
         * the same release stand in for them; an EINVAL at run time still
         * turns the feature off.
         */
        if (io_uring_opcode_supported(probe, IORING_OP_SEND_ZC))
            sh->features |= RP_FEAT_SEND_ZC | RP_FEAT_RECV_MULTISHOT;
        if (io_uring_opcode_supported(probe, IORING_OP_SOCKET))
            sh->features |= RP_FEAT_ACCEPT_MULTISHOT;
        io_uring_free_probe(probe);
    }
    sh->features &= ~off;
    return 0;
}

static void report_ready(rp_shard *sh, int err, const char *msg)
{
    rp_runtime *rt = sh->rt;
    pthread_mutex_lock(&rt->mu);
    if (err != 0 && rt->start_err == 0) {
        rt->start_err = err;
        snprintf(rt->start_msg, sizeof(rt->start_msg), "shard %u: %.200s", sh->id, msg);
    }
    rt->nready++;
    pthread_cond_broadcast(&rt->cv);
    bool go;
    while (!(go = rt->go) && rt->start_err == 0) pthread_cond_wait(&rt->cv, &rt->mu);
    pthread_mutex_unlock(&rt->mu);
    (void)go;
}

static void pin_to_cpu(rp_shard *sh)
{
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) return;
    int count = CPU_COUNT(&allowed);
    if (count <= 0) return;
    int want = (int)(sh->id % (unsigned)count), seen = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &allowed)) continue;
        if (seen++ == want) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            if (pthread_setaffinity_np(pthread_self(), sizeof(one), &one) != 0)
                rp_log_warn(sh->log, MOD, "shard %u: cannot pin to CPU %d", sh->id, cpu);
            return;
        }
    }
}

static void *shard_main(void *p)
{
    rp_shard *sh = p;
    rp_runtime *rt = sh->rt;
    char msg[RINGP2P_ERRINFO_MSG_MAX] = "";
    sh->thread = pthread_self();
    if (rt->cfg.pin) pin_to_cpu(sh);
    unsigned entries =
        rt->cfg.ring_entries ? rt->cfg.ring_entries : RP_RUNTIME_RING_ENTRIES_DEFAULT;
    sh->now = clock_ns();
    rp_timer_wheel_init(&sh->timers, sh->now);
    int err = setup_ring(sh, entries, rt->cfg.features_off, msg, sizeof(msg));
    bool ring_up = err == 0;
    if (err == 0) {
        err = rp_conn_shard_init(sh);
        if (err == RINGP2P_EUNSUPPORTED)
            snprintf(msg, sizeof(msg), "the kernel lacks provided buffer rings (5.19+)");
        else if (err != 0)
            snprintf(msg, sizeof(msg), "buffers: %s", ringp2p_strerror(err));
    }
    report_ready(sh, err, msg);
    pthread_mutex_lock(&rt->mu);
    bool run = rt->start_err == 0;
    pthread_mutex_unlock(&rt->mu);
    if (run) shard_loop(sh);
    if (ring_up) {
        if (err == 0) {
            /* The eventfd read points into the shard: take it back before the ring goes. */
            if (sh->efd_armed) {
                struct io_uring_sqe *sqe = rp_shard_sqe(sh);
                io_uring_prep_cancel64(sqe, rp_ud(sh, RP_OP_EVENTFD), 0);
                io_uring_sqe_set_data64(sqe, rp_ud(sh, RP_OP_SHUTDOWN));
                while (sh->efd_armed) {
                    struct io_uring_cqe *cqe;
                    if (io_uring_submit_and_wait(&sh->ring, 1) < 0) break;
                    (void)cqe;
                    reap(sh);
                }
            }
            rp_conn_shard_fini(sh);
        }
        io_uring_queue_exit(&sh->ring);
    }
    return NULL;
}

static void free_shell(rp_runtime *rt)
{
    if (rt->rings != NULL)
        for (unsigned i = 0; i < rt->n * rt->n; i++) rp_spsc_free(rt->rings[i]);
    if (rt->ext != NULL)
        for (unsigned i = 0; i < rt->n; i++) {
            if (rt->ext[i] == NULL) continue;
            void *m;
            while (rp_mpsc_pop(rt->ext[i], &m) == 0) free(m);
            rp_mpsc_free(rt->ext[i]);
        }
    if (rt->shards != NULL)
        for (unsigned i = 0; i < rt->n; i++) {
            rp_shard *sh = rt->shards[i];
            if (sh == NULL) continue;
            if (sh->efd >= 0) close(sh->efd);
            free(sh->outbox);
            free(sh->handoffs_pending);
            free(sh);
        }
    while (rt->listeners != NULL) {
        rp_listener *l = rt->listeners;
        rt->listeners = l->next;
        for (unsigned i = 0; i < l->n; i++)
            if (l->socks[i].fd >= 0) close(l->socks[i].fd);
        free(l->socks);
        free(l);
    }
    free(rt->rings);
    free(rt->ext);
    free(rt->shards);
    free(rt->threads);
    pthread_mutex_destroy(&rt->mu);
    pthread_cond_destroy(&rt->cv);
    free(rt);
}

static unsigned cpus_allowed(void)
{
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) == 0 && CPU_COUNT(&allowed) > 0)
        return (unsigned)CPU_COUNT(&allowed);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

int rp_runtime_new(const rp_runtime_config *cfg_in, rp_runtime **out, ringp2p_errinfo *ei)
{
    rp_runtime_config cfg;
    if (cfg_in != NULL)
        cfg = *cfg_in;
    else
        rp_runtime_config_default(&cfg);
    if (cfg.nshards == 0) cfg.nshards = cpus_allowed();
    if (cfg.nshards > RP_RUNTIME_SHARDS_MAX)
        return rp_err(ei, RINGP2P_EINVAL, "%u shards (at most %d)", cfg.nshards,
                      RP_RUNTIME_SHARDS_MAX);
    if (cfg.recv_buf_count != 0 &&
        ((cfg.recv_buf_count & (cfg.recv_buf_count - 1)) != 0 || cfg.recv_buf_count > 32768))
        return rp_err(ei, RINGP2P_EINVAL, "recv_buf_count %u: a power of two up to 32768",
                      cfg.recv_buf_count);
    if (cfg.recv_buf_size != 0 && (cfg.recv_buf_size < 64 || cfg.recv_buf_size > RP_POOL_BUF_MAX))
        return rp_err(ei, RINGP2P_EINVAL, "recv_buf_size %u out of range", cfg.recv_buf_size);
    if (cfg.send_chunk_size != 0 &&
        (cfg.send_chunk_size < 64 || cfg.send_chunk_size > RP_POOL_BUF_MAX))
        return rp_err(ei, RINGP2P_EINVAL, "send_chunk_size %u out of range", cfg.send_chunk_size);
    size_t hi = cfg.high_watermark ? cfg.high_watermark : RP_RUNTIME_HIGH_WATERMARK_DEFAULT;
    size_t lo = cfg.low_watermark ? cfg.low_watermark : RP_RUNTIME_LOW_WATERMARK_DEFAULT;
    if (cfg.low_watermark != 0 && lo >= hi)
        return rp_err(ei, RINGP2P_EINVAL, "low watermark %zu not below high %zu", lo, hi);
    if (cfg.log == NULL) cfg.log = &rp_logger_off;

    rp_runtime *rt = calloc(1, sizeof(*rt));
    if (rt == NULL) return rp_err(ei, RINGP2P_ENOMEM, NULL);
    rt->cfg = cfg;
    rt->n = cfg.nshards;
    pthread_mutex_init(&rt->mu, NULL);
    pthread_cond_init(&rt->cv, NULL);
    atomic_init(&rt->stopping, 0);
    atomic_init(&rt->ext_active, 0);
    atomic_init(&rt->ndone, 0);
    unsigned n = rt->n;
    size_t cap = cfg.inbox_capacity ? cfg.inbox_capacity : RP_RUNTIME_INBOX_DEFAULT;
    rt->rings = calloc((size_t)n * n, sizeof(*rt->rings));
    rt->ext = calloc(n, sizeof(*rt->ext));
    rt->shards = calloc(n, sizeof(*rt->shards));
    rt->threads = calloc(n, sizeof(*rt->threads));
    int err = 0;
    if (rt->rings == NULL || rt->ext == NULL || rt->shards == NULL || rt->threads == NULL)
        err = RINGP2P_ENOMEM;
    for (unsigned i = 0; err == 0 && i < n * n; i++)
        if (i / n != i % n) err = rp_spsc_new(cap, &rt->rings[i]);
    for (unsigned i = 0; err == 0 && i < n; i++) err = rp_mpsc_new(cap, &rt->ext[i]);
    for (unsigned i = 0; err == 0 && i < n; i++) {
        rp_shard *sh =
            aligned_alloc(RP_FALSE_SHARING_SIZE, (sizeof(rp_shard) + RP_FALSE_SHARING_SIZE - 1) &
                                                     ~(size_t)(RP_FALSE_SHARING_SIZE - 1));
        if (sh == NULL) {
            err = RINGP2P_ENOMEM;
            break;
        }
        memset(sh, 0, sizeof(*sh));
        rt->shards[i] = sh;
        sh->rt = rt;
        sh->id = i;
        sh->n = n;
        sh->log = cfg.log;
        sh->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        atomic_init(&sh->sleeping, 0);
        sh->outbox = calloc(n, sizeof(*sh->outbox));
        sh->handoffs_pending = calloc(n, sizeof(*sh->handoffs_pending));
        if (sh->efd < 0) err = rp_errno_code(-errno);
        if (sh->outbox == NULL || sh->handoffs_pending == NULL) err = RINGP2P_ENOMEM;
    }
    if (err != 0) {
        free_shell(rt);
        return rp_err(ei, err, "runtime set-up");
    }

    unsigned started = 0;
    for (; started < n; started++) {
        if (pthread_create(&rt->threads[started], NULL, shard_main, rt->shards[started]) != 0)
            break;
    }
    pthread_mutex_lock(&rt->mu);
    if (started < n && rt->start_err == 0) {
        rt->start_err = RINGP2P_ENOMEM;
        snprintf(rt->start_msg, sizeof(rt->start_msg), "cannot create shard thread %u", started);
    }
    while (rt->nready < started && rt->start_err == 0) pthread_cond_wait(&rt->cv, &rt->mu);
    /* With an error, shards still setting up see it in report_ready and leave. */
    rt->go = rt->start_err == 0;
    pthread_cond_broadcast(&rt->cv);
    err = rt->start_err;
    pthread_mutex_unlock(&rt->mu);
    if (err != 0) {
        for (unsigned i = 0; i < started; i++) pthread_join(rt->threads[i], NULL);
        int code = err;
        char m[RINGP2P_ERRINFO_MSG_MAX];
        snprintf(m, sizeof(m), "%s", rt->start_msg);
        free_shell(rt);
        return rp_err(ei, code, "%s", m);
    }
    unsigned feats = ~0u;
    for (unsigned i = 0; i < n; i++) feats &= rt->shards[i]->features;
    rt->features = feats;
    rp_log_info(cfg.log, MOD, "%u shards up, features 0x%x", n, feats);
    *out = rt;
    return 0;
}

void rp_runtime_stop(rp_runtime *rt)
{
    if (rt == NULL) return;
    pthread_mutex_lock(&rt->mu);
    bool already = rt->stopped;
    rt->stopped = true;
    pthread_mutex_unlock(&rt->mu);
    if (already) return;
    atomic_store(&rt->stopping, 1);
    for (unsigned i = 0; i < rt->n; i++) efd_poke(rt->shards[i]->efd);
    for (unsigned i = 0; i < rt->n; i++) pthread_join(rt->threads[i], NULL);
}

void rp_runtime_free(rp_runtime *rt)
{
    if (rt == NULL) return;
    rp_runtime_stop(rt);
    free_shell(rt);
}
