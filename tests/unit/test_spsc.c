#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "base/clock.h"
#include "base/spsc.h"
#include "ringp2p/error.h"

#define ITEM(i)  ((void *)(uintptr_t)(i))
#define VALUE(p) ((uintptr_t)(p))

/* A ring that makes no progress this long is wedged (full to the producer, empty to the consumer).
 */
#define STALL_SECONDS 5

static uint32_t xorshift(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

Test(spsc, capacity_rounding_and_limits)
{
    static const struct {
        size_t want, got;
    } cases[] = { { 1, 1 },       { 2, 2 },       { 3, 4 },
                  { 1000, 1024 }, { 4096, 4096 }, { RP_SPSC_CAPACITY_MAX, RP_SPSC_CAPACITY_MAX } };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rp_spsc *r;
        cr_assert_eq(rp_spsc_new(cases[i].want, &r), 0);
        cr_assert_eq(rp_spsc_capacity(r), cases[i].got, "capacity %zu", cases[i].want);
        cr_assert_eq(rp_spsc_size(r), 0);
        rp_spsc_free(r);
    }
    rp_spsc *r = NULL;
    cr_assert_eq(rp_spsc_new(0, &r), RINGP2P_EINVAL);
    cr_assert_eq(rp_spsc_new(RP_SPSC_CAPACITY_MAX + 1, &r), RINGP2P_EINVAL);
    cr_assert_null(r);
}

Test(spsc, single_items_fifo_full_empty)
{
    rp_spsc *r;
    cr_assert_eq(rp_spsc_new(4, &r), 0);
    void *out = ITEM(99);
    cr_assert_eq(rp_spsc_pop(r, &out), RINGP2P_EAGAIN);
    cr_assert_eq(out, ITEM(99), "out untouched when empty");
    for (uintptr_t i = 0; i < 4; i++) cr_assert_eq(rp_spsc_push(r, ITEM(i)), 0);
    cr_assert_eq(rp_spsc_size(r), 4);
    cr_assert_eq(rp_spsc_push(r, ITEM(4)), RINGP2P_EAGAIN, "full at capacity, no slot wasted");
    for (uintptr_t i = 0; i < 4; i++) {
        cr_assert_eq(rp_spsc_pop(r, &out), 0);
        cr_assert_eq(out, ITEM(i), "NULL is an ordinary item too");
    }
    cr_assert_eq(rp_spsc_pop(r, &out), RINGP2P_EAGAIN);
    cr_assert_eq(rp_spsc_size(r), 0);

    /* Capacity 1 still works: each push fills it. */
    rp_spsc *one;
    cr_assert_eq(rp_spsc_new(1, &one), 0);
    for (uintptr_t i = 0; i < 10; i++) {
        cr_assert_eq(rp_spsc_push(one, ITEM(i)), 0);
        cr_assert_eq(rp_spsc_push(one, ITEM(i)), RINGP2P_EAGAIN);
        cr_assert_eq(rp_spsc_pop(one, &out), 0);
        cr_assert_eq(out, ITEM(i));
    }
    rp_spsc_free(one);
    rp_spsc_free(r);
}

Test(spsc, batches_partial_and_wrapping)
{
    rp_spsc *r;
    cr_assert_eq(rp_spsc_new(8, &r), 0);
    void *in[16], *out[16];
    for (uintptr_t i = 0; i < 16; i++) in[i] = ITEM(100 + i);

    cr_assert_eq(rp_spsc_push_n(r, in, 5), 5);
    cr_assert_eq(rp_spsc_pop_n(r, out, 3), 3);
    cr_assert_eq(out[2], ITEM(102));
    /* head at 5, tail at 3: 6 free slots, and the write wraps past slot 7. */
    cr_assert_eq(rp_spsc_push_n(r, in + 5, 10), 6, "a batch is cut to the free room");
    cr_assert_eq(rp_spsc_push_n(r, in, 1), 0);
    cr_assert_eq(rp_spsc_size(r), 8);
    cr_assert_eq(rp_spsc_pop_n(r, out, 16), 8, "pop_n stops at what is there");
    for (uintptr_t i = 0; i < 8; i++) cr_assert_eq(out[i], ITEM(103 + i), "slot %zu", (size_t)i);
    cr_assert_eq(rp_spsc_pop_n(r, out, 16), 0);
    cr_assert_eq(rp_spsc_push_n(r, in, 0), 0);
    cr_assert_eq(rp_spsc_pop_n(r, out, 0), 0);
    rp_spsc_free(r);
}

/* Random push/pop batches checked against a counter model, across many laps of small rings. */
Test(spsc, model_check_single_thread)
{
    static const size_t caps[] = { 1, 2, 4, 8, 64 };
    for (size_t ci = 0; ci < 5; ci++) {
        rp_spsc *r;
        cr_assert_eq(rp_spsc_new(caps[ci], &r), 0);
        uint32_t seed = 0x9e3779b9u + (uint32_t)ci;
        uintptr_t next_in = 0, next_out = 0;
        void *buf[80];
        for (int step = 0; step < 20000; step++) {
            uint32_t x = xorshift(&seed);
            size_t k = x % 70;
            size_t inring = (size_t)(next_in - next_out);
            if (x & 0x80000000u) {
                for (size_t i = 0; i < k; i++) buf[i] = ITEM(next_in + i);
                size_t got = (x & 0x40000000u) ? rp_spsc_push_n(r, buf, k)
                                               : (k > 0 && rp_spsc_push(r, buf[0]) == 0);
                size_t want = (x & 0x40000000u) ? k : (k > 0);
                size_t room = caps[ci] - inring;
                cr_assert_eq(got, want < room ? want : room, "cap %zu step %d", caps[ci], step);
                next_in += got;
            } else {
                size_t got = rp_spsc_pop_n(r, buf, k);
                cr_assert_eq(got, k < inring ? k : inring, "cap %zu step %d", caps[ci], step);
                for (size_t i = 0; i < got; i++) cr_assert_eq(VALUE(buf[i]), next_out + i);
                next_out += got;
            }
            cr_assert_eq(rp_spsc_size(r), (size_t)(next_in - next_out));
        }
        rp_spsc_free(r);
    }
}

enum { MODE_SINGLE, MODE_BATCH, MODE_RANDOM_BATCH };

typedef struct stress {
    rp_spsc *r;
    uintptr_t n;
    int push_mode;
    int pop_mode;
    atomic_int producer_done;
    atomic_int stop; /* set by the consumer when it gives up on a stalled ring */
} stress;

static void *producer(void *arg)
{
    stress *s = arg;
    uint32_t seed = 12345;
    void *batch[64];
    uintptr_t i = 0;
    unsigned spins = 0;
    while (i < s->n) {
        if (s->push_mode == MODE_SINGLE) {
            if (rp_spsc_push(s->r, ITEM(i)) == 0) {
                i++;
                spins = 0;
            } else {
                if (atomic_load_explicit(&s->stop, memory_order_relaxed)) break;
                rp_backoff(&spins, 32);
            }
            continue;
        }
        size_t k = s->push_mode == MODE_BATCH ? 64 : 1 + xorshift(&seed) % 63;
        if (k > s->n - i) k = (size_t)(s->n - i);
        for (size_t j = 0; j < k; j++) batch[j] = ITEM(i + j);
        size_t done = rp_spsc_push_n(s->r, batch, k);
        i += done;
        if (done == 0)
            rp_backoff(&spins, 32);
        else
            spins = 0;
    }
    atomic_store_explicit(&s->producer_done, 1, memory_order_release);
    return NULL;
}

/*
 * Runs one producer thread against this thread as consumer. Every item must
 * arrive exactly once and in order: a lost, duplicated or reordered item
 * breaks the expected sequence. The consumer stops when the producer is done
 * and the ring is drained, so a lost item fails the count instead of hanging.
 */
static void run_stress(size_t cap, uintptr_t n, int push_mode, int pop_mode)
{
    stress s = { .n = n, .push_mode = push_mode, .pop_mode = pop_mode };
    atomic_init(&s.producer_done, 0);
    atomic_init(&s.stop, 0);
    cr_assert_eq(rp_spsc_new(cap, &s.r), 0);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, producer, &s), 0);

    uint32_t seed = 777;
    uintptr_t expect = 0, bad = 0, first_bad_at = 0, first_bad_val = 0;
    void *batch[64];
    unsigned spins = 0, idle = 0;
    double last_progress = rp_clock_seconds();
    int stalled = 0;
    for (;;) {
        size_t got;
        if (pop_mode == MODE_SINGLE)
            got = rp_spsc_pop(s.r, batch) == 0;
        else
            got = rp_spsc_pop_n(s.r, batch, pop_mode == MODE_BATCH ? 64 : 1 + xorshift(&seed) % 63);
        if (got == 0) {
            if (atomic_load_explicit(&s.producer_done, memory_order_acquire) &&
                rp_spsc_size(s.r) == 0)
                break;
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
        for (size_t j = 0; j < got; j++, expect++) {
            if (VALUE(batch[j]) != expect && bad++ == 0) {
                first_bad_at = expect;
                first_bad_val = VALUE(batch[j]);
            }
        }
    }
    pthread_join(t, NULL);
    rp_spsc_free(s.r);
    cr_assert_eq(stalled, 0, "cap %zu: no progress for %d s after %lu items", cap, STALL_SECONDS,
                 (unsigned long)expect);
    cr_assert_eq(bad, 0, "cap %zu: %lu items out of sequence, first at %lu (got %lu)", cap,
                 (unsigned long)bad, (unsigned long)first_bad_at, (unsigned long)first_bad_val);
    cr_assert_eq(expect, n, "cap %zu: received %lu of %lu items", cap, (unsigned long)expect,
                 (unsigned long)n);
}

Test(spsc_stress, single_ops_5m, .timeout = 30)
{
    run_stress(1024, 5000000, MODE_SINGLE, MODE_SINGLE);
}

Test(spsc_stress, batch_ops_5m, .timeout = 30)
{
    run_stress(256, 5000000, MODE_BATCH, MODE_RANDOM_BATCH);
}

/* Tiny rings make nearly every operation meet a full or empty ring and wrap. */
Test(spsc_stress, small_ring_races, .timeout = 30)
{
    run_stress(8, 1000000, MODE_RANDOM_BATCH, MODE_RANDOM_BATCH);
    run_stress(2, 300000, MODE_SINGLE, MODE_RANDOM_BATCH);
    run_stress(4, 300000, MODE_RANDOM_BATCH, MODE_SINGLE);
}
