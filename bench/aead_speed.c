/*
 * ChaCha20-Poly1305 on one core: ringp2p's backend (crypto/chacha20.c and its
 * Poly1305) against BoringSSL's EVP_aead_chacha20_poly1305, measured in the
 * same run.
 *
 *   build/bench/aead_speed [--json] [--rounds N] [--seconds S]
 *
 * Cases: seal and open of 1 KiB, 16 KiB and 65519 B records (Noise's largest
 * plaintext), a gathered seal of 65519 B from 16 pieces (rp_aead_seal_iov:
 * ours writes ciphertext straight from the pieces, BoringSSL's copies then
 * seals), a bare tag (empty plaintext, 64 KiB of AD) made and verified, and
 * ChaCha20 alone over 64 KiB. Each figure is payload bytes per CPU-second of
 * this thread (CLOCK_THREAD_CPUTIME_ID, so time spent descheduled on a busy
 * machine does not count), median of the rounds with min and max; ours and
 * BoringSSL's alternate within each round, and the ratio is the median of the
 * per-round ratios. An open restores the record first (a memcpy); that copy is
 * timed alone in the same round and subtracted. Every output is checked
 * against BoringSSL's before timing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/aead.h>
#include <openssl/chacha.h>

#include "base/error.h"
#include "common/bench.h"
#include "crypto/aead.h"
#include "crypto/chacha20.h"

#define DEFAULT_ROUNDS  5
#define DEFAULT_SECONDS 0.15
#define MAX_LEN         65536
#define PIECES          16

enum op { OP_SEAL, OP_OPEN, OP_GATHER, OP_TAG, OP_VERIFY, OP_CHACHA };

typedef struct bcase {
    const char *name; /* JSON key */
    const char *label;
    enum op op;
    size_t len;
    double ours[RP_BENCH_ROUNDS_MAX], theirs[RP_BENCH_ROUNDS_MAX];
} bcase;

static bcase cases[] = {
    { "seal_1k", "seal 1 KiB", OP_SEAL, 1024, { 0 }, { 0 } },
    { "open_1k", "open 1 KiB", OP_OPEN, 1024, { 0 }, { 0 } },
    { "seal_16k", "seal 16 KiB", OP_SEAL, 16384, { 0 }, { 0 } },
    { "open_16k", "open 16 KiB", OP_OPEN, 16384, { 0 }, { 0 } },
    { "seal_65519", "seal 65519 B", OP_SEAL, 65519, { 0 }, { 0 } },
    { "open_65519", "open 65519 B", OP_OPEN, 65519, { 0 }, { 0 } },
    { "seal_iov_65519", "seal 65519 B from 16 pieces", OP_GATHER, 65519, { 0 }, { 0 } },
    { "tag_64k_ad", "bare tag, 64 KiB AD", OP_TAG, 65536, { 0 }, { 0 } },
    { "verify_64k_ad", "bare tag verify, 64 KiB AD", OP_VERIFY, 65536, { 0 }, { 0 } },
    { "chacha20_64k", "ChaCha20 alone, 64 KiB", OP_CHACHA, 65536, { 0 }, { 0 } },
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

typedef struct rig {
    rp_aead ours, theirs;
    uint8_t key[32], nonce[12];
    uint8_t *plain, *sealed_ours, *sealed_theirs, *buf;
    rp_iov iov[PIECES];
} rig;

static double cpu_now(void)
{
    return rp_bench_clock_cpu(CLOCK_THREAD_CPUTIME_ID);
}

static volatile uint8_t sink;

/* One operation of case c on ctx (ours or BoringSSL's); 0 or a negative code. */
static int run_once(rig *r, const bcase *c, bool ours)
{
    const rp_aead *ctx = ours ? &r->ours : &r->theirs;
    const uint8_t *sealed = ours ? r->sealed_ours : r->sealed_theirs;
    switch (c->op) {
    case OP_SEAL: return rp_aead_seal(ctx, r->buf, r->nonce, r->plain, c->len, NULL, 0);
    case OP_OPEN:
        memcpy(r->buf, sealed, c->len + RP_AEAD_TAG_LEN);
        return (int)rp_aead_open(ctx, r->buf, c->len + RP_AEAD_TAG_LEN, r->nonce, NULL, 0);
    case OP_GATHER: return rp_aead_seal_iov(ctx, r->buf, r->nonce, r->iov, PIECES, NULL, 0);
    case OP_TAG: return rp_aead_seal(ctx, r->buf, r->nonce, NULL, 0, r->plain, c->len);
    case OP_VERIFY:
        memcpy(r->buf, sealed, RP_AEAD_TAG_LEN);
        return (int)rp_aead_open(ctx, r->buf, RP_AEAD_TAG_LEN, r->nonce, r->plain, c->len);
    case OP_CHACHA:
        if (ours)
            rp_chacha20_xor(r->buf, r->plain, c->len, r->key, r->nonce, 1);
        else
            CRYPTO_chacha_20(r->buf, r->plain, c->len, r->key, r->nonce, 1);
        return 0;
    }
    return RINGP2P_EINVAL;
}

/* The copy an open does first, alone. */
static void copy_once(rig *r, const bcase *c)
{
    size_t n = c->op == OP_OPEN ? c->len + RP_AEAD_TAG_LEN : RP_AEAD_TAG_LEN;
    memcpy(r->buf, r->sealed_ours, n);
    sink ^= r->buf[n - 1];
}

/* CPU-seconds per operation: runs batches until `seconds` of CPU have gone by. */
static double time_op(rig *r, const bcase *c, int who, double seconds, int *err)
{
    size_t n = 0;
    double t0 = cpu_now(), t;
    do {
        for (int i = 0; i < 8; i++, n++) {
            if (who == 2) {
                copy_once(r, c);
            } else {
                int rc = run_once(r, c, who == 0);
                if (rc < 0) *err = rc;
            }
        }
        t = cpu_now() - t0;
    } while (t < seconds);
    return t / (double)n;
}

/* Seals each record size once per backend for the open and verify cases. */
static int rig_prepare(rig *r, const bcase *c)
{
    if (c->op == OP_OPEN) {
        if (rp_aead_seal(&r->ours, r->sealed_ours, r->nonce, r->plain, c->len, NULL, 0) != 0 ||
            rp_aead_seal(&r->theirs, r->sealed_theirs, r->nonce, r->plain, c->len, NULL, 0) != 0)
            return RINGP2P_ECRYPTO;
    } else if (c->op == OP_VERIFY) {
        if (rp_aead_seal(&r->ours, r->sealed_ours, r->nonce, NULL, 0, r->plain, c->len) != 0 ||
            rp_aead_seal(&r->theirs, r->sealed_theirs, r->nonce, NULL, 0, r->plain, c->len) != 0)
            return RINGP2P_ECRYPTO;
    }
    return 0;
}

/* Checks each case's output against BoringSSL's once, before any timing. */
static int verify(rig *r)
{
    uint8_t *want = malloc(MAX_LEN + RP_AEAD_TAG_LEN);
    if (want == NULL) return RINGP2P_ENOMEM;
    int bad = 0;
    for (size_t i = 0; i < NCASES && !bad; i++) {
        const bcase *c = &cases[i];
        if (rig_prepare(r, c) != 0) bad = 1;
        size_t out = c->op == OP_CHACHA                      ? c->len
                     : c->op == OP_TAG || c->op == OP_VERIFY ? RP_AEAD_TAG_LEN
                                                             : c->len + RP_AEAD_TAG_LEN;
        if (run_once(r, c, false) < 0) bad = 1;
        memcpy(want, r->buf, out);
        memset(r->buf, 0, out);
        if (run_once(r, c, true) < 0 || memcmp(want, r->buf, out) != 0) bad = 1;
        if (bad) fprintf(stderr, "aead_speed: %s: ours differs from BoringSSL's\n", c->label);
    }
    free(want);
    return bad ? RINGP2P_ECRYPTO : 0;
}

static int rig_init(rig *r)
{
    for (int i = 0; i < 32; i++) r->key[i] = (uint8_t)(i * 29 + 7);
    memset(r->nonce, 0, sizeof(r->nonce));
    r->nonce[4] = 42;
    r->plain = malloc(MAX_LEN);
    r->sealed_ours = malloc(MAX_LEN + RP_AEAD_TAG_LEN);
    r->sealed_theirs = malloc(MAX_LEN + RP_AEAD_TAG_LEN);
    r->buf = malloc(MAX_LEN + RP_AEAD_TAG_LEN);
    if (!r->plain || !r->sealed_ours || !r->sealed_theirs || !r->buf) return RINGP2P_ENOMEM;
    for (size_t i = 0; i < MAX_LEN; i++) r->plain[i] = (uint8_t)(i * 2654435761u >> 11);
    /* Uneven pieces, as a muxer's headers and payloads come: 12-byte headers between bodies. */
    size_t pos = 0, total = 65519;
    for (int i = 0; i < PIECES; i++) {
        size_t len = i == PIECES - 1 ? total - pos : i % 2 == 0 ? 12 : (total - 8 * 12) / 8;
        r->iov[i] = rp_iov_make(r->plain + pos, len);
        pos += len;
    }
    if (rp_aead_init(&r->ours, &rp_aead_chacha20_poly1305_rp, r->key) != 0 ||
        rp_aead_init(&r->theirs, &rp_aead_chacha20_poly1305_evp, r->key) != 0)
        return RINGP2P_ECRYPTO;
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: aead_speed [--json] [--rounds N] [--seconds S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    bool json = false;
    size_t rounds = DEFAULT_ROUNDS;
    double seconds = DEFAULT_SECONDS;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            long v = strtol(argv[++i], NULL, 10);
            if (v < 1 || v > RP_BENCH_ROUNDS_MAX) usage();
            rounds = (size_t)v;
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = strtod(argv[++i], NULL);
            if (!(seconds > 0 && seconds <= 10)) usage();
        } else {
            usage();
        }
    }
    static rig r;
    int rc = rig_init(&r);
    if (rc == 0) rc = verify(&r);
    if (rc != 0) {
        fprintf(stderr, "aead_speed: setup failed (%d)\n", rc);
        return 1;
    }
    int err = 0;
    for (size_t round = 0; round < rounds; round++) {
        for (size_t i = 0; i < NCASES; i++) {
            bcase *c = &cases[i];
            if (rig_prepare(&r, c) != 0) err = RINGP2P_ECRYPTO;
            double copy = 0;
            if (c->op == OP_OPEN || c->op == OP_VERIFY) copy = time_op(&r, c, 2, seconds / 4, &err);
            /* Alternate which goes first, so neither always runs on a warmer core. */
            double t_ours, t_theirs;
            if (round % 2 == 0) {
                t_ours = time_op(&r, c, 0, seconds, &err);
                t_theirs = time_op(&r, c, 1, seconds, &err);
            } else {
                t_theirs = time_op(&r, c, 1, seconds, &err);
                t_ours = time_op(&r, c, 0, seconds, &err);
            }
            c->ours[round] = (double)c->len / (t_ours - copy) / 1e9;
            c->theirs[round] = (double)c->len / (t_theirs - copy) / 1e9;
        }
    }
    if (err != 0) {
        fprintf(stderr, "aead_speed: an operation failed (%d)\n", err);
        return 1;
    }

    rp_bench_machine m;
    rp_bench_machine_get(&m);
    char cmd[512];
    rp_bench_command(argc, argv, cmd, sizeof(cmd));
    rp_bench_json j;
    if (json) {
        rp_bench_json_init(&j);
        rp_bench_json_str(&j, "bench", "aead_speed");
        rp_bench_json_str(&j, "unit", "GB/s of payload per CPU-second, one thread");
        rp_bench_json_int(&j, "rounds", (long long)rounds);
        rp_bench_json_bool(&j, "chacha20_avx512", rp_chacha20_simd_available());
        rp_bench_json_str(&j, "poly1305", rp_aead_chacha20_poly1305_rp_mac());
        rp_bench_json_str(&j, "cpu", m.cpu_model);
        rp_bench_json_begin(&j, "cases");
    } else {
        printf(
            "ChaCha20-Poly1305, one thread, GB/s per CPU-second; median (min-max) of %zu rounds\n",
            rounds);
        printf("cpu: %s; ChaCha20 path: %s; Poly1305: %s\n", m.cpu_model,
               rp_chacha20_simd_available() ? "AVX-512" : "portable",
               rp_aead_chacha20_poly1305_rp_mac());
        printf("%-30s %22s %22s %7s\n", "case", "ringp2p", "BoringSSL", "ratio");
    }
    for (size_t i = 0; i < NCASES; i++) {
        bcase *c = &cases[i];
        rp_bench_stat so = rp_bench_stat_of(c->ours, rounds);
        rp_bench_stat st = rp_bench_stat_of(c->theirs, rounds);
        double ratios[RP_BENCH_ROUNDS_MAX];
        for (size_t k = 0; k < rounds; k++) ratios[k] = c->ours[k] / c->theirs[k];
        double ratio = rp_bench_stat_of(ratios, rounds).median;
        if (json) {
            rp_bench_json_begin(&j, c->name);
            rp_bench_json_int(&j, "bytes", (long long)c->len);
            rp_bench_json_stat(&j, "ringp2p", &so);
            rp_bench_json_stat(&j, "boringssl", &st);
            rp_bench_json_num(&j, "ratio", ratio);
            rp_bench_json_end(&j);
        } else {
            char a[32], b[32];
            snprintf(a, sizeof(a), "%.3f (%.2f-%.2f)", so.median, so.min, so.max);
            snprintf(b, sizeof(b), "%.3f (%.2f-%.2f)", st.median, st.min, st.max);
            printf("%-30s %22s %22s %6.2fx\n", c->label, a, b, ratio);
        }
    }
    if (json) {
        rp_bench_json_end(&j);
        rp_bench_json_str(&j, "command", cmd);
        if (rp_bench_json_print(&j, stdout) != 0) return 1;
    } else {
        printf("reproduce: %s\n", cmd);
    }
    rp_aead_clear(&r.ours);
    rp_aead_clear(&r.theirs);
    free(r.plain);
    free(r.sealed_ours);
    free(r.sealed_theirs);
    free(r.buf);
    return 0;
}
