/*
 * multistream-select 1.0 protocol negotiation, sans-IO.
 *
 * Spec: libp2p/specs connections/README.md "multistream-select" and
 * multiformats/multistream-select README. Every message is
 * <uvarint length><bytes>'\n', the length counting the newline. The dialer
 * (initiator) sends the header /multistream/1.0.0 and proposes protocols in
 * order of preference; the listener (responder) sends the header, echoes a
 * proposal it accepts or answers "na".
 *
 * One rp_mss object negotiates one channel: the security protocol and then the
 * muxer of a fresh connection, and the protocol of every new stream. It needs
 * no heap (about 1.1 KiB, mostly the line buffer for one message) and can be
 * dropped as soon as negotiation ends, after copying the agreed protocol if
 * the caller needs it.
 *
 * Driving it (the host owns the socket or stream):
 *
 *   rp_mss_init_dialer(&m, protos, n, 0, ei)        or rp_mss_init_listener(...)
 *   loop:
 *     rp_mss_send(&m, &out)       write whatever is pending (may be nothing)
 *     n = rp_mss_recv(&m, data, len, ei)
 *                                 n < 0: fail the channel (reset the stream);
 *                                 bytes data[n..len) belong to the negotiated
 *                                 protocol once rp_mss_status() is DONE
 *   until rp_mss_status(&m) != RP_MSS_IN_PROGRESS, then rp_mss_send once more:
 *   a listener's echo (and possibly a dialer's last proposal) is still pending
 *   when the state becomes DONE.
 *
 * Wire behaviour, settled where the spec text is silent by reading
 * go-multistream (multistream.go, client.go, lazyClient.go) and js-libp2p
 * (packages/multistream-select):
 * - The dialer always pipelines the header with its first proposal in one
 *   write (go SelectOneOf, js select); later proposals go one per round trip.
 * - The listener queues its header at init, so a host that sends before it
 *   reads behaves like go (header at once) and one that reads first sends the
 *   header and the answer in one write (the spec's recommendation).
 * - "ls" is answered as go-multistream before v0.3.0 and js-libp2p
 *   (handle.ts) do: one message whose payload is the concatenation of one
 *   message per protocol, then a final '\n'. go-multistream v0.3.0 and later
 *   answer "na" to "ls"; the dialer accepts both answers.
 * - Messages compare byte for byte after removing exactly one trailing
 *   newline (go; js also trims other trailing white space).
 *
 * TCP simultaneous open is not handled here: the multistream extension in
 * connections/simopen.md is deprecated (go-multistream removed it in v0.5.0)
 * and DCUtR assigns the dialer and listener roles out of band
 * (relay/DCUtR.md step 5), so the caller picks the role.
 */
#ifndef RP_MULTISTREAM_MULTISTREAM_H
#define RP_MULTISTREAM_MULTISTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/bytes.h"
#include "ringp2p/error.h"

/* The header both sides send first (connections/README.md, multistream-select). */
#define RP_MSS_PROTOCOL_ID "/multistream/1.0.0"
/* "Not available", the listener's refusal of a proposal (multistream-select README). */
#define RP_MSS_NA "na"
/* The listing request (multistream-select README, "Listing"). */
#define RP_MSS_LS "ls"

/*
 * Largest message length prefix accepted, counting the newline. The spec sets
 * no bound; go-multistream (lpReadBuf: length > 1024 is ErrTooLarge) and
 * js-libp2p (MAX_PROTOCOL_LENGTH = 1024, maxDataLength) both use 1024.
 */
#define RP_MSS_MSG_MAX 1024
/* Longest protocol id that fits in one message. */
#define RP_MSS_PROTO_MAX (RP_MSS_MSG_MAX - 1)
/*
 * Largest "ls" answer accepted or produced (its outer length prefix). The
 * listing is the one message that may exceed RP_MSS_MSG_MAX; 64 KiB was
 * go-multistream's message limit while it still supported "ls".
 */
#define RP_MSS_LS_MAX 65536
/*
 * Requests (proposals and "ls") a listener answers before cutting the peer off,
 * and the longest preference list a dialer accepts. Neither the spec nor go/js
 * bound it; a host proposes a handful of security protocols or muxers, so 32
 * leaves room while stopping a peer that proposes forever.
 */
#define RP_MSS_MAX_ROUNDS 32

/* rp_mss_init_dialer flags. */
enum {
    /*
     * Lazy (optimistic) select of a single protocol: the proposal is assumed
     * accepted as soon as it is sent, so application bytes may follow it in
     * the same write (rp_mss_may_write). The listener's echo still arrives and
     * must be fed to rp_mss_recv before the inbound application bytes; an "na"
     * fails the negotiation then. Requires exactly one protocol.
     */
    RP_MSS_LAZY = 1u << 0,
};

typedef enum rp_mss_state {
    RP_MSS_IN_PROGRESS = 0,
    RP_MSS_DONE,   /* a protocol is agreed (or, for an "ls"-only dialer, the list arrived) */
    RP_MSS_FAILED, /* sticky; rp_mss_error() says why */
} rp_mss_state;

/*
 * Listener match callback for proposals not in the listener's list. `proto`
 * is the proposal without its newline, NUL-terminated, `len` bytes (it may
 * contain NUL or invalid UTF-8: it comes from the peer). It points into the
 * rp_mss and is valid only during the call. Return true to accept; `ctx` may
 * record which handler matched. Never called for "na" or "ls".
 */
typedef bool (*rp_mss_match_fn)(void *ctx, const char *proto, size_t len);

/*
 * Dialer "ls" callback, once per protocol the listener lists, in its order.
 * `proto` is NUL-terminated, `len` bytes, peer data valid only during the call.
 */
typedef void (*rp_mss_ls_fn)(void *ctx, const char *proto, size_t len);

/*
 * One negotiation. Treat the fields as private; the struct is public so the
 * host can embed it in a connection or stream without allocating.
 */
typedef struct rp_mss {
    uint8_t role;  /* dialer or listener */
    uint8_t phase; /* what the next inbound message is */
    uint8_t flags; /* RP_MSS_LAZY, "ls" requested */
    uint8_t nout;  /* queued outbound messages in out[] */
    int err;       /* sticky error once FAILED */
    const char *const *protos;
    size_t nprotos;
    size_t cur;    /* dialer: proposal awaiting an answer; listener: requests seen */
    size_t ls_len; /* listener: payload length of its "ls" answer */
    rp_mss_match_fn match;
    rp_mss_ls_fn on_ls;
    void *ctx;
    ssize_t ls_count; /* dialer: entries listed, or RINGP2P_EUNSUPPORTED */
    size_t agreed_len;
    int agreed_idx;    /* index into protos, or -1 (none, or the match in line[]) */
    uint64_t rd_val;   /* length prefix being read */
    uint8_t rd_vbytes; /* its bytes so far; 0 when between messages */
    uint8_t rd_body;   /* reading the payload of rd_val bytes */
    uint32_t rd_have;  /* payload bytes in line[] */
    uint32_t ls_rem;   /* dialer: bytes of the listing not yet consumed */
    uint8_t out[RP_MSS_MAX_ROUNDS + 2];
    char line[RP_MSS_MSG_MAX + 1];
} rp_mss;

/*
 * Starts a dialer that proposes `protos[0..n)` in order of preference.
 * `protos` (the array and the strings) is owned by the caller and must stay
 * valid and unchanged as long as `m` is used; rp_mss_protocol() returns one of
 * these strings. `flags` is 0 or RP_MSS_LAZY. The header and the first proposal
 * are queued at once for rp_mss_send().
 * `m` is the caller's; it holds no pointer to itself, so it may be copied.
 * Returns 0, or RINGP2P_EINVAL (named in `ei`) when n is 0 (see
 * rp_mss_init_ls_dialer for a listing-only dialer) or above
 * RP_MSS_MAX_ROUNDS, a protocol is NULL, empty, longer than RP_MSS_PROTO_MAX
 * or is "na", "ls" or the header, or RP_MSS_LAZY is given with n != 1.
 */
int rp_mss_init_dialer(rp_mss *m, const char *const *protos, size_t n, unsigned flags,
                       ringp2p_errinfo *ei);

/*
 * Asks a freshly initialised (non-lazy) dialer to send "ls" right after the
 * header, before its first proposal (all in one write), and to report each
 * listed protocol through `fn(ctx, ...)`. The proposals still go out in the
 * dialer's order: the listing is informational. Call before the first
 * rp_mss_send(). Returns 0, or RINGP2P_EINVAL for a listener, a lazy dialer,
 * NULL `fn`, or when output has already been taken.
 */
int rp_mss_request_ls(rp_mss *m, rp_mss_ls_fn fn, void *ctx);

/*
 * Starts a dialer that only asks for the listener's protocol list: it sends
 * the header and "ls", reports each entry through `fn(ctx, ...)` and becomes
 * DONE with no protocol agreed (rp_mss_protocol returns NULL). Returns 0 or
 * RINGP2P_EINVAL (NULL fn).
 */
int rp_mss_init_ls_dialer(rp_mss *m, rp_mss_ls_fn fn, void *ctx);

/*
 * Starts a listener that accepts the protocols `protos[0..n)` (exact match,
 * first in the list wins) and, for any other proposal, whatever `match`
 * accepts (may be NULL). `protos` is owned by the caller and must outlive `m`.
 * "ls" is answered with `protos` when n > 0 and with "na" otherwise (a match
 * callback cannot be enumerated). The listener's header is queued at once.
 * Returns 0, or RINGP2P_EINVAL when there is nothing to accept (n == 0 and no
 * callback), a protocol is invalid as in rp_mss_init_dialer, or the listing
 * would exceed RP_MSS_LS_MAX.
 */
int rp_mss_init_listener(rp_mss *m, const char *const *protos, size_t n, rp_mss_match_fn match,
                         void *ctx, ringp2p_errinfo *ei);

/*
 * Feeds inbound bytes `data[0..len)` (owned by the caller, read only during
 * the call; partial messages are copied into `m`). Consumes input until
 * negotiation completes and stops right after the message that completes it:
 * the return value is the number of bytes consumed, and everything after it
 * belongs to the negotiated protocol. While IN_PROGRESS every byte is consumed.
 * Once DONE it consumes nothing and returns 0. The "ls" and match callbacks
 * run inside this call.
 * Errors (the state becomes FAILED; later calls return the same code):
 *   RINGP2P_EVARINT     length prefix not minimal or longer than 9 bytes
 *   RINGP2P_ELIMIT      message longer than RP_MSS_MSG_MAX (RP_MSS_LS_MAX for a
 *                       listing), or more than RP_MSS_MAX_ROUNDS requests
 *   RINGP2P_EPROTOCOL   zero length, no trailing newline, header other than
 *                       /multistream/1.0.0, an answer that is neither the
 *                       proposal nor "na", a malformed listing
 *   RINGP2P_ENEGOTIATION  every proposal was refused ("no common protocol",
 *                       `ei` names them)
 */
ssize_t rp_mss_recv(rp_mss *m, const uint8_t *data, size_t len, ringp2p_errinfo *ei);

/* Bytes rp_mss_send would write now (0 when nothing is pending). */
size_t rp_mss_pending(const rp_mss *m);

/*
 * Appends all pending output at out->len (out and its buffer are the
 * caller's) and returns the byte count (0 when nothing is pending). Output is
 * all or nothing: if it does not fit in out->cap - out->len, returns
 * RINGP2P_ENOBUF without touching `out`; rp_mss_pending() gives the size
 * needed. After a failure, the answers queued for the messages before the
 * bad one can still be taken (so the peer sees e.g. the "na" its lazy
 * proposal earned before the channel closes); with nothing left, send returns
 * the error.
 */
ssize_t rp_mss_send(rp_mss *m, rp_wbuf *out);

rp_mss_state rp_mss_status(const rp_mss *m);

/* The error that failed the negotiation, or 0. */
int rp_mss_error(const rp_mss *m);

/*
 * True when application bytes may be written after the output taken so far:
 * nothing is pending and either the negotiation is DONE or this is a lazy
 * dialer whose proposal has been sent.
 */
bool rp_mss_may_write(const rp_mss *m);

/*
 * The agreed protocol (NUL-terminated, *len bytes if len is not NULL), or NULL
 * before DONE or for an "ls"-only dialer. It is a string of the list given at
 * init, or (a listener's callback match) a copy inside `m` valid until `m` is
 * reused or freed: copy it to keep it longer.
 */
const char *rp_mss_protocol(const rp_mss *m, size_t *len);

/* Index of the agreed protocol in the list given at init, or -1 (none, or callback match). */
int rp_mss_protocol_index(const rp_mss *m);

/*
 * Dialer with "ls": the number of protocols listed, once the listing is
 * complete; RINGP2P_EAGAIN while it has not fully arrived; RINGP2P_EUNSUPPORTED
 * if the listener answered "na"; RINGP2P_EINVAL if "ls" was not requested.
 */
ssize_t rp_mss_ls_count(const rp_mss *m);

/*
 * One message as a standalone codec (the state machine reads messages
 * incrementally with the same rules).
 *
 * rp_mss_encode_line writes <uvarint len+1><msg>'\n' into dst[0..cap) and
 * returns the byte count, RINGP2P_ENOBUF, or RINGP2P_EINVAL if len exceeds
 * RP_MSS_PROTO_MAX.
 *
 * rp_mss_decode_line decodes one whole message at *src (not past `end`),
 * sets *msg and *len to its payload without the newline (a view into the input,
 * valid while the input is) and advances *src. Returns 0, RINGP2P_ETRUNCATED
 * (incomplete), RINGP2P_EVARINT, RINGP2P_ELIMIT (length above RP_MSS_MSG_MAX)
 * or RINGP2P_EPROTOCOL (zero length, missing newline); *src is unchanged on
 * error.
 */
ssize_t rp_mss_encode_line(const void *msg, size_t len, uint8_t *dst, size_t cap);
int rp_mss_decode_line(const uint8_t **src, const uint8_t *end, const uint8_t **msg, size_t *len,
                       ringp2p_errinfo *ei);

#endif
