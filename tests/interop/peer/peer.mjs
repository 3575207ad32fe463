// The js-libp2p peer shared by node.mjs (the foreign peer ringp2p is tested against) and
// standin.mjs (js playing the ringp2p tool, to prove the driver): node construction, the echo
// protocol, the client actions and their one-line JSON results.
//
// Everything here is real js-libp2p 3.x (tcp; noise, tls or plaintext; yamux or mplex;
// identify + push, ping, the connection monitor) with its defaults, except the limits named
// below, which are raised only so that the test's own bursts are not refused by js before they
// reach the peer under test. Every peer also serves /echo/1.0.0 and /perf/1.0.0 (perf.mjs).

import { createHash, randomBytes } from 'node:crypto'
import { setMaxListeners } from 'node:events'
import { readFileSync } from 'node:fs'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { mplex } from '@libp2p/mplex'
import { plaintext } from '@libp2p/plaintext'
import { tls } from '@libp2p/tls'
import { privateKeyFromProtobuf, publicKeyFromProtobuf } from '@libp2p/crypto/keys'
import { identify, identifyPush } from '@libp2p/identify'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { PERF, perfHandler, perfOnce } from './perf.mjs'

export const ECHO = '/echo/1.0.0'
export const PING = '/ipfs/ping/1.0.0'
export { PERF }

// The connection encrypters and stream muxers a peer can be given, by their command-line names
// (the ringp2p tool's names), with the protocol IDs they negotiate.
export const SECURITY = {
  noise: { make: () => noise(), id: '/noise' },
  tls: { make: () => tls(), id: '/tls/1.0.0' },
  plaintext: { make: () => plaintext(), id: '/plaintext/2.0.0' }
}
export const MUXERS = {
  yamux: { make: () => yamux(), id: '/yamux/1.0.0' },
  mplex: { make: (o) => mplex(o), id: '/mplex/6.7.0' }
}

// js-mplex has no flow control, so it defends itself by closing the whole connection when the
// remote opens more than `disconnectThreshold` new streams in one second (default 5, counted
// on every NEW_STREAM frame, @libp2p/mplex mplex.js), and likewise when more than that many
// frames a second arrive for streams it no longer knows. A ringp2p peer that opens identify,
// ping, echo and perf streams in quick succession (or `ringp2p perf --streams N`) trips it:
// that is js's policy, not a fault of the peer under test, so the test peers raise it to this
// by default. `mplexDisconnectThreshold: null` (node.mjs --mplex-disconnect-threshold
// js-default) keeps js's own default, to show what an unconfigured js-libp2p does.
export const MPLEX_DISCONNECT_THRESHOLD = 100_000

// echo-many (and ringp2p perf --streams) open up to this many streams on one connection; js's
// default per-protocol cap (64 outbound, 32 inbound) would refuse them on the js side.
const MAX_ECHO_STREAMS = 1024
// Writes are cut into pieces of this size so that backpressure (send() → false) is honoured.
const WRITE_CHUNK = 64 * 1024
// Per-action deadline: generous, because the peer under test may be a sanitizer build.
const ACTION_TIMEOUT_MS = 120_000
// Bytes per millisecond (5 MB/s) a perf action may be slower than, beyond ACTION_TIMEOUT_MS.
const PERF_MIN_RATE = 5_000
// How long js's automatic identify of a new connection may take.
const AUTO_IDENTIFY_WAIT_MS = 15_000

/** Prints one JSON object as one stdout line. */
export function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

export const errText = (e) => {
  // js-libp2p sometimes rejects with the stream's close event rather than an Error.
  if (typeof Event !== 'undefined' && e instanceof Event) {
    return `"${e.type}" event${e.error != null ? `: ${errText(e.error)}` : ' (no error attached)'}`
  }
  return (e?.name != null && e.name !== 'Error' ? `${e.name}: ` : '') + (e?.message ?? String(e))
}

export function sha256 (bytes) {
  return createHash('sha256').update(bytes).digest('hex')
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Key type names as ringp2p prints them (`ringp2p id --json`): lower case. */
export const keyTypeName = (t) => String(t).toLowerCase()

/** The TCP local address of a js connection (what the remote should observe), or null. */
export function localAddrOf (conn) {
  const s = conn?.maConn?.socket
  if (s?.localAddress == null || s.localPort == null) return null
  const fam = s.localFamily === 'IPv6' || s.localAddress.includes(':') ? 'ip6' : 'ip4'
  return `/${fam}/${s.localAddress}/tcp/${s.localPort}`
}

/** A multiaddr's text without a trailing /p2p/<id>. */
export const withoutPeer = (ma) => String(ma).replace(/\/p2p\/[^/]+$/, '')

/**
 * Parses a comma-separated preference list of names from `table` (SECURITY or MUXERS).
 * Throws on an empty list or an unknown name.
 */
export function parseList (text, table, what) {
  const names = String(text).split(',').map((x) => x.trim()).filter((x) => x !== '')
  if (names.length === 0) throw new Error(`${what}: empty list`)
  for (const n of names) {
    if (table[n] == null) throw new Error(`${what}: unknown "${n}" (${Object.keys(table).join(', ')})`)
  }
  return names
}

/**
 * Creates and starts a js-libp2p node. `keyFile`: libp2p protobuf PrivateKey bytes (the
 * format of `ringp2p keygen`); absent: a fresh Ed25519 key. `agent`: the identify agent
 * version (absent: js-libp2p's own "js-libp2p/<version> node/<version>").
 * `security`, `muxer`: comma-separated preference lists of SECURITY and MUXERS names; the node
 * offers only those. `mplexDisconnectThreshold`: see MPLEX_DISCONNECT_THRESHOLD (null: js's
 * default). `onMonitorPing(conn, rttMs)` is called each time js's connection monitor
 * completes a ping; `onPerfServed(conn, r)` each time a /perf/1.0.0 stream served ends
 * (perf.mjs perfHandler); `onEchoServed(conn, r)` each time an /echo/1.0.0 stream served ends
 * (echoHandler).
 */
export async function createPeer ({
  keyFile = null, listen = [], agent = null, onMonitorPing = null, onPerfServed = null, onEchoServed = null,
  security = 'noise',
  muxer = 'yamux', mplexDisconnectThreshold = MPLEX_DISCONNECT_THRESHOLD
} = {}) {
  const privateKey = keyFile != null ? privateKeyFromProtobuf(readFileSync(keyFile)) : undefined
  const mplexInit = mplexDisconnectThreshold != null ? { disconnectThreshold: mplexDisconnectThreshold } : {}
  const node = await createLibp2p({
    ...(privateKey != null ? { privateKey } : {}),
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: parseList(security, SECURITY, 'security').map((n) => SECURITY[n].make()),
    streamMuxers: parseList(muxer, MUXERS, 'muxer').map((n) => MUXERS[n].make(mplexInit)),
    // js refuses more than 5 inbound connections per second from one host and more than 10
    // pending upgrades; the several-peers cases dial from 127.0.0.1 in a burst.
    connectionManager: { inboundConnectionThreshold: 1000, maxIncomingPendingConnections: 100 },
    ...(agent != null ? { nodeInfo: { userAgent: agent } } : {}),
    services: { identify: identify(), identifyPush: identifyPush(), ping: ping() }
  })
  await node.handle(ECHO, (stream, conn) => echoHandler(stream, conn, onEchoServed), {
    maxInboundStreams: MAX_ECHO_STREAMS,
    maxOutboundStreams: MAX_ECHO_STREAMS
  })
  await node.handle(PERF, perfHandler(onPerfServed), {
    maxInboundStreams: MAX_ECHO_STREAMS,
    maxOutboundStreams: MAX_ECHO_STREAMS
  })
  node.addEventListener('connection:open', (evt) => instrument(evt.detail, onMonitorPing))
  // The identify js runs by itself on every new connection, kept per connection: asking again
  // while it runs would open a second identify stream, which js (like most peers) refuses.
  const identified = new Map()
  node.identifiedOn = (conn) => {
    if (!identified.has(conn.id)) identified.set(conn.id, Promise.withResolvers())
    return identified.get(conn.id).promise
  }
  node.addEventListener('peer:identify', (evt) => {
    const id = evt.detail.connection?.id
    if (id == null) return
    if (!identified.has(id)) identified.set(id, Promise.withResolvers())
    identified.get(id).resolve(evt.detail)
  })
  node.addEventListener('connection:close', (evt) => identified.delete(evt.detail.id))
  return node
}

/**
 * Counts the pings js's connection monitor completes on `conn`. The monitor (libp2p
 * connection-monitor.js) has no event; it assigns `conn.rtt` after each answered ping, and
 * also after a ping the peer refused as an unsupported protocol, which is told apart by
 * watching the ping stream it opened just before.
 */
function instrument (conn, onMonitorPing) {
  const stats = { ok: 0, unsupported: 0, lastOpenOk: false }
  conn.monitorStats = stats
  const newStream = conn.newStream
  conn.newStream = async (protocols, options) => {
    const isPing = protocols === PING || (Array.isArray(protocols) && protocols.length === 1 && protocols[0] === PING)
    try {
      const s = await newStream(protocols, options)
      if (isPing) stats.lastOpenOk = true
      return s
    } catch (e) {
      if (isPing) stats.lastOpenOk = false
      throw e
    }
  }
  let rtt
  Object.defineProperty(conn, 'rtt', {
    configurable: true,
    enumerable: true,
    get: () => rtt,
    set: (v) => {
      rtt = v
      if (stats.lastOpenOk) {
        stats.ok++
        onMonitorPing?.(conn, v)
      } else {
        stats.unsupported++
      }
    }
  })
}

/**
 * /echo/1.0.0: copies the stream back until the writer closes, then closes. `onServed(conn,
 * { ok, bytes, error? })`, if given, is called when it is done: ok once it has seen the end of
 * the stream and closed its own side, with the bytes it read.
 */
export async function echoHandler (stream, conn, onServed = null) {
  let bytes = 0
  try {
    for await (const chunk of stream) {
      bytes += chunk.byteLength
      if (!stream.send(chunk)) await stream.onDrain()
    }
    await stream.close()
    onServed?.(conn, { ok: true, bytes })
  } catch (e) {
    onServed?.(conn, { ok: false, bytes, error: errText(e) })
    stream.abort(e)
  }
}

/** Feeds every Uint8Array of a stream message (Uint8Array or Uint8ArrayList) to `fn`. */
function eachBuf (data, fn) {
  if (data instanceof Uint8Array) fn(data)
  else for (const b of data) fn(b)
}

/**
 * Sends `payload` on a new /echo/1.0.0 stream of `conn`, reading while writing (js aborts a
 * stream whose unread buffer passes 4 MiB), half-closes, and waits for the peer's close.
 * Returns { size, gotSize, sentSha256, gotSha256, ms }; throws if the stream fails.
 */
export async function echoOnce (conn, payload, signal) {
  const started = Date.now()
  const stream = await conn.newStream(ECHO, { signal })
  const hash = createHash('sha256')
  let gotSize = 0
  const ended = new Promise((resolve, reject) => {
    stream.addEventListener('message', (evt) => eachBuf(evt.data, (b) => {
      hash.update(b)
      gotSize += b.byteLength
    }))
    stream.addEventListener('end', () => resolve())
    stream.addEventListener('close', (evt) => {
      if (evt.error != null) reject(evt.error)
      else resolve()
    })
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
  if (stream.status === 'aborted' || stream.status === 'reset') {
    throw new Error(`echo stream ended with status ${stream.status}`)
  }
  return {
    size: payload.byteLength,
    gotSize,
    sentSha256: sha256(payload),
    gotSha256: hash.digest('hex'),
    ms: Date.now() - started
  }
}

/**
 * What js learned about the remote peer of `conn`: the identify js ran when the connection
 * opened, the peer store's record, and a second identify asked for now (must agree).
 */
export async function identifyView (node, conn, signal) {
  const r = await Promise.race([
    node.identifiedOn(conn),
    sleep(AUTO_IDENTIFY_WAIT_MS).then(() => {
      throw new Error(`js's own identify of the connection did not complete in ${AUTO_IDENTIFY_WAIT_MS} ms`)
    })
  ])
  const again = await node.services.identify.identify(conn, { signal })
  let keyType = null
  let keyMatchesPeerId = false
  if (r.publicKey != null) {
    const pub = publicKeyFromProtobuf(r.publicKey)
    keyType = keyTypeName(pub.type)
    keyMatchesPeerId = peerIdFromPublicKey(pub).equals(r.peerId)
  }
  const stored = await node.peerStore.get(conn.remotePeer)
  const meta = (k) => {
    const v = stored.metadata.get(k)
    return v == null ? null : new TextDecoder().decode(v)
  }
  return {
    peerId: r.peerId.toString(),
    agentVersion: r.agentVersion ?? null,
    protocolVersion: r.protocolVersion ?? null,
    protocols: [...r.protocols].sort(),
    listenAddrs: r.listenAddrs.map(String),
    observedAddr: r.observedAddr != null ? String(r.observedAddr) : null,
    keyType,
    keyMatchesPeerId,
    signedPeerRecord: r.signedPeerRecord != null,
    again: { agentVersion: again.agentVersion ?? null, protocols: [...again.protocols].sort() },
    // What the local end of this connection really is, to compare with observedAddr.
    localAddr: localAddrOf(conn),
    store: {
      agentVersion: meta('AgentVersion'),
      protocolVersion: meta('ProtocolVersion'),
      protocols: [...stored.protocols].sort(),
      addrs: stored.addresses.map((a) => String(a.multiaddr))
    }
  }
}

/** The connection's identity, reported with every result so the driver sees reconnects. */
export function connView (conn) {
  return {
    conn: conn.id,
    status: conn.status,
    remotePeer: conn.remotePeer.toString(),
    remoteAddr: String(conn.remoteAddr),
    localAddr: localAddrOf(conn),
    direction: conn.direction,
    security: conn.encryption ?? null,
    muxer: conn.multiplexer ?? null,
    monitorPingsOk: conn.monitorStats?.ok ?? 0,
    monitorPingsUnsupported: conn.monitorStats?.unsupported ?? 0
  }
}

/**
 * Parses the action scripts of node.mjs: "ping N", "identify", "echo SIZE",
 * "echo-many N SIZE", "hold SECONDS", "perf UPLOAD DOWNLOAD". Throws on anything else.
 */
export function parseAction (text) {
  const [name, ...args] = text.trim().split(/\s+/)
  const ints = args.map((a) => {
    if (!/^\d+$/.test(a) || !Number.isSafeInteger(Number(a))) {
      throw new Error(`action "${text}": "${a}" is not a non-negative integer below 2^53`)
    }
    return Number(a)
  })
  const arity = { ping: 1, identify: 0, echo: 1, 'echo-many': 2, hold: 1, perf: 2 }[name]
  if (arity == null) {
    throw new Error(`unknown action "${text}" (ping N | identify | echo SIZE | echo-many N SIZE | hold SECONDS | perf UPLOAD DOWNLOAD)`)
  }
  if (ints.length !== arity) throw new Error(`action "${text}" takes ${arity} argument(s)`)
  return { name, args: ints, text }
}

/**
 * Runs one action on `conn` (an open connection of `node`) and returns its result object:
 * { action, ok, error?, ...details, ...connView }. Never throws.
 */
export async function runAction (node, conn, action) {
  // A hold lasts its time; a perf transfer may take a millisecond per PERF_MIN_RATE bytes.
  const extraMs = action.name === 'hold'
    ? action.args[0] * 1000
    : action.name === 'perf' ? Math.ceil((action.args[0] + action.args[1]) / PERF_MIN_RATE) : 0
  const signal = AbortSignal.timeout(ACTION_TIMEOUT_MS + extraMs)
  // echo-many puts one listener per stream on it.
  setMaxListeners(Infinity, signal)
  const started = Date.now()
  const out = { action: action.text, ok: false }
  try {
    switch (action.name) {
      case 'ping': {
        // js's own ping service, to the peer (it reuses this connection).
        out.rttsMs = []
        for (let i = 0; i < action.args[0]; i++) {
          out.rttsMs.push(await node.services.ping.ping(conn.remotePeer, { signal }))
        }
        out.ok = out.rttsMs.length === action.args[0]
        break
      }
      case 'identify': {
        out.identify = await identifyView(node, conn, signal)
        out.ok = true
        break
      }
      case 'echo': {
        const r = await echoOnce(conn, randomBytes(action.args[0]), signal)
        Object.assign(out, r)
        out.ok = r.gotSize === r.size && r.gotSha256 === r.sentSha256
        if (!out.ok) out.error = `echoed ${r.gotSize} bytes with sha256 ${r.gotSha256}; sent ${r.size} with sha256 ${r.sentSha256}`
        break
      }
      case 'echo-many': {
        const [n, size] = action.args
        // Distinct payloads: a stream that received another stream's bytes is caught.
        const results = await Promise.allSettled(
          Array.from({ length: n }, () => echoOnce(conn, randomBytes(size), signal)))
        out.streams = n
        out.size = size
        out.okStreams = 0
        out.failures = []
        for (const [i, r] of results.entries()) {
          if (r.status === 'fulfilled' && r.value.gotSize === size && r.value.gotSha256 === r.value.sentSha256) {
            out.okStreams++
          } else if (out.failures.length < 5) {
            out.failures.push(r.status === 'fulfilled'
              ? `stream ${i}: got ${r.value.gotSize} bytes sha256 ${r.value.gotSha256}, sent ${size} sha256 ${r.value.sentSha256}`
              : `stream ${i}: ${errText(r.reason)}`)
          }
        }
        out.ok = out.okStreams === n
        if (!out.ok) out.error = `${n - out.okStreams} of ${n} streams failed, e.g. ${out.failures.join('; ')}`
        break
      }
      case 'perf': {
        const [upload, download] = action.args
        Object.assign(out, await perfOnce(conn, upload, download, signal))
        out.ok = out.uploadBytes === upload && out.downloadBytes === download
        if (!out.ok) out.error = `perf moved ${out.uploadBytes} up, ${out.downloadBytes} down; asked ${upload} up, ${download} down`
        break
      }
      case 'hold': {
        const before = conn.monitorStats?.ok ?? 0
        const deadline = Date.now() + action.args[0] * 1000
        while (Date.now() < deadline && conn.status === 'open') {
          await sleep(Math.min(250, deadline - Date.now()))
        }
        out.heldMs = Date.now() - started
        out.monitorPingsDuringHold = (conn.monitorStats?.ok ?? 0) - before
        out.ok = conn.status === 'open'
        if (!out.ok) out.error = `the connection closed during the hold (status ${conn.status})`
        break
      }
    }
  } catch (e) {
    out.ok = false
    out.error = errText(e)
  }
  out.ms = out.ms ?? Date.now() - started
  // The action must not have replaced the connection.
  const conns = node.getConnections(conn.remotePeer).map((c) => c.id)
  out.connsToPeer = conns
  Object.assign(out, connView(conn))
  if (out.ok && (conn.status !== 'open' || conns.length !== 1 || conns[0] !== conn.id)) {
    out.ok = false
    out.error = `after the action the connection ${conn.id} is ${conn.status} and js has connections ${JSON.stringify(conns)} to the peer`
  }
  return out
}

/** Parses a dial target: must name a peer (/p2p/<id>) so that noise checks who answers. */
export function parseTarget (text) {
  const ma = multiaddr(text)
  if (!ma.getComponents().some((c) => c.name === 'p2p')) throw new Error(`${text}: the address must end in /p2p/<peer id>`)
  return ma
}

/**
 * Stops the node within a bound: js-libp2p's stop waits for graceful closes, which a broken
 * peer could stall.
 */
export async function stopNode (node, ms = 5000) {
  await Promise.race([node.stop().catch(() => {}), sleep(ms)])
}
