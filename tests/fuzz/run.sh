#!/usr/bin/env bash
# Runs each libFuzzer target for SECONDS on its corpus (tests/fuzz/corpus/<name>/, seeds
# committed; new inputs go to a scratch copy so runs do not churn the tree).
# Usage: run.sh SECONDS TARGET...
set -uo pipefail
secs=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
passed=0
failed=0
for bin in "$@"; do
    name=$(basename "$bin")
    seeds="$here/corpus/$name"
    work=$(mktemp -d)
    mkdir -p "$seeds"
    log="$work/log"
    if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$work/" "$work" "$seeds" >"$log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
        echo "fuzz $name: ok (${runs:-?} runs in ${secs}s)"
        passed=$((passed + 1))
    else
        echo "fuzz $name: FAILED"
        tail -n 40 "$log"
        ls "$work"/crash-* "$work"/leak-* "$work"/timeout-* 2>/dev/null | while read -r a; do
            cp "$a" "$here/corpus/$name/" && echo "  reproducer saved: tests/fuzz/corpus/$name/$(basename "$a")"
        done
        failed=$((failed + 1))
    fi
    rm -rf "$work"
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
