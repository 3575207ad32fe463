/*
 * DCUtR: the HolePunch codec (bytes by hand from the .proto field numbers,
 * cross-checked against js-libp2p's encoder and protobuf-c), address
 * filtering, and the initiator (B) and responder (A) state machines wired to
 * each other in memory through a simulated relay with a fake clock: the
 * RTT-synchronised dials, retries, the direct dial first, timeouts and
 * malformed input.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "multiformats/multiaddr.h"
#include "proto/dcutr.pb-c.h"
#include "protocols/dcutr.h"
#include "addrutil.h"
#include "testutil.h"

#define MS  UINT64_C(1000000)
#define SEC UINT64_C(1000000000)

#define PEER_A "12D3KooWB1b3qZxWJanuhtseF3DmPggHCtG36KZ9ixkqHtdKH9fh"
#define PEER_B "12D3KooWNkmkhmFBULBNLdcVxtppupGrF7DW7pDgcTkC9sxARgAt"
#define RELAY  "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"

/* ---- Codec ----------------------------------------------------------------------------------- */

/*
 * CONNECT with /ip4/1.2.3.4/tcp/4001 and /ip6/2606:4700::1111/tcp/443, by
 * hand from DCUtR.md: type=1 (varint 100), ObsAddrs=2 (bytes, repeated).
 */
static const char CONNECT_BY_HAND[] = "22"                  /* length prefix 34 */
                                      "0864"                /* type = CONNECT (100) */
                                      "1208"                /* ObsAddrs, 8 bytes: */
                                      "04 01020304 06 0fa1" /* /ip4/1.2.3.4/tcp/4001 */
                                      "1214"                /* ObsAddrs, 20 bytes: */
                                      "29 26064700000000000000000000001111 06 01bb"; /* ip6 */
/*
 * The same from js-libp2p's encoder: @libp2p/dcutr 3.0.28 HolePunch.encode
 * (protons-runtime 7.1.2) run by a throwaway script under Node 22.23.3
 * (tests/interop/node_modules), without the length prefix; and its SYNC
 * (observedAddresses: []).
 */
static const char CONNECT_JS[] =
    "086412080401020304060fa1121429260647000000000000000000000011110601bb";
static const char SYNC_JS[] = "08ac02";

Test(dcutr, connect_and_sync_bytes_by_hand_and_as_js_writes_them)
{
    arena a = { 0 };
    rp_nataddr addrs[2] = { nat(ma(&a, "/ip4/1.2.3.4/tcp/4001")),
                            nat(ma(&a, "/ip6/2606:4700::1111/tcp/443")) };
    uint8_t want[128], js[128], got[128];
    size_t nw = unhex(CONNECT_BY_HAND, want, sizeof(want));
    size_t nj = unhex(CONNECT_JS, js, sizeof(js));
    rp_wbuf w = rp_wbuf_make(got, sizeof(got));
    cr_assert_eq(rp_dcutr_write(&w, RP_DCUTR_CONNECT, addrs, 2, NULL), (ssize_t)nw);
    cr_assert_arr_eq(got, want, nw);
    cr_assert_eq(nj + 1, nw);
    cr_assert_arr_eq(got + 1, js, nj);

    nj = unhex(SYNC_JS, js, sizeof(js));
    w = rp_wbuf_make(got, sizeof(got));
    cr_assert_eq(rp_dcutr_write(&w, RP_DCUTR_SYNC, NULL, 0, NULL), 4);
    cr_assert_eq(got[0], 3);
    cr_assert_arr_eq(got + 1, js, nj);
    /* Too small a buffer: counted, not written past. */
    w = rp_wbuf_make(got, 3);
    cr_assert_eq(rp_dcutr_write(&w, RP_DCUTR_SYNC, NULL, 0, NULL), 4);
    cr_assert(!rp_wbuf_ok(&w));

    /* protobuf-c reads ours. */
    Rp__HolePunch *pb = rp__hole_punch__unpack(NULL, nw - 1, want + 1);
    cr_assert_not_null(pb);
    cr_assert_eq(pb->type, RP__HOLE_PUNCH__TYPE__CONNECT);
    cr_assert_eq(pb->n_obsaddrs, 2);
    cr_assert(pb->obsaddrs[1].len == addrs[1].len);
    rp__hole_punch__free_unpacked(pb, NULL);
}

Test(dcutr, decode_and_encode_back)
{
    uint8_t b[128];
    size_t n = unhex(CONNECT_JS, b, sizeof(b));
    rp_dcutr_msg m;
    const uint8_t *p = b;
    cr_assert_eq(rp_dcutr_msg_decode(&p, b + n, &m, NULL), 0);
    cr_assert_eq(p, b + n);
    cr_assert_eq(m.type, RP_DCUTR_CONNECT);
    cr_assert_eq(m.n_addrs, 2);
    cr_assert_eq(m.addrs[0].len, 8);
    uint8_t again[128];
    cr_assert_eq(rp_dcutr_msg_encode(&m, NULL, 0), (ssize_t)n);
    cr_assert_eq(rp_dcutr_msg_encode(&m, again, sizeof(again)), (ssize_t)n);
    cr_assert_arr_eq(again, b, n);
    cr_assert_eq(rp_dcutr_msg_encode(&m, again, n - 1), RINGP2P_ENOBUF);

    /* Unknown fields skipped; a repeated type: the last wins; an unknown type is kept. */
    n = unhex("0864 2001 0807 1200 3a0161", b, sizeof(b));
    p = b;
    cr_assert_eq(rp_dcutr_msg_decode(&p, b + n, &m, NULL), 0);
    cr_assert_eq(m.type, 7);
    cr_assert_eq(m.n_addrs, 1);
    cr_assert_eq(m.addrs[0].len, 0);
}

Test(dcutr, type_is_required_and_malformed_input_changes_nothing)
{
    static const char *const bad[] = {
        "",        /* no type (protobuf-c and go refuse it too) */
        "1200",    /* addresses but no type */
        "0a00",    /* type as bytes */
        "1000",    /* ObsAddrs as varint */
        "0864 12", /* truncated */
        "0864 1205 00",
        "08",
        "0b",
        "00",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t b[32];
        size_t n = unhex(bad[i], b, sizeof(b));
        rp_dcutr_msg m, before;
        memset(&m, 0x5a, sizeof(m));
        before = m;
        const uint8_t *p = b;
        ringp2p_errinfo ei = { 0 };
        cr_assert_eq(rp_dcutr_msg_decode(&p, b + n, &m, &ei), RINGP2P_EPROTOBUF, "'%s'", bad[i]);
        cr_assert_eq(p, b);
        cr_assert(memcmp(&m, &before, sizeof(m)) == 0);
        cr_assert_neq(ei.msg[0], 0);
        if (i < 2) {
            Rp__HolePunch *pb = rp__hole_punch__unpack(NULL, n, b);
            cr_assert_null(pb, "protobuf-c also wants the type");
        }
    }
    /* Over 4 KiB: refused, whether announced or not. */
    static uint8_t big[RP_DCUTR_MSG_MAX + 1];
    rp_dcutr_msg m;
    const uint8_t *p = big;
    cr_assert_eq(rp_dcutr_msg_decode(&p, big + sizeof(big), &m, NULL), RINGP2P_ELIMIT);
    uint8_t pre[2] = { 0x81, 0x20 }; /* 4097 */
    p = pre;
    cr_assert_eq(rp_dcutr_read_frame(&p, pre + 2, &m, NULL), RINGP2P_ELIMIT);
    cr_assert_eq(p, pre);
    uint8_t nonmin[2] = { 0x80, 0x00 };
    p = nonmin;
    cr_assert_eq(rp_dcutr_read_frame(&p, nonmin + 2, &m, NULL), RINGP2P_EVARINT);
}

Test(dcutr, framing_and_address_bound)
{
    uint8_t b[128];
    size_t n = unhex(CONNECT_BY_HAND, b, sizeof(b));
    rp_dcutr_msg m;
    for (size_t k = 0; k < n; k++) {
        const uint8_t *p = b;
        cr_assert_eq(rp_dcutr_read_frame(&p, b + k, &m, NULL), 0);
        cr_assert_eq(p, b);
    }
    const uint8_t *p = b;
    cr_assert_eq(rp_dcutr_read_frame(&p, b + n, &m, NULL), 1);
    cr_assert_eq(p, b + n);

    /* 70 empty addresses: 64 kept, 6 counted. */
    uint8_t many[2 + 70 * 2];
    many[0] = 0x08;
    many[1] = 100;
    for (int i = 0; i < 70; i++) {
        many[2 + 2 * i] = 0x12;
        many[3 + 2 * i] = 0;
    }
    p = many;
    cr_assert_eq(rp_dcutr_msg_decode(&p, many + sizeof(many), &m, NULL), 0);
    cr_assert_eq(m.n_addrs, RP_DCUTR_ADDRS_MAX);
    cr_assert_eq(m.n_addrs_skipped, 6);
}

Test(dcutr, address_filter)
{
    arena a = { 0 };
    ringp2p_peer_id pa = pid(PEER_A);
    rp_iov in[] = {
        ma(&a, "/ip4/1.2.3.4/tcp/4001"),
        ma(&a, "/ip4/1.2.3.4/tcp/4001/p2p/" PEER_A),               /* duplicate once stripped */
        ma(&a, "/ip4/5.6.7.8/tcp/4001/p2p/" PEER_B),               /* someone else's */
        ma(&a, "/ip4/5.6.7.8/tcp/4001/p2p/" RELAY "/p2p-circuit"), /* relayed */
        ma(&a, "/ip4/5.6.7.8/udp/4001/quic-v1"),                   /* not TCP */
        ma(&a, "/dns4/example.com/tcp/4001"),                      /* no DNS */
        ma(&a, "/ip4/192.168.1.5/tcp/4001"),                       /* private */
        ma(&a, "/ip4/0.0.0.0/tcp/4001"),                           /* never */
        ma(&a, "/ip6/2606:4700::1111/tcp/443"),
    };
    size_t n = sizeof(in) / sizeof(in[0]);
    rp_iov junk = rp_iov_make("\xff\xff\xff", 3);
    rp_nataddr out[RP_DCUTR_DIAL_ADDRS_MAX];
    size_t k = rp_dcutr_filter_addrs(in, n, &pa, false, out, RP_DCUTR_DIAL_ADDRS_MAX);
    cr_assert_eq(k, 2);
    cr_assert(nat_is(&out[0], in[0]));
    cr_assert(nat_is(&out[1], in[8]));
    k = rp_dcutr_filter_addrs(in, n, &pa, true, out, RP_DCUTR_DIAL_ADDRS_MAX);
    cr_assert_eq(k, 3);
    cr_assert(nat_is(&out[1], in[6]));
    cr_assert_eq(rp_dcutr_filter_addrs(&junk, 1, &pa, true, out, 4), 0);
    /* The cap. */
    rp_iov lots[20];
    for (int i = 0; i < 20; i++) {
        char t[64];
        snprintf(t, sizeof(t), "/ip4/1.2.3.4/tcp/%d", 2000 + i);
        lots[i] = ma(&a, t);
    }
    cr_assert_eq(rp_dcutr_filter_addrs(lots, 20, NULL, false, out, RP_DCUTR_DIAL_ADDRS_MAX),
                 RP_DCUTR_DIAL_ADDRS_MAX);
}

/* ---- The exchange ---------------------------------------------------------------------------- */

/* A one-way relay path: bytes written at t arrive at t + delay, in order. */
typedef struct path {
    uint8_t buf[2048];
    size_t len;
    uint64_t arrive_ns;
} path;

static void send_on(path *p, const rp_wbuf *w, uint64_t now, uint64_t delay)
{
    cr_assert(rp_wbuf_ok(w));
    cr_assert_leq(p->len + w->len, sizeof(p->buf));
    memcpy(p->buf + p->len, w->base, w->len);
    p->len += w->len;
    p->arrive_ns = now + delay;
}

/* Delivers what is in flight to d in `chunk`-byte pieces; returns rp_dcutr_recv's last result. */
static int deliver(rp_dcutr *d, path *p, size_t chunk, uint64_t now, rp_wbuf *out)
{
    static uint8_t held[2048];
    size_t have = 0;
    int r = 0;
    for (size_t off = 0; off < p->len;) {
        size_t k = p->len - off < chunk ? p->len - off : chunk;
        memcpy(held + have, p->buf + off, k);
        have += k;
        off += k;
        const uint8_t *q = held;
        r = rp_dcutr_recv(d, &q, held + have, now, out, NULL);
        size_t used = (size_t)(q - held);
        memmove(held, held + used, have - used);
        have -= used;
        if (r != 0) break;
    }
    p->len = 0;
    return r;
}

static bool poll_one(rp_dcutr *d, uint64_t now, rp_dcutr_action *act)
{
    bool got = rp_dcutr_poll(d, now, act);
    rp_dcutr_action again;
    if (got) cr_assert(!rp_dcutr_poll(d, now, &again), "an action is given once");
    return got;
}

/* The common cast: A behind one NAT, B behind another, each with an observed address. */
typedef struct cast {
    arena a;
    ringp2p_peer_id ida, idb;
    rp_iov own_a[3], own_b[3];
    rp_dcutr_config cfg;
} cast;

static void cast_init(cast *c)
{
    memset(c, 0, sizeof(*c));
    c->ida = pid(PEER_A);
    c->idb = pid(PEER_B);
    c->own_a[0] = ma(&c->a, "/ip4/0.0.0.0/tcp/4001");  /* a wildcard listen address: dropped */
    c->own_a[1] = ma(&c->a, "/ip4/10.0.1.2/tcp/4001"); /* its LAN: private */
    c->own_a[2] = ma(&c->a, "/ip4/7.7.7.7/tcp/4001");  /* observed through its NAT */
    c->own_b[0] = ma(&c->a, "/ip4/192.168.2.3/tcp/5001");
    c->own_b[1] = ma(&c->a, "/ip4/8.8.8.8/tcp/5001/p2p/" PEER_B);
    c->own_b[2] = ma(&c->a, "/ip4/8.8.8.8/tcp/5001/p2p-circuit"); /* nonsense: dropped */
    rp_dcutr_config_default(&c->cfg);
}

/*
 * One attempt, through a relay with one-way delay `d`: B's stream opens at
 * `t`; messages cross in `chunk`-byte pieces. Returns the time both sides
 * were told to dial, checking they were told at the same instant.
 */
static uint64_t run_attempt(cast *c, rp_dcutr *b, rp_dcutr *a, uint64_t t, uint64_t d, size_t chunk,
                            unsigned attempt)
{
    rp_dcutr_action act;
    cr_assert(poll_one(b, t, &act));
    cr_assert_eq(act.kind, RP_DCUTR_OPEN_STREAM);
    cr_assert_eq(act.attempt, attempt);
    cr_assert_eq(act.deadline_ns, t + c->cfg.stream_timeout_ns);
    cr_assert(!rp_dcutr_poll(b, t, &act));

    path b2a = { 0 }, a2b = { 0 };
    uint8_t ob[RP_DCUTR_OUT_MAX], oa[RP_DCUTR_OUT_MAX];
    rp_wbuf w = rp_wbuf_make(ob, sizeof(ob));
    cr_assert_eq(rp_dcutr_stream_opened(b, t, &w, NULL), 0);
    send_on(&b2a, &w, t, d);

    /* A: the stream arrives with the CONNECT. */
    t = b2a.arrive_ns;
    cr_assert_eq(rp_dcutr_responder_init(a, &c->cfg, &c->idb, c->own_a, 3, true, true, t, NULL), 0);
    w = rp_wbuf_make(oa, sizeof(oa));
    cr_assert_eq(deliver(a, &b2a, chunk, t, &w), 0);
    cr_assert(!rp_dcutr_poll(a, t, &act));
    send_on(&a2b, &w, t, d);

    /* B: A's CONNECT; SYNC back; the timer for half the RTT. */
    uint64_t t_b = a2b.arrive_ns;
    cr_assert(!rp_dcutr_poll(b, t_b - 1, &act));
    w = rp_wbuf_make(ob, sizeof(ob));
    cr_assert_eq(deliver(b, &a2b, chunk, t_b, &w), 1);
    send_on(&b2a, &w, t_b, d);
    cr_assert_eq(rp_dcutr_deadline(b), t_b + d, "RTT/2 = one-way delay");
    cr_assert(!rp_dcutr_poll(b, t_b + d - 1, &act));

    /* A: SYNC arrives; it dials at once. */
    uint64_t t_a = b2a.arrive_ns;
    w = rp_wbuf_make(oa, sizeof(oa));
    cr_assert_eq(deliver(a, &b2a, chunk, t_a, &w), 1);
    cr_assert_eq(w.len, 0, "A answers SYNC with nothing");
    cr_assert(poll_one(a, t_a, &act));
    cr_assert_eq(act.kind, RP_DCUTR_DIAL);
    cr_assert(act.client, "A is the client (DCUtR.md)");
    cr_assert_eq(act.n_addrs, 1);
    cr_assert(nat_is(&act.addrs[0], ma(&c->a, "/ip4/8.8.8.8/tcp/5001")));
    cr_assert_eq(act.rtt_ns, 2 * d);
    cr_assert_eq(act.deadline_ns, t_a + c->cfg.dial_timeout_ns);

    /* B: its timer fires at the same instant. */
    cr_assert(poll_one(b, t_a, &act));
    cr_assert_eq(act.kind, RP_DCUTR_DIAL);
    cr_assert_eq(act.attempt, attempt);
    cr_assert_eq(act.n_addrs, 1);
    cr_assert(nat_is(&act.addrs[0], ma(&c->a, "/ip4/7.7.7.7/tcp/4001")));
    cr_assert_eq(act.rtt_ns, 2 * d);
    return t_a;
}

Test(dcutr, exchange_synchronises_the_dials)
{
    static const uint64_t delays[] = { 1 * MS, 37 * MS, 250 * MS };
    static const size_t chunks[] = { 1, 3, 4096 };
    for (size_t i = 0; i < 3; i++) {
        cast c;
        cast_init(&c);
        rp_dcutr a, b;
        cr_assert_eq(rp_dcutr_initiator_init(&b, &c.cfg, &c.ida, c.own_b, 3, NULL, 0, 0, NULL), 0);
        uint64_t t = run_attempt(&c, &b, &a, 5 * SEC, delays[i], chunks[i], 1);
        cr_assert_eq(t, 5 * SEC + 3 * delays[i]);
        /* B reports its dial first; both finish. */
        rp_dcutr_dial_result(&b, 1, 0, t + MS);
        rp_dcutr_dial_result(&a, 1, 0, t + MS);
        rp_dcutr_action act;
        cr_assert(rp_dcutr_poll(&b, t + MS, &act));
        cr_assert_eq(act.kind, RP_DCUTR_DONE);
        cr_assert_eq(act.result, 0);
        cr_assert_eq(act.attempts, 1);
        cr_assert_eq(act.rtt_ns, 2 * delays[i]);
        cr_assert(!rp_dcutr_poll(&b, t + MS, &act), "DONE is given once");
        cr_assert_eq(rp_dcutr_deadline(&b), UINT64_MAX);
        cr_assert(rp_dcutr_poll(&a, t + MS, &act));
        cr_assert_eq(act.kind, RP_DCUTR_DONE);
        cr_assert_eq(act.result, 0);
        cr_assert_eq(rp_dcutr_result(&a), 0);
        cr_assert(rp_dcutr_finished(&a));
    }
}

Test(dcutr, three_attempts_then_failure)
{
    cast c;
    cast_init(&c);
    rp_dcutr a, b;
    cr_assert_eq(rp_dcutr_initiator_init(&b, &c.cfg, &c.ida, c.own_b, 3, NULL, 0, 0, NULL), 0);
    uint64_t t = SEC;
    rp_dcutr_action act;
    for (unsigned i = 1; i <= 3; i++) {
        cr_assert_eq(rp_dcutr_result(&b), RINGP2P_EAGAIN);
        t = run_attempt(&c, &b, &a, t, 20 * MS, 5, i);
        rp_dcutr_dial_result(&a, 1, RINGP2P_ECONNREFUSED, t + MS);
        cr_assert(rp_dcutr_poll(&a, t + MS, &act));
        cr_assert_eq(act.kind, RP_DCUTR_DONE);
        cr_assert_eq(act.result, RINGP2P_ECONNREFUSED);
        /* B's dial times out rather than being reported. */
        cr_assert_eq(rp_dcutr_deadline(&b), t + c.cfg.dial_timeout_ns);
        t += c.cfg.dial_timeout_ns;
        if (i < 3) continue; /* the next run_attempt polls the OPEN_STREAM */
        cr_assert(rp_dcutr_poll(&b, t, &act));
        cr_assert_eq(act.kind, RP_DCUTR_DONE);
        cr_assert_eq(act.result, RINGP2P_ETIMEDOUT);
        cr_assert_eq(act.attempts, 3);
    }
}

Test(dcutr, success_on_the_second_attempt_and_stale_results)
{
    cast c;
    cast_init(&c);
    c.cfg.switch_role_last = true;
    c.cfg.attempts = 2;
    rp_dcutr a, b;
    cr_assert_eq(rp_dcutr_initiator_init(&b, &c.cfg, &c.ida, c.own_b, 3, NULL, 0, 0, NULL), 0);
    rp_dcutr_action act;
    uint64_t t = run_attempt(&c, &b, &a, 0, 10 * MS, 7, 1);
    rp_dcutr_dial_result(&b, 1, RINGP2P_EUNREACHABLE, t + MS);
    rp_dcutr_dial_result(&b, 1, RINGP2P_EUNREACHABLE, t + MS); /* twice: the second is stale */
    t = run_attempt(&c, &b, &a, t + 2 * MS, 10 * MS, 7, 2);
    /* The last attempt, with switch_role_last, has B act as the client (go >= 0.41). */
    cr_assert(b.client);
    rp_dcutr_dial_result(&b, 1, RINGP2P_EUNREACHABLE, t); /* stale: attempt 1 */
    cr_assert(!rp_dcutr_finished(&b));
    rp_dcutr_dial_result(&b, 2, 0, t + MS);
    cr_assert(rp_dcutr_poll(&b, t + MS, &act));
    cr_assert_eq(act.kind, RP_DCUTR_DONE);
    cr_assert_eq(act.result, 0);
    cr_assert_eq(act.attempts, 2);
    /* After DONE, results change nothing. */
    rp_dcutr_dial_result(&b, 2, RINGP2P_EUNREACHABLE, t + 2 * MS);
    cr_assert_eq(rp_dcutr_result(&b), 0);
}

Test(dcutr, roles_per_attempt)
{
    cast c;
    cast_init(&c);
    c.cfg.switch_role_last = true;
    rp_dcutr a, b;
    cr_assert_eq(rp_dcutr_initiator_init(&b, &c.cfg, &c.ida, c.own_b, 3, NULL, 0, 0, NULL), 0);
    uint64_t t = 0;
    for (unsigned i = 1; i <= 3; i++) {
        t = run_attempt(&c, &b, &a, t, MS, 64, i);
        cr_assert_eq(b.client, i == 3, "attempt %u", i);
        rp_dcutr_dial_result(&b, i, RINGP2P_EUNREACHABLE, t);
        t += MS;
    }
    c.cfg.switch_role_last = false;
    cr_assert_eq(rp_dcutr_initiator_init(&b, &c.cfg, &c.ida, c.own_b, 3, NULL, 0, 0, NULL), 0);
    t = 0;
    for (unsigned i = 1; i <= 3; i++) {
        t = run_attempt(&c, &b, &a, t, MS, 64, i);
        cr_assert(!b.client, "spec roles: B is the server");
        rp_dcutr_dial_result(&b, i, RINGP2P_EUNREACHABLE, t);
        t += MS;
    }
}

Test(dcutr, direct_dial_first_when_a_is_reachable)
{
    cast c;
    cast_init(&c);
    rp_iov known[] = { ma(&c.a, "/ip4/7.7.7.7/tcp/4001/p2p/" PEER_A),
                       ma(&c.a, "/ip4/10.0.1.2/tcp/4001"),
                       ma(&c.a, "/ip4/7.7.7.7/tcp/4001/p2p/" RELAY "/p2p-circuit/p2p/" PEER_A) };
    rp_dcutr b;
    rp_dcutr_action act;
    cr_assert_eq(rp_dcutr_initiator_init(&b, &c.cfg, &c.ida, c.own_b, 3, known, 3, 0, NULL), 0);
    cr_assert(rp_dcutr_poll(&b, 0, &act));
    cr_assert_eq(act.kind, RP_DCUTR_DIRECT_DIAL);
    cr_assert_eq(act.attempt, 0);
    cr_assert(act.client);
    cr_assert_eq(act.n_addrs, 1);
    cr_assert(nat_is(&act.addrs[0], ma(&c.a, "/ip4/7.7.7.7/tcp/4001")));
    rp_dcutr_dial_result(&b, 0, 0, SEC);
    cr_assert(rp_dcutr_poll(&b, SEC, &act));
    cr_assert_eq(act.kind, RP_DCUTR_DONE);
    cr_assert_eq(act.result, 0);
    cr_assert_eq(act.attempts, 0);

    /* It fails: hole punching follows. */
    cr_assert_eq(rp_dcutr_initiator_init(&b, &c.cfg, &c.ida, c.own_b, 3, known, 3, 0, NULL), 0);
    cr_assert(rp_dcutr_poll(&b, 0, &act));
    rp_dcutr_dial_result(&b, 0, RINGP2P_ECONNREFUSED, SEC);
    cr_assert(rp_dcutr_poll(&b, SEC, &act));
    cr_assert_eq(act.kind, RP_DCUTR_OPEN_STREAM);
    cr_assert_eq(act.attempt, 1);
    /* Or times out. */
    cr_assert_eq(rp_dcutr_initiator_init(&b, &c.cfg, &c.ida, c.own_b, 3, known, 3, 0, NULL), 0);
    cr_assert(rp_dcutr_poll(&b, 0, &act));
    cr_assert_eq(rp_dcutr_deadline(&b), c.cfg.dial_timeout_ns);
    cr_assert(!rp_dcutr_poll(&b, c.cfg.dial_timeout_ns - 1, &act));
    cr_assert(rp_dcutr_poll(&b, c.cfg.dial_timeout_ns, &act));
    cr_assert_eq(act.kind, RP_DCUTR_OPEN_STREAM);
    /* A late success of the direct dial still counts. */
    rp_dcutr_dial_result(&b, 0, 0, c.cfg.dial_timeout_ns + 1);
    cr_assert(rp_dcutr_poll(&b, c.cfg.dial_timeout_ns + 1, &act));
    cr_assert_eq(act.kind, RP_DCUTR_DONE);
    cr_assert_eq(act.result, 0);
    /* With only private addresses known (and no allow_private): no direct dial. */
    cr_assert_eq(rp_dcutr_initiator_init(&b, &c.cfg, &c.ida, c.own_b, 3, known + 1, 2, 0, NULL), 0);
    cr_assert(rp_dcutr_poll(&b, 0, &act));
    cr_assert_eq(act.kind, RP_DCUTR_OPEN_STREAM);
}

Test(dcutr, timeouts)
{
    cast c;
    cast_init(&c);
    rp_dcutr b, a;
    rp_dcutr_action act;
    /* The stream never opens. */
    rp_dcutr_initiator_init(&b, &c.cfg, &c.ida, c.own_b, 3, NULL, 0, 0, NULL);
    cr_assert(rp_dcutr_poll(&b, 0, &act));
    cr_assert(!rp_dcutr_poll(&b, c.cfg.stream_timeout_ns - 1, &act));
    cr_assert(rp_dcutr_poll(&b, c.cfg.stream_timeout_ns, &act));
    cr_assert_eq(act.kind, RP_DCUTR_DONE);
    cr_assert_eq(act.result, RINGP2P_ETIMEDOUT);
    /* A never answers the CONNECT. */
    rp_dcutr_initiator_init(&b, &c.cfg, &c.ida, c.own_b, 3, NULL, 0, 0, NULL);
    cr_assert(rp_dcutr_poll(&b, 0, &act));
    uint8_t o[RP_DCUTR_OUT_MAX];
    rp_wbuf w = rp_wbuf_make(o, sizeof(o));
    cr_assert_eq(rp_dcutr_stream_opened(&b, SEC, &w, NULL), 0);
    cr_assert_eq(rp_dcutr_deadline(&b), c.cfg.stream_timeout_ns, "one deadline for the stream");
    cr_assert(rp_dcutr_poll(&b, c.cfg.stream_timeout_ns, &act));
    cr_assert_eq(act.result, RINGP2P_ETIMEDOUT);
    /* B never sends SYNC. */
    rp_dcutr_responder_init(&a, &c.cfg, &c.idb, c.own_a, 3, true, true, 0, NULL);
    rp_nataddr bo = nat(c.own_b[1]);
    uint8_t in[128];
    w = rp_wbuf_make(in, sizeof(in));
    rp_dcutr_write(&w, RP_DCUTR_CONNECT, &bo, 1, NULL);
    const uint8_t *p = in;
    rp_wbuf wo = rp_wbuf_make(o, sizeof(o));
    cr_assert_eq(rp_dcutr_recv(&a, &p, in + w.len, SEC, &wo, NULL), 0);
    cr_assert_gt(wo.len, 0);
    cr_assert(!rp_dcutr_poll(&a, c.cfg.stream_timeout_ns - 1, &act));
    cr_assert(rp_dcutr_poll(&a, c.cfg.stream_timeout_ns, &act));
    cr_assert_eq(act.kind, RP_DCUTR_DONE);
    cr_assert_eq(act.result, RINGP2P_ETIMEDOUT);
    /* The stream breaks before the answer: the upgrade ends (go); after the exchange, no harm. */
    rp_dcutr_initiator_init(&b, &c.cfg, &c.ida, c.own_b, 3, NULL, 0, 0, NULL);
    cr_assert(rp_dcutr_poll(&b, 0, &act));
    rp_dcutr_stream_failed(&b, RINGP2P_ESTREAMRESET, SEC);
    cr_assert(rp_dcutr_poll(&b, SEC, &act));
    cr_assert_eq(act.result, RINGP2P_ESTREAMRESET);
}

Test(dcutr, refusals_at_start)
{
    cast c;
    cast_init(&c);
    rp_dcutr d;
    rp_dcutr_action act;
    ringp2p_errinfo ei = { 0 };
    cr_assert_eq(rp_dcutr_responder_init(&d, &c.cfg, &c.idb, c.own_a, 3, false, true, 0, &ei),
                 RINGP2P_EPROTOCOL);
    cr_assert(strstr(ei.msg, "not relayed") != NULL, "%s", ei.msg);
    cr_assert_eq(rp_dcutr_responder_init(&d, &c.cfg, &c.idb, c.own_a, 3, true, false, 0, NULL),
                 RINGP2P_EPROTOCOL);
    /* Only private addresses of ours, not allowed: nothing to offer. */
    cr_assert_eq(rp_dcutr_responder_init(&d, &c.cfg, &c.idb, c.own_a, 2, true, true, 0, NULL),
                 RINGP2P_ENOENT);
    cr_assert_eq(rp_dcutr_initiator_init(&d, &c.cfg, &c.ida, c.own_b, 1, NULL, 0, 0, NULL),
                 RINGP2P_ENOENT);
    cr_assert(rp_dcutr_poll(&d, 0, &act));
    cr_assert_eq(act.kind, RP_DCUTR_DONE);
    cr_assert_eq(act.result, RINGP2P_ENOENT);
    cr_assert_eq(act.attempts, 0);
    /* allow_private: the namespace tests' case. */
    c.cfg.allow_private = true;
    cr_assert_eq(rp_dcutr_responder_init(&d, &c.cfg, &c.idb, c.own_a, 2, true, true, 0, NULL), 0);
    cr_assert_eq(d.n_own, 1);
}

/* Feeds one message to a fresh responder (or an initiator awaiting CONNECT). */
static int feed_msg(rp_dcutr *d, const char *hex, rp_wbuf *out)
{
    uint8_t b[256];
    size_t n = unhex(hex, b, sizeof(b));
    const uint8_t *p = b;
    return rp_dcutr_recv(d, &p, b + n, SEC, out, NULL);
}

Test(dcutr, protocol_errors)
{
    cast c;
    cast_init(&c);
    rp_dcutr d;
    rp_dcutr_action act;
    uint8_t o[RP_DCUTR_OUT_MAX];
    rp_wbuf w = rp_wbuf_make(o, sizeof(o));
    static const char *const bad_first[] = {
        "03 08ac02",                      /* SYNC before CONNECT */
        "02 0807",                        /* an unknown type */
        "02 0864",                        /* CONNECT without addresses */
        "0c 0864 1208 040a000001 060fa1", /* only a private address */
        "0b 0864 1207 0401020304 060f",   /* an invalid multiaddr */
        "01 12",                          /* malformed */
        "00",                             /* no type */
    };
    for (size_t i = 0; i < sizeof(bad_first) / sizeof(bad_first[0]); i++) {
        rp_dcutr_responder_init(&d, &c.cfg, &c.idb, c.own_a, 3, true, true, 0, NULL);
        w = rp_wbuf_make(o, sizeof(o));
        int r = feed_msg(&d, bad_first[i], &w);
        cr_assert_lt(r, 0, "'%s'", bad_first[i]);
        cr_assert_eq(w.len, 0, "'%s': nothing sent", bad_first[i]);
        cr_assert(rp_dcutr_poll(&d, SEC, &act));
        cr_assert_eq(act.kind, RP_DCUTR_DONE);
        cr_assert_eq(act.result, r);
    }
    /* CONNECT twice: the second is out of turn. */
    rp_dcutr_responder_init(&d, &c.cfg, &c.idb, c.own_a, 3, true, true, 0, NULL);
    w = rp_wbuf_make(o, sizeof(o));
    static const char connect[] = "0c 0864 1208 0401020304 060001";
    cr_assert_eq(feed_msg(&d, connect, &w), 0);
    cr_assert_eq(feed_msg(&d, connect, &w), RINGP2P_EPROTOCOL);
    /* The initiator gets SYNC instead of CONNECT. */
    rp_dcutr_initiator_init(&d, &c.cfg, &c.ida, c.own_b, 3, NULL, 0, 0, NULL);
    rp_dcutr_poll(&d, 0, &act);
    w = rp_wbuf_make(o, sizeof(o));
    rp_dcutr_stream_opened(&d, 0, &w, NULL);
    cr_assert_eq(feed_msg(&d, "03 08ac02", &w), RINGP2P_EPROTOCOL);
    cr_assert_eq(rp_dcutr_result(&d), RINGP2P_EPROTOCOL);
    /* Bytes before any stream was asked for, and a stream nobody asked for. */
    rp_dcutr_initiator_init(&d, &c.cfg, &c.ida, c.own_b, 3, NULL, 0, 0, NULL);
    cr_assert_eq(rp_dcutr_stream_opened(&d, 0, &w, NULL), RINGP2P_EPROTOCOL);
    cr_assert_eq(feed_msg(&d, connect, &w), RINGP2P_EPROTOCOL);
    /* After the exchange, later bytes are left alone. */
    rp_dcutr_responder_init(&d, &c.cfg, &c.idb, c.own_a, 3, true, true, 0, NULL);
    w = rp_wbuf_make(o, sizeof(o));
    cr_assert_eq(feed_msg(&d, connect, &w), 0);
    cr_assert_eq(feed_msg(&d, "03 08ac02", &w), 1);
    cr_assert_eq(feed_msg(&d, "03 08ac02", &w), 1);
    cr_assert(rp_dcutr_poll(&d, SEC, &act));
    cr_assert_eq(act.kind, RP_DCUTR_DIAL);
    /* No room for the answer. */
    rp_dcutr_responder_init(&d, &c.cfg, &c.idb, c.own_a, 3, true, true, 0, NULL);
    w = rp_wbuf_make(o, 4);
    cr_assert_eq(feed_msg(&d, connect, &w), RINGP2P_ENOBUF);
}
