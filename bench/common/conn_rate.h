/*
 * Connection and stream rates of the ringp2p host, and the crypto ceilings
 * they are compared with.
 *
 * A server node runs in a child process (`rp_rate_serve`, reached through a
 * benchmark's hidden --serve flag) so each side has its own process, as two
 * libp2p nodes have; the client node runs in the benchmark's process.
 *
 * Handshakes: the public API reuses the connection to a peer, except when the
 * address names no peer: ringp2p_node_new_stream to a bare /ip4/../tcp/..
 * address dials a new connection every time (node.h: "without it, any peer
 * there is accepted"). So the client opens streams to the bare address,
 * keeping `inflight` dials in flight, and counts its CONNECTED events (TCP +
 * security + muxer done). Each connection then does what every libp2p
 * connection does (identify both ways) and opens one stream; that work runs
 * while later handshakes do and is part of the CPU measured. The public API
 * cannot close a connection, so a round holds all its connections until its
 * node stops: rounds are bounded (`conns`), and the next round starts only
 * after the server has closed the previous round's connections.
 *
 * Streams: one connection, `inflight` streams in flight; each is a real
 * stream (yamux open, multistream-select of RP_RATE_PROTOCOL, half-close by
 * both sides), and a new one is opened from the completion callback of the
 * last.
 */
#ifndef RP_BENCH_CONN_RATE_H
#define RP_BENCH_CONN_RATE_H

#include <sched.h>
#include <stddef.h>
#include <sys/types.h>

#include "ringp2p/error.h"

/* The protocol the server speaks for stream rounds: the server half-closes after the client. */
#define RP_RATE_PROTOCOL "/ringp2p/bench/open-close/1.0.0"
/* Limits of the knobs (the yamux outbound backlog is 256; the shard inbox 1024 messages). */
#define RP_RATE_INFLIGHT_MAX 256
#define RP_RATE_ADDR_MAX     256

/* ---- the server process ----------------------------------------------------------------- */

/*
 * Body of the child: a node with security list `security` and `shards`
 * shards, listening on 127.0.0.1, serving RP_RATE_PROTOCOL. Prints
 * "ready MADDR" (MADDR ends in /p2p/<id>) on stdout, then runs until its
 * stdin reaches end of file. Returns an exit status.
 */
int rp_rate_serve(const char *security, unsigned shards);

typedef struct rp_rate_server {
    pid_t pid;
    int in_fd;                       /* its stdin: closing it stops the server */
    char addr[RP_RATE_ADDR_MAX];     /* /ip4/127.0.0.1/tcp/PORT/p2p/ID */
    char tcp_addr[RP_RATE_ADDR_MAX]; /* the same without /p2p/ID */
} rp_rate_server;

/*
 * Starts `argv0 args[0..nargs)` (argv0 a path to a benchmark that calls
 * rp_rate_serve for those arguments), confined to `cpus` when not NULL, and
 * waits for its ready line. RINGP2P_EIO with the child's output in `ei` if it
 * does not get ready.
 */
int rp_rate_server_start(const char *argv0, const char *const *args, size_t nargs,
                         const cpu_set_t *cpus, rp_rate_server *out, ringp2p_errinfo *ei);

/* Closes its stdin and reaps it (killed after a few seconds). */
void rp_rate_server_stop(rp_rate_server *srv);

/* ---- rounds ----------------------------------------------------------------------------- */

typedef struct rp_rate_config {
    const rp_rate_server *server;
    const char *security;  /* the client's list, e.g. "noise" */
    unsigned count;        /* handshakes: connections per round */
    double seconds;        /* streams: how long new streams are started */
    unsigned inflight;     /* dials or streams in flight, 1..RP_RATE_INFLIGHT_MAX */
    unsigned shards;       /* of the client node */
    const cpu_set_t *cpus; /* where the client node's shards run; NULL: inherit */
    double timeout;        /* seconds before a round is abandoned as failed */
} rp_rate_config;

/* One round. cpu_* are CPU-seconds of each process over the round. */
typedef struct rp_rate_result {
    double count;   /* connections or streams completed */
    double seconds; /* from the first start to the last completion */
    double cpu_client, cpu_server;
} rp_rate_result;

/* Per second, and CPU-microseconds per item for both processes together (NAN if unknown). */
double rp_rate_per_second(const rp_rate_result *r);
double rp_rate_cpu_us(const rp_rate_result *r);

/* A round of new connections (see the top of this file). Errors fail the round, with `ei`. */
int rp_rate_handshakes(const rp_rate_config *cfg, rp_rate_result *out, ringp2p_errinfo *ei);

/* A round of streams on one connection. */
int rp_rate_streams(const rp_rate_config *cfg, rp_rate_result *out, ringp2p_errinfo *ei);

/* 0 if a node accepts `name` as its security list, else the reason in `ei`. */
int rp_rate_security_available(const char *name, ringp2p_errinfo *ei);

/* ---- crypto ceilings -------------------------------------------------------------------- */

/* One thread's CPU-microseconds per operation of the primitives a Noise XX connection uses. */
typedef struct rp_rate_primitives {
    double x25519_keypair_us; /* a fresh key pair: one base-point multiplication */
    double x25519_dh_us;
    double ed25519_sign_us;
    double ed25519_verify_us;
} rp_rate_primitives;

/* Measures each primitive for about `seconds` of CPU. */
void rp_rate_measure_primitives(double seconds, rp_rate_primitives *out);

/*
 * One core's AEAD speed on the record sizes the transports use, GB/s (10^9
 * bytes of payload per CPU-second): ChaCha20-Poly1305 (Noise) on 65519-byte
 * records, AES-256-GCM (TLS) on 16384-byte records, and signed mode's
 * AES-256-GCM tag over a 65519-byte message (no encryption).
 */
typedef struct rp_rate_aead {
    double chacha_seal, chacha_open;
    double gcm_seal, gcm_open;
    double gmac_tag, gmac_verify;
} rp_rate_aead;

/* Measures each for about seconds / 6 of CPU. */
void rp_rate_measure_aead(double seconds, rp_rate_aead *out);

/*
 * The host's security handshake `security` ("noise", "tls", ...) between two
 * sessions in memory, both sides on this thread, through the same vtable the
 * host drives (no sockets, no multistream, no muxer): CPU-microseconds per
 * complete pair (initiator + responder), repeated for about `seconds`. Each
 * handshake is checked (both sides must learn the other's peer ID).
 */
int rp_rate_handshake_pair_us(const char *security, double seconds, double *us,
                              ringp2p_errinfo *ei);

#endif
