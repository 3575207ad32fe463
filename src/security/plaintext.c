#include "security/plaintext.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/pb.h"
#include "base/varint.h"
#include "proto/plaintext.pb-c.h"

_Static_assert(RP_PLAINTEXT_EXCHANGE_MAX < (1u << (7 * RP_PLAINTEXT_PREFIX_MAX)),
               "the length prefix of the largest Exchange fits RP_PLAINTEXT_PREFIX_MAX bytes");

struct rp_plaintext {
    uint8_t frame[RP_PLAINTEXT_FRAME_MAX]; /* our framed Exchange */
    size_t frame_len;
    bool sent;
    bool received;
    int error; /* sticky */
    ringp2p_errinfo error_info;
    bool has_expected;
    ringp2p_peer_id expected;
    ringp2p_peer_id remote_id;
    ringp2p_pubkey *remote_key;
};

int rp_plaintext_exchange_decode(const uint8_t **src, const uint8_t *end,
                                 rp_plaintext_exchange *out, ringp2p_errinfo *ei)
{
    const uint8_t *start = *src, *p = *src;
    if ((size_t)(end - p) > RP_PLAINTEXT_EXCHANGE_MAX)
        return rp_err(ei, RINGP2P_ELIMIT, "plaintext: Exchange of %zu bytes exceeds %u",
                      (size_t)(end - p), (unsigned)RP_PLAINTEXT_EXCHANGE_MAX);
    rp_plaintext_exchange ex = { { NULL, 0 }, { NULL, 0 } };
    while (p < end) {
        rp_pb_field f;
        RP_TRY(rp_pb_next(&p, end, start, "Exchange", &f, ei));
        if (f.num != 1 && f.num != 2) continue;
        const char *name = f.num == 1 ? "id" : "pubkey";
        if (f.wt != RP_PB_LEN) return rp_pb_wrong_type("Exchange", name, &f, ei);
        rp_iov *dst = f.num == 1 ? &ex.id : &ex.pubkey;
        /* protobuf would let the last one win; two claims of identity are refused instead. */
        if (dst->base != NULL)
            return rp_err(ei, RINGP2P_EPROTOBUF, "plaintext: Exchange has field %s twice", name);
        *dst = f.body;
        /* An empty field still counts as present: point it at the input. */
        if (dst->base == NULL) dst->base = (void *)(uintptr_t)p;
    }
    *out = ex;
    *src = end;
    return 0;
}

ssize_t rp_plaintext_exchange_encode(const uint8_t *id, size_t id_len, const uint8_t *pubkey,
                                     size_t pubkey_len, uint8_t *dst, size_t cap)
{
    Rp__Exchange m = RP__EXCHANGE__INIT;
    m.has_id = true;
    m.id.data = (uint8_t *)(uintptr_t)id;
    m.id.len = id_len;
    m.has_pubkey = true;
    m.pubkey.data = (uint8_t *)(uintptr_t)pubkey;
    m.pubkey.len = pubkey_len;
    size_t n = rp__exchange__get_packed_size(&m);
    if (n > cap) return RINGP2P_ENOBUF;
    rp__exchange__pack(&m, dst);
    return (ssize_t)n;
}

int rp_plaintext_new(const rp_plaintext_config *cfg, rp_plaintext **out, ringp2p_errinfo *ei)
{
    if (cfg == NULL || cfg->local_key == NULL)
        return rp_err(ei, RINGP2P_EINVAL, "plaintext: no local key");
    rp_plaintext *s = calloc(1, sizeof(*s));
    if (s == NULL) return rp_err(ei, RINGP2P_ENOMEM, NULL);
    uint8_t key_pb[RINGP2P_KEY_PROTOBUF_MAX];
    ssize_t kl = ringp2p_pubkey_to_protobuf(cfg->local_key, key_pb, sizeof(key_pb));
    ringp2p_peer_id id;
    ringp2p_peer_id_from_pubkey(cfg->local_key, &id);
    ssize_t bl = kl < 0 ? kl
                        : rp_plaintext_exchange_encode(id.bytes, id.len, key_pb, (size_t)kl,
                                                       s->frame + RP_PLAINTEXT_PREFIX_MAX,
                                                       RP_PLAINTEXT_EXCHANGE_MAX);
    if (bl < 0) {
        free(s);
        return rp_err(ei, (int)bl, "plaintext: cannot encode our Exchange");
    }
    /* Encode the prefix in place, then slide the body next to it. */
    size_t pl = rp_uvarint_len((uint64_t)bl);
    uint8_t prefix[RP_UVARINT_MAX_LEN];
    rp_uvarint_encode(prefix, sizeof(prefix), (uint64_t)bl);
    memmove(s->frame + pl, s->frame + RP_PLAINTEXT_PREFIX_MAX, (size_t)bl);
    memcpy(s->frame, prefix, pl);
    s->frame_len = pl + (size_t)bl;
    if (cfg->expected_peer != NULL) {
        s->has_expected = true;
        s->expected = *cfg->expected_peer;
    }
    *out = s;
    return 0;
}

void rp_plaintext_free(rp_plaintext *s)
{
    if (s == NULL) return;
    ringp2p_pubkey_free(s->remote_key);
    free(s);
}

static int fail(rp_plaintext *s, int code, ringp2p_errinfo *ei)
{
    s->error = code;
    if (ei != NULL) *ei = s->error_info;
    return code;
}

/* Checks one Exchange body against the rules in the header; sets the remote peer. */
static int check_exchange(rp_plaintext *s, const uint8_t *body, size_t len, ringp2p_errinfo *ei)
{
    const uint8_t *p = body;
    rp_plaintext_exchange ex;
    RP_TRY(rp_plaintext_exchange_decode(&p, body + len, &ex, ei));
    if (ex.pubkey.base == NULL)
        return rp_err(ei, RINGP2P_EPROTOBUF, "plaintext: Exchange without pubkey");
    if (ex.id.base == NULL) return rp_err(ei, RINGP2P_EPROTOBUF, "plaintext: Exchange without id");
    ringp2p_pubkey *key = NULL;
    RP_TRY(ringp2p_pubkey_from_protobuf(ex.pubkey.base, ex.pubkey.len, &key, ei));
    ringp2p_peer_id claimed, derived;
    int r = ringp2p_peer_id_from_bytes(ex.id.base, ex.id.len, &claimed, ei);
    if (r < 0) {
        ringp2p_pubkey_free(key);
        return r;
    }
    ringp2p_peer_id_from_pubkey(key, &derived);
    char a[RINGP2P_PEER_ID_STR_MAX], b[RINGP2P_PEER_ID_STR_MAX];
    if (!ringp2p_peer_id_equal(&claimed, &derived)) {
        ringp2p_peer_id_to_string(&claimed, a, sizeof(a));
        ringp2p_peer_id_to_string(&derived, b, sizeof(b));
        ringp2p_pubkey_free(key);
        return rp_err(ei, RINGP2P_EPROTOCOL,
                      "plaintext: Exchange claims peer %s but its public key is peer %s", a, b);
    }
    if (s->has_expected && !ringp2p_peer_id_equal(&s->expected, &derived)) {
        ringp2p_peer_id_to_string(&s->expected, a, sizeof(a));
        ringp2p_peer_id_to_string(&derived, b, sizeof(b));
        ringp2p_pubkey_free(key);
        return rp_err(ei, RINGP2P_EPEERMISMATCH, "plaintext: expected peer %s but the remote is %s",
                      a, b);
    }
    s->remote_id = derived;
    s->remote_key = key;
    return 0;
}

int rp_plaintext_handshake(rp_plaintext *s, const uint8_t **src, const uint8_t *end, rp_wbuf *out,
                           ringp2p_errinfo *ei)
{
    if (s->error != 0) {
        if (ei != NULL) *ei = s->error_info;
        return s->error;
    }
    if (!s->sent) {
        if (out == NULL || out->len > out->cap || out->cap - out->len < s->frame_len)
            return RINGP2P_ENOBUF;
        rp_wbuf_put(out, s->frame, s->frame_len);
        s->sent = true;
    }
    if (!s->received) {
        const uint8_t *p = *src;
        uint64_t n;
        int r = rp_uvarint_decode(&p, end, &n);
        if (r == RINGP2P_ETRUNCATED) return 0;
        if (r < 0) {
            rp_err(&s->error_info, r, "plaintext: malformed length prefix");
            return fail(s, r, ei);
        }
        if (n > RP_PLAINTEXT_EXCHANGE_MAX) {
            rp_err(&s->error_info, RINGP2P_ELIMIT, "plaintext: Exchange of %llu bytes exceeds %u",
                   (unsigned long long)n, (unsigned)RP_PLAINTEXT_EXCHANGE_MAX);
            return fail(s, RINGP2P_ELIMIT, ei);
        }
        if ((uint64_t)(end - p) < n) return 0;
        r = check_exchange(s, p, (size_t)n, &s->error_info);
        if (r < 0) return fail(s, r, ei);
        *src = p + n;
        s->received = true;
    }
    return RP_PLAINTEXT_DONE;
}

bool rp_plaintext_is_done(const rp_plaintext *s)
{
    return s->sent && s->received && s->error == 0;
}

const ringp2p_peer_id *rp_plaintext_remote_peer(const rp_plaintext *s)
{
    return s->received ? &s->remote_id : NULL;
}

const ringp2p_pubkey *rp_plaintext_remote_key(const rp_plaintext *s)
{
    return s->received ? s->remote_key : NULL;
}
