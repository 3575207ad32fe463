/*
 * Bounded lock-free single-producer single-consumer ring of pointers.
 *
 * The cross-shard queue (DESIGN.md section 4, after Seastar's smp queues):
 * exactly one thread pushes and exactly one thread pops, for the life of the
 * ring. Items are `void *` messages; the ring copies the pointers, never the
 * messages, and never frees them (the sender frees what it sent, usually
 * when the receiver sends it back on the reverse ring).
 *
 * Indices run freely and are masked on use, so all `capacity` slots are
 * usable. The producer's and the consumer's index sit on separate cache
 * lines, each beside a private copy of the other side's index that is only
 * refreshed when the copy says full (producer) or empty (consumer); in the
 * steady state each side touches the other's line once per batch, not once
 * per item. Nothing blocks or allocates after rp_spsc_new.
 */
#ifndef RP_BASE_SPSC_H
#define RP_BASE_SPSC_H

#include <stddef.h>

/*
 * Separation of data written by different threads. 128 rather than the
 * 64-byte line because Intel's adjacent-line prefetcher pulls lines in pairs.
 */
#ifndef RP_FALSE_SHARING_SIZE
#define RP_FALSE_SHARING_SIZE 128
#endif

/* Largest capacity (slots); a ring this size is 128 MiB of pointers. */
#define RP_SPSC_CAPACITY_MAX ((size_t)1 << 24)

typedef struct rp_spsc rp_spsc;

/*
 * Creates a ring with room for `capacity` pointers, rounded up to a power of
 * two (rp_spsc_capacity tells the result). On success *out is owned by the
 * caller (rp_spsc_free). Errors: RINGP2P_EINVAL (0 or above
 * RP_SPSC_CAPACITY_MAX), RINGP2P_ENOMEM.
 */
int rp_spsc_new(size_t capacity, rp_spsc **out);

/* Frees the ring (not the pointers still in it). No thread may be using it. */
void rp_spsc_free(rp_spsc *r);

size_t rp_spsc_capacity(const rp_spsc *r);

/* Producer only. 0, or RINGP2P_EAGAIN when the ring is full. */
int rp_spsc_push(rp_spsc *r, void *item);

/*
 * Producer only. Pushes the first k of the n pointers in `items` (read, not
 * retained), as many as fit, and publishes them together; returns k.
 */
size_t rp_spsc_push_n(rp_spsc *r, void *const *items, size_t n);

/* Consumer only. 0 and *out set, or RINGP2P_EAGAIN when the ring is empty. */
int rp_spsc_pop(rp_spsc *r, void **out);

/* Consumer only. Pops up to `max` pointers in FIFO order into `out`; returns the count. */
size_t rp_spsc_pop_n(rp_spsc *r, void **out, size_t max);

/*
 * Items in the ring as seen from the calling thread. Exact for the producer
 * when the consumer is idle and vice versa; otherwise a snapshot that may be
 * stale by the time it returns. Safe from either side.
 */
size_t rp_spsc_size(const rp_spsc *r);

#endif
