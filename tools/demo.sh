#!/usr/bin/env bash
# `make run`: what ringp2p can do today, run for real on this machine.
# The main job (two nodes transferring data) needs the host layer, which is not
# built yet; this script says so instead of faking it.
set -euo pipefail
tool=${1:-build/ringp2p}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
say() { printf '\n%s%s%s\n' "$bold" "$*" "$plain"; }
run() {
    printf '$ %s\n' "ringp2p ${*}"
    "$tool" "$@"
}

echo "ringp2p $("$tool" --version | awk '{print $2}'): libp2p in C11 on io_uring."
echo "Built so far: keys and peer IDs, multiaddrs, the io_uring runtime with its TCP transport, and"
echo "the protocol cores (multistream-select, Noise, yamux, identify, ping), each tested on its own."
echo "Not built yet: the host that joins them into libp2p connections, so no two nodes talk yet."
echo "This demo shows identities and addresses only."

say "1. A fresh identity of each key type, written as libp2p protobuf key files (mode 0600)"
for t in ed25519 secp256k1 ecdsa rsa; do
    run keygen --type "$t" --out "$tmp/$t.key" --json
done
ls -l "$tmp" | awk 'NR>1 {print "   " $1, $5, $NF}'

say "2. Reading a key file back: the same peer ID, in base58btc and as a CIDv1"
run id --key "$tmp/ed25519.key"

say "3. Refusing to overwrite a key without --force"
run keygen --out "$tmp/ed25519.key" || echo "(exit status $?, the key is untouched)"

peer=$("$tool" id --key "$tmp/ed25519.key" --json | sed -E 's/.*"peerId":"([^"]+)".*/\1/')
say "4. Multiaddrs: text to binary and back, with this node's peer ID at the end"
run addr "/ip4/127.0.0.1/tcp/4001/p2p/$peer"
run addr "/ip6/fe80::8823:6dff:fee7:f172/tcp/4001/ipfs/QmYJyUMAcXEw1b5bFfbBbzYu5wyyjLMRHXGUkCXpag74Fu"
run addr --json "/dns4/example.com/tcp/443/wss/p2p-circuit/p2p/$peer"
hex=$("$tool" addr --json /ip4/162.246.145.218/tcp/7650/ip4/192.168.0.1/tcp/4001 |
    sed -E 's/.*"hex":"([0-9a-f]+)".*/\1/')
run addr --hex "$hex"

say "5. Bad addresses get a reason, not a crash"
run addr "/ether/ac:fd:ec:0b:7c:fe/ipfs/QmYJyUMAcXEw1b5bFfbBbzYu5wyyjLMRHXGUkCXpag74Fu" ||
    echo "(exit status $?)"
run addr /ip4/1.2.3.4/tcp/70000 || echo "(exit status $?)"

say "Done. The key files above were temporary and have been removed."
