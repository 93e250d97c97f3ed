#!/bin/sh
# The toolchain built from source, measured: wall time per package and for
# the whole cross-compiler stage at -j$(nproc), the size of the toolchain
# directory and of its tarball, and a rerun with nothing changed (goal:
# under one second). ccache is off so every compile is counted (CCACHE=0).
#
# Usage: bench/toolchain.sh [ARCH]   (default sh4)
# Builds in build/bench-toolchain-<arch> (removed first), so your build/ is
# untouched apart from the shared source cache.
arch=${1:-sh4}
. "$(dirname "$0")/common.sh"
dir=build/bench-toolchain-$arch
unset TOOLCHAIN CROSS_COMPILE

"$rh" fetch binutils gcc gmp mpfr mpc musl >/dev/null
rm -rf "$dir"; mkdir -p "$dir"
cp -a build/cache "$dir/cache"

s=$(date +%s%N)
"$rh" run scripts/cross-compiler.rhai --arch "$arch" $src --build-dir "$dir" -j "$(nproc)" \
    --set CCACHE=0 | tee "$dir/run.log"
e=$(date +%s%N)
echo
echo "cross-compiler stage, warm source cache: $(( (e - s) / 1000000000 )) s"
echo "packages:"
grep -E "^    [a-z0-9 +-]+ done in" "$dir/run.log" | grep -v "(" | sed 's/^ */  /'
tc="$dir/$arch/cross-compiler"
du -sb --exclude=dist "$tc" | awk '{printf "toolchain directory: %d bytes\n", $1}'
ls -l "$tc"/dist/*.tar.gz | awk '{printf "tarball: %d bytes\n", $5}'

best=""
for i in 1 2 3 4 5; do
    s=$(date +%s%N)
    "$rh" run scripts/cross-compiler.rhai --arch "$arch" $src --build-dir "$dir" --set CCACHE=0 >/dev/null 2>&1
    e=$(date +%s%N)
    ms=$(( (e - s) / 1000000 ))
    if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
done
echo "rerun with nothing changed: best of 5 = $best ms"
