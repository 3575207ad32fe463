/*
 * Keys and peer IDs (libp2p specs: peer-ids/peer-ids.md, RFC 0001).
 *
 * Private keys are opaque heap objects; public keys too. A peer ID is a small
 * value type holding the multihash of the protobuf-encoded public key:
 * identity when that encoding is at most 42 bytes (Ed25519, secp256k1),
 * sha2-256 otherwise (RSA, ECDSA).
 *
 * Encodings (the spec's, as go-libp2p writes them): Ed25519 public key 32
 * bytes, private key seed||public (64); secp256k1 compressed point (33) and
 * scalar (32); ECDSA DER SubjectPublicKeyInfo and DER ECPrivateKey (RFC 5915);
 * RSA DER SubjectPublicKeyInfo and DER PKCS#1 RSAPrivateKey.
 *
 * Decoding is strict where the spec asks for a deterministic encoding: a
 * PublicKey or PrivateKey protobuf must be exactly Type then Data, minimally
 * encoded, with no other field, and a public key's Data must be the one
 * canonical encoding of that key. So the bytes a peer sends are the bytes its
 * peer ID hashes, and decoding then encoding a public key gives back the input.
 *
 * Key files hold exactly the protobuf PrivateKey bytes, as go-libp2p and
 * js-libp2p write them, so a key moves between implementations unchanged.
 * Private key material is wiped before its memory is freed.
 */
#ifndef RINGP2P_KEY_H
#define RINGP2P_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ringp2p/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The values are the KeyType enum of the peer-ids spec. */
typedef enum ringp2p_key_type {
    RINGP2P_KEY_RSA = 0,
    RINGP2P_KEY_ED25519 = 1,
    RINGP2P_KEY_SECP256K1 = 2,
    RINGP2P_KEY_ECDSA = 3,
} ringp2p_key_type;

typedef struct ringp2p_privkey ringp2p_privkey;
typedef struct ringp2p_pubkey ringp2p_pubkey;

/* Largest signature any supported key makes (RSA-8192: 1024 bytes). */
#define RINGP2P_SIGNATURE_MAX 1024
/* RSA sizes accepted (go-libp2p's bounds); generation makes RINGP2P_RSA_DEFAULT_BITS. */
#define RINGP2P_RSA_MIN_BITS     2048
#define RINGP2P_RSA_MAX_BITS     8192
#define RINGP2P_RSA_DEFAULT_BITS 2048
/* Largest protobuf PrivateKey/PublicKey we read or write (and largest key file). */
#define RINGP2P_KEY_PROTOBUF_MAX 8192

/* "ed25519", "secp256k1", "ecdsa", "rsa"; NULL for an unknown type. Static strings. */
RINGP2P_API const char *ringp2p_key_type_name(ringp2p_key_type type);

/* Parses one of the names above (case-insensitive). RINGP2P_EKEYTYPE if unknown. */
RINGP2P_API int ringp2p_key_type_parse(const char *name, ringp2p_key_type *out);

/*
 * Generates a fresh key of `type` (RSA: RINGP2P_RSA_DEFAULT_BITS; ECDSA:
 * P-256) from BoringSSL's RAND_bytes. On success *out is owned by the caller
 * (ringp2p_privkey_free). Errors: RINGP2P_EKEYTYPE, RINGP2P_ENOMEM,
 * RINGP2P_ECRYPTO.
 */
RINGP2P_API int ringp2p_privkey_generate(ringp2p_key_type type, ringp2p_privkey **out);

/*
 * Decodes protobuf PrivateKey bytes (read-only, not retained). Also accepted:
 * the legacy 96-byte Ed25519 form (seed||public||public), an ECPrivateKey
 * without its optional public key, ECDSA on P-384 and P-521. A stored public
 * half must be the one the private key derives. On success *out is owned by
 * the caller. Errors: RINGP2P_EPROTOBUF (envelope), RINGP2P_EKEYTYPE (Type
 * outside the enum), RINGP2P_EKEY (bad key data), RINGP2P_ELIMIT (more than
 * RINGP2P_KEY_PROTOBUF_MAX bytes), RINGP2P_ENOMEM; `ei` (may be NULL) names
 * the problem.
 */
RINGP2P_API int ringp2p_privkey_from_protobuf(const uint8_t *buf, size_t len, ringp2p_privkey **out,
                                              ringp2p_errinfo *ei);

/*
 * Writes protobuf PrivateKey bytes (the preferred forms: 64-byte Ed25519,
 * ECPrivateKey with curve and public key) into dst. Returns the count,
 * RINGP2P_ENOBUF (nothing useful written), RINGP2P_ENOMEM or RINGP2P_ECRYPTO.
 * The caller owns dst and should wipe it when done.
 */
RINGP2P_API ssize_t ringp2p_privkey_to_protobuf(const ringp2p_privkey *key, uint8_t *dst,
                                                size_t cap);

/*
 * Reads a key file (protobuf PrivateKey bytes; the buffer read is wiped).
 * On success *out is owned by the caller. Errors: RINGP2P_ENOENT (no such
 * file), RINGP2P_EPERM, RINGP2P_EIO (also: not a regular file), RINGP2P_ELIMIT
 * (larger than RINGP2P_KEY_PROTOBUF_MAX), and the decode errors above; `ei`
 * names the file and the problem (with strerror for system errors).
 */
RINGP2P_API int ringp2p_privkey_load(const char *path, ringp2p_privkey **out, ringp2p_errinfo *ei);

#define RINGP2P_SAVE_FORCE 1u /* replace an existing file */

/*
 * Writes a key file with mode 0600 whatever the umask, atomically: a new
 * O_EXCL temporary file in the same directory, fsync, then rename. Without
 * RINGP2P_SAVE_FORCE an existing file (or symlink) is never replaced, with no
 * race: renameat2(RENAME_NOREPLACE), or link() where the file system lacks
 * it; RINGP2P_EEXIST is returned. No temporary file is left behind. Errors
 * also: RINGP2P_EINVAL (unknown flags), RINGP2P_EPERM, RINGP2P_ENOENT (no such
 * directory), RINGP2P_EIO, RINGP2P_ENOMEM.
 */
RINGP2P_API int ringp2p_privkey_save(const ringp2p_privkey *key, const char *path, unsigned flags,
                                     ringp2p_errinfo *ei);

/* Wipes and frees key (NULL is fine). */
RINGP2P_API void ringp2p_privkey_free(ringp2p_privkey *key);

RINGP2P_API ringp2p_key_type ringp2p_privkey_type(const ringp2p_privkey *key);

/* The public half, borrowed: valid as long as `key` is. */
RINGP2P_API const ringp2p_pubkey *ringp2p_privkey_public(const ringp2p_privkey *key);

/*
 * Signs msg as the peer-ids spec says per key type: Ed25519 plain (RFC 8032);
 * secp256k1 ECDSA over SHA-256(msg), DER, low-S, RFC 6979 nonces; ECDSA over
 * SHA-256(msg), DER; RSA PKCS#1 v1.5 with SHA-256. Writes at most
 * RINGP2P_SIGNATURE_MAX bytes into sig (the caller's); returns the length,
 * RINGP2P_ENOBUF (cap too small for this signature) or RINGP2P_ECRYPTO.
 */
RINGP2P_API ssize_t ringp2p_privkey_sign(const ringp2p_privkey *key, const uint8_t *msg, size_t len,
                                         uint8_t *sig, size_t cap);

/*
 * Decodes protobuf PublicKey bytes (read-only, not retained); only the
 * canonical encoding is accepted (see above; e.g. no compressed ECDSA points,
 * no uncompressed secp256k1 points). ECDSA: P-256, P-384, P-521. On success
 * *out is owned by the caller. Errors as for private keys.
 */
RINGP2P_API int ringp2p_pubkey_from_protobuf(const uint8_t *buf, size_t len, ringp2p_pubkey **out,
                                             ringp2p_errinfo *ei);

/* Writes protobuf PublicKey bytes (deterministic encoding) into dst. Count or RINGP2P_ENOBUF. */
RINGP2P_API ssize_t ringp2p_pubkey_to_protobuf(const ringp2p_pubkey *key, uint8_t *dst, size_t cap);

/*
 * 0 if sig is a valid signature of msg by key, else RINGP2P_ESIGNATURE
 * (malformed signatures included). DER must be strict; secp256k1 signatures
 * are accepted in high-S form too, as go-libp2p does.
 */
RINGP2P_API int ringp2p_pubkey_verify(const ringp2p_pubkey *key, const uint8_t *msg, size_t len,
                                      const uint8_t *sig, size_t siglen);

RINGP2P_API ringp2p_key_type ringp2p_pubkey_type(const ringp2p_pubkey *key);

/* A caller-owned copy. RINGP2P_ENOMEM on failure. */
RINGP2P_API int ringp2p_pubkey_dup(const ringp2p_pubkey *key, ringp2p_pubkey **out);

/* Same type and same encoding (hence same key). */
RINGP2P_API bool ringp2p_pubkey_equal(const ringp2p_pubkey *a, const ringp2p_pubkey *b);

/* NULL is fine. */
RINGP2P_API void ringp2p_pubkey_free(ringp2p_pubkey *key);

/* identity multihash of a 42-byte key: 1 + 1 + 42. */
#define RINGP2P_PEER_ID_MAX 44
/*
 * Text buffer size: the longest text form we write (CIDv1 base32 of a 44-byte
 * ID: 75 characters) plus NUL, with room to spare; also the longest text
 * ringp2p_peer_id_parse reads, less one.
 */
#define RINGP2P_PEER_ID_STR_MAX 96

/* A peer ID: the multihash bytes. Plain value: copy it, compare with _equal. */
typedef struct ringp2p_peer_id {
    uint8_t len;
    uint8_t bytes[RINGP2P_PEER_ID_MAX];
} ringp2p_peer_id;

/* The peer ID of a public key. Returns 0 (it cannot fail for a decoded or generated key). */
RINGP2P_API int ringp2p_peer_id_from_pubkey(const ringp2p_pubkey *key, ringp2p_peer_id *out);

/*
 * From multihash bytes (read-only, copied). Accepts identity (digest <= 42
 * bytes, which must be a valid canonical PublicKey) and sha2-256 (32 bytes);
 * anything else is RINGP2P_EPEERID, with the reason in `ei`.
 */
RINGP2P_API int ringp2p_peer_id_from_bytes(const uint8_t *mh, size_t len, ringp2p_peer_id *out,
                                           ringp2p_errinfo *ei);

/*
 * Parses text: base58btc multihash when it starts with '1' or "Qm"
 * ("12D3KooW...", "16Uiu2HA...", "Qm..."), else a CIDv1 with the libp2p-key
 * codec in any supported multibase ("bafz...", "k51...", "z...", "f...",
 * "u..."). `text` need not be NUL-terminated; at most RINGP2P_PEER_ID_STR_MAX
 * - 1 characters. Errors: RINGP2P_EPEERID, RINGP2P_EMULTIBASE, RINGP2P_ECID
 * (a CID of another codec is named in `ei`), RINGP2P_EMULTIHASH.
 */
RINGP2P_API int ringp2p_peer_id_parse(const char *text, size_t len, ringp2p_peer_id *out,
                                      ringp2p_errinfo *ei);

/*
 * base58btc text into dst, NUL-terminated. Returns its length, RINGP2P_ENOBUF,
 * or RINGP2P_EINVAL for an ID that was never set.
 */
RINGP2P_API ssize_t ringp2p_peer_id_to_string(const ringp2p_peer_id *id, char *dst, size_t cap);

/* CIDv1 (libp2p-key) in base32 text, NUL-terminated. Length, RINGP2P_ENOBUF or RINGP2P_EINVAL. */
RINGP2P_API ssize_t ringp2p_peer_id_to_cid_string(const ringp2p_peer_id *id, char *dst, size_t cap);

RINGP2P_API bool ringp2p_peer_id_equal(const ringp2p_peer_id *a, const ringp2p_peer_id *b);

/* True if id is the peer ID of key. */
RINGP2P_API bool ringp2p_peer_id_matches(const ringp2p_peer_id *id, const ringp2p_pubkey *key);

/*
 * The public key inlined in an identity peer ID (caller frees). Returns
 * RINGP2P_ENOENT for a sha2-256 peer ID, which does not contain its key, and
 * RINGP2P_EINVAL/RINGP2P_EPEERID for an ID that did not come from this API.
 */
RINGP2P_API int ringp2p_peer_id_extract_pubkey(const ringp2p_peer_id *id, ringp2p_pubkey **out);

#ifdef __cplusplus
}
#endif
#endif
