#!/usr/bin/env bash
# Wall time of `tar xJf` against rhbuild's extract primitive on one archive.
#
#   bench/extract.sh [ARCHIVE] [RUNS]
#
# ARCHIVE defaults to /usr/src/linux-source-6.1.tar.xz (Debian package
# linux-source-6.1), RUNS to 2. Both tools extract into fresh directories
# under $BENCH_DIR (default build/bench-extract, on the same disk as the
# checkout), alternating tar and ours so that load from elsewhere hits both
# alike. Page-cache writeback is flushed (sync) between runs, outside the
# timings. Prints each time and the ratio ours/tar of the totals.
set -euo pipefail

archive=${1:-/usr/src/linux-source-6.1.tar.xz}
runs=${2:-2}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${BENCH_DIR:-$repo/build/bench-extract}
target=${CARGO_TARGET_DIR:-$repo/target}

if [[ ! -f $archive ]]; then
    echo "bench/extract.sh: \`$archive\` not found (for the default: apt-get install linux-source-6.1)" >&2
    exit 1
fi
command -v xz >/dev/null || { echo "bench/extract.sh: \`xz\` not found: apt-get install xz-utils" >&2; exit 1; }

(cd "$repo" && cargo build --quiet --release --example extract)
ours=$target/release/examples/extract

rm -rf "$work"
mkdir -p "$work"
cat "$archive" >/dev/null # both start with the archive in the page cache

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

tar_total=0
ours_total=0
for ((i = 1; i <= runs; i++)); do
    mkdir "$work/tar-$i"
    sync
    t0=$(now)
    tar xJf "$archive" -C "$work/tar-$i"
    t1=$(now)
    tar_time=$(elapsed "$t0" "$t1")

    sync
    t0=$(now)
    "$ours" "$archive" "$work/ours-$i"
    t1=$(now)
    ours_time=$(elapsed "$t0" "$t1")

    # Same tree? (tar keeps the top directory, ours strips it.)
    tar_top=$(find "$work/tar-$i" -mindepth 1 -maxdepth 1)
    tar_count=$(find "$tar_top" | wc -l)
    ours_count=$(find "$work/ours-$i" | wc -l)
    if [[ $tar_count != "$ours_count" ]]; then
        echo "bench/extract.sh: tar wrote $tar_count paths, ours $ours_count" >&2
        exit 1
    fi

    echo "run $i: tar xJf ${tar_time}s, rhbuild extract ${ours_time}s ($ours_count paths)"
    tar_total=$(awk -v a="$tar_total" -v b="$tar_time" 'BEGIN { print a + b }')
    ours_total=$(awk -v a="$ours_total" -v b="$ours_time" 'BEGIN { print a + b }')
    rm -rf "$work/tar-$i" "$work/ours-$i"
done
sync

awk -v t="$tar_total" -v o="$ours_total" -v n="$runs" 'BEGIN {
    printf "mean: tar xJf %.2fs, rhbuild extract %.2fs, ratio ours/tar %.3f\n", t / n, o / n, o / t
}'
echo "load average now: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
rmdir "$work" 2>/dev/null || true
