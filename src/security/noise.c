/*
 * libp2p Noise: the Noise XX handshake state machine, the libp2p handshake
 * payload, and the framed transport (see noise.h).
 *
 * Points the specs leave open, settled by reading go-libp2p
 * (p2p/security/noise) and js-libp2p-noise:
 *  - Message 1's payload is ignored, as both do (the spec says the initiator
 *    sends nothing there).
 *  - identity_key and identity_sig must be present; the peer ID is checked
 *    before the signature, as go-libp2p does, so a wrong peer is reported as
 *    such even when it also signed badly.
 *  - Early muxer negotiation happens only when both sides sent a non-empty
 *    stream_muxers list. The result is the first entry of the initiator's list
 *    the responder supports (inlined-muxer-negotiation.md); with no overlap the
 *    handshake fails, as that spec says and js-libp2p does (go-libp2p falls
 *    back to multistream-select instead). Note js-libp2p as initiator walks
 *    the responder's list instead of its own; the two agree whenever the
 *    first common choice is the same in both orders, which holds for the
 *    usual single-muxer lists.
 *  - A DH result of all zeros (low-order remote key) fails the handshake, as
 *    in go-libp2p.
 */
#include "security/noise.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/digest.h>
#include <openssl/hkdf.h>
#include <openssl/mem.h>
#include <openssl/sha.h>

#include "base/error.h"
#include "base/varint.h"
#include "proto/noise.pb-c.h"

_Static_assert(sizeof(RP_NOISE_PROTOCOL_NAME) - 1 == RP_NOISE_HASHLEN,
               "the protocol name is exactly HASHLEN bytes, so h starts as the name itself");

/* ---- CipherState -------------------------------------------------------------------------- */

int rp_noise_cipher_init(rp_noise_cipher *c, const uint8_t key[32])
{
    rp_aead_clear(&c->aead);
    c->n = 0;
    return rp_aead_init(&c->aead, &rp_aead_chacha20_poly1305, key);
}

void rp_noise_cipher_clear(rp_noise_cipher *c)
{
    rp_aead_clear(&c->aead);
    c->n = 0;
}

void rp_noise_cipher_set_nonce(rp_noise_cipher *c, uint64_t n)
{
    c->n = n;
}

ssize_t rp_noise_cipher_encrypt(rp_noise_cipher *c, const uint8_t *ad, size_t ad_len, uint8_t *buf,
                                size_t len)
{
    if (c->aead.alg == NULL) return (ssize_t)len;
    if (c->n > RP_NOISE_NONCE_MAX) return RINGP2P_ELIMIT;
    rp_aead_job j = { .buf = buf, .len = len, .ad = ad, .ad_len = ad_len };
    rp_aead_counter_nonce(c->aead.alg, j.nonce, c->n);
    int r = rp_aead_seal_batch(&c->aead, &j, 1);
    if (r < 0) return r;
    c->n++;
    return (ssize_t)(len + RP_NOISE_TAGLEN);
}

ssize_t rp_noise_cipher_decrypt(rp_noise_cipher *c, const uint8_t *ad, size_t ad_len, uint8_t *buf,
                                size_t len)
{
    if (c->aead.alg == NULL) return (ssize_t)len;
    if (c->n > RP_NOISE_NONCE_MAX) return RINGP2P_ELIMIT;
    uint8_t nonce[RP_AEAD_NONCE_LEN];
    rp_aead_counter_nonce(c->aead.alg, nonce, c->n);
    ssize_t r = rp_aead_open(&c->aead, buf, len, nonce, ad, ad_len);
    if (r < 0) return r;
    c->n++;
    return r;
}

/* ---- SymmetricState ----------------------------------------------------------------------- */

static void mix_hash(rp_noise_hs *hs, const uint8_t *data, size_t len)
{
    SHA256_CTX sha;
    SHA256_Init(&sha);
    SHA256_Update(&sha, hs->h, sizeof(hs->h));
    SHA256_Update(&sha, data, len);
    SHA256_Final(hs->h, &sha);
}

/* HKDF(ck, ikm) with two outputs (Noise §4.3) is RFC 5869 HKDF with salt ck and empty info. */
static int hkdf2(const uint8_t ck[RP_NOISE_HASHLEN], const uint8_t *ikm, size_t ikm_len,
                 uint8_t out[2 * RP_NOISE_HASHLEN])
{
    if (!HKDF(out, 2 * RP_NOISE_HASHLEN, EVP_sha256(), ikm, ikm_len, ck, RP_NOISE_HASHLEN, NULL, 0))
        return RINGP2P_ECRYPTO;
    return 0;
}

static int mix_key(rp_noise_hs *hs, const uint8_t *ikm, size_t len)
{
    uint8_t out[2 * RP_NOISE_HASHLEN];
    int r = hkdf2(hs->ck, ikm, len, out);
    if (r == 0) {
        memcpy(hs->ck, out, RP_NOISE_HASHLEN);
        r = rp_noise_cipher_init(&hs->cs, out + RP_NOISE_HASHLEN);
    }
    OPENSSL_cleanse(out, sizeof(out));
    return r;
}

/* MixKey(DH(priv, pub)); `what` names the DH for the error ("ee"). */
static int mix_dh(rp_noise_hs *hs, const uint8_t *priv, const uint8_t *pub, const char *what,
                  ringp2p_errinfo *ei)
{
    uint8_t shared[RP_NOISE_DHLEN];
    if (rp_x25519_dh(shared, priv, pub) < 0)
        return rp_err(ei, RINGP2P_EPROTOCOL,
                      "Noise handshake: DH %s is all zeros (the peer sent a low-order X25519 key)",
                      what);
    int r = mix_key(hs, shared, sizeof(shared));
    OPENSSL_cleanse(shared, sizeof(shared));
    return r < 0 ? rp_err(ei, r, "Noise handshake: MixKey failed") : 0;
}

/* EncryptAndHash of the len plaintext bytes already at buf (room for a tag follows). */
static ssize_t encrypt_and_hash(rp_noise_hs *hs, uint8_t *buf, size_t len)
{
    ssize_t n = rp_noise_cipher_encrypt(&hs->cs, hs->h, sizeof(hs->h), buf, len);
    if (n < 0) return n;
    mix_hash(hs, buf, (size_t)n);
    return n;
}

/* DecryptAndHash in place: h must absorb the ciphertext, so hash it before it is overwritten. */
static ssize_t decrypt_and_hash(rp_noise_hs *hs, uint8_t *buf, size_t len)
{
    uint8_t h2[RP_NOISE_HASHLEN];
    SHA256_CTX sha;
    SHA256_Init(&sha);
    SHA256_Update(&sha, hs->h, sizeof(hs->h));
    SHA256_Update(&sha, buf, len);
    SHA256_Final(h2, &sha);
    ssize_t n = rp_noise_cipher_decrypt(&hs->cs, hs->h, sizeof(hs->h), buf, len);
    if (n >= 0) memcpy(hs->h, h2, sizeof(h2));
    return n;
}

/* ---- HandshakeState (XX: -> e; <- e, ee, s, es; -> s, se) --------------------------------- */

/* Initialize(): h and ck from the protocol name, then the prologue (§5.3); no keys yet. */
static void hs_init_base(rp_noise_hs *hs, bool initiator, const uint8_t *prologue,
                         size_t prologue_len)
{
    memset(hs, 0, sizeof(*hs));
    hs->initiator = initiator;
    memcpy(hs->h, RP_NOISE_PROTOCOL_NAME, RP_NOISE_HASHLEN);
    memcpy(hs->ck, hs->h, RP_NOISE_HASHLEN);
    mix_hash(hs, prologue, prologue_len);
}

static void hs_fix_ephemeral(rp_noise_hs *hs, const uint8_t *e_priv)
{
    if (e_priv == NULL) return;
    memcpy(hs->e, e_priv, RP_NOISE_DHLEN);
    rp_x25519_public(hs->e_pub, hs->e);
    hs->e_fixed = true;
}

void rp_noise_hs_init(rp_noise_hs *hs, bool initiator, const uint8_t *prologue, size_t prologue_len,
                      const uint8_t *s_priv, const uint8_t *e_priv)
{
    hs_init_base(hs, initiator, prologue, prologue_len);
    if (s_priv != NULL) {
        memcpy(hs->s, s_priv, RP_NOISE_DHLEN);
        rp_x25519_public(hs->s_pub, hs->s);
    } else {
        rp_x25519_keypair(hs->s_pub, hs->s);
    }
    hs_fix_ephemeral(hs, e_priv);
}

bool rp_noise_hs_writes_next(const rp_noise_hs *hs)
{
    /* Messages 0 and 2 are the initiator's, 1 the responder's. */
    return hs->step < 3 && ((hs->step % 2 == 0) == hs->initiator);
}

bool rp_noise_hs_done(const rp_noise_hs *hs)
{
    return hs->step == 3;
}

/* Bytes of message `step` besides the payload: keys, their tags, the payload's tag. */
static size_t msg_overhead(unsigned step)
{
    switch (step) {
    case 0: return RP_NOISE_DHLEN;                                        /* e */
    case 1: return RP_NOISE_DHLEN + RP_NOISE_DHLEN + 2 * RP_NOISE_TAGLEN; /* e, s, payload */
    default: return RP_NOISE_DHLEN + 2 * RP_NOISE_TAGLEN;                 /* s, payload */
    }
}

size_t rp_noise_hs_write_len(const rp_noise_hs *hs, size_t payload_len)
{
    return msg_overhead(hs->step) + payload_len;
}

ssize_t rp_noise_hs_write(rp_noise_hs *hs, const uint8_t *payload, size_t payload_len, uint8_t *out,
                          size_t cap, ringp2p_errinfo *ei)
{
    if (!rp_noise_hs_writes_next(hs))
        return rp_err(ei, RINGP2P_EINVAL, "Noise handshake: not this side's turn to write");
    size_t need = rp_noise_hs_write_len(hs, payload_len);
    if (need > cap)
        return rp_err(ei, RINGP2P_ENOBUF,
                      "Noise handshake: message %u needs %zu bytes, room for %zu", hs->step + 1u,
                      need, cap);
    uint8_t *p = out;
    int r;
    ssize_t n;
    if (hs->step == 0 || hs->step == 1) { /* e */
        if (!hs->e_fixed) rp_x25519_keypair(hs->e_pub, hs->e);
        memcpy(p, hs->e_pub, RP_NOISE_DHLEN);
        mix_hash(hs, p, RP_NOISE_DHLEN);
        p += RP_NOISE_DHLEN;
    }
    if (hs->step == 1) { /* ee, s, es (responder: es = DH(s, re)) */
        if ((r = mix_dh(hs, hs->e, hs->re, "ee", ei)) < 0) return r;
        memcpy(p, hs->s_pub, RP_NOISE_DHLEN);
        if ((n = encrypt_and_hash(hs, p, RP_NOISE_DHLEN)) < 0) return rp_err(ei, (int)n, NULL);
        p += n;
        if ((r = mix_dh(hs, hs->s, hs->re, "es", ei)) < 0) return r;
    }
    if (hs->step == 2) { /* s, se (initiator: se = DH(s, re)) */
        memcpy(p, hs->s_pub, RP_NOISE_DHLEN);
        if ((n = encrypt_and_hash(hs, p, RP_NOISE_DHLEN)) < 0) return rp_err(ei, (int)n, NULL);
        p += n;
        if ((r = mix_dh(hs, hs->s, hs->re, "se", ei)) < 0) return r;
    }
    if (payload_len != 0) memmove(p, payload, payload_len);
    if ((n = encrypt_and_hash(hs, p, payload_len)) < 0) return rp_err(ei, (int)n, NULL);
    p += n;
    hs->step++;
    return p - out;
}

int rp_noise_hs_read(rp_noise_hs *hs, uint8_t *msg, size_t len, rp_iov *payload,
                     ringp2p_errinfo *ei)
{
    if (hs->step >= 3 || rp_noise_hs_writes_next(hs))
        return rp_err(ei, RINGP2P_EINVAL, "Noise handshake: not this side's turn to read");
    unsigned num = hs->step + 1u;
    /* The least a message can be: its keys and tags with an empty payload. */
    size_t min = msg_overhead(hs->step);
    if (len < min)
        return rp_err(ei, RINGP2P_EPROTOCOL,
                      "Noise handshake message %u is %zu bytes, shorter than the %zu its keys take",
                      num, len, min);
    uint8_t *p = msg, *end = msg + len;
    int r;
    ssize_t n;
    if (hs->step == 0 || hs->step == 1) { /* e */
        memcpy(hs->re, p, RP_NOISE_DHLEN);
        mix_hash(hs, p, RP_NOISE_DHLEN);
        p += RP_NOISE_DHLEN;
    }
    if (hs->step == 1) { /* ee, s, es (initiator: es = DH(e, rs)) */
        if ((r = mix_dh(hs, hs->e, hs->re, "ee", ei)) < 0) return r;
        if (decrypt_and_hash(hs, p, RP_NOISE_DHLEN + RP_NOISE_TAGLEN) < 0)
            return rp_err(ei, RINGP2P_EAUTH,
                          "Noise handshake message 2: the responder's static key does not "
                          "decrypt (tampered or not from the peer)");
        memcpy(hs->rs, p, RP_NOISE_DHLEN);
        p += RP_NOISE_DHLEN + RP_NOISE_TAGLEN;
        if ((r = mix_dh(hs, hs->e, hs->rs, "es", ei)) < 0) return r;
    }
    if (hs->step == 2) { /* s, se (responder: se = DH(e, rs)) */
        if (decrypt_and_hash(hs, p, RP_NOISE_DHLEN + RP_NOISE_TAGLEN) < 0)
            return rp_err(ei, RINGP2P_EAUTH,
                          "Noise handshake message 3: the initiator's static key does not "
                          "decrypt (tampered or not from the peer)");
        memcpy(hs->rs, p, RP_NOISE_DHLEN);
        p += RP_NOISE_DHLEN + RP_NOISE_TAGLEN;
        if ((r = mix_dh(hs, hs->e, hs->rs, "se", ei)) < 0) return r;
    }
    n = decrypt_and_hash(hs, p, (size_t)(end - p));
    if (n < 0)
        return rp_err(ei, RINGP2P_EAUTH,
                      "Noise handshake message %u: the payload does not decrypt (tampered or not "
                      "from the peer)",
                      num);
    payload->base = p;
    payload->len = (size_t)n;
    hs->step++;
    return 0;
}

int rp_noise_hs_split(rp_noise_hs *hs, rp_noise_cipher *send, rp_noise_cipher *recv)
{
    if (!rp_noise_hs_done(hs)) return RINGP2P_EINVAL;
    uint8_t out[2 * RP_NOISE_HASHLEN];
    int r = hkdf2(hs->ck, NULL, 0, out);
    if (r == 0) {
        /* The first key is the initiator's sending key (§5.2 Split). */
        const uint8_t *k1 = out, *k2 = out + RP_NOISE_HASHLEN;
        r = rp_noise_cipher_init(send, hs->initiator ? k1 : k2);
        if (r == 0) r = rp_noise_cipher_init(recv, hs->initiator ? k2 : k1);
    }
    OPENSSL_cleanse(out, sizeof(out));
    return r;
}

const uint8_t *rp_noise_hs_hash(const rp_noise_hs *hs)
{
    return hs->h;
}

void rp_noise_hs_clear(rp_noise_hs *hs)
{
    rp_noise_cipher_clear(&hs->cs);
    OPENSSL_cleanse(hs, sizeof(*hs));
}

/* ---- handshake payload protobuf ----------------------------------------------------------- */

/* Field numbers (noise/README.md "The libp2p Handshake Payload"). */
enum {
    PB_IDENTITY_KEY = 1,
    PB_IDENTITY_SIG = 2,
    PB_EXTENSIONS = 4,
    PB_EXT_CERTHASHES = 1,
    PB_EXT_MUXERS = 2,
};

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

/*
 * Reads one field header and body at *p: for WT_LEN the body view, for others
 * it only skips. Groups (wire types 3, 4) and 6, 7 are malformed.
 */
static int pb_field(const uint8_t **p, const uint8_t *end, const uint8_t *start, const char *msg,
                    uint64_t *field, unsigned *wt, rp_iov *body, ringp2p_errinfo *ei)
{
    const uint8_t *q = *p;
    uint64_t tag, v;
    if (rp_uvarint_decode(&q, end, &tag) < 0)
        return rp_err(ei, RINGP2P_EPROTOBUF, "%s: malformed field tag at byte %td", msg,
                      *p - start);
    *field = tag >> 3;
    *wt = (unsigned)(tag & 7);
    if (*field == 0 || *field > 0x1fffffff)
        return rp_err(ei, RINGP2P_EPROTOBUF, "%s: invalid field number %llu at byte %td", msg,
                      (unsigned long long)*field, *p - start);
    switch (*wt) {
    case WT_VARINT:
        if (rp_uvarint_decode(&q, end, &v) < 0)
            return rp_err(ei, RINGP2P_EPROTOBUF, "%s: field %llu: malformed varint", msg,
                          (unsigned long long)*field);
        break;
    case WT_I64:
    case WT_I32: {
        size_t w = *wt == WT_I64 ? 8 : 4;
        if ((size_t)(end - q) < w)
            return rp_err(ei, RINGP2P_EPROTOBUF, "%s: field %llu: truncated fixed-width value", msg,
                          (unsigned long long)*field);
        q += w;
        break;
    }
    case WT_LEN:
        if (rp_uvarint_decode(&q, end, &v) < 0)
            return rp_err(ei, RINGP2P_EPROTOBUF, "%s: field %llu: malformed length", msg,
                          (unsigned long long)*field);
        if (v > (uint64_t)(end - q))
            return rp_err(ei, RINGP2P_EPROTOBUF,
                          "%s: field %llu: length %llu but only %td bytes follow", msg,
                          (unsigned long long)*field, (unsigned long long)v, end - q);
        body->base = (void *)(uintptr_t)q;
        body->len = (size_t)v;
        q += v;
        break;
    default:
        return rp_err(ei, RINGP2P_EPROTOBUF, "%s: field %llu has invalid wire type %u", msg,
                      (unsigned long long)*field, *wt);
    }
    *p = q;
    return 0;
}

static int decode_extensions(const uint8_t *buf, size_t len, rp_noise_payload *out,
                             ringp2p_errinfo *ei)
{
    static const char msg[] = "NoiseExtensions";
    const uint8_t *p = buf, *end = buf + len;
    while (p < end) {
        uint64_t field;
        unsigned wt;
        rp_iov body;
        int r = pb_field(&p, end, buf, msg, &field, &wt, &body, ei);
        if (r < 0) return r;
        if (field != PB_EXT_CERTHASHES && field != PB_EXT_MUXERS) continue; /* registry: ignore */
        const char *name =
            field == PB_EXT_MUXERS ? "stream_muxers (2)" : "webtransport_certhashes (1)";
        if (wt != WT_LEN)
            return rp_err(ei, RINGP2P_EPROTOBUF, "%s: field %s has wire type %u, expected 2", msg,
                          name, wt);
        size_t *n = field == PB_EXT_MUXERS ? &out->n_muxers : &out->n_certhashes;
        size_t max = field == PB_EXT_MUXERS ? RP_NOISE_MUXERS_MAX : RP_NOISE_CERTHASHES_MAX;
        if (*n == max)
            return rp_err(ei, RINGP2P_ELIMIT, "%s: more than %zu entries in %s", msg, max, name);
        (field == PB_EXT_MUXERS ? out->muxers : out->certhashes)[(*n)++] = body;
    }
    return 0;
}

int rp_noise_payload_decode(const uint8_t **src, const uint8_t *end, rp_noise_payload *out,
                            ringp2p_errinfo *ei)
{
    static const char msg[] = "NoiseHandshakePayload";
    const uint8_t *start = *src, *p = *src;
    memset(out, 0, offsetof(rp_noise_payload, certhashes));
    out->n_muxers = 0;
    while (p < end) {
        uint64_t field;
        unsigned wt;
        rp_iov body;
        int r = pb_field(&p, end, start, msg, &field, &wt, &body, ei);
        if (r < 0) return r;
        rp_iov *slot;
        const char *name;
        switch (field) {
        case PB_IDENTITY_KEY: slot = &out->identity_key, name = "identity_key (1)"; break;
        case PB_IDENTITY_SIG: slot = &out->identity_sig, name = "identity_sig (2)"; break;
        case PB_EXTENSIONS: slot = NULL, name = "extensions (4)"; break;
        default: continue; /* unknown: skipped, as protobuf says */
        }
        if (wt != WT_LEN)
            return rp_err(ei, RINGP2P_EPROTOBUF, "%s: field %s has wire type %u, expected 2", msg,
                          name, wt);
        /* Protobuf would keep the last (or merge); no encoder repeats them, so a repeat is refused.
         */
        bool seen = slot != NULL ? slot->base != NULL : out->has_extensions;
        if (seen) return rp_err(ei, RINGP2P_EPROTOBUF, "%s: field %s appears twice", msg, name);
        if (slot != NULL) {
            *slot = body;
            continue;
        }
        out->has_extensions = true;
        if ((r = decode_extensions(body.base, body.len, out, ei)) < 0) return r;
    }
    *src = p;
    return 0;
}

ssize_t rp_noise_payload_encode(const uint8_t *key_pb, size_t key_pb_len, const uint8_t *sig,
                                size_t sig_len, const char *const *muxers, size_t n_muxers,
                                uint8_t *dst, size_t cap)
{
    Rp__NoiseHandshakePayload m = RP__NOISE_HANDSHAKE_PAYLOAD__INIT;
    Rp__NoiseExtensions ext = RP__NOISE_EXTENSIONS__INIT;
    m.has_identity_key = 1;
    m.identity_key.data = (uint8_t *)(uintptr_t)key_pb;
    m.identity_key.len = key_pb_len;
    m.has_identity_sig = 1;
    m.identity_sig.data = (uint8_t *)(uintptr_t)sig;
    m.identity_sig.len = sig_len;
    if (n_muxers > 0) {
        /* protobuf-c's type is char ** but pack only reads. */
        ext.n_stream_muxers = n_muxers;
        ext.stream_muxers = (char **)(uintptr_t)muxers;
        m.extensions = &ext;
    }
    size_t n = rp__noise_handshake_payload__get_packed_size(&m);
    if (dst == NULL && cap == 0) return (ssize_t)n;
    if (n > cap) return RINGP2P_ENOBUF;
    rp__noise_handshake_payload__pack(&m, dst);
    return (ssize_t)n;
}

/* ---- libp2p session ----------------------------------------------------------------------- */

enum { S_HANDSHAKE, S_DONE, S_FAILED };

/* Lives only during the handshake; wiped and freed when it ends. */
struct hs_part {
    rp_noise_hs hs;
    size_t payload_len;
    uint8_t payload[]; /* this side's encoded NoiseHandshakePayload */
};

struct rp_noise {
    int state;
    int err; /* the failure, once S_FAILED */
    bool initiator;
    bool has_expected;
    ringp2p_peer_id expected;
    const char *const *muxers; /* the config's, borrowed */
    size_t n_muxers;
    uint8_t *split_keys_out; /* the config's, borrowed until the handshake ends */
    rp_sigcache *verified;   /* the config's, borrowed */
    struct hs_part *hp;
    /* After the handshake. */
    ringp2p_pubkey *remote_key;
    ringp2p_peer_id remote_id;
    uint8_t remote_static[RP_NOISE_DHLEN];
    const char *muxer;
    rp_noise_cipher send, recv;
};

/* Marks the session dead with code r (a negative code already recorded in ei). */
static int fail(rp_noise *s, int r)
{
    if (s->state != S_FAILED) {
        s->state = S_FAILED;
        s->err = r;
        if (s->hp != NULL) {
            rp_noise_hs_clear(&s->hp->hs);
            OPENSSL_free(s->hp);
            s->hp = NULL;
        }
        rp_noise_cipher_clear(&s->send);
        rp_noise_cipher_clear(&s->recv);
    }
    return r;
}

static int failed(const rp_noise *s, ringp2p_errinfo *ei)
{
    return rp_err(ei, s->err, "Noise session already failed earlier (%s)",
                  ringp2p_strerror(s->err));
}

struct rp_noise_static {
    uint8_t priv[RP_NOISE_DHLEN], pub[RP_NOISE_DHLEN];
    size_t sig_len, key_pb_len;
    uint8_t sig[RINGP2P_SIGNATURE_MAX];
    uint8_t key_pb[]; /* the identity's PublicKey protobuf */
};

/* A static key pair (fresh, or from fixed_priv for tests), signed by identity. */
static int static_make(const ringp2p_privkey *identity, const uint8_t *fixed_priv,
                       rp_noise_static **out, ringp2p_errinfo *ei)
{
    if (identity == NULL) return rp_err(ei, RINGP2P_EINVAL, "Noise: no identity key given");
    uint8_t key_pb[RINGP2P_KEY_PROTOBUF_MAX];
    ssize_t key_len =
        ringp2p_pubkey_to_protobuf(ringp2p_privkey_public(identity), key_pb, sizeof(key_pb));
    if (key_len < 0) return rp_err(ei, (int)key_len, "Noise: encoding the identity key failed");
    rp_noise_static *st = OPENSSL_malloc(sizeof(*st) + (size_t)key_len);
    if (st == NULL) return rp_err(ei, RINGP2P_ENOMEM, NULL);
    if (fixed_priv != NULL) {
        memcpy(st->priv, fixed_priv, RP_NOISE_DHLEN);
        rp_x25519_public(st->pub, st->priv);
    } else {
        rp_x25519_keypair(st->pub, st->priv);
    }
    uint8_t tbs[RP_NOISE_SIG_PREFIX_LEN + RP_NOISE_DHLEN];
    memcpy(tbs, RP_NOISE_SIG_PREFIX, RP_NOISE_SIG_PREFIX_LEN);
    memcpy(tbs + RP_NOISE_SIG_PREFIX_LEN, st->pub, RP_NOISE_DHLEN);
    ssize_t sig_len = ringp2p_privkey_sign(identity, tbs, sizeof(tbs), st->sig, sizeof(st->sig));
    if (sig_len < 0) {
        OPENSSL_free(st); /* wipes */
        return rp_err(ei, (int)sig_len, "Noise: signing the static key failed");
    }
    st->sig_len = (size_t)sig_len;
    st->key_pb_len = (size_t)key_len;
    memcpy(st->key_pb, key_pb, (size_t)key_len);
    *out = st;
    return 0;
}

int rp_noise_static_new(const ringp2p_privkey *identity, rp_noise_static **out, ringp2p_errinfo *ei)
{
    return static_make(identity, NULL, out, ei);
}

void rp_noise_static_free(rp_noise_static *st)
{
    OPENSSL_free(st); /* OPENSSL_free wipes before freeing */
}

int rp_noise_new(const rp_noise_config *cfg, rp_noise **out, ringp2p_errinfo *ei)
{
    if (cfg->identity == NULL && cfg->static_key == NULL)
        return rp_err(ei, RINGP2P_EINVAL, "Noise: no identity key given");
    if (cfg->n_muxers > RP_NOISE_MUXERS_MAX)
        return rp_err(ei, RINGP2P_EINVAL, "Noise: %zu muxers given, at most %d", cfg->n_muxers,
                      RP_NOISE_MUXERS_MAX);
    for (size_t i = 0; i < cfg->n_muxers; i++)
        if (cfg->muxers[i] == NULL)
            return rp_err(ei, RINGP2P_EINVAL, "Noise: muxer name %zu is NULL", i);

    /* The node's signed static key, or one made (and signed) for this session only. */
    rp_noise_static *own = NULL;
    const rp_noise_static *st = cfg->static_key;
    if (st == NULL || cfg->test_static_priv != NULL) {
        int r = static_make(cfg->identity, cfg->test_static_priv, &own, ei);
        if (r < 0) return r;
        st = own;
    }
    /* Signature lengths vary (ECDSA), so the payload is sized from the signed key. */
    ssize_t plen = rp_noise_payload_encode(st->key_pb, st->key_pb_len, st->sig, st->sig_len,
                                           cfg->muxers, cfg->n_muxers, NULL, 0);
    int r = 0;
    rp_noise *s = NULL;
    /* Message 2 has the most around its payload. */
    if (msg_overhead(1) + (size_t)plen > RP_NOISE_MSG_MAX)
        r = rp_err(ei, RINGP2P_ELIMIT,
                   "Noise: the handshake payload (%zd bytes) does not fit in a Noise message",
                   plen);
    if (r == 0 && (s = calloc(1, sizeof(*s))) == NULL) r = rp_err(ei, RINGP2P_ENOMEM, NULL);
    if (r == 0 && (s->hp = OPENSSL_malloc(sizeof(*s->hp) + (size_t)plen)) == NULL)
        r = rp_err(ei, RINGP2P_ENOMEM, NULL);
    if (r < 0) {
        free(s);
        rp_noise_static_free(own);
        return r;
    }
    s->state = S_HANDSHAKE;
    s->initiator = cfg->initiator;
    s->muxers = cfg->muxers;
    s->n_muxers = cfg->n_muxers;
    s->split_keys_out = cfg->split_keys_out;
    s->verified = cfg->verified;
    if (cfg->expected_peer != NULL) {
        s->has_expected = true;
        s->expected = *cfg->expected_peer;
    }
    rp_noise_hs *hs = &s->hp->hs;
    hs_init_base(hs, cfg->initiator, cfg->prologue, cfg->prologue_len);
    memcpy(hs->s, st->priv, RP_NOISE_DHLEN);
    memcpy(hs->s_pub, st->pub, RP_NOISE_DHLEN);
    hs_fix_ephemeral(hs, cfg->test_ephemeral_priv);
    s->hp->payload_len = (size_t)plen;
    rp_noise_payload_encode(st->key_pb, st->key_pb_len, st->sig, st->sig_len, cfg->muxers,
                            cfg->n_muxers, s->hp->payload, (size_t)plen);
    rp_noise_static_free(own);
    *out = s;
    return 0;
}

void rp_noise_free(rp_noise *s)
{
    if (s == NULL) return;
    if (s->hp != NULL) {
        rp_noise_hs_clear(&s->hp->hs);
        OPENSSL_free(s->hp); /* OPENSSL_free wipes before freeing */
    }
    rp_noise_cipher_clear(&s->send);
    rp_noise_cipher_clear(&s->recv);
    ringp2p_pubkey_free(s->remote_key);
    OPENSSL_cleanse(s, sizeof(*s));
    free(s);
}

static size_t frame_len(const uint8_t *p)
{
    return (size_t)p[0] << 8 | p[1];
}

static void put_frame_len(uint8_t *p, size_t len)
{
    p[0] = (uint8_t)(len >> 8);
    p[1] = (uint8_t)len;
}

/*
 * "a, b, c" for error messages: names cut at 40 bytes, bytes outside printable
 * ASCII shown as '?' (peer strings are arbitrary), the whole cut to fit buf.
 */
static void list_names(char *buf, size_t cap, const rp_iov *views, const char *const *strs,
                       size_t n)
{
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = views != NULL ? views[i].base : (const uint8_t *)strs[i];
        size_t len = views != NULL ? views[i].len : strlen(strs[i]);
        if (len > 40) len = 40;
        for (size_t k = 0; k < (i ? 2u : 0u) + len && used + 1 < cap; k++) {
            uint8_t c = i && k < 2 ? (uint8_t) ", "[k] : p[k - (i ? 2 : 0)];
            buf[used++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
        }
    }
    buf[used] = '\0';
}

/* inlined-muxer-negotiation.md: the first of the initiator's muxers the responder supports. */
static int negotiate_muxer(rp_noise *s, const rp_noise_payload *pl, ringp2p_errinfo *ei)
{
    s->muxer = NULL;
    if (s->n_muxers == 0 || pl->n_muxers == 0) return 0; /* multistream-select decides */
    if (s->initiator) {
        for (size_t i = 0; i < s->n_muxers; i++) {
            size_t len = strlen(s->muxers[i]);
            for (size_t j = 0; j < pl->n_muxers; j++) {
                if (pl->muxers[j].len == len &&
                    memcmp(pl->muxers[j].base, s->muxers[i], len) == 0) {
                    s->muxer = s->muxers[i];
                    return 0;
                }
            }
        }
    } else {
        for (size_t j = 0; j < pl->n_muxers; j++) {
            for (size_t i = 0; i < s->n_muxers; i++) {
                size_t len = strlen(s->muxers[i]);
                if (pl->muxers[j].len == len &&
                    memcmp(pl->muxers[j].base, s->muxers[i], len) == 0) {
                    s->muxer = s->muxers[i];
                    return 0;
                }
            }
        }
    }
    char ours[96], theirs[96];
    list_names(ours, sizeof(ours), NULL, s->muxers, s->n_muxers);
    list_names(theirs, sizeof(theirs), pl->muxers, NULL, pl->n_muxers);
    return rp_err(ei, RINGP2P_ENEGOTIATION,
                  "Noise early muxer negotiation: no stream muxer in common (we offer %s; the peer "
                  "offers %s)",
                  ours, theirs);
}

/* Checks the remote's payload (message 2 for the initiator, 3 for the responder). */
static int check_remote_payload(rp_noise *s, const rp_iov *payload, ringp2p_errinfo *ei)
{
    rp_noise_payload pl;
    const uint8_t *p = payload->base;
    int r = rp_noise_payload_decode(&p, p + payload->len, &pl, ei);
    if (r < 0) return r;
    if (pl.identity_key.base == NULL)
        return rp_err(ei, RINGP2P_EPROTOBUF, "Noise handshake payload has no identity_key");
    if (pl.identity_sig.base == NULL)
        return rp_err(ei, RINGP2P_EPROTOBUF, "Noise handshake payload has no identity_sig");
    ringp2p_pubkey *key = NULL;
    r = ringp2p_pubkey_from_protobuf(pl.identity_key.base, pl.identity_key.len, &key, ei);
    if (r < 0) return r;
    ringp2p_peer_id id;
    ringp2p_peer_id_from_pubkey(key, &id);
    if (s->has_expected && !ringp2p_peer_id_equal(&id, &s->expected)) {
        char want[RINGP2P_PEER_ID_STR_MAX], got[RINGP2P_PEER_ID_STR_MAX];
        if (ringp2p_peer_id_to_string(&s->expected, want, sizeof(want)) < 0)
            snprintf(want, sizeof(want), "(invalid)");
        ringp2p_peer_id_to_string(&id, got, sizeof(got));
        ringp2p_pubkey_free(key);
        return rp_err(ei, RINGP2P_EPEERMISMATCH, "Noise: expected peer %s but the remote is %s",
                      want, got);
    }
    uint8_t tbs[RP_NOISE_SIG_PREFIX_LEN + RP_NOISE_DHLEN];
    memcpy(tbs, RP_NOISE_SIG_PREFIX, RP_NOISE_SIG_PREFIX_LEN);
    memcpy(tbs + RP_NOISE_SIG_PREFIX_LEN, s->hp->hs.rs, RP_NOISE_DHLEN);
    if (rp_sigcache_verify(s->verified, key, tbs, sizeof(tbs), pl.identity_sig.base,
                           pl.identity_sig.len) < 0) {
        const char *type = ringp2p_key_type_name(ringp2p_pubkey_type(key));
        ringp2p_pubkey_free(key);
        return rp_err(ei, RINGP2P_ESIGNATURE,
                      "Noise: the identity_sig does not sign the peer's static key with its "
                      "%s identity key",
                      type);
    }
    if ((r = negotiate_muxer(s, &pl, ei)) < 0) {
        ringp2p_pubkey_free(key);
        return r;
    }
    s->remote_key = key;
    s->remote_id = id;
    memcpy(s->remote_static, s->hp->hs.rs, RP_NOISE_DHLEN);
    return 0;
}

static int finish(rp_noise *s, ringp2p_errinfo *ei)
{
    int r = rp_noise_hs_split(&s->hp->hs, &s->send, &s->recv);
    if (r == 0 && s->split_keys_out != NULL)
        r = hkdf2(s->hp->hs.ck, NULL, 0, s->split_keys_out); /* Split's outputs, k1 || k2 */
    s->split_keys_out = NULL;
    if (r < 0) return rp_err(ei, r, "Noise: Split failed");
    rp_noise_hs_clear(&s->hp->hs);
    OPENSSL_free(s->hp);
    s->hp = NULL;
    s->state = S_DONE;
    return RP_NOISE_DONE;
}

int rp_noise_handshake(rp_noise *s, uint8_t **src, uint8_t *end, rp_wbuf *out, ringp2p_errinfo *ei)
{
    if (s->state == S_DONE) return RP_NOISE_DONE;
    if (s->state == S_FAILED) return failed(s, ei);
    rp_noise_hs *hs = &s->hp->hs;
    for (;;) {
        if (rp_noise_hs_writes_next(hs)) {
            /* Message 1 carries no payload (noise/README.md: nothing before secrecy). */
            size_t plen = hs->step == 0 ? 0 : s->hp->payload_len;
            size_t need = RP_NOISE_FRAME_HEADER_LEN + rp_noise_hs_write_len(hs, plen);
            if (out->len > out->cap || out->cap - out->len < need)
                return rp_err(ei, RINGP2P_ENOBUF,
                              "Noise: handshake message %u needs %zu bytes of output room",
                              hs->step + 1u, need);
            uint8_t *f = out->base + out->len;
            ssize_t n = rp_noise_hs_write(hs, s->hp->payload, plen, f + RP_NOISE_FRAME_HEADER_LEN,
                                          need - RP_NOISE_FRAME_HEADER_LEN, ei);
            if (n < 0) return fail(s, (int)n);
            put_frame_len(f, (size_t)n);
            out->len += need;
            if (rp_noise_hs_done(hs)) {
                int r = finish(s, ei);
                return r < 0 ? fail(s, r) : r;
            }
            continue;
        }
        uint8_t *p = *src;
        if (end - p < RP_NOISE_FRAME_HEADER_LEN) return 0;
        size_t len = frame_len(p);
        if ((size_t)(end - p) - RP_NOISE_FRAME_HEADER_LEN < len) return 0;
        rp_iov payload;
        int r = rp_noise_hs_read(hs, p + RP_NOISE_FRAME_HEADER_LEN, len, &payload, ei);
        if (r < 0) return fail(s, r);
        *src = p + RP_NOISE_FRAME_HEADER_LEN + len;
        /* Message 1's payload is ignored; 2 and 3 carry the peer's identity. */
        if (hs->step >= 2 && (r = check_remote_payload(s, &payload, ei)) < 0) return fail(s, r);
        if (rp_noise_hs_done(hs)) {
            r = finish(s, ei);
            return r < 0 ? fail(s, r) : r;
        }
    }
}

bool rp_noise_is_done(const rp_noise *s)
{
    return s->state == S_DONE;
}

const ringp2p_peer_id *rp_noise_remote_peer(const rp_noise *s)
{
    return s->state == S_DONE ? &s->remote_id : NULL;
}

const ringp2p_pubkey *rp_noise_remote_key(const rp_noise *s)
{
    return s->state == S_DONE ? s->remote_key : NULL;
}

const uint8_t *rp_noise_remote_static(const rp_noise *s)
{
    return s->state == S_DONE ? s->remote_static : NULL;
}

const uint8_t *rp_noise_static_public(const rp_noise_static *st)
{
    return st->pub;
}

const char *rp_noise_muxer(const rp_noise *s)
{
    return s->state == S_DONE ? s->muxer : NULL;
}

void rp_noise_set_nonces(rp_noise *s, uint64_t send, uint64_t recv)
{
    rp_noise_cipher_set_nonce(&s->send, send);
    rp_noise_cipher_set_nonce(&s->recv, recv);
}

static size_t message_count(size_t plaintext_len)
{
    return plaintext_len == 0
               ? 1
               : (plaintext_len + RP_NOISE_PLAINTEXT_MAX - 1) / RP_NOISE_PLAINTEXT_MAX;
}

size_t rp_noise_sealed_len(size_t plaintext_len)
{
    return plaintext_len +
           message_count(plaintext_len) * (RP_NOISE_FRAME_HEADER_LEN + RP_NOISE_TAGLEN);
}

size_t rp_noise_plaintext_fit(size_t cap)
{
    const size_t frame = RP_NOISE_FRAME_MAX, per = RP_NOISE_FRAME_HEADER_LEN + RP_NOISE_TAGLEN;
    size_t full = cap / frame, rest = cap % frame;
    size_t pt = full * RP_NOISE_PLAINTEXT_MAX;
    if (rest > per) pt += rest - per;
    return pt;
}

ssize_t rp_noise_seal(rp_noise *s, const rp_iov *in, size_t n, uint8_t *out, size_t cap,
                      ringp2p_errinfo *ei)
{
    if (s->state == S_FAILED) return failed(s, ei);
    if (s->state != S_DONE)
        return rp_err(ei, RINGP2P_EINVAL, "Noise: seal before the handshake is done");
    size_t total = rp_iov_total(in, n);
    size_t need = rp_noise_sealed_len(total);
    if (need > cap)
        return rp_err(ei, RINGP2P_ENOBUF, "Noise: sealing %zu bytes needs %zu, room for %zu", total,
                      need, cap);
    size_t msgs = message_count(total);
    /* Nonces n .. n+msgs-1 must all be at most RP_NOISE_NONCE_MAX. */
    if (s->send.n > RP_NOISE_NONCE_MAX || msgs - 1 > RP_NOISE_NONCE_MAX - s->send.n)
        return fail(s, rp_err(ei, RINGP2P_ELIMIT,
                              "Noise: send nonces exhausted (2^64-1 messages); the connection "
                              "must end"));
    /*
     * Each record's ciphertext is written straight from the caller's pieces
     * (rp_aead_seal_cursor); a backend without a gather seal copies, then
     * seals in place.
     */
    rp_iov_cursor cur = rp_iov_cursor_make(in, n);
    uint8_t *p = out;
    size_t left = total;
    for (size_t m = 0; m < msgs; m++) {
        size_t len = left < RP_NOISE_PLAINTEXT_MAX ? left : RP_NOISE_PLAINTEXT_MAX;
        put_frame_len(p, len + RP_NOISE_TAGLEN);
        uint8_t nonce[RP_AEAD_NONCE_LEN];
        rp_aead_counter_nonce(s->send.aead.alg, nonce, s->send.n + m);
        int r = rp_aead_seal_cursor(&s->send.aead, p + RP_NOISE_FRAME_HEADER_LEN, nonce, &cur, len,
                                    NULL, 0);
        if (r < 0) return fail(s, rp_err(ei, r, "Noise: sealing failed"));
        p += RP_NOISE_FRAME_HEADER_LEN + len + RP_NOISE_TAGLEN;
        left -= len;
    }
    s->send.n += msgs;
    return p - out;
}

int rp_noise_open(rp_noise *s, uint8_t **src, uint8_t *end, rp_iov *plain, ringp2p_errinfo *ei)
{
    if (s->state == S_FAILED) return failed(s, ei);
    if (s->state != S_DONE)
        return rp_err(ei, RINGP2P_EINVAL, "Noise: open before the handshake is done");
    uint8_t *p = *src;
    if (end - p < RP_NOISE_FRAME_HEADER_LEN) return 0;
    size_t len = frame_len(p);
    if ((size_t)(end - p) - RP_NOISE_FRAME_HEADER_LEN < len) return 0;
    if (len < RP_NOISE_TAGLEN)
        return fail(s, rp_err(ei, RINGP2P_EPROTOCOL,
                              "Noise: transport message of %zu bytes is shorter than its %d-byte "
                              "tag",
                              len, RP_NOISE_TAGLEN));
    uint64_t nonce = s->recv.n;
    ssize_t r = rp_noise_cipher_decrypt(&s->recv, NULL, 0, p + RP_NOISE_FRAME_HEADER_LEN, len);
    if (r == RINGP2P_ELIMIT)
        return fail(s, rp_err(ei, RINGP2P_ELIMIT,
                              "Noise: receive nonces exhausted (2^64-1 messages); the connection "
                              "must end"));
    if (r < 0)
        return fail(s, rp_err(ei, RINGP2P_EAUTH,
                              "Noise: transport message %llu does not authenticate (tampered, "
                              "reordered, replayed or not from the peer)",
                              (unsigned long long)nonce));
    plain->base = p + RP_NOISE_FRAME_HEADER_LEN;
    plain->len = (size_t)r;
    *src = p + RP_NOISE_FRAME_HEADER_LEN + len;
    return 1;
}

ssize_t rp_noise_open_batch(rp_noise *s, uint8_t **src, uint8_t *end, rp_iov *views, size_t cap,
                            ringp2p_errinfo *ei)
{
    size_t count = 0;
    while (count < cap) {
        rp_iov v;
        int r = rp_noise_open(s, src, end, &v, ei);
        if (r < 0) return r;
        if (r == 0) break;
        if (v.len != 0) views[count++] = v;
    }
    return (ssize_t)count;
}
