/*
 * Internal logging. A node owns one rp_logger; its components keep a
 * `const rp_logger *` to it. The logger is immutable once initialised, so
 * every shard thread reads it without synchronisation.
 *
 *     rp_logf(lg, RINGP2P_LOG_DEBUG, "yamux", "stream %u: window %u", id, w);
 *
 * rp_logf is a macro that compares the level first: a filtered-out message
 * costs one load and one branch, and its arguments are not evaluated.
 */
#ifndef RP_BASE_LOG_H
#define RP_BASE_LOG_H

#include "ringp2p/log.h"

/* Longest message passed to a sink, NUL included; longer ones end in "...". */
#define RP_LOG_MSG_MAX 1024

typedef struct rp_logger {
    ringp2p_log_level level;
    ringp2p_log_sink sink;
    void *ctx;
} rp_logger;

/* A logger that emits nothing, for components used without a node (tests, tools). */
extern const rp_logger rp_logger_off;

/*
 * Sets up `lg` (caller-owned storage). A NULL sink selects ringp2p_log_stderr.
 * `ctx` is passed to the sink unchanged and must outlive the logger.
 */
void rp_logger_init(rp_logger *lg, ringp2p_log_level level, ringp2p_log_sink sink, void *ctx);

/* Formats and delivers unconditionally; use rp_logf, which filters first. */
void rp_log_emit(const rp_logger *lg, ringp2p_log_level level, const char *module, const char *fmt,
                 ...) __attribute__((format(printf, 4, 5)));

/* `lg` must not be NULL (use &rp_logger_off) and is evaluated once. */
#define rp_logf(lg_, lv_, mod_, ...)                                          \
    do {                                                                      \
        const rp_logger *rp_logf_lg_ = (lg_);                                 \
        ringp2p_log_level rp_logf_lv_ = (lv_);                                \
        if (__builtin_expect((int)rp_logf_lv_ <= (int)rp_logf_lg_->level, 0)) \
            rp_log_emit(rp_logf_lg_, rp_logf_lv_, (mod_), __VA_ARGS__);       \
    } while (0)

#define rp_log_error(lg, module, ...) rp_logf((lg), RINGP2P_LOG_ERROR, (module), __VA_ARGS__)
#define rp_log_warn(lg, module, ...)  rp_logf((lg), RINGP2P_LOG_WARN, (module), __VA_ARGS__)
#define rp_log_info(lg, module, ...)  rp_logf((lg), RINGP2P_LOG_INFO, (module), __VA_ARGS__)
#define rp_log_debug(lg, module, ...) rp_logf((lg), RINGP2P_LOG_DEBUG, (module), __VA_ARGS__)
#define rp_log_trace(lg, module, ...) rp_logf((lg), RINGP2P_LOG_TRACE, (module), __VA_ARGS__)

#endif
