/*
 * Multiaddr (multiformats/multiaddr, libp2p addressing/README.md).
 *
 * A ringp2p_multiaddr is an immutable, validated binary multiaddr on the heap.
 * Text is parsed into it and printed from it in canonical form (legacy
 * `/ipfs/` is read and printed as `/p2p/`). Every function that builds one
 * returns a new caller-owned object (ringp2p_multiaddr_free).
 *
 * The empty multiaddr (no components) is valid: it is parsed from "" or "/"
 * and printed as "/", as js-multiaddr does. Trailing slashes are ignored on
 * input and never printed. Limits: RINGP2P_MULTIADDR_MAX_BYTES bytes and
 * RINGP2P_MULTIADDR_MAX_COMPONENTS components (RINGP2P_ELIMIT past them).
 *
 * Value text follows js-multiaddr 13 where the spec is silent: ip6 in RFC
 * 5952 form with IPv4-mapped addresses in hex ("::ffff:102:304"); unix and
 * http-path values as one percent-encoded segment ("/unix/%2Ftmp%2Fs");
 * p2p printed base58btc (CIDv1 libp2p-key text is read); certhash printed
 * base64url ("u..."); memory is a length-prefixed string. garlic64/32 hold
 * the decoded I2P bytes as go-multiaddr does. Values printed verbatim (dns*,
 * sni, ip6zone, memory) must be UTF-8 without '/' or NUL; unix and http-path
 * values are octets, percent-encoded.
 */
#ifndef RINGP2P_MULTIADDR_H
#define RINGP2P_MULTIADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ringp2p/error.h"
#include "ringp2p/key.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Protocol codes from the multicodec table (multiformats/multicodec table.csv). */
enum ringp2p_maddr_proto {
    RINGP2P_P_IP4 = 0x0004,
    RINGP2P_P_TCP = 0x0006,
    RINGP2P_P_DCCP = 0x0021,
    RINGP2P_P_IP6 = 0x0029,
    RINGP2P_P_IP6ZONE = 0x002a,
    RINGP2P_P_IPCIDR = 0x002b,
    RINGP2P_P_DNS = 0x0035,
    RINGP2P_P_DNS4 = 0x0036,
    RINGP2P_P_DNS6 = 0x0037,
    RINGP2P_P_DNSADDR = 0x0038,
    RINGP2P_P_SCTP = 0x0084,
    RINGP2P_P_UDP = 0x0111,
    RINGP2P_P_P2P_WEBRTC_STAR = 0x0113,   /* deprecated */
    RINGP2P_P_P2P_WEBRTC_DIRECT = 0x0114, /* deprecated */
    RINGP2P_P_P2P_STARDUST = 0x0115,      /* deprecated */
    RINGP2P_P_UTP = 0x012e,
    RINGP2P_P_UDT = 0x012d,
    RINGP2P_P_UNIX = 0x0190,
    RINGP2P_P_P2P = 0x01a5,
    RINGP2P_P_HTTPS = 0x01bb,
    RINGP2P_P_ONION = 0x01bc,
    RINGP2P_P_ONION3 = 0x01bd,
    RINGP2P_P_GARLIC64 = 0x01be,
    RINGP2P_P_GARLIC32 = 0x01bf,
    RINGP2P_P_TLS = 0x01c0,
    RINGP2P_P_SNI = 0x01c1,
    RINGP2P_P_NOISE = 0x01c6,
    RINGP2P_P_QUIC = 0x01cc,
    RINGP2P_P_QUIC_V1 = 0x01cd,
    RINGP2P_P_WEBTRANSPORT = 0x01d1,
    RINGP2P_P_CERTHASH = 0x01d2,
    RINGP2P_P_WS = 0x01dd,
    RINGP2P_P_WSS = 0x01de,
    RINGP2P_P_P2P_WEBSOCKET_STAR = 0x01df, /* deprecated */
    RINGP2P_P_HTTP = 0x01e0,
    RINGP2P_P_HTTP_PATH = 0x01e1,
    RINGP2P_P_P2P_CIRCUIT = 0x0122,
    RINGP2P_P_WEBRTC_DIRECT = 0x0118,
    RINGP2P_P_WEBRTC = 0x0119,
    RINGP2P_P_MEMORY = 0x0309,
};

/* ringp2p's limits (the spec has none): see src/multiformats/multiaddr.h for why. */
#define RINGP2P_MULTIADDR_MAX_BYTES      1024
#define RINGP2P_MULTIADDR_MAX_COMPONENTS 32

typedef struct ringp2p_multiaddr ringp2p_multiaddr;

/*
 * Parses text ("/ip4/1.2.3.4/tcp/4001/p2p/12D3Koo..."), NUL-terminated.
 * Errors: RINGP2P_EPROTOUNKNOWN (the name is in `ei`), RINGP2P_EMULTIADDR
 * (bad syntax, or a bad or missing value, with the protocol, value and reason
 * in `ei`), RINGP2P_ELIMIT, RINGP2P_ENOMEM, RINGP2P_EINVAL (NULL text).
 */
RINGP2P_API int ringp2p_multiaddr_parse(const char *text, ringp2p_multiaddr **out,
                                        ringp2p_errinfo *ei);

/*
 * Validates and copies binary bytes (not retained). Errors: as above plus
 * RINGP2P_ETRUNCATED and RINGP2P_EVARINT; an unknown code is
 * RINGP2P_EPROTOUNKNOWN.
 */
RINGP2P_API int ringp2p_multiaddr_from_bytes(const uint8_t *buf, size_t len,
                                             ringp2p_multiaddr **out, ringp2p_errinfo *ei);

RINGP2P_API void ringp2p_multiaddr_free(ringp2p_multiaddr *ma);

/* A caller-owned copy. */
RINGP2P_API int ringp2p_multiaddr_dup(const ringp2p_multiaddr *ma, ringp2p_multiaddr **out);

/* The binary form, borrowed: valid as long as `ma` is. */
RINGP2P_API const uint8_t *ringp2p_multiaddr_bytes(const ringp2p_multiaddr *ma, size_t *len);

/* A buffer of this many bytes always holds the text form of `ma` with its NUL. */
RINGP2P_API size_t ringp2p_multiaddr_text_max(const ringp2p_multiaddr *ma);

/* Canonical text, NUL-terminated. Returns its length or RINGP2P_ENOBUF. */
RINGP2P_API ssize_t ringp2p_multiaddr_to_string(const ringp2p_multiaddr *ma, char *dst, size_t cap);

RINGP2P_API bool ringp2p_multiaddr_equal(const ringp2p_multiaddr *a, const ringp2p_multiaddr *b);

/* a followed by b. Errors: RINGP2P_ELIMIT, RINGP2P_ENOMEM. */
RINGP2P_API int ringp2p_multiaddr_encapsulate(const ringp2p_multiaddr *a,
                                              const ringp2p_multiaddr *b, ringp2p_multiaddr **out);

/*
 * a up to (not including) the last occurrence of b as a whole-component
 * sequence. RINGP2P_ENOENT if b does not occur in a. The result may be empty;
 * an empty b occurs at the end, giving a copy of a. (js-multiaddr matches the
 * text instead, so "/ip4/1.2.3.4" also "occurs" in "/ip4/1.2.3.45"; we don't.)
 */
RINGP2P_API int ringp2p_multiaddr_decapsulate(const ringp2p_multiaddr *a,
                                              const ringp2p_multiaddr *b, ringp2p_multiaddr **out);

/*
 * a up to (not including) its last component with protocol `code`;
 * RINGP2P_ENOENT if none (js-multiaddr returns a unchanged there).
 */
RINGP2P_API int ringp2p_multiaddr_decapsulate_code(const ringp2p_multiaddr *a, uint32_t code,
                                                   ringp2p_multiaddr **out);

/*
 * The peer ID of a trailing /p2p/ component; RINGP2P_ENOENT if the address
 * does not end in one, or the errors of ringp2p_peer_id_from_bytes
 * (RINGP2P_EPEERID: e.g. an identity multihash that is not a public key).
 */
RINGP2P_API int ringp2p_multiaddr_peer_id(const ringp2p_multiaddr *ma, ringp2p_peer_id *out);

/* One component, viewing into the multiaddr's bytes. */
typedef struct ringp2p_multiaddr_component {
    uint32_t code;
    const char *name;     /* static, e.g. "tcp" */
    const uint8_t *value; /* binary value (without its length prefix), NULL if none */
    size_t value_len;
} ringp2p_multiaddr_component;

typedef struct ringp2p_multiaddr_iter {
    const uint8_t *pos;
    const uint8_t *end;
} ringp2p_multiaddr_iter;

/* Starts iterating over ma's components (ma must outlive the iterator). */
RINGP2P_API void ringp2p_multiaddr_iter_init(ringp2p_multiaddr_iter *it,
                                             const ringp2p_multiaddr *ma);

/* 1 and *out set for the next component, 0 at the end (negative only if ma was corrupted). */
RINGP2P_API int ringp2p_multiaddr_iter_next(ringp2p_multiaddr_iter *it,
                                            ringp2p_multiaddr_component *out);

/*
 * Text of one component's value (e.g. "4001"), NUL-terminated; "" for a
 * protocol without a value. Returns the length, RINGP2P_ENOBUF, or
 * RINGP2P_EPROTOUNKNOWN / RINGP2P_EMULTIADDR for a component not made by the
 * iterator that does not hold a valid value.
 */
RINGP2P_API ssize_t ringp2p_multiaddr_component_value_string(const ringp2p_multiaddr_component *c,
                                                             char *dst, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
