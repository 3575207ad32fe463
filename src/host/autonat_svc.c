/*
 * AutoNAT v1 in the host: protocols/autonat.h decides, this file moves the
 * bytes and dials.
 *
 * Server (RINGP2P_AUTONAT_SERVER). One `sreq` per inbound stream, on the
 * stream's shard. The request is read whole, the core decides (rate limits
 * and address filtering, under svc->mu), and each address the core returns
 * is dialed on a NEW connection from the same shard (rp_host_probe_dial:
 * secured, the requester's peer ID checked, closed at once, never in the
 * peer directory). The first success is answered at once with the address
 * that connected; when every dial failed, the answer (E_DIAL_ERROR) waits
 * until the core's respond_at, on a shard timer. The stream lives at most
 * STREAM_TIMEOUT_NS (go streamTimeout), then it is reset.
 *
 * Client (RINGP2P_AUTONAT_CLIENT). Servers are learnt from identify: a
 * connection whose peer lists the protocol becomes an entry (its connection
 * id, shard, addresses, and the observedAddr that peer reported on that
 * connection, which the IDENTIFIED event picks up from rp_hshard.an_* where
 * rp_host_observed left it just before). The core's schedule runs on one
 * timer on shard 0; when a probe is due, one server that passes the core's
 * checks (chosen round-robin from a random start) is asked on its own
 * connection's shard: a stream on that very connection, a DIAL with that
 * connection's observed address first and then our advertised addresses,
 * one response, or RP_AUTONAT_OBS_ERROR on any failure or after the core's
 * request timeout. A change of reachability is RINGP2P_EVENT_REACHABILITY,
 * raised on the shard that read the answer.
 *
 * Shared state (both cores, the server list, the timer's deadline) sits
 * behind svc->mu: taken once per request, per probe, per identify of a
 * server and per connection event, never for stream bytes. The cores are
 * fed rp_clock_ns(), not rp_shard_now(): they are shared by every shard, and
 * two shards' loop-turn clocks may disagree by a turn, which the cores'
 * unsigned time differences must not see go backwards.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/log.h"
#include "host/autonat_svc.h"
#include "host/host.h"
#include "protocols/autonat.h"
#include "protocols/nataddr.h"

/* Connections to AutoNAT servers remembered (beyond it new ones are not asked). */
#define SERVERS_MAX 64
/* Addresses kept per server for rp_autonat_client_server_ok (its connection's, then identify's). */
#define SERVER_ADDRS_MAX 8
/* A server stream's whole life (go streamTimeout, 1 min). */
#define STREAM_TIMEOUT_NS (UINT64_C(60) * 1000000000)
/* Bytes of one message with its length prefix. */
#define RX_MAX (RP_AUTONAT_MSG_MAX + 10)

typedef struct srv_ent {
    ringp2p_peer_id peer;
    uint64_t conn_id;
    unsigned shard;
    size_t obs_len; /* 0: the server never said where it sees us */
    uint8_t obs[RP_OBSADDR_ADDR_MAX];
    size_t naddrs;
    rp_nataddr addrs[SERVER_ADDRS_MAX];
} srv_ent;

struct rp_autonat_svc {
    ringp2p_node *node;
    unsigned flags;
    pthread_mutex_t mu; /* guards everything below but the timer and the counters */
    rp_autonat_server srv;
    rp_autonat_client cl;
    size_t nsrv;
    srv_ent srvs[SERVERS_MAX];
    uint64_t rng;
    uint64_t timer_at; /* the client's timer is armed (or being armed) for this; UINT64_MAX: not */
    bool stopped;
    rp_timer timer; /* shard 0 */
    atomic_uint_fast64_t dialbacks, probes_done;
};

static uint64_t xorshift(uint64_t *st)
{
    uint64_t x = *st;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *st = x;
    return x * UINT64_C(0x2545f4914f6cdd1d);
}

/* ---- the client's timer (shard 0) --------------------------------------------------------- */

/*
 * mu held. True when the timer must be (re)armed earlier than it is: servers
 * are known and the core's next probe comes before timer_at (which is set).
 */
static bool want_timer(rp_autonat_svc *svc)
{
    if (svc->stopped || svc->nsrv == 0) return false;
    uint64_t next = rp_autonat_client_next_probe(&svc->cl);
    if (next >= svc->timer_at) return false;
    svc->timer_at = next;
    return true;
}

static void arm_task(rp_shard *sh, void *arg)
{
    rp_autonat_svc *svc = arg;
    rp_hshard *hs = svc->node->shards[rp_shard_id(sh)];
    pthread_mutex_lock(&svc->mu);
    uint64_t at = svc->timer_at;
    bool stopped = svc->stopped;
    pthread_mutex_unlock(&svc->mu);
    if (stopped || hs->stopping || at == UINT64_MAX) return;
    rp_timer_arm(rp_shard_timers(sh), &svc->timer, at);
}

/* From shard `from`, after want_timer said so (mu released). */
static void tell_timer(rp_autonat_svc *svc, rp_shard *from)
{
    if (rp_shard_post(from, 0, arm_task, svc) == 0) return;
    pthread_mutex_lock(&svc->mu);
    svc->timer_at = UINT64_MAX; /* the next event tries again */
    pthread_mutex_unlock(&svc->mu);
}

/* ---- client: one probe --------------------------------------------------------------------- */

typedef struct probe {
    rp_autonat_svc *svc;
    srv_ent srv; /* a copy of the server's entry */
    rp_hshard *hs;
    ringp2p_stream *s;
    bool done;
    rp_timer timer; /* the core's request timeout */
    size_t rx_len;
    uint8_t rx[RX_MAX];
    rp_autonat_msg msg;
} probe;

static ringp2p_reachability public_reach(rp_autonat_reachability r)
{
    switch (r) {
    case RP_AUTONAT_PUBLIC: return RINGP2P_REACHABILITY_PUBLIC;
    case RP_AUTONAT_PRIVATE: return RINGP2P_REACHABILITY_PRIVATE;
    default: return RINGP2P_REACHABILITY_UNKNOWN;
    }
}

static const char *obs_name(rp_autonat_observation o)
{
    switch (o) {
    case RP_AUTONAT_OBS_PUBLIC: return "dialed us back";
    case RP_AUTONAT_OBS_PRIVATE: return "could not dial us back";
    case RP_AUTONAT_OBS_REFUSED: return "refused to dial";
    default: return "no answer";
    }
}

/* On the probe's shard: the result goes into the core; a change is an event. */
static void probe_finish(probe *p, rp_autonat_observation obs)
{
    rp_autonat_svc *svc = p->svc;
    ringp2p_node *n = svc->node;
    if (p->done) return;
    p->done = true; /* the timer stays: it resets a stream the server does not close */
    pthread_mutex_lock(&svc->mu);
    int changed = rp_autonat_client_probe_done(&svc->cl, &p->srv.peer, obs, rp_clock_ns());
    rp_autonat_reachability st = rp_autonat_client_status(&svc->cl);
    bool arm = want_timer(svc);
    pthread_mutex_unlock(&svc->mu);
    atomic_fetch_add(&svc->probes_done, 1);
    char id[RINGP2P_PEER_ID_STR_MAX];
    rp_host_peer_text(&p->srv.peer, id, sizeof(id));
    rp_logf(&n->log, RINGP2P_LOG_DEBUG, "autonat", "%s %s", id, obs_name(obs));
    if (changed) {
        rp_logf(&n->log, RINGP2P_LOG_INFO, "autonat", "reachability: %s",
                rp_autonat_reachability_name(st));
        if (n->cfg.ev_fn != NULL) {
            ringp2p_event ev = { .type = RINGP2P_EVENT_REACHABILITY,
                                 .reachability = public_reach(st) };
            n->cfg.ev_fn(n, &ev, n->cfg.ev_ctx);
        }
    }
    if (arm) tell_timer(svc, p->hs->sh);
}

static void probe_free(probe *p)
{
    rp_timer_cancel(&p->timer);
    free(p);
}

static void probe_data(ringp2p_stream *s, void *ctx, const uint8_t *data, size_t len)
{
    probe *p = ctx;
    if (p->done) return;
    if (len > RX_MAX - p->rx_len) {
        probe_finish(p, RP_AUTONAT_OBS_ERROR);
        ringp2p_stream_reset(s);
        return;
    }
    memcpy(p->rx + p->rx_len, data, len);
    p->rx_len += len;
    const uint8_t *q = p->rx;
    ringp2p_errinfo ei;
    int r = rp_autonat_read_frame(&q, p->rx + p->rx_len, &p->msg, &ei);
    if (r == 0) return;
    if (r < 0) {
        rp_logf(&p->svc->node->log, RINGP2P_LOG_DEBUG, "autonat", "bad answer: %s", ei.msg);
        probe_finish(p, RP_AUTONAT_OBS_ERROR);
        ringp2p_stream_reset(s);
        return;
    }
    probe_finish(p, rp_autonat_response_observation(&p->msg, NULL));
    ringp2p_stream_close_write(s);
}

static void probe_eof(ringp2p_stream *s, void *ctx)
{
    probe *p = ctx;
    if (!p->done) {
        probe_finish(p, RP_AUTONAT_OBS_ERROR);
        ringp2p_stream_reset(s);
    }
}

static void probe_close(ringp2p_stream *s, void *ctx, int err)
{
    probe *p = ctx;
    (void)s;
    (void)err;
    p->s = NULL;
    probe_finish(p, RP_AUTONAT_OBS_ERROR);
    probe_free(p);
}

static const ringp2p_stream_callbacks probe_cbs = {
    .on_data = probe_data,
    .on_eof = probe_eof,
    .on_close = probe_close,
};

/* The core's request timeout: no answer is an error; a stream still open after it is reset. */
static void probe_timeout(rp_timer *t, void *arg)
{
    probe *p = arg;
    (void)t;
    probe_finish(p, RP_AUTONAT_OBS_ERROR);
    if (p->s != NULL) ringp2p_stream_reset(p->s); /* probe_close frees */
    /* else the open is pending: probe_opened frees */
}

/* Writes our DIAL: the server's observation of us first, then our advertised addresses. */
static int probe_send(probe *p, ringp2p_stream *s)
{
    ringp2p_node *n = p->svc->node;
    rp_host_addrs *own = malloc(sizeof(*own));
    uint8_t *out = malloc(RP_AUTONAT_OWN_MSG_MAX + 16);
    int r = RINGP2P_ENOMEM;
    if (own == NULL || out == NULL) goto out;
    rp_host_addrs_copy(n, true, own);
    rp_iov v[RP_HOST_ADDRS_MAX + 1];
    size_t k = 0;
    if (p->srv.obs_len > 0 && rp_nataddr_parse_tcp(p->srv.obs, p->srv.obs_len, NULL, NULL) >= 0)
        v[k++] = rp_iov_make(p->srv.obs, p->srv.obs_len);
    for (size_t i = 0; i < own->n; i++) {
        bool dup =
            k > 0 && own->v[i].len == v[0].len && memcmp(own->v[i].base, v[0].base, v[0].len) == 0;
        if (!dup && rp_nataddr_parse_tcp(own->v[i].base, own->v[i].len, NULL, NULL) >= 0)
            v[k++] = own->v[i];
    }
    ringp2p_errinfo ei;
    ssize_t len = rp_autonat_write_dial(&n->id, v, k, out, RP_AUTONAT_OWN_MSG_MAX + 16, &ei);
    if (len < 0) {
        rp_logf(&n->log, RINGP2P_LOG_DEBUG, "autonat", "no request: %s", ei.msg);
        r = (int)len;
        goto out;
    }
    ssize_t w = ringp2p_stream_write(s, out, (size_t)len);
    r = w < 0 ? (int)w : 0;
out:
    free(own);
    free(out);
    return r;
}

static void probe_opened(ringp2p_node *n, ringp2p_stream *s, int err, const ringp2p_errinfo *ei,
                         void *ctx)
{
    probe *p = ctx;
    if (err < 0) {
        char id[RINGP2P_PEER_ID_STR_MAX];
        rp_host_peer_text(&p->srv.peer, id, sizeof(id));
        rp_logf(&n->log, RINGP2P_LOG_DEBUG, "autonat", "no stream to %s: %s", id,
                ei != NULL ? ei->msg : ringp2p_strerror(err));
        probe_finish(p, RP_AUTONAT_OBS_ERROR);
        probe_free(p);
        return;
    }
    p->s = s;
    ringp2p_stream_set_callbacks(s, &probe_cbs, p);
    if (p->done || probe_send(p, s) < 0) {
        probe_finish(p, RP_AUTONAT_OBS_ERROR);
        ringp2p_stream_reset(s);
    }
}

/* On the server connection's shard. */
static void probe_task(rp_shard *sh, void *arg)
{
    probe *p = arg;
    rp_autonat_svc *svc = p->svc;
    p->hs = svc->node->shards[rp_shard_id(sh)];
    rp_timer_init(&p->timer, probe_timeout, p);
    /* armed first: probe_opened may run (and free p) inside rp_hconn_open_internal */
    rp_timer_arm(rp_shard_timers(sh), &p->timer, rp_shard_now(sh) + svc->cl.cfg.request_timeout_ns);
    rp_hconn *hc = p->hs->stopping ? NULL : rp_hconn_find(p->hs, p->srv.conn_id);
    if (hc == NULL || rp_hconn_open_internal(hc, RP_AUTONAT_PROTOCOL_ID, probe_opened, p) < 0) {
        probe_finish(p, RP_AUTONAT_OBS_ERROR);
        probe_free(p);
    }
}

/* mu held. A server passing the core's checks, from a random start; -1 if none. */
static int pick_server(rp_autonat_svc *svc, const rp_host_addrs *own, uint64_t now)
{
    if (svc->nsrv == 0) return -1;
    size_t start = (size_t)(xorshift(&svc->rng) % svc->nsrv);
    for (size_t k = 0; k < svc->nsrv; k++) {
        size_t i = (start + k) % svc->nsrv;
        srv_ent *e = &svc->srvs[i];
        rp_iov v[SERVER_ADDRS_MAX];
        for (size_t j = 0; j < e->naddrs; j++)
            v[j] = rp_iov_make(e->addrs[j].bytes, e->addrs[j].len);
        if (rp_autonat_client_server_ok(&svc->cl, &e->peer, v, e->naddrs, own->v, own->n, now))
            return (int)i;
    }
    return -1;
}

static void timer_fired(rp_timer *t, void *arg)
{
    rp_autonat_svc *svc = arg;
    rp_hshard *hs = svc->node->shards[0];
    (void)t;
    rp_host_addrs *own = malloc(sizeof(*own));
    probe *p = calloc(1, sizeof(*p));
    if (own != NULL) rp_host_addrs_copy(svc->node, true, own);
    pthread_mutex_lock(&svc->mu);
    svc->timer_at = UINT64_MAX;
    uint64_t now = rp_clock_ns();
    int pick = -1;
    if (!svc->stopped && rp_autonat_client_tick(&svc->cl, now) && own != NULL && p != NULL) {
        pick = pick_server(svc, own, now);
        if (pick >= 0) {
            p->srv = svc->srvs[pick];
            rp_autonat_client_probe_started(&svc->cl, &p->srv.peer, now);
        }
    }
    bool arm = want_timer(svc);
    uint64_t at = svc->timer_at;
    pthread_mutex_unlock(&svc->mu);
    free(own);
    if (arm && !hs->stopping) rp_timer_arm(rp_shard_timers(hs->sh), &svc->timer, at);
    if (pick < 0) {
        free(p);
        return;
    }
    p->svc = svc;
    p->hs = svc->node->shards[p->srv.shard];
    if (rp_shard_post(hs->sh, p->srv.shard, probe_task, p) != 0) {
        rp_timer_init(&p->timer, probe_timeout, p);
        probe_finish(p, RP_AUTONAT_OBS_ERROR);
        probe_free(p);
    }
}

/* ---- client: what the host tells us --------------------------------------------------------- */

void rp_autonat_svc_observed(rp_hshard *hs, const ringp2p_peer_id *observer, const uint8_t *remote,
                             size_t rlen, const uint8_t *observed, size_t olen)
{
    hs->an_obs_len = 0;
    if (remote == NULL || rlen > sizeof(hs->an_remote) || olen > sizeof(hs->an_obs)) return;
    hs->an_peer = *observer;
    memcpy(hs->an_remote, remote, rlen);
    hs->an_remote_len = rlen;
    memcpy(hs->an_obs, observed, olen);
    hs->an_obs_len = olen;
}

static int find_conn(const rp_autonat_svc *svc, uint64_t conn_id)
{
    for (size_t i = 0; i < svc->nsrv; i++)
        if (svc->srvs[i].conn_id == conn_id) return (int)i;
    return -1;
}

static void identified(rp_autonat_svc *svc, const ringp2p_conn_info *ci)
{
    ringp2p_node *n = svc->node;
    rp_hshard *hs = n->shards[ci->shard];
    const rp_identify_peer *idp = rp_host_conn_peer(ci);
    size_t rlen = 0;
    const uint8_t *remote =
        ci->remote_addr != NULL ? ringp2p_multiaddr_bytes(ci->remote_addr, &rlen) : NULL;
    /* the observedAddr of this identify response, if it was one (else keep the last) */
    bool have_obs = hs->an_obs_len > 0 && remote != NULL && hs->an_remote_len == rlen &&
                    memcmp(hs->an_remote, remote, rlen) == 0 &&
                    ringp2p_peer_id_equal(&hs->an_peer, &ci->peer);
    size_t obs_len = have_obs ? hs->an_obs_len : 0;
    hs->an_obs_len = 0;
    /* a relayed connection tells a server nothing about our IP: it would refuse */
    bool server =
        idp != NULL && !ci->relayed && rp_identify_peer_supports(idp, RP_AUTONAT_PROTOCOL_ID);
    srv_ent e;
    memset(&e, 0, sizeof(e));
    if (server) {
        e.peer = ci->peer;
        e.conn_id = ci->id;
        e.shard = ci->shard;
        if (remote != NULL && rp_nataddr_parse_tcp(remote, rlen, NULL, &e.addrs[0]) >= 0)
            e.naddrs = 1;
        const rp_iov *list;
        size_t na = rp_identify_peer_addrs(idp, &list, NULL);
        for (size_t i = 0; i < na && e.naddrs < SERVER_ADDRS_MAX; i++)
            if (rp_nataddr_parse_tcp(list[i].base, list[i].len, &ci->peer, &e.addrs[e.naddrs]) >= 0)
                e.naddrs++;
    }
    pthread_mutex_lock(&svc->mu);
    int at = find_conn(svc, ci->id);
    if (!server) {
        if (at >= 0) svc->srvs[at] = svc->srvs[--svc->nsrv];
        pthread_mutex_unlock(&svc->mu);
        return;
    }
    bool fresh = at < 0;
    if (fresh && svc->nsrv < SERVERS_MAX) at = (int)svc->nsrv++;
    if (at >= 0) {
        srv_ent *d = &svc->srvs[at];
        if (!fresh && !have_obs) {
            e.obs_len = d->obs_len;
            memcpy(e.obs, d->obs, d->obs_len);
        } else if (have_obs) {
            e.obs_len = obs_len;
            memcpy(e.obs, hs->an_obs, obs_len);
        }
        *d = e;
        if (fresh) rp_autonat_client_server_appeared(&svc->cl, rp_clock_ns());
    }
    bool arm = want_timer(svc);
    pthread_mutex_unlock(&svc->mu);
    if (arm) tell_timer(svc, hs->sh);
}

void rp_autonat_svc_event(ringp2p_node *n, ringp2p_event_type type, const ringp2p_conn_info *ci)
{
    rp_autonat_svc *svc = n->autonat;
    if ((svc->flags & RINGP2P_AUTONAT_CLIENT) == 0) return;
    bool arm = false;
    rp_shard *from = ci != NULL ? n->shards[ci->shard]->sh : NULL;
    switch (type) {
    case RINGP2P_EVENT_IDENTIFIED:
        if (ci != NULL) identified(svc, ci);
        return;
    case RINGP2P_EVENT_CONNECTED: {
        if (ci == NULL || !ci->inbound || ci->remote_addr == NULL) return;
        rp_host_addrs *own = malloc(sizeof(*own));
        if (own == NULL) return;
        rp_host_addrs_copy(n, true, own);
        size_t rlen;
        const uint8_t *remote = ringp2p_multiaddr_bytes(ci->remote_addr, &rlen);
        pthread_mutex_lock(&svc->mu);
        rp_autonat_client_inbound(&svc->cl, remote, rlen, own->v, own->n, rp_clock_ns());
        arm = want_timer(svc);
        pthread_mutex_unlock(&svc->mu);
        free(own);
        break;
    }
    case RINGP2P_EVENT_DISCONNECTED:
        if (ci == NULL) return;
        pthread_mutex_lock(&svc->mu);
        int at = find_conn(svc, ci->id);
        if (at >= 0) svc->srvs[at] = svc->srvs[--svc->nsrv];
        pthread_mutex_unlock(&svc->mu);
        return;
    case RINGP2P_EVENT_ADDRS_CHANGED:
        pthread_mutex_lock(&svc->mu);
        rp_autonat_client_addrs_changed(&svc->cl, rp_clock_ns());
        arm = want_timer(svc);
        pthread_mutex_unlock(&svc->mu);
        break;
    default: return;
    }
    if (!arm) return;
    if (from == NULL) from = rp_host_current_shard(n); /* ADDRS_CHANGED carries no connection */
    if (from != NULL)
        tell_timer(svc, from);
    else {
        pthread_mutex_lock(&svc->mu);
        svc->timer_at = UINT64_MAX;
        pthread_mutex_unlock(&svc->mu);
    }
}

/* ---- server --------------------------------------------------------------------------------- */

typedef struct sreq {
    rp_autonat_svc *svc;
    ringp2p_stream *s; /* NULL once closed */
    rp_shard *sh;
    int refs; /* the stream's and each dial-back's; all on sh */
    bool decided, answered;
    size_t dials_left;
    rp_timer life, answer;
    size_t rx_len;
    uint8_t rx[RX_MAX];
    rp_autonat_msg msg;
    rp_autonat_decision d;
} sreq;

typedef struct dialback {
    sreq *q;
    size_t idx; /* into q->d.addrs */
} dialback;

static void sreq_unref(sreq *q)
{
    if (--q->refs > 0) return;
    rp_timer_cancel(&q->life);
    rp_timer_cancel(&q->answer);
    free(q);
}

/* Writes the answer for dial_result (the dialed address when 0) and ends our side. */
static void sreq_answer(sreq *q, int dial_result, const rp_nataddr *dialed)
{
    ringp2p_node *n = q->svc->node;
    q->answered = true;
    rp_timer_cancel(&q->answer);
    if (q->s == NULL) return;
    uint8_t out[RP_AUTONAT_OWN_MSG_MAX];
    ringp2p_errinfo ei;
    ssize_t len = rp_autonat_server_respond(&q->d, dial_result, dialed ? dialed->bytes : NULL,
                                            dialed ? dialed->len : 0, out, sizeof(out), &ei);
    if (len < 0) {
        rp_logf(&n->log, RINGP2P_LOG_WARN, "autonat", "cannot answer: %s", ei.msg);
        ringp2p_stream_reset(q->s);
        return;
    }
    ringp2p_stream_write(q->s, out, (size_t)len);
    ringp2p_stream_close_write(q->s);
}

static void answer_fired(rp_timer *t, void *arg)
{
    sreq *q = arg;
    (void)t;
    if (!q->answered) sreq_answer(q, RINGP2P_ECONNREFUSED, NULL);
}

static void life_fired(rp_timer *t, void *arg)
{
    sreq *q = arg;
    (void)t;
    if (q->s != NULL) ringp2p_stream_reset(q->s);
}

/* A dial-back ended (on q's shard). */
static void dialback_done(ringp2p_node *n, ringp2p_stream *s, int err, const ringp2p_errinfo *ei,
                          void *ctx)
{
    dialback *db = ctx;
    sreq *q = db->q;
    (void)s;
    q->dials_left--;
    if (err < 0)
        rp_logf(&n->log, RINGP2P_LOG_DEBUG, "autonat", "dial-back failed: %s",
                ei != NULL ? ei->msg : ringp2p_strerror(err));
    if (!q->answered) {
        if (err == 0) {
            sreq_answer(q, 0, &q->d.addrs[db->idx]);
        } else if (q->dials_left == 0) {
            /* every address failed: answered no sooner than the core says */
            uint64_t now = rp_clock_ns();
            if (q->s == NULL || now >= q->d.respond_at_ns)
                sreq_answer(q, err, NULL);
            else
                rp_timer_arm(rp_shard_timers(q->sh), &q->answer, q->d.respond_at_ns);
        }
    }
    free(db);
    sreq_unref(q);
}

/* The whole request is in q->msg: the core decides, then we answer or dial back. */
static void sreq_decide(sreq *q)
{
    rp_autonat_svc *svc = q->svc;
    ringp2p_node *n = svc->node;
    ringp2p_stream *s = q->s;
    q->decided = true;
    q->refs++; /* a reset or a dial-back below may end the stream's share */
    size_t rlen = 0;
    const uint8_t *remote = rp_hconn_remote_bin(rp_stream_hconn(s), &rlen);
    rp_host_addrs *own = malloc(sizeof(*own));
    if (own == NULL) {
        ringp2p_stream_reset(s);
        sreq_unref(q);
        return;
    }
    rp_host_addrs_copy(n, true, own);
    ringp2p_errinfo ei = { 0 };
    pthread_mutex_lock(&svc->mu);
    uint64_t now = rp_clock_ns();
    int r = rp_autonat_server_handle(&svc->srv, &q->msg, &ringp2p_stream_conn(s)->peer, remote,
                                     remote != NULL ? rlen : 0, own->v, own->n, now, &q->d, &ei);
    pthread_mutex_unlock(&svc->mu);
    free(own);
    char id[RINGP2P_PEER_ID_STR_MAX];
    rp_host_peer_text(&ringp2p_stream_conn(s)->peer, id, sizeof(id));
    if (r < 0) {
        rp_logf(&n->log, RINGP2P_LOG_DEBUG, "autonat", "%s: %s", id, ei.msg);
        ringp2p_stream_reset(s);
        sreq_unref(q);
        return;
    }
    if (q->d.status != RP_AUTONAT_OK) {
        rp_logf(&n->log, RINGP2P_LOG_DEBUG, "autonat", "%s refused: %s (%s)", id,
                rp_autonat_status_name(q->d.status), q->d.text);
        sreq_answer(q, RINGP2P_ECONNREFUSED, NULL);
        sreq_unref(q);
        return;
    }
    rp_hshard *hs = rp_stream_hshard(s);
    uint64_t timeout = q->d.deadline_ns > now ? q->d.deadline_ns - now : 1;
    rp_logf(&n->log, RINGP2P_LOG_DEBUG, "autonat", "dialing %s back on %zu address(es)", id,
            q->d.n_addrs);
    q->dials_left = q->d.n_addrs;
    for (size_t i = 0; i < q->d.n_addrs; i++) {
        dialback *db = malloc(sizeof(*db));
        q->refs++;
        int dr = RINGP2P_ENOMEM;
        if (db != NULL) {
            *db = (dialback){ q, i };
            dr = rp_host_probe_dial(hs, q->d.addrs[i].bytes, q->d.addrs[i].len, &q->d.peer, timeout,
                                    dialback_done, db);
        }
        if (dr == 0) {
            atomic_fetch_add(&svc->dialbacks, 1);
        } else {
            ringp2p_errinfo e2 = { dr, "" };
            snprintf(e2.msg, sizeof(e2.msg), "cannot dial: %s", ringp2p_strerror(dr));
            if (db == NULL) {
                /* dialback_done needs one: count the failure here */
                q->dials_left--;
                q->refs--;
                if (q->dials_left == 0 && !q->answered) sreq_answer(q, dr, NULL);
            } else {
                dialback_done(n, NULL, dr, &e2, db);
            }
        }
    }
    sreq_unref(q);
}

static void sreq_data(ringp2p_stream *s, void *ctx, const uint8_t *data, size_t len)
{
    sreq *q = ctx;
    if (q->decided) return; /* one request per stream; the rest is ignored */
    if (len > RX_MAX - q->rx_len) {
        ringp2p_stream_reset(s);
        return;
    }
    memcpy(q->rx + q->rx_len, data, len);
    q->rx_len += len;
    const uint8_t *p = q->rx;
    ringp2p_errinfo ei;
    int r = rp_autonat_read_frame(&p, q->rx + q->rx_len, &q->msg, &ei);
    if (r == 0) return;
    if (r < 0) {
        rp_logf(&q->svc->node->log, RINGP2P_LOG_DEBUG, "autonat", "bad request: %s", ei.msg);
        ringp2p_stream_reset(s);
        return;
    }
    sreq_decide(q);
}

static void sreq_eof(ringp2p_stream *s, void *ctx)
{
    sreq *q = ctx;
    if (!q->decided) ringp2p_stream_reset(s); /* no whole request */
}

static void sreq_close(ringp2p_stream *s, void *ctx, int err)
{
    sreq *q = ctx;
    (void)s;
    (void)err;
    q->s = NULL;
    rp_timer_cancel(&q->life);
    rp_timer_cancel(&q->answer);
    sreq_unref(q);
}

static const ringp2p_stream_callbacks sreq_cbs = {
    .on_data = sreq_data,
    .on_eof = sreq_eof,
    .on_close = sreq_close,
};

static void server_handler(ringp2p_node *n, ringp2p_stream *s, void *ctx)
{
    rp_autonat_svc *svc = ctx;
    (void)n;
    sreq *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        ringp2p_stream_reset(s);
        return;
    }
    q->svc = svc;
    q->s = s;
    q->sh = rp_stream_hshard(s)->sh;
    q->refs = 1;
    rp_timer_init(&q->life, life_fired, q);
    rp_timer_init(&q->answer, answer_fired, q);
    rp_timer_arm(rp_shard_timers(q->sh), &q->life, rp_shard_now(q->sh) + STREAM_TIMEOUT_NS);
    ringp2p_stream_set_callbacks(s, &sreq_cbs, q);
}

/* ---- the service ---------------------------------------------------------------------------- */

RINGP2P_API int ringp2p_config_autonat(ringp2p_config *cfg, unsigned flags)
{
    if ((flags &
         ~(RINGP2P_AUTONAT_CLIENT | RINGP2P_AUTONAT_SERVER | RINGP2P_AUTONAT_ALLOW_PRIVATE)) != 0)
        return RINGP2P_EINVAL;
    cfg->autonat = flags;
    return 0;
}

RINGP2P_API const char *ringp2p_reachability_name(ringp2p_reachability r)
{
    switch (r) {
    case RINGP2P_REACHABILITY_PUBLIC: return "public";
    case RINGP2P_REACHABILITY_PRIVATE: return "private";
    default: return "unknown";
    }
}

RINGP2P_API ringp2p_reachability ringp2p_node_reachability(ringp2p_node *n)
{
    rp_autonat_svc *svc = n->autonat;
    if (svc == NULL || (svc->flags & RINGP2P_AUTONAT_CLIENT) == 0)
        return RINGP2P_REACHABILITY_UNKNOWN;
    pthread_mutex_lock(&svc->mu);
    rp_autonat_reachability st = rp_autonat_client_status(&svc->cl);
    pthread_mutex_unlock(&svc->mu);
    return public_reach(st);
}

int rp_autonat_svc_new(ringp2p_node *n, ringp2p_errinfo *ei)
{
    rp_autonat_svc *svc = calloc(1, sizeof(*svc));
    if (svc == NULL) return RINGP2P_ENOMEM;
    svc->node = n;
    svc->flags = n->cfg.autonat;
    bool priv = (svc->flags & RINGP2P_AUTONAT_ALLOW_PRIVATE) != 0;
    if (getrandom(&svc->rng, sizeof(svc->rng), 0) != sizeof(svc->rng) || svc->rng == 0)
        svc->rng = rp_clock_ns() | 1;
    rp_autonat_server_config sc;
    rp_autonat_server_config_default(&sc);
    sc.allow_private = priv;
    sc.dial_timeout_ns = rp_host_limit(n, RINGP2P_LIMIT_AUTONAT_DIAL_TIMEOUT_MS) * 1000000ull;
    sc.seed = xorshift(&svc->rng) | 1; /* the rate-limit window's jitter */
    rp_autonat_server_init(&svc->srv, &sc);
    rp_autonat_client_config cc;
    rp_autonat_client_config_default(&cc);
    cc.allow_private = priv;
    rp_autonat_client_init(&svc->cl, &cc, rp_clock_ns());
    svc->timer_at = UINT64_MAX;
    rp_timer_init(&svc->timer, timer_fired, svc);
    pthread_mutex_init(&svc->mu, NULL);
    n->autonat = svc;
    if ((svc->flags & RINGP2P_AUTONAT_SERVER) != 0) {
        int r = ringp2p_node_set_stream_handler(n, RP_AUTONAT_PROTOCOL_ID, server_handler, svc);
        if (r < 0) return rp_err(ei, r, "autonat: cannot register %s", RP_AUTONAT_PROTOCOL_ID);
    }
    return 0;
}

void rp_autonat_svc_free(rp_autonat_svc *svc)
{
    if (svc == NULL) return;
    pthread_mutex_destroy(&svc->mu);
    free(svc);
}

void rp_autonat_svc_stop_shard(rp_hshard *hs)
{
    rp_autonat_svc *svc = hs->node->autonat;
    if (svc == NULL) return;
    pthread_mutex_lock(&svc->mu);
    svc->stopped = true;
    pthread_mutex_unlock(&svc->mu);
    if (hs->idx == 0) rp_timer_cancel(&svc->timer);
}

void rp_autonat_svc_test_config(ringp2p_node *n, const rp_autonat_server_config *sc,
                                const rp_autonat_client_config *cc)
{
    rp_autonat_svc *svc = n->autonat;
    pthread_mutex_lock(&svc->mu);
    if (sc != NULL) rp_autonat_server_init(&svc->srv, sc);
    if (cc != NULL) rp_autonat_client_init(&svc->cl, cc, rp_clock_ns());
    pthread_mutex_unlock(&svc->mu);
}

uint64_t rp_autonat_svc_dialbacks(ringp2p_node *n)
{
    return atomic_load(&n->autonat->dialbacks);
}

uint64_t rp_autonat_svc_probes_done(ringp2p_node *n)
{
    return atomic_load(&n->autonat->probes_done);
}
