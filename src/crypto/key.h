/*
 * Keys, internal side (public API: include/ringp2p/key.h).
 *
 * A key is a small struct plus one backend per key type behind rp_key_ops:
 * key_ed25519.c (BoringSSL), key_secp256k1.c (libsecp256k1), key_ecdsa.c and
 * key_rsa.c (BoringSSL). key.c holds the protobuf envelope and dispatch.
 *
 * Every public key keeps its `raw` bytes: the Data field of its protobuf
 * PublicKey. Decoding parses Data, encodes the parsed key again
 * (rp_key_ops.pub_marshal) and refuses the key unless that gives back the same
 * bytes. So each key has one encoding: equal keys have equal bytes, the bytes
 * received are the bytes hashed into the peer ID, and decode→encode
 * reproduces its input exactly.
 */
#ifndef RP_CRYPTO_KEY_H
#define RP_CRYPTO_KEY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/bytestring.h>
#include <openssl/ec_key.h>
#include <openssl/rsa.h>
#include <secp256k1.h>

#include "ringp2p/key.h"

/* peer-ids.md "Ed25519": a public key is 32 bytes, a private key seed||public. */
#define RP_ED25519_PUBLIC_LEN  32
#define RP_ED25519_SEED_LEN    32
#define RP_ED25519_PRIVATE_LEN 64
/* The legacy private form seed||public||public (peer-ids.md "Ed25519"). */
#define RP_ED25519_PRIVATE_LEGACY_LEN 96
#define RP_ED25519_SIGNATURE_LEN      64

/* peer-ids.md "Secp256k1": Bitcoin encodings, i.e. SEC1 compressed points. */
#define RP_SECP256K1_PUBLIC_LEN  33
#define RP_SECP256K1_PRIVATE_LEN 32
/* DER of two 33-byte INTEGERs in a SEQUENCE. */
#define RP_SECP256K1_SIGNATURE_MAX 72

/* protobuf field tags of PublicKey/PrivateKey (peer-ids.md "Keys"): field<<3 | wire type. */
#define RP_KEYPB_TAG_TYPE 0x08 /* field 1, varint */
#define RP_KEYPB_TAG_DATA 0x12 /* field 2, length-delimited */

/*
 * A peer ID inlines the key (identity multihash) when its protobuf PublicKey is
 * at most this long (peer-ids.md "Peer Ids").
 */
#define RP_PEER_ID_INLINE_MAX 42

struct rp_key_ops;

struct ringp2p_pubkey {
    const struct rp_key_ops *ops;
    uint8_t *raw; /* canonical Data bytes, heap, owned */
    size_t raw_len;
    union {
        uint8_t ed25519[RP_ED25519_PUBLIC_LEN];
        secp256k1_pubkey secp256k1;
        EC_KEY *ec; /* public only */
        RSA *rsa;   /* public only */
    } u;
};

struct ringp2p_privkey {
    struct ringp2p_pubkey pub; /* the public half, derived from the private one */
    union {
        uint8_t ed25519[RP_ED25519_PRIVATE_LEN]; /* seed || public (BoringSSL's form) */
        struct {
            uint8_t seckey[RP_SECP256K1_PRIVATE_LEN];
            secp256k1_context *ctx; /* signing context, randomized, per key */
        } secp256k1;
        EC_KEY *ec;
        RSA *rsa;
    } u;
};

/*
 * One key type. Backends fill the union of the key they are given and never
 * touch `raw` or `ops`; key.c does. Errors are RINGP2P_E* codes; `ei` may be
 * NULL.
 */
typedef struct rp_key_ops {
    ringp2p_key_type type;
    const char *name;    /* lower case, as ringp2p_key_type_name */
    const char *pb_name; /* as in the spec's KeyType enum */

    /* Parses public Data bytes (read-only, not retained); RINGP2P_EKEY if invalid. */
    int (*pub_parse)(struct ringp2p_pubkey *pk, const uint8_t *raw, size_t len,
                     ringp2p_errinfo *ei);
    /* Appends the Data bytes of a parsed key, from its parsed form. 1 on success, 0 on failure. */
    int (*pub_marshal)(const struct ringp2p_pubkey *pk, CBB *out);
    void (*pub_clear)(struct ringp2p_pubkey *pk);
    /* 0 or RINGP2P_ESIGNATURE (malformed signatures included). */
    int (*verify)(const struct ringp2p_pubkey *pk, const uint8_t *msg, size_t len,
                  const uint8_t *sig, size_t siglen);

    int (*priv_generate)(struct ringp2p_privkey *sk);
    /* Parses private Data bytes (read-only, not retained). */
    int (*priv_parse)(struct ringp2p_privkey *sk, const uint8_t *raw, size_t len,
                      ringp2p_errinfo *ei);
    /* Appends the private (resp. public) Data bytes to `out`. 1 on success, 0 on failure. */
    int (*priv_marshal)(const struct ringp2p_privkey *sk, CBB *out);
    int (*pub_marshal_from_priv)(const struct ringp2p_privkey *sk, CBB *out);
    /* Signature length, RINGP2P_ENOBUF or RINGP2P_ECRYPTO. */
    ssize_t (*sign)(const struct ringp2p_privkey *sk, const uint8_t *msg, size_t len, uint8_t *sig,
                    size_t cap);
    /* Frees what the backend allocated and wipes secret material. */
    void (*priv_clear)(struct ringp2p_privkey *sk);
} rp_key_ops;

extern const rp_key_ops rp_key_ed25519_ops;
extern const rp_key_ops rp_key_secp256k1_ops;
extern const rp_key_ops rp_key_ecdsa_ops;
extern const rp_key_ops rp_key_rsa_ops;

/* The backend of a spec KeyType value, or NULL. */
const rp_key_ops *rp_key_ops_of(uint64_t type);

/*
 * Decodes a PublicKey/PrivateKey envelope in the spec's canonical form only:
 * exactly <08 type><12 len data>, minimal varints, nothing else, at most
 * RINGP2P_KEY_PROTOBUF_MAX bytes. *data views into buf. Errors:
 * RINGP2P_EPROTOBUF (structure), RINGP2P_EKEYTYPE (type outside the enum),
 * RINGP2P_ELIMIT (too long). `what` ("PublicKey") prefixes messages.
 */
int rp_keypb_decode(const uint8_t *buf, size_t len, const char *what, uint64_t *type,
                    const uint8_t **data, size_t *data_len, ringp2p_errinfo *ei);

/* Bytes the PublicKey protobuf of pk takes. */
size_t rp_pubkey_protobuf_len(const struct ringp2p_pubkey *pk);

/*
 * Feeds the PublicKey protobuf of pk to `fn` in pieces (header, then raw), so
 * a peer ID can hash it without a copy. Owned by pk; valid during the call.
 */
void rp_pubkey_protobuf_pieces(const struct ringp2p_pubkey *pk,
                               void (*fn)(void *ctx, const uint8_t *p, size_t n), void *ctx);

/*
 * Encodes the Data bytes of pk afresh from its parsed form (not from `raw`), for
 * checks. On success *out is the caller's (OPENSSL_free). RINGP2P_ECRYPTO on failure.
 */
int rp_pubkey_marshal(const struct ringp2p_pubkey *pk, uint8_t **out, size_t *len);

#endif
