#!/usr/bin/env bash
# Every table of docs/benchmarks.md, one after another, in one command:
#   bash bench/all.sh [--full | --quick]
# Default: the sizes the doc reports, about 40 minutes on 2 cores:
#   input hashing        cargo bench --bench hash -- --size 2G
#   embedded builder     bench/embedded.sh 2048
#   compressible layer   bench/compress.sh 1024 3
#   registry push        bench/registry.sh 2048
#   side by side         bench/compare.sh --scale ci --engine d28 --runs 3
#                        bench/compare.sh --scale ci --engine d26 --runs 3 --no-embedded
# --full adds bench/compare.sh --scale full --engine d28 --runs 3 (about 45
# minutes more, and at least 45 GiB free: see "Not measured" in the doc).
# --quick runs every step at a small size, once, to check the harness
# (about 8 minutes; its numbers are not the doc's).
# Each step's tables go to $STRATA_BENCH_ALL (default /var/tmp/strata-bench-all):
# hash.md, embedded.md, compress.md, registry.md, compare-SCALE-ENGINE/ (tables.md,
# chart.png, raw data; see bench/compare.sh). Needs root for the engines.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=doc
case ${1:-} in
  "") ;;
  --full) mode=full ;;
  --quick) mode=quick ;;
  *) echo "usage: bash bench/all.sh [--full | --quick]" >&2; exit 1 ;;
esac
out=${STRATA_BENCH_ALL:-/var/tmp/strata-bench-all}
rm -rf "$out" && mkdir -p "$out"
log() { printf '[all %s] %s\n' "$(date -u +%T)" "$*" >&2; }

if [ "$mode" = quick ]; then
  hash=256M size=64 scale=small runs=1 csize=64
else
  hash=2G size=2048 scale=ci runs=3 csize=1024
fi
compare() { # ENGINE SCALE [args]
  local dir=$out/compare-$2-$1
  log "bench/compare.sh --scale $2 --engine $1 --runs $runs ${*:3}"
  STRATA_BENCH_DIR=$dir bash bench/compare.sh --scale "$2" --engine "$1" --runs "$runs" "${@:3}"
  cp "$dir/$2/results/tables.md" "$dir/tables.md"
}

start=$SECONDS
log "input hashing ($hash)"
cargo bench --locked --bench hash -- --size "$hash" > "$out/hash.md"
log "embedded builder ($size MiB)"
bash bench/embedded.sh "$size" > "$out/embedded.md"
log "compressible layer ($csize MiB, $runs runs)"
bash bench/compress.sh "$csize" "$runs" > "$out/compress.md"
log "registry push ($size MiB)"
bash bench/registry.sh "$size" > "$out/registry.md"
compare d28 "$scale"
compare d26 "$scale" --no-embedded
[ "$mode" != full ] || compare d28 full
log "done in $(( (SECONDS - start) / 60 )) min; tables in $out"
