//! Content addressing and the layer graph: walk, input digests, stat cache,
//! split partition, layer keys and each layer's final entries.

pub mod entries;
pub mod error;
pub mod ignore;
pub mod walk;

pub use error::PlanError;
