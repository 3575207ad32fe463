/*
 * Logging: levels and the sink a node writes its log lines to.
 *
 * There is no global logger. Each node carries its own level and sink, so two
 * nodes in one process can log to different places at different levels. The
 * sink may be called concurrently from every shard thread of a node and must
 * not call back into ringp2p.
 */
#ifndef RINGP2P_LOG_H
#define RINGP2P_LOG_H

#include "ringp2p/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A message of level L is emitted when L <= the configured level. */
typedef enum ringp2p_log_level {
    RINGP2P_LOG_OFF = -1, /* as a configured level: emit nothing */
    RINGP2P_LOG_ERROR = 0,
    RINGP2P_LOG_WARN = 1,
    RINGP2P_LOG_INFO = 2,
    RINGP2P_LOG_DEBUG = 3,
    RINGP2P_LOG_TRACE = 4,
} ringp2p_log_level;

/*
 * Receives one formatted line. `module` ("yamux", "tcp", ...) and `msg`
 * (NUL-terminated, no trailing newline) are borrowed for the duration of the
 * call only. Called from whichever thread logged, possibly several at once.
 */
typedef void (*ringp2p_log_sink)(void *ctx, ringp2p_log_level level, const char *module,
                                 const char *msg);

/* "error", "warn", "info", "debug", "trace" or "off" (static); "?" for other values. */
RINGP2P_API const char *ringp2p_log_level_name(ringp2p_log_level level);

/*
 * Parses a level name as printed by ringp2p_log_level_name, case-insensitive;
 * "warning" and "none" are accepted too. Errors: RINGP2P_EINVAL (NULL or
 * unknown name, which `ei` quotes).
 */
RINGP2P_API int ringp2p_log_level_parse(const char *name, ringp2p_log_level *out,
                                        ringp2p_errinfo *ei);

/*
 * The default sink: writes "ringp2p LEVEL [module] msg\n" to stderr in one
 * stdio call, so lines from different threads do not interleave. `ctx` is
 * unused.
 */
RINGP2P_API void ringp2p_log_stderr(void *ctx, ringp2p_log_level level, const char *module,
                                    const char *msg);

#ifdef __cplusplus
}
#endif
#endif
