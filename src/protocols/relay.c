/* Circuit relay v2: the relay's state, the client and stop-side checks, the meter (relay.h). */
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "multiformats/multiaddr.h"
#include "protocols/relay.h"

/* ---- multiaddr helpers -------------------------------------------------------------------- */

/* Facts about a binary multiaddr the relay code needs. */
typedef struct addr_facts {
    bool valid;
    bool circuit;     /* has /p2p-circuit */
    bool last_is_p2p; /* the last component is /p2p/... */
    rp_iov last_p2p;  /* its value */
    uint8_t ip_len;   /* the first ip4/ip6 value, 0 if none */
    uint8_t ip[16];
} addr_facts;

static void addr_inspect(const uint8_t *a, size_t len, addr_facts *f)
{
    memset(f, 0, sizeof(*f));
    if (a == NULL || len == 0 || rp_maddr_validate(a, len, NULL) < 0) return;
    f->valid = true;
    const uint8_t *p = a, *end = a + len;
    while (p < end) {
        rp_maddr_comp c;
        if (rp_maddr_next_component(&p, end, &c, NULL) < 0) { /* validated above */
            f->valid = false;
            return;
        }
        uint32_t code = c.proto->code;
        f->last_is_p2p = code == RINGP2P_P_P2P;
        if (f->last_is_p2p) f->last_p2p = rp_iov_make(c.value, c.value_len);
        if (code == RINGP2P_P_P2P_CIRCUIT) f->circuit = true;
        if ((code == RINGP2P_P_IP4 || code == RINGP2P_P_IP6) && f->ip_len == 0 &&
            c.value_len <= sizeof(f->ip)) {
            memcpy(f->ip, c.value, c.value_len);
            f->ip_len = (uint8_t)c.value_len;
        }
    }
}

static bool iov_is_peer(rp_iov v, const ringp2p_peer_id *id)
{
    return v.len == id->len && memcmp(v.base, id->bytes, v.len) == 0;
}

/*
 * addr with /p2p/ID appended unless its last component is /p2p/ID already,
 * into dst[cap]. RINGP2P_EMULTIADDR (invalid or relayed), RINGP2P_EPEERMISMATCH,
 * RINGP2P_ELIMIT, RINGP2P_ENOBUF.
 */
static ssize_t with_peer(const uint8_t *addr, size_t len, const ringp2p_peer_id *id, uint8_t *dst,
                         size_t cap, ringp2p_errinfo *ei)
{
    addr_facts f;
    addr_inspect(addr, len, &f);
    if (!f.valid) return rp_err(ei, RINGP2P_EMULTIADDR, "relay address is not a valid multiaddr");
    if (f.circuit) return rp_err(ei, RINGP2P_EMULTIADDR, "relay address is itself relayed");
    if (f.last_is_p2p && !iov_is_peer(f.last_p2p, id))
        return rp_err(ei, RINGP2P_EPEERMISMATCH, "relay address names another peer");
    rp_wbuf w = rp_wbuf_make(dst, cap);
    rp_wbuf_put(&w, addr, len);
    if (!f.last_is_p2p) {
        uint8_t comp[4 + RINGP2P_PEER_ID_MAX];
        ssize_t n = rp_maddr_put_component(rp_maddr_proto_by_code(RINGP2P_P_P2P), id->bytes,
                                           id->len, comp, sizeof(comp), ei);
        if (n < 0) return n;
        rp_wbuf_put(&w, comp, (size_t)n);
    }
    ssize_t r = rp_wbuf_result(&w);
    if (r < 0) return r;
    /* The byte and component limits of rp_maddr_validate, so the result is usable. */
    if (rp_maddr_validate(dst, w.len, NULL) < 0)
        return rp_err(ei, RINGP2P_ELIMIT,
                      "relay address with /p2p would pass the multiaddr limits");
    return r;
}

/* ---- meter --------------------------------------------------------------------------------- */

void rp_relay_meter_init(rp_relay_meter *m, const rp_relay_limit *limit, uint64_t now_ns)
{
    uint64_t data = limit != NULL && limit->data != 0 ? limit->data : UINT64_MAX;
    m->left[0] = m->left[1] = data;
    m->deadline_ns = UINT64_MAX;
    if (limit != NULL && limit->duration != 0) {
        uint64_t d = (uint64_t)limit->duration * 1000000000u; /* < 2^62: no overflow */
        m->deadline_ns = now_ns > UINT64_MAX - d ? UINT64_MAX : now_ns + d;
    }
}

size_t rp_relay_meter_take(rp_relay_meter *m, unsigned dir, size_t n)
{
    uint64_t *left = &m->left[dir & 1];
    if (*left == UINT64_MAX) return n;
    size_t k = (uint64_t)n < *left ? n : (size_t)*left;
    *left -= k;
    return k;
}

uint64_t rp_relay_meter_left(const rp_relay_meter *m, unsigned dir)
{
    return m->left[dir & 1];
}

bool rp_relay_meter_expired(const rp_relay_meter *m, uint64_t now_ns)
{
    return m->deadline_ns != UINT64_MAX && now_ns >= m->deadline_ns;
}

/* ---- the relay ------------------------------------------------------------------------------ */

typedef struct rsv {
    ringp2p_peer_id peer;
    uint64_t expire; /* valid while now < expire */
    uint8_t ip_len;
    uint8_t ip[16];
} rsv;

typedef struct circuit {
    uint64_t id;
    ringp2p_peer_id src, dst;
    bool bridged; /* the target said OK; before that the stop leg is pending */
} circuit;

struct rp_relay {
    rp_relay_config cfg;
    const ringp2p_privkey *key;
    ringp2p_peer_id self;
    rsv *rsvs; /* cfg.max_reservations slots */
    size_t n_rsvs;
    circuit *circs;
    size_t n_circs, cap_circs, max_circs;
    uint64_t next_id;
};

void rp_relay_config_default(rp_relay_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->reservation_ttl_s = RP_RELAY_DEFAULT_TTL_S;
    cfg->max_reservations = RP_RELAY_DEFAULT_MAX_RESERVATIONS;
    cfg->max_reservations_per_ip = RP_RELAY_DEFAULT_MAX_PER_IP;
    cfg->max_circuits = RP_RELAY_DEFAULT_MAX_CIRCUITS;
    cfg->limited = true;
    cfg->limit.duration = RP_RELAY_DEFAULT_LIMIT_DURATION_S;
    cfg->limit.data = RP_RELAY_DEFAULT_LIMIT_DATA;
}

int rp_relay_new(const rp_relay_config *cfg, const ringp2p_privkey *key, rp_relay **out)
{
    if (cfg->reservation_ttl_s == 0 || cfg->max_reservations == 0 || cfg->max_circuits == 0)
        return RINGP2P_EINVAL;
    rp_relay *r = calloc(1, sizeof(*r));
    if (r == NULL) return RINGP2P_ENOMEM;
    r->rsvs = calloc(cfg->max_reservations, sizeof(*r->rsvs));
    if (r->rsvs == NULL) {
        free(r);
        return RINGP2P_ENOMEM;
    }
    r->cfg = *cfg;
    r->key = key;
    ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(key), &r->self);
    r->max_circs = (size_t)cfg->max_reservations * cfg->max_circuits;
    r->next_id = 1;
    *out = r;
    return 0;
}

void rp_relay_free(rp_relay *r)
{
    if (r == NULL) return;
    free(r->rsvs);
    free(r->circs);
    free(r);
}

static rsv *find_rsv(const rp_relay *r, const ringp2p_peer_id *peer)
{
    for (size_t i = 0; i < r->n_rsvs; i++)
        if (ringp2p_peer_id_equal(&r->rsvs[i].peer, peer)) return &r->rsvs[i];
    return NULL;
}

static void drop_rsv(rp_relay *r, rsv *v)
{
    *v = r->rsvs[--r->n_rsvs];
}

size_t rp_relay_expire(rp_relay *r, uint64_t now_s)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_rsvs;) {
        if (r->rsvs[i].expire <= now_s) {
            drop_rsv(r, &r->rsvs[i]);
            n++;
        } else {
            i++;
        }
    }
    return n;
}

uint64_t rp_relay_next_expiry(const rp_relay *r)
{
    uint64_t t = UINT64_MAX;
    for (size_t i = 0; i < r->n_rsvs; i++)
        if (r->rsvs[i].expire < t) t = r->rsvs[i].expire;
    return t;
}

bool rp_relay_has_reservation(const rp_relay *r, const ringp2p_peer_id *peer, uint64_t now_s,
                              uint64_t *expire)
{
    const rsv *v = find_rsv(r, peer);
    if (v == NULL || v->expire <= now_s) return false;
    if (expire != NULL) *expire = v->expire;
    return true;
}

int rp_relay_peer_gone(rp_relay *r, const ringp2p_peer_id *peer)
{
    rsv *v = find_rsv(r, peer);
    if (v == NULL) return 0;
    drop_rsv(r, v);
    return 1;
}

size_t rp_relay_reservation_count(const rp_relay *r)
{
    return r->n_rsvs;
}

size_t rp_relay_circuit_count(const rp_relay *r)
{
    return r->n_circs;
}

static size_t circuits_of(const rp_relay *r, const ringp2p_peer_id *p)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_circs; i++)
        if (ringp2p_peer_id_equal(&r->circs[i].src, p) ||
            ringp2p_peer_id_equal(&r->circs[i].dst, p))
            n++;
    return n;
}

static circuit *find_circuit(const rp_relay *r, uint64_t id)
{
    for (size_t i = 0; i < r->n_circs; i++)
        if (r->circs[i].id == id) return &r->circs[i];
    return NULL;
}

static void drop_circuit(rp_relay *r, circuit *c)
{
    *c = r->circs[--r->n_circs];
}

int rp_relay_circuit_close(rp_relay *r, uint64_t id)
{
    circuit *c = find_circuit(r, id);
    if (c == NULL) return RINGP2P_ENOENT;
    drop_circuit(r, c);
    return 0;
}

/* Starts a result: a reply with `status` for request `req`. */
static void result_reply(rp_relay_hop_result *res, int32_t req, rp_relay_status status)
{
    memset(res, 0, sizeof(*res));
    res->action = RP_RELAY_ACT_REPLY;
    res->request = req;
    res->status = status;
}

/* A status-only refusal into out; `ei` keeps the reason given by the caller. */
static int refuse(rp_relay_hop_result *res, int32_t req, rp_relay_status status, uint8_t *out,
                  size_t cap)
{
    result_reply(res, req, status);
    ssize_t n = rp_relay_hop_status_write(status, out, cap);
    if (n < 0) return (int)n;
    res->len = (size_t)n;
    return 1;
}

/*
 * The OK answer to RESERVE: as many of the relay's addresses as fit under
 * RP_RELAY_MSG_MAX, the voucher and the limit.
 */
static int reserve_answer(rp_relay *r, const ringp2p_peer_id *peer, uint64_t expire,
                          const rp_iov *self_addrs, size_t n_self, uint8_t *out, size_t cap,
                          size_t *len, ringp2p_errinfo *ei)
{
    uint8_t voucher[RP_ENVELOPE_MAX];
    ssize_t vn = rp_relay_voucher_seal(r->key, peer, expire, voucher, sizeof(voucher), ei);
    if (vn < 0) return (int)vn;

    rp_relay_hop_msg m;
    memset(&m, 0, sizeof(m));
    m.has_type = m.has_status = m.has_reservation = true;
    m.type = RP_RELAY_HOP_STATUS;
    m.status = RP_RELAY_OK;
    m.reservation.expire = expire;
    m.reservation.voucher = rp_iov_make(voucher, (size_t)vn);
    m.has_limit = r->cfg.limited;
    m.limit = r->cfg.limit;

    uint8_t arena[RP_RELAY_MSG_MAX];
    size_t used = 0;
    ssize_t base = rp_relay_hop_encode(&m, NULL, 0);
    for (size_t i = 0; i < n_self && m.reservation.n_addrs < RP_RELAY_ADDRS_MAX; i++) {
        ssize_t n = with_peer(self_addrs[i].base, self_addrs[i].len, &r->self, arena + used,
                              sizeof(arena) - used, NULL);
        if (n < 0) continue; /* invalid, relayed, another peer's, or no room */
        /* Each address grows the Reservation by its field; its length prefix may grow by 1. */
        size_t grow = rp_pb_bytes_len(RP_RELAY_RSVP_FIELD_ADDRS, (size_t)n) + 1;
        if ((size_t)base + grow > RP_RELAY_MSG_MAX) continue;
        m.reservation.addrs[m.reservation.n_addrs++] = rp_iov_make(arena + used, (size_t)n);
        used += (size_t)n;
        base = rp_relay_hop_encode(&m, NULL, 0);
    }
    ssize_t n = rp_relay_hop_write(&m, out, cap);
    if (n < 0) return (int)n;
    *len = (size_t)n;
    return 0;
}

static int handle_reserve(rp_relay *r, const ringp2p_peer_id *peer, const uint8_t *addr,
                          size_t addr_len, const addr_facts *af, const rp_iov *self_addrs,
                          size_t n_self, uint64_t now_s, uint8_t *out, size_t cap,
                          rp_relay_hop_result *res, ringp2p_errinfo *ei)
{
    const int32_t req = RP_RELAY_HOP_RESERVE;
    if (af->circuit) {
        rp_err(ei, RINGP2P_EPERM, "relay: reservation over a relayed connection");
        return refuse(res, req, RP_RELAY_PERMISSION_DENIED, out, cap);
    }
    if (r->cfg.allow_reserve != NULL &&
        !r->cfg.allow_reserve(r->cfg.acl_arg, peer, addr, addr != NULL ? addr_len : 0)) {
        rp_err(ei, RINGP2P_EPERM, "relay: reservation denied by the ACL");
        return refuse(res, req, RP_RELAY_PERMISSION_DENIED, out, cap);
    }
    rp_relay_expire(r, now_s);
    rsv *own = find_rsv(r, peer);
    size_t others = r->n_rsvs - (own != NULL);
    if (others >= r->cfg.max_reservations) {
        rp_err(ei, RINGP2P_ELIMIT, "relay: all %u reservations are taken", r->cfg.max_reservations);
        return refuse(res, req, RP_RELAY_RESERVATION_REFUSED, out, cap);
    }
    if (r->cfg.max_reservations_per_ip != 0 && af->ip_len != 0) {
        size_t same = 0;
        for (size_t i = 0; i < r->n_rsvs; i++)
            if (&r->rsvs[i] != own && r->rsvs[i].ip_len == af->ip_len &&
                memcmp(r->rsvs[i].ip, af->ip, af->ip_len) == 0)
                same++;
        if (same >= r->cfg.max_reservations_per_ip) {
            rp_err(ei, RINGP2P_ELIMIT, "relay: %zu reservations from this IP already", same);
            return refuse(res, req, RP_RELAY_RESERVATION_REFUSED, out, cap);
        }
    }
    uint64_t ttl = r->cfg.reservation_ttl_s;
    uint64_t expire = now_s > UINT64_MAX - ttl ? UINT64_MAX : now_s + ttl;
    result_reply(res, req, RP_RELAY_OK);
    int e = reserve_answer(r, peer, expire, self_addrs, n_self, out, cap, &res->len, ei);
    if (e < 0) return e; /* nothing changed */
    if (own == NULL) own = &r->rsvs[r->n_rsvs++];
    own->peer = *peer;
    own->expire = expire;
    own->ip_len = af->ip_len;
    memcpy(own->ip, af->ip, sizeof(own->ip));
    res->expire = expire;
    return 1;
}

static int handle_connect(rp_relay *r, const ringp2p_peer_id *src, const uint8_t *addr,
                          size_t addr_len, const addr_facts *af, const rp_relay_hop_msg *m,
                          uint64_t now_s, uint8_t *out, size_t cap, rp_relay_hop_result *res,
                          ringp2p_errinfo *ei)
{
    const int32_t req = RP_RELAY_HOP_CONNECT;
    if (af->circuit) {
        rp_err(ei, RINGP2P_EPERM, "relay: connect over a relayed connection");
        return refuse(res, req, RP_RELAY_PERMISSION_DENIED, out, cap);
    }
    ringp2p_peer_id dst;
    if (!m->has_peer || m->peer.id.base == NULL) {
        rp_err(ei, RINGP2P_EPROTOCOL, "relay: CONNECT without a peer");
        return refuse(res, req, RP_RELAY_MALFORMED_MESSAGE, out, cap);
    }
    if (ringp2p_peer_id_from_bytes(m->peer.id.base, m->peer.id.len, &dst, ei) < 0)
        return refuse(res, req, RP_RELAY_MALFORMED_MESSAGE, out, cap);
    if (r->cfg.allow_connect != NULL &&
        !r->cfg.allow_connect(r->cfg.acl_arg, src, addr, addr != NULL ? addr_len : 0, &dst)) {
        rp_err(ei, RINGP2P_EPERM, "relay: connect denied by the ACL");
        return refuse(res, req, RP_RELAY_PERMISSION_DENIED, out, cap);
    }
    if (!rp_relay_has_reservation(r, &dst, now_s, NULL)) {
        rp_err(ei, RINGP2P_ENOENT, "relay: the target has no reservation");
        return refuse(res, req, RP_RELAY_NO_RESERVATION, out, cap);
    }
    if (circuits_of(r, src) >= r->cfg.max_circuits || circuits_of(r, &dst) >= r->cfg.max_circuits ||
        r->n_circs >= r->max_circs) {
        rp_err(ei, RINGP2P_ELIMIT, "relay: too many relayed connections");
        return refuse(res, req, RP_RELAY_RESOURCE_LIMIT_EXCEEDED, out, cap);
    }
    if (r->n_circs == r->cap_circs) {
        size_t nc = r->cap_circs == 0 ? 16 : 2 * r->cap_circs;
        circuit *c = realloc(r->circs, nc * sizeof(*c));
        if (c == NULL) {
            rp_err(ei, RINGP2P_ENOMEM, "relay: out of memory for a circuit");
            return refuse(res, req, RP_RELAY_RESOURCE_LIMIT_EXCEEDED, out, cap);
        }
        r->circs = c;
        r->cap_circs = nc;
    }

    rp_relay_stop_msg s;
    memset(&s, 0, sizeof(s));
    s.has_type = s.has_peer = true;
    s.type = RP_RELAY_STOP_CONNECT;
    s.peer.id = rp_iov_make(src->bytes, src->len);
    s.has_limit = r->cfg.limited;
    s.limit = r->cfg.limit;
    ssize_t n = rp_relay_stop_write(&s, out, cap);
    if (n < 0) return (int)n;

    circuit *c = &r->circs[r->n_circs++];
    c->id = r->next_id++;
    c->src = *src;
    c->dst = dst;
    c->bridged = false;
    memset(res, 0, sizeof(*res));
    res->action = RP_RELAY_ACT_STOP;
    res->request = req;
    res->status = RP_RELAY_OK;
    res->dst = dst;
    res->circuit = c->id;
    res->limited = r->cfg.limited;
    res->limit = r->cfg.limit;
    res->len = (size_t)n;
    return 1;
}

int rp_relay_hop_request(rp_relay *r, const ringp2p_peer_id *peer, const uint8_t *addr,
                         size_t addr_len, const rp_iov *self_addrs, size_t n_self_addrs,
                         uint64_t now_s, const uint8_t **src, const uint8_t *end, uint8_t *out,
                         size_t cap, rp_relay_hop_result *res, ringp2p_errinfo *ei)
{
    if (cap < RP_RELAY_FRAME_MAX)
        return rp_err(ei, RINGP2P_ENOBUF, "relay: output buffer of %zu bytes, %d needed", cap,
                      RP_RELAY_FRAME_MAX);
    const uint8_t *p = *src;
    rp_relay_hop_msg m;
    int r0 = rp_relay_hop_read(&p, end, &m, ei);
    if (r0 == 0) return 0;
    if (r0 < 0) {
        /* Unframeable input leaves *src; a bad body is consumed. */
        rp_iov body;
        const uint8_t *q = *src;
        if (rp_relay_read_frame(&q, end, &body, NULL) == 1) *src = q;
        return refuse(res, -1, RP_RELAY_MALFORMED_MESSAGE, out, cap);
    }
    *src = p;
    if (!m.has_type) {
        rp_err(ei, RINGP2P_EPROTOCOL, "relay: HopMessage without a type");
        return refuse(res, -1, RP_RELAY_MALFORMED_MESSAGE, out, cap);
    }
    addr_facts af;
    addr_inspect(addr, addr_len, &af);
    switch (m.type) {
    case RP_RELAY_HOP_RESERVE:
        return handle_reserve(r, peer, addr, addr_len, &af, self_addrs, n_self_addrs, now_s, out,
                              cap, res, ei);
    case RP_RELAY_HOP_CONNECT:
        return handle_connect(r, peer, addr, addr_len, &af, &m, now_s, out, cap, res, ei);
    case RP_RELAY_HOP_STATUS:
        rp_err(ei, RINGP2P_EPROTOCOL, "relay: a STATUS message as a request");
        return refuse(res, -1, RP_RELAY_UNEXPECTED_MESSAGE, out, cap);
    default:
        rp_err(ei, RINGP2P_EPROTOCOL, "relay: unknown HopMessage type %d", (int)m.type);
        return refuse(res, -1, RP_RELAY_MALFORMED_MESSAGE, out, cap);
    }
}

static circuit *find_pending(const rp_relay *r, uint64_t id)
{
    circuit *c = find_circuit(r, id);
    return c != NULL && !c->bridged ? c : NULL;
}

int rp_relay_stop_response(rp_relay *r, uint64_t id, const uint8_t **src, const uint8_t *end,
                           uint8_t *out, size_t cap, rp_relay_hop_result *res, ringp2p_errinfo *ei)
{
    circuit *c = find_pending(r, id);
    if (c == NULL)
        return rp_err(ei, RINGP2P_ENOENT, "relay: no pending circuit %llu", (unsigned long long)id);
    if (cap < RP_RELAY_FRAME_MAX)
        return rp_err(ei, RINGP2P_ENOBUF, "relay: output buffer of %zu bytes, %d needed", cap,
                      RP_RELAY_FRAME_MAX);
    const uint8_t *p = *src;
    rp_relay_stop_msg s;
    int r0 = rp_relay_stop_read(&p, end, &s, ei);
    if (r0 == 0) return 0;
    if (r0 > 0) *src = p;
    bool ok = r0 > 0 && s.has_type && s.type == RP_RELAY_STOP_STATUS && s.has_status &&
              s.status == RP_RELAY_OK;
    if (!ok) {
        if (r0 > 0 && (!s.has_type || s.type != RP_RELAY_STOP_STATUS))
            rp_err(ei, RINGP2P_EPROTOCOL, "relay: the target did not answer with a STATUS");
        else if (r0 > 0)
            rp_err(ei, RINGP2P_ECONNREFUSED, "relay: the target answered %s",
                   rp_relay_status_name(s.has_status ? s.status : 0));
        ssize_t n = rp_relay_stop_failed(r, id, out, cap);
        if (n < 0) return (int)n;
        result_reply(res, RP_RELAY_HOP_CONNECT, RP_RELAY_CONNECTION_FAILED);
        res->len = (size_t)n;
        return 1;
    }
    rp_relay_hop_msg m;
    memset(&m, 0, sizeof(m));
    m.has_type = m.has_status = true;
    m.type = RP_RELAY_HOP_STATUS;
    m.status = RP_RELAY_OK;
    m.has_limit = r->cfg.limited;
    m.limit = r->cfg.limit;
    ssize_t n = rp_relay_hop_write(&m, out, cap);
    if (n < 0) return (int)n;
    c->bridged = true;
    result_reply(res, RP_RELAY_HOP_CONNECT, RP_RELAY_OK);
    res->dst = c->dst;
    res->circuit = id;
    res->limited = r->cfg.limited;
    res->limit = r->cfg.limit;
    res->len = (size_t)n;
    return 1;
}

ssize_t rp_relay_stop_failed(rp_relay *r, uint64_t id, uint8_t *out, size_t cap)
{
    circuit *c = find_pending(r, id);
    if (c == NULL) return RINGP2P_ENOENT;
    ssize_t n = rp_relay_hop_status_write(RP_RELAY_CONNECTION_FAILED, out, cap);
    if (n < 0) return n;
    drop_circuit(r, c);
    return n;
}

/* ---- the client ---------------------------------------------------------------------------- */

ssize_t rp_relay_reserve_write(uint8_t *dst, size_t cap)
{
    rp_relay_hop_msg m;
    memset(&m, 0, sizeof(m));
    m.has_type = true;
    m.type = RP_RELAY_HOP_RESERVE;
    return rp_relay_hop_write(&m, dst, cap);
}

ssize_t rp_relay_connect_write(const ringp2p_peer_id *dst, uint8_t *dst_buf, size_t cap)
{
    rp_relay_hop_msg m;
    memset(&m, 0, sizeof(m));
    m.has_type = m.has_peer = true;
    m.type = RP_RELAY_HOP_CONNECT;
    m.peer.id = rp_iov_make(dst->bytes, dst->len);
    return rp_relay_hop_write(&m, dst_buf, cap);
}

static int status_check(bool has_type, int32_t type, int32_t want_type, bool has_status, int32_t st,
                        int32_t *status, const char *what, ringp2p_errinfo *ei)
{
    if (status != NULL) *status = has_status ? st : RP_RELAY_UNUSED;
    if (!has_type || type != want_type)
        return rp_err(ei, RINGP2P_EPROTOCOL, "relay: the answer to %s is not a STATUS message",
                      what);
    if (!has_status || st != RP_RELAY_OK)
        return rp_err(ei, RINGP2P_ECONNREFUSED, "relay refused %s: %s (%d)", what,
                      rp_relay_status_name(has_status ? st : 0), (int)(has_status ? st : 0));
    return 0;
}

int rp_relay_reserve_check(const rp_relay_hop_msg *m, const ringp2p_peer_id *relay,
                           const ringp2p_peer_id *self, uint64_t now_s, rp_relay_reservation *out,
                           int32_t *status, ringp2p_errinfo *ei)
{
    int r = status_check(m->has_type, m->type, RP_RELAY_HOP_STATUS, m->has_status, m->status,
                         status, "the reservation", ei);
    if (r < 0) return r;
    if (!m->has_reservation)
        return rp_err(ei, RINGP2P_EPROTOCOL, "relay: reservation accepted without its details");
    const rp_relay_rsvp *rs = &m->reservation;
    if (rs->expire <= now_s)
        return rp_err(ei, RINGP2P_EPROTOCOL,
                      "relay: reservation expires at %llu, not after now (%llu)",
                      (unsigned long long)rs->expire, (unsigned long long)now_s);
    rp_relay_reservation v;
    memset(&v, 0, sizeof(v));
    v.expire = rs->expire;
    v.limited = m->has_limit;
    v.limit = m->limit;
    v.n_addrs_skipped = rs->n_addrs_dropped;
    for (size_t i = 0; i < rs->n_addrs; i++) {
        addr_facts f;
        addr_inspect(rs->addrs[i].base, rs->addrs[i].len, &f);
        if (!f.valid || f.circuit || (f.last_is_p2p && !iov_is_peer(f.last_p2p, relay))) {
            v.n_addrs_skipped++;
            continue;
        }
        v.addrs[v.n_addrs++] = rs->addrs[i];
    }
    if (rs->voucher.base != NULL) {
        const uint8_t *p = rs->voucher.base;
        if ((r = rp_relay_voucher_open(&p, p + rs->voucher.len, &v.voucher, ei)) < 0) return r;
        char a[RINGP2P_PEER_ID_STR_MAX], b[RINGP2P_PEER_ID_STR_MAX];
        if (!ringp2p_peer_id_equal(&v.voucher.relay, relay)) {
            ringp2p_peer_id_to_string(&v.voucher.relay, a, sizeof(a));
            ringp2p_peer_id_to_string(relay, b, sizeof(b));
            return rp_err(ei, RINGP2P_EPEERMISMATCH, "relay: voucher of relay %s from relay %s", a,
                          b);
        }
        if (!ringp2p_peer_id_equal(&v.voucher.peer, self)) {
            ringp2p_peer_id_to_string(&v.voucher.peer, a, sizeof(a));
            ringp2p_peer_id_to_string(self, b, sizeof(b));
            return rp_err(ei, RINGP2P_EPEERMISMATCH, "relay: voucher for %s given to %s", a, b);
        }
        v.has_voucher = true;
    }
    *out = v;
    return 0;
}

uint64_t rp_relay_refresh_at(uint64_t expire_s, uint64_t now_s)
{
    if (expire_s <= now_s) return now_s;
    uint64_t left = expire_s - now_s;
    return expire_s - (left >= 600 ? 300 : left / 2);
}

ssize_t rp_relay_circuit_addr(const uint8_t *addr, size_t len, const ringp2p_peer_id *relay,
                              uint8_t *dst, size_t cap, ringp2p_errinfo *ei)
{
    uint8_t buf[RP_MADDR_MAX_BYTES];
    ssize_t n = with_peer(addr, len, relay, buf, sizeof(buf), ei);
    if (n < 0) return n;
    uint8_t circ[4];
    ssize_t k = rp_maddr_put_component(rp_maddr_proto_by_code(RINGP2P_P_P2P_CIRCUIT), NULL, 0, circ,
                                       sizeof(circ), ei);
    if (k < 0) return k;
    rp_wbuf w = rp_wbuf_make(dst, cap);
    rp_wbuf_put(&w, buf, (size_t)n);
    rp_wbuf_put(&w, circ, (size_t)k);
    ssize_t r = rp_wbuf_result(&w);
    if (r < 0) return r;
    if (rp_maddr_validate(dst, w.len, NULL) < 0)
        return rp_err(ei, RINGP2P_ELIMIT, "circuit address would pass the multiaddr limits");
    return r;
}

int rp_relay_addr_split(const uint8_t *addr, size_t len, rp_relay_target *out, ringp2p_errinfo *ei)
{
    ssize_t nc = rp_maddr_validate(addr, len, ei);
    if (nc < 0) return (int)nc;
    const uint8_t *p = addr, *end = addr + len, *circ = NULL;
    rp_maddr_comp c, before = { 0 }, after = { 0 };
    size_t n_after = 0;
    while (p < end) {
        rp_maddr_next_component(&p, end, &c, NULL);
        if (c.proto->code == RINGP2P_P_P2P_CIRCUIT) {
            if (circ != NULL)
                return rp_err(ei, RINGP2P_EMULTIADDR, "relayed address with two /p2p-circuit");
            circ = c.start;
            continue;
        }
        if (circ == NULL) {
            before = c;
        } else {
            after = c;
            n_after++;
        }
    }
    if (circ == NULL) return rp_err(ei, RINGP2P_EMULTIADDR, "address has no /p2p-circuit");
    if (before.proto == NULL || before.proto->code != RINGP2P_P_P2P)
        return rp_err(ei, RINGP2P_EMULTIADDR,
                      "relayed address without /p2p/RELAY before "
                      "/p2p-circuit");
    if (n_after != 1 || after.proto->code != RINGP2P_P_P2P)
        return rp_err(ei, RINGP2P_EMULTIADDR, "relayed address must end /p2p-circuit/p2p/PEER");
    rp_relay_target t;
    int r = ringp2p_peer_id_from_bytes(before.value, before.value_len, &t.relay, ei);
    if (r < 0) return r;
    if ((r = ringp2p_peer_id_from_bytes(after.value, after.value_len, &t.dst, ei)) < 0) return r;
    t.relay_addr = rp_iov_make(addr, (size_t)(circ - addr));
    *out = t;
    return 0;
}

int rp_relay_connect_check(const rp_relay_hop_msg *m, bool *limited, rp_relay_limit *limit,
                           int32_t *status, ringp2p_errinfo *ei)
{
    int r = status_check(m->has_type, m->type, RP_RELAY_HOP_STATUS, m->has_status, m->status,
                         status, "the connection", ei);
    if (r < 0) return r;
    if (limited != NULL) *limited = m->has_limit;
    if (limit != NULL) {
        limit->duration = m->has_limit ? m->limit.duration : 0;
        limit->data = m->has_limit ? m->limit.data : 0;
    }
    return 0;
}

/* ---- the stop side ------------------------------------------------------------------------- */

int rp_relay_stop_check(const rp_relay_stop_msg *m, rp_relay_stop_request *out, int32_t *reply,
                        ringp2p_errinfo *ei)
{
    *reply = RP_RELAY_MALFORMED_MESSAGE;
    if (!m->has_type) return rp_err(ei, RINGP2P_EPROTOCOL, "relay: StopMessage without a type");
    if (m->type == RP_RELAY_STOP_STATUS) {
        *reply = RP_RELAY_UNEXPECTED_MESSAGE;
        return rp_err(ei, RINGP2P_EPROTOCOL, "relay: a STATUS message as a stop request");
    }
    if (m->type != RP_RELAY_STOP_CONNECT)
        return rp_err(ei, RINGP2P_EPROTOCOL, "relay: unknown StopMessage type %d", (int)m->type);
    if (!m->has_peer || m->peer.id.base == NULL)
        return rp_err(ei, RINGP2P_EPROTOCOL, "relay: stop CONNECT without the initiator");
    rp_relay_stop_request q;
    if (ringp2p_peer_id_from_bytes(m->peer.id.base, m->peer.id.len, &q.src, NULL) < 0)
        return rp_err(ei, RINGP2P_EPROTOCOL, "relay: stop CONNECT with an invalid initiator ID");
    q.limited = m->has_limit;
    q.limit.duration = m->has_limit ? m->limit.duration : 0;
    q.limit.data = m->has_limit ? m->limit.data : 0;
    *out = q;
    *reply = RP_RELAY_OK;
    return 0;
}
