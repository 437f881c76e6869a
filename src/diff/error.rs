//! The `diff` layer's error. Every variant is trouble (exit 2): "the images
//! differ" is an answer, not an error (docs/design.md §8).

use std::path::PathBuf;

use crate::oci::OciError;

/// What can stop a comparison.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// Reading one of the images failed.
    #[error(transparent)]
    Oci(#[from] OciError),

    /// An image side such as `oci-layout:DIR:TAG` is malformed.
    #[error("invalid image `{side}`: {reason}")]
    InvalidSide {
        /// The side as given.
        side: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A transport strata cannot read yet.
    #[error("`{side}`: {feature} is not supported yet; {hint}")]
    Unsupported {
        /// The side as given.
        side: String,
        /// The missing feature.
        feature: &'static str,
        /// What to do instead.
        hint: &'static str,
    },

    /// `docker save` failed or could not be started.
    #[error("`docker save {name}` failed: {reason}")]
    Docker {
        /// The image name given.
        name: String,
        /// Docker's message or the spawn error.
        reason: String,
    },

    /// An I/O operation on `path` failed.
    #[error("{}", crate::io_error::io_message(path, source))]
    Io {
        /// The file (a blob, an archive, a temporary directory).
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A layer blob does not match its descriptor: the image is corrupt.
    #[error("corrupt blob {digest} in {location}: found {found}")]
    CorruptBlob {
        /// The image.
        location: String,
        /// The digest the descriptor names.
        digest: String,
        /// What the blob holds instead.
        found: String,
    },

    /// A layer could not be read as a tar.
    #[error("cannot read layer {digest} of {location}: {reason}")]
    Layer {
        /// The image.
        location: String,
        /// The layer blob.
        digest: String,
        /// What went wrong.
        reason: String,
    },
}

/// Result alias for the `diff` layer.
pub(crate) type Result<T, E = DiffError> = std::result::Result<T, E>;
