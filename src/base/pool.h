/*
 * Pools of fixed-size buffers, one per shard and buffer size.
 *
 * Ownership rule: a pool belongs to the thread that created it (its shard).
 * rp_pool_new, rp_pool_get, rp_pool_put and rp_pool_free must all run on
 * that thread, because the pool allocates from its own mimalloc heap, and a
 * mimalloc heap may only allocate on the thread that created it; the free
 * list is not synchronised either. A buffer may travel to another thread
 * (a cross-shard message, the kernel for a zero-copy send), but it comes
 * back to the owner to be put: the sender frees what it sent. Calls from
 * another thread abort (assert). Free the pool before its thread exits.
 *
 * Reuse is LIFO, so the buffer put last (still warm in cache) is got first.
 * At most `max_cached` buffers wait for reuse; puts beyond that return the
 * memory to the heap, which bounds what an idle shard holds.
 *
 * Under AddressSanitizer a cached buffer is poisoned: touching a buffer after
 * putting it, or putting it twice, is reported at once.
 */
#ifndef RP_BASE_POOL_H
#define RP_BASE_POOL_H

#include <stddef.h>
#include <stdint.h>

/* Cache-line alignment by default; page alignment is available for registered/zero-copy I/O. */
#define RP_POOL_DEFAULT_ALIGN 64
/* Largest alignment accepted (a huge page would be an allocator's job, not a pool's). */
#define RP_POOL_ALIGN_MAX 4096
/* Largest buffer a pool hands out; bigger objects are not pool material. */
#define RP_POOL_BUF_MAX ((size_t)64 << 20)
/* Largest free list; its array of pointers is allocated up front. */
#define RP_POOL_CACHED_MAX ((size_t)1 << 20)

typedef struct rp_pool rp_pool;

typedef struct rp_pool_stats {
    uint64_t gets;        /* rp_pool_get calls that returned a buffer */
    uint64_t puts;        /* rp_pool_put calls */
    uint64_t allocs;      /* buffers taken from the heap (gets the free list could not serve) */
    uint64_t frees;       /* buffers returned to the heap because the free list was full */
    uint64_t alloc_fails; /* gets that returned NULL */
    size_t outstanding;   /* got and not yet put */
    size_t cached;        /* waiting in the free list */
} rp_pool_stats;

/*
 * Creates a pool of `buf_size`-byte buffers aligned to RP_POOL_DEFAULT_ALIGN,
 * keeping at most `max_cached` (0 allowed: no reuse) for reuse. Call it on
 * the thread that will own the pool. On success *out is owned by the caller
 * (rp_pool_free). Errors: RINGP2P_EINVAL (size 0 or above RP_POOL_BUF_MAX,
 * max_cached above RP_POOL_CACHED_MAX), RINGP2P_ENOMEM.
 */
int rp_pool_new(size_t buf_size, size_t max_cached, rp_pool **out);

/* As rp_pool_new with alignment `align`: a power of two from sizeof(void *) to RP_POOL_ALIGN_MAX.
 */
int rp_pool_new_aligned(size_t buf_size, size_t align, size_t max_cached, rp_pool **out);

/*
 * A buffer of at least rp_pool_buf_size bytes, contents undefined, or NULL if
 * memory is exhausted. The caller owns it until it hands it to rp_pool_put on
 * the owner thread.
 */
void *rp_pool_get(rp_pool *pool);

/*
 * Returns `buf` (from rp_pool_get of this same pool) for reuse; the caller
 * must not touch it afterwards. Putting NULL does nothing.
 */
void rp_pool_put(rp_pool *pool, void *buf);

/*
 * Frees the pool and its cached buffers. Returns the number of buffers still
 * outstanding: 0 is a clean shutdown. Outstanding buffers are leaked on
 * purpose rather than freed under their holders (one may still be in the
 * kernel's hands for a zero-copy send): they stay valid, the memory moves to
 * the thread's default mimalloc heap, and their holders must release them
 * with rp_pool_orphan_free, never rp_pool_put. NULL returns 0.
 */
size_t rp_pool_free(rp_pool *pool);

/* Releases a buffer that was outstanding when its pool was freed. Any thread. */
void rp_pool_orphan_free(void *buf);

size_t rp_pool_buf_size(const rp_pool *pool);
size_t rp_pool_align(const rp_pool *pool);
void rp_pool_get_stats(const rp_pool *pool, rp_pool_stats *out);

#endif
