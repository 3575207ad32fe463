/*
 * AES-GCM (NIST SP 800-38D) with VAES and VPCLMULQDQ on zmm registers.
 *
 * GHASH works on byte-reflected blocks (each 16-byte block byte-reversed and
 * read as a little-endian 128-bit integer), following Intel's carry-less
 * multiplication method (Gueron and Kounavis): in that order, bit i of the
 * integer is the coefficient of y^i in GF(2)[y] / (y^128 + y^127 + y^126 +
 * y^121 + 1), the reciprocal of GCM's polynomial. A product is computed with
 * four carry-less 64x64 multiplications (lo, two middle ones, hi) and reduced
 * by Montgomery reduction, two folds of 64 bits by the constant
 * 0xc200000000000000, which multiplies by y^-128; the hash key is stored times
 * y (shift left by one, reduced: H' = H<<1 ^ (carry ? 0xc2..01 : 0)) so that
 * the two factors cancel. Reduction is linear, so 16 products are summed
 * before one reduction (aggregated reduction): Y' = (Y + X1) H^16 + X2 H^15 +
 * ... + X16 H, with H^16..H^1 precomputed.
 *
 * CTR: J0 = IV || 0^31 || 1 is kept byte-reversed, so the 32-bit big-endian
 * counter is dword 0 and increments are plain 32-bit adds (mod 2^32, as GCM's
 * inc32); blocks are byte-reversed back before AES. Each zmm register holds
 * four blocks; the main loop runs 16 blocks (256 bytes) at a time: AES on
 * four registers, XOR, then GHASH of those 16 ciphertext blocks. A tail of
 * less than 256 bytes uses masked loads and stores and the powers H^m..H^1.
 */
#include "crypto/aesgcm.h"
#include "crypto/cpu.h"

#include <stdatomic.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/mem.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define RP_AESGCM_X86 1
#else
#define RP_AESGCM_X86 0
#endif

#if RP_AESGCM_X86
#include <immintrin.h>

#define RP_GCM                                                                                  \
    __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,vaes,vpclmulqdq,aes,pclmul,sse4." \
                          "1")))
#define RP_GCM_INLINE RP_GCM static inline __attribute__((always_inline))

/* ---- AES ------------------------------------------------------------------------------------ */

RP_GCM_INLINE __m128i ks_spread(__m128i k)
{
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    return _mm_xor_si128(k, _mm_slli_si128(k, 4));
}

/* FIPS 197 §5.2 key expansion; aeskeygenassist's dword 3 is RotWord(SubWord(w)) ^ rcon, dword 2
 * SubWord(w). */
#define KS_EVEN(prev, last, rcon) \
    _mm_xor_si128(ks_spread(prev), _mm_shuffle_epi32(_mm_aeskeygenassist_si128(last, rcon), 0xff))
#define KS_ODD(prev, last) \
    _mm_xor_si128(ks_spread(prev), _mm_shuffle_epi32(_mm_aeskeygenassist_si128(last, 0), 0xaa))

RP_GCM static void expand128(__m128i rk[15], const uint8_t *key)
{
    rk[0] = _mm_loadu_si128((const __m128i *)key);
    rk[1] = KS_EVEN(rk[0], rk[0], 0x01);
    rk[2] = KS_EVEN(rk[1], rk[1], 0x02);
    rk[3] = KS_EVEN(rk[2], rk[2], 0x04);
    rk[4] = KS_EVEN(rk[3], rk[3], 0x08);
    rk[5] = KS_EVEN(rk[4], rk[4], 0x10);
    rk[6] = KS_EVEN(rk[5], rk[5], 0x20);
    rk[7] = KS_EVEN(rk[6], rk[6], 0x40);
    rk[8] = KS_EVEN(rk[7], rk[7], 0x80);
    rk[9] = KS_EVEN(rk[8], rk[8], 0x1b);
    rk[10] = KS_EVEN(rk[9], rk[9], 0x36);
}

RP_GCM static void expand256(__m128i rk[15], const uint8_t *key)
{
    rk[0] = _mm_loadu_si128((const __m128i *)key);
    rk[1] = _mm_loadu_si128((const __m128i *)(key + 16));
    rk[2] = KS_EVEN(rk[0], rk[1], 0x01);
    rk[3] = KS_ODD(rk[1], rk[2]);
    rk[4] = KS_EVEN(rk[2], rk[3], 0x02);
    rk[5] = KS_ODD(rk[3], rk[4]);
    rk[6] = KS_EVEN(rk[4], rk[5], 0x04);
    rk[7] = KS_ODD(rk[5], rk[6]);
    rk[8] = KS_EVEN(rk[6], rk[7], 0x08);
    rk[9] = KS_ODD(rk[7], rk[8]);
    rk[10] = KS_EVEN(rk[8], rk[9], 0x10);
    rk[11] = KS_ODD(rk[9], rk[10]);
    rk[12] = KS_EVEN(rk[10], rk[11], 0x20);
    rk[13] = KS_ODD(rk[11], rk[12]);
    rk[14] = KS_EVEN(rk[12], rk[13], 0x40);
}

RP_GCM_INLINE __m128i aes_block(const rp_aesgcm_key *key, __m128i x)
{
    const __m128i *rk = (const __m128i *)key->rk;
    x = _mm_xor_si128(x, _mm_loadu_si128(rk));
    for (unsigned r = 1; r < key->rounds; r++) x = _mm_aesenc_si128(x, _mm_loadu_si128(rk + r));
    return _mm_aesenclast_si128(x, _mm_loadu_si128(rk + key->rounds));
}

/* Four registers (16 blocks) through `rounds` rounds; rounds is a constant after inlining. */
RP_GCM_INLINE void aes_x4(const __m512i *rkz, unsigned rounds, __m512i *a, __m512i *b, __m512i *c,
                          __m512i *d)
{
    __m512i k = rkz[0];
    __m512i x0 = _mm512_xor_si512(*a, k), x1 = _mm512_xor_si512(*b, k);
    __m512i x2 = _mm512_xor_si512(*c, k), x3 = _mm512_xor_si512(*d, k);
    for (unsigned r = 1; r < rounds; r++) {
        k = rkz[r];
        x0 = _mm512_aesenc_epi128(x0, k);
        x1 = _mm512_aesenc_epi128(x1, k);
        x2 = _mm512_aesenc_epi128(x2, k);
        x3 = _mm512_aesenc_epi128(x3, k);
    }
    k = rkz[rounds];
    *a = _mm512_aesenclast_epi128(x0, k);
    *b = _mm512_aesenclast_epi128(x1, k);
    *c = _mm512_aesenclast_epi128(x2, k);
    *d = _mm512_aesenclast_epi128(x3, k);
}

/* ---- GHASH ---------------------------------------------------------------------------------- */

RP_GCM_INLINE __m128i bswap_mask(void)
{
    return _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

#define GF_POLY_HI ((long long)0xc200000000000000ULL)

/* Montgomery reduction of the 256-bit sum lo + mi*2^64 + hi*2^128: returns it times y^-128 mod P.
 */
RP_GCM_INLINE __m128i reduce128(__m128i lo, __m128i mi, __m128i hi)
{
    const __m128i poly = _mm_set_epi64x(GF_POLY_HI, 0);
    __m128i t = _mm_clmulepi64_si128(lo, poly, 0x10);
    mi = _mm_xor_si128(mi, _mm_xor_si128(_mm_shuffle_epi32(lo, 0x4e), t));
    t = _mm_clmulepi64_si128(mi, poly, 0x10);
    return _mm_xor_si128(hi, _mm_xor_si128(_mm_shuffle_epi32(mi, 0x4e), t));
}

RP_GCM_INLINE __m128i gmul(__m128i a, __m128i b)
{
    __m128i lo = _mm_clmulepi64_si128(a, b, 0x00);
    __m128i hi = _mm_clmulepi64_si128(a, b, 0x11);
    __m128i mi = _mm_xor_si128(_mm_clmulepi64_si128(a, b, 0x01), _mm_clmulepi64_si128(a, b, 0x10));
    return reduce128(lo, mi, hi);
}

/* Lane-wise reduction, then the four lanes summed. */
RP_GCM_INLINE __m128i reduce512(__m512i lo, __m512i mi, __m512i hi)
{
    const __m512i poly = _mm512_broadcast_i32x4(_mm_set_epi64x(GF_POLY_HI, 0));
    __m512i t = _mm512_clmulepi64_epi128(lo, poly, 0x10);
    mi = _mm512_ternarylogic_epi64(mi, _mm512_shuffle_epi32(lo, (_MM_PERM_ENUM)0x4e), t, 0x96);
    t = _mm512_clmulepi64_epi128(mi, poly, 0x10);
    hi = _mm512_ternarylogic_epi64(hi, _mm512_shuffle_epi32(mi, (_MM_PERM_ENUM)0x4e), t, 0x96);
    __m256i h = _mm256_xor_si256(_mm512_castsi512_si256(hi), _mm512_extracti64x4_epi64(hi, 1));
    return _mm_xor_si128(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* Adds the products of d (four byte-reflected blocks) and p (four key powers) to lo, mi, hi. */
RP_GCM_INLINE void mul_acc(__m512i d, __m512i p, __m512i *lo, __m512i *mi, __m512i *hi)
{
    *lo = _mm512_xor_si512(*lo, _mm512_clmulepi64_epi128(d, p, 0x00));
    *hi = _mm512_xor_si512(*hi, _mm512_clmulepi64_epi128(d, p, 0x11));
    *mi = _mm512_ternarylogic_epi64(*mi, _mm512_clmulepi64_epi128(d, p, 0x01),
                                    _mm512_clmulepi64_epi128(d, p, 0x10), 0x96);
}

RP_GCM_INLINE __m512i with_y(__m512i d0, __m128i y)
{
    return _mm512_xor_si512(d0, _mm512_inserti32x4(_mm512_setzero_si512(), y, 0));
}

/* Y' = (Y + D1) H^16 + D2 H^15 + ... + D16 H for 16 byte-reflected blocks in d0..d3. */
RP_GCM_INLINE __m128i ghash16(const rp_aesgcm_key *key, __m128i y, __m512i d0, __m512i d1,
                              __m512i d2, __m512i d3)
{
    const __m512i *hp = (const __m512i *)key->hpow;
    __m512i lo = _mm512_setzero_si512(), mi = lo, hi = lo;
    mul_acc(with_y(d0, y), _mm512_loadu_si512(hp + 0), &lo, &mi, &hi);
    mul_acc(d1, _mm512_loadu_si512(hp + 1), &lo, &mi, &hi);
    mul_acc(d2, _mm512_loadu_si512(hp + 2), &lo, &mi, &hi);
    mul_acc(d3, _mm512_loadu_si512(hp + 3), &lo, &mi, &hi);
    return reduce512(lo, mi, hi);
}

/* The same for m (1..16) blocks, zero past the m-th: powers H^m..H^1. */
RP_GCM_INLINE __m128i ghash_tail(const rp_aesgcm_key *key, __m128i y, const __m512i d[4], size_t m)
{
    const uint8_t *base = key->hpow[16 - m];
    __m512i lo = _mm512_setzero_si512(), mi = lo, hi = lo;
    for (size_t j = 0; j * 4 < m; j++) {
        size_t lanes = m - j * 4 < 4 ? m - j * 4 : 4;
        __mmask8 km = (__mmask8)((1u << (2 * lanes)) - 1);
        __m512i p = _mm512_maskz_loadu_epi64(km, base + 64 * j);
        mul_acc(j == 0 ? with_y(d[0], y) : d[j], p, &lo, &mi, &hi);
    }
    return reduce512(lo, mi, hi);
}

RP_GCM_INLINE __mmask64 byte_mask(size_t n)
{
    return n >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << n) - 1);
}

/* GHASH over n bytes, the last block zero-padded. */
RP_GCM_INLINE __m128i ghash_bytes(const rp_aesgcm_key *key, __m128i y, const uint8_t *p, size_t n)
{
    const __m512i bs = _mm512_broadcast_i32x4(bswap_mask());
    for (; n >= 256; p += 256, n -= 256) {
        __m512i d0 = _mm512_shuffle_epi8(_mm512_loadu_si512(p), bs);
        __m512i d1 = _mm512_shuffle_epi8(_mm512_loadu_si512(p + 64), bs);
        __m512i d2 = _mm512_shuffle_epi8(_mm512_loadu_si512(p + 128), bs);
        __m512i d3 = _mm512_shuffle_epi8(_mm512_loadu_si512(p + 192), bs);
        y = ghash16(key, y, d0, d1, d2, d3);
    }
    if (n > 0) {
        __m512i d[4] = { _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                         _mm512_setzero_si512() };
        for (size_t j = 0; j * 64 < n; j++)
            d[j] =
                _mm512_shuffle_epi8(_mm512_maskz_loadu_epi8(byte_mask(n - j * 64), p + 64 * j), bs);
        y = ghash_tail(key, y, d, (n + 15) / 16);
    }
    return y;
}

/* ---- GCM ------------------------------------------------------------------------------------ */

/*
 * CTR over len bytes from in to out with GHASH over the ciphertext (of out when
 * sealing, of in when opening), starting from y; returns y.
 */
RP_GCM_INLINE __m128i gcm_crypt(const rp_aesgcm_key *key, unsigned rounds, bool seal, uint8_t *out,
                                const uint8_t *in, size_t len, __m128i j0r, __m128i y)
{
    const __m512i bs = _mm512_broadcast_i32x4(bswap_mask());
    __m512i rkz[15];
    for (unsigned r = 0; r <= rounds; r++)
        rkz[r] = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)key->rk[r]));
    const __m512i four = _mm512_set_epi32(0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4);
    /* Byte-reversed counter blocks J0+1 .. J0+4: dword 0 of each lane is the counter. */
    __m512i ctr =
        _mm512_add_epi32(_mm512_broadcast_i32x4(j0r),
                         _mm512_set_epi32(0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 1));

    __m512i p0 = _mm512_setzero_si512(), p1 = p0, p2 = p0, p3 = p0;
    bool pending = false;
    for (; len >= 256; in += 256, out += 256, len -= 256) {
        __m512i c1 = _mm512_add_epi32(ctr, four);
        __m512i c2 = _mm512_add_epi32(c1, four);
        __m512i c3 = _mm512_add_epi32(c2, four);
        __m512i k0 = _mm512_shuffle_epi8(ctr, bs), k1 = _mm512_shuffle_epi8(c1, bs);
        __m512i k2 = _mm512_shuffle_epi8(c2, bs), k3 = _mm512_shuffle_epi8(c3, bs);
        ctr = _mm512_add_epi32(c3, four);
        __m512i i0 = _mm512_loadu_si512(in), i1 = _mm512_loadu_si512(in + 64);
        __m512i i2 = _mm512_loadu_si512(in + 128), i3 = _mm512_loadu_si512(in + 192);
        aes_x4(rkz, rounds, &k0, &k1, &k2, &k3);
        __m512i o0 = _mm512_xor_si512(i0, k0), o1 = _mm512_xor_si512(i1, k1);
        __m512i o2 = _mm512_xor_si512(i2, k2), o3 = _mm512_xor_si512(i3, k3);
        _mm512_storeu_si512(out, o0);
        _mm512_storeu_si512(out + 64, o1);
        _mm512_storeu_si512(out + 128, o2);
        _mm512_storeu_si512(out + 192, o3);
        if (seal) {
            /* GHASH lags one chunk behind, so it overlaps the next chunk's AES. */
            if (pending) y = ghash16(key, y, p0, p1, p2, p3);
            p0 = _mm512_shuffle_epi8(o0, bs);
            p1 = _mm512_shuffle_epi8(o1, bs);
            p2 = _mm512_shuffle_epi8(o2, bs);
            p3 = _mm512_shuffle_epi8(o3, bs);
            pending = true;
        } else {
            y = ghash16(key, y, _mm512_shuffle_epi8(i0, bs), _mm512_shuffle_epi8(i1, bs),
                        _mm512_shuffle_epi8(i2, bs), _mm512_shuffle_epi8(i3, bs));
        }
    }
    if (pending) y = ghash16(key, y, p0, p1, p2, p3);
    if (len > 0) {
        __m512i c1 = _mm512_add_epi32(ctr, four);
        __m512i c2 = _mm512_add_epi32(c1, four);
        __m512i c3 = _mm512_add_epi32(c2, four);
        __m512i k0 = _mm512_shuffle_epi8(ctr, bs), k1 = _mm512_shuffle_epi8(c1, bs);
        __m512i k2 = _mm512_shuffle_epi8(c2, bs), k3 = _mm512_shuffle_epi8(c3, bs);
        aes_x4(rkz, rounds, &k0, &k1, &k2, &k3);
        __m512i ks[4] = { k0, k1, k2, k3 }, d[4];
        for (size_t j = 0; j < 4; j++) d[j] = _mm512_setzero_si512();
        for (size_t j = 0; j * 64 < len; j++) {
            __mmask64 m = byte_mask(len - j * 64);
            __m512i i = _mm512_maskz_loadu_epi8(m, in + 64 * j);
            __m512i o = _mm512_maskz_xor_epi64(0xff, i, ks[j]);
            o = _mm512_maskz_mov_epi8(m, o);
            _mm512_mask_storeu_epi8(out + 64 * j, m, o);
            d[j] = _mm512_shuffle_epi8(seal ? o : i, bs);
        }
        y = ghash_tail(key, y, d, (len + 15) / 16);
    }
    return y;
}

RP_GCM static __m128i gcm_run(const rp_aesgcm_key *key, bool seal, uint8_t *out, const uint8_t *in,
                              size_t len, __m128i j0r, uint32_t first, __m128i y)
{
    /* Counter blocks from J0 + 1 + first (inc32: the 32-bit add wraps). */
    j0r = _mm_add_epi32(j0r, _mm_cvtsi32_si128((int)first));
    if (key->rounds == 14)
        return seal ? gcm_crypt(key, 14, true, out, in, len, j0r, y)
                    : gcm_crypt(key, 14, false, out, in, len, j0r, y);
    return seal ? gcm_crypt(key, 10, true, out, in, len, j0r, y)
                : gcm_crypt(key, 10, false, out, in, len, j0r, y);
}

/*
 * Seals in[0..len) || extra[0..extra_len) (extra_len <= RP_AESGCM_EXTRA_MAX) to
 * out, or opens in[0..len) to out (extra_len 0), and computes the tag.
 */
RP_GCM static void gcm_tag(const rp_aesgcm_key *key, const uint8_t nonce[12], const uint8_t *in,
                           uint8_t *out, size_t len, const uint8_t *extra, size_t extra_len,
                           const uint8_t *ad, size_t ad_len, bool seal, uint8_t tag[16])
{
    uint8_t j0[16];
    memcpy(j0, nonce, 12);
    j0[12] = 0;
    j0[13] = 0;
    j0[14] = 0;
    j0[15] = 1;
    __m128i j0b = _mm_loadu_si128((const __m128i *)j0);
    __m128i j0r = _mm_shuffle_epi8(j0b, bswap_mask());
    __m128i y = _mm_setzero_si128();
    if (ad_len > 0) y = ghash_bytes(key, y, ad, ad_len);
    if (extra_len == 0) {
        if (len > 0) y = gcm_run(key, seal, out, in, len, j0r, 0, y);
    } else {
        /* Whole 256-byte chunks of in directly, the rest of in and extra through a buffer. */
        size_t full = len & ~(size_t)255, rest = len - full;
        if (full > 0) y = gcm_run(key, seal, out, in, full, j0r, 0, y);
        uint8_t tmp[255 + RP_AESGCM_EXTRA_MAX];
        if (rest > 0) memcpy(tmp, in + full, rest); /* in may be NULL when len is 0 */
        memcpy(tmp + rest, extra, extra_len);
        y = gcm_run(key, seal, tmp, tmp, rest + extra_len, j0r, (uint32_t)(full / 16), y);
        memcpy(out + full, tmp, rest + extra_len);
        OPENSSL_cleanse(tmp, rest + extra_len);
    }
    uint64_t total = (uint64_t)len + extra_len;
    __m128i lens = _mm_set_epi64x((long long)((uint64_t)ad_len * 8), (long long)(total * 8));
    y = gmul(_mm_xor_si128(y, lens), _mm_loadu_si128((const __m128i *)key->hpow[15]));
    __m128i t = _mm_xor_si128(_mm_shuffle_epi8(y, bswap_mask()), aes_block(key, j0b));
    _mm_storeu_si128((__m128i *)tag, t);
}

RP_GCM static void gcm_init(rp_aesgcm_key *key, const uint8_t *bytes, size_t len)
{
    __m128i rk[15];
    if (len == 16) {
        expand128(rk, bytes);
        key->rounds = 10;
    } else {
        expand256(rk, bytes);
        key->rounds = 14;
    }
    for (unsigned r = 0; r <= key->rounds; r++) _mm_storeu_si128((__m128i *)key->rk[r], rk[r]);
    /* H = E(K, 0^128), byte-reflected, times y: shift left by one and reduce. */
    __m128i h = _mm_shuffle_epi8(aes_block(key, _mm_setzero_si128()), bswap_mask());
    __m128i carry = _mm_shuffle_epi32(_mm_srai_epi32(h, 31), 0xff); /* all ones if bit 127 */
    __m128i sh = _mm_or_si128(_mm_slli_epi64(h, 1), _mm_slli_si128(_mm_srli_epi64(h, 63), 8));
    h = _mm_xor_si128(sh, _mm_and_si128(carry, _mm_set_epi64x(GF_POLY_HI, 1)));
    __m128i p = h;
    _mm_storeu_si128((__m128i *)key->hpow[15], p);
    for (int i = 14; i >= 0; i--) {
        p = gmul(p, h);
        _mm_storeu_si128((__m128i *)key->hpow[i], p);
    }
    memset(rk, 0, sizeof(rk));
}

#endif /* RP_AESGCM_X86 */

/* ---- public --------------------------------------------------------------------------------- */

bool rp_aesgcm_simd_available(void)
{
    return RP_AESGCM_X86 && (rp_cpu_features() & RP_CPU_VAES_CLMUL) != 0;
}

int rp_aesgcm_init(rp_aesgcm_key *key, const uint8_t *bytes, size_t len)
{
    memset(key, 0, sizeof(*key));
    if ((len != 16 && len != 32) || !rp_aesgcm_simd_available()) return -1;
#if RP_AESGCM_X86
    gcm_init(key, bytes, len);
    return 0;
#else
    return -1;
#endif
}

void rp_aesgcm_clear(rp_aesgcm_key *key)
{
    OPENSSL_cleanse(key, sizeof(*key));
}

/* SP 800-38D §5.2.1.1: at most 2^39 - 256 bits of plaintext. */
static const uint64_t gcm_max_len = (UINT64_C(1) << 36) - 32;

int rp_aesgcm_seal_extra(const rp_aesgcm_key *key, uint8_t *out,
                         const uint8_t nonce[RP_AESGCM_NONCE_LEN], const uint8_t *in, size_t len,
                         const uint8_t *extra, size_t extra_len, const uint8_t *ad, size_t ad_len,
                         uint8_t tag[RP_AESGCM_TAG_LEN])
{
    if (extra_len > RP_AESGCM_EXTRA_MAX || (uint64_t)len > gcm_max_len - extra_len ||
        key->rounds == 0)
        return -1;
#if RP_AESGCM_X86
    gcm_tag(key, nonce, in, out, len, extra, extra_len, ad, ad_len, true, tag);
    return 0;
#else
    return -1;
#endif
}

int rp_aesgcm_seal(const rp_aesgcm_key *key, uint8_t *out, const uint8_t nonce[RP_AESGCM_NONCE_LEN],
                   const uint8_t *in, size_t len, const uint8_t *ad, size_t ad_len,
                   uint8_t tag[RP_AESGCM_TAG_LEN])
{
    return rp_aesgcm_seal_extra(key, out, nonce, in, len, NULL, 0, ad, ad_len, tag);
}

int rp_aesgcm_open(const rp_aesgcm_key *key, uint8_t *out, const uint8_t nonce[RP_AESGCM_NONCE_LEN],
                   const uint8_t *in, size_t len, const uint8_t *ad, size_t ad_len,
                   const uint8_t tag[RP_AESGCM_TAG_LEN])
{
    if ((uint64_t)len > gcm_max_len || key->rounds == 0) return -1;
#if RP_AESGCM_X86
    uint8_t want[RP_AESGCM_TAG_LEN];
    gcm_tag(key, nonce, in, out, len, NULL, 0, ad, ad_len, false, want);
    int bad = CRYPTO_memcmp(want, tag, RP_AESGCM_TAG_LEN);
    OPENSSL_cleanse(want, sizeof(want));
    if (bad != 0) {
        if (len > 0) memset(out, 0, len);
        return -1;
    }
    return 0;
#else
    return -1;
#endif
}
