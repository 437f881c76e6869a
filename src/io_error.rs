//! How every I/O error names its path: once, in `fs-err`'s words. An error
//! from `fs-err` already reads "failed to open file `/x`: No such file or
//! directory (os error 2)" and is shown as it is; any other error on a path
//! reads the same way: "failed to access `/x`: …". Every error enum's `Io`
//! variant displays through [`io_message`].

use std::io;
use std::path::Path;

/// The message of `error` on `path`, naming the path once.
pub(crate) fn io_message(path: &Path, error: &io::Error) -> String {
    let message = error.to_string();
    let named = format!("`{}`", path.display());
    if message.contains(&named) {
        message
    } else {
        format!("failed to access {named}: {message}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_is_named_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing");
        // From fs-err: its own message, which names the operation and path.
        let err = fs_err::read(&path).unwrap_err();
        let named = format!("`{}`", path.display());
        let message = io_message(&path, &err);
        assert!(
            message.starts_with(&format!("failed to open file {named}: ")),
            "{message}"
        );
        assert_eq!(message.matches(&named).count(), 1, "{message}");
        // From std: the path added the same way.
        let err = io::Error::from(io::ErrorKind::NotFound);
        assert_eq!(
            io_message(&path, &err),
            format!("failed to access {named}: entity not found")
        );
    }
}
