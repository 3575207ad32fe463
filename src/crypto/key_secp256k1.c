/*
 * secp256k1 keys (peer-ids.md "Secp256k1"), on libsecp256k1.
 *
 * Public Data: the 33-byte compressed SEC1 point. go-libp2p and js-libp2p
 * also accept the 65-byte uncompressed form and re-encode it compressed; we
 * refuse it, because then the bytes received and the bytes hashed into the peer
 * ID would differ (see key.c). Every implementation writes the compressed form.
 * Private Data: the 32-byte scalar, which must be in [1, n-1] (go-libp2p
 * silently reduces it mod n; js-libp2p rejects it, as we do).
 *
 * Signatures: ECDSA over SHA-256(msg), DER-encoded. We sign in low-S form (as
 * libsecp256k1 and go-libp2p's decred backend always do) and, like go-libp2p,
 * verify both S forms: the signature is normalized before verification.
 * js-libp2p (noble) refuses high-S; accepting it costs only malleability,
 * which libp2p does not rely on.
 */
#include <string.h>

#include <openssl/mem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "base/error.h"
#include "crypto/key.h"

static int secp_pub_parse(struct ringp2p_pubkey *pk, const uint8_t *raw, size_t len,
                          ringp2p_errinfo *ei)
{
    if (len != RP_SECP256K1_PUBLIC_LEN)
        return rp_err(ei, RINGP2P_EKEY,
                      "secp256k1 public key must be the %d-byte compressed form, got %zu bytes",
                      RP_SECP256K1_PUBLIC_LEN, len);
    if (raw[0] != SECP256K1_TAG_PUBKEY_EVEN && raw[0] != SECP256K1_TAG_PUBKEY_ODD)
        return rp_err(ei, RINGP2P_EKEY,
                      "secp256k1 public key starts with 0x%02x, not 0x02/0x03 (compressed)",
                      raw[0]);
    if (!secp256k1_ec_pubkey_parse(secp256k1_context_static, &pk->u.secp256k1, raw, len))
        return rp_err(ei, RINGP2P_EKEY, "secp256k1 public key is not a point on the curve");
    return 0;
}

static int secp_pub_marshal(const struct ringp2p_pubkey *pk, CBB *out)
{
    uint8_t buf[RP_SECP256K1_PUBLIC_LEN];
    size_t n = sizeof(buf);
    return secp256k1_ec_pubkey_serialize(secp256k1_context_static, buf, &n, &pk->u.secp256k1,
                                         SECP256K1_EC_COMPRESSED) &&
           CBB_add_bytes(out, buf, n);
}

static void secp_pub_clear(struct ringp2p_pubkey *pk)
{
    (void)pk;
}

static int secp_verify(const struct ringp2p_pubkey *pk, const uint8_t *msg, size_t len,
                       const uint8_t *sig, size_t siglen)
{
    secp256k1_ecdsa_signature s;
    uint8_t digest[SHA256_DIGEST_LENGTH];
    if (!secp256k1_ecdsa_signature_parse_der(secp256k1_context_static, &s, sig, siglen))
        return RINGP2P_ESIGNATURE;
    secp256k1_ecdsa_signature_normalize(secp256k1_context_static, &s, &s);
    SHA256(msg, len, digest);
    return secp256k1_ecdsa_verify(secp256k1_context_static, &s, digest, &pk->u.secp256k1) == 1
               ? 0
               : RINGP2P_ESIGNATURE;
}

/* A signing context per key: randomized (side-channel blinding), never shared. */
static int secp_new_context(struct ringp2p_privkey *sk)
{
    uint8_t seed[32];
    sk->u.secp256k1.ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    if (sk->u.secp256k1.ctx == NULL) return RINGP2P_ENOMEM;
    if (RAND_bytes(seed, sizeof(seed)) != 1) return RINGP2P_ECRYPTO;
    int ok = secp256k1_context_randomize(sk->u.secp256k1.ctx, seed);
    OPENSSL_cleanse(seed, sizeof(seed));
    return ok ? 0 : RINGP2P_ECRYPTO;
}

static int secp_generate(struct ringp2p_privkey *sk)
{
    int r = secp_new_context(sk);
    if (r < 0) return r;
    /* A uniform 32-byte string is out of range with probability ~2^-128; loop anyway. */
    do {
        if (RAND_bytes(sk->u.secp256k1.seckey, RP_SECP256K1_PRIVATE_LEN) != 1)
            return RINGP2P_ECRYPTO;
    } while (!secp256k1_ec_seckey_verify(sk->u.secp256k1.ctx, sk->u.secp256k1.seckey));
    return 0;
}

static int secp_priv_parse(struct ringp2p_privkey *sk, const uint8_t *raw, size_t len,
                           ringp2p_errinfo *ei)
{
    if (len != RP_SECP256K1_PRIVATE_LEN)
        return rp_err(ei, RINGP2P_EKEY, "secp256k1 private key must be %d bytes, got %zu",
                      RP_SECP256K1_PRIVATE_LEN, len);
    if (!secp256k1_ec_seckey_verify(secp256k1_context_static, raw))
        return rp_err(ei, RINGP2P_EKEY,
                      "secp256k1 private key is zero or not below the group order");
    int r = secp_new_context(sk);
    if (r < 0) return rp_err(ei, r, "cannot create a secp256k1 context");
    memcpy(sk->u.secp256k1.seckey, raw, RP_SECP256K1_PRIVATE_LEN);
    return 0;
}

static int secp_priv_marshal(const struct ringp2p_privkey *sk, CBB *out)
{
    return CBB_add_bytes(out, sk->u.secp256k1.seckey, RP_SECP256K1_PRIVATE_LEN);
}

static int secp_pub_marshal_from_priv(const struct ringp2p_privkey *sk, CBB *out)
{
    secp256k1_pubkey pub;
    uint8_t buf[RP_SECP256K1_PUBLIC_LEN];
    size_t n = sizeof(buf);
    if (!secp256k1_ec_pubkey_create(sk->u.secp256k1.ctx, &pub, sk->u.secp256k1.seckey)) return 0;
    if (!secp256k1_ec_pubkey_serialize(secp256k1_context_static, buf, &n, &pub,
                                       SECP256K1_EC_COMPRESSED))
        return 0;
    return CBB_add_bytes(out, buf, n);
}

static ssize_t secp_sign(const struct ringp2p_privkey *sk, const uint8_t *msg, size_t len,
                         uint8_t *sig, size_t cap)
{
    secp256k1_ecdsa_signature s;
    uint8_t digest[SHA256_DIGEST_LENGTH], der[RP_SECP256K1_SIGNATURE_MAX];
    size_t n = sizeof(der);
    SHA256(msg, len, digest);
    /* RFC 6979 nonces (the default), low-S output. */
    if (!secp256k1_ecdsa_sign(sk->u.secp256k1.ctx, &s, digest, sk->u.secp256k1.seckey, NULL, NULL))
        return RINGP2P_ECRYPTO;
    if (!secp256k1_ecdsa_signature_serialize_der(secp256k1_context_static, der, &n, &s))
        return RINGP2P_ECRYPTO;
    if (n > cap) return RINGP2P_ENOBUF;
    memcpy(sig, der, n);
    return (ssize_t)n;
}

static void secp_priv_clear(struct ringp2p_privkey *sk)
{
    OPENSSL_cleanse(sk->u.secp256k1.seckey, sizeof(sk->u.secp256k1.seckey));
    if (sk->u.secp256k1.ctx != NULL) secp256k1_context_destroy(sk->u.secp256k1.ctx);
    sk->u.secp256k1.ctx = NULL;
}

const rp_key_ops rp_key_secp256k1_ops = {
    .type = RINGP2P_KEY_SECP256K1,
    .name = "secp256k1",
    .pb_name = "Secp256k1",
    .pub_parse = secp_pub_parse,
    .pub_marshal = secp_pub_marshal,
    .pub_clear = secp_pub_clear,
    .verify = secp_verify,
    .priv_generate = secp_generate,
    .priv_parse = secp_priv_parse,
    .priv_marshal = secp_priv_marshal,
    .pub_marshal_from_priv = secp_pub_marshal_from_priv,
    .sign = secp_sign,
    .priv_clear = secp_priv_clear,
};
