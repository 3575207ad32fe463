/*
 * The host's security protocols behind one interface (host.h rp_hsec_ops):
 * /noise, /tls/1.0.0, /ringp2p/signed/1.0.0 and /plaintext/2.0.0. hconn.c
 * drives whichever multistream-select chose through these entries only.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/error.h"
#include "host/host.h"
#include "security/plaintext.h"
#include "security/signed.h"
#include "security/tls.h"

/*
 * What the node's sessions share, made at its first handshake and kept until
 * the node is freed: one Noise static key signed once (noise.h "Static key
 * choice"), the TLS credential, and the cache of peers' signatures already
 * verified (crypto/sigcache.h: Noise static keys, TLS certificates, and the
 * signed peer records identify checks through rp_hsec_sigcache). Shards racing
 * to make it keep the first one published.
 */
struct rp_hsec_shared {
    rp_noise_static *st;
    /* The TLS key, certificate and contexts, made at the node's first TLS session. */
    _Atomic(rp_tls_cred *) tls_cred;
    rp_sigcache *verified;
};

void rp_hsec_shared_free(struct rp_hsec_shared *sh)
{
    if (sh == NULL) return;
    rp_noise_static_free(sh->st);
    rp_tls_cred_free(atomic_load_explicit(&sh->tls_cred, memory_order_acquire));
    rp_sigcache_free(sh->verified);
    free(sh);
}

/* NULL without memory or a signature: each session then makes its own key and reports why. */
static struct rp_hsec_shared *node_shared(ringp2p_node *n)
{
    struct rp_hsec_shared *cur = atomic_load_explicit(&n->sec_shared, memory_order_acquire);
    if (cur != NULL) return cur;
    struct rp_hsec_shared *mine = calloc(1, sizeof(*mine));
    if (mine == NULL) return NULL;
    if (rp_noise_static_new(n->key, &mine->st, NULL) < 0 ||
        (mine->verified = rp_sigcache_new()) == NULL) {
        rp_hsec_shared_free(mine);
        return NULL;
    }
    if (atomic_compare_exchange_strong_explicit(&n->sec_shared, &cur, mine, memory_order_acq_rel,
                                                memory_order_acquire))
        return mine;
    rp_hsec_shared_free(mine); /* another shard won; cur is its */
    return cur;
}

/* Also identify's: a peer's signed record repeats on every connection to it (builtin.c). */
rp_sigcache *rp_hsec_sigcache(ringp2p_node *n)
{
    struct rp_hsec_shared *sh = node_shared(n);
    return sh != NULL ? sh->verified : NULL;
}

/* The /noise configuration of a connection; signed mode takes the same. */
static rp_noise_config noise_cfg(ringp2p_node *n, bool initiator, const ringp2p_peer_id *expect)
{
    rp_noise_config nc = { 0 };
    nc.identity = n->key;
    struct rp_hsec_shared *sh = node_shared(n);
    if (sh != NULL) {
        nc.static_key = sh->st;
        nc.verified = sh->verified;
    }
    nc.initiator = initiator;
    nc.expected_peer = expect;
    nc.muxers = n->cfg.muxers;
    nc.n_muxers = n->no_early_muxer ? 0 : n->cfg.nmux;
    return nc;
}

void rp_host_no_early_muxer(ringp2p_node *n)
{
    n->no_early_muxer = true;
}

/* ---- /noise ------------------------------------------------------------------------------- */

static int noise_new(ringp2p_node *n, bool initiator, const ringp2p_peer_id *expect, void **out,
                     ringp2p_errinfo *ei)
{
    rp_noise_config nc = noise_cfg(n, initiator, expect);
    rp_noise *s = NULL;
    int r = rp_noise_new(&nc, &s, ei);
    *out = s;
    return r;
}

static int noise_hs(void *s, uint8_t **src, uint8_t *end, rp_wbuf *out, ringp2p_errinfo *ei)
{
    return rp_noise_handshake(s, src, end, out, ei);
}

static size_t noise_sealed_len(const void *s, size_t len)
{
    (void)s;
    return rp_noise_sealed_len(len);
}

static ssize_t noise_seal(void *s, const rp_iov *in, size_t n, uint8_t *out, size_t cap,
                          ringp2p_errinfo *ei)
{
    return rp_noise_seal(s, in, n, out, cap, ei);
}

static int noise_open(void *s, uint8_t **src, uint8_t *end, rp_iov *plain, ringp2p_errinfo *ei)
{
    return rp_noise_open(s, src, end, plain, ei);
}

static const ringp2p_peer_id *noise_peer(const void *s)
{
    return rp_noise_remote_peer(s);
}

static const ringp2p_pubkey *noise_key(const void *s)
{
    return rp_noise_remote_key(s);
}

static const char *noise_muxer(const void *s)
{
    return rp_noise_muxer(s);
}

static void noise_free(void *s)
{
    rp_noise_free(s);
}

/* ---- /ringp2p/signed/1.0.0 ---------------------------------------------------------------- */

static int signed_new(ringp2p_node *n, bool initiator, const ringp2p_peer_id *expect, void **out,
                      ringp2p_errinfo *ei)
{
    rp_noise_config nc = noise_cfg(n, initiator, expect);
    rp_signed *s = NULL;
    int r = rp_signed_new(&nc, &s, ei);
    *out = s;
    return r;
}

static int signed_hs(void *s, uint8_t **src, uint8_t *end, rp_wbuf *out, ringp2p_errinfo *ei)
{
    return rp_signed_handshake(s, src, end, out, ei);
}

static size_t signed_sealed_len(const void *s, size_t len)
{
    (void)s;
    return rp_signed_sealed_len(len);
}

/*
 * Copying seal, not seal_ref: the host releases yamux's pieces as soon as the
 * batch is sealed, so they cannot stay referenced until the send completes.
 */
static ssize_t signed_seal(void *s, const rp_iov *in, size_t n, uint8_t *out, size_t cap,
                           ringp2p_errinfo *ei)
{
    return rp_signed_seal(s, in, n, out, cap, ei);
}

static int signed_open(void *s, uint8_t **src, uint8_t *end, rp_iov *plain, ringp2p_errinfo *ei)
{
    return rp_signed_open(s, src, end, plain, ei);
}

static const ringp2p_peer_id *signed_peer(const void *s)
{
    return rp_signed_remote_peer(s);
}

static const ringp2p_pubkey *signed_key(const void *s)
{
    return rp_signed_remote_key(s);
}

static const char *signed_muxer(const void *s)
{
    return rp_signed_muxer(s);
}

static void signed_free(void *s)
{
    rp_signed_free(s);
}

/* ---- /plaintext/2.0.0 --------------------------------------------------------------------- */

static int plain_new(ringp2p_node *n, bool initiator, const ringp2p_peer_id *expect, void **out,
                     ringp2p_errinfo *ei)
{
    (void)initiator;
    rp_plaintext_config pc = { .local_key = ringp2p_privkey_public(n->key),
                               .expected_peer = expect };
    rp_plaintext *s = NULL;
    int r = rp_plaintext_new(&pc, &s, ei);
    *out = s;
    return r;
}

static int plain_hs(void *s, uint8_t **src, uint8_t *end, rp_wbuf *out, ringp2p_errinfo *ei)
{
    const uint8_t *p = *src;
    int r = rp_plaintext_handshake(s, &p, end, out, ei);
    *src = (uint8_t *)(uintptr_t)p;
    return r;
}

static size_t plain_sealed_len(const void *s, size_t len)
{
    (void)s;
    return len;
}

/* No framing: the payload is the concatenation, copied as one piece. */
static ssize_t plain_seal(void *s, const rp_iov *in, size_t n, uint8_t *out, size_t cap,
                          ringp2p_errinfo *ei)
{
    (void)s;
    (void)ei;
    if (rp_iov_total(in, n) > cap) return RINGP2P_ENOBUF;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i].len == 0) continue;
        memcpy(out + w, in[i].base, in[i].len);
        w += in[i].len;
    }
    return (ssize_t)w;
}

/* Everything received is payload, delivered as one view into the caller's buffer. */
static int plain_open(void *s, uint8_t **src, uint8_t *end, rp_iov *plain, ringp2p_errinfo *ei)
{
    (void)s;
    (void)ei;
    if (*src >= end) return 0;
    *plain = rp_iov_make(*src, (size_t)(end - *src));
    *src = end;
    return 1;
}

static const ringp2p_peer_id *plain_peer(const void *s)
{
    return rp_plaintext_remote_peer(s);
}

static const ringp2p_pubkey *plain_key(const void *s)
{
    return rp_plaintext_remote_key(s);
}

/* No early muxer negotiation: multistream-select picks one. */
static const char *plain_muxer(const void *s)
{
    (void)s;
    return NULL;
}

static void plain_free(void *s)
{
    rp_plaintext_free(s);
}

/* ---- /tls/1.0.0 --------------------------------------------------------------------------- */

/* The certificates' validity is wall-clock time (tls.md "Certificates"); the host reads it. */
static int64_t unix_now(void)
{
    return (int64_t)(rp_host_unix_ns() / 1000000000u);
}

/*
 * The node's credential (tls.md "Peer Authentication": one key and certificate
 * MAY serve many connections). NULL without memory: the session makes its own
 * and reports why. Shards racing to make it keep the first one published.
 */
static const rp_tls_cred *node_tls_cred(ringp2p_node *n, struct rp_hsec_shared *sh)
{
    rp_tls_cred *cur = atomic_load_explicit(&sh->tls_cred, memory_order_acquire);
    if (cur != NULL) return cur;
    rp_tls_cred *mine = NULL;
    if (rp_tls_cred_new(n->key, unix_now(), &mine, NULL) < 0) return NULL;
    if (atomic_compare_exchange_strong_explicit(&sh->tls_cred, &cur, mine, memory_order_acq_rel,
                                                memory_order_acquire))
        return mine;
    rp_tls_cred_free(mine); /* another shard won; cur is its */
    return cur;
}

static int tls_new(ringp2p_node *n, bool initiator, const ringp2p_peer_id *expect, void **out,
                   ringp2p_errinfo *ei)
{
    rp_tls_config tc = { 0 };
    tc.identity = n->key;
    struct rp_hsec_shared *sh = node_shared(n);
    if (sh != NULL) {
        tc.cred = node_tls_cred(n, sh);
        tc.verified = sh->verified;
    }
    tc.initiator = initiator;
    tc.expected_peer = expect;
    tc.muxers = n->cfg.muxers;
    tc.n_muxers = n->no_early_muxer ? 0 : n->cfg.nmux;
    tc.unix_now = unix_now();
    rp_tls *s = NULL;
    int r = rp_tls_new(&tc, &s, ei);
    *out = s;
    return r;
}

static int tls_hs(void *s, uint8_t **src, uint8_t *end, rp_wbuf *out, ringp2p_errinfo *ei)
{
    const uint8_t *p = *src;
    int r = rp_tls_handshake(s, unix_now(), &p, end, out, ei);
    *src = (uint8_t *)(uintptr_t)p;
    return r;
}

static size_t tls_sealed_len(const void *s, size_t len)
{
    return rp_tls_pending_output(s) + rp_tls_sealed_len(s, len);
}

static ssize_t tls_seal(void *s, const rp_iov *in, size_t n, uint8_t *out, size_t cap,
                        ringp2p_errinfo *ei)
{
    return rp_tls_seal(s, in, n, out, cap, ei);
}

static int tls_open(void *s, uint8_t **src, uint8_t *end, rp_iov *plain, ringp2p_errinfo *ei)
{
    return rp_tls_open(s, src, end, plain, ei);
}

static size_t tls_pending(const void *s)
{
    return rp_tls_pending_output(s);
}

static size_t tls_take(void *s, uint8_t *dst, size_t cap)
{
    return rp_tls_take_output(s, dst, cap);
}

/*
 * A graceful close: close_notify (RFC 8446 §6.1: each party MUST send one
 * before closing its write side) as the last record, for the host to take.
 * Nothing before the handshake is done, nor after a failure (its alert went
 * instead).
 */
static void tls_close_write(void *s)
{
    (void)rp_tls_close(s);
}

static const ringp2p_peer_id *tls_peer(const void *s)
{
    return rp_tls_remote_peer(s);
}

static const ringp2p_pubkey *tls_key(const void *s)
{
    return rp_tls_remote_key(s);
}

static const char *tls_muxer(const void *s)
{
    return rp_tls_muxer(s);
}

static void tls_free(void *s)
{
    rp_tls_free(s);
}

/* ---- table -------------------------------------------------------------------------------- */

static const rp_hsec_ops ops_table[] = {
    {
        .name = "noise",
        .id = RP_NOISE_PROTOCOL_ID,
        .frame_header_len = RP_NOISE_FRAME_HEADER_LEN,
        .frame_len_off = 0,
        .frame_max = RP_NOISE_FRAME_MAX,
        .new_session = noise_new,
        .handshake = noise_hs,
        .sealed_len = noise_sealed_len,
        .seal = noise_seal,
        .open = noise_open,
        .remote_peer = noise_peer,
        .remote_key = noise_key,
        .muxer = noise_muxer,
        .free = noise_free,
    },
    {
        .name = "tls",
        .id = RP_TLS_PROTOCOL_ID,
        /* TLSCiphertext: type, version, then the u16 length (RFC 8446 §5.2) */
        .frame_header_len = RP_TLS_RECORD_HEADER_LEN,
        .frame_len_off = 3,
        .frame_max = RP_TLS_RECORD_MAX,
        .new_session = tls_new,
        .handshake = tls_hs,
        .sealed_len = tls_sealed_len,
        .seal = tls_seal,
        .open = tls_open,
        .pending = tls_pending,
        .take = tls_take,
        .close_write = tls_close_write,
        .remote_peer = tls_peer,
        .remote_key = tls_key,
        .muxer = tls_muxer,
        .free = tls_free,
    },
    {
        .name = "signed",
        .id = RP_SIGNED_PROTOCOL_ID,
        .frame_header_len = RP_SIGNED_FRAME_HEADER_LEN,
        .frame_len_off = 0,
        .frame_max = RP_SIGNED_FRAME_MAX,
        .new_session = signed_new,
        .handshake = signed_hs,
        .sealed_len = signed_sealed_len,
        .seal = signed_seal,
        .open = signed_open,
        .remote_peer = signed_peer,
        .remote_key = signed_key,
        .muxer = signed_muxer,
        .free = signed_free,
    },
    {
        .name = "plaintext",
        .id = RP_PLAINTEXT_PROTOCOL_ID,
        .frame_header_len = 0,
        .new_session = plain_new,
        .handshake = plain_hs,
        .sealed_len = plain_sealed_len,
        .seal = plain_seal,
        .open = plain_open,
        .remote_peer = plain_peer,
        .remote_key = plain_key,
        .muxer = plain_muxer,
        .free = plain_free,
    },
};

const rp_hsec_ops *rp_hsec_by_name(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(ops_table) / sizeof(ops_table[0]); i++)
        if (strlen(ops_table[i].name) == len && memcmp(ops_table[i].name, name, len) == 0)
            return &ops_table[i];
    return NULL;
}
