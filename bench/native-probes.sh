#!/bin/sh
# The native compiler proven in its own guest, per target: the smoketest's
# probes (`cc hello.c` and `c++ hello.cc` compiled and run inside the
# emulator; NATIVE_BUILD=0 leaves out sh4's long configure+make), then a
# table of the native-compiler stage (wall and CPU time, gcc's share of the
# CPU time), the squashfs image, boot to the prompt, each probe's time in
# the guest (on the host's clock) and the verdict.
#
# Usage: bench/native-probes.sh ARCH...        build and probe, then print
#        bench/native-probes.sh --table DIR    print from DIR/<arch>.jsonl
# Builds in build/ (or BUILD_DIR): each target's cross compiler first if it
# is missing (about 20 minutes of CPU each), then its native compiler (about
# 28); events go to build/native-probes/<arch>.jsonl, logs to <arch>.log.
set -eu
if [ "${1:-}" = --table ]; then
    [ $# -eq 2 ] || { echo "usage: bench/native-probes.sh --table DIR" >&2; exit 2; }
    dir=$2
else
    [ $# -gt 0 ] || { echo "usage: bench/native-probes.sh ARCH... | --table DIR" >&2; exit 2; }
    . "$(dirname "$0")/common.sh"
    build=${BUILD_DIR:-build}
    dir=$build/native-probes
    mkdir -p "$dir"
    for arch in "$@"; do
        rm -f "$dir/$arch.jsonl"
        if "$rh" run scripts/smoketest.rhai --arch "$arch" $src --build-dir "$build" \
            --events "$dir/$arch.jsonl" --set NATIVE_TOOLCHAIN=1 \
            --set SYSIMAGE_TYPE=squashfs --set NATIVE_BUILD=0 > "$dir/$arch.log" 2>&1
        then echo "$arch: passed"; else echo "$arch: FAILED (log: $dir/$arch.log)"; fi
    done
fi
BENCH=$(dirname "$0") PYTHONDONTWRITEBYTECODE=1 exec python3 - "$dir" <<'EOF'
import json, os, sys

sys.path.insert(0, os.environ["BENCH"])
from events import read_events

dir = sys.argv[1]
print("| target | native-compiler stage | CPU | gcc's share of the CPU | squashfs image | boot | cc hello.c | c++ hello.cc | smoketest |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for name in sorted(os.listdir(dir)):
    if not name.endswith(".jsonl"):
        continue
    ev = read_events(os.path.join(dir, name))
    done = {e["stage"]: e for e in ev if e["event"] == "done"}
    result = {e["key"]: e["value"] for e in ev if e["event"] == "result"}
    gcc = next((e for e in ev if e["event"] == "package"
                and e.get("stage") == "native-compiler" and e.get("package") == "gcc native"), None)
    stage = done.get("native-compiler")
    def secs(e, key="seconds"):
        return f"{e[key]:.1f} s" if e and e.get(key) is not None else ""
    def guest(key):
        return f"{result[key]:.1f} s" if key in result else ""
    # gcc's share of the stage's CPU time (wall time depends on the load).
    share = (f"{100 * gcc['cpu_seconds'] / stage['cpu_seconds']:.1f} %"
             if gcc and stage and gcc.get("cpu_seconds") and stage.get("cpu_seconds") else "")
    image = f"{result['image_bytes'] / 1e6:.1f} MB" if "image_bytes" in result else ""
    failed = next((e for e in ev if e["event"] == "failed"), None)
    # The smoketest reports the boot time once every check has passed.
    if "boot_seconds" in result and not failed:
        verdict = "passed"
    elif failed:
        how = "stopped (interrupted)" if "interrupted" in failed.get("message", "") else "failed"
        verdict = f"{how} in {failed.get('stage', '?')}"
    else:
        verdict = "not finished"
    if stage is None and any(e["event"] == "up-to-date" and e.get("stage") == "native-compiler" for e in ev):
        stage_text, cpu = "up to date", ""
    else:
        stage_text, cpu = secs(stage), secs(stage, "cpu_seconds")
    print(f"| {name[:-6]} | {stage_text} | {cpu} | {share} | {image} | {guest('boot_seconds')} "
          f"| {guest('native_hello_seconds')} | {guest('native_hello_cxx_seconds')} | {verdict} |")
EOF
