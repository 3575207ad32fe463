/*
 * The NoiseHandshakePayload decoder against protobuf-c's generated decoder.
 *
 * Whatever rp_noise_payload_decode accepts, protobuf-c must accept with the
 * same fields; packing protobuf-c's message again (unknown fields dropped) and
 * decoding that must give the same fields once more; and when the payload is
 * one ringp2p writes itself (key, signature, muxers only), our encoder must
 * reproduce it. On refusal the cursor must not move.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/noise.pb-c.h"
#include "security/noise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_view(const rp_iov *a, const rp_iov *b)
{
    return (a->base == NULL) == (b->base == NULL) && a->len == b->len &&
           (a->len == 0 || memcmp(a->base, b->base, a->len) == 0);
}

static int same_payload(const rp_noise_payload *a, const rp_noise_payload *b)
{
    if (!same_view(&a->identity_key, &b->identity_key)) return 0;
    if (!same_view(&a->identity_sig, &b->identity_sig)) return 0;
    if (a->has_extensions != b->has_extensions || a->n_muxers != b->n_muxers ||
        a->n_certhashes != b->n_certhashes)
        return 0;
    for (size_t i = 0; i < a->n_muxers; i++)
        if (!same_view(&a->muxers[i], &b->muxers[i])) return 0;
    for (size_t i = 0; i < a->n_certhashes; i++)
        if (!same_view(&a->certhashes[i], &b->certhashes[i])) return 0;
    return 1;
}

static int same_bytes(const rp_iov *v, int has, const ProtobufCBinaryData *b)
{
    if ((v->base != NULL) != (has != 0)) return 0;
    return v->len == b->len && (v->len == 0 || memcmp(v->base, b->data, v->len) == 0);
}

static void agree_with_protobuf_c(const rp_noise_payload *pl, const Rp__NoiseHandshakePayload *m)
{
    if (!same_bytes(&pl->identity_key, m->has_identity_key, &m->identity_key)) abort();
    if (!same_bytes(&pl->identity_sig, m->has_identity_sig, &m->identity_sig)) abort();
    if (pl->has_extensions != (m->extensions != NULL)) abort();
    if (m->extensions == NULL) return;
    const Rp__NoiseExtensions *e = m->extensions;
    if (e->n_stream_muxers != pl->n_muxers || e->n_webtransport_certhashes != pl->n_certhashes)
        abort();
    for (size_t i = 0; i < pl->n_muxers; i++)
        if (pl->muxers[i].len != 0 &&
            memcmp(pl->muxers[i].base, e->stream_muxers[i], pl->muxers[i].len) != 0)
            abort();
    for (size_t i = 0; i < pl->n_certhashes; i++)
        if (!same_bytes(&pl->certhashes[i], 1, &e->webtransport_certhashes[i])) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rp_noise_payload *pl = malloc(2 * sizeof(*pl));
    if (pl == NULL) return 0;
    const uint8_t *p = data;
    ringp2p_errinfo ei;
    int r = rp_noise_payload_decode(&p, data + size, pl, &ei);
    if (r < 0) {
        if (p != data || ei.code != r) abort();
        free(pl);
        return 0;
    }
    if (p != data + size) abort();

    Rp__NoiseHandshakePayload *m = rp__noise_handshake_payload__unpack(NULL, size, data);
    if (m == NULL) abort(); /* we accepted what protobuf refuses */
    agree_with_protobuf_c(pl, m);

    /* Muxer names with a NUL do not survive protobuf-c's char * strings. */
    int nul_free = 1;
    for (size_t i = 0; i < pl->n_muxers; i++)
        if (memchr(pl->muxers[i].base, 0, pl->muxers[i].len) != NULL) nul_free = 0;

    if (nul_free) {
        size_t u = m->base.n_unknown_fields, ue = 0;
        m->base.n_unknown_fields = 0;
        if (m->extensions != NULL) {
            ue = m->extensions->base.n_unknown_fields;
            m->extensions->base.n_unknown_fields = 0;
        }
        size_t n = rp__noise_handshake_payload__get_packed_size(m);
        uint8_t *buf = malloc(n + 1);
        if (buf == NULL) abort();
        rp__noise_handshake_payload__pack(m, buf);
        m->base.n_unknown_fields = u;
        if (m->extensions != NULL) m->extensions->base.n_unknown_fields = ue;
        const uint8_t *q = buf;
        if (rp_noise_payload_decode(&q, buf + n, &pl[1], NULL) != 0) abort();
        if (!same_payload(&pl[0], &pl[1])) abort();
        free(buf);
    }

    /* A payload of the shape ringp2p writes must come back from our encoder byte for byte. */
    if (nul_free && pl->identity_key.base != NULL && pl->identity_sig.base != NULL &&
        pl->n_certhashes == 0 && pl->has_extensions == (pl->n_muxers > 0)) {
        char *names[RP_NOISE_MUXERS_MAX];
        size_t k = 0;
        for (; k < pl->n_muxers; k++) {
            names[k] = strndup(pl->muxers[k].base, pl->muxers[k].len);
            if (names[k] == NULL) abort();
        }
        ssize_t n = rp_noise_payload_encode(pl->identity_key.base, pl->identity_key.len,
                                            pl->identity_sig.base, pl->identity_sig.len,
                                            (const char *const *)names, k, NULL, 0);
        uint8_t *buf = malloc((size_t)n + 1);
        if (n < 0 || buf == NULL) abort();
        if (rp_noise_payload_encode(pl->identity_key.base, pl->identity_key.len,
                                    pl->identity_sig.base, pl->identity_sig.len,
                                    (const char *const *)names, k, buf, (size_t)n) != n)
            abort();
        const uint8_t *q = buf;
        if (rp_noise_payload_decode(&q, buf + n, &pl[1], NULL) != 0) abort();
        if (!same_payload(&pl[0], &pl[1])) abort();
        free(buf);
        for (size_t i = 0; i < k; i++) free(names[i]);
    }
    rp__noise_handshake_payload__free_unpacked(m, NULL);
    free(pl);
    return 0;
}
