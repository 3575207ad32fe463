/*
 * Multibase text decoding. Invariant: whatever decodes re-encodes (in the base
 * found) to text that decodes to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "multiformats/multibase.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t bytes[2048], again[2048];
    char text[4096];
    rp_base base;
    ssize_t n = rp_multibase_decode((const char *)data, size, bytes, sizeof(bytes), &base, NULL);
    if (n < 0) return 0;
    ssize_t t = rp_multibase_encode(base, bytes, (size_t)n, text, sizeof(text));
    if (t < 0) {
        if (t == RINGP2P_ELIMIT || t == RINGP2P_ENOBUF) return 0;
        abort();
    }
    if ((size_t)t != strlen(text)) abort();
    ssize_t m = rp_multibase_decode(text, (size_t)t, again, sizeof(again), NULL, NULL);
    if (m != n || memcmp(again, bytes, (size_t)n) != 0) abort();
    return 0;
}
