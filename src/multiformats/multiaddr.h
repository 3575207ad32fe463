/*
 * Multiaddr internals (multiformats/multiaddr README and protocols.csv; codes
 * from multiformats/multicodec table.csv).
 *
 * Binary form: (<varint code><value>)*, where the value is absent, of a fixed
 * size, or <varint length><bytes>. Text form: (/<name>[/<value>])*.
 *
 * Layers above (transports, identify, the peerstore) work on binary
 * multiaddrs in their own buffers through the cursor below, without heap
 * objects. Every component that comes out of rp_maddr_next_component has been
 * fully validated, so a value can be printed and parsed back to the same
 * bytes: that round trip holds for every byte string rp_maddr_validate
 * accepts and is what the fuzz targets check.
 *
 * Where the spec leaves a text rule open, ringp2p follows js-multiaddr 13
 * (@multiformats/multiaddr), which its output is cross-checked against
 * byte-for-byte; the points where it departs from js are marked "js:" in
 * maddr_proto.c.
 */
#ifndef RP_MULTIFORMATS_MULTIADDR_H
#define RP_MULTIFORMATS_MULTIADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/bytes.h"
#include "ringp2p/error.h"
#include "ringp2p/multiaddr.h"

/*
 * The spec sets no limits; these are ringp2p's. The largest real component is
 * garlic64 (an I2P destination: 387 bytes and more with a key certificate); a
 * relayed WebTransport address with two certhashes and two peer IDs is under
 * 200 bytes. 1024 bytes holds a garlic64 address inside a relay chain and
 * keeps the stack buffers of the layers above small.
 */
#define RP_MADDR_MAX_BYTES RINGP2P_MULTIADDR_MAX_BYTES /* 1024 */
/* The longest relay/WebTransport/http-path chains in use have about 12 components. */
#define RP_MADDR_MAX_COMPONENTS RINGP2P_MULTIADDR_MAX_COMPONENTS /* 32 */
/*
 * Longest text accepted, and a bound on the canonical text of any address that
 * passes the limits above (3 characters per byte for percent-escaped values
 * plus at most 32 names: under 3700), so a buffer of this size always holds it.
 */
#define RP_MADDR_TEXT_MAX 4096

/* rp_maddr_proto.size for a value with a varint length prefix. */
#define RP_MADDR_SIZE_VAR (-1)

typedef struct rp_maddr_proto rp_maddr_proto;

/*
 * One row of the protocol table. The functions are NULL for protocols
 * without a value; `check` runs on every binary value (from text or bytes);
 * `to_text` is only given values that passed `check`.
 */
struct rp_maddr_proto {
    uint32_t code;
    const char *name;
    int size; /* value bytes: 0 none, > 0 fixed, RP_MADDR_SIZE_VAR length-prefixed */
    /* Text value (not NUL-terminated) to bytes in out[cap]; count or error (message in ei). */
    ssize_t (*from_text)(const char *s, size_t n, uint8_t *out, size_t cap, ringp2p_errinfo *ei);
    /* 0 if the binary value is acceptable, else an error with the reason in ei. */
    int (*check)(const uint8_t *v, size_t n, ringp2p_errinfo *ei);
    /* Appends the text of a checked value to w. */
    void (*to_text)(const uint8_t *v, size_t n, rp_wbuf *w);
};

/* The row for `code`, or NULL if ringp2p does not know it. */
const rp_maddr_proto *rp_maddr_proto_by_code(uint64_t code);

/* The row for a text name (not NUL-terminated; "ipfs" is p2p), or NULL. */
const rp_maddr_proto *rp_maddr_proto_by_name(const char *name, size_t len);

/* One component, viewing into the caller's buffer (valid while that buffer is). */
typedef struct rp_maddr_comp {
    const rp_maddr_proto *proto;
    const uint8_t *start; /* the whole component: code, length prefix, value */
    size_t len;
    const uint8_t *value; /* NULL if the protocol has no value */
    size_t value_len;
} rp_maddr_comp;

/*
 * Decodes and validates one component at *src (not past `end`) and advances
 * *src past it. Errors (*src unchanged): RINGP2P_ETRUNCATED, RINGP2P_EVARINT
 * (code or length), RINGP2P_EPROTOUNKNOWN (code named in ei),
 * RINGP2P_EMULTIADDR (bad value: protocol, value and reason in ei).
 */
int rp_maddr_next_component(const uint8_t **src, const uint8_t *end, rp_maddr_comp *out,
                            ringp2p_errinfo *ei);

/*
 * Validates a whole binary multiaddr (buf is read, not retained). Returns the
 * number of components (0 for the empty multiaddr), the errors of
 * rp_maddr_next_component, or RINGP2P_ELIMIT past RP_MADDR_MAX_BYTES or
 * RP_MADDR_MAX_COMPONENTS.
 */
ssize_t rp_maddr_validate(const uint8_t *buf, size_t len, ringp2p_errinfo *ei);

/*
 * Parses text (len bytes, not necessarily NUL-terminated) into binary in
 * dst[cap]. "" and "/" are the empty multiaddr; trailing slashes are ignored;
 * "ipfs" is read as p2p. Returns the byte count or: RINGP2P_EPROTOUNKNOWN
 * (the name is in ei), RINGP2P_EMULTIADDR (bad syntax, or a missing or bad
 * value: protocol, value and reason in ei), RINGP2P_ELIMIT, RINGP2P_ENOBUF.
 */
ssize_t rp_maddr_from_text(const char *text, size_t len, uint8_t *dst, size_t cap,
                           ringp2p_errinfo *ei);

/*
 * Writes the canonical text of binary buf[len] into dst[cap], NUL-terminated
 * ("/" for the empty multiaddr). Validates as it goes. Returns the text length
 * (without the NUL), RINGP2P_ENOBUF, or the errors of rp_maddr_validate.
 * dst may be NULL with cap 0 to measure: the result is then RINGP2P_ENOBUF,
 * and rp_maddr_text_len gives the length.
 */
ssize_t rp_maddr_to_text(const uint8_t *buf, size_t len, char *dst, size_t cap,
                         ringp2p_errinfo *ei);

/* Length of the canonical text of buf[len] (without NUL), or a validation error. */
ssize_t rp_maddr_text_len(const uint8_t *buf, size_t len, ringp2p_errinfo *ei);

/*
 * Parses one value's text (s[n]) for protocol p into dst[cap]. Returns the
 * value's byte count (no length prefix), RINGP2P_EMULTIADDR, RINGP2P_ELIMIT or
 * RINGP2P_ENOBUF; RINGP2P_EINVAL if p takes no value.
 */
ssize_t rp_maddr_value_from_text(const rp_maddr_proto *p, const char *s, size_t n, uint8_t *dst,
                                 size_t cap, ringp2p_errinfo *ei);

/*
 * Writes the text of one binary value (checked first) into dst[cap],
 * NUL-terminated; "" for protocols without a value. Returns the length,
 * RINGP2P_ENOBUF or RINGP2P_EMULTIADDR.
 */
ssize_t rp_maddr_value_to_text(const rp_maddr_proto *p, const uint8_t *v, size_t n, char *dst,
                               size_t cap, ringp2p_errinfo *ei);

/*
 * Appends one component (code, length prefix if any, value) for a value that
 * is checked first; for building addresses from socket addresses and the
 * like. Returns the bytes written, RINGP2P_EMULTIADDR or RINGP2P_ENOBUF.
 */
ssize_t rp_maddr_put_component(const rp_maddr_proto *p, const uint8_t *v, size_t n, uint8_t *dst,
                               size_t cap, ringp2p_errinfo *ei);

/*
 * Offset in buf of the last component with protocol `code`, RINGP2P_ENOENT if
 * there is none, or a validation error.
 */
ssize_t rp_maddr_find_last(const uint8_t *buf, size_t len, uint32_t code, ringp2p_errinfo *ei);

/*
 * Writes `n` bytes of `v` into dst[cap] as a quoted, printable excerpt for
 * error messages: non-printable bytes as \xNN, cut with "..." past a few
 * dozen characters. Returns dst.
 */
const char *rp_maddr_quote(const void *v, size_t n, char *dst, size_t cap);

#endif
