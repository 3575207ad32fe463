/*
 * The built-in protocols of every node: identify (request on every new
 * connection, answer requests), identify push (send when our protocols
 * change, apply what peers push), ping, echo and perf. They use the public stream
 * API like any application handler.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "host/host.h"
#include "protocols/identify.h"
#include "protocols/perf.h"

/* ---- echo and ping: copy bytes back until the writer closes ---------------------------------- */

typedef struct echo_st {
    uint8_t *stash; /* bytes a full queue refused, sent on on_writable */
    size_t stash_len;
    bool eof;
} echo_st;

static void echo_flush(ringp2p_stream *s, echo_st *e)
{
    if (e->stash_len > 0) {
        ssize_t r = ringp2p_stream_write(s, e->stash, e->stash_len);
        if (r == RINGP2P_EAGAIN) return;
        free(e->stash);
        e->stash = NULL;
        e->stash_len = 0;
        if (r < 0) {
            ringp2p_stream_reset(s);
            return;
        }
        ringp2p_stream_resume_read(s);
    }
    if (e->eof && e->stash_len == 0) ringp2p_stream_close_write(s);
}

static void echo_data(ringp2p_stream *s, void *ctx, const uint8_t *data, size_t len)
{
    echo_st *e = ctx;
    if (e->stash_len > 0) {
        /* paused but a pending delivery got through: keep it behind the stash */
        uint8_t *n = realloc(e->stash, e->stash_len + len);
        if (n == NULL) {
            ringp2p_stream_reset(s);
            return;
        }
        memcpy(n + e->stash_len, data, len);
        e->stash = n;
        e->stash_len += len;
        return;
    }
    ssize_t r = ringp2p_stream_write(s, data, len);
    if (r == RINGP2P_EAGAIN) {
        e->stash = malloc(len);
        if (e->stash == NULL) {
            ringp2p_stream_reset(s);
            return;
        }
        memcpy(e->stash, data, len);
        e->stash_len = len;
        ringp2p_stream_pause_read(s);
    } else if (r < 0) {
        ringp2p_stream_reset(s);
    }
}

static void echo_eof(ringp2p_stream *s, void *ctx)
{
    echo_st *e = ctx;
    e->eof = true;
    echo_flush(s, e);
}

static void echo_writable(ringp2p_stream *s, void *ctx)
{
    echo_flush(s, ctx);
}

static void echo_close(ringp2p_stream *s, void *ctx, int err)
{
    echo_st *e = ctx;
    (void)s;
    (void)err;
    free(e->stash);
    free(e);
}

static const ringp2p_stream_callbacks echo_cbs = {
    .on_data = echo_data,
    .on_eof = echo_eof,
    .on_writable = echo_writable,
    .on_close = echo_close,
};

void rp_host_echo_handler(ringp2p_node *n, ringp2p_stream *s, void *ctx)
{
    (void)n;
    (void)ctx;
    echo_st *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        ringp2p_stream_reset(s);
        return;
    }
    ringp2p_stream_set_callbacks(s, &echo_cbs, e);
}

/* ping/ping.md: the listener echoes 32-byte pings until the dialer closes. */
void rp_host_ping_handler(ringp2p_node *n, ringp2p_stream *s, void *ctx)
{
    rp_host_echo_handler(n, s, ctx);
}

/* ---- perf: count the upload, then send the download by reference ---------------------------- */

/*
 * Queues views of the constant block until the stream's queue is full (then
 * on_writable calls again) or the download is all queued (then closes). The
 * block is static, so nothing is released and no byte is copied here.
 */
static void perf_pump(ringp2p_stream *s, rp_perf_server *p)
{
    while (p->phase == RP_PERF_DOWNLOAD) {
        rp_iov iov;
        size_t niov;
        size_t n = rp_perf_server_next(p, &iov, 1, &niov, RP_PERF_BLOCK);
        if (n == 0) break;
        int r = ringp2p_stream_write_ref(s, iov.base, n, NULL, NULL);
        if (r == RINGP2P_EAGAIN) return;
        if (r < 0 || rp_perf_server_wrote(p, n, rp_clock_ns()) < 0) {
            ringp2p_stream_reset(s);
            return;
        }
    }
    if (p->phase == RP_PERF_DONE) ringp2p_stream_close_write(s);
}

static void perf_data(ringp2p_stream *s, void *ctx, const uint8_t *data, size_t len)
{
    const uint8_t *p = data;
    if (rp_perf_server_recv(ctx, &p, data + len, rp_clock_ns(), NULL) < 0) ringp2p_stream_reset(s);
}

static void perf_eof(ringp2p_stream *s, void *ctx)
{
    if (rp_perf_server_eof(ctx, rp_clock_ns(), NULL) < 0) {
        ringp2p_stream_reset(s);
        return;
    }
    perf_pump(s, ctx);
}

static void perf_writable(ringp2p_stream *s, void *ctx)
{
    perf_pump(s, ctx);
}

static void perf_close(ringp2p_stream *s, void *ctx, int err)
{
    (void)s;
    (void)err;
    free(ctx);
}

static const ringp2p_stream_callbacks perf_cbs = {
    .on_data = perf_data,
    .on_eof = perf_eof,
    .on_writable = perf_writable,
    .on_close = perf_close,
};

void rp_host_perf_handler(ringp2p_node *n, ringp2p_stream *s, void *ctx)
{
    (void)n;
    (void)ctx;
    rp_perf_server *p = malloc(sizeof(*p));
    if (p == NULL) {
        ringp2p_stream_reset(s);
        return;
    }
    rp_perf_server_init(p, RP_HOST_PERF_DOWNLOAD_MAX, rp_clock_ns());
    ringp2p_stream_set_callbacks(s, &perf_cbs, p);
}

/* ---- identify ------------------------------------------------------------------------------ */

ssize_t rp_host_identify_msg(ringp2p_node *n, const uint8_t *obs, size_t obs_len, uint8_t *dst,
                             size_t cap)
{
    rp_iov addrs[RP_HOST_ADDRS_MAX];
    pthread_mutex_lock(&n->amu);
    for (size_t i = 0; i < n->naddrs; i++) addrs[i] = rp_iov_make(n->addrs[i], n->addr_len[i]);
    pthread_mutex_lock(&n->mu);
    rp_identify_info me = {
        .public_key = n->pubkey_pb,
        .public_key_len = n->pubkey_pb_len,
        .listen_addrs = addrs,
        .n_listen_addrs = n->naddrs,
        .protocols = (const char *const *)n->handlers->names,
        .n_protocols = n->handlers->n,
        .signed_peer_record = n->record,
        .signed_peer_record_len = n->record_len,
    };
    ssize_t r = rp_identify_write(&me, obs, obs_len, dst, cap, NULL);
    pthread_mutex_unlock(&n->mu);
    pthread_mutex_unlock(&n->amu);
    return r;
}

/* Reader side: the whole stream is buffered, then applied at EOF. */
typedef struct id_rd {
    ringp2p_node *node;
    bool response; /* an identify response (its observedAddr is ours), not a push */
    uint8_t *buf;
    size_t len, cap;
} id_rd;

static void id_data(ringp2p_stream *s, void *ctx, const uint8_t *data, size_t len)
{
    id_rd *r = ctx;
    if (r->len + len > RP_IDENTIFY_STREAM_MAX) {
        ringp2p_stream_reset(s);
        return;
    }
    if (r->len + len > r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 4096;
        while (cap < r->len + len) cap *= 2;
        uint8_t *b = realloc(r->buf, cap);
        if (b == NULL) {
            ringp2p_stream_reset(s);
            return;
        }
        r->buf = b;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, data, len);
    r->len += len;
}

static void id_eof(ringp2p_stream *s, void *ctx)
{
    id_rd *r = ctx;
    rp_identify_msg *m = malloc(sizeof(*m));
    if (m == NULL) {
        ringp2p_stream_reset(s);
        return;
    }
    rp_identify_msg_init(m);
    const uint8_t *p = r->buf, *end = r->buf + r->len;
    int rc;
    while ((rc = rp_identify_read_frame(m, &p, end, NULL)) == 1) {
    }
    if (rc == 0) rc = rp_identify_read_end(m, p, end, NULL);
    const ringp2p_conn_info *ci = ringp2p_stream_conn(s);
    rp_hconn *hc = rp_stream_hconn(s);
    rp_identify_peer *idp = rc == 0 ? rp_hconn_peer(hc) : NULL;
    if (rc == 0 && idp == NULL) rc = RINGP2P_ENOMEM;
    /* verifies the key and signed record against the connection's peer, then merges (push rule) */
    if (rc == 0 && (rc = rp_identify_peer_apply(idp, m, rp_hsec_sigcache(r->node), NULL)) > 0)
        rc = 0;
    if (rc == 0) {
        rp_iov av = rp_identify_peer_agent_version(idp);
        if (av.base != NULL) rp_hconn_set_agent(hc, av.base, av.len);
        if (r->response && m->observed_addr.base != NULL)
            rp_hconn_observed(hc, m->observed_addr.base, m->observed_addr.len);
        rp_host_emit(r->node, RINGP2P_EVENT_IDENTIFIED, ci, 0, rp_hconn_agent(hc));
    }
    free(m);
    ringp2p_stream_close_write(s);
}

static void id_close(ringp2p_stream *s, void *ctx, int err)
{
    id_rd *r = ctx;
    (void)s;
    (void)err;
    free(r->buf);
    free(r);
}

static const ringp2p_stream_callbacks id_read_cbs = {
    .on_data = id_data,
    .on_eof = id_eof,
    .on_close = id_close,
};

static void nop_data(ringp2p_stream *s, void *ctx, const uint8_t *data, size_t len)
{
    (void)s;
    (void)ctx;
    (void)data;
    (void)len;
}

static void nop_close(ringp2p_stream *s, void *ctx, int err)
{
    (void)s;
    (void)ctx;
    (void)err;
}

static const ringp2p_stream_callbacks writer_cbs = {
    .on_data = nop_data,
    .on_close = nop_close,
};

static void send_identify(ringp2p_node *n, ringp2p_stream *s, bool with_observed)
{
    rp_hconn *hc = rp_stream_hconn(s);
    size_t ol = 0;
    const uint8_t *obs = with_observed ? rp_hconn_remote_bin(hc, &ol) : NULL;
    size_t cap = 2 * RP_IDENTIFY_OWN_MSG_MAX + 16;
    uint8_t *buf = malloc(cap);
    ssize_t len = buf != NULL ? rp_host_identify_msg(n, obs, ol, buf, cap) : RINGP2P_ENOMEM;
    ringp2p_stream_set_callbacks(s, &writer_cbs, NULL);
    if (len < 0) {
        free(buf);
        ringp2p_stream_reset(s);
        return;
    }
    ringp2p_stream_write(s, buf, (size_t)len);
    free(buf);
    ringp2p_stream_close_write(s);
}

void rp_host_identify_handler(ringp2p_node *n, ringp2p_stream *s, void *ctx)
{
    (void)ctx;
    send_identify(n, s, true);
}

static id_rd *reader_new(ringp2p_node *n, bool response)
{
    id_rd *r = calloc(1, sizeof(*r));
    if (r != NULL) {
        r->node = n;
        r->response = response;
    }
    return r;
}

void rp_host_push_handler(ringp2p_node *n, ringp2p_stream *s, void *ctx)
{
    (void)ctx;
    id_rd *r = reader_new(n, false);
    if (r == NULL) {
        ringp2p_stream_reset(s);
        return;
    }
    ringp2p_stream_set_callbacks(s, &id_read_cbs, r);
}

static void id_opened(ringp2p_node *n, ringp2p_stream *s, int err, const ringp2p_errinfo *ei,
                      void *ctx)
{
    (void)ei;
    (void)ctx;
    if (err < 0) return; /* the peer does not speak identify: nothing to learn */
    id_rd *r = reader_new(n, true);
    if (r == NULL) {
        ringp2p_stream_reset(s);
        return;
    }
    ringp2p_stream_set_callbacks(s, &id_read_cbs, r);
    ringp2p_stream_close_write(s);
}

void rp_host_identify_start(ringp2p_node *n, rp_hconn *hc)
{
    rp_hconn_open_internal(hc, RP_IDENTIFY_PROTOCOL_ID, id_opened, NULL);
}

static void push_opened(ringp2p_node *n, ringp2p_stream *s, int err, const ringp2p_errinfo *ei,
                        void *ctx)
{
    (void)ei;
    (void)ctx;
    if (err < 0) return;
    send_identify(n, s, false);
}

void rp_host_push_start(ringp2p_node *n, rp_hconn *hc)
{
    (void)n;
    rp_hconn_open_internal(hc, RP_IDENTIFY_PUSH_PROTOCOL_ID, push_opened, NULL);
}
