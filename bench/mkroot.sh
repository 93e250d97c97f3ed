#!/bin/bash
# rhbuild beside mkroot, on the same compiler and kernel source.
#
# mkroot is toybox 0.8.9's scripts/mkroot.sh (from Debian's toybox source
# package), given our sh4 cross compiler built from source and Debian's
# linux-source-6.1; it builds a toybox root filesystem and a kernel. Its
# install.sh leaves `bc` (the kernel needs it) out of its airlock, so it
# gets HOST_EXTRA="bc objdump".
#
# Measured, wall time on this machine:
#   mkroot cold (its airlock, toybox, kernel), then its full rebuild (a
#     second run: mkroot rebuilds everything but the airlock);
#   rhbuild cold: root filesystem, kernel and image from a built toolchain,
#     with an empty ccache (goal: 0.75 of mkroot's cold time);
#   rhbuild after a one-line change to busybox's configuration
#     (BUSYBOX_STATIC): busybox and the image only (goal: under a tenth of
#     mkroot's full rebuild);
#   rhbuild with nothing changed (goal: under 50 ms).
#
# Usage: bench/mkroot.sh [BUILD_DIR]   (default build/bench-sh4; its sh4
# cross compiler is built from source first when missing, which takes long)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
dir=$(realpath -m "${1:-build/bench-sh4}")
cargo build --quiet --release
rh=${CARGO_TARGET_DIR:-$here/target}/release/rhbuild
src="--source linux=/usr/src/linux-source-6.1.tar.xz"
run() { "$rh" run "$@" --arch sh4 $src --build-dir "$dir" -j 2; }
secs() { echo "scale=1; ($2 - $1) / 1000000000" | bc; }

echo "== the sh4 cross compiler (from source; skipped when built)"
run scripts/cross-compiler.rhai | tail -1
tc="$dir/sh4/cross-compiler"
[ -x "$tc/bin/sh4-linux-musl-cc" ] || { echo "no $tc/bin/sh4-linux-musl-cc" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Only the orig tarball matters: apt-get fails when another file of the
# source package (its .debian.tar.xz) is gone from the archive.
(cd "$work" && apt-get source --download-only toybox >/dev/null 2>&1) || true
ls "$work"/toybox_0.8.9*.orig.tar.xz >/dev/null ||
    { echo "apt-get source --download-only toybox brought no orig tarball" >&2; exit 1; }
tar -C "$work" -xf "$work"/toybox_0.8.9*.orig.tar.xz
tar -C "$work" -xf /usr/src/linux-source-6.1.tar.xz
linux=$(echo "$work"/linux-source-6.1)
cd "$work/toybox-0.8.9"

echo "== mkroot cold"
s=$(date +%s%N)
scripts/mkroot.sh CROSS_COMPILE="$tc/bin/sh4-linux-musl-" LINUX="$linux" HOST_EXTRA="bc objdump" \
    > "$work/mkroot-cold.log" 2>&1 || { tail -20 "$work/mkroot-cold.log"; exit 1; }
e=$(date +%s%N); mk_cold=$(secs "$s" "$e")
echo "  mkroot cold: $mk_cold s"
s=$(date +%s%N)
scripts/mkroot.sh CROSS_COMPILE="$tc/bin/sh4-linux-musl-" LINUX="$linux" HOST_EXTRA="bc objdump" \
    > "$work/mkroot-again.log" 2>&1 || { tail -20 "$work/mkroot-again.log"; exit 1; }
e=$(date +%s%N); mk_again=$(secs "$s" "$e")
echo "  mkroot full rebuild: $mk_again s"
ls -l root/sh4/ 2>/dev/null | sed 's/^/    /'
cd "$here"

echo "== rhbuild cold (from the built toolchain, empty ccache)"
"$rh" clean --arch sh4 root-filesystem linux-kernel system-image --build-dir "$dir" > /dev/null
rm -rf "$dir/ccache"
s=$(date +%s%N)
run scripts/system-image.rhai > "$dir/bench-cold.log" 2>&1
e=$(date +%s%N); rh_cold=$(secs "$s" "$e")
grep "done in" "$dir/bench-cold.log" | sed 's/^/  /'
echo "  rhbuild cold: $rh_cold s ($(echo "scale=2; $rh_cold / $mk_cold" | bc) of mkroot's)"

echo "== rhbuild after a one-line change to busybox's configuration"
s=$(date +%s%N)
run scripts/system-image.rhai --set BUSYBOX_STATIC=0 --explain > "$dir/bench-change.log" 2>&1
e=$(date +%s%N); rh_change=$(secs "$s" "$e")
grep -E "^===|done in|because" "$dir/bench-change.log" | sed 's/^/  /'
echo "  rhbuild rebuild: $rh_change s ($(echo "scale=3; $rh_change / $mk_again" | bc) of mkroot's full rebuild)"

echo "== rhbuild with nothing changed"
best=""
for i in 1 2 3 4 5 6 7 8 9 10; do
    s=$(date +%s%N)
    run scripts/system-image.rhai --set BUSYBOX_STATIC=0 > /dev/null 2>&1
    e=$(date +%s%N)
    ms=$(( (e - s) / 1000000 ))
    if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
done
echo "  no-op rerun: best of 10 = $best ms"
