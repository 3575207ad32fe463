#!/usr/bin/env bash
# `make run`: two ringp2p nodes on this machine, for real: identities, a listener, ping,
# identify, and a file sent through a libp2p stream (TCP, Noise, yamux) and checked.
# The main job of the design (perf transfers in every security mode, side by side) needs
# TLS, the signed and clear modes and the perf protocol (issue 5); this says so.
set -euo pipefail
tool=${1:-build/ringp2p}
tmp=$(mktemp -d)
listener=
cleanup() {
    [ -n "$listener" ] && kill "$listener" 2>/dev/null && wait "$listener" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
say() { printf '\n%s%s%s\n' "$bold" "$*" "$plain"; }
run() {
    printf '$ %s\n' "ringp2p ${*}"
    "$tool" "$@"
}

echo "ringp2p $("$tool" --version | awk '{print $2}'): libp2p in C11 on io_uring."
echo "This tour runs two nodes on this machine over TCP + Noise + yamux. Not built yet: TLS,"
echo "the signed and clear modes, mplex and the perf protocol (so no side-by-side perf run yet),"
echo "relay and hole punching."

say "1. Identities: libp2p protobuf key files (mode 0600), readable by go- and js-libp2p"
run keygen --type ed25519 --out "$tmp/server.key"
run keygen --type secp256k1 --out "$tmp/client.key"
run keygen --out "$tmp/server.key" || echo "(exit status $?: an existing key is never replaced without --force)"

say "2. A listener with 2 shards (one io_uring thread per core)"
printf '$ %s\n' "ringp2p listen --key server.key --listen /ip4/127.0.0.1/tcp/0 --shards 2 --json &"
"$tool" listen --key "$tmp/server.key" --listen /ip4/127.0.0.1/tcp/0 --shards 2 --json \
    >"$tmp/events" 2>"$tmp/listen.err" &
listener=$!
for _ in $(seq 100); do
    [ -s "$tmp/events" ] && break
    sleep 0.05
done
ready=$(head -1 "$tmp/events")
[ -n "$ready" ] || {
    echo "the listener did not start:" >&2
    cat "$tmp/listen.err" >&2
    exit 1
}
echo "$ready"
addr=$(echo "$ready" | sed -E 's/.*"addrs":\["([^"]+)".*/\1/')

say "3. Ping and identify from a second node"
run ping "$addr" --key "$tmp/client.key" --count 3
run identify "$addr" --key "$tmp/client.key"

say "4. 64 MiB through a libp2p stream to /echo/1.0.0 and back, checked with SHA-256"
head -c $((64 << 20)) /dev/urandom >"$tmp/data"
printf '$ %s\n' "ringp2p stream $addr /echo/1.0.0 < data > back"
start=$(date +%s.%N)
"$tool" stream "$addr" /echo/1.0.0 --key "$tmp/client.key" <"$tmp/data" >"$tmp/back"
end=$(date +%s.%N)
sent=$(sha256sum <"$tmp/data" | cut -c1-16)
got=$(sha256sum <"$tmp/back" | cut -c1-16)
echo "sent sha256 $sent…, received $got… ($(stat -c %s "$tmp/back") bytes)"
[ "$sent" = "$got" ] || {
    echo "MISMATCH" >&2
    exit 1
}
awk -v s="$start" -v e="$end" 'BEGIN { printf "128 MiB moved (64 each way, encrypted) in %.2f s, including process start and the handshake\n", e - s }'

say "5. Bad input gets a reason, not a crash"
wrong=$("$tool" id --json | sed -E 's/.*"peerId":"([^"]+)".*/\1/')
run ping "${addr%/p2p/*}/p2p/$wrong" --key "$tmp/client.key" --count 1 || echo "(exit status $?)"
run addr "/ip4/1.2.3.4/tcp/70000" || echo "(exit status $?)"

say "6. What the listener saw (its JSON events), then a clean stop on SIGTERM"
kill -TERM "$listener"
wait "$listener" && echo "(listener exited 0)"
listener=
tail -n +2 "$tmp/events"

say "Done. The keys and files above were temporary and have been removed."
