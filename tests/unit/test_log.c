#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <string.h>

#include "base/log.h"
#include "ringp2p/ringp2p.h"

typedef struct capture {
    int calls;
    ringp2p_log_level level;
    char module[32];
    char msg[RP_LOG_MSG_MAX + 16];
} capture;

static void capture_sink(void *ctx, ringp2p_log_level level, const char *module, const char *msg)
{
    capture *c = ctx;
    c->calls++;
    c->level = level;
    snprintf(c->module, sizeof(c->module), "%s", module);
    snprintf(c->msg, sizeof(c->msg), "%s", msg);
}

static int bump(int *n)
{
    return ++*n;
}

Test(log, filtering_by_level)
{
    static const ringp2p_log_level levels[] = { RINGP2P_LOG_OFF,   RINGP2P_LOG_ERROR,
                                                RINGP2P_LOG_WARN,  RINGP2P_LOG_INFO,
                                                RINGP2P_LOG_DEBUG, RINGP2P_LOG_TRACE };
    for (size_t cfg = 0; cfg < sizeof(levels) / sizeof(levels[0]); cfg++) {
        for (size_t msg = 1; msg < sizeof(levels) / sizeof(levels[0]); msg++) {
            capture c = { 0 };
            rp_logger lg;
            rp_logger_init(&lg, levels[cfg], capture_sink, &c);
            rp_logf(&lg, levels[msg], "mod", "m%d", 1);
            int want = levels[msg] <= levels[cfg];
            cr_assert_eq(c.calls, want, "configured %s, message %s: %d calls",
                         ringp2p_log_level_name(levels[cfg]), ringp2p_log_level_name(levels[msg]),
                         c.calls);
            if (want) cr_assert_eq(c.level, levels[msg]);
        }
    }
}

Test(log, filtered_message_is_not_formatted)
{
    capture c = { 0 };
    rp_logger lg;
    rp_logger_init(&lg, RINGP2P_LOG_WARN, capture_sink, &c);
    int side_effects = 0;
    rp_log_debug(&lg, "mod", "%d", bump(&side_effects));
    rp_log_trace(&lg, "mod", "%d", bump(&side_effects));
    cr_assert_eq(side_effects, 0, "arguments of a filtered message were evaluated");
    cr_assert_eq(c.calls, 0);
    rp_log_warn(&lg, "mod", "%d", bump(&side_effects));
    cr_assert_eq(side_effects, 1);
    cr_assert_str_eq(c.msg, "1");

    /* The logger expression is evaluated once even when the message is emitted. */
    rp_logger *arr[2] = { &lg, NULL };
    size_t i = 0;
    rp_log_error(arr[i++], "mod", "x");
    cr_assert_eq(i, 1);
    cr_assert_eq(c.calls, 2);

    side_effects = 0;
    rp_log_error(&rp_logger_off, "mod", "%d", bump(&side_effects));
    cr_assert_eq(side_effects, 0, "rp_logger_off formats nothing");
}

Test(log, formatting_and_module)
{
    capture c = { 0 };
    rp_logger lg;
    rp_logger_init(&lg, RINGP2P_LOG_TRACE, capture_sink, &c);
    rp_log_info(&lg, "yamux", "stream %u: window %s -> %lu", 7u, "256KiB", 1048576ul);
    cr_assert_eq(c.calls, 1);
    cr_assert_eq(c.level, RINGP2P_LOG_INFO);
    cr_assert_str_eq(c.module, "yamux");
    cr_assert_str_eq(c.msg, "stream 7: window 256KiB -> 1048576");
}

Test(log, control_characters_are_neutralised)
{
    capture c = { 0 };
    rp_logger lg;
    rp_logger_init(&lg, RINGP2P_LOG_INFO, capture_sink, &c);
    /* A peer-chosen protocol id trying to forge a second log line and drive the terminal. */
    rp_log_info(&lg, "mss", "unknown protocol '%s'", "/x\nringp2p ERROR [host] pwned\x1b[2J\x7f");
    cr_assert_str_eq(c.msg, "unknown protocol '/x?ringp2p ERROR [host] pwned?[2J?'");
    /* UTF-8 passes untouched. */
    rp_log_info(&lg, "mss", "%s", "caf\xc3\xa9");
    cr_assert_str_eq(c.msg, "caf\xc3\xa9");
}

Test(log, long_message_truncated_with_marker)
{
    capture c = { 0 };
    rp_logger lg;
    rp_logger_init(&lg, RINGP2P_LOG_INFO, capture_sink, &c);
    char big[RP_LOG_MSG_MAX * 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    rp_log_info(&lg, "m", "%s", big);
    size_t len = strlen(c.msg);
    cr_assert_eq(len, RP_LOG_MSG_MAX - 1);
    cr_assert_str_eq(c.msg + len - 3, "...");
    cr_assert_eq(c.msg[len - 4], 'a');

    /* Exactly the largest message that fits has no marker. */
    big[RP_LOG_MSG_MAX - 1] = '\0';
    rp_log_info(&lg, "m", "%s", big);
    cr_assert_eq(strlen(c.msg), RP_LOG_MSG_MAX - 1);
    cr_assert_eq(c.msg[RP_LOG_MSG_MAX - 2], 'a');
}

Test(log, level_names_and_parse)
{
    static const struct {
        const char *text;
        int ok;
        ringp2p_log_level level;
        const char *canonical;
    } cases[] = {
        { "error", 1, RINGP2P_LOG_ERROR, "error" },
        { "WARN", 1, RINGP2P_LOG_WARN, "warn" },
        { "Warning", 1, RINGP2P_LOG_WARN, "warn" },
        { "info", 1, RINGP2P_LOG_INFO, "info" },
        { "debug", 1, RINGP2P_LOG_DEBUG, "debug" },
        { "TRACE", 1, RINGP2P_LOG_TRACE, "trace" },
        { "off", 1, RINGP2P_LOG_OFF, "off" },
        { "none", 1, RINGP2P_LOG_OFF, "off" },
        { "", 0, 0, NULL },
        { "inf", 0, 0, NULL },
        { "infos", 0, 0, NULL },
        { "3", 0, 0, NULL },
        { " info", 0, 0, NULL },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ringp2p_log_level lv = (ringp2p_log_level)99;
        ringp2p_errinfo ei = { 0 };
        int rc = ringp2p_log_level_parse(cases[i].text, &lv, &ei);
        if (cases[i].ok) {
            cr_assert_eq(rc, 0, "'%s'", cases[i].text);
            cr_assert_eq(lv, cases[i].level, "'%s'", cases[i].text);
            cr_assert_str_eq(ringp2p_log_level_name(lv), cases[i].canonical);
        } else {
            cr_assert_eq(rc, RINGP2P_EINVAL, "'%s' must be rejected", cases[i].text);
            cr_assert_eq(lv, (ringp2p_log_level)99, "out untouched on error");
            cr_assert_eq(ei.code, RINGP2P_EINVAL);
            cr_assert_not_null(strstr(ei.msg, "unknown log level"), "%s", ei.msg);
        }
    }
    ringp2p_log_level lv;
    cr_assert_eq(ringp2p_log_level_parse(NULL, &lv, NULL), RINGP2P_EINVAL);
    cr_assert_str_eq(ringp2p_log_level_name((ringp2p_log_level)17), "?");
}

Test(log, stderr_sink_format, .init = cr_redirect_stderr)
{
    rp_logger lg;
    rp_logger_init(&lg, RINGP2P_LOG_DEBUG, NULL, NULL);
    cr_assert_eq(lg.sink, ringp2p_log_stderr, "NULL sink selects stderr");
    rp_log_warn(&lg, "tcp", "dial %s failed: %d", "/ip4/1.2.3.4/tcp/1", -16);
    rp_log_debug(&lg, "noise", "handshake done");
    rp_log_trace(&lg, "noise", "filtered");
    ringp2p_log_stderr(NULL, RINGP2P_LOG_ERROR, NULL, "no module");
    fflush(stderr);
    cr_assert_stderr_eq_str("ringp2p WARN  [tcp] dial /ip4/1.2.3.4/tcp/1 failed: -16\n"
                            "ringp2p DEBUG [noise] handshake done\n"
                            "ringp2p ERROR [-] no module\n");
}
