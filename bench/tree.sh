# The benchmark project of bench/embedded.sh and bench/progress.sh, sourced:
#   model_tree ROOT SIZE_MIB
# makes ROOT/ctx with two model directories of four incompressible shards
# each (SIZE_MIB in all), their config files, 200 small app modules and a
# strata.toml that splits the models one shard per layer.
model_tree() {
  local root=$1 size=$2 d i
  rm -rf "$root" && mkdir -p "$root/ctx/models/encoder" "$root/ctx/models/decoder" "$root/ctx/app"
  local shard=$((size / 8))
  for d in encoder decoder; do
    for i in 1 2 3 4; do
      head -c "$((shard * 1024 * 1024))" /dev/urandom > "$root/ctx/models/$d/shard-$i.bin"
    done
    echo '{"layers": 24}' > "$root/ctx/models/$d/config.json"
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
  sync
}
