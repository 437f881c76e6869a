//! Content-addressed blob writing: bytes go to a temp file in `blobs/sha256/`
//! while they are hashed, and the file gets its final name `<hex>` only once
//! it is complete and synced. A failed or abandoned write leaves no file
//! under a blob's name (the temp file is removed on drop).

use std::fs::Permissions;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::error::{IoContext, OciError, Result};
use crate::plan::Digest;

/// A blob stored under its digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    /// The sha256 of its bytes.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// Prefix of in-progress blob files; never a valid hex digest.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Writes one blob into a `blobs/sha256` directory, hashing as it goes.
pub struct BlobWriter {
    dir: PathBuf,
    file: tempfile::NamedTempFile,
    /// `None` when the caller hashes the same bytes itself
    /// ([`BlobWriter::unhashed`]).
    hasher: Option<Sha256>,
    size: u64,
}

impl BlobWriter {
    /// Starts a blob in `dir` (a `blobs/sha256` directory that exists).
    pub fn new(dir: &Path) -> Result<Self> {
        let file = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .permissions(Permissions::from_mode(0o644))
            .tempfile_in(dir)
            .at(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            file,
            hasher: Some(Sha256::new()),
            size: 0,
        })
    }

    /// A writer that does not hash: for a caller that hashes exactly the
    /// bytes it writes here (an uncompressed layer, whose digest is the
    /// diffID its tar writer computes) and names them with
    /// [`BlobWriter::complete_as`]. Saves one SHA-256 pass over the blob.
    pub fn unhashed(dir: &Path) -> Result<Self> {
        let mut w = Self::new(dir)?;
        w.hasher = None;
        Ok(w)
    }

    /// Completes an [`unhashed`](Self::unhashed) blob under `digest`, the
    /// caller's hash of the very bytes written.
    pub fn complete_as(self, digest: Digest) -> Result<Blob> {
        self.persist(digest)
    }

    /// Bytes written so far.
    #[cfg(test)]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Syncs the blob and gives it its final name; returns its digest and size.
    pub fn complete(self) -> Result<Blob> {
        self.finish(None)
    }

    /// Like [`complete`](Self::complete), but fails (leaving nothing behind)
    /// unless the content has the `expected` digest and, when given, size.
    pub fn complete_verified(self, expected: &Digest, size: Option<u64>) -> Result<Blob> {
        self.finish(Some((expected, size)))
    }

    fn finish(mut self, expected: Option<(&Digest, Option<u64>)>) -> Result<Blob> {
        let hasher = self.hasher.take().expect("finish is for hashing writers");
        let digest = Digest::from_hasher(hasher);
        if let Some((want, want_size)) = expected {
            if let Some(want_size) = want_size
                && want_size != self.size
            {
                return Err(OciError::SizeMismatch {
                    what: format!("blob {want}"),
                    expected: want_size,
                    found: self.size,
                });
            }
            if *want != digest {
                return Err(OciError::DigestMismatch {
                    what: format!("blob {want}"),
                    expected: want.to_string(),
                    found: digest.to_string(),
                });
            }
        }
        self.persist(digest)
    }

    fn persist(mut self, digest: Digest) -> Result<Blob> {
        let tmp_path = self.file.path().to_owned();
        self.file.as_file_mut().flush().at(&tmp_path)?;
        self.file.as_file().sync_all().at(&tmp_path)?;
        let dest = self.dir.join(digest.hex());
        // Always renamed over whatever has the name: an existing file of the
        // same size is not trusted to hold these bytes (it may be corrupt),
        // and the rename is atomic for concurrent readers.
        self.file
            .persist(&dest)
            .map_err(|e| OciError::io(&dest, e.error))?;
        sync_dir(&self.dir)?;
        Ok(Blob {
            digest,
            size: self.size,
        })
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Syncs a directory so a rename inside it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    fs_err::File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Writes `bytes` as a blob in `dir`.
pub fn write_blob(dir: &Path, bytes: &[u8]) -> Result<Blob> {
    let mut w = BlobWriter::new(dir)?;
    w.write_all(bytes).at(dir)?;
    w.complete()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FailingReader {
        left: usize,
    }

    impl io::Read for FailingReader {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.left == 0 {
                return Err(io::Error::other("injected failure"));
            }
            let n = buf.len().min(self.left);
            buf[..n].fill(b'x');
            self.left -= n;
            Ok(n)
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs_err::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn complete_names_blob_by_digest() {
        let dir = tempfile::tempdir().unwrap();
        let blob = write_blob(dir.path(), b"hello").unwrap();
        assert_eq!(blob.digest, Digest::of(b"hello"));
        assert_eq!(blob.size, 5);
        assert_eq!(names(dir.path()), vec![blob.digest.hex().to_owned()]);
        let mode = fs_err::metadata(dir.path().join(blob.digest.hex()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        // Writing the same content again is fine.
        assert_eq!(write_blob(dir.path(), b"hello").unwrap(), blob);
    }

    #[test]
    fn failed_write_leaves_no_partial_blob() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = BlobWriter::new(dir.path()).unwrap();
        let err = io::copy(&mut FailingReader { left: 100_000 }, &mut w).unwrap_err();
        assert_eq!(err.to_string(), "injected failure");
        assert!(w.size() >= 65536);
        drop(w);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn verified_complete_rejects_wrong_content() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = BlobWriter::new(dir.path()).unwrap();
        w.write_all(b"corrupt").unwrap();
        let err = w.complete_verified(&Digest::of(b"good"), None).unwrap_err();
        assert!(matches!(err, OciError::DigestMismatch { .. }), "{err}");
        let mut w = BlobWriter::new(dir.path()).unwrap();
        w.write_all(b"good").unwrap();
        let err = w
            .complete_verified(&Digest::of(b"good"), Some(5))
            .unwrap_err();
        assert!(matches!(err, OciError::SizeMismatch { .. }), "{err}");
        assert!(names(dir.path()).is_empty());
        let mut w = BlobWriter::new(dir.path()).unwrap();
        w.write_all(b"good").unwrap();
        let blob = w.complete_verified(&Digest::of(b"good"), Some(4)).unwrap();
        assert_eq!(names(dir.path()), vec![blob.digest.hex().to_owned()]);
    }
}
