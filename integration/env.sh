#!/usr/bin/env bash
# integration/env.sh: install, start, inspect and stop strata's integration
# test environment on a Debian 12 (bookworm) machine, as root.
#
#   integration/env.sh up [ENGINE...]     install + start (idempotent); default: all engines
#   integration/env.sh down [ENGINE...]   stop what `up` started; default: everything
#   integration/env.sh status             one line per component; exit 1 if any is not up
#   integration/env.sh host ENGINE        print the DOCKER_HOST value for ENGINE
#
# Engines (each with its own bridge, data root, exec root, socket, pid file, log):
#   d28   Docker 28.5 (Debian forky .debs), containerd image store
#   d26   Docker 26.1 (Debian trixie .debs), containerd image store
#   d20   Docker 20.10 (bookworm's docker.io), graphdriver overlay2
#   d28g  Docker 28.5 again, graphdriver overlay2 (no containerd snapshotter)
#   d28b  Docker 28.5 a second time, containerd store, its own data root: a
#         second fresh builder for reproducibility checks (not in the default set)
#   d26b  likewise for Docker 26.1
#   d26r  Docker 26.1, containerd store, listening only on the loopback TCP port
#         tcp://127.0.0.1:23756 (no socket): the remote builder a client reaches
#         through `docker context` (not in the default set)
# Plus: buildx 0.29 (forky docker-buildx) as a docker CLI plugin, skopeo, umoci,
# debootstrap, docker-registry on 127.0.0.1:5000, and the base image
# strata-test/debian:bookworm (debootstrap minbase + python3-pip) in every engine.
#
# Environment: STRATA_ENV_CACHE (default /var/cache/strata-env) keeps downloaded
# .debs and the base rootfs tarball between runs; STRATA_ENV_TIMEOUT (default 90)
# is how many seconds a daemon gets to answer.
set -Eeuo pipefail

# ---------------------------------------------------------------- settings
CACHE=${STRATA_ENV_CACHE:-/var/cache/strata-env}
TIMEOUT=${STRATA_ENV_TIMEOUT:-90}
OPT=/opt/strata-env
CONF=/etc/strata-env
LOCK=/var/run/strata-env.lock
ALL_ENGINES=(d28 d26 d20 d28g d28b d26b d26r)

# Wanted versions (apt version globs) of the extracted Debian packages.
FORKY_PKGS=("docker.io=28.5.*" "containerd=*" "docker-buildx=0.29.*" "docker-cli=28.5.*")
TRIXIE_PKGS=("docker.io=26.1.*" "containerd=*")
HOST_PKGS=(runc iptables tini docker.io containerd skopeo umoci docker-registry
           debootstrap debian-archive-keyring curl)

REGISTRY_ADDR=127.0.0.1:5000
REGISTRY_DIR=/var/lib/strata-registry
REGISTRY_PID=/var/run/strata-registry.pid
REGISTRY_LOG=/var/log/strata-registry.log

BASE_IMAGE=strata-test/debian:bookworm
BASE_SUITE=bookworm
BASE_INCLUDE=python3,python3-pip

# The daemons get a PATH without /usr/local: bookworm's runc (1.1) must be the
# one they find, never a newer runc someone dropped elsewhere.
SYS_PATH=/usr/sbin:/usr/bin:/sbin:/bin

STEP="parse arguments"
log() { printf '[env %3ss] %s\n' "$SECONDS" "$*" >&2; }
step() { STEP=$1; log "$1"; }
die() { printf 'env.sh: error in step "%s": %s\n' "$STEP" "$*" >&2; exit 1; }

CLEANUPS=()
on_exit() {
  local rc=$? c
  for c in "${CLEANUPS[@]}"; do eval "$c" || true; done
  if [ "$rc" -ne 0 ] && [ "$STEP" != usage ] && [ "$STEP" != status ]; then
    printf 'env.sh: FAILED (exit %s) in step: %s\n' "$rc" "$STEP" >&2
  fi
  exit "$rc"
}
trap on_exit EXIT

# ---------------------------------------------------------------- engine table
engine_index() {
  case $1 in d20) echo 0 ;; d28) echo 1 ;; d26) echo 2 ;; d28g) echo 3 ;; d28b) echo 4 ;; d26b) echo 5 ;;
    d26r) echo 6 ;;
    *) return 1 ;; esac
}
check_engine() {
  engine_index "$1" >/dev/null ||
    die "unknown engine '$1' (known: ${ALL_ENGINES[*]})"
}
bridge_of() { echo "strata-$1"; }
bridge_cidr() { echo "172.31.$(engine_index "$1").1/24"; }
# Networks a test creates on an engine come from that engine's own /20,
# so engines never hand out overlapping subnets.
pool_of() { echo "172.31.$((16 * ($(engine_index "$1") + 1))).0/20"; }
sock_of() { echo "/var/run/strata-$1.sock"; }
host_of() {
  case $1 in d26r) echo "tcp://127.0.0.1:23756" ;; *) echo "unix://$(sock_of "$1")" ;; esac
}
pidfile_of() { echo "/var/run/strata-$1.pid"; }
log_of() { echo "/var/log/strata-$1.log"; }
dataroot_of() { echo "/var/lib/strata-$1"; }
execroot_of() { echo "/var/run/strata-$1"; }
# Root of the extracted Debian packages an engine runs from ("" = the system's).
pkgroot_of() {
  case $1 in d28 | d28g | d28b) echo "$OPT/forky" ;; d26 | d26b | d26r) echo "$OPT/trixie" ;; d20) echo "" ;; esac
}
expected_version() {
  case $1 in d28 | d28g | d28b) echo "28.5." ;; d26 | d26b | d26r) echo "26.1." ;; d20) echo "20.10." ;; esac
}

# The docker client: the machine's Docker 28 CLI, else forky's docker-cli.
docker_cli() {
  if [ -x /usr/local/bin/docker ]; then
    echo /usr/local/bin/docker
  elif [ -x "$OPT/forky/usr/bin/docker" ]; then
    echo "$OPT/forky/usr/bin/docker"
  else
    return 1
  fi
}
dk() { # dk ENGINE ARGS...: run the client against ENGINE
  local e=$1; shift
  DOCKER_HOST=$(host_of "$e") "$(docker_cli)" "$@"
}
plugin_dir() { echo "${DOCKER_CONFIG:-${HOME:-/root}/.docker}/cli-plugins"; }

# pid_alive PIDFILE NAME: the pid file names a live process whose command is NAME
pid_alive() {
  local pid
  [ -s "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [ -d "/proc/$pid" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}
engine_answers() {
  docker_cli >/dev/null 2>&1 || return 1
  timeout 10 env DOCKER_HOST="$(host_of "$1")" "$(docker_cli)" version \
    --format '{{.Server.Version}}' >/dev/null 2>&1
}
engine_running() { pid_alive "$(pidfile_of "$1")" dockerd && engine_answers "$1"; }
registry_answers() { curl -fsS -m 5 -o /dev/null "http://$REGISTRY_ADDR/v2/" 2>/dev/null; }

# ---------------------------------------------------------------- host packages
missing_host_pkgs() {
  local p
  for p in "${HOST_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
      printf '%s ' "$p"
  done
}

install_host_pkgs() {
  local missing
  missing=$(missing_host_pkgs)
  [ -n "$missing" ] || return 0
  step "host packages: apt-get install $missing"
  # No service may start from a package's postinst (docker.io and
  # docker-registry ship init scripts that would grab docker.sock and :5000).
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    CLEANUPS+=("rm -f /usr/sbin/policy-rc.d")
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get -q update >&2 || die "apt-get update failed"
  # shellcheck disable=SC2086
  apt-get -q install -y --no-install-recommends $missing >&2 ||
    die "apt-get install $missing failed"
}

# ---------------------------------------------------------------- newer Debian .debs
# fetch_debs RELEASE PKG=GLOB...: download into $CACHE/debs/RELEASE, once.
fetch_debs() {
  local rel=$1; shift
  local dir=$CACHE/debs/$rel state=$CACHE/apt/$rel uri spec pkg glob ver v o
  if [ -f "$dir/.complete" ]; then
    return 0
  fi
  step "download $rel packages: ${*%%=*}"
  uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  [ -n "$uri" ] || die "no URIs: line in /etc/apt/sources.list.d/debian.sources"
  mkdir -p "$state/lists/partial" "$dir"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $rel main" \
    >"$state/sources.list"
  o=(-o "Dir::Etc::SourceList=$state/sources.list" -o Dir::Etc::SourceParts=/dev/null
     -o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache"
     -o APT::Sandbox::User=root)
  mkdir -p "$state/cache/archives/partial"
  apt-get -q "${o[@]}" update >&2 || die "apt-get update of $rel failed"
  rm -f "$dir"/*.deb
  for spec in "$@"; do
    pkg=${spec%%=*} glob=${spec#*=}
    # madison lists the candidates highest first; take the first that matches.
    ver=""
    for v in $(apt-cache "${o[@]}" madison "$pkg" | awk -F'|' '{gsub(/ /,"",$2); print $2}'); do
      # shellcheck disable=SC2254
      case $v in $glob) ver=$v; break ;; esac
    done
    [ -n "$ver" ] || die "$rel has no $pkg matching version $glob"
    (cd "$dir" && apt-get -q "${o[@]}" download "$pkg=$ver" >&2) ||
      die "apt-get download $pkg=$ver ($rel) failed"
  done
  (cd "$dir" && ls -1 ./*.deb) >"$dir/.complete"
}

# extract RELEASE: unpack the cached .debs of RELEASE into $OPT/RELEASE.
extract_debs() {
  local rel=$1 dir=$CACHE/debs/$1 dest=$OPT/$1 f
  if [ -f "$dest/.strata-stamp" ] && cmp -s "$dir/.complete" "$dest/.strata-stamp"; then
    return 0
  fi
  step "extract $rel packages into $dest"
  rm -rf "$dest"
  mkdir -p "$dest"
  for f in "$dir"/*.deb; do dpkg -x "$f" "$dest" || die "dpkg -x $f failed"; done
  cp "$dir/.complete" "$dest/.strata-stamp"
}

install_buildx() {
  local src=$OPT/forky/usr/libexec/docker/cli-plugins/docker-buildx dst v
  dst=$(plugin_dir)/docker-buildx
  [ -x "$src" ] || die "no docker-buildx in $OPT/forky"
  if ! cmp -s "$src" "$dst"; then
    step "install buildx plugin into $dst"
    mkdir -p "$(dirname "$dst")"
    install -m 0755 "$src" "$dst"
  fi
  v=$("$(docker_cli)" buildx version 2>/dev/null) || die "docker buildx version failed"
  case $v in *" v0.29."* | *" 0.29."*) ;; *) die "buildx is not 0.29.x: $v" ;; esac
}

# ---------------------------------------------------------------- engines
write_daemon_json() {
  local e=$1 root f
  root=$(pkgroot_of "$e")
  f=$CONF/$e.json
  mkdir -p "$CONF"
  {
    echo "{"
    case $e in
      d28 | d26 | d28b | d26b | d26r) echo '  "features": {"containerd-snapshotter": true},' ;;
      d28g) echo '  "features": {"containerd-snapshotter": false},'
            echo '  "storage-driver": "overlay2",' ;;
      d20) echo '  "storage-driver": "overlay2",' ;;
    esac
    if [ -n "$root" ]; then
      echo "  \"userland-proxy-path\": \"$root/usr/sbin/docker-proxy\","
      [ -x /usr/bin/tini-static ] && echo '  "init-path": "/usr/bin/tini-static",'
    fi
    # Every dockerd resets the shared DOCKER-* chains it knows when it starts
    # (a second Docker 28 wipes the first one's forwarding rules), so no
    # daemon touches iptables: env.sh adds the few rules each bridge needs.
    echo '  "iptables": false,'
    echo '  "ip6tables": false,'
    echo "  \"default-address-pools\": [{\"base\": \"$(pool_of "$e")\", \"size\": 24}]"
    echo "}"
  } >"$f.tmp"
  mv "$f.tmp" "$f"
}

ensure_bridge() {
  local br cidr
  br=$(bridge_of "$1") cidr=$(bridge_cidr "$1")
  if ! ip link show "$br" >/dev/null 2>&1; then
    ip link add name "$br" type bridge || die "cannot create bridge $br"
  fi
  if ! ip -4 addr show dev "$br" | grep -q "inet $cidr "; then
    ip addr add "$cidr" dev "$br" || die "cannot add $cidr to $br"
  fi
  ip link set "$br" up
}

# NAT and forwarding for one engine's bridge, tagged so `down` finds them.
ensure_bridge_rules() {
  local br net tag=(-m comment --comment strata-env)
  br=$(bridge_of "$1") net="172.31.$(engine_index "$1").0/24"
  echo 1 >/proc/sys/net/ipv4/ip_forward
  iptables -t nat -C POSTROUTING -s "$net" ! -o "$br" "${tag[@]}" -j MASQUERADE 2>/dev/null ||
    iptables -t nat -A POSTROUTING -s "$net" ! -o "$br" "${tag[@]}" -j MASQUERADE ||
    die "iptables: cannot add MASQUERADE for $net"
  iptables -C FORWARD -o "$br" -m conntrack --ctstate RELATED,ESTABLISHED "${tag[@]}" -j ACCEPT 2>/dev/null ||
    iptables -I FORWARD 1 -o "$br" -m conntrack --ctstate RELATED,ESTABLISHED "${tag[@]}" -j ACCEPT ||
    die "iptables: cannot add FORWARD rule for $br"
  iptables -C FORWARD -i "$br" "${tag[@]}" -j ACCEPT 2>/dev/null ||
    iptables -I FORWARD 1 -i "$br" "${tag[@]}" -j ACCEPT ||
    die "iptables: cannot add FORWARD rule for $br"
}

start_engine() {
  local e=$1 root pidf logf dockerd pid path v i
  pidf=$(pidfile_of "$e") logf=$(log_of "$e")
  if engine_running "$e"; then
    ensure_bridge_rules "$e" # cheap; restores them if something flushed iptables
    return 0
  fi
  root=$(pkgroot_of "$e")
  if [ -n "$root" ]; then
    dockerd=$root/usr/sbin/dockerd path=$root/usr/sbin:$root/usr/bin:$SYS_PATH
  else
    dockerd=/usr/sbin/dockerd path=$SYS_PATH
  fi
  [ -x "$dockerd" ] || die "no dockerd at $dockerd"
  if pid_alive "$pidf" dockerd; then
    step "engine $e: dockerd (pid $(cat "$pidf")) is up but not answering yet"
  else
    step "start engine $e ($dockerd, log $logf)"
    rm -f "$pidf" # stale: the process it names is gone or is not dockerd
    ensure_bridge "$e"
    ensure_bridge_rules "$e"
    write_daemon_json "$e"
    mkdir -p "$(dataroot_of "$e")" "$(execroot_of "$e")"
    echo "=== $(date -u +%FT%TZ) env.sh starting $e" >>"$logf"
    PATH=$path setsid "$dockerd" \
      --config-file "$CONF/$e.json" \
      --bridge "$(bridge_of "$e")" \
      --data-root "$(dataroot_of "$e")" \
      --exec-root "$(execroot_of "$e")" \
      --pidfile "$pidf" \
      --host "$(host_of "$e")" \
      </dev/null >>"$logf" 2>&1 9>&- &
    pid=$!
  fi
  STEP="wait for engine $e to answer on $(host_of "$e")"
  for ((i = 0; i < TIMEOUT * 2; i++)); do
    engine_answers "$e" && break
    if [ -n "${pid:-}" ] && ! kill -0 "$pid" 2>/dev/null; then
      tail -n 15 "$logf" >&2 || true
      die "dockerd for $e exited during start-up; see $logf"
    fi
    sleep 0.5
  done
  if ! engine_answers "$e"; then
    tail -n 15 "$logf" >&2 || true
    die "engine $e did not answer 'docker version' on $(host_of "$e") within ${TIMEOUT}s; see $logf"
  fi
  v=$(dk "$e" version --format '{{.Server.Version}}')
  case $v in "$(expected_version "$e")"*) ;;
    *) die "engine $e runs Docker $v, expected $(expected_version "$e")x" ;; esac
  log "engine $e: Docker $v on $(host_of "$e")"
}

# ---------------------------------------------------------------- registry
start_registry() {
  local pid i
  if pid_alive "$REGISTRY_PID" docker-registry && registry_answers; then
    return 0
  fi
  if ! pid_alive "$REGISTRY_PID" docker-registry; then
    step "start docker-registry on $REGISTRY_ADDR (log $REGISTRY_LOG)"
    if registry_answers; then
      die "something that env.sh did not start already answers on $REGISTRY_ADDR"
    fi
    rm -f "$REGISTRY_PID"
    mkdir -p "$REGISTRY_DIR/data"
    cat >"$REGISTRY_DIR/config.yml" <<EOF
# written by integration/env.sh
version: 0.1
log:
  level: info
  fields:
    service: strata-registry
storage:
  filesystem:
    rootdirectory: $REGISTRY_DIR/data
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
EOF
    echo "=== $(date -u +%FT%TZ) env.sh starting registry" >>"$REGISTRY_LOG"
    setsid docker-registry serve "$REGISTRY_DIR/config.yml" \
      </dev/null >>"$REGISTRY_LOG" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$REGISTRY_PID"
  fi
  STEP="wait for docker-registry on http://$REGISTRY_ADDR/v2/"
  for ((i = 0; i < 40; i++)); do
    registry_answers && return 0
    if [ -n "${pid:-}" ] && ! kill -0 "$pid" 2>/dev/null; then
      tail -n 15 "$REGISTRY_LOG" >&2 || true
      die "docker-registry exited during start-up; see $REGISTRY_LOG"
    fi
    sleep 0.25
  done
  die "docker-registry does not answer on http://$REGISTRY_ADDR/v2/; see $REGISTRY_LOG"
}

# ---------------------------------------------------------------- base image
base_key() { echo "debian-$BASE_SUITE-minbase-$(echo "$BASE_INCLUDE" | tr ',' '_')"; }
base_tar() { echo "$CACHE/rootfs/$(base_key).tar"; }

build_base_rootfs() {
  local tar uri tmp
  tar=$(base_tar)
  [ -s "$tar" ] && [ -s "$tar.sha256" ] && return 0
  step "debootstrap --variant=minbase --include=$BASE_INCLUDE $BASE_SUITE"
  uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  mkdir -p "$CACHE/rootfs" "$CACHE/debootstrap-debs"
  tmp=$(mktemp -d /var/tmp/strata-rootfs.XXXXXX)
  CLEANUPS+=("umount -R $tmp/root/proc $tmp/root/sys $tmp/root/dev/pts 2>/dev/null; rm -rf --one-file-system $tmp")
  debootstrap --variant=minbase --include="$BASE_INCLUDE" \
    --cache-dir="$CACHE/debootstrap-debs" \
    "$BASE_SUITE" "$tmp/root" "$uri" >"$CACHE/rootfs/debootstrap.log" 2>&1 ||
    { tail -n 20 "$CACHE/rootfs/debootstrap.log" >&2; die "debootstrap failed; see $CACHE/rootfs/debootstrap.log"; }
  # Keep the image small (no apt caches, docs, man pages, translations), drop
  # the build host's resolv.conf/hostname, and let `pip install --no-index`
  # of local wheels work without --break-system-packages (PEP 668 marker).
  rm -rf "$tmp/root"/var/cache/apt/archives/*.deb "$tmp/root"/var/cache/apt/*.bin \
    "$tmp/root"/var/lib/apt/lists/* "$tmp/root"/var/log/* \
    "$tmp/root"/usr/share/doc/* "$tmp/root"/usr/share/man/* \
    "$tmp/root"/usr/share/info/* "$tmp/root"/usr/share/locale/* \
    "$tmp/root"/usr/lib/python3*/EXTERNALLY-MANAGED
  : >"$tmp/root/etc/resolv.conf"
  echo localhost >"$tmp/root/etc/hostname"
  step "pack base rootfs into $tar"
  tar --numeric-owner --sort=name -C "$tmp/root" -cf "$tar.tmp" . ||
    die "tar of the base rootfs failed"
  sha256sum "$tar.tmp" | awk '{print $1}' >"$tar.sha256"
  mv "$tar.tmp" "$tar"
  rm -rf --one-file-system "$tmp"
}

import_base_image() {
  local e=$1 want have
  want=$(cat "$(base_tar).sha256")
  have=$(dk "$e" image inspect --format '{{index .Config.Labels "org.strata.env.rootfs-sha256"}}' \
    "$BASE_IMAGE" 2>/dev/null || true)
  [ "$have" = "$want" ] && return 0
  step "docker import $BASE_IMAGE into $e"
  dk "$e" import \
    --change "LABEL org.strata.env.rootfs-sha256=$want" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    "$(base_tar)" "$BASE_IMAGE" >/dev/null || die "docker import into $e failed"
}

# ---------------------------------------------------------------- commands
# background FUNCTION ARGS...: run in a subshell (started with `&`) that
# reports its own failing step and cleans up after itself.
background() {
  trap on_exit EXIT
  CLEANUPS=()
  "$@"
}

cmd_up() {
  local engines=("$@") e need_trixie=0 base_pid="" pids=() i
  [ ${#engines[@]} -gt 0 ] || engines=("${ALL_ENGINES[@]}")
  for e in "${engines[@]}"; do check_engine "$e"; done
  [ "$(id -u)" = 0 ] || die "must run as root"
  mkdir -p "$CACHE"

  install_host_pkgs
  # The base rootfs (debootstrap, the slow part of a cold run) is built in
  # the background while the engines are fetched and started.
  if ! [ -s "$(base_tar)" ] || ! [ -s "$(base_tar).sha256" ]; then
    background build_base_rootfs &
    base_pid=$!
    CLEANUPS+=("wait $base_pid 2>/dev/null")
  fi
  # forky is always needed: it brings buildx (and the CLI fallback).
  fetch_debs forky "${FORKY_PKGS[@]}"
  extract_debs forky
  for e in "${engines[@]}"; do case $e in d26 | d26b | d26r) need_trixie=1 ;; esac; done
  if [ $need_trixie = 1 ]; then
    fetch_debs trixie "${TRIXIE_PKGS[@]}"
    extract_debs trixie
  fi
  docker_cli >/dev/null || die "no docker client (/usr/local/bin/docker or forky docker-cli)"
  install_buildx
  start_registry
  for e in "${engines[@]}"; do start_engine "$e"; done
  if [ -n "$base_pid" ]; then
    STEP="wait for the base rootfs build"
    wait "$base_pid" || die "building the base rootfs failed (see above)"
  fi
  build_base_rootfs # no-op when cached; fails loudly if the cache is unusable
  STEP="import $BASE_IMAGE"
  for e in "${engines[@]}"; do
    background import_base_image "$e" &
    pids+=($!)
    CLEANUPS+=("wait $! 2>/dev/null")
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || die "importing $BASE_IMAGE into ${engines[$i]} failed (see above)"
  done
  STEP="done"
  log "up: ${engines[*]} + registry ready"
}

stop_pid() { # stop_pid PIDFILE NAME WHAT
  local pidf=$1 name=$2 what=$3 pid i
  pid_alive "$pidf" "$name" || { rm -f "$pidf"; return 0; }
  pid=$(cat "$pidf")
  step "stop $what (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 120; i++)); do
    [ -d "/proc/$pid" ] || break
    sleep 0.25
  done
  if [ -d "/proc/$pid" ]; then
    log "$what did not stop within 30s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$pidf"
}

# Remove the iptables rules dockerd left behind that name this engine's bridge.
drop_bridge_rules() {
  local br=$1 t rule
  command -v iptables >/dev/null || return 0
  for t in nat filter raw mangle; do
    while read -r -a rule; do
      [ ${#rule[@]} -gt 0 ] || continue
      rule[0]=-D
      iptables -t "$t" "${rule[@]}" 2>/dev/null || true
    done < <(iptables -t "$t" -S 2>/dev/null | grep -E -- "^-A .*[ !]$br( |$)" || true)
  done
}

cmd_down() {
  local engines=("$@") e br all=0 pids=() i
  if [ ${#engines[@]} -eq 0 ]; then engines=("${ALL_ENGINES[@]}") all=1; fi
  for e in "${engines[@]}"; do check_engine "$e"; done
  # dockerd takes a few seconds to shut down: stop the engines side by side.
  for e in "${engines[@]}"; do
    background stop_pid "$(pidfile_of "$e")" dockerd "engine $e" &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || die "stopping engine ${engines[$i]} failed"
  done
  for e in "${engines[@]}"; do
    br=$(bridge_of "$e")
    if ip link show "$br" >/dev/null 2>&1; then
      step "remove bridge $br"
      ip link del "$br" || log "could not delete bridge $br"
    fi
    drop_bridge_rules "$br"
  done
  [ $all = 1 ] && stop_pid "$REGISTRY_PID" docker-registry "docker-registry"
  STEP="done"
  log "down: ${engines[*]}$([ $all = 1 ] && echo ' + registry') stopped"
}

cmd_status() {
  local e v store ok=0 pidf b
  for e in "${ALL_ENGINES[@]}"; do
    pidf=$(pidfile_of "$e")
    if engine_running "$e"; then
      v=$(dk "$e" version --format '{{.Server.Version}}' 2>/dev/null || echo '?')
      store=$(dk "$e" info --format '{{.Driver}}{{range .DriverStatus}} {{index . 1}}{{end}}' \
        2>/dev/null || echo '?')
      case $store in
        *io.containerd.snapshotter*) store="containerd:${store%% *}" ;;
        *) store="graphdriver:${store%% *}" ;;
      esac
      printf '%-9s running  pid %-7s docker %-8s store %-22s %s\n' \
        "$e" "$(cat "$pidf")" "$v" "$store" "$(host_of "$e")"
    elif pid_alive "$pidf" dockerd; then
      printf '%-9s starting pid %-7s (not answering on %s; log %s)\n' \
        "$e" "$(cat "$pidf")" "$(sock_of "$e")" "$(log_of "$e")"; ok=1
    else
      printf '%-9s stopped  (log %s)\n' "$e" "$(log_of "$e")"; ok=1
    fi
  done
  if pid_alive "$REGISTRY_PID" docker-registry && registry_answers; then
    printf '%-9s running  pid %-7s http://%s/v2/ storage %s/data\n' \
      registry "$(cat "$REGISTRY_PID")" "$REGISTRY_ADDR" "$REGISTRY_DIR"
  else
    printf '%-9s stopped  (log %s)\n' registry "$REGISTRY_LOG"; ok=1
  fi
  b=$(plugin_dir)/docker-buildx
  if [ -x "$b" ]; then
    printf '%-9s %s (%s)\n' buildx "$("$b" version 2>/dev/null | awk '{print $2}')" "$b"
  else
    printf '%-9s missing (%s)\n' buildx "$b"; ok=1
  fi
  if docker_cli >/dev/null 2>&1; then
    printf '%-9s %s (%s)\n' client \
      "$("$(docker_cli)" version --format '{{.Client.Version}}' 2>/dev/null || true)" "$(docker_cli)"
  else
    printf '%-9s missing\n' client; ok=1
  fi
  for b in skopeo umoci debootstrap; do
    if command -v "$b" >/dev/null; then
      printf '%-9s %s\n' "$b" "$(dpkg-query -W -f='${Version}' "$b" 2>/dev/null)"
    else
      printf '%-9s missing\n' "$b"; ok=1
    fi
  done
  if [ -s "$(base_tar)" ]; then
    printf '%-9s %s cached (%s)\n' base "$BASE_IMAGE" "$(base_tar)"
  else
    printf '%-9s %s not built\n' base "$BASE_IMAGE"; ok=1
  fi
  STEP="status"
  return $ok
}

usage() {
  STEP="usage"
  sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit "${1:-2}"
}

main() {
  [ $# -ge 1 ] || usage
  local cmd=$1; shift
  case $cmd in
    up | down)
      mkdir -p "$(dirname "$LOCK")"
      # fd 9 holds the lock; the daemons started below must not inherit it.
      exec 9>"$LOCK"
      flock -w 900 9 || die "another env.sh holds $LOCK"
      "cmd_$cmd" "$@" ;;
    status) cmd_status ;;
    host)
      [ $# -eq 1 ] || usage
      check_engine "$1"
      host_of "$1" ;;
    -h | --help | help) usage 0 ;;
    *) usage ;;
  esac
}

main "$@"
