# The transport smoke frontend: strata's static binary, started by BuildKit
# through `# syntax=strata-smoke:dev` (see integration/smoke.sh). The build
# context is a directory holding only the binary, named `strata`.
FROM scratch
COPY strata /strata
LABEL moby.buildkit.frontend.network.none="true" \
      moby.buildkit.frontend.caps="moby.buildkit.frontend.inputs,moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts"
ENTRYPOINT ["/strata", "frontend-smoke"]
