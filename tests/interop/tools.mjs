// Drives the programs under test: the ringp2p tool (`addr`, `id`, `keygen`) and the keycheck
// helper (tests/interop/keycheck.c). Every helper fails the calling check on a sanitizer
// report, a signal, or output that does not have the documented shape.

import { join } from 'node:path'
import { CheckError, currentCheck, describeRun, expect, run as runProgram } from './lib.mjs'

function parseJson (cmd, r, keys) {
  let v
  try {
    v = JSON.parse(r.stdout)
  } catch {
    throw new CheckError(`stdout is not one JSON object: ${describeRun(cmd, r)}`)
  }
  for (const k of keys) {
    if (typeof v?.[k] !== 'string') {
      throw new CheckError(`JSON lacks string field "${k}": ${describeRun(cmd, r)}`)
    }
  }
  return v
}

// Marks the running check as one that drives the programs under test (see --self-test).
function run (file, args) {
  const ctx = currentCheck.getStore()
  if (ctx != null) ctx.usedTools = true
  return runProgram(file, args)
}

export function makeTools (ringp2pBin, interopDir) {
  const keycheckBin = join(interopDir, 'keycheck')

  async function mustSucceed (file, args) {
    const cmd = [file, ...args].join(' ')
    const r = await run(file, args)
    if (r.sanitizer || r.code !== 0) {
      throw new CheckError(`expected success: ${describeRun(cmd, r)}`)
    }
    return { r, cmd }
  }

  return {
    /** `ringp2p addr --json ARGS` → {hex, text}. */
    async addr (args) {
      const { r, cmd } = await mustSucceed(ringp2pBin, ['addr', '--json', ...args])
      const v = parseJson(cmd, r, ['hex', 'text'])
      expect(/^([0-9a-f]{2})*$/.test(v.hex), `hex is not lower-case hex: ${describeRun(cmd, r)}`)
      return v
    },

    /** `ringp2p addr --json ARGS` must fail cleanly, with a reason on stderr. */
    async addrRejects (args, mention) {
      const full = ['addr', '--json', ...args]
      const cmd = [ringp2pBin, ...full].join(' ')
      const r = await run(ringp2pBin, full)
      expect(!r.sanitizer && !r.spawnError, `crashed or could not run: ${describeRun(cmd, r)}`)
      expect(r.code !== 0, `accepted an invalid input: ${describeRun(cmd, r)}`)
      expect(r.stderr.trim() !== '', `rejected without a reason on stderr: ${describeRun(cmd, r)}`)
      expect(!r.stdout.includes('"hex"'), `printed a result and failed: ${describeRun(cmd, r)}`)
      if (mention != null) {
        expect(
          r.stderr.toLowerCase().includes(mention.toLowerCase()),
          `the reason does not name ${JSON.stringify(mention)}: ${describeRun(cmd, r)}`
        )
      }
    },

    /** `ringp2p id --key FILE --json` → {peerId, cid, keyType}. */
    async id (keyFile) {
      const { r, cmd } = await mustSucceed(ringp2pBin, ['id', '--key', keyFile, '--json'])
      return parseJson(cmd, r, ['peerId', 'cid', 'keyType'])
    },

    /** `ringp2p keygen --type TYPE --out FILE`. */
    async keygen (type, file) {
      await mustSucceed(ringp2pBin, ['keygen', '--type', type, '--out', file])
    },

    /** keycheck sign KEYFILE MSGFILE SIGOUT */
    async sign (keyFile, msgFile, sigOut) {
      await mustSucceed(keycheckBin, ['sign', keyFile, msgFile, sigOut])
    },

    /** keycheck pub KEYFILE OUT */
    async pub (keyFile, out) {
      await mustSucceed(keycheckBin, ['pub', keyFile, out])
    },

    /** keycheck verify PUBFILE MSGFILE SIGFILE → true (exit 0) / false (exit 1); else a failure. */
    async verify (pubFile, msgFile, sigFile) {
      const args = ['verify', pubFile, msgFile, sigFile]
      const cmd = [keycheckBin, ...args].join(' ')
      const r = await run(keycheckBin, args)
      if (r.sanitizer || (r.code !== 0 && r.code !== 1)) {
        throw new CheckError(`keycheck verify errored: ${describeRun(cmd, r)}`)
      }
      return r.code === 0
    },

    /** keycheck peerid PUBFILE → {peerId, cid} of a protobuf PublicKey. */
    async peerOfPub (pubFile) {
      const { r, cmd } = await mustSucceed(keycheckBin, ['peerid', pubFile])
      return parseJson(cmd, r, ['peerId', 'cid'])
    },

    /** keycheck peer TEXT → {peerId, cid, pub} (pub: hex of the inlined key, or null). */
    async parsePeer (text) {
      const { r, cmd } = await mustSucceed(keycheckBin, ['peer', text])
      const v = parseJson(cmd, r, ['peerId', 'cid'])
      expect(v.pub === null || typeof v.pub === 'string', `bad "pub": ${describeRun(cmd, r)}`)
      return v
    },

    /** keycheck peer TEXT must fail with exit 1 and a reason. */
    async parsePeerRejects (text) {
      const args = ['peer', text]
      const cmd = [keycheckBin, ...args].join(' ')
      const r = await run(keycheckBin, args)
      expect(!r.sanitizer && r.code === 1, `expected exit 1 (invalid): ${describeRun(cmd, r)}`)
      expect(r.stderr.trim() !== '', `rejected without a reason: ${describeRun(cmd, r)}`)
    }
  }
}

