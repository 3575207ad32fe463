/*
 * Unsigned varint (multiformats/unsigned-varint): LEB128, at most 9 bytes
 * (so values < 2^63), and only the minimal encoding is accepted.
 */
#ifndef RP_BASE_VARINT_H
#define RP_BASE_VARINT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/bytes.h"

#define RP_UVARINT_MAX_LEN   9
#define RP_UVARINT_MAX_VALUE ((UINT64_C(1) << 63) - 1)

/*
 * Decodes one varint at *src (not past `end`) into *out and advances *src.
 * Returns 0, RINGP2P_ETRUNCATED if the input ends inside the varint, or
 * RINGP2P_EVARINT if it is longer than 9 bytes or not minimally encoded.
 * On error *src is unchanged.
 */
int rp_uvarint_decode(const uint8_t **src, const uint8_t *end, uint64_t *out);

/* Bytes needed to encode v (1..9); v must be <= RP_UVARINT_MAX_VALUE. */
size_t rp_uvarint_len(uint64_t v);

/*
 * Encodes v into dst (cap bytes). Returns the byte count, RINGP2P_ENOBUF, or
 * RINGP2P_EINVAL if v > RP_UVARINT_MAX_VALUE.
 */
ssize_t rp_uvarint_encode(uint8_t *dst, size_t cap, uint64_t v);

/* Appends v to w (values above the maximum are a caller bug: clamped out by assert). */
void rp_wbuf_uvarint(rp_wbuf *w, uint64_t v);

#endif
