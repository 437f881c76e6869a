#!/usr/bin/env bash
# strata against a hand-optimized Dockerfile and the same with `COPY --link`,
# side by side in one run. One command:
#   bash bench/compare.sh [--scale small|ci|full] [--engine d28|d26] [--runs N]
#                         [--scenarios LIST] [--no-embedded]
# Generates a seed-shaped project (see examples/tts) with incompressible model
# shards in two model directories, the two Dockerfiles and a strata.toml,
# starts the engines with integration/env.sh, builds a warm-up, then measures
# every scenario for every contender one after another on the same engine:
#   plain   Dockerfile, multi-stage, cache mounts, expert layer order
#   link    the same Dockerfile with `COPY --link`
#   files   the `--link` Dockerfile with one `COPY --link` per model shard file
#           (what strata's `split = "file"` does by itself)
#   strata  strata.toml through the frontend (`docker buildx build -f`)
# and, for the copy-only variant of the project, `strata build` (embedded,
# release binary) next to `tar -c | gzip -6` of the same trees.
# Scenarios: fresh (pruned second engine), cold (second engine, pruned, with
# --cache-from a registry cache the main engine exported), noop, app, req,
# shard, touch, base. Builds hold /tmp/strata-engines.lock one scenario at a
# time (the test suite takes the same lock). Output in $STRATA_BENCH_DIR
# (default /var/tmp/strata-bench-compare/SCALE/results): raw.tsv,
# results.json, results.csv, tables.md, chart.png (bench/compare.py).
# STRATA_BENCH_MIN_FREE_GIB: the free disk below which it stops measuring.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
cmdline="bash bench/compare.sh $*"
scale=ci engine=d28 runs=3 embedded=1
scenarios="fresh cold noop app req shard touch base"
while [ $# -gt 0 ]; do
  case $1 in
    --scale) scale=$2; shift 2 ;;
    --engine) engine=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --scenarios) scenarios=$2; shift 2 ;;
    --no-embedded) embedded=0; shift ;;
    *) echo "usage: bench/compare.sh [--scale small|ci|full] [--engine d28|d26] [--runs N] [--scenarios 'fresh cold noop app req shard touch base'] [--no-embedded]" >&2; exit 1 ;;
  esac
done
case $scale in
  small) shards=4 shard_mib=1 app_files=20 min_free=2 ;;
  ci) shards=4 shard_mib=24 app_files=100 min_free=3 ;;
  full) shards=4 shard_mib=256 app_files=200 min_free=10 ;;
  *) echo "unknown scale $scale" >&2; exit 1 ;;
esac
min_free=${STRATA_BENCH_MIN_FREE_GIB:-$min_free}
case $engine in
  d28) fresh_engine=d28b ;;
  d26) fresh_engine=d26b ;;
  *) echo "unknown engine $engine (d28 or d26)" >&2; exit 1 ;;
esac
contenders="plain link files strata"
registry=127.0.0.1:5000
reglog=/var/log/strata-registry.log
lockfile=/tmp/strata-engines.lock
# The base as a CI runner gets it: pulled from a registry, one digest on
# every engine (the engines each loaded strata-test/debian:bookworm from a
# tarball, which gave each its own manifest digest and so its own cache keys).
base_local=strata-test/debian:bookworm
base_default=$registry/strata-bench/debian:bookworm
run_id=bench$(date +%s)
work=${STRATA_BENCH_DIR:-/var/tmp/strata-bench-compare}/$scale
results=$work/results
# The static release binary (release/env.sh), as the tests and the frontend image.
. "$repo/release/env.sh" ""  # "": not this script's arguments
bin=${STRATA_BIN:-$repo/target/$CARGO_BUILD_TARGET/release/strata}
log() { printf '[%s] %s\n' "$(date -u +%T)" "$*" >&2; }

[ -n "${STRATA_BIN:-}" ] || cargo build --release --locked >&2
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >&2
command -v gnuplot >/dev/null || apt-get install -y -qq gnuplot-nox >&2
bash integration/env.sh up "$engine" "$fresh_engine" >&2
H=$(bash integration/env.sh host "$engine")
HB=$(bash integration/env.sh host "$fresh_engine")
export BUILDX_NO_DEFAULT_ATTESTATIONS=1
dk() { DOCKER_HOST=$1 docker "${@:2}"; }

rm -rf "$work" && mkdir -p "$work/tree" "$results" "$work/state" "$work/logs"
raw=$results/raw.tsv
printf 'scenario\tcontender\trun\tengine\tsecs\tlayers\tchanged\tnew_bytes\tuploaded_bytes\tpush_secs\tcontext_bytes\texecuted\tsame_layers\trss_kib\n' > "$raw"

# --- the project --------------------------------------------------------
tree=$work/tree
cp -r examples/tts/{sdists,src,ref_audio,docker-entrypoint.sh,requirements.txt,.dockerignore} "$tree/"
mkdir -p "$tree/models/vocos" "$tree/models/whisper"
printf 'sample_rate: 24000\n' > "$tree/models/vocos/config.yaml"
printf '{"d_model": 1280}\n' > "$tree/models/whisper/config.json"
printf '{"version": "1.0"}\n' > "$tree/models/whisper/tokenizer.json"
for i in $(seq 1 "$shards"); do
  head -c "$((shard_mib << 20))" /dev/urandom > "$tree/models/vocos/pytorch_model-0000$i.bin"
  head -c "$((shard_mib << 20))" /dev/urandom > "$tree/models/whisper/model-0000$i-of-0000$shards.safetensors"
done
mkdir -p "$tree/src/f5_tts_api/handlers"
for i in $(seq 1 "$app_files"); do
  printf 'def handler_%s(text):\n    return text.upper() + "%s"\n' "$i" "$i" > "$tree/src/f5_tts_api/handlers/h$i.py"
done
# The system layer works offline (the engines' containers have no network):
# a system user and a byte-compiled standard library, in place of apt-get.
system_cmds=("useradd --system --uid 999 --home-dir /app tts" "python3 -m compileall -q /usr/lib/python3.11 >/dev/null || true")

dockerfile() { # contender link-flag
  local c=$1 link=$2 models i
  models="COPY $link models/vocos /app/models/vocos
COPY $link models/whisper /app/models/whisper"
  if [ "$c" = files ]; then
    # One layer per shard file, and one for each directory's small files.
    models="COPY $link models/vocos/*.yaml /app/models/vocos/"
    for i in $(seq 1 "$shards"); do
      models+=$'\n'"COPY $link models/vocos/pytorch_model-0000$i.bin /app/models/vocos/"
    done
    models+=$'\n'"COPY $link models/whisper/*.json /app/models/whisper/"
    for i in $(seq 1 "$shards"); do
      models+=$'\n'"COPY $link models/whisper/model-0000$i-of-0000$shards.safetensors /app/models/whisper/"
    done
  fi
  cat <<EOF
# Hand-optimized: system packages, then pip (wheels built in a stage, pip
# cache mount), then the models, entrypoint + reference audio, then code.
ARG BASE_IMAGE=$base_default
FROM \${BASE_IMAGE} AS build
ENV BENCH_CONTENDER=$c SOURCE_DATE_EPOCH=315619200
WORKDIR /build
RUN --mount=type=bind,source=requirements.txt,target=requirements.txt \\
    --mount=type=bind,source=sdists,target=sdists \\
    --mount=type=cache,target=/root/.cache/pip \\
    python3 -m pip wheel --no-index --no-build-isolation --find-links sdists --wheel-dir /wheels -r requirements.txt

FROM \${BASE_IMAGE}
ENV BENCH_CONTENDER=$c MODELS_DIR=/app/models PYTHONPATH=/app/src PYTHONUNBUFFERED=1
WORKDIR /app
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \\
    ${system_cmds[0]} && \\
    ${system_cmds[1]}
RUN --mount=type=bind,source=requirements.txt,target=requirements.txt \\
    --mount=type=bind,from=build,source=/wheels,target=/wheels \\
    --mount=type=cache,target=/root/.cache/pip \\
    python3 -m pip install --no-index --find-links /wheels -r requirements.txt
$models
COPY $link --chmod=0755 docker-entrypoint.sh /app/docker-entrypoint.sh
COPY $link ref_audio /app/ref_audio
COPY $link src /app/src
EXPOSE 8000/tcp
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/docker-entrypoint.sh"]
EOF
}

strata_toml() {
  cat <<EOF
version = 1

[args]
BASE_IMAGE = "$base_default"

[image]
from = "\${BASE_IMAGE}"
workdir = "/app"
entrypoint = ["/app/docker-entrypoint.sh"]
env = { BENCH_CONTENDER = "strata", MODELS_DIR = "/app/models", PYTHONPATH = "/app/src", PYTHONUNBUFFERED = "1" }
expose = ["8000/tcp"]
stop_signal = "SIGTERM"

[[layer]]
name = "system"
run = ["${system_cmds[0]}", "${system_cmds[1]}"]
cache = [{ target = "/var/cache/apt", sharing = "locked" }]

[[stage]]
name = "build"
from = "\${BASE_IMAGE}"
workdir = "/build"
env = { BENCH_CONTENDER = "strata", SOURCE_DATE_EPOCH = "315619200" }

[[stage.step]]
run = "python3 -m pip wheel --no-index --no-build-isolation --find-links sdists --wheel-dir /wheels -r requirements.txt"
inputs = ["requirements.txt", "sdists"]
cache = ["/root/.cache/pip"]

[[layer]]
name = "python-deps"
run = "python3 -m pip install --no-index --find-links /wheels -r requirements.txt"
inputs = ["requirements.txt"]
mounts = [{ stage = "build", from = "/wheels", to = "/wheels" }]
cache = ["/root/.cache/pip"]

[[layer]]
name = "models"
copy = [
  { from = "models/vocos", to = "/app/models/vocos" },
  { from = "models/whisper", to = "/app/models/whisper" },
]
split = "file"
split_min = "32KiB"

[[layer]]
name = "runtime"
copy = [
  { from = "docker-entrypoint.sh", to = "/app/docker-entrypoint.sh", mode = "0755" },
  { from = "ref_audio", to = "/app/ref_audio" },
]

[[layer]]
name = "app"
copy = [{ from = "src", to = "/app/src", exclude = ["**/__pycache__"] }]
EOF
}

# Each contender has its own tree, so no contender is served from another's
# context cache. The model directories are hard links to one copy (at `full`
# scale five copies would take 10 GiB): an edit writes the same bytes into
# every tree anyway, and a shard is only ever overwritten in place. The small
# files are real copies, since the edits append to them once per tree.
copy_tree() { # DEST NAME...
  local dest=$1 n; shift
  mkdir -p "$dest"
  for n in "$@"; do
    if [ "$n" = models ]; then cp -al "$tree/$n" "$dest/"; else cp -a "$tree/$n" "$dest/"; fi
  done
}
for c in $contenders; do
  copy_tree "$work/ctx-$c" sdists src ref_audio docker-entrypoint.sh requirements.txt .dockerignore models
done
dockerfile plain "" > "$work/ctx-plain/Dockerfile"
dockerfile link "--link" > "$work/ctx-link/Dockerfile"
dockerfile files "--link" > "$work/ctx-files/Dockerfile"
strata_toml > "$work/ctx-strata/strata.toml"
# The copy-only variant for the embedded builder: the same trees, no runs.
emb=$work/ctx-embedded
copy_tree "$emb" models ref_audio docker-entrypoint.sh src
cat > "$emb/strata.toml" <<'EOF'
version = 1
[image]
from = "scratch"
workdir = "/app"
[[layer]]
name = "models"
copy = [
  { from = "models/vocos", to = "/app/models/vocos" },
  { from = "models/whisper", to = "/app/models/whisper" },
]
split = "file"
split_min = "32KiB"
[[layer]]
name = "runtime"
copy = [
  { from = "docker-entrypoint.sh", to = "/app/docker-entrypoint.sh", mode = "0755" },
  { from = "ref_audio", to = "/app/ref_audio" },
]
[[layer]]
name = "app"
copy = [{ from = "src", to = "/app/src", exclude = ["**/__pycache__"] }]
EOF
sync

# --- scenario edits: the same bytes in every contender's tree -------------
edit() { # scenario run
  local s=$1 r=$2 d
  case $s in
    app) for d in "$work"/ctx-*; do printf '# edit %s-%s\n' "$run_id" "$r" >> "$d/src/f5_tts_api/__init__.py"; done ;;
    req) for d in "$work"/ctx-plain "$work"/ctx-link "$work"/ctx-files "$work"/ctx-strata; do printf '# edit %s-%s\n' "$run_id" "$r" >> "$d/requirements.txt"; done ;;
    shard)
      head -c 1048576 /dev/urandom > "$work/patch"
      for d in "$work"/ctx-*; do
        dd if="$work/patch" of="$d/models/whisper/model-00002-of-0000$shards.safetensors" bs=1M seek=0 conv=notrunc status=none
      done ;;
    touch) local t=$(( $(date +%s) + r )); for d in "$work"/ctx-*; do find "$d" -exec touch -h -d "@$t" {} +; done ;;
  esac
}

# --- engines, lock, frontend image ------------------------------------------
exec 200>"$lockfile"
lock() { flock 200; }
unlock() { flock -u 200; }

lock
log "frontend image (one image for every engine: it is pushed and pulled)"
fctx=$work/frontend-ctx && mkdir -p "$fctx" && cp "$bin" "$fctx/strata" && cp "$(dirname "$bin")/strata-normalize" "$fctx/" \
  && touch -d @0 "$fctx/strata" "$fctx/strata-normalize"
fhash=$(cat "$bin" "$fctx/strata-normalize" | sha256sum | cut -c1-16)
dk "$H" build -q --build-arg SOURCE_DATE_EPOCH=0 -f frontend.Dockerfile --target host -t "strata-bench-frontend:$fhash" "$fctx" >&2
syntax=$registry/strata-bench/frontend:$fhash
dk "$H" tag "strata-bench-frontend:$fhash" "$syntax"
dk "$H" push -q "$syntax" >&2
dk "$H" tag "$base_local" "$base_default"
dk "$H" push -q "$base_default" >&2
dk "$HB" pull -q "$base_default" >&2
unlock

# build HOST CONTENDER TAG BASE LOG [extra buildx args] -> prints seconds
build() {
  local host=$1 c=$2 tag=$3 base=$4 out=$5; shift 5
  local args=(buildx build --progress=plain --provenance=false --load -t "$tag" --build-arg "BASE_IMAGE=$base")
  if [ "$c" = strata ]; then args+=(-f strata.toml --build-arg "BUILDKIT_SYNTAX=$syntax"); fi
  local t0 t1
  # Every build starts with no dirty pages left by the one before: at `full`
  # scale a build writes GiBs (snapshots, blobs, the unpacked image), and the
  # next contender's first commit would otherwise wait for their writeback.
  sync
  t0=$(date +%s.%N)
  (cd "$work/ctx-$c" && DOCKER_HOST=$host docker "${args[@]}" "$@" . ) > "$out" 2>&1 ||
    { tail -40 "$out" >&2; log "build failed: $c $tag"; exit 2; }
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}

# record SCENARIO CONTENDER RUN HOST TAG SECS LOG PUSH(0|1) [REF_DIFFIDS_JSON]
record() {
  local s=$1 c=$2 r=$3 host=$4 tag=$5 secs=$6 out=$7 push=$8 ref=${9:-}
  dk "$host" image inspect -f '{{json .RootFS.Layers}}' "$tag" > "$work/state/cur.json"
  local prev=$work/state/$c.diffids.json
  [ -f "$prev" ] || echo '[]' > "$prev"
  local same=-
  [ -z "$ref" ] || same=$(python3 bench/compare.py same "$work/state/cur.json" "$ref")
  local uploaded=- newb=- push_secs=- changed layers
  read -r layers changed < <(python3 bench/compare.py changed "$work/state/cur.json" "$prev")
  if [ "$push" = 1 ]; then
    local rrepo=strata-bench/$run_id-$c rtag=$s-$r
    local off; off=$(stat -c %s "$reglog")
    dk "$host" tag "$tag" "$registry/$rrepo:$rtag"
    local p0 p1; p0=$(date +%s.%N)
    dk "$host" push -q "$registry/$rrepo:$rtag" >/dev/null
    p1=$(date +%s.%N); push_secs=$(echo "$p1 - $p0" | bc)
    sleep 0.3
    tail -c +"$((off + 1))" "$reglog" > "$work/state/reglog"
    read -r newb uploaded < <(python3 bench/compare.py push "$registry" "$rrepo" "$rtag" "$work/state/reglog" "$work/state/$c.manifest.json")
    dk "$host" rmi "$registry/$rrepo:$rtag" >/dev/null
  fi
  cp "$work/state/cur.json" "$prev"
  local ctxb executed
  read -r ctxb executed < <(python3 bench/compare.py progress "$out" "$c")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$c" "$r" "$( [ "$host" = "$H" ] && echo "$engine" || echo "$fresh_engine")" \
    "$secs" "$layers" "$changed" "$newb" "$uploaded" "$push_secs" "$ctxb" "$executed" "$same" - >> "$raw"
  # The main engine keeps each contender's latest image only: a rebuild of
  # the same layers finds them unpacked (as on a developer's machine), and
  # the superseded images' unpacked layers (GiBs at `full` scale) go.
  if [ "$host" = "$H" ]; then
    local last=$work/state/$c.tag
    if [ -f "$last" ] && [ "$(cat "$last")" != "$tag" ]; then dk "$H" rmi "$(cat "$last")" >/dev/null; fi
    echo "$tag" > "$last"
  fi
  log "$s $c run $r: ${secs}s layers changed $changed/$layers new $newb B uploaded $uploaded B context $ctxb B executed '$executed' same $same"
}

prune_fresh() { # drop this run's images and the build cache of the second engine
  dk "$HB" images --format '{{.Repository}}:{{.Tag}}' | grep -E '^strata-bench-(plain|link|files|strata|base):' | xargs -r env DOCKER_HOST="$HB" docker rmi -f >/dev/null 2>&1 || true
  dk "$HB" builder prune -af >/dev/null
}

warm_state() { # the main engine's state is still the warm-up image
  cp "$work/state/$1.warm.diffids.json" "$work/state/$1.diffids.json"
  cp "$work/state/$1.warm.manifest.json" "$work/state/$1.manifest.json"
}

tagof() { echo "strata-bench-$1:$run_id-$2"; }

# Disk: a `full` run writes several GiB per build (context copy, layer
# snapshots, compressed blobs, pushes). Before every build the run checks
# that the engines' and the bench's file systems keep $min_free GiB free, and
# otherwise stops measuring (the tables then hold what was measured, and
# meta.txt says where it stopped) rather than fill the disk under the engines.
stopped=
room() {
  local avail
  avail=$(df --output=avail -BG /var/lib "$work" | tail -n +2 | tr -dc '0-9\n' | sort -n | head -1)
  [ "$avail" -ge "$min_free" ] && return 0
  stopped="before $1: $avail GiB free, $min_free GiB wanted"
  log "stopping: $stopped"
  return 1
}

# --- warm-up and registry caches ------------------------------------------------
lock
log "warm-up on $engine"
for c in $contenders; do
  secs=$(build "$H" "$c" "$(tagof "$c" warm)" "$base_default" "$work/logs/warm-$c.log")
  record warmup "$c" 1 "$H" "$(tagof "$c" warm)" "$secs" "$work/logs/warm-$c.log" 1
  build "$H" "$c" "$(tagof "$c" warm)" "$base_default" "$work/logs/cacheto-$c.log" \
    --cache-to "type=registry,ref=$registry/strata-bench/$run_id-cache-$c,mode=max" >/dev/null
  cp "$work/state/$c.diffids.json" "$work/state/$c.warm.diffids.json"
  cp "$work/state/$c.manifest.json" "$work/state/$c.warm.manifest.json"
done
unlock

for s in $scenarios; do
  lock
  log "scenario $s"
  printf '%s\t%s\n' "$s" "$(cut -d' ' -f1-3 /proc/loadavg)" >> "$results/load.tsv"
  case $s in
    fresh|cold)
      for c in $contenders; do
        for r in $(seq 1 "$runs"); do
          prune_fresh
          room "$s $c run $r" || break
          extra=()
          [ "$s" = cold ] && extra=(--cache-from "type=registry,ref=$registry/strata-bench/$run_id-cache-$c")
          tag=$(tagof "$c" "$s-$r") out=$work/logs/$s-$c-$r.log
          secs=$(build "$HB" "$c" "$tag" "$base_default" "$out" "${extra[@]}")
          # layers are compared with the warm-up image of the same content.
          warm_state "$c"
          record "$s" "$c" "$r" "$HB" "$tag" "$secs" "$out" "$([ "$r" = 1 ] && echo 1 || echo 0)" "$work/state/$c.warm.diffids.json"
          dk "$HB" rmi "$tag" >/dev/null
        done
        warm_state "$c"
        [ -z "$stopped" ] || break
      done
      prune_fresh ;;
    noop|app|req|shard|touch|base)
      for r in $(seq 1 "$runs"); do
        room "$s run $r" || break
        edit "$s" "$r"
        base=$base_default
        if [ "$s" = base ]; then
          base=strata-bench-base:$run_id-$r
          printf 'FROM %s\nRUN echo %s > /etc/bench-base\n' "$base_default" "$run_id-$r" |
            DOCKER_HOST=$H docker buildx build -q --provenance=false --load -t "$base" - >/dev/null
        fi
        for c in $contenders; do
          tag=$(tagof "$c" "$s-$r") out=$work/logs/$s-$c-$r.log
          secs=$(build "$H" "$c" "$tag" "$base" "$out")
          # Pushes after the first run (its numbers are reported) and after
          # the last, so the next scenario's first push starts from its
          # predecessor; the last run's own push numbers are not reported.
          record "$s" "$c" "$r" "$H" "$tag" "$secs" "$out" "$([ "$r" = 1 ] || [ "$r" = "$runs" ] && echo 1 || echo 0)"
        done
      done ;;
    *) log "unknown scenario $s"; exit 1 ;;
  esac
  unlock
  [ -z "$stopped" ] || break
done

# --- the embedded builder next to tar | gzip -6 (no engine, no lock) ------------
if [ "$embedded" = 1 ] && [ -z "$stopped" ] && room embedded; then
  log "embedded builder"
  export STRATA_CACHE_DIR=$work/embedded-cache
  measure() { # scenario contender run command...
    local s=$1 c=$2 r=$3; shift 3
    /usr/bin/time -o "$work/time" -f '%e %M' "$@" >/dev/null 2>"$work/stderr" || { cat "$work/stderr" >&2; exit 2; }
    read -r secs kib < <(tail -1 "$work/time")
    printf '%s\t%s\t%s\tnone\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t%s\n' "$s" "$c" "$r" "$secs" "$kib" >> "$raw"
    log "$s $c run $r: ${secs}s peak RSS ${kib} KiB"
  }
  for s in fresh noop app shard touch; do
    for r in $(seq 1 "$runs"); do
      edit "$s" "$r"
      # fresh: an empty cache for `strata plan` (it hashes every file) and
      # again for the build; otherwise the plan runs after the build.
      if [ "$s" = fresh ]; then
        rm -rf "$STRATA_CACHE_DIR" "$work/emb-out"
        measure "$s" plan "$r" "$bin" plan "$emb"
        rm -rf "$STRATA_CACHE_DIR"
      fi
      measure "$s" embedded "$r" "$bin" build "$emb" -o "oci-layout:$work/emb-out:$s-$r"
      [ "$s" = fresh ] || measure "$s" plan "$r" "$bin" plan "$emb"
      # tar | gzip has no cache: every scenario costs what the fresh one does
      # (measured 7.5 to 8.4 s in all five at `ci` scale), so it runs once.
      [ "$s" != fresh ] || measure "$s" targz "$r" sh -c "tar -C '$emb' -cf - models ref_audio docker-entrypoint.sh src | gzip -6 > '$work/baseline.tar.gz'"
    done
  done
fi

# --- clean up this run's images on the main engine ----------------------------------
lock
dk "$H" images --format '{{.Repository}}:{{.Tag}}' | grep -E "^strata-bench-(plain|link|files|strata|base):$run_id" | xargs -r env DOCKER_HOST="$H" docker rmi -f >/dev/null 2>&1 || true
unlock

{
  echo "date: $(date -u '+%F %T UTC')"
  echo "command: $cmdline"
  echo "scale: $scale ($((2 * shards)) shards of $shard_mib MiB in two model directories, $app_files app files)"
  echo "engine: $engine $(dk "$H" version -f '{{.Server.Version}}'), fresh engine: $fresh_engine $(dk "$HB" version -f '{{.Server.Version}}')"
  echo "buildx: $(docker buildx version)"
  echo "strata: $(git rev-parse --short HEAD)"
  echo "cpus: $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  [ -z "$stopped" ] || echo "stopped early (disk): $stopped"
} > "$results/meta.txt"
python3 bench/compare.py report "$results"
log "results in $results"
