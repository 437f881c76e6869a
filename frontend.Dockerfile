# The strata BuildKit frontend image: the static strata binary in an empty
# image. BuildKit runs it as the frontend (`# syntax=<this image>`), and the
# frontend runs the same image as the root of its `strata helper copy` execs
# (docs/design.md §2), so one binary writes every layer. Beside it,
# `/strata-normalize`, the small binary every run layer's exec mounts (one
# file, keyed by its content where BuildKit can) to give what the command
# wrote the layer timestamp (docs/frontend.md, "Run layers").
#
#   default target (needs a registry for the Rust image):
#     docker build -f frontend.Dockerfile -t strata:dev .
#   from a binary built on the host (no registry needed):
#     RUSTFLAGS are set in .cargo/config.toml (static glibc)
#     cargo build --release
#     docker build -f frontend.Dockerfile --target host -t strata:dev \
#       target/x86_64-unknown-linux-gnu/release
#   (the context needs both `strata` and `strata-normalize`)
#   (integration/frontend-image.sh does the second for an engine.)

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && cp target/x86_64-unknown-linux-gnu/release/strata /strata \
 && cp target/x86_64-unknown-linux-gnu/release/strata-normalize /strata-normalize

FROM scratch AS host
COPY strata /strata
COPY strata-normalize /strata-normalize
LABEL moby.buildkit.frontend.network.none="true"
LABEL moby.buildkit.frontend.caps="moby.buildkit.frontend.inputs,moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts"
ENTRYPOINT ["/strata", "frontend"]

FROM scratch
COPY --from=build /strata /strata
COPY --from=build /strata-normalize /strata-normalize
LABEL moby.buildkit.frontend.network.none="true"
LABEL moby.buildkit.frontend.caps="moby.buildkit.frontend.inputs,moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts"
ENTRYPOINT ["/strata", "frontend"]
