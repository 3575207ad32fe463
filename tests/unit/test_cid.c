#include <criterion/criterion.h>

#include "testutil.h"
#include <stdio.h>
#include <string.h>

#include "multiformats/cid.h"
#include "multiformats/multihash.h"

Test(multihash, sha256_of_known_input)
{
    /* sha2-256("foo"), as in the multihash README example. */
    uint8_t mh[64], want[64];
    size_t wl = unhex("12202c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", want,
                      sizeof(want));
    ssize_t n = rp_multihash_sha256((const uint8_t *)"foo", 3, mh, sizeof(mh));
    cr_assert_eq(n, (ssize_t)wl);
    cr_assert_arr_eq(mh, want, wl);

    rp_multihash h;
    cr_assert_eq(rp_multihash_parse(mh, (size_t)n, &h, NULL), 0);
    cr_assert_eq(h.code, RP_MH_SHA2_256);
    cr_assert_eq(h.len, 32);
    cr_assert_eq(h.digest, mh + 2);
}

Test(multihash, identity_roundtrip_and_errors)
{
    uint8_t mh[64];
    ssize_t n = rp_multihash_encode(RP_MH_IDENTITY, (const uint8_t *)"abc", 3, mh, sizeof(mh));
    cr_assert_eq(n, 5);
    cr_assert_arr_eq(mh,
                     "\x00\x03"
                     "abc",
                     5);
    cr_assert_eq(rp_multihash_encode(RP_MH_IDENTITY, mh, 3, mh, 4), RINGP2P_ENOBUF);

    rp_multihash h;
    ringp2p_errinfo ei;
    cr_assert_eq(rp_multihash_parse(mh, 4, &h, &ei), RINGP2P_ETRUNCATED);
    cr_assert_not_null(strstr(ei.msg, "truncated"));
    uint8_t extra[] = { 0x00, 0x01, 0xaa, 0xbb };
    cr_assert_eq(rp_multihash_parse(extra, 4, &h, &ei), RINGP2P_EMULTIHASH);
    uint8_t short_sha[] = { 0x12, 0x02, 0xaa, 0xbb };
    cr_assert_eq(rp_multihash_parse(short_sha, 4, &h, &ei), RINGP2P_EMULTIHASH);
    cr_assert_not_null(strstr(ei.msg, "sha2-256"));
    uint8_t huge[] = { 0x00, 0x81, 0x08 }; /* length 1025 */
    cr_assert_eq(rp_multihash_parse(huge, 3, &h, &ei), RINGP2P_EMULTIHASH);
    uint8_t badvar[] = { 0x80, 0x00, 0x00 };
    cr_assert_eq(rp_multihash_parse(badvar, 3, &h, &ei), RINGP2P_EVARINT);
    cr_assert_eq(rp_multihash_parse(NULL, 0, &h, &ei), RINGP2P_ETRUNCATED);
}

/* libp2p specs RFC 0001: the same peer as CIDv1 (libp2p-key, base32) and as base58btc. */
Test(cid, rfc0001_peer_id_example)
{
    const char *cid_text = "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe";
    const char *b58 = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N";
    uint8_t bin[128], mh[64];
    rp_cid cid;
    ringp2p_errinfo ei;
    cr_assert_eq(rp_cid_from_text(cid_text, strlen(cid_text), bin, sizeof(bin), &cid, &ei), 0, "%s",
                 ei.msg);
    cr_assert_eq(cid.version, 1);
    cr_assert_eq(cid.codec, RP_CODEC_LIBP2P_KEY);
    cr_assert_eq(cid.mh.code, RP_MH_SHA2_256);

    ssize_t n = rp_base_decode(RP_BASE58BTC, b58, strlen(b58), mh, sizeof(mh), NULL);
    cr_assert_eq(n, 34);
    cr_assert_eq(cid.mh_len, 34);
    cr_assert_arr_eq(cid.mh_bytes, mh, 34);

    char text[128];
    n = rp_cid_v1_to_text(RP_BASE32, RP_CODEC_LIBP2P_KEY, mh, 34, text, sizeof(text));
    cr_assert_eq(n, (ssize_t)strlen(cid_text));
    cr_assert_str_eq(text, cid_text);
}

Test(cid, v0_text_and_binary)
{
    const char *v0 = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N";
    uint8_t bin[64];
    rp_cid cid;
    cr_assert_eq(rp_cid_from_text(v0, strlen(v0), bin, sizeof(bin), &cid, NULL), 0);
    cr_assert_eq(cid.version, 0);
    cr_assert_eq(cid.codec, RP_CODEC_DAG_PB);
    cr_assert_eq(cid.mh_len, 34);
}

Test(cid, rejects_bad_cids)
{
    uint8_t bin[128];
    rp_cid cid;
    ringp2p_errinfo ei;
    /* Multibase-encoded v0 (base32 of a sha2-256 multihash) is forbidden. */
    char text[128];
    uint8_t mh[34] = { 0x12, 0x20 };
    cr_assert_gt(rp_multibase_encode(RP_BASE32, mh, sizeof(mh), text, sizeof(text)), 0);
    cr_assert_eq(rp_cid_from_text(text, strlen(text), bin, sizeof(bin), &cid, &ei), RINGP2P_ECID);
    cr_assert_not_null(strstr(ei.msg, "CIDv0"));

    uint8_t v2[] = { 0x02, 0x72, 0x00, 0x01, 0x61 };
    cr_assert_eq(rp_cid_parse(v2, sizeof(v2), &cid, &ei), RINGP2P_ECID);
    cr_assert_not_null(strstr(ei.msg, "version 2"));
    uint8_t trunc[] = { 0x01, 0x72, 0x12, 0x20, 0x00 };
    cr_assert_eq(rp_cid_parse(trunc, sizeof(trunc), &cid, &ei), RINGP2P_ETRUNCATED);
    uint8_t novar[] = { 0x01, 0xff };
    cr_assert_eq(rp_cid_parse(novar, sizeof(novar), &cid, &ei), RINGP2P_ECID);
    cr_assert_eq(rp_cid_from_text("zz", 2, bin, sizeof(bin), &cid, &ei), RINGP2P_ECID);
    cr_assert_eq(rp_cid_from_text("Qm!", 3, bin, sizeof(bin), &cid, &ei), RINGP2P_EMULTIBASE);
}
