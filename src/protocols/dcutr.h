/*
 * Direct Connection Upgrade through Relay (libp2p specs, relay/DCUtR.md),
 * sans-IO, for TCP.
 *
 * A dials B through a relay. B, which received the relayed connection, is the
 * initiator: it first tries a plain direct dial when A advertises public
 * addresses (the "unilateral upgrade"), then opens a /libp2p/dcutr stream on
 * the relayed connection and sends CONNECT with its addresses, timing the
 * answer; A, the responder, answers CONNECT with its own; B sends SYNC and
 * waits half the measured round trip; A dials B's addresses on SYNC's arrival
 * and B dials A's when its timer fires, so the two SYNs cross in the NATs (TCP
 * simultaneous open from each side's listen port, SO_REUSEPORT). For the
 * handshakes on the new connection A is the client and B the server. B tries
 * up to three times, each time on a fresh stream with a fresh RTT.
 *
 * The host drives one rp_dcutr per attempt sequence (initiator) or per
 * inbound stream (responder) by feeding events and executing actions:
 *
 *   rp_dcutr_initiator_init / rp_dcutr_responder_init
 *   after every event:  while (rp_dcutr_poll(&d, now, &act)) do(act)
 *                       arm a timer for rp_dcutr_deadline(&d)
 *   RP_DCUTR_OPEN_STREAM   open /libp2p/dcutr on the relayed connection, then
 *                          rp_dcutr_stream_opened(&d, now, &out) (send out) or
 *                          rp_dcutr_stream_failed(&d, err, now)
 *   stream bytes           rp_dcutr_recv(&d, &p, end, now, &out): send out; 1: close the
 *                          stream; < 0: reset it
 *   RP_DCUTR_DIRECT_DIAL   dial act.addrs normally; RP_DCUTR_DIAL: dial act.addrs now from
 *                          the listen port, taking the client or server role of act.client;
 *                          either way report rp_dcutr_dial_result(&d, act.attempt, r, now)
 *   RP_DCUTR_DONE          act.result 0: a direct connection exists (prefer it for new
 *                          streams, close the relayed one when idle); else the error.
 *                          Report act.attempts and act.rtt_ns.
 *
 * Decisions where the spec is silent (go-libp2p p2p/protocol/holepunch,
 * js-libp2p @libp2p/dcutr 3.0.28):
 *  - Messages over 4 KiB are refused (the spec's SHOULD; go maxMsgSize, js
 *    MAX_DCUTR_MESSAGE_SIZE). `type` is required (proto2): a HolePunch without
 *    it is malformed, as go's decoder finds; an unknown type value is the
 *    wrong message.
 *  - Addresses: only TCP ones we can dial (protocols/nataddr.h), relayed ones
 *    dropped (go removeRelayAddrs), private ones unless allow_private (js
 *    isPublicAndDialable; go relies on its host giving public addresses
 *    only), duplicates and /p2p/ of another peer dropped, at most
 *    RP_DCUTR_DIAL_ADDRS_MAX kept. Sides with no address left give up: the
 *    initiator before CONNECT, the responder before answering (go).
 *  - A responder refuses a stream on a connection that is not relayed or
 *    that it did not dial (go handleNewStream / incomingHolePunch).
 *  - Timing: go's. One stream deadline (60 s, go StreamTimeout) from the
 *    stream's opening; the RTT is from CONNECT sent to CONNECT received
 *    (initiator) and from CONNECT sent to SYNC received (responder, for
 *    reporting); each hole-punch dial gets 10 s (go directDialTimeout).
 *  - Retries (go maxRetries 3): only failed dials are retried; a protocol
 *    error or a stream that cannot be opened ends the upgrade (go returns at
 *    once; js would retry).
 *  - Roles: the spec's on every attempt. go ≥ 0.41 has B act as the client on
 *    its last attempt, for peers running older go that had the roles swapped;
 *    switch_role_last turns that on.
 */
#ifndef RP_PROTOCOLS_DCUTR_H
#define RP_PROTOCOLS_DCUTR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/bytes.h"
#include "protocols/nataddr.h"
#include "ringp2p/error.h"
#include "ringp2p/key.h"

/* DCUtR.md "The Protocol". */
#define RP_DCUTR_PROTOCOL_ID "/libp2p/dcutr"

/* DCUtR.md "RPC messages". */
#define RP_DCUTR_FIELD_TYPE      1
#define RP_DCUTR_FIELD_OBS_ADDRS 2
#define RP_DCUTR_CONNECT         100
#define RP_DCUTR_SYNC            300

/* The spec's 4 KiB (prefix excluded). */
#define RP_DCUTR_MSG_MAX 4096
/* ObsAddrs kept from one message as views; the rest are counted in n_addrs_skipped. */
#define RP_DCUTR_ADDRS_MAX 64
/* Usable addresses kept per side (ours to send, theirs to dial). */
#define RP_DCUTR_DIAL_ADDRS_MAX 16
/*
 * Room an output buffer needs for anything rp_dcutr_stream_opened or
 * rp_dcutr_recv writes: a CONNECT with RP_DCUTR_DIAL_ADDRS_MAX thin waists.
 */
#define RP_DCUTR_OUT_MAX 512

/* go-libp2p holepunch defaults. */
#define RP_DCUTR_ATTEMPTS          3
#define RP_DCUTR_STREAM_TIMEOUT_NS (UINT64_C(60) * 1000000000)
#define RP_DCUTR_DIAL_TIMEOUT_NS   (UINT64_C(10) * 1000000000)

/* ---- Messages -------------------------------------------------------------------------------- */

/* A decoded HolePunch. Views point into the decoded bytes. */
typedef struct rp_dcutr_msg {
    uint64_t type; /* as sent: RP_DCUTR_CONNECT, RP_DCUTR_SYNC or anything else */
    size_t n_addrs;
    rp_iov addrs[RP_DCUTR_ADDRS_MAX]; /* ObsAddrs, not yet checked */
    size_t n_addrs_skipped;           /* past RP_DCUTR_ADDRS_MAX */
} rp_dcutr_msg;

/*
 * Decodes one HolePunch body (all of [*src, end), no prefix) into *m
 * (overwritten); moves *src to end. Unknown fields are skipped; a repeated
 * type, last one wins. Errors (*src and *m unchanged): RINGP2P_EPROTOBUF
 * (malformed, a known field of the wrong wire type, or no type),
 * RINGP2P_ELIMIT (over RP_DCUTR_MSG_MAX).
 */
int rp_dcutr_msg_decode(const uint8_t **src, const uint8_t *end, rp_dcutr_msg *m,
                        ringp2p_errinfo *ei);

/*
 * Encodes *m as a HolePunch body (type, then ObsAddrs in order) into dst[cap].
 * Returns the length or RINGP2P_ENOBUF; dst NULL with cap 0 measures.
 */
ssize_t rp_dcutr_msg_encode(const rp_dcutr_msg *m, uint8_t *dst, size_t cap);

/*
 * Reads one length-prefixed message at *src into *m. Returns 1 (*src past
 * it), 0 (incomplete; nothing consumed) or an error (*src unchanged):
 * RINGP2P_EVARINT, RINGP2P_ELIMIT (announced over RP_DCUTR_MSG_MAX) and those
 * of rp_dcutr_msg_decode.
 */
int rp_dcutr_read_frame(const uint8_t **src, const uint8_t *end, rp_dcutr_msg *m,
                        ringp2p_errinfo *ei);

/*
 * Appends a length-prefixed HolePunch of `type` with addrs[n] (thin waists) to
 * w. Returns the bytes appended, or RINGP2P_ELIMIT over RP_DCUTR_MSG_MAX
 * (nothing appended). rp_wbuf_result(w) then says whether it fit.
 */
ssize_t rp_dcutr_write(rp_wbuf *w, uint32_t type, const rp_nataddr *addrs, size_t n,
                       ringp2p_errinfo *ei);

/*
 * The addresses of in[n] (binary multiaddrs, read only) worth dialing or
 * offering (see above), in order, into out[cap] as thin waists; `peer` (may be
 * NULL) is the peer they belong to, so /p2p/ of another is dropped. Returns
 * the count.
 */
size_t rp_dcutr_filter_addrs(const rp_iov *in, size_t n, const ringp2p_peer_id *peer,
                             bool allow_private, rp_nataddr *out, size_t cap);

/* ---- The exchange ---------------------------------------------------------------------------- */

typedef struct rp_dcutr_config {
    unsigned attempts;          /* hole-punch attempts by the initiator (1..8) */
    uint64_t stream_timeout_ns; /* one stream's whole exchange */
    uint64_t dial_timeout_ns;   /* one dial (direct or hole punch) */
    bool allow_private;         /* offer and dial private addresses */
    bool switch_role_last;      /* initiator: be the client on the last attempt (go) */
} rp_dcutr_config;

/* go's values (the constants above), allow_private and switch_role_last false. */
void rp_dcutr_config_default(rp_dcutr_config *cfg);

typedef enum rp_dcutr_action_kind {
    RP_DCUTR_NONE = 0,
    RP_DCUTR_DIRECT_DIAL, /* initiator: dial act.addrs the ordinary way (attempt 0) */
    RP_DCUTR_OPEN_STREAM, /* initiator: open a /libp2p/dcutr stream on the relayed connection */
    RP_DCUTR_DIAL,        /* hole punch: dial act.addrs now (simultaneous open) */
    RP_DCUTR_DONE,        /* finished: act.result */
} rp_dcutr_action_kind;

typedef struct rp_dcutr_action {
    rp_dcutr_action_kind kind;
    unsigned attempt;        /* DIAL: 1-based attempt; DIRECT_DIAL: 0 */
    bool client;             /* dials: take the client role in the new connection's handshakes */
    const rp_nataddr *addrs; /* dials: thin waists (add /p2p/<peer>); owned by the rp_dcutr, */
    size_t n_addrs;          /*   valid until its next call */
    uint64_t deadline_ns;    /* dials, OPEN_STREAM: the rp_dcutr gives up on its own then */
    int result;              /* DONE: 0 or an error (see rp_dcutr_result) */
    unsigned attempts;       /* DONE: hole-punch attempts made (0: the direct dial did it) */
    uint64_t rtt_ns;         /* DIAL, DONE: the relay round trip last measured (0: none) */
} rp_dcutr_action;

typedef struct rp_dcutr {
    rp_dcutr_config cfg;
    bool initiator;
    int state;
    int result;
    unsigned attempt; /* current hole-punch attempt (1-based), 0 before the first */
    bool client;      /* role of the current dial */
    bool stream_done; /* this stream's exchange is over */
    bool dialed;      /* a dial was asked for */
    uint64_t deadline_ns;
    uint64_t t_sent_ns;   /* our CONNECT left */
    uint64_t punch_at_ns; /* initiator: when to dial */
    uint64_t rtt_ns;
    ringp2p_peer_id remote;
    size_t n_own;
    rp_nataddr own[RP_DCUTR_DIAL_ADDRS_MAX];
    size_t n_theirs; /* their addresses to dial (hole punch, or the direct dial) */
    rp_nataddr theirs[RP_DCUTR_DIAL_ADDRS_MAX];
} rp_dcutr;

/*
 * B, on an inbound relayed connection from `remote` (copied), once identify
 * ran. own[n_own]: our candidate addresses — listen and observed ones
 * (identify's, confirmed or not); known[n_known]: the addresses A advertises;
 * pass them only if A may be reachable directly, for the direct dial is tried
 * first when any of them is usable. All binary, read only. Returns 0, or
 * RINGP2P_ENOENT when no address of ours is usable (nothing to offer; go
 * gives up too) — then the rp_dcutr is DONE.
 */
int rp_dcutr_initiator_init(rp_dcutr *d, const rp_dcutr_config *cfg, const ringp2p_peer_id *remote,
                            const rp_iov *own, size_t n_own, const rp_iov *known, size_t n_known,
                            uint64_t now_ns, ringp2p_errinfo *ei);

/*
 * A, on a /libp2p/dcutr stream from `remote` that opened at now_ns, on a
 * connection that is `relayed` and that we dialed (`we_dialed`). own[n_own] as
 * for the initiator. Returns 0, RINGP2P_EPROTOCOL (not relayed, or not ours:
 * reset the stream) or RINGP2P_ENOENT (no address of ours to offer: reset).
 */
int rp_dcutr_responder_init(rp_dcutr *d, const rp_dcutr_config *cfg, const ringp2p_peer_id *remote,
                            const rp_iov *own, size_t n_own, bool relayed, bool we_dialed,
                            uint64_t now_ns, ringp2p_errinfo *ei);

/*
 * The next action at now_ns (timeouts are applied first), or false when there
 * is nothing to do until an event or rp_dcutr_deadline. Each action is given
 * once; DONE is the last.
 */
bool rp_dcutr_poll(rp_dcutr *d, uint64_t now_ns, rp_dcutr_action *act);

/* When rp_dcutr_poll must be called again without an event; UINT64_MAX if never. */
uint64_t rp_dcutr_deadline(const rp_dcutr *d);

/*
 * Initiator: the stream asked for opened; appends our CONNECT to `out` (at
 * least RP_DCUTR_OUT_MAX free) and starts the RTT clock. Returns 0, or
 * RINGP2P_EPROTOCOL when no stream was asked for (ignored), RINGP2P_ENOBUF.
 */
int rp_dcutr_stream_opened(rp_dcutr *d, uint64_t now_ns, rp_wbuf *out, ringp2p_errinfo *ei);

/* Initiator: the stream could not be opened (or broke): the upgrade ends with `err`. */
void rp_dcutr_stream_failed(rp_dcutr *d, int err, uint64_t now_ns);

/*
 * Bytes from the stream at [*src, end) (the host's buffer, which keeps what is
 * not consumed). Whole messages are consumed; replies are appended to `out`
 * (room: RP_DCUTR_OUT_MAX). Returns 1 when the exchange on this stream is
 * over (close the stream; later bytes are left alone), 0 when more is needed,
 * or an error (reset the stream; the upgrade is DONE with it):
 * RINGP2P_EPROTOCOL (a message out of turn, a CONNECT with no usable
 * address), RINGP2P_ENOBUF and the errors of rp_dcutr_read_frame.
 */
int rp_dcutr_recv(rp_dcutr *d, const uint8_t **src, const uint8_t *end, uint64_t now_ns,
                  rp_wbuf *out, ringp2p_errinfo *ei);

/*
 * A dial the rp_dcutr asked for ended: result 0 (connected) or an error.
 * `attempt` is the action's; stale failures are ignored, a success always
 * counts.
 */
void rp_dcutr_dial_result(rp_dcutr *d, unsigned attempt, int result, uint64_t now_ns);

/* True once DONE has been given (or is due). */
bool rp_dcutr_finished(const rp_dcutr *d);

/*
 * The outcome: 0 (direct connection), or RINGP2P_ENOENT (no usable address
 * on one side), RINGP2P_EPROTOCOL, RINGP2P_ETIMEDOUT (stream or dial timed
 * out), the host's stream or dial error; RINGP2P_EAGAIN while running.
 */
int rp_dcutr_result(const rp_dcutr *d);

#endif
