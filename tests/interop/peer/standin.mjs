// js-libp2p playing the ringp2p tool, for `host.mjs --js-only`: it implements the tool's
// contract (listen, ping, identify, stream, perf; see host.mjs TOOL) so that every host case can be
// run js↔js first, which proves the driver and its checks before ringp2p is in the loop.
// It is not under test. Its agent version is "ringp2p/0.0.0-js-standin" so that the checks
// that ask for a ringp2p agent apply to it unchanged.
//
// With STANDIN_LIE=all (`host.mjs --self-test`) it gets things wrong on purpose, each lie aimed
// at some checks; STANDIN_LIE=NAME,... tells only those lies (to see one check catch one):
//   agent     a foreign agent version          noping   no /ipfs/ping/1.0.0 handler
//   nopush    no identify push handler         echo     the echo handler flips a bit
//   events    "outbound" for inbound connections  noclose  no closing events
//   signal    exit 1 on SIGINT/SIGTERM         identify `identify` drops a protocol and
//   ping      bad ping sequence, zero RTT               gives a wrong observed port
//   stream    `stream` corrupts what it prints stallping  ping is advertised, never answered
//   idevent   `listen` reports a wrong agent for the peers it identified
//   perf      `perf` uploads one byte less than it reports; `listen`'s perf server sends one
//             byte less than asked
//   secmux    --security and --muxer are ignored: every security and muxer is offered
//   lazyfin   `stream --repeat`: the streams after the first are never half-closed (as a FIN
//             js-libp2p loses when it comes with a lazy proposal)
// Every host check must fail against all of them.
//
//   standin.mjs listen [--key FILE] [--listen MADDR]... [--security LIST] [--muxer LIST]
//                      [--shards N] [--json]
//   standin.mjs ping MADDR [--count N] [--interval SEC] [--json]
//   standin.mjs identify MADDR [--json]
//   standin.mjs stream MADDR PROTOCOL [--repeat N]
//   standin.mjs perf MADDR [--upload SIZE] [--download SIZE] [--streams N] [--json]
//   dialing commands also take --key FILE, --security LIST, --muxer LIST, --timeout SEC.
//   --security and --muxer name what the node offers (noise, tls, plaintext; yamux, mplex).

import { randomBytes } from 'node:crypto'
import { multiaddr } from '@multiformats/multiaddr'
import { publicKeyFromProtobuf } from '@libp2p/crypto/keys'
import {
  createPeer, ECHO, emit, errText, keyTypeName, localAddrOf, MUXERS, parseList, parseTarget, PERF, PING,
  SECURITY, sleep, stopNode
} from './peer.mjs'
import { perfOnce } from './perf.mjs'

const LIES = new Set((process.env.STANDIN_LIE ?? '').split(',').filter((x) => x !== ''))
const lie = (name) => LIES.has('all') || LIES.has(name)
const AGENT = lie('agent') ? 'ringp2q/0.0.0-js-liar' : 'ringp2p/0.0.0-js-standin'

/** The lying stand-in's node: no ping or push handler, an echo that flips one bit. */
async function spoil (node) {
  if (lie('noping')) await node.unhandle(PING)
  if (lie('stallping') && !lie('noping')) {
    await node.handle(PING, async (stream) => {
      for await (const chunk of stream) void chunk
    }, { force: true })
  }
  if (lie('nopush')) await node.unhandle('/ipfs/id/push/1.0.0')
  if (lie('perf')) {
    // A perf server that sends one byte less than asked.
    await node.handle(PERF, async (stream) => {
      let head = Buffer.alloc(0)
      try {
        for await (const chunk of stream) {
          if (head.length < 8) head = Buffer.concat([head, chunk instanceof Uint8Array ? chunk : chunk.subarray()])
        }
        const want = Number(head.readBigUInt64BE(0))
        const block = new Uint8Array(65536)
        for (let left = Math.max(0, want - 1); left > 0; left -= Math.min(left, block.length)) {
          if (!stream.send(block.subarray(0, Math.min(left, block.length)))) await stream.onDrain()
        }
        await stream.close()
      } catch (e) {
        stream.abort(e)
      }
    }, { force: true, maxInboundStreams: 1024, maxOutboundStreams: 1024 })
  }
  if (!lie('echo')) return node
  await node.handle(ECHO, async (stream) => {
    let first = true
    try {
      for await (const chunk of stream) {
        const b = chunk instanceof Uint8Array ? new Uint8Array(chunk) : chunk.subarray()
        if (first && b.length > 0) b[b.length >> 1] ^= 1
        first = false
        if (!stream.send(b)) await stream.onDrain()
      }
      await stream.close()
    } catch (e) {
      stream.abort(e)
    }
  }, { force: true, maxInboundStreams: 1024, maxOutboundStreams: 1024 })
  return node
}

function fail (message, code = 2) {
  console.error(`ringp2p (js stand-in): ${message}`)
  process.exit(code)
}

/** "64M", "1G", "1000": bytes, suffixes K, M, G, T powers of 1024 (like the ringp2p tool). */
function size (flag, text) {
  const m = /^(\d+)([KMGT](i?B)?)?$/i.exec(text)
  if (m == null) fail(`${flag} wants a size (1000, 64K, 64M, 1G)`)
  const shift = { '': 0, k: 10, m: 20, g: 30, t: 40 }[(m[2] ?? '').slice(0, 1).toLowerCase()]
  const v = Number(m[1]) * 2 ** shift
  if (!Number.isSafeInteger(v)) fail(`${flag}: ${text} is too large`)
  return v
}

function parseArgs (argv) {
  const o = {
    key: null,
    listen: [],
    json: false,
    count: 4,
    interval: 1,
    timeout: 10,
    security: 'noise',
    muxer: 'yamux',
    upload: 1 << 30,
    download: 0,
    streams: 1,
    repeat: null,
    positional: []
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const value = () => {
      if (i + 1 >= argv.length) fail(`${a} needs a value`)
      return argv[++i]
    }
    const number = () => {
      const v = Number(value())
      if (!Number.isFinite(v) || v < 0) fail(`${a}: not a number`)
      return v
    }
    switch (a) {
      case '--key': o.key = value(); break
      case '--listen': o.listen.push(value()); break
      case '--json': o.json = true; break
      case '--count': o.count = number(); break
      case '--interval': o.interval = number(); break
      case '--timeout': o.timeout = number(); break
      case '--shards': number(); break
      case '--security':
      case '--muxer': {
        const v = value()
        try {
          parseList(v, a === '--security' ? SECURITY : MUXERS, a)
        } catch (e) {
          fail(errText(e))
        }
        if (!lie('secmux')) o[a.slice(2)] = v
        else o[a.slice(2)] = Object.keys(a === '--security' ? SECURITY : MUXERS).join(',')
        break
      }
      case '--upload':
      case '--download': o[a.slice(2)] = size(a, value()); break
      case '--streams': o.streams = number(); break
      case '--repeat': o.repeat = number(); break
      default:
        if (a.startsWith('--')) fail(`unknown flag ${a}`)
        o.positional.push(a)
    }
  }
  return o
}

const connEvent = (event, c) => ({
  event,
  peerId: c.remotePeer.toString(),
  remoteAddr: String(c.remoteAddr),
  direction: lie('events') ? 'outbound' : c.direction,
  relayed: c.limits != null,
  security: c.encryption ?? null,
  muxer: c.multiplexer ?? null
})

async function listen (o) {
  const node = await spoil(await createPeer({
    keyFile: o.key,
    listen: o.listen.length > 0 ? o.listen : ['/ip4/127.0.0.1/tcp/0'],
    agent: AGENT,
    security: o.security,
    muxer: o.muxer
  }))
  const out = (obj, text) => (o.json ? emit(obj) : console.log(text))
  node.addEventListener('connection:open', (evt) => {
    out(connEvent('connection', evt.detail), `connection ${evt.detail.remotePeer} ${evt.detail.remoteAddr}`)
  })
  node.addEventListener('peer:identify', (evt) => {
    const r = evt.detail
    const agentVersion = lie('idevent') ? 'go-libp2p/0.0.0' : r.agentVersion ?? ''
    out({ event: 'identify', peerId: r.peerId.toString(), agentVersion },
      `identified ${r.peerId}: ${r.agentVersion}`)
  })
  node.addEventListener('connection:close', (evt) => {
    if (lie('noclose')) return
    out(connEvent('disconnection', evt.detail), `disconnection ${evt.detail.remotePeer}`)
  })
  const addrs = node.getMultiaddrs().map(String)
  out({ event: 'ready', peerId: node.peerId.toString(), addrs }, `listening as ${node.peerId} on ${addrs.join(' ')}`)
  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    await stopNode(node)
    process.exit(lie('signal') ? 1 : 0)
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}

/** Dials for the dialing commands; exits 1 with a reason when it cannot. */
async function connect (o, target) {
  let ma
  try {
    ma = parseTarget(target)
  } catch (e) {
    fail(errText(e))
  }
  const node = await spoil(await createPeer({ keyFile: o.key, agent: AGENT, security: o.security, muxer: o.muxer }))
  try {
    const conn = await node.dial(ma, { signal: AbortSignal.timeout(o.timeout * 1000) })
    return { node, conn }
  } catch (e) {
    await stopNode(node)
    fail(`dial ${target}: ${errText(e)}`, 1)
  }
}

async function pingCmd (o) {
  if (o.positional.length !== 1) fail('usage: ping MADDR [--count N] [--interval SEC] [--json]')
  const { node, conn } = await connect(o, o.positional[0])
  const rtts = []
  let error = null
  try {
    // One stream, one 32-byte round per ping (ping.md allows repeating on a stream).
    const stream = await conn.newStream(PING, { signal: AbortSignal.timeout(o.timeout * 1000) })
    let got = Buffer.alloc(0)
    let wake = null
    stream.addEventListener('message', (evt) => {
      const bufs = evt.data instanceof Uint8Array ? [evt.data] : [...evt.data]
      got = Buffer.concat([got, ...bufs])
      wake?.()
    })
    stream.addEventListener('close', () => wake?.())
    for (let seq = 1; seq <= o.count; seq++) {
      if (seq > 1) await sleep(o.interval * 1000)
      const data = randomBytes(32)
      const t0 = process.hrtime.bigint()
      stream.send(data)
      const deadline = Date.now() + o.timeout * 1000
      while (got.byteLength < 32 && stream.status === 'open' && Date.now() < deadline) {
        await new Promise((resolve) => {
          wake = resolve
          setTimeout(resolve, 100)
        })
      }
      if (got.byteLength < 32) throw new Error(`ping ${seq}: no answer (stream ${stream.status})`)
      const echoed = got.subarray(0, 32)
      got = got.subarray(32)
      if (!echoed.equals(data)) throw new Error(`ping ${seq}: wrong payload echoed`)
      const rttUs = Number((process.hrtime.bigint() - t0) / 1000n)
      rtts.push(rttUs)
      if (o.json) emit({ event: 'ping', seq: lie('ping') ? seq * 2 : seq, rttUs: lie('ping') ? 0 : rttUs, relayed: conn.limits != null })
      else console.log(`ping ${seq}: ${rttUs} us`)
    }
    await stream.close()
  } catch (e) {
    error = errText(e)
  }
  const summary = {
    event: 'summary',
    sent: o.count,
    received: rtts.length,
    minUs: rtts.length ? Math.min(...rtts) : null,
    avgUs: rtts.length ? Math.round(rtts.reduce((a, b) => a + b, 0) / rtts.length) : null,
    maxUs: rtts.length ? Math.max(...rtts) : null,
    ...(error != null ? { error } : {})
  }
  if (o.json) emit(summary)
  else console.log(`${summary.received}/${summary.sent} answered`)
  if (error != null) console.error(error)
  await stopNode(node)
  process.exit(rtts.length === o.count ? 0 : 1)
}

async function identifyCmd (o) {
  if (o.positional.length !== 1) fail('usage: identify MADDR [--json]')
  const { node, conn } = await connect(o, o.positional[0])
  let code = 0
  try {
    // The identify js ran by itself when the connection opened (a second one at the same
    // time would be refused by the peer).
    const r = await Promise.race([
      node.identifiedOn(conn),
      sleep(o.timeout * 1000).then(() => { throw new Error('no identify') })
    ])
    const v = {
      peerId: r.peerId.toString(),
      agentVersion: r.agentVersion ?? null,
      protocolVersion: r.protocolVersion ?? null,
      protocols: r.protocols,
      listenAddrs: r.listenAddrs.map(String),
      observedAddr: r.observedAddr != null ? String(r.observedAddr).replace(/\/p2p\/[^/]+$/, '') : null,
      keyType: r.publicKey != null ? keyTypeName(publicKeyFromProtobuf(r.publicKey).type) : null
    }
    if (lie('identify')) {
      v.protocols = v.protocols.filter((p) => p !== PING)
      v.observedAddr = String(multiaddr(v.observedAddr).decapsulate('/tcp')) + '/tcp/1'
    }
    if (o.json) emit(v)
    else for (const [k, val] of Object.entries(v)) console.log(`${k}: ${Array.isArray(val) ? val.join(' ') : val}`)
  } catch (e) {
    console.error(`identify: ${errText(e)} (local ${localAddrOf(conn)})`)
    code = 1
  }
  await stopNode(node)
  process.exit(code)
}

/**
 * One stream of `protocol` on `conn`: the chunks of `source` into it, then (unless `halfClose`
 * is false) its half-close; what comes back to stdout until the peer's end.
 */
async function oneStream (o, conn, protocol, source, halfClose = true) {
  const stream = await conn.newStream(protocol, { signal: AbortSignal.timeout(o.timeout * 1000) })
  const ended = new Promise((resolve, reject) => {
    stream.addEventListener('message', (evt) => {
      const bufs = evt.data instanceof Uint8Array ? [evt.data] : [...evt.data]
      for (const b of bufs) process.stdout.write(lie('stream') ? b.map((x) => x ^ 0x80) : b)
    })
    stream.addEventListener('end', () => resolve())
    stream.addEventListener('close', (evt) => (evt.error != null ? reject(evt.error) : resolve()))
  })
  ended.catch(() => {})
  for await (const chunk of source) {
    if (!stream.send(chunk)) await stream.onDrain()
  }
  if (halfClose) await stream.close()
  await ended
  if (stream.status === 'aborted' || stream.status === 'reset') throw new Error(`stream ${stream.status}`)
}

async function streamCmd (o) {
  if (o.positional.length !== 2) fail('usage: stream MADDR PROTOCOL [--repeat N]')
  const [target, protocol] = o.positional
  // --repeat N: stdin whole, then N streams in turn on one connection, the ones after the
  // first once the peer's identify is in (the tool's lazy opens).
  let payload = null
  if (o.repeat != null) {
    const chunks = []
    for await (const chunk of process.stdin) chunks.push(chunk)
    payload = Buffer.concat(chunks)
  }
  const { node, conn } = await connect(o, target)
  let code = 0
  try {
    if (payload == null) {
      await oneStream(o, conn, protocol, process.stdin)
    } else {
      for (let i = 0; i < o.repeat; i++) {
        if (i === 1) {
          await Promise.race([
            node.identifiedOn(conn),
            sleep(o.timeout * 1000).then(() => { throw new Error('--repeat: no identify from the peer') })
          ])
        }
        // The liar loses the half-close of the streams after the first.
        await oneStream(o, conn, protocol, payload.length > 0 ? [payload] : [], !(lie('lazyfin') && i > 0))
      }
    }
    await new Promise((resolve) => process.stdout.write('', resolve))
  } catch (e) {
    console.error(`stream: ${errText(e)}`)
    code = 1
  }
  await stopNode(node)
  process.exit(code)
}

async function perfCmd (o) {
  if (o.positional.length !== 1) fail('usage: perf MADDR [--upload SIZE] [--download SIZE] [--streams N] [--json]')
  const { node, conn } = await connect(o, o.positional[0])
  const t0 = process.hrtime.bigint()
  // What this client uploads; the liar uploads one byte less and reports what was asked.
  const upload = lie('perf') ? Math.max(0, o.upload - 1) : o.upload
  const results = await Promise.allSettled(Array.from({ length: o.streams }, () =>
    perfOnce(conn, upload, o.download, AbortSignal.timeout(Math.ceil(o.timeout * 1000 + (o.upload + o.download) / 5000)))))
  const secs = Number(process.hrtime.bigint() - t0) / 1e9
  let up = 0
  let down = 0
  let code = 0
  for (const [i, r] of results.entries()) {
    if (r.status === 'rejected') {
      console.error(`ringp2p perf: stream ${i} failed: ${errText(r.reason)}`)
      code = 1
      continue
    }
    up += lie('perf') ? o.upload : r.value.uploadBytes
    down += r.value.downloadBytes
    if (r.value.downloadBytes !== o.download) {
      console.error(`ringp2p perf: stream ${i}: ${r.value.downloadBytes} bytes down, asked ${o.download}`)
      code = 1
    }
  }
  const s = secs > 0 ? secs : 1e-9
  const summary = { event: 'perf', uploadBytes: up, downloadBytes: down, seconds: secs, uploadMBps: up / 1e6 / s, downloadMBps: down / 1e6 / s }
  if (o.json) emit(summary)
  else console.log(`perf: up ${up} bytes, down ${down} bytes in ${secs.toFixed(3)} s`)
  await stopNode(node)
  process.exit(code)
}

const [cmd, ...rest] = process.argv.slice(2)
const o = parseArgs(rest)
switch (cmd) {
  case 'listen': await listen(o); break
  case 'ping': await pingCmd(o); break
  case 'identify': await identifyCmd(o); break
  case 'stream': await streamCmd(o); break
  case 'perf': await perfCmd(o); break
  default: fail(`unknown command ${cmd}`)
}
