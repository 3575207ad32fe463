/*
 * Poly1305 (RFC 8439 §2.5): h = (h + block + 2^(8*blocklen)) * r mod 2^130-5 per
 * 16-byte block, tag = (h + s) mod 2^128. See poly1305.h for the two paths.
 */
#include "crypto/poly1305.h"
#include "crypto/cpu.h"

#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#include <openssl/mem.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define RP_POLY1305_HAVE_IFMA 1
#include <immintrin.h>
#else
#define RP_POLY1305_HAVE_IFMA 0
#endif

typedef unsigned __int128 u128;

#define M44 ((UINT64_C(1) << 44) - 1)
#define M42 ((UINT64_C(1) << 42) - 1)

static atomic_bool force_portable;
static atomic_size_t simd_min = RP_POLY1305_SIMD_MIN;

static uint64_t load64_le(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static void store64_le(uint8_t *p, uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, sizeof(v));
}

/* ---- portable path: radix 2^64 --------------------------------------------------------------- */

/*
 * h = (h + m + hibit*2^128) * r for each block. r1 has its low two bits clear
 * (clamping), so r1 * 2^128 = (r1/4) * 2^130 = (r1/4) * 5 = r1 + r1/4 mod p:
 * that is sr1, and it lets the 2^128 and 2^192 partial products fold down.
 * Bounds: h2 <= 7 on entry, r0, r1 < 2^60, so every sum fits its type.
 */
static void blocks_portable(uint64_t h[3], const uint64_t r[2], const uint8_t *in, size_t n,
                            uint64_t hibit)
{
    const uint64_t r0 = r[0], r1 = r[1], sr1 = r1 + (r1 >> 2);
    uint64_t h0 = h[0], h1 = h[1], h2 = h[2];
    for (; n > 0; n--, in += RP_POLY1305_BLOCK_LEN) {
        u128 t = (u128)h0 + load64_le(in);
        h0 = (uint64_t)t;
        t = (u128)h1 + load64_le(in + 8) + (uint64_t)(t >> 64);
        h1 = (uint64_t)t;
        h2 += (uint64_t)(t >> 64) + hibit;

        u128 d0 = (u128)h0 * r0 + (u128)h1 * sr1;
        u128 d1 = (u128)h0 * r1 + (u128)h1 * r0 + (u128)h2 * sr1;
        uint64_t d2 = h2 * r0;
        d1 += (uint64_t)(d0 >> 64);
        d2 += (uint64_t)(d1 >> 64);
        h0 = (uint64_t)d0;
        h1 = (uint64_t)d1;
        /* Bits from 2^130 up come back times 5: (d2 >> 2) * 5 = (d2 & ~3) + (d2 >> 2). */
        uint64_t c = (d2 & ~UINT64_C(3)) + (d2 >> 2);
        h2 = d2 & 3;
        t = (u128)h0 + c;
        h0 = (uint64_t)t;
        t = (u128)h1 + (uint64_t)(t >> 64);
        h1 = (uint64_t)t;
        h2 += (uint64_t)(t >> 64);
    }
    h[0] = h0, h[1] = h1, h[2] = h2;
}

/* The last partial block: its bytes, then 0x01, then zeros, and no 2^128 bit. */
static void last_block_portable(uint64_t h[3], const uint64_t r[2], const uint8_t *in, size_t len)
{
    uint8_t b[RP_POLY1305_BLOCK_LEN] = { 0 };
    memcpy(b, in, len);
    b[len] = 1;
    blocks_portable(h, r, b, 1, 0);
}

#if RP_POLY1305_HAVE_IFMA

/* ---- radix 2^44 helpers (scalar) ------------------------------------------------------------ */

/* a * b mod p, radix 2^44 (limbs 44/44/42), result limbs < 2^44, 2^44, 2^42 + 1. */
static inline __attribute__((always_inline)) void mul44(uint64_t out[3], const uint64_t a[3],
                                                        const uint64_t b[3])
{
    const uint64_t s1 = b[1] * 20, s2 = b[2] * 20; /* 2^132 = 4 * 2^130 = 20 mod p */
    u128 d0 = (u128)a[0] * b[0] + (u128)a[1] * s2 + (u128)a[2] * s1;
    u128 d1 = (u128)a[0] * b[1] + (u128)a[1] * b[0] + (u128)a[2] * s2;
    u128 d2 = (u128)a[0] * b[2] + (u128)a[1] * b[1] + (u128)a[2] * b[0];
    d1 += (uint64_t)(d0 >> 44);
    d2 += (uint64_t)(d1 >> 44);
    uint64_t h0 = (uint64_t)d0 & M44, h1 = (uint64_t)d1 & M44, h2 = (uint64_t)d2 & M42;
    h0 += (uint64_t)(d2 >> 42) * 5;
    h1 += h0 >> 44;
    h0 &= M44;
    h2 += h1 >> 44;
    h1 &= M44;
    out[0] = h0, out[1] = h1, out[2] = h2;
}

static void to44(uint64_t out[3], const uint64_t h[3])
{
    out[0] = h[0] & M44;
    out[1] = (h[0] >> 44 | h[1] << 20) & M44;
    out[2] = h[1] >> 24 | h[2] << 40;
}

/* Limbs of any size below 2^52 in radix 2^44 back to a partially reduced radix 2^64 h. */
static void from44(uint64_t h[3], uint64_t t0, uint64_t t1, uint64_t t2)
{
    t1 += t0 >> 44;
    t0 &= M44;
    t2 += t1 >> 44;
    t1 &= M44;
    t0 += (t2 >> 42) * 5;
    t2 &= M42;
    t1 += t0 >> 44;
    t0 &= M44;
    /* Now t0, t2 are within their limbs and t1 <= 2^44: add rather than or. */
    u128 v = (u128)t0 + ((u128)t1 << 44);
    h[0] = (uint64_t)v;
    v = (v >> 64) + ((u128)t2 << 24);
    h[1] = (uint64_t)v;
    h[2] = (uint64_t)(v >> 64);
}

/* ---- vector path: AVX-512 IFMA, radix 2^44, 8 lanes ---------------------------------------- */

#define IFMA_TARGET __attribute__((target("avx512f,avx512vl,avx512ifma,avx512bw,avx512dq")))
#define IFMA_INLINE static inline __attribute__((always_inline)) IFMA_TARGET

/* A multiplier: limbs r0..r2 and s1 = 20*r1, s2 = 20*r2, per lane. */
typedef struct vmul_by {
    __m512i r0, r1, r2, s1, s2;
} vmul_by;

/*
 * (h0,h1,h2) = (h0,h1,h2) * R + (a0,a1,a2), lane by lane, limbs 44/44/42.
 *
 * IFMA gives the low and high 52 bits of each 52x52-bit product, so a
 * product at limb position k is lo + hi * 2^52 = lo + 256 * hi * 2^44: the
 * high halves of rows 0 and 1 go up one limb times 256, those of row 2 land
 * at 2^140 = 5 * 2^10 mod p, i.e. times 5120 into row 0. Those small
 * products are IFMAs too (exact while below 2^52), as is the carry times 5.
 *
 * Bounds. Inputs h0, h1 < 2^46, h2 < 2^44; R limbs < 2^44, 2^44, 2^43;
 * addends < 2^45. Rows 0, 1, 2 sum products below 2^94.2, 2^92.2, 2^90.8, so
 * their high sums are below 2^42.2, 2^40.2, 2^38.8 (row 2 uses r, not 20r)
 * and 256 and 5120 times them below 2^52; the low sums with the addend are
 * below 2^53.6 and every t below 2^54. One carry step, in parallel over the
 * limbs, leaves h0 < 2^44 + 2^15, h1 < 2^44 + 2^10, h2 < 2^42 + 2^10: IFMA
 * inputs must be below 2^52, and the next step's bounds hold with margin.
 */
IFMA_INLINE void vmul(__m512i *h0, __m512i *h1, __m512i *h2, const vmul_by *R, __m512i a0,
                      __m512i a1, __m512i a2)
{
    const __m512i zero = _mm512_setzero_si512();
    __m512i x0 = *h0, x1 = *h1, x2 = *h2;

    __m512i l0 = _mm512_madd52lo_epu64(a0, x0, R->r0);
    __m512i l1 = _mm512_madd52lo_epu64(a1, x0, R->r1);
    __m512i l2 = _mm512_madd52lo_epu64(a2, x0, R->r2);
    __m512i u0 = _mm512_madd52hi_epu64(zero, x0, R->r0);
    __m512i u1 = _mm512_madd52hi_epu64(zero, x0, R->r1);
    __m512i u2 = _mm512_madd52hi_epu64(zero, x0, R->r2);

    l0 = _mm512_madd52lo_epu64(l0, x1, R->s2);
    l1 = _mm512_madd52lo_epu64(l1, x1, R->r0);
    l2 = _mm512_madd52lo_epu64(l2, x1, R->r1);
    u0 = _mm512_madd52hi_epu64(u0, x1, R->s2);
    u1 = _mm512_madd52hi_epu64(u1, x1, R->r0);
    u2 = _mm512_madd52hi_epu64(u2, x1, R->r1);

    l0 = _mm512_madd52lo_epu64(l0, x2, R->s1);
    l1 = _mm512_madd52lo_epu64(l1, x2, R->s2);
    l2 = _mm512_madd52lo_epu64(l2, x2, R->r0);
    u0 = _mm512_madd52hi_epu64(u0, x2, R->s1);
    u1 = _mm512_madd52hi_epu64(u1, x2, R->s2);
    u2 = _mm512_madd52hi_epu64(u2, x2, R->r0);

    const __m512i k256 = _mm512_set1_epi64(256);
    __m512i t1 = _mm512_madd52lo_epu64(l1, u0, k256);
    __m512i t2 = _mm512_madd52lo_epu64(l2, u1, k256);
    __m512i t0 = _mm512_madd52lo_epu64(l0, u2, _mm512_set1_epi64(5120));

    const __m512i m44 = _mm512_set1_epi64((long long)M44);
    const __m512i m42 = _mm512_set1_epi64((long long)M42);
    __m512i c0 = _mm512_srli_epi64(t0, 44);
    __m512i c1 = _mm512_srli_epi64(t1, 44);
    __m512i c2 = _mm512_srli_epi64(t2, 42);
    *h0 = _mm512_madd52lo_epu64(_mm512_and_si512(t0, m44), c2, _mm512_set1_epi64(5));
    *h1 = _mm512_add_epi64(_mm512_and_si512(t1, m44), c0);
    *h2 = _mm512_add_epi64(_mm512_and_si512(t2, m42), c1);
}

/* Eight consecutive blocks, lane j taking block j, split into limbs with the 2^128 bit set. */
IFMA_INLINE void load_group(const uint8_t *in, __m512i *m0, __m512i *m1, __m512i *m2)
{
    const __m512i a = _mm512_loadu_si512((const void *)in);
    const __m512i b = _mm512_loadu_si512((const void *)(in + 64));
    const __m512i even = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1);
    const __m512i lo = _mm512_permutex2var_epi64(a, even, b);
    const __m512i hi = _mm512_permutex2var_epi64(a, odd, b);
    const __m512i m44 = _mm512_set1_epi64((long long)M44);
    *m0 = _mm512_and_si512(lo, m44);
    /* (A | B) & C */
    *m1 =
        _mm512_ternarylogic_epi64(_mm512_srli_epi64(lo, 44), _mm512_slli_epi64(hi, 20), m44, 0xa8);
    *m2 = _mm512_or_si512(_mm512_srli_epi64(hi, 24), _mm512_set1_epi64(INT64_C(1) << 40));
}

IFMA_INLINE void load_by(vmul_by *R, const uint64_t (*p)[8])
{
    R->r0 = _mm512_loadu_si512((const void *)p[0]);
    R->r1 = _mm512_loadu_si512((const void *)p[1]);
    R->r2 = _mm512_loadu_si512((const void *)p[2]);
    R->s1 = _mm512_loadu_si512((const void *)p[3]);
    R->s2 = _mm512_loadu_si512((const void *)p[4]);
}

IFMA_INLINE void bcast_by(vmul_by *R, const uint64_t p[5])
{
    R->r0 = _mm512_set1_epi64((long long)p[0]);
    R->r1 = _mm512_set1_epi64((long long)p[1]);
    R->r2 = _mm512_set1_epi64((long long)p[2]);
    R->s1 = _mm512_set1_epi64((long long)p[3]);
    R->s2 = _mm512_set1_epi64((long long)p[4]);
}

/*
 * Takes n groups of 8 blocks into the lanes. The lanes hold S, where the hash
 * of everything taken so far is sum_j S_j * r^(8-j); a group m makes it
 * S * r^8 + m. Two groups at a time run on two independent sets A, B with
 * r^16 (A = S*r^8 + m_0, B = m_1, then A = A*r^16 + m, B = B*r^16 + m', and
 * S = A*r^8 + B), which costs no more multiplications and halves the chain.
 */
IFMA_TARGET static void simd_groups(rp_poly1305 *st, const uint8_t *in, size_t n)
{
    __m512i h0 = _mm512_loadu_si512((const void *)st->acc[0]);
    __m512i h1 = _mm512_loadu_si512((const void *)st->acc[1]);
    __m512i h2 = _mm512_loadu_si512((const void *)st->acc[2]);
    __m512i m0, m1, m2;
    vmul_by r8;
    const uint64_t r8p[5] = { st->pw[0][0], st->pw[1][0], st->pw[2][0], st->pw[3][0],
                              st->pw[4][0] };
    bcast_by(&r8, r8p);

    if (st->fresh && n > 0) {
        load_group(in, &m0, &m1, &m2);
        h0 = _mm512_add_epi64(h0, m0);
        h1 = _mm512_add_epi64(h1, m1);
        h2 = _mm512_add_epi64(h2, m2);
        st->fresh = 0;
        in += 128, n--;
    }
    if (n >= 2) {
        vmul_by r16;
        bcast_by(&r16, st->pw16);
        __m512i b0, b1, b2, n0, n1, n2;
        load_group(in, &m0, &m1, &m2);
        vmul(&h0, &h1, &h2, &r8, m0, m1, m2);
        load_group(in + 128, &b0, &b1, &b2);
        in += 256, n -= 2;
        for (; n >= 2; in += 256, n -= 2) {
            load_group(in, &m0, &m1, &m2);
            load_group(in + 128, &n0, &n1, &n2);
            vmul(&h0, &h1, &h2, &r16, m0, m1, m2);
            vmul(&b0, &b1, &b2, &r16, n0, n1, n2);
        }
        vmul(&h0, &h1, &h2, &r8, b0, b1, b2);
    }
    if (n > 0) {
        load_group(in, &m0, &m1, &m2);
        vmul(&h0, &h1, &h2, &r8, m0, m1, m2);
    }
    _mm512_storeu_si512((void *)st->acc[0], h0);
    _mm512_storeu_si512((void *)st->acc[1], h1);
    _mm512_storeu_si512((void *)st->acc[2], h2);
}

/* The lanes folded into st->h: lane j times r^(8-j), then the sum. */
IFMA_TARGET static void simd_fold(rp_poly1305 *st)
{
    __m512i h0 = _mm512_loadu_si512((const void *)st->acc[0]);
    __m512i h1 = _mm512_loadu_si512((const void *)st->acc[1]);
    __m512i h2 = _mm512_loadu_si512((const void *)st->acc[2]);
    if (!st->fresh) {
        vmul_by pw;
        load_by(&pw, (const uint64_t(*)[8])st->pw);
        const __m512i zero = _mm512_setzero_si512();
        vmul(&h0, &h1, &h2, &pw, zero, zero, zero);
    }
    /* Eight lanes of limbs < 2^45 sum below 2^48. */
    from44(st->h, (uint64_t)_mm512_reduce_add_epi64(h0), (uint64_t)_mm512_reduce_add_epi64(h1),
           (uint64_t)_mm512_reduce_add_epi64(h2));
}

/* r^1..r^8 into the lanes (lane j = r^(8-j)) and r^16, from the clamped r. */
static void compute_powers(rp_poly1305 *st)
{
    uint64_t p[9][3];
    const uint64_t r64[3] = { st->r[0], st->r[1], 0 };
    to44(p[1], r64);
    /* A tree rather than a chain: depth 3 to r^8, the multiplications at each level independent. */
    mul44(p[2], p[1], p[1]);
    mul44(p[3], p[2], p[1]);
    mul44(p[4], p[2], p[2]);
    for (int k = 5; k <= 8; k++) mul44(p[k], p[k - 4], p[4]);
    for (int k = 1; k <= 8; k++) {
        const int j = 8 - k;
        st->pw[0][j] = p[k][0];
        st->pw[1][j] = p[k][1];
        st->pw[2][j] = p[k][2];
        st->pw[3][j] = p[k][1] * 20;
        st->pw[4][j] = p[k][2] * 20;
    }
    uint64_t p16[3];
    mul44(p16, p[8], p[8]);
    st->pw16[0] = p16[0];
    st->pw16[1] = p16[1];
    st->pw16[2] = p16[2];
    st->pw16[3] = p16[1] * 20;
    st->pw16[4] = p16[2] * 20;
    OPENSSL_cleanse(p, sizeof(p));
    OPENSSL_cleanse(p16, sizeof(p16));
}

#endif /* RP_POLY1305_HAVE_IFMA */

/* ---- API ------------------------------------------------------------------------------------- */

bool rp_poly1305_simd_available(void)
{
    return RP_POLY1305_HAVE_IFMA && !atomic_load_explicit(&force_portable, memory_order_relaxed) &&
           (rp_cpu_features() & RP_CPU_AVX512IFMA) != 0;
}

void rp_poly1305_force_portable(bool on)
{
    atomic_store_explicit(&force_portable, on, memory_order_relaxed);
}

void rp_poly1305_set_simd_min(size_t min)
{
    atomic_store_explicit(&simd_min, min < UINT32_MAX ? min : UINT32_MAX, memory_order_relaxed);
}

void rp_poly1305_init(rp_poly1305 *st, const uint8_t key[RP_POLY1305_KEY_LEN])
{
    /* acc and pw are written when the state enters the vector path, not here: short messages
     * pay for neither. */
    memset(st->h, 0, sizeof(st->h));
    st->buf_len = 0;
    st->simd = 0;
    st->fresh = 0;
    st->r[0] = load64_le(key) & UINT64_C(0x0ffffffc0fffffff);
    st->r[1] = load64_le(key + 8) & UINT64_C(0x0ffffffc0ffffffc);
    st->s[0] = load64_le(key + 16);
    st->s[1] = load64_le(key + 24);
    st->simd_ok = rp_poly1305_simd_available();
    st->simd_min = (uint32_t)atomic_load_explicit(&simd_min, memory_order_relaxed);
}

#if RP_POLY1305_HAVE_IFMA
/* Moves a state with an empty buffer onto the vector path: h goes to lane 0, to be added. */
static void enter_simd(rp_poly1305 *st)
{
    compute_powers(st);
    uint64_t l[3];
    to44(l, st->h);
    memset(st->acc, 0, sizeof(st->acc));
    st->acc[0][0] = l[0];
    st->acc[1][0] = l[1];
    st->acc[2][0] = l[2];
    st->fresh = 1;
    st->simd = 1;
}
#endif

void rp_poly1305_update(rp_poly1305 *st, const uint8_t *in, size_t len)
{
    if (len == 0) return;
#if RP_POLY1305_HAVE_IFMA
    if (st->simd) {
        if (st->buf_len > 0) {
            size_t take = sizeof(st->buf) - st->buf_len;
            if (take > len) take = len;
            memcpy(st->buf + st->buf_len, in, take);
            st->buf_len += (uint32_t)take;
            in += take, len -= take;
            if (st->buf_len < sizeof(st->buf)) return;
            simd_groups(st, st->buf, 1);
            st->buf_len = 0;
        }
        size_t n = len / 128;
        if (n > 0) simd_groups(st, in, n);
        in += n * 128, len -= n * 128;
        memcpy(st->buf, in, len);
        st->buf_len = (uint32_t)len;
        return;
    }
#endif
    if (st->buf_len > 0) {
        size_t take = RP_POLY1305_BLOCK_LEN - st->buf_len;
        if (take > len) take = len;
        memcpy(st->buf + st->buf_len, in, take);
        st->buf_len += (uint32_t)take;
        in += take, len -= take;
        if (st->buf_len < RP_POLY1305_BLOCK_LEN) return;
        blocks_portable(st->h, st->r, st->buf, 1, 1);
        st->buf_len = 0;
    }
#if RP_POLY1305_HAVE_IFMA
    if (st->simd_ok && len >= st->simd_min) {
        enter_simd(st);
        rp_poly1305_update(st, in, len);
        return;
    }
#endif
    size_t n = len / RP_POLY1305_BLOCK_LEN;
    blocks_portable(st->h, st->r, in, n, 1);
    in += n * RP_POLY1305_BLOCK_LEN, len -= n * RP_POLY1305_BLOCK_LEN;
    memcpy(st->buf, in, len);
    st->buf_len = (uint32_t)len;
}

void rp_poly1305_finish(rp_poly1305 *st, uint8_t mac[RP_POLY1305_TAG_LEN])
{
    size_t rest = st->buf_len;
#if RP_POLY1305_HAVE_IFMA
    if (st->simd) simd_fold(st);
#endif
    size_t full = rest / RP_POLY1305_BLOCK_LEN;
    blocks_portable(st->h, st->r, st->buf, full, 1);
    if (rest % RP_POLY1305_BLOCK_LEN)
        last_block_portable(st->h, st->r, st->buf + full * RP_POLY1305_BLOCK_LEN,
                            rest % RP_POLY1305_BLOCK_LEN);

    uint64_t h0 = st->h[0], h1 = st->h[1], h2 = st->h[2];
    /* Fold h2's bits above 2^130; then h < 2^130 + 35 < 2p, so one conditional subtraction. */
    uint64_t c = (h2 >> 2) * 5;
    h2 &= 3;
    u128 t = (u128)h0 + c;
    h0 = (uint64_t)t;
    t = (u128)h1 + (uint64_t)(t >> 64);
    h1 = (uint64_t)t;
    h2 += (uint64_t)(t >> 64);

    /* g = h + 5 - 2^130; take it when it does not go negative (h >= p), without a branch. */
    t = (u128)h0 + 5;
    uint64_t g0 = (uint64_t)t;
    t = (u128)h1 + (uint64_t)(t >> 64);
    uint64_t g1 = (uint64_t)t;
    uint64_t g2 = h2 + (uint64_t)(t >> 64);
    uint64_t take = (uint64_t)0 - (g2 >> 2);
    h0 = (h0 & ~take) | (g0 & take);
    h1 = (h1 & ~take) | (g1 & take);

    t = (u128)h0 + st->s[0];
    h0 = (uint64_t)t;
    h1 = h1 + st->s[1] + (uint64_t)(t >> 64);
    store64_le(mac, h0);
    store64_le(mac + 8, h1);
    /* acc and pw hold key material only once the vector path was taken. */
    if (st->simd) {
        OPENSSL_cleanse(st, sizeof(*st));
    } else {
        OPENSSL_cleanse(st, offsetof(rp_poly1305, acc));
        OPENSSL_cleanse(st->buf, sizeof(*st) - offsetof(rp_poly1305, buf));
    }
}
