#include "protocols/autonat.h"

#include <string.h>

#include "base/error.h"
#include "base/pb.h"
#include "base/varint.h"
#include "multiformats/multiaddr.h"

_Static_assert(RP_AUTONAT_MSG_MAX < (1 << 14), "messages take at most a 2-byte length prefix");
_Static_assert(RP_AUTONAT_OWN_MSG_MAX <= RP_AUTONAT_MSG_MAX, "we must read what we write");

/* ---- Messages -------------------------------------------------------------------------------- */

void rp_autonat_msg_init(rp_autonat_msg *m)
{
    m->has_type = m->has_dial = m->has_peer = m->has_response = m->has_status = false;
    m->type = RP_AUTONAT_DIAL;
    m->status = RP_AUTONAT_OK;
    m->peer_id = m->status_text = m->addr = rp_iov_make(NULL, 0);
    m->n_addrs = m->n_addrs_skipped = 0;
}

static int decode_peer(const uint8_t *p, const uint8_t *end, rp_autonat_msg *m, ringp2p_errinfo *ei)
{
    static const char what[] = "AutoNAT PeerInfo";
    const uint8_t *start = p;
    while (p < end) {
        rp_pb_field f;
        RP_TRY(rp_pb_next(&p, end, start, what, &f, ei));
        if (f.num == RP_AUTONAT_FIELD_PEER_ID) {
            if (f.wt != RP_PB_LEN) return rp_pb_wrong_type(what, "id", &f, ei);
            m->peer_id = f.body;
        } else if (f.num == RP_AUTONAT_FIELD_PEER_ADDRS) {
            if (f.wt != RP_PB_LEN) return rp_pb_wrong_type(what, "addrs", &f, ei);
            /*
             * Every copy of PeerInfo (and of Dial) decodes into the same m, so
             * addresses append in wire order across copies, as protobuf merges
             * them (go, protobuf-c). Past RP_AUTONAT_ADDRS_MAX they are only
             * counted: go's server scans all of them for up to 16 usable ones,
             * so a request whose first 64 are all unusable is refused here
             * where go could still dial a later one.
             */
            if (m->n_addrs < RP_AUTONAT_ADDRS_MAX)
                m->addrs[m->n_addrs++] = f.body;
            else
                m->n_addrs_skipped++;
        }
    }
    return 0;
}

static int decode_dial(const uint8_t *p, const uint8_t *end, rp_autonat_msg *m, ringp2p_errinfo *ei)
{
    static const char what[] = "AutoNAT Dial";
    const uint8_t *start = p;
    m->has_dial = true;
    while (p < end) {
        rp_pb_field f;
        RP_TRY(rp_pb_next(&p, end, start, what, &f, ei));
        if (f.num != RP_AUTONAT_FIELD_DIAL_PEER) continue;
        if (f.wt != RP_PB_LEN) return rp_pb_wrong_type(what, "peer", &f, ei);
        m->has_peer = true; /* a repeated embedded message merges into the first */
        const uint8_t *b = f.body.base;
        RP_TRY(decode_peer(b, b + f.body.len, m, ei));
    }
    return 0;
}

static int decode_response(const uint8_t *p, const uint8_t *end, rp_autonat_msg *m,
                           ringp2p_errinfo *ei)
{
    static const char what[] = "AutoNAT DialResponse";
    const uint8_t *start = p;
    m->has_response = true;
    while (p < end) {
        rp_pb_field f;
        RP_TRY(rp_pb_next(&p, end, start, what, &f, ei));
        switch (f.num) {
        case RP_AUTONAT_FIELD_STATUS:
            if (f.wt != RP_PB_VARINT) return rp_pb_wrong_type(what, "status", &f, ei);
            m->has_status = true;
            m->status = f.value;
            break;
        case RP_AUTONAT_FIELD_STATUS_TEXT:
            if (f.wt != RP_PB_LEN) return rp_pb_wrong_type(what, "statusText", &f, ei);
            m->status_text = f.body;
            break;
        case RP_AUTONAT_FIELD_ADDR:
            if (f.wt != RP_PB_LEN) return rp_pb_wrong_type(what, "addr", &f, ei);
            m->addr = f.body;
            break;
        default: break;
        }
    }
    return 0;
}

static int decode_message(const uint8_t *p, const uint8_t *end, rp_autonat_msg *m,
                          ringp2p_errinfo *ei)
{
    static const char what[] = "AutoNAT Message";
    const uint8_t *start = p;
    while (p < end) {
        rp_pb_field f;
        RP_TRY(rp_pb_next(&p, end, start, what, &f, ei));
        const uint8_t *b = f.body.base;
        switch (f.num) {
        case RP_AUTONAT_FIELD_TYPE:
            if (f.wt != RP_PB_VARINT) return rp_pb_wrong_type(what, "type", &f, ei);
            m->has_type = true;
            m->type = f.value;
            break;
        case RP_AUTONAT_FIELD_DIAL:
            if (f.wt != RP_PB_LEN) return rp_pb_wrong_type(what, "dial", &f, ei);
            RP_TRY(decode_dial(b, b + f.body.len, m, ei));
            break;
        case RP_AUTONAT_FIELD_DIAL_RESPONSE:
            if (f.wt != RP_PB_LEN) return rp_pb_wrong_type(what, "dialResponse", &f, ei);
            RP_TRY(decode_response(b, b + f.body.len, m, ei));
            break;
        default: break; /* unknown: skipped, as protobuf says */
        }
    }
    return 0;
}

int rp_autonat_msg_decode(const uint8_t **src, const uint8_t *end, rp_autonat_msg *m,
                          ringp2p_errinfo *ei)
{
    if ((size_t)(end - *src) > RP_AUTONAT_MSG_MAX)
        return rp_err(ei, RINGP2P_ELIMIT, "AutoNAT message of %td bytes is over the limit of %d",
                      end - *src, RP_AUTONAT_MSG_MAX);
    rp_autonat_msg tmp = *m; /* failures leave *m as it was */
    RP_TRY(decode_message(*src, end, &tmp, ei));
    *m = tmp;
    *src = end;
    return 0;
}

static size_t peer_len(const rp_autonat_msg *m)
{
    size_t n =
        m->peer_id.base != NULL ? rp_pb_bytes_len(RP_AUTONAT_FIELD_PEER_ID, m->peer_id.len) : 0;
    for (size_t i = 0; i < m->n_addrs; i++)
        n += rp_pb_bytes_len(RP_AUTONAT_FIELD_PEER_ADDRS, m->addrs[i].len);
    return n;
}

static size_t dial_len(const rp_autonat_msg *m)
{
    return m->has_peer ? rp_pb_bytes_len(RP_AUTONAT_FIELD_DIAL_PEER, peer_len(m)) : 0;
}

static size_t response_len(const rp_autonat_msg *m)
{
    size_t n = 0;
    if (m->has_status) n += 1 + rp_pb_varint_len(m->status);
    if (m->status_text.base != NULL)
        n += rp_pb_bytes_len(RP_AUTONAT_FIELD_STATUS_TEXT, m->status_text.len);
    if (m->addr.base != NULL) n += rp_pb_bytes_len(RP_AUTONAT_FIELD_ADDR, m->addr.len);
    return n;
}

static void put_tag_len(rp_wbuf *w, uint32_t num, size_t len)
{
    rp_pb_put_raw_varint(w, (uint64_t)num << 3 | RP_PB_LEN);
    rp_pb_put_raw_varint(w, len);
}

static void put_bytes_opt(rp_wbuf *w, uint32_t num, const rp_iov *v)
{
    if (v->base != NULL) rp_pb_put_bytes(w, num, v->base, v->len);
}

ssize_t rp_autonat_msg_encode(const rp_autonat_msg *m, uint8_t *dst, size_t cap)
{
    rp_wbuf w = rp_wbuf_make(dst, cap);
    if (m->has_type) rp_pb_put_varint(&w, RP_AUTONAT_FIELD_TYPE, m->type);
    if (m->has_dial) {
        put_tag_len(&w, RP_AUTONAT_FIELD_DIAL, dial_len(m));
        if (m->has_peer) {
            put_tag_len(&w, RP_AUTONAT_FIELD_DIAL_PEER, peer_len(m));
            put_bytes_opt(&w, RP_AUTONAT_FIELD_PEER_ID, &m->peer_id);
            for (size_t i = 0; i < m->n_addrs; i++)
                rp_pb_put_bytes(&w, RP_AUTONAT_FIELD_PEER_ADDRS, m->addrs[i].base, m->addrs[i].len);
        }
    }
    if (m->has_response) {
        put_tag_len(&w, RP_AUTONAT_FIELD_DIAL_RESPONSE, response_len(m));
        if (m->has_status) rp_pb_put_varint(&w, RP_AUTONAT_FIELD_STATUS, m->status);
        put_bytes_opt(&w, RP_AUTONAT_FIELD_STATUS_TEXT, &m->status_text);
        put_bytes_opt(&w, RP_AUTONAT_FIELD_ADDR, &m->addr);
    }
    if (dst == NULL && cap == 0) return (ssize_t)w.len;
    return rp_wbuf_result(&w);
}

int rp_autonat_read_frame(const uint8_t **src, const uint8_t *end, rp_autonat_msg *m,
                          ringp2p_errinfo *ei)
{
    const uint8_t *p = *src;
    uint64_t len;
    int r = rp_uvarint_decode(&p, end, &len);
    if (r == RINGP2P_ETRUNCATED) return 0;
    if (r < 0) return rp_err(ei, RINGP2P_EVARINT, "autonat: malformed length prefix");
    if (len > RP_AUTONAT_MSG_MAX)
        return rp_err(ei, RINGP2P_ELIMIT, "autonat: message announces %llu bytes, the limit is %d",
                      (unsigned long long)len, RP_AUTONAT_MSG_MAX);
    if ((uint64_t)(end - p) < len) return 0;
    rp_autonat_msg tmp;
    rp_autonat_msg_init(&tmp);
    const uint8_t *q = p;
    RP_TRY(rp_autonat_msg_decode(&q, p + len, &tmp, ei));
    *m = tmp;
    *src = p + len;
    return 1;
}

/* Writes prefix + body of m into dst[cap], refusing bodies over our own limit. */
static ssize_t write_framed(const rp_autonat_msg *m, uint8_t *dst, size_t cap, ringp2p_errinfo *ei)
{
    size_t need = (size_t)rp_autonat_msg_encode(m, NULL, 0);
    if (need > RP_AUTONAT_OWN_MSG_MAX)
        return rp_err(ei, RINGP2P_ELIMIT,
                      "autonat: a message of %zu bytes is over the %d bytes go-libp2p reads", need,
                      RP_AUTONAT_OWN_MSG_MAX);
    rp_wbuf w = rp_wbuf_make(dst, cap);
    rp_wbuf_uvarint(&w, need);
    size_t pl = w.len;
    if (dst == NULL && cap == 0) return (ssize_t)(pl + need);
    if (cap < pl + need)
        return rp_err(ei, RINGP2P_ENOBUF, "autonat: %zu bytes needed, %zu given", pl + need, cap);
    rp_autonat_msg_encode(m, dst + pl, cap - pl);
    return (ssize_t)(pl + need);
}

ssize_t rp_autonat_write_dial(const ringp2p_peer_id *self, const rp_iov *addrs, size_t n,
                              uint8_t *dst, size_t cap, ringp2p_errinfo *ei)
{
    rp_autonat_msg m;
    rp_autonat_msg_init(&m);
    if (n > RP_AUTONAT_ADDRS_MAX)
        return rp_err(ei, RINGP2P_ELIMIT, "autonat: %zu addresses, at most %d per request", n,
                      RP_AUTONAT_ADDRS_MAX);
    if (self == NULL || self->len == 0) return rp_err(ei, RINGP2P_EINVAL, "autonat: no peer ID");
    for (size_t i = 0; i < n; i++) {
        if (addrs[i].len == 0 || rp_maddr_validate(addrs[i].base, addrs[i].len, NULL) < 0)
            return rp_err(ei, RINGP2P_EINVAL, "autonat: address %zu is not a valid multiaddr", i);
        m.addrs[i] = addrs[i];
    }
    m.has_type = m.has_dial = m.has_peer = true;
    m.type = RP_AUTONAT_DIAL;
    m.peer_id = rp_iov_make(self->bytes, self->len);
    m.n_addrs = n;
    return write_framed(&m, dst, cap, ei);
}

ssize_t rp_autonat_write_response(uint32_t status, const char *text, const uint8_t *addr,
                                  size_t addr_len, uint8_t *dst, size_t cap, ringp2p_errinfo *ei)
{
    rp_autonat_msg m;
    rp_autonat_msg_init(&m);
    if (addr != NULL && (addr_len == 0 || rp_maddr_validate(addr, addr_len, NULL) < 0))
        return rp_err(ei, RINGP2P_EINVAL, "autonat: the dialed address is not a valid multiaddr");
    m.has_type = m.has_response = m.has_status = true;
    m.type = RP_AUTONAT_DIAL_RESPONSE;
    m.status = status;
    if (addr != NULL) m.addr = rp_iov_make(addr, addr_len);
    if (text != NULL) {
        /* Room for everything else: type 2, dialResponse 3, status 3, addr 3 + len, text 3. */
        size_t room = RP_AUTONAT_OWN_MSG_MAX - 14 - (addr != NULL ? addr_len : 0);
        size_t tl = strlen(text);
        m.status_text = rp_iov_make(text, tl < room ? tl : room);
    }
    return write_framed(&m, dst, cap, ei);
}

const char *rp_autonat_status_name(uint64_t status)
{
    switch (status) {
    case RP_AUTONAT_OK: return "OK";
    case RP_AUTONAT_E_DIAL_ERROR: return "E_DIAL_ERROR";
    case RP_AUTONAT_E_DIAL_REFUSED: return "E_DIAL_REFUSED";
    case RP_AUTONAT_E_BAD_REQUEST: return "E_BAD_REQUEST";
    case RP_AUTONAT_E_INTERNAL_ERROR: return "E_INTERNAL_ERROR";
    default: return "unknown";
    }
}

/* ---- Server ---------------------------------------------------------------------------------- */

void rp_autonat_server_config_default(rp_autonat_server_config *cfg)
{
    *cfg = (rp_autonat_server_config){
        .peer_max = RP_AUTONAT_SERVER_PEER_MAX,
        .global_max = RP_AUTONAT_SERVER_GLOBAL_MAX,
        .window_ns = RP_AUTONAT_SERVER_WINDOW_NS,
        .jitter_ns = RP_AUTONAT_SERVER_JITTER_NS,
        .seed = 0,
        .max_addrs = RP_AUTONAT_SERVER_DIAL_ADDRS,
        .dial_timeout_ns = RP_AUTONAT_SERVER_DIAL_TIMEOUT,
        .allow_private = false,
        .allow_self = false,
    };
}

void rp_autonat_server_init(rp_autonat_server *s, const rp_autonat_server_config *cfg)
{
    if (cfg != NULL)
        s->cfg = *cfg;
    else
        rp_autonat_server_config_default(&s->cfg);
    if (s->cfg.max_addrs == 0 || s->cfg.max_addrs > RP_AUTONAT_SERVER_DIAL_ADDRS)
        s->cfg.max_addrs = RP_AUTONAT_SERVER_DIAL_ADDRS;
    s->window_end_ns = 0;
    s->rng = s->cfg.seed != 0 ? s->cfg.seed : UINT64_C(0x9e3779b97f4a7c15);
    s->global_count = 0;
    s->n_peers = 0;
}

/* xorshift64*: jitter only needs to differ between nodes, not to be unpredictable. */
static uint64_t next_rand(uint64_t *st)
{
    uint64_t x = *st;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *st = x;
    return x * UINT64_C(0x2545f4914f6cdd1d);
}

static void refuse(rp_autonat_decision *d, uint32_t status, const char *text)
{
    d->status = status;
    d->text = text;
    d->n_addrs = 0;
}

/* Counts a dial-back for d->peer; false (and refuses) when over a limit. */
static bool admit(rp_autonat_server *s, rp_autonat_decision *d, uint64_t now_ns)
{
    if (s->window_end_ns == 0 || now_ns >= s->window_end_ns) {
        uint64_t jitter = s->cfg.jitter_ns != 0 ? next_rand(&s->rng) % (s->cfg.jitter_ns + 1) : 0;
        s->window_end_ns = now_ns + s->cfg.window_ns + jitter;
        if (s->window_end_ns <= now_ns) s->window_end_ns = UINT64_MAX; /* overflow */
        s->global_count = 0;
        s->n_peers = 0;
    }
    rp_autonat_server_peer *e = NULL;
    for (size_t i = 0; i < s->n_peers && e == NULL; i++)
        if (ringp2p_peer_id_equal(&s->peers[i].id, &d->peer)) e = &s->peers[i];
    if ((e != NULL && e->count >= s->cfg.peer_max) || (e == NULL && s->cfg.peer_max == 0) ||
        (s->cfg.global_max != 0 && s->global_count >= s->cfg.global_max) ||
        (e == NULL && s->n_peers == RP_AUTONAT_SERVER_PEERS_MAX)) {
        refuse(d, RP_AUTONAT_E_DIAL_REFUSED, "too many dials");
        return false;
    }
    if (e == NULL) {
        e = &s->peers[s->n_peers++];
        e->id = d->peer;
        e->count = 0;
    }
    e->count++;
    s->global_count++;
    return true;
}

int rp_autonat_server_handle(rp_autonat_server *s, const rp_autonat_msg *req,
                             const ringp2p_peer_id *remote, const uint8_t *remote_addr,
                             size_t remote_addr_len, const rp_iov *own, size_t n_own,
                             uint64_t now_ns, rp_autonat_decision *d, ringp2p_errinfo *ei)
{
    d->status = RP_AUTONAT_OK;
    d->text = NULL;
    d->peer = *remote;
    d->n_addrs = 0;
    d->deadline_ns = d->respond_at_ns = 0;
    if (req->type != RP_AUTONAT_DIAL)
        return rp_err(ei, RINGP2P_EPROTOCOL, "autonat: expected a DIAL request, got type %llu",
                      (unsigned long long)req->type);
    if (!req->has_dial || !req->has_peer) {
        refuse(d, RP_AUTONAT_E_BAD_REQUEST, "missing peer info");
        return 0;
    }
    if (req->peer_id.base != NULL) {
        ringp2p_peer_id id;
        if (ringp2p_peer_id_from_bytes(req->peer_id.base, req->peer_id.len, &id, NULL) < 0) {
            refuse(d, RP_AUTONAT_E_BAD_REQUEST, "bad peer id");
            return 0;
        }
        if (!ringp2p_peer_id_equal(&id, remote)) {
            refuse(d, RP_AUTONAT_E_BAD_REQUEST, "peer id mismatch");
            return 0;
        }
    }

    /* The requester as we see it: a relayed connection says nothing about its IP (spec MUST). */
    uint32_t obs_code;
    const uint8_t *obs_ip;
    if (rp_nataddr_is_relayed(remote_addr, remote_addr_len)) {
        refuse(d, RP_AUTONAT_E_DIAL_REFUSED, "refusing to dial peer with blocked observed address");
        return 0;
    }
    if (!rp_nataddr_ip_of(remote_addr, remote_addr_len, &obs_code, &obs_ip)) {
        refuse(d, RP_AUTONAT_E_INTERNAL_ERROR, "expected an IP address");
        return 0;
    }
    if (!rp_nataddr_scope_ok((int)rp_nataddr_ip_scope(obs_code, obs_ip), s->cfg.allow_private) ||
        (!s->cfg.allow_self && rp_nataddr_ip_in(remote_addr, remote_addr_len, own, n_own))) {
        refuse(d, RP_AUTONAT_E_DIAL_REFUSED, "refusing to dial peer with blocked observed address");
        return 0;
    }

    /* Dial back only what was asked, and only on the IP the request came from. */
    for (size_t i = 0; i < req->n_addrs && d->n_addrs < s->cfg.max_addrs; i++) {
        rp_nataddr a;
        uint32_t code;
        const uint8_t *ip;
        int scope = rp_nataddr_parse_tcp(req->addrs[i].base, req->addrs[i].len, remote, &a);
        if (!rp_nataddr_scope_ok(scope, s->cfg.allow_private)) continue;
        if (!rp_nataddr_ip_of(a.bytes, a.len, &code, &ip) ||
            !rp_nataddr_ip_equal(code, ip, obs_code, obs_ip))
            continue;
        if (rp_nataddr_find(d->addrs, d->n_addrs, &a) >= 0) continue;
        d->addrs[d->n_addrs++] = a;
    }
    if (d->n_addrs == 0) {
        refuse(d, RP_AUTONAT_E_DIAL_REFUSED, "no dialable addresses");
        return 0;
    }
    if (!admit(s, d, now_ns)) return 0;
    d->deadline_ns = d->respond_at_ns = now_ns + s->cfg.dial_timeout_ns;
    return 0;
}

ssize_t rp_autonat_server_respond(const rp_autonat_decision *d, int dial_result,
                                  const uint8_t *dialed, size_t dialed_len, uint8_t *dst,
                                  size_t cap, ringp2p_errinfo *ei)
{
    if (d->status != RP_AUTONAT_OK)
        return rp_autonat_write_response(d->status, d->text, NULL, 0, dst, cap, ei);
    if (dial_result == 0)
        return rp_autonat_write_response(RP_AUTONAT_OK, NULL, dialed, dialed_len, dst, cap, ei);
    return rp_autonat_write_response(RP_AUTONAT_E_DIAL_ERROR, "dial failed", NULL, 0, dst, cap, ei);
}

/* ---- Client ---------------------------------------------------------------------------------- */

const char *rp_autonat_reachability_name(rp_autonat_reachability r)
{
    switch (r) {
    case RP_AUTONAT_PUBLIC: return "public";
    case RP_AUTONAT_PRIVATE: return "private";
    default: return "unknown";
    }
}

rp_autonat_observation rp_autonat_response_observation(const rp_autonat_msg *resp, rp_iov *addr)
{
    if (addr != NULL) *addr = rp_iov_make(NULL, 0);
    if (resp->type != RP_AUTONAT_DIAL_RESPONSE || !resp->has_response) return RP_AUTONAT_OBS_ERROR;
    switch (resp->status) {
    case RP_AUTONAT_OK:
        if (addr != NULL && resp->addr.base != NULL) *addr = resp->addr;
        return RP_AUTONAT_OBS_PUBLIC;
    case RP_AUTONAT_E_DIAL_ERROR: return RP_AUTONAT_OBS_PRIVATE;
    case RP_AUTONAT_E_DIAL_REFUSED: return RP_AUTONAT_OBS_REFUSED;
    default: return RP_AUTONAT_OBS_ERROR;
    }
}

void rp_autonat_client_config_default(rp_autonat_client_config *cfg)
{
    *cfg = (rp_autonat_client_config){
        .max_confidence = RP_AUTONAT_MAX_CONFIDENCE,
        .boot_delay_ns = RP_AUTONAT_BOOT_DELAY_NS,
        .retry_ns = RP_AUTONAT_RETRY_NS,
        .refresh_ns = RP_AUTONAT_REFRESH_NS,
        .force_retry_ns = RP_AUTONAT_FORCE_RETRY_NS,
        .request_timeout_ns = RP_AUTONAT_REQUEST_TIMEOUT,
        .peer_throttle_ns = RP_AUTONAT_PEER_THROTTLE_NS,
        .pending_max = RP_AUTONAT_PENDING_MAX,
        .allow_private = false,
    };
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* go scheduleProbe, run after every event. */
static void schedule(rp_autonat_client *c, uint64_t now_ns)
{
    if (!c->probed) {
        /* go's lastProbe is the zero time until the first probe, so an early server probes now. */
        c->next_probe_ns = c->force ? now_ns : c->boot_end_ns;
        return;
    }
    uint64_t after = c->cfg.refresh_ns;
    bool inbound = c->inbound_seen && c->last_inbound_ns > c->last_probe_ns;
    if (c->force && c->status == RP_AUTONAT_UNKNOWN)
        after = c->cfg.force_retry_ns;
    else if (c->status == RP_AUTONAT_UNKNOWN || c->confidence < c->cfg.max_confidence ||
             (c->status != RP_AUTONAT_PUBLIC && inbound))
        after = c->cfg.retry_ns;
    else if (c->status == RP_AUTONAT_PUBLIC && inbound) {
        after = add_sat(after, after);
        if (after > RP_AUTONAT_MAX_REFRESH_NS) after = RP_AUTONAT_MAX_REFRESH_NS;
    }
    uint64_t t = add_sat(c->last_probe_ns, after);
    c->next_probe_ns = t < now_ns ? now_ns : t;
}

void rp_autonat_client_init(rp_autonat_client *c, const rp_autonat_client_config *cfg,
                            uint64_t now_ns)
{
    if (cfg != NULL)
        c->cfg = *cfg;
    else
        rp_autonat_client_config_default(&c->cfg);
    if (c->cfg.pending_max == 0) c->cfg.pending_max = 1;
    c->status = RP_AUTONAT_UNKNOWN;
    c->confidence = 0;
    c->probed = c->force = c->inbound_seen = false;
    c->boot_end_ns = add_sat(now_ns, c->cfg.boot_delay_ns);
    c->last_probe_ns = c->last_inbound_ns = 0;
    c->pending = 0;
    c->n_recent = 0;
    schedule(c, now_ns);
}

rp_autonat_reachability rp_autonat_client_status(const rp_autonat_client *c)
{
    return c->status;
}

uint64_t rp_autonat_client_next_probe(const rp_autonat_client *c)
{
    return c->next_probe_ns;
}

static const rp_autonat_recent *find_recent(const rp_autonat_client *c, const ringp2p_peer_id *p)
{
    for (size_t i = 0; i < c->n_recent; i++)
        if (ringp2p_peer_id_equal(&c->recent[i].id, p)) return &c->recent[i];
    return NULL;
}

bool rp_autonat_client_server_ok(const rp_autonat_client *c, const ringp2p_peer_id *server,
                                 const rp_iov *addrs, size_t n, const rp_iov *own, size_t n_own,
                                 uint64_t now_ns)
{
    if (c->pending >= c->cfg.pending_max) return false;
    const rp_autonat_recent *r = find_recent(c, server);
    if (r != NULL && now_ns - r->at_ns < c->cfg.peer_throttle_ns) return false;
    bool good = false;
    for (size_t i = 0; i < n; i++) {
        uint32_t code;
        const uint8_t *ip;
        if (rp_nataddr_is_relayed(addrs[i].base, addrs[i].len) ||
            !rp_nataddr_ip_of(addrs[i].base, addrs[i].len, &code, &ip))
            continue;
        rp_nataddr_scope scope = rp_nataddr_ip_scope(code, ip);
        if (scope == RP_NATADDR_PUBLIC) {
            /* One of our own public IPs: asking ourselves proves nothing (go skipPeer). */
            if (rp_nataddr_ip_in(addrs[i].base, addrs[i].len, own, n_own)) return false;
            good = true;
        } else if (rp_nataddr_scope_ok((int)scope, c->cfg.allow_private)) {
            good = true;
        }
    }
    return good;
}

bool rp_autonat_client_tick(rp_autonat_client *c, uint64_t now_ns)
{
    if (now_ns < c->next_probe_ns) return false;
    c->probed = true;
    c->force = false;
    c->last_probe_ns = now_ns;
    schedule(c, now_ns);
    return true;
}

void rp_autonat_client_probe_started(rp_autonat_client *c, const ringp2p_peer_id *server,
                                     uint64_t now_ns)
{
    c->pending++;
    rp_autonat_recent *slot = (rp_autonat_recent *)find_recent(c, server);
    if (slot == NULL) {
        /* Forget servers asked longer ago than the throttle; if still full, the oldest. */
        size_t k = 0;
        for (size_t i = 0; i < c->n_recent; i++)
            if (now_ns - c->recent[i].at_ns < c->cfg.peer_throttle_ns)
                c->recent[k++] = c->recent[i];
        c->n_recent = k;
        if (c->n_recent == RP_AUTONAT_CLIENT_RECENT_MAX) {
            size_t oldest = 0;
            for (size_t i = 1; i < c->n_recent; i++)
                if (c->recent[i].at_ns < c->recent[oldest].at_ns) oldest = i;
            c->recent[oldest] = c->recent[--c->n_recent];
        }
        slot = &c->recent[c->n_recent++];
        slot->id = *server;
    }
    slot->at_ns = now_ns;
}

/* go recordObservation. Returns 1 when the status changed. */
static int record(rp_autonat_client *c, rp_autonat_observation obs)
{
    rp_autonat_reachability cur = c->status;
    switch (obs) {
    case RP_AUTONAT_OBS_PUBLIC:
        if (cur != RP_AUTONAT_PUBLIC) {
            c->status = RP_AUTONAT_PUBLIC;
            c->confidence = 0;
            return 1;
        }
        if (c->confidence < c->cfg.max_confidence) c->confidence++;
        return 0;
    case RP_AUTONAT_OBS_PRIVATE:
        if (cur == RP_AUTONAT_PRIVATE) {
            if (c->confidence < c->cfg.max_confidence) c->confidence++;
            return 0;
        }
        if (c->confidence > 0) {
            c->confidence--;
            return 0;
        }
        c->status = RP_AUTONAT_PRIVATE;
        return 1;
    case RP_AUTONAT_OBS_ERROR:
        if (c->confidence > 0) {
            c->confidence--;
            return 0;
        }
        c->status = RP_AUTONAT_UNKNOWN;
        return cur != RP_AUTONAT_UNKNOWN;
    case RP_AUTONAT_OBS_REFUSED: break;
    }
    return 0;
}

int rp_autonat_client_probe_done(rp_autonat_client *c, const ringp2p_peer_id *server,
                                 rp_autonat_observation obs, uint64_t now_ns)
{
    (void)server;
    if (c->pending > 0) c->pending--;
    int changed = 0;
    if (obs == RP_AUTONAT_OBS_REFUSED)
        c->force = true; /* go: a refusal only makes the next probe come sooner */
    else
        changed = record(c, obs);
    schedule(c, now_ns);
    return changed;
}

void rp_autonat_client_server_appeared(rp_autonat_client *c, uint64_t now_ns)
{
    c->force = true;
    schedule(c, now_ns);
}

void rp_autonat_client_inbound(rp_autonat_client *c, const uint8_t *remote_addr, size_t len,
                               const rp_iov *own, size_t n_own, uint64_t now_ns)
{
    uint32_t code;
    const uint8_t *ip;
    if (!rp_nataddr_is_relayed(remote_addr, len) &&
        rp_nataddr_ip_of(remote_addr, len, &code, &ip) &&
        rp_nataddr_scope_ok((int)rp_nataddr_ip_scope(code, ip), c->cfg.allow_private) &&
        !rp_nataddr_ip_in(remote_addr, len, own, n_own)) {
        c->inbound_seen = true;
        c->last_inbound_ns = now_ns;
    }
    schedule(c, now_ns);
}

void rp_autonat_client_addrs_changed(rp_autonat_client *c, uint64_t now_ns)
{
    if (c->confidence == c->cfg.max_confidence && c->confidence > 0) c->confidence--;
    schedule(c, now_ns);
}
