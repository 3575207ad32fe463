/* perf: a client and a server wired together in memory under a fake clock. */
#include <criterion/criterion.h>

#include <string.h>

#include "protocols/perf.h"

#define MS UINT64_C(1000000)

Test(perf, header_is_big_endian_uint64)
{
    struct {
        uint64_t v;
        uint8_t b[8];
    } v[] = {
        { 0, { 0, 0, 0, 0, 0, 0, 0, 0 } },
        { 1, { 0, 0, 0, 0, 0, 0, 0, 1 } },
        { 0x0102030405060708ull, { 1, 2, 3, 4, 5, 6, 7, 8 } },
        { UINT64_MAX, { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } },
    };
    for (size_t i = 0; i < 4; i++) {
        uint8_t b[8];
        rp_perf_header_encode(b, v[i].v);
        cr_assert_eq(memcmp(b, v[i].b, 8), 0);
        /* The server reads the same value back, whatever the split. */
        for (size_t cut = 0; cut <= 8; cut++) {
            rp_perf_server s;
            rp_perf_server_init(&s, 0, 0);
            const uint8_t *p = b;
            cr_assert_eq(rp_perf_server_recv(&s, &p, b + cut, 0, NULL), 0);
            cr_assert_eq(rp_perf_server_recv(&s, &p, b + 8, 0, NULL), 0);
            cr_assert_eq(p, b + 8);
            cr_assert_eq(rp_perf_server_eof(&s, 0, NULL), 0);
            cr_assert_eq(s.download, v[i].v);
            cr_assert_eq(s.uploaded, 0);
        }
    }
}

/* Runs one transfer: writes go through a "stream" that takes at most `take` bytes per call. */
static void transfer(uint64_t up, uint64_t down, size_t take, size_t iov_cap)
{
    rp_perf_client c;
    rp_perf_server s;
    uint64_t now = 1000 * MS;
    rp_perf_client_init(&c, up, down, now);
    rp_perf_server_init(&s, 0, now);
    rp_iov iov[16];
    size_t niov;
    uint64_t wire_up = 0;
    while (!rp_perf_client_want_close(&c)) {
        size_t n = rp_perf_client_next(&c, iov, iov_cap, &niov, take);
        cr_assert_gt(n, 0);
        cr_assert_leq(n, take);
        cr_assert_leq(niov, iov_cap);
        cr_assert_eq(rp_iov_total(iov, niov), n);
        for (size_t i = 0; i < niov; i++) {
            const uint8_t *p = iov[i].base;
            cr_assert_eq(rp_perf_server_recv(&s, &p, p + iov[i].len, now, NULL), 0);
            cr_assert_eq((uint8_t *)iov[i].base + iov[i].len, p);
        }
        wire_up += n;
        now += MS;
        cr_assert_eq(rp_perf_client_wrote(&c, n, now), 0);
    }
    cr_assert_eq(rp_perf_client_next(&c, iov, iov_cap, &niov, take), 0);
    cr_assert_eq(wire_up, up + 8);
    cr_assert_eq(c.upload_done_ns, now);
    /* Bytes before our half-close are refused; the server does not send before EOF. */
    cr_assert_eq(rp_perf_server_next(&s, iov, iov_cap, &niov, 0), 0);
    cr_assert_eq(rp_perf_server_eof(&s, now, NULL), 0);
    cr_assert_eq(s.uploaded, up);
    cr_assert_eq(s.download, down);
    while (s.phase == RP_PERF_DOWNLOAD) {
        size_t n = rp_perf_server_next(&s, iov, iov_cap, &niov, take);
        cr_assert_gt(n, 0);
        for (size_t i = 0; i < niov; i++) {
            cr_assert_eq(iov[i].base, rp_perf_block(), "payload is the constant block");
            cr_assert_leq(iov[i].len, RP_PERF_BLOCK);
        }
        now += MS;
        cr_assert_eq(rp_perf_client_recv(&c, n, now, NULL), 0);
        cr_assert_eq(rp_perf_server_wrote(&s, n, now), 0);
    }
    cr_assert_eq(s.phase, RP_PERF_DONE);
    cr_assert_eq(s.sent, down);
    cr_assert_eq(rp_perf_client_eof(&c, now, NULL), 0);
    cr_assert_eq(c.phase, RP_PERF_DONE);
    cr_assert_eq(c.downloaded, down);
    cr_assert_eq(c.end_ns, now);
    cr_assert_eq(c.end_ns - c.start_ns >= c.upload_done_ns - c.start_ns, 1);
    if (down > 0) cr_assert_gt(c.first_byte_ns, c.upload_done_ns);
}

Test(perf, transfers_of_every_shape)
{
    const uint64_t sizes[] = { 0, 1, 7, 8, 65535, 65536, 65537, 1000000 };
    const size_t takes[] = { 1, 5, 8, 9, 4096, 1 << 20 };
    for (size_t i = 0; i < 8; i++)
        for (size_t j = 0; j < 8; j++)
            for (size_t k = 0; k < 6; k++) {
                if (takes[k] < 4096 && (sizes[i] > 70000 || sizes[j] > 70000)) continue;
                transfer(sizes[i], sizes[j], takes[k], 1 + k % 3);
            }
    transfer(10u << 20, 64u << 20, 1 << 20, 16);
}

Test(perf, protocol_errors)
{
    ringp2p_errinfo ei;
    rp_perf_client c;
    rp_perf_client_init(&c, 0, 10, 0);
    /* The server may not answer before our upload is complete. */
    cr_assert_eq(rp_perf_client_recv(&c, 1, 0, &ei), RINGP2P_EPROTOCOL);
    cr_assert_eq(rp_perf_client_wrote(&c, 9, 0), RINGP2P_EINVAL);
    cr_assert_eq(rp_perf_client_wrote(&c, 8, 0), 0);
    cr_assert(rp_perf_client_want_close(&c));
    cr_assert_eq(rp_perf_client_recv(&c, 11, 0, &ei), RINGP2P_EPROTOCOL);
    cr_assert(strstr(ei.msg, "more than") != NULL);
    cr_assert_eq(rp_perf_client_recv(&c, 4, 0, &ei), 0);
    cr_assert_eq(rp_perf_client_eof(&c, 0, &ei), RINGP2P_ETRUNCATED);
    cr_assert(strstr(ei.msg, "4 of 10") != NULL, "%s", ei.msg);
    cr_assert_eq(rp_perf_client_recv(&c, 6, 0, &ei), 0);
    cr_assert_eq(rp_perf_client_recv(&c, 1, 0, &ei), RINGP2P_EPROTOCOL);
    cr_assert_eq(rp_perf_client_eof(&c, 0, &ei), 0);

    rp_perf_server s;
    rp_perf_server_init(&s, 1000, 0);
    uint8_t h[8];
    rp_perf_header_encode(h, 1001);
    const uint8_t *p = h;
    cr_assert_eq(rp_perf_server_recv(&s, &p, h + 8, 0, &ei), RINGP2P_ELIMIT);
    cr_assert_eq(p, h);
    rp_perf_server_init(&s, 0, 0);
    cr_assert_eq(rp_perf_server_recv(&s, &p, h + 5, 0, &ei), 0);
    cr_assert_eq(rp_perf_server_eof(&s, 0, &ei), RINGP2P_ETRUNCATED);
    rp_perf_server_init(&s, 0, 0);
    p = h;
    cr_assert_eq(rp_perf_server_recv(&s, &p, h + 8, 0, &ei), 0);
    cr_assert_eq(rp_perf_server_eof(&s, 0, &ei), 0);
    p = h;
    cr_assert_eq(rp_perf_server_recv(&s, &p, h + 1, 0, &ei), RINGP2P_EPROTOCOL);
    cr_assert_eq(rp_perf_server_wrote(&s, 1002, 0), RINGP2P_EINVAL);

    /* A download of 2^64-1 (the timer-based variant) is valid: the server streams until reset. */
    rp_perf_server_init(&s, 0, 0);
    rp_perf_header_encode(h, UINT64_MAX);
    p = h;
    cr_assert_eq(rp_perf_server_recv(&s, &p, h + 8, 0, &ei), 0);
    cr_assert_eq(rp_perf_server_eof(&s, 0, &ei), 0);
    rp_iov iov[4];
    size_t niov;
    cr_assert_eq(rp_perf_server_next(&s, iov, 4, &niov, 0), 4 * (size_t)RP_PERF_BLOCK);
    cr_assert_eq(niov, 4);
    cr_assert_eq(rp_perf_server_wrote(&s, 4 * RP_PERF_BLOCK, 0), 0);
    cr_assert_eq(s.phase, RP_PERF_DOWNLOAD);
}
