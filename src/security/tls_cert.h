/*
 * The libp2p TLS certificate (libp2p specs tls/tls.md "Peer Authentication"):
 * a self-signed X.509 certificate on a throwaway key, carrying the libp2p
 * Public Key Extension, whose SignedKey binds the certificate key to the
 * host's identity key.
 *
 * This file is pure data: DER in, DER out, time passed in as Unix seconds
 * (certificate validity is wall-clock time, not the monotonic clock the other
 * cores use). The TLS session (tls.h) calls it from its verify callback.
 *
 * Verification takes the spec's MUSTs as they are: exactly one DER
 * certificate, nothing after it; valid at `unix_now` (NotBefore <= now <=
 * NotAfter); its self-signature verifies with its own key (and the outer and
 * inner signature algorithms agree); the extension is present once, critical
 * or not; no other critical extension we do not understand (we understand the
 * ones a self-signed certificate plausibly carries: basicConstraints,
 * keyUsage, extKeyUsage, subjectKeyIdentifier, authorityKeyIdentifier,
 * subjectAltName); no issuer/subject unique IDs (the spec lets us refuse
 * them); the identity key's signature over RP_TLS_SIG_PREFIX ||
 * SubjectPublicKeyInfo verifies for any of the four key types.
 */
#ifndef RP_SECURITY_TLS_CERT_H
#define RP_SECURITY_TLS_CERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/evp.h>

#include "base/bytes.h"
#include "ringp2p/key.h"

/* tls.md "libp2p Public Key Extension": the identity signs this prefix || SPKI DER. */
#define RP_TLS_SIG_PREFIX     "libp2p-tls-handshake:"
#define RP_TLS_SIG_PREFIX_LEN (sizeof(RP_TLS_SIG_PREFIX) - 1)

/* tls.md: OID 1.3.6.1.4.1.53594.1.1, as the content bytes of its DER encoding. */
#define RP_TLS_EXT_OID_BYTES 0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xa2, 0x5a, 0x01, 0x01
#define RP_TLS_EXT_OID_LEN   10
#define RP_TLS_EXT_OID_TEXT  "1.3.6.1.4.1.53594.1.1"

/*
 * Validity of the certificates we make. The spec only says "valid when
 * received"; go-libp2p and js-libp2p both start one hour back (clock skew)
 * and run about 100 years (crypto.go certValidityPeriod, utils.ts), so we do
 * the same.
 */
#define RP_TLS_CERT_BACKDATE_S 3600
#define RP_TLS_CERT_VALIDITY_S (100LL * 365 * 24 * 3600)

/*
 * Largest certificate we parse. Ours are ~400 bytes; an RSA-8192 identity key
 * and its signature add ~2.1 KiB to the extension. Not in the spec: a bound so
 * a peer cannot make us parse megabytes (RINGP2P_ELIMIT).
 */
#define RP_TLS_CERT_MAX 16384

/* Largest SignedKey.publicKey we accept: the key module's protobuf bound. */
#define RP_TLS_SIGNED_KEY_PK_MAX RINGP2P_KEY_PROTOBUF_MAX

/*
 * A decoded SignedKey (tls.md): both views point into the decoded buffer and
 * live as long as it.
 */
typedef struct rp_tls_signed_key {
    rp_iov public_key; /* protobuf PublicKey bytes */
    rp_iov signature;
} rp_tls_signed_key;

/*
 * Decodes one DER SignedKey ::= SEQUENCE { OCTET STRING, OCTET STRING } at
 * [*src, end) and moves *src past it. Strict DER (definite minimal lengths,
 * primitive OCTET STRINGs), exactly two fields. Errors (*src unchanged):
 * RINGP2P_ECERT naming the problem, RINGP2P_ELIMIT (publicKey longer than
 * RP_TLS_SIGNED_KEY_PK_MAX or signature longer than RINGP2P_SIGNATURE_MAX).
 */
int rp_tls_signed_key_decode(const uint8_t **src, const uint8_t *end, rp_tls_signed_key *out,
                             ringp2p_errinfo *ei);

/* Exact bytes rp_tls_signed_key_encode writes for these field lengths. */
size_t rp_tls_signed_key_len(size_t pk_len, size_t sig_len);

/*
 * Encodes a SignedKey from pk[pk_len] and sig[sig_len] (caller's, read-only)
 * into dst (caller's). Returns the length or RINGP2P_ENOBUF; dst NULL with cap
 * 0 measures.
 */
ssize_t rp_tls_signed_key_encode(const uint8_t *pk, size_t pk_len, const uint8_t *sig,
                                 size_t sig_len, uint8_t *dst, size_t cap);

/* How rp_tls_cert_make builds a certificate; tests use the knobs to make bad ones. */
typedef struct rp_tls_cert_params {
    int64_t not_before; /* Unix seconds */
    int64_t not_after;
    int ext_critical;     /* mark the libp2p extension critical (js-libp2p does; go does not) */
    int ed25519_key;      /* an Ed25519 certificate key (and Ed25519 self-signature), not P-256 */
    int omit_ext;         /* tests: no libp2p extension */
    int sign_other_spki;  /* tests: the identity signs some other key's SPKI */
    int unknown_critical; /* tests: add a critical extension with an unknown OID */
    int corrupt_self_sig; /* tests: flip a bit in the certificate's own signature */
} rp_tls_cert_params;

/* The production parameters at `unix_now`: backdated, ~100 years, extension critical. */
rp_tls_cert_params rp_tls_cert_params_default(int64_t unix_now);

/*
 * Generates a fresh certificate key, P-256 (go-libp2p and js-libp2p use P-256
 * ECDSA too) or with params->ed25519_key Ed25519 (RFC 8410), signs its SPKI
 * with `identity` and makes the self-signed certificate (ecdsa-with-SHA256 or
 * Ed25519, random 63-bit serial, subject = issuer = a random serialNumber
 * attribute, as go-libp2p). On success *der (OPENSSL_free) and *key
 * (EVP_PKEY_free) are the caller's. Errors: RINGP2P_ENOMEM, RINGP2P_ECRYPTO,
 * RINGP2P_EINVAL (time outside what X.509 can say).
 */
int rp_tls_cert_make(const ringp2p_privkey *identity, const rp_tls_cert_params *params,
                     uint8_t **der, size_t *der_len, EVP_PKEY **key, ringp2p_errinfo *ei);

/*
 * Verifies one certificate (der[len], read-only, not retained) as the header
 * comment says, at `unix_now` (Unix seconds). On success *identity is the
 * remote's identity key (caller's: ringp2p_pubkey_free). Errors, with `ei`
 * naming the problem: RINGP2P_ECERT (malformed, not yet valid, expired,
 * extension missing/duplicated/malformed, unknown critical extension, unique
 * IDs), RINGP2P_ELIMIT (larger than RP_TLS_CERT_MAX), RINGP2P_ESIGNATURE
 * (self-signature or identity signature invalid), the key decoder's
 * RINGP2P_EPROTOBUF / RINGP2P_EKEYTYPE / RINGP2P_EKEY for the publicKey field,
 * RINGP2P_ENOMEM.
 */
int rp_tls_cert_verify(const uint8_t *der, size_t len, int64_t unix_now, ringp2p_pubkey **identity,
                       ringp2p_errinfo *ei);

/*
 * rp_tls_cert_verify, except that with sigs_known the caller has seen these
 * exact bytes pass rp_tls_cert_verify before (tls.h "Certificates": a cache
 * keyed by their SHA-256), so what is a pure function of the DER (structure,
 * the extension present once, critical extensions, the self-signature and the
 * identity key's signature over the certificate key) is taken as it was: only
 * the validity period at `unix_now` is checked again (by the same
 * X509_cmp_time comparisons), and the identity key decoded. A DER walk finds
 * both; no X509 is built.
 */
int rp_tls_cert_verify_known(const uint8_t *der, size_t len, int64_t unix_now, bool sigs_known,
                             ringp2p_pubkey **identity, ringp2p_errinfo *ei);

#endif
