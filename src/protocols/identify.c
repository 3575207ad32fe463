#include "protocols/identify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/varint.h"
#include "multiformats/multiaddr.h"
#include "multistream/multistream.h"

_Static_assert(RP_IDENTIFY_PROTOCOL_LEN_MAX == RP_MSS_PROTO_MAX,
               "a protocol ID identify keeps must be one multistream-select can carry");
_Static_assert(RP_IDENTIFY_MSG_MAX < (1 << 14), "the stream bound assumes 2-byte length prefixes");
_Static_assert(RP_OBSADDR_ADDR_MAX <= UINT8_MAX, "addresses lengths are kept in a byte");

static const char id_msg[] = "Identify";

/* ---- Message ------------------------------------------------------------------------------- */

void rp_identify_msg_init(rp_identify_msg *m)
{
    m->protocol_version = m->agent_version = m->public_key = rp_iov_make(NULL, 0);
    m->observed_addr = m->signed_peer_record = rp_iov_make(NULL, 0);
    m->n_listen_addrs = m->n_protocols = 0;
    m->n_addrs_skipped = m->n_protocols_skipped = m->n_frames = 0;
}

/* What a failed decode must put back: the arrays past the counts are not looked at. */
struct msg_snapshot {
    rp_iov pv, av, key, obs, spr;
    size_t n_listen, n_protocols, n_addrs_skipped, n_protocols_skipped;
};

static void snapshot(const rp_identify_msg *m, struct msg_snapshot *s)
{
    *s =
        (struct msg_snapshot){ m->protocol_version, m->agent_version,      m->public_key,
                               m->observed_addr,    m->signed_peer_record, m->n_listen_addrs,
                               m->n_protocols,      m->n_addrs_skipped,    m->n_protocols_skipped };
}

static void restore(rp_identify_msg *m, const struct msg_snapshot *s)
{
    m->protocol_version = s->pv;
    m->agent_version = s->av;
    m->public_key = s->key;
    m->observed_addr = s->obs;
    m->signed_peer_record = s->spr;
    m->n_listen_addrs = s->n_listen;
    m->n_protocols = s->n_protocols;
    m->n_addrs_skipped = s->n_addrs_skipped;
    m->n_protocols_skipped = s->n_protocols_skipped;
}

/* A protocol ID multistream-select could negotiate (its messages end at '\n'). */
static bool protocol_ok(const uint8_t *s, size_t n)
{
    return n != 0 && n <= RP_IDENTIFY_PROTOCOL_LEN_MAX && memchr(s, '\n', n) == NULL &&
           memchr(s, '\0', n) == NULL;
}

static bool addr_ok(const rp_iov *a)
{
    return a->len != 0 && rp_maddr_validate(a->base, a->len, NULL) >= 0;
}

static int decode_fields(const uint8_t **src, const uint8_t *end, rp_identify_msg *m,
                         ringp2p_errinfo *ei)
{
    const uint8_t *start = *src, *p = start;
    while (p < end) {
        rp_pb_field f;
        int r = rp_pb_next(&p, end, start, id_msg, &f, ei);
        if (r < 0) return r;
        const char *name;
        switch (f.num) {
        case RP_IDENTIFY_FIELD_PUBLIC_KEY: name = "publicKey"; break;
        case RP_IDENTIFY_FIELD_LISTEN_ADDRS: name = "listenAddrs"; break;
        case RP_IDENTIFY_FIELD_PROTOCOLS: name = "protocols"; break;
        case RP_IDENTIFY_FIELD_OBSERVED_ADDR: name = "observedAddr"; break;
        case RP_IDENTIFY_FIELD_PROTOCOL_VERSION: name = "protocolVersion"; break;
        case RP_IDENTIFY_FIELD_AGENT_VERSION: name = "agentVersion"; break;
        case RP_IDENTIFY_FIELD_SIGNED_PEER_RECORD: name = "signedPeerRecord"; break;
        default: continue; /* unknown: skipped, as protobuf says */
        }
        if (f.wt != RP_PB_LEN) return rp_pb_wrong_type(id_msg, name, &f, ei);
        switch (f.num) {
        case RP_IDENTIFY_FIELD_PUBLIC_KEY: m->public_key = f.body; break;
        case RP_IDENTIFY_FIELD_PROTOCOL_VERSION: m->protocol_version = f.body; break;
        case RP_IDENTIFY_FIELD_AGENT_VERSION: m->agent_version = f.body; break;
        case RP_IDENTIFY_FIELD_SIGNED_PEER_RECORD: m->signed_peer_record = f.body; break;
        case RP_IDENTIFY_FIELD_OBSERVED_ADDR:
            /* Last one wins, but a bad one does not erase a good one sent earlier. */
            if (addr_ok(&f.body))
                m->observed_addr = f.body;
            else
                m->n_addrs_skipped++;
            break;
        case RP_IDENTIFY_FIELD_LISTEN_ADDRS:
            if (m->n_listen_addrs < RP_IDENTIFY_LISTEN_ADDRS_MAX && addr_ok(&f.body))
                m->listen_addrs[m->n_listen_addrs++] = f.body;
            else
                m->n_addrs_skipped++;
            break;
        case RP_IDENTIFY_FIELD_PROTOCOLS:
            if (m->n_protocols < RP_IDENTIFY_PROTOCOLS_MAX && protocol_ok(f.body.base, f.body.len))
                m->protocols[m->n_protocols++] = f.body;
            else
                m->n_protocols_skipped++;
            break;
        }
    }
    *src = p;
    return 0;
}

int rp_identify_decode(const uint8_t **src, const uint8_t *end, rp_identify_msg *m,
                       ringp2p_errinfo *ei)
{
    if ((size_t)(end - *src) > RP_IDENTIFY_MSG_MAX)
        return rp_err(ei, RINGP2P_ELIMIT, "Identify message of %td bytes is over the limit of %d",
                      end - *src, RP_IDENTIFY_MSG_MAX);
    struct msg_snapshot s;
    snapshot(m, &s);
    int r = decode_fields(src, end, m, ei);
    if (r < 0) restore(m, &s);
    return r;
}

int rp_identify_read_frame(rp_identify_msg *m, const uint8_t **src, const uint8_t *end,
                           ringp2p_errinfo *ei)
{
    const uint8_t *p = *src;
    uint64_t len;
    int r = rp_uvarint_decode(&p, end, &len);
    if (r == RINGP2P_ETRUNCATED) return 0;
    if (r < 0)
        return rp_err(ei, RINGP2P_EVARINT, "identify: malformed length prefix of message %zu",
                      m->n_frames + 1);
    if (len > RP_IDENTIFY_MSG_MAX)
        return rp_err(ei, RINGP2P_ELIMIT,
                      "identify: message %zu announces %llu bytes, the limit is %d",
                      m->n_frames + 1, (unsigned long long)len, RP_IDENTIFY_MSG_MAX);
    if (m->n_frames == RP_IDENTIFY_MSGS_MAX)
        return rp_err(ei, RINGP2P_ELIMIT, "identify: more than %d messages on one stream",
                      RP_IDENTIFY_MSGS_MAX);
    if ((uint64_t)(end - p) < len) return 0;
    const uint8_t *q = p;
    if ((r = rp_identify_decode(&q, p + len, m, ei)) < 0) return r;
    m->n_frames++;
    *src = p + len;
    return 1;
}

int rp_identify_read_end(const rp_identify_msg *m, const uint8_t *src, const uint8_t *end,
                         ringp2p_errinfo *ei)
{
    if (src != end)
        return rp_err(ei, RINGP2P_ETRUNCATED,
                      "identify: the stream ended inside message %zu (%td bytes left over)",
                      m->n_frames + 1, end - src);
    if (m->n_frames == 0)
        return rp_err(ei, RINGP2P_ETRUNCATED, "identify: the stream ended without a message");
    return 0;
}

/* The fields of one message to encode; absent scalars have base NULL. */
struct fields {
    rp_iov key, obs, pv, av, spr;
    const rp_iov *addrs;
    size_t n_addrs;
    const rp_iov *protos;          /* either these views */
    const char *const *proto_strs; /* or these strings */
    size_t n_protos;
};

static void put_opt(rp_wbuf *w, uint32_t num, const rp_iov *v)
{
    if (v->base != NULL) rp_pb_put_bytes(w, num, v->base, v->len);
}

/* Field number order, as go-libp2p writes it (readers do not care). */
static void put_fields(rp_wbuf *w, const struct fields *f)
{
    put_opt(w, RP_IDENTIFY_FIELD_PUBLIC_KEY, &f->key);
    for (size_t i = 0; i < f->n_addrs; i++)
        rp_pb_put_bytes(w, RP_IDENTIFY_FIELD_LISTEN_ADDRS, f->addrs[i].base, f->addrs[i].len);
    for (size_t i = 0; i < f->n_protos; i++) {
        if (f->protos != NULL)
            rp_pb_put_bytes(w, RP_IDENTIFY_FIELD_PROTOCOLS, f->protos[i].base, f->protos[i].len);
        else
            rp_pb_put_bytes(w, RP_IDENTIFY_FIELD_PROTOCOLS, f->proto_strs[i],
                            strlen(f->proto_strs[i]));
    }
    put_opt(w, RP_IDENTIFY_FIELD_OBSERVED_ADDR, &f->obs);
    put_opt(w, RP_IDENTIFY_FIELD_PROTOCOL_VERSION, &f->pv);
    put_opt(w, RP_IDENTIFY_FIELD_AGENT_VERSION, &f->av);
    put_opt(w, RP_IDENTIFY_FIELD_SIGNED_PEER_RECORD, &f->spr);
}

static size_t fields_len(const struct fields *f)
{
    rp_wbuf w = rp_wbuf_make(NULL, 0);
    put_fields(&w, f);
    return w.len;
}

ssize_t rp_identify_msg_encode(const rp_identify_msg *m, uint8_t *dst, size_t cap)
{
    struct fields f = {
        .key = m->public_key,
        .obs = m->observed_addr,
        .pv = m->protocol_version,
        .av = m->agent_version,
        .spr = m->signed_peer_record,
        .addrs = m->listen_addrs,
        .n_addrs = m->n_listen_addrs,
        .protos = m->protocols,
        .n_protos = m->n_protocols,
    };
    rp_wbuf w = rp_wbuf_make(dst, cap);
    put_fields(&w, &f);
    if (dst == NULL && cap == 0) return (ssize_t)w.len;
    return rp_wbuf_result(&w);
}

/* ---- Our message --------------------------------------------------------------------------- */

static int check_info(const rp_identify_info *me, const uint8_t *observed, size_t observed_len,
                      ringp2p_errinfo *ei)
{
    if (me->n_listen_addrs > RP_IDENTIFY_LISTEN_ADDRS_MAX)
        return rp_err(ei, RINGP2P_EINVAL, "identify: %zu listen addresses, the limit is %d",
                      me->n_listen_addrs, RP_IDENTIFY_LISTEN_ADDRS_MAX);
    if (me->n_protocols > RP_IDENTIFY_PROTOCOLS_MAX)
        return rp_err(ei, RINGP2P_EINVAL, "identify: %zu protocols, the limit is %d",
                      me->n_protocols, RP_IDENTIFY_PROTOCOLS_MAX);
    for (size_t i = 0; i < me->n_listen_addrs; i++) {
        const rp_iov *a = &me->listen_addrs[i];
        if (a->len == 0)
            return rp_err(ei, RINGP2P_EINVAL, "identify: listen address %zu is empty", i);
        ringp2p_errinfo sub;
        if (rp_maddr_validate(a->base, a->len, &sub) < 0)
            return rp_err(ei, RINGP2P_EINVAL, "identify: listen address %zu: %s", i, sub.msg);
    }
    for (size_t i = 0; i < me->n_protocols; i++) {
        const char *s = me->protocols[i];
        if (s == NULL || !protocol_ok((const uint8_t *)s, strlen(s)))
            return rp_err(ei, RINGP2P_EINVAL,
                          "identify: protocol %zu is not a protocol ID (empty, over %d bytes, or "
                          "with a newline)",
                          i, RP_IDENTIFY_PROTOCOL_LEN_MAX);
    }
    if (observed != NULL) {
        ringp2p_errinfo sub;
        if (observed_len == 0)
            return rp_err(ei, RINGP2P_EINVAL, "identify: the observed address is empty");
        if (rp_maddr_validate(observed, observed_len, &sub) < 0)
            return rp_err(ei, RINGP2P_EINVAL, "identify: observed address: %s", sub.msg);
    }
    return 0;
}

static rp_iov opt_iov(const void *p, size_t n)
{
    return p != NULL ? rp_iov_make(p, n) : rp_iov_make(NULL, 0);
}

ssize_t rp_identify_write(const rp_identify_info *me, const uint8_t *observed, size_t observed_len,
                          uint8_t *dst, size_t cap, ringp2p_errinfo *ei)
{
    int r = check_info(me, observed, observed_len, ei);
    if (r < 0) return r;
    const char *pv = me->protocol_version ? me->protocol_version : RP_IDENTIFY_PROTOCOL_VERSION;
    const char *av = me->agent_version ? me->agent_version : RP_IDENTIFY_AGENT_VERSION;
    struct fields f = {
        .key = opt_iov(me->public_key, me->public_key_len),
        .obs = opt_iov(observed, observed_len),
        .pv = rp_iov_make(pv, strlen(pv)),
        .av = rp_iov_make(av, strlen(av)),
        .spr = opt_iov(me->signed_peer_record, me->signed_peer_record_len),
        .addrs = me->listen_addrs,
        .n_addrs = me->n_listen_addrs,
        .proto_strs = me->protocols,
        .n_protos = me->n_protocols,
    };
    struct fields second = { .spr = f.spr };
    size_t n1 = fields_len(&f), n2 = 0;
    bool split = f.spr.base != NULL && n1 > RP_IDENTIFY_SPLIT_MIN;
    if (split) {
        f.spr = rp_iov_make(NULL, 0);
        n1 = fields_len(&f);
        n2 = fields_len(&second);
    }
    if (n1 > RP_IDENTIFY_OWN_MSG_MAX || n2 > RP_IDENTIFY_OWN_MSG_MAX)
        return rp_err(ei, RINGP2P_ELIMIT,
                      "identify: our message would be %zu bytes (record: %zu), over the %d we send",
                      n1, n2, RP_IDENTIFY_OWN_MSG_MAX);
    rp_wbuf w = rp_wbuf_make(dst, cap);
    rp_wbuf_uvarint(&w, n1);
    put_fields(&w, &f);
    if (split) {
        rp_wbuf_uvarint(&w, n2);
        put_fields(&w, &second);
    }
    if (dst == NULL && cap == 0) return (ssize_t)w.len;
    if (!rp_wbuf_ok(&w))
        return rp_err(ei, RINGP2P_ENOBUF,
                      "identify: the message needs %zu bytes, the buffer has %zu", w.len, cap);
    return (ssize_t)w.len;
}

/* ---- Verification --------------------------------------------------------------------------- */

static int mismatch(const char *what, const ringp2p_peer_id *want, const ringp2p_peer_id *got,
                    ringp2p_errinfo *ei)
{
    char a[RINGP2P_PEER_ID_STR_MAX], b[RINGP2P_PEER_ID_STR_MAX];
    if (ringp2p_peer_id_to_string(want, a, sizeof(a)) < 0) snprintf(a, sizeof(a), "(invalid)");
    if (ringp2p_peer_id_to_string(got, b, sizeof(b)) < 0) snprintf(b, sizeof(b), "(invalid)");
    return rp_err(ei, RINGP2P_EPEERMISMATCH,
                  "identify: the %s is of peer %s, the connection's is %s", what, b, a);
}

int rp_identify_verify(const rp_identify_msg *m, const ringp2p_peer_id *remote,
                       rp_sigcache *verified, rp_identify_verified *out, ringp2p_errinfo *ei)
{
    out->key = NULL;
    out->has_record = false;
    ringp2p_pubkey *key = NULL;
    int r;
    /* An empty key or record is taken as none, as go-libp2p takes it. */
    if (m->public_key.len != 0) {
        r = ringp2p_pubkey_from_protobuf(m->public_key.base, m->public_key.len, &key, ei);
        if (r < 0) return r;
        if (!ringp2p_peer_id_matches(remote, key)) {
            ringp2p_peer_id got;
            ringp2p_peer_id_from_pubkey(key, &got);
            ringp2p_pubkey_free(key);
            return mismatch("public key", remote, &got, ei);
        }
    }
    if (m->signed_peer_record.len != 0) {
        const uint8_t *q = m->signed_peer_record.base;
        r = rp_peer_record_open(&q, q + m->signed_peer_record.len, verified, &out->record, NULL,
                                ei);
        if (r == 0 && !ringp2p_peer_id_equal(&out->record.peer_id, remote))
            r = mismatch("signed peer record", remote, &out->record.peer_id, ei);
        if (r < 0) {
            ringp2p_pubkey_free(key);
            return r;
        }
        out->has_record = true;
    }
    out->key = key;
    return 0;
}

void rp_identify_verified_clear(rp_identify_verified *v)
{
    ringp2p_pubkey_free(v->key);
    v->key = NULL;
}

/* ---- What we know about a peer ----------------------------------------------------------------
 */

struct rp_identify_peer {
    ringp2p_peer_id id;
    ringp2p_pubkey *key;
    void *blob; /* every byte and list below lives here */
    rp_iov pv, av;
    rp_iov *protocols;
    size_t n_protocols;
    rp_iov *listen;
    size_t n_listen;
    bool has_record;
    uint64_t seq;
    rp_iov envelope;
    rp_iov *raddrs; /* the stored record's addresses */
    size_t n_raddrs;
    bool certified; /* the addresses to dial are the record's */
};

int rp_identify_peer_new(const ringp2p_peer_id *id, rp_identify_peer **out)
{
    rp_identify_peer *p = calloc(1, sizeof(*p));
    if (p == NULL) return RINGP2P_ENOMEM;
    p->id = *id;
    *out = p;
    return 0;
}

void rp_identify_peer_free(rp_identify_peer *p)
{
    if (p == NULL) return;
    ringp2p_pubkey_free(p->key);
    free(p->blob);
    free(p);
}

static bool iov_eq(const rp_iov *a, const rp_iov *b)
{
    return (a->base == NULL) == (b->base == NULL) && a->len == b->len &&
           (a->len == 0 || memcmp(a->base, b->base, a->len) == 0);
}

static bool list_eq(const rp_iov *a, size_t na, const rp_iov *b, size_t nb)
{
    if (na != nb) return false;
    for (size_t i = 0; i < na; i++)
        if (!iov_eq(&a[i], &b[i])) return false;
    return true;
}

static size_t list_bytes(const rp_iov *l, size_t n)
{
    return rp_iov_total(l, n);
}

/* Copies v's bytes to *pos (advanced) and returns the copy's view (base NULL stays NULL). */
static rp_iov copy_iov(const rp_iov *v, uint8_t **pos)
{
    if (v->base == NULL) return rp_iov_make(NULL, 0);
    if (v->len != 0) memcpy(*pos, v->base, v->len);
    rp_iov c = rp_iov_make(*pos, v->len);
    *pos += v->len;
    return c;
}

static rp_iov *copy_list(const rp_iov *l, size_t n, rp_iov **lists, uint8_t **pos)
{
    rp_iov *out = *lists;
    for (size_t i = 0; i < n; i++) out[i] = copy_iov(&l[i], pos);
    *lists += n;
    return out;
}

int rp_identify_peer_apply(rp_identify_peer *p, const rp_identify_msg *m, rp_sigcache *verified,
                           ringp2p_errinfo *ei)
{
    rp_identify_verified v;
    int r = rp_identify_verify(m, &p->id, verified, &v, ei);
    if (r < 0) return r;

    /* The next state, as views into the old blob or the message. */
    rp_identify_peer next = *p;
    unsigned changed = 0;
    if (m->protocol_version.base != NULL) next.pv = m->protocol_version;
    if (m->agent_version.base != NULL) next.av = m->agent_version;
    if (!iov_eq(&next.pv, &p->pv) || !iov_eq(&next.av, &p->av))
        changed |= RP_IDENTIFY_CHANGED_VERSIONS;

    rp_iov protos[RP_IDENTIFY_PROTOCOLS_MAX];
    if (m->n_protocols > 0) {
        size_t n = 0;
        for (size_t i = 0; i < m->n_protocols; i++) {
            bool dup = false;
            for (size_t j = 0; j < n && !dup; j++) dup = iov_eq(&protos[j], &m->protocols[i]);
            if (!dup) protos[n++] = m->protocols[i];
        }
        next.protocols = protos;
        next.n_protocols = n;
        if (!list_eq(protos, n, p->protocols, p->n_protocols))
            changed |= RP_IDENTIFY_CHANGED_PROTOCOLS;
    }

    if (m->n_listen_addrs > 0) {
        next.listen = (rp_iov *)(uintptr_t)m->listen_addrs;
        next.n_listen = m->n_listen_addrs;
    }
    if (v.has_record) {
        if (!p->has_record || v.record.seq > p->seq) {
            next.has_record = true;
            next.seq = v.record.seq;
            next.envelope = m->signed_peer_record;
            next.raddrs = v.record.addrs;
            next.n_raddrs = v.record.n_addrs;
            changed |= RP_IDENTIFY_CHANGED_RECORD;
        }
        next.certified = true; /* a stale record keeps the stored one's addresses */
    } else if (m->n_listen_addrs > 0) {
        next.certified = false;
    }
    const rp_iov *old_addrs = p->certified ? p->raddrs : p->listen;
    size_t n_old = p->certified ? p->n_raddrs : p->n_listen;
    const rp_iov *new_addrs = next.certified ? next.raddrs : next.listen;
    size_t n_new = next.certified ? next.n_raddrs : next.n_listen;
    if (next.certified != p->certified || !list_eq(old_addrs, n_old, new_addrs, n_new))
        changed |= RP_IDENTIFY_CHANGED_ADDRS;

    bool take_key = v.key != NULL && p->key == NULL;
    if (take_key) changed |= RP_IDENTIFY_CHANGED_KEY;

    /* One allocation for the lot: the lists first (aligned), then the bytes. */
    size_t n_lists = next.n_protocols + next.n_listen + next.n_raddrs;
    size_t n_bytes = next.pv.len + next.av.len + next.envelope.len +
                     list_bytes(next.protocols, next.n_protocols) +
                     list_bytes(next.listen, next.n_listen) +
                     list_bytes(next.raddrs, next.n_raddrs);
    void *blob = malloc(n_lists * sizeof(rp_iov) + n_bytes + 1);
    if (blob == NULL) {
        rp_identify_verified_clear(&v);
        return rp_err(ei, RINGP2P_ENOMEM, NULL);
    }
    rp_iov *lists = blob;
    uint8_t *pos = (uint8_t *)(lists + n_lists);
    next.pv = copy_iov(&next.pv, &pos);
    next.av = copy_iov(&next.av, &pos);
    next.envelope = copy_iov(&next.envelope, &pos);
    next.protocols = copy_list(next.protocols, next.n_protocols, &lists, &pos);
    next.listen = copy_list(next.listen, next.n_listen, &lists, &pos);
    next.raddrs = copy_list(next.raddrs, next.n_raddrs, &lists, &pos);
    next.blob = blob;
    if (take_key) {
        next.key = v.key;
        v.key = NULL;
    }
    rp_identify_verified_clear(&v);
    free(p->blob);
    *p = next;
    return (int)changed;
}

const ringp2p_peer_id *rp_identify_peer_id(const rp_identify_peer *p)
{
    return &p->id;
}

const ringp2p_pubkey *rp_identify_peer_key(const rp_identify_peer *p)
{
    return p->key;
}

rp_iov rp_identify_peer_protocol_version(const rp_identify_peer *p)
{
    return p->pv;
}

rp_iov rp_identify_peer_agent_version(const rp_identify_peer *p)
{
    return p->av;
}

size_t rp_identify_peer_protocols(const rp_identify_peer *p, const rp_iov **list)
{
    *list = p->protocols;
    return p->n_protocols;
}

bool rp_identify_peer_supports(const rp_identify_peer *p, const char *protocol)
{
    rp_iov want = rp_iov_make(protocol, strlen(protocol));
    for (size_t i = 0; i < p->n_protocols; i++)
        if (iov_eq(&p->protocols[i], &want)) return true;
    return false;
}

size_t rp_identify_peer_addrs(const rp_identify_peer *p, const rp_iov **list, bool *certified)
{
    if (certified != NULL) *certified = p->certified;
    *list = p->certified ? p->raddrs : p->listen;
    return p->certified ? p->n_raddrs : p->n_listen;
}

bool rp_identify_peer_record(const rp_identify_peer *p, rp_iov *envelope, uint64_t *seq)
{
    if (!p->has_record) return false;
    if (envelope != NULL) *envelope = p->envelope;
    if (seq != NULL) *seq = p->seq;
    return true;
}

/* ---- Observed addresses ------------------------------------------------------------------------
 */

/* The thin waist of an address: ip4|ip6 then tcp|udp; the rest follows. */
struct tw {
    uint32_t ip_code, tp_code;
    const uint8_t *ip;
    size_t len; /* bytes of the two components */
};

static bool thin_waist(const uint8_t *a, size_t n, struct tw *out)
{
    const uint8_t *p = a, *end = a + n;
    rp_maddr_comp c1, c2;
    if (rp_maddr_next_component(&p, end, &c1, NULL) < 0) return false;
    if (c1.proto->code != RINGP2P_P_IP4 && c1.proto->code != RINGP2P_P_IP6) return false;
    if (rp_maddr_next_component(&p, end, &c2, NULL) < 0) return false;
    if (c2.proto->code != RINGP2P_P_TCP && c2.proto->code != RINGP2P_P_UDP) return false;
    out->ip_code = c1.proto->code;
    out->tp_code = c2.proto->code;
    out->ip = c1.value;
    out->len = (size_t)(p - a);
    return true;
}

/* Observations that say nothing about how the rest of the Internet reaches us. */
static bool useless_ip(const struct tw *t)
{
    static const uint8_t zero[16] = { 0 };
    static const uint8_t loop6[16] = { [15] = 1 };
    static const uint8_t nat64[12] = { 0x00, 0x64, 0xff, 0x9b }; /* 64:ff9b::/96 (RFC 6052) */
    if (t->ip_code == RINGP2P_P_IP4) return t->ip[0] == 127 || memcmp(t->ip, zero, 4) == 0;
    return memcmp(t->ip, zero, 16) == 0 || memcmp(t->ip, loop6, 16) == 0 ||
           memcmp(t->ip, nat64, 12) == 0;
}

static bool has_circuit(const uint8_t *a, size_t n)
{
    const uint8_t *p = a, *end = a + n;
    rp_maddr_comp c;
    while (p < end && rp_maddr_next_component(&p, end, &c, NULL) == 0)
        if (c.proto->code == RINGP2P_P_P2P_CIRCUIT) return true;
    return false;
}

void rp_obsaddr_init(rp_obsaddr *o, const rp_obsaddr_config *cfg)
{
    o->threshold = cfg != NULL && cfg->threshold != 0 ? cfg->threshold : RP_OBSADDR_THRESHOLD;
    o->ttl_ns = cfg != NULL && cfg->ttl_ns != 0 ? cfg->ttl_ns : RP_OBSADDR_TTL_NS;
    o->by_peer_only = cfg != NULL && cfg->by_peer_only;
    o->n_reports = 0;
    o->n_adopted = 0;
}

static int addr_cmp(const uint8_t *a, size_t na, const uint8_t *b, size_t nb)
{
    int c = memcmp(a, b, na < nb ? na : nb);
    if (c != 0) return c;
    return na < nb ? -1 : na > nb;
}

static bool same_key(const rp_obsaddr_report *a, const rp_obsaddr_report *b)
{
    return a->local_len == b->local_len && memcmp(a->local, b->local, a->local_len) == 0 &&
           a->adopt_len == b->adopt_len && memcmp(a->adopt, b->adopt, a->adopt_len) == 0;
}

/* Whether report j's observer is already counted among reports[0..j) of the same key. */
static bool counted_before(const rp_obsaddr *o, size_t j)
{
    const rp_obsaddr_report *b = &o->reports[j];
    for (size_t i = 0; i < j; i++) {
        const rp_obsaddr_report *a = &o->reports[i];
        if (!same_key(a, b)) continue;
        if (o->by_peer_only
                ? ringp2p_peer_id_equal(&a->observer, &b->observer)
                : a->group_len == b->group_len && memcmp(a->group, b->group, a->group_len) == 0)
            return true;
    }
    return false;
}

struct candidate {
    size_t report; /* the first report of its key */
    unsigned observers;
};

/* Orders candidates of one listen address: most observers first, then by address bytes. */
static bool better(const rp_obsaddr *o, const struct candidate *a, const struct candidate *b)
{
    if (a->observers != b->observers) return a->observers > b->observers;
    const rp_obsaddr_report *ra = &o->reports[a->report], *rb = &o->reports[b->report];
    return addr_cmp(ra->adopt, ra->adopt_len, rb->adopt, rb->adopt_len) < 0;
}

/* Recomputes the adopted set from the reports; 1 if it changed. */
static int recompute(rp_obsaddr *o)
{
    struct candidate cand[RP_OBSADDR_REPORTS_MAX];
    size_t n_cand = 0;
    for (size_t j = 0; j < o->n_reports; j++) {
        size_t first = j;
        for (size_t i = 0; i < j; i++)
            if (same_key(&o->reports[i], &o->reports[j])) {
                first = i;
                break;
            }
        if (counted_before(o, j)) continue;
        size_t k = 0;
        while (k < n_cand && cand[k].report != first) k++;
        if (k == n_cand) cand[n_cand++] = (struct candidate){ first, 0 };
        cand[k].observers++;
    }
    rp_obsaddr_addr next[RP_OBSADDR_ADOPTED_MAX];
    size_t n_next = 0;
    for (size_t k = 0; k < n_cand; k++) {
        if (cand[k].observers < o->threshold) continue;
        /* Keep it only if fewer than PER_LOCAL_MAX better ones share its listen address. */
        const rp_obsaddr_report *rk = &o->reports[cand[k].report];
        unsigned ahead = 0;
        for (size_t i = 0; i < n_cand; i++) {
            const rp_obsaddr_report *ri = &o->reports[cand[i].report];
            if (i != k && cand[i].observers >= o->threshold && ri->local_len == rk->local_len &&
                memcmp(ri->local, rk->local, rk->local_len) == 0 && better(o, &cand[i], &cand[k]))
                ahead++;
        }
        if (ahead >= RP_OBSADDR_PER_LOCAL_MAX) continue;
        /* Insert sorted; two listen addresses may map to the same public one. */
        size_t pos = 0;
        int c = 1;
        while (pos < n_next &&
               (c = addr_cmp(next[pos].bytes, next[pos].len, rk->adopt, rk->adopt_len)) < 0)
            pos++;
        if (pos < n_next && c == 0) continue;
        memmove(&next[pos + 1], &next[pos], (n_next - pos) * sizeof(next[0]));
        next[pos].len = rk->adopt_len;
        memcpy(next[pos].bytes, rk->adopt, rk->adopt_len);
        n_next++;
    }
    bool same = n_next == o->n_adopted;
    for (size_t i = 0; same && i < n_next; i++)
        same = addr_cmp(next[i].bytes, next[i].len, o->adopted[i].bytes, o->adopted[i].len) == 0;
    if (same) return 0;
    memcpy(o->adopted, next, n_next * sizeof(next[0]));
    o->n_adopted = n_next;
    return 1;
}

static void drop_report(rp_obsaddr *o, size_t i)
{
    o->reports[i] = o->reports[--o->n_reports];
}

static bool expire_reports(rp_obsaddr *o, uint64_t now_ns)
{
    bool dropped = false;
    for (size_t i = o->n_reports; i-- > 0;) {
        const rp_obsaddr_report *r = &o->reports[i];
        if (now_ns >= r->at_ns && now_ns - r->at_ns >= o->ttl_ns) {
            drop_report(o, i);
            dropped = true;
        }
    }
    return dropped;
}

int rp_obsaddr_record(rp_obsaddr *o, const ringp2p_peer_id *observer, const uint8_t *observer_addr,
                      size_t observer_addr_len, const uint8_t *local, size_t local_len,
                      const uint8_t *observed, size_t observed_len, uint64_t now_ns,
                      ringp2p_errinfo *ei)
{
    ssize_t v;
    if ((v = rp_maddr_validate(local, local_len, ei)) < 0) return (int)v;
    if ((v = rp_maddr_validate(observed, observed_len, ei)) < 0) return (int)v;
    if ((v = rp_maddr_validate(observer_addr, observer_addr_len, ei)) < 0) return (int)v;
    if (local_len > RP_OBSADDR_ADDR_MAX)
        return rp_err(ei, RINGP2P_ELIMIT, "listen address of %zu bytes is over the %d tracked",
                      local_len, RP_OBSADDR_ADDR_MAX);
    bool changed = expire_reports(o, now_ns) && recompute(o);

    struct tw ltw, otw;
    if (!thin_waist(local, local_len, &ltw) || !thin_waist(observed, observed_len, &otw) ||
        otw.ip_code != ltw.ip_code || otw.tp_code != ltw.tp_code || useless_ip(&otw) ||
        has_circuit(observed, observed_len))
        return changed;
    rp_obsaddr_report rep;
    memset(&rep, 0, sizeof(rep));
    rep.observer = *observer;
    rep.at_ns = now_ns;
    const uint8_t *p = observer_addr;
    rp_maddr_comp c;
    if (observer_addr_len > 0 &&
        rp_maddr_next_component(&p, observer_addr + observer_addr_len, &c, NULL) == 0 &&
        (c.proto->code == RINGP2P_P_IP4 || c.proto->code == RINGP2P_P_IP6)) {
        rep.group_len = c.proto->code == RINGP2P_P_IP4 ? 4 : 7; /* IPv6: the /56, as go counts */
        memcpy(rep.group, c.value, rep.group_len);
    }
    if (!o->by_peer_only && rep.group_len == 0) return changed; /* no IP to count it by */
    rep.local_len = (uint8_t)local_len;
    memcpy(rep.local, local, local_len);
    rep.tw_len = (uint8_t)otw.len;
    rep.adopt_len = (uint8_t)(otw.len + local_len - ltw.len);
    memcpy(rep.adopt, observed, otw.len);
    memcpy(rep.adopt + otw.len, local + ltw.len, local_len - ltw.len);

    size_t slot = o->n_reports;
    for (size_t i = 0; i < o->n_reports; i++) {
        const rp_obsaddr_report *r = &o->reports[i];
        if (ringp2p_peer_id_equal(&r->observer, observer) && r->local_len == local_len &&
            memcmp(r->local, local, local_len) == 0) {
            slot = i;
            break;
        }
    }
    if (slot == RP_OBSADDR_REPORTS_MAX) {
        slot = 0;
        for (size_t i = 1; i < o->n_reports; i++)
            if (o->reports[i].at_ns < o->reports[slot].at_ns) slot = i;
    } else if (slot == o->n_reports) {
        o->n_reports++;
    }
    o->reports[slot] = rep;
    return recompute(o) || changed;
}

int rp_obsaddr_expire(rp_obsaddr *o, uint64_t now_ns)
{
    return expire_reports(o, now_ns) ? recompute(o) : 0;
}

int rp_obsaddr_forget(rp_obsaddr *o, const ringp2p_peer_id *observer)
{
    bool dropped = false;
    for (size_t i = o->n_reports; i-- > 0;)
        if (ringp2p_peer_id_equal(&o->reports[i].observer, observer)) {
            drop_report(o, i);
            dropped = true;
        }
    return dropped ? recompute(o) : 0;
}

uint64_t rp_obsaddr_next_expiry(const rp_obsaddr *o)
{
    uint64_t t = UINT64_MAX;
    for (size_t i = 0; i < o->n_reports; i++) {
        uint64_t at = o->reports[i].at_ns;
        uint64_t e = at > UINT64_MAX - o->ttl_ns ? UINT64_MAX : at + o->ttl_ns;
        if (e < t) t = e;
    }
    return t;
}

size_t rp_obsaddr_count(const rp_obsaddr *o)
{
    return o->n_adopted;
}

rp_iov rp_obsaddr_get(const rp_obsaddr *o, size_t i)
{
    if (i >= o->n_adopted) return rp_iov_make(NULL, 0);
    return rp_iov_make(o->adopted[i].bytes, o->adopted[i].len);
}
