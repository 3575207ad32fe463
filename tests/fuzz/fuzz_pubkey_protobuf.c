/*
 * Protobuf PublicKey decoding (peer-ids.md "Keys").
 *
 * Invariants:
 * - the envelope reader accepts exactly the canonical encodings: what
 *   protobuf-c parses without unknown fields, with a KeyType value, and packs
 *   back to the same bytes;
 * - a decoded key re-encodes to the input, byte for byte, both through the
 *   public encoder and afresh from its parsed form (the spec's deterministic
 *   encoding: we accept only the canonical form of each key type's Data);
 * - its peer ID is well-formed, matches it, and (identity) gives it back.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/mem.h>

#include "crypto/key.h"
#include "proto/keys.pb-c.h"
#include "ringp2p/key.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool protobuf_c_says_canonical(const uint8_t *data, size_t size, Rp__PublicKey **out)
{
    Rp__PublicKey *m = rp__public_key__unpack(NULL, size, data);
    *out = m;
    if (m == NULL || m->base.n_unknown_fields != 0) return false;
    if ((int)m->type < 0 || (int)m->type > 3) return false;
    size_t n = rp__public_key__get_packed_size(m);
    if (n != size) return false;
    uint8_t *buf = malloc(n > 0 ? n : 1);
    if (buf == NULL) abort();
    rp__public_key__pack(m, buf);
    bool same = memcmp(buf, data, size) == 0;
    free(buf);
    return same;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t type;
    const uint8_t *d;
    size_t dn;
    int env = rp_keypb_decode(data, size, "PublicKey", &type, &d, &dn, NULL);
    if (size <= RINGP2P_KEY_PROTOBUF_MAX) {
        Rp__PublicKey *m;
        bool canonical = protobuf_c_says_canonical(data, size, &m);
        if ((env == 0) != canonical) abort();
        if (env == 0 && ((uint64_t)m->type != type || m->data.len != dn ||
                         (dn > 0 && memcmp(m->data.data, d, dn) != 0)))
            abort();
        if (m != NULL) rp__public_key__free_unpacked(m, NULL);
    }

    ringp2p_pubkey *pk = NULL;
    ringp2p_errinfo ei = { 0 };
    int r = ringp2p_pubkey_from_protobuf(data, size, &pk, &ei);
    if (r != 0) {
        if (r > 0 || ei.code != r || ei.msg[0] == '\0' || pk != NULL) abort();
        return 0;
    }
    if (env != 0) abort();

    uint8_t out[RINGP2P_KEY_PROTOBUF_MAX];
    ssize_t n = ringp2p_pubkey_to_protobuf(pk, out, sizeof(out));
    if (n != (ssize_t)size || memcmp(out, data, size) != 0) abort();
    /* Not just the bytes kept: the parsed key itself encodes to the input's Data. */
    uint8_t *enc;
    size_t enc_len;
    if (rp_pubkey_marshal(pk, &enc, &enc_len) != 0) abort();
    if (enc_len != dn || memcmp(enc, d, dn) != 0) abort();
    OPENSSL_free(enc);

    ringp2p_peer_id id, id2;
    if (ringp2p_peer_id_from_pubkey(pk, &id) != 0) abort();
    if (!ringp2p_peer_id_matches(&id, pk)) abort();
    if (ringp2p_peer_id_from_bytes(id.bytes, id.len, &id2, NULL) != 0) abort();
    if (!ringp2p_peer_id_equal(&id, &id2)) abort();
    ringp2p_pubkey *x = NULL;
    r = ringp2p_peer_id_extract_pubkey(&id, &x);
    if (size <= RP_PEER_ID_INLINE_MAX) {
        if (r != 0 || !ringp2p_pubkey_equal(x, pk)) abort();
    } else if (r != RINGP2P_ENOENT) {
        abort();
    }
    ringp2p_pubkey_free(x);

    ringp2p_pubkey *dup;
    if (ringp2p_pubkey_dup(pk, &dup) != 0 || !ringp2p_pubkey_equal(dup, pk)) abort();
    ringp2p_pubkey_free(dup);

    /* Fuzzer bytes as a signature of themselves: exercises the verifiers; never valid. */
    if (ringp2p_pubkey_verify(pk, data, size, d, dn) != RINGP2P_ESIGNATURE) abort();
    ringp2p_pubkey_free(pk);
    return 0;
}
