#include "base/pool.h"

#include <assert.h>
#include <mimalloc.h>
#include <pthread.h>
#include <stdlib.h>

#include "ringp2p/error.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RP_POOL_ASAN 1
#endif
#endif
#if !defined(RP_POOL_ASAN) && defined(__SANITIZE_ADDRESS__)
#define RP_POOL_ASAN 1
#endif

#ifdef RP_POOL_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

struct rp_pool {
    mi_heap_t *heap;
    pthread_t owner;
    size_t buf_size;
    size_t align;
    size_t max_cached;
    size_t ncached;
    /*
     * The free list is an array beside the buffers rather than links inside
     * them, so a cached buffer holds no pool state and can be poisoned whole.
     */
    void **cache;
    rp_pool_stats st;
};

static int is_owner(const rp_pool *pool)
{
    return pthread_equal(pool->owner, pthread_self());
}

int rp_pool_new_aligned(size_t buf_size, size_t align, size_t max_cached, rp_pool **out)
{
    if (buf_size == 0 || buf_size > RP_POOL_BUF_MAX) return RINGP2P_EINVAL;
    if (align < sizeof(void *) || align > RP_POOL_ALIGN_MAX || (align & (align - 1)) != 0)
        return RINGP2P_EINVAL;
    if (max_cached > RP_POOL_CACHED_MAX) return RINGP2P_EINVAL;

    /* Pool bookkeeping lives in the system heap so a leaked pool shows up under LeakSanitizer. */
    rp_pool *pool = calloc(1, sizeof(*pool));
    if (pool == NULL) return RINGP2P_ENOMEM;
    pool->cache = calloc(max_cached != 0 ? max_cached : 1, sizeof(void *));
    pool->heap = mi_heap_new();
    if (pool->cache == NULL || pool->heap == NULL) {
        if (pool->heap != NULL) mi_heap_delete(pool->heap);
        free(pool->cache);
        free(pool);
        return RINGP2P_ENOMEM;
    }
    pool->owner = pthread_self();
    pool->buf_size = buf_size;
    pool->align = align;
    pool->max_cached = max_cached;
    *out = pool;
    return 0;
}

int rp_pool_new(size_t buf_size, size_t max_cached, rp_pool **out)
{
    return rp_pool_new_aligned(buf_size, RP_POOL_DEFAULT_ALIGN, max_cached, out);
}

void *rp_pool_get(rp_pool *pool)
{
    assert(is_owner(pool) && "rp_pool_get off the pool's owner thread");
    void *buf;
    if (pool->ncached != 0) {
        buf = pool->cache[--pool->ncached];
        UNPOISON(buf, pool->buf_size);
    } else {
        buf = mi_heap_malloc_aligned(pool->heap, pool->buf_size, pool->align);
        if (buf == NULL) {
            pool->st.alloc_fails++;
            return NULL;
        }
        pool->st.allocs++;
    }
    pool->st.gets++;
    pool->st.outstanding++;
    return buf;
}

void rp_pool_put(rp_pool *pool, void *buf)
{
    if (buf == NULL) return;
    assert(is_owner(pool) && "rp_pool_put off the pool's owner thread");
    assert(mi_heap_contains_block(pool->heap, buf) && "rp_pool_put of a buffer from another pool");
    assert(pool->st.outstanding > 0 && "rp_pool_put of more buffers than were got");
#ifdef RP_POOL_ASAN
    /* A poisoned buffer is already cached: read it so ASan reports the double put here. */
    if (__asan_address_is_poisoned(buf)) (void)*(volatile char *)buf;
#endif
    pool->st.puts++;
    pool->st.outstanding--;
    if (pool->ncached < pool->max_cached) {
        POISON(buf, pool->buf_size);
        pool->cache[pool->ncached++] = buf;
    } else {
        mi_free(buf);
        pool->st.frees++;
    }
}

size_t rp_pool_free(rp_pool *pool)
{
    if (pool == NULL) return 0;
    assert(is_owner(pool) && "rp_pool_free off the pool's owner thread");
    for (size_t i = 0; i < pool->ncached; i++) {
        /* mimalloc writes its free list into freed blocks. */
        UNPOISON(pool->cache[i], pool->buf_size);
        mi_free(pool->cache[i]);
    }
    size_t outstanding = pool->st.outstanding;
    /* Delete, not destroy: blocks still held elsewhere migrate to the default heap and stay valid.
     */
    mi_heap_delete(pool->heap);
    free(pool->cache);
    free(pool);
    return outstanding;
}

void rp_pool_orphan_free(void *buf)
{
    mi_free(buf);
}

size_t rp_pool_buf_size(const rp_pool *pool)
{
    return pool->buf_size;
}

size_t rp_pool_align(const rp_pool *pool)
{
    return pool->align;
}

void rp_pool_get_stats(const rp_pool *pool, rp_pool_stats *out)
{
    *out = pool->st;
    out->cached = pool->ncached;
}
