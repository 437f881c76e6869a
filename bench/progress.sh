#!/usr/bin/env bash
# What build progress costs, and how soon it shows (issue: a CLI that
# behaves like buildx):
#   bash bench/progress.sh [SIZE_MIB] [RUNS]     (defaults 2048, 5)
# On bench/embedded.sh's tree (incompressible model shards split one per
# layer, plus an app layer), times cold builds (empty cache each time) with
# --progress quiet, plain and tty (under a pseudo-terminal, `script`),
# interleaved, RUNS of each; prints the median wall time of each mode and,
# for tty, when the first byte of progress reached the terminal, and the load
# average (a shared machine's noise shows there).
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-2048}
runs=${2:-5}
root=/var/tmp/strata-bench-progress
# The static release binary (release/env.sh), as the tests and the frontend image.
. release/env.sh ""  # "": not this script's arguments (a sourced file sees them)
bin=$PWD/target/$CARGO_BUILD_TARGET/release/strata
[ -n "${STRATA_BENCH_NO_BUILD:-}" ] || cargo build --release --locked >&2
. bench/tree.sh
model_tree "$root" "$size"
export STRATA_CACHE_DIR=$root/cache
# One cold build in MODE; prints "SECONDS FIRST_OUTPUT_SECONDS".
run() {
  rm -rf "$root/cache" "$root/out"
  python3 - "$1" "$bin" "$root" <<'PY'
import os, subprocess, sys, time
mode, bin, root = sys.argv[1:]
cmd = [bin, "build", f"{root}/ctx", "-o", f"oci-layout:{root}/out", "--progress", mode]
start = time.monotonic()
if mode == "tty":
    line = " ".join(cmd) + " >/dev/null"
    p = subprocess.Popen(["script", "-qec", line, "/dev/null"], stdout=subprocess.PIPE)
else:
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    p.stdout = p.stderr
first = None
while True:
    b = p.stdout.read(1)
    if not b:
        break
    if first is None:
        first = time.monotonic() - start
    p.stdout.read1(1 << 16)
p.wait()
took = time.monotonic() - start
assert p.returncode == 0, p.returncode
print(f"{took:.2f} {first if first is not None else float('nan'):.2f}")
PY
}
declare -A times firsts
# The machine may be shared: say how loaded it was (1, 5, 15 minutes).
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for i in $(seq 1 "$runs"); do
  for mode in quiet plain tty; do
    read -r t f < <(run "$mode")
    times[$mode]+="$t "
    firsts[$mode]+="$f "
    echo "run $i $mode: $t s (first output at $f s), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
quiet=$(echo "${times[quiet]}" | median)
echo "| --progress ($size MiB, cold, $runs runs) | median wall time | vs quiet | runs (s) | first output (median) |"
echo "|---|---:|---:|---|---:|"
for mode in quiet plain tty; do
  m=$(echo "${times[$mode]}" | median)
  printf '| %s | %s s | %s | %s | %s s |\n' "$mode" "$m" "$(awk -v a="$m" -v b="$quiet" 'BEGIN {printf "%+.1f%%", (a / b - 1) * 100}')" "${times[$mode]}" "$(echo "${firsts[$mode]}" | median)"
done
echo
echo "load average at the start: $load_start; at the end: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
