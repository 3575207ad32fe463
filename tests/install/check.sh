#!/usr/bin/env bash
# Installs ringp2p into a temporary prefix and builds the README's example against it with
# pkg-config, statically and dynamically, then runs both.
set -euo pipefail
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
make --no-print-directory -s install PREFIX="$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
src=tests/install/hello.c
pass=0
fail=0
# shellcheck disable=SC2046
if cc -std=c11 -Wall -Werror -o "$prefix/hello-shared" "$src" $(pkg-config --cflags --libs ringp2p) \
    -Wl,-rpath,"$prefix/lib" && "$prefix/hello-shared" >/dev/null; then
    pass=$((pass + 1))
else
    echo "install: shared build of the README example failed"
    fail=$((fail + 1))
fi
# shellcheck disable=SC2046
if cc -std=c11 -Wall -Werror -o "$prefix/hello-static" "$src" $(pkg-config --cflags ringp2p) \
    "$prefix/lib/libringp2p.a" $(pkg-config --libs-only-other --libs-only-L --static ringp2p | sed 's/-lringp2p//') \
    $(pkg-config --static --libs-only-l ringp2p | sed 's/-lringp2p//') && "$prefix/hello-static" >/dev/null; then
    pass=$((pass + 1))
else
    echo "install: static build of the README example failed"
    fail=$((fail + 1))
fi
[ -x "$prefix/bin/ringp2p" ] && "$prefix/bin/ringp2p" --version >/dev/null && pass=$((pass + 1)) ||
    { echo "install: the installed tool does not run"; fail=$((fail + 1)); }
echo "install: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
