// Real js-libp2p 3.x peers on the two ends of a circuit relay v2 connection, for
// tests/interop/relay.mjs: the relay in the middle is the one under test. Every stdout line is
// one JSON object. Both peers run tcp + @libp2p/circuit-relay-v2's circuitRelayTransport with
// noise, yamux, identify and ping, all with js's defaults, and serve /echo/1.0.0 with
// runOnLimitedConnection (js runs only such handlers on relayed connections, which a relay
// with limits makes "limited").
//
//   relaypeer.mjs listen --relay MADDR [--key FILE]
//     Listens on MADDR/p2p-circuit: js dials the relay and reserves a slot. Prints
//     {"event":"reservation","relay","expire","addrs","voucher":{...}} when js's reservation
//     store reports the reservation (the voucher's signature checked here with js's own
//     RecordEnvelope, see checkVoucher; its payload type, relay, peer, expiration), then
//     {"event":"ready","peerId","addrs"}; or {"event":"error","error"} and exit 1 when js
//     cannot listen there. Then one {"event":"connection",...} per inbound connection.
//     Stops on SIGINT, SIGTERM or the end of stdin.
//
//   relaypeer.mjs relay [--listen MADDR]
//     A js-libp2p relay: tcp, noise, yamux, identify, ping and @libp2p/circuit-relay-v2's
//     circuitRelayServer with js's defaults (reservations of 2 h; relayed connections limited to
//     2 min and 128 KiB, counted over both directions). Prints {"event":"ready","peerId","addrs"},
//     then {"event":"connection",...} per connection. Stops on SIGINT, SIGTERM or the end of stdin.
//
//   relaypeer.mjs dial MADDR ACTION...
//     Dials MADDR (RELAY/p2p/R/p2p-circuit/p2p/TARGET), prints
//     {"event":"result","action":"dial","ok",...,"limits"} and then one result per action:
//     "ping N" (N /ipfs/ping/1.0.0 round trips on the relayed connection; see pingOn), "echo SIZE" (SIZE random bytes on one /echo/1.0.0 stream
//     opened with runOnLimitedConnection, sha256 of what came back). Exits 0 only if all
//     succeeded.

import { createHash, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { privateKeyFromProtobuf, publicKeyFromProtobuf } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { peerIdFromMultihash, peerIdFromPublicKey } from '@libp2p/peer-id'
import { RecordEnvelope } from '@libp2p/peer-record'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import * as Digest from 'multiformats/hashes/digest'
import { ECHO, PING, echoHandler, emit, errText, sha256, stopNode } from './peer.mjs'

const VOUCHER_DOMAIN = 'libp2p-relay-rsvp'
const VOUCHER_TYPE = '0302'
const ACTION_TIMEOUT_MS = 60_000
const WRITE_CHUNK = 16 * 1024

function usage (message) {
  if (message != null) console.error(`relaypeer.mjs: ${message}`)
  console.error('usage: relaypeer.mjs listen --relay MADDR [--key FILE]\n' +
    '       relaypeer.mjs relay [--listen MADDR]\n' +
    '       relaypeer.mjs dial MADDR ACTION...   (ping N | echo SIZE)')
  process.exit(2)
}

async function makeNode ({ listen = [], keyFile = null }) {
  const privateKey = keyFile != null ? privateKeyFromProtobuf(readFileSync(keyFile)) : undefined
  const node = await createLibp2p({
    ...(privateKey != null ? { privateKey } : {}),
    start: false,
    addresses: { listen },
    transports: [tcp(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), ping: ping() }
  })
  await node.handle(ECHO, echoHandler, { runOnLimitedConnection: true })
  return node
}

/** The circuit relay transport of a node (its reservation store is where reservations show). */
function relayTransport (node) {
  const t = node.components.transportManager.getTransports()
    .find((x) => x[Symbol.toStringTag] === '@libp2p/circuit-relay-v2-transport')
  if (t == null) throw new Error('no circuit relay transport')
  return t
}

/** The canonical voucher payload (relay, peer, expiration: go's MarshalRecord and js's marshal). */
function voucherPayload (v) {
  const out = []
  const varint = (n) => {
    let x = BigInt(n)
    do {
      let b = Number(x & 0x7fn)
      x >>= 7n
      if (x !== 0n) b |= 0x80
      out.push(b)
    } while (x !== 0n)
  }
  const bytes = (field, b) => {
    varint(field << 3 | 2)
    varint(b.length)
    out.push(...b)
  }
  bytes(1, v.relay)
  bytes(2, v.peer)
  varint(3 << 3)
  varint(v.expiration)
  return new Uint8Array(out)
}

/**
 * Checks a reservation voucher as js decoded it (an Envelope with its ReservationVoucher payload
 * decoded): js keeps no payload bytes, so the payload is re-encoded canonically and the
 * signature verified with js's own RecordEnvelope under the voucher domain. That passes only if
 * the relay signed exactly the canonical payload with the key the envelope names.
 */
async function checkVoucher (env) {
  const publicKey = publicKeyFromProtobuf(env.publicKey)
  const payload = voucherPayload(env.payload)
  const record = new RecordEnvelope({ publicKey, payloadType: env.payloadType, payload, signature: env.signature })
  const id = (b) => peerIdFromMultihash(Digest.decode(b)).toString()
  return {
    signatureValid: await record.validate(VOUCHER_DOMAIN),
    payloadType: Buffer.from(env.payloadType).toString('hex'),
    typeOk: Buffer.from(env.payloadType).toString('hex') === VOUCHER_TYPE,
    signer: peerIdFromPublicKey(publicKey).toString(),
    relay: id(env.payload.relay),
    peer: id(env.payload.peer),
    expiration: Number(env.payload.expiration)
  }
}

function connInfo (conn) {
  return {
    conn: conn.id,
    status: conn.status,
    remotePeer: conn.remotePeer.toString(),
    remoteAddr: String(conn.remoteAddr),
    direction: conn.direction,
    limits: conn.limits == null
      ? null
      : { bytes: conn.limits.bytes != null ? Number(conn.limits.bytes) : null, seconds: conn.limits.seconds ?? null }
  }
}

async function listen (argv) {
  let relay = null
  let key = null
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--relay' && i + 1 < argv.length) relay = argv[++i]
    else if (argv[i] === '--key' && i + 1 < argv.length) key = argv[++i]
    else usage(`unexpected argument ${argv[i]}`)
  }
  if (relay == null) usage('listen needs --relay MADDR')
  const node = await makeNode({ listen: [`${relay}/p2p-circuit`], keyFile: key })
  relayTransport(node).reservationStore.addEventListener('relay:created-reservation', (evt) => {
    const r = evt.detail.details.reservation
    const ev = {
      event: 'reservation',
      relay: evt.detail.relay.toString(),
      expire: Number(r.expire),
      addrs: r.addrs.map((a) => multiaddr(a).toString()),
      voucher: null
    }
    if (r.voucher == null) {
      emit(ev)
      return
    }
    checkVoucher(r.voucher)
      .then((v) => emit({ ...ev, voucher: v }))
      .catch((e) => emit({ ...ev, voucher: { signatureValid: false, error: errText(e) } }))
  })
  node.addEventListener('connection:open', (evt) => emit({ event: 'connection', ...connInfo(evt.detail) }))
  try {
    await node.start()
  } catch (e) {
    emit({ event: 'error', error: errText(e) })
    await stopNode(node)
    process.exit(1)
  }
  emit({ event: 'ready', peerId: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) })
  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    await stopNode(node)
    process.exit(0)
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  createInterface({ input: process.stdin }).on('close', stop)
}

/** Stops the node on SIGINT, SIGTERM or the end of stdin, then exits 0. */
function stopOnSignals (node) {
  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    await stopNode(node)
    process.exit(0)
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  createInterface({ input: process.stdin }).on('close', stop)
}

async function relay (argv) {
  let listen = '/ip4/127.0.0.1/tcp/0'
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--listen' && i + 1 < argv.length) listen = argv[++i]
    else usage(`unexpected argument ${argv[i]}`)
  }
  const node = await createLibp2p({
    addresses: { listen: [listen] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), ping: ping(), relay: circuitRelayServer() }
  })
  node.addEventListener('connection:open', (evt) => emit({ event: 'connection', ...connInfo(evt.detail) }))
  await node.start()
  emit({ event: 'ready', peerId: node.peerId.toString(), addrs: node.getMultiaddrs().map(String) })
  stopOnSignals(node)
}

/** Like peer.mjs echoOnce, on a limited connection: the stream must be allowed there. */
async function echoLimited (conn, payload, signal) {
  const started = Date.now()
  const stream = await conn.newStream(ECHO, { signal, runOnLimitedConnection: true })
  const hash = createHash('sha256')
  let gotSize = 0
  const ended = new Promise((resolve, reject) => {
    stream.addEventListener('message', (evt) => {
      const bufs = evt.data instanceof Uint8Array ? [evt.data] : [...evt.data]
      for (const b of bufs) {
        hash.update(b)
        gotSize += b.byteLength
      }
    })
    stream.addEventListener('close', (evt) => (evt.error != null ? reject(evt.error) : resolve()))
    signal.addEventListener('abort', () => reject(signal.reason), { once: true })
  })
  ended.catch(() => {})
  try {
    for (let off = 0; off < payload.byteLength; off += WRITE_CHUNK) {
      if (!stream.send(payload.subarray(off, off + WRITE_CHUNK))) await stream.onDrain({ signal })
    }
    await stream.close({ signal })
    await ended
  } catch (e) {
    stream.abort(e)
    throw e
  }
  return { size: payload.byteLength, gotSize, sentSha256: sha256(payload), gotSha256: hash.digest('hex'), ms: Date.now() - started }
}

/**
 * One /ipfs/ping/1.0.0 round trip on `conn` itself (the target answers with js's ping service).
 * js's ping service would not do: it opens its stream through connectionManager.openConnection,
 * which never reuses a limited connection (findExistingConnection), so every ping would dial a
 * fresh relayed connection.
 */
async function pingOn (conn, signal) {
  const data = randomBytes(32)
  const started = Date.now()
  const stream = await conn.newStream(PING, { signal, runOnLimitedConnection: true })
  const got = []
  let n = 0
  const done = new Promise((resolve, reject) => {
    stream.addEventListener('message', (evt) => {
      const bufs = evt.data instanceof Uint8Array ? [evt.data] : [...evt.data]
      for (const b of bufs) {
        got.push(Buffer.from(b))
        n += b.byteLength
      }
      if (n >= 32) resolve()
    })
    stream.addEventListener('close', (evt) => reject(evt.error ?? new Error('ping stream closed before the answer')))
    signal.addEventListener('abort', () => reject(signal.reason), { once: true })
  })
  done.catch(() => {})
  stream.send(data)
  await done
  const rtt = Date.now() - started
  await stream.close({ signal })
  if (!Buffer.concat(got).equals(data)) throw new Error('the ping answer differs from what was sent')
  return rtt
}

async function runAction (node, conn, text) {
  const [name, arg] = text.trim().split(/\s+/)
  const n = Number(arg)
  const out = { event: 'result', action: text, ok: false }
  const signal = AbortSignal.timeout(ACTION_TIMEOUT_MS)
  try {
    if (name === 'ping' && Number.isSafeInteger(n)) {
      out.rttsMs = []
      for (let i = 0; i < n; i++) out.rttsMs.push(await pingOn(conn, signal))
      out.ok = out.rttsMs.length === n
    } else if (name === 'echo' && Number.isSafeInteger(n)) {
      Object.assign(out, await echoLimited(conn, randomBytes(n), signal))
      out.ok = out.gotSize === out.size && out.gotSha256 === out.sentSha256
      if (!out.ok) out.error = `echoed ${out.gotSize} bytes (sha256 ${out.gotSha256}) of ${out.size} (sha256 ${out.sentSha256})`
    } else {
      out.error = `unknown action "${text}" (ping N | echo SIZE)`
    }
  } catch (e) {
    out.ok = false
    out.error = errText(e)
  }
  return { ...out, ...connInfo(conn) }
}

async function dial (argv) {
  if (argv.length < 1) usage('dial needs MADDR')
  const [target, ...actions] = argv
  const node = await makeNode({})
  await node.start()
  let ok = false
  try {
    let conn
    const started = Date.now()
    try {
      conn = await node.dial(multiaddr(target), { signal: AbortSignal.timeout(30_000) })
    } catch (e) {
      emit({ event: 'result', action: 'dial', ok: false, error: errText(e), ms: Date.now() - started })
      return
    }
    emit({ event: 'result', action: 'dial', ok: true, ms: Date.now() - started, ...connInfo(conn) })
    ok = true
    for (const a of actions) {
      const r = await runAction(node, conn, a)
      emit(r)
      if (!r.ok) {
        ok = false
        break
      }
    }
  } finally {
    await stopNode(node)
    process.exit(ok ? 0 : 1)
  }
}

const [mode, ...rest] = process.argv.slice(2)
if (mode === 'listen') await listen(rest)
else if (mode === 'relay') await relay(rest)
else if (mode === 'dial') await dial(rest)
else usage(mode == null ? null : `unknown mode ${mode}`)
