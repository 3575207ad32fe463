/*
 * The monotonic clock and spin-wait helpers. Protocol code never calls these:
 * it is handed `now` by the runtime (DESIGN.md section 3).
 */
#ifndef RP_BASE_CLOCK_H
#define RP_BASE_CLOCK_H

#include <sched.h>
#include <stdint.h>
#include <time.h>

static inline uint64_t rp_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline double rp_clock_seconds(void)
{
    return (double)rp_clock_ns() * 1e-9;
}

/* Tells the CPU we are spinning (frees the sibling hyperthread, saves power). */
static inline void rp_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/*
 * Spin-wait step: pause `spin_limit` times, then yield the CPU once. On a
 * 2-core machine a pure spinner starves the thread it waits for.
 */
static inline void rp_backoff(unsigned *spins, unsigned spin_limit)
{
    if (++*spins < spin_limit) {
        rp_cpu_relax();
    } else {
        *spins = 0;
        sched_yield();
    }
}

#endif
