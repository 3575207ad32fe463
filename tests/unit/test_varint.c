#include <criterion/criterion.h>

#include "base/varint.h"

/* Vectors from multiformats/unsigned-varint README. */
static const struct {
    uint64_t v;
    uint8_t enc[9];
    size_t len;
} vectors[] = {
    { 1, { 0x01 }, 1 },
    { 127, { 0x7f }, 1 },
    { 128, { 0x80, 0x01 }, 2 },
    { 255, { 0xff, 0x01 }, 2 },
    { 300, { 0xac, 0x02 }, 2 },
    { 16384, { 0x80, 0x80, 0x01 }, 3 },
    { 0, { 0x00 }, 1 },
    { RP_UVARINT_MAX_VALUE, { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f }, 9 },
};

Test(varint, spec_vectors)
{
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        uint8_t buf[9];
        ssize_t n = rp_uvarint_encode(buf, sizeof(buf), vectors[i].v);
        cr_assert_eq(n, (ssize_t)vectors[i].len, "encode len of %lu", (unsigned long)vectors[i].v);
        cr_assert_arr_eq(buf, vectors[i].enc, vectors[i].len);
        cr_assert_eq(rp_uvarint_len(vectors[i].v), vectors[i].len);

        const uint8_t *p = vectors[i].enc;
        uint64_t out = 12345;
        cr_assert_eq(rp_uvarint_decode(&p, vectors[i].enc + vectors[i].len, &out), 0);
        cr_assert_eq(out, vectors[i].v);
        cr_assert_eq(p, vectors[i].enc + vectors[i].len);
    }
}

Test(varint, rejects_non_minimal)
{
    static const uint8_t cases[][3] = { { 0x80, 0x00 }, { 0x81, 0x00 }, { 0x80, 0x80, 0x00 } };
    static const size_t lens[] = { 2, 2, 3 };
    for (size_t i = 0; i < 3; i++) {
        const uint8_t *p = cases[i];
        uint64_t out;
        cr_assert_eq(rp_uvarint_decode(&p, cases[i] + lens[i], &out), RINGP2P_EVARINT);
        cr_assert_eq(p, cases[i], "cursor must not move on error");
    }
}

Test(varint, rejects_too_long_and_truncated)
{
    uint8_t ten[10];
    memset(ten, 0xff, sizeof(ten));
    ten[9] = 0x01;
    const uint8_t *p = ten;
    uint64_t out;
    cr_assert_eq(rp_uvarint_decode(&p, ten + 10, &out), RINGP2P_EVARINT);

    static const uint8_t cut[] = { 0x80, 0x80 };
    p = cut;
    cr_assert_eq(rp_uvarint_decode(&p, cut + 2, &out), RINGP2P_ETRUNCATED);
    p = cut;
    cr_assert_eq(rp_uvarint_decode(&p, cut, &out), RINGP2P_ETRUNCATED);
}

Test(varint, encode_limits)
{
    uint8_t buf[9];
    cr_assert_eq(rp_uvarint_encode(buf, sizeof(buf), RP_UVARINT_MAX_VALUE + 1), RINGP2P_EINVAL);
    cr_assert_eq(rp_uvarint_encode(buf, 1, 128), RINGP2P_ENOBUF);
    cr_assert_eq(rp_uvarint_encode(buf, 0, 0), RINGP2P_ENOBUF);
}

Test(varint, roundtrip_all_lengths)
{
    for (unsigned shift = 0; shift < 63; shift++) {
        uint64_t vals[3] = { (UINT64_C(1) << shift) - 1, UINT64_C(1) << shift,
                             (UINT64_C(1) << shift) + 1 };
        for (int j = 0; j < 3; j++) {
            uint8_t buf[9];
            ssize_t n = rp_uvarint_encode(buf, sizeof(buf), vals[j]);
            cr_assert_gt(n, 0);
            const uint8_t *p = buf;
            uint64_t out;
            cr_assert_eq(rp_uvarint_decode(&p, buf + n, &out), 0);
            cr_assert_eq(out, vals[j]);
        }
    }
}

Test(wbuf, counts_overflow_without_writing)
{
    uint8_t buf[4] = { 0 };
    rp_wbuf w = rp_wbuf_make(buf, 3);
    rp_wbuf_put(&w, "ab", 2);
    rp_wbuf_put(&w, "cd", 2);
    rp_wbuf_byte(&w, 'e');
    cr_assert_eq(w.len, 5);
    cr_assert_eq(rp_wbuf_result(&w), RINGP2P_ENOBUF);
    cr_assert_eq(buf[3], 0, "nothing written past cap");
    cr_assert_eq(buf[0], 'a');
}
