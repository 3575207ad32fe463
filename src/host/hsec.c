/*
 * The host's security protocols behind one interface (host.h rp_hsec_ops):
 * /noise, /ringp2p/signed/1.0.0 and /plaintext/2.0.0. hconn.c drives
 * whichever multistream-select chose through these entries only.
 */
#include <string.h>

#include "base/error.h"
#include "host/host.h"
#include "security/plaintext.h"
#include "security/signed.h"

/* The /noise configuration of a connection; signed mode takes the same. */
static rp_noise_config noise_cfg(ringp2p_node *n, bool initiator, const ringp2p_peer_id *expect)
{
    rp_noise_config nc = { 0 };
    nc.identity = n->key;
    nc.initiator = initiator;
    nc.expected_peer = expect;
    nc.muxers = n->cfg.muxers;
    nc.n_muxers = n->cfg.nmux;
    return nc;
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

static size_t plain_sealed_len(size_t len)
{
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

/* ---- table -------------------------------------------------------------------------------- */

static const rp_hsec_ops ops_table[] = {
    { "noise", RP_NOISE_PROTOCOL_ID, RP_NOISE_FRAME_HEADER_LEN, RP_NOISE_FRAME_MAX, noise_new,
      noise_hs, rp_noise_sealed_len, noise_seal, noise_open, noise_peer, noise_key, noise_muxer,
      noise_free },
    { "signed", RP_SIGNED_PROTOCOL_ID, RP_SIGNED_FRAME_HEADER_LEN, RP_SIGNED_FRAME_MAX, signed_new,
      signed_hs, rp_signed_sealed_len, signed_seal, signed_open, signed_peer, signed_key,
      signed_muxer, signed_free },
    { "plaintext", RP_PLAINTEXT_PROTOCOL_ID, 0, 0, plain_new, plain_hs, plain_sealed_len,
      plain_seal, plain_open, plain_peer, plain_key, plain_muxer, plain_free },
};

const rp_hsec_ops *rp_hsec_by_name(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(ops_table) / sizeof(ops_table[0]); i++)
        if (strlen(ops_table[i].name) == len && memcmp(ops_table[i].name, name, len) == 0)
            return &ops_table[i];
    return NULL;
}

const rp_hsec_ops *rp_hsec_by_id(const char *id)
{
    for (size_t i = 0; i < sizeof(ops_table) / sizeof(ops_table[0]); i++)
        if (strcmp(ops_table[i].id, id) == 0) return &ops_table[i];
    return NULL;
}
