//! The embedded builder: deterministic tar layers, blobs and OCI layouts, no daemon.

pub mod archive;
pub mod base;
pub mod blob;
pub mod compress;
pub mod digest;
pub mod error;
pub mod image;
pub mod layout;
pub mod tar;

pub use digest::Digest;
pub use error::OciError;
