//! Content hashes of walked files: SHA-256 of each file's bytes, streamed
//! through one bounded buffer per worker thread (never a whole file in
//! memory), files hashed in parallel with rayon, largest first so one big
//! file does not finish last alone. The stat cache answers for unchanged files.
//!
//! A file is opened beneath the context, following no symlink
//! ([`super::beneath`]), and checked against its walk-time stat when opened
//! and after it is read: if it changed in between, hashing fails rather than
//! pairing one version's size with another's content.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rayon::prelude::*;
use sha2::{Digest as _, Sha256};

use std::os::fd::OwnedFd;

use super::beneath::{fstat_file, open_input, open_root};
use super::digest::Digest;
use super::error::{PlanError, io_at};
use super::statcache::StatCache;
use super::walk::{FileStat, Walk};

/// The read buffer of each hashing thread. Larger buffers bring nothing
/// measurable (`docs/benchmarks.md`).
pub const READ_BUFFER_SIZE: usize = 256 * 1024;

/// What a hashing pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HashReport {
    /// Distinct files asked for.
    pub files: usize,
    /// Files read and hashed.
    pub hashed: usize,
    /// Bytes read and hashed.
    pub hashed_bytes: u64,
    /// Files answered by the stat cache.
    pub cached: usize,
}

/// Content hashes by context-relative path.
#[derive(Debug, Clone, Default)]
pub struct ContentHashes {
    hashes: HashMap<Vec<u8>, Digest>,
    report: HashReport,
}

impl ContentHashes {
    /// The content hash of the file at `context_path` (relative to the context).
    pub fn get(&self, context_path: &[u8]) -> Option<Digest> {
        self.hashes.get(context_path).copied()
    }

    /// Counts of hashed and cached files.
    pub fn report(&self) -> &HashReport {
        &self.report
    }

    /// The number of files.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether there are no files.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

/// Stand-in hashes (of nothing) for every file of `walks`, for a survey that
/// checks paths, overlaps and the layer budget without reading content.
pub fn placeholder_hashes<'a>(walks: impl IntoIterator<Item = &'a Walk>) -> ContentHashes {
    let mut result = ContentHashes::default();
    for walk in walks {
        for (entry, _) in walk.files() {
            result
                .hashes
                .insert(walk.context_path(entry), Digest::of(b""));
        }
    }
    result.report.files = result.hashes.len();
    result
}

/// Hashes every regular file of `walks` (each once, however many walks hold
/// it), asking `cache` first and recording new hashes in it. The caller saves
/// the cache.
pub fn hash_walks<'a>(
    context: &Path,
    walks: impl IntoIterator<Item = &'a Walk>,
    mut cache: Option<&mut StatCache>,
) -> Result<ContentHashes, PlanError> {
    let mut wanted: Vec<(Vec<u8>, FileStat)> = Vec::new();
    for walk in walks {
        wanted.extend(
            walk.files()
                .map(|(entry, stat)| (walk.context_path(entry), *stat)),
        );
    }
    wanted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    wanted.dedup_by(|a, b| a.0 == b.0);
    let mut result = ContentHashes {
        hashes: HashMap::with_capacity(wanted.len()),
        report: HashReport {
            files: wanted.len(),
            ..HashReport::default()
        },
    };
    let mut todo: Vec<(Vec<u8>, FileStat)> = Vec::new();
    for (path, stat) in wanted {
        match cache.as_deref_mut().and_then(|c| c.lookup(&path, &stat)) {
            Some(digest) => {
                result.hashes.insert(path, digest);
                result.report.cached += 1;
            }
            None => todo.push((path, stat)),
        }
    }
    // Largest first, then by path so runs are repeatable.
    todo.sort_unstable_by(|a, b| b.1.size.cmp(&a.1.size).then_with(|| a.0.cmp(&b.0)));
    let root = if todo.is_empty() {
        None
    } else {
        Some(open_root(context).map_err(io_at(context))?)
    };
    let hashed: Vec<Result<(Digest, SystemTime), PlanError>> = todo
        .par_iter()
        .with_max_len(1)
        .map(|(path, stat)| {
            let root = root.as_ref().expect("opened when there is work");
            with_buffer(|buf| hash_file_with(root, context, path, stat, buf))
        })
        .collect();
    for ((path, stat), outcome) in todo.into_iter().zip(hashed) {
        let (digest, read_done) = outcome?;
        if let Some(cache) = cache.as_deref_mut() {
            cache.insert(&path, &stat, digest, read_done);
        }
        result.report.hashed += 1;
        result.report.hashed_bytes += stat.size;
        result.hashes.insert(path, digest);
    }
    Ok(result)
}

/// Streams `reader` through SHA-256 with `buf`; returns the digest and the
/// number of bytes read.
pub fn hash_reader(mut reader: impl Read, buf: &mut [u8]) -> std::io::Result<(Digest, u64)> {
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    loop {
        let n = match reader.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((Digest::from_bytes(hasher.finalize().into()), total))
}

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's read buffer.
fn with_buffer<T>(f: impl FnOnce(&mut [u8]) -> T) -> T {
    BUFFER.with_borrow_mut(|buf| {
        if buf.len() != READ_BUFFER_SIZE {
            buf.resize(READ_BUFFER_SIZE, 0);
        }
        f(buf)
    })
}

/// Hashes the file `rel` of the context (opened through `root`, a handle of
/// `context`), checking that it is and stays the walked file `expected`.
fn hash_file_with(
    root: &OwnedFd,
    context: &Path,
    rel: &[u8],
    expected: &FileStat,
    buf: &mut [u8],
) -> Result<(Digest, SystemTime), PlanError> {
    let path = &disk_path(context, rel);
    let changed = || PlanError::Changed {
        path: path.to_path_buf(),
    };
    let Some(mut file) = open_input(root, rel, expected).map_err(io_at(path))? else {
        return Err(changed());
    };
    let (digest, size) = hash_reader(&mut file, buf).map_err(io_at(path))?;
    let after = fstat_file(&file).map_err(io_at(path))?;
    let read_done = SystemTime::now();
    if size != expected.size || after != Some(*expected) {
        return Err(changed());
    }
    Ok((digest, read_done))
}

fn disk_path(context: &Path, rel: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    if rel.is_empty() {
        context.to_path_buf()
    } else {
        context.join(std::ffi::OsStr::from_bytes(rel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::ignore::Matcher;
    use crate::plan::walk::tests::write;
    use crate::plan::walk::walk;
    use std::time::Duration;

    fn walk_all(root: &Path) -> Walk {
        walk(root, Path::new(""), &Matcher::empty(), &Matcher::empty()).unwrap()
    }

    #[test]
    fn hashes_match_sha256_and_shared_files_are_hashed_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "a/one", b"hello\n");
        write(root, "a/big", &vec![7u8; 3 * READ_BUFFER_SIZE + 5]);
        write(root, "empty", b"");
        let whole = walk_all(root);
        let sub = walk(root, Path::new("a"), &Matcher::empty(), &Matcher::empty()).unwrap();
        let hashes = hash_walks(root, [&whole, &sub], None).unwrap();
        assert_eq!(hashes.len(), 3);
        assert_eq!(hashes.report().hashed, 3);
        assert_eq!(hashes.get(b"a/one"), Some(Digest::of(b"hello\n")));
        assert_eq!(
            hashes.get(b"a/big"),
            Some(Digest::of(&vec![7u8; 3 * READ_BUFFER_SIZE + 5]))
        );
        assert_eq!(hashes.get(b"empty"), Some(Digest::of(b"")));
    }

    #[test]
    fn a_file_changed_after_the_walk_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "f", b"before");
        let w = walk_all(root);
        std::thread::sleep(Duration::from_millis(20));
        write(root, "f", b"after!!");
        let e = hash_walks(root, [&w], None).unwrap_err();
        assert!(matches!(e, PlanError::Changed { .. }), "{e}");
        assert!(
            e.to_string()
                .contains(&root.join("f").display().to_string())
        );
    }

    #[test]
    fn stat_cache_hits_rehashes_on_ctime_and_survives_corruption() {
        let cache_root = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for i in 0..20 {
            write(root, &format!("d/f{i}"), format!("content {i}").as_bytes());
        }
        let run = |expect_warnings: usize| {
            let (mut cache, warnings) = StatCache::open(cache_root.path(), root).unwrap();
            assert_eq!(warnings.len(), expect_warnings, "{warnings:?}");
            cache.set_racy_window(Duration::ZERO);
            let w = walk_all(root);
            let hashes = hash_walks(root, [&w], Some(&mut cache)).unwrap();
            cache.save().unwrap();
            (hashes, cache.file().to_path_buf())
        };
        let (first, file) = run(0);
        assert_eq!(first.report().hashed, 20);
        let (second, _) = run(0);
        assert_eq!(second.report().hashed, 0);
        assert_eq!(second.report().cached, 20);
        assert_eq!(first.get(b"d/f3"), second.get(b"d/f3"));

        // Same size, same mtime, new content: only ctime tells.
        let path = root.join("d/f3");
        let mtime = fs_err::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        fs_err::write(&path, b"CONTENT 3").unwrap();
        let f = fs_err::File::options().write(true).open(&path).unwrap();
        f.set_modified(mtime).unwrap();
        drop(f);
        let (third, _) = run(0);
        assert_eq!(third.report().hashed, 1);
        assert_eq!(third.get(b"d/f3"), Some(Digest::of(b"CONTENT 3")));

        // A corrupt cache file: a warning, everything re-hashed, then rebuilt.
        let mut bytes = fs_err::read(&file).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        fs_err::write(&file, &bytes).unwrap();
        let (fourth, _) = run(1);
        assert_eq!(fourth.report().hashed, 20);
        assert_eq!(fourth.get(b"d/f3"), third.get(b"d/f3"));
        let (fifth, _) = run(0);
        assert_eq!(fifth.report().cached, 20);
    }

    /// A sparse file just over 4 GiB: hashed by streaming, checked against
    /// the SHA-256 of as many zero bytes (`head -c 4294967297 /dev/zero |
    /// sha256sum`). Slow: 7 to 20 s (sha2 is optimized even in test builds,
    /// see Cargo.toml).
    #[test]
    fn sparse_file_over_4_gib() {
        const SIZE: u64 = (4 << 30) + 1;
        const ZEROS: &str =
            "sha256:fbb82f7b353676bb562eb82157fcf0ea42c36492ca13ee56dbf82c08b6802c5c";
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let path = dir.path().join("sparse");
        let f = fs_err::File::create(&path).unwrap();
        f.set_len(SIZE).unwrap();
        drop(f);
        let w = walk_all(dir.path());
        assert_eq!(w.entries[1].size(), SIZE);
        let start = std::time::Instant::now();
        let hashes = hash_walks(dir.path(), [&w], None).unwrap();
        let took = start.elapsed();
        assert_eq!(hashes.get(b"sparse").unwrap().to_string(), ZEROS);
        assert!(hashes.report().hashed_bytes == SIZE);
        eprintln!("hashed {SIZE} sparse bytes in {took:?}");
    }
}
