// Cross-checks of ringp2p against js-libp2p. Run by run.sh (make interop) as
//   node interop.mjs RINGP2P_BIN INTEROP_BIN_DIR [-v] [--filter TEXT]
//   node interop.mjs --js-only [-v]        js side only (no ringp2p programs needed)
//   node interop.mjs --self-test           against a lying ringp2p: every check that drives
//                                          ringp2p must fail (shows that each one can)
// Ends with one line "interop: N passed, N failed" and exits non-zero if anything failed.

import { chmodSync, existsSync, writeFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import * as keys from './keys.mjs'
import { Runner, args, makeTempDir } from './lib.mjs'
import * as maddr from './multiaddr.mjs'
import { makeTools } from './tools.mjs'

const argv = process.argv.slice(2)
const { flag, option } = args(argv)
const verbose = flag('-v')
const jsOnly = flag('--js-only')
const selfTest = flag('--self-test')
const filter = option('--filter')

const usage = (message) => {
  console.error(message)
  process.exit(2)
}

let tools = null
let tmp = null
if (selfTest) {
  tmp = makeTempDir()
  // Both programs are liar.mjs behind a small script.
  const liar = resolve(dirname(fileURLToPath(import.meta.url)), 'liar.mjs')
  for (const name of ['ringp2p', 'keycheck']) {
    writeFileSync(tmp.path(name), `#!/bin/sh\nexec '${process.execPath}' '${liar}' "$@"\n`)
    chmodSync(tmp.path(name), 0o755)
  }
  tools = makeTools(tmp.path('ringp2p'), tmp.dir)
} else if (!jsOnly) {
  if (argv.length !== 2) {
    usage('usage: interop.mjs RINGP2P_BIN INTEROP_BIN_DIR [-v] [--filter TEXT] | --js-only | --self-test')
  }
  const [bin, dir] = argv.map((p) => resolve(p))
  for (const p of [bin, resolve(dir, 'keycheck')]) {
    if (!existsSync(p)) usage(`interop: ${p} does not exist (build it first: make interop)`)
  }
  tools = makeTools(bin, dir)
}
tmp ??= makeTempDir()

const started = Date.now()
let result
try {
  const runner = new Runner({ verbose, concurrency: 4, filter })
  maddr.register(runner, tools)
  await keys.register(runner, tools, tmp)
  result = selfTest ? await runner.selfTest() : await runner.run()
} finally {
  tmp.remove()
}
const secs = ((Date.now() - started) / 1000).toFixed(1)
console.log(`  (${secs} s${jsOnly ? ', js side only' : ''}${selfTest ? ', self-test' : ''})`)
console.log(`interop: ${result.passed} passed, ${result.failed} failed`)
process.exit(result.failed === 0 ? 0 : 1)
