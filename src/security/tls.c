/* libp2p TLS 1.3 session over memory BIOs (tls.h). */
#include "security/tls.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bytestring.h>
#include <openssl/cipher.h>
#include <openssl/err.h>
#include <openssl/mem.h>
#include <openssl/pool.h>
#include <openssl/ssl.h>

#include "base/error.h"

/*
 * Room rp_tls_sealed_len keeps for a post-handshake message libssl may add
 * ahead of application data (a KeyUpdate answer: one 5+1+4+16-byte record).
 */
#define SEAL_SLACK 64

struct rp_tls {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    const char *const *muxers;
    size_t n_muxers;
    bool initiator;
    bool no_libp2p_alpn;
    bool has_expected;
    ringp2p_peer_id expected;
    int64_t unix_now;
    bool done;
    bool closed;
    int err; /* sticky failure, with err_info */
    ringp2p_errinfo err_info;
    int cb_err; /* failure found inside a libssl callback, with cb_info */
    ringp2p_errinfo cb_info;
    ringp2p_pubkey *remote_key;
    ringp2p_peer_id remote_id;
    const char *muxer;
    uint8_t stage[RP_TLS_RECORD_PLAINTEXT_MAX]; /* gathers small iovs into full records */
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
    int rc = rp_tls_cert_verify(CRYPTO_BUFFER_data(leaf), CRYPTO_BUFFER_len(leaf), s->unix_now,
                                &key, &s->cb_info);
    if (rc < 0) {
        s->cb_err = rc;
        return ssl_verify_invalid;
    }
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
    rp_tls *s = arg;
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

/* Puts the certificate chain and key on the context. */
static int set_cert(rp_tls *s, const rp_tls_config *cfg, ringp2p_errinfo *ei)
{
    CRYPTO_BUFFER *bufs[4] = { NULL };
    size_t n = 0;
    uint8_t *der = NULL;
    size_t der_len = 0;
    EVP_PKEY *key = NULL;
    int rc = RINGP2P_ENOMEM;

    if (cfg->test_chain_len > 0) {
        if (cfg->test_chain_len > sizeof bufs / sizeof bufs[0])
            return rp_err(ei, RINGP2P_EINVAL, "test chain too long");
        key = cfg->test_key;
        EVP_PKEY_up_ref(key);
        for (; n < cfg->test_chain_len; n++) {
            bufs[n] = CRYPTO_BUFFER_new(cfg->test_chain[n].base, cfg->test_chain[n].len, NULL);
            if (bufs[n] == NULL) goto out;
        }
    } else {
        rp_tls_cert_params p = rp_tls_cert_params_default(cfg->unix_now);
        rc = rp_tls_cert_make(cfg->identity, &p, &der, &der_len, &key, ei);
        if (rc < 0) goto out;
        rc = RINGP2P_ENOMEM;
        bufs[n] = CRYPTO_BUFFER_new(der, der_len, NULL);
        if (bufs[n] == NULL) goto out;
        n++;
    }
    if (!SSL_CTX_set_chain_and_key(s->ctx, bufs, n, key, NULL)) {
        rc = rp_err(ei, RINGP2P_ECRYPTO, "libssl refused the certificate and key");
        goto out;
    }
    rc = 0;
out:
    if (rc == RINGP2P_ENOMEM) rp_err(ei, rc, "out of memory setting up the certificate");
    for (size_t i = 0; i < n; i++) CRYPTO_BUFFER_free(bufs[i]);
    OPENSSL_free(der);
    EVP_PKEY_free(key);
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
    if (cfg->expected_peer != NULL) {
        s->has_expected = true;
        s->expected = *cfg->expected_peer;
    }
    int rc = RINGP2P_ECRYPTO;
    s->ctx = SSL_CTX_new(TLS_with_buffers_method());
    if (s->ctx == NULL) goto fail;
    /* tls.md "Handshake Protocol": TLS 1.3 and nothing lower. */
    if (!SSL_CTX_set_min_proto_version(s->ctx, TLS1_3_VERSION) ||
        !SSL_CTX_set_max_proto_version(s->ctx, TLS1_3_VERSION))
        goto fail;
    /* One handshake per session: no tickets, no cache (as go-libp2p). */
    SSL_CTX_set_options(s->ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(s->ctx, SSL_SESS_CACHE_OFF);
    /* Servers MUST require client authentication (tls.md "Handshake Protocol"). */
    SSL_CTX_set_custom_verify(
        s->ctx, s->initiator ? SSL_VERIFY_PEER : SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
        verify_cb);
    if (!s->initiator) SSL_CTX_set_alpn_select_cb(s->ctx, alpn_select_cb, s);
    rc = set_cert(s, cfg, ei);
    if (rc < 0) goto fail_noinfo;
    rc = RINGP2P_ENOMEM;
    s->ssl = SSL_new(s->ctx);
    s->rbio = BIO_new(BIO_s_mem());
    s->wbio = BIO_new(BIO_s_mem());
    if (s->ssl == NULL || s->rbio == NULL || s->wbio == NULL) {
        BIO_free(s->rbio);
        BIO_free(s->wbio);
        goto fail;
    }
    /* An empty input BIO means "wait for more", not end of stream. */
    BIO_set_mem_eof_return(s->rbio, -1);
    SSL_set_bio(s->ssl, s->rbio, s->wbio);
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
    SSL_free(s->ssl);
    SSL_CTX_free(s->ctx);
    ringp2p_pubkey_free(s->remote_key);
    OPENSSL_cleanse(s->stage, sizeof s->stage);
    free(s);
}

/* ---- byte movement ------------------------------------------------------------------------- */

/* Copies the host's input into libssl's input BIO; *src ends at end. */
static int feed(rp_tls *s, const uint8_t **src, const uint8_t *end, ringp2p_errinfo *ei)
{
    while (*src < end) {
        size_t n = (size_t)(end - *src);
        if (n > INT_MAX) n = INT_MAX;
        int w = BIO_write(s->rbio, *src, (int)n);
        if (w <= 0) {
            ringp2p_errinfo info;
            rp_err(&info, RINGP2P_ENOMEM, "cannot buffer %zu received bytes", n);
            return set_dead(s, RINGP2P_ENOMEM, &info, ei);
        }
        *src += w;
    }
    return 0;
}

size_t rp_tls_pending_output(const rp_tls *s)
{
    return BIO_pending(s->wbio);
}

size_t rp_tls_take_output(rp_tls *s, uint8_t *dst, size_t cap)
{
    size_t got = 0;
    while (got < cap && BIO_pending(s->wbio) > 0) {
        size_t n = cap - got;
        if (n > INT_MAX) n = INT_MAX;
        int r = BIO_read(s->wbio, dst + got, (int)n);
        if (r <= 0) break;
        got += (size_t)r;
    }
    return got;
}

static void drain_into(rp_tls *s, rp_wbuf *out)
{
    if (out == NULL || out->len >= out->cap) return;
    out->len += rp_tls_take_output(s, out->base + out->len, out->cap - out->len);
}

/* ---- handshake ----------------------------------------------------------------------------- */

/* After libssl reports the handshake done: the remote identity and the muxer. */
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
    s->done = true;
    return RP_TLS_DONE;
}

int rp_tls_handshake(rp_tls *s, int64_t unix_now, const uint8_t **src, const uint8_t *end,
                     rp_wbuf *out, ringp2p_errinfo *ei)
{
    if (s->err < 0) {
        drain_into(s, out);
        return dead(s, ei);
    }
    s->unix_now = unix_now;
    int rc = feed(s, src, end, ei);
    if (rc < 0) return rc;
    if (s->done) {
        drain_into(s, out);
        return RP_TLS_DONE;
    }
    ERR_clear_error();
    int r = SSL_do_handshake(s->ssl);
    if (r == 1)
        rc = finish(s, ei);
    else
        rc = ssl_result(s, r, ei);
    /* Also on failure: the queued output is usually the alert telling the peer why. */
    drain_into(s, out);
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

const char *rp_tls_muxer(const rp_tls *s)
{
    return s->done ? s->muxer : NULL;
}

/* ---- records ------------------------------------------------------------------------------- */

size_t rp_tls_sealed_len(const rp_tls *s, size_t plaintext_len)
{
    if (plaintext_len == 0) return 0;
    size_t records =
        (plaintext_len + RP_TLS_RECORD_PLAINTEXT_MAX - 1) / RP_TLS_RECORD_PLAINTEXT_MAX;
    return plaintext_len + records * SSL_max_seal_overhead(s->ssl) + SEAL_SLACK;
}

/* SSL_write of p[n]; libssl cuts it into full records (a memory BIO never blocks). */
static int write_all(rp_tls *s, const uint8_t *p, size_t n, ringp2p_errinfo *ei)
{
    while (n > 0) {
        /* The largest multiple of a record that fits an int. */
        size_t k = n <= (size_t)INT_MAX ? n : (size_t)INT_MAX / 16384 * 16384;
        ERR_clear_error();
        int r = SSL_write(s->ssl, p, (int)k);
        if (r <= 0) {
            int rc = ssl_result(s, r, ei);
            if (rc == 0) {
                ringp2p_errinfo info;
                rp_err(&info, RINGP2P_EPROTOCOL, "libssl could not write to a memory BIO");
                rc = set_dead(s, RINGP2P_EPROTOCOL, &info, ei);
            }
            return rc;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
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
    const size_t max = RP_TLS_RECORD_PLAINTEXT_MAX;
    size_t fill = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = in[i].base;
        size_t len = in[i].len;
        while (len > 0) {
            if (fill == 0 && len >= max) {
                /* Whole records straight from the caller's buffer. */
                size_t k = len - len % max;
                RP_TRY(write_all(s, p, k, ei));
                p += k;
                len -= k;
                continue;
            }
            size_t k = max - fill < len ? max - fill : len;
            memcpy(s->stage + fill, p, k);
            fill += k;
            p += k;
            len -= k;
            if (fill == max) {
                RP_TRY(write_all(s, s->stage, max, ei));
                fill = 0;
            }
        }
    }
    if (fill > 0) RP_TRY(write_all(s, s->stage, fill, ei));
    return (ssize_t)rp_tls_take_output(s, out, cap);
}

ssize_t rp_tls_open(rp_tls *s, const uint8_t **src, const uint8_t *end, uint8_t *dst, size_t cap,
                    ringp2p_errinfo *ei)
{
    if (s->err < 0) return dead(s, ei);
    if (!s->done) return rp_err(ei, RINGP2P_EINVAL, "TLS handshake not done");
    RP_TRY(feed(s, src, end, ei));
    size_t got = 0;
    while (got < cap) {
        size_t k = cap - got;
        if (k > INT_MAX) k = INT_MAX;
        ERR_clear_error();
        int r = SSL_read(s->ssl, dst + got, (int)k);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        int rc = ssl_result(s, r, ei);
        if (rc < 0) return rc;
        break;
    }
    return (ssize_t)got;
}

int rp_tls_close(rp_tls *s)
{
    if (!s->done) return RINGP2P_EINVAL;
    if (!s->closed) {
        s->closed = true;
        ERR_clear_error();
        SSL_shutdown(s->ssl);
        ERR_clear_error();
    }
    return 0;
}
