/*
 * RSA keys (peer-ids.md "RSA"), on BoringSSL.
 *
 * Public Data: DER SubjectPublicKeyInfo (PKIX, rsaEncryption with NULL
 * parameters). Private Data: DER RSAPrivateKey (PKCS#1, two primes).
 * Signatures: RSASSA-PKCS1-v1_5 with SHA-256. Moduli of
 * RINGP2P_RSA_MIN_BITS..RINGP2P_RSA_MAX_BITS bits, the bounds go-libp2p
 * enforces; outside them RSA is either weak or a denial-of-service lever.
 */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/sha.h>

#include "base/error.h"
#include "crypto/key.h"

_Static_assert(RINGP2P_SIGNATURE_MAX * 8 >= RINGP2P_RSA_MAX_BITS, "RSA signatures fit");

static int check_bits(const char *what, const RSA *rsa, ringp2p_errinfo *ei)
{
    unsigned bits = RSA_bits(rsa);
    if (bits >= RINGP2P_RSA_MIN_BITS && bits <= RINGP2P_RSA_MAX_BITS) return 0;
    return rp_err(ei, RINGP2P_EKEY, "%s has %u bits; accepted: %d to %d", what, bits,
                  RINGP2P_RSA_MIN_BITS, RINGP2P_RSA_MAX_BITS);
}

static int marshal_spki(const RSA *rsa, CBB *out)
{
    EVP_PKEY *pkey = EVP_PKEY_new();
    if (pkey == NULL) return 0;
    int ok = EVP_PKEY_set1_RSA(pkey, (RSA *)rsa) && EVP_marshal_public_key(out, pkey);
    EVP_PKEY_free(pkey);
    return ok;
}

static int rsa_pub_parse(struct ringp2p_pubkey *pk, const uint8_t *raw, size_t len,
                         ringp2p_errinfo *ei)
{
    CBS cbs;
    CBS_init(&cbs, raw, len);
    EVP_PKEY *pkey = EVP_parse_public_key(&cbs);
    if (pkey == NULL) {
        ERR_clear_error();
        return rp_err(ei, RINGP2P_EKEY,
                      "RSA public key is not a valid DER SubjectPublicKeyInfo (PKIX)");
    }
    int r = 0;
    RSA *rsa = NULL;
    if (CBS_len(&cbs) != 0) {
        r = rp_err(ei, RINGP2P_EKEY, "RSA public key: %zu bytes after the DER structure",
                   CBS_len(&cbs));
        goto out;
    }
    if (EVP_PKEY_id(pkey) != EVP_PKEY_RSA) {
        r = rp_err(ei, RINGP2P_EKEY, "RSA public key holds a key of another algorithm");
        goto out;
    }
    rsa = EVP_PKEY_get1_RSA(pkey);
    if (rsa == NULL) {
        r = rp_err(ei, RINGP2P_ENOMEM, NULL);
        goto out;
    }
    r = check_bits("RSA public key", rsa, ei);
out:
    EVP_PKEY_free(pkey);
    if (r < 0) {
        RSA_free(rsa);
        ERR_clear_error();
        return r;
    }
    pk->u.rsa = rsa;
    return 0;
}

static int rsa_pub_marshal(const struct ringp2p_pubkey *pk, CBB *out)
{
    return marshal_spki(pk->u.rsa, out);
}

static void rsa_pub_clear(struct ringp2p_pubkey *pk)
{
    RSA_free(pk->u.rsa);
    pk->u.rsa = NULL;
}

static int rsa_verify(const struct ringp2p_pubkey *pk, const uint8_t *msg, size_t len,
                      const uint8_t *sig, size_t siglen)
{
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256(msg, len, digest);
    return RSA_verify(NID_sha256, digest, sizeof(digest), sig, siglen, pk->u.rsa) == 1
               ? 0
               : RINGP2P_ESIGNATURE;
}

static int rsa_generate(struct ringp2p_privkey *sk)
{
    BIGNUM *e = BN_new();
    sk->u.rsa = RSA_new();
    int r = RINGP2P_ENOMEM;
    if (e != NULL && sk->u.rsa != NULL) {
        r = BN_set_word(e, RSA_F4) &&
                    RSA_generate_key_ex(sk->u.rsa, RINGP2P_RSA_DEFAULT_BITS, e, NULL)
                ? 0
                : RINGP2P_ECRYPTO;
    }
    BN_free(e);
    return r;
}

static int rsa_priv_parse(struct ringp2p_privkey *sk, const uint8_t *raw, size_t len,
                          ringp2p_errinfo *ei)
{
    CBS cbs;
    CBS_init(&cbs, raw, len);
    /* BoringSSL also checks the key's consistency (RSA_check_key) here. */
    RSA *rsa = RSA_parse_private_key(&cbs);
    if (rsa == NULL) {
        ERR_clear_error();
        return rp_err(ei, RINGP2P_EKEY,
                      "RSA private key is not a valid, consistent DER RSAPrivateKey (PKCS#1, "
                      "two primes)");
    }
    int r = 0;
    if (CBS_len(&cbs) != 0)
        r = rp_err(ei, RINGP2P_EKEY, "RSA private key: %zu bytes after the DER structure",
                   CBS_len(&cbs));
    else
        r = check_bits("RSA private key", rsa, ei);
    if (r < 0) {
        RSA_free(rsa);
        return r;
    }
    sk->u.rsa = rsa;
    return 0;
}

static int rsa_priv_marshal(const struct ringp2p_privkey *sk, CBB *out)
{
    return RSA_marshal_private_key(out, sk->u.rsa);
}

static int rsa_pub_marshal_from_priv(const struct ringp2p_privkey *sk, CBB *out)
{
    return marshal_spki(sk->u.rsa, out);
}

static ssize_t rsa_sign(const struct ringp2p_privkey *sk, const uint8_t *msg, size_t len,
                        uint8_t *sig, size_t cap)
{
    uint8_t digest[SHA256_DIGEST_LENGTH];
    unsigned n = 0;
    if (cap < RSA_size(sk->u.rsa)) return RINGP2P_ENOBUF;
    SHA256(msg, len, digest);
    if (!RSA_sign(NID_sha256, digest, sizeof(digest), sig, &n, sk->u.rsa)) return RINGP2P_ECRYPTO;
    return (ssize_t)n;
}

static void rsa_priv_clear(struct ringp2p_privkey *sk)
{
    /* BoringSSL wipes the private BIGNUMs when it frees them (OPENSSL_free cleanses). */
    RSA_free(sk->u.rsa);
    sk->u.rsa = NULL;
}

const rp_key_ops rp_key_rsa_ops = {
    .type = RINGP2P_KEY_RSA,
    .name = "rsa",
    .pb_name = "RSA",
    .pub_parse = rsa_pub_parse,
    .pub_marshal = rsa_pub_marshal,
    .pub_clear = rsa_pub_clear,
    .verify = rsa_verify,
    .priv_generate = rsa_generate,
    .priv_parse = rsa_priv_parse,
    .priv_marshal = rsa_priv_marshal,
    .pub_marshal_from_priv = rsa_pub_marshal_from_priv,
    .sign = rsa_sign,
    .priv_clear = rsa_priv_clear,
};
