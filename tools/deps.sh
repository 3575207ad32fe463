#!/usr/bin/env bash
# Installs what ringp2p needs to build, test and benchmark, on Debian/Ubuntu.
# Idempotent and quiet: when everything is present it only checks and exits.
set -euo pipefail

pkgs=(
    gcc make pkg-config
    liburing-dev android-libboringssl-dev libprotobuf-c-dev protobuf-c-compiler
    libmimalloc-dev libcriterion-dev libsecp256k1-dev
    clang libclang-rt-14-dev clang-format # libFuzzer, sanitizers, style check
    iperf3                                # benchmark baseline
    iproute2 nftables                     # NAT tests in network namespaces (ip, tc, nft)
)

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Node.js and npm install the js-libp2p test peers; any Node source will do.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
        echo "deps: missing packages (${missing[*]}) and not root; install them or run as root" >&2
        exit 1
    }
    sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
