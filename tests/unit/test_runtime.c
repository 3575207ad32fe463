/*
 * Runtime core: shards, cross-shard messages, external posts, timers, stop.
 * Sockets are in test_tcp.c.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/runtime.h"

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Waits (polling) until *v >= want or `seconds` pass; returns the last value seen. */
static uint64_t wait_for(_Atomic uint64_t *v, uint64_t want, double seconds)
{
    uint64_t end = mono_ns() + (uint64_t)(seconds * 1e9);
    uint64_t x;
    while ((x = atomic_load(v)) < want && mono_ns() < end) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    return x;
}

/* A hung test dies by SIGALRM; see test_tcp.c for why not Criterion's .timeout. */
static void watchdog(void)
{
    alarm(60);
}

static void watchdog_off(void)
{
    alarm(0);
}

TestSuite(runtime, .init = watchdog, .fini = watchdog_off);
TestSuite(runtime_stress, .init = watchdog, .fini = watchdog_off);

static rp_runtime *start(unsigned nshards, unsigned inbox, unsigned features_off)
{
    rp_runtime_config cfg;
    rp_runtime_config_default(&cfg);
    cfg.nshards = nshards;
    cfg.inbox_capacity = inbox;
    cfg.features_off = features_off;
    cfg.recv_buf_count = 16; /* these tests make no sockets */
    cfg.recv_buf_size = 4096;
    rp_runtime *rt = NULL;
    ringp2p_errinfo ei;
    int r = rp_runtime_new(&cfg, &rt, &ei);
    if (r == RINGP2P_EUNSUPPORTED) cr_skip_test("runtime unsupported here: %s", ei.msg);
    cr_assert_eq(r, 0, "rp_runtime_new: %s", ei.msg);
    return rt;
}

Test(runtime, config_rejects_bad_values)
{
    static const struct {
        const char *what;
        unsigned nshards, buf_count, buf_size;
        size_t high, low;
    } bad[] = {
        { "too many shards", RP_RUNTIME_SHARDS_MAX + 1, 0, 0, 0, 0 },
        { "buffer count not a power of two", 1, 100, 0, 0, 0 },
        { "buffer count too large", 1, 65536, 0, 0, 0 },
        { "buffer size too small", 1, 0, 16, 0, 0 },
        { "low watermark above high", 1, 0, 0, 1000, 2000 },
        { "low watermark equal to high", 1, 0, 0, 1000, 1000 },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rp_runtime_config cfg;
        rp_runtime_config_default(&cfg);
        cfg.nshards = bad[i].nshards;
        cfg.recv_buf_count = bad[i].buf_count;
        cfg.recv_buf_size = bad[i].buf_size;
        cfg.high_watermark = bad[i].high;
        cfg.low_watermark = bad[i].low;
        rp_runtime *rt = NULL;
        ringp2p_errinfo ei;
        cr_assert_eq(rp_runtime_new(&cfg, &rt, &ei), RINGP2P_EINVAL, "%s", bad[i].what);
        cr_assert_null(rt, "%s", bad[i].what);
        cr_assert_eq(ei.code, RINGP2P_EINVAL);
    }
}

Test(runtime, starts_one_shard_per_cpu_and_stops)
{
    rp_runtime *rt = start(0, 0, 0);
    cpu_set_t set;
    cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
    cr_assert_eq(rp_runtime_nshards(rt), (unsigned)CPU_COUNT(&set));
    for (unsigned i = 0; i < rp_runtime_nshards(rt); i++) {
        rp_shard *sh = rp_runtime_shard(rt, i);
        cr_assert_not_null(sh);
        cr_assert_eq(rp_shard_id(sh), i);
        cr_assert_eq(rp_shard_runtime(sh), rt);
        cr_assert(!rp_shard_is_current(sh), "the test thread is not a shard");
    }
    cr_assert_null(rp_runtime_shard(rt, rp_runtime_nshards(rt)));
    rp_runtime_stop(rt);
    rp_runtime_stop(rt); /* idempotent */
    rp_shard_stats st;
    rp_runtime_shard_stats(rt, 0, &st);
    cr_assert_eq(st.leaked_buffers, 0);
    cr_assert(st.loops > 0);
    rp_runtime_free(rt);
}

Test(runtime, features_off_are_honoured)
{
    const unsigned off = RP_FEAT_MSG_RING | RP_FEAT_DEFER_TASKRUN | RP_FEAT_SEND_ZC;
    rp_runtime *rt = start(2, 0, off);
    cr_assert_eq(rp_runtime_features(rt) & off, 0);
    rp_runtime_free(rt);
}

/* ---- posts from threads that are not shards ----------------------------------------------- */

typedef struct post_rec {
    rp_runtime *rt;
    unsigned want_shard;
    _Atomic uint64_t ran, wrong_shard, out_of_order;
    uint64_t next_seq[4]; /* per shard; only that shard touches its entry */
} post_rec;

typedef struct post_item {
    post_rec *rec;
    unsigned shard;
    uint64_t seq;
} post_item;

static void post_task(rp_shard *sh, void *arg)
{
    post_item *it = arg;
    if (rp_shard_id(sh) != it->shard || !rp_shard_is_current(sh))
        atomic_fetch_add(&it->rec->wrong_shard, 1);
    if (it->rec->next_seq[it->shard] != it->seq) atomic_fetch_add(&it->rec->out_of_order, 1);
    it->rec->next_seq[it->shard] = it->seq + 1;
    atomic_fetch_add(&it->rec->ran, 1);
}

Test(runtime, external_posts_run_on_their_shard_in_order)
{
    rp_runtime *rt = start(2, 64, 0); /* small inbox: EAGAIN happens and is retried */
    enum { PER_SHARD = 3000 };
    static post_rec rec;
    static post_item items[2][PER_SHARD];
    memset(&rec, 0, sizeof(rec));
    unsigned eagain = 0;
    for (unsigned i = 0; i < PER_SHARD; i++) {
        for (unsigned s = 0; s < 2; s++) {
            items[s][i] = (post_item){ &rec, s, i };
            int r;
            while ((r = rp_runtime_post(rt, s, post_task, &items[s][i])) == RINGP2P_EAGAIN) {
                eagain++;
                sched_yield();
            }
            cr_assert_eq(r, 0);
        }
    }
    cr_assert_eq(wait_for(&rec.ran, 2 * PER_SHARD, 10), 2 * PER_SHARD);
    cr_assert_eq(atomic_load(&rec.wrong_shard), 0);
    cr_assert_eq(atomic_load(&rec.out_of_order), 0);
    cr_assert_eq(rp_runtime_post(rt, 2, post_task, &items[0][0]), RINGP2P_EINVAL);
    rp_runtime_stop(rt);
    cr_assert_eq(rp_runtime_post(rt, 0, post_task, &items[0][0]), RINGP2P_ECLOSED);
    rp_runtime_free(rt);
}

/* ---- shard to shard ----------------------------------------------------------------------- */

enum { STRESS_MAX_SHARDS = 4 };

typedef struct stress {
    unsigned n;
    uint64_t per_pair;
    /* [from][to]: written only by `to` (next expected) or by `from` (done count). */
    uint64_t next_seq[STRESS_MAX_SHARDS][STRESS_MAX_SHARDS];
    uint64_t done_count[STRESS_MAX_SHARDS][STRESS_MAX_SHARDS];
    _Atomic uint64_t ran, done, errors, hops;
    uint64_t hops_total;
} stress;

typedef struct smsg {
    rp_msg m; /* first: the runtime hands back this pointer */
    stress *st;
    uint64_t seq;
    unsigned from;
} smsg;

static void smsg_run(rp_shard *sh, rp_msg *m)
{
    smsg *s = (smsg *)m;
    unsigned to = rp_shard_id(sh);
    if (!rp_shard_is_current(sh) || to == s->from) atomic_fetch_add(&s->st->errors, 1);
    if (s->st->next_seq[s->from][to] != s->seq) atomic_fetch_add(&s->st->errors, 1);
    s->st->next_seq[s->from][to] = s->seq + 1;
    atomic_fetch_add(&s->st->ran, 1);
}

static void smsg_done(rp_shard *sh, rp_msg *m)
{
    smsg *s = (smsg *)m;
    /* The sender frees what it sent: done runs back on the sending shard. */
    if (rp_shard_id(sh) != s->from || !rp_shard_is_current(sh)) atomic_fetch_add(&s->st->errors, 1);
    s->st->done_count[s->from][m->to]++;
    free(s);
}

/* A message that hops shard to shard `hops_total` times: every hop may find the target asleep. */
typedef struct hop {
    rp_msg m;
    stress *st;
    uint64_t left;
} hop;

static void hop_done(rp_shard *sh, rp_msg *m)
{
    free(m);
}

static void hop_run(rp_shard *sh, rp_msg *m)
{
    hop *h = (hop *)m;
    atomic_fetch_add(&h->st->hops, 1);
    if (h->left == 0) return;
    hop *next = calloc(1, sizeof(*next));
    next->m.run = hop_run;
    next->m.done = hop_done;
    next->st = h->st;
    next->left = h->left - 1;
    if (rp_shard_send(sh, (rp_shard_id(sh) + 1) % h->st->n, &next->m) != 0) {
        atomic_fetch_add(&h->st->errors, 1);
        free(next);
    }
}

static void stress_kick(rp_shard *sh, void *arg)
{
    stress *st = arg;
    unsigned me = rp_shard_id(sh);
    /* A burst far larger than the rings: the rest overflows into the outbox and trickles out. */
    for (unsigned to = 0; to < st->n; to++) {
        if (to == me) continue;
        for (uint64_t i = 0; i < st->per_pair; i++) {
            smsg *s = calloc(1, sizeof(*s));
            s->m.run = smsg_run;
            s->m.done = smsg_done;
            s->st = st;
            s->seq = i;
            s->from = me;
            if (rp_shard_send(sh, to, &s->m) != 0) {
                atomic_fetch_add(&st->errors, 1);
                free(s);
            }
        }
    }
    if (me == 0) {
        hop *h = calloc(1, sizeof(*h));
        h->m.run = hop_run;
        h->m.done = hop_done;
        h->st = st;
        h->left = st->hops_total - 1;
        if (rp_shard_send(sh, 1 % st->n, &h->m) != 0) atomic_fetch_add(&st->errors, 1);
    }
}

static void count_done(rp_shard *sh, void *arg)
{
    stress *st = arg;
    uint64_t d = 0;
    for (unsigned to = 0; to < st->n; to++) d += st->done_count[rp_shard_id(sh)][to];
    atomic_fetch_add(&st->done, d);
}

static void run_stress(unsigned n, unsigned inbox, unsigned features_off)
{
    rp_runtime *rt = start(n, inbox, features_off);
    stress *st = calloc(1, sizeof(*st));
    st->n = n;
    st->per_pair = 20000;
    st->hops_total = 3000;
    for (unsigned s = 0; s < n; s++) cr_assert_eq(rp_runtime_post(rt, s, stress_kick, st), 0);
    uint64_t want = st->per_pair * n * (n - 1);
    cr_assert_eq(wait_for(&st->ran, want, 30), want);
    cr_assert_eq(wait_for(&st->hops, st->hops_total, 30), st->hops_total);
    /* Returns are counted on each sender, read by posts there until they add up. */
    uint64_t end = mono_ns() + 10000000000ull;
    uint64_t total_done = 0;
    while (mono_ns() < end) {
        atomic_store(&st->done, 0);
        for (unsigned s = 0; s < n; s++) cr_assert_eq(rp_runtime_post(rt, s, count_done, st), 0);
        struct timespec ts = { 0, 20000000 };
        nanosleep(&ts, NULL);
        total_done = atomic_load(&st->done);
        if (total_done == want) break;
    }
    cr_assert_eq(total_done, want, "every message came back to its sender");
    cr_assert_eq(atomic_load(&st->errors), 0);
    uint64_t msgs_in = 0, wakeups = 0;
    for (unsigned s = 0; s < n; s++) {
        rp_shard_stats ss;
        rp_runtime_shard_stats(rt, s, &ss);
        msgs_in += ss.msgs_in;
        wakeups += ss.wakeups_sent;
    }
    cr_assert_geq(msgs_in, want + st->hops_total);
    cr_assert_gt(wakeups, 0, "the hop chain must have woken a sleeping shard");
    rp_runtime_free(rt);
    free(st);
}

Test(runtime_stress, cross_shard_two_shards_small_rings)
{
    run_stress(2, 16, 0);
}

Test(runtime_stress, cross_shard_four_shards)
{
    run_stress(4, 256, 0);
}

Test(runtime_stress, cross_shard_eventfd_wakeups)
{
    run_stress(2, 64, RP_FEAT_MSG_RING | RP_FEAT_DEFER_TASKRUN);
}

/* ---- posts to self ------------------------------------------------------------------------ */

typedef struct self_rec {
    int inside; /* set while the posting call runs */
    _Atomic uint64_t ran, ran_inside, errors;
} self_rec;

static void self_task(rp_shard *sh, void *arg)
{
    self_rec *r = arg;
    if (r->inside) atomic_fetch_add(&r->ran_inside, 1);
    atomic_fetch_add(&r->ran, 1);
}

static void self_kick(rp_shard *sh, void *arg)
{
    self_rec *r = arg;
    r->inside = 1;
    for (int i = 0; i < 10; i++)
        if (rp_shard_post(sh, rp_shard_id(sh), self_task, r) != 0) atomic_fetch_add(&r->errors, 1);
    if (rp_shard_post(sh, 7, self_task, r) != RINGP2P_EINVAL) atomic_fetch_add(&r->errors, 1);
    r->inside = 0;
}

Test(runtime, post_to_self_runs_on_a_later_turn)
{
    rp_runtime *rt = start(2, 0, 0);
    static self_rec r;
    cr_assert_eq(rp_runtime_post(rt, 1, self_kick, &r), 0);
    cr_assert_eq(wait_for(&r.ran, 10, 10), 10);
    cr_assert_eq(atomic_load(&r.ran_inside), 0);
    cr_assert_eq(atomic_load(&r.errors), 0);
    rp_runtime_free(rt);
}

/* ---- end-of-turn tasks -------------------------------------------------------------------- */

typedef struct turn_rec {
    rp_turn_task once, again;
    uint64_t kick_now;
    int again_left;
    _Atomic uint64_t once_ran, once_same_turn, again_ran, again_same_turn, done;
} turn_rec;

static void turn_once(rp_shard *sh, void *arg)
{
    turn_rec *r = arg;
    atomic_fetch_add(&r->once_ran, 1);
    if (rp_shard_now(sh) == r->kick_now) atomic_fetch_add(&r->once_same_turn, 1);
}

/* Queues itself again until again_left runs out: past the pass bound it runs on later turns. */
static void turn_again(rp_shard *sh, void *arg)
{
    turn_rec *r = arg;
    atomic_fetch_add(&r->again_ran, 1);
    if (rp_shard_now(sh) == r->kick_now) atomic_fetch_add(&r->again_same_turn, 1);
    if (--r->again_left > 0)
        rp_shard_at_turn_end(sh, &r->again);
    else
        atomic_store(&r->done, 1);
}

static void turn_kick(rp_shard *sh, void *arg)
{
    turn_rec *r = arg;
    r->kick_now = rp_shard_now(sh);
    rp_turn_task_init(&r->once, turn_once, r);
    rp_turn_task_init(&r->again, turn_again, r);
    rp_shard_at_turn_end(sh, &r->once);
    rp_shard_at_turn_end(sh, &r->once); /* queued already: still one run */
    rp_shard_at_turn_end(sh, &r->again);
}

/*
 * A task queued during a turn runs at that turn's end (the clock read at the
 * top of the turn is the same), once however often it was queued; one that
 * keeps queueing itself runs on in the same turn up to the pass bound, then on
 * later turns without the shard going to sleep in between (nothing else would
 * wake it here).
 */
Test(runtime, turn_end_tasks_run_in_the_same_turn_and_never_stall)
{
    rp_runtime *rt = start(2, 0, 0);
    static turn_rec r;
    r.again_left = 40;
    cr_assert_eq(rp_runtime_post(rt, 1, turn_kick, &r), 0);
    cr_assert_eq(wait_for(&r.done, 1, 5), 1, "a task that queued itself again stalled");
    cr_assert_eq(atomic_load(&r.once_ran), 1);
    cr_assert_eq(atomic_load(&r.once_same_turn), 1);
    cr_assert_eq(atomic_load(&r.again_ran), 40);
    cr_assert_geq(atomic_load(&r.again_same_turn), 2, "queued again, it waited for another turn");
    cr_assert_lt(atomic_load(&r.again_same_turn), 40, "no bound on one turn's passes");
    rp_runtime_free(rt);
}

/* ---- timers ------------------------------------------------------------------------------- */

enum { NTIMERS = 60 };

typedef struct tmr_rec {
    rp_timer t[NTIMERS];
    uint64_t deadline[NTIMERS];
    rp_shard *sh;
    uint64_t last_deadline;
    _Atomic uint64_t fired, early, out_of_order, cancelled_fired, armed;
} tmr_rec;

static void tmr_fire(rp_timer *t, void *arg)
{
    tmr_rec *r = arg;
    size_t i = (size_t)(t - r->t);
    uint64_t now = rp_shard_now(r->sh);
    if (now < r->deadline[i]) atomic_fetch_add(&r->early, 1);
    if (r->deadline[i] < r->last_deadline) atomic_fetch_add(&r->out_of_order, 1);
    if (i % 5 == 0) atomic_fetch_add(&r->cancelled_fired, 1);
    r->last_deadline = r->deadline[i];
    atomic_fetch_add(&r->fired, 1);
}

static void tmr_kick(rp_shard *sh, void *arg)
{
    tmr_rec *r = arg;
    r->sh = sh;
    rp_timer_wheel *w = rp_shard_timers(sh);
    uint64_t now = rp_shard_now(sh);
    for (size_t i = 0; i < NTIMERS; i++) {
        r->deadline[i] = now + (uint64_t)((i * 37) % NTIMERS + 1) * 3000000ull; /* 3..180 ms */
        rp_timer_init(&r->t[i], tmr_fire, r);
        rp_timer_arm(w, &r->t[i], r->deadline[i]);
    }
    for (size_t i = 0; i < NTIMERS; i += 5) rp_timer_cancel(&r->t[i]);
    atomic_store(&r->armed, 1);
}

Test(runtime, shard_timers_fire_in_order_and_wake_the_shard)
{
    rp_runtime *rt = start(2, 0, 0);
    static tmr_rec r;
    rp_shard_stats before, after;
    cr_assert_eq(rp_runtime_post(rt, 1, tmr_kick, &r), 0);
    cr_assert_eq(wait_for(&r.armed, 1, 5), 1);
    rp_runtime_shard_stats(rt, 1, &before);
    uint64_t t0 = mono_ns();
    cr_assert_eq(wait_for(&r.fired, NTIMERS - NTIMERS / 5, 10), NTIMERS - NTIMERS / 5);
    uint64_t ms = (mono_ns() - t0) / 1000000;
    rp_runtime_shard_stats(rt, 1, &after);
    cr_assert_eq(atomic_load(&r.early), 0, "no timer fires before its deadline");
    cr_assert_eq(atomic_load(&r.out_of_order), 0);
    cr_assert_eq(atomic_load(&r.cancelled_fired), 0);
    cr_assert_geq(ms, 150, "the last deadline is 180 ms out (took %llu ms)",
                  (unsigned long long)ms);
    /* An idle shard sleeps until the next deadline instead of spinning. */
    cr_assert_gt(after.sleeps - before.sleeps, 10);
    cr_assert_lt(after.loops - before.loops, 5000, "%llu turns in %llu ms: spinning",
                 (unsigned long long)(after.loops - before.loops), (unsigned long long)ms);
    rp_runtime_free(rt);
}

/* ---- stop waits for messages in flight ---------------------------------------------------- */

static void chain_kick(rp_shard *sh, void *arg)
{
    stress *st = arg;
    hop *h = calloc(1, sizeof(*h));
    h->m.run = hop_run;
    h->m.done = hop_done;
    h->st = st;
    h->left = st->hops_total - 1;
    if (rp_shard_send(sh, 1, &h->m) != 0) atomic_fetch_add(&st->errors, 1);
}

Test(runtime, stop_lets_messages_in_flight_finish)
{
    rp_runtime *rt = start(2, 0, 0);
    stress *st = calloc(1, sizeof(*st));
    st->n = 2;
    st->hops_total = 20000;
    cr_assert_eq(rp_runtime_post(rt, 0, chain_kick, st), 0);
    wait_for(&st->hops, 100, 10);
    rp_runtime_stop(rt); /* the chain is still hopping: stop must wait for its end */
    cr_assert_eq(atomic_load(&st->hops), st->hops_total);
    cr_assert_eq(atomic_load(&st->errors), 0);
    for (unsigned s = 0; s < 2; s++) {
        rp_shard_stats ss;
        rp_runtime_shard_stats(rt, s, &ss);
        cr_assert_eq(ss.leaked_buffers, 0);
    }
    rp_runtime_free(rt);
    free(st);
}
