/*
 * /plaintext/2.0.0: the Exchange decoder and a session fed arbitrary bytes.
 * Invariants:
 * - the strict decoder and protobuf-c agree: what the strict one accepts,
 *   protobuf-c accepts with the same fields (both present or absent, equal);
 * - decode -> encode -> decode gives the same fields;
 * - a session fed the input in two pieces never moves its cursor on failure
 *   or past the input, stays failed with the same code, and on success has a
 *   remote key whose peer ID is the one reported.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/plaintext.pb-c.h"
#include "security/plaintext.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                  \
    do {                                                                                          \
        if (!(c)) {                                                                               \
            fprintf(stderr, "fuzz_plaintext: %s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                                              \
        }                                                                                         \
    } while (0)

/* The spec's Ed25519 test key (peer-ids.md), our side of the session. */
static const uint8_t local_pb[] = { 0x08, 0x01, 0x12, 0x20, 0x1e, 0xd1, 0xe8, 0xfa, 0xe2,
                                    0xc4, 0xa1, 0x44, 0xb8, 0xbe, 0x8f, 0xd4, 0xb4, 0x7b,
                                    0xf3, 0xd3, 0xb3, 0x4b, 0x87, 0x1c, 0x3c, 0xac, 0xf6,
                                    0x01, 0x0f, 0x0e, 0x42, 0xd4, 0x74, 0xfc, 0xe2, 0x7e };

static bool same(rp_iov v, bool has, ProtobufCBinaryData b)
{
    if ((v.base != NULL) != has) return false;
    return !has || (v.len == b.len && (v.len == 0 || memcmp(v.base, b.data, v.len) == 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data;
    rp_plaintext_exchange ex;
    if (rp_plaintext_exchange_decode(&p, data + size, &ex, NULL) == 0) {
        CHECK(p == data + size);
        /*
         * protobuf-c refuses some inputs base/pb.h reads, as go does (a length
         * varint with redundant 0x80 bytes); compare the fields when both accept.
         */
        Rp__Exchange *m = rp__exchange__unpack(NULL, size, data);
        if (m != NULL) {
            CHECK(same(ex.id, m->has_id, m->id));
            CHECK(same(ex.pubkey, m->has_pubkey, m->pubkey));
            rp__exchange__free_unpacked(m, NULL);
        }
        if (ex.id.base != NULL && ex.pubkey.base != NULL) {
            static uint8_t enc[RP_PLAINTEXT_EXCHANGE_MAX + 16];
            ssize_t n = rp_plaintext_exchange_encode(ex.id.base, ex.id.len, ex.pubkey.base,
                                                     ex.pubkey.len, enc, sizeof(enc));
            CHECK(n > 0);
            const uint8_t *q = enc;
            rp_plaintext_exchange ex2;
            CHECK(rp_plaintext_exchange_decode(&q, enc + n, &ex2, NULL) == 0);
            CHECK(ex2.id.len == ex.id.len && memcmp(ex2.id.base, ex.id.base, ex.id.len) == 0);
            CHECK(ex2.pubkey.len == ex.pubkey.len &&
                  memcmp(ex2.pubkey.base, ex.pubkey.base, ex.pubkey.len) == 0);
        }
    } else {
        CHECK(p == data);
    }

    ringp2p_pubkey *k = NULL;
    CHECK(ringp2p_pubkey_from_protobuf(local_pb, sizeof(local_pb), &k, NULL) == 0);
    rp_plaintext_config cfg = { .local_key = k, .expected_peer = NULL };
    rp_plaintext *s = NULL;
    CHECK(rp_plaintext_new(&cfg, &s, NULL) == 0);
    static uint8_t out[RP_PLAINTEXT_FRAME_MAX];
    rp_wbuf w = rp_wbuf_make(out, sizeof(out));
    size_t cut = size > 0 ? data[0] % (size + 1) : 0;
    p = data;
    int r = rp_plaintext_handshake(s, &p, data + cut, &w, NULL);
    CHECK(w.len > 0);
    if (r == 0) {
        CHECK(p == data);
        r = rp_plaintext_handshake(s, &p, data + size, &w, NULL);
    }
    CHECK(p >= data && p <= data + size);
    if (r < 0) {
        CHECK(p == data);
        const uint8_t *q = data;
        CHECK(rp_plaintext_handshake(s, &q, data + size, &w, NULL) == r);
        CHECK(rp_plaintext_remote_key(s) == NULL);
    } else if (r == RP_PLAINTEXT_DONE) {
        ringp2p_peer_id id;
        ringp2p_peer_id_from_pubkey(rp_plaintext_remote_key(s), &id);
        CHECK(ringp2p_peer_id_equal(&id, rp_plaintext_remote_peer(s)));
        CHECK(p > data);
    }
    rp_plaintext_free(s);
    ringp2p_pubkey_free(k);
    return 0;
}
