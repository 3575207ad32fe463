// The ringp2p relay service (`ringp2p listen --relay-server`, circuit relay v2) against real
// js-libp2p 3.x peers with @libp2p/circuit-relay-v2's transport (tests/interop/peer/relaypeer.mjs):
// a js node reserves a slot on the ringp2p relay, a second js node dials it through the relay
// (RELAY/p2p-circuit/p2p/TARGET) and runs ping and a byte-exact echo, the relay's data limit
// resets a relayed connection that exceeds it, a CONNECT to a peer with no reservation is
// refused, and a js node cannot reserve on a ringp2p node without --relay-server. And ringp2p as
// the relay client, through a js-libp2p relay (circuitRelayServer, relaypeer.mjs relay):
// `ringp2p listen --relay` reserves there and a js node reaches it through the circuit (ping and
// echo), and `ringp2p ping` / `ringp2p stream` reach a js node that listens on that relay.
// Run by `run.sh RINGP2P_BIN DIR --suite relay` as
//   node relay.mjs RINGP2P_BIN [-v] [--filter TEXT]
//   node relay.mjs RINGP2P_BIN --self-test [-v]   every relay that should serve does not, and
//                                                the one that should not does, and ringp2p runs
//                                                its relay client off (--no-relay): every check
//                                                must fail (proves the checks can fail)
// Ends with "relay-interop: N passed, N failed"; exits non-zero if anything failed.

import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { CheckError, Runner, args, currentCheck, expect, expectEqual } from './lib.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const RELAYPEER = resolve(here, 'peer/relaypeer.mjs')

// ---- The ringp2p tool's contract ---------------------------------------------------------------
const TOOL = {
  listen: (relayServer) =>
    ['listen', '--listen', '/ip4/127.0.0.1/tcp/0', '--json', ...(relayServer ? ['--relay-server'] : [])],
  ready: 'ready', // {"event":"ready","peerId","addrs":[... /p2p/<id>]}
  reservation: 'relay-reservation', // {"event":"relay-reservation","peerId","expires"}
  // {"event":"relay-circuit","src","dst","bytes","bytesToDst","bytesToSrc","durationMs","reason"}
  circuit: 'relay-circuit',
  limitReason: 'exceeds a limit', // ringp2p_strerror(RINGP2P_ELIMIT)
  // the relay client: `ringp2p listen --relay MADDR`, `ringp2p ping|stream RELAY/p2p-circuit/p2p/X`
  // (--no-relay turns the client off: the self-test's ringp2p)
  clientFlags: () => (selfTest ? ['--no-relay'] : []),
  listenOn: (relayAddr) =>
    ['listen', '--listen', '/ip4/127.0.0.1/tcp/0', '--json', '--relay', relayAddr, ...TOOL.clientFlags()],
  // {"event":"reservation","relay","ok","expires","addrs"} ("lost", "error" when not ok)
  clientReservation: 'reservation',
  // {"event":"connection","peerId","remoteAddr","direction","relayed","security","muxer"}
  connection: 'connection',
  // {"event":"ping","seq","rttUs","relayed"} per ping
  ping: (maddr) => ['ping', maddr, '--count', '3', '--interval', '0.2', '--json', ...TOOL.clientFlags()],
  pingEvent: 'ping',
  stream: (maddr, proto) => ['stream', maddr, proto, ...TOOL.clientFlags()]
}
// js-libp2p's circuitRelayServer reservations (DEFAULT_MAX_RESERVATION_TTL, 2 h).
const JS_TTL_S = 7200
// What the relay announces by default (go-libp2p's relay.DefaultResources, the README).
const TTL_S = 3600
const LIMIT = { duration: 120, data: 131072 }
const HOP = '/libp2p/circuit/relay/0.2.0/hop'

const READY_MS = 20_000
const EVENT_MS = 20_000
const STOP_MS = 5_000

const argv = process.argv.slice(2)
const { flag, option } = args(argv)
const verbose = flag('-v')
const selfTest = flag('--self-test')
const filter = option('--filter')
if (argv.length !== 1) {
  console.error('usage: relay.mjs RINGP2P_BIN [-v] [--filter TEXT] [--self-test]')
  process.exit(2)
}
const toolBin = resolve(argv[0])
if (!existsSync(toolBin)) {
  console.error(`relay-interop: ${toolBin} does not exist (build it first)`)
  process.exit(2)
}

// ---- processes -------------------------------------------------------------------------------
const SANITIZER_RE = /(Address|Leak|UndefinedBehavior|Memory|Thread)Sanitizer|runtime error:/
const SETPRIV = spawnSync('setpriv', ['--pdeathsig', 'KILL', '--', 'true']).status === 0
const live = new Set()
process.on('exit', () => { for (const p of live) p.child.kill('SIGKILL') })
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    for (const p of live) p.child.kill('SIGKILL')
    process.exit(130)
  })
}
const clip = (s, n = 1500) => (s.length > n ? '…' + s.slice(-n) : s).trim()

/** A child whose stdout is JSON lines (kept in order); stderr kept for failure messages. */
class Proc {
  constructor (name, file, args, { stdin = false } = {}) {
    this.name = name
    this.cmd = [file, ...args].join(' ')
    this.events = []
    this.raw = []
    this.stderr = ''
    this.waiters = new Set()
    this.exit = null
    const [f, a] = SETPRIV ? ['setpriv', ['--pdeathsig', 'KILL', '--', file, ...args]] : [file, args]
    this.child = spawn(f, a, {
      stdio: [stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0', UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1' }
    })
    live.add(this)
    this.child.stdin?.on('error', () => {})
    this.child.stderr.on('data', (d) => { this.stderr = (this.stderr + d).slice(-100_000) })
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      this.raw.push(line)
      let v
      try {
        v = JSON.parse(line)
      } catch {
        v = { unparsed: line }
      }
      this.events.push(v)
      this.#notify()
    })
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        this.exit = { code, signal }
        live.delete(this)
        this.#notify()
        resolve(this.exit)
      })
    })
  }

  #notify () { for (const w of this.waiters) w() }

  get sanitizer () { return SANITIZER_RE.test(this.stderr) }

  describe () {
    const status = this.exit == null ? 'running' : this.exit.signal != null ? `killed by ${this.exit.signal}` : `exit ${this.exit.code}`
    return `\`${this.cmd}\` (${status}); stdout: ${JSON.stringify(clip(this.raw.slice(-8).join('\n')))}; ` +
      `stderr: ${JSON.stringify(clip(this.stderr))}`
  }

  /** The first event satisfying `pred` (seen or to come); rejects on exit or timeout. */
  waitEvent (pred, what, ms = EVENT_MS) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const v = this.events.find(pred)
        if (v != null) {
          done()
          resolve(v)
        } else if (this.exit != null) {
          done()
          reject(new CheckError(`${this.name} ended before ${what}: ${this.describe()}`))
        }
      }
      const timer = setTimeout(() => {
        done()
        reject(new CheckError(`${this.name}: no ${what} within ${ms} ms: ${this.describe()}`))
      }, ms)
      const done = () => {
        clearTimeout(timer)
        this.waiters.delete(check)
      }
      this.waiters.add(check)
      check()
    })
  }

  async wait (ms) {
    const timer = setTimeout(() => this.child.kill('SIGKILL'), ms)
    await this.exited
    clearTimeout(timer)
    return this.exit
  }

  async stop () {
    if (this.exit == null) this.child.kill('SIGTERM')
    return this.wait(STOP_MS)
  }
}

/** The processes of one check, stopped when it ends; a sanitizer report in ringp2p fails it. */
async function withProcs (fn) {
  const procs = []
  const start = (name, file, args, opts) => {
    const p = new Proc(name, file, args, opts)
    procs.push(p)
    return p
  }
  try {
    await fn(start)
  } finally {
    await Promise.all(procs.map((p) => p.stop()))
  }
  for (const p of procs) {
    if (p.sanitizer) throw new CheckError(`${p.name}: sanitizer report: ${p.describe()}`)
  }
}

/**
 * A ringp2p relay: `ringp2p listen`, with --relay-server when `serve` (inverted by
 * --self-test). Returns the process, its peer ID and its first address (with /p2p/<id>).
 */
async function startRelay (start, serve) {
  const ctx = currentCheck.getStore()
  if (ctx != null) ctx.usedTools = true
  const p = start('ringp2p', toolBin, TOOL.listen(serve !== selfTest))
  const ready = await p.waitEvent((e) => e.event === TOOL.ready, 'ready line', READY_MS)
  expect(Array.isArray(ready.addrs) && ready.addrs.length > 0, `ready line without addrs: ${JSON.stringify(ready)}`)
  return { p, id: ready.peerId, addr: ready.addrs[0] }
}

/** A js peer listening on the relay; resolves with its ready or error event and the process. */
async function startTarget (start, relayAddr) {
  const p = start('js target', process.execPath, [RELAYPEER, 'listen', '--relay', relayAddr], { stdin: true })
  const first = await p.waitEvent((e) => e.event === 'ready' || e.event === 'error', 'ready or error line', READY_MS)
  return { p, first }
}

/** A js-libp2p relay (relaypeer.mjs relay): its process, peer ID and first address. */
async function startJsRelay (start) {
  const p = start('js relay', process.execPath, [RELAYPEER, 'relay'], { stdin: true })
  const ready = await p.waitEvent((e) => e.event === 'ready', 'js relay ready line', READY_MS)
  return { p, id: ready.peerId, addr: ready.addrs[0] }
}

/** A ringp2p command of the relay client checks (counts as using the tool). */
function startTool (start, name, argv, opts) {
  const ctx = currentCheck.getStore()
  if (ctx != null) ctx.usedTools = true
  return start(name, toolBin, argv, opts)
}

/** Runs relaypeer.mjs dial and waits for it to end; returns its events by action. */
async function jsDial (start, maddr, actions, ms = 90_000) {
  const p = start('js dialer', process.execPath, [RELAYPEER, 'dial', maddr, ...actions])
  await p.wait(ms)
  const results = new Map(p.events.filter((e) => e.event === 'result').map((e) => [e.action, e]))
  return { p, results }
}

async function randomPeerId () {
  return peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
}

// ---- checks ----------------------------------------------------------------------------------
const runner = new Runner({ verbose, concurrency: 2, filter })

runner.check('reserve', 'a js node reserves a slot on `ringp2p listen --relay-server`', () => withProcs(async (start) => {
  const relay = await startRelay(start, true)
  const before = Math.floor(Date.now() / 1000)
  const t = await startTarget(start, relay.addr)
  expectEqual(t.first.event, 'ready', `js could not listen on the relay: ${t.first.error ?? ''}`)
  const rsv = await t.p.waitEvent((e) => e.event === 'reservation', 'js reservation event')
  const jsId = t.first.peerId
  expectEqual(rsv.relay, relay.id, 'reservation relay')
  expect(rsv.expire >= before + TTL_S - 5 && rsv.expire <= Math.ceil(Date.now() / 1000) + TTL_S + 5,
    `reservation expires at ${rsv.expire}, want about now + ${TTL_S}`)
  // (js keeps the HopMessage's Limit out of its reservation object: the relayed connection's
  // limits are checked in the relay group)
  expect(rsv.addrs.includes(relay.addr), `reservation addrs ${JSON.stringify(rsv.addrs)} lack the relay's ${relay.addr}`)
  const v = rsv.voucher
  expect(v != null && v.signatureValid === true, `voucher not valid for js: ${JSON.stringify(v)}`)
  expect(v.typeOk, `voucher payload type ${v.payloadType}, want 0302`)
  expectEqual(v.signer, relay.id, 'voucher signer')
  expectEqual(v.relay, relay.id, 'voucher relay')
  expectEqual(v.peer, jsId, 'voucher peer')
  expectEqual(v.expiration, rsv.expire, 'voucher expiration')
  const circuitAddr = `${relay.addr}/p2p-circuit/p2p/${jsId}`
  expect(t.first.addrs.includes(circuitAddr), `js advertises ${JSON.stringify(t.first.addrs)}, want ${circuitAddr}`)
  const ours = await relay.p.waitEvent((e) => e.event === TOOL.reservation, `${TOOL.reservation} event`)
  expectEqual(ours.peerId, jsId, `${TOOL.reservation} peerId`)
  expectEqual(ours.expires, rsv.expire, `${TOOL.reservation} expires`)
}))

runner.check('relay', 'a js node dials a js node through the ringp2p relay: ping 3 and a 64 KiB echo', () => withProcs(async (start) => {
  const relay = await startRelay(start, true)
  const t = await startTarget(start, relay.addr)
  expectEqual(t.first.event, 'ready', `js could not listen on the relay: ${t.first.error ?? ''}`)
  const target = t.first.peerId
  const d = await jsDial(start, `${relay.addr}/p2p-circuit/p2p/${target}`, ['ping 3', 'echo 65536'])
  const dial = d.results.get('dial')
  expect(dial?.ok === true, `dial through the relay failed: ${d.p.describe()}`)
  expect(dial.remoteAddr.includes('/p2p-circuit/'), `relayed connection's address ${dial.remoteAddr}`)
  // js counts the limit down as bytes flow (the handshakes already took some)
  expect(dial.limits != null && dial.limits.bytes > LIMIT.data - 16384 && dial.limits.bytes <= LIMIT.data &&
    dial.limits.seconds > LIMIT.duration - 10 && dial.limits.seconds <= LIMIT.duration,
  `js should see a connection limited to ${LIMIT.data} bytes and ${LIMIT.duration} s: ${JSON.stringify(dial.limits)}`)
  for (const a of ['ping 3', 'echo 65536']) {
    const r = d.results.get(a)
    expect(r?.ok === true, `${a} through the relay: ${r?.error ?? 'no result'}; ${d.p.describe()}`)
  }
  expectEqual(d.p.exit.code, 0, 'dialer exit code')
  expectEqual(dial.remotePeer, target, 'the relayed connection\'s peer')
  const inbound = await t.p.waitEvent((e) => e.event === 'connection' && e.remoteAddr.includes('/p2p-circuit'),
    'inbound relayed connection at the target')
  expect(inbound.limits != null, `the target's relayed connection is not limited: ${JSON.stringify(inbound)}`)
  const c = await relay.p.waitEvent((e) => e.event === TOOL.circuit, `${TOOL.circuit} event`)
  expectEqual(c.src, inbound.remotePeer, `${TOOL.circuit} src (the dialer)`)
  expectEqual(c.dst, target, `${TOOL.circuit} dst`)
  for (const k of ['bytesToDst', 'bytesToSrc']) {
    expect(c[k] >= 65536 && c[k] <= LIMIT.data,
      `${TOOL.circuit} ${k} = ${c[k]}, want 64 KiB of echo plus overhead; relay said ${JSON.stringify(relay.p.events)}`)
  }
}))

runner.check('relay', 'past the data limit the ringp2p relay resets the relayed connection', () => withProcs(async (start) => {
  const relay = await startRelay(start, true)
  const t = await startTarget(start, relay.addr)
  expectEqual(t.first.event, 'ready', `js could not listen on the relay: ${t.first.error ?? ''}`)
  const d = await jsDial(start, `${relay.addr}/p2p-circuit/p2p/${t.first.peerId}`, ['echo 262144'])
  expect(d.results.get('dial')?.ok === true, `dial through the relay failed: ${d.p.describe()}`)
  const echo = d.results.get('echo 262144')
  expect(echo != null && echo.ok === false, `a 256 KiB echo over a 128 KiB limit should fail: ${d.p.describe()}`)
  const c = await relay.p.waitEvent((e) => e.event === TOOL.circuit, `${TOOL.circuit} event`)
  expectEqual(c.reason, TOOL.limitReason, `${TOOL.circuit} reason`)
  expectEqual(c.bytesToDst, LIMIT.data, `${TOOL.circuit} bytesToDst (exactly the limit passes)`)
}))

runner.check('relay', 'a dial to a peer without a reservation is refused with NO_RESERVATION', () => withProcs(async (start) => {
  const relay = await startRelay(start, true)
  const nobody = await randomPeerId()
  const d = await jsDial(start, `${relay.addr}/p2p-circuit/p2p/${nobody}`, [], 30_000)
  const dial = d.results.get('dial')
  expect(dial != null && dial.ok === false, `the dial should fail: ${d.p.describe()}`)
  expect(/status NO_RESERVATION/.test(dial.error), `error should name NO_RESERVATION: ${dial.error}`)
}))

runner.check('reserve', 'a js node cannot reserve on a ringp2p node without --relay-server', () => withProcs(async (start) => {
  const relay = await startRelay(start, false)
  const t = await startTarget(start, relay.addr)
  expectEqual(t.first.event, 'error', `js listened on a node that is not a relay: ${JSON.stringify(t.first)}`)
  // "... <relay>/p2p-circuit: UnsupportedProtocolError: Protocol selection failed - could not
  // negotiate /libp2p/circuit/relay/0.2.0/hop"
  expect(t.first.error.includes(`${relay.addr}/p2p-circuit`) && t.first.error.includes(`could not negotiate ${HOP}`),
    `js's error should name the relay address and the unsupported hop protocol: ${t.first.error}`)
  expect(!t.p.events.some((e) => e.event === 'reservation'), 'js reported a reservation')
  expectEqual((await t.p.wait(STOP_MS)).code, 1, 'js target exit code')
  expect(!relay.p.events.some((e) => e.event === TOOL.reservation), `ringp2p reported a reservation (${HOP} is not served)`)
}))

// ---- ringp2p as the relay client, through a js-libp2p relay ------------------------------------

runner.check('client', 'ringp2p reserves on a js-libp2p relay and a js node reaches it through it: ping 3 and a 16 KiB echo', () => withProcs(async (start) => {
  const relay = await startJsRelay(start)
  const before = Math.floor(Date.now() / 1000)
  const t = startTool(start, 'ringp2p', TOOL.listenOn(relay.addr))
  const ready = await t.waitEvent((e) => e.event === TOOL.ready, 'ready line', READY_MS)
  const rsv = await t.waitEvent((e) => e.event === TOOL.clientReservation, `${TOOL.clientReservation} event`)
  expectEqual(rsv.ok, true, `reservation (${rsv.error ?? ''})`)
  expectEqual(rsv.relay, relay.addr, 'reservation relay')
  expect(rsv.expires >= before + JS_TTL_S - 5 && rsv.expires <= Math.ceil(Date.now() / 1000) + JS_TTL_S + 5,
    `reservation expires at ${rsv.expires}, want about now + ${JS_TTL_S} (js's TTL)`)
  const circuit = `${relay.addr}/p2p-circuit/p2p/${ready.peerId}`
  expect(Array.isArray(rsv.addrs) && rsv.addrs.includes(circuit), `ringp2p advertises ${JSON.stringify(rsv.addrs)}, want ${circuit}`)
  const d = await jsDial(start, circuit, ['ping 3', 'echo 16384'])
  const dial = d.results.get('dial')
  expect(dial?.ok === true, `js could not dial ringp2p through the js relay: ${d.p.describe()}`)
  expectEqual(dial.remotePeer, ready.peerId, 'the relayed connection\'s peer')
  expect(dial.limits != null, `js's relayed connection is not limited: ${JSON.stringify(dial)}`)
  for (const a of ['ping 3', 'echo 16384']) {
    const r = d.results.get(a)
    expect(r?.ok === true, `${a} through the js relay: ${r?.error ?? 'no result'}; ${d.p.describe()}`)
  }
  expectEqual(d.p.exit.code, 0, 'js dialer exit code')
  const c = await t.waitEvent((e) => e.event === TOOL.connection && e.relayed === true, 'a relayed connection event at ringp2p')
  expectEqual(c.direction, 'inbound', 'relayed connection direction')
  expectEqual(c.remoteAddr, `${relay.addr}/p2p-circuit/p2p/${c.peerId}`, 'relayed connection remoteAddr')
  expect(!t.events.some((e) => e.event === TOOL.connection && e.relayed === false && e.peerId === c.peerId),
    `the js dialer reached ringp2p directly as well: ${t.describe()}`)
}))

runner.check('client', 'ringp2p dials a js node through a js-libp2p relay: 3 pings, each over the relayed connection, and a 16 KiB echo with `ringp2p stream`', () => withProcs(async (start) => {
  const relay = await startJsRelay(start)
  const tgt = await startTarget(start, relay.addr)
  expectEqual(tgt.first.event, 'ready', `js could not listen on the js relay: ${tgt.first.error ?? ''}`)
  const circuit = `${relay.addr}/p2p-circuit/p2p/${tgt.first.peerId}`
  expect(tgt.first.addrs.includes(circuit), `js advertises ${JSON.stringify(tgt.first.addrs)}, want ${circuit}`)
  const p = startTool(start, 'ringp2p ping', TOOL.ping(circuit))
  const exit = await p.wait(60_000)
  expectEqual(exit.code, 0, `ringp2p ping exit code: ${p.describe()}`)
  const pings = p.events.filter((e) => e.event === TOOL.pingEvent)
  expectEqual(pings.length, 3, `ping lines (${p.describe()})`)
  pings.forEach((e, i) => {
    expect(typeof e.rttUs === 'number' && e.rttUs > 0, `ping ${i}: rttUs ${JSON.stringify(e.rttUs)}`)
    expectEqual(e.relayed, true, `ping ${i}: relayed`)
  })
  const inbound = await tgt.p.waitEvent((e) => e.event === 'connection' && e.remoteAddr.includes('/p2p-circuit'),
    'inbound relayed connection at the js target')
  expect(inbound.limits != null, `the js target's relayed connection is not limited: ${JSON.stringify(inbound)}`)
  expectEqual(inbound.direction, 'inbound', 'js target: connection direction')
  const payload = randomBytes(12288).toString('base64') + '\n' // 16 KiB of text, one line
  const s = startTool(start, 'ringp2p stream', TOOL.stream(circuit, '/echo/1.0.0'), { stdin: true })
  s.child.stdin.end(payload)
  const sx = await s.wait(60_000)
  expectEqual(sx.code, 0, `ringp2p stream exit code: ${s.describe()}`)
  const got = s.raw.join('\n') + '\n'
  expect(got === payload, `echo through the js relay: ${got.length} characters back of ${payload.length}, ${got === payload.slice(0, got.length) ? 'a prefix' : 'different'}`)
}))

const { passed, failed } = selfTest ? await runner.selfTest() : await runner.run()
console.log(`relay-interop${selfTest ? ' self-test' : ''}: ${passed} passed, ${failed} failed`)
process.exit(failed === 0 ? 0 : 1)
