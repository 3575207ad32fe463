/*
 * Shared by the fuzz targets of record openers (fuzz_tls_record.c,
 * fuzz_signed.c): a wire of sealed records that a script builds and tampers
 * with (raw bytes, a flipped bit, the last record dropped or duplicated, the
 * last two swapped), the genuine prefix its reader may be owed, and the
 * opener run over the wire in uneven reads with its cursor checked.
 */
#ifndef RP_FUZZ_SEALED_WIRE_H
#define RP_FUZZ_SEALED_WIRE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/bytes.h"
#include "ringp2p/error.h"

#define CHECK(c) ((c) ? (void)0 : abort())

#define SW_MAX_RECS 64

/* One record on the wire. */
typedef struct sw_rec {
    size_t off, len; /* where in the wire */
    size_t plen;     /* application data it carries */
    unsigned seed;   /* its pattern */
    uint64_t seq;    /* the sequence number (nonce) it was sealed with; UINT64_MAX: raw bytes */
    bool control;    /* not application data for the reader (what it does is the script's) */
    size_t orig;     /* its bytes as sealed, in orig[] (flips may cancel out: compare bytes) */
} sw_rec;

/* The wire, a copy of every record as sealed, and the records in wire order. */
typedef struct sw {
    uint8_t *wire, *orig;
    size_t cap, ocap; /* of wire and orig */
    size_t len, olen; /* used */
    uint8_t *tmp;     /* room for the longest record */
    sw_rec rc[SW_MAX_RECS];
    size_t n;
} sw;

/* The test pattern `seed`. */
static void sw_fill(uint8_t *d, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) d[i] = (uint8_t)(i * 13 + seed * 101);
}

/* Whether a record of `need` bytes fits on the wire and among the copies. */
static bool sw_fits(const sw *w, size_t need)
{
    return w->len + need <= w->cap && w->olen + need <= w->ocap;
}

/* Takes the n bytes just sealed at the end of the wire as a record, and keeps a copy. */
static void sw_sealed(sw *w, size_t n, size_t plen, unsigned seed, uint64_t seq, bool control)
{
    w->rc[w->n++] = (sw_rec){ w->len, n, plen, seed, seq, control, w->olen };
    memcpy(w->orig + w->olen, w->wire + w->len, n);
    w->olen += n;
    w->len += n;
}

/* Appends 1 to 64 bytes made from `arg`, a record nobody sealed; false where they do not fit. */
static bool sw_raw(sw *w, size_t arg)
{
    size_t len = arg % 64 + 1;
    if (w->len + len > w->cap) return false;
    for (size_t k = 0; k < len; k++) w->wire[w->len + k] = (uint8_t)(arg >> (k % 8));
    w->rc[w->n++] = (sw_rec){ w->len, len, 0, 0, UINT64_MAX, true, 0 };
    w->len += len;
    return true;
}

/* Flips bit `bit` % 8 of byte `arg` % len; false on an empty wire. */
static bool sw_flip(sw *w, size_t arg, unsigned bit)
{
    if (w->len == 0) return false;
    w->wire[arg % w->len] ^= (uint8_t)(1u << (bit % 8));
    return true;
}

/* Drops the last record (odd `arg`) or duplicates it where it fits; false with no record. */
static bool sw_drop_or_dup(sw *w, size_t arg)
{
    if (w->n == 0) return false;
    sw_rec *l = &w->rc[w->n - 1];
    if (arg & 1) {
        w->len = l->off;
        w->n--;
    } else if (w->len + l->len <= w->cap) {
        memmove(w->wire + w->len, w->wire + l->off, l->len);
        w->rc[w->n] = *l;
        w->rc[w->n].off = w->len;
        w->n++;
        w->len += l->len;
    }
    return true;
}

/* Swaps the last two records; false with fewer. */
static bool sw_swap(sw *w)
{
    if (w->n < 2) return false;
    sw_rec *a = &w->rc[w->n - 2], *b = &w->rc[w->n - 1];
    memcpy(w->tmp, w->wire + a->off, a->len);
    memmove(w->wire + a->off, w->wire + b->off, b->len);
    memcpy(w->wire + a->off + b->len, w->tmp, a->len);
    sw_rec na = *b, nb = *a;
    na.off = a->off;
    nb.off = a->off + b->len;
    *a = na, *b = nb;
    return true;
}

/*
 * The genuine prefix: record k authenticates only as the untouched record
 * sealed with sequence number k, so the application data of the leading run
 * of those, up to the first control record, goes to want. Returns its length,
 * with *count the records in the run.
 */
static size_t sw_genuine(const sw *w, uint8_t *want, size_t *count)
{
    size_t want_len = 0, k = 0;
    for (; k < w->n && w->rc[k].seq == k && !w->rc[k].control &&
           memcmp(w->wire + w->rc[k].off, w->orig + w->rc[k].orig, w->rc[k].len) == 0;
         k++) {
        sw_fill(want + want_len, w->rc[k].plen, w->rc[k].seed);
        want_len += w->rc[k].plen;
    }
    *count = k;
    return want_len;
}

/* The reading end: rp_tls_open or rp_signed_open (behind a void pointer) and its reader. */
typedef struct sw_opener {
    int (*open)(void *rx, uint8_t **src, uint8_t *end, rp_iov *plain, ringp2p_errinfo *ei);
    void *rx;
    size_t scale;    /* a read adds a cut's value times this, plus one, bytes */
    size_t view_max; /* the longest view one record may deliver */
} sw_opener;

/*
 * Opens [wire, wire+len) with `o` in reads cut by `cuts`, appending what is
 * delivered to got; returns its length, with *err the failure (0 if none).
 * The cursor only moves forward, past a whole record at a time, and stays in
 * the buffer; an error leaves it unchanged and repeats; a view of at most
 * o->view_max bytes lies inside the record just consumed.
 */
static size_t sw_open_all(const sw_opener *o, uint8_t *wire, size_t len, const uint8_t *cuts,
                          size_t n_cuts, uint8_t *got, int *err)
{
    *err = 0;
    uint8_t *p = wire;
    size_t avail = 0, total = 0, ci = 0;
    for (;;) {
        size_t step = n_cuts ? (size_t)cuts[ci++ % n_cuts] * o->scale + 1 : len;
        avail = avail + step > len ? len : avail + step;
        for (;;) {
            uint8_t *before = p;
            rp_iov v;
            ringp2p_errinfo ei;
            int r = o->open(o->rx, &p, wire + avail, &v, &ei);
            if (r < 0) {
                CHECK(p == before);
                uint8_t *q = p;
                CHECK(o->open(o->rx, &q, wire + len, &v, NULL) == r);
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
            CHECK(v.len <= o->view_max);
            if (v.len > 0) {
                CHECK((uint8_t *)v.base >= before && (uint8_t *)v.base + v.len <= p);
                memcpy(got + total, v.base, v.len);
                total += v.len;
            }
        }
        if (avail == len) return total;
    }
}

#endif
