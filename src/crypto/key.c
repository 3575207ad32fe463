/*
 * Keys: the protobuf envelope (peer-ids.md "Keys") and dispatch to the
 * per-type backends.
 *
 * Decoding strictness. The spec requires the encoding to be deterministic:
 * minimal varints, fields in tag order, all present, no other fields. go-libp2p
 * (google.golang.org/protobuf) and js-libp2p (protons) decode leniently: they
 * skip unknown fields and accept any field order; both then re-encode from the
 * parsed key, so the bytes they hash into a peer ID can differ from the bytes
 * they received. We accept only the canonical form instead, so that received
 * bytes, re-encoded bytes and peer ID always agree. No implementation we know
 * writes anything else.
 */
#include "crypto/key.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/mem.h>

#include "base/error.h"
#include "base/varint.h"
#include "proto/keys.pb-c.h"

_Static_assert((int)RP__KEY_TYPE__RSA == (int)RINGP2P_KEY_RSA, "KeyType RSA");
_Static_assert((int)RP__KEY_TYPE__Ed25519 == (int)RINGP2P_KEY_ED25519, "KeyType Ed25519");
_Static_assert((int)RP__KEY_TYPE__Secp256k1 == (int)RINGP2P_KEY_SECP256K1, "KeyType Secp256k1");
_Static_assert((int)RP__KEY_TYPE__ECDSA == (int)RINGP2P_KEY_ECDSA, "KeyType ECDSA");

const rp_key_ops *rp_key_ops_of(uint64_t type)
{
    switch (type) {
    case RINGP2P_KEY_RSA: return &rp_key_rsa_ops;
    case RINGP2P_KEY_ED25519: return &rp_key_ed25519_ops;
    case RINGP2P_KEY_SECP256K1: return &rp_key_secp256k1_ops;
    case RINGP2P_KEY_ECDSA: return &rp_key_ecdsa_ops;
    }
    return NULL;
}

RINGP2P_API const char *ringp2p_key_type_name(ringp2p_key_type type)
{
    const rp_key_ops *ops = rp_key_ops_of((uint64_t)type);
    return ops != NULL ? ops->name : NULL;
}

RINGP2P_API int ringp2p_key_type_parse(const char *name, ringp2p_key_type *out)
{
    static const ringp2p_key_type all[] = { RINGP2P_KEY_ED25519, RINGP2P_KEY_SECP256K1,
                                            RINGP2P_KEY_ECDSA, RINGP2P_KEY_RSA };
    if (name == NULL) return RINGP2P_EKEYTYPE;
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (strcasecmp(name, rp_key_ops_of(all[i])->name) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return RINGP2P_EKEYTYPE;
}

/* ---- envelope ----------------------------------------------------------------------------- */

static const char *field_name(uint64_t field)
{
    return field == 1 ? "Type" : field == 2 ? "Data" : "?";
}

/*
 * Reads the tag of field `want` (1 or 2; 0 for "nothing more") at *p. Anything
 * else is explained: a missing, repeated, reordered, mistyped or unknown field.
 */
static int expect_field(const uint8_t **p, const uint8_t *start, const uint8_t *end,
                        const char *what, uint64_t want, uint64_t want_tag, ringp2p_errinfo *ei)
{
    if (*p == end) {
        if (want == 0) return 0;
        return rp_err(ei, RINGP2P_EPROTOBUF, "%s: required field %s (%llu) missing", what,
                      field_name(want), (unsigned long long)want);
    }
    const uint8_t *q = *p;
    uint64_t tag;
    if (rp_uvarint_decode(&q, end, &tag) < 0)
        return rp_err(ei, RINGP2P_EPROTOBUF, "%s: malformed or non-minimal field tag at byte %td",
                      what, *p - start);
    if (want != 0 && tag == want_tag) {
        *p = q;
        return 0;
    }
    uint64_t field = tag >> 3;
    unsigned wt = (unsigned)(tag & 7);
    if (want != 0 && field == want)
        return rp_err(ei, RINGP2P_EPROTOBUF, "%s: field %s (%llu) has wire type %u, expected %u",
                      what, field_name(want), (unsigned long long)want, wt,
                      (unsigned)(want_tag & 7));
    if (field == 1 || field == 2) {
        if (want == 0 || field < want)
            return rp_err(ei, RINGP2P_EPROTOBUF, "%s: field %s (%llu) repeated at byte %td", what,
                          field_name(field), (unsigned long long)field, *p - start);
        return rp_err(ei, RINGP2P_EPROTOBUF,
                      "%s: field %s (%llu) found where field %s (%llu) must come (fields must "
                      "all be present, in tag order)",
                      what, field_name(field), (unsigned long long)field, field_name(want),
                      (unsigned long long)want);
    }
    return rp_err(ei, RINGP2P_EPROTOBUF,
                  "%s: unknown field %llu (wire type %u) at byte %td; the spec allows no other "
                  "fields",
                  what, (unsigned long long)field, wt, *p - start);
}

int rp_keypb_decode(const uint8_t *buf, size_t len, const char *what, uint64_t *type,
                    const uint8_t **data, size_t *data_len, ringp2p_errinfo *ei)
{
    if (len > RINGP2P_KEY_PROTOBUF_MAX)
        return rp_err(ei, RINGP2P_ELIMIT, "%s: %zu bytes, more than the %d accepted", what, len,
                      RINGP2P_KEY_PROTOBUF_MAX);
    const uint8_t *p = buf, *end = buf + len;
    uint64_t t, n;
    int r;

    if ((r = expect_field(&p, buf, end, what, 1, RP_KEYPB_TAG_TYPE, ei)) < 0) return r;
    if (rp_uvarint_decode(&p, end, &t) < 0)
        return rp_err(ei, RINGP2P_EPROTOBUF,
                      "%s: field Type: truncated, non-minimal or out-of-range varint", what);
    if ((r = expect_field(&p, buf, end, what, 2, RP_KEYPB_TAG_DATA, ei)) < 0) return r;
    if (rp_uvarint_decode(&p, end, &n) < 0)
        return rp_err(ei, RINGP2P_EPROTOBUF,
                      "%s: field Data: truncated or non-minimal length varint", what);
    if (n > (uint64_t)(end - p))
        return rp_err(ei, RINGP2P_EPROTOBUF,
                      "%s: field Data: length %llu but only %td bytes follow (truncated)", what,
                      (unsigned long long)n, end - p);
    const uint8_t *d = p;
    p += n;
    /* Anything after Data is named: a repeated field reads better than "trailing bytes". */
    if ((r = expect_field(&p, buf, end, what, 0, 0, ei)) < 0) return r;
    if (rp_key_ops_of(t) == NULL)
        return rp_err(ei, RINGP2P_EKEYTYPE,
                      "%s: key type %llu is not in the KeyType enum (RSA 0, Ed25519 1, "
                      "Secp256k1 2, ECDSA 3)",
                      what, (unsigned long long)t);
    *type = t;
    *data = d;
    *data_len = (size_t)n;
    return 0;
}

size_t rp_pubkey_protobuf_len(const struct ringp2p_pubkey *pk)
{
    return 3 + rp_uvarint_len(pk->raw_len) + pk->raw_len;
}

void rp_pubkey_protobuf_pieces(const struct ringp2p_pubkey *pk,
                               void (*fn)(void *ctx, const uint8_t *p, size_t n), void *ctx)
{
    uint8_t hdr[3 + RP_UVARINT_MAX_LEN];
    rp_wbuf w = rp_wbuf_make(hdr, sizeof(hdr));
    rp_wbuf_byte(&w, RP_KEYPB_TAG_TYPE);
    rp_wbuf_byte(&w, (uint8_t)pk->ops->type);
    rp_wbuf_byte(&w, RP_KEYPB_TAG_DATA);
    rp_wbuf_uvarint(&w, pk->raw_len);
    fn(ctx, hdr, w.len);
    fn(ctx, pk->raw, pk->raw_len);
}

int rp_pubkey_marshal(const struct ringp2p_pubkey *pk, uint8_t **out, size_t *len)
{
    CBB cbb;
    if (!CBB_init(&cbb, 64)) return RINGP2P_ENOMEM;
    if (!pk->ops->pub_marshal(pk, &cbb) || !CBB_finish(&cbb, out, len)) {
        CBB_cleanup(&cbb);
        ERR_clear_error();
        return RINGP2P_ECRYPTO;
    }
    return 0;
}

/* ---- public keys -------------------------------------------------------------------------- */

static void pubkey_clear(struct ringp2p_pubkey *pk)
{
    if (pk->ops != NULL) pk->ops->pub_clear(pk);
    free(pk->raw);
    memset(pk, 0, sizeof(*pk));
}

/*
 * Parses raw Data bytes (not retained) into pk, which owns a copy afterwards.
 * The key must encode back to the same bytes: valid but non-canonical forms
 * (an ECDSA point in compressed form, say) are refused.
 */
static int pubkey_init(struct ringp2p_pubkey *pk, const rp_key_ops *ops, const uint8_t *raw,
                       size_t len, ringp2p_errinfo *ei)
{
    memset(pk, 0, sizeof(*pk));
    int r = ops->pub_parse(pk, raw, len, ei);
    if (r < 0) return r;
    pk->ops = ops;
    uint8_t *enc = NULL;
    size_t enc_len = 0;
    if ((r = rp_pubkey_marshal(pk, &enc, &enc_len)) < 0) {
        pubkey_clear(pk);
        return rp_err(ei, r, "cannot encode the %s public key", ops->pb_name);
    }
    if (enc_len != len || memcmp(enc, raw, len) != 0) {
        OPENSSL_free(enc);
        pubkey_clear(pk);
        return rp_err(ei, RINGP2P_EKEY,
                      "%s public key is valid but not in its canonical encoding (%zu bytes; "
                      "canonical is %zu): the spec requires a deterministic encoding",
                      ops->pb_name, len, enc_len);
    }
    pk->raw = malloc(len > 0 ? len : 1);
    if (pk->raw == NULL) {
        OPENSSL_free(enc);
        pubkey_clear(pk);
        return rp_err(ei, RINGP2P_ENOMEM, NULL);
    }
    memcpy(pk->raw, enc, len);
    pk->raw_len = len;
    OPENSSL_free(enc);
    return 0;
}

RINGP2P_API int ringp2p_pubkey_from_protobuf(const uint8_t *buf, size_t len, ringp2p_pubkey **out,
                                             ringp2p_errinfo *ei)
{
    uint64_t type;
    const uint8_t *data;
    size_t data_len;
    int r = rp_keypb_decode(buf, len, "PublicKey", &type, &data, &data_len, ei);
    if (r < 0) return r;
    ringp2p_pubkey *pk = calloc(1, sizeof(*pk));
    if (pk == NULL) return rp_err(ei, RINGP2P_ENOMEM, NULL);
    r = pubkey_init(pk, rp_key_ops_of(type), data, data_len, ei);
    if (r < 0) {
        free(pk);
        return r;
    }
    *out = pk;
    return 0;
}

RINGP2P_API ssize_t ringp2p_pubkey_to_protobuf(const ringp2p_pubkey *key, uint8_t *dst, size_t cap)
{
    Rp__PublicKey m = RP__PUBLIC_KEY__INIT;
    m.type = (Rp__KeyType)key->ops->type;
    m.data.data = key->raw;
    m.data.len = key->raw_len;
    size_t n = rp__public_key__get_packed_size(&m);
    if (n > cap) return RINGP2P_ENOBUF;
    rp__public_key__pack(&m, dst);
    return (ssize_t)n;
}

RINGP2P_API int ringp2p_pubkey_verify(const ringp2p_pubkey *key, const uint8_t *msg, size_t len,
                                      const uint8_t *sig, size_t siglen)
{
    int r = key->ops->verify(key, msg, len, sig, siglen);
    ERR_clear_error();
    return r;
}

RINGP2P_API ringp2p_key_type ringp2p_pubkey_type(const ringp2p_pubkey *key)
{
    return key->ops->type;
}

RINGP2P_API int ringp2p_pubkey_dup(const ringp2p_pubkey *key, ringp2p_pubkey **out)
{
    ringp2p_pubkey *pk = calloc(1, sizeof(*pk));
    if (pk == NULL) return RINGP2P_ENOMEM;
    int r = pubkey_init(pk, key->ops, key->raw, key->raw_len, NULL);
    if (r < 0) {
        free(pk);
        return r;
    }
    *out = pk;
    return 0;
}

RINGP2P_API bool ringp2p_pubkey_equal(const ringp2p_pubkey *a, const ringp2p_pubkey *b)
{
    return a->ops == b->ops && a->raw_len == b->raw_len && memcmp(a->raw, b->raw, a->raw_len) == 0;
}

RINGP2P_API void ringp2p_pubkey_free(ringp2p_pubkey *key)
{
    if (key == NULL) return;
    pubkey_clear(key);
    free(key);
}

/* ---- private keys ------------------------------------------------------------------------- */

static void privkey_destroy(ringp2p_privkey *sk, const rp_key_ops *ops)
{
    pubkey_clear(&sk->pub);
    ops->priv_clear(sk);
    OPENSSL_cleanse(sk, sizeof(*sk));
    free(sk);
}

/* Derives sk->pub from the private half the backend just filled in. */
static int privkey_derive_public(ringp2p_privkey *sk, const rp_key_ops *ops, ringp2p_errinfo *ei)
{
    CBB cbb;
    uint8_t *der = NULL;
    size_t der_len = 0;
    if (!CBB_init(&cbb, 128)) return rp_err(ei, RINGP2P_ENOMEM, NULL);
    if (!ops->pub_marshal_from_priv(sk, &cbb) || !CBB_finish(&cbb, &der, &der_len)) {
        CBB_cleanup(&cbb);
        ERR_clear_error();
        return rp_err(ei, RINGP2P_ECRYPTO, "cannot encode the %s public key", ops->pb_name);
    }
    int r = pubkey_init(&sk->pub, ops, der, der_len, ei);
    OPENSSL_free(der);
    return r;
}

RINGP2P_API int ringp2p_privkey_generate(ringp2p_key_type type, ringp2p_privkey **out)
{
    const rp_key_ops *ops = rp_key_ops_of((uint64_t)type);
    if (ops == NULL) return RINGP2P_EKEYTYPE;
    ringp2p_privkey *sk = calloc(1, sizeof(*sk));
    if (sk == NULL) return RINGP2P_ENOMEM;
    int r = ops->priv_generate(sk);
    if (r == 0) r = privkey_derive_public(sk, ops, NULL);
    ERR_clear_error();
    if (r < 0) {
        privkey_destroy(sk, ops);
        return r;
    }
    *out = sk;
    return 0;
}

RINGP2P_API int ringp2p_privkey_from_protobuf(const uint8_t *buf, size_t len, ringp2p_privkey **out,
                                              ringp2p_errinfo *ei)
{
    uint64_t type;
    const uint8_t *data;
    size_t data_len;
    int r = rp_keypb_decode(buf, len, "PrivateKey", &type, &data, &data_len, ei);
    if (r < 0) return r;
    const rp_key_ops *ops = rp_key_ops_of(type);
    ringp2p_privkey *sk = calloc(1, sizeof(*sk));
    if (sk == NULL) return rp_err(ei, RINGP2P_ENOMEM, NULL);
    r = ops->priv_parse(sk, data, data_len, ei);
    if (r == 0) r = privkey_derive_public(sk, ops, ei);
    ERR_clear_error();
    if (r < 0) {
        privkey_destroy(sk, ops);
        return r;
    }
    *out = sk;
    return 0;
}

RINGP2P_API ssize_t ringp2p_privkey_to_protobuf(const ringp2p_privkey *key, uint8_t *dst,
                                                size_t cap)
{
    const rp_key_ops *ops = key->pub.ops;
    CBB cbb;
    uint8_t *der = NULL;
    size_t der_len = 0;
    if (!CBB_init(&cbb, 256)) return RINGP2P_ENOMEM;
    if (!ops->priv_marshal(key, &cbb) || !CBB_finish(&cbb, &der, &der_len)) {
        /* CBB_cleanup frees through OPENSSL_free, which wipes the buffer. */
        CBB_cleanup(&cbb);
        ERR_clear_error();
        return RINGP2P_ECRYPTO;
    }
    Rp__PrivateKey m = RP__PRIVATE_KEY__INIT;
    m.type = (Rp__KeyType)ops->type;
    m.data.data = der;
    m.data.len = der_len;
    size_t n = rp__private_key__get_packed_size(&m);
    ssize_t r = RINGP2P_ENOBUF;
    if (n <= cap) {
        rp__private_key__pack(&m, dst);
        r = (ssize_t)n;
    }
    OPENSSL_cleanse(der, der_len);
    OPENSSL_free(der);
    return r;
}

RINGP2P_API void ringp2p_privkey_free(ringp2p_privkey *key)
{
    if (key == NULL) return;
    privkey_destroy(key, key->pub.ops);
}

RINGP2P_API ringp2p_key_type ringp2p_privkey_type(const ringp2p_privkey *key)
{
    return key->pub.ops->type;
}

RINGP2P_API const ringp2p_pubkey *ringp2p_privkey_public(const ringp2p_privkey *key)
{
    return &key->pub;
}

RINGP2P_API ssize_t ringp2p_privkey_sign(const ringp2p_privkey *key, const uint8_t *msg, size_t len,
                                         uint8_t *sig, size_t cap)
{
    ssize_t r = key->pub.ops->sign(key, msg, len, sig, cap);
    ERR_clear_error();
    return r;
}
