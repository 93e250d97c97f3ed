#!/bin/sh
# What confinement costs.
#
# 1. The sandbox on the sh4 pipeline: the same build (host tools to system
#    image, Debian's cross compiler, warm source cache) with
#    `--sandbox auto` and with `--sandbox off`, each in a fresh build
#    directory; wall time of each, and the difference in per cent
#    (goal: under 2%). Also the cost of one sandboxed command against an
#    unconfined one (hyperfine, `true` in the airlock).
# 2. The access policy on `rhbuild check` and on a no-op rerun of
#    system-image: this binary against the one of BASE (default 993bbec,
#    the last commit before the policy), built in a temporary worktree
#    (goal: not measurable).
#
# Usage: bench/sandbox.sh [ROUNDS]   (pipeline rounds per mode, default 1)
# Needs hyperfine (apt-get install hyperfine).
set -eu
rounds=${1:-1}
base=${BASE:-993bbec}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
cargo build --quiet --release
rh=${CARGO_TARGET_DIR:-$here/target}/release/rhbuild
src="--source linux=/usr/src/linux-source-6.1.tar.xz"
export RHBUILD_SET_TOOLCHAIN=debian
command -v hyperfine >/dev/null || { echo "bench/sandbox.sh needs hyperfine: apt-get install hyperfine" >&2; exit 1; }

"$rh" fetch busybox musl >/dev/null
ms() { echo $(( $(date +%s%N) / 1000000 )); }

echo "== the sandbox on the sh4 pipeline ($rounds round(s) per mode, -j2)"
for mode in auto off; do
    total=0
    for r in $(seq "$rounds"); do
        dir=build/bench-sandbox-$mode
        rm -rf "$dir"; mkdir -p "$dir"; cp -a build/cache "$dir/cache"
        s=$(ms)
        "$rh" run scripts/system-image.rhai --arch sh4 $src --build-dir "$dir" -j 2 --sandbox "$mode" > "$dir/run.log" 2>&1
        e=$(ms)
        total=$(( total + e - s ))
        echo "  --sandbox $mode, round $r: $(( e - s )) ms"
    done
    eval "t_$mode=$(( total / rounds ))"
done
echo "  mean with the sandbox: ${t_auto} ms, without: ${t_off} ms"
awk -v a="$t_auto" -v o="$t_off" 'BEGIN { printf "  sandbox cost: %+.2f%% of wall time\n", (a - o) * 100 / o }'
n=$(grep -c '^\$ ' build/bench-sandbox-auto/sh4/logs/*.log | awk -F: '{ s += $2 } END { print s }')
echo "  commands run in the airlock: $n"

echo
echo "== one command: sandboxed against unconfined"
mkdir -p build/bench-sandbox-one
hyperfine -N --warmup 5 --runs 100 \
    "$rh __sandbox --write $here/build/bench-sandbox-one -- /bin/true" \
    "/bin/true" 2>&1 | sed 's/^/  /'

echo
echo "== the access policy on check and a no-op rerun: this binary against $base"
wt=$(mktemp -d)
git worktree add --quiet --detach "$wt" "$base"
(cd "$wt" && CARGO_TARGET_DIR="$wt/target" cargo build --quiet --release)
old="$wt/target/release/rhbuild"
dir=build/bench-sandbox-auto
# The old binary needs its own finished build to find nothing to do.
olddir=build/bench-sandbox-old
rm -rf "$olddir"; mkdir -p "$olddir"; cp -a build/cache "$olddir/cache"
(cd "$wt" && "$old" run scripts/system-image.rhai --arch sh4 $src --build-dir "$here/$olddir" -j 2 > "$here/$olddir/run.log" 2>&1)
hyperfine -N --warmup 3 --runs 30 \
    -n "check (this)" "$rh check" \
    -n "check ($base)" "$old --project $wt check" 2>&1 | sed 's/^/  /'
hyperfine -N --warmup 3 --runs 30 \
    -n "no-op rerun (this)" "$rh run scripts/system-image.rhai --arch sh4 $src --build-dir $dir" \
    -n "no-op rerun ($base)" "$old --project $wt run $wt/scripts/system-image.rhai --arch sh4 $src --build-dir $here/$olddir" 2>&1 | sed 's/^/  /'
git worktree remove --force "$wt"
