/* nstool: the small network programs that tests/netns/run.sh runs inside network namespaces.
 *
 *   nstool wire NS1 IF1 NS2 IF2 DELAY_MS
 *       A cable with latency: joins TAP device IF1 in netns NS1 to TAP device IF2 in netns NS2
 *       and delivers every frame DELAY_MS later, in each direction. It stands in for
 *       `tc qdisc ... netem delay` on kernels built without sch_netem. Runs until killed or
 *       until a device goes away.
 *   nstool serve IP PORT
 *       Accepts TCP connections; writes "observed IP PORT\n" (the peer address as seen here,
 *       i.e. after any NAT) to each, then echoes whatever it receives.
 *   nstool observe IP PORT [--bind PORT] [--timeout MS]
 *       Connects to `serve` and prints "observed=IP:PORT local=IP:PORT".
 *   nstool rtt IP PORT [--count N] [--timeout MS]
 *       Connects to `serve` and measures N one-byte round trips: "rtt_min_us=.. rtt_med_us=..".
 *   nstool connect IP PORT [--timeout MS]
 *       One connection attempt: prints result=connected|timeout|refused|unreachable.
 *   nstool rendezvous IP PORT [--timeout MS]
 *       Waits for two clients, then tells each at once "peer IP PORT you IP PORT\n" (the other's
 *       and its own observed address), and stays until both close.
 *   nstool punch IP PORT --bind PORT [--timeout MS] [--wait MS] [--listen]
 *       Meets a peer through `rendezvous` at IP PORT from local port --bind, then connects to
 *       the peer's observed address from the same local port (SO_REUSEADDR + SO_REUSEPORT),
 *       retrying until the timeout: a TCP simultaneous open through both NATs. --wait delays the
 *       first attempt (to make one side's SYN arrive before the other has sent). With --listen
 *       it also listens on that port and takes whichever of connect/accept completes first.
 *       On success both sides exchange their public addresses and check them against what
 *       the rendezvous announced. Prints "result=ok via=connect|accept ..." or
 *       "result=timeout ...".
 *
 * Exit codes: 0 success, 1 error, 2 usage, 3 timeout, 4 refused, 5 unreachable.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { EX_OK = 0, EX_ERR = 1, EX_USAGE = 2, EX_TIMEOUT = 3, EX_REFUSED = 4, EX_UNREACH = 5 };

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int ms_left(uint64_t deadline)
{
    uint64_t now = now_ns();
    if (now >= deadline) return 0;
    return (int)((deadline - now + 999999) / 1000000);
}

static void die(const char *what)
{
    fprintf(stderr, "nstool: %s: %s\n", what, strerror(errno));
    exit(EX_ERR);
}

static long parse_num(const char *s, long lo, long hi, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "nstool: bad %s '%s' (%ld..%ld)\n", what, s, lo, hi);
        exit(EX_USAGE);
    }
    return v;
}

static struct sockaddr_in parse_addr(const char *ip, const char *port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
        fprintf(stderr, "nstool: bad IPv4 address '%s'\n", ip);
        exit(EX_USAGE);
    }
    sa.sin_port = htons((uint16_t)parse_num(port, 1, 65535, "port"));
    return sa;
}

static const char *fmt_addr(const struct sockaddr_in *sa, char *buf, size_t len)
{
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &sa->sin_addr, ip, sizeof(ip));
    snprintf(buf, len, "%s:%u", ip, ntohs(sa->sin_port));
    return buf;
}

static void set_nonblock(int fd, int on)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK) < 0) die("fcntl");
}

/* A TCP socket, bound to INADDR_ANY:port when port is non-zero. The reuse options let the
 * rendezvous connection, the listener and every punch attempt share one local port. */
static int tcp_socket(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("socket");
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
        die("setsockopt");
    if (port) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) die("bind");
    }
    return fd;
}

static int tcp_listener(const struct sockaddr_in *sa)
{
    int fd = tcp_socket(0);
    if (bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) die("bind");
    if (listen(fd, 64) < 0) die("listen");
    return fd;
}

/* Starts a non-blocking connect; 0 when under way or done, else -errno. */
static int connect_start(int fd, const struct sockaddr_in *to)
{
    set_nonblock(fd, 1);
    if (connect(fd, (const struct sockaddr *)to, sizeof(*to)) == 0 || errno == EINPROGRESS)
        return 0;
    return -errno;
}

static int connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return -errno;
    return -err;
}

/* Connects within the deadline: 0, or -errno (-ETIMEDOUT when the deadline passed). */
static int connect_by(int fd, const struct sockaddr_in *to, uint64_t deadline)
{
    int rc = connect_start(fd, to);
    if (rc < 0) return rc;
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    for (;;) {
        int n = poll(&p, 1, ms_left(deadline));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("poll");
        if (n == 0) return -ETIMEDOUT;
        rc = connect_result(fd);
        set_nonblock(fd, 0);
        return rc;
    }
}

static int exit_for(int neg_errno)
{
    switch (-neg_errno) {
    case 0: return EX_OK;
    case ETIMEDOUT: return EX_TIMEOUT;
    case ECONNREFUSED: return EX_REFUSED;
    case EHOSTUNREACH:
    case ENETUNREACH: return EX_UNREACH;
    default: return EX_ERR;
    }
}

static const char *result_name(int neg_errno)
{
    switch (exit_for(neg_errno)) {
    case EX_OK: return "connected";
    case EX_TIMEOUT: return "timeout";
    case EX_REFUSED: return "refused";
    case EX_UNREACH: return "unreachable";
    default: return "error";
    }
}

/* Reads one '\n'-terminated line (without it) before the deadline; -1 on EOF, error or time. */
static int read_line(int fd, char *buf, size_t cap, uint64_t deadline)
{
    size_t n = 0;
    struct pollfd p = { .fd = fd, .events = POLLIN };
    while (n + 1 < cap) {
        int r = poll(&p, 1, ms_left(deadline));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        ssize_t got = read(fd, buf + n, 1);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return -1;
        if (buf[n] == '\n') {
            buf[n] = '\0';
            return (int)n;
        }
        n++;
    }
    return -1;
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* "observed IP PORT" / "peer IP PORT you IP PORT": parses the address after `key`. */
static int parse_field(const char *line, const char *key, struct sockaddr_in *out)
{
    const char *p = strstr(line, key);
    if (!p) return -1;
    char ip[INET_ADDRSTRLEN];
    unsigned port;
    if (sscanf(p + strlen(key), " %15s %u", ip, &port) != 2 || port == 0 || port > 65535) return -1;
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, ip, &out->sin_addr) == 1 ? 0 : -1;
}

static int same_addr(const struct sockaddr_in *a, const struct sockaddr_in *b)
{
    return a->sin_addr.s_addr == b->sin_addr.s_addr && a->sin_port == b->sin_port;
}

/* ---- wire ------------------------------------------------------------------------------- */

enum { SLOT_BYTES = 2048, QUEUE_SLOTS = 1024 };

struct slot {
    uint64_t due;
    uint16_t len;
    unsigned char frame[SLOT_BYTES];
};

struct fifo {
    struct slot *slots;
    unsigned head, count;
    unsigned long dropped;
};

static int tap_attach(const char *ns, const char *ifname)
{
    char path[256];
    snprintf(path, sizeof(path), "/run/netns/%s", ns);
    int nsfd = open(path, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0) die(path);
    if (setns(nsfd, CLONE_NEWNET) < 0) die("setns");
    close(nsfd);
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) die("/dev/net/tun");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) die("TUNSETIFF");
    return fd;
}

static int cmd_wire(int argc, char **argv)
{
    if (argc != 5) return EX_USAGE;
    uint64_t delay = (uint64_t)parse_num(argv[4], 0, 10000, "delay") * 1000000u;
    /* A cable dies with the test that laid it, even if the test is killed. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1) {
        fprintf(stderr, "nstool wire: parent already gone\n");
        return EX_ERR;
    }
    /* netem runs in the kernel's timers; a userspace delay line must not queue behind busy
     * processes on a loaded machine, or the delay grows. Best effort: it blocks in ppoll. */
    struct sched_param sp = { .sched_priority = 10 };
    if (sched_setscheduler(0, SCHED_FIFO, &sp) < 0)
        fprintf(stderr, "nstool wire: no SCHED_FIFO (%s); delays may stretch under load\n",
                strerror(errno));
    int fd[2] = { tap_attach(argv[0], argv[1]), tap_attach(argv[2], argv[3]) };
    struct fifo q[2]; /* q[i]: frames read from fd[i], due on fd[1 - i] */
    for (int i = 0; i < 2; i++) {
        q[i] = (struct fifo){ .slots = calloc(QUEUE_SLOTS, sizeof(struct slot)) };
        if (!q[i].slots) die("calloc");
    }
    static unsigned char scratch[65536];
    for (;;) {
        uint64_t now = now_ns(), next = UINT64_MAX;
        for (int i = 0; i < 2; i++) {
            while (q[i].count && q[i].slots[q[i].head].due <= now) {
                struct slot *s = &q[i].slots[q[i].head];
                /* A frame the far device cannot take now (down, busy) is lost, as on a cable. */
                if (write(fd[1 - i], s->frame, s->len) < 0 && errno == EINTR) continue;
                q[i].head = (q[i].head + 1) % QUEUE_SLOTS;
                q[i].count--;
            }
            if (q[i].count && q[i].slots[q[i].head].due < next) next = q[i].slots[q[i].head].due;
        }
        struct pollfd p[2] = { { .fd = fd[0], .events = POLLIN },
                               { .fd = fd[1], .events = POLLIN } };
        struct timespec ts, *tsp = NULL;
        if (next != UINT64_MAX) {
            uint64_t wait = next > now ? next - now : 0;
            ts.tv_sec = (time_t)(wait / 1000000000u);
            ts.tv_nsec = (long)(wait % 1000000000u);
            tsp = &ts;
        }
        int n = ppoll(p, 2, tsp, NULL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("ppoll");
        for (int i = 0; i < 2; i++) {
            if (p[i].revents & (POLLERR | POLLHUP | POLLNVAL)) {
                fprintf(stderr, "nstool wire: %s gone (poll 0x%x)\n", argv[2 * i + 1],
                        (unsigned)p[i].revents);
                return EX_OK; /* the namespace was deleted */
            }
            if (!(p[i].revents & POLLIN)) continue;
            for (;;) {
                ssize_t len = read(fd[i], scratch, sizeof(scratch));
                if (len < 0 && errno == EINTR) continue;
                if (len < 0 && errno == EAGAIN) break;
                if (len <= 0) {
                    fprintf(stderr, "nstool wire: %s: read: %s\n", argv[2 * i + 1],
                            len ? strerror(errno) : "EOF");
                    return EX_OK;
                }
                if (q[i].count == QUEUE_SLOTS || len > SLOT_BYTES) {
                    q[i].dropped++; /* a full queue tail-drops, like a router's */
                    continue;
                }
                struct slot *s = &q[i].slots[(q[i].head + q[i].count) % QUEUE_SLOTS];
                s->due = now_ns() + delay;
                s->len = (uint16_t)len;
                memcpy(s->frame, scratch, (size_t)len);
                q[i].count++;
            }
        }
    }
}

/* ---- serve / observe / rtt / connect ----------------------------------------------------- */

static int cmd_serve(int argc, char **argv)
{
    if (argc != 2) return EX_USAGE;
    struct sockaddr_in sa = parse_addr(argv[0], argv[1]);
    int lfd = tcp_listener(&sa);
    enum { MAXC = 64 };
    struct pollfd p[MAXC + 1] = { { .fd = lfd, .events = POLLIN } };
    int n = 1;
    for (;;) {
        if (poll(p, (nfds_t)n, -1) < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        if (p[0].revents & POLLIN) {
            struct sockaddr_in peer;
            socklen_t len = sizeof(peer);
            int c = accept4(lfd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);
            if (c >= 0 && n <= MAXC) {
                char ip[INET_ADDRSTRLEN], line[64];
                inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof(ip));
                int l = snprintf(line, sizeof(line), "observed %s %u\n", ip, ntohs(peer.sin_port));
                write_all(c, line, (size_t)l);
                p[n++] = (struct pollfd){ .fd = c, .events = POLLIN };
            } else if (c >= 0) {
                close(c);
            }
        }
        for (int i = 1; i < n; i++) {
            if (!p[i].revents) continue;
            char buf[4096];
            ssize_t got = read(p[i].fd, buf, sizeof(buf));
            if (got > 0 && write_all(p[i].fd, buf, (size_t)got) == 0) continue;
            close(p[i].fd);
            p[i--] = p[--n];
        }
    }
}

struct opts {
    long bind_port, timeout_ms, count, wait_ms;
    int listen;
};

static int parse_opts(int argc, char **argv, struct opts *o)
{
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0) {
            o->listen = 1;
        } else if (i + 1 < argc && strcmp(argv[i], "--bind") == 0) {
            o->bind_port = parse_num(argv[++i], 1, 65535, "--bind");
        } else if (i + 1 < argc && strcmp(argv[i], "--timeout") == 0) {
            o->timeout_ms = parse_num(argv[++i], 1, 600000, "--timeout");
        } else if (i + 1 < argc && strcmp(argv[i], "--wait") == 0) {
            o->wait_ms = parse_num(argv[++i], 0, 60000, "--wait");
        } else if (i + 1 < argc && strcmp(argv[i], "--count") == 0) {
            o->count = parse_num(argv[++i], 1, 100000, "--count");
        } else {
            fprintf(stderr, "nstool: unexpected argument '%s'\n", argv[i]);
            return -1;
        }
    }
    return 0;
}

/* Connects to `serve` and reads its "observed" line. */
static int serve_session(const struct sockaddr_in *to, const struct opts *o,
                         struct sockaddr_in *observed, uint64_t deadline)
{
    int fd = tcp_socket((uint16_t)o->bind_port);
    int rc = connect_by(fd, to, deadline);
    if (rc < 0) {
        printf("result=%s error=%s\n", result_name(rc), strerror(-rc));
        exit(exit_for(rc));
    }
    char line[128];
    if (read_line(fd, line, sizeof(line), deadline) < 0 ||
        parse_field(line, "observed", observed)) {
        fprintf(stderr, "nstool: no 'observed' line from the server\n");
        exit(EX_ERR);
    }
    return fd;
}

static int cmd_observe(int argc, char **argv)
{
    struct opts o = { .timeout_ms = 3000 };
    if (argc < 2 || parse_opts(argc - 2, argv + 2, &o)) return EX_USAGE;
    struct sockaddr_in to = parse_addr(argv[0], argv[1]), observed, local;
    uint64_t deadline = now_ns() + (uint64_t)o.timeout_ms * 1000000u;
    int fd = serve_session(&to, &o, &observed, deadline);
    socklen_t len = sizeof(local);
    if (getsockname(fd, (struct sockaddr *)&local, &len) < 0) die("getsockname");
    char a[32], b[32];
    printf("observed=%s local=%s\n", fmt_addr(&observed, a, sizeof(a)),
           fmt_addr(&local, b, sizeof(b)));
    close(fd);
    return EX_OK;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmd_rtt(int argc, char **argv)
{
    struct opts o = { .timeout_ms = 5000, .count = 10 };
    if (argc < 2 || parse_opts(argc - 2, argv + 2, &o)) return EX_USAGE;
    struct sockaddr_in to = parse_addr(argv[0], argv[1]), observed;
    uint64_t deadline = now_ns() + (uint64_t)o.timeout_ms * 1000000u;
    int fd = serve_session(&to, &o, &observed, deadline);
    uint64_t *us = calloc((size_t)o.count, sizeof(*us));
    if (!us) die("calloc");
    struct pollfd p = { .fd = fd, .events = POLLIN };
    for (long i = 0; i < o.count; i++) {
        uint64_t t0 = now_ns();
        char c = 'x';
        if (write_all(fd, &c, 1) < 0) die("write");
        if (poll(&p, 1, ms_left(deadline)) != 1 || read(fd, &c, 1) != 1) {
            printf("result=timeout done=%ld\n", i);
            return EX_TIMEOUT;
        }
        us[i] = (now_ns() - t0) / 1000u;
    }
    qsort(us, (size_t)o.count, sizeof(*us), cmp_u64);
    printf("result=ok count=%ld rtt_min_us=%llu rtt_med_us=%llu rtt_max_us=%llu\n", o.count,
           (unsigned long long)us[0], (unsigned long long)us[o.count / 2],
           (unsigned long long)us[o.count - 1]);
    free(us);
    close(fd);
    return EX_OK;
}

static int cmd_connect(int argc, char **argv)
{
    struct opts o = { .timeout_ms = 2000 };
    if (argc < 2 || parse_opts(argc - 2, argv + 2, &o)) return EX_USAGE;
    struct sockaddr_in to = parse_addr(argv[0], argv[1]);
    int fd = tcp_socket((uint16_t)o.bind_port);
    uint64_t t0 = now_ns();
    int rc = connect_by(fd, &to, t0 + (uint64_t)o.timeout_ms * 1000000u);
    printf("result=%s ms=%llu%s%s\n", result_name(rc),
           (unsigned long long)((now_ns() - t0) / 1000000u), rc ? " error=" : "",
           rc ? strerror(-rc) : "");
    close(fd);
    return exit_for(rc);
}

/* ---- rendezvous / punch ------------------------------------------------------------------ */

static int cmd_rendezvous(int argc, char **argv)
{
    struct opts o = { .timeout_ms = 20000 };
    if (argc < 2 || parse_opts(argc - 2, argv + 2, &o)) return EX_USAGE;
    struct sockaddr_in sa = parse_addr(argv[0], argv[1]), peer[2];
    uint64_t deadline = now_ns() + (uint64_t)o.timeout_ms * 1000000u;
    int lfd = tcp_listener(&sa), c[2];
    for (int i = 0; i < 2; i++) {
        struct pollfd p = { .fd = lfd, .events = POLLIN };
        if (poll(&p, 1, ms_left(deadline)) != 1) {
            fprintf(stderr, "nstool rendezvous: only %d of 2 clients came\n", i);
            return EX_TIMEOUT;
        }
        socklen_t len = sizeof(peer[i]);
        c[i] = accept4(lfd, (struct sockaddr *)&peer[i], &len, SOCK_CLOEXEC);
        if (c[i] < 0) die("accept");
    }
    char line[2][128], a[32], b[32];
    int l[2];
    for (int i = 0; i < 2; i++) {
        char ip[2][INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &peer[1 - i].sin_addr, ip[0], sizeof(ip[0]));
        inet_ntop(AF_INET, &peer[i].sin_addr, ip[1], sizeof(ip[1]));
        l[i] = snprintf(line[i], sizeof(line[i]), "peer %s %u you %s %u\n", ip[0],
                        ntohs(peer[1 - i].sin_port), ip[1], ntohs(peer[i].sin_port));
    }
    /* Both go-lines leave back to back: any skew between the peers comes from the network. */
    for (int i = 0; i < 2; i++)
        if (write_all(c[i], line[i], (size_t)l[i]) < 0) die("write");
    printf("pair %s %s\n", fmt_addr(&peer[0], a, sizeof(a)), fmt_addr(&peer[1], b, sizeof(b)));
    fflush(stdout);
    /* Stay until both clients are done, so their rendezvous mappings stay as they were. */
    struct pollfd p[2] = { { .fd = c[0], .events = POLLIN }, { .fd = c[1], .events = POLLIN } };
    int open_ = 2;
    while (open_ && poll(p, 2, ms_left(deadline)) > 0) {
        for (int i = 0; i < 2; i++) {
            char buf[256];
            if (p[i].fd >= 0 && p[i].revents && read(p[i].fd, buf, sizeof(buf)) <= 0) {
                close(p[i].fd);
                p[i].fd = -1;
                open_--;
            }
        }
    }
    return EX_OK;
}

static int cmd_punch(int argc, char **argv)
{
    struct opts o = { .timeout_ms = 5000 };
    if (argc < 2 || parse_opts(argc - 2, argv + 2, &o) || !o.bind_port) return EX_USAGE;
    struct sockaddr_in rdv = parse_addr(argv[0], argv[1]), peer, me;
    uint16_t port = (uint16_t)o.bind_port;
    uint64_t deadline = now_ns() + 10000000000u; /* for the rendezvous part */
    int rfd = tcp_socket(port);
    int rc = connect_by(rfd, &rdv, deadline);
    if (rc < 0) {
        fprintf(stderr, "nstool punch: rendezvous: %s\n", strerror(-rc));
        return EX_ERR;
    }
    char line[128], a[32], b[32];
    if (read_line(rfd, line, sizeof(line), deadline) < 0 || parse_field(line, "peer", &peer) ||
        parse_field(line, "you", &me)) {
        fprintf(stderr, "nstool punch: no 'peer' line from the rendezvous\n");
        return EX_ERR;
    }
    uint64_t t0 = now_ns();
    if (o.wait_ms) poll(NULL, 0, (int)o.wait_ms);
    deadline = t0 + (uint64_t)(o.wait_ms + o.timeout_ms) * 1000000u;
    int lfd = -1;
    if (o.listen) {
        lfd = tcp_socket(port);
        if (listen(lfd, 4) < 0) die("listen");
    }
    int fd = -1, attempts = 0;
    const char *via = "connect";
    const char *last = "none";
    while (fd < 0 && ms_left(deadline) > 0) {
        int s = tcp_socket(port);
        attempts++;
        rc = connect_start(s, &peer);
        struct pollfd p[2] = { { .fd = s, .events = POLLOUT }, { .fd = lfd, .events = POLLIN } };
        while (rc == 0 && fd < 0) {
            int n = poll(p, 2, ms_left(deadline));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                rc = -ETIMEDOUT;
                break;
            }
            if (p[1].revents & POLLIN) {
                int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                if (c >= 0) {
                    fd = c;
                    via = "accept";
                    close(s);
                }
            } else if (p[0].revents) {
                rc = connect_result(s);
                if (rc == 0) fd = s;
            }
        }
        if (fd < 0) {
            close(s);
            last = strerror(-rc);
            /* A refused or unreachable attempt is retried after a pause, as DCUtR would. */
            if (rc != -ETIMEDOUT) poll(NULL, 0, ms_left(deadline) < 100 ? ms_left(deadline) : 100);
        }
    }
    unsigned long long ms = (now_ns() - t0) / 1000000u;
    if (fd < 0) {
        printf("result=timeout attempts=%d ms=%llu last_error=\"%s\" me=%s peer=%s\n", attempts, ms,
               last, fmt_addr(&me, a, sizeof(a)), fmt_addr(&peer, b, sizeof(b)));
        return EX_TIMEOUT;
    }
    set_nonblock(fd, 0);
    /* Prove who is on the other end: the socket's peer and the peer's own word must both be the
     * address the rendezvous announced. */
    struct sockaddr_in got;
    socklen_t len = sizeof(got);
    if (getpeername(fd, (struct sockaddr *)&got, &len) < 0) die("getpeername");
    if (!same_addr(&got, &peer)) {
        fprintf(stderr, "nstool punch: connected to %s, expected %s\n", fmt_addr(&got, a, 32),
                fmt_addr(&peer, b, 32));
        return EX_ERR;
    }
    int l = snprintf(line, sizeof(line), "hello you %s %u\n", inet_ntoa(me.sin_addr),
                     ntohs(me.sin_port));
    struct sockaddr_in claimed;
    uint64_t xdeadline = now_ns() + 3000000000u;
    if (write_all(fd, line, (size_t)l) < 0 || read_line(fd, line, sizeof(line), xdeadline) < 0 ||
        parse_field(line, "you", &claimed) || !same_addr(&claimed, &peer)) {
        fprintf(stderr, "nstool punch: bad or no hello from the peer\n");
        return EX_ERR;
    }
    printf("result=ok via=%s attempts=%d ms=%llu me=%s peer=%s\n", via, attempts, ms,
           fmt_addr(&me, a, sizeof(a)), fmt_addr(&peer, b, sizeof(b)));
    close(fd);
    close(rfd);
    if (lfd >= 0) close(lfd);
    return EX_OK;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        { "wire", cmd_wire },   { "serve", cmd_serve },     { "observe", cmd_observe },
        { "rtt", cmd_rtt },     { "connect", cmd_connect }, { "rendezvous", cmd_rendezvous },
        { "punch", cmd_punch },
    };
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; argc >= 2 && i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(argv[1], cmds[i].name) != 0) continue;
        int rc = cmds[i].fn(argc - 2, argv + 2);
        if (rc == EX_USAGE) fprintf(stderr, "nstool %s: bad arguments (see nstool.c)\n", argv[1]);
        return rc;
    }
    fprintf(stderr, "usage: nstool wire|serve|observe|rtt|connect|rendezvous|punch ARGS "
                    "(see tests/netns/nstool.c)\n");
    return EX_USAGE;
}
