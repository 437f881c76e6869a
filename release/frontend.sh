#!/usr/bin/env bash
# Builds the strata frontend image for linux/amd64 and linux/arm64 with
# strata's embedded builder, and pushes it:
#
#   bash release/frontend.sh REPOSITORY        # e.g. ghcr.io/me/strata
#   bash release/frontend.sh                   # build only: dist/frontend
#   bash release/frontend.sh --no-build REPOSITORY   # dist/ as it is
#
# 1. `release/build.sh x86_64 aarch64` builds the static binaries into dist/
#    (skipped with --no-build: dist/ must hold both).
# 2. strata (the release binary for this machine, from dist/) builds
#    release/frontend.toml into the OCI layout dist/frontend, tagged with
#    Cargo.toml's version: an index of one image per platform. The commit is
#    the `revision` label, its commit time the image's `created`; Cargo.toml's
#    `repository`, when it has one, the `source` label. Two clones of one
#    commit give the same index digest.
# 3. skopeo copies the index, every platform's image and blob as they are
#    (`--all --preserve-digests`), to REPOSITORY:X.Y.Z, :X.Y and :X, with the
#    Docker credentials (`docker login`; skopeo reads ~/.docker/config.json).
#    A loopback registry (localhost, 127.0.0.1) is reached over plain HTTP.
#
# stdout: the index digest (what `# syntax=REPOSITORY:X.Y@sha256:…` pins,
# docs/frontend.md); messages go to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
if [ "${1:-}" = --no-build ]; then
  build=0
  shift
fi
repository=${1:-}
[ $# -le 1 ] || { echo "usage: release/frontend.sh [--no-build] [REPOSITORY]" >&2; exit 2; }
case "${repository##*/}" in
  *:* | *@*)
    echo "release/frontend.sh: give the repository without a tag or digest ('$repository'): the tags are the version's" >&2
    exit 2 ;;
esac

field() { sed -n "/^\[package\]/,/^\[/s/^$1 = \"\(.*\)\"/\1/p" Cargo.toml | head -1; }
version=$(field version)
[[ "$version" =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] ||
  { echo "release/frontend.sh: Cargo.toml's version '$version' is not X.Y.Z" >&2; exit 2; }
tags=("$version" "${BASH_REMATCH[1]}.${BASH_REMATCH[2]}" "${BASH_REMATCH[1]}")

if [ "$build" = 1 ]; then
  bash release/build.sh x86_64 aarch64 >&2
fi
case "$(uname -m)" in
  x86_64) own=amd64 ;;
  aarch64) own=arm64 ;;
  *) echo "release/frontend.sh: no strata release binary runs on $(uname -m)" >&2; exit 2 ;;
esac
for f in strata-linux-amd64 strata-linux-arm64 strata-normalize-linux-amd64 strata-normalize-linux-arm64; do
  [ -f "dist/$f" ] || { echo "release/frontend.sh: dist/$f is missing (run release/build.sh)" >&2; exit 2; }
done

args=(--build-arg "VERSION=$version" --build-arg "REVISION=$(git rev-parse HEAD)"
  --build-arg "LICENSES=$(field license)")
source_url=$(field repository)
[ -z "$source_url" ] || args+=(--label "org.opencontainers.image.source=$source_url")
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
export SOURCE_DATE_EPOCH
echo "release/frontend.sh: building the frontend image $version into dist/frontend" >&2
digest=$("dist/strata-linux-$own" build -f release/frontend.toml "${args[@]}" \
  --progress plain --output "oci-layout:dist/frontend:$version" dist)

if [ -n "$repository" ]; then
  tls=()
  case "${repository%%/*}" in
    localhost | localhost:* | 127.0.0.1 | 127.0.0.1:*) tls=(--dest-tls-verify=false) ;;
  esac
  for tag in "${tags[@]}"; do
    echo "release/frontend.sh: pushing $repository:$tag" >&2
    skopeo copy -q --all --preserve-digests "${tls[@]}" \
      "oci:dist/frontend:$version" "docker://$repository:$tag" >&2
  done
fi
echo "$digest"
