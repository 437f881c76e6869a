# The strata BuildKit frontend image (issue: BuildKit frontend). Placeholder
# until the frontend lands: `strata frontend` is not built yet.
FROM scratch
