#include <criterion/criterion.h>

#include "testutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/obj.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "security/tls.h"
#include "security/tls_cert.h"

/* Any fixed wall-clock time; the vectors are valid 1975..4096. */
#define NOW ((int64_t)1700000000)

static ringp2p_privkey *gen(ringp2p_key_type t)
{
    ringp2p_privkey *k = NULL;
    cr_assert_eq(ringp2p_privkey_generate(t, &k), 0);
    return k;
}

static const ringp2p_key_type all_types[] = { RINGP2P_KEY_ED25519, RINGP2P_KEY_SECP256K1,
                                              RINGP2P_KEY_ECDSA, RINGP2P_KEY_RSA };

/* ---- spec vectors (tls.md "Test vectors") -------------------------------------------------- */

static const struct {
    const char *cert, *peer; /* peer NULL: must fail with `code` */
    int code;
} vectors[] = {
    /* 1. Ed25519 */
    { "308201ae30820156a0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a13096c"
      "69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f343039363031"
      "30313133303030305a302031123010060355040a13096c69627032702e696f310a3008060355040513013130"
      "59301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba132721bb9"
      "d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37e381569e"
      "a37c307a3078060a2b0601040183a25a0101046a3068042408011220a77f1d92fedb59dddaea5a1c4abd1ac2fb"
      "de7d7b879ed364501809923d7c11b90440d90d2769db992d5e6195dbb08e706b6651e024fda6cfb8846694a435"
      "519941cac215a8207792e42849cccc6cd8136c6e4bde92a58c5e08cfd4206eb5fe0bf909300a06082a8648ce3d"
      "0403020346003043021f50f6b6c52711a881778718238f650c9fb48943ae6ee6d28427dc6071ae55e702203625"
      "f116a7a454db9c56986c82a25682f7248ea1cb764d322ea983ed36a31b77",
      "12D3KooWM6CgA9iBFZmcYAHA6A2qvbAxqfkmrYiRQuz3XEsk4Ksv", 0 },
    /* 2. ECDSA */
    { "308201f63082019da0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a13096c"
      "69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f343039363031"
      "30313133303030305a302031123010060355040a13096c69627032702e696f310a3008060355040513013130"
      "59301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba132721bb9"
      "d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37e381569e"
      "a381c23081bf3081bc060a2b0601040183a25a01010481ad3081aa045f0803125b3059301306072a8648ce3d02"
      "0106082a8648ce3d03010703420004bf30511f909414ebdd3242178fd290f093a551cf75c973155de0bb5a96fe"
      "df6cb5d52da7563e794b512f66e60c7f55ba8a3acf3dd72a801980d205e8a1ad29f2044730450220064ea81247"
      "74caf8f50e57f436aa62350ce652418c019df5d98a3ac666c9386a022100aa59d704a931b5f72fb9222cb6cc51"
      "f954d04a4e2e5450f8805fe8918f71eaae300a06082a8648ce3d04030203470030440220799395b0b6c1e940a7"
      "e4484705f610ab51ed376f19ff9d7c16757cfbf61b8d4302206205c03fbb0f95205c779be86581d3e31c01871a"
      "d5d1f3435bcf375cb0e5088a",
      "QmfXbAwNjJLXfesgztEHe8HwgVDCMMpZ9Eax1HYq6hn9uE", 0 },
    /* 3. secp256k1 */
    { "308201ba3082015fa0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a13096c"
      "69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f343039363031"
      "30313133303030305a302031123010060355040a13096c69627032702e696f310a3008060355040513013130"
      "59301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba132721bb9"
      "d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37e381569e"
      "a38184308181307f060a2b0601040183a25a01010471306f0425080212210206dc6968726765b820f050263ece"
      "cf7f71e4955892776c0970542efd689d2382044630440220145e15a991961f0d08cd15425bb95ec93f6ffa03c5"
      "a385eedc34ecf464c7a8ab022026b3109b8a3f40ef833169777eb2aa337cfb6282f188de0666d1bcec2a4690dd"
      "300a06082a8648ce3d0403020349003046022100e1a217eeef9ec9204b3f774a08b70849646b6a1e6b8b27f93d"
      "c00ed58545d9fe022100b00dafa549d0f03547878338c7b15e7502888f6d45db387e5ae6b5d46899cef0",
      "16Uiu2HAkutTMoTzDw1tCvSRtu6YoixJwS46S1ZFxW8hSx9fWHiPs", 0 },
    /* 4. invalid: the signature is not by the key in the extension */
    { "308201f73082019da0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a13096c"
      "69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f343039363031"
      "30313133303030305a302031123010060355040a13096c69627032702e696f310a3008060355040513013130"
      "59301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba132721bb9"
      "d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37e381569e"
      "a381c23081bf3081bc060a2b0601040183a25a01010481ad3081aa045f0803125b3059301306072a8648ce3d02"
      "0106082a8648ce3d03010703420004bf30511f909414ebdd3242178fd290f093a551cf75c973155de0bb5a96fe"
      "df6cb5d52da7563e794b512f66e60c7f55ba8a3acf3dd72a801980d205e8a1ad29f204473045022100bb6e0357"
      "7b7cc7a3cd1558df0da2b117dfdcc0399bc2504ebe7de6f65cade72802206de96e2a5be9b6202adba24ee0362e"
      "490641ac45c240db71fe955f2c5cf8df6e300a06082a8648ce3d0403020348003045022100e847f267f4371735"
      "8f850355bdcabbefb2cfbf8a3c043b203a14788a092fe8db022027c1d04a2d41fd6b57a7e8b3989e470325de44"
      "06e52e084e34a3fd56eef0d0df",
      NULL, RINGP2P_ESIGNATURE },
};

Test(tls_cert, spec_vectors)
{
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        uint8_t der[2048];
        size_t n = unhex(vectors[i].cert, der, sizeof der);
        ringp2p_pubkey *key = NULL;
        ringp2p_errinfo ei = { 0 };
        int rc = rp_tls_cert_verify(der, n, NOW, &key, &ei);
        if (vectors[i].peer == NULL) {
            cr_assert_eq(rc, vectors[i].code, "vector %zu: %d %s", i + 1, rc, ei.msg);
            cr_assert_null(key);
            continue;
        }
        cr_assert_eq(rc, 0, "vector %zu: %s", i + 1, ei.msg);
        ringp2p_peer_id id;
        char text[RINGP2P_PEER_ID_STR_MAX];
        ringp2p_peer_id_from_pubkey(key, &id);
        cr_assert_gt(ringp2p_peer_id_to_string(&id, text, sizeof text), 0);
        cr_assert_str_eq(text, vectors[i].peer, "vector %zu", i + 1);
        ringp2p_pubkey_free(key);
        /* The vectors are valid 1975-01-01 13:00 .. 4096: a second before is too early. */
        rc = rp_tls_cert_verify(der, n, 157813200 - 1, &key, &ei);
        cr_assert_eq(rc, RINGP2P_ECERT, "vector %zu before NotBefore: %d", i + 1, rc);
        rc = rp_tls_cert_verify(der, n, 157813200, &key, &ei);
        cr_assert_eq(rc, 0, "vector %zu at NotBefore: %s", i + 1, ei.msg);
        ringp2p_pubkey_free(key);
        /* Every truncation is refused without over-reading (ASan watches). */
        for (size_t k = 0; k < n; k += 7) {
            uint8_t *cut = malloc(k ? k : 1);
            memcpy(cut, der, k);
            cr_assert_lt(rp_tls_cert_verify(cut, k, NOW, &key, NULL), 0, "prefix %zu", k);
            free(cut);
        }
        /* Trailing bytes after the certificate. */
        der[n] = 0;
        cr_assert_eq(rp_tls_cert_verify(der, n + 1, NOW, &key, &ei), RINGP2P_ECERT);
    }
}

/* ---- SignedKey codec ----------------------------------------------------------------------- */

static const struct sk_case {
    const char *name, *hex;
    int code; /* 0: decodes */
    size_t pk_len, sig_len;
} sk_cases[] = {
    { "minimal", "30060401aa0401bb", 0, 1, 1 },
    { "empty fields", "300404000400", 0, 0, 0 },
    { "trailing after SEQUENCE is left", "300404000400ff", 0, 0, 0 },
    { "not a SEQUENCE", "310404000400", RINGP2P_ECERT, 0, 0 },
    { "constructed OCTET STRING", "30082402040004000400", RINGP2P_ECERT, 0, 0 },
    { "non-minimal length", "3081060401aa0401bb", RINGP2P_ECERT, 0, 0 },
    { "indefinite length", "30800401aa0401bb0000", RINGP2P_ECERT, 0, 0 },
    { "one field", "30030401aa", RINGP2P_ECERT, 0, 0 },
    { "three fields", "30090401aa0401bb0401cc", RINGP2P_ECERT, 0, 0 },
    { "INTEGER signature", "30060401aa0201bb", RINGP2P_ECERT, 0, 0 },
    { "length past end", "30070401aa0401bb", RINGP2P_ECERT, 0, 0 },
    { "empty", "", RINGP2P_ECERT, 0, 0 },
};

Test(tls_cert, signed_key_table)
{
    for (size_t i = 0; i < sizeof sk_cases / sizeof sk_cases[0]; i++) {
        const struct sk_case *c = &sk_cases[i];
        uint8_t buf[64];
        size_t n = unhex(c->hex, buf, sizeof buf);
        const uint8_t *p = buf;
        rp_tls_signed_key sk;
        ringp2p_errinfo ei = { 0 };
        int rc = rp_tls_signed_key_decode(&p, buf + n, &sk, &ei);
        cr_assert_eq(rc, c->code, "%s: %d %s", c->name, rc, ei.msg);
        if (rc < 0) {
            cr_assert_eq(p, buf, "%s: cursor moved on error", c->name);
            cr_assert_neq(ei.msg[0], '\0', "%s", c->name);
            continue;
        }
        cr_assert_eq(sk.public_key.len, c->pk_len, "%s", c->name);
        cr_assert_eq(sk.signature.len, c->sig_len, "%s", c->name);
        /* Re-encoding gives back exactly the bytes consumed. */
        uint8_t out[64];
        ssize_t m = rp_tls_signed_key_encode(sk.public_key.base, sk.public_key.len,
                                             sk.signature.base, sk.signature.len, out, sizeof out);
        cr_assert_eq(m, p - buf, "%s", c->name);
        cr_assert_arr_eq(out, buf, (size_t)m, "%s", c->name);
    }
}

Test(tls_cert, signed_key_long_lengths_and_limits)
{
    /* Lengths in one, two and three bytes round-trip; limits are enforced. */
    static const size_t sizes[][2] = {
        { 127, 128 }, { 255, 256 }, { 8192, 1024 }, { 8193, 1 }, { 1, 1025 }
    };
    uint8_t *pk = calloc(1, 9000), *sig = calloc(1, 2000), *buf = malloc(12000);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t pl = sizes[i][0], sl = sizes[i][1];
        size_t want = rp_tls_signed_key_len(pl, sl);
        cr_assert_eq(rp_tls_signed_key_encode(pk, pl, sig, sl, NULL, 0), RINGP2P_ENOBUF);
        cr_assert_eq(rp_tls_signed_key_encode(pk, pl, sig, sl, buf, want - 1), RINGP2P_ENOBUF);
        ssize_t n = rp_tls_signed_key_encode(pk, pl, sig, sl, buf, 12000);
        cr_assert_eq(n, (ssize_t)want);
        const uint8_t *p = buf;
        rp_tls_signed_key sk;
        int rc = rp_tls_signed_key_decode(&p, buf + n, &sk, NULL);
        bool over = pl > RP_TLS_SIGNED_KEY_PK_MAX || sl > RINGP2P_SIGNATURE_MAX;
        cr_assert_eq(rc, over ? RINGP2P_ELIMIT : 0, "sizes %zu/%zu: %d", pl, sl, rc);
        if (!over) cr_assert(sk.public_key.len == pl && sk.signature.len == sl && p == buf + n);
    }
    free(pk);
    free(sig);
    free(buf);
}

/* ---- our certificates ---------------------------------------------------------------------- */

static int make_and_verify(const ringp2p_privkey *k, const rp_tls_cert_params *p, int64_t now,
                           ringp2p_errinfo *ei)
{
    uint8_t *der = NULL;
    size_t len = 0;
    EVP_PKEY *key = NULL;
    cr_assert_eq(rp_tls_cert_make(k, p, &der, &len, &key, ei), 0, "%s", ei->msg);
    cr_assert_eq(EVP_PKEY_id(key), p->ed25519_key ? EVP_PKEY_ED25519 : EVP_PKEY_EC);
    ringp2p_pubkey *id = NULL;
    int rc = rp_tls_cert_verify(der, len, now, &id, ei);
    if (rc == 0) {
        cr_assert(ringp2p_pubkey_equal(id, ringp2p_privkey_public(k)));
        ringp2p_pubkey_free(id);
    } else {
        cr_assert_null(id);
    }
    id = NULL;
    /* A certificate that once passed (at its NotBefore): the known path gives the same verdict. */
    if (rp_tls_cert_verify(der, len, p->not_before, &id, NULL) == 0) {
        ringp2p_pubkey_free(id);
        id = NULL;
        ringp2p_errinfo kei = { 0 };
        int krc = rp_tls_cert_verify_known(der, len, now, true, &id, &kei);
        cr_assert_eq(krc, rc, "known path %d (%s), long path %d", krc, kei.msg, rc);
        if (krc == 0) cr_assert(ringp2p_pubkey_equal(id, ringp2p_privkey_public(k)));
        ringp2p_pubkey_free(id);
    }
    OPENSSL_free(der);
    EVP_PKEY_free(key);
    return rc;
}

Test(tls_cert, roundtrip_every_key_type, .timeout = 60)
{
    for (size_t t = 0; t < 4; t++) {
        ringp2p_privkey *k = gen(all_types[t]);
        rp_tls_cert_params p = rp_tls_cert_params_default(NOW);
        ringp2p_errinfo ei = { 0 };
        for (int ed = 0; ed < 2; ed++) {
            p.ed25519_key = ed;
            p.ext_critical = 1;
            cr_assert_eq(make_and_verify(k, &p, NOW, &ei), 0, "type %zu/%d: %s", t, ed, ei.msg);
            /* go-libp2p leaves the extension non-critical: also fine. */
            p.ext_critical = 0;
            cr_assert_eq(make_and_verify(k, &p, NOW, &ei), 0, "type %zu/%d: %s", t, ed, ei.msg);
        }
        ringp2p_privkey_free(k);
    }
}

Test(tls_cert, bad_certificates)
{
    ringp2p_privkey *k = gen(RINGP2P_KEY_ED25519);
    const rp_tls_cert_params d = rp_tls_cert_params_default(NOW);
    struct {
        const char *name;
        rp_tls_cert_params p;
        int64_t now;
        int code;
        const char *msg_has;
    } cases[] = {
        { "valid", d, NOW, 0, NULL },
        { "at NotAfter", d, d.not_after, 0, NULL },
        { "a second after NotAfter", d, d.not_after + 1, RINGP2P_ECERT, "expired" },
        { "at NotBefore", d, d.not_before, 0, NULL },
        { "a second before NotBefore", d, d.not_before - 1, RINGP2P_ECERT, "not yet valid" },
        { "no extension", d, NOW, RINGP2P_ECERT, "1.3.6.1.4.1.53594.1.1" },
        { "identity signed another key", d, NOW, RINGP2P_ESIGNATURE, "identity" },
        { "unknown critical extension", d, NOW, RINGP2P_ECERT, "1.3.6.1.4.1.53594.1.99" },
        { "self-signature broken", d, NOW, RINGP2P_ESIGNATURE, "self-signature" },
    };
    cases[5].p.omit_ext = 1;
    cases[6].p.sign_other_spki = 1;
    cases[7].p.unknown_critical = 1;
    cases[8].p.corrupt_self_sig = 1;
    for (int ed = 0; ed < 2; ed++) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            ringp2p_errinfo ei = { 0 };
            cases[i].p.ed25519_key = ed;
            int rc = make_and_verify(k, &cases[i].p, cases[i].now, &ei);
            cr_assert_eq(rc, cases[i].code, "%s/%d: %d %s", cases[i].name, ed, rc, ei.msg);
            if (cases[i].msg_has != NULL)
                cr_assert_not_null(strstr(ei.msg, cases[i].msg_has), "%s/%d: %s", cases[i].name, ed,
                                   ei.msg);
        }
    }
    /* Garbage and oversize input. */
    uint8_t junk[RP_TLS_CERT_MAX + 1];
    memset(junk, 0x30, sizeof junk);
    ringp2p_pubkey *id = NULL;
    cr_assert_eq(rp_tls_cert_verify(junk, 10, NOW, &id, NULL), RINGP2P_ECERT);
    cr_assert_eq(rp_tls_cert_verify(junk, sizeof junk, NOW, &id, NULL), RINGP2P_ELIMIT);
    ringp2p_privkey_free(k);
}

/*
 * The known-certificate path finds the validity times with its own DER walk:
 * it must give the long path's verdicts at and around both ends, for UTCTime
 * (up to 2049) and GeneralizedTime, across leap days and century years.
 */
Test(tls_cert, known_path_reads_times_as_the_long_path)
{
    ringp2p_privkey *k = gen(RINGP2P_KEY_ED25519);
    static const int64_t starts[] = {
        0,          /* 1970-01-01, UTCTime */
        946684799,  /* 1999-12-31 23:59:59 */
        951782400,  /* 2000-02-29 */
        2524607999, /* 2049-12-31 23:59:59, the last UTCTime */
        2524608000, /* 2050-01-01, GeneralizedTime */
        4107542399, /* 2100-02-28 23:59:59 (2100 is no leap year) */
        4107542400, /* 2100-03-01 */
        3981312000, /* 2096-02-29 */
    };
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
        rp_tls_cert_params p = rp_tls_cert_params_default(0);
        p.ed25519_key = (int)(i % 2);
        p.not_before = starts[i];
        for (int span = 0; span < 2; span++) {
            p.not_after = starts[i] + (span == 0 ? 1000 : 86400LL * 366 * 3);
            const int64_t at[] = { p.not_before - 1, p.not_before, p.not_before + 1,
                                   p.not_after - 1,  p.not_after,  p.not_after + 1 };
            for (size_t j = 0; j < sizeof at / sizeof at[0]; j++) {
                ringp2p_errinfo ei = { 0 };
                int want = j == 0 || j == 5 ? RINGP2P_ECERT : 0;
                cr_assert_eq(make_and_verify(k, &p, at[j], &ei), want,
                             "start %zu span %d at %zu: %s", i, span, j, ei.msg);
            }
        }
    }
    /* The spec vectors: UTCTime 1975 and GeneralizedTime 4096 (the known path after a pass). */
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        if (vectors[i].peer == NULL) continue;
        uint8_t der[2048];
        size_t n = unhex(vectors[i].cert, der, sizeof der);
        const int64_t at[] = { 157813200 - 1, 157813200, NOW, 67090165200, 67090165201 };
        for (size_t j = 0; j < sizeof at / sizeof at[0]; j++) {
            ringp2p_pubkey *a = NULL, *b = NULL;
            int ra = rp_tls_cert_verify(der, n, at[j], &a, NULL);
            int rb = rp_tls_cert_verify_known(der, n, at[j], true, &b, NULL);
            cr_assert_eq(ra, rb, "vector %zu at %zu: %d %d", i, j, ra, rb);
            cr_assert(ra != 0 || ringp2p_pubkey_equal(a, b));
            ringp2p_pubkey_free(a);
            ringp2p_pubkey_free(b);
        }
    }
    ringp2p_privkey_free(k);
}

/* ---- sessions wired together in memory ----------------------------------------------------- */

#define RX_CAP (8u << 20)

struct end {
    rp_tls *s;
    uint8_t *rx; /* bytes from the peer not yet fed */
    size_t len;
    int last;
    ringp2p_errinfo ei;
};

static void end_open(struct end *e, const rp_tls_config *cfg)
{
    memset(e, 0, sizeof *e);
    cr_assert_eq(rp_tls_new(cfg, &e->s, &e->ei), 0, "rp_tls_new: %s", e->ei.msg);
    e->rx = malloc(RX_CAP);
    cr_assert_not_null(e->rx);
}

static void end_close(struct end *e)
{
    rp_tls_free(e->s);
    free(e->rx);
}

/* One handshake call of `me` on all it has; its output goes to `peer` (small chunks first). */
static int hs_step(struct end *me, struct end *peer, int64_t now)
{
    const uint8_t *p = me->rx;
    rp_wbuf w = rp_wbuf_make(peer->rx + peer->len, 100); /* deliberately short */
    const uint8_t *end = me->rx + me->len;
    me->last = rp_tls_handshake(me->s, now, &p, end, &w, &me->ei);
    if (me->last == 0) cr_assert_eq(p, end, "input not consumed whole");
    /* after the handshake, what follows its records stays for rp_tls_open */
    size_t rest = me->last == RP_TLS_DONE ? (size_t)(end - p) : 0;
    memmove(me->rx, p, rest);
    me->len = rest;
    peer->len += w.len;
    peer->len += rp_tls_take_output(me->s, peer->rx + peer->len, RX_CAP - peer->len);
    cr_assert_eq(rp_tls_pending_output(me->s), 0);
    return me->last;
}

/* Client first; runs until both are done or one fails (then the other gets its alert). */
static void handshake(struct end *c, struct end *s, int64_t now)
{
    for (int k = 0; k < 8; k++) {
        hs_step(c, s, now);
        hs_step(s, c, now);
        if (c->last < 0 || s->last < 0) {
            hs_step(c, s, now);
            return;
        }
        if (c->last == RP_TLS_DONE && s->last == RP_TLS_DONE) return;
    }
}

static rp_tls_config cfg_of(const ringp2p_privkey *k, bool initiator)
{
    rp_tls_config c = { .identity = k, .initiator = initiator, .unix_now = NOW };
    return c;
}

static void send_bytes(struct end *from, struct end *to, const uint8_t *data, size_t len)
{
    rp_iov iov[3] = { rp_iov_make(data, len / 3), rp_iov_make(data + len / 3, 0),
                      rp_iov_make(data + len / 3, len - len / 3) };
    ssize_t n = rp_tls_seal(from->s, iov, 3, to->rx + to->len, RX_CAP - to->len, &from->ei);
    cr_assert_geq(n, (ssize_t)len, "seal: %s", from->ei.msg);
    cr_assert_leq((size_t)n, rp_tls_sealed_len(from->s, len));
    to->len += (size_t)n;
}

/*
 * Opens every whole record me has, in place, and copies the plaintext into
 * out (cap bytes); a partial record stays. The plaintext total, or the error.
 */
static ssize_t recv_bytes(struct end *me, uint8_t *out, size_t cap)
{
    uint8_t *p = me->rx, *end = me->rx + me->len;
    size_t total = 0;
    int r;
    rp_iov v;
    while ((r = rp_tls_open(me->s, &p, end, &v, &me->ei)) == 1) {
        cr_assert_leq(v.len, RP_TLS_RECORD_PLAINTEXT_MAX);
        cr_assert(v.len == 0 || ((uint8_t *)v.base >= me->rx && (uint8_t *)v.base < p),
                  "view outside the record");
        cr_assert_leq(total + v.len, cap, "more plaintext than expected");
        memcpy(out + total, v.base, v.len);
        total += v.len;
    }
    if (r < 0) {
        me->len = 0;
        return r;
    }
    me->len = (size_t)(end - p);
    memmove(me->rx, p, me->len);
    return (ssize_t)total;
}

static void check_pair_talks(struct end *a, struct end *b)
{
    uint8_t msg[3000], got[3000];
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)(i * 31 + 7);
    send_bytes(a, b, msg, sizeof msg);
    send_bytes(b, a, msg, 100);
    cr_assert_eq(recv_bytes(b, got, sizeof got), (ssize_t)sizeof msg, "%s", b->ei.msg);
    cr_assert_arr_eq(got, msg, sizeof msg);
    cr_assert_eq(recv_bytes(a, got, sizeof got), 100, "%s", a->ei.msg);
    cr_assert_arr_eq(got, msg, 100);
}

Test(tls, every_key_type_both_roles, .timeout = 120)
{
    ringp2p_privkey *keys[4];
    for (int i = 0; i < 4; i++) keys[i] = gen(all_types[i]);
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 4; j++) {
            ringp2p_peer_id want_s, want_c;
            ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(keys[j]), &want_s);
            ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(keys[i]), &want_c);
            rp_tls_config cc = cfg_of(keys[i], true), sc = cfg_of(keys[j], false);
            cc.expected_peer = &want_s;
            struct end c, s;
            end_open(&c, &cc);
            end_open(&s, &sc);
            handshake(&c, &s, NOW);
            cr_assert_eq(c.last, RP_TLS_DONE, "%d/%d client: %s", i, j, c.ei.msg);
            cr_assert_eq(s.last, RP_TLS_DONE, "%d/%d server: %s", i, j, s.ei.msg);
            cr_assert(rp_tls_is_done(c.s) && rp_tls_is_done(s.s));
            cr_assert(ringp2p_peer_id_equal(rp_tls_remote_peer(c.s), &want_s));
            cr_assert(ringp2p_peer_id_equal(rp_tls_remote_peer(s.s), &want_c));
            cr_assert(
                ringp2p_pubkey_equal(rp_tls_remote_key(s.s), ringp2p_privkey_public(keys[i])));
            cr_assert_null(rp_tls_muxer(c.s));
            /* AES-GCM where the CPU has AES instructions (BoringSSL's choice) */
            const char *want =
                EVP_has_aes_hardware() ? "TLS_AES_128_GCM_SHA256" : "TLS_CHACHA20_POLY1305_SHA256";
            cr_assert_str_eq(rp_tls_cipher(c.s), want);
            cr_assert_str_eq(rp_tls_cipher(s.s), want);
            check_pair_talks(&c, &s);
            end_close(&c);
            end_close(&s);
        }
    }
    for (int i = 0; i < 4; i++) ringp2p_privkey_free(keys[i]);
}

Test(tls, peer_id_mismatch_names_both_ids)
{
    ringp2p_privkey *kc = gen(RINGP2P_KEY_ED25519), *ks = gen(RINGP2P_KEY_ED25519),
                    *other = gen(RINGP2P_KEY_SECP256K1);
    ringp2p_peer_id want, got;
    char want_s[RINGP2P_PEER_ID_STR_MAX], got_s[RINGP2P_PEER_ID_STR_MAX];
    ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(other), &want);
    ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(ks), &got);
    ringp2p_peer_id_to_string(&want, want_s, sizeof want_s);
    ringp2p_peer_id_to_string(&got, got_s, sizeof got_s);

    /* The dialer expects someone else. */
    rp_tls_config cc = cfg_of(kc, true), sc = cfg_of(ks, false);
    cc.expected_peer = &want;
    struct end c, s;
    end_open(&c, &cc);
    end_open(&s, &sc);
    handshake(&c, &s, NOW);
    cr_assert_eq(c.last, RINGP2P_EPEERMISMATCH, "%d %s", c.last, c.ei.msg);
    cr_assert_not_null(strstr(c.ei.msg, want_s), "%s", c.ei.msg);
    cr_assert_not_null(strstr(c.ei.msg, got_s), "%s", c.ei.msg);
    cr_assert_null(rp_tls_remote_peer(c.s));
    /* The server heard the alert. */
    cr_assert_eq(s.last, RINGP2P_EPROTOCOL, "%d %s", s.last, s.ei.msg);
    /* Dead for good: the same code again. */
    const uint8_t *p = NULL;
    ringp2p_errinfo ei2;
    cr_assert_eq(rp_tls_handshake(c.s, NOW, &p, p, NULL, &ei2), RINGP2P_EPEERMISMATCH);
    cr_assert_str_eq(ei2.msg, c.ei.msg);
    end_close(&c);
    end_close(&s);

    /* A listener that expects a given peer (as go-libp2p allows) checks too. */
    cc = cfg_of(kc, true);
    sc.expected_peer = &want;
    end_open(&c, &cc);
    end_open(&s, &sc);
    handshake(&c, &s, NOW);
    cr_assert_eq(s.last, RINGP2P_EPEERMISMATCH, "%d %s", s.last, s.ei.msg);
    end_close(&c);
    end_close(&s);
    ringp2p_privkey_free(kc);
    ringp2p_privkey_free(ks);
    ringp2p_privkey_free(other);
}

/* A bad certificate on either side: the verifier fails with `code`, the other end hears of it. */
Test(tls, bad_certificates_fail_the_handshake, .timeout = 60)
{
    ringp2p_privkey *kc = gen(RINGP2P_KEY_ED25519), *ks = gen(RINGP2P_KEY_ECDSA);
    const rp_tls_cert_params d = rp_tls_cert_params_default(NOW);
    struct {
        const char *name;
        rp_tls_cert_params p;
        int twice;
        int code;
    } cases[] = {
        { "no extension", d, 0, RINGP2P_ECERT },
        { "bad identity signature", d, 0, RINGP2P_ESIGNATURE },
        { "expired", d, 0, RINGP2P_ECERT },
        { "not yet valid", d, 0, RINGP2P_ECERT },
        { "two certificates", d, 1, RINGP2P_ECERT },
        { "broken self-signature", d, 0, RINGP2P_ESIGNATURE },
        { "unknown critical extension", d, 0, RINGP2P_ECERT },
    };
    cases[0].p.omit_ext = 1;
    cases[1].p.sign_other_spki = 1;
    cases[2].p.not_before = NOW - 7200;
    cases[2].p.not_after = NOW - 1;
    cases[3].p.not_before = NOW + 60;
    cases[5].p.corrupt_self_sig = 1;
    cases[6].p.unknown_critical = 1;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int server_bad = 0; server_bad < 2; server_bad++) {
            const ringp2p_privkey *bad_id = server_bad ? ks : kc;
            uint8_t *der = NULL;
            size_t len = 0;
            EVP_PKEY *key = NULL;
            ringp2p_errinfo ei;
            cr_assert_eq(rp_tls_cert_make(bad_id, &cases[i].p, &der, &len, &key, &ei), 0);
            rp_iov chain[2] = { rp_iov_make(der, len), rp_iov_make(der, len) };
            rp_tls_config cc = cfg_of(kc, true), sc = cfg_of(ks, false);
            rp_tls_config *bad = server_bad ? &sc : &cc;
            bad->test_chain = chain;
            bad->test_chain_len = cases[i].twice ? 2 : 1;
            bad->test_key = key;
            struct end c, s;
            end_open(&c, &cc);
            end_open(&s, &sc);
            OPENSSL_free(der);
            EVP_PKEY_free(key);
            handshake(&c, &s, NOW);
            if (server_bad) {
                cr_assert_eq(c.last, cases[i].code, "%s (server's): client %d %s", cases[i].name,
                             c.last, c.ei.msg);
                cr_assert_eq(s.last, RINGP2P_EPROTOCOL, "%s: server %d", cases[i].name, s.last);
            } else {
                cr_assert_eq(s.last, cases[i].code, "%s (client's): server %d %s", cases[i].name,
                             s.last, s.ei.msg);
                /* The client finished first (tls.md "Note for clients") and learns on read. */
                cr_assert_eq(c.last, RP_TLS_DONE, "%s: client %d", cases[i].name, c.last);
                uint8_t buf[64];
                cr_assert_eq(recv_bytes(&c, buf, sizeof buf), RINGP2P_EPROTOCOL, "%s",
                             cases[i].name);
                cr_assert_not_null(strstr(c.ei.msg, "bad_certificate"), "%s", c.ei.msg);
            }
            end_close(&c);
            end_close(&s);
        }
    }
    ringp2p_privkey_free(kc);
    ringp2p_privkey_free(ks);
}

static const char *const YAMUX = "/yamux/1.0.0", *const MPLEX = "/mplex/6.7.0";

Test(tls, alpn_muxer_negotiation)
{
    static const char *const ym[] = { YAMUX, MPLEX }, *const my[] = { MPLEX, YAMUX },
                             *const y[] = { YAMUX }, *const m[] = { MPLEX };
    const struct {
        const char *name;
        const char *const *cm;
        size_t cn;
        const char *const *sm;
        size_t sn;
        bool no_libp2p;
        const char *want; /* NULL: multistream */
        int code;         /* both sides' result when not 0 */
    } cases[] = {
        { "same lists", ym, 2, ym, 2, false, YAMUX, 0 },
        { "client preference wins", ym, 2, my, 2, false, YAMUX, 0 },
        { "client prefers mplex", my, 2, ym, 2, false, MPLEX, 0 },
        { "server has only the client's second", my, 2, y, 1, false, YAMUX, 0 },
        { "server offers none: libp2p", y, 1, NULL, 0, false, NULL, 0 },
        { "client offers none: libp2p", NULL, 0, y, 1, false, NULL, 0 },
        { "no common muxer: libp2p fallback", y, 1, m, 1, false, NULL, 0 },
        { "no common protocol at all", y, 1, m, 1, true, NULL, RINGP2P_ENEGOTIATION },
        { "common muxer without libp2p", y, 1, ym, 2, true, YAMUX, 0 },
    };
    ringp2p_privkey *kc = gen(RINGP2P_KEY_ED25519), *ks = gen(RINGP2P_KEY_ED25519);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rp_tls_config cc = cfg_of(kc, true), sc = cfg_of(ks, false);
        cc.muxers = cases[i].cm;
        cc.n_muxers = cases[i].cn;
        cc.test_no_libp2p_alpn = cases[i].no_libp2p;
        sc.muxers = cases[i].sm;
        sc.n_muxers = cases[i].sn;
        struct end c, s;
        end_open(&c, &cc);
        end_open(&s, &sc);
        handshake(&c, &s, NOW);
        if (cases[i].code != 0) {
            cr_assert_eq(s.last, cases[i].code, "%s: server %d %s", cases[i].name, s.last,
                         s.ei.msg);
            cr_assert_eq(c.last, cases[i].code, "%s: client %d %s", cases[i].name, c.last,
                         c.ei.msg);
        } else {
            cr_assert_eq(c.last, RP_TLS_DONE, "%s: %s", cases[i].name, c.ei.msg);
            cr_assert_eq(s.last, RP_TLS_DONE, "%s: %s", cases[i].name, s.ei.msg);
            /* The very pointers of the configs, or NULL. */
            if (cases[i].want == NULL) {
                cr_assert_null(rp_tls_muxer(c.s), "%s", cases[i].name);
                cr_assert_null(rp_tls_muxer(s.s), "%s", cases[i].name);
            } else {
                cr_assert_str_eq(rp_tls_muxer(c.s), cases[i].want, "%s", cases[i].name);
                cr_assert_str_eq(rp_tls_muxer(s.s), cases[i].want, "%s", cases[i].name);
                bool cfound = false, sfound = false;
                for (size_t k = 0; k < cases[i].cn; k++)
                    cfound |= rp_tls_muxer(c.s) == cases[i].cm[k];
                for (size_t k = 0; k < cases[i].sn; k++)
                    sfound |= rp_tls_muxer(s.s) == cases[i].sm[k];
                cr_assert(cfound && sfound, "%s: not the config's pointer", cases[i].name);
            }
        }
        end_close(&c);
        end_close(&s);
    }
    ringp2p_privkey_free(kc);
    ringp2p_privkey_free(ks);
}

static void ready_pair(struct end *c, struct end *s, ringp2p_privkey *kc, ringp2p_privkey *ks)
{
    rp_tls_config cc = cfg_of(kc, true), sc = cfg_of(ks, false);
    end_open(c, &cc);
    end_open(s, &sc);
    handshake(c, s, NOW);
    cr_assert_eq(c->last, RP_TLS_DONE, "%s", c->ei.msg);
    cr_assert_eq(s->last, RP_TLS_DONE, "%s", s->ei.msg);
}

Test(tls, large_transfer_byte_exact_full_records, .timeout = 120)
{
    ringp2p_privkey *kc = gen(RINGP2P_KEY_ED25519), *ks = gen(RINGP2P_KEY_ED25519);
    struct end c, s;
    ready_pair(&c, &s, kc, ks);
    const size_t total = (3u << 20) + 123;
    uint8_t *data = malloc(total), *got = malloc(total);
    RAND_bytes(data, total);

    /* Many uneven iovs per seal call: every record is full but the last of each call. */
    size_t sent = 0, off = 0, calls = 0;
    const size_t overhead = 22; /* TLS 1.3 AEAD: 5 header + 1 content type + 16 tag */
    ssize_t r = 0;
    while (sent < total) {
        rp_iov iov[7];
        size_t n = 0, batch = 0;
        for (; n < 7 && sent + batch < total; n++) {
            size_t len = 1 + (size_t)((n * 7919 + calls * 104729) % 50000);
            if (len > total - sent - batch) len = total - sent - batch;
            iov[n] = rp_iov_make(data + sent + batch, len);
            batch += len;
        }
        ssize_t w = rp_tls_seal(c.s, iov, n, s.rx + s.len, RX_CAP - s.len, &c.ei);
        size_t records = (batch + 16383) / 16384;
        cr_assert_eq(w, (ssize_t)(batch + records * overhead), "call %zu: %zd %s", calls, w,
                     c.ei.msg);
        s.len += (size_t)w;
        sent += batch;
        calls++;
        /* Every third call (and at the end) the receiver reads, in odd-sized pieces. */
        if (calls % 3 != 0 && sent < total) continue;
        r = recv_bytes(&s, got + off, total - off);
        cr_assert_geq(r, 0, "%s", s.ei.msg);
        off += (size_t)r;
        cr_assert_eq(s.len, 0, "every record was whole");
    }
    cr_assert_eq(off, total);
    cr_assert_arr_eq(got, data, total);
    free(data);
    free(got);
    end_close(&c);
    end_close(&s);
    ringp2p_privkey_free(kc);
    ringp2p_privkey_free(ks);
}

Test(tls, tampered_record_kills_the_session)
{
    ringp2p_privkey *kc = gen(RINGP2P_KEY_ED25519), *ks = gen(RINGP2P_KEY_ED25519);
    static const size_t offsets[] = { 5, 6, 100, 1000 + 21 }; /* first body byte .. the tag */
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        struct end c, s;
        ready_pair(&c, &s, kc, ks);
        uint8_t msg[1000], got[1000];
        memset(msg, 'x', sizeof msg);
        send_bytes(&c, &s, msg, sizeof msg);
        s.rx[offsets[i]] ^= 0x40;
        cr_assert_eq(recv_bytes(&s, got, sizeof got), RINGP2P_EAUTH, "offset %zu: %s", offsets[i],
                     s.ei.msg);
        /* A good record afterwards does not revive it. */
        send_bytes(&c, &s, msg, 10);
        cr_assert_eq(recv_bytes(&s, got, sizeof got), RINGP2P_EAUTH);
        rp_iov one = rp_iov_make(msg, 1);
        cr_assert_eq(rp_tls_seal(s.s, &one, 1, got, sizeof got, NULL), RINGP2P_EAUTH);
        /* The alert it queued tells the sender. */
        c.len = rp_tls_take_output(s.s, c.rx, RX_CAP);
        cr_assert_gt(c.len, 0);
        cr_assert_eq(recv_bytes(&c, got, sizeof got), RINGP2P_EPROTOCOL, "%s", c.ei.msg);
        end_close(&c);
        end_close(&s);
    }
    ringp2p_privkey_free(kc);
    ringp2p_privkey_free(ks);
}

Test(tls, pipelined_data_after_client_finished)
{
    ringp2p_privkey *kc = gen(RINGP2P_KEY_SECP256K1), *ks = gen(RINGP2P_KEY_ED25519);
    rp_tls_config cc = cfg_of(kc, true), sc = cfg_of(ks, false);
    struct end c, s;
    end_open(&c, &cc);
    end_open(&s, &sc);
    hs_step(&c, &s, NOW); /* ClientHello */
    hs_step(&s, &c, NOW); /* ServerHello .. Finished */
    hs_step(&c, &s, NOW); /* Certificate .. Finished */
    cr_assert_eq(c.last, RP_TLS_DONE, "%s", c.ei.msg);
    cr_assert_eq(s.last, 0);
    /* The client writes at once; its data lands behind its Finished. */
    uint8_t msg[500], got[500];
    memset(msg, 7, sizeof msg);
    send_bytes(&c, &s, msg, sizeof msg);
    hs_step(&s, &c, NOW);
    cr_assert_eq(s.last, RP_TLS_DONE, "%s", s.ei.msg);
    cr_assert_gt(s.len, 0, "the data record was left for rp_tls_open");
    cr_assert_eq(recv_bytes(&s, got, sizeof got), (ssize_t)sizeof msg, "%s", s.ei.msg);
    cr_assert_arr_eq(got, msg, sizeof msg);
    end_close(&c);
    end_close(&s);
    ringp2p_privkey_free(kc);
    ringp2p_privkey_free(ks);
}

Test(tls, seal_room_close_and_misuse)
{
    ringp2p_privkey *kc = gen(RINGP2P_KEY_ED25519), *ks = gen(RINGP2P_KEY_ED25519);
    rp_tls_config cc = cfg_of(kc, true);
    struct end c, s;
    end_open(&c, &cc);
    uint8_t buf[256];
    rp_iov one = rp_iov_make(buf, 10), v;
    uint8_t *p = buf;
    cr_assert_eq(rp_tls_seal(c.s, &one, 1, buf, sizeof buf, NULL), RINGP2P_EINVAL);
    cr_assert_eq(rp_tls_open(c.s, &p, buf + 50, &v, NULL), RINGP2P_EINVAL);
    cr_assert_eq(rp_tls_key_update(c.s, false), RINGP2P_EINVAL);
    cr_assert_eq(rp_tls_close(c.s), RINGP2P_EINVAL);
    cr_assert_null(rp_tls_remote_peer(c.s));
    end_close(&c);

    ready_pair(&c, &s, kc, ks);
    /* Too little room: refused, nothing consumed; then it goes through. */
    uint8_t msg[100] = { 1, 2, 3 };
    rp_iov m = rp_iov_make(msg, sizeof msg);
    ringp2p_errinfo ei;
    cr_assert_eq(rp_tls_seal(c.s, &m, 1, buf, rp_tls_sealed_len(c.s, 100) - 1, &ei),
                 RINGP2P_ENOBUF);
    cr_assert_eq(rp_tls_pending_output(c.s), 0);
    send_bytes(&c, &s, msg, sizeof msg);
    uint8_t got[100];
    cr_assert_eq(recv_bytes(&s, got, sizeof got), 100);
    cr_assert_arr_eq(got, msg, 100);
    /* Empty input seals to nothing. */
    cr_assert_eq(rp_tls_seal(c.s, NULL, 0, buf, 0, &ei), 0);
    /* close_notify: we refuse to seal, the peer reads ECLOSED. */
    cr_assert_eq(rp_tls_close(c.s), 0);
    cr_assert_gt(rp_tls_pending_output(c.s), 0);
    s.len = rp_tls_take_output(c.s, s.rx, RX_CAP);
    cr_assert_eq(rp_tls_seal(c.s, &m, 1, buf, sizeof buf, NULL), RINGP2P_ECLOSED);
    cr_assert_eq(recv_bytes(&s, got, sizeof got), RINGP2P_ECLOSED, "%s", s.ei.msg);
    end_close(&c);
    end_close(&s);
    ringp2p_privkey_free(kc);
    ringp2p_privkey_free(ks);
}

/*
 * Graceful close, one direction at a time (RFC 8446 §6.1): the client's
 * close_notify is one sealed record behind its last data and is the
 * server's clean end of input (the same code from then on, nothing
 * consumed, the session not failed); the half-closed server still talks
 * (data, and a KeyUpdate request the closed client must not answer), then
 * closes too. A transport cut without close_notify is not taken for one.
 */
Test(tls, close_notify_is_a_clean_end_of_one_direction, .timeout = 30)
{
    ringp2p_privkey *kc = gen(RINGP2P_KEY_ED25519), *ks = gen(RINGP2P_KEY_ED25519);
    struct end c, s;
    ready_pair(&c, &s, kc, ks);
    static uint8_t msg[5000], got[5000];
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)(i * 13 + 1);
    /* the client's last data, then its close_notify: one record of a 2-byte alert */
    send_bytes(&c, &s, msg, sizeof msg);
    cr_assert_eq(rp_tls_close(c.s), 0);
    size_t data_len = s.len;
    s.len += rp_tls_take_output(c.s, s.rx + s.len, RX_CAP - s.len);
    cr_assert_eq(s.len - data_len, RP_TLS_RECORD_OVERHEAD + 2);
    cr_assert_eq(rp_tls_close(c.s), 0);
    cr_assert_eq(rp_tls_pending_output(c.s), 0, "close_notify goes once");
    rp_iov one = rp_iov_make(msg, 10), v;
    uint8_t buf[256];
    cr_assert_eq(rp_tls_seal(c.s, &one, 1, buf, sizeof buf, NULL), RINGP2P_ECLOSED);
    cr_assert_eq(rp_tls_key_update(c.s, false), RINGP2P_ECLOSED);
    cr_assert_eq(rp_tls_pending_output(c.s), 0, "nothing after close_notify");
    /* the server gets all the data, then the clean end */
    cr_assert_not(rp_tls_peer_closed(s.s));
    uint8_t *p = s.rx, *end = s.rx + s.len;
    size_t total = 0;
    int r;
    while ((r = rp_tls_open(s.s, &p, end, &v, &s.ei)) == 1) {
        cr_assert_leq(total + v.len, sizeof got);
        memcpy(got + total, v.base, v.len);
        total += v.len;
    }
    cr_assert_eq(r, RINGP2P_ECLOSED, "%s", s.ei.msg);
    cr_assert_not_null(strstr(s.ei.msg, "close_notify"), "%s", s.ei.msg);
    cr_assert_eq(total, sizeof msg);
    cr_assert_arr_eq(got, msg, sizeof msg);
    cr_assert_eq(p, s.rx + data_len, "the alert record is left where it was");
    cr_assert(rp_tls_peer_closed(s.s));
    cr_assert(rp_tls_is_done(s.s), "a clean end is not a failure");
    cr_assert_eq(rp_tls_pending_output(s.s), 0, "no alert answers a close_notify");
    /* later input (even a partial record) is ignored: the same answer, nothing read */
    uint8_t *q = p;
    cr_assert_eq(rp_tls_open(s.s, &q, p + 3, &v, NULL), RINGP2P_ECLOSED);
    cr_assert_eq(q, p);
    s.len = 0;
    /* half-closed: the server still sends, asking for a KeyUpdate the client must not answer */
    cr_assert_eq(rp_tls_key_update(s.s, true), 0);
    c.len += rp_tls_take_output(s.s, c.rx + c.len, RX_CAP - c.len);
    send_bytes(&s, &c, msg, sizeof msg);
    cr_assert_eq(recv_bytes(&c, got, sizeof got), (ssize_t)sizeof msg, "%s", c.ei.msg);
    cr_assert_arr_eq(got, msg, sizeof msg);
    cr_assert_eq(rp_tls_pending_output(c.s), 0, "a closed side answers no KeyUpdate");
    cr_assert_not(rp_tls_peer_closed(c.s));
    /* then the server closes as well */
    cr_assert_eq(rp_tls_close(s.s), 0);
    c.len += rp_tls_take_output(s.s, c.rx + c.len, RX_CAP - c.len);
    cr_assert_eq(recv_bytes(&c, got, sizeof got), RINGP2P_ECLOSED, "%s", c.ei.msg);
    cr_assert(rp_tls_peer_closed(c.s));
    end_close(&c);
    end_close(&s);

    /* Truncation: the transport ends after whole records, or in the middle of one. */
    ready_pair(&c, &s, kc, ks);
    send_bytes(&c, &s, msg, 100);
    cr_assert_eq(recv_bytes(&s, got, sizeof got), 100, "%s", s.ei.msg);
    cr_assert_eq(s.len, 0);
    cr_assert_not(rp_tls_peer_closed(s.s), "no close_notify came");
    send_bytes(&c, &s, msg + 100, 200);
    send_bytes(&c, &s, msg + 300, 3000);
    s.len -= 10;
    cr_assert_eq(recv_bytes(&s, got, sizeof got), 200, "%s", s.ei.msg);
    cr_assert_arr_eq(got, msg + 100, 200);
    cr_assert_gt(s.len, 0, "a partial record is left, waiting");
    cr_assert_not(rp_tls_peer_closed(s.s), "cut short, not closed");
    end_close(&c);
    end_close(&s);
    ringp2p_privkey_free(kc);
    ringp2p_privkey_free(ks);
}

Test(tls, config_errors)
{
    ringp2p_privkey *k = gen(RINGP2P_KEY_ED25519);
    static const char *const bad1[] = { "" }, *const bad2[] = { "libp2p" },
                             *const bad3[] = { NULL };
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    const char *const bad4[] = { longname };
    const char *many[RP_TLS_MUXERS_MAX + 1];
    for (size_t i = 0; i < RP_TLS_MUXERS_MAX + 1; i++) many[i] = YAMUX;
    struct {
        const char *const *m;
        size_t n;
    } cases[] = {
        { bad1, 1 }, { bad2, 1 }, { bad3, 1 }, { bad4, 1 }, { many, RP_TLS_MUXERS_MAX + 1 }
    };
    rp_tls *s = NULL;
    ringp2p_errinfo ei;
    rp_tls_config c = cfg_of(NULL, true);
    cr_assert_eq(rp_tls_new(&c, &s, &ei), RINGP2P_EINVAL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        c = cfg_of(k, i % 2 == 0);
        c.muxers = cases[i].m;
        c.n_muxers = cases[i].n;
        cr_assert_eq(rp_tls_new(&c, &s, &ei), RINGP2P_EINVAL, "case %zu", i);
    }
    c = cfg_of(k, true);
    c.muxers = many;
    c.n_muxers = RP_TLS_MUXERS_MAX;
    cr_assert_eq(rp_tls_new(&c, &s, &ei), 0, "%s", ei.msg);
    rp_tls_free(s);
    ringp2p_privkey_free(k);
}

/* ---- the record layer ---------------------------------------------------------------------- */

/* Both sides ask for KeyUpdates; data keeps flowing both ways across each key change. */
Test(tls, key_update_both_ways)
{
    ringp2p_privkey *kc = gen(RINGP2P_KEY_ED25519), *ks = gen(RINGP2P_KEY_ED25519);
    struct end c, s;
    ready_pair(&c, &s, kc, ks);
    uint8_t msg[40000], got[50000];
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)(i * 13 + 1);
    for (int round = 0; round < 3; round++) {
        struct end *a = round % 2 == 0 ? &c : &s, *b = round % 2 == 0 ? &s : &c;
        send_bytes(a, b, msg, 1000);
        cr_assert_eq(rp_tls_key_update(a->s, true), 0);
        b->len += rp_tls_take_output(a->s, b->rx + b->len, RX_CAP - b->len);
        send_bytes(a, b, msg, sizeof msg); /* under a's new key */
        cr_assert_eq(recv_bytes(b, got, sizeof got), 1000 + (ssize_t)sizeof msg, "%s", b->ei.msg);
        cr_assert_arr_eq(got + 1000, msg, sizeof msg);
        /* b answered with its own KeyUpdate, queued; its next records use the new key */
        cr_assert_gt(rp_tls_pending_output(b->s), 0);
        send_bytes(b, a, msg, 777); /* seal puts the queued KeyUpdate first */
        cr_assert_eq(recv_bytes(a, got, sizeof got), 777, "%s", a->ei.msg);
        cr_assert_arr_eq(got, msg, 777);
        cr_assert_eq(rp_tls_pending_output(a->s), 0, "a did not ask, so no answer");
    }
    /* Not asked: no answer. */
    cr_assert_eq(rp_tls_key_update(c.s, false), 0);
    s.len += rp_tls_take_output(c.s, s.rx + s.len, RX_CAP - s.len);
    cr_assert_eq(recv_bytes(&s, got, sizeof got), 0);
    cr_assert_eq(rp_tls_pending_output(s.s), 0);
    check_pair_talks(&c, &s);
    end_close(&c);
    end_close(&s);
    ringp2p_privkey_free(kc);
    ringp2p_privkey_free(ks);
}

/* ---- against libssl's own record layer ------------------------------------------------------ */

static enum ssl_verify_result_t accept_any(SSL *ssl, uint8_t *alert)
{
    (void)ssl;
    (void)alert;
    return ssl_verify_ok;
}

/*
 * A plain BoringSSL endpoint over memory BIOs with a libp2p certificate of
 * key k: the other end of the conversation, with libssl's record layer
 * (tickets on, so a server sends NewSessionTickets after the handshake).
 */
typedef struct raw_end {
    SSL_CTX *ctx;
    SSL *ssl;
    BIO *in, *out;
} raw_end;

static void raw_open(raw_end *r, const ringp2p_privkey *k, bool server)
{
    rp_tls_cert_params p = rp_tls_cert_params_default(NOW);
    uint8_t *der = NULL;
    size_t len = 0;
    EVP_PKEY *key = NULL;
    ringp2p_errinfo ei;
    cr_assert_eq(rp_tls_cert_make(k, &p, &der, &len, &key, &ei), 0, "%s", ei.msg);
    CRYPTO_BUFFER *buf = CRYPTO_BUFFER_new(der, len, NULL);
    r->ctx = SSL_CTX_new(TLS_with_buffers_method());
    cr_assert(SSL_CTX_set_min_proto_version(r->ctx, TLS1_3_VERSION));
    cr_assert(SSL_CTX_set_chain_and_key(r->ctx, &buf, 1, key, NULL));
    SSL_CTX_set_custom_verify(r->ctx, SSL_VERIFY_PEER, accept_any);
    CRYPTO_BUFFER_free(buf);
    OPENSSL_free(der);
    EVP_PKEY_free(key);
    r->ssl = SSL_new(r->ctx);
    r->in = BIO_new(BIO_s_mem());
    r->out = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(r->in, -1);
    BIO_up_ref(r->in);
    BIO_up_ref(r->out);
    SSL_set_bio(r->ssl, r->in, r->out);
    if (server)
        SSL_set_accept_state(r->ssl);
    else
        SSL_set_connect_state(r->ssl);
}

static void raw_close(raw_end *r)
{
    SSL_free(r->ssl);
    BIO_free(r->in);
    BIO_free(r->out);
    SSL_CTX_free(r->ctx);
}

/* Moves raw's output to our end's input, and our end's queued output to raw. */
static void raw_pump(raw_end *r, struct end *e)
{
    size_t n = BIO_pending(r->out);
    cr_assert_leq(e->len + n, RX_CAP);
    BIO_read(r->out, e->rx + e->len, (int)n);
    e->len += n;
    uint8_t tmp[4096];
    for (size_t k; (k = rp_tls_take_output(e->s, tmp, sizeof tmp)) > 0;)
        BIO_write(r->in, tmp, (int)k);
}

/* Our end seals len bytes of msg, raw reads them back. */
static void to_raw(struct end *e, raw_end *r, const uint8_t *msg, size_t len)
{
    uint8_t *wire = malloc(len + 4096), *back = malloc(len + 1);
    size_t q = rp_tls_take_output(e->s, wire, len + 4096);
    rp_iov v = rp_iov_make(msg, len);
    ssize_t w = rp_tls_seal(e->s, &v, 1, wire + q, len + 4096 - q, &e->ei);
    cr_assert_gt(w, 0, "%s", e->ei.msg);
    BIO_write(r->in, wire, (int)(q + (size_t)w));
    size_t got = 0;
    for (int k; got < len && (k = SSL_read(r->ssl, back + got, (int)(len - got))) > 0;)
        got += (size_t)k;
    cr_assert_eq(got, len, "libssl read %zu of %zu", got, len);
    cr_assert_arr_eq(back, msg, len);
    free(wire);
    free(back);
}

/* raw writes len bytes of msg, our end opens them in place. The bytes on the wire. */
static size_t from_raw(raw_end *r, struct end *e, const uint8_t *msg, size_t len)
{
    cr_assert_eq(SSL_write(r->ssl, msg, (int)len), (int)len);
    raw_pump(r, e);
    size_t wire = e->len;
    uint8_t *got = malloc(len + 1);
    cr_assert_eq(recv_bytes(e, got, len), (ssize_t)len, "%s", e->ei.msg);
    cr_assert_arr_eq(got, msg, len);
    free(got);
    return wire;
}

/*
 * Our record layer against libssl's, in both roles: data both ways (records
 * up to full size), NewSessionTickets skipped, KeyUpdates asked for by either
 * side answered and followed, close_notify both ways.
 */
Test(tls, records_against_libssl, .timeout = 60)
{
    ringp2p_privkey *kus = gen(RINGP2P_KEY_ED25519), *kraw = gen(RINGP2P_KEY_SECP256K1);
    static uint8_t msg[100000];
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)(i * 7 + (i >> 8));
    for (int we_client = 0; we_client < 2; we_client++) {
        rp_tls_config cfg = cfg_of(kus, we_client);
        struct end e;
        raw_end r;
        end_open(&e, &cfg);
        raw_open(&r, kraw, we_client); /* raw is the server when we are the client */
        for (int k = 0; k < 8 && e.last != RP_TLS_DONE; k++) {
            const uint8_t *p = e.rx, *end = e.rx + e.len;
            uint8_t out[8192];
            rp_wbuf w = rp_wbuf_make(out, sizeof out);
            e.last = rp_tls_handshake(e.s, NOW, &p, end, &w, &e.ei);
            cr_assert_geq(e.last, 0, "%s", e.ei.msg);
            BIO_write(r.in, out, (int)w.len);
            e.len = (size_t)(end - p);
            memmove(e.rx, p, e.len);
            SSL_do_handshake(r.ssl);
            raw_pump(&r, &e);
        }
        cr_assert_eq(e.last, RP_TLS_DONE, "%s", e.ei.msg);
        /* the server's last step: our Finished (when we are the client) */
        cr_assert_eq(SSL_do_handshake(r.ssl), 1);
        raw_pump(&r, &e); /* NewSessionTickets, when raw is the server */
        /* a libssl server sends its NewSessionTickets with its first write: we skip them */
        size_t wire = from_raw(&r, &e, msg, 5000);
        if (we_client) cr_assert_gt(wire, 5000 + RP_TLS_RECORD_OVERHEAD, "no tickets came");
        to_raw(&e, &r, msg, sizeof msg);
        cr_assert_str_eq(rp_tls_cipher(e.s),
                         SSL_CIPHER_standard_name(SSL_get_current_cipher(r.ssl)));
        /* libssl asks us to update */
        cr_assert(SSL_key_update(r.ssl, SSL_KEY_UPDATE_REQUESTED));
        from_raw(&r, &e, msg, 16384);
        cr_assert_gt(rp_tls_pending_output(e.s), 0, "our KeyUpdate answer is queued");
        to_raw(&e, &r, msg, 30000); /* libssl reads our answer, then our new key */
        from_raw(&r, &e, msg + 1, 100);
        /* we ask libssl to update */
        cr_assert_eq(rp_tls_key_update(e.s, true), 0);
        to_raw(&e, &r, msg + 2, 20000);
        from_raw(&r, &e, msg + 3, 40000); /* behind libssl's answering KeyUpdate */
        uint8_t b[16];
        if (we_client) {
            /* close_notify from us: libssl sees a clean end */
            cr_assert_eq(rp_tls_close(e.s), 0);
            raw_pump(&r, &e);
            cr_assert_eq(SSL_read(r.ssl, b, sizeof b), 0);
            cr_assert_eq(SSL_get_error(r.ssl, 0), SSL_ERROR_ZERO_RETURN);
            /* and from libssl: we read ECLOSED */
            cr_assert_eq(SSL_shutdown(r.ssl), 1);
            raw_pump(&r, &e);
            cr_assert_eq(recv_bytes(&e, b, sizeof b), RINGP2P_ECLOSED, "%s", e.ei.msg);
            cr_assert(rp_tls_peer_closed(e.s));
        } else {
            /* libssl closes first: a clean end for us, and we may still send (half-close) */
            cr_assert_eq(SSL_shutdown(r.ssl), 0);
            raw_pump(&r, &e);
            cr_assert_eq(recv_bytes(&e, b, sizeof b), RINGP2P_ECLOSED, "%s", e.ei.msg);
            cr_assert(rp_tls_peer_closed(e.s));
            to_raw(&e, &r, msg, 20000);
            /* then ours: libssl's read ends cleanly (SSL_ERROR_ZERO_RETURN) */
            cr_assert_eq(rp_tls_close(e.s), 0);
            raw_pump(&r, &e);
            cr_assert_eq(SSL_read(r.ssl, b, sizeof b), 0);
            cr_assert_eq(SSL_get_error(r.ssl, 0), SSL_ERROR_ZERO_RETURN);
            cr_assert_eq(SSL_shutdown(r.ssl), 1, "both close_notify seen");
        }
        end_close(&e);
        raw_close(&r);
    }
    ringp2p_privkey_free(kus);
    ringp2p_privkey_free(kraw);
}

/* Our end's handshake against raw until both are done (raw's server tickets pumped to us). */
static void raw_handshake(struct end *e, raw_end *r)
{
    for (int k = 0; k < 8 && e->last != RP_TLS_DONE; k++) {
        const uint8_t *p = e->rx, *end = e->rx + e->len;
        uint8_t out[8192];
        rp_wbuf w = rp_wbuf_make(out, sizeof out);
        e->last = rp_tls_handshake(e->s, NOW, &p, end, &w, &e->ei);
        cr_assert_geq(e->last, 0, "%s", e->ei.msg);
        BIO_write(r->in, out, (int)w.len);
        e->len = (size_t)(end - p);
        memmove(e->rx, p, e->len);
        SSL_do_handshake(r->ssl);
        raw_pump(r, e);
    }
    cr_assert_eq(e->last, RP_TLS_DONE, "%s", e->ei.msg);
    cr_assert_eq(SSL_do_handshake(r->ssl), 1);
    raw_pump(r, e);
}

/*
 * A node presents its Ed25519 certificate to a peer whose signature_algorithms
 * list Ed25519, and its P-256 one to a peer whose do not (BoringSSL's default
 * list), in both roles; either way the peer verifies what it gets.
 */
Test(tls, cred_certificate_follows_the_peers_algorithms, .timeout = 30)
{
    ringp2p_privkey *kn = gen(RINGP2P_KEY_ED25519), *kraw = gen(RINGP2P_KEY_ECDSA);
    rp_tls_cred *cred = NULL;
    ringp2p_errinfo ei;
    cr_assert_eq(rp_tls_cred_new(kn, NOW, &cred, &ei), 0, "%s", ei.msg);
    for (int alt = 0; alt < 2; alt++) {
        rp_iov der = alt ? rp_tls_cred_alt_cert(cred) : rp_tls_cred_cert(cred);
        const uint8_t *p = der.base;
        X509 *x = d2i_X509(NULL, &p, (long)der.len);
        cr_assert_not_null(x);
        EVP_PKEY *pk = X509_get_pubkey(x);
        cr_assert_eq(EVP_PKEY_id(pk), alt ? EVP_PKEY_EC : EVP_PKEY_ED25519);
        EVP_PKEY_free(pk);
        X509_free(x);
        ringp2p_pubkey *id = NULL;
        cr_assert_eq(rp_tls_cert_verify(der.base, der.len, NOW, &id, &ei), 0, "%s", ei.msg);
        cr_assert(ringp2p_pubkey_equal(id, ringp2p_privkey_public(kn)));
        ringp2p_pubkey_free(id);
    }
    static const uint16_t with_ed[] = { SSL_SIGN_ED25519, SSL_SIGN_ECDSA_SECP256R1_SHA256 };
    uint8_t msg[1000];
    for (size_t i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)(i * 13 + 1);
    for (int we_client = 0; we_client < 2; we_client++) {
        for (int raw_ed = 0; raw_ed < 2; raw_ed++) {
            rp_tls_config cfg = cfg_of(kn, we_client);
            cfg.cred = cred;
            struct end e;
            raw_end r;
            end_open(&e, &cfg);
            raw_open(&r, kraw, we_client);
            if (raw_ed) cr_assert(SSL_set_verify_algorithm_prefs(r.ssl, with_ed, 2));
            raw_handshake(&e, &r);
            const STACK_OF(CRYPTO_BUFFER) *chain = SSL_get0_peer_certificates(r.ssl);
            cr_assert_eq(sk_CRYPTO_BUFFER_num(chain), 1);
            const CRYPTO_BUFFER *leaf = sk_CRYPTO_BUFFER_value(chain, 0);
            rp_iov want = raw_ed ? rp_tls_cred_cert(cred) : rp_tls_cred_alt_cert(cred);
            cr_assert_eq(CRYPTO_BUFFER_len(leaf), want.len, "client %d, raw Ed25519 %d", we_client,
                         raw_ed);
            cr_assert_arr_eq(CRYPTO_BUFFER_data(leaf), want.base, want.len);
            cr_assert_eq(SSL_get_peer_signature_algorithm(r.ssl),
                         raw_ed ? SSL_SIGN_ED25519 : SSL_SIGN_ECDSA_SECP256R1_SHA256);
            cr_assert(ringp2p_pubkey_equal(rp_tls_remote_key(e.s), ringp2p_privkey_public(kraw)));
            to_raw(&e, &r, msg, sizeof msg);
            from_raw(&r, &e, msg, sizeof msg);
            end_close(&e);
            raw_close(&r);
        }
    }
    /* A peer with P-256 alone for key exchange: the groups we pin reach it (through a
     * HelloRetryRequest when we are the client). */
    static const int p256[] = { NID_X9_62_prime256v1 };
    for (int we_client = 0; we_client < 2; we_client++) {
        rp_tls_config cfg = cfg_of(kn, we_client);
        cfg.cred = cred;
        struct end e;
        raw_end r;
        end_open(&e, &cfg);
        raw_open(&r, kraw, we_client);
        cr_assert(SSL_set1_curves(r.ssl, p256, 1));
        raw_handshake(&e, &r);
        cr_assert_eq(SSL_get_curve_id(r.ssl), SSL_CURVE_SECP256R1);
        to_raw(&e, &r, msg, sizeof msg);
        from_raw(&r, &e, msg, sizeof msg);
        end_close(&e);
        raw_close(&r);
    }
    rp_tls_cred_free(cred);
    ringp2p_privkey_free(kn);
    ringp2p_privkey_free(kraw);
}

/* ---- record parsing, on sessions keyed directly (every cipher suite) ----------------------- */

static const uint16_t suites[] = { 0x1301, 0x1302, 0x1303 };

/* A client/server pair of the suite, keyed from fixed secrets. */
static void keyed_pair(uint16_t suite, rp_tls **c, rp_tls **s)
{
    uint8_t cs[48], ss[48];
    for (int i = 0; i < 48; i++) cs[i] = (uint8_t)i, ss[i] = (uint8_t)(200 - i);
    cr_assert_eq(rp_tls_test_new_keyed(suite, true, cs, ss, c), 0);
    cr_assert_eq(rp_tls_test_new_keyed(suite, false, cs, ss, s), 0);
}

/* Opens one whole record from buf[0..len): the result, *plain the view. */
static int open_one(rp_tls *s, uint8_t *buf, size_t len, rp_iov *plain, ringp2p_errinfo *ei)
{
    uint8_t *p = buf;
    int r = rp_tls_open(s, &p, buf + len, plain, ei);
    if (r == 1) cr_assert_eq(p, buf + len, "the record was not consumed whole");
    if (r != 1) cr_assert_eq(p, buf, "*src moved on %d", r);
    return r;
}

Test(tls, keyed_suites_round_trip)
{
    static uint8_t data[3 * 16384 + 5], wire[4 * 16384 + 4096];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (uint8_t)(i ^ (i >> 7));
    for (size_t k = 0; k < 3; k++) {
        rp_tls *c, *s;
        keyed_pair(suites[k], &c, &s);
        rp_iov in[2] = { rp_iov_make(data, 100), rp_iov_make(data + 100, sizeof data - 100) };
        ssize_t w = rp_tls_seal(c, in, 2, wire, sizeof wire, NULL);
        cr_assert_eq(w, (ssize_t)(sizeof data + 4 * RP_TLS_RECORD_OVERHEAD));
        uint8_t *p = wire, *end = wire + w;
        size_t off = 0;
        rp_iov v;
        ringp2p_errinfo ei;
        /* whole records only: a partial one is left alone */
        cr_assert_eq(rp_tls_open(s, &p, wire + 4, &v, &ei), 0);
        cr_assert_eq(rp_tls_open(s, &p, wire + 1000, &v, &ei), 0);
        while (p < end) {
            cr_assert_eq(rp_tls_open(s, &p, end, &v, &ei), 1, "%s", ei.msg);
            cr_assert_arr_eq(v.base, data + off, v.len);
            off += v.len;
        }
        cr_assert_eq(off, sizeof data);
        /* the same bytes again: replayed, so not authentic */
        w = rp_tls_seal(c, in, 1, wire, sizeof wire, NULL);
        uint8_t copy[200];
        memcpy(copy, wire, (size_t)w);
        cr_assert_eq(open_one(s, wire, (size_t)w, &v, &ei), 1);
        cr_assert_eq(open_one(s, copy, (size_t)w, &v, &ei), RINGP2P_EAUTH);
        cr_assert_not_null(strstr(ei.msg, "did not authenticate"), "%s", ei.msg);
        rp_tls_free(c);
        rp_tls_free(s);
    }
}

/*
 * Inner records the peer may send or forge: each row is what arrives after a
 * good data record, and what open must say.
 */
Test(tls, record_parsing_rules)
{
    enum { OK = 1 };
    static const uint8_t nst[] = { 4, 0, 0, 6, 1, 2, 3, 4, 5, 6 };
    static const uint8_t ku_trailing[] = { 24, 0, 0, 1, 0, 23 };
    static const uint8_t ku_long[] = { 24, 0, 0, 2, 0, 0 };
    static const uint8_t ku_bad[] = { 24, 0, 0, 1, 7 };
    static const uint8_t cert_req[] = { 13, 0, 0, 0 };
    static const uint8_t cancel[] = { 1, 90 }, fatal[] = { 2, 40 }, close_[] = { 1, 0 },
                         close_fatal[] = { 2, 0 };
    static const uint8_t three[] = { 2, 40, 0 };
    static uint8_t big[16385];
    struct {
        const char *name;
        uint8_t type;
        const uint8_t *p;
        size_t len, pad;
        int want;
        const char *msg;
    } rows[] = {
        { "padded data", 23, (const uint8_t *)"abc", 3, 200, OK, NULL },
        { "empty data", 23, NULL, 0, 0, OK, NULL },
        { "ticket, skipped", 22, nst, sizeof nst, 0, OK, NULL },
        { "user_canceled, ignored", 21, cancel, 2, 0, OK, NULL },
        { "close_notify", 21, close_, 2, 0, RINGP2P_ECLOSED, "close_notify" },
        { "close_notify at level 2 (the level is ignored)", 21, close_fatal, 2, 0, RINGP2P_ECLOSED,
          "close_notify" },
        { "fatal alert", 21, fatal, 2, 0, RINGP2P_EPROTOCOL, "handshake_failure" },
        { "alert of 3 bytes", 21, three, 3, 0, RINGP2P_EPROTOCOL, "alert record of 3" },
        { "empty handshake record", 22, NULL, 0, 0, RINGP2P_EPROTOCOL, NULL },
        { "KeyUpdate with data behind", 22, ku_trailing, sizeof ku_trailing, 0, RINGP2P_EPROTOCOL,
          "after KeyUpdate" },
        { "KeyUpdate of 2 bytes", 22, ku_long, sizeof ku_long, 0, RINGP2P_EPROTOCOL,
          "KeyUpdate of 2" },
        { "KeyUpdate request 7", 22, ku_bad, sizeof ku_bad, 0, RINGP2P_EPROTOCOL,
          "request_update 7" },
        { "post-handshake CertificateRequest", 22, cert_req, sizeof cert_req, 0, RINGP2P_EPROTOCOL,
          "message type 13" },
        { "change_cipher_spec inside", 20, (const uint8_t *)"\x01", 1, 0, RINGP2P_EPROTOCOL,
          "content type 20" },
        { "2^14+1 bytes of data", 23, big, sizeof big, 0, RINGP2P_EPROTOCOL, "16385 plaintext" },
    };
    static uint8_t wire[20000];
    for (size_t k = 0; k < 3; k++) {
        for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
            rp_tls *c, *s;
            keyed_pair(suites[k], &c, &s);
            rp_iov v, one = rp_iov_make("hi", 2);
            ringp2p_errinfo ei = { 0, "" };
            ssize_t w = rp_tls_seal(c, &one, 1, wire, sizeof wire, NULL);
            cr_assert_eq(open_one(s, wire, (size_t)w, &v, &ei), 1);
            w = rp_tls_test_seal_inner(c, rows[i].type, rows[i].p, rows[i].len, rows[i].pad, wire,
                                       sizeof wire);
            cr_assert_gt(w, 0);
            int r = open_one(s, wire, (size_t)w, &v, &ei);
            cr_assert_eq(r, rows[i].want, "%s: %d %s", rows[i].name, r, ei.msg);
            if (r == OK && rows[i].type == 23) {
                cr_assert_eq(v.len, rows[i].len, "%s", rows[i].name);
                if (v.len > 0) cr_assert_arr_eq(v.base, rows[i].p, v.len);
            } else if (r == OK) {
                cr_assert_eq(v.len, 0, "%s: control records deliver nothing", rows[i].name);
            }
            if (rows[i].msg != NULL)
                cr_assert_not_null(strstr(ei.msg, rows[i].msg), "%s: %s", rows[i].name, ei.msg);
            if (r < 0 && r != RINGP2P_ECLOSED && strcmp(rows[i].name, "fatal alert") != 0)
                cr_assert_gt(rp_tls_pending_output(s), 0, "%s: no alert queued", rows[i].name);
            cr_assert_eq(rp_tls_peer_closed(s), r == RINGP2P_ECLOSED, "%s", rows[i].name);
            if (r == RINGP2P_ECLOSED)
                cr_assert_eq(rp_tls_pending_output(s), 0, "%s: no alert answers it", rows[i].name);
            /* still talking after what was fine */
            if (r == OK) {
                w = rp_tls_seal(c, &one, 1, wire, sizeof wire, NULL);
                cr_assert_eq(open_one(s, wire, (size_t)w, &v, &ei), 1, "%s: after: %s",
                             rows[i].name, ei.msg);
                cr_assert_eq(v.len, 2);
            }
            rp_tls_free(c);
            rp_tls_free(s);
        }
    }
}

/*
 * rp_tls_close's record is exactly the close_notify alert (level 1,
 * description 0) sealed as inner content type 21, as a session keyed the same
 * seals it by hand; the peer's clean end; a genuine data record sealed after
 * it is never delivered (RFC 8446 §6.1: ignored); the peer can still seal.
 */
Test(tls, close_notify_record_and_what_follows)
{
    static const uint8_t alert[] = { 1, 0 };
    for (size_t k = 0; k < 3; k++) {
        rp_tls *c, *s, *c2, *s2;
        keyed_pair(suites[k], &c, &s);
        keyed_pair(suites[k], &c2, &s2);
        uint8_t a[64], b[64], late[64];
        cr_assert_eq(rp_tls_close(c), 0);
        size_t n = rp_tls_take_output(c, a, sizeof a);
        ssize_t m = rp_tls_test_seal_inner(c2, 21, alert, 2, 0, b, sizeof b);
        cr_assert_eq(n, RP_TLS_RECORD_OVERHEAD + 2);
        cr_assert_eq((ssize_t)n, m);
        cr_assert_arr_eq(a, b, n, "not the close_notify alert as sealed by hand");
        /* header: application_data, 0x0303, body 2 + 1 + 16 */
        cr_assert_eq(a[0], 23);
        cr_assert_eq(a[3] << 8 | a[4], 19);
        ssize_t w = rp_tls_test_seal_inner(c, 23, (const uint8_t *)"late", 4, 0, late, sizeof late);
        cr_assert_gt(w, 0);
        rp_iov v = { 0 };
        ringp2p_errinfo ei;
        cr_assert_eq(open_one(s, a, n, &v, &ei), RINGP2P_ECLOSED, "%s", ei.msg);
        cr_assert_eq(open_one(s, late, (size_t)w, &v, &ei), RINGP2P_ECLOSED, "%s", ei.msg);
        cr_assert(rp_tls_peer_closed(s));
        /* the peer still seals, and the closed side still opens */
        rp_iov one = rp_iov_make("back", 4);
        w = rp_tls_seal(s, &one, 1, late, sizeof late, &ei);
        cr_assert_gt(w, 0, "%s", ei.msg);
        cr_assert_eq(open_one(c, late, (size_t)w, &v, &ei), 1, "%s", ei.msg);
        cr_assert_eq(v.len, 4);
        cr_assert_arr_eq(v.base, "back", 4);
        rp_tls_free(c);
        rp_tls_free(s);
        rp_tls_free(c2);
        rp_tls_free(s2);
    }
}

/* Headers judged before decryption: oversized, wrong outer type, too short for a tag. */
Test(tls, record_headers)
{
    rp_tls *c, *s;
    struct {
        uint8_t rec[22];
        size_t len;
        int want;
        const char *msg;
    } rows[] = {
        { { 23, 3, 3, 0x41, 0x01 }, 5, RINGP2P_EPROTOCOL, "16641 bytes" },
        { { 21, 3, 3, 0, 2, 2, 40 }, 7, RINGP2P_EPROTOCOL, "unprotected alert handshake_failure" },
        { { 22, 3, 3, 0, 1, 0 }, 6, RINGP2P_EPROTOCOL, "outer type 22" },
        { { 23, 3, 3, 0, 16 }, 21, RINGP2P_EAUTH, "did not authenticate" },
        { { 23, 3, 3, 0, 17 }, 21, 0, NULL }, /* 17 bytes announced, 16 there */
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        keyed_pair(0x1301, &c, &s);
        rp_iov v;
        ringp2p_errinfo ei = { 0, "" };
        int r = open_one(s, rows[i].rec, rows[i].len, &v, &ei);
        cr_assert_eq(r, rows[i].want, "row %zu: %d %s", i, r, ei.msg);
        if (rows[i].msg != NULL)
            cr_assert_not_null(strstr(ei.msg, rows[i].msg), "row %zu: %s", i, ei.msg);
        /* dead for good: the same code again */
        if (r < 0) cr_assert_eq(open_one(s, rows[i].rec, rows[i].len, &v, NULL), r);
        rp_tls_free(c);
        rp_tls_free(s);
    }
}

/* ---- the node credential and the verified-certificate cache -------------------------------- */

static void sha256_of(rp_iov der, uint8_t out[SHA256_DIGEST_LENGTH])
{
    SHA256(der.base, der.len, out);
}

/* One client/server handshake of the given configs; both must succeed. */
static void pair_done(const rp_tls_config *cc, const rp_tls_config *sc, struct end *c,
                      struct end *s, int64_t now)
{
    end_open(c, cc);
    end_open(s, sc);
    handshake(c, s, now);
    cr_assert_eq(c->last, RP_TLS_DONE, "client: %s", c->ei.msg);
    cr_assert_eq(s->last, RP_TLS_DONE, "server: %s", s->ei.msg);
}

Test(tls, node_cred_is_one_certificate_for_all_sessions, .timeout = 30)
{
    ringp2p_privkey *kn = gen(RINGP2P_KEY_ED25519), *kp = gen(RINGP2P_KEY_SECP256K1);
    rp_tls_cred *cred = NULL;
    ringp2p_errinfo ei;
    cr_assert_eq(rp_tls_cred_new(kn, NOW, &cred, &ei), 0, "%s", ei.msg);
    uint8_t node_cert[SHA256_DIGEST_LENGTH];
    sha256_of(rp_tls_cred_cert(cred), node_cert);
    /* The certificate is ours and valid for the whole lifetime of a node. */
    ringp2p_pubkey *id = NULL;
    rp_iov der = rp_tls_cred_cert(cred);
    cr_assert_eq(rp_tls_cert_verify(der.base, der.len, NOW - 3600, &id, &ei), 0, "%s", ei.msg);
    cr_assert(ringp2p_pubkey_equal(id, ringp2p_privkey_public(kn)));
    ringp2p_pubkey_free(id);
    cr_assert_lt(rp_tls_cert_verify(der.base, der.len, NOW - 3601, &id, NULL), 0);
    cr_assert_eq(rp_tls_cert_verify(der.base, der.len, NOW + 99LL * 365 * 86400, &id, NULL), 0);
    ringp2p_pubkey_free(id);

    static const char *const y[] = { YAMUX }, *const my[] = { MPLEX, YAMUX };
    ringp2p_peer_id want_n, want_p;
    ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(kn), &want_n);
    ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(kp), &want_p);
    uint8_t peer_cert[2][2][SHA256_DIGEST_LENGTH];
    for (int node_is_server = 0; node_is_server < 2; node_is_server++) {
        for (int k = 0; k < 2; k++) {
            /* The node's sessions share the credential; the peer makes a fresh one each time. */
            rp_tls_config nc = cfg_of(kn, !node_is_server), pc = cfg_of(kp, node_is_server);
            nc.cred = cred;
            /* Per-session settings on the shared context: each server picks from its own list. */
            nc.muxers = k == 0 ? y : my;
            nc.n_muxers = k == 0 ? 1 : 2;
            pc.muxers = my;
            pc.n_muxers = 2;
            pc.expected_peer = node_is_server ? &want_n : NULL;
            nc.expected_peer = node_is_server ? NULL : &want_p;
            struct end c, s, *n = node_is_server ? &s : &c, *p = node_is_server ? &c : &s;
            pair_done(node_is_server ? &pc : &nc, node_is_server ? &nc : &pc, &c, &s, NOW);
            cr_assert(ringp2p_peer_id_equal(rp_tls_remote_peer(p->s), &want_n));
            cr_assert(ringp2p_peer_id_equal(rp_tls_remote_peer(n->s), &want_p));
            cr_assert_arr_eq(rp_tls_remote_cert_sha256(p->s), node_cert, SHA256_DIGEST_LENGTH,
                             "session %d/%d did not present the node's certificate", node_is_server,
                             k);
            memcpy(peer_cert[node_is_server][k], rp_tls_remote_cert_sha256(n->s),
                   SHA256_DIGEST_LENGTH);
            /* The client's first that the server session offers: when the node serves, the
             * same client list gives each of its sessions the pick from that session's list. */
            const char *want = k == 0 ? YAMUX : MPLEX;
            cr_assert_str_eq(rp_tls_muxer(c.s), want, "%d/%d", node_is_server, k);
            cr_assert_str_eq(rp_tls_muxer(s.s), want, "%d/%d", node_is_server, k);
            check_pair_talks(&c, &s);
            end_close(&c);
            end_close(&s);
        }
    }
    /* The fresh peer's four certificates all differ, and none is the node's. */
    const uint8_t *all[] = { peer_cert[0][0], peer_cert[0][1], peer_cert[1][0], peer_cert[1][1],
                             node_cert };
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++)
            cr_assert_arr_neq(all[i], all[j], SHA256_DIGEST_LENGTH, "%d %d", i, j);
    /* Sessions outlive the credential: they hold libssl's references. */
    rp_tls_config nc = cfg_of(kn, false), pc = cfg_of(kp, true);
    nc.cred = cred;
    struct end c, s;
    end_open(&c, &pc);
    end_open(&s, &nc);
    rp_tls_cred_free(cred);
    handshake(&c, &s, NOW);
    cr_assert_eq(c.last, RP_TLS_DONE, "%s", c.ei.msg);
    cr_assert_eq(s.last, RP_TLS_DONE, "%s", s.ei.msg);
    cr_assert_arr_eq(rp_tls_remote_cert_sha256(c.s), node_cert, SHA256_DIGEST_LENGTH);
    end_close(&c);
    end_close(&s);
    cr_assert_eq(rp_tls_cred_new(NULL, NOW, &cred, &ei), RINGP2P_EINVAL);
    ringp2p_privkey_free(kn);
    ringp2p_privkey_free(kp);
}

/*
 * der with the last byte of the libp2p extension's value (the identity
 * signature's last byte) flipped, then re-signed with the certificate's own
 * key: everything verifies but the identity signature. OPENSSL_free.
 */
static uint8_t *tamper_ext_sig(const uint8_t *der, size_t len, EVP_PKEY *key, size_t *out_len)
{
    const uint8_t *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    cr_assert_not_null(x);
    ASN1_OBJECT *oid = OBJ_txt2obj(RP_TLS_EXT_OID_TEXT, 1);
    int at = X509_get_ext_by_OBJ(x, oid, -1);
    ASN1_OBJECT_free(oid);
    cr_assert_geq(at, 0);
    ASN1_OCTET_STRING *val = X509_EXTENSION_get_data(X509_get_ext(x, at));
    uint8_t *v = ASN1_STRING_data(val);
    v[ASN1_STRING_length(val) - 1] ^= 1;
    cr_assert(X509_sign(x, key, EVP_sha256()) > 0);
    uint8_t *out = NULL;
    int n = i2d_X509(x, &out);
    cr_assert_gt(n, 0);
    X509_free(x);
    *out_len = (size_t)n;
    return out;
}

Test(tls, verified_cache_needs_the_exact_certificate, .timeout = 30)
{
    ringp2p_privkey *kc = gen(RINGP2P_KEY_ED25519), *ks = gen(RINGP2P_KEY_ED25519);
    rp_sigcache *cache = rp_sigcache_new();
    cr_assert_not_null(cache);
    rp_tls_cred *cred = NULL;
    cr_assert_eq(rp_tls_cred_new(ks, NOW, &cred, NULL), 0);
    /* The client's one certificate (as a node credential would be), sent as a test chain. */
    uint8_t *der = NULL;
    size_t len = 0;
    EVP_PKEY *key = NULL;
    rp_tls_cert_params prm = rp_tls_cert_params_default(NOW);
    cr_assert_eq(rp_tls_cert_make(kc, &prm, &der, &len, &key, NULL), 0);
    rp_iov chain = rp_iov_make(der, len);
    size_t tlen = 0;
    uint8_t *tampered = tamper_ext_sig(der, len, key, &tlen);
    rp_iov tchain = rp_iov_make(tampered, tlen);
    /* Without the cache the tampered certificate fails on the identity signature alone. */
    ringp2p_errinfo ei;
    ringp2p_pubkey *id = NULL;
    cr_assert_eq(rp_tls_cert_verify(tampered, tlen, NOW, &id, &ei), RINGP2P_ESIGNATURE);
    cr_assert_not_null(strstr(ei.msg, "identity key"), "%s", ei.msg);

    uint64_t hits, ins;
    struct {
        const rp_iov *chain;
        int64_t now;
        int server_code; /* 0: done */
        uint64_t hits, ins;
    } steps[] = {
        { &chain, NOW, 0, 0, 1 },                   /* verified, remembered */
        { &chain, NOW + 60, 0, 1, 1 },              /* the same bytes: a hit */
        { &tchain, NOW, RINGP2P_ESIGNATURE, 1, 1 }, /* other bytes: verified, refused */
        { &tchain, NOW, RINGP2P_ESIGNATURE, 1, 1 }, /* failures are not remembered */
        { &chain, NOW, 0, 2, 1 },                   /* still a hit */
        { &chain, NOW + RP_TLS_CERT_VALIDITY_S + 1, RINGP2P_ECERT, 3, 1 }, /* expired, hit or not */
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        rp_tls_config cc = cfg_of(kc, true), sc = cfg_of(ks, false);
        cc.test_chain = steps[i].chain;
        cc.test_chain_len = 1;
        cc.test_key = key;
        sc.cred = cred;
        sc.verified = cache;
        struct end c, s;
        end_open(&c, &cc);
        end_open(&s, &sc);
        /* the client checks the server's certificate at NOW, the server the client's later */
        hs_step(&c, &s, NOW);
        hs_step(&s, &c, steps[i].now);
        hs_step(&c, &s, NOW);
        hs_step(&s, &c, steps[i].now);
        cr_assert_eq(c.last, RP_TLS_DONE, "step %zu: %s", i, c.ei.msg);
        if (steps[i].server_code == 0) {
            cr_assert_eq(s.last, RP_TLS_DONE, "step %zu: %s", i, s.ei.msg);
            cr_assert(ringp2p_pubkey_equal(rp_tls_remote_key(s.s), ringp2p_privkey_public(kc)));
        } else {
            cr_assert_eq(s.last, steps[i].server_code, "step %zu: %d %s", i, s.last, s.ei.msg);
        }
        rp_sigcache_stats(cache, &hits, &ins);
        cr_assert_eq(hits, steps[i].hits, "step %zu: %" PRIu64 " hits", i, hits);
        cr_assert_eq(ins, steps[i].ins, "step %zu: %" PRIu64 " stored", i, ins);
        end_close(&c);
        end_close(&s);
    }
    OPENSSL_free(der);
    OPENSSL_free(tampered);
    EVP_PKEY_free(key);
    rp_tls_cred_free(cred);
    rp_sigcache_free(cache);
    ringp2p_privkey_free(kc);
    ringp2p_privkey_free(ks);
}
