// A real js-libp2p 3.x peer (tcp, noise, yamux, identify + push, ping, /echo/1.0.0) for the
// host interop cases (tests/interop/host.mjs). Every stdout line is one JSON object.
//
//   node.mjs listen [--key FILE] [--listen MADDR]... [--agent TEXT]
//     First line {"event":"ready","peerId","addrs":[.../p2p/<id>],"protocols","agentVersion"},
//     then one line per event: "connection", "connection-closed", "identify" (what js
//     learned about a peer), "monitor-ping" (js's automatic ping answered). Reads commands
//     from stdin, one JSON object a line: {"id","peer","actions":["echo-many 200 65536",...]}
//     runs the actions on the open connection to that peer and answers with one
//     {"event":"result","id",...} line per action and {"event":"done","id","ok"}.
//     Stops on SIGINT, SIGTERM or the end of stdin (so it never outlives its driver).
//
//   node.mjs dial MADDR [--key FILE] [--agent TEXT] ACTION...
//     Dials MADDR (which must end in /p2p/<id>), prints {"event":"ready","peerId","agentVersion"} and
//     {"event":"result","action":"dial",...}, then runs the actions in order on that one
//     connection, one result line each, and exits 0 only if all succeeded.
//
// Actions: "ping N" (js's ping service, N times), "identify" (a fresh identify plus the peer
// store's record), "echo SIZE" (SIZE random bytes on one /echo/1.0.0 stream, sha256 of what
// came back), "echo-many N SIZE" (N concurrent echo streams, distinct payloads), "hold SECONDS"
// (keep the connection idle; js's connection monitor keeps pinging it). Every result carries
// ok, error, and the connection's id, status and monitor ping count.

import { createInterface } from 'node:readline'
import { peerIdFromString } from '@libp2p/peer-id'
import {
  connView, createPeer, emit, errText, localAddrOf, parseAction, parseTarget, runAction, stopNode
} from './peer.mjs'

function usage (message) {
  if (message != null) console.error(`node.mjs: ${message}`)
  console.error('usage: node.mjs listen [--key FILE] [--listen MADDR]... [--agent TEXT]\n' +
    '       node.mjs dial MADDR [--key FILE] [--agent TEXT] ACTION...')
  process.exit(2)
}

function parseArgs (argv) {
  const opts = { key: null, listen: [], agent: null, positional: [] }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`)
      return argv[++i]
    }
    if (a === '--key') opts.key = value()
    else if (a === '--listen') opts.listen.push(value())
    else if (a === '--agent') opts.agent = value()
    else if (a.startsWith('--')) usage(`unknown flag ${a}`)
    else opts.positional.push(a)
  }
  return opts
}

async function listen (opts) {
  if (opts.positional.length !== 0) usage('listen takes no positional arguments')
  const node = await createPeer({
    keyFile: opts.key,
    listen: opts.listen.length > 0 ? opts.listen : ['/ip4/127.0.0.1/tcp/0'],
    agent: opts.agent,
    onMonitorPing: (conn, rttMs) =>
      emit({ event: 'monitor-ping', peerId: conn.remotePeer.toString(), conn: conn.id, rttMs })
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

async function dial (opts) {
  if (opts.positional.length < 1) usage('dial needs MADDR')
  const [target, ...texts] = opts.positional
  let actions
  let ma
  try {
    actions = texts.map(parseAction)
    ma = parseTarget(target)
  } catch (e) {
    usage(errText(e))
  }
  const node = await createPeer({ keyFile: opts.key, agent: opts.agent })
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
        break
      }
    }
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
