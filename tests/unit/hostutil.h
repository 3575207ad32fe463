/* Helpers shared by the host test suites: nodes on loopback and a byte pattern. */
#ifndef RP_TESTS_HOSTUTIL_H
#define RP_TESTS_HOSTUTIL_H

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringp2p/node.h"

/*
 * A started node with 2 shards, listening on 127.0.0.1:0 if `listen`, with
 * the security list `sec` (NULL: the default) and the event callback `fn`
 * (may be NULL). Skips the test where the kernel lacks io_uring.
 */
static inline ringp2p_node *host_node(bool listen, const char *sec, ringp2p_event_fn fn, void *ctx)
{
    ringp2p_config *cfg = ringp2p_config_new();
    cr_assert_not_null(cfg);
    ringp2p_errinfo ei;
    if (listen) cr_assert_eq(ringp2p_config_listen(cfg, "/ip4/127.0.0.1/tcp/0", &ei), 0);
    if (sec != NULL) cr_assert_eq(ringp2p_config_security(cfg, sec, &ei), 0, "%s", ei.msg);
    ringp2p_config_shards(cfg, 2);
    if (fn != NULL) ringp2p_config_events(cfg, fn, ctx);
    ringp2p_node *n;
    cr_assert_eq(ringp2p_node_new(cfg, &n, &ei), 0, "%s", ei.msg);
    ringp2p_config_free(cfg);
    int r = ringp2p_node_start(n, &ei);
    if (r == RINGP2P_EUNSUPPORTED) cr_skip_test("io_uring unsupported: %s", ei.msg);
    cr_assert_eq(r, 0, "start: %s", ei.msg);
    return n;
}

/* The node's one advertised address (caller frees). */
static inline ringp2p_multiaddr *addr_of(ringp2p_node *n)
{
    ringp2p_multiaddr *a[4];
    size_t k = ringp2p_node_addrs(n, a, 4);
    cr_assert_eq(k, 1);
    cr_assert_not_null(a[0]);
    return a[0];
}

/* Byte i of the test pattern `seed`: echoes are checked against it. */
static inline uint8_t pat(uint32_t seed, size_t i)
{
    return (uint8_t)(seed * 31u + i * 7u + (i >> 9));
}

#endif
