//! The top-level error: each layer's error, and the exit status it maps to
//! (contracts §8: 1 when the input is wrong or the answer is no, 2 for trouble).

use std::path::PathBuf;

use crate::frontend::FrontendError;
use crate::spec::SpecError;

/// Any error a command can end with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec could not be loaded.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The command line is wrong in a way clap cannot see.
    #[error("{0}")]
    Usage(String),
    /// A wrong input that is not a spec diagnostic (exit 1).
    #[error("{0}")]
    Input(String),
    /// I/O on a path failed (exit 2).
    #[error("cannot access `{path}`: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Running as a BuildKit frontend failed before BuildKit could be told
    /// (exit 2).
    #[error(transparent)]
    Frontend(#[from] FrontendError),
}

impl Error {
    /// The process exit status for this error (contracts §8).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Spec(e) => e.exit_code(),
            Error::Input(_) => 1,
            Error::Usage(_) | Error::Io { .. } | Error::Frontend(_) => 2,
        }
    }
}

/// Result of a command.
pub type Result<T, E = Error> = std::result::Result<T, E>;
