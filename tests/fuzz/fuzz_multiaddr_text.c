/*
 * Multiaddr text → bytes → text → bytes: the bytes must be stable, and the
 * canonical text must be a fixed point of parse-then-print.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "multiformats/multiaddr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t b1[RP_MADDR_MAX_BYTES], b2[RP_MADDR_MAX_BYTES];
    char t1[RP_MADDR_TEXT_MAX], t2[RP_MADDR_TEXT_MAX];
    ringp2p_errinfo ei;

    ssize_t n1 = rp_maddr_from_text((const char *)data, size, b1, sizeof(b1), &ei);
    if (n1 < 0) {
        if (ei.code != n1 || ei.msg[0] == '\0') abort();
        return 0;
    }
    if (rp_maddr_validate(b1, (size_t)n1, NULL) < 0) abort();
    ssize_t l1 = rp_maddr_to_text(b1, (size_t)n1, t1, sizeof(t1), NULL);
    if (l1 <= 0) abort();
    ssize_t n2 = rp_maddr_from_text(t1, (size_t)l1, b2, sizeof(b2), &ei);
    if (n2 != n1 || memcmp(b1, b2, (size_t)n1) != 0) abort();
    ssize_t l2 = rp_maddr_to_text(b2, (size_t)n2, t2, sizeof(t2), NULL);
    if (l2 != l1 || memcmp(t1, t2, (size_t)l1) != 0) abort();

    /* Through the public API, when the input is a C string. */
    if (memchr(data, '\0', size) == NULL && size < RP_MADDR_TEXT_MAX) {
        char *s = malloc(size + 1);
        memcpy(s, data, size);
        s[size] = '\0';
        ringp2p_multiaddr *ma;
        if (ringp2p_multiaddr_parse(s, &ma, NULL) != 0) abort();
        if (ringp2p_multiaddr_to_string(ma, t2, sizeof(t2)) != l1 || strcmp(t1, t2) != 0) abort();
        ringp2p_multiaddr_free(ma);
        free(s);
    }
    return 0;
}
