/*
 * Cross-thread queue throughput: ringp2p's lock-free rings against a
 * mutex-protected ring of the same capacity, measured in the same run.
 *
 *   build/bench/bench_rings [--json] [--verbose] [--rounds N] [--items N] [--capacity N]
 *                           [--batch N]
 *
 * Cases: SPSC one item per call, SPSC batched (push_n/pop_n; the baseline
 * takes its lock once per batch too), MPSC with 2 producers (single pushes,
 * batched pops). Each figure is the median of the rounds, ring and baseline
 * rounds interleaved so drift hits both alike. Items are checked on arrival
 * (order, count), so a broken queue fails the run rather than posting a
 * number. Threads are pinned to distinct CPUs when there are enough of them.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/mpsc.h"
#include "base/spsc.h"
#include "ringp2p/error.h"

#define DEFAULT_ROUNDS   5
#define DEFAULT_ITEMS    2000000
#define DEFAULT_CAPACITY 1024
#define DEFAULT_BATCH    32
#define MAX_BATCH        256
#define MPSC_PRODUCERS   2
#define SEQ_BITS         40

enum kind { K_SPSC, K_MPSC, K_MUTEX };

/* The baseline: a bounded ring under one mutex, the obvious way to write it. */
typedef struct mutex_queue {
    pthread_mutex_t mu;
    void **slots;
    size_t cap, head, tail;
} mutex_queue;

/*
 * Both sides read this on every operation; alone on its lines so no write by
 * either thread to nearby data (a stack frame, say) makes it bounce. Seen as
 * a 6x swing between runs before it was.
 */
typedef struct queue {
    alignas(RP_FALSE_SHARING_SIZE) enum kind kind;
    rp_spsc *spsc;
    rp_mpsc *mpsc;
    mutex_queue mq;
    alignas(RP_FALSE_SHARING_SIZE) char end_pad;
} queue;

static int mq_init(mutex_queue *q, size_t cap)
{
    q->slots = calloc(cap, sizeof(void *));
    if (q->slots == NULL) return RINGP2P_ENOMEM;
    q->cap = cap;
    q->head = q->tail = 0;
    pthread_mutex_init(&q->mu, NULL);
    return 0;
}

static size_t mq_push_n(mutex_queue *q, void *const *items, size_t n)
{
    pthread_mutex_lock(&q->mu);
    size_t room = q->cap - (q->head - q->tail);
    if (n > room) n = room;
    for (size_t i = 0; i < n; i++) q->slots[(q->head + i) % q->cap] = items[i];
    q->head += n;
    pthread_mutex_unlock(&q->mu);
    return n;
}

static size_t mq_pop_n(mutex_queue *q, void **out, size_t max)
{
    pthread_mutex_lock(&q->mu);
    size_t n = q->head - q->tail;
    if (n > max) n = max;
    for (size_t i = 0; i < n; i++) out[i] = q->slots[(q->tail + i) % q->cap];
    q->tail += n;
    pthread_mutex_unlock(&q->mu);
    return n;
}

static size_t q_push_n(queue *q, void *const *items, size_t n)
{
    switch (q->kind) {
    case K_SPSC:
        if (n == 1) return rp_spsc_push(q->spsc, items[0]) == 0;
        return rp_spsc_push_n(q->spsc, items, n);
    case K_MPSC: return rp_mpsc_push(q->mpsc, items[0]) == 0; /* single pushes only */
    case K_MUTEX: return mq_push_n(&q->mq, items, n);
    }
    return 0;
}

static size_t q_pop_n(queue *q, void **out, size_t max)
{
    switch (q->kind) {
    case K_SPSC:
        if (max == 1) return rp_spsc_pop(q->spsc, out) == 0;
        return rp_spsc_pop_n(q->spsc, out, max);
    case K_MPSC: return rp_mpsc_pop_n(q->mpsc, out, max);
    case K_MUTEX: return mq_pop_n(&q->mq, out, max);
    }
    return 0;
}

static void pin_to(int cpu)
{
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

typedef struct run {
    alignas(RP_FALSE_SHARING_SIZE) queue *q;
    size_t per_producer;
    size_t batch;
    atomic_int start;
    alignas(RP_FALSE_SHARING_SIZE) char end_pad;
} run;

typedef struct producer_arg {
    run *r;
    uintptr_t id;
    int cpu;
} producer_arg;

static void *producer(void *arg)
{
    producer_arg *a = arg;
    run *r = a->r;
    pin_to(a->cpu);
    while (!atomic_load_explicit(&r->start, memory_order_acquire)) rp_cpu_relax();
    /* Locals, not reads through r each item: r sits among the consumer's data. */
    queue *q = r->q;
    size_t per = r->per_producer, batch = r->batch;
    void *items[MAX_BATCH];
    uintptr_t base = a->id << SEQ_BITS;
    unsigned spins = 0;
    for (size_t i = 0; i < per;) {
        size_t k = batch;
        if (k > per - i) k = per - i;
        for (size_t j = 0; j < k; j++) items[j] = (void *)(base | (i + j));
        size_t done = q_push_n(q, items, k);
        if (done == 0) {
            rp_backoff(&spins, 64);
        } else {
            i += done;
            spins = 0;
        }
    }
    return NULL;
}

/* One round: items/s, or a negative value if the queue lost, duplicated or reordered items. */
static double one_round(queue *q, size_t nprod, size_t items, size_t push_batch, size_t pop_batch,
                        int pin)
{
    run r = { .q = q, .per_producer = items / nprod, .batch = push_batch };
    atomic_init(&r.start, 0);
    pthread_t t[MPSC_PRODUCERS];
    producer_arg args[MPSC_PRODUCERS];
    for (size_t p = 0; p < nprod; p++) {
        args[p] = (producer_arg){ &r, p, pin ? (int)(1 + p) : -1 };
        if (pthread_create(&t[p], NULL, producer, &args[p]) != 0) {
            fprintf(stderr, "bench_rings: pthread_create: %s\n", strerror(errno));
            exit(1);
        }
    }
    pin_to(pin ? 0 : -1);
    size_t total = r.per_producer * nprod, got = 0, bad = 0;
    uintptr_t next[MPSC_PRODUCERS] = { 0 };
    void *out[MAX_BATCH];
    unsigned spins = 0;
    atomic_store_explicit(&r.start, 1, memory_order_release);
    double t0 = rp_clock_seconds();
    while (got < total) {
        size_t n = q_pop_n(q, out, pop_batch);
        if (n == 0) {
            rp_backoff(&spins, 64);
            continue;
        }
        spins = 0;
        for (size_t j = 0; j < n; j++) {
            uintptr_t v = (uintptr_t)out[j];
            size_t p = (size_t)(v >> SEQ_BITS);
            if (p >= nprod || (v & (((uintptr_t)1 << SEQ_BITS) - 1)) != next[p]) {
                bad++;
                continue;
            }
            next[p]++;
        }
        got += n;
    }
    double t1 = rp_clock_seconds();
    for (size_t p = 0; p < nprod; p++) pthread_join(t[p], NULL);
    if (bad != 0) return -1.0;
    return (double)total / (t1 - t0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

typedef struct result {
    const char *name;
    const char *label;
    double ring, baseline;
} result;

static void format_rate(char *dst, size_t cap, double ops)
{
    if (ops >= 1e9)
        snprintf(dst, cap, "%.2f G", ops / 1e9);
    else if (ops >= 1e6)
        snprintf(dst, cap, "%.2f M", ops / 1e6);
    else
        snprintf(dst, cap, "%.0f ", ops);
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_rings [--json] [--verbose] [--rounds N] [--items N] "
                    "[--capacity N] [--batch N]\n");
    exit(2);
}

static size_t parse_size(const char *s, size_t lo, size_t hi)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi) usage();
    return (size_t)v;
}

int main(int argc, char **argv)
{
    int json = 0, verbose = 0;
    size_t rounds = DEFAULT_ROUNDS, items = DEFAULT_ITEMS, cap = DEFAULT_CAPACITY,
           batch = DEFAULT_BATCH;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--verbose") == 0)
            verbose = 1;
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = parse_size(argv[++i], 1, 101);
        else if (strcmp(argv[i], "--items") == 0 && i + 1 < argc)
            items = parse_size(argv[++i], 1000, (size_t)1 << 36);
        else if (strcmp(argv[i], "--capacity") == 0 && i + 1 < argc)
            cap = parse_size(argv[++i], 2, RP_SPSC_CAPACITY_MAX);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batch = parse_size(argv[++i], 2, MAX_BATCH);
        else
            usage();
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    items -= items % MPSC_PRODUCERS;

    queue *ring = aligned_alloc(alignof(queue), sizeof(queue));
    queue *base = aligned_alloc(alignof(queue), sizeof(queue));
    if (ring == NULL || base == NULL) return 1;
    memset(ring, 0, sizeof(*ring));
    memset(base, 0, sizeof(*base));
    base->kind = K_MUTEX;
    if (rp_spsc_new(cap, &ring->spsc) != 0 || rp_mpsc_new(cap, &ring->mpsc) != 0 ||
        mq_init(&base->mq, cap) != 0) {
        fprintf(stderr, "bench_rings: out of memory\n");
        return 1;
    }

    static const struct {
        const char *name, *label;
        enum kind kind;
        size_t nprod;
        int batched;
    } cases[] = {
        { "spsc_single", "SPSC, 1 item per call", K_SPSC, 1, 0 },
        { "spsc_batch", "SPSC, batched", K_SPSC, 1, 1 },
        { "mpsc_2p", "MPSC, 2 producers", K_MPSC, MPSC_PRODUCERS, 0 },
    };
    enum { NCASES = sizeof(cases) / sizeof(cases[0]) };
    result res[NCASES];
    double *rv = calloc(rounds, sizeof(double)), *bv = calloc(rounds, sizeof(double));
    if (rv == NULL || bv == NULL) return 1;

    if (!json) {
        printf("bench_rings: cross-thread queue throughput, %ld CPUs, capacity %zu, "
               "%zu items/round, batch %zu, median of %zu rounds\n",
               ncpu, cap, items, batch, rounds);
        printf("baseline: bounded ring under a pthread mutex (batched case locks once per "
               "batch)\n");
        printf("%-24s %14s %14s %8s\n", "case", "ringp2p ops/s", "mutex ops/s", "ratio");
    }
    int failed = 0;
    for (size_t c = 0; c < NCASES; c++) {
        ring->kind = cases[c].kind;
        size_t push_b = cases[c].batched ? batch : 1;
        size_t pop_b = (cases[c].batched || cases[c].kind == K_MPSC) ? batch : 1;
        int pin = ncpu >= (long)(cases[c].nprod + 1);
        for (size_t i = 0; i < rounds; i++) {
            rv[i] = one_round(ring, cases[c].nprod, items, push_b, pop_b, pin);
            bv[i] = one_round(base, cases[c].nprod, items, push_b, pop_b, pin);
            if (verbose)
                fprintf(stderr, "  %s round %zu: ringp2p %.0f ops/s, mutex %.0f ops/s\n",
                        cases[c].name, i + 1, rv[i], bv[i]);
            if (rv[i] < 0 || bv[i] < 0) {
                fprintf(stderr, "bench_rings: %s: %s queue lost or reordered items\n",
                        cases[c].name, rv[i] < 0 ? "ringp2p" : "mutex");
                failed = 1;
            }
        }
        res[c] = (result){ cases[c].name, cases[c].label, median(rv, rounds), median(bv, rounds) };
        if (!json) {
            char a[32], b[32];
            format_rate(a, sizeof(a), res[c].ring);
            format_rate(b, sizeof(b), res[c].baseline);
            printf("%-24s %14s %14s %7.2fx%s\n", res[c].label, a, b, res[c].ring / res[c].baseline,
                   pin ? "" : "  (unpinned: fewer CPUs than threads)");
            fflush(stdout);
        }
    }
    if (json) {
        printf("{\"bench\":\"rings\",\"cpus\":%ld,\"capacity\":%zu,\"items\":%zu,\"batch\":%zu,"
               "\"rounds\":%zu,\"ok\":%s,\"results\":[",
               ncpu, cap, items, batch, rounds, failed ? "false" : "true");
        for (size_t c = 0; c < NCASES; c++)
            printf("%s{\"name\":\"%s\",\"ringp2p_ops_per_s\":%.0f,\"mutex_ops_per_s\":%.0f,"
                   "\"ratio\":%.3f}",
                   c ? "," : "", res[c].name, res[c].ring, res[c].baseline,
                   res[c].ring / res[c].baseline);
        printf("]}\n");
    } else {
        printf("reproduce: %s%s\n", argv[0], failed ? "  (FAILED: see errors above)" : "");
    }
    free(rv);
    free(bv);
    rp_spsc_free(ring->spsc);
    rp_mpsc_free(ring->mpsc);
    free(base->mq.slots);
    pthread_mutex_destroy(&base->mq.mu);
    free(ring);
    free(base);
    return failed;
}
