#!/usr/bin/env bash
# Checks that strata's release is reproducible: builds it in this checkout
# and in a fresh clone of the same commit in another directory (so every
# path differs), then compares the two byte for byte: the binaries' sums
# and, when both architectures are built, the frontend image's index digest
# (release/frontend.sh into dist/frontend):
#
#   bash release/repro-check.sh [ARCH...]   # ARCH as for release/build.sh
#
# It also checks that the release binaries are statically linked (`file`).
# A checkout with uncommitted changes to tracked files is refused: its clone
# could not have them. The clone compiles every dependency again: about as
# long as the first release build of a checkout. On a mismatch the clone is
# kept for inspection and its path printed.
#
# To check another release artifact, build it in build_release, which runs
# in both trees, and add its path to `compared`.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd -P)
archs=("$@")

# Files that must be byte-identical in the two trees, relative to each:
# the binaries' sums and, when both architectures are built, the digest of
# the frontend image's index (release/frontend.sh).
compared=(dist/SHA256SUMS dist/frontend.digest)

# Builds the release in the tree $1.
build_release() {
  (
    cd "$1"
    bash release/build.sh "${archs[@]}"
    rm -f dist/frontend.digest
    if [ -f dist/strata-linux-amd64 ] && [ -f dist/strata-linux-arm64 ]; then
      bash release/frontend.sh --no-build >dist/frontend.digest
    fi
  )
}

if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "release/repro-check.sh: $repo has uncommitted changes; commit them first" >&2
  exit 2
fi
command -v file >/dev/null || { echo "release/repro-check.sh: needs file(1)" >&2; exit 2; }

start=$SECONDS
build_release "$repo"
echo "release/repro-check.sh: built in $repo in $((SECONDS - start)) s" >&2
while read -r _ name; do
  kind=$(file -bL "$repo/dist/$name")
  case "$kind" in
    *"statically linked"* | *"static-pie linked"*) ;;
    *) echo "release/repro-check.sh: dist/$name is not statically linked: $kind" >&2; exit 1 ;;
  esac
done <"$repo/dist/SHA256SUMS"

work=$(mktemp -d "${TMPDIR:-/tmp}/strata-repro.XXXXXX")
clone=$work/strata
git clone --quiet --no-checkout "$repo" "$clone"
git -C "$clone" checkout --quiet --detach "$(git rev-parse HEAD)"
start=$SECONDS
build_release "$clone"
echo "release/repro-check.sh: built in $clone in $((SECONDS - start)) s" >&2

status=0
for f in "${compared[@]}"; do
  if [ ! -e "$repo/$f" ] && [ ! -e "$clone/$f" ]; then
    # Only the frontend's digest can be missing: it needs both architectures.
    echo "release/repro-check.sh: $f was not built (it needs the amd64 and arm64 binaries)" >&2
    if [ "${CI:-}" = true ]; then status=1; fi
    continue
  fi
  if cmp -s "$repo/$f" "$clone/$f"; then
    echo "release/repro-check.sh: $f is identical in both trees" >&2
  else
    echo "release/repro-check.sh: $f differs between $repo and $clone:" >&2
    diff "$repo/$f" "$clone/$f" >&2 || true
    status=1
  fi
done
if [ "$status" = 0 ]; then
  rm -rf "$work"
else
  echo "release/repro-check.sh: the clone is kept in $clone" >&2
fi
exit "$status"
