#include "base/pb.h"

#include "base/error.h"

/* A protobuf varint at *p: at most 10 bytes, the tenth holding only bit 63. */
static int pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    const uint8_t *q = *p;
    uint64_t v = 0;
    for (unsigned i = 0; i < RP_PB_VARINT_MAX_LEN; i++) {
        if (q == end) return RINGP2P_ETRUNCATED;
        uint8_t b = *q++;
        if (i == RP_PB_VARINT_MAX_LEN - 1 && b > 1) return RINGP2P_EVARINT;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            *out = v;
            *p = q;
            return 0;
        }
    }
    return RINGP2P_EVARINT;
}

int rp_pb_next(const uint8_t **p, const uint8_t *end, const uint8_t *start, const char *msg,
               rp_pb_field *f, ringp2p_errinfo *ei)
{
    const uint8_t *q = *p;
    uint64_t tag, v;
    if (pb_varint(&q, end, &tag) < 0)
        return rp_err(ei, RINGP2P_EPROTOBUF, "%s: malformed field tag at byte %td", msg,
                      *p - start);
    if ((tag >> 3) == 0 || (tag >> 3) > RP_PB_FIELD_MAX)
        return rp_err(ei, RINGP2P_EPROTOBUF, "%s: invalid field number %llu at byte %td", msg,
                      (unsigned long long)(tag >> 3), *p - start);
    f->num = (uint32_t)(tag >> 3);
    f->wt = (unsigned)(tag & 7);
    f->value = 0;
    f->body.base = NULL;
    f->body.len = 0;
    switch (f->wt) {
    case RP_PB_VARINT:
        if (pb_varint(&q, end, &f->value) < 0)
            return rp_err(ei, RINGP2P_EPROTOBUF, "%s: field %u: malformed varint at byte %td", msg,
                          f->num, q - start);
        break;
    case RP_PB_I64:
    case RP_PB_I32: {
        size_t w = f->wt == RP_PB_I64 ? 8 : 4;
        if ((size_t)(end - q) < w)
            return rp_err(ei, RINGP2P_EPROTOBUF, "%s: field %u: truncated fixed-width value", msg,
                          f->num);
        q += w;
        break;
    }
    case RP_PB_LEN:
        if (pb_varint(&q, end, &v) < 0)
            return rp_err(ei, RINGP2P_EPROTOBUF, "%s: field %u: malformed length at byte %td", msg,
                          f->num, q - start);
        if (v > (uint64_t)(end - q))
            return rp_err(ei, RINGP2P_EPROTOBUF,
                          "%s: field %u: length %llu but only %td bytes follow", msg, f->num,
                          (unsigned long long)v, end - q);
        f->body.base = (void *)(uintptr_t)q;
        f->body.len = (size_t)v;
        q += v;
        break;
    default:
        return rp_err(ei, RINGP2P_EPROTOBUF, "%s: field %u has invalid wire type %u", msg, f->num,
                      f->wt);
    }
    *p = q;
    return 0;
}

int rp_pb_wrong_type(const char *msg, const char *field, const rp_pb_field *f, ringp2p_errinfo *ei)
{
    return rp_err(ei, RINGP2P_EPROTOBUF, "%s: field %s (%u) has wire type %u", msg, field, f->num,
                  f->wt);
}

size_t rp_pb_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

void rp_pb_put_raw_varint(rp_wbuf *w, uint64_t v)
{
    while (v >= 0x80) {
        rp_wbuf_byte(w, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    rp_wbuf_byte(w, (uint8_t)v);
}

void rp_pb_put_varint(rp_wbuf *w, uint32_t num, uint64_t v)
{
    rp_pb_put_raw_varint(w, (uint64_t)num << 3 | RP_PB_VARINT);
    rp_pb_put_raw_varint(w, v);
}

void rp_pb_put_bytes(rp_wbuf *w, uint32_t num, const void *p, size_t n)
{
    rp_pb_put_raw_varint(w, (uint64_t)num << 3 | RP_PB_LEN);
    rp_pb_put_raw_varint(w, n);
    rp_wbuf_put(w, p, n);
}

size_t rp_pb_bytes_len(uint32_t num, size_t n)
{
    return rp_pb_varint_len((uint64_t)num << 3) + rp_pb_varint_len(n) + n;
}
