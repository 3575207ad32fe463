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

#define DIAL_FLAGS                                                                                \
    { "key", true, "identity key file (default: a fresh Ed25519 key)", NULL, false },             \
        { "security", true,                                                                       \
          "security preference, comma-separated: noise, tls, signed, plaintext (default "         \
          "noise,tls)",                                                                           \
          NULL, false },                                                                          \
        { "muxer", true, "stream muxers, comma-separated (yamux)", NULL, false },                 \
        { "timeout", true, "seconds for the dial, upgrade and each reply (default 10)", NULL,     \
          false },                                                                                \
        { "no-relay", false,                                                                      \
          "no circuit relay client: no dialing through relays (/p2p-circuit addresses fail) "     \
          "and no relayed connections accepted",                                                  \
          NULL, false },                                                                          \
        { "no-dcutr", false, "no hole punching (DCUtR) over relayed connections (on by default)", \
          NULL, false },                                                                          \
        { "dcutr-allow-private", false,                                                           \
          "hole punching also offers and dials private and unroutable IPs (10/8, "                \
          "192.168/16, 203.0.113/24, ...): for private networks and tests",                       \
          NULL, false },                                                                          \
    {                                                                                             \
        "json", false, "JSON lines on stdout", NULL, false                                        \
    }

static cli_flag listen_flags[] = {
    DIAL_FLAGS,
    { "listen", true, "listen multiaddr; repeat or comma-separate (default /ip4/127.0.0.1/tcp/0)",
      NULL, false },
    { "shards", true, "shard threads (default: one per CPU)", NULL, false },
    { "relay", true,
      "reserve a slot on this circuit relay (multiaddr with /p2p/) and advertise the circuit "
      "address while it is held; repeat or comma-separate",
      NULL, false },
    { "relay-server", false,
      "serve circuit relay v2 (hop): reservations and relayed connections, with go-libp2p's "
      "default limits (2 min and 128 KiB each way per relayed connection)",
      NULL, false },
    { "autonat-server", false,
      "serve AutoNAT v1 (/libp2p/autonat/1.0.0): dial peers back on the addresses they ask "
      "about, only on the IP they connect from, on a new connection; 3 per peer, 30 in all "
      "per minute",
      NULL, false },
    { "autonat-allow-private", false,
      "AutoNAT also counts and dials private and unroutable IPs (10/8, 172.16/12, 192.168/16, "
      "127/8, 100.64/10, 203.0.113/24, ...): for private networks and tests",
      NULL, false },
    { "autonat-dial-timeout", true,
      "seconds the AutoNAT server's dial-back may take; a failure is answered only after it "
      "(default 15, go-libp2p's; shorter for tests)",
      NULL, false },
    { "no-autonat", false,
      "do not ask AutoNAT servers whether this node is reachable (asked by default)", NULL, false },
    { "connect", true,
      "connect to this peer (full multiaddr with /p2p/) once started and stay connected; "
      "repeat or comma-separate",
      NULL, false },
};

#define DIALER_LISTEN_FLAG                                                                     \
    {                                                                                          \
        "listen", true,                                                                        \
            "also listen on this multiaddr (so the peer can reach back, e.g. to hole-punch); " \
            "repeat or comma-separate",                                                        \
            NULL, false                                                                        \
    }

static cli_flag ping_flags[] = {
    DIAL_FLAGS,
    { "count", true, "pings to send (default 3)", NULL, false },
    { "interval", true, "seconds between pings (default 1)", NULL, false },
    DIALER_LISTEN_FLAG,
};

static cli_flag identify_flags[] = { DIAL_FLAGS };
static cli_flag stream_flags[] = {
    DIAL_FLAGS,
    DIALER_LISTEN_FLAG,
    { "repeat", true,
      "read all of stdin first, then open N streams one after another on one connection, each "
      "sent that payload and half-closed at once, their echoes to stdout in turn; streams "
      "after the first wait (up to --timeout) for the peer's identify, so a protocol it lists "
      "opens lazily, its bytes with the proposal",
      NULL, false },
};

static cli_flag perf_flags[] = {
    DIAL_FLAGS,
    { "upload", true,
      "bytes to send per stream; suffixes K, M, G, T are powers of 1024 (default 1G)", NULL,
      false },
    { "download", true, "bytes to ask for per stream, same suffixes (default 0)", NULL, false },
    { "streams", true, "concurrent streams, spread over the connections (default: --conns)", NULL,
      false },
    { "conns", true,
      "connections, one client node each (1 shard, fresh identity or --key); default 1, max 64",
      NULL, false },
    { "progress", false, "draw the live progress line on stderr even when it is not a terminal",
      NULL, false },
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
      "[--relay-server] [--autonat-server] [--autonat-allow-private]\n"
      "       [--autonat-dial-timeout SEC] [--no-autonat] [--connect MADDR]... [--relay MADDR]...\n"
      "       [--no-relay] [--json]",
      "Runs a node serving identify (+push), ping, echo and perf until SIGINT or SIGTERM;\n"
      "with --relay-server also a circuit relay v2 relay (/libp2p/circuit/relay/0.2.0/hop),\n"
      "with --autonat-server an AutoNAT v1 server. Unless --no-autonat, the node asks connected\n"
      "AutoNAT servers whether it is reachable and prints each change of its reachability:\n"
      "{\"event\":\"reachability\",\"status\":\"public\"|\"private\"|\"unknown\"} with --json.\n"
      "With --json the first line is {\"event\":\"ready\",...}, then one line per event;\n"
      "a relay adds {\"event\":\"relay-reservation\",\"peerId\",\"expires\"} per reservation\n"
      "made or renewed and {\"event\":\"relay-circuit\",\"src\",\"dst\",\"bytes\",\"bytesToDst\",\n"
      "\"bytesToSrc\",\"durationMs\",\"reason\"} per relayed connection when it ends.\n"
      "With --relay the node reserves a slot on that relay and, while it holds it, advertises\n"
      "RELAY/p2p-circuit (peers reach it through the relay); each answer, renewal, refusal\n"
      "or loss prints {\"event\":\"reservation\",\"relay\",\"ok\",\"expires\",\"addrs\"}\n"
      "(\"lost\" and \"error\" instead when not ok). \"connection\" events say \"relayed\".\n"
      "Over a relayed connection it received, the node hole-punches (DCUtR, unless --no-dcutr)\n"
      "and prints "
      "{\"event\":\"holepunch\",\"peerId\",\"ok\",\"attempts\",\"rttUs\",\"initiator\"}\n"
      "(\"error\" when not ok); on success new streams take the direct connection and the\n"
      "relayed one closes once idle.",
      cmd_listen, listen_flags, NFLAGS(listen_flags), 0, 0 },
    { "ping",
      "ping MADDR [--count N] [--interval SEC] [--json] [--key FILE] [--timeout SEC] "
      "[--listen MADDR]... [--no-relay] [--no-dcutr] [--dcutr-allow-private]",
      "Pings a peer over /ipfs/ping/1.0.0, one stream per ping; exits 0 only if every ping was\n"
      "answered. MADDR may be RELAY/p2p-circuit/p2p/PEER; each ping line says whether it went\n"
      "over a relayed or a direct connection (\"relayed\" in JSON). With --listen the peer\n"
      "can hole-punch to this node (DCUtR): each exchange it answers prints a \"holepunch\"\n"
      "event, and once one succeeds the next pings go direct.",
      cmd_ping, ping_flags, NFLAGS(ping_flags), 1, 1 },
    { "identify", "identify MADDR [--json] [--key FILE] [--timeout SEC]",
      "Asks a peer for its identify record and prints it.", cmd_identify, identify_flags,
      NFLAGS(identify_flags), 1, 1 },
    { "stream",
      "stream MADDR PROTOCOL [--key FILE] [--timeout SEC] [--listen MADDR]... [--no-relay] "
      "[--repeat N]",
      "netcat for libp2p: stdin into a new stream (half-closed at EOF), the stream to stdout.\n"
      "With --repeat N, stdin is read whole and sent on N streams in turn (see the flag).\n"
      "Exits 0 only if every stream ended cleanly.",
      cmd_stream, stream_flags, NFLAGS(stream_flags), 2, 2 },
    { "perf",
      "perf MADDR [--upload SIZE] [--download SIZE] [--streams N] [--conns N] [--security LIST] "
      "[--muxer LIST] [--json] [--progress]",
      "Measures throughput with /perf/1.0.0: each stream uploads --upload bytes, then receives\n"
      "--download bytes. A terminal (or --progress) gets a live progress line on stderr: bytes\n"
      "so far and the rate over the last second. The summary goes to stdout, with --json as one\n"
      "line {\"event\":\"perf\",\"uploadBytes\",\"downloadBytes\",\"seconds\",\"uploadMBps\",\n"
      "\"downloadMBps\",...} (MB = 10^6 bytes), all measured at this client. seconds is the\n"
      "whole run, dial included. uploadMBps is upload bytes / upload time and downloadMBps\n"
      "download bytes / download time. A stream's upload phase runs from its open until the\n"
      "server has read all of it (its first download byte, or its close if nothing is\n"
      "downloaded); its download phase from that first byte to its close. With several streams\n"
      "each phase runs from its earliest start to its latest end over all streams, so when one\n"
      "stream downloads while another still uploads, that time counts in both phases.\n"
      "--timeout also bounds a stall. Exits 0 only if every stream moved exactly the bytes asked.",
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
        /* --listen, --connect and --relay may repeat: join every value with commas (cli_parse
         * keeps the last). */
        static const char *const repeated[3] = { "listen", "connect", "relay" };
        char joined[3][4096] = { "", "", "" };
        for (int k = 0; k < 3; k++) {
            if (cli_flag_get(cmd->flags, cmd->nflags, repeated[k]) == NULL) continue;
            size_t nl = strlen(repeated[k]);
            for (int a = 2; a < argc; a++) {
                const char *v = NULL;
                if (strcmp(argv[a], "--") == 0) break;
                if (strncmp(argv[a], "--", 2) == 0 && strncmp(argv[a] + 2, repeated[k], nl) == 0) {
                    const char *rest = argv[a] + 2 + nl;
                    if (*rest == 0 && a + 1 < argc)
                        v = argv[++a];
                    else if (*rest == '=')
                        v = rest + 1;
                }
                if (v == NULL) continue;
                size_t l = strlen(joined[k]);
                snprintf(joined[k] + l, sizeof(joined[k]) - l, "%s%s", l ? "," : "", v);
            }
            if (joined[k][0] != 0)
                cli_flag_get(cmd->flags, cmd->nflags, repeated[k])->value = joined[k];
        }
        return cmd->run(cmd, cmd->flags, cmd->nflags, args, nargs);
    }
    fprintf(stderr, "ringp2p: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return CLI_USAGE;
}
