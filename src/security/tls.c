/*
 * libp2p TLS 1.3 session (tls.h): libssl runs the handshake over a BIO that
 * reads the caller's input in place and writes into the caller's output;
 * after it, records are sealed and opened here (RFC 8446 §5) with the
 * application traffic secrets libssl derived.
 */
#include "security/tls.h"

#include <limits.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>

#include <openssl/aead.h>
#include <openssl/bio.h>
#include <openssl/bytestring.h>
#include <openssl/cipher.h>
#include <openssl/digest.h>
#include <openssl/err.h>
#include <openssl/hkdf.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/pool.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>

#include "base/error.h"
#include "crypto/aead.h"
#include "crypto/aesgcm.h"

/* RFC 8446 §5.1, §5.2: record header, content types, the largest ciphertext body. */
#define REC_HDR      5
#define REC_TAG      16
#define REC_BODY_MAX (RP_TLS_RECORD_PLAINTEXT_MAX + 256)
#define CT_CCS       20
#define CT_ALERT     21
#define CT_HANDSHAKE 22
#define CT_APP       23
/* RFC 8446 §4: post-handshake messages we meet. */
#define HS_NEW_SESSION_TICKET 4
#define HS_KEY_UPDATE         24
/* RFC 8446 §6: alert descriptions we send or name. */
#define AL_CLOSE_NOTIFY       0
#define AL_UNEXPECTED_MESSAGE 10
#define AL_BAD_RECORD_MAC     20
#define AL_RECORD_OVERFLOW    22
#define AL_ILLEGAL_PARAMETER  47
#define AL_DECODE_ERROR       50
#define AL_USER_CANCELED      90
/* Secrets are a hash long: SHA-256 or SHA-384 (RFC 8446 §B.4). */
#define SECRET_MAX 48
#define NONCE_LEN  12
/*
 * We rotate our sending key after this many records (RFC 8446 §5.5: AES-GCM
 * may protect 2^24.5 full records per key; 2^23 leaves a wide margin).
 */
#define KEY_UPDATE_AFTER (UINT64_C(1) << 23)

/* One direction's record protection (RFC 8446 §7.3). */
typedef struct tls_dir {
    EVP_AEAD_CTX aead; /* when !gcm_on */
    rp_aesgcm_key gcm; /* AES-GCM suites where rp_aead_aes_gcm_ours() */
    bool gcm_on;
    uint8_t iv[NONCE_LEN];
    uint8_t secret[SECRET_MAX];
    uint64_t seq;
} tls_dir;

/*
 * One node's certificates and the libssl contexts that present them (tls.h):
 * the Ed25519 one by default, the P-256 one (alt) to a peer that cannot verify
 * Ed25519.
 */
struct rp_tls_cred {
    SSL_CTX *client, *server;
    CRYPTO_BUFFER *cert, *alt_cert;
    EVP_PKEY *alt_key;
};

struct rp_tls {
    SSL *ssl; /* the handshake's (with a reference to its SSL_CTX); freed once it is done */
    const char *const *muxers;
    size_t n_muxers;
    bool initiator;
    bool no_libp2p_alpn;
    bool has_expected;
    ringp2p_peer_id expected;
    int64_t unix_now;
    bool done;
    bool closed;      /* we sent close_notify: nothing more goes out */
    bool peer_closed; /* the peer's close_notify came: reads end there, writes may go on */
    int err;          /* sticky failure, with err_info */
    ringp2p_errinfo err_info;
    int cb_err; /* failure found inside a libssl callback, with cb_info */
    ringp2p_errinfo cb_info;
    rp_sigcache *verified; /* the config's, borrowed */
    /* The P-256 certificate and key for a peer without Ed25519 (references), else NULL. */
    CRYPTO_BUFFER *alt_cert;
    EVP_PKEY *alt_key;
    ringp2p_pubkey *remote_key;
    ringp2p_peer_id remote_id;
    uint8_t remote_cert_sha256[SHA256_DIGEST_LENGTH];
    const char *muxer;
    /* The BIO's view of the caller's input during a libssl call. */
    const uint8_t *in, *in_end;
    /* The BIO writes here during a call while it has room (and the queue is empty). */
    uint8_t *direct;
    size_t direct_len, direct_cap;
    /* Output produced with no room for it, oldest first: q[q_off, q_len). */
    uint8_t *q;
    size_t q_off, q_len, q_cap;
    /* Record layer, from the handshake's end. */
    const SSL_CIPHER *cipher;
    const EVP_MD *md;
    const EVP_AEAD *aead;
    size_t secret_len;
    uint8_t client_secret[SECRET_MAX], server_secret[SECRET_MAX];
    bool have_client_secret, have_server_secret;
    tls_dir tx, rx;
    /* A post-handshake message cut by a record end: its header so far, and body left. */
    uint8_t hs_hdr[4];
    size_t hs_hdr_len;
    uint32_t hs_left;
};

/* ---- errors -------------------------------------------------------------------------------- */

static int dead(const rp_tls *s, ringp2p_errinfo *ei)
{
    if (ei != NULL) *ei = s->err_info;
    return s->err;
}

/* Makes the session dead with (code, info) and reports it. */
static int set_dead(rp_tls *s, int code, const ringp2p_errinfo *info, ringp2p_errinfo *ei)
{
    s->err = code;
    s->err_info = *info;
    s->err_info.code = code;
    return dead(s, ei);
}

/*
 * Interprets a libssl result r <= 0: 0 when it only wants more input, else the
 * session's (now sticky) error. A callback's own diagnosis wins over libssl's.
 */
static int ssl_result(rp_tls *s, int r, ringp2p_errinfo *ei)
{
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    ringp2p_errinfo info;
    int code;
    if (s->cb_err < 0) {
        code = s->cb_err;
        info = s->cb_info;
    } else if (e == SSL_ERROR_ZERO_RETURN) {
        code = rp_err(&info, RINGP2P_ECLOSED, "peer closed the TLS session (close_notify)");
    } else {
        /* The first error names the cause; a record that fails to open may show up as the
         * AEAD's BAD_DECRYPT or as libssl's bad-record-MAC, so look through the queue. */
        uint32_t pe = ERR_peek_error();
        int reason = ERR_GET_LIB(pe) == ERR_LIB_SSL ? ERR_GET_REASON(pe) : 0;
        const char *what = ERR_reason_error_string(pe);
        if (what == NULL) what = "unknown failure";
        for (uint32_t q; (q = ERR_get_error()) != 0;) {
            if ((ERR_GET_LIB(q) == ERR_LIB_CIPHER && ERR_GET_REASON(q) == CIPHER_R_BAD_DECRYPT) ||
                (ERR_GET_LIB(q) == ERR_LIB_SSL &&
                 ERR_GET_REASON(q) == SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC))
                reason = SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC;
        }
        if (reason == SSL_R_DECRYPTION_FAILED_OR_BAD_RECORD_MAC)
            code = rp_err(&info, RINGP2P_EAUTH, "TLS record did not authenticate");
        else if (reason == SSL_R_NO_APPLICATION_PROTOCOL ||
                 reason == SSL_R_TLSV1_ALERT_NO_APPLICATION_PROTOCOL)
            code = rp_err(&info, RINGP2P_ENEGOTIATION,
                          "TLS: no common ALPN protocol (muxers or \"libp2p\") (%s)", what);
        else if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
            code = rp_err(&info, RINGP2P_ECERT, "TLS client sent no certificate");
        else
            code = rp_err(&info, RINGP2P_EPROTOCOL, "TLS: %s", what);
    }
    ERR_clear_error();
    return set_dead(s, code, &info, ei);
}

/* ---- libssl callbacks ---------------------------------------------------------------------- */

static enum ssl_verify_result_t verify_cb(SSL *ssl, uint8_t *out_alert)
{
    rp_tls *s = SSL_get_app_data(ssl);
    *out_alert = SSL_AD_BAD_CERTIFICATE;
    const STACK_OF(CRYPTO_BUFFER) *chain = SSL_get0_peer_certificates(ssl);
    size_t n = chain != NULL ? sk_CRYPTO_BUFFER_num(chain) : 0;
    if (n != 1) {
        s->cb_err = rp_err(&s->cb_info, RINGP2P_ECERT,
                           "peer sent %zu certificates; exactly one is allowed", n);
        return ssl_verify_invalid;
    }
    const CRYPTO_BUFFER *leaf = sk_CRYPTO_BUFFER_value(chain, 0);
    ringp2p_pubkey *key = NULL;
    SHA256(CRYPTO_BUFFER_data(leaf), CRYPTO_BUFFER_len(leaf), s->remote_cert_sha256);
    bool known = s->verified != NULL && rp_sigcache_has(s->verified, s->remote_cert_sha256);
    int rc = rp_tls_cert_verify_known(CRYPTO_BUFFER_data(leaf), CRYPTO_BUFFER_len(leaf),
                                      s->unix_now, known, &key, &s->cb_info);
    if (rc < 0) {
        s->cb_err = rc;
        return ssl_verify_invalid;
    }
    if (!known && s->verified != NULL) rp_sigcache_put(s->verified, s->remote_cert_sha256);
    ringp2p_peer_id id;
    ringp2p_peer_id_from_pubkey(key, &id);
    if (s->has_expected && !ringp2p_peer_id_equal(&id, &s->expected)) {
        char want[RINGP2P_PEER_ID_STR_MAX], got[RINGP2P_PEER_ID_STR_MAX];
        if (ringp2p_peer_id_to_string(&s->expected, want, sizeof want) < 0) strcpy(want, "?");
        if (ringp2p_peer_id_to_string(&id, got, sizeof got) < 0) strcpy(got, "?");
        s->cb_err = rp_err(&s->cb_info, RINGP2P_EPEERMISMATCH,
                           "expected peer %s, the certificate is for %s", want, got);
        ringp2p_pubkey_free(key);
        return ssl_verify_invalid;
    }
    s->remote_key = key;
    s->remote_id = id;
    return ssl_verify_ok;
}

static bool name_eq(CBS name, const char *str)
{
    size_t n = strlen(str);
    return CBS_len(&name) == n && memcmp(CBS_data(&name), str, n) == 0;
}

/* Server: the client's first offered muxer we support, else "libp2p", else abort. */
static int alpn_select_cb(SSL *ssl, const uint8_t **out, uint8_t *out_len, const uint8_t *in,
                          unsigned in_len, void *arg)
{
    (void)arg;
    rp_tls *s = SSL_get_app_data(ssl);
    bool libp2p = false;
    CBS list, name;
    CBS_init(&list, in, in_len);
    while (CBS_get_u8_length_prefixed(&list, &name)) {
        for (size_t i = 0; i < s->n_muxers; i++) {
            if (name_eq(name, s->muxers[i])) {
                *out = (const uint8_t *)s->muxers[i];
                *out_len = (uint8_t)strlen(s->muxers[i]);
                return SSL_TLSEXT_ERR_OK;
            }
        }
        if (name_eq(name, RP_TLS_ALPN_LIBP2P)) libp2p = true;
    }
    if (libp2p) {
        static const char l[] = RP_TLS_ALPN_LIBP2P;
        *out = (const uint8_t *)l;
        *out_len = (uint8_t)(sizeof l - 1);
        return SSL_TLSEXT_ERR_OK;
    }
    s->cb_err = rp_err(&s->cb_info, RINGP2P_ENEGOTIATION,
                       "client's ALPN list has none of our muxers and no \"libp2p\"");
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/*
 * Both roles, once the peer's signature_algorithms are known (the server's
 * from its CertificateRequest, the client's from its ClientHello): a peer that
 * does not list Ed25519 gets the P-256 certificate (tls.md "Peer
 * Authentication": "choose a signature algorithm that the peer supports").
 */
static int cert_cb(SSL *ssl, void *arg)
{
    (void)arg;
    rp_tls *s = SSL_get_app_data(ssl);
    if (s->alt_cert == NULL) return 1;
    const uint16_t *algs = NULL;
    size_t n = SSL_get0_peer_verify_algorithms(ssl, &algs);
    for (size_t i = 0; i < n; i++)
        if (algs[i] == SSL_SIGN_ED25519) return 1;
    return SSL_set_chain_and_key(ssl, &s->alt_cert, 1, s->alt_key, NULL);
}

/* Hex digit value, or -1. */
static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/*
 * libssl's key-log hook, the one C interface this BoringSSL has to the TLS
 * 1.3 application traffic secrets (SSL_get_traffic_secrets is C++ only).
 * Lines are "LABEL <client random, hex> <secret, hex>" (NSS key log format);
 * we keep the two application secrets and nothing else.
 */
static void keylog_cb(const SSL *ssl, const char *line)
{
    rp_tls *s = SSL_get_app_data(ssl);
    static const char cl[] = "CLIENT_TRAFFIC_SECRET_0 ", sl[] = "SERVER_TRAFFIC_SECRET_0 ";
    uint8_t *dst;
    bool *have;
    if (strncmp(line, cl, sizeof cl - 1) == 0) {
        dst = s->client_secret;
        have = &s->have_client_secret;
    } else if (strncmp(line, sl, sizeof sl - 1) == 0) {
        dst = s->server_secret;
        have = &s->have_server_secret;
    } else {
        return;
    }
    const char *hex = strchr(line + sizeof cl - 1, ' ');
    if (hex == NULL) return;
    hex++;
    size_t n = strlen(hex);
    if (n % 2 != 0 || n / 2 > SECRET_MAX) return;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return;
        dst[i] = (uint8_t)(hi << 4 | lo);
    }
    s->secret_len = n / 2;
    *have = true;
}

/* ---- the BIO: the caller's input in place, output into the caller's buffer ------------------ */

/* Appends to the output queue. false when out of memory. */
static bool queue_put(rp_tls *s, const uint8_t *p, size_t n)
{
    if (s->q_off > 0 && s->q_off == s->q_len) s->q_off = s->q_len = 0;
    if (s->q_cap - s->q_len < n) {
        if (s->q_off > 0) {
            memmove(s->q, s->q + s->q_off, s->q_len - s->q_off);
            s->q_len -= s->q_off;
            s->q_off = 0;
        }
        if (s->q_cap - s->q_len < n) {
            size_t cap = s->q_cap * 2 > s->q_len + n ? s->q_cap * 2 : s->q_len + n + 4096;
            uint8_t *q = realloc(s->q, cap);
            if (q == NULL) return false;
            s->q = q;
            s->q_cap = cap;
        }
    }
    memcpy(s->q + s->q_len, p, n);
    s->q_len += n;
    return true;
}

static int bio_write(BIO *b, const char *data, int len)
{
    rp_tls *s = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0) return 0;
    const uint8_t *p = (const uint8_t *)data;
    size_t n = (size_t)len;
    /* straight into the caller's buffer while it has room and nothing older waits */
    if (s->direct != NULL && s->q_off == s->q_len) {
        size_t k = s->direct_cap - s->direct_len < n ? s->direct_cap - s->direct_len : n;
        memcpy(s->direct + s->direct_len, p, k);
        s->direct_len += k;
        p += k;
        n -= k;
    }
    if (n > 0 && !queue_put(s, p, n)) return -1;
    return len;
}

static int bio_read(BIO *b, char *out, int len)
{
    rp_tls *s = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    size_t avail = s->in != NULL ? (size_t)(s->in_end - s->in) : 0;
    if (avail == 0) {
        BIO_set_retry_read(b); /* "wait for more", not end of stream */
        return -1;
    }
    size_t n = len > 0 && (size_t)len < avail ? (size_t)len : avail;
    memcpy(out, s->in, n);
    s->in += n;
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

/*
 * The BIO method, one per process (it never changes): made at the first
 * session, never freed. NULL if libssl could not make it.
 */
static BIO_METHOD *bio_method_made;

static void bio_method_make(void)
{
    BIO_METHOD *m = BIO_meth_new(0, "rp_tls");
    if (m != NULL && BIO_meth_set_write(m, bio_write) && BIO_meth_set_read(m, bio_read) &&
        BIO_meth_set_ctrl(m, bio_ctrl) && BIO_meth_set_create(m, bio_create)) {
        bio_method_made = m;
        return;
    }
    BIO_meth_free(m);
}

static const BIO_METHOD *bio_method(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, bio_method_make);
    return bio_method_made;
}

/* ---- setup --------------------------------------------------------------------------------- */

static int check_config(const rp_tls_config *cfg, ringp2p_errinfo *ei)
{
    if (cfg == NULL || cfg->identity == NULL)
        return rp_err(ei, RINGP2P_EINVAL, "TLS session needs an identity key");
    if (cfg->n_muxers > RP_TLS_MUXERS_MAX)
        return rp_err(ei, RINGP2P_EINVAL, "%zu muxers, limit %d", cfg->n_muxers, RP_TLS_MUXERS_MAX);
    for (size_t i = 0; i < cfg->n_muxers; i++) {
        const char *m = cfg->muxers[i];
        if (m == NULL || m[0] == '\0' || strlen(m) > RP_TLS_ALPN_NAME_MAX ||
            strcmp(m, RP_TLS_ALPN_LIBP2P) == 0)
            return rp_err(ei, RINGP2P_EINVAL, "muxer %zu is not a usable ALPN name", i);
    }
    if (cfg->test_chain_len > 0 && (cfg->test_chain == NULL || cfg->test_key == NULL))
        return rp_err(ei, RINGP2P_EINVAL, "test chain without its key");
    return 0;
}

/* The client's ALPN list: muxers then "libp2p", each with a length byte (RFC 7301 §3.1). */
static int set_client_alpn(rp_tls *s)
{
    uint8_t wire[RP_TLS_MUXERS_MAX * (1 + RP_TLS_ALPN_NAME_MAX) + 1 + sizeof RP_TLS_ALPN_LIBP2P];
    rp_wbuf w = rp_wbuf_make(wire, sizeof wire);
    for (size_t i = 0; i < s->n_muxers; i++) {
        size_t n = strlen(s->muxers[i]);
        rp_wbuf_byte(&w, (uint8_t)n);
        rp_wbuf_put(&w, s->muxers[i], n);
    }
    if (!s->no_libp2p_alpn) {
        rp_wbuf_byte(&w, (uint8_t)(sizeof RP_TLS_ALPN_LIBP2P - 1));
        rp_wbuf_put(&w, RP_TLS_ALPN_LIBP2P, sizeof RP_TLS_ALPN_LIBP2P - 1);
    }
    /* SSL_set_alpn_protos returns 0 on success. */
    return rp_wbuf_ok(&w) && SSL_set_alpn_protos(s->ssl, wire, w.len) == 0;
}

/*
 * What we verify, advertised in signature_algorithms: Ed25519 first (a peer
 * with a choice presents it: signing and verifying cost a fraction of P-256's
 * here), then BoringSSL's default list less SHA-1. TLS 1.3 never uses the
 * PKCS#1 v1.5 entries for CertificateVerify; they say which certificate
 * signatures we take (tls_cert.h verifies those).
 */
static const uint16_t verify_algs[] = {
    SSL_SIGN_ED25519,          SSL_SIGN_ECDSA_SECP256R1_SHA256, SSL_SIGN_RSA_PSS_RSAE_SHA256,
    SSL_SIGN_RSA_PKCS1_SHA256, SSL_SIGN_ECDSA_SECP384R1_SHA384, SSL_SIGN_RSA_PSS_RSAE_SHA384,
    SSL_SIGN_RSA_PKCS1_SHA384, SSL_SIGN_RSA_PSS_RSAE_SHA512,    SSL_SIGN_RSA_PKCS1_SHA512,
};

/*
 * Key exchange: X25519 (the one key share a client sends), then P-256 for a
 * server that asks for it with a HelloRetryRequest. Pinned so that a libssl
 * whose default would add a post-quantum hybrid share (X25519MLKEM768: a much
 * larger ClientHello and more work per side) stays as measured; the spec asks
 * for no particular group, and go-libp2p, js-libp2p and rust-libp2p all take
 * X25519.
 */
static const int groups[] = { NID_X25519, NID_X9_62_prime256v1 };

/*
 * A context for one role presenting chain[0..n) with key: TLS 1.3 only, no
 * tickets or session cache, our verify, certificate, ALPN and key-log
 * callbacks (which find their session through SSL_get_app_data). Never
 * changed once made, so the sessions of every thread may share it (libssl
 * allows that). NULL on failure.
 */
static SSL_CTX *ctx_new(bool server, CRYPTO_BUFFER *const *chain, size_t n, EVP_PKEY *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_with_buffers_method());
    if (ctx == NULL) return NULL;
    /* tls.md "Handshake Protocol": TLS 1.3 and nothing lower. */
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_chain_and_key(ctx, chain, n, key, NULL) ||
        !SSL_CTX_set_verify_algorithm_prefs(ctx, verify_algs,
                                            sizeof verify_algs / sizeof verify_algs[0]) ||
        !SSL_CTX_set1_curves(ctx, groups, sizeof groups / sizeof groups[0])) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* One handshake per session: no tickets, no cache (as go-libp2p). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* Servers MUST require client authentication (tls.md "Handshake Protocol"). */
    SSL_CTX_set_custom_verify(
        ctx, server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER,
        verify_cb);
    if (server) SSL_CTX_set_alpn_select_cb(ctx, alpn_select_cb, NULL);
    SSL_CTX_set_cert_cb(ctx, cert_cb, NULL);
    SSL_CTX_set_keylog_callback(ctx, keylog_cb);
    return ctx;
}

int rp_tls_cred_new(const ringp2p_privkey *identity, int64_t unix_now, rp_tls_cred **out,
                    ringp2p_errinfo *ei)
{
    if (identity == NULL)
        return rp_err(ei, RINGP2P_EINVAL, "TLS certificate needs an identity key");
    rp_tls_cred *c = calloc(1, sizeof *c);
    if (c == NULL) return rp_err(ei, RINGP2P_ENOMEM, "out of memory for a TLS certificate");
    uint8_t *der = NULL, *alt_der = NULL;
    size_t der_len = 0, alt_der_len = 0;
    EVP_PKEY *key = NULL;
    rp_tls_cert_params p = rp_tls_cert_params_default(unix_now);
    p.ed25519_key = 1;
    int rc = rp_tls_cert_make(identity, &p, &der, &der_len, &key, ei);
    if (rc < 0) goto fail;
    p.ed25519_key = 0;
    rc = rp_tls_cert_make(identity, &p, &alt_der, &alt_der_len, &c->alt_key, ei);
    if (rc < 0) goto fail;
    rc = RINGP2P_ENOMEM;
    c->cert = CRYPTO_BUFFER_new(der, der_len, NULL);
    c->alt_cert = CRYPTO_BUFFER_new(alt_der, alt_der_len, NULL);
    if (c->cert == NULL || c->alt_cert == NULL) {
        rp_err(ei, rc, "out of memory for the TLS certificate");
        goto fail;
    }
    rc = RINGP2P_ECRYPTO;
    c->client = ctx_new(false, &c->cert, 1, key);
    c->server = ctx_new(true, &c->cert, 1, key);
    if (c->client == NULL || c->server == NULL) {
        rp_err(ei, rc, "libssl refused the TLS configuration");
        goto fail;
    }
    rc = 0;
    *out = c;
    c = NULL;
fail:
    ERR_clear_error();
    OPENSSL_free(der);
    OPENSSL_free(alt_der);
    EVP_PKEY_free(key);
    rp_tls_cred_free(c);
    return rc;
}

void rp_tls_cred_free(rp_tls_cred *c)
{
    if (c == NULL) return;
    SSL_CTX_free(c->client);
    SSL_CTX_free(c->server);
    CRYPTO_BUFFER_free(c->cert);
    CRYPTO_BUFFER_free(c->alt_cert);
    EVP_PKEY_free(c->alt_key);
    free(c);
}

rp_iov rp_tls_cred_cert(const rp_tls_cred *c)
{
    return rp_iov_make(CRYPTO_BUFFER_data(c->cert), CRYPTO_BUFFER_len(c->cert));
}

rp_iov rp_tls_cred_alt_cert(const rp_tls_cred *c)
{
    return rp_iov_make(CRYPTO_BUFFER_data(c->alt_cert), CRYPTO_BUFFER_len(c->alt_cert));
}

/* Tests: a context for one session presenting the config's test chain. */
static int test_ctx(const rp_tls_config *cfg, SSL_CTX **out, ringp2p_errinfo *ei)
{
    CRYPTO_BUFFER *bufs[4] = { NULL };
    size_t n = 0;
    if (cfg->test_chain_len > sizeof bufs / sizeof bufs[0])
        return rp_err(ei, RINGP2P_EINVAL, "test chain too long");
    int rc = 0;
    for (; n < cfg->test_chain_len; n++) {
        bufs[n] = CRYPTO_BUFFER_new(cfg->test_chain[n].base, cfg->test_chain[n].len, NULL);
        if (bufs[n] == NULL) {
            rc = rp_err(ei, RINGP2P_ENOMEM, "out of memory setting up the certificate");
            break;
        }
    }
    if (rc == 0 && (*out = ctx_new(!cfg->initiator, bufs, n, cfg->test_key)) == NULL)
        rc = rp_err(ei, RINGP2P_ECRYPTO, "libssl refused the certificate and key");
    for (size_t i = 0; i < n; i++) CRYPTO_BUFFER_free(bufs[i]);
    return rc;
}

int rp_tls_new(const rp_tls_config *cfg, rp_tls **out, ringp2p_errinfo *ei)
{
    RP_TRY(check_config(cfg, ei));
    rp_tls *s = calloc(1, sizeof *s);
    if (s == NULL) return rp_err(ei, RINGP2P_ENOMEM, "out of memory for a TLS session");
    s->muxers = cfg->muxers;
    s->n_muxers = cfg->n_muxers;
    s->initiator = cfg->initiator;
    s->no_libp2p_alpn = cfg->test_no_libp2p_alpn;
    s->unix_now = cfg->unix_now;
    s->verified = cfg->verified;
    if (cfg->expected_peer != NULL) {
        s->has_expected = true;
        s->expected = *cfg->expected_peer;
    }
    /* The context: the node's, else one of this session's own (then freed once ssl has it). */
    SSL_CTX *own_ctx = NULL, *ctx = NULL;
    rp_tls_cred *own_cred = NULL;
    int rc = 0;
    if (cfg->test_chain_len > 0) {
        rc = test_ctx(cfg, &own_ctx, ei);
        ctx = own_ctx;
    } else {
        const rp_tls_cred *cred = cfg->cred;
        if (cred == NULL) {
            rc = rp_tls_cred_new(cfg->identity, cfg->unix_now, &own_cred, ei);
            cred = own_cred;
        }
        if (rc == 0) {
            ctx = cfg->initiator ? cred->client : cred->server;
            CRYPTO_BUFFER_up_ref(cred->alt_cert);
            s->alt_cert = cred->alt_cert;
            EVP_PKEY_up_ref(cred->alt_key);
            s->alt_key = cred->alt_key;
        }
    }
    if (rc < 0) goto fail_noinfo;
    rc = RINGP2P_ENOMEM;
    s->ssl = SSL_new(ctx);
    SSL_CTX_free(own_ctx);
    rp_tls_cred_free(own_cred);
    /* one BIO both ways: reads the caller's input, writes to the caller's buffer */
    const BIO_METHOD *method = bio_method();
    if (s->ssl == NULL || method == NULL) goto fail;
    BIO *bio = BIO_new(method);
    if (bio == NULL) goto fail;
    BIO_set_data(bio, s);
    SSL_set_bio(s->ssl, bio, bio); /* one reference, owned by ssl */
    SSL_set_app_data(s->ssl, s);
    if (s->initiator) {
        SSL_set_connect_state(s->ssl);
        rc = RINGP2P_ECRYPTO;
        if (!set_client_alpn(s)) goto fail;
    } else {
        SSL_set_accept_state(s->ssl);
    }
    *out = s;
    return 0;
fail:
    rp_err(ei, rc,
           rc == RINGP2P_ENOMEM ? "out of memory setting up libssl"
                                : "libssl refused the TLS configuration");
fail_noinfo:
    ERR_clear_error();
    rp_tls_free(s);
    return rc;
}

void rp_tls_free(rp_tls *s)
{
    if (s == NULL) return;
    SSL_free(s->ssl); /* and its BIO, before the BIO's method */
    CRYPTO_BUFFER_free(s->alt_cert);
    EVP_PKEY_free(s->alt_key);
    ringp2p_pubkey_free(s->remote_key);
    EVP_AEAD_CTX_cleanup(&s->tx.aead);
    EVP_AEAD_CTX_cleanup(&s->rx.aead);
    free(s->q);
    OPENSSL_cleanse(s, sizeof *s);
    free(s);
}

/* ---- output queue -------------------------------------------------------------------------- */

size_t rp_tls_pending_output(const rp_tls *s)
{
    return s->q_len - s->q_off;
}

size_t rp_tls_take_output(rp_tls *s, uint8_t *dst, size_t cap)
{
    size_t n = rp_tls_pending_output(s);
    if (n > cap) n = cap;
    if (n == 0) return 0;
    memcpy(dst, s->q + s->q_off, n);
    s->q_off += n;
    if (s->q_off == s->q_len) s->q_off = s->q_len = 0;
    return n;
}

static void drain_into(rp_tls *s, rp_wbuf *out)
{
    if (out == NULL || out->len >= out->cap) return;
    out->len += rp_tls_take_output(s, out->base + out->len, out->cap - out->len);
}

/* ---- handshake ----------------------------------------------------------------------------- */

/* HKDF-Expand-Label(secret, label, "", out_len) (RFC 8446 §7.1). */
static bool expand_label(const EVP_MD *md, uint8_t *out, size_t out_len, const uint8_t *secret,
                         size_t secret_len, const char *label)
{
    uint8_t info[2 + 1 + 255 + 1];
    size_t ll = strlen(label), n = 0;
    info[n++] = (uint8_t)(out_len >> 8);
    info[n++] = (uint8_t)out_len;
    info[n++] = (uint8_t)(6 + ll);
    memcpy(info + n, "tls13 ", 6);
    n += 6;
    memcpy(info + n, label, ll);
    n += ll;
    info[n++] = 0; /* empty context */
    return HKDF_expand(out, out_len, md, secret, secret_len, info, n) == 1;
}

/* Keys direction d from traffic secret `secret` (RFC 8446 §7.3), sequence number 0. */
static bool dir_key(rp_tls *s, tls_dir *d, const uint8_t *secret)
{
    uint8_t key[EVP_AEAD_MAX_KEY_LENGTH];
    size_t kl = EVP_AEAD_key_length(s->aead);
    if (secret != d->secret) memcpy(d->secret, secret, s->secret_len);
    bool ok = kl <= sizeof key && expand_label(s->md, key, kl, d->secret, s->secret_len, "key") &&
              expand_label(s->md, d->iv, NONCE_LEN, d->secret, s->secret_len, "iv");
    EVP_AEAD_CTX_cleanup(&d->aead);
    EVP_AEAD_CTX_zero(&d->aead);
    rp_aesgcm_clear(&d->gcm);
    d->gcm_on = ok && (s->aead == EVP_aead_aes_128_gcm() || s->aead == EVP_aead_aes_256_gcm()) &&
                rp_aead_aes_gcm_ours() && rp_aesgcm_init(&d->gcm, key, kl) == 0;
    ok = ok && (d->gcm_on || EVP_AEAD_CTX_init(&d->aead, s->aead, key, kl, REC_TAG, NULL) == 1);
    OPENSSL_cleanse(key, sizeof key);
    d->seq = 0;
    return ok;
}

/* The next traffic secret of d and its keys (RFC 8446 §7.2). */
static bool dir_update(rp_tls *s, tls_dir *d)
{
    uint8_t next[SECRET_MAX];
    bool ok = expand_label(s->md, next, s->secret_len, d->secret, s->secret_len, "traffic upd") &&
              dir_key(s, d, next);
    OPENSSL_cleanse(next, sizeof next);
    return ok;
}

/*
 * The handshake is over: take the application keys from libssl, then drop
 * libssl (records are ours from here on; its buffers and certificate go).
 */
static int start_records(rp_tls *s, ringp2p_errinfo *ei)
{
    ringp2p_errinfo info;
    s->cipher = SSL_get_current_cipher(s->ssl);
    uint16_t id = s->cipher != NULL ? SSL_CIPHER_get_protocol_id(s->cipher) : 0;
    switch (id) {
    case 0x1301: s->aead = EVP_aead_aes_128_gcm(), s->md = EVP_sha256(); break;
    case 0x1302: s->aead = EVP_aead_aes_256_gcm(), s->md = EVP_sha384(); break;
    case 0x1303: s->aead = EVP_aead_chacha20_poly1305(), s->md = EVP_sha256(); break;
    default:
        rp_err(&info, RINGP2P_EPROTOCOL, "TLS: negotiated cipher suite 0x%04x is not supported",
               id);
        return set_dead(s, RINGP2P_EPROTOCOL, &info, ei);
    }
    if (!s->have_client_secret || !s->have_server_secret || s->secret_len != EVP_MD_size(s->md)) {
        rp_err(&info, RINGP2P_ECRYPTO, "TLS: libssl gave no application traffic secrets");
        return set_dead(s, RINGP2P_ECRYPTO, &info, ei);
    }
    const uint8_t *mine = s->initiator ? s->client_secret : s->server_secret;
    const uint8_t *theirs = s->initiator ? s->server_secret : s->client_secret;
    bool ok = dir_key(s, &s->tx, mine) && dir_key(s, &s->rx, theirs);
    OPENSSL_cleanse(s->client_secret, sizeof s->client_secret);
    OPENSSL_cleanse(s->server_secret, sizeof s->server_secret);
    if (!ok) {
        rp_err(&info, RINGP2P_ECRYPTO, "TLS: cannot key the record layer");
        return set_dead(s, RINGP2P_ECRYPTO, &info, ei);
    }
    /* records libssl already sent or read with these keys (none, as configured) */
    s->tx.seq = SSL_get_write_sequence(s->ssl);
    s->rx.seq = SSL_get_read_sequence(s->ssl);
    SSL_free(s->ssl);
    s->ssl = NULL;
    CRYPTO_BUFFER_free(s->alt_cert);
    s->alt_cert = NULL;
    EVP_PKEY_free(s->alt_key);
    s->alt_key = NULL;
    return 0;
}

/* After libssl reports the handshake done: the remote identity, the muxer, the record layer. */
static int finish(rp_tls *s, ringp2p_errinfo *ei)
{
    ringp2p_errinfo info;
    if (s->remote_key == NULL) {
        rp_err(&info, RINGP2P_EPROTOCOL, "TLS handshake ended without a verified certificate");
        return set_dead(s, RINGP2P_EPROTOCOL, &info, ei);
    }
    const uint8_t *p = NULL;
    unsigned len = 0;
    SSL_get0_alpn_selected(s->ssl, &p, &len);
    s->muxer = NULL;
    if (len > 0 &&
        !(len == sizeof RP_TLS_ALPN_LIBP2P - 1 && memcmp(p, RP_TLS_ALPN_LIBP2P, len) == 0)) {
        CBS name;
        CBS_init(&name, p, len);
        for (size_t i = 0; i < s->n_muxers && s->muxer == NULL; i++)
            if (name_eq(name, s->muxers[i])) s->muxer = s->muxers[i];
        /* libssl checks the server's pick was offered; this is a second look. */
        if (s->muxer == NULL) {
            rp_err(&info, RINGP2P_ENEGOTIATION, "ALPN selected \"%.*s\", which we did not offer",
                   (int)len, (const char *)p);
            return set_dead(s, RINGP2P_ENEGOTIATION, &info, ei);
        }
    }
    RP_TRY(start_records(s, ei));
    s->done = true;
    return RP_TLS_DONE;
}

int rp_tls_handshake(rp_tls *s, int64_t unix_now, const uint8_t **src, const uint8_t *end,
                     rp_wbuf *out, ringp2p_errinfo *ei)
{
    drain_into(s, out);
    if (s->err < 0) return dead(s, ei);
    if (s->done) return RP_TLS_DONE;
    s->unix_now = unix_now;
    s->in = *src;
    s->in_end = end;
    if (out != NULL && out->len < out->cap) {
        s->direct = out->base + out->len;
        s->direct_cap = out->cap - out->len;
        s->direct_len = 0;
    }
    ERR_clear_error();
    int r = SSL_do_handshake(s->ssl);
    const uint8_t *used = s->in;
    if (s->direct != NULL) out->len += s->direct_len;
    s->in = s->in_end = NULL;
    s->direct = NULL;
    s->direct_cap = s->direct_len = 0;
    /* On failure too the output is kept: usually the alert telling the peer why. */
    int rc = r == 1 ? finish(s, ei) : ssl_result(s, r, ei);
    if (rc >= 0) *src = used;
    return rc;
}

bool rp_tls_is_done(const rp_tls *s)
{
    return s->done && s->err == 0;
}

const ringp2p_peer_id *rp_tls_remote_peer(const rp_tls *s)
{
    return s->done ? &s->remote_id : NULL;
}

const ringp2p_pubkey *rp_tls_remote_key(const rp_tls *s)
{
    return s->done ? s->remote_key : NULL;
}

const uint8_t *rp_tls_remote_cert_sha256(const rp_tls *s)
{
    return s->done ? s->remote_cert_sha256 : NULL;
}

const char *rp_tls_muxer(const rp_tls *s)
{
    return s->done ? s->muxer : NULL;
}

const char *rp_tls_cipher(const rp_tls *s)
{
    return s->done && s->cipher != NULL ? SSL_CIPHER_standard_name(s->cipher) : NULL;
}

/* ---- records (RFC 8446 §5) ----------------------------------------------------------------- */

/* Per-record nonce: the IV XOR the 64-bit sequence number, left-padded (RFC 8446 §5.3). */
static void make_nonce(const tls_dir *d, uint8_t n[NONCE_LEN])
{
    memcpy(n, d->iv, NONCE_LEN);
    for (int i = 0; i < 8; i++) n[NONCE_LEN - 1 - i] ^= (uint8_t)(d->seq >> (8 * i));
}

/*
 * Seals `len` bytes at pt (anywhere, or exactly rec + REC_HDR) with inner
 * content type `type` and `pad` zero bytes of padding as one record at rec.
 * Returns the record's size, 0 if the AEAD failed.
 */
static size_t seal_record(rp_tls *s, uint8_t *rec, const uint8_t *pt, size_t len, uint8_t type,
                          size_t pad)
{
    uint8_t tail[1 + 256];
    size_t body = len + 1 + pad + REC_TAG;
    rec[0] = CT_APP; /* legacy_record_version 0x0303, opaque_type application_data */
    rec[1] = 3;
    rec[2] = 3;
    rec[3] = (uint8_t)(body >> 8);
    rec[4] = (uint8_t)body;
    tail[0] = type;
    memset(tail + 1, 0, pad);
    uint8_t nonce[NONCE_LEN];
    make_nonce(&s->tx, nonce);
    size_t tag_len = 0;
    if (s->tx.gcm_on) {
        if (rp_aesgcm_seal_extra(&s->tx.gcm, rec + REC_HDR, nonce, pt, len, tail, 1 + pad, rec,
                                 REC_HDR, rec + REC_HDR + len + 1 + pad) != 0)
            return 0;
        tag_len = 1 + pad + REC_TAG;
    } else if (!EVP_AEAD_CTX_seal_scatter(&s->tx.aead, rec + REC_HDR, rec + REC_HDR + len, &tag_len,
                                          1 + pad + REC_TAG, nonce, NONCE_LEN, pt, len, tail,
                                          1 + pad, rec, REC_HDR)) {
        return 0;
    }
    s->tx.seq++;
    return REC_HDR + len + tag_len;
}

/* Queues a record of inner type `type` (alerts, KeyUpdate). false when it could not. */
static bool queue_record(rp_tls *s, uint8_t type, const uint8_t *p, size_t len)
{
    uint8_t rec[REC_HDR + 8 + 1 + REC_TAG];
    if (len > 8) return false;
    size_t n = seal_record(s, rec, p, len, type, 0);
    return n > 0 && queue_put(s, rec, n);
}

/* A fatal alert for the peer (RFC 8446 §6.2), when we have keys to send it with. */
static void queue_alert(rp_tls *s, uint8_t desc)
{
    uint8_t a[2] = { desc == AL_CLOSE_NOTIFY || desc == AL_USER_CANCELED ? 1 : 2, desc };
    if (s->done) queue_record(s, CT_ALERT, a, sizeof a);
}

/* Kills the session with code (info in `info`) after queueing alert `desc` for the peer. */
static int fail_with_alert(rp_tls *s, int code, uint8_t desc, const ringp2p_errinfo *info,
                           ringp2p_errinfo *ei)
{
    queue_alert(s, desc);
    return set_dead(s, code, info, ei);
}

/* KeyUpdate (RFC 8446 §4.6.3) sealed with the current key into rec; then our key moves on. */
static size_t key_update_record(rp_tls *s, uint8_t *rec, bool request)
{
    uint8_t msg[5] = { HS_KEY_UPDATE, 0, 0, 1, request ? 1 : 0 };
    size_t n = seal_record(s, rec, msg, sizeof msg, CT_HANDSHAKE, 0);
    if (n == 0 || !dir_update(s, &s->tx)) return 0;
    return n;
}

/* Room for a KeyUpdate record seal adds on its own when the key has been used long enough. */
#define KEY_UPDATE_RECORD (REC_HDR + 5 + 1 + REC_TAG)

int rp_tls_key_update(rp_tls *s, bool request)
{
    if (s->err < 0) return s->err;
    if (!s->done) return RINGP2P_EINVAL;
    if (s->closed) return RINGP2P_ECLOSED;
    uint8_t rec[KEY_UPDATE_RECORD];
    size_t n = key_update_record(s, rec, request);
    if (n == 0 || !queue_put(s, rec, n)) {
        ringp2p_errinfo info;
        rp_err(&info, RINGP2P_ECRYPTO, "TLS: cannot update the sending key");
        return set_dead(s, RINGP2P_ECRYPTO, &info, NULL);
    }
    return 0;
}

size_t rp_tls_sealed_len(const rp_tls *s, size_t plaintext_len)
{
    (void)s;
    if (plaintext_len == 0) return 0;
    size_t records =
        (plaintext_len + RP_TLS_RECORD_PLAINTEXT_MAX - 1) / RP_TLS_RECORD_PLAINTEXT_MAX;
    return plaintext_len + records * RP_TLS_RECORD_OVERHEAD + KEY_UPDATE_RECORD;
}

ssize_t rp_tls_seal(rp_tls *s, const rp_iov *in, size_t n, uint8_t *out, size_t cap,
                    ringp2p_errinfo *ei)
{
    if (s->err < 0) return dead(s, ei);
    if (!s->done) return rp_err(ei, RINGP2P_EINVAL, "TLS handshake not done");
    if (s->closed) return rp_err(ei, RINGP2P_ECLOSED, "TLS session closed by us");
    size_t total = rp_iov_total(in, n);
    size_t need = rp_tls_pending_output(s) + rp_tls_sealed_len(s, total);
    if (cap < need)
        return rp_err(ei, RINGP2P_ENOBUF,
                      "sealing %zu bytes needs up to %zu bytes of room, have %zu", total, need,
                      cap);
    size_t w = rp_tls_take_output(s, out, cap);
    size_t i = 0, off = 0, left = total;
    while (left > 0) {
        size_t rl = left < RP_TLS_RECORD_PLAINTEXT_MAX ? left : RP_TLS_RECORD_PLAINTEXT_MAX;
        uint8_t *rec = out + w;
        while (in[i].len == off) i++, off = 0;
        const uint8_t *pt;
        if (in[i].len - off >= rl) {
            /* the record lies in one piece: sealed from where it is */
            pt = (const uint8_t *)in[i].base + off;
            off += rl;
        } else {
            /* gathered where its ciphertext goes, then sealed in place */
            uint8_t *d = rec + REC_HDR;
            for (size_t got = 0; got < rl;) {
                while (in[i].len == off) i++, off = 0;
                size_t k = in[i].len - off < rl - got ? in[i].len - off : rl - got;
                memcpy(d + got, (const uint8_t *)in[i].base + off, k);
                off += k;
                got += k;
            }
            pt = d;
        }
        size_t k = seal_record(s, rec, pt, rl, CT_APP, 0);
        if (k == 0) goto crypto_fail;
        w += k;
        left -= rl;
        if (s->tx.seq >= KEY_UPDATE_AFTER) {
            k = key_update_record(s, out + w, false);
            if (k == 0) goto crypto_fail;
            w += k;
        }
    }
    return (ssize_t)w;
crypto_fail:;
    ringp2p_errinfo info;
    rp_err(&info, RINGP2P_ECRYPTO, "TLS: sealing a record failed");
    return set_dead(s, RINGP2P_ECRYPTO, &info, ei);
}

/* Names of the alerts RFC 8446 §6 defines, for error messages. */
static const char *alert_name(uint8_t d)
{
    switch (d) {
    case 0: return "close_notify";
    case 10: return "unexpected_message";
    case 20: return "bad_record_mac";
    case 22: return "record_overflow";
    case 40: return "handshake_failure";
    case 42: return "bad_certificate";
    case 43: return "unsupported_certificate";
    case 44: return "certificate_revoked";
    case 45: return "certificate_expired";
    case 46: return "certificate_unknown";
    case 47: return "illegal_parameter";
    case 48: return "unknown_ca";
    case 49: return "access_denied";
    case 50: return "decode_error";
    case 51: return "decrypt_error";
    case 70: return "protocol_version";
    case 71: return "insufficient_security";
    case 80: return "internal_error";
    case 86: return "inappropriate_fallback";
    case 90: return "user_canceled";
    case 109: return "missing_extension";
    case 110: return "unsupported_extension";
    case 112: return "unrecognized_name";
    case 113: return "bad_certificate_status_response";
    case 115: return "unknown_psk_identity";
    case 116: return "certificate_required";
    case 120: return "no_application_protocol";
    default: return "unknown";
    }
}

/*
 * Post-handshake handshake messages (RFC 8446 §4.6), possibly cut across
 * records: NewSessionTicket is skipped (we never resume), KeyUpdate moves
 * the receiving key on and, when asked, answers and moves ours. Anything else
 * (a CertificateRequest: we never offer post-handshake authentication) ends
 * the session.
 */
static int post_handshake(rp_tls *s, const uint8_t *p, size_t n, ringp2p_errinfo *ei)
{
    ringp2p_errinfo info;
    while (n > 0) {
        if (s->hs_hdr_len < 4) {
            size_t k = 4 - s->hs_hdr_len < n ? 4 - s->hs_hdr_len : n;
            memcpy(s->hs_hdr + s->hs_hdr_len, p, k);
            s->hs_hdr_len += k;
            p += k;
            n -= k;
            if (s->hs_hdr_len < 4) break;
            uint8_t t = s->hs_hdr[0];
            s->hs_left = (uint32_t)s->hs_hdr[1] << 16 | (uint32_t)s->hs_hdr[2] << 8 | s->hs_hdr[3];
            if (t == HS_KEY_UPDATE && s->hs_left != 1) {
                rp_err(&info, RINGP2P_EPROTOCOL, "TLS: KeyUpdate of %u bytes", s->hs_left);
                return fail_with_alert(s, RINGP2P_EPROTOCOL, AL_DECODE_ERROR, &info, ei);
            }
            if (t != HS_KEY_UPDATE && t != HS_NEW_SESSION_TICKET) {
                rp_err(&info, RINGP2P_EPROTOCOL, "TLS: unexpected post-handshake message type %u",
                       t);
                return fail_with_alert(s, RINGP2P_EPROTOCOL, AL_UNEXPECTED_MESSAGE, &info, ei);
            }
            if (s->hs_left == 0) s->hs_hdr_len = 0;
            continue;
        }
        if (s->hs_hdr[0] == HS_NEW_SESSION_TICKET) {
            size_t k = s->hs_left < n ? s->hs_left : n;
            p += k;
            n -= k;
            s->hs_left -= (uint32_t)k;
            if (s->hs_left == 0) s->hs_hdr_len = 0;
            continue;
        }
        /* KeyUpdate: one byte, and the record must end with it (§5.1: no message spans a key
         * change) */
        uint8_t req = *p;
        s->hs_left = 0;
        s->hs_hdr_len = 0;
        if (req > 1) {
            rp_err(&info, RINGP2P_EPROTOCOL, "TLS: KeyUpdate request_update %u", req);
            return fail_with_alert(s, RINGP2P_EPROTOCOL, AL_ILLEGAL_PARAMETER, &info, ei);
        }
        if (n != 1) {
            rp_err(&info, RINGP2P_EPROTOCOL, "TLS: data after KeyUpdate in the same record");
            return fail_with_alert(s, RINGP2P_EPROTOCOL, AL_UNEXPECTED_MESSAGE, &info, ei);
        }
        n = 0;
        bool ok = dir_update(s, &s->rx);
        if (ok && req == 1 && !s->closed) {
            uint8_t rec[KEY_UPDATE_RECORD];
            size_t k = key_update_record(s, rec, false);
            ok = k > 0 && queue_put(s, rec, k);
        }
        if (!ok) {
            rp_err(&info, RINGP2P_ECRYPTO, "TLS: cannot follow the peer's KeyUpdate");
            return set_dead(s, RINGP2P_ECRYPTO, &info, ei);
        }
    }
    return 0;
}

/* What rp_tls_open says from the peer's close_notify on. */
static int peer_closed(ringp2p_errinfo *ei)
{
    return rp_err(ei, RINGP2P_ECLOSED, "peer closed the TLS session (close_notify)");
}

int rp_tls_open(rp_tls *s, uint8_t **src, uint8_t *end, rp_iov *plain, ringp2p_errinfo *ei)
{
    if (s->err < 0) return dead(s, ei);
    if (!s->done) return rp_err(ei, RINGP2P_EINVAL, "TLS handshake not done");
    /* RFC 8446 §6.1: data received after a closure alert MUST be ignored */
    if (s->peer_closed) return peer_closed(ei);
    ringp2p_errinfo info;
    uint8_t *p = *src;
    if (end - p < REC_HDR) return 0;
    size_t len = (size_t)p[3] << 8 | p[4];
    if (len > REC_BODY_MAX) {
        rp_err(&info, RINGP2P_EPROTOCOL, "TLS record of %zu bytes (the limit is 2^14+256)", len);
        return fail_with_alert(s, RINGP2P_EPROTOCOL, AL_RECORD_OVERFLOW, &info, ei);
    }
    if ((size_t)(end - p) - REC_HDR < len) return 0;
    if (p[0] != CT_APP) {
        if (p[0] == CT_ALERT && len == 2)
            rp_err(&info, RINGP2P_EPROTOCOL, "TLS: the peer sent an unprotected alert %s (%u)",
                   alert_name(p[REC_HDR + 1]), p[REC_HDR + 1]);
        else
            rp_err(&info, RINGP2P_EPROTOCOL,
                   "TLS: record of outer type %u after the handshake (only 23 is allowed)", p[0]);
        return fail_with_alert(s, RINGP2P_EPROTOCOL, AL_UNEXPECTED_MESSAGE, &info, ei);
    }
    uint8_t *body = p + REC_HDR;
    uint8_t nonce[NONCE_LEN];
    make_nonce(&s->rx, nonce);
    size_t n = 0;
    bool authentic;
    if (len < REC_TAG + 1) {
        authentic = false;
    } else if (s->rx.gcm_on) {
        n = len - REC_TAG;
        authentic = rp_aesgcm_open(&s->rx.gcm, body, nonce, body, n, p, REC_HDR, body + n) == 0;
    } else {
        authentic = EVP_AEAD_CTX_open(&s->rx.aead, body, &n, len, nonce, NONCE_LEN, body, len, p,
                                      REC_HDR) == 1;
    }
    if (!authentic) {
        ERR_clear_error();
        rp_err(&info, RINGP2P_EAUTH,
               "TLS record %llu did not authenticate (tampered, reordered, replayed or not from "
               "the peer)",
               (unsigned long long)s->rx.seq);
        return fail_with_alert(s, RINGP2P_EAUTH, AL_BAD_RECORD_MAC, &info, ei);
    }
    s->rx.seq++;
    /* TLSInnerPlaintext: content, type, zeros (§5.2) */
    while (n > 0 && body[n - 1] == 0) n--;
    if (n == 0) {
        rp_err(&info, RINGP2P_EPROTOCOL, "TLS record with no content type");
        return fail_with_alert(s, RINGP2P_EPROTOCOL, AL_UNEXPECTED_MESSAGE, &info, ei);
    }
    uint8_t type = body[--n];
    if (n > RP_TLS_RECORD_PLAINTEXT_MAX) {
        rp_err(&info, RINGP2P_EPROTOCOL, "TLS record of %zu plaintext bytes", n);
        return fail_with_alert(s, RINGP2P_EPROTOCOL, AL_RECORD_OVERFLOW, &info, ei);
    }
    if (type != CT_HANDSHAKE && s->hs_hdr_len > 0) {
        rp_err(&info, RINGP2P_EPROTOCOL, "TLS: record of type %u inside a handshake message", type);
        return fail_with_alert(s, RINGP2P_EPROTOCOL, AL_UNEXPECTED_MESSAGE, &info, ei);
    }
    *plain = rp_iov_make(body, 0);
    switch (type) {
    case CT_APP: plain->len = n; break;
    case CT_HANDSHAKE:
        if (n == 0) {
            rp_err(&info, RINGP2P_EPROTOCOL, "TLS: empty handshake record");
            return fail_with_alert(s, RINGP2P_EPROTOCOL, AL_UNEXPECTED_MESSAGE, &info, ei);
        }
        RP_TRY(post_handshake(s, body, n, ei));
        break;
    case CT_ALERT:
        if (n != 2) {
            rp_err(&info, RINGP2P_EPROTOCOL, "TLS alert record of %zu bytes", n);
            return fail_with_alert(s, RINGP2P_EPROTOCOL, AL_DECODE_ERROR, &info, ei);
        }
        if (body[1] == AL_USER_CANCELED) break; /* close_notify follows */
        if (body[1] == AL_CLOSE_NOTIFY) {
            /* The clean end of the peer's data, not a failure: the session lives on and
             * our side may still send, KeyUpdate and close_notify included (§6.1: closing
             * the write side "does not have any effect on its read side"). The level is
             * ignored, as for every alert (§6: "can safely be ignored"). */
            s->peer_closed = true;
            return peer_closed(ei);
        }
        rp_err(&info, RINGP2P_EPROTOCOL, "TLS: the peer sent alert %s (%u)", alert_name(body[1]),
               body[1]);
        return set_dead(s, RINGP2P_EPROTOCOL, &info, ei);
    default:
        rp_err(&info, RINGP2P_EPROTOCOL, "TLS record of content type %u", type);
        return fail_with_alert(s, RINGP2P_EPROTOCOL, AL_UNEXPECTED_MESSAGE, &info, ei);
    }
    *src = p + REC_HDR + len;
    return 1;
}

bool rp_tls_peer_closed(const rp_tls *s)
{
    return s->peer_closed;
}

int rp_tls_close(rp_tls *s)
{
    if (!s->done) return RINGP2P_EINVAL;
    if (!s->closed && s->err == 0) queue_alert(s, AL_CLOSE_NOTIFY);
    s->closed = true;
    return 0;
}

/* ---- tests and fuzzing --------------------------------------------------------------------- */

int rp_tls_test_new_keyed(uint16_t suite, bool initiator, const uint8_t *client_secret,
                          const uint8_t *server_secret, rp_tls **out)
{
    rp_tls *s = calloc(1, sizeof *s);
    if (s == NULL) return RINGP2P_ENOMEM;
    s->initiator = initiator;
    s->cipher = SSL_get_cipher_by_value(suite);
    switch (suite) {
    case 0x1301: s->aead = EVP_aead_aes_128_gcm(), s->md = EVP_sha256(); break;
    case 0x1302: s->aead = EVP_aead_aes_256_gcm(), s->md = EVP_sha384(); break;
    case 0x1303: s->aead = EVP_aead_chacha20_poly1305(), s->md = EVP_sha256(); break;
    default: free(s); return RINGP2P_EINVAL;
    }
    s->secret_len = EVP_MD_size(s->md);
    if (!dir_key(s, &s->tx, initiator ? client_secret : server_secret) ||
        !dir_key(s, &s->rx, initiator ? server_secret : client_secret)) {
        rp_tls_free(s);
        return RINGP2P_ECRYPTO;
    }
    s->done = true;
    *out = s;
    return 0;
}

ssize_t rp_tls_test_seal_inner(rp_tls *s, uint8_t type, const uint8_t *p, size_t len, size_t pad,
                               uint8_t *out, size_t cap)
{
    if (!s->done || s->err < 0) return RINGP2P_EINVAL;
    if (pad > 256 || cap < REC_HDR + len + 1 + pad + REC_TAG || len + 1 + pad + REC_TAG > 0xffff)
        return RINGP2P_ENOBUF;
    size_t n = seal_record(s, out, p, len, type, pad);
    return n > 0 ? (ssize_t)n : RINGP2P_ECRYPTO;
}
