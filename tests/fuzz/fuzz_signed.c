/*
 * The signed-mode opener fed untrusted frames. Both ends are keyed from fixed
 * Split() outputs (rp_signed_new_keyed), so no handshake runs. The first byte
 * picks a mode:
 *
 *  0  the rest is the wire as is, fed in uneven reads: no tag can verify, so
 *     nothing may ever be delivered;
 *  1  a script building the wire from genuine frames: each op seals a message
 *     (length from the script, bytes from a pattern), inserts raw bytes, flips
 *     a bit at an offset, drops or duplicates the last frame, or swaps the
 *     last two.
 *
 * Invariants: the cursor only moves forward and stays in the buffer; an error
 * leaves it unchanged, is final and repeats its code; what is delivered is
 * exactly the payloads of the leading frames that are byte-for-byte the
 * frames sealed, in order (so nothing after a tampered frame, and everything
 * when nothing was tampered with).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "security/signed.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WIRE_CAP (4 * RP_SIGNED_FRAME_MAX)
#define ORIG_CAP (8 * RP_SIGNED_FRAME_MAX)
#define MAX_MSGS 64
#define CHECK(c) ((c) ? (void)0 : abort())

struct frame {
    size_t off, len; /* where in the wire */
    size_t plen;     /* payload length */
    uint64_t nonce;  /* the nonce it was sealed with; UINT64_MAX: raw bytes */
    size_t orig;     /* its bytes as sealed, in orig[] (flips may cancel out: compare bytes) */
};

/*
 * Mode 0 and mode 1 use different keys: mode 1 compares genuine frames in
 * instrumented code, so libFuzzer's comparison tracing learns them, and a
 * frame learnt there must not be valid in mode 0 (it found exactly that).
 */
static void keys(uint8_t mode, rp_signed **tx, rp_signed **rx)
{
    uint8_t split[RP_SIGNED_SPLIT_LEN];
    for (int i = 0; i < RP_SIGNED_SPLIT_LEN; i++)
        split[i] = (uint8_t)(i * 3 + 1 + (mode ? 0 : 100));
    CHECK(rp_signed_new_keyed(split, true, tx, NULL) == 0);
    CHECK(rp_signed_new_keyed(split, false, rx, NULL) == 0);
}

/*
 * Opens [wire, wire+len) in reads cut by `cuts`, appending what is delivered
 * to got; returns its length, with *err the failure (0 if none).
 */
static size_t open_all(rp_signed *rx, uint8_t *wire, size_t len, const uint8_t *cuts, size_t n_cuts,
                       uint8_t *got, int *err)
{
    *err = 0;
    uint8_t *p = wire;
    size_t avail = 0, total = 0, ci = 0;
    for (;;) {
        size_t step = n_cuts ? (size_t)cuts[ci++ % n_cuts] * 97 + 1 : len;
        avail = avail + step > len ? len : avail + step;
        for (;;) {
            uint8_t *before = p;
            rp_iov v;
            ringp2p_errinfo ei;
            int r = rp_signed_open(rx, &p, wire + avail, &v, &ei);
            if (r < 0) {
                CHECK(p == before);
                uint8_t *q = p;
                CHECK(rp_signed_open(rx, &q, wire + len, &v, NULL) == r);
                CHECK(q == p);
                *err = r;
                return total;
            }
            CHECK(p >= before && p <= wire + avail);
            if (r == 0) break;
            CHECK((uint8_t *)v.base >= wire && (uint8_t *)v.base + v.len <= p);
            memcpy(got + total, v.base, v.len);
            total += v.len;
        }
        if (avail == len) return total;
    }
}

static void fill(uint8_t *d, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) d[i] = (uint8_t)(i * 13 + seed * 101);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static uint8_t orig[ORIG_CAP], wire[WIRE_CAP], got[WIRE_CAP], want[WIRE_CAP],
        tmp[RP_SIGNED_FRAME_MAX];
    rp_signed *tx, *rx;
    uint8_t mode = data[0] % 2;
    keys(mode, &tx, &rx);
    data++, size--;
    if (mode == 0) {
        size_t len = size < WIRE_CAP ? size : WIRE_CAP;
        memcpy(wire, data, len);
        int err;
        /* Nothing without a valid tag is ever delivered. */
        CHECK(open_all(rx, wire, len, data, len < 8 ? len : 8, got, &err) == 0);
    } else {
        struct frame fr[MAX_MSGS];
        size_t nf = 0, wlen = 0, olen = 0;
        unsigned seq = 0;
        for (size_t i = 0; i + 2 < size && nf < MAX_MSGS; i += 3) {
            uint8_t op = data[i] % 6;
            size_t arg = (size_t)data[i + 1] << 8 | data[i + 2];
            if (op == 0 || op == 1) { /* seal a message (op 1: a longer one) */
                size_t plen = op == 0 ? arg % 300 : arg % (RP_SIGNED_PAYLOAD_MAX + 1);
                if (wlen + rp_signed_sealed_len(plen) > WIRE_CAP ||
                    olen + rp_signed_sealed_len(plen) > ORIG_CAP)
                    break;
                fill(tmp, plen, seq++);
                rp_iov v = rp_iov_make(tmp, plen);
                ssize_t n = rp_signed_seal(tx, &v, 1, wire + wlen, WIRE_CAP - wlen, NULL);
                CHECK(n == (ssize_t)rp_signed_sealed_len(plen));
                fr[nf++] = (struct frame){ wlen, (size_t)n, plen, seq - 1, olen };
                memcpy(orig + olen, wire + wlen, (size_t)n);
                olen += (size_t)n;
                wlen += (size_t)n;
            } else if (op == 2) { /* raw bytes: a frame nobody sealed */
                size_t len = arg % 64 + 1;
                if (wlen + len > WIRE_CAP) break;
                for (size_t k = 0; k < len; k++) wire[wlen + k] = (uint8_t)(arg >> (k % 8));
                fr[nf++] = (struct frame){ wlen, len, 0, UINT64_MAX, 0 };
                wlen += len;
            } else if (op == 3 && wlen > 0) { /* flip a bit */
                size_t at = arg % wlen;
                wire[at] ^= (uint8_t)(1u << (data[i + 1] % 8));
            } else if (op == 4 && nf > 0) { /* drop the last frame, or duplicate it */
                struct frame *l = &fr[nf - 1];
                if (arg & 1) {
                    wlen = l->off;
                    nf--;
                } else if (wlen + l->len <= WIRE_CAP) {
                    memmove(wire + wlen, wire + l->off, l->len);
                    fr[nf] = *l;
                    fr[nf].off = wlen;
                    nf++;
                    wlen += l->len;
                }
            } else if (op == 5 && nf > 1) { /* swap the last two frames */
                struct frame *a = &fr[nf - 2], *b = &fr[nf - 1];
                memcpy(tmp, wire + a->off, a->len);
                memmove(wire + a->off, wire + b->off, b->len);
                memcpy(wire + a->off + b->len, tmp, a->len);
                struct frame na = *b, nb = *a;
                na.off = a->off;
                nb.off = a->off + b->len;
                *a = na, *b = nb;
            }
        }
        /*
         * Frame k verifies only if it is the untouched frame sealed with nonce k
         * (each seal used the next nonce: seq counts them), so the genuine
         * prefix is what must be delivered, byte for byte, and nothing more.
         */
        size_t want_len = 0, k = 0;
        for (; k < nf && fr[k].nonce == k &&
               memcmp(wire + fr[k].off, orig + fr[k].orig, fr[k].len) == 0;
             k++) {
            fill(want + want_len, fr[k].plen, (unsigned)k);
            want_len += fr[k].plen;
        }
        int err;
        size_t delivered = open_all(rx, wire, wlen, data, size < 8 ? size : 8, got, &err);
        if (k == nf) CHECK(err == 0); /* nothing tampered with: no error */
        /* Also when it failed or waits after the prefix: exactly the prefix. */
        CHECK(delivered == want_len);
        CHECK(memcmp(got, want, want_len) == 0);
    }
    rp_signed_free(tx);
    rp_signed_free(rx);
    return 0;
}
