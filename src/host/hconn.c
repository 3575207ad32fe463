/*
 * One libp2p connection on its shard: the upgrade pipeline, the encrypted
 * datapath and the streams (see host.h for the shape).
 *
 * Lifetimes: an rp_hconn lives from the dial (or accept) until the runtime's
 * on_close for its socket (or the dial failure); streams live from their
 * muxer open until reaped after on_close. Nothing is freed while a callback
 * into the application may be on the stack: finished streams move to a dead
 * list reaped at the top level of each entry point, and connections are only
 * freed from the runtime's on_close, which runs outside every other callback.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "host/dcutr_svc.h"
#include "host/host.h"
#include "multiformats/multiaddr.h"
#include "transport/tcp.h"

enum { HC_DIALING = 0, HC_MSS_SEC, HC_SECURE, HC_MSS_MUX, HC_READY, HC_DEAD };
enum { ST_NEG = 0, ST_OPEN };

typedef struct wchunk {
    struct wchunk *next;
    uint8_t *data;
    size_t len, cap, fed;
    uint64_t end_off; /* stream offset of the chunk's end once fully fed */
    bool owned;
    ringp2p_release_fn rel;
    void *rctx;
} wchunk;

/* Received payload a paused stream has not delivered yet. */
typedef struct rseg {
    struct rseg *next;
    rp_rbuf *rbuf; /* held, or NULL when `copy` owns the bytes */
    uint8_t *copy;
    const uint8_t *data;
    size_t len;
} rseg;

struct ringp2p_stream {
    rp_hconn *hc;
    rp_hmux_stream *ms; /* the muxer's stream; NULL once finished */
    ringp2p_stream *next, *prev, *dead_next;
    int state;
    bool outbound, finished, reaped_ok;
    rp_mss *mss;
    rp_htable *tbl;
    char **protos;
    size_t nprotos;
    char *protocol;
    ringp2p_open_fn open_fn;
    void *open_ctx;
    const ringp2p_stream_callbacks *cbs;
    void *ctx;
    wchunk *whead, *wtail;
    uint64_t w_total; /* bytes put into chunks */
    uint64_t fed_total;
    bool want_writable, write_closed, fin_sent, peer_fin, eof_done, paused, delivering;
    bool early_fin; /* lazy open to a ringp2p peer: a half-close need not wait for the echo */
    rseg *rhead, *rtail;
    rp_timer neg_timer; /* RINGP2P_LIMIT_NEGOTIATION_TIMEOUT_MS while in ST_NEG */
    int busy;
};

struct rp_hconn {
    rp_hshard *hs;
    rp_conn *c;
    uint64_t id;
    bool inbound;
    int phase;
    bool has_expect;
    ringp2p_peer_id expect;
    rp_mss mss;
    const char *sec_protos[RP_HOST_SECURITY_MAX];
    const rp_hsec_ops *sec; /* chosen by multistream-select; NULL before */
    void *sess;             /* its session */
    const rp_hmux_ops *mux; /* the negotiated muxer; NULL before */
    void *mx;               /* its session */
    uint8_t *pre;
    size_t pre_len;
    uint8_t *rx;
    size_t rx_len;
    rp_timer deadline, mtimer;
    /*
     * The muxer is blocked on a full stream (mplex): reads are paused, the
     * plaintext it has not taken waits here in order (backlog), btimer fires
     * at the block deadline. rx_feeding guards against re-entry.
     */
    bool rx_blocked;
    int rx_feeding;
    rseg *bl_head, *bl_tail;
    rp_timer btimer;
    /*
     * An accepted connection's multistream header waits one loop turn for the
     * dialer's proposal, so header and answer leave in one segment (the
     * dialer needs neither before it has proposed); hdr_timer sends it alone
     * when nothing came.
     */
    rp_timer hdr_timer;
    /*
     * A dialer with one security protocol proposes it and starts its
     * handshake at once (multistream-select's lazy dialer, as for streams):
     * the listener's header and echo are still to be read, ahead of its
     * handshake bytes.
     */
    bool sec_lazy;
    bool fail_fin; /* conn_fail closes gracefully (queued bytes, close_notify, FIN), no reset */
    ringp2p_stream *streams, *dead;
    rp_hopen *waiting, *waiting_tail;
    rp_hconn *flush_next;
    bool flush_queued, dir_added, connected_emitted, closing;
    rp_hconn *next, *prev;
    ringp2p_conn_info info;
    ringp2p_multiaddr *remote_ma, *local_ma;
    uint8_t remote_bin[RP_TCP_MADDR_MAX], local_bin[RP_TCP_MADDR_MAX];
    size_t remote_bin_len, local_bin_len;
    char *agent;
    rp_identify_peer *idp; /* what identify told us about the peer; NULL before */
    bool counted;          /* included in the node's nconns */
    bool probe;            /* rp_host_probe_dial: never reused, closed once secured */
    uint64_t probe_deadline;
    bool punch;       /* a DCUtR hole-punch dial (rp_hopen.punch): not reused before it is ready */
    bool bound;       /* dialed from a listen port (rp_host_dial_local) */
    bool close_idle;  /* rp_hconn_close_when_idle: closes once no stream is left */
    bool goodbye;     /* conn_hangup: the last frames go out past the send high watermark */
    bool idle_posted; /* ... and a check is posted */
    int fail_err;
    ringp2p_errinfo fail_ei;
    int busy;
};

static void conn_fail(rp_hconn *hc, int err, const ringp2p_errinfo *ei);
static void conn_mark_dirty(rp_hconn *hc);
static void conn_reap(rp_hconn *hc);
static void uncount(rp_hconn *hc);
static void stream_finish(ringp2p_stream *s, int err, const ringp2p_errinfo *ei);
static void stream_feed(ringp2p_stream *s);
static void stream_deliver(ringp2p_stream *s, rp_rbuf *rbuf, const uint8_t *data, size_t len);
static void stream_open_lazy(ringp2p_stream *s);
static void idle_check(rp_hconn *hc);
static void start_muxer(rp_hconn *hc);
static void rx_resume(rp_hconn *hc);
static void fail_msg(rp_hconn *hc, int err, const char *detail);
static void hdr_fired(rp_timer *t, void *arg);
static void mss_sec_out(rp_hconn *hc);

static uint64_t now_of(rp_hconn *hc)
{
    return rp_shard_now(hc->hs->sh);
}

static void free_release(void *arg, const void *data, size_t len)
{
    (void)data;
    (void)len;
    free(arg);
}

const ringp2p_conn_info *rp_hconn_info(const rp_hconn *hc)
{
    return &hc->info;
}

ringp2p_node *rp_stream_node(const ringp2p_stream *s)
{
    return s->hc->hs->node;
}

rp_hshard *rp_stream_hshard(const ringp2p_stream *s)
{
    return s->hc->hs;
}

rp_hconn *rp_stream_hconn(const ringp2p_stream *s)
{
    return s->hc;
}

void rp_hconn_set_agent(rp_hconn *hc, const uint8_t *agent, size_t len)
{
    free(hc->agent);
    hc->agent = malloc(len + 1);
    if (hc->agent == NULL) return;
    memcpy(hc->agent, agent, len);
    hc->agent[len] = 0;
}

const char *rp_hconn_agent(const rp_hconn *hc)
{
    return hc->agent;
}

rp_identify_peer *rp_hconn_peer(rp_hconn *hc)
{
    if (hc->idp == NULL && rp_identify_peer_new(&hc->info.peer, &hc->idp) < 0) hc->idp = NULL;
    return hc->idp;
}

const rp_identify_peer *rp_host_conn_peer(const ringp2p_conn_info *ci)
{
    const rp_hconn *hc =
        (const rp_hconn *)(const void *)((const char *)ci - offsetof(rp_hconn, info));
    return hc->idp;
}

void rp_hconn_observed(rp_hconn *hc, const uint8_t *observed, size_t len)
{
    /* over a relayed connection the peer sees the relay, not us (go ignores these too) */
    if (hc->info.relayed) return;
    rp_host_observed(hc->hs, &hc->info.peer, hc->remote_bin_len > 0 ? hc->remote_bin : NULL,
                     hc->remote_bin_len, hc->local_bin_len > 0 ? hc->local_bin : NULL,
                     hc->local_bin_len, observed, len);
}

rp_hconn *rp_hconn_find(rp_hshard *hs, uint64_t id)
{
    for (rp_hconn *hc = hs->conns; hc != NULL; hc = hc->next)
        if (hc->id == id && hc->phase != HC_DEAD) return hc;
    return NULL;
}

/* ---- output ------------------------------------------------------------------------------- */

/* Plaintext upgrade bytes (multistream for the security protocol). */
static void send_plain(rp_hconn *hc, const void *data, size_t len)
{
    if (len == 0 || hc->c == NULL) return;
    if (rp_conn_send(hc->c, data, len) != 0) conn_fail(hc, RINGP2P_ECLOSED, NULL);
}

/*
 * Output the security session queued outside seal (the rest of a handshake
 * flight, a reply to a post-handshake message, an alert). Sent after
 * everything sealed before it; seal itself writes it ahead of new records.
 */
static void send_pending(rp_hconn *hc)
{
    if (hc->sec == NULL || hc->sec->pending == NULL || hc->c == NULL) return;
    size_t n = hc->sec->pending(hc->sess);
    if (n == 0) return;
    uint8_t *buf = malloc(n);
    if (buf == NULL) {
        conn_fail(hc, RINGP2P_ENOMEM, NULL);
        return;
    }
    n = hc->sec->take(hc->sess, buf, n);
    if (n == 0) {
        free(buf);
        return;
    }
    if (rp_conn_send_ref(hc->c, buf, n, free_release, buf) != 0) {
        free(buf);
        conn_fail(hc, RINGP2P_ECLOSED, NULL);
    }
}

static void send_sealed(rp_hconn *hc, const rp_iov *iov, size_t n)
{
    size_t total = rp_iov_total(iov, n);
    if (total == 0 || hc->c == NULL) return;
    size_t cap = hc->sec->sealed_len(hc->sess, total);
    uint8_t *buf = malloc(cap);
    if (buf == NULL) {
        conn_fail(hc, RINGP2P_ENOMEM, NULL);
        return;
    }
    ringp2p_errinfo ei;
    ssize_t w = hc->sec->seal(hc->sess, iov, n, buf, cap, &ei);
    if (w < 0) {
        free(buf);
        conn_fail(hc, (int)w, &ei);
        return;
    }
    if (rp_conn_send_ref(hc->c, buf, (size_t)w, free_release, buf) != 0) {
        free(buf);
        conn_fail(hc, RINGP2P_ECLOSED, NULL);
    }
}

/* Takes a multistream negotiator's pending output into a fresh buffer (NULL when none). */
static uint8_t *mss_take(rp_mss *m, size_t *len)
{
    size_t n = rp_mss_pending(m);
    *len = 0;
    if (n == 0) return NULL;
    uint8_t *b = malloc(n);
    if (b == NULL) return NULL;
    rp_wbuf w = rp_wbuf_make(b, n);
    ssize_t r = rp_mss_send(m, &w);
    if (r <= 0) {
        free(b);
        return NULL;
    }
    *len = (size_t)r;
    return b;
}

/* Seals every pending muxer frame of hc, then lets streams refill. */
static void conn_flush(rp_hconn *hc)
{
    if (hc->phase != HC_READY || hc->mx == NULL || hc->c == NULL) return;
    rp_hshard *hs = hc->hs;
    const rp_hmux_ops *mux = hc->mux;
    hc->busy++;
    for (int round = 0; round < 64 && hc->phase == HC_READY; round++) {
        while (mux->want_send(hc->mx) && (rp_conn_writable(hc->c) || hc->goodbye)) {
            rp_hmux_out out = { .hdr = hs->hdr,
                                .hdr_cap = sizeof(hs->hdr),
                                .iov = hs->iov,
                                .iov_cap = RP_HOST_SEAL_IOV,
                                .max_bytes = RP_HOST_SEAL_BATCH };
            ssize_t n = mux->send(hc->mx, &out, now_of(hc));
            if (n <= 0) break;
            send_sealed(hc, out.iov, out.niov);
            if (hc->phase != HC_READY) break;
        }
        if (hc->phase != HC_READY) break;
        /* What was sealed is copied: free emitted chunks, feed more, tell writers. */
        bool more = false;
        for (ringp2p_stream *s = hc->streams; s != NULL; s = s->next) {
            if (s->finished || s->ms == NULL) continue;
            uint64_t emitted = mux->emitted(s->ms);
            while (s->whead != NULL && s->whead->fed == s->whead->len &&
                   s->whead->end_off <= emitted) {
                wchunk *w = s->whead;
                s->whead = w->next;
                if (s->whead == NULL) s->wtail = NULL;
                if (w->owned)
                    free(w->data);
                else if (w->rel != NULL)
                    w->rel(w->rctx, w->data, w->len);
                free(w);
            }
            stream_feed(s);
            if (s->ms == NULL) continue;
            uint64_t queued = s->w_total - mux->emitted(s->ms);
            uint64_t high = rp_host_limit(hc->hs->node, RINGP2P_LIMIT_STREAM_WRITE_HIGH);
            if (s->want_writable && queued <= high / 2 && s->state == ST_OPEN && s->cbs != NULL) {
                s->want_writable = false;
                if (s->cbs->on_writable != NULL) {
                    s->busy++;
                    s->cbs->on_writable(s, s->ctx);
                    s->busy--;
                }
            }
            if (!s->finished && s->peer_fin && s->fin_sent && s->whead == NULL && s->eof_done)
                stream_finish(s, 0, NULL);
        }
        if (hc->phase == HC_READY && mux->want_send(hc->mx) &&
            (rp_conn_writable(hc->c) || hc->goodbye))
            more = true;
        if (!more) break;
    }
    if (hc->phase == HC_READY && hc->mx != NULL) {
        uint64_t t = mux->next_timeout(hc->mx);
        if (t != UINT64_MAX &&
            (!rp_timer_armed(&hc->mtimer) || rp_timer_deadline(&hc->mtimer) != t))
            rp_timer_arm(rp_shard_timers(hs->sh), &hc->mtimer, t);
    }
    hc->busy--;
}

void rp_hconn_flush_turn(rp_shard *sh, void *arg)
{
    rp_hshard *hs = arg;
    (void)sh;
    rp_hconn *list = hs->flush_list;
    hs->flush_list = NULL;
    while (list != NULL) {
        rp_hconn *hc = list;
        list = hc->flush_next;
        hc->flush_queued = false;
        hc->flush_next = NULL;
        conn_flush(hc);
        rx_resume(hc); /* a stream may have read, or gone, since the muxer blocked */
        conn_reap(hc);
    }
}

static void conn_mark_dirty(rp_hconn *hc)
{
    if (hc->flush_queued || hc->phase != HC_READY) return;
    rp_hshard *hs = hc->hs;
    hc->flush_queued = true;
    hc->flush_next = hs->flush_list;
    hs->flush_list = hc;
    rp_shard_at_turn_end(hs->sh, &hs->flush_turn);
}

static void flush_list_remove(rp_hconn *hc)
{
    if (!hc->flush_queued) return;
    rp_hconn **pp = &hc->hs->flush_list;
    while (*pp != NULL && *pp != hc) pp = &(*pp)->flush_next;
    if (*pp == hc) *pp = hc->flush_next;
    hc->flush_queued = false;
}

/* ---- streams: writing --------------------------------------------------------------------- */

/* Gives the muxer as much of the stream's chunks as it takes; FIN once all is fed. */
static void stream_feed(ringp2p_stream *s)
{
    if (s->ms == NULL || s->finished) return;
    const rp_hmux_ops *mux = s->hc->mux;
    bool gave = false;
    for (wchunk *w = s->whead; w != NULL; w = w->next) {
        if (w->fed == w->len) continue;
        ssize_t n = mux->write(s->ms, w->data + w->fed, w->len - w->fed);
        if (n < 0) {
            stream_finish(s, (int)n, NULL);
            return;
        }
        if (n == 0) break;
        gave = true;
        w->fed += (size_t)n;
        s->fed_total += (uint64_t)n;
        if (w->fed == w->len)
            w->end_off = s->fed_total;
        else
            break;
    }
    bool all_fed = s->wtail == NULL || s->wtail->fed == s->wtail->len;
    /*
     * A lazy open's FIN waits for the listener's echo: js-libp2p 3.3 loses a
     * FIN that arrives with the proposal (its handler's read never ends). A
     * ringp2p listener reads it after the negotiation, so it goes at once.
     */
    bool lazy_pending = s->state == ST_OPEN && s->mss != NULL && !s->early_fin;
    if (s->write_closed && !s->fin_sent && all_fed && !lazy_pending) {
        s->fin_sent = true;
        mux->close(s->ms);
        gave = true;
    }
    if (gave) conn_mark_dirty(s->hc);
}

static int chunk_append(ringp2p_stream *s, const void *data, size_t len, bool copy,
                        ringp2p_release_fn rel, void *rctx)
{
    if (copy && s->wtail != NULL && s->wtail->owned && s->wtail->cap - s->wtail->len >= len) {
        memcpy(s->wtail->data + s->wtail->len, data, len);
        s->wtail->len += len;
        s->w_total += len;
        return 0;
    }
    wchunk *w = calloc(1, sizeof(*w));
    if (w == NULL) return RINGP2P_ENOMEM;
    if (copy) {
        w->cap = len > RP_HOST_WCHUNK ? len : RP_HOST_WCHUNK;
        w->data = malloc(w->cap);
        if (w->data == NULL) {
            free(w);
            return RINGP2P_ENOMEM;
        }
        memcpy(w->data, data, len);
        w->owned = true;
    } else {
        w->data = (uint8_t *)(uintptr_t)data;
        w->cap = len;
        w->rel = rel;
        w->rctx = rctx;
    }
    w->len = len;
    if (s->wtail != NULL)
        s->wtail->next = w;
    else
        s->whead = w;
    s->wtail = w;
    s->w_total += len;
    return 0;
}

static void free_chunks(ringp2p_stream *s)
{
    while (s->whead != NULL) {
        wchunk *w = s->whead;
        s->whead = w->next;
        if (w->owned)
            free(w->data);
        else if (w->rel != NULL)
            w->rel(w->rctx, w->data, w->len);
        free(w);
    }
    s->wtail = NULL;
}

static void stream_mss_out(ringp2p_stream *s)
{
    size_t n;
    uint8_t *b = mss_take(s->mss, &n);
    if (b == NULL) return;
    /* by reference: a copy would take a whole RP_HOST_WCHUNK for these few bytes */
    if (chunk_append(s, b, n, false, free_release, b) < 0) {
        free(b);
        stream_finish(s, RINGP2P_ENOMEM, NULL);
        return;
    }
    stream_feed(s);
}

static uint64_t stream_queued(const ringp2p_stream *s)
{
    return s->w_total - (s->ms != NULL ? s->hc->mux->emitted(s->ms) : s->w_total);
}

static int write_check(ringp2p_stream *s, size_t len)
{
    if (s->finished || s->write_closed || s->ms == NULL || s->state != ST_OPEN)
        return RINGP2P_ECLOSED;
    uint64_t high = rp_host_limit(s->hc->hs->node, RINGP2P_LIMIT_STREAM_WRITE_HIGH);
    if (stream_queued(s) >= high) {
        s->want_writable = true;
        return RINGP2P_EAGAIN;
    }
    (void)len;
    return 0;
}

RINGP2P_API ssize_t ringp2p_stream_write(ringp2p_stream *s, const void *data, size_t len)
{
    int r = write_check(s, len);
    if (r < 0) return r;
    if (len == 0) return 0;
    r = chunk_append(s, data, len, true, NULL, NULL);
    if (r < 0) return r;
    stream_feed(s);
    return (ssize_t)len;
}

RINGP2P_API int ringp2p_stream_write_ref(ringp2p_stream *s, const void *data, size_t len,
                                         ringp2p_release_fn release, void *ctx)
{
    int r = write_check(s, len);
    if (r < 0) return r;
    if (len == 0) {
        if (release != NULL) release(ctx, data, 0);
        return 0;
    }
    r = chunk_append(s, data, len, false, release, ctx);
    if (r < 0) return r;
    stream_feed(s);
    return 0;
}

RINGP2P_API int ringp2p_stream_close_write(ringp2p_stream *s)
{
    if (s->finished) return RINGP2P_ECLOSED;
    s->write_closed = true;
    stream_feed(s);
    return 0;
}

RINGP2P_API void ringp2p_stream_reset(ringp2p_stream *s)
{
    if (s->finished) return;
    stream_finish(s, RINGP2P_ESTREAMRESET, NULL);
}

RINGP2P_API void ringp2p_stream_set_callbacks(ringp2p_stream *s,
                                              const ringp2p_stream_callbacks *cbs, void *ctx)
{
    s->cbs = cbs;
    s->ctx = ctx;
}

RINGP2P_API const char *ringp2p_stream_protocol(const ringp2p_stream *s)
{
    return s->protocol;
}

RINGP2P_API const ringp2p_conn_info *ringp2p_stream_conn(const ringp2p_stream *s)
{
    return &s->hc->info;
}

/* ---- streams: reading --------------------------------------------------------------------- */

static void rseg_free(rseg *g)
{
    if (g->rbuf != NULL) rp_rbuf_release(g->rbuf);
    free(g->copy);
    free(g);
}

static void stream_drain(ringp2p_stream *s)
{
    if (s->delivering) return;
    s->delivering = true;
    while (!s->finished && !s->paused && s->rhead != NULL) {
        rseg *g = s->rhead;
        s->rhead = g->next;
        if (s->rhead == NULL) s->rtail = NULL;
        size_t len = g->len;
        if (s->cbs != NULL && s->cbs->on_data != NULL) {
            s->busy++;
            s->cbs->on_data(s, s->ctx, g->data, len);
            s->busy--;
        }
        rseg_free(g);
        if (!s->finished && s->ms != NULL) s->hc->mux->consumed(s->ms, len, now_of(s->hc));
    }
    if (!s->finished && !s->paused && s->rhead == NULL && s->peer_fin && !s->eof_done &&
        s->state == ST_OPEN) {
        s->eof_done = true;
        if (s->cbs != NULL && s->cbs->on_eof != NULL) {
            s->busy++;
            s->cbs->on_eof(s, s->ctx);
            s->busy--;
        }
        if (!s->finished && s->fin_sent && s->whead == NULL) stream_finish(s, 0, NULL);
    }
    s->delivering = false;
    if (!s->finished) conn_mark_dirty(s->hc);
}

/* Keeps received bytes: holds the receive buffer they are in, or copies them (rbuf NULL). */
static rseg *rseg_new(rp_rbuf *rbuf, const uint8_t *data, size_t len)
{
    rseg *g = calloc(1, sizeof(*g));
    if (g == NULL) return NULL;
    if (rbuf != NULL) {
        g->rbuf = rp_rbuf_hold(rbuf);
        g->data = data;
    } else {
        g->copy = malloc(len);
        if (g->copy == NULL) {
            free(g);
            return NULL;
        }
        memcpy(g->copy, data, len);
        g->data = g->copy;
    }
    g->len = len;
    return g;
}

static void stream_queue(ringp2p_stream *s, rp_rbuf *rbuf, const uint8_t *data, size_t len)
{
    rseg *g = rseg_new(rbuf, data, len);
    if (g == NULL) {
        stream_finish(s, RINGP2P_ENOMEM, NULL);
        return;
    }
    if (s->rtail != NULL)
        s->rtail->next = g;
    else
        s->rhead = g;
    s->rtail = g;
}

RINGP2P_API void ringp2p_stream_pause_read(ringp2p_stream *s)
{
    s->paused = true;
}

RINGP2P_API void ringp2p_stream_resume_read(ringp2p_stream *s)
{
    if (!s->paused) return;
    s->paused = false;
    stream_drain(s);
}

/* The negotiation of s finished; hand it to its handler or opener. */
static void stream_negotiated(ringp2p_stream *s)
{
    ringp2p_node *node = s->hc->hs->node;
    size_t plen;
    const char *p = rp_mss_protocol(s->mss, &plen);
    s->protocol = strndup(p != NULL ? p : "", plen);
    if (s->protocol == NULL) {
        stream_finish(s, RINGP2P_ENOMEM, NULL);
        return;
    }
    s->state = ST_OPEN;
    rp_timer_cancel(&s->neg_timer);
    ringp2p_stream_handler fn = NULL;
    void *fctx = NULL;
    if (!s->outbound) {
        int i = rp_htable_find(s->tbl, s->protocol, plen);
        if (i >= 0) {
            fn = s->tbl->fns[i];
            fctx = s->tbl->ctxs[i];
        }
        rp_htable_unref(s->tbl);
        s->tbl = NULL;
    }
    free(s->mss);
    s->mss = NULL;
    s->busy++;
    if (s->outbound) {
        ringp2p_open_fn ofn = s->open_fn;
        s->open_fn = NULL;
        ofn(node, s, 0, NULL, s->open_ctx);
    } else if (fn != NULL) {
        fn(node, s, fctx);
    }
    s->busy--;
    if (!s->finished && s->cbs == NULL) stream_finish(s, RINGP2P_ESTREAMRESET, NULL);
}

/*
 * A lazily negotiated outbound stream is open once its proposal is queued: the
 * opener hears of it now. s->mss stays until the listener's echo is read
 * (stream_deliver), and the negotiation timer keeps running until then: a
 * peer that never answers resets the stream with RINGP2P_ETIMEDOUT (on_close).
 */
static void stream_open_lazy(ringp2p_stream *s)
{
    s->protocol = strdup(s->protos[0]);
    if (s->protocol == NULL) {
        stream_finish(s, RINGP2P_ENOMEM, NULL);
        return;
    }
    s->state = ST_OPEN;
    ringp2p_open_fn ofn = s->open_fn;
    s->open_fn = NULL;
    s->busy++;
    ofn(s->hc->hs->node, s, 0, NULL, s->open_ctx);
    s->busy--;
    if (!s->finished && s->cbs == NULL) stream_finish(s, RINGP2P_ESTREAMRESET, NULL);
}

static void stream_deliver(ringp2p_stream *s, rp_rbuf *rbuf, const uint8_t *data, size_t len)
{
    if (s->finished || s->ms == NULL) return;
    if (s->state == ST_OPEN && s->mss != NULL) {
        /* lazy open: the listener's header and echo come before the protocol's bytes */
        ringp2p_errinfo ei;
        ssize_t n = rp_mss_recv(s->mss, data, len, &ei);
        if (n < 0) {
            stream_finish(s, (int)n, &ei);
            return;
        }
        s->hc->mux->consumed(s->ms, (size_t)n, now_of(s->hc));
        if (rp_mss_status(s->mss) != RP_MSS_DONE) return;
        rp_timer_cancel(&s->neg_timer);
        free(s->mss);
        s->mss = NULL;
        if (s->write_closed && !s->fin_sent) stream_feed(s); /* the FIN held back */
        if (s->finished) return;
        data += n;
        len -= (size_t)n;
        if (len == 0) return;
    }
    if (s->state == ST_NEG) {
        ringp2p_errinfo ei;
        ssize_t n = rp_mss_recv(s->mss, data, len, &ei);
        stream_mss_out(s);
        if (s->finished) return;
        if (n < 0) {
            stream_finish(s, (int)n, &ei);
            return;
        }
        s->hc->mux->consumed(s->ms, (size_t)n, now_of(s->hc));
        if (rp_mss_status(s->mss) != RP_MSS_DONE) return;
        stream_negotiated(s);
        data += n;
        len -= (size_t)n;
        if (len == 0 || s->finished) return;
    }
    /* Not consumed until delivered: a paused stream holds back yamux's window
     * credit, and under mplex it fills its buffer and then blocks the
     * connection's reading (see the receive path). */
    if (s->paused || s->rhead != NULL || s->delivering) {
        stream_queue(s, rbuf, data, len);
        return;
    }
    if (s->cbs != NULL && s->cbs->on_data != NULL) {
        s->busy++;
        s->delivering = true;
        s->cbs->on_data(s, s->ctx, data, len);
        s->delivering = false;
        s->busy--;
    }
    if (!s->finished && s->ms != NULL) s->hc->mux->consumed(s->ms, len, now_of(s->hc));
    if (!s->finished && s->rhead != NULL) stream_drain(s);
}

/* ---- streams: lifecycle ------------------------------------------------------------------- */

static void neg_fired(rp_timer *t, void *arg)
{
    ringp2p_stream *s = arg;
    rp_hconn *hc = s->hc;
    (void)t;
    if (s->finished || s->mss == NULL) return; /* ST_NEG, or a lazy open awaiting its echo */
    ringp2p_errinfo ei = { RINGP2P_ETIMEDOUT, "" };
    snprintf(ei.msg, sizeof(ei.msg),
             "timed out: multistream-select on the stream did not finish in %llu ms",
             (unsigned long long)rp_host_limit(hc->hs->node, RINGP2P_LIMIT_NEGOTIATION_TIMEOUT_MS));
    hc->busy++;
    stream_finish(s, RINGP2P_ETIMEDOUT, &ei);
    hc->busy--;
    conn_reap(hc);
}

static ringp2p_stream *stream_new(rp_hconn *hc, bool outbound)
{
    ringp2p_stream *s = calloc(1, sizeof(*s));
    if (s == NULL) return NULL;
    s->hc = hc;
    s->outbound = outbound;
    rp_timer_init(&s->neg_timer, neg_fired, s);
    uint64_t to = rp_host_limit(hc->hs->node, RINGP2P_LIMIT_NEGOTIATION_TIMEOUT_MS) * 1000000ull;
    rp_timer_arm(rp_shard_timers(hc->hs->sh), &s->neg_timer, now_of(hc) + to);
    s->next = hc->streams;
    if (hc->streams != NULL) hc->streams->prev = s;
    hc->streams = s;
    return s;
}

static void stream_free(ringp2p_stream *s)
{
    rp_timer_cancel(&s->neg_timer);
    free_chunks(s);
    while (s->rhead != NULL) {
        rseg *g = s->rhead;
        s->rhead = g->next;
        rseg_free(g);
    }
    if (s->tbl != NULL) rp_htable_unref(s->tbl);
    free(s->mss);
    free(s->protos); /* one block with its strings (rp_hopen) */
    free(s->protocol);
    free(s);
}

/* Takes s off hc's live list (hc->streams). */
static void stream_unlink(rp_hconn *hc, ringp2p_stream *s)
{
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        hc->streams = s->next;
    if (s->next != NULL) s->next->prev = s->prev;
    s->next = s->prev = NULL;
}

/*
 * Ends s once: the opener or on_close hears `err`; the muxer forgets the stream
 * (reset unless both sides closed). The memory goes at the next reap.
 */
static void stream_finish(ringp2p_stream *s, int err, const ringp2p_errinfo *ei)
{
    if (s->finished) return;
    s->finished = true;
    rp_timer_cancel(&s->neg_timer);
    rp_hconn *hc = s->hc;
    if (s->ms != NULL) {
        if (err != 0) hc->mux->reset(s->ms);
        hc->mux->release(s->ms);
        s->ms = NULL;
    }
    if (err != 0) free_chunks(s); /* the muxer dropped its references with the reset */
    ringp2p_node *node = hc->hs->node;
    s->busy++;
    if (s->outbound && s->state == ST_NEG && s->open_fn != NULL) {
        ringp2p_open_fn ofn = s->open_fn;
        s->open_fn = NULL;
        ringp2p_errinfo tmp;
        if (ei == NULL) {
            tmp.code = err;
            snprintf(tmp.msg, sizeof(tmp.msg), "%s", ringp2p_strerror(err));
            ei = &tmp;
        }
        ofn(node, NULL, err, ei, s->open_ctx);
    } else if (s->state == ST_OPEN && s->cbs != NULL && s->cbs->on_close != NULL) {
        s->cbs->on_close(s, s->ctx, err);
    }
    s->busy--;
    /* from the live list into the dead list */
    stream_unlink(hc, s);
    s->dead_next = hc->dead;
    hc->dead = s;
    if (hc->phase == HC_READY) conn_mark_dirty(hc);
    if (hc->close_idle) idle_check(hc);
}

static void conn_reap(rp_hconn *hc)
{
    if (hc->busy > 0) return;
    ringp2p_stream **pp = &hc->dead;
    while (*pp != NULL) {
        ringp2p_stream *s = *pp;
        if (s->busy > 0) {
            pp = &s->dead_next;
            continue;
        }
        *pp = s->dead_next;
        stream_free(s);
    }
}

/* ---- opening streams ---------------------------------------------------------------------- */

/* Queues o at the tail of hc's waiting list (opened once the connection is ready, or the
 * muxer's open backlog has room). */
static void waiting_push(rp_hconn *hc, rp_hopen *o)
{
    o->next = NULL;
    if (hc->waiting_tail != NULL)
        hc->waiting_tail->next = o;
    else
        hc->waiting = o;
    hc->waiting_tail = o;
}

void rp_hconn_open_stream(rp_hconn *hc, rp_hopen *o)
{
    if (hc->phase == HC_DEAD) {
        rp_hopen_fail(o, hc->fail_err != 0 ? hc->fail_err : RINGP2P_ECLOSED,
                      hc->fail_err != 0 ? &hc->fail_ei : NULL);
        return;
    }
    if (hc->phase != HC_READY) {
        waiting_push(hc, o);
        return;
    }
    if (o->conn_only) { /* a connection was all it asked for (dcutr_svc.c) */
        ringp2p_open_fn fn = o->fn;
        o->fn = NULL;
        if (fn != NULL) fn(hc->hs->node, NULL, 0, NULL, o->ctx);
        rp_hopen_free(o);
        return;
    }
    ringp2p_stream *s = stream_new(hc, true);
    if (s == NULL) {
        rp_hopen_fail(o, RINGP2P_ENOMEM, NULL);
        return;
    }
    s->mss = malloc(sizeof(*s->mss));
    rp_hmux_stream *ms = NULL;
    int r = s->mss == NULL ? RINGP2P_ENOMEM : hc->mux->open(hc->mx, s, &ms);
    ringp2p_errinfo ei = { 0 };
    /*
     * Lazy multistream-select (as go-libp2p's NewStream): one protocol that the
     * peer's identify lists is taken as accepted, so the opener can write in
     * the same flight as the proposal instead of a round trip later. The
     * echo is still checked when it arrives; an "na" then ends the stream
     * (on_close with RINGP2P_ENEGOTIATION) instead of failing the open.
     */
    bool lazy = r == 0 && o->nprotos == 1 && hc->idp != NULL &&
                rp_identify_peer_supports(hc->idp, o->protos[0]);
    if (r == 0)
        r = rp_mss_init_dialer(s->mss, (const char *const *)o->protos, o->nprotos,
                               lazy ? RP_MSS_LAZY : 0, &ei);
    else if (r == RINGP2P_ELIMIT)
        snprintf(ei.msg, sizeof(ei.msg),
                 "cannot open a %s stream: the connection's limit of open streams is reached",
                 hc->mux->name);
    else
        snprintf(ei.msg, sizeof(ei.msg), "cannot open a %s stream: %s", hc->mux->name,
                 ringp2p_strerror(r));
    if (r == RINGP2P_EAGAIN && ms == NULL) {
        /* open backlog full (yamux): wait for RP_HMUX_EV_OPEN_READY */
        s->finished = true;
        stream_unlink(hc, s);
        stream_free(s);
        waiting_push(hc, o);
        return;
    }
    s->ms = ms;
    s->open_fn = o->fn;
    s->open_ctx = o->ctx;
    s->protos = o->protos;
    s->nprotos = o->nprotos;
    o->protos = NULL;
    o->nprotos = 0;
    o->fn = NULL;
    rp_hopen_free(o);
    if (r != 0) {
        ei.code = r;
        stream_finish(s, r, &ei);
        return;
    }
    stream_mss_out(s);
    if (lazy && !s->finished) {
        const char *agent = hc->agent;
        s->early_fin = agent != NULL && strncmp(agent, "ringp2p/", 8) == 0;
        stream_open_lazy(s);
    }
}

static void run_waiting(rp_hconn *hc)
{
    rp_hopen *list = hc->waiting;
    hc->waiting = hc->waiting_tail = NULL;
    while (list != NULL) {
        rp_hopen *o = list;
        list = o->next;
        o->next = NULL;
        rp_hconn_open_stream(hc, o);
        if (hc->waiting != NULL && hc->phase == HC_READY) {
            /* backlog full again: keep the rest queued behind */
            hc->waiting_tail->next = list;
            while (hc->waiting_tail->next != NULL) hc->waiting_tail = hc->waiting_tail->next;
            return;
        }
    }
}

int rp_hconn_open_internal(rp_hconn *hc, const char *proto, ringp2p_open_fn fn, void *ctx)
{
    rp_hopen *o = calloc(1, sizeof(*o));
    if (o == NULL) return RINGP2P_ENOMEM;
    o->node = hc->hs->node;
    size_t plen = strlen(proto) + 1;
    o->protos = malloc(sizeof(char *) + plen); /* one block, as rp_hopen_free expects */
    if (o->protos != NULL) o->protos[0] = memcpy(o->protos + 1, proto, plen);
    if (o->protos == NULL) {
        rp_hopen_free(o);
        return RINGP2P_ENOMEM;
    }
    o->nprotos = 1;
    o->fn = fn;
    o->ctx = ctx;
    rp_hconn_open_stream(hc, o);
    return 0;
}

/* ---- muxer events ------------------------------------------------------------------------- */

static void inbound_stream(rp_hconn *hc, rp_hmux_stream *ms)
{
    ringp2p_stream *s = stream_new(hc, false);
    if (s == NULL) {
        hc->mux->reset(ms);
        hc->mux->release(ms);
        return;
    }
    s->ms = ms;
    s->mss = malloc(sizeof(*s->mss));
    s->tbl = rp_htable_ref(hc->hs->handlers);
    if (s->mss == NULL || rp_mss_init_listener(s->mss, (const char *const *)s->tbl->names,
                                               s->tbl->n, NULL, NULL, NULL) != 0) {
        stream_finish(s, RINGP2P_ENOMEM, NULL);
        return;
    }
    hc->mux->accept(ms, s);
    stream_mss_out(s);
}

/*
 * The peer said go-away: it takes no new streams here. Its open streams go on;
 * new ones (and opens waiting for the backlog) take another connection or a
 * new dial, and this one closes once idle. Out of the directory at once, so
 * no new stream picks it.
 */
static void peer_went_away(rp_hconn *hc)
{
    if (hc->close_idle) return;
    hc->close_idle = true;
    rp_logf(&hc->hs->node->log, RINGP2P_LOG_DEBUG, "host",
            "connection %llu: the peer said go-away; new streams go elsewhere",
            (unsigned long long)hc->id);
    if (hc->dir_added) {
        rp_host_dir_remove(hc->hs->node, hc->id);
        hc->dir_added = false;
    }
    rp_hopen *list = hc->waiting;
    hc->waiting = hc->waiting_tail = NULL;
    while (list != NULL) {
        rp_hopen *o = list;
        list = o->next;
        o->next = NULL;
        o->conn_id = 0;
        rp_host_open_on_shard(hc->hs, o);
    }
    idle_check(hc);
}

static void mux_events(rp_hconn *hc, rp_rbuf *rbuf)
{
    rp_hmux_event ev;
    while (hc->mx != NULL && hc->mux->next_event(hc->mx, &ev)) {
        ringp2p_stream *s = ev.user;
        switch (ev.type) {
        case RP_HMUX_EV_OPENED: inbound_stream(hc, ev.stream); break;
        case RP_HMUX_EV_DATA:
            if (s == NULL || s->finished)
                hc->mux->consumed(ev.stream, ev.len, now_of(hc));
            else
                stream_deliver(s, rbuf, ev.data, ev.len);
            break;
        case RP_HMUX_EV_FIN:
            if (s == NULL || s->finished) break;
            s->peer_fin = true;
            if (s->mss != NULL) { /* still negotiating (ST_NEG, or a lazy open's echo) */
                ringp2p_errinfo ei = { RINGP2P_ENEGOTIATION, "" };
                snprintf(ei.msg, sizeof(ei.msg),
                         "no common protocol: the peer closed the stream during "
                         "multistream-select");
                stream_finish(s, RINGP2P_ENEGOTIATION, &ei);
            } else {
                stream_drain(s);
            }
            break;
        case RP_HMUX_EV_RESET:
            if (s != NULL && !s->finished) {
                ringp2p_errinfo ei = { RINGP2P_ESTREAMRESET, "" };
                if (ev.err == RINGP2P_ELIMIT) {
                    /* mplex: the stream's buffer stayed full until the block deadline */
                    ei.code = RINGP2P_ELIMIT;
                    snprintf(ei.msg, sizeof(ei.msg),
                             "stream reset: its %s buffer was full and not read before the "
                             "block timeout (the muxer has no flow control)",
                             hc->mux->name);
                    rp_logf(&hc->hs->node->log, RINGP2P_LOG_WARN, "host", "connection %llu: %s",
                            (unsigned long long)hc->id, ei.msg);
                } else {
                    snprintf(ei.msg, sizeof(ei.msg), "stream reset by the peer");
                }
                stream_finish(s, ei.code, &ei);
            }
            break;
        case RP_HMUX_EV_WRITABLE:
            if (s != NULL && !s->finished) stream_feed(s);
            break;
        case RP_HMUX_EV_OPEN_READY: run_waiting(hc); break;
        case RP_HMUX_EV_GO_AWAY: peer_went_away(hc); break;
        case RP_HMUX_EV_SESSION_ERROR: {
            ringp2p_errinfo ei = { ev.err, "" };
            snprintf(ei.msg, sizeof(ei.msg), "%s session ended: %s", hc->mux->name,
                     ringp2p_strerror(ev.err));
            conn_flush(hc);
            conn_fail(hc, ev.err, &ei);
            return;
        }
        default: break;
        }
        if (hc->phase != HC_READY) return;
    }
}

/* ---- receive path ------------------------------------------------------------------------- */

/*
 * mplex has no flow control: when a stream's buffer is full its session stops
 * at the next message for that stream (rp_hmux_ops.blocked) until the stream
 * reads, is reset or released, or the block deadline passes (the muxer then
 * resets it). Meanwhile the connection's reads are paused, so the kernel's
 * buffer and then TCP's window fill and the peer slows down, and the
 * plaintext already received waits in hc's backlog: held receive buffers
 * (as a paused stream keeps its payload) or copies. Every other stream on
 * the connection waits too; that is mplex's price (go-mplex blocks alike).
 */

/* Appends received plaintext the muxer has not taken to the backlog; false without memory. */
static bool backlog_add(rp_hconn *hc, rp_rbuf *rbuf, const uint8_t *data, size_t len)
{
    if (len == 0) return true;
    rseg *g = rseg_new(rbuf, data, len);
    if (g == NULL) return false;
    if (hc->bl_tail != NULL)
        hc->bl_tail->next = g;
    else
        hc->bl_head = g;
    hc->bl_tail = g;
    return true;
}

static void backlog_free(rp_hconn *hc)
{
    while (hc->bl_head != NULL) {
        rseg *g = hc->bl_head;
        hc->bl_head = g->next;
        rseg_free(g);
    }
    hc->bl_tail = NULL;
    hc->rx_blocked = false;
    rp_timer_cancel(&hc->btimer);
}

/* The muxer blocked: stop reading the connection and wake up at its deadline. */
static void rx_block(rp_hconn *hc, uint64_t deadline)
{
    if (!hc->rx_blocked) {
        hc->rx_blocked = true;
        if (hc->c != NULL) rp_conn_recv_pause(hc->c);
        uint64_t now = now_of(hc);
        rp_logf(&hc->hs->node->log, RINGP2P_LOG_DEBUG, "host",
                "connection %llu: a %s stream's buffer is full: reading paused "
                "(the stream is reset if it does not read within %llu ms)",
                (unsigned long long)hc->id, hc->mux->name,
                (unsigned long long)(deadline > now ? (deadline - now) / 1000000 : 0));
    }
    if (!rp_timer_armed(&hc->btimer) || rp_timer_deadline(&hc->btimer) != deadline)
        rp_timer_arm(rp_shard_timers(hc->hs->sh), &hc->btimer, deadline);
}

/*
 * Gives [*p, end) to the muxer (an empty range only asks whether a block has
 * ended) until it has taken everything or blocks on a full stream. True when
 * blocked: *p is where it stopped and reads are paused. False when all was
 * taken or the connection failed.
 */
static bool mux_feed(rp_hconn *hc, rp_rbuf *rbuf, const uint8_t **p, const uint8_t *end)
{
    bool blocked = false;
    hc->rx_feeding++;
    while (hc->phase == HC_READY) {
        ringp2p_errinfo ei;
        int r = hc->mux->receive(hc->mx, p, end, now_of(hc), &ei);
        mux_events(hc, rbuf);
        if (hc->phase != HC_READY) break;
        if (r == RINGP2P_EAGAIN) {
            uint64_t deadline;
            /* asked after the events: a callback may have reset the stream meanwhile */
            if (hc->mux->blocked(hc->mx, &deadline)) {
                rx_block(hc, deadline);
                blocked = true;
                break;
            }
            conn_flush(hc); /* the event or control queue was full */
            continue;
        }
        if (r < 0) {
            conn_flush(hc);
            conn_fail(hc, r, &ei);
            break;
        }
        if (*p >= end) break;
    }
    hc->rx_feeding--;
    return blocked;
}

/*
 * Top level only (the flush task, the block timer): if the muxer was
 * blocked, asks it again and feeds it the backlog; once all is taken and it
 * is no longer blocked, reads resume (bytes the runtime kept come first).
 */
static void rx_resume(rp_hconn *hc)
{
    if (!hc->rx_blocked || hc->phase != HC_READY || hc->rx_feeding > 0) return;
    static const uint8_t none[1];
    bool moved = false;
    hc->busy++;
    while (hc->phase == HC_READY) {
        rseg *g = hc->bl_head;
        const uint8_t *p = g != NULL ? g->data : none, *end = g != NULL ? g->data + g->len : none;
        bool blocked = mux_feed(hc, g != NULL ? g->rbuf : NULL, &p, end);
        if (hc->phase != HC_READY) break;
        if (g != NULL && p != g->data) moved = true;
        if (blocked) {
            if (g != NULL) {
                g->len -= (size_t)(p - g->data);
                g->data = p;
            }
            break;
        }
        moved = true;
        if (g == NULL) {
            hc->rx_blocked = false;
            rp_timer_cancel(&hc->btimer);
            if (hc->c != NULL) rp_conn_recv_resume(hc->c);
            break;
        }
        hc->bl_head = g->next;
        if (hc->bl_head == NULL) hc->bl_tail = NULL;
        rseg_free(g);
    }
    hc->busy--;
    /* output the delivery caused; when nothing moved, stay quiet until something does */
    if (moved && hc->phase == HC_READY) conn_mark_dirty(hc);
}

static void btimer_fired(rp_timer *t, void *arg)
{
    rp_hconn *hc = arg;
    (void)t;
    rx_resume(hc);
    conn_reap(hc);
}

static void plain_in(rp_hconn *hc, rp_rbuf *rbuf, const uint8_t *data, size_t len)
{
    if (hc->phase == HC_MSS_MUX) {
        ringp2p_errinfo ei;
        ssize_t n = rp_mss_recv(&hc->mss, data, len, &ei);
        size_t ol;
        uint8_t *o = mss_take(&hc->mss, &ol);
        if (o != NULL) {
            rp_iov v = rp_iov_make(o, ol);
            send_sealed(hc, &v, 1);
            free(o);
        }
        if (n < 0) {
            if (n == RINGP2P_ENEGOTIATION) {
                ringp2p_errinfo e2 = { RINGP2P_ENEGOTIATION, "" };
                snprintf(e2.msg, sizeof(e2.msg), "no common muxer: %.200s", ei.msg);
                ei = e2;
            }
            conn_fail(hc, (int)n, &ei);
            return;
        }
        if (rp_mss_status(&hc->mss) != RP_MSS_DONE) return;
        int idx = rp_mss_protocol_index(&hc->mss);
        if (idx < 0 || (size_t)idx >= hc->hs->node->cfg.nmux) {
            fail_msg(hc, RINGP2P_EPROTOCOL, "multistream-select agreed on no listed muxer");
            return;
        }
        hc->info.muxer = hc->hs->node->cfg.muxers[idx];
        start_muxer(hc);
        if (hc->phase != HC_READY) return;
        data += n;
        len -= (size_t)n;
    }
    if (hc->phase != HC_READY) return;
    const uint8_t *p = data, *end = data + len;
    if (hc->rx_blocked || mux_feed(hc, rbuf, &p, end)) {
        /* the rest of this buffer (and of the records after it) waits in order */
        if (hc->phase == HC_READY && !backlog_add(hc, rbuf, p, (size_t)(end - p)))
            conn_fail(hc, RINGP2P_ENOMEM, NULL);
    }
    if (hc->phase == HC_READY) conn_mark_dirty(hc);
}

/* Length of the frame whose header (frame_header_len bytes) is at h. */
static size_t frame_len(const rp_hsec_ops *sec, const uint8_t *h)
{
    size_t o = sec->frame_len_off;
    return sec->frame_header_len + ((size_t)h[o] << 8 | h[o + 1]);
}

/*
 * Opens the whole frames [*p, end) holds and hands the plaintext on; *p ends
 * at the first partial frame. 0, or -1 when the connection failed.
 * RINGP2P_ECLOSED from open is the peer ending the secure channel (TLS
 * close_notify): handled as the end of the connection, answered with our own
 * close_notify and a FIN. Output the session
 * queued meanwhile (a KeyUpdate answer, an alert) is sent.
 */
static int open_all(rp_hconn *hc, rp_rbuf *rbuf, uint8_t **p, uint8_t *end)
{
    const rp_hsec_ops *sec = hc->sec;
    while (*p < end) {
        rp_iov plain;
        ringp2p_errinfo ei;
        int r = sec->open(hc->sess, p, end, &plain, &ei);
        if (r == 0) break;
        if (r == RINGP2P_ECLOSED) {
            send_pending(hc);
            hc->fail_fin = true; /* our close_notify answers, then a FIN (not a reset) */
            fail_msg(hc, RINGP2P_ECONNRESET, "the peer closed the secure channel");
            return -1;
        }
        if (r < 0) {
            send_pending(hc); /* an alert, if the protocol has one */
            conn_fail(hc, r, &ei);
            return -1;
        }
        if (plain.len > 0) plain_in(hc, rbuf, plain.base, plain.len);
        if (hc->phase == HC_DEAD) return -1;
    }
    send_pending(hc);
    return hc->phase == HC_DEAD ? -1 : 0;
}

/*
 * Secured bytes, opened in place where p points (the runtime's receive buffer
 * when rbuf is set). A frame cut by the end of p is completed in hc->rx; an
 * unframed protocol (plaintext) takes everything, so it never gets there.
 */
static void encrypted_in(rp_hconn *hc, rp_rbuf *rbuf, uint8_t *p, size_t len)
{
    uint8_t *end = p + len;
    const rp_hsec_ops *sec = hc->sec;
    size_t hl = sec->frame_header_len;
    if (hc->rx_len > 0) {
        while (hc->rx_len < hl && p < end) hc->rx[hc->rx_len++] = *p++;
        if (hc->rx_len < hl) return;
        size_t flen = frame_len(sec, hc->rx);
        if (flen > sec->frame_max) {
            fail_msg(hc, RINGP2P_EPROTOCOL, "security protocol frame exceeds its maximum size");
            return;
        }
        size_t take = flen - hc->rx_len;
        if (take > (size_t)(end - p)) take = (size_t)(end - p);
        memcpy(hc->rx + hc->rx_len, p, take);
        p += take;
        hc->rx_len += take;
        if (hc->rx_len < flen) return;
        uint8_t *q = hc->rx;
        hc->rx_len = 0;
        if (open_all(hc, NULL, &q, hc->rx + flen) < 0) return;
        if (q != hc->rx + flen) {
            fail_msg(hc, RINGP2P_EPROTOCOL, "security protocol left part of a whole frame");
            return;
        }
    }
    if (open_all(hc, rbuf, &p, end) < 0) return;
    if (p < end) {
        size_t rest = (size_t)(end - p);
        if (hl == 0 || rest > sec->frame_max ||
            (rest >= hl && frame_len(sec, p) > sec->frame_max)) {
            fail_msg(hc, RINGP2P_EPROTOCOL,
                     hl == 0 ? "security protocol left a partial frame"
                             : "security protocol frame exceeds its maximum size");
            return;
        }
        if (hc->rx == NULL) hc->rx = malloc(sec->frame_max);
        if (hc->rx == NULL) {
            conn_fail(hc, RINGP2P_ENOMEM, NULL);
            return;
        }
        memcpy(hc->rx, p, rest);
        hc->rx_len = rest;
    }
}

static void fail_msg(rp_hconn *hc, int err, const char *detail)
{
    ringp2p_errinfo ei = { err, "" };
    snprintf(ei.msg, sizeof(ei.msg), "%s", detail);
    conn_fail(hc, err, &ei);
}

/* Starts the session of security protocol cfg.sec[idx] (agreed, or proposed lazily). */
static void start_security(rp_hconn *hc, int idx)
{
    if (idx < 0 || (size_t)idx >= hc->hs->node->cfg.nsec) {
        fail_msg(hc, RINGP2P_EPROTOCOL, "multistream-select agreed on no listed security protocol");
        return;
    }
    const rp_hsec_ops *sec = hc->hs->node->cfg.sec[idx];
    ringp2p_errinfo ei;
    int r = sec->new_session(hc->hs->node, !hc->inbound, hc->has_expect ? &hc->expect : NULL,
                             &hc->sess, &ei);
    if (r < 0) {
        conn_fail(hc, r, &ei);
        return;
    }
    hc->sec = sec;
    hc->phase = HC_SECURE;
    hc->info.security = sec->id;
}

/*
 * Feeds the upgrade bytes to the security protocol's multistream-select and
 * sends its answer: true once it is DONE (the bytes it read are gone from
 * hc->pre), false while it needs more or after failing the connection.
 */
static bool mss_sec_in(rp_hconn *hc)
{
    ringp2p_errinfo ei;
    ssize_t n = rp_mss_recv(&hc->mss, hc->pre, hc->pre_len, &ei);
    rp_timer_cancel(&hc->hdr_timer); /* the header leaves with this answer */
    mss_sec_out(hc);
    if (n < 0) {
        /* a listener's last answers ("na" to a lazy proposal) go out before its FIN */
        hc->fail_fin = hc->inbound;
        if (n == RINGP2P_ENEGOTIATION) {
            ringp2p_errinfo e2 = { RINGP2P_ENEGOTIATION, "" };
            snprintf(e2.msg, sizeof(e2.msg), "no common security protocol: %.200s", ei.msg);
            conn_fail(hc, (int)n, &e2);
        } else {
            conn_fail(hc, (int)n, &ei);
        }
        return false;
    }
    memmove(hc->pre, hc->pre + n, hc->pre_len - (size_t)n);
    hc->pre_len -= (size_t)n;
    return rp_mss_status(&hc->mss) == RP_MSS_DONE;
}

static void pre_process(rp_hconn *hc)
{
    ringp2p_errinfo ei;
    if (hc->phase == HC_MSS_SEC) {
        if (!mss_sec_in(hc)) return;
        start_security(hc, rp_mss_protocol_index(&hc->mss));
        if (hc->phase != HC_SECURE) return;
    } else if (hc->phase == HC_SECURE && hc->sec_lazy && hc->pre_len > 0) {
        /* the listener's header and echo come first: they must agree before its handshake */
        if (!mss_sec_in(hc)) return;
        hc->sec_lazy = false;
    }
    if (hc->phase == HC_SECURE) {
        /* the largest noise handshake frame; a longer TLS flight stays queued for the next turn */
        uint8_t out[RP_NOISE_FRAME_MAX];
        uint8_t *src = hc->pre, *end = hc->pre + hc->pre_len;
        int r;
        for (;;) {
            uint8_t *before = src;
            rp_wbuf w = rp_wbuf_make(out, sizeof(out));
            r = hc->sec->handshake(hc->sess, &src, end, &w, &ei);
            if (r < 0) {
                /* TLS leaves the alert that tells the peer why: try to send it */
                if (w.len > 0 && hc->c != NULL) (void)rp_conn_send(hc->c, out, w.len);
                conn_fail(hc, r, &ei);
                return;
            }
            send_plain(hc, out, w.len);
            if (hc->phase == HC_DEAD) return;
            if (r == RP_HSEC_DONE || (src == before && w.len == 0)) break;
        }
        if (r == RP_HSEC_DONE) send_pending(hc);
        if (hc->phase == HC_DEAD) return;
        size_t used = (size_t)(src - hc->pre);
        memmove(hc->pre, src, hc->pre_len - used);
        hc->pre_len -= used;
        if (r != RP_HSEC_DONE) return;
        hc->info.peer = *hc->sec->remote_peer(hc->sess);
        const char *mux = hc->sec->muxer(hc->sess);
        if (mux != NULL) {
            hc->info.muxer = mux;
            start_muxer(hc);
        } else {
            if (hc->hs->node->cfg.nmux == 0) {
                fail_msg(hc, RINGP2P_ENEGOTIATION, "no stream muxer configured");
                return;
            }
            int ir = hc->inbound ? rp_mss_init_listener(&hc->mss, hc->hs->node->cfg.muxers,
                                                        hc->hs->node->cfg.nmux, NULL, NULL, &ei)
                                 : rp_mss_init_dialer(&hc->mss, hc->hs->node->cfg.muxers,
                                                      hc->hs->node->cfg.nmux, 0, &ei);
            if (ir < 0) {
                conn_fail(hc, ir, &ei);
                return;
            }
            hc->phase = HC_MSS_MUX;
            size_t ol;
            uint8_t *o = mss_take(&hc->mss, &ol);
            if (o != NULL) {
                rp_iov v = rp_iov_make(o, ol);
                send_sealed(hc, &v, 1);
                free(o);
            }
        }
        if (hc->phase == HC_DEAD) return;
        /* What follows the handshake is transport messages. */
        uint8_t *rest = hc->pre;
        size_t rl = hc->pre_len;
        hc->pre = NULL;
        hc->pre_len = 0;
        if (rl > 0) encrypted_in(hc, NULL, rest, rl);
        free(rest);
    }
}

/* ---- connection lifecycle ----------------------------------------------------------------- */

/*
 * The muxer named by hc->info.muxer (early negotiation or multistream-select
 * chose it from the node's list): its session, then the connection is ready.
 */
static void start_muxer(rp_hconn *hc)
{
    ringp2p_node *n = hc->hs->node;
    if (hc->probe) {
        /* AutoNAT dial-back: secured and the peer checked; report it, then close (node.c) */
        rp_hopen *o = hc->waiting;
        hc->waiting = hc->waiting_tail = NULL;
        if (o != NULL && o->fn != NULL) o->fn(n, NULL, 0, NULL, o->ctx);
        if (o != NULL) o->fn = NULL;
        rp_hopen_free(o);
        hc->closing = true;
        conn_fail(hc, RINGP2P_ECLOSED, NULL);
        return;
    }
    const rp_hmux_ops *mux = rp_hmux_by_id(hc->info.muxer);
    if (mux == NULL) {
        ringp2p_errinfo ei = { RINGP2P_ENEGOTIATION, "" };
        snprintf(ei.msg, sizeof(ei.msg), "negotiated muxer \"%.100s\" is not supported",
                 hc->info.muxer != NULL ? hc->info.muxer : "(none)");
        conn_fail(hc, RINGP2P_ENEGOTIATION, &ei);
        return;
    }
    hc->mux = mux;
    int r = mux->new_session(n, !hc->inbound, now_of(hc), &hc->mx);
    if (r < 0) {
        conn_fail(hc, r, NULL);
        return;
    }
    hc->info.muxer = mux->id; /* static: outlives the security session */
    hc->phase = HC_READY;
    rp_timer_cancel(&hc->deadline);
    rp_host_dir_add(n, &hc->info.peer, hc->hs->idx, hc->id, hc->info.relayed);
    hc->dir_added = true;
    hc->connected_emitted = true;
    hc->busy++;
    rp_host_emit(n, RINGP2P_EVENT_CONNECTED, &hc->info, 0, NULL);
    hc->busy--;
    if (hc->phase != HC_READY) return;
    run_waiting(hc);
    if (hc->phase != HC_READY) return;
    rp_host_identify_start(n, hc);
    conn_mark_dirty(hc);
}

static void conn_fail(rp_hconn *hc, int err, const ringp2p_errinfo *ei)
{
    if (hc->phase == HC_DEAD) return;
    hc->phase = HC_DEAD;
    hc->fail_err = err;
    if (ei != NULL) {
        hc->fail_ei = *ei;
    } else {
        hc->fail_ei.code = err;
        snprintf(hc->fail_ei.msg, sizeof(hc->fail_ei.msg), "%s", ringp2p_strerror(err));
    }
    rp_timer_cancel(&hc->deadline);
    rp_timer_cancel(&hc->mtimer);
    /* the backlog waits for hconn_free: an on_data may be reading it right now */
    rp_timer_cancel(&hc->btimer);
    flush_list_remove(hc);
    hc->busy++;
    rp_hopen *list = hc->waiting;
    hc->waiting = hc->waiting_tail = NULL;
    while (list != NULL) {
        rp_hopen *o = list;
        list = o->next;
        rp_hopen_fail(o, err, &hc->fail_ei);
    }
    while (hc->streams != NULL) stream_finish(hc->streams, err, &hc->fail_ei);
    hc->busy--;
    if (hc->c != NULL) {
        if ((err == RINGP2P_ECLOSED && hc->closing) || hc->fail_fin) {
            /* the channel's own goodbye (TLS close_notify) goes last, before the FIN */
            if (hc->sess != NULL && hc->sec->close_write != NULL) {
                hc->sec->close_write(hc->sess);
                send_pending(hc);
            }
            rp_conn_close(hc->c);
        } else {
            rp_conn_abort(hc->c);
        }
    }
}

static void hconn_free(rp_hconn *hc)
{
    rp_hshard *hs = hc->hs;
    flush_list_remove(hc);
    rp_timer_cancel(&hc->deadline);
    rp_timer_cancel(&hc->mtimer);
    rp_timer_cancel(&hc->hdr_timer);
    backlog_free(hc);
    if (hc->prev != NULL)
        hc->prev->next = hc->next;
    else if (hs->conns == hc)
        hs->conns = hc->next;
    if (hc->next != NULL) hc->next->prev = hc->prev;
    conn_reap(hc);
    if (hc->mx != NULL) hc->mux->free(hc->mx);
    if (hc->sess != NULL) hc->sec->free(hc->sess);
    free(hc->pre);
    free(hc->rx);
    free(hc->agent);
    rp_identify_peer_free(hc->idp);
    uncount(hc);
    ringp2p_multiaddr_free(hc->remote_ma);
    ringp2p_multiaddr_free(hc->local_ma);
    free(hc);
}

static void on_conn_data(rp_conn *c, void *arg, rp_rbuf *buf, const uint8_t *data, size_t len)
{
    rp_hconn *hc = arg;
    if (hc->phase == HC_DEAD) return;
    hc->busy++;
    if (hc->phase < HC_MSS_MUX) {
        if (hc->pre_len + len > RP_HOST_PRE_MAX) {
            fail_msg(hc, RINGP2P_EPROTOCOL, "upgrade data exceeds the buffer");
        } else {
            memcpy(hc->pre + hc->pre_len, data, len);
            hc->pre_len += len;
            pre_process(hc);
        }
    } else {
        /* The runtime's provided buffers are writable: Noise opens in place. */
        encrypted_in(hc, buf, (uint8_t *)(uintptr_t)data, len);
    }
    hc->busy--;
    conn_reap(hc);
}

static void on_conn_eof(rp_conn *c, void *arg)
{
    rp_hconn *hc = arg;
    if (hc->phase == HC_READY) {
        hc->closing = true;
        hc->fail_fin = true; /* what is queued, our close_notify (TLS), then our FIN */
        fail_msg(hc, RINGP2P_ECONNRESET, "the peer closed the connection");
    } else {
        fail_msg(hc, RINGP2P_ECONNRESET, "the peer closed the connection during the upgrade");
    }
    (void)c;
}

static void on_conn_writable(rp_conn *c, void *arg)
{
    (void)c;
    conn_mark_dirty(arg);
}

static void on_conn_close(rp_conn *c, void *arg, int err)
{
    rp_hconn *hc = arg;
    (void)c;
    uncount(hc); /* before DISCONNECTED: a waiting peer may connect as soon as it is told */
    int why = hc->fail_err != 0 ? hc->fail_err : err;
    if (hc->phase != HC_DEAD) conn_fail(hc, err != 0 ? err : RINGP2P_ECLOSED, NULL);
    hc->c = NULL;
    ringp2p_node *n = hc->hs->node;
    if (hc->dir_added) rp_host_dir_remove(n, hc->id);
    /* the peer's observations of us stand while some connection to it does */
    if (hc->idp != NULL && !rp_host_dir_has(n, &hc->info.peer))
        rp_host_observer_gone(hc->hs, &hc->info.peer);
    if (hc->connected_emitted)
        rp_host_emit(n, RINGP2P_EVENT_DISCONNECTED, &hc->info,
                     why == RINGP2P_ECLOSED || why == RINGP2P_ECONNRESET ? 0 : why, NULL);
    hconn_free(hc);
}

static const rp_conn_cbs conn_cbs = {
    .on_data = on_conn_data,
    .on_eof = on_conn_eof,
    .on_writable = on_conn_writable,
    .on_close = on_conn_close,
};

static void deadline_fired(rp_timer *t, void *arg)
{
    rp_hconn *hc = arg;
    (void)t;
    ringp2p_errinfo ei = { RINGP2P_ETIMEDOUT, "" };
    snprintf(ei.msg, sizeof(ei.msg), "timed out: the connection upgrade did not finish in %llu ms",
             (unsigned long long)rp_host_limit(hc->hs->node, RINGP2P_LIMIT_DIAL_TIMEOUT_MS));
    hc->busy++;
    conn_fail(hc, RINGP2P_ETIMEDOUT, &ei);
    hc->busy--;
    conn_reap(hc);
}

static void mtimer_fired(rp_timer *t, void *arg)
{
    rp_hconn *hc = arg;
    (void)t;
    if (hc->phase != HC_READY) return;
    hc->mux->on_timeout(hc->mx, now_of(hc));
    hc->busy++;
    mux_events(hc, NULL);
    hc->busy--;
    conn_mark_dirty(hc);
    conn_reap(hc);
}

/* The connection no longer counts towards RINGP2P_LIMIT_CONNECTIONS (idempotent). */
static void uncount(rp_hconn *hc)
{
    if (!hc->counted) return;
    hc->counted = false;
    atomic_fetch_sub(&hc->hs->node->nconns, 1);
}

static rp_hconn *hconn_new(rp_hshard *hs, bool inbound)
{
    rp_hconn *hc = calloc(1, sizeof(*hc));
    if (hc == NULL) return NULL;
    hc->pre = malloc(RP_HOST_PRE_MAX);
    if (hc->pre == NULL) {
        free(hc);
        return NULL;
    }
    hc->hs = hs;
    hc->counted = true; /* the caller counted it */
    hc->inbound = inbound;
    hc->info.inbound = inbound;
    hc->info.shard = hs->idx;
    rp_timer_init(&hc->deadline, deadline_fired, hc);
    rp_timer_init(&hc->mtimer, mtimer_fired, hc);
    rp_timer_init(&hc->btimer, btimer_fired, hc);
    rp_timer_init(&hc->hdr_timer, hdr_fired, hc);
    hc->next = hs->conns;
    if (hs->conns != NULL) hs->conns->prev = hc;
    hs->conns = hc;
    return hc;
}

/* Multistream output of the security negotiation not sent yet (the listener's header). */
static void mss_sec_out(rp_hconn *hc)
{
    size_t ol;
    uint8_t *o = mss_take(&hc->mss, &ol);
    if (o != NULL) {
        send_plain(hc, o, ol);
        free(o);
    }
}

static void hdr_fired(rp_timer *t, void *arg)
{
    rp_hconn *hc = arg;
    (void)t;
    if (hc->phase == HC_MSS_SEC) mss_sec_out(hc);
}

/* The socket is up: fill the info, start multistream for the security protocol. */
static int conn_begin(rp_hconn *hc, rp_conn *c)
{
    rp_hshard *hs = hc->hs;
    hc->c = c;
    hc->id = rp_conn_id(c);
    hc->info.id = hc->id;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (rp_conn_peer_addr(c, &ss, &sl) == 0) {
        ssize_t n =
            rp_tcp_maddr((struct sockaddr *)&ss, sl, hc->remote_bin, sizeof(hc->remote_bin));
        if (n > 0) {
            hc->remote_bin_len = (size_t)n;
            ringp2p_multiaddr_from_bytes(hc->remote_bin, (size_t)n, &hc->remote_ma, NULL);
        }
    }
    sl = sizeof(ss);
    if (rp_conn_local_addr(c, &ss, &sl) == 0) {
        ssize_t n = rp_tcp_maddr((struct sockaddr *)&ss, sl, hc->local_bin, sizeof(hc->local_bin));
        if (n > 0) {
            hc->local_bin_len = (size_t)n;
            ringp2p_multiaddr_from_bytes(hc->local_bin, (size_t)n, &hc->local_ma, NULL);
        }
    }
    hc->info.remote_addr = hc->remote_ma;
    hc->info.local_addr = hc->local_ma;
    /* an accepted connection from where we are hole-punching to, as DCUtR's client (A) */
    if (hc->inbound && !hc->punch && !hc->info.relayed && hs->node->dcutr != NULL &&
        rp_dcutr_svc_accept_as_client(hs->node, hc->remote_bin, hc->remote_bin_len))
        hc->inbound = hc->info.inbound = false;
    hc->phase = HC_MSS_SEC;
    /* Only what this node configured is proposed or accepted, in its preference order. */
    size_t nsec = hs->node->cfg.nsec;
    for (size_t i = 0; i < nsec; i++) hc->sec_protos[i] = hs->node->cfg.sec[i]->id;
    /* One protocol to offer (and no hole punch, where both ends may dial): a lazy proposal. */
    bool lazy = !hc->inbound && !hc->punch && nsec == 1;
    int r = hc->inbound
                ? rp_mss_init_listener(&hc->mss, hc->sec_protos, nsec, NULL, NULL, NULL)
                : rp_mss_init_dialer(&hc->mss, hc->sec_protos, nsec, lazy ? RP_MSS_LAZY : 0, NULL);
    rp_conn_set_cbs(c, &conn_cbs, hc);
    if (r < 0) return r;
    uint64_t to = rp_host_limit(hs->node, RINGP2P_LIMIT_DIAL_TIMEOUT_MS) * 1000000ull;
    rp_timer_arm(rp_shard_timers(hs->sh), &hc->deadline,
                 hc->probe ? hc->probe_deadline : rp_shard_now(hs->sh) + to);
    if (hc->inbound) { /* fires on the next turn, after its completions (hdr_timer) */
        rp_timer_arm(rp_shard_timers(hs->sh), &hc->hdr_timer, rp_shard_now(hs->sh) + 1);
        return 0;
    }
    mss_sec_out(hc);
    if (lazy) {
        /* the first handshake message leaves with the proposal */
        hc->sec_lazy = true;
        start_security(hc, 0);
        if (hc->phase == HC_SECURE) pre_process(hc);
    }
    return 0;
}

int rp_hconn_accept(rp_hshard *hs, rp_conn *c)
{
    if (hs->stopping) {
        rp_conn_abort(c);
        return RINGP2P_ECLOSED;
    }
    /* Refused before any work (no buffers, no handshake): a reset the peer sees at once. */
    ringp2p_node *n = hs->node;
    uint64_t limit = rp_host_limit(n, RINGP2P_LIMIT_CONNECTIONS);
    uint_fast64_t cur = atomic_load(&n->nconns);
    /* reserve a slot: shards accept concurrently, and a plain check could let both through */
    while (cur < limit && !atomic_compare_exchange_weak(&n->nconns, &cur, cur + 1)) {
    }
    if (cur >= limit) {
        uint64_t k = atomic_fetch_add(&n->conns_refused, 1) + 1;
        /* the first refusal and then every 1024th, not one line per connection in a flood */
        if ((k & 1023) == 1)
            rp_logf(&n->log, RINGP2P_LOG_WARN, "host",
                    "inbound connection refused: %llu connections is the limit (%llu refused)",
                    (unsigned long long)limit, (unsigned long long)k);
        rp_conn_abort(c);
        return RINGP2P_ELIMIT;
    }
    rp_hconn *hc = hconn_new(hs, true);
    if (hc == NULL) {
        atomic_fetch_sub(&n->nconns, 1);
        rp_conn_abort(c);
        return RINGP2P_ENOMEM;
    }
    int r = conn_begin(hc, c);
    if (r < 0) conn_fail(hc, r, NULL);
    return r;
}

/* A new outbound connection for o: the peer it expects, and o first on its waiting list. */
static void hconn_expect(rp_hconn *hc, rp_hopen *o)
{
    hc->has_expect = o->has_peer;
    hc->expect = o->peer;
    hc->info.peer = o->peer;
    waiting_push(hc, o);
}

static void dial_done(rp_shard *sh, void *arg, rp_conn *c, int err)
{
    rp_hconn *hc = arg;
    (void)sh;
    if (err == RINGP2P_EADDRINUSE && hc->bound && !hc->punch && hc->waiting != NULL &&
        !hc->hs->stopping) {
        /* the address pair is taken (a connection between the same two ports exists, or
         * lingers in TIME_WAIT): an ephemeral port, as go-reuseport-transport falls back */
        hc->bound = false;
        rp_hopen *o = hc->waiting;
        uint64_t now = rp_shard_now(hc->hs->sh);
        uint64_t to = hc->probe
                          ? (hc->probe_deadline > now ? hc->probe_deadline - now : 1)
                          : rp_host_limit(hc->hs->node, RINGP2P_LIMIT_DIAL_TIMEOUT_MS) * 1000000ull;
        ringp2p_errinfo e2;
        if (rp_tcp_dial(hc->hs->sh, o->addr, o->addr_len, NULL, 0, to, dial_done, hc, &e2) == 0)
            return;
    }
    if (err < 0) {
        ringp2p_errinfo ei = { err, "" };
        const char *what = err == RINGP2P_ECONNREFUSED ? "connection refused"
                           : err == RINGP2P_ETIMEDOUT  ? "timed out connecting"
                                                       : ringp2p_strerror(err);
        snprintf(ei.msg, sizeof(ei.msg), "dial failed: %s", what);
        hc->phase = HC_DIALING;
        hc->busy++;
        conn_fail(hc, err, &ei);
        hc->busy--;
        hconn_free(hc);
        return;
    }
    if (hc->hs->stopping || hc->phase == HC_DEAD) {
        /* stopping, or hung up on while dialing (its requests have heard why) */
        rp_conn_abort(c);
        hc->phase = HC_DIALING;
        conn_fail(hc, RINGP2P_ECLOSED, NULL);
        hconn_free(hc);
        return;
    }
    int r = conn_begin(hc, c);
    if (r < 0) conn_fail(hc, r, NULL);
}

int rp_hconn_dial(rp_hshard *hs, rp_hopen *o)
{
    atomic_fetch_add(&hs->node->nconns, 1); /* dials count but are never refused */
    rp_hconn *hc = hconn_new(hs, false);
    if (hc == NULL) {
        atomic_fetch_sub(&hs->node->nconns, 1);
        rp_hopen_fail(o, RINGP2P_ENOMEM, NULL);
        return RINGP2P_ENOMEM;
    }
    hconn_expect(hc, o);
    ringp2p_errinfo ei;
    uint64_t to = rp_host_limit(hs->node, RINGP2P_LIMIT_DIAL_TIMEOUT_MS) * 1000000ull;
    if ((hc->probe = o->probe)) {
        to = o->probe_timeout_ns;
        hc->probe_deadline = rp_shard_now(hs->sh) + to;
    }
    if ((hc->punch = o->punch)) /* DCUtR's role for the upgrade; go marks the direction so too */
        hc->inbound = hc->info.inbound = !o->punch_client;
    /*
     * From the listen port (go's reuseport): what peers observe is where a punch comes
     * from. Not an AutoNAT dial-back: go makes those from a separate host with no listener.
     */
    uint8_t local[RP_TCP_MADDR_MAX];
    size_t llen = o->probe ? 0 : rp_host_dial_local(hs->node, o->addr, o->addr_len, local);
    hc->bound = llen > 0;
    int r = rp_tcp_dial(hs->sh, o->addr, o->addr_len, hc->bound ? local : NULL, llen, to, dial_done,
                        hc, &ei);
    if (r < 0 && hc->bound && !hc->punch) {
        hc->bound = false;
        r = rp_tcp_dial(hs->sh, o->addr, o->addr_len, NULL, 0, to, dial_done, hc, &ei);
    }
    if (r < 0) {
        hc->busy++;
        conn_fail(hc, r, &ei);
        hc->busy--;
        hconn_free(hc);
    }
    return r;
}

/*
 * An existing connection (in any phase but dead) to `peer` on this shard, for
 * reuse. A direct connection is preferred to a relayed one, a ready one to
 * one still upgrading; relayed ones only if allow_relayed.
 */
rp_hconn *rp_hshard_find_peer(rp_hshard *hs, const ringp2p_peer_id *peer, bool allow_relayed)
{
    rp_hconn *best = NULL;
    int best_rank =
        0; /* 4 ready direct, 3 ready relayed, 2 upgrading direct, 1 upgrading relayed */
    for (rp_hconn *hc = hs->conns; hc != NULL; hc = hc->next) {
        if (hc->phase == HC_DEAD || hc->closing || hc->probe || hc->close_idle) continue;
        if (hc->punch && hc->phase != HC_READY) continue; /* may never connect */
        if (hc->info.relayed && !allow_relayed) continue;
        int rank = 0;
        if (hc->phase == HC_READY && ringp2p_peer_id_equal(&hc->info.peer, peer))
            rank = hc->info.relayed ? 3 : 4;
        else if (hc->phase != HC_READY && hc->has_expect &&
                 ringp2p_peer_id_equal(&hc->expect, peer))
            rank = hc->info.relayed ? 1 : 2;
        if (rank > best_rank) {
            best = hc;
            best_rank = rank;
        }
    }
    return best;
}

/*
 * Closes hc, for a node stop or a hang-up: a ready connection says go-away, resets its
 * streams and flushes that before its graceful close; one still dialing or
 * upgrading is aborted (dial_done drops a socket that connects afterwards).
 * Streams, opens and waiting requests hear RINGP2P_ECLOSED with `ei`. The
 * go-away and the resets are sent even when the send queue is past its high
 * watermark (the resets dropped the streams' data, so they are a few
 * frames): else a peer that was being sent bulk data would see its streams
 * end with the connection instead of a reset.
 */
static void conn_hangup(rp_hconn *hc, const ringp2p_errinfo *ei)
{
    rp_logf(&hc->hs->node->log, RINGP2P_LOG_DEBUG, "host", "connection %llu: %s",
            (unsigned long long)hc->id, ei->msg);
    hc->busy++;
    if (hc->phase == HC_READY) {
        hc->mux->go_away(hc->mx);
        while (hc->streams != NULL) stream_finish(hc->streams, RINGP2P_ECLOSED, ei);
        hc->goodbye = true;
        conn_flush(hc);
        hc->closing = true;
    }
    conn_fail(hc, RINGP2P_ECLOSED, ei);
    hc->busy--;
    conn_reap(hc);
}

void rp_hshard_close_all(rp_hshard *hs)
{
    hs->stopping = true;
    const ringp2p_errinfo ei = { RINGP2P_ECLOSED, "the node is stopping" };
    for (rp_hconn *hc = hs->conns; hc != NULL; hc = hc->next)
        if (hc->phase != HC_DEAD) conn_hangup(hc, &ei);
}

/* ---- hanging up (ringp2p_node_hangup) ----------------------------------------------------- */

/*
 * Shard hs. Every live connection to `peer`: ready (its secured peer) or on
 * its way (the peer its dial expects; an inbound one is known only once
 * secured). A callback may close or add connections meanwhile, so the search
 * restarts after each one; each closed one is dead and matches no more.
 */
static void hshard_hangup(rp_hshard *hs, const ringp2p_peer_id *peer)
{
    ringp2p_errinfo ei = { RINGP2P_ECLOSED, "" };
    char txt[RINGP2P_PEER_ID_STR_MAX];
    rp_host_peer_text(peer, txt, sizeof(txt));
    snprintf(ei.msg, sizeof(ei.msg), "hung up on %s (ringp2p_node_hangup)", txt);
    for (;;) {
        rp_hconn *hc = hs->conns;
        while (hc != NULL && (hc->phase == HC_DEAD || !ringp2p_peer_id_equal(&hc->info.peer, peer)))
            hc = hc->next;
        if (hc == NULL) return;
        conn_hangup(hc, &ei);
    }
}

/* A go-away on each of hs's ready connections to `peer`, nothing else (the test hook). */
static void hshard_go_away(rp_hshard *hs, const ringp2p_peer_id *peer)
{
    for (rp_hconn *hc = hs->conns; hc != NULL; hc = hc->next) {
        if (hc->phase != HC_READY || !ringp2p_peer_id_equal(&hc->info.peer, peer)) continue;
        hc->mux->go_away(hc->mx);
        conn_mark_dirty(hc);
    }
}

typedef struct peer_task {
    ringp2p_node *node;
    ringp2p_peer_id peer;
    void (*fn)(rp_hshard *hs, const ringp2p_peer_id *peer);
} peer_task;

static void peer_task_run(rp_shard *sh, void *arg)
{
    peer_task *a = arg;
    rp_hshard *hs = a->node->shards[rp_shard_id(sh)];
    if (!hs->stopping) a->fn(hs, &a->peer);
    free(a);
}

/*
 * Every shard gets the request through its inbox for other threads, the way
 * ringp2p_node_new_stream sends its requests (from shards too): that inbox is
 * FIFO, so each shard hangs up after the requests posted before and before
 * those posted after. Any shard may hold a connection to the peer (the
 * directory knows only ready ones, and relayed connections live on their
 * relay connection's shard), so all are asked.
 */
static int each_shard(ringp2p_node *n, const ringp2p_peer_id *peer,
                      void (*fn)(rp_hshard *hs, const ringp2p_peer_id *peer))
{
    if (n == NULL || peer == NULL || peer->len == 0 || peer->len > RINGP2P_PEER_ID_MAX)
        return RINGP2P_EINVAL;
    if (!atomic_load(&n->started) || n->rt == NULL || atomic_load(&n->stopped))
        return RINGP2P_ECLOSED;
    int r = 0;
    for (unsigned i = 0; i < n->nshards && r == 0; i++) {
        peer_task *a = malloc(sizeof(*a));
        if (a == NULL) return RINGP2P_ENOMEM;
        a->node = n;
        a->peer = *peer;
        a->fn = fn;
        r = rp_host_post_retry(n, i, peer_task_run, a);
        if (r != 0) free(a);
    }
    return r;
}

RINGP2P_API int ringp2p_node_hangup(ringp2p_node *n, const ringp2p_peer_id *peer)
{
    return each_shard(n, peer, hshard_hangup);
}

int rp_host_test_go_away(ringp2p_node *n, const ringp2p_peer_id *peer)
{
    return each_shard(n, peer, hshard_go_away);
}

void rp_hshard_push_identify(rp_hshard *hs)
{
    for (rp_hconn *hc = hs->conns; hc != NULL; hc = hc->next)
        if (rp_hconn_takes_streams(hc)) rp_host_push_start(hs->node, hc);
}

/* The remote address of hc, binary (for identify's observed address). */
const uint8_t *rp_hconn_remote_bin(const rp_hconn *hc, size_t *len)
{
    /* a relayed connection's circuit address outgrows remote_bin */
    if (hc->info.relayed) {
        *len = 0;
        return hc->remote_ma != NULL ? ringp2p_multiaddr_bytes(hc->remote_ma, len) : NULL;
    }
    *len = hc->remote_bin_len;
    return hc->remote_bin_len > 0 ? hc->remote_bin : NULL;
}

/*
 * A connection carried by something other than a socket of ours (relay_client.c:
 * a circuit relay stream, through a socketpair): `c` on hs goes through the
 * usual pipeline, outbound for the open request `o` (its peer expected) or
 * inbound when o is NULL. Its info says relayed (and limited), and its remote
 * address is `remote` (binary, copied).
 */
int rp_hconn_adopt(rp_hshard *hs, rp_conn *c, rp_hopen *o, const uint8_t *remote, size_t rlen,
                   bool limited)
{
    ringp2p_node *n = hs->node;
    if (hs->stopping) {
        rp_conn_abort(c);
        if (o != NULL) rp_hopen_fail(o, RINGP2P_ECLOSED, NULL);
        return RINGP2P_ECLOSED;
    }
    atomic_fetch_add(&n->nconns, 1); /* counted, never refused: the relay stream already exists */
    rp_hconn *hc = hconn_new(hs, o == NULL);
    if (hc == NULL) {
        atomic_fetch_sub(&n->nconns, 1);
        rp_conn_abort(c);
        if (o != NULL) rp_hopen_fail(o, RINGP2P_ENOMEM, NULL);
        return RINGP2P_ENOMEM;
    }
    if (o != NULL) hconn_expect(hc, o);
    hc->info.relayed = true;
    hc->info.limited = limited;
    if (ringp2p_multiaddr_from_bytes(remote, rlen, &hc->remote_ma, NULL) < 0) hc->remote_ma = NULL;
    int r = conn_begin(hc, c); /* a socketpair has no TCP address: remote_ma stays ours */
    hc->info.remote_addr = hc->remote_ma;
    if (r < 0) {
        hc->busy++;
        conn_fail(hc, r, NULL);
        hc->busy--;
        conn_reap(hc);
    }
    return r;
}

void rp_hconn_abort_id(rp_hshard *hs, uint64_t id, int err, const ringp2p_errinfo *ei)
{
    rp_hconn *hc = rp_hconn_find(hs, id);
    if (hc == NULL) return;
    hc->busy++;
    conn_fail(hc, err, ei);
    hc->busy--;
    conn_reap(hc);
}

/*
 * Idle: no stream on the live list (negotiating or open; a finished one is on the dead
 * list) and no request waiting. The check runs from a posted message, never inside a
 * stream callback, and closes as a node stop does: go-away, flush, graceful close.
 */
typedef struct idle_msg {
    rp_hshard *hs;
    uint64_t id;
} idle_msg;

static void idle_task(rp_shard *sh, void *arg)
{
    idle_msg *m = arg;
    (void)sh;
    rp_hconn *hc = rp_hconn_find(m->hs, m->id);
    free(m);
    if (hc == NULL) return;
    hc->idle_posted = false;
    if (hc->phase != HC_READY || hc->streams != NULL || hc->waiting != NULL) return;
    static const ringp2p_errinfo idle = { RINGP2P_ECLOSED, "idle, closed" };
    conn_hangup(hc, &idle);
}

static void idle_check(rp_hconn *hc)
{
    if (!hc->close_idle || hc->idle_posted || hc->phase != HC_READY || hc->streams != NULL ||
        hc->waiting != NULL)
        return;
    idle_msg *m = malloc(sizeof(*m));
    if (m == NULL) return; /* the next stream to finish tries again */
    m->hs = hc->hs;
    m->id = hc->id;
    if (rp_shard_post(hc->hs->sh, hc->hs->idx, idle_task, m) != 0)
        free(m);
    else
        hc->idle_posted = true;
}

bool rp_hconn_takes_streams(const rp_hconn *hc)
{
    return hc->phase == HC_READY && !hc->closing && !hc->close_idle && !hc->probe;
}

void rp_hconn_close_when_idle(rp_hshard *hs, uint64_t id)
{
    rp_hconn *hc = rp_hconn_find(hs, id);
    if (hc == NULL || hc->close_idle) return;
    hc->close_idle = true;
    idle_check(hc);
}
