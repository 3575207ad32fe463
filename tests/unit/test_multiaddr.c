#include <criterion/criterion.h>

#include "testutil.h"
#include <stdio.h>
#include <string.h>

#include "multiformats/multiaddr.h"
#include "ringp2p/multiaddr.h"

/*
 * Hex vectors: the multiaddr README ("/ip4/127.0.0.1/udp/1234"), its
 * test/multiaddr.feature, go-multiaddr's TestStringToBytes (onion, garlic),
 * and the rest built by hand from protocols.csv and the multicodec table;
 * every one was cross-checked against @multiformats/multiaddr 13.0.3 except
 * garlic (js keeps the text's bytes; we follow go and the table).
 */

#define QM          "QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC"
#define QM_HEX      "a503221220d52ebb89d85b02a284948203a62ff28389c57c9f42beec4ec20db76a68911c0b"
#define ED          "12D3KooWBdmLJjhpgJ9KZgLM3f894ff9xyBfPvPjFNn7MKJpyrC2"
#define ED_HEX      "a503260024080112201b002d73dc3db78649e1e3717f3dd66edd066afe2c1f861d4b1a638a155a1333"
#define SPEC_ID     "QmYJyUMAcXEw1b5bFfbBbzYu5wyyjLMRHXGUkCXpag74Fu"
#define SPEC_ID_HEX "a5032212209426ec3ca6b337d72cbf01604b5b709306a3a2656ef84849bef49f6f6e333c8c"
#define CH1         "uEiAkH5a4DPGKUuOBjYw0CgwjvcJCJMD2K_1aluKR_tpevQ"
#define CH1_HEX     "d203221220241f96b80cf18a52e3818d8c340a0c23bdc24224c0f62bfd5a96e291feda5ebd"
#define CH2         "uEiAfbgiymPP2_nX7Dgir8B4QkksjHp2lVuJZz0F79Be9JA"
#define CH2_HEX     "d2032212201f6e08b298f3f6fe75fb0e08abf01e10924b231e9da556e259cf417bf417bd24"
#define GARLIC64                                                                                   \
    "jT~IyXaoauTni6N4517EG8mrFUKpy0IlgZh-EY9csMAk82Odatmzr~YTZy8Hv7u~wvkg75EFNOyqb~nAPg-khyp2TS~O" \
    "bUz8WlqYAM2VlEzJ7wJB91P-cUlKF18zSzVoJFmsrcQHZCirSbWoOknS6iNmsGRh5KVZsBEfp1Dg3gwTipTRIx7Vl5Vy" \
    "~1OSKQVjYiGZS9q8RL0MF~7xFiKxZDLbPxk0AK9TzGGqm~wMTI2HS0Gm4Ycy8LYPVmLvGonIBYndg2bJC7WLuF6tVjVq" \
    "uiokSVDKFwq70BCUU5AU-EvdOD5KEOAM7mPfw-gJUG4tm1TtvcobrObqoRnmhXPTBTN5H7qDD12AvlwFGnfAlBXjuP4x" \
    "OUAISL5SRLiulrsMSiT4GcugSI80mF6sdB0zWRgL1yyvoVWeTBn1TqjO27alr95DGTluuSqrNAxgpQzCKEWAyzrQkBfo" \
    "2avGAmmz2NaHaAvYbOg0QSJz1PLjv2jdPW~ofiQmrGWM1cd~1cCqAAAA"
#define GARLIC64_HEX                                                                               \
    "be0383038d3fc8c976a86ae4e78ba378e75ec41bc9ab1542a9cb422581987e118f5cb0c024f3639d6ad9b3aff613" \
    "672f07bfbbbfc2f920ef910534ecaa6ff9c03e0fa4872a764d2fce6d4cfc5a5a9800cd95944cc9ef0241f753fe71" \
    "494a175f334b35682459acadc4076428ab49b5a83a49d2ea2366b06461e4a559b0111fa750e0de0c138a94d1231e" \
    "d5979572ff53922905636221994bdabc44bd0c17fef11622b16432db3f193400af53cc61aa9bfc0c4c8d874b41a6" \
    "e18732f0b60f5662ef1a89c80589dd8366c90bb58bb85ead56356aba2a244950ca170abbd01094539014f84bdd38" \
    "3e4a10e00cee63dfc3e809506e2d9b54edbdca1bace6eaa119e68573d30533791fba830f5d80be5c051a77c09415" \
    "e3b8fe3139400848be5244b8ae96bb0c4a24f819cba0488f34985eac741d3359180bd72cafa1559e4c19f54ea8ce" \
    "dbb6a5afde4319396eb92aab340c60a50cc2284580cb3ad09017e8d9abc60269b3d8d687680bd86ce834412273d4" \
    "f2e3bf68dd3d6fe87e2426ac658cd5c77fd5c0aa000000"

static const struct {
    const char *in;
    const char *hex;
    const char *out; /* canonical text; NULL: same as `in` */
} vectors[] = {
    /* multiaddr README and test/multiaddr.feature */
    { "/ip4/127.0.0.1/udp/1234", "047f000001910204d2", NULL },
    { "/ip4/192.0.2.42/tcp/443", "04c000022a0601bb", NULL },
    /* ip4, ports */
    { "/ip4/0.0.0.0/tcp/0", "0400000000060000", NULL },
    { "/ip4/255.255.255.255/tcp/65535", "04ffffffff06ffff", NULL },
    { "/ip4/127.0.0.1/udp/1234/ip4/127.0.0.1/tcp/4321", "047f000001910204d2047f0000010610e1",
      NULL },
    { "/ip4/1.2.3.4/dccp/33", "0401020304210021", NULL },
    { "/ip4/1.2.3.4/sctp/132", "040102030484010084", NULL },
    { "/ip4/1.2.3.4/udp/5000/utp", "040102030491021388ae02", NULL },
    { "/ip4/1.2.3.4/udp/5000/udt", "040102030491021388ad02", NULL },
    /* ip6: RFC 5952 output, IPv4-mapped kept in hex as js prints it */
    { "/ip6/::1/tcp/4001", "2900000000000000000000000000000001060fa1", NULL },
    { "/ip6/::", "2900000000000000000000000000000000", NULL },
    { "/ip6/2001:8a0:7ac5:4201:3ac9:86ff:fe31:7095/tcp/8000/ws",
      "29200108a07ac542013ac986fffe317095061f40dd03", NULL },
    { "/ip6/0001:08a0:00c5:4201:3ac9:86ff:fe31:0709", "29000108a000c542013ac986fffe310709",
      "/ip6/1:8a0:c5:4201:3ac9:86ff:fe31:709" },
    { "/ip6/::101.45.75.219/tcp/9090", "29000000000000000000000000652d4bdb062382",
      "/ip6/::652d:4bdb/tcp/9090" },
    { "/ip6/::ffff:192.0.2.1", "2900000000000000000000ffffc0000201", "/ip6/::ffff:c000:201" },
    { "/ip6/0:00:0000:0002:0000:059c:0a24:0801/tcp/64142",
      "2900000000000000020000059c0a24080106fa8e", "/ip6/::2:0:59c:a24:801/tcp/64142" },
    { "/ip6/1:0:0:1:0:0:0:1", "2900010000000000010000000000000001", "/ip6/1:0:0:1::1" },
    { "/ip6/1:0:0:0:1:0:0:1", "2900010000000000000001000000000001", "/ip6/1::1:0:0:1" },
    { "/ip6/FE80::ABCD", "29fe80000000000000000000000000abcd", "/ip6/fe80::abcd" },
    { "/ip6/2001:db8::1:0:0:1", "2920010db8000000000001000000000001", NULL },
    { "/ip6/1::", "2900010000000000000000000000000000", NULL },
    { "/ip6/1:2:3:4:5:6:7:0", "2900010002000300040005000600070000", NULL },
    { "/ip6/1:2:3:4:5:6::8", "2900010002000300040005000600000008", "/ip6/1:2:3:4:5:6:0:8" },
    /* ip6zone, ipcidr */
    { "/ip6zone/x/ip6/fe80::1", "2a017829fe800000000000000000000000000001", NULL },
    { "/ip6zone/eth0/ip6/fe80::1/udp/1234/quic",
      "2a046574683029fe800000000000000000000000000001910204d2cc03", NULL },
    { "/ip4/192.0.2.0/ipcidr/24", "04c00002002b18", NULL },
    { "/ip6/2001:db8::/ipcidr/32", "2920010db80000000000000000000000002b20", NULL },
    { "/ip4/1.2.3.4/ipcidr/0", "04010203042b00", NULL },
    /* names */
    { "/dns/example.com/tcp/443/wss", "350b6578616d706c652e636f6d0601bbde03", NULL },
    { "/dns4/example.com/tcp/443/tls/ws", "360b6578616d706c652e636f6d0601bbc003dd03", NULL },
    { "/dns6/example.com/tcp/80/http", "370b6578616d706c652e636f6d060050e003", NULL },
    { "/dnsaddr/bootstrap.libp2p.io", "3813626f6f7473747261702e6c69627032702e696f", NULL },
    { "/dns/example.com/tcp/443/tls/sni/example.com/http",
      "350b6578616d706c652e636f6d0601bbc003c1030b6578616d706c652e636f6de003", NULL },
    /* protocols without a value */
    { "/ip4/1.2.3.4/tcp/443/https", "04010203040601bbbb03", NULL },
    { "/ip4/1.2.3.4/tcp/4001/noise", "0401020304060fa1c603", NULL },
    { "/ip4/1.2.3.4/udp/4001/quic", "040102030491020fa1cc03", NULL },
    { "/ip4/1.2.3.4/udp/4001/quic-v1", "040102030491020fa1cd03", NULL },
    { "/ip4/127.0.0.1/tcp/9090/ws/p2p-webrtc-star/p2p/" QM, "047f000001062382dd039302" QM_HEX,
      NULL },
    { "/ip4/127.0.0.1/tcp/9090/http/p2p-webrtc-direct", "047f000001062382e0039402", NULL },
    { "/ip4/127.0.0.1/tcp/9090/ws/p2p-websocket-star", "047f000001062382dd03df03", NULL },
    { "/ip4/127.0.0.1/tcp/9090/ws/p2p-stardust", "047f000001062382dd039502", NULL },
    /* certhash: any multibase in, base64url out */
    { "/ip4/1.2.3.4/udp/4001/quic-v1/webtransport/certhash/" CH1 "/certhash/" CH2 "/p2p/" ED,
      "040102030491020fa1cd03d103" CH1_HEX CH2_HEX ED_HEX, NULL },
    { "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport/certhash/b2uaraocy6yrdblb4sfptaddgimjmmpy",
      "047f000001910204d2cd03d103d20313d501103858f62230ac3c915f300c664312c63f",
      "/ip4/127.0.0.1/udp/1234/quic-v1/webtransport/certhash/u1QEQOFj2IjCsPJFfMAxmQxLGPw" },
    { "/ip4/1.2.3.4/udp/1234/webrtc-direct/certhash/" CH1, "0401020304910204d29802" CH1_HEX, NULL },
    /* p2p: base58btc, legacy ipfs, CIDv1 libp2p-key in base32 and base36 */
    { "/ip4/1.2.3.4/tcp/4001/p2p/" QM "/p2p-circuit/webrtc/p2p/" ED,
      "0401020304060fa1" QM_HEX "a2029902" ED_HEX, NULL },
    { "/ipfs/" QM, QM_HEX, "/p2p/" QM },
    { "/p2p/bafzbeidt255unskpefjmqb2rc27vjuyxopkxgaylxij6pw35hhys4vnyp4",
      "a50322122073d77b46c94f2152c8075116bf54d31773d573030bba13e7db7d39f12e55b87f",
      "/p2p/QmW8rAgaaA6sRydK1k6vonShQME47aDxaFidbtMevWs73t" },
    { "/ip4/127.0.0.1/p2p/k2k4r8oqamigqdo6o7hsbfwd45y70oyynp98usk7zmyfrzpqxh1pohl7/tcp/1234",
      "047f000001" QM_HEX "0604d2", "/ip4/127.0.0.1/p2p/" QM "/tcp/1234" },
    /* unix, http-path: one percent-encoded segment, as js-multiaddr 13 */
    { "/unix/%2Ftmp%2Fp2p.sock", "90030d2f746d702f7032702e736f636b", NULL },
    { "/ip4/127.0.0.1/tcp/80/unix/a%2Fb%2Fc%2Fd%2Fe%2Ff",
      "047f00000106005090030b612f622f632f642f652f66", NULL },
    { "/unix/a:b%20c", "900305613a622063", "/unix/a%3Ab%20c" },
    { "/unix/%2ftmp", "9003042f746d70", "/unix/%2Ftmp" },
    { "/unix/%F0%9F%98%80", "900304f09f9880", NULL },
    /* percent-encoded values are octets (js refuses escapes that are not UTF-8) */
    { "/unix/%ff", "900301ff", "/unix/%FF" },
    { "/http-path/%C0%AF", "e103032fc0af", NULL },
    { "/dns/b\xc3\xbc"
      "cher.de",
      "350a62c3bc636865722e6465", NULL },
    { "/ip4/1.2.3.4/tcp/443/tls/http/http-path/foo%2Findex.html",
      "04010203040601bbc003e003e1030f2f666f6f2f696e6465782e68746d6c", NULL },
    { "/http-path/a%2520space", "e1030a2f612532307370616365", NULL },
    { "/http-path/.well-known%2Flibp2p", "e103132f2e77656c6c2d6b6e6f776e2f6c6962703270", NULL },
    { "/p2p/" ED "/http-path/a", ED_HEX "e103022f61", NULL },
    /* onion (go-multiaddr's vectors too), garlic32 (go-multiaddr's) */
    { "/onion/timaq4ygg2iegci7:1234", "bc039a18087306369043091f04d2", NULL },
    { "/onion/aaimaq4ygg2iegci:80", "bc030010c0439831b48218480050", NULL },
    { "/onion/TIMAQ4YGG2IEGCI7:1234", "bc039a18087306369043091f04d2",
      "/onion/timaq4ygg2iegci7:1234" },
    { "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd:1234",
      "bd03adadec040be047f9658668b11a504f3155001f231a37f54c4476c07fb4cc139ed7e30304d2", NULL },
    { "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzuq",
      "bf0320efbcd45d0c5dc79781ac6f20ea5055a036afb48d45a52e7d68ec7d4338919e69", NULL },
    { "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzuqzwas",
      "bf0323efbcd45d0c5dc79781ac6f20ea5055a036afb48d45a52e7d68ec7d4338919e690cd812", NULL },
    /* memory: length-prefixed string (protocols.csv, js-multiaddr 13) */
    { "/memory/test/p2p/" QM, "89060474657374" QM_HEX, NULL },
    { "/memory/1234", "89060431323334", NULL },
    /* trailing slashes are dropped */
    { "/ip4/1.2.3.4/tcp/80/", "0401020304060050", "/ip4/1.2.3.4/tcp/80" },
    { "/tls///", "c003", "/tls" },
    /* empty */
    { "", "", "/" },
    { "/", "", "/" },
    { "////", "", "/" },
};

static void check_vector(const char *in, const char *hex, const char *out)
{
    uint8_t want[RP_MADDR_MAX_BYTES], got[RP_MADDR_MAX_BYTES];
    char text[RP_MADDR_TEXT_MAX];
    size_t wlen = unhex(hex, want, sizeof(want));
    if (out == NULL) out = in;
    ringp2p_errinfo ei = { 0 };

    ssize_t n = rp_maddr_from_text(in, strlen(in), got, sizeof(got), &ei);
    cr_assert_eq(n, (ssize_t)wlen, "%s: parse gave %zd (%s)", in, n, ei.msg);
    cr_assert_arr_eq(got, want, wlen, "%s: wrong bytes", in);

    ssize_t t = rp_maddr_to_text(want, wlen, text, sizeof(text), &ei);
    cr_assert_eq(t, (ssize_t)strlen(out), "%s: print gave %zd (%s)", in, t, ei.msg);
    cr_assert_str_eq(text, out);
    cr_assert_eq(rp_maddr_text_len(want, wlen, NULL), t);

    /* Canonical text parses back to the same bytes. */
    n = rp_maddr_from_text(text, (size_t)t, got, sizeof(got), &ei);
    cr_assert_eq(n, (ssize_t)wlen);
    cr_assert_arr_eq(got, want, wlen);

    /* The public objects agree. */
    ringp2p_multiaddr *a = NULL, *b = NULL;
    cr_assert_eq(ringp2p_multiaddr_parse(in, &a, &ei), 0, "%s: %s", in, ei.msg);
    cr_assert_eq(ringp2p_multiaddr_from_bytes(want, wlen, &b, &ei), 0, "%s: %s", in, ei.msg);
    cr_assert(ringp2p_multiaddr_equal(a, b));
    size_t blen;
    const uint8_t *bytes = ringp2p_multiaddr_bytes(a, &blen);
    cr_assert_eq(blen, wlen);
    cr_assert_arr_eq(bytes, want, wlen);
    size_t max = ringp2p_multiaddr_text_max(b);
    cr_assert_eq(max, strlen(out) + 1);
    char *s = malloc(max);
    cr_assert_eq(ringp2p_multiaddr_to_string(b, s, max), (ssize_t)strlen(out));
    cr_assert_str_eq(s, out);
    cr_assert_eq(ringp2p_multiaddr_to_string(b, s, max - 1), RINGP2P_ENOBUF);
    free(s);
    ringp2p_multiaddr_free(a);
    ringp2p_multiaddr_free(b);
}

Test(multiaddr, text_bytes_vectors)
{
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++)
        check_vector(vectors[i].in, vectors[i].hex, vectors[i].out);
}

Test(multiaddr, garlic64_vector)
{
    /* go-multiaddr TestStringToBytes: a 387-byte I2P destination. */
    check_vector("/garlic64/" GARLIC64, GARLIC64_HEX, NULL);
    check_vector("/garlic64/" GARLIC64 "/tcp/8080", GARLIC64_HEX "061f90", NULL);
}

/* libp2p specs _archive/3-requirements.md, section 3.1: every ipfs-addr example. */
Test(multiaddr, spec_requirements_examples)
{
    static const struct {
        const char *in, *hex, *out;
    } ok[] = {
        { "/ip6/fe80::8823:6dff:fee7:f172/tcp/4001/ipfs/" SPEC_ID,
          "29fe8000000000000088236dfffee7f172060fa1" SPEC_ID_HEX,
          "/ip6/fe80::8823:6dff:fee7:f172/tcp/4001/p2p/" SPEC_ID },
        { "/ip4/162.246.145.218/udp/4001/utp/ipfs/" SPEC_ID, "04a2f691da91020fa1ae02" SPEC_ID_HEX,
          "/ip4/162.246.145.218/udp/4001/utp/p2p/" SPEC_ID },
        { "/ip6/fe80::8823:6dff:fee7:f172/ipfs/" SPEC_ID,
          "29fe8000000000000088236dfffee7f172" SPEC_ID_HEX,
          "/ip6/fe80::8823:6dff:fee7:f172/p2p/" SPEC_ID },
        { "/ip4/162.246.145.218/tcp/7650/ip4/192.168.0.1/tcp/4001/ipfs/" SPEC_ID,
          "04a2f691da061de204c0a80001060fa1" SPEC_ID_HEX,
          "/ip4/162.246.145.218/tcp/7650/ip4/192.168.0.1/tcp/4001/p2p/" SPEC_ID },
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        check_vector(ok[i].in, ok[i].hex, ok[i].out);

    /* IPFS over Ethernet: no ether protocol exists in the multicodec table. */
    ringp2p_multiaddr *ma = NULL;
    ringp2p_errinfo ei = { 0 };
    int r = ringp2p_multiaddr_parse("/ether/ac:fd:ec:0b:7c:fe/ipfs/" SPEC_ID, &ma, &ei);
    cr_assert_eq(r, RINGP2P_EPROTOUNKNOWN);
    cr_assert_eq(ei.code, RINGP2P_EPROTOUNKNOWN);
    cr_assert_not_null(strstr(ei.msg, "'ether'"), "message: %s", ei.msg);
    cr_assert_null(ma);
}

static const struct {
    const char *in;
    int code;
    const char *msg; /* substring of ei.msg */
} text_errors[] = {
    { "/ether/ac:fd:ec:0b:7c:fe", RINGP2P_EPROTOUNKNOWN, "unknown multiaddr protocol 'ether'" },
    { "/ip4/1.2.3.4/tcp/80/foo", RINGP2P_EPROTOUNKNOWN, "'foo'" },
    { "/IP4/1.2.3.4", RINGP2P_EPROTOUNKNOWN, "'IP4'" },
    { "/p2p-circuit/4001", RINGP2P_EPROTOUNKNOWN, "'4001'" },
    { "ip4/1.2.3.4", RINGP2P_EMULTIADDR, "must begin with '/'" },
    { " /ip4/1.2.3.4", RINGP2P_EMULTIADDR, "must begin with '/'" },
    { "/ip4/1.2.3.4//tcp/80", RINGP2P_EMULTIADDR, "empty protocol name" },
    { "//ip4/1.2.3.4", RINGP2P_EMULTIADDR, "empty protocol name" },
    /* missing values */
    { "/ip4", RINGP2P_EMULTIADDR, "ip4: missing value" },
    { "/ip4/", RINGP2P_EMULTIADDR, "ip4: missing value" },
    { "/ip4//tcp/80", RINGP2P_EMULTIADDR, "ip4: missing value" },
    { "/tcp", RINGP2P_EMULTIADDR, "tcp: missing value" },
    { "/ip4/1.2.3.4/tcp", RINGP2P_EMULTIADDR, "tcp: missing value" },
    { "/dns/", RINGP2P_EMULTIADDR, "dns: missing value" },
    { "/ipfs", RINGP2P_EMULTIADDR, "p2p: missing value" },
    { "/unix", RINGP2P_EMULTIADDR, "unix: missing value" },
    { "/certhash", RINGP2P_EMULTIADDR, "certhash: missing value" },
    /* ip4 */
    { "/ip4/1.2.3", RINGP2P_EMULTIADDR, "ip4: invalid value '1.2.3': not a dotted-quad" },
    { "/ip4/1.2.3.4.5", RINGP2P_EMULTIADDR, "ip4: invalid value '1.2.3.4.5'" },
    { "/ip4/256.0.0.1", RINGP2P_EMULTIADDR, "ip4: invalid value '256.0.0.1'" },
    { "/ip4/01.2.3.4", RINGP2P_EMULTIADDR, "ip4: invalid value '01.2.3.4'" },
    { "/ip4/1.2.3.-4", RINGP2P_EMULTIADDR, "ip4: invalid value" },
    { "/ip4/1.2.3.4 ", RINGP2P_EMULTIADDR, "ip4: invalid value '1.2.3.4 '" },
    { "/ip4/1..3.4", RINGP2P_EMULTIADDR, "ip4: invalid value" },
    { "/ip4/1234.1.1.1", RINGP2P_EMULTIADDR, "ip4: invalid value" },
    { "/ip4/::1", RINGP2P_EMULTIADDR, "ip4: invalid value '::1'" },
    /* ip6 */
    { "/ip6/1:2:3:4:5:6:7:8:9", RINGP2P_EMULTIADDR, "ip6: invalid value '1:2:3:4:5:6:7:8:9'" },
    { "/ip6/1:2:3:4:5:6:7", RINGP2P_EMULTIADDR, "ip6: invalid value" },
    { "/ip6/::1::2", RINGP2P_EMULTIADDR, "ip6: invalid value '::1::2'" },
    { "/ip6/1:2:3:4::5:6:7:8", RINGP2P_EMULTIADDR, "ip6: invalid value" },
    { "/ip6/12345::", RINGP2P_EMULTIADDR, "ip6: invalid value" },
    { "/ip6/fe80::1%eth0", RINGP2P_EMULTIADDR, "ip6: invalid value 'fe80::1%eth0'" },
    { "/ip6/:1", RINGP2P_EMULTIADDR, "ip6: invalid value" },
    { "/ip6/1:", RINGP2P_EMULTIADDR, "ip6: invalid value" },
    { "/ip6/:::", RINGP2P_EMULTIADDR, "ip6: invalid value" },
    { "/ip6/::1.2.3.256", RINGP2P_EMULTIADDR, "ip6: invalid value" },
    { "/ip6/::1.2.3.04", RINGP2P_EMULTIADDR, "ip6: invalid value" },
    { "/ip6/1:2:3:4:5:6:7:1.2.3.4", RINGP2P_EMULTIADDR, "ip6: invalid value" },
    { "/ip6/1.2.3.4", RINGP2P_EMULTIADDR, "ip6: invalid value" },
    { "/ip6/::1.2.3.4:5", RINGP2P_EMULTIADDR, "ip6: invalid value" },
    { "/ip6/g::", RINGP2P_EMULTIADDR, "ip6: invalid value 'g::'" },
    /* ports, ipcidr */
    { "/tcp/65536", RINGP2P_EMULTIADDR, "tcp: invalid value '65536': port must be" },
    { "/udp/-1", RINGP2P_EMULTIADDR, "udp: invalid value '-1'" },
    { "/tcp/080", RINGP2P_EMULTIADDR, "tcp: invalid value '080'" },
    { "/tcp/abc", RINGP2P_EMULTIADDR, "tcp: invalid value 'abc'" },
    { "/dccp/99999999999", RINGP2P_EMULTIADDR, "dccp: invalid value '99999999999'" },
    { "/sctp/1e3", RINGP2P_EMULTIADDR, "sctp: invalid value '1e3'" },
    { "/tcp/+80", RINGP2P_EMULTIADDR, "tcp: invalid value '+80'" },
    { "/ip4/1.2.3.4/ipcidr/256", RINGP2P_EMULTIADDR, "ipcidr: invalid value '256'" },
    { "/ip4/1.2.3.4/ipcidr/024", RINGP2P_EMULTIADDR, "ipcidr: invalid value '024'" },
    /* onion, onion3 */
    { "/onion/timaq4ygg2iegci7", RINGP2P_EMULTIADDR,
      "onion: invalid value 'timaq4ygg2iegci7': missing ':<port>'" },
    { "/onion/timaq4ygg2iegci7:0", RINGP2P_EMULTIADDR, "onion port must be" },
    { "/onion/timaq4ygg2iegci7:-1", RINGP2P_EMULTIADDR, "onion port must be" },
    { "/onion/timaq4ygg2iegci7:65536", RINGP2P_EMULTIADDR, "onion port must be" },
    { "/onion/timaq4ygg2iegci7:80:80", RINGP2P_EMULTIADDR, "onion port must be" },
    { "/onion/timaq4ygg2iegci:80", RINGP2P_EMULTIADDR, "must be 16 base32 characters, not 15" },
    { "/onion/9imaq4ygg2iegci7:80", RINGP2P_EMULTIADDR, "invalid base32 character '9'" },
    { "/onion/timaq4ygg2iegci@:666", RINGP2P_EMULTIADDR, "onion: invalid value" },
    { "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopyyd:1234", RINGP2P_EMULTIADDR,
      "must be 56 base32 characters, not 54" },
    { "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd:0", RINGP2P_EMULTIADDR,
      "onion3: invalid value" },
    { "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd", RINGP2P_EMULTIADDR,
      "missing ':<port>'" },
    /* garlic64, garlic32 */
    { "/garlic64/abc", RINGP2P_EMULTIADDR, "garlic64: invalid value 'abc': I2P base64 length 3" },
    { "/garlic64/AAAA", RINGP2P_EMULTIADDR, "shorter than the minimum 386" },
    { "/garlic64/AA+A", RINGP2P_EMULTIADDR, "invalid I2P base64 character at offset 2" },
    { "/garlic64/AA/A", RINGP2P_EMULTIADDR, "I2P base64 length 2" },
    { "/garlic64/A=AA", RINGP2P_EMULTIADDR, "invalid I2P base64 character at offset 1" },
    { "/garlic64/AB==", RINGP2P_EMULTIADDR, "non-zero trailing bits" },
    { "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzu", RINGP2P_EMULTIADDR,
      "garlic32: invalid value" },
    { "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzu77", RINGP2P_EMULTIADDR,
      "non-zero trailing bits" },
    { "/garlic32/aaaqeayeaudaocajbifqydiob4ibceqtcqkrmfyydenbwha5dypsa", RINGP2P_EMULTIADDR,
      "33 bytes: must be 32, or at least 35" },
    { "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzu:80", RINGP2P_EMULTIADDR,
      "invalid base32 character ':'" },
    { "/garlic32/566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzuq====", RINGP2P_EMULTIADDR,
      "garlic32: invalid value" },
    /* p2p */
    { "/p2p/QmBad0", RINGP2P_EMULTIADDR, "p2p: invalid value 'QmBad0': bad base58btc peer ID" },
    { "/p2p/12D3KooWBdmLJjhpgJ9KZgLM3f894ff9xyBfPvPjFNn7MKJpyrC", RINGP2P_EMULTIADDR,
      "p2p: invalid value '12D3KooW" },
    { "/p2p/bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", RINGP2P_EMULTIADDR,
      "CID codec 0x70 is not libp2p-key (0x72)" },
    { "/p2p/bafzbcfaaaebagbafaydqqcikbmga2dqpcaireey", RINGP2P_EMULTIADDR,
      "multihash code 0x11: a peer ID is identity or sha2-256" },
    { "/p2p/xyz", RINGP2P_EMULTIADDR, "p2p: invalid value 'xyz': neither a base58btc" },
    { "/p2p/Q", RINGP2P_EMULTIADDR, "p2p: invalid value 'Q': bad multihash" },
    { "/ipfs/1", RINGP2P_EMULTIADDR, "p2p: invalid value '1'" },
    /* certhash */
    { "/certhash/uEiA", RINGP2P_EMULTIADDR, "certhash: invalid value 'uEiA': bad multihash" },
    { "/certhash/!abc", RINGP2P_EMULTIADDR, "bad multibase: unsupported multibase prefix '!'" },
    { "/certhash/zQm0", RINGP2P_EMULTIADDR, "invalid base58btc character '0'" },
    { "/certhash/b2uaraocy6yrdblb4sfptaddgimjmmp", RINGP2P_EMULTIADDR, "certhash: invalid value" },
    /* percent-encoded */
    { "/unix/%2", RINGP2P_EMULTIADDR,
      "unix: invalid value '%2': malformed percent-escape at offset 0" },
    { "/unix/ab%zz", RINGP2P_EMULTIADDR, "malformed percent-escape at offset 2" },
    { "/http-path/%", RINGP2P_EMULTIADDR, "http-path: invalid value '%'" },
    /* names appear verbatim in the text and must be UTF-8 */
    { "/dns/\xff", RINGP2P_EMULTIADDR, "dns: invalid value '\\xff': not UTF-8" },
    { "/sni/a\xed\xa0\x80", RINGP2P_EMULTIADDR, "not UTF-8 (byte 0xed at offset 1)" },
    { "/ip6zone/\xc0\x80", RINGP2P_EMULTIADDR, "not UTF-8 (byte 0xc0 at offset 0)" },
    { "/memory/\xf4\x90\x80\x80", RINGP2P_EMULTIADDR, "not UTF-8 (byte 0xf4 at offset 0)" },
    { "/dns4/a\xe2\x82", RINGP2P_EMULTIADDR, "not UTF-8 (byte 0xe2 at offset 1)" },
    /* names may hold no NUL (only reachable through the length-taking parser) */
};

Test(multiaddr, text_errors)
{
    for (size_t i = 0; i < sizeof(text_errors) / sizeof(text_errors[0]); i++) {
        const char *in = text_errors[i].in;
        uint8_t buf[RP_MADDR_MAX_BYTES];
        ringp2p_errinfo ei = { 0 };
        ssize_t r = rp_maddr_from_text(in, strlen(in), buf, sizeof(buf), &ei);
        cr_assert_eq(r, text_errors[i].code, "%s: got %zd (%s)", in, r, ei.msg);
        cr_assert_eq(ei.code, text_errors[i].code, "%s", in);
        cr_assert_not_null(strstr(ei.msg, text_errors[i].msg), "%s: message \"%s\" lacks \"%s\"",
                           in, ei.msg, text_errors[i].msg);

        ringp2p_multiaddr *ma = NULL;
        cr_assert_eq(ringp2p_multiaddr_parse(in, &ma, NULL), text_errors[i].code, "%s", in);
        cr_assert_null(ma);
    }
}

Test(multiaddr, text_nul_in_value)
{
    static const char in[] = "/dns/a\0b";
    uint8_t buf[64];
    ringp2p_errinfo ei = { 0 };
    cr_assert_eq(rp_maddr_from_text(in, sizeof(in) - 1, buf, sizeof(buf), &ei), RINGP2P_EMULTIADDR);
    cr_assert_not_null(strstr(ei.msg, "dns: invalid value 'a\\x00b': value contains NUL"), "%s",
                       ei.msg);
}

static const struct {
    const char *hex;
    int code;
    const char *msg;
} bin_errors[] = {
    { "ff", RINGP2P_ETRUNCATED, "truncated protocol code" },
    { "8000", RINGP2P_EVARINT, "malformed protocol code varint" },
    { "ffffffffffffffffff01", RINGP2P_EVARINT, "malformed protocol code varint" },
    { "7f", RINGP2P_EPROTOUNKNOWN, "unknown multiaddr protocol code 127 (0x7f)" },
    { "0401020304ee07", RINGP2P_EPROTOUNKNOWN, "code 1006 (0x3ee)" },
    { "0600", RINGP2P_ETRUNCATED, "tcp: value truncated: 2 bytes needed, 1 left" },
    { "047f0000", RINGP2P_ETRUNCATED, "ip4: value truncated: 4 bytes needed, 3 left" },
    { "0401020304", RINGP2P_OK, NULL },
    { "29", RINGP2P_ETRUNCATED, "ip6: value truncated" },
    { "350b61", RINGP2P_ETRUNCATED, "dns: value length 11 exceeds the 1 bytes left" },
    { "35", RINGP2P_ETRUNCATED, "dns: truncated value length" },
    { "3580", RINGP2P_ETRUNCATED, "dns: truncated value length" },
    { "358000", RINGP2P_EVARINT, "dns: malformed value length varint" },
    { "35ffffffffffffffff7f", RINGP2P_ETRUNCATED, "dns: value length 9223372036854775807 exceeds" },
    { "3500", RINGP2P_EMULTIADDR, "dns: invalid value '': empty value" },
    { "3503612f62", RINGP2P_EMULTIADDR, "dns: invalid value 'a/b': value contains '/'" },
    { "c103020000", RINGP2P_EMULTIADDR, "sni: invalid value '\\x00\\x00': value contains NUL" },
    { "2a00", RINGP2P_EMULTIADDR, "ip6zone: invalid value '': empty value" },
    { "890600", RINGP2P_EMULTIADDR, "memory: invalid value" },
    { "a50300", RINGP2P_EMULTIADDR, "p2p: invalid value '': bad multihash" },
    { "a503031202aa", RINGP2P_EMULTIADDR, "p2p: invalid value '\\x12\\x02\\xaa': bad multihash" },
    { "a50304110200bb", RINGP2P_EMULTIADDR, "multihash code 0x11" },
    { "a5030400010102", RINGP2P_EMULTIADDR, "bad multihash: 1 unexpected bytes" },
    { "d20301ff", RINGP2P_EMULTIADDR, "certhash: invalid value '\\xff': bad multihash" },
    { "bc0300000000000000000000"
      "0000",
      RINGP2P_EMULTIADDR, "onion: invalid value" },
    { "bd03"
      "0000000000000000000000000000000000000000000000000000000000000000000000"
      "0000",
      RINGP2P_EMULTIADDR, "onion port 0" },
    { "bf0321"
      "000000000000000000000000000000000000000000000000000000000000000000",
      RINGP2P_EMULTIADDR, "33 bytes: must be 32, or at least 35" },
    { "be030a00000000000000000000", RINGP2P_EMULTIADDR, "10 bytes is shorter than the minimum" },
    { "e10303666f6f", RINGP2P_EMULTIADDR, "http-path: invalid value 'foo': HTTP path must be" },
    { "e103012f", RINGP2P_EMULTIADDR, "http-path: invalid value '/'" },
    { "900300", RINGP2P_EMULTIADDR, "unix: invalid value '': empty value" },
    { "3501b9", RINGP2P_EMULTIADDR,
      "dns: invalid value '\\xb9': not UTF-8 (byte 0xb9 at offset 0)" },
    { "c10302e282", RINGP2P_EMULTIADDR, "sni: invalid value" },
};

Test(multiaddr, binary_errors)
{
    for (size_t i = 0; i < sizeof(bin_errors) / sizeof(bin_errors[0]); i++) {
        uint8_t buf[128];
        size_t n = unhex(bin_errors[i].hex, buf, sizeof(buf));
        ringp2p_errinfo ei = { 0 };
        ssize_t r = rp_maddr_validate(buf, n, &ei);
        if (bin_errors[i].code == RINGP2P_OK) {
            cr_assert_geq(r, 1, "%s: %s", bin_errors[i].hex, ei.msg);
            continue;
        }
        cr_assert_eq(r, bin_errors[i].code, "%s: got %zd (%s)", bin_errors[i].hex, r, ei.msg);
        cr_assert_not_null(strstr(ei.msg, bin_errors[i].msg), "%s: message \"%s\" lacks \"%s\"",
                           bin_errors[i].hex, ei.msg, bin_errors[i].msg);

        ringp2p_multiaddr *ma = NULL;
        cr_assert_eq(ringp2p_multiaddr_from_bytes(buf, n, &ma, NULL), bin_errors[i].code);
        cr_assert_null(ma);
        char text[64];
        cr_assert_eq(rp_maddr_to_text(buf, n, text, sizeof(text), NULL), bin_errors[i].code);

        /* The cursor stays where it was on error. */
        const uint8_t *p = buf;
        rp_maddr_comp c = { 0 };
        while (p < buf + n) {
            const uint8_t *before = p;
            if (rp_maddr_next_component(&p, buf + n, &c, NULL) != 0) {
                cr_assert_eq(p, before);
                break;
            }
        }
    }
}

Test(multiaddr, empty)
{
    ringp2p_multiaddr *ma;
    cr_assert_eq(ringp2p_multiaddr_parse("", &ma, NULL), 0);
    size_t len = 99;
    ringp2p_multiaddr_bytes(ma, &len);
    cr_assert_eq(len, 0);
    char s[2];
    cr_assert_eq(ringp2p_multiaddr_to_string(ma, s, sizeof(s)), 1);
    cr_assert_str_eq(s, "/");
    cr_assert_eq(ringp2p_multiaddr_to_string(ma, s, 1), RINGP2P_ENOBUF);
    ringp2p_multiaddr_iter it;
    ringp2p_multiaddr_component c;
    ringp2p_multiaddr_iter_init(&it, ma);
    cr_assert_eq(ringp2p_multiaddr_iter_next(&it, &c), 0);
    ringp2p_peer_id id;
    cr_assert_eq(ringp2p_multiaddr_peer_id(ma, &id), RINGP2P_ENOENT);
    ringp2p_multiaddr_free(ma);

    cr_assert_eq(ringp2p_multiaddr_from_bytes(NULL, 0, &ma, NULL), 0);
    ringp2p_multiaddr_free(ma);
    cr_assert_eq(rp_maddr_validate(NULL, 0, NULL), 0);
    cr_assert_eq(ringp2p_multiaddr_parse(NULL, &ma, NULL), RINGP2P_EINVAL);
}

static ringp2p_multiaddr *ma_of(const char *text)
{
    ringp2p_multiaddr *ma = NULL;
    ringp2p_errinfo ei = { 0 };
    cr_assert_eq(ringp2p_multiaddr_parse(text, &ma, &ei), 0, "%s: %s", text, ei.msg);
    return ma;
}

static void assert_text(const ringp2p_multiaddr *ma, const char *want)
{
    char s[RP_MADDR_TEXT_MAX];
    cr_assert_geq(ringp2p_multiaddr_to_string(ma, s, sizeof(s)), 0);
    cr_assert_str_eq(s, want);
}

Test(multiaddr, encapsulate_decapsulate)
{
    ringp2p_multiaddr *tcp = ma_of("/ip4/1.2.3.4/tcp/4001");
    ringp2p_multiaddr *relay = ma_of("/p2p/" QM "/p2p-circuit");
    ringp2p_multiaddr *target = ma_of("/p2p/" ED);
    ringp2p_multiaddr *empty = ma_of("/");
    ringp2p_multiaddr *a, *b, *c, *d;

    cr_assert_eq(ringp2p_multiaddr_encapsulate(tcp, relay, &a), 0);
    cr_assert_eq(ringp2p_multiaddr_encapsulate(a, target, &b), 0);
    assert_text(b, "/ip4/1.2.3.4/tcp/4001/p2p/" QM "/p2p-circuit/p2p/" ED);

    cr_assert_eq(ringp2p_multiaddr_decapsulate(b, target, &c), 0);
    cr_assert(ringp2p_multiaddr_equal(c, a));
    ringp2p_multiaddr_free(c);
    cr_assert_eq(ringp2p_multiaddr_decapsulate(b, relay, &c), 0);
    cr_assert(ringp2p_multiaddr_equal(c, tcp));
    ringp2p_multiaddr_free(c);

    /* Last occurrence. */
    cr_assert_eq(ringp2p_multiaddr_encapsulate(b, tcp, &c), 0);
    cr_assert_eq(ringp2p_multiaddr_decapsulate(c, tcp, &d), 0);
    cr_assert(ringp2p_multiaddr_equal(d, b));
    ringp2p_multiaddr_free(d);
    ringp2p_multiaddr_free(c);

    /* Whole components only: /ip4/1.2.3.4 is not in /ip4/1.2.3.45, nor /tcp/40 in /tcp/4001. */
    ringp2p_multiaddr *x = ma_of("/ip4/1.2.3.45/tcp/80");
    ringp2p_multiaddr *y = ma_of("/ip4/1.2.3.4");
    cr_assert_eq(ringp2p_multiaddr_decapsulate(x, y, &c), RINGP2P_ENOENT);
    ringp2p_multiaddr_free(x);
    ringp2p_multiaddr_free(y);
    x = ma_of("/tcp/4001");
    cr_assert_eq(ringp2p_multiaddr_decapsulate(tcp, x, &c), 0);
    assert_text(c, "/ip4/1.2.3.4");
    ringp2p_multiaddr_free(c);
    ringp2p_multiaddr_free(x);
    cr_assert_eq(ringp2p_multiaddr_decapsulate(tcp, relay, &c), RINGP2P_ENOENT);

    /* The whole address decapsulates to the empty one; empty b leaves a unchanged. */
    cr_assert_eq(ringp2p_multiaddr_decapsulate(tcp, tcp, &c), 0);
    assert_text(c, "/");
    ringp2p_multiaddr_free(c);
    cr_assert_eq(ringp2p_multiaddr_decapsulate(tcp, empty, &c), 0);
    cr_assert(ringp2p_multiaddr_equal(c, tcp));
    ringp2p_multiaddr_free(c);
    cr_assert_eq(ringp2p_multiaddr_encapsulate(empty, tcp, &c), 0);
    cr_assert(ringp2p_multiaddr_equal(c, tcp));
    ringp2p_multiaddr_free(c);

    /* By code: the last p2p. */
    cr_assert_eq(ringp2p_multiaddr_decapsulate_code(b, RINGP2P_P_P2P, &c), 0);
    cr_assert(ringp2p_multiaddr_equal(c, a));
    ringp2p_multiaddr_free(c);
    cr_assert_eq(ringp2p_multiaddr_decapsulate_code(b, RINGP2P_P_IP4, &c), 0);
    assert_text(c, "/");
    ringp2p_multiaddr_free(c);
    cr_assert_eq(ringp2p_multiaddr_decapsulate_code(b, RINGP2P_P_UDP, &c), RINGP2P_ENOENT);

    cr_assert_eq(ringp2p_multiaddr_dup(b, &c), 0);
    cr_assert(ringp2p_multiaddr_equal(c, b));
    cr_assert(!ringp2p_multiaddr_equal(c, a));
    ringp2p_multiaddr_free(c);

    ringp2p_multiaddr_free(a);
    ringp2p_multiaddr_free(b);
    ringp2p_multiaddr_free(tcp);
    ringp2p_multiaddr_free(relay);
    ringp2p_multiaddr_free(target);
    ringp2p_multiaddr_free(empty);
}

Test(multiaddr, iterate_components)
{
    ringp2p_multiaddr *ma =
        ma_of("/ip6/::1/udp/4001/quic-v1/webtransport/certhash/" CH1 "/p2p/" ED "/memory/m");
    static const struct {
        uint32_t code;
        const char *name, *value;
        size_t value_len;
    } want[] = {
        { RINGP2P_P_IP6, "ip6", "::1", 16 },
        { RINGP2P_P_UDP, "udp", "4001", 2 },
        { RINGP2P_P_QUIC_V1, "quic-v1", "", 0 },
        { RINGP2P_P_WEBTRANSPORT, "webtransport", "", 0 },
        { RINGP2P_P_CERTHASH, "certhash", CH1, 34 },
        { RINGP2P_P_P2P, "p2p", ED, 38 },
        { RINGP2P_P_MEMORY, "memory", "m", 1 },
    };
    ringp2p_multiaddr_iter it;
    ringp2p_multiaddr_component c;
    ringp2p_multiaddr_iter_init(&it, ma);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        cr_assert_eq(ringp2p_multiaddr_iter_next(&it, &c), 1);
        cr_assert_eq(c.code, want[i].code);
        cr_assert_str_eq(c.name, want[i].name);
        cr_assert_eq(c.value_len, want[i].value_len);
        cr_assert_eq(c.value == NULL, want[i].value_len == 0);
        char v[128];
        ssize_t n = ringp2p_multiaddr_component_value_string(&c, v, sizeof(v));
        cr_assert_eq(n, (ssize_t)strlen(want[i].value), "%s", want[i].name);
        cr_assert_str_eq(v, want[i].value);
        cr_assert_eq(ringp2p_multiaddr_component_value_string(&c, v, (size_t)n), RINGP2P_ENOBUF);
    }
    cr_assert_eq(ringp2p_multiaddr_iter_next(&it, &c), 0);
    cr_assert_eq(ringp2p_multiaddr_iter_next(&it, &c), 0);
    ringp2p_multiaddr_free(ma);

    /* A hand-made component with a bad value is refused, not printed. */
    static const uint8_t bad[] = { 'a', '/' };
    ringp2p_multiaddr_component hand = { RINGP2P_P_DNS, "dns", bad, sizeof(bad) };
    char v[16];
    cr_assert_eq(ringp2p_multiaddr_component_value_string(&hand, v, sizeof(v)), RINGP2P_EMULTIADDR);
    hand.code = 0x7f;
    cr_assert_eq(ringp2p_multiaddr_component_value_string(&hand, v, sizeof(v)),
                 RINGP2P_EPROTOUNKNOWN);
    ringp2p_multiaddr_component port = { RINGP2P_P_TCP, "tcp", bad, 1 };
    cr_assert_eq(ringp2p_multiaddr_component_value_string(&port, v, sizeof(v)), RINGP2P_EMULTIADDR);
}

Test(multiaddr, peer_id)
{
    ringp2p_multiaddr *ma = ma_of("/ip4/1.2.3.4/tcp/4001/p2p/" ED);
    ringp2p_peer_id got, want;
    cr_assert_eq(ringp2p_peer_id_parse(ED, strlen(ED), &want, NULL), 0);
    cr_assert_eq(ringp2p_multiaddr_peer_id(ma, &got), 0);
    cr_assert(ringp2p_peer_id_equal(&got, &want));
    ringp2p_multiaddr_free(ma);

    ma = ma_of("/ipfs/" SPEC_ID);
    cr_assert_eq(ringp2p_peer_id_parse(SPEC_ID, strlen(SPEC_ID), &want, NULL), 0);
    cr_assert_eq(ringp2p_multiaddr_peer_id(ma, &got), 0);
    cr_assert(ringp2p_peer_id_equal(&got, &want));
    ringp2p_multiaddr_free(ma);

    /* Only a trailing /p2p/ counts. */
    ma = ma_of("/p2p/" QM "/p2p-circuit");
    cr_assert_eq(ringp2p_multiaddr_peer_id(ma, &got), RINGP2P_ENOENT);
    ringp2p_multiaddr_free(ma);
    ma = ma_of("/ip4/1.2.3.4/tcp/1");
    cr_assert_eq(ringp2p_multiaddr_peer_id(ma, &got), RINGP2P_ENOENT);
    ringp2p_multiaddr_free(ma);

    /* A valid identity multihash that is not a public key is a valid multiaddr, not a peer. */
    ma = ma_of("/p2p/15TJUr");
    cr_assert_eq(ringp2p_multiaddr_peer_id(ma, &got), RINGP2P_EPEERID);
    ringp2p_multiaddr_free(ma);
}

Test(multiaddr, limits)
{
    char text[RP_MADDR_TEXT_MAX + 64];
    uint8_t buf[RP_MADDR_MAX_BYTES];
    ringp2p_errinfo ei = { 0 };

    /* Component count. */
    text[0] = '\0';
    for (int i = 0; i < RP_MADDR_MAX_COMPONENTS; i++) strcat(text, "/tls");
    cr_assert_eq(rp_maddr_from_text(text, strlen(text), buf, sizeof(buf), &ei),
                 2 * RP_MADDR_MAX_COMPONENTS);
    strcat(text, "/tls");
    cr_assert_eq(rp_maddr_from_text(text, strlen(text), buf, sizeof(buf), &ei), RINGP2P_ELIMIT);
    cr_assert_not_null(strstr(ei.msg, "more than 32 components"), "%s", ei.msg);
    uint8_t many[2 * (RP_MADDR_MAX_COMPONENTS + 1)];
    for (size_t i = 0; i < sizeof(many); i += 2) {
        many[i] = 0xc0;
        many[i + 1] = 0x03;
    }
    cr_assert_eq(rp_maddr_validate(many, sizeof(many) - 2, NULL), RP_MADDR_MAX_COMPONENTS);
    cr_assert_eq(rp_maddr_validate(many, sizeof(many), NULL), RINGP2P_ELIMIT);

    /* Bytes: /dns/<n> is 3 + n bytes. */
    strcpy(text, "/dns/");
    memset(text + 5, 'a', RP_MADDR_MAX_BYTES - 3);
    text[5 + RP_MADDR_MAX_BYTES - 3] = '\0';
    cr_assert_eq(rp_maddr_from_text(text, strlen(text), buf, sizeof(buf), &ei), RP_MADDR_MAX_BYTES);
    cr_assert_eq(rp_maddr_validate(buf, RP_MADDR_MAX_BYTES, NULL), 1);
    strcat(text, "a");
    cr_assert_eq(rp_maddr_from_text(text, strlen(text), buf, sizeof(buf), &ei), RINGP2P_ELIMIT);
    cr_assert_not_null(strstr(ei.msg, "exceeds the limit of 1024"), "%s", ei.msg);
    uint8_t big[RP_MADDR_MAX_BYTES + 1] = { 0 };
    cr_assert_eq(rp_maddr_validate(big, sizeof(big), &ei), RINGP2P_ELIMIT);

    /* Text length. */
    memset(text, '/', RP_MADDR_TEXT_MAX + 1);
    text[RP_MADDR_TEXT_MAX + 1] = '\0';
    cr_assert_eq(rp_maddr_from_text(text, RP_MADDR_TEXT_MAX, buf, sizeof(buf), NULL), 0);
    cr_assert_eq(rp_maddr_from_text(text, RP_MADDR_TEXT_MAX + 1, buf, sizeof(buf), NULL),
                 RINGP2P_ELIMIT);
    ringp2p_multiaddr *ma = NULL;
    cr_assert_eq(ringp2p_multiaddr_parse(text, &ma, NULL), RINGP2P_ELIMIT);

    /* Output buffer. */
    cr_assert_eq(rp_maddr_from_text("/ip4/1.2.3.4", 12, buf, 4, NULL), RINGP2P_ENOBUF);
    cr_assert_eq(rp_maddr_from_text("/ip4/1.2.3.4", 12, buf, 5, NULL), 5);
}

/* The longest canonical text a valid address can have still fits RP_MADDR_TEXT_MAX. */
Test(multiaddr, longest_text_fits)
{
    uint8_t buf[RP_MADDR_MAX_BYTES];
    size_t n = 0;
    for (int i = 0; i < RP_MADDR_MAX_COMPONENTS - 1; i++) {
        buf[n++] = 0xdf; /* p2p-websocket-star: the longest name */
        buf[n++] = 0x03;
    }
    size_t vlen = RP_MADDR_MAX_BYTES - n - 4;
    buf[n++] = 0x90; /* unix */
    buf[n++] = 0x03;
    buf[n++] = (uint8_t)(0x80 | (vlen & 0x7f));
    buf[n++] = (uint8_t)(vlen >> 7);
    memset(buf + n, 0x01, vlen); /* each byte prints as %01 */
    n += vlen;
    cr_assert_eq(n, RP_MADDR_MAX_BYTES);
    ringp2p_errinfo ei = { 0 };
    ssize_t tl = rp_maddr_text_len(buf, n, &ei);
    cr_assert_gt(tl, 3 * (ssize_t)vlen, "%s", ei.msg);
    cr_assert_lt(tl, RP_MADDR_TEXT_MAX);

    char text[RP_MADDR_TEXT_MAX];
    cr_assert_eq(rp_maddr_to_text(buf, n, text, sizeof(text), NULL), tl);
    uint8_t back[RP_MADDR_MAX_BYTES];
    cr_assert_eq(rp_maddr_from_text(text, (size_t)tl, back, sizeof(back), &ei), (ssize_t)n, "%s",
                 ei.msg);
    cr_assert_arr_eq(back, buf, n);
}

static const uint32_t all_codes[] = {
    RINGP2P_P_IP4,
    RINGP2P_P_TCP,
    RINGP2P_P_DCCP,
    RINGP2P_P_IP6,
    RINGP2P_P_IP6ZONE,
    RINGP2P_P_IPCIDR,
    RINGP2P_P_DNS,
    RINGP2P_P_DNS4,
    RINGP2P_P_DNS6,
    RINGP2P_P_DNSADDR,
    RINGP2P_P_SCTP,
    RINGP2P_P_UDP,
    RINGP2P_P_P2P_WEBRTC_STAR,
    RINGP2P_P_P2P_WEBRTC_DIRECT,
    RINGP2P_P_P2P_STARDUST,
    RINGP2P_P_UTP,
    RINGP2P_P_UDT,
    RINGP2P_P_UNIX,
    RINGP2P_P_P2P,
    RINGP2P_P_HTTPS,
    RINGP2P_P_ONION,
    RINGP2P_P_ONION3,
    RINGP2P_P_GARLIC64,
    RINGP2P_P_GARLIC32,
    RINGP2P_P_TLS,
    RINGP2P_P_SNI,
    RINGP2P_P_NOISE,
    RINGP2P_P_QUIC,
    RINGP2P_P_QUIC_V1,
    RINGP2P_P_WEBTRANSPORT,
    RINGP2P_P_CERTHASH,
    RINGP2P_P_WS,
    RINGP2P_P_WSS,
    RINGP2P_P_P2P_WEBSOCKET_STAR,
    RINGP2P_P_HTTP,
    RINGP2P_P_HTTP_PATH,
    RINGP2P_P_P2P_CIRCUIT,
    RINGP2P_P_WEBRTC_DIRECT,
    RINGP2P_P_WEBRTC,
    RINGP2P_P_MEMORY,
};

/* Every protocol of the public enum is in the table, and every one is covered by a vector. */
Test(multiaddr, table_covers_every_protocol)
{
    for (size_t i = 0; i < sizeof(all_codes) / sizeof(all_codes[0]); i++) {
        const rp_maddr_proto *p = rp_maddr_proto_by_code(all_codes[i]);
        cr_assert_not_null(p, "code 0x%x missing", all_codes[i]);
        cr_assert_eq(rp_maddr_proto_by_name(p->name, strlen(p->name)), p);
        cr_assert_eq(p->size == 0, p->from_text == NULL);
        cr_assert_eq(p->size == 0, p->to_text == NULL);

        char seg[32];
        snprintf(seg, sizeof(seg), "/%s", p->name);
        int seen = 0;
        for (size_t k = 0; k < sizeof(vectors) / sizeof(vectors[0]) && !seen; k++) {
            const char *at = strstr(vectors[k].in, seg);
            size_t l = strlen(seg);
            seen = at != NULL && (at[l] == '/' || at[l] == '\0');
        }
        seen = seen || p->code == RINGP2P_P_GARLIC64;
        cr_assert(seen, "no text vector for %s", p->name);
    }
    cr_assert_eq(rp_maddr_proto_by_name("ipfs", 4), rp_maddr_proto_by_code(RINGP2P_P_P2P));
    cr_assert_null(rp_maddr_proto_by_name("ether", 5));
    cr_assert_null(rp_maddr_proto_by_name("ip", 2));
    cr_assert_null(rp_maddr_proto_by_name("ip44", 4));
    cr_assert_null(rp_maddr_proto_by_code(0));
}

Test(multiaddr, cursor_helpers)
{
    const rp_maddr_proto *ip4 = rp_maddr_proto_by_code(RINGP2P_P_IP4);
    const rp_maddr_proto *tcp = rp_maddr_proto_by_code(RINGP2P_P_TCP);
    const rp_maddr_proto *dns = rp_maddr_proto_by_code(RINGP2P_P_DNS);
    const rp_maddr_proto *tls = rp_maddr_proto_by_code(RINGP2P_P_TLS);
    uint8_t v[16], buf[64];
    ringp2p_errinfo ei = { 0 };

    cr_assert_eq(rp_maddr_value_from_text(ip4, "10.0.0.1", 8, v, sizeof(v), &ei), 4);
    cr_assert_eq(rp_maddr_value_from_text(ip4, "10.0.0.1", 8, v, 3, &ei), RINGP2P_ENOBUF);
    cr_assert_eq(rp_maddr_value_from_text(ip4, "10.0.0", 6, v, sizeof(v), &ei), RINGP2P_EMULTIADDR);
    cr_assert_eq(rp_maddr_value_from_text(tls, "x", 1, v, sizeof(v), &ei), RINGP2P_EINVAL);

    /* Build /ip4/10.0.0.1/tcp/4001/dns/x/tls component by component. */
    size_t n = 0;
    static const uint8_t port[2] = { 0x0f, 0xa1 };
    cr_assert_eq(rp_maddr_value_from_text(ip4, "10.0.0.1", 8, v, sizeof(v), NULL), 4);
    ssize_t k = rp_maddr_put_component(ip4, v, 4, buf + n, sizeof(buf) - n, NULL);
    cr_assert_eq(k, 5);
    n += (size_t)k;
    k = rp_maddr_put_component(tcp, port, 2, buf + n, sizeof(buf) - n, NULL);
    cr_assert_eq(k, 3);
    n += (size_t)k;
    k = rp_maddr_put_component(dns, (const uint8_t *)"x", 1, buf + n, sizeof(buf) - n, NULL);
    cr_assert_eq(k, 3);
    n += (size_t)k;
    k = rp_maddr_put_component(tls, NULL, 0, buf + n, sizeof(buf) - n, NULL);
    cr_assert_eq(k, 2);
    n += (size_t)k;
    char text[64];
    cr_assert_eq(rp_maddr_to_text(buf, n, text, sizeof(text), NULL), 32);
    cr_assert_str_eq(text, "/ip4/10.0.0.1/tcp/4001/dns/x/tls");
    cr_assert_eq(rp_maddr_put_component(tcp, port, 1, buf, sizeof(buf), &ei), RINGP2P_EMULTIADDR);
    cr_assert_not_null(strstr(ei.msg, "tcp: invalid value"), "%s", ei.msg);
    cr_assert_eq(rp_maddr_put_component(dns, (const uint8_t *)"a/b", 3, buf, sizeof(buf), &ei),
                 RINGP2P_EMULTIADDR);
    cr_assert_eq(rp_maddr_put_component(ip4, v, 4, buf, 4, NULL), RINGP2P_ENOBUF);

    /* Iterate with the cursor. */
    const uint8_t *p = buf, *end = buf + n;
    rp_maddr_comp c = { 0 };
    cr_assert_eq(rp_maddr_next_component(&p, end, &c, NULL), 0);
    cr_assert_eq(c.proto, ip4);
    cr_assert_eq(c.start, buf);
    cr_assert_eq(c.len, 5);
    cr_assert_eq(c.value, buf + 1);
    cr_assert_eq(c.value_len, 4);
    cr_assert_eq(rp_maddr_value_to_text(c.proto, c.value, c.value_len, text, sizeof(text), NULL),
                 8);
    cr_assert_str_eq(text, "10.0.0.1");
    cr_assert_eq(rp_maddr_value_to_text(c.proto, c.value, c.value_len, text, 8, NULL),
                 RINGP2P_ENOBUF);
    cr_assert_eq(rp_maddr_next_component(&p, end, &c, NULL), 0);
    cr_assert_eq(c.proto, tcp);
    cr_assert_eq(rp_maddr_next_component(&p, end, &c, NULL), 0);
    cr_assert_eq(c.proto, dns);
    cr_assert_eq(rp_maddr_next_component(&p, end, &c, NULL), 0);
    cr_assert_eq(c.proto, tls);
    cr_assert_null(c.value);
    cr_assert_eq(rp_maddr_value_to_text(c.proto, c.value, c.value_len, text, sizeof(text), NULL),
                 0);
    cr_assert_str_eq(text, "");
    cr_assert_eq(p, end);
    cr_assert_eq(rp_maddr_next_component(&p, end, &c, NULL), RINGP2P_ETRUNCATED);
    cr_assert_eq(p, end);

    cr_assert_eq(rp_maddr_find_last(buf, n, RINGP2P_P_TCP, NULL), 5);
    cr_assert_eq(rp_maddr_find_last(buf, n, RINGP2P_P_IP4, NULL), 0);
    cr_assert_eq(rp_maddr_find_last(buf, n, RINGP2P_P_UDP, &ei), RINGP2P_ENOENT);
    cr_assert_eq(rp_maddr_to_text(buf, n, text, 32, NULL), RINGP2P_ENOBUF);
    cr_assert_eq(rp_maddr_to_text(buf, n, NULL, 0, NULL), RINGP2P_ENOBUF);
    cr_assert_eq(rp_maddr_text_len(buf, n, NULL), 32);
}

Test(multiaddr, quote)
{
    char q[16];
    cr_assert_str_eq(rp_maddr_quote("ab", 2, q, sizeof(q)), "'ab'");
    cr_assert_str_eq(rp_maddr_quote("a\x01'", 3, q, sizeof(q)), "'a\\x01\\x27'");
    cr_assert_str_eq(rp_maddr_quote("abcdefghijklmnop", 16, q, sizeof(q)), "'abcdefghij...'");
    cr_assert_eq(strlen(q), 15);
    cr_assert_str_eq(rp_maddr_quote("", 0, q, sizeof(q)), "''");
}
