/*
 * ECDSA keys (peer-ids.md "ECDSA"), on BoringSSL.
 *
 * The spec's prose swaps the two encodings; its test vectors and go-libp2p
 * settle them: public Data is a DER SubjectPublicKeyInfo (RFC 5480,
 * x509.MarshalPKIXPublicKey) with a named curve and an uncompressed point;
 * private Data is a DER ECPrivateKey (RFC 5915, x509.MarshalECPrivateKey) with
 * the curve and the public key. Signatures are DER ECDSA-Sig-Value over
 * SHA-256(msg), whatever the curve.
 *
 * Curves: we generate P-256 (as go and js do) and accept P-256, P-384 and
 * P-521, the curves js-libp2p generates and go-libp2p parses (go also parses
 * P-224, which we refuse as too weak). js-libp2p's ECDSA keys are not
 * interoperable anyway: it encodes the public key in a private ASN.1 layout,
 * signs in IEEE P1363 form and uses identity peer IDs for them; we follow the
 * spec's vectors and go-libp2p.
 *
 * A public key must be in the exact DER BoringSSL writes back (uncompressed
 * point, minimal lengths; checked in key.c); go-libp2p refuses compressed
 * points too.
 */
#include <string.h>

#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/sha.h>

#include "base/error.h"
#include "crypto/key.h"

/* ECDSA_size of P-521: DER of two 66-byte INTEGERs (with sign bytes) in a SEQUENCE. */
#define ECDSA_SIGNATURE_MAX 141

static const char *curve_name(int nid)
{
    switch (nid) {
    case NID_X9_62_prime256v1: return "P-256";
    case NID_secp384r1: return "P-384";
    case NID_secp521r1: return "P-521";
    case NID_secp224r1: return "P-224";
    }
    return NULL;
}

static int check_curve(const char *what, const EC_KEY *ec, ringp2p_errinfo *ei)
{
    int nid = EC_GROUP_get_curve_name(EC_KEY_get0_group(ec));
    if (nid == NID_X9_62_prime256v1 || nid == NID_secp384r1 || nid == NID_secp521r1) return 0;
    const char *name = curve_name(nid);
    return rp_err(ei, RINGP2P_EKEY, "%s is on curve %s; accepted: P-256, P-384, P-521", what,
                  name != NULL ? name : "(unnamed)");
}

/* The SubjectPublicKeyInfo of ec (public part only), uncompressed point. */
static int marshal_spki(const EC_KEY *ec, CBB *out)
{
    EVP_PKEY *pkey = EVP_PKEY_new();
    if (pkey == NULL) return 0;
    int ok = EVP_PKEY_set1_EC_KEY(pkey, (EC_KEY *)ec) && EVP_marshal_public_key(out, pkey);
    EVP_PKEY_free(pkey);
    return ok;
}

static int ec_pub_parse(struct ringp2p_pubkey *pk, const uint8_t *raw, size_t len,
                        ringp2p_errinfo *ei)
{
    CBS cbs;
    CBS_init(&cbs, raw, len);
    EVP_PKEY *pkey = EVP_parse_public_key(&cbs);
    if (pkey == NULL) {
        uint32_t e = ERR_peek_last_error();
        ERR_clear_error();
        if (ERR_GET_LIB(e) == ERR_LIB_EC && ERR_GET_REASON(e) == EC_R_UNKNOWN_GROUP)
            return rp_err(ei, RINGP2P_EKEY, "ECDSA public key is on an unsupported curve");
        return rp_err(ei, RINGP2P_EKEY,
                      "ECDSA public key is not a DER SubjectPublicKeyInfo holding a valid "
                      "point of a named curve");
    }
    int r = 0;
    EC_KEY *ec = NULL;
    if (CBS_len(&cbs) != 0) {
        r = rp_err(ei, RINGP2P_EKEY, "ECDSA public key: %zu bytes after the DER structure",
                   CBS_len(&cbs));
        goto out;
    }
    if (EVP_PKEY_id(pkey) != EVP_PKEY_EC) {
        r = rp_err(ei, RINGP2P_EKEY, "ECDSA public key holds a key of another algorithm");
        goto out;
    }
    ec = EVP_PKEY_get1_EC_KEY(pkey);
    if (ec == NULL) {
        r = rp_err(ei, RINGP2P_ENOMEM, NULL);
        goto out;
    }
    if ((r = check_curve("ECDSA public key", ec, ei)) < 0) goto out;
    /* The canonical form (key.c compares it with the input); go-libp2p writes it too. */
    EC_KEY_set_conv_form(ec, POINT_CONVERSION_UNCOMPRESSED);
out:
    EVP_PKEY_free(pkey);
    if (r < 0) {
        EC_KEY_free(ec);
        ERR_clear_error();
        return r;
    }
    pk->u.ec = ec;
    return 0;
}

static int ec_pub_marshal(const struct ringp2p_pubkey *pk, CBB *out)
{
    return marshal_spki(pk->u.ec, out);
}

static void ec_pub_clear(struct ringp2p_pubkey *pk)
{
    EC_KEY_free(pk->u.ec);
    pk->u.ec = NULL;
}

static int ec_verify(const struct ringp2p_pubkey *pk, const uint8_t *msg, size_t len,
                     const uint8_t *sig, size_t siglen)
{
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256(msg, len, digest);
    /* BoringSSL accepts only strict DER here (it re-encodes and compares). */
    return ECDSA_verify(0, digest, sizeof(digest), sig, siglen, pk->u.ec) == 1 ? 0
                                                                               : RINGP2P_ESIGNATURE;
}

static int ec_generate(struct ringp2p_privkey *sk)
{
    sk->u.ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    if (sk->u.ec == NULL) return RINGP2P_ENOMEM;
    return EC_KEY_generate_key(sk->u.ec) ? 0 : RINGP2P_ECRYPTO;
}

static int ec_priv_parse(struct ringp2p_privkey *sk, const uint8_t *raw, size_t len,
                         ringp2p_errinfo *ei)
{
    CBS cbs;
    CBS_init(&cbs, raw, len);
    /* No default group: the curve must be named in the key, as go-libp2p writes it. */
    EC_KEY *ec = EC_KEY_parse_private_key(&cbs, NULL);
    if (ec == NULL) {
        uint32_t e = ERR_peek_last_error();
        ERR_clear_error();
        if (ERR_GET_LIB(e) == ERR_LIB_EC && ERR_GET_REASON(e) == EC_R_UNKNOWN_GROUP)
            return rp_err(ei, RINGP2P_EKEY, "ECDSA private key is on an unsupported curve");
        return rp_err(ei, RINGP2P_EKEY,
                      "ECDSA private key is not a valid DER ECPrivateKey (RFC 5915) naming its "
                      "curve (or its public key does not match its private scalar)");
    }
    int r = 0;
    if (CBS_len(&cbs) != 0)
        r = rp_err(ei, RINGP2P_EKEY, "ECDSA private key: %zu bytes after the DER structure",
                   CBS_len(&cbs));
    else
        r = check_curve("ECDSA private key", ec, ei);
    if (r < 0) {
        EC_KEY_free(ec);
        return r;
    }
    /* A compressed embedded public key would otherwise make us write compressed points. */
    EC_KEY_set_conv_form(ec, POINT_CONVERSION_UNCOMPRESSED);
    sk->u.ec = ec;
    return 0;
}

static int ec_priv_marshal(const struct ringp2p_privkey *sk, CBB *out)
{
    /* Flags 0: with the curve and the public key, as x509.MarshalECPrivateKey writes. */
    return EC_KEY_marshal_private_key(out, sk->u.ec, 0);
}

static int ec_pub_marshal_from_priv(const struct ringp2p_privkey *sk, CBB *out)
{
    return marshal_spki(sk->u.ec, out);
}

static ssize_t ec_sign(const struct ringp2p_privkey *sk, const uint8_t *msg, size_t len,
                       uint8_t *sig, size_t cap)
{
    uint8_t digest[SHA256_DIGEST_LENGTH], der[ECDSA_SIGNATURE_MAX];
    unsigned n = 0;
    if (ECDSA_size(sk->u.ec) > sizeof(der)) return RINGP2P_ECRYPTO;
    SHA256(msg, len, digest);
    if (!ECDSA_sign(0, digest, sizeof(digest), der, &n, sk->u.ec)) return RINGP2P_ECRYPTO;
    if (n > cap) return RINGP2P_ENOBUF;
    memcpy(sig, der, n);
    return (ssize_t)n;
}

static void ec_priv_clear(struct ringp2p_privkey *sk)
{
    /* BoringSSL wipes the scalar when it frees it (OPENSSL_free cleanses). */
    EC_KEY_free(sk->u.ec);
    sk->u.ec = NULL;
}

const rp_key_ops rp_key_ecdsa_ops = {
    .type = RINGP2P_KEY_ECDSA,
    .name = "ecdsa",
    .pb_name = "ECDSA",
    .pub_parse = ec_pub_parse,
    .pub_marshal = ec_pub_marshal,
    .pub_clear = ec_pub_clear,
    .verify = ec_verify,
    .priv_generate = ec_generate,
    .priv_parse = ec_priv_parse,
    .priv_marshal = ec_priv_marshal,
    .pub_marshal_from_priv = ec_pub_marshal_from_priv,
    .sign = ec_sign,
    .priv_clear = ec_priv_clear,
};
