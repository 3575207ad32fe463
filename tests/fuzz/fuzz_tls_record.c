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
#include "sealed_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WIRE_CAP (8 * RP_TLS_RECORD_MAX)

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

static int open_rec(void *rx, uint8_t **src, uint8_t *end, rp_iov *plain, ringp2p_errinfo *ei)
{
    return rp_tls_open(rx, src, end, plain, ei);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static uint8_t orig[WIRE_CAP], wire[WIRE_CAP], got[WIRE_CAP], want[WIRE_CAP],
        tmp[RP_TLS_RECORD_MAX];
    rp_tls *tx, *rx;
    uint8_t mode = data[0] % 2, suite = (uint8_t)(data[0] / 2 % 3);
    keys(suite, mode, &tx, &rx);
    const sw_opener reader = { open_rec, rx, 131, RP_TLS_RECORD_PLAINTEXT_MAX };
    data++, size--;
    if (mode == 0) {
        size_t len = size < WIRE_CAP ? size : WIRE_CAP;
        memcpy(wire, data, len);
        int err;
        CHECK(sw_open_all(&reader, wire, len, data, len < 8 ? len : 8, got, &err) == 0);
    } else {
        static sw w;
        w = (sw){ .wire = wire, .orig = orig, .cap = WIRE_CAP, .ocap = WIRE_CAP, .tmp = tmp };
        uint64_t seq = 0;
        bool pure = true; /* only application data sealed, nothing tampered with */
        for (size_t i = 0; i + 2 < size && w.n < SW_MAX_RECS; i += 3) {
            uint8_t op = data[i] % 7;
            size_t arg = (size_t)data[i + 1] << 8 | data[i + 2];
            if (op == 0 || op == 1) { /* application data (op 1: up to a full record) */
                size_t plen = op == 0 ? arg % 300 : arg % (RP_TLS_RECORD_PLAINTEXT_MAX + 1);
                size_t pad = op == 0 ? data[i + 2] % 4 : 0;
                size_t need = plen + pad + RP_TLS_RECORD_OVERHEAD;
                if (!sw_fits(&w, need)) break;
                sw_fill(tmp, plen, (unsigned)w.n);
                ssize_t n =
                    rp_tls_test_seal_inner(tx, 23, tmp, plen, pad, wire + w.len, WIRE_CAP - w.len);
                CHECK(n == (ssize_t)need);
                sw_sealed(&w, (size_t)n, plen, (unsigned)w.n, seq++, false);
            } else if (op == 2) { /* any inner type, content from the script */
                size_t clen = arg % 24;
                if (i + 3 + clen > size) break;
                size_t need = clen + RP_TLS_RECORD_OVERHEAD;
                if (!sw_fits(&w, need)) break;
                const uint8_t *content = data + i + 3;
                ssize_t n = rp_tls_test_seal_inner(tx, data[i + 1] % 26, content, clen, 0,
                                                   wire + w.len, WIRE_CAP - w.len);
                CHECK(n == (ssize_t)need);
                sw_sealed(&w, (size_t)n, 0, 0, seq++, true);
                i += clen;
                pure = false;
            } else if (op == 3) { /* raw bytes: a record nobody sealed */
                if (!sw_raw(&w, arg)) break;
                pure = false;
            } else if (op == 4 && sw_flip(&w, arg, data[i + 1])) { /* flip a bit */
                pure = false;
            } else if (op == 5 && sw_drop_or_dup(&w, arg)) { /* drop or duplicate the last */
                pure = false;
            } else if (op == 6 && sw_swap(&w)) { /* swap the last two records */
                pure = false;
            }
        }
        /*
         * Record k authenticates only as the untouched record sealed with
         * sequence number k; the application data of the leading run of those
         * (up to the first control record, whose effect the script chose) is
         * the most that may be delivered.
         */
        size_t k;
        size_t want_len = sw_genuine(&w, want, &k);
        int err;
        size_t delivered = sw_open_all(&reader, wire, w.len, data, size < 8 ? size : 8, got, &err);
        /* the genuine prefix always arrives whole; after it only authentic data may follow */
        CHECK(delivered >= want_len);
        CHECK(memcmp(got, want, want_len) == 0);
        if (pure) CHECK(err == 0 && delivered == want_len);
    }
    rp_tls_free(tx);
    rp_tls_free(rx);
    return 0;
}
