/* Helpers shared by the unit tests. */
#ifndef RP_TESTS_TESTUTIL_H
#define RP_TESTS_TESTUTIL_H

#include <criterion/criterion.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Decodes a hex test vector (either case; spaces and other separators are
 * skipped, so vectors can be laid out readably) into out[cap]. Asserts that
 * it fits and has an even number of digits; returns the byte count.
 */
static inline size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (const char *c = hex; *c != '\0'; c++) {
        int v;
        if (*c >= '0' && *c <= '9')
            v = *c - '0';
        else if (*c >= 'a' && *c <= 'f')
            v = *c - 'a' + 10;
        else if (*c >= 'A' && *c <= 'F')
            v = *c - 'A' + 10;
        else
            continue;
        if (hi < 0) {
            hi = v;
            continue;
        }
        cr_assert_lt(n, cap, "hex vector too long for its buffer");
        out[n++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    cr_assert_eq(hi, -1, "hex vector with an odd number of digits");
    return n;
}

#endif
