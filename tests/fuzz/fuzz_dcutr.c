/*
 * The DCUtR reader: the HolePunch decoder and its framing, and both state
 * machines fed arbitrary bytes as their stream, cut at arbitrary places.
 *
 * Invariants: a refusal moves no cursor and changes no message; what is
 * accepted encodes and decodes back to the same message, and where protobuf-c
 * also reads the input it sees the same fields;
 * a state machine given bytes consumes whole messages only, answers with
 * well-formed messages that fit RP_DCUTR_OUT_MAX, is DONE after any error,
 * only ever asks to dial usable TCP addresses, and always ends (DONE, once)
 * when time runs and dials fail.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/dcutr.pb-c.h"
#include "protocols/dcutr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_msg(const rp_dcutr_msg *a, const rp_dcutr_msg *b)
{
    if (a->type != b->type || a->n_addrs != b->n_addrs) return 0;
    for (size_t i = 0; i < a->n_addrs; i++)
        if (a->addrs[i].len != b->addrs[i].len ||
            (a->addrs[i].len != 0 && memcmp(a->addrs[i].base, b->addrs[i].base, a->addrs[i].len)))
            return 0;
    return 1;
}

static void compare_pb(const rp_dcutr_msg *m, const Rp__HolePunch *pb)
{
    if ((int)pb->type != (int)(uint32_t)m->type) abort(); /* protobuf-c keeps 32 bits */
    if (pb->n_obsaddrs != m->n_addrs + m->n_addrs_skipped) abort();
    for (size_t i = 0; i < m->n_addrs; i++)
        if (pb->obsaddrs[i].len != m->addrs[i].len ||
            (m->addrs[i].len != 0 &&
             memcmp(pb->obsaddrs[i].data, m->addrs[i].base, m->addrs[i].len)))
            abort();
}

static void round_trip(const rp_dcutr_msg *m)
{
    ssize_t n = rp_dcutr_msg_encode(m, NULL, 0);
    if (n <= 0) abort();
    uint8_t *buf = malloc((size_t)n);
    if (buf == NULL) abort();
    if (rp_dcutr_msg_encode(m, buf, (size_t)n) != n) abort();
    if (rp_dcutr_msg_encode(m, buf, (size_t)n - 1) != RINGP2P_ENOBUF) abort();
    rp_dcutr_msg *again = malloc(sizeof(*again));
    if (again == NULL) abort();
    const uint8_t *p = buf;
    if ((size_t)n <= RP_DCUTR_MSG_MAX) {
        if (rp_dcutr_msg_decode(&p, buf + n, again, NULL) != 0 || p != buf + n) abort();
        if (!same_msg(m, again)) abort();
    }
    Rp__HolePunch *pb = rp__hole_punch__unpack(NULL, (size_t)n, buf);
    if (pb == NULL) abort();
    if ((int)pb->type != (int)(uint32_t)m->type || pb->n_obsaddrs != m->n_addrs) abort();
    rp__hole_punch__free_unpacked(pb, NULL);
    free(again);
    free(buf);
}

/* Checks what a state machine wrote: whole frames of the expected types. */
static void check_out(const rp_wbuf *w)
{
    if (!rp_wbuf_ok(w) || w->len > RP_DCUTR_OUT_MAX) abort();
    const uint8_t *p = w->base, *end = w->base + w->len;
    while (p < end) {
        rp_dcutr_msg m;
        if (rp_dcutr_read_frame(&p, end, &m, NULL) != 1) abort();
        if (m.type != RP_DCUTR_CONNECT && m.type != RP_DCUTR_SYNC) abort();
        for (size_t i = 0; i < m.n_addrs; i++)
            if (rp_nataddr_parse_tcp(m.addrs[i].base, m.addrs[i].len, NULL, NULL) < 0) abort();
    }
}

static void check_action(const rp_dcutr_action *a, bool allow_private)
{
    if (a->kind != RP_DCUTR_DIAL && a->kind != RP_DCUTR_DIRECT_DIAL) return;
    if (a->n_addrs == 0 || a->n_addrs > RP_DCUTR_DIAL_ADDRS_MAX) abort();
    for (size_t i = 0; i < a->n_addrs; i++) {
        int sc = rp_nataddr_parse_tcp(a->addrs[i].bytes, a->addrs[i].len, NULL, NULL);
        if (!rp_nataddr_scope_ok(sc, allow_private)) abort();
    }
}

/* Runs time forward with every dial failing: DONE must come, once. */
static void run_out(rp_dcutr *d, uint64_t now, bool allow_private)
{
    int dones = 0;
    for (int step = 0; step < 64 && dones == 0; step++) {
        rp_dcutr_action act;
        while (rp_dcutr_poll(d, now, &act)) {
            check_action(&act, allow_private);
            if (act.kind == RP_DCUTR_DONE) {
                dones++;
                if (act.result == 0 || act.result != rp_dcutr_result(d)) abort();
            } else if (act.kind == RP_DCUTR_DIAL || act.kind == RP_DCUTR_DIRECT_DIAL) {
                rp_dcutr_dial_result(d, act.attempt, RINGP2P_EUNREACHABLE, now);
            } else if (act.kind == RP_DCUTR_OPEN_STREAM) {
                rp_dcutr_stream_failed(d, RINGP2P_ESTREAMRESET, now);
            }
        }
        uint64_t dl = rp_dcutr_deadline(d);
        if (dl == UINT64_MAX) break;
        if (dl > now) now = dl;
    }
    if (dones != 1 || !rp_dcutr_finished(d)) abort();
    rp_dcutr_action act;
    if (rp_dcutr_poll(d, now + 1, &act)) abort();
}

/* Feeds data[0..size) as the stream, in pieces of `chunk` bytes. */
static void feed(rp_dcutr *d, const uint8_t *data, size_t size, size_t chunk, bool allow_private)
{
    uint8_t held[8192], out[RP_DCUTR_OUT_MAX];
    size_t have = 0;
    uint64_t now = 1000;
    for (size_t off = 0; off < size;) {
        size_t k = size - off < chunk ? size - off : chunk;
        if (have + k > sizeof(held)) break;
        memcpy(held + have, data + off, k);
        have += k;
        off += k;
        now += 1000;
        const uint8_t *p = held;
        rp_wbuf w = rp_wbuf_make(out, sizeof(out));
        ringp2p_errinfo ei;
        int r = rp_dcutr_recv(d, &p, held + have, now, &w, &ei);
        if (p < held || p > held + have) abort();
        check_out(&w);
        if (r < 0) {
            if (ei.code != r || !rp_dcutr_finished(d) || rp_dcutr_result(d) != r) abort();
            break;
        }
        if (r > 1) abort();
        size_t used = (size_t)(p - held);
        memmove(held, held + used, have - used);
        have -= used;
        if (r == 1) break;
    }
    run_out(d, now, allow_private);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rp_dcutr_msg *m = malloc(sizeof(*m)), *snap = malloc(sizeof(*snap));
    if (m == NULL || snap == NULL) abort();
    memset(m, 0x5a, sizeof(*m));
    memcpy(snap, m, sizeof(*m));
    ringp2p_errinfo ei;

    /* As one message body. */
    const uint8_t *p = data, *end = data + size;
    int r = rp_dcutr_msg_decode(&p, end, m, &ei);
    Rp__HolePunch *pb = size <= RP_DCUTR_MSG_MAX ? rp__hole_punch__unpack(NULL, size, data) : NULL;
    if (r < 0) {
        if (p != data || ei.code != r || memcmp(snap, m, sizeof(*m)) != 0) abort();
        /*
         * Acceptance is not compared with protobuf-c: base/pb.h reads tags of up to 10 bytes
         * (as go's protowire) where protobuf-c stops at 5, and protobuf-c takes values whose
         * tenth byte overflows 64 bits, which base/pb.h refuses.
         */
    } else {
        if (p != end) abort();
        round_trip(m);
        if (pb != NULL) compare_pb(m, pb);
    }
    if (pb != NULL) rp__hole_punch__free_unpacked(pb, NULL);

    /* As a frame. */
    p = data;
    r = rp_dcutr_read_frame(&p, end, m, &ei);
    if (r <= 0 ? p != data : (p <= data || p > end)) abort();

    /* As the stream of a responder and of an initiator, cut by the first byte. */
    if (size == 0) goto out;
    rp_dcutr_config cfg;
    rp_dcutr_config_default(&cfg);
    cfg.allow_private = data[0] & 1;
    cfg.switch_role_last = data[0] & 2;
    cfg.attempts = 1 + (data[0] >> 2 & 3);
    size_t chunk = 1 + (data[0] >> 4) * 37;
    static const uint8_t own_pub[] = { 0x04, 7, 7, 7, 7, 0x06, 0x0f, 0xa1 };   /* 7.7.7.7:4001 */
    static const uint8_t own_priv[] = { 0x04, 10, 0, 0, 2, 0x06, 0x0f, 0xa1 }; /* 10.0.0.2:4001 */
    rp_iov own[2] = { rp_iov_make(own_priv, sizeof(own_priv)),
                      rp_iov_make(own_pub, sizeof(own_pub)) };
    uint8_t mh[34] = { 0x12, 0x20, 0x42 };
    ringp2p_peer_id remote;
    ringp2p_peer_id_from_bytes(mh, sizeof(mh), &remote, NULL);

    rp_dcutr *d = malloc(sizeof(*d));
    if (d == NULL) abort();
    if (rp_dcutr_responder_init(d, &cfg, &remote, own, 2, true, true, 0, NULL) != 0) abort();
    feed(d, data + 1, size - 1, chunk, cfg.allow_private);

    if (rp_dcutr_initiator_init(d, &cfg, &remote, own, 2, NULL, 0, 0, NULL) != 0) abort();
    rp_dcutr_action act;
    if (!rp_dcutr_poll(d, 0, &act) || act.kind != RP_DCUTR_OPEN_STREAM) abort();
    uint8_t out[RP_DCUTR_OUT_MAX];
    rp_wbuf w = rp_wbuf_make(out, sizeof(out));
    if (rp_dcutr_stream_opened(d, 0, &w, NULL) != 0) abort();
    check_out(&w);
    feed(d, data + 1, size - 1, chunk, cfg.allow_private);
    free(d);
out:
    free(m);
    free(snap);
    return 0;
}
