/*
 * The circuit relay v2 client of the host (relay_client.c): reservations on the
 * configured relays, dialing RELAY/p2p-circuit/p2p/PEER, and the stop protocol.
 * On by default (ringp2p_config_relay_client); internal to src/host and the tests.
 */
#ifndef RP_HOST_RELAY_CLIENT_H
#define RP_HOST_RELAY_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host/host.h"
#include "ringp2p/node.h"

typedef struct rp_relay_client rp_relay_client;

/*
 * Reservations are retried after a failure or a loss after RP_RELAY_CLIENT_BACKOFF_MIN_MS,
 * doubling up to RP_RELAY_CLIENT_BACKOFF_MAX_MS (reset by a success).
 */
#define RP_RELAY_CLIENT_BACKOFF_MIN_MS 2000u
#define RP_RELAY_CLIENT_BACKOFF_MAX_MS 300000u

/* ringp2p_node_new: creates n->rclient and registers the stop protocol's handler. */
int rp_relay_client_new(ringp2p_node *n, ringp2p_errinfo *ei);

/* After the node stopped. NULL is fine. */
void rp_relay_client_free(rp_relay_client *cl);

/* ringp2p_node_start, after the shards run: starts the reservations (not on a shard). */
void rp_relay_client_start(ringp2p_node *n);

/* Shard hs, while the node stops: the reservations it runs stop (timers cancelled). */
void rp_relay_client_stop_shard(rp_hshard *hs);

/* Shard; every node event (rp_host_emit): a relay we held a reservation on disconnected. */
void rp_relay_client_event(ringp2p_node *n, ringp2p_event_type type, const ringp2p_conn_info *ci);

/*
 * Shard hs; o->circuit and no connection to reuse. Dials o->addr
 * (RELAY/p2p/R/p2p-circuit/p2p/PEER) through the relay: the relayed
 * connection then serves o like a dialed one. With the client off, o fails
 * with RINGP2P_EUNSUPPORTED and a message saying so.
 */
void rp_relay_client_dial(rp_hshard *hs, rp_hopen *o);

/* Whether the binary multiaddr has a /p2p-circuit component (false if malformed). */
bool rp_relay_is_circuit(const uint8_t *addr, size_t len);

#endif
