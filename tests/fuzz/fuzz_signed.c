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
#include "sealed_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define WIRE_CAP (4 * RP_SIGNED_FRAME_MAX)
#define ORIG_CAP (8 * RP_SIGNED_FRAME_MAX)

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

static int open_frame(void *rx, uint8_t **src, uint8_t *end, rp_iov *plain, ringp2p_errinfo *ei)
{
    return rp_signed_open(rx, src, end, plain, ei);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static uint8_t orig[ORIG_CAP], wire[WIRE_CAP], got[WIRE_CAP], want[WIRE_CAP],
        tmp[RP_SIGNED_FRAME_MAX];
    rp_signed *tx, *rx;
    uint8_t mode = data[0] % 2;
    keys(mode, &tx, &rx);
    const sw_opener reader = { open_frame, rx, 97, RP_SIGNED_PAYLOAD_MAX };
    data++, size--;
    if (mode == 0) {
        size_t len = size < WIRE_CAP ? size : WIRE_CAP;
        memcpy(wire, data, len);
        int err;
        /* Nothing without a valid tag is ever delivered. */
        CHECK(sw_open_all(&reader, wire, len, data, len < 8 ? len : 8, got, &err) == 0);
    } else {
        static sw w;
        w = (sw){ .wire = wire, .orig = orig, .cap = WIRE_CAP, .ocap = ORIG_CAP, .tmp = tmp };
        unsigned seq = 0;
        for (size_t i = 0; i + 2 < size && w.n < SW_MAX_RECS; i += 3) {
            uint8_t op = data[i] % 6;
            size_t arg = (size_t)data[i + 1] << 8 | data[i + 2];
            if (op == 0 || op == 1) { /* seal a message (op 1: a longer one) */
                size_t plen = op == 0 ? arg % 300 : arg % (RP_SIGNED_PAYLOAD_MAX + 1);
                if (!sw_fits(&w, rp_signed_sealed_len(plen))) break;
                sw_fill(tmp, plen, seq);
                rp_iov v = rp_iov_make(tmp, plen);
                ssize_t n = rp_signed_seal(tx, &v, 1, wire + w.len, WIRE_CAP - w.len, NULL);
                CHECK(n == (ssize_t)rp_signed_sealed_len(plen));
                sw_sealed(&w, (size_t)n, plen, seq, seq, false); /* its pattern and nonce */
                seq++;
            } else if (op == 2) { /* raw bytes: a frame nobody sealed */
                if (!sw_raw(&w, arg)) break;
            } else if (op == 3) { /* flip a bit */
                sw_flip(&w, arg, data[i + 1]);
            } else if (op == 4) { /* drop the last frame, or duplicate it */
                sw_drop_or_dup(&w, arg);
            } else if (op == 5) { /* swap the last two frames */
                sw_swap(&w);
            }
        }
        /*
         * Frame k verifies only if it is the untouched frame sealed with nonce k
         * (each seal used the next nonce: seq counts them), so the genuine
         * prefix is what must be delivered, byte for byte, and nothing more.
         */
        size_t k;
        size_t want_len = sw_genuine(&w, want, &k);
        int err;
        size_t delivered = sw_open_all(&reader, wire, w.len, data, size < 8 ? size : 8, got, &err);
        if (k == w.n) CHECK(err == 0); /* nothing tampered with: no error */
        /* Also when it failed or waits after the prefix: exactly the prefix. */
        CHECK(delivered == want_len);
        CHECK(memcmp(got, want, want_len) == 0);
    }
    rp_signed_free(tx);
    rp_signed_free(rx);
    return 0;
}
