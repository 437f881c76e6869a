//! The `registry` layer's error. Messages are lowercase with no final
//! period, name the registry and repository they are about, and never carry a
//! credential (the client sends credentials in headers only, and no message
//! here formats a header).

use std::path::PathBuf;

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A registry was needed but `--offline` forbids the network.
    #[error("registry {registry} is needed, but --offline was given")]
    Offline {
        /// `host[:port]`.
        registry: String,
    },

    /// A reference does not parse.
    #[error("invalid image reference `{reference}`: {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// Why it does not parse.
        reason: String,
    },

    /// A request failed (after retries, when the failure was transient).
    #[error("registry {registry}: {action} failed: {message}")]
    Request {
        /// `host[:port]`.
        registry: String,
        /// What strata was doing (`upload of blob sha256:…`).
        action: String,
        /// The cause, as the client words it.
        message: String,
    },

    /// The registry could not be reached: no answer at all, as opposed to
    /// an answer that says "not found" or "denied".
    #[error("registry {registry} is unreachable: {cause} ({during}{detail})")]
    Network {
        /// `host[:port]`.
        registry: String,
        /// `during upload of blob sha256:…: `, or empty (never an
        /// authentication: the registry did not answer).
        during: String,
        /// What failed: `DNS lookup failed`, `connection refused`, `TLS
        /// handshake failed`, `timed out`, `connection failed`.
        cause: &'static str,
        /// The client's words (the URL and the system error).
        detail: String,
    },

    /// The registry answered that the image or blob does not exist.
    #[error("registry {registry}: {what} not found")]
    NotFound {
        /// `host[:port]`.
        registry: String,
        /// What was asked for (`manifest host/repo:tag`).
        what: String,
    },

    /// The registry refused the credentials, or wants some and has none.
    #[error("registry {registry}: {action} was refused: not authorized{hint}")]
    Unauthorized {
        /// `host[:port]`.
        registry: String,
        /// What strata was doing.
        action: String,
        /// Where credentials come from, when none were found.
        hint: String,
    },

    /// The registry sent bytes whose digest is not the one asked for.
    #[error("registry {registry}: {what} has digest {found}, expected {expected}")]
    DigestMismatch {
        /// `host[:port]`.
        registry: String,
        /// What was fetched.
        what: String,
        /// The digest asked for.
        expected: String,
        /// The digest of the bytes received.
        found: String,
    },

    /// A manifest or index strata cannot use.
    #[error("registry {registry}: {reference}: {reason}")]
    InvalidImage {
        /// `host[:port]`.
        registry: String,
        /// The reference.
        reference: String,
        /// What is wrong.
        reason: String,
    },

    /// Local I/O.
    #[error("{}", crate::io_error::io_message(path, source))]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// Reading or writing the local image failed.
    #[error(transparent)]
    Oci(#[from] crate::oci::OciError),
}

impl RegistryError {
    /// Exit status (docs/design.md §8): a bad reference or a wrong image is the
    /// input's fault (1), and so is an image the registry does not have;
    /// network, auth and I/O are trouble (2).
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Self::InvalidReference { .. }
            | Self::InvalidImage { .. }
            | Self::NotFound { .. }
            | Self::Offline { .. } => 1,
            _ => 2,
        }
    }
}

/// Result of a registry operation.
pub(crate) type Result<T, E = RegistryError> = std::result::Result<T, E>;
