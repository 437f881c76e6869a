# The strata BuildKit frontend image: the static strata binary in an empty
# image. BuildKit runs it as the frontend (`# syntax=<this image>`), and the
# frontend runs the same image as the root of its `strata helper copy` execs
# (docs/design.md §2), so one binary writes every layer. Beside it,
# `/strata-normalize`, the small binary every run layer's exec mounts (one
# file, keyed by its content where BuildKit can) to give what the command
# wrote the layer timestamp (docs/frontend.md, "Run layers").
#
#   default target: builds the binary in a Rust image (needs Docker Hub),
#   for the builder's platform (other platforms run under emulation):
#     docker build -f frontend.Dockerfile -t strata:dev .
#   `release`: the binaries of release/build.sh, one image per platform,
#   without emulation (COPY only), pushed as one multi-platform image. The
#   published image is built by strata itself instead (release/frontend.sh,
#   release/frontend.toml: the same files, entrypoint and labels, strata's
#   layers and a reproducible index digest); this target is for people who
#   build with Docker:
#     bash release/build.sh
#     docker buildx build -f frontend.Dockerfile --target release \
#       --platform linux/amd64,linux/arm64 -t REGISTRY/strata:VERSION --push dist
#   `host`: one binary built on the host (no registry needed), e.g. the
#   suite's (integration/frontend-image.sh does this for an engine):
#     . release/env.sh && cargo build --release --locked
#     docker build -f frontend.Dockerfile --target host -t strata:dev \
#       target/x86_64-unknown-linux-gnu/release
#   (the context needs both `strata` and `strata-normalize`)

FROM rust:1-bookworm AS build
SHELL ["/bin/bash", "-euo", "pipefail", "-c"]
WORKDIR /src
COPY . .
RUN . release/env.sh "$(uname -m)-unknown-linux-gnu" \
 && cargo build --release --locked \
 && cp "target/$CARGO_BUILD_TARGET/release/strata" /strata \
 && cp "target/$CARGO_BUILD_TARGET/release/strata-normalize" /strata-normalize

FROM scratch AS host
COPY strata /strata
COPY strata-normalize /strata-normalize
LABEL moby.buildkit.frontend.network.none="true"
LABEL moby.buildkit.frontend.caps="moby.buildkit.frontend.inputs,moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts"
ENTRYPOINT ["/strata", "frontend"]

FROM scratch AS release
ARG TARGETARCH
COPY strata-linux-${TARGETARCH} /strata
COPY strata-normalize-linux-${TARGETARCH} /strata-normalize
LABEL moby.buildkit.frontend.network.none="true"
LABEL moby.buildkit.frontend.caps="moby.buildkit.frontend.inputs,moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts"
ENTRYPOINT ["/strata", "frontend"]

FROM scratch
COPY --from=build /strata /strata
COPY --from=build /strata-normalize /strata-normalize
LABEL moby.buildkit.frontend.network.none="true"
LABEL moby.buildkit.frontend.caps="moby.buildkit.frontend.inputs,moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts"
ENTRYPOINT ["/strata", "frontend"]
