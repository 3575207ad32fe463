/* The libp2p TLS certificate: SignedKey codec, generation, verification (tls_cert.h). */
#include "security/tls_cert.h"

#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bytestring.h>
#include <openssl/ec_key.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/obj.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "base/error.h"

/* X.690 identifier octets (CBS_ASN1_* carry the constructed bit elsewhere). */
#define DER_SEQUENCE     0x30
#define DER_OCTET_STRING 0x04

static const uint8_t ext_oid[RP_TLS_EXT_OID_LEN] = { RP_TLS_EXT_OID_BYTES };

/* An unregistered OID under the same arc, for tests of "unknown critical extension". */
static const char unknown_oid_text[] = "1.3.6.1.4.1.53594.1.99";

/* ---- SignedKey ----------------------------------------------------------------------------- */

int rp_tls_signed_key_decode(const uint8_t **src, const uint8_t *end, rp_tls_signed_key *out,
                             ringp2p_errinfo *ei)
{
    CBS in, seq, pk, sig;
    CBS_init(&in, *src, (size_t)(end - *src));
    /* CBS_get_asn1 is DER-only: definite, minimal lengths, single-byte tags here. */
    if (!CBS_get_asn1(&in, &seq, CBS_ASN1_SEQUENCE))
        return rp_err(ei, RINGP2P_ECERT, "SignedKey is not a DER SEQUENCE");
    if (!CBS_get_asn1(&seq, &pk, CBS_ASN1_OCTETSTRING))
        return rp_err(ei, RINGP2P_ECERT, "SignedKey.publicKey is not a DER OCTET STRING");
    if (!CBS_get_asn1(&seq, &sig, CBS_ASN1_OCTETSTRING))
        return rp_err(ei, RINGP2P_ECERT, "SignedKey.signature is not a DER OCTET STRING");
    if (CBS_len(&seq) != 0)
        return rp_err(ei, RINGP2P_ECERT, "SignedKey has %zu bytes after its signature",
                      CBS_len(&seq));
    if (CBS_len(&pk) > RP_TLS_SIGNED_KEY_PK_MAX)
        return rp_err(ei, RINGP2P_ELIMIT, "SignedKey.publicKey is %zu bytes, limit %d",
                      CBS_len(&pk), RP_TLS_SIGNED_KEY_PK_MAX);
    if (CBS_len(&sig) > RINGP2P_SIGNATURE_MAX)
        return rp_err(ei, RINGP2P_ELIMIT, "SignedKey.signature is %zu bytes, limit %d",
                      CBS_len(&sig), RINGP2P_SIGNATURE_MAX);
    out->public_key = rp_iov_make(CBS_data(&pk), CBS_len(&pk));
    out->signature = rp_iov_make(CBS_data(&sig), CBS_len(&sig));
    *src = CBS_data(&in);
    return 0;
}

/* DER definite length (X.690 §8.1.3), minimal form. */
static void der_len(rp_wbuf *w, size_t n)
{
    if (n < 0x80) {
        rp_wbuf_byte(w, (uint8_t)n);
        return;
    }
    uint8_t b[sizeof(size_t)];
    size_t k = 0;
    for (size_t v = n; v != 0; v >>= 8) b[k++] = (uint8_t)v;
    rp_wbuf_byte(w, (uint8_t)(0x80 | k));
    while (k > 0) rp_wbuf_byte(w, b[--k]);
}

static size_t der_len_len(size_t n)
{
    size_t k = 1;
    if (n >= 0x80)
        for (size_t v = n; v != 0; v >>= 8) k++;
    return k;
}

static size_t signed_key_body_len(size_t pk_len, size_t sig_len)
{
    return 1 + der_len_len(pk_len) + pk_len + 1 + der_len_len(sig_len) + sig_len;
}

size_t rp_tls_signed_key_len(size_t pk_len, size_t sig_len)
{
    size_t body = signed_key_body_len(pk_len, sig_len);
    return 1 + der_len_len(body) + body;
}

ssize_t rp_tls_signed_key_encode(const uint8_t *pk, size_t pk_len, const uint8_t *sig,
                                 size_t sig_len, uint8_t *dst, size_t cap)
{
    size_t body = signed_key_body_len(pk_len, sig_len);
    rp_wbuf w = rp_wbuf_make(dst, cap);
    rp_wbuf_byte(&w, DER_SEQUENCE);
    der_len(&w, body);
    rp_wbuf_byte(&w, DER_OCTET_STRING);
    der_len(&w, pk_len);
    rp_wbuf_put(&w, pk, pk_len);
    rp_wbuf_byte(&w, DER_OCTET_STRING);
    der_len(&w, sig_len);
    rp_wbuf_put(&w, sig, sig_len);
    return rp_wbuf_result(&w);
}

/* ---- generation ---------------------------------------------------------------------------- */

rp_tls_cert_params rp_tls_cert_params_default(int64_t unix_now)
{
    rp_tls_cert_params p = { 0 };
    p.not_before = unix_now - RP_TLS_CERT_BACKDATE_S;
    p.not_after = unix_now + RP_TLS_CERT_VALIDITY_S;
    p.ext_critical = 1;
    return p;
}

/* The DER SubjectPublicKeyInfo of key, OPENSSL_malloc'd into *out (caller frees). */
static int spki_of(const EVP_PKEY *key, uint8_t **out, size_t *len)
{
    CBB cbb;
    if (!CBB_init(&cbb, 128)) return RINGP2P_ENOMEM;
    if (!EVP_marshal_public_key(&cbb, key) || !CBB_finish(&cbb, out, len)) {
        CBB_cleanup(&cbb);
        return RINGP2P_ECRYPTO;
    }
    return 0;
}

static EVP_PKEY *ed25519_generate(void)
{
    /* RFC 8032 §5.1.5: the private key is 32 random bytes (BoringSSL's raw form too). */
    uint8_t seed[32];
    EVP_PKEY *pkey = RAND_bytes(seed, sizeof seed)
                         ? EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof seed)
                         : NULL;
    OPENSSL_cleanse(seed, sizeof seed);
    return pkey;
}

static EVP_PKEY *p256_generate(void)
{
    EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    EVP_PKEY *pkey = EVP_PKEY_new();
    if (ec == NULL || pkey == NULL || !EC_KEY_generate_key(ec) ||
        !EVP_PKEY_assign_EC_KEY(pkey, ec)) {
        EC_KEY_free(ec);
        EVP_PKEY_free(pkey);
        return NULL;
    }
    return pkey;
}

/*
 * The extension value: SignedKey over spki_key's SPKI. Heap buffer (free())
 * into *out.
 */
static int make_ext_value(const ringp2p_privkey *identity, const EVP_PKEY *spki_key, uint8_t **out,
                          size_t *out_len)
{
    uint8_t *spki = NULL, *msg = NULL, *pk = NULL, *val = NULL;
    size_t spki_len = 0;
    uint8_t sig[RINGP2P_SIGNATURE_MAX];
    int rc = spki_of(spki_key, &spki, &spki_len);
    if (rc < 0) return rc;
    rc = RINGP2P_ENOMEM;
    msg = malloc(RP_TLS_SIG_PREFIX_LEN + spki_len);
    pk = malloc(RINGP2P_KEY_PROTOBUF_MAX);
    if (msg == NULL || pk == NULL) goto out;
    memcpy(msg, RP_TLS_SIG_PREFIX, RP_TLS_SIG_PREFIX_LEN);
    memcpy(msg + RP_TLS_SIG_PREFIX_LEN, spki, spki_len);
    ssize_t sig_len =
        ringp2p_privkey_sign(identity, msg, RP_TLS_SIG_PREFIX_LEN + spki_len, sig, sizeof sig);
    if (sig_len < 0) {
        rc = (int)sig_len;
        goto out;
    }
    ssize_t pk_len =
        ringp2p_pubkey_to_protobuf(ringp2p_privkey_public(identity), pk, RINGP2P_KEY_PROTOBUF_MAX);
    if (pk_len < 0) {
        rc = (int)pk_len;
        goto out;
    }
    size_t body = rp_tls_signed_key_len((size_t)pk_len, (size_t)sig_len);
    val = malloc(body);
    if (val == NULL) goto out;
    ssize_t n = rp_tls_signed_key_encode(pk, (size_t)pk_len, sig, (size_t)sig_len, val, body);
    if (n < 0) {
        rc = RINGP2P_ECRYPTO;
        goto out;
    }
    *out = val;
    *out_len = (size_t)n;
    val = NULL;
    rc = 0;
out:
    OPENSSL_free(spki);
    free(msg);
    free(pk);
    free(val);
    return rc;
}

static int add_ext(X509 *x, const char *oid_text, int critical, const uint8_t *val, size_t len)
{
    int ok = 0;
    ASN1_OBJECT *obj = OBJ_txt2obj(oid_text, 1);
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    X509_EXTENSION *ext = NULL;
    if (obj != NULL && os != NULL && ASN1_OCTET_STRING_set(os, val, (int)len)) {
        ext = X509_EXTENSION_create_by_OBJ(NULL, obj, critical, os);
        ok = ext != NULL && X509_add_ext(x, ext, -1);
    }
    X509_EXTENSION_free(ext);
    ASN1_OCTET_STRING_free(os);
    ASN1_OBJECT_free(obj);
    return ok;
}

static int set_time(X509 *x, int64_t t, int before)
{
    if (t < 0 || (uint64_t)t > (uint64_t)253402300799) return 0; /* X.509 stops at 9999 */
    ASN1_TIME *tm = ASN1_TIME_set(NULL, (time_t)t);
    int ok = tm != NULL && (before ? X509_set1_notBefore(x, tm) : X509_set1_notAfter(x, tm));
    ASN1_TIME_free(tm);
    return ok;
}

int rp_tls_cert_make(const ringp2p_privkey *identity, const rp_tls_cert_params *params,
                     uint8_t **der, size_t *der_len, EVP_PKEY **key, ringp2p_errinfo *ei)
{
    int rc = RINGP2P_ENOMEM;
    EVP_PKEY *pkey = NULL, *other = NULL;
    X509 *x = NULL;
    X509_NAME *name = NULL;
    uint8_t *ext = NULL, *out = NULL;
    size_t ext_len = 0;

    if (identity == NULL || params == NULL) return rp_err(ei, RINGP2P_EINVAL, "no identity key");
    EVP_PKEY *(*keygen)(void) = params->ed25519_key ? ed25519_generate : p256_generate;
    pkey = keygen();
    if (pkey == NULL) {
        rc = rp_err(ei, RINGP2P_ECRYPTO, "certificate key generation failed");
        goto out;
    }
    if (params->sign_other_spki && (other = keygen()) == NULL) goto out;
    if (!params->omit_ext) {
        rc = make_ext_value(identity, other != NULL ? other : pkey, &ext, &ext_len);
        if (rc < 0) {
            rp_err(ei, rc, "signing the certificate key with the identity key failed");
            goto out;
        }
    }
    rc = RINGP2P_ECRYPTO;
    uint64_t serial, subject_sn;
    if (!RAND_bytes((uint8_t *)&serial, sizeof serial) ||
        !RAND_bytes((uint8_t *)&subject_sn, sizeof subject_sn))
        goto out;
    /* Positive and non-zero, like go-libp2p's rand.Int(2^62). */
    serial = (serial >> 2) | 1;
    subject_sn >>= 2;
    char sn_text[24];
    snprintf(sn_text, sizeof sn_text, "%" PRIu64, subject_sn);

    x = X509_new();
    name = X509_NAME_new();
    if (x == NULL || name == NULL) goto out;
    if (!X509_set_version(x, X509_VERSION_3) ||
        !ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), serial) ||
        !X509_NAME_add_entry_by_NID(name, NID_serialNumber, MBSTRING_ASC, (uint8_t *)sn_text, -1,
                                    -1, 0) ||
        !X509_set_subject_name(x, name) || !X509_set_issuer_name(x, name) ||
        !X509_set_pubkey(x, pkey))
        goto out;
    if (!set_time(x, params->not_before, 1) || !set_time(x, params->not_after, 0)) {
        rc = rp_err(ei, RINGP2P_EINVAL,
                    "certificate validity %" PRId64 "..%" PRId64
                    " is outside what X.509 can express",
                    params->not_before, params->not_after);
        goto out;
    }
    /* The libp2p extension goes first: js-libp2p only looks at the first extension. */
    if (ext != NULL && !add_ext(x, RP_TLS_EXT_OID_TEXT, params->ext_critical ? 1 : 0, ext, ext_len))
        goto out;
    if (params->unknown_critical &&
        !add_ext(x, unknown_oid_text, 1, (const uint8_t *)"\x05\x00", 2))
        goto out;
    /* Ed25519 hashes internally: no digest (RFC 8410 §6). */
    if (!X509_sign(x, pkey, params->ed25519_key ? NULL : EVP_sha256())) goto out;
    int n = i2d_X509(x, &out);
    if (n <= 0) goto out;
    /* The last byte is inside the signature (ECDSA: its last INTEGER; Ed25519: the BIT
     * STRING): still DER, no longer valid. */
    if (params->corrupt_self_sig) out[n - 1] ^= 1;
    *der = out;
    *der_len = (size_t)n;
    *key = pkey;
    out = NULL;
    pkey = NULL;
    rc = 0;
out:
    if (rc == RINGP2P_ECRYPTO) rp_err(ei, rc, "building the certificate failed");
    if (rc == RINGP2P_ENOMEM) rp_err(ei, rc, "out of memory building the certificate");
    OPENSSL_free(out);
    X509_NAME_free(name);
    X509_free(x);
    EVP_PKEY_free(pkey);
    EVP_PKEY_free(other);
    free(ext);
    return rc;
}

/* ---- verification -------------------------------------------------------------------------- */

/* Critical extensions we "understand": we accept their presence and impose nothing more. */
static int understood_critical(const ASN1_OBJECT *obj)
{
    switch (OBJ_obj2nid(obj)) {
    case NID_basic_constraints:
    case NID_key_usage:
    case NID_ext_key_usage:
    case NID_subject_key_identifier:
    case NID_authority_key_identifier:
    case NID_subject_alt_name: return 1;
    default: return 0;
    }
}

static int is_libp2p_ext(const ASN1_OBJECT *obj)
{
    return OBJ_length(obj) == RP_TLS_EXT_OID_LEN &&
           memcmp(OBJ_get0_data(obj), ext_oid, RP_TLS_EXT_OID_LEN) == 0;
}

/* Decodes the extension value `val`: its SignedKey into *sk and the identity key into *key. */
static int decode_ext(const uint8_t *val, size_t val_len, rp_tls_signed_key *sk,
                      ringp2p_pubkey **key, ringp2p_errinfo *ei)
{
    const uint8_t *p = val, *end = val + val_len;
    RP_TRY(rp_tls_signed_key_decode(&p, end, sk, ei));
    if (p != end)
        return rp_err(ei, RINGP2P_ECERT, "libp2p extension has %zu bytes after its SignedKey",
                      (size_t)(end - p));
    return ringp2p_pubkey_from_protobuf(sk->public_key.base, sk->public_key.len, key, ei);
}

/* Checks the signed key in `val` against the certificate's SPKI; *identity on success. */
static int check_signed_key(X509 *x, const uint8_t *val, size_t val_len, bool sig_known,
                            ringp2p_pubkey **identity, ringp2p_errinfo *ei)
{
    rp_tls_signed_key sk;
    ringp2p_pubkey *key = NULL;
    int rc = decode_ext(val, val_len, &sk, &key, ei);
    if (rc < 0) return rc;
    if (sig_known) {
        *identity = key;
        return 0;
    }

    /* The SPKI as the certificate carries it (re-encoded from its parse, which is DER). */
    int spki_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), NULL);
    uint8_t *msg = spki_len > 0 ? malloc(RP_TLS_SIG_PREFIX_LEN + (size_t)spki_len) : NULL;
    if (msg == NULL) {
        ringp2p_pubkey_free(key);
        return rp_err(ei, spki_len > 0 ? RINGP2P_ENOMEM : RINGP2P_ECERT,
                      "cannot encode the certificate's SubjectPublicKeyInfo");
    }
    memcpy(msg, RP_TLS_SIG_PREFIX, RP_TLS_SIG_PREFIX_LEN);
    uint8_t *q = msg + RP_TLS_SIG_PREFIX_LEN;
    i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &q);
    rc = ringp2p_pubkey_verify(key, msg, RP_TLS_SIG_PREFIX_LEN + (size_t)spki_len,
                               sk.signature.base, sk.signature.len);
    free(msg);
    if (rc < 0) {
        const char *type = ringp2p_key_type_name(ringp2p_pubkey_type(key));
        ringp2p_pubkey_free(key);
        return rp_err(ei, RINGP2P_ESIGNATURE,
                      "the %s identity key's signature over the certificate key does not verify",
                      type != NULL ? type : "?");
    }
    *identity = key;
    return 0;
}

/* ---- the known certificate's short path ------------------------------------------------------ */

/*
 * tls.md: valid when received, NotBefore <= now <= NotAfter, in whole seconds
 * (X509_cmp_time's "<=" is inclusive, so NotAfter >= now is NotAfter > now - 1).
 */
static int check_validity(const ASN1_TIME *not_before, const ASN1_TIME *not_after, int64_t unix_now,
                          ringp2p_errinfo *ei)
{
    time_t now = (time_t)unix_now, before_now = (time_t)(unix_now - 1);
    int c = X509_cmp_time(not_before, &now);
    if (c == 0) return rp_err(ei, RINGP2P_ECERT, "certificate NotBefore is malformed");
    if (c > 0)
        return rp_err(ei, RINGP2P_ECERT, "certificate is not yet valid at %" PRId64, unix_now);
    c = X509_cmp_time(not_after, &before_now);
    if (c == 0) return rp_err(ei, RINGP2P_ECERT, "certificate NotAfter is malformed");
    if (c < 0) return rp_err(ei, RINGP2P_ECERT, "certificate expired before %" PRId64, unix_now);
    return 0;
}

/*
 * A validity Time (RFC 5280 §4.1.2.5) as the ASN1_TIME d2i_X509 makes of it:
 * the string type and the content bytes, viewed in place (no allocation).
 */
static bool der_time(CBS *in, ASN1_TIME *out)
{
    CBS t;
    int type;
    /* (CBS_get_asn1 consumes the element even when its tag is not the one asked for.) */
    if (CBS_peek_asn1_tag(in, CBS_ASN1_UTCTIME))
        type = V_ASN1_UTCTIME;
    else if (CBS_peek_asn1_tag(in, CBS_ASN1_GENERALIZEDTIME))
        type = V_ASN1_GENERALIZEDTIME;
    else
        return false;
    if (!CBS_get_asn1(in, &t,
                      type == V_ASN1_UTCTIME ? CBS_ASN1_UTCTIME : CBS_ASN1_GENERALIZEDTIME) ||
        CBS_len(&t) > INT_MAX)
        return false;
    out->type = type;
    out->length = (int)CBS_len(&t);
    out->data = (uint8_t *)(uintptr_t)CBS_data(&t);
    out->flags = 0;
    return true;
}

/*
 * For a certificate whose exact DER passed the long path before: what can
 * change since is only its validity at unix_now; the rest (structure, the
 * extension once, both signatures) is a function of the bytes. Reads the
 * validity and the extension with a DER walk instead of building an X509,
 * and checks the times with the long path's own check_validity. Returns 1 with
 * *rc the verdict (and *identity on success), or 0 when the walk does not
 * find what it expects: then the long path decides.
 */
static int known_short_path(const uint8_t *der, size_t len, int64_t unix_now,
                            ringp2p_pubkey **identity, ringp2p_errinfo *ei, int *rc)
{
    CBS in, cert, tbs, validity, exts, ext, oid, val;
    ASN1_TIME not_before, not_after;
    CBS_init(&in, der, len);
    /* Certificate, TBSCertificate (RFC 5280 §4.1): version, serial, signature, issuer. */
    if (!CBS_get_asn1(&in, &cert, CBS_ASN1_SEQUENCE) ||
        !CBS_get_asn1(&cert, &tbs, CBS_ASN1_SEQUENCE) ||
        !CBS_get_asn1(&tbs, NULL, CBS_ASN1_CONSTRUCTED | CBS_ASN1_CONTEXT_SPECIFIC | 0) ||
        !CBS_get_asn1(&tbs, NULL, CBS_ASN1_INTEGER) ||
        !CBS_get_asn1(&tbs, NULL, CBS_ASN1_SEQUENCE) ||
        !CBS_get_asn1(&tbs, NULL, CBS_ASN1_SEQUENCE) ||
        !CBS_get_asn1(&tbs, &validity, CBS_ASN1_SEQUENCE) || !der_time(&validity, &not_before) ||
        !der_time(&validity, &not_after) || CBS_len(&validity) != 0)
        return 0;
    /* subject, subjectPublicKeyInfo, then [3] extensions (the long path refused unique IDs). */
    if (!CBS_get_asn1(&tbs, NULL, CBS_ASN1_SEQUENCE) ||
        !CBS_get_asn1(&tbs, NULL, CBS_ASN1_SEQUENCE) ||
        !CBS_get_asn1(&tbs, &exts, CBS_ASN1_CONSTRUCTED | CBS_ASN1_CONTEXT_SPECIFIC | 3) ||
        CBS_len(&tbs) != 0 || !CBS_get_asn1(&exts, &exts, CBS_ASN1_SEQUENCE))
        return 0;
    for (;;) {
        if (CBS_len(&exts) == 0 || !CBS_get_asn1(&exts, &ext, CBS_ASN1_SEQUENCE) ||
            !CBS_get_asn1(&ext, &oid, CBS_ASN1_OBJECT))
            return 0;
        if (CBS_len(&oid) == RP_TLS_EXT_OID_LEN &&
            memcmp(CBS_data(&oid), ext_oid, RP_TLS_EXT_OID_LEN) == 0)
            break;
    }
    if ((CBS_peek_asn1_tag(&ext, CBS_ASN1_BOOLEAN) &&
         !CBS_get_asn1(&ext, NULL, CBS_ASN1_BOOLEAN)) ||
        !CBS_get_asn1(&ext, &val, CBS_ASN1_OCTETSTRING) || CBS_len(&ext) != 0)
        return 0;
    *rc = check_validity(&not_before, &not_after, unix_now, ei);
    if (*rc == 0) {
        rp_tls_signed_key sk;
        *rc = decode_ext(CBS_data(&val), CBS_len(&val), &sk, identity, ei);
    }
    return 1;
}

int rp_tls_cert_verify(const uint8_t *der, size_t len, int64_t unix_now, ringp2p_pubkey **identity,
                       ringp2p_errinfo *ei)
{
    return rp_tls_cert_verify_known(der, len, unix_now, false, identity, ei);
}

int rp_tls_cert_verify_known(const uint8_t *der, size_t len, int64_t unix_now, bool sigs_known,
                             ringp2p_pubkey **identity, ringp2p_errinfo *ei)
{
    if (len > RP_TLS_CERT_MAX)
        return rp_err(ei, RINGP2P_ELIMIT, "certificate is %zu bytes, limit %d", len,
                      RP_TLS_CERT_MAX);
    int rc;
    if (sigs_known && known_short_path(der, len, unix_now, identity, ei, &rc)) return rc;
    const uint8_t *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (x == NULL) return rp_err(ei, RINGP2P_ECERT, "not a DER X.509 certificate");
    EVP_PKEY *pk = NULL;
    if (p != der + len) {
        rc = rp_err(ei, RINGP2P_ECERT, "%zu bytes after the certificate", (size_t)(der + len - p));
        goto out;
    }
    if (X509_get_version(x) != X509_VERSION_3) {
        rc = rp_err(ei, RINGP2P_ECERT, "certificate version %ld, extensions need v3",
                    X509_get_version(x) + 1);
        goto out;
    }
    const ASN1_BIT_STRING *iuid = NULL, *suid = NULL;
    X509_get0_uids(x, &iuid, &suid);
    if (iuid != NULL || suid != NULL) {
        rc = rp_err(ei, RINGP2P_ECERT, "certificate carries the deprecated %s unique ID",
                    iuid != NULL ? "issuer" : "subject");
        goto out;
    }
    rc = check_validity(X509_get0_notBefore(x), X509_get0_notAfter(x), unix_now, ei);
    if (rc < 0) goto out;

    const ASN1_BIT_STRING *sig = NULL;
    const X509_ALGOR *outer = NULL;
    X509_get0_signature(&sig, &outer, x);
    if (X509_ALGOR_cmp(outer, X509_get0_tbs_sigalg(x)) != 0) {
        rc = rp_err(ei, RINGP2P_ECERT, "certificate's inner and outer signature algorithms differ");
        goto out;
    }
    pk = X509_get_pubkey(x);
    if (pk == NULL) {
        rc = rp_err(ei, RINGP2P_ECERT, "certificate key is malformed or of an unsupported type");
        goto out;
    }
    if (!sigs_known && X509_verify(x, pk) != 1) {
        rc = rp_err(ei, RINGP2P_ESIGNATURE, "certificate self-signature does not verify");
        goto out;
    }

    X509_EXTENSION *found = NULL;
    for (int i = 0; i < X509_get_ext_count(x); i++) {
        X509_EXTENSION *e = X509_get_ext(x, i);
        const ASN1_OBJECT *obj = X509_EXTENSION_get_object(e);
        if (is_libp2p_ext(obj)) {
            if (found != NULL) {
                rc = rp_err(ei, RINGP2P_ECERT, "libp2p public key extension appears twice");
                goto out;
            }
            found = e;
        } else if (X509_EXTENSION_get_critical(e) && !understood_critical(obj)) {
            char txt[80];
            if (OBJ_obj2txt(txt, sizeof txt, obj, 1) <= 0) snprintf(txt, sizeof txt, "?");
            rc = rp_err(ei, RINGP2P_ECERT, "unknown critical extension %s", txt);
            goto out;
        }
    }
    if (found == NULL) {
        rc = rp_err(ei, RINGP2P_ECERT, "certificate lacks the libp2p public key extension (%s)",
                    RP_TLS_EXT_OID_TEXT);
        goto out;
    }
    const ASN1_OCTET_STRING *val = X509_EXTENSION_get_data(found);
    rc = check_signed_key(x, ASN1_STRING_get0_data(val), (size_t)ASN1_STRING_length(val),
                          sigs_known, identity, ei);
out:
    EVP_PKEY_free(pk);
    X509_free(x);
    return rc;
}
