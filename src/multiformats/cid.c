#include "multiformats/cid.h"

#include <string.h>

#include "base/bytes.h"
#include "base/error.h"
#include "base/varint.h"

/* CID spec, "Decoding Algorithm": a v0 CID is a bare sha2-256 multihash. */
#define RP_CIDV0_LEN      34
#define RP_CIDV0_TEXT_LEN 46

int rp_cid_parse(const uint8_t *buf, size_t len, rp_cid *out, ringp2p_errinfo *ei)
{
    if (len == RP_CIDV0_LEN && buf[0] == RP_MH_SHA2_256 && buf[1] == RP_MH_SHA2_256_LEN) {
        RP_TRY(rp_multihash_parse(buf, len, &out->mh, ei));
        out->version = 0;
        out->codec = RP_CODEC_DAG_PB;
        out->mh_bytes = buf;
        out->mh_len = len;
        return 0;
    }
    const uint8_t *p = buf, *end = buf + len;
    uint64_t version, codec;
    int r;
    if ((r = rp_uvarint_decode(&p, end, &version)) != 0)
        return rp_err(ei, RINGP2P_ECID, "CID version: %s", ringp2p_strerror(r));
    if (version != 1)
        return rp_err(ei, RINGP2P_ECID, "unsupported CID version %llu",
                      (unsigned long long)version);
    if ((r = rp_uvarint_decode(&p, end, &codec)) != 0)
        return rp_err(ei, RINGP2P_ECID, "CID codec: %s", ringp2p_strerror(r));
    const uint8_t *mh = p;
    r = rp_multihash_parse(mh, (size_t)(end - mh), &out->mh, ei);
    if (r != 0) return r;
    out->version = 1;
    out->codec = codec;
    out->mh_bytes = mh;
    out->mh_len = (size_t)(end - mh);
    return 0;
}

ssize_t rp_cid_v1_encode(uint64_t codec, const uint8_t *mh, size_t mh_len, uint8_t *dst, size_t cap)
{
    if (codec > RP_UVARINT_MAX_VALUE) return RINGP2P_EINVAL;
    rp_wbuf w = rp_wbuf_make(dst, cap);
    rp_wbuf_uvarint(&w, 1);
    rp_wbuf_uvarint(&w, codec);
    rp_wbuf_put(&w, mh, mh_len);
    return rp_wbuf_result(&w);
}

ssize_t rp_cid_v1_to_text(rp_base base, uint64_t codec, const uint8_t *mh, size_t mh_len, char *dst,
                          size_t cap)
{
    uint8_t bin[2 * RP_UVARINT_MAX_LEN + RP_MH_DIGEST_MAX + 2 * RP_UVARINT_MAX_LEN];
    ssize_t n = rp_cid_v1_encode(codec, mh, mh_len, bin, sizeof(bin));
    if (n < 0) return n == RINGP2P_ENOBUF ? RINGP2P_EINVAL : n;
    return rp_multibase_encode(base, bin, (size_t)n, dst, cap);
}

int rp_cid_from_text(const char *text, size_t len, uint8_t *bin, size_t cap, rp_cid *out,
                     ringp2p_errinfo *ei)
{
    ssize_t n;
    if (len == RP_CIDV0_TEXT_LEN && text[0] == 'Q' && text[1] == 'm') {
        n = rp_base_decode(RP_BASE58BTC, text, len, bin, cap, ei);
        if (n < 0) return (int)n;
        if (n != RP_CIDV0_LEN || bin[0] != RP_MH_SHA2_256)
            return rp_err(ei, RINGP2P_ECID, "'Qm' text is not a CIDv0 sha2-256 multihash");
        return rp_cid_parse(bin, (size_t)n, out, ei);
    }
    n = rp_multibase_decode(text, len, bin, cap, NULL, ei);
    if (n < 0) return (int)n;
    /* The spec forbids multibase-encoded v0, so a leading 0x12 is an error, not v0. */
    if (n > 0 && bin[0] == RP_MH_SHA2_256)
        return rp_err(ei, RINGP2P_ECID, "CIDv0 must not be multibase-encoded");
    return rp_cid_parse(bin, (size_t)n, out, ei);
}
