/* Circuit relay v2: the message codec, framing and vouchers (see relay.h). */
#include <string.h>

#include "base/error.h"
#include "base/varint.h"
#include "protocols/relay.h"

const char *rp_relay_status_name(int32_t status)
{
    switch (status) {
    case RP_RELAY_UNUSED: return "UNUSED";
    case RP_RELAY_OK: return "OK";
    case RP_RELAY_RESERVATION_REFUSED: return "RESERVATION_REFUSED";
    case RP_RELAY_RESOURCE_LIMIT_EXCEEDED: return "RESOURCE_LIMIT_EXCEEDED";
    case RP_RELAY_PERMISSION_DENIED: return "PERMISSION_DENIED";
    case RP_RELAY_CONNECTION_FAILED: return "CONNECTION_FAILED";
    case RP_RELAY_NO_RESERVATION: return "NO_RESERVATION";
    case RP_RELAY_MALFORMED_MESSAGE: return "MALFORMED_MESSAGE";
    case RP_RELAY_UNEXPECTED_MESSAGE: return "UNEXPECTED_MESSAGE";
    default: return "unknown";
    }
}

/* ---- decoding ------------------------------------------------------------------------------ */

/*
 * A field that may appear once: its wire type must be `wt` and `seen` must
 * not be set yet. Returns 0 or the error naming the field.
 */
static int once(const char *msg, const char *field, const rp_pb_field *f, unsigned wt, bool seen,
                ringp2p_errinfo *ei)
{
    if (f->wt != wt) return rp_pb_wrong_type(msg, field, f, ei);
    if (seen)
        return rp_err(ei, RINGP2P_EPROTOBUF, "%s: field %s (%u) appears twice", msg, field, f->num);
    return 0;
}

/* A message of `len` bytes over RP_RELAY_MSG_MAX: the error naming it. */
static int too_long(const char *msg, ptrdiff_t len, ringp2p_errinfo *ei)
{
    return rp_err(ei, RINGP2P_ELIMIT, "%s of %td bytes is over the limit of %d", msg, len,
                  RP_RELAY_MSG_MAX);
}

/* An enum or int32 as protobuf reads it: the low 32 bits of the varint. */
static int32_t pb_int32(uint64_t v)
{
    return (int32_t)(uint32_t)v;
}

static int decode_limit(const rp_iov *body, rp_relay_limit *out, ringp2p_errinfo *ei)
{
    static const char msg[] = "Limit";
    const uint8_t *start = body->base, *p = start, *end = start + body->len;
    bool has_duration = false, has_data = false;
    out->duration = 0;
    out->data = 0;
    while (p < end) {
        rp_pb_field f;
        int r = rp_pb_next(&p, end, start, msg, &f, ei);
        if (r < 0) return r;
        switch (f.num) {
        case RP_RELAY_LIMIT_FIELD_DURATION:
            if ((r = once(msg, "duration", &f, RP_PB_VARINT, has_duration, ei)) < 0) return r;
            has_duration = true;
            out->duration = (uint32_t)f.value; /* uint32: the low 32 bits, as protobuf */
            break;
        case RP_RELAY_LIMIT_FIELD_DATA:
            if ((r = once(msg, "data", &f, RP_PB_VARINT, has_data, ei)) < 0) return r;
            has_data = true;
            out->data = f.value;
            break;
        default: break;
        }
    }
    return 0;
}

static void add_addr(rp_iov *addrs, size_t *n, size_t *dropped, const rp_iov *v)
{
    if (*n == RP_RELAY_ADDRS_MAX)
        (*dropped)++;
    else
        addrs[(*n)++] = *v;
}

static int decode_peer(const rp_iov *body, rp_relay_peer *out, ringp2p_errinfo *ei)
{
    static const char msg[] = "Peer";
    const uint8_t *start = body->base, *p = start, *end = start + body->len;
    out->id.base = NULL;
    out->id.len = 0;
    out->n_addrs = 0;
    out->n_addrs_dropped = 0;
    while (p < end) {
        rp_pb_field f;
        int r = rp_pb_next(&p, end, start, msg, &f, ei);
        if (r < 0) return r;
        switch (f.num) {
        case RP_RELAY_PEER_FIELD_ID:
            if ((r = once(msg, "id", &f, RP_PB_LEN, out->id.base != NULL, ei)) < 0) return r;
            out->id = f.body;
            break;
        case RP_RELAY_PEER_FIELD_ADDRS:
            if (f.wt != RP_PB_LEN) return rp_pb_wrong_type(msg, "addrs", &f, ei);
            add_addr(out->addrs, &out->n_addrs, &out->n_addrs_dropped, &f.body);
            break;
        default: break;
        }
    }
    return 0;
}

static int decode_rsvp(const rp_iov *body, rp_relay_rsvp *out, ringp2p_errinfo *ei)
{
    static const char msg[] = "Reservation";
    const uint8_t *start = body->base, *p = start, *end = start + body->len;
    bool has_expire = false;
    out->expire = 0;
    out->n_addrs = 0;
    out->n_addrs_dropped = 0;
    out->voucher.base = NULL;
    out->voucher.len = 0;
    while (p < end) {
        rp_pb_field f;
        int r = rp_pb_next(&p, end, start, msg, &f, ei);
        if (r < 0) return r;
        switch (f.num) {
        case RP_RELAY_RSVP_FIELD_EXPIRE:
            if ((r = once(msg, "expire", &f, RP_PB_VARINT, has_expire, ei)) < 0) return r;
            has_expire = true;
            out->expire = f.value;
            break;
        case RP_RELAY_RSVP_FIELD_ADDRS:
            if (f.wt != RP_PB_LEN) return rp_pb_wrong_type(msg, "addrs", &f, ei);
            add_addr(out->addrs, &out->n_addrs, &out->n_addrs_dropped, &f.body);
            break;
        case RP_RELAY_RSVP_FIELD_VOUCHER:
            if ((r = once(msg, "voucher", &f, RP_PB_LEN, out->voucher.base != NULL, ei)) < 0)
                return r;
            out->voucher = f.body;
            break;
        default: break;
        }
    }
    return 0;
}

/*
 * The fields HopMessage and StopMessage share, under their own numbers; a
 * number of 0 marks a field the message does not have.
 */
typedef struct layout {
    const char *msg;
    uint32_t type, peer, rsvp, limit, status;
} layout;

static const layout hop_layout = { "HopMessage",
                                   RP_RELAY_HOP_FIELD_TYPE,
                                   RP_RELAY_HOP_FIELD_PEER,
                                   RP_RELAY_HOP_FIELD_RESERVATION,
                                   RP_RELAY_HOP_FIELD_LIMIT,
                                   RP_RELAY_HOP_FIELD_STATUS };
static const layout stop_layout = { "StopMessage",
                                    RP_RELAY_STOP_FIELD_TYPE,
                                    RP_RELAY_STOP_FIELD_PEER,
                                    0,
                                    RP_RELAY_STOP_FIELD_LIMIT,
                                    RP_RELAY_STOP_FIELD_STATUS };

/* Both messages decode into a hop message (a stop message has no reservation). */
static int decode_msg(const layout *l, const uint8_t **src, const uint8_t *end,
                      rp_relay_hop_msg *out, ringp2p_errinfo *ei)
{
    const uint8_t *start = *src, *p = *src;
    if ((size_t)(end - start) > RP_RELAY_MSG_MAX) return too_long(l->msg, end - start, ei);
    rp_relay_hop_msg m;
    memset(&m, 0, sizeof(m));
    while (p < end) {
        rp_pb_field f;
        int r = rp_pb_next(&p, end, start, l->msg, &f, ei);
        if (r < 0) return r;
        if (f.num == l->type) {
            if ((r = once(l->msg, "type", &f, RP_PB_VARINT, m.has_type, ei)) < 0) return r;
            m.has_type = true;
            m.type = pb_int32(f.value);
        } else if (f.num == l->peer) {
            if ((r = once(l->msg, "peer", &f, RP_PB_LEN, m.has_peer, ei)) < 0) return r;
            m.has_peer = true;
            if ((r = decode_peer(&f.body, &m.peer, ei)) < 0) return r;
        } else if (l->rsvp != 0 && f.num == l->rsvp) {
            if ((r = once(l->msg, "reservation", &f, RP_PB_LEN, m.has_reservation, ei)) < 0)
                return r;
            m.has_reservation = true;
            if ((r = decode_rsvp(&f.body, &m.reservation, ei)) < 0) return r;
        } else if (f.num == l->limit) {
            if ((r = once(l->msg, "limit", &f, RP_PB_LEN, m.has_limit, ei)) < 0) return r;
            m.has_limit = true;
            if ((r = decode_limit(&f.body, &m.limit, ei)) < 0) return r;
        } else if (f.num == l->status) {
            if ((r = once(l->msg, "status", &f, RP_PB_VARINT, m.has_status, ei)) < 0) return r;
            m.has_status = true;
            m.status = pb_int32(f.value);
        }
        /* anything else: an unknown field, skipped */
    }
    *out = m;
    *src = p;
    return 0;
}

int rp_relay_hop_decode(const uint8_t **src, const uint8_t *end, rp_relay_hop_msg *out,
                        ringp2p_errinfo *ei)
{
    return decode_msg(&hop_layout, src, end, out, ei);
}

/* A stop message decoded as a hop message, as what it is. */
static void hop_as_stop(const rp_relay_hop_msg *m, rp_relay_stop_msg *out)
{
    out->has_type = m->has_type;
    out->has_peer = m->has_peer;
    out->has_limit = m->has_limit;
    out->has_status = m->has_status;
    out->type = m->type;
    out->peer = m->peer;
    out->limit = m->limit;
    out->status = m->status;
}

int rp_relay_stop_decode(const uint8_t **src, const uint8_t *end, rp_relay_stop_msg *out,
                         ringp2p_errinfo *ei)
{
    rp_relay_hop_msg m;
    int r = decode_msg(&stop_layout, src, end, &m, ei);
    if (r < 0) return r;
    hop_as_stop(&m, out);
    return 0;
}

/* ---- encoding ------------------------------------------------------------------------------ */

/* An int32 as protobuf writes it: negative values sign-extended to ten bytes. */
static void put_int32(rp_wbuf *w, uint32_t num, int32_t v)
{
    rp_pb_put_varint(w, num, (uint64_t)(int64_t)v);
}

static size_t limit_len(const rp_relay_limit *l)
{
    return 1 + rp_pb_varint_len(l->duration) + 1 + rp_pb_varint_len(l->data);
}

static void put_limit(rp_wbuf *w, uint32_t num, const rp_relay_limit *l)
{
    rp_pb_put_raw_varint(w, (uint64_t)num << 3 | RP_PB_LEN);
    rp_pb_put_raw_varint(w, limit_len(l));
    rp_pb_put_varint(w, RP_RELAY_LIMIT_FIELD_DURATION, l->duration);
    rp_pb_put_varint(w, RP_RELAY_LIMIT_FIELD_DATA, l->data);
}

static size_t addrs_len(uint32_t num, const rp_iov *a, size_t n)
{
    size_t t = 0;
    for (size_t i = 0; i < n; i++) t += rp_pb_bytes_len(num, a[i].len);
    return t;
}

static void put_addrs(rp_wbuf *w, uint32_t num, const rp_iov *a, size_t n)
{
    for (size_t i = 0; i < n; i++) rp_pb_put_bytes(w, num, a[i].base, a[i].len);
}

static size_t peer_len(const rp_relay_peer *p)
{
    size_t t = addrs_len(RP_RELAY_PEER_FIELD_ADDRS, p->addrs, p->n_addrs);
    if (p->id.len != 0) t += rp_pb_bytes_len(RP_RELAY_PEER_FIELD_ID, p->id.len);
    return t;
}

static void put_peer(rp_wbuf *w, uint32_t num, const rp_relay_peer *p)
{
    rp_pb_put_raw_varint(w, (uint64_t)num << 3 | RP_PB_LEN);
    rp_pb_put_raw_varint(w, peer_len(p));
    if (p->id.len != 0) rp_pb_put_bytes(w, RP_RELAY_PEER_FIELD_ID, p->id.base, p->id.len);
    put_addrs(w, RP_RELAY_PEER_FIELD_ADDRS, p->addrs, p->n_addrs);
}

static size_t rsvp_len(const rp_relay_rsvp *r)
{
    size_t t = 1 + rp_pb_varint_len(r->expire);
    t += addrs_len(RP_RELAY_RSVP_FIELD_ADDRS, r->addrs, r->n_addrs);
    if (r->voucher.base != NULL) t += rp_pb_bytes_len(RP_RELAY_RSVP_FIELD_VOUCHER, r->voucher.len);
    return t;
}

static void put_rsvp(rp_wbuf *w, uint32_t num, const rp_relay_rsvp *r)
{
    rp_pb_put_raw_varint(w, (uint64_t)num << 3 | RP_PB_LEN);
    rp_pb_put_raw_varint(w, rsvp_len(r));
    rp_pb_put_varint(w, RP_RELAY_RSVP_FIELD_EXPIRE, r->expire);
    put_addrs(w, RP_RELAY_RSVP_FIELD_ADDRS, r->addrs, r->n_addrs);
    if (r->voucher.base != NULL)
        rp_pb_put_bytes(w, RP_RELAY_RSVP_FIELD_VOUCHER, r->voucher.base, r->voucher.len);
}

static void encode_msg(const layout *l, const rp_relay_hop_msg *m, rp_wbuf *w)
{
    if (m->has_type) put_int32(w, l->type, m->type);
    if (m->has_peer) put_peer(w, l->peer, &m->peer);
    if (l->rsvp != 0 && m->has_reservation) put_rsvp(w, l->rsvp, &m->reservation);
    if (m->has_limit) put_limit(w, l->limit, &m->limit);
    if (m->has_status) put_int32(w, l->status, m->status);
}

static void stop_as_hop(const rp_relay_stop_msg *s, rp_relay_hop_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->has_type = s->has_type;
    m->has_peer = s->has_peer;
    m->has_limit = s->has_limit;
    m->has_status = s->has_status;
    m->type = s->type;
    m->peer = s->peer;
    m->limit = s->limit;
    m->status = s->status;
}

static ssize_t encode(const layout *l, const rp_relay_hop_msg *m, uint8_t *dst, size_t cap)
{
    rp_wbuf w = rp_wbuf_make(dst, cap);
    encode_msg(l, m, &w);
    if (dst == NULL && cap == 0) return (ssize_t)w.len;
    return rp_wbuf_result(&w);
}

ssize_t rp_relay_hop_encode(const rp_relay_hop_msg *m, uint8_t *dst, size_t cap)
{
    return encode(&hop_layout, m, dst, cap);
}

ssize_t rp_relay_stop_encode(const rp_relay_stop_msg *m, uint8_t *dst, size_t cap)
{
    rp_relay_hop_msg h;
    stop_as_hop(m, &h);
    return encode(&stop_layout, &h, dst, cap);
}

static ssize_t write_framed(const layout *l, const rp_relay_hop_msg *m, uint8_t *dst, size_t cap)
{
    ssize_t n = encode(l, m, NULL, 0);
    if (n > RP_RELAY_MSG_MAX) return RINGP2P_ELIMIT;
    rp_wbuf w = rp_wbuf_make(dst, cap);
    rp_wbuf_uvarint(&w, (uint64_t)n);
    encode_msg(l, m, &w);
    return rp_wbuf_result(&w);
}

ssize_t rp_relay_hop_write(const rp_relay_hop_msg *m, uint8_t *dst, size_t cap)
{
    return write_framed(&hop_layout, m, dst, cap);
}

ssize_t rp_relay_stop_write(const rp_relay_stop_msg *m, uint8_t *dst, size_t cap)
{
    rp_relay_hop_msg h;
    stop_as_hop(m, &h);
    return write_framed(&stop_layout, &h, dst, cap);
}

/* A framed STATUS message (of type `type` in layout l) with `status`. */
static ssize_t status_write(const layout *l, int32_t type, int32_t status, uint8_t *dst, size_t cap)
{
    rp_relay_hop_msg m;
    memset(&m, 0, sizeof(m));
    m.has_type = m.has_status = true;
    m.type = type;
    m.status = status;
    return write_framed(l, &m, dst, cap);
}

ssize_t rp_relay_hop_status_write(int32_t status, uint8_t *dst, size_t cap)
{
    return status_write(&hop_layout, RP_RELAY_HOP_STATUS, status, dst, cap);
}

ssize_t rp_relay_stop_status_write(int32_t status, uint8_t *dst, size_t cap)
{
    return status_write(&stop_layout, RP_RELAY_STOP_STATUS, status, dst, cap);
}

/* ---- framing ------------------------------------------------------------------------------- */

int rp_relay_read_frame(const uint8_t **src, const uint8_t *end, rp_iov *body, ringp2p_errinfo *ei)
{
    const uint8_t *p = *src;
    uint64_t len;
    int r = rp_uvarint_decode(&p, end, &len);
    if (r == RINGP2P_ETRUNCATED) return 0;
    if (r < 0) return rp_err(ei, RINGP2P_EVARINT, "relay: malformed message length prefix");
    if (len > RP_RELAY_MSG_MAX)
        return rp_err(ei, RINGP2P_ELIMIT, "relay: message of %llu bytes, the limit is %d",
                      (unsigned long long)len, RP_RELAY_MSG_MAX);
    if ((uint64_t)(end - p) < len) return 0;
    body->base = (void *)(uintptr_t)p;
    body->len = (size_t)len;
    *src = p + len;
    return 1;
}

/*
 * One framed message of layout l: 1 with *out set and *src past it, 0 when
 * more input is needed, or the error.
 */
static int read_msg(const layout *l, const uint8_t **src, const uint8_t *end, rp_relay_hop_msg *out,
                    ringp2p_errinfo *ei)
{
    const uint8_t *p = *src;
    rp_iov body;
    int r = rp_relay_read_frame(&p, end, &body, ei);
    if (r <= 0) return r;
    const uint8_t *q = body.base;
    if ((r = decode_msg(l, &q, q + body.len, out, ei)) < 0) return r;
    *src = p;
    return 1;
}

int rp_relay_hop_read(const uint8_t **src, const uint8_t *end, rp_relay_hop_msg *out,
                      ringp2p_errinfo *ei)
{
    return read_msg(&hop_layout, src, end, out, ei);
}

int rp_relay_stop_read(const uint8_t **src, const uint8_t *end, rp_relay_stop_msg *out,
                       ringp2p_errinfo *ei)
{
    rp_relay_hop_msg m;
    int r = read_msg(&stop_layout, src, end, &m, ei);
    if (r > 0) hop_as_stop(&m, out);
    return r;
}

/* ---- vouchers ------------------------------------------------------------------------------ */

int rp_relay_voucher_decode(const uint8_t **src, const uint8_t *end, rp_relay_voucher *out,
                            ringp2p_errinfo *ei)
{
    static const char msg[] = "ReservationVoucher";
    const uint8_t *start = *src, *p = *src;
    if ((size_t)(end - start) > RP_RELAY_MSG_MAX) return too_long(msg, end - start, ei);
    rp_iov relay = { NULL, 0 }, peer = { NULL, 0 };
    bool has_exp = false;
    uint64_t exp = 0;
    while (p < end) {
        rp_pb_field f;
        int r = rp_pb_next(&p, end, start, msg, &f, ei);
        if (r < 0) return r;
        switch (f.num) {
        case RP_RELAY_VOUCHER_FIELD_RELAY:
            if ((r = once(msg, "relay", &f, RP_PB_LEN, relay.base != NULL, ei)) < 0) return r;
            relay = f.body;
            break;
        case RP_RELAY_VOUCHER_FIELD_PEER:
            if ((r = once(msg, "peer", &f, RP_PB_LEN, peer.base != NULL, ei)) < 0) return r;
            peer = f.body;
            break;
        case RP_RELAY_VOUCHER_FIELD_EXPIRE:
            if ((r = once(msg, "expiration", &f, RP_PB_VARINT, has_exp, ei)) < 0) return r;
            has_exp = true;
            exp = f.value;
            break;
        default: break;
        }
    }
    if (relay.base == NULL) return rp_err(ei, RINGP2P_EPROTOBUF, "%s has no relay", msg);
    if (peer.base == NULL) return rp_err(ei, RINGP2P_EPROTOBUF, "%s has no peer", msg);
    rp_relay_voucher v;
    int r = ringp2p_peer_id_from_bytes(relay.base, relay.len, &v.relay, ei);
    if (r < 0) return r;
    if ((r = ringp2p_peer_id_from_bytes(peer.base, peer.len, &v.peer, ei)) < 0) return r;
    v.expiration = exp;
    *out = v;
    *src = p;
    return 0;
}

ssize_t rp_relay_voucher_encode(const rp_relay_voucher *v, uint8_t *dst, size_t cap)
{
    rp_wbuf w = rp_wbuf_make(dst, cap);
    rp_pb_put_bytes(&w, RP_RELAY_VOUCHER_FIELD_RELAY, v->relay.bytes, v->relay.len);
    rp_pb_put_bytes(&w, RP_RELAY_VOUCHER_FIELD_PEER, v->peer.bytes, v->peer.len);
    rp_pb_put_varint(&w, RP_RELAY_VOUCHER_FIELD_EXPIRE, v->expiration);
    if (dst == NULL && cap == 0) return (ssize_t)w.len;
    return rp_wbuf_result(&w);
}

ssize_t rp_relay_voucher_seal(const ringp2p_privkey *key, const ringp2p_peer_id *peer,
                              uint64_t expiration, uint8_t *dst, size_t cap, ringp2p_errinfo *ei)
{
    if (peer->len == 0 || peer->len > RINGP2P_PEER_ID_MAX)
        return rp_err(ei, RINGP2P_EINVAL, "voucher: the peer ID was never set");
    rp_relay_voucher v;
    ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(key), &v.relay);
    v.peer = *peer;
    v.expiration = expiration;
    uint8_t payload[2 * (2 + RINGP2P_PEER_ID_MAX) + 1 + RP_PB_VARINT_MAX_LEN];
    ssize_t n = rp_relay_voucher_encode(&v, payload, sizeof(payload));
    if (n < 0) return rp_err(ei, RINGP2P_EINVAL, "voucher: payload does not fit");
    return rp_envelope_seal(key, RP_RELAY_VOUCHER_DOMAIN,
                            (const uint8_t *)RP_RELAY_VOUCHER_PAYLOAD_TYPE,
                            RP_RELAY_VOUCHER_PAYLOAD_TYPE_LEN, payload, (size_t)n, dst, cap, ei);
}

int rp_relay_voucher_open(const uint8_t **src, const uint8_t *end, rp_relay_voucher *out,
                          ringp2p_errinfo *ei)
{
    const uint8_t *p = *src;
    rp_envelope e;
    ringp2p_pubkey *key = NULL;
    int r = rp_envelope_open(&p, end, RP_RELAY_VOUCHER_DOMAIN,
                             (const uint8_t *)RP_RELAY_VOUCHER_PAYLOAD_TYPE,
                             RP_RELAY_VOUCHER_PAYLOAD_TYPE_LEN, &e, &key, ei);
    if (r < 0) return r;
    const uint8_t *q = e.payload.base;
    if (q == NULL) q = (const uint8_t *)""; /* absent payload: an empty voucher, no relay */
    rp_relay_voucher v;
    r = rp_relay_voucher_decode(&q, q + e.payload.len, &v, ei);
    if (r == 0 && !ringp2p_peer_id_matches(&v.relay, key)) {
        char signer[RINGP2P_PEER_ID_STR_MAX], named[RINGP2P_PEER_ID_STR_MAX];
        ringp2p_peer_id signer_id;
        ringp2p_peer_id_from_pubkey(key, &signer_id);
        ringp2p_peer_id_to_string(&signer_id, signer, sizeof(signer));
        ringp2p_peer_id_to_string(&v.relay, named, sizeof(named));
        r = rp_err(ei, RINGP2P_EPEERMISMATCH, "voucher of relay %s is signed by %s", named, signer);
    }
    ringp2p_pubkey_free(key);
    if (r < 0) return r;
    *out = v;
    *src = p;
    return 0;
}
