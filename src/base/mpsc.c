#include "base/mpsc.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "ringp2p/error.h"

/*
 * A slot's seq says what may happen to it next, for position p mapping to it:
 * seq == p      free for the producer that claims p;
 * seq == p + 1  filled, ready for the consumer;
 * seq == p + capacity  drained: free for position p + capacity.
 * The capacity must be at least 2, or "filled at p" and "free at p + 1" would
 * be the same number.
 */
typedef struct mpsc_slot {
    atomic_size_t seq;
    void *item;
} mpsc_slot;

struct rp_mpsc {
    alignas(RP_FALSE_SHARING_SIZE) size_t mask;
    size_t capacity;
    mpsc_slot *slots;

    alignas(RP_FALSE_SHARING_SIZE) atomic_size_t tail; /* next position to claim (producers) */

    alignas(RP_FALSE_SHARING_SIZE) size_t head; /* next position to drain (consumer only) */
};

int rp_mpsc_new(size_t capacity, rp_mpsc **out)
{
    if (capacity == 0 || capacity > RP_MPSC_CAPACITY_MAX) return RINGP2P_EINVAL;
    size_t cap = 2;
    while (cap < capacity) cap <<= 1;
    rp_mpsc *r = aligned_alloc(RP_FALSE_SHARING_SIZE, sizeof(*r));
    if (r == NULL) return RINGP2P_ENOMEM;
    size_t bytes = cap * sizeof(mpsc_slot);
    bytes = (bytes + RP_FALSE_SHARING_SIZE - 1) & ~(size_t)(RP_FALSE_SHARING_SIZE - 1);
    r->slots = aligned_alloc(RP_FALSE_SHARING_SIZE, bytes);
    if (r->slots == NULL) {
        free(r);
        return RINGP2P_ENOMEM;
    }
    for (size_t i = 0; i < cap; i++) {
        atomic_init(&r->slots[i].seq, i);
        r->slots[i].item = NULL;
    }
    r->mask = cap - 1;
    r->capacity = cap;
    atomic_init(&r->tail, 0);
    r->head = 0;
    *out = r;
    return 0;
}

void rp_mpsc_free(rp_mpsc *r)
{
    if (r == NULL) return;
    free(r->slots);
    free(r);
}

size_t rp_mpsc_capacity(const rp_mpsc *r)
{
    return r->capacity;
}

int rp_mpsc_push(rp_mpsc *r, void *item)
{
    /*
     * The tail only hands out positions; the slot's seq carries the
     * synchronisation, so the counter itself can be relaxed.
     */
    size_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
    mpsc_slot *slot;
    for (;;) {
        slot = &r->slots[pos & r->mask];
        /* Acquire pairs with the consumer's release: its read of the old item is done. */
        size_t seq = atomic_load_explicit(&slot->seq, memory_order_acquire);
        intptr_t diff = (intptr_t)(seq - pos);
        if (diff == 0) {
            if (atomic_compare_exchange_weak_explicit(&r->tail, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed))
                break;
            /* Lost the race: pos now holds the current tail. */
        } else if (diff < 0) {
            /* The slot still holds the item from one lap ago: full. */
            return RINGP2P_EAGAIN;
        } else {
            /* Another producer claimed pos already; catch up. */
            pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
        }
    }
    slot->item = item;
    atomic_store_explicit(&slot->seq, pos + 1, memory_order_release);
    return 0;
}

int rp_mpsc_pop(rp_mpsc *r, void **out)
{
    return rp_mpsc_pop_n(r, out, 1) == 1 ? 0 : RINGP2P_EAGAIN;
}

size_t rp_mpsc_pop_n(rp_mpsc *r, void **out, size_t max)
{
    size_t pos = r->head;
    size_t n = 0;
    while (n < max) {
        mpsc_slot *slot = &r->slots[pos & r->mask];
        /* Acquire pairs with the producer's release: the item is written. */
        if (atomic_load_explicit(&slot->seq, memory_order_acquire) != pos + 1) break;
        out[n++] = slot->item;
        atomic_store_explicit(&slot->seq, pos + r->capacity, memory_order_release);
        pos++;
    }
    r->head = pos;
    return n;
}
