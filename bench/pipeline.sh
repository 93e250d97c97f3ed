#!/bin/sh
# The main job, measured: from a warm source cache (tarballs in build/cache)
# to a booted image, per stage; boot-to-prompt time; a second run of
# system-image with nothing changed (goal: under one second); image sizes.
#
# Usage: bench/pipeline.sh [ARCH]   (default sh4)
# Builds in build/bench-<arch> (removed first), so your build/ is untouched
# apart from the shared source cache.
arch=${1:-sh4}
. "$(dirname "$0")/common.sh"
dir=build/bench-$arch
# The numbers in docs/benchmarks.md wrap Debian's cross compiler; bench/toolchain.sh
# measures the one built from source.
export RHBUILD_SET_TOOLCHAIN=${TOOLCHAIN:-debian}

"$rh" fetch busybox musl >/dev/null
rm -rf "$dir"; mkdir -p "$dir"
cp -a build/cache "$dir/cache"

s=$(date +%s%N)
"$rh" run scripts/smoketest.rhai --arch "$arch" $src --build-dir "$dir" -j "$(nproc)" | tee "$dir/run.log"
e=$(date +%s%N)
echo
echo "whole pipeline, warm source cache: $(( (e - s) / 1000000000 )) s"
echo "per stage (from the manifests; a stage's time includes the packages it built):"
for m in "$dir/$arch"/*/manifest.json; do
    stage=$(sed -n 's/.*"stage": "\(.*\)".*/\1/p' "$m")
    secs=$(sed -n 's/.*"seconds": \([0-9.]*\).*/\1/p' "$m")
    printf '  %-18s %8.1f s\n' "$stage" "$secs"
done
echo "packages:"
grep -E "^    [a-z0-9 -]+ done in" "$dir/run.log" | grep -v "(" | sed 's/^ */  /'
grep -o "booted to the prompt in [0-9.]* s" "$dir/run.log" | sed 's/^/boot: /'

best=""
for i in 1 2 3 4 5; do
    s=$(date +%s%N)
    "$rh" run scripts/system-image.rhai --arch "$arch" $src --build-dir "$dir" >/dev/null 2>&1
    e=$(date +%s%N)
    ms=$(( (e - s) / 1000000 ))
    if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
done
echo "second run of system-image, nothing changed: best of 5 = $best ms"
echo "sizes:"
ls -l "$dir/$arch/system-image/" | awk 'NR>1 && $NF != "manifest.json" {printf "  %-22s %9d bytes\n", $NF, $5}'
du -sb "$dir/$arch/root-filesystem" | awk '{printf "  root-filesystem        %9d bytes\n", $1}'
