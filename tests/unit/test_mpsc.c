#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "base/clock.h"
#include "base/mpsc.h"
#include "ringp2p/error.h"

#define ITEM(i)  ((void *)(uintptr_t)(i))
#define VALUE(p) ((uintptr_t)(p))

/* Stress items carry (producer, sequence) so the consumer can check per-producer order. */
#define SEQ_BITS      40
#define TAG(p, seq)   ((((uintptr_t)(p)) << SEQ_BITS) | (uintptr_t)(seq))
#define TAG_PROD(v)   ((size_t)((v) >> SEQ_BITS))
#define TAG_SEQ(v)    ((v) & (((uintptr_t)1 << SEQ_BITS) - 1))
#define MAX_PRODUCERS 8
/* A ring that makes no progress this long is wedged (full to producers, empty to the consumer). */
#define STALL_SECONDS 5

Test(mpsc, capacity_rounding_and_limits)
{
    static const struct {
        size_t want, got;
    } cases[] = {
        { 1, 2 }, { 2, 2 }, { 3, 4 }, { 100, 128 }, { RP_MPSC_CAPACITY_MAX, RP_MPSC_CAPACITY_MAX }
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rp_mpsc *r;
        cr_assert_eq(rp_mpsc_new(cases[i].want, &r), 0);
        cr_assert_eq(rp_mpsc_capacity(r), cases[i].got, "capacity %zu", cases[i].want);
        rp_mpsc_free(r);
    }
    rp_mpsc *r = NULL;
    cr_assert_eq(rp_mpsc_new(0, &r), RINGP2P_EINVAL);
    cr_assert_eq(rp_mpsc_new(RP_MPSC_CAPACITY_MAX + 1, &r), RINGP2P_EINVAL);
    cr_assert_null(r);
    rp_mpsc_free(NULL);
}

/* A push that misreads "full" spins inside rp_mpsc_push: the timeout turns that into a failure. */
Test(mpsc, fifo_full_empty_and_laps, .timeout = 10)
{
    static const size_t caps[] = { 2, 4, 16 };
    for (size_t ci = 0; ci < 3; ci++) {
        size_t cap = caps[ci];
        rp_mpsc *r;
        cr_assert_eq(rp_mpsc_new(cap, &r), 0);
        void *out = ITEM(7);
        cr_assert_eq(rp_mpsc_pop(r, &out), RINGP2P_EAGAIN);
        cr_assert_eq(out, ITEM(7), "out untouched when empty");
        uintptr_t next_in = 0, next_out = 0;
        /* Fill to full and drain, with a different phase each lap. */
        for (int lap = 0; lap < 50; lap++) {
            for (size_t k = 0; k <= cap && rp_mpsc_push(r, ITEM(next_in)) == 0; k++) next_in++;
            cr_assert_eq(next_in - next_out, cap, "cap %zu lap %d: full at capacity", cap, lap);
            size_t drain = 1 + (size_t)lap % cap;
            for (size_t i = 0; i < drain; i++) {
                cr_assert_eq(rp_mpsc_pop(r, &out), 0);
                cr_assert_eq(VALUE(out), next_out++, "NULL is an ordinary item too");
            }
        }
        void *buf[64];
        size_t got = rp_mpsc_pop_n(r, buf, 64);
        cr_assert_eq(got, next_in - next_out);
        for (size_t i = 0; i < got; i++) cr_assert_eq(VALUE(buf[i]), next_out + i);
        cr_assert_eq(rp_mpsc_pop_n(r, buf, 64), 0);
        rp_mpsc_free(r);
    }
}

Test(mpsc, pop_n_partial)
{
    rp_mpsc *r;
    cr_assert_eq(rp_mpsc_new(8, &r), 0);
    for (uintptr_t i = 1; i <= 5; i++) cr_assert_eq(rp_mpsc_push(r, ITEM(i)), 0);
    void *buf[8];
    cr_assert_eq(rp_mpsc_pop_n(r, buf, 2), 2);
    cr_assert_eq(buf[0], ITEM(1));
    cr_assert_eq(buf[1], ITEM(2));
    cr_assert_eq(rp_mpsc_pop_n(r, buf, 0), 0);
    cr_assert_eq(rp_mpsc_pop_n(r, buf, 8), 3);
    cr_assert_eq(buf[2], ITEM(5));
    rp_mpsc_free(r);
}

typedef struct mstress {
    rp_mpsc *r;
    size_t per_producer;
    atomic_int start;
    atomic_int done;
    atomic_int stop; /* set by the consumer when it gives up on a stalled ring */
} mstress;

typedef struct producer_arg {
    mstress *s;
    size_t id;
} producer_arg;

static void *producer(void *arg)
{
    producer_arg *a = arg;
    mstress *s = a->s;
    while (!atomic_load_explicit(&s->start, memory_order_acquire)) sched_yield();
    unsigned spins = 0;
    for (size_t i = 0; i < s->per_producer;) {
        if (rp_mpsc_push(s->r, ITEM(TAG(a->id, i))) == 0) {
            i++;
            spins = 0;
        } else {
            if (atomic_load_explicit(&s->stop, memory_order_relaxed)) break;
            rp_backoff(&spins, 32);
        }
    }
    atomic_fetch_add_explicit(&s->done, 1, memory_order_release);
    return NULL;
}

/*
 * P producer threads against this thread as consumer. Each producer's items
 * must arrive exactly once and in its push order; the consumer stops when all
 * producers are done and the ring is drained, so a loss fails the count.
 */
static void run_stress(size_t nprod, size_t cap, size_t per_producer, size_t batch)
{
    mstress s = { .per_producer = per_producer };
    atomic_init(&s.start, 0);
    atomic_init(&s.done, 0);
    atomic_init(&s.stop, 0);
    cr_assert_eq(rp_mpsc_new(cap, &s.r), 0);
    pthread_t t[MAX_PRODUCERS];
    producer_arg args[MAX_PRODUCERS];
    for (size_t p = 0; p < nprod; p++) {
        args[p] = (producer_arg){ &s, p };
        cr_assert_eq(pthread_create(&t[p], NULL, producer, &args[p]), 0);
    }
    atomic_store_explicit(&s.start, 1, memory_order_release);

    uintptr_t next[MAX_PRODUCERS] = { 0 };
    size_t total = 0, bad = 0;
    uintptr_t first_bad = 0;
    void *buf[64];
    unsigned spins = 0, idle = 0;
    double last_progress = rp_clock_seconds();
    int stalled = 0;
    for (;;) {
        /* Read before popping: if all were done then, an empty pop means nothing is left. */
        int all_done = (size_t)atomic_load_explicit(&s.done, memory_order_acquire) == nprod;
        size_t got = rp_mpsc_pop_n(s.r, buf, batch);
        if (got == 0) {
            if (all_done) break;
            if (++idle % 1024 == 0 && rp_clock_seconds() - last_progress > STALL_SECONDS) {
                stalled = 1;
                atomic_store_explicit(&s.stop, 1, memory_order_relaxed);
                break;
            }
            rp_backoff(&spins, 32);
            continue;
        }
        spins = 0;
        if (idle != 0) {
            idle = 0;
            last_progress = rp_clock_seconds();
        }
        for (size_t j = 0; j < got; j++) {
            uintptr_t v = VALUE(buf[j]);
            size_t p = TAG_PROD(v);
            if (p >= nprod || TAG_SEQ(v) != next[p]) {
                if (bad++ == 0) first_bad = v;
                if (p >= nprod) continue;
            }
            next[p] = TAG_SEQ(v) + 1;
        }
        total += got;
    }
    for (size_t p = 0; p < nprod; p++) pthread_join(t[p], NULL);
    rp_mpsc_free(s.r);
    cr_assert_eq(stalled, 0, "%zu producers, cap %zu: no progress for %d s after %zu items", nprod,
                 cap, STALL_SECONDS, total);
    cr_assert_eq(bad, 0, "%zu producers, cap %zu: %zu items out of order, first 0x%lx", nprod, cap,
                 bad, (unsigned long)first_bad);
    cr_assert_eq(total, nprod * per_producer, "%zu producers, cap %zu: received %zu of %zu", nprod,
                 cap, total, nprod * per_producer);
    for (size_t p = 0; p < nprod; p++)
        cr_assert_eq(next[p], per_producer, "producer %zu: last item %lu", p,
                     (unsigned long)next[p]);
}

Test(mpsc_stress, two_producers, .timeout = 30)
{
    run_stress(2, 1024, 2000000, 64);
}

/* Small rings keep producers fighting over the few free slots. */
Test(mpsc_stress, four_producers_small_ring, .timeout = 30)
{
    run_stress(4, 16, 1000000, 1);
    run_stress(4, 1024, 500000, 64);
}

Test(mpsc_stress, three_producers_tiny_ring, .timeout = 30)
{
    run_stress(3, 2, 200000, 64);
}

/*
 * Producers only, racing for positions in a ring that never fills; the
 * consumer drains after they are joined. Every position must have been
 * claimed by exactly one producer.
 */
Test(mpsc_stress, producers_race_for_positions, .timeout = 30)
{
    enum { NPROD = 4, PER = 1 << 19 };
    mstress s = { .per_producer = PER };
    atomic_init(&s.start, 0);
    atomic_init(&s.done, 0);
    atomic_init(&s.stop, 0);
    cr_assert_eq(rp_mpsc_new(NPROD * PER, &s.r), 0);
    pthread_t t[NPROD];
    producer_arg args[NPROD];
    for (size_t p = 0; p < NPROD; p++) {
        args[p] = (producer_arg){ &s, p };
        cr_assert_eq(pthread_create(&t[p], NULL, producer, &args[p]), 0);
    }
    atomic_store_explicit(&s.start, 1, memory_order_release);
    for (size_t p = 0; p < NPROD; p++) pthread_join(t[p], NULL);

    uintptr_t next[NPROD] = { 0 };
    size_t total = 0, bad = 0;
    void *buf[64];
    size_t got;
    while ((got = rp_mpsc_pop_n(s.r, buf, 64)) != 0) {
        for (size_t j = 0; j < got; j++) {
            uintptr_t v = VALUE(buf[j]);
            size_t p = TAG_PROD(v);
            if (p >= NPROD || TAG_SEQ(v) != next[p]) bad++;
            if (p < NPROD) next[p] = TAG_SEQ(v) + 1;
        }
        total += got;
    }
    rp_mpsc_free(s.r);
    cr_assert_eq(bad, 0, "%zu items out of order", bad);
    cr_assert_eq(total, (size_t)NPROD * PER, "received %zu of %zu", total, (size_t)NPROD * PER);
}
