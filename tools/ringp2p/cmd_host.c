/* ringp2p listen / ping / identify / stream / perf: a libp2p host on the command line. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "multiformats/multiaddr.h"
#include "protocols/identify.h"
#include "protocols/perf.h"
#include "ringp2p/node.h"

typedef struct host_opts {
    const char *cmd;
    const char *key, *security, *muxer, *shards;
    double timeout_s;
    bool json;
    bool no_relay;      /* --no-relay: no relayed dialing, no stop protocol */
    bool no_dcutr;      /* --no-dcutr: no hole punching */
    bool dcutr_private; /* --dcutr-allow-private */
    const char *listen; /* ping, stream: --listen, comma-separated (listen reads its own) */
} host_opts;

static int host_opts_get(const char *cmd, cli_flag *flags, size_t nflags, host_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->cmd = cmd;
    cli_flag *f;
    if ((f = cli_flag_get(flags, nflags, "key")) != NULL) o->key = f->value;
    if ((f = cli_flag_get(flags, nflags, "security")) != NULL) o->security = f->value;
    if ((f = cli_flag_get(flags, nflags, "muxer")) != NULL) o->muxer = f->value;
    if ((f = cli_flag_get(flags, nflags, "shards")) != NULL) o->shards = f->value;
    if ((f = cli_flag_get(flags, nflags, "json")) != NULL) o->json = f->set;
    if ((f = cli_flag_get(flags, nflags, "no-relay")) != NULL) o->no_relay = f->set;
    if ((f = cli_flag_get(flags, nflags, "no-dcutr")) != NULL) o->no_dcutr = f->set;
    if ((f = cli_flag_get(flags, nflags, "dcutr-allow-private")) != NULL) o->dcutr_private = f->set;
    if ((f = cli_flag_get(flags, nflags, "listen")) != NULL) o->listen = f->value;
    o->timeout_s = 10;
    if ((f = cli_flag_get(flags, nflags, "timeout")) != NULL && f->value != NULL) {
        char *end;
        o->timeout_s = strtod(f->value, &end);
        if (*end != 0 || o->timeout_s <= 0) {
            fprintf(stderr, "ringp2p %s: --timeout wants seconds > 0\n", cmd);
            return CLI_USAGE;
        }
    }
    return 0;
}

/* A config from the common flags; listen addresses are added by the caller. */
static int host_config(const host_opts *o, ringp2p_config **out)
{
    ringp2p_config *cfg = ringp2p_config_new();
    if (cfg == NULL) return cli_fail(o->cmd, "config", RINGP2P_ENOMEM, NULL);
    ringp2p_errinfo ei;
    int r;
    if (o->key != NULL) {
        ringp2p_privkey *k;
        r = ringp2p_privkey_load(o->key, &k, &ei);
        if (r < 0) goto fail_key;
        ringp2p_config_identity(cfg, k);
        ringp2p_privkey_free(k);
    }
    if (o->security != NULL && (r = ringp2p_config_security(cfg, o->security, &ei)) < 0) {
        ringp2p_config_free(cfg);
        return cli_fail(o->cmd, "--security", r, &ei);
    }
    if (o->muxer != NULL && (r = ringp2p_config_muxers(cfg, o->muxer, &ei)) < 0) {
        ringp2p_config_free(cfg);
        return cli_fail(o->cmd, "--muxer", r, &ei);
    }
    unsigned shards = o->shards != NULL ? (unsigned)atoi(o->shards) : 1;
    ringp2p_config_shards(cfg, shards);
    /* one-shot commands end before AutoNAT could tell them anything; listen sets its own */
    ringp2p_config_autonat(cfg, 0);
    ringp2p_config_limit(cfg, RINGP2P_LIMIT_DIAL_TIMEOUT_MS, (uint64_t)(o->timeout_s * 1000));
    if (o->no_relay) ringp2p_config_relay_client(cfg, false);
    if (o->no_dcutr)
        ringp2p_config_dcutr(cfg, 0);
    else if (o->dcutr_private)
        ringp2p_config_dcutr(cfg, RINGP2P_DCUTR_ON | RINGP2P_DCUTR_ALLOW_PRIVATE);
    *out = cfg;
    return 0;
fail_key:
    ringp2p_config_free(cfg);
    return cli_fail(o->cmd, "reading the key file", r, &ei);
}

/* fn(cfg, item) for each item of a comma-separated list; the first failure is reported. */
static int config_each(ringp2p_config *cfg, const char *list,
                       int (*fn)(ringp2p_config *, const char *, ringp2p_errinfo *),
                       const char *cmd, const char *flag)
{
    if (list == NULL) return 0;
    char *dup = strdup(list);
    if (dup == NULL) return cli_fail(cmd, flag, RINGP2P_ENOMEM, NULL);
    ringp2p_errinfo ei;
    for (char *save = NULL, *a = strtok_r(dup, ",", &save); a != NULL;
         a = strtok_r(NULL, ",", &save)) {
        int r = fn(cfg, a, &ei);
        if (r < 0) {
            free(dup);
            return cli_fail(cmd, flag, r, &ei);
        }
    }
    free(dup);
    return 0;
}

static void addr_text(const ringp2p_multiaddr *ma, char *buf, size_t cap)
{
    buf[0] = 0;
    if (ma == NULL || ringp2p_multiaddr_to_string(ma, buf, cap) < 0) snprintf(buf, cap, "unknown");
}

/* A hole punch ended (DCUtR): one line, JSON or text. */
static void holepunch_print(bool json, const ringp2p_event *ev)
{
    const ringp2p_holepunch_info *hi = ev->holepunch;
    char id[RINGP2P_PEER_ID_STR_MAX];
    ringp2p_peer_id_to_string(&hi->peer, id, sizeof(id));
    unsigned long long rtt_us = (unsigned long long)(hi->rtt_ns / 1000);
    flockfile(stdout);
    if (json) {
        printf("{\"event\":\"holepunch\",\"peerId\":\"%s\",\"ok\":%s,\"attempts\":%u,"
               "\"rttUs\":%llu,\"initiator\":%s",
               id, hi->ok ? "true" : "false", hi->attempts, rtt_us,
               hi->initiator ? "true" : "false");
        if (!hi->ok) {
            printf(",\"error\":");
            json_str(stdout, hi->error != NULL ? hi->error : "");
        }
        printf("}\n");
    } else if (hi->ok) {
        printf("holepunch with %s: direct connection (attempt %u, relay rtt %.3f ms)\n", id,
               hi->attempts, (double)rtt_us / 1000.0);
    } else {
        printf("holepunch with %s failed (%u attempt%s): %s\n", id, hi->attempts,
               hi->attempts == 1 ? "" : "s", hi->error != NULL ? hi->error : "");
    }
    fflush(stdout);
    funlockfile(stdout);
}

/* ---- listen ------------------------------------------------------------------------------- */

typedef struct listen_ctx {
    bool json;
} listen_ctx;

/* The relay service's events (--relay-server). */
static void relay_event(const listen_ctx *lc, const ringp2p_event *ev)
{
    const ringp2p_relay_info *ri = ev->relay;
    char src[RINGP2P_PEER_ID_STR_MAX], dst[RINGP2P_PEER_ID_STR_MAX];
    ringp2p_peer_id_to_string(&ri->src, src, sizeof(src));
    const char *why = ev->err == 0 ? "closed" : ringp2p_strerror(ev->err);
    flockfile(stdout);
    if (ev->type == RINGP2P_EVENT_RELAY_RESERVATION) {
        if (lc->json)
            printf("{\"event\":\"relay-reservation\",\"peerId\":\"%s\",\"expires\":%llu}\n", src,
                   (unsigned long long)ri->expire);
        else
            printf("relay reservation by %s until %llu (Unix time)\n", src,
                   (unsigned long long)ri->expire);
    } else {
        ringp2p_peer_id_to_string(&ri->dst, dst, sizeof(dst));
        if (lc->json) {
            printf("{\"event\":\"relay-circuit\",\"src\":\"%s\",\"dst\":\"%s\",\"bytes\":%llu,"
                   "\"bytesToDst\":%llu,\"bytesToSrc\":%llu,\"durationMs\":%llu,\"reason\":",
                   src, dst, (unsigned long long)(ri->bytes_to_dst + ri->bytes_to_src),
                   (unsigned long long)ri->bytes_to_dst, (unsigned long long)ri->bytes_to_src,
                   (unsigned long long)ri->duration_ms);
            json_str(stdout, why);
            printf("}\n");
        } else {
            printf("relay circuit %s -> %s ended (%s): %llu bytes to it, %llu back, %llu ms\n", src,
                   dst, why, (unsigned long long)ri->bytes_to_dst,
                   (unsigned long long)ri->bytes_to_src, (unsigned long long)ri->duration_ms);
        }
    }
    fflush(stdout);
    funlockfile(stdout);
}

/*
 * Our reservation on a relay (--relay): made or renewed (with the circuit addresses now
 * advertised for that relay, ready to dial), refused, failed or lost.
 */
static void reservation_event(ringp2p_node *n, const listen_ctx *lc,
                              const ringp2p_reservation_info *ri)
{
    char relay[512], rid[RINGP2P_PEER_ID_STR_MAX], tag[RINGP2P_PEER_ID_STR_MAX + 32];
    addr_text(ri->relay_addr, relay, sizeof(relay));
    ringp2p_peer_id_to_string(&ri->relay, rid, sizeof(rid));
    snprintf(tag, sizeof(tag), "/p2p/%s/p2p-circuit/", rid);
    ringp2p_multiaddr *addrs[RINGP2P_MULTIADDR_MAX_COMPONENTS];
    size_t na = ri->ok ? ringp2p_node_addrs(n, addrs, RINGP2P_MULTIADDR_MAX_COMPONENTS) : 0;
    if (na > RINGP2P_MULTIADDR_MAX_COMPONENTS) na = RINGP2P_MULTIADDR_MAX_COMPONENTS;
    flockfile(stdout);
    if (lc->json) {
        printf("{\"event\":\"reservation\",\"relay\":");
        json_str(stdout, relay);
        printf(",\"ok\":%s", ri->ok ? "true" : "false");
        if (ri->ok) {
            printf(",\"expires\":%llu,\"addrs\":[", (unsigned long long)ri->expire);
            bool first = true;
            for (size_t i = 0; i < na; i++) {
                char t[512];
                addr_text(addrs[i], t, sizeof(t));
                if (strstr(t, tag) == NULL) continue;
                if (!first) putchar(',');
                first = false;
                json_str(stdout, t);
            }
            printf("]}\n");
        } else {
            printf(",\"lost\":%s,\"error\":", ri->lost ? "true" : "false");
            json_str(stdout, ri->error != NULL ? ri->error : "");
            printf("}\n");
        }
    } else if (ri->ok) {
        printf("reservation on %s until %llu (Unix time); reachable at:\n", relay,
               (unsigned long long)ri->expire);
        for (size_t i = 0; i < na; i++) {
            char t[512];
            addr_text(addrs[i], t, sizeof(t));
            if (strstr(t, tag) != NULL) printf("  %s\n", t);
        }
    } else {
        printf("reservation on %s %s: %s\n", relay, ri->lost ? "lost" : "failed",
               ri->error != NULL ? ri->error : "");
    }
    fflush(stdout);
    funlockfile(stdout);
    for (size_t i = 0; i < na; i++) ringp2p_multiaddr_free(addrs[i]);
}

static void listen_event(ringp2p_node *n, const ringp2p_event *ev, void *ctx)
{
    listen_ctx *lc = ctx;
    if (ev->type == RINGP2P_EVENT_RELAY_RESERVATION || ev->type == RINGP2P_EVENT_RELAY_CIRCUIT) {
        relay_event(lc, ev);
        return;
    }
    if (ev->type == RINGP2P_EVENT_REACHABILITY) {
        flockfile(stdout);
        if (lc->json)
            printf("{\"event\":\"reachability\",\"status\":\"%s\"}\n",
                   ringp2p_reachability_name(ev->reachability));
        else
            printf("reachability: %s\n", ringp2p_reachability_name(ev->reachability));
        fflush(stdout);
        funlockfile(stdout);
        return;
    }
    if (ev->type == RINGP2P_EVENT_RESERVATION) {
        reservation_event(n, lc, ev->reservation);
        return;
    }
    if (ev->type == RINGP2P_EVENT_HOLEPUNCH) {
        holepunch_print(lc->json, ev);
        return;
    }
    if (ev->conn == NULL) return;
    char id[RINGP2P_PEER_ID_STR_MAX], ra[512];
    ringp2p_peer_id_to_string(&ev->conn->peer, id, sizeof(id));
    addr_text(ev->conn->remote_addr, ra, sizeof(ra));
    const char *dir = ev->conn->inbound ? "inbound" : "outbound";
    flockfile(stdout);
    if (lc->json) {
        switch (ev->type) {
        case RINGP2P_EVENT_CONNECTED:
            printf("{\"event\":\"connection\",\"peerId\":\"%s\",\"remoteAddr\":", id);
            json_str(stdout, ra);
            printf(",\"direction\":\"%s\",\"relayed\":%s,\"security\":\"%s\",\"muxer\":\"%s\"}\n",
                   dir, ev->conn->relayed ? "true" : "false", ev->conn->security, ev->conn->muxer);
            break;
        case RINGP2P_EVENT_DISCONNECTED:
            printf("{\"event\":\"disconnection\",\"peerId\":\"%s\",\"remoteAddr\":", id);
            json_str(stdout, ra);
            printf(",\"direction\":\"%s\",\"reason\":", dir);
            json_str(stdout, ev->err == 0 ? "closed" : ringp2p_strerror(ev->err));
            printf("}\n");
            break;
        case RINGP2P_EVENT_IDENTIFIED:
            printf("{\"event\":\"identify\",\"peerId\":\"%s\",\"agentVersion\":", id);
            json_str(stdout, ev->agent_version != NULL ? ev->agent_version : "");
            printf("}\n");
            break;
        default: break;
        }
    } else {
        switch (ev->type) {
        case RINGP2P_EVENT_CONNECTED:
            printf("connection %s %s from %s (%s, %s%s)\n", dir, id, ra, ev->conn->security,
                   ev->conn->muxer, ev->conn->relayed ? ", relayed" : "");
            break;
        case RINGP2P_EVENT_DISCONNECTED:
            printf("disconnection %s %s: %s\n", id, ra,
                   ev->err == 0 ? "closed" : ringp2p_strerror(ev->err));
            break;
        case RINGP2P_EVENT_IDENTIFIED:
            printf("identified %s: %s\n", id, ev->agent_version ? ev->agent_version : "");
            break;
        default: break;
        }
    }
    fflush(stdout);
    funlockfile(stdout);
}

/* --connect: the identify stream that made the connection; its bytes are not needed. */
static void connect_data(ringp2p_stream *s, void *ctx, const uint8_t *data, size_t len)
{
    (void)s;
    (void)ctx;
    (void)data;
    (void)len;
}

static void connect_eof(ringp2p_stream *s, void *ctx)
{
    (void)ctx;
    ringp2p_stream_close_write(s);
}

static void connect_close(ringp2p_stream *s, void *ctx, int err)
{
    (void)s;
    (void)ctx;
    (void)err;
}

static const ringp2p_stream_callbacks connect_cbs = {
    .on_data = connect_data,
    .on_eof = connect_eof,
    .on_close = connect_close,
};

static void connect_opened(ringp2p_node *n, ringp2p_stream *s, int err, const ringp2p_errinfo *ei,
                           void *ctx)
{
    (void)n;
    if (err == 0) {
        ringp2p_stream_set_callbacks(s, &connect_cbs, NULL);
        return;
    }
    fprintf(stderr, "ringp2p listen: --connect %s: %s\n", (const char *)ctx,
            ei != NULL ? ei->msg : ringp2p_strerror(err));
}

/* Connects to each of the comma-separated peers (an identify stream opens the connection). */
static void listen_connect(ringp2p_node *node, char *list)
{
    static const char *const proto[1] = { RP_IDENTIFY_PROTOCOL_ID };
    for (char *save = NULL, *a = strtok_r(list, ",", &save); a != NULL;
         a = strtok_r(NULL, ",", &save)) {
        ringp2p_multiaddr *ma;
        ringp2p_errinfo ei;
        int r = ringp2p_multiaddr_parse(a, &ma, &ei);
        if (r == 0) {
            r = ringp2p_node_new_stream(node, ma, proto, 1, connect_opened, a);
            ringp2p_multiaddr_free(ma);
        }
        if (r < 0) fprintf(stderr, "ringp2p listen: --connect %s: %s\n", a, ringp2p_strerror(r));
    }
}

int cmd_listen(const cli_cmd *cmd, cli_flag *flags, size_t nflags, char **args, size_t nargs)
{
    (void)cmd;
    (void)args;
    (void)nargs;
    /* Every thread started from here on (shards) inherits this mask, so sigwait gets them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    host_opts o;
    int r = host_opts_get("listen", flags, nflags, &o);
    if (r != 0) return r;
    if (o.shards == NULL) o.shards = "0";
    ringp2p_config *cfg;
    if ((r = host_config(&o, &cfg)) != 0) return r;
    const char *lst = cli_flag_get(flags, nflags, "listen")->value;
    char *dup = strdup(lst != NULL ? lst : "/ip4/127.0.0.1/tcp/0");
    ringp2p_errinfo ei;
    for (char *save = NULL, *a = strtok_r(dup, ",", &save); a != NULL;
         a = strtok_r(NULL, ",", &save)) {
        if ((r = ringp2p_config_listen(cfg, a, &ei)) < 0) {
            free(dup);
            ringp2p_config_free(cfg);
            return cli_fail("listen", "--listen", r, &ei);
        }
    }
    free(dup);
    if (cli_flag_get(flags, nflags, "relay-server")->set &&
        (r = ringp2p_config_relay_service(cfg, true, NULL)) < 0) {
        ringp2p_config_free(cfg);
        return cli_fail("listen", "--relay-server", r, NULL);
    }
    const char *relays = cli_flag_get(flags, nflags, "relay")->value;
    if (relays != NULL && o.no_relay) {
        ringp2p_config_free(cfg);
        fprintf(stderr, "ringp2p listen: --relay reserves through the relay client, which "
                        "--no-relay turns off\n");
        return CLI_USAGE;
    }
    if ((r = config_each(cfg, relays, ringp2p_config_relay, "listen", "--relay")) != 0) {
        ringp2p_config_free(cfg);
        return r;
    }
    unsigned autonat = RINGP2P_AUTONAT_CLIENT;
    if (cli_flag_get(flags, nflags, "no-autonat")->set) autonat = 0;
    if (cli_flag_get(flags, nflags, "autonat-server")->set) autonat |= RINGP2P_AUTONAT_SERVER;
    if (cli_flag_get(flags, nflags, "autonat-allow-private")->set)
        autonat |= RINGP2P_AUTONAT_ALLOW_PRIVATE;
    ringp2p_config_autonat(cfg, autonat);
    const char *adt = cli_flag_get(flags, nflags, "autonat-dial-timeout")->value;
    if (adt != NULL) {
        char *end;
        double s = strtod(adt, &end);
        if (*end != 0 || !(s > 0 && s <= 3600)) {
            ringp2p_config_free(cfg);
            fprintf(stderr,
                    "ringp2p listen: --autonat-dial-timeout wants seconds, > 0 and <= 3600\n");
            return CLI_USAGE;
        }
        ringp2p_config_limit(cfg, RINGP2P_LIMIT_AUTONAT_DIAL_TIMEOUT_MS, (uint64_t)(s * 1000));
    }
    listen_ctx lc = { o.json };
    ringp2p_config_events(cfg, listen_event, &lc);
    ringp2p_node *node;
    r = ringp2p_node_new(cfg, &node, &ei);
    ringp2p_config_free(cfg);
    if (r < 0) return cli_fail("listen", "creating the node", r, &ei);
    r = ringp2p_node_start(node, &ei);
    if (r < 0) {
        ringp2p_node_free(node);
        return cli_fail("listen", "starting", r, &ei);
    }
    char id[RINGP2P_PEER_ID_STR_MAX];
    ringp2p_peer_id_to_string(ringp2p_node_id(node), id, sizeof(id));
    ringp2p_multiaddr *addrs[RINGP2P_MULTIADDR_MAX_COMPONENTS];
    size_t na = ringp2p_node_addrs(node, addrs, RINGP2P_MULTIADDR_MAX_COMPONENTS);
    flockfile(stdout);
    if (o.json)
        printf("{\"event\":\"ready\",\"peerId\":\"%s\",\"addrs\":[", id);
    else
        printf("peer %s listening on:\n", id);
    for (size_t i = 0; i < na; i++) {
        char t[512];
        addr_text(addrs[i], t, sizeof(t));
        if (o.json) {
            if (i > 0) putchar(',');
            json_str(stdout, t);
        } else {
            printf("  %s\n", t);
        }
        ringp2p_multiaddr_free(addrs[i]);
    }
    if (o.json) printf("]}\n");
    fflush(stdout);
    funlockfile(stdout);
    const char *conn = cli_flag_get(flags, nflags, "connect")->value;
    char *conns = conn != NULL ? strdup(conn) : NULL; /* connect_opened names its entry */
    if (conns != NULL) listen_connect(node, conns);
    int sig;
    sigwait(&set, &sig);
    ringp2p_node_stop(node);
    ringp2p_node_free(node);
    free(conns);
    return CLI_OK;
}

/* ---- dialing commands --------------------------------------------------------------------- */

static const char *open_what(int code)
{
    switch (code) {
    case RINGP2P_ECONNREFUSED: return "connection refused";
    case RINGP2P_ETIMEDOUT: return "timed out";
    case RINGP2P_EPEERMISMATCH: return "wrong peer ID";
    case RINGP2P_ENEGOTIATION: return "negotiation failed";
    default: return "cannot open the stream";
    }
}

/*
 * The dialing side's node, started, listening on --listen if given (so it can be punched
 * to), with node events to `ev` (may be NULL).
 */
static int start_node(const host_opts *o, ringp2p_event_fn ev, void *ev_ctx, ringp2p_node **out)
{
    ringp2p_config *cfg;
    int r = host_config(o, &cfg);
    if (r != 0) return r;
    if (ev != NULL) ringp2p_config_events(cfg, ev, ev_ctx);
    if ((r = config_each(cfg, o->listen, ringp2p_config_listen, o->cmd, "--listen")) != 0) {
        ringp2p_config_free(cfg);
        return r;
    }
    ringp2p_errinfo ei;
    ringp2p_node *node;
    r = ringp2p_node_new(cfg, &node, &ei);
    ringp2p_config_free(cfg);
    if (r == 0 && (r = ringp2p_node_start(node, &ei)) < 0) ringp2p_node_free(node);
    if (r < 0) return cli_fail(o->cmd, "starting", r, &ei);
    *out = node;
    return 0;
}

static int dial_stream(const host_opts *o, const char *maddr, const char *proto,
                       ringp2p_node **node_out, ringp2p_bstream **bs_out)
{
    ringp2p_errinfo ei;
    ringp2p_multiaddr *ma;
    int r = ringp2p_multiaddr_parse(maddr, &ma, &ei);
    if (r < 0) return cli_fail(o->cmd, "bad address", r, &ei);
    ringp2p_node *node;
    if ((r = start_node(o, NULL, NULL, &node)) != 0) {
        ringp2p_multiaddr_free(ma);
        return r;
    }
    const char *protos[1] = { proto };
    memset(&ei, 0, sizeof(ei));
    r = ringp2p_bstream_open(node, ma, protos, 1, (int)(o->timeout_s * 1000) + 500, bs_out, &ei);
    ringp2p_multiaddr_free(ma);
    if (r < 0) {
        ringp2p_node_free(node);
        return cli_fail(o->cmd, open_what(r), r, &ei);
    }
    *node_out = node;
    return 0;
}

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static ssize_t read_full(ringp2p_bstream *bs, uint8_t *buf, size_t len, int ms)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = ringp2p_bstream_read(bs, buf + got, len - got, ms);
        if (n <= 0) return n == 0 ? (ssize_t)got : n;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/*
 * One ping: a fresh /ipfs/ping/1.0.0 stream to the address, so each ping takes
 * the connection new streams take at that moment (a direct one once there is one,
 * else the relayed one) and its line can say which. The round trip is timed from
 * the write to the whole echo, the stream's opening left out.
 */
typedef struct ping_one {
    struct ping_one *next;
    pthread_mutex_t *mu;
    pthread_cond_t *cv;
    uint8_t out[32], in[32];
    size_t got;
    uint64_t t0, rtt;
    int err;
    char errmsg[RINGP2P_ERRINFO_MSG_MAX];
    bool relayed, opened, done, finished; /* done: the result; finished: no more callbacks */
} ping_one;

static void ping_signal(ping_one *p, bool finished)
{
    pthread_mutex_lock(p->mu);
    p->done = true;
    if (finished) p->finished = true;
    pthread_cond_broadcast(p->cv);
    pthread_mutex_unlock(p->mu);
}

static void ping_data(ringp2p_stream *s, void *ctx, const uint8_t *data, size_t len)
{
    ping_one *p = ctx;
    if (p->done) return;
    size_t take = len < 32 - p->got ? len : 32 - p->got;
    memcpy(p->in + p->got, data, take);
    p->got += take;
    if (p->got < 32) return;
    p->rtt = mono_us() - p->t0;
    if (memcmp(p->in, p->out, 32) != 0) p->err = RINGP2P_EPROTOCOL;
    ringp2p_stream_close_write(s);
    ping_signal(p, false);
}

static void ping_eof(ringp2p_stream *s, void *ctx)
{
    ping_one *p = ctx;
    if (!p->done) {
        p->err = RINGP2P_ECONNRESET;
        ringp2p_stream_close_write(s);
        ping_signal(p, false);
    }
}

static void ping_close(ringp2p_stream *s, void *ctx, int err)
{
    ping_one *p = ctx;
    (void)s;
    if (!p->done) p->err = err != 0 ? err : RINGP2P_ECONNRESET;
    ping_signal(p, true);
}

static const ringp2p_stream_callbacks ping_cbs = {
    .on_data = ping_data,
    .on_eof = ping_eof,
    .on_close = ping_close,
};

static void ping_opened(ringp2p_node *n, ringp2p_stream *s, int err, const ringp2p_errinfo *ei,
                        void *ctx)
{
    ping_one *p = ctx;
    (void)n;
    if (err < 0) {
        p->err = err;
        snprintf(p->errmsg, sizeof(p->errmsg), "%s",
                 ei != NULL && ei->msg[0] ? ei->msg : ringp2p_strerror(err));
        ping_signal(p, true);
        return;
    }
    pthread_mutex_lock(p->mu);
    p->opened = true;
    p->relayed = ringp2p_stream_conn(s)->relayed;
    pthread_mutex_unlock(p->mu);
    ringp2p_stream_set_callbacks(s, &ping_cbs, p);
    p->t0 = mono_us();
    if (ringp2p_stream_write(s, p->out, 32) < 0) ringp2p_stream_reset(s);
}

/* ping prints the hole punches of its node (--listen makes it punchable) beside its pings. */
static void ping_event(ringp2p_node *n, const ringp2p_event *ev, void *ctx)
{
    const host_opts *o = ctx;
    (void)n;
    if (ev->type == RINGP2P_EVENT_HOLEPUNCH) holepunch_print(o->json, ev);
}

int cmd_ping(const cli_cmd *cmd, cli_flag *flags, size_t nflags, char **args, size_t nargs)
{
    (void)cmd;
    (void)nargs;
    host_opts o;
    int r = host_opts_get("ping", flags, nflags, &o);
    if (r != 0) return r;
    const char *cs = cli_flag_get(flags, nflags, "count")->value;
    const char *is = cli_flag_get(flags, nflags, "interval")->value;
    long count = cs != NULL ? atol(cs) : 3;
    double interval = is != NULL ? atof(is) : 1.0;
    if (count <= 0) {
        fprintf(stderr, "ringp2p ping: --count wants a positive number\n");
        return CLI_USAGE;
    }
    ringp2p_errinfo ei;
    ringp2p_multiaddr *ma;
    if ((r = ringp2p_multiaddr_parse(args[0], &ma, &ei)) < 0)
        return cli_fail("ping", "bad address", r, &ei);
    ringp2p_node *node;
    if ((r = start_node(&o, ping_event, &o, &node)) != 0) {
        ringp2p_multiaddr_free(ma);
        return r;
    }
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    ping_one *all = NULL; /* freed once the node is gone: a timed-out ping may still run */
    static const char *const protos[1] = { "/ipfs/ping/1.0.0" };
    long ok = 0;
    uint64_t min = UINT64_MAX, max = 0, sum = 0;
    int rc = CLI_OK;
    for (long seq = 1; seq <= count; seq++) {
        ping_one *p = calloc(1, sizeof(*p));
        if (p == NULL) {
            rc = cli_fail("ping", "memory", RINGP2P_ENOMEM, NULL);
            break;
        }
        p->mu = &mu;
        p->cv = &cv;
        p->next = all;
        all = p;
        if (getrandom(p->out, sizeof(p->out), 0) != (ssize_t)sizeof(p->out))
            memset(p->out, (int)seq, sizeof(p->out));
        r = ringp2p_node_new_stream(node, ma, protos, 1, ping_opened, p);
        if (r < 0) {
            p->finished = true;
            rc = cli_fail("ping", open_what(r), r, NULL);
            break;
        }
        /* the first ping dials: the dial timeout and then the reply's */
        double wait_s = o.timeout_s * (seq == 1 ? 2 : 1) + 0.5;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += (time_t)wait_s;
        ts.tv_nsec += (long)((wait_s - (double)(time_t)wait_s) * 1e9);
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_mutex_lock(&mu);
        while (!p->done)
            if (pthread_cond_timedwait(&cv, &mu, &ts) != 0) break;
        bool done = p->done, opened = p->opened, relayed = p->relayed;
        int err = done ? p->err : RINGP2P_ETIMEDOUT;
        uint64_t rtt = p->rtt;
        pthread_mutex_unlock(&mu);
        if (!opened && ok == 0 && err != 0) {
            /* never reached the peer: as any dialing command says it */
            ringp2p_errinfo e2 = { err, "" };
            snprintf(e2.msg, sizeof(e2.msg), "%s", done ? p->errmsg : "timed out");
            rc = cli_fail("ping", open_what(err), err, &e2);
            break;
        }
        if (err != 0) {
            const char *why = err == RINGP2P_ETIMEDOUT    ? "timed out"
                              : err == RINGP2P_EPROTOCOL  ? "echo differs"
                              : err == RINGP2P_ECONNRESET ? "stream ended"
                                                          : ringp2p_strerror(err);
            if (o.json)
                printf("{\"event\":\"ping\",\"seq\":%ld,\"error\":\"%s\",\"relayed\":%s}\n", seq,
                       why, relayed ? "true" : "false");
            else
                fprintf(stderr, "ringp2p ping: seq %ld: %s%s%s\n", seq, why,
                        done && p->errmsg[0] ? ": " : "", done ? p->errmsg : "");
            rc = CLI_FAIL;
            break;
        }
        ok++;
        sum += rtt;
        if (rtt < min) min = rtt;
        if (rtt > max) max = rtt;
        if (o.json)
            printf("{\"event\":\"ping\",\"seq\":%ld,\"rttUs\":%llu,\"relayed\":%s}\n", seq,
                   (unsigned long long)rtt, relayed ? "true" : "false");
        else
            printf("pong seq=%ld rtt=%.3f ms (%s)\n", seq, (double)rtt / 1000.0,
                   relayed ? "relayed" : "direct");
        fflush(stdout);
        if (seq < count) usleep((useconds_t)(interval * 1e6));
    }
    if (ok > 0 || rc == CLI_OK) {
        if (o.json)
            printf("{\"event\":\"summary\",\"sent\":%ld,\"received\":%ld,\"minUs\":%llu,"
                   "\"avgUs\":%llu,\"maxUs\":%llu}\n",
                   count, ok, (unsigned long long)(ok ? min : 0),
                   (unsigned long long)(ok ? sum / (uint64_t)ok : 0), (unsigned long long)max);
        else
            printf("%ld sent, %ld received, rtt min/avg/max = %.3f/%.3f/%.3f ms\n", count, ok,
                   ok ? (double)min / 1000 : 0.0, ok ? (double)sum / (double)ok / 1000 : 0.0,
                   (double)max / 1000);
    }
    ringp2p_multiaddr_free(ma);
    ringp2p_node_free(node); /* joins the shards: no callback runs after this */
    while (all != NULL) {
        ping_one *p = all;
        all = p->next;
        free(p);
    }
    return ok == count ? rc : CLI_FAIL;
}

int cmd_identify(const cli_cmd *cmd, cli_flag *flags, size_t nflags, char **args, size_t nargs)
{
    (void)cmd;
    (void)nargs;
    host_opts o;
    int r = host_opts_get("identify", flags, nflags, &o);
    if (r != 0) return r;
    ringp2p_node *node;
    ringp2p_bstream *bs;
    if ((r = dial_stream(&o, args[0], RP_IDENTIFY_PROTOCOL_ID, &node, &bs)) != 0) return r;
    ringp2p_bstream_close_write(bs);
    size_t cap = RP_IDENTIFY_STREAM_MAX;
    uint8_t *buf = malloc(cap);
    ssize_t n = buf != NULL ? read_full(bs, buf, cap, (int)(o.timeout_s * 1000)) : -1;
    ringp2p_bstream_close(bs);
    rp_identify_msg *m = malloc(sizeof(*m));
    int rc = CLI_OK;
    ringp2p_errinfo ei = { 0 };
    if (n < 0 || m == NULL) {
        rc = cli_fail("identify", "reading the answer", n < 0 ? (int)n : RINGP2P_ENOMEM, NULL);
        goto out;
    }
    rp_identify_msg_init(m);
    const uint8_t *p = buf, *end = buf + n;
    while ((r = rp_identify_read_frame(m, &p, end, &ei)) == 1) {
    }
    if (r == 0) r = rp_identify_read_end(m, p, end, &ei);
    if (r < 0) {
        rc = cli_fail("identify", "malformed identify message", r, &ei);
        goto out;
    }
    ringp2p_pubkey *pk = NULL;
    ringp2p_peer_id id = { 0 };
    char ids[RINGP2P_PEER_ID_STR_MAX] = "";
    if (m->public_key.base != NULL &&
        ringp2p_pubkey_from_protobuf(m->public_key.base, m->public_key.len, &pk, NULL) == 0) {
        ringp2p_peer_id_from_pubkey(pk, &id);
        ringp2p_peer_id_to_string(&id, ids, sizeof(ids));
    }
    char obs[512] = "";
    if (m->observed_addr.base != NULL)
        rp_maddr_to_text(m->observed_addr.base, m->observed_addr.len, obs, sizeof(obs), NULL);
    const char *kt = pk != NULL ? ringp2p_key_type_name(ringp2p_pubkey_type(pk)) : "";
    char av[1024], pv[1024];
    snprintf(av, sizeof(av), "%.*s", (int)m->agent_version.len,
             m->agent_version.base ? (const char *)m->agent_version.base : "");
    snprintf(pv, sizeof(pv), "%.*s", (int)m->protocol_version.len,
             m->protocol_version.base ? (const char *)m->protocol_version.base : "");
    if (o.json) {
        printf("{\"peerId\":\"%s\",\"agentVersion\":", ids);
        json_str(stdout, av);
        printf(",\"protocolVersion\":");
        json_str(stdout, pv);
        printf(",\"protocols\":[");
        for (size_t i = 0; i < m->n_protocols; i++) {
            char pr[1100];
            snprintf(pr, sizeof(pr), "%.*s", (int)m->protocols[i].len,
                     (const char *)m->protocols[i].base);
            if (i > 0) putchar(',');
            json_str(stdout, pr);
        }
        printf("],\"listenAddrs\":[");
        for (size_t i = 0; i < m->n_listen_addrs; i++) {
            char t[512];
            if (rp_maddr_to_text(m->listen_addrs[i].base, m->listen_addrs[i].len, t, sizeof(t),
                                 NULL) < 0)
                continue;
            if (i > 0) putchar(',');
            json_str(stdout, t);
        }
        printf("],\"observedAddr\":");
        json_str(stdout, obs);
        printf(",\"keyType\":\"%s\"}\n", kt);
    } else {
        printf("peer:     %s\nagent:    %s\nprotocol: %s\nkey type: %s\nobserved: %s\n", ids, av,
               pv, kt, obs);
        for (size_t i = 0; i < m->n_protocols; i++)
            printf("protocol: %.*s\n", (int)m->protocols[i].len,
                   (const char *)m->protocols[i].base);
        for (size_t i = 0; i < m->n_listen_addrs; i++) {
            char t[512];
            if (rp_maddr_to_text(m->listen_addrs[i].base, m->listen_addrs[i].len, t, sizeof(t),
                                 NULL) >= 0)
                printf("listen:   %s\n", t);
        }
    }
    ringp2p_pubkey_free(pk);
out:
    free(m);
    free(buf);
    ringp2p_node_free(node);
    return rc;
}

typedef struct pump_arg {
    ringp2p_bstream *bs;
    _Atomic int err;
    _Atomic bool done;
    bool buffered;       /* --repeat: write data (len bytes), waiting up to ms; else stdin */
    const uint8_t *data; /* owned by the caller until the pump is joined */
    size_t len;
    int ms;
} pump_arg;

/* Writes stdin (or the buffered payload) into the stream, then half-closes it. */
static void *stdin_pump(void *p)
{
    pump_arg *a = p;
    if (a->buffered) {
        ssize_t w = a->len > 0 ? ringp2p_bstream_write(a->bs, a->data, a->len, a->ms) : 0;
        if (w < 0)
            a->err = (int)w;
        else
            ringp2p_bstream_close_write(a->bs);
        a->done = true;
        return NULL;
    }
    uint8_t buf[65536];
    for (;;) {
        ssize_t n = read(0, buf, sizeof(buf));
        if (n <= 0) break;
        ssize_t w = ringp2p_bstream_write(a->bs, buf, (size_t)n, -1);
        if (w < 0) {
            a->err = (int)w;
            a->done = true;
            return NULL;
        }
    }
    ringp2p_bstream_close_write(a->bs);
    a->done = true;
    return NULL;
}

/*
 * One stream: the pump writes into it while what comes back goes to stdout, until the
 * peer's end. `what` names the stream in messages.
 */
static int stream_run(ringp2p_bstream *bs, pump_arg *pa, const char *what)
{
    pthread_t t;
    pthread_create(&t, NULL, stdin_pump, pa);
    uint8_t buf[65536];
    ssize_t n;
    while ((n = ringp2p_bstream_read(bs, buf, sizeof(buf), -1)) > 0) {
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) break;
        fflush(stdout);
    }
    int rc = CLI_OK;
    if (n < 0) rc = cli_fail("stream", what, (int)n, NULL);
    fflush(stdout);
    if (!pa->done && !pa->buffered) _exit(rc); /* stdin still open (a terminal): unjoinable */
    pthread_join(t, NULL);
    if (pa->err != 0 && rc == CLI_OK) rc = cli_fail("stream", "writing", pa->err, NULL);
    return rc;
}

/* --repeat: streams after the first wait for the peer's identify (RINGP2P_EVENT_IDENTIFIED). */
typedef struct stream_ident {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool identified;
} stream_ident;

static void stream_event(ringp2p_node *n, const ringp2p_event *ev, void *ctx)
{
    (void)n;
    stream_ident *si = ctx;
    if (ev->type != RINGP2P_EVENT_IDENTIFIED) return;
    pthread_mutex_lock(&si->mu);
    si->identified = true;
    pthread_cond_broadcast(&si->cv);
    pthread_mutex_unlock(&si->mu);
}

static bool stream_wait_identify(stream_ident *si, double secs)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)secs;
    ts.tv_nsec += (long)((secs - (double)(time_t)secs) * 1e9);
    if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
    pthread_mutex_lock(&si->mu);
    while (!si->identified)
        if (pthread_cond_timedwait(&si->cv, &si->mu, &ts) != 0) break;
    bool ok = si->identified;
    pthread_mutex_unlock(&si->mu);
    return ok;
}

/*
 * --repeat N: all of stdin, then N streams one after another on the connection the
 * first one made, each sent the payload and half-closed at once, each echo to stdout in
 * turn. Streams 2..N open after the peer's identify arrived, so a protocol it listed is
 * opened lazily (its bytes travel with the proposal).
 */
static int stream_repeat(const host_opts *o, const char *maddr, const char *proto, long repeat)
{
    size_t len = 0, cap = 0;
    uint8_t *data = NULL;
    for (;;) {
        if (len == cap) {
            size_t ncap = cap == 0 ? 65536 : cap * 2;
            uint8_t *nd = realloc(data, ncap);
            if (nd == NULL) {
                free(data);
                return cli_fail("stream", "reading stdin", RINGP2P_ENOMEM, NULL);
            }
            data = nd;
            cap = ncap;
        }
        ssize_t n = read(0, data + len, cap - len);
        if (n == 0) break;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            free(data);
            return cli_fail("stream", "reading stdin", RINGP2P_EIO, NULL);
        }
        len += (size_t)n;
    }
    ringp2p_errinfo ei;
    ringp2p_multiaddr *ma;
    int r = ringp2p_multiaddr_parse(maddr, &ma, &ei);
    if (r < 0) {
        free(data);
        return cli_fail("stream", "bad address", r, &ei);
    }
    stream_ident si = { .identified = false };
    pthread_mutex_init(&si.mu, NULL);
    pthread_cond_init(&si.cv, NULL);
    ringp2p_node *node = NULL;
    int rc = start_node(o, stream_event, &si, &node);
    const char *protos[1] = { proto };
    int ms = (int)(o->timeout_s * 1000);
    for (long i = 0; rc == 0 && i < repeat; i++) {
        char what[128];
        if (i == 1 && !stream_wait_identify(&si, o->timeout_s)) {
            fprintf(stderr, "ringp2p stream: --repeat: no identify from the peer within %g s\n",
                    o->timeout_s);
            rc = CLI_FAIL;
            break;
        }
        ringp2p_bstream *bs;
        memset(&ei, 0, sizeof(ei));
        r = ringp2p_bstream_open(node, ma, protos, 1, ms + 500, &bs, &ei);
        if (r < 0) {
            snprintf(what, sizeof(what), "stream %ld of %ld: %s", i + 1, repeat, open_what(r));
            rc = cli_fail("stream", what, r, &ei);
            break;
        }
        pump_arg pa = { .bs = bs, .buffered = true, .data = data, .len = len, .ms = ms };
        snprintf(what, sizeof(what), "stream %ld of %ld failed", i + 1, repeat);
        rc = stream_run(bs, &pa, what);
        ringp2p_bstream_close(bs);
    }
    if (node != NULL) ringp2p_node_free(node); /* joins the shards: no event after this */
    ringp2p_multiaddr_free(ma);
    pthread_cond_destroy(&si.cv);
    pthread_mutex_destroy(&si.mu);
    free(data);
    return rc;
}

int cmd_stream(const cli_cmd *cmd, cli_flag *flags, size_t nflags, char **args, size_t nargs)
{
    (void)cmd;
    (void)nargs;
    host_opts o;
    int r = host_opts_get("stream", flags, nflags, &o);
    if (r != 0) return r;
    long repeat = 0;
    cli_flag *f = cli_flag_get(flags, nflags, "repeat");
    if (f != NULL && f->value != NULL &&
        (r = cli_long("stream", "--repeat", f->value, 1, 1000000, &repeat)) != 0)
        return r;
    if (repeat > 0) return stream_repeat(&o, args[0], args[1], repeat);
    ringp2p_node *node;
    ringp2p_bstream *bs;
    if ((r = dial_stream(&o, args[0], args[1], &node, &bs)) != 0) return r;
    pump_arg pa = { .bs = bs };
    int rc = stream_run(bs, &pa, "stream failed");
    ringp2p_bstream_close(bs);
    ringp2p_node_free(node);
    return rc;
}

/* ---- perf --------------------------------------------------------------------------------- */

/*
 * The client side of /perf/1.0.0. The API keeps one connection per peer per
 * node, so --conns N runs N client nodes (one shard each, fresh identities
 * unless --key is given), each dialing the target; stream i runs on node
 * i % N. Timing is read from the core's stamps once every stream finished:
 * a stream's upload phase runs from its open until the server has provably
 * read all of it (its first download byte, or its close when nothing is
 * downloaded), its download phase from that first byte to the close.
 */
/* Each connection is a node with its own shard thread and receive buffers. */
#define PERF_CONNS_MAX 64

typedef struct perf_run {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int opened, finished; /* open callbacks seen (success or not), streams finished */
    ringp2p_peer_id peer; /* of the first connection, to open the rest on the same ones */
    bool have_peer;
    char security[64], muxer[64]; /* negotiated on the first connection */
} perf_run;

typedef struct perf_strm {
    perf_run *run;
    rp_perf_client c;      /* shard-owned once the stream is open, until it finished */
    _Atomic uint64_t up;   /* upload bytes written (without the header), for the display */
    _Atomic uint64_t down; /* download bytes received */
    _Atomic int err;       /* first error, 0 if none */
    _Atomic bool ok, done;
} perf_strm;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void perf_fail(ringp2p_stream *s, perf_strm *p, int err)
{
    int zero = 0;
    atomic_compare_exchange_strong(&p->err, &zero, err);
    ringp2p_stream_reset(s);
}

/* Writes views of the constant block until the queue is full or the upload is done. */
static void perf_client_pump(ringp2p_stream *s, perf_strm *p)
{
    for (;;) {
        rp_iov iov;
        size_t niov;
        size_t n = rp_perf_client_next(&p->c, &iov, 1, &niov, RP_PERF_BLOCK);
        if (n == 0) break;
        int r = ringp2p_stream_write_ref(s, iov.base, n, NULL, NULL);
        if (r == RINGP2P_EAGAIN) return;
        if (r < 0 || (r = rp_perf_client_wrote(&p->c, n, mono_ns())) < 0) {
            perf_fail(s, p, r);
            return;
        }
        uint64_t w = p->c.written;
        p->up = w > RP_PERF_HEADER_LEN ? w - RP_PERF_HEADER_LEN : 0;
    }
    if (rp_perf_client_want_close(&p->c) && !p->c.closed) {
        p->c.closed = true;
        ringp2p_stream_close_write(s);
    }
}

static void perf_client_data(ringp2p_stream *s, void *ctx, const uint8_t *data, size_t len)
{
    perf_strm *p = ctx;
    (void)data;
    int r = rp_perf_client_recv(&p->c, len, mono_ns(), NULL);
    if (r < 0) {
        perf_fail(s, p, r);
        return;
    }
    p->down = p->c.downloaded;
}

static void perf_client_eof(ringp2p_stream *s, void *ctx)
{
    perf_strm *p = ctx;
    int r = rp_perf_client_eof(&p->c, mono_ns(), NULL);
    if (r < 0) perf_fail(s, p, r);
}

static void perf_client_writable(ringp2p_stream *s, void *ctx)
{
    perf_client_pump(s, ctx);
}

static void perf_client_close(ringp2p_stream *s, void *ctx, int err)
{
    perf_strm *p = ctx;
    (void)s;
    int zero = 0;
    if (err < 0) atomic_compare_exchange_strong(&p->err, &zero, err);
    p->ok = err == 0 && p->err == 0 && p->c.phase == RP_PERF_DONE;
    p->done = true;
    pthread_mutex_lock(&p->run->mu);
    p->run->finished++;
    pthread_cond_broadcast(&p->run->cv);
    pthread_mutex_unlock(&p->run->mu);
}

static const ringp2p_stream_callbacks perf_client_cbs = {
    .on_data = perf_client_data,
    .on_eof = perf_client_eof,
    .on_writable = perf_client_writable,
    .on_close = perf_client_close,
};

static void perf_opened(ringp2p_node *n, ringp2p_stream *s, int err, const ringp2p_errinfo *ei,
                        void *ctx)
{
    perf_strm *p = ctx;
    (void)n;
    perf_run *run = p->run;
    if (err < 0) {
        fprintf(stderr, "ringp2p perf: %s: %s\n", open_what(err),
                ei != NULL && ei->msg[0] ? ei->msg : ringp2p_strerror(err));
        p->err = err;
        p->done = true;
        pthread_mutex_lock(&run->mu);
        run->opened++;
        run->finished++;
        pthread_cond_broadcast(&run->cv);
        pthread_mutex_unlock(&run->mu);
        return;
    }
    rp_perf_client_init(&p->c, p->c.upload, p->c.download, mono_ns());
    ringp2p_stream_set_callbacks(s, &perf_client_cbs, p);
    const ringp2p_conn_info *ci = ringp2p_stream_conn(s);
    pthread_mutex_lock(&run->mu);
    if (!run->have_peer) {
        run->peer = ci->peer;
        run->have_peer = true;
        snprintf(run->security, sizeof(run->security), "%s", ci->security ? ci->security : "");
        snprintf(run->muxer, sizeof(run->muxer), "%s", ci->muxer ? ci->muxer : "");
    }
    run->opened++;
    pthread_cond_broadcast(&run->cv);
    pthread_mutex_unlock(&run->mu);
    perf_client_pump(s, p);
}

/* "64M", "1G", "1000": bytes, with binary suffixes K, M, G, T (optionally followed by "iB"). */
static int parse_size(const char *t, uint64_t *out)
{
    char *end;
    if (t == NULL || *t < '0' || *t > '9') return -1;
    unsigned long long v = strtoull(t, &end, 10);
    unsigned shift = 0;
    switch (*end) {
    case 'k':
    case 'K': shift = 10; break;
    case 'm':
    case 'M': shift = 20; break;
    case 'g':
    case 'G': shift = 30; break;
    case 't':
    case 'T': shift = 40; break;
    case 0: break;
    default: return -1;
    }
    if (shift != 0) {
        end++;
        if (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0) end += strlen(end);
    }
    if (*end != 0 || (shift != 0 && v > (UINT64_MAX >> shift))) return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

/* The live line: totals, and the rates over the last second (since the start at first). */
static void perf_line(uint64_t up, uint64_t down, double up_rate, double down_rate, double secs)
{
    fprintf(stderr, "\r  up %10.1f MB %8.1f MB/s   down %10.1f MB %8.1f MB/s   %6.1f s ",
            (double)up / 1e6, up_rate / 1e6, (double)down / 1e6, down_rate / 1e6, secs);
    fflush(stderr);
}

/* Phase times over all streams that completed the phase (see perf_run). */
typedef struct perf_phases {
    double up_s, down_s; /* 0 when no stream completed that phase */
} perf_phases;

static perf_phases perf_time(const perf_strm *st, long n)
{
    uint64_t us = UINT64_MAX, ue = 0, ds = UINT64_MAX, de = 0;
    for (long i = 0; i < n; i++) {
        const rp_perf_client *c = &st[i].c;
        if (c->start_ns == 0) continue; /* never opened */
        uint64_t uend = c->download > 0 ? c->first_byte_ns : c->end_ns;
        if (uend != 0) {
            if (c->start_ns < us) us = c->start_ns;
            if (uend > ue) ue = uend;
        }
        if (c->download > 0 && c->first_byte_ns != 0 && c->end_ns != 0) {
            if (c->first_byte_ns < ds) ds = c->first_byte_ns;
            if (c->end_ns > de) de = c->end_ns;
        }
    }
    perf_phases ph = { 0, 0 };
    if (ue > us) ph.up_s = (double)(ue - us) / 1e9;
    if (de > ds) ph.down_s = (double)(de - ds) / 1e9;
    return ph;
}

static double mbps(uint64_t bytes, double secs)
{
    return secs > 0 ? (double)bytes / 1e6 / secs : 0.0;
}

int cmd_perf(const cli_cmd *cmd, cli_flag *flags, size_t nflags, char **args, size_t nargs)
{
    (void)cmd;
    (void)nargs;
    host_opts o;
    int r = host_opts_get("perf", flags, nflags, &o);
    if (r != 0) return r;
    uint64_t upload = UINT64_C(1) << 30, download = 0;
    long nstreams = 0, nconns = 1;
    cli_flag *f;
    if ((f = cli_flag_get(flags, nflags, "upload")) != NULL && f->value != NULL &&
        parse_size(f->value, &upload) < 0) {
        fprintf(stderr, "ringp2p perf: --upload wants a size (1000, 64K, 64M, 1G)\n");
        return CLI_USAGE;
    }
    if ((f = cli_flag_get(flags, nflags, "download")) != NULL && f->value != NULL &&
        parse_size(f->value, &download) < 0) {
        fprintf(stderr, "ringp2p perf: --download wants a size (1000, 64K, 64M, 1G)\n");
        return CLI_USAGE;
    }
    if ((f = cli_flag_get(flags, nflags, "conns")) != NULL && f->value != NULL &&
        cli_long("perf", "--conns", f->value, 1, PERF_CONNS_MAX, &nconns) != 0)
        return CLI_USAGE;
    if ((f = cli_flag_get(flags, nflags, "streams")) != NULL && f->value != NULL &&
        cli_long("perf", "--streams", f->value, 1, 1024, &nstreams) != 0)
        return CLI_USAGE;
    if (nstreams == 0) nstreams = nconns;
    if (nstreams < nconns) {
        fprintf(stderr,
                "ringp2p perf: --streams %ld is fewer than --conns %ld (each connection "
                "carries at least one stream)\n",
                nstreams, nconns);
        return CLI_USAGE;
    }
    f = cli_flag_get(flags, nflags, "progress");
    bool tty = !o.json && isatty(2);
    if (f != NULL && f->set) tty = true;
    ringp2p_errinfo ei;
    ringp2p_multiaddr *ma;
    if ((r = ringp2p_multiaddr_parse(args[0], &ma, &ei)) < 0)
        return cli_fail("perf", "bad address", r, &ei);
    ringp2p_node **nodes = calloc((size_t)nconns, sizeof(*nodes));
    perf_strm *st = calloc((size_t)nstreams, sizeof(*st));
    int rc = CLI_OK;
    long nnodes = 0, started = 0;
    perf_run run = { .opened = 0 };
    pthread_mutex_init(&run.mu, NULL);
    pthread_cond_init(&run.cv, NULL);
    if (nodes == NULL || st == NULL) {
        rc = cli_fail("perf", "memory", RINGP2P_ENOMEM, NULL);
        goto out;
    }
    /* One config per node: each gets a fresh identity unless --key names one. */
    for (; nnodes < nconns; nnodes++) {
        ringp2p_config *cfg;
        if ((rc = host_config(&o, &cfg)) != 0) goto out;
        r = ringp2p_node_new(cfg, &nodes[nnodes], &ei);
        ringp2p_config_free(cfg);
        if (r == 0 && (r = ringp2p_node_start(nodes[nnodes], &ei)) < 0)
            ringp2p_node_free(nodes[nnodes]);
        if (r < 0) {
            rc = cli_fail("perf", "starting", r, &ei);
            goto out;
        }
    }
    for (long i = 0; i < nstreams; i++) {
        st[i].run = &run;
        st[i].c.upload = upload;
        st[i].c.download = download;
    }
    static const char *const protos[1] = { RP_PERF_PROTOCOL_ID };
    uint64_t t0 = mono_ns();
    /* Stream k < nconns dials from node k; the rest name the peer alone, so each joins the
     * connection its node already has. */
    for (; started < nconns; started++) {
        r = ringp2p_node_new_stream(nodes[started], ma, protos, 1, perf_opened, &st[started]);
        if (r < 0) {
            rc = cli_fail("perf", "opening a stream", r, NULL);
            break;
        }
    }
    pthread_mutex_lock(&run.mu);
    while (run.opened < started) pthread_cond_wait(&run.cv, &run.mu);
    pthread_mutex_unlock(&run.mu);
    if (rc == CLI_OK && nstreams > nconns && run.have_peer) {
        char id[RINGP2P_PEER_ID_STR_MAX], pa[RINGP2P_PEER_ID_STR_MAX + 8];
        ringp2p_peer_id_to_string(&run.peer, id, sizeof(id));
        snprintf(pa, sizeof(pa), "/p2p/%s", id);
        ringp2p_multiaddr *pm;
        if ((r = ringp2p_multiaddr_parse(pa, &pm, &ei)) < 0) {
            rc = cli_fail("perf", "peer address", r, &ei);
        } else {
            for (; started < nstreams; started++) {
                r = ringp2p_node_new_stream(nodes[started % nconns], pm, protos, 1, perf_opened,
                                            &st[started]);
                if (r < 0) {
                    rc = cli_fail("perf", "opening a stream", r, NULL);
                    break;
                }
            }
            ringp2p_multiaddr_free(pm);
        }
    }
    uint64_t last_total = 0, last_change = mono_ns(), up = 0, down = 0;
    /* The last PERF_WINDOW + 1 samples, one per tick: the rates span the last second. */
    enum { PERF_WINDOW = 4 };
    uint64_t win_t[PERF_WINDOW + 1] = { t0 }, win_up[PERF_WINDOW + 1] = { 0 },
                                 win_down[PERF_WINDOW + 1] = { 0 };
    unsigned ticks = 0;
    for (;;) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_mutex_lock(&run.mu);
        if (run.finished < started) pthread_cond_timedwait(&run.cv, &run.mu, &ts);
        bool all = run.finished >= started;
        pthread_mutex_unlock(&run.mu);
        up = down = 0;
        for (long i = 0; i < started; i++) {
            up += st[i].up;
            down += st[i].down;
        }
        uint64_t now = mono_ns();
        ticks++;
        unsigned cur = ticks % (PERF_WINDOW + 1);
        unsigned old = ticks < PERF_WINDOW ? 0 : (ticks + 1) % (PERF_WINDOW + 1);
        win_t[cur] = now, win_up[cur] = up, win_down[cur] = down;
        double dt = (double)(now - win_t[old]) / 1e9;
        if (tty && dt > 0)
            perf_line(up, down, (double)(up - win_up[old]) / dt,
                      (double)(down - win_down[old]) / dt, (double)(now - t0) / 1e9);
        if (all) break;
        if (up + down != last_total) {
            last_total = up + down;
            last_change = now;
        } else if ((double)(now - last_change) / 1e9 > o.timeout_s) {
            if (tty) fputc('\n', stderr);
            tty = false;
            fprintf(stderr, "ringp2p perf: no progress for %.1f s\n", o.timeout_s);
            rc = CLI_FAIL;
            break;
        }
    }
    if (tty) fputc('\n', stderr);
    double secs = (double)(mono_ns() - t0) / 1e9;
    /* Stopping joins the shards: every stream has finished and its core is ours to read. */
    for (long i = 0; i < nnodes; i++) ringp2p_node_stop(nodes[i]);
    for (long i = 0; i < started && rc == CLI_OK; i++) {
        if (!st[i].ok || st[i].up != upload || st[i].down != download) {
            int e = st[i].err;
            fprintf(stderr, "ringp2p perf: stream %ld failed after %llu up, %llu down: %s\n", i,
                    (unsigned long long)st[i].up, (unsigned long long)st[i].down,
                    e < 0 ? ringp2p_strerror(e) : "incomplete");
            rc = CLI_FAIL;
        }
    }
    if (started < nstreams) rc = CLI_FAIL;
    perf_phases ph = perf_time(st, started);
    if (o.json) {
        printf("{\"event\":\"perf\",\"uploadBytes\":%llu,\"downloadBytes\":%llu,\"seconds\":%.6f,"
               "\"uploadMBps\":%.3f,\"downloadMBps\":%.3f,\"uploadSeconds\":%.6f,"
               "\"downloadSeconds\":%.6f,\"streams\":%ld,\"conns\":%ld,\"security\":",
               (unsigned long long)up, (unsigned long long)down, secs, mbps(up, ph.up_s),
               mbps(down, ph.down_s), ph.up_s, ph.down_s, nstreams, nconns);
        json_str(stdout, run.security);
        printf(",\"muxer\":");
        json_str(stdout, run.muxer);
        printf(",\"ok\":%s}\n", rc == CLI_OK ? "true" : "false");
    } else {
        printf("perf: %ld stream(s) on %ld connection(s) (%s, %s), %.3f s in all%s\n", nstreams,
               nconns, run.security[0] ? run.security : "no connection",
               run.muxer[0] ? run.muxer : "-", secs, rc == CLI_OK ? "" : " (FAILED)");
        printf("  upload   %14llu bytes in %8.3f s: %10.1f MB/s\n", (unsigned long long)up, ph.up_s,
               mbps(up, ph.up_s));
        printf("  download %14llu bytes in %8.3f s: %10.1f MB/s\n", (unsigned long long)down,
               ph.down_s, mbps(down, ph.down_s));
    }
    fflush(stdout);
out:
    ringp2p_multiaddr_free(ma);
    for (long i = 0; i < nnodes; i++) ringp2p_node_free(nodes[i]);
    free(nodes);
    free(st);
    pthread_cond_destroy(&run.cv);
    pthread_mutex_destroy(&run.mu);
    return rc;
}
