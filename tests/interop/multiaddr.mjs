// Multiaddr cross-checks: every address below is parsed by js-multiaddr and by
// `ringp2p addr --json`, and the binary form (hex) and canonical text must agree; the binary
// form must also come back to the same text through `ringp2p addr --json --hex`. Invalid
// inputs must be rejected by both. Where js-multiaddr departs from the multiaddr/libp2p specs
// the case is listed in EXCEPTIONS with the reason, and both halves are checked: that js still
// behaves as recorded (so a fixed js shows up as a stale exception) and that ringp2p follows
// the spec.

import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { privateKeyFromProtobuf } from '@libp2p/crypto/keys'
import { multiaddr } from '@multiformats/multiaddr'
import { base16 } from 'multiformats/bases/base16'
import { base32 } from 'multiformats/bases/base32'
import { base36 } from 'multiformats/bases/base36'
import { base58btc } from 'multiformats/bases/base58'
import { base64url } from 'multiformats/bases/base64'
import { sha256 } from 'multiformats/hashes/sha2'
import { CheckError, expect, expectEqual, fromHex, hex } from './lib.mjs'
import { SPEC_KEYS } from './vectors.mjs'

// Peer IDs used in addresses. The first three are quoted in the libp2p specs
// (peer-ids/peer-ids.md, _archive/3-requirements.md); the others are derived by js from the
// spec's test-vector keys.
const PEER_ED_SPEC = '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA'
const PEER_RSA_SPEC = 'QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N'
const PEER_RSA_SPEC_CID = 'bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe'
const PEER_REQ = 'QmYJyUMAcXEw1b5bFfbBbzYu5wyyjLMRHXGUkCXpag74Fu'
const PEER_ED = peerIdFromPrivateKey(privateKeyFromProtobuf(fromHex(SPEC_KEYS.ed25519.priv)))
const PEER_SECP = peerIdFromPrivateKey(privateKeyFromProtobuf(fromHex(SPEC_KEYS.secp256k1.priv)))

// certhash values: a sha2-256 multihash of some certificate bytes, in several multibases.
const CERT_MH = (await sha256.digest(new TextEncoder().encode('ringp2p interop certificate'))).bytes
const CERT_U = base64url.encode(CERT_MH)
const CERT_Z = base58btc.encode(CERT_MH)
const CERT_B = base32.encode(CERT_MH)

const ONION3 = 'vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd'
// An I2P destination and a b32 address (from go-multiaddr's tests).
const GARLIC64 =
  'jT~IyXaoauTni6N4517EG8mrFUKpy0IlgZh-EY9csMAk82Odatmzr~YTZy8Hv7u~wvkg75EFNOyqb~nAPg-khyp2TS~ObUz8Wlq' +
  'YAM2VlEzJ7wJB91P-cUlKF18zSzVoJFmsrcQHZCirSbWoOknS6iNmsGRh5KVZsBEfp1Dg3gwTipTRIx7Vl5Vy~1OSKQVjYiGZS9q8RL0MF' +
  '~7xFiKxZDLbPxk0AK9TzGGqm~wMTI2HS0Gm4Ycy8LYPVmLvGonIBYndg2bJC7WLuF6tVjVquiokSVDKFwq70BCUU5AU-EvdOD5KEOAM7mPfw' +
  '-gJUG4tm1TtvcobrObqoRnmhXPTBTN5H7qDD12AvlwFGnfAlBXjuP4xOUAISL5SRLiulrsMSiT4GcugSI80mF6sdB0zWRgL1yyvoVWeTBn1Tq' +
  'jO27alr95DGTluuSqrNAxgpQzCKEWAyzrQkBfo2avGAmmz2NaHaAvYbOg0QSJz1PLjv2jdPW~ofiQmrGWM1cd~1cCqAAAA'
const GARLIC32 = '566niximlxdzpanmn4qouucvua3k7neniwss47li5r6ugoertzuq'

/**
 * Valid addresses. `spec` is the binary form a spec states (multiformats/multiaddr
 * test/multiaddr.feature); when given, js and ringp2p must both produce it.
 */
export const VALID = [
  // ip4
  { text: '/ip4/192.0.2.42/tcp/443', spec: '04c000022a0601bb' },
  { text: '/ip4/0.0.0.0' },
  { text: '/ip4/127.0.0.1/tcp/4001' },
  { text: '/ip4/255.255.255.255/udp/65535' },
  { text: '/ip4/192.0.2.0/tcp/42' }, // addressing/README.md
  // ip6 text forms: compression, case, leading zeros, embedded IPv4
  { text: '/ip6/::' },
  { text: '/ip6/::1' },
  { text: '/ip6/fe80::883:a581:fff1:833' }, // addressing/README.md
  { text: '/ip6/2001:DB8::1' },
  { text: '/ip6/2001:0db8:0000:0000:0000:0000:0000:0001' },
  { text: '/ip6/2001:db8:0:1:1:1:1:1' }, // a single zero group is not compressed
  { text: '/ip6/2001:db8:0:0:1:0:0:1' }, // equal runs: the first one is compressed
  { text: '/ip6/1:0:0:2:0:0:0:3' }, // the longest run is compressed
  { text: '/ip6/ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff' },
  { text: '/ip6/0:00:0000:0002:0000:059c:0a24:0801/tcp/64142' },
  { text: '/ip6/2001:8a0:7ac5:4201:3ac9:86ff:fe31:7095/tcp/8000/ws/p2p/QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC' },
  { text: '/ip6/::1.45.5.219/tcp/9090' }, // deprecated IPv4-compatible form is printed in hex
  { text: '/ip6/::ffff:1.2.3.4/tcp/80' },
  // ip6zone, ipcidr
  { text: '/ip6zone/eth0/ip6/fe80::1' },
  { text: '/ip6zone/x/ip6/fe80::1/udp/1234/quic' },
  { text: '/ip4/192.0.2.0/ipcidr/24' },
  { text: '/ip6/2001:db8::/ipcidr/32' },
  { text: '/ip4/10.0.0.0/ipcidr/0' },
  { text: '/ip6/::/ipcidr/128' },
  // ports
  { text: '/ip4/1.2.3.4/tcp/0' },
  { text: '/ip4/1.2.3.4/tcp/65535' },
  { text: '/ip4/1.2.3.4/udp/4001' },
  { text: '/ip4/1.2.3.4/dccp/5000' },
  { text: '/ip4/1.2.3.4/sctp/5000' },
  { text: '/ip4/127.0.0.1/udp/1234/udp/5678' },
  { text: '/tcp/8000' },
  // utp, udt
  { text: '/ip4/1.2.3.4/udp/1/utp' },
  { text: '/ip4/1.2.3.4/udp/1/udt' },
  // quic, webtransport, certhash (the multibase of certhash is not kept: canonical is base64url)
  { text: '/ip4/1.2.3.4/udp/4001/quic' },
  { text: '/ip6/::1/udp/4001/quic-v1' },
  { text: '/ip4/1.2.3.4/udp/4001/quic-v1/webtransport' },
  { text: `/ip4/1.2.3.4/udp/4001/quic-v1/webtransport/certhash/${CERT_U}` },
  { text: `/ip4/1.2.3.4/udp/4001/quic-v1/webtransport/certhash/${CERT_Z}` },
  { text: `/ip4/1.2.3.4/udp/4001/quic-v1/webtransport/certhash/${CERT_B}` },
  {
    text:
      '/ip4/1.2.3.4/udp/4001/quic-v1/webtransport/certhash/uEiAkH5a4DPGKUuOBjYw0CgwjvcJCJMD2K_1aluKR_tpevQ/certhash/uEiAfbgiymPP2_nX7Dgir8B4QkksjHp2lVuJZz0F79Be9JA/p2p/12D3KooWBdmLJjhpgJ9KZgLM3f894ff9xyBfPvPjFNn7MKJpyrC2'
  },
  // webrtc
  { text: `/ip4/1.2.3.4/udp/4001/webrtc-direct/certhash/${CERT_U}/p2p/${PEER_ED_SPEC}` },
  { text: `/ip4/1.2.3.4/tcp/4001/p2p/${PEER_RSA_SPEC}/p2p-circuit/webrtc/p2p/${PEER_ED_SPEC}` },
  { text: '/webrtc' },
  { text: '/ip4/127.0.0.1/tcp/9090/http/p2p-webrtc-direct' },
  // websockets, tls, sni, noise, http
  { text: '/ip4/1.2.3.4/tcp/80/ws' },
  { text: '/dns4/example.com/tcp/443/wss' },
  { text: '/ip4/1.2.3.4/tcp/443/tls/ws' },
  { text: '/ip4/1.2.3.4/tcp/443/tls/sni/example.com/ws' },
  { text: '/ip4/1.2.3.4/tcp/443/tls/sni/example.com/http' },
  { text: '/ip4/1.2.3.4/tcp/4001/noise' },
  { text: '/ip4/1.2.3.4/tcp/80/http' },
  { text: '/dns/example.com/tcp/443/https' },
  { text: '/ip4/127.0.0.1/tcp/9090/ws/p2p-websocket-star' },
  { text: '/ip4/127.0.0.1/tcp/9090/ws/p2p-webrtc-star' },
  { text: '/p2p-stardust' },
  // http-path (multiaddr protocols/http-path.md and its examples)
  { text: `/ip4/1.2.3.4/tcp/443/tls/http/p2p/${PEER_ED_SPEC}/http-path/.well-known%2Flibp2p` },
  { text: '/dns/example.com/tls/http/http-path/api%2Fv0%2Flogin' },
  { text: '/http-path/tmp%2Ffoo%2F..%2Fbar' },
  { text: '/http-path/a%2520space' },
  // p2p and its text forms (base58 multihash, CIDv1 in base32/base36/base58btc, legacy /ipfs)
  { text: `/p2p/${PEER_ED_SPEC}` },
  { text: `/p2p/${PEER_RSA_SPEC}` },
  { text: `/p2p/${PEER_RSA_SPEC_CID}` },
  { text: `/ipfs/${PEER_RSA_SPEC_CID}` },
  { text: `/ipfs/${PEER_REQ}` },
  { text: `/p2p/${PEER_ED.toString()}` },
  { text: `/p2p/${PEER_ED.toCID().toString()}` },
  { text: `/p2p/${PEER_ED.toCID().toString(base36)}` },
  { text: `/p2p/${PEER_ED.toCID().toString(base58btc)}` },
  { text: `/p2p/${PEER_SECP.toString()}` },
  { text: `/p2p/${PEER_SECP.toCID().toString()}` },
  { text: `/ip4/1.2.3.4/tcp/1/p2p/${PEER_SECP.toString()}` },
  // p2p-circuit
  { text: '/p2p-circuit' },
  { text: `/p2p-circuit/p2p/${PEER_ED_SPEC}` },
  { text: `/ip4/1.2.3.4/tcp/4001/p2p/${PEER_RSA_SPEC}/p2p-circuit/p2p/${PEER_ED_SPEC}` },
  { text: `/ip4/1.2.3.4/tcp/1/p2p-circuit/ipfs/${PEER_REQ}` },
  // dns
  { text: '/dns/example.com' },
  { text: '/dns4/example.com/tcp/42' }, // addressing/README.md
  { text: '/dns6/example.com/udp/4001/quic-v1' },
  { text: '/dnsaddr/libp2p.io' }, // addressing/README.md
  { text: `/dnsaddr/bootstrap.libp2p.io/p2p/${PEER_RSA_SPEC}` },
  { text: '/dns4/xn--bcher-kva.example/tcp/1' },
  // unix (value is one percent-encoded component)
  { text: '/unix/%2Ftmp%2Fp2p.sock' },
  { text: '/ip4/0.0.0.0/tcp/8000/unix/tmp%2Fp2p.sock' },
  // onion, onion3, garlic
  { text: '/onion/timaq4ygg2iegci7:1234' },
  { text: '/onion/timaq4ygg2iegci7:65535' },
  { text: `/onion3/${ONION3}:1234` },
  { text: `/onion3/${ONION3}:1/p2p/${PEER_ED_SPEC}` },
  // garlic64/garlic32: see EXCEPTIONS
  // memory
  { text: '/memory/1234' },
  { text: `/memory/test/p2p/${PEER_ED_SPEC}` },
  // encapsulated stacks and the examples of _archive/3-requirements.md
  { text: `/ip6/fe80::8823:6dff:fee7:f172/tcp/4001/ipfs/${PEER_REQ}` },
  { text: `/ip4/162.246.145.218/udp/4001/utp/ipfs/${PEER_REQ}` },
  { text: `/ip6/fe80::8823:6dff:fee7:f172/ipfs/${PEER_REQ}` },
  { text: `/ip4/162.246.145.218/tcp/7650/ip4/192.168.0.1/tcp/4001/ipfs/${PEER_REQ}` },
  { text: '/ip4/1.2.3.4/tcp/1/ip4/5.6.7.8/tcp/2/ip6/::1/udp/3/quic-v1' },
  { text: `/dns4/relay.example/tcp/443/wss/p2p/${PEER_RSA_SPEC}/p2p-circuit/p2p/${PEER_SECP.toString()}` }
]

/**
 * Inputs both must reject. `mention` must appear in ringp2p's stderr (the house rule is that
 * the message names the exact problem).
 */
export const INVALID_TEXT = [
  // unknown protocols, among them the /ether example of _archive/3-requirements.md
  { text: `/ether/ac:fd:ec:0b:7c:fe/ipfs/${PEER_REQ}`, mention: 'ether' },
  { text: '/ip4/1.2.3.4/tcp/1/foo', mention: 'foo' },
  { text: '/ip4/1.2.3.4/udp/1/quic/1234', mention: '1234' },
  { text: 'ip4/1.2.3.4' },
  // bad addresses
  { text: '/ip4/256.0.0.1', mention: '256.0.0.1' },
  { text: '/ip4/1.2.3', mention: '1.2.3' },
  { text: '/ip4/198.51.100/tcp/1234', mention: '198.51.100' }, // a 3-octet "address" in addressing/README.md
  { text: '/ip4/1.2.3.4.5', mention: '1.2.3.4.5' },
  { text: '/ip4/1.2.3.-4' },
  { text: '/ip4/1.2.3.4a' },
  { text: '/ip4/01.2.3.4' },
  { text: '/ip4/example.com' },
  { text: '/ip6/::1::2', mention: '::1::2' },
  { text: '/ip6/12345::1' },
  { text: '/ip6/1:2:3:4:5:6:7:8:9' },
  { text: '/ip6/1.2.3.4' },
  { text: '/ip6/fe80::1%eth0' },
  { text: '/ip6/g::1' },
  // ports
  { text: '/ip4/1.2.3.4/tcp/70000', mention: '70000' },
  { text: '/ip4/1.2.3.4/tcp/65536', mention: '65536' },
  { text: '/ip4/1.2.3.4/udp/-1' },
  { text: '/ip4/1.2.3.4/tcp/abc', mention: 'abc' },
  { text: '/ip4/1.2.3.4/tcp/1.5' },
  { text: '/ip4/1.2.3.4/sctp/99999' },
  { text: '/ip4/1.2.3.4/dccp/0x10' },
  // missing values
  { text: '/ip4/1.2.3.4/tcp', mention: 'tcp' },
  { text: '/ip4', mention: 'ip4' },
  { text: '/ip6', mention: 'ip6' },
  { text: '/dns4', mention: 'dns4' },
  { text: '/p2p', mention: 'p2p' },
  { text: '/unix', mention: 'unix' },
  { text: '/sni', mention: 'sni' },
  { text: '/certhash', mention: 'certhash' },
  { text: '/onion3', mention: 'onion3' },
  { text: '/ip6zone', mention: 'ip6zone' },
  { text: '/ipcidr', mention: 'ipcidr' },
  { text: '/memory', mention: 'memory' },
  { text: '/ip4/1.2.3.4/tcp/1/ip4', mention: 'ip4' },
  // ipcidr is one byte
  { text: '/ip4/10.0.0.0/ipcidr/256' },
  { text: '/ip4/10.0.0.0/ipcidr/abc' },
  // p2p: bad base58, bad base32, bad CID
  { text: `/p2p/${PEER_REQ.slice(0, -1)}0`, mention: 'p2p' },
  { text: `/p2p/${PEER_ED_SPEC.slice(0, -1)}l`, mention: 'p2p' },
  { text: `/p2p/${PEER_RSA_SPEC_CID.slice(0, -1)}1`, mention: 'p2p' },
  { text: `/p2p/${PEER_RSA_SPEC_CID.slice(0, -1)}!`, mention: 'p2p' },
  { text: `/p2p/z${PEER_REQ}` }, // a CIDv0 must not carry a multibase prefix
  // onion: 16 base32 chars, port 1..65535
  { text: '/onion/timaq4ygg2iegci7', mention: 'onion' },
  { text: '/onion/timaq4ygg2iegci:80', mention: 'onion' },
  { text: '/onion/timaq4ygg2iegci7:0', mention: 'onion' },
  { text: '/onion/timaq4ygg2iegci7:-1', mention: 'onion' },
  { text: '/onion/timaq4ygg2iegci@:80', mention: 'onion' },
  { text: `/onion3/${ONION3}`, mention: 'onion3' },
  { text: `/onion3/${ONION3.slice(0, -2)}:1234`, mention: 'onion3' },
  { text: `/onion3/${ONION3}:0`, mention: 'onion3' },
  // certhash: not multibase
  { text: '/certhash/!abc', mention: 'certhash' },
  { text: `/certhash/${CERT_U.slice(0, -1)}*`, mention: 'certhash' }
]

/** Binary inputs (hex) both must reject. */
export const INVALID_HEX = [
  { hex: '04010203', why: 'ip4 value truncated' },
  { hex: '0401020304ff01', why: 'unknown protocol code 255' },
  { hex: '80', why: 'unterminated varint' },
  { hex: '860001bb', why: 'non-minimal varint protocol code' },
  { hex: '0601', why: 'tcp port truncated' },
  { hex: '9003', why: 'unix: length missing' },
  { hex: 'bc0301', why: 'onion value truncated' },
  { hex: '2900', why: 'ip6 value truncated' },
  { hex: 'a50300', why: 'p2p: empty multihash' },
  { hex: '040102030405', why: 'unknown protocol code 5 after a valid component' }
]

const GARLIC_REASON =
  'protocols.csv gives garlic64/garlic32 only as variable-length; go-multiaddr and rust-multiaddr ' +
  '(and ringp2p) carry the decoded I2P destination (I2P base64 with -~, padded; base32) in the ' +
  'binary form, js-multiaddr 13 carries the UTF-8 text. Expected bytes are decoded here.'

/** Hex of one component: varint code, varint length, value. */
function component (code, value) {
  const varint = (n) => {
    const out = []
    while (n >= 0x80) {
      out.push((n & 0x7f) | 0x80)
      n >>>= 7
    }
    out.push(n)
    return out
  }
  return hex(Uint8Array.from([...varint(code), ...varint(value.length), ...value]))
}

/** I2P's base64 alphabet is the standard one with '-' and '~' for '+' and '/'. */
function i2pBase64Decode (text) {
  return new Uint8Array(Buffer.from(text.replace(/-/g, '+').replace(/~/g, '/'), 'base64'))
}

/**
 * Where js-multiaddr 13 departs from the specs (or, where the specs are silent, from the other
 * implementations). Each entry: the input (text or hex); what js does ('accepts', 'rejects', or
 * 'differs': accepts with other bytes), checked so that a fixed js flags the entry as stale;
 * what ringp2p must do; and why.
 */
export const EXCEPTIONS = [
  {
    text: '/p2p/Qm',
    js: 'accepts',
    ringp2p: 'rejects',
    reason:
      'js decodes any base58 text as the /p2p/ value; the value is a peer ID, a multihash ' +
      '(multiaddr protocols.csv, peer-ids.md), and "Qm" decodes to 0x0562, which is not one'
  },
  {
    text: '/p2p/1',
    js: 'accepts',
    ringp2p: 'rejects',
    reason: 'as above: "1" decodes to one 0x00 byte, not a multihash'
  },
  {
    // A dag-pb CIDv1 of the same sha2-256 multihash as PEER_RSA_SPEC.
    text: () => `/p2p/${peerIdFromString(PEER_RSA_SPEC).toCID().toString().replace(/^bafz/, 'bafy')}`,
    js: 'accepts',
    ringp2p: 'rejects',
    reason:
      'js takes the multihash of any CID; peer-ids.md and RFC 0001 require the libp2p-key ' +
      'codec (0x72), and this CID has dag-pb (0x70)'
  },
  {
    text: '/onion/timaq4ygg2iegci7:65536',
    js: 'accepts',
    ringp2p: 'rejects',
    reason: 'js allows port 65536 and silently encodes it as 0; a port is 16 bits'
  },
  {
    text: '/ip4/1.2.3.4//tcp/1',
    js: 'accepts',
    ringp2p: 'rejects',
    reason:
      'the text form is (/<name>/<value>)+ and has no empty protocol names; js squeezes the first ' +
      'run of slashes only (it rejects a second one), go-multiaddr rejects it'
  },
  {
    text: '/certhash/uAAAA',
    js: 'accepts',
    ringp2p: 'rejects',
    reason:
      'certhash is a multibase-encoded multihash (libp2p webrtc/webrtc-direct.md, ' +
      'webtransport/README.md); 0x000000 is an empty identity multihash and a stray byte. js ' +
      'decodes the multibase only'
  },
  {
    text: '/certhash/zQm',
    js: 'accepts',
    ringp2p: 'rejects',
    reason: 'as above: 0x0562 is a truncated multihash'
  },
  {
    text: '/onion/timaq4ygg2iegci7:01234',
    js: 'accepts',
    ringp2p: 'rejects',
    reason:
      'js reads onion ports with parseInt, unlike its tcp/udp ports, which refuse leading zeros; ' +
      'ringp2p applies one port syntax to both (the specs are silent)'
  },
  {
    text: '/unix/%ff',
    js: 'rejects',
    ringp2p: { hex: '900301ff', text: '/unix/%FF' },
    reason:
      'a unix socket path is bytes and RFC 3986 percent-encodes octets (the encoding ' +
      'protocols/http-path.md prescribes); js decodes with decodeURIComponent, which demands UTF-8'
  },
  {
    text: () => `/p2p/${PEER_ED.toCID().toString().toUpperCase()}`,
    js: 'rejects',
    ringp2p: () => ({ hex: hex(multiaddr(`/p2p/${PEER_ED}`).bytes), text: `/p2p/${PEER_ED}` }),
    reason:
      'peer-ids.md: a peer ID that starts with a multibase prefix is a CIDv1 in that multibase, ' +
      'here base32upper ("B"); js only parses base32, base36 and base58btc CIDs'
  },
  {
    text: () => `/p2p/${PEER_ED.toCID().toString(base36).toUpperCase()}`,
    js: 'rejects',
    ringp2p: () => ({ hex: hex(multiaddr(`/p2p/${PEER_ED}`).bytes), text: `/p2p/${PEER_ED}` }),
    reason: 'as above, base36upper ("K")'
  },
  {
    text: () => `/p2p/${PEER_ED.toCID().toString(base16)}`,
    js: 'rejects',
    ringp2p: () => ({ hex: hex(multiaddr(`/p2p/${PEER_ED}`).bytes), text: `/p2p/${PEER_ED}` }),
    reason:
      'peer-ids.md: a peer ID that starts with a multibase prefix is a CIDv1 in that multibase; ' +
      'js only parses base32, base36 and base58btc CIDs (expected value from the base58 form)'
  },
  {
    text: () => `/p2p/${PEER_ED.toCID().toString(base64url)}`,
    js: 'rejects',
    ringp2p: () => ({ hex: hex(multiaddr(`/p2p/${PEER_ED}`).bytes), text: `/p2p/${PEER_ED}` }),
    reason: 'as above, base64url'
  },
  {
    text: `/garlic64/${GARLIC64}`,
    js: 'differs',
    ringp2p: () => ({ hex: component(0x01be, i2pBase64Decode(GARLIC64)), text: `/garlic64/${GARLIC64}` }),
    reason: GARLIC_REASON
  },
  {
    text: `/garlic64/${GARLIC64}/tcp/8080`,
    js: 'differs',
    ringp2p: () => ({
      hex: component(0x01be, i2pBase64Decode(GARLIC64)) + '061f90',
      text: `/garlic64/${GARLIC64}/tcp/8080`
    }),
    reason: GARLIC_REASON
  },
  {
    text: `/garlic32/${GARLIC32}`,
    js: 'differs',
    ringp2p: () => ({ hex: component(0x01bf, base32.baseDecode(GARLIC32)), text: `/garlic32/${GARLIC32}` }),
    reason: GARLIC_REASON
  },
  {
    hex: 'bf0303616263',
    js: 'accepts',
    ringp2p: 'rejects',
    reason: `${GARLIC_REASON} go-multiaddr requires 32 or at least 35 bytes of garlic32`
  },
  {
    hex: 'be0303616263',
    js: 'accepts',
    ringp2p: 'rejects',
    reason: `${GARLIC_REASON} go-multiaddr requires at least 386 bytes of garlic64`
  },
  {
    hex: '3505616263',
    js: 'accepts',
    ringp2p: 'rejects',
    reason: 'dns value length says 5 bytes but 3 follow; js truncates silently'
  },
  {
    hex: 'a5032400220801122062',
    js: 'accepts',
    ringp2p: 'rejects',
    reason: 'p2p value length says 36 bytes but 7 follow; js truncates silently'
  },
  {
    hex: 'bd03adadec040be047f9658668b11a504f3155001f231a37f54c4476c07fb4cc139ed7e30300',
    js: 'accepts',
    ringp2p: 'rejects',
    reason: 'onion3 is 37 bytes (protocols.csv: 296 bits) and 36 follow; js reads past the end'
  },
  {
    hex: 'bc039a18087306369043091f0000',
    js: 'accepts',
    ringp2p: 'rejects',
    reason: 'onion port 0: js refuses it in text (range 1-65535) but accepts it in binary'
  },
  {
    hex: '35032f6162',
    js: 'accepts',
    ringp2p: 'rejects',
    reason:
      'a "/" inside a dns value makes the text form ambiguous (js prints /dns//ab, which it cannot ' +
      'read back); go-multiaddr rejects it too'
  },
  {
    hex: '2a032f6162',
    js: 'accepts',
    ringp2p: 'rejects',
    reason: 'as above, an ip6zone value with "/"'
  },
  {
    hex: 'c103022f61',
    js: 'accepts',
    ringp2p: 'rejects',
    reason: 'as above, an sni value with "/"'
  },
  {
    hex: '35026100',
    js: 'accepts',
    ringp2p: 'rejects',
    reason: 'NUL is in no DNS name (the specs are silent); ringp2p refuses it'
  },
  {
    hex: '89060100',
    js: 'accepts',
    ringp2p: 'rejects',
    reason:
      'protocols.csv says a memory value is arbitrary; ringp2p refuses NUL in it so the value ' +
      'stays a C string — a ringp2p restriction, not a spec rule'
  },
  {
    hex: 'd2030100',
    js: 'accepts',
    ringp2p: 'rejects',
    reason: 'certhash 0x00 is not a multihash (see /certhash/uAAAA above)'
  },
  {
    hex: 'd203021200',
    js: 'accepts',
    ringp2p: 'rejects',
    reason: 'certhash 0x1200 is a sha2-256 multihash with a 0-byte digest; sha2-256 digests are 32 bytes'
  },
  {
    hex: 'e103012f',
    js: 'accepts',
    ringp2p: 'rejects',
    reason:
      'protocols/http-path.md: the value is one non-empty path segment after the implied "/" ' +
      '("/" alone is "n/a"); js prints it as /http-path/ with an empty value'
  },
  {
    hex: '2b',
    js: 'accepts',
    ringp2p: 'rejects',
    reason: 'ipcidr needs its 1-byte value; js reads past the end as an empty value'
  },
  {
    hex: 'a5030205',
    js: 'accepts',
    ringp2p: 'rejects',
    reason: 'p2p value 0x05 is not a multihash'
  }
]

const resolve = (v) => (typeof v === 'function' ? v() : v)

/** js's view of an input: canonical text comes from the bytes (js echoes some input text). */
function jsParse (input) {
  const ma = multiaddr(input)
  const bytes = ma.bytes
  return { hex: hex(bytes), text: multiaddr(bytes).toString() }
}

function jsRejects (input) {
  try {
    jsParse(input)
    return false
  } catch {
    return true
  }
}

export function register (runner, tools) {
  const G = 'multiaddr'
  // Several inputs share a binary form or a canonical text; each of those is checked once.
  const seenHex = new Set()
  const seenText = new Set(VALID.map((c) => c.text))
  for (const c of VALID) {
    let js
    try {
      js = jsParse(c.text)
    } catch (e) {
      runner.check(G, `js parses ${c.text}`, () => {
        throw new CheckError(`js-multiaddr rejects a listed valid address: ${e.message}`)
      })
      continue
    }
    if (c.spec != null) {
      runner.check(G, `js bytes match spec vector ${c.text}`, () => expectEqual(js.hex, c.spec, 'js hex'))
    }
    if (tools == null) {
      continue
    }
    runner.check(G, `text→bytes ${c.text}`, async () => {
      const got = await tools.addr([c.text])
      expectEqual(got.hex, js.hex, 'hex')
      expectEqual(got.text, js.text, 'text')
      if (c.spec != null) {
        expectEqual(got.hex, c.spec, 'hex vs spec vector')
      }
    })
    if (!seenHex.has(js.hex)) {
      seenHex.add(js.hex)
      runner.check(G, `bytes→text (the bytes of ${js.text.length > 200 ? `${js.text.slice(0, 120)}…${js.text.slice(-60)}` : js.text})`, async () => {
        const got = await tools.addr(['--hex', js.hex])
        expectEqual(got.hex, js.hex, 'hex')
        expectEqual(got.text, js.text, 'text')
      })
    }
    if (!seenText.has(js.text)) {
      seenText.add(js.text)
      runner.check(G, `canonical text→bytes ${js.text}`, async () => {
        const got = await tools.addr([js.text])
        expectEqual(got.hex, js.hex, 'hex')
        expectEqual(got.text, js.text, 'text')
      })
    }
  }

  for (const c of INVALID_TEXT) {
    runner.check(G, `js rejects ${c.text}`, () =>
      expect(jsRejects(c.text), `js-multiaddr accepts ${c.text} as ${JSON.stringify(safeJs(c.text))}`)
    )
    if (tools != null) {
      runner.check(G, `ringp2p rejects ${c.text}`, () => tools.addrRejects([c.text], c.mention))
    }
  }
  for (const c of INVALID_HEX) {
    runner.check(G, `js rejects binary ${c.hex} (${c.why})`, () =>
      expect(jsRejects(fromHex(c.hex)), `js-multiaddr accepts ${c.hex}`)
    )
    if (tools != null) {
      runner.check(G, `ringp2p rejects binary ${c.hex} (${c.why})`, () => tools.addrRejects(['--hex', c.hex]))
    }
  }
  if (tools != null) {
    // Input errors of the tool itself, not of multiaddr: no js counterpart.
    for (const bad of ['0', '04010203g4', 'zz']) {
      runner.check(G, `ringp2p rejects malformed hex ${JSON.stringify(bad)}`, () =>
        tools.addrRejects(['--hex', bad])
      )
    }
  }

  for (const e of EXCEPTIONS) {
    const input = e.text != null ? resolve(e.text) : fromHex(e.hex)
    const label = e.text != null ? input : `binary ${e.hex}`
    const want = resolve(e.ringp2p)
    runner.check(G, `exception still holds: js ${e.js} ${label}`, () => {
      const rejected = jsRejects(input)
      const stale = `remove or revise this exception (${e.reason})`
      if (e.js === 'differs') {
        expect(!rejected, `js-multiaddr now rejects ${label}: ${stale}`)
        const js = jsParse(input)
        expect(js.hex !== want.hex, `js-multiaddr now gives the expected bytes for ${label}: ${stale}`)
      } else {
        expect(rejected === (e.js === 'rejects'), `js-multiaddr now ${rejected ? 'rejects' : 'accepts'} ${label}: ${stale}`)
      }
    })
    if (tools == null) {
      continue
    }
    const args = e.text != null ? [input] : ['--hex', e.hex]
    const withReason = (fn) => async () => {
      try {
        await fn()
      } catch (err) {
        if (err instanceof CheckError) err.message += `\n(expected because: ${e.reason})`
        throw err
      }
    }
    if (want === 'rejects') {
      runner.check(G, `ringp2p rejects ${label} (js differs)`, withReason(() => tools.addrRejects(args)))
    } else {
      runner.check(G, `ringp2p parses ${label} (js differs)`, withReason(async () => {
        const got = await tools.addr(args)
        expectEqual(got.hex, want.hex, 'hex')
        expectEqual(got.text, want.text, 'text')
        const back = await tools.addr(['--hex', want.hex])
        expectEqual(back.text, want.text, 'text from the bytes')
      }))
    }
  }
}

function safeJs (input) {
  try {
    return jsParse(input)
  } catch (e) {
    return e.message
  }
}
