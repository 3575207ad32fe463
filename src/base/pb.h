#ifndef RP_BASE_PB_H
#define RP_BASE_PB_H

#include <stddef.h>
#include <stdint.h>

#include "base/bytes.h"
#include "ringp2p/error.h"

/*
 * A minimal protobuf reader and writer (protobuf encoding guide) for decoders
 * that produce views into their input instead of heap objects (envelopes,
 * peer records, identify). Varints are read as protobuf reads them:
 * up to 10 bytes, non-minimal forms allowed, values up to 2^64-1.
 */
enum { RP_PB_VARINT = 0, RP_PB_I64 = 1, RP_PB_LEN = 2, RP_PB_I32 = 5 };

/* Largest field number protobuf allows (2^29 - 1). */
#define RP_PB_FIELD_MAX 0x1fffffffu
/* Longest protobuf varint. */
#define RP_PB_VARINT_MAX_LEN 10

typedef struct rp_pb_field {
    uint32_t num;
    unsigned wt;    /* RP_PB_* */
    uint64_t value; /* RP_PB_VARINT only */
    rp_iov body;    /* RP_PB_LEN only: a view into the input */
} rp_pb_field;

/*
 * Reads one field (tag and value) at *p, not past end, and moves *p past it.
 * Groups and wire types 6, 7 are malformed. `msg` names the message and
 * `start` is where it begins, for the error text. Returns 0 or
 * RINGP2P_EPROTOBUF (*p unchanged).
 */
int rp_pb_next(const uint8_t **p, const uint8_t *end, const uint8_t *start, const char *msg,
               rp_pb_field *f, ringp2p_errinfo *ei);

/* RINGP2P_EPROTOBUF naming a known field that came with another wire type. */
int rp_pb_wrong_type(const char *msg, const char *field, const rp_pb_field *f, ringp2p_errinfo *ei);

/* Bytes of v as a protobuf varint (1..10). */
size_t rp_pb_varint_len(uint64_t v);

/* Appends v as a protobuf varint (any 64-bit value). */
void rp_pb_put_raw_varint(rp_wbuf *w, uint64_t v);

/* Appends field `num` as a varint. */
void rp_pb_put_varint(rp_wbuf *w, uint32_t num, uint64_t v);

/* Appends field `num` as length-delimited bytes (p[n], read only). */
void rp_pb_put_bytes(rp_wbuf *w, uint32_t num, const void *p, size_t n);

/* Bytes rp_pb_put_bytes writes for a field of number num and n bytes. */
size_t rp_pb_bytes_len(uint32_t num, size_t n);

#endif
