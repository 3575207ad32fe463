/*
 * The multiaddr protocol table and the value codecs of each protocol.
 *
 * Codecs report only the reason in `ei` ("port out of range 0-65535");
 * multiaddr.c prefixes the protocol name and the offending value. A codec's
 * to_text output, parsed back by its from_text, always gives the same bytes.
 */
#include <string.h>

#include "base/error.h"
#include "multiformats/cid.h"
#include "multiformats/multiaddr.h"
#include "multiformats/multibase.h"
#include "multiformats/multihash.h"

/* Fixed value sizes (protocols.csv gives them in bits). */
#define IP4_LEN         4
#define IP6_LEN         16
#define PORT_LEN        2
#define IPCIDR_LEN      1
#define ONION_HASH_LEN  10 /* Tor v2: 80-bit hash, 16 base32 characters */
#define ONION3_HASH_LEN 35 /* Tor v3: 35-byte address, 56 base32 characters */
#define ONION_LEN       (ONION_HASH_LEN + PORT_LEN)
#define ONION3_LEN      (ONION3_HASH_LEN + PORT_LEN)
#define ONION_TEXT_LEN  16
#define ONION3_TEXT_LEN 56
/*
 * I2P (multicodec: garlic64 is the raw destination, garlic32 its hash or an
 * encrypted-leaseset address). A destination is at least 387 bytes; go-multiaddr
 * refuses fewer than 386 and so do we. garlic32 is a 32-byte hash, or 35 bytes
 * and more for b32encrypted addresses (geti2p.net/spec/b32encrypted).
 */
#define GARLIC64_MIN_LEN           386
#define GARLIC32_HASH_LEN          32
#define GARLIC32_ENCRYPTED_MIN_LEN 35

/* Largest text of a base-encoded value (base32 of RP_MADDR_MAX_BYTES is the longest). */
#define BASE_TEXT_SCRATCH (RP_MADDR_MAX_BYTES * 8 / 5 + 8)

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/*
 * A decimal number with no sign, no leading zeros (js-multiaddr's port rule,
 * and the canonical form we print) and at most `max`. Returns 0 and *out, or -1.
 */
static int parse_decimal(const char *s, size_t n, uint32_t max, uint32_t *out)
{
    if (n == 0 || n > 10 || (n > 1 && s[0] == '0')) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(s[i])) return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > max) return -1;
    *out = (uint32_t)v;
    return 0;
}

static void put_str(rp_wbuf *w, const char *s)
{
    rp_wbuf_put(w, s, strlen(s));
}

static void put_decimal(rp_wbuf *w, uint32_t v)
{
    char tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0) rp_wbuf_byte(w, (uint8_t)tmp[--n]);
}

/* Raw base text (no multibase prefix) of v, appended to w. */
static void put_base(rp_wbuf *w, rp_base base, const uint8_t *v, size_t n)
{
    char tmp[BASE_TEXT_SCRATCH];
    ssize_t len = rp_base_encode(base, v, n, tmp, sizeof(tmp));
    /* Checked values always fit; a failure here would be a table bug, so emit nothing. */
    if (len > 0) rp_wbuf_put(w, tmp, (size_t)len);
}

static uint16_t get_be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

/*
 * Offset of the first byte that is not part of well-formed UTF-8 (RFC 3629:
 * no overlong forms, no surrogates, nothing past U+10FFFF), or n. Values that
 * appear verbatim in the text form are held to UTF-8, so the text is UTF-8
 * and prints as js-multiaddr prints it (js decodes bytes with a replacing
 * UTF-8 decoder).
 */
static size_t utf8_bad_offset(const uint8_t *v, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = v[i];
        size_t len;
        uint8_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0) lo = 0xa0;
            if (c == 0xed) hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0) lo = 0x90;
            if (c == 0xf4) hi = 0x8f;
        } else {
            return i;
        }
        if (n - i < len || v[i + 1] < lo || v[i + 1] > hi) return i;
        for (size_t k = 2; k < len; k++)
            if ((v[i + k] & 0xc0) != 0x80) return i;
        i += len;
    }
    return n;
}

static int check_utf8(const uint8_t *v, size_t n, ringp2p_errinfo *ei)
{
    size_t bad = utf8_bad_offset(v, n);
    if (bad != n)
        return rp_err(ei, RINGP2P_EMULTIADDR, "not UTF-8 (byte 0x%02x at offset %zu)", v[bad], bad);
    return 0;
}

static int too_long(ringp2p_errinfo *ei)
{
    return rp_err(ei, RINGP2P_ELIMIT, "value longer than the %d-byte multiaddr limit",
                  RP_MADDR_MAX_BYTES);
}

/* ---- ip4 --------------------------------------------------------------------------------- */

static int ip4_parse(const char *s, size_t n, uint8_t out[IP4_LEN])
{
    size_t i = 0;
    for (int part = 0; part < IP4_LEN; part++) {
        if (part > 0) {
            if (i >= n || s[i] != '.') return -1;
            i++;
        }
        size_t start = i;
        while (i < n && is_digit(s[i]) && i - start < 4) i++;
        uint32_t v;
        if (parse_decimal(s + start, i - start, 255, &v) != 0) return -1;
        out[part] = (uint8_t)v;
    }
    return i == n ? 0 : -1;
}

static ssize_t ip4_from_text(const char *s, size_t n, uint8_t *out, size_t cap, ringp2p_errinfo *ei)
{
    if (cap < IP4_LEN) return RINGP2P_ENOBUF;
    if (ip4_parse(s, n, out) != 0)
        return rp_err(ei, RINGP2P_EMULTIADDR,
                      "not a dotted-quad IPv4 address (four decimal octets 0-255, no leading "
                      "zeros)");
    return IP4_LEN;
}

static void ip4_to_text(const uint8_t *v, size_t n, rp_wbuf *w)
{
    for (size_t i = 0; i < IP4_LEN; i++) {
        if (i > 0) rp_wbuf_byte(w, '.');
        put_decimal(w, v[i]);
    }
}

/* ---- ip6 --------------------------------------------------------------------------------- */

/* RFC 4291 section 2.2 text forms, including "::" and a trailing dotted quad; no zone. */
static int ip6_parse(const char *s, size_t n, uint8_t out[IP6_LEN])
{
    uint16_t g[8];
    int ng = 0, gap = -1;
    size_t i = 0;

    if (n >= 2 && s[0] == ':' && s[1] == ':') {
        gap = 0;
        i = 2;
    } else if (n == 0 || s[0] == ':') {
        return -1;
    }
    while (i < n) {
        size_t start = i;
        uint32_t v = 0;
        while (i < n && hex_value(s[i]) >= 0 && i - start < 5)
            v = v * 16 + (uint32_t)hex_value(s[i++]);
        if (i < n && s[i] == '.') {
            /* The last 32 bits as a dotted quad, which must end the text. */
            uint8_t q[IP4_LEN];
            if (ng > 6 || ip4_parse(s + start, n - start, q) != 0) return -1;
            g[ng++] = (uint16_t)((q[0] << 8) | q[1]);
            g[ng++] = (uint16_t)((q[2] << 8) | q[3]);
            i = n;
            break;
        }
        if (i == start || i - start > 4 || ng == 8) return -1;
        g[ng++] = (uint16_t)v;
        if (i == n) break;
        if (s[i] != ':') return -1;
        i++;
        if (i < n && s[i] == ':') {
            if (gap >= 0) return -1;
            gap = ng;
            i++;
        } else if (i == n) {
            return -1; /* a single trailing ':' */
        }
    }
    if (gap < 0 ? ng != 8 : ng > 7) return -1;

    memset(out, 0, IP6_LEN);
    int head = gap < 0 ? ng : gap;
    for (int k = 0; k < head; k++) {
        out[2 * k] = (uint8_t)(g[k] >> 8);
        out[2 * k + 1] = (uint8_t)g[k];
    }
    for (int k = head; k < ng; k++) {
        int pos = 8 - (ng - k);
        out[2 * pos] = (uint8_t)(g[k] >> 8);
        out[2 * pos + 1] = (uint8_t)g[k];
    }
    return 0;
}

static ssize_t ip6_from_text(const char *s, size_t n, uint8_t *out, size_t cap, ringp2p_errinfo *ei)
{
    if (cap < IP6_LEN) return RINGP2P_ENOBUF;
    if (ip6_parse(s, n, out) != 0)
        return rp_err(ei, RINGP2P_EMULTIADDR, "not an IPv6 address (RFC 4291 text, no zone)");
    return IP6_LEN;
}

/*
 * RFC 5952 section 4: lower-case hex without leading zeros, the first longest
 * run of two or more zero groups as "::". js: like js-multiaddr 13 (the WHATWG
 * URL serializer) and unlike inet_ntop, an IPv4-mapped address stays in hex
 * (::ffff:102:304), so the text matches js byte for byte.
 */
static void ip6_to_text(const uint8_t *v, size_t n, rp_wbuf *w)
{
    static const char hexdig[] = "0123456789abcdef";
    uint16_t g[8];
    for (int k = 0; k < 8; k++) g[k] = get_be16(v + 2 * k);

    int best = -1, best_len = 0;
    for (int k = 0; k < 8;) {
        if (g[k] != 0) {
            k++;
            continue;
        }
        int start = k;
        while (k < 8 && g[k] == 0) k++;
        if (k - start > best_len && k - start >= 2) {
            best = start;
            best_len = k - start;
        }
    }
    for (int k = 0; k < 8;) {
        if (k == best) {
            put_str(w, "::");
            k += best_len;
            continue;
        }
        if (k != 0 && k != best + best_len) rp_wbuf_byte(w, ':');
        int shift = 12;
        while (shift > 0 && ((g[k] >> shift) & 0xf) == 0) shift -= 4;
        for (; shift >= 0; shift -= 4) rp_wbuf_byte(w, (uint8_t)hexdig[(g[k] >> shift) & 0xf]);
        k++;
    }
}

/* ---- ports, ipcidr ------------------------------------------------------------------------- */

static ssize_t port_from_text(const char *s, size_t n, uint8_t *out, size_t cap,
                              ringp2p_errinfo *ei)
{
    uint32_t v;
    if (cap < PORT_LEN) return RINGP2P_ENOBUF;
    if (parse_decimal(s, n, 65535, &v) != 0)
        return rp_err(ei, RINGP2P_EMULTIADDR,
                      "port must be a decimal number 0-65535 without leading zeros");
    out[0] = (uint8_t)(v >> 8);
    out[1] = (uint8_t)v;
    return PORT_LEN;
}

static void port_to_text(const uint8_t *v, size_t n, rp_wbuf *w)
{
    put_decimal(w, get_be16(v));
}

/* go-multiaddr reads any 8-bit mask; js reads base10 bytes. One byte, 0-255. */
static ssize_t ipcidr_from_text(const char *s, size_t n, uint8_t *out, size_t cap,
                                ringp2p_errinfo *ei)
{
    uint32_t v;
    if (cap < IPCIDR_LEN) return RINGP2P_ENOBUF;
    if (parse_decimal(s, n, 255, &v) != 0)
        return rp_err(ei, RINGP2P_EMULTIADDR,
                      "CIDR mask must be a decimal number 0-255 without leading zeros");
    out[0] = (uint8_t)v;
    return IPCIDR_LEN;
}

static void ipcidr_to_text(const uint8_t *v, size_t n, rp_wbuf *w)
{
    put_decimal(w, v[0]);
}

/* ---- onion, onion3 ------------------------------------------------------------------------- */

/* "<base32 hash>:<port 1-65535>"; base32 case-insensitive (as go reads it), printed lower. */
static ssize_t onion_common_from_text(const char *s, size_t n, size_t text_len, size_t hash_len,
                                      uint8_t *out, size_t cap, ringp2p_errinfo *ei)
{
    const char *colon = memchr(s, ':', n);
    if (colon == NULL) return rp_err(ei, RINGP2P_EMULTIADDR, "missing ':<port>'");
    size_t hlen = (size_t)(colon - s);
    if (hlen != text_len)
        return rp_err(ei, RINGP2P_EMULTIADDR,
                      "onion address must be %zu base32 characters, not %zu", text_len, hlen);
    if (cap < hash_len + PORT_LEN) return RINGP2P_ENOBUF;
    ringp2p_errinfo sub = { 0 };
    ssize_t got = rp_base_decode(RP_BASE32, s, hlen, out, hash_len, &sub);
    if (got < 0) return rp_err(ei, RINGP2P_EMULTIADDR, "%s", sub.msg[0] ? sub.msg : "bad base32");
    if ((size_t)got != hash_len)
        return rp_err(ei, RINGP2P_EMULTIADDR, "onion address decodes to %zd bytes, not %zu", got,
                      hash_len);
    uint32_t port;
    const char *ps = colon + 1;
    size_t pn = n - hlen - 1;
    if (parse_decimal(ps, pn, 65535, &port) != 0 || port == 0)
        return rp_err(ei, RINGP2P_EMULTIADDR,
                      "onion port must be a decimal number 1-65535 without leading zeros");
    out[hash_len] = (uint8_t)(port >> 8);
    out[hash_len + 1] = (uint8_t)port;
    return (ssize_t)(hash_len + PORT_LEN);
}

static ssize_t onion_from_text(const char *s, size_t n, uint8_t *out, size_t cap,
                               ringp2p_errinfo *ei)
{
    return onion_common_from_text(s, n, ONION_TEXT_LEN, ONION_HASH_LEN, out, cap, ei);
}

static ssize_t onion3_from_text(const char *s, size_t n, uint8_t *out, size_t cap,
                                ringp2p_errinfo *ei)
{
    return onion_common_from_text(s, n, ONION3_TEXT_LEN, ONION3_HASH_LEN, out, cap, ei);
}

/* go-multiaddr refuses port 0 in binary too; text cannot express it. */
static int onion_check(const uint8_t *v, size_t n, ringp2p_errinfo *ei)
{
    if (get_be16(v + n - PORT_LEN) == 0) return rp_err(ei, RINGP2P_EMULTIADDR, "onion port 0");
    return 0;
}

static void onion_to_text(const uint8_t *v, size_t n, rp_wbuf *w)
{
    put_base(w, RP_BASE32, v, n - PORT_LEN);
    rp_wbuf_byte(w, ':');
    put_decimal(w, get_be16(v + n - PORT_LEN));
}

/* ---- garlic64, garlic32 (I2P) -------------------------------------------------------------- */

/*
 * I2P's base64: the RFC 4648 alphabet with '-' and '~' for '+' and '/', and
 * '=' padding. Decoding is strict (padding present, zero trailing bits) so
 * each value has one text. js: js-multiaddr 13 has no garlic codec and keeps
 * the text's UTF-8 bytes; we follow the multicodec table and go-multiaddr
 * and store the decoded destination.
 */
static const char i2p_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-~";

static int i2p_b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '~') return 63;
    return -1;
}

static ssize_t garlic64_from_text(const char *s, size_t n, uint8_t *out, size_t cap,
                                  ringp2p_errinfo *ei)
{
    if (n % 4 != 0)
        return rp_err(ei, RINGP2P_EMULTIADDR,
                      "I2P base64 length %zu is not a multiple of 4 (padding required)", n);
    size_t pad = 0;
    while (pad < 2 && pad < n && s[n - 1 - pad] == '=') pad++;
    size_t outlen = n / 4 * 3 - pad;
    if (outlen > cap) return too_long(ei);
    uint32_t acc = 0;
    size_t o = 0;
    for (size_t i = 0; i < n - pad; i++) {
        int d = i2p_b64_value(s[i]);
        if (d < 0)
            return rp_err(ei, RINGP2P_EMULTIADDR, "invalid I2P base64 character at offset %zu", i);
        acc = (acc << 6) | (uint32_t)d;
        if (i % 4 == 3) {
            out[o++] = (uint8_t)(acc >> 16);
            out[o++] = (uint8_t)(acc >> 8);
            out[o++] = (uint8_t)acc;
            acc = 0;
        }
    }
    /* The last quantum holds 1 or 2 bytes when padded; its unused bits must be zero. */
    if (pad == 2) {
        if (acc & 0xf)
            return rp_err(ei, RINGP2P_EMULTIADDR, "I2P base64 has non-zero trailing bits");
        out[o++] = (uint8_t)(acc >> 4);
    } else if (pad == 1) {
        if (acc & 0x3)
            return rp_err(ei, RINGP2P_EMULTIADDR, "I2P base64 has non-zero trailing bits");
        out[o++] = (uint8_t)(acc >> 10);
        out[o++] = (uint8_t)(acc >> 2);
    }
    return (ssize_t)o;
}

static int garlic64_check(const uint8_t *v, size_t n, ringp2p_errinfo *ei)
{
    if (n < GARLIC64_MIN_LEN)
        return rp_err(ei, RINGP2P_EMULTIADDR,
                      "I2P destination of %zu bytes is shorter than the minimum %d", n,
                      GARLIC64_MIN_LEN);
    return 0;
}

static void garlic64_to_text(const uint8_t *v, size_t n, rp_wbuf *w)
{
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t acc = ((uint32_t)v[i] << 16) | ((uint32_t)v[i + 1] << 8) | v[i + 2];
        for (int k = 18; k >= 0; k -= 6) rp_wbuf_byte(w, (uint8_t)i2p_b64[(acc >> k) & 63]);
    }
    if (n - i == 1) {
        uint32_t acc = (uint32_t)v[i] << 16;
        rp_wbuf_byte(w, (uint8_t)i2p_b64[(acc >> 18) & 63]);
        rp_wbuf_byte(w, (uint8_t)i2p_b64[(acc >> 12) & 63]);
        put_str(w, "==");
    } else if (n - i == 2) {
        uint32_t acc = ((uint32_t)v[i] << 16) | ((uint32_t)v[i + 1] << 8);
        rp_wbuf_byte(w, (uint8_t)i2p_b64[(acc >> 18) & 63]);
        rp_wbuf_byte(w, (uint8_t)i2p_b64[(acc >> 12) & 63]);
        rp_wbuf_byte(w, (uint8_t)i2p_b64[(acc >> 6) & 63]);
        rp_wbuf_byte(w, '=');
    }
}

/* RFC 4648 base32, lower case, no padding: 52 characters for a hash, 56 and more encrypted. */
static ssize_t garlic32_from_text(const char *s, size_t n, uint8_t *out, size_t cap,
                                  ringp2p_errinfo *ei)
{
    if (rp_base_decoded_max(RP_BASE32, n) > cap) return too_long(ei);
    ringp2p_errinfo sub = { 0 };
    ssize_t got = rp_base_decode(RP_BASE32, s, n, out, cap, &sub);
    if (got < 0) return rp_err(ei, RINGP2P_EMULTIADDR, "%s", sub.msg[0] ? sub.msg : "bad base32");
    return got;
}

static int garlic32_check(const uint8_t *v, size_t n, ringp2p_errinfo *ei)
{
    if (n != GARLIC32_HASH_LEN && n < GARLIC32_ENCRYPTED_MIN_LEN)
        return rp_err(ei, RINGP2P_EMULTIADDR,
                      "I2P base32 address of %zu bytes: must be %d, or at least %d", n,
                      GARLIC32_HASH_LEN, GARLIC32_ENCRYPTED_MIN_LEN);
    return 0;
}

static void garlic32_to_text(const uint8_t *v, size_t n, rp_wbuf *w)
{
    put_base(w, RP_BASE32, v, n);
}

/* ---- p2p, certhash --------------------------------------------------------------------------- */

/*
 * libp2p peer-ids spec: a peer ID is an identity or sha2-256 multihash. Its
 * text is that multihash in base58btc ("Qm...", "1..."), or a CIDv1 with the
 * libp2p-key codec in any multibase (RFC 0001); we always print base58btc.
 * js: js-multiaddr 13 keeps a CID text as given when it parses text but
 * prints base58btc from bytes; it does not check the CID's codec.
 */
static ssize_t p2p_from_text(const char *s, size_t n, uint8_t *out, size_t cap, ringp2p_errinfo *ei)
{
    ringp2p_errinfo sub = { 0 };
    if (n > 0 && (s[0] == 'Q' || s[0] == '1')) {
        ssize_t got = rp_base_decode(RP_BASE58BTC, s, n, out, cap, &sub);
        if (got == RINGP2P_ENOBUF) return too_long(ei);
        if (got < 0)
            return rp_err(ei, RINGP2P_EMULTIADDR, "bad base58btc peer ID: %s",
                          sub.msg[0] ? sub.msg : ringp2p_strerror((int)got));
        return got;
    }
    rp_cid cid;
    int r = rp_cid_from_text(s, n, out, cap, &cid, &sub);
    if (r == RINGP2P_ENOBUF) return too_long(ei);
    if (r < 0)
        return rp_err(ei, RINGP2P_EMULTIADDR, "neither a base58btc multihash nor a CID: %s",
                      sub.msg[0] ? sub.msg : ringp2p_strerror(r));
    if (cid.codec != RP_CODEC_LIBP2P_KEY)
        return rp_err(ei, RINGP2P_EMULTIADDR, "CID codec 0x%llx is not libp2p-key (0x%x)",
                      (unsigned long long)cid.codec, RP_CODEC_LIBP2P_KEY);
    memmove(out, cid.mh_bytes, cid.mh_len);
    return (ssize_t)cid.mh_len;
}

static int p2p_check(const uint8_t *v, size_t n, ringp2p_errinfo *ei)
{
    ringp2p_errinfo sub = { 0 };
    rp_multihash mh;
    int r = rp_multihash_parse(v, n, &mh, &sub);
    if (r != 0)
        return rp_err(ei, RINGP2P_EMULTIADDR, "bad multihash: %s",
                      sub.msg[0] ? sub.msg : ringp2p_strerror(r));
    if (mh.code != RP_MH_IDENTITY && mh.code != RP_MH_SHA2_256)
        return rp_err(ei, RINGP2P_EMULTIADDR,
                      "multihash code 0x%llx: a peer ID is identity or sha2-256",
                      (unsigned long long)mh.code);
    return 0;
}

static void p2p_to_text(const uint8_t *v, size_t n, rp_wbuf *w)
{
    put_base(w, RP_BASE58BTC, v, n);
}

/* A multihash of the certificate, in any multibase; printed base64url as go and js do. */
static ssize_t certhash_from_text(const char *s, size_t n, uint8_t *out, size_t cap,
                                  ringp2p_errinfo *ei)
{
    ringp2p_errinfo sub = { 0 };
    ssize_t got = rp_multibase_decode(s, n, out, cap, NULL, &sub);
    if (got == RINGP2P_ENOBUF) return too_long(ei);
    if (got < 0)
        return rp_err(ei, RINGP2P_EMULTIADDR, "bad multibase: %s",
                      sub.msg[0] ? sub.msg : ringp2p_strerror((int)got));
    return got;
}

static int certhash_check(const uint8_t *v, size_t n, ringp2p_errinfo *ei)
{
    ringp2p_errinfo sub = { 0 };
    rp_multihash mh;
    int r = rp_multihash_parse(v, n, &mh, &sub);
    if (r != 0)
        return rp_err(ei, RINGP2P_EMULTIADDR, "bad multihash: %s",
                      sub.msg[0] ? sub.msg : ringp2p_strerror(r));
    return 0;
}

static void certhash_to_text(const uint8_t *v, size_t n, rp_wbuf *w)
{
    rp_wbuf_byte(w, (uint8_t)RP_BASE64URL);
    put_base(w, RP_BASE64URL, v, n);
}

/* ---- names: dns*, sni, ip6zone, memory ------------------------------------------------------ */

/*
 * Text stored as is. A value must not be empty or hold '/' (it would split the
 * text form) or NUL (the public API's text is a C string), and must be UTF-8.
 */
static ssize_t raw_from_text(const char *s, size_t n, uint8_t *out, size_t cap, ringp2p_errinfo *ei)
{
    if (n > cap) return too_long(ei);
    memcpy(out, s, n);
    return (ssize_t)n;
}

static int raw_check(const uint8_t *v, size_t n, ringp2p_errinfo *ei)
{
    if (n == 0) return rp_err(ei, RINGP2P_EMULTIADDR, "empty value");
    if (memchr(v, '/', n) != NULL) return rp_err(ei, RINGP2P_EMULTIADDR, "value contains '/'");
    if (memchr(v, '\0', n) != NULL) return rp_err(ei, RINGP2P_EMULTIADDR, "value contains NUL");
    return check_utf8(v, n, ei);
}

static void raw_to_text(const uint8_t *v, size_t n, rp_wbuf *w)
{
    rp_wbuf_put(w, v, n);
}

/* ---- unix, http-path: percent-encoded ------------------------------------------------------- */

/*
 * js-multiaddr 13 reads these with decodeURIComponent and prints them with
 * encodeURIComponent, so a unix path is one text segment ("/unix/%2Ftmp%2Fs").
 * go-multiaddr instead lets /unix/ swallow the rest of the text
 * ("/unix/tmp/s"); we follow js, which our output is checked against.
 * js: the value is octets, as RFC 3986 percent-encoding is, so any byte is
 * accepted ("%FF"); js's decodeURIComponent refuses escapes that are not
 * UTF-8. For UTF-8 values the text is the same as js's encodeURIComponent.
 */
static int uri_unreserved(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("-_.!~*'()", c) != NULL);
}

static ssize_t percent_decode(const char *s, size_t n, uint8_t *out, size_t cap,
                              ringp2p_errinfo *ei)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hex_value(s[i + 1]) : -1;
            int lo = i + 2 < n ? hex_value(s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return rp_err(ei, RINGP2P_EMULTIADDR, "malformed percent-escape at offset %zu", i);
            c = (uint8_t)(hi * 16 + lo);
            i += 2;
        }
        if (o == cap) return too_long(ei);
        out[o++] = c;
    }
    return (ssize_t)o;
}

static void percent_encode(const uint8_t *v, size_t n, rp_wbuf *w)
{
    static const char hexdig[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        if (uri_unreserved(v[i])) {
            rp_wbuf_byte(w, v[i]);
        } else {
            rp_wbuf_byte(w, '%');
            rp_wbuf_byte(w, (uint8_t)hexdig[v[i] >> 4]);
            rp_wbuf_byte(w, (uint8_t)hexdig[v[i] & 15]);
        }
    }
}

static int nonempty_check(const uint8_t *v, size_t n, ringp2p_errinfo *ei)
{
    if (n == 0) return rp_err(ei, RINGP2P_EMULTIADDR, "empty value");
    return 0;
}

/*
 * multiaddr protocols/http-path.md. js: js-multiaddr 13 stores the path with
 * its leading '/' ("/http-path/a%2Fb" is the bytes "/a/b") and go-multiaddr
 * without; we follow js. A binary value must therefore start with '/' and
 * hold more than that '/'.
 */
static ssize_t http_path_from_text(const char *s, size_t n, uint8_t *out, size_t cap,
                                   ringp2p_errinfo *ei)
{
    if (cap < 1) return too_long(ei);
    out[0] = '/';
    ssize_t got = percent_decode(s, n, out + 1, cap - 1, ei);
    return got < 0 ? got : got + 1;
}

static int http_path_check(const uint8_t *v, size_t n, ringp2p_errinfo *ei)
{
    if (n < 2 || v[0] != '/')
        return rp_err(ei, RINGP2P_EMULTIADDR, "HTTP path must be '/' and at least one byte more");
    return 0;
}

static void http_path_to_text(const uint8_t *v, size_t n, rp_wbuf *w)
{
    percent_encode(v + 1, n - 1, w);
}

/* ---- the table ----------------------------------------------------------------------------- */

#define NOVAL(code_, name_)                   \
    {                                         \
        (code_), (name_), 0, NULL, NULL, NULL \
    }
#define FIXED(code_, name_, size_, from_, check_, to_) \
    {                                                  \
        (code_), (name_), (size_), from_, check_, to_  \
    }
#define VAR(code_, name_, from_, check_, to_)                   \
    {                                                           \
        (code_), (name_), RP_MADDR_SIZE_VAR, from_, check_, to_ \
    }

/* Ordered by code. Sizes from protocols.csv; memory follows protocols.csv (V), see below. */
static const rp_maddr_proto protos[] = {
    FIXED(RINGP2P_P_IP4, "ip4", IP4_LEN, ip4_from_text, NULL, ip4_to_text),
    FIXED(RINGP2P_P_TCP, "tcp", PORT_LEN, port_from_text, NULL, port_to_text),
    FIXED(RINGP2P_P_DCCP, "dccp", PORT_LEN, port_from_text, NULL, port_to_text),
    FIXED(RINGP2P_P_IP6, "ip6", IP6_LEN, ip6_from_text, NULL, ip6_to_text),
    VAR(RINGP2P_P_IP6ZONE, "ip6zone", raw_from_text, raw_check, raw_to_text),
    FIXED(RINGP2P_P_IPCIDR, "ipcidr", IPCIDR_LEN, ipcidr_from_text, NULL, ipcidr_to_text),
    VAR(RINGP2P_P_DNS, "dns", raw_from_text, raw_check, raw_to_text),
    VAR(RINGP2P_P_DNS4, "dns4", raw_from_text, raw_check, raw_to_text),
    VAR(RINGP2P_P_DNS6, "dns6", raw_from_text, raw_check, raw_to_text),
    VAR(RINGP2P_P_DNSADDR, "dnsaddr", raw_from_text, raw_check, raw_to_text),
    FIXED(RINGP2P_P_SCTP, "sctp", PORT_LEN, port_from_text, NULL, port_to_text),
    FIXED(RINGP2P_P_UDP, "udp", PORT_LEN, port_from_text, NULL, port_to_text),
    NOVAL(RINGP2P_P_P2P_WEBRTC_STAR, "p2p-webrtc-star"),
    NOVAL(RINGP2P_P_P2P_WEBRTC_DIRECT, "p2p-webrtc-direct"),
    NOVAL(RINGP2P_P_P2P_STARDUST, "p2p-stardust"),
    NOVAL(RINGP2P_P_WEBRTC_DIRECT, "webrtc-direct"),
    NOVAL(RINGP2P_P_WEBRTC, "webrtc"),
    NOVAL(RINGP2P_P_P2P_CIRCUIT, "p2p-circuit"),
    NOVAL(RINGP2P_P_UDT, "udt"),
    NOVAL(RINGP2P_P_UTP, "utp"),
    VAR(RINGP2P_P_UNIX, "unix", percent_decode, nonempty_check, percent_encode),
    VAR(RINGP2P_P_P2P, "p2p", p2p_from_text, p2p_check, p2p_to_text),
    NOVAL(RINGP2P_P_HTTPS, "https"),
    FIXED(RINGP2P_P_ONION, "onion", ONION_LEN, onion_from_text, onion_check, onion_to_text),
    FIXED(RINGP2P_P_ONION3, "onion3", ONION3_LEN, onion3_from_text, onion_check, onion_to_text),
    VAR(RINGP2P_P_GARLIC64, "garlic64", garlic64_from_text, garlic64_check, garlic64_to_text),
    VAR(RINGP2P_P_GARLIC32, "garlic32", garlic32_from_text, garlic32_check, garlic32_to_text),
    NOVAL(RINGP2P_P_TLS, "tls"),
    VAR(RINGP2P_P_SNI, "sni", raw_from_text, raw_check, raw_to_text),
    NOVAL(RINGP2P_P_NOISE, "noise"),
    NOVAL(RINGP2P_P_QUIC, "quic"),
    NOVAL(RINGP2P_P_QUIC_V1, "quic-v1"),
    NOVAL(RINGP2P_P_WEBTRANSPORT, "webtransport"),
    VAR(RINGP2P_P_CERTHASH, "certhash", certhash_from_text, certhash_check, certhash_to_text),
    NOVAL(RINGP2P_P_WS, "ws"),
    NOVAL(RINGP2P_P_WSS, "wss"),
    NOVAL(RINGP2P_P_P2P_WEBSOCKET_STAR, "p2p-websocket-star"),
    NOVAL(RINGP2P_P_HTTP, "http"),
    VAR(RINGP2P_P_HTTP_PATH, "http-path", http_path_from_text, http_path_check, http_path_to_text),
    /*
     * protocols.csv has memory as length-prefixed "arbitrary" bytes, and so
     * does js-multiaddr 13 (/memory/test is the UTF-8 "test"). js: go- and
     * rust-multiaddr use an 8-byte big-endian integer instead; we follow the
     * spec table and js.
     */
    VAR(RINGP2P_P_MEMORY, "memory", raw_from_text, raw_check, raw_to_text),
};

#define NPROTOS (sizeof(protos) / sizeof(protos[0]))

const rp_maddr_proto *rp_maddr_proto_by_code(uint64_t code)
{
    for (size_t i = 0; i < NPROTOS; i++)
        if (protos[i].code == code) return &protos[i];
    return NULL;
}

const rp_maddr_proto *rp_maddr_proto_by_name(const char *name, size_t len)
{
    /* protocols.csv: "ipfs" is the old name of p2p, read but never printed. */
    if (len == 4 && memcmp(name, "ipfs", 4) == 0) return rp_maddr_proto_by_code(RINGP2P_P_P2P);
    for (size_t i = 0; i < NPROTOS; i++)
        if (strlen(protos[i].name) == len && memcmp(protos[i].name, name, len) == 0)
            return &protos[i];
    return NULL;
}
