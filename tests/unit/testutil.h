/* Helpers shared by the unit tests. */
#ifndef RP_TESTS_TESTUTIL_H
#define RP_TESTS_TESTUTIL_H

#include <criterion/criterion.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/*
 * Decodes a hex test vector (either case; spaces and other separators are
 * skipped, so vectors can be laid out readably) into out[cap]. Asserts that
 * it fits and has an even number of digits; returns the byte count.
 */
static inline size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (const char *c = hex; *c != '\0'; c++) {
        int v;
        if (*c >= '0' && *c <= '9')
            v = *c - '0';
        else if (*c >= 'a' && *c <= 'f')
            v = *c - 'a' + 10;
        else if (*c >= 'A' && *c <= 'F')
            v = *c - 'A' + 10;
        else
            continue;
        if (hi < 0) {
            hi = v;
            continue;
        }
        cr_assert_lt(n, cap, "hex vector too long for its buffer");
        out[n++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    cr_assert_eq(hi, -1, "hex vector with an odd number of digits");
    return n;
}

/* Counts completions signalled from other threads (shards) and waits for them. */
typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} waiter;

static inline void w_init(waiter *w)
{
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->done = 0;
}

static inline void w_signal(waiter *w)
{
    pthread_mutex_lock(&w->mu);
    w->done++;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Waits until `n` signals or `ms` pass; returns the count seen. */
static inline int w_wait(waiter *w, int n, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
    pthread_mutex_lock(&w->mu);
    while (w->done < n)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) != 0) break;
    int d = w->done;
    pthread_mutex_unlock(&w->mu);
    return d;
}

#endif
