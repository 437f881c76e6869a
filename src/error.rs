//! The top-level error: each layer's error, and the exit status it maps to
//! (docs/design.md §8: 1 when the input is wrong or the answer is no, 2 for trouble).

use std::path::PathBuf;

use crate::diff::DiffError;
use crate::frontend::{BuildError, FrontendError};
use crate::helper::HelperError;
use crate::oci::OciError;
use crate::plan::PlanError;
use crate::plan::lock::LockError;
use crate::registry::RegistryError;
use crate::spec::SpecError;

/// Any error a command can end with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec could not be loaded.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Planning failed.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The embedded builder failed.
    #[error(transparent)]
    Oci(#[from] OciError),
    /// The lock file could not be read or written.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A registry operation failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The command line is wrong in a way clap cannot see.
    #[error("{0}")]
    Usage(String),
    /// A wrong input that is not a spec diagnostic (exit 1).
    #[error("{0}")]
    Input(String),
    /// I/O on a path failed (exit 2).
    #[error("{}", crate::io_error::io_message(path, source))]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `strata diff` could not compare (exit 2).
    #[error(transparent)]
    Diff(#[from] DiffError),
    /// `strata diff`'s answer "the images differ" (exit 1, nothing more to say:
    /// the report is on stdout).
    #[error("the images differ")]
    Different,
    /// An error with what to do about it; exits as its cause does.
    #[error("{source}\nhelp: {help}")]
    Hinted {
        /// The error.
        source: Box<Error>,
        /// What to do.
        help: String,
    },
    /// Running as a BuildKit frontend failed before BuildKit could be told
    /// (exit 2).
    #[error(transparent)]
    Frontend(#[from] FrontendError),
    /// A frontend build failed: the spec's fault, another input's, the
    /// engine's, or strata's (exit 1 or 2 by kind).
    #[error(transparent)]
    Build(#[from] BuildError),
    /// `strata helper` failed: its input is wrong (exit 1) or I/O failed
    /// (exit 2).
    #[error("helper: {0}")]
    Helper(#[from] HelperError),
}

impl Error {
    /// The process exit status for this error (docs/design.md §8).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Spec(e) => e.exit_code(),
            Error::Plan(e) => plan_exit_code(e),
            Error::Oci(OciError::Io { .. }) => 2,
            Error::Oci(OciError::Plan(e)) => plan_exit_code(e),
            Error::Oci(_) => 1,
            Error::Lock(LockError::Io { .. }) => 2,
            Error::Lock(_) => 1,
            Error::Input(_) | Error::Different => 1,
            Error::Diff(_) => 2,
            Error::Registry(e) => e.exit_code(),
            Error::Build(e) => e.exit_code(),
            Error::Helper(HelperError::Io { .. }) => 2,
            Error::Helper(HelperError::Plan(e)) => plan_exit_code(e),
            Error::Helper(_) => 1,
            Error::Usage(_) | Error::Io { .. } | Error::Frontend(_) => 2,
            Error::Hinted { source, .. } => source.exit_code(),
        }
    }
}

/// Result of a command.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn plan_exit_code(e: &PlanError) -> u8 {
    match e {
        PlanError::Io { .. } => 2,
        PlanError::Spec(s) => s.exit_code(),
        _ => 1,
    }
}
