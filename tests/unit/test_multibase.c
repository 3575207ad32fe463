#include <criterion/criterion.h>
#include <string.h>

#include "multiformats/multibase.h"

/* multiformats/multibase tests/{basic,leading_zero,two_leading_zeros}.csv */
static const struct {
    const char *input;
    size_t input_len;
    const char *text[5];
} vectors[] = {
    { "yes mani !",
      10,
      { "f796573206d616e692021", "bpfsxgidnmfxgsibb", "k2lcpzo5yikidynfl", "z7paNL19xttacUY",
        "ueWVzIG1hbmkgIQ" } },
    { "\0yes mani !",
      11,
      { "f00796573206d616e692021", "bab4wk4zanvqw42jaee", "k02lcpzo5yikidynfl", "z17paNL19xttacUY",
        "uAHllcyBtYW5pICE" } },
    { "\0\0yes mani !",
      12,
      { "f0000796573206d616e692021", "baaahszltebwwc3tjeaqq", "k002lcpzo5yikidynfl",
        "z117paNL19xttacUY", "uAAB5ZXMgbWFuaSAh" } },
};
static const rp_base bases[5] = { RP_BASE16, RP_BASE32, RP_BASE36, RP_BASE58BTC, RP_BASE64URL };

Test(multibase, spec_vectors_encode_and_decode)
{
    for (size_t v = 0; v < sizeof(vectors) / sizeof(vectors[0]); v++) {
        for (int b = 0; b < 5; b++) {
            char text[128];
            ssize_t n = rp_multibase_encode(bases[b], (const uint8_t *)vectors[v].input,
                                            vectors[v].input_len, text, sizeof(text));
            cr_assert_gt(n, 0);
            cr_assert_str_eq(text, vectors[v].text[b], "vector %zu base %c", v, (char)bases[b]);
            cr_assert_eq((size_t)n, strlen(text));
            cr_assert_leq((size_t)n - 1, rp_base_encoded_max(bases[b], vectors[v].input_len));

            uint8_t bytes[64];
            rp_base found;
            ringp2p_errinfo ei;
            n = rp_multibase_decode(vectors[v].text[b], strlen(vectors[v].text[b]), bytes,
                                    sizeof(bytes), &found, &ei);
            cr_assert_eq(n, (ssize_t)vectors[v].input_len, "decode %s: %s", vectors[v].text[b],
                         n < 0 ? ei.msg : "");
            cr_assert_eq(found, bases[b]);
            cr_assert_arr_eq(bytes, vectors[v].input, vectors[v].input_len);
        }
    }
}

/* multiformats/multibase tests/case_insensitivity.csv: all decode to "hello world". */
Test(multibase, case_insensitive_bases)
{
    static const char *texts[] = { "f68656c6c6f20776F726C64", "bnbswy3dpeB3W64TMMQ",
                                   "kfUvrsIvVnfRbjWaJo", "F68656C6C6F20776F726C64",
                                   "BNBSWY3DPEB3W64TMMQ" };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        uint8_t out[32];
        ssize_t n = rp_multibase_decode(texts[i], strlen(texts[i]), out, sizeof(out), NULL, NULL);
        cr_assert_eq(n, 11, "%s", texts[i]);
        cr_assert_arr_eq(out, "hello world", 11);
    }
}

Test(multibase, empty_input)
{
    char text[4];
    uint8_t out[4];
    for (int b = 0; b < 5; b++) {
        cr_assert_eq(rp_base_encode(bases[b], NULL, 0, text, sizeof(text)), 0);
        cr_assert_str_eq(text, "");
        cr_assert_eq(rp_base_decode(bases[b], "", 0, out, sizeof(out), NULL), 0);
    }
}

Test(multibase, rejects_malformed_text)
{
    static const struct {
        const char *text;
        const char *msg;
    } bad[] = {
        { "", "empty" },
        { "x123", "prefix 'x'" },
        { "z0OIl", "character '0'" },    /* not in the base58 alphabet */
        { "bpfsxgidnmfxgsibb=", "'='" }, /* padding is not multibase base32 */
        { "b1", "character '1'" },
        { "bb", "length" },
        { "bpf1", "character '1'" },
        { "f7", "length" },
        { "f7g", "character 'g'" },
        { "f7a6", "length" },
        { "fzz", "character 'z'" },
        { "u+A", "character '+'" },
        { "ub", "length" },
        { "bab", "trailing bits" }, /* 0, 1: a low bit set */
        { "uAB", "trailing bits" },
        { "k0!", "character '!'" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t out[32];
        ringp2p_errinfo ei = { 0 };
        ssize_t n =
            rp_multibase_decode(bad[i].text, strlen(bad[i].text), out, sizeof(out), NULL, &ei);
        cr_assert_eq(n, RINGP2P_EMULTIBASE, "'%s' gave %zd", bad[i].text, n);
        cr_assert_eq(ei.code, RINGP2P_EMULTIBASE);
        cr_assert_not_null(strstr(ei.msg, bad[i].msg), "'%s': message '%s' lacks '%s'", bad[i].text,
                           ei.msg, bad[i].msg);
    }
}

Test(multibase, buffer_too_small)
{
    char text[8];
    cr_assert_eq(
        rp_multibase_encode(RP_BASE58BTC, (const uint8_t *)"yes mani !", 10, text, sizeof(text)),
        RINGP2P_ENOBUF);
    uint8_t out[4];
    cr_assert_eq(rp_multibase_decode("z7paNL19xttacUY", 15, out, sizeof(out), NULL, NULL),
                 RINGP2P_ENOBUF);
    cr_assert_eq(rp_multibase_decode("f796573206d616e692021", 21, out, sizeof(out), NULL, NULL),
                 RINGP2P_ENOBUF);
}

Test(multibase, radix_limit)
{
    char text[1024];
    memset(text, '2', sizeof(text));
    uint8_t out[1024];
    ringp2p_errinfo ei;
    cr_assert_eq(rp_base_decode(RP_BASE58BTC, text, sizeof(text), out, sizeof(out), &ei),
                 RINGP2P_ELIMIT);
}

Test(multibase, roundtrip_pseudorandom)
{
    uint32_t x = 12345;
    for (int iter = 0; iter < 500; iter++) {
        uint8_t in[80];
        size_t len = (size_t)(iter % 80);
        for (size_t i = 0; i < len; i++) {
            x = x * 1103515245 + 12345;
            in[i] = (uint8_t)(x >> 16);
        }
        if (iter % 7 == 0 && len > 2) in[0] = in[1] = 0;
        for (int b = 0; b < 5; b++) {
            char text[256];
            ssize_t n = rp_base_encode(bases[b], in, len, text, sizeof(text));
            cr_assert_geq(n, 0);
            cr_assert_leq((size_t)n, rp_base_encoded_max(bases[b], len));
            uint8_t out[128];
            ssize_t m = rp_base_decode(bases[b], text, (size_t)n, out, sizeof(out), NULL);
            cr_assert_eq(m, (ssize_t)len, "base %c len %zu", (char)bases[b], len);
            cr_assert_leq((size_t)m, rp_base_decoded_max(bases[b], (size_t)n));
            if (len) cr_assert_arr_eq(out, in, len);
        }
    }
}
