/* Shared helpers of the ringp2p command-line tool: flags, JSON, hex, errors. */
#ifndef RINGP2P_TOOL_CLI_H
#define RINGP2P_TOOL_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ringp2p/ringp2p.h"

/* Exit codes: 0 success, 1 the operation failed, 2 bad usage. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* One flag a command accepts; `value` is set for flags that take one, `set` for switches. */
typedef struct cli_flag {
    const char *name; /* without the leading "--" */
    bool takes_value;
    const char *help;
    const char *value;
    bool set;
} cli_flag;

typedef struct cli_cmd {
    const char *name;
    const char *synopsis;
    const char *summary;
    int (*run)(const struct cli_cmd *cmd, cli_flag *flags, size_t nflags, char **args,
               size_t nargs);
    cli_flag *flags;
    size_t nflags;
    size_t min_args, max_args;
} cli_cmd;

/*
 * Parses argv against cmd's flags ("--name value", "--name=value", "--"
 * ends flags), collecting positional arguments into args (argv storage).
 * Prints the reason and returns CLI_USAGE on a bad command line; returns -1
 * after printing help if --help was given; else 0.
 */
int cli_parse(const cli_cmd *cmd, int argc, char **argv, char **args, size_t *nargs);

void cli_print_help(const cli_cmd *cmd, FILE *out);

cli_flag *cli_flag_get(cli_flag *flags, size_t n, const char *name);

/* Prints "ringp2p CMD: what: reason" to stderr and returns CLI_FAIL. */
int cli_fail(const char *cmd, const char *what, int code, const ringp2p_errinfo *ei);

/* Parses `value` of flag `flag` as a decimal integer in [lo, hi] into *out; prints
 * "ringp2p CMD: FLAG wants LO..HI" and returns CLI_USAGE otherwise. */
int cli_long(const char *cmd, const char *flag, const char *value, long lo, long hi, long *out);

/* Writes s as a JSON string literal (with quotes). */
void json_str(FILE *out, const char *s);

void hex_encode(const uint8_t *src, size_t len, char *dst);

/* Decodes hex (either case, even length); returns the byte count or -1. */
ssize_t hex_decode(const char *src, uint8_t *dst, size_t cap);

int cmd_keygen(const cli_cmd *cmd, cli_flag *flags, size_t nflags, char **args, size_t nargs);
int cmd_id(const cli_cmd *cmd, cli_flag *flags, size_t nflags, char **args, size_t nargs);
int cmd_addr(const cli_cmd *cmd, cli_flag *flags, size_t nflags, char **args, size_t nargs);
int cmd_listen(const cli_cmd *cmd, cli_flag *flags, size_t nflags, char **args, size_t nargs);
int cmd_ping(const cli_cmd *cmd, cli_flag *flags, size_t nflags, char **args, size_t nargs);
int cmd_identify(const cli_cmd *cmd, cli_flag *flags, size_t nflags, char **args, size_t nargs);
int cmd_stream(const cli_cmd *cmd, cli_flag *flags, size_t nflags, char **args, size_t nargs);
int cmd_perf(const cli_cmd *cmd, cli_flag *flags, size_t nflags, char **args, size_t nargs);

#endif
