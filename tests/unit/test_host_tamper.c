/*
 * A middlebox between two nodes (a TCP proxy thread on plain sockets) that
 * tampers with one direction of a connection in the middle of a transfer:
 * flips a byte (in a frame's length, payload or tag, or at a raw offset),
 * drops, duplicates or swaps whole frames, deletes or repeats a few bytes.
 * Every case must end the connection with an error at the receiving node
 * (RINGP2P_EAUTH where the spec says so), the application must never see a
 * byte that differs from what was sent, what it saw must be a long prefix
 * that ends before the tampered frame, and the sending node must see the
 * connection close. Signed mode (docs/signed-mode.md §6, §7, §8) in detail;
 * Noise and TLS for the flipped byte and a dropped frame.
 *
 * The proxy follows each direction's framing so that it can aim at frame
 * parts: two multistream-select messages (varint-prefixed), then records
 * with a big-endian u16 length (Noise, signed: 2-byte header; TLS: 5-byte
 * header, length at offset 3).
 *
 * Only the code is checked here: once a connection is up, the public API reports its
 * failure as a code (stream on_close, RINGP2P_EVENT_DISCONNECTED) without the
 * ringp2p_errinfo message. The messages themselves are checked on the cores
 * (test_signed.c, test_noise.c, test_tls.c).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ringp2p/node.h"
#include "hostutil.h"
#include "testutil.h"

/* ---- the middlebox ------------------------------------------------------------------------ */

typedef enum tamper_kind {
    T_NONE,
    T_FLIP_RAW,     /* XOR one byte at offset `at` */
    T_FLIP_LEN,     /* the first record starting at or after `at`: its length's low byte ^ 1 */
    T_FLIP_PAYLOAD, /* ... a byte in the middle of its body */
    T_FLIP_TAG,     /* ... its last byte (the tag) */
    T_DROP_RECORD,  /* ... never forwarded */
    T_DUP_RECORD,   /* ... forwarded twice */
    T_SWAP_RECORDS, /* ... forwarded after the record that follows it */
    T_DROP_BYTES,   /* `len` bytes from offset `at` deleted (within one record) */
    T_DUP_BYTES,    /* `len` bytes from offset `at` forwarded twice (within one record) */
} tamper_kind;

enum { DIR_UP = 0, DIR_DOWN = 1 }; /* dialer -> listener, listener -> dialer */

typedef struct tamper {
    tamper_kind kind;
    int dir;
    uint64_t at;
    size_t len;
} tamper;

/* The record layout after multistream-select. */
typedef struct framing {
    size_t hdr;     /* header bytes */
    size_t len_off; /* offset of the u16 big-endian length of the body */
} framing;

static const framing FRAMING_U16 = { 2, 0 }; /* /noise, /ringp2p/signed/1.0.0 */
static const framing FRAMING_TLS = { 5, 3 }; /* TLS records */
static const framing FRAMING_RAW = { 0, 0 }; /* /plaintext/2.0.0: no records, any split */

typedef struct proxy proxy;

/* One direction: reads from `from`, forwards to `to` unit by unit. */
typedef struct pipe_dir {
    proxy *px;
    int dir, from, to;
    uint8_t *buf; /* received, not yet forwarded: at most one partial unit */
    size_t len, cap;
    uint64_t off;  /* stream offset of buf[0] */
    int mss_left;  /* multistream messages before the records */
    uint8_t *held; /* T_SWAP_RECORDS: the record waiting for its successor */
    size_t held_len;
    bool done; /* the tamper was applied */
} pipe_dir;

struct proxy {
    int lfd, port, target_port;
    framing fr;
    tamper t;
    pthread_t acceptor;
    int cfd, ufd; /* the dialer's and the listener's sockets */
    pipe_dir p[2];
    pthread_t pt[2];
    bool piping;
    _Atomic bool applied;   /* the tamper happened */
    _Atomic uint64_t bound; /* wire offset no delivered byte can come from beyond */
    _Atomic uint64_t moved[2];
};

static int send_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Length of the complete unit at buf[0..len), or 0 if incomplete. */
static size_t unit_len(const pipe_dir *d, const framing *fr)
{
    if (d->mss_left > 0) {
        size_t v = 0, i = 0;
        unsigned shift = 0;
        for (;;) {
            if (i >= d->len || i >= 9) return 0;
            v |= (size_t)(d->buf[i] & 0x7f) << shift;
            shift += 7;
            if ((d->buf[i++] & 0x80) == 0) break;
        }
        return d->len - i >= v ? i + v : 0;
    }
    if (fr->hdr == 0) return d->len;
    if (d->len < fr->hdr) return 0;
    size_t body = (size_t)d->buf[fr->len_off] << 8 | d->buf[fr->len_off + 1];
    return d->len >= fr->hdr + body ? fr->hdr + body : 0;
}

/* Forwards one complete unit u[0..n) that starts at stream offset `off`, tampering if due. */
static int forward(pipe_dir *d, uint8_t *u, size_t n, uint64_t off, bool record)
{
    proxy *px = d->px;
    const tamper *t = &px->t;
    if (d->dir != t->dir || d->done || t->kind == T_NONE) return send_all(d->to, u, n);
    if (d->held != NULL) { /* the swap: this record first, then the held one */
        /* Marked before sending, as every other case: once the successor is sent, the
         * receiver can fail and both stream ends close (run_case reads `applied` then)
         * before this thread runs again. */
        d->done = true;
        px->applied = true;
        int r = send_all(d->to, u, n);
        if (r == 0) r = send_all(d->to, d->held, d->held_len);
        free(d->held);
        d->held = NULL;
        return r;
    }
    bool raw = t->kind == T_FLIP_RAW || t->kind == T_DROP_BYTES || t->kind == T_DUP_BYTES;
    if (raw) {
        if (t->at < off || t->at >= off + n) return send_all(d->to, u, n);
        size_t i = (size_t)(t->at - off), k = t->len;
        if (i + k > n) k = n - i;
        d->done = true;
        px->applied = true;
        px->bound = t->at;
        switch (t->kind) {
        case T_FLIP_RAW: u[i] ^= 0x20; return send_all(d->to, u, n);
        case T_DROP_BYTES:
            if (send_all(d->to, u, i) < 0) return -1;
            return send_all(d->to, u + i + k, n - i - k);
        default: /* T_DUP_BYTES */
            if (send_all(d->to, u, i + k) < 0 || send_all(d->to, u + i, k) < 0) return -1;
            return send_all(d->to, u + i + k, n - i - k);
        }
    }
    if (!record || off < t->at) return send_all(d->to, u, n);
    const framing *fr = &px->fr;
    size_t body = n - fr->hdr;
    px->bound = off;
    switch (t->kind) {
    case T_FLIP_LEN: u[fr->len_off + 1] ^= 0x01; break;
    case T_FLIP_PAYLOAD: u[fr->hdr + body / 2] ^= 0x20; break;
    case T_FLIP_TAG: u[n - 1] ^= 0x20; break;
    case T_DROP_RECORD:
        d->done = true;
        px->applied = true;
        return 0;
    case T_DUP_RECORD:
        d->done = true;
        px->applied = true;
        px->bound = off + n; /* the first copy is genuine */
        if (send_all(d->to, u, n) < 0) return -1;
        return send_all(d->to, u, n);
    case T_SWAP_RECORDS:
        d->held = malloc(n);
        if (d->held == NULL) abort();
        memcpy(d->held, u, n);
        d->held_len = n;
        return 0;
    default: break;
    }
    d->done = true;
    px->applied = true;
    return send_all(d->to, u, n);
}

static void *pipe_main(void *arg)
{
    pipe_dir *d = arg;
    for (;;) {
        if (d->cap - d->len < 65536) {
            d->cap = d->cap * 2 + 65536;
            d->buf = realloc(d->buf, d->cap);
            if (d->buf == NULL) abort(); /* not the test's thread: no cr_assert here */
        }
        ssize_t n = recv(d->from, d->buf + d->len, d->cap - d->len, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        d->len += (size_t)n;
        d->px->moved[d->dir] += (uint64_t)n;
        size_t u;
        bool failed = false;
        while ((u = unit_len(d, &d->px->fr)) > 0) {
            bool record = d->mss_left == 0;
            if (!record) d->mss_left--;
            if (forward(d, d->buf, u, d->off, record) < 0) {
                failed = true;
                break;
            }
            memmove(d->buf, d->buf + u, d->len - u);
            d->len -= u;
            d->off += u;
        }
        if (failed) break;
    }
    /* One side ended or failed: end both, so each node sees its connection close. */
    shutdown(d->to, SHUT_RDWR);
    shutdown(d->from, SHUT_RDWR);
    return NULL;
}

static void *accept_main(void *arg)
{
    proxy *px = arg;
    px->cfd = accept(px->lfd, NULL, NULL);
    if (px->cfd < 0) return NULL;
    px->ufd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)px->target_port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(px->ufd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(px->cfd);
        close(px->ufd);
        px->cfd = px->ufd = -1;
        return NULL;
    }
    int fds[2][2] = { { px->cfd, px->ufd }, { px->ufd, px->cfd } };
    for (int i = 0; i < 2; i++) {
        px->p[i] =
            (pipe_dir){ .px = px, .dir = i, .from = fds[i][0], .to = fds[i][1], .mss_left = 2 };
        pthread_create(&px->pt[i], NULL, pipe_main, &px->p[i]);
    }
    px->piping = true;
    return NULL;
}

/* Starts a proxy on 127.0.0.1 that forwards one connection to target_port. */
static void proxy_start(proxy *px, int target_port, framing fr, tamper t)
{
    memset(px, 0, sizeof(*px));
    px->cfd = px->ufd = -1;
    px->target_port = target_port;
    px->fr = fr;
    px->t = t;
    px->bound = UINT64_MAX;
    px->lfd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(px->lfd, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(px->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(px->lfd, 4), 0);
    socklen_t sl = sizeof(sa);
    cr_assert_eq(getsockname(px->lfd, (struct sockaddr *)&sa, &sl), 0);
    px->port = ntohs(sa.sin_port);
    pthread_create(&px->acceptor, NULL, accept_main, px);
}

static void proxy_stop(proxy *px)
{
    shutdown(px->lfd, SHUT_RDWR); /* an accept still waiting returns */
    pthread_join(px->acceptor, NULL);
    if (px->piping) {
        shutdown(px->cfd, SHUT_RDWR);
        shutdown(px->ufd, SHUT_RDWR);
        for (int i = 0; i < 2; i++) {
            pthread_join(px->pt[i], NULL);
            free(px->p[i].buf);
            free(px->p[i].held);
        }
    }
    if (px->cfd >= 0) close(px->cfd);
    if (px->ufd >= 0) close(px->ufd);
    close(px->lfd);
}

/* ---- the transfer ------------------------------------------------------------------------- */

#define SINK   "/tamper/sink/1.0.0"   /* the dialer sends, the listener checks */
#define SOURCE "/tamper/source/1.0.0" /* the listener sends, the dialer checks */
enum { XFER_LEN = 16 << 20, SEED = 77 };

/* One end of the test stream; `sending` decides its role. */
typedef struct end {
    bool sending;
    size_t sent, got;
    _Atomic size_t got_pub;
    _Atomic bool bad, closed;
    _Atomic int close_err, open_err;
    waiter *w;
} end;

/* What each node saw of its connection. */
typedef struct side {
    _Atomic int disconnected;
    _Atomic int err; /* DISCONNECTED's err */
    waiter *w;
} side;

typedef struct ends {
    end cli, srv; /* the dialer's end and the listener's */
} ends;

static void on_event(ringp2p_node *n, const ringp2p_event *ev, void *ctx)
{
    side *s = ctx;
    (void)n;
    if (ev->type != RINGP2P_EVENT_DISCONNECTED) return;
    s->err = ev->err;
    s->disconnected++;
    w_signal(s->w);
}

static void pump(ringp2p_stream *s, end *e)
{
    uint8_t buf[16384];
    while (e->sent < XFER_LEN) {
        size_t n = XFER_LEN - e->sent < sizeof(buf) ? XFER_LEN - e->sent : sizeof(buf);
        for (size_t i = 0; i < n; i++) buf[i] = pat(SEED, e->sent + i);
        ssize_t r = ringp2p_stream_write(s, buf, n);
        if (r == RINGP2P_EAGAIN) return;
        if (r < 0) return; /* the connection is going; on_close tells */
        e->sent += n;
    }
    ringp2p_stream_close_write(s);
}

static void e_data(ringp2p_stream *s, void *ctx, const uint8_t *d, size_t len)
{
    end *e = ctx;
    (void)s;
    if (e->sending) {
        e->bad = true; /* the peer never writes */
        return;
    }
    for (size_t i = 0; i < len; i++)
        if (d[i] != pat(SEED, e->got + i)) e->bad = true;
    e->got += len;
    e->got_pub = e->got;
}

static void e_eof(ringp2p_stream *s, void *ctx)
{
    end *e = ctx;
    if (!e->sending) ringp2p_stream_close_write(s); /* all in: finish our side */
}

static void e_writable(ringp2p_stream *s, void *ctx)
{
    end *e = ctx;
    if (e->sending) pump(s, e);
}

static void e_close(ringp2p_stream *s, void *ctx, int err)
{
    end *e = ctx;
    (void)s;
    e->close_err = err;
    e->closed = true;
    w_signal(e->w);
}

static const ringp2p_stream_callbacks e_cbs = {
    .on_data = e_data,
    .on_eof = e_eof,
    .on_writable = e_writable,
    .on_close = e_close,
};

static void start_end(ringp2p_stream *s, end *e)
{
    ringp2p_stream_set_callbacks(s, &e_cbs, e);
    if (e->sending) pump(s, e);
}

static void srv_handler(ringp2p_node *n, ringp2p_stream *s, void *ctx)
{
    ends *es = ctx;
    (void)n;
    start_end(s, &es->srv);
}

static void cli_opened(ringp2p_node *n, ringp2p_stream *s, int err, const ringp2p_errinfo *ei,
                       void *ctx)
{
    end *e = ctx;
    (void)n;
    (void)ei;
    if (err < 0) {
        e->open_err = err;
        e->closed = true;
        w_signal(e->w);
        return;
    }
    start_end(s, e);
}

/* What one run produced. */
typedef struct outcome {
    int recv_close, send_close; /* stream on_close codes: receiving and sending end */
    int recv_disc, send_disc;   /* DISCONNECTED err on the receiving and the sending node */
    size_t delivered;           /* bytes the receiving application got */
    bool bad, applied;
    uint64_t bound, moved;
} outcome;

static int port_of(ringp2p_node *n)
{
    ringp2p_multiaddr *a = addr_of(n);
    char t[256];
    cr_assert_geq(ringp2p_multiaddr_to_string(a, t, sizeof(t)), 0);
    ringp2p_multiaddr_free(a);
    int port = 0;
    cr_assert_eq(sscanf(t, "/ip4/127.0.0.1/tcp/%d/", &port), 1, "%s", t);
    return port;
}

/* Runs one transfer through a proxy doing `t`; `fails` when the connection must end. */
static outcome run_case(const char *sec, framing fr, tamper t, bool fails)
{
    waiter wc, wd; /* stream closes, connection losses */
    w_init(&wc);
    w_init(&wd);
    side ss = { .w = &wd }, cs = { .w = &wd };
    ends es;
    memset(&es, 0, sizeof(es));
    es.cli = (end){ .sending = t.dir == DIR_UP, .w = &wc };
    es.srv = (end){ .sending = t.dir == DIR_DOWN, .w = &wc };
    ringp2p_node *srv = host_node(true, sec, on_event, &ss);
    ringp2p_node *cli = host_node(false, sec, on_event, &cs);
    cr_assert_eq(
        ringp2p_node_set_stream_handler(srv, t.dir == DIR_UP ? SINK : SOURCE, srv_handler, &es), 0);
    proxy px;
    proxy_start(&px, port_of(srv), fr, t);
    char id[RINGP2P_PEER_ID_STR_MAX], text[256];
    ringp2p_peer_id_to_string(ringp2p_node_id(srv), id, sizeof(id));
    snprintf(text, sizeof(text), "/ip4/127.0.0.1/tcp/%d/p2p/%s", px.port, id);
    ringp2p_multiaddr *to;
    cr_assert_eq(ringp2p_multiaddr_parse(text, &to, NULL), 0);
    const char *protos[1] = { t.dir == DIR_UP ? SINK : SOURCE };
    cr_assert_eq(ringp2p_node_new_stream(cli, to, protos, 1, cli_opened, &es.cli), 0);
    ringp2p_multiaddr_free(to);
    /* Both stream ends close, and, when it fails, both nodes report the connection gone. */
    int got = w_wait(&wc, 2, 20000);
    cr_assert_eq(got, 2, "%s: %d of 2 stream ends closed (cli %d, srv %d)", sec, got,
                 (int)es.cli.closed, (int)es.srv.closed);
    cr_assert_eq(es.cli.open_err, 0, "%s: the stream did not open (%d)", sec, (int)es.cli.open_err);
    end *rx = t.dir == DIR_UP ? &es.srv : &es.cli, *tx = t.dir == DIR_UP ? &es.cli : &es.srv;
    if (fails && rx->close_err != 0) { /* a clean close fails in the caller's checks, at once */
        got = w_wait(&wd, 2, 20000);
        cr_assert_eq(got, 2, "%s: %d of 2 nodes reported the connection lost (cli %d, srv %d)", sec,
                     got, (int)cs.disconnected, (int)ss.disconnected);
    }
    side *rxs = t.dir == DIR_UP ? &ss : &cs, *txs = t.dir == DIR_UP ? &cs : &ss;
    outcome o = {
        .recv_close = rx->close_err,
        .send_close = tx->close_err,
        .recv_disc = rxs->disconnected ? rxs->err : 1,
        .send_disc = txs->disconnected ? txs->err : 1,
        .delivered = rx->got_pub,
        .bad = rx->bad || tx->bad,
        .applied = px.applied,
        .bound = px.bound,
        .moved = px.moved[t.dir],
    };
    ringp2p_node_free(cli);
    ringp2p_node_free(srv);
    proxy_stop(&px);
    return o;
}

/*
 * The checks every tampered case shares: the receiving end failed with one of `codes`
 * (stream and connection alike), nothing wrong was delivered, what was delivered ends
 * before the tampered record and is most of what came before it, and the sender saw its
 * stream fail and its connection close.
 */
static void check_tampered(const char *what, const outcome *o, const int *codes, size_t ncodes)
{
    cr_assert(o->applied, "%s: the middlebox never tampered (moved %llu bytes)", what,
              (unsigned long long)o->moved);
    bool known = false;
    for (size_t i = 0; i < ncodes; i++) known |= o->recv_close == codes[i];
    cr_assert(known, "%s: the receiving stream closed with %d (%s)", what, o->recv_close,
              ringp2p_errname(o->recv_close));
    cr_assert_eq(o->recv_disc, o->recv_close, "%s: the receiving node's DISCONNECTED says %d (%s)",
                 what, o->recv_disc, ringp2p_errname(o->recv_disc));
    cr_assert(!o->bad, "%s: the application saw a byte that was not sent", what);
    cr_assert_leq(o->delivered, o->bound,
                  "%s: %zu bytes delivered, but the tampered record "
                  "starts at stream byte %llu",
                  what, o->delivered, (unsigned long long)o->bound);
    /* Before the record: connection set-up, identify and muxer headers (a few KiB); for a
     * raw offset, the start of the record holding it (< 64 KiB); and what was verified but
     * not yet handed over when the connection failed (at most one 64 KiB receive). */
    cr_assert_geq(o->delivered + (192u << 10), o->bound,
                  "%s: only %zu bytes delivered of the %llu before the tampered record", what,
                  o->delivered, (unsigned long long)o->bound);
    cr_assert_lt(o->send_close, 0, "%s: the sending stream closed cleanly", what);
    cr_assert_eq(o->send_disc, 0, "%s: the sending node's DISCONNECTED says %d (%s)", what,
                 o->send_disc, ringp2p_errname(o->send_disc));
    cr_log_info("%s: receiver %s, %zu of %llu bytes before the record delivered; sender %s", what,
                ringp2p_errname(o->recv_close), o->delivered, (unsigned long long)o->bound,
                ringp2p_errname(o->send_close));
}

static const int AUTH_ONLY[] = { RINGP2P_EAUTH };
static const int AUTH_OR_PROTOCOL[] = { RINGP2P_EAUTH, RINGP2P_EPROTOCOL };
#define CODES(a) a, sizeof(a) / sizeof((a)[0])

enum { AT = 4 << 20 }; /* well past the handshake and identify, a quarter into the transfer */

TestSuite(host_tamper, .timeout = 120);

/* The control: the same proxy without tampering is invisible (byte-exact, clean closes). */
Test(host_tamper, untampered_proxy_is_transparent)
{
    for (int dir = 0; dir < 2; dir++) {
        outcome o = run_case("signed", FRAMING_U16, (tamper){ T_NONE, dir, 0, 0 }, false);
        cr_assert(!o.bad, "dir %d: wrong bytes", dir);
        cr_assert_eq(o.delivered, XFER_LEN, "dir %d: %zu of %d bytes", dir, o.delivered, XFER_LEN);
        cr_assert_eq(o.recv_close, 0, "dir %d: %s", dir, ringp2p_errname(o.recv_close));
        cr_assert_eq(o.send_close, 0, "dir %d: %s", dir, ringp2p_errname(o.send_close));
    }
}

/*
 * Signed mode, one byte changed: in a frame's payload (both directions), its length, its
 * tag, and at a raw offset. Each is a frame that does not authenticate (§6): EAUTH.
 */
Test(host_tamper, signed_flipped_byte)
{
    static const struct {
        const char *what;
        tamper t;
    } cases[] = {
        { "payload byte, upload", { T_FLIP_PAYLOAD, DIR_UP, AT, 0 } },
        { "payload byte, download", { T_FLIP_PAYLOAD, DIR_DOWN, AT, 0 } },
        { "length byte, upload", { T_FLIP_LEN, DIR_UP, AT, 0 } },
        { "tag byte, download", { T_FLIP_TAG, DIR_DOWN, AT, 0 } },
        { "raw byte, upload", { T_FLIP_RAW, DIR_UP, AT + 12345, 0 } },
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        outcome o = run_case("signed", FRAMING_U16, cases[c].t, true);
        char what[96];
        snprintf(what, sizeof(what), "signed, %s", cases[c].what);
        check_tampered(what, &o, CODES(AUTH_ONLY));
    }
}

/*
 * Signed mode, frames dropped, duplicated or reordered (§8: each fails at its new
 * position, EAUTH), and bytes deleted or repeated inside a frame, which shifts every frame
 * boundary after it: the receiver reads a tag from the wrong place (EAUTH) or, if a
 * payload byte pair lands where a length goes, a length below 16 (EPROTOCOL).
 */
Test(host_tamper, signed_dropped_duplicated_reordered)
{
    static const struct {
        const char *what;
        tamper t;
        bool auth_only;
    } cases[] = {
        { "frame dropped, upload", { T_DROP_RECORD, DIR_UP, AT, 0 }, true },
        { "frame duplicated, download", { T_DUP_RECORD, DIR_DOWN, AT, 0 }, true },
        { "frames swapped, upload", { T_SWAP_RECORDS, DIR_UP, AT, 0 }, true },
        { "1000 bytes deleted, download", { T_DROP_BYTES, DIR_DOWN, AT + 777, 1000 }, false },
        { "1000 bytes repeated, upload", { T_DUP_BYTES, DIR_UP, AT + 777, 1000 }, false },
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        outcome o = run_case("signed", FRAMING_U16, cases[c].t, true);
        char what[96];
        snprintf(what, sizeof(what), "signed, %s", cases[c].what);
        if (cases[c].auth_only)
            check_tampered(what, &o, CODES(AUTH_ONLY));
        else
            check_tampered(what, &o, CODES(AUTH_OR_PROTOCOL));
    }
}

/* Noise: a flipped byte in a sealed record, at a raw offset, and a dropped record. */
Test(host_tamper, noise_tampered)
{
    static const struct {
        const char *what;
        tamper t;
    } cases[] = {
        { "payload byte, upload", { T_FLIP_PAYLOAD, DIR_UP, AT, 0 } },
        { "raw byte, download", { T_FLIP_RAW, DIR_DOWN, AT + 4321, 0 } },
        { "record dropped, download", { T_DROP_RECORD, DIR_DOWN, AT, 0 } },
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        outcome o = run_case("noise", FRAMING_U16, cases[c].t, true);
        char what[96];
        snprintf(what, sizeof(what), "noise, %s", cases[c].what);
        check_tampered(what, &o, CODES(AUTH_ONLY));
    }
}

/*
 * TLS 1.3: a flipped byte in a record body and a dropped record fail the record's AEAD
 * (bad_record_mac: EAUTH). A byte at a raw offset may land in a record header, which
 * libssl reports as a protocol error instead.
 */
Test(host_tamper, tls_tampered)
{
    ringp2p_config *cfg = ringp2p_config_new();
    cr_assert_not_null(cfg);
    ringp2p_errinfo ei;
    int r = ringp2p_config_security(cfg, "tls", &ei);
    ringp2p_config_free(cfg);
    if (r == RINGP2P_EUNSUPPORTED) cr_skip_test("TLS is not wired into the host: %s", ei.msg);
    cr_assert_eq(r, 0, "%s", ei.msg);
    static const struct {
        const char *what;
        tamper t;
        bool auth_only;
    } cases[] = {
        { "record body byte, upload", { T_FLIP_PAYLOAD, DIR_UP, AT, 0 }, true },
        { "record dropped, download", { T_DROP_RECORD, DIR_DOWN, AT, 0 }, true },
        { "raw byte, download", { T_FLIP_RAW, DIR_DOWN, AT + 4321, 0 }, false },
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        outcome o = run_case("tls", FRAMING_TLS, cases[c].t, true);
        char what[96];
        snprintf(what, sizeof(what), "tls, %s", cases[c].what);
        if (cases[c].auth_only)
            check_tampered(what, &o, CODES(AUTH_ONLY));
        else
            check_tampered(what, &o, CODES(AUTH_OR_PROTOCOL));
    }
}

/*
 * The harness catches what it is meant to: /plaintext/2.0.0 has no integrity, so the same
 * middlebox changes a byte the application then sees, and the check of every delivered
 * byte reports it. (Should the byte land in a yamux header instead, the muxer fails the
 * connection: also an error, never a silent success.)
 */
Test(host_tamper, plaintext_tamper_reaches_the_application)
{
    outcome o =
        run_case("plaintext", FRAMING_RAW, (tamper){ T_FLIP_RAW, DIR_UP, AT + 999, 0 }, false);
    cr_assert(o.applied);
    if (o.recv_close == 0) {
        cr_assert(o.bad, "a flipped byte went unnoticed by the checker");
        cr_assert_eq(o.delivered, XFER_LEN);
    } else {
        cr_log_info("plaintext: the flip hit a muxer header: %s", ringp2p_errname(o.recv_close));
    }
}
