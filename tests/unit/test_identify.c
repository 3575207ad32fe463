/*
 * Identify and identify/push: the message codec and its framing, a message
 * captured from js-libp2p, verification, the push merge into a peer's state,
 * and the observed-address rule.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "base/varint.h"
#include "key_vectors.h"
#include "multiformats/multiaddr.h"
#include "proto/identify.pb-c.h"
#include "protocols/identify.h"

/*
 * The bytes a js-libp2p node (libp2p 3.3.11, @libp2p/identify 4.1.14, Node
 * 22.23.3; tests/interop/package-lock.json) wrote on /ipfs/id/1.0.0, taken off
 * the stream by the requesting js node over a real TCP + Noise + yamux
 * connection on 127.0.0.1. The responder's key is GO_RECORD_PRIV (the
 * Ed25519 key of js-libp2p's peer-record tests); it listened on
 * JS_LISTEN and saw the requester at JS_OBSERVED.
 */
static const char JS_IDENTIFY_STREAM[] =
    "f1022a0a697066732f302e312e30321d6a732d6c69627032702f332e332e3131206e6f64652f32322e32332e"
    "330a240801122011bba3ed1721948cefb4e50b0a0bb5cad8a6b52dc7b1a40f4f6652105c91e2c41208047f00"
    "00010683a92231047f00000106c006a50326002408011220c03c4667ae7529661b85801a2551ae68ed480d47"
    "ae5c07f570a133b0a9f416e91a0e2f697066732f69642f312e302e301a132f697066732f69642f707573682f"
    "312e302e301a102f697066732f70696e672f312e302e3042a9010a240801122011bba3ed1721948cefb4e50b"
    "0a0bb5cad8a6b52dc7b1a40f4f6652105c91e2c4120203011a3b0a2600240801122011bba3ed1721948cefb4"
    "e50b0a0bb5cad8a6b52dc7b1a40f4f6652105c91e2c41099a8b3f39f341a0a0a08047f0000010683a92a404a"
    "07c7872f2ef4ddc0881bcc16d4bb8c995b8c4c3d241d1d43773b5dfb918fb438cfee697378b5c415bcecdcaf"
    "810ce95cd6db24bd45a2bef76cd62842d23b00";
#define JS_PEER   "12D3KooWB1b3qZxWJanuhtseF3DmPggHCtG36KZ9ixkqHtdKH9fh"
#define JS_AGENT  "js-libp2p/3.3.11 node/22.23.3"
#define JS_LISTEN "/ip4/127.0.0.1/tcp/33705"
#define JS_OBSERVED \
    "/ip4/127.0.0.1/tcp/49158/p2p/12D3KooWNkmkhmFBULBNLdcVxtppupGrF7DW7pDgcTkC9sxARgAt"
#define JS_RECORD_SEQ UINT64_C(1795269907481) /* js: Date.now() */
static const char *const js_protocols[] = { "/ipfs/id/1.0.0", "/ipfs/id/push/1.0.0",
                                            "/ipfs/ping/1.0.0" };

/* js-libp2p packages/peer-record/test/peer-record.spec.ts (a key made by go-libp2p). */
static const char GO_RECORD_PRIV[] =
    "0801124085fbe72b6064289004a531f967898df5319ee02992fdd84021fa5052434bf6ee11bba3ed1721948c"
    "efb4e50b0a0bb5cad8a6b52dc7b1a40f4f6652105c91e2c4";

#define BUF_MAX 16384

static ringp2p_peer_id peer_of(const ringp2p_privkey *key)
{
    ringp2p_peer_id id;
    ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(key), &id);
    return id;
}

/* Binary multiaddrs parsed from text, kept in a small arena per test. */
typedef struct addrs {
    uint8_t arena[4096];
    size_t used;
} addrs;

static rp_iov ma(addrs *a, const char *text)
{
    ringp2p_errinfo ei = { 0 };
    ssize_t n =
        rp_maddr_from_text(text, strlen(text), a->arena + a->used, sizeof(a->arena) - a->used, &ei);
    cr_assert_gt(n, 0, "%s: %s", text, ei.msg);
    rp_iov v = rp_iov_make(a->arena + a->used, (size_t)n);
    a->used += (size_t)n;
    return v;
}

static bool iov_is(rp_iov v, const void *p, size_t n)
{
    return v.base != NULL && v.len == n && (n == 0 || memcmp(v.base, p, n) == 0);
}

static bool iov_str(rp_iov v, const char *s)
{
    return iov_is(v, s, strlen(s));
}

static bool iov_same(rp_iov a, rp_iov b)
{
    return (a.base == NULL) == (b.base == NULL) && a.len == b.len &&
           (a.len == 0 || memcmp(a.base, b.base, a.len) == 0);
}

static void assert_same_msg(const rp_identify_msg *a, const rp_identify_msg *b)
{
    cr_assert(iov_same(a->protocol_version, b->protocol_version));
    cr_assert(iov_same(a->agent_version, b->agent_version));
    cr_assert(iov_same(a->public_key, b->public_key));
    cr_assert(iov_same(a->observed_addr, b->observed_addr));
    cr_assert(iov_same(a->signed_peer_record, b->signed_peer_record));
    cr_assert_eq(a->n_listen_addrs, b->n_listen_addrs);
    for (size_t i = 0; i < a->n_listen_addrs; i++)
        cr_assert(iov_same(a->listen_addrs[i], b->listen_addrs[i]));
    cr_assert_eq(a->n_protocols, b->n_protocols);
    for (size_t i = 0; i < a->n_protocols; i++)
        cr_assert(iov_same(a->protocols[i], b->protocols[i]));
}

/* Reads a whole stream in chunks of `chunk` bytes (0: all at once), as a host would. */
static int read_stream(rp_identify_msg *m, const uint8_t *buf, size_t n, size_t chunk,
                       ringp2p_errinfo *ei)
{
    rp_identify_msg_init(m);
    const uint8_t *p = buf;
    size_t avail = chunk == 0 ? n : 0;
    for (;;) {
        int r;
        while ((r = rp_identify_read_frame(m, &p, buf + avail, ei)) == 1) {
        }
        if (r < 0) return r;
        if (avail == n) break;
        avail = avail + chunk > n ? n : avail + chunk;
    }
    return rp_identify_read_end(m, p, buf + n, ei);
}

/* This node's message with `key`, listen addresses, protocols and optionally a signed record. */
typedef struct node {
    ringp2p_privkey *key;
    uint8_t key_pb[RINGP2P_KEY_PROTOBUF_MAX];
    uint8_t record[RP_ENVELOPE_MAX];
    addrs a;
    rp_iov listen[RP_IDENTIFY_LISTEN_ADDRS_MAX];
    rp_identify_info info;
} node;

static void node_init(node *nd, const char *priv, const char *const *listen, size_t n_listen,
                      const char *const *protocols, size_t n_protocols, uint64_t seq)
{
    memset(nd, 0, sizeof(*nd));
    nd->key = load_key(priv);
    ssize_t kn =
        ringp2p_pubkey_to_protobuf(ringp2p_privkey_public(nd->key), nd->key_pb, sizeof(nd->key_pb));
    cr_assert_gt(kn, 0);
    for (size_t i = 0; i < n_listen; i++) nd->listen[i] = ma(&nd->a, listen[i]);
    nd->info = (rp_identify_info){
        .public_key = nd->key_pb,
        .public_key_len = (size_t)kn,
        .listen_addrs = nd->listen,
        .n_listen_addrs = n_listen,
        .protocols = protocols,
        .n_protocols = n_protocols,
    };
    if (seq != 0) {
        ringp2p_errinfo ei = { 0 };
        ssize_t rn = rp_peer_record_seal(nd->key, seq, nd->listen, n_listen, nd->record,
                                         sizeof(nd->record), &ei);
        cr_assert_gt(rn, 0, "%s", ei.msg);
        nd->info.signed_peer_record = nd->record;
        nd->info.signed_peer_record_len = (size_t)rn;
    }
}

static void node_fini(node *nd)
{
    ringp2p_privkey_free(nd->key);
}

static const char *const two_listen[] = { "/ip4/198.51.100.7/tcp/4001",
                                          "/ip6/2001:db8::7/udp/4001/quic-v1" };
static const char *const three_protocols[] = { "/ipfs/id/1.0.0", "/ipfs/ping/1.0.0",
                                               "/ringp2p/perf/1.0.0" };

/* ---- codec --------------------------------------------------------------------------------- */

Test(identify, js_message_decodes_and_verifies)
{
    kv_blob s = hexblob(JS_IDENTIFY_STREAM);
    rp_identify_msg *m = malloc(sizeof(*m));
    ringp2p_errinfo ei = { 0 };
    cr_assert_eq(read_stream(m, s.b, s.n, 0, &ei), 0, "%s", ei.msg);
    cr_assert_eq(m->n_frames, 1);
    cr_assert(iov_str(m->protocol_version, RP_IDENTIFY_PROTOCOL_VERSION));
    cr_assert(iov_str(m->agent_version, JS_AGENT));
    addrs a = { .used = 0 };
    rp_iov listen = ma(&a, JS_LISTEN), observed = ma(&a, JS_OBSERVED);
    cr_assert_eq(m->n_listen_addrs, 1);
    cr_assert(iov_same(m->listen_addrs[0], listen));
    cr_assert(iov_same(m->observed_addr, observed));
    cr_assert_eq(m->n_protocols, 3);
    for (size_t i = 0; i < 3; i++) cr_assert(iov_str(m->protocols[i], js_protocols[i]));
    cr_assert_eq(m->n_addrs_skipped + m->n_protocols_skipped, 0);

    ringp2p_peer_id remote;
    cr_assert_eq(ringp2p_peer_id_parse(JS_PEER, strlen(JS_PEER), &remote, NULL), 0);
    ringp2p_privkey *key = load_key(GO_RECORD_PRIV);
    ringp2p_peer_id kid = peer_of(key);
    cr_assert(ringp2p_peer_id_equal(&remote, &kid));

    rp_identify_verified v;
    cr_assert_eq(rp_identify_verify(m, &remote, NULL, &v, &ei), 0, "%s", ei.msg);
    cr_assert_not_null(v.key);
    cr_assert(ringp2p_pubkey_equal(v.key, ringp2p_privkey_public(key)));
    cr_assert(v.has_record);
    cr_assert_eq(v.record.seq, JS_RECORD_SEQ);
    cr_assert_eq(v.record.n_addrs, 1);
    cr_assert(iov_same(v.record.addrs[0], listen));
    rp_identify_verified_clear(&v);

    /* Identified by another peer's connection: refused. */
    ringp2p_privkey *other = load_key(JS_ED_VERIFY_PRIVATEKEY);
    ringp2p_peer_id oid = peer_of(other);
    cr_assert_eq(rp_identify_verify(m, &oid, NULL, &v, &ei), RINGP2P_EPEERMISMATCH);
    cr_assert_not_null(strstr(ei.msg, JS_PEER), "%s", ei.msg);

    /* Byte by byte, the same message; protobuf-c reads the body alike. */
    rp_identify_msg *m2 = malloc(sizeof(*m2));
    cr_assert_eq(read_stream(m2, s.b, s.n, 1, &ei), 0, "%s", ei.msg);
    assert_same_msg(m, m2);
    Rp__Identify *pb = rp__identify__unpack(NULL, s.n - 2, s.b + 2);
    cr_assert_not_null(pb);
    cr_assert_str_eq(pb->agentversion, JS_AGENT);
    cr_assert_eq(pb->n_protocols, 3);
    cr_assert(iov_is(m->signed_peer_record, pb->signedpeerrecord.data, pb->signedpeerrecord.len));
    rp__identify__free_unpacked(pb, NULL);

    /* Our encoding of it decodes to the same message. */
    uint8_t enc[BUF_MAX];
    ssize_t n = rp_identify_msg_encode(m, enc, sizeof(enc));
    cr_assert_eq(n, (ssize_t)(s.n - 2), "same fields, another order: same size");
    cr_assert_eq(rp_identify_msg_encode(m, NULL, 0), n);
    const uint8_t *p = enc;
    rp_identify_msg_init(m2);
    cr_assert_eq(rp_identify_decode(&p, enc + n, m2, &ei), 0);
    assert_same_msg(m, m2);
    ringp2p_privkey_free(key);
    ringp2p_privkey_free(other);
    free(m);
    free(m2);
}

Test(identify, write_read_round_trip)
{
    node nd;
    node_init(&nd, JS_ED_VERIFY_PRIVATEKEY, two_listen, 2, three_protocols, 3, 77);
    addrs a = { .used = 0 };
    rp_iov observed = ma(&a, "/ip4/203.0.113.9/tcp/51234");
    uint8_t buf[BUF_MAX];
    ringp2p_errinfo ei = { 0 };
    ssize_t n = rp_identify_write(&nd.info, observed.base, observed.len, buf, sizeof(buf), &ei);
    cr_assert_gt(n, 0, "%s", ei.msg);
    cr_assert_eq(rp_identify_write(&nd.info, observed.base, observed.len, NULL, 0, NULL), n);
    cr_assert_eq(rp_identify_write(&nd.info, observed.base, observed.len, buf, (size_t)n - 1, &ei),
                 RINGP2P_ENOBUF);

    static const size_t chunks[] = { 0, 1, 3, 7, 64 };
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        rp_identify_msg *m = malloc(sizeof(*m));
        cr_assert_eq(read_stream(m, buf, (size_t)n, chunks[c], &ei), 0, "%s", ei.msg);
        cr_assert_eq(m->n_frames, 1, "small enough for one message");
        cr_assert(iov_str(m->protocol_version, RP_IDENTIFY_PROTOCOL_VERSION));
        cr_assert(iov_str(m->agent_version, "ringp2p/" RINGP2P_VERSION));
        cr_assert(iov_is(m->public_key, nd.key_pb, nd.info.public_key_len));
        cr_assert(iov_same(m->observed_addr, observed));
        cr_assert_eq(m->n_listen_addrs, 2);
        cr_assert(iov_same(m->listen_addrs[1], nd.listen[1]));
        cr_assert_eq(m->n_protocols, 3);
        cr_assert(iov_str(m->protocols[2], three_protocols[2]));
        cr_assert(iov_is(m->signed_peer_record, nd.record, nd.info.signed_peer_record_len));
        ringp2p_peer_id id = peer_of(nd.key);
        rp_identify_verified v;
        cr_assert_eq(rp_identify_verify(m, &id, NULL, &v, &ei), 0, "%s", ei.msg);
        cr_assert(v.has_record);
        cr_assert_eq(v.record.seq, 77);
        rp_identify_verified_clear(&v);
        free(m);
    }

    /* protobuf-c reads our body with the same fields. */
    Rp__Identify *pb = rp__identify__unpack(NULL, (size_t)n - 2, buf + 2);
    cr_assert_not_null(pb);
    cr_assert_str_eq(pb->protocolversion, RP_IDENTIFY_PROTOCOL_VERSION);
    cr_assert_eq(pb->n_listenaddrs, 2);
    cr_assert_eq(pb->n_protocols, 3);
    cr_assert_str_eq(pb->protocols[1], three_protocols[1]);
    cr_assert(pb->has_observedaddr && pb->has_signedpeerrecord && pb->has_publickey);
    rp__identify__free_unpacked(pb, NULL);

    /* A push without an observed address, a key or versions given by the host. */
    nd.info.agent_version = "app/2.0";
    nd.info.public_key = NULL;
    n = rp_identify_write(&nd.info, NULL, 0, buf, sizeof(buf), &ei);
    cr_assert_gt(n, 0);
    rp_identify_msg *m = malloc(sizeof(*m));
    cr_assert_eq(read_stream(m, buf, (size_t)n, 0, &ei), 0);
    cr_assert_null(m->observed_addr.base);
    cr_assert_null(m->public_key.base);
    cr_assert(iov_str(m->agent_version, "app/2.0"));
    free(m);
    node_fini(&nd);
}

static const char *const many_protocols[] = {
    "/ipfs/id/1.0.0",
    "/ipfs/id/push/1.0.0",
    "/ipfs/ping/1.0.0",
    "/ipfs/kad/1.0.0",
    "/libp2p/circuit/relay/0.2.0/hop",
    "/libp2p/circuit/relay/0.2.0/stop",
    "/libp2p/dcutr",
    "/libp2p/autonat/1.0.0",
    "/libp2p/autonat/2/dial-request",
    "/libp2p/autonat/2/dial-back",
    "/meshsub/1.0.0",
    "/meshsub/1.1.0",
    "/meshsub/1.2.0",
    "/floodsub/1.0.0",
    "/ipfs/bitswap/1.2.0",
    "/ipfs/bitswap/1.1.0",
    "/ipfs/bitswap/1.0.0",
    "/ipfs/bitswap",
    "/ipfs/lan/kad/1.0.0",
    "/x/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "/x/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    "/x/cccccccccccccccccccccccccccccccccccccccc",
    "/x/dddddddddddddddddddddddddddddddddddddddddd",
    "/x/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
    "/x/ffffffffffffffffffffffffffffffffffffffffff",
    "/x/gggggggggggggggggggggggggggggggggggggggggg",
    "/x/hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh",
    "/x/iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii",
    "/x/jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj",
    "/x/kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk",
    "/x/llllllllllllllllllllllllllllllllllllllllll",
    "/x/mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm",
    "/x/nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn",
    "/x/oooooooooooooooooooooooooooooooooooooooooo",
    "/x/pppppppppppppppppppppppppppppppppppppppppp",
    "/x/qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq",
};

Test(identify, large_message_sends_the_record_alone)
{
    /* Over RP_IDENTIFY_SPLIT_MIN with a record: two messages, as go-libp2p writes them. */
    node nd;
    node_init(&nd, GO_0_PRIV, two_listen, 2, many_protocols,
              sizeof(many_protocols) / sizeof(many_protocols[0]), 5);
    uint8_t buf[BUF_MAX];
    ringp2p_errinfo ei = { 0 };
    ssize_t n = rp_identify_write(&nd.info, NULL, 0, buf, sizeof(buf), &ei);
    cr_assert_gt(n, RP_IDENTIFY_SPLIT_MIN, "%s", ei.msg);
    rp_identify_msg *m = malloc(sizeof(*m));
    cr_assert_eq(read_stream(m, buf, (size_t)n, 5, &ei), 0, "%s", ei.msg);
    cr_assert_eq(m->n_frames, 2);
    cr_assert_eq(m->n_protocols, sizeof(many_protocols) / sizeof(many_protocols[0]));
    cr_assert(iov_is(m->signed_peer_record, nd.record, nd.info.signed_peer_record_len));
    /* The first message alone has no record; the second holds nothing else. */
    rp_identify_msg_init(m);
    const uint8_t *p = buf;
    cr_assert_eq(rp_identify_read_frame(m, &p, buf + n, NULL), 1);
    cr_assert_null(m->signed_peer_record.base);
    cr_assert_gt(m->n_protocols, 0);
    rp_identify_msg_init(m);
    cr_assert_eq(rp_identify_read_frame(m, &p, buf + n, NULL), 1);
    cr_assert_not_null(m->signed_peer_record.base);
    cr_assert_eq(m->n_protocols + m->n_listen_addrs, 0);
    cr_assert_null(m->agent_version.base);
    cr_assert_eq(p, buf + n);

    /* Without a record nothing is split. */
    nd.info.signed_peer_record = NULL;
    n = rp_identify_write(&nd.info, NULL, 0, buf, sizeof(buf), &ei);
    cr_assert_eq(read_stream(m, buf, (size_t)n, 0, &ei), 0);
    cr_assert_eq(m->n_frames, 1);
    free(m);
    node_fini(&nd);
}

Test(identify, own_message_limits)
{
    node nd;
    node_init(&nd, JS_ED_VERIFY_PRIVATEKEY, two_listen, 2, three_protocols, 3, 0);
    uint8_t buf[BUF_MAX];
    ringp2p_errinfo ei = { 0 };
    /* 4 KiB of protocols cannot go out as one message (rust-libp2p reads no more). */
    static char names[128][40];
    const char *list[128];
    for (int i = 0; i < 128; i++) {
        snprintf(names[i], sizeof(names[i]), "/ringp2p/test/%025d", i);
        list[i] = names[i];
    }
    nd.info.protocols = list;
    nd.info.n_protocols = 128;
    cr_assert_eq(rp_identify_write(&nd.info, NULL, 0, buf, sizeof(buf), &ei), RINGP2P_ELIMIT, "%s",
                 ei.msg);
    nd.info.n_protocols = RP_IDENTIFY_PROTOCOLS_MAX + 1;
    cr_assert_eq(rp_identify_write(&nd.info, NULL, 0, buf, sizeof(buf), &ei), RINGP2P_EINVAL);

    static const char *const bad_protocols[][1] = { { "" }, { "/a\nb" }, { NULL } };
    for (size_t i = 0; i < 3; i++) {
        nd.info.protocols = bad_protocols[i];
        nd.info.n_protocols = 1;
        cr_assert_eq(rp_identify_write(&nd.info, NULL, 0, buf, sizeof(buf), &ei), RINGP2P_EINVAL,
                     "protocol %zu", i);
    }
    static char too_long[RP_IDENTIFY_PROTOCOL_LEN_MAX + 2];
    memset(too_long, 'p', sizeof(too_long) - 1);
    const char *tl = too_long;
    nd.info.protocols = &tl;
    cr_assert_eq(rp_identify_write(&nd.info, NULL, 0, buf, sizeof(buf), &ei), RINGP2P_EINVAL);
    too_long[RP_IDENTIFY_PROTOCOL_LEN_MAX] = '\0'; /* exactly the limit */
    cr_assert_gt(rp_identify_write(&nd.info, NULL, 0, buf, sizeof(buf), &ei), 0, "%s", ei.msg);

    rp_iov bad_addr = rp_iov_make("\x04\x01", 2), empty = rp_iov_make("", 0);
    nd.info.listen_addrs = &bad_addr;
    nd.info.n_listen_addrs = 1;
    cr_assert_eq(rp_identify_write(&nd.info, NULL, 0, buf, sizeof(buf), &ei), RINGP2P_EINVAL);
    nd.info.listen_addrs = &empty;
    cr_assert_eq(rp_identify_write(&nd.info, NULL, 0, buf, sizeof(buf), &ei), RINGP2P_EINVAL);
    nd.info.n_listen_addrs = RP_IDENTIFY_LISTEN_ADDRS_MAX + 1;
    cr_assert_eq(rp_identify_write(&nd.info, NULL, 0, buf, sizeof(buf), &ei), RINGP2P_EINVAL);
    nd.info.n_listen_addrs = 0;
    cr_assert_eq(rp_identify_write(&nd.info, (const uint8_t *)"\x04\x01", 2, buf, sizeof(buf), &ei),
                 RINGP2P_EINVAL);
    cr_assert_eq(rp_identify_write(&nd.info, (const uint8_t *)"", 0, buf, sizeof(buf), &ei),
                 RINGP2P_EINVAL);
    node_fini(&nd);
}

Test(identify, framing_limits_and_truncation)
{
    rp_identify_msg *m = malloc(sizeof(*m));
    ringp2p_errinfo ei = { 0 };
    /* A prefix announcing more than 8 KiB. */
    static const uint8_t big[] = { 0x81, 0x40 }; /* 8193 */
    rp_identify_msg_init(m);
    const uint8_t *p = big;
    cr_assert_eq(rp_identify_read_frame(m, &p, big + 2, &ei), RINGP2P_ELIMIT);
    cr_assert_eq(p, big);
    /* Exactly 8 KiB is fine (an unknown field filling it). */
    static uint8_t full[2 + RP_IDENTIFY_MSG_MAX];
    full[0] = 0x80, full[1] = 0x40; /* 8192 */
    full[2] = 0x3a;                 /* field 7, length-delimited */
    full[3] = 0xfd, full[4] = 0x3f; /* 8189 bytes: 1 + 2 + 8189 = 8192 */
    rp_identify_msg_init(m);
    p = full;
    cr_assert_eq(rp_identify_read_frame(m, &p, full + sizeof(full) - 1, &ei), 0, "incomplete");
    cr_assert_eq(p, full);
    cr_assert_eq(rp_identify_read_frame(m, &p, full + sizeof(full), &ei), 1, "%s", ei.msg);
    /* A malformed prefix. */
    static const uint8_t bad_prefix[] = { 0x80, 0x00 };
    rp_identify_msg_init(m);
    p = bad_prefix;
    cr_assert_eq(rp_identify_read_frame(m, &p, bad_prefix + 2, &ei), RINGP2P_EVARINT);
    /* Ten messages are read, an eleventh is refused. */
    static const uint8_t empty_msgs[11] = { 0 };
    rp_identify_msg_init(m);
    p = empty_msgs;
    for (int i = 0; i < RP_IDENTIFY_MSGS_MAX; i++)
        cr_assert_eq(rp_identify_read_frame(m, &p, empty_msgs + 11, &ei), 1);
    cr_assert_eq(rp_identify_read_frame(m, &p, empty_msgs + 11, &ei), RINGP2P_ELIMIT);
    cr_assert_eq(p, empty_msgs + RP_IDENTIFY_MSGS_MAX);
    /* The stream ends inside a message, or before any. */
    static const uint8_t partial[] = { 0x05, 0x2a, 0x01 };
    cr_assert_eq(read_stream(m, partial, sizeof(partial), 0, &ei), RINGP2P_ETRUNCATED);
    cr_assert_eq(read_stream(m, partial, 0, 0, &ei), RINGP2P_ETRUNCATED);
    /* One empty message is a valid (empty) identify. */
    cr_assert_eq(read_stream(m, empty_msgs, 1, 0, &ei), 0);
    free(m);
}

static const struct bad_msg {
    const char *what;
    const char *hex; /* the protobuf body */
    int code;
} bad_msgs[] = {
    { "publicKey as varint", "0801", RINGP2P_EPROTOBUF },
    { "listenAddrs as fixed32", "1501020304", RINGP2P_EPROTOBUF },
    { "protocols as varint", "1801", RINGP2P_EPROTOBUF },
    { "observedAddr as fixed64", "210102030405060708", RINGP2P_EPROTOBUF },
    { "protocolVersion as varint", "2801", RINGP2P_EPROTOBUF },
    { "agentVersion as varint", "3001", RINGP2P_EPROTOBUF },
    { "signedPeerRecord as varint", "4001", RINGP2P_EPROTOBUF },
    { "length past the end", "2a05616263", RINGP2P_EPROTOBUF },
    { "truncated tag", "ff", RINGP2P_EPROTOBUF },
    { "field 0", "0200", RINGP2P_EPROTOBUF },
    { "end group", "0c", RINGP2P_EPROTOBUF },
};

Test(identify, malformed_messages_change_nothing)
{
    rp_identify_msg *m = malloc(sizeof(*m)), *before = malloc(sizeof(*before));
    addrs a = { .used = 0 };
    rp_iov l = ma(&a, "/ip4/1.2.3.4/tcp/1");
    for (size_t i = 0; i < sizeof(bad_msgs) / sizeof(bad_msgs[0]); i++) {
        /* A good message first, then the bad one after a good field. */
        uint8_t good[64];
        rp_wbuf w = rp_wbuf_make(good, sizeof(good));
        rp_pb_put_bytes(&w, 2, l.base, l.len);
        rp_pb_put_bytes(&w, 6, "agent", 5);
        rp_identify_msg_init(m);
        const uint8_t *p = good;
        cr_assert_eq(rp_identify_decode(&p, good + w.len, m, NULL), 0);
        memcpy(before, m, sizeof(*m));

        uint8_t bad[64];
        rp_wbuf bw = rp_wbuf_make(bad, sizeof(bad));
        rp_pb_put_bytes(&bw, 2, l.base, l.len);
        rp_pb_put_bytes(&bw, 3, "/p", 2);
        rp_pb_put_bytes(&bw, 5, "pv", 2);
        bw.len += unhex(bad_msgs[i].hex, bad + bw.len, sizeof(bad) - bw.len);
        p = bad;
        ringp2p_errinfo ei = { 0 };
        int r = rp_identify_decode(&p, bad + bw.len, m, &ei);
        cr_assert_eq(r, bad_msgs[i].code, "%s: %d %s", bad_msgs[i].what, r, ei.msg);
        cr_assert_eq(p, bad, "%s", bad_msgs[i].what);
        cr_assert_eq(ei.code, r);
        assert_same_msg(m, before);
        cr_assert_eq(m->n_addrs_skipped, before->n_addrs_skipped);

        /* Framed, the same refusal, and the stream is not consumed. */
        uint8_t framed[80];
        framed[0] = (uint8_t)bw.len;
        memcpy(framed + 1, bad, bw.len);
        p = framed;
        cr_assert_eq(rp_identify_read_frame(m, &p, framed + 1 + bw.len, NULL), bad_msgs[i].code);
        cr_assert_eq(p, framed);
        cr_assert_eq(m->n_frames, before->n_frames);
    }
    free(m);
    free(before);
}

Test(identify, bad_entries_are_skipped_and_counted)
{
    rp_identify_msg *m = malloc(sizeof(*m));
    addrs a = { .used = 0 };
    rp_iov good = ma(&a, "/ip4/1.2.3.4/tcp/1"), obs = ma(&a, "/ip4/5.6.7.8/tcp/9");
    static uint8_t buf[RP_IDENTIFY_MSG_MAX];
    rp_wbuf w = rp_wbuf_make(buf, sizeof(buf));
    rp_pb_put_bytes(&w, 2, "\x04\x01\x02", 3);     /* ip4 cut short */
    rp_pb_put_bytes(&w, 2, "", 0);                 /* empty */
    rp_pb_put_bytes(&w, 2, "\xff\xff\x03\x00", 4); /* unknown protocol code */
    rp_pb_put_bytes(&w, 4, obs.base, obs.len);     /* good observed... */
    rp_pb_put_bytes(&w, 4, "\x06", 1);             /* ...not erased by a bad one */
    rp_pb_put_bytes(&w, 3, "", 0);                 /* empty protocol */
    rp_pb_put_bytes(&w, 3, "/a\nb", 4);            /* cannot be negotiated */
    rp_pb_put_bytes(&w, 3, "/a\0b", 4);
    static char longp[RP_IDENTIFY_PROTOCOL_LEN_MAX + 1];
    memset(longp, 'x', sizeof(longp));
    rp_pb_put_bytes(&w, 3, longp, sizeof(longp));
    for (int i = 0; i < RP_IDENTIFY_LISTEN_ADDRS_MAX + 3; i++)
        rp_pb_put_bytes(&w, 2, good.base, good.len);
    for (int i = 0; i < RP_IDENTIFY_PROTOCOLS_MAX + 4; i++) rp_pb_put_bytes(&w, 3, "/p", 2);
    cr_assert(rp_wbuf_ok(&w));
    rp_identify_msg_init(m);
    const uint8_t *p = buf;
    ringp2p_errinfo ei = { 0 };
    cr_assert_eq(rp_identify_decode(&p, buf + w.len, m, &ei), 0, "%s", ei.msg);
    cr_assert_eq(m->n_listen_addrs, RP_IDENTIFY_LISTEN_ADDRS_MAX);
    cr_assert_eq(m->n_addrs_skipped, 3 + 1 + 3);
    cr_assert(iov_same(m->observed_addr, obs));
    cr_assert_eq(m->n_protocols, RP_IDENTIFY_PROTOCOLS_MAX);
    cr_assert_eq(m->n_protocols_skipped, 4 + 4);
    free(m);
}

Test(identify, messages_merge_as_protobuf_merges)
{
    /* js-libp2p test/utils.spec.ts mergeIdentifyMessages cases, on the wire. */
    addrs a = { .used = 0 };
    rp_iov l1 = ma(&a, "/ip4/1.2.3.4/tcp/1234"), l2 = ma(&a, "/ip4/5.6.7.8/tcp/5678");
    uint8_t buf[512], body[200];
    rp_wbuf s = rp_wbuf_make(buf, sizeof(buf));
    rp_wbuf w = rp_wbuf_make(body, sizeof(body));
    rp_pb_put_bytes(&w, 5, "old-proto", 9);
    rp_pb_put_bytes(&w, 6, "old-agent", 9);
    rp_pb_put_bytes(&w, 2, l1.base, l1.len);
    rp_pb_put_bytes(&w, 3, "/foo/1.0", 8);
    rp_pb_put_bytes(&w, 8, "\x01\x01", 2);
    rp_wbuf_uvarint(&s, w.len);
    rp_wbuf_put(&s, body, w.len);
    w = rp_wbuf_make(body, sizeof(body));
    rp_pb_put_bytes(&w, 5, "new-proto", 9);
    rp_pb_put_bytes(&w, 2, l2.base, l2.len);
    rp_pb_put_bytes(&w, 3, "/bar/1.0", 8);
    rp_pb_put_bytes(&w, 8, "\x02\x02", 2);
    rp_wbuf_uvarint(&s, w.len);
    rp_wbuf_put(&s, body, w.len);
    rp_identify_msg *m = malloc(sizeof(*m));
    cr_assert_eq(read_stream(m, buf, s.len, 0, NULL), 0);
    cr_assert_eq(m->n_frames, 2);
    cr_assert(iov_str(m->protocol_version, "new-proto"), "later scalars win");
    cr_assert(iov_str(m->agent_version, "old-agent"), "missing scalars do not clear");
    cr_assert(iov_is(m->signed_peer_record, "\x02\x02", 2));
    cr_assert_eq(m->n_listen_addrs, 2, "lists append");
    cr_assert(iov_same(m->listen_addrs[1], l2));
    cr_assert_eq(m->n_protocols, 2);
    free(m);
}

Test(identify, verify_refuses_foreign_keys_and_records)
{
    node me, other;
    node_init(&me, JS_ED_VERIFY_PRIVATEKEY, two_listen, 2, three_protocols, 3, 9);
    node_init(&other, GO_2_PRIV, two_listen, 1, three_protocols, 1, 10);
    ringp2p_peer_id id = peer_of(me.key);
    rp_identify_msg *m = malloc(sizeof(*m));
    rp_identify_verified v;
    ringp2p_errinfo ei = { 0 };

    /* Our key with another peer's (valid) record. */
    rp_identify_msg_init(m);
    m->public_key = rp_iov_make(me.key_pb, me.info.public_key_len);
    m->signed_peer_record = rp_iov_make(other.record, other.info.signed_peer_record_len);
    cr_assert_eq(rp_identify_verify(m, &id, NULL, &v, &ei), RINGP2P_EPEERMISMATCH);
    cr_assert_not_null(strstr(ei.msg, "record"), "%s", ei.msg);
    /* Another key. */
    m->public_key = rp_iov_make(other.key_pb, other.info.public_key_len);
    m->signed_peer_record = rp_iov_make(NULL, 0);
    cr_assert_eq(rp_identify_verify(m, &id, NULL, &v, &ei), RINGP2P_EPEERMISMATCH);
    /* Not a key at all. */
    m->public_key = rp_iov_make("\x08\x09\x12\x00", 4);
    cr_assert_lt(rp_identify_verify(m, &id, NULL, &v, &ei), 0);
    /* Our record, tampered. */
    uint8_t rec[RP_ENVELOPE_MAX];
    memcpy(rec, me.record, me.info.signed_peer_record_len);
    rec[me.info.signed_peer_record_len - 1] ^= 0x80;
    m->public_key = rp_iov_make(NULL, 0);
    m->signed_peer_record = rp_iov_make(rec, me.info.signed_peer_record_len);
    cr_assert_eq(rp_identify_verify(m, &id, NULL, &v, &ei), RINGP2P_ESIGNATURE);
    /* Empty key and record are read as none (go-libp2p). */
    m->public_key = rp_iov_make("", 0);
    m->signed_peer_record = rp_iov_make("", 0);
    cr_assert_eq(rp_identify_verify(m, &id, NULL, &v, &ei), 0);
    cr_assert_null(v.key);
    cr_assert(!v.has_record);
    free(m);
    node_fini(&me);
    node_fini(&other);
}

/* ---- push merge ------------------------------------------------------------------------------ */

/* Writes nd's message (observed: none) and reads it back into *m; m views buf. */
static void transmit(const node *nd, uint8_t *buf, size_t cap, rp_identify_msg *m)
{
    ringp2p_errinfo ei = { 0 };
    ssize_t n = rp_identify_write(&nd->info, NULL, 0, buf, cap, &ei);
    cr_assert_gt(n, 0, "%s", ei.msg);
    cr_assert_eq(read_stream(m, buf, (size_t)n, 0, &ei), 0, "%s", ei.msg);
}

static size_t peer_addrs(const rp_identify_peer *p, const rp_iov **l, bool *cert)
{
    return rp_identify_peer_addrs(p, l, cert);
}

static void cache_is(rp_sigcache *c, uint64_t hits, uint64_t inserted, const char *what)
{
    uint64_t h, i;
    rp_sigcache_stats(c, &h, &i);
    cr_assert_eq(h, hits, "%s: %llu hits", what, (unsigned long long)h);
    cr_assert_eq(i, inserted, "%s: %llu inserted", what, (unsigned long long)i);
}

/*
 * With the node's cache, the same signed record on a second connection is not
 * verified again and still applies in full; a tampered or resealed record is
 * verified for real, and a cached record of another peer is still refused.
 */
Test(identify, a_record_is_verified_once_per_cache)
{
    node nd, other;
    node_init(&nd, JS_ED_VERIFY_PRIVATEKEY, two_listen, 2, three_protocols, 3, 100);
    node_init(&other, GO_2_PRIV, two_listen, 1, three_protocols, 1, 10);
    ringp2p_peer_id id = peer_of(nd.key);
    rp_sigcache *c = rp_sigcache_new();
    rp_identify_msg *m = malloc(sizeof(*m));
    static uint8_t buf[BUF_MAX];
    ringp2p_errinfo ei = { 0 };

    for (int conn = 0; conn < 2; conn++) {
        rp_identify_peer *peer;
        cr_assert_eq(rp_identify_peer_new(&id, &peer), 0);
        transmit(&nd, buf, sizeof(buf), m);
        int r = rp_identify_peer_apply(peer, m, c, &ei);
        cr_assert(r > 0 && (r & RP_IDENTIFY_CHANGED_RECORD), "conn %d: %d %s", conn, r, ei.msg);
        cache_is(c, (uint64_t)conn, 1, "the same record");
        uint64_t seq;
        cr_assert(rp_identify_peer_record(peer, NULL, &seq));
        cr_assert_eq(seq, 100);
        const rp_iov *l;
        bool cert;
        cr_assert_eq(peer_addrs(peer, &l, &cert), 2);
        cr_assert(cert);
        rp_identify_peer_free(peer);
    }

    /* Tampered: the cached good record does not stand in for it. */
    rp_identify_verified v;
    uint8_t rec[RP_ENVELOPE_MAX];
    size_t rn = nd.info.signed_peer_record_len;
    memcpy(rec, nd.record, rn);
    rec[rn - 1] ^= 0x80;
    rp_identify_msg_init(m);
    m->signed_peer_record = rp_iov_make(rec, rn);
    cr_assert_eq(rp_identify_verify(m, &id, c, &v, &ei), RINGP2P_ESIGNATURE);
    cache_is(c, 1, 1, "tampered");

    /* Resealed with a new seq: another envelope, verified and stored. */
    node_fini(&nd);
    node_init(&nd, JS_ED_VERIFY_PRIVATEKEY, two_listen, 2, three_protocols, 3, 101);
    m->signed_peer_record = rp_iov_make(nd.record, nd.info.signed_peer_record_len);
    cr_assert_eq(rp_identify_verify(m, &id, c, &v, &ei), 0, "%s", ei.msg);
    cr_assert_eq(v.record.seq, 101);
    rp_identify_verified_clear(&v);
    cache_is(c, 1, 2, "resealed");

    /* Another peer's valid record: refused the first time and when its signature is cached. */
    m->signed_peer_record = rp_iov_make(other.record, other.info.signed_peer_record_len);
    cr_assert_eq(rp_identify_verify(m, &id, c, &v, &ei), RINGP2P_EPEERMISMATCH);
    cache_is(c, 1, 3, "another peer's");
    cr_assert_eq(rp_identify_verify(m, &id, c, &v, &ei), RINGP2P_EPEERMISMATCH);
    cache_is(c, 2, 3, "another peer's, cached");

    rp_sigcache_free(c);
    free(m);
    node_fini(&nd);
    node_fini(&other);
}

Test(identify_push, push_replaces_only_the_fields_present)
{
    node nd;
    node_init(&nd, JS_ED_VERIFY_PRIVATEKEY, two_listen, 2, three_protocols, 3, 100);
    ringp2p_peer_id id = peer_of(nd.key);
    rp_identify_peer *peer;
    cr_assert_eq(rp_identify_peer_new(&id, &peer), 0);
    rp_identify_msg *m = malloc(sizeof(*m));
    static uint8_t buf[BUF_MAX];
    ringp2p_errinfo ei = { 0 };

    /* The first identify: everything is new. */
    transmit(&nd, buf, sizeof(buf), m);
    int r = rp_identify_peer_apply(peer, m, NULL, &ei);
    cr_assert_eq(r,
                 RP_IDENTIFY_CHANGED_PROTOCOLS | RP_IDENTIFY_CHANGED_ADDRS |
                     RP_IDENTIFY_CHANGED_VERSIONS | RP_IDENTIFY_CHANGED_KEY |
                     RP_IDENTIFY_CHANGED_RECORD,
                 "%d %s", r, ei.msg);
    memset(buf, 0xee, sizeof(buf)); /* the peer state must not point into the message */
    const rp_iov *l;
    bool cert;
    cr_assert_eq(peer_addrs(peer, &l, &cert), 2);
    cr_assert(cert, "addresses from the signed record");
    cr_assert(iov_same(l[0], nd.listen[0]));
    cr_assert(rp_identify_peer_supports(peer, "/ringp2p/perf/1.0.0"));
    cr_assert(!rp_identify_peer_supports(peer, "/ringp2p/perf/2.0.0"));
    cr_assert(iov_str(rp_identify_peer_agent_version(peer), RP_IDENTIFY_AGENT_VERSION));
    cr_assert(ringp2p_pubkey_equal(rp_identify_peer_key(peer), ringp2p_privkey_public(nd.key)));
    uint64_t seq;
    rp_iov env;
    cr_assert(rp_identify_peer_record(peer, &env, &seq));
    cr_assert_eq(seq, 100);
    cr_assert(iov_is(env, nd.record, nd.info.signed_peer_record_len));

    /* The same again: nothing changed. */
    transmit(&nd, buf, sizeof(buf), m);
    cr_assert_eq(rp_identify_peer_apply(peer, m, NULL, &ei), 0);

    /* A push with only protocols (with a duplicate): only they change. */
    static const char *const new_protocols[] = { "/a/1", "/b/1", "/a/1" };
    rp_identify_msg_init(m);
    for (int i = 0; i < 3; i++)
        m->protocols[m->n_protocols++] = rp_iov_make(new_protocols[i], strlen(new_protocols[i]));
    cr_assert_eq(rp_identify_peer_apply(peer, m, NULL, &ei), RP_IDENTIFY_CHANGED_PROTOCOLS);
    const rp_iov *pl;
    cr_assert_eq(rp_identify_peer_protocols(peer, &pl), 2);
    cr_assert(iov_str(pl[0], "/a/1") && iov_str(pl[1], "/b/1"));
    cr_assert(!rp_identify_peer_supports(peer, "/ipfs/id/1.0.0"));
    cr_assert_eq(peer_addrs(peer, &l, &cert), 2, "addresses untouched");
    cr_assert(iov_str(rp_identify_peer_agent_version(peer), RP_IDENTIFY_AGENT_VERSION));

    /* A push with only an agent version. */
    rp_identify_msg_init(m);
    m->agent_version = rp_iov_make("ringp2p/9.9.9", 13);
    cr_assert_eq(rp_identify_peer_apply(peer, m, NULL, &ei), RP_IDENTIFY_CHANGED_VERSIONS);
    cr_assert(iov_str(rp_identify_peer_agent_version(peer), "ringp2p/9.9.9"));
    cr_assert(iov_str(rp_identify_peer_protocol_version(peer), RP_IDENTIFY_PROTOCOL_VERSION));
    cr_assert_eq(rp_identify_peer_protocols(peer, &pl), 2);

    /* A push with a newer record and new addresses: certified, replaced. */
    node nd2;
    static const char *const one_listen[] = { "/ip4/192.0.2.1/tcp/4002" };
    node_init(&nd2, JS_ED_VERIFY_PRIVATEKEY, one_listen, 1, three_protocols, 3, 200);
    nd2.info.public_key = NULL; /* js pushes carry no key */
    transmit(&nd2, buf, sizeof(buf), m);
    r = rp_identify_peer_apply(peer, m, NULL, &ei);
    cr_assert_eq(r,
                 RP_IDENTIFY_CHANGED_ADDRS | RP_IDENTIFY_CHANGED_RECORD |
                     RP_IDENTIFY_CHANGED_PROTOCOLS | RP_IDENTIFY_CHANGED_VERSIONS,
                 "%d", r);
    cr_assert_eq(peer_addrs(peer, &l, &cert), 1);
    cr_assert(cert);
    cr_assert(iov_same(l[0], nd2.listen[0]));
    cr_assert(rp_identify_peer_record(peer, NULL, &seq));
    cr_assert_eq(seq, 200);
    cr_assert_not_null(rp_identify_peer_key(peer), "the key learned before stays");

    /* A stale record (seq 100) with other listen addresses: the stored record's addresses stay. */
    transmit(&nd, buf, sizeof(buf), m);
    r = rp_identify_peer_apply(peer, m, NULL, &ei);
    cr_assert_eq(r & (RP_IDENTIFY_CHANGED_RECORD | RP_IDENTIFY_CHANGED_ADDRS), 0, "%d", r);
    cr_assert_eq(peer_addrs(peer, &l, &cert), 1);
    cr_assert(iov_same(l[0], nd2.listen[0]));
    cr_assert(rp_identify_peer_record(peer, NULL, &seq));
    cr_assert_eq(seq, 200);

    /* Listen addresses without a record: uncertified, from the message. */
    rp_identify_msg_init(m);
    m->listen_addrs[0] = nd.listen[1];
    m->n_listen_addrs = 1;
    cr_assert_eq(rp_identify_peer_apply(peer, m, NULL, &ei), RP_IDENTIFY_CHANGED_ADDRS);
    cr_assert_eq(peer_addrs(peer, &l, &cert), 1);
    cr_assert(!cert);
    cr_assert(iov_same(l[0], nd.listen[1]));
    cr_assert(rp_identify_peer_record(peer, NULL, &seq), "the record is still kept");

    /* An empty push changes nothing. */
    rp_identify_msg_init(m);
    cr_assert_eq(rp_identify_peer_apply(peer, m, NULL, &ei), 0);

    /* A push with another peer's key is refused and changes nothing. */
    node other;
    node_init(&other, GO_2_PRIV, one_listen, 1, three_protocols, 1, 0);
    transmit(&other, buf, sizeof(buf), m);
    cr_assert_eq(rp_identify_peer_apply(peer, m, NULL, &ei), RINGP2P_EPEERMISMATCH);
    cr_assert_eq(rp_identify_peer_protocols(peer, &pl), 3);
    cr_assert(iov_str(rp_identify_peer_agent_version(peer), RP_IDENTIFY_AGENT_VERSION));
    cr_assert_eq(peer_addrs(peer, &l, &cert), 1);
    cr_assert(iov_same(l[0], nd.listen[1]));

    rp_identify_peer_free(peer);
    rp_identify_peer_free(NULL);
    free(m);
    node_fini(&nd);
    node_fini(&nd2);
    node_fini(&other);
}

Test(identify_push, js_identify_applies)
{
    kv_blob s = hexblob(JS_IDENTIFY_STREAM);
    rp_identify_msg *m = malloc(sizeof(*m));
    cr_assert_eq(read_stream(m, s.b, s.n, 0, NULL), 0);
    ringp2p_peer_id remote;
    cr_assert_eq(ringp2p_peer_id_parse(JS_PEER, strlen(JS_PEER), &remote, NULL), 0);
    rp_identify_peer *peer;
    cr_assert_eq(rp_identify_peer_new(&remote, &peer), 0);
    ringp2p_errinfo ei = { 0 };
    cr_assert_gt(rp_identify_peer_apply(peer, m, NULL, &ei), 0, "%s", ei.msg);
    cr_assert(rp_identify_peer_supports(peer, "/ipfs/id/push/1.0.0"));
    const rp_iov *l;
    bool cert;
    cr_assert_eq(rp_identify_peer_addrs(peer, &l, &cert), 1);
    cr_assert(cert);
    char text[128];
    cr_assert_gt(rp_maddr_to_text(l[0].base, l[0].len, text, sizeof(text), NULL), 0);
    cr_assert_str_eq(text, JS_LISTEN);
    rp_identify_peer_free(peer);
    free(m);
}

/* ---- observed addresses -----------------------------------------------------------------------
 */

typedef struct obs_env {
    rp_obsaddr o;
    addrs a;
    ringp2p_peer_id peers[8];
} obs_env;

static void obs_env_init(obs_env *e, const rp_obsaddr_config *cfg)
{
    rp_obsaddr_init(&e->o, cfg);
    e->a.used = 0;
    /* Distinct peer IDs: identity multihashes of distinct Ed25519 keys would do; sha256 IDs are
     * simpler. */
    for (int i = 0; i < 8; i++) {
        uint8_t mh[34] = { 0x12, 0x20 };
        mh[2] = (uint8_t)(i + 1);
        cr_assert_eq(ringp2p_peer_id_from_bytes(mh, sizeof(mh), &e->peers[i], NULL), 0);
    }
}

static int report(obs_env *e, int peer, const char *from, const char *local, const char *observed,
                  uint64_t now)
{
    size_t mark = e->a.used;
    rp_iov f = ma(&e->a, from), l = ma(&e->a, local), o = ma(&e->a, observed);
    ringp2p_errinfo ei = { 0 };
    int r = rp_obsaddr_record(&e->o, &e->peers[peer], f.base, f.len, l.base, l.len, o.base, o.len,
                              now, &ei);
    cr_assert_geq(r, 0, "%s", ei.msg);
    e->a.used = mark;
    return r;
}

static bool adopted(const obs_env *e, const char *text)
{
    uint8_t b[128];
    ssize_t n = rp_maddr_from_text(text, strlen(text), b, sizeof(b), NULL);
    for (size_t i = 0; i < rp_obsaddr_count(&e->o); i++)
        if (iov_is(rp_obsaddr_get(&e->o, i), b, (size_t)n)) return true;
    return false;
}

#define LOCAL_TCP "/ip4/192.168.1.2/tcp/4001"
#define PUBLIC    "/ip4/203.0.113.5/tcp/4001"
#define SEC       UINT64_C(1000000000)

Test(obsaddr, one_peer_is_not_enough)
{
    obs_env *e = malloc(sizeof(*e));
    obs_env_init(e, NULL);
    cr_assert_eq(report(e, 0, "/ip4/198.51.100.1/tcp/5000", LOCAL_TCP, PUBLIC, 1 * SEC), 0);
    cr_assert_eq(report(e, 0, "/ip4/198.51.100.1/tcp/5000", LOCAL_TCP, PUBLIC, 2 * SEC), 0);
    cr_assert_eq(report(e, 0, "/ip4/198.51.100.99/tcp/5000", LOCAL_TCP, PUBLIC, 3 * SEC), 0,
                 "the same peer from another IP is still one peer");
    cr_assert_eq(rp_obsaddr_count(&e->o), 0);
    cr_assert_eq(e->o.n_reports, 1, "a repeat replaces the peer's report");
    /* A second peer: adopted, and the caller is told. */
    cr_assert_eq(report(e, 1, "/ip4/198.51.100.2/tcp/5000", LOCAL_TCP, PUBLIC, 4 * SEC), 1);
    cr_assert_eq(rp_obsaddr_count(&e->o), 1);
    cr_assert(adopted(e, PUBLIC));
    /* A third agreeing peer changes nothing visible. */
    cr_assert_eq(report(e, 2, "/ip4/198.51.100.3/tcp/5000", LOCAL_TCP, PUBLIC, 5 * SEC), 0);
    free(e);
}

Test(obsaddr, one_ip_group_counts_once)
{
    obs_env *e = malloc(sizeof(*e));
    obs_env_init(e, NULL);
    /* Two peer IDs on one IPv4 address, then two in one IPv6 /56. */
    cr_assert_eq(report(e, 0, "/ip4/198.51.100.1/tcp/5000", LOCAL_TCP, PUBLIC, SEC), 0);
    cr_assert_eq(report(e, 1, "/ip4/198.51.100.1/tcp/6000", LOCAL_TCP, PUBLIC, SEC), 0);
    cr_assert_eq(report(e, 2, "/ip6/2001:db8:0:1::1/tcp/5000", LOCAL_TCP, PUBLIC, SEC), 1,
                 "a second IP group");
    obs_env_init(e, NULL);
    cr_assert_eq(report(e, 0, "/ip6/2001:db8:0:1::1/tcp/5000", LOCAL_TCP, PUBLIC, SEC), 0);
    cr_assert_eq(report(e, 1, "/ip6/2001:db8:0:ff::2/tcp/5000", LOCAL_TCP, PUBLIC, SEC), 0,
                 "same /56");
    cr_assert_eq(report(e, 2, "/ip6/2001:db8:0:100::2/tcp/5000", LOCAL_TCP, PUBLIC, SEC), 1,
                 "another /56");
    /* Counting by peer ID only: two peers on one IP suffice. */
    rp_obsaddr_config cfg = { .by_peer_only = true };
    obs_env_init(e, &cfg);
    cr_assert_eq(report(e, 0, "/ip4/127.0.0.1/tcp/5000", LOCAL_TCP, PUBLIC, SEC), 0);
    cr_assert_eq(report(e, 1, "/ip4/127.0.0.1/tcp/6000", LOCAL_TCP, PUBLIC, SEC), 1);
    /* An observer not on IP (a relayed connection) counts only by peer ID. */
    obs_env_init(e, NULL);
    cr_assert_eq(report(e, 0, "/dns4/relay.example/tcp/1/p2p-circuit", LOCAL_TCP, PUBLIC, SEC), 0);
    cr_assert_eq(e->o.n_reports, 0);
    free(e);
}

Test(obsaddr, reports_expire)
{
    obs_env *e = malloc(sizeof(*e));
    rp_obsaddr_config cfg = { .ttl_ns = 60 * SEC };
    obs_env_init(e, &cfg);
    cr_assert_eq(rp_obsaddr_next_expiry(&e->o), UINT64_MAX);
    cr_assert_eq(report(e, 0, "/ip4/198.51.100.1/tcp/5000", LOCAL_TCP, PUBLIC, 10 * SEC), 0);
    cr_assert_eq(report(e, 1, "/ip4/198.51.100.2/tcp/5000", LOCAL_TCP, PUBLIC, 20 * SEC), 1);
    cr_assert_eq(rp_obsaddr_next_expiry(&e->o), 70 * SEC);
    cr_assert_eq(rp_obsaddr_expire(&e->o, 69 * SEC), 0);
    cr_assert_eq(rp_obsaddr_count(&e->o), 1);
    cr_assert_eq(rp_obsaddr_expire(&e->o, 70 * SEC), 1, "the first report is gone");
    cr_assert_eq(rp_obsaddr_count(&e->o), 0);
    cr_assert_eq(rp_obsaddr_next_expiry(&e->o), 80 * SEC);
    /* A refresh from the first peer brings it back; a new report also expires the old ones. */
    cr_assert_eq(report(e, 0, "/ip4/198.51.100.1/tcp/5000", LOCAL_TCP, PUBLIC, 75 * SEC), 1);
    cr_assert_eq(
        report(e, 2, "/ip4/198.51.100.3/tcp/5000", LOCAL_TCP, "/ip4/203.0.113.6/tcp/1", 200 * SEC),
        1, "both reports of PUBLIC expired on the way");
    cr_assert_eq(rp_obsaddr_count(&e->o), 0);
    cr_assert_eq(e->o.n_reports, 1);
    free(e);
}

Test(obsaddr, forget_a_disconnected_peer)
{
    obs_env *e = malloc(sizeof(*e));
    obs_env_init(e, NULL);
    report(e, 0, "/ip4/198.51.100.1/tcp/5000", LOCAL_TCP, PUBLIC, SEC);
    cr_assert_eq(report(e, 1, "/ip4/198.51.100.2/tcp/5000", LOCAL_TCP, PUBLIC, SEC), 1);
    cr_assert_eq(rp_obsaddr_forget(&e->o, &e->peers[3]), 0);
    cr_assert_eq(rp_obsaddr_forget(&e->o, &e->peers[1]), 1);
    cr_assert_eq(rp_obsaddr_count(&e->o), 0);
    free(e);
}

Test(obsaddr, a_new_mapping_replaces_the_old_one)
{
    obs_env *e = malloc(sizeof(*e));
    obs_env_init(e, NULL);
    report(e, 0, "/ip4/198.51.100.1/tcp/5000", LOCAL_TCP, PUBLIC, SEC);
    cr_assert_eq(report(e, 1, "/ip4/198.51.100.2/tcp/5000", LOCAL_TCP, PUBLIC, SEC), 1);
    /* Peer 1 now sees another port: PUBLIC is down to one observer. */
    cr_assert_eq(
        report(e, 1, "/ip4/198.51.100.2/tcp/5000", LOCAL_TCP, "/ip4/203.0.113.5/tcp/4444", 2 * SEC),
        1);
    cr_assert_eq(rp_obsaddr_count(&e->o), 0);
    free(e);
}

static const struct ignored {
    const char *what, *local, *observed;
} ignored[] = {
    { "loopback", LOCAL_TCP, "/ip4/127.0.0.1/tcp/4001" },
    { "ip6 loopback", "/ip6/2001:db8::2/tcp/4001", "/ip6/::1/tcp/4001" },
    { "unspecified", LOCAL_TCP, "/ip4/0.0.0.0/tcp/4001" },
    { "nat64", "/ip6/2001:db8::2/tcp/4001", "/ip6/64:ff9b::cb00:7105/tcp/4001" },
    { "relayed", LOCAL_TCP, "/ip4/203.0.113.5/tcp/4001/p2p-circuit" },
    { "other transport", LOCAL_TCP, "/ip4/203.0.113.5/udp/4001/quic-v1" },
    { "other family", LOCAL_TCP, "/ip6/2001:db8::5/tcp/4001" },
    { "dns", LOCAL_TCP, "/dns4/example.com/tcp/4001" },
    { "local not thin waist", "/dns4/me.example/tcp/4001", PUBLIC },
    { "bare ip", LOCAL_TCP, "/ip4/203.0.113.5" },
};

Test(obsaddr, useless_observations_are_ignored)
{
    obs_env *e = malloc(sizeof(*e));
    for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++) {
        obs_env_init(e, NULL);
        for (int p = 0; p < 3; p++) {
            char from[64];
            snprintf(from, sizeof(from), "/ip4/198.51.100.%d/tcp/5000", p + 1);
            cr_assert_eq(report(e, p, from, ignored[i].local, ignored[i].observed, SEC), 0, "%s",
                         ignored[i].what);
        }
        cr_assert_eq(e->o.n_reports, 0, "%s", ignored[i].what);
    }
    free(e);
}

Test(obsaddr, adopted_address_keeps_the_listen_address_tail)
{
    obs_env *e = malloc(sizeof(*e));
    obs_env_init(e, NULL);
    const char *local = "/ip4/10.0.0.2/udp/4001/quic-v1";
    report(e, 0, "/ip4/198.51.100.1/udp/5000/quic-v1", local, "/ip4/203.0.113.5/udp/61000", SEC);
    cr_assert_eq(report(e, 1, "/ip4/198.51.100.2/udp/5000/quic-v1", local,
                        "/ip4/203.0.113.5/udp/61000/quic-v1", SEC),
                 1, "the observed tail does not matter");
    cr_assert(adopted(e, "/ip4/203.0.113.5/udp/61000/quic-v1"));
    free(e);
}

Test(obsaddr, at_most_three_per_listen_address)
{
    obs_env *e = malloc(sizeof(*e));
    rp_obsaddr_config cfg = { .by_peer_only = true };
    obs_env_init(e, &cfg);
    /* Four candidates on one listen address, with 4, 3, 2 and 2 observers... */
    static const int votes[] = { 4, 3, 2, 2 };
    int peer = 0;
    static const char local[] = "/ip4/10.0.0.1/tcp/4001";
    for (int c = 0; c < 4; c++)
        for (int v = 0; v < votes[c]; v++, peer++) {
            char obs[64];
            snprintf(obs, sizeof(obs), "/ip4/203.0.113.%d/tcp/4001", c + 1);
            ringp2p_peer_id id; /* more peers than obs_env has */
            uint8_t mh[34] = { 0x12, 0x20, (uint8_t)(100 + peer) };
            cr_assert_eq(ringp2p_peer_id_from_bytes(mh, sizeof(mh), &id, NULL), 0);
            uint8_t f[16], l[16], o[16];
            ssize_t fn = rp_maddr_from_text("/ip4/198.51.100.1/tcp/1", 23, f, sizeof(f), NULL);
            ssize_t ln = rp_maddr_from_text(local, strlen(local), l, sizeof(l), NULL);
            ssize_t on = rp_maddr_from_text(obs, strlen(obs), o, sizeof(o), NULL);
            cr_assert_geq(rp_obsaddr_record(&e->o, &id, f, (size_t)fn, l, (size_t)ln, o, (size_t)on,
                                            SEC, NULL),
                          0);
        }
    /* ...keep the three best; the tie for third goes to the smaller address. */
    cr_assert_eq(rp_obsaddr_count(&e->o), 3);
    cr_assert(adopted(e, "/ip4/203.0.113.1/tcp/4001"));
    cr_assert(adopted(e, "/ip4/203.0.113.2/tcp/4001"));
    cr_assert(adopted(e, "/ip4/203.0.113.3/tcp/4001"));
    cr_assert(!adopted(e, "/ip4/203.0.113.4/tcp/4001"));
    /* Sorted by bytes. */
    for (size_t i = 1; i < rp_obsaddr_count(&e->o); i++) {
        rp_iov a = rp_obsaddr_get(&e->o, i - 1), b = rp_obsaddr_get(&e->o, i);
        cr_assert_lt(memcmp(a.base, b.base, a.len < b.len ? a.len : b.len), 0);
    }
    cr_assert_null(rp_obsaddr_get(&e->o, 3).base);
    free(e);
}

Test(obsaddr, full_table_drops_the_oldest)
{
    obs_env *e = malloc(sizeof(*e));
    rp_obsaddr_config cfg = { .by_peer_only = true };
    obs_env_init(e, &cfg);
    uint8_t f[16], l[16], o[16];
    ssize_t fn = rp_maddr_from_text("/ip4/198.51.100.1/tcp/1", 23, f, sizeof(f), NULL);
    ssize_t ln = rp_maddr_from_text(LOCAL_TCP, strlen(LOCAL_TCP), l, sizeof(l), NULL);
    for (int i = 0; i < RP_OBSADDR_REPORTS_MAX + 1; i++) {
        ringp2p_peer_id id;
        uint8_t mh[34] = { 0x12, 0x20, (uint8_t)i, (uint8_t)(i >> 8) };
        cr_assert_eq(ringp2p_peer_id_from_bytes(mh, sizeof(mh), &id, NULL), 0);
        char obs[64];
        snprintf(obs, sizeof(obs), "/ip4/203.0.113.%d/tcp/4001", i % 200 + 1);
        ssize_t on = rp_maddr_from_text(obs, strlen(obs), o, sizeof(o), NULL);
        cr_assert_geq(rp_obsaddr_record(&e->o, &id, f, (size_t)fn, l, (size_t)ln, o, (size_t)on,
                                        (uint64_t)(i + 1) * SEC, NULL),
                      0);
    }
    cr_assert_eq(e->o.n_reports, RP_OBSADDR_REPORTS_MAX);
    for (size_t i = 0; i < e->o.n_reports; i++)
        cr_assert_neq(e->o.reports[i].at_ns, 1 * SEC, "the oldest report went");
    free(e);
}

Test(obsaddr, invalid_arguments)
{
    obs_env *e = malloc(sizeof(*e));
    obs_env_init(e, NULL);
    uint8_t good[16], longaddr[128];
    ssize_t gn = rp_maddr_from_text(PUBLIC, strlen(PUBLIC), good, sizeof(good), NULL);
    const char *lt =
        "/ip4/10.0.0.1/tcp/1/tls/sni/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/ws";
    ssize_t ln = rp_maddr_from_text(lt, strlen(lt), longaddr, sizeof(longaddr), NULL);
    cr_assert_gt(ln, RP_OBSADDR_ADDR_MAX);
    ringp2p_errinfo ei = { 0 };
    cr_assert_eq(rp_obsaddr_record(&e->o, &e->peers[0], good, (size_t)gn, longaddr, (size_t)ln,
                                   good, (size_t)gn, SEC, &ei),
                 RINGP2P_ELIMIT);
    cr_assert_lt(rp_obsaddr_record(&e->o, &e->peers[0], good, (size_t)gn, good, (size_t)gn,
                                   (const uint8_t *)"\x04\x01", 2, SEC, &ei),
                 0);
    cr_assert_lt(rp_obsaddr_record(&e->o, &e->peers[0], (const uint8_t *)"\x06", 1, good,
                                   (size_t)gn, good, (size_t)gn, SEC, &ei),
                 0);
    free(e);
}

/* ---- two endpoints in memory ------------------------------------------------------------------
 */

Test(identify_push, two_peers_in_memory_adopt_an_observed_address)
{
    /*
     * A (behind a NAT, listening on 10.0.0.2:4001) dials B and C. Each
     * answers identify with the address it saw A at; A adopts it once both
     * did and would then push to them, and they apply the push.
     */
    node b, c, a;
    static const char *const a_listen[] = { "/ip4/10.0.0.2/tcp/4001" };
    static const char *const b_listen[] = { "/ip4/198.51.100.20/tcp/4001" };
    static const char *const c_listen[] = { "/ip4/192.0.2.30/tcp/4001" };
    node_init(&a, GO_2_PRIV, a_listen, 1, three_protocols, 3, 1000);
    node_init(&b, JS_ED_VERIFY_PRIVATEKEY, b_listen, 1, three_protocols, 2, 2000);
    node_init(&c, GO_0_PRIV, c_listen, 1, three_protocols, 1, 3000);
    addrs x = { .used = 0 };
    rp_iov seen = ma(&x, "/ip4/203.0.113.77/tcp/4001");
    rp_obsaddr *obs = malloc(sizeof(*obs));
    rp_obsaddr_init(obs, NULL);
    rp_identify_msg *m = malloc(sizeof(*m));
    static uint8_t wire[BUF_MAX];
    ringp2p_errinfo ei = { 0 };
    node *responders[2] = { &b, &c };
    for (int i = 0; i < 2; i++) {
        node *r = responders[i];
        ssize_t n = rp_identify_write(&r->info, seen.base, seen.len, wire, sizeof(wire), &ei);
        cr_assert_gt(n, 0, "%s", ei.msg);
        cr_assert_eq(read_stream(m, wire, (size_t)n, 13, &ei), 0, "%s", ei.msg);
        ringp2p_peer_id rid = peer_of(r->key);
        rp_identify_peer *peer;
        cr_assert_eq(rp_identify_peer_new(&rid, &peer), 0);
        cr_assert_gt(rp_identify_peer_apply(peer, m, NULL, &ei), 0, "%s", ei.msg);
        int changed = rp_obsaddr_record(obs, &rid, r->listen[0].base, r->listen[0].len,
                                        a.listen[0].base, a.listen[0].len, m->observed_addr.base,
                                        m->observed_addr.len, (uint64_t)(i + 1) * SEC, &ei);
        cr_assert_eq(changed, i == 1, "adopted after the second peer only");
        rp_identify_peer_free(peer);
    }
    cr_assert_eq(rp_obsaddr_count(obs), 1);
    cr_assert(iov_same(rp_obsaddr_get(obs, 0), seen));

    /* A re-signs its record with the adopted address and pushes it; B applies it. */
    rp_iov now_listen[2] = { a.listen[0], rp_obsaddr_get(obs, 0) };
    uint8_t rec[RP_ENVELOPE_MAX];
    ssize_t rn = rp_peer_record_seal(a.key, rp_peer_record_next_seq(0, 1000), now_listen, 2, rec,
                                     sizeof(rec), &ei);
    cr_assert_gt(rn, 0);
    a.info.listen_addrs = now_listen;
    a.info.n_listen_addrs = 2;
    a.info.signed_peer_record = rec;
    a.info.signed_peer_record_len = (size_t)rn;
    ringp2p_peer_id aid = peer_of(a.key);
    rp_identify_peer *at_b;
    cr_assert_eq(rp_identify_peer_new(&aid, &at_b), 0);
    ssize_t n = rp_identify_write(&a.info, NULL, 0, wire, sizeof(wire), &ei);
    cr_assert_eq(read_stream(m, wire, (size_t)n, 0, &ei), 0);
    int r = rp_identify_peer_apply(at_b, m, NULL, &ei);
    cr_assert(r & RP_IDENTIFY_CHANGED_RECORD, "%d %s", r, ei.msg);
    const rp_iov *l;
    bool cert;
    cr_assert_eq(rp_identify_peer_addrs(at_b, &l, &cert), 2);
    cr_assert(cert);
    cr_assert(iov_same(l[1], seen));
    rp_identify_peer_free(at_b);
    free(m);
    free(obs);
    node_fini(&a);
    node_fini(&b);
    node_fini(&c);
}
