/*
 * The peer ID at the end of a multiaddr. Kept apart from multiaddr.c so that
 * programs linking the static library pull in the key code only if they use it.
 */
#include "base/error.h"
#include "multiformats/multiaddr.h"
#include "ringp2p/key.h"

RINGP2P_API int ringp2p_multiaddr_peer_id(const ringp2p_multiaddr *ma, ringp2p_peer_id *out)
{
    size_t len;
    const uint8_t *buf = ringp2p_multiaddr_bytes(ma, &len);
    const uint8_t *p = buf, *end = buf + len;
    rp_maddr_comp c = { 0 };
    while (p < end) RP_TRY(rp_maddr_next_component(&p, end, &c, NULL));
    if (c.proto == NULL || c.proto->code != RINGP2P_P_P2P) return RINGP2P_ENOENT;
    return ringp2p_peer_id_from_bytes(c.value, c.value_len, out, NULL);
}
