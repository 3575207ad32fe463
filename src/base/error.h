/* Internal error helpers: the codes themselves are public (ringp2p/error.h). */
#ifndef RP_BASE_ERROR_H
#define RP_BASE_ERROR_H

#include "ringp2p/error.h"

/*
 * Records a failure in `ei` (which may be NULL) and returns `code`, so a
 * decoder's single error exit reads `return rp_err(ei, RINGP2P_EMULTIADDR,
 * "port %lu out of range", v);`. The message is formatted as
 * "<fmt>" when fmt is not NULL, else the code's generic message.
 */
int rp_err(ringp2p_errinfo *ei, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Propagate-if-negative, for chains of calls that return codes or counts. */
#define RP_TRY(expr)                              \
    do {                                          \
        long rp_try_r_ = (long)(expr);            \
        if (rp_try_r_ < 0) return (int)rp_try_r_; \
    } while (0)

#endif
