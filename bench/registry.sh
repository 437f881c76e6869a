#!/usr/bin/env bash
# Benchmark of `strata build --output registry:REF` next to
# `docker build` + `docker push` of the equivalent Dockerfile, side by side:
#   bash bench/registry.sh [SIZE_MIB]     (default 2048)
# The context: 8 incompressible model shards (SIZE_MIB in all) and 200 small
# app files. Both push to a docker-registry of this script's own (temporary
# storage under /var/tmp, a free port; removed at the end), so the shared
# registry on :5000 keeps nothing. Measures, for each tool, the first push
# (warm build: only the push is timed for strata; docker's push after its
# build) and the push after a one-line code change: wall time, and bytes the
# registry received (growth of its storage). The Docker side runs on the
# d28 engine holding the suite's engine flock. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-2048}
root=/var/tmp/strata-bench-registry
# The static release binary (release/env.sh), as the tests and the frontend image.
. release/env.sh ""  # "": not this script's arguments (a sourced file sees them)
bin=target/$CARGO_BUILD_TARGET/release/strata
cargo build --release --locked >&2
rm -rf "$root" && mkdir -p "$root/ctx/models" "$root/ctx/app" "$root/reg/data"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$root/reg/config.yml" <<CONF
version: 0.1
log: { level: warn }
storage: { filesystem: { rootdirectory: $root/reg/data }, delete: { enabled: true } }
http: { addr: 127.0.0.1:$port }
CONF
docker-registry serve "$root/reg/config.yml" >"$root/reg/log" 2>&1 &
regpid=$!
trap 'kill $regpid 2>/dev/null || true; rm -rf "$root"' EXIT
until curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/"; do sleep 0.2; done
shard=$((size / 8))
for i in 1 2 3 4 5 6 7 8; do
  head -c "$((shard * 1024 * 1024))" /dev/urandom > "$root/ctx/models/shard-$i.bin"
done
for i in $(seq 1 200); do echo "def f$i(): return $i" > "$root/ctx/app/mod_$i.py"; done
cat > "$root/ctx/strata.toml" <<'SPEC'
version = 1
[image]
from = "scratch"
[[layer]]
name = "models"
copy = [{ from = "models", to = "/srv/models" }]
split = "file"
[[layer]]
name = "app"
copy = [{ from = "app", to = "/srv/app" }]
SPEC
{
  echo "FROM scratch"
  for i in 1 2 3 4 5 6 7 8; do echo "COPY models/shard-$i.bin /srv/models/"; done
  echo "COPY app /srv/app"
} > "$root/ctx/Dockerfile"
printf 'strata.toml\nDockerfile\n' > "$root/ctx/.dockerignore"
sync
export STRATA_CACHE_DIR=$root/cache DOCKER_CONFIG=$root/docker-config
mkdir -p "$DOCKER_CONFIG"
stored() { du -sb "$root/reg/data" | cut -f1; }
measure() { # label, command...
  local label=$1; shift
  local before; before=$(stored)
  local t0; t0=$(date +%s.%N)
  "$@" >/dev/null 2>"$root/stderr" || { cat "$root/stderr" >&2; exit 1; }
  local t1; t1=$(date +%s.%N)
  printf '| %s | %.2f s | %s KiB |\n' "$label" "$(echo "$t1 - $t0" | bc)" \
    "$(( ($(stored) - before) / 1024 ))"
}
echo "| step ($size MiB of model shards, registry on loopback) | wall time | received by the registry |"
echo "|---|---:|---:|"
"$bin" build "$root/ctx" -o "oci-layout:$root/out:v1" >/dev/null 2>&1
measure "strata push, first" "$bin" build "$root/ctx" --tag "127.0.0.1:$port/bench/strata:v1" --push
echo "def changed(): return 0" >> "$root/ctx/app/mod_1.py"
measure "strata build + push after a code change" "$bin" build "$root/ctx" --tag "127.0.0.1:$port/bench/strata:v2" --push
cp "$root/ctx/app/mod_1.py" "$root/mod_1.changed" && echo "def f1(): return 1" > "$root/ctx/app/mod_1.py"
# Docker 28.5 (d28): build (not timed), push; then the same code change.
exec 9>/tmp/strata-engines.lock && flock 9
export DOCKER_HOST=$(bash integration/env.sh host d28)
img=127.0.0.1:$port/bench/docker
docker build -q -t "$img:v1" "$root/ctx" >/dev/null
measure "docker push, first" docker push -q "$img:v1"
cp "$root/mod_1.changed" "$root/ctx/app/mod_1.py"
measure "docker build + push after a code change" sh -c "docker build -q -t '$img:v2' '$root/ctx' && docker push -q '$img:v2'"
docker rmi "$img:v1" "$img:v2" >/dev/null
