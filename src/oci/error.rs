//! The `oci` layer's error: one enum whose variants carry the facts as fields.
//! Messages are lowercase with no final period; every I/O error names its path.

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong while writing layers, blobs, layouts and
/// archives, or while importing a base image.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// A planning error met while writing a layer (a base symlink, docs/design.md §1).
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),

    /// An I/O operation on `path` failed.
    #[error("{}", crate::io_error::io_message(path, source))]
    Io {
        /// The file or directory the operation was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A context input is not what was hashed when it is written into a
    /// layer: its content, its inode or a component of its path changed
    /// during the build.
    #[error(
        "`{}` changed while being read: it is not the file whose content keyed the layer; run again once it is stable",
        path.display()
    )]
    ContentChanged {
        /// The input file.
        path: PathBuf,
    },

    /// A file's size on disk differs from the size the plan recorded: the
    /// input changed while the build ran.
    #[error(
        "`{}` changed during the build: planned {planned} bytes, found {found}",
        path.display()
    )]
    InputChanged {
        /// The input file.
        path: PathBuf,
        /// Size recorded by the plan.
        planned: u64,
        /// Size found while writing the layer.
        found: u64,
    },

    /// A layer entry's path cannot be written to a tar.
    #[error("invalid layer entry path `{path}`: {reason}")]
    InvalidEntryPath {
        /// The path, lossily decoded.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// Layer entries were not in canonical order (`plan::entries::path_order`).
    #[error("layer entries out of canonical order: `{previous}` before `{path}`")]
    EntryOrder {
        /// The entry that came first.
        previous: String,
        /// The entry that should have come before it.
        path: String,
    },

    /// Content hashed to a different digest than expected.
    #[error("digest mismatch for {what}: expected {expected}, found {found}")]
    DigestMismatch {
        /// What was hashed (a blob path or a description).
        what: String,
        /// The digest it should have.
        expected: String,
        /// The digest it has.
        found: String,
    },

    /// Content had a different size than expected.
    #[error("size mismatch for {what}: expected {expected} bytes, found {found}")]
    SizeMismatch {
        /// What was measured.
        what: String,
        /// The expected size.
        expected: u64,
        /// The actual size.
        found: u64,
    },

    /// A digest string is malformed or uses an unsupported algorithm.
    #[error(transparent)]
    InvalidDigest(#[from] crate::plan::sha256::DigestError),

    /// A JSON document could not be read or written.
    #[error("invalid json in {what}: {source}")]
    Json {
        /// The document (a path or a description).
        what: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },

    /// An output path strata will not write to as it is.
    #[error("output `{}` {reason}", path.display())]
    BadOutput {
        /// The output path, or the path inside it that is wrong.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },

    /// An image, layout or archive is malformed.
    #[error("invalid image at {location}: {reason}")]
    InvalidImage {
        /// Where the image was read from.
        location: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A blob that an image references is missing.
    #[error("missing blob {digest} in {location}")]
    MissingBlob {
        /// Where the image was read from.
        location: String,
        /// The missing blob's digest or path.
        digest: String,
    },

    /// No manifest carries the requested tag.
    #[error("no image tagged `{tag}` in {location} (tags: {})", list(available))]
    TagNotFound {
        /// Where the image was read from.
        location: String,
        /// The tag asked for.
        tag: String,
        /// The tags that exist.
        available: Vec<String>,
    },

    /// Several images match and nothing says which one to use.
    #[error(
        "{location} holds several images ({}); name one with a tag",
        list(candidates)
    )]
    AmbiguousImage {
        /// Where the image was read from.
        location: String,
        /// The images found.
        candidates: Vec<String>,
    },

    /// No image for the requested platform.
    #[error(
        "no image for platform {wanted} in {location} (found: {})",
        list(available)
    )]
    PlatformNotFound {
        /// Where the image was read from.
        location: String,
        /// The platform asked for.
        wanted: String,
        /// The platforms present.
        available: Vec<String>,
    },

    /// A layer uses a media type or compression this builder cannot read.
    #[error("unsupported {what} `{value}` in {location}")]
    Unsupported {
        /// What kind of thing (media type, compression, ...).
        what: &'static str,
        /// Its value.
        value: String,
        /// Where it was found.
        location: String,
    },

    /// An image reference such as `oci-layout:PATH:TAG` is malformed.
    #[error("invalid image reference `{reference}`: {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Base and strata layers together exceed what Docker can stack (docs/design.md §6).
    #[error("{base} base layers plus {strata} strata layers exceed the limit of {limit} layers")]
    TooManyLayers {
        /// Layers of the base image.
        base: usize,
        /// Layers strata adds.
        strata: usize,
        /// The limit.
        limit: usize,
    },

    /// The image description given to the config builder is inconsistent.
    #[error("invalid image config: {reason}")]
    InvalidConfig {
        /// What is wrong with it.
        reason: String,
    },
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

/// Result alias for the `oci` layer.
pub type Result<T, E = OciError> = std::result::Result<T, E>;

impl OciError {
    /// An I/O error about `path`.
    /// fs-err's errors already name the path; keep only their cause so the
    /// message names it once.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source: strip_path_context(source),
        }
    }
}

/// Replaces an fs-err error (whose message repeats the path) by its cause.
fn strip_path_context(e: io::Error) -> io::Error {
    let cause = e
        .get_ref()
        .and_then(|inner| inner.source())
        .and_then(|src| src.downcast_ref::<io::Error>());
    match cause {
        Some(cause) => match cause.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(cause.kind(), cause.to_string()),
        },
        None => e,
    }
}

/// Attaches a path to I/O results.
pub(crate) trait IoContext<T> {
    /// Maps an I/O error to [`OciError::Io`] naming `path`.
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|e| OciError::io(path, e))
    }
}

impl From<crate::spec::reference::ImageRefError> for OciError {
    fn from(e: crate::spec::reference::ImageRefError) -> Self {
        OciError::InvalidReference {
            reference: e.reference,
            reason: e.reason,
        }
    }
}
