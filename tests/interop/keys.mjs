// Keys, peer IDs and signatures, cross-checked between js-libp2p (@libp2p/crypto,
// @libp2p/peer-id) and ringp2p (the `ringp2p` tool and tests/interop/keycheck.c):
//   (a) js makes a key; ringp2p reads the key file and derives the same peer ID and public key;
//   (b) ringp2p makes a key; js reads it, re-encodes it byte for byte, derives the same peer ID;
//   (c) signatures both ways, and tampered signatures or messages fail on both sides;
//   (d) the spec's key vectors, whose peer IDs the spec does not give;
//   (e) every text form of a peer ID parses to the same peer ID on both sides.
// js-libp2p's ECDSA support departs from the peer-ids spec in several ways; those are the
// ECDSA_EXCEPTIONS below. For ECDSA the expected values are derived here from the spec
// (SubjectPublicKeyInfo via node:crypto, DER signatures), and each departure is itself checked
// so that a js release that fixes it shows up as a stale exception.

import { createHash, createPublicKey, verify as nodeVerify } from 'node:crypto'
import { readFileSync as read, writeFileSync as write } from 'node:fs'
import {
  generateKeyPair,
  privateKeyFromProtobuf,
  privateKeyToProtobuf,
  publicKeyFromProtobuf,
  publicKeyToProtobuf
} from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { base16 } from 'multiformats/bases/base16'
import { base36 } from 'multiformats/bases/base36'
import { base58btc } from 'multiformats/bases/base58'
import { base64url } from 'multiformats/bases/base64'
import { identity } from 'multiformats/hashes/identity'
import { sha256 } from 'multiformats/hashes/sha2'
import { CheckError, bytesEqual, expect, expectEqual, flipBit, fromHex, hex } from './lib.mjs'
import { SPEC_KEYS } from './vectors.mjs'

const LIBP2P_KEY_CODEC = 0x72
const KEY_TYPE_CODE = { rsa: 0, ed25519: 1, secp256k1: 2, ecdsa: 3 }

export const TYPES = [
  { name: 'ed25519', jsType: 'Ed25519', generate: () => generateKeyPair('Ed25519'), deterministic: true },
  { name: 'secp256k1', jsType: 'secp256k1', generate: () => generateKeyPair('secp256k1'), deterministic: false },
  { name: 'ecdsa', jsType: 'ECDSA', generate: () => generateKeyPair('ECDSA', 'P-256'), deterministic: false },
  { name: 'rsa', jsType: 'RSA', generate: () => generateKeyPair('RSA', 2048), deterministic: true }
]

/**
 * js-libp2p (@libp2p/crypto 5.1.23, @libp2p/peer-id 6.0.15) vs the peer-ids spec, ECDSA only.
 * Each entry has a `holds` probe run against js: true while js still behaves that way.
 */
export const ECDSA_EXCEPTIONS = [
  {
    id: 'ecdsa-public-encoding',
    reason:
      'peer-ids.md encodes an ECDSA public key as DER SubjectPublicKeyInfo (see its test vector ' +
      '3059301306072a8648ce3d0201...); js writes SEQUENCE{INTEGER 1, [0] curve OID, [1] point}. ' +
      'Expected public keys are built from the key\'s coordinates with node:crypto instead.',
    holds: (key) => !bytesEqual(publicKeyToProtobuf(key.publicKey), specPublicProtobuf(key))
  },
  {
    id: 'ecdsa-public-decoding',
    reason:
      'js cannot read a spec-encoded (SubjectPublicKeyInfo) ECDSA public key, so js verifies ' +
      'ringp2p\'s signatures with the public half of the private key it read instead.',
    holds: (key) => throws(() => publicKeyFromProtobuf(specPublicProtobuf(key)))
  },
  {
    id: 'ecdsa-peer-id',
    reason:
      'js cannot derive an ECDSA peer ID (peerIdFromPublicKey throws UnsupportedKeyTypeError) and ' +
      'its toMultihash() is an identity multihash although the key encodes to more than 42 ' +
      'bytes (the spec requires sha2-256). Expected peer IDs are sha2-256 of the spec encoding.',
    holds: (key) => throws(() => peerIdFromPrivateKey(key)) && key.publicKey.toMultihash().code === identity.code
  },
  {
    id: 'ecdsa-signature-format',
    reason:
      'peer-ids.md: ECDSA signatures are DER-encoded; js (WebCrypto) makes and expects IEEE P1363 ' +
      'r||s. Signatures are converted between the two at the boundary.',
    holds: async (key) => {
      const sig = await key.sign(new Uint8Array([1, 2, 3]))
      return sig.length === 64 && derToP1363(sig) == null
    }
  }
]

function throws (fn) {
  try {
    fn()
    return false
  } catch {
    return true
  }
}

// ---- spec encodings computed here --------------------------------------------------------------

function protobufKey (typeCode, data) {
  const len = []
  let n = data.length
  while (n >= 0x80) {
    len.push((n & 0x7f) | 0x80)
    n >>>= 7
  }
  len.push(n)
  return Uint8Array.from([0x08, typeCode, 0x12, ...len, ...data])
}

/** The spec's protobuf PublicKey of a js key; for ECDSA from its coordinates via node:crypto. */
export function specPublicProtobuf (key) {
  if (key.type !== 'ECDSA') {
    return publicKeyToProtobuf(key.publicKey)
  }
  const { crv, x, y } = key.publicKey.jwk
  const spki = createPublicKey({ key: { kty: 'EC', crv, x, y }, format: 'jwk' }).export({ type: 'spki', format: 'der' })
  return protobufKey(KEY_TYPE_CODE.ecdsa, spki)
}

/** Peer ID per peer-ids.md from protobuf PublicKey bytes: identity up to 42 bytes, else sha2-256. */
export async function specPeerId (pubProtobuf) {
  const digest = pubProtobuf.length <= 42 ? identity.digest(pubProtobuf) : await sha256.digest(pubProtobuf)
  return {
    peerId: base58btc.encode(digest.bytes).slice(1),
    cid: CID.createV1(LIBP2P_KEY_CODEC, digest).toString(),
    multihash: digest.bytes
  }
}

function derInt (bytes) {
  let i = 0
  while (i < bytes.length - 1 && bytes[i] === 0) i++
  const v = bytes.subarray(i)
  return v[0] & 0x80 ? [0x02, v.length + 1, 0, ...v] : [0x02, v.length, ...v]
}

export function p1363ToDer (sig) {
  const n = sig.length / 2
  const body = [...derInt(sig.subarray(0, n)), ...derInt(sig.subarray(n))]
  return Uint8Array.from([0x30, body.length, ...body])
}

/** Strict DER ECDSA-Sig-Value → r||s of `n` bytes each; null if not strict DER. */
export function derToP1363 (der, n = 32) {
  if (der.length < 8 || der[0] !== 0x30 || der[1] !== der.length - 2) return null
  const out = new Uint8Array(2 * n)
  let p = 2
  for (let k = 0; k < 2; k++) {
    if (der[p] !== 0x02) return null
    const len = der[p + 1]
    const v = der.subarray(p + 2, p + 2 + len)
    if (len === 0 || len >= 0x80 || v.length !== len) return null
    if (v[0] & 0x80) return null // negative
    if (len > 1 && v[0] === 0 && !(v[1] & 0x80)) return null // non-minimal
    const mag = v[0] === 0 ? v.subarray(1) : v
    if (mag.length > n) return null
    out.set(mag, (k + 1) * n - mag.length)
    p += 2 + len
  }
  return p === der.length ? out : null
}

/** js signs in the spec's format. */
async function jsSign (key, msg) {
  const sig = await key.sign(msg)
  return key.type === 'ECDSA' ? p1363ToDer(sig) : sig
}

/** js verifies a spec-format signature (js throws on some malformed ones: that is a no). */
async function jsVerify (publicKey, msg, sig) {
  try {
    if (publicKey.type === 'ECDSA') {
      const raw = derToP1363(sig)
      return raw != null && (await publicKey.verify(msg, raw))
    }
    return await publicKey.verify(msg, sig)
  } catch {
    return false
  }
}

/** What ringp2p must print for a js key. */
async function expectedIdentity (key) {
  const spec = await specPeerId(specPublicProtobuf(key))
  if (key.type !== 'ECDSA') {
    const pid = peerIdFromPrivateKey(key)
    expectEqual(pid.toString(), spec.peerId, 'js peer ID vs the spec derivation')
    expectEqual(pid.toCID().toString(), spec.cid, 'js CID vs the spec derivation')
  }
  return spec
}

function once (fn) {
  let p
  return () => (p ??= fn())
}

// ---- checks -------------------------------------------------------------------------------------

const MESSAGES = [
  new Uint8Array(0),
  new TextEncoder().encode('a'),
  new TextEncoder().encode('libp2p-tls-handshake: ringp2p interop'),
  pseudoRandom(1000),
  pseudoRandom(70000)
]

/** Fixed bytes that look random (SHA-256 in counter mode), so failures reproduce. */
function pseudoRandom (len) {
  const out = new Uint8Array(len)
  for (let i = 0; i * 32 < len; i++) {
    const block = createHash('sha256').update(`ringp2p interop ${i}`).digest()
    out.set(block.subarray(0, Math.min(32, len - i * 32)), i * 32)
  }
  return out
}

export async function register (runner, tools, tmp) {
  const msgFiles = MESSAGES.map((m, i) => {
    const f = tmp.path(`msg${i}.bin`)
    write(f, m)
    return f
  })
  const tampered = (m) => (m.length === 0 ? Uint8Array.from([0]) : flipBit(m, 0, 0))
  const tamperedFiles = MESSAGES.map((m, i) => {
    const f = tmp.path(`msg${i}-tampered.bin`)
    write(f, tampered(m))
    return f
  })
  const mlabel = (i) => `${MESSAGES[i].length}-byte message`

  // Keys are made up front (js) or on first use (ringp2p).
  // Per type: the key under test and a second one of the same type (wrong-key checks).
  const jsKeys = {}
  const jsSecond = {}
  for (const t of TYPES) {
    jsKeys[t.name] = await t.generate()
    jsSecond[t.name] = await t.generate()
  }

  for (const t of TYPES) {
    const G = `keys ${t.name}`
    const check = (name, fn) => runner.check(G, name, fn)
    // Checks that need the programs under test; left out in --js-only runs.
    const rcheck = tools != null ? check : () => {}
    const jsKey = jsKeys[t.name]
    const others = [jsSecond[t.name], jsKeys[TYPES[(TYPES.indexOf(t) + 1) % TYPES.length].name]]
    const jsKeyFile = tmp.path(`js-${t.name}.key`)
    write(jsKeyFile, privateKeyToProtobuf(jsKey))
    const jsPubFile = tmp.path(`js-${t.name}.pub`)
    write(jsPubFile, specPublicProtobuf(jsKey))
    const otherPubFiles = others.map((k, i) => {
      const f = tmp.path(`js-${t.name}-other${i}.pub`)
      write(f, specPublicProtobuf(k))
      return f
    })

    // ---- the known js departures (ECDSA) are still there ----
    if (t.name === 'ecdsa') {
      for (const e of ECDSA_EXCEPTIONS) {
        check(`exception still holds: ${e.id}`, async () =>
          expect(await e.holds(jsKey), `js no longer does this; remove or revise the exception: ${e.reason}`)
        )
      }
    }

    if (t.name === 'ecdsa') {
      // The harness's own SPKI and DER conversions, checked against OpenSSL (node:crypto).
      check('harness: js signature as DER verifies under the SPKI key with node:crypto', async () => {
        const spki = specPublicProtobuf(jsKey).subarray(4) // after 08 03 12 <1-byte length>
        expectEqual(specPublicProtobuf(jsKey)[3], spki.length, 'protobuf length byte')
        const pub = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' })
        for (const msg of MESSAGES) {
          const der = await jsSign(jsKey, msg)
          expect(nodeVerify('sha256', msg, { key: pub, dsaEncoding: 'der' }, der), 'node:crypto rejects the DER signature')
          expect(!nodeVerify('sha256', msg, { key: pub, dsaEncoding: 'der' }, flipBit(der, -1, 0)), 'node:crypto accepts a tampered one')
          expectEqual(hex(p1363ToDer(derToP1363(der))), hex(der), 'DER → P1363 → DER')
        }
      })
    }

    // ---- (a) js key → ringp2p ----
    rcheck('js key: `ringp2p id` gives js\'s peer ID, CID and key type', async () => {
      const want = await expectedIdentity(jsKey)
      const got = await tools.id(jsKeyFile)
      expectEqual(got.peerId, want.peerId, 'peerId')
      expectEqual(got.cid, want.cid, 'cid')
      expectEqual(got.keyType, t.name, 'keyType')
    })
    rcheck('js key: ringp2p derives the same public key bytes', async () => {
      const out = tmp.path(`js-${t.name}.ringp2p.pub`)
      await tools.pub(jsKeyFile, out)
      expectEqual(hex(read(out)), hex(specPublicProtobuf(jsKey)), 'public key protobuf')
    })
    rcheck('js public key: ringp2p derives the same peer ID from it', async () => {
      const want = await expectedIdentity(jsKey)
      const got = await tools.peerOfPub(jsPubFile)
      expectEqual(got.peerId, want.peerId, 'peerId')
      expectEqual(got.cid, want.cid, 'cid')
    })

    // ---- (b) ringp2p key → js ----
    const rKeyFile = tmp.path(`ringp2p-${t.name}.key`)
    const ringp2pKey = once(async () => {
      await tools.keygen(t.name, rKeyFile)
      const bytes = new Uint8Array(read(rKeyFile))
      let key
      try {
        key = privateKeyFromProtobuf(bytes)
      } catch (e) {
        throw new CheckError(`js cannot read the key ringp2p wrote (${hex(bytes)}): ${e.message}`)
      }
      expectEqual(key.type, t.jsType, 'key type js reads')
      return { key, bytes }
    })
    rcheck('ringp2p keygen: js reads the key and re-encodes it byte for byte', async () => {
      const { key, bytes } = await ringp2pKey()
      expectEqual(hex(privateKeyToProtobuf(key)), hex(bytes), 'js re-encoding of the private key')
    })
    rcheck('ringp2p keygen: `ringp2p id` gives the peer ID js derives', async () => {
      const { key } = await ringp2pKey()
      const want = await expectedIdentity(key)
      const got = await tools.id(rKeyFile)
      expectEqual(got.peerId, want.peerId, 'peerId')
      expectEqual(got.cid, want.cid, 'cid')
      expectEqual(got.keyType, t.name, 'keyType')
    })
    rcheck('ringp2p keygen: public key bytes agree; js public key round-trips', async () => {
      const { key } = await ringp2pKey()
      const out = tmp.path(`ringp2p-${t.name}.pub`)
      await tools.pub(rKeyFile, out)
      const ringp2pPub = new Uint8Array(read(out))
      expectEqual(hex(ringp2pPub), hex(specPublicProtobuf(key)), 'public key protobuf (ringp2p vs js)')
      const jsPub = publicKeyToProtobuf(key.publicKey)
      const back = publicKeyFromProtobuf(jsPub)
      expect(back.equals(key.publicKey), 'js public key does not equal itself after a protobuf round trip')
      expectEqual(hex(publicKeyToProtobuf(back)), hex(jsPub), 'js public key re-encoding')
      if (t.name !== 'ecdsa') {
        // ECDSA: see the exception ecdsa-public-decoding.
        expect(publicKeyFromProtobuf(ringp2pPub).equals(key.publicKey), 'js reads ringp2p\'s public key as another key')
      }
    })

    // ---- (c) signatures ----
    MESSAGES.forEach((msg, i) => {
      rcheck(`js signs, ringp2p verifies (${mlabel(i)}); tampered signature and message fail`, async () => {
        const sig = await jsSign(jsKey, msg)
        const sigFile = tmp.path(`js-${t.name}-${i}.sig`)
        const badFile = tmp.path(`js-${t.name}-${i}.badsig`)
        write(sigFile, sig)
        write(badFile, flipBit(sig, -1, 0))
        const what = `signature ${hex(sig)} by public key ${hex(specPublicProtobuf(jsKey))}`
        expect(await jsVerify(jsKey.publicKey, msg, sig), `js does not verify its own ${what}`)
        expect(await tools.verify(jsPubFile, msgFiles[i], sigFile), `ringp2p rejects js's valid ${what}`)
        expect(!(await tools.verify(jsPubFile, msgFiles[i], badFile)), 'ringp2p accepts a tampered signature')
        expect(!(await tools.verify(jsPubFile, tamperedFiles[i], sigFile)), 'ringp2p accepts a tampered message')
        for (const f of otherPubFiles) {
          expect(!(await tools.verify(f, msgFiles[i], sigFile)), `ringp2p accepts the signature under another key (${f})`)
        }
      })
      rcheck(`ringp2p signs, js verifies (${mlabel(i)}); tampered signature and message fail`, async () => {
        const { key } = await ringp2pKey()
        const sigFile = tmp.path(`ringp2p-${t.name}-${i}.sig`)
        await tools.sign(rKeyFile, msgFiles[i], sigFile)
        const sig = new Uint8Array(read(sigFile))
        expect(
          await jsVerify(key.publicKey, msg, sig),
          `js rejects ringp2p's signature ${hex(sig)} by public key ${hex(specPublicProtobuf(key))}`
        )
        expect(!(await jsVerify(key.publicKey, msg, flipBit(sig, -1, 0))), 'js accepts a tampered signature')
        expect(!(await jsVerify(key.publicKey, tampered(msg), sig)), 'js accepts a tampered message')
        for (const k of others) {
          expect(!(await jsVerify(k.publicKey, msg, sig)), `js accepts the signature under another ${k.type} key`)
        }
      })
    })
    if (t.name === 'ecdsa' || t.name === 'secp256k1') {
      // About 1 in 128 ECDSA signatures has an r or s shorter than the curve order, which DER
      // writes in fewer bytes (and P1363 pads): a classic interop bug, so make one on purpose.
      rcheck('js signature with a short DER integer: ringp2p verifies it', async () => {
        for (let n = 0; n < 5000; n++) {
          const msg = new TextEncoder().encode(`short integer ${n}`)
          const sig = await jsSign(jsKey, msg)
          if (sig[3] >= 0x20 && sig[5 + sig[3]] >= 0x20) continue // r and s both full length
          const msgFile = tmp.path(`short-${t.name}.msg`)
          const sigFile = tmp.path(`short-${t.name}.sig`)
          write(msgFile, msg)
          write(sigFile, sig)
          expect(await tools.verify(jsPubFile, msgFile, sigFile), `ringp2p rejects ${hex(sig)} of "short integer ${n}"`)
          return
        }
        throw new CheckError('no signature with a short integer in 5000 tries')
      })
    }
    rcheck('ringp2p signs with the js key file, js verifies', async () => {
      const sigFile = tmp.path(`js-${t.name}-by-ringp2p.sig`)
      await tools.sign(jsKeyFile, msgFiles[2], sigFile)
      const sig = new Uint8Array(read(sigFile))
      expect(await jsVerify(jsKey.publicKey, MESSAGES[2], sig), `js rejects ringp2p's signature ${hex(sig)}`)
      if (t.deterministic) {
        // Ed25519 and RSASSA-PKCS1-v1_5 have one signature per key and message.
        expectEqual(hex(sig), hex(await jsSign(jsKey, MESSAGES[2])), 'deterministic signature (ringp2p vs js)')
      }
    })

    // ---- (d) the spec's key vectors ----
    const vec = SPEC_KEYS[t.name]
    const vecFile = tmp.path(`spec-${t.name}.key`)
    write(vecFile, fromHex(vec.priv))
    check('spec vector: js derives the spec public key', () => {
      const key = privateKeyFromProtobuf(fromHex(vec.priv))
      expectEqual(hex(specPublicProtobuf(key)), vec.pub, 'public key protobuf')
      if (t.name !== 'ecdsa') {
        expectEqual(hex(publicKeyToProtobuf(key.publicKey)), vec.pub, 'js publicKeyToProtobuf')
      }
    })
    rcheck('spec vector: ringp2p derives the spec public key', async () => {
      const out = tmp.path(`spec-${t.name}.ringp2p.pub`)
      await tools.pub(vecFile, out)
      expectEqual(hex(read(out)), vec.pub, 'public key protobuf')
    })
    rcheck('spec vector: `ringp2p id` gives the peer ID js derives', async () => {
      const want = await specPeerId(fromHex(vec.pub))
      if (t.name !== 'ecdsa') {
        const pid = peerIdFromPrivateKey(privateKeyFromProtobuf(fromHex(vec.priv)))
        expectEqual(pid.toString(), want.peerId, 'js peer ID vs the spec derivation')
      }
      const got = await tools.id(vecFile)
      expectEqual(got.peerId, want.peerId, 'peerId')
      expectEqual(got.cid, want.cid, 'cid')
      expectEqual(got.keyType, t.name, 'keyType')
    })

    // ---- (e) peer ID text forms ----
    rcheck('peer ID text forms parse to the same peer ID on both sides', async () => {
      const want = await expectedIdentity(jsKey)
      const pid = peerIdFromString(want.peerId)
      const cid = pid.toCID()
      const inline = want.multihash[0] === identity.code ? hex(specPublicProtobuf(jsKey)) : null
      const wantAddr = hex(multiaddr(`/p2p/${want.peerId}`).bytes)
      const forms = [
        { text: want.peerId, js: true },
        { text: cid.toString(), js: true },
        { text: cid.toString(base36), js: true },
        { text: cid.toString(base58btc), js: true },
        // js's multiaddr parser only knows base32/36/58 CIDs (see multiaddr.mjs EXCEPTIONS)
        { text: cid.toString(base16), js: false },
        { text: cid.toString(base64url), js: false }
      ]
      for (const f of forms) {
        expectEqual(cid.toString(), want.cid, 'js CID')
        if (f.js) {
          expectEqual(hex(multiaddr(`/p2p/${f.text}`).bytes), wantAddr, `js /p2p/${f.text}`)
        }
        const p = await tools.parsePeer(f.text)
        expectEqual(p.peerId, want.peerId, `ringp2p peer ID of ${f.text}`)
        expectEqual(p.cid, want.cid, `ringp2p CID of ${f.text}`)
        expectEqual(p.pub, inline, `ringp2p inlined public key of ${f.text}`)
        const a = await tools.addr([`/p2p/${f.text}`])
        expectEqual(a.hex, wantAddr, `ringp2p /p2p/${f.text} hex`)
        expectEqual(a.text, `/p2p/${want.peerId}`, `ringp2p /p2p/${f.text} text`)
      }
      // A CID with another codec is not a peer ID (peer-ids.md: verify the codec is libp2p-key).
      const dagPb = CID.createV1(0x70, cid.multihash).toString()
      expect(throws(() => peerIdFromString(dagPb)), `js accepts ${dagPb} as a peer ID`)
      await tools.parsePeerRejects(dagPb)
    })
  }
}
