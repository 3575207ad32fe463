/*
 * yamux stream multiplexer, sans-IO (libp2p/specs yamux/README.md, a copy of
 * hashicorp/yamux spec.md; protocol id /yamux/1.0.0).
 *
 * One rp_yamux is one session over one secured connection. It never touches
 * a socket or the clock: bytes and `now_ns` go in, frames (as rp_iov lists)
 * and events come out.
 *
 * Driving a session (the host owns the connection):
 *
 *   rp_yamux_new(&cfg, is_dialer, now, &s)
 *   on bytes from the peer (one or more decrypted buffers):
 *       while (p < end) {
 *           r = rp_yamux_receive(s, &p, end, now, &ei);
 *           drain events: while (rp_yamux_next_event(s, &ev)) ...
 *           r < 0 and r != RINGP2P_EAGAIN: send the pending output, then close
 *           r == RINGP2P_EAGAIN: the event or control queue is full; after
 *                                draining events, also send output, then loop
 *       }
 *   when rp_yamux_want_send(s): rp_yamux_send(s, &out, now) into caller
 *       buffers, seal/send the iovs; repeat until it returns 0
 *   at rp_yamux_next_timeout(s): rp_yamux_on_timeout(s, now)
 *   application: rp_yamux_open, _stream_write, _stream_consumed, _stream_close,
 *       _stream_reset, _stream_release, rp_yamux_ping, rp_yamux_go_away.
 *
 * Events, not callbacks. Everything the session has to tell goes into a
 * bounded queue the caller drains with rp_yamux_next_event, in the order it
 * happened on the wire. Unlike quicly's callbacks this has no reentrancy: the
 * caller may open, write, reset or release any stream while handling an
 * event, because no session code is on the stack. The queue cannot grow
 * without bound: rp_yamux_receive stops at a frame boundary (or inside a
 * payload) when the queue is full and returns RINGP2P_EAGAIN with the cursor
 * on the first unconsumed byte, so a peer that floods tiny frames is slowed
 * to the pace the caller drains events, and reading stops rather than
 * memory growing. The same holds for the control queue (ping answers and
 * refusals of streams): output the session owes the peer is bounded, and a
 * peer that stops reading our output stops being read.
 *
 * Zero copy. A data frame's payload is delivered as one or more
 * RP_YAMUX_EV_STREAM_DATA events whose views point into the caller's input
 * buffer, never copied: the host hands receive buffers up by reference, and
 * yamux frames (up to the peer's window, 16 MiB) are much larger than a Noise
 * record (64 KiB), so a frame is delivered piecewise as its bytes arrive and
 * nobody has to reassemble it. Only a frame header that straddles two inputs
 * (at most 11 bytes) is copied, into the session. So every input byte is
 * consumed unless the queues are full; the caller never keeps a tail.
 *
 * Backpressure. Received data is only credited back to the peer (window
 * update) when the application reports it consumed with
 * rp_yamux_stream_consumed; a reader that does not consume stops the writer
 * after one window, and the unconsumed bytes a session can cause to be held
 * are bounded by the sum of its streams' windows. A peer that sends beyond
 * the window it was granted kills the session (GoAway protocol error). On the
 * send side, rp_yamux_stream_write accepts at most the peer's window: the
 * session never queues more than the peer may receive.
 *
 * Payload by reference. Written bytes are not copied: the session keeps a
 * reference to the caller's memory and describes it in the rp_iov output of
 * rp_yamux_send, beside frame headers written into a caller buffer.
 *
 * Fair output. rp_yamux_send emits control frames first (ping, ping answers,
 * stream refusals, go-away, SYN/ACK/FIN/RST and window updates: they are
 * small and unblock the peer), then data frames round-robin over the streams
 * with data queued, at most cfg.max_frame payload bytes per frame and one
 * frame per stream per turn, so one bulk stream cannot starve the others.
 *
 * Window auto-tuning (as go-yamux does it, which js-libp2p-yamux copies): a
 * stream's receive window starts at cfg.initial_window; when a window update
 * is due (half the window consumed) and the time since the previous update
 * is under RP_YAMUX_TUNE_RTT_FACTOR round trips, the window doubles, up to
 * cfg.max_window. A consumer that drains a window in about an RTT thus grows
 * the window until it covers the link's bandwidth-delay product; a slow
 * consumer keeps the initial window. The RTT comes from pings the session
 * sends itself (at start and every cfg.ping_interval_ns).
 *
 * Open points of the spec settled by reading go-yamux and js-libp2p-yamux:
 * - FIN is always sent in a zero-length window update, never on a data frame
 *   that carries bytes: js applies the flags of a frame before its payload
 *   and drops the payload if both directions are then closed.
 * - RST is a window update with length 0. A peer's RST window update may
 *   carry an error code in its length (go-yamux); it is reported.
 * - Frames for a stream that no longer exists are ignored (the peer may not
 *   yet have seen our RST), but a frame without SYN for a stream id that was
 *   never opened is a protocol error: peer-parity ids above the highest the
 *   peer opened, our-parity ids we never allocated.
 * - A duplicate SYN or a SYN with our parity is a protocol error (go-yamux).
 *   Data after the peer's FIN is a protocol error. A window update that takes
 *   the peer's credit for a stream above 2^32 - 1 is a protocol error.
 * - Ping: exactly one outstanding ping of ours; an answer that matches no
 *   ping is ignored (go) rather than fatal (js). Pings and go-aways must use
 *   stream 0 and data and window updates must not (js rejects both).
 * - A GoAway with code 0 stops new streams (we refuse the peer's SYNs after
 *   sending one and stop opening after receiving one); existing streams
 *   finish (hashicorp). Any other code ends the session at once.
 * - Inbound limits as go-yamux: more than cfg.max_inbound_streams concurrent
 *   inbound streams, or more than cfg.accept_backlog opened but not yet
 *   accepted, and the new stream gets RST and is not reported. Locally,
 *   rp_yamux_open refuses (RINGP2P_EAGAIN) while cfg.open_backlog of our
 *   streams are unacknowledged (go-yamux and rust-yamux do the same), so we
 *   never provoke a peer's backlog limit.
 */
#ifndef RP_MUXER_YAMUX_H
#define RP_MUXER_YAMUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/bytes.h"
#include "ringp2p/error.h"

/* multistream-select id (yamux/README.md "Specification"). */
#define RP_YAMUX_PROTOCOL_ID "/yamux/1.0.0"

/* Wire constants (yamux/README.md "Framing"). */
#define RP_YAMUX_VERSION    0
#define RP_YAMUX_HEADER_LEN 12

enum {
    RP_YAMUX_TYPE_DATA = 0,
    RP_YAMUX_TYPE_WINDOW_UPDATE = 1,
    RP_YAMUX_TYPE_PING = 2,
    RP_YAMUX_TYPE_GO_AWAY = 3,
};

enum {
    RP_YAMUX_FLAG_SYN = 0x1,
    RP_YAMUX_FLAG_ACK = 0x2,
    RP_YAMUX_FLAG_FIN = 0x4,
    RP_YAMUX_FLAG_RST = 0x8,
};

/* GoAway codes (yamux/README.md "Session termination"). */
enum {
    RP_YAMUX_GOAWAY_NORMAL = 0,
    RP_YAMUX_GOAWAY_PROTOCOL = 1,
    RP_YAMUX_GOAWAY_INTERNAL = 2,
};

/* Every stream's window when it opens, assumed by both sides ("Flow Control"). */
#define RP_YAMUX_INITIAL_WINDOW (256u * 1024)
/* Default ceiling of auto-tuning: go-yamux maxStreamWindow, js MAX_STREAM_WINDOW. */
#define RP_YAMUX_MAX_WINDOW_DEFAULT (16u * 1024 * 1024)
/* Concurrent inbound streams (go-yamux MaxIncomingStreams, js maxInboundStreams). */
#define RP_YAMUX_MAX_INBOUND_STREAMS_DEFAULT 1000u
/* Inbound streams opened but not yet accepted ("ACK backlog & backpressure": at most 256). */
#define RP_YAMUX_ACCEPT_BACKLOG_DEFAULT 256u
/* Our streams not yet acknowledged before rp_yamux_open refuses (same section). */
#define RP_YAMUX_OPEN_BACKLOG_DEFAULT 256u
/*
 * Largest data frame payload we send. Framing cost does not decide it:
 * describing a frame takes 12-19 ns whether it carries 4, 16 or 64 KiB
 * (measured, payload by reference), under 0.2% of the 13 us 16 KiB take on a
 * 10 Gbit/s link. Fairness does: a stream waits at most one frame per other
 * busy stream, and 16 KiB holds the link 131 us at 1 Gbit/s per turn (64 KiB,
 * go's and js's size, 4 times that) at 0.07% header overhead; four frames
 * still fill one 64 KiB Noise record.
 */
#define RP_YAMUX_MAX_FRAME_DEFAULT (16u * 1024)
/* Smallest allowed cfg.max_frame (go-yamux VerifyConfig: MaxMessageSize >= 1 KiB). */
#define RP_YAMUX_MAX_FRAME_MIN 1024u
/* Period of RTT pings, which double as keep-alive (go MeasureRTTInterval, js keepAliveInterval). */
#define RP_YAMUX_PING_INTERVAL_NS_DEFAULT 30000000000ull
/* A ping unanswered this long is reported and abandoned (go ConnectionWriteTimeout). */
#define RP_YAMUX_PING_TIMEOUT_NS_DEFAULT 10000000000ull
/* Auto-tuning doubles the window when an update follows the previous within this many RTTs. */
#define RP_YAMUX_TUNE_RTT_FACTOR 4
/*
 * Events a session holds before rp_yamux_receive stops (RINGP2P_EAGAIN). A
 * frame produces at most 3 (opened, data, fin or reset); 64 lets a typical
 * receive buffer of several frames go in one call.
 */
#define RP_YAMUX_EVENT_QUEUE 64
/* Ping answers and stream refusals queued before receive stops (go PingBacklog is 32). */
#define RP_YAMUX_CTRL_QUEUE 64
/* Distinct write buffers one stream keeps referenced (adjacent writes merge into one). */
#define RP_YAMUX_STREAM_SEGS 16

/* One frame header (yamux/README.md "Framing"); all fields are big endian on the wire. */
typedef struct rp_yamux_hdr {
    uint8_t version;
    uint8_t type;
    uint16_t flags;
    uint32_t stream_id;
    uint32_t length; /* data: payload bytes; window update: delta; ping: opaque; go-away: code */
} rp_yamux_hdr;

/*
 * Decodes one header at *src (not past `end`) and advances *src by 12. Only
 * the framing is checked: RINGP2P_ETRUNCATED if fewer than 12 bytes,
 * RINGP2P_EPROTOCOL for a version other than 0 or an unknown type. On error
 * *src is unchanged and `ei` (may be NULL) names the problem.
 */
int rp_yamux_hdr_decode(const uint8_t **src, const uint8_t *end, rp_yamux_hdr *h,
                        ringp2p_errinfo *ei);

/* Writes the 12 header bytes into dst (caller's). Returns 12 or RINGP2P_ENOBUF. */
ssize_t rp_yamux_hdr_encode(uint8_t *dst, size_t cap, const rp_yamux_hdr *h);

typedef struct rp_yamux_config {
    uint32_t initial_window;      /* >= RP_YAMUX_INITIAL_WINDOW; larger is announced with SYN/ACK */
    uint32_t max_window;          /* >= initial_window; auto-tuning ceiling */
    uint32_t max_inbound_streams; /* 0 refuses every inbound stream */
    uint32_t accept_backlog;      /* >= 1 */
    uint32_t open_backlog;        /* >= 1 */
    uint32_t max_frame;           /* >= RP_YAMUX_MAX_FRAME_MIN */
    uint64_t ping_interval_ns; /* 0: no automatic pings (and no auto-tuning until rp_yamux_ping) */
    uint64_t ping_timeout_ns;  /* > 0 */
} rp_yamux_config;

/* Fills cfg with the RP_YAMUX_*_DEFAULT values. */
void rp_yamux_config_default(rp_yamux_config *cfg);

typedef struct rp_yamux rp_yamux;
typedef struct rp_yamux_stream rp_yamux_stream;

typedef enum rp_yamux_event_type {
    /*
     * The peer opened `stream`. Accept it (rp_yamux_stream_accept, or any
     * write or close) or refuse it (rp_yamux_stream_reset); release it in any
     * case. Until then it counts against cfg.accept_backlog.
     */
    RP_YAMUX_EV_STREAM_OPENED = 1,
    /*
     * `len` (> 0) bytes for `stream` at `data`, a view into an input buffer
     * given to rp_yamux_receive: valid as long as the caller keeps that buffer.
     * Report them with rp_yamux_stream_consumed once they are used.
     */
    RP_YAMUX_EV_STREAM_DATA,
    /* The peer half-closed `stream`: no more data will come. */
    RP_YAMUX_EV_STREAM_FIN,
    /*
     * The peer reset `stream` (or refused our SYN); `code` is the error code
     * of its window update (0 when none). Writes fail from now on.
     */
    RP_YAMUX_EV_STREAM_RESET,
    /* rp_yamux_stream_write would now accept bytes it refused before. */
    RP_YAMUX_EV_STREAM_WRITABLE,
    /* rp_yamux_open, refused with RINGP2P_EAGAIN, may succeed now. */
    RP_YAMUX_EV_OPEN_READY,
    /* A ping of ours was answered after `rtt_ns` (rp_yamux_rtt_ns is the smoothed value). */
    RP_YAMUX_EV_PING_RTT,
    /* A ping of ours went unanswered for cfg.ping_timeout_ns; the host may drop the connection. */
    RP_YAMUX_EV_PING_TIMEOUT,
    /*
     * The peer sent GoAway with `code`. Code 0: no new streams either way,
     * existing ones go on. Other codes: RP_YAMUX_EV_SESSION_ERROR follows.
     */
    RP_YAMUX_EV_GO_AWAY,
    /*
     * The session is dead (`err`: RINGP2P_EPROTOCOL, RINGP2P_EGOAWAY, ...):
     * every stream is gone. Always the last event. Send the pending output
     * (a GoAway when we detected the problem), then close the connection.
     */
    RP_YAMUX_EV_SESSION_ERROR,
} rp_yamux_event_type;

typedef struct rp_yamux_event {
    rp_yamux_event_type type;
    uint32_t code;           /* STREAM_RESET: peer's code; GO_AWAY: reason */
    int err;                 /* SESSION_ERROR */
    rp_yamux_stream *stream; /* STREAM_*: valid until rp_yamux_stream_release */
    void *user;              /* STREAM_*: the stream's user pointer */
    const uint8_t *data;     /* STREAM_DATA */
    size_t len;              /* STREAM_DATA */
    uint64_t rtt_ns;         /* PING_RTT */
} rp_yamux_event;

/*
 * Creates a session. `dialer` is true on the side that initiated the
 * connection (the yamux client: odd stream ids), false on the listener (even
 * ids). cfg is copied (NULL: defaults). `now_ns` starts the ping schedule: the
 * first RTT ping is queued at once unless cfg.ping_interval_ns is 0. On
 * success *out is owned by the caller (rp_yamux_free). Errors:
 * RINGP2P_EINVAL (cfg outside the bounds above), RINGP2P_ENOMEM.
 */
int rp_yamux_new(const rp_yamux_config *cfg, bool dialer, uint64_t now_ns, rp_yamux **out);

/* Frees the session and every stream, released or not (NULL is fine). */
void rp_yamux_free(rp_yamux *s);

/*
 * Consumes peer bytes from *src up to `end` and advances *src. The buffer is
 * the caller's; data events point into it (see RP_YAMUX_EV_STREAM_DATA), the
 * session keeps nothing of it after returning. Returns:
 *   0                  everything consumed;
 *   RINGP2P_EAGAIN     stopped at *src because the event queue or the control
 *                      queue is full: drain events and send output, then call
 *                      again with the rest;
 *   RINGP2P_EPROTOCOL  the peer broke the protocol (bad version or type,
 *                      window exceeded or overflowed, frame for a stream never
 *                      opened, ...; `ei` says which). A GoAway(protocol error)
 *                      is queued for rp_yamux_send; the session is dead.
 *   RINGP2P_EGOAWAY    the peer ended the session with a GoAway error code.
 *   once dead, every call returns the same error (and `ei` its message).
 */
int rp_yamux_receive(rp_yamux *s, const uint8_t **src, const uint8_t *end, uint64_t now_ns,
                     ringp2p_errinfo *ei);

/*
 * Pops the oldest event into *ev; false when there is none. Stream events of
 * streams released since they were queued are dropped.
 */
bool rp_yamux_next_event(rp_yamux *s, rp_yamux_event *ev);

/*
 * Output description, filled by rp_yamux_send. The caller provides `hdr`
 * (frame headers are written there, RP_YAMUX_HEADER_LEN bytes each) and `iov`
 * (the frames in wire order: spans of `hdr` and payload spans of memory given
 * to rp_yamux_stream_write; adjacent headers share one iov).
 */
typedef struct rp_yamux_out {
    uint8_t *hdr;     /* in: caller buffer for headers */
    size_t hdr_cap;   /* in */
    rp_iov *iov;      /* in: caller array */
    size_t iov_cap;   /* in */
    size_t max_bytes; /* in: stop before the output exceeds this (0: no limit) */
    size_t hdr_len;   /* out: bytes of hdr used */
    size_t niov;      /* out: entries of iov used */
} rp_yamux_out;

/*
 * Describes pending frames in `out`, as many as fit, and counts them as sent.
 * `now_ns` timestamps an RTT ping that leaves here. Returns the byte count
 * (sum of the iov lengths), 0 when nothing is pending, RINGP2P_ENOBUF when
 * something is pending but not even one frame fits, RINGP2P_EINVAL for a bad
 * `out`. Call again until it returns 0.
 * Lifetime: the iovs point into out->hdr and into write buffers; the caller
 * must be done with them (sealed, copied or sent) before it frees or reuses
 * those. Once done, write buffers are free up to rp_yamux_stream_emitted.
 */
ssize_t rp_yamux_send(rp_yamux *s, rp_yamux_out *out, uint64_t now_ns);

/* True if rp_yamux_send has frames to emit. */
bool rp_yamux_want_send(const rp_yamux *s);

/*
 * When the session next needs rp_yamux_on_timeout (ping due or ping
 * overdue), in the clock of now_ns; UINT64_MAX for never.
 */
uint64_t rp_yamux_next_timeout(const rp_yamux *s);

/* Runs the timers due at now_ns: queues an RTT ping, reports a ping timeout. */
void rp_yamux_on_timeout(rp_yamux *s, uint64_t now_ns);

/*
 * Queues a ping to measure the RTT now (RP_YAMUX_EV_PING_RTT follows). If a
 * ping is outstanding, its answer serves. The session error once dead.
 */
int rp_yamux_ping(rp_yamux *s);

/* Smoothed RTT from our pings in ns (0 until one is answered). */
uint64_t rp_yamux_rtt_ns(const rp_yamux *s);

/*
 * Sends GoAway with `code`. RP_YAMUX_GOAWAY_NORMAL: graceful, no new streams
 * either way (the peer's SYNs get RST, rp_yamux_open fails) while existing
 * streams finish; close the connection when rp_yamux_num_streams is 0. Other
 * codes end the session now: only the GoAway is still sent, every stream is
 * gone (calls on them fail with RINGP2P_ECLOSED).
 */
int rp_yamux_go_away(rp_yamux *s, uint32_t code);

/* 0 while the session lives, else its sticky error. */
int rp_yamux_error(const rp_yamux *s);

/* Streams not yet finished on the wire (both FINs exchanged, or reset). */
size_t rp_yamux_num_streams(const rp_yamux *s);

/*
 * Opens a stream (next odd/even id); the SYN leaves with its first frame.
 * `user` is returned in its events. On success *out is valid until
 * rp_yamux_stream_release. Errors: RINGP2P_EAGAIN (cfg.open_backlog streams
 * unacknowledged: retry after RP_YAMUX_EV_OPEN_READY), RINGP2P_EGOAWAY (the
 * peer sent GoAway), RINGP2P_ECLOSED (we sent GoAway), RINGP2P_ELIMIT (stream
 * ids exhausted), RINGP2P_ENOMEM, the session error once dead.
 */
int rp_yamux_open(rp_yamux *s, void *user, rp_yamux_stream **out);

/*
 * Accepts a stream the peer opened (RP_YAMUX_EV_STREAM_OPENED): sets its user
 * pointer and queues the ACK. RINGP2P_EINVAL if it is ours or already
 * accepted, RINGP2P_ESTREAMRESET if reset meanwhile, the session error.
 */
int rp_yamux_stream_accept(rp_yamux_stream *st, void *user);

/*
 * Queues up to `len` bytes of `data` for sending, no more than the peer's
 * window for the stream allows (rp_yamux_stream_send_window) and only while
 * fewer than RP_YAMUX_STREAM_SEGS distinct buffers are referenced. Returns
 * the count accepted (possibly 0: RP_YAMUX_EV_STREAM_WRITABLE follows when it
 * can take more), or RINGP2P_ECLOSED (after close), RINGP2P_ESTREAMRESET, the
 * session error. Ownership: the accepted bytes are referenced, not copied;
 * they must stay valid and unchanged until rp_yamux_stream_emitted has passed
 * them and the output that described them is used, or the stream is reset.
 */
ssize_t rp_yamux_stream_write(rp_yamux_stream *st, const void *data, size_t len);

/* Bytes rp_yamux_stream_write would accept now; if 0, WRITABLE follows when it is not. */
size_t rp_yamux_stream_writable(rp_yamux_stream *st);

/*
 * Half-closes our direction: FIN after the queued data. Idempotent.
 * RINGP2P_ESTREAMRESET if reset, the session error.
 */
int rp_yamux_stream_close(rp_yamux_stream *st);

/*
 * Resets the stream (RST to the peer unless it never heard of it); queued
 * data is dropped and its buffers are free now. No event follows. A no-op on
 * a finished stream.
 */
int rp_yamux_stream_reset(rp_yamux_stream *st);

/*
 * Reports `n` delivered bytes as consumed, so the peer gets window back;
 * `now_ns` drives auto-tuning. RINGP2P_EINVAL if n exceeds the bytes delivered
 * and not yet consumed.
 */
int rp_yamux_stream_consumed(rp_yamux_stream *st, size_t n, uint64_t now_ns);

/*
 * The caller is done with the handle, which is invalid afterwards. What is
 * still open closes gracefully (go-yamux Close): our direction gets FIN after
 * the queued data (whose buffers must stay valid as for write), the peer's
 * data is discarded and credited back until its FIN. The session frees the
 * stream once both directions are finished. Reset first to abort instead.
 */
void rp_yamux_stream_release(rp_yamux_stream *st);

uint32_t rp_yamux_stream_id(const rp_yamux_stream *st);
void *rp_yamux_stream_user(const rp_yamux_stream *st);
void rp_yamux_stream_set_user(rp_yamux_stream *st, void *user);
/* The peer's remaining window for new writes (what write could accept). */
uint64_t rp_yamux_stream_send_window(const rp_yamux_stream *st);
/* Our current receive window target (grows with auto-tuning). */
uint32_t rp_yamux_stream_recv_window(const rp_yamux_stream *st);
/* Bytes written and described by rp_yamux_send so far (monotonic). */
uint64_t rp_yamux_stream_emitted(const rp_yamux_stream *st);
/* Bytes accepted by write and not yet emitted. */
uint64_t rp_yamux_stream_queued(const rp_yamux_stream *st);

#endif
