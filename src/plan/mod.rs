//! Content addressing and the layer graph: walk, input digests, stat cache,
//! split partition, layer keys and each layer's final entries.
//!
//! Input digests, in the order a caller uses them: [`ignore::Matcher`] for
//! the context's ignore file and each entry's excludes, [`walk::walk`] per
//! input, [`statcache::StatCache::open`] in [`cache_root::cache_root`],
//! [`hash::hash_walks`], then [`digest::input_digest`] per input.

pub(crate) mod beneath;
pub(crate) mod cache_root;
pub(crate) mod digest;
pub(crate) mod entries;
pub(crate) mod error;
pub(crate) mod graph;
pub mod hash;
pub mod ignore;
pub(crate) mod lock;
pub(crate) mod make;
pub(crate) mod record;
pub mod sha256;
pub mod statcache;
pub mod walk;

pub use error::PlanError;
pub use make::{Plan, PlannedKind, PlannedLayer, make_plan};
pub use sha256::Digest;
