#!/bin/sh
# Compares rhbuild's streaming checksums with coreutils on a 1 GiB file.
#
# Usage: bench/verify.sh [SIZE_MIB]   (default 1024)
# Builds examples/verify.rs in release mode, writes a random file into a
# temporary directory (removed on exit), warms the page cache, then times
# sha256sum, sha1sum and the example on the same file. Each is run 3 times
# and the best time is kept, so the numbers compare hashing, not disk reads.
set -eu

size_mib=${1:-1024}
here=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$here/target}

for tool in sha256sum sha1sum cargo awk; do
    command -v "$tool" >/dev/null || {
        echo "error: \`$tool\` is not installed (apt-get install coreutils gawk; cargo from rustup)" >&2
        exit 1
    }
done

cargo build --quiet --release --example verify --manifest-path "$here/Cargo.toml"
verify=$target/release/examples/verify

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
file=$tmp/blob
echo "writing ${size_mib} MiB of random data to $file" >&2
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$file"
cat "$file" >/dev/null

now() { date +%s.%N; }

# best SECONDS of 3 runs of a command; its digest goes to $tmp/out
best() {
    b=
    for _ in 1 2 3; do
        t0=$(now)
        "$@" >"$tmp/out"
        t1=$(now)
        b=$(awk -v a="$t0" -v z="$t1" -v b="$b" 'BEGIN { t = z - a; if (b == "" || t < b) b = t; printf "%.3f", b }')
    done
    echo "$b"
}

digest() { cut -d' ' -f1 "$tmp/out"; }

t_sha256sum=$(best sha256sum "$file"); d_sha256sum=$(digest)
t_ours256=$(best "$verify" sha256 "$file"); d_ours256=$(digest)
t_sha1sum=$(best sha1sum "$file"); d_sha1sum=$(digest)
t_ours1=$(best "$verify" sha1 "$file"); d_ours1=$(digest)
t_both=$(best "$verify" both "$file")

[ "$d_sha256sum" = "$d_ours256" ] || { echo "error: sha256 differs: sha256sum $d_sha256sum, rhbuild $d_ours256" >&2; exit 1; }
[ "$d_sha1sum" = "$d_ours1" ] || { echo "error: sha1 differs: sha1sum $d_sha1sum, rhbuild $d_ours1" >&2; exit 1; }

report() {
    awk -v name="$1" -v ref="$2" -v tr="$3" -v ours="$4" -v mib="$size_mib" 'BEGIN {
        printf "%-7s %-10s %7.3f s (%6.0f MiB/s)   rhbuild %7.3f s (%6.0f MiB/s)   ratio rhbuild/%s %.2f\n",
            name, ref, tr, mib / tr, ours, mib / ours, ref, ours / tr }'
}
echo "${size_mib} MiB, best of 3, page cache warm"
report sha256 sha256sum "$t_sha256sum" "$t_ours256"
report sha1 sha1sum "$t_sha1sum" "$t_ours1"
awk -v t="$t_both" -v mib="$size_mib" 'BEGIN { printf "both    (one read, two threads) rhbuild %7.3f s (%6.0f MiB/s)\n", t, mib / t }'
