/*
 * Plaintext secure channel `/plaintext/2.0.0` (libp2p specs, plaintext/README.md),
 * sans-IO. No encryption and no authentication: both sides send one
 * uvarint-length-prefixed Exchange {id, pubkey} and check what they get. For
 * tests and interop only, and only when enabled explicitly on both sides.
 *
 *     rp_plaintext_new(&cfg, &s, &ei);
 *     loop: r = rp_plaintext_handshake(s, &rx, rx_end, &tx, &ei);  send tx; until r ==
 * RP_PLAINTEXT_DONE then: bytes after the exchange are the connection's payload, as is.
 *
 * Both sides write their Exchange at once (the spec: "both peers immediately
 * send"), so the first call, with no input, produces it on either side.
 * Checks on the remote Exchange, in order: the framing and protobuf are well
 * formed, both fields are present, `pubkey` decodes as a canonical PublicKey,
 * `id` is a valid peer ID and is the ID of that key ("Exchange"), and, when
 * the dialer named the peer it meant to reach, it is that peer. Any failure
 * is final: the session returns the same code afterwards, the host must close
 * the connection ("the connection MUST be terminated abruptly").
 */
#ifndef RP_SECURITY_PLAINTEXT_H
#define RP_SECURITY_PLAINTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/bytes.h"
#include "ringp2p/key.h"

/* plaintext/README.md "Protocol Id and Version History". */
#define RP_PLAINTEXT_PROTOCOL_ID "/plaintext/2.0.0"

/*
 * Largest Exchange body we accept ("Message Framing" sets none; go-libp2p
 * reads up to 2^31-1, js up to 4 MiB). Ours: the largest PublicKey we decode
 * plus the largest peer ID plus field overhead; anything longer cannot pass
 * the checks anyway, so the length prefix alone refuses it before buffering.
 */
#define RP_PLAINTEXT_EXCHANGE_MAX (RINGP2P_KEY_PROTOBUF_MAX + RINGP2P_PEER_ID_MAX + 16)
/* Length prefix of a message: an unsigned varint of a value <= the maximum above. */
#define RP_PLAINTEXT_PREFIX_MAX 2
/* Largest frame this side writes or reads. */
#define RP_PLAINTEXT_FRAME_MAX (RP_PLAINTEXT_PREFIX_MAX + RP_PLAINTEXT_EXCHANGE_MAX)

/* A decoded Exchange: views into the decoded buffer, absent fields have base NULL and len 0. */
typedef struct rp_plaintext_exchange {
    rp_iov id;     /* multihash bytes */
    rp_iov pubkey; /* protobuf PublicKey bytes */
} rp_plaintext_exchange;

/*
 * Decodes a whole Exchange body [*src, end) (no length prefix) and moves *src
 * to end. Unknown fields are skipped (protobuf rules); a known field with the
 * wrong wire type or given twice is RINGP2P_EPROTOBUF; a body longer than
 * RP_PLAINTEXT_EXCHANGE_MAX is RINGP2P_ELIMIT. Presence is not checked here.
 * The views point into the input and live as long as it. *src unchanged on
 * error; `ei` (may be NULL) names the problem.
 */
int rp_plaintext_exchange_decode(const uint8_t **src, const uint8_t *end,
                                 rp_plaintext_exchange *out, ringp2p_errinfo *ei);

/*
 * Encodes an Exchange body (no prefix) of `id` (multihash bytes) and `pubkey`
 * (PublicKey bytes), both the caller's and read only, into dst[cap] (the
 * caller's). Returns the byte count or RINGP2P_ENOBUF; dst NULL with cap 0
 * measures. RINGP2P_ENOMEM if protobuf-c cannot allocate.
 */
ssize_t rp_plaintext_exchange_encode(const uint8_t *id, size_t id_len, const uint8_t *pubkey,
                                     size_t pubkey_len, uint8_t *dst, size_t cap);

typedef struct rp_plaintext rp_plaintext;

typedef struct rp_plaintext_config {
    /* Our public key (encoded in rp_plaintext_new, not retained). Required. */
    const ringp2p_pubkey *local_key;
    /* The peer the dialer means to reach (copied); NULL accepts any peer. */
    const ringp2p_peer_id *expected_peer;
} rp_plaintext_config;

/* rp_plaintext_handshake's return when the exchange is complete. */
#define RP_PLAINTEXT_DONE 1

/*
 * A new session; encodes our Exchange. On success *out is the caller's
 * (rp_plaintext_free). Errors: RINGP2P_EINVAL (no local key), RINGP2P_ENOMEM.
 */
int rp_plaintext_new(const rp_plaintext_config *cfg, rp_plaintext **out, ringp2p_errinfo *ei);

/* NULL is fine. */
void rp_plaintext_free(rp_plaintext *s);

/*
 * Drives the exchange. Appends our framed Exchange to `out` (the caller's;
 * RP_PLAINTEXT_FRAME_MAX bytes always suffice) on the first call that has
 * room, and reads the peer's one whole frame from [*src, end) (the host's
 * buffer, read only, not retained), moving *src past it; a partial frame is
 * left where it is for the next call. Returns:
 *   RP_PLAINTEXT_DONE  ours is written and theirs checked (from then on, also
 *                      without touching anything); bytes after the frame are
 *                      connection payload;
 *   0                  waiting for more input;
 *   RINGP2P_ENOBUF     `out` has no room for our Exchange (nothing appended;
 *                      not fatal: call again with room);
 *   other negatives    the handshake failed and the session is dead:
 *                      RINGP2P_EVARINT (bad length prefix), RINGP2P_ELIMIT
 *                      (frame too long), RINGP2P_EPROTOBUF (malformed or a
 *                      field missing), RINGP2P_EKEY/EKEYTYPE (bad key),
 *                      RINGP2P_EPEERID (bad id), RINGP2P_EPROTOCOL (id is not
 *                      the key's), RINGP2P_EPEERMISMATCH (not the expected
 *                      peer; `ei` names both), RINGP2P_ENOMEM.
 * What was appended to `out` is to be sent when the result is 0 or DONE.
 */
int rp_plaintext_handshake(rp_plaintext *s, const uint8_t **src, const uint8_t *end, rp_wbuf *out,
                           ringp2p_errinfo *ei);

bool rp_plaintext_is_done(const rp_plaintext *s);

/* After the exchange: the remote's peer ID and key (owned by s), else NULL. */
const ringp2p_peer_id *rp_plaintext_remote_peer(const rp_plaintext *s);
const ringp2p_pubkey *rp_plaintext_remote_key(const rp_plaintext *s);

#endif
