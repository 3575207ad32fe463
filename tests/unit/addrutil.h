/*
 * Helpers shared by the sans-IO protocol tests (AutoNAT, DCUtR, relay): peer
 * IDs and binary multiaddrs from text, views compared with bytes, and NAT
 * addresses.
 */
#ifndef RP_TESTS_ADDRUTIL_H
#define RP_TESTS_ADDRUTIL_H

#include <criterion/criterion.h>
#include <stdbool.h>
#include <string.h>

#include "multiformats/multiaddr.h"
#include "protocols/nataddr.h"
#include "ringp2p/key.h"

/* The peer ID with text `s`. */
static inline ringp2p_peer_id pid(const char *s)
{
    ringp2p_peer_id id;
    ringp2p_errinfo ei = { 0 };
    cr_assert_eq(ringp2p_peer_id_parse(s, strlen(s), &id, &ei), 0, "%s: %s", s, ei.msg);
    return id;
}

/* Binary multiaddrs parsed from text, kept in an arena per test (zero it first). */
typedef struct arena {
    uint8_t buf[16384];
    size_t used;
} arena;

static inline rp_iov ma(arena *a, const char *text)
{
    ringp2p_errinfo ei = { 0 };
    ssize_t n =
        rp_maddr_from_text(text, strlen(text), a->buf + a->used, sizeof(a->buf) - a->used, &ei);
    cr_assert_gt(n, 0, "%s: %s", text, ei.msg);
    rp_iov v = rp_iov_make(a->buf + a->used, (size_t)n);
    a->used += (size_t)n;
    return v;
}

/* Whether the view `v` is set and holds the n bytes at p. */
static inline bool iov_is(rp_iov v, const void *p, size_t n)
{
    return v.base != NULL && v.len == n && (n == 0 || memcmp(v.base, p, n) == 0);
}

static inline bool nat_is(const rp_nataddr *x, rp_iov v)
{
    return x->len == v.len && memcmp(x->bytes, v.base, v.len) == 0;
}

/* The NAT address of a TCP multiaddr (which must be one). */
static inline rp_nataddr nat(rp_iov v)
{
    rp_nataddr x;
    cr_assert_geq(rp_nataddr_parse_tcp(v.base, v.len, NULL, &x), 0);
    return x;
}

#endif
