/*
 * One libp2p connection on its shard: the upgrade pipeline, the encrypted
 * datapath and the streams (see host.h for the shape).
 *
 * Lifetimes: an rp_hconn lives from the dial (or accept) until the runtime's
 * on_close for its socket (or the dial failure); streams live from their
 * yamux open until reaped after on_close. Nothing is freed while a callback
 * into the application may be on the stack: finished streams move to a dead
 * list reaped at the top level of each entry point, and connections are only
 * freed from the runtime's on_close, which runs outside every other callback.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
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
    rp_yamux_stream *ys;
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
    rp_yamux *ymx;
    uint8_t *pre;
    size_t pre_len;
    uint8_t *rx;
    size_t rx_len;
    rp_timer deadline, ytimer;
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
static void start_yamux(rp_hconn *hc);
static void fail_msg(rp_hconn *hc, int err, const char *detail);

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

static void send_sealed(rp_hconn *hc, const rp_iov *iov, size_t n)
{
    size_t total = rp_iov_total(iov, n);
    if (total == 0 || hc->c == NULL) return;
    size_t cap = hc->sec->sealed_len(total);
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

/* Seals every pending yamux frame of hc, then lets streams refill. */
static void conn_flush(rp_hconn *hc)
{
    if (hc->phase != HC_READY || hc->ymx == NULL || hc->c == NULL) return;
    rp_hshard *hs = hc->hs;
    hc->busy++;
    for (int round = 0; round < 64 && hc->phase == HC_READY; round++) {
        while (rp_yamux_want_send(hc->ymx) && rp_conn_writable(hc->c)) {
            rp_yamux_out out = { .hdr = hs->hdr,
                                 .hdr_cap = sizeof(hs->hdr),
                                 .iov = hs->iov,
                                 .iov_cap = RP_HOST_SEAL_IOV,
                                 .max_bytes = RP_HOST_SEAL_BATCH };
            ssize_t n = rp_yamux_send(hc->ymx, &out, now_of(hc));
            if (n <= 0) break;
            send_sealed(hc, out.iov, out.niov);
            if (hc->phase != HC_READY) break;
        }
        if (hc->phase != HC_READY) break;
        /* What was sealed is copied: free emitted chunks, feed more, tell writers. */
        bool more = false;
        for (ringp2p_stream *s = hc->streams; s != NULL; s = s->next) {
            if (s->finished || s->ys == NULL) continue;
            uint64_t emitted = rp_yamux_stream_emitted(s->ys);
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
            if (s->ys == NULL) continue;
            uint64_t queued = s->w_total - rp_yamux_stream_emitted(s->ys);
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
        if (hc->phase == HC_READY && rp_yamux_want_send(hc->ymx) && rp_conn_writable(hc->c))
            more = true;
        if (!more) break;
    }
    if (hc->phase == HC_READY && hc->ymx != NULL) {
        uint64_t t = rp_yamux_next_timeout(hc->ymx);
        if (t != UINT64_MAX &&
            (!rp_timer_armed(&hc->ytimer) || rp_timer_deadline(&hc->ytimer) != t))
            rp_timer_arm(rp_shard_timers(hs->sh), &hc->ytimer, t);
    }
    hc->busy--;
}

static void flush_task(rp_shard *sh, void *arg)
{
    rp_hshard *hs = arg;
    (void)sh;
    hs->flush_posted = false;
    rp_hconn *list = hs->flush_list;
    hs->flush_list = NULL;
    while (list != NULL) {
        rp_hconn *hc = list;
        list = hc->flush_next;
        hc->flush_queued = false;
        hc->flush_next = NULL;
        conn_flush(hc);
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
    if (!hs->flush_posted) {
        if (rp_shard_post(hs->sh, hs->idx, flush_task, hs) == 0)
            hs->flush_posted = true;
        else
            flush_task(hs->sh, hs); /* no memory for the message: flush now */
    }
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

/* Gives yamux as much of the stream's chunks as the window takes; FIN once all is fed. */
static void stream_feed(ringp2p_stream *s)
{
    if (s->ys == NULL || s->finished) return;
    bool gave = false;
    for (wchunk *w = s->whead; w != NULL; w = w->next) {
        if (w->fed == w->len) continue;
        ssize_t n = rp_yamux_stream_write(s->ys, w->data + w->fed, w->len - w->fed);
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
    if (s->write_closed && !s->fin_sent && all_fed) {
        s->fin_sent = true;
        rp_yamux_stream_close(s->ys);
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
    chunk_append(s, b, n, true, NULL, NULL);
    free(b);
    stream_feed(s);
}

static uint64_t stream_queued(const ringp2p_stream *s)
{
    return s->w_total - (s->ys != NULL ? rp_yamux_stream_emitted(s->ys) : s->w_total);
}

static int write_check(ringp2p_stream *s, size_t len)
{
    if (s->finished || s->write_closed || s->ys == NULL || s->state != ST_OPEN)
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
        if (!s->finished && s->ys != NULL) rp_yamux_stream_consumed(s->ys, len, now_of(s->hc));
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

static void stream_queue(ringp2p_stream *s, rp_rbuf *rbuf, const uint8_t *data, size_t len)
{
    rseg *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        stream_finish(s, RINGP2P_ENOMEM, NULL);
        return;
    }
    if (rbuf != NULL) {
        g->rbuf = rp_rbuf_hold(rbuf);
        g->data = data;
    } else {
        g->copy = malloc(len);
        if (g->copy == NULL) {
            free(g);
            stream_finish(s, RINGP2P_ENOMEM, NULL);
            return;
        }
        memcpy(g->copy, data, len);
        g->data = g->copy;
    }
    g->len = len;
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

static void stream_deliver(ringp2p_stream *s, rp_rbuf *rbuf, const uint8_t *data, size_t len)
{
    if (s->finished || s->ys == NULL) return;
    if (s->state == ST_NEG) {
        ringp2p_errinfo ei;
        ssize_t n = rp_mss_recv(s->mss, data, len, &ei);
        stream_mss_out(s);
        if (s->finished) return;
        if (n < 0) {
            stream_finish(s, (int)n, &ei);
            return;
        }
        rp_yamux_stream_consumed(s->ys, (size_t)n, now_of(s->hc));
        if (rp_mss_status(s->mss) != RP_MSS_DONE) return;
        stream_negotiated(s);
        data += n;
        len -= (size_t)n;
        if (len == 0 || s->finished) return;
    }
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
    if (!s->finished && s->ys != NULL) rp_yamux_stream_consumed(s->ys, len, now_of(s->hc));
    if (!s->finished && s->rhead != NULL) stream_drain(s);
}

/* ---- streams: lifecycle ------------------------------------------------------------------- */

static void neg_fired(rp_timer *t, void *arg)
{
    ringp2p_stream *s = arg;
    rp_hconn *hc = s->hc;
    (void)t;
    if (s->finished || s->state != ST_NEG) return;
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
    for (size_t i = 0; i < s->nprotos; i++) free(s->protos[i]);
    free(s->protos);
    free(s->protocol);
    free(s);
}

/*
 * Ends s once: the opener or on_close hears `err`; yamux forgets the stream
 * (reset unless both sides closed). The memory goes at the next reap.
 */
static void stream_finish(ringp2p_stream *s, int err, const ringp2p_errinfo *ei)
{
    if (s->finished) return;
    s->finished = true;
    rp_timer_cancel(&s->neg_timer);
    rp_hconn *hc = s->hc;
    if (s->ys != NULL) {
        if (err != 0) rp_yamux_stream_reset(s->ys);
        rp_yamux_stream_release(s->ys);
        s->ys = NULL;
    }
    if (err != 0) free_chunks(s); /* yamux dropped its references with the reset */
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
    /* unlink from live list into the dead list */
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        hc->streams = s->next;
    if (s->next != NULL) s->next->prev = s->prev;
    s->next = s->prev = NULL;
    s->dead_next = hc->dead;
    hc->dead = s;
    if (hc->phase == HC_READY) conn_mark_dirty(hc);
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

void rp_hconn_open_stream(rp_hconn *hc, rp_hopen *o)
{
    if (hc->phase == HC_DEAD) {
        rp_hopen_fail(o, hc->fail_err != 0 ? hc->fail_err : RINGP2P_ECLOSED,
                      hc->fail_err != 0 ? &hc->fail_ei : NULL);
        return;
    }
    if (hc->phase != HC_READY) {
        o->next = NULL;
        if (hc->waiting_tail != NULL)
            hc->waiting_tail->next = o;
        else
            hc->waiting = o;
        hc->waiting_tail = o;
        return;
    }
    ringp2p_stream *s = stream_new(hc, true);
    if (s == NULL) {
        rp_hopen_fail(o, RINGP2P_ENOMEM, NULL);
        return;
    }
    s->mss = malloc(sizeof(*s->mss));
    rp_yamux_stream *ys = NULL;
    int r = s->mss == NULL ? RINGP2P_ENOMEM : rp_yamux_open(hc->ymx, s, &ys);
    ringp2p_errinfo ei = { 0 };
    if (r == 0)
        r = rp_mss_init_dialer(s->mss, (const char *const *)o->protos, o->nprotos, 0, &ei);
    else
        snprintf(ei.msg, sizeof(ei.msg), "cannot open a yamux stream: %s", ringp2p_strerror(r));
    if (r == RINGP2P_EAGAIN && ys == NULL) {
        /* open backlog full: wait for RP_YAMUX_EV_OPEN_READY */
        s->finished = true;
        if (s->prev != NULL)
            s->prev->next = s->next;
        else
            hc->streams = s->next;
        if (s->next != NULL) s->next->prev = s->prev;
        stream_free(s);
        o->next = NULL;
        if (hc->waiting_tail != NULL)
            hc->waiting_tail->next = o;
        else
            hc->waiting = o;
        hc->waiting_tail = o;
        return;
    }
    s->ys = ys;
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
    o->protos = calloc(1, sizeof(char *));
    if (o->protos != NULL) o->protos[0] = strdup(proto);
    if (o->protos == NULL || o->protos[0] == NULL) {
        rp_hopen_free(o);
        return RINGP2P_ENOMEM;
    }
    o->nprotos = 1;
    o->fn = fn;
    o->ctx = ctx;
    rp_hconn_open_stream(hc, o);
    return 0;
}

/* ---- yamux events ------------------------------------------------------------------------- */

static void inbound_stream(rp_hconn *hc, rp_yamux_stream *ys)
{
    ringp2p_stream *s = stream_new(hc, false);
    if (s == NULL) {
        rp_yamux_stream_reset(ys);
        rp_yamux_stream_release(ys);
        return;
    }
    s->ys = ys;
    s->mss = malloc(sizeof(*s->mss));
    s->tbl = rp_htable_ref(hc->hs->handlers);
    if (s->mss == NULL || rp_mss_init_listener(s->mss, (const char *const *)s->tbl->names,
                                               s->tbl->n, NULL, NULL, NULL) != 0) {
        stream_finish(s, RINGP2P_ENOMEM, NULL);
        return;
    }
    rp_yamux_stream_accept(ys, s);
    stream_mss_out(s);
}

static void yamux_events(rp_hconn *hc, rp_rbuf *rbuf)
{
    rp_yamux_event ev;
    while (hc->ymx != NULL && rp_yamux_next_event(hc->ymx, &ev)) {
        ringp2p_stream *s = ev.user;
        switch (ev.type) {
        case RP_YAMUX_EV_STREAM_OPENED: inbound_stream(hc, ev.stream); break;
        case RP_YAMUX_EV_STREAM_DATA:
            if (s == NULL || s->finished)
                rp_yamux_stream_consumed(ev.stream, ev.len, now_of(hc));
            else
                stream_deliver(s, rbuf, ev.data, ev.len);
            break;
        case RP_YAMUX_EV_STREAM_FIN:
            if (s == NULL || s->finished) break;
            s->peer_fin = true;
            if (s->state == ST_NEG) {
                ringp2p_errinfo ei = { RINGP2P_ENEGOTIATION, "" };
                snprintf(ei.msg, sizeof(ei.msg),
                         "no common protocol: the peer closed the stream during "
                         "multistream-select");
                stream_finish(s, RINGP2P_ENEGOTIATION, &ei);
            } else {
                stream_drain(s);
            }
            break;
        case RP_YAMUX_EV_STREAM_RESET:
            if (s != NULL && !s->finished) {
                ringp2p_errinfo ei = { RINGP2P_ESTREAMRESET, "" };
                snprintf(ei.msg, sizeof(ei.msg), "stream reset by the peer");
                stream_finish(s, RINGP2P_ESTREAMRESET, &ei);
            }
            break;
        case RP_YAMUX_EV_STREAM_WRITABLE:
            if (s != NULL && !s->finished) stream_feed(s);
            break;
        case RP_YAMUX_EV_OPEN_READY: run_waiting(hc); break;
        case RP_YAMUX_EV_SESSION_ERROR: {
            ringp2p_errinfo ei = { ev.err, "" };
            snprintf(ei.msg, sizeof(ei.msg), "yamux session ended: %s", ringp2p_strerror(ev.err));
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
        hc->info.muxer = RP_YAMUX_PROTOCOL_ID;
        start_yamux(hc);
        if (hc->phase != HC_READY) return;
        data += n;
        len -= (size_t)n;
    }
    if (hc->phase != HC_READY) return;
    const uint8_t *p = data, *end = data + len;
    while (p < end && hc->phase == HC_READY) {
        ringp2p_errinfo ei;
        int r = rp_yamux_receive(hc->ymx, &p, end, now_of(hc), &ei);
        yamux_events(hc, rbuf);
        if (hc->phase != HC_READY) return;
        if (r == RINGP2P_EAGAIN) {
            conn_flush(hc);
            continue;
        }
        if (r < 0) {
            conn_flush(hc);
            conn_fail(hc, r, &ei);
            return;
        }
    }
    conn_mark_dirty(hc);
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
    ringp2p_errinfo ei;
    if (hc->rx_len > 0) {
        while (hc->rx_len < hl && p < end) hc->rx[hc->rx_len++] = *p++;
        if (hc->rx_len < hl) return;
        /* noise and signed frames alike: u16 big-endian length of what follows */
        size_t flen = hl + ((size_t)hc->rx[0] << 8 | hc->rx[1]);
        size_t take = flen - hc->rx_len;
        if (take > (size_t)(end - p)) take = (size_t)(end - p);
        memcpy(hc->rx + hc->rx_len, p, take);
        p += take;
        hc->rx_len += take;
        if (hc->rx_len < flen) return;
        uint8_t *q = hc->rx;
        rp_iov plain;
        int r = sec->open(hc->sess, &q, hc->rx + hc->rx_len, &plain, &ei);
        hc->rx_len = 0;
        if (r < 0) {
            conn_fail(hc, r, &ei);
            return;
        }
        if (r == 1 && plain.len > 0) plain_in(hc, NULL, plain.base, plain.len);
        if (hc->phase == HC_DEAD) return;
    }
    while (p < end) {
        rp_iov plain;
        int r = sec->open(hc->sess, &p, end, &plain, &ei);
        if (r == 0) break;
        if (r < 0) {
            conn_fail(hc, r, &ei);
            return;
        }
        if (plain.len > 0) plain_in(hc, rbuf, plain.base, plain.len);
        if (hc->phase == HC_DEAD) return;
    }
    if (p < end) {
        if (hl == 0 || (size_t)(end - p) > sec->frame_max) {
            fail_msg(hc, RINGP2P_EPROTOCOL, "security protocol left a partial frame");
            return;
        }
        if (hc->rx == NULL) hc->rx = malloc(sec->frame_max);
        if (hc->rx == NULL) {
            conn_fail(hc, RINGP2P_ENOMEM, NULL);
            return;
        }
        memcpy(hc->rx, p, (size_t)(end - p));
        hc->rx_len = (size_t)(end - p);
    }
}

static void fail_msg(rp_hconn *hc, int err, const char *detail)
{
    ringp2p_errinfo ei = { err, "" };
    snprintf(ei.msg, sizeof(ei.msg), "%s", detail);
    conn_fail(hc, err, &ei);
}

/* multistream-select chose a security protocol: start its session. */
static void start_security(rp_hconn *hc)
{
    int idx = rp_mss_protocol_index(&hc->mss);
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

static void pre_process(rp_hconn *hc)
{
    ringp2p_errinfo ei;
    if (hc->phase == HC_MSS_SEC) {
        ssize_t n = rp_mss_recv(&hc->mss, hc->pre, hc->pre_len, &ei);
        size_t ol;
        uint8_t *o = mss_take(&hc->mss, &ol);
        if (o != NULL) {
            send_plain(hc, o, ol);
            free(o);
        }
        if (n < 0) {
            if (n == RINGP2P_ENEGOTIATION) {
                ringp2p_errinfo e2 = { RINGP2P_ENEGOTIATION, "" };
                snprintf(e2.msg, sizeof(e2.msg), "no common security protocol: %.200s", ei.msg);
                conn_fail(hc, (int)n, &e2);
            } else {
                conn_fail(hc, (int)n, &ei);
            }
            return;
        }
        memmove(hc->pre, hc->pre + n, hc->pre_len - (size_t)n);
        hc->pre_len -= (size_t)n;
        if (rp_mss_status(&hc->mss) != RP_MSS_DONE) return;
        start_security(hc);
        if (hc->phase != HC_SECURE) return;
    }
    if (hc->phase == HC_SECURE) {
        uint8_t out[RP_NOISE_FRAME_MAX]; /* the largest handshake frame of the three */
        uint8_t *src = hc->pre, *end = hc->pre + hc->pre_len;
        int r;
        for (;;) {
            uint8_t *before = src;
            rp_wbuf w = rp_wbuf_make(out, sizeof(out));
            r = hc->sec->handshake(hc->sess, &src, end, &w, &ei);
            if (r < 0) {
                conn_fail(hc, r, &ei);
                return;
            }
            send_plain(hc, out, w.len);
            if (hc->phase == HC_DEAD) return;
            if (r == RP_HSEC_DONE || (src == before && w.len == 0)) break;
        }
        size_t used = (size_t)(src - hc->pre);
        memmove(hc->pre, src, hc->pre_len - used);
        hc->pre_len -= used;
        if (r != RP_HSEC_DONE) return;
        hc->info.peer = *hc->sec->remote_peer(hc->sess);
        const char *mux = hc->sec->muxer(hc->sess);
        if (mux != NULL) {
            hc->info.muxer = mux;
            start_yamux(hc);
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

static void start_yamux(rp_hconn *hc)
{
    ringp2p_node *n = hc->hs->node;
    rp_yamux_config yc;
    rp_yamux_config_default(&yc);
    uint64_t v;
    if ((v = n->cfg.limits[RINGP2P_LIMIT_STREAMS_INBOUND]) != 0)
        yc.max_inbound_streams = (uint32_t)v;
    if ((v = n->cfg.limits[RINGP2P_LIMIT_STREAMS_UNACKED]) != 0) yc.accept_backlog = (uint32_t)v;
    if ((v = n->cfg.limits[RINGP2P_LIMIT_STREAM_WINDOW_MAX]) != 0 && v >= yc.initial_window)
        yc.max_window = (uint32_t)v;
    int r = rp_yamux_new(&yc, !hc->inbound, now_of(hc), &hc->ymx);
    if (r < 0) {
        conn_fail(hc, r, NULL);
        return;
    }
    hc->phase = HC_READY;
    if (hc->info.muxer == NULL) hc->info.muxer = RP_YAMUX_PROTOCOL_ID;
    rp_timer_cancel(&hc->deadline);
    rp_host_dir_add(n, &hc->info.peer, hc->hs->idx, hc->id);
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
    rp_timer_cancel(&hc->ytimer);
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
        if (err == RINGP2P_ECLOSED && hc->closing)
            rp_conn_close(hc->c);
        else
            rp_conn_abort(hc->c);
    }
}

static void hconn_free(rp_hconn *hc)
{
    rp_hshard *hs = hc->hs;
    flush_list_remove(hc);
    rp_timer_cancel(&hc->deadline);
    rp_timer_cancel(&hc->ytimer);
    if (hc->prev != NULL)
        hc->prev->next = hc->next;
    else if (hs->conns == hc)
        hs->conns = hc->next;
    if (hc->next != NULL) hc->next->prev = hc->prev;
    conn_reap(hc);
    rp_yamux_free(hc->ymx);
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

static void ytimer_fired(rp_timer *t, void *arg)
{
    rp_hconn *hc = arg;
    (void)t;
    if (hc->phase != HC_READY) return;
    rp_yamux_on_timeout(hc->ymx, now_of(hc));
    hc->busy++;
    yamux_events(hc, NULL);
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
    rp_timer_init(&hc->ytimer, ytimer_fired, hc);
    hc->next = hs->conns;
    if (hs->conns != NULL) hs->conns->prev = hc;
    hs->conns = hc;
    return hc;
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
    hc->phase = HC_MSS_SEC;
    /* Only what this node configured is proposed or accepted, in its preference order. */
    size_t nsec = hs->node->cfg.nsec;
    for (size_t i = 0; i < nsec; i++) hc->sec_protos[i] = hs->node->cfg.sec[i]->id;
    int r = hc->inbound ? rp_mss_init_listener(&hc->mss, hc->sec_protos, nsec, NULL, NULL, NULL)
                        : rp_mss_init_dialer(&hc->mss, hc->sec_protos, nsec, 0, NULL);
    rp_conn_set_cbs(c, &conn_cbs, hc);
    if (r < 0) return r;
    uint64_t to = rp_host_limit(hs->node, RINGP2P_LIMIT_DIAL_TIMEOUT_MS) * 1000000ull;
    rp_timer_arm(rp_shard_timers(hs->sh), &hc->deadline, rp_shard_now(hs->sh) + to);
    size_t ol;
    uint8_t *o = mss_take(&hc->mss, &ol);
    if (o != NULL) {
        send_plain(hc, o, ol);
        free(o);
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

static void dial_done(rp_shard *sh, void *arg, rp_conn *c, int err)
{
    rp_hconn *hc = arg;
    (void)sh;
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
    if (hc->hs->stopping) {
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
    hc->has_expect = o->has_peer;
    hc->expect = o->peer;
    hc->info.peer = o->peer;
    hc->waiting = hc->waiting_tail = o;
    o->next = NULL;
    ringp2p_errinfo ei;
    uint64_t to = rp_host_limit(hs->node, RINGP2P_LIMIT_DIAL_TIMEOUT_MS) * 1000000ull;
    int r = rp_tcp_dial(hs->sh, o->addr, o->addr_len, NULL, 0, to, dial_done, hc, &ei);
    if (r < 0) {
        hc->busy++;
        conn_fail(hc, r, &ei);
        hc->busy--;
        hconn_free(hc);
    }
    return r;
}

/* An existing connection (in any phase but dead) to `peer` on this shard, for reuse. */
rp_hconn *rp_hshard_find_peer(rp_hshard *hs, const ringp2p_peer_id *peer)
{
    for (rp_hconn *hc = hs->conns; hc != NULL; hc = hc->next) {
        if (hc->phase == HC_DEAD || hc->closing) continue;
        if (hc->phase == HC_READY && ringp2p_peer_id_equal(&hc->info.peer, peer)) return hc;
        if (hc->phase != HC_READY && hc->has_expect && ringp2p_peer_id_equal(&hc->expect, peer))
            return hc;
    }
    return NULL;
}

void rp_hshard_close_all(rp_hshard *hs)
{
    hs->stopping = true;
    for (rp_hconn *hc = hs->conns; hc != NULL; hc = hc->next) {
        if (hc->phase == HC_DEAD) continue;
        hc->busy++;
        if (hc->phase == HC_READY) {
            rp_yamux_go_away(hc->ymx, RP_YAMUX_GOAWAY_NORMAL);
            ringp2p_errinfo ei = { RINGP2P_ECLOSED, "the node is stopping" };
            while (hc->streams != NULL) stream_finish(hc->streams, RINGP2P_ECLOSED, &ei);
            conn_flush(hc);
            hc->closing = true;
        }
        conn_fail(hc, RINGP2P_ECLOSED, NULL);
        hc->busy--;
        conn_reap(hc);
    }
}

void rp_hshard_push_identify(rp_hshard *hs)
{
    for (rp_hconn *hc = hs->conns; hc != NULL; hc = hc->next)
        if (hc->phase == HC_READY && !hc->closing) rp_host_push_start(hs->node, hc);
}

/* The remote address of hc, binary (for identify's observed address). */
const uint8_t *rp_hconn_remote_bin(const rp_hconn *hc, size_t *len)
{
    *len = hc->remote_bin_len;
    return hc->remote_bin_len > 0 ? hc->remote_bin : NULL;
}
