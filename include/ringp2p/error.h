/*
 * ringp2p error codes.
 *
 * Every function that can fail returns 0 (or a byte count) on success and a
 * negative RINGP2P_E* code on failure. The codes and their messages live in
 * the one table below. Functions that parse input from users or peers also
 * take an optional `ringp2p_errinfo *` that, when not NULL, receives a
 * message naming the exact problem ("unknown protocol 'ether'").
 */
#ifndef RINGP2P_ERROR_H
#define RINGP2P_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define RINGP2P_API __attribute__((visibility("default")))
#else
#define RINGP2P_API
#endif

/* X(name, value, message). Values are stable: append, never renumber. */
#define RINGP2P_ERRORS(X)                                                 \
    X(OK, 0, "success")                                                   \
    X(EINVAL, -1, "invalid argument")                                     \
    X(ENOMEM, -2, "out of memory")                                        \
    X(ENOBUF, -3, "output buffer too small")                              \
    X(ETRUNCATED, -4, "input ends too early")                             \
    X(EVARINT, -5, "malformed unsigned varint")                           \
    X(EMULTIBASE, -6, "malformed multibase text")                         \
    X(EMULTIHASH, -7, "malformed multihash")                              \
    X(ECID, -8, "malformed CID")                                          \
    X(EMULTIADDR, -9, "malformed multiaddr")                              \
    X(EPROTOUNKNOWN, -10, "unknown multiaddr protocol")                   \
    X(EKEY, -11, "malformed key")                                         \
    X(EKEYTYPE, -12, "unsupported key type")                              \
    X(ESIGNATURE, -13, "signature verification failed")                   \
    X(EPEERID, -14, "malformed peer ID")                                  \
    X(ECRYPTO, -15, "cryptographic library failure")                      \
    X(EIO, -16, "I/O error")                                              \
    X(EEXIST, -17, "already exists")                                      \
    X(ENOENT, -18, "not found")                                           \
    X(EPROTOBUF, -19, "malformed protobuf message")                       \
    X(ELIMIT, -20, "exceeds a limit")                                     \
    X(EAGAIN, -21, "try again")                                           \
    X(ECLOSED, -22, "closed")                                             \
    X(EPERM, -23, "permission denied")                                    \
    X(EUNSUPPORTED, -24, "not supported")                                 \
    X(ECONNREFUSED, -25, "connection refused")                            \
    X(ECONNRESET, -26, "connection reset by peer")                        \
    X(ETIMEDOUT, -27, "timed out")                                        \
    X(EMFILE, -28, "too many open files")                                 \
    X(EADDRINUSE, -29, "address in use")                                  \
    X(EUNREACHABLE, -30, "network or host unreachable")                   \
    X(ECANCELED, -31, "canceled")                                         \
    X(EPROTOCOL, -32, "protocol violation by peer")                       \
    X(ENEGOTIATION, -33, "no common protocol")                            \
    X(EAUTH, -34, "message authentication failed")                        \
    X(EPEERMISMATCH, -35, "remote peer ID differs from the expected one") \
    X(ESTREAMRESET, -36, "stream reset")                                  \
    X(EGOAWAY, -37, "session ended by the peer (go-away)")                \
    X(ECERT, -38, "invalid certificate")

enum ringp2p_error {
#define RINGP2P_ERROR_ENUM_(name, value, msg) RINGP2P_##name = (value),
    RINGP2P_ERRORS(RINGP2P_ERROR_ENUM_)
#undef RINGP2P_ERROR_ENUM_
};

/* A static string describing `code` (never NULL; unknown codes get a generic text). */
RINGP2P_API const char *ringp2p_strerror(int code);

/* The short symbolic name of `code`, e.g. "RINGP2P_EINVAL" (never NULL). */
RINGP2P_API const char *ringp2p_errname(int code);

#define RINGP2P_ERRINFO_MSG_MAX 256

/*
 * Detail of one failure, owned by the caller (usually on its stack). Functions
 * that take one fill it only when they fail; `msg` is NUL-terminated and
 * already includes the meaning of `code`.
 */
typedef struct ringp2p_errinfo {
    int code;
    char msg[RINGP2P_ERRINFO_MSG_MAX];
} ringp2p_errinfo;

#ifdef __cplusplus
}
#endif
#endif
