/*
 * CID text and binary decoding. A CIDv1 that parses must print (base32) and
 * parse back to the same codec and multihash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "multiformats/cid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_v1(const rp_cid *cid)
{
    char text[512];
    uint8_t bin[512];
    rp_cid again;
    ssize_t t =
        rp_cid_v1_to_text(RP_BASE32, cid->codec, cid->mh_bytes, cid->mh_len, text, sizeof(text));
    if (t < 0) abort();
    if (rp_cid_from_text(text, (size_t)t, bin, sizeof(bin), &again, NULL) != 0) abort();
    if (again.version != 1 || again.codec != cid->codec || again.mh_len != cid->mh_len ||
        memcmp(again.mh_bytes, cid->mh_bytes, cid->mh_len) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rp_cid cid;
    uint8_t bin[1024];
    if (rp_cid_parse(data, size, &cid, NULL) == 0 && cid.version == 1) check_v1(&cid);
    if (rp_cid_from_text((const char *)data, size, bin, sizeof(bin), &cid, NULL) == 0 &&
        cid.version == 1)
        check_v1(&cid);
    return 0;
}
