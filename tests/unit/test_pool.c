#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/pool.h"
#include "ringp2p/error.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#if !defined(TEST_ASAN) && defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#endif

static rp_pool_stats stats_of(const rp_pool *p)
{
    rp_pool_stats st;
    rp_pool_get_stats(p, &st);
    return st;
}

Test(pool, rejects_bad_arguments)
{
    static const struct {
        size_t size, align, cached;
    } bad[] = {
        { 0, 64, 4 },  { RP_POOL_BUF_MAX + 1, 64, 4 },   { 64, 0, 4 },
        { 64, 4, 4 }, /* below pointer size */
        { 64, 48, 4 }, { 64, RP_POOL_ALIGN_MAX * 2, 4 }, { 64, 64, RP_POOL_CACHED_MAX + 1 },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rp_pool *p = (rp_pool *)(uintptr_t)1;
        cr_assert_eq(rp_pool_new_aligned(bad[i].size, bad[i].align, bad[i].cached, &p),
                     RINGP2P_EINVAL, "case %zu", i);
        cr_assert_eq(p, (rp_pool *)(uintptr_t)1, "out untouched on error");
    }
    rp_pool *p;
    cr_assert_eq(rp_pool_new(0, 1, &p), RINGP2P_EINVAL);
    cr_assert_eq(rp_pool_free(NULL), 0);
}

Test(pool, reuse_is_lifo_and_counted)
{
    rp_pool *p;
    cr_assert_eq(rp_pool_new(1500, 8, &p), 0);
    cr_assert_eq(rp_pool_buf_size(p), 1500);
    cr_assert_eq(rp_pool_align(p), RP_POOL_DEFAULT_ALIGN);

    void *a = rp_pool_get(p), *b = rp_pool_get(p);
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    cr_assert_neq(a, b);
    memset(a, 0xaa, 1500);
    memset(b, 0xbb, 1500);
    rp_pool_stats st = stats_of(p);
    cr_assert_eq(st.gets, 2);
    cr_assert_eq(st.allocs, 2);
    cr_assert_eq(st.outstanding, 2);
    cr_assert_eq(st.cached, 0);

    rp_pool_put(p, a);
    rp_pool_put(p, b);
    st = stats_of(p);
    cr_assert_eq(st.puts, 2);
    cr_assert_eq(st.outstanding, 0);
    cr_assert_eq(st.cached, 2);
    cr_assert_eq(st.frees, 0);

    cr_assert_eq(rp_pool_get(p), b, "last put is first got");
    cr_assert_eq(rp_pool_get(p), a);
    st = stats_of(p);
    cr_assert_eq(st.gets, 4);
    cr_assert_eq(st.allocs, 2, "reused buffers are not allocated again");
    cr_assert_eq(st.outstanding, 2);
    cr_assert_eq(st.cached, 0);

    rp_pool_put(p, NULL);
    cr_assert_eq(stats_of(p).puts, 2, "putting NULL is a no-op");
    rp_pool_put(p, a);
    rp_pool_put(p, b);
    cr_assert_eq(rp_pool_free(p), 0);
}

Test(pool, free_list_is_bounded)
{
    static const size_t limits[] = { 0, 1, 3 };
    for (size_t li = 0; li < 3; li++) {
        size_t max = limits[li];
        rp_pool *p;
        cr_assert_eq(rp_pool_new(256, max, &p), 0);
        void *bufs[6];
        for (int i = 0; i < 6; i++) cr_assert_not_null(bufs[i] = rp_pool_get(p));
        for (int i = 0; i < 6; i++) rp_pool_put(p, bufs[i]);
        rp_pool_stats st = stats_of(p);
        cr_assert_eq(st.cached, max, "max_cached %zu", max);
        cr_assert_eq(st.frees, 6 - max);
        for (int i = 0; i < 6; i++) bufs[i] = rp_pool_get(p);
        st = stats_of(p);
        cr_assert_eq(st.allocs, 6 + (6 - max), "only the cached ones are reused");
        for (int i = 0; i < 6; i++) rp_pool_put(p, bufs[i]);
        cr_assert_eq(rp_pool_free(p), 0);
    }
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

Test(pool, alignment_and_disjoint_buffers)
{
    static const size_t aligns[] = { 8, 16, 64, 512, 4096 };
    static const size_t sizes[] = { 1, 63, 1000, 9000, 65536 };
    enum { N = 40 };
    for (size_t ai = 0; ai < 5; ai++) {
        for (size_t si = 0; si < 5; si++) {
            rp_pool *p;
            cr_assert_eq(rp_pool_new_aligned(sizes[si], aligns[ai], N, &p), 0);
            uintptr_t got[N];
            for (int i = 0; i < N; i++) {
                void *b = rp_pool_get(p);
                cr_assert_not_null(b);
                cr_assert_eq((uintptr_t)b % aligns[ai], 0, "align %zu size %zu: %p", aligns[ai],
                             sizes[si], b);
                memset(b, i, sizes[si]);
                got[i] = (uintptr_t)b;
            }
            qsort(got, N, sizeof(got[0]), cmp_ptr);
            for (int i = 1; i < N; i++)
                cr_assert_geq(got[i] - got[i - 1], sizes[si], "buffers overlap");
            for (int i = 0; i < N; i++) rp_pool_put(p, (void *)got[i]);
            cr_assert_eq(rp_pool_free(p), 0);
        }
    }
    rp_pool *p;
    cr_assert_eq(rp_pool_new(100, 1, &p), 0);
    void *b = rp_pool_get(p);
    cr_assert_eq((uintptr_t)b % 64, 0, "default alignment is a cache line");
    rp_pool_put(p, b);
    rp_pool_free(p);
}

Test(pool, largest_buffer)
{
    rp_pool *p;
    cr_assert_eq(rp_pool_new(RP_POOL_BUF_MAX, 1, &p), 0);
    uint8_t *b = rp_pool_get(p);
    cr_assert_not_null(b);
    b[0] = 1;
    b[RP_POOL_BUF_MAX - 1] = 2;
    rp_pool_put(p, b);
    cr_assert_eq(rp_pool_get(p), b);
    rp_pool_put(p, b);
    cr_assert_eq(rp_pool_free(p), 0);
}

Test(pool, outstanding_buffers_reported_at_free)
{
    rp_pool *p;
    cr_assert_eq(rp_pool_new(4096, 4, &p), 0);
    uint8_t *a = rp_pool_get(p), *b = rp_pool_get(p), *c = rp_pool_get(p);
    rp_pool_put(p, b);
    memset(a, 0x11, 4096);
    cr_assert_eq(stats_of(p).outstanding, 2);
    cr_assert_eq(rp_pool_free(p), 2, "two buffers never came back");
    /* The stragglers stay valid after the pool is gone (e.g. in flight in a zero-copy send). */
    cr_assert_eq(a[4095], 0x11);
    memset(c, 0x22, 4096);
    rp_pool_orphan_free(a);
    rp_pool_orphan_free(c);
}

static void *get_from_other_thread(void *arg)
{
    return rp_pool_get(arg);
}

Test(pool, other_thread_use_aborts, .signal = SIGABRT, .init = cr_redirect_stderr)
{
    rp_pool *p;
    cr_assert_eq(rp_pool_new(64, 1, &p), 0);
    pthread_t t;
    pthread_create(&t, NULL, get_from_other_thread, p);
    pthread_join(t, NULL);
    cr_assert_fail("rp_pool_get from a thread that does not own the pool was not caught");
}

Test(pool, put_into_wrong_pool_aborts, .signal = SIGABRT, .init = cr_redirect_stderr)
{
    rp_pool *p, *q;
    cr_assert_eq(rp_pool_new(64, 1, &p), 0);
    cr_assert_eq(rp_pool_new(64, 1, &q), 0);
    void *b = rp_pool_get(p);
    void *c = rp_pool_get(q);
    (void)c; /* q has a buffer out, so its outstanding count alone cannot tell */
    rp_pool_put(q, b);
    cr_assert_fail("putting a buffer into another pool was not caught");
}

#ifdef TEST_ASAN
/* ASan reports and exits with status 1 (the unit target runs with abort_on_error=0). */
Test(pool, use_after_put_caught_by_asan, .exit_code = 1, .init = cr_redirect_stderr)
{
    rp_pool *p;
    cr_assert_eq(rp_pool_new(128, 4, &p), 0);
    volatile uint8_t *b = rp_pool_get(p);
    b[100] = 1;
    rp_pool_put(p, (void *)b);
    b[100] = 2;
    cr_assert_fail("write to a cached buffer was not caught");
}

Test(pool, double_put_caught_by_asan, .exit_code = 1, .init = cr_redirect_stderr)
{
    rp_pool *p;
    cr_assert_eq(rp_pool_new(128, 4, &p), 0);
    void *a = rp_pool_get(p), *b = rp_pool_get(p);
    (void)b; /* still outstanding, so the count alone cannot tell */
    rp_pool_put(p, a);
    rp_pool_put(p, a);
    cr_assert_fail("double put was not caught");
}

Test(pool, got_buffer_is_unpoisoned)
{
    rp_pool *p;
    cr_assert_eq(rp_pool_new(200, 4, &p), 0);
    uint8_t *b = rp_pool_get(p);
    rp_pool_put(p, b);
    cr_assert_eq(rp_pool_get(p), b);
    memset(b, 0x5a, 200); /* whole buffer writable again after reuse */
    rp_pool_put(p, b);
    cr_assert_eq(rp_pool_free(p), 0);
}
#endif
