#include "transport/tcp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "base/error.h"
#include "multiformats/multiaddr.h"

/* Multicodec table codes (multiformats/multicodec table.csv). */
#define CODE_IP4 4
#define CODE_TCP 6
#define CODE_IP6 41
#define CODE_P2P 421

/*
 * Walks ma[len]: ip4|ip6, then tcp, then optionally p2p, nothing else. Fills
 * *ss when it is not NULL. Returns 0 or an error naming the offending part.
 */
static int parse(const uint8_t *ma, size_t len, struct sockaddr_storage *ss, socklen_t *sslen,
                 ringp2p_errinfo *ei)
{
    const uint8_t *p = ma, *end = ma + len;
    rp_maddr_comp ip, tcp, extra;
    int r;
    if (len == 0) return rp_err(ei, RINGP2P_EUNSUPPORTED, "tcp: empty multiaddr");
    if ((r = rp_maddr_next_component(&p, end, &ip, ei)) != 0) return r;
    if (ip.proto->code != CODE_IP4 && ip.proto->code != CODE_IP6)
        return rp_err(ei, RINGP2P_EUNSUPPORTED, "tcp: /%s is not /ip4 or /ip6", ip.proto->name);
    if (p == end) return rp_err(ei, RINGP2P_EUNSUPPORTED, "tcp: no /tcp after /%s", ip.proto->name);
    if ((r = rp_maddr_next_component(&p, end, &tcp, ei)) != 0) return r;
    if (tcp.proto->code != CODE_TCP)
        return rp_err(ei, RINGP2P_EUNSUPPORTED, "tcp: /%s where /tcp was expected",
                      tcp.proto->name);
    if (p != end) {
        if ((r = rp_maddr_next_component(&p, end, &extra, ei)) != 0) return r;
        if (extra.proto->code != CODE_P2P || p != end)
            return rp_err(ei, RINGP2P_EUNSUPPORTED, "tcp: /%s after /tcp", extra.proto->name);
    }
    if (ss == NULL) return 0;
    uint16_t port = (uint16_t)(tcp.value[0] << 8 | tcp.value[1]);
    memset(ss, 0, sizeof(*ss));
    if (ip.proto->code == CODE_IP4) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(port);
        memcpy(&a->sin_addr, ip.value, 4);
        *sslen = sizeof(*a);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(port);
        memcpy(&a->sin6_addr, ip.value, 16);
        *sslen = sizeof(*a);
    }
    return 0;
}

bool rp_tcp_matches(const uint8_t *ma, size_t len)
{
    return parse(ma, len, NULL, NULL, NULL) == 0;
}

int rp_tcp_sockaddr(const uint8_t *ma, size_t len, struct sockaddr_storage *ss, socklen_t *sslen,
                    ringp2p_errinfo *ei)
{
    return parse(ma, len, ss, sslen, ei);
}

ssize_t rp_tcp_maddr(const struct sockaddr *sa, socklen_t salen, uint8_t *dst, size_t cap)
{
    uint8_t ip[16];
    size_t iplen;
    uint16_t port;
    if (sa->sa_family == AF_INET && salen >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        memcpy(ip, &a->sin_addr, 4);
        iplen = 4;
        port = ntohs(a->sin_port);
    } else if (sa->sa_family == AF_INET6 && salen >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
            memcpy(ip, &a->sin6_addr.s6_addr[12], 4);
            iplen = 4;
        } else {
            memcpy(ip, &a->sin6_addr, 16);
            iplen = 16;
        }
        port = ntohs(a->sin6_port);
    } else {
        return RINGP2P_EINVAL;
    }
    uint8_t pv[2] = { (uint8_t)(port >> 8), (uint8_t)port };
    const rp_maddr_proto *pip = rp_maddr_proto_by_code(iplen == 4 ? CODE_IP4 : CODE_IP6);
    const rp_maddr_proto *ptcp = rp_maddr_proto_by_code(CODE_TCP);
    ssize_t a = rp_maddr_put_component(pip, ip, iplen, dst, cap, NULL);
    if (a < 0) return a;
    ssize_t b = rp_maddr_put_component(ptcp, pv, 2, dst + a, cap - (size_t)a, NULL);
    if (b < 0) return b;
    return a + b;
}

int rp_tcp_listen(rp_runtime *rt, const uint8_t *ma, size_t len, const rp_listen_opts *opts,
                  rp_accept_fn on_accept, void *arg, rp_listener **out, ringp2p_errinfo *ei)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    RP_TRY(parse(ma, len, &ss, &sl, ei));
    return rp_listen(rt, (struct sockaddr *)&ss, sl, opts, on_accept, arg, out, ei);
}

ssize_t rp_tcp_listener_maddr(const rp_listener *l, uint8_t *dst, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    rp_listener_addr(l, &ss, &sl);
    return rp_tcp_maddr((struct sockaddr *)&ss, sl, dst, cap);
}

int rp_tcp_dial(rp_shard *sh, const uint8_t *ma, size_t len, const uint8_t *local, size_t local_len,
                uint64_t timeout_ns, rp_dial_fn done, void *arg, ringp2p_errinfo *ei)
{
    struct sockaddr_storage ss, ls;
    socklen_t sl, lsl = 0;
    RP_TRY(parse(ma, len, &ss, &sl, ei));
    rp_dial_opts o = { .timeout_ns = timeout_ns };
    if (local != NULL) {
        RP_TRY(parse(local, local_len, &ls, &lsl, ei));
        if (ls.ss_family != ss.ss_family)
            return rp_err(ei, RINGP2P_EINVAL, "tcp: local and remote address families differ");
        o.local = (struct sockaddr *)&ls;
        o.local_len = lsl;
    }
    int r = rp_dial(sh, (struct sockaddr *)&ss, sl, &o, done, arg);
    if (r < 0) return rp_err(ei, r, "tcp: dial: %s", ringp2p_strerror(r));
    return 0;
}
