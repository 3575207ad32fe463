#include "protocols/ping.h"

#include <string.h>

#include <openssl/mem.h>
#include <openssl/rand.h>

#include "base/error.h"

void rp_ping_client_init(rp_ping_client *c)
{
    memset(c, 0, sizeof(*c));
}

ssize_t rp_ping_client_send(rp_ping_client *c, const uint8_t *random, uint64_t now_ns, uint8_t *dst,
                            size_t cap, ringp2p_errinfo *ei)
{
    if (c->waiting)
        return rp_err(ei, RINGP2P_EINVAL, "ping: the previous ping is still waiting for its echo");
    if (cap < RP_PING_LEN)
        return rp_err(ei, RINGP2P_ENOBUF, "ping: a payload needs %d bytes, the buffer has %zu",
                      RP_PING_LEN, cap);
    if (random != NULL)
        memcpy(c->sent, random, RP_PING_LEN);
    else if (RAND_bytes(c->sent, RP_PING_LEN) != 1)
        return rp_err(ei, RINGP2P_ECRYPTO, "ping: no random bytes for the payload");
    memcpy(dst, c->sent, RP_PING_LEN);
    c->n_got = 0;
    c->waiting = true;
    c->sent_ns = now_ns;
    return RP_PING_LEN;
}

int rp_ping_client_recv(rp_ping_client *c, const uint8_t **src, const uint8_t *end, uint64_t now_ns,
                        uint64_t *rtt_ns, ringp2p_errinfo *ei)
{
    if (*src == end) return 0;
    if (!c->waiting)
        return rp_err(ei, RINGP2P_EPROTOCOL,
                      "ping: %td bytes arrived while no ping was waiting for an echo", end - *src);
    size_t want = RP_PING_LEN - c->n_got, n = (size_t)(end - *src);
    if (n > want) n = want;
    memcpy(c->got + c->n_got, *src, n);
    if (c->n_got + n < RP_PING_LEN) {
        c->n_got = (uint8_t)(c->n_got + n);
        *src += n;
        return 0;
    }
    /* The payload is not secret, but a constant-time compare costs nothing here. */
    if (CRYPTO_memcmp(c->got, c->sent, RP_PING_LEN) != 0)
        return rp_err(ei, RINGP2P_EPROTOCOL, "ping: the echo differs from the payload sent");
    *src += n;
    c->n_got = RP_PING_LEN;
    c->waiting = false;
    c->last_rtt_ns = now_ns >= c->sent_ns ? now_ns - c->sent_ns : 0;
    c->count++;
    if (rtt_ns != NULL) *rtt_ns = c->last_rtt_ns;
    return 1;
}

uint64_t rp_ping_client_deadline(const rp_ping_client *c)
{
    if (!c->waiting) return UINT64_MAX;
    return c->sent_ns > UINT64_MAX - RP_PING_TIMEOUT_NS ? UINT64_MAX
                                                        : c->sent_ns + RP_PING_TIMEOUT_NS;
}

int rp_ping_client_check(const rp_ping_client *c, uint64_t now_ns, ringp2p_errinfo *ei)
{
    if (now_ns < rp_ping_client_deadline(c)) return 0;
    return rp_err(ei, RINGP2P_ETIMEDOUT, "ping: no echo within %llu ms",
                  (unsigned long long)(RP_PING_TIMEOUT_NS / 1000000));
}

void rp_ping_server_init(rp_ping_server *s, uint64_t now_ns)
{
    s->bytes = 0;
    s->last_ns = now_ns;
}

size_t rp_ping_server_recv(rp_ping_server *s, const uint8_t **src, const uint8_t *end,
                           uint64_t now_ns, rp_wbuf *out)
{
    size_t room = out->len < out->cap ? out->cap - out->len : 0;
    size_t n = (size_t)(end - *src);
    if (n > room) n = room;
    if (n == 0) return 0;
    rp_wbuf_put(out, *src, n);
    *src += n;
    s->bytes += n;
    s->last_ns = now_ns;
    return n;
}

uint64_t rp_ping_server_count(const rp_ping_server *s)
{
    return s->bytes / RP_PING_LEN;
}

uint64_t rp_ping_server_deadline(const rp_ping_server *s)
{
    return s->last_ns > UINT64_MAX - RP_PING_TIMEOUT_NS ? UINT64_MAX
                                                        : s->last_ns + RP_PING_TIMEOUT_NS;
}

int rp_ping_server_end(const rp_ping_server *s, ringp2p_errinfo *ei)
{
    if (s->bytes % RP_PING_LEN == 0) return 0;
    return rp_err(ei, RINGP2P_ETRUNCATED, "ping: the stream ended %llu bytes into a ping",
                  (unsigned long long)(s->bytes % RP_PING_LEN));
}
