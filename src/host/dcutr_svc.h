/*
 * DCUtR in the host (dcutr_svc.c): hole punching over relayed connections, on the
 * sans-IO core protocols/dcutr.h. On by default with the relay client
 * (ringp2p_config_dcutr); internal to src/host and the tests.
 */
#ifndef RP_HOST_DCUTR_SVC_H
#define RP_HOST_DCUTR_SVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host/host.h"
#include "protocols/dcutr.h"
#include "ringp2p/node.h"
#include "transport/tcp.h"

typedef struct rp_dcutr_svc rp_dcutr_svc;

/* ringp2p_node_new, with the relay client on and RINGP2P_DCUTR_ON: creates n->dcutr and
 * registers /libp2p/dcutr. Errors: RINGP2P_ENOMEM and those of the handler registration. */
int rp_dcutr_svc_new(ringp2p_node *n, ringp2p_errinfo *ei);

/* After the node stopped. NULL is fine. */
void rp_dcutr_svc_free(rp_dcutr_svc *svc);

/* Shard hs, in the node's stop task: its hole punches stop (timers cancelled, no event). */
void rp_dcutr_svc_stop_shard(rp_hshard *hs);

/*
 * Shard; every node event (rp_host_emit). IDENTIFIED on a relayed connection we received
 * from a peer that serves /libp2p/dcutr starts the initiator; CONNECTED of a direct
 * connection is a hole punch's success, whoever dialed it; DISCONNECTED of a relayed
 * connection forgets what was done on it.
 */
void rp_dcutr_svc_event(ringp2p_node *n, ringp2p_event_type type, const ringp2p_conn_info *ci);

/*
 * Any thread (hconn.c, as a connection is accepted). True when remote[len] (binary TCP
 * multiaddr) is an address we are hole-punching to as DCUtR's client (A): its SYN met our
 * listener rather than our own SYN (no NAT in between, or ours left late), so on this
 * connection we take the client role the punch gives us, as the peer's dial takes the
 * server's.
 */
bool rp_dcutr_svc_accept_as_client(ringp2p_node *n, const uint8_t *remote, size_t len);

/* Tests, after ringp2p_node_new and before start. */
typedef struct rp_dcutr_svc_test {
    bool no_direct;           /* the initiator never tries the plain direct dial first */
    uint64_t dial_timeout_ns; /* one dial; 0: the node's RINGP2P_LIMIT_DIAL_TIMEOUT_MS */
    /* the responder's hole-punch dials leave this much later (the initiator's SYN then
     * meets our listener first, as without a NAT in between) */
    uint64_t responder_delay_ns;
    size_t n_own; /* > 0: offer these addresses instead of ours */
    uint8_t own[4][RP_TCP_MADDR_MAX];
    size_t own_len[4];
} rp_dcutr_svc_test;
void rp_dcutr_svc_test_set(ringp2p_node *n, const rp_dcutr_svc_test *t);

/* Tests, any thread: hole-punch dials made (RP_DCUTR_DIAL addresses), exchanges started. */
uint64_t rp_dcutr_svc_punch_dials(ringp2p_node *n);
uint64_t rp_dcutr_svc_exchanges(ringp2p_node *n);

#endif
