/*
 * Circuit relay v2 on arbitrary bytes: the HopMessage, StopMessage and voucher
 * decoders, the framing, the relay answering a hop stream (and the target's
 * answer on the stop stream), and the client and stop-side checks.
 *
 * Invariants: a refusal moves no cursor and its errinfo code is the returned
 * code; what is accepted encodes and decodes back to the same message, and
 * protobuf-c (proto/circuit.proto) reads the input, where it reads it at all,
 * with the same fields; the relay always produces one well-formed STATUS
 * answer (or a StopMessage for a CONNECT it accepts), never a second circuit
 * for one request, and releases what it refuses.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "multiformats/multiaddr.h"
#include "proto/circuit.pb-c.h"
#include "protocols/relay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW UINT64_C(1700000000)

/* SPEC_ED25519_PRIVATE_KEY of tests/unit/key_vectors.h. */
static const uint8_t relay_key_pb[] = {
    0x08, 0x01, 0x12, 0x40, 0x7e, 0x08, 0x30, 0x61, 0x7c, 0x4a, 0x7d, 0xe8, 0x39, 0x25,
    0xdf, 0xb2, 0x69, 0x45, 0x56, 0xb1, 0x29, 0x36, 0xc4, 0x77, 0xa0, 0xe1, 0xfe, 0xb2,
    0xe1, 0x48, 0xec, 0x9d, 0xa6, 0x0f, 0xee, 0x7d, 0x1e, 0xd1, 0xe8, 0xfa, 0xe2, 0xc4,
    0xa1, 0x44, 0xb8, 0xbe, 0x8f, 0xd4, 0xb4, 0x7b, 0xf3, 0xd3, 0xb3, 0x4b, 0x87, 0x1c,
    0x3c, 0xac, 0xf6, 0x01, 0x0f, 0x0e, 0x42, 0xd4, 0x74, 0xfc, 0xe2, 0x7e,
};

static ringp2p_privkey *relay_key(void)
{
    static ringp2p_privkey *key;
    if (key == NULL &&
        ringp2p_privkey_from_protobuf(relay_key_pb, sizeof(relay_key_pb), &key, NULL) != 0)
        abort();
    return key;
}

static int same_iov(rp_iov a, rp_iov b)
{
    return (a.base == NULL) == (b.base == NULL) && a.len == b.len &&
           (a.len == 0 || memcmp(a.base, b.base, a.len) == 0);
}

static int bin_eq(rp_iov v, protobuf_c_boolean has, const ProtobufCBinaryData *b)
{
    if ((v.base != NULL) != (has != 0)) return 0;
    return v.len == b->len && (v.len == 0 || memcmp(v.base, b->data, v.len) == 0);
}

/* Our list: protobuf-c's first RP_RELAY_ADDRS_MAX entries, the rest counted. */
static void addrs_eq(const rp_iov *a, size_t n, size_t dropped, const ProtobufCBinaryData *b,
                     size_t nb)
{
    if (n + dropped != nb || n > RP_RELAY_ADDRS_MAX) abort();
    for (size_t i = 0; i < n; i++)
        if (!bin_eq(a[i], 1, &b[i])) abort();
}

static void peer_eq(bool has, const rp_relay_peer *p, const Rp__CircuitPeer *q)
{
    if (has != (q != NULL)) abort();
    if (!has) return;
    if (!bin_eq(p->id, q->has_id, &q->id)) abort();
    addrs_eq(p->addrs, p->n_addrs, p->n_addrs_dropped, q->addrs, q->n_addrs);
}

static void limit_eq(bool has, const rp_relay_limit *l, const Rp__CircuitLimit *q)
{
    if (has != (q != NULL)) abort();
    if (!has) return;
    if (l->duration != (q->has_duration ? q->duration : 0)) abort();
    if (l->data != (q->has_data ? q->data : 0)) abort();
}

static void compare_hop(const rp_relay_hop_msg *m, const uint8_t *body, size_t n)
{
    Rp__HopMessage *pb = rp__hop_message__unpack(NULL, n, body);
    if (pb == NULL) return; /* e.g. a padded tag, which protobuf-c refuses and we read */
    if (m->has_type != (pb->has_type != 0) || (m->has_type && m->type != pb->type)) abort();
    if (m->has_status != (pb->has_status != 0) || (m->has_status && m->status != pb->status))
        abort();
    peer_eq(m->has_peer, &m->peer, pb->peer);
    limit_eq(m->has_limit, &m->limit, pb->limit);
    if (m->has_reservation != (pb->reservation != NULL)) abort();
    if (m->has_reservation) {
        const Rp__CircuitReservation *r = pb->reservation;
        if (m->reservation.expire != (r->has_expire ? r->expire : 0)) abort();
        addrs_eq(m->reservation.addrs, m->reservation.n_addrs, m->reservation.n_addrs_dropped,
                 r->addrs, r->n_addrs);
        if (!bin_eq(m->reservation.voucher, r->has_voucher, &r->voucher)) abort();
    }
    rp__hop_message__free_unpacked(pb, NULL);
}

static void compare_stop(const rp_relay_stop_msg *m, const uint8_t *body, size_t n)
{
    Rp__StopMessage *pb = rp__stop_message__unpack(NULL, n, body);
    if (pb == NULL) return;
    if (m->has_type != (pb->has_type != 0) || (m->has_type && m->type != pb->type)) abort();
    if (m->has_status != (pb->has_status != 0) || (m->has_status && m->status != pb->status))
        abort();
    peer_eq(m->has_peer, &m->peer, pb->peer);
    limit_eq(m->has_limit, &m->limit, pb->limit);
    rp__stop_message__free_unpacked(pb, NULL);
}

/* After a round trip: the same, except that an empty peer id is not written. */
static void same_peer(const rp_relay_peer *a, const rp_relay_peer *b)
{
    if (a->id.len == 0 ? b->id.base != NULL : !same_iov(a->id, b->id)) abort();
    if (a->n_addrs != b->n_addrs || b->n_addrs_dropped != 0) abort();
    for (size_t i = 0; i < a->n_addrs; i++)
        if (!same_iov(a->addrs[i], b->addrs[i])) abort();
}

static void round_trip_hop(const rp_relay_hop_msg *m)
{
    static uint8_t buf[2 * RP_RELAY_MSG_MAX];
    ssize_t n = rp_relay_hop_encode(m, NULL, 0);
    if (n < 0 || (size_t)n > sizeof(buf)) abort();
    if (rp_relay_hop_encode(m, buf, (size_t)n) != n) abort();
    if (n > 0 && rp_relay_hop_encode(m, buf, (size_t)n - 1) != RINGP2P_ENOBUF) abort();
    if (n > RP_RELAY_MSG_MAX) return; /* e.g. short negative varints written at full length */
    rp_relay_hop_msg b;
    const uint8_t *p = buf;
    if (rp_relay_hop_decode(&p, buf + n, &b, NULL) != 0 || p != buf + n) abort();
    if (m->has_type != b.has_type || m->type != b.type || m->has_status != b.has_status ||
        m->status != b.status || m->has_peer != b.has_peer || m->has_limit != b.has_limit ||
        m->has_reservation != b.has_reservation)
        abort();
    if (m->has_type == false && m->type != 0) abort();
    if (m->has_peer) same_peer(&m->peer, &b.peer);
    if (m->has_limit && memcmp(&m->limit, &b.limit, sizeof(b.limit)) != 0) abort();
    if (m->has_reservation) {
        const rp_relay_rsvp *x = &m->reservation, *y = &b.reservation;
        if (x->expire != y->expire || !same_iov(x->voucher, y->voucher)) abort();
        if (x->n_addrs != y->n_addrs || y->n_addrs_dropped != 0) abort();
        for (size_t i = 0; i < x->n_addrs; i++)
            if (!same_iov(x->addrs[i], y->addrs[i])) abort();
    }
    /* Framed: the prefix then the same bytes. */
    static uint8_t framed[RP_RELAY_FRAME_MAX];
    ssize_t fn = rp_relay_hop_write(m, framed, sizeof(framed));
    if (fn < n || memcmp(framed + (fn - n), buf, (size_t)n) != 0) abort();
    rp_relay_hop_msg c;
    p = framed;
    if (rp_relay_hop_read(&p, framed + fn, &c, NULL) != 1 || p != framed + fn) abort();
}

static void round_trip_stop(const rp_relay_stop_msg *m)
{
    static uint8_t buf[2 * RP_RELAY_MSG_MAX];
    ssize_t n = rp_relay_stop_encode(m, buf, sizeof(buf));
    if (n < 0) abort();
    if (n > RP_RELAY_MSG_MAX) return;
    rp_relay_stop_msg b;
    const uint8_t *p = buf;
    if (rp_relay_stop_decode(&p, buf + n, &b, NULL) != 0 || p != buf + n) abort();
    if (m->has_type != b.has_type || m->type != b.type || m->has_status != b.has_status ||
        m->status != b.status || m->has_peer != b.has_peer || m->has_limit != b.has_limit)
        abort();
    if (m->has_peer) same_peer(&m->peer, &b.peer);
    if (m->has_limit && memcmp(&m->limit, &b.limit, sizeof(b.limit)) != 0) abort();
}

static void check_err(int r, const ringp2p_errinfo *ei)
{
    if (r < 0 && ei->code != r) abort();
}

static void client_checks_hop(const rp_relay_hop_msg *m)
{
    ringp2p_peer_id relay, self;
    ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(relay_key()), &relay);
    self = relay; /* any peer: a voucher for it is then accepted */
    rp_relay_reservation rs;
    int32_t st = 12345;
    ringp2p_errinfo ei;
    int r = rp_relay_reserve_check(m, &relay, &self, NOW, &rs, &st, &ei);
    check_err(r, &ei);
    if (st != (m->has_status ? m->status : 0)) abort();
    if (r == 0) {
        if (rs.expire <= NOW || rs.n_addrs > RP_RELAY_ADDRS_MAX) abort();
        for (size_t i = 0; i < rs.n_addrs; i++) {
            uint8_t out[RP_MADDR_MAX_BYTES];
            ssize_t n = rp_relay_circuit_addr(rs.addrs[i].base, rs.addrs[i].len, &relay, out,
                                              sizeof(out), &ei);
            if (n < 0 && n != RINGP2P_ELIMIT) abort(); /* the check kept only usable addresses */
            if (n > 0 && rp_maddr_validate(out, (size_t)n, NULL) < 0) abort();
        }
        if (rs.has_voucher && !ringp2p_peer_id_equal(&rs.voucher.relay, &relay)) abort();
    }
    bool limited;
    rp_relay_limit lim;
    r = rp_relay_connect_check(m, &limited, &lim, &st, &ei);
    check_err(r, &ei);
    if (r == 0 && limited != m->has_limit) abort();
}

static void client_checks_stop(const rp_relay_stop_msg *m)
{
    rp_relay_stop_request q;
    int32_t reply = 12345;
    ringp2p_errinfo ei;
    int r = rp_relay_stop_check(m, &q, &reply, &ei);
    check_err(r, &ei);
    if (r == 0 && reply != RP_RELAY_OK) abort();
    if (r < 0 && reply != RP_RELAY_MALFORMED_MESSAGE && reply != RP_RELAY_UNEXPECTED_MESSAGE)
        abort();
}

static void as_voucher(const uint8_t *data, size_t size)
{
    rp_relay_voucher v;
    ringp2p_errinfo ei;
    const uint8_t *p = data;
    int r = rp_relay_voucher_decode(&p, data + size, &v, &ei);
    check_err(r, &ei);
    if (r < 0 && p != data) abort();
    if (r == 0) {
        uint8_t buf[256];
        ssize_t n = rp_relay_voucher_encode(&v, buf, sizeof(buf));
        rp_relay_voucher w;
        p = buf;
        if (n < 0 || rp_relay_voucher_decode(&p, buf + n, &w, NULL) != 0) abort();
        if (!ringp2p_peer_id_equal(&v.relay, &w.relay) ||
            !ringp2p_peer_id_equal(&v.peer, &w.peer) || v.expiration != w.expiration)
            abort();
        Rp__ReservationVoucher *pb = rp__reservation_voucher__unpack(NULL, size, data);
        if (pb != NULL) {
            if (!pb->has_relay || !pb->has_peer) abort();
            if (pb->relay.len != v.relay.len || memcmp(pb->relay.data, v.relay.bytes, v.relay.len))
                abort();
            if ((pb->has_expiration ? pb->expiration : 0) != v.expiration) abort();
            rp__reservation_voucher__free_unpacked(pb, NULL);
        }
    }
    p = data;
    r = rp_relay_voucher_open(&p, data + size, &v, &ei);
    check_err(r, &ei);
    if ((r < 0 && p != data) || (r == 0 && p != data + size)) abort();
}

/* A relay answering a hop stream made of the input, then the target answering with the rest. */
static void as_relay(const uint8_t *data, size_t size)
{
    rp_relay_config cfg;
    rp_relay_config_default(&cfg);
    rp_relay *r;
    if (rp_relay_new(&cfg, relay_key(), &r) != 0) abort();
    ringp2p_peer_id target;
    uint8_t mh[34] = { 0x12, 0x20, 1 };
    ringp2p_peer_id_from_bytes(mh, sizeof(mh), &target, NULL);
    static const uint8_t addr[] = {
        0x04, 10, 0, 0, 1, 0x06, 0x10, 0x00
    }; /* /ip4/10.0.0.1/tcp/4096 */
    rp_iov self = rp_iov_make(addr, sizeof(addr));
    /* The target holds a reservation, so a CONNECT to it gets as far as it can. */
    static const uint8_t rsv_req[] = { 0x02, 0x08, 0x00 };
    static uint8_t out[RP_RELAY_FRAME_MAX];
    rp_relay_hop_result res;
    const uint8_t *p = rsv_req;
    if (rp_relay_hop_request(r, &target, addr, sizeof(addr), &self, 1, NOW, &p, rsv_req + 3, out,
                             sizeof(out), &res, NULL) != 1 ||
        res.status != RP_RELAY_OK)
        abort();

    ringp2p_peer_id src;
    mh[2] = 2;
    ringp2p_peer_id_from_bytes(mh, sizeof(mh), &src, NULL);
    ringp2p_errinfo ei;
    p = data;
    int x = rp_relay_hop_request(r, &src, addr, sizeof(addr), &self, 1, NOW + 1, &p, data + size,
                                 out, sizeof(out), &res, &ei);
    if (x < 0 || p < data || p > data + size) abort();
    if (x == 0) {
        if (p != data) abort();
    } else if (res.action == RP_RELAY_ACT_REPLY) {
        rp_relay_hop_msg m;
        const uint8_t *q = out;
        if (rp_relay_hop_read(&q, out + res.len, &m, NULL) != 1 || q != out + res.len) abort();
        if (!m.has_type || m.type != RP_RELAY_HOP_STATUS || !m.has_status ||
            m.status != (int32_t)res.status)
            abort();
        if (rp_relay_circuit_count(r) != 0) abort();
    } else {
        if (res.action != RP_RELAY_ACT_STOP || res.request != RP_RELAY_HOP_CONNECT) abort();
        if (!ringp2p_peer_id_equal(&res.dst, &target) || rp_relay_circuit_count(r) != 1) abort();
        rp_relay_stop_msg s;
        const uint8_t *q = out;
        if (rp_relay_stop_read(&q, out + res.len, &s, NULL) != 1) abort();
        rp_relay_stop_request sr;
        int32_t reply;
        if (rp_relay_stop_check(&s, &sr, &reply, NULL) != 0 ||
            !ringp2p_peer_id_equal(&sr.src, &src))
            abort();
        /* The target's answer: the rest of the input. */
        uint64_t id = res.circuit;
        const uint8_t *rest = p;
        int y = rp_relay_stop_response(r, id, &rest, data + size, out, sizeof(out), &res, &ei);
        if (y < 0) abort();
        if (y == 0) {
            if (rest != p || rp_relay_stop_failed(r, id, out, sizeof(out)) <= 0) abort();
            if (rp_relay_circuit_count(r) != 0) abort();
        } else {
            rp_relay_hop_msg m;
            q = out;
            if (rp_relay_hop_read(&q, out + res.len, &m, NULL) != 1) abort();
            if (m.status != (int32_t)res.status) abort();
            if (res.status == RP_RELAY_OK) {
                if (rp_relay_circuit_count(r) != 1 || rp_relay_circuit_close(r, id) != 0) abort();
            } else if (res.status != RP_RELAY_CONNECTION_FAILED || rp_relay_circuit_count(r) != 0) {
                abort();
            }
        }
    }
    rp_relay_free(r);
}

static void as_addr(const uint8_t *data, size_t size)
{
    ringp2p_peer_id relay;
    ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(relay_key()), &relay);
    uint8_t out[RP_MADDR_MAX_BYTES];
    ringp2p_errinfo ei;
    ssize_t n = rp_relay_circuit_addr(data, size, &relay, out, sizeof(out), &ei);
    check_err((int)n, &ei);
    if (n > 0) {
        rp_relay_target t;
        /* ADDR/p2p/RELAY/p2p-circuit is not dialable by itself, but with /p2p/PEER it splits. */
        uint8_t full[RP_MADDR_MAX_BYTES + 64];
        memcpy(full, out, (size_t)n);
        uint8_t comp[64];
        ssize_t k = rp_maddr_put_component(rp_maddr_proto_by_code(RINGP2P_P_P2P), relay.bytes,
                                           relay.len, comp, sizeof(comp), NULL);
        memcpy(full + n, comp, (size_t)k);
        if (rp_maddr_validate(full, (size_t)(n + k), NULL) < 0) return; /* one component too many */
        if (rp_relay_addr_split(full, (size_t)(n + k), &t, &ei) != 0) abort();
        if (!ringp2p_peer_id_equal(&t.relay, &relay) || t.relay_addr.len != (size_t)n - 2) abort();
    }
    rp_relay_target t;
    int r = rp_relay_addr_split(data, size, &t, &ei);
    check_err(r, &ei);
    if (r == 0 && (t.relay_addr.base != (void *)data || t.relay_addr.len >= size)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ringp2p_errinfo ei;

    /* The whole input as one message body. */
    rp_relay_hop_msg *hm = malloc(sizeof(*hm));
    rp_relay_stop_msg *sm = malloc(sizeof(*sm));
    if (hm == NULL || sm == NULL) abort();
    const uint8_t *p = data;
    int r = rp_relay_hop_decode(&p, data + size, hm, &ei);
    check_err(r, &ei);
    if (r < 0) {
        if (p != data) abort();
    } else {
        if (p != data + size) abort();
        compare_hop(hm, data, size);
        round_trip_hop(hm);
        client_checks_hop(hm);
    }
    p = data;
    r = rp_relay_stop_decode(&p, data + size, sm, &ei);
    check_err(r, &ei);
    if (r < 0) {
        if (p != data) abort();
    } else {
        if (p != data + size) abort();
        compare_stop(sm, data, size);
        round_trip_stop(sm);
        client_checks_stop(sm);
    }

    /* As a stream of framed messages. */
    p = data;
    for (;;) {
        const uint8_t *before = p;
        r = rp_relay_hop_read(&p, data + size, hm, &ei);
        check_err(r, &ei);
        if (r != 1) {
            if (p != before) abort();
            break;
        }
        if (p <= before) abort();
    }

    as_voucher(data, size);
    as_relay(data, size);
    as_addr(data, size);
    free(hm);
    free(sm);
    return 0;
}
