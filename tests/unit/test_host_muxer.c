/*
 * The host's stream muxers end to end over loopback (two in-process nodes,
 * two shards each): /mplex/6.7.0 beside /yamux/1.0.0, chosen by Noise's early
 * negotiation or by multistream-select from each node's preference list;
 * echoed streams checked byte for byte; refusals checked by code and message;
 * mplex's limits (inbound stream flood, unread buffer of a paused stream,
 * reading paused while a stream is full) seen from the application.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/host.h"
#include "ringp2p/node.h"
#include "hostutil.h"
#include "testutil.h"

#define MPLEX "/mplex/6.7.0"
#define YAMUX "/yamux/1.0.0"

/* ---- helpers ------------------------------------------------------------------------------ */

/* What a node saw: CONNECTED events and the muxer of the last one. */
typedef struct muxlog {
    _Atomic int connected;
    _Atomic(const char *) muxer; /* the info's string: static, outlives the event */
} muxlog;

static void on_event(ringp2p_node *n, const ringp2p_event *ev, void *ctx)
{
    muxlog *l = ctx;
    (void)n;
    if (ev->type != RINGP2P_EVENT_CONNECTED) return;
    l->muxer = ev->conn->muxer;
    l->connected++;
}

/* Counts the host's "reading paused" debug lines (mplex blocked on a full stream). */
static void count_blocks(void *ctx, ringp2p_log_level level, const char *module, const char *msg)
{
    (void)level;
    (void)module;
    if (strstr(msg, "reading paused") != NULL) atomic_fetch_add((_Atomic int *)ctx, 1);
}

/*
 * A started node (2 shards) with security list `sec` and muxer list `mux`
 * (NULL: the defaults), listening on 127.0.0.1:0 when `listen`,
 * RINGP2P_LIMIT_STREAMS_INBOUND set when `max_in` > 0, mplex's block timeout
 * set to `block_ms` when > 0 (the internal test hook), and the blocks it
 * logs counted in *blocks when not NULL.
 */
static ringp2p_node *mk_node_ex(bool listen, const char *sec, const char *mux, muxlog *log,
                                uint64_t max_in, uint64_t block_ms, _Atomic int *blocks)
{
    ringp2p_config *cfg = host_config(listen ? HOST_LOOPBACK : NULL, 2);
    ringp2p_errinfo ei;
    if (sec != NULL) cr_assert_eq(ringp2p_config_security(cfg, sec, &ei), 0, "%s", ei.msg);
    if (mux != NULL) cr_assert_eq(ringp2p_config_muxers(cfg, mux, &ei), 0, "%s", ei.msg);
    if (max_in > 0) ringp2p_config_limit(cfg, RINGP2P_LIMIT_STREAMS_INBOUND, max_in);
    if (log != NULL) ringp2p_config_events(cfg, on_event, log);
    cfg->mplex_block_ms = block_ms;
    if (blocks != NULL) ringp2p_config_log(cfg, RINGP2P_LOG_DEBUG, count_blocks, blocks);
    return host_start(host_new(cfg));
}

static ringp2p_node *mk_node(bool listen, const char *sec, const char *mux, muxlog *log,
                             uint64_t max_in)
{
    return mk_node_ex(listen, sec, mux, log, max_in, 0, NULL);
}

/* ---- tests -------------------------------------------------------------------------------- */

TestSuite(host_muxer, .timeout = 90);

/*
 * mplex on both sides, under Noise and plaintext: 24 concurrent echo streams
 * of 256 KiB and up (over 6 MiB each way) come back byte-exact, and both
 * ends' connection info names mplex.
 */
Test(host_muxer, mplex_echo_many_streams)
{
    static const char *const secs[] = { "noise", "plaintext" };
    enum { STREAMS = 24, LEN = 256 << 10 };
    for (size_t c = 0; c < sizeof(secs) / sizeof(secs[0]); c++) {
        muxlog log = { 0 };
        ringp2p_node *srv = mk_node(true, secs[c], "mplex", &log, 0);
        ringp2p_node *cli = mk_node(false, secs[c], "mplex", NULL, 0);
        ringp2p_multiaddr *to = addr_of(srv);
        static echo_job jobs[STREAMS];
        /* lengths not frame-aligned */
        echo_many(cli, to, jobs, STREAMS, (uint32_t)(c * 100 + 1), LEN, 4099, secs[c], NULL, MPLEX);
        cr_assert_eq(log.connected, 1, "%s: one connection", secs[c]);
        cr_assert_str_eq(log.muxer, MPLEX, "%s: listener's info", secs[c]);
        ringp2p_node_free(cli);
        ringp2p_node_free(srv);
        ringp2p_multiaddr_free(to);
    }
}

/*
 * The dialer's preference wins wherever the listener supports it, through
 * Noise's early negotiation and through multistream-select (plaintext) alike.
 * Rows: dialer muxers, listener muxers (NULL: default), agreed protocol ID.
 */
Test(host_muxer, preference_negotiation)
{
    static const struct {
        const char *dialer, *listener, *id;
    } cases[] = {
        { "mplex,yamux", "yamux,mplex", MPLEX }, { "yamux,mplex", "mplex,yamux", YAMUX },
        { "yamux,mplex", "mplex", MPLEX },       { "mplex,yamux", NULL, YAMUX },
        { "mplex", "yamux,mplex", MPLEX },       { NULL, "mplex,yamux", YAMUX },
    };
    static const char *const secs[] = { "noise", "plaintext" };
    for (size_t k = 0; k < sizeof(secs) / sizeof(secs[0]); k++) {
        for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
            muxlog log = { 0 };
            ringp2p_node *srv = mk_node(true, secs[k], cases[c].listener, &log, 0);
            ringp2p_node *cli = mk_node(false, secs[k], cases[c].dialer, NULL, 0);
            ringp2p_multiaddr *to = addr_of(srv);
            char what[64];
            snprintf(what, sizeof(what), "%s row %zu", secs[k], c);
            echo_job j = { .seed = 7, .len = 100000 };
            echo_wait(cli, to, &j, 20000, what);
            echo_check(what, &j, 1, NULL, cases[c].id);
            cr_assert_str_eq(log.muxer, cases[c].id, "%s row %zu listener", secs[k], c);
            ringp2p_node_free(cli);
            ringp2p_node_free(srv);
            ringp2p_multiaddr_free(to);
        }
    }
}

/*
 * No muxer in common: the dial fails with RINGP2P_ENEGOTIATION and a message
 * about the muxer (Noise's early negotiation or multistream-select), and the
 * listener never reports a connection.
 */
Test(host_muxer, refused_without_common_muxer)
{
    static const struct {
        const char *sec, *dialer, *listener, *msg;
    } cases[] = {
        { "noise", "mplex", NULL, "no stream muxer in common" },
        { "noise", "yamux", "mplex", "no stream muxer in common" },
        { "plaintext", "mplex", NULL, "no common muxer" },
        { "plaintext", "yamux", "mplex", "no common muxer" },
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        muxlog log = { 0 };
        ringp2p_node *srv = mk_node(true, cases[c].sec, cases[c].listener, &log, 0);
        ringp2p_node *cli = mk_node(false, cases[c].sec, cases[c].dialer, NULL, 0);
        ringp2p_multiaddr *to = addr_of(srv);
        char what[32];
        snprintf(what, sizeof(what), "row %zu", c);
        echo_job j = { .seed = 1, .len = 10 };
        echo_wait(cli, to, &j, 20000, what);
        cr_assert_eq(j.open_err, RINGP2P_ENEGOTIATION, "row %zu: got %d: %s", c, j.open_err,
                     j.errmsg);
        cr_assert_not_null(strstr(j.errmsg, cases[c].msg), "row %zu: %s", c, j.errmsg);
        cr_assert_eq(log.connected, 0, "row %zu: the listener accepted", c);
        ringp2p_node_free(cli);
        ringp2p_node_free(srv);
        ringp2p_multiaddr_free(to);
    }
}

/* The muxer list parser: known names, refusals with their codes and a message. */
Test(host_muxer, config_lists)
{
    static const host_list_case cases[] = {
        { "yamux", 0 },
        { "mplex", 0 },
        { "mplex, yamux", 0 },
        { "yamux,mplex,yamux", 0 },
        { "quic", RINGP2P_EUNSUPPORTED },
        { "mplex,spdy", RINGP2P_EUNSUPPORTED },
        { "", RINGP2P_EINVAL },
        { ",", RINGP2P_EUNSUPPORTED }, /* an empty name is an unknown one */
    };
    check_lists(ringp2p_config_muxers, cases, sizeof(cases) / sizeof(cases[0]));
}

/* After a refused list the node keeps the previous one: mplex, not the default yamux. */
Test(host_muxer, failed_list_keeps_previous)
{
    muxlog log = { 0 };
    ringp2p_node *srv =
        host_node_after_failed_list(ringp2p_config_muxers, "mplex", "yamux,quic", on_event, &log);
    ringp2p_node *cli = mk_node(false, NULL, "yamux,mplex", NULL, 0);
    ringp2p_multiaddr *to = addr_of(srv);
    echo_job j = { .seed = 3, .len = 5000 };
    echo_wait(cli, to, &j, 20000, "after a failed list");
    echo_check("after a failed list", &j, 1, NULL, MPLEX);
    ringp2p_node_free(cli);
    ringp2p_node_free(srv);
    ringp2p_multiaddr_free(to);
}

/* ---- limits ------------------------------------------------------------------------------- */

#define SINK "/test/sink/1.0.0"

/* The listener's side of SINK streams: paused from the start, never read. */
typedef struct sinklog {
    _Atomic int opened, closed, close_err;
    _Atomic uint64_t opened_ms, closed_ms; /* monotonic */
    waiter *w;
} sinklog;

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sink_close(ringp2p_stream *s, void *ctx, int err)
{
    sinklog *l = ctx;
    (void)s;
    l->closed_ms = mono_ms();
    l->close_err = err;
    l->closed++;
    w_signal(l->w);
}

static const ringp2p_stream_callbacks sink_cbs = { .on_close = sink_close };

static void sink_handler(ringp2p_node *n, ringp2p_stream *s, void *ctx)
{
    sinklog *l = ctx;
    (void)n;
    ringp2p_stream_set_callbacks(s, &sink_cbs, l);
    ringp2p_stream_pause_read(s);
    l->opened_ms = mono_ms();
    l->opened++;
}

/* The dialer's side of a SINK stream: writes `len` bytes (or forever when 0), never closes. */
typedef struct feeder {
    _Atomic size_t sent_at_close; /* sent when on_close ran */
    size_t len, sent;
    _Atomic int open_err, close_err;
    _Atomic bool closed;
    waiter *w;
} feeder;

static void feed_pump(ringp2p_stream *s, feeder *f)
{
    static uint8_t buf[16384];
    while (f->len == 0 || f->sent < f->len) {
        ssize_t r = ringp2p_stream_write(s, buf, sizeof(buf));
        if (r < 0) return; /* EAGAIN: on_writable; else on_close follows */
        f->sent += sizeof(buf);
    }
}

static void feed_writable(ringp2p_stream *s, void *ctx)
{
    feed_pump(s, ctx);
}

static void feed_close(ringp2p_stream *s, void *ctx, int err)
{
    feeder *f = ctx;
    (void)s;
    f->sent_at_close = f->sent;
    f->close_err = err;
    f->closed = true;
    w_signal(f->w);
}

static const ringp2p_stream_callbacks feed_cbs = { .on_writable = feed_writable,
                                                   .on_close = feed_close };

static void feed_open(ringp2p_node *n, ringp2p_stream *s, int err, const ringp2p_errinfo *ei,
                      void *ctx)
{
    feeder *f = ctx;
    (void)n;
    (void)ei;
    if (err < 0) {
        f->open_err = err;
        w_signal(f->w);
        return;
    }
    ringp2p_stream_set_callbacks(s, &feed_cbs, f);
    feed_pump(s, f);
}

/*
 * mplex has no flow control: a stream the listener has paused is written to
 * without end. Once its unread bytes fill mplex's 4 MiB buffer, the
 * listener stops reading the connection (the writer is held back by TCP,
 * not buffered without bound) and only after the block timeout (here
 * 1000 ms, through the test hook) resets the stream: RINGP2P_ELIMIT on the
 * listener, a reset at the writer. Echo streams on the same connection wait
 * meanwhile (head-of-line blocking), then finish byte-exact, and a new
 * stream still opens.
 */
Test(host_muxer, mplex_paused_stream_reset_after_block_timeout)
{
    enum { BLOCK_MS = 1000 };
    waiter sw;
    w_init(&sw);
    sinklog sl = { .w = &sw };
    _Atomic int blocks = 0;
    ringp2p_node *srv = mk_node_ex(true, NULL, "mplex", NULL, 0, BLOCK_MS, &blocks);
    cr_assert_eq(ringp2p_node_set_stream_handler(srv, SINK, sink_handler, &sl), 0);
    ringp2p_node *cli = mk_node(false, NULL, "mplex", NULL, 0);
    ringp2p_multiaddr *to = addr_of(srv);

    waiter w;
    w_init(&w);
    enum { ECHOES = 4 };
    static echo_job jobs[ECHOES + 1];
    memset(jobs, 0, sizeof(jobs));
    echo_start_many(cli, to, jobs, ECHOES, 50, 1u << 20, 777, &w);
    feeder f = { .len = 0, .w = &w }; /* writes until reset */
    const char *protos[1] = { SINK };
    cr_assert_eq(ringp2p_node_new_stream(cli, to, protos, 1, feed_open, &f), 0);

    cr_assert_eq(w_wait(&sw, 1, 30000), 1, "the paused stream was never reset");
    cr_assert_eq(sl.close_err, RINGP2P_ELIMIT, "listener's paused stream closed with %d",
                 sl.close_err);
    /* not at the limit but after the block timeout (the buffer fills in milliseconds) */
    uint64_t held = sl.closed_ms - sl.opened_ms;
    cr_assert_geq(held, BLOCK_MS, "reset %llu ms after opening", (unsigned long long)held);
    cr_assert_geq(blocks, 1, "the listener never paused reading");
    cr_assert_eq(w_wait(&w, ECHOES + 1, 30000), ECHOES + 1);
    cr_assert_eq(f.open_err, 0);
    cr_assert(f.closed);
    cr_assert_eq(f.close_err, RINGP2P_ESTREAMRESET, "writer's stream closed with %d", f.close_err);
    /* the reset came only once the 4 MiB buffer was (all but one message) full */
    cr_assert_geq(f.sent, ((size_t)4 << 20) - 16384, "only %zu bytes were written", f.sent);
    /* and the writer was held back meanwhile: a second of loopback unchecked would be GiBs */
    cr_assert_lt(f.sent_at_close, (size_t)64 << 20, "%zu bytes written while blocked",
                 (size_t)f.sent_at_close);
    echo_check("echo beside the paused stream", jobs, ECHOES, NULL, MPLEX);

    /* the connection lives on: a fresh stream works */
    echo_job *late = &jobs[ECHOES];
    late->seed = 99;
    late->len = 300000;
    late->w = &w;
    echo_start(cli, to, late);
    cr_assert_eq(w_wait(&w, ECHOES + 2, 20000), ECHOES + 2);
    echo_check("echo after the reset", late, 1, NULL, MPLEX);
    cr_assert_eq(sl.opened, 1);

    ringp2p_node_free(cli);
    ringp2p_node_free(srv);
    ringp2p_multiaddr_free(to);
}

/*
 * RINGP2P_LIMIT_STREAMS_INBOUND applies to mplex: with 4 allowed, 4 paused
 * sink streams stay open and the next ones are refused (reset before the
 * protocol is agreed), while the connection itself stays up.
 */
Test(host_muxer, mplex_inbound_stream_limit)
{
    waiter sw;
    w_init(&sw);
    sinklog sl = { .w = &sw };
    ringp2p_node *srv = mk_node(true, NULL, "mplex", NULL, 4);
    cr_assert_eq(ringp2p_node_set_stream_handler(srv, SINK, sink_handler, &sl), 0);
    ringp2p_node *cli = mk_node(false, NULL, "mplex", NULL, 0);
    ringp2p_multiaddr *to = addr_of(srv);

    waiter w;
    w_init(&w);
    enum { N = 8 };
    static feeder fs[N];
    memset(fs, 0, sizeof(fs));
    const char *protos[1] = { SINK };
    for (int i = 0; i < N; i++) {
        fs[i].len = 1; /* one small write each: they stay open, unread */
        fs[i].w = &w;
        cr_assert_eq(ringp2p_node_new_stream(cli, to, protos, 1, feed_open, &fs[i]), 0);
    }
    /* refused streams signal (open error); accepted ones stay open */
    int deadline_ms = 20000, refused = 0;
    while (deadline_ms > 0) {
        refused = 0;
        for (int i = 0; i < N; i++)
            if (fs[i].open_err != 0) refused++;
        if (refused + sl.opened >= N) break;
        usleep(10000);
        deadline_ms -= 10;
    }
    /* identify's inbound stream may hold a slot for a while, so 3 or 4 sinks get in */
    cr_assert_leq(sl.opened, 4, "%d streams accepted over the limit of 4", sl.opened);
    cr_assert_geq(sl.opened, 2, "only %d streams accepted", sl.opened);
    cr_assert_geq(refused, N - 4, "%d streams refused", refused);
    for (int i = 0; i < N; i++)
        if (fs[i].open_err != 0)
            cr_assert_eq(fs[i].open_err, RINGP2P_ESTREAMRESET, "stream %d: %d", i, fs[i].open_err);
    cr_assert_eq(sl.closed, 0, "an accepted stream was closed");
    ringp2p_node_free(cli);
    ringp2p_node_free(srv);
    ringp2p_multiaddr_free(to);
}

/* ---- a slow reader over mplex ------------------------------------------------------------- */

/*
 * The interop case that resetting at the limit lost: a client writes 32 MiB
 * to /echo/1.0.0 over mplex as fast as it can and reads the echo slowly (it
 * stalls 400 ms first, longer until the echo's node has paused but well
 * under the block timeout, then pauses 1 ms per 128 KiB). Our echo pauses reading
 * while its replies queue up, so the writer outruns both 4 MiB buffers: each
 * node stops reading its connection instead of resetting the stream, TCP
 * holds the writer back, and every byte comes back in order. The stall stays
 * under the block timeout (1500 ms here), which a stream that keeps reading
 * never reaches.
 */
Test(host_muxer, mplex_slow_reader_echo_32mib)
{
    enum { LEN = 32 << 20, BLOCK_MS = 1500 };
    _Atomic int sblocks = 0, cblocks = 0;
    ringp2p_node *srv = mk_node_ex(true, NULL, "mplex", NULL, 0, BLOCK_MS, &sblocks);
    ringp2p_node *cli = mk_node_ex(false, NULL, "mplex", NULL, 0, BLOCK_MS, &cblocks);
    ringp2p_multiaddr *to = addr_of(srv);
    ringp2p_bstream *bs = bstream_to(cli, to, ECHO_PROTO, 10000);
    bs_writer w = { .bs = bs, .seed = 21, .len = LEN, .chunk = 65536, .timeout_ms = 20000 };
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, bs_write_thread, &w), 0);
    /* stall until the echo's node pauses (at least 400 ms: a slow writer on a loaded machine
     * needs longer to fill both nodes' buffers and the sockets'), under the block timeout */
    usleep(400 * 1000);
    for (int ms = 400; ms < BLOCK_MS - 300 && atomic_load(&sblocks) == 0; ms += 10) usleep(10000);
    size_t got = 0, slept_at = 0;
    bool bad = false;
    static uint8_t buf[65536];
    ssize_t n;
    while ((n = ringp2p_bstream_read(bs, buf, sizeof(buf), 10000)) > 0) {
        if (pat_differs(21, got, buf, (size_t)n)) bad = true;
        got += (size_t)n;
        if (got - slept_at >= 128 * 1024) {
            usleep(1000);
            slept_at = got;
        }
    }
    pthread_join(t, NULL);
    cr_assert_eq(n, 0, "clean end, got %zd after %zu bytes", n, got);
    cr_assert_eq(w.result, 0, "writer: %zd", w.result);
    cr_assert_eq(got, (size_t)LEN);
    cr_assert(!bad, "wrong bytes");
    /* the echo's side blocked (the case from the interop matrix); the reader's side too */
    cr_assert_geq(sblocks, 1, "the echo's node never paused reading");
    cr_assert_geq(cblocks, 1, "the slow reader's node never paused reading");
    ringp2p_bstream_close(bs);
    ringp2p_node_free(cli);
    ringp2p_node_free(srv);
    ringp2p_multiaddr_free(to);
}

/* ---- the application ends the block ------------------------------------------------------- */

/* The listener's side: an inbound SINK stream handed to a thread that never reads it. */
typedef struct adopted {
    _Atomic(ringp2p_bstream *) bs;
} adopted;

static void adopt_handler(ringp2p_node *n, ringp2p_stream *s, void *ctx)
{
    adopted *a = ctx;
    (void)n;
    ringp2p_bstream *bs = NULL;
    if (ringp2p_bstream_adopt(s, &bs) == 0) a->bs = bs;
}

/*
 * While a full stream blocks the connection, streams opened behind it wait
 * (head-of-line blocking); the application resetting the full stream (here
 * by closing its unread blocking handle) ends the block at once, long before
 * the block timeout (30 s here): the waiting echoes finish byte-exact and
 * the writer sees the reset.
 */
Test(host_muxer, mplex_reset_of_the_full_stream_unblocks_at_once)
{
    enum { BLOCK_MS = 30000, ECHOES = 3 };
    adopted ad = { NULL };
    _Atomic int blocks = 0;
    ringp2p_node *srv = mk_node_ex(true, NULL, "mplex", NULL, 0, BLOCK_MS, &blocks);
    cr_assert_eq(ringp2p_node_set_stream_handler(srv, SINK, adopt_handler, &ad), 0);
    ringp2p_node *cli = mk_node(false, NULL, "mplex", NULL, 0);
    ringp2p_multiaddr *to = addr_of(srv);
    waiter w;
    w_init(&w);
    feeder f = { .len = 0, .w = &w }; /* writes until reset */
    const char *protos[1] = { SINK };
    cr_assert_eq(ringp2p_node_new_stream(cli, to, protos, 1, feed_open, &f), 0);
    for (int i = 0; i < 2000 && (blocks == 0 || ad.bs == NULL); i++) usleep(10000);
    cr_assert_geq(blocks, 1, "the listener never paused reading");
    cr_assert_not_null(ad.bs);

    static echo_job jobs[ECHOES];
    echo_start_many(cli, to, jobs, ECHOES, 70, 200000, 999, &w);
    cr_assert_eq(w_wait(&w, 1, 500), 0, "a stream got through while the connection was blocked");
    uint64_t t0 = mono_ms();
    ringp2p_bstream_close(ad.bs); /* resets the unread stream */
    cr_assert_eq(w_wait(&w, ECHOES + 1, 20000), ECHOES + 1);
    uint64_t took = mono_ms() - t0;
    cr_assert_lt(took, BLOCK_MS / 2, "unblocked only after %llu ms", (unsigned long long)took);
    echo_check("echo behind the full stream", jobs, ECHOES, NULL, MPLEX);
    cr_assert(f.closed);
    cr_assert_eq(f.close_err, RINGP2P_ESTREAMRESET, "writer's stream closed with %d", f.close_err);
    ringp2p_node_free(cli);
    ringp2p_node_free(srv);
    ringp2p_multiaddr_free(to);
}
