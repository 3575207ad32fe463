/*
 * The AutoNAT server's dial timeout as a public knob
 * (RINGP2P_LIMIT_AUTONAT_DIAL_TIMEOUT_MS, the tool's --autonat-dial-timeout),
 * set through ringp2p_config_limit only (no test hook): a client with nothing
 * to dial back learns "private" when the configured timeout has passed, not
 * after the 15 s default. Loopback as in test_host_autonat.c: the server on
 * 127.0.0.3, the client leaving from 127.0.0.1, both with ALLOW_PRIVATE.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <unistd.h>

#include "base/clock.h"
#include "ringp2p/node.h"
#include "hostutil.h"

#define KNOB_MS 400

typedef struct rlog {
    pthread_mutex_t mu;
    int events;
    ringp2p_reachability last;
} rlog;

static void ev_fn(ringp2p_node *n, const ringp2p_event *ev, void *ctx)
{
    rlog *l = ctx;
    (void)n;
    if (ev->type != RINGP2P_EVENT_REACHABILITY) return;
    pthread_mutex_lock(&l->mu);
    l->last = ev->reachability;
    l->events++;
    pthread_mutex_unlock(&l->mu);
}

static int events(rlog *l)
{
    pthread_mutex_lock(&l->mu);
    int v = l->events;
    pthread_mutex_unlock(&l->mu);
    return v;
}

static ringp2p_node *node(const char *listen, unsigned flags, uint64_t dial_ms, rlog *l)
{
    ringp2p_config *cfg = host_config(listen, 1);
    cr_assert_eq(ringp2p_config_autonat(cfg, flags), 0);
    if (dial_ms != 0)
        cr_assert_eq(ringp2p_config_limit(cfg, RINGP2P_LIMIT_AUTONAT_DIAL_TIMEOUT_MS, dial_ms), 0);
    if (l != NULL) ringp2p_config_events(cfg, ev_fn, l);
    return host_start(host_new(cfg));
}

Test(host_autonat_timeout, the_limit_is_known_and_the_next_one_is_not)
{
    ringp2p_config *cfg = ringp2p_config_new();
    cr_assert_eq(ringp2p_config_limit(cfg, RINGP2P_LIMIT_AUTONAT_DIAL_TIMEOUT_MS, 1000), 0);
    cr_assert_eq(
        ringp2p_config_limit(cfg, (ringp2p_limit)(RINGP2P_LIMIT_AUTONAT_DIAL_TIMEOUT_MS + 1), 1000),
        RINGP2P_EINVAL);
    ringp2p_config_free(cfg);
}

Test(host_autonat_timeout, a_failed_dial_back_is_answered_at_the_configured_timeout)
{
    rlog l = { .mu = PTHREAD_MUTEX_INITIALIZER };
    ringp2p_node *srv = node("/ip4/127.0.0.3/tcp/0",
                             RINGP2P_AUTONAT_SERVER | RINGP2P_AUTONAT_ALLOW_PRIVATE, KNOB_MS, NULL);
    /* no listen address: all it can offer is the ephemeral port the server sees, which nothing
     * answers on */
    ringp2p_node *cli = node(NULL, RINGP2P_AUTONAT_CLIENT | RINGP2P_AUTONAT_ALLOW_PRIVATE, 0, &l);
    ringp2p_multiaddr *a = addr_of(srv);
    uint64_t t0 = rp_clock_ns();
    ringp2p_bstream *bs = bstream_to(cli, a, "/ipfs/ping/1.0.0", 5000);
    ringp2p_multiaddr_free(a);
    WAIT_UNTIL(events(&l) > 0, 3000);
    uint64_t ms = (rp_clock_ns() - t0) / 1000000;
    cr_assert_eq(events(&l), 1, "no reachability event after %llu ms", (unsigned long long)ms);
    cr_assert_eq(l.last, RINGP2P_REACHABILITY_PRIVATE);
    /* answered when the configured timeout had passed, long before the 15 s default */
    cr_assert_geq(ms, KNOB_MS - 50, "answered after %llu ms", (unsigned long long)ms);
    cr_assert_lt(ms, KNOB_MS + 1500, "answered after %llu ms", (unsigned long long)ms);
    ringp2p_bstream_close(bs);
    ringp2p_node_free(cli);
    ringp2p_node_free(srv);
}
