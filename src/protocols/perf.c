#include "protocols/perf.h"

#include "base/error.h"

static const uint8_t block[RP_PERF_BLOCK];

const uint8_t *rp_perf_block(void)
{
    return block;
}

void rp_perf_header_encode(uint8_t dst[RP_PERF_HEADER_LEN], uint64_t download)
{
    for (int i = 0; i < RP_PERF_HEADER_LEN; i++) dst[i] = (uint8_t)(download >> (56 - 8 * i));
}

/* Views of the constant block for `left` bytes, bounded by max and iov_cap; appends to iov. */
static size_t describe_block(uint64_t left, rp_iov *iov, size_t iov_cap, size_t *niov, size_t max)
{
    size_t total = 0;
    while (left > 0 && *niov < iov_cap && (max == 0 || total < max)) {
        size_t n = left < RP_PERF_BLOCK ? (size_t)left : RP_PERF_BLOCK;
        if (max != 0 && n > max - total) n = max - total;
        iov[(*niov)++] = rp_iov_make(block, n);
        total += n;
        left -= n;
    }
    return total;
}

void rp_perf_client_init(rp_perf_client *c, uint64_t upload, uint64_t download, uint64_t now_ns)
{
    *c = (rp_perf_client){ .phase = RP_PERF_UPLOAD, .upload = upload, .download = download };
    rp_perf_header_encode(c->header, download);
    c->start_ns = now_ns;
}

/* Header plus upload; saturates (an upload near 2^64 never finishes anyway). */
static uint64_t client_total(const rp_perf_client *c)
{
    return c->upload > UINT64_MAX - RP_PERF_HEADER_LEN ? UINT64_MAX
                                                       : c->upload + RP_PERF_HEADER_LEN;
}

size_t rp_perf_client_next(const rp_perf_client *c, rp_iov *iov, size_t iov_cap, size_t *niov,
                           size_t max)
{
    *niov = 0;
    if (c->phase != RP_PERF_UPLOAD || iov_cap == 0) return 0;
    size_t total = 0;
    if (c->written < RP_PERF_HEADER_LEN) {
        size_t n = RP_PERF_HEADER_LEN - (size_t)c->written;
        if (max != 0 && n > max) n = max;
        iov[(*niov)++] = rp_iov_make(c->header + c->written, n);
        total = n;
        if (max != 0 && total == max) return total;
    }
    uint64_t done = c->written > RP_PERF_HEADER_LEN ? c->written - RP_PERF_HEADER_LEN : 0;
    return total + describe_block(c->upload - done, iov, iov_cap, niov, max == 0 ? 0 : max - total);
}

int rp_perf_client_wrote(rp_perf_client *c, size_t n, uint64_t now_ns)
{
    if (c->phase != RP_PERF_UPLOAD || n > client_total(c) - c->written) return RINGP2P_EINVAL;
    c->written += n;
    if (c->written == client_total(c)) {
        c->phase = RP_PERF_DOWNLOAD;
        c->upload_done_ns = now_ns;
    }
    return 0;
}

bool rp_perf_client_want_close(const rp_perf_client *c)
{
    return c->phase != RP_PERF_UPLOAD;
}

int rp_perf_client_recv(rp_perf_client *c, size_t n, uint64_t now_ns, ringp2p_errinfo *ei)
{
    if (n == 0) return 0;
    if (c->phase == RP_PERF_UPLOAD)
        return rp_err(ei, RINGP2P_EPROTOCOL,
                      "perf: the server sent %zu bytes before our upload was complete", n);
    if (c->phase == RP_PERF_DONE || n > c->download - c->downloaded)
        return rp_err(ei, RINGP2P_EPROTOCOL, "perf: the server sent more than the %llu bytes asked",
                      (unsigned long long)c->download);
    if (c->downloaded == 0) c->first_byte_ns = now_ns;
    c->downloaded += n;
    return 0;
}

int rp_perf_client_eof(rp_perf_client *c, uint64_t now_ns, ringp2p_errinfo *ei)
{
    if (c->phase != RP_PERF_DOWNLOAD || c->downloaded != c->download)
        return rp_err(ei, RINGP2P_ETRUNCATED, "perf: the stream ended after %llu of %llu bytes",
                      (unsigned long long)c->downloaded, (unsigned long long)c->download);
    c->phase = RP_PERF_DONE;
    c->end_ns = now_ns;
    return 0;
}

void rp_perf_server_init(rp_perf_server *s, uint64_t max_download, uint64_t now_ns)
{
    *s = (rp_perf_server){ .phase = RP_PERF_UPLOAD, .max_download = max_download };
    s->start_ns = now_ns;
}

int rp_perf_server_recv(rp_perf_server *s, const uint8_t **src, const uint8_t *end, uint64_t now_ns,
                        ringp2p_errinfo *ei)
{
    const uint8_t *p = *src;
    if (p == end) return 0;
    if (s->phase != RP_PERF_UPLOAD)
        return rp_err(ei, RINGP2P_EPROTOCOL, "perf: the client sent bytes after closing");
    if (s->header_len < RP_PERF_HEADER_LEN) {
        uint8_t h[RP_PERF_HEADER_LEN];
        size_t have = s->header_len, n = RP_PERF_HEADER_LEN - have;
        if (n > (size_t)(end - p)) n = (size_t)(end - p);
        for (size_t i = 0; i < have; i++) h[i] = s->header[i];
        for (size_t i = 0; i < n; i++) h[have + i] = p[i];
        if (have + n == RP_PERF_HEADER_LEN) {
            uint64_t v = 0;
            for (int i = 0; i < RP_PERF_HEADER_LEN; i++) v = v << 8 | h[i];
            if (s->max_download != 0 && v > s->max_download)
                return rp_err(ei, RINGP2P_ELIMIT, "perf: the client asks for %llu bytes, over %llu",
                              (unsigned long long)v, (unsigned long long)s->max_download);
            s->download = v;
        }
        for (size_t i = 0; i < n; i++) s->header[have + i] = p[i];
        s->header_len = (uint8_t)(have + n);
        p += n;
    }
    s->uploaded += (uint64_t)(end - p);
    *src = end;
    (void)now_ns;
    return 0;
}

int rp_perf_server_eof(rp_perf_server *s, uint64_t now_ns, ringp2p_errinfo *ei)
{
    if (s->phase != RP_PERF_UPLOAD) return 0;
    if (s->header_len < RP_PERF_HEADER_LEN)
        return rp_err(ei, RINGP2P_ETRUNCATED, "perf: the stream ended inside the 8-byte size (%u)",
                      (unsigned)s->header_len);
    s->upload_done_ns = now_ns;
    s->phase = s->download == 0 ? RP_PERF_DONE : RP_PERF_DOWNLOAD;
    if (s->phase == RP_PERF_DONE) s->end_ns = now_ns;
    return 0;
}

size_t rp_perf_server_next(const rp_perf_server *s, rp_iov *iov, size_t iov_cap, size_t *niov,
                           size_t max)
{
    *niov = 0;
    if (s->phase != RP_PERF_DOWNLOAD) return 0;
    return describe_block(s->download - s->sent, iov, iov_cap, niov, max);
}

int rp_perf_server_wrote(rp_perf_server *s, size_t n, uint64_t now_ns)
{
    if (s->phase != RP_PERF_DOWNLOAD || n > s->download - s->sent) return RINGP2P_EINVAL;
    s->sent += n;
    if (s->sent == s->download) {
        s->phase = RP_PERF_DONE;
        s->end_ns = now_ns;
    }
    return 0;
}
