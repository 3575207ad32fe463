/*
 * ChaCha20 (RFC 8439 §2.3-2.4), written from the RFC.
 *
 * The state is 16 little-endian words: 4 constants, 8 key words, the block
 * counter, 3 nonce words (§2.3). A block is 10 "double rounds" of quarter
 * rounds on columns then diagonals (§2.1-2.3), with the input state added back
 * at the end; the keystream is the blocks for counter, counter+1, ... (§2.4).
 *
 * Bulk work goes 1 KiB at a time straight from `in` to `out`. Anything shorter
 * is XORed from keystream made into rp_chacha20.ks, so a stream can stop at
 * any byte and resume there with the next piece.
 */
#include "crypto/chacha20.h"
#include "crypto/cpu.h"

#include <stdatomic.h>
#include <string.h>

#include <openssl/mem.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define RP_CHACHA_X86 1
#else
#define RP_CHACHA_X86 0
#endif

/* "expand 32-byte k" (§2.3). */
static const uint32_t sigma[4] = { 0x61707865, 0x3320646e, 0x79622d32, 0x6b206574 };

static uint32_t load32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void store32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* ---- portable ---------------------------------------------------------------------------- */

#define ROTL32(v, n) ((uint32_t)((v) << (n)) | ((v) >> (32 - (n))))

/* §2.1 */
#define QR(a, b, c, d)                     \
    do {                                   \
        a += b, d ^= a, d = ROTL32(d, 16); \
        c += d, b ^= c, b = ROTL32(b, 12); \
        a += b, d ^= a, d = ROTL32(d, 8);  \
        c += d, b ^= c, b = ROTL32(b, 7);  \
    } while (0)

/* §2.3: the block for state s (its counter as is), serialized little-endian into out. */
static void block_portable(uint8_t out[64], const uint32_t s[16])
{
    uint32_t x[16];
    memcpy(x, s, sizeof(x));
    for (int i = 0; i < 10; i++) {
        QR(x[0], x[4], x[8], x[12]);
        QR(x[1], x[5], x[9], x[13]);
        QR(x[2], x[6], x[10], x[14]);
        QR(x[3], x[7], x[11], x[15]);
        QR(x[0], x[5], x[10], x[15]);
        QR(x[1], x[6], x[11], x[12]);
        QR(x[2], x[7], x[8], x[13]);
        QR(x[3], x[4], x[9], x[14]);
    }
    for (int i = 0; i < 16; i++) store32(out + 4 * i, x[i] + s[i]);
}

static void xor_portable(uint8_t *out, const uint8_t *in, const uint8_t *ks, size_t len)
{
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t a, b;
        memcpy(&a, in + i, 8);
        memcpy(&b, ks + i, 8);
        a ^= b;
        memcpy(out + i, &a, 8);
    }
    for (; i < len; i++) out[i] = in[i] ^ ks[i];
}

/* ---- AVX-512 ----------------------------------------------------------------------------- */

#if RP_CHACHA_X86
#define RP_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq")))

/* One quarter round on four vectors of words (§2.1), lane by lane. */
#define QR512(a, b, c, d)                                                                    \
    do {                                                                                     \
        a = _mm512_add_epi32(a, b), d = _mm512_xor_si512(d, a), d = _mm512_rol_epi32(d, 16); \
        c = _mm512_add_epi32(c, d), b = _mm512_xor_si512(b, c), b = _mm512_rol_epi32(b, 12); \
        a = _mm512_add_epi32(a, b), d = _mm512_xor_si512(d, a), d = _mm512_rol_epi32(d, 8);  \
        c = _mm512_add_epi32(c, d), b = _mm512_xor_si512(b, c), b = _mm512_rol_epi32(b, 7);  \
    } while (0)

/* Four 128-bit lanes of a, b, c, d -> block k = (a[k], b[k], c[k], d[k]) for k = 0..3. */
#define TRANSPOSE_LANES(a, b, c, d, o0, o1, o2, o3)                       \
    do {                                                                  \
        __m512i z0_ = _mm512_shuffle_i32x4(a, b, 0x44); /* a0 a1 b0 b1 */ \
        __m512i z1_ = _mm512_shuffle_i32x4(c, d, 0x44); /* c0 c1 d0 d1 */ \
        __m512i z2_ = _mm512_shuffle_i32x4(a, b, 0xee); /* a2 a3 b2 b3 */ \
        __m512i z3_ = _mm512_shuffle_i32x4(c, d, 0xee); /* c2 c3 d2 d3 */ \
        o0 = _mm512_shuffle_i32x4(z0_, z1_, 0x88);      /* a0 b0 c0 d0 */ \
        o1 = _mm512_shuffle_i32x4(z0_, z1_, 0xdd);      /* a1 b1 c1 d1 */ \
        o2 = _mm512_shuffle_i32x4(z2_, z3_, 0x88);                        \
        o3 = _mm512_shuffle_i32x4(z2_, z3_, 0xdd);                        \
    } while (0)

/*
 * 16 blocks per iteration, n iterations: register xj holds word j of blocks
 * 0..15 (lane i = block counter+i), so a quarter round is 12 vector ops for
 * all 16 blocks. `in` NULL writes the keystream itself.
 */
RP_AVX512 static void x16(uint8_t *out, const uint8_t *in, size_t n, const uint32_t s[16])
{
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    uint32_t ctr = s[12];
    for (; n > 0; n--, ctr += 16) {
        __m512i x0 = _mm512_set1_epi32((int)s[0]), x1 = _mm512_set1_epi32((int)s[1]);
        __m512i x2 = _mm512_set1_epi32((int)s[2]), x3 = _mm512_set1_epi32((int)s[3]);
        __m512i x4 = _mm512_set1_epi32((int)s[4]), x5 = _mm512_set1_epi32((int)s[5]);
        __m512i x6 = _mm512_set1_epi32((int)s[6]), x7 = _mm512_set1_epi32((int)s[7]);
        __m512i x8 = _mm512_set1_epi32((int)s[8]), x9 = _mm512_set1_epi32((int)s[9]);
        __m512i x10 = _mm512_set1_epi32((int)s[10]), x11 = _mm512_set1_epi32((int)s[11]);
        /* 32-bit lane adds: the counter wraps modulo 2^32, as in the portable path. */
        __m512i x12 = _mm512_add_epi32(_mm512_set1_epi32((int)ctr), lane);
        __m512i x13 = _mm512_set1_epi32((int)s[13]), x14 = _mm512_set1_epi32((int)s[14]);
        __m512i x15 = _mm512_set1_epi32((int)s[15]);
        const __m512i c12 = x12;
        /* Unrolled, GCC keeps the 16 words in place instead of copying registers each round. */
#pragma GCC unroll 10
        for (int r = 0; r < 10; r++) {
            QR512(x0, x4, x8, x12);
            QR512(x1, x5, x9, x13);
            QR512(x2, x6, x10, x14);
            QR512(x3, x7, x11, x15);
            QR512(x0, x5, x10, x15);
            QR512(x1, x6, x11, x12);
            QR512(x2, x7, x8, x13);
            QR512(x3, x4, x9, x14);
        }
        x0 = _mm512_add_epi32(x0, _mm512_set1_epi32((int)s[0]));
        x1 = _mm512_add_epi32(x1, _mm512_set1_epi32((int)s[1]));
        x2 = _mm512_add_epi32(x2, _mm512_set1_epi32((int)s[2]));
        x3 = _mm512_add_epi32(x3, _mm512_set1_epi32((int)s[3]));
        x4 = _mm512_add_epi32(x4, _mm512_set1_epi32((int)s[4]));
        x5 = _mm512_add_epi32(x5, _mm512_set1_epi32((int)s[5]));
        x6 = _mm512_add_epi32(x6, _mm512_set1_epi32((int)s[6]));
        x7 = _mm512_add_epi32(x7, _mm512_set1_epi32((int)s[7]));
        x8 = _mm512_add_epi32(x8, _mm512_set1_epi32((int)s[8]));
        x9 = _mm512_add_epi32(x9, _mm512_set1_epi32((int)s[9]));
        x10 = _mm512_add_epi32(x10, _mm512_set1_epi32((int)s[10]));
        x11 = _mm512_add_epi32(x11, _mm512_set1_epi32((int)s[11]));
        x12 = _mm512_add_epi32(x12, c12);
        x13 = _mm512_add_epi32(x13, _mm512_set1_epi32((int)s[13]));
        x14 = _mm512_add_epi32(x14, _mm512_set1_epi32((int)s[14]));
        x15 = _mm512_add_epi32(x15, _mm512_set1_epi32((int)s[15]));

        /*
         * Transpose. After the 32- and 64-bit unpacks, y[g][r] holds in its
         * 128-bit lane k the words 4g..4g+3 of block 4k+r; the lane shuffles
         * then gather block 4k+r from y[0..3][r].
         */
        __m512i a0 = _mm512_unpacklo_epi32(x0, x1), a1 = _mm512_unpackhi_epi32(x0, x1);
        __m512i a2 = _mm512_unpacklo_epi32(x2, x3), a3 = _mm512_unpackhi_epi32(x2, x3);
        __m512i a4 = _mm512_unpacklo_epi32(x4, x5), a5 = _mm512_unpackhi_epi32(x4, x5);
        __m512i a6 = _mm512_unpacklo_epi32(x6, x7), a7 = _mm512_unpackhi_epi32(x6, x7);
        __m512i a8 = _mm512_unpacklo_epi32(x8, x9), a9 = _mm512_unpackhi_epi32(x8, x9);
        __m512i a10 = _mm512_unpacklo_epi32(x10, x11), a11 = _mm512_unpackhi_epi32(x10, x11);
        __m512i a12 = _mm512_unpacklo_epi32(x12, x13), a13 = _mm512_unpackhi_epi32(x12, x13);
        __m512i a14 = _mm512_unpacklo_epi32(x14, x15), a15 = _mm512_unpackhi_epi32(x14, x15);

        __m512i y00 = _mm512_unpacklo_epi64(a0, a2), y01 = _mm512_unpackhi_epi64(a0, a2);
        __m512i y02 = _mm512_unpacklo_epi64(a1, a3), y03 = _mm512_unpackhi_epi64(a1, a3);
        __m512i y10 = _mm512_unpacklo_epi64(a4, a6), y11 = _mm512_unpackhi_epi64(a4, a6);
        __m512i y12 = _mm512_unpacklo_epi64(a5, a7), y13 = _mm512_unpackhi_epi64(a5, a7);
        __m512i y20 = _mm512_unpacklo_epi64(a8, a10), y21 = _mm512_unpackhi_epi64(a8, a10);
        __m512i y22 = _mm512_unpacklo_epi64(a9, a11), y23 = _mm512_unpackhi_epi64(a9, a11);
        __m512i y30 = _mm512_unpacklo_epi64(a12, a14), y31 = _mm512_unpackhi_epi64(a12, a14);
        __m512i y32 = _mm512_unpacklo_epi64(a13, a15), y33 = _mm512_unpackhi_epi64(a13, a15);

        /* Block 4k+r is lane k of y0r..y3r; each goes out as soon as it is assembled. */
#define EMIT(v, i)                \
    _mm512_storeu_si512(          \
        (void *)(out + 64 * (i)), \
        in != NULL ? _mm512_xor_si512(v, _mm512_loadu_si512((const void *)(in + 64 * (i)))) : v)
#define EMIT4(a, b, c, d, r)                                                       \
    do {                                                                           \
        __m512i o0_, o1_, o2_, o3_;                                                \
        TRANSPOSE_LANES(a, b, c, d, o0_, o1_, o2_, o3_);                           \
        EMIT(o0_, r), EMIT(o1_, 4 + (r)), EMIT(o2_, 8 + (r)), EMIT(o3_, 12 + (r)); \
    } while (0)
        EMIT4(y00, y10, y20, y30, 0);
        EMIT4(y01, y11, y21, y31, 1);
        EMIT4(y02, y12, y22, y32, 2);
        EMIT4(y03, y13, y23, y33, 3);
#undef EMIT4
#undef EMIT
        if (in != NULL) in += 1024;
        out += 1024;
    }
}

/*
 * 4 blocks (sets = 1) or 8 (sets = 2) of keystream into ks: register a holds
 * row 0 of four blocks, one block per 128-bit lane, and likewise b, c, d;
 * diagonal rounds rotate the rows' words (§2.2). Cheaper than x16 for a short
 * tail: ~300 ops on one dependency chain instead of ~1000.
 */
RP_AVX512 static void rows(uint8_t *ks, const uint32_t s[16], int sets)
{
    const __m512i a0 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(s + 0)));
    const __m512i b0 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(s + 4)));
    const __m512i c0 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(s + 8)));
    const __m512i d0 =
        _mm512_add_epi32(_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(s + 12))),
                         _mm512_setr_epi32(0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0));
    const __m512i d1 =
        _mm512_add_epi32(d0, _mm512_setr_epi32(4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0));
    __m512i a = a0, b = b0, c = c0, d = d0;
    __m512i e = a0, f = b0, g = c0, h = d1;
    for (int r = 0; r < 10; r++) {
        QR512(a, b, c, d);
        if (sets > 1) QR512(e, f, g, h);
        /* Diagonals: rotate row 1 left by one word, row 2 by two, row 3 by three. */
        b = _mm512_shuffle_epi32(b, 0x39), c = _mm512_shuffle_epi32(c, 0x4e);
        d = _mm512_shuffle_epi32(d, 0x93);
        if (sets > 1) {
            f = _mm512_shuffle_epi32(f, 0x39), g = _mm512_shuffle_epi32(g, 0x4e);
            h = _mm512_shuffle_epi32(h, 0x93);
        }
        QR512(a, b, c, d);
        if (sets > 1) QR512(e, f, g, h);
        b = _mm512_shuffle_epi32(b, 0x93), c = _mm512_shuffle_epi32(c, 0x4e);
        d = _mm512_shuffle_epi32(d, 0x39);
        if (sets > 1) {
            f = _mm512_shuffle_epi32(f, 0x93), g = _mm512_shuffle_epi32(g, 0x4e);
            h = _mm512_shuffle_epi32(h, 0x39);
        }
    }
    __m512i o0, o1, o2, o3;
    a = _mm512_add_epi32(a, a0), b = _mm512_add_epi32(b, b0);
    c = _mm512_add_epi32(c, c0), d = _mm512_add_epi32(d, d0);
    TRANSPOSE_LANES(a, b, c, d, o0, o1, o2, o3);
    _mm512_storeu_si512((void *)(ks + 0), o0);
    _mm512_storeu_si512((void *)(ks + 64), o1);
    _mm512_storeu_si512((void *)(ks + 128), o2);
    _mm512_storeu_si512((void *)(ks + 192), o3);
    if (sets > 1) {
        e = _mm512_add_epi32(e, a0), f = _mm512_add_epi32(f, b0);
        g = _mm512_add_epi32(g, c0), h = _mm512_add_epi32(h, d1);
        TRANSPOSE_LANES(e, f, g, h, o0, o1, o2, o3);
        _mm512_storeu_si512((void *)(ks + 256), o0);
        _mm512_storeu_si512((void *)(ks + 320), o1);
        _mm512_storeu_si512((void *)(ks + 384), o2);
        _mm512_storeu_si512((void *)(ks + 448), o3);
    }
}

RP_AVX512 static void xor_avx512(uint8_t *out, const uint8_t *in, const uint8_t *ks, size_t len)
{
    for (; len >= 64; len -= 64, out += 64, in += 64, ks += 64) {
        __m512i v = _mm512_xor_si512(_mm512_loadu_si512((const void *)in),
                                     _mm512_loadu_si512((const void *)ks));
        _mm512_storeu_si512((void *)out, v);
    }
    if (len > 0) {
        __mmask64 m = ((__mmask64)1 << len) - 1;
        __m512i v =
            _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, in), _mm512_maskz_loadu_epi8(m, ks));
        _mm512_mask_storeu_epi8(out, m, v);
    }
}
#endif

/* ---- dispatch ---------------------------------------------------------------------------- */

static atomic_bool force_portable;

bool rp_chacha20_simd_available(void)
{
    return RP_CHACHA_X86 && (rp_cpu_features() & RP_CPU_AVX512) != 0;
}

void rp_chacha20_force_portable(bool on)
{
    atomic_store(&force_portable, on);
}

static bool use_simd(void)
{
    return !atomic_load_explicit(&force_portable, memory_order_relaxed) &&
           rp_chacha20_simd_available();
}

/* ---- streams ----------------------------------------------------------------------------- */

void rp_chacha20_init(rp_chacha20 *c, const uint8_t key[RP_CHACHA20_KEY_LEN],
                      const uint8_t nonce[RP_CHACHA20_NONCE_LEN], uint32_t counter)
{
    memcpy(c->state, sigma, sizeof(sigma));
    for (int i = 0; i < 8; i++) c->state[4 + i] = load32(key + 4 * i);
    c->state[12] = counter;
    for (int i = 0; i < 3; i++) c->state[13 + i] = load32(nonce + 4 * i);
    c->ks_off = c->ks_len = 0;
}

void rp_chacha20_wipe(rp_chacha20 *c)
{
    OPENSSL_cleanse(c, sizeof(*c));
}

/* Makes keystream for at least `need` bytes (<= RP_CHACHA20_BUF_LEN) into c->ks. */
static void refill(rp_chacha20 *c, size_t need, bool simd)
{
    uint32_t blocks = (uint32_t)((need + 63) / 64);
#if RP_CHACHA_X86
    if (simd) {
        /* The vector kernels' cost hardly depends on how many of their blocks are used. */
        if (blocks <= 4)
            blocks = 4, rows(c->ks, c->state, 1);
        else if (blocks <= 8)
            blocks = 8, rows(c->ks, c->state, 2);
        else
            blocks = 16, x16(c->ks, NULL, 1, c->state);
    } else
#endif
    {
        uint32_t s[16];
        memcpy(s, c->state, sizeof(s));
        for (uint32_t i = 0; i < blocks; i++, s[12]++) block_portable(c->ks + 64 * i, s);
        OPENSSL_cleanse(s, sizeof(s));
    }
    (void)simd;
    c->state[12] += blocks;
    c->ks_off = 0;
    c->ks_len = blocks * 64;
}

void rp_chacha20_stream(rp_chacha20 *c, uint8_t *out, const uint8_t *in, size_t len)
{
    const bool simd = use_simd();
    while (len > 0) {
        size_t n;
        if (c->ks_off < c->ks_len) {
            n = c->ks_len - c->ks_off;
            if (n > len) n = len;
#if RP_CHACHA_X86
            if (simd)
                xor_avx512(out, in, c->ks + c->ks_off, n);
            else
#endif
                xor_portable(out, in, c->ks + c->ks_off, n);
            c->ks_off += (uint32_t)n;
        } else if (len >= RP_CHACHA20_BUF_LEN) {
            size_t iters = len / RP_CHACHA20_BUF_LEN;
            n = iters * RP_CHACHA20_BUF_LEN;
#if RP_CHACHA_X86
            if (simd) {
                x16(out, in, iters, c->state);
                c->state[12] += (uint32_t)(iters * 16);
            } else
#endif
            {
                uint8_t ks[64];
                for (size_t i = 0; i < n; i += 64, c->state[12]++) {
                    block_portable(ks, c->state);
                    xor_portable(out + i, in + i, ks, 64);
                }
                OPENSSL_cleanse(ks, sizeof(ks));
            }
        } else {
            refill(c, len, simd);
            continue;
        }
        out += n, in += n, len -= n;
    }
}

void rp_chacha20_xor(uint8_t *out, const uint8_t *in, size_t len,
                     const uint8_t key[RP_CHACHA20_KEY_LEN],
                     const uint8_t nonce[RP_CHACHA20_NONCE_LEN], uint32_t counter)
{
    if (len == 0) return;
    rp_chacha20 c;
    rp_chacha20_init(&c, key, nonce, counter);
    rp_chacha20_stream(&c, out, in, len);
    /* Only the part of ks a refill wrote holds keystream. */
    OPENSSL_cleanse(c.ks, c.ks_len);
    OPENSSL_cleanse(c.state, sizeof(c.state));
}
