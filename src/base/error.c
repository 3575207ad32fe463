#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>

RINGP2P_API const char *ringp2p_strerror(int code)
{
    switch (code) {
#define RP_STRERROR_CASE_(name, value, msg) \
    case (value): return (msg);
        RINGP2P_ERRORS(RP_STRERROR_CASE_)
#undef RP_STRERROR_CASE_
    }
    return "unknown error";
}

RINGP2P_API const char *ringp2p_errname(int code)
{
    switch (code) {
#define RP_ERRNAME_CASE_(name, value, msg) \
    case (value): return "RINGP2P_" #name;
        RINGP2P_ERRORS(RP_ERRNAME_CASE_)
#undef RP_ERRNAME_CASE_
    }
    return "RINGP2P_E?";
}

int rp_err(ringp2p_errinfo *ei, int code, const char *fmt, ...)
{
    if (ei == NULL) return code;
    ei->code = code;
    if (fmt == NULL) {
        snprintf(ei->msg, sizeof(ei->msg), "%s", ringp2p_strerror(code));
        return code;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ei->msg, sizeof(ei->msg), fmt, ap);
    va_end(ap);
    return code;
}
