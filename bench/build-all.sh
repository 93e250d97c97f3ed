#!/bin/sh
# build-all, measured: the same targets built and smoketested from a warm
# source cache (tarballs in build/cache, nothing extracted or built), once
# one target at a time (PARALLEL=1, -j = all cores) and once side by side
# (PARALLEL = cores, -j 1 each). Prints both totals, per-target times and
# the speed-up.
#
# Usage: bench/build-all.sh [ARCHES]   (default: every target; a comma list)
# Builds in build/bench-all-serial and build/bench-all-parallel (removed
# first); your build/ is untouched apart from the shared source cache.
set -eu
arches=${1:-}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
cargo build --quiet --release
rh=${CARGO_TARGET_DIR:-$here/target}/release/rhbuild
# The matrix wraps Debian's cross compilers unless TOOLCHAIN says otherwise.
export RHBUILD_SET_TOOLCHAIN=${TOOLCHAIN:-debian}
src="--source linux=/usr/src/linux-source-6.1.tar.xz"
cpus=$(nproc)
"$rh" fetch busybox musl >/dev/null

total() { sed -n 's/^  "total_seconds": \([0-9.]*\),*/\1/p' "$1"; }

for mode in serial parallel; do
    dir=build/bench-all-$mode
    rm -rf "$dir"; mkdir -p "$dir"
    cp -a build/cache "$dir/cache"
    if [ $mode = serial ]; then par=1; else par=$cpus; fi
    "$rh" run scripts/build-all.rhai $src --build-dir "$dir" \
        ${arches:+--set ARCHES=$arches} --set PARALLEL=$par > "$dir/run.log" 2>&1 || true
    echo "$mode (PARALLEL=$par): $(total "$dir/report/report.json") s; $(grep -o '[0-9]* of [0-9]* targets passed' "$dir/run.log")"
    grep -E '^    [a-z0-9_]+ +(passed|FAILED) in' "$dir/run.log" | sed 's/ (log:.*//'
done
s=$(total build/bench-all-serial/report/report.json)
p=$(total build/bench-all-parallel/report/report.json)
echo "speed-up of parallel over serial: $(echo "scale=2; $s / $p" | bc)x"
