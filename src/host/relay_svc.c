/*
 * Circuit relay v2, the relay (hop) side, as a stream handler of the host:
 * protocols/relay.h decides every answer, this file moves the bytes.
 *
 * One `circ` per hop stream. Its side 0 is the hop stream (from the
 * initiator, or from a peer reserving), side 1 the stop stream we open to the
 * target. The two streams may live on two shards: each side's fields are
 * touched only on its own shard, and everything one side tells the other
 * (relayed bytes, end of stream, the answer for the initiator, a reset, a
 * resume) is a message posted to the other side's shard, even when both sides
 * share one, so that order is one rule (post order) and no stream callback
 * runs inside another stream's callback.
 *
 * Phases (under svc->mu, because both shards move them):
 *   REQUEST  side 0 reads the request (RESERVE or a refusal: answer, close)
 *   STOP     CONNECT accepted: the stop stream is being opened and answered
 *   BRIDGED  the target said OK: bytes flow
 *   DONE     refused, failed or ended
 *
 * The rp_relay state is shared by every shard and not thread-safe: it sits
 * behind svc->mu, which is taken once per request, per target answer, per
 * circuit end and per disconnection, never for relayed bytes. A mutex rather
 * than pinning the state to one shard: pinning would cost a round trip
 * between shards for every request, and the critical sections are short (the
 * longest signs one voucher).
 *
 * Reservation expiry is lazy: rp_relay_expire runs under the lock before
 * every request, so an expired reservation is gone whenever anyone could
 * notice (CONNECT and the RESERVE limits are checked against it; the core
 * also checks expiry itself). A timer would only free a few hundred bytes
 * earlier, and would need an owner shard.
 *
 * Relayed bytes: on_data copies them once into a message (the view is only
 * borrowed), the other side queues that message on its stream with
 * ringp2p_stream_write_ref (no second copy), and its release counts the bytes
 * out of the direction's in-flight total. Backpressure: a side pauses its
 * reading when its direction has INFLIGHT_HIGH bytes in flight (posted, or
 * queued on the other stream and not yet handed to the muxer) and resumes at
 * INFLIGHT_LOW; pausing holds back the sender's yamux window. A write that
 * would block (RINGP2P_EAGAIN) leaves the message first in the side's queue
 * until on_writable.
 *
 * Limits (rp_relay_meter): the side that reads a direction meters it. Up to
 * `data` bytes pass per direction; the first byte beyond resets both streams
 * (RINGP2P_ELIMIT), as the spec and js-libp2p do (go-libp2p half-closes the
 * spent direction instead). The duration is a timer on side 0's shard that
 * resets both streams (RINGP2P_ETIMEDOUT). Bytes still queued toward an end
 * when it is reset are dropped with the reset.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/error.h"
#include "base/log.h"
#include "host/host.h"
#include "host/relay_svc.h"
#include "multiformats/multiaddr.h"
#include "protocols/relay.h"

/* Relayed bytes in flight per direction before the reading side pauses, and where it resumes. */
#define INFLIGHT_HIGH ((uint64_t)512 * 1024)
#define INFLIGHT_LOW  ((uint64_t)128 * 1024)
/*
 * Bytes kept before a request (or the target's answer) is whole. A message is
 * at most RP_RELAY_FRAME_MAX; the rest is what came with it in the same
 * delivery (a peer that writes before the answer), at most one muxer piece.
 */
#define HANDSHAKE_BUF_MAX (RP_RELAY_FRAME_MAX + 256 * 1024)

struct rp_relay_svc {
    ringp2p_node *node;
    pthread_mutex_t mu;
    rp_relay *r;
    atomic_uint_fast64_t same_shard, cross_shard; /* bridged circuits, for the tests */
};

enum { PH_REQUEST = 0, PH_STOP, PH_BRIDGED, PH_DONE };
enum { K_DATA = 0, K_EOF, K_REPLY, K_KILL, K_RESUME };

typedef struct circ circ;

/* A message to one side, on its shard; queued there until its stream takes it. */
typedef struct rmsg {
    struct rmsg *next;
    circ *c;
    uint8_t kind;
    uint8_t to; /* the side it is for */
    bool ok;    /* K_REPLY: the answer is OK: bridge */
    size_t len; /* K_DATA, K_REPLY: bytes in data */
    uint8_t data[];
} rmsg;

typedef struct side {
    ringp2p_stream *s;   /* NULL before the stream exists and once it closed */
    rmsg *qhead, *qtail; /* not yet taken by the stream */
    bool bridged;        /* reading forwards to the other side */
    bool bp_paused;      /* paused by backpressure */
    bool hs_paused;      /* paused until bridged (side 0 during STOP) */
    uint8_t *rx;         /* handshake bytes */
    size_t rx_len;
} side;

struct circ {
    atomic_int refs;
    rp_relay_svc *svc;
    atomic_int phase; /* moved under svc->mu; read anywhere */
    atomic_bool killed;
    atomic_int end_err;
    atomic_int open_sides; /* BRIDGED: sides whose stream has not closed */
    atomic_bool open[2];   /* the side's stream exists and has not closed */
    _Atomic(rp_shard *) sh[2];
    uint64_t id; /* the core's circuit */
    ringp2p_peer_id src, dst;
    rp_relay_meter meter; /* left[d] is touched only on side d's shard */
    uint64_t bridged_ns;
    atomic_uint_fast64_t inflight[2], bytes[2]; /* by the direction's reading side */
    atomic_bool rd_paused[2];
    side sd[2];
    uint8_t *early; /* side 0's bytes after its CONNECT, forwarded once bridged */
    size_t early_len;
    uint8_t *stopmsg;
    size_t stopmsg_len;
    rp_timer timer;    /* side 0's shard: the handshake, then the duration limit */
    bool timer_linger; /* the answer went out: the next firing resets side 0 */
};

static const rp_logger *log_of(const circ *c)
{
    return &c->svc->node->log;
}

/* ---- circuits: memory ------------------------------------------------------------------- */

static void circ_ref(circ *c)
{
    atomic_fetch_add(&c->refs, 1);
}

static void circ_unref(circ *c)
{
    if (atomic_fetch_sub(&c->refs, 1) != 1) return;
    for (int x = 0; x < 2; x++) free(c->sd[x].rx);
    free(c->early);
    free(c->stopmsg);
    free(c);
}

static rmsg *msg_new(circ *c, int kind, int to, const void *data, size_t len)
{
    rmsg *m = malloc(sizeof(*m) + len);
    if (m == NULL) return NULL;
    m->next = NULL;
    m->c = c;
    m->kind = (uint8_t)kind;
    m->to = (uint8_t)to;
    m->ok = false;
    m->len = len;
    if (len != 0) memcpy(m->data, data, len);
    circ_ref(c);
    return m;
}

static void msg_free(rmsg *m)
{
    circ *c = m->c;
    if (m->kind == K_DATA) atomic_fetch_sub(&c->inflight[1 - m->to], m->len);
    free(m);
    circ_unref(c);
}

static void msg_task(rp_shard *sh, void *arg);

/* Posts m to its side's shard from `from` (the shard we run on). */
static void post(rp_shard *from, rmsg *m)
{
    rp_shard *to = atomic_load(&m->c->sh[m->to]);
    if (to == NULL || from == NULL || rp_shard_post(from, rp_shard_id(to), msg_task, m) != 0) {
        rp_logf(log_of(m->c), RINGP2P_LOG_WARN, "relay", "circuit %llu: message lost",
                (unsigned long long)m->c->id);
        msg_free(m);
    }
}

static void post_new(rp_shard *from, circ *c, int kind, int to, const void *data, size_t len,
                     bool ok)
{
    rmsg *m = msg_new(c, kind, to, data, len);
    if (m == NULL) return;
    m->ok = ok;
    post(from, m);
}

/* Resets both streams (once); `err` is what the circuit event reports. */
static void kill(circ *c, rp_shard *from, int err)
{
    if (atomic_exchange(&c->killed, true)) return;
    atomic_store(&c->end_err, err);
    for (int x = 0; x < 2; x++)
        if (atomic_load(&c->open[x])) post_new(from, c, K_KILL, x, NULL, 0, false);
}

/* ---- relayed bytes ------------------------------------------------------------------------ */

/* Side d read len bytes (on its shard): metered, copied once, posted to the other side. */
static void forward(circ *c, int d, const uint8_t *data, size_t len)
{
    side *sd = &c->sd[d];
    rp_shard *sh = atomic_load(&c->sh[d]);
    if (atomic_load(&c->killed) || len == 0) return;
    size_t k = rp_relay_meter_take(&c->meter, (unsigned)d, len);
    if (k > 0) {
        rmsg *m = msg_new(c, K_DATA, 1 - d, data, k);
        if (m == NULL) {
            kill(c, sh, RINGP2P_ENOMEM);
            return;
        }
        atomic_fetch_add(&c->bytes[d], k);
        atomic_fetch_add(&c->inflight[d], k);
        post(sh, m);
    }
    if (k < len) {
        rp_logf(log_of(c), RINGP2P_LOG_DEBUG, "relay", "circuit %llu: data limit reached",
                (unsigned long long)c->id);
        kill(c, sh, RINGP2P_ELIMIT);
        return;
    }
    if (!sd->bp_paused && sd->s != NULL && atomic_load(&c->inflight[d]) >= INFLIGHT_HIGH) {
        sd->bp_paused = true;
        ringp2p_stream_pause_read(sd->s);
        /* Dekker with data_release: whoever clears rd_paused resumes */
        atomic_store(&c->rd_paused[d], true);
        if (atomic_load(&c->inflight[d]) <= INFLIGHT_LOW &&
            atomic_exchange(&c->rd_paused[d], false)) {
            sd->bp_paused = false;
            if (!sd->hs_paused) ringp2p_stream_resume_read(sd->s);
        }
    }
}

/* The stream of side m->to no longer needs m's bytes (sent, or dropped by a reset). */
static void data_release(void *ctx, const void *data, size_t len)
{
    rmsg *m = ctx;
    circ *c = m->c;
    int d = 1 - m->to;
    (void)data;
    (void)len;
    uint64_t left = atomic_fetch_sub(&c->inflight[d], m->len) - m->len;
    m->len = 0; /* counted out */
    if (left <= INFLIGHT_LOW && atomic_load(&c->rd_paused[d]) &&
        atomic_exchange(&c->rd_paused[d], false) && atomic_load(&c->open[d]))
        post_new(atomic_load(&c->sh[m->to]), c, K_RESUME, d, NULL, 0, false);
    msg_free(m);
}

static void side_drop_queue(side *sd)
{
    while (sd->qhead != NULL) {
        rmsg *m = sd->qhead;
        sd->qhead = m->next;
        msg_free(m);
    }
    sd->qtail = NULL;
}

static void reply_apply(circ *c, rmsg *m);

/* Our answer went out unbridged: side 0 is reset if its peer has not closed it in time. */
static void linger(circ *c)
{
    rp_shard *sh = atomic_load(&c->sh[0]);
    rp_timer_cancel(&c->timer);
    c->timer_linger = true;
    rp_timer_arm(rp_shard_timers(sh), &c->timer,
                 rp_shard_now(sh) + (uint64_t)RP_RELAY_HANDSHAKE_TIMEOUT_MS * 1000000);
}

/* Hands side x's queue to its stream, in order, until a write would block. */
static void side_flush(circ *c, int x)
{
    side *sd = &c->sd[x];
    while (sd->qhead != NULL) {
        rmsg *m = sd->qhead;
        if (sd->s == NULL || (atomic_load(&c->killed) && m->kind != K_REPLY)) {
            side_drop_queue(sd);
            return;
        }
        sd->qhead = m->next;
        if (sd->qhead == NULL) sd->qtail = NULL;
        m->next = NULL;
        if (m->kind == K_DATA) {
            int r = ringp2p_stream_write_ref(sd->s, m->data, m->len, data_release, m);
            if (r == RINGP2P_EAGAIN) {
                /* first again; on_writable flushes */
                m->next = sd->qhead;
                sd->qhead = m;
                if (sd->qtail == NULL) sd->qtail = m;
                return;
            }
            if (r < 0) {
                msg_free(m);
                kill(c, atomic_load(&c->sh[x]), r);
            }
        } else if (m->kind == K_EOF) {
            ringp2p_stream_close_write(sd->s);
            msg_free(m);
        } else {
            reply_apply(c, m);
        }
    }
}

/* The answer to the initiator (side 0's shard): written, then bridge or close. */
static void reply_apply(circ *c, rmsg *m)
{
    side *a = &c->sd[0];
    if (a->s == NULL) {
        msg_free(m);
        return;
    }
    ringp2p_stream_write(a->s, m->data, m->len);
    if (!m->ok) {
        ringp2p_stream_close_write(a->s);
        msg_free(m);
        linger(c);
        return;
    }
    msg_free(m);
    rp_shard *sh = atomic_load(&c->sh[0]);
    a->bridged = true;
    rp_timer_cancel(&c->timer);
    c->timer_linger = false;
    if (c->meter.deadline_ns != UINT64_MAX)
        rp_timer_arm(rp_shard_timers(sh), &c->timer, c->meter.deadline_ns);
    if (c->early_len != 0) {
        forward(c, 0, c->early, c->early_len);
        free(c->early);
        c->early = NULL;
        c->early_len = 0;
    }
    a->hs_paused = false;
    if (!a->bp_paused && a->s != NULL) ringp2p_stream_resume_read(a->s);
}

static void msg_task(rp_shard *sh, void *arg)
{
    rmsg *m = arg;
    circ *c = m->c;
    side *sd = &c->sd[m->to];
    (void)sh;
    circ_ref(c);
    switch (m->kind) {
    case K_KILL:
        if (sd->s != NULL) ringp2p_stream_reset(sd->s);
        msg_free(m);
        break;
    case K_RESUME:
        if (sd->s != NULL && sd->bp_paused) {
            sd->bp_paused = false;
            if (!sd->hs_paused) ringp2p_stream_resume_read(sd->s);
        }
        msg_free(m);
        break;
    default:
        if (sd->s == NULL || (atomic_load(&c->killed) && m->kind != K_REPLY)) {
            msg_free(m);
            break;
        }
        if (sd->qtail != NULL)
            sd->qtail->next = m;
        else
            sd->qhead = m;
        sd->qtail = m;
        side_flush(c, m->to);
        break;
    }
    circ_unref(c);
}

/* ---- circuits: ends ----------------------------------------------------------------------- */

static void emit_circuit(circ *c, rp_shard *sh, int err)
{
    ringp2p_node *n = c->svc->node;
    if (n->cfg.ev_fn == NULL) return;
    ringp2p_relay_info ri = {
        .src = c->src,
        .dst = c->dst,
        .bytes_to_dst = atomic_load(&c->bytes[0]),
        .bytes_to_src = atomic_load(&c->bytes[1]),
    };
    uint64_t now = rp_shard_now(sh);
    ri.duration_ms = now > c->bridged_ns ? (now - c->bridged_ns) / 1000000 : 0;
    ringp2p_event ev = { .type = RINGP2P_EVENT_RELAY_CIRCUIT, .err = err, .relay = &ri };
    n->cfg.ev_fn(n, &ev, n->cfg.ev_ctx);
}

/* Side x's stream closed while BRIDGED; the last one releases the circuit. */
static void side_closed(circ *c, int x, int err)
{
    if (err != 0) kill(c, atomic_load(&c->sh[x]), err);
    if (atomic_fetch_sub(&c->open_sides, 1) != 1) return;
    pthread_mutex_lock(&c->svc->mu);
    rp_relay_circuit_close(c->svc->r, c->id);
    atomic_store(&c->phase, PH_DONE);
    pthread_mutex_unlock(&c->svc->mu);
    emit_circuit(c, atomic_load(&c->sh[x]), atomic_load(&c->killed) ? atomic_load(&c->end_err) : 0);
}

/*
 * A pending circuit failed (no stop stream, no or a bad answer, a timeout,
 * the initiator left): the core releases it and the initiator hears
 * CONNECTION_FAILED. Returns whether it was still pending (under the lock,
 * so exactly one of the racing paths does this).
 */
static bool stop_fail(circ *c, rp_shard *from, const char *why)
{
    uint8_t out[RP_RELAY_FRAME_MAX];
    ssize_t n = -1;
    pthread_mutex_lock(&c->svc->mu);
    bool pending = atomic_load(&c->phase) == PH_STOP;
    if (pending) {
        atomic_store(&c->phase, PH_DONE);
        n = rp_relay_stop_failed(c->svc->r, c->id, out, sizeof(out));
    }
    pthread_mutex_unlock(&c->svc->mu);
    if (!pending) return false;
    rp_logf(log_of(c), RINGP2P_LOG_DEBUG, "relay", "circuit %llu: %s", (unsigned long long)c->id,
            why);
    if (n > 0 && atomic_load(&c->open[0])) post_new(from, c, K_REPLY, 0, out, (size_t)n, false);
    if (atomic_load(&c->open[1])) post_new(from, c, K_KILL, 1, NULL, 0, false);
    return true;
}

/* ---- side 1: the stop stream to the target ------------------------------------------------ */

static void b_data(ringp2p_stream *s, void *ctx, const uint8_t *data, size_t len)
{
    circ *c = ctx;
    side *b = &c->sd[1];
    rp_shard *sh = rp_stream_hshard(s)->sh;
    circ_ref(c);
    if (b->bridged) {
        forward(c, 1, data, len);
        goto out;
    }
    if (b->rx_len + len > HANDSHAKE_BUF_MAX) {
        stop_fail(c, sh, "the target sent too much before its answer");
        ringp2p_stream_reset(s);
        goto out;
    }
    uint8_t *rx = realloc(b->rx, b->rx_len + len);
    if (rx == NULL) {
        stop_fail(c, sh, "out of memory");
        ringp2p_stream_reset(s);
        goto out;
    }
    b->rx = rx;
    memcpy(b->rx + b->rx_len, data, len);
    b->rx_len += len;

    uint8_t out[RP_RELAY_FRAME_MAX];
    rp_relay_hop_result res;
    ringp2p_errinfo ei = { 0 };
    const uint8_t *p = b->rx, *end = b->rx + b->rx_len;
    pthread_mutex_lock(&c->svc->mu);
    int r = -1;
    bool ok = false, pending = atomic_load(&c->phase) == PH_STOP;
    if (pending) {
        r = rp_relay_stop_response(c->svc->r, c->id, &p, end, out, sizeof(out), &res, &ei);
        if (r == 1) {
            ok = res.status == RP_RELAY_OK;
            atomic_store(&c->phase, ok ? PH_BRIDGED : PH_DONE);
        } else if (r < 0) {
            ssize_t n = rp_relay_stop_failed(c->svc->r, c->id, out, sizeof(out));
            atomic_store(&c->phase, PH_DONE);
            res.len = n > 0 ? (size_t)n : 0;
        }
        if (ok) {
            atomic_store(&c->open_sides, 2);
            rp_relay_meter_init(&c->meter, res.limited ? &res.limit : NULL, rp_shard_now(sh));
            c->bridged_ns = rp_shard_now(sh);
        }
    }
    pthread_mutex_unlock(&c->svc->mu);
    if (r == 0) goto out;
    if (!pending) { /* the initiator left or the handshake timed out */
        ringp2p_stream_reset(s);
        goto out;
    }
    if (!ok) {
        rp_logf(log_of(c), RINGP2P_LOG_DEBUG, "relay", "circuit %llu: target refused: %s",
                (unsigned long long)c->id, ei.msg);
        if (res.len > 0 && atomic_load(&c->open[0]))
            post_new(sh, c, K_REPLY, 0, out, res.len, false);
        ringp2p_stream_reset(s);
        goto out;
    }
    rp_relay_svc *svc = c->svc;
    atomic_fetch_add(atomic_load(&c->sh[0]) == sh ? &svc->same_shard : &svc->cross_shard, 1);
    post_new(sh, c, K_REPLY, 0, out, res.len, true);
    b->bridged = true;
    size_t rest = (size_t)(end - p);
    const uint8_t *restp = p;
    if (rest > 0) forward(c, 1, restp, rest);
    free(b->rx);
    b->rx = NULL;
    b->rx_len = 0;
out:
    circ_unref(c);
}

static void b_eof(ringp2p_stream *s, void *ctx)
{
    circ *c = ctx;
    rp_shard *sh = rp_stream_hshard(s)->sh;
    circ_ref(c);
    if (c->sd[1].bridged) {
        if (!atomic_load(&c->killed)) post_new(sh, c, K_EOF, 0, NULL, 0, false);
    } else if (stop_fail(c, sh, "the target closed the stop stream without answering")) {
        ringp2p_stream_reset(s);
    }
    circ_unref(c);
}

static void b_writable(ringp2p_stream *s, void *ctx)
{
    circ *c = ctx;
    (void)s;
    circ_ref(c);
    side_flush(c, 1);
    circ_unref(c);
}

static void b_close(ringp2p_stream *s, void *ctx, int err)
{
    circ *c = ctx;
    rp_shard *sh = rp_stream_hshard(s)->sh;
    side *b = &c->sd[1];
    circ_ref(c);
    b->s = NULL;
    atomic_store(&c->open[1], false);
    side_drop_queue(b);
    if (b->bridged)
        side_closed(c, 1, err);
    else
        stop_fail(c, sh, "the stop stream closed before the target answered");
    circ_unref(c); /* the side's */
    circ_unref(c);
}

static const ringp2p_stream_callbacks b_cbs = {
    .on_data = b_data,
    .on_eof = b_eof,
    .on_writable = b_writable,
    .on_close = b_close,
};

/* The stop stream to the target opened (or not); holds the reference taken for the open. */
static void b_opened(ringp2p_node *n, ringp2p_stream *s, int err, const ringp2p_errinfo *ei,
                     void *ctx)
{
    circ *c = ctx;
    if (err < 0) {
        char why[RINGP2P_ERRINFO_MSG_MAX + 64];
        snprintf(why, sizeof(why), "no stop stream to the target: %s",
                 ei != NULL ? ei->msg : ringp2p_strerror(err));
        stop_fail(c, rp_host_current_shard(n), why);
        circ_unref(c);
        return;
    }
    pthread_mutex_lock(&c->svc->mu);
    atomic_store(&c->sh[1], rp_stream_hshard(s)->sh);
    atomic_store(&c->open[1], true);
    bool pending = atomic_load(&c->phase) == PH_STOP;
    pthread_mutex_unlock(&c->svc->mu);
    c->sd[1].s = s;
    ringp2p_stream_set_callbacks(s, &b_cbs, c);
    if (!pending) {
        ringp2p_stream_reset(s); /* b_close drops the reference */
        return;
    }
    if (ringp2p_stream_write(s, c->stopmsg, c->stopmsg_len) < 0) ringp2p_stream_reset(s);
}

/* ---- side 0: the hop stream --------------------------------------------------------------- */

/* A status-only answer on side 0 and the end of our writing (a refusal of our own). */
static void a_refuse(circ *c, ringp2p_stream *s, int32_t status)
{
    uint8_t out[16];
    ssize_t n = rp_relay_hop_status_write(status, out, sizeof(out));
    if (n > 0) ringp2p_stream_write(s, out, (size_t)n);
    ringp2p_stream_close_write(s);
    atomic_store(&c->phase, PH_DONE); /* from REQUEST, which only side 0 leaves */
    linger(c);
}

static void emit_reservation(circ *c, ringp2p_stream *s, uint64_t expire)
{
    ringp2p_node *n = c->svc->node;
    if (n->cfg.ev_fn == NULL) return;
    ringp2p_relay_info ri = { .src = c->src, .expire = expire };
    ringp2p_event ev = {
        .type = RINGP2P_EVENT_RELAY_RESERVATION,
        .conn = ringp2p_stream_conn(s),
        .relay = &ri,
    };
    n->cfg.ev_fn(n, &ev, n->cfg.ev_ctx);
}

/*
 * Opens the stop stream to c->dst over the connection it holds to us: a bare
 * /p2p/<id>, which ringp2p_node_new_stream never dials (no connection is
 * RINGP2P_ENOENT, and the initiator hears CONNECTION_FAILED).
 */
static void open_stop(circ *c, rp_shard *sh)
{
    ringp2p_node *n = c->svc->node;
    uint8_t buf[RINGP2P_PEER_ID_MAX + 8];
    ringp2p_multiaddr *ma = NULL;
    ssize_t len = rp_maddr_put_component(rp_maddr_proto_by_code(RINGP2P_P_P2P), c->dst.bytes,
                                         c->dst.len, buf, sizeof(buf), NULL);
    int r = len > 0 ? ringp2p_multiaddr_from_bytes(buf, (size_t)len, &ma, NULL) : (int)len;
    const char *proto[1] = { RP_RELAY_STOP_PROTOCOL_ID };
    circ_ref(c); /* b_opened's */
    if (r == 0) r = ringp2p_node_new_stream(n, ma, proto, 1, b_opened, c);
    ringp2p_multiaddr_free(ma);
    if (r < 0) {
        stop_fail(c, sh, "cannot open the stop stream");
        circ_unref(c);
    }
}

static void a_request(circ *c, ringp2p_stream *s)
{
    side *a = &c->sd[0];
    rp_relay_svc *svc = c->svc;
    ringp2p_node *n = svc->node;
    size_t alen = 0;
    const uint8_t *addr = rp_hconn_remote_bin(rp_stream_hconn(s), &alen);
    rp_host_addrs *mine = malloc(sizeof(*mine));
    if (mine == NULL) {
        ringp2p_stream_reset(s);
        return;
    }
    rp_host_addrs_copy(n, false, mine);
    uint8_t out[RP_RELAY_FRAME_MAX];
    rp_relay_hop_result res;
    ringp2p_errinfo ei = { 0 };
    const uint8_t *p = a->rx, *end = a->rx + a->rx_len;
    uint64_t now_s = rp_host_unix_ns() / 1000000000u;
    pthread_mutex_lock(&svc->mu);
    rp_relay_expire(svc->r, now_s);
    int r = rp_relay_hop_request(svc->r, &c->src, addr, addr != NULL ? alen : 0, mine->v, mine->n,
                                 now_s, &p, end, out, sizeof(out), &res, &ei);
    if (r == 1) atomic_store(&c->phase, res.action == RP_RELAY_ACT_STOP ? PH_STOP : PH_DONE);
    pthread_mutex_unlock(&svc->mu);
    free(mine);
    if (r == 0) return;
    if (r < 0) {
        rp_logf(&n->log, RINGP2P_LOG_WARN, "relay", "hop request: %s", ei.msg);
        ringp2p_stream_reset(s);
        return;
    }
    if (res.action == RP_RELAY_ACT_REPLY) {
        if (res.status != RP_RELAY_OK)
            rp_logf(&n->log, RINGP2P_LOG_DEBUG, "relay", "refused: %s (%s)",
                    rp_relay_status_name(res.status), ei.msg);
        ringp2p_stream_write(s, out, res.len);
        ringp2p_stream_close_write(s);
        linger(c);
        if (res.request == RP_RELAY_HOP_RESERVE && res.status == RP_RELAY_OK)
            emit_reservation(c, s, res.expire);
        return;
    }
    /* CONNECT accepted: ask the target; side 0 waits, paused, with what came after. */
    c->id = res.circuit;
    c->dst = res.dst;
    c->stopmsg = malloc(res.len);
    size_t rest = (size_t)(end - p);
    c->early = rest != 0 ? malloc(rest) : NULL;
    if (c->stopmsg == NULL || (rest != 0 && c->early == NULL)) {
        stop_fail(c, rp_stream_hshard(s)->sh, "out of memory");
        return;
    }
    memcpy(c->stopmsg, out, res.len);
    c->stopmsg_len = res.len;
    if (rest != 0) memcpy(c->early, p, rest);
    c->early_len = rest;
    free(a->rx);
    a->rx = NULL;
    a->rx_len = 0;
    a->hs_paused = true;
    ringp2p_stream_pause_read(s);
    open_stop(c, rp_stream_hshard(s)->sh);
}

static void a_data(ringp2p_stream *s, void *ctx, const uint8_t *data, size_t len)
{
    circ *c = ctx;
    side *a = &c->sd[0];
    circ_ref(c);
    if (a->bridged) {
        forward(c, 0, data, len);
    } else if (atomic_load(&c->phase) == PH_REQUEST) { /* only side 0 leaves REQUEST */
        if (a->rx_len + len > HANDSHAKE_BUF_MAX) {
            ringp2p_stream_reset(s);
        } else {
            uint8_t *rx = realloc(a->rx, a->rx_len + len);
            if (rx == NULL) {
                ringp2p_stream_reset(s);
            } else {
                a->rx = rx;
                memcpy(a->rx + a->rx_len, data, len);
                a->rx_len += len;
                a_request(c, s);
            }
        }
    }
    /* else: after our answer to a RESERVE or a refusal; ignored */
    circ_unref(c);
}

static void a_eof(ringp2p_stream *s, void *ctx)
{
    circ *c = ctx;
    circ_ref(c);
    if (c->sd[0].bridged) {
        if (!atomic_load(&c->killed))
            post_new(rp_stream_hshard(s)->sh, c, K_EOF, 1, NULL, 0, false);
    } else if (atomic_load(&c->phase) == PH_REQUEST) {
        /* the request never came whole (go answers MALFORMED_MESSAGE too) */
        a_refuse(c, s, RP_RELAY_MALFORMED_MESSAGE);
    }
    circ_unref(c);
}

static void a_writable(ringp2p_stream *s, void *ctx)
{
    circ *c = ctx;
    (void)s;
    circ_ref(c);
    side_flush(c, 0);
    circ_unref(c);
}

static void a_close(ringp2p_stream *s, void *ctx, int err)
{
    circ *c = ctx;
    side *a = &c->sd[0];
    rp_shard *sh = rp_stream_hshard(s)->sh;
    circ_ref(c);
    a->s = NULL;
    atomic_store(&c->open[0], false);
    rp_timer_cancel(&c->timer);
    side_drop_queue(a);
    int ph = atomic_load(&c->phase);
    if (ph == PH_STOP)
        stop_fail(c, sh, "the initiator left before the target answered");
    else if (ph == PH_BRIDGED) /* open_sides counts us until now */
        side_closed(c, 0, err);
    circ_unref(c); /* the side's */
    circ_unref(c);
}

/*
 * Side 0's timer: the handshake deadline (no whole request, or no answer
 * from the target, within RP_RELAY_HANDSHAKE_TIMEOUT_MS), then a last grace
 * period for the peer to close after our answer; once bridged, the duration
 * limit.
 */
static void a_timer(rp_timer *t, void *arg)
{
    circ *c = arg;
    side *a = &c->sd[0];
    rp_shard *sh = atomic_load(&c->sh[0]);
    (void)t;
    if (a->s == NULL) return;
    circ_ref(c);
    if (a->bridged) {
        rp_logf(log_of(c), RINGP2P_LOG_DEBUG, "relay", "circuit %llu: duration limit reached",
                (unsigned long long)c->id);
        kill(c, sh, RINGP2P_ETIMEDOUT);
    } else if (c->timer_linger) {
        ringp2p_stream_reset(a->s);
    } else {
        int ph = atomic_load(&c->phase);
        if (ph == PH_REQUEST) {
            a_refuse(c, a->s, RP_RELAY_MALFORMED_MESSAGE);
        } else if (ph == PH_STOP) {
            stop_fail(c, sh, "the target did not answer in time");
            linger(c);
        } else if (ph == PH_DONE) {
            ringp2p_stream_reset(a->s);
        }
        /* BRIDGED with the answer on its way: it arms the timer for the duration */
    }
    circ_unref(c);
}

static const ringp2p_stream_callbacks a_cbs = {
    .on_data = a_data,
    .on_eof = a_eof,
    .on_writable = a_writable,
    .on_close = a_close,
};

static void hop_handler(ringp2p_node *n, ringp2p_stream *s, void *ctx)
{
    rp_relay_svc *svc = ctx;
    (void)n;
    circ *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        ringp2p_stream_reset(s);
        return;
    }
    atomic_init(&c->refs, 1); /* side 0's */
    c->svc = svc;
    atomic_init(&c->phase, PH_REQUEST);
    c->src = ringp2p_stream_conn(s)->peer;
    c->sd[0].s = s;
    rp_shard *sh = rp_stream_hshard(s)->sh;
    atomic_store(&c->sh[0], sh);
    atomic_store(&c->open[0], true);
    rp_relay_meter_init(&c->meter, NULL, 0);
    rp_timer_init(&c->timer, a_timer, c);
    rp_timer_arm(rp_shard_timers(sh), &c->timer,
                 rp_shard_now(sh) + (uint64_t)RP_RELAY_HANDSHAKE_TIMEOUT_MS * 1000000);
    ringp2p_stream_set_callbacks(s, &a_cbs, c);
}

/* ---- the service -------------------------------------------------------------------------- */

RINGP2P_API void ringp2p_relay_limits_default(ringp2p_relay_limits *l)
{
    memset(l, 0, sizeof(*l));
    l->reservation_ttl_s = RP_RELAY_DEFAULT_TTL_S;
    l->max_reservations = RP_RELAY_DEFAULT_MAX_RESERVATIONS;
    l->max_reservations_per_ip = RP_RELAY_DEFAULT_MAX_PER_IP;
    l->max_circuits = RP_RELAY_DEFAULT_MAX_CIRCUITS;
    l->duration_s = RP_RELAY_DEFAULT_LIMIT_DURATION_S;
    l->data = RP_RELAY_DEFAULT_LIMIT_DATA;
}

RINGP2P_API int ringp2p_config_relay_service(ringp2p_config *cfg, bool enabled,
                                             const ringp2p_relay_limits *limits)
{
    ringp2p_relay_limits l;
    if (limits != NULL)
        l = *limits;
    else
        ringp2p_relay_limits_default(&l);
    if (l.reservation_ttl_s == 0 || l.max_reservations == 0 || l.max_circuits == 0)
        return RINGP2P_EINVAL;
    cfg->relay_service = enabled;
    cfg->relay_limits = l;
    return 0;
}

int rp_relay_svc_new(ringp2p_node *n, ringp2p_errinfo *ei)
{
    rp_relay_svc *svc = calloc(1, sizeof(*svc));
    if (svc == NULL) return RINGP2P_ENOMEM;
    const ringp2p_relay_limits *l = &n->cfg.relay_limits;
    rp_relay_config rc;
    rp_relay_config_default(&rc);
    rc.reservation_ttl_s = l->reservation_ttl_s;
    rc.max_reservations = l->max_reservations;
    rc.max_reservations_per_ip = l->max_reservations_per_ip;
    rc.max_circuits = l->max_circuits;
    rc.limited = l->duration_s != 0 || l->data != 0;
    rc.limit.duration = l->duration_s;
    rc.limit.data = l->data;
    int r = rp_relay_new(&rc, n->key, &svc->r);
    if (r < 0) {
        free(svc);
        return rp_err(ei, r, "relay service: invalid limits");
    }
    svc->node = n;
    pthread_mutex_init(&svc->mu, NULL);
    n->relay = svc;
    r = ringp2p_node_set_stream_handler(n, RP_RELAY_HOP_PROTOCOL_ID, hop_handler, svc);
    if (r < 0) return rp_err(ei, r, "relay service: cannot register %s", RP_RELAY_HOP_PROTOCOL_ID);
    return 0;
}

void rp_relay_svc_free(rp_relay_svc *svc)
{
    if (svc == NULL) return;
    rp_relay_free(svc->r);
    pthread_mutex_destroy(&svc->mu);
    free(svc);
}

void rp_relay_svc_conn_closed(ringp2p_node *n, const ringp2p_conn_info *ci)
{
    rp_relay_svc *svc = n->relay;
    if (ci == NULL || rp_host_dir_has(n, &ci->peer)) return;
    pthread_mutex_lock(&svc->mu);
    int gone = rp_relay_peer_gone(svc->r, &ci->peer);
    pthread_mutex_unlock(&svc->mu);
    if (gone == 1) {
        char id[RINGP2P_PEER_ID_STR_MAX];
        if (ringp2p_peer_id_to_string(&ci->peer, id, sizeof(id)) < 0) strcpy(id, "?");
        rp_logf(&n->log, RINGP2P_LOG_DEBUG, "relay", "reservation of %s ended: disconnected", id);
    }
}

bool rp_relay_svc_has_reservation(ringp2p_node *n, const ringp2p_peer_id *peer)
{
    pthread_mutex_lock(&n->relay->mu);
    bool has = rp_relay_has_reservation(n->relay->r, peer, rp_host_unix_ns() / 1000000000u, NULL);
    pthread_mutex_unlock(&n->relay->mu);
    return has;
}

size_t rp_relay_svc_reservations(ringp2p_node *n)
{
    pthread_mutex_lock(&n->relay->mu);
    size_t k = rp_relay_reservation_count(n->relay->r);
    pthread_mutex_unlock(&n->relay->mu);
    return k;
}

size_t rp_relay_svc_circuits(ringp2p_node *n)
{
    pthread_mutex_lock(&n->relay->mu);
    size_t k = rp_relay_circuit_count(n->relay->r);
    pthread_mutex_unlock(&n->relay->mu);
    return k;
}

void rp_relay_svc_shard_mix(ringp2p_node *n, uint64_t *same, uint64_t *cross)
{
    *same = atomic_load(&n->relay->same_shard);
    *cross = atomic_load(&n->relay->cross_shard);
}
