#!/usr/bin/env bash
# Benchmark of the embedded builder (issue: embedded builder) against
# `tar -c | gzip -6` of the same trees, side by side in one run:
#   bash bench/embedded.sh [SIZE_MIB]     (default 2048)
# STRATA_BIN=PATH times another binary (no cargo build), BENCH_ROOT=DIR
# moves the trees, BENCH_BASELINE=0 skips the tar | gzip baseline.
# Generates two model directories of incompressible shards plus config and
# app files under /var/tmp/strata-bench, then times: the baseline, a cold
# `strata build` (empty cache), a no-op rebuild, a one-shard change and an
# app change, with peak RSS from GNU time. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-2048}
root=${BENCH_ROOT:-/var/tmp/strata-bench}
# The static release binary (release/env.sh), as the tests and the frontend image.
. release/env.sh ""  # "": not this script's arguments (a sourced file sees them)
bin=${STRATA_BIN:-target/$CARGO_BUILD_TARGET/release/strata}
[ -n "${STRATA_BIN:-}" ] || cargo build --release --locked >&2
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >&2; }
. bench/tree.sh
model_tree "$root" "$size"
export STRATA_CACHE_DIR=$root/cache
measure() { # label, command...
  local label=$1; shift
  /usr/bin/time -o "$root/time" -f '%e %M' "$@" >/dev/null 2>"$root/stderr" ||
    { cat "$root/stderr" >&2; exit 1; }
  read -r secs kib < <(tail -1 "$root/time")
  printf '| %s | %s s | %s MiB |\n' "$label" "$secs" "$((kib / 1024))"
}
echo "| step ($size MiB of model shards) | wall time | peak RSS |"
echo "|---|---:|---:|"
[ "${BENCH_BASELINE:-1}" = 0 ] ||
  measure "tar -c models app \| gzip -6 (baseline)" sh -c "tar -C '$root/ctx' -cf - models app | gzip -6 > '$root/baseline.tar.gz'"
measure "strata build, cold (empty cache)" "$bin" build "$root/ctx" -o "oci-layout:$root/out:v1"
measure "strata build, no-op rebuild" "$bin" build "$root/ctx" -o "oci-layout:$root/out:v1"
measure "strata plan, warm (stat cache)" "$bin" plan "$root/ctx"
dd if=/dev/urandom of="$root/ctx/models/encoder/shard-2.bin" bs=1M count=1 seek=3 conv=notrunc status=none
measure "strata build, one shard changed" "$bin" build "$root/ctx" -o "oci-layout:$root/out:v2"
echo "def changed(): return 0" >> "$root/ctx/app/mod_1.py"
measure "strata build, app changed" "$bin" build "$root/ctx" -o "oci-layout:$root/out:v3"
du -sh "$root/out" "$root/baseline.tar.gz" >&2
