/*
 * AutoNAT v1 in the host (autonat_svc.c): the dial-back server and the
 * reachability client, on the sans-IO core protocols/autonat.h. Enabled by
 * ringp2p_config_autonat; internal to src/host and the tests.
 */
#ifndef RP_HOST_AUTONAT_SVC_H
#define RP_HOST_AUTONAT_SVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host/host.h"
#include "protocols/autonat.h"
#include "ringp2p/node.h"

typedef struct rp_autonat_svc rp_autonat_svc;

/*
 * ringp2p_node_new, when n->cfg.autonat is not 0: creates n->autonat and, with
 * RINGP2P_AUTONAT_SERVER, registers the protocol's handler. Errors:
 * RINGP2P_ENOMEM and those of ringp2p_node_set_stream_handler.
 */
int rp_autonat_svc_new(ringp2p_node *n, ringp2p_errinfo *ei);

/* After the node stopped. NULL is fine. */
void rp_autonat_svc_free(rp_autonat_svc *svc);

/* Shard hs, in the node's stop task: the client's timer (shard 0) is cancelled for good. */
void rp_autonat_svc_stop_shard(rp_hshard *hs);

/* Shard; from rp_host_emit: identify results, connections, our addresses (ci may be NULL). */
void rp_autonat_svc_event(ringp2p_node *n, ringp2p_event_type type, const ringp2p_conn_info *ci);

/*
 * Shard hs; from rp_host_observed: `observer`, on the connection from
 * remote[rlen], says it sees us at observed[olen]. Kept on hs until the
 * IDENTIFIED event of that connection, which follows at once.
 */
void rp_autonat_svc_observed(rp_hshard *hs, const ringp2p_peer_id *observer, const uint8_t *remote,
                             size_t rlen, const uint8_t *observed, size_t olen);

/*
 * Shard hs (node.c). The dial-back: a NEW connection to addr[len] (binary TCP
 * multiaddr) that must complete the security handshake as `peer` (its ID
 * checked as for any dial to /p2p/<peer>) within timeout_ns, and is then
 * closed at once. It never enters the peer directory, is never reused by
 * ringp2p_node_new_stream, raises no CONNECTED or DISCONNECTED event and runs
 * no identify. fn(node, NULL, err, ei, ctx) runs exactly once on hs: err 0
 * when the peer was reached, else why not (RINGP2P_ECONNREFUSED,
 * RINGP2P_ETIMEDOUT, RINGP2P_EPEERMISMATCH, ...). Returns 0 (fn will run), or
 * RINGP2P_ECLOSED (stopping), RINGP2P_ENOMEM (fn will not run).
 */
int rp_host_probe_dial(rp_hshard *hs, const uint8_t *addr, size_t len, const ringp2p_peer_id *peer,
                       uint64_t timeout_ns, ringp2p_open_fn fn, void *ctx);

/*
 * Tests, after ringp2p_node_new and before start: replace the server's and
 * the client's core configurations (either may be NULL: unchanged). The
 * client starts over (unknown, boot delay from now).
 */
void rp_autonat_svc_test_config(ringp2p_node *n, const rp_autonat_server_config *sc,
                                const rp_autonat_client_config *cc);

/* Tests, any thread. Dial-backs started by the server; probes the client finished. */
uint64_t rp_autonat_svc_dialbacks(ringp2p_node *n);
uint64_t rp_autonat_svc_probes_done(ringp2p_node *n);

#endif
