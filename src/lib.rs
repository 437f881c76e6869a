//! strata builds container images from a declarative layer spec, `strata.toml`,
//! so that every layer is a pure function of the content of its declared inputs.
//!
//! Key modules, in the direction data flows:
//! - [`spec`]: parse and validate `strata.toml` into a [`spec::ResolvedSpec`];
//! - [`plan`]: walk the context, digest inputs, partition layers, and yield each
//!   layer's ordered entries with their final metadata;
//! - [`oci`]: the embedded builder's deterministic tar, blobs and OCI layouts;
//! - [`registry`]: push to and pull from registries (above `oci`, below `cli`);
//! - [`frontend`]: strata as a BuildKit gateway frontend (the only async code);
//! - [`diff`]: compare two images down to tar entries (`strata diff`);
//! - [`cli`]: one module per subcommand.
//!
//! Lower layers never import higher ones. `docs/design.md` records the
//! decisions every backend shares; comments cite its sections.

pub(crate) mod bounded;
pub mod cli;
pub mod diff;
pub mod error;
pub mod frontend;
pub mod helper;
mod io_error;
pub mod llb;
pub mod oci;
pub mod plan;
mod platform;
mod proto;
pub mod registry;
pub mod spec;

/// strata's version and the commit it was built from, as `strata --version`
/// and the frontend print it: `0.1.0 (0123456789ab)` (docs/design.md §9).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("STRATA_COMMIT"), ")");
