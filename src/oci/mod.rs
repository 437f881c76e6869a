//! The embedded builder: deterministic tar layers, blobs and OCI layouts, no daemon.
//!
//! Data flows `plan::entries::Entry` → [`compress::write_layer`] (tar →
//! diffID → gzip → digest → blob, one pass) → [`image::build_config`] and
//! [`image::write_image`] → [`layout::OciDir::set_tag`] or
//! [`archive::write_output`]. Base images come in through
//! [`base::import_base`]; [`base::base_paths`] answers the parent-directory
//! questions of contracts §1. `docs/oci.md` states the byte-level rules.

pub mod archive;
pub mod base;
pub mod blob;
pub mod build;
pub mod cache;
pub mod compress;
pub mod digest;
pub mod error;
pub mod image;
pub mod layout;
pub mod output;
pub mod tar;
pub mod verified;

pub use digest::Digest;
pub use error::OciError;
