/*
 * Addresses for NAT traversal (AutoNAT, DCUtR): which TCP addresses a peer
 * may be dialed on, and which IPs are public. Shared by src/protocols/autonat.c
 * and src/protocols/dcutr.c.
 *
 * Only plain TCP is dialed (ringp2p has no other transport): an address is
 * usable when it is /ip4|ip6/<ip>/tcp/<port>, optionally followed by
 * /p2p/<id>, and nothing else — so relayed (p2p-circuit), DNS, ip6zone,
 * QUIC, WebSocket addresses are not. Usable addresses are kept as their
 * "thin waist" (the ip and tcp components, the /p2p/ suffix dropped).
 *
 * Public or private: go-libp2p's manet.IsPublicAddr (go-multiaddr
 * net/private.go), which both go's AutoNAT and hole punching use:
 *  - IPv4 is public unless in 127/8, 10/8, 100.64/10, 172.16/12,
 *    192.168/16, 169.254/16 (private) or 0/8, 192.0.0/26, 192.0.2/24,
 *    192.88.99/24, 198.18/15, 198.51.100/24, 203.0.113/24, 224/4, 240/4,
 *    255.255.255.255 (unroutable);
 *  - IPv6 is public when in 2000::/3 and not in 2001:db8::/32 or ff00::/8, or
 *    when in the NAT64 prefixes 64:ff9b::/96 and 64:ff9b:1::/48.
 * A node that wants these protocols inside a private network (the
 * network-namespace tests use 10.x and 192.168.x) sets allow_private in the
 * protocol's config; even then the unspecified addresses (0.0.0.0, ::),
 * multicast, broadcast and port 0 are never dialed.
 */
#ifndef RP_PROTOCOLS_NATADDR_H
#define RP_PROTOCOLS_NATADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/bytes.h"
#include "ringp2p/key.h"

/* The longest thin waist: ip6 (1 + 16 bytes) and tcp (1 + 2 bytes). */
#define RP_NATADDR_LEN_MAX 20

/* A usable TCP address's thin waist, in binary multiaddr form. Plain value. */
typedef struct rp_nataddr {
    uint8_t len;
    uint8_t bytes[RP_NATADDR_LEN_MAX];
} rp_nataddr;

typedef enum rp_nataddr_scope {
    RP_NATADDR_UNUSABLE = 0, /* never dialed: unspecified, multicast, broadcast, port 0 */
    RP_NATADDR_PRIVATE,      /* not public by go's rule; dialed only with allow_private */
    RP_NATADDR_PUBLIC,
} rp_nataddr_scope;

/* The scope of an IP (code RINGP2P_P_IP4 with 4 bytes, or RINGP2P_P_IP6 with 16). */
rp_nataddr_scope rp_nataddr_ip_scope(uint32_t ip_code, const uint8_t *ip);

/*
 * Parses a binary multiaddr a[n] (read only) as a usable TCP address (see
 * above). When it ends in /p2p/<id> and `peer` is not NULL, the ID must be
 * `peer`. On success fills *out (may be NULL) with the thin waist and returns
 * its scope (RP_NATADDR_UNUSABLE included: the caller decides); returns -1 when
 * the address is not of that form, is invalid, or names another peer.
 */
int rp_nataddr_parse_tcp(const uint8_t *a, size_t n, const ringp2p_peer_id *peer, rp_nataddr *out);

/*
 * Whether an address a[n] with this scope may be dialed: public always,
 * private only when allow_private, unusable never.
 */
bool rp_nataddr_scope_ok(int scope, bool allow_private);

/* The IP of a binary multiaddr that starts with ip4|ip6: true, *code and *ip (a view into a). */
bool rp_nataddr_ip_of(const uint8_t *a, size_t n, uint32_t *code, const uint8_t **ip);

/* True when a[n] holds a p2p-circuit component, or is not a valid multiaddr. */
bool rp_nataddr_is_relayed(const uint8_t *a, size_t n);

/* Two IPs (code and bytes) are equal. */
bool rp_nataddr_ip_equal(uint32_t code_a, const uint8_t *a, uint32_t code_b, const uint8_t *b);

/* True when the IP of address a[n] equals the IP of one of list[count] (binary multiaddrs). */
bool rp_nataddr_ip_in(const uint8_t *a, size_t n, const rp_iov *list, size_t count);

/* Index of x in list[count], or -1. */
int rp_nataddr_find(const rp_nataddr *list, size_t count, const rp_nataddr *x);

#endif
