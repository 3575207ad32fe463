#!/usr/bin/env bash
# `make run`: two ringp2p nodes on this machine, for real: identities, a listener, ping,
# identify, checked transfers through libp2p streams, then the main job of the design: a
# /perf/1.0.0 transfer encrypted, with its live progress line, next to the same transfer
# signed and in the clear. TLS and mplex are shown only when this build's listener accepts
# them; nothing is claimed that did not run here.
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
# A number field of a one-line JSON object.
field() { sed -nE "s/.*\"$2\":([-0-9.e+]+).*/\1/p" <<<"$1"; }
sfield() { sed -nE "s/.*\"$2\":\"([^\"]*)\".*/\1/p" <<<"$1"; }

echo "ringp2p $("$tool" --version | awk '{print $2}'): libp2p in C11 on io_uring."
echo "This tour runs two nodes on this machine over TCP: encrypted, signed and in the clear,"
echo "then measures them with the perf protocol. Not in this tour: relay and hole punching."

say "1. Identities: libp2p protobuf key files (mode 0600), readable by go- and js-libp2p"
run keygen --type ed25519 --out "$tmp/server.key"
run keygen --type secp256k1 --out "$tmp/client.key"
run keygen --out "$tmp/server.key" || echo "(exit status $?: an existing key is never replaced without --force)"

say "2. A listener with 2 shards (one io_uring thread per core)"
# Offer every security protocol and muxer this build has: try the full lists, and drop a
# name the tool refuses as not built (saying so), so the rest of the tour is about what runs.
want_sec=(noise tls signed plaintext)
want_mux=(yamux mplex)
not_built=()
start_listener() {
    local sec mux
    sec=$(IFS=,; echo "${want_sec[*]}")
    mux=$(IFS=,; echo "${want_mux[*]}")
    : >"$tmp/events"
    "$tool" listen --key "$tmp/server.key" --listen /ip4/127.0.0.1/tcp/0 --shards 2 \
        --security "$sec" --muxer "$mux" --json >"$tmp/events" 2>"$tmp/listen.err" &
    listener=$!
    for _ in $(seq 100); do
        [ -s "$tmp/events" ] && return 0
        kill -0 "$listener" 2>/dev/null || break
        sleep 0.05
    done
    wait "$listener" 2>/dev/null || true
    listener=
    return 1
}
until start_listener; do
    err=$(cat "$tmp/listen.err")
    dropped=
    for n in tls mplex; do
        [[ "$err" == *"\"$n\" is not built yet"* ]] || continue
        keep=()
        for x in "${want_sec[@]}"; do [ "$x" = "$n" ] || keep+=("$x"); done
        want_sec=("${keep[@]}")
        keep=()
        for x in "${want_mux[@]}"; do [ "$x" = "$n" ] || keep+=("$x"); done
        want_mux=("${keep[@]}")
        not_built+=("$n: ${err##*: }")
        dropped=1
    done
    [ -n "$dropped" ] || {
        echo "the listener did not start:" >&2
        echo "$err" >&2
        exit 1
    }
done
sec=$(IFS=,; echo "${want_sec[*]}")
mux=$(IFS=,; echo "${want_mux[*]}")
printf '$ %s\n' "ringp2p listen --key server.key --listen /ip4/127.0.0.1/tcp/0 --shards 2 --security $sec --muxer $mux --json &"
for n in "${not_built[@]}"; do echo "(left out, not in this build: $n)"; done
ready=$(head -1 "$tmp/events")
echo "$ready"
addr=$(echo "$ready" | sed -E 's/.*"addrs":\["([^"]+)".*/\1/')

say "3. Ping and identify from a second node"
run ping "$addr" --key "$tmp/client.key" --count 3
run identify "$addr" --key "$tmp/client.key"
if [[ " ${want_mux[*]} " == *" mplex "* ]]; then
    run ping "$addr" --key "$tmp/client.key" --count 1 --muxer mplex
fi

say "4. 64 MiB through a libp2p stream to /echo/1.0.0 and back, checked with SHA-256, per security mode"
head -c $((64 << 20)) /dev/urandom >"$tmp/data"
sent=$(sha256sum <"$tmp/data" | cut -c1-16)
echo "sent sha256 $sent…"
for mode in "${want_sec[@]}"; do
    printf '$ %s\n' "ringp2p stream $addr /echo/1.0.0 --security $mode < data > back"
    start=$(date +%s.%N)
    "$tool" stream "$addr" /echo/1.0.0 --key "$tmp/client.key" --security "$mode" \
        <"$tmp/data" >"$tmp/back"
    end=$(date +%s.%N)
    got=$(sha256sum <"$tmp/back" | cut -c1-16)
    [ "$sent" = "$got" ] || {
        echo "MISMATCH in $mode mode" >&2
        exit 1
    }
    awk -v m="$mode" -v s="$start" -v e="$end" -v h="$got" 'BEGIN {
        printf "  %-9s received sha256 %s…: 128 MiB moved in %.2f s (process start and handshake included)\n", m, h, e - s }'
done
rm -f "$tmp/data" "$tmp/back"

say "5. Throughput with /perf/1.0.0: 1 GiB up, then 1 GiB down, per security mode (encrypted first)"
size=1G
# The progress line is drawn on stderr when it is a terminal; --progress draws it even when
# make's output goes to a file or a pipe, so it is part of this tour either way.
perf_modes=()
for mode in noise tls signed plaintext; do
    if [[ " ${want_sec[*]} " == *" $mode "* ]]; then perf_modes+=("$mode"); fi
done
for mode in "${perf_modes[@]}"; do
    printf '$ %s\n' "ringp2p perf $addr --security $mode --upload $size --download $size --progress --json"
    "$tool" perf "$addr" --security "$mode" --upload "$size" --download "$size" --progress \
        --json >"$tmp/perf.$mode"
    cat "$tmp/perf.$mode"
done
echo
printf '%s%-10s %-22s %11s %13s %14s%s\n' "$bold" mode "security protocol" "upload MB/s" \
    "download MB/s" "× noise (up)" "$plain"
base=$(field "$(cat "$tmp/perf.noise")" uploadMBps)
for mode in "${perf_modes[@]}"; do
    j=$(cat "$tmp/perf.$mode")
    awk -v m="$mode" -v p="$(sfield "$j" security)" -v u="$(field "$j" uploadMBps)" \
        -v d="$(field "$j" downloadMBps)" -v b="$base" \
        'BEGIN { printf "%-10s %-22s %11.1f %13.1f %13.2f×\n", m, p, u, d, u / b }'
done
echo "(MB = 10^6 bytes; rates from the client, per phase: upload until the server has it all,"
echo " download from its first byte to the end. One run each, client and listener sharing this"
echo " machine's $(nproc) cores with whatever else runs: indicative, not a benchmark. noise encrypts with"
if [[ " ${perf_modes[*]} " == *" tls "* ]]; then
    echo " ChaCha20-Poly1305, tls with the TLS 1.3 suite both ends' libssl agree on; signed sends in"
    echo " the clear with a 16-byte AES-GMAC tag per message; plaintext only when both sides enable it.)"
else
    echo " ChaCha20-Poly1305; signed sends in the clear with a 16-byte AES-GMAC tag per message;"
    echo " plaintext only when both sides enable it.)"
fi

say "6. Bad input gets a reason, not a crash"
wrong=$("$tool" id --json | sed -E 's/.*"peerId":"([^"]+)".*/\1/')
run ping "${addr%/p2p/*}/p2p/$wrong" --key "$tmp/client.key" --count 1 || echo "(exit status $?)"
run addr "/ip4/1.2.3.4/tcp/70000" || echo "(exit status $?)"

say "7. A clean stop on SIGTERM, then what the listener saw (its JSON events)"
kill -TERM "$listener"
wait "$listener" && echo "(listener exited 0)"
listener=
tail -n +2 "$tmp/events" | awk '
    /"event":"connection"/ { c++; match($0, /"security":"[^"]*"/); s[substr($0, RSTART + 12, RLENGTH - 13)]++ }
    /"event":"disconnection"/ { d++; if ($0 !~ /"reason":"closed"/) bad++ }
    /"event":"identify"/ { i++ }
    END {
        printf "%d connections (", c; sep = ""
        for (k in s) { printf "%s%s ×%d", sep, k, s[k]; sep = ", " }
        printf "), %d identified, %d disconnections, %d of them with an error\n", i, d, bad + 0
    }'
echo "the last two events:"
tail -n 2 "$tmp/events"

say "Done. The keys and files above were temporary and have been removed."
