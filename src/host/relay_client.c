/*
 * Circuit relay v2, the client side, in the host: protocols/relay.h checks
 * every message; this file keeps reservations, dials through relays and
 * answers the stop protocol.
 *
 * A relayed connection is a normal connection. When the relay answers OK to
 * our CONNECT (dialer), or we answer OK to a relay's stop CONNECT (target),
 * a local socketpair is made: end A is adopted by the runtime and run through
 * the usual pipeline by hconn.c (multistream, security, muxer; outbound with
 * the target as the expected peer, or inbound), its ringp2p_conn_info marked
 * relayed (and limited) with the circuit address as its remote address; end
 * B is pumped to and from the relay stream by this file. A, B and the relay
 * stream all live on the relay connection's shard.
 *
 * A departure from DESIGN.md, which has the pipeline run over the relay
 * stream itself: hconn.c reads from and writes to a runtime socket (rp_conn,
 * received into provided buffers, sent by reference) all along its receive
 * and send paths, and a second kind of transport under it would touch every
 * one of them. The socketpair costs one extra copy each way and two file
 * descriptors per relayed connection. Relayed connections are limited (a
 * relay resets one after 128 KiB each way or 2 min, by default), so the copy
 * is irrelevant; a direct connection (DCUtR) is what carries bulk data.
 *
 * The pump (rlink): B's bytes are written to the stream (copied; a write
 * refused for backpressure is kept and B's reading paused until
 * on_writable); the stream's bytes are sent to B (copied into the runtime's
 * send chunks; when B's queue passes its high watermark the stream's reading
 * pauses until B is writable, which holds back the relay's yamux window).
 * EOF travels both ways as half-closes. A reset of the relay stream fails the
 * relayed connection with a reason: the relay's data limit (ELIMIT) or
 * duration limit (ETIMEDOUT) when our own count says it was reached
 * (rp_relay_meter), otherwise RINGP2P_ESTREAMRESET; its streams hear it.
 *
 * Reservations: each configured relay has a home shard (index modulo the
 * shard count) that owns its state and timer. An attempt opens a hop stream
 * to the relay with ringp2p_node_new_stream (dialing or reusing), writes
 * RESERVE and checks the answer (rp_relay_reserve_check, voucher included)
 * on the relay connection's shard, then posts the outcome home, where the
 * circuit addresses are published (n->raddrs under amu, then identify is
 * pushed and the record re-signed), the event is raised and the renewal
 * (rp_relay_refresh_at) or retry (backoff) is armed. A DISCONNECTED of the
 * relay's last connection while a reservation is held is the loss of it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "base/log.h"
#include "host/host.h"
#include "host/relay_client.h"
#include "multiformats/multiaddr.h"
#include "protocols/relay.h"
#include "transport/tcp.h"

#define MOD "relay-client"

enum { R_IDLE = 0, R_PENDING, R_HELD, R_WAIT };

/* One configured relay: immutable after start but for the fields marked. */
typedef struct rsv {
    struct rp_relay_client *cl;
    unsigned idx, home;
    ringp2p_multiaddr *ma; /* as configured, ending with /p2p/<relay> */
    uint8_t addr[RP_HOST_RELAY_ADDR_MAX];
    size_t addr_len;
    ringp2p_peer_id relay;
    /* home shard only */
    int state;
    uint64_t gen; /* attempt counter: late results of older attempts are ignored */
    uint64_t backoff_ms;
    bool stopped;
    rp_timer timer;
    /* written on the home shard under node->amu, read under it */
    size_t naddrs;
    uint8_t addrs[RP_HOST_RADDRS_PER_RELAY][RP_OBSADDR_ADDR_MAX];
    size_t alen[RP_HOST_RADDRS_PER_RELAY];
} rsv;

struct rp_relay_client {
    ringp2p_node *node;
    size_t nrsv;
    rsv rsv[RP_HOST_RELAYS_MAX];
};

bool rp_relay_is_circuit(const uint8_t *addr, size_t len)
{
    const uint8_t *p = addr, *end = addr + len;
    while (p < end) {
        rp_maddr_comp c;
        if (rp_maddr_next_component(&p, end, &c, NULL) != 0) return false;
        if (c.proto->code == RINGP2P_P_P2P_CIRCUIT) return true;
    }
    return false;
}

/* ---- config ------------------------------------------------------------------------------- */

RINGP2P_API void ringp2p_config_relay_client(ringp2p_config *cfg, bool enabled)
{
    cfg->relay_client_off = !enabled;
}

RINGP2P_API int ringp2p_config_relay(ringp2p_config *cfg, const char *maddr, ringp2p_errinfo *ei)
{
    ringp2p_multiaddr *ma;
    int r = ringp2p_multiaddr_parse(maddr, &ma, ei);
    if (r < 0) return r;
    size_t len;
    const uint8_t *b = ringp2p_multiaddr_bytes(ma, &len);
    ringp2p_peer_id id;
    if (rp_relay_is_circuit(b, len))
        r = rp_err(ei, RINGP2P_EMULTIADDR, "relay address %s is itself relayed (/p2p-circuit)",
                   maddr);
    else if (!rp_tcp_matches(b, len))
        r = rp_err(ei, RINGP2P_EUNSUPPORTED, "no transport for relay address %s (only TCP)", maddr);
    else if (ringp2p_multiaddr_peer_id(ma, &id) != 0)
        r = rp_err(ei, RINGP2P_EMULTIADDR, "relay address %s does not end with /p2p/<relay id>",
                   maddr);
    else if (len > RP_HOST_RELAY_ADDR_MAX)
        r = rp_err(ei, RINGP2P_ELIMIT, "relay address %s is longer than %d bytes", maddr,
                   RP_HOST_RELAY_ADDR_MAX);
    else if (cfg->nrelays == RP_HOST_RELAYS_MAX)
        r = rp_err(ei, RINGP2P_ELIMIT, "more than %d relays", RP_HOST_RELAYS_MAX);
    if (r == 0) {
        memcpy(cfg->relays[cfg->nrelays], b, len);
        cfg->relay_len[cfg->nrelays++] = len;
    }
    ringp2p_multiaddr_free(ma);
    return r;
}

/* ---- relayed connections: the pump ------------------------------------------------------- */

enum { L_HANDSHAKE = 0, L_BRIDGED, L_DONE };

/* One relay stream (hop for the dialer, stop for the target) and, once bridged, end B. */
typedef struct rlink {
    ringp2p_node *node;
    bool dialer;
    int phase;
    int busy;    /* inside one of our callbacks: not freed there */
    bool s_done; /* the stream closed, or never opened */
    ringp2p_stream *s;
    rp_conn *b;    /* our end of the socketpair; NULL before bridging and once closed */
    rp_hshard *hs; /* bridged: the shard of s, A and B */
    uint64_t a_id; /* bridged: the relayed connection (end A) */
    rp_hopen *o;   /* dialer: the request, until handed to A or failed */
    ringp2p_peer_id relay, peer; /* peer: the other end */
    uint8_t rx[RP_RELAY_FRAME_MAX];
    size_t rx_len;
    rp_timer timer; /* the handshake's deadline, on s's shard */
    bool limited;
    rp_relay_limit limit;
    rp_relay_meter meter;
    uint64_t sent, recvd; /* bridged bytes to and from the relay */
    uint8_t *stash;       /* B's bytes the stream refused (RINGP2P_EAGAIN) */
    size_t stash_len;
    bool b_eof, s_wclosed, s_paused;
} rlink;

static void link_enter(rlink *l)
{
    l->busy++;
}

static void link_leave(rlink *l)
{
    if (--l->busy > 0 || !l->s_done || l->b != NULL) return;
    rp_timer_cancel(&l->timer);
    free(l->stash);
    free(l);
}

/* "relay <id>: " and the formatted rest, into dst[cap]. */
static void relay_msg(const ringp2p_peer_id *relay, char *dst, size_t cap, const char *fmt,
                      va_list ap) __attribute__((format(printf, 4, 0)));
static void relay_msg(const ringp2p_peer_id *relay, char *dst, size_t cap, const char *fmt,
                      va_list ap)
{
    char rid[RINGP2P_PEER_ID_STR_MAX];
    rp_host_peer_text(relay, rid, sizeof(rid));
    int k = snprintf(dst, cap, "relay %s: ", rid);
    if (k > 0 && (size_t)k < cap) vsnprintf(dst + k, cap - (size_t)k, fmt, ap);
}

/* Dialer: the request fails with err and a message naming the relay. */
static void link_fail_open(rlink *l, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void link_fail_open(rlink *l, int err, const char *fmt, ...)
{
    if (l->o == NULL) return;
    ringp2p_errinfo ei = { err, "" };
    va_list ap;
    va_start(ap, fmt);
    relay_msg(&l->relay, ei.msg, sizeof(ei.msg), fmt, ap);
    va_end(ap);
    rp_hopen *o = l->o;
    l->o = NULL;
    rp_hopen_fail(o, err, &ei);
}

static unsigned dir_out(const rlink *l)
{
    return l->dialer ? RP_RELAY_DIR_TO_TARGET : RP_RELAY_DIR_TO_INITIATOR;
}

/* ---- end B (rp_conn callbacks) ---- */

static void b_data(rp_conn *c, void *arg, rp_rbuf *buf, const uint8_t *data, size_t len)
{
    rlink *l = arg;
    (void)buf;
    if (l->s == NULL || l->s_wclosed) return; /* the stream is gone: A hears it soon */
    link_enter(l);
    l->sent += len;
    (void)rp_relay_meter_take(&l->meter, dir_out(l), len);
    ssize_t w = ringp2p_stream_write(l->s, data, len);
    if (w == RINGP2P_EAGAIN) {
        /* kept until on_writable; nothing more arrives while B's reading is paused */
        l->stash = malloc(len);
        if (l->stash == NULL) {
            ringp2p_stream_reset(l->s);
        } else {
            memcpy(l->stash, data, len);
            l->stash_len = len;
            rp_conn_recv_pause(c);
        }
    }
    link_leave(l);
}

static void b_eof(rp_conn *c, void *arg)
{
    rlink *l = arg;
    (void)c;
    link_enter(l);
    l->b_eof = true;
    if (l->s != NULL && l->stash == NULL && !l->s_wclosed) {
        l->s_wclosed = true;
        ringp2p_stream_close_write(l->s);
    }
    link_leave(l);
}

static void b_writable(rp_conn *c, void *arg)
{
    rlink *l = arg;
    (void)c;
    link_enter(l);
    if (l->s != NULL && l->s_paused) {
        l->s_paused = false;
        ringp2p_stream_resume_read(l->s);
    }
    link_leave(l);
}

static void b_close(rp_conn *c, void *arg, int err)
{
    rlink *l = arg;
    (void)c;
    link_enter(l);
    l->b = NULL;
    if (l->s != NULL) {
        if (err != 0) {
            ringp2p_stream_reset(l->s); /* A went away abruptly: so does the relayed stream */
        } else if (l->stash != NULL) {
            l->b_eof = true; /* l_writable closes once the stash is out */
        } else if (!l->s_wclosed) {
            l->s_wclosed = true;
            ringp2p_stream_close_write(l->s);
        }
    }
    link_leave(l);
}

static const rp_conn_cbs b_cbs = {
    .on_data = b_data,
    .on_eof = b_eof,
    .on_writable = b_writable,
    .on_close = b_close,
};

/* ---- the relay stream, bridged ---- */

static void to_b(rlink *l, const uint8_t *data, size_t len)
{
    if (l->b == NULL || len == 0) return;
    l->recvd += len;
    (void)rp_relay_meter_take(&l->meter, 1 - dir_out(l), len);
    if (rp_conn_send(l->b, data, len) != 0) return; /* B is closing: its on_close follows */
    if (!rp_conn_writable(l->b) && !l->s_paused && l->s != NULL) {
        l->s_paused = true;
        ringp2p_stream_pause_read(l->s);
    }
}

/*
 * Why the relay stream of a bridged link was reset: our own count tells a
 * limit the relay announced from any other end. A relay resets at the first
 * byte past `data` in one direction (go half-closes instead, the spec and js
 * reset; js counts both directions against one budget), or at the deadline.
 */
static int reset_reason(rlink *l, int err, ringp2p_errinfo *ei)
{
    char rid[RINGP2P_PEER_ID_STR_MAX];
    rp_host_peer_text(&l->relay, rid, sizeof(rid));
    if (err == RINGP2P_ESTREAMRESET && l->limited) {
        uint64_t now = rp_shard_now(l->hs->sh);
        uint64_t d = l->limit.data;
        if (d != 0 && (rp_relay_meter_left(&l->meter, 0) == 0 ||
                       rp_relay_meter_left(&l->meter, 1) == 0 || l->sent + l->recvd >= d))
            return rp_err(ei, RINGP2P_ELIMIT,
                          "relay %s reset the relayed connection at its data limit (%llu bytes; "
                          "%llu sent, %llu received)",
                          rid, (unsigned long long)d, (unsigned long long)l->sent,
                          (unsigned long long)l->recvd);
        if (l->limit.duration != 0 && rp_relay_meter_expired(&l->meter, now + 1000000000ull))
            return rp_err(ei, RINGP2P_ETIMEDOUT,
                          "relay %s reset the relayed connection at its duration limit (%u s)", rid,
                          (unsigned)l->limit.duration);
    }
    if (err == RINGP2P_ESTREAMRESET)
        return rp_err(ei, RINGP2P_ESTREAMRESET,
                      "relay %s reset the relayed connection (the other end or the relay left)",
                      rid);
    return rp_err(ei, err, "the relayed connection's stream to relay %s ended: %s", rid,
                  ringp2p_strerror(err));
}

/* ---- the handshake ---- */

static void link_timer(rp_timer *t, void *arg);
static const ringp2p_stream_callbacks link_cbs;

/* Appends what fits of [*data, +*len) to l->rx; the caller parses rx. Returns the bytes taken. */
static size_t rx_take(rlink *l, const uint8_t *data, size_t len)
{
    size_t take = sizeof(l->rx) - l->rx_len;
    if (take > len) take = len;
    memcpy(l->rx + l->rx_len, data, take);
    l->rx_len += take;
    return take;
}

/* The target's remote address for the relayed connection: RELAY/p2p/R/p2p-circuit/p2p/SRC. */
static ssize_t target_remote(rlink *l, uint8_t *dst, size_t cap)
{
    const rp_maddr_proto *p2p = rp_maddr_proto_by_code(RINGP2P_P_P2P);
    size_t rlen = 0;
    const uint8_t *raddr = rp_hconn_remote_bin(rp_stream_hconn(l->s), &rlen);
    ssize_t n = raddr != NULL ? rp_relay_circuit_addr(raddr, rlen, &l->relay, dst, cap, NULL) : -1;
    if (n < 0) {
        /* no usable address of the relay: /p2p/R/p2p-circuit alone */
        ssize_t a = rp_maddr_put_component(p2p, l->relay.bytes, l->relay.len, dst, cap, NULL);
        if (a < 0) return a;
        ssize_t c = rp_maddr_put_component(rp_maddr_proto_by_code(RINGP2P_P_P2P_CIRCUIT), NULL, 0,
                                           dst + a, cap - (size_t)a, NULL);
        if (c < 0) return c;
        n = a + c;
    }
    ssize_t e =
        rp_maddr_put_component(p2p, l->peer.bytes, l->peer.len, dst + n, cap - (size_t)n, NULL);
    return e < 0 ? e : n + e;
}

/*
 * The relay said OK (dialer) or we did (target): the socketpair, end A to
 * the pipeline, end B to the pump; `rest` came after the handshake message.
 */
static void bridge(rlink *l, const uint8_t *rest, size_t rest_len)
{
    ringp2p_node *n = l->node;
    rp_hshard *hs = rp_stream_hshard(l->s);
    uint8_t remote[RP_MADDR_MAX_BYTES];
    ssize_t rlen;
    if (l->dialer) {
        rlen = l->o->addr_len <= sizeof(remote) ? (ssize_t)l->o->addr_len : -1;
        if (rlen > 0) memcpy(remote, l->o->addr, (size_t)rlen);
    } else {
        rlen = target_remote(l, remote, sizeof(remote));
    }
    int fds[2] = { -1, -1 };
    int r = rlen > 0 ? 0 : (int)RINGP2P_EMULTIADDR;
    if (r == 0 && socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0)
        r = errno == EMFILE || errno == ENFILE ? RINGP2P_EMFILE : RINGP2P_EIO;
    rp_conn *a = NULL;
    if (r == 0 && (r = rp_conn_adopt(hs->sh, fds[1], false, &l->b)) == 0) {
        fds[1] = -1;
        rp_conn_set_cbs(l->b, &b_cbs, l);
        if ((r = rp_conn_adopt(hs->sh, fds[0], !l->dialer, &a)) == 0) fds[0] = -1;
    }
    if (fds[0] >= 0) close(fds[0]);
    if (fds[1] >= 0) close(fds[1]);
    if (r < 0) {
        rp_logf(&n->log, RINGP2P_LOG_WARN, MOD, "cannot set up a relayed connection: %s",
                ringp2p_strerror(r));
        link_fail_open(l, r, "cannot set up the relayed connection: %s", ringp2p_strerror(r));
        if (l->b != NULL)
            rp_conn_abort(l->b); /* b_close resets the stream */
        else
            ringp2p_stream_reset(l->s);
        l->phase = L_DONE;
        return;
    }
    l->hs = hs;
    l->a_id = rp_conn_id(a);
    l->phase = L_BRIDGED;
    rp_timer_cancel(&l->timer);
    rp_relay_meter_init(&l->meter, l->limited ? &l->limit : NULL, rp_shard_now(hs->sh));
    rp_hopen *o = l->o;
    l->o = NULL;
    /* on failure A is aborted (B then sees its end) and o failed */
    rp_hconn_adopt(hs, a, o, remote, (size_t)rlen, l->limited);
    if (rest_len > 0) to_b(l, rest, rest_len);
}

/* Dialer: bytes of the hop stream before the relay's answer. */
static void dialer_in(rlink *l, const uint8_t *data, size_t len)
{
    size_t before = l->rx_len;
    rx_take(l, data, len);
    const uint8_t *p = l->rx;
    rp_relay_hop_msg m;
    ringp2p_errinfo ei = { 0 };
    int r = rp_relay_hop_read(&p, l->rx + l->rx_len, &m, &ei);
    if (r == 0) return; /* a frame is at most RP_RELAY_FRAME_MAX: rx always has room */
    if (r < 0) {
        link_fail_open(l, RINGP2P_EPROTOCOL, "malformed answer to CONNECT: %s", ei.msg);
        ringp2p_stream_reset(l->s);
        l->phase = L_DONE;
        return;
    }
    size_t used = (size_t)(p - l->rx) - before; /* of this delivery */
    int32_t status = 0;
    r = rp_relay_connect_check(&m, &l->limited, &l->limit, &status, &ei);
    if (r < 0) {
        char why[RINGP2P_ERRINFO_MSG_MAX + 64];
        if (status == RP_RELAY_NO_RESERVATION)
            snprintf(why, sizeof(why), "%s (the target holds no reservation there)", ei.msg);
        else
            snprintf(why, sizeof(why), "%s", ei.msg);
        link_fail_open(l, r, "refused to connect: %s", why);
        ringp2p_stream_close_write(l->s);
        l->s_wclosed = true;
        l->phase = L_DONE;
        return;
    }
    bridge(l, data + used, len - used);
}

/* Target: bytes of the stop stream before the relay's CONNECT is whole. */
static void target_in(rlink *l, const uint8_t *data, size_t len)
{
    ringp2p_node *n = l->node;
    size_t before = l->rx_len;
    rx_take(l, data, len);
    const uint8_t *p = l->rx;
    rp_relay_stop_msg m;
    ringp2p_errinfo ei = { 0 };
    int r = rp_relay_stop_read(&p, l->rx + l->rx_len, &m, &ei);
    if (r == 0) return;
    int32_t reply = RP_RELAY_MALFORMED_MESSAGE;
    rp_relay_stop_request req;
    if (r > 0) r = rp_relay_stop_check(&m, &req, &reply, &ei);
    uint8_t out[16];
    char rid[RINGP2P_PEER_ID_STR_MAX];
    if (r < 0) {
        rp_host_peer_text(&l->relay, rid, sizeof(rid));
        rp_logf(&n->log, RINGP2P_LOG_DEBUG, MOD, "stop request from relay %s refused: %s", rid,
                ei.msg);
        ssize_t k = rp_relay_stop_status_write(reply, out, sizeof(out));
        if (k > 0) ringp2p_stream_write(l->s, out, (size_t)k);
        ringp2p_stream_close_write(l->s);
        l->s_wclosed = true;
        l->phase = L_DONE; /* the timer resets the stream if the relay keeps it open */
        return;
    }
    size_t used = (size_t)(p - l->rx) - before;
    l->peer = req.src;
    l->limited = req.limited;
    l->limit = req.limit;
    ssize_t k = rp_relay_stop_status_write(RP_RELAY_OK, out, sizeof(out));
    if (k < 0 || ringp2p_stream_write(l->s, out, (size_t)k) < 0) {
        ringp2p_stream_reset(l->s);
        l->phase = L_DONE;
        return;
    }
    bridge(l, data + used, len - used);
}

/* ---- stream callbacks ---- */

static void l_data(ringp2p_stream *s, void *ctx, const uint8_t *data, size_t len)
{
    rlink *l = ctx;
    (void)s;
    link_enter(l);
    if (l->phase == L_BRIDGED)
        to_b(l, data, len);
    else if (l->phase == L_HANDSHAKE && l->dialer)
        dialer_in(l, data, len);
    else if (l->phase == L_HANDSHAKE)
        target_in(l, data, len);
    link_leave(l);
}

static void l_eof(ringp2p_stream *s, void *ctx)
{
    rlink *l = ctx;
    link_enter(l);
    if (l->phase == L_BRIDGED) {
        if (l->b != NULL) rp_conn_close(l->b); /* A reads EOF once B's queue is out */
    } else {
        if (l->phase == L_HANDSHAKE)
            link_fail_open(l, RINGP2P_ECONNRESET,
                           "closed the hop stream without answering CONNECT");
        l->phase = L_DONE;
        if (!l->s_wclosed) {
            l->s_wclosed = true;
            ringp2p_stream_close_write(s);
        }
    }
    link_leave(l);
}

static void l_writable(ringp2p_stream *s, void *ctx)
{
    rlink *l = ctx;
    link_enter(l);
    if (l->stash != NULL) {
        ssize_t w = ringp2p_stream_write(s, l->stash, l->stash_len);
        if (w != RINGP2P_EAGAIN) {
            free(l->stash);
            l->stash = NULL;
            l->stash_len = 0;
            if (l->b != NULL) rp_conn_recv_resume(l->b);
            if (l->b_eof && !l->s_wclosed) {
                l->s_wclosed = true;
                ringp2p_stream_close_write(s);
            }
        }
    }
    link_leave(l);
}

static void l_close(ringp2p_stream *s, void *ctx, int err)
{
    rlink *l = ctx;
    (void)s;
    link_enter(l);
    l->s = NULL;
    l->s_done = true;
    rp_timer_cancel(&l->timer);
    if (l->phase == L_HANDSHAKE)
        link_fail_open(l, err != 0 ? err : RINGP2P_ECONNRESET,
                       "the hop stream ended before the answer to CONNECT: %s",
                       ringp2p_strerror(err != 0 ? err : RINGP2P_ECONNRESET));
    if (l->phase == L_BRIDGED && l->b != NULL) {
        if (err != 0) {
            ringp2p_errinfo ei;
            int code = reset_reason(l, err, &ei);
            rp_hconn_abort_id(l->hs, l->a_id, code, &ei);
            rp_conn_abort(l->b);
        } else {
            rp_conn_close(l->b);
        }
    }
    l->phase = L_DONE;
    link_leave(l);
}

static const ringp2p_stream_callbacks link_cbs = {
    .on_data = l_data,
    .on_eof = l_eof,
    .on_writable = l_writable,
    .on_close = l_close,
};

/* The handshake took too long, or a refused stream lingers: reset it. */
static void link_timer(rp_timer *t, void *arg)
{
    rlink *l = arg;
    (void)t;
    if (l->s == NULL || l->phase == L_BRIDGED) return;
    link_enter(l);
    if (l->phase == L_HANDSHAKE) {
        link_fail_open(l, RINGP2P_ETIMEDOUT, "no answer to CONNECT within %llu ms",
                       (unsigned long long)rp_host_limit(l->node, RINGP2P_LIMIT_DIAL_TIMEOUT_MS));
    }
    l->phase = L_DONE;
    ringp2p_stream_reset(l->s);
    link_leave(l);
}

static rlink *link_new(ringp2p_node *n, bool dialer)
{
    rlink *l = calloc(1, sizeof(*l));
    if (l == NULL) return NULL;
    l->node = n;
    l->dialer = dialer;
    rp_timer_init(&l->timer, link_timer, l);
    return l;
}

/* Arms the handshake deadline on s's shard. */
static void link_arm(rlink *l, uint64_t ms)
{
    rp_shard *sh = rp_stream_hshard(l->s)->sh;
    rp_timer_arm(rp_shard_timers(sh), &l->timer, rp_shard_now(sh) + ms * 1000000ull);
}

/* ---- dialing ---- */

static void d_opened(ringp2p_node *n, ringp2p_stream *s, int err, const ringp2p_errinfo *ei,
                     void *ctx)
{
    rlink *l = ctx;
    link_enter(l);
    if (err < 0) {
        l->s_done = true;
        const char *why = ei != NULL && ei->msg[0] ? ei->msg : ringp2p_strerror(err);
        if (err == RINGP2P_ENEGOTIATION)
            link_fail_open(l, err,
                           "does not serve " RP_RELAY_HOP_PROTOCOL_ID " (%s): is it a relay?", why);
        else
            link_fail_open(l, err, "cannot reach it: %s", why);
        link_leave(l);
        return;
    }
    l->s = s;
    ringp2p_stream_set_callbacks(s, &link_cbs, l);
    uint8_t req[RP_RELAY_FRAME_MAX];
    ssize_t k = rp_relay_connect_write(&l->peer, req, sizeof(req));
    if (k < 0 || ringp2p_stream_write(s, req, (size_t)k) < 0) {
        link_fail_open(l, k < 0 ? (int)k : RINGP2P_ECLOSED, "cannot send CONNECT: %s",
                       ringp2p_strerror(k < 0 ? (int)k : RINGP2P_ECLOSED));
        ringp2p_stream_reset(s); /* l_close frees */
        link_leave(l);
        return;
    }
    link_arm(l, rp_host_limit(n, RINGP2P_LIMIT_DIAL_TIMEOUT_MS));
    link_leave(l);
}

void rp_relay_client_dial(rp_hshard *hs, rp_hopen *o)
{
    ringp2p_node *n = hs->node;
    ringp2p_errinfo ei = { 0 };
    char txt[512];
    if (rp_maddr_to_text(o->addr, o->addr_len, txt, sizeof(txt), NULL) < 0) strcpy(txt, "?");
    if (n->rclient == NULL) {
        rp_err(&ei, RINGP2P_EUNSUPPORTED,
               "relayed dialing is off (ringp2p_config_relay_client, --no-relay): cannot dial %s",
               txt);
        rp_hopen_fail(o, RINGP2P_EUNSUPPORTED, &ei);
        return;
    }
    rp_relay_target t;
    int r = rp_relay_addr_split(o->addr, o->addr_len, &t, &ei);
    if (r < 0) {
        ringp2p_errinfo e2;
        rp_err(&e2, r, "cannot dial %s through a relay: %s", txt, ei.msg);
        rp_hopen_fail(o, r, &e2);
        return;
    }
    if (ringp2p_peer_id_equal(&t.dst, &n->id) || ringp2p_peer_id_equal(&t.relay, &n->id) ||
        ringp2p_peer_id_equal(&t.relay, &t.dst)) {
        rp_err(&ei, RINGP2P_EINVAL, "cannot dial %s: the relay, the target and we must differ",
               txt);
        rp_hopen_fail(o, RINGP2P_EINVAL, &ei);
        return;
    }
    ringp2p_multiaddr *rma = NULL;
    rlink *l = link_new(n, true);
    r = l == NULL ? RINGP2P_ENOMEM
                  : ringp2p_multiaddr_from_bytes(t.relay_addr.base, t.relay_addr.len, &rma, NULL);
    if (r == 0) {
        l->o = o;
        l->relay = t.relay;
        l->peer = t.dst;
        static const char *const hop[1] = { RP_RELAY_HOP_PROTOCOL_ID };
        /* from here l belongs to d_opened, on the relay connection's shard */
        r = ringp2p_node_new_stream(n, rma, hop, 1, d_opened, l);
        ringp2p_multiaddr_free(rma);
        if (r < 0) {
            link_fail_open(l, r, "cannot reach it: %s", ringp2p_strerror(r));
            free(l);
        }
        return;
    }
    free(l);
    rp_hopen_fail(o, r, NULL);
}

/* ---- the stop protocol ---- */

static void stop_handler(ringp2p_node *n, ringp2p_stream *s, void *ctx)
{
    (void)ctx;
    rlink *l = link_new(n, false);
    if (l == NULL) {
        ringp2p_stream_reset(s);
        return;
    }
    l->s = s;
    l->relay = ringp2p_stream_conn(s)->peer;
    ringp2p_stream_set_callbacks(s, &link_cbs, l);
    link_arm(l, RP_RELAY_HANDSHAKE_TIMEOUT_MS);
}

/* ---- reservations ------------------------------------------------------------------------- */

/* A reservation attempt, on the relay connection's shard. */
typedef struct rreq {
    rsv *r;
    uint64_t gen;
    bool answered;
    uint8_t rx[RP_RELAY_FRAME_MAX];
    size_t rx_len;
} rreq;

enum { RES_DONE = 0, RES_LOST };

/* An outcome, posted to the relay's home shard. */
typedef struct rres {
    rsv *r;
    int kind;
    uint64_t gen;
    int err; /* 0: made or renewed */
    char msg[RINGP2P_ERRINFO_MSG_MAX];
    uint64_t expire;
    size_t naddrs;
    uint8_t addrs[RP_HOST_RADDRS_PER_RELAY][RP_OBSADDR_ADDR_MAX];
    size_t alen[RP_HOST_RADDRS_PER_RELAY];
} rres;

static void res_task(rp_shard *sh, void *arg);

/* Posts an outcome home from the shard we run on. */
static void res_post(rres *res)
{
    ringp2p_node *n = res->r->cl->node;
    rp_shard *from = rp_host_current_shard(n);
    if (from == NULL || rp_shard_post(from, res->r->home, res_task, res) != 0) free(res);
}

static void res_fail(rreq *q, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void res_fail(rreq *q, int err, const char *fmt, ...)
{
    rres *res = calloc(1, sizeof(*res));
    if (res == NULL) return; /* the attempt's deadline retries */
    res->r = q->r;
    res->kind = RES_DONE;
    res->gen = q->gen;
    res->err = err;
    va_list ap;
    va_start(ap, fmt);
    relay_msg(&q->r->relay, res->msg, sizeof(res->msg), fmt, ap);
    va_end(ap);
    res_post(res);
}

/* Adds the circuit address of relay address a (binary) to res, once. */
static void res_add_addr(rres *res, const rsv *r, const uint8_t *a, size_t len)
{
    if (res->naddrs == RP_HOST_RADDRS_PER_RELAY) return;
    uint8_t buf[RP_MADDR_MAX_BYTES];
    ssize_t k = rp_relay_circuit_addr(a, len, &r->relay, buf, sizeof(buf), NULL);
    if (k <= 0 || (size_t)k > RP_OBSADDR_ADDR_MAX) return;
    for (size_t i = 0; i < res->naddrs; i++)
        if (res->alen[i] == (size_t)k && memcmp(res->addrs[i], buf, (size_t)k) == 0) return;
    memcpy(res->addrs[res->naddrs], buf, (size_t)k);
    res->alen[res->naddrs++] = (size_t)k;
}

static void q_answer(rreq *q, ringp2p_stream *s)
{
    rsv *r = q->r;
    ringp2p_node *n = r->cl->node;
    const uint8_t *p = q->rx;
    rp_relay_hop_msg m;
    ringp2p_errinfo ei = { 0 };
    int rd = rp_relay_hop_read(&p, q->rx + q->rx_len, &m, &ei);
    if (rd == 0) return;
    q->answered = true;
    ringp2p_stream_close_write(s);
    if (rd < 0) {
        res_fail(q, RINGP2P_EPROTOCOL, "malformed answer to RESERVE: %s", ei.msg);
        return;
    }
    rp_relay_reservation rv;
    int32_t status = 0;
    int r2 = rp_relay_reserve_check(&m, &r->relay, &n->id, rp_host_unix_ns() / 1000000000u, &rv,
                                    &status, &ei);
    if (r2 < 0) {
        res_fail(q, r2, "%s: %s",
                 r2 == RINGP2P_ECONNREFUSED ? "reservation refused" : "unacceptable reservation",
                 ei.msg);
        return;
    }
    rres *res = calloc(1, sizeof(*res));
    if (res == NULL) return;
    res->r = r;
    res->kind = RES_DONE;
    res->gen = q->gen;
    res->expire = rv.expire;
    /* the address we reached the relay on first, then those it reported */
    res_add_addr(res, r, r->addr, r->addr_len);
    for (size_t i = 0; i < rv.n_addrs; i++) res_add_addr(res, r, rv.addrs[i].base, rv.addrs[i].len);
    res_post(res);
}

static void q_data(ringp2p_stream *s, void *ctx, const uint8_t *data, size_t len)
{
    rreq *q = ctx;
    if (q->answered) return;
    size_t take = sizeof(q->rx) - q->rx_len;
    if (take > len) take = len;
    memcpy(q->rx + q->rx_len, data, take);
    q->rx_len += take;
    q_answer(q, s);
}

static void q_eof(ringp2p_stream *s, void *ctx)
{
    rreq *q = ctx;
    if (!q->answered) {
        q->answered = true;
        res_fail(q, RINGP2P_ECONNRESET, "closed the hop stream without answering RESERVE");
    }
    ringp2p_stream_close_write(s);
}

static void q_close(ringp2p_stream *s, void *ctx, int err)
{
    rreq *q = ctx;
    (void)s;
    if (!q->answered)
        res_fail(q, err != 0 ? err : RINGP2P_ECONNRESET,
                 "the hop stream ended before the answer to RESERVE: %s",
                 ringp2p_strerror(err != 0 ? err : RINGP2P_ECONNRESET));
    free(q);
}

static const ringp2p_stream_callbacks q_cbs = {
    .on_data = q_data,
    .on_eof = q_eof,
    .on_close = q_close,
};

static void q_opened(ringp2p_node *n, ringp2p_stream *s, int err, const ringp2p_errinfo *ei,
                     void *ctx)
{
    rreq *q = ctx;
    (void)n;
    if (err < 0) {
        const char *why = ei != NULL && ei->msg[0] ? ei->msg : ringp2p_strerror(err);
        if (err == RINGP2P_ENEGOTIATION)
            res_fail(q, RINGP2P_ECONNREFUSED,
                     "reservation refused: it does not serve " RP_RELAY_HOP_PROTOCOL_ID
                     " (is its relay service on?): %s",
                     why);
        else
            res_fail(q, err, "cannot reach it: %s", why);
        free(q);
        return;
    }
    ringp2p_stream_set_callbacks(s, &q_cbs, q);
    uint8_t req[8];
    ssize_t k = rp_relay_reserve_write(req, sizeof(req));
    if (k < 0 || ringp2p_stream_write(s, req, (size_t)k) < 0) ringp2p_stream_reset(s);
}

/* ---- reservations: the home shard ---- */

static uint64_t backoff_next(rsv *r)
{
    uint64_t b = r->backoff_ms != 0 ? r->backoff_ms : RP_RELAY_CLIENT_BACKOFF_MIN_MS;
    r->backoff_ms = b * 2 > RP_RELAY_CLIENT_BACKOFF_MAX_MS ? RP_RELAY_CLIENT_BACKOFF_MAX_MS : b * 2;
    return b;
}

/* Publishes r's circuit addresses (n == 0: none) and, if they changed, re-advertises. */
static void rsv_set_addrs(rsv *r, size_t n, uint8_t (*addrs)[RP_OBSADDR_ADDR_MAX],
                          const size_t *alen)
{
    ringp2p_node *node = r->cl->node;
    rp_relay_client *cl = r->cl;
    pthread_mutex_lock(&node->amu);
    bool same = r->naddrs == n;
    for (size_t i = 0; same && i < n; i++)
        same = r->alen[i] == alen[i] && memcmp(r->addrs[i], addrs[i], alen[i]) == 0;
    if (!same) {
        r->naddrs = n;
        for (size_t i = 0; i < n; i++) {
            memcpy(r->addrs[i], addrs[i], alen[i]);
            r->alen[i] = alen[i];
        }
        node->nraddrs = 0;
        for (size_t k = 0; k < cl->nrsv; k++)
            for (size_t i = 0; i < cl->rsv[k].naddrs && node->nraddrs < RP_HOST_RADDRS_MAX; i++) {
                memcpy(node->raddrs[node->nraddrs], cl->rsv[k].addrs[i], cl->rsv[k].alen[i]);
                node->raddr_len[node->nraddrs++] = cl->rsv[k].alen[i];
            }
    }
    pthread_mutex_unlock(&node->amu);
    if (!same) rp_host_addrs_rebuild(node->shards[r->home]);
}

static void rsv_emit(rsv *r, int err, bool lost, uint64_t expire, const char *msg)
{
    ringp2p_node *n = r->cl->node;
    if (err == 0) {
        char rid[RINGP2P_PEER_ID_STR_MAX];
        rp_host_peer_text(&r->relay, rid, sizeof(rid));
        rp_logf(&n->log, RINGP2P_LOG_DEBUG, MOD, "reservation on %s until %llu", rid,
                (unsigned long long)expire);
    } else {
        rp_logf(&n->log, RINGP2P_LOG_INFO, MOD, "%s", msg);
    }
    if (n->cfg.ev_fn == NULL) return;
    ringp2p_reservation_info ri = {
        .relay = r->relay,
        .relay_addr = r->ma,
        .ok = err == 0,
        .lost = lost,
        .expire = err == 0 ? expire : 0,
        .error = err == 0 ? NULL : msg,
    };
    ringp2p_event ev = { .type = RINGP2P_EVENT_RESERVATION, .err = err, .reservation = &ri };
    n->cfg.ev_fn(n, &ev, n->cfg.ev_ctx);
}

static void rsv_arm(rsv *r, uint64_t delay_ns)
{
    rp_shard *sh = r->cl->node->shards[r->home]->sh;
    rp_timer_arm(rp_shard_timers(sh), &r->timer, rp_shard_now(sh) + delay_ns);
}

/* A failure or a loss: no circuit addresses, the event, a retry after the backoff. */
static void rsv_failed(rsv *r, int err, bool lost, const char *msg)
{
    r->gen++; /* an attempt still out no longer counts */
    rsv_set_addrs(r, 0, NULL, NULL);
    r->state = R_WAIT;
    rsv_emit(r, err, lost, 0, msg);
    if (!r->stopped) rsv_arm(r, backoff_next(r) * 1000000ull);
}

static void rsv_attempt(rsv *r)
{
    ringp2p_node *n = r->cl->node;
    if (r->stopped || n->shards[r->home]->stopping) return;
    rreq *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        rsv_failed(r, RINGP2P_ENOMEM, false, "out of memory for a reservation attempt");
        return;
    }
    q->r = r;
    q->gen = ++r->gen;
    r->state = R_PENDING;
    /* the attempt's deadline: a dial and the relay's answer */
    rsv_arm(r, (rp_host_limit(n, RINGP2P_LIMIT_DIAL_TIMEOUT_MS) + RP_RELAY_HANDSHAKE_TIMEOUT_MS) *
                   1000000ull);
    static const char *const hop[1] = { RP_RELAY_HOP_PROTOCOL_ID };
    int e = ringp2p_node_new_stream(n, r->ma, hop, 1, q_opened, q);
    if (e < 0) {
        free(q);
        char msg[RINGP2P_ERRINFO_MSG_MAX], rid[RINGP2P_PEER_ID_STR_MAX];
        rp_host_peer_text(&r->relay, rid, sizeof(rid));
        snprintf(msg, sizeof(msg), "relay %s: cannot reach it: %s", rid, ringp2p_strerror(e));
        rsv_failed(r, e, false, msg);
    }
}

static void rsv_timer(rp_timer *t, void *arg)
{
    rsv *r = arg;
    (void)t;
    if (r->stopped) return;
    if (r->state == R_PENDING) {
        char msg[RINGP2P_ERRINFO_MSG_MAX], rid[RINGP2P_PEER_ID_STR_MAX];
        rp_host_peer_text(&r->relay, rid, sizeof(rid));
        snprintf(msg, sizeof(msg), "relay %s: no answer to RESERVE in time", rid);
        rsv_failed(r, RINGP2P_ETIMEDOUT, r->naddrs > 0, msg);
        return;
    }
    rsv_attempt(r); /* renewal (HELD) or retry (WAIT, IDLE) */
}

static void res_task(rp_shard *sh, void *arg)
{
    rres *res = arg;
    rsv *r = res->r;
    (void)sh;
    if (r->stopped || r->cl->node->shards[r->home]->stopping) {
        free(res);
        return;
    }
    if (res->kind == RES_LOST) {
        if (r->naddrs > 0) rsv_failed(r, res->err, true, res->msg);
    } else if (res->gen == r->gen && r->state == R_PENDING) {
        if (res->err != 0) {
            rsv_failed(r, res->err, r->naddrs > 0, res->msg);
        } else {
            r->state = R_HELD;
            r->backoff_ms = 0;
            rsv_set_addrs(r, res->naddrs, res->addrs, res->alen);
            rsv_emit(r, 0, false, res->expire, NULL);
            uint64_t now_s = rp_host_unix_ns() / 1000000000u,
                     at = rp_relay_refresh_at(res->expire, now_s);
            rsv_arm(r, (at > now_s ? at - now_s : 1) * 1000000000ull);
        }
    }
    free(res);
}

static void rsv_start_task(rp_shard *sh, void *arg)
{
    rsv *r = arg;
    (void)sh;
    rsv_attempt(r);
}

/* ---- the client ---------------------------------------------------------------------------- */

int rp_relay_client_new(ringp2p_node *n, ringp2p_errinfo *ei)
{
    rp_relay_client *cl = calloc(1, sizeof(*cl));
    if (cl == NULL) return RINGP2P_ENOMEM;
    cl->node = n;
    for (size_t i = 0; i < n->cfg.nrelays; i++) {
        rsv *r = &cl->rsv[cl->nrsv];
        r->cl = cl;
        r->idx = (unsigned)i;
        memcpy(r->addr, n->cfg.relays[i], n->cfg.relay_len[i]);
        r->addr_len = n->cfg.relay_len[i];
        if (ringp2p_multiaddr_from_bytes(r->addr, r->addr_len, &r->ma, ei) < 0 ||
            ringp2p_multiaddr_peer_id(r->ma, &r->relay) != 0) {
            ringp2p_multiaddr_free(r->ma);
            rp_relay_client_free(cl);
            return rp_err(ei, RINGP2P_EMULTIADDR, "relay %zu: bad address", i);
        }
        rp_timer_init(&r->timer, rsv_timer, r);
        cl->nrsv++;
    }
    n->rclient = cl;
    int r = ringp2p_node_set_stream_handler(n, RP_RELAY_STOP_PROTOCOL_ID, stop_handler, cl);
    if (r < 0) return rp_err(ei, r, "relay client: cannot register %s", RP_RELAY_STOP_PROTOCOL_ID);
    return 0;
}

void rp_relay_client_free(rp_relay_client *cl)
{
    if (cl == NULL) return;
    for (size_t i = 0; i < cl->nrsv; i++) ringp2p_multiaddr_free(cl->rsv[i].ma);
    free(cl);
}

void rp_relay_client_start(ringp2p_node *n)
{
    rp_relay_client *cl = n->rclient;
    for (size_t i = 0; i < cl->nrsv; i++) {
        rsv *r = &cl->rsv[i];
        r->home = (unsigned)(i % n->nshards);
        while (rp_runtime_post(n->rt, r->home, rsv_start_task, r) == RINGP2P_EAGAIN) usleep(100);
    }
}

void rp_relay_client_stop_shard(rp_hshard *hs)
{
    rp_relay_client *cl = hs->node->rclient;
    if (cl == NULL) return;
    for (size_t i = 0; i < cl->nrsv; i++) {
        rsv *r = &cl->rsv[i];
        if (r->home != hs->idx) continue;
        r->stopped = true;
        rp_timer_cancel(&r->timer);
    }
}

void rp_relay_client_event(ringp2p_node *n, ringp2p_event_type type, const ringp2p_conn_info *ci)
{
    rp_relay_client *cl = n->rclient;
    if (type != RINGP2P_EVENT_DISCONNECTED || ci == NULL || ci->relayed) return;
    for (size_t i = 0; i < cl->nrsv; i++) {
        rsv *r = &cl->rsv[i];
        if (!ringp2p_peer_id_equal(&r->relay, &ci->peer)) continue;
        if (rp_host_dir_has(n, &ci->peer)) return; /* another connection to it is left */
        rres *res = calloc(1, sizeof(*res));
        if (res == NULL) return;
        char rid[RINGP2P_PEER_ID_STR_MAX];
        rp_host_peer_text(&r->relay, rid, sizeof(rid));
        res->r = r;
        res->kind = RES_LOST;
        res->err = RINGP2P_ECONNRESET;
        snprintf(res->msg, sizeof(res->msg),
                 "relay %s: the connection to it closed: the reservation is lost", rid);
        if (rp_shard_post(n->shards[ci->shard]->sh, r->home, res_task, res) != 0) free(res);
    }
}
