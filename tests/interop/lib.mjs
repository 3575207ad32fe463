// Shared helpers for the js-libp2p cross-checks: a small check runner, a process runner that
// recognises sanitizer reports, and byte/hex utilities.

import { AsyncLocalStorage } from 'node:async_hooks'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const hex = (bytes) => Buffer.from(bytes).toString('hex')

export function fromHex (text) {
  if (!/^([0-9a-f]{2})*$/i.test(text)) {
    throw new Error(`not hex: ${JSON.stringify(text)}`)
  }
  return new Uint8Array(Buffer.from(text, 'hex'))
}

export function bytesEqual (a, b) {
  return Buffer.from(a).equals(Buffer.from(b))
}

/** A copy of `bytes` with one bit of byte `index` (negative: from the end) flipped. */
export function flipBit (bytes, index = -1, bit = 0) {
  const out = new Uint8Array(bytes)
  const i = index < 0 ? out.length + index : index
  out[i] ^= 1 << bit
  return out
}

export class CheckError extends Error {}

/** Throws a CheckError naming the expectation unless `cond` holds. */
export function expect (cond, message) {
  if (!cond) {
    throw new CheckError(message)
  }
}

export function expectEqual (actual, expected, what) {
  if (actual !== expected) {
    throw new CheckError(`${what}: got ${JSON.stringify(actual)}, want ${JSON.stringify(expected)}`)
  }
}

const SANITIZER_RE = /(Address|Leak|UndefinedBehavior|Memory|Thread)Sanitizer|runtime error:/

/**
 * Runs a program and collects its output; never rejects for a non-zero exit.
 * `sanitizer` is true when the child printed a sanitizer report or died of a signal:
 * such a run is a failure whatever the check expected.
 */
export function run (file, args, { timeoutMs = 60_000 } = {}) {
  return new Promise((resolve) => {
    const child = spawn(file, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0',
        UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1'
      }
    })
    const out = []
    const err = []
    child.stdout.on('data', (d) => out.push(d))
    child.stderr.on('data', (d) => err.push(d))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', (e) => {
      clearTimeout(timer)
      resolve({ code: -1, signal: null, stdout: '', stderr: String(e), sanitizer: false, spawnError: true })
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const stdout = Buffer.concat(out).toString('utf8')
      const stderr = Buffer.concat(err).toString('utf8')
      resolve({ code, signal, stdout, stderr, sanitizer: signal != null || SANITIZER_RE.test(stderr) })
    })
  })
}

/** A one-line description of a run for failure messages. */
export function describeRun (cmd, r) {
  const status = r.signal != null ? `signal ${r.signal}` : `exit ${r.code}`
  const clip = (s) => (s.length > 1500 ? s.slice(0, 1500) + '…' : s).trim()
  return `\`${cmd}\` → ${status}; stdout: ${JSON.stringify(clip(r.stdout))}; stderr: ${JSON.stringify(clip(r.stderr))}`
}

export function makeTempDir () {
  const dir = mkdtempSync(join(tmpdir(), 'ringp2p-interop-'))
  return { dir, path: (name) => join(dir, name), remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/** The running check's context ({ usedTools }), for the --self-test mode. */
export const currentCheck = new AsyncLocalStorage()

/**
 * Collects named checks and runs them with bounded concurrency. A check is an async
 * function that throws (CheckError or anything else) on failure.
 */
export class Runner {
  constructor ({ verbose = false, concurrency = 4, filter = null } = {}) {
    this.verbose = verbose
    this.concurrency = concurrency
    this.filter = filter
    this.checks = []
  }

  check (group, name, fn) {
    if (this.filter != null && !`${group} ${name}`.includes(this.filter)) {
      return
    }
    this.checks.push({ group, name, fn })
  }

  /**
   * Runs the checks against a lying ringp2p (--self-test): every check that drives the programs
   * under test must fail; the others are js-side checks. Prints and returns the counts.
   */
  async selfTest () {
    const results = await this.#runAll()
    let caught = 0
    let jsSide = 0
    const missed = []
    this.checks.forEach((c, i) => {
      if (!results[i].usedTools) jsSide++
      else if (results[i].ok) missed.push(`${c.group}: ${c.name}`)
      else caught++
    })
    for (const m of missed) console.log(`  MISSED  ${m} (passed against a lying ringp2p)`)
    console.log(`  self-test: ${caught} ringp2p checks failed as they should, ${missed.length} passed, ` +
      `${jsSide} js-side checks not involved`)
    return { passed: caught, failed: missed.length }
  }

  async run () {
    const results = await this.#runAll()
    return this.#report(results)
  }

  async #runAll () {
    const results = new Array(this.checks.length)
    let next = 0
    const worker = async () => {
      while (next < this.checks.length) {
        const i = next++
        const c = this.checks[i]
        const ctx = { usedTools: false }
        try {
          await currentCheck.run(ctx, c.fn)
          results[i] = { ok: true, usedTools: ctx.usedTools }
        } catch (e) {
          results[i] = {
            ok: false,
            usedTools: ctx.usedTools,
            error: e instanceof CheckError ? e.message : (e?.stack ?? String(e))
          }
        }
      }
    }
    await Promise.all(Array.from({ length: this.concurrency }, worker))
    return results
  }

  #report (results) {
    const groups = new Map()
    let passed = 0
    let failed = 0
    this.checks.forEach((c, i) => {
      const r = results[i]
      const g = groups.get(c.group) ?? { passed: 0, failed: 0 }
      groups.set(c.group, g)
      if (r.ok) {
        passed++
        g.passed++
        if (this.verbose) {
          console.log(`  ok    ${c.group}: ${c.name}`)
        }
      } else {
        failed++
        g.failed++
        console.log(`  FAIL  ${c.group}: ${c.name}`)
        console.log(`        ${r.error.replace(/\n/g, '\n        ')}`)
      }
    })
    for (const [name, g] of groups) {
      console.log(`  ${name}: ${g.passed} passed, ${g.failed} failed`)
    }
    return { passed, failed }
  }
}

// Command-line flags for the driver scripts: flag(name) and option(name) remove what they
// find from argv, so what is left are the positional arguments.
export function args (argv) {
  const flag = (name) => {
    const i = argv.indexOf(name)
    if (i < 0) return false
    argv.splice(i, 1)
    return true
  }
  const option = (name) => {
    const i = argv.indexOf(name)
    if (i < 0) return null
    const v = argv[i + 1]
    argv.splice(i, 2)
    return v
  }
  return { flag, option }
}
