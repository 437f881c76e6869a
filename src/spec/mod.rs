//! The `strata.toml` layer spec: parse, substitute arguments, validate, resolve.
