/*
 * Bounded lock-free multi-producer single-consumer ring of pointers.
 *
 * A shard's inbox for threads outside the shards: any number of threads push
 * (an embedding application's workers posting work to a shard), one thread,
 * the shard, pops. It is Vyukov's bounded MPMC queue with the consumer side
 * specialised for a single thread: each slot carries a sequence number that
 * says whose turn it is, producers claim positions with one CAS on a shared
 * counter, and the consumer needs no atomic read-modify-write at all.
 *
 * Push never blocks and never allocates: a full ring is RINGP2P_EAGAIN.
 * Order: items from one producer pop in the order it pushed them; items from
 * different producers interleave in the order their positions were claimed.
 * A producer preempted between claiming a position and filling it holds back
 * the consumer at that position (pop says empty) until it resumes; nothing
 * is lost or reordered.
 */
#ifndef RP_BASE_MPSC_H
#define RP_BASE_MPSC_H

#include <stddef.h>

#ifndef RP_FALSE_SHARING_SIZE
#define RP_FALSE_SHARING_SIZE 128 /* as in spsc.h: adjacent-line prefetch pulls line pairs */
#endif

/* Largest capacity (slots of 16 bytes). */
#define RP_MPSC_CAPACITY_MAX ((size_t)1 << 24)

typedef struct rp_mpsc rp_mpsc;

/*
 * Creates a ring with room for `capacity` pointers, rounded up to a power of
 * two, at least 2. On success *out is owned by the caller (rp_mpsc_free).
 * Errors: RINGP2P_EINVAL (0 or above RP_MPSC_CAPACITY_MAX), RINGP2P_ENOMEM.
 */
int rp_mpsc_new(size_t capacity, rp_mpsc **out);

/* Frees the ring (not the pointers still in it). No thread may be using it. */
void rp_mpsc_free(rp_mpsc *r);

size_t rp_mpsc_capacity(const rp_mpsc *r);

/*
 * Any thread. Appends `item` (the pointer is copied; what it points to now
 * belongs to the consumer until the protocol of the caller says otherwise).
 * 0, or RINGP2P_EAGAIN when the ring is full.
 */
int rp_mpsc_push(rp_mpsc *r, void *item);

/* Consumer only. 0 and *out set, or RINGP2P_EAGAIN when nothing is ready. */
int rp_mpsc_pop(rp_mpsc *r, void **out);

/* Consumer only. Pops up to `max` ready pointers into `out`; returns the count. */
size_t rp_mpsc_pop_n(rp_mpsc *r, void **out, size_t max);

#endif
