/*
 * The circuit relay v2 service (hop side) of the host: relay_svc.c. Enabled
 * by ringp2p_config_relay_service; internal to src/host and the tests.
 */
#ifndef RP_HOST_RELAY_SVC_H
#define RP_HOST_RELAY_SVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ringp2p/node.h"

typedef struct rp_relay_svc rp_relay_svc;

/*
 * ringp2p_node_new: creates n->relay from n->cfg (limits, the node's key) and
 * registers the hop protocol's handler. Errors: RINGP2P_ENOMEM, RINGP2P_EINVAL.
 */
int rp_relay_svc_new(ringp2p_node *n, ringp2p_errinfo *ei);

/* After the node stopped (every stream closed). NULL is fine. */
void rp_relay_svc_free(rp_relay_svc *svc);

/* Shard; a connection to ci->peer closed (DISCONNECTED): with no other connection to that
 * peer, its reservation ends. */
void rp_relay_svc_conn_closed(ringp2p_node *n, const ringp2p_conn_info *ci);

/* Tests, any thread: whether `peer` holds an unexpired reservation; counts. */
bool rp_relay_svc_has_reservation(ringp2p_node *n, const ringp2p_peer_id *peer);
size_t rp_relay_svc_reservations(ringp2p_node *n);
size_t rp_relay_svc_circuits(ringp2p_node *n);
/* Tests: circuits bridged so far whose two streams were on one shard / on two shards. */
void rp_relay_svc_shard_mix(ringp2p_node *n, uint64_t *same, uint64_t *cross);

#endif
