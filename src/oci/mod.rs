//! The embedded builder: deterministic tar layers, blobs and OCI layouts, no daemon.
//!
//! Data flows `plan::entries::Entry` → [`compress::write_layer`] (tar →
//! diffID → gzip → digest → blob, one pass) → [`image::build_config`] and
//! [`layout::write_image`] → [`layout::OciDir::set_tag`] or
//! [`archive::write_output`]. Base images come in through
//! [`base::import_base`]; [`base::base_paths`] answers the parent-directory
//! questions of docs/design.md §1. `docs/oci.md` states the byte-level rules.

pub(crate) mod archive;
pub mod base;
pub(crate) mod blob;
pub(crate) mod blocks;
pub mod build;
pub(crate) mod cache;
pub mod compress;
pub(crate) mod error;
pub(crate) mod image;
pub(crate) mod layout;
pub(crate) mod output;
pub(crate) mod tar;
pub(crate) mod verified;

pub use crate::plan::Digest;
pub use error::OciError;
