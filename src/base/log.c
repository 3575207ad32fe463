#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

#include "base/error.h"

const rp_logger rp_logger_off = { RINGP2P_LOG_OFF, ringp2p_log_stderr, NULL };

static const struct {
    const char *name;
    ringp2p_log_level level;
} level_names[] = {
    { "off", RINGP2P_LOG_OFF },      { "error", RINGP2P_LOG_ERROR }, { "warn", RINGP2P_LOG_WARN },
    { "info", RINGP2P_LOG_INFO },    { "debug", RINGP2P_LOG_DEBUG }, { "trace", RINGP2P_LOG_TRACE },
    { "warning", RINGP2P_LOG_WARN }, { "none", RINGP2P_LOG_OFF },
};

RINGP2P_API const char *ringp2p_log_level_name(ringp2p_log_level level)
{
    /* The canonical names come first in the table, so the first match is the one to print. */
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (level_names[i].level == level) return level_names[i].name;
    return "?";
}

RINGP2P_API int ringp2p_log_level_parse(const char *name, ringp2p_log_level *out,
                                        ringp2p_errinfo *ei)
{
    if (name == NULL) return rp_err(ei, RINGP2P_EINVAL, "log level name is NULL");
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(name, level_names[i].name) == 0) {
            *out = level_names[i].level;
            return 0;
        }
    }
    return rp_err(ei, RINGP2P_EINVAL,
                  "unknown log level '%.64s' (expected off, error, warn, info, debug or trace)",
                  name);
}

RINGP2P_API void ringp2p_log_stderr(void *ctx, ringp2p_log_level level, const char *module,
                                    const char *msg)
{
    /* Upper case so levels stand out when scanning a busy log. */
    static const char *const tags[] = { "ERROR", "WARN", "INFO", "DEBUG", "TRACE" };
    const char *tag =
        (level >= RINGP2P_LOG_ERROR && level <= RINGP2P_LOG_TRACE) ? tags[level] : "?";
    fprintf(stderr, "ringp2p %-5s [%s] %s\n", tag, module != NULL ? module : "-", msg);
}

void rp_logger_init(rp_logger *lg, ringp2p_log_level level, ringp2p_log_sink sink, void *ctx)
{
    lg->level = level;
    lg->sink = sink != NULL ? sink : ringp2p_log_stderr;
    lg->ctx = ctx;
}

void rp_log_emit(const rp_logger *lg, ringp2p_log_level level, const char *module, const char *fmt,
                 ...)
{
    char msg[RP_LOG_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n < 0) {
        snprintf(msg, sizeof(msg), "(unformattable log message)");
        n = 0;
    }
    size_t len = (size_t)n;
    if (len >= sizeof(msg)) {
        len = sizeof(msg) - 1;
        msg[len - 3] = msg[len - 2] = msg[len - 1] = '.';
    }
    /*
     * Messages quote peer-supplied strings (protocol ids, addresses); a control
     * character there could forge a log line or drive the terminal, so sinks
     * get a single line of text.
     */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)msg[i];
        if (c < 0x20 || c == 0x7f) msg[i] = '?';
    }
    lg->sink(lg->ctx, level, module, msg);
}
