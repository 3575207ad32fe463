#include "protocols/peer_record.h"

#include <string.h>

#include "base/error.h"
#include "multiformats/multiaddr.h"

static const char rec_msg[] = "PeerRecord";

/* One AddressInfo: its multiaddr view, or base NULL when it has none. */
static int decode_address_info(const rp_iov *body, rp_iov *out, ringp2p_errinfo *ei)
{
    static const char msg[] = "PeerRecord.AddressInfo";
    const uint8_t *start = body->base, *p = start, *end = start + body->len;
    out->base = NULL;
    out->len = 0;
    while (p < end) {
        rp_pb_field f;
        int r = rp_pb_next(&p, end, start, msg, &f, ei);
        if (r < 0) return r;
        if (f.num != RP_PEER_RECORD_FIELD_MULTIADDR) continue;
        if (f.wt != RP_PB_LEN) return rp_pb_wrong_type(msg, "multiaddr", &f, ei);
        /* Addresses are a list on their own; a repeat inside one AddressInfo is last-wins. */
        *out = f.body;
    }
    return 0;
}

int rp_peer_record_decode(const uint8_t **src, const uint8_t *end, rp_peer_record *out,
                          ringp2p_errinfo *ei)
{
    const uint8_t *start = *src, *p = *src;
    if ((size_t)(end - start) > RP_ENVELOPE_MAX)
        return rp_err(ei, RINGP2P_ELIMIT, "PeerRecord of %td bytes is over the limit of %d",
                      end - start, RP_ENVELOPE_MAX);
    rp_iov id = { NULL, 0 };
    bool has_seq = false;
    out->seq = 0;
    out->n_addrs = 0;
    out->n_skipped = 0;
    while (p < end) {
        rp_pb_field f;
        int r = rp_pb_next(&p, end, start, rec_msg, &f, ei);
        if (r < 0) return r;
        switch (f.num) {
        case RP_PEER_RECORD_FIELD_PEER_ID:
            if (f.wt != RP_PB_LEN) return rp_pb_wrong_type(rec_msg, "peer_id", &f, ei);
            if (id.base != NULL)
                return rp_err(ei, RINGP2P_EPROTOBUF, "PeerRecord: field peer_id (1) appears twice");
            id = f.body;
            break;
        case RP_PEER_RECORD_FIELD_SEQ:
            if (f.wt != RP_PB_VARINT) return rp_pb_wrong_type(rec_msg, "seq", &f, ei);
            if (has_seq)
                return rp_err(ei, RINGP2P_EPROTOBUF, "PeerRecord: field seq (2) appears twice");
            has_seq = true;
            out->seq = f.value;
            break;
        case RP_PEER_RECORD_FIELD_ADDRESSES: {
            if (f.wt != RP_PB_LEN) return rp_pb_wrong_type(rec_msg, "addresses", &f, ei);
            rp_iov a;
            if ((r = decode_address_info(&f.body, &a, ei)) < 0) return r;
            if (a.len == 0 || out->n_addrs == RP_PEER_RECORD_ADDRS_MAX ||
                rp_maddr_validate(a.base, a.len, NULL) < 0) {
                out->n_skipped++;
                break;
            }
            out->addrs[out->n_addrs++] = a;
            break;
        }
        default: break; /* unknown: skipped (RFC 0003 "Future Work" adds fields) */
        }
    }
    if (id.base == NULL) return rp_err(ei, RINGP2P_EPROTOBUF, "PeerRecord has no peer_id");
    int r = ringp2p_peer_id_from_bytes(id.base, id.len, &out->peer_id, ei);
    if (r < 0) return r;
    *src = p;
    return 0;
}

/* Bytes of one AddressInfo message around a multiaddr of n bytes. */
static size_t address_info_len(size_t n)
{
    return rp_pb_bytes_len(RP_PEER_RECORD_FIELD_MULTIADDR, n);
}

ssize_t rp_peer_record_encode(const ringp2p_peer_id *id, uint64_t seq, const rp_iov *addrs,
                              size_t n_addrs, uint8_t *dst, size_t cap)
{
    rp_wbuf w = rp_wbuf_make(dst, cap);
    rp_pb_put_bytes(&w, RP_PEER_RECORD_FIELD_PEER_ID, id->bytes, id->len);
    if (seq != 0) rp_pb_put_varint(&w, RP_PEER_RECORD_FIELD_SEQ, seq);
    for (size_t i = 0; i < n_addrs; i++) {
        if (addrs[i].len == 0) continue;
        rp_pb_put_raw_varint(&w, (uint64_t)RP_PEER_RECORD_FIELD_ADDRESSES << 3 | RP_PB_LEN);
        rp_pb_put_raw_varint(&w, address_info_len(addrs[i].len));
        rp_pb_put_bytes(&w, RP_PEER_RECORD_FIELD_MULTIADDR, addrs[i].base, addrs[i].len);
    }
    if (dst == NULL && cap == 0) return (ssize_t)w.len;
    return rp_wbuf_result(&w);
}

ssize_t rp_peer_record_seal(const ringp2p_privkey *key, uint64_t seq, const rp_iov *addrs,
                            size_t n_addrs, uint8_t *dst, size_t cap, ringp2p_errinfo *ei)
{
    if (n_addrs > RP_PEER_RECORD_ADDRS_MAX)
        return rp_err(ei, RINGP2P_EINVAL, "%zu addresses for a peer record, the limit is %d",
                      n_addrs, RP_PEER_RECORD_ADDRS_MAX);
    for (size_t i = 0; i < n_addrs; i++) {
        if (addrs[i].len == 0)
            return rp_err(ei, RINGP2P_EINVAL, "peer record address %zu is empty", i);
        ssize_t r = rp_maddr_validate(addrs[i].base, addrs[i].len, ei);
        if (r < 0) return (int)r;
    }
    ringp2p_peer_id id;
    ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(key), &id);
    ssize_t n = rp_peer_record_encode(&id, seq, addrs, n_addrs, NULL, 0);
    if (n > RP_ENVELOPE_MAX)
        return rp_err(ei, RINGP2P_ELIMIT, "the peer record would be %zd bytes, over %d", n,
                      RP_ENVELOPE_MAX);
    uint8_t payload[RP_ENVELOPE_MAX];
    rp_peer_record_encode(&id, seq, addrs, n_addrs, payload, sizeof(payload));
    return rp_envelope_seal(key, RP_PEER_RECORD_DOMAIN,
                            (const uint8_t *)RP_PEER_RECORD_PAYLOAD_TYPE,
                            RP_PEER_RECORD_PAYLOAD_TYPE_LEN, payload, (size_t)n, dst, cap, ei);
}

int rp_peer_record_open(const uint8_t **src, const uint8_t *end, rp_sigcache *verified,
                        rp_peer_record *rec, rp_envelope *env, ringp2p_errinfo *ei)
{
    const uint8_t *p = *src;
    rp_envelope e;
    ringp2p_pubkey *key = NULL;
    int r = rp_envelope_open_cached(&p, end, RP_PEER_RECORD_DOMAIN,
                                    (const uint8_t *)RP_PEER_RECORD_PAYLOAD_TYPE,
                                    RP_PEER_RECORD_PAYLOAD_TYPE_LEN, verified, &e, &key, ei);
    if (r < 0) return r;
    /* RFC 0003: the signature is checked before the payload is even decoded. */
    const uint8_t *q = e.payload.base;
    if (q == NULL) q = (const uint8_t *)""; /* absent payload: an empty record, no peer_id */
    r = rp_peer_record_decode(&q, q + e.payload.len, rec, ei);
    if (r == 0 && !ringp2p_peer_id_matches(&rec->peer_id, key)) {
        char signer[RINGP2P_PEER_ID_STR_MAX], named[RINGP2P_PEER_ID_STR_MAX];
        ringp2p_peer_id signer_id;
        ringp2p_peer_id_from_pubkey(key, &signer_id);
        ringp2p_peer_id_to_string(&signer_id, signer, sizeof(signer));
        ringp2p_peer_id_to_string(&rec->peer_id, named, sizeof(named));
        r = rp_err(ei, RINGP2P_EPEERMISMATCH, "peer record of %s is signed by %s", named, signer);
    }
    ringp2p_pubkey_free(key);
    if (r < 0) return r;
    if (env != NULL) *env = e;
    *src = p;
    return 0;
}

uint64_t rp_peer_record_next_seq(uint64_t unix_ns, uint64_t prev)
{
    return unix_ns > prev ? unix_ns : prev + 1;
}
