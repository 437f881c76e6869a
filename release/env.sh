# The build settings of strata's one static binary, for the scripts that build
# it: release/build.sh, integration/run.sh, integration/frontend-image.sh and
# bench/*.sh. Source it, with a target triple (default x86_64-unknown-linux-gnu):
#
#   . release/env.sh [TRIPLE]
#   cargo build --release --locked      # target/TRIPLE/release/strata
#
# It exports CARGO_BUILD_TARGET (an explicit target, so the flags below reach
# strata and its dependencies but never build scripts or proc macros, which
# stay ordinary host builds) and that target's RUSTFLAGS: a static glibc binary
# (+crt-static: the frontend image is FROM scratch) with the checkout and the
# Cargo home remapped, so two clones of one commit in different directories
# build byte-identical binaries. Plain `cargo build` and `cargo install --path .`
# (without this file) build an ordinary binary for the host.

STRATA_TRIPLE=${1:-x86_64-unknown-linux-gnu}
STRATA_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
strata_cargo_home=$(cd "${CARGO_HOME:-$HOME/.cargo}" 2>/dev/null && pwd -P || echo "${CARGO_HOME:-$HOME/.cargo}")
case "$STRATA_REPO$strata_cargo_home" in
  *[[:space:]]*) echo "release/env.sh: the checkout and CARGO_HOME paths must not contain spaces" >&2; return 2 ;;
esac
# Build outputs (OUT_DIR, embedded by include!) must lie in the checkout to be
# remapped with it.
export CARGO_TARGET_DIR="$STRATA_REPO/target"
export CARGO_BUILD_TARGET=$STRATA_TRIPLE
strata_var=$(echo "$STRATA_TRIPLE" | tr 'a-z-' 'A-Z_')
export "CARGO_TARGET_${strata_var}_RUSTFLAGS=-C target-feature=+crt-static --remap-path-prefix=$STRATA_REPO=/strata --remap-path-prefix=$strata_cargo_home=/cargo"
unset strata_var strata_cargo_home
