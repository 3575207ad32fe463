#include "base/spsc.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "ringp2p/error.h"

struct rp_spsc {
    /* Read-only after creation: shared by both sides without contention. */
    alignas(RP_FALSE_SHARING_SIZE) size_t mask;
    size_t capacity;

    /* Written by the producer. */
    alignas(RP_FALSE_SHARING_SIZE) atomic_size_t head; /* next slot to fill */
    size_t tail_cache;                                 /* producer's last view of tail */

    /* Written by the consumer. */
    alignas(RP_FALSE_SHARING_SIZE) atomic_size_t tail; /* next slot to drain */
    size_t head_cache;                                 /* consumer's last view of head */

    alignas(RP_FALSE_SHARING_SIZE) void *slots[];
};

int rp_spsc_new(size_t capacity, rp_spsc **out)
{
    if (capacity == 0 || capacity > RP_SPSC_CAPACITY_MAX) return RINGP2P_EINVAL;
    size_t cap = 1;
    while (cap < capacity) cap <<= 1;
    size_t bytes = sizeof(rp_spsc) + cap * sizeof(void *);
    /* aligned_alloc wants a multiple of the alignment. */
    bytes = (bytes + RP_FALSE_SHARING_SIZE - 1) & ~(size_t)(RP_FALSE_SHARING_SIZE - 1);
    rp_spsc *r = aligned_alloc(RP_FALSE_SHARING_SIZE, bytes);
    if (r == NULL) return RINGP2P_ENOMEM;
    memset(r, 0, bytes);
    r->mask = cap - 1;
    r->capacity = cap;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    r->tail_cache = 0;
    r->head_cache = 0;
    *out = r;
    return 0;
}

void rp_spsc_free(rp_spsc *r)
{
    free(r);
}

size_t rp_spsc_capacity(const rp_spsc *r)
{
    return r->capacity;
}

/*
 * Room the producer may fill from `head`, refreshing its view of the tail only
 * when the cached one cannot satisfy `want`. The acquire pairs with the
 * consumer's release of tail: slots it has drained are free to overwrite.
 */
static size_t producer_room(rp_spsc *r, size_t head, size_t want)
{
    size_t room = r->capacity - (head - r->tail_cache);
    if (room < want) {
        r->tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
        room = r->capacity - (head - r->tail_cache);
    }
    return room;
}

/* Items the consumer may drain from `tail`; the acquire pairs with the producer's release. */
static size_t consumer_avail(rp_spsc *r, size_t tail, size_t want)
{
    size_t avail = r->head_cache - tail;
    if (avail < want) {
        r->head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
        avail = r->head_cache - tail;
    }
    return avail;
}

int rp_spsc_push(rp_spsc *r, void *item)
{
    /* Only this thread writes head, so a relaxed read of it is exact. */
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (producer_room(r, head, 1) == 0) return RINGP2P_EAGAIN;
    r->slots[head & r->mask] = item;
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
    return 0;
}

size_t rp_spsc_push_n(rp_spsc *r, void *const *items, size_t n)
{
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t room = producer_room(r, head, n);
    if (n > room) n = room;
    if (n == 0) return 0;
    size_t at = head & r->mask;
    size_t first = r->capacity - at; /* slots before the wrap */
    if (first > n) first = n;
    memcpy(&r->slots[at], items, first * sizeof(void *));
    memcpy(&r->slots[0], items + first, (n - first) * sizeof(void *));
    atomic_store_explicit(&r->head, head + n, memory_order_release);
    return n;
}

int rp_spsc_pop(rp_spsc *r, void **out)
{
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (consumer_avail(r, tail, 1) == 0) return RINGP2P_EAGAIN;
    *out = r->slots[tail & r->mask];
    /* Release: our read of the slot happens before the producer may overwrite it. */
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    return 0;
}

size_t rp_spsc_pop_n(rp_spsc *r, void **out, size_t max)
{
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t n = consumer_avail(r, tail, max);
    if (n > max) n = max;
    if (n == 0) return 0;
    size_t at = tail & r->mask;
    size_t first = r->capacity - at;
    if (first > n) first = n;
    memcpy(out, &r->slots[at], first * sizeof(void *));
    memcpy(out + first, &r->slots[0], (n - first) * sizeof(void *));
    atomic_store_explicit(&r->tail, tail + n, memory_order_release);
    return n;
}

size_t rp_spsc_size(const rp_spsc *r)
{
    /* Tail first: head never falls behind a tail read earlier, so the difference is not negative.
     */
    size_t tail = atomic_load_explicit(&((rp_spsc *)r)->tail, memory_order_acquire);
    size_t head = atomic_load_explicit(&((rp_spsc *)r)->head, memory_order_acquire);
    size_t n = head - tail;
    return n > r->capacity ? r->capacity : n;
}
