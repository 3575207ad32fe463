/*
 * AutoNAT v1: the Message codec (bytes by hand from the .proto field numbers,
 * cross-checked against js-libp2p's encoder and protobuf-c), the server's
 * request handling and rate limits, the client's reachability state machine
 * and schedule, a whole exchange in memory, and the address rules they share
 * (protocols/nataddr.h).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "multiformats/multiaddr.h"
#include "proto/autonat.pb-c.h"
#include "protocols/autonat.h"
#include "protocols/nataddr.h"
#include "addrutil.h"
#include "testutil.h"

#define SEC UINT64_C(1000000000)

/* A js-libp2p peer ID (tests/unit/test_identify.c JS_PEER) and two more. */
#define PEER_A "12D3KooWB1b3qZxWJanuhtseF3DmPggHCtG36KZ9ixkqHtdKH9fh"
#define PEER_B "12D3KooWNkmkhmFBULBNLdcVxtppupGrF7DW7pDgcTkC9sxARgAt"
#define PEER_C "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"

/* Its multihash: identity, 36 bytes of protobuf PublicKey (Ed25519). */
#define PEER_A_HEX "00240801122011bba3ed1721948cefb4e50b0a0bb5cad8a6b52dc7b1a40f4f6652105c91e2c4"

/* ---- Codec ----------------------------------------------------------------------------------- */

/*
 * A DIAL for PEER_A asking about /ip4/1.2.3.4/tcp/4001 and
 * /ip6/2606:4700::1111/tcp/443, written out from autonat-v1.md's field
 * numbers: type=1 (varint), dial=2 { peer=1 { id=1, addrs=2 } }.
 */
static const char DIAL_BY_HAND[] = "4e"                  /* length prefix 78 */
                                   "0800"                /* type = DIAL (0) */
                                   "124a"                /* dial, 74 bytes */
                                   "0a48"                /* peer, 72 bytes */
                                   "0a26" PEER_A_HEX     /* id, 38 bytes */
                                   "1208"                /* addrs, 8 bytes: */
                                   "04 01020304 06 0fa1" /* /ip4/1.2.3.4/tcp/4001 */
                                   "1214"                /* addrs, 20 bytes: */
                                   "29 26064700000000000000000000001111 06 01bb"; /* ip6, tcp 443 */

/*
 * The same message from js-libp2p's own encoder: @libp2p/autonat 3.0.28
 * Message.encode (protons-runtime 7.1.2) run by a throwaway script under Node
 * 22.23.3 (tests/interop/node_modules), without the length prefix.
 */
static const char DIAL_JS[] =
    "0800124a0a480a2600240801122011bba3ed1721948cefb4e50b0a0bb5cad8a6b52dc7b1a40f4f6652105c91e2c4"
    "12080401020304060fa1121429260647000000000000000000000011110601bb";
/* js: DIAL_RESPONSE OK with addr /ip4/1.2.3.4/tcp/4001; E_DIAL_ERROR with "dial failed". */
static const char OK_JS[] = "08011a0c08001a080401020304060fa1";
static const char DIAL_ERROR_JS[] = "08011a0f0864120b6469616c206661696c6564";

Test(autonat, dial_bytes_by_hand_and_as_js_writes_them)
{
    arena a = { 0 };
    rp_iov addrs[2] = { ma(&a, "/ip4/1.2.3.4/tcp/4001"), ma(&a, "/ip6/2606:4700::1111/tcp/443") };
    ringp2p_peer_id self = pid(PEER_A);
    uint8_t want[256], js[256], got[256];
    size_t nw = unhex(DIAL_BY_HAND, want, sizeof(want));
    size_t nj = unhex(DIAL_JS, js, sizeof(js));
    cr_assert_eq(rp_autonat_write_dial(&self, addrs, 2, NULL, 0, NULL), (ssize_t)nw);
    cr_assert_eq(rp_autonat_write_dial(&self, addrs, 2, got, sizeof(got), NULL), (ssize_t)nw);
    cr_assert_arr_eq(got, want, nw);
    cr_assert_eq(nj + 1, nw);
    cr_assert_arr_eq(got + 1, js, nj, "our body differs from js-libp2p's");
    cr_assert_eq(rp_autonat_write_dial(&self, addrs, 2, got, nw - 1, NULL), RINGP2P_ENOBUF);

    /* protobuf-c reads the body as the same message. */
    Rp__Autonat *pb = rp__autonat__unpack(NULL, nw - 1, got + 1);
    cr_assert_not_null(pb);
    cr_assert(pb->has_type && pb->type == RP__AUTONAT__MESSAGE_TYPE__DIAL);
    cr_assert_not_null(pb->dial);
    cr_assert_not_null(pb->dial->peer);
    cr_assert(pb->dial->peer->has_id && pb->dial->peer->id.len == self.len);
    cr_assert_arr_eq(pb->dial->peer->id.data, self.bytes, self.len);
    cr_assert_eq(pb->dial->peer->n_addrs, 2);
    cr_assert(pb->dial->peer->addrs[1].len == addrs[1].len);
    cr_assert_null(pb->dialresponse);
    rp__autonat__free_unpacked(pb, NULL);
}

Test(autonat, responses_as_js_writes_them)
{
    arena a = { 0 };
    rp_iov addr = ma(&a, "/ip4/1.2.3.4/tcp/4001");
    uint8_t js[64], got[64];
    size_t nj = unhex(OK_JS, js, sizeof(js));
    ssize_t n =
        rp_autonat_write_response(RP_AUTONAT_OK, NULL, addr.base, addr.len, got, sizeof(got), NULL);
    cr_assert_eq(n, (ssize_t)nj + 1);
    cr_assert_eq(got[0], nj);
    cr_assert_arr_eq(got + 1, js, nj);

    nj = unhex(DIAL_ERROR_JS, js, sizeof(js));
    n = rp_autonat_write_response(RP_AUTONAT_E_DIAL_ERROR, "dial failed", NULL, 0, got, sizeof(got),
                                  NULL);
    cr_assert_eq(n, (ssize_t)nj + 1);
    cr_assert_arr_eq(got + 1, js, nj);

    /* By hand: type 1, dialResponse { status 101, statusText "x" }. */
    uint8_t want[32];
    size_t nw = unhex("09 0801 1a05 0865 120178", want, sizeof(want));
    n = rp_autonat_write_response(RP_AUTONAT_E_DIAL_REFUSED, "x", NULL, 0, got, sizeof(got), NULL);
    cr_assert_eq(n, (ssize_t)nw);
    cr_assert_arr_eq(got, want, nw);
}

Test(autonat, decode_js_messages)
{
    uint8_t b[256];
    size_t n = unhex(DIAL_JS, b, sizeof(b));
    rp_autonat_msg m;
    rp_autonat_msg_init(&m);
    const uint8_t *p = b;
    cr_assert_eq(rp_autonat_msg_decode(&p, b + n, &m, NULL), 0);
    cr_assert_eq(p, b + n);
    cr_assert(m.has_type && m.type == RP_AUTONAT_DIAL && m.has_dial && m.has_peer);
    ringp2p_peer_id self = pid(PEER_A);
    cr_assert(iov_is(m.peer_id, self.bytes, self.len));
    cr_assert_eq(m.n_addrs, 2);
    cr_assert(!m.has_response);

    /* Encoding what was decoded gives the same bytes back. */
    uint8_t again[256];
    cr_assert_eq(rp_autonat_msg_encode(&m, NULL, 0), (ssize_t)n);
    cr_assert_eq(rp_autonat_msg_encode(&m, again, sizeof(again)), (ssize_t)n);
    cr_assert_arr_eq(again, b, n);

    n = unhex(DIAL_ERROR_JS, b, sizeof(b));
    rp_autonat_msg_init(&m);
    p = b;
    cr_assert_eq(rp_autonat_msg_decode(&p, b + n, &m, NULL), 0);
    cr_assert(m.type == RP_AUTONAT_DIAL_RESPONSE && m.has_response && m.has_status);
    cr_assert_eq(m.status, RP_AUTONAT_E_DIAL_ERROR);
    cr_assert(iov_is(m.status_text, "dial failed", 11));
    cr_assert_null(m.addr.base);
    cr_assert_eq(rp_autonat_response_observation(&m, NULL), RP_AUTONAT_OBS_PRIVATE);
}

Test(autonat, decode_merges_like_protobuf_and_skips_unknown_fields)
{
    /* Two dial fields, each with a peer: the id of the second wins, addresses append;
     * an unknown varint field 9 and an unknown group-free field 15 are skipped. */
    uint8_t b[128];
    size_t n = unhex("1206 0a04 0a02 1234"       /* dial { peer { id 1234 } } */
                     "4801"                      /* field 9, varint */
                     "1208 0a06 0a01 56 1201 07" /* dial { peer { id 56, addrs 07 } } */
                     "7a00"                      /* field 15, empty bytes */
                     "0801 0800",                /* type 1, then type 0: last wins */
                     b, sizeof(b));
    rp_autonat_msg m;
    rp_autonat_msg_init(&m);
    const uint8_t *p = b;
    cr_assert_eq(rp_autonat_msg_decode(&p, b + n, &m, NULL), 0);
    cr_assert(m.has_type && m.type == RP_AUTONAT_DIAL);
    cr_assert(iov_is(m.peer_id, "\x56", 1));
    cr_assert_eq(m.n_addrs, 1);
    cr_assert(iov_is(m.addrs[0], "\x07", 1));

    /* protobuf-c agrees. */
    Rp__Autonat *pb = rp__autonat__unpack(NULL, n, b);
    cr_assert_not_null(pb);
    cr_assert_eq(pb->type, 0);
    cr_assert(pb->dial->peer->id.len == 1 && pb->dial->peer->id.data[0] == 0x56);
    cr_assert_eq(pb->dial->peer->n_addrs, 1);
    rp__autonat__free_unpacked(pb, NULL);
}

/*
 * A PeerInfo sent as several copies, within one Dial and across Dials, merges
 * as the protobuf encoding guide says (and go's protobuf, protobuf-c do): a
 * copy without an id keeps the earlier id, addresses concatenate in wire
 * order, and the re-encoding is the single merged PeerInfo.
 */
Test(autonat, merged_peer_info)
{
    uint8_t b[64];
    size_t n = unhex("0800"
                     "120e"                   /* dial, 14 bytes: */
                     "0a07 0a02 1234 1201 aa" /*   peer { id 1234, addrs aa } */
                     "0a03 1201 bb"           /*   peer { addrs bb } */
                     "1205 0a03 1201 cc",     /* dial { peer { addrs cc } } */
                     b, sizeof(b));
    rp_autonat_msg m;
    rp_autonat_msg_init(&m);
    const uint8_t *p = b;
    cr_assert_eq(rp_autonat_msg_decode(&p, b + n, &m, NULL), 0);
    cr_assert(m.has_dial && m.has_peer);
    cr_assert(iov_is(m.peer_id, "\x12\x34", 2));
    cr_assert_eq(m.n_addrs, 3);
    cr_assert_eq(m.n_addrs_skipped, 0);
    cr_assert(iov_is(m.addrs[0], "\xaa", 1));
    cr_assert(iov_is(m.addrs[1], "\xbb", 1));
    cr_assert(iov_is(m.addrs[2], "\xcc", 1));

    Rp__Autonat *pb = rp__autonat__unpack(NULL, n, b);
    cr_assert_not_null(pb);
    const Rp__Autonat__PeerInfo *pi = pb->dial->peer;
    cr_assert(pi->has_id && pi->id.len == 2 && memcmp(pi->id.data, "\x12\x34", 2) == 0);
    cr_assert_eq(pi->n_addrs, 3, "protobuf-c concatenates the same addresses");
    for (size_t i = 0; i < 3; i++)
        cr_assert(iov_is(m.addrs[i], pi->addrs[i].data, pi->addrs[i].len), "address %zu", i);
    rp__autonat__free_unpacked(pb, NULL);

    uint8_t want[32], out[32];
    size_t wn = unhex("0800 120f 0a0d 0a02 1234 1201 aa 1201 bb 1201 cc", want, sizeof(want));
    cr_assert_eq(rp_autonat_msg_encode(&m, out, sizeof(out)), (ssize_t)wn);
    cr_assert(memcmp(out, want, wn) == 0);

    /*
     * An empty id is present and empty whichever copy it is in: a later one
     * wins over an earlier id, an earlier one stays when a later copy has no
     * id (go: GetId() is then a non-nil empty slice, "bad peer id").
     * protobuf-c 1.4.1 takes an empty bytes for unset when it merges (it
     * shows 1234 for the first, no id for the second);
     * tests/fuzz/fuzz_autonat.c bytes_eq allows for that.
     */
    static const char *const empty_id[] = {
        "1206 0a04 0a02 1234"
        "1204 0a02 0a00", /* dial { peer { id 1234 } }, dial { peer { id "" } } */
        "1204 0a02 0a00"
        "1205 0a03 1201 cc", /* dial { peer { id "" } }, dial { peer { addrs cc } } */
    };
    ringp2p_peer_id peer = pid(PEER_A);
    uint8_t obs[] = { 0x04, 1, 2, 3, 4, 0x06, 0x0f, 0xa1 }; /* /ip4/1.2.3.4/tcp/4001 */
    for (size_t k = 0; k < 2; k++) {
        n = unhex(empty_id[k], b, sizeof(b));
        rp_autonat_msg_init(&m);
        p = b;
        cr_assert_eq(rp_autonat_msg_decode(&p, b + n, &m, NULL), 0);
        cr_assert(m.peer_id.base != NULL && m.peer_id.len == 0, "case %zu", k);
        rp_autonat_server s;
        rp_autonat_server_init(&s, NULL);
        rp_autonat_decision d;
        cr_assert_eq(
            rp_autonat_server_handle(&s, &m, &peer, obs, sizeof(obs), NULL, 0, 0, &d, NULL), 0);
        cr_assert_eq(d.status, RP_AUTONAT_E_BAD_REQUEST, "case %zu", k);
        cr_assert_str_eq(d.text, "bad peer id");
    }
}

Test(autonat, absent_fields_take_protobuf_defaults)
{
    rp_autonat_msg m;
    rp_autonat_msg_init(&m);
    const uint8_t e[1] = { 0 };
    const uint8_t *p = e;
    cr_assert_eq(rp_autonat_msg_decode(&p, e, &m, NULL), 0);
    cr_assert(!m.has_type && m.type == RP_AUTONAT_DIAL); /* go GetType() */
    /* A DIAL_RESPONSE whose response has no status is OK (go GetStatus()). */
    uint8_t b[8];
    size_t n = unhex("0801 1a00", b, sizeof(b));
    p = b;
    cr_assert_eq(rp_autonat_msg_decode(&p, b + n, &m, NULL), 0);
    cr_assert(m.has_response && !m.has_status && m.status == RP_AUTONAT_OK);
    cr_assert_eq(rp_autonat_response_observation(&m, NULL), RP_AUTONAT_OBS_PUBLIC);
}

Test(autonat, malformed_input_changes_nothing)
{
    static const char *const bad[] = {
        "08",              /* truncated varint value */
        "0a01",            /* type as bytes */
        "1001",            /* dial as varint */
        "12 03 0a01",      /* dial body longer than what follows */
        "12 02 0a02",      /* peer body runs past the dial body */
        "12 02 0a00 ff",   /* a truncated tag after a good field */
        "1a 02 0a00",      /* status as bytes */
        "1a 02 1000",      /* statusText as varint */
        "12 04 0a02 1000", /* addrs as varint */
        "00",              /* field number 0 */
        "0b",              /* a group start */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t b[32];
        size_t n = unhex(bad[i], b, sizeof(b));
        rp_autonat_msg m, before;
        rp_autonat_msg_init(&m);
        m.has_type = true;
        m.type = 7;
        before = m;
        const uint8_t *p = b;
        ringp2p_errinfo ei = { 0 };
        cr_assert_eq(rp_autonat_msg_decode(&p, b + n, &m, &ei), RINGP2P_EPROTOBUF, "%s", bad[i]);
        cr_assert_eq(p, b, "%s", bad[i]);
        cr_assert(memcmp(&m, &before, sizeof(m)) == 0, "%s changed the message", bad[i]);
        cr_assert_neq(ei.msg[0], 0);
    }
}

Test(autonat, framing)
{
    uint8_t b[256];
    size_t n = unhex(DIAL_BY_HAND, b, sizeof(b));
    rp_autonat_msg m;
    /* Every proper prefix is "not yet", consuming nothing. */
    for (size_t k = 0; k < n; k++) {
        const uint8_t *p = b;
        cr_assert_eq(rp_autonat_read_frame(&p, b + k, &m, NULL), 0, "prefix %zu", k);
        cr_assert_eq(p, b);
    }
    const uint8_t *p = b;
    cr_assert_eq(rp_autonat_read_frame(&p, b + n, &m, NULL), 1);
    cr_assert_eq(p, b + n);
    cr_assert_eq(m.n_addrs, 2);

    /* Over the limit, announced. */
    uint8_t big[4] = { 0x81, 0x40 }; /* 8193 */
    p = big;
    cr_assert_eq(rp_autonat_read_frame(&p, big + 2, &m, NULL), RINGP2P_ELIMIT);
    cr_assert_eq(p, big);
    /* A non-minimal prefix. */
    uint8_t nm[3] = { 0x80, 0x00, 0x00 };
    p = nm;
    cr_assert_eq(rp_autonat_read_frame(&p, nm + 3, &m, NULL), RINGP2P_EVARINT);
    /* Over the limit, unannounced (the body decoder alone). */
    static uint8_t huge[RP_AUTONAT_MSG_MAX + 1];
    p = huge;
    rp_autonat_msg_init(&m);
    cr_assert_eq(rp_autonat_msg_decode(&p, huge + sizeof(huge), &m, NULL), RINGP2P_ELIMIT);
}

Test(autonat, address_count_is_bounded)
{
    /* 70 one-byte addresses in two dial fields of 35 (they merge): 64 kept, 6 counted. */
    uint8_t b[512];
    size_t n = 0;
    for (int half = 0; half < 2; half++) {
        b[n++] = 0x12; /* dial */
        b[n++] = 2 + 35 * 3;
        b[n++] = 0x0a; /* peer */
        b[n++] = 35 * 3;
        for (int i = 0; i < 35; i++) {
            b[n++] = 0x12; /* addrs */
            b[n++] = 1;
            b[n++] = (uint8_t)(half * 35 + i);
        }
    }
    rp_autonat_msg m;
    rp_autonat_msg_init(&m);
    const uint8_t *p = b;
    cr_assert_eq(rp_autonat_msg_decode(&p, b + n, &m, NULL), 0);
    cr_assert_eq(m.n_addrs, RP_AUTONAT_ADDRS_MAX);
    cr_assert_eq(m.n_addrs_skipped, 70 - RP_AUTONAT_ADDRS_MAX);
    cr_assert_eq(((uint8_t *)m.addrs[63].base)[0], 63);
    Rp__Autonat *pb = rp__autonat__unpack(NULL, n, b);
    cr_assert_not_null(pb);
    cr_assert_eq(pb->dial->peer->n_addrs, 70, "protobuf-c merges the same way");
    rp__autonat__free_unpacked(pb, NULL);
}

Test(autonat, own_messages_stay_under_go_limit)
{
    arena a = { 0 };
    rp_iov addrs[RP_AUTONAT_ADDRS_MAX];
    /* 64 addresses of ~70 bytes each (a long /dns4 name) are over 4 KiB. */
    for (int i = 0; i < RP_AUTONAT_ADDRS_MAX; i++) {
        char name[61], t[128];
        memset(name, 'a', sizeof(name) - 1);
        name[sizeof(name) - 1] = 0;
        snprintf(t, sizeof(t), "/dns4/%02d%s.example/tcp/1", i, name);
        addrs[i] = ma(&a, t);
    }
    ringp2p_peer_id self = pid(PEER_A);
    ringp2p_errinfo ei = { 0 };
    cr_assert_eq(rp_autonat_write_dial(&self, addrs, RP_AUTONAT_ADDRS_MAX, NULL, 0, &ei),
                 RINGP2P_ELIMIT);
    cr_assert(strstr(ei.msg, "4096") != NULL, "%s", ei.msg);
    cr_assert_gt(rp_autonat_write_dial(&self, addrs, 16, NULL, 0, NULL), 0);
    /* Invalid addresses are the caller's mistake. */
    uint8_t junk[2] = { 0xff, 0xff };
    rp_iov bad = rp_iov_make(junk, 2);
    cr_assert_eq(rp_autonat_write_dial(&self, &bad, 1, NULL, 0, NULL), RINGP2P_EINVAL);
    /* A status text too long for 4 KiB is cut. */
    static char text[5000];
    memset(text, 'x', sizeof(text) - 1);
    static uint8_t out[8192];
    ssize_t n = rp_autonat_write_response(RP_AUTONAT_E_INTERNAL_ERROR, text, NULL, 0, out,
                                          sizeof(out), NULL);
    cr_assert_gt(n, 0);
    cr_assert_leq(n, RP_AUTONAT_OWN_MSG_MAX + 2);
}

/* ---- Addresses ------------------------------------------------------------------------------- */

Test(autonat, ip_scopes_are_gos)
{
    static const struct {
        const char *addr;
        int scope;
    } cases[] = {
        { "/ip4/1.2.3.4/tcp/1", RP_NATADDR_PUBLIC },
        { "/ip4/8.8.8.8/tcp/1", RP_NATADDR_PUBLIC },
        { "/ip4/10.0.0.1/tcp/1", RP_NATADDR_PRIVATE },
        { "/ip4/172.16.5.4/tcp/1", RP_NATADDR_PRIVATE },
        { "/ip4/172.32.0.1/tcp/1", RP_NATADDR_PUBLIC },
        { "/ip4/192.168.1.1/tcp/1", RP_NATADDR_PRIVATE },
        { "/ip4/100.64.0.1/tcp/1", RP_NATADDR_PRIVATE },
        { "/ip4/100.128.0.1/tcp/1", RP_NATADDR_PUBLIC },
        { "/ip4/127.0.0.1/tcp/1", RP_NATADDR_PRIVATE },
        { "/ip4/169.254.1.1/tcp/1", RP_NATADDR_PRIVATE },
        { "/ip4/192.0.2.7/tcp/1", RP_NATADDR_PRIVATE },  /* documentation: unroutable */
        { "/ip4/198.19.0.1/tcp/1", RP_NATADDR_PRIVATE }, /* benchmarking */
        { "/ip4/203.0.113.9/tcp/1", RP_NATADDR_PRIVATE },
        { "/ip4/0.0.0.0/tcp/1", RP_NATADDR_UNUSABLE },
        { "/ip4/224.0.0.1/tcp/1", RP_NATADDR_UNUSABLE },
        { "/ip4/255.255.255.255/tcp/1", RP_NATADDR_UNUSABLE },
        { "/ip4/1.2.3.4/tcp/0", RP_NATADDR_UNUSABLE },
        { "/ip6/2606:4700::1111/tcp/1", RP_NATADDR_PUBLIC },
        { "/ip6/2001:db8::1/tcp/1", RP_NATADDR_PRIVATE },
        { "/ip6/64:ff9b::102:304/tcp/1", RP_NATADDR_PUBLIC }, /* NAT64 */
        { "/ip6/64:ff9b:1::1/tcp/1", RP_NATADDR_PUBLIC },
        { "/ip6/fd00::1/tcp/1", RP_NATADDR_PRIVATE },
        { "/ip6/fe80::1/tcp/1", RP_NATADDR_PRIVATE },
        { "/ip6/::1/tcp/1", RP_NATADDR_PRIVATE },
        { "/ip6/::ffff:1.2.3.4/tcp/1", RP_NATADDR_PRIVATE }, /* not in 2000::/3, as go */
        { "/ip6/::/tcp/1", RP_NATADDR_UNUSABLE },
        { "/ip6/ff02::1/tcp/1", RP_NATADDR_UNUSABLE },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        arena a = { 0 };
        rp_iov v = ma(&a, cases[i].addr);
        rp_nataddr out;
        cr_assert_eq(rp_nataddr_parse_tcp(v.base, v.len, NULL, &out), cases[i].scope, "%s",
                     cases[i].addr);
        cr_assert(nat_is(&out, v));
    }
}

Test(autonat, only_plain_tcp_addresses_parse)
{
    arena a = { 0 };
    ringp2p_peer_id pa = pid(PEER_A), pb = pid(PEER_B);
    static const char *const no[] = {
        "/ip4/1.2.3.4/udp/1/quic-v1",
        "/ip4/1.2.3.4/tcp/1/ws",
        "/dns4/example.com/tcp/1",
        "/ip4/1.2.3.4/tcp/1/p2p/" PEER_A "/p2p-circuit/p2p/" PEER_B,
        "/ip4/1.2.3.4/tcp/1/p2p/" PEER_B,
        "/ip6zone/eth0/ip6/fe80::1/tcp/1",
        "/ip4/1.2.3.4",
    };
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        rp_iov v = ma(&a, no[i]);
        cr_assert_eq(rp_nataddr_parse_tcp(v.base, v.len, &pa, NULL), -1, "%s", no[i]);
    }
    rp_iov with = ma(&a, "/ip4/1.2.3.4/tcp/1/p2p/" PEER_A);
    rp_iov bare = ma(&a, "/ip4/1.2.3.4/tcp/1");
    rp_nataddr out;
    cr_assert_eq(rp_nataddr_parse_tcp(with.base, with.len, &pa, &out), RP_NATADDR_PUBLIC);
    cr_assert(nat_is(&out, bare), "the /p2p/ suffix is dropped");
    cr_assert_eq(rp_nataddr_parse_tcp(with.base, with.len, &pb, NULL), -1);
    cr_assert_eq(rp_nataddr_parse_tcp(with.base, with.len, NULL, NULL), RP_NATADDR_PUBLIC);
    rp_iov relayed = ma(&a, "/ip4/1.2.3.4/tcp/1/p2p/" PEER_A "/p2p-circuit");
    cr_assert(rp_nataddr_is_relayed(relayed.base, relayed.len));
    cr_assert(!rp_nataddr_is_relayed(with.base, with.len));
}

/* ---- Server ---------------------------------------------------------------------------------- */

/* Decodes a DIAL we write, for the server to handle. */
static void dial_msg(rp_autonat_msg *m, uint8_t *buf, size_t cap, const ringp2p_peer_id *self,
                     const rp_iov *addrs, size_t n)
{
    ssize_t len = rp_autonat_write_dial(self, addrs, n, buf, cap, NULL);
    cr_assert_gt(len, 0);
    const uint8_t *p = buf;
    cr_assert_eq(rp_autonat_read_frame(&p, buf + len, m, NULL), 1);
}

static rp_autonat_server_config open_cfg(void)
{
    rp_autonat_server_config c;
    rp_autonat_server_config_default(&c);
    return c;
}

Test(autonat, server_dials_back_only_what_was_asked_on_the_observed_ip)
{
    arena a = { 0 };
    ringp2p_peer_id peer = pid(PEER_A);
    rp_iov obs = ma(&a, "/ip4/1.2.3.4/tcp/55555");
    rp_iov asked[] = {
        ma(&a, "/ip4/1.2.3.4/tcp/4001"),
        ma(&a, "/ip4/5.6.7.8/tcp/4001"),             /* another IP: never */
        ma(&a, "/ip4/1.2.3.4/udp/4001/quic-v1"),     /* not TCP */
        ma(&a, "/ip4/1.2.3.4/tcp/4001/p2p/" PEER_A), /* same as the first */
        ma(&a, "/ip4/1.2.3.4/tcp/4002/p2p/" PEER_B), /* someone else's */
        ma(&a, "/ip4/1.2.3.4/tcp/4003/p2p/" PEER_A), /* ok, /p2p/ dropped */
        ma(&a, "/ip4/1.2.3.4/tcp/4001/p2p/" PEER_A "/p2p-circuit/p2p/" PEER_B),
        ma(&a, "/ip4/10.0.0.2/tcp/4001"),
    };
    rp_iov want0 = ma(&a, "/ip4/1.2.3.4/tcp/4001"), want1 = ma(&a, "/ip4/1.2.3.4/tcp/4003");
    uint8_t buf[1024];
    rp_autonat_msg req;
    dial_msg(&req, buf, sizeof(buf), &peer, asked, sizeof(asked) / sizeof(asked[0]));

    rp_autonat_server s;
    rp_autonat_server_init(&s, NULL);
    rp_autonat_decision d;
    cr_assert_eq(
        rp_autonat_server_handle(&s, &req, &peer, obs.base, obs.len, NULL, 0, 100 * SEC, &d, NULL),
        0);
    cr_assert_eq(d.status, RP_AUTONAT_OK, "%s", d.text ? d.text : "");
    cr_assert_eq(d.n_addrs, 2);
    cr_assert(nat_is(&d.addrs[0], want0));
    cr_assert(nat_is(&d.addrs[1], want1));
    cr_assert(ringp2p_peer_id_equal(&d.peer, &peer));
    cr_assert_eq(d.deadline_ns, 100 * SEC + RP_AUTONAT_SERVER_DIAL_TIMEOUT);
    cr_assert_eq(d.respond_at_ns, d.deadline_ns);

    /* The answers. */
    uint8_t out[256];
    ssize_t n = rp_autonat_server_respond(&d, 0, want1.base, want1.len, out, sizeof(out), NULL);
    cr_assert_gt(n, 0);
    rp_autonat_msg resp;
    const uint8_t *p = out;
    cr_assert_eq(rp_autonat_read_frame(&p, out + n, &resp, NULL), 1);
    rp_iov got;
    cr_assert_eq(rp_autonat_response_observation(&resp, &got), RP_AUTONAT_OBS_PUBLIC);
    cr_assert(iov_is(got, want1.base, want1.len));
    n = rp_autonat_server_respond(&d, RINGP2P_ETIMEDOUT, NULL, 0, out, sizeof(out), NULL);
    p = out;
    cr_assert_eq(rp_autonat_read_frame(&p, out + n, &resp, NULL), 1);
    cr_assert_eq(resp.status, RP_AUTONAT_E_DIAL_ERROR);
    cr_assert(iov_is(resp.status_text, "dial failed", 11));
}

Test(autonat, server_caps_the_addresses_it_dials)
{
    arena a = { 0 };
    ringp2p_peer_id peer = pid(PEER_A);
    rp_iov obs = ma(&a, "/ip4/1.2.3.4/tcp/55555");
    rp_iov asked[20];
    for (int i = 0; i < 20; i++) {
        char t[64];
        snprintf(t, sizeof(t), "/ip4/1.2.3.4/tcp/%d", 1000 + i);
        asked[i] = ma(&a, t);
    }
    uint8_t buf[1024];
    rp_autonat_msg req;
    dial_msg(&req, buf, sizeof(buf), &peer, asked, 20);
    rp_autonat_server_config cfg = open_cfg();
    cfg.max_addrs = 5;
    rp_autonat_server s;
    rp_autonat_server_init(&s, &cfg);
    rp_autonat_decision d;
    rp_autonat_server_handle(&s, &req, &peer, obs.base, obs.len, NULL, 0, 0, &d, NULL);
    cr_assert_eq(d.status, RP_AUTONAT_OK);
    cr_assert_eq(d.n_addrs, 5);
    cr_assert(nat_is(&d.addrs[4], asked[4]));
    cfg.max_addrs = 100; /* clamped to go's 16 */
    rp_autonat_server_init(&s, &cfg);
    rp_autonat_server_handle(&s, &req, &peer, obs.base, obs.len, NULL, 0, 0, &d, NULL);
    cr_assert_eq(d.n_addrs, RP_AUTONAT_SERVER_DIAL_ADDRS);
}

/* The status the server gives `req` from `remote` seen at `obs`. */
static uint32_t handle_status(rp_autonat_server *s, const rp_autonat_msg *req,
                              const ringp2p_peer_id *remote, rp_iov obs, const rp_iov *own,
                              size_t n_own, uint64_t now, const char **text)
{
    rp_autonat_decision d;
    cr_assert_eq(
        rp_autonat_server_handle(s, req, remote, obs.base, obs.len, own, n_own, now, &d, NULL), 0);
    if (text != NULL) *text = d.text;
    if (d.status != RP_AUTONAT_OK) cr_assert_eq(d.n_addrs, 0);
    return d.status;
}

Test(autonat, server_refusals)
{
    arena a = { 0 };
    ringp2p_peer_id peer = pid(PEER_A), other = pid(PEER_B);
    rp_iov pub = ma(&a, "/ip4/1.2.3.4/tcp/4001"), obs = ma(&a, "/ip4/1.2.3.4/tcp/5555");
    uint8_t buf[512];
    rp_autonat_msg req;
    rp_autonat_server s;
    rp_autonat_server_init(&s, NULL);
    const char *text;

    /* Peer ID of someone else. */
    dial_msg(&req, buf, sizeof(buf), &other, &pub, 1);
    cr_assert_eq(handle_status(&s, &req, &peer, obs, NULL, 0, 0, &text), RP_AUTONAT_E_BAD_REQUEST);
    cr_assert_str_eq(text, "peer id mismatch");
    /* Not a peer ID at all. */
    req.peer_id = rp_iov_make("\x12\x01\x00", 3);
    cr_assert_eq(handle_status(&s, &req, &peer, obs, NULL, 0, 0, &text), RP_AUTONAT_E_BAD_REQUEST);
    cr_assert_str_eq(text, "bad peer id");
    /* No peer ID: served (go), as the connection names the peer. */
    req.peer_id = rp_iov_make(NULL, 0);
    cr_assert_eq(handle_status(&s, &req, &peer, obs, NULL, 0, 0, NULL), RP_AUTONAT_OK);
    /* No peer info. */
    req.has_peer = false;
    cr_assert_eq(handle_status(&s, &req, &peer, obs, NULL, 0, 0, &text), RP_AUTONAT_E_BAD_REQUEST);
    cr_assert_str_eq(text, "missing peer info");
    req.has_dial = false;
    cr_assert_eq(handle_status(&s, &req, &peer, obs, NULL, 0, 0, NULL), RP_AUTONAT_E_BAD_REQUEST);
    /* Not a DIAL: reset. */
    req.type = RP_AUTONAT_DIAL_RESPONSE;
    rp_autonat_decision d;
    ringp2p_errinfo ei = { 0 };
    cr_assert_eq(rp_autonat_server_handle(&s, &req, &peer, obs.base, obs.len, NULL, 0, 0, &d, &ei),
                 RINGP2P_EPROTOCOL);

    /* Over a relay (spec: MUST NOT). */
    dial_msg(&req, buf, sizeof(buf), &peer, &pub, 1);
    rp_iov relayed = ma(&a, "/ip4/9.9.9.9/tcp/4001/p2p/" PEER_B "/p2p-circuit");
    cr_assert_eq(handle_status(&s, &req, &peer, relayed, NULL, 0, 0, NULL),
                 RP_AUTONAT_E_DIAL_REFUSED);
    /* Nothing left to dial: only other IPs asked about. */
    rp_iov elsewhere = ma(&a, "/ip4/5.6.7.8/tcp/4001");
    dial_msg(&req, buf, sizeof(buf), &peer, &elsewhere, 1);
    cr_assert_eq(handle_status(&s, &req, &peer, obs, NULL, 0, 0, &text), RP_AUTONAT_E_DIAL_REFUSED);
    cr_assert_str_eq(text, "no dialable addresses");
    /* An observed address that is not IP. */
    dial_msg(&req, buf, sizeof(buf), &peer, &pub, 1);
    rp_iov dns = ma(&a, "/dns4/example.com/tcp/1");
    cr_assert_eq(handle_status(&s, &req, &peer, dns, NULL, 0, 0, NULL),
                 RP_AUTONAT_E_INTERNAL_ERROR);
    /* The requester shares our IP. */
    rp_iov own = ma(&a, "/ip4/1.2.3.4/tcp/7000");
    cr_assert_eq(handle_status(&s, &req, &peer, obs, &own, 1, 0, NULL), RP_AUTONAT_E_DIAL_REFUSED);
    rp_autonat_server_config cfg = open_cfg();
    cfg.allow_self = true;
    rp_autonat_server s2;
    rp_autonat_server_init(&s2, &cfg);
    cr_assert_eq(handle_status(&s2, &req, &peer, obs, &own, 1, 0, NULL), RP_AUTONAT_OK);
}

Test(autonat, private_addresses_only_when_allowed)
{
    arena a = { 0 };
    ringp2p_peer_id peer = pid(PEER_A);
    rp_iov obs = ma(&a, "/ip4/10.0.1.2/tcp/40000");
    rp_iov asked[] = { ma(&a, "/ip4/10.0.1.2/tcp/4001"), ma(&a, "/ip4/192.168.1.2/tcp/4001") };
    uint8_t buf[512];
    rp_autonat_msg req;
    dial_msg(&req, buf, sizeof(buf), &peer, asked, 2);

    rp_autonat_server s;
    rp_autonat_server_init(&s, NULL); /* go: private requesters are refused */
    cr_assert_eq(handle_status(&s, &req, &peer, obs, NULL, 0, 0, NULL), RP_AUTONAT_E_DIAL_REFUSED);

    rp_autonat_server_config cfg = open_cfg();
    cfg.allow_private = true;
    rp_autonat_server_init(&s, &cfg);
    rp_autonat_decision d;
    rp_autonat_server_handle(&s, &req, &peer, obs.base, obs.len, NULL, 0, 0, &d, NULL);
    cr_assert_eq(d.status, RP_AUTONAT_OK);
    cr_assert_eq(d.n_addrs, 1, "still only the observed IP");
    cr_assert(nat_is(&d.addrs[0], asked[0]));
    /* Unspecified addresses are never dialed. */
    rp_iov any = ma(&a, "/ip4/0.0.0.0/tcp/4001");
    rp_iov obs0 = ma(&a, "/ip4/0.0.0.0/tcp/1");
    dial_msg(&req, buf, sizeof(buf), &peer, &any, 1);
    cr_assert_eq(handle_status(&s, &req, &peer, obs0, NULL, 0, 0, NULL), RP_AUTONAT_E_DIAL_REFUSED);
}

Test(autonat, server_rate_limits_per_peer_and_globally)
{
    arena a = { 0 };
    rp_autonat_server_config cfg = open_cfg();
    cfg.jitter_ns = 0;
    rp_autonat_server s;
    rp_autonat_server_init(&s, &cfg);
    ringp2p_peer_id peer = pid(PEER_A);
    rp_iov obs = ma(&a, "/ip4/1.2.3.4/tcp/5555"), pub = ma(&a, "/ip4/1.2.3.4/tcp/4001");
    uint8_t buf[512];
    rp_autonat_msg req;
    dial_msg(&req, buf, sizeof(buf), &peer, &pub, 1);
    uint64_t t0 = 1000 * SEC;
    for (int i = 0; i < 3; i++)
        cr_assert_eq(handle_status(&s, &req, &peer, obs, NULL, 0, t0 + (uint64_t)i * SEC, NULL),
                     RP_AUTONAT_OK, "request %d", i);
    const char *text;
    cr_assert_eq(handle_status(&s, &req, &peer, obs, NULL, 0, t0 + 3 * SEC, &text),
                 RP_AUTONAT_E_DIAL_REFUSED);
    cr_assert_str_eq(text, "too many dials");
    /* The window ends a minute after it began. */
    cr_assert_eq(handle_status(&s, &req, &peer, obs, NULL, 0, t0 + 59 * SEC, NULL),
                 RP_AUTONAT_E_DIAL_REFUSED);
    cr_assert_eq(handle_status(&s, &req, &peer, obs, NULL, 0, t0 + 60 * SEC, NULL), RP_AUTONAT_OK);

    /* Globally: 30 per window, whoever asks. Peers are made from sha256 multihashes. */
    rp_autonat_server_init(&s, &cfg);
    int ok = 0;
    for (int i = 0; i < 40; i++) {
        uint8_t mh[34] = { 0x12, 0x20, (uint8_t)i, 0x42 };
        ringp2p_peer_id p;
        cr_assert_eq(ringp2p_peer_id_from_bytes(mh, sizeof(mh), &p, NULL), 0);
        dial_msg(&req, buf, sizeof(buf), &p, &pub, 1);
        if (handle_status(&s, &req, &p, obs, NULL, 0, t0, NULL) == RP_AUTONAT_OK) ok++;
    }
    cr_assert_eq(ok, RP_AUTONAT_SERVER_GLOBAL_MAX);
    /* No global limit (go WithoutThrottling): the peer table bounds memory instead. */
    cfg.global_max = 0;
    rp_autonat_server_init(&s, &cfg);
    ok = 0;
    for (int i = 0; i < RP_AUTONAT_SERVER_PEERS_MAX + 5; i++) {
        uint8_t mh[34] = { 0x12, 0x20, (uint8_t)i, 0x43 };
        ringp2p_peer_id p;
        ringp2p_peer_id_from_bytes(mh, sizeof(mh), &p, NULL);
        dial_msg(&req, buf, sizeof(buf), &p, &pub, 1);
        if (handle_status(&s, &req, &p, obs, NULL, 0, t0, NULL) == RP_AUTONAT_OK) ok++;
    }
    cr_assert_eq(ok, RP_AUTONAT_SERVER_PEERS_MAX);
}

Test(autonat, server_window_jitter_stays_in_range)
{
    arena a = { 0 };
    rp_iov obs = ma(&a, "/ip4/1.2.3.4/tcp/5555"), pub = ma(&a, "/ip4/1.2.3.4/tcp/4001");
    ringp2p_peer_id peer = pid(PEER_A);
    uint8_t buf[512];
    rp_autonat_msg req;
    dial_msg(&req, buf, sizeof(buf), &peer, &pub, 1);
    uint64_t seen_min = UINT64_MAX, seen_max = 0;
    for (uint64_t seed = 1; seed <= 200; seed++) {
        rp_autonat_server_config cfg = open_cfg();
        cfg.seed = seed * 7919;
        rp_autonat_server s;
        rp_autonat_server_init(&s, &cfg);
        handle_status(&s, &req, &peer, obs, NULL, 0, 5 * SEC, NULL);
        uint64_t w = s.window_end_ns - 5 * SEC;
        cr_assert_geq(w, RP_AUTONAT_SERVER_WINDOW_NS);
        cr_assert_leq(w, RP_AUTONAT_SERVER_WINDOW_NS + RP_AUTONAT_SERVER_JITTER_NS);
        if (w < seen_min) seen_min = w;
        if (w > seen_max) seen_max = w;
    }
    cr_assert_gt(seen_max - seen_min, SEC, "the jitter varies with the seed");
}

/* ---- Client ---------------------------------------------------------------------------------- */

static rp_autonat_client fresh_client(uint64_t now)
{
    rp_autonat_client c;
    rp_autonat_client_init(&c, NULL, now);
    return c;
}

static int feed(rp_autonat_client *c, rp_autonat_observation o, uint64_t now)
{
    ringp2p_peer_id s = pid(PEER_C);
    rp_autonat_client_probe_started(c, &s, now);
    return rp_autonat_client_probe_done(c, &s, o, now);
}

Test(autonat, reachability_flips_as_go_does)
{
    rp_autonat_client c = fresh_client(0);
    cr_assert_eq(rp_autonat_client_status(&c), RP_AUTONAT_UNKNOWN);
    /* From unknown, the first public answer flips at once. */
    cr_assert_eq(feed(&c, RP_AUTONAT_OBS_PUBLIC, SEC), 1);
    cr_assert_eq(rp_autonat_client_status(&c), RP_AUTONAT_PUBLIC);
    cr_assert_eq(c.confidence, 0);
    for (int i = 0; i < 5; i++) cr_assert_eq(feed(&c, RP_AUTONAT_OBS_PUBLIC, SEC), 0);
    cr_assert_eq(c.confidence, RP_AUTONAT_MAX_CONFIDENCE);
    /* Refusals say nothing. */
    for (int i = 0; i < 5; i++) cr_assert_eq(feed(&c, RP_AUTONAT_OBS_REFUSED, SEC), 0);
    cr_assert_eq(c.confidence, RP_AUTONAT_MAX_CONFIDENCE);
    /* At full confidence, three failures to be dialed only erode it; the fourth flips. */
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(feed(&c, RP_AUTONAT_OBS_PRIVATE, SEC), 0, "private %d", i);
        cr_assert_eq(rp_autonat_client_status(&c), RP_AUTONAT_PUBLIC);
    }
    cr_assert_eq(feed(&c, RP_AUTONAT_OBS_PRIVATE, SEC), 1);
    cr_assert_eq(rp_autonat_client_status(&c), RP_AUTONAT_PRIVATE);
    /* One success is enough to be public again (go: "aggressively switch to public"). */
    cr_assert_eq(feed(&c, RP_AUTONAT_OBS_PRIVATE, SEC), 0);
    cr_assert_eq(c.confidence, 1);
    cr_assert_eq(feed(&c, RP_AUTONAT_OBS_PUBLIC, SEC), 1);
    cr_assert_eq(rp_autonat_client_status(&c), RP_AUTONAT_PUBLIC);
    cr_assert_eq(c.confidence, 0);
    /* A public answer interrupted by a private one: confidence is not reset, only lowered. */
    feed(&c, RP_AUTONAT_OBS_PUBLIC, SEC);
    feed(&c, RP_AUTONAT_OBS_PUBLIC, SEC);
    cr_assert_eq(c.confidence, 2);
    cr_assert_eq(feed(&c, RP_AUTONAT_OBS_PRIVATE, SEC), 0);
    cr_assert_eq(c.confidence, 1);
    /* Errors erode confidence, then make the status unknown. */
    cr_assert_eq(feed(&c, RP_AUTONAT_OBS_ERROR, SEC), 0);
    cr_assert_eq(c.confidence, 0);
    cr_assert_eq(feed(&c, RP_AUTONAT_OBS_ERROR, SEC), 1);
    cr_assert_eq(rp_autonat_client_status(&c), RP_AUTONAT_UNKNOWN);
    cr_assert_eq(feed(&c, RP_AUTONAT_OBS_ERROR, SEC), 0, "unknown stays unknown: no change");
    /* From unknown, a first private answer flips too. */
    cr_assert_eq(feed(&c, RP_AUTONAT_OBS_PRIVATE, SEC), 1);
    cr_assert_eq(rp_autonat_client_status(&c), RP_AUTONAT_PRIVATE);
    cr_assert_str_eq(rp_autonat_reachability_name(rp_autonat_client_status(&c)), "private");
}

Test(autonat, observation_of_answers)
{
    rp_autonat_msg m;
    rp_autonat_msg_init(&m);
    cr_assert_eq(rp_autonat_response_observation(&m, NULL), RP_AUTONAT_OBS_ERROR, "a DIAL");
    m.type = RP_AUTONAT_DIAL_RESPONSE;
    cr_assert_eq(rp_autonat_response_observation(&m, NULL), RP_AUTONAT_OBS_ERROR,
                 "no dialResponse (go would read it as OK)");
    m.has_response = true;
    static const struct {
        uint64_t status;
        rp_autonat_observation obs;
    } map[] = {
        { RP_AUTONAT_OK, RP_AUTONAT_OBS_PUBLIC },
        { RP_AUTONAT_E_DIAL_ERROR, RP_AUTONAT_OBS_PRIVATE },
        { RP_AUTONAT_E_DIAL_REFUSED, RP_AUTONAT_OBS_REFUSED },
        { RP_AUTONAT_E_BAD_REQUEST, RP_AUTONAT_OBS_ERROR },
        { RP_AUTONAT_E_INTERNAL_ERROR, RP_AUTONAT_OBS_ERROR },
        { 12345, RP_AUTONAT_OBS_ERROR },
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        m.has_status = true;
        m.status = map[i].status;
        rp_iov addr = rp_iov_make("x", 1);
        cr_assert_eq(rp_autonat_response_observation(&m, &addr), map[i].obs, "status %llu",
                     (unsigned long long)map[i].status);
        cr_assert_null(addr.base, "no address was sent");
    }
    cr_assert_str_eq(rp_autonat_status_name(RP_AUTONAT_E_DIAL_REFUSED), "E_DIAL_REFUSED");
    cr_assert_str_eq(rp_autonat_status_name(7), "unknown");
}

Test(autonat, probe_schedule_is_gos)
{
    uint64_t t0 = 50 * SEC;
    rp_autonat_client c = fresh_client(t0);
    /* Boot delay, unless a server shows up first. */
    cr_assert_eq(rp_autonat_client_next_probe(&c), t0 + RP_AUTONAT_BOOT_DELAY_NS);
    cr_assert(!rp_autonat_client_tick(&c, t0 + SEC));
    rp_autonat_client_server_appeared(&c, t0 + 2 * SEC);
    cr_assert_eq(rp_autonat_client_next_probe(&c), t0 + 2 * SEC);
    uint64_t t = t0 + 2 * SEC;
    cr_assert(rp_autonat_client_tick(&c, t));
    /* Unknown: retry in 90 s; a server appearing while unknown: 2 s. */
    cr_assert_eq(rp_autonat_client_next_probe(&c), t + RP_AUTONAT_RETRY_NS);
    rp_autonat_client_server_appeared(&c, t + SEC);
    cr_assert_eq(rp_autonat_client_next_probe(&c), t + RP_AUTONAT_FORCE_RETRY_NS);
    t += RP_AUTONAT_FORCE_RETRY_NS;
    cr_assert(rp_autonat_client_tick(&c, t));
    cr_assert_eq(rp_autonat_client_next_probe(&c), t + RP_AUTONAT_RETRY_NS, "force is spent");
    /* Public but unsure: retry; sure: refresh. */
    feed(&c, RP_AUTONAT_OBS_PUBLIC, t + SEC);
    cr_assert_eq(rp_autonat_client_next_probe(&c), t + RP_AUTONAT_RETRY_NS);
    for (int i = 0; i < 3; i++) feed(&c, RP_AUTONAT_OBS_PUBLIC, t + SEC);
    cr_assert_eq(rp_autonat_client_next_probe(&c), t + RP_AUTONAT_REFRESH_NS);
    /* An inbound connection from a public address while public: twice the refresh. */
    arena a = { 0 };
    rp_iov from = ma(&a, "/ip4/8.8.8.8/tcp/3000"), priv = ma(&a, "/ip4/10.0.0.9/tcp/3000");
    rp_autonat_client_inbound(&c, priv.base, priv.len, NULL, 0, t + 2 * SEC);
    cr_assert_eq(rp_autonat_client_next_probe(&c), t + RP_AUTONAT_REFRESH_NS, "private: ignored");
    rp_autonat_client_inbound(&c, from.base, from.len, NULL, 0, t + 2 * SEC);
    cr_assert_eq(rp_autonat_client_next_probe(&c), t + 2 * RP_AUTONAT_REFRESH_NS);
    /* Our addresses changed: one off a full confidence, so the next probe is sooner. */
    rp_autonat_client_addrs_changed(&c, t + 3 * SEC);
    cr_assert_eq(c.confidence, RP_AUTONAT_MAX_CONFIDENCE - 1);
    cr_assert_eq(rp_autonat_client_next_probe(&c), t + RP_AUTONAT_RETRY_NS);
    /* A due time in the past is now. */
    uint64_t late = t + 10 * RP_AUTONAT_REFRESH_NS;
    rp_autonat_client_server_appeared(&c, late);
    cr_assert_eq(rp_autonat_client_next_probe(&c), late);
    /* Refused: sooner only while unknown (go forceProbe). */
    rp_autonat_client u = fresh_client(0);
    cr_assert(rp_autonat_client_tick(&u, RP_AUTONAT_BOOT_DELAY_NS));
    feed(&u, RP_AUTONAT_OBS_REFUSED, RP_AUTONAT_BOOT_DELAY_NS + SEC);
    cr_assert_eq(rp_autonat_client_next_probe(&u),
                 RP_AUTONAT_BOOT_DELAY_NS + RP_AUTONAT_FORCE_RETRY_NS);
    /* Private, then reached from outside: retry rather than refresh. */
    rp_autonat_client p = fresh_client(0);
    cr_assert(rp_autonat_client_tick(&p, RP_AUTONAT_BOOT_DELAY_NS));
    for (int i = 0; i < 4; i++) feed(&p, RP_AUTONAT_OBS_PRIVATE, RP_AUTONAT_BOOT_DELAY_NS);
    cr_assert_eq(p.confidence, RP_AUTONAT_MAX_CONFIDENCE);
    cr_assert_eq(rp_autonat_client_next_probe(&p),
                 RP_AUTONAT_BOOT_DELAY_NS + RP_AUTONAT_REFRESH_NS);
    rp_autonat_client_inbound(&p, from.base, from.len, NULL, 0, RP_AUTONAT_BOOT_DELAY_NS + SEC);
    cr_assert_eq(rp_autonat_client_next_probe(&p), RP_AUTONAT_BOOT_DELAY_NS + RP_AUTONAT_RETRY_NS);
}

Test(autonat, choosing_servers)
{
    arena a = { 0 };
    rp_autonat_client c = fresh_client(0);
    ringp2p_peer_id s1 = pid(PEER_A), s2 = pid(PEER_B);
    rp_iov pub = ma(&a, "/ip4/8.8.8.8/tcp/4001"), priv = ma(&a, "/ip4/10.1.1.1/tcp/4001");
    rp_iov relayed = ma(&a, "/ip4/8.8.4.4/tcp/4001/p2p/" PEER_C "/p2p-circuit");
    rp_iov own = ma(&a, "/ip4/8.8.8.8/tcp/9999");
    cr_assert(rp_autonat_client_server_ok(&c, &s1, &pub, 1, NULL, 0, SEC));
    cr_assert(!rp_autonat_client_server_ok(&c, &s1, &priv, 1, NULL, 0, SEC));
    cr_assert(!rp_autonat_client_server_ok(&c, &s1, &relayed, 1, NULL, 0, SEC));
    cr_assert(!rp_autonat_client_server_ok(&c, &s1, NULL, 0, NULL, 0, SEC));
    rp_iov both[2] = { priv, pub };
    cr_assert(!rp_autonat_client_server_ok(&c, &s1, both, 2, &own, 1, SEC), "it shares our IP");
    /* Asked recently: not again within 90 s. */
    rp_autonat_client_probe_started(&c, &s1, SEC);
    cr_assert(!rp_autonat_client_server_ok(&c, &s1, &pub, 1, NULL, 0, 2 * SEC));
    cr_assert(rp_autonat_client_server_ok(&c, &s2, &pub, 1, NULL, 0, 2 * SEC));
    cr_assert(
        rp_autonat_client_server_ok(&c, &s1, &pub, 1, NULL, 0, SEC + RP_AUTONAT_PEER_THROTTLE_NS));
    /* At most 5 probes in flight. */
    for (int i = 1; i < RP_AUTONAT_PENDING_MAX; i++) rp_autonat_client_probe_started(&c, &s2, SEC);
    cr_assert(!rp_autonat_client_server_ok(&c, &s2, &pub, 1, NULL, 0, 1000 * SEC));
    rp_autonat_client_probe_done(&c, &s2, RP_AUTONAT_OBS_REFUSED, 1000 * SEC);
    cr_assert(rp_autonat_client_server_ok(&c, &s2, &pub, 1, NULL, 0, 1000 * SEC));
    /* allow_private: private servers do. */
    rp_autonat_client_config cfg;
    rp_autonat_client_config_default(&cfg);
    cfg.allow_private = true;
    rp_autonat_client_init(&c, &cfg, 0);
    cr_assert(rp_autonat_client_server_ok(&c, &s1, &priv, 1, NULL, 0, SEC));
    /* The recent list is bounded: the oldest is forgotten. */
    for (int i = 0; i < RP_AUTONAT_CLIENT_RECENT_MAX + 3; i++) {
        uint8_t mh[34] = { 0x12, 0x20, (uint8_t)i };
        ringp2p_peer_id p;
        ringp2p_peer_id_from_bytes(mh, sizeof(mh), &p, NULL);
        rp_autonat_client_probe_started(&c, &p, SEC + (uint64_t)i);
    }
    cr_assert_eq(c.n_recent, RP_AUTONAT_CLIENT_RECENT_MAX);
}

/* ---- A whole exchange ------------------------------------------------------------------------ */

/*
 * Three servers answer one client in memory: the client writes its DIAL, each
 * server reads and judges it, "dials back" by checking whether the address is
 * one the test says is open, and answers; the client reads each answer and
 * updates its reachability.
 */
static rp_autonat_observation exchange(rp_autonat_server *sv, const ringp2p_peer_id *client_id,
                                       const rp_iov *ask, size_t n, rp_iov seen_as,
                                       rp_iov open_addr, rp_iov *confirmed)
{
    uint8_t wire[1024];
    ssize_t len = rp_autonat_write_dial(client_id, ask, n, wire, sizeof(wire), NULL);
    cr_assert_gt(len, 0);
    /* The server side, fed byte by byte. */
    rp_autonat_msg req;
    const uint8_t *p = wire;
    int r = 0;
    for (size_t k = 0; k <= (size_t)len && r == 0; k++)
        r = rp_autonat_read_frame(&p, wire + k, &req, NULL);
    cr_assert_eq(r, 1);
    rp_autonat_decision d;
    cr_assert_eq(rp_autonat_server_handle(sv, &req, client_id, seen_as.base, seen_as.len, NULL, 0,
                                          SEC, &d, NULL),
                 0);
    int dial = RINGP2P_ETIMEDOUT;
    const rp_nataddr *dialed = NULL;
    for (size_t i = 0; i < d.n_addrs; i++)
        if (nat_is(&d.addrs[i], open_addr)) {
            dial = 0;
            dialed = &d.addrs[i];
        }
    uint8_t answer[256];
    len = rp_autonat_server_respond(&d, dial, dialed ? dialed->bytes : NULL,
                                    dialed ? dialed->len : 0, answer, sizeof(answer), NULL);
    cr_assert_gt(len, 0);
    rp_autonat_msg resp;
    p = answer;
    cr_assert_eq(rp_autonat_read_frame(&p, answer + len, &resp, NULL), 1);
    return rp_autonat_response_observation(&resp, confirmed);
}

Test(autonat, in_memory_exchange_public_then_private)
{
    arena a = { 0 };
    ringp2p_peer_id me = pid(PEER_A);
    rp_iov mine = ma(&a, "/ip4/1.2.3.4/tcp/4001");
    rp_iov seen = ma(&a, "/ip4/1.2.3.4/tcp/61000");
    rp_iov closed = ma(&a, "/ip4/9.9.9.9/tcp/1");
    rp_autonat_server servers[3];
    for (int i = 0; i < 3; i++) rp_autonat_server_init(&servers[i], NULL);
    rp_autonat_client c = fresh_client(0);
    int changes = 0;
    for (int i = 0; i < 3; i++) {
        rp_iov confirmed;
        rp_autonat_observation o = exchange(&servers[i], &me, &mine, 1, seen, mine, &confirmed);
        cr_assert_eq(o, RP_AUTONAT_OBS_PUBLIC);
        cr_assert(iov_is(confirmed, mine.base, mine.len));
        changes += feed(&c, o, SEC);
    }
    cr_assert_eq(changes, 1);
    cr_assert_eq(rp_autonat_client_status(&c), RP_AUTONAT_PUBLIC);
    /* The port closes: dial-backs fail; the fourth flips the status. The servers' per-peer
     * limit (3 per minute) refuses the second round, which changes nothing. */
    rp_autonat_server more[4];
    for (int i = 0; i < 4; i++) rp_autonat_server_init(&more[i], NULL);
    cr_assert_eq(exchange(&servers[0], &me, &mine, 1, seen, closed, NULL), RP_AUTONAT_OBS_PRIVATE);
    cr_assert_eq(exchange(&servers[0], &me, &mine, 1, seen, closed, NULL), RP_AUTONAT_OBS_PRIVATE);
    cr_assert_eq(exchange(&servers[0], &me, &mine, 1, seen, closed, NULL), RP_AUTONAT_OBS_REFUSED);
    feed(&c, RP_AUTONAT_OBS_PUBLIC, SEC); /* confidence to full */
    changes = 0;
    for (int i = 0; i < 4; i++) {
        rp_autonat_observation o = exchange(&more[i], &me, &mine, 1, seen, closed, NULL);
        cr_assert_eq(o, RP_AUTONAT_OBS_PRIVATE);
        changes += feed(&c, o, SEC);
        cr_assert_eq(rp_autonat_client_status(&c), i < 3 ? RP_AUTONAT_PUBLIC : RP_AUTONAT_PRIVATE);
    }
    cr_assert_eq(changes, 1);
}
