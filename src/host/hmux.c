/*
 * The host's stream muxers behind one interface (host.h rp_hmux_ops):
 * /yamux/1.0.0 and /mplex/6.7.0. hconn.c drives whichever the connection
 * negotiated through these entries only; each entry is a thin wrapper (the
 * compiler turns most into a jump), so the datapath pays one indirect call
 * per operation and no copy.
 *
 * What mplex lacks is mapped rather than emulated: it has no timers
 * (next_timeout is UINT64_MAX), no go-away (a no-op: the host closes the
 * streams itself), no open backlog (no OPEN_READY event; open fails with
 * RINGP2P_ELIMIT at cfg.max_outbound_streams) and no window: consumed only
 * frees the stream's buffer allowance, and a stream that is not read blocks
 * the session's receive at cfg.max_stream_buffer (`blocked`; the host stops
 * reading the connection, so TCP slows the writer) until it reads, is reset
 * or released, or stays full for cfg.block_timeout_ns and is reset.
 */
#include <string.h>

#include "base/error.h"
#include "host/host.h"

/* ---- /yamux/1.0.0 ------------------------------------------------------------------------- */

/* Limits from the node's config (0: the yamux default). */
static int ymx_new(ringp2p_node *n, bool dialer, uint64_t now_ns, void **out)
{
    rp_yamux_config yc;
    rp_yamux_config_default(&yc);
    uint64_t v;
    if ((v = n->cfg.limits[RINGP2P_LIMIT_STREAMS_INBOUND]) != 0)
        yc.max_inbound_streams = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
    if ((v = n->cfg.limits[RINGP2P_LIMIT_STREAMS_UNACKED]) != 0)
        yc.accept_backlog = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
    if ((v = n->cfg.limits[RINGP2P_LIMIT_STREAM_WINDOW_MAX]) != 0 && v >= yc.initial_window)
        yc.max_window = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
    rp_yamux *m = NULL;
    int r = rp_yamux_new(&yc, dialer, now_ns, &m);
    *out = m;
    return r;
}

static void ymx_free(void *m)
{
    rp_yamux_free(m);
}

static int ymx_receive(void *m, const uint8_t **src, const uint8_t *end, uint64_t now_ns,
                       ringp2p_errinfo *ei)
{
    return rp_yamux_receive(m, src, end, now_ns, ei);
}

static bool ymx_next_event(void *m, rp_hmux_event *ev)
{
    rp_yamux_event e;
    if (!rp_yamux_next_event(m, &e)) return false;
    ev->stream = (rp_hmux_stream *)e.stream;
    ev->user = e.user;
    ev->data = e.data;
    ev->len = e.len;
    ev->err = 0;
    switch (e.type) {
    case RP_YAMUX_EV_STREAM_OPENED: ev->type = RP_HMUX_EV_OPENED; break;
    case RP_YAMUX_EV_STREAM_DATA: ev->type = RP_HMUX_EV_DATA; break;
    case RP_YAMUX_EV_STREAM_FIN: ev->type = RP_HMUX_EV_FIN; break;
    case RP_YAMUX_EV_STREAM_RESET:
        ev->type = RP_HMUX_EV_RESET;
        ev->err = RINGP2P_ESTREAMRESET;
        break;
    case RP_YAMUX_EV_STREAM_WRITABLE: ev->type = RP_HMUX_EV_WRITABLE; break;
    case RP_YAMUX_EV_OPEN_READY: ev->type = RP_HMUX_EV_OPEN_READY; break;
    case RP_YAMUX_EV_SESSION_ERROR:
        ev->type = RP_HMUX_EV_SESSION_ERROR;
        ev->err = e.err;
        break;
    case RP_YAMUX_EV_GO_AWAY:
        /* a go-away with an error code ends the session: its SESSION_ERROR follows */
        ev->type = e.code == RP_YAMUX_GOAWAY_NORMAL ? RP_HMUX_EV_GO_AWAY : RP_HMUX_EV_NONE;
        break;
    /* RTT answers and ping timeouts: nothing for the host */
    default: ev->type = RP_HMUX_EV_NONE; break;
    }
    return true;
}

static ssize_t ymx_send(void *m, rp_hmux_out *o, uint64_t now_ns)
{
    rp_yamux_out y = { .hdr = o->hdr,
                       .hdr_cap = o->hdr_cap,
                       .iov = o->iov,
                       .iov_cap = o->iov_cap,
                       .max_bytes = o->max_bytes };
    ssize_t n = rp_yamux_send(m, &y, now_ns);
    o->hdr_len = y.hdr_len;
    o->niov = y.niov;
    return n;
}

static bool ymx_want_send(const void *m)
{
    return rp_yamux_want_send(m);
}

static uint64_t ymx_next_timeout(const void *m)
{
    return rp_yamux_next_timeout(m);
}

static void ymx_on_timeout(void *m, uint64_t now_ns)
{
    rp_yamux_on_timeout(m, now_ns);
}

static void ymx_go_away(void *m)
{
    rp_yamux_go_away(m, RP_YAMUX_GOAWAY_NORMAL);
}

static int ymx_open(void *m, void *user, rp_hmux_stream **out)
{
    rp_yamux_stream *st = NULL;
    int r = rp_yamux_open(m, user, &st);
    *out = (rp_hmux_stream *)st;
    return r;
}

static int ymx_accept(rp_hmux_stream *st, void *user)
{
    return rp_yamux_stream_accept((rp_yamux_stream *)st, user);
}

static ssize_t ymx_write(rp_hmux_stream *st, const void *data, size_t len)
{
    return rp_yamux_stream_write((rp_yamux_stream *)st, data, len);
}

static size_t ymx_writable(rp_hmux_stream *st)
{
    return rp_yamux_stream_writable((rp_yamux_stream *)st);
}

static int ymx_close(rp_hmux_stream *st)
{
    return rp_yamux_stream_close((rp_yamux_stream *)st);
}

static int ymx_reset(rp_hmux_stream *st)
{
    return rp_yamux_stream_reset((rp_yamux_stream *)st);
}

static int ymx_consumed(rp_hmux_stream *st, size_t n, uint64_t now_ns)
{
    return rp_yamux_stream_consumed((rp_yamux_stream *)st, n, now_ns);
}

static void ymx_release(rp_hmux_stream *st)
{
    rp_yamux_stream_release((rp_yamux_stream *)st);
}

static uint64_t ymx_emitted(const rp_hmux_stream *st)
{
    return rp_yamux_stream_emitted((const rp_yamux_stream *)st);
}

/* yamux's window stops the writer: receive never blocks. */
static bool ymx_blocked(const void *m, uint64_t *deadline_ns)
{
    (void)m;
    (void)deadline_ns;
    return false;
}

/* ---- /mplex/6.7.0 ------------------------------------------------------------------------- */

/*
 * Limits from the node's config, as for yamux where one means the same:
 * STREAMS_INBOUND caps concurrent inbound streams (a flood is refused), and
 * STREAM_WINDOW_MAX, what a yamux peer may have in flight unread on one
 * stream, bounds mplex's per-stream receive buffer (at least one whole
 * message). STREAMS_UNACKED has no counterpart: mplex streams are accepted
 * as they arrive.
 */
static int mpx_new(ringp2p_node *n, bool dialer, uint64_t now_ns, void **out)
{
    (void)dialer; /* mplex is symmetric */
    (void)now_ns;
    rp_mplex_config mc;
    rp_mplex_config_default(&mc);
    uint64_t v;
    if ((v = n->cfg.limits[RINGP2P_LIMIT_STREAMS_INBOUND]) != 0)
        mc.max_inbound_streams = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
    if ((v = n->cfg.limits[RINGP2P_LIMIT_STREAM_WINDOW_MAX]) != 0)
        mc.max_stream_buffer = v < RP_MPLEX_MAX_MSG ? RP_MPLEX_MAX_MSG
                               : v > UINT32_MAX     ? UINT32_MAX
                                                    : (uint32_t)v;
    /* tests shorten the wait; capped so the nanoseconds cannot overflow */
    if ((v = n->cfg.mplex_block_ms) != 0)
        mc.block_timeout_ns = (v > UINT32_MAX ? UINT32_MAX : v) * UINT64_C(1000000);
    rp_mplex *m = NULL;
    int r = rp_mplex_new(&mc, &m);
    *out = m;
    return r;
}

static void mpx_free(void *m)
{
    rp_mplex_free(m);
}

static int mpx_receive(void *m, const uint8_t **src, const uint8_t *end, uint64_t now_ns,
                       ringp2p_errinfo *ei)
{
    return rp_mplex_receive(m, src, end, now_ns, ei);
}

static bool mpx_next_event(void *m, rp_hmux_event *ev)
{
    rp_mplex_event e;
    if (!rp_mplex_next_event(m, &e)) return false;
    ev->stream = (rp_hmux_stream *)e.stream;
    ev->user = e.user;
    ev->data = e.data;
    ev->len = e.len;
    ev->err = e.err;
    switch (e.type) {
    case RP_MPLEX_EV_STREAM_OPENED: ev->type = RP_HMUX_EV_OPENED; break;
    case RP_MPLEX_EV_STREAM_DATA: ev->type = RP_HMUX_EV_DATA; break;
    case RP_MPLEX_EV_STREAM_FIN: ev->type = RP_HMUX_EV_FIN; break;
    case RP_MPLEX_EV_STREAM_RESET: ev->type = RP_HMUX_EV_RESET; break;
    case RP_MPLEX_EV_STREAM_WRITABLE: ev->type = RP_HMUX_EV_WRITABLE; break;
    case RP_MPLEX_EV_SESSION_ERROR: ev->type = RP_HMUX_EV_SESSION_ERROR; break;
    default: ev->type = RP_HMUX_EV_NONE; break;
    }
    return true;
}

static ssize_t mpx_send(void *m, rp_hmux_out *o, uint64_t now_ns)
{
    (void)now_ns;
    rp_mplex_out x = { .hdr = o->hdr,
                       .hdr_cap = o->hdr_cap,
                       .iov = o->iov,
                       .iov_cap = o->iov_cap,
                       .max_bytes = o->max_bytes };
    ssize_t n = rp_mplex_send(m, &x);
    o->hdr_len = x.hdr_len;
    o->niov = x.niov;
    return n;
}

static bool mpx_want_send(const void *m)
{
    return rp_mplex_want_send(m);
}

static uint64_t mpx_next_timeout(const void *m)
{
    (void)m;
    return UINT64_MAX;
}

static void mpx_on_timeout(void *m, uint64_t now_ns)
{
    (void)m;
    (void)now_ns;
}

/* mplex has no go-away: the host closes or resets every stream itself. */
static void mpx_go_away(void *m)
{
    (void)m;
}

static int mpx_open(void *m, void *user, rp_hmux_stream **out)
{
    rp_mplex_stream *st = NULL;
    int r = rp_mplex_open(m, user, &st);
    *out = (rp_hmux_stream *)st;
    return r;
}

static int mpx_accept(rp_hmux_stream *st, void *user)
{
    return rp_mplex_stream_accept((rp_mplex_stream *)st, user);
}

static ssize_t mpx_write(rp_hmux_stream *st, const void *data, size_t len)
{
    return rp_mplex_stream_write((rp_mplex_stream *)st, data, len);
}

static size_t mpx_writable(rp_hmux_stream *st)
{
    return rp_mplex_stream_writable((rp_mplex_stream *)st);
}

static int mpx_close(rp_hmux_stream *st)
{
    return rp_mplex_stream_close((rp_mplex_stream *)st);
}

static int mpx_reset(rp_hmux_stream *st)
{
    return rp_mplex_stream_reset((rp_mplex_stream *)st);
}

static int mpx_consumed(rp_hmux_stream *st, size_t n, uint64_t now_ns)
{
    (void)now_ns;
    return rp_mplex_stream_consumed((rp_mplex_stream *)st, n);
}

static void mpx_release(rp_hmux_stream *st)
{
    rp_mplex_stream_release((rp_mplex_stream *)st);
}

static uint64_t mpx_emitted(const rp_hmux_stream *st)
{
    return rp_mplex_stream_emitted((const rp_mplex_stream *)st);
}

static bool mpx_blocked(const void *m, uint64_t *deadline_ns)
{
    if (rp_mplex_blocked(m, NULL) == NULL) return false;
    *deadline_ns = rp_mplex_next_timeout(m);
    return true;
}

/* ---- table -------------------------------------------------------------------------------- */

static const rp_hmux_ops ops_table[] = {
    {
        .name = "yamux",
        .id = RP_YAMUX_PROTOCOL_ID,
        .new_session = ymx_new,
        .free = ymx_free,
        .receive = ymx_receive,
        .next_event = ymx_next_event,
        .send = ymx_send,
        .want_send = ymx_want_send,
        .next_timeout = ymx_next_timeout,
        .on_timeout = ymx_on_timeout,
        .go_away = ymx_go_away,
        .open = ymx_open,
        .accept = ymx_accept,
        .write = ymx_write,
        .writable = ymx_writable,
        .close = ymx_close,
        .reset = ymx_reset,
        .consumed = ymx_consumed,
        .release = ymx_release,
        .emitted = ymx_emitted,
        .blocked = ymx_blocked,
    },
    {
        .name = "mplex",
        .id = RP_MPLEX_PROTOCOL_ID,
        .new_session = mpx_new,
        .free = mpx_free,
        .receive = mpx_receive,
        .next_event = mpx_next_event,
        .send = mpx_send,
        .want_send = mpx_want_send,
        .next_timeout = mpx_next_timeout,
        .on_timeout = mpx_on_timeout,
        .go_away = mpx_go_away,
        .open = mpx_open,
        .accept = mpx_accept,
        .write = mpx_write,
        .writable = mpx_writable,
        .close = mpx_close,
        .reset = mpx_reset,
        .consumed = mpx_consumed,
        .release = mpx_release,
        .emitted = mpx_emitted,
        .blocked = mpx_blocked,
    },
};

const rp_hmux_ops *rp_hmux_by_name(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(ops_table) / sizeof(ops_table[0]); i++)
        if (strlen(ops_table[i].name) == len && memcmp(ops_table[i].name, name, len) == 0)
            return &ops_table[i];
    return NULL;
}

const rp_hmux_ops *rp_hmux_by_id(const char *id)
{
    if (id == NULL) return NULL;
    for (size_t i = 0; i < sizeof(ops_table) / sizeof(ops_table[0]); i++)
        if (strcmp(ops_table[i].id, id) == 0) return &ops_table[i];
    return NULL;
}
