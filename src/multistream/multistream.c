#include "multistream/multistream.h"

#include <stdio.h>
#include <string.h>

#include "base/error.h"
#include "base/varint.h"

enum { ROLE_DIALER = 1, ROLE_LISTENER = 2 };

/* What the next inbound message is. */
enum {
    PH_HDR,      /* the peer's header */
    PH_LS_LEN,   /* dialer: the length prefix of the "ls" answer */
    PH_LS_SMALL, /* dialer: a 3-byte answer, which may be "na" rather than a listing */
    PH_LS_ENTRY, /* dialer: entries of the listing, then its final newline */
    PH_RESP,     /* dialer: the answer to proposal `cur` */
    PH_REQ,      /* listener: a proposal or "ls" */
    PH_DONE,
    PH_FAILED,
};

enum { F_LAZY = 1, F_LS = 2, F_SENT = 4, F_LS_DONE = 8, F_AGREED_LINE = 16 };

/* Queued outbound messages: a dialer's proposal is its index (< RP_MSS_MAX_ROUNDS). */
enum { OP_HDR = 0xf0, OP_NA, OP_LS, OP_LIST, OP_ECHO };

_Static_assert(RP_MSS_MAX_ROUNDS < OP_HDR, "proposal indexes must not collide with op codes");
_Static_assert(RP_MSS_LS_MAX <= UINT32_MAX, "ls_rem is 32 bits");

#define HDR_LEN (sizeof(RP_MSS_PROTOCOL_ID) - 1)

static bool msg_is(const char *line, size_t len, const char *s)
{
    size_t n = strlen(s);
    return len == n && memcmp(line, s, n) == 0;
}

static size_t line_size(size_t len)
{
    return rp_uvarint_len(len + 1) + len + 1;
}

static void put_line(rp_wbuf *w, const void *msg, size_t len)
{
    rp_wbuf_uvarint(w, len + 1);
    rp_wbuf_put(w, msg, len);
    rp_wbuf_byte(w, '\n');
}

/* Peer bytes made printable for error messages: at most 48, escaped, "..." when cut. */
static const char *quote(char *dst, size_t cap, const char *s, size_t len)
{
    size_t o = 0;
    dst[0] = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == 48 || o + 8 > cap) {
            snprintf(dst + o, cap - o, "...");
            break;
        }
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'')
            dst[o++] = (char)c;
        else
            o += (size_t)snprintf(dst + o, cap - o, "\\x%02x", c);
        dst[o] = 0;
    }
    return dst;
}

static int check_proto(const char *p, size_t i, ringp2p_errinfo *ei)
{
    if (p == NULL) return rp_err(ei, RINGP2P_EINVAL, "protocol %zu is NULL", i);
    size_t n = strnlen(p, RP_MSS_PROTO_MAX + 1);
    if (n == 0) return rp_err(ei, RINGP2P_EINVAL, "protocol %zu is empty", i);
    if (n > RP_MSS_PROTO_MAX)
        return rp_err(ei, RINGP2P_EINVAL, "protocol %zu is longer than %d bytes", i,
                      RP_MSS_PROTO_MAX);
    /* These would be read as multistream's own messages, not as a protocol. */
    if (msg_is(p, n, RP_MSS_NA) || msg_is(p, n, RP_MSS_LS) || msg_is(p, n, RP_MSS_PROTOCOL_ID))
        return rp_err(ei, RINGP2P_EINVAL, "protocol %zu '%s' is reserved by multistream-select", i,
                      p);
    return 0;
}

static void reset(rp_mss *m, uint8_t role)
{
    memset(m, 0, offsetof(rp_mss, line));
    m->line[0] = 0;
    m->role = role;
    m->phase = PH_HDR;
    m->agreed_idx = -1;
    m->out[m->nout++] = OP_HDR;
}

int rp_mss_init_dialer(rp_mss *m, const char *const *protos, size_t n, unsigned flags,
                       ringp2p_errinfo *ei)
{
    if (n == 0 || protos == NULL)
        return rp_err(ei, RINGP2P_EINVAL, "a dialer needs at least one protocol to propose");
    if (n > RP_MSS_MAX_ROUNDS)
        return rp_err(ei, RINGP2P_EINVAL, "%zu protocols exceed the limit of %d proposals", n,
                      RP_MSS_MAX_ROUNDS);
    if ((flags & ~(unsigned)RP_MSS_LAZY) != 0)
        return rp_err(ei, RINGP2P_EINVAL, "unknown flags 0x%x", flags);
    if ((flags & RP_MSS_LAZY) && n != 1)
        return rp_err(ei, RINGP2P_EINVAL, "lazy select takes exactly one protocol, not %zu", n);
    for (size_t i = 0; i < n; i++) RP_TRY(check_proto(protos[i], i, ei));

    reset(m, ROLE_DIALER);
    m->protos = protos;
    m->nprotos = n;
    if (flags & RP_MSS_LAZY) m->flags |= F_LAZY;
    /* Header and first proposal in one write (go SelectOneOf, js select). */
    m->out[m->nout++] = 0;
    return 0;
}

int rp_mss_request_ls(rp_mss *m, rp_mss_ls_fn fn, void *ctx)
{
    if (m->role != ROLE_DIALER || (m->flags & (F_LAZY | F_SENT | F_LS)) || fn == NULL ||
        m->phase != PH_HDR || m->nout == 0 || m->out[0] != OP_HDR)
        return RINGP2P_EINVAL;
    m->flags |= F_LS;
    m->on_ls = fn;
    m->ctx = ctx;
    /* "ls" goes between the header and the first proposal (multistream-select README). */
    memmove(m->out + 2, m->out + 1, m->nout - 1u);
    m->out[1] = OP_LS;
    m->nout++;
    return 0;
}

int rp_mss_init_ls_dialer(rp_mss *m, rp_mss_ls_fn fn, void *ctx)
{
    if (fn == NULL) return RINGP2P_EINVAL;
    reset(m, ROLE_DIALER);
    m->flags = F_LS;
    m->on_ls = fn;
    m->ctx = ctx;
    m->out[m->nout++] = OP_LS;
    return 0;
}

int rp_mss_init_listener(rp_mss *m, const char *const *protos, size_t n, rp_mss_match_fn match,
                         void *ctx, ringp2p_errinfo *ei)
{
    if (n == 0 && match == NULL)
        return rp_err(ei, RINGP2P_EINVAL, "a listener needs protocols or a match callback");
    if (n != 0 && protos == NULL) return rp_err(ei, RINGP2P_EINVAL, "protocol list is NULL");
    size_t ls_len = 1; /* the listing's final newline */
    for (size_t i = 0; i < n; i++) {
        RP_TRY(check_proto(protos[i], i, ei));
        ls_len += line_size(strlen(protos[i]));
        if (ls_len > RP_MSS_LS_MAX)
            return rp_err(ei, RINGP2P_EINVAL, "the listing of %zu protocols exceeds %d bytes", n,
                          RP_MSS_LS_MAX);
    }
    reset(m, ROLE_LISTENER);
    m->protos = protos;
    m->nprotos = n;
    m->match = match;
    m->ctx = ctx;
    m->ls_len = ls_len;
    return 0;
}

static int fail(rp_mss *m, int code)
{
    /* Answers already queued stay sendable: the peer then sees "na" before the close. */
    m->phase = PH_FAILED;
    m->err = code;
    return code;
}

static int enqueue(rp_mss *m, uint8_t op, ringp2p_errinfo *ei)
{
    /* Cannot fill up: rounds and preference lists are bounded to fit. */
    if (m->nout >= sizeof(m->out))
        return rp_err(ei, RINGP2P_ELIMIT, "multistream output queue is full");
    m->out[m->nout++] = op;
    return 0;
}

static void read_reset(rp_mss *m)
{
    m->rd_val = 0;
    m->rd_vbytes = 0;
    m->rd_body = 0;
}

/*
 * Reads a length prefix incrementally. Returns 1 with the length in rd_val
 * (then rd_body is set), 0 when the input ran out first, or an error. The
 * checks and their order match rp_mss_decode_line.
 */
static int read_len(rp_mss *m, const uint8_t **src, const uint8_t *end, uint64_t max,
                    ringp2p_errinfo *ei)
{
    const uint8_t *p = *src;
    while (p < end) {
        uint8_t b = *p++;
        unsigned i = m->rd_vbytes++;
        m->rd_val |= (uint64_t)(b & 0x7f) << (7 * i);
        if (b & 0x80) {
            if (m->rd_vbytes == RP_UVARINT_MAX_LEN) {
                *src = p;
                return rp_err(ei, RINGP2P_EVARINT, "message length prefix is longer than %d bytes",
                              RP_UVARINT_MAX_LEN);
            }
            continue;
        }
        *src = p;
        if (b == 0 && i != 0)
            return rp_err(ei, RINGP2P_EVARINT, "message length prefix is not minimally encoded");
        if (m->rd_val == 0)
            return rp_err(ei, RINGP2P_EPROTOCOL, "zero-length message (no newline)");
        if (m->rd_val > max)
            return rp_err(ei, RINGP2P_ELIMIT, "message of %llu bytes exceeds the limit of %llu",
                          (unsigned long long)m->rd_val, (unsigned long long)max);
        m->rd_body = 1;
        m->rd_have = 0;
        return 1;
    }
    *src = p;
    return 0;
}

/* Reads the payload announced by read_len into line[]; 1 when whole and newline-terminated. */
static int read_body(rp_mss *m, const uint8_t **src, const uint8_t *end, ringp2p_errinfo *ei)
{
    size_t want = (size_t)m->rd_val - m->rd_have;
    size_t avail = (size_t)(end - *src);
    size_t n = avail < want ? avail : want;
    memcpy(m->line + m->rd_have, *src, n);
    *src += n;
    m->rd_have += (uint32_t)n;
    if (m->rd_have < m->rd_val) return 0;
    if (m->line[m->rd_have - 1] != '\n')
        return rp_err(ei, RINGP2P_EPROTOCOL, "message of %u bytes does not end with a newline",
                      m->rd_have);
    m->line[m->rd_have - 1] = 0;
    read_reset(m);
    return 1;
}

/* One whole message into line[] (NUL-terminated, *len bytes without the newline). */
static int read_msg(rp_mss *m, const uint8_t **src, const uint8_t *end, size_t *len,
                    ringp2p_errinfo *ei)
{
    if (!m->rd_body) {
        int r = read_len(m, src, end, RP_MSS_MSG_MAX, ei);
        if (r <= 0) return r;
    }
    int r = read_body(m, src, end, ei);
    if (r == 1) *len = m->rd_have - 1u;
    return r;
}

/* idx < 0: the protocol is the message in line[] (kept there, not pointed to, so m may move). */
static void agree(rp_mss *m, size_t len, int idx)
{
    if (idx < 0) m->flags |= F_AGREED_LINE;
    m->agreed_len = len;
    m->agreed_idx = idx;
    m->phase = PH_DONE;
}

static const char *agreed(const rp_mss *m)
{
    if (m->agreed_idx >= 0) return m->protos[m->agreed_idx];
    return (m->flags & F_AGREED_LINE) ? m->line : NULL;
}

/* The listing is over (or refused): go on with the proposals, if any. */
static void ls_finished(rp_mss *m)
{
    m->flags |= F_LS_DONE;
    if (m->nprotos == 0)
        m->phase = PH_DONE;
    else
        m->phase = PH_RESP;
}

/*
 * Listing entries: each a message of its own inside the listing's length,
 * which ends with one bare newline (multistream-select README, "ls example in
 * detail"). Never reads past the listing.
 */
static int ls_entries(rp_mss *m, const uint8_t **src, const uint8_t *end, ringp2p_errinfo *ei)
{
    while (m->phase == PH_LS_ENTRY) {
        if (m->ls_rem == 1 && !m->rd_body && m->rd_vbytes == 0) {
            if (*src == end) return 0;
            if (**src != '\n')
                return rp_err(ei, RINGP2P_EPROTOCOL,
                              "protocol listing does not end with a newline");
            (*src)++;
            m->ls_rem = 0;
            ls_finished(m);
            return 1;
        }
        const uint8_t *start = *src;
        const uint8_t *lim = (size_t)(end - start) > m->ls_rem ? start + m->ls_rem : end;
        int r;
        if (!m->rd_body) {
            r = read_len(m, src, lim, RP_MSS_MSG_MAX, ei);
            m->ls_rem -= (uint32_t)(*src - start);
            if (r < 0) return r;
            if (r == 0) {
                if (m->ls_rem == 0)
                    return rp_err(ei, RINGP2P_EPROTOCOL,
                                  "protocol listing ends inside an entry's length prefix");
                return 0;
            }
            if (m->rd_val >= m->ls_rem)
                return rp_err(ei, RINGP2P_EPROTOCOL,
                              "protocol listing entry of %llu bytes overruns the listing",
                              (unsigned long long)m->rd_val);
            continue;
        }
        r = read_body(m, src, lim, ei);
        m->ls_rem -= (uint32_t)(*src - start);
        if (r <= 0) return r;
        m->ls_count++;
        m->on_ls(m->ctx, m->line, m->rd_have - 1u);
    }
    return 1;
}

static int no_common_protocol(rp_mss *m, ringp2p_errinfo *ei)
{
    char list[200];
    size_t o = 0;
    list[0] = 0;
    for (size_t i = 0; i < m->nprotos && o < sizeof(list); i++) {
        int w = snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "", m->protos[i]);
        if (w < 0) break;
        o += (size_t)w;
    }
    if (o >= sizeof(list)) memcpy(list + sizeof(list) - 4, "...", 4);
    return rp_err(ei, RINGP2P_ENEGOTIATION, "no common protocol: the peer refused %s%s", list,
                  (m->flags & F_LAZY) ? " (lazy select)" : "");
}

static int on_header(rp_mss *m, size_t len, ringp2p_errinfo *ei)
{
    if (!msg_is(m->line, len, RP_MSS_PROTOCOL_ID)) {
        char q[200];
        return rp_err(ei, RINGP2P_EPROTOCOL, "header mismatch: expected '%s', peer sent '%s'",
                      RP_MSS_PROTOCOL_ID, quote(q, sizeof(q), m->line, len));
    }
    if (m->role == ROLE_LISTENER)
        m->phase = PH_REQ;
    else if (m->flags & F_LS)
        m->phase = PH_LS_LEN;
    else
        m->phase = PH_RESP;
    return 1;
}

static int on_response(rp_mss *m, size_t len, ringp2p_errinfo *ei)
{
    const char *want = m->protos[m->cur];
    if (msg_is(m->line, len, want)) {
        agree(m, len, (int)m->cur);
        return 1;
    }
    if (msg_is(m->line, len, RP_MSS_NA)) {
        if (++m->cur == m->nprotos) return no_common_protocol(m, ei);
        RP_TRY(enqueue(m, (uint8_t)m->cur, ei));
        return 1;
    }
    char q1[200], q2[200];
    return rp_err(ei, RINGP2P_EPROTOCOL,
                  "unexpected answer '%s' to proposal '%s' (expected it or 'na')",
                  quote(q1, sizeof(q1), m->line, len), quote(q2, sizeof(q2), want, strlen(want)));
}

static int on_request(rp_mss *m, size_t len, ringp2p_errinfo *ei)
{
    if (++m->cur > RP_MSS_MAX_ROUNDS)
        return rp_err(ei, RINGP2P_ELIMIT, "peer sent more than %d proposals without agreement",
                      RP_MSS_MAX_ROUNDS);
    if (msg_is(m->line, len, RP_MSS_LS)) {
        RP_TRY(enqueue(m, m->nprotos ? OP_LIST : OP_NA, ei));
        return 1;
    }
    for (size_t i = 0; i < m->nprotos; i++) {
        if (msg_is(m->line, len, m->protos[i])) {
            RP_TRY(enqueue(m, OP_ECHO, ei));
            agree(m, len, (int)i);
            return 1;
        }
    }
    if (m->match != NULL && !msg_is(m->line, len, RP_MSS_NA) && m->match(m->ctx, m->line, len)) {
        /* line[] is not overwritten again: reading stops at agreement. */
        RP_TRY(enqueue(m, OP_ECHO, ei));
        agree(m, len, -1);
        return 1;
    }
    RP_TRY(enqueue(m, OP_NA, ei));
    return 1;
}

/* Advances by one message (or part of one). 1: progress, 0: input exhausted, <0: error. */
static int step(rp_mss *m, const uint8_t **src, const uint8_t *end, ringp2p_errinfo *ei)
{
    size_t len = 0;
    int r;
    switch (m->phase) {
    case PH_HDR: r = read_msg(m, src, end, &len, ei); return r <= 0 ? r : on_header(m, len, ei);
    case PH_RESP: r = read_msg(m, src, end, &len, ei); return r <= 0 ? r : on_response(m, len, ei);
    case PH_REQ: r = read_msg(m, src, end, &len, ei); return r <= 0 ? r : on_request(m, len, ei);
    case PH_LS_LEN:
        r = read_len(m, src, end, RP_MSS_LS_MAX, ei);
        if (r <= 0) return r;
        if (m->rd_val == 3) {
            /* "na\n" and the one-entry listing "\x01\n\n" share this length. */
            m->phase = PH_LS_SMALL;
        } else {
            m->ls_rem = (uint32_t)m->rd_val;
            read_reset(m);
            m->phase = PH_LS_ENTRY;
        }
        return 1;
    case PH_LS_SMALL: {
        r = read_body(m, src, end, ei);
        if (r <= 0) return r;
        if (msg_is(m->line, 2, RP_MSS_NA)) {
            m->ls_count = RINGP2P_EUNSUPPORTED;
            ls_finished(m);
            return 1;
        }
        uint8_t tmp[3] = { (uint8_t)m->line[0], (uint8_t)m->line[1], '\n' };
        const uint8_t *q = tmp;
        m->ls_rem = 3;
        m->phase = PH_LS_ENTRY;
        r = ls_entries(m, &q, tmp + 3, ei);
        if (r < 0) return r;
        if (m->phase == PH_LS_ENTRY)
            return rp_err(ei, RINGP2P_EPROTOCOL, "malformed 3-byte protocol listing");
        return 1;
    }
    case PH_LS_ENTRY: return ls_entries(m, src, end, ei);
    default: return 0;
    }
}

ssize_t rp_mss_recv(rp_mss *m, const uint8_t *data, size_t len, ringp2p_errinfo *ei)
{
    if (m->phase == PH_FAILED)
        return rp_err(ei, m->err, "multistream negotiation already failed: %s",
                      ringp2p_strerror(m->err));
    if (len == 0) return 0;
    const uint8_t *p = data, *end = data + len;
    while (p < end && m->phase != PH_DONE) {
        int r = step(m, &p, end, ei);
        if (r < 0) return fail(m, r);
        if (r == 0) break;
    }
    return p - data;
}

static size_t op_size(const rp_mss *m, uint8_t op)
{
    switch (op) {
    case OP_HDR: return line_size(HDR_LEN);
    case OP_NA:
    case OP_LS: return line_size(2);
    case OP_LIST: return rp_uvarint_len(m->ls_len) + m->ls_len;
    case OP_ECHO: return line_size(m->agreed_len);
    default: return line_size(strlen(m->protos[op]));
    }
}

size_t rp_mss_pending(const rp_mss *m)
{
    size_t n = 0;
    for (unsigned i = 0; i < m->nout; i++) n += op_size(m, m->out[i]);
    return n;
}

static void put_op(const rp_mss *m, rp_wbuf *w, uint8_t op)
{
    switch (op) {
    case OP_HDR: put_line(w, RP_MSS_PROTOCOL_ID, HDR_LEN); break;
    case OP_NA: put_line(w, RP_MSS_NA, 2); break;
    case OP_LS: put_line(w, RP_MSS_LS, 2); break;
    case OP_LIST:
        rp_wbuf_uvarint(w, m->ls_len);
        for (size_t i = 0; i < m->nprotos; i++) put_line(w, m->protos[i], strlen(m->protos[i]));
        rp_wbuf_byte(w, '\n');
        break;
    case OP_ECHO: put_line(w, agreed(m), m->agreed_len); break;
    default: put_line(w, m->protos[op], strlen(m->protos[op])); break;
    }
}

ssize_t rp_mss_send(rp_mss *m, rp_wbuf *out)
{
    size_t n = rp_mss_pending(m);
    if (n == 0) return m->phase == PH_FAILED ? m->err : 0;
    if (out->len > out->cap || out->cap - out->len < n) return RINGP2P_ENOBUF;
    for (unsigned i = 0; i < m->nout; i++) put_op(m, out, m->out[i]);
    m->nout = 0;
    m->flags |= F_SENT;
    return (ssize_t)n;
}

rp_mss_state rp_mss_status(const rp_mss *m)
{
    if (m->phase == PH_DONE) return RP_MSS_DONE;
    if (m->phase == PH_FAILED) return RP_MSS_FAILED;
    return RP_MSS_IN_PROGRESS;
}

int rp_mss_error(const rp_mss *m)
{
    return m->phase == PH_FAILED ? m->err : 0;
}

bool rp_mss_may_write(const rp_mss *m)
{
    if (m->phase == PH_FAILED || m->nout != 0) return false;
    return m->phase == PH_DONE || ((m->flags & F_LAZY) && (m->flags & F_SENT));
}

const char *rp_mss_protocol(const rp_mss *m, size_t *len)
{
    const char *p = m->phase == PH_DONE ? agreed(m) : NULL;
    if (p != NULL && len != NULL) *len = m->agreed_len;
    return p;
}

int rp_mss_protocol_index(const rp_mss *m)
{
    return m->phase == PH_DONE ? m->agreed_idx : -1;
}

ssize_t rp_mss_ls_count(const rp_mss *m)
{
    if (!(m->flags & F_LS)) return RINGP2P_EINVAL;
    if (!(m->flags & F_LS_DONE)) return RINGP2P_EAGAIN;
    return m->ls_count;
}

ssize_t rp_mss_encode_line(const void *msg, size_t len, uint8_t *dst, size_t cap)
{
    if (len > RP_MSS_PROTO_MAX) return RINGP2P_EINVAL;
    rp_wbuf w = rp_wbuf_make(dst, cap);
    put_line(&w, msg, len);
    return rp_wbuf_result(&w);
}

int rp_mss_decode_line(const uint8_t **src, const uint8_t *end, const uint8_t **msg, size_t *len,
                       ringp2p_errinfo *ei)
{
    const uint8_t *p = *src;
    uint64_t n;
    int r = rp_uvarint_decode(&p, end, &n);
    if (r == RINGP2P_ETRUNCATED) return rp_err(ei, r, "input ends inside a message length prefix");
    if (r < 0)
        return rp_err(ei, RINGP2P_EVARINT,
                      "message length prefix is not minimally encoded or longer than %d bytes",
                      RP_UVARINT_MAX_LEN);
    if (n == 0) return rp_err(ei, RINGP2P_EPROTOCOL, "zero-length message (no newline)");
    if (n > RP_MSS_MSG_MAX)
        return rp_err(ei, RINGP2P_ELIMIT, "message of %llu bytes exceeds the limit of %d",
                      (unsigned long long)n, RP_MSS_MSG_MAX);
    if ((uint64_t)(end - p) < n)
        return rp_err(ei, RINGP2P_ETRUNCATED, "input ends inside a message of %llu bytes",
                      (unsigned long long)n);
    if (p[n - 1] != '\n')
        return rp_err(ei, RINGP2P_EPROTOCOL, "message of %llu bytes does not end with a newline",
                      (unsigned long long)n);
    *msg = p;
    *len = (size_t)n - 1;
    *src = p + n;
    return 0;
}
