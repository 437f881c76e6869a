//! The embedded builder: deterministic tar layers, blobs and OCI layouts, no daemon.

pub mod blob;
pub mod digest;
pub mod error;
pub mod tar;

pub use digest::Digest;
pub use error::OciError;
