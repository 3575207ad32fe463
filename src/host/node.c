/*
 * The node: configuration, start/stop, the handler table, the peer
 * directory and stream requests from any thread (include/ringp2p/node.h).
 *
 * Limits (ringp2p_limit), with defaults:
 *   DIAL_TIMEOUT_MS         10000: TCP connect + security + muxer, one deadline
 *   STREAMS_INBOUND         1000 (yamux default): concurrent inbound streams per connection
 *                           (unset, mplex keeps its 1024); beyond it a new stream is reset
 *   STREAMS_UNACKED         256 (yamux default): inbound streams not yet accepted
 *   STREAM_WINDOW_MAX       16 MiB (yamux default): receive window ceiling; for mplex (no
 *                           window) the unread bytes a stream may hold before it is reset,
 *                           at least 1 MiB (unset: mplex's 4 MiB)
 *   STREAM_WRITE_HIGH       1 MiB: bytes queued on a stream before writes return EAGAIN;
 *                           on_writable follows when it falls to half
 *   CONNECTIONS             100000: live connections, inbound and outbound, in every phase;
 *                           an inbound connection over it is reset as soon as it is accepted
 *                           (before any handshake work) and counted (rp_host_conns_refused);
 *                           dials are not refused
 *   NEGOTIATION_TIMEOUT_MS  10000: a stream's multistream-select must finish within this,
 *                           else it is reset and its opener hears RINGP2P_ETIMEDOUT
 *   AUTONAT_DIAL_TIMEOUT_MS 15000 (go-libp2p's): the AutoNAT server's dial-back must connect
 *                           within this; a failure is answered when it has passed (so a
 *                           peer behind a NAT that drops the dial learns "private" only then)
 */
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "base/varint.h"
#include "crypto/key.h"
#include "host/autonat_svc.h"
#include "host/dcutr_svc.h"
#include "host/host.h"
#include "protocols/nataddr.h"
#include "host/relay_client.h"
#include "host/relay_svc.h"
#include "multiformats/multiaddr.h"
#include "protocols/identify.h"
#include "protocols/peer_record.h"
#include "protocols/perf.h"
#include "protocols/ping.h"
#include "transport/tcp.h"

#define ECHO_PROTOCOL_ID "/echo/1.0.0"

/* ---- handler tables ----------------------------------------------------------------------- */

rp_htable *rp_htable_ref(rp_htable *t)
{
    atomic_fetch_add(&t->refs, 1);
    return t;
}

static void htable_free(rp_htable *t)
{
    for (size_t i = 0; i < t->n; i++) free((void *)t->names[i]);
    free(t->names);
    free(t->fns);
    free(t->ctxs);
    free(t);
}

void rp_htable_unref(rp_htable *t)
{
    if (t != NULL && atomic_fetch_sub(&t->refs, 1) == 1) htable_free(t);
}

int rp_htable_find(const rp_htable *t, const char *proto, size_t len)
{
    for (size_t i = 0; i < t->n; i++)
        if (strlen(t->names[i]) == len && memcmp(t->names[i], proto, len) == 0) return (int)i;
    return -1;
}

/* A copy of `old` with `proto` set to fn/ctx (fn NULL: removed). */
static rp_htable *htable_with(const rp_htable *old, const char *proto, ringp2p_stream_handler fn,
                              void *ctx)
{
    rp_htable *t = calloc(1, sizeof(*t));
    size_t cap = (old != NULL ? old->n : 0) + 1;
    if (t == NULL) return NULL;
    atomic_init(&t->refs, 1);
    t->names = calloc(cap, sizeof(*t->names));
    t->fns = calloc(cap, sizeof(*t->fns));
    t->ctxs = calloc(cap, sizeof(*t->ctxs));
    if (t->names == NULL || t->fns == NULL || t->ctxs == NULL) goto fail;
    bool done = false;
    for (size_t i = 0; old != NULL && i < old->n; i++) {
        bool same = strcmp(old->names[i], proto) == 0;
        if (same && fn == NULL) continue;
        t->names[t->n] = strdup(old->names[i]);
        if (t->names[t->n] == NULL) goto fail;
        t->fns[t->n] = same ? fn : old->fns[i];
        t->ctxs[t->n] = same ? ctx : old->ctxs[i];
        done |= same;
        t->n++;
    }
    if (!done && fn != NULL) {
        t->names[t->n] = strdup(proto);
        if (t->names[t->n] == NULL) goto fail;
        t->fns[t->n] = fn;
        t->ctxs[t->n] = ctx;
        t->n++;
    }
    return t;
fail:
    htable_free(t);
    return NULL;
}

/* ---- config ------------------------------------------------------------------------------- */

RINGP2P_API ringp2p_config *ringp2p_config_new(void)
{
    ringp2p_config *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL) return NULL;
    /* the default list: "noise,tls" */
    cfg->nsec = 2;
    cfg->sec[0] = rp_hsec_by_name("noise", 5);
    cfg->sec[1] = rp_hsec_by_name("tls", 3);
    cfg->nmux = 1;
    cfg->muxers[0] = rp_hmux_by_name("yamux", 5)->id;
    cfg->log_level = RINGP2P_LOG_WARN;
    cfg->autonat = RINGP2P_AUTONAT_CLIENT;
    cfg->dcutr = RINGP2P_DCUTR_ON;
    return cfg;
}

RINGP2P_API void ringp2p_config_free(ringp2p_config *cfg)
{
    if (cfg == NULL) return;
    ringp2p_privkey_free(cfg->key);
    for (size_t i = 0; i < cfg->nlisten; i++) free(cfg->listen[i]);
    free(cfg);
}

static int key_dup(const ringp2p_privkey *key, ringp2p_privkey **out)
{
    uint8_t buf[4096];
    ssize_t n = ringp2p_privkey_to_protobuf(key, buf, sizeof(buf));
    if (n < 0) return (int)n;
    int r = ringp2p_privkey_from_protobuf(buf, (size_t)n, out, NULL);
    memset(buf, 0, sizeof(buf));
    return r;
}

RINGP2P_API int ringp2p_config_identity(ringp2p_config *cfg, const ringp2p_privkey *key)
{
    ringp2p_privkey *k;
    int r = key_dup(key, &k);
    if (r < 0) return r;
    ringp2p_privkey_free(cfg->key);
    cfg->key = k;
    return 0;
}

RINGP2P_API int ringp2p_config_listen(ringp2p_config *cfg, const char *maddr, ringp2p_errinfo *ei)
{
    ringp2p_multiaddr *ma;
    int r = ringp2p_multiaddr_parse(maddr, &ma, ei);
    if (r < 0) return r;
    size_t len;
    const uint8_t *b = ringp2p_multiaddr_bytes(ma, &len);
    bool ok = rp_tcp_matches(b, len);
    ringp2p_multiaddr_free(ma);
    if (!ok)
        return rp_err(ei, RINGP2P_EUNSUPPORTED, "no transport for listen address %s (only TCP)",
                      maddr);
    if (cfg->nlisten == RP_HOST_LISTEN_MAX)
        return rp_err(ei, RINGP2P_ELIMIT, "more than %d listen addresses", RP_HOST_LISTEN_MAX);
    char *d = strdup(maddr);
    if (d == NULL) return RINGP2P_ENOMEM;
    cfg->listen[cfg->nlisten++] = d;
    return 0;
}

/* Calls fn(name, len) for each comma-separated entry of list. */
static int each_name(const char *list, ringp2p_errinfo *ei, const char *what,
                     int (*fn)(ringp2p_config *, const char *, size_t, ringp2p_errinfo *),
                     ringp2p_config *cfg)
{
    if (list == NULL || *list == 0) return rp_err(ei, RINGP2P_EINVAL, "empty %s list", what);
    const char *p = list;
    while (*p != 0) {
        const char *c = strchr(p, ',');
        size_t n = c != NULL ? (size_t)(c - p) : strlen(p);
        while (n > 0 && *p == ' ') p++, n--;
        while (n > 0 && p[n - 1] == ' ') n--;
        int r = fn(cfg, p, n, ei);
        if (r < 0) return r;
        p += n;
        while (*p == ' ') p++;
        if (*p == ',') p++;
    }
    return 0;
}

static int sec_one(ringp2p_config *cfg, const char *n, size_t len, ringp2p_errinfo *ei)
{
    const rp_hsec_ops *ops = rp_hsec_by_name(n, len);
    if (ops != NULL) {
        for (size_t i = 0; i < cfg->nsec; i++)
            if (cfg->sec[i] == ops) return 0; /* listed twice: the first place counts */
        if (cfg->nsec == RP_HOST_SECURITY_MAX)
            return rp_err(ei, RINGP2P_ELIMIT, "more than %d security protocols",
                          RP_HOST_SECURITY_MAX);
        cfg->sec[cfg->nsec++] = ops;
        return 0;
    }
    return rp_err(ei, RINGP2P_EUNSUPPORTED,
                  "unknown security \"%.*s\" (known: noise, tls, signed, plaintext)", (int)len, n);
}

/* The list replaces the previous one; on error the config keeps the previous one. */
RINGP2P_API int ringp2p_config_security(ringp2p_config *cfg, const char *list, ringp2p_errinfo *ei)
{
    size_t nsec = cfg->nsec;
    const rp_hsec_ops *sec[RP_HOST_SECURITY_MAX];
    memcpy(sec, cfg->sec, sizeof(sec));
    cfg->nsec = 0;
    int r = each_name(list, ei, "security", sec_one, cfg);
    if (r < 0 || cfg->nsec == 0) {
        cfg->nsec = nsec;
        memcpy(cfg->sec, sec, sizeof(sec));
        if (r == 0) r = rp_err(ei, RINGP2P_EINVAL, "empty security list");
    }
    return r;
}

static int mux_one(ringp2p_config *cfg, const char *n, size_t len, ringp2p_errinfo *ei)
{
    const rp_hmux_ops *ops = rp_hmux_by_name(n, len);
    if (ops == NULL)
        return rp_err(ei, RINGP2P_EUNSUPPORTED, "unknown muxer \"%.*s\" (known: yamux, mplex)",
                      (int)len, n);
    for (size_t i = 0; i < cfg->nmux; i++)
        if (cfg->muxers[i] == ops->id) return 0; /* listed twice: the first place counts */
    if (cfg->nmux == RP_HOST_MUXERS_MAX)
        return rp_err(ei, RINGP2P_ELIMIT, "more than %d muxers", RP_HOST_MUXERS_MAX);
    cfg->muxers[cfg->nmux++] = ops->id;
    return 0;
}

/*
 * The list replaces the previous one (its protocol IDs, most preferred
 * first, are what early negotiation and multistream-select offer and
 * accept); on error the config keeps the previous one.
 */
RINGP2P_API int ringp2p_config_muxers(ringp2p_config *cfg, const char *list, ringp2p_errinfo *ei)
{
    size_t nmux = cfg->nmux;
    const char *mux[RP_HOST_MUXERS_MAX];
    memcpy(mux, cfg->muxers, sizeof(mux));
    cfg->nmux = 0;
    int r = each_name(list, ei, "muxer", mux_one, cfg);
    if (r < 0 || cfg->nmux == 0) {
        cfg->nmux = nmux;
        memcpy(cfg->muxers, mux, sizeof(mux));
        if (r == 0) r = rp_err(ei, RINGP2P_EINVAL, "empty muxer list");
    }
    return r;
}

RINGP2P_API int ringp2p_config_shards(ringp2p_config *cfg, unsigned n)
{
    if (n > RP_RUNTIME_SHARDS_MAX) return RINGP2P_EINVAL;
    cfg->shards = n;
    return 0;
}

RINGP2P_API int ringp2p_config_limit(ringp2p_config *cfg, ringp2p_limit which, uint64_t value)
{
    if ((unsigned)which > RINGP2P_LIMIT_AUTONAT_DIAL_TIMEOUT_MS) return RINGP2P_EINVAL;
    cfg->limits[which] = value;
    return 0;
}

RINGP2P_API void ringp2p_config_log(ringp2p_config *cfg, ringp2p_log_level level,
                                    ringp2p_log_sink sink, void *ctx)
{
    cfg->log_level = level;
    cfg->log_sink = sink;
    cfg->log_ctx = ctx;
}

RINGP2P_API void ringp2p_config_events(ringp2p_config *cfg, ringp2p_event_fn fn, void *ctx)
{
    cfg->ev_fn = fn;
    cfg->ev_ctx = ctx;
}

uint64_t rp_host_limit(const ringp2p_node *n, ringp2p_limit which)
{
    uint64_t v = n->cfg.limits[which];
    if (v != 0) return v;
    switch (which) {
    case RINGP2P_LIMIT_DIAL_TIMEOUT_MS: return RP_HOST_DIAL_TIMEOUT_MS_DEFAULT;
    case RINGP2P_LIMIT_STREAM_WRITE_HIGH: return RP_HOST_STREAM_WRITE_HIGH_DEFAULT;
    case RINGP2P_LIMIT_NEGOTIATION_TIMEOUT_MS: return RP_HOST_NEGOTIATION_TIMEOUT_MS_DEFAULT;
    case RINGP2P_LIMIT_AUTONAT_DIAL_TIMEOUT_MS: return RP_AUTONAT_SERVER_DIAL_TIMEOUT / 1000000;
    case RINGP2P_LIMIT_CONNECTIONS: return RP_HOST_CONNECTIONS_DEFAULT;
    case RINGP2P_LIMIT_STREAMS_INBOUND: return RP_YAMUX_MAX_INBOUND_STREAMS_DEFAULT;
    case RINGP2P_LIMIT_STREAMS_UNACKED: return RP_YAMUX_ACCEPT_BACKLOG_DEFAULT;
    case RINGP2P_LIMIT_STREAM_WINDOW_MAX: return RP_YAMUX_MAX_WINDOW_DEFAULT;
    }
    return 0;
}

/* ---- node --------------------------------------------------------------------------------- */

RINGP2P_API int ringp2p_node_new(const ringp2p_config *cfg, ringp2p_node **out, ringp2p_errinfo *ei)
{
    ringp2p_node *n = calloc(1, sizeof(*n));
    if (n == NULL) return RINGP2P_ENOMEM;
    int r;
    n->cfg = *cfg;
    n->cfg.key = NULL;
    for (size_t i = 0; i < cfg->nlisten; i++) n->cfg.listen[i] = NULL;
    n->cfg.nlisten = 0;
    pthread_mutex_init(&n->mu, NULL);
    pthread_mutex_init(&n->amu, NULL);
    rp_obsaddr_init(&n->obs, NULL);
    for (size_t i = 0; i < cfg->nlisten; i++) {
        n->cfg.listen[i] = strdup(cfg->listen[i]);
        if (n->cfg.listen[i] == NULL) {
            r = RINGP2P_ENOMEM;
            goto fail;
        }
        n->cfg.nlisten++;
    }
    r = cfg->key != NULL ? key_dup(cfg->key, &n->key)
                         : ringp2p_privkey_generate(RINGP2P_KEY_ED25519, &n->key);
    if (r < 0) {
        rp_err(ei, r, "cannot set up the node's key");
        goto fail;
    }
    const ringp2p_pubkey *pub = ringp2p_privkey_public(n->key);
    ringp2p_peer_id_from_pubkey(pub, &n->id);
    ssize_t pl = ringp2p_pubkey_to_protobuf(pub, NULL, 0);
    if (pl <= 0) pl = 1024;
    n->pubkey_pb = malloc((size_t)pl > 1024 ? (size_t)pl : 1024);
    if (n->pubkey_pb == NULL) {
        r = RINGP2P_ENOMEM;
        goto fail;
    }
    pl = ringp2p_pubkey_to_protobuf(pub, n->pubkey_pb, (size_t)pl > 1024 ? (size_t)pl : 1024);
    if (pl < 0) {
        r = (int)pl;
        goto fail;
    }
    n->pubkey_pb_len = (size_t)pl;
    rp_logger_init(&n->log, cfg->log_level, cfg->log_sink, cfg->log_ctx);
    static const struct {
        const char *p;
        ringp2p_stream_handler fn;
    } builtins[] = {
        { RP_IDENTIFY_PROTOCOL_ID, rp_host_identify_handler },
        { RP_IDENTIFY_PUSH_PROTOCOL_ID, rp_host_push_handler },
        { RP_PING_PROTOCOL_ID, rp_host_ping_handler },
        { ECHO_PROTOCOL_ID, rp_host_echo_handler },
        { RP_PERF_PROTOCOL_ID, rp_host_perf_handler },
    };
    for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++) {
        rp_htable *t = htable_with(n->handlers, builtins[i].p, builtins[i].fn, NULL);
        if (t == NULL) {
            r = RINGP2P_ENOMEM;
            goto fail;
        }
        rp_htable_unref(n->handlers);
        n->handlers = t;
    }
    if (n->cfg.relay_service && (r = rp_relay_svc_new(n, ei)) < 0) goto fail;
    if (n->cfg.autonat != 0 && (r = rp_autonat_svc_new(n, ei)) < 0) goto fail;
    if (!n->cfg.relay_client_off && (r = rp_relay_client_new(n, ei)) < 0) goto fail;
    /* hole punching upgrades relayed connections: nothing to do without the relay client */
    if (n->rclient != NULL && (n->cfg.dcutr & RINGP2P_DCUTR_ON) != 0 &&
        (r = rp_dcutr_svc_new(n, ei)) < 0)
        goto fail;
    *out = n;
    return 0;
fail:
    ringp2p_node_free(n);
    return r;
}

/* ---- advertised addresses ----------------------------------------------------------------- */

/* The IP and TCP port of a TCP multiaddr (ip4|ip6, tcp); false for anything else. */
static bool ip_port(const uint8_t *a, size_t len, int *code, const uint8_t **ip, uint16_t *port)
{
    const uint8_t *p = a, *end = a + len;
    rp_maddr_comp c1, c2;
    if (rp_maddr_next_component(&p, end, &c1, NULL) != 0 ||
        rp_maddr_next_component(&p, end, &c2, NULL) != 0)
        return false;
    if ((c1.proto->code != RINGP2P_P_IP4 && c1.proto->code != RINGP2P_P_IP6) ||
        c2.proto->code != RINGP2P_P_TCP || c2.value_len != 2)
        return false;
    *code = (int)c1.proto->code;
    *ip = c1.value;
    *port = (uint16_t)(c2.value[0] << 8 | c2.value[1]);
    return true;
}

static bool ip_unspecified(int code, const uint8_t *ip)
{
    static const uint8_t zero[16] = { 0 };
    return memcmp(ip, zero, code == RINGP2P_P_IP4 ? 4 : 16) == 0;
}

static bool ip_loopback(int code, const uint8_t *ip)
{
    static const uint8_t lo6[16] = { [15] = 1 };
    return code == RINGP2P_P_IP4 ? ip[0] == 127 : memcmp(ip, lo6, 16) == 0;
}

/*
 * go-libp2p's TCP transport dials from its listen port (go-reuseport-transport picks a
 * wildcard listener, else one matching the destination's loopback-ness; it consults the
 * routing table among several specific ones, which we do not: then we bind none).
 * laddrs and base are fixed once the node started, so any shard reads them unlocked.
 */
size_t rp_host_dial_local(ringp2p_node *n, const uint8_t *dst, size_t len, uint8_t *out)
{
    int dc, c;
    const uint8_t *dip, *ip;
    uint16_t dport, port;
    if (!ip_port(dst, len, &dc, &dip, &dport)) return 0;
    size_t iplen = dc == RINGP2P_P_IP4 ? 4 : 16;
    /* one of our own addresses: a socket bound to it would connect to itself */
    for (size_t i = 0; i < n->nbase; i++)
        if (ip_port(n->base[i], n->base_len[i], &c, &ip, &port) && c == dc && port == dport &&
            memcmp(ip, dip, iplen) == 0)
            return 0;
    bool dlo = ip_loopback(dc, dip);
    int pick = -1, spec = -1, nspec = 0;
    for (size_t i = 0; i < n->nladdrs && pick < 0; i++) {
        if (!ip_port(n->laddrs[i], n->laddr_len[i], &c, &ip, &port) || c != dc) continue;
        if (ip_unspecified(c, ip)) {
            pick = (int)i;
        } else if (ip_loopback(c, ip) == dlo) {
            if (spec < 0) spec = (int)i;
            nspec++;
        }
    }
    if (pick < 0 && spec >= 0 && (dlo || nspec == 1)) pick = spec;
    if (pick < 0) return 0;
    memcpy(out, n->laddrs[pick], n->laddr_len[pick]);
    return n->laddr_len[pick];
}

static void base_add(ringp2p_node *n, const uint8_t *a, size_t len)
{
    if (n->nbase == RP_HOST_ADDRS_MAX || len > RP_TCP_MADDR_MAX) return;
    for (size_t i = 0; i < n->nbase; i++)
        if (n->base_len[i] == len && memcmp(n->base[i], a, len) == 0) return;
    memcpy(n->base[n->nbase], a, len);
    n->base_len[n->nbase++] = len;
}

/*
 * The base of what we advertise: each listen address, a wildcard (0.0.0.0,
 * ::) replaced by the addresses of the interfaces that are up, of its
 * family, loopback included (go-libp2p's ResolveUnspecifiedAddresses does
 * the same; like go's host we leave out IPv6 link-local addresses, which
 * need a zone to be dialed). Interfaces are read once, at start.
 */
static void expand_listen_addrs(ringp2p_node *n)
{
    struct ifaddrs *ifs = NULL;
    bool have_ifs = false;
    for (size_t i = 0; i < n->nladdrs; i++) {
        int code;
        const uint8_t *ip;
        uint16_t port;
        if (!ip_port(n->laddrs[i], n->laddr_len[i], &code, &ip, &port) ||
            !ip_unspecified(code, ip)) {
            base_add(n, n->laddrs[i], n->laddr_len[i]);
            continue;
        }
        if (!have_ifs) have_ifs = getifaddrs(&ifs) == 0;
        size_t before = n->nbase;
        for (struct ifaddrs *f = have_ifs ? ifs : NULL; f != NULL; f = f->ifa_next) {
            if (f->ifa_addr == NULL || (f->ifa_flags & IFF_UP) == 0) continue;
            struct sockaddr_storage ss;
            socklen_t sl;
            memset(&ss, 0, sizeof(ss));
            if (code == RINGP2P_P_IP4 && f->ifa_addr->sa_family == AF_INET) {
                struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
                memcpy(sin, f->ifa_addr, sizeof(*sin));
                sin->sin_port = htons(port);
                sl = sizeof(*sin);
            } else if (code == RINGP2P_P_IP6 && f->ifa_addr->sa_family == AF_INET6) {
                struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
                memcpy(s6, f->ifa_addr, sizeof(*s6));
                if (IN6_IS_ADDR_LINKLOCAL(&s6->sin6_addr)) continue;
                s6->sin6_port = htons(port);
                s6->sin6_scope_id = 0;
                sl = sizeof(*s6);
            } else {
                continue;
            }
            uint8_t buf[RP_TCP_MADDR_MAX];
            ssize_t l = rp_tcp_maddr((struct sockaddr *)&ss, sl, buf, sizeof(buf));
            if (l > 0) base_add(n, buf, (size_t)l);
        }
        if (n->nbase == before) {
            /* no interface of that family: better the wildcard than nothing */
            rp_logf(&n->log, RINGP2P_LOG_WARN, "host",
                    "no interface address to advertise for a wildcard listen address");
            base_add(n, n->laddrs[i], n->laddr_len[i]);
        }
    }
    if (have_ifs) freeifaddrs(ifs);
}

uint64_t rp_host_unix_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

rp_shard *rp_host_current_shard(ringp2p_node *n)
{
    for (unsigned i = 0; i < n->nshards; i++)
        if (rp_shard_is_current(n->shards[i]->sh)) return n->shards[i]->sh;
    return NULL;
}

void rp_host_addrs_copy(ringp2p_node *n, bool skip_relayed, rp_host_addrs *a)
{
    pthread_mutex_lock(&n->amu);
    a->n = 0;
    for (size_t i = 0; i < n->naddrs; i++) {
        if (skip_relayed && rp_nataddr_is_relayed(n->addrs[i], n->addr_len[i])) continue;
        memcpy(a->b[a->n], n->addrs[i], n->addr_len[i]);
        a->v[a->n] = rp_iov_make(a->b[a->n], n->addr_len[i]);
        a->n++;
    }
    pthread_mutex_unlock(&n->amu);
}

void rp_host_peer_text(const ringp2p_peer_id *id, char *buf, size_t cap)
{
    if (ringp2p_peer_id_to_string(id, buf, cap) < 0) snprintf(buf, cap, "?");
}

/* amu held. Advertised = base + adopted (no duplicates), and a freshly signed record of them. */
static void rebuild_addrs(ringp2p_node *n)
{
    n->naddrs = 0;
    for (size_t i = 0; i < n->nbase; i++) {
        memcpy(n->addrs[n->naddrs], n->base[i], n->base_len[i]);
        n->addr_len[n->naddrs++] = n->base_len[i];
    }
    /* circuit addresses of held relay reservations (relay_client.c), before observed ones */
    for (size_t i = 0; i < n->nraddrs && n->naddrs < RP_HOST_ADDRS_MAX; i++) {
        memcpy(n->addrs[n->naddrs], n->raddrs[i], n->raddr_len[i]);
        n->addr_len[n->naddrs++] = n->raddr_len[i];
    }
    size_t na = rp_obsaddr_count(&n->obs);
    for (size_t k = 0; k < na && n->naddrs < RP_HOST_ADDRS_MAX; k++) {
        rp_iov a = rp_obsaddr_get(&n->obs, k);
        bool dup = a.len > RP_OBSADDR_ADDR_MAX;
        for (size_t i = 0; !dup && i < n->naddrs; i++)
            dup = n->addr_len[i] == a.len && memcmp(n->addrs[i], a.base, a.len) == 0;
        if (dup) continue;
        memcpy(n->addrs[n->naddrs], a.base, a.len);
        n->addr_len[n->naddrs++] = a.len;
    }
    free(n->record);
    n->record = NULL;
    n->record_len = 0;
    if (n->naddrs == 0) return;
    rp_iov v[RP_HOST_ADDRS_MAX];
    for (size_t i = 0; i < n->naddrs; i++) v[i] = rp_iov_make(n->addrs[i], n->addr_len[i]);
    uint8_t rec[4096];
    uint64_t seq = rp_peer_record_next_seq(rp_host_unix_ns(), n->record_seq);
    ringp2p_errinfo ei;
    ssize_t rl = rp_peer_record_seal(n->key, seq, v, n->naddrs, rec, sizeof(rec), &ei);
    if (rl < 0) {
        rp_logf(&n->log, RINGP2P_LOG_WARN, "host", "cannot sign our peer record: %s", ei.msg);
        return;
    }
    if ((n->record = malloc((size_t)rl)) != NULL) {
        memcpy(n->record, rec, (size_t)rl);
        n->record_len = (size_t)rl;
        n->record_seq = seq;
    }
}

void rp_host_set_obsaddr(ringp2p_node *n, const rp_obsaddr_config *cfg)
{
    pthread_mutex_lock(&n->amu);
    n->obs_cfg = *cfg;
    rp_obsaddr_init(&n->obs, cfg);
    pthread_mutex_unlock(&n->amu);
}

uint64_t rp_host_conns_refused(const ringp2p_node *n)
{
    return atomic_load(&n->conns_refused);
}

static void push_task(rp_shard *sh, void *arg)
{
    rp_hshard *hs = arg;
    (void)sh;
    if (!hs->stopping) rp_hshard_push_identify(hs);
}

/* On hs, after the adopted set changed (amu released): push everywhere, tell the application. */
static void addrs_changed(rp_hshard *hs)
{
    ringp2p_node *n = hs->node;
    if (atomic_load(&n->stopped)) return;
    for (unsigned i = 0; i < n->nshards; i++)
        if (rp_shard_post(hs->sh, i, push_task, n->shards[i]) != 0 && i == hs->idx)
            push_task(hs->sh, hs);
    rp_host_emit(n, RINGP2P_EVENT_ADDRS_CHANGED, NULL, 0, NULL);
}

void rp_host_addrs_rebuild(rp_hshard *hs)
{
    ringp2p_node *n = hs->node;
    pthread_mutex_lock(&n->amu);
    rebuild_addrs(n);
    pthread_mutex_unlock(&n->amu);
    addrs_changed(hs);
}

static void obs_timer_fired(rp_timer *t, void *arg)
{
    rp_hshard *hs = arg;
    ringp2p_node *n = hs->node;
    (void)t;
    uint64_t now = rp_shard_now(hs->sh);
    pthread_mutex_lock(&n->amu);
    bool changed = rp_obsaddr_expire(&n->obs, now) == 1;
    if (changed) rebuild_addrs(n);
    uint64_t next = rp_obsaddr_next_expiry(&n->obs);
    bool rearm = next != UINT64_MAX && !hs->stopping;
    n->obs_timer_armed = rearm;
    pthread_mutex_unlock(&n->amu);
    if (rearm) rp_timer_arm(rp_shard_timers(hs->sh), &hs->obs_timer, next > now ? next : now + 1);
    if (changed) addrs_changed(hs);
}

/* On shard 0: arm the expiry timer for the earliest report. */
static void obs_arm_task(rp_shard *sh, void *arg)
{
    ringp2p_node *n = arg;
    rp_hshard *hs = n->shards[rp_shard_id(sh)];
    if (hs->stopping) return;
    obs_timer_fired(&hs->obs_timer, hs);
}

void rp_host_observed(rp_hshard *hs, const ringp2p_peer_id *observer, const uint8_t *remote,
                      size_t rlen, const uint8_t *local, size_t llen, const uint8_t *observed,
                      size_t olen)
{
    ringp2p_node *n = hs->node;
    int lc;
    const uint8_t *lip;
    uint16_t lport;
    /* AutoNAT asks a server about the address it saw, outbound connections included */
    if (n->autonat != NULL) rp_autonat_svc_observed(hs, observer, remote, rlen, observed, olen);
    if (local == NULL || !ip_port(local, llen, &lc, &lip, &lport)) return;
    /* The listen address this connection came in on: same family and port, same or any IP. */
    const uint8_t *laddr = NULL;
    size_t laddr_len = 0;
    for (size_t i = 0; i < n->nladdrs && laddr == NULL; i++) {
        int c;
        const uint8_t *ip;
        uint16_t port;
        if (ip_port(n->laddrs[i], n->laddr_len[i], &c, &ip, &port) && c == lc && port == lport &&
            (ip_unspecified(c, ip) || memcmp(ip, lip, c == RINGP2P_P_IP4 ? 4 : 16) == 0)) {
            laddr = n->laddrs[i];
            laddr_len = n->laddr_len[i];
        }
    }
    if (laddr == NULL) return;
    uint64_t now = rp_shard_now(hs->sh);
    ringp2p_errinfo ei;
    pthread_mutex_lock(&n->amu);
    int r = rp_obsaddr_record(&n->obs, observer, remote, remote != NULL ? rlen : 0, laddr,
                              laddr_len, observed, olen, now, &ei);
    if (r == 1) rebuild_addrs(n);
    bool arm = !n->obs_timer_armed && rp_obsaddr_next_expiry(&n->obs) != UINT64_MAX;
    if (arm) n->obs_timer_armed = true;
    pthread_mutex_unlock(&n->amu);
    if (r < 0) rp_logf(&n->log, RINGP2P_LOG_DEBUG, "host", "observed address ignored: %s", ei.msg);
    if (arm && rp_shard_post(hs->sh, 0, obs_arm_task, n) != 0) {
        pthread_mutex_lock(&n->amu);
        n->obs_timer_armed = false; /* the next report tries again */
        pthread_mutex_unlock(&n->amu);
    }
    if (r == 1) addrs_changed(hs);
}

void rp_host_observer_gone(rp_hshard *hs, const ringp2p_peer_id *peer)
{
    ringp2p_node *n = hs->node;
    pthread_mutex_lock(&n->amu);
    bool changed = rp_obsaddr_forget(&n->obs, peer) == 1;
    if (changed) rebuild_addrs(n);
    pthread_mutex_unlock(&n->amu);
    if (changed) addrs_changed(hs);
}

static void on_accept(rp_shard *sh, void *arg, rp_conn *c)
{
    ringp2p_node *n = arg;
    rp_hconn_accept(n->shards[rp_shard_id(sh)], c);
}

RINGP2P_API int ringp2p_node_start(ringp2p_node *n, ringp2p_errinfo *ei)
{
    if (atomic_exchange(&n->started, true)) return rp_err(ei, RINGP2P_EINVAL, "already started");
    rp_runtime_config rc;
    rp_runtime_config_default(&rc);
    rc.nshards = n->cfg.shards;
    rc.pin = false;
    rc.log = &n->log;
    int r = rp_runtime_new(&rc, &n->rt, ei);
    if (r < 0) return r;
    n->nshards = rp_runtime_nshards(n->rt);
    n->shards = calloc(n->nshards, sizeof(*n->shards));
    if (n->shards == NULL) return RINGP2P_ENOMEM;
    for (unsigned i = 0; i < n->nshards; i++) {
        rp_hshard *hs = calloc(1, sizeof(*hs));
        if (hs == NULL) return RINGP2P_ENOMEM;
        hs->node = n;
        hs->idx = i;
        hs->sh = rp_runtime_shard(n->rt, i);
        rp_timer_init(&hs->obs_timer, obs_timer_fired, hs);
        rp_turn_task_init(&hs->flush_turn, rp_hconn_flush_turn, hs);
        pthread_mutex_lock(&n->mu);
        hs->handlers = rp_htable_ref(n->handlers);
        pthread_mutex_unlock(&n->mu);
        n->shards[i] = hs;
    }
    for (size_t i = 0; i < n->cfg.nlisten; i++) {
        ringp2p_multiaddr *ma;
        r = ringp2p_multiaddr_parse(n->cfg.listen[i], &ma, ei);
        if (r < 0) return r;
        size_t len;
        const uint8_t *b = ringp2p_multiaddr_bytes(ma, &len);
        rp_listener *l;
        r = rp_tcp_listen(n->rt, b, len, NULL, on_accept, n, &l, ei);
        ringp2p_multiaddr_free(ma);
        if (r < 0) return r;
        n->listeners[n->nlisteners++] = l;
        ssize_t al = rp_tcp_listener_maddr(l, n->laddrs[n->nladdrs], RP_TCP_MADDR_MAX);
        if (al > 0) n->laddr_len[n->nladdrs++] = (size_t)al;
    }
    expand_listen_addrs(n);
    pthread_mutex_lock(&n->amu);
    rebuild_addrs(n);
    pthread_mutex_unlock(&n->amu);
    if (n->rclient != NULL) rp_relay_client_start(n);
    return 0;
}

/* A task posted from a thread outside the shards: retried while the inbox is full. */
int rp_host_post_retry(ringp2p_node *n, unsigned to, rp_task_fn fn, void *arg)
{
    for (;;) {
        int r = rp_runtime_post(n->rt, to, fn, arg);
        if (r != RINGP2P_EAGAIN) return r;
        usleep(100);
    }
}

typedef struct stop_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned left;
} stop_wait;

typedef struct stop_arg {
    ringp2p_node *node;
    stop_wait *w;
} stop_arg;

static void stop_task(rp_shard *sh, void *arg)
{
    stop_arg *a = arg;
    rp_hshard *hs = a->node->shards[rp_shard_id(sh)];
    rp_timer_cancel(&hs->obs_timer);
    rp_autonat_svc_stop_shard(hs);
    rp_relay_client_stop_shard(hs);
    rp_dcutr_svc_stop_shard(hs);
    rp_hshard_close_all(hs);
    pthread_mutex_lock(&a->w->mu);
    if (--a->w->left == 0) pthread_cond_signal(&a->w->cv);
    pthread_mutex_unlock(&a->w->mu);
}

RINGP2P_API void ringp2p_node_stop(ringp2p_node *n)
{
    if (n == NULL || n->rt == NULL || atomic_exchange(&n->stopped, true)) return;
    for (size_t i = 0; i < n->nlisteners; i++) rp_listener_close(n->listeners[i]);
    stop_wait w = { .left = n->nshards };
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    stop_arg *args = calloc(n->nshards, sizeof(*args));
    for (unsigned i = 0; args != NULL && i < n->nshards; i++) {
        args[i].node = n;
        args[i].w = &w;
        if (rp_host_post_retry(n, i, stop_task, &args[i]) != 0) {
            pthread_mutex_lock(&w.mu);
            w.left--;
            pthread_mutex_unlock(&w.mu);
        }
    }
    pthread_mutex_lock(&w.mu);
    while (args != NULL && w.left > 0) pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    rp_runtime_stop(n->rt);
    free(args);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
}

RINGP2P_API void ringp2p_node_free(ringp2p_node *n)
{
    if (n == NULL) return;
    ringp2p_node_stop(n);
    rp_runtime_free(n->rt);
    for (unsigned i = 0; n->shards != NULL && i < n->nshards; i++) {
        if (n->shards[i] == NULL) continue;
        rp_htable_unref(n->shards[i]->handlers);
        free(n->shards[i]);
    }
    free(n->shards);
    for (size_t i = 0; i < n->cfg.nlisten; i++) free(n->cfg.listen[i]);
    free(n->record);
    free(n->pubkey_pb);
    rp_relay_svc_free(n->relay); /* signs with n->key */
    rp_autonat_svc_free(n->autonat);
    rp_relay_client_free(n->rclient);
    rp_dcutr_svc_free(n->dcutr);
    rp_hsec_shared_free(atomic_load(&n->sec_shared));
    ringp2p_privkey_free(n->key);
    rp_htable_unref(n->handlers);
    free(n->dir);
    pthread_mutex_destroy(&n->mu);
    pthread_mutex_destroy(&n->amu);
    free(n);
}

RINGP2P_API const ringp2p_peer_id *ringp2p_node_id(const ringp2p_node *n)
{
    return &n->id;
}

RINGP2P_API size_t ringp2p_node_addrs(ringp2p_node *n, ringp2p_multiaddr **out, size_t max)
{
    const rp_maddr_proto *p2p = rp_maddr_proto_by_code(RINGP2P_P_P2P);
    pthread_mutex_lock(&n->amu);
    for (size_t i = 0; i < n->naddrs && i < max; i++) {
        uint8_t buf[RP_OBSADDR_ADDR_MAX + 64];
        memcpy(buf, n->addrs[i], n->addr_len[i]);
        ssize_t c = rp_maddr_put_component(p2p, n->id.bytes, n->id.len, buf + n->addr_len[i],
                                           sizeof(buf) - n->addr_len[i], NULL);
        out[i] = NULL;
        if (c > 0) ringp2p_multiaddr_from_bytes(buf, n->addr_len[i] + (size_t)c, &out[i], NULL);
    }
    size_t total = n->naddrs;
    pthread_mutex_unlock(&n->amu);
    return total;
}

/* ---- handlers ----------------------------------------------------------------------------- */

typedef struct install_arg {
    rp_hshard *hs;
    rp_htable *t;
} install_arg;

static void install_run(rp_shard *sh, void *arg)
{
    install_arg *a = arg;
    (void)sh;
    rp_htable_unref(a->hs->handlers);
    a->hs->handlers = a->t;
    if (!a->hs->stopping) rp_hshard_push_identify(a->hs);
    free(a);
}

static int set_handler(ringp2p_node *n, const char *protocol, ringp2p_stream_handler fn, void *ctx)
{
    if (protocol == NULL || *protocol == 0 || strlen(protocol) > RP_MSS_PROTO_MAX)
        return RINGP2P_EINVAL;
    pthread_mutex_lock(&n->mu);
    if (fn == NULL && rp_htable_find(n->handlers, protocol, strlen(protocol)) < 0) {
        pthread_mutex_unlock(&n->mu);
        return RINGP2P_ENOENT;
    }
    rp_htable *t = htable_with(n->handlers, protocol, fn, ctx);
    if (t == NULL) {
        pthread_mutex_unlock(&n->mu);
        return RINGP2P_ENOMEM;
    }
    rp_htable_unref(n->handlers);
    n->handlers = t;
    bool live = n->shards != NULL && !atomic_load(&n->stopped);
    for (unsigned i = 0; live && i < n->nshards; i++) {
        install_arg *a = malloc(sizeof(*a));
        if (a == NULL) continue;
        a->hs = n->shards[i];
        a->t = rp_htable_ref(t);
        if (rp_host_post_retry(n, i, install_run, a) != 0) {
            rp_htable_unref(a->t);
            free(a);
        }
    }
    pthread_mutex_unlock(&n->mu);
    return 0;
}

RINGP2P_API int ringp2p_node_set_stream_handler(ringp2p_node *n, const char *protocol,
                                                ringp2p_stream_handler fn, void *ctx)
{
    if (fn == NULL) return RINGP2P_EINVAL;
    return set_handler(n, protocol, fn, ctx);
}

RINGP2P_API int ringp2p_node_remove_stream_handler(ringp2p_node *n, const char *protocol)
{
    return set_handler(n, protocol, NULL, NULL);
}

/* ---- directory and events ----------------------------------------------------------------- */

void rp_host_dir_add(ringp2p_node *n, const ringp2p_peer_id *peer, unsigned shard, uint64_t id,
                     bool relayed)
{
    pthread_mutex_lock(&n->mu);
    if (n->ndir == n->capdir) {
        size_t cap = n->capdir ? n->capdir * 2 : 16;
        rp_hdir *d = realloc(n->dir, cap * sizeof(*d));
        if (d == NULL) {
            pthread_mutex_unlock(&n->mu);
            return;
        }
        n->dir = d;
        n->capdir = cap;
    }
    n->dir[n->ndir++] = (rp_hdir){ *peer, shard, id, relayed };
    pthread_mutex_unlock(&n->mu);
}

bool rp_host_dir_has(ringp2p_node *n, const ringp2p_peer_id *peer)
{
    bool has = false;
    pthread_mutex_lock(&n->mu);
    for (size_t i = 0; i < n->ndir && !has; i++) has = ringp2p_peer_id_equal(&n->dir[i].peer, peer);
    pthread_mutex_unlock(&n->mu);
    return has;
}

bool rp_host_dir_direct(ringp2p_node *n, const ringp2p_peer_id *peer, uint64_t *id, unsigned *shard)
{
    bool has = false;
    pthread_mutex_lock(&n->mu);
    for (size_t i = 0; i < n->ndir && !has; i++) {
        const rp_hdir *d = &n->dir[i];
        if (d->relayed || !ringp2p_peer_id_equal(&d->peer, peer)) continue;
        has = true;
        *id = d->conn_id;
        *shard = d->shard;
    }
    pthread_mutex_unlock(&n->mu);
    return has;
}

void rp_host_dir_remove(ringp2p_node *n, uint64_t id)
{
    pthread_mutex_lock(&n->mu);
    for (size_t i = 0; i < n->ndir; i++)
        if (n->dir[i].conn_id == id) {
            n->dir[i] = n->dir[--n->ndir];
            break;
        }
    pthread_mutex_unlock(&n->mu);
}

void rp_host_emit(ringp2p_node *n, ringp2p_event_type type, const ringp2p_conn_info *ci, int err,
                  const char *agent)
{
    /* a reservation lasts while its peer is connected (dir_remove ran before this) */
    if (type == RINGP2P_EVENT_DISCONNECTED && n->relay != NULL) rp_relay_svc_conn_closed(n, ci);
    if (n->autonat != NULL) rp_autonat_svc_event(n, type, ci);
    if (n->rclient != NULL) rp_relay_client_event(n, type, ci);
    if (n->dcutr != NULL) rp_dcutr_svc_event(n, type, ci);
    if (n->cfg.ev_fn == NULL) return;
    ringp2p_event ev = { .type = type, .conn = ci, .err = err, .agent_version = agent };
    n->cfg.ev_fn(n, &ev, n->cfg.ev_ctx);
}

/* ---- stream requests ---------------------------------------------------------------------- */

void rp_hopen_free(rp_hopen *o)
{
    if (o == NULL) return;
    free(o->addr);
    free(o->protos); /* one block: the pointers, then the strings */
    free(o);
}

void rp_hopen_fail(rp_hopen *o, int err, const ringp2p_errinfo *ei)
{
    ringp2p_errinfo tmp;
    if (ei == NULL) {
        tmp.code = err;
        snprintf(tmp.msg, sizeof(tmp.msg), "%s", ringp2p_strerror(err));
        ei = &tmp;
    }
    if (o->fn != NULL) o->fn(o->node, NULL, err, ei, o->ctx);
    rp_hopen_free(o);
}

void rp_host_open_on_shard(rp_hshard *hs, rp_hopen *o)
{
    if (hs->stopping) {
        rp_hopen_fail(o, RINGP2P_ECLOSED, NULL);
        return;
    }
    rp_hconn *hc = NULL;
    if (o->conn_id != 0) hc = rp_hconn_find(hs, o->conn_id);
    /* picked before it began to close (a go-away, a hang-up): another, or a new dial */
    if (hc != NULL && !rp_hconn_takes_streams(hc)) hc = NULL;
    /* a relayed connection serves a bare /p2p/ or a circuit address, never a direct dial */
    if (hc == NULL && o->has_peer)
        hc = rp_hshard_find_peer(hs, &o->peer, o->addr_len == 0 || o->circuit);
    if (hc != NULL) {
        rp_hconn_open_stream(hc, o);
        return;
    }
    if (o->addr_len == 0) {
        /* A bare /p2p/<id>: only an existing connection can serve it. */
        char txt[RINGP2P_PEER_ID_STR_MAX];
        ringp2p_errinfo ei;
        if (ringp2p_peer_id_to_string(&o->peer, txt, sizeof(txt)) < 0) strcpy(txt, "?");
        rp_err(&ei, RINGP2P_ENOENT, "not connected to %s, and /p2p/%s alone has no address to dial",
               txt, txt);
        rp_hopen_fail(o, RINGP2P_ENOENT, &ei);
        return;
    }
    if (o->circuit) {
        rp_relay_client_dial(hs, o);
        return;
    }
    rp_hconn_dial(hs, o);
}

/*
 * AutoNAT's dial-back (autonat_svc.h). The host otherwise reuses one
 * connection per peer, which would prove nothing: a probe is an rp_hopen
 * marked `probe`, dialed as any other on this shard, and hconn.c treats its
 * connection apart in three places only: rp_hshard_find_peer never returns it
 * (no stream request joins it), its deadline is the probe's, and where a
 * connection would become ready (start_muxer) it reports success to fn and
 * closes instead: no directory entry, no events, no identify. Failures reach
 * fn through the usual failed-open path (rp_hopen_fail).
 */
int rp_host_probe_dial(rp_hshard *hs, const uint8_t *addr, size_t len, const ringp2p_peer_id *peer,
                       uint64_t timeout_ns, ringp2p_open_fn fn, void *ctx)
{
    if (hs->stopping) return RINGP2P_ECLOSED;
    rp_hopen *o = calloc(1, sizeof(*o));
    if (o == NULL || (o->addr = malloc(len)) == NULL) {
        free(o);
        return RINGP2P_ENOMEM;
    }
    memcpy(o->addr, addr, len);
    o->addr_len = len;
    o->node = hs->node;
    o->has_peer = true;
    o->peer = *peer;
    o->fn = fn;
    o->ctx = ctx;
    o->probe = true;
    o->probe_timeout_ns = timeout_ns > 0 ? timeout_ns : 1;
    rp_hconn_dial(hs, o); /* fn runs, now or later, whatever it returns */
    return 0;
}

static void open_task(rp_shard *sh, void *arg)
{
    rp_hopen *o = arg;
    rp_host_open_on_shard(o->node->shards[rp_shard_id(sh)], o);
}

static unsigned peer_shard(const ringp2p_peer_id *p, unsigned nshards)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < p->len; i++) h = (h ^ p->bytes[i]) * 16777619u;
    return h % nshards;
}

/*
 * The shape of a multiaddr for new_stream: TCP (ip4|ip6, tcp, maybe p2p, as
 * rp_tcp_matches), a bare /p2p/, or neither; and the value of its last
 * component when that is /p2p/. A ringp2p_multiaddr was validated when it was
 * made, so this walk only splits components: no value is checked again (the
 * /p2p/ check decodes the key inside an identity peer ID, which cost more
 * than the rest of a stream open).
 */
typedef struct addr_shape {
    bool tcp, peer_only;
    const uint8_t *p2p; /* NULL: the last component is not /p2p/ */
    size_t p2p_len;
} addr_shape;

static void addr_scan(const uint8_t *b, size_t len, addr_shape *out)
{
    memset(out, 0, sizeof(*out));
    const uint8_t *p = b, *end = b + len;
    uint64_t codes[3] = { 0 };
    size_t n = 0;
    while (p < end) {
        uint64_t code, l = 0;
        const rp_maddr_proto *pr = NULL;
        if (rp_uvarint_decode(&p, end, &code) != 0 || (pr = rp_maddr_proto_by_code(code)) == NULL ||
            (pr->size == RP_MADDR_SIZE_VAR && rp_uvarint_decode(&p, end, &l) != 0)) {
            memset(out, 0, sizeof(*out)); /* not valid: cannot happen for a ringp2p_multiaddr */
            return;
        }
        size_t vlen = pr->size > 0 ? (size_t)pr->size : (size_t)l;
        if (vlen > (size_t)(end - p)) {
            memset(out, 0, sizeof(*out));
            return;
        }
        if (n < 3) codes[n] = code;
        n++;
        out->p2p = code == RINGP2P_P_P2P ? p : NULL;
        out->p2p_len = code == RINGP2P_P_P2P ? vlen : 0;
        p += vlen;
    }
    out->tcp = (n == 2 || (n == 3 && codes[2] == RINGP2P_P_P2P)) &&
               (codes[0] == RINGP2P_P_IP4 || codes[0] == RINGP2P_P_IP6) &&
               codes[1] == RINGP2P_P_TCP;
    out->peer_only = n == 1 && codes[0] == RINGP2P_P_P2P;
}

RINGP2P_API int ringp2p_node_new_stream(ringp2p_node *n, const ringp2p_multiaddr *addr,
                                        const char *const *protocols, size_t np, ringp2p_open_fn fn,
                                        void *ctx)
{
    if (n == NULL || addr == NULL || protocols == NULL || np == 0 || np > RP_MSS_MAX_ROUNDS ||
        fn == NULL)
        return RINGP2P_EINVAL;
    if (!atomic_load(&n->started) || n->rt == NULL || atomic_load(&n->stopped))
        return RINGP2P_ECLOSED;
    size_t len;
    const uint8_t *b = ringp2p_multiaddr_bytes(addr, &len);
    /* A TCP address (maybe with /p2p/<id>), a bare /p2p/<id> naming a connected peer, or a
     * relayed address (relay_client.c). */
    addr_shape shape;
    addr_scan(b, len, &shape);
    bool peer_only = shape.peer_only;
    bool circuit = !peer_only && !shape.tcp && rp_relay_is_circuit(b, len);
    if (!peer_only && !circuit && !shape.tcp) return RINGP2P_EUNSUPPORTED;
    if (peer_only) len = 0;
    for (size_t i = 0; i < np; i++)
        if (protocols[i] == NULL || *protocols[i] == 0 || strlen(protocols[i]) > RP_MSS_PROTO_MAX)
            return RINGP2P_EINVAL;
    rp_hopen *o = calloc(1, sizeof(*o));
    if (o == NULL) return RINGP2P_ENOMEM;
    o->node = n;
    o->fn = fn;
    o->ctx = ctx;
    o->addr = len != 0 ? malloc(len) : NULL;
    size_t plen[RP_MSS_MAX_ROUNDS], ptotal = np * sizeof(char *);
    for (size_t i = 0; i < np; i++) ptotal += (plen[i] = strlen(protocols[i]) + 1);
    o->protos = malloc(ptotal); /* one block: the pointers, then the strings (rp_hopen_free) */
    if ((len != 0 && o->addr == NULL) || o->protos == NULL) goto nomem;
    if (len != 0) memcpy(o->addr, b, len);
    o->addr_len = len;
    char *str = (char *)(o->protos + np);
    for (size_t i = 0; i < np; i++) {
        o->protos[i] = memcpy(str, protocols[i], plen[i]);
        str += plen[i];
    }
    o->nprotos = np;
    o->circuit = circuit;
    unsigned shard = 0;
    if (shape.p2p != NULL) {
        /*
         * A connected peer's ID is matched by its bytes (the directory's IDs
         * were checked when their connections were secured); only an unknown
         * one is decoded and checked here. A direct connection comes before a
         * relayed one, which only a bare /p2p/ or a circuit address may use (a
         * direct address dials).
         */
        bool relay_ok = peer_only || circuit;
        pthread_mutex_lock(&n->mu);
        const rp_hdir *pick = NULL;
        for (size_t i = 0; i < n->ndir; i++) {
            const rp_hdir *d = &n->dir[i];
            if (d->peer.len != shape.p2p_len ||
                memcmp(d->peer.bytes, shape.p2p, shape.p2p_len) != 0 || (d->relayed && !relay_ok))
                continue;
            if (pick == NULL || !d->relayed) pick = d;
            if (!d->relayed) break;
        }
        if (pick != NULL) {
            o->has_peer = true;
            o->peer = pick->peer;
            shard = pick->shard;
            o->conn_id = pick->conn_id;
        }
        pthread_mutex_unlock(&n->mu);
        if (pick == NULL) {
            o->has_peer = ringp2p_peer_id_from_bytes(shape.p2p, shape.p2p_len, &o->peer, NULL) == 0;
            if (o->has_peer) shard = peer_shard(&o->peer, n->nshards);
        }
    }
    if (peer_only && !o->has_peer) goto bad_peer; /* identity peer ID that is not a key */
    if (!o->has_peer) {
        shard = atomic_fetch_add(&n->next_dial_shard, 1) % n->nshards;
    }
    int r = rp_host_post_retry(n, shard, open_task, o);
    if (r < 0) {
        o->fn = NULL;
        rp_hopen_free(o);
    }
    return r;
nomem:
    o->fn = NULL;
    rp_hopen_free(o);
    return RINGP2P_ENOMEM;
bad_peer:
    o->fn = NULL;
    rp_hopen_free(o);
    return RINGP2P_EPEERID;
}
