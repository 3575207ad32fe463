/*
 * libp2p TLS (`/tls/1.0.0`): TLS 1.3 with the libp2p certificate extension and
 * ALPN muxer negotiation, sans-IO (libp2p specs tls/tls.md;
 * connections/inlined-muxer-negotiation.md "Multiplexer Negotiation over
 * TLS").
 *
 * libssl (BoringSSL) runs the handshake over a BIO that reads the caller's
 * input where it lies and writes into the caller's output buffer. Once the
 * handshake is done, records are sealed and opened here (RFC 8446 §5) with
 * the application traffic secrets libssl derived, and libssl is freed: seal
 * gathers the caller's pieces into full records written straight into the
 * caller's buffer, and open decrypts in place in the caller's buffer, as
 * rp_noise_open does. Nothing here touches a socket or a clock; the
 * wall-clock time the certificates need (Unix seconds) is passed in.
 *
 *     rp_tls_new(&cfg, &s, &ei);
 *     loop: r = rp_tls_handshake(s, unix_now, &rx, rx_end, &tx, &ei);  send tx;
 *           until r == RP_TLS_DONE
 *     then: rp_tls_seal(s, iov, n, out, cap, &ei)    -> records to send
 *           rp_tls_open(s, &rx, rx_end, &view, &ei)  -> plaintext, decrypted in place in rx
 *
 * Output that did not fit the caller's buffer, or that came from no call
 * with a buffer (a KeyUpdate answer, an alert, close_notify), stays queued:
 * rp_tls_pending_output says how much, rp_tls_take_output takes it, and
 * rp_tls_seal writes it ahead of new records. The host drains it after
 * handshake steps and after rp_tls_open.
 *
 * Certificates: an Ed25519 key and a P-256 key, each with its self-signed
 * certificate (tls_cert.h), made once per node (rp_tls_cred, shared by all its
 * sessions: tls.md "Peer Authentication": endpoints "MAY reuse the same key
 * and certificate for multiple connections"), else per session. A session
 * presents the Ed25519 certificate when the peer's signature_algorithms list
 * Ed25519, else the P-256 one (the spec: "choose a signature algorithm that
 * the peer supports", and "SHOULD use a key type which allows for efficient
 * signature computation"; with this BoringSSL an Ed25519 CertificateVerify
 * costs 27 us to sign and 48 us to verify, P-256 59 and 150). We advertise
 * Ed25519 first. Verification is a custom callback (no CA machinery) that
 * applies tls_cert.h's rules, then checks the peer ID against the expected
 * one when the dialer gave one. With a cache (config.verified), a peer
 * certificate whose exact DER (SHA-256) passed before skips all that is a
 * function of those bytes (both signatures, the structure): only its
 * validity period is checked again and its identity key read. Peers that
 * reuse one certificate (ringp2p, go-libp2p) so cost one verification, not
 * one per connection. Only TLS 1.3, no session tickets or resumption, no
 * SNI (tls.md "Future Extensibility"), the server requires a client
 * certificate. Key exchange: one X25519 key share (groups pinned to X25519,
 * then P-256 after a HelloRetryRequest; no post-quantum hybrid). The cipher
 * suite is libssl's choice: AES-GCM where the CPU has AES instructions
 * (TLS_AES_128_GCM_SHA256 between two ringp2p nodes), else ChaCha20-Poly1305;
 * all three TLS 1.3 suites are handled.
 *
 * ALPN carries the muxers, most preferred first, then "libp2p". The server
 * picks the first entry of the client's list that it supports as a muxer,
 * else "libp2p" if offered, else aborts with no_application_protocol
 * (tls.md "ALPN"). "libp2p" or no ALPN at all means no early muxer: the host
 * runs multistream-select for it (rp_tls_muxer returns NULL).
 *
 * After the handshake: NewSessionTicket messages are skipped, a KeyUpdate is
 * followed (and answered when the peer asks), our own sending key moves on
 * every 2^23 records (RFC 8446 §5.5), and fatal errors queue an alert.
 * Closure (RFC 8446 §6.1) is per direction: rp_tls_close sends our
 * close_notify as the last record; the peer's ends its data cleanly
 * (rp_tls_open's RINGP2P_ECLOSED), which a transport EOF without it does not.
 *
 * Any failure is final: the session returns the same code from then on. A
 * failed handshake usually leaves an alert queued (rp_tls_pending_output); the
 * host may send it before closing.
 *
 * Cost per session with a node credential: one SSL (the node's SSL_CTX per
 * role is shared; the callbacks find the session through SSL_get_app_data),
 * and no key generation or certificate signature; afterwards two AEAD
 * contexts. Without one, each session makes two keys, two identity
 * signatures, two certificate signatures and two SSL_CTXs.
 */
#ifndef RP_SECURITY_TLS_H
#define RP_SECURITY_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/evp.h>

#include "base/bytes.h"
#include "ringp2p/key.h"
#include "crypto/sigcache.h"
#include "security/tls_cert.h"

/* tls.md "Handshake Protocol". */
#define RP_TLS_PROTOCOL_ID "/tls/1.0.0"
/* tls.md "ALPN": the protocol of peers without early muxer negotiation; always last. */
#define RP_TLS_ALPN_LIBP2P "libp2p"

/* RFC 8446 §5.1: largest plaintext of one record. */
#define RP_TLS_RECORD_PLAINTEXT_MAX 16384
/* RFC 8446 §5.2: a record's header (5), inner content type (1) and AEAD tag (16). */
#define RP_TLS_RECORD_HEADER_LEN 5
#define RP_TLS_RECORD_OVERHEAD   22
/* RFC 8446 §5.2: the largest record on the wire (header + 2^14 + 256). */
#define RP_TLS_RECORD_MAX (RP_TLS_RECORD_HEADER_LEN + RP_TLS_RECORD_PLAINTEXT_MAX + 256)

/*
 * Muxers we offer or accept. The spec sets no bound; ALPN names are 1..255
 * bytes (RFC 7301 §3.1) and the whole list must fit in 2^16-1 bytes, which 16
 * names always do.
 */
#define RP_TLS_MUXERS_MAX    16
#define RP_TLS_ALPN_NAME_MAX 255

/* rp_tls_handshake's return when the handshake is complete. */
#define RP_TLS_DONE 1

typedef struct rp_tls rp_tls;

/*
 * A node's TLS credential: two keys, Ed25519 and P-256, each with its
 * self-signed certificate (valid from an hour before it was made to ~100
 * years after), and the libssl context of each role presenting them. A
 * session presents the Ed25519 certificate to a peer whose
 * signature_algorithms list Ed25519 (ringp2p, go-libp2p, js-libp2p on
 * Node), else the P-256 one (tls.md "Peer Authentication": "choose a
 * signature algorithm that the peer supports"). Read-only once made: sessions
 * on any thread may use one at the same time.
 */
typedef struct rp_tls_cred rp_tls_cred;

/*
 * Makes the two keys and certificates of `identity` (read, not retained) at
 * `unix_now`. On success *out is the caller's (rp_tls_cred_free). Errors:
 * RINGP2P_EINVAL (no identity), RINGP2P_ENOMEM, RINGP2P_ECRYPTO and
 * rp_tls_cert_make's.
 */
int rp_tls_cred_new(const ringp2p_privkey *identity, int64_t unix_now, rp_tls_cred **out,
                    ringp2p_errinfo *ei);

/* Frees (NULL is fine); sessions made with it may outlive it (they hold libssl references). */
void rp_tls_cred_free(rp_tls_cred *c);

/* The Ed25519 certificate's DER (owned by c). */
rp_iov rp_tls_cred_cert(const rp_tls_cred *c);

/* The P-256 certificate's DER (owned by c), for peers that do not verify Ed25519. */
rp_iov rp_tls_cred_alt_cert(const rp_tls_cred *c);

typedef struct rp_tls_config {
    /*
     * Signs the certificate key in rp_tls_new when there is no cred; not
     * retained. Required.
     */
    const ringp2p_privkey *identity;
    /*
     * Not NULL: the node's credential, made from the same identity (read in
     * rp_tls_new only). NULL: a key and certificate for this session alone.
     */
    const rp_tls_cred *cred;
    /* Not NULL: the verified-certificate cache to consult and fill (borrowed; outlives s). */
    rp_sigcache *verified;
    /* true: TLS client (the dialer). */
    bool initiator;
    /* The peer the dialer means to reach (copied); NULL accepts any peer. */
    const ringp2p_peer_id *expected_peer;
    /*
     * Stream muxer protocol IDs, most preferred first, offered in ALPN before
     * "libp2p"; none turns early negotiation off (only "libp2p" is offered /
     * accepted). Borrowed: the strings must outlive the session, which returns
     * one of these pointers from rp_tls_muxer.
     */
    const char *const *muxers;
    size_t n_muxers;
    /*
     * Unix seconds: the certificate made without cred is valid from an hour
     * before to ~100 years after; the peer's is checked at rp_tls_handshake's.
     */
    int64_t unix_now;
    /*
     * Tests only: send this chain (DER, copied) with this key (a reference is
     * taken) instead of a fresh certificate.
     */
    const rp_iov *test_chain;
    size_t test_chain_len;
    EVP_PKEY *test_key;
    /* Tests only: a client that leaves "libp2p" out of its ALPN list. */
    bool test_no_libp2p_alpn;
} rp_tls_config;

/*
 * A new session: makes the key and certificate, sets up libssl. On success
 * *out is the caller's (rp_tls_free). Errors: RINGP2P_EINVAL (no identity,
 * a NULL, empty, too long or "libp2p" muxer name, more than RP_TLS_MUXERS_MAX
 * muxers), RINGP2P_ENOMEM, RINGP2P_ECRYPTO.
 */
int rp_tls_new(const rp_tls_config *cfg, rp_tls **out, ringp2p_errinfo *ei);

/* Frees (NULL is fine). */
void rp_tls_free(rp_tls *s);

/*
 * Drives the handshake: libssl reads the records it needs from [*src, end)
 * (the host's, read-only, copied into libssl) and *src moves past them;
 * what there is to send is appended to `out` (caller's) as far as it fits,
 * the rest stays queued (see above). `unix_now` is the time the peer's
 * certificate must be valid at. Returns:
 *   RP_TLS_DONE      complete (from then on, also without touching anything);
 *                    bytes after the last handshake record stay at *src:
 *                    they are records for rp_tls_open;
 *   0                waiting for more input (all of it was taken);
 *   negative         failed, session dead (*src unchanged): RINGP2P_ECERT,
 *                    RINGP2P_ESIGNATURE, RINGP2P_EKEY, RINGP2P_EKEYTYPE,
 *                    RINGP2P_EPROTOBUF, RINGP2P_ELIMIT (peer certificate),
 *                    RINGP2P_EPEERMISMATCH (`ei` names both IDs),
 *                    RINGP2P_ENEGOTIATION (no common ALPN protocol, either
 *                    side), RINGP2P_EAUTH (a record did not authenticate),
 *                    RINGP2P_EPROTOCOL (any other TLS failure, including a
 *                    fatal alert from the peer; `ei` has libssl's reason),
 *                    RINGP2P_ECRYPTO (the record layer could not be keyed),
 *                    RINGP2P_ENOMEM.
 * The client calls it first with no input to produce its ClientHello. A
 * client is DONE once it has sent its Finished; the server verifies the
 * client's certificate after that (tls.md, "Note for clients"), so a
 * rejection reaches the client as an alert from rp_tls_open.
 */
int rp_tls_handshake(rp_tls *s, int64_t unix_now, const uint8_t **src, const uint8_t *end,
                     rp_wbuf *out, ringp2p_errinfo *ei);

bool rp_tls_is_done(const rp_tls *s);

/* Bytes libssl has produced that the host has not yet taken. */
size_t rp_tls_pending_output(const rp_tls *s);

/* Moves up to cap queued output bytes into dst (caller's). Returns the count (0: none). */
size_t rp_tls_take_output(rp_tls *s, uint8_t *dst, size_t cap);

/* After the handshake: the remote's peer ID and key (owned by s), else NULL. */
const ringp2p_peer_id *rp_tls_remote_peer(const rp_tls *s);
const ringp2p_pubkey *rp_tls_remote_key(const rp_tls *s);

/* After the handshake: SHA-256 of the peer's certificate DER (32 bytes, owned by s), else NULL. */
const uint8_t *rp_tls_remote_cert_sha256(const rp_tls *s);

/*
 * After the handshake: the muxer chosen by ALPN (one of the config's
 * pointers), or NULL when ALPN gave "libp2p" or nothing and
 * multistream-select must choose one.
 */
const char *rp_tls_muxer(const rp_tls *s);

/*
 * After the handshake: the negotiated cipher suite's RFC 8446 name
 * ("TLS_AES_128_GCM_SHA256"), else NULL. Static string.
 */
const char *rp_tls_cipher(const rp_tls *s);

/*
 * Upper bound of the bytes rp_tls_seal writes for plaintext_len bytes, not
 * counting queued output: full records of RP_TLS_RECORD_PLAINTEXT_MAX plus
 * RP_TLS_RECORD_OVERHEAD each, and room for one KeyUpdate. 0 for 0.
 */
size_t rp_tls_sealed_len(const rp_tls *s, size_t plaintext_len);

/*
 * Seals the concatenation of in[0..n) (caller's, read-only) in one pass:
 * full 16 KiB records but the last, written after any queued output into
 * out (caller's). A record that lies within one iov is sealed from where it
 * is; one that spans iovs is gathered into out and sealed in place. Returns
 * the bytes written or: RINGP2P_ENOBUF (cap < pending output +
 * rp_tls_sealed_len(total): nothing changed), RINGP2P_EINVAL (handshake not
 * done), RINGP2P_ECLOSED (after rp_tls_close), or the session's error if it
 * is dead.
 */
ssize_t rp_tls_seal(rp_tls *s, const rp_iov *in, size_t n, uint8_t *out, size_t cap,
                    ringp2p_errinfo *ei);

/*
 * Opens the record at *src in place. Returns 1 with *plain viewing its
 * plaintext (inside [*src, end) as it was: valid while the caller keeps that
 * buffer; empty for a record that carried no application data, such as a
 * NewSessionTicket or KeyUpdate) and *src moved past the record; 0 when no
 * whole record is there yet (*src unchanged); RINGP2P_ECLOSED when the
 * record is the peer's close_notify: the clean end of its data, not a
 * failure (*src unchanged; every later call says the same without reading,
 * as RFC 8446 §6.1 wants data after it ignored; the session stays usable for
 * sending, rp_tls_close included, and rp_tls_peer_closed turns true); or,
 * killing the session (*src unchanged; an alert for the peer is queued where
 * one is due): RINGP2P_EAUTH (a record did not authenticate: tampered,
 * reordered, replayed), RINGP2P_EPROTOCOL (anything else malformed or
 * unexpected, or a fatal alert from the peer such as the server rejecting our
 * certificate; `ei` says which), RINGP2P_ECRYPTO. RINGP2P_EINVAL before the
 * handshake is done.
 */
int rp_tls_open(rp_tls *s, uint8_t **src, uint8_t *end, rp_iov *plain, ringp2p_errinfo *ei);

/*
 * true once rp_tls_open met the peer's close_notify. A transport that ends
 * while this is false was cut short (a truncation, RFC 8446 §6.1): the bytes
 * the peer sent last may be missing.
 */
bool rp_tls_peer_closed(const rp_tls *s);

/*
 * Queues a KeyUpdate (RFC 8446 §4.6.3; asking the peer to update too when
 * `request`) and moves our sending key on. 0, RINGP2P_EINVAL before the
 * handshake is done, RINGP2P_ECLOSED after rp_tls_close, or the session's
 * error.
 */
int rp_tls_key_update(rp_tls *s, bool request);

/*
 * Closes our write side (RFC 8446 §6.1: each party MUST send close_notify
 * before closing its write side): queues a close_notify alert (level 1,
 * description 0, sealed as inner content type 21) behind everything sealed
 * so far; take it with rp_tls_take_output, or rp_tls_seal would write it
 * first, but seal refuses from now on (RINGP2P_ECLOSED), as do KeyUpdates,
 * so it is the last record. Nothing is queued a second time, nor after the
 * session failed (its alert, if any, took its place). Reading goes on: the
 * peer's remaining records and its own close_notify still open. 0, or
 * RINGP2P_EINVAL before the handshake is done.
 */
int rp_tls_close(rp_tls *s);

/*
 * Tests and fuzzing only. A session past the handshake keyed from the given
 * traffic secrets (a hash long) for cipher suite `suite` (0x1301..0x1303),
 * and a record of any inner content type with `pad` zero bytes of padding
 * (at most 256), sealed as the real ones are.
 */
int rp_tls_test_new_keyed(uint16_t suite, bool initiator, const uint8_t *client_secret,
                          const uint8_t *server_secret, rp_tls **out);
ssize_t rp_tls_test_seal_inner(rp_tls *s, uint8_t type, const uint8_t *p, size_t len, size_t pad,
                               uint8_t *out, size_t cap);

#endif
