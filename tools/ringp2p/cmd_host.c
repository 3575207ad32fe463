/* ringp2p listen / ping / identify / stream / perf: a libp2p host on the command line. */
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
    ringp2p_config_limit(cfg, RINGP2P_LIMIT_DIAL_TIMEOUT_MS, (uint64_t)(o->timeout_s * 1000));
    *out = cfg;
    return 0;
fail_key:
    ringp2p_config_free(cfg);
    return cli_fail(o->cmd, "reading the key file", r, &ei);
}

static void addr_text(const ringp2p_multiaddr *ma, char *buf, size_t cap)
{
    buf[0] = 0;
    if (ma == NULL || ringp2p_multiaddr_to_string(ma, buf, cap) < 0) snprintf(buf, cap, "unknown");
}

/* ---- listen ------------------------------------------------------------------------------- */

typedef struct listen_ctx {
    bool json;
} listen_ctx;

static void listen_event(ringp2p_node *n, const ringp2p_event *ev, void *ctx)
{
    listen_ctx *lc = ctx;
    (void)n;
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
            printf(
                ",\"direction\":\"%s\",\"relayed\":false,\"security\":\"%s\",\"muxer\":\"%s\"}\n",
                dir, ev->conn->security, ev->conn->muxer);
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
            printf("connection %s %s from %s (%s, %s)\n", dir, id, ra, ev->conn->security,
                   ev->conn->muxer);
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
    int sig;
    sigwait(&set, &sig);
    ringp2p_node_stop(node);
    ringp2p_node_free(node);
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

static int dial_stream(const host_opts *o, const char *maddr, const char *proto,
                       ringp2p_node **node_out, ringp2p_bstream **bs_out)
{
    ringp2p_errinfo ei;
    ringp2p_multiaddr *ma;
    int r = ringp2p_multiaddr_parse(maddr, &ma, &ei);
    if (r < 0) return cli_fail(o->cmd, "bad address", r, &ei);
    ringp2p_config *cfg;
    if ((r = host_config(o, &cfg)) != 0) {
        ringp2p_multiaddr_free(ma);
        return r;
    }
    ringp2p_node *node;
    r = ringp2p_node_new(cfg, &node, &ei);
    ringp2p_config_free(cfg);
    if (r == 0) r = ringp2p_node_start(node, &ei);
    if (r < 0) {
        ringp2p_multiaddr_free(ma);
        return cli_fail(o->cmd, "starting", r, &ei);
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
    ringp2p_node *node;
    ringp2p_bstream *bs;
    if ((r = dial_stream(&o, args[0], "/ipfs/ping/1.0.0", &node, &bs)) != 0) return r;
    long ok = 0;
    uint64_t min = UINT64_MAX, max = 0, sum = 0;
    int rc = CLI_OK;
    for (long seq = 1; seq <= count; seq++) {
        uint8_t out[32], in[32];
        if (getrandom(out, sizeof(out), 0) != (ssize_t)sizeof(out)) memset(out, (int)seq, 32);
        uint64_t t0 = mono_us();
        ssize_t w = ringp2p_bstream_write(bs, out, 32, (int)(o.timeout_s * 1000));
        ssize_t n = w == 32 ? read_full(bs, in, 32, (int)(o.timeout_s * 1000)) : w;
        uint64_t rtt = mono_us() - t0;
        if (n != 32 || memcmp(in, out, 32) != 0) {
            const char *why = n == RINGP2P_ETIMEDOUT ? "timed out"
                              : n < 0                ? ringp2p_strerror((int)n)
                              : n < 32               ? "stream ended"
                                                     : "echo differs";
            if (o.json)
                printf("{\"event\":\"ping\",\"seq\":%ld,\"error\":\"%s\",\"relayed\":false}\n", seq,
                       why);
            else
                fprintf(stderr, "ringp2p ping: seq %ld: %s\n", seq, why);
            rc = CLI_FAIL;
            break;
        }
        ok++;
        sum += rtt;
        if (rtt < min) min = rtt;
        if (rtt > max) max = rtt;
        if (o.json)
            printf("{\"event\":\"ping\",\"seq\":%ld,\"rttUs\":%llu,\"relayed\":false}\n", seq,
                   (unsigned long long)rtt);
        else
            printf("pong seq=%ld rtt=%.3f ms\n", seq, (double)rtt / 1000.0);
        fflush(stdout);
        if (seq < count) usleep((useconds_t)(interval * 1e6));
    }
    if (o.json)
        printf("{\"event\":\"summary\",\"sent\":%ld,\"received\":%ld,\"minUs\":%llu,\"avgUs\":%llu,"
               "\"maxUs\":%llu}\n",
               count, ok, (unsigned long long)(ok ? min : 0),
               (unsigned long long)(ok ? sum / (uint64_t)ok : 0), (unsigned long long)max);
    else
        printf("%ld sent, %ld received, rtt min/avg/max = %.3f/%.3f/%.3f ms\n", count, ok,
               ok ? (double)min / 1000 : 0.0, ok ? (double)sum / (double)ok / 1000 : 0.0,
               (double)max / 1000);
    ringp2p_bstream_close_write(bs);
    ringp2p_bstream_close(bs);
    ringp2p_node_free(node);
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
} pump_arg;

static void *stdin_pump(void *p)
{
    pump_arg *a = p;
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

int cmd_stream(const cli_cmd *cmd, cli_flag *flags, size_t nflags, char **args, size_t nargs)
{
    (void)cmd;
    (void)nargs;
    host_opts o;
    int r = host_opts_get("stream", flags, nflags, &o);
    if (r != 0) return r;
    ringp2p_node *node;
    ringp2p_bstream *bs;
    if ((r = dial_stream(&o, args[0], args[1], &node, &bs)) != 0) return r;
    pump_arg pa = { bs, 0, false };
    pthread_t t;
    pthread_create(&t, NULL, stdin_pump, &pa);
    uint8_t buf[65536];
    ssize_t n;
    while ((n = ringp2p_bstream_read(bs, buf, sizeof(buf), -1)) > 0) {
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) break;
        fflush(stdout);
    }
    int rc = CLI_OK;
    if (n < 0) rc = cli_fail("stream", "stream failed", (int)n, NULL);
    fflush(stdout);
    if (!pa.done) _exit(rc); /* stdin still open (a terminal): the reader cannot be joined */
    pthread_join(t, NULL);
    if (pa.err != 0 && rc == CLI_OK) rc = cli_fail("stream", "writing", pa.err, NULL);
    ringp2p_bstream_close(bs);
    ringp2p_node_free(node);
    return rc;
}

/* ---- perf --------------------------------------------------------------------------------- */

typedef struct perf_run {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int opened, finished; /* open callbacks seen (success or not), streams finished */
    ringp2p_peer_id peer; /* of the first stream's connection, to open the rest on it */
    bool have_peer;
} perf_run;

typedef struct perf_strm {
    perf_run *run;
    rp_perf_client c;      /* shard-owned once the stream is open */
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
    pthread_mutex_lock(&run->mu);
    if (!run->have_peer) {
        run->peer = ringp2p_stream_conn(s)->peer;
        run->have_peer = true;
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

static void perf_line(uint64_t up, uint64_t down, double secs)
{
    double s = secs > 0 ? secs : 1e-9;
    fprintf(stderr, "\r  up %10.1f MB (%8.1f MB/s)   down %10.1f MB (%8.1f MB/s)   %6.1f s ",
            (double)up / 1e6, (double)up / 1e6 / s, (double)down / 1e6, (double)down / 1e6 / s,
            secs);
    fflush(stderr);
}

int cmd_perf(const cli_cmd *cmd, cli_flag *flags, size_t nflags, char **args, size_t nargs)
{
    (void)cmd;
    (void)nargs;
    host_opts o;
    int r = host_opts_get("perf", flags, nflags, &o);
    if (r != 0) return r;
    uint64_t upload = UINT64_C(1) << 30, download = 0;
    long nstreams = 1;
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
    if ((f = cli_flag_get(flags, nflags, "streams")) != NULL && f->value != NULL) {
        char *end;
        nstreams = strtol(f->value, &end, 10);
        if (*end != 0 || nstreams < 1 || nstreams > 1024) {
            fprintf(stderr, "ringp2p perf: --streams wants 1..1024\n");
            return CLI_USAGE;
        }
    }
    ringp2p_errinfo ei;
    ringp2p_multiaddr *ma;
    if ((r = ringp2p_multiaddr_parse(args[0], &ma, &ei)) < 0)
        return cli_fail("perf", "bad address", r, &ei);
    ringp2p_config *cfg;
    if ((r = host_config(&o, &cfg)) != 0) {
        ringp2p_multiaddr_free(ma);
        return r;
    }
    ringp2p_node *node;
    r = ringp2p_node_new(cfg, &node, &ei);
    ringp2p_config_free(cfg);
    if (r == 0 && (r = ringp2p_node_start(node, &ei)) < 0) ringp2p_node_free(node);
    if (r < 0) {
        ringp2p_multiaddr_free(ma);
        return cli_fail("perf", "starting", r, &ei);
    }
    perf_run run = { .opened = 0 };
    pthread_mutex_init(&run.mu, NULL);
    pthread_cond_init(&run.cv, NULL);
    perf_strm *st = calloc((size_t)nstreams, sizeof(*st));
    if (st == NULL) {
        ringp2p_multiaddr_free(ma);
        ringp2p_node_free(node);
        return cli_fail("perf", "memory", RINGP2P_ENOMEM, NULL);
    }
    for (long i = 0; i < nstreams; i++) {
        st[i].run = &run;
        st[i].c.upload = upload;
        st[i].c.download = download;
    }
    static const char *const protos[1] = { RP_PERF_PROTOCOL_ID };
    int rc = CLI_OK;
    uint64_t t0 = mono_ns();
    /* The first stream dials; the rest name the peer alone so they share its connection. */
    r = ringp2p_node_new_stream(node, ma, protos, 1, perf_opened, &st[0]);
    ringp2p_multiaddr_free(ma);
    long started = r < 0 ? 0 : 1;
    if (r < 0) {
        rc = cli_fail("perf", "opening a stream", r, NULL);
        goto out;
    }
    pthread_mutex_lock(&run.mu);
    while (run.opened < 1) pthread_cond_wait(&run.cv, &run.mu);
    pthread_mutex_unlock(&run.mu);
    if (nstreams > 1 && run.have_peer) {
        char id[RINGP2P_PEER_ID_STR_MAX], pa[RINGP2P_PEER_ID_STR_MAX + 8];
        ringp2p_peer_id_to_string(&run.peer, id, sizeof(id));
        snprintf(pa, sizeof(pa), "/p2p/%s", id);
        ringp2p_multiaddr *pm;
        if ((r = ringp2p_multiaddr_parse(pa, &pm, &ei)) < 0) {
            rc = cli_fail("perf", "peer address", r, &ei);
            goto out;
        }
        for (; started < nstreams; started++) {
            r = ringp2p_node_new_stream(node, pm, protos, 1, perf_opened, &st[started]);
            if (r < 0) {
                rc = cli_fail("perf", "opening a stream", r, NULL);
                break;
            }
        }
        ringp2p_multiaddr_free(pm);
    }
    bool tty = isatty(2) && !o.json;
    uint64_t last_total = 0, last_change = mono_ns(), up = 0, down = 0;
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
        if (tty) perf_line(up, down, (double)(now - t0) / 1e9);
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
    if (o.json)
        printf("{\"event\":\"perf\",\"uploadBytes\":%llu,\"downloadBytes\":%llu,\"seconds\":%.6f,"
               "\"uploadMBps\":%.3f,\"downloadMBps\":%.3f}\n",
               (unsigned long long)up, (unsigned long long)down, secs, (double)up / 1e6 / secs,
               (double)down / 1e6 / secs);
    else
        printf("perf: %ld stream(s), up %llu bytes (%.1f MB/s), down %llu bytes (%.1f MB/s) in "
               "%.3f s%s\n",
               nstreams, (unsigned long long)up, (double)up / 1e6 / secs, (unsigned long long)down,
               (double)down / 1e6 / secs, secs, rc == CLI_OK ? "" : " (FAILED)");
    fflush(stdout);
out:
    ringp2p_node_stop(node);
    ringp2p_node_free(node);
    free(st);
    pthread_cond_destroy(&run.cv);
    pthread_mutex_destroy(&run.mu);
    return rc;
}
