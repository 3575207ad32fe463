/*
 * mplex stream multiplexer, sans-IO (libp2p specs mplex/README.md; protocol
 * id /mplex/6.7.0). Deprecated by the spec for lack of flow control; spoken
 * for interop with peers that offer nothing else.
 *
 * The API has the shape of rp_yamux (muxer/yamux.h) so the host drives both
 * the same way: bytes and events out, no socket, no clock.
 *
 *   rp_mplex_new(&cfg, &s)
 *   on bytes from the peer:
 *       while (p < end) {
 *           r = rp_mplex_receive(s, &p, end, now, &ei);
 *           drain events: while (rp_mplex_next_event(s, &ev)) ...
 *           r < 0 and r != RINGP2P_EAGAIN: the session is dead, close the connection
 *           r == RINGP2P_EAGAIN and rp_mplex_blocked(s, NULL): a stream's buffer is
 *                                full; keep [p, end), stop reading the connection and
 *                                call receive again (with what was kept, possibly
 *                                nothing) once that stream consumed, was reset or
 *                                released, or at rp_mplex_next_timeout(s)
 *           r == RINGP2P_EAGAIN otherwise: the event or control queue is full; drain
 *                                events, send output, then loop
 *       }
 *   when rp_mplex_want_send(s): rp_mplex_send(s, &out) into caller buffers,
 *       send the iovs; repeat until it returns 0
 *   application: rp_mplex_open, _stream_accept, _stream_write, _stream_consumed,
 *       _stream_close, _stream_reset, _stream_release.
 *
 * Events, zero copy, writes by reference and fair output work as in yamux.h:
 * a bounded event queue drained by the caller (receive stops with
 * RINGP2P_EAGAIN at a frame boundary or inside a payload when it is full);
 * message payload is delivered as views into the caller's input buffer,
 * piecewise as it arrives (only a header split across two inputs, at most
 * RP_MPLEX_HEADER_MAX bytes, is copied); written bytes are referenced, not
 * copied, until rp_mplex_stream_emitted passes them; rp_mplex_send emits
 * refusals, NewStream and Reset messages first, then one message per stream
 * per turn round-robin (data up to cfg.max_frame, then Close).
 *
 * No flow control (the spec's "Implementation notes"): a slow reader cannot
 * slow the writer, so what a session buffers is bounded here instead:
 * - per stream, bytes delivered and not yet reported consumed
 *   (rp_mplex_stream_consumed) never exceed cfg.max_stream_buffer. A message
 *   that would pass it blocks the session, as in go-mplex (whose reader waits
 *   up to ReceiveTimeout, 5 s, for room in the stream's queue): receive stops
 *   after that message's header and returns RINGP2P_EAGAIN, rp_mplex_blocked
 *   names the stream, and the caller stops reading the connection, so TCP's
 *   own backpressure reaches the writer. The wait ends when the stream has
 *   room for the message (after consumed), when the stream is reset or
 *   released (the message is then skipped), or when the stream has made no
 *   progress for cfg.block_timeout_ns: it is then reset (Reset to the peer,
 *   RP_MPLEX_EV_STREAM_RESET with RINGP2P_ELIMIT) and reading goes on. A
 *   receive call that finds the stream's unconsumed bytes lower than at the
 *   previous call restarts the wait, as go restarts its timer for every chunk
 *   it delivers, so a slow but steady reader is never reset. The cost:
 *   messages for every other stream behind the blocked one wait too
 *   (head-of-line blocking), so a stream whose reader stalls delays its whole
 *   connection by up to block_timeout_ns. block_timeout_ns = 0 resets at once
 *   instead, as js-libp2p does (maxReadBufferLength, 4 MiB); we block because
 *   without flow control resetting at once loses any stream whose peer writes
 *   faster than the application reads (an echo that pauses reading while its
 *   replies queue up, a client whose output is slow);
 * - concurrent inbound streams are capped at cfg.max_inbound_streams; a
 *   NewStream beyond it is answered with Reset and not reported (a flood is
 *   refused, not obeyed); the refusals owed to the peer are bounded by
 *   RP_MPLEX_CTRL_QUEUE, after which reading stops until output is sent.
 *
 * Open points of the spec settled by reading go-mplex and js @libp2p/mplex:
 * - Stream ids are per initiator: each side counts its own from 0, and the
 *   flag's parity says whose stream a message is for (odd flags come from
 *   the receiver of the stream, so they name our streams).
 * - We send NewStream with an empty name (the spec allows it; nobody uses
 *   names) and ignore the names we receive.
 * - A message longer than RP_MPLEX_MAX_MSG, a flag of 7 or a NewStream for an
 *   id the peer already has open kills the session (RINGP2P_EPROTOCOL), as in
 *   go; so does data after the peer's Close (the spec calls it a protocol
 *   violation). Messages, Close and Reset for streams that no longer exist
 *   (e.g. that we reset) are ignored, as both do. A body on Close or Reset is
 *   skipped.
 * - A second Close from the peer is ignored (go).
 */
#ifndef RP_MUXER_MPLEX_H
#define RP_MUXER_MPLEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/bytes.h"
#include "ringp2p/error.h"

/* multistream-select id (mplex/README.md, title; go-mplex and js use it). */
#define RP_MPLEX_PROTOCOL_ID "/mplex/6.7.0"

/* Flags ("Flag Values"). */
enum {
    RP_MPLEX_NEW_STREAM = 0,
    RP_MPLEX_MESSAGE_RECEIVER = 1,
    RP_MPLEX_MESSAGE_INITIATOR = 2,
    RP_MPLEX_CLOSE_RECEIVER = 3,
    RP_MPLEX_CLOSE_INITIATOR = 4,
    RP_MPLEX_RESET_RECEIVER = 5,
    RP_MPLEX_RESET_INITIATOR = 6,
};

/* "Message format": the header varint carries id << 3, so ids have 60 bits. */
#define RP_MPLEX_MAX_STREAM_ID ((UINT64_C(1) << 60) - 1)
/* "Writing to a stream": up to 1 MiB per message (js maxMsgSize, go MaxMessageSize). */
#define RP_MPLEX_MAX_MSG (1u << 20)
/* Longest header: a 9-byte id/flag varint and the 3-byte varint of a length <= 1 MiB. */
#define RP_MPLEX_HEADER_MAX 12

/*
 * Unread bytes a stream may hold before it is reset (see above). 4 MiB, as
 * js-libp2p (maxStreamBufferSize): a js peer sending to us is held to the
 * same bound it holds itself to, and it covers a 10 Gbit/s x 3 ms
 * bandwidth-delay product on one stream.
 */
#define RP_MPLEX_MAX_STREAM_BUFFER_DEFAULT (4u * 1024 * 1024)
/*
 * How long a blocked receive waits for a full stream to make progress before
 * resetting it (see above): go-mplex's ReceiveTimeout.
 */
#define RP_MPLEX_BLOCK_TIMEOUT_NS_DEFAULT (UINT64_C(5) * 1000 * 1000 * 1000)
/* Concurrent streams the peer may open (js maxInboundStreams; go has no bound). */
#define RP_MPLEX_MAX_INBOUND_STREAMS_DEFAULT 1024u
/* Concurrent streams we open (js maxOutboundStreams). */
#define RP_MPLEX_MAX_OUTBOUND_STREAMS_DEFAULT 1024u
/* Largest message payload we send; 16 KiB for fairness, as RP_YAMUX_MAX_FRAME_DEFAULT says. */
#define RP_MPLEX_MAX_FRAME_DEFAULT (16u * 1024)
/* Bytes one stream keeps queued by reference before write accepts no more (backpressure). */
#define RP_MPLEX_MAX_QUEUED_DEFAULT (1u * 1024 * 1024)
/* A message produces at most 2 events; 64 lets a receive buffer of many messages go in one call. */
#define RP_MPLEX_EVENT_QUEUE 64
/* Refusals of inbound streams owed to the peer before receive stops. */
#define RP_MPLEX_CTRL_QUEUE 64
/* Distinct write buffers one stream keeps referenced (adjacent writes merge). */
#define RP_MPLEX_STREAM_SEGS 16

/* One decoded header ("Message format"). */
typedef struct rp_mplex_hdr {
    uint64_t id;     /* stream id, < 2^60 */
    uint8_t flag;    /* RP_MPLEX_NEW_STREAM .. RP_MPLEX_RESET_INITIATOR */
    uint32_t length; /* payload bytes, <= RP_MPLEX_MAX_MSG */
} rp_mplex_hdr;

/*
 * Decodes a header at *src (not past `end`) and advances *src past it.
 * RINGP2P_ETRUNCATED if the input ends inside it; RINGP2P_EVARINT for a
 * malformed varint; RINGP2P_EPROTOCOL for flag 7 or a length above
 * RP_MPLEX_MAX_MSG (detected as soon as the length varint shows it). On
 * error *src is unchanged and `ei` (may be NULL) names the problem.
 */
int rp_mplex_hdr_decode(const uint8_t **src, const uint8_t *end, rp_mplex_hdr *h,
                        ringp2p_errinfo *ei);

/*
 * Writes a header into dst[cap] (the caller's). Returns its length (at most
 * RP_MPLEX_HEADER_MAX), RINGP2P_ENOBUF, or RINGP2P_EINVAL for an id, flag or
 * length out of range.
 */
ssize_t rp_mplex_hdr_encode(uint8_t *dst, size_t cap, const rp_mplex_hdr *h);

typedef struct rp_mplex_config {
    uint32_t max_stream_buffer;    /* >= RP_MPLEX_MAX_MSG, so one whole message always fits */
    uint32_t max_inbound_streams;  /* 0 refuses every inbound stream */
    uint32_t max_outbound_streams; /* >= 1 */
    uint32_t max_frame;            /* 1 .. RP_MPLEX_MAX_MSG */
    uint32_t max_queued;           /* >= 1 */
    uint64_t block_timeout_ns;     /* 0: reset a full stream at once instead of blocking */
} rp_mplex_config;

/* Fills cfg with the RP_MPLEX_*_DEFAULT values. */
void rp_mplex_config_default(rp_mplex_config *cfg);

typedef struct rp_mplex rp_mplex;
typedef struct rp_mplex_stream rp_mplex_stream;

typedef enum rp_mplex_event_type {
    /*
     * The peer opened `stream`. Accept it (rp_mplex_stream_accept) or refuse
     * it (rp_mplex_stream_reset); release it in any case.
     */
    RP_MPLEX_EV_STREAM_OPENED = 1,
    /*
     * `len` (> 0) bytes for `stream` at `data`, a view into an input buffer
     * given to rp_mplex_receive: valid as long as the caller keeps that
     * buffer. Report them with rp_mplex_stream_consumed once used; until then
     * they count against cfg.max_stream_buffer.
     */
    RP_MPLEX_EV_STREAM_DATA,
    /* The peer closed its direction of `stream`: no more data will come. */
    RP_MPLEX_EV_STREAM_FIN,
    /*
     * `stream` is reset: `err` is RINGP2P_ESTREAMRESET when the peer reset it,
     * RINGP2P_ELIMIT when we did because its buffer stayed full for
     * cfg.block_timeout_ns (at once when that is 0). Writes fail from now on;
     * queued data is dropped (its buffers are free).
     */
    RP_MPLEX_EV_STREAM_RESET,
    /* rp_mplex_stream_write would now accept bytes it refused before. */
    RP_MPLEX_EV_STREAM_WRITABLE,
    /* The session is dead (`err`); every stream is gone. Always the last event. */
    RP_MPLEX_EV_SESSION_ERROR,
} rp_mplex_event_type;

typedef struct rp_mplex_event {
    rp_mplex_event_type type;
    int err;                 /* STREAM_RESET, SESSION_ERROR */
    rp_mplex_stream *stream; /* STREAM_*: valid until rp_mplex_stream_release */
    void *user;              /* STREAM_*: the stream's user pointer */
    const uint8_t *data;     /* STREAM_DATA */
    size_t len;              /* STREAM_DATA */
} rp_mplex_event;

/*
 * Creates a session (mplex is symmetric: no dialer/listener distinction). cfg
 * is copied (NULL: defaults). On success *out is the caller's
 * (rp_mplex_free). Errors: RINGP2P_EINVAL (cfg out of bounds), RINGP2P_ENOMEM.
 */
int rp_mplex_new(const rp_mplex_config *cfg, rp_mplex **out);

/* Frees the session and every stream, released or not (NULL is fine). */
void rp_mplex_free(rp_mplex *s);

/*
 * Consumes peer bytes from *src up to `end` and advances *src; `now_ns` is
 * the caller's monotonic clock (only the block timeout reads it). The buffer
 * is the caller's; data events point into it, nothing else of it is kept
 * after return. Returns 0 (all consumed), RINGP2P_EAGAIN (stopped at *src
 * because a stream's buffer is full, see rp_mplex_blocked, or because the
 * event or control queue is full), or, killing the session,
 * RINGP2P_EPROTOCOL / RINGP2P_EVARINT (`ei` says what), RINGP2P_ENOMEM. Once
 * dead, every call returns the same error. While blocked every call returns
 * RINGP2P_EAGAIN, consuming nothing, until the block ends (an empty range is
 * fine for asking): then it goes on as usual.
 */
int rp_mplex_receive(rp_mplex *s, const uint8_t **src, const uint8_t *end, uint64_t now_ns,
                     ringp2p_errinfo *ei);

/*
 * The stream whose next message waits for room in its buffer, or NULL when
 * receive is not blocked. *since_ns (may be NULL) gets the time, as given to
 * receive, the wait began or the stream last made progress. Valid until the
 * next call into the session.
 */
rp_mplex_stream *rp_mplex_blocked(const rp_mplex *s, uint64_t *since_ns);

/*
 * When a blocked receive gives up and resets the stream (since +
 * cfg.block_timeout_ns): the caller calls receive at that time at the
 * latest. UINT64_MAX when not blocked. Progress seen by a later call moves it.
 */
uint64_t rp_mplex_next_timeout(const rp_mplex *s);

/*
 * Pops the oldest event into *ev; false when there is none. Events of streams
 * released since they were queued are dropped.
 */
bool rp_mplex_next_event(rp_mplex *s, rp_mplex_event *ev);

/*
 * Output description, filled by rp_mplex_send; as rp_yamux_out: headers go
 * into the caller's `hdr` (RP_MPLEX_HEADER_MAX bytes each at most), `iov`
 * gets the messages in wire order (spans of hdr and of written memory;
 * adjacent headers share one iov).
 */
typedef struct rp_mplex_out {
    uint8_t *hdr;     /* in: caller buffer for headers */
    size_t hdr_cap;   /* in */
    rp_iov *iov;      /* in: caller array */
    size_t iov_cap;   /* in */
    size_t max_bytes; /* in: stop before the output exceeds this (0: no limit) */
    size_t hdr_len;   /* out: bytes of hdr used */
    size_t niov;      /* out: entries of iov used */
} rp_mplex_out;

/*
 * Describes pending messages in `out`, as many as fit, and counts them as
 * sent. Returns the byte count, 0 when nothing is pending (or the session is
 * dead), RINGP2P_ENOBUF when something is pending but not even one message
 * fits, RINGP2P_EINVAL for a bad `out`. Call again until it returns 0.
 * Lifetime: the iovs point into out->hdr and into write buffers; the caller
 * must be done with them before it frees or reuses those. Once done, write
 * buffers are free up to rp_mplex_stream_emitted.
 */
ssize_t rp_mplex_send(rp_mplex *s, rp_mplex_out *out);

/* True if rp_mplex_send has messages to emit. */
bool rp_mplex_want_send(const rp_mplex *s);

/* 0 while the session lives, else its sticky error. */
int rp_mplex_error(const rp_mplex *s);

/* Streams not yet finished on the wire (both Closes exchanged, or reset). */
size_t rp_mplex_num_streams(const rp_mplex *s);

/*
 * Opens a stream (our next id); NewStream leaves with the next send. `user`
 * comes back in its events. On success *out is valid until
 * rp_mplex_stream_release. Errors: RINGP2P_ELIMIT (cfg.max_outbound_streams
 * of ours are open, or ids are exhausted: retry once one finishes),
 * RINGP2P_ENOMEM, the session error once dead.
 */
int rp_mplex_open(rp_mplex *s, void *user, rp_mplex_stream **out);

/*
 * Takes a stream the peer opened (RP_MPLEX_EV_STREAM_OPENED) and sets its
 * user pointer; mplex has no acknowledgement, so nothing is sent.
 * RINGP2P_EINVAL if it is ours or accepted already, RINGP2P_ESTREAMRESET if
 * reset meanwhile, the session error.
 */
int rp_mplex_stream_accept(rp_mplex_stream *st, void *user);

/*
 * Queues up to `len` bytes of `data`: no more than cfg.max_queued bytes stay
 * queued per stream and at most RP_MPLEX_STREAM_SEGS distinct buffers are
 * referenced. Returns the count accepted (possibly 0:
 * RP_MPLEX_EV_STREAM_WRITABLE follows when more fits), RINGP2P_ECLOSED
 * (after close), RINGP2P_ESTREAMRESET, or the session error. Ownership: the
 * bytes are referenced, not copied, and must stay valid and unchanged until
 * rp_mplex_stream_emitted has passed them and the output that described them
 * is used, or the stream is reset.
 */
ssize_t rp_mplex_stream_write(rp_mplex_stream *st, const void *data, size_t len);

/* Bytes rp_mplex_stream_write would accept now (0 after close or reset). */
size_t rp_mplex_stream_writable(const rp_mplex_stream *st);

/* Half-closes our direction: Close after the queued data. Idempotent. ESTREAMRESET if reset. */
int rp_mplex_stream_close(rp_mplex_stream *st);

/*
 * Resets the stream (Reset to the peer unless it never heard of it); queued
 * data is dropped and its buffers are free now. No event follows. A no-op on
 * a finished stream. A receive blocked on the stream is no longer: the rest
 * of the message is skipped.
 */
int rp_mplex_stream_reset(rp_mplex_stream *st);

/*
 * Reports `n` delivered bytes as used, freeing that much of the stream's
 * buffer allowance (a receive blocked on the stream sees the room at its next
 * call). RINGP2P_EINVAL if n exceeds the bytes delivered and not yet consumed.
 */
int rp_mplex_stream_consumed(rp_mplex_stream *st, size_t n);

/*
 * The caller is done with the handle, which is invalid afterwards. What is
 * still open closes gracefully: our direction gets Close after the queued
 * data (whose buffers must stay valid as for write), the peer's data is
 * discarded until its Close (a receive blocked on the stream is no longer).
 * The session frees the stream once both directions are finished. Reset
 * first to abort instead.
 */
void rp_mplex_stream_release(rp_mplex_stream *st);

uint64_t rp_mplex_stream_id(const rp_mplex_stream *st);
/* True for a stream we opened (we are its initiator). */
bool rp_mplex_stream_is_local(const rp_mplex_stream *st);
void *rp_mplex_stream_user(const rp_mplex_stream *st);
void rp_mplex_stream_set_user(rp_mplex_stream *st, void *user);
/* Bytes delivered and not yet consumed. */
uint64_t rp_mplex_stream_unconsumed(const rp_mplex_stream *st);
/* Bytes written and described by rp_mplex_send so far (monotonic). */
uint64_t rp_mplex_stream_emitted(const rp_mplex_stream *st);
/* Bytes accepted by write and not yet emitted. */
uint64_t rp_mplex_stream_queued(const rp_mplex_stream *st);

#endif
