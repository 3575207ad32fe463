// A stand-in for `ringp2p` and `keycheck` that gets everything wrong, for
// `interop.mjs --self-test`: it accepts every input, prints well-formed but wrong answers,
// writes garbage files and calls every signature invalid. Every check that drives the programs
// under test must fail against it.

import { writeFileSync } from 'node:fs'

const [cmd, ...args] = process.argv.slice(2)
const garbage = (file) => writeFileSync(file, Uint8Array.from([0x08, 0x01, 0x12, 0x01, 0x00]))
const lie = { peerId: '12D3KooWLie', cid: 'bafzlie', keyType: 'ed25519' }
const option = (name) => args[args.indexOf(name) + 1]

switch (cmd) {
  case 'addr':
    console.log(JSON.stringify({ hex: '0401020304', text: '/ip4/1.2.3.4' }))
    break
  case 'id':
    console.log(JSON.stringify(lie))
    break
  case 'keygen':
    garbage(option('--out'))
    break
  case 'sign': // keycheck sign KEY MSG OUT
    garbage(args[2])
    break
  case 'pub': // keycheck pub KEY OUT
    garbage(args[1])
    break
  case 'verify':
    process.exit(1)
    break
  case 'peerid':
    console.log(JSON.stringify({ peerId: lie.peerId, cid: lie.cid }))
    break
  case 'peer':
    console.log(JSON.stringify({ peerId: lie.peerId, cid: lie.cid, pub: null }))
    break
  default:
    process.exit(2)
}
