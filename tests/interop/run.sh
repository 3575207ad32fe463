#!/usr/bin/env bash
# Cross-checks of ringp2p against js-libp2p (versions pinned in package-lock.json, run on the
# Node 22 that the `node` npm package installs locally).
# Usage: run.sh RINGP2P_BIN INTEROP_BIN_DIR [--suite interop|host|relay] [-v] [--filter TEXT]
# Installs node_modules with `npm ci` when it is missing or older than the lock file (the
# npm registry is the only network it uses), then runs interop.mjs, whose last line is
# "interop: N passed, N failed", or with `--suite host` host.mjs (the ringp2p host against
# js-libp2p peers: listen, ping, identify, stream, perf, and the matrix of {noise, tls,
# plaintext} x {yamux, mplex} both ways), whose last line is
# "host-interop: N passed, N failed".
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 RINGP2P_BIN INTEROP_BIN_DIR [--suite interop|host|relay] [-v] [--filter TEXT]" >&2
    exit 2
fi
bin=$(realpath "$1")
dir=$(realpath "$2")
shift 2
suite=interop
args=()
while [ $# -gt 0 ]; do
    if [ "$1" = --suite ] && [ $# -ge 2 ]; then
        suite=$2
        shift 2
    else
        args+=("$1")
        shift
    fi
done
case $suite in
interop | host | relay) ;;
*)
    echo "$0: unknown suite '$suite' (interop, host, relay)" >&2
    exit 2
    ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

node=node_modules/.bin/node
if [ ! -d node_modules ] || [ ! -x "$node" ] || [ package-lock.json -nt node_modules ] ||
    [ package.json -nt node_modules ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "interop: npm is missing (make deps installs it)" >&2
        exit 1
    fi
    echo "interop: installing the pinned js-libp2p packages (npm ci)"
    log=$(mktemp)
    if ! npm ci --no-audit --no-fund --loglevel=error >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "interop: npm ci failed" >&2
        exit 1
    fi
    rm -f "$log"
    touch node_modules
fi
if ! version=$("$node" --version 2>/dev/null) || [ "${version%%.*}" != v22 ]; then
    echo "interop: $here/$node is not Node 22 (got '${version:-nothing}'); remove node_modules and retry" >&2
    exit 1
fi

# relay: relay.mjs, js-libp2p through `ringp2p listen --relay-server` ("relay-interop: N passed, N failed")
[ "$suite" = relay ] && exec "$node" relay.mjs "$bin" ${args[@]+"${args[@]}"}
if [ "$suite" = host ]; then
    exec "$node" host.mjs "$bin" ${args[@]+"${args[@]}"}
fi
exec "$node" interop.mjs "$bin" "$dir" ${args[@]+"${args[@]}"}
