#include "protocols/dcutr.h"

#include <string.h>

#include "base/error.h"
#include "base/pb.h"
#include "base/varint.h"

_Static_assert(RP_DCUTR_MSG_MAX < (1 << 14), "messages take at most a 2-byte length prefix");
/* type CONNECT (2) + each address (tag, length, thin waist) + a 2-byte prefix. */
_Static_assert(2 + 2 + RP_DCUTR_DIAL_ADDRS_MAX * (2 + RP_NATADDR_LEN_MAX) <= RP_DCUTR_OUT_MAX,
               "our CONNECT must fit RP_DCUTR_OUT_MAX");
_Static_assert(RP_DCUTR_OUT_MAX <= RP_DCUTR_MSG_MAX, "our messages must be readable");

/* ---- Messages -------------------------------------------------------------------------------- */

int rp_dcutr_msg_decode(const uint8_t **src, const uint8_t *end, rp_dcutr_msg *m,
                        ringp2p_errinfo *ei)
{
    static const char what[] = "HolePunch";
    const uint8_t *start = *src, *p = start;
    if ((size_t)(end - p) > RP_DCUTR_MSG_MAX)
        return rp_err(ei, RINGP2P_ELIMIT, "HolePunch of %td bytes is over the limit of %d", end - p,
                      RP_DCUTR_MSG_MAX);
    bool has_type = false;
    uint64_t type = 0;
    size_t n = 0, skipped = 0;
    rp_iov addrs[RP_DCUTR_ADDRS_MAX];
    while (p < end) {
        rp_pb_field f;
        RP_TRY(rp_pb_next(&p, end, start, what, &f, ei));
        if (f.num == RP_DCUTR_FIELD_TYPE) {
            if (f.wt != RP_PB_VARINT) return rp_pb_wrong_type(what, "type", &f, ei);
            has_type = true;
            type = f.value;
        } else if (f.num == RP_DCUTR_FIELD_OBS_ADDRS) {
            if (f.wt != RP_PB_LEN) return rp_pb_wrong_type(what, "ObsAddrs", &f, ei);
            if (n < RP_DCUTR_ADDRS_MAX)
                addrs[n++] = f.body;
            else
                skipped++;
        }
    }
    if (!has_type) return rp_err(ei, RINGP2P_EPROTOBUF, "HolePunch without its required type");
    m->type = type;
    m->n_addrs = n;
    m->n_addrs_skipped = skipped;
    if (n != 0) memcpy(m->addrs, addrs, n * sizeof(addrs[0]));
    *src = end;
    return 0;
}

ssize_t rp_dcutr_msg_encode(const rp_dcutr_msg *m, uint8_t *dst, size_t cap)
{
    rp_wbuf w = rp_wbuf_make(dst, cap);
    rp_pb_put_varint(&w, RP_DCUTR_FIELD_TYPE, m->type);
    for (size_t i = 0; i < m->n_addrs; i++)
        rp_pb_put_bytes(&w, RP_DCUTR_FIELD_OBS_ADDRS, m->addrs[i].base, m->addrs[i].len);
    if (dst == NULL && cap == 0) return (ssize_t)w.len;
    return rp_wbuf_result(&w);
}

int rp_dcutr_read_frame(const uint8_t **src, const uint8_t *end, rp_dcutr_msg *m,
                        ringp2p_errinfo *ei)
{
    const uint8_t *p = *src;
    uint64_t len;
    int r = rp_uvarint_decode(&p, end, &len);
    if (r == RINGP2P_ETRUNCATED) return 0;
    if (r < 0) return rp_err(ei, RINGP2P_EVARINT, "dcutr: malformed length prefix");
    if (len > RP_DCUTR_MSG_MAX)
        return rp_err(ei, RINGP2P_ELIMIT, "dcutr: message announces %llu bytes, the limit is %d",
                      (unsigned long long)len, RP_DCUTR_MSG_MAX);
    if ((uint64_t)(end - p) < len) return 0;
    const uint8_t *q = p;
    RP_TRY(rp_dcutr_msg_decode(&q, p + len, m, ei));
    *src = p + len;
    return 1;
}

ssize_t rp_dcutr_write(rp_wbuf *w, uint32_t type, const rp_nataddr *addrs, size_t n,
                       ringp2p_errinfo *ei)
{
    size_t body = 1 + rp_pb_varint_len(type);
    for (size_t i = 0; i < n; i++) body += rp_pb_bytes_len(RP_DCUTR_FIELD_OBS_ADDRS, addrs[i].len);
    if (body > RP_DCUTR_MSG_MAX)
        return rp_err(ei, RINGP2P_ELIMIT, "dcutr: a HolePunch of %zu bytes is over %d", body,
                      RP_DCUTR_MSG_MAX);
    size_t before = w->len;
    rp_wbuf_uvarint(w, body);
    rp_pb_put_varint(w, RP_DCUTR_FIELD_TYPE, type);
    for (size_t i = 0; i < n; i++)
        rp_pb_put_bytes(w, RP_DCUTR_FIELD_OBS_ADDRS, addrs[i].bytes, addrs[i].len);
    return (ssize_t)(w->len - before);
}

size_t rp_dcutr_filter_addrs(const rp_iov *in, size_t n, const ringp2p_peer_id *peer,
                             bool allow_private, rp_nataddr *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k < cap; i++) {
        rp_nataddr a;
        int scope = rp_nataddr_parse_tcp(in[i].base, in[i].len, peer, &a);
        if (!rp_nataddr_scope_ok(scope, allow_private) || rp_nataddr_find(out, k, &a) >= 0)
            continue;
        out[k++] = a;
    }
    return k;
}

/* ---- The exchange ---------------------------------------------------------------------------- */

enum {
    ST_DIRECT,        /* initiator: the direct dial is to be asked for */
    ST_DIRECT_WAIT,   /* ... and runs */
    ST_OPEN,          /* initiator: a stream is to be asked for */
    ST_OPEN_WAIT,     /* ... and is being opened */
    ST_AWAIT_CONNECT, /* initiator: our CONNECT is out */
    ST_PUNCH_WAIT,    /* initiator: SYNC is out, half an RTT to wait */
    ST_RESP_CONNECT,  /* responder: waiting for CONNECT */
    ST_RESP_SYNC,     /* responder: our CONNECT is out, waiting for SYNC */
    ST_DIAL,          /* the hole-punch dial is to be asked for */
    ST_DIAL_WAIT,     /* ... and runs */
    ST_DONE,          /* DONE is to be given */
    ST_FINISHED,
};

void rp_dcutr_config_default(rp_dcutr_config *cfg)
{
    *cfg = (rp_dcutr_config){
        .attempts = RP_DCUTR_ATTEMPTS,
        .stream_timeout_ns = RP_DCUTR_STREAM_TIMEOUT_NS,
        .dial_timeout_ns = RP_DCUTR_DIAL_TIMEOUT_NS,
        .allow_private = false,
        .switch_role_last = false,
    };
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static void setup(rp_dcutr *d, const rp_dcutr_config *cfg, const ringp2p_peer_id *remote,
                  const rp_iov *own, size_t n_own, bool initiator)
{
    if (cfg != NULL)
        d->cfg = *cfg;
    else
        rp_dcutr_config_default(&d->cfg);
    if (d->cfg.attempts == 0) d->cfg.attempts = 1;
    if (d->cfg.attempts > 8) d->cfg.attempts = 8;
    d->initiator = initiator;
    d->result = RINGP2P_EAGAIN;
    d->attempt = 0;
    d->client = false;
    d->stream_done = d->dialed = false;
    d->deadline_ns = d->t_sent_ns = d->punch_at_ns = d->rtt_ns = 0;
    d->remote = *remote;
    d->n_theirs = 0;
    d->n_own = rp_dcutr_filter_addrs(own, n_own, NULL, d->cfg.allow_private, d->own,
                                     RP_DCUTR_DIAL_ADDRS_MAX);
}

static void finish(rp_dcutr *d, int result)
{
    if (d->state == ST_DONE || d->state == ST_FINISHED) return;
    d->result = result;
    d->state = ST_DONE;
}

int rp_dcutr_initiator_init(rp_dcutr *d, const rp_dcutr_config *cfg, const ringp2p_peer_id *remote,
                            const rp_iov *own, size_t n_own, const rp_iov *known, size_t n_known,
                            uint64_t now_ns, ringp2p_errinfo *ei)
{
    (void)now_ns;
    setup(d, cfg, remote, own, n_own, true);
    d->state = ST_OPEN;
    if (d->n_own == 0) {
        finish(d, RINGP2P_ENOENT);
        return rp_err(ei, RINGP2P_ENOENT, "dcutr: none of our %zu addresses can be offered", n_own);
    }
    d->n_theirs = rp_dcutr_filter_addrs(known, n_known, remote, d->cfg.allow_private, d->theirs,
                                        RP_DCUTR_DIAL_ADDRS_MAX);
    if (d->n_theirs != 0) d->state = ST_DIRECT;
    return 0;
}

int rp_dcutr_responder_init(rp_dcutr *d, const rp_dcutr_config *cfg, const ringp2p_peer_id *remote,
                            const rp_iov *own, size_t n_own, bool relayed, bool we_dialed,
                            uint64_t now_ns, ringp2p_errinfo *ei)
{
    setup(d, cfg, remote, own, n_own, false);
    d->state = ST_RESP_CONNECT;
    d->attempt = 1;
    d->client = true; /* DCUtR.md: A is the client */
    d->deadline_ns = add_sat(now_ns, d->cfg.stream_timeout_ns);
    if (!relayed || !we_dialed) {
        finish(d, RINGP2P_EPROTOCOL);
        return rp_err(ei, RINGP2P_EPROTOCOL, "dcutr: a hole-punch stream on a connection %s",
                      !relayed ? "that is not relayed" : "the peer dialed");
    }
    if (d->n_own == 0) {
        finish(d, RINGP2P_ENOENT);
        return rp_err(ei, RINGP2P_ENOENT, "dcutr: none of our %zu addresses can be offered", n_own);
    }
    return 0;
}

/* A hole-punch dial failed (or timed out): try again, or give up. */
static void dial_failed(rp_dcutr *d, int err)
{
    if (d->initiator && d->attempt < d->cfg.attempts)
        d->state = ST_OPEN;
    else
        finish(d, err);
}

static void apply_time(rp_dcutr *d, uint64_t now_ns)
{
    switch (d->state) {
    case ST_DIRECT_WAIT:
        if (now_ns >= d->deadline_ns) d->state = ST_OPEN;
        break;
    case ST_OPEN_WAIT:
    case ST_AWAIT_CONNECT:
    case ST_RESP_CONNECT:
    case ST_RESP_SYNC:
        if (now_ns >= d->deadline_ns) finish(d, RINGP2P_ETIMEDOUT);
        break;
    case ST_PUNCH_WAIT:
        if (now_ns >= d->punch_at_ns) d->state = ST_DIAL;
        break;
    case ST_DIAL_WAIT:
        if (now_ns >= d->deadline_ns) dial_failed(d, RINGP2P_ETIMEDOUT);
        break;
    default: break;
    }
}

bool rp_dcutr_poll(rp_dcutr *d, uint64_t now_ns, rp_dcutr_action *act)
{
    apply_time(d, now_ns);
    *act = (rp_dcutr_action){ .kind = RP_DCUTR_NONE, .rtt_ns = d->rtt_ns };
    switch (d->state) {
    case ST_DIRECT:
        act->kind = RP_DCUTR_DIRECT_DIAL;
        act->attempt = 0;
        act->client = true;
        act->addrs = d->theirs;
        act->n_addrs = d->n_theirs;
        act->deadline_ns = d->deadline_ns = add_sat(now_ns, d->cfg.dial_timeout_ns);
        d->dialed = true;
        d->state = ST_DIRECT_WAIT;
        return true;
    case ST_OPEN:
        d->attempt++;
        d->stream_done = false;
        act->kind = RP_DCUTR_OPEN_STREAM;
        act->attempt = d->attempt;
        act->deadline_ns = d->deadline_ns = add_sat(now_ns, d->cfg.stream_timeout_ns);
        d->state = ST_OPEN_WAIT;
        return true;
    case ST_DIAL:
        act->kind = RP_DCUTR_DIAL;
        act->attempt = d->attempt;
        act->client = d->client;
        act->addrs = d->theirs;
        act->n_addrs = d->n_theirs;
        act->deadline_ns = d->deadline_ns = add_sat(now_ns, d->cfg.dial_timeout_ns);
        d->dialed = true;
        d->state = ST_DIAL_WAIT;
        return true;
    case ST_DONE:
        act->kind = RP_DCUTR_DONE;
        act->result = d->result;
        act->attempts = d->attempt;
        d->state = ST_FINISHED;
        return true;
    default: return false;
    }
}

uint64_t rp_dcutr_deadline(const rp_dcutr *d)
{
    switch (d->state) {
    case ST_DIRECT_WAIT:
    case ST_OPEN_WAIT:
    case ST_AWAIT_CONNECT:
    case ST_RESP_CONNECT:
    case ST_RESP_SYNC:
    case ST_DIAL_WAIT: return d->deadline_ns;
    case ST_PUNCH_WAIT: return d->punch_at_ns;
    case ST_FINISHED: return UINT64_MAX;
    default: return 0; /* an action is due: poll now */
    }
}

int rp_dcutr_stream_opened(rp_dcutr *d, uint64_t now_ns, rp_wbuf *out, ringp2p_errinfo *ei)
{
    if (d->state != ST_OPEN_WAIT)
        return rp_err(ei, RINGP2P_EPROTOCOL, "dcutr: no hole-punch stream was asked for");
    if (rp_dcutr_write(out, RP_DCUTR_CONNECT, d->own, d->n_own, ei) < 0 || !rp_wbuf_ok(out)) {
        finish(d, RINGP2P_ENOBUF);
        return rp_err(ei, RINGP2P_ENOBUF, "dcutr: no room for our CONNECT");
    }
    d->t_sent_ns = now_ns;
    d->state = ST_AWAIT_CONNECT;
    return 0;
}

void rp_dcutr_stream_failed(rp_dcutr *d, int err, uint64_t now_ns)
{
    (void)now_ns;
    if (d->stream_done) return; /* the exchange was over: nothing lost */
    if (d->state == ST_OPEN_WAIT || d->state == ST_AWAIT_CONNECT || d->state == ST_RESP_CONNECT ||
        d->state == ST_RESP_SYNC)
        finish(d, err < 0 ? err : RINGP2P_ECLOSED);
}

static int fail(rp_dcutr *d, int err)
{
    finish(d, err);
    return err;
}

int rp_dcutr_recv(rp_dcutr *d, const uint8_t **src, const uint8_t *end, uint64_t now_ns,
                  rp_wbuf *out, ringp2p_errinfo *ei)
{
    if (d->stream_done) return 1;
    for (;;) {
        if (d->state != ST_AWAIT_CONNECT && d->state != ST_RESP_CONNECT &&
            d->state != ST_RESP_SYNC) {
            if (*src == end) return 0;
            return fail(d, rp_err(ei, RINGP2P_EPROTOCOL, "dcutr: a message out of turn"));
        }
        rp_dcutr_msg m;
        const uint8_t *p = *src;
        int r = rp_dcutr_read_frame(&p, end, &m, ei);
        if (r == 0) return 0;
        if (r < 0) return fail(d, r);
        uint64_t want = d->state == ST_RESP_SYNC ? RP_DCUTR_SYNC : RP_DCUTR_CONNECT;
        if (m.type != want)
            return fail(d, rp_err(ei, RINGP2P_EPROTOCOL, "dcutr: expected %s, got type %llu",
                                  want == RP_DCUTR_SYNC ? "SYNC" : "CONNECT",
                                  (unsigned long long)m.type));
        *src = p;
        if (d->state == ST_RESP_SYNC) {
            d->rtt_ns = now_ns - d->t_sent_ns;
            d->stream_done = true;
            d->state = ST_DIAL; /* DCUtR.md: upon receiving the Sync, A immediately dials */
            return 1;
        }
        d->n_theirs = rp_dcutr_filter_addrs(m.addrs, m.n_addrs, &d->remote, d->cfg.allow_private,
                                            d->theirs, RP_DCUTR_DIAL_ADDRS_MAX);
        if (d->n_theirs == 0)
            return fail(d, rp_err(ei, RINGP2P_EPROTOCOL,
                                  "dcutr: CONNECT with none of its %zu addresses dialable",
                                  m.n_addrs + m.n_addrs_skipped));
        if (d->state == ST_RESP_CONNECT) {
            if (rp_dcutr_write(out, RP_DCUTR_CONNECT, d->own, d->n_own, ei) < 0 || !rp_wbuf_ok(out))
                return fail(d, rp_err(ei, RINGP2P_ENOBUF, "dcutr: no room for our CONNECT"));
            d->t_sent_ns = now_ns;
            d->state = ST_RESP_SYNC;
            continue;
        }
        /* Initiator: CONNECT answered. SYNC, then dial after half the round trip. */
        d->rtt_ns = now_ns - d->t_sent_ns;
        if (rp_dcutr_write(out, RP_DCUTR_SYNC, NULL, 0, ei) < 0 || !rp_wbuf_ok(out))
            return fail(d, rp_err(ei, RINGP2P_ENOBUF, "dcutr: no room for SYNC"));
        d->punch_at_ns = now_ns + d->rtt_ns / 2;
        d->client = d->cfg.switch_role_last && d->attempt == d->cfg.attempts;
        d->stream_done = true;
        d->state = ST_PUNCH_WAIT;
        return 1;
    }
}

void rp_dcutr_dial_result(rp_dcutr *d, unsigned attempt, int result, uint64_t now_ns)
{
    (void)now_ns;
    if (d->state == ST_DONE || d->state == ST_FINISHED || !d->dialed) return;
    if (result == 0) {
        finish(d, 0); /* a connection is a connection, however late */
        return;
    }
    if (d->state == ST_DIRECT_WAIT && attempt == 0)
        d->state = ST_OPEN;
    else if (d->state == ST_DIAL_WAIT && attempt == d->attempt)
        dial_failed(d, result < 0 ? result : RINGP2P_EUNREACHABLE);
}

bool rp_dcutr_finished(const rp_dcutr *d)
{
    return d->state == ST_DONE || d->state == ST_FINISHED;
}

int rp_dcutr_result(const rp_dcutr *d)
{
    return rp_dcutr_finished(d) ? d->result : RINGP2P_EAGAIN;
}
