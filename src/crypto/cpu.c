#include "crypto/cpu.h"

#include <stdatomic.h>
#include <stdbool.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>

static unsigned detect(void)
{
    __builtin_cpu_init();
    unsigned f = 0;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
        f |= RP_CPU_AVX512;
    if ((f & RP_CPU_AVX512) && __builtin_cpu_supports("avx512ifma")) f |= RP_CPU_AVX512IFMA;
    /* clang 14 knows no "vaes" for __builtin_cpu_supports: CPUID.(7,0):ECX bits 9 and 10. */
    unsigned a, b, c, d;
    if ((f & RP_CPU_AVX512) && __builtin_cpu_supports("aes") && __builtin_cpu_supports("pclmul") &&
        __builtin_cpu_supports("sse4.1") && __get_cpuid_count(7, 0, &a, &b, &c, &d) &&
        (c & (1u << 9)) && (c & (1u << 10)))
        f |= RP_CPU_VAES_CLMUL;
    return f;
}
#else
static unsigned detect(void)
{
    return 0;
}
#endif

unsigned rp_cpu_features(void)
{
    /* the features, plus a top bit once detected (a race only detects twice, the same way) */
    static atomic_uint cached;
    unsigned v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v == 0) {
        v = detect() | 1u << 31;
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return v & ~(1u << 31);
}
