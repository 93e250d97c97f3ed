#!/bin/sh
# The long reproducibility check: two clean builds of one target's system in
# two build directories, minutes apart and without ccache, must give the
# same bytes for the kernel, the initramfs, squashfs and ext2 images and,
# on the default toolchain, dist/<triple>-cross.tar.gz.
#
# Usage: bench/reproducible.sh [ARCH]   (default sh4)
#        TOOLCHAIN=debian bench/reproducible.sh   (skip building gcc twice)
# Builds in build/repro-<arch>-{a,b} (removed first); sources come from
# build/cache, shared through --cache-dir.
arch=${1:-sh4}
. "$(dirname "$0")/common.sh"
toolchain=${TOOLCHAIN:-source}
export RHBUILD_SET_TOOLCHAIN="$toolchain" RHBUILD_SET_CCACHE=0

for side in a b; do
    dir=build/repro-$arch-$side
    rm -rf "$dir"
    mkdir -p "$dir/collected"
    for type in initramfs squashfs ext2; do
        "$rh" run system-image -q --arch "$arch" $src --build-dir "$dir" \
            --cache-dir build/cache --set SYSIMAGE_TYPE=$type >"$dir/run-$type.log"
        cp "$dir/$arch/system-image"/* "$dir/collected/"
    done
    if [ "$toolchain" = source ]; then
        cp "$dir/$arch/cross-compiler/dist/"*.tar.gz "$dir/collected/"
    fi
    # rhbuild's record of the stage (times, paths) is not part of the image.
    rm -f "$dir/collected/run-emulator.sh" "$dir/collected/manifest.json"
    # The second build starts on another second, in another directory.
    sleep 2
done

status=0
for f in build/repro-$arch-a/collected/*; do
    name=$(basename "$f")
    other=build/repro-$arch-b/collected/$name
    if cmp -s "$f" "$other"; then
        printf '%-32s identical  %s\n' "$name" "$(sha256sum <"$f" | cut -c1-16)"
    else
        printf '%-32s DIFFERS\n' "$name"
        status=1
    fi
done
exit $status
