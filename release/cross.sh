#!/usr/bin/env bash
# Installs what building and running strata for aarch64 on an x86_64
# Debian 12 machine needs, as root (integration/run.sh calls it; idempotent,
# a second or two when everything is there):
#
#   - Debian's own Rust (rustc-web, cargo-web: Rust from bookworm-security)
#     with its aarch64 standard library, and the cross C toolchain whose
#     aarch64-linux-gnu-gcc links the static binary (release/build.sh uses
#     them when rustup has no aarch64 target);
#   - qemu-user-static, registered with binfmt_misc (mounted if it is not),
#     so aarch64 binaries run here: the release binary's own `--version`,
#     and `docker run --platform linux/arm64` (the registration has the `F`
#     flag, so it works inside containers too).
#
#   bash release/cross.sh          # install and register
#   bash release/cross.sh check    # exit 0 when both are ready, else 1
set -euo pipefail

packages=(rustc-web cargo-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu
  libc6-dev-arm64-cross qemu-user-static)
binfmt=/proc/sys/fs/binfmt_misc
conf=/usr/lib/binfmt.d/qemu-aarch64.conf

missing_packages() {
  local p
  for p in "${packages[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || echo "$p"
  done
}

registered() { [ -f "$binfmt/qemu-aarch64" ] && grep -qx enabled "$binfmt/qemu-aarch64"; }

if [ "${1:-}" = check ]; then
  [ -z "$(missing_packages)" ] && registered
  exit
fi
[ $# -eq 0 ] || { echo "usage: release/cross.sh [check]" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "release/cross.sh: run it as root" >&2; exit 2; }
command -v dpkg >/dev/null && command -v apt-get >/dev/null ||
  { echo "release/cross.sh: needs Debian's dpkg and apt-get" >&2; exit 2; }

mapfile -t missing < <(missing_packages)
if [ ${#missing[@]} -gt 0 ]; then
  echo "release/cross.sh: installing ${missing[*]}" >&2
  dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

if ! registered; then
  [ -f "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt"
  [ -f "$conf" ] || { echo "release/cross.sh: $conf is missing (qemu-user-static)" >&2; exit 2; }
  if [ -f "$binfmt/qemu-aarch64" ]; then
    echo 1 > "$binfmt/qemu-aarch64"
  else
    # One line, `:name:type:offset:magic:mask:interpreter:flags`, as
    # systemd-binfmt would write it at boot.
    grep -v '^#' "$conf" | grep . | head -1 > "$binfmt/register"
  fi
  echo "release/cross.sh: registered qemu-aarch64 with binfmt_misc" >&2
fi
registered || { echo "release/cross.sh: qemu-aarch64 is not enabled in $binfmt" >&2; exit 2; }
