/* Keys: spec and cross-implementation vectors, signatures, protobuf strictness, key files. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crypto/key.h"
#include "key_vectors.h"
#include "proto/keys.pb-c.h"
#include "ringp2p/key.h"

typedef struct blob {
    uint8_t b[RINGP2P_KEY_PROTOBUF_MAX + 64];
    size_t n;
} blob;

static void blob_hex(blob *x, const char *hex)
{
    x->n = unhex(hex, x->b, sizeof(x->b));
}

/* A protobuf key envelope around raw Data bytes given in hex. */
static void blob_wrap(blob *x, unsigned type, const char *data_hex)
{
    uint8_t data[RINGP2P_KEY_PROTOBUF_MAX];
    size_t n = unhex(data_hex, data, sizeof(data));
    size_t i = 0;
    x->b[i++] = 0x08;
    x->b[i++] = (uint8_t)type;
    x->b[i++] = 0x12;
    size_t v = n;
    while (v >= 0x80) {
        x->b[i++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    x->b[i++] = (uint8_t)v;
    memcpy(x->b + i, data, n);
    x->n = i + n;
}

static ringp2p_privkey *priv_from(const blob *x)
{
    ringp2p_privkey *k = NULL;
    ringp2p_errinfo ei = { 0 };
    int r = ringp2p_privkey_from_protobuf(x->b, x->n, &k, &ei);
    cr_assert_eq(r, 0, "private key decode: %d %s", r, ei.msg);
    return k;
}

static ringp2p_pubkey *pub_hex(const char *hex)
{
    blob x;
    blob_hex(&x, hex);
    ringp2p_pubkey *k = NULL;
    ringp2p_errinfo ei = { 0 };
    int r = ringp2p_pubkey_from_protobuf(x.b, x.n, &k, &ei);
    cr_assert_eq(r, 0, "public key decode: %d %s", r, ei.msg);
    return k;
}

static void assert_pub_encodes_to(const ringp2p_pubkey *pk, const char *hex)
{
    blob want;
    uint8_t got[RINGP2P_KEY_PROTOBUF_MAX];
    blob_hex(&want, hex);
    ssize_t n = ringp2p_pubkey_to_protobuf(pk, got, sizeof(got));
    cr_assert_eq(n, (ssize_t)want.n, "public key encodes to %zd bytes, want %zu", n, want.n);
    cr_assert_arr_eq(got, want.b, want.n, "public key bytes differ");
}

static void assert_priv_encodes_to(const ringp2p_privkey *k, const uint8_t *want, size_t len)
{
    uint8_t got[RINGP2P_KEY_PROTOBUF_MAX];
    ssize_t n = ringp2p_privkey_to_protobuf(k, got, sizeof(got));
    cr_assert_eq(n, (ssize_t)len, "private key encodes to %zd bytes, want %zu", n, len);
    cr_assert_arr_eq(got, want, len, "private key bytes differ");
}

static int verify_str(const ringp2p_pubkey *pk, const char *msg, const uint8_t *sig, size_t n)
{
    return ringp2p_pubkey_verify(pk, (const uint8_t *)msg, strlen(msg), sig, n);
}

Test(key, type_names)
{
    static const struct {
        ringp2p_key_type type;
        const char *name;
    } names[] = { { RINGP2P_KEY_RSA, "rsa" },
                  { RINGP2P_KEY_ED25519, "ed25519" },
                  { RINGP2P_KEY_SECP256K1, "secp256k1" },
                  { RINGP2P_KEY_ECDSA, "ecdsa" } };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        cr_assert_str_eq(ringp2p_key_type_name(names[i].type), names[i].name);
        ringp2p_key_type t = (ringp2p_key_type)99;
        cr_assert_eq(ringp2p_key_type_parse(names[i].name, &t), 0);
        cr_assert_eq(t, names[i].type);
    }
    ringp2p_key_type t;
    cr_assert_eq(ringp2p_key_type_parse("Ed25519", &t), 0);
    cr_assert_eq(t, RINGP2P_KEY_ED25519);
    cr_assert_eq(ringp2p_key_type_parse("ECDSA", &t), 0);
    cr_assert_eq(t, RINGP2P_KEY_ECDSA);
    cr_assert_eq(ringp2p_key_type_parse("dsa", &t), RINGP2P_EKEYTYPE);
    cr_assert_eq(ringp2p_key_type_parse("", &t), RINGP2P_EKEYTYPE);
    cr_assert_null(ringp2p_key_type_name((ringp2p_key_type)4));
    ringp2p_privkey *k;
    cr_assert_eq(ringp2p_privkey_generate((ringp2p_key_type)4, &k), RINGP2P_EKEYTYPE);
}

/* peer-ids.md "Test vectors": decode, re-encode byte for byte, derive the public key. */
Test(key, spec_vectors_byte_exact)
{
    static const struct {
        ringp2p_key_type type;
        const char *priv, *pub;
    } v[] = {
        { RINGP2P_KEY_ECDSA, SPEC_ECDSA_PRIVATE_KEY, SPEC_ECDSA_PUBLIC_KEY },
        { RINGP2P_KEY_ED25519, SPEC_ED25519_PRIVATE_KEY, SPEC_ED25519_PUBLIC_KEY },
        { RINGP2P_KEY_SECP256K1, SPEC_SECP256K1_PRIVATE_KEY, SPEC_SECP256K1_PUBLIC_KEY },
        { RINGP2P_KEY_RSA, SPEC_RSA_PRIVATE_KEY, SPEC_RSA_PUBLIC_KEY },
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        blob privb;
        blob_hex(&privb, v[i].priv);
        ringp2p_privkey *k = priv_from(&privb);
        cr_assert_eq(ringp2p_privkey_type(k), v[i].type);
        assert_priv_encodes_to(k, privb.b, privb.n);
        assert_pub_encodes_to(ringp2p_privkey_public(k), v[i].pub);

        ringp2p_pubkey *pk = pub_hex(v[i].pub);
        cr_assert_eq(ringp2p_pubkey_type(pk), v[i].type);
        assert_pub_encodes_to(pk, v[i].pub);
        cr_assert(ringp2p_pubkey_equal(pk, ringp2p_privkey_public(k)));

        uint8_t sig[RINGP2P_SIGNATURE_MAX];
        ssize_t n = ringp2p_privkey_sign(k, (const uint8_t *)"spec", 4, sig, sizeof(sig));
        cr_assert_gt(n, 0);
        cr_assert_eq(ringp2p_pubkey_verify(pk, (const uint8_t *)"spec", 4, sig, (size_t)n), 0);
        ringp2p_pubkey_free(pk);
        ringp2p_privkey_free(k);
    }
}

/*
 * Keys and signatures made by go-libp2p (and Python/OpenSSL): we verify theirs,
 * and where the scheme is deterministic (RSA PKCS#1 v1.5, RFC 6979 secp256k1,
 * Ed25519) our signature must be the same bytes.
 */
Test(key, foreign_signatures)
{
    static const struct {
        const char *priv, *pub, *sig, *msg, *msg_hex;
        bool deterministic;
    } v[] = {
        { GO_0_PRIV, GO_0_PUB, GO_0_SIG, GO_FIXTURE_MSG, NULL, true },
        { GO_2_PRIV, GO_2_PUB, GO_2_SIG, GO_FIXTURE_MSG, NULL, true },
        { GO_3_PRIV, GO_3_PUB, GO_3_SIG, GO_FIXTURE_MSG, NULL, false },
        { JS_SECP_PRIV, JS_SECP_PUB, JS_SECP_SIG, JS_SECP_MSG, NULL, true },
        { JS_ED_VERIFY_PRIVATEKEY, JS_ED_VERIFY_PUBLICKEY, JS_ED_VERIFY_SIGNATURE, NULL,
          JS_ED_VERIFY_DATA, true },
        { PY_P384_PRIV, PY_P384_PUB, PY_P384_SIG, PY_MSG, NULL, false },
        { PY_P521_PRIV, PY_P521_PUB, PY_P521_SIG, PY_MSG, NULL, false },
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        blob privb, sig, msg;
        blob_hex(&privb, v[i].priv);
        blob_hex(&sig, v[i].sig);
        if (v[i].msg_hex != NULL) {
            blob_hex(&msg, v[i].msg_hex);
        } else {
            msg.n = strlen(v[i].msg);
            memcpy(msg.b, v[i].msg, msg.n);
        }
        ringp2p_privkey *k = priv_from(&privb);
        assert_priv_encodes_to(k, privb.b, privb.n);
        assert_pub_encodes_to(ringp2p_privkey_public(k), v[i].pub);
        ringp2p_pubkey *pk = pub_hex(v[i].pub);
        assert_pub_encodes_to(pk, v[i].pub);

        cr_assert_eq(ringp2p_pubkey_verify(pk, msg.b, msg.n, sig.b, sig.n), 0, "vector %zu", i);
        msg.b[0] ^= 1;
        cr_assert_eq(ringp2p_pubkey_verify(pk, msg.b, msg.n, sig.b, sig.n), RINGP2P_ESIGNATURE);
        msg.b[0] ^= 1;

        uint8_t mine[RINGP2P_SIGNATURE_MAX];
        ssize_t n = ringp2p_privkey_sign(k, msg.b, msg.n, mine, sizeof(mine));
        cr_assert_gt(n, 0);
        cr_assert_eq(ringp2p_pubkey_verify(pk, msg.b, msg.n, mine, (size_t)n), 0);
        if (v[i].deterministic) {
            cr_assert_eq((size_t)n, sig.n, "vector %zu: signature length", i);
            cr_assert_arr_eq(mine, sig.b, sig.n, "vector %zu: deterministic signature", i);
        }
        ringp2p_pubkey_free(pk);
        ringp2p_privkey_free(k);
    }
}

Test(key, rsa_3072_openssl_signature)
{
    blob sig;
    blob_hex(&sig, PY_RSA3072_SIG);
    ringp2p_pubkey *pk = pub_hex(PY_RSA3072_PUB);
    assert_pub_encodes_to(pk, PY_RSA3072_PUB);
    cr_assert_eq(verify_str(pk, PY_MSG, sig.b, sig.n), 0);
    sig.b[sig.n - 1] ^= 0x80;
    cr_assert_eq(verify_str(pk, PY_MSG, sig.b, sig.n), RINGP2P_ESIGNATURE);
    ringp2p_pubkey_free(pk);
}

/* go-libp2p accepts high-S secp256k1 signatures (decred does not check); so do we. */
Test(key, secp256k1_high_s_accepted)
{
    blob low, high;
    blob_hex(&low, GO_2_SIG);
    blob_hex(&high, GO_2_SIG_HIGH_S);
    ringp2p_pubkey *pk = pub_hex(GO_2_PUB);
    cr_assert_eq(verify_str(pk, GO_FIXTURE_MSG, low.b, low.n), 0);
    cr_assert_eq(verify_str(pk, GO_FIXTURE_MSG, high.b, high.n), 0);
    cr_assert_eq(verify_str(pk, "Libp2p is the _best_?", high.b, high.n), RINGP2P_ESIGNATURE);
    ringp2p_pubkey_free(pk);
}

/* peer-ids.md "Ed25519": the legacy seed||public||public form, from go-libp2p. */
Test(key, ed25519_legacy_96_byte_private_key)
{
    blob privb, sig, data;
    blob_hex(&privb, JS_ED_REDUNDANTPUBKEY_PRIVATEKEY);
    blob_hex(&sig, JS_ED_REDUNDANTPUBKEY_SIGNATURE);
    blob_hex(&data, JS_ED_REDUNDANTPUBKEY_DATA);
    cr_assert_eq(privb.n, 4 + 96);
    ringp2p_privkey *k = priv_from(&privb);
    assert_pub_encodes_to(ringp2p_privkey_public(k), JS_ED_REDUNDANTPUBKEY_PUBLICKEY);
    /* Re-encoded in the preferred 64-byte form: 08 01 12 40 seed||public. */
    uint8_t want[4 + 64] = { 0x08, 0x01, 0x12, 0x40 };
    memcpy(want + 4, privb.b + 4, 64);
    assert_priv_encodes_to(k, want, sizeof(want));
    uint8_t mine[64];
    cr_assert_eq(ringp2p_privkey_sign(k, data.b, data.n, mine, sizeof(mine)), 64);
    cr_assert_arr_eq(mine, sig.b, 64);
    ringp2p_privkey_free(k);

    /* The two public copies must agree. */
    privb.b[privb.n - 1] ^= 1;
    ringp2p_errinfo ei = { 0 };
    ringp2p_privkey *bad = NULL;
    cr_assert_eq(ringp2p_privkey_from_protobuf(privb.b, privb.n, &bad, &ei), RINGP2P_EKEY);
    cr_assert(strstr(ei.msg, "differ") != NULL, "%s", ei.msg);
    cr_assert_null(bad);
}

/* A private key whose stored public half is not its own is refused (go/js do not check). */
Test(key, private_key_with_foreign_public_half)
{
    ringp2p_errinfo ei = { 0 };
    ringp2p_privkey *k = NULL;
    blob ed;
    blob_hex(&ed, JS_ED_VERIFY_PRIVATEKEY);
    ed.b[ed.n - 1] ^= 1;
    cr_assert_eq(ringp2p_privkey_from_protobuf(ed.b, ed.n, &k, &ei), RINGP2P_EKEY);
    cr_assert(strstr(ei.msg, "seed derives") != NULL, "%s", ei.msg);

    /* The spec's ECDSA key with go fixture 3's public point (same layout, other key). */
    blob ec, other;
    blob_hex(&ec, SPEC_ECDSA_PRIVATE_KEY);
    blob_hex(&other, GO_3_PUB);
    memcpy(ec.b + ec.n - 64, other.b + other.n - 64, 64);
    cr_assert_eq(ringp2p_privkey_from_protobuf(ec.b, ec.n, &k, &ei), RINGP2P_EKEY);
    cr_assert(strstr(ei.msg, "ECPrivateKey") != NULL, "%s", ei.msg);
}

/* An ECPrivateKey may omit its public key (RFC 5915); we derive it and write it out. */
Test(key, ecdsa_private_key_without_public_key)
{
    blob full, bare;
    blob_hex(&full, SPEC_ECDSA_PRIVATE_KEY);
    /* 08 03 12 len | 30 len 020101 0420<d> a00a<oid> [a144 <point>]: drop the last part. */
    size_t der = 4, body = 2 + 3 + 34 + 12;
    cr_assert_eq(full.b[der], 0x30);
    memcpy(bare.b, full.b, der + body);
    bare.b[3] = (uint8_t)body;
    bare.b[der + 1] = (uint8_t)(body - 2);
    bare.n = der + body;
    ringp2p_privkey *k = priv_from(&bare);
    assert_priv_encodes_to(k, full.b, full.n);
    assert_pub_encodes_to(ringp2p_privkey_public(k), SPEC_ECDSA_PUBLIC_KEY);
    ringp2p_privkey_free(k);
}

/* Envelope errors, for both messages (all fields valid except what is named). */
Test(key, malformed_protobuf)
{
#define ED_DATA "1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
    static const struct {
        const char *hex;
        int code;
        const char *needle;
    } v[] = {
        { "", RINGP2P_EPROTOBUF, "field Type (1) missing" },
        { "08", RINGP2P_EPROTOBUF, "field Type: truncated" },
        { "0801", RINGP2P_EPROTOBUF, "field Data (2) missing" },
        { "080112", RINGP2P_EPROTOBUF, "field Data: truncated" },
        { "08011220" ED_DATA "ff", RINGP2P_EPROTOBUF, "malformed or non-minimal field tag" },
        { "08011221" ED_DATA, RINGP2P_EPROTOBUF, "length 33 but only 32 bytes follow" },
        { "08011220", RINGP2P_EPROTOBUF, "length 32 but only 0 bytes follow" },
        { "08041220" ED_DATA, RINGP2P_EKEYTYPE, "key type 4 is not in the KeyType enum" },
        { "087f1220" ED_DATA, RINGP2P_EKEYTYPE, "key type 127" },
        { "08ffffffffffffffffff011220" ED_DATA, RINGP2P_EPROTOBUF, "field Type" },
        { "1220" ED_DATA "0801", RINGP2P_EPROTOBUF, "field Data (2) found where field Type" },
        { "080108011220" ED_DATA, RINGP2P_EPROTOBUF, "field Type (1) repeated" },
        { "08011220" ED_DATA "0801", RINGP2P_EPROTOBUF, "field Type (1) repeated" },
        { "08011220" ED_DATA "1220" ED_DATA, RINGP2P_EPROTOBUF, "field Data (2) repeated" },
        { "08011220" ED_DATA "1a00", RINGP2P_EPROTOBUF, "unknown field 3" },
        { "080118001220" ED_DATA, RINGP2P_EPROTOBUF, "unknown field 3 (wire type 0)" },
        { "08011a20" ED_DATA, RINGP2P_EPROTOBUF, "unknown field 3" },
        { "0a01011220" ED_DATA, RINGP2P_EPROTOBUF, "field Type (1) has wire type 2" },
        { "08011020", RINGP2P_EPROTOBUF, "field Data (2) has wire type 0" },
        { "0881001220" ED_DATA, RINGP2P_EPROTOBUF, "field Type: truncated, non-minimal" },
        { "080112a000" ED_DATA, RINGP2P_EPROTOBUF, "non-minimal length" },
        { "88001220" ED_DATA, RINGP2P_EPROTOBUF, "malformed or non-minimal field tag at byte 0" },
        { "88011220" ED_DATA, RINGP2P_EPROTOBUF, "unknown field 17" },
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        blob x;
        blob_hex(&x, v[i].hex);
        ringp2p_errinfo ei = { 0 };
        ringp2p_pubkey *pk = NULL;
        int r = ringp2p_pubkey_from_protobuf(x.b, x.n, &pk, &ei);
        cr_assert_eq(r, v[i].code, "case %zu (%s): got %d %s", i, v[i].hex, r, ei.msg);
        cr_assert(strstr(ei.msg, v[i].needle) != NULL, "case %zu: message '%s'", i, ei.msg);
        cr_assert(strncmp(ei.msg, "PublicKey: ", 11) == 0, "%s", ei.msg);
        cr_assert_null(pk);

        ringp2p_privkey *k = NULL;
        memset(&ei, 0, sizeof(ei));
        r = ringp2p_privkey_from_protobuf(x.b, x.n, &k, &ei);
        cr_assert_eq(r, v[i].code, "case %zu (private): got %d %s", i, r, ei.msg);
        cr_assert(strstr(ei.msg, v[i].needle) != NULL, "case %zu: message '%s'", i, ei.msg);
        cr_assert(strncmp(ei.msg, "PrivateKey: ", 12) == 0, "%s", ei.msg);
        cr_assert_null(k);
    }
#undef ED_DATA
}

Test(key, protobuf_size_limit)
{
    static uint8_t big[RINGP2P_KEY_PROTOBUF_MAX + 1];
    ringp2p_errinfo ei = { 0 };
    ringp2p_pubkey *pk;
    ringp2p_privkey *k;
    cr_assert_eq(ringp2p_pubkey_from_protobuf(big, sizeof(big), &pk, &ei), RINGP2P_ELIMIT);
    cr_assert(strstr(ei.msg, "8193 bytes") != NULL, "%s", ei.msg);
    cr_assert_eq(ringp2p_privkey_from_protobuf(big, sizeof(big), &k, &ei), RINGP2P_ELIMIT);
    /* One byte less is judged on its content (zero bytes: field 0 is not a field). */
    cr_assert_eq(ringp2p_pubkey_from_protobuf(big, sizeof(big) - 1, &pk, &ei), RINGP2P_EPROTOBUF);
}

/* Well-formed envelopes whose Data is not a valid key of their type. */
Test(key, bad_key_data)
{
#define X32    "1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
#define ZERO32 "0000000000000000000000000000000000000000000000000000000000000000"
/* The SubjectPublicKeyInfo inside SPEC_ECDSA_PUBLIC_KEY. */
#define SPEC_EC_SPKI                                                                             \
    "3059301306072a8648ce3d020106082a8648ce3d03010703420004de3d300fa36ae0e8f5d530899d83abab44ab" \
    "f3161f162a4bc901d8e6ecda020e8b6d5f8da30525e71d6851510c098e5c47c646a597fb4dcec034e9f77c409e62"
    static const struct {
        bool priv;
        const char *pb;       /* a whole protobuf (its type replaced by `retype` if >= 0), or */
        int retype;           /*   -1 */
        unsigned type;        /* a type and */
        const char *data_hex; /* the Data bytes */
        const char *needle;
    } v[] = {
        { false, NULL, -1, 1, "00", "Ed25519 public key must be 32 bytes, got 1" },
        { false, NULL, -1, 1, "", "Ed25519 public key must be 32 bytes, got 0" },
        { false, NULL, -1, 1, X32 "00", "Ed25519 public key must be 32 bytes, got 33" },
        { true, NULL, -1, 1, "0102", "Ed25519 private key must be 64 bytes" },
        { true, NULL, -1, 1, X32 X32 "00", "got 65" },
        { false, NULL, -1, 2, "05" X32, "starts with 0x05" },
        { false, NULL, -1, 2, "02" X32 "00", "compressed form, got 34 bytes" },
        { false, GO_2_PUB_UNCOMPRESSED, -1, 0, NULL, "33-byte compressed form, got 65" },
        { false, SECP_OFF_CURVE_PUB, -1, 0, NULL, "not a point on the curve" },
        { true, SECP_PRIV_ORDER, -1, 0, NULL, "zero or not below the group order" },
        { true, NULL, -1, 2, ZERO32, "zero or not below the group order" },
        { true, NULL, -1, 2, "01", "secp256k1 private key must be 32 bytes, got 1" },
        { false, P256_COMPRESSED_PUB, -1, 0, NULL,
          "ECDSA public key is valid but not in its canonical encoding" },
        { false, PY_P224_PUB, -1, 0, NULL, "curve P-224" },
        { true, PY_P224_PRIV, -1, 0, NULL, "curve P-224" },
        { false, NULL, -1, 3, "3003020100", "not a DER SubjectPublicKeyInfo" },
        { false, GO_0_PUB, 3, 0, NULL, "ECDSA public key holds a key of another algorithm" },
        { false, NULL, -1, 3, SPEC_EC_SPKI "00", "1 bytes after the DER structure" },
        { true, NULL, -1, 3, "300602010104010a", "not a valid DER ECPrivateKey" },
        { true, GO_3_PUB, 3, 0, NULL, "not a valid DER ECPrivateKey" },
        { false, SPEC_ECDSA_PUBLIC_KEY, 0, 0, NULL, "RSA public key holds a key of another" },
        { false, PY_RSA1024_PUB, -1, 0, NULL, "has 1024 bits; accepted: 2048 to 8192" },
        { true, PY_RSA1024_PRIV, -1, 0, NULL, "has 1024 bits" },
        { false, NULL, -1, 0, "300d06092a864886f70d0101010500",
          "not a valid DER SubjectPublicKeyInfo" },
        { true, NULL, -1, 0, "3003020100", "not a valid, consistent DER RSAPrivateKey" },
        { true, GO_0_PUB, -1, 0, NULL, "not a valid, consistent DER RSAPrivateKey" },
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        blob x;
        if (v[i].pb != NULL) {
            blob_hex(&x, v[i].pb);
            if (v[i].retype >= 0) x.b[1] = (uint8_t)v[i].retype;
        } else {
            blob_wrap(&x, v[i].type, v[i].data_hex);
        }
        ringp2p_errinfo ei = { 0 };
        int r;
        if (v[i].priv) {
            ringp2p_privkey *k = NULL;
            r = ringp2p_privkey_from_protobuf(x.b, x.n, &k, &ei);
            cr_assert_null(k);
        } else {
            ringp2p_pubkey *pk = NULL;
            r = ringp2p_pubkey_from_protobuf(x.b, x.n, &pk, &ei);
            cr_assert_null(pk);
        }
        cr_assert_eq(r, RINGP2P_EKEY, "case %zu: got %d %s", i, r, ei.msg);
        cr_assert(strstr(ei.msg, v[i].needle) != NULL, "case %zu: message '%s'", i, ei.msg);
    }
#undef X32
#undef ZERO32
#undef SPEC_EC_SPKI
}

/* Keys we make: sign, verify, and every kind of tampering fails. */
Test(key, generated_sign_verify)
{
    static const ringp2p_key_type types[] = { RINGP2P_KEY_ED25519, RINGP2P_KEY_SECP256K1,
                                              RINGP2P_KEY_ECDSA, RINGP2P_KEY_RSA };
    ringp2p_privkey *keys[4];
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(ringp2p_privkey_generate(types[i], &keys[i]), 0);
        cr_assert_eq(ringp2p_privkey_type(keys[i]), types[i]);
    }
    static const uint8_t msg[] = "a message from ringp2p";
    const size_t mlen = sizeof(msg) - 1;
    for (size_t i = 0; i < 4; i++) {
        const ringp2p_pubkey *pk = ringp2p_privkey_public(keys[i]);
        uint8_t sig[RINGP2P_SIGNATURE_MAX + 1], m[sizeof(msg)];
        ssize_t n = ringp2p_privkey_sign(keys[i], msg, mlen, sig, RINGP2P_SIGNATURE_MAX);
        cr_assert_gt(n, 0, "type %d", types[i]);
        size_t sl = (size_t)n;
        cr_assert_eq(ringp2p_pubkey_verify(pk, msg, mlen, sig, sl), 0);

        memcpy(m, msg, sizeof(m));
        for (size_t bit = 0; bit < mlen * 8; bit += 7) {
            m[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            cr_assert_eq(ringp2p_pubkey_verify(pk, m, mlen, sig, sl), RINGP2P_ESIGNATURE,
                         "type %d: flipped message bit %zu verified", types[i], bit);
            m[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
        for (size_t bit = 0; bit < sl * 8; bit += 5) {
            sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            cr_assert_eq(ringp2p_pubkey_verify(pk, msg, mlen, sig, sl), RINGP2P_ESIGNATURE,
                         "type %d: flipped signature bit %zu verified", types[i], bit);
            sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
        cr_assert_eq(ringp2p_pubkey_verify(pk, msg, mlen, sig, sl - 1), RINGP2P_ESIGNATURE);
        sig[sl] = 0;
        cr_assert_eq(ringp2p_pubkey_verify(pk, msg, mlen, sig, sl + 1), RINGP2P_ESIGNATURE);
        cr_assert_eq(ringp2p_pubkey_verify(pk, msg, mlen, sig, 0), RINGP2P_ESIGNATURE);
        cr_assert_eq(ringp2p_pubkey_verify(pk, msg, 0, sig, sl), RINGP2P_ESIGNATURE);
        for (size_t j = 0; j < 4; j++) {
            if (j == i) continue;
            cr_assert_eq(ringp2p_pubkey_verify(ringp2p_privkey_public(keys[j]), msg, mlen, sig, sl),
                         RINGP2P_ESIGNATURE, "type %d signature verified by type %d", types[i],
                         types[j]);
        }
        /* A second key of the same type. */
        ringp2p_privkey *other;
        cr_assert_eq(ringp2p_privkey_generate(types[i], &other), 0);
        cr_assert_not(ringp2p_pubkey_equal(pk, ringp2p_privkey_public(other)));
        cr_assert_eq(ringp2p_pubkey_verify(ringp2p_privkey_public(other), msg, mlen, sig, sl),
                     RINGP2P_ESIGNATURE);
        ringp2p_privkey_free(other);

        /* The signature buffer must hold the signature. */
        cr_assert_eq(ringp2p_privkey_sign(keys[i], msg, mlen, sig, 8), RINGP2P_ENOBUF);
    }
    for (size_t i = 0; i < 4; i++) ringp2p_privkey_free(keys[i]);
}

static void collect(void *ctx, const uint8_t *p, size_t n)
{
    blob *x = ctx;
    cr_assert_leq(x->n + n, sizeof(x->b));
    memcpy(x->b + x->n, p, n);
    x->n += n;
}

/* Generated keys survive both protobuf forms byte for byte; both encoders agree. */
Test(key, generated_protobuf_roundtrip)
{
    static const ringp2p_key_type types[] = { RINGP2P_KEY_ED25519, RINGP2P_KEY_SECP256K1,
                                              RINGP2P_KEY_ECDSA, RINGP2P_KEY_RSA };
    for (size_t i = 0; i < 4; i++) {
        ringp2p_privkey *k, *k2;
        cr_assert_eq(ringp2p_privkey_generate(types[i], &k), 0);
        blob a, b;
        ssize_t n = ringp2p_privkey_to_protobuf(k, a.b, sizeof(a.b));
        cr_assert_gt(n, 0);
        a.n = (size_t)n;
        cr_assert_eq(a.b[0], 0x08);
        cr_assert_eq(a.b[1], (uint8_t)types[i]);
        cr_assert_eq(ringp2p_privkey_to_protobuf(k, b.b, a.n - 1), RINGP2P_ENOBUF);
        k2 = priv_from(&a);
        assert_priv_encodes_to(k2, a.b, a.n);
        cr_assert(ringp2p_pubkey_equal(ringp2p_privkey_public(k), ringp2p_privkey_public(k2)));

        const ringp2p_pubkey *pk = ringp2p_privkey_public(k);
        n = ringp2p_pubkey_to_protobuf(pk, b.b, sizeof(b.b));
        cr_assert_gt(n, 0);
        b.n = (size_t)n;
        cr_assert_eq(ringp2p_pubkey_to_protobuf(pk, a.b, b.n - 1), RINGP2P_ENOBUF);
        cr_assert_eq(rp_pubkey_protobuf_len(pk), b.n);
        ringp2p_pubkey *pk2, *dup;
        cr_assert_eq(ringp2p_pubkey_from_protobuf(b.b, b.n, &pk2, NULL), 0);
        cr_assert(ringp2p_pubkey_equal(pk, pk2));
        cr_assert_eq(ringp2p_pubkey_dup(pk2, &dup), 0);
        cr_assert(ringp2p_pubkey_equal(dup, pk));
        cr_assert_eq(ringp2p_pubkey_type(dup), types[i]);

        /* The pieces hashed into peer IDs are the same bytes protobuf-c writes. */
        blob pieces = { .n = 0 };
        rp_pubkey_protobuf_pieces(pk, collect, &pieces);
        cr_assert_eq(pieces.n, b.n);
        cr_assert_arr_eq(pieces.b, b.b, b.n);

        /* protobuf-c's unpack reads what we wrote, with the same fields. */
        Rp__PublicKey *m = rp__public_key__unpack(NULL, b.n, b.b);
        cr_assert_not_null(m);
        cr_assert_eq((int)m->type, (int)types[i]);
        cr_assert_eq(m->data.len, pk->raw_len);
        cr_assert_arr_eq(m->data.data, pk->raw, pk->raw_len);
        rp__public_key__free_unpacked(m, NULL);

        ringp2p_pubkey_free(dup);
        ringp2p_pubkey_free(pk2);
        ringp2p_privkey_free(k2);
        ringp2p_privkey_free(k);
    }
    ringp2p_pubkey_free(NULL);
    ringp2p_privkey_free(NULL);
}

/* ---- key files ---------------------------------------------------------------------------- */

typedef struct tmpdir {
    char path[64];
} tmpdir;

static void tmpdir_make(tmpdir *d)
{
    strcpy(d->path, "/tmp/rp-keyfile-XXXXXX");
    cr_assert_not_null(mkdtemp(d->path));
}

static size_t tmpdir_count(const tmpdir *d)
{
    DIR *dir = opendir(d->path);
    cr_assert_not_null(dir);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(dir);
    return n;
}

static void tmpdir_remove(const tmpdir *d)
{
    DIR *dir = opendir(d->path);
    if (dir == NULL) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof(p), "%s/%s", d->path, e->d_name);
        chmod(p, 0700);
        if (unlink(p) < 0) rmdir(p);
    }
    closedir(dir);
    chmod(d->path, 0700);
    rmdir(d->path);
}

static void write_file(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

static bool same_private_key(const ringp2p_privkey *a, const ringp2p_privkey *b)
{
    blob x, y;
    ssize_t n = ringp2p_privkey_to_protobuf(a, x.b, sizeof(x.b));
    ssize_t m = ringp2p_privkey_to_protobuf(b, y.b, sizeof(y.b));
    return n > 0 && n == m && memcmp(x.b, y.b, (size_t)n) == 0;
}

Test(keyfile, save_load_roundtrip_mode_0600)
{
    static const ringp2p_key_type types[] = { RINGP2P_KEY_ED25519, RINGP2P_KEY_SECP256K1,
                                              RINGP2P_KEY_ECDSA, RINGP2P_KEY_RSA };
    static const mode_t umasks[] = { 0, 022, 0277 };
    tmpdir d;
    tmpdir_make(&d);
    for (size_t i = 0; i < 4; i++) {
        ringp2p_privkey *k, *loaded;
        cr_assert_eq(ringp2p_privkey_generate(types[i], &k), 0);
        char path[128];
        snprintf(path, sizeof(path), "%s/%s.key", d.path, ringp2p_key_type_name(types[i]));
        umask(umasks[i % 3]);
        ringp2p_errinfo ei = { 0 };
        cr_assert_eq(ringp2p_privkey_save(k, path, 0, &ei), 0, "%s", ei.msg);
        struct stat st;
        cr_assert_eq(stat(path, &st), 0);
        cr_assert(S_ISREG(st.st_mode));
        cr_assert_eq(st.st_mode & 07777, 0600, "mode %o with umask %o", st.st_mode & 07777,
                     umasks[i % 3]);
        cr_assert_eq(ringp2p_privkey_load(path, &loaded, &ei), 0, "%s", ei.msg);
        cr_assert(same_private_key(k, loaded));
        cr_assert(ringp2p_pubkey_equal(ringp2p_privkey_public(k), ringp2p_privkey_public(loaded)));

        /* The file is exactly the protobuf PrivateKey. */
        blob want, got;
        want.n = (size_t)ringp2p_privkey_to_protobuf(k, want.b, sizeof(want.b));
        FILE *f = fopen(path, "rb");
        got.n = fread(got.b, 1, sizeof(got.b), f);
        fclose(f);
        cr_assert_eq(got.n, want.n);
        cr_assert_arr_eq(got.b, want.b, want.n);
        ringp2p_privkey_free(loaded);
        ringp2p_privkey_free(k);
    }
    cr_assert_eq(tmpdir_count(&d), 4, "temporary files left behind");
    tmpdir_remove(&d);
}

Test(keyfile, refuses_to_replace_without_force)
{
    tmpdir d;
    tmpdir_make(&d);
    char path[128];
    snprintf(path, sizeof(path), "%s/id.key", d.path);
    ringp2p_privkey *a, *b, *loaded;
    cr_assert_eq(ringp2p_privkey_generate(RINGP2P_KEY_ED25519, &a), 0);
    cr_assert_eq(ringp2p_privkey_generate(RINGP2P_KEY_ED25519, &b), 0);
    ringp2p_errinfo ei = { 0 };
    cr_assert_eq(ringp2p_privkey_save(a, path, 0, &ei), 0);
    cr_assert_eq(ringp2p_privkey_save(b, path, 0, &ei), RINGP2P_EEXIST);
    cr_assert(strstr(ei.msg, path) != NULL, "%s", ei.msg);
    cr_assert_eq(tmpdir_count(&d), 1, "temporary file left behind");
    cr_assert_eq(ringp2p_privkey_load(path, &loaded, NULL), 0);
    cr_assert(same_private_key(a, loaded), "existing key was replaced");
    ringp2p_privkey_free(loaded);

    cr_assert_eq(ringp2p_privkey_save(b, path, RINGP2P_SAVE_FORCE, &ei), 0, "%s", ei.msg);
    cr_assert_eq(ringp2p_privkey_load(path, &loaded, NULL), 0);
    cr_assert(same_private_key(b, loaded), "forced save did not replace the key");
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0600);
    cr_assert_eq(tmpdir_count(&d), 1);
    cr_assert_eq(ringp2p_privkey_save(b, path, 2, &ei), RINGP2P_EINVAL);
    ringp2p_privkey_free(loaded);
    ringp2p_privkey_free(a);
    ringp2p_privkey_free(b);
    tmpdir_remove(&d);
}

Test(keyfile, missing_file_and_directory)
{
    tmpdir d;
    tmpdir_make(&d);
    char path[128];
    ringp2p_errinfo ei = { 0 };
    ringp2p_privkey *k;
    snprintf(path, sizeof(path), "%s/absent.key", d.path);
    cr_assert_eq(ringp2p_privkey_load(path, &k, &ei), RINGP2P_ENOENT);
    cr_assert(strstr(ei.msg, path) != NULL && strstr(ei.msg, "No such file") != NULL, "%s", ei.msg);
    cr_assert_eq(ringp2p_privkey_generate(RINGP2P_KEY_ED25519, &k), 0);
    snprintf(path, sizeof(path), "%s/no/such/dir.key", d.path);
    cr_assert_eq(ringp2p_privkey_save(k, path, 0, &ei), RINGP2P_ENOENT, "%s", ei.msg);
    ringp2p_privkey_free(k);
    cr_assert_eq(tmpdir_count(&d), 0);
    tmpdir_remove(&d);
}

Test(keyfile, rejects_bad_files)
{
    tmpdir d;
    tmpdir_make(&d);
    char path[128];
    ringp2p_errinfo ei = { 0 };
    ringp2p_privkey *k;
    static uint8_t big[RINGP2P_KEY_PROTOBUF_MAX + 1];

    snprintf(path, sizeof(path), "%s/big.key", d.path);
    write_file(path, big, sizeof(big));
    cr_assert_eq(ringp2p_privkey_load(path, &k, &ei), RINGP2P_ELIMIT);
    cr_assert(strstr(ei.msg, path) != NULL && strstr(ei.msg, "8193 bytes") != NULL, "%s", ei.msg);

    snprintf(path, sizeof(path), "%s/garbage.key", d.path);
    write_file(path, (const uint8_t *)"-----BEGIN PRIVATE KEY-----\n", 28);
    cr_assert_eq(ringp2p_privkey_load(path, &k, &ei), RINGP2P_EPROTOBUF);
    cr_assert(strstr(ei.msg, path) != NULL && strstr(ei.msg, "PrivateKey") != NULL, "%s", ei.msg);

    snprintf(path, sizeof(path), "%s/empty.key", d.path);
    write_file(path, big, 0);
    cr_assert_eq(ringp2p_privkey_load(path, &k, &ei), RINGP2P_EPROTOBUF);
    cr_assert(strstr(ei.msg, "empty") != NULL, "%s", ei.msg);

    /* A public key is not a key file. */
    blob pub;
    blob_hex(&pub, SPEC_ED25519_PUBLIC_KEY);
    snprintf(path, sizeof(path), "%s/public.key", d.path);
    write_file(path, pub.b, pub.n);
    cr_assert_eq(ringp2p_privkey_load(path, &k, &ei), RINGP2P_EKEY);
    cr_assert(strstr(ei.msg, "Ed25519 private key must be") != NULL, "%s", ei.msg);

    cr_assert_eq(ringp2p_privkey_load(d.path, &k, &ei), RINGP2P_EIO);
    cr_assert(strstr(ei.msg, "not a regular file") != NULL, "%s", ei.msg);
    tmpdir_remove(&d);
}

/* A key file written by go-libp2p loads unchanged. */
Test(keyfile, loads_foreign_key_file)
{
    tmpdir d;
    tmpdir_make(&d);
    char path[128];
    snprintf(path, sizeof(path), "%s/go.key", d.path);
    blob x;
    blob_hex(&x, GO_2_PRIV);
    write_file(path, x.b, x.n);
    ringp2p_privkey *k;
    ringp2p_errinfo ei = { 0 };
    cr_assert_eq(ringp2p_privkey_load(path, &k, &ei), 0, "%s", ei.msg);
    assert_pub_encodes_to(ringp2p_privkey_public(k), GO_2_PUB);
    ringp2p_privkey_free(k);
    tmpdir_remove(&d);
}

Test(keyfile, permission_denied)
{
    tmpdir d;
    tmpdir_make(&d);
    char path[128];
    ringp2p_errinfo ei = { 0 };
    ringp2p_privkey *k;
    cr_assert_eq(ringp2p_privkey_generate(RINGP2P_KEY_ED25519, &k), 0);
    snprintf(path, sizeof(path), "%s/locked.key", d.path);
    cr_assert_eq(ringp2p_privkey_save(k, path, 0, &ei), 0);
    cr_assert_eq(chmod(path, 0), 0);
    /* Root bypasses permissions: drop to nobody for the checks (this test's process only). */
    bool was_root = geteuid() == 0;
    if (was_root) {
        cr_assert_eq(chmod(d.path, 0755), 0);
        if (seteuid(65534) < 0) cr_skip_test("cannot drop root privileges");
    } else {
        cr_assert_eq(chmod(d.path, 0500), 0);
    }
    ringp2p_privkey *loaded;
    cr_assert_eq(ringp2p_privkey_load(path, &loaded, &ei), RINGP2P_EPERM, "%s", ei.msg);
    cr_assert(strstr(ei.msg, path) != NULL && strstr(ei.msg, "Permission denied") != NULL, "%s",
              ei.msg);
    snprintf(path, sizeof(path), "%s/new.key", d.path);
    cr_assert_eq(ringp2p_privkey_save(k, path, 0, &ei), RINGP2P_EPERM, "%s", ei.msg);
    if (was_root) cr_assert_eq(seteuid(0), 0);
    ringp2p_privkey_free(k);
    tmpdir_remove(&d);
}
