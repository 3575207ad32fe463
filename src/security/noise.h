/*
 * libp2p Noise (`/noise`): Noise_XX_25519_ChaChaPoly_SHA256 with the libp2p
 * handshake payload, sans-IO (libp2p specs noise/README.md, early muxer
 * negotiation from connections/inlined-muxer-negotiation.md; Noise Protocol
 * Framework rev 34).
 *
 * Two layers, both here:
 *
 *  - rp_noise_hs: the bare Noise XX HandshakeState (§5.3) with its
 *    SymmetricState and CipherStates. Arbitrary payloads and prologue, fixed
 *    keys on request, so the published vectors (cacophony, snow) run against
 *    it byte for byte.
 *
 *  - rp_noise: a libp2p session. It frames every message with a 2-byte
 *    big-endian length, carries the signed identity and the stream muxer list
 *    in messages 2 and 3, checks the remote's peer ID, picks the muxer, and
 *    afterwards seals and opens transport messages.
 *
 * The session does no I/O and keeps no clock. The host feeds it received
 * bytes and sends what it writes:
 *
 *     rp_noise_new(&cfg, &s, &ei);
 *     loop: r = rp_noise_handshake(s, &rx, rx_end, &tx, &ei);   send tx; until r == RP_NOISE_DONE
 *     then: rp_noise_seal(s, iov, n, out, cap)    -> framed ciphertext to send
 *           rp_noise_open(s, &rx, rx_end, &view)  -> plaintext, decrypted in place in rx
 *
 * Everything received is decrypted in place in the host's receive buffer, so
 * the cursors are `uint8_t **` (not const): the buffer must be writable and
 * the views returned point into it. Any failure (malformed or tampered
 * handshake, bad signature, wrong peer, a transport message that does not
 * authenticate, nonce exhaustion) is final: the session returns the same code
 * from then on and the host must close the connection.
 *
 * Static key choice: the spec allows a fresh X25519 static key per session or
 * one for all sessions (noise/README.md "Static Key Authentication": "a single
 * static keypair may be generated when noise-libp2p is initialized and used
 * for all sessions"). go-libp2p makes one per session; rust-libp2p and
 * js-libp2p keep one per node. A session takes a prepared rp_noise_static
 * (the host keeps one per node, signed once: one X25519 key generation and one
 * identity signature less per handshake), or makes its own when given none.
 * Forward secrecy comes from the ephemeral keys either way; the static key is
 * kept in memory only, never stored.
 */
#ifndef RP_SECURITY_NOISE_H
#define RP_SECURITY_NOISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/bytes.h"
#include "crypto/aead.h"
#include "crypto/sigcache.h"
#include "crypto/x25519.h"
#include "ringp2p/key.h"

/* noise/README.md "Negotiation". */
#define RP_NOISE_PROTOCOL_ID "/noise"
/* noise/README.md "Noise Protocol Name"; 32 bytes, so it is the initial h as is (Noise §5.2). */
#define RP_NOISE_PROTOCOL_NAME "Noise_XX_25519_ChaChaPoly_SHA256"

/* Noise §12.1 (DHLEN), §12.5 (HASHLEN), §5.1 (ChaChaPoly tag). */
#define RP_NOISE_DHLEN   RP_X25519_KEY_LEN
#define RP_NOISE_HASHLEN 32
#define RP_NOISE_TAGLEN  RP_AEAD_TAG_LEN

/* noise/README.md "Wire Format": u16 big-endian length, then a Noise message of at most 65535. */
#define RP_NOISE_FRAME_HEADER_LEN 2
#define RP_NOISE_MSG_MAX          65535
#define RP_NOISE_FRAME_MAX        (RP_NOISE_FRAME_HEADER_LEN + RP_NOISE_MSG_MAX)
/* Largest plaintext of one transport message (Noise §3: the tag counts in the 65535). */
#define RP_NOISE_PLAINTEXT_MAX (RP_NOISE_MSG_MAX - RP_NOISE_TAGLEN)

/*
 * Noise §5.1: nonce 2^64-1 is reserved, so the last usable one is 2^64-2; a
 * session that would need more ends (noise/README.md "Encryption and I/O").
 */
#define RP_NOISE_NONCE_MAX (UINT64_MAX - 1)

/* noise/README.md "The libp2p Handshake Payload": signed data = this prefix || static key. */
#define RP_NOISE_SIG_PREFIX     "noise-libp2p-static-key:"
#define RP_NOISE_SIG_PREFIX_LEN (sizeof(RP_NOISE_SIG_PREFIX) - 1)

/*
 * Entries of a peer's stream_muxers and webtransport_certhashes we accept. The
 * spec sets no bound; go-libp2p ignores lists longer than 100 (maxProtoNum).
 * We refuse them instead (RINGP2P_ELIMIT): ignoring would let the two sides
 * disagree about whether early negotiation happened.
 */
#define RP_NOISE_MUXERS_MAX     100
#define RP_NOISE_CERTHASHES_MAX 100

/* ---- Noise CipherState (§5.1) ---------------------------------------------------------------- */

typedef struct rp_noise_cipher {
    rp_aead aead; /* ChaChaPoly; alg NULL while the key is empty */
    uint64_t n;   /* next nonce */
} rp_noise_cipher;

/* InitializeKey: keys c with 32 bytes (copied), nonce 0. 0 or RINGP2P_ECRYPTO. */
int rp_noise_cipher_init(rp_noise_cipher *c, const uint8_t key[32]);

/* Wipes c. */
void rp_noise_cipher_clear(rp_noise_cipher *c);

/* SetNonce (§5.1). Tests use it to reach the end of the nonce space. */
void rp_noise_cipher_set_nonce(rp_noise_cipher *c, uint64_t n);

/*
 * EncryptWithAd in place: buf holds `len` plaintext bytes and room for
 * RP_NOISE_TAGLEN more (caller's). Returns the ciphertext length (len + 16;
 * len when the key is empty, as §5.1 says), or RINGP2P_ELIMIT when the nonces
 * are used up (nothing changed).
 */
ssize_t rp_noise_cipher_encrypt(rp_noise_cipher *c, const uint8_t *ad, size_t ad_len, uint8_t *buf,
                                size_t len);

/*
 * DecryptWithAd in place: buf holds `len` ciphertext bytes (tag included).
 * Returns the plaintext length (at buf), RINGP2P_EAUTH (not authentic; the
 * nonce is not advanced), RINGP2P_ETRUNCATED (shorter than a tag) or
 * RINGP2P_ELIMIT (nonces used up).
 */
ssize_t rp_noise_cipher_decrypt(rp_noise_cipher *c, const uint8_t *ad, size_t ad_len, uint8_t *buf,
                                size_t len);

/* ---- Noise XX HandshakeState (§5.2, §5.3, §7.5) ---------------------------------------------- */

typedef struct rp_noise_hs {
    uint8_t ck[RP_NOISE_HASHLEN];
    uint8_t h[RP_NOISE_HASHLEN];
    rp_noise_cipher cs;
    uint8_t s[RP_NOISE_DHLEN], s_pub[RP_NOISE_DHLEN]; /* local static */
    uint8_t e[RP_NOISE_DHLEN], e_pub[RP_NOISE_DHLEN]; /* local ephemeral */
    uint8_t rs[RP_NOISE_DHLEN], re[RP_NOISE_DHLEN];   /* remote static, ephemeral */
    bool initiator;
    bool e_fixed; /* e was given: do not generate one */
    uint8_t step; /* handshake messages done: 0..3 */
} rp_noise_hs;

/*
 * Initialize for XX with `prologue` (read, not retained; libp2p uses none).
 * s_priv / e_priv: fixed private keys (copied) for vectors and tests, or NULL
 * for fresh ones (static now, ephemeral when its message is written).
 */
void rp_noise_hs_init(rp_noise_hs *hs, bool initiator, const uint8_t *prologue, size_t prologue_len,
                      const uint8_t *s_priv, const uint8_t *e_priv);

/* True when it is this side's turn to write (false after the last message). */
bool rp_noise_hs_writes_next(const rp_noise_hs *hs);

/* True once all three messages are done. */
bool rp_noise_hs_done(const rp_noise_hs *hs);

/* Exact length of the next message this side writes with a payload of payload_len bytes. */
size_t rp_noise_hs_write_len(const rp_noise_hs *hs, size_t payload_len);

/*
 * WriteMessage: the next message, carrying `payload` (caller's, read-only),
 * into out (caller's). Returns its length, RINGP2P_ENOBUF (cap too small:
 * nothing changed), RINGP2P_EINVAL (not this side's turn) or, for a remote
 * key that gives an all-zero DH, RINGP2P_EPROTOCOL (`ei` says which).
 */
ssize_t rp_noise_hs_write(rp_noise_hs *hs, const uint8_t *payload, size_t payload_len, uint8_t *out,
                          size_t cap, ringp2p_errinfo *ei);

/*
 * ReadMessage in place: `msg` (caller's, writable) holds one whole message;
 * on success *payload views its decrypted payload inside msg. Errors:
 * RINGP2P_EPROTOCOL (too short, or a low-order remote key), RINGP2P_EAUTH
 * (a field did not decrypt: tampered or not from the peer), RINGP2P_EINVAL
 * (not this side's turn). After an error hs is unusable.
 */
int rp_noise_hs_read(rp_noise_hs *hs, uint8_t *msg, size_t len, rp_iov *payload,
                     ringp2p_errinfo *ei);

/*
 * Split (§5.2) after the last message: the cipher this side sends with and the
 * one it receives with. 0 or RINGP2P_EINVAL (handshake not done) /
 * RINGP2P_ECRYPTO.
 */
int rp_noise_hs_split(rp_noise_hs *hs, rp_noise_cipher *send, rp_noise_cipher *recv);

/* The handshake hash h (§5.2 GetHandshakeHash), RP_NOISE_HASHLEN bytes, owned by hs. */
const uint8_t *rp_noise_hs_hash(const rp_noise_hs *hs);

/* Wipes every secret in hs. */
void rp_noise_hs_clear(rp_noise_hs *hs);

/* ---- libp2p handshake payload (noise/README.md "The libp2p Handshake Payload") ------------- */

/*
 * A decoded NoiseHandshakePayload. Every view points into the decoded buffer
 * and lives as long as it; an absent field has base NULL and len 0.
 */
typedef struct rp_noise_payload {
    rp_iov identity_key; /* protobuf PublicKey bytes */
    rp_iov identity_sig;
    bool has_extensions;
    size_t n_certhashes;
    rp_iov certhashes[RP_NOISE_CERTHASHES_MAX];
    size_t n_muxers;
    rp_iov muxers[RP_NOISE_MUXERS_MAX];
} rp_noise_payload;

/*
 * Decodes a whole NoiseHandshakePayload from [*src, end) into *out and moves
 * *src to end. Unknown fields (top level and in NoiseExtensions) are skipped,
 * as protobuf and the spec's extension registry say. Refused, with `ei`
 * naming the problem: malformed protobuf, a known field with the wrong wire
 * type, identity_key / identity_sig / extensions given twice
 * (RINGP2P_EPROTOBUF), lists longer than the limits above (RINGP2P_ELIMIT).
 * *src is unchanged on error.
 */
int rp_noise_payload_decode(const uint8_t **src, const uint8_t *end, rp_noise_payload *out,
                            ringp2p_errinfo *ei);

/*
 * Encodes a payload (the generated protobuf-c code does the work): the
 * PublicKey bytes, the signature and, when n_muxers > 0, NoiseExtensions with
 * the muxer names (NUL-terminated). All inputs are the caller's, read-only.
 * Returns the length written into dst or RINGP2P_ENOBUF; dst NULL with cap 0
 * measures.
 */
ssize_t rp_noise_payload_encode(const uint8_t *key_pb, size_t key_pb_len, const uint8_t *sig,
                                size_t sig_len, const char *const *muxers, size_t n_muxers,
                                uint8_t *dst, size_t cap);

/* ---- libp2p session ------------------------------------------------------------------------ */

typedef struct rp_noise rp_noise;

/*
 * An X25519 static key pair with the identity's signature over it and the
 * identity's PublicKey protobuf: everything of a handshake payload that does
 * not change between sessions. Immutable once made, so any number of sessions
 * on any threads may use one at once.
 */
typedef struct rp_noise_static rp_noise_static;

/*
 * Makes a fresh static key pair and signs it with `identity` (read, not
 * retained). On success *out is the caller's (rp_noise_static_free). Errors:
 * RINGP2P_EINVAL (no identity), RINGP2P_ENOMEM, and identity's signing and
 * encoding errors.
 */
int rp_noise_static_new(const ringp2p_privkey *identity, rp_noise_static **out,
                        ringp2p_errinfo *ei);

/* Wipes and frees (NULL is fine). */
void rp_noise_static_free(rp_noise_static *st);

/* The static public key (RP_NOISE_DHLEN bytes, owned by st). */
const uint8_t *rp_noise_static_public(const rp_noise_static *st);

typedef struct rp_noise_config {
    /*
     * Signs a static key made for this session in rp_noise_new; not retained.
     * Required unless static_key is given.
     */
    const ringp2p_privkey *identity;
    /*
     * Not NULL: the static key and signature to use (read in rp_noise_new
     * only; the payload is copied). It must be the identity's: the remote
     * derives our peer ID from the key inside it.
     */
    const rp_noise_static *static_key;
    /*
     * Not NULL: the verified-signature cache (crypto/sigcache.h) to consult and
     * fill with the remote's identity signature over its static key, so a peer
     * that keeps one static key costs one verification, not one per handshake
     * (borrowed; outlives s).
     */
    rp_sigcache *verified;
    bool initiator;
    /* The peer the dialer means to reach (copied); NULL accepts any peer. */
    const ringp2p_peer_id *expected_peer;
    /*
     * Stream muxer protocol IDs this side supports, most preferred first, sent
     * for early negotiation; none (n_muxers 0) turns it off. Borrowed: the
     * strings must outlive the session, which returns one of these pointers
     * from rp_noise_muxer.
     */
    const char *const *muxers;
    size_t n_muxers;
    /* Noise prologue (§6), read in rp_noise_new; libp2p uses none. */
    const uint8_t *prologue;
    size_t prologue_len;
    /*
     * Not NULL: receives Split()'s two keys, k1 || k2 (2 x 32 bytes; k1 is the
     * initiator's sending key), when the handshake completes, for a mode that
     * derives its own transport keys from them (/ringp2p/signed). Caller's
     * buffer: it must stay valid until the handshake ends; the caller wipes it.
     */
    uint8_t *split_keys_out;
    /* Tests only: fixed X25519 private keys (32 bytes) instead of fresh ones (over static_key). */
    const uint8_t *test_static_priv;
    const uint8_t *test_ephemeral_priv;
} rp_noise_config;

/* rp_noise_handshake's return when the handshake is complete. */
#define RP_NOISE_DONE 1

/*
 * A new session: takes cfg->static_key or makes and signs one, encodes this
 * side's payload.
 * On success *out is the caller's (rp_noise_free). Errors: RINGP2P_EINVAL
 * (no identity, a NULL muxer name, more than RP_NOISE_MUXERS_MAX muxers),
 * RINGP2P_ENOMEM, RINGP2P_ECRYPTO, RINGP2P_ELIMIT (payload over a message).
 */
int rp_noise_new(const rp_noise_config *cfg, rp_noise **out, ringp2p_errinfo *ei);

/* Wipes and frees (NULL is fine). */
void rp_noise_free(rp_noise *s);

/*
 * Drives the handshake. Reads whole handshake frames from [*src, end) (the
 * host's receive buffer, decrypted in place) and moves *src past what it
 * used; a partial frame is left for the next call. Appends the frames to send
 * to `out` (caller's buffer; RP_NOISE_FRAME_MAX bytes of room always
 * suffice). Returns:
 *   RP_NOISE_DONE     the handshake is complete (from then on, also without
 *                     touching anything); bytes after the last handshake frame
 *                     are transport messages for rp_noise_open;
 *   0                 waiting for more input;
 *   RINGP2P_ENOBUF    `out` has no room for the next message; nothing was
 *                     appended by that step; call again with room (not fatal);
 *   other negatives   the handshake failed and the session is dead:
 *                     RINGP2P_EPROTOCOL, RINGP2P_EAUTH, RINGP2P_EPROTOBUF,
 *                     RINGP2P_EKEY, RINGP2P_EKEYTYPE, RINGP2P_ELIMIT,
 *                     RINGP2P_ESIGNATURE, RINGP2P_EPEERMISMATCH (`ei` names
 *                     both IDs), RINGP2P_ENEGOTIATION (both offered muxers
 *                     and none is common), RINGP2P_ENOMEM, RINGP2P_ECRYPTO.
 * The initiator calls it first with no input to produce message 1. What was
 * appended to `out` is to be sent whenever the result is 0 or RP_NOISE_DONE
 * (the initiator's last call both writes message 3 and returns DONE); after a
 * failure it is dropped with the connection.
 */
int rp_noise_handshake(rp_noise *s, uint8_t **src, uint8_t *end, rp_wbuf *out, ringp2p_errinfo *ei);

bool rp_noise_is_done(const rp_noise *s);

/* After the handshake: the remote's peer ID and key (owned by s), else NULL. */
const ringp2p_peer_id *rp_noise_remote_peer(const rp_noise *s);
const ringp2p_pubkey *rp_noise_remote_key(const rp_noise *s);
/* After the handshake: the remote's Noise static public key (RP_NOISE_DHLEN bytes, owned by s). */
const uint8_t *rp_noise_remote_static(const rp_noise *s);

/*
 * After the handshake: the muxer chosen by early negotiation (one of the
 * config's pointers), or NULL when there was none — either side offered no
 * muxers — and multistream-select must choose one.
 */
const char *rp_noise_muxer(const rp_noise *s);

/*
 * SetNonce (Noise §5.1) on both transport ciphers after the handshake; for
 * tests that reach the end of the nonce space, and nothing else.
 */
void rp_noise_set_nonces(rp_noise *s, uint64_t send, uint64_t recv);

/* Bytes rp_noise_seal writes for plaintext_len bytes (one empty message for 0). */
size_t rp_noise_sealed_len(size_t plaintext_len);

/* The most plaintext whose sealed form fits in cap bytes (0 if not even an empty message fits). */
size_t rp_noise_plaintext_fit(size_t cap);

/*
 * Seals the concatenation of in[0..n) (caller's, read-only, not overlapping
 * out) in one pass into as many transport messages as it takes, each full
 * but the last, framed, into out (caller's). An empty input makes one empty
 * message. Returns the bytes written (rp_noise_sealed_len of the total) or:
 * RINGP2P_ENOBUF (cap too small; nothing changed), RINGP2P_EINVAL (handshake
 * not done), RINGP2P_ELIMIT (the send nonces would run out: the session is
 * dead), RINGP2P_ECRYPTO.
 */
ssize_t rp_noise_seal(rp_noise *s, const rp_iov *in, size_t n, uint8_t *out, size_t cap,
                      ringp2p_errinfo *ei);

/*
 * Opens the next transport message at *src in place. Returns 1 with *plain
 * viewing its plaintext (inside [*src, end) as it was: valid while the host
 * keeps that buffer) and *src moved past the frame; 0 when no whole frame is
 * there yet (*src unchanged); or, killing the session: RINGP2P_EAUTH (not
 * authentic: tampered, reordered, replayed or from elsewhere; nothing is
 * delivered), RINGP2P_EPROTOCOL (shorter than a tag), RINGP2P_ELIMIT (the
 * receive nonces are used up). RINGP2P_EINVAL before the handshake is done.
 */
int rp_noise_open(rp_noise *s, uint8_t **src, uint8_t *end, rp_iov *plain, ringp2p_errinfo *ei);

/*
 * Opens every whole transport message in [*src, end), up to `cap` non-empty
 * plaintexts (empty messages are consumed and not reported), into views[]
 * (caller's array). Returns the count (0 if none) and moves *src past what it
 * opened; a partial frame stays. Errors as rp_noise_open: on one the session
 * is dead and the views of this call must be dropped with the connection.
 */
ssize_t rp_noise_open_batch(rp_noise *s, uint8_t **src, uint8_t *end, rp_iov *views, size_t cap,
                            ringp2p_errinfo *ei);

#endif
