/*
 * The TCP transport: libp2p's view of TCP, in multiaddrs, on the runtime's
 * socket layer (runtime/conn.h), which does the io_uring work.
 *
 * Split: the runtime speaks socket addresses and owns sockets, io_uring and
 * the datapath (only src/runtime talks to io_uring); this module decides
 * which multiaddrs TCP can serve (/ip4|/ip6 .../tcp/<port>, optionally
 * followed by /p2p/<id>, which the layers above check) and converts between
 * the two, so the host dials and listens without knowing sockaddr layouts.
 */
#ifndef RP_TRANSPORT_TCP_H
#define RP_TRANSPORT_TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "ringp2p/error.h"
#include "runtime/conn.h"

/* Longest binary multiaddr this module writes: /ip6/<16>/tcp/<2> (1+16 + 1+2 bytes of codes). */
#define RP_TCP_MADDR_MAX 24

/*
 * Whether binary multiaddr ma[len] is a TCP address this transport can dial
 * or listen on: /ip4/A/tcp/P or /ip6/A/tcp/P, optionally followed by
 * /p2p/<id>. Reads ma during the call.
 */
bool rp_tcp_matches(const uint8_t *ma, size_t len);

/*
 * Converts binary multiaddr ma[len] (a rp_tcp_matches form; a trailing /p2p
 * is ignored) into *ss (caller storage) and *sslen. Errors:
 * RINGP2P_EUNSUPPORTED (not a TCP address; the first offending protocol is
 * named in ei), or the validation errors of rp_maddr_next_component.
 */
int rp_tcp_sockaddr(const uint8_t *ma, size_t len, struct sockaddr_storage *ss, socklen_t *sslen,
                    ringp2p_errinfo *ei);

/*
 * Writes /ip4/A/tcp/P or /ip6/A/tcp/P for socket address `sa` into
 * dst[cap]. An IPv4-mapped IPv6 address is written as /ip4. Returns the
 * byte count, RINGP2P_ENOBUF, or RINGP2P_EINVAL (not AF_INET/AF_INET6).
 */
ssize_t rp_tcp_maddr(const struct sockaddr *sa, socklen_t salen, uint8_t *dst, size_t cap);

/*
 * Any thread. rp_listen on the address of ma[len] (see rp_listen for the
 * callbacks, errors and lifetimes); on success the listener's resolved
 * address is available with rp_tcp_listener_maddr.
 */
int rp_tcp_listen(rp_runtime *rt, const uint8_t *ma, size_t len, const rp_listen_opts *opts,
                  rp_accept_fn on_accept, void *arg, rp_listener **out, ringp2p_errinfo *ei);

/* Any thread. The listener's bound address as a multiaddr (port resolved); as rp_tcp_maddr. */
ssize_t rp_tcp_listener_maddr(const rp_listener *l, uint8_t *dst, size_t cap);

/*
 * Shard `sh`. rp_dial to the address of ma[len] (see rp_dial). `local`,
 * when not NULL, is a TCP multiaddr to bind first (dial from the listen
 * port for hole punching); `timeout_ns` 0 means the default.
 */
int rp_tcp_dial(rp_shard *sh, const uint8_t *ma, size_t len, const uint8_t *local, size_t local_len,
                uint64_t timeout_ns, rp_dial_fn done, void *arg, ringp2p_errinfo *ei);

#endif
