//! Content addressing and the layer graph: walk, input digests, stat cache,
//! split partition, layer keys and each layer's final entries.
//!
//! Input digests, in the order a caller uses them: [`ignore::Matcher`] for
//! the context's ignore file and each entry's excludes, [`walk::walk`] per
//! input, [`statcache::StatCache::open`] in [`cache_root::cache_root`],
//! [`hash::hash_walks`], then [`digest::input_digest`] per input.

pub mod beneath;
pub mod cache_root;
pub mod digest;
pub mod entries;
pub mod error;
pub mod graph;
pub mod hash;
pub mod ignore;
pub mod lock;
pub mod make;
pub mod statcache;
pub mod walk;

pub use digest::Digest;
pub use error::PlanError;
pub use make::{Plan, PlannedKind, PlannedLayer, make_plan};
