/*
 * /perf/1.0.0 end to end over loopback: a ringp2p client (the sans-IO core
 * driven by stream callbacks, as the tool does) against the built-in server
 * of another node, per security protocol. Upload and download bytes are
 * counted by the client core, whose EOF check fails on any short or long
 * download; the server's cap is checked by asking for one byte too many.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "host/host.h"
#include "protocols/perf.h"
#include "ringp2p/node.h"
#include "hostutil.h"
#include "testutil.h"

typedef struct pjob {
    rp_perf_client c; /* set up before the open; owned by the shard once open */
    waiter *w;
    _Atomic int err; /* first failure: open error, core error or close reason */
    _Atomic bool opened, ok, done;
} pjob;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void pj_fail(ringp2p_stream *s, pjob *j, int err)
{
    int zero = 0;
    atomic_compare_exchange_strong(&j->err, &zero, err);
    ringp2p_stream_reset(s);
}

static void pj_pump(ringp2p_stream *s, pjob *j)
{
    for (;;) {
        rp_iov iov[4];
        size_t niov;
        if (rp_perf_client_next(&j->c, iov, 4, &niov, 0) == 0) break;
        for (size_t i = 0; i < niov; i++) {
            int r = ringp2p_stream_write_ref(s, iov[i].base, iov[i].len, NULL, NULL);
            if (r == RINGP2P_EAGAIN) return;
            if (r < 0 || (r = rp_perf_client_wrote(&j->c, iov[i].len, now_ns())) < 0) {
                pj_fail(s, j, r);
                return;
            }
        }
    }
    if (rp_perf_client_want_close(&j->c) && !j->c.closed) {
        j->c.closed = true;
        ringp2p_stream_close_write(s);
    }
}

static void pj_data(ringp2p_stream *s, void *ctx, const uint8_t *data, size_t len)
{
    (void)data;
    int r = rp_perf_client_recv(&((pjob *)ctx)->c, len, now_ns(), NULL);
    if (r < 0) pj_fail(s, ctx, r);
}

static void pj_eof(ringp2p_stream *s, void *ctx)
{
    int r = rp_perf_client_eof(&((pjob *)ctx)->c, now_ns(), NULL);
    if (r < 0) pj_fail(s, ctx, r);
}

static void pj_writable(ringp2p_stream *s, void *ctx)
{
    pj_pump(s, ctx);
}

static void pj_close(ringp2p_stream *s, void *ctx, int err)
{
    pjob *j = ctx;
    (void)s;
    int zero = 0;
    if (err < 0) atomic_compare_exchange_strong(&j->err, &zero, err);
    j->ok = err == 0 && j->err == 0 && j->c.phase == RP_PERF_DONE;
    j->done = true;
    w_signal(j->w);
}

static const ringp2p_stream_callbacks pj_cbs = {
    .on_data = pj_data,
    .on_eof = pj_eof,
    .on_writable = pj_writable,
    .on_close = pj_close,
};

static void pj_open(ringp2p_node *n, ringp2p_stream *s, int err, const ringp2p_errinfo *ei,
                    void *ctx)
{
    pjob *j = ctx;
    (void)n;
    (void)ei;
    if (err < 0) {
        j->err = err;
        j->done = true;
        w_signal(j->w);
        return;
    }
    ringp2p_stream_set_callbacks(s, &pj_cbs, j);
    j->opened = true;
    pj_pump(s, j);
}

#define MIB (UINT64_C(1) << 20)

static const char *const perf_proto[1] = { RP_PERF_PROTOCOL_ID };

Test(host_perf, up_and_down_two_streams_each_security)
{
    static const struct {
        const char *sec;
        uint64_t up, down;
    } cases[] = {
        { "noise", 32 * MIB, 32 * MIB },
        { "signed", 32 * MIB, 32 * MIB },
        { "noise", 0, 3 * MIB + 5 }, /* header only, download not a block multiple */
        { "signed", MIB + 1, 0 },    /* server closes without sending */
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        ringp2p_node *srv = host_node(true, cases[c].sec, NULL, NULL);
        ringp2p_node *cli = host_node(false, cases[c].sec, NULL, NULL);
        ringp2p_multiaddr *a[2];
        cr_assert_eq(ringp2p_node_addrs(srv, a, 2), 1);
        waiter w;
        w_init(&w);
        pjob j[2];
        memset(j, 0, sizeof(j));
        for (int i = 0; i < 2; i++) {
            j[i].w = &w;
            rp_perf_client_init(&j[i].c, cases[c].up, cases[c].down, now_ns());
        }
        /* the second stream is opened once the first has its connection, and reuses it */
        cr_assert_eq(ringp2p_node_new_stream(cli, a[0], perf_proto, 1, pj_open, &j[0]), 0);
        for (int t = 0; t < 200 && !j[0].opened && !j[0].done; t++) usleep(5000);
        cr_assert_eq(ringp2p_node_new_stream(cli, a[0], perf_proto, 1, pj_open, &j[1]), 0);
        cr_assert_eq(w_wait(&w, 2, 30000), 2, "case %zu (%s): perf timed out", c, cases[c].sec);
        for (int i = 0; i < 2; i++) {
            cr_expect(j[i].ok, "case %zu (%s) stream %d: err %d", c, cases[c].sec, i,
                      (int)j[i].err);
            cr_expect_eq(j[i].c.written, cases[c].up + RP_PERF_HEADER_LEN, "case %zu stream %d", c,
                         i);
            cr_expect_eq(j[i].c.downloaded, cases[c].down, "case %zu stream %d", c, i);
        }
        ringp2p_multiaddr_free(a[0]);
        ringp2p_node_stop(cli);
        ringp2p_node_stop(srv);
        ringp2p_node_free(cli);
        ringp2p_node_free(srv);
    }
}

/* perf.md "Security Considerations": a request over the server's cap is refused with a reset. */
Test(host_perf, download_over_cap_is_reset)
{
    static const struct {
        uint64_t down;
        bool ok;
    } cases[] = {
        { RP_HOST_PERF_DOWNLOAD_MAX + 1, false },
        { UINT64_MAX, false },
        { 1, true },
    };
    ringp2p_node *srv = host_node(true, "noise", NULL, NULL);
    ringp2p_node *cli = host_node(false, "noise", NULL, NULL);
    ringp2p_multiaddr *a[2];
    cr_assert_eq(ringp2p_node_addrs(srv, a, 2), 1);
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        waiter w;
        w_init(&w);
        pjob j;
        memset(&j, 0, sizeof(j));
        j.w = &w;
        rp_perf_client_init(&j.c, 1000, cases[c].down, now_ns());
        cr_assert_eq(ringp2p_node_new_stream(cli, a[0], perf_proto, 1, pj_open, &j), 0);
        cr_assert_eq(w_wait(&w, 1, 10000), 1, "case %zu timed out", c);
        cr_expect_eq(j.ok, cases[c].ok, "case %zu: err %d", c, (int)j.err);
        if (!cases[c].ok) cr_expect_eq(j.c.downloaded, 0, "case %zu", c);
    }
    ringp2p_multiaddr_free(a[0]);
    ringp2p_node_stop(cli);
    ringp2p_node_stop(srv);
    ringp2p_node_free(cli);
    ringp2p_node_free(srv);
}
