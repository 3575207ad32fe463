/*
 * The x86-64 features our own SIMD crypto needs (chacha20.c, poly1305.c,
 * aesgcm.c), detected once per process. A set bit means the CPU has every
 * extension of the group and the OS saves the registers they use
 * (__builtin_cpu_supports checks XCR0). Elsewhere, and on other CPUs: 0.
 */
#ifndef RP_CRYPTO_CPU_H
#define RP_CRYPTO_CPU_H

enum {
    RP_CPU_AVX512 = 1u << 0,     /* AVX-512 F, VL, BW and DQ */
    RP_CPU_AVX512IFMA = 1u << 1, /* the above and AVX-512 IFMA */
    RP_CPU_VAES_CLMUL =
        1u << 2, /* the above but IFMA, AES-NI, PCLMULQDQ, SSE4.1, VAES, VPCLMULQDQ */
};

/* The RP_CPU_* groups this CPU has. Any thread; the first call detects, later ones read. */
unsigned rp_cpu_features(void);

#endif
