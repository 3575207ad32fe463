/*
 * Ping (libp2p specs, ping/ping.md), sans-IO.
 *
 * The dialer writes 32 random bytes, the listener echoes them, the dialer
 * measures the round trip; the dialer may repeat on the same stream and
 * closes its write side when done, and the listener echoes until then. The
 * host reads the clock and passes `now_ns` (monotonic nanoseconds) in; the
 * cores never look at it themselves.
 *
 *   dialer:   rp_ping_client_init(&c);
 *             rp_ping_client_send(&c, NULL, now, buf, cap)   -> 32 bytes to send
 *             rp_ping_client_recv(&c, &p, end, now, &rtt)    -> 1 with the RTT when the echo is in
 *             rp_ping_client_deadline(&c): when to give up (ETIMEDOUT), reset the stream
 *   listener: rp_ping_server_recv(&s, &p, end, now, &out)    -> echo what was consumed
 *             at EOF: rp_ping_server_end(&s)                 -> then close
 */
#ifndef RP_PROTOCOLS_PING_H
#define RP_PROTOCOLS_PING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/bytes.h"
#include "ringp2p/error.h"

/* ping/ping.md "Protocol". */
#define RP_PING_PROTOCOL_ID "/ipfs/ping/1.0.0"
#define RP_PING_LEN         32
/*
 * How long the dialer waits for an echo, and the listener for the next ping,
 * before giving up on the stream. The spec sets none; go-libp2p (pingTimeout)
 * and js-libp2p (TIMEOUT) both use 10 s, and js aborts a connection whose ping
 * times out.
 */
#define RP_PING_TIMEOUT_NS (UINT64_C(10) * 1000000000)
/*
 * ping/ping.md: at most one outbound ping stream per peer, and a listener
 * should accept at most two inbound ones (for the host to enforce).
 */
#define RP_PING_OUTBOUND_STREAMS_MAX 1
#define RP_PING_INBOUND_STREAMS_MAX  2

typedef struct rp_ping_client {
    uint8_t sent[RP_PING_LEN]; /* the outstanding payload */
    uint8_t got[RP_PING_LEN];  /* the echo so far */
    uint8_t n_got;
    bool waiting; /* a payload is out and its echo not complete */
    uint64_t sent_ns;
    uint64_t last_rtt_ns;
    uint64_t count; /* echoes received */
} rp_ping_client;

void rp_ping_client_init(rp_ping_client *c);

/*
 * Starts a ping: writes the payload — `random` (RP_PING_LEN bytes, copied;
 * tests) or, when NULL, fresh bytes from the system's CSPRNG — into dst[cap]
 * and notes `now_ns` as the send time. Returns RP_PING_LEN, RINGP2P_ENOBUF
 * (cap < RP_PING_LEN, nothing changed), RINGP2P_EINVAL (the previous ping has
 * not been answered: one at a time, so the echo can be matched) or
 * RINGP2P_ECRYPTO (no random bytes).
 */
ssize_t rp_ping_client_send(rp_ping_client *c, const uint8_t *random, uint64_t now_ns, uint8_t *dst,
                            size_t cap, ringp2p_errinfo *ei);

/*
 * Consumes echo bytes from [*src, end) (the host's, read only), up to the end
 * of the outstanding payload. Returns 1 when the echo is complete and equal to
 * what was sent (*rtt_ns, if not NULL, is now_ns minus the send time; *src is
 * just past it, so bytes of a later echo are left), 0 when more is needed (all
 * input consumed), or RINGP2P_EPROTOCOL: the echo differs from the payload,
 * or bytes came while no ping was outstanding (*src unchanged). After an error
 * the stream should be reset.
 */
int rp_ping_client_recv(rp_ping_client *c, const uint8_t **src, const uint8_t *end, uint64_t now_ns,
                        uint64_t *rtt_ns, ringp2p_errinfo *ei);

/* When the outstanding ping times out (send time + RP_PING_TIMEOUT_NS); UINT64_MAX if none. */
uint64_t rp_ping_client_deadline(const rp_ping_client *c);

/* RINGP2P_ETIMEDOUT if a ping is outstanding past its deadline at now_ns, else 0. */
int rp_ping_client_check(const rp_ping_client *c, uint64_t now_ns, ringp2p_errinfo *ei);

typedef struct rp_ping_server {
    uint64_t bytes;   /* echoed so far */
    uint64_t last_ns; /* when the last byte came (or the stream opened) */
} rp_ping_server;

/* A listener for a stream that opened at now_ns. */
void rp_ping_server_init(rp_ping_server *s, uint64_t now_ns);

/*
 * Echoes: copies as much of [*src, end) as fits in `out` (the host's buffer,
 * appended to) and moves *src past it; what does not fit stays for the next
 * call (back-pressure, no error). Bytes are echoed as they come, as js-libp2p
 * does, so any number of 32-byte pings works on one stream. Returns the bytes
 * echoed.
 */
size_t rp_ping_server_recv(rp_ping_server *s, const uint8_t **src, const uint8_t *end,
                           uint64_t now_ns, rp_wbuf *out);

/* Pings fully echoed so far. */
uint64_t rp_ping_server_count(const rp_ping_server *s);

/* When an idle listener gives up (last activity + RP_PING_TIMEOUT_NS). */
uint64_t rp_ping_server_deadline(const rp_ping_server *s);

/*
 * At the end of the dialer's stream: 0 if it sent whole pings only, else
 * RINGP2P_ETRUNCATED (it stopped inside one; the bytes were echoed anyway).
 */
int rp_ping_server_end(const rp_ping_server *s, ringp2p_errinfo *ei);

#endif
