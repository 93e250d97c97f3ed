#!/bin/sh
# Times the quick commands a user runs again and again:
#   rhbuild check (the whole tree)        goal: under 100 ms
#   rhbuild fetch, everything cached      goal: under 300 ms
# Each is run 10 times after a warm-up; the best and the mean are printed.
#
# Usage: bench/commands.sh   (needs the sources in build/cache: run
#        `rhbuild fetch --source linux=/usr/src/linux-source-6.1.tar.xz` once)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
cargo build --quiet --release
rh=${CARGO_TARGET_DIR:-$here/target}/release/rhbuild

time_it() {
    name=$1; shift
    "$@" >/dev/null 2>&1 || { echo "error: \`$*\` failed; run it by hand to see why" >&2; exit 1; }
    best=""; total=0
    for i in 1 2 3 4 5 6 7 8 9 10; do
        s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N)
        ms=$(( (e - s) / 1000000 ))
        total=$((total + ms))
        if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
    done
    printf '%-40s best %4d ms   mean %4d ms\n' "$name" "$best" "$((total / 10))"
}

time_it "rhbuild check ($(ls scripts packages stdlib targets/*/target.rhai | grep -c rhai) files)" "$rh" check
time_it "rhbuild fetch (busybox musl, cached)" "$rh" fetch busybox musl
time_it "rhbuild fetch (all packages, cached)" "$rh" fetch --source linux=/usr/src/linux-source-6.1.tar.xz
