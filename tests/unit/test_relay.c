/*
 * Circuit relay v2: the codec (byte-exact against hand-built bytes and against
 * js-libp2p's own protobuf code), vouchers, the relay's answers to every
 * request it can get, the client and stop-side checks, and the meter.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "addrutil.h"
#include "key_vectors.h"
#include "multiformats/multiaddr.h"
#include "proto/circuit.pb-c.h"
#include "protocols/peer_record.h"
#include "protocols/relay.h"

/*
 * Made by js-libp2p's own code (@libp2p/circuit-relay-v2 4.2.13: dist/src/pb
 * HopMessage/StopMessage.encode, server/reservation-voucher.js
 * ReservationVoucherRecord sealed with @libp2p/peer-record RecordEnvelope.seal,
 * exactly as its relay's makeReservation does; Node 22, the packages in
 * tests/interop) by a throwaway script, with the relay key
 * SPEC_ED25519_PRIVATE_KEY, the reserving peer's key JS_ED_VERIFY_PRIVATEKEY,
 * expiry 1700003600 and the relay address /ip4/1.2.3.4/tcp/4001/p2p/RELAY:
 *   JS_VOUCHER          RecordEnvelope.seal(voucher, relayKey).marshal()
 *   JS_HOP_RESERVE_OK   HopMessage {STATUS, OK, reservation {expire, [addr],
 *                       voucher}, limit {120, 131072n}}
 *   JS_HOP_CONNECT      HopMessage {CONNECT, peer {id: PEER, addrs: []}}
 *   JS_STOP_CONNECT     StopMessage {CONNECT, peer {id: RELAY}, limit {120, 131072n}}
 * and HopMessage {RESERVE} = 0800, StopMessage {STATUS, OK} = 08012064,
 * HopMessage {STATUS, RESERVATION_REFUSED} = 080228c801.
 */
#define JS_RELAY  "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq"
#define JS_PEER   "12D3KooWLqLxEfJ9nDdEe8Kh8PFvNPQRYDQBwyL7CMM7HhVd5LsX"
#define JS_EXPIRE UINT64_C(1700003600)
static const char JS_VOUCHER[] =
    "0a24080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e120203021a56"
    "0a260024080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e12260024"
    "08011220a3b0c32ffed03105c066203f3acaab9992a419d4195b921a75a59406cf5ad97e1890fecfaa062a40"
    "fb04fe0fd7f7b516cc29d1c267cb510dadb4088d5120e4df96014b638ab2a6d7c476eb4ddf900174ed52959f"
    "35268ee4d40428ad935106c9fb149461bb634901";
static const char JS_HOP_RESERVE_OK[] =
    "08021a80020890fecfaa0612310401020304060fa1a503260024080112201ed1e8fae2c4a144b8be8fd4b47b"
    "f3d3b34b871c3cacf6010f0e42d474fce27e1ac4010a24080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b3"
    "4b871c3cacf6010f0e42d474fce27e120203021a560a260024080112201ed1e8fae2c4a144b8be8fd4b47bf3"
    "d3b34b871c3cacf6010f0e42d474fce27e1226002408011220a3b0c32ffed03105c066203f3acaab9992a419"
    "d4195b921a75a59406cf5ad97e1890fecfaa062a40fb04fe0fd7f7b516cc29d1c267cb510dadb4088d5120e4"
    "df96014b638ab2a6d7c476eb4ddf900174ed52959f35268ee4d40428ad935106c9fb149461bb634901220608"
    "78108080082864";
static const char JS_HOP_CONNECT[] =
    "080112280a26002408011220a3b0c32ffed03105c066203f3acaab9992a419d4195b921a75a59406cf5ad97e";
static const char JS_STOP_CONNECT[] =
    "080012280a260024080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
    "1a06087810808008";

#define NOW UINT64_C(1700000000)

/* ---- helpers ------------------------------------------------------------------------------- */

static ringp2p_peer_id peer_of(const ringp2p_privkey *key)
{
    ringp2p_peer_id id;
    ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(key), &id);
    return id;
}

/* A sha2-256 peer ID numbered i (valid, no key needed). */
static ringp2p_peer_id fake_peer(unsigned i)
{
    uint8_t mh[34] = { 0x12, 0x20 };
    memcpy(mh + 2, &i, sizeof(i));
    mh[33] = 0x5a;
    ringp2p_peer_id id;
    cr_assert_eq(ringp2p_peer_id_from_bytes(mh, sizeof(mh), &id, NULL), 0);
    return id;
}

static void assert_hex(const uint8_t *got, size_t n, const char *hex)
{
    kv_blob want = hexblob(hex);
    cr_assert_eq(n, want.n, "length %zu, want %zu", n, want.n);
    cr_assert(memcmp(got, want.b, n) == 0, "bytes differ from %s", hex);
}

/* The bytes of a framed message: varint length then body. */
static size_t frame(const kv_blob *body, uint8_t *out)
{
    size_t n = 0;
    uint64_t v = body->n;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    memcpy(out + n, body->b, body->n);
    return n + body->n;
}

/* One relay, the peers around it, and the relay's own addresses. */
typedef struct fixture {
    ringp2p_privkey *relay_key, *peer_key;
    ringp2p_peer_id relay, peer, other;
    rp_relay_config cfg;
    rp_relay *r;
    arena a;
    rp_iov self[4];
    size_t n_self;
    rp_iov conn_addr; /* where peers connect from */
} fixture;

static void fx_init(fixture *f, void (*tweak)(rp_relay_config *))
{
    memset(f, 0, sizeof(*f));
    f->relay_key = load_key(SPEC_ED25519_PRIVATE_KEY);
    f->peer_key = load_key(JS_ED_VERIFY_PRIVATEKEY);
    f->relay = peer_of(f->relay_key);
    f->peer = peer_of(f->peer_key);
    f->other = fake_peer(999);
    rp_relay_config_default(&f->cfg);
    if (tweak != NULL) tweak(&f->cfg);
    cr_assert_eq(rp_relay_new(&f->cfg, f->relay_key, &f->r), 0);
    f->self[f->n_self++] = ma(&f->a, "/ip4/1.2.3.4/tcp/4001");
    f->conn_addr = ma(&f->a, "/ip4/10.0.0.7/tcp/5555");
}

static void fx_fini(fixture *f)
{
    rp_relay_free(f->r);
    ringp2p_privkey_free(f->relay_key);
    ringp2p_privkey_free(f->peer_key);
}

typedef struct answer {
    rp_relay_hop_result res;
    uint8_t out[RP_RELAY_FRAME_MAX];
    rp_relay_hop_msg msg;   /* the reply decoded, for REPLY */
    rp_relay_stop_msg stop; /* the stop request decoded, for STOP */
    ringp2p_errinfo ei;
} answer;

/* Feeds a whole request from `peer` at `addr`; asserts an answer and decodes it. */
static void hop_at(fixture *f, answer *an, const ringp2p_peer_id *peer, rp_iov addr,
                   const uint8_t *req, size_t n, uint64_t now)
{
    memset(an, 0, sizeof(*an));
    const uint8_t *p = req;
    int r = rp_relay_hop_request(f->r, peer, addr.base, addr.len, f->self, f->n_self, now, &p,
                                 req + n, an->out, sizeof(an->out), &an->res, &an->ei);
    cr_assert_eq(r, 1, "hop_request: %d %s", r, an->ei.msg);
    cr_assert_leq(an->res.len, sizeof(an->out));
    const uint8_t *q = an->out;
    if (an->res.action == RP_RELAY_ACT_REPLY) {
        cr_assert_eq(rp_relay_hop_read(&q, an->out + an->res.len, &an->msg, NULL), 1);
        cr_assert(an->msg.has_type && an->msg.type == RP_RELAY_HOP_STATUS);
        cr_assert(an->msg.has_status);
        cr_assert_eq(an->msg.status, an->res.status);
    } else {
        cr_assert_eq(an->res.action, RP_RELAY_ACT_STOP);
        cr_assert_eq(rp_relay_stop_read(&q, an->out + an->res.len, &an->stop, NULL), 1);
    }
    cr_assert_eq(q, an->out + an->res.len);
}

static void hop(fixture *f, answer *an, const ringp2p_peer_id *peer, const uint8_t *req, size_t n,
                uint64_t now)
{
    hop_at(f, an, peer, f->conn_addr, req, n, now);
}

static void reserve(fixture *f, answer *an, const ringp2p_peer_id *peer, rp_iov addr, uint64_t now)
{
    uint8_t req[16];
    ssize_t n = rp_relay_reserve_write(req, sizeof(req));
    cr_assert_eq(n, 3);
    hop_at(f, an, peer, addr, req, (size_t)n, now);
}

static void connect_to(fixture *f, answer *an, const ringp2p_peer_id *src,
                       const ringp2p_peer_id *dst, uint64_t now)
{
    uint8_t req[128];
    ssize_t n = rp_relay_connect_write(dst, req, sizeof(req));
    cr_assert_gt(n, 0);
    hop(f, an, src, req, (size_t)n, now);
}

/* ---- codec --------------------------------------------------------------------------------- */

Test(relay, js_vectors_decode_and_reencode)
{
    const char *hop_vectors[] = { JS_HOP_RESERVE_OK, JS_HOP_CONNECT, "0800", "080228c801" };
    for (size_t i = 0; i < sizeof(hop_vectors) / sizeof(*hop_vectors); i++) {
        kv_blob b = hexblob(hop_vectors[i]);
        rp_relay_hop_msg m;
        const uint8_t *p = b.b;
        ringp2p_errinfo ei = { 0 };
        cr_assert_eq(rp_relay_hop_decode(&p, b.b + b.n, &m, &ei), 0, "%s", ei.msg);
        cr_assert_eq(p, b.b + b.n);
        uint8_t out[RP_RELAY_FRAME_MAX];
        ssize_t n = rp_relay_hop_encode(&m, out, sizeof(out));
        cr_assert_gt(n, 0);
        assert_hex(out, (size_t)n, hop_vectors[i]);
        cr_assert_eq(rp_relay_hop_encode(&m, NULL, 0), n);
        cr_assert_eq(rp_relay_hop_encode(&m, out, (size_t)n - 1), RINGP2P_ENOBUF);
    }
    const char *stop_vectors[] = { JS_STOP_CONNECT, "08012064" };
    for (size_t i = 0; i < 2; i++) {
        kv_blob b = hexblob(stop_vectors[i]);
        rp_relay_stop_msg m;
        const uint8_t *p = b.b;
        cr_assert_eq(rp_relay_stop_decode(&p, b.b + b.n, &m, NULL), 0);
        uint8_t out[256];
        ssize_t n = rp_relay_stop_encode(&m, out, sizeof(out));
        assert_hex(out, (size_t)n, stop_vectors[i]);
    }

    /* The fields of js's reservation answer. */
    kv_blob b = hexblob(JS_HOP_RESERVE_OK);
    rp_relay_hop_msg m;
    const uint8_t *p = b.b;
    cr_assert_eq(rp_relay_hop_decode(&p, b.b + b.n, &m, NULL), 0);
    cr_assert(m.has_type && m.type == RP_RELAY_HOP_STATUS);
    cr_assert(m.has_status && m.status == RP_RELAY_OK);
    cr_assert(m.has_reservation && !m.has_peer);
    cr_assert_eq(m.reservation.expire, JS_EXPIRE);
    cr_assert_eq(m.reservation.n_addrs, 1);
    cr_assert(m.has_limit && m.limit.duration == 120 && m.limit.data == 131072);
    kv_blob v = hexblob(JS_VOUCHER);
    cr_assert(iov_is(m.reservation.voucher, v.b, v.n));
}

Test(relay, encodings_from_field_numbers)
{
    ringp2p_peer_id id = fake_peer(1);
    uint8_t out[256];

    /* HopMessage {type CONNECT, peer {id, addrs [/ip4/1.2.3.4/tcp/80]}}:
       08 01 | 12 L (0a 22 <id> 12 08 <addr>) */
    arena a = { .used = 0 };
    rp_iov addr = ma(&a, "/ip4/1.2.3.4/tcp/80");
    rp_relay_hop_msg m;
    memset(&m, 0, sizeof(m));
    m.has_type = m.has_peer = true;
    m.type = RP_RELAY_HOP_CONNECT;
    m.peer.id = rp_iov_make(id.bytes, id.len);
    m.peer.addrs[0] = addr;
    m.peer.n_addrs = 1;
    uint8_t want[128] = { 0x08, 0x01, 0x12, 2 + 34 + 2 + 8, 0x0a, 34 };
    size_t w = 6;
    memcpy(want + w, id.bytes, 34);
    w += 34;
    want[w++] = 0x12;
    want[w++] = 8;
    const uint8_t a8[] = { 0x04, 1, 2, 3, 4, 0x06, 0x00, 0x50 };
    memcpy(want + w, a8, 8);
    w += 8;
    ssize_t n = rp_relay_hop_encode(&m, out, sizeof(out));
    cr_assert_eq((size_t)n, w);
    cr_assert(memcmp(out, want, w) == 0);

    /* Limit {duration 120, data 131072} as field 4: 22 06 08 78 10 80 80 08. */
    memset(&m, 0, sizeof(m));
    m.has_limit = true;
    m.limit.duration = 120;
    m.limit.data = 131072;
    n = rp_relay_hop_encode(&m, out, sizeof(out));
    assert_hex(out, (size_t)n, "22 06 08 78 10 80 80 08");
    /* A zero limit still writes both fields (go). */
    m.limit.duration = 0;
    m.limit.data = 0;
    n = rp_relay_hop_encode(&m, out, sizeof(out));
    assert_hex(out, (size_t)n, "22 04 08 00 10 00");

    /* Reservation {expire 1, voucher ""}: 1a 04 08 01 1a 00; expire 0 is written (go). */
    memset(&m, 0, sizeof(m));
    m.has_reservation = true;
    m.reservation.expire = 1;
    m.reservation.voucher = rp_iov_make("", 0);
    n = rp_relay_hop_encode(&m, out, sizeof(out));
    assert_hex(out, (size_t)n, "1a 04 08 01 1a 00");
    m.reservation.expire = 0;
    m.reservation.voucher.base = NULL;
    n = rp_relay_hop_encode(&m, out, sizeof(out));
    assert_hex(out, (size_t)n, "1a 02 08 00");

    /* A negative status is sign-extended to ten bytes, as protobuf writes int32. */
    memset(&m, 0, sizeof(m));
    m.has_status = true;
    m.status = -1;
    n = rp_relay_hop_encode(&m, out, sizeof(out));
    assert_hex(out, (size_t)n, "28 ff ff ff ff ff ff ff ff ff 01");
    const uint8_t *p = out;
    rp_relay_hop_msg back;
    cr_assert_eq(rp_relay_hop_decode(&p, out + n, &back, NULL), 0);
    cr_assert_eq(back.status, -1);

    /* Status-only answers, framed. */
    n = rp_relay_hop_status_write(RP_RELAY_NO_RESERVATION, out, sizeof(out));
    assert_hex(out, (size_t)n, "05 08 02 28 cc 01");
    n = rp_relay_stop_status_write(RP_RELAY_OK, out, sizeof(out));
    assert_hex(out, (size_t)n, "04 08 01 20 64");
    cr_assert_eq(rp_relay_stop_status_write(RP_RELAY_OK, out, 4), RINGP2P_ENOBUF);

    /* Requests, framed: RESERVE = 02 08 00; CONNECT = js's bytes. */
    n = rp_relay_reserve_write(out, sizeof(out));
    assert_hex(out, (size_t)n, "02 08 00");
    ringp2p_peer_id js_peer = pid(JS_PEER);
    n = rp_relay_connect_write(&js_peer, out, sizeof(out));
    cr_assert_eq(out[0], 44);
    assert_hex(out + 1, (size_t)n - 1, JS_HOP_CONNECT);

    /* StopMessage {CONNECT, peer {id RELAY}, limit}: js's bytes. */
    ringp2p_peer_id js_relay = pid(JS_RELAY);
    rp_relay_stop_msg s;
    memset(&s, 0, sizeof(s));
    s.has_type = s.has_peer = s.has_limit = true;
    s.type = RP_RELAY_STOP_CONNECT;
    s.peer.id = rp_iov_make(js_relay.bytes, js_relay.len);
    s.limit.duration = 120;
    s.limit.data = 131072;
    n = rp_relay_stop_encode(&s, out, sizeof(out));
    assert_hex(out, (size_t)n, JS_STOP_CONNECT);
}

/* Our encoding read by protobuf-c field for field. */
Test(relay, protobuf_c_reads_our_encoding)
{
    kv_blob b = hexblob(JS_HOP_RESERVE_OK);
    Rp__HopMessage *pb = rp__hop_message__unpack(NULL, b.n, b.b);
    cr_assert_not_null(pb);
    cr_assert(pb->has_type && pb->type == RP_RELAY_HOP_STATUS);
    cr_assert(pb->has_status && pb->status == RP_RELAY_OK);
    cr_assert_not_null(pb->reservation);
    cr_assert_eq(pb->reservation->expire, JS_EXPIRE);
    cr_assert_eq(pb->reservation->n_addrs, 1);
    cr_assert_eq(pb->limit->duration, 120);
    cr_assert_eq(pb->limit->data, 131072);
    rp__hop_message__free_unpacked(pb, NULL);

    /* And protobuf-c's encoding of a stop message is ours. */
    Rp__StopMessage sm = RP__STOP_MESSAGE__INIT;
    Rp__CircuitLimit lim = RP__CIRCUIT_LIMIT__INIT;
    Rp__CircuitPeer pe = RP__CIRCUIT_PEER__INIT;
    ringp2p_peer_id id = fake_peer(7);
    sm.has_type = 1;
    sm.type = RP_RELAY_STOP_CONNECT;
    pe.has_id = 1;
    pe.id.data = id.bytes;
    pe.id.len = id.len;
    sm.peer = &pe;
    lim.has_duration = lim.has_data = 1;
    lim.duration = 5;
    lim.data = 77;
    sm.limit = &lim;
    uint8_t ref[256], ours[256];
    size_t rn = rp__stop_message__pack(&sm, ref);
    rp_relay_stop_msg s;
    memset(&s, 0, sizeof(s));
    s.has_type = s.has_peer = s.has_limit = true;
    s.type = RP_RELAY_STOP_CONNECT;
    s.peer.id = rp_iov_make(id.bytes, id.len);
    s.limit.duration = 5;
    s.limit.data = 77;
    ssize_t n = rp_relay_stop_encode(&s, ours, sizeof(ours));
    cr_assert_eq((size_t)n, rn);
    cr_assert(memcmp(ref, ours, rn) == 0);
}

Test(relay, decoding_rules)
{
    struct {
        const char *hex;
        int err;
    } bad[] = {
        { "08", RINGP2P_EPROTOBUF },                /* truncated varint */
        { "0a 00", RINGP2P_EPROTOBUF },             /* type as bytes */
        { "08 00 08 01", RINGP2P_EPROTOBUF },       /* type twice */
        { "28 64 28 64", RINGP2P_EPROTOBUF },       /* status twice */
        { "12 00 12 00", RINGP2P_EPROTOBUF },       /* peer twice */
        { "22 00 22 00", RINGP2P_EPROTOBUF },       /* limit twice */
        { "1a 00 1a 00", RINGP2P_EPROTOBUF },       /* reservation twice */
        { "12 04 0a 00 0a 00", RINGP2P_EPROTOBUF }, /* Peer.id twice */
        { "12 02 10 01", RINGP2P_EPROTOBUF },       /* Peer.addrs as varint */
        { "1a 04 08 01 08 02", RINGP2P_EPROTOBUF }, /* expire twice */
        { "1a 04 1a 00 1a 00", RINGP2P_EPROTOBUF }, /* voucher twice */
        { "22 04 08 01 08 01", RINGP2P_EPROTOBUF }, /* duration twice */
        { "22 02 12 00", RINGP2P_EPROTOBUF },       /* data as bytes */
        { "12 05 0a 09 00", RINGP2P_EPROTOBUF },    /* inner length past its end */
        { "0b", RINGP2P_EPROTOBUF },                /* group */
        { "00 00", RINGP2P_EPROTOBUF },             /* field 0 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        kv_blob b = hexblob(bad[i].hex);
        rp_relay_hop_msg m;
        ringp2p_errinfo ei = { 0 };
        const uint8_t *p = b.b;
        int r = rp_relay_hop_decode(&p, b.b + b.n, &m, &ei);
        cr_assert_eq(r, bad[i].err, "%s: %d", bad[i].hex, r);
        cr_assert_eq(ei.code, r);
        cr_assert_eq(p, b.b, "cursor moved on error");
    }

    /* Unknown fields are skipped; an unknown type value is kept; int32 truncates. */
    kv_blob ok = hexblob("08 07 30 05 3a 01 ff 45 00 00 00 00 28 e4 80 80 80 10");
    rp_relay_hop_msg m;
    const uint8_t *p = ok.b;
    cr_assert_eq(rp_relay_hop_decode(&p, ok.b + ok.n, &m, NULL), 0);
    cr_assert_eq(m.type, 7);
    cr_assert_eq(m.status, 100, "0x100000064 reads as 100"); /* low 32 bits, as protobuf */

    /* A Limit.duration above 2^32 keeps its low 32 bits (uint32). */
    kv_blob lim = hexblob("1a 08 08 85 80 80 80 10 10 01");
    rp_relay_stop_msg s;
    p = lim.b;
    cr_assert_eq(rp_relay_stop_decode(&p, lim.b + lim.n, &s, NULL), 0);
    cr_assert(s.has_limit && s.limit.duration == 5 && s.limit.data == 1);

    /* Field 3 is a reservation in a HopMessage and a limit in a StopMessage. */
    kv_blob three = hexblob("1a 02 08 09");
    p = three.b;
    cr_assert_eq(rp_relay_hop_decode(&p, three.b + three.n, &m, NULL), 0);
    cr_assert(m.has_reservation && m.reservation.expire == 9 && !m.has_limit);
    p = three.b;
    cr_assert_eq(rp_relay_stop_decode(&p, three.b + three.n, &s, NULL), 0);
    cr_assert(s.has_limit && s.limit.duration == 9);
    /* Field 5 is unknown in a StopMessage. */
    kv_blob five = hexblob("28 64");
    p = five.b;
    cr_assert_eq(rp_relay_stop_decode(&p, five.b + five.n, &s, NULL), 0);
    cr_assert(!s.has_status);

    /* Addresses past RP_RELAY_ADDRS_MAX are counted, not kept. */
    uint8_t many[2 + 2 * (RP_RELAY_ADDRS_MAX + 3)];
    size_t k = 0;
    many[k++] = 0x12;
    many[k++] = 2 * (RP_RELAY_ADDRS_MAX + 3);
    for (int i = 0; i < RP_RELAY_ADDRS_MAX + 3; i++) {
        many[k++] = 0x12;
        many[k++] = 0;
    }
    p = many;
    cr_assert_eq(rp_relay_hop_decode(&p, many + k, &m, NULL), 0);
    cr_assert_eq(m.peer.n_addrs, RP_RELAY_ADDRS_MAX);
    cr_assert_eq(m.peer.n_addrs_dropped, 3);

    /* Over RP_RELAY_MSG_MAX: refused, even if well formed. */
    static uint8_t big[RP_RELAY_MSG_MAX + 8];
    big[0] = 0x3a; /* unknown field 7, bytes */
    big[1] = 0x80 | ((RP_RELAY_MSG_MAX + 3) & 0x7f);
    big[2] = (RP_RELAY_MSG_MAX + 3) >> 7;
    p = big;
    cr_assert_eq(rp_relay_hop_decode(&p, big + RP_RELAY_MSG_MAX + 6, &m, NULL), RINGP2P_ELIMIT);
    cr_assert_eq(rp_relay_hop_decode(&p, big + RP_RELAY_MSG_MAX, &m, NULL), RINGP2P_EPROTOBUF);
}

Test(relay, framing)
{
    uint8_t buf[RP_RELAY_MSG_MAX + 16];
    rp_iov body;
    ringp2p_errinfo ei = { 0 };
    /* Partial prefix, partial body: 0 and nothing consumed. */
    kv_blob msg = hexblob("04 08 01 20 64 ff");
    for (size_t cut = 0; cut < 5; cut++) {
        const uint8_t *p = msg.b;
        cr_assert_eq(rp_relay_read_frame(&p, msg.b + cut, &body, NULL), 0);
        cr_assert_eq(p, msg.b);
    }
    const uint8_t *p = msg.b;
    cr_assert_eq(rp_relay_read_frame(&p, msg.b + msg.n, &body, NULL), 1);
    cr_assert_eq(p, msg.b + 5, "the byte after the message is left");
    cr_assert_eq(body.len, 4);

    /* A non-minimal prefix (go-varint refuses it) and an over-long one. */
    kv_blob pad = hexblob("84 00 08 01 20 64");
    p = pad.b;
    cr_assert_eq(rp_relay_read_frame(&p, pad.b + pad.n, &body, &ei), RINGP2P_EVARINT);
    cr_assert_eq(p, pad.b);
    /* 4096 is allowed, 4097 is not, before the body arrives. */
    buf[0] = 0x80;
    buf[1] = 0x20; /* 4096 */
    memset(buf + 2, 0, RP_RELAY_MSG_MAX);
    p = buf;
    cr_assert_eq(rp_relay_read_frame(&p, buf + 2 + RP_RELAY_MSG_MAX - 1, &body, NULL), 0);
    cr_assert_eq(rp_relay_read_frame(&p, buf + 2 + RP_RELAY_MSG_MAX, &body, NULL), 1);
    buf[0] = 0x81; /* 4097 */
    p = buf;
    cr_assert_eq(rp_relay_read_frame(&p, buf + 2, &body, &ei), RINGP2P_ELIMIT);
    cr_assert_eq(p, buf);

    /* hop_read: frame then decode; a bad body is an error and consumes nothing. */
    kv_blob bad = hexblob("02 08 8a");
    rp_relay_hop_msg m;
    p = bad.b;
    cr_assert_eq(rp_relay_hop_read(&p, bad.b + bad.n, &m, NULL), RINGP2P_EPROTOBUF);
    cr_assert_eq(p, bad.b);

    /* Writers refuse messages nobody would read. */
    rp_relay_hop_msg huge;
    memset(&huge, 0, sizeof(huge));
    huge.has_reservation = true;
    huge.reservation.voucher = rp_iov_make(buf, RP_RELAY_MSG_MAX);
    cr_assert_eq(rp_relay_hop_write(&huge, buf, sizeof(buf)), RINGP2P_ELIMIT);
}

/* ---- vouchers ------------------------------------------------------------------------------ */

Test(relay, voucher_matches_js_and_opens)
{
    ringp2p_privkey *relay_key = load_key(SPEC_ED25519_PRIVATE_KEY);
    ringp2p_peer_id peer = pid(JS_PEER);
    uint8_t env[RP_ENVELOPE_MAX];
    ringp2p_errinfo ei = { 0 };
    ssize_t n = rp_relay_voucher_seal(relay_key, &peer, JS_EXPIRE, env, sizeof(env), &ei);
    cr_assert_gt(n, 0, "%s", ei.msg);
    assert_hex(env, (size_t)n, JS_VOUCHER); /* Ed25519 is deterministic */

    kv_blob js = hexblob(JS_VOUCHER);
    rp_relay_voucher v;
    const uint8_t *p = js.b;
    cr_assert_eq(rp_relay_voucher_open(&p, js.b + js.n, &v, &ei), 0, "%s", ei.msg);
    cr_assert_eq(p, js.b + js.n);
    ringp2p_peer_id relay = pid(JS_RELAY);
    cr_assert(ringp2p_peer_id_equal(&v.relay, &relay));
    cr_assert(ringp2p_peer_id_equal(&v.peer, &peer));
    cr_assert_eq(v.expiration, JS_EXPIRE);

    /* The payload is canonical: relay, peer, expiration. */
    uint8_t pl[128];
    n = rp_relay_voucher_encode(&v, pl, sizeof(pl));
    cr_assert_eq(n, 2 + 38 + 2 + 38 + 1 + 5);
    cr_assert_eq(pl[0], 0x0a);
    cr_assert_eq(pl[40], 0x12);
    cr_assert_eq(pl[80], 0x18);
    Rp__ReservationVoucher *pb = rp__reservation_voucher__unpack(NULL, (size_t)n, pl);
    cr_assert_not_null(pb);
    cr_assert(pb->has_expiration && pb->expiration == JS_EXPIRE);
    cr_assert(iov_is(rp_iov_make(pb->relay.data, pb->relay.len), relay.bytes, relay.len));
    rp__reservation_voucher__free_unpacked(pb, NULL);
    ringp2p_privkey_free(relay_key);
}

Test(relay, voucher_refusals)
{
    ringp2p_privkey *relay_key = load_key(SPEC_ED25519_PRIVATE_KEY);
    ringp2p_privkey *other_key = load_key(JS_ED_VERIFY_PRIVATEKEY);
    ringp2p_peer_id relay = peer_of(relay_key), peer = fake_peer(3);
    uint8_t env[RP_ENVELOPE_MAX];
    rp_relay_voucher v;
    ringp2p_errinfo ei = { 0 };
    const uint8_t *p;

    /* Signed by another key than the relay it names. */
    rp_relay_voucher forged = { .relay = relay, .peer = peer, .expiration = 5 };
    uint8_t pl[128];
    ssize_t pn = rp_relay_voucher_encode(&forged, pl, sizeof(pl));
    ssize_t n = rp_envelope_seal(other_key, RP_RELAY_VOUCHER_DOMAIN,
                                 (const uint8_t *)RP_RELAY_VOUCHER_PAYLOAD_TYPE, 2, pl, (size_t)pn,
                                 env, sizeof(env), NULL);
    cr_assert_gt(n, 0);
    p = env;
    cr_assert_eq(rp_relay_voucher_open(&p, env + n, &v, &ei), RINGP2P_EPEERMISMATCH);
    cr_assert_eq(p, env);
    cr_assert(strstr(ei.msg, "signed by") != NULL, "%s", ei.msg);

    /* Another domain (a peer record's), another payload type. */
    n = rp_envelope_seal(relay_key, RP_PEER_RECORD_DOMAIN,
                         (const uint8_t *)RP_RELAY_VOUCHER_PAYLOAD_TYPE, 2, pl, (size_t)pn, env,
                         sizeof(env), NULL);
    p = env;
    cr_assert_eq(rp_relay_voucher_open(&p, env + n, &v, NULL), RINGP2P_ESIGNATURE);
    n = rp_envelope_seal(relay_key, RP_RELAY_VOUCHER_DOMAIN,
                         (const uint8_t *)RP_PEER_RECORD_PAYLOAD_TYPE, 2, pl, (size_t)pn, env,
                         sizeof(env), NULL);
    p = env;
    cr_assert_eq(rp_relay_voucher_open(&p, env + n, &v, NULL), RINGP2P_EPROTOCOL);

    /* Tampered: one bit of the expiration (last payload byte) flipped. */
    n = rp_relay_voucher_seal(relay_key, &peer, 5, env, sizeof(env), NULL);
    p = env;
    cr_assert_eq(rp_relay_voucher_open(&p, env + n, &v, NULL), 0);
    uint8_t *exp = memmem(env, (size_t)n, pl + pn - 2, 2); /* 18 05 */
    cr_assert_not_null(exp);
    exp[1] ^= 1;
    p = env;
    cr_assert_eq(rp_relay_voucher_open(&p, env + n, &v, NULL), RINGP2P_ESIGNATURE);

    /* Payloads that are not vouchers, properly signed. */
    const char *payloads[] = { "12 22 1220"
                               "0000000000000000000000000000000000000000000000000000000000000000",
                               "0a 02 0000 12 02 0000", "18 01", "0a 00 0a 00" };
    const int errs[] = { RINGP2P_EPROTOBUF, RINGP2P_EPEERID, RINGP2P_EPROTOBUF, RINGP2P_EPROTOBUF };
    for (size_t i = 0; i < 4; i++) {
        kv_blob b = hexblob(payloads[i]);
        n = rp_envelope_seal(relay_key, RP_RELAY_VOUCHER_DOMAIN,
                             (const uint8_t *)RP_RELAY_VOUCHER_PAYLOAD_TYPE, 2, b.b, b.n, env,
                             sizeof(env), NULL);
        cr_assert_gt(n, 0);
        p = env;
        cr_assert_eq(rp_relay_voucher_open(&p, env + n, &v, &ei), errs[i], "%zu: %s", i, ei.msg);
    }
    ringp2p_peer_id unset = { 0 };
    cr_assert_eq(rp_relay_voucher_seal(relay_key, &unset, 1, env, sizeof(env), NULL),
                 RINGP2P_EINVAL);
    ringp2p_privkey_free(relay_key);
    ringp2p_privkey_free(other_key);
}

/* ---- the relay: reservations ---------------------------------------------------------------- */

/* Our relay's answer is byte for byte what js-libp2p encodes for the same reservation. */
Test(relay, reservation_answer_is_js_bytes)
{
    fixture f;
    fx_init(&f, NULL);
    answer an;
    reserve(&f, &an, &f.peer, f.conn_addr, JS_EXPIRE - 3600);
    cr_assert_eq(an.res.action, RP_RELAY_ACT_REPLY);
    cr_assert_eq(an.res.request, RP_RELAY_HOP_RESERVE);
    cr_assert_eq(an.res.status, RP_RELAY_OK);
    cr_assert_eq(an.res.expire, JS_EXPIRE);
    kv_blob js = hexblob(JS_HOP_RESERVE_OK);
    uint8_t framed[RP_RELAY_FRAME_MAX];
    size_t fn = frame(&js, framed);
    cr_assert_eq(an.res.len, fn);
    cr_assert(memcmp(an.out, framed, fn) == 0);
    fx_fini(&f);
}

Test(relay, reserve_then_client_checks)
{
    fixture f;
    fx_init(&f, NULL);
    answer an;
    reserve(&f, &an, &f.peer, f.conn_addr, NOW);
    cr_assert_eq(an.res.status, RP_RELAY_OK);
    cr_assert(rp_relay_has_reservation(f.r, &f.peer, NOW, NULL));
    cr_assert_eq(rp_relay_reservation_count(f.r), 1);

    rp_relay_reservation rs;
    int32_t st = -1;
    ringp2p_errinfo ei = { 0 };
    cr_assert_eq(rp_relay_reserve_check(&an.msg, &f.relay, &f.peer, NOW, &rs, &st, &ei), 0, "%s",
                 ei.msg);
    cr_assert_eq(st, RP_RELAY_OK);
    cr_assert_eq(rs.expire, NOW + 3600);
    cr_assert(rs.limited && rs.limit.duration == 120 && rs.limit.data == 131072);
    cr_assert(rs.has_voucher);
    cr_assert(ringp2p_peer_id_equal(&rs.voucher.relay, &f.relay));
    cr_assert(ringp2p_peer_id_equal(&rs.voucher.peer, &f.peer));
    cr_assert_eq(rs.voucher.expiration, rs.expire);
    cr_assert_eq(rs.n_addrs, 1);

    /* The circuit address to advertise. */
    uint8_t ca[RP_MADDR_MAX_BYTES];
    ssize_t n =
        rp_relay_circuit_addr(rs.addrs[0].base, rs.addrs[0].len, &f.relay, ca, sizeof(ca), &ei);
    cr_assert_gt(n, 0, "%s", ei.msg);
    char text[RP_MADDR_TEXT_MAX];
    rp_maddr_to_text(ca, (size_t)n, text, sizeof(text), NULL);
    cr_assert_str_eq(text, "/ip4/1.2.3.4/tcp/4001/p2p/" JS_RELAY "/p2p-circuit");

    /* Another client reads the same answer as not its own; a third relay as not its voucher. */
    ringp2p_peer_id stranger = fake_peer(5);
    cr_assert_eq(rp_relay_reserve_check(&an.msg, &f.relay, &stranger, NOW, &rs, NULL, &ei),
                 RINGP2P_EPEERMISMATCH);
    cr_assert_eq(rp_relay_reserve_check(&an.msg, &stranger, &f.peer, NOW, &rs, NULL, &ei),
                 RINGP2P_EPEERMISMATCH);
    /* Checked after it expired (or at the second it does). */
    cr_assert_eq(rp_relay_reserve_check(&an.msg, &f.relay, &f.peer, NOW + 3600, &rs, NULL, &ei),
                 RINGP2P_EPROTOCOL);
    fx_fini(&f);
}

Test(relay, client_refusals)
{
    fixture f;
    fx_init(&f, NULL);
    rp_relay_reservation rs;
    int32_t st;
    ringp2p_errinfo ei = { 0 };
    rp_relay_hop_msg m;
    memset(&m, 0, sizeof(m));

    /* Not a STATUS. */
    m.has_type = true;
    m.type = RP_RELAY_HOP_CONNECT;
    cr_assert_eq(rp_relay_reserve_check(&m, &f.relay, &f.peer, NOW, &rs, &st, &ei),
                 RINGP2P_EPROTOCOL);
    cr_assert_eq(rp_relay_connect_check(&m, NULL, NULL, &st, &ei), RINGP2P_EPROTOCOL);
    m.has_type = false;
    cr_assert_eq(rp_relay_reserve_check(&m, &f.relay, &f.peer, NOW, &rs, &st, &ei),
                 RINGP2P_EPROTOCOL);
    /* Refused: the status is reported and named. */
    m.has_type = m.has_status = true;
    m.type = RP_RELAY_HOP_STATUS;
    m.status = RP_RELAY_RESERVATION_REFUSED;
    cr_assert_eq(rp_relay_reserve_check(&m, &f.relay, &f.peer, NOW, &rs, &st, &ei),
                 RINGP2P_ECONNREFUSED);
    cr_assert_eq(st, RP_RELAY_RESERVATION_REFUSED);
    cr_assert(strstr(ei.msg, "RESERVATION_REFUSED") != NULL, "%s", ei.msg);
    m.status = RP_RELAY_NO_RESERVATION;
    cr_assert_eq(rp_relay_connect_check(&m, NULL, NULL, &st, &ei), RINGP2P_ECONNREFUSED);
    cr_assert_eq(st, RP_RELAY_NO_RESERVATION);
    m.has_status = false; /* no status at all: UNUSED, refused */
    cr_assert_eq(rp_relay_connect_check(&m, NULL, NULL, &st, &ei), RINGP2P_ECONNREFUSED);
    cr_assert_eq(st, RP_RELAY_UNUSED);
    /* OK without a reservation. */
    m.has_status = true;
    m.status = RP_RELAY_OK;
    cr_assert_eq(rp_relay_reserve_check(&m, &f.relay, &f.peer, NOW, &rs, &st, &ei),
                 RINGP2P_EPROTOCOL);
    /* OK, in the past. */
    m.has_reservation = true;
    m.reservation.expire = NOW - 1;
    cr_assert_eq(rp_relay_reserve_check(&m, &f.relay, &f.peer, NOW, &rs, &st, &ei),
                 RINGP2P_EPROTOCOL);
    /* OK, no voucher, no limit (go accepts both); bad and foreign addresses skipped. */
    arena a = { .used = 0 };
    m.reservation.expire = NOW + 10;
    m.reservation.addrs[0] = ma(&a, "/ip4/5.6.7.8/tcp/1");
    m.reservation.addrs[1] = rp_iov_make("\xff\xff", 2);
    m.reservation.addrs[2] = ma(&a, "/ip4/5.6.7.8/tcp/1/p2p/" JS_PEER);
    m.reservation.addrs[3] = ma(&a, "/ip4/5.6.7.8/tcp/1/p2p/" JS_RELAY "/p2p-circuit");
    m.reservation.addrs[4] = ma(&a, "/dns4/relay.example/tcp/1/p2p/" JS_RELAY);
    m.reservation.n_addrs = 5;
    cr_assert_eq(rp_relay_reserve_check(&m, &f.relay, &f.peer, NOW, &rs, &st, &ei), 0, "%s",
                 ei.msg);
    cr_assert(!rs.has_voucher && !rs.limited);
    cr_assert_eq(rs.n_addrs, 2);
    cr_assert_eq(rs.n_addrs_skipped, 3);
    /* A voucher that is not an envelope. */
    m.reservation.voucher = rp_iov_make("\x0a\x00", 2);
    cr_assert_lt(rp_relay_reserve_check(&m, &f.relay, &f.peer, NOW, &rs, &st, &ei), 0);
    m.reservation.voucher = rp_iov_make("", 0); /* present but empty (go: malformed) */
    cr_assert_lt(rp_relay_reserve_check(&m, &f.relay, &f.peer, NOW, &rs, &st, &ei), 0);

    /* CONNECT accepted with and without a limit. */
    bool limited = true;
    rp_relay_limit lim = { 1, 1 };
    m.has_reservation = false;
    cr_assert_eq(rp_relay_connect_check(&m, &limited, &lim, &st, NULL), 0);
    cr_assert(!limited && lim.duration == 0 && lim.data == 0);
    m.has_limit = true;
    m.limit.duration = 9;
    cr_assert_eq(rp_relay_connect_check(&m, &limited, &lim, &st, NULL), 0);
    cr_assert(limited && lim.duration == 9);
    fx_fini(&f);
}

static void tiny(rp_relay_config *c)
{
    c->max_reservations = 3;
    c->max_reservations_per_ip = 2;
    c->max_circuits = 2;
    c->reservation_ttl_s = 100;
}

Test(relay, reservation_limits_and_renewal)
{
    fixture f;
    fx_init(&f, tiny);
    answer an;
    arena a = { .used = 0 };
    rp_iov ip1 = ma(&a, "/ip4/10.0.0.1/tcp/1"), ip1b = ma(&a, "/ip4/10.0.0.1/tcp/2");
    rp_iov ip2 = ma(&a, "/ip6/2001:db8::1/tcp/1"), ip3 = ma(&a, "/ip4/10.0.0.3/tcp/1");
    ringp2p_peer_id p1 = fake_peer(1), p2 = fake_peer(2), p3 = fake_peer(3), p4 = fake_peer(4);

    reserve(&f, &an, &p1, ip1, NOW);
    cr_assert_eq(an.res.status, RP_RELAY_OK);
    reserve(&f, &an, &p2, ip1b, NOW);
    cr_assert_eq(an.res.status, RP_RELAY_OK);
    /* A third peer from the same IP: per-IP limit of 2. */
    reserve(&f, &an, &p3, ip1, NOW);
    cr_assert_eq(an.res.status, RP_RELAY_RESERVATION_REFUSED);
    cr_assert_eq(an.msg.has_reservation, false);
    cr_assert(strstr(an.ei.msg, "IP") != NULL, "%s", an.ei.msg);
    /* From another IP it fits; then the relay is full. */
    reserve(&f, &an, &p3, ip2, NOW);
    cr_assert_eq(an.res.status, RP_RELAY_OK);
    reserve(&f, &an, &p4, ip3, NOW);
    cr_assert_eq(an.res.status, RP_RELAY_RESERVATION_REFUSED);
    cr_assert_eq(rp_relay_reservation_count(f.r), 3);

    /* Renewal when full, and from the crowded IP: allowed, later expiry, still one slot. */
    uint64_t e1;
    cr_assert(rp_relay_has_reservation(f.r, &p1, NOW, &e1));
    cr_assert_eq(e1, NOW + 100);
    reserve(&f, &an, &p1, ip1, NOW + 50);
    cr_assert_eq(an.res.status, RP_RELAY_OK);
    cr_assert_eq(an.res.expire, NOW + 150);
    cr_assert(rp_relay_has_reservation(f.r, &p1, NOW + 120, &e1));
    cr_assert_eq(e1, NOW + 150);
    cr_assert_eq(rp_relay_reservation_count(f.r), 3);
    cr_assert_eq(rp_relay_next_expiry(f.r), NOW + 100);

    /* Expiry: valid until the second before `expire`. */
    cr_assert(rp_relay_has_reservation(f.r, &p2, NOW + 99, NULL));
    cr_assert(!rp_relay_has_reservation(f.r, &p2, NOW + 100, NULL));
    /* A new reservation at expiry time finds the expired slots free. */
    reserve(&f, &an, &p4, ip3, NOW + 100);
    cr_assert_eq(an.res.status, RP_RELAY_OK);
    cr_assert_eq(rp_relay_reservation_count(f.r), 2); /* p1, p4 */
    cr_assert_eq(rp_relay_expire(f.r, NOW + 150), 1); /* p1 */
    cr_assert_eq(rp_relay_next_expiry(f.r), NOW + 200);
    cr_assert_eq(rp_relay_expire(f.r, NOW + 1000), 1);
    cr_assert_eq(rp_relay_next_expiry(f.r), UINT64_MAX);

    /* A disconnected peer loses its reservation. */
    reserve(&f, &an, &p1, ip1, NOW + 1000);
    cr_assert_eq(rp_relay_peer_gone(f.r, &p1), 1);
    cr_assert_eq(rp_relay_peer_gone(f.r, &p1), 0);
    cr_assert(!rp_relay_has_reservation(f.r, &p1, NOW + 1000, NULL));
    fx_fini(&f);
}

static void no_ip_limit(rp_relay_config *c)
{
    c->max_reservations_per_ip = 0;
    c->max_reservations = 2;
    c->limited = false;
}

Test(relay, per_ip_limit_off_and_unlimited)
{
    fixture f;
    fx_init(&f, no_ip_limit);
    answer an;
    ringp2p_peer_id p1 = fake_peer(1), p2 = fake_peer(2);
    reserve(&f, &an, &p1, f.conn_addr, NOW);
    reserve(&f, &an, &p2, f.conn_addr, NOW);
    cr_assert_eq(an.res.status, RP_RELAY_OK);
    cr_assert(!an.msg.has_limit, "an unlimited relay sends no Limit");
    /* A connection address without an IP is not counted per IP. */
    rp_relay_peer_gone(f.r, &p2);
    arena a = { .used = 0 };
    reserve(&f, &an, &p2, ma(&a, "/dns4/x.example/tcp/1"), NOW);
    cr_assert_eq(an.res.status, RP_RELAY_OK);
    fx_fini(&f);
}

static bool deny_all_reserve(void *arg, const ringp2p_peer_id *peer, const uint8_t *addr,
                             size_t len)
{
    (*(int *)arg)++;
    return false;
}

static bool deny_other_connect(void *arg, const ringp2p_peer_id *src, const uint8_t *addr,
                               size_t len, const ringp2p_peer_id *dst)
{
    ringp2p_peer_id bad = fake_peer(666);
    (*(int *)arg)++;
    return !ringp2p_peer_id_equal(src, &bad);
}

static int acl_calls;

static void with_acl(rp_relay_config *c)
{
    c->allow_reserve = deny_all_reserve;
    c->allow_connect = deny_other_connect;
    c->acl_arg = &acl_calls;
}

Test(relay, permission_denied)
{
    fixture f;
    fx_init(&f, NULL);
    answer an;
    arena a = { .used = 0 };
    rp_iov relayed = ma(&a, "/ip4/9.9.9.9/tcp/1/p2p/" JS_PEER "/p2p-circuit");
    ringp2p_peer_id p1 = fake_peer(1);
    /* Over a relayed connection: no reservation, no connect. */
    reserve(&f, &an, &p1, relayed, NOW);
    cr_assert_eq(an.res.status, RP_RELAY_PERMISSION_DENIED);
    cr_assert(!rp_relay_has_reservation(f.r, &p1, NOW, NULL));
    reserve(&f, &an, &f.peer, f.conn_addr, NOW);
    uint8_t req[128];
    ssize_t n = rp_relay_connect_write(&f.peer, req, sizeof(req));
    hop_at(&f, &an, &p1, relayed, req, (size_t)n, NOW);
    cr_assert_eq(an.res.status, RP_RELAY_PERMISSION_DENIED);
    cr_assert_eq(rp_relay_circuit_count(f.r), 0);
    fx_fini(&f);

    /* ACLs. */
    acl_calls = 0;
    fx_init(&f, with_acl);
    reserve(&f, &an, &p1, f.conn_addr, NOW);
    cr_assert_eq(an.res.status, RP_RELAY_PERMISSION_DENIED);
    cr_assert_eq(acl_calls, 1);
    fx_fini(&f);
}

/* ---- the relay: connections ----------------------------------------------------------------- */

Test(relay, connect_through_the_relay)
{
    fixture f;
    fx_init(&f, NULL);
    answer an;
    reserve(&f, &an, &f.peer, f.conn_addr, NOW);
    ringp2p_peer_id src = fake_peer(42);

    /* B asks for A: the relay opens a stop stream to A. */
    connect_to(&f, &an, &src, &f.peer, NOW + 5);
    cr_assert_eq(an.res.action, RP_RELAY_ACT_STOP);
    cr_assert_eq(an.res.request, RP_RELAY_HOP_CONNECT);
    cr_assert(ringp2p_peer_id_equal(&an.res.dst, &f.peer));
    cr_assert_neq(an.res.circuit, 0);
    cr_assert_eq(rp_relay_circuit_count(f.r), 1);
    uint64_t circ = an.res.circuit;

    /* A checks the stop request and accepts. */
    rp_relay_stop_request sr;
    int32_t reply;
    ringp2p_errinfo ei = { 0 };
    cr_assert_eq(rp_relay_stop_check(&an.stop, &sr, &reply, &ei), 0, "%s", ei.msg);
    cr_assert_eq(reply, RP_RELAY_OK);
    cr_assert(ringp2p_peer_id_equal(&sr.src, &src));
    cr_assert(sr.limited && sr.limit.duration == 120 && sr.limit.data == 131072);
    uint8_t ok[16];
    ssize_t okn = rp_relay_stop_status_write(RP_RELAY_OK, ok, sizeof(ok));

    /* The relay reads A's answer byte by byte, then answers B. */
    answer b;
    memset(&b, 0, sizeof(b));
    const uint8_t *p = ok;
    for (ssize_t i = 0; i < okn - 1; i++)
        cr_assert_eq(
            rp_relay_stop_response(f.r, circ, &p, ok + i, b.out, sizeof(b.out), &b.res, NULL), 0);
    cr_assert_eq(p, ok);
    cr_assert_eq(rp_relay_stop_response(f.r, circ, &p, ok + okn, b.out, sizeof(b.out), &b.res, &ei),
                 1);
    cr_assert_eq(p, ok + okn);
    cr_assert_eq(b.res.action, RP_RELAY_ACT_REPLY);
    cr_assert_eq(b.res.status, RP_RELAY_OK);
    cr_assert_eq(b.res.circuit, circ);
    cr_assert(b.res.limited && b.res.limit.data == 131072);
    assert_hex(b.out, b.res.len, "0c 08 02 22 06 08 78 10 80 80 08 28 64");
    /* A second answer for the same circuit is not expected. */
    p = ok;
    cr_assert_eq(
        rp_relay_stop_response(f.r, circ, &p, ok + okn, b.out, sizeof(b.out), &b.res, NULL),
        RINGP2P_ENOENT);

    /* B checks it: connected, limited. */
    rp_relay_hop_msg m;
    p = b.out;
    cr_assert_eq(rp_relay_hop_read(&p, b.out + b.res.len, &m, NULL), 1);
    bool limited;
    rp_relay_limit lim;
    cr_assert_eq(rp_relay_connect_check(&m, &limited, &lim, NULL, NULL), 0);
    cr_assert(limited && lim.duration == 120 && lim.data == 131072);

    cr_assert_eq(rp_relay_circuit_close(f.r, circ), 0);
    cr_assert_eq(rp_relay_circuit_close(f.r, circ), RINGP2P_ENOENT);
    cr_assert_eq(rp_relay_circuit_count(f.r), 0);
    fx_fini(&f);
}

Test(relay, connect_refusals)
{
    acl_calls = 0;
    fixture f;
    fx_init(&f, tiny);
    f.cfg.allow_connect = deny_other_connect; /* set after: reserve stays open */
    rp_relay_free(f.r);
    f.cfg.acl_arg = &acl_calls;
    cr_assert_eq(rp_relay_new(&f.cfg, f.relay_key, &f.r), 0);
    answer an;
    ringp2p_peer_id a = fake_peer(1), b = fake_peer(2), c = fake_peer(3), bad = fake_peer(666);
    arena ar = { .used = 0 };

    /* No reservation for the target. */
    connect_to(&f, &an, &b, &a, NOW);
    cr_assert_eq(an.res.status, RP_RELAY_NO_RESERVATION);
    reserve(&f, &an, &a, ma(&ar, "/ip4/10.1.0.1/tcp/1"), NOW);
    /* Denied by the ACL. */
    connect_to(&f, &an, &bad, &a, NOW);
    cr_assert_eq(an.res.status, RP_RELAY_PERMISSION_DENIED);
    cr_assert_gt(acl_calls, 0);
    /* CONNECT without a peer, with an empty or invalid ID. */
    kv_blob nopeer = hexblob("02 08 01"), empty = hexblob("04 08 01 12 00"),
            badid = hexblob("08 08 01 12 04 0a 02 12 20");
    hop(&f, &an, &b, nopeer.b, nopeer.n, NOW);
    cr_assert_eq(an.res.status, RP_RELAY_MALFORMED_MESSAGE);
    hop(&f, &an, &b, empty.b, empty.n, NOW);
    cr_assert_eq(an.res.status, RP_RELAY_MALFORMED_MESSAGE);
    hop(&f, &an, &b, badid.b, badid.n, NOW);
    cr_assert_eq(an.res.status, RP_RELAY_MALFORMED_MESSAGE);

    /* Circuits per peer: the target in 2 already. */
    connect_to(&f, &an, &b, &a, NOW);
    cr_assert_eq(an.res.action, RP_RELAY_ACT_STOP);
    uint64_t c1 = an.res.circuit;
    connect_to(&f, &an, &c, &a, NOW);
    cr_assert_eq(an.res.action, RP_RELAY_ACT_STOP);
    uint64_t c2 = an.res.circuit;
    connect_to(&f, &an, &b, &a, NOW);
    cr_assert_eq(an.res.status, RP_RELAY_RESOURCE_LIMIT_EXCEEDED);
    /* The initiator in 2 already (b -> a pending, b -> c). */
    reserve(&f, &an, &c, ma(&ar, "/ip4/10.1.0.3/tcp/1"), NOW);
    rp_relay_circuit_close(f.r, c2);
    connect_to(&f, &an, &b, &c, NOW);
    cr_assert_eq(an.res.action, RP_RELAY_ACT_STOP);
    uint64_t c3 = an.res.circuit;
    reserve(&f, &an, &b, ma(&ar, "/ip4/10.1.0.2/tcp/1"), NOW);
    ringp2p_peer_id d = fake_peer(4);
    connect_to(&f, &an, &b, &a, NOW);
    cr_assert_eq(an.res.status, RP_RELAY_RESOURCE_LIMIT_EXCEEDED, "initiator b is in 2");
    connect_to(&f, &an, &d, &a, NOW);
    cr_assert_eq(an.res.action, RP_RELAY_ACT_STOP, "a is in 1");

    /* The target refuses, answers something else, or never answers: CONNECTION_FAILED. */
    answer r;
    uint8_t st[16];
    ssize_t sn = rp_relay_stop_status_write(RP_RELAY_PERMISSION_DENIED, st, sizeof(st));
    const uint8_t *p = st;
    cr_assert_eq(rp_relay_stop_response(f.r, c1, &p, st + sn, r.out, sizeof(r.out), &r.res, NULL),
                 1);
    cr_assert_eq(r.res.status, RP_RELAY_CONNECTION_FAILED);
    assert_hex(r.out, r.res.len, "05 08 02 28 cb 01");
    kv_blob connect_back = hexblob("02 08 00"); /* a CONNECT, not a STATUS */
    p = connect_back.b;
    cr_assert_eq(rp_relay_stop_response(f.r, c3, &p, connect_back.b + connect_back.n, r.out,
                                        sizeof(r.out), &r.res, NULL),
                 1);
    cr_assert_eq(r.res.status, RP_RELAY_CONNECTION_FAILED);
    uint64_t c4 = an.res.circuit;
    kv_blob garbage = hexblob("03 ff ff ff");
    p = garbage.b;
    cr_assert_eq(rp_relay_stop_response(f.r, c4, &p, garbage.b + garbage.n, r.out, sizeof(r.out),
                                        &r.res, NULL),
                 1);
    cr_assert_eq(r.res.status, RP_RELAY_CONNECTION_FAILED);
    cr_assert_eq(rp_relay_circuit_count(f.r), 0, "failed circuits are released");
    connect_to(&f, &an, &d, &a, NOW);
    ssize_t fn = rp_relay_stop_failed(f.r, an.res.circuit, r.out, sizeof(r.out));
    assert_hex(r.out, (size_t)fn, "05 08 02 28 cb 01");
    cr_assert_eq(rp_relay_stop_failed(f.r, an.res.circuit, r.out, sizeof(r.out)), RINGP2P_ENOENT);

    /* An expired reservation is no reservation. */
    connect_to(&f, &an, &d, &a, NOW + 100);
    cr_assert_eq(an.res.status, RP_RELAY_NO_RESERVATION);
    fx_fini(&f);
}

static void one_rsv(rp_relay_config *c)
{
    c->max_reservations = 1;
    c->max_circuits = 3;
}

Test(relay, all_circuits_taken)
{
    fixture f;
    fx_init(&f, one_rsv);
    answer an;
    ringp2p_peer_id a = fake_peer(1), b = fake_peer(2);
    reserve(&f, &an, &a, f.conn_addr, NOW);
    for (unsigned i = 0; i < 3; i++) {
        ringp2p_peer_id s = fake_peer(100 + i);
        connect_to(&f, &an, &s, &a, NOW);
        cr_assert_eq(an.res.action, RP_RELAY_ACT_STOP);
    }
    /* a's reservation moves to b; a's circuits live on and fill the relay (1 x 3). */
    rp_relay_peer_gone(f.r, &a);
    reserve(&f, &an, &b, f.conn_addr, NOW);
    ringp2p_peer_id s = fake_peer(200);
    connect_to(&f, &an, &s, &b, NOW);
    cr_assert_eq(an.res.status, RP_RELAY_RESOURCE_LIMIT_EXCEEDED);
    fx_fini(&f);
}

Test(relay, malformed_and_unexpected_requests)
{
    fixture f;
    fx_init(&f, NULL);
    answer an;
    ringp2p_peer_id p1 = fake_peer(1);
    struct {
        const char *hex;
        int32_t status;
    } cases[] = {
        { "00", RP_RELAY_MALFORMED_MESSAGE },             /* no type */
        { "02 28 64", RP_RELAY_MALFORMED_MESSAGE },       /* no type */
        { "02 08 07", RP_RELAY_MALFORMED_MESSAGE },       /* unknown type */
        { "02 08 02", RP_RELAY_UNEXPECTED_MESSAGE },      /* STATUS */
        { "02 08 8a", RP_RELAY_MALFORMED_MESSAGE },       /* truncated varint */
        { "04 08 00 08 00", RP_RELAY_MALFORMED_MESSAGE }, /* type twice */
        { "81 80 00", RP_RELAY_MALFORMED_MESSAGE },       /* non-minimal prefix */
        { "81 20", RP_RELAY_MALFORMED_MESSAGE },          /* 4097 bytes announced */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        kv_blob b = hexblob(cases[i].hex);
        hop(&f, &an, &p1, b.b, b.n, NOW);
        cr_assert_eq(an.res.status, cases[i].status, "%s: %d", cases[i].hex, an.res.status);
        cr_assert_eq(an.res.action, RP_RELAY_ACT_REPLY);
        cr_assert_eq(an.res.request, -1);
        cr_assert_neq(an.ei.msg[0], '\0', "the reason is given");
    }
    cr_assert_eq(rp_relay_reservation_count(f.r), 0);

    /* A request not all there yet: 0, nothing consumed. RESERVE with unknown fields works. */
    kv_blob part = hexblob("05 08 00 3a 01 ff");
    rp_relay_hop_result res;
    uint8_t out[RP_RELAY_FRAME_MAX];
    const uint8_t *p = part.b;
    for (size_t cut = 0; cut < part.n; cut++) {
        cr_assert_eq(rp_relay_hop_request(f.r, &p1, NULL, 0, NULL, 0, NOW, &p, part.b + cut, out,
                                          sizeof(out), &res, NULL),
                     0);
        cr_assert_eq(p, part.b);
    }
    cr_assert_eq(rp_relay_hop_request(f.r, &p1, NULL, 0, NULL, 0, NOW, &p, part.b + part.n, out,
                                      sizeof(out), &res, NULL),
                 1);
    cr_assert_eq(p, part.b + part.n);
    cr_assert_eq(res.status, RP_RELAY_OK);
    /* Output buffer too small. */
    p = part.b;
    cr_assert_eq(rp_relay_hop_request(f.r, &p1, NULL, 0, NULL, 0, NOW, &p, part.b + part.n, out,
                                      100, &res, NULL),
                 RINGP2P_ENOBUF);
    fx_fini(&f);
}

Test(relay, reported_addresses)
{
    fixture f;
    fx_init(&f, NULL);
    f.n_self = 0;
    f.self[f.n_self++] = ma(&f.a, "/ip4/1.1.1.1/tcp/1");
    f.self[f.n_self++] = ma(&f.a, "/ip4/2.2.2.2/tcp/2/p2p/" JS_RELAY);
    f.self[f.n_self++] = ma(&f.a, "/ip4/3.3.3.3/tcp/3/p2p/" JS_PEER); /* another peer's */
    f.self[f.n_self++] = ma(&f.a, "/ip4/4.4.4.4/tcp/4/p2p/" JS_PEER "/p2p-circuit");
    answer an;
    reserve(&f, &an, &f.peer, f.conn_addr, NOW);
    cr_assert_eq(an.msg.reservation.n_addrs, 2);
    char text[RP_MADDR_TEXT_MAX];
    rp_maddr_to_text(an.msg.reservation.addrs[0].base, an.msg.reservation.addrs[0].len, text,
                     sizeof(text), NULL);
    cr_assert_str_eq(text, "/ip4/1.1.1.1/tcp/1/p2p/" JS_RELAY);
    rp_maddr_to_text(an.msg.reservation.addrs[1].base, an.msg.reservation.addrs[1].len, text,
                     sizeof(text), NULL);
    cr_assert_str_eq(text, "/ip4/2.2.2.2/tcp/2/p2p/" JS_RELAY);
    fx_fini(&f);

    /* Long addresses: as many as fit under RP_RELAY_MSG_MAX, never more. */
    fx_init(&f, NULL);
    /* /dns4/ then four 60-letter labels and .example: a 250-character name. */
    static char dns[300];
    memset(dns, 'a', sizeof(dns));
    memcpy(dns, "/dns4/", 6);
    for (int i = 1; i < 4; i++) dns[6 + 61 * i - 1] = '.';
    memcpy(dns + 6 + 61 * 4 - 1, ".example/tcp/1", 15);
    arena *big = malloc(sizeof(*big));
    big->used = 0;
    rp_iov many[RP_RELAY_ADDRS_MAX];
    for (size_t i = 0; i < RP_RELAY_ADDRS_MAX; i++) many[i] = ma(big, dns);
    rp_relay_hop_result res;
    uint8_t out[RP_RELAY_FRAME_MAX];
    kv_blob req = hexblob("02 08 00");
    const uint8_t *p = req.b;
    cr_assert_eq(rp_relay_hop_request(f.r, &f.peer, NULL, 0, many, RP_RELAY_ADDRS_MAX, NOW, &p,
                                      req.b + req.n, out, sizeof(out), &res, NULL),
                 1);
    rp_relay_hop_msg m;
    p = out;
    cr_assert_eq(rp_relay_hop_read(&p, out + res.len, &m, NULL), 1);
    cr_assert_gt(m.reservation.n_addrs, 5);
    cr_assert_lt(m.reservation.n_addrs, RP_RELAY_ADDRS_MAX);
    cr_assert_leq(res.len, RP_RELAY_FRAME_MAX);
    cr_assert_gt(res.len + 350, RP_RELAY_FRAME_MAX, "filled up to the limit");
    free(big);
    fx_fini(&f);
}

/* ---- stop side, addresses, meter ------------------------------------------------------------ */

Test(relay, stop_check_paths)
{
    rp_relay_stop_request q;
    int32_t reply;
    ringp2p_errinfo ei = { 0 };
    struct {
        const char *hex;
        int32_t reply;
    } bad[] = {
        { "", RP_RELAY_MALFORMED_MESSAGE },                     /* no type */
        { "08 01 20 64", RP_RELAY_UNEXPECTED_MESSAGE },         /* STATUS */
        { "08 05", RP_RELAY_MALFORMED_MESSAGE },                /* unknown type */
        { "08 00", RP_RELAY_MALFORMED_MESSAGE },                /* no peer */
        { "08 00 12 00", RP_RELAY_MALFORMED_MESSAGE },          /* no id */
        { "08 00 12 03 0a 01 00", RP_RELAY_MALFORMED_MESSAGE }, /* bad id */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        kv_blob b = hexblob(bad[i].hex);
        rp_relay_stop_msg m;
        const uint8_t *p = b.b;
        cr_assert_eq(rp_relay_stop_decode(&p, b.b + b.n, &m, NULL), 0);
        cr_assert_eq(rp_relay_stop_check(&m, &q, &reply, &ei), RINGP2P_EPROTOCOL, "%s", bad[i].hex);
        cr_assert_eq(reply, bad[i].reply, "%s", bad[i].hex);
    }
    /* Without a limit: not limited. Addresses are ignored, even invalid ones. */
    ringp2p_peer_id src = fake_peer(8);
    rp_relay_stop_msg m;
    memset(&m, 0, sizeof(m));
    m.has_type = m.has_peer = true;
    m.type = RP_RELAY_STOP_CONNECT;
    m.peer.id = rp_iov_make(src.bytes, src.len);
    m.peer.addrs[0] = rp_iov_make("\xff", 1);
    m.peer.n_addrs = 1;
    cr_assert_eq(rp_relay_stop_check(&m, &q, &reply, NULL), 0);
    cr_assert(!q.limited && q.limit.duration == 0 && q.limit.data == 0);
    cr_assert(ringp2p_peer_id_equal(&q.src, &src));
}

Test(relay, circuit_addresses)
{
    arena a = { .used = 0 };
    ringp2p_peer_id relay = pid(JS_RELAY);
    uint8_t out[RP_MADDR_MAX_BYTES];
    char text[RP_MADDR_TEXT_MAX];
    ringp2p_errinfo ei = { 0 };
    struct {
        const char *in;
        const char *want; /* NULL: the error */
        int err;
    } cases[] = {
        { "/ip4/1.2.3.4/tcp/1", "/ip4/1.2.3.4/tcp/1/p2p/" JS_RELAY "/p2p-circuit", 0 },
        { "/ip4/1.2.3.4/tcp/1/p2p/" JS_RELAY, "/ip4/1.2.3.4/tcp/1/p2p/" JS_RELAY "/p2p-circuit",
          0 },
        { "/ip6/::1/udp/1/quic-v1", "/ip6/::1/udp/1/quic-v1/p2p/" JS_RELAY "/p2p-circuit", 0 },
        { "/ip4/1.2.3.4/tcp/1/p2p/" JS_PEER, NULL, RINGP2P_EPEERMISMATCH },
        { "/ip4/1.2.3.4/tcp/1/p2p/" JS_RELAY "/p2p-circuit", NULL, RINGP2P_EMULTIADDR },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        rp_iov in = ma(&a, cases[i].in);
        ssize_t n = rp_relay_circuit_addr(in.base, in.len, &relay, out, sizeof(out), &ei);
        if (cases[i].want == NULL) {
            cr_assert_eq(n, cases[i].err, "%s: %zd", cases[i].in, n);
            continue;
        }
        cr_assert_gt(n, 0, "%s: %s", cases[i].in, ei.msg);
        rp_maddr_to_text(out, (size_t)n, text, sizeof(text), NULL);
        cr_assert_str_eq(text, cases[i].want);
        cr_assert_eq(rp_relay_circuit_addr(in.base, in.len, &relay, out, (size_t)n - 1, NULL),
                     RINGP2P_ENOBUF);
    }
    cr_assert_eq(rp_relay_circuit_addr((const uint8_t *)"\xff", 1, &relay, out, sizeof(out), NULL),
                 RINGP2P_EMULTIADDR);
    /* The result stays within the multiaddr limits (32 components): 30 + 2 fit, 31 + 2 not. */
    char many[32 * 12] = "";
    for (int i = 0; i < 31; i++) strcat(many, "/ipcidr/1");
    rp_iov c31 = ma(&a, many);
    cr_assert_eq(rp_relay_circuit_addr(c31.base, c31.len, &relay, out, sizeof(out), &ei),
                 RINGP2P_ELIMIT);
    rp_iov c30 = ma(&a, many + strlen("/ipcidr/1"));
    cr_assert_gt(rp_relay_circuit_addr(c30.base, c30.len, &relay, out, sizeof(out), &ei), 0);

    /* Splitting a relayed address to dial. */
    rp_relay_target t;
    rp_iov full = ma(&a, "/ip4/1.2.3.4/tcp/1/p2p/" JS_RELAY "/p2p-circuit/p2p/" JS_PEER);
    cr_assert_eq(rp_relay_addr_split(full.base, full.len, &t, &ei), 0, "%s", ei.msg);
    ringp2p_peer_id peer = pid(JS_PEER);
    cr_assert(ringp2p_peer_id_equal(&t.relay, &relay));
    cr_assert(ringp2p_peer_id_equal(&t.dst, &peer));
    rp_maddr_to_text(t.relay_addr.base, t.relay_addr.len, text, sizeof(text), NULL);
    cr_assert_str_eq(text, "/ip4/1.2.3.4/tcp/1/p2p/" JS_RELAY);
    rp_iov bare = ma(&a, "/p2p/" JS_RELAY "/p2p-circuit/p2p/" JS_PEER);
    cr_assert_eq(rp_relay_addr_split(bare.base, bare.len, &t, NULL), 0);
    const char *bad[] = {
        "/ip4/1.2.3.4/tcp/1/p2p/" JS_RELAY,
        "/ip4/1.2.3.4/tcp/1/p2p-circuit/p2p/" JS_PEER,
        "/ip4/1.2.3.4/tcp/1/p2p/" JS_RELAY "/p2p-circuit",
        "/ip4/1.2.3.4/tcp/1/p2p/" JS_RELAY "/p2p-circuit/ip4/1.1.1.1/tcp/1/p2p/" JS_PEER,
        "/p2p/" JS_RELAY "/p2p-circuit/p2p/" JS_PEER "/p2p-circuit/p2p/" JS_PEER,
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        rp_iov v = ma(&a, bad[i]);
        cr_assert_eq(rp_relay_addr_split(v.base, v.len, &t, NULL), RINGP2P_EMULTIADDR, "%s",
                     bad[i]);
    }
}

Test(relay, meter_and_refresh)
{
    rp_relay_meter m;
    rp_relay_limit lim = { 2, 100 };
    rp_relay_meter_init(&m, &lim, 1000);
    cr_assert_eq(rp_relay_meter_take(&m, RP_RELAY_DIR_TO_TARGET, 60), 60);
    cr_assert_eq(rp_relay_meter_take(&m, RP_RELAY_DIR_TO_TARGET, 60), 40);
    cr_assert_eq(rp_relay_meter_left(&m, RP_RELAY_DIR_TO_TARGET), 0);
    cr_assert_eq(rp_relay_meter_take(&m, RP_RELAY_DIR_TO_TARGET, 1), 0);
    /* Per direction: the other still has all of it. */
    cr_assert_eq(rp_relay_meter_left(&m, RP_RELAY_DIR_TO_INITIATOR), 100);
    cr_assert_eq(rp_relay_meter_take(&m, RP_RELAY_DIR_TO_INITIATOR, 100), 100);
    cr_assert(!rp_relay_meter_expired(&m, 1000 + 2000000000 - 1));
    cr_assert(rp_relay_meter_expired(&m, 1000 + 2000000000));
    /* No limit, or zero fields: nothing is counted, nothing expires. */
    rp_relay_meter_init(&m, NULL, 5);
    cr_assert_eq(rp_relay_meter_take(&m, 0, SIZE_MAX), SIZE_MAX);
    cr_assert_eq(rp_relay_meter_left(&m, 1), UINT64_MAX);
    cr_assert(!rp_relay_meter_expired(&m, UINT64_MAX - 1));
    rp_relay_limit zero = { 0, 0 };
    rp_relay_meter_init(&m, &zero, 5);
    cr_assert_eq(rp_relay_meter_take(&m, 1, 1 << 20), 1 << 20);
    cr_assert(!rp_relay_meter_expired(&m, UINT64_MAX - 1));
    /* Only a duration; a deadline past the clock's end saturates. */
    rp_relay_limit dur = { UINT32_MAX, 0 };
    rp_relay_meter_init(&m, &dur, UINT64_MAX - 10);
    cr_assert_eq(m.deadline_ns, UINT64_MAX);

    cr_assert_eq(rp_relay_refresh_at(NOW + 3600, NOW), NOW + 3300);
    cr_assert_eq(rp_relay_refresh_at(NOW + 60, NOW), NOW + 30);
    cr_assert_eq(rp_relay_refresh_at(NOW, NOW + 5), NOW + 5);

    cr_assert_str_eq(rp_relay_status_name(RP_RELAY_NO_RESERVATION), "NO_RESERVATION");
    cr_assert_str_eq(rp_relay_status_name(7), "unknown");
}

/*
 * A js-libp2p relay's answer to CONNECT, from its own ReservationStore and
 * HopMessage.encode (circuit-relay-v2 4.2.13, same throwaway script): the
 * duration goes out in milliseconds (120000) in a field of seconds. We read
 * what is on the wire; the js relay resets after 2 minutes regardless.
 */
Test(relay, js_relay_limit_duration_is_milliseconds)
{
    kv_blob b = hexblob("08 02 22 08 08 c0 a9 07 10 80 80 08 28 64");
    rp_relay_hop_msg m;
    const uint8_t *p = b.b;
    cr_assert_eq(rp_relay_hop_decode(&p, b.b + b.n, &m, NULL), 0);
    bool limited;
    rp_relay_limit lim;
    cr_assert_eq(rp_relay_connect_check(&m, &limited, &lim, NULL, NULL), 0);
    cr_assert(limited && lim.duration == 120000 && lim.data == 131072);
}

Test(relay, config)
{
    rp_relay_config c;
    rp_relay_config_default(&c);
    cr_assert_eq(c.reservation_ttl_s, 3600);
    cr_assert_eq(c.max_reservations, 128);
    cr_assert_eq(c.max_reservations_per_ip, 8);
    cr_assert_eq(c.max_circuits, 16);
    cr_assert(c.limited && c.limit.duration == 120 && c.limit.data == 131072);
    ringp2p_privkey *k = load_key(SPEC_ED25519_PRIVATE_KEY);
    rp_relay *r;
    c.max_circuits = 0;
    cr_assert_eq(rp_relay_new(&c, k, &r), RINGP2P_EINVAL);
    ringp2p_privkey_free(k);
    rp_relay_free(NULL);
}
