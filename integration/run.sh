#!/usr/bin/env bash
# Runs every test of strata: unit tests, the integration suite and doctests.
# It installs what the tests need first, so it works on a fresh machine (as
# root on Debian); under CI=true no test may skip for a missing tool.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  need=()
  for tool in skopeo umoci; do
    command -v "$tool" >/dev/null || need+=("$tool")
  done
  if [ ${#need[@]} -gt 0 ]; then
    echo "integration/run.sh: installing ${need[*]}" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
  fi
fi

cargo test --locked --all-targets "$@"
