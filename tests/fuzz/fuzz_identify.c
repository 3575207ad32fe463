/*
 * The identify reader: framing, the message decoder, verification and the
 * push merge, on arbitrary bytes.
 *
 * The input is read as a stream of length-prefixed messages and, separately,
 * as one message body. Invariants: a refusal moves no cursor and changes no
 * message; what is accepted encodes and decodes back to the same message, and
 * protobuf-c reads our encoding with exactly those fields; where protobuf-c
 * also reads the input, our byte fields are its fields less the entries we
 * skip; a message that verifies applies to a peer's state, which then answers
 * consistently.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "multiformats/multiaddr.h"
#include "proto/identify.pb-c.h"
#include "protocols/identify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_iov(const rp_iov *a, const rp_iov *b)
{
    return (a->base == NULL) == (b->base == NULL) && a->len == b->len &&
           (a->len == 0 || memcmp(a->base, b->base, a->len) == 0);
}

static int same_msg(const rp_identify_msg *a, const rp_identify_msg *b)
{
    if (!same_iov(&a->protocol_version, &b->protocol_version) ||
        !same_iov(&a->agent_version, &b->agent_version) ||
        !same_iov(&a->public_key, &b->public_key) ||
        !same_iov(&a->observed_addr, &b->observed_addr) ||
        !same_iov(&a->signed_peer_record, &b->signed_peer_record))
        return 0;
    if (a->n_listen_addrs != b->n_listen_addrs || a->n_protocols != b->n_protocols) return 0;
    for (size_t i = 0; i < a->n_listen_addrs; i++)
        if (!same_iov(&a->listen_addrs[i], &b->listen_addrs[i])) return 0;
    for (size_t i = 0; i < a->n_protocols; i++)
        if (!same_iov(&a->protocols[i], &b->protocols[i])) return 0;
    return 1;
}

/* Same message and counters (entries past the counts are not part of the state). */
static int same_state(const rp_identify_msg *a, const rp_identify_msg *b)
{
    return same_msg(a, b) && a->n_addrs_skipped == b->n_addrs_skipped &&
           a->n_protocols_skipped == b->n_protocols_skipped && a->n_frames == b->n_frames;
}

static int bytes_eq(const rp_iov *v, protobuf_c_boolean has, const ProtobufCBinaryData *b)
{
    if ((v->base != NULL) != (has != 0)) return 0;
    return v->len == b->len && (v->len == 0 || memcmp(v->base, b->data, v->len) == 0);
}

static int str_eq(const rp_iov *v, const char *s)
{
    if ((v->base != NULL) != (s != NULL)) return 0;
    return s == NULL || (strlen(s) == v->len && memcmp(v->base, s, v->len) == 0);
}

/* protobuf-c on our own encoding: every field exactly as we hold it. */
static void check_with_protobuf_c(const rp_identify_msg *m, const uint8_t *enc, size_t n)
{
    Rp__Identify *pb = rp__identify__unpack(NULL, n, enc);
    if (pb == NULL) abort();
    if (!bytes_eq(&m->public_key, pb->has_publickey, &pb->publickey)) abort();
    if (!bytes_eq(&m->observed_addr, pb->has_observedaddr, &pb->observedaddr)) abort();
    if (!bytes_eq(&m->signed_peer_record, pb->has_signedpeerrecord, &pb->signedpeerrecord)) abort();
    /* Versions may hold a NUL, which protobuf-c's char * cannot: compare when they do not. */
    if (m->protocol_version.base == NULL ||
        memchr(m->protocol_version.base, 0, m->protocol_version.len) == NULL)
        if (!str_eq(&m->protocol_version, pb->protocolversion)) abort();
    if (m->agent_version.base == NULL ||
        memchr(m->agent_version.base, 0, m->agent_version.len) == NULL)
        if (!str_eq(&m->agent_version, pb->agentversion)) abort();
    if (pb->n_listenaddrs != m->n_listen_addrs || pb->n_protocols != m->n_protocols) abort();
    for (size_t i = 0; i < m->n_listen_addrs; i++)
        if (!bytes_eq(&m->listen_addrs[i], 1, &pb->listenaddrs[i])) abort();
    for (size_t i = 0; i < m->n_protocols; i++)
        if (!str_eq(&m->protocols[i], pb->protocols[i])) abort(); /* ours have no NUL */
    rp__identify__free_unpacked(pb, NULL);
}

static int addr_ok(const ProtobufCBinaryData *b)
{
    return b->len != 0 && rp_maddr_validate(b->data, b->len, NULL) >= 0;
}

/* protobuf-c on the input, when it reads it: our lists are its lists filtered and capped. */
static void compare_input(const rp_identify_msg *m, const uint8_t *body, size_t n)
{
    Rp__Identify *pb = rp__identify__unpack(NULL, n, body);
    if (pb == NULL) return; /* e.g. a padded tag varint, which protobuf-c refuses and we read */
    if (!bytes_eq(&m->public_key, pb->has_publickey, &pb->publickey)) abort();
    if (!bytes_eq(&m->signed_peer_record, pb->has_signedpeerrecord, &pb->signedpeerrecord)) abort();
    if (pb->has_observedaddr && addr_ok(&pb->observedaddr) &&
        !bytes_eq(&m->observed_addr, 1, &pb->observedaddr))
        abort();
    size_t k = 0;
    for (size_t i = 0; i < pb->n_listenaddrs && k < RP_IDENTIFY_LISTEN_ADDRS_MAX; i++) {
        if (!addr_ok(&pb->listenaddrs[i])) continue;
        if (!bytes_eq(&m->listen_addrs[k++], 1, &pb->listenaddrs[i])) abort();
    }
    if (k != m->n_listen_addrs) abort();
    if (m->n_listen_addrs + m->n_protocols + m->n_addrs_skipped + m->n_protocols_skipped <
        pb->n_listenaddrs + pb->n_protocols)
        abort(); /* every entry is kept or counted */
    rp__identify__free_unpacked(pb, NULL);
}

static void round_trip(const rp_identify_msg *m)
{
    ssize_t n = rp_identify_msg_encode(m, NULL, 0);
    if (n < 0) abort();
    uint8_t *buf = malloc((size_t)n + 1);
    if (buf == NULL) abort();
    if (rp_identify_msg_encode(m, buf, (size_t)n) != n) abort();
    if (n > 0 && rp_identify_msg_encode(m, buf, (size_t)n - 1) != RINGP2P_ENOBUF) abort();
    rp_identify_msg *again = malloc(sizeof(*again));
    if (again == NULL) abort();
    rp_identify_msg_init(again);
    const uint8_t *p = buf;
    /* Merged messages may exceed one message's limit; the body decoder is given it whole. */
    if ((size_t)n <= RP_IDENTIFY_MSG_MAX) {
        if (rp_identify_decode(&p, buf + n, again, NULL) != 0) abort();
        if (p != buf + n || !same_msg(m, again)) abort();
        if (again->n_addrs_skipped != 0 || again->n_protocols_skipped != 0) abort();
    }
    check_with_protobuf_c(m, buf, (size_t)n);
    free(again);
    free(buf);
}

static void verify_and_apply(const rp_identify_msg *m)
{
    /* The remote is the key's own peer when there is a key, so verification goes deep. */
    ringp2p_peer_id remote = { 0 };
    uint8_t fixed[34] = { 0x12, 0x20, 0x42 };
    ringp2p_peer_id_from_bytes(fixed, sizeof(fixed), &remote, NULL);
    ringp2p_pubkey *key = NULL;
    if (m->public_key.len != 0 &&
        ringp2p_pubkey_from_protobuf(m->public_key.base, m->public_key.len, &key, NULL) == 0) {
        ringp2p_peer_id_from_pubkey(key, &remote);
        ringp2p_pubkey_free(key);
    }
    rp_identify_verified v;
    ringp2p_errinfo ei;
    int r = rp_identify_verify(m, &remote, NULL, &v, &ei);
    if (r < 0) {
        if (ei.code != r) abort();
        return;
    }
    if (v.has_record && !ringp2p_peer_id_equal(&v.record.peer_id, &remote)) abort();
    if ((v.key != NULL) != (m->public_key.len != 0)) abort();
    rp_identify_verified_clear(&v);

    rp_identify_peer *peer;
    if (rp_identify_peer_new(&remote, &peer) != 0) abort();
    /* Through a cache kept across inputs: its record, if any, is stored, then a hit. */
    static rp_sigcache *cache;
    if (cache == NULL && (cache = rp_sigcache_new()) == NULL) abort();
    r = rp_identify_peer_apply(peer, m, cache, NULL);
    if (r < 0) abort(); /* it verified a moment ago */
    /* Nothing new the second time. */
    if (rp_identify_peer_apply(peer, m, cache, NULL) != 0) abort();
    const rp_iov *l;
    bool cert;
    size_t n = rp_identify_peer_addrs(peer, &l, &cert);
    if (cert != v.has_record) abort();
    for (size_t i = 0; i < n; i++)
        if (rp_maddr_validate(l[i].base, l[i].len, NULL) < 0) abort();
    size_t np = rp_identify_peer_protocols(peer, &l);
    if (np > m->n_protocols || (m->n_protocols > 0 && np == 0)) abort();
    rp_identify_peer_free(peer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rp_identify_msg *m = malloc(sizeof(*m)), *snap = malloc(sizeof(*snap));
    if (m == NULL || snap == NULL) abort();
    ringp2p_errinfo ei;

    /* As a stream of framed messages. */
    rp_identify_msg_init(m);
    const uint8_t *p = data, *end = data + size;
    int r;
    for (;;) {
        const uint8_t *before = p;
        memcpy(snap, m, sizeof(*m));
        r = rp_identify_read_frame(m, &p, end, &ei);
        if (r == 1) {
            if (p <= before) abort();
            continue;
        }
        if (p != before || !same_state(snap, m)) abort();
        if (r < 0 && ei.code != r) abort();
        break;
    }
    if (r == 0 && rp_identify_read_end(m, p, end, NULL) == 0) {
        round_trip(m);
        verify_and_apply(m);
    }

    /* As one message body. */
    rp_identify_msg_init(m);
    memcpy(snap, m, sizeof(*m));
    p = data;
    r = rp_identify_decode(&p, end, m, &ei);
    if (r < 0) {
        if (p != data || ei.code != r || !same_state(snap, m)) abort();
    } else {
        if (p != end) abort();
        round_trip(m);
        compare_input(m, data, size);
    }
    free(m);
    free(snap);
    return 0;
}
