/*
 * Shared benchmark harness: wall and CPU clocks, iperf3 as a baseline,
 * interleaved rounds, medians, the comparison table and one-line JSON.
 *
 * A benchmark measures each case in rounds A B A B ..., so drift on a shared,
 * noisy machine hits every case alike, and reports medians with min and max.
 * Throughput is payload bytes that reached the receiver per wall second, in
 * GB/s (1 GB = 1e9 bytes); cost is CPU-seconds (user + system, both ends
 * together) per GB moved. A number is printed only if it was measured: a
 * missing measurement is NAN and prints as "-" or JSON null.
 */
#ifndef RP_BENCH_COMMON_H
#define RP_BENCH_COMMON_H

#include <sched.h>
#include <stddef.h>
#include <sys/resource.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "ringp2p/error.h"

/* Upper bounds that keep every harness array fixed-size. */
#define RP_BENCH_ROUNDS_MAX 101
#define RP_BENCH_JSON_MAX   (1 << 18)
#define RP_BENCH_DEPTH_MAX  8

/* Period of the same-CPU samples. */
#define RP_BENCH_SAMPLE_MS 50

/* How long a baseline process may run past its planned duration before it is killed. */
#define RP_BENCH_GRACE_SECONDS 15.0

/* ---- clocks ------------------------------------------------------------------------------ */

/* CLOCK_MONOTONIC in seconds. */
double rp_bench_now(void);

/* User + system CPU-seconds of this whole process (every thread), from getrusage. */
double rp_bench_self_cpu(void);

/*
 * CPU-seconds on a CPU-time clock, e.g. one from pthread_getcpuclockid() for a
 * thread other than the caller, or CLOCK_THREAD_CPUTIME_ID; NAN if unreadable.
 */
double rp_bench_clock_cpu(clockid_t clock);

/* The CPU thread or process `tid` last ran on (/proc/<tid>/stat), or -1. */
int rp_bench_task_cpu(pid_t tid);

/* Counts samples of whether two tasks sit on one CPU (see rp_bench_sample.same_cpu). */
typedef struct rp_bench_colo {
    unsigned samples, same;
} rp_bench_colo;

/* Takes one sample of tasks a and b; skipped if either CPU is unreadable. */
void rp_bench_colo_sample(rp_bench_colo *c, pid_t a, pid_t b);

/* The share of samples on one CPU, NAN if none was taken. */
double rp_bench_colo_share(const rp_bench_colo *c);

/* ---- one measurement --------------------------------------------------------------------- */

/* One round of one case. Fields not measured are NAN. */
typedef struct rp_bench_sample {
    double bytes;    /* payload bytes that arrived at the receiver */
    double seconds;  /* wall time over which they arrived */
    double cpu;      /* CPU-seconds spent by both ends together */
    double cpu_send; /* of which the sending end (NAN if not separable) */
    double cpu_recv; /* of which the receiving end (NAN if not separable) */
    /*
     * Share of samples (taken every RP_BENCH_SAMPLE_MS) in which the sending
     * and the receiving end were on the same CPU: on loopback, a receiver on
     * the sender's core copies cache-hot data, which changes throughput more
     * than any user-space cost. NAN when not sampled.
     */
    double same_cpu;
} rp_bench_sample;

/* A sample with every field NAN. */
rp_bench_sample rp_bench_sample_none(void);

/* GB/s, CPU-s per GB: NAN when an input is missing or zero. */
double rp_bench_gbps(const rp_bench_sample *s);
double rp_bench_cpu_per_gb(double cpu_seconds, double bytes);

/* ---- statistics -------------------------------------------------------------------------- */

typedef struct rp_bench_stat {
    double median, min, max; /* NAN when no value was measured */
    size_t n;                /* how many values were (NANs are skipped) */
} rp_bench_stat;

/* Order statistics of `v[0..n)`, skipping NANs; `v` is not modified. n <= RP_BENCH_ROUNDS_MAX. */
rp_bench_stat rp_bench_stat_of(const double *v, size_t n);

/* ---- cases and interleaved rounds -------------------------------------------------------- */

/*
 * Runs one round of a case and fills `out` (fields not measured stay NAN).
 * Returns 0, or a negative RINGP2P_E* code with the reason in `ei`.
 */
typedef int (*rp_bench_round_fn)(void *ctx, rp_bench_sample *out, ringp2p_errinfo *ei);

typedef struct rp_bench_case {
    const char *name;  /* JSON key, e.g. "ringp2p" (static storage) */
    const char *label; /* table label, e.g. "ringp2p, 1 TCP connection" (static storage) */
    rp_bench_round_fn round;
    void *ctx;
    size_t n; /* rounds recorded so far */
    rp_bench_sample samples[RP_BENCH_ROUNDS_MAX];
} rp_bench_case;

/*
 * Runs `rounds` rounds of every case interleaved (case 0, 1, ..., 0, 1, ...),
 * appending to each case's samples. With `log` not NULL, one line per round
 * goes there. Stops at the first failure and returns its code (message in
 * `ei`, prefixed with the case name).
 */
int rp_bench_interleave(rp_bench_case *cases, size_t ncases, size_t rounds, FILE *log,
                        ringp2p_errinfo *ei);

/* Medians over a case's rounds. */
typedef struct rp_bench_summary {
    rp_bench_stat gbps;
    rp_bench_stat cpu_per_gb;      /* both ends */
    rp_bench_stat send_cpu_per_gb; /* sending end alone */
    rp_bench_stat recv_cpu_per_gb; /* receiving end alone */
    rp_bench_stat same_cpu;        /* share of time both ends shared a CPU */
} rp_bench_summary;

rp_bench_summary rp_bench_summarize(const rp_bench_case *c);

/*
 * The median over rounds of case a's value divided by case b's in the same
 * round (rounds run back to back, so each pair saw nearly the same machine).
 * `cpu` selects CPU-s/GB instead of GB/s. NAN if no round has both values.
 */
double rp_bench_paired_ratio(const rp_bench_case *a, const rp_bench_case *b, int cpu);

/* ---- iperf3 ------------------------------------------------------------------------------ */

/*
 * One iperf3 run over loopback: `iperf3 -s -1` and `iperf3 -c 127.0.0.1 -N
 * -l LEN -t SECS -J`, each process placed where the scheduler likes unless
 * given CPUs (as `taskset -c` would).
 */
typedef struct rp_bench_iperf3 {
    const char *exe;              /* executable, looked up in PATH; NULL means "iperf3" */
    unsigned seconds;             /* -t (ignored when bytes is set) */
    unsigned long long bytes;     /* -n when not 0: a fixed amount instead of a duration */
    unsigned streams;             /* -P when > 1 */
    const char *len;              /* -l, e.g. "256K"; NULL means "256K" */
    const cpu_set_t *client_cpus; /* the sender; NULL: inherit ours */
    const cpu_set_t *server_cpus; /* the receiver; NULL: inherit ours */
} rp_bench_iperf3;

/*
 * Runs one iperf3 server/client pair on a free loopback port and fills `out`:
 * bytes and seconds as the receiving server counted them (end.sum_received of
 * the client's JSON), cpu_send and cpu_recv from wait4() of the client and the
 * server (each whole process), cpu their sum, same_cpu from sampling both
 * processes' CPUs while the client runs. Fails with RINGP2P_EIO (message
 * in `ei`) if iperf3 cannot start, reports an error, or overruns its time by
 * RP_BENCH_GRACE_SECONDS (then it is killed).
 */
int rp_bench_iperf3_run(const rp_bench_iperf3 *cfg, rp_bench_sample *out, ringp2p_errinfo *ei);

/* rp_bench_round_fn over rp_bench_iperf3_run; ctx is a `const rp_bench_iperf3 *`. */
int rp_bench_iperf3_round(void *ctx, rp_bench_sample *out, ringp2p_errinfo *ei);

/*
 * The server and client command lines, with PORT for the port and a
 * `taskset -c` prefix where CPUs are set, into `dst` (truncated to cap).
 */
void rp_bench_iperf3_command(const rp_bench_iperf3 *cfg, char *dst, size_t cap);

/* 0 if `iperf3 --version` runs and exits 0, else RINGP2P_ENOENT with the reason in `ei`. */
int rp_bench_iperf3_check(const rp_bench_iperf3 *cfg, ringp2p_errinfo *ei);

/* ---- child processes --------------------------------------------------------------------- */

/*
 * Starts `av` (looked up in PATH) with stdin, stdout and stderr on the given
 * fds (/dev/null for those < 0), confined to `cpus` when not NULL: the child
 * inherits the spawning thread's affinity, so ours is set around the spawn
 * and restored. Returns 0 or an errno value.
 */
int rp_bench_spawn(const char *const av[], int in_fd, int out_fd, int err_fd, const cpu_set_t *cpus,
                   pid_t *pid);

/* Waits for `pid` until `deadline` (rp_bench_now() time), then kills it. 0 if it exited by
 * itself, -1 otherwise; *status and *ru as wait4 fills them. */
int rp_bench_reap(pid_t pid, double deadline, int *status, struct rusage *ru);

/* User + system seconds of a rusage. */
double rp_bench_rusage_cpu(const struct rusage *ru);

/*
 * CPU-seconds a live process has used so far, every thread that is alive
 * counted: the sum of /proc/<pid>/task/<tid>/schedstat run times (ns), or
 * utime + stime of /proc/<pid>/stat (clock ticks) where schedstat is missing.
 * Threads that exited are not counted, so take the difference of two readings
 * of a process whose threads live across both. NAN if the process is gone.
 */
double rp_bench_proc_cpu(pid_t pid);

/* Open file descriptors of a process (entries of /proc/<pid>/fd), or -1. */
long rp_bench_proc_fds(pid_t pid);

/* A CPU set holding only `cpu`. */
void rp_bench_cpus_one(cpu_set_t *set, int cpu);

/* A child's output read line by line (lines longer than the buffer are cut). */
typedef struct rp_bench_lines {
    int fd;
    int eof;
    size_t len;
    char buf[8192];
} rp_bench_lines;

void rp_bench_lines_init(rp_bench_lines *l, int fd);

/* The next line into dst (NUL-terminated, cut to cap): 1, 0 at end of input, -1 at `deadline`. */
int rp_bench_lines_next(rp_bench_lines *l, char *dst, size_t cap, double deadline);

/* Reads and drops whatever is ready now, without waiting. */
void rp_bench_lines_drain(rp_bench_lines *l);

/* ---- environment ------------------------------------------------------------------------- */

/*
 * A loopback TCP port that was free a moment ago (bound to 127.0.0.1:0 and
 * released), in host order; negative RINGP2P_EIO if none could be had.
 */
int rp_bench_free_port(void);

typedef struct rp_bench_machine {
    long cpus;          /* online CPUs */
    char kernel[128];   /* uname -r */
    char cpu_model[96]; /* first "model name" of /proc/cpuinfo, or "unknown" */
} rp_bench_machine;

void rp_bench_machine_get(rp_bench_machine *m);

/* ---- output ------------------------------------------------------------------------------ */

/* The command line that reproduces this run, shell-quoted, into `dst` (truncated to cap). */
void rp_bench_command(int argc, char **argv, char *dst, size_t cap);

/* Column headings of the comparison table. */
void rp_bench_table_header(FILE *f);

/*
 * One row: median GB/s with min-max, median CPU-s/GB (send + recv when known),
 * the median share of time both ends sat on one CPU, and, with `base` not
 * NULL, the ratios of the medians to base's (throughput, and CPU per GB).
 */
void rp_bench_table_row(FILE *f, const char *label, const rp_bench_summary *s,
                        const rp_bench_summary *base);

/*
 * A one-line JSON object built in place. Keys and strings are escaped; NAN and
 * infinities become null. Nesting is limited to RP_BENCH_DEPTH_MAX; output
 * beyond RP_BENCH_JSON_MAX marks the object overflowed and print refuses it.
 */
typedef struct rp_bench_json {
    size_t len;
    int depth;
    int overflow;
    int first[RP_BENCH_DEPTH_MAX]; /* no member written yet at this depth */
    char buf[RP_BENCH_JSON_MAX];
} rp_bench_json;

void rp_bench_json_init(rp_bench_json *j);
void rp_bench_json_num(rp_bench_json *j, const char *key, double v);
void rp_bench_json_int(rp_bench_json *j, const char *key, long long v);
void rp_bench_json_str(rp_bench_json *j, const char *key, const char *v);
void rp_bench_json_bool(rp_bench_json *j, const char *key, int v);
void rp_bench_json_begin(rp_bench_json *j, const char *key); /* nested object */
void rp_bench_json_end(rp_bench_json *j);

/* {"median":..,"min":..,"max":..,"n":..} under `key`. */
void rp_bench_json_stat(rp_bench_json *j, const char *key, const rp_bench_stat *s);

/* {"gbps":{..},"cpu_s_per_gb":{..},"send_cpu_s_per_gb":{..},"recv_cpu_s_per_gb":{..}}. */
void rp_bench_json_summary(rp_bench_json *j, const char *key, const rp_bench_summary *s);

/* Closes any open objects and writes it as one line; RINGP2P_ENOBUF if it overflowed. */
int rp_bench_json_print(rp_bench_json *j, FILE *f);

#endif
