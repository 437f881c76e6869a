#!/usr/bin/env bash
# The cost of run-layer normalization (docs/benchmarks.md, "Run layer
# normalization"): `pip install` of the wheels in WHEELS (for Python 3.11)
# in a container of each BASE on ENGINE, without and under the release
# build's strata-normalize (mounted at /dev/.strata-normalize, as the
# frontend does), then the normalizer alone around `true` (its two walks of
# the base plus the layer). Prints one line per run.
#
#   bash bench/normalize.sh ENGINE WHEELS RUNS BASE...
#
# The bases must be in the engine and have python3 and pip (e.g.
# strata-test/debian:bookworm, and that image with 200,000 more files).
set -euo pipefail
cd "$(dirname "$0")/.."
engine=${1:?usage: bench/normalize.sh ENGINE WHEELS RUNS BASE...}
wheels=$(realpath "${2:?wheels directory}")
runs=${3:?runs}
shift 3
# The static release binary (release/env.sh): the frontend image's.
. release/env.sh ""  # "": not this script's arguments (a sourced file sees them)
norm=$PWD/target/$CARGO_BUILD_TARGET/release/strata-normalize
[ -x "$norm" ] || cargo build --release --locked --bin strata-normalize >&2
export DOCKER_HOST
DOCKER_HOST=$(bash integration/env.sh host "$engine")
for r in $(seq "$runs"); do
  for base in "$@"; do
    for mode in plain normalized; do
      pre=""
      [ "$mode" = normalized ] && pre="/dev/.strata-normalize --timestamp 315619200 --"
      docker run --rm -v "$norm:/dev/.strata-normalize:ro" -v "$wheels:/w:ro" "$base" sh -c "
        s=\$(date +%s%N); $pre python3 -m pip install -q --no-index --no-deps /w/*.whl 2>/dev/null
        e=\$(date +%s%N); n=\$(find /usr/local/lib/python3.11 | wc -l)
        s2=\$(date +%s%N); $pre true; e2=\$(date +%s%N)
        echo $base $mode pip \$(( (e - s) / 1000000 )) ms, normalizer alone \$(( (e2 - s2) / 1000000 )) ms, \$n files"
    done
  done
done
