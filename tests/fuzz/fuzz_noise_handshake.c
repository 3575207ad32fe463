/*
 * libp2p Noise sessions fed untrusted bytes. The first input byte picks a mode:
 *
 *  0  a responder fed the rest as the initiator's byte stream (in uneven reads);
 *  1  an initiator fed the rest as the responder's stream, after its message 1;
 *  2  a real handshake whose message 3 carries the rest as its payload, so the
 *     payload checks (key, signature, muxers) run behind valid encryption;
 *  3  after a real handshake, a script of operations building the wire the
 *     transport opener reads: seal plaintext, insert raw bytes, flip a bit.
 *
 * Keys are fixed (Ed25519 identities from fixed seeds, fixed X25519 keys), so
 * seeds can hold valid transcripts that reach the deep states. Invariants: the
 * cursor only moves forward inside the input; a failure is final and repeats
 * its code; a completed handshake names the peer whose key it verified and a
 * muxer the rules allow; the transport delivers a prefix of what was sealed,
 * and all of it when nothing was tampered with.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/curve25519.h>

#include "security/noise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BUF_CAP (4 * RP_NOISE_FRAME_MAX)

static const char *const fz_muxers[] = { "/yamux/1.0.0", "/mplex/6.7.0" };

/* The identity made from seed byte `b` (an Ed25519 key, as a protobuf PrivateKey). */
static ringp2p_privkey *fz_identity(uint8_t b)
{
    uint8_t seed[32], pub[32], priv[64], pb[4 + 64];
    memset(seed, b, sizeof(seed));
    ED25519_keypair_from_seed(pub, priv, seed);
    pb[0] = 0x08, pb[1] = 0x01, pb[2] = 0x12, pb[3] = 64;
    memcpy(pb + 4, priv, 64);
    ringp2p_privkey *k = NULL;
    if (ringp2p_privkey_from_protobuf(pb, sizeof(pb), &k, NULL) != 0) abort();
    return k;
}

static const uint8_t fz_i_static[32] = { 0x11 }, fz_i_eph[32] = { 0x12 };
static const uint8_t fz_r_static[32] = { 0x21 }, fz_r_eph[32] = { 0x22 };

static rp_noise *fz_session(const ringp2p_privkey *id, bool initiator)
{
    rp_noise_config c = {
        .identity = id,
        .initiator = initiator,
        .muxers = fz_muxers,
        .n_muxers = initiator ? 2 : 1, /* responder: yamux only */
        .test_static_priv = initiator ? fz_i_static : fz_r_static,
        .test_ephemeral_priv = initiator ? fz_i_eph : fz_r_eph,
    };
    rp_noise *s = NULL;
    if (rp_noise_new(&c, &s, NULL) != 0) abort();
    return s;
}

/* After success: the peer ID is the one of the key that signed. */
static void check_done(const rp_noise *s)
{
    const ringp2p_pubkey *k = rp_noise_remote_key(s);
    const ringp2p_peer_id *id = rp_noise_remote_peer(s);
    if (k == NULL || id == NULL || !ringp2p_peer_id_matches(id, k)) abort();
}

/*
 * Feeds [in, in+len) to s in uneven reads, as a host would, compacting a
 * partial frame to the front of its receive buffer. Returns the last result.
 */
static int feed(rp_noise *s, const uint8_t *in, size_t len, uint8_t *rx, uint8_t *out)
{
    size_t have = 0, fed = 0, step = 1;
    int r = 0;
    while (fed < len || have > 0) {
        size_t chunk = len - fed < step ? len - fed : step;
        if (chunk > BUF_CAP - have) chunk = BUF_CAP - have;
        memcpy(rx + have, in + fed, chunk);
        have += chunk;
        fed += chunk;
        step = step * 3 + 1;
        uint8_t *p = rx;
        rp_wbuf w = rp_wbuf_make(out, BUF_CAP);
        ringp2p_errinfo ei;
        r = rp_noise_handshake(s, &p, rx + have, &w, &ei);
        if (p < rx || p > rx + have || w.len > w.cap) abort();
        if (r < 0 && r != RINGP2P_ENOBUF) {
            if (ei.code != r) abort();
            return r;
        }
        if (r == RP_NOISE_DONE) {
            check_done(s);
            /* The rest is transport: it must not crash the opener either. */
            rp_iov views[4];
            while (rp_noise_open_batch(s, &p, rx + have, views, 4, NULL) == 4) {
            }
            return r;
        }
        size_t used = (size_t)(p - rx);
        memmove(rx, p, have - used);
        have -= used;
        if (fed == len && used == 0) break;
    }
    return r;
}

static void mode_raw(const uint8_t *in, size_t len, bool initiator, uint8_t *rx, uint8_t *out)
{
    ringp2p_privkey *id = fz_identity(initiator ? 1 : 2);
    rp_noise *s = fz_session(id, initiator);
    if (initiator) { /* message 1 first */
        uint8_t *p = rx;
        rp_wbuf w = rp_wbuf_make(out, BUF_CAP);
        if (rp_noise_handshake(s, &p, rx, &w, NULL) != 0 || w.len != 34) abort();
    }
    int r = feed(s, in, len, rx, out);
    if (r < 0 && r != RINGP2P_ENOBUF) { /* a failure is final and repeats its code */
        uint8_t *p = rx;
        rp_wbuf w = rp_wbuf_make(out, BUF_CAP);
        if (rp_noise_handshake(s, &p, rx, &w, NULL) != r) abort();
        if (rp_noise_seal(s, NULL, 0, out, BUF_CAP, NULL) != r) abort();
    }
    rp_noise_free(s);
    ringp2p_privkey_free(id);
}

/* Message 3 built by a bare XX initiator with the fixed keys and `payload`. */
static void mode_payload(const uint8_t *payload, size_t len, uint8_t *rx, uint8_t *out)
{
    if (len > RP_NOISE_MSG_MAX - 64) return;
    ringp2p_privkey *id = fz_identity(2);
    rp_noise *s = fz_session(id, false);
    rp_noise_hs ini;
    rp_noise_hs_init(&ini, true, NULL, 0, fz_i_static, fz_i_eph);
    ssize_t n = rp_noise_hs_write(&ini, NULL, 0, rx + 2, BUF_CAP - 2, NULL);
    rx[0] = 0, rx[1] = (uint8_t)n;
    uint8_t *p = rx;
    rp_wbuf w = rp_wbuf_make(out, BUF_CAP);
    if (rp_noise_handshake(s, &p, rx + 2 + n, &w, NULL) != 0) abort();
    rp_iov pl;
    if (rp_noise_hs_read(&ini, out + 2, w.len - 2, &pl, NULL) != 0) abort();
    n = rp_noise_hs_write(&ini, payload, len, rx + 2, BUF_CAP - 2, NULL);
    if (n < 0) abort();
    rx[0] = (uint8_t)(n >> 8), rx[1] = (uint8_t)n;
    p = rx;
    w = rp_wbuf_make(out, BUF_CAP);
    int r = rp_noise_handshake(s, &p, rx + 2 + n, &w, NULL);
    if (r == RP_NOISE_DONE) {
        check_done(s);
        /* It passed, so it decodes, and the muxer follows the initiator's list. */
        rp_noise_payload *d = malloc(sizeof(*d));
        const uint8_t *q = payload;
        if (d == NULL || rp_noise_payload_decode(&q, payload + len, d, NULL) != 0) abort();
        const char *want = NULL;
        for (size_t i = 0; i < d->n_muxers && want == NULL; i++)
            if (d->muxers[i].len == strlen(fz_muxers[0]) &&
                memcmp(d->muxers[i].base, fz_muxers[0], d->muxers[i].len) == 0)
                want = fz_muxers[0];
        if (rp_noise_muxer(s) != want) abort();
        free(d);
    } else if (r == 0 || r == RINGP2P_ENOBUF) {
        abort(); /* a whole message 3 was given: it must end the handshake one way or the other */
    }
    rp_noise_hs_clear(&ini);
    rp_noise_free(s);
    ringp2p_privkey_free(id);
}

struct fz_pair {
    ringp2p_privkey *ki, *kr;
    rp_noise *a, *b;
};

static void pair_open(struct fz_pair *fp, uint8_t *rx, uint8_t *out)
{
    fp->ki = fz_identity(1);
    fp->kr = fz_identity(2);
    fp->a = fz_session(fp->ki, true);
    fp->b = fz_session(fp->kr, false);
    /* a -> b through rx, b -> a through out; each message is read whole. */
    uint8_t *p;
    rp_wbuf w1 = rp_wbuf_make(rx, BUF_CAP), w2;
    p = out;
    if (rp_noise_handshake(fp->a, &p, out, &w1, NULL) != 0) abort();
    p = rx;
    w2 = rp_wbuf_make(out, BUF_CAP);
    if (rp_noise_handshake(fp->b, &p, rx + w1.len, &w2, NULL) != 0) abort();
    p = out;
    w1 = rp_wbuf_make(rx, BUF_CAP);
    if (rp_noise_handshake(fp->a, &p, out + w2.len, &w1, NULL) != RP_NOISE_DONE) abort();
    p = rx;
    w2 = rp_wbuf_make(out, BUF_CAP);
    if (rp_noise_handshake(fp->b, &p, rx + w1.len, &w2, NULL) != RP_NOISE_DONE) abort();
}

static void pair_close(struct fz_pair *fp)
{
    rp_noise_free(fp->a);
    rp_noise_free(fp->b);
    ringp2p_privkey_free(fp->ki);
    ringp2p_privkey_free(fp->kr);
}

/* Ops: [op][len hi][len lo][len bytes]: 0 seal them, 1 insert them raw, 2 flip a bit. */
static void mode_transport(const uint8_t *in, size_t len, uint8_t *rx, uint8_t *out)
{
    struct fz_pair fp;
    pair_open(&fp, rx, out);
    size_t wire_cap = 8 * RP_NOISE_FRAME_MAX, wlen = 0, slen = 0;
    uint8_t *wire = malloc(wire_cap), *sent = malloc(wire_cap), *got = malloc(wire_cap);
    if (wire == NULL || sent == NULL || got == NULL) abort();
    bool tampered = false;
    const uint8_t *p = in, *end = in + len;
    while (end - p >= 3) {
        uint8_t op = p[0] % 3;
        size_t n = (size_t)p[1] << 8 | p[2];
        p += 3;
        if (n > (size_t)(end - p)) n = (size_t)(end - p);
        if (op == 0) {
            rp_iov v[2] = { rp_iov_make(p, n / 2), rp_iov_make(p + n / 2, n - n / 2) };
            if (rp_noise_sealed_len(n) > wire_cap - wlen) break;
            ssize_t s = rp_noise_seal(fp.a, v, 2, wire + wlen, wire_cap - wlen, NULL);
            if (s != (ssize_t)rp_noise_sealed_len(n)) abort();
            wlen += (size_t)s;
            memcpy(sent + slen, p, n);
            slen += n;
        } else if (op == 1) {
            if (n > wire_cap - wlen) break;
            memcpy(wire + wlen, p, n);
            wlen += n;
            tampered |= n > 0;
        } else if (wlen > 0 && n > 0) {
            wire[(n * 7919) % wlen] ^= (uint8_t)(1u << (p[0] % 8));
            tampered = true;
        }
        p += n;
    }
    /* Open in place, in uneven reads through a buffer of BUF_CAP bytes. */
    size_t have = 0, fed = 0, glen = 0, step = 5;
    int err = 0;
    while (fed < wlen || have > 0) {
        size_t chunk = wlen - fed < step ? wlen - fed : step;
        if (chunk > BUF_CAP - have) chunk = BUF_CAP - have;
        memcpy(rx + have, wire + fed, chunk);
        have += chunk;
        fed += chunk;
        step = step * 2 + 3;
        uint8_t *q = rx;
        rp_iov views[3];
        ssize_t k;
        while ((k = rp_noise_open_batch(fp.b, &q, rx + have, views, 3, NULL)) > 0) {
            for (ssize_t i = 0; i < k; i++) {
                if ((uint8_t *)views[i].base < rx ||
                    (uint8_t *)views[i].base + views[i].len > rx + have)
                    abort();
                memcpy(got + glen, views[i].base, views[i].len);
                glen += views[i].len;
            }
        }
        if (k < 0) {
            err = (int)k;
            break;
        }
        size_t used = (size_t)(q - rx);
        memmove(rx, q, have - used);
        have -= used;
        if (fed == wlen && used == 0) break;
    }
    /* Only what was sealed comes out, in order; untouched, all of it and no error. */
    if (glen > slen || memcmp(got, sent, glen) != 0) abort();
    if (!tampered && (err != 0 || glen != slen)) abort();
    free(wire);
    free(sent);
    free(got);
    pair_close(&fp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t *rx = malloc(BUF_CAP), *out = malloc(BUF_CAP);
    if (rx == NULL || out == NULL) abort();
    switch (data[0] % 4) {
    case 0: mode_raw(data + 1, size - 1, false, rx, out); break;
    case 1: mode_raw(data + 1, size - 1, true, rx, out); break;
    case 2: mode_payload(data + 1, size - 1, rx, out); break;
    default: mode_transport(data + 1, size - 1, rx, out); break;
    }
    free(rx);
    free(out);
    return 0;
}
