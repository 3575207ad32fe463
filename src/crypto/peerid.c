/*
 * Peer IDs (peer-ids.md "Peer Ids"; RFC 0001 for the CID text form).
 *
 * A peer ID is the multihash of the protobuf PublicKey: identity when that is
 * at most RP_PEER_ID_INLINE_MAX bytes, sha2-256 otherwise. We accept exactly
 * these two; go-libp2p accepts any multihash as a peer ID, but nothing else
 * can ever be derived from a key.
 *
 * Text: base58btc of the multihash ("12D3KooW...", "16Uiu2HA...", "Qm...")
 * and CIDv1 with the libp2p-key codec in any multibase ("bafz...", "k51...").
 * As the spec says, text starting with '1' or "Qm" is base58btc; anything else
 * is a multibase CID.
 */
#include <string.h>

#include <openssl/sha.h>

#include "base/bytes.h"
#include "base/error.h"
#include "base/varint.h"
#include "crypto/key.h"
#include "multiformats/cid.h"
#include "multiformats/multibase.h"
#include "multiformats/multihash.h"

_Static_assert(RINGP2P_PEER_ID_MAX == 2 + RP_PEER_ID_INLINE_MAX, "identity peer ID size");
_Static_assert(RINGP2P_PEER_ID_MAX >= 2 + RP_MH_SHA2_256_LEN, "sha2-256 peer ID size");

/* Longest text we look at: CIDv1 in base16 of the longest peer ID is 1 + 2*46 = 93. */
#define PEER_ID_TEXT_MAX (RINGP2P_PEER_ID_STR_MAX - 1)

static void copy_piece(void *ctx, const uint8_t *p, size_t n)
{
    rp_wbuf_put(ctx, p, n);
}

static void hash_piece(void *ctx, const uint8_t *p, size_t n)
{
    SHA256_Update(ctx, p, n);
}

RINGP2P_API int ringp2p_peer_id_from_pubkey(const ringp2p_pubkey *key, ringp2p_peer_id *out)
{
    size_t n = rp_pubkey_protobuf_len(key);
    rp_wbuf w = rp_wbuf_make(out->bytes, sizeof(out->bytes));
    if (n <= RP_PEER_ID_INLINE_MAX) {
        rp_wbuf_uvarint(&w, RP_MH_IDENTITY);
        rp_wbuf_uvarint(&w, n);
        rp_pubkey_protobuf_pieces(key, copy_piece, &w);
    } else {
        SHA256_CTX ctx;
        uint8_t digest[SHA256_DIGEST_LENGTH];
        SHA256_Init(&ctx);
        rp_pubkey_protobuf_pieces(key, hash_piece, &ctx);
        SHA256_Final(digest, &ctx);
        rp_wbuf_uvarint(&w, RP_MH_SHA2_256);
        rp_wbuf_uvarint(&w, sizeof(digest));
        rp_wbuf_put(&w, digest, sizeof(digest));
    }
    /* Cannot overflow: both forms fit RINGP2P_PEER_ID_MAX (asserted above). */
    if (!rp_wbuf_ok(&w)) return RINGP2P_ECRYPTO;
    out->len = (uint8_t)w.len;
    return 0;
}

/* The message of a failure a callee may or may not have described. */
static const char *inner_msg(const ringp2p_errinfo *e, int code)
{
    return e->msg[0] != '\0' ? e->msg : ringp2p_strerror(code);
}

RINGP2P_API int ringp2p_peer_id_from_bytes(const uint8_t *mh, size_t len, ringp2p_peer_id *out,
                                           ringp2p_errinfo *ei)
{
    if (len > RINGP2P_PEER_ID_MAX)
        return rp_err(ei, RINGP2P_EPEERID, "peer ID of %zu bytes; the longest is %d", len,
                      RINGP2P_PEER_ID_MAX);
    rp_multihash h;
    ringp2p_errinfo inner = { 0 };
    int r = rp_multihash_parse(mh, len, &h, &inner);
    if (r < 0)
        return rp_err(ei, RINGP2P_EPEERID, "peer ID is not a multihash: %s", inner_msg(&inner, r));
    if (h.code == RP_MH_IDENTITY) {
        if (h.len > RP_PEER_ID_INLINE_MAX)
            return rp_err(ei, RINGP2P_EPEERID,
                          "identity peer ID inlines %zu bytes; keys longer than %d bytes are "
                          "hashed with sha2-256",
                          h.len, RP_PEER_ID_INLINE_MAX);
        ringp2p_pubkey *pk;
        if ((r = ringp2p_pubkey_from_protobuf(h.digest, h.len, &pk, &inner)) < 0)
            return rp_err(ei, RINGP2P_EPEERID, "identity peer ID does not inline a valid key: %s",
                          inner_msg(&inner, r));
        ringp2p_pubkey_free(pk);
    } else if (h.code == RP_MH_SHA2_256) {
        if (h.len != RP_MH_SHA2_256_LEN)
            return rp_err(ei, RINGP2P_EPEERID, "sha2-256 peer ID with a %zu-byte digest", h.len);
    } else {
        return rp_err(ei, RINGP2P_EPEERID,
                      "peer ID uses multihash function 0x%llx; only identity (0x00) and "
                      "sha2-256 (0x12) are derived from keys",
                      (unsigned long long)h.code);
    }
    memcpy(out->bytes, mh, len);
    out->len = (uint8_t)len;
    return 0;
}

static const char *codec_name(uint64_t codec)
{
    switch (codec) {
    case 0x51: return "cbor";
    case 0x55: return "raw";
    case 0x70: return "dag-pb";
    case 0x71: return "dag-cbor";
    case 0x72: return "libp2p-key";
    case 0x78: return "git-raw";
    case 0x85: return "dag-jose";
    case 0x0129: return "dag-json";
    case 0x0200: return "json";
    case 0x0300: return "ipns-record";
    }
    return "unknown codec";
}

RINGP2P_API int ringp2p_peer_id_parse(const char *text, size_t len, ringp2p_peer_id *out,
                                      ringp2p_errinfo *ei)
{
    if (len == 0) return rp_err(ei, RINGP2P_EPEERID, "empty peer ID");
    if (len > PEER_ID_TEXT_MAX)
        return rp_err(ei, RINGP2P_EPEERID, "peer ID text of %zu characters; the longest is %d", len,
                      PEER_ID_TEXT_MAX);
    if (text[0] == '1' || (len >= 2 && text[0] == 'Q' && text[1] == 'm')) {
        uint8_t bin[RINGP2P_PEER_ID_MAX];
        ssize_t n = rp_base_decode(RP_BASE58BTC, text, len, bin, sizeof(bin), ei);
        if (n == RINGP2P_ENOBUF)
            return rp_err(ei, RINGP2P_EPEERID,
                          "base58btc peer ID decodes to more than %d bytes, the longest a peer "
                          "ID can be",
                          RINGP2P_PEER_ID_MAX);
        if (n < 0) return (int)n;
        return ringp2p_peer_id_from_bytes(bin, (size_t)n, out, ei);
    }
    uint8_t bin[2 * RP_UVARINT_MAX_LEN + RP_MH_DIGEST_MAX + 2 * RP_UVARINT_MAX_LEN];
    rp_cid cid;
    ringp2p_errinfo inner = { 0 };
    int r = rp_cid_from_text(text, len, bin, sizeof(bin), &cid, &inner);
    if (r < 0) {
        /* Varint trouble inside the CID is a malformed CID, as far as callers care. */
        int code = r == RINGP2P_ETRUNCATED || r == RINGP2P_EVARINT ? RINGP2P_ECID : r;
        return rp_err(ei, code, "%s", inner_msg(&inner, r));
    }
    if (cid.version != 1)
        return rp_err(ei, RINGP2P_ECID, "peer IDs as CIDs must be CIDv1, not v%u", cid.version);
    if (cid.codec != RP_CODEC_LIBP2P_KEY)
        return rp_err(ei, RINGP2P_ECID,
                      "CID has codec 0x%llx (%s), not libp2p-key (0x72): not a peer ID",
                      (unsigned long long)cid.codec, codec_name(cid.codec));
    return ringp2p_peer_id_from_bytes(cid.mh_bytes, cid.mh_len, out, ei);
}

static int check_id(const ringp2p_peer_id *id)
{
    return id->len >= 2 && id->len <= RINGP2P_PEER_ID_MAX ? 0 : RINGP2P_EINVAL;
}

RINGP2P_API ssize_t ringp2p_peer_id_to_string(const ringp2p_peer_id *id, char *dst, size_t cap)
{
    RP_TRY(check_id(id));
    return rp_base_encode(RP_BASE58BTC, id->bytes, id->len, dst, cap);
}

RINGP2P_API ssize_t ringp2p_peer_id_to_cid_string(const ringp2p_peer_id *id, char *dst, size_t cap)
{
    RP_TRY(check_id(id));
    return rp_cid_v1_to_text(RP_BASE32, RP_CODEC_LIBP2P_KEY, id->bytes, id->len, dst, cap);
}

RINGP2P_API bool ringp2p_peer_id_equal(const ringp2p_peer_id *a, const ringp2p_peer_id *b)
{
    return a->len == b->len && a->len <= RINGP2P_PEER_ID_MAX &&
           memcmp(a->bytes, b->bytes, a->len) == 0;
}

RINGP2P_API bool ringp2p_peer_id_matches(const ringp2p_peer_id *id, const ringp2p_pubkey *key)
{
    ringp2p_peer_id derived;
    return ringp2p_peer_id_from_pubkey(key, &derived) == 0 && ringp2p_peer_id_equal(id, &derived);
}

RINGP2P_API int ringp2p_peer_id_extract_pubkey(const ringp2p_peer_id *id, ringp2p_pubkey **out)
{
    RP_TRY(check_id(id));
    rp_multihash h;
    if (rp_multihash_parse(id->bytes, id->len, &h, NULL) < 0) return RINGP2P_EPEERID;
    if (h.code != RP_MH_IDENTITY) return RINGP2P_ENOENT;
    return ringp2p_pubkey_from_protobuf(h.digest, h.len, out, NULL);
}
