/*
 * ringp2p signed mode: the /noise handshake with the mode as prologue, then
 * cleartext frames with AES-256-GCM tags (docs/signed-mode.md; see signed.h).
 */
#include "security/signed.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/digest.h>
#include <openssl/hkdf.h>
#include <openssl/mem.h>

#include "base/error.h"

enum { S_HANDSHAKE, S_DONE, S_FAILED };

struct rp_signed {
    int state;
    int err;      /* the failure, once S_FAILED */
    rp_noise *hs; /* the handshake; freed when it ends */
    rp_aead send, recv;
    uint64_t send_n, recv_n;            /* next nonce of each direction (§5) */
    uint8_t split[RP_SIGNED_SPLIT_LEN]; /* Split()'s k1 || k2 until the keys are derived */
    /* After the handshake, kept from it. */
    ringp2p_pubkey *remote_key;
    ringp2p_peer_id remote_id;
    bool has_remote;
    bool initiator;
    const char *muxer;
};

static int fail(rp_signed *s, int r)
{
    if (s->state != S_FAILED) {
        s->state = S_FAILED;
        s->err = r;
        rp_noise_free(s->hs);
        s->hs = NULL;
        rp_aead_clear(&s->send);
        rp_aead_clear(&s->recv);
        OPENSSL_cleanse(s->split, sizeof(s->split));
    }
    return r;
}

static int failed(const rp_signed *s, ringp2p_errinfo *ei)
{
    return rp_err(ei, s->err, "signed mode: session already failed earlier (%s)",
                  ringp2p_strerror(s->err));
}

int rp_signed_derive_keys(const uint8_t *split, uint8_t i2r[RP_SIGNED_KEY_LEN],
                          uint8_t r2i[RP_SIGNED_KEY_LEN])
{
    static const char info_i2r[] = RP_SIGNED_INFO_I2R, info_r2i[] = RP_SIGNED_INFO_R2I;
    /* §3: RFC 5869 HKDF, empty salt, one per split key. */
    if (!HKDF(i2r, RP_SIGNED_KEY_LEN, EVP_sha256(), split, 32, NULL, 0, (const uint8_t *)info_i2r,
              sizeof(info_i2r) - 1) ||
        !HKDF(r2i, RP_SIGNED_KEY_LEN, EVP_sha256(), split + 32, 32, NULL, 0,
              (const uint8_t *)info_r2i, sizeof(info_r2i) - 1))
        return RINGP2P_ECRYPTO;
    return 0;
}

/* Derives and keys both directions from s->split, then wipes it. */
static int key_transport(rp_signed *s, bool initiator)
{
    uint8_t i2r[RP_SIGNED_KEY_LEN], r2i[RP_SIGNED_KEY_LEN];
    int r = rp_signed_derive_keys(s->split, i2r, r2i);
    if (r == 0) r = rp_aead_init(&s->send, &rp_aead_aes_256_gcm, initiator ? i2r : r2i);
    if (r == 0) r = rp_aead_init(&s->recv, &rp_aead_aes_256_gcm, initiator ? r2i : i2r);
    OPENSSL_cleanse(i2r, sizeof(i2r));
    OPENSSL_cleanse(r2i, sizeof(r2i));
    OPENSSL_cleanse(s->split, sizeof(s->split));
    s->send_n = s->recv_n = 0;
    return r;
}

int rp_signed_new(const rp_noise_config *cfg, rp_signed **out, ringp2p_errinfo *ei)
{
    rp_signed *s = calloc(1, sizeof(*s));
    if (s == NULL) return rp_err(ei, RINGP2P_ENOMEM, NULL);
    rp_noise_config c = *cfg;
    c.prologue = (const uint8_t *)RP_SIGNED_PROTOCOL_ID;
    c.prologue_len = RP_SIGNED_PROTOCOL_ID_LEN;
    c.split_keys_out = s->split;
    int r = rp_noise_new(&c, &s->hs, ei);
    if (r < 0) {
        free(s);
        return r;
    }
    s->state = S_HANDSHAKE;
    s->initiator = cfg->initiator;
    *out = s;
    return 0;
}

int rp_signed_new_keyed(const uint8_t *split, bool initiator, rp_signed **out, ringp2p_errinfo *ei)
{
    rp_signed *s = calloc(1, sizeof(*s));
    if (s == NULL) return rp_err(ei, RINGP2P_ENOMEM, NULL);
    memcpy(s->split, split, RP_SIGNED_SPLIT_LEN);
    s->initiator = initiator;
    int r = key_transport(s, initiator);
    if (r < 0) {
        rp_signed_free(s);
        return rp_err(ei, r, "signed mode: keying AES-256-GCM failed");
    }
    s->state = S_DONE;
    *out = s;
    return 0;
}

void rp_signed_free(rp_signed *s)
{
    if (s == NULL) return;
    rp_noise_free(s->hs);
    rp_aead_clear(&s->send);
    rp_aead_clear(&s->recv);
    ringp2p_pubkey_free(s->remote_key);
    OPENSSL_cleanse(s, sizeof(*s));
    free(s);
}

int rp_signed_handshake(rp_signed *s, uint8_t **src, uint8_t *end, rp_wbuf *out,
                        ringp2p_errinfo *ei)
{
    if (s->state == S_DONE) return RP_SIGNED_DONE;
    if (s->state == S_FAILED) return failed(s, ei);
    int r = rp_noise_handshake(s->hs, src, end, out, ei);
    if (r == RINGP2P_ENOBUF || r == 0) return r;
    if (r < 0) return fail(s, r);
    /* Done: keep what the host asks about later, then drop the Noise session. */
    const ringp2p_pubkey *key = rp_noise_remote_key(s->hs);
    if (key != NULL) {
        if ((r = ringp2p_pubkey_dup(key, &s->remote_key)) < 0)
            return fail(s, rp_err(ei, r, "signed mode: keeping the peer's key failed"));
        s->remote_id = *rp_noise_remote_peer(s->hs);
        s->has_remote = true;
    }
    s->muxer = rp_noise_muxer(s->hs);
    rp_noise_free(s->hs); /* wipes the unused ChaChaPoly transport keys */
    s->hs = NULL;
    if ((r = key_transport(s, s->initiator)) < 0)
        return fail(s, rp_err(ei, r, "signed mode: keying AES-256-GCM failed"));
    s->state = S_DONE;
    return RP_SIGNED_DONE;
}

bool rp_signed_is_done(const rp_signed *s)
{
    return s->state == S_DONE;
}

const ringp2p_peer_id *rp_signed_remote_peer(const rp_signed *s)
{
    return s->state == S_DONE && s->has_remote ? &s->remote_id : NULL;
}

const ringp2p_pubkey *rp_signed_remote_key(const rp_signed *s)
{
    return s->state == S_DONE ? s->remote_key : NULL;
}

const char *rp_signed_muxer(const rp_signed *s)
{
    return s->state == S_DONE ? s->muxer : NULL;
}

void rp_signed_set_nonces(rp_signed *s, uint64_t send, uint64_t recv)
{
    s->send_n = send;
    s->recv_n = recv;
}

static size_t message_count(size_t plaintext_len)
{
    return plaintext_len == 0 ? 1
                              : (plaintext_len + RP_SIGNED_PAYLOAD_MAX - 1) / RP_SIGNED_PAYLOAD_MAX;
}

size_t rp_signed_sealed_len(size_t plaintext_len)
{
    return plaintext_len + message_count(plaintext_len) * RP_SIGNED_OVERHEAD;
}

size_t rp_signed_plaintext_fit(size_t cap)
{
    size_t full = cap / RP_SIGNED_FRAME_MAX, rest = cap % RP_SIGNED_FRAME_MAX;
    size_t pt = full * RP_SIGNED_PAYLOAD_MAX;
    if (rest > RP_SIGNED_OVERHEAD) pt += rest - RP_SIGNED_OVERHEAD;
    return pt;
}

static void put_len(uint8_t *p, size_t len)
{
    p[0] = (uint8_t)(len >> 8);
    p[1] = (uint8_t)len;
}

/* Common checks before sealing `msgs` messages; 0 when sealing may go on. */
static int seal_check(rp_signed *s, size_t msgs, ringp2p_errinfo *ei)
{
    if (s->state == S_FAILED) return failed(s, ei);
    if (s->state != S_DONE)
        return rp_err(ei, RINGP2P_EINVAL, "signed mode: seal before the handshake is done");
    /* Nonces send_n .. send_n+msgs-1 must all be at most RP_SIGNED_NONCE_MAX (§5). */
    if (s->send_n > RP_SIGNED_NONCE_MAX || msgs - 1 > RP_SIGNED_NONCE_MAX - s->send_n)
        return fail(s, rp_err(ei, RINGP2P_ELIMIT,
                              "signed mode: send nonces exhausted (2^64-1 messages); the "
                              "connection must end"));
    return 0;
}

/* Tags sealed per rp_aead_seal_batch call; bounds the job array on the stack. */
#define SEAL_BATCH 16

/* Jobs waiting for one batch call; every job is a tag-only seal (len 0). */
typedef struct tagger {
    rp_signed *s;
    rp_aead_job jobs[SEAL_BATCH];
    size_t k;
    uint64_t next_n;
} tagger;

static int tagger_flush(tagger *t)
{
    int r = t->k ? rp_aead_seal_batch(&t->s->send, t->jobs, t->k) : 0;
    t->k = 0;
    return r;
}

/* §6: tag = AES-256-GCM(K, nonce(n), "", aad = payload), written at `tag`. */
static int tagger_add(tagger *t, const uint8_t *payload, size_t len, uint8_t *tag)
{
    rp_aead_job *j = &t->jobs[t->k++];
    j->buf = tag;
    j->len = 0;
    j->ad = payload;
    j->ad_len = len;
    rp_aead_counter_nonce(&rp_aead_aes_256_gcm, j->nonce, t->next_n++);
    return t->k == SEAL_BATCH ? tagger_flush(t) : 0;
}

ssize_t rp_signed_seal(rp_signed *s, const rp_iov *in, size_t n, uint8_t *out, size_t cap,
                       ringp2p_errinfo *ei)
{
    size_t total = rp_iov_total(in, n), msgs = message_count(total);
    int r = seal_check(s, msgs, ei);
    if (r < 0) return r;
    size_t need = rp_signed_sealed_len(total);
    if (need > cap)
        return rp_err(ei, RINGP2P_ENOBUF, "signed mode: sealing %zu bytes needs %zu, room for %zu",
                      total, need, cap);
    rp_iov_cursor cur = rp_iov_cursor_make(in, n);
    tagger t = { .s = s, .next_n = s->send_n };
    uint8_t *p = out;
    for (size_t m = 0; m < msgs && r == 0; m++) {
        size_t len =
            rp_iov_cursor_copy(&cur, p + RP_SIGNED_FRAME_HEADER_LEN, RP_SIGNED_PAYLOAD_MAX);
        put_len(p, len + RP_SIGNED_TAG_LEN);
        uint8_t *payload = p + RP_SIGNED_FRAME_HEADER_LEN;
        r = tagger_add(&t, payload, len, payload + len);
        p = payload + len + RP_SIGNED_TAG_LEN;
    }
    if (r == 0) r = tagger_flush(&t);
    if (r < 0) return fail(s, rp_err(ei, r, "signed mode: computing a tag failed"));
    s->send_n += msgs;
    return p - out;
}

/*
 * The output of seal_ref being built. With `dry` set nothing is written: the
 * same walk counts messages, scratch bytes and views, so the caps are checked
 * and the nonces reserved before any tag is computed (a tag made and then
 * thrown away would burn its nonce on bytes never sent).
 */
typedef struct ref_out {
    bool dry;
    uint8_t *scratch;
    size_t used; /* scratch bytes */
    rp_iov *views;
    size_t n_views;
    bool last_scratch; /* the last view is scratch bytes ending at `used` */
    size_t msgs;
    size_t wire; /* bytes the views cover */
    tagger t;
} ref_out;

/*
 * Appends a view. Scratch is taken in order, so scratch bytes that follow a
 * scratch view are contiguous with it and extend it (a tag and the next
 * header go out as one 18-byte view); the dry walk merges the same way.
 */
static void view_add(ref_out *o, const uint8_t *p, size_t len, bool in_scratch)
{
    o->wire += len;
    if (in_scratch && o->last_scratch) {
        if (!o->dry) o->views[o->n_views - 1].len += len;
        return;
    }
    if (!o->dry) o->views[o->n_views] = rp_iov_make(p, len);
    o->n_views++;
    o->last_scratch = in_scratch;
}

/* Scratch room for `len` bytes (dry: only counted). */
static uint8_t *scratch_take(ref_out *o, size_t len)
{
    uint8_t *p = o->dry ? NULL : o->scratch + o->used;
    o->used += len;
    return p;
}

/* A frame whose payload is sent from the caller's memory: header view, payload view, tag view. */
static int emit_ref(ref_out *o, const uint8_t *payload, size_t len)
{
    uint8_t *hdr = scratch_take(o, RP_SIGNED_FRAME_HEADER_LEN);
    if (!o->dry) put_len(hdr, len + RP_SIGNED_TAG_LEN);
    view_add(o, hdr, RP_SIGNED_FRAME_HEADER_LEN, true);
    view_add(o, payload, len, false);
    uint8_t *tag = scratch_take(o, RP_SIGNED_TAG_LEN);
    view_add(o, tag, RP_SIGNED_TAG_LEN, true);
    o->msgs++;
    return o->dry ? 0 : tagger_add(&o->t, payload, len, tag);
}

ssize_t rp_signed_seal_ref(rp_signed *s, const rp_iov *in, size_t n, uint8_t *scratch,
                           size_t scratch_cap, rp_iov *out, size_t out_cap, size_t *n_out,
                           ringp2p_errinfo *ei)
{
    if (s->state == S_FAILED) return failed(s, ei);
    if (s->state != S_DONE)
        return rp_err(ei, RINGP2P_EINVAL, "signed mode: seal before the handshake is done");
    ref_out o;
    for (int pass = 0; pass < 2; pass++) {
        memset(&o, 0, sizeof(o));
        o.dry = pass == 0;
        o.scratch = scratch;
        o.views = out;
        o.t.s = s;
        o.t.next_n = s->send_n;
        int r = 0;
        size_t i = 0, off = 0;
        bool any = false;
        while (r == 0) {
            while (i < n && off == in[i].len) i++, off = 0;
            if (i == n) break;
            any = true;
            const uint8_t *base = (const uint8_t *)in[i].base;
            size_t avail = in[i].len - off;
            if (avail >= RP_SIGNED_REF_MIN) {
                size_t len = avail < RP_SIGNED_PAYLOAD_MAX ? avail : RP_SIGNED_PAYLOAD_MAX;
                r = emit_ref(&o, base + off, len);
                off += len;
                continue;
            }
            /* Small pieces: copy them, and the small ones after, into one message in scratch. */
            uint8_t *hdr = scratch_take(&o, RP_SIGNED_FRAME_HEADER_LEN);
            uint8_t *payload = hdr == NULL ? NULL : hdr + RP_SIGNED_FRAME_HEADER_LEN;
            size_t len = 0;
            while (i < n && len < RP_SIGNED_PAYLOAD_MAX) {
                size_t a = in[i].len - off;
                if (a >= RP_SIGNED_REF_MIN) break;
                size_t take = a < RP_SIGNED_PAYLOAD_MAX - len ? a : RP_SIGNED_PAYLOAD_MAX - len;
                if (!o.dry && take != 0)
                    memcpy(payload + len, (const uint8_t *)in[i].base + off, take);
                len += take;
                off += take;
                if (off == in[i].len) i++, off = 0;
            }
            scratch_take(&o, len);
            uint8_t *tag = scratch_take(&o, RP_SIGNED_TAG_LEN);
            if (!o.dry) put_len(hdr, len + RP_SIGNED_TAG_LEN);
            view_add(&o, hdr, RP_SIGNED_OVERHEAD + len, true);
            o.msgs++;
            if (!o.dry) r = tagger_add(&o.t, payload, len, tag);
        }
        if (r == 0 && !any) { /* an empty input still makes one (empty) message */
            uint8_t *hdr = scratch_take(&o, RP_SIGNED_OVERHEAD);
            if (!o.dry) put_len(hdr, RP_SIGNED_TAG_LEN);
            view_add(&o, hdr, RP_SIGNED_OVERHEAD, true);
            o.msgs++;
            if (!o.dry)
                r = tagger_add(&o.t, hdr + RP_SIGNED_FRAME_HEADER_LEN, 0,
                               hdr + RP_SIGNED_FRAME_HEADER_LEN);
        }
        if (r == 0 && !o.dry) r = tagger_flush(&o.t);
        if (r < 0) return fail(s, rp_err(ei, r, "signed mode: computing a tag failed"));
        if (o.dry) {
            if (o.used > scratch_cap || o.n_views > out_cap)
                return rp_err(ei, RINGP2P_ENOBUF,
                              "signed mode: sealing by reference needs %zu scratch bytes and %zu "
                              "views, room for %zu and %zu",
                              o.used, o.n_views, scratch_cap, out_cap);
            if ((r = seal_check(s, o.msgs, ei)) < 0) return r;
        }
    }
    s->send_n += o.msgs;
    *n_out = o.n_views;
    return (ssize_t)o.wire;
}

static size_t get_len(const uint8_t *p)
{
    return (size_t)p[0] << 8 | p[1];
}

int rp_signed_open(rp_signed *s, uint8_t **src, uint8_t *end, rp_iov *plain, ringp2p_errinfo *ei)
{
    if (s->state == S_FAILED) return failed(s, ei);
    if (s->state != S_DONE)
        return rp_err(ei, RINGP2P_EINVAL, "signed mode: open before the handshake is done");
    uint8_t *p = *src;
    if (end - p < RP_SIGNED_FRAME_HEADER_LEN) return 0;
    size_t len = get_len(p);
    if ((size_t)(end - p) - RP_SIGNED_FRAME_HEADER_LEN < len) return 0;
    if (len < RP_SIGNED_TAG_LEN)
        return fail(s, rp_err(ei, RINGP2P_EPROTOCOL,
                              "signed mode: frame length %zu is shorter than its %d-byte tag", len,
                              RP_SIGNED_TAG_LEN));
    if (s->recv_n > RP_SIGNED_NONCE_MAX)
        return fail(s, rp_err(ei, RINGP2P_ELIMIT,
                              "signed mode: receive nonces exhausted (2^64-1 messages); the "
                              "connection must end"));
    uint8_t *payload = p + RP_SIGNED_FRAME_HEADER_LEN;
    size_t plen = len - RP_SIGNED_TAG_LEN;
    uint8_t nonce[RP_AEAD_NONCE_LEN];
    rp_aead_counter_nonce(&rp_aead_aes_256_gcm, nonce, s->recv_n);
    /* An empty ciphertext and its tag: BoringSSL compares the tag in constant time, writes nothing.
     */
    ssize_t r = rp_aead_open(&s->recv, payload + plen, RP_SIGNED_TAG_LEN, nonce, payload, plen);
    if (r < 0)
        return fail(s, rp_err(ei, RINGP2P_EAUTH,
                              "signed mode: message %llu does not authenticate (modified, dropped, "
                              "duplicated, reordered or not from the peer)",
                              (unsigned long long)s->recv_n));
    s->recv_n++;
    plain->base = payload;
    plain->len = plen;
    *src = p + RP_SIGNED_FRAME_HEADER_LEN + len;
    return 1;
}

ssize_t rp_signed_open_batch(rp_signed *s, uint8_t **src, uint8_t *end, rp_iov *views, size_t cap,
                             ringp2p_errinfo *ei)
{
    size_t count = 0;
    while (count < cap) {
        rp_iov v;
        int r = rp_signed_open(s, src, end, &v, ei);
        if (r < 0) return r;
        if (r == 0) break;
        if (v.len != 0) views[count++] = v;
    }
    return (ssize_t)count;
}
