/*
 * The TLS 1.3 record opener (rp_tls_open, after the handshake) fed untrusted
 * records. Both ends are keyed from fixed traffic secrets
 * (rp_tls_test_new_keyed), so no handshake runs. The first byte picks the
 * cipher suite and a mode:
 *
 *  0  the rest is the wire as is, fed in uneven reads: no tag can verify, so
 *     nothing may ever be delivered;
 *  1  a script building the wire from genuine records: each op seals
 *     application data (length from the script, bytes from a pattern, some
 *     padding), seals a record of any inner type with bytes from the script
 *     (tickets, KeyUpdates, alerts, garbage: the post-handshake parser),
 *     inserts raw bytes, flips a bit, drops or duplicates the last record, or
 *     swaps the last two.
 *
 * Invariants: the cursor only moves forward and stays in the buffer; an error
 * leaves it unchanged, is final and repeats its code; views lie inside the
 * record just consumed; the application data of the leading genuine records
 * is delivered whole and first, and it is all that is delivered (with no
 * error) when the script only sealed application data and tampered with
 * nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "security/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WIRE_CAP (8 * RP_TLS_RECORD_MAX)
#define MAX_RECS 64
#define CHECK(c) ((c) ? (void)0 : abort())

struct rec {
    size_t off, len; /* where in the wire */
    size_t plen;     /* application data it carries */
    unsigned seed;   /* its pattern */
    uint64_t seq;    /* the sequence number it was sealed with; UINT64_MAX: raw bytes */
    bool control;    /* a record of another inner type, or data from the script */
    size_t orig;     /* its bytes as sealed, in orig[] */
};

static const uint16_t suites[] = { 0x1301, 0x1302, 0x1303 };

/* Mode 0 and mode 1 use different keys (see fuzz_signed.c: learnt records must not verify). */
static void keys(uint8_t suite, uint8_t mode, rp_tls **tx, rp_tls **rx)
{
    uint8_t cs[48], ss[48];
    for (int i = 0; i < 48; i++) {
        cs[i] = (uint8_t)(i * 3 + 1 + (mode ? 0 : 100));
        ss[i] = (uint8_t)(i * 5 + 7 + (mode ? 0 : 100));
    }
    CHECK(rp_tls_test_new_keyed(suites[suite], true, cs, ss, tx) == 0);
    CHECK(rp_tls_test_new_keyed(suites[suite], false, cs, ss, rx) == 0);
}

static void fill(uint8_t *d, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) d[i] = (uint8_t)(i * 13 + seed * 101);
}

/*
 * Opens [wire, wire+len) in reads cut by `cuts`, appending what is delivered
 * to got; returns its length, with *err the failure (0 if none).
 */
static size_t open_all(rp_tls *rx, uint8_t *wire, size_t len, const uint8_t *cuts, size_t n_cuts,
                       uint8_t *got, int *err)
{
    *err = 0;
    uint8_t *p = wire;
    size_t avail = 0, total = 0, ci = 0;
    for (;;) {
        size_t step = n_cuts ? (size_t)cuts[ci++ % n_cuts] * 131 + 1 : len;
        avail = avail + step > len ? len : avail + step;
        for (;;) {
            uint8_t *before = p;
            rp_iov v;
            ringp2p_errinfo ei;
            int r = rp_tls_open(rx, &p, wire + avail, &v, &ei);
            if (r < 0) {
                CHECK(p == before);
                uint8_t *q = p;
                CHECK(rp_tls_open(rx, &q, wire + len, &v, NULL) == r);
                CHECK(q == p);
                *err = r;
                return total;
            }
            CHECK(p >= before && p <= wire + avail);
            if (r == 0) {
                CHECK(p == before);
                break;
            }
            CHECK(p > before);
            CHECK(v.len <= RP_TLS_RECORD_PLAINTEXT_MAX);
            if (v.len > 0) {
                CHECK((uint8_t *)v.base >= before && (uint8_t *)v.base + v.len <= p);
                memcpy(got + total, v.base, v.len);
                total += v.len;
            }
        }
        if (avail == len) return total;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static uint8_t orig[WIRE_CAP], wire[WIRE_CAP], got[WIRE_CAP], want[WIRE_CAP],
        tmp[RP_TLS_RECORD_MAX];
    rp_tls *tx, *rx;
    uint8_t mode = data[0] % 2, suite = (uint8_t)(data[0] / 2 % 3);
    keys(suite, mode, &tx, &rx);
    data++, size--;
    if (mode == 0) {
        size_t len = size < WIRE_CAP ? size : WIRE_CAP;
        memcpy(wire, data, len);
        int err;
        CHECK(open_all(rx, wire, len, data, len < 8 ? len : 8, got, &err) == 0);
    } else {
        struct rec rc[MAX_RECS];
        size_t nr = 0, wlen = 0, olen = 0;
        uint64_t seq = 0;
        bool pure = true; /* only application data sealed, nothing tampered with */
        for (size_t i = 0; i + 2 < size && nr < MAX_RECS; i += 3) {
            uint8_t op = data[i] % 7;
            size_t arg = (size_t)data[i + 1] << 8 | data[i + 2];
            if (op == 0 || op == 1) { /* application data (op 1: up to a full record) */
                size_t plen = op == 0 ? arg % 300 : arg % (RP_TLS_RECORD_PLAINTEXT_MAX + 1);
                size_t pad = op == 0 ? data[i + 2] % 4 : 0;
                size_t need = plen + pad + RP_TLS_RECORD_OVERHEAD;
                if (wlen + need > WIRE_CAP || olen + need > WIRE_CAP) break;
                fill(tmp, plen, (unsigned)nr);
                ssize_t n =
                    rp_tls_test_seal_inner(tx, 23, tmp, plen, pad, wire + wlen, WIRE_CAP - wlen);
                CHECK(n == (ssize_t)need);
                rc[nr] = (struct rec){ wlen, (size_t)n, plen, (unsigned)nr, seq++, false, olen };
                nr++;
                memcpy(orig + olen, wire + wlen, (size_t)n);
                olen += (size_t)n;
                wlen += (size_t)n;
            } else if (op == 2) { /* any inner type, content from the script */
                size_t clen = arg % 24;
                if (i + 3 + clen > size) break;
                size_t need = clen + RP_TLS_RECORD_OVERHEAD;
                if (wlen + need > WIRE_CAP || olen + need > WIRE_CAP) break;
                const uint8_t *content = data + i + 3;
                ssize_t n = rp_tls_test_seal_inner(tx, data[i + 1] % 26, content, clen, 0,
                                                   wire + wlen, WIRE_CAP - wlen);
                CHECK(n == (ssize_t)need);
                rc[nr++] = (struct rec){ wlen, (size_t)n, 0, 0, seq++, true, olen };
                memcpy(orig + olen, wire + wlen, (size_t)n);
                olen += (size_t)n;
                wlen += (size_t)n;
                i += clen;
                pure = false;
            } else if (op == 3) { /* raw bytes: a record nobody sealed */
                size_t len = arg % 64 + 1;
                if (wlen + len > WIRE_CAP) break;
                for (size_t k = 0; k < len; k++) wire[wlen + k] = (uint8_t)(arg >> (k % 8));
                rc[nr++] = (struct rec){ wlen, len, 0, 0, UINT64_MAX, true, 0 };
                wlen += len;
                pure = false;
            } else if (op == 4 && wlen > 0) { /* flip a bit */
                wire[arg % wlen] ^= (uint8_t)(1u << (data[i + 1] % 8));
                pure = false;
            } else if (op == 5 && nr > 0) { /* drop the last record, or duplicate it */
                struct rec *l = &rc[nr - 1];
                if (arg & 1) {
                    wlen = l->off;
                    nr--;
                } else if (wlen + l->len <= WIRE_CAP) {
                    memmove(wire + wlen, wire + l->off, l->len);
                    rc[nr] = *l;
                    rc[nr].off = wlen;
                    nr++;
                    wlen += l->len;
                }
                pure = false;
            } else if (op == 6 && nr > 1) { /* swap the last two records */
                struct rec *a = &rc[nr - 2], *b = &rc[nr - 1];
                memcpy(tmp, wire + a->off, a->len);
                memmove(wire + a->off, wire + b->off, b->len);
                memcpy(wire + a->off + b->len, tmp, a->len);
                struct rec na = *b, nb = *a;
                na.off = a->off;
                nb.off = a->off + b->len;
                *a = na, *b = nb;
                pure = false;
            }
        }
        /*
         * Record k authenticates only as the untouched record sealed with
         * sequence number k; the application data of the leading run of those
         * (up to the first control record, whose effect the script chose) is
         * the most that may be delivered.
         */
        size_t want_len = 0;
        for (size_t k = 0; k < nr && rc[k].seq == k && !rc[k].control &&
                           memcmp(wire + rc[k].off, orig + rc[k].orig, rc[k].len) == 0;
             k++) {
            fill(want + want_len, rc[k].plen, rc[k].seed);
            want_len += rc[k].plen;
        }
        int err;
        size_t delivered = open_all(rx, wire, wlen, data, size < 8 ? size : 8, got, &err);
        /* the genuine prefix always arrives whole; after it only authentic data may follow */
        CHECK(delivered >= want_len);
        CHECK(memcmp(got, want, want_len) == 0);
        if (pure) CHECK(err == 0 && delivered == want_len);
    }
    rp_tls_free(tx);
    rp_tls_free(rx);
    return 0;
}
