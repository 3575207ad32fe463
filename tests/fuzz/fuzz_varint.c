/* Decodes a stream of varints; every value decoded must re-encode to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/varint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    while (p < end) {
        const uint8_t *start = p;
        uint64_t v;
        if (rp_uvarint_decode(&p, end, &v) != 0) break;
        uint8_t buf[RP_UVARINT_MAX_LEN];
        ssize_t n = rp_uvarint_encode(buf, sizeof(buf), v);
        if (n != p - start || memcmp(buf, start, (size_t)n) != 0) abort();
    }
    return 0;
}
