//! The final tree of a copy layer: ordered entries with their final metadata
//! (docs/design.md §1). Both the embedded tar writer (`oci`) and `strata helper copy`
//! (the writer that runs inside BuildKit, docs/design.md §2) consume exactly this, so
//! the two backends cannot drift apart. Nothing here does I/O.

use std::cmp::Ordering;
use std::path::PathBuf;

use super::digest::Digest;
use super::walk::FileStat;

/// One entry of a layer, with the metadata it has in the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the image relative to `/`: no leading or trailing slash,
    /// components separated by `/`. Bytes, because file names need not be UTF-8.
    pub path: Vec<u8>,
    /// What the entry is and where its bytes come from.
    pub kind: EntryKind,
    /// Permission bits, including setuid/setgid/sticky where the base has them
    /// for an ancestor directory (docs/design.md §1).
    pub mode: u32,
    /// Numeric owner.
    pub uid: u64,
    /// Numeric group.
    pub gid: u64,
    /// Modification time in seconds since the epoch: the layer timestamp.
    pub mtime: u64,
}

/// The type of an [`Entry`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file whose content is read from `source` (a path on the
    /// building machine); `size` is the size seen when the plan was made.
    File {
        /// Where the content is read from.
        source: PathBuf,
        /// Size in bytes.
        size: u64,
        /// The walked input and the content hash that keyed the layer: the
        /// writer opens it beneath the context and fails unless the bytes it
        /// writes have this hash (`docs/oci.md`, "Guarantees"). `None` for
        /// files that are not context inputs (tests, the helper's copies).
        expect: Option<Box<Expected>>,
    },
    /// A symbolic link with its target, as bytes.
    Symlink {
        /// The link target, unchanged.
        target: Vec<u8>,
    },
}

/// A context input as the walk saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// The context directory.
    pub root: PathBuf,
    /// The file beneath it: `/`-separated, no `.` or `..`.
    pub rel: Vec<u8>,
    /// Its stat at the walk; the file opened must still have it.
    pub stat: FileStat,
}

/// What a regular file written into a layer must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// The input it is read from.
    pub input: InputFile,
    /// The SHA-256 of the content its layer key covers.
    pub content: Digest,
}

/// The canonical entry order: component by component, byte-wise, so every
/// directory comes right before its contents (`a`, `a/b`, `a-b`). This is
/// the order of a sorted recursive walk, and the order of tar entries.
pub fn path_order(a: &[u8], b: &[u8]) -> Ordering {
    a.split(|&c| c == b'/').cmp(b.split(|&c| c == b'/'))
}

/// Sorts entries into the canonical order of [`path_order`].
pub fn sort_entries(entries: &mut [Entry]) {
    entries.sort_by(|a, b| path_order(&a.path, &b.path));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_before_children_and_siblings_sort_bytewise() {
        let mut paths: Vec<&[u8]> = vec![b"a-b", b"a/b", b"a", b"B", b"a/b/c", b"a/a"];
        paths.sort_by(|a, b| path_order(a, b));
        assert_eq!(
            paths,
            vec![&b"B"[..], b"a", b"a/a", b"a/b", b"a/b/c", b"a-b"]
        );
    }
}
