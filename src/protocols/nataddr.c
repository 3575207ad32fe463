#include "protocols/nataddr.h"

#include <string.h>

#include "multiformats/multiaddr.h"

/* A CIDR prefix: `bits` leading bits of `net`. */
struct cidr {
    uint8_t net[16];
    uint8_t bits;
};

static bool in_cidr(const uint8_t *ip, const struct cidr *c)
{
    unsigned full = c->bits / 8u, rest = c->bits % 8u;
    if (memcmp(ip, c->net, full) != 0) return false;
    if (rest == 0) return true;
    uint8_t mask = (uint8_t)(0xffu << (8u - rest));
    return (ip[full] & mask) == (c->net[full] & mask);
}

static bool in_any(const uint8_t *ip, const struct cidr *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (in_cidr(ip, &list[i])) return true;
    return false;
}

/* go-multiaddr net/private.go: privateCIDR4 and unroutableCIDR4. */
static const struct cidr private4[] = {
    { { 127 }, 8 },      { { 10 }, 8 },        { { 100, 64 }, 10 },
    { { 172, 16 }, 12 }, { { 192, 168 }, 16 }, { { 169, 254 }, 16 },
};
static const struct cidr unroutable4[] = {
    { { 0 }, 8 },        { { 192, 0, 0 }, 26 },    { { 192, 0, 2 }, 24 },   { { 192, 88, 99 }, 24 },
    { { 198, 18 }, 15 }, { { 198, 51, 100 }, 24 }, { { 203, 0, 113 }, 24 }, { { 224 }, 4 },
    { { 240 }, 4 },
};
/* globalUnicastCIDR6, unroutableCIDR6 and nat64CIDRs. */
static const struct cidr global6 = { { 0x20 }, 3 };
static const struct cidr unroutable6[] = {
    { { 0xff }, 8 },
    { { 0x20, 0x01, 0x0d, 0xb8 }, 32 },
};
static const struct cidr nat64_6[] = {
    { { 0x00, 0x64, 0xff, 0x9b, 0x00, 0x01 }, 48 },
    { { 0x00, 0x64, 0xff, 0x9b }, 96 },
};

rp_nataddr_scope rp_nataddr_ip_scope(uint32_t ip_code, const uint8_t *ip)
{
    static const uint8_t zero[16] = { 0 };
    if (ip_code == RINGP2P_P_IP4) {
        /* Never dialable: 0.0.0.0/8, multicast and the reserved 240/4 (broadcast included). */
        if (ip[0] == 0 || ip[0] >= 224) return RP_NATADDR_UNUSABLE;
        if (in_any(ip, private4, sizeof(private4) / sizeof(private4[0])) ||
            in_any(ip, unroutable4, sizeof(unroutable4) / sizeof(unroutable4[0])))
            return RP_NATADDR_PRIVATE;
        return RP_NATADDR_PUBLIC;
    }
    if (ip_code != RINGP2P_P_IP6) return RP_NATADDR_UNUSABLE;
    if (memcmp(ip, zero, 16) == 0 || ip[0] == 0xff) return RP_NATADDR_UNUSABLE;
    if (in_cidr(ip, &global6) &&
        !in_any(ip, unroutable6, sizeof(unroutable6) / sizeof(unroutable6[0])))
        return RP_NATADDR_PUBLIC;
    if (in_any(ip, nat64_6, sizeof(nat64_6) / sizeof(nat64_6[0]))) return RP_NATADDR_PUBLIC;
    return RP_NATADDR_PRIVATE;
}

int rp_nataddr_parse_tcp(const uint8_t *a, size_t n, const ringp2p_peer_id *peer, rp_nataddr *out)
{
    const uint8_t *p = a, *end = a + n;
    rp_maddr_comp ip, tcp, id;
    if (n == 0 || n > RP_MADDR_MAX_BYTES) return -1;
    if (rp_maddr_next_component(&p, end, &ip, NULL) < 0) return -1;
    if (ip.proto->code != RINGP2P_P_IP4 && ip.proto->code != RINGP2P_P_IP6) return -1;
    if (rp_maddr_next_component(&p, end, &tcp, NULL) < 0 || tcp.proto->code != RINGP2P_P_TCP)
        return -1;
    size_t tw = (size_t)(p - a);
    if (p < end) {
        if (rp_maddr_next_component(&p, end, &id, NULL) < 0 || id.proto->code != RINGP2P_P_P2P ||
            p != end)
            return -1;
        if (peer != NULL && (id.value_len != peer->len || memcmp(id.value, peer->bytes, peer->len)))
            return -1;
    }
    _Static_assert(RP_NATADDR_LEN_MAX >= 1 + 16 + 1 + 2, "an ip6/tcp thin waist must fit");
    if (tw > RP_NATADDR_LEN_MAX) return -1; /* cannot happen: codes 4, 0x29 and 6 are one byte */
    if (out != NULL) {
        out->len = (uint8_t)tw;
        memcpy(out->bytes, a, tw);
    }
    if (tcp.value[0] == 0 && tcp.value[1] == 0) return RP_NATADDR_UNUSABLE;
    return (int)rp_nataddr_ip_scope(ip.proto->code, ip.value);
}

bool rp_nataddr_scope_ok(int scope, bool allow_private)
{
    return scope == RP_NATADDR_PUBLIC || (scope == RP_NATADDR_PRIVATE && allow_private);
}

bool rp_nataddr_ip_of(const uint8_t *a, size_t n, uint32_t *code, const uint8_t **ip)
{
    const uint8_t *p = a;
    rp_maddr_comp c;
    if (rp_maddr_next_component(&p, a + n, &c, NULL) < 0) return false;
    if (c.proto->code != RINGP2P_P_IP4 && c.proto->code != RINGP2P_P_IP6) return false;
    *code = c.proto->code;
    *ip = c.value;
    return true;
}

bool rp_nataddr_is_relayed(const uint8_t *a, size_t n)
{
    const uint8_t *p = a, *end = a + n;
    rp_maddr_comp c;
    while (p < end) {
        if (rp_maddr_next_component(&p, end, &c, NULL) < 0) return true;
        if (c.proto->code == RINGP2P_P_P2P_CIRCUIT) return true;
    }
    return false;
}

bool rp_nataddr_ip_equal(uint32_t code_a, const uint8_t *a, uint32_t code_b, const uint8_t *b)
{
    return code_a == code_b && memcmp(a, b, code_a == RINGP2P_P_IP4 ? 4 : 16) == 0;
}

bool rp_nataddr_ip_in(const uint8_t *a, size_t n, const rp_iov *list, size_t count)
{
    uint32_t ca, cb;
    const uint8_t *ia, *ib;
    if (!rp_nataddr_ip_of(a, n, &ca, &ia)) return false;
    for (size_t i = 0; i < count; i++)
        if (rp_nataddr_ip_of(list[i].base, list[i].len, &cb, &ib) &&
            rp_nataddr_ip_equal(ca, ia, cb, ib))
            return true;
    return false;
}

int rp_nataddr_find(const rp_nataddr *list, size_t count, const rp_nataddr *x)
{
    for (size_t i = 0; i < count; i++)
        if (list[i].len == x->len && memcmp(list[i].bytes, x->bytes, x->len) == 0) return (int)i;
    return -1;
}
