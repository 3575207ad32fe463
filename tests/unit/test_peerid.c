/* Peer IDs: derivation from keys, text forms (base58btc and CIDv1), validation. */
#include <criterion/criterion.h>
#include <string.h>

#include "key_vectors.h"
#include "ringp2p/key.h"

static ringp2p_pubkey *pub_hex(const char *hex)
{
    uint8_t b[RINGP2P_KEY_PROTOBUF_MAX];
    size_t n = unhex(hex, b, sizeof(b));
    ringp2p_pubkey *k = NULL;
    ringp2p_errinfo ei = { 0 };
    cr_assert_eq(ringp2p_pubkey_from_protobuf(b, n, &k, &ei), 0, "%s", ei.msg);
    return k;
}

static ringp2p_privkey *priv_hex(const char *hex)
{
    uint8_t b[RINGP2P_KEY_PROTOBUF_MAX];
    size_t n = unhex(hex, b, sizeof(b));
    ringp2p_privkey *k = NULL;
    ringp2p_errinfo ei = { 0 };
    cr_assert_eq(ringp2p_privkey_from_protobuf(b, n, &k, &ei), 0, "%s", ei.msg);
    return k;
}

static ringp2p_peer_id parse_ok(const char *text)
{
    ringp2p_peer_id id;
    ringp2p_errinfo ei = { 0 };
    int r = ringp2p_peer_id_parse(text, strlen(text), &id, &ei);
    cr_assert_eq(r, 0, "parse %s: %d %s", text, r, ei.msg);
    return id;
}

/* Text forms of an ID, checked against independently computed strings. */
static void assert_text(const ringp2p_peer_id *id, const char *b58, const char *cid)
{
    char s[RINGP2P_PEER_ID_STR_MAX];
    ssize_t n = ringp2p_peer_id_to_string(id, s, sizeof(s));
    cr_assert_eq(n, (ssize_t)strlen(b58), "base58 length of %s", b58);
    cr_assert_str_eq(s, b58);
    n = ringp2p_peer_id_to_cid_string(id, s, sizeof(s));
    cr_assert_eq(n, (ssize_t)strlen(cid), "CID length of %s", cid);
    cr_assert_str_eq(s, cid);
}

/*
 * Public keys with their peer IDs in both text forms. The spec vectors'
 * IDs were computed independently (see key_vectors.h); the go/js ones are
 * also what those projects' tests state where they state one.
 */
static const struct {
    const char *pub, *b58, *cid;
    bool identity;
} known[] = {
    { SPEC_ED25519_PUBLIC_KEY, "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
      "bafzaajaiaejcahwr5d5ofrfbis4l5d6uwr57hu5tjodrypfm6yaq6dsc2r2pzyt6", true },
    { SPEC_SECP256K1_PUBLIC_KEY, "16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY",
      "bafzaajiiaijcca3xo7uzjzcsyilaj6i54cj44qk7kqzpoao5rti2pjx6udtdbp6kte", true },
    { SPEC_ECDSA_PUBLIC_KEY, "QmVMT29id3TUASyfZZ6k9hmNyc2nYabCo4uMSpDw4zrgDk",
      "bafzbeidigywdclqvl5hxfefwp5onbffcfife7pza57mmfb4tiqmtkdjw64", false },
    { SPEC_RSA_PUBLIC_KEY, "QmaeANgBs1DTSxWSrPPtobgQuxW8XTfsS4ydbK4rCHzqxG",
      "bafzbeifwzcumbiyql7bhv7fe7mixg6i7aohegq75k234m63bnw6dbicmzu", false },
    { GO_0_PUB, "QmcW3oMdSqoEcjbyd51auqC23vhKX6BqfcZcY2HJ3sKAZR",
      "bafzbeigsnpz6ssy2beu3c2jlu4j4r4mylev2qjb2cxesdlfak2ht4cscbq", false },
    { GO_2_PUB, "16Uiu2HAky1YnjeGryCtGu69pvjeHXSwTHUgDNFF4zxtD5WrCPury",
      "bafzaajiiaijccarvicwyikxyuq2vdkknqob2kvnjsitfa24i7fj5fzydc2r2dm6wui", true },
    { GO_3_PUB, "QmYod9tQDX9rLCrs7au5um1aDrBXTnaHGbh1W6bxNGeEut",
      "bafzbeie3pxfngvgatgoa72oddcit74plcd6kxi4vmclbyk5s257y7dt4m4", false },
    /* js-libp2p ed25519.spec.ts states this ID. */
    { JS_ED_VERIFY_PUBLICKEY, "12D3KooWLqLxEfJ9nDdEe8Kh8PFvNPQRYDQBwyL7CMM7HhVd5LsX",
      "bafzaajaiaejcbi5qymx75ubraxagmib7hlfkxgmsuqm5igk3sinhljmua3hvvwl6", true },
    /* js-libp2p secp256k1.spec.ts states this ID. */
    { JS_SECP_PUB, "16Uiu2HAm5vpzEwJ41kQmnwDu9moFusdc16wV1oCUd1AHLgFgPpKY",
      "bafzaajiiaijccau4bts5knsg5vdrcjlaff5d4wnxrogl2s5og7d2bqrw524r2d56v4", true },
    { PY_P384_PUB, "QmW6SrL5XkBc8uBk2Neh1zgYf1LCoikb8R2cS42P72eSkR",
      "bafzbeidthh2lsfgdogjc4bymn26l6bhvrktoes3hxhba2vb4pk7gem456i", false },
    { PY_P521_PUB, "Qmb5od3DXg9NqL7ovVoQmdVBgqM26n6soFGTKVG9XXMZF5",
      "bafzbeif5ljf2exo35y63hepqpo4hcjhlm55g3wss5ikiimxx26rzaxwc6a", false },
    { PY_RSA3072_PUB, "QmQxETsFTyBfdFh8j4p8wdb69fBEPM1ZPL32yG8Ho9o1tH",
      "bafzbeibg2tpflroohypzcwn37v2y2cxx4prv5ijhyw4kdgyk62ewsyy2ry", false },
};

Test(peerid, known_keys)
{
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        ringp2p_pubkey *pk = pub_hex(known[i].pub);
        ringp2p_peer_id id;
        cr_assert_eq(ringp2p_peer_id_from_pubkey(pk, &id), 0);
        cr_assert_eq(id.bytes[0], known[i].identity ? 0x00 : 0x12, "%s", known[i].b58);
        assert_text(&id, known[i].b58, known[i].cid);
        ringp2p_peer_id a = parse_ok(known[i].b58), b = parse_ok(known[i].cid);
        cr_assert(ringp2p_peer_id_equal(&a, &id));
        cr_assert(ringp2p_peer_id_equal(&b, &id));
        cr_assert(ringp2p_peer_id_matches(&a, pk));

        ringp2p_peer_id again;
        cr_assert_eq(ringp2p_peer_id_from_bytes(id.bytes, id.len, &again, NULL), 0);
        cr_assert(ringp2p_peer_id_equal(&again, &id));

        ringp2p_pubkey *x = NULL;
        int r = ringp2p_peer_id_extract_pubkey(&a, &x);
        if (known[i].identity) {
            cr_assert_eq(r, 0);
            cr_assert(ringp2p_pubkey_equal(x, pk));
            ringp2p_pubkey_free(x);
        } else {
            cr_assert_eq(r, RINGP2P_ENOENT);
            cr_assert_null(x);
        }
        ringp2p_pubkey_free(pk);
    }
}

/* Private keys whose peer IDs go-libp2p and js-libp2p tests state. */
Test(peerid, known_private_keys)
{
    static const struct {
        const char *priv, *b58;
    } v[] = {
        { GO_RSA_MAN_PRIV, "QmcJeseojbPW9hSejUM1sQ1a2QmbrryPK4Z8pWbRUPaYEn" },
        { JS_GO_RSA_PRIV, "QmRLoXS3E73psYaUsma1VSbboTa2J8Z9kso1tpiGLk9WQ4" },
        { JS_ED_REDUNDANTPUBKEY_PRIVATEKEY, NULL },
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        ringp2p_privkey *k = priv_hex(v[i].priv);
        ringp2p_peer_id id;
        char s[RINGP2P_PEER_ID_STR_MAX];
        cr_assert_eq(ringp2p_peer_id_from_pubkey(ringp2p_privkey_public(k), &id), 0);
        cr_assert_gt(ringp2p_peer_id_to_string(&id, s, sizeof(s)), 0);
        if (v[i].b58 != NULL) cr_assert_str_eq(s, v[i].b58);
        ringp2p_privkey_free(k);
    }
}

/* peer-ids.md "Decoding" examples and RFC 0001. */
Test(peerid, spec_text_examples)
{
    ringp2p_peer_id cid = parse_ok("bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe");
    ringp2p_peer_id b58 = parse_ok("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N");
    cr_assert(ringp2p_peer_id_equal(&cid, &b58));
    assert_text(&cid, "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",
                "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe");
    ringp2p_pubkey *pk = NULL;
    cr_assert_eq(ringp2p_peer_id_extract_pubkey(&b58, &pk), RINGP2P_ENOENT);

    const char *ed = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
    ringp2p_peer_id id = parse_ok(ed);
    cr_assert_eq(id.len, 38);
    cr_assert_eq(ringp2p_peer_id_extract_pubkey(&id, &pk), 0);
    cr_assert_eq(ringp2p_pubkey_type(pk), RINGP2P_KEY_ED25519);
    ringp2p_peer_id derived;
    cr_assert_eq(ringp2p_peer_id_from_pubkey(pk, &derived), 0);
    cr_assert(ringp2p_peer_id_equal(&derived, &id));
    cr_assert(ringp2p_peer_id_matches(&id, pk));
    cr_assert_not(ringp2p_peer_id_matches(&b58, pk));
    char s[RINGP2P_PEER_ID_STR_MAX];
    cr_assert_gt(ringp2p_peer_id_to_string(&id, s, sizeof(s)), 0);
    cr_assert_str_eq(s, ed);
    ringp2p_pubkey_free(pk);
}

/* The CIDv1 form in every multibase (strings computed independently). */
Test(peerid, cid_in_any_multibase)
{
    static const char *forms[] = {
        "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
        "bafzaajaiaejcahwr5d5ofrfbis4l5d6uwr57hu5tjodrypfm6yaq6dsc2r2pzyt6",
        "k51qzi5uqu5dgy8qsq67hbz73jqkw87l3fgf4a91qb0d9b5173tir7n4vxk1oe",
        "z5AanNVJCxnGuh8TJu4nye3dE3NbxAd8FB9cr46uVagyFPuibMxok2R",
        "f01720024080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e",
        "uAXIAJAgBEiAe0ej64sShRLi-j9S0e_PTs0uHHDys9gEPDkLUdPzifg",
    };
    ringp2p_peer_id first = parse_ok(forms[0]);
    for (size_t i = 1; i < sizeof(forms) / sizeof(forms[0]); i++) {
        ringp2p_peer_id id = parse_ok(forms[i]);
        cr_assert(ringp2p_peer_id_equal(&id, &first), "%s", forms[i]);
    }
    /* Text need not be NUL-terminated. */
    ringp2p_peer_id id;
    cr_assert_eq(
        ringp2p_peer_id_parse("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5Nxyz", 46, &id, NULL),
        0);
}

Test(peerid, generated_roundtrips)
{
    static const ringp2p_key_type types[] = { RINGP2P_KEY_ED25519, RINGP2P_KEY_SECP256K1,
                                              RINGP2P_KEY_ECDSA, RINGP2P_KEY_RSA };
    ringp2p_peer_id ids[4];
    ringp2p_privkey *keys[4];
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(ringp2p_privkey_generate(types[i], &keys[i]), 0);
        const ringp2p_pubkey *pk = ringp2p_privkey_public(keys[i]);
        cr_assert_eq(ringp2p_peer_id_from_pubkey(pk, &ids[i]), 0);
        bool inline_key = types[i] == RINGP2P_KEY_ED25519 || types[i] == RINGP2P_KEY_SECP256K1;
        cr_assert_eq(ids[i].bytes[0], inline_key ? 0x00 : 0x12);
        cr_assert_eq(ids[i].len, types[i] == RINGP2P_KEY_ED25519     ? 38
                                 : types[i] == RINGP2P_KEY_SECP256K1 ? 39
                                                                     : 34);
        char s[RINGP2P_PEER_ID_STR_MAX];
        ssize_t n = ringp2p_peer_id_to_string(&ids[i], s, sizeof(s));
        cr_assert_gt(n, 0);
        cr_assert_eq(strncmp(s, inline_key ? "1" : "Qm", inline_key ? 1 : 2), 0, "%s", s);
        ringp2p_peer_id back = parse_ok(s);
        cr_assert(ringp2p_peer_id_equal(&back, &ids[i]));
        n = ringp2p_peer_id_to_cid_string(&ids[i], s, sizeof(s));
        cr_assert_gt(n, 0);
        cr_assert_eq(strncmp(s, "bafz", 4), 0, "%s", s);
        back = parse_ok(s);
        cr_assert(ringp2p_peer_id_equal(&back, &ids[i]));
        cr_assert(ringp2p_peer_id_matches(&ids[i], pk));
        ringp2p_pubkey *x = NULL;
        cr_assert_eq(ringp2p_peer_id_extract_pubkey(&ids[i], &x), inline_key ? 0 : RINGP2P_ENOENT);
        if (inline_key) cr_assert(ringp2p_pubkey_equal(x, pk));
        ringp2p_pubkey_free(x);
    }
    for (size_t i = 0; i < 4; i++) {
        for (size_t j = 0; j < 4; j++) {
            cr_assert_eq(ringp2p_peer_id_equal(&ids[i], &ids[j]), i == j);
            cr_assert_eq(ringp2p_peer_id_matches(&ids[i], ringp2p_privkey_public(keys[j])), i == j);
        }
    }
    for (size_t i = 0; i < 4; i++) ringp2p_privkey_free(keys[i]);
}

Test(peerid, parse_rejects)
{
    static const struct {
        const char *text;
        int code; /* 0: any error */
        const char *needle;
    } v[] = {
        { "", RINGP2P_EPEERID, "empty" },
        { "bafkreifoybygix7fh3r3g5rqle3wcnhqldgdg4shzf4k3ulyw3gn7mabt4", RINGP2P_ECID,
          "codec 0x55 (raw), not libp2p-key" },
        { "bafybeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe", RINGP2P_ECID,
          "codec 0x70 (dag-pb)" },
        /* A libp2p-key CID of a sha1 multihash. */
        { "bafzbcfaaaebagbafaydqqcikbmga2dqpcaireey", RINGP2P_EPEERID, "function 0x11" },
        /* Base58 of 00 04 08 01 12 00: an identity multihash of an empty Ed25519 key. */
        { "1TNzagF", RINGP2P_EPEERID, "Ed25519 public key must be 32 bytes, got 0" },
        /* The spec's example minus its last character. */
        { "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5S", RINGP2P_EPEERID, "multihash" },
        { "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx50", RINGP2P_EMULTIBASE, "" },
        { "11111111111111111111111111111111111111111111111111", RINGP2P_EPEERID,
          "more than 44 bytes" },
        { "!bafz", RINGP2P_EMULTIBASE, "" },
        /* The RFC 0001 example minus its last character: whichever layer notices first. */
        { "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqx", 0, "" },
        { "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
          "aaaa"
          "aaaaaaaaaa",
          RINGP2P_EPEERID, "characters" },
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        ringp2p_peer_id id;
        ringp2p_errinfo ei = { 0 };
        int r = ringp2p_peer_id_parse(v[i].text, strlen(v[i].text), &id, &ei);
        cr_assert_lt(r, 0, "case %zu (%s) parsed", i, v[i].text);
        if (v[i].code != 0) cr_assert_eq(r, v[i].code, "case %zu: %d %s", i, r, ei.msg);
        cr_assert(strstr(ei.msg, v[i].needle) != NULL, "case %zu: message '%s'", i, ei.msg);
        cr_assert_neq(ei.msg[0], '\0', "case %zu: no message", i);
    }
}

Test(peerid, from_bytes_rejects)
{
    static const struct {
        const char *hex;
        const char *needle;
    } v[] = {
        { "", "not a multihash" },
        { "1220000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e", "not a multihash" },
        { "11140001020304050607080910111213141516171819", "function 0x11" },
        { "002b000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20212223242526272829"
          "2a",
          "45 bytes" },
        { "002a000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021222324252627282"
          "9",
          "does not inline a valid key" },
        /* An identity multihash of a sha2-256 peer ID, not of a key. */
        { "0022122068362c312e155f4f7290b67f5cd094a22a0a4fbf20efd8c287934419350d36f7",
          "does not inline a valid key" },
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        uint8_t b[64];
        size_t n = unhex(v[i].hex, b, sizeof(b));
        ringp2p_peer_id id;
        ringp2p_errinfo ei = { 0 };
        cr_assert_eq(ringp2p_peer_id_from_bytes(b, n, &id, &ei), RINGP2P_EPEERID, "case %zu", i);
        cr_assert(strstr(ei.msg, v[i].needle) != NULL, "case %zu: message '%s'", i, ei.msg);
    }
}

Test(peerid, buffers_and_invalid_ids)
{
    ringp2p_peer_id id = parse_ok("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N");
    char s[RINGP2P_PEER_ID_STR_MAX];
    cr_assert_eq(ringp2p_peer_id_to_string(&id, s, 46), RINGP2P_ENOBUF, "no room for the NUL");
    cr_assert_eq(ringp2p_peer_id_to_string(&id, s, 47), 46);
    cr_assert_eq(ringp2p_peer_id_to_cid_string(&id, s, 10), RINGP2P_ENOBUF);
    ringp2p_peer_id empty = { 0 };
    cr_assert_eq(ringp2p_peer_id_to_string(&empty, s, sizeof(s)), RINGP2P_EINVAL);
    cr_assert_eq(ringp2p_peer_id_to_cid_string(&empty, s, sizeof(s)), RINGP2P_EINVAL);
    ringp2p_pubkey *pk;
    cr_assert_eq(ringp2p_peer_id_extract_pubkey(&empty, &pk), RINGP2P_EINVAL);
    cr_assert_not(ringp2p_peer_id_equal(&empty, &id));
    ringp2p_peer_id shorter = id;
    shorter.len--;
    cr_assert_not(ringp2p_peer_id_equal(&shorter, &id));
    /* The longest text form fits RINGP2P_PEER_ID_STR_MAX (secp256k1: 39-byte ID). */
    id = parse_ok("16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY");
    cr_assert_gt(ringp2p_peer_id_to_cid_string(&id, s, sizeof(s)), 0);
}
