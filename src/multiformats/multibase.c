#include "multiformats/multibase.h"

#include <string.h>

#include "base/error.h"

/*
 * Radix bases (58, 36) convert with the quadratic schoolbook method; texts
 * and inputs past these sizes are refused so peer input cannot buy O(n^2)
 * work. Peer IDs and CIDs are far below them.
 */
#define RP_RADIX_MAX_BYTES 256
#define RP_RADIX_MAX_TEXT  512

static const char b58_alphabet[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
static const char b36_alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
static const char b32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char b16_alphabet[] = "0123456789abcdef";

static const char *base_name(rp_base base)
{
    switch (base) {
    case RP_BASE16: return "base16";
    case RP_BASE32: return "base32";
    case RP_BASE36: return "base36";
    case RP_BASE58BTC: return "base58btc";
    case RP_BASE64URL: return "base64url";
    }
    return "unknown base";
}

/*
 * Digit value of c in `alphabet`, or -1. Alphabets are short; a scan is fine.
 * The lower-case-only alphabets (16, 32, 36) decode case-insensitively, as the
 * multibase test suite (tests/case_insensitivity.csv) requires.
 */
static int digit_of(const char *alphabet, char c)
{
    if (c == '\0') return -1;
    if (c >= 'A' && c <= 'Z' && alphabet != b58_alphabet && alphabet != b64url_alphabet)
        c = (char)(c - 'A' + 'a');
    const char *p = strchr(alphabet, c);
    return p == NULL ? -1 : (int)(p - alphabet);
}

static int bad_char(ringp2p_errinfo *ei, rp_base base, const char *src, size_t i)
{
    unsigned char c = (unsigned char)src[i];
    if (c >= 0x20 && c < 0x7f)
        return rp_err(ei, RINGP2P_EMULTIBASE, "invalid %s character '%c' at offset %zu",
                      base_name(base), c, i);
    return rp_err(ei, RINGP2P_EMULTIBASE, "invalid %s byte 0x%02x at offset %zu", base_name(base),
                  c, i);
}

size_t rp_base_encoded_max(rp_base base, size_t len)
{
    switch (base) {
    case RP_BASE16: return 2 * len;
    case RP_BASE32: return (len * 8 + 4) / 5;
    case RP_BASE64URL: return (len * 4 + 2) / 3;
    case RP_BASE58BTC: return len * 138 / 100 + 1;
    case RP_BASE36: return len * 155 / 100 + 1;
    }
    return 0;
}

size_t rp_base_decoded_max(rp_base base, size_t textlen)
{
    switch (base) {
    case RP_BASE16: return textlen / 2;
    case RP_BASE32: return textlen * 5 / 8;
    case RP_BASE64URL: return textlen * 3 / 4;
    case RP_BASE58BTC:
    case RP_BASE36: return textlen; /* each leading zero digit is a whole byte */
    }
    return 0;
}

/* Bit-packing bases (16, 32, 64): `bits` per character, MSB first. */
static ssize_t bits_encode(const char *alphabet, unsigned bits, const uint8_t *src, size_t len,
                           char *dst, size_t cap)
{
    size_t out = (len * 8 + bits - 1) / bits;
    if (out + 1 > cap) return RINGP2P_ENOBUF;
    uint32_t acc = 0;
    unsigned nacc = 0;
    size_t o = 0;
    uint32_t mask = (1u << bits) - 1;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | src[i];
        nacc += 8;
        while (nacc >= bits) {
            nacc -= bits;
            dst[o++] = alphabet[(acc >> nacc) & mask];
        }
    }
    if (nacc > 0) dst[o++] = alphabet[(acc << (bits - nacc)) & mask];
    dst[o] = '\0';
    return (ssize_t)o;
}

/*
 * Strict decoding: no padding, no whitespace, and the unused low bits of the
 * last character must be zero, so each byte string has exactly one text.
 */
static ssize_t bits_decode(rp_base base, const char *alphabet, unsigned bits, const char *src,
                           size_t len, uint8_t *dst, size_t cap, ringp2p_errinfo *ei)
{
    size_t out = len * bits / 8;
    if (out > cap) return RINGP2P_ENOBUF;
    uint32_t acc = 0;
    unsigned nacc = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int d = digit_of(alphabet, src[i]);
        if (d < 0) return bad_char(ei, base, src, i);
        acc = (acc << bits) | (uint32_t)d;
        nacc += bits;
        if (nacc >= 8) {
            nacc -= 8;
            dst[o++] = (uint8_t)(acc >> nacc);
        }
    }
    /* A tail shorter than a byte but at least one whole character cannot occur in encodings. */
    if (nacc >= bits)
        return rp_err(ei, RINGP2P_EMULTIBASE, "%s text has an impossible length %zu",
                      base_name(base), len);
    if (nacc > 0 && (acc & ((1u << nacc) - 1)) != 0)
        return rp_err(ei, RINGP2P_EMULTIBASE, "%s text has non-zero trailing bits",
                      base_name(base));
    return (ssize_t)o;
}

static ssize_t radix_encode(const char *alphabet, unsigned radix, const uint8_t *src, size_t len,
                            char *dst, size_t cap)
{
    if (len > RP_RADIX_MAX_BYTES) return RINGP2P_ELIMIT;
    size_t zeros = 0;
    while (zeros < len && src[zeros] == 0) zeros++;

    uint8_t digits[RP_RADIX_MAX_BYTES * 155 / 100 + 1];
    size_t ndig = 0; /* digits[] holds the number little-endian */
    for (size_t i = zeros; i < len; i++) {
        unsigned carry = src[i];
        for (size_t j = 0; j < ndig; j++) {
            carry += (unsigned)digits[j] << 8;
            digits[j] = (uint8_t)(carry % radix);
            carry /= radix;
        }
        while (carry > 0) {
            digits[ndig++] = (uint8_t)(carry % radix);
            carry /= radix;
        }
    }
    size_t out = zeros + ndig;
    if (out + 1 > cap) return RINGP2P_ENOBUF;
    size_t o = 0;
    for (size_t i = 0; i < zeros; i++) dst[o++] = alphabet[0];
    while (ndig > 0) dst[o++] = alphabet[digits[--ndig]];
    dst[o] = '\0';
    return (ssize_t)o;
}

static ssize_t radix_decode(rp_base base, const char *alphabet, unsigned radix, const char *src,
                            size_t len, uint8_t *dst, size_t cap, ringp2p_errinfo *ei)
{
    if (len > RP_RADIX_MAX_TEXT)
        return rp_err(ei, RINGP2P_ELIMIT, "%s text of %zu characters exceeds the limit of %d",
                      base_name(base), len, RP_RADIX_MAX_TEXT);
    size_t zeros = 0;
    while (zeros < len && src[zeros] == alphabet[0]) zeros++;

    uint8_t bytes[RP_RADIX_MAX_TEXT]; /* little-endian */
    size_t nbytes = 0;
    for (size_t i = zeros; i < len; i++) {
        int d = digit_of(alphabet, src[i]);
        if (d < 0) return bad_char(ei, base, src, i);
        unsigned carry = (unsigned)d;
        for (size_t j = 0; j < nbytes; j++) {
            carry += (unsigned)bytes[j] * radix;
            bytes[j] = (uint8_t)carry;
            carry >>= 8;
        }
        while (carry > 0) {
            bytes[nbytes++] = (uint8_t)carry;
            carry >>= 8;
        }
    }
    size_t out = zeros + nbytes;
    if (out > cap) return RINGP2P_ENOBUF;
    memset(dst, 0, zeros);
    for (size_t i = 0; i < nbytes; i++) dst[zeros + i] = bytes[nbytes - 1 - i];
    return (ssize_t)out;
}

ssize_t rp_base_encode(rp_base base, const uint8_t *src, size_t len, char *dst, size_t cap)
{
    switch (base) {
    case RP_BASE16: return bits_encode(b16_alphabet, 4, src, len, dst, cap);
    case RP_BASE32: return bits_encode(b32_alphabet, 5, src, len, dst, cap);
    case RP_BASE64URL: return bits_encode(b64url_alphabet, 6, src, len, dst, cap);
    case RP_BASE58BTC: return radix_encode(b58_alphabet, 58, src, len, dst, cap);
    case RP_BASE36: return radix_encode(b36_alphabet, 36, src, len, dst, cap);
    }
    return RINGP2P_EINVAL;
}

ssize_t rp_base_decode(rp_base base, const char *src, size_t len, uint8_t *dst, size_t cap,
                       ringp2p_errinfo *ei)
{
    switch (base) {
    case RP_BASE16: return bits_decode(base, b16_alphabet, 4, src, len, dst, cap, ei);
    case RP_BASE32: return bits_decode(base, b32_alphabet, 5, src, len, dst, cap, ei);
    case RP_BASE64URL: return bits_decode(base, b64url_alphabet, 6, src, len, dst, cap, ei);
    case RP_BASE58BTC: return radix_decode(base, b58_alphabet, 58, src, len, dst, cap, ei);
    case RP_BASE36: return radix_decode(base, b36_alphabet, 36, src, len, dst, cap, ei);
    }
    return rp_err(ei, RINGP2P_EINVAL, "unsupported base");
}

ssize_t rp_multibase_encode(rp_base base, const uint8_t *src, size_t len, char *dst, size_t cap)
{
    if (cap < 2) return RINGP2P_ENOBUF;
    ssize_t n = rp_base_encode(base, src, len, dst + 1, cap - 1);
    if (n < 0) return n;
    dst[0] = (char)base;
    return n + 1;
}

ssize_t rp_multibase_decode(const char *src, size_t len, uint8_t *dst, size_t cap,
                            rp_base *base_out, ringp2p_errinfo *ei)
{
    if (len == 0) return rp_err(ei, RINGP2P_EMULTIBASE, "empty multibase text");
    rp_base base;
    switch (src[0]) {
    case 'f':
    case 'F': base = RP_BASE16; break;
    case 'b':
    case 'B': base = RP_BASE32; break;
    case 'k':
    case 'K': base = RP_BASE36; break;
    case 'z': base = RP_BASE58BTC; break;
    case 'u': base = RP_BASE64URL; break;
    default:
        if ((unsigned char)src[0] >= 0x21 && (unsigned char)src[0] < 0x7f)
            return rp_err(ei, RINGP2P_EMULTIBASE, "unsupported multibase prefix '%c'", src[0]);
        return rp_err(ei, RINGP2P_EMULTIBASE, "unsupported multibase prefix byte 0x%02x",
                      (unsigned char)src[0]);
    }
    if (base_out != NULL) *base_out = base;
    return rp_base_decode(base, src + 1, len - 1, dst, cap, ei);
}
