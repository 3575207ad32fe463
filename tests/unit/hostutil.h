/*
 * Helpers shared by the host test suites: nodes on loopback, a byte pattern,
 * polling, handlers that do nothing, stall their shard or answer identify,
 * the blocking side's writer thread, and an echo client stream checked byte
 * for byte.
 */
#ifndef RP_TESTS_HOSTUTIL_H
#define RP_TESTS_HOSTUTIL_H

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "protocols/identify.h"
#include "ringp2p/node.h"
#include "testutil.h"

/* Polls `cond` every millisecond for up to `ms`; the value of cond at the end. */
#define WAIT_UNTIL(cond, ms)                                                \
    ({                                                                      \
        for (int wu_i_ = 0; !(cond) && wu_i_ < (ms); wu_i_++) usleep(1000); \
        (cond);                                                             \
    })

#define HOST_LOOPBACK "/ip4/127.0.0.1/tcp/0"
#define ECHO_PROTO    "/echo/1.0.0"

/* ---- nodes -------------------------------------------------------------------------------- */

/* A new config with `shards` shards, listening on `listen` (NULL: nowhere). */
static inline ringp2p_config *host_config(const char *listen, unsigned shards)
{
    ringp2p_config *cfg = ringp2p_config_new();
    cr_assert_not_null(cfg);
    ringp2p_errinfo ei;
    if (listen != NULL)
        cr_assert_eq(ringp2p_config_listen(cfg, listen, &ei), 0, "%s: %s", listen, ei.msg);
    ringp2p_config_shards(cfg, shards);
    return cfg;
}

/* The node made from `cfg` (freed here), not started yet: test hooks go in between. */
static inline ringp2p_node *host_new(ringp2p_config *cfg)
{
    ringp2p_errinfo ei;
    ringp2p_node *n;
    cr_assert_eq(ringp2p_node_new(cfg, &n, &ei), 0, "%s", ei.msg);
    ringp2p_config_free(cfg);
    return n;
}

/* Starts `n` and returns it. Skips the test where the kernel lacks io_uring. */
static inline ringp2p_node *host_start(ringp2p_node *n)
{
    ringp2p_errinfo ei;
    int r = ringp2p_node_start(n, &ei);
    if (r == RINGP2P_EUNSUPPORTED) cr_skip_test("io_uring unsupported: %s", ei.msg);
    cr_assert_eq(r, 0, "start: %s", ei.msg);
    return n;
}

/*
 * A started node with 2 shards, listening on 127.0.0.1:0 if `listen`, with
 * the security list `sec` (NULL: the default) and the event callback `fn`
 * (may be NULL).
 */
static inline ringp2p_node *host_node(bool listen, const char *sec, ringp2p_event_fn fn, void *ctx)
{
    ringp2p_config *cfg = host_config(listen ? HOST_LOOPBACK : NULL, 2);
    ringp2p_errinfo ei;
    if (sec != NULL) cr_assert_eq(ringp2p_config_security(cfg, sec, &ei), 0, "%s", ei.msg);
    if (fn != NULL) ringp2p_config_events(cfg, fn, ctx);
    return host_start(host_new(cfg));
}

/* The node's one advertised address (caller frees). */
static inline ringp2p_multiaddr *addr_of(ringp2p_node *n)
{
    ringp2p_multiaddr *a[4];
    size_t k = ringp2p_node_addrs(n, a, 4);
    cr_assert_eq(k, 1);
    cr_assert_not_null(a[0]);
    return a[0];
}

/* The first of the node's advertised addresses, of which it has at least one (caller frees). */
static inline ringp2p_multiaddr *first_addr(ringp2p_node *n)
{
    enum { CAP = 32 };
    ringp2p_multiaddr *a[CAP];
    size_t k = ringp2p_node_addrs(n, a, CAP);
    cr_assert_geq(k, 1);
    for (size_t i = 1; i < k && i < CAP; i++) ringp2p_multiaddr_free(a[i]);
    cr_assert_not_null(a[0]);
    return a[0];
}

/*
 * `to` with its /p2p/ swapped for the ID of a fresh key of type `kt`, whose
 * text goes to ids[cap] (caller frees the address).
 */
static inline ringp2p_multiaddr *addr_of_other_peer(const ringp2p_multiaddr *to,
                                                    ringp2p_key_type kt, char *ids, size_t cap)
{
    char text[512];
    cr_assert_gt(ringp2p_multiaddr_to_string(to, text, sizeof(text)), 0);
    ringp2p_privkey *k;
    cr_assert_eq(ringp2p_privkey_generate(kt, &k), 0);
    ringp2p_peer_id other;
    ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(k), &other);
    ringp2p_privkey_free(k);
    ringp2p_peer_id_to_string(&other, ids, cap);
    *strstr(text, "/p2p/") = 0;
    strcat(text, "/p2p/");
    strcat(text, ids);
    ringp2p_multiaddr *bad;
    cr_assert_eq(ringp2p_multiaddr_parse(text, &bad, NULL), 0);
    return bad;
}

/* A config's list setter: ringp2p_config_security, ringp2p_config_muxers. */
typedef int (*host_list_fn)(ringp2p_config *cfg, const char *list, ringp2p_errinfo *ei);

typedef struct host_list_case {
    const char *list;
    int want;
} host_list_case;

/* Each list, set on a fresh config, gets its code; a refusal says why. */
static inline void check_lists(host_list_fn set, const host_list_case *cases, size_t n)
{
    for (size_t c = 0; c < n; c++) {
        ringp2p_config *cfg = ringp2p_config_new();
        cr_assert_not_null(cfg);
        ringp2p_errinfo ei = { 0, "" };
        int r = set(cfg, cases[c].list, &ei);
        cr_assert_eq(r, cases[c].want, "\"%s\": got %d (%s)", cases[c].list, r, ei.msg);
        if (r < 0) cr_assert_neq(ei.msg[0], 0, "\"%s\": the error is explained", cases[c].list);
        ringp2p_config_free(cfg);
    }
}

/*
 * A started listener (as host_node, events to fn) whose list setter `set`
 * took `good`, then refused `bad` with RINGP2P_EUNSUPPORTED.
 */
static inline ringp2p_node *host_node_after_failed_list(host_list_fn set, const char *good,
                                                        const char *bad, ringp2p_event_fn fn,
                                                        void *ctx)
{
    ringp2p_config *cfg = host_config(HOST_LOOPBACK, 2);
    ringp2p_errinfo ei;
    cr_assert_eq(set(cfg, good, &ei), 0);
    cr_assert_eq(set(cfg, bad, &ei), RINGP2P_EUNSUPPORTED);
    ringp2p_config_events(cfg, fn, ctx);
    return host_start(host_new(cfg));
}

/* ---- the byte pattern --------------------------------------------------------------------- */

/* Byte i of the test pattern `seed`: echoes are checked against it. */
static inline uint8_t pat(uint32_t seed, size_t i)
{
    return (uint8_t)(seed * 31u + i * 7u + (i >> 9));
}

/* Whether d[0..len) differs from pattern `seed` from byte `off` on. */
static inline bool pat_differs(uint32_t seed, size_t off, const uint8_t *d, size_t len)
{
    bool bad = false;
    for (size_t i = 0; i < len; i++)
        if (d[i] != pat(seed, off + i)) bad = true;
    return bad;
}

/*
 * Writes bytes [*sent, len) of pattern `seed` to `s` in 8 KiB pieces,
 * advancing *sent. Returns 0 once all are written, RINGP2P_EAGAIN when the
 * stream is full (on_writable follows), or the write's error.
 */
static inline ssize_t pat_write(ringp2p_stream *s, uint32_t seed, size_t len, size_t *sent)
{
    uint8_t b[8192];
    while (*sent < len) {
        size_t n = len - *sent < sizeof(b) ? len - *sent : sizeof(b);
        for (size_t i = 0; i < n; i++) b[i] = pat(seed, *sent + i);
        ssize_t r = ringp2p_stream_write(s, b, n);
        if (r < 0) return r;
        *sent += n;
    }
    return 0;
}

/* ---- handlers ----------------------------------------------------------------------------- */

static inline void nop_data(ringp2p_stream *s, void *ctx, const uint8_t *d, size_t len)
{
    (void)s, (void)ctx, (void)d, (void)len;
}

static inline void nop_close(ringp2p_stream *s, void *ctx, int err)
{
    (void)s, (void)ctx, (void)err;
}

/* A stuck peer: a stream's first data signals `started`, then blocks the shard for `ms`. */
typedef struct stall {
    waiter started;
    int ms;
} stall;

static inline void stall_data(ringp2p_stream *s, void *ctx, const uint8_t *d, size_t len)
{
    stall *st = ctx;
    (void)s, (void)d, (void)len;
    w_signal(&st->started);
    usleep((useconds_t)st->ms * 1000);
}

/* The stream handler; ctx is the stall. */
static inline void stall_handler(ringp2p_node *n, ringp2p_stream *s, void *ctx)
{
    static const ringp2p_stream_callbacks cbs = { .on_data = stall_data, .on_close = nop_close };
    (void)n;
    ringp2p_stream_set_callbacks(s, &cbs, ctx);
}

/*
 * Answers an inbound identify stream with `m` (one message, length-prefixed,
 * under 128 bytes) and closes it; resets it where m does not fit.
 */
static inline void identify_answer(ringp2p_stream *s, const rp_identify_msg *m)
{
    static const ringp2p_stream_callbacks cbs = { .on_data = nop_data, .on_close = nop_close };
    uint8_t buf[128];
    ssize_t len = rp_identify_msg_encode(m, buf + 1, sizeof(buf) - 1);
    ringp2p_stream_set_callbacks(s, &cbs, NULL);
    if (len <= 0 || len > 127) {
        ringp2p_stream_reset(s);
        return;
    }
    buf[0] = (uint8_t)len; /* the varint length prefix, one byte */
    ringp2p_stream_write(s, buf, (size_t)len + 1);
    ringp2p_stream_close_write(s);
}

/* ---- the blocking side ------------------------------------------------------------------- */

/* A blocking stream from n to `to` on `proto`, opened within `ms`. */
static inline ringp2p_bstream *bstream_to(ringp2p_node *n, ringp2p_multiaddr *to, const char *proto,
                                          int ms)
{
    const char *protos[1] = { proto };
    ringp2p_bstream *bs;
    ringp2p_errinfo ei;
    cr_assert_eq(ringp2p_bstream_open(n, to, protos, 1, ms, &bs, &ei), 0, "%s", ei.msg);
    return bs;
}

/*
 * A writer thread (bs_write_thread): `len` bytes of pattern `seed` to bs in
 * writes of `chunk` bytes, each given timeout_ms, then a half-close. result:
 * 0, or the failure (RINGP2P_EIO for a short write).
 */
typedef struct bs_writer {
    ringp2p_bstream *bs;
    uint32_t seed;
    size_t len, chunk;
    int timeout_ms;
    ssize_t result;
} bs_writer;

static inline void *bs_write_thread(void *p)
{
    bs_writer *w = p;
    uint8_t *buf = malloc(w->chunk);
    w->result = buf != NULL ? 0 : RINGP2P_ENOMEM;
    for (size_t off = 0; w->result == 0 && off < w->len;) {
        size_t n = w->len - off < w->chunk ? w->len - off : w->chunk;
        for (size_t i = 0; i < n; i++) buf[i] = pat(w->seed, off + i);
        ssize_t r = ringp2p_bstream_write(w->bs, buf, n, w->timeout_ms);
        if (r != (ssize_t)n) w->result = r < 0 ? r : RINGP2P_EIO;
        off += n;
    }
    free(buf);
    if (w->result == 0) w->result = ringp2p_bstream_close_write(w->bs);
    return NULL;
}

/* ---- an echo client stream ---------------------------------------------------------------- */

/*
 * Writes `len` bytes of pattern `seed`, then half-closes (unless no_close),
 * and checks that the same bytes come back. Its end (a failed open,
 * on_close, or with no_close every byte back) sets `done` and signals `w`
 * where set. The callbacks run on a shard: read the rest after the end.
 */
typedef struct echo_job {
    uint32_t seed;
    size_t len, sent;
    bool no_close; /* keep the stream open after the last byte */
    bool lax;      /* a failed write is no failure: on_close tells (a reset is expected) */
    waiter *w;
    const char *proto; /* the protocol asked for (echo_open) */
    _Atomic size_t got;
    _Atomic bool bad, opened, closed, done;
    _Atomic int open_err, close_err;
    /* the connection the stream opened on */
    uint64_t conn_id;
    unsigned shard;
    bool relayed, limited;
    char security[64], muxer[64], remote[512];
    char errmsg[RINGP2P_ERRINFO_MSG_MAX];
} echo_job;

static inline void echo_end(echo_job *e)
{
    e->done = true;
    if (e->w != NULL) w_signal(e->w);
}

static inline void echo_pump(ringp2p_stream *s, echo_job *e)
{
    ssize_t r = pat_write(s, e->seed, e->len, &e->sent);
    if (r == 0) {
        if (!e->no_close) ringp2p_stream_close_write(s);
    } else if (r != RINGP2P_EAGAIN && !e->lax) {
        e->bad = true;
        ringp2p_stream_reset(s);
    }
}

static inline void echo_data(ringp2p_stream *s, void *ctx, const uint8_t *d, size_t len)
{
    echo_job *e = ctx;
    (void)s;
    size_t got = e->got;
    if (pat_differs(e->seed, got, d, len)) e->bad = true;
    e->got = got + len;
    if (e->no_close && got + len == e->len) echo_end(e);
}

static inline void echo_writable(ringp2p_stream *s, void *ctx)
{
    echo_pump(s, ctx);
}

static inline void echo_close(ringp2p_stream *s, void *ctx, int err)
{
    echo_job *e = ctx;
    (void)s;
    e->close_err = err;
    e->closed = true;
    if (!e->no_close) echo_end(e);
}

static inline void echo_opened(ringp2p_node *n, ringp2p_stream *s, int err,
                               const ringp2p_errinfo *ei, void *ctx)
{
    static const ringp2p_stream_callbacks cbs = {
        .on_data = echo_data,
        .on_writable = echo_writable,
        .on_close = echo_close,
    };
    echo_job *e = ctx;
    (void)n;
    if (err < 0) {
        snprintf(e->errmsg, sizeof(e->errmsg), "%s", ei != NULL ? ei->msg : "");
        e->open_err = err;
        echo_end(e);
        return;
    }
    const ringp2p_conn_info *ci = ringp2p_stream_conn(s);
    e->conn_id = ci->id;
    e->shard = ci->shard;
    e->relayed = ci->relayed;
    e->limited = ci->limited;
    snprintf(e->security, sizeof(e->security), "%s",
             ci->security != NULL ? ci->security : "(null)");
    snprintf(e->muxer, sizeof(e->muxer), "%s", ci->muxer != NULL ? ci->muxer : "(null)");
    if (ci->remote_addr != NULL)
        ringp2p_multiaddr_to_string(ci->remote_addr, e->remote, sizeof(e->remote));
    if (e->proto != NULL && strcmp(ringp2p_stream_protocol(s), e->proto) != 0) e->bad = true;
    e->opened = true;
    ringp2p_stream_set_callbacks(s, &cbs, e);
    echo_pump(s, e);
}

/* Opens the echo `e` (set up by the caller) from n to `to` on `proto`: new_stream's result. */
static inline int echo_open(ringp2p_node *n, ringp2p_multiaddr *to, const char *proto, echo_job *e)
{
    const char *protos[1] = { proto };
    e->proto = proto;
    return ringp2p_node_new_stream(n, to, protos, 1, echo_opened, e);
}

/* echo_open on /echo/1.0.0, which must be accepted. */
static inline void echo_start(ringp2p_node *n, ringp2p_multiaddr *to, echo_job *e)
{
    cr_assert_eq(echo_open(n, to, ECHO_PROTO, e), 0);
}

/*
 * Clears jobs[0..count) and starts them from n to `to`, all signalling w: echo i
 * carries len0 + i * step bytes of pattern seed0 + i.
 */
static inline void echo_start_many(ringp2p_node *n, ringp2p_multiaddr *to, echo_job *jobs,
                                   int count, uint32_t seed0, size_t len0, size_t step, waiter *w)
{
    memset(jobs, 0, (size_t)count * sizeof(jobs[0]));
    for (int i = 0; i < count; i++) {
        jobs[i].seed = seed0 + (uint32_t)i;
        jobs[i].len = len0 + (size_t)i * step;
        jobs[i].w = w;
        echo_start(n, to, &jobs[i]);
    }
}

/* echo_start, then waits up to `ms` for the echo's end (a timeout names it `what`). */
static inline void echo_wait(ringp2p_node *n, ringp2p_multiaddr *to, echo_job *e, int ms,
                             const char *what)
{
    echo_start(n, to, e);
    cr_assert(WAIT_UNTIL(e->done, ms), "%s: the echo did not end (%zu of %zu back)", what,
              (size_t)e->got, e->len);
}

/* echo_wait to `to` as text. */
static inline void echo_to(ringp2p_node *n, const char *to, echo_job *e, int ms)
{
    ringp2p_multiaddr *ma;
    ringp2p_errinfo ei;
    cr_assert_eq(ringp2p_multiaddr_parse(to, &ma, &ei), 0, "%s: %s", to, ei.msg);
    echo_wait(n, ma, e, ms, to);
    ringp2p_multiaddr_free(ma);
}

/*
 * The n echoes at e all finished cleanly: opened, every byte back in order,
 * closed without error, over `security` and `muxer` where not NULL.
 */
static inline void echo_check(const char *what, const echo_job *e, int n, const char *security,
                              const char *muxer)
{
    for (int i = 0; i < n; i++) {
        const echo_job *j = &e[i];
        cr_assert_eq(j->open_err, 0, "%s stream %d: %s", what, i, j->errmsg);
        cr_assert(!j->bad, "%s stream %d: wrong bytes", what, i);
        cr_assert_eq(j->got, j->len, "%s stream %d: %zu of %zu", what, i, (size_t)j->got, j->len);
        cr_assert_eq(j->close_err, 0, "%s stream %d: closed with %d", what, i, (int)j->close_err);
        if (security != NULL) cr_assert_str_eq(j->security, security, "%s stream %d", what, i);
        if (muxer != NULL) cr_assert_str_eq(j->muxer, muxer, "%s stream %d", what, i);
    }
}

/*
 * echo_start_many with a waiter of its own, then waits up to 60 s for all
 * `count` and checks them (echo_check with `what`, `security`, `muxer`).
 */
static inline void echo_many(ringp2p_node *n, ringp2p_multiaddr *to, echo_job *jobs, int count,
                             uint32_t seed0, size_t len0, size_t step, const char *what,
                             const char *security, const char *muxer)
{
    waiter w;
    w_init(&w);
    echo_start_many(n, to, jobs, count, seed0, len0, step, &w);
    int got = w_wait(&w, count, 60000);
    cr_assert_eq(got, count, "%s: %d of %d streams finished", what, got, count);
    echo_check(what, jobs, count, security, muxer);
}

#endif
