// A real js-libp2p 3.x peer (tcp, noise|tls|plaintext, yamux|mplex, identify + push, ping,
// /echo/1.0.0, /perf/1.0.0) for the host interop cases (tests/interop/host.mjs) and the
// benchmarks. Every stdout line is one JSON object.
//
// Common flags: --security LIST (noise, tls, plaintext; default noise) and --muxer LIST
// (yamux, mplex; default yamux), comma-separated in order of preference: the node offers only
// those. --mplex-disconnect-threshold N|js-default: the new streams a second js-mplex accepts
// before it drops the connection (default: raised, see peer.mjs MPLEX_DISCONNECT_THRESHOLD;
// js-default: js's own 5).
//
//   node.mjs listen [--key FILE] [--listen MADDR]... [--agent TEXT]
//     First line {"event":"ready","peerId","addrs":[.../p2p/<id>],"protocols","agentVersion"},
//     then one line per event: "connection", "connection-closed", "identify" (what js
//     learned about a peer), "monitor-ping" (js's automatic ping answered), "perf-served"
//     (a /perf/1.0.0 stream served: ok, error, requested, uploadBytes read, downloadBytes sent),
//     "echo-served" (an /echo/1.0.0 stream served: ok once js saw its end and closed; bytes
//     read; error). Reads commands from stdin, one JSON object a line:
//     {"id","peer","actions":["echo-many 200 65536",...]} runs the actions on the open
//     connection to that peer and answers with one {"event":"result","id",...} line per
//     action and {"event":"done","id","ok"}.
//     Stops on SIGINT, SIGTERM or the end of stdin (so it never outlives its driver).
//
//   node.mjs dial MADDR [--key FILE] [--agent TEXT] [--keep-going] ACTION...
//     (an action is one argument, "perf 1000 0", or several, perf 1000 0)
//     Dials MADDR (which must end in /p2p/<id>), prints {"event":"ready","peerId","agentVersion"} and
//     {"event":"result","action":"dial",...}, then runs the actions in order on that one
//     connection, one result line each, and exits 0 only if all succeeded. It stops at the
//     first failure unless --keep-going is given.
//
// Actions: "ping N" (js's ping service, N times), "identify" (a fresh identify plus the peer
// store's record), "echo SIZE" (SIZE random bytes on one /echo/1.0.0 stream, sha256 of what
// came back), "echo-many N SIZE" (N concurrent echo streams, distinct payloads), "hold SECONDS"
// (keep the connection idle; js's connection monitor keeps pinging it), "perf UPLOAD DOWNLOAD"
// (one /perf/1.0.0 stream: uploads UPLOAD bytes, then downloads DOWNLOAD; the result has
// uploadBytes, downloadBytes, seconds, uploadMBps, downloadMBps with MB = 10^6 bytes, timed
// from the stream's opening to its end, on the connection the dial made). Every result carries
// ok, error, and the connection's id, status, security, muxer and monitor ping count.
//
// A benchmark runs e.g. `node.mjs dial MADDR perf 536870912 0` and reads the line
// {"event":"result","action":"perf 536870912 0","ok":true,"uploadMBps":...}.

import { createInterface } from 'node:readline'
import { peerIdFromString } from '@libp2p/peer-id'
import {
  connView, createPeer, emit, errText, localAddrOf, MUXERS, parseAction, parseList, parseTarget, runAction,
  SECURITY, stopNode
} from './peer.mjs'

function usage (message) {
  if (message != null) console.error(`node.mjs: ${message}`)
  console.error('usage: node.mjs listen [--key FILE] [--listen MADDR]... [--agent TEXT] [COMMON]\n' +
    '       node.mjs dial MADDR [--key FILE] [--agent TEXT] [--keep-going] [COMMON] ACTION...\n' +
    'COMMON: [--security noise|tls|plaintext,...] [--muxer yamux|mplex,...] [--mplex-disconnect-threshold N|js-default]')
  process.exit(2)
}

function parseArgs (argv) {
  const opts = {
    key: null, listen: [], agent: null, positional: [], security: 'noise', muxer: 'yamux', mplexThreshold: undefined,
    keepGoing: false
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`)
      return argv[++i]
    }
    if (a === '--key') opts.key = value()
    else if (a === '--listen') opts.listen.push(value())
    else if (a === '--agent') opts.agent = value()
    else if (a === '--security') opts.security = value()
    else if (a === '--muxer') opts.muxer = value()
    else if (a === '--keep-going') opts.keepGoing = true
    else if (a === '--mplex-disconnect-threshold') {
      const v = value()
      if (v === 'js-default') opts.mplexThreshold = null
      else if (/^[1-9][0-9]*$/.test(v)) opts.mplexThreshold = Number(v)
      else usage(`${a}: want a positive integer or js-default, got "${v}"`)
    } else if (a.startsWith('--')) usage(`unknown flag ${a}`)
    else opts.positional.push(a)
  }
  try {
    parseList(opts.security, SECURITY, '--security')
    parseList(opts.muxer, MUXERS, '--muxer')
  } catch (e) {
    usage(errText(e))
  }
  return opts
}

/** The createPeer options the common flags give. */
const peerOpts = (opts) => ({
  keyFile: opts.key,
  agent: opts.agent,
  security: opts.security,
  muxer: opts.muxer,
  ...(opts.mplexThreshold !== undefined ? { mplexDisconnectThreshold: opts.mplexThreshold } : {})
})

async function listen (opts) {
  if (opts.positional.length !== 0) usage('listen takes no positional arguments')
  const node = await createPeer({
    ...peerOpts(opts),
    listen: opts.listen.length > 0 ? opts.listen : ['/ip4/127.0.0.1/tcp/0'],
    onMonitorPing: (conn, rttMs) =>
      emit({ event: 'monitor-ping', peerId: conn.remotePeer.toString(), conn: conn.id, rttMs }),
    onPerfServed: (conn, r) => emit({ event: 'perf-served', peerId: conn.remotePeer.toString(), conn: conn.id, ...r }),
    onEchoServed: (conn, r) => emit({ event: 'echo-served', peerId: conn.remotePeer.toString(), conn: conn.id, ...r })
  })
  node.addEventListener('connection:open', (evt) => {
    emit({ event: 'connection', peerId: evt.detail.remotePeer.toString(), ...connView(evt.detail) })
  })
  node.addEventListener('connection:close', (evt) => {
    const c = evt.detail
    emit({ event: 'connection-closed', peerId: c.remotePeer.toString(), conn: c.id, status: c.status })
  })
  node.addEventListener('peer:identify', (evt) => {
    const r = evt.detail
    emit({
      event: 'identify',
      peerId: r.peerId.toString(),
      conn: r.connection?.id ?? null,
      agentVersion: r.agentVersion ?? null,
      protocolVersion: r.protocolVersion ?? null,
      protocols: [...r.protocols].sort(),
      listenAddrs: r.listenAddrs.map(String),
      observedAddr: r.observedAddr != null ? String(r.observedAddr) : null,
      localAddr: localAddrOf(r.connection)
    })
  })

  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    await stopNode(node)
    process.exit(0)
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)

  emit({
    event: 'ready',
    peerId: node.peerId.toString(),
    addrs: node.getMultiaddrs().map(String),
    protocols: [...node.getProtocols()].sort(),
    agentVersion: node.components?.nodeInfo?.userAgent ?? null
  })

  const rl = createInterface({ input: process.stdin })
  rl.on('line', (line) => {
    if (line.trim() === '') return
    runCommand(node, line).catch((e) => emit({ event: 'done', ok: false, error: errText(e) }))
  })
  rl.on('close', stop)
}

async function runCommand (node, line) {
  let cmd
  try {
    cmd = JSON.parse(line)
  } catch {
    emit({ event: 'done', ok: false, error: `stdin line is not JSON: ${line}` })
    return
  }
  const id = cmd.id ?? null
  let ok = true
  try {
    const actions = (cmd.actions ?? []).map(parseAction)
    const conns = node.getConnections(peerIdFromString(cmd.peer))
    if (conns.length !== 1) throw new Error(`js has ${conns.length} connections to ${cmd.peer}, want exactly 1`)
    for (const a of actions) {
      const r = await runAction(node, conns[0], a)
      emit({ event: 'result', id, ...r })
      ok &&= r.ok
      if (!r.ok) break
    }
  } catch (e) {
    emit({ event: 'done', id, ok: false, error: errText(e) })
    return
  }
  emit({ event: 'done', id, ok })
}

/**
 * The dial command's actions: each argument may be a whole action ("perf 1000 0") or a word of
 * one (perf 1000 0): a word that is not a number starts a new action.
 */
function groupActions (texts) {
  const out = []
  for (const w of texts.flatMap((t) => t.trim().split(/\s+/))) {
    if (/^\d+$/.test(w) && out.length > 0) out[out.length - 1] += ` ${w}`
    else out.push(w)
  }
  return out
}

async function dial (opts) {
  if (opts.positional.length < 1) usage('dial needs MADDR')
  const [target, ...texts] = opts.positional
  let actions
  let ma
  try {
    actions = groupActions(texts).map(parseAction)
    ma = parseTarget(target)
  } catch (e) {
    usage(errText(e))
  }
  const node = await createPeer(peerOpts(opts))
  emit({ event: 'ready', peerId: node.peerId.toString(), agentVersion: node.components?.nodeInfo?.userAgent ?? null })
  let ok = false
  try {
    let conn
    const started = Date.now()
    try {
      conn = await node.dial(ma, { signal: AbortSignal.timeout(30_000) })
    } catch (e) {
      emit({ event: 'result', action: 'dial', ok: false, error: errText(e), ms: Date.now() - started })
      return
    }
    emit({ event: 'result', action: 'dial', ok: true, ms: Date.now() - started, ...connView(conn) })
    ok = true
    for (const a of actions) {
      const r = await runAction(node, conn, a)
      emit({ event: 'result', ...r })
      if (!r.ok) {
        ok = false
        if (!opts.keepGoing) break
      }
    }
  } catch (e) {
    ok = false
    emit({ event: 'error', ok: false, error: errText(e), stack: e?.stack ?? null })
  } finally {
    await stopNode(node)
    process.exit(ok ? 0 : 1)
  }
}

const [mode, ...rest] = process.argv.slice(2)
const opts = parseArgs(rest)
if (mode === 'listen') await listen(opts)
else if (mode === 'dial') await dial(opts)
else usage(mode == null ? null : `unknown mode ${mode}`)
