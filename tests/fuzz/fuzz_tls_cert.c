/*
 * The libp2p TLS certificate path on peer bytes: rp_tls_cert_verify on the
 * input as a certificate, and rp_tls_signed_key_decode on it as an extension
 * value.
 *
 * Invariants: verification is a pure function (the same input gives the same
 * code twice, and a key only on success, whose peer ID can be computed); a
 * SignedKey that decodes re-encodes to exactly the bytes consumed (DER has one
 * encoding), and decoding that gives the same fields; on refusal the cursor
 * does not move.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "security/tls_cert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Inside every spec vector's validity (1975..4096). */
#define FUZZ_NOW ((int64_t)1700000000)

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
