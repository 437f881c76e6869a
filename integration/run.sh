#!/usr/bin/env bash
# Runs every test of strata: unit tests, the integration suite (embedded
# builder with skopeo/umoci, the BuildKit frontend on Docker 28.5, 26.1 and
# 20.10) and doctests. It installs and starts what the tests need first, so it
# works on a fresh Debian machine as root; under CI=true no test may skip.
# STRATA_NO_ENGINES=1 leaves the engines alone (their tests then skip locally).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  need=()
  for tool in skopeo umoci file; do
    command -v "$tool" >/dev/null || need+=("$tool")
  done
  # The schema test's JSON Schema validator, the auth test's bcrypt
  # htpasswd (Debian packages, not dev-dependencies: see Cargo.toml).
  /usr/bin/python3 -c 'import jsonschema' 2>/dev/null || need+=(python3-jsonschema)
  command -v htpasswd >/dev/null || need+=(apache2-utils)
  if [ ${#need[@]} -gt 0 ]; then
    echo "integration/run.sh: installing ${need[*]}" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
  fi
fi

# The aarch64 toolchain and qemu with binfmt_misc, for the release tests
# (integration/release.rs); seconds when they are there.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  t=$SECONDS
  bash release/cross.sh >&2
  echo "integration/run.sh: release/cross.sh: $((SECONDS - t))s" >&2
fi

# The engines the frontend tests build on (installed and started by env.sh;
# idempotent, a few seconds when they are installed already).
if [ "$(id -u)" = 0 ] && [ "${STRATA_NO_ENGINES:-}" != 1 ]; then
  bash integration/env.sh up d28 d26 d20 d28g d28b d26b d26r >&2
  # Start from empty build caches: a `--no-cache` build leaves a second
  # result under an existing cache key, and BuildKit then picks either one,
  # so results of earlier runs must not leak into this one.
  for e in d28 d26 d20 d28g d28b d26b d26r; do
    # Under the tests' engine lock, so no other checkout's build is cut short.
    DOCKER_HOST=$(bash integration/env.sh host "$e") \
      flock /tmp/strata-engines.lock docker builder prune -af >/dev/null
  done
fi

# Engine faults (failures inside an engine that strata does not cause) are
# retried once by the tests and counted here: never hidden, never a pass.
faults=target/tmp/engine-faults.log
rm -f "$faults"
status=0
# Release: the suite runs, and builds its frontend images from, the one
# static release binary (target/x86_64-unknown-linux-gnu/release/strata, with
# the settings of release/env.sh), the same one `integration/frontend-image.sh`
# packs and `release/build.sh` ships.
. release/env.sh
# Both architectures' release binaries into dist/, once, before the tests
# (integration/release.rs packs both into the frontend image). Without an aarch64 toolchain only x86_64 is
# built, and the release tests skip (or fail, under CI=true).
t=$SECONDS
bash release/build.sh >&2
echo "integration/run.sh: release/build.sh: $((SECONDS - t))s" >&2
cargo test --release --locked "$@" || status=$?
if [ -s "$faults" ]; then
  echo "integration/run.sh: $(wc -l <"$faults") engine fault(s), each retried once:" >&2
  cat "$faults" >&2
else
  echo "integration/run.sh: no engine faults" >&2
fi
exit "$status"
