#!/bin/sh
# Native builds inside the emulated system, three ways: GNU make 4.3's
# extract, ./configure and make -jN timed inside the guest with the native
# compiler alone (DISTCC=0), with its compiles sent to distccd on the host,
# and, for reference, cross-compiled on the host. Prints each phase and the
# make step's speed-up.
#
# Usage: bench/dev-environment.sh [ARCH] [JOBS]   (default sh4 2)
# Needs the native compiler: it builds it first if missing (about an hour).
# RHBUILD_BUILD_DIR=DIR uses another build directory than build/.
set -eu
arch=${1:-sh4}
jobs=${2:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
cargo build --quiet --release
rh=${CARGO_TARGET_DIR:-$here/target}/release/rhbuild
src="--source linux=/usr/src/linux-source-6.1.tar.xz"
set_native="--set NATIVE_TOOLCHAIN=1 --set SYSIMAGE_TYPE=squashfs"
unset TOOLCHAIN CROSS_COMPILE
build=$(realpath -m "${RHBUILD_BUILD_DIR:-build}")
export RHBUILD_BUILD_DIR=$build

"$rh" run scripts/native-compiler.rhai --arch "$arch" $src >/dev/null
tarball=$(ls "$build/$arch"/native-compiler/src/make-*.tar.gz)
name=$(basename "$tarball" .tar.gz)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/control"
cp "$tarball" "$work/control/"
cat > "$work/control/init" <<EOS
#!/bin/sh
# Each "phase: NAME" line starts a phase that dev-environment times on the
# host's clock (the guest's runs slow under emulation).
set -e
cd /home && rm -rf $name
echo "phase: extract"
tar -xzf /mnt/$name.tar.gz
cd $name
echo "phase: configure"
./configure > /home/configure.log 2>&1
echo "phase: make"
make -j$jobs > /home/make.log 2>&1
EOS
chmod +x "$work/control/init"

for distcc in 0 1; do
    rm -f "$build/$arch"/hdb.img
    out=$("$rh" run scripts/dev-environment.rhai --arch "$arch" $src $set_native \
        --set MY_DEV_CONTROL="$work/control" --set DISTCC=$distcc --set HDB_MEGS=512)
    for phase in extract configure make; do
        secs=$(echo "$out" | sed -n "s/^ *phase $phase: \([0-9.]*\) s$/\1/p" | tail -n 1)
        eval "t_${distcc}_$phase=$secs"
        echo "distcc=$distcc $phase: $secs s"
    done
    if [ "$distcc" = 1 ]; then
        echo "compiles done by the host's distccd: $(grep -c COMPILE_OK "$build/$arch"/logs/distccd.log)"
    fi
done

# Reference: the same package cross-compiled on the host.
triple=$(sed -n 's/^export const TRIPLE = "\(.*\)";/\1/p' targets/"$arch"/target.rhai)
tc="$build/$arch"/cross-compiler/bin
mkdir "$work/host" && cd "$work/host"
s=$(date +%s); tar -xzf "$tarball"; e=$(date +%s); echo "host extract: $((e - s)) s"
cd "$name"
s=$(date +%s); PATH=$tc:$PATH ./configure --host="$triple" >/dev/null 2>&1; e=$(date +%s); echo "host configure: $((e - s)) s"
s=$(date +%s); PATH=$tc:$PATH make -j"$jobs" >/dev/null 2>&1; e=$(date +%s); echo "host make: $((e - s)) s"
echo "make step speed-up with distcc: $(awk "BEGIN { printf \"%.1f\", $t_0_make / ($t_1_make > 0 ? $t_1_make : 1) }")x"
