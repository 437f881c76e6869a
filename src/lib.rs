//! strata builds container images from a declarative layer spec, `strata.toml`,
//! so that every layer is a pure function of the content of its declared inputs.
//!
//! Modules, in the direction data flows:
//! - `platform`: the one platform type, `os/arch[/variant]` (below every layer);
//! - [`spec`]: parse and validate `strata.toml` into a [`spec::ResolvedSpec`];
//! - [`plan`]: walk the context, digest inputs, partition layers, and yield each
//!   layer's ordered entries with their final metadata;
//! - `llb`: a pure builder of BuildKit's LLB, encoded with pinned digests;
//! - [`oci`]: the embedded builder's deterministic tar, blobs and OCI layouts;
//! - `registry`: push to and pull from registries (above `oci`, below `cli`);
//! - `helper`: `strata helper copy`, a copy layer written inside BuildKit;
//! - `frontend`: strata as a BuildKit gateway frontend (the only async code);
//! - `diff`: compare two images down to tar entries (`strata diff`);
//! - [`cli`]: one module per subcommand;
//! - [`error`]: the top-level error and its exit status.
//!
//! Shared by several layers: `bounded` (bounded reads of small files),
//! `io_error` (how an I/O error names its path) and `proto` (BuildKit's
//! generated protobuf code).
//!
//! Lower layers never import higher ones. `docs/design.md` records the
//! decisions every backend shares; comments cite its sections.

pub(crate) mod bounded;
pub mod cli;
pub(crate) mod diff;
pub mod error;
pub(crate) mod frontend;
pub(crate) mod helper;
mod io_error;
pub(crate) mod llb;
pub mod oci;
pub mod plan;
mod platform;
mod proto;
pub(crate) mod registry;
pub mod spec;

/// strata's version and the commit it was built from, as `strata --version`
/// and the frontend print it: `0.1.0 (0123456789ab)` (docs/design.md §9).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("STRATA_COMMIT"), ")");
