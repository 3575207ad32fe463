/*
 * Child processes for benchmarks: spawning with a CPU mask and chosen stdio,
 * reaping with a deadline, the CPU time of a live process, and reading a
 * child's output line by line.
 */
#include "bench.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* How often a reap polls for the child's exit. */
#define REAP_SLICE_MS 1

/* stdio slot `slot` from `fd`, or /dev/null when fd < 0. */
static void stdio_action(posix_spawn_file_actions_t *fa, int slot, int fd)
{
    if (fd >= 0)
        posix_spawn_file_actions_adddup2(fa, fd, slot);
    else
        posix_spawn_file_actions_addopen(fa, slot, "/dev/null", slot == 0 ? O_RDONLY : O_WRONLY, 0);
}

int rp_bench_spawn(const char *const av[], int in_fd, int out_fd, int err_fd, const cpu_set_t *cpus,
                   pid_t *pid)
{
    cpu_set_t saved;
    if (cpus != NULL) {
        if (sched_getaffinity(0, sizeof(saved), &saved) != 0) return errno;
        if (sched_setaffinity(0, sizeof(*cpus), cpus) != 0) return errno;
    }
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa) != 0) {
        if (cpus != NULL) sched_setaffinity(0, sizeof(saved), &saved);
        return ENOMEM;
    }
    stdio_action(&fa, 0, in_fd);
    stdio_action(&fa, 1, out_fd);
    stdio_action(&fa, 2, err_fd);
    /* posix_spawn takes char *const[] for historical reasons; it does not write to them. */
    int rc = posix_spawnp(pid, av[0], &fa, NULL, (char *const *)(uintptr_t)av, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (cpus != NULL) sched_setaffinity(0, sizeof(saved), &saved);
    return rc;
}

int rp_bench_reap(pid_t pid, double deadline, int *status, struct rusage *ru)
{
    for (;;) {
        pid_t r = wait4(pid, status, WNOHANG, ru);
        if (r == pid) return 0;
        if (r < 0 && errno != EINTR) return -1;
        if (rp_bench_now() > deadline) {
            kill(pid, SIGKILL);
            while (wait4(pid, status, 0, ru) < 0 && errno == EINTR) {
            }
            return -1;
        }
        poll(NULL, 0, REAP_SLICE_MS);
    }
}

double rp_bench_rusage_cpu(const struct rusage *ru)
{
    return (double)ru->ru_utime.tv_sec + (double)ru->ru_utime.tv_usec * 1e-6 +
           (double)ru->ru_stime.tv_sec + (double)ru->ru_stime.tv_usec * 1e-6;
}

/* Field 1 of /proc/<pid>/task/<tid>/schedstat: nanoseconds on a CPU; -1 if unreadable. */
static long long task_runtime_ns(pid_t pid, const char *tid)
{
    char path[320], buf[128];
    snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", (int)pid, tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = '\0';
    char *end;
    long long v = strtoll(buf, &end, 10);
    return end == buf ? -1 : v;
}

/* utime + stime of the whole process from /proc/<pid>/stat, in seconds (clock-tick resolution). */
static double stat_cpu(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NAN;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) return NAN;
    buf[n] = '\0';
    /* Fields 14 and 15, counted after comm's last ')' (comm may hold spaces). */
    const char *p = strrchr(buf, ')');
    for (int field = 2; field < 13 && p != NULL; field++) p = strchr(p + 1, ' ');
    unsigned long long ut, st;
    if (p == NULL || sscanf(p + 1, "%llu %llu", &ut, &st) != 2) return NAN;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

double rp_bench_proc_cpu(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL) return NAN;
    long long sum = 0;
    int ok = 1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        long long v = task_runtime_ns(pid, e->d_name);
        if (v < 0) {
            /* A thread that just exited is gone either way; anything else means no schedstat. */
            if (errno != ENOENT && errno != ESRCH) ok = 0;
            continue;
        }
        sum += v;
    }
    closedir(d);
    return ok ? (double)sum * 1e-9 : stat_cpu(pid);
}

long rp_bench_proc_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL) return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

void rp_bench_cpus_one(cpu_set_t *set, int cpu)
{
    CPU_ZERO(set);
    CPU_SET(cpu, set);
}

/* ---- lines ------------------------------------------------------------------------------- */

void rp_bench_lines_init(rp_bench_lines *l, int fd)
{
    l->fd = fd;
    l->len = 0;
    l->eof = 0;
}

/* Moves the first line of the buffer (without its '\n') to dst; 1 if there was one. */
static int take_line(rp_bench_lines *l, char *dst, size_t cap)
{
    char *nl = memchr(l->buf, '\n', l->len);
    size_t n = nl != NULL ? (size_t)(nl - l->buf) : l->len;
    if (nl == NULL && !(l->eof && l->len > 0) && l->len < sizeof(l->buf)) return 0;
    size_t c = n < cap - 1 ? n : cap - 1;
    memcpy(dst, l->buf, c);
    dst[c] = '\0';
    size_t used = nl != NULL ? n + 1 : n;
    memmove(l->buf, l->buf + used, l->len - used);
    l->len -= used;
    return 1;
}

int rp_bench_lines_next(rp_bench_lines *l, char *dst, size_t cap, double deadline)
{
    for (;;) {
        if (take_line(l, dst, cap)) return 1;
        if (l->eof) return 0;
        int ms = (int)((deadline - rp_bench_now()) * 1000);
        if (ms <= 0) return -1;
        struct pollfd pfd = { .fd = l->fd, .events = POLLIN };
        int pr = poll(&pfd, 1, ms);
        if (pr < 0 && errno == EINTR) continue;
        if (pr == 0) return -1;
        ssize_t n = read(l->fd, l->buf + l->len, sizeof(l->buf) - l->len);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n <= 0)
            l->eof = 1;
        else
            l->len += (size_t)n;
    }
}

void rp_bench_lines_drain(rp_bench_lines *l)
{
    char tmp[4096];
    for (;;) {
        struct pollfd pfd = { .fd = l->fd, .events = POLLIN };
        if (l->eof || poll(&pfd, 1, 0) != 1) break;
        ssize_t n = read(l->fd, tmp, sizeof(tmp));
        if (n <= 0) {
            l->eof = 1;
            break;
        }
    }
    l->len = 0;
}
