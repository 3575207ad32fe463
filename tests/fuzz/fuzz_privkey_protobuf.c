/*
 * Protobuf PrivateKey decoding (peer-ids.md "Keys"): key files and imports.
 *
 * decode→encode is not the identity here: the legacy 96-byte Ed25519 form is
 * re-encoded in 64 bytes, and an ECPrivateKey without its optional public key
 * gets one. So the invariants are: encode→decode→encode is stable, both
 * decodes give the same public key, a signature by the key verifies under its
 * public key, and its public key survives its own protobuf round trip.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ringp2p/key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ringp2p_privkey *k = NULL, *k2 = NULL;
    ringp2p_errinfo ei = { 0 };
    int r = ringp2p_privkey_from_protobuf(data, size, &k, &ei);
    if (r != 0) {
        if (r > 0 || ei.code != r || ei.msg[0] == '\0' || k != NULL) abort();
        return 0;
    }
    static uint8_t a[RINGP2P_KEY_PROTOBUF_MAX], b[RINGP2P_KEY_PROTOBUF_MAX];
    ssize_t na = ringp2p_privkey_to_protobuf(k, a, sizeof(a));
    if (na <= 0) abort();
    if (ringp2p_privkey_from_protobuf(a, (size_t)na, &k2, NULL) != 0) abort();
    ssize_t nb = ringp2p_privkey_to_protobuf(k2, b, sizeof(b));
    if (nb != na || memcmp(a, b, (size_t)na) != 0) abort();
    if (ringp2p_privkey_type(k) != ringp2p_privkey_type(k2)) abort();
    const ringp2p_pubkey *pk = ringp2p_privkey_public(k);
    if (!ringp2p_pubkey_equal(pk, ringp2p_privkey_public(k2))) abort();

    static const uint8_t msg[] = "fuzz_privkey_protobuf";
    uint8_t sig[RINGP2P_SIGNATURE_MAX];
    ssize_t ns = ringp2p_privkey_sign(k, msg, sizeof(msg), sig, sizeof(sig));
    if (ns <= 0) abort();
    if (ringp2p_pubkey_verify(ringp2p_privkey_public(k2), msg, sizeof(msg), sig, (size_t)ns) != 0)
        abort();

    ssize_t np = ringp2p_pubkey_to_protobuf(pk, b, sizeof(b));
    ringp2p_pubkey *p2 = NULL;
    if (np <= 0 || ringp2p_pubkey_from_protobuf(b, (size_t)np, &p2, NULL) != 0) abort();
    if (!ringp2p_pubkey_equal(p2, pk)) abort();
    ringp2p_pubkey_free(p2);
    ringp2p_privkey_free(k2);
    ringp2p_privkey_free(k);
    return 0;
}
