/*
 * ringp2p signed mode (`/ringp2p/signed/1.0.0`, docs/signed-mode.md): the
 * /noise handshake (mutual authentication, fresh keys), then transport
 * messages sent in the clear, each followed by a 16-byte AES-256-GCM tag over
 * it (a GCM seal of an empty plaintext with the message as associated data,
 * i.e. GMAC). Sans-IO, like rp_noise, whose handshake it runs:
 *
 *     rp_signed_new(&cfg, &s, &ei);
 *     loop: r = rp_signed_handshake(s, &rx, rx_end, &tx, &ei);  send tx; until r == RP_SIGNED_DONE
 *     then: rp_signed_seal(s, iov, n, out, cap)          -> frames (payload copied) to send
 *           rp_signed_seal_ref(s, iov, n, scratch, ...)  -> views: only headers and tags written,
 *                                                            payload sent from the caller's memory
 *           rp_signed_open(s, &rx, rx_end, &view)        -> a verified payload inside rx
 *
 * Nothing the peer sent is delivered before its tag has been checked, and any
 * failure (a modified, dropped, duplicated, reordered or truncated-to-garbage
 * message, nonce exhaustion) is final: the session returns the same code from
 * then on and the host must close the connection. Opening does not modify the
 * receive buffer; the cursors are `uint8_t **` only so the host can drive
 * rp_noise and rp_signed the same way.
 */
#ifndef RP_SECURITY_SIGNED_H
#define RP_SECURITY_SIGNED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/bytes.h"
#include "crypto/aead.h"
#include "security/noise.h"

/* signed-mode.md §1 "Negotiation". Also the Noise prologue (§2), which binds the mode. */
#define RP_SIGNED_PROTOCOL_ID     "/ringp2p/signed/1.0.0"
#define RP_SIGNED_PROTOCOL_ID_LEN (sizeof(RP_SIGNED_PROTOCOL_ID) - 1)

/* §3 "Key derivation": HKDF-SHA256 info strings, one per direction; keys are 32 bytes. */
#define RP_SIGNED_INFO_I2R "ringp2p/signed/1.0.0 initiator to responder"
#define RP_SIGNED_INFO_R2I "ringp2p/signed/1.0.0 responder to initiator"
#define RP_SIGNED_KEY_LEN  32
/* §3: Noise Split()'s two 32-byte keys, k1 || k2. */
#define RP_SIGNED_SPLIT_LEN 64

/* §4 "Framing": u16 big-endian length of what follows (payload + tag), 16..65535. */
#define RP_SIGNED_FRAME_HEADER_LEN 2
#define RP_SIGNED_TAG_LEN          RP_AEAD_TAG_LEN
#define RP_SIGNED_MSG_MAX          65535
#define RP_SIGNED_FRAME_MAX        (RP_SIGNED_FRAME_HEADER_LEN + RP_SIGNED_MSG_MAX)
#define RP_SIGNED_PAYLOAD_MAX      (RP_SIGNED_MSG_MAX - RP_SIGNED_TAG_LEN)
/* Header and tag of one frame: what seal_ref writes per message it sends by reference. */
#define RP_SIGNED_OVERHEAD (RP_SIGNED_FRAME_HEADER_LEN + RP_SIGNED_TAG_LEN)

/* §5 "Nonces": counters 0 .. 2^64-2 per direction; 2^64-1 is never used (as Noise §5.1). */
#define RP_SIGNED_NONCE_MAX (UINT64_MAX - 1)

/*
 * rp_signed_seal_ref: input pieces shorter than this are copied into the
 * scratch buffer (coalesced into one message with their small neighbours)
 * rather than sent by reference: below it, a frame's 18 bytes and an extra
 * iovec cost more than the copy. An implementation choice, not wire format.
 */
#define RP_SIGNED_REF_MIN 512

/* rp_signed_handshake's return when the handshake is complete. */
#define RP_SIGNED_DONE RP_NOISE_DONE

typedef struct rp_signed rp_signed;

/*
 * A new session. `cfg` is a /noise configuration (identity, role, expected
 * peer, muxers for early negotiation), read as rp_noise_new reads it, except
 * that its prologue is replaced by RP_SIGNED_PROTOCOL_ID (§2) and its
 * split_keys_out is the session's own. On success *out is the caller's
 * (rp_signed_free). Errors: those of rp_noise_new.
 */
int rp_signed_new(const rp_noise_config *cfg, rp_signed **out, ringp2p_errinfo *ei);

/*
 * Tests and vectors only: a session that starts past the handshake, with
 * Split()'s outputs given (split: RP_SIGNED_SPLIT_LEN bytes, k1 || k2, read
 * and not retained). It has no remote peer and no muxer. Errors:
 * RINGP2P_ENOMEM, RINGP2P_ECRYPTO.
 */
int rp_signed_new_keyed(const uint8_t *split, bool initiator, rp_signed **out, ringp2p_errinfo *ei);

/* Wipes and frees (NULL is fine). */
void rp_signed_free(rp_signed *s);

/*
 * §3: the two AES-256-GCM keys of a connection from Split()'s k1 || k2
 * (`split`, RP_SIGNED_SPLIT_LEN bytes): i2r is the initiator's sending key,
 * r2i the responder's. Outputs are the caller's (RP_SIGNED_KEY_LEN each;
 * wipe them). 0 or RINGP2P_ECRYPTO.
 */
int rp_signed_derive_keys(const uint8_t *split, uint8_t i2r[RP_SIGNED_KEY_LEN],
                          uint8_t r2i[RP_SIGNED_KEY_LEN]);

/*
 * Drives the handshake exactly as rp_noise_handshake does (same arguments,
 * buffers and results, RP_SIGNED_DONE when complete; bytes after the last
 * handshake frame are signed-mode frames for rp_signed_open). On completion
 * the transport keys are derived and the Noise transport ciphers are not used.
 */
int rp_signed_handshake(rp_signed *s, uint8_t **src, uint8_t *end, rp_wbuf *out,
                        ringp2p_errinfo *ei);

bool rp_signed_is_done(const rp_signed *s);

/* After the handshake: as rp_noise_remote_peer, rp_noise_remote_key, rp_noise_muxer. */
const ringp2p_peer_id *rp_signed_remote_peer(const rp_signed *s);
const ringp2p_pubkey *rp_signed_remote_key(const rp_signed *s);
const char *rp_signed_muxer(const rp_signed *s);

/* Sets the next send and receive nonces; for tests that reach the end of the nonce space. */
void rp_signed_set_nonces(rp_signed *s, uint64_t send, uint64_t recv);

/* Bytes rp_signed_seal writes for plaintext_len bytes (one empty message for 0). */
size_t rp_signed_sealed_len(size_t plaintext_len);

/* The most plaintext whose sealed form fits in cap bytes (0 if not even an empty message fits). */
size_t rp_signed_plaintext_fit(size_t cap);

/*
 * Seals the concatenation of in[0..n) (caller's, read-only, not overlapping
 * out) into as many frames as it takes, each full but the last, written
 * whole (header, payload copy, tag) into out (caller's). An empty input makes
 * one empty message. Returns the bytes written (rp_signed_sealed_len of the
 * total) or: RINGP2P_ENOBUF (cap too small; nothing changed), RINGP2P_EINVAL
 * (handshake not done), RINGP2P_ELIMIT (the send nonces would run out: the
 * session is dead), RINGP2P_ECRYPTO.
 */
ssize_t rp_signed_seal(rp_signed *s, const rp_iov *in, size_t n, uint8_t *out, size_t cap,
                       ringp2p_errinfo *ei);

/*
 * Seals in[0..n) (caller's, read-only) leaving the payload where it is: writes
 * only headers and tags (and copies of pieces shorter than RP_SIGNED_REF_MIN)
 * into `scratch` (caller's, scratch_cap bytes) and fills out[0..*n_out) with
 * views, in order, of the bytes to send: they point into scratch and into the
 * input, so both must stay untouched until the send completes. Messages are
 * cut at piece boundaries (never spanning two pieces sent by reference) and
 * at RP_SIGNED_PAYLOAD_MAX. Scratch needs at most RP_SIGNED_OVERHEAD per
 * message plus the copied bytes; out at most 3 views per message (adjacent
 * scratch bytes share a view). An empty input makes one empty message.
 * Returns the total bytes the views cover, or as rp_signed_seal (ENOBUF: the
 * scratch or the view array is too small; nothing changed).
 */
ssize_t rp_signed_seal_ref(rp_signed *s, const rp_iov *in, size_t n, uint8_t *scratch,
                           size_t scratch_cap, rp_iov *out, size_t out_cap, size_t *n_out,
                           ringp2p_errinfo *ei);

/*
 * Verifies the next frame at *src. Returns 1 with *plain viewing its payload
 * (inside [*src, end), valid while the host keeps that buffer; the bytes are
 * not modified) and *src moved past the frame; 0 when no whole frame is there
 * yet (*src unchanged); or, killing the session with *src unchanged:
 * RINGP2P_EAUTH (the tag does not verify: modified, dropped, duplicated,
 * reordered or not from the peer; nothing of it is delivered),
 * RINGP2P_EPROTOCOL (length below the tag's 16 bytes), RINGP2P_ELIMIT (the
 * receive nonces are used up). RINGP2P_EINVAL before the handshake is done.
 */
int rp_signed_open(rp_signed *s, uint8_t **src, uint8_t *end, rp_iov *plain, ringp2p_errinfo *ei);

/*
 * Verifies every whole frame in [*src, end), up to `cap` non-empty payloads
 * (empty messages are consumed and not reported), into views[] (caller's
 * array). Returns the count (0 if none) and moves *src past what it verified;
 * a partial frame stays. Errors as rp_signed_open: the session is dead and
 * the views of this call must be dropped with the connection.
 */
ssize_t rp_signed_open_batch(rp_signed *s, uint8_t **src, uint8_t *end, rp_iov *views, size_t cap,
                             ringp2p_errinfo *ei);

#endif
