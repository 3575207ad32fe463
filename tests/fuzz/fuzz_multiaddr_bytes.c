/*
 * Binary multiaddr → validate → text → parse: must give back the same bytes,
 * and every component's value must survive value_to_text / value_from_text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "multiformats/multiaddr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ringp2p_errinfo ei;
    ssize_t ncomp = rp_maddr_validate(data, size, &ei);
    char text[RP_MADDR_TEXT_MAX];
    ssize_t tl = rp_maddr_to_text(data, size, text, sizeof(text), NULL);
    if (ncomp < 0) {
        /* Printing validates the same way. */
        if (tl != ncomp) abort();
        return 0;
    }
    if (tl < 0 || tl != rp_maddr_text_len(data, size, NULL) || strlen(text) != (size_t)tl) abort();

    uint8_t back[RP_MADDR_MAX_BYTES];
    ssize_t n = rp_maddr_from_text(text, (size_t)tl, back, sizeof(back), &ei);
    if (n != (ssize_t)size || (size > 0 && memcmp(back, data, size) != 0)) abort();

    const uint8_t *p = data, *end = data + size;
    ssize_t count = 0;
    while (p < end) {
        rp_maddr_comp c = { 0 };
        if (rp_maddr_next_component(&p, end, &c, NULL) != 0) abort();
        count++;
        char vt[RP_MADDR_TEXT_MAX];
        ssize_t vl = rp_maddr_value_to_text(c.proto, c.value, c.value_len, vt, sizeof(vt), NULL);
        if (vl < 0) abort();
        if (c.proto->size == 0) continue;
        uint8_t v[RP_MADDR_MAX_BYTES];
        ssize_t k = rp_maddr_value_from_text(c.proto, vt, (size_t)vl, v, sizeof(v), NULL);
        if (k != (ssize_t)c.value_len || memcmp(v, c.value, c.value_len) != 0) abort();
        uint8_t one[RP_MADDR_MAX_BYTES];
        k = rp_maddr_put_component(c.proto, c.value, c.value_len, one, sizeof(one), NULL);
        if (k != (ssize_t)c.len || memcmp(one, c.start, c.len) != 0) abort();
    }
    if (count != ncomp) abort();

    ringp2p_multiaddr *ma;
    if (ringp2p_multiaddr_from_bytes(data, size, &ma, NULL) != 0) abort();
    if (ringp2p_multiaddr_text_max(ma) != (size_t)tl + 1) abort();
    ringp2p_multiaddr_free(ma);
    return 0;
}
