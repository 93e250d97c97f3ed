# Sourced by the benchmarks: into the project's root, the release binary
# built and named $rh, and $src, the kernel source Debian ships.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
cargo build --quiet --release
rh=${CARGO_TARGET_DIR:-$here/target}/release/rhbuild
src="--source linux=/usr/src/linux-source-6.1.tar.xz"
