//! Verified-stat records: no blob is given out on trust (`docs/oci.md`,
//! "Guarantees"). A blob file (in the layer cache or in an output layout)
//! is checked against its digest before it is reused: hashed in full the
//! first time, after which a record of its device, inode, size, mtime and
//! ctime stands for that check until any of them changes. Any write into
//! the file moves its ctime (which users cannot set back), so a byte
//! flipped in place sends the next build back to a full hash, which then
//! fails.
//!
//! Records live in `<cache root>/verified/`, one small JSON file per blob
//! path (named by the SHA-256 of the path), written by temp + rename. A
//! missing, corrupt or stale record only costs a re-hash.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::digest::{Digest, hash_reader};
use super::error::{IoContext, Result};
use crate::plan::beneath::fstat_file;
use crate::plan::walk::FileStat;

/// The verified-stat records of one cache root.
#[derive(Debug, Clone)]
pub struct Verified {
    dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    digest: String,
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl Record {
    fn new(digest: &Digest, st: &FileStat) -> Self {
        Self {
            digest: digest.to_string(),
            dev: st.dev,
            ino: st.ino,
            size: st.size,
            mtime_ns: st.mtime_ns,
            ctime_ns: st.ctime_ns,
        }
    }
}

impl Verified {
    /// The records under `cache_root`.
    pub fn new(cache_root: &Path) -> Self {
        Self {
            dir: cache_root.join("verified"),
        }
    }

    /// The record file of the blob at `path`.
    pub fn record_path(&self, path: &Path) -> PathBuf {
        let id = super::digest::Digest::of(absolute(path).as_os_str().as_bytes());
        self.dir.join(format!("{}.json", id.hex()))
    }

    fn read(&self, path: &Path) -> Option<Record> {
        let bytes = fs_err::read(self.record_path(path)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Whether the regular file at `path` holds `size` bytes with `digest`:
    /// by its record when its stat is unchanged since it was last verified,
    /// else by hashing it whole (and recording it when it matches). A
    /// missing file is `false`.
    pub fn check(&self, path: &Path, digest: &Digest, size: u64) -> Result<bool> {
        let file = match fs_err::File::open(path) {
            Ok(f) => f.into_parts().0,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(super::error::OciError::io(path, e)),
        };
        let Some(before) = fstat_file(&file).at(path)? else {
            return Ok(false);
        };
        if before.size != size {
            self.forget(path);
            return Ok(false);
        }
        if self.read(path) == Some(Record::new(digest, &before)) {
            return Ok(true);
        }
        let (found, n) = hash_reader(&file).at(path)?;
        if found != *digest || n != size {
            self.forget(path);
            return Ok(false);
        }
        // Unchanged while it was read: what was hashed is what is there.
        if fstat_file(&file).at(path)? == Some(before) {
            self.write(path, &Record::new(digest, &before));
        }
        Ok(true)
    }

    /// Records that the file at `path`, which this process has just written
    /// and hashed on the way, holds `digest`. Best effort: a record that
    /// cannot be written costs a re-hash later.
    pub fn record(&self, path: &Path, digest: &Digest) {
        let Ok(file) = fs_err::File::open(path) else {
            return;
        };
        let file = file.into_parts().0;
        if let Ok(Some(st)) = fstat_file(&file) {
            self.write(path, &Record::new(digest, &st));
        }
    }

    /// Drops the record of `path`.
    pub fn forget(&self, path: &Path) {
        let _ = fs_err::remove_file(self.record_path(path));
    }

    fn write(&self, path: &Path, record: &Record) {
        let _ = fs_err::create_dir_all(&self.dir);
        let Ok(mut tmp) = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(&self.dir)
        else {
            return;
        };
        let bytes = serde_json::to_vec(record).expect("record serializes");
        if tmp.write_all(&bytes).is_ok() {
            let _ = tmp.persist(self.record_path(path));
        }
    }
}

/// `path` made absolute against the working directory (records must not
/// depend on how a path was spelled).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom};

    #[test]
    fn first_check_hashes_then_the_record_answers_until_a_write() {
        let root = tempfile::tempdir().unwrap();
        let v = Verified::new(root.path());
        let blob = root.path().join("blob");
        fs_err::write(&blob, b"hello blob").unwrap();
        let good = Digest::of(b"hello blob");
        assert!(v.check(&blob, &good, 10).unwrap());
        assert!(v.record_path(&blob).is_file());
        assert!(v.check(&blob, &good, 10).unwrap());
        // The record stands for the check: a wrong digest with no record
        // behind it is hashed and refused.
        assert!(!v.check(&blob, &Digest::of(b"other"), 10).unwrap());
        assert!(v.check(&blob, &good, 10).unwrap());
        // One byte flipped in place, same size.
        let mut f = fs_err::OpenOptions::new().write(true).open(&blob).unwrap();
        f.seek(SeekFrom::Start(3)).unwrap();
        f.write_all(b"L").unwrap();
        drop(f);
        assert!(!v.check(&blob, &good, 10).unwrap());
        assert!(!v.record_path(&blob).exists());
        assert!(!v.check(&root.path().join("missing"), &good, 10).unwrap());
    }
}
