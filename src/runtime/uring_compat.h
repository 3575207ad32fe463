/*
 * What liburing 2.3 lacks and newer kernels have: io_uring_setup_buf_ring
 * (2.4) and two SEND_ZC constants (kernel 6.2 uapi). Raw calls only; the
 * kernel decides at run time whether they work, and the runtime probes.
 */
#ifndef RP_RUNTIME_URING_COMPAT_H
#define RP_RUNTIME_URING_COMPAT_H

#include <errno.h>
#include <liburing.h>
#include <stddef.h>
#include <sys/mman.h>

/* sqe->ioprio for SEND_ZC: report in the notification whether the kernel copied. */
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
/* Notification cqe->res bit set when a REPORT_USAGE send was copied after all. */
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif

/*
 * Maps and registers a provided-buffer ring of `entries` (a power of two)
 * for group `bgid`. Returns the ring (its mapping is *bytes long: munmap it
 * after rp_free_buf_ring's unregister) or NULL with -errno in *err
 * (-EINVAL from kernels before 5.19).
 */
static inline struct io_uring_buf_ring *rp_setup_buf_ring(struct io_uring *ring, unsigned entries,
                                                          int bgid, int *err, size_t *bytes)
{
    size_t len = (size_t)entries * sizeof(struct io_uring_buf);
    /* The kernel wants the ring page-aligned: mmap gives that. */
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (p == MAP_FAILED) {
        *err = -errno;
        return NULL;
    }
    struct io_uring_buf_reg reg = { 0 };
    reg.ring_addr = (unsigned long)p;
    reg.ring_entries = entries;
    reg.bgid = (unsigned short)bgid;
    int ret = io_uring_register_buf_ring(ring, &reg, 0);
    if (ret != 0) {
        munmap(p, len);
        *err = ret;
        return NULL;
    }
    struct io_uring_buf_ring *br = p;
    io_uring_buf_ring_init(br);
    *bytes = len;
    return br;
}

static inline void rp_free_buf_ring(struct io_uring *ring, struct io_uring_buf_ring *br, int bgid,
                                    size_t bytes)
{
    (void)io_uring_unregister_buf_ring(ring, bgid);
    munmap(br, bytes);
}

#endif
