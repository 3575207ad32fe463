#include "base/varint.h"

#include <assert.h>

#include "base/error.h"

int rp_uvarint_decode(const uint8_t **src, const uint8_t *end, uint64_t *out)
{
    const uint8_t *p = *src;
    uint64_t v = 0;

    for (unsigned i = 0; i < RP_UVARINT_MAX_LEN; i++) {
        if (p == end) return RINGP2P_ETRUNCATED;
        uint8_t b = *p++;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            /* A zero final byte after the first means a longer-than-needed encoding. */
            if (b == 0 && i != 0) return RINGP2P_EVARINT;
            *out = v;
            *src = p;
            return 0;
        }
    }
    return RINGP2P_EVARINT;
}

size_t rp_uvarint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

ssize_t rp_uvarint_encode(uint8_t *dst, size_t cap, uint64_t v)
{
    if (v > RP_UVARINT_MAX_VALUE) return RINGP2P_EINVAL;
    size_t n = rp_uvarint_len(v);
    if (n > cap) return RINGP2P_ENOBUF;
    for (size_t i = 0; i + 1 < n; i++) {
        dst[i] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    dst[n - 1] = (uint8_t)v;
    return (ssize_t)n;
}

void rp_wbuf_uvarint(rp_wbuf *w, uint64_t v)
{
    uint8_t tmp[RP_UVARINT_MAX_LEN];
    assert(v <= RP_UVARINT_MAX_VALUE);
    ssize_t n = rp_uvarint_encode(tmp, sizeof(tmp), v);
    rp_wbuf_put(w, tmp, n > 0 ? (size_t)n : 0);
}
