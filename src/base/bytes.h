/*
 * Byte views and bounded writers.
 *
 * rp_iov is laid out exactly like struct iovec, so arrays of them go straight
 * to writev/sendmsg/io_uring. rp_wbuf is an encoder's output cursor into a
 * caller-owned buffer: writes past `cap` are counted but not stored, so an
 * encoder runs to the end once and reports RINGP2P_ENOBUF (with the size it
 * needed in `len`) instead of overflowing.
 */
#ifndef RP_BASE_BYTES_H
#define RP_BASE_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "ringp2p/error.h"

typedef struct rp_iov {
    void *base;
    size_t len;
} rp_iov;

_Static_assert(sizeof(rp_iov) == sizeof(struct iovec), "rp_iov must match struct iovec");
_Static_assert(offsetof(rp_iov, base) == offsetof(struct iovec, iov_base), "iov_base");
_Static_assert(offsetof(rp_iov, len) == offsetof(struct iovec, iov_len), "iov_len");

static inline rp_iov rp_iov_make(const void *base, size_t len)
{
    rp_iov v = { (void *)(uintptr_t)base, len };
    return v;
}

static inline size_t rp_iov_total(const rp_iov *v, size_t n)
{
    size_t t = 0;
    for (size_t i = 0; i < n; i++) t += v[i].len;
    return t;
}

/* Output cursor into a caller buffer; `base` may be NULL with cap 0 to measure. */
typedef struct rp_wbuf {
    uint8_t *base;
    size_t cap;
    size_t len;
} rp_wbuf;

static inline rp_wbuf rp_wbuf_make(void *base, size_t cap)
{
    rp_wbuf w = { (uint8_t *)base, cap, 0 };
    return w;
}

static inline void rp_wbuf_put(rp_wbuf *w, const void *src, size_t n)
{
    if (n != 0 && w->len <= w->cap && n <= w->cap - w->len) memcpy(w->base + w->len, src, n);
    w->len += n;
}

static inline void rp_wbuf_byte(rp_wbuf *w, uint8_t b)
{
    if (w->len < w->cap) w->base[w->len] = b;
    w->len++;
}

static inline int rp_wbuf_ok(const rp_wbuf *w)
{
    return w->len <= w->cap;
}

/* The byte count written, or RINGP2P_ENOBUF if anything did not fit. */
static inline ssize_t rp_wbuf_result(const rp_wbuf *w)
{
    return rp_wbuf_ok(w) ? (ssize_t)w->len : RINGP2P_ENOBUF;
}

#endif
