#!/usr/bin/env bash
# Builds the strata frontend image from the host's release binary and tags
# it `strata:dev` (or $STRATA_IMAGE) in one engine of integration/env.sh:
#   integration/frontend-image.sh d28
# The binary is the static release build of release/env.sh (static glibc):
# the tests, the image and the release share one build.
set -euo pipefail
cd "$(dirname "$0")/.."
engine=${1:?usage: integration/frontend-image.sh ENGINE}
image=${STRATA_IMAGE:-strata:dev}
profile=${STRATA_PROFILE:-release}
. release/env.sh
dir=target/$CARGO_BUILD_TARGET/$profile
{ [ -x "$dir/strata" ] && [ -x "$dir/strata-normalize" ]; } ||
  cargo build --locked $([ "$profile" = release ] && echo --release) >&2
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$dir/strata" "$dir/strata-normalize" "$ctx/"
host=$(bash integration/env.sh host "$engine")
DOCKER_HOST=$host DOCKER_BUILDKIT=1 docker build -q -f frontend.Dockerfile --target host -t "$image" "$ctx" >&2
echo "$image"
