#!/usr/bin/env bash
# Builds strata's static release binaries and their SHA-256 sums into dist/:
#
#   bash release/build.sh              # x86_64, and aarch64 where its toolchain is
#   bash release/build.sh x86_64       # one architecture (x86_64 | aarch64)
#
#   dist/strata-linux-amd64            x86_64-unknown-linux-gnu, static
#   dist/strata-linux-arm64            aarch64-unknown-linux-gnu, static
#   dist/SHA256SUMS                    `sha256sum -c` checks them
# (and BIN-linux-ARCH for every other [[bin]] of Cargo.toml).
#
# The names match Docker's TARGETARCH, so release/frontend.toml (and
# frontend.Dockerfile's `release` target) pack them into a multi-platform
# frontend image. The settings come
# from release/env.sh (the tests and the frontend image use the same x86_64
# binary): two clones of one commit, in different directories, give
# byte-identical binaries with the same toolchain.
#
# aarch64 on an x86_64 host needs a Rust standard library for aarch64 and a
# cross linker. With rustup: `rustup target add aarch64-unknown-linux-gnu`;
# or Debian 12's own toolchain, which this script then uses (Rust from
# bookworm-security), installed as root by `bash release/cross.sh`:
#   dpkg --add-architecture arm64 && apt-get update
#   apt-get install rustc-web cargo-web libstd-rust-web-dev:arm64 \
#     gcc-aarch64-linux-gnu libc6-dev-arm64-cross
# Either way the linker is aarch64-linux-gnu-gcc (gcc-aarch64-linux-gnu).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd -P)
archs=("$@")
explicit=${#archs[@]}
[ "$explicit" -gt 0 ] || archs=(x86_64 aarch64)

dist=$repo/dist
rm -rf "$dist" && mkdir -p "$dist"
built=()
# Every [[bin]] of Cargo.toml ships, named BIN-linux-ARCH.
mapfile -t bins < <(sed -n '/^\[\[bin\]\]/,/^$/s/^name = "\(.*\)"/\1/p' Cargo.toml)

# A cargo and rustc that can build for $1, printed as "CARGO RUSTC", or nothing.
toolchain_for() {
  local triple=$1 host
  host=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p')
  if [ "$host" = "$triple" ] ||
    [ -d "$(rustc --print sysroot 2>/dev/null)/lib/rustlib/$triple/lib" ]; then
    echo "cargo rustc"
  elif [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ] &&
    [ -d "$(/usr/bin/rustc --print sysroot)/lib/rustlib/$triple/lib" ]; then
    echo "/usr/bin/cargo /usr/bin/rustc"
  fi
}

for arch in "${archs[@]}"; do
  case "$arch" in
    x86_64) docker_arch=amd64 ;;
    aarch64) docker_arch=arm64 ;;
    *) echo "release/build.sh: unknown architecture '$arch' (x86_64 or aarch64)" >&2; exit 2 ;;
  esac
  triple=$arch-unknown-linux-gnu
  read -r cargo rustc <<<"$(toolchain_for "$triple")" || true
  linker=
  if [ "$(uname -m)" != "$arch" ]; then
    linker=$arch-linux-gnu-gcc
    command -v "$linker" >/dev/null || cargo=
  fi
  if [ -z "${cargo:-}" ]; then
    msg="release/build.sh: no Rust toolchain and linker for $triple (see the comment at the top)"
    [ "$explicit" -gt 0 ] && { echo "$msg" >&2; exit 2; }
    echo "$msg: skipped" >&2
    continue
  fi
  echo "release/build.sh: building $triple with $("$rustc" -V)" >&2
  (
    # shellcheck source=release/env.sh
    . release/env.sh "$triple"
    export RUSTC=$rustc
    if [ -n "$linker" ]; then
      var=$(echo "$triple" | tr 'a-z-' 'A-Z_')
      export "CARGO_TARGET_${var}_LINKER=$linker"
      export "CC_${triple//-/_}=$linker" "AR_${triple//-/_}=$arch-linux-gnu-ar"
    fi
    if [ "$cargo" != cargo ]; then
      # Debian's cargo must not pick rustup's proxies from ~/.cargo/bin.
      PATH=$(echo "$PATH" | tr ':' '\n' | grep -v '/\.cargo/bin$' | paste -sd:)
    fi
    "$cargo" build --release --locked
  )
  for bin in "${bins[@]}"; do
    cp "target/$triple/release/$bin" "$dist/$bin-linux-$docker_arch"
    built+=("$bin-linux-$docker_arch")
  done
done

[ ${#built[@]} -gt 0 ] || { echo "release/build.sh: nothing built" >&2; exit 2; }
(cd "$dist" && sha256sum "${built[@]}" > SHA256SUMS && cat SHA256SUMS)
