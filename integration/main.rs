//! strata's integration tests: the binary and the library on real files.
//!
//! Tests that need external tools (skopeo, umoci, Docker engines) find them on
//! PATH; under `CI=true` a missing tool is a failure, never a skip.

#![allow(clippy::disallowed_methods)] // tests unwrap std::fs calls on paths they made

mod adversarial;
mod bad_input;
mod build;
mod check;
mod cli;
mod diff;
mod frontend;
mod hardening;
mod ignore;
mod llb;
mod matrix;
mod persistence;
mod readme;
mod registry;
mod release;
mod remote;
mod runlayers;
mod stages;
#[allow(
    dead_code,
    reason = "shared helpers of the test modules: each uses some, none uses all"
)]
mod util;
