/*
 * Multibase (multiformats/multibase): base16, base32 (lower, no padding),
 * base36, base58btc and base64url (no padding), raw and with the one-char
 * prefix. Encoders write NUL-terminated text into caller buffers; decoders
 * write bytes into caller buffers. Both return the length written (without
 * the NUL) or RINGP2P_ENOBUF; decoders return RINGP2P_EMULTIBASE (with the
 * offending character named in `ei`) on malformed text.
 */
#ifndef RP_MULTIFORMATS_MULTIBASE_H
#define RP_MULTIFORMATS_MULTIBASE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ringp2p/error.h"

/* The multibase prefix characters, used as the base identifiers. */
typedef enum rp_base {
    RP_BASE16 = 'f',
    RP_BASE32 = 'b',    /* RFC 4648 lower case, no padding */
    RP_BASE36 = 'k',    /* lower case */
    RP_BASE58BTC = 'z', /* Bitcoin alphabet */
    RP_BASE64URL = 'u', /* RFC 4648 URL-safe, no padding */
} rp_base;

/* Upper bound of the text length (without NUL) of `len` bytes in `base`. */
size_t rp_base_encoded_max(rp_base base, size_t len);

/* Upper bound of the byte length that `textlen` characters decode to. */
size_t rp_base_decoded_max(rp_base base, size_t textlen);

/* Raw encode/decode, no prefix. `dst` needs room for the text plus a NUL. */
ssize_t rp_base_encode(rp_base base, const uint8_t *src, size_t len, char *dst, size_t cap);
ssize_t rp_base_decode(rp_base base, const char *src, size_t len, uint8_t *dst, size_t cap,
                       ringp2p_errinfo *ei);

/* With the multibase prefix character. Decoding reports the base found in *base_out (may be NULL).
 */
ssize_t rp_multibase_encode(rp_base base, const uint8_t *src, size_t len, char *dst, size_t cap);
ssize_t rp_multibase_decode(const char *src, size_t len, uint8_t *dst, size_t cap,
                            rp_base *base_out, ringp2p_errinfo *ei);

#endif
