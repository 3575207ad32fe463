/*
 * perf (libp2p specs, perf/perf.md "Protocol"), sans-IO: counts and phases
 * only. The client sends the download size it wants as a big-endian uint64,
 * uploads its bytes and half-closes; the server reads the size, drains the
 * upload to EOF, then sends the requested bytes and closes.
 *
 * No payload byte is touched: what is sent is a view of one constant block
 * (the spec: "a predetermined arbitrary set of bytes. Zero is fine"), and
 * what is received is only counted, so the cores cost nothing per byte and a
 * benchmark measures the stack, not the benchmark. Time is passed in
 * (`now_ns`) to stamp the phases; the cores never read a clock.
 *
 *   client: rp_perf_client_init(&c, up, down, now)
 *           loop: n = rp_perf_client_next(&c, iov, cap, max)   -> write the iovs
 *                 rp_perf_client_wrote(&c, bytes, now)         -> what the stream took
 *           when rp_perf_client_want_close(&c): half-close the stream
 *           rp_perf_client_recv(&c, len, now) per received piece; rp_perf_client_eof at EOF
 *   server: rp_perf_server_init(&s, max_download, now)
 *           rp_perf_server_recv(&s, &p, end, now) until EOF; rp_perf_server_eof(&s, now)
 *           loop: rp_perf_server_next / rp_perf_server_wrote; close when want_close
 */
#ifndef RP_PROTOCOLS_PERF_H
#define RP_PROTOCOLS_PERF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/bytes.h"
#include "ringp2p/error.h"

/* perf/perf.md "Protocol". */
#define RP_PERF_PROTOCOL_ID "/perf/1.0.0"
/* The download size: one big-endian uint64 (client step 2). */
#define RP_PERF_HEADER_LEN 8
/*
 * Size of the constant payload block every iov points into; a write of more
 * is described as several views of it. 64 KiB: one Noise record's worth, so
 * a send of many records needs few iovs.
 */
#define RP_PERF_BLOCK 65536

typedef enum rp_perf_phase {
    RP_PERF_UPLOAD = 1, /* client: header and upload to write; server: reading header and upload */
    RP_PERF_DOWNLOAD,   /* client: half-closed, reading; server: writing the download */
    RP_PERF_DONE,       /* client: all bytes and EOF in; server: all written, close the stream */
} rp_perf_phase;

/* The constant payload block (RP_PERF_BLOCK zero bytes, static, read only). */
const uint8_t *rp_perf_block(void);

/* Writes the 8-byte header for `download` into dst (the caller's). */
void rp_perf_header_encode(uint8_t dst[RP_PERF_HEADER_LEN], uint64_t download);

typedef struct rp_perf_client {
    uint8_t header[RP_PERF_HEADER_LEN];
    rp_perf_phase phase;
    bool closed;               /* the host reported our half-close (via want_close + wrote) */
    uint64_t upload, download; /* requested */
    uint64_t written;          /* header and upload bytes the stream took */
    uint64_t downloaded;
    uint64_t start_ns, upload_done_ns, first_byte_ns, end_ns;
} rp_perf_client;

/* A client that uploads `upload` bytes and asks for `download`, starting at now_ns. */
void rp_perf_client_init(rp_perf_client *c, uint64_t upload, uint64_t download, uint64_t now_ns);

/*
 * Describes the next bytes to write, at most `max` (0: no limit) in at most
 * `iov_cap` views: the rest of the header (a view into c, valid while c is
 * unchanged), then views of rp_perf_block(). Returns the bytes described, 0
 * when the upload is all written. Nothing is counted until ..._wrote.
 */
size_t rp_perf_client_next(const rp_perf_client *c, rp_iov *iov, size_t iov_cap, size_t *niov,
                           size_t max);

/*
 * The stream took `n` of the bytes described. When the header and upload are
 * all written, the phase becomes RP_PERF_DOWNLOAD (want_close is true).
 * RINGP2P_EINVAL if n exceeds what remains.
 */
int rp_perf_client_wrote(rp_perf_client *c, size_t n, uint64_t now_ns);

/* True once everything is written and the host should half-close the stream. */
bool rp_perf_client_want_close(const rp_perf_client *c);

/*
 * `n` bytes of download arrived (their contents are not looked at). Errors,
 * after which the stream should be reset: RINGP2P_EPROTOCOL for bytes before
 * our upload is complete (the server must not send concurrently) or beyond
 * the size we asked for.
 */
int rp_perf_client_recv(rp_perf_client *c, size_t n, uint64_t now_ns, ringp2p_errinfo *ei);

/*
 * The server closed the stream: 0 and phase RP_PERF_DONE if all requested
 * bytes came, else RINGP2P_ETRUNCATED (`ei` says how many).
 */
int rp_perf_client_eof(rp_perf_client *c, uint64_t now_ns, ringp2p_errinfo *ei);

typedef struct rp_perf_server {
    uint8_t header[RP_PERF_HEADER_LEN];
    uint8_t header_len;
    rp_perf_phase phase;
    uint64_t max_download; /* 0: no limit */
    uint64_t download;     /* requested, valid once the header is in */
    uint64_t uploaded;     /* upload bytes after the header */
    uint64_t sent;
    uint64_t start_ns, upload_done_ns, end_ns;
} rp_perf_server;

/*
 * A server for a stream that opened at now_ns. `max_download` bounds what a
 * client may ask for (the spec's "Security Considerations": perf lets clients
 * ask for work); 0 allows anything up to 2^64-1, which the spec says is valid.
 */
void rp_perf_server_init(rp_perf_server *s, uint64_t max_download, uint64_t now_ns);

/*
 * Consumes all of [*src, end) (the host's, read only, not retained): header
 * bytes first, then upload bytes, which are only counted. Errors, *src
 * unchanged: RINGP2P_ELIMIT (the size asked for exceeds max_download),
 * RINGP2P_EPROTOCOL (bytes after EOF was reported).
 */
int rp_perf_server_recv(rp_perf_server *s, const uint8_t **src, const uint8_t *end, uint64_t now_ns,
                        ringp2p_errinfo *ei);

/*
 * The client half-closed: RINGP2P_ETRUNCATED if the header was incomplete,
 * else the phase becomes RP_PERF_DOWNLOAD (or DONE for a download of 0).
 */
int rp_perf_server_eof(rp_perf_server *s, uint64_t now_ns, ringp2p_errinfo *ei);

/* As rp_perf_client_next, for the download; 0 outside RP_PERF_DOWNLOAD. */
size_t rp_perf_server_next(const rp_perf_server *s, rp_iov *iov, size_t iov_cap, size_t *niov,
                           size_t max);

/* The stream took n bytes; DONE (close the stream) when all are sent. RINGP2P_EINVAL if too many.
 */
int rp_perf_server_wrote(rp_perf_server *s, size_t n, uint64_t now_ns);

#endif
