/*
 * keycheck: the key, signature and peer-ID operations of ringp2p's public API
 * (include/ringp2p/ringp2p.h) as a command, so tests/interop/keys.mjs can hold
 * them against js-libp2p.
 *
 *   keycheck sign KEYFILE MSGFILE SIGOUT   sign MSGFILE with the key file's key
 *   keycheck verify PUBFILE MSGFILE SIGFILE
 *                                          exit 0 valid, 1 invalid, 2 error
 *   keycheck pub KEYFILE OUT               write the protobuf PublicKey
 *   keycheck peerid PUBFILE                print {"peerId","cid"} of a protobuf PublicKey
 *   keycheck peer TEXT                     parse a peer ID; print {"peerId","cid","pub"}
 *                                          (pub: hex of the inlined key or null);
 *                                          exit 1 if TEXT is not a peer ID
 *
 * Files hold raw bytes. Errors go to stderr; exit 2 for usage and I/O errors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringp2p/ringp2p.h"

enum { EXIT_INVALID = 1, EXIT_ERROR = 2 };

/* Messages are test inputs of at most a few hundred KiB. */
#define KEYCHECK_FILE_MAX (16u << 20)

/* Reads all of `path` into a malloc'd buffer (caller frees); NULL on error (reported). */
static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "keycheck: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf != NULL) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        if (cap >= KEYCHECK_FILE_MAX) {
            fprintf(stderr, "keycheck: %s: larger than %u bytes\n", path, KEYCHECK_FILE_MAX);
            free(buf);
            buf = NULL;
            break;
        }
        uint8_t *bigger = realloc(buf, cap * 2);
        if (bigger == NULL) {
            fprintf(stderr, "keycheck: %s: out of memory\n", path);
            free(buf);
        }
        buf = bigger;
        cap *= 2;
    }
    if (buf != NULL && ferror(f)) {
        fprintf(stderr, "keycheck: %s: read error\n", path);
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* Writes `len` bytes of `buf` (not retained) to `path`; 0 or -1 (reported). */
static int write_file(const char *path, const uint8_t *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        fprintf(stderr, "keycheck: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int ok = fwrite(buf, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok) fprintf(stderr, "keycheck: %s: write error\n", path);
    return ok ? 0 : -1;
}

static int fail(const char *what, int code, const ringp2p_errinfo *ei)
{
    fprintf(stderr, "keycheck: %s: %s\n", what,
            ei != NULL && ei->code != 0 ? ei->msg : ringp2p_strerror(code));
    return EXIT_ERROR;
}

static int load_key(const char *path, ringp2p_privkey **key)
{
    ringp2p_errinfo ei = { 0 };
    int rc = ringp2p_privkey_load(path, key, &ei);
    return rc < 0 ? fail(path, rc, &ei) : 0;
}

static int cmd_sign(const char *keyfile, const char *msgfile, const char *out)
{
    ringp2p_privkey *key = NULL;
    int rc = load_key(keyfile, &key);
    if (rc != 0) return rc;
    size_t len;
    uint8_t *msg = read_file(msgfile, &len);
    uint8_t sig[RINGP2P_SIGNATURE_MAX];
    rc = EXIT_ERROR;
    if (msg != NULL) {
        ssize_t n = ringp2p_privkey_sign(key, msg, len, sig, sizeof(sig));
        if (n < 0)
            rc = fail("sign", (int)n, NULL);
        else
            rc = write_file(out, sig, (size_t)n) == 0 ? 0 : EXIT_ERROR;
    }
    free(msg);
    ringp2p_privkey_free(key);
    return rc;
}

static int load_pub(const char *path, ringp2p_pubkey **pub)
{
    size_t len;
    uint8_t *buf = read_file(path, &len);
    if (buf == NULL) return EXIT_ERROR;
    ringp2p_errinfo ei = { 0 };
    int rc = ringp2p_pubkey_from_protobuf(buf, len, pub, &ei);
    free(buf);
    return rc < 0 ? fail(path, rc, &ei) : 0;
}

static int cmd_verify(const char *pubfile, const char *msgfile, const char *sigfile)
{
    ringp2p_pubkey *pub = NULL;
    int rc = load_pub(pubfile, &pub);
    if (rc != 0) return rc;
    size_t mlen = 0, slen = 0;
    uint8_t *msg = read_file(msgfile, &mlen);
    uint8_t *sig = msg != NULL ? read_file(sigfile, &slen) : NULL;
    rc = EXIT_ERROR;
    if (sig != NULL) {
        int v = ringp2p_pubkey_verify(pub, msg, mlen, sig, slen);
        if (v == 0) {
            rc = 0;
        } else if (v == RINGP2P_ESIGNATURE) {
            fprintf(stderr, "keycheck: %s\n", ringp2p_strerror(v));
            rc = EXIT_INVALID;
        } else {
            rc = fail("verify", v, NULL);
        }
    }
    free(sig);
    free(msg);
    ringp2p_pubkey_free(pub);
    return rc;
}

static int cmd_pub(const char *keyfile, const char *out)
{
    ringp2p_privkey *key = NULL;
    int rc = load_key(keyfile, &key);
    if (rc != 0) return rc;
    uint8_t buf[RINGP2P_KEY_PROTOBUF_MAX];
    ssize_t n = ringp2p_pubkey_to_protobuf(ringp2p_privkey_public(key), buf, sizeof(buf));
    if (n < 0)
        rc = fail("public key encoding", (int)n, NULL);
    else
        rc = write_file(out, buf, (size_t)n) == 0 ? 0 : EXIT_ERROR;
    ringp2p_privkey_free(key);
    return rc;
}

/* Prints {"peerId":..,"cid":..[,"pub":..]} for `id`; the pub field only when with_pub. */
static int print_peer(const ringp2p_peer_id *id, int with_pub)
{
    char b58[RINGP2P_PEER_ID_STR_MAX], cid[RINGP2P_PEER_ID_STR_MAX];
    ssize_t n = ringp2p_peer_id_to_string(id, b58, sizeof(b58));
    if (n < 0) return fail("peer ID to text", (int)n, NULL);
    n = ringp2p_peer_id_to_cid_string(id, cid, sizeof(cid));
    if (n < 0) return fail("peer ID to CID text", (int)n, NULL);
    printf("{\"peerId\":\"%s\",\"cid\":\"%s\"", b58, cid);
    if (with_pub) {
        ringp2p_pubkey *pub = NULL;
        int rc = ringp2p_peer_id_extract_pubkey(id, &pub);
        if (rc == RINGP2P_ENOENT) {
            printf(",\"pub\":null");
        } else if (rc < 0) {
            printf("}\n");
            return fail("inlined public key", rc, NULL);
        } else {
            uint8_t buf[RINGP2P_KEY_PROTOBUF_MAX];
            n = ringp2p_pubkey_to_protobuf(pub, buf, sizeof(buf));
            ringp2p_pubkey_free(pub);
            if (n < 0) {
                printf("}\n");
                return fail("public key encoding", (int)n, NULL);
            }
            printf(",\"pub\":\"");
            for (ssize_t i = 0; i < n; i++) printf("%02x", buf[i]);
            printf("\"");
        }
    }
    printf("}\n");
    return fflush(stdout) == 0 ? 0 : EXIT_ERROR;
}

static int cmd_peerid(const char *pubfile)
{
    ringp2p_pubkey *pub = NULL;
    int rc = load_pub(pubfile, &pub);
    if (rc != 0) return rc;
    ringp2p_peer_id id;
    rc = ringp2p_peer_id_from_pubkey(pub, &id);
    if (rc < 0)
        rc = fail("peer ID of the public key", rc, NULL);
    else if (!ringp2p_peer_id_matches(&id, pub))
        rc = fail("peer ID does not match its own key", RINGP2P_EPEERID, NULL);
    else
        rc = print_peer(&id, 0);
    ringp2p_pubkey_free(pub);
    return rc;
}

static int cmd_peer(const char *text)
{
    ringp2p_peer_id id;
    ringp2p_errinfo ei = { 0 };
    int rc = ringp2p_peer_id_parse(text, strlen(text), &id, &ei);
    if (rc < 0) {
        fail(text, rc, &ei);
        return EXIT_INVALID;
    }
    return print_peer(&id, 1);
}

static int usage(void)
{
    fputs("usage: keycheck sign KEYFILE MSGFILE SIGOUT | verify PUBFILE MSGFILE SIGFILE |\n"
          "       pub KEYFILE OUT | peerid PUBFILE | peer TEXT\n",
          stderr);
    return EXIT_ERROR;
}

int main(int argc, char **argv)
{
    if (argc < 2) return usage();
    const char *cmd = argv[1];
    if (strcmp(cmd, "sign") == 0 && argc == 5) return cmd_sign(argv[2], argv[3], argv[4]);
    if (strcmp(cmd, "verify") == 0 && argc == 5) return cmd_verify(argv[2], argv[3], argv[4]);
    if (strcmp(cmd, "pub") == 0 && argc == 4) return cmd_pub(argv[2], argv[3]);
    if (strcmp(cmd, "peerid") == 0 && argc == 3) return cmd_peerid(argv[2]);
    if (strcmp(cmd, "peer") == 0 && argc == 3) return cmd_peer(argv[2]);
    return usage();
}
