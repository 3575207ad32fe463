/* Ping: a dialer and a listener wired together in memory under a fake clock. */
#include <criterion/criterion.h>

#include <string.h>

#include "protocols/ping.h"

#define MS UINT64_C(1000000)

/* One direction of a stream: bytes written and not yet read. */
typedef struct pipe {
    uint8_t buf[4096];
    size_t head, tail;
} pipe_t;

static void pipe_write(pipe_t *p, const void *b, size_t n)
{
    cr_assert_leq(p->tail + n, sizeof(p->buf));
    memcpy(p->buf + p->tail, b, n);
    p->tail += n;
}

/* Lets the listener echo what reached it, `chunk` bytes at a time, into the other pipe. */
static void serve(rp_ping_server *s, pipe_t *in, pipe_t *out, size_t chunk, uint64_t now)
{
    while (in->head < in->tail) {
        size_t n = in->tail - in->head < chunk ? in->tail - in->head : chunk;
        const uint8_t *p = in->buf + in->head;
        uint8_t tmp[64];
        rp_wbuf w = rp_wbuf_make(tmp, sizeof(tmp));
        size_t echoed = rp_ping_server_recv(s, &p, p + n, now, &w);
        cr_assert_eq(echoed, n);
        cr_assert_eq(w.len, n);
        in->head += n;
        pipe_write(out, tmp, w.len);
    }
}

Test(ping, round_trips_under_a_fake_clock)
{
    static const struct {
        size_t chunk; /* how the bytes travel */
        uint64_t rtt;
    } cases[] = { { 32, 5 * MS }, { 1, 1 }, { 7, 250 * MS }, { 64, 0 } };
    rp_ping_client c;
    rp_ping_server s;
    pipe_t up = { .head = 0 }, down = { .head = 0 };
    rp_ping_client_init(&c);
    uint64_t now = 1000 * MS;
    rp_ping_server_init(&s, now);
    /* Several pings on one stream, as the spec allows. */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t payload[RP_PING_LEN];
        ringp2p_errinfo ei = { 0 };
        cr_assert_eq(rp_ping_client_send(&c, NULL, now, payload, sizeof(payload), &ei), RP_PING_LEN,
                     "%s", ei.msg);
        cr_assert_eq(rp_ping_client_deadline(&c), now + RP_PING_TIMEOUT_NS);
        pipe_write(&up, payload, sizeof(payload));
        serve(&s, &up, &down, cases[i].chunk, now + cases[i].rtt / 2);
        now += cases[i].rtt;
        uint64_t rtt = 12345;
        int r = 0;
        while (down.head < down.tail) {
            size_t n =
                down.tail - down.head < cases[i].chunk ? down.tail - down.head : cases[i].chunk;
            const uint8_t *p = down.buf + down.head;
            r = rp_ping_client_recv(&c, &p, p + n, now, &rtt, &ei);
            cr_assert_geq(r, 0, "%s", ei.msg);
            down.head = (size_t)(p - down.buf);
            if (down.head < down.tail) cr_assert_eq(r, 0, "complete only at the last byte");
        }
        cr_assert_eq(r, 1);
        cr_assert_eq(rtt, cases[i].rtt, "case %zu", i);
        cr_assert_eq(c.last_rtt_ns, cases[i].rtt);
        cr_assert_eq(rp_ping_client_deadline(&c), UINT64_MAX, "nothing outstanding");
        now += 1000 * MS;
    }
    cr_assert_eq(c.count, 4);
    cr_assert_eq(rp_ping_server_count(&s), 4);
    cr_assert_eq(rp_ping_server_end(&s, NULL), 0);
}

Test(ping, echo_must_match)
{
    static const uint8_t payload[RP_PING_LEN] = { 1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                                  12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                                  23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };
    for (size_t at = 0; at < RP_PING_LEN; at += 31) {
        rp_ping_client c;
        rp_ping_client_init(&c);
        uint8_t out[RP_PING_LEN];
        cr_assert_eq(rp_ping_client_send(&c, payload, 0, out, sizeof(out), NULL), RP_PING_LEN);
        cr_assert_arr_eq(out, payload, RP_PING_LEN);
        uint8_t echo[RP_PING_LEN];
        memcpy(echo, payload, sizeof(echo));
        echo[at] ^= 0x40;
        const uint8_t *p = echo;
        /* The first half is accepted; the mismatch shows when the echo is complete. */
        cr_assert_eq(rp_ping_client_recv(&c, &p, echo + 16, 1, NULL, NULL), 0);
        ringp2p_errinfo ei = { 0 };
        const uint8_t *q = p;
        cr_assert_eq(rp_ping_client_recv(&c, &q, echo + RP_PING_LEN, 1, NULL, &ei),
                     RINGP2P_EPROTOCOL, "byte %zu", at);
        cr_assert_eq(q, p, "cursor unchanged on error");
        cr_assert_eq(ei.code, RINGP2P_EPROTOCOL);
    }
}

Test(ping, unsolicited_and_early_bytes)
{
    rp_ping_client c;
    rp_ping_client_init(&c);
    static const uint8_t junk[4] = { 0 };
    const uint8_t *p = junk;
    ringp2p_errinfo ei = { 0 };
    cr_assert_eq(rp_ping_client_recv(&c, &p, junk + 4, 0, NULL, &ei), RINGP2P_EPROTOCOL);
    cr_assert_eq(p, junk);
    cr_assert_eq(rp_ping_client_recv(&c, &p, p, 0, NULL, &ei), 0, "no bytes, no error");
    /* One at a time; a second send before the echo is refused. */
    uint8_t out[RP_PING_LEN];
    cr_assert_eq(rp_ping_client_send(&c, NULL, 0, out, sizeof(out) - 1, &ei), RINGP2P_ENOBUF);
    cr_assert_eq(rp_ping_client_send(&c, NULL, 0, out, sizeof(out), &ei), RP_PING_LEN);
    cr_assert_eq(rp_ping_client_send(&c, NULL, 0, out, sizeof(out), &ei), RINGP2P_EINVAL);
    /* Bytes past the echo (the peer's next echo, or garbage) stay for the caller. */
    uint8_t more[RP_PING_LEN + 5];
    memcpy(more, out, RP_PING_LEN);
    memset(more + RP_PING_LEN, 0xaa, 5);
    p = more;
    cr_assert_eq(rp_ping_client_recv(&c, &p, more + sizeof(more), 9, NULL, &ei), 1);
    cr_assert_eq(p, more + RP_PING_LEN);
    cr_assert_eq(rp_ping_client_recv(&c, &p, more + sizeof(more), 9, NULL, &ei), RINGP2P_EPROTOCOL);
}

Test(ping, payloads_are_random)
{
    rp_ping_client c;
    rp_ping_client_init(&c);
    uint8_t a[RP_PING_LEN], b[RP_PING_LEN];
    cr_assert_eq(rp_ping_client_send(&c, NULL, 0, a, sizeof(a), NULL), RP_PING_LEN);
    const uint8_t *p = a;
    cr_assert_eq(rp_ping_client_recv(&c, &p, a + RP_PING_LEN, 0, NULL, NULL), 1);
    cr_assert_eq(rp_ping_client_send(&c, NULL, 0, b, sizeof(b), NULL), RP_PING_LEN);
    cr_assert_arr_neq(a, b, RP_PING_LEN);
}

Test(ping, timeouts)
{
    rp_ping_client c;
    rp_ping_client_init(&c);
    uint8_t out[RP_PING_LEN];
    cr_assert_eq(rp_ping_client_check(&c, UINT64_MAX - 1, NULL), 0, "nothing outstanding");
    uint64_t t0 = 5000 * MS;
    rp_ping_client_send(&c, NULL, t0, out, sizeof(out), NULL);
    cr_assert_eq(rp_ping_client_check(&c, t0 + RP_PING_TIMEOUT_NS - 1, NULL), 0);
    ringp2p_errinfo ei = { 0 };
    cr_assert_eq(rp_ping_client_check(&c, t0 + RP_PING_TIMEOUT_NS, &ei), RINGP2P_ETIMEDOUT);
    cr_assert_not_null(strstr(ei.msg, "10000 ms"), "%s", ei.msg);
    /* Near the end of time the deadline saturates. */
    rp_ping_client_init(&c);
    rp_ping_client_send(&c, NULL, UINT64_MAX - 5, out, sizeof(out), NULL);
    cr_assert_eq(rp_ping_client_deadline(&c), UINT64_MAX);

    rp_ping_server s;
    rp_ping_server_init(&s, t0);
    cr_assert_eq(rp_ping_server_deadline(&s), t0 + RP_PING_TIMEOUT_NS);
    uint8_t echo[RP_PING_LEN];
    rp_wbuf w = rp_wbuf_make(echo, sizeof(echo));
    const uint8_t *p = out;
    rp_ping_server_recv(&s, &p, out + 3, t0 + 7 * MS, &w);
    cr_assert_eq(rp_ping_server_deadline(&s), t0 + 7 * MS + RP_PING_TIMEOUT_NS, "activity resets");
}

Test(ping, server_back_pressure_and_partial_end)
{
    rp_ping_server s;
    rp_ping_server_init(&s, 0);
    uint8_t in[3 * RP_PING_LEN];
    for (size_t i = 0; i < sizeof(in); i++) in[i] = (uint8_t)i;
    uint8_t out[40];
    rp_wbuf w = rp_wbuf_make(out, sizeof(out));
    const uint8_t *p = in;
    cr_assert_eq(rp_ping_server_recv(&s, &p, in + sizeof(in), 1, &w), 40, "as much as fits");
    cr_assert_eq(p, in + 40);
    cr_assert_arr_eq(out, in, 40);
    cr_assert_eq(rp_ping_server_recv(&s, &p, in + sizeof(in), 2, &w), 0, "full: nothing consumed");
    cr_assert_eq(p, in + 40);
    cr_assert_eq(rp_ping_server_count(&s), 1);
    ringp2p_errinfo ei = { 0 };
    cr_assert_eq(rp_ping_server_end(&s, &ei), RINGP2P_ETRUNCATED, "ended 8 bytes into a ping");
    cr_assert_not_null(strstr(ei.msg, "8 bytes"), "%s", ei.msg);
    w = rp_wbuf_make(out, sizeof(out));
    cr_assert_eq(rp_ping_server_recv(&s, &p, in + sizeof(in), 3, &w), 40);
    w = rp_wbuf_make(out, sizeof(out));
    cr_assert_eq(rp_ping_server_recv(&s, &p, in + sizeof(in), 3, &w), 16);
    cr_assert_eq(rp_ping_server_count(&s), 3);
    cr_assert_eq(rp_ping_server_end(&s, NULL), 0);
}
