/*
 * Multiaddr: the binary cursor, text parsing and printing, and the public
 * ringp2p_multiaddr objects. The protocol table and value codecs are in
 * maddr_proto.c.
 */
#include "multiformats/multiaddr.h"

#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/varint.h"

/* Room for a quoted excerpt of a value in an error message (see rp_maddr_quote). */
#define QUOTE_MAX 72

struct ringp2p_multiaddr {
    size_t len;
    size_t ncomp;
    uint8_t bytes[]; /* validated binary multiaddr */
};

const char *rp_maddr_quote(const void *v, size_t n, char *dst, size_t cap)
{
    static const char hexdig[] = "0123456789abcdef";
    const uint8_t *p = v;
    size_t o = 0;
    if (cap < 8) {
        if (cap > 0) dst[0] = '\0';
        return dst;
    }
    dst[o++] = '\'';
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        int plain = c >= 0x20 && c < 0x7f && c != '\'' && c != '\\';
        /* Keep room for this byte, then "...", the closing quote and the NUL. */
        if (o + (plain ? 1 : 4) + 5 > cap) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }
        if (plain) {
            dst[o++] = (char)c;
        } else {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hexdig[c >> 4];
            dst[o++] = hexdig[c & 15];
        }
    }
    dst[o++] = '\'';
    dst[o] = '\0';
    return dst;
}

/* The reason a value is unacceptable for p, in ei (no protocol name or value). */
static int check_reason(const rp_maddr_proto *p, const uint8_t *v, size_t n, ringp2p_errinfo *ei)
{
    if (p->size > 0 && n != (size_t)p->size)
        return rp_err(ei, RINGP2P_EMULTIADDR, "value of %zu bytes, expected %d", n, p->size);
    if (n > RP_MADDR_MAX_BYTES)
        return rp_err(ei, RINGP2P_ELIMIT, "value longer than the %d-byte multiaddr limit",
                      RP_MADDR_MAX_BYTES);
    if (n > 0 && v == NULL) return rp_err(ei, RINGP2P_EINVAL, "NULL value");
    return p->check != NULL ? p->check(v, n, ei) : 0;
}

/* "<proto>: invalid value '<excerpt>': <reason>", as RINGP2P_ELIMIT or RINGP2P_EMULTIADDR. */
static int value_error(ringp2p_errinfo *ei, int code, const rp_maddr_proto *p, const void *v,
                       size_t n, const ringp2p_errinfo *sub)
{
    char q[QUOTE_MAX];
    int out =
        (code == RINGP2P_ELIMIT || code == RINGP2P_ENOBUF) ? RINGP2P_ELIMIT : RINGP2P_EMULTIADDR;
    return rp_err(ei, out, "%s: invalid value %s: %s", p->name, rp_maddr_quote(v, n, q, sizeof(q)),
                  sub->msg[0] != '\0' ? sub->msg : ringp2p_strerror(code));
}

static int check_value(const rp_maddr_proto *p, const uint8_t *v, size_t n, ringp2p_errinfo *ei)
{
    ringp2p_errinfo sub = { 0 };
    int r = check_reason(p, v, n, &sub);
    return r == 0 ? 0 : value_error(ei, r, p, v, n, &sub);
}

/* Parses and checks one value's text into out[RP_MADDR_MAX_BYTES]. */
static ssize_t parse_value(const rp_maddr_proto *p, const char *s, size_t n, uint8_t *out,
                           ringp2p_errinfo *ei)
{
    ringp2p_errinfo sub = { 0 };
    ssize_t got = p->from_text(s, n, out, RP_MADDR_MAX_BYTES, &sub);
    int r = got < 0 ? (int)got : check_reason(p, out, (size_t)got, &sub);
    return r == 0 ? got : value_error(ei, r, p, s, n, &sub);
}

int rp_maddr_next_component(const uint8_t **src, const uint8_t *end, rp_maddr_comp *out,
                            ringp2p_errinfo *ei)
{
    const uint8_t *p = *src;
    uint64_t code;
    int r = rp_uvarint_decode(&p, end, &code);
    if (r == RINGP2P_ETRUNCATED) return rp_err(ei, r, "multiaddr: truncated protocol code");
    if (r != 0) return rp_err(ei, r, "multiaddr: malformed protocol code varint");
    const rp_maddr_proto *proto = rp_maddr_proto_by_code(code);
    if (proto == NULL)
        return rp_err(ei, RINGP2P_EPROTOUNKNOWN, "unknown multiaddr protocol code %llu (0x%llx)",
                      (unsigned long long)code, (unsigned long long)code);

    size_t vlen = 0;
    if (proto->size > 0) {
        vlen = (size_t)proto->size;
    } else if (proto->size == RP_MADDR_SIZE_VAR) {
        uint64_t l;
        r = rp_uvarint_decode(&p, end, &l);
        if (r == RINGP2P_ETRUNCATED)
            return rp_err(ei, r, "%s: truncated value length", proto->name);
        if (r != 0) return rp_err(ei, r, "%s: malformed value length varint", proto->name);
        if (l > (uint64_t)(end - p))
            return rp_err(ei, RINGP2P_ETRUNCATED,
                          "%s: value length %llu exceeds the %zu bytes left", proto->name,
                          (unsigned long long)l, (size_t)(end - p));
        vlen = (size_t)l;
    }
    if (vlen > (size_t)(end - p))
        return rp_err(ei, RINGP2P_ETRUNCATED, "%s: value truncated: %zu bytes needed, %zu left",
                      proto->name, vlen, (size_t)(end - p));
    if (proto->size != 0) RP_TRY(check_value(proto, p, vlen, ei));

    out->proto = proto;
    out->start = *src;
    out->len = (size_t)(p + vlen - *src);
    out->value = proto->size != 0 ? p : NULL;
    out->value_len = vlen;
    *src = p + vlen;
    return 0;
}

static int too_many_bytes(ringp2p_errinfo *ei, size_t len)
{
    return rp_err(ei, RINGP2P_ELIMIT, "multiaddr of %zu bytes exceeds the limit of %d", len,
                  RP_MADDR_MAX_BYTES);
}

static int too_many_components(ringp2p_errinfo *ei)
{
    return rp_err(ei, RINGP2P_ELIMIT, "multiaddr has more than %d components",
                  RP_MADDR_MAX_COMPONENTS);
}

ssize_t rp_maddr_validate(const uint8_t *buf, size_t len, ringp2p_errinfo *ei)
{
    if (len > RP_MADDR_MAX_BYTES) return too_many_bytes(ei, len);
    if (len == 0) return 0;
    const uint8_t *p = buf, *end = buf + len;
    ssize_t count = 0;
    while (p < end) {
        rp_maddr_comp c = { 0 };
        RP_TRY(rp_maddr_next_component(&p, end, &c, ei));
        if (++count > RP_MADDR_MAX_COMPONENTS) return too_many_components(ei);
    }
    return count;
}

/* End of the text segment starting at i: the next '/' or len. */
static size_t segment_end(const char *text, size_t i, size_t len)
{
    const char *slash = i < len ? memchr(text + i, '/', len - i) : NULL;
    return slash != NULL ? (size_t)(slash - text) : len;
}

ssize_t rp_maddr_from_text(const char *text, size_t len, uint8_t *dst, size_t cap,
                           ringp2p_errinfo *ei)
{
    char q[QUOTE_MAX];
    if (len > RP_MADDR_TEXT_MAX)
        return rp_err(ei, RINGP2P_ELIMIT,
                      "multiaddr text of %zu characters exceeds the limit of %d", len,
                      RP_MADDR_TEXT_MAX);
    if (len > 0 && text[0] != '/')
        return rp_err(ei, RINGP2P_EMULTIADDR, "multiaddr text must begin with '/': %s",
                      rp_maddr_quote(text, len, q, sizeof(q)));
    /* js- and go-multiaddr both drop trailing slashes; "/" alone is the empty multiaddr. */
    while (len > 0 && text[len - 1] == '/') len--;

    uint8_t val[RP_MADDR_MAX_BYTES];
    rp_wbuf w = rp_wbuf_make(dst, cap);
    size_t i = 0, count = 0;
    while (i < len) {
        /* text[i] is the '/' before a protocol name. */
        size_t ns = i + 1, ne = segment_end(text, ns, len);
        if (ne == ns)
            return rp_err(ei, RINGP2P_EMULTIADDR, "empty protocol name (\"//\") at offset %zu", i);
        const rp_maddr_proto *p = rp_maddr_proto_by_name(text + ns, ne - ns);
        if (p == NULL)
            return rp_err(ei, RINGP2P_EPROTOUNKNOWN, "unknown multiaddr protocol %s",
                          rp_maddr_quote(text + ns, ne - ns, q, sizeof(q)));
        if (++count > RP_MADDR_MAX_COMPONENTS) return too_many_components(ei);
        rp_wbuf_uvarint(&w, p->code);
        i = ne;
        if (p->size != 0) {
            size_t vs = i + 1, ve = segment_end(text, vs, len);
            if (i == len || ve == vs)
                return rp_err(ei, RINGP2P_EMULTIADDR, "%s: missing value", p->name);
            ssize_t n = parse_value(p, text + vs, ve - vs, val, ei);
            if (n < 0) return n;
            if (p->size == RP_MADDR_SIZE_VAR) rp_wbuf_uvarint(&w, (uint64_t)n);
            rp_wbuf_put(&w, val, (size_t)n);
            i = ve;
        }
        if (w.len > RP_MADDR_MAX_BYTES) return too_many_bytes(ei, w.len);
    }
    return rp_wbuf_result(&w);
}

static int print_all(const uint8_t *buf, size_t len, rp_wbuf *w, ringp2p_errinfo *ei)
{
    if (len > RP_MADDR_MAX_BYTES) return too_many_bytes(ei, len);
    if (len == 0) {
        rp_wbuf_byte(w, '/');
        return 0;
    }
    const uint8_t *p = buf, *end = buf + len;
    size_t count = 0;
    while (p < end) {
        rp_maddr_comp c = { 0 };
        RP_TRY(rp_maddr_next_component(&p, end, &c, ei));
        if (++count > RP_MADDR_MAX_COMPONENTS) return too_many_components(ei);
        rp_wbuf_byte(w, '/');
        rp_wbuf_put(w, c.proto->name, strlen(c.proto->name));
        if (c.proto->size != 0) {
            rp_wbuf_byte(w, '/');
            c.proto->to_text(c.value, c.value_len, w);
        }
    }
    return 0;
}

ssize_t rp_maddr_to_text(const uint8_t *buf, size_t len, char *dst, size_t cap, ringp2p_errinfo *ei)
{
    rp_wbuf w = rp_wbuf_make(dst, cap);
    RP_TRY(print_all(buf, len, &w, ei));
    if (w.len >= cap) return RINGP2P_ENOBUF;
    dst[w.len] = '\0';
    return (ssize_t)w.len;
}

ssize_t rp_maddr_text_len(const uint8_t *buf, size_t len, ringp2p_errinfo *ei)
{
    rp_wbuf w = rp_wbuf_make(NULL, 0);
    RP_TRY(print_all(buf, len, &w, ei));
    return (ssize_t)w.len;
}

ssize_t rp_maddr_value_from_text(const rp_maddr_proto *p, const char *s, size_t n, uint8_t *dst,
                                 size_t cap, ringp2p_errinfo *ei)
{
    if (p->size == 0) return rp_err(ei, RINGP2P_EINVAL, "%s takes no value", p->name);
    uint8_t val[RP_MADDR_MAX_BYTES];
    ssize_t got = parse_value(p, s, n, val, ei);
    if (got < 0) return got;
    if ((size_t)got > cap) return RINGP2P_ENOBUF;
    memcpy(dst, val, (size_t)got);
    return got;
}

ssize_t rp_maddr_value_to_text(const rp_maddr_proto *p, const uint8_t *v, size_t n, char *dst,
                               size_t cap, ringp2p_errinfo *ei)
{
    rp_wbuf w = rp_wbuf_make(dst, cap);
    if (p->size != 0) {
        RP_TRY(check_value(p, v, n, ei));
        p->to_text(v, n, &w);
    }
    if (w.len >= cap) return RINGP2P_ENOBUF;
    dst[w.len] = '\0';
    return (ssize_t)w.len;
}

ssize_t rp_maddr_put_component(const rp_maddr_proto *p, const uint8_t *v, size_t n, uint8_t *dst,
                               size_t cap, ringp2p_errinfo *ei)
{
    rp_wbuf w = rp_wbuf_make(dst, cap);
    rp_wbuf_uvarint(&w, p->code);
    if (p->size != 0) {
        RP_TRY(check_value(p, v, n, ei));
        if (p->size == RP_MADDR_SIZE_VAR) rp_wbuf_uvarint(&w, n);
        rp_wbuf_put(&w, v, n);
    }
    return rp_wbuf_result(&w);
}

ssize_t rp_maddr_find_last(const uint8_t *buf, size_t len, uint32_t code, ringp2p_errinfo *ei)
{
    if (len > RP_MADDR_MAX_BYTES) return too_many_bytes(ei, len);
    const uint8_t *p = buf, *end = buf + len;
    ssize_t found = RINGP2P_ENOENT;
    while (p < end) {
        rp_maddr_comp c = { 0 };
        RP_TRY(rp_maddr_next_component(&p, end, &c, ei));
        if (c.proto->code == code) found = c.start - buf;
    }
    if (found < 0) return rp_err(ei, RINGP2P_ENOENT, "no component with protocol code 0x%x", code);
    return found;
}

/* ---- public objects ------------------------------------------------------------------------ */

static int make(const uint8_t *buf, size_t len, size_t ncomp, ringp2p_multiaddr **out,
                ringp2p_errinfo *ei)
{
    ringp2p_multiaddr *ma = malloc(sizeof(*ma) + len);
    if (ma == NULL) return rp_err(ei, RINGP2P_ENOMEM, "out of memory for a multiaddr");
    ma->len = len;
    ma->ncomp = ncomp;
    if (len > 0) memcpy(ma->bytes, buf, len);
    *out = ma;
    return 0;
}

RINGP2P_API int ringp2p_multiaddr_parse(const char *text, ringp2p_multiaddr **out,
                                        ringp2p_errinfo *ei)
{
    if (text == NULL || out == NULL) return rp_err(ei, RINGP2P_EINVAL, "NULL argument");
    uint8_t buf[RP_MADDR_MAX_BYTES];
    ssize_t n =
        rp_maddr_from_text(text, strnlen(text, RP_MADDR_TEXT_MAX + 1), buf, sizeof(buf), ei);
    if (n < 0) return (int)n;
    ssize_t ncomp = rp_maddr_validate(buf, (size_t)n, ei);
    if (ncomp < 0) return (int)ncomp;
    return make(buf, (size_t)n, (size_t)ncomp, out, ei);
}

RINGP2P_API int ringp2p_multiaddr_from_bytes(const uint8_t *buf, size_t len,
                                             ringp2p_multiaddr **out, ringp2p_errinfo *ei)
{
    if ((buf == NULL && len > 0) || out == NULL) return rp_err(ei, RINGP2P_EINVAL, "NULL argument");
    ssize_t ncomp = rp_maddr_validate(buf, len, ei);
    if (ncomp < 0) return (int)ncomp;
    return make(buf, len, (size_t)ncomp, out, ei);
}

RINGP2P_API void ringp2p_multiaddr_free(ringp2p_multiaddr *ma)
{
    free(ma);
}

RINGP2P_API int ringp2p_multiaddr_dup(const ringp2p_multiaddr *ma, ringp2p_multiaddr **out)
{
    return make(ma->bytes, ma->len, ma->ncomp, out, NULL);
}

RINGP2P_API const uint8_t *ringp2p_multiaddr_bytes(const ringp2p_multiaddr *ma, size_t *len)
{
    if (len != NULL) *len = ma->len;
    return ma->bytes;
}

RINGP2P_API size_t ringp2p_multiaddr_text_max(const ringp2p_multiaddr *ma)
{
    ssize_t n = rp_maddr_text_len(ma->bytes, ma->len, NULL);
    return n < 0 ? RP_MADDR_TEXT_MAX : (size_t)n + 1;
}

RINGP2P_API ssize_t ringp2p_multiaddr_to_string(const ringp2p_multiaddr *ma, char *dst, size_t cap)
{
    return rp_maddr_to_text(ma->bytes, ma->len, dst, cap, NULL);
}

RINGP2P_API bool ringp2p_multiaddr_equal(const ringp2p_multiaddr *a, const ringp2p_multiaddr *b)
{
    if (a == NULL || b == NULL) return a == b;
    return a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}

RINGP2P_API int ringp2p_multiaddr_encapsulate(const ringp2p_multiaddr *a,
                                              const ringp2p_multiaddr *b, ringp2p_multiaddr **out)
{
    if (a->len + b->len > RP_MADDR_MAX_BYTES) return RINGP2P_ELIMIT;
    if (a->ncomp + b->ncomp > RP_MADDR_MAX_COMPONENTS) return RINGP2P_ELIMIT;
    uint8_t buf[RP_MADDR_MAX_BYTES];
    if (a->len > 0) memcpy(buf, a->bytes, a->len);
    if (b->len > 0) memcpy(buf + a->len, b->bytes, b->len);
    return make(buf, a->len + b->len, a->ncomp + b->ncomp, out, NULL);
}

/* a's first `len` bytes, which end on a component boundary. */
static int prefix(const ringp2p_multiaddr *a, size_t len, ringp2p_multiaddr **out)
{
    ssize_t ncomp = rp_maddr_validate(a->bytes, len, NULL);
    if (ncomp < 0) return (int)ncomp;
    return make(a->bytes, len, (size_t)ncomp, out, NULL);
}

RINGP2P_API int ringp2p_multiaddr_decapsulate(const ringp2p_multiaddr *a,
                                              const ringp2p_multiaddr *b, ringp2p_multiaddr **out)
{
    /*
     * Component boundaries of a, including its end. b parses the same way
     * wherever it sits, so a byte match starting at a boundary is a match of
     * whole components.
     */
    size_t bounds[RP_MADDR_MAX_COMPONENTS + 1];
    size_t nb = 0;
    const uint8_t *p = a->bytes, *end = a->bytes + a->len;
    bounds[nb++] = 0;
    while (p < end && nb <= RP_MADDR_MAX_COMPONENTS) {
        rp_maddr_comp c = { 0 };
        RP_TRY(rp_maddr_next_component(&p, end, &c, NULL));
        bounds[nb++] = (size_t)(p - a->bytes);
    }
    for (size_t k = nb; k-- > 0;) {
        size_t o = bounds[k];
        if (a->len - o >= b->len && memcmp(a->bytes + o, b->bytes, b->len) == 0)
            return prefix(a, o, out);
    }
    return RINGP2P_ENOENT;
}

RINGP2P_API int ringp2p_multiaddr_decapsulate_code(const ringp2p_multiaddr *a, uint32_t code,
                                                   ringp2p_multiaddr **out)
{
    ssize_t off = rp_maddr_find_last(a->bytes, a->len, code, NULL);
    if (off < 0) return (int)off;
    return prefix(a, (size_t)off, out);
}

RINGP2P_API void ringp2p_multiaddr_iter_init(ringp2p_multiaddr_iter *it,
                                             const ringp2p_multiaddr *ma)
{
    it->pos = ma->bytes;
    it->end = ma->bytes + ma->len;
}

RINGP2P_API int ringp2p_multiaddr_iter_next(ringp2p_multiaddr_iter *it,
                                            ringp2p_multiaddr_component *out)
{
    if (it->pos >= it->end) return 0;
    rp_maddr_comp c = { 0 };
    RP_TRY(rp_maddr_next_component(&it->pos, it->end, &c, NULL));
    out->code = c.proto->code;
    out->name = c.proto->name;
    out->value = c.value;
    out->value_len = c.value_len;
    return 1;
}

RINGP2P_API ssize_t ringp2p_multiaddr_component_value_string(const ringp2p_multiaddr_component *c,
                                                             char *dst, size_t cap)
{
    const rp_maddr_proto *p = rp_maddr_proto_by_code(c->code);
    if (p == NULL) return RINGP2P_EPROTOUNKNOWN;
    return rp_maddr_value_to_text(p, c->value, c->value_len, dst, cap, NULL);
}
