//! Errors of the planning layer: walking inputs, ignore patterns, hashing and
//! the stat cache. Every error names the path or pattern it is about
//! (docs/design.md §8).

use std::io;
use std::path::{Path, PathBuf};

/// An error while walking, matching, hashing or caching inputs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// An I/O operation failed; the message names the path once
    /// (`fs-err`'s message, which already does, or the path added).
    #[error("{}", crate::io_error::io_message(path, error))]
    Io {
        /// The path the operation was about.
        path: PathBuf,
        /// The underlying error; its message names `path`.
        error: io::Error,
    },

    /// An input named in the spec does not exist in the context.
    #[error("input `{}` does not exist", path.display())]
    MissingInput {
        /// The path on disk that was looked for.
        path: PathBuf,
    },

    /// An input path is absolute or leads out of the context with `..`.
    #[error("input `{input}` is not inside the context: use a path relative to the context root")]
    InputOutsideContext {
        /// The input as written.
        input: String,
    },

    /// An input that is a symlink cannot be followed.
    #[error("input `{}` is a symlink to `{target}` that cannot be followed: {reason}", path.display())]
    SourceLink {
        /// The input path on disk.
        path: PathBuf,
        /// The link's target.
        target: String,
        /// Why not.
        reason: &'static str,
    },

    /// An input path goes through a symlinked directory; inputs never follow links.
    #[error(
        "input `{}` goes through the symlink `{}`: name the path the link points to",
        path.display(),
        link.display()
    )]
    SymlinkInInputPath {
        /// The input path on disk.
        path: PathBuf,
        /// The symlink found among its parent directories.
        link: PathBuf,
    },

    /// The input exists but the ignore rules leave nothing of it.
    #[error("input `{}` is excluded by {by}", path.display())]
    InputIgnored {
        /// The input path on disk.
        path: PathBuf,
        /// Which rules excluded it (an ignore file's path or "exclude patterns").
        by: String,
    },

    /// An input contains a FIFO, socket or device.
    #[error(
        "`{}` is a {kind}: inputs can hold only regular files, directories and symlinks \
         (exclude it or remove it)",
        path.display()
    )]
    SpecialFile {
        /// The offending path on disk.
        path: PathBuf,
        /// "fifo", "socket", "character device", "block device" or "special file".
        kind: &'static str,
    },

    /// An ignore or exclude pattern is malformed or not supported.
    #[error("{}: invalid pattern `{pattern}`: {reason}", location(origin, line))]
    Pattern {
        /// Where the pattern comes from: an ignore file's path or "exclude".
        origin: String,
        /// 1-based line in the ignore file, when it comes from one.
        line: Option<usize>,
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An ignore file is too large, or not a regular file (a FIFO, a
    /// device): it is read whole, so it is bounded (docs/design.md §6).
    #[error("ignore file `{}` {reason}", path.display())]
    BadIgnoreFile {
        /// The ignore file.
        path: PathBuf,
        /// What is wrong: `is 10485760 bytes, over the limit of …`.
        reason: String,
    },

    /// One layer writes a file (or symlink) and a path below it.
    #[error("layer `{layer}` writes `{path}` as a file and `{child}` below it")]
    FileIsParent {
        /// The file or symlink destination.
        path: String,
        /// The destination below it.
        child: String,
        /// The layer.
        layer: String,
    },

    /// The context nests directories deeper than the walk goes.
    #[error(
        "`{}` is nested more than {limit} directories deep in the context: exclude it, or flatten the tree",
        path.display()
    )]
    TooDeep {
        /// The directory at the limit.
        path: PathBuf,
        /// The limit.
        limit: usize,
    },

    /// A file changed between the walk and the end of hashing it.
    #[error("`{}` changed while it was being read; run again once it is stable", path.display())]
    Changed {
        /// The file on disk.
        path: PathBuf,
    },

    /// A string is not a `sha256:<64 lowercase hex digits>` digest.
    #[error(transparent)]
    InvalidDigest(#[from] super::sha256::DigestError),

    /// An entry given to the input digest encoder is out of canonical order,
    /// repeated, or not a clean relative path (a bug in the caller).
    #[error("entry `{path}` is out of canonical order, repeated or not a clean relative path")]
    BadEntry {
        /// The offending entry path, lossily decoded.
        path: String,
    },

    /// A file of a walk has no content hash (a bug in the caller: hash the walk first).
    #[error("no content hash for `{path}`: hash the walk before digesting it")]
    MissingHash {
        /// The context-relative path, lossily decoded.
        path: String,
    },

    /// Two copy entries write the same destination file.
    #[error(
        "`{path}` is written by layer `{first}` and again by layer `{second}`: each destination file belongs to one layer"
    )]
    Overlap {
        /// The destination.
        path: String,
        /// The layer that writes it first.
        first: String,
        /// The layer that writes it again.
        second: String,
    },

    /// A destination lies under a symlink of the base image (docs/design.md §1).
    #[error(
        "layer `{layer}` writes `{dest}`, but `{path}` is a symlink in the base image: write to `{resolved}` instead"
    )]
    BaseSymlink {
        /// The layer.
        layer: String,
        /// The destination written under the symlink.
        dest: String,
        /// The symlinked ancestor (or the destination itself).
        path: String,
        /// The destination with the symlink resolved: the path to write.
        resolved: String,
    },

    /// A destination's ancestor is a file in the base image.
    #[error("layer `{layer}` writes under `{path}`, which is not a directory in the base image")]
    BaseNotDir {
        /// The layer.
        layer: String,
        /// The ancestor.
        path: String,
    },

    /// A spec diagnostic found while planning (the layer budget with splits).
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
}

fn location(origin: &str, line: &Option<usize>) -> String {
    match line {
        Some(line) => format!("{origin}:{line}"),
        None => origin.to_owned(),
    }
}

impl PlanError {
    /// Wraps an I/O error (normally from `fs-err`, whose message names the path).
    pub fn io(path: impl AsRef<Path>, error: io::Error) -> Self {
        PlanError::Io {
            path: path.as_ref().to_path_buf(),
            error,
        }
    }
}

/// `map_err` helper: `.map_err(io_at(&path))`.
pub(crate) fn io_at(path: &Path) -> impl FnOnce(io::Error) -> PlanError + '_ {
    move |error| PlanError::io(path, error)
}

/// `map_err` helper for errors that do not come from `fs-err`: the message
/// gets `what` and the path, e.g. `failed to write `/x`: disk full`.
pub(crate) fn io_with<'a>(
    what: &'a str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> PlanError + 'a {
    move |error| PlanError::Io {
        path: path.to_path_buf(),
        error: io::Error::new(
            error.kind(),
            format!("{what} `{}`: {error}", path.display()),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_and_name_their_subject() {
        let e = PlanError::Pattern {
            origin: "/ctx/.dockerignore".into(),
            line: Some(3),
            pattern: "[".into(),
            reason: "unclosed `[`".into(),
        };
        assert_eq!(
            e.to_string(),
            "/ctx/.dockerignore:3: invalid pattern `[`: unclosed `[`"
        );
        let e = PlanError::SpecialFile {
            path: "/ctx/pipe".into(),
            kind: "fifo",
        };
        assert!(e.to_string().starts_with("`/ctx/pipe` is a fifo"));
        let err = fs_err::File::open("/nonexistent/strata-x").unwrap_err();
        let e = PlanError::io("/nonexistent/strata-x", err);
        assert!(e.to_string().contains("/nonexistent/strata-x"), "{e}");
    }
}
