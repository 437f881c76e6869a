//! Content addressing and the layer graph: walk, input digests, stat cache,
//! split partition, layer keys and each layer's final entries.

pub mod entries;
pub mod lock;
