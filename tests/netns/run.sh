#!/usr/bin/env bash
# NAT traversal tests in network namespaces (see README.md). Runs every case_* function of
# tests/netns/case_*.sh, each in its own shell with its own topology and a time limit, and prints
# PASS/FAIL/SKIP per case and "netns: N passed, N failed, N skipped". Exits 1 if any case failed
# (or, with NETNS_STRICT=1, was skipped).
#
# Usage: run.sh --nstool BIN [--ringp2p BIN] [--filter TEXT] [-v]
#   -v                 print every case's log, not only the failing ones
#   NETNS_DELAY        auto (default) | netem | wire: how WAN delay is made
#   NETNS_CASE_TIMEOUT seconds per case (default 60)
#   NETNS_KEEP_LOGS=1  keep each topology's program outputs under /tmp/rpnt-*
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)

if [ "${1:-}" = --one ]; then
    # One case, in this shell: run.sh --one CASE (environment from the parent).
    set -Eeuo pipefail
    # shellcheck source=lib.sh
    source "$here/lib.sh"
    for f in "$here"/case_*.sh; do
        # shellcheck disable=SC1090
        source "$f"
    done
    trap 'echo "FAIL: ${BASH_SOURCE[0]##*/}:$LINENO (${FUNCNAME[0]:-}): $BASH_COMMAND (exit $?)" >&2' ERR
    "$2"
    exit 0
fi

nstool='' ringp2p='' filter='' verbose=0
while [ $# -gt 0 ]; do
    case $1 in
    --nstool) nstool=$2 && shift ;;
    --ringp2p) ringp2p=$2 && shift ;;
    --filter) filter=$2 && shift ;;
    -v) verbose=1 ;;
    *)
        echo "usage: $0 --nstool BIN [--ringp2p BIN] [--filter TEXT] [-v]" >&2
        exit 2
        ;;
    esac
    shift
done
[ -n "$nstool" ] || {
    echo "usage: $0 --nstool BIN [--ringp2p BIN] [--filter TEXT] [-v]" >&2
    exit 2
}
NSTOOL=$(realpath -m "$nstool")
# A missing helper is a broken build, not a reason to skip.
if [ ! -x "$NSTOOL" ]; then
    echo "netns: nstool binary '$NSTOOL' is missing (make netns builds it)" >&2
    exit 2
fi
RINGP2P=
[ -z "$ringp2p" ] || RINGP2P=$(realpath -m "$ringp2p")
export NSTOOL RINGP2P

# shellcheck source=lib.sh
source "$here/lib.sh"

cases=()
while IFS= read -r c; do
    [ -z "$filter" ] || [[ $c == *"$filter"* ]] && cases+=("$c")
done < <(sed -n 's/^\(case_[a-zA-Z0-9_]*\)() *{.*/\1/p' "$here"/case_*.sh)

unmet=$(nt_unmet)
if [ -z "$unmet" ]; then
    # Namespaces of runs that were killed outright (no cleanup): their pid is gone and they are
    # older than any run. Only our own name prefix is touched.
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^rpnt-[0-9]+-' || true); do
        pid=${ns#rpnt-}
        pid=${pid%%-*}
        if ! kill -0 "$pid" 2>/dev/null &&
            [ -n "$(find "/run/netns/$ns" -maxdepth 0 -mmin +10 2>/dev/null)" ]; then
            echo "netns: removing leftover namespace $ns"
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
    NT_DELAY_IMPL=$(nt_delay_impl)
    NT_CHECKED=1
    export NT_DELAY_IMPL NT_CHECKED
    echo "netns: WAN delay by $NT_DELAY_IMPL$([ "$NT_DELAY_IMPL" = wire ] &&
        echo ' (this kernel has no sch_netem; nstool wire is a userspace delay line)')"
fi

pass=0 failn=0 skipn=0 stop=
logdir=$(mktemp -d /tmp/rpnt-logs.XXXX)
trap 'rm -rf "$logdir"' EXIT
# Ctrl-C reaches the running case too (same process group); it cleans up, then we stop here.
trap 'stop=interrupted' INT
trap 'stop=terminated' TERM
t_all=$(date +%s%N)
for c in "${cases[@]}"; do
    name=${c#case_}
    [ -z "$stop" ] || break
    if [ -n "$unmet" ]; then
        echo "SKIP netns/$name: $unmet"
        skipn=$((skipn + 1))
        continue
    fi
    log=$logdir/$name.log
    t0=$(date +%s%N)
    rc=0
    # --foreground keeps the case in our process group, so Ctrl-C reaches it; on timeout the
    # case's shell gets TERM and tears its topology down (KILL 5 s later if it hangs).
    timeout --foreground -k 5 "${NETNS_CASE_TIMEOUT:-60}" bash "$here/run.sh" --one "$c" \
        >"$log" 2>&1 || rc=$?
    secs=$(awk -v n=$(($(date +%s%N) - t0)) 'BEGIN { printf "%.1f", n / 1e9 }')
    if [ -n "$stop" ]; then
        echo "STOP netns/$name ($stop after ${secs}s)"
    elif [ $rc -eq 0 ]; then
        echo "PASS netns/$name (${secs}s)"
        pass=$((pass + 1))
        [ $verbose -eq 0 ] || sed 's/^/    /' "$log"
    elif [ $rc -eq "$NT_SKIP" ]; then
        echo "SKIP netns/$name: $(grep -m1 '^SKIP: ' "$log" | sed 's/^SKIP: //')"
        skipn=$((skipn + 1))
    else
        [ $rc -ne 124 ] || echo "    (killed after ${NETNS_CASE_TIMEOUT:-60}s)" >>"$log"
        echo "FAIL netns/$name (${secs}s, exit $rc)"
        sed 's/^/    /' "$log"
        failn=$((failn + 1))
    fi
done
secs=$(awk -v n=$(($(date +%s%N) - t_all)) 'BEGIN { printf "%.1f", n / 1e9 }')
if [ -n "$stop" ]; then
    echo "netns: $stop after $pass passed, $failn failed, $skipn skipped (${secs}s)"
    exit 130
fi
echo "netns: $pass passed, $failn failed, $skipn skipped (${secs}s)"
[ $failn -eq 0 ] || exit 1
[ $skipn -eq 0 ] || [ "${NETNS_STRICT:-0}" != 1 ] || {
    echo "netns: NETNS_STRICT=1 and cases were skipped" >&2
    exit 1
}
exit 0
