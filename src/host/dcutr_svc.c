/*
 * DCUtR in the host: protocols/dcutr.h decides, this file moves the bytes,
 * dials and keeps the time.
 *
 * Roles (relay/DCUtR.md). A dialed B through a relay, so B received the
 * relayed connection. B (the initiator) starts once identify on that
 * connection shows that A serves /libp2p/dcutr and no direct connection to A
 * exists; A (the responder) answers each /libp2p/dcutr stream B opens. In the
 * hole punch A takes the client role of the new connection's upgrade and B
 * the server's (go-libp2p passes the same roles to its upgrader as a
 * "simultaneous connect"; multistream's old simultaneous-open extension is
 * not used).
 *
 * One session per initiator (one per relayed connection) or per inbound
 * stream (responder), on the relayed connection's shard, which alone touches
 * its core, timer and streams. Sessions sit on one list behind svc->mu so any
 * shard can find them: by the peer (a direct connection came up), by the
 * address being punched to (an accepted connection), by `gen` (posted
 * messages, dial and stream callbacks carry it, never a pointer). A session
 * is freed by a message to its own shard once it is finished and its relayed
 * connection is gone, so nothing of it is on the stack then.
 *
 * Candidates: the observed addresses other peers reported for our listen
 * ports (identify's observedAddr, before two observers confirm them, as the
 * issue asks: a lone relay is usually the only observer), then the listen
 * addresses (wildcards expanded). They only mean something because a node
 * that listens dials from its listen port (rp_host_dial_local), as go-libp2p
 * does: the relay saw us at the NAT's mapping of that port. The core drops
 * relayed, non-TCP and (unless RINGP2P_DCUTR_ALLOW_PRIVATE) private ones;
 * here loopback ones are dropped too unless the relay is on loopback (then
 * both peers share this machine), so a punch never dials 127.0.0.1 across a
 * network.
 *
 * Dials. RP_DCUTR_DIRECT_DIAL: an ordinary dial of each address.
 * RP_DCUTR_DIAL: a hole-punch dial of each address from the listen port
 * (rp_hopen.punch), with the role the core says. In a TCP simultaneous open
 * both sides' connects succeed into one connection; when one side's SYN
 * arrives before the other side connected (no NAT, or a late punch), the
 * other side's listener accepts it and its own connect finds the address
 * pair taken (RINGP2P_EADDRINUSE). Either way the proof of success is the
 * same: a direct connection to the peer became ready (CONNECTED, relayed
 * false, on any shard), which is reported to every running session with
 * that peer. An EADDRINUSE is therefore not counted as a failure: the
 * connection holding the pair finishes its upgrade, or the core's dial
 * deadline passes. An accepted connection from an address A is punching to
 * takes A's client role (rp_dcutr_svc_accept_as_client), so the roles still
 * agree.
 *
 * After a success both sides mark the relayed connection close-when-idle
 * (hconn.c: closed gracefully once no stream is open on it and no request
 * waits for it) and new streams take the direct one (the directory prefers
 * direct connections). Should a second direct connection to the peer come up
 * anyway (peers with several reachable addresses), A, the client, closes the
 * later one when it is idle, so both ends keep the same one.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/log.h"
#include "host/dcutr_svc.h"
#include "host/host.h"
#include "multiformats/multiaddr.h"
#include "protocols/dcutr.h"
#include "protocols/identify.h"
#include "protocols/nataddr.h"

#define MOD "dcutr"
/* One message with its length prefix. */
#define RX_MAX (RP_DCUTR_MSG_MAX + 4)
/* Candidate addresses gathered before the core filters them. */
#define CAND_MAX (RP_HOST_ADDRS_MAX + RP_OBSADDR_REPORTS_MAX)
/* Responder sessions (exchanges) kept per relayed connection; more streams are reset. */
#define EXCHANGES_MAX 8

typedef struct dstream {
    struct rp_dcutr_svc *svc;
    uint64_t gen; /* its session */
    bool wclosed;
    size_t rx_len;
    uint8_t rx[RX_MAX];
} dstream;

typedef struct dialrec {
    struct rp_dcutr_svc *svc;
    uint64_t gen, seq;
    unsigned attempt;
} dialrec;

typedef struct sess {
    struct sess *next;
    struct rp_dcutr_svc *svc;
    /* fixed at creation, read under svc->mu anywhere */
    uint64_t gen;
    unsigned shard;
    uint64_t rconn; /* the relayed connection */
    ringp2p_peer_id peer;
    bool initiator;
    /* written under svc->mu, on its shard */
    bool finished, ok, rconn_gone, quiet;
    uint64_t direct; /* the direct connection kept (0: none known) */
    size_t n_acc;    /* responder while punching: B's addresses (accept_as_client) */
    rp_nataddr acc[RP_DCUTR_DIAL_ADDRS_MAX];
    /* its shard only */
    rp_dcutr d;
    bool started, stopped, reported, driving, again, relay_lo;
    unsigned exchange; /* responder: the how-manieth exchange on rconn */
    dstream *cur;      /* the exchange's stream */
    rp_timer timer;
    uint64_t seq; /* dial actions so far */
    unsigned dials_left, dial_attempt;
    size_t dq_n; /* the current dial action's addresses */
    rp_nataddr dq[RP_DCUTR_DIAL_ADDRS_MAX];
    bool dq_punch, dq_client;
    rp_timer dtimer; /* tests: the responder's delayed punch */
    int last_err;
    char errmsg[RINGP2P_ERRINFO_MSG_MAX];
} sess;

struct rp_dcutr_svc {
    ringp2p_node *node;
    unsigned flags;
    rp_dcutr_svc_test test;
    pthread_mutex_t mu;
    sess *list;
    uint64_t next_gen;
    bool stopping;
    atomic_uint punching; /* responder sessions with acc set */
    atomic_uint_fast64_t punch_dials, exchanges;
};

enum { M_START, M_DIRECT, M_CLOSE_IDLE, M_FREE };

typedef struct smsg {
    rp_dcutr_svc *svc;
    int kind;
    uint64_t gen, conn;
    unsigned cshard; /* M_DIRECT: the connection's shard */
} smsg;

static void drive(sess *x);

/* ---- config -------------------------------------------------------------------------------- */

RINGP2P_API int ringp2p_config_dcutr(ringp2p_config *cfg, unsigned flags)
{
    if ((flags & ~(RINGP2P_DCUTR_ON | RINGP2P_DCUTR_ALLOW_PRIVATE)) != 0 ||
        ((flags & RINGP2P_DCUTR_ALLOW_PRIVATE) != 0 && (flags & RINGP2P_DCUTR_ON) == 0))
        return RINGP2P_EINVAL;
    cfg->dcutr = flags;
    return 0;
}

/* ---- helpers ------------------------------------------------------------------------------- */

static uint64_t now_on(const sess *x, const rp_dcutr_svc *svc)
{
    return rp_shard_now(svc->node->shards[x->shard]->sh);
}

static bool addr_loopback(const uint8_t *a, size_t n)
{
    static const uint8_t lo6[16] = { [15] = 1 };
    uint32_t code;
    const uint8_t *ip;
    if (!rp_nataddr_ip_of(a, n, &code, &ip)) return false;
    return code == RINGP2P_P_IP4 ? ip[0] == 127 : memcmp(ip, lo6, 16) == 0;
}

/* Whether the relayed connection runs through a relay on loopback (its circuit address). */
static bool relay_on_loopback(const ringp2p_conn_info *ci)
{
    size_t len = 0;
    const uint8_t *b =
        ci->remote_addr != NULL ? ringp2p_multiaddr_bytes(ci->remote_addr, &len) : NULL;
    return b != NULL && addr_loopback(b, len);
}

typedef struct addrset {
    size_t n;
    rp_iov v[CAND_MAX];
    uint8_t b[CAND_MAX][RP_OBSADDR_ADDR_MAX];
} addrset;

static void set_add(addrset *s, const uint8_t *a, size_t len, bool relay_lo)
{
    if (s->n == CAND_MAX || len == 0 || len > RP_OBSADDR_ADDR_MAX ||
        (!relay_lo && addr_loopback(a, len)))
        return;
    memcpy(s->b[s->n], a, len);
    s->v[s->n] = rp_iov_make(s->b[s->n], len);
    s->n++;
}

/*
 * Our candidates: observed addresses (adopted, then every report), then the listen
 * addresses; the core filters and deduplicates them.
 */
static void own_get(rp_dcutr_svc *svc, bool relay_lo, addrset *s)
{
    ringp2p_node *n = svc->node;
    s->n = 0;
    if (svc->test.n_own > 0) {
        for (size_t i = 0; i < svc->test.n_own; i++)
            set_add(s, svc->test.own[i], svc->test.own_len[i], true);
        return;
    }
    pthread_mutex_lock(&n->amu);
    for (size_t k = 0; k < rp_obsaddr_count(&n->obs); k++) {
        rp_iov a = rp_obsaddr_get(&n->obs, k);
        set_add(s, a.base, a.len, relay_lo);
    }
    for (size_t i = 0; i < n->obs.n_reports; i++)
        set_add(s, n->obs.reports[i].adopt, n->obs.reports[i].adopt_len, relay_lo);
    for (size_t i = 0; i < n->nbase; i++) set_add(s, n->base[i], n->base_len[i], relay_lo);
    pthread_mutex_unlock(&n->amu);
}

static void core_cfg(const rp_dcutr_svc *svc, rp_dcutr_config *c)
{
    rp_dcutr_config_default(c);
    c->allow_private = (svc->flags & RINGP2P_DCUTR_ALLOW_PRIVATE) != 0;
    c->dial_timeout_ns =
        svc->test.dial_timeout_ns != 0
            ? svc->test.dial_timeout_ns
            : rp_host_limit(svc->node, RINGP2P_LIMIT_DIAL_TIMEOUT_MS) * UINT64_C(1000000);
}

/* ---- the session list ------------------------------------------------------------------------ */

/* mu held. */
static sess *find_gen(rp_dcutr_svc *svc, uint64_t gen)
{
    for (sess *x = svc->list; x != NULL; x = x->next)
        if (x->gen == gen) return x;
    return NULL;
}

/* The session `gen`, from its own shard (only that shard frees it), or NULL. */
static sess *sess_get(rp_dcutr_svc *svc, uint64_t gen)
{
    pthread_mutex_lock(&svc->mu);
    sess *x = find_gen(svc, gen);
    pthread_mutex_unlock(&svc->mu);
    return x;
}

static void timer_fired(rp_timer *t, void *arg);
static void dtimer_fired(rp_timer *t, void *arg);

/* mu held: a new session on the list. */
static sess *sess_new(rp_dcutr_svc *svc, const ringp2p_conn_info *ci, bool initiator)
{
    sess *x = calloc(1, sizeof(*x));
    if (x == NULL) return NULL;
    x->svc = svc;
    x->gen = ++svc->next_gen;
    x->shard = ci->shard;
    x->rconn = ci->id;
    x->peer = ci->peer;
    x->initiator = initiator;
    x->last_err = RINGP2P_EUNREACHABLE;
    rp_timer_init(&x->timer, timer_fired, x);
    rp_timer_init(&x->dtimer, dtimer_fired, x);
    x->next = svc->list;
    svc->list = x;
    return x;
}

/* Posts m from the shard we run on (`from`) to shard `to`; frees it if that fails. */
static void post(rp_dcutr_svc *svc, unsigned from, unsigned to, int kind, uint64_t gen,
                 uint64_t conn, unsigned cshard);

/* Its shard: the session is over; it goes once its relayed connection is gone. */
static void sess_finish(rp_dcutr_svc *svc, sess *x)
{
    rp_timer_cancel(&x->timer);
    rp_timer_cancel(&x->dtimer);
    pthread_mutex_lock(&svc->mu);
    x->finished = true;
    if (x->n_acc > 0) {
        x->n_acc = 0;
        atomic_fetch_sub(&svc->punching, 1);
    }
    bool free_now = x->rconn_gone || x->quiet;
    pthread_mutex_unlock(&svc->mu);
    if (free_now) post(svc, x->shard, x->shard, M_FREE, x->gen, 0, 0);
}

/* ---- events -------------------------------------------------------------------------------- */

static const char *fail_text(const sess *x, int err, char *buf, size_t cap)
{
    switch (err) {
    case RINGP2P_ENOENT:
        return x->errmsg[0] != 0 ? x->errmsg
                                 : "no usable address to offer (listen addresses, observed "
                                   "addresses; private ones need RINGP2P_DCUTR_ALLOW_PRIVATE)";
    case RINGP2P_ETIMEDOUT:
        return "the hole punch did not connect in time (a NAT that changes ports, or a "
               "firewall?)";
    default:
        if (x->errmsg[0] != 0) return x->errmsg;
        snprintf(buf, cap, "%s", ringp2p_strerror(err));
        return buf;
    }
}

static void report(rp_dcutr_svc *svc, sess *x, const rp_dcutr_action *act)
{
    ringp2p_node *n = svc->node;
    rp_hshard *hs = n->shards[x->shard];
    bool ok = act->result == 0;
    x->reported = true;
    pthread_mutex_lock(&svc->mu);
    x->ok = ok;
    pthread_mutex_unlock(&svc->mu);
    if (ok) rp_hconn_close_when_idle(hs, x->rconn);
    if (x->quiet) return;
    unsigned attempts = x->initiator ? act->attempts : x->exchange;
    char pid[RINGP2P_PEER_ID_STR_MAX], buf[RINGP2P_ERRINFO_MSG_MAX];
    const char *why = ok ? NULL : fail_text(x, act->result, buf, sizeof(buf));
    rp_host_peer_text(&x->peer, pid, sizeof(pid));
    if (ok)
        rp_logf(&n->log, RINGP2P_LOG_INFO, MOD,
                "hole punch with %s (%s): direct connection after %u attempt(s), relay rtt %.1f ms",
                pid, x->initiator ? "initiator" : "responder", attempts, (double)act->rtt_ns / 1e6);
    else
        rp_logf(&n->log, RINGP2P_LOG_INFO, MOD, "hole punch with %s (%s) failed: %s", pid,
                x->initiator ? "initiator" : "responder", why);
    if (n->cfg.ev_fn == NULL) return;
    ringp2p_holepunch_info hi = {
        .peer = x->peer,
        .ok = ok,
        .initiator = x->initiator,
        .attempts = attempts,
        .rtt_ns = act->rtt_ns,
        .error = why,
    };
    rp_hconn *hc = rp_hconn_find(hs, x->rconn);
    ringp2p_event ev = { .type = RINGP2P_EVENT_HOLEPUNCH,
                         .conn = hc != NULL ? rp_hconn_info(hc) : NULL,
                         .err = act->result,
                         .holepunch = &hi };
    n->cfg.ev_fn(n, &ev, n->cfg.ev_ctx);
}

/* ---- dials --------------------------------------------------------------------------------- */

/* One dial of the current action failed with err; the last one to fail fails the action. */
static void dial_lost(rp_dcutr_svc *svc, sess *x, int err)
{
    x->last_err = err;
    if (x->dials_left > 0 && --x->dials_left == 0)
        rp_dcutr_dial_result(&x->d, x->dial_attempt, x->last_err, now_on(x, svc));
}

static void dial_cb(ringp2p_node *n, ringp2p_stream *s, int err, const ringp2p_errinfo *ei,
                    void *ctx)
{
    dialrec *dr = ctx;
    rp_dcutr_svc *svc = dr->svc;
    (void)s;
    sess *x = sess_get(svc, dr->gen);
    if (x == NULL || x->stopped || x->reported) {
        free(dr);
        return;
    }
    uint64_t did;
    unsigned dsh;
    if (err == 0) {
        /* a success counts whenever it comes (the core's rule); CONNECTED told the others */
        rp_dcutr_dial_result(&x->d, dr->attempt, 0, now_on(x, svc));
    } else if (dr->seq == x->seq) {
        if (err == RINGP2P_EADDRINUSE && rp_host_dir_direct(n, &x->peer, &did, &dsh)) {
            rp_dcutr_dial_result(&x->d, dr->attempt, 0, now_on(x, svc));
        } else if (err == RINGP2P_EADDRINUSE) {
            /* the pair is held by a connection still upgrading (the peer's SYN met our
             * listener) or lingering: its CONNECTED, or the core's deadline, decides */
            rp_logf(&n->log, RINGP2P_LOG_DEBUG, MOD, "hole-punch dial: address pair in use");
        } else {
            if (ei != NULL && ei->msg[0] != 0)
                snprintf(x->errmsg, sizeof(x->errmsg), "%s", ei->msg);
            dial_lost(svc, x, err);
        }
    }
    free(dr);
    drive(x);
}

static void dial_launch(rp_dcutr_svc *svc, sess *x);

static void dial_all(rp_dcutr_svc *svc, sess *x, const rp_dcutr_action *act)
{
    ringp2p_node *n = svc->node;
    rp_hshard *hs = n->shards[x->shard];
    bool punch = act->kind == RP_DCUTR_DIAL;
    x->seq++;
    x->dial_attempt = act->attempt;
    x->last_err = RINGP2P_EUNREACHABLE;
    x->errmsg[0] = 0;
    uint64_t did;
    unsigned dsh;
    if (rp_host_dir_direct(n, &x->peer, &did, &dsh)) {
        /* already there: the peer's punch reached our listener before we dialed */
        rp_dcutr_dial_result(&x->d, act->attempt, 0, now_on(x, svc));
        return;
    }
    x->dq_n = act->n_addrs < RP_DCUTR_DIAL_ADDRS_MAX ? act->n_addrs : RP_DCUTR_DIAL_ADDRS_MAX;
    memcpy(x->dq, act->addrs, x->dq_n * sizeof(x->dq[0]));
    x->dq_punch = punch;
    x->dq_client = act->client;
    x->dials_left = 1; /* held until every dial is out: a dial may fail inside rp_hconn_dial */
    if (punch && !x->initiator && svc->test.responder_delay_ns != 0) {
        rp_timer_arm(rp_shard_timers(hs->sh), &x->dtimer,
                     rp_shard_now(hs->sh) + svc->test.responder_delay_ns);
        return;
    }
    dial_launch(svc, x);
}

/* The dials of the current action (x->dq), then the hold on dials_left goes. */
static void dial_launch(rp_dcutr_svc *svc, sess *x)
{
    ringp2p_node *n = svc->node;
    rp_hshard *hs = n->shards[x->shard];
    const rp_maddr_proto *p2p = rp_maddr_proto_by_code(RINGP2P_P_P2P);
    for (size_t i = 0; i < x->dq_n && !hs->stopping; i++) {
        const rp_nataddr *a = &x->dq[i];
        if (!x->relay_lo && addr_loopback(a->bytes, a->len)) continue;
        uint8_t buf[RP_NATADDR_LEN_MAX + 64];
        memcpy(buf, a->bytes, a->len);
        ssize_t k = rp_maddr_put_component(p2p, x->peer.bytes, x->peer.len, buf + a->len,
                                           sizeof(buf) - a->len, NULL);
        rp_hopen *o = k > 0 ? calloc(1, sizeof(*o)) : NULL;
        dialrec *dr = o != NULL ? calloc(1, sizeof(*dr)) : NULL;
        if (dr == NULL || (o->addr = malloc(a->len + (size_t)k)) == NULL) {
            free(dr);
            free(o);
            continue;
        }
        memcpy(o->addr, buf, a->len + (size_t)k);
        o->addr_len = a->len + (size_t)k;
        o->node = n;
        o->has_peer = true;
        o->peer = x->peer;
        o->conn_only = true;
        o->punch = x->dq_punch;
        o->punch_client = x->dq_client;
        *dr = (dialrec){ svc, x->gen, x->seq, x->dial_attempt };
        o->fn = dial_cb;
        o->ctx = dr;
        x->dials_left++;
        if (x->dq_punch) atomic_fetch_add(&svc->punch_dials, 1);
        rp_hconn_dial(hs, o); /* dial_cb runs, now or later */
    }
    dial_lost(svc, x, x->last_err); /* the hold: with nothing dialed, the attempt failed */
}

/* ---- streams ------------------------------------------------------------------------------- */

static const ringp2p_stream_callbacks st_cbs;

/* The session of ds if ds is its current stream (and it runs), else NULL. */
static sess *ds_sess(dstream *ds)
{
    sess *x = sess_get(ds->svc, ds->gen);
    return x != NULL && x->cur == ds && !x->stopped && !x->reported ? x : NULL;
}

/* Writes out[len]; on failure the stream is reset (ds is then freed by on_close). */
static bool ds_write(ringp2p_stream *s, const uint8_t *out, size_t len)
{
    if (len == 0 || ringp2p_stream_write(s, out, len) == (ssize_t)len) return true;
    ringp2p_stream_reset(s);
    return false;
}

static void st_data(ringp2p_stream *s, void *ctx, const uint8_t *data, size_t len)
{
    dstream *ds = ctx;
    sess *x = ds_sess(ds);
    if (x == NULL) return; /* a stream that no longer matters: its bytes are dropped */
    rp_dcutr_svc *svc = ds->svc;
    if (len > sizeof(ds->rx) - ds->rx_len) {
        snprintf(x->errmsg, sizeof(x->errmsg), "dcutr: a message over %d bytes", RP_DCUTR_MSG_MAX);
        ringp2p_stream_reset(s); /* st_close tells the core */
        return;
    }
    memcpy(ds->rx + ds->rx_len, data, len);
    ds->rx_len += len;
    const uint8_t *p = ds->rx;
    uint8_t out[RP_DCUTR_OUT_MAX];
    rp_wbuf w = rp_wbuf_make(out, sizeof(out));
    ringp2p_errinfo ei = { 0, "" };
    int r = rp_dcutr_recv(&x->d, &p, ds->rx + ds->rx_len, now_on(x, svc), &w, &ei);
    size_t used = (size_t)(p - ds->rx);
    memmove(ds->rx, p, ds->rx_len - used);
    ds->rx_len -= used;
    if (!x->initiator && x->d.n_theirs > 0 && !x->finished) {
        /* B's addresses: an accepted connection from one of them is our punch */
        pthread_mutex_lock(&svc->mu);
        if (x->n_acc == 0) atomic_fetch_add(&svc->punching, 1);
        x->n_acc = x->d.n_theirs;
        memcpy(x->acc, x->d.theirs, x->n_acc * sizeof(x->acc[0]));
        pthread_mutex_unlock(&svc->mu);
    }
    if (r < 0) {
        snprintf(x->errmsg, sizeof(x->errmsg), "%s", ei.msg);
        ringp2p_stream_reset(s);
    } else if (ds_write(s, out, w.len) && r == 1 && !ds->wclosed) {
        ds->wclosed = true; /* this stream's exchange is over */
        ringp2p_stream_close_write(s);
    }
    drive(x);
}

static void st_eof(ringp2p_stream *s, void *ctx)
{
    dstream *ds = ctx;
    if (!ds->wclosed) {
        ds->wclosed = true;
        ringp2p_stream_close_write(s);
    }
    sess *x = ds_sess(ds);
    if (x == NULL) return;
    rp_dcutr_stream_failed(&x->d, RINGP2P_ECONNRESET, now_on(x, ds->svc)); /* unless done */
    drive(x);
}

static void st_close(ringp2p_stream *s, void *ctx, int err)
{
    dstream *ds = ctx;
    (void)s;
    sess *x = ds_sess(ds);
    if (x != NULL) {
        x->cur = NULL;
        rp_dcutr_stream_failed(&x->d, err != 0 ? err : RINGP2P_ECLOSED, now_on(x, ds->svc));
        drive(x);
    } else {
        x = sess_get(ds->svc, ds->gen);
        if (x != NULL && x->cur == ds) x->cur = NULL;
    }
    free(ds);
}

static const ringp2p_stream_callbacks st_cbs = {
    .on_data = st_data,
    .on_eof = st_eof,
    .on_close = st_close,
};

/* Initiator: the stream asked for opened (or not). */
static void st_opened(ringp2p_node *n, ringp2p_stream *s, int err, const ringp2p_errinfo *ei,
                      void *ctx)
{
    dstream *ds = ctx;
    (void)n;
    sess *x = ds_sess(ds);
    if (err < 0 || x == NULL) {
        if (x != NULL) {
            x->cur = NULL;
            if (ei != NULL && ei->msg[0] != 0)
                snprintf(x->errmsg, sizeof(x->errmsg), "dcutr stream: %.200s", ei->msg);
            rp_dcutr_stream_failed(&x->d, err, now_on(x, ds->svc));
            drive(x);
        } else if (s != NULL) {
            ringp2p_stream_reset(s); /* no callbacks yet: no on_close */
        }
        free(ds);
        return;
    }
    ringp2p_stream_set_callbacks(s, &st_cbs, ds);
    uint8_t out[RP_DCUTR_OUT_MAX];
    rp_wbuf w = rp_wbuf_make(out, sizeof(out));
    ringp2p_errinfo e2 = { 0, "" };
    if (rp_dcutr_stream_opened(&x->d, now_on(x, ds->svc), &w, &e2) < 0) {
        snprintf(x->errmsg, sizeof(x->errmsg), "%s", e2.msg);
        ringp2p_stream_reset(s);
    } else {
        ds_write(s, out, w.len);
    }
    drive(x);
}

static void open_stream(rp_dcutr_svc *svc, sess *x)
{
    rp_hconn *hc = rp_hconn_find(svc->node->shards[x->shard], x->rconn);
    dstream *ds = hc != NULL ? calloc(1, sizeof(*ds)) : NULL;
    atomic_fetch_add(&svc->exchanges, 1);
    if (ds == NULL) {
        rp_dcutr_stream_failed(&x->d, hc == NULL ? RINGP2P_ECLOSED : RINGP2P_ENOMEM,
                               now_on(x, svc));
        return;
    }
    ds->svc = svc;
    ds->gen = x->gen;
    x->cur = ds; /* st_opened may run inside the call */
    int r = rp_hconn_open_internal(hc, RP_DCUTR_PROTOCOL_ID, st_opened, ds);
    if (r < 0) {
        x->cur = NULL;
        free(ds);
        rp_dcutr_stream_failed(&x->d, r, now_on(x, svc));
    }
}

/* The responder: a stream B opened on a connection to us. */
static void dcutr_handler(ringp2p_node *n, ringp2p_stream *s, void *ctx)
{
    rp_dcutr_svc *svc = ctx;
    const ringp2p_conn_info *ci = ringp2p_stream_conn(s);
    rp_hshard *hs = n->shards[ci->shard];
    sess *x = NULL;
    unsigned count = 0;
    uint64_t prev = 0;
    pthread_mutex_lock(&svc->mu);
    for (sess *y = svc->list; y != NULL; y = y->next)
        if (!y->initiator && y->rconn == ci->id) {
            count++;
            if (!y->finished) prev = y->gen;
        }
    if (!svc->stopping && !hs->stopping && count < EXCHANGES_MAX) x = sess_new(svc, ci, false);
    pthread_mutex_unlock(&svc->mu);
    /* B moved on to its next attempt before our dial's deadline: that exchange failed */
    sess *old = x != NULL && prev != 0 ? sess_get(svc, prev) : NULL;
    if (old != NULL && !old->reported && !old->stopped) {
        snprintf(old->errmsg, sizeof(old->errmsg),
                 "the hole punch did not connect before the peer's next attempt");
        rp_dcutr_stream_failed(&old->d, RINGP2P_ETIMEDOUT, rp_shard_now(hs->sh));
        rp_dcutr_dial_result(&old->d, old->d.attempt, RINGP2P_ETIMEDOUT, rp_shard_now(hs->sh));
        drive(old);
    }
    dstream *ds = x != NULL ? calloc(1, sizeof(*ds)) : NULL;
    if (ds == NULL) {
        ringp2p_stream_reset(s);
        if (x != NULL) {
            x->quiet = true;
            sess_finish(svc, x);
        }
        return;
    }
    atomic_fetch_add(&svc->exchanges, 1);
    x->exchange = count + 1;
    x->relay_lo = relay_on_loopback(ci);
    ds->svc = svc;
    ds->gen = x->gen;
    addrset *o = malloc(sizeof(*o)); /* 8 KiB: not on a shard's stack */
    rp_dcutr_config c;
    core_cfg(svc, &c);
    ringp2p_errinfo ei = { 0, "" };
    if (o != NULL) own_get(svc, x->relay_lo, o);
    int r =
        rp_dcutr_responder_init(&x->d, &c, &ci->peer, o != NULL ? o->v : NULL, o != NULL ? o->n : 0,
                                ci->relayed, !ci->inbound, rp_shard_now(hs->sh), &ei);
    free(o);
    x->started = true;
    if (r < 0) {
        /* not relayed or not ours: a confused peer, no event; nothing to offer: say so */
        x->quiet = r == RINGP2P_EPROTOCOL;
        snprintf(x->errmsg, sizeof(x->errmsg), "%s", ei.msg);
        rp_logf(&n->log, RINGP2P_LOG_DEBUG, MOD, "hole-punch stream refused: %s", ei.msg);
        ringp2p_stream_reset(s); /* no callbacks yet */
        free(ds);
        drive(x); /* DONE */
        return;
    }
    x->cur = ds;
    ringp2p_stream_set_callbacks(s, &st_cbs, ds);
    drive(x);
}

/* ---- the engine ---------------------------------------------------------------------------- */

static void act_do(rp_dcutr_svc *svc, sess *x, const rp_dcutr_action *act)
{
    switch (act->kind) {
    case RP_DCUTR_DIRECT_DIAL:
    case RP_DCUTR_DIAL: dial_all(svc, x, act); break;
    case RP_DCUTR_OPEN_STREAM: open_stream(svc, x); break;
    case RP_DCUTR_DONE: report(svc, x, act); break;
    default: break;
    }
}

/*
 * Runs the core's actions until it waits, then arms the timer for its deadline. Actions
 * call back into here (a dial failing at once, a stream opening at once): such a nested
 * call only asks the outer loop to poll again. Callers touch x no more after this.
 */
static void drive(sess *x)
{
    rp_dcutr_svc *svc = x->svc;
    if (x->stopped || x->finished) return;
    if (x->driving) {
        x->again = true;
        return;
    }
    x->driving = true;
    rp_shard *sh = svc->node->shards[x->shard]->sh;
    do {
        x->again = false;
        rp_dcutr_action act;
        while (!x->stopped && !x->reported && rp_dcutr_poll(&x->d, rp_shard_now(sh), &act))
            act_do(svc, x, &act);
    } while (x->again && !x->stopped && !x->reported);
    x->driving = false;
    if (x->reported) {
        sess_finish(svc, x);
        return;
    }
    if (x->stopped) return;
    uint64_t dl = rp_dcutr_deadline(&x->d);
    if (dl == UINT64_MAX)
        rp_timer_cancel(&x->timer);
    else if (!rp_timer_armed(&x->timer) || rp_timer_deadline(&x->timer) != dl)
        rp_timer_arm(rp_shard_timers(sh), &x->timer, dl);
}

static void timer_fired(rp_timer *t, void *arg)
{
    sess *x = arg;
    (void)t;
    drive(x);
}

static void dtimer_fired(rp_timer *t, void *arg)
{
    sess *x = arg;
    (void)t;
    if (x->stopped || x->reported) return;
    dial_launch(x->svc, x);
    drive(x);
}

/* B: identify showed A serves the protocol: our candidates, A's addresses, go. */
static void initiator_start(rp_dcutr_svc *svc, sess *x)
{
    ringp2p_node *n = svc->node;
    rp_hshard *hs = n->shards[x->shard];
    rp_hconn *hc = rp_hconn_find(hs, x->rconn);
    uint64_t did;
    unsigned dsh;
    if (hc == NULL || rp_host_dir_direct(n, &x->peer, &did, &dsh)) { /* gone, or not needed */
        x->quiet = true;
        sess_finish(svc, x);
        return;
    }
    x->relay_lo = relay_on_loopback(rp_hconn_info(hc));
    addrset *own = malloc(sizeof(*own)), *known = malloc(sizeof(*known));
    if (own == NULL || known == NULL) {
        free(own);
        free(known);
        x->quiet = true;
        sess_finish(svc, x);
        return;
    }
    own_get(svc, x->relay_lo, own);
    known->n = 0;
    /* A's addresses from identify: a plain dial first if any of them may work (go) */
    const rp_identify_peer *idp = svc->test.no_direct ? NULL : rp_hconn_peer(hc);
    const rp_iov *list = NULL;
    size_t k = idp != NULL ? rp_identify_peer_addrs(idp, &list, NULL) : 0;
    for (size_t i = 0; i < k; i++) set_add(known, list[i].base, list[i].len, x->relay_lo);
    rp_dcutr_config c;
    core_cfg(svc, &c);
    ringp2p_errinfo ei = { 0, "" };
    int r = rp_dcutr_initiator_init(&x->d, &c, &x->peer, own->v, own->n, known->v, known->n,
                                    rp_shard_now(hs->sh), &ei);
    free(own);
    free(known);
    x->started = true;
    if (r < 0) snprintf(x->errmsg, sizeof(x->errmsg), "%s", ei.msg);
    drive(x);
}

/* A direct connection to x's peer came up (conn, on shard cshard). */
static void direct_up(rp_dcutr_svc *svc, sess *x, uint64_t conn, unsigned cshard)
{
    if (!x->reported) {
        if (!x->started) return;
        pthread_mutex_lock(&svc->mu);
        if (x->direct == 0) x->direct = conn;
        pthread_mutex_unlock(&svc->mu);
        rp_dcutr_dial_result(&x->d, x->d.attempt, 0, now_on(x, svc));
        drive(x);
        return;
    }
    /* after a success: A keeps the first direct connection and lets a later one go */
    bool extra = false;
    pthread_mutex_lock(&svc->mu);
    if (x->ok && x->direct == 0)
        x->direct = conn;
    else if (x->ok && !x->initiator && x->direct != conn)
        extra = true;
    pthread_mutex_unlock(&svc->mu);
    if (extra) post(svc, x->shard, cshard, M_CLOSE_IDLE, 0, conn, 0);
}

static void sess_free(rp_dcutr_svc *svc, uint64_t gen)
{
    pthread_mutex_lock(&svc->mu);
    sess **pp = &svc->list;
    while (*pp != NULL && (*pp)->gen != gen) pp = &(*pp)->next;
    sess *x = *pp;
    if (x != NULL) *pp = x->next;
    if (x != NULL && x->n_acc > 0) atomic_fetch_sub(&svc->punching, 1);
    pthread_mutex_unlock(&svc->mu);
    if (x == NULL) return;
    rp_timer_cancel(&x->timer);
    rp_timer_cancel(&x->dtimer);
    free(x);
}

static void msg_task(rp_shard *sh, void *arg)
{
    smsg *m = arg;
    rp_dcutr_svc *svc = m->svc;
    if (m->kind == M_CLOSE_IDLE) {
        rp_hconn_close_when_idle(svc->node->shards[rp_shard_id(sh)], m->conn);
    } else if (m->kind == M_FREE) {
        sess_free(svc, m->gen);
    } else {
        sess *x = sess_get(svc, m->gen);
        if (x != NULL && !x->stopped && !x->finished) {
            if (m->kind == M_START)
                initiator_start(svc, x);
            else
                direct_up(svc, x, m->conn, m->cshard);
        } else if (x != NULL && m->kind == M_DIRECT && x->ok) {
            direct_up(svc, x, m->conn, m->cshard);
        }
    }
    free(m);
}

static void post(rp_dcutr_svc *svc, unsigned from, unsigned to, int kind, uint64_t gen,
                 uint64_t conn, unsigned cshard)
{
    smsg *m = malloc(sizeof(*m));
    if (m == NULL) return;
    *m = (smsg){ svc, kind, gen, conn, cshard };
    if (rp_shard_post(svc->node->shards[from]->sh, to, msg_task, m) != 0) free(m);
}

/* ---- the node's hooks ---------------------------------------------------------------------- */

void rp_dcutr_svc_event(ringp2p_node *n, ringp2p_event_type type, const ringp2p_conn_info *ci)
{
    rp_dcutr_svc *svc = n->dcutr;
    if (ci == NULL) return;
    if (type == RINGP2P_EVENT_IDENTIFIED && ci->relayed && ci->inbound) {
        const rp_identify_peer *p = rp_host_conn_peer(ci);
        uint64_t did;
        unsigned dsh;
        if (p == NULL || !rp_identify_peer_supports(p, RP_DCUTR_PROTOCOL_ID) ||
            n->shards[ci->shard]->stopping || rp_host_dir_direct(n, &ci->peer, &did, &dsh))
            return;
        sess *x = NULL;
        pthread_mutex_lock(&svc->mu);
        bool have = svc->stopping;
        for (sess *y = svc->list; y != NULL && !have; y = y->next)
            have = y->initiator && (y->rconn == ci->id ||
                                    (!y->finished && ringp2p_peer_id_equal(&y->peer, &ci->peer)));
        if (!have) x = sess_new(svc, ci, true);
        uint64_t gen = x != NULL ? x->gen : 0;
        pthread_mutex_unlock(&svc->mu);
        /* from a message: not inside identify's stream callback */
        if (x != NULL) post(svc, ci->shard, ci->shard, M_START, gen, 0, 0);
    } else if (type == RINGP2P_EVENT_CONNECTED && !ci->relayed) {
        pthread_mutex_lock(&svc->mu);
        for (sess *x = svc->list; x != NULL; x = x->next)
            if (ringp2p_peer_id_equal(&x->peer, &ci->peer) &&
                (!x->finished || (x->ok && !x->initiator)))
                post(svc, ci->shard, x->shard, M_DIRECT, x->gen, ci->id, ci->shard);
        pthread_mutex_unlock(&svc->mu);
    } else if (type == RINGP2P_EVENT_DISCONNECTED) {
        pthread_mutex_lock(&svc->mu);
        for (sess *x = svc->list; x != NULL; x = x->next) {
            if (x->direct == ci->id) x->direct = 0;
            if (x->rconn != ci->id || x->rconn_gone) continue;
            x->rconn_gone = true;
            if (x->finished) post(svc, ci->shard, x->shard, M_FREE, x->gen, 0, 0);
        }
        pthread_mutex_unlock(&svc->mu);
    }
}

bool rp_dcutr_svc_accept_as_client(ringp2p_node *n, const uint8_t *remote, size_t len)
{
    rp_dcutr_svc *svc = n->dcutr;
    rp_nataddr a;
    if (atomic_load(&svc->punching) == 0 || remote == NULL ||
        rp_nataddr_parse_tcp(remote, len, NULL, &a) < 0)
        return false;
    bool hit = false;
    pthread_mutex_lock(&svc->mu);
    for (sess *x = svc->list; x != NULL && !hit; x = x->next)
        hit = !x->finished && x->n_acc > 0 && rp_nataddr_find(x->acc, x->n_acc, &a) >= 0;
    pthread_mutex_unlock(&svc->mu);
    return hit;
}

int rp_dcutr_svc_new(ringp2p_node *n, ringp2p_errinfo *ei)
{
    rp_dcutr_svc *svc = calloc(1, sizeof(*svc));
    if (svc == NULL) return RINGP2P_ENOMEM;
    svc->node = n;
    svc->flags = n->cfg.dcutr;
    pthread_mutex_init(&svc->mu, NULL);
    n->dcutr = svc;
    int r = ringp2p_node_set_stream_handler(n, RP_DCUTR_PROTOCOL_ID, dcutr_handler, svc);
    if (r < 0) return rp_err(ei, r, "dcutr: cannot register %s", RP_DCUTR_PROTOCOL_ID);
    return 0;
}

void rp_dcutr_svc_free(rp_dcutr_svc *svc)
{
    if (svc == NULL) return;
    while (svc->list != NULL) {
        sess *x = svc->list;
        svc->list = x->next;
        free(x);
    }
    pthread_mutex_destroy(&svc->mu);
    free(svc);
}

void rp_dcutr_svc_stop_shard(rp_hshard *hs)
{
    rp_dcutr_svc *svc = hs->node->dcutr;
    if (svc == NULL) return;
    pthread_mutex_lock(&svc->mu);
    svc->stopping = true;
    for (sess *x = svc->list; x != NULL; x = x->next) {
        if (x->shard != hs->idx) continue;
        x->stopped = true;
        rp_timer_cancel(&x->timer);
        rp_timer_cancel(&x->dtimer);
    }
    pthread_mutex_unlock(&svc->mu);
}

void rp_dcutr_svc_test_set(ringp2p_node *n, const rp_dcutr_svc_test *t)
{
    if (n->dcutr != NULL) n->dcutr->test = *t;
}

uint64_t rp_dcutr_svc_punch_dials(ringp2p_node *n)
{
    return n->dcutr != NULL ? atomic_load(&n->dcutr->punch_dials) : 0;
}

uint64_t rp_dcutr_svc_exchanges(ringp2p_node *n)
{
    return n->dcutr != NULL ? atomic_load(&n->dcutr->exchanges) : 0;
}
