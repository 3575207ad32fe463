#include "multiformats/multihash.h"

#include <openssl/sha.h>

#include "base/bytes.h"
#include "base/error.h"
#include "base/varint.h"

int rp_multihash_decode(const uint8_t **src, const uint8_t *end, rp_multihash *out,
                        ringp2p_errinfo *ei)
{
    const uint8_t *p = *src;
    uint64_t code, len;
    int r;

    if ((r = rp_uvarint_decode(&p, end, &code)) != 0)
        return rp_err(ei, r, "multihash code: %s", ringp2p_strerror(r));
    if ((r = rp_uvarint_decode(&p, end, &len)) != 0)
        return rp_err(ei, r, "multihash length: %s", ringp2p_strerror(r));
    if (len > RP_MH_DIGEST_MAX)
        return rp_err(ei, RINGP2P_EMULTIHASH, "multihash digest length %llu exceeds %d",
                      (unsigned long long)len, RP_MH_DIGEST_MAX);
    if (code == RP_MH_SHA2_256 && len != RP_MH_SHA2_256_LEN)
        return rp_err(ei, RINGP2P_EMULTIHASH, "sha2-256 multihash with digest length %llu, not 32",
                      (unsigned long long)len);
    if ((size_t)(end - p) < len)
        return rp_err(ei, RINGP2P_ETRUNCATED,
                      "multihash digest truncated: %llu bytes declared, %zu present",
                      (unsigned long long)len, (size_t)(end - p));
    out->code = code;
    out->digest = p;
    out->len = (size_t)len;
    *src = p + len;
    return 0;
}

int rp_multihash_parse(const uint8_t *buf, size_t len, rp_multihash *out, ringp2p_errinfo *ei)
{
    const uint8_t *p = buf, *end = buf + len;
    RP_TRY(rp_multihash_decode(&p, end, out, ei));
    if (p != end)
        return rp_err(ei, RINGP2P_EMULTIHASH, "%zu unexpected bytes after the multihash",
                      (size_t)(end - p));
    return 0;
}

ssize_t rp_multihash_encode(uint64_t code, const uint8_t *digest, size_t len, uint8_t *dst,
                            size_t cap)
{
    if (code > RP_UVARINT_MAX_VALUE || len > RP_MH_DIGEST_MAX) return RINGP2P_EINVAL;
    rp_wbuf w = rp_wbuf_make(dst, cap);
    rp_wbuf_uvarint(&w, code);
    rp_wbuf_uvarint(&w, len);
    rp_wbuf_put(&w, digest, len);
    return rp_wbuf_result(&w);
}

ssize_t rp_multihash_sha256(const uint8_t *data, size_t len, uint8_t *dst, size_t cap)
{
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256(data, len, digest);
    return rp_multihash_encode(RP_MH_SHA2_256, digest, sizeof(digest), dst, cap);
}
