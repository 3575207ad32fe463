/* ringp2p: the command-line face of the library. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static cli_flag keygen_flags[] = {
    { "type", true, "key type: ed25519 (default), secp256k1, ecdsa (P-256) or rsa (2048 bits)",
      NULL, false },
    { "out", true, "file to write (libp2p protobuf PrivateKey bytes, mode 0600); required", NULL,
      false },
    { "force", false, "replace FILE if it exists", NULL, false },
    { "json", false, "print {\"peerId\",\"cid\",\"keyType\",\"file\"} as one JSON line", NULL,
      false },
};

static cli_flag id_flags[] = {
    { "key", true, "key file to read; without it a fresh ephemeral Ed25519 key is shown", NULL,
      false },
    { "json", false, "print {\"peerId\",\"cid\",\"keyType\"} as one JSON line", NULL, false },
};

static cli_flag addr_flags[] = {
    { "hex", true, "decode this binary multiaddr (hex) instead of TEXT", NULL, false },
    { "json", false, "print {\"hex\",\"text\",\"components\":[...]} as one JSON line", NULL,
      false },
};

#define DIAL_FLAGS                                                                            \
    { "key", true, "identity key file (default: a fresh Ed25519 key)", NULL, false },         \
        { "security", true,                                                                   \
          "security preference, comma-separated: noise (default), signed, plaintext", NULL,   \
          false },                                                                            \
        { "muxer", true, "stream muxers, comma-separated (yamux)", NULL, false },             \
        { "timeout", true, "seconds for the dial, upgrade and each reply (default 10)", NULL, \
          false },                                                                            \
    {                                                                                         \
        "json", false, "JSON lines on stdout", NULL, false                                    \
    }

static cli_flag listen_flags[] = {
    DIAL_FLAGS,
    { "listen", true, "listen multiaddr; repeat or comma-separate (default /ip4/127.0.0.1/tcp/0)",
      NULL, false },
    { "shards", true, "shard threads (default: one per CPU)", NULL, false },
};

static cli_flag ping_flags[] = {
    DIAL_FLAGS,
    { "count", true, "pings to send (default 3)", NULL, false },
    { "interval", true, "seconds between pings (default 1)", NULL, false },
};

static cli_flag identify_flags[] = { DIAL_FLAGS };
static cli_flag stream_flags[] = { DIAL_FLAGS };

static cli_flag perf_flags[] = {
    DIAL_FLAGS,
    { "upload", true,
      "bytes to send per stream; suffixes K, M, G, T are powers of 1024 (default 1G)", NULL,
      false },
    { "download", true, "bytes to ask for per stream, same suffixes (default 0)", NULL, false },
    { "streams", true, "concurrent streams on the one connection (default 1)", NULL, false },
};

#define NFLAGS(a) (sizeof(a) / sizeof((a)[0]))

static const cli_cmd commands[] = {
    { "keygen", "keygen [--type TYPE] --out FILE [--force] [--json]",
      "Generates a private key and writes it as libp2p protobuf PrivateKey bytes, the key file\n"
      "format of go-libp2p and js-libp2p. Prints the new peer ID.",
      cmd_keygen, keygen_flags, NFLAGS(keygen_flags), 0, 0 },
    { "id", "id [--key FILE] [--json]",
      "Prints the peer ID of a key file, in base58btc and as a CIDv1 (libp2p-key, base32).", cmd_id,
      id_flags, NFLAGS(id_flags), 0, 0 },
    { "addr", "addr [--json] TEXT | addr [--json] --hex HEX",
      "Parses a multiaddr and prints its canonical text, its binary form in hex and its\n"
      "components. A bad address exits 1 with the reason on stderr.",
      cmd_addr, addr_flags, NFLAGS(addr_flags), 0, 1 },
    { "listen",
      "listen [--key FILE] [--listen MADDR]... [--security LIST] [--muxer LIST] [--shards N] "
      "[--json]",
      "Runs a node serving identify (+push), ping, echo and perf until SIGINT or SIGTERM.\n"
      "With --json the first line is {\"event\":\"ready\",...}, then one line per event.",
      cmd_listen, listen_flags, NFLAGS(listen_flags), 0, 0 },
    { "ping", "ping MADDR [--count N] [--interval SEC] [--json] [--key FILE] [--timeout SEC]",
      "Pings a peer over /ipfs/ping/1.0.0; exits 0 only if every ping was answered.", cmd_ping,
      ping_flags, NFLAGS(ping_flags), 1, 1 },
    { "identify", "identify MADDR [--json] [--key FILE] [--timeout SEC]",
      "Asks a peer for its identify record and prints it.", cmd_identify, identify_flags,
      NFLAGS(identify_flags), 1, 1 },
    { "stream", "stream MADDR PROTOCOL [--key FILE] [--timeout SEC]",
      "netcat for libp2p: stdin into a new stream (half-closed at EOF), the stream to stdout.\n"
      "Exits 0 only if the stream ended cleanly.",
      cmd_stream, stream_flags, NFLAGS(stream_flags), 2, 2 },
    { "perf",
      "perf MADDR [--upload SIZE] [--download SIZE] [--streams N] [--security LIST] [--muxer LIST] "
      "[--json]",
      "Measures throughput with /perf/1.0.0: each stream uploads --upload bytes, then receives\n"
      "--download bytes. A terminal gets a live progress line on stderr; the summary goes to "
      "stdout,\n"
      "with --json as one line {\"event\":\"perf\",\"uploadBytes\",\"downloadBytes\",\"seconds\",\n"
      "\"uploadMBps\",\"downloadMBps\"} (MB = 10^6 bytes). --timeout also bounds a stall.\n"
      "Exits 0 only if every stream moved exactly the bytes asked.",
      cmd_perf, perf_flags, NFLAGS(perf_flags), 1, 1 },
};

static void usage(FILE *out)
{
    fprintf(out, "usage: ringp2p [--version] [--help] COMMAND [FLAGS] [ARGS]\n\n"
                 "libp2p on io_uring. Commands:\n");
    for (size_t i = 0; i < NFLAGS(commands); i++) {
        const char *nl = strchr(commands[i].summary, '\n');
        int len = nl ? (int)(nl - commands[i].summary) : (int)strlen(commands[i].summary);
        fprintf(out, "  %-8s %.*s\n", commands[i].name, len, commands[i].summary);
    }
    fprintf(out, "\n'ringp2p COMMAND --help' describes a command and all its flags.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        if (argc >= 3) {
            for (size_t i = 0; i < NFLAGS(commands); i++)
                if (strcmp(argv[2], commands[i].name) == 0) {
                    cli_print_help(&commands[i], stdout);
                    return CLI_OK;
                }
        }
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("ringp2p %s\n", ringp2p_version());
        return CLI_OK;
    }
    for (size_t i = 0; i < NFLAGS(commands); i++) {
        const cli_cmd *cmd = &commands[i];
        if (strcmp(argv[1], cmd->name) != 0) continue;
        char *args[4];
        size_t nargs;
        int r = cli_parse(cmd, argc - 2, argv + 2, args, &nargs);
        if (r < 0) return CLI_OK; /* --help was printed */
        if (r > 0) return r;
        /* --listen may repeat: join every value with commas (cli_parse keeps the last). */
        char joined[4096] = "";
        if (cmd->run == cmd_listen) {
            for (int a = 2; a < argc; a++) {
                const char *v = NULL;
                if (strcmp(argv[a], "--") == 0) break;
                if (strcmp(argv[a], "--listen") == 0 && a + 1 < argc)
                    v = argv[++a];
                else if (strncmp(argv[a], "--listen=", 9) == 0)
                    v = argv[a] + 9;
                if (v == NULL) continue;
                size_t l = strlen(joined);
                snprintf(joined + l, sizeof(joined) - l, "%s%s", l ? "," : "", v);
            }
            if (joined[0] != 0) cli_flag_get(cmd->flags, cmd->nflags, "listen")->value = joined;
        }
        return cmd->run(cmd, cmd->flags, cmd->nflags, args, nargs);
    }
    fprintf(stderr, "ringp2p: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return CLI_USAGE;
}
