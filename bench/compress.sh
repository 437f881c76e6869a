#!/usr/bin/env bash
# Benchmark of the embedded builder's block-parallel compression: one 1 GiB
# compressible layer, written by `strata build` on one core and on every core,
# against `pigz` and `zstd` at the same level and thread count on the same tar.
#   bash bench/compress.sh [SIZE_MIB] [RUNS]     (defaults 1024 and 3)
# The layer is one file: the first SIZE_MIB of a tar of /usr/lib, /usr/share
# and /usr/bin (binaries and text, about 1.9x with gzip -3). The layer tar
# itself (written with `compression = "none"`) is what pigz and zstd compress.
# One core is `taskset -c 0` (rayon then runs one thread), all cores
# `taskset -c 0-$((N-1))`; the input hashes stay in the stat cache, the layer
# cache is emptied before every run. Prints a markdown table of medians.
# STRATA_BENCH_NICE=N runs the whole bench (strata, pigz, zstd alike) in its
# own session with the session's nice set to N. Linux schedules each session
# as one group (autogroup), so under other sessions' load a group gets about
# the same CPU time on one core as on two, and a speedup cannot show; a
# negative N (as root) approximates dedicated cores. Say so when reporting.
set -euo pipefail
if [ -n "${STRATA_BENCH_NICE:-}" ] && [ -z "${STRATA_BENCH_SESSION:-}" ]; then
  STRATA_BENCH_SESSION=1 exec setsid --wait bash "$0" "$@"
fi
[ -z "${STRATA_BENCH_NICE:-}" ] || echo "$STRATA_BENCH_NICE" > "/proc/$$/autogroup"
cd "$(dirname "$0")/.."
size=${1:-1024}
runs=${2:-3}
root=/var/tmp/strata-bench-compress
# The static release binary (release/env.sh), as the tests and the frontend image.
. release/env.sh ""  # "": not this script's arguments (a sourced file sees them)
bin=target/$CARGO_BUILD_TARGET/release/strata
cores=$(nproc)
for tool in pigz zstd taskset; do
  command -v "$tool" >/dev/null || apt-get install -y -qq "$tool" >&2
done
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >&2
cargo build --release --locked >&2
rm -rf "$root" && mkdir -p "$root/ctx/data"
tar -C / -cf - usr/lib usr/share usr/bin 2>/dev/null | head -c "$((size << 20))" > "$root/ctx/data/corpus.tar" || true
[ "$(stat -c %s "$root/ctx/data/corpus.tar")" -eq "$((size << 20))" ] ||
  { echo "not enough bytes under /usr for $size MiB" >&2; exit 2; }
spec() { # compression
  cat > "$root/ctx/strata.toml" <<SPEC
version = 1
[image]
from = "scratch"
[[layer]]
name = "data"
copy = [{ from = "data", to = "/data" }]
compression = "$1"
SPEC
}
export STRATA_CACHE_DIR=$root/cache
seconds() { # command... -> wall seconds on stdout; peak RSS (KiB) appended to $root/rss
  /usr/bin/time -o "$root/time" -f '%e %M' "$@" >/dev/null 2>"$root/stderr" ||
    { cat "$root/stderr" >&2; exit 1; }
  read -r secs kib < <(tail -1 "$root/time")
  echo "$kib" >> "$root/rss"
  echo "$secs"
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
build() { # cpus compression
  rm -rf "$STRATA_CACHE_DIR/layers" "$STRATA_CACHE_DIR/blobs" "$root/out"
  spec "$2"
  seconds taskset -c "$1" "$bin" build "$root/ctx" -o "oci-layout:$root/out:b"
}
# Warm the stat cache and get the layer tar (its blob under "none").
spec none
"$bin" build "$root/ctx" -o "oci-layout:$root/tar:b" >/dev/null 2>&1
tarfile=$(find "$root/tar/blobs/sha256" -type f -size +$((size / 2))M)
sync
echo "load before: $(uptime); $(cat /proc/$$/autogroup)" >&2
echo "| $size MiB layer (of /usr, one file), median of $runs | 1 core | $cores cores | speedup | output bytes | peak RSS |"
echo "|---|---:|---:|---:|---:|---:|"
row() { # label size-command one-core-command... -- all-core-command...
  local label=$1 size_of=$2; shift 2
  local one=() all=() a=() b=() i
  : > "$root/rss"
  while [ "$1" != -- ]; do one+=("$1"); shift; done
  shift
  all=("$@")
  for i in $(seq "$runs"); do
    a+=("$("${one[@]}")")
    b+=("$("${all[@]}")")
  done
  local m1 m2
  m1=$(median "${a[@]}")
  m2=$(median "${b[@]}")
  printf '| %s | %s s | %s s | %sx | %s | %s MiB |\n' "$label" "$m1" "$m2" \
    "$(awk -v a="$m1" -v b="$m2" 'BEGIN { printf "%.2f", a / b }')" "$(eval "$size_of")" \
    "$(sort -n "$root/rss" | tail -1 | awk '{ print int($1 / 1024) }')"
}
blob_size() { find "$root/out/blobs/sha256" -type f -size +$((size / 8))M -printf '%s\n'; }
all_cpus=0-$((cores - 1))
row "strata build, compression = \"gzip\" (level 3)" blob_size build 0 gzip -- build "$all_cpus" gzip
row "pigz -3 -p N < layer tar" "stat -c %s $root/pigz.gz" \
  seconds taskset -c 0 sh -c "pigz -3 -p 1 < '$tarfile' > '$root/pigz.gz'" -- \
  seconds taskset -c "$all_cpus" sh -c "pigz -3 -p $cores < '$tarfile' > '$root/pigz.gz'"
row "strata build, compression = \"zstd\" (level 3)" blob_size build 0 zstd -- build "$all_cpus" zstd
row "zstd -3 -T N < layer tar" "stat -c %s $root/zstd.zst" \
  seconds taskset -c 0 sh -c "zstd -q -3 -T1 < '$tarfile' > '$root/zstd.zst'" -- \
  seconds taskset -c "$all_cpus" sh -c "zstd -q -3 -T$cores < '$tarfile' > '$root/zstd.zst'"
row "strata build, compression = \"none\" (tar and hashes only)" blob_size build 0 none -- build "$all_cpus" none
echo "layer tar: $(stat -c %s "$tarfile") bytes; load after: $(uptime)" >&2
