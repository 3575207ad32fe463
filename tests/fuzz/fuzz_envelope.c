/*
 * Signed envelopes and peer records on arbitrary bytes.
 *
 * The input is decoded as an Envelope, as a PeerRecord, and opened as a
 * signed peer record. Invariants: a refusal moves no cursor and fills `ei`;
 * what is accepted encodes and decodes back to the same thing; our envelope
 * encoding is the one protobuf-c writes for the same fields (whenever
 * protobuf-c reads the input at all); an opened record names its signer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/envelope.h"
#include "multiformats/multiaddr.h"
#include "proto/envelope.pb-c.h"
#include "protocols/peer_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_iov(const rp_iov *a, const rp_iov *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->base, b->base, a->len) == 0);
}

static int same_envelope(const rp_envelope *a, const rp_envelope *b)
{
    return same_iov(&a->public_key, &b->public_key) &&
           same_iov(&a->payload_type, &b->payload_type) && same_iov(&a->payload, &b->payload) &&
           same_iov(&a->signature, &b->signature);
}

static void envelope_round_trip(const rp_envelope *e, const uint8_t *data, size_t size)
{
    ssize_t n = rp_envelope_encode(e, NULL, 0);
    if (n < 0 || (size_t)n > size) abort(); /* never longer than what it came from */
    uint8_t *buf = malloc((size_t)n + 1);
    if (buf == NULL) abort();
    if (rp_envelope_encode(e, buf, (size_t)n) != n) abort();
    const uint8_t *p = buf;
    rp_envelope again;
    if (rp_envelope_decode(&p, buf + n, &again, NULL) != 0 || p != buf + n) abort();
    if (!same_envelope(e, &again)) abort();

    Rp__Envelope *pb = rp__envelope__unpack(NULL, size, data);
    if (pb != NULL) {
        size_t unknown = pb->base.n_unknown_fields;
        pb->base.n_unknown_fields = 0; /* we drop them too */
        size_t pn = rp__envelope__get_packed_size(pb);
        uint8_t *packed = malloc(pn + 1);
        if (packed == NULL) abort();
        rp__envelope__pack(pb, packed);
        pb->base.n_unknown_fields = unknown;
        if (pn != (size_t)n || memcmp(packed, buf, pn) != 0) abort();
        free(packed);
        rp__envelope__free_unpacked(pb, NULL);
    }
    free(buf);
}

static void record_round_trip(const rp_peer_record *rec)
{
    ssize_t n = rp_peer_record_encode(&rec->peer_id, rec->seq, rec->addrs, rec->n_addrs, NULL, 0);
    if (n < 0) abort();
    uint8_t *buf = malloc((size_t)n + 1);
    if (buf == NULL) abort();
    rp_peer_record_encode(&rec->peer_id, rec->seq, rec->addrs, rec->n_addrs, buf, (size_t)n);
    rp_peer_record *again = malloc(sizeof(*again));
    if (again == NULL) abort();
    const uint8_t *p = buf;
    if (rp_peer_record_decode(&p, buf + n, again, NULL) != 0) abort();
    if (!ringp2p_peer_id_equal(&rec->peer_id, &again->peer_id) || rec->seq != again->seq ||
        rec->n_addrs != again->n_addrs || again->n_skipped != 0)
        abort();
    for (size_t i = 0; i < rec->n_addrs; i++) {
        if (!same_iov(&rec->addrs[i], &again->addrs[i])) abort();
        if (rp_maddr_validate(rec->addrs[i].base, rec->addrs[i].len, NULL) < 1) abort();
    }
    Rp__PeerRecord *pb = rp__peer_record__unpack(NULL, (size_t)n, buf);
    if (pb == NULL || pb->seq != rec->seq || pb->n_addresses != rec->n_addrs) abort();
    rp__peer_record__free_unpacked(pb, NULL);
    free(again);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *end = data + size, *p = data;
    ringp2p_errinfo ei;
    rp_envelope e;
    int r = rp_envelope_decode(&p, end, &e, &ei);
    if (r < 0) {
        if (p != data || ei.code != r) abort();
    } else {
        if (p != end) abort();
        envelope_round_trip(&e, data, size);
    }

    rp_peer_record *rec = malloc(sizeof(*rec));
    if (rec == NULL) abort();
    p = data;
    r = rp_peer_record_decode(&p, end, rec, &ei);
    if (r < 0) {
        if (p != data || ei.code != r) abort();
    } else {
        if (p != end) abort();
        record_round_trip(rec);
    }

    p = data;
    ringp2p_pubkey *key = NULL;
    r = rp_envelope_open(&p, end, RP_PEER_RECORD_DOMAIN, NULL, 0, &e, &key, &ei);
    /*
     * Through a verified-signature cache kept across inputs, twice: the same
     * answer as verifying, whatever earlier inputs left in it.
     */
    static rp_sigcache *cache;
    if (cache == NULL && (cache = rp_sigcache_new()) == NULL) abort();
    for (int k = 0; k < 2; k++) {
        const uint8_t *q = data;
        rp_envelope e2;
        if (rp_envelope_open_cached(&q, end, RP_PEER_RECORD_DOMAIN, NULL, 0, cache, &e2, NULL,
                                    NULL) != r)
            abort();
    }
    if (r < 0) {
        if (p != data || ei.code != r || key != NULL) abort();
    } else {
        ringp2p_pubkey_free(key);
        p = data;
        r = rp_peer_record_open(&p, end, NULL, rec, NULL, &ei);
        if (r == 0) {
            ringp2p_pubkey *k2 = NULL;
            if (ringp2p_pubkey_from_protobuf(e.public_key.base, e.public_key.len, &k2, NULL) != 0)
                abort();
            if (!ringp2p_peer_id_matches(&rec->peer_id, k2)) abort();
            ringp2p_pubkey_free(k2);
        } else if (p != data || ei.code != r) {
            abort();
        }
    }
    free(rec);
    return 0;
}
