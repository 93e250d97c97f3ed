#!/bin/sh
# The table docs/benchmarks.md keeps for build-all on our toolchain: per
# target, the toolchain stage's wall time, its CPU time, the physical
# limit (CPU time over the cores the target was given), gcc's share, the
# image's time (root filesystem, kernel and image), boot to the prompt and
# the smoketest's verdict; then the sums. It reads the event files build-all
# wrote (report/events/<arch>.jsonl), so it costs nothing to rerun.
#
# Usage: bench/toolchains.sh [JOBS] REPORT_DIR...
#   JOBS: the cores each target was given (build-all's -j; default 2)
#   REPORT_DIR: a build directory's report/ (several: the last word on a
#   target wins, so a rerun of some targets can be added after a full run)
# Build first, for example:
#   rhbuild run scripts/build-all.rhai --set ARCHES=sh4,mips64el --set PARALLEL=1
set -eu
jobs=2
case "${1:-}" in [0-9]*) jobs=$1; shift ;; esac
[ $# -gt 0 ] || { echo "usage: bench/toolchains.sh [JOBS] REPORT_DIR..." >&2; exit 2; }
BENCH=$(dirname "$0") PYTHONDONTWRITEBYTECODE=1 exec python3 - "$jobs" "$@" <<'EOF'
import json, os, sys

sys.path.insert(0, os.environ["BENCH"])
from events import read_events

jobs = int(sys.argv[1])
targets = {}
for report in sys.argv[2:]:
    events = os.path.join(report, "events")
    for name in sorted(os.listdir(events)):
        if name.endswith(".jsonl"):
            targets[name[:-6]] = read_events(os.path.join(events, name))

def fmt(x):
    return "" if x is None else f"{x:.1f}"

print("| target | toolchain | toolchain stage | CPU | CPU / cores | gcc | root filesystem / kernel / image | boot | smoketest |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
sums = {"wall": 0.0, "cpu": 0.0, "gcc": 0.0}
for arch in sorted(targets):
    ev = targets[arch]
    done = {e["stage"]: e for e in ev if e["event"] == "done"}
    result = {e["key"]: e["value"] for e in ev if e["event"] == "result"}
    failed = [e["stage"] for e in ev if e["event"] == "failed"]
    stopped = any(e["event"] == "failed" and "interrupted" in e.get("message", "") for e in ev)
    tc = done.get("cross-compiler")
    wall = tc["seconds"] if tc else None
    cpu = tc.get("cpu_seconds") if tc else None
    gcc = sum(e["seconds"] for e in ev if e["event"] == "package"
              and e["stage"] == "cross-compiler" and e["package"].startswith("gcc"))
    # The root filesystem and the kernel are built side by side.
    up = {e["stage"] for e in ev if e["event"] == "up-to-date"}
    image = " / ".join(fmt(done[s]["seconds"]) + " s" if s in done else ("kept" if s in up else "-")
                       for s in ("root-filesystem", "linux-kernel", "system-image"))
    boot = result.get("boot_seconds")
    if boot is not None and not failed:
        verdict = "passed"
    elif stopped:
        verdict = "stopped (interrupted) in " + failed[0]
    elif failed:
        verdict = "failed in " + failed[0]
    else:
        verdict = "not finished"
    if wall:
        sums["wall"] += wall
        sums["gcc"] += gcc
        if cpu:
            sums["cpu"] += cpu
    # A stage found up to date: the time its kept build took.
    kept = next((e.get("seconds") for e in ev
                 if e["event"] == "up-to-date" and e["stage"] == "cross-compiler"), None)
    kept_text = f"kept (built in {fmt(kept)} s)" if kept else ("kept" if kept is not None else "")
    print(f"| {arch} | {result.get('toolchain', '')} | {fmt(wall) + ' s' if wall else kept_text} | "
          f"{fmt(cpu) + ' s' if cpu else ('not counted' if wall else '')} | "
          f"{fmt(cpu / jobs) + ' s (' + fmt(100 * cpu / jobs / wall) + ' %)' if cpu and wall else ''} | "
          f"{fmt(100 * gcc / wall) + ' %' if wall else ''} | {image} | "
          f"{fmt(boot) + ' s' if boot is not None else ''} | {verdict} |")
if sums["wall"]:
    print(f"| **sum** | | **{fmt(sums['wall'])} s** | {fmt(sums['cpu'])} s (where counted) | | "
          f"{fmt(100 * sums['gcc'] / sums['wall'])} % | | | |")
EOF
