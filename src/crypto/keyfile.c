/*
 * Key files: exactly the protobuf PrivateKey bytes (peer-ids.md "Keys"), the
 * format go-libp2p and js-libp2p keep on disk, so files move between them.
 *
 * Saving never exposes a half-written or world-readable key: the bytes go to
 * a fresh 0600 file in the target's directory (mkostemp: O_EXCL), are fsynced,
 * and the file is then renamed into place. Without RINGP2P_SAVE_FORCE the
 * rename is renameat2(RENAME_NOREPLACE), or link() where the file system lacks
 * it, so an existing key is never replaced, with no window between check and
 * write.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/mem.h>

#include "base/error.h"
#include "ringp2p/key.h"

#define KEYFILE_MODE 0600
/* Temporary name in the target's directory; mkostemp fills the X's. */
#define KEYFILE_TMP_NAME ".ringp2p-key-XXXXXX"

static int map_errno(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR: return RINGP2P_ENOENT;
    case EACCES:
    case EPERM:
    case EROFS: return RINGP2P_EPERM;
    case EEXIST: return RINGP2P_EEXIST;
    case ENOMEM: return RINGP2P_ENOMEM;
    }
    return RINGP2P_EIO;
}

static int sys_err(ringp2p_errinfo *ei, int e, const char *what, const char *path)
{
    char buf[128];
    return rp_err(ei, map_errno(e), "%s %s: %s", what, path, strerror_r(e, buf, sizeof(buf)));
}

RINGP2P_API int ringp2p_privkey_load(const char *path, ringp2p_privkey **out, ringp2p_errinfo *ei)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sys_err(ei, errno, "cannot open key file", path);
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return sys_err(ei, e, "cannot stat key file", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return rp_err(ei, RINGP2P_EIO, "key file %s is not a regular file", path);
    }
    if (st.st_size > RINGP2P_KEY_PROTOBUF_MAX) {
        close(fd);
        return rp_err(ei, RINGP2P_ELIMIT,
                      "key file %s is %lld bytes; a key file is one protobuf PrivateKey of at "
                      "most %d bytes",
                      path, (long long)st.st_size, RINGP2P_KEY_PROTOBUF_MAX);
    }
    /* One byte more than allowed, to notice a file that grew after fstat. */
    const size_t cap = RINGP2P_KEY_PROTOBUF_MAX + 1;
    uint8_t *buf = malloc(cap);
    if (buf == NULL) {
        close(fd);
        return rp_err(ei, RINGP2P_ENOMEM, NULL);
    }
    size_t len = 0;
    int r = 0;
    while (len < cap) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            r = sys_err(ei, errno, "cannot read key file", path);
            break;
        }
        if (n == 0) break;
        len += (size_t)n;
    }
    close(fd);
    if (r == 0 && len > RINGP2P_KEY_PROTOBUF_MAX)
        r = rp_err(ei, RINGP2P_ELIMIT, "key file %s is more than %d bytes", path,
                   RINGP2P_KEY_PROTOBUF_MAX);
    if (r == 0 && len == 0) r = rp_err(ei, RINGP2P_EPROTOBUF, "key file %s is empty", path);
    if (r == 0) {
        ringp2p_errinfo inner = { 0 };
        r = ringp2p_privkey_from_protobuf(buf, len, out, &inner);
        if (r < 0)
            r = rp_err(ei, r, "key file %s: %s", path,
                       inner.msg[0] != '\0' ? inner.msg : ringp2p_strerror(r));
    }
    OPENSSL_cleanse(buf, cap);
    free(buf);
    return r;
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Moves tmp to path; without `force`, fails with EEXIST rather than replace anything. */
static int install(const char *tmp, const char *path, int force)
{
    if (force) return rename(tmp, path);
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0) return 0;
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) return -1;
    /* File systems without RENAME_NOREPLACE: link() never replaces either. */
    if (link(tmp, path) < 0) return -1;
    unlink(tmp);
    return 0;
}

/* Makes the new directory entry durable; best effort (some file systems refuse). */
static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    (void)fsync(fd);
    close(fd);
}

RINGP2P_API int ringp2p_privkey_save(const ringp2p_privkey *key, const char *path, unsigned flags,
                                     ringp2p_errinfo *ei)
{
    if ((flags & ~RINGP2P_SAVE_FORCE) != 0)
        return rp_err(ei, RINGP2P_EINVAL, "unknown flags 0x%x", flags);
    const char *slash = strrchr(path, '/');
    size_t dlen = slash != NULL ? (size_t)(slash - path) + 1 : 0;
    size_t tmp_cap = dlen + sizeof(KEYFILE_TMP_NAME);
    char *tmp = malloc(tmp_cap + 2);
    char *dir = malloc(dlen + 2);
    uint8_t *buf = malloc(RINGP2P_KEY_PROTOBUF_MAX);
    int r = 0, fd = -1;
    bool created = false; /* tmp names a file we made and must not leave behind */
    if (tmp == NULL || dir == NULL || buf == NULL) {
        r = rp_err(ei, RINGP2P_ENOMEM, NULL);
        goto out;
    }
    snprintf(tmp, tmp_cap + 2, "%.*s%s", (int)dlen, path, KEYFILE_TMP_NAME);
    snprintf(dir, dlen + 2, "%.*s", (int)(dlen > 0 ? dlen : 1), dlen > 0 ? path : ".");

    ssize_t n = ringp2p_privkey_to_protobuf(key, buf, RINGP2P_KEY_PROTOBUF_MAX);
    if (n < 0) {
        r = rp_err(ei, (int)n, "cannot encode the key for %s", path);
        goto out;
    }
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        r = sys_err(ei, errno, "cannot create a temporary key file in", dir);
        goto out;
    }
    created = true;
    /* mkostemp's mode is subject to the umask; a key file is exactly 0600. */
    if (fchmod(fd, KEYFILE_MODE) < 0 || write_all(fd, buf, (size_t)n) < 0 || fsync(fd) < 0) {
        r = sys_err(ei, errno, "cannot write key file", tmp);
        goto out;
    }
    int c = close(fd);
    fd = -1;
    if (c < 0) {
        r = sys_err(ei, errno, "cannot write key file", tmp);
        goto out;
    }
    if (install(tmp, path, (flags & RINGP2P_SAVE_FORCE) != 0) < 0) {
        if (errno == EEXIST)
            r = rp_err(ei, RINGP2P_EEXIST,
                       "key file %s already exists; not replaced (RINGP2P_SAVE_FORCE replaces it)",
                       path);
        else
            r = sys_err(ei, errno, "cannot install key file", path);
        goto out;
    }
    sync_dir(dir);
out:
    if (fd >= 0) close(fd);
    if (r < 0 && created) unlink(tmp);
    if (buf != NULL) OPENSSL_cleanse(buf, RINGP2P_KEY_PROTOBUF_MAX);
    free(buf);
    free(dir);
    free(tmp);
    return r;
}
