/*
 * Ed25519 keys (peer-ids.md "Ed25519"; RFC 8032), on BoringSSL.
 *
 * Public Data: the 32-byte key. Private Data: seed||public (64 bytes), which
 * is also BoringSSL's private key form. The legacy 96-byte seed||public||public
 * is accepted as the spec asks (and go/js do) and re-encoded as 64 bytes.
 *
 * We check more than go-libp2p and js-libp2p, which take the public half of a
 * private key on trust: it must be the key the seed derives. A mismatched pair
 * would sign with one key while claiming the identity of another.
 *
 * A public key is any 32 bytes, as in go/js: BoringSSL has no public API to
 * decompress a point on its own, and a key that is not a valid point never
 * verifies a signature (ED25519_verify decodes it and fails).
 */
#include <string.h>

#include <openssl/curve25519.h>
#include <openssl/mem.h>
#include <openssl/rand.h>

#include "base/error.h"
#include "crypto/key.h"

_Static_assert(ED25519_PUBLIC_KEY_LEN == RP_ED25519_PUBLIC_LEN, "ed25519 public length");
_Static_assert(ED25519_PRIVATE_KEY_LEN == RP_ED25519_PRIVATE_LEN, "ed25519 private length");
_Static_assert(ED25519_SIGNATURE_LEN == RP_ED25519_SIGNATURE_LEN, "ed25519 signature length");

static int ed_pub_parse(struct ringp2p_pubkey *pk, const uint8_t *raw, size_t len,
                        ringp2p_errinfo *ei)
{
    if (len != RP_ED25519_PUBLIC_LEN)
        return rp_err(ei, RINGP2P_EKEY, "Ed25519 public key must be %d bytes, got %zu",
                      RP_ED25519_PUBLIC_LEN, len);
    memcpy(pk->u.ed25519, raw, RP_ED25519_PUBLIC_LEN);
    return 0;
}

static int ed_pub_marshal(const struct ringp2p_pubkey *pk, CBB *out)
{
    return CBB_add_bytes(out, pk->u.ed25519, RP_ED25519_PUBLIC_LEN);
}

static void ed_pub_clear(struct ringp2p_pubkey *pk)
{
    (void)pk;
}

static int ed_verify(const struct ringp2p_pubkey *pk, const uint8_t *msg, size_t len,
                     const uint8_t *sig, size_t siglen)
{
    if (siglen != RP_ED25519_SIGNATURE_LEN) return RINGP2P_ESIGNATURE;
    return ED25519_verify(msg, len, sig, pk->u.ed25519) == 1 ? 0 : RINGP2P_ESIGNATURE;
}

static int ed_generate(struct ringp2p_privkey *sk)
{
    uint8_t seed[RP_ED25519_SEED_LEN], pub[RP_ED25519_PUBLIC_LEN];
    if (RAND_bytes(seed, sizeof(seed)) != 1) return RINGP2P_ECRYPTO;
    ED25519_keypair_from_seed(pub, sk->u.ed25519, seed);
    OPENSSL_cleanse(seed, sizeof(seed));
    return 0;
}

static int ed_priv_parse(struct ringp2p_privkey *sk, const uint8_t *raw, size_t len,
                         ringp2p_errinfo *ei)
{
    if (len != RP_ED25519_PRIVATE_LEN && len != RP_ED25519_PRIVATE_LEGACY_LEN)
        return rp_err(ei, RINGP2P_EKEY,
                      "Ed25519 private key must be %d bytes (seed||public) or %d (legacy "
                      "seed||public||public), got %zu",
                      RP_ED25519_PRIVATE_LEN, RP_ED25519_PRIVATE_LEGACY_LEN, len);
    const uint8_t *embedded = raw + RP_ED25519_SEED_LEN;
    if (len == RP_ED25519_PRIVATE_LEGACY_LEN &&
        CRYPTO_memcmp(embedded, raw + RP_ED25519_PRIVATE_LEN, RP_ED25519_PUBLIC_LEN) != 0)
        return rp_err(ei, RINGP2P_EKEY,
                      "Ed25519 legacy 96-byte private key: the two public key copies differ");
    uint8_t pub[RP_ED25519_PUBLIC_LEN];
    ED25519_keypair_from_seed(pub, sk->u.ed25519, raw);
    if (CRYPTO_memcmp(pub, embedded, sizeof(pub)) != 0) {
        OPENSSL_cleanse(sk->u.ed25519, sizeof(sk->u.ed25519));
        return rp_err(ei, RINGP2P_EKEY,
                      "Ed25519 private key: the public key stored after the seed is not the "
                      "one the seed derives");
    }
    return 0;
}

static int ed_priv_marshal(const struct ringp2p_privkey *sk, CBB *out)
{
    return CBB_add_bytes(out, sk->u.ed25519, RP_ED25519_PRIVATE_LEN);
}

static int ed_pub_marshal_from_priv(const struct ringp2p_privkey *sk, CBB *out)
{
    return CBB_add_bytes(out, sk->u.ed25519 + RP_ED25519_SEED_LEN, RP_ED25519_PUBLIC_LEN);
}

static ssize_t ed_sign(const struct ringp2p_privkey *sk, const uint8_t *msg, size_t len,
                       uint8_t *sig, size_t cap)
{
    if (cap < RP_ED25519_SIGNATURE_LEN) return RINGP2P_ENOBUF;
    if (ED25519_sign(sig, msg, len, sk->u.ed25519) != 1) return RINGP2P_ECRYPTO;
    return RP_ED25519_SIGNATURE_LEN;
}

static void ed_priv_clear(struct ringp2p_privkey *sk)
{
    OPENSSL_cleanse(sk->u.ed25519, sizeof(sk->u.ed25519));
}

const rp_key_ops rp_key_ed25519_ops = {
    .type = RINGP2P_KEY_ED25519,
    .name = "ed25519",
    .pb_name = "Ed25519",
    .pub_parse = ed_pub_parse,
    .pub_marshal = ed_pub_marshal,
    .pub_clear = ed_pub_clear,
    .verify = ed_verify,
    .priv_generate = ed_generate,
    .priv_parse = ed_priv_parse,
    .priv_marshal = ed_priv_marshal,
    .pub_marshal_from_priv = ed_pub_marshal_from_priv,
    .sign = ed_sign,
    .priv_clear = ed_priv_clear,
};
