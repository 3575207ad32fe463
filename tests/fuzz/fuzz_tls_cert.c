/*
 * The libp2p TLS certificate path on peer bytes: rp_tls_cert_verify on the
 * input as a certificate, and rp_tls_signed_key_decode on it as an extension
 * value.
 *
 * Invariants: verification is a pure function (the same input gives the same
 * code twice, and a key only on success, whose peer ID can be computed); a
 * certificate it accepts is accepted by rp_tls_cert_verify_known with
 * sigs_known (the DER walk of a certificate seen before) with an equal key,
 * and at other times (0, 10^11, the edges of its own validity) both give the
 * same verdict, which at the edges is: valid from NotBefore to NotAfter, both
 * inclusive; a SignedKey that decodes re-encodes to exactly the bytes consumed
 * (DER has one encoding), and decoding that gives the same fields; on refusal
 * the cursor does not move.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "security/tls_cert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Inside every spec vector's validity (1975..4096). */
#define FUZZ_NOW ((int64_t)1700000000)

/* A Time's Unix seconds (false when BoringSSL cannot say). */
static bool time_of(const ASN1_TIME *t, int64_t *out)
{
    ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
    int days = 0, secs = 0;
    bool ok = epoch != NULL && ASN1_TIME_diff(&days, &secs, epoch, t);
    ASN1_TIME_free(epoch);
    *out = (int64_t)days * 86400 + secs;
    return ok;
}

/*
 * rp_tls_cert_verify_known with sigs_known against the full check at `at`,
 * for a certificate the full check accepted at FUZZ_NOW: the same code, and
 * equal keys on success. want >= 0: the code must also be 0 (want 1) or not
 * (want 0).
 */
static void check_known_at(const uint8_t *data, size_t size, int64_t at, int want)
{
    ringp2p_pubkey *a = NULL, *b = NULL;
    int ra = rp_tls_cert_verify(data, size, at, &a, NULL);
    int rb = rp_tls_cert_verify_known(data, size, at, true, &b, NULL);
    if (ra != rb || (ra == 0) != (b != NULL) || (ra == 0 && !ringp2p_pubkey_equal(a, b))) abort();
    if (want >= 0 && (ra == 0) != (want == 1)) abort();
    ringp2p_pubkey_free(a);
    ringp2p_pubkey_free(b);
}

/* The checks above for a certificate (with identity `key`) accepted at FUZZ_NOW. */
static void check_known(const uint8_t *data, size_t size, const ringp2p_pubkey *key)
{
    ringp2p_pubkey *k = NULL;
    if (rp_tls_cert_verify_known(data, size, FUZZ_NOW, true, &k, NULL) != 0 ||
        !ringp2p_pubkey_equal(k, key))
        abort();
    ringp2p_pubkey_free(k);
    check_known_at(data, size, 0, -1);
    check_known_at(data, size, 100000000000LL, -1);
    const uint8_t *p = data;
    X509 *x = d2i_X509(NULL, &p, (long)size);
    if (x == NULL) abort(); /* the full check parsed it */
    int64_t nb, na;
    bool have_nb = time_of(X509_get0_notBefore(x), &nb);
    bool have_na = time_of(X509_get0_notAfter(x), &na);
    X509_free(x);
    if (have_nb) {
        check_known_at(data, size, nb - 1, 0);
        check_known_at(data, size, nb, 1);
    }
    if (have_na) {
        check_known_at(data, size, na, 1);
        check_known_at(data, size, na + 1, 0);
    }
}

static void check_cert(const uint8_t *data, size_t size)
{
    ringp2p_pubkey *a = NULL, *b = NULL;
    int ra = rp_tls_cert_verify(data, size, FUZZ_NOW, &a, NULL);
    int rb = rp_tls_cert_verify(data, size, FUZZ_NOW, &b, NULL);
    if (ra != rb || ra > 0) abort();
    if ((ra == 0) != (a != NULL) || (rb == 0) != (b != NULL)) abort();
    if (ra == 0) {
        ringp2p_peer_id id;
        if (!ringp2p_pubkey_equal(a, b) || ringp2p_peer_id_from_pubkey(a, &id) != 0 ||
            !ringp2p_peer_id_matches(&id, b))
            abort();
        check_known(data, size, a);
    }
    ringp2p_pubkey_free(a);
    ringp2p_pubkey_free(b);
}

static void check_signed_key(const uint8_t *data, size_t size)
{
    const uint8_t *p = data;
    rp_tls_signed_key sk;
    ringp2p_errinfo ei;
    int rc = rp_tls_signed_key_decode(&p, data + size, &sk, &ei);
    if (rc < 0) {
        if (p != data || ei.code != rc) abort();
        return;
    }
    size_t used = (size_t)(p - data);
    size_t want = rp_tls_signed_key_len(sk.public_key.len, sk.signature.len);
    uint8_t *out = malloc(want ? want : 1);
    if (out == NULL) return;
    ssize_t n = rp_tls_signed_key_encode(sk.public_key.base, sk.public_key.len, sk.signature.base,
                                         sk.signature.len, out, want);
    if (n < 0 || (size_t)n != used || (size_t)n != want || memcmp(out, data, used) != 0) abort();
    const uint8_t *q = out;
    rp_tls_signed_key again;
    if (rp_tls_signed_key_decode(&q, out + n, &again, NULL) != 0 || q != out + n ||
        again.public_key.len != sk.public_key.len || again.signature.len != sk.signature.len)
        abort();
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_cert(data, size);
    check_signed_key(data, size);
    return 0;
}
