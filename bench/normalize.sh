#!/usr/bin/env bash
# The cost of run-layer normalization (docs/benchmarks.md, "Run layer
# normalization"): a pip layer of WHEELS (a directory of wheels for Python
# 3.11) built with `--no-cache` through the frontend on ENGINE, with and
# without `normalize`, on each BASE; prints one row per build with the run
# step's duration as BuildKit reports it (`#N DONE 12.3s`).
#
#   bash bench/normalize.sh ENGINE WHEELS BASE... [-- REPEAT]
#
# The frontend image is the release build's (integration/frontend-image.sh,
# tagged strata-bench-normalize:dev). The bases must be in the engine and
# have python3 and pip (e.g. strata-test/debian:bookworm, and that image
# with 200,000 more files).
set -euo pipefail
cd "$(dirname "$0")/.."
engine=${1:?usage: bench/normalize.sh ENGINE WHEELS BASE... [-- REPEAT]}
wheels=$(realpath "${2:?wheels directory}")
shift 2
bases=()
repeat=3
while [ $# -gt 0 ]; do
  if [ "$1" = -- ]; then repeat=$2; break; fi
  bases+=("$1"); shift
done
host=$(bash integration/env.sh host "$engine")
image=$(STRATA_IMAGE=strata-bench-normalize:dev bash integration/frontend-image.sh "$engine")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$wheels" "$work/wheels"
printf '%-40s %-9s %6s %10s %10s\n' base normalize run seconds files
for base in "${bases[@]}"; do
  for normalize in true false; do
    cat >"$work/strata.toml" <<TOML
version = 1
[image]
from = "$base"
[[layer]]
name = "pip"
normalize = $normalize
run = "python3 -m pip install -q --no-index --no-deps wheels/*.whl && find /usr/local/lib/python3.11 | wc -l > /tmp/files"
inputs = ["wheels"]
TOML
    for r in $(seq "$repeat"); do
      out=$(cd "$work" && DOCKER_HOST=$host flock /tmp/strata-engines.lock docker buildx build \
        --progress=plain --no-cache -f strata.toml --build-arg "BUILDKIT_SYNTAX=$image" \
        --load -t strata-bench-normalize:out . 2>&1)
      step=$(grep -m1 -o '^#[0-9]* \[strata\] layer pip' <<<"$out" | cut -d' ' -f1)
      secs=$(grep -E "^$step DONE [0-9.]+s" <<<"$out" | tail -1 | awk '{print $3}' | tr -d s)
      files=$(DOCKER_HOST=$host docker run --rm --entrypoint cat strata-bench-normalize:out /tmp/files)
      printf '%-40s %-9s %6s %10s %10s\n' "$base" "$normalize" "$r" "$secs" "$files"
    done
  done
done
