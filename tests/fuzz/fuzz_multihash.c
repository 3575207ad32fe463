/* Multihash decoding: a decoded multihash re-encodes to exactly the bytes it consumed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "multiformats/multihash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data;
    rp_multihash mh;
    if (rp_multihash_decode(&p, data + size, &mh, NULL) != 0) {
        if (p != data) abort(); /* the cursor must not move on error */
        return 0;
    }
    if (mh.digest < data || mh.digest + mh.len > data + size || p > data + size) abort();
    uint8_t out[256];
    ssize_t n = rp_multihash_encode(mh.code, mh.digest, mh.len, out, sizeof(out));
    if (n != p - data || memcmp(out, data, (size_t)n) != 0) abort();
    return 0;
}
