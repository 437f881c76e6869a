#!/usr/bin/env bash
# Proves the frontend transport end to end on the engine at $DOCKER_HOST:
# packs the static strata binary into `strata-smoke:dev`, builds a spec whose
# first line is `# syntax=strata-smoke:dev`, checks the exported files, and
# checks that a `fail-here` line comes back as buildx's source snippet.
#
#   DOCKER_HOST=$(bash integration/env.sh host d28) integration/smoke.sh [BINARY]
#
# BINARY defaults to the static release build (`. release/env.sh && cargo
# build --release`).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/x86_64-unknown-linux-gnu/release/strata}
[ -x "$bin" ] || { echo "smoke.sh: no binary at $bin" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/image" "$work/ctx"
cp "$bin" "$work/image/strata"
docker buildx build --progress=plain -f integration/smoke.Dockerfile -t strata-smoke:dev "$work/image" \
  >"$work/image.log" 2>&1 || { cat "$work/image.log" >&2; exit 1; }

# The happy path: the spec's first line comes back in /hello.txt.
printf '# syntax=strata-smoke:dev\n[image]\nname = "smoke"\n' >"$work/ctx/spec.toml"
docker buildx build --progress=plain -f "$work/ctx/spec.toml" --output "type=local,dest=$work/out" "$work/ctx" \
  >"$work/ok.log" 2>&1 || { cat "$work/ok.log" >&2; exit 1; }
hello=$(cat "$work/out/hello.txt")
[ "$hello" = "# syntax=strata-smoke:dev" ] || { echo "smoke.sh: hello.txt is '$hello'" >&2; exit 1; }
echo "smoke.sh: ok: hello.txt = $hello"
sed 's/^/smoke.sh: caps: /' "$work/out/caps.txt"

# The error path: the message names the line, and buildx prints the spec's
# snippet where the engine passes error details through to the client, which
# it does iff it does so for its own Dockerfile errors (Docker 20.10 does not).
printf 'FROM scratch\nNOT-AN-INSTRUCTION x\n' >"$work/ctx/Dockerfile.bad"
docker buildx build --progress=plain -f "$work/ctx/Dockerfile.bad" "$work/ctx" >"$work/probe.log" 2>&1 || true
snippets=no
grep -q '>>> *NOT-AN-INSTRUCTION' "$work/probe.log" && snippets=yes

printf '# syntax=strata-smoke:dev\n[image]\nfail-here\nname = "x"\n' >"$work/ctx/fail.toml"
if docker buildx build --progress=plain -f "$work/ctx/fail.toml" --output "type=local,dest=$work/out2" "$work/ctx" \
  >"$work/fail.log" 2>&1; then
  echo "smoke.sh: the fail-here build succeeded" >&2
  exit 1
fi
grep -q 'fail.toml:3: the spec asks the smoke frontend to fail' "$work/fail.log" \
  || { cat "$work/fail.log" >&2; echo "smoke.sh: no error message" >&2; exit 1; }
if [ "$snippets" = yes ]; then
  grep -q '>>> *fail-here' "$work/fail.log" \
    || { cat "$work/fail.log" >&2; echo "smoke.sh: no source snippet" >&2; exit 1; }
  echo "smoke.sh: ok: located error with snippet"
  sed -n '/^fail.toml:3$/,$p' "$work/fail.log" | sed 's/^/smoke.sh: | /'
else
  echo "smoke.sh: ok: located error message (this engine shows no snippets, not even for Dockerfiles)"
  grep '^ERROR' "$work/fail.log" | sed 's/^/smoke.sh: | /'
fi
