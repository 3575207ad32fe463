#include "crypto/envelope.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/varint.h"

/* ---- Envelope ----------------------------------------------------------------------------- */

static const char env_msg[] = "Envelope";

int rp_envelope_decode(const uint8_t **src, const uint8_t *end, rp_envelope *out,
                       ringp2p_errinfo *ei)
{
    const uint8_t *start = *src, *p = *src;
    if ((size_t)(end - start) > RP_ENVELOPE_MAX)
        return rp_err(ei, RINGP2P_ELIMIT, "Envelope of %td bytes is over the limit of %d", end - p,
                      RP_ENVELOPE_MAX);
    rp_envelope e;
    memset(&e, 0, sizeof(e));
    while (p < end) {
        rp_pb_field f;
        int r = rp_pb_next(&p, end, start, env_msg, &f, ei);
        if (r < 0) return r;
        rp_iov *slot;
        const char *name;
        switch (f.num) {
        case RP_ENVELOPE_FIELD_PUBLIC_KEY: slot = &e.public_key, name = "public_key"; break;
        case RP_ENVELOPE_FIELD_PAYLOAD_TYPE: slot = &e.payload_type, name = "payload_type"; break;
        case RP_ENVELOPE_FIELD_PAYLOAD: slot = &e.payload, name = "payload"; break;
        case RP_ENVELOPE_FIELD_SIGNATURE: slot = &e.signature, name = "signature"; break;
        default: continue; /* unknown: skipped, as protobuf says */
        }
        if (f.wt != RP_PB_LEN) return rp_pb_wrong_type(env_msg, name, &f, ei);
        if (slot->base != NULL)
            return rp_err(ei, RINGP2P_EPROTOBUF, "Envelope: field %s (%u) appears twice", name,
                          f.num);
        *slot = f.body;
    }
    if (e.public_key.len == 0) return rp_err(ei, RINGP2P_EPROTOBUF, "Envelope has no public_key");
    if (e.signature.len == 0) return rp_err(ei, RINGP2P_EPROTOBUF, "Envelope has no signature");
    if (e.payload_type.len > RP_ENVELOPE_PAYLOAD_TYPE_MAX)
        return rp_err(ei, RINGP2P_ELIMIT, "Envelope payload_type of %zu bytes is over %d",
                      e.payload_type.len, RP_ENVELOPE_PAYLOAD_TYPE_MAX);
    *out = e;
    *src = p;
    return 0;
}

/* proto3: an empty bytes field is the default and is not written. */
static void put_nonempty(rp_wbuf *w, uint32_t num, const rp_iov *v)
{
    if (v->len != 0) rp_pb_put_bytes(w, num, v->base, v->len);
}

ssize_t rp_envelope_encode(const rp_envelope *e, uint8_t *dst, size_t cap)
{
    rp_wbuf w = rp_wbuf_make(dst, cap);
    put_nonempty(&w, RP_ENVELOPE_FIELD_PUBLIC_KEY, &e->public_key);
    put_nonempty(&w, RP_ENVELOPE_FIELD_PAYLOAD_TYPE, &e->payload_type);
    put_nonempty(&w, RP_ENVELOPE_FIELD_PAYLOAD, &e->payload);
    put_nonempty(&w, RP_ENVELOPE_FIELD_SIGNATURE, &e->signature);
    if (dst == NULL && cap == 0) return (ssize_t)w.len;
    return rp_wbuf_result(&w);
}

ssize_t rp_envelope_unsigned(const char *domain, size_t domain_len, const uint8_t *type,
                             size_t type_len, const uint8_t *payload, size_t payload_len,
                             uint8_t *dst, size_t cap)
{
    rp_wbuf w = rp_wbuf_make(dst, cap);
    rp_pb_put_raw_varint(&w, domain_len);
    rp_wbuf_put(&w, domain, domain_len);
    rp_pb_put_raw_varint(&w, type_len);
    rp_wbuf_put(&w, type, type_len);
    rp_pb_put_raw_varint(&w, payload_len);
    rp_wbuf_put(&w, payload, payload_len);
    if (dst == NULL && cap == 0) return (ssize_t)w.len;
    return rp_wbuf_result(&w);
}

static int check_domain(const char *domain, size_t *len, ringp2p_errinfo *ei)
{
    if (domain == NULL) return rp_err(ei, RINGP2P_EINVAL, "envelope domain is NULL");
    *len = strnlen(domain, RP_ENVELOPE_DOMAIN_MAX + 1);
    if (*len == 0) return rp_err(ei, RINGP2P_EINVAL, "envelope domain is empty");
    if (*len > RP_ENVELOPE_DOMAIN_MAX)
        return rp_err(ei, RINGP2P_EINVAL, "envelope domain is longer than %d bytes",
                      RP_ENVELOPE_DOMAIN_MAX);
    return 0;
}

/* The unsigned buffer on the heap (the caller frees it); its length in *len. */
static int make_unsigned(const char *domain, size_t dlen, const rp_iov *type, const rp_iov *payload,
                         uint8_t **buf, size_t *len, ringp2p_errinfo *ei)
{
    ssize_t n = rp_envelope_unsigned(domain, dlen, type->base, type->len, payload->base,
                                     payload->len, NULL, 0);
    *buf = malloc((size_t)n);
    if (*buf == NULL) return rp_err(ei, RINGP2P_ENOMEM, NULL);
    rp_envelope_unsigned(domain, dlen, type->base, type->len, payload->base, payload->len, *buf,
                         (size_t)n);
    *len = (size_t)n;
    return 0;
}

ssize_t rp_envelope_seal(const ringp2p_privkey *key, const char *domain, const uint8_t *type,
                         size_t type_len, const uint8_t *payload, size_t payload_len, uint8_t *dst,
                         size_t cap, ringp2p_errinfo *ei)
{
    size_t dlen;
    int r = check_domain(domain, &dlen, ei);
    if (r < 0) return r;
    if (type_len > RP_ENVELOPE_PAYLOAD_TYPE_MAX)
        return rp_err(ei, RINGP2P_EINVAL, "payload_type of %zu bytes is over %d", type_len,
                      RP_ENVELOPE_PAYLOAD_TYPE_MAX);
    if (payload_len > RP_ENVELOPE_MAX)
        return rp_err(ei, RINGP2P_ELIMIT, "payload of %zu bytes cannot fit an envelope of %d",
                      payload_len, RP_ENVELOPE_MAX);

    uint8_t key_pb[RINGP2P_KEY_PROTOBUF_MAX];
    ssize_t key_len =
        ringp2p_pubkey_to_protobuf(ringp2p_privkey_public(key), key_pb, sizeof(key_pb));
    if (key_len < 0) return rp_err(ei, (int)key_len, "cannot encode the sealing public key");

    rp_envelope e = {
        .public_key = rp_iov_make(key_pb, (size_t)key_len),
        .payload_type = rp_iov_make(type, type_len),
        .payload = rp_iov_make(payload, payload_len),
    };
    uint8_t *tbs;
    size_t tbs_len;
    if ((r = make_unsigned(domain, dlen, &e.payload_type, &e.payload, &tbs, &tbs_len, ei)) < 0)
        return r;
    uint8_t sig[RINGP2P_SIGNATURE_MAX];
    ssize_t sig_len = ringp2p_privkey_sign(key, tbs, tbs_len, sig, sizeof(sig));
    free(tbs);
    if (sig_len < 0) return rp_err(ei, (int)sig_len, "signing the envelope failed");
    e.signature = rp_iov_make(sig, (size_t)sig_len);

    ssize_t n = rp_envelope_encode(&e, NULL, 0);
    if (n > RP_ENVELOPE_MAX)
        return rp_err(ei, RINGP2P_ELIMIT, "the envelope would be %zd bytes, over the limit of %d",
                      n, RP_ENVELOPE_MAX);
    if ((size_t)n > cap)
        return rp_err(ei, RINGP2P_ENOBUF, "the envelope needs %zd bytes, the buffer has %zu", n,
                      cap);
    return rp_envelope_encode(&e, dst, cap);
}

int rp_envelope_open(const uint8_t **src, const uint8_t *end, const char *domain,
                     const uint8_t *type, size_t type_len, rp_envelope *out, ringp2p_pubkey **key,
                     ringp2p_errinfo *ei)
{
    return rp_envelope_open_cached(src, end, domain, type, type_len, NULL, out, key, ei);
}

int rp_envelope_open_cached(const uint8_t **src, const uint8_t *end, const char *domain,
                            const uint8_t *type, size_t type_len, rp_sigcache *verified,
                            rp_envelope *out, ringp2p_pubkey **key, ringp2p_errinfo *ei)
{
    size_t dlen;
    int r = check_domain(domain, &dlen, ei);
    if (r < 0) return r;
    const uint8_t *p = *src;
    rp_envelope e;
    if ((r = rp_envelope_decode(&p, end, &e, ei)) < 0) return r;
    /* Before the key and the signature: the cheap refusal comes first. */
    if (type != NULL && (e.payload_type.len != type_len ||
                         (type_len != 0 && memcmp(e.payload_type.base, type, type_len) != 0)))
        return rp_err(ei, RINGP2P_EPROTOCOL,
                      "Envelope: payload_type of %zu bytes is not the expected %zu-byte type",
                      e.payload_type.len, type_len);
    ringp2p_pubkey *pk = NULL;
    if ((r = ringp2p_pubkey_from_protobuf(e.public_key.base, e.public_key.len, &pk, ei)) < 0)
        return r;
    uint8_t *tbs;
    size_t tbs_len;
    if ((r = make_unsigned(domain, dlen, &e.payload_type, &e.payload, &tbs, &tbs_len, ei)) < 0) {
        ringp2p_pubkey_free(pk);
        return r;
    }
    /* The unsigned buffer fixes domain, type and payload (each length-prefixed): the cache's key.
     */
    r = rp_sigcache_verify(verified, pk, tbs, tbs_len, e.signature.base, e.signature.len);
    free(tbs);
    if (r < 0) {
        const char *kt = ringp2p_key_type_name(ringp2p_pubkey_type(pk));
        ringp2p_pubkey_free(pk);
        return rp_err(ei, RINGP2P_ESIGNATURE,
                      "Envelope: the %s signature does not verify for domain \"%s\" (tampered, "
                      "or signed for another domain)",
                      kt, domain);
    }
    if (key != NULL)
        *key = pk;
    else
        ringp2p_pubkey_free(pk);
    *out = e;
    *src = p;
    return 0;
}
