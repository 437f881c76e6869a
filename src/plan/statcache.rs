//! The persistent stat cache (docs/design.md §5): for one context, each file's
//! content hash keyed by its context-relative path, device, inode, size,
//! mtime and ctime, so an unchanged file is not read again.
//!
//! One file per canonical context path, `<cache root>/stat/<sha256 of the
//! path>.bin`. Writes go to a temporary file in the same directory and are
//! renamed into place, so concurrent builds never see a torn file (the last
//! writer wins). A file that is corrupt, truncated, from another version or
//! for another context is ignored with a [`CacheWarning`] and rebuilt.
//!
//! A file whose ctime is too close to the moment it was hashed is not cached
//! ("racily clean", as git calls it): a change in the same timestamp tick
//! would leave every stat field unchanged. ctime cannot be set by users and
//! moves on any content change, so a file rewritten with its old size and
//! mtime is still re-hashed.
//!
//! Format (integers little-endian): the magic `strata statcache` (16 bytes),
//! `u32` version 1, `u32` length and bytes of the canonical context path,
//! `u64` entry count, then per entry `u32` path length and path, `u64` dev,
//! ino, size, `i64` mtime and ctime in nanoseconds, `u32` last-use day
//! (days since the epoch), 32 bytes of SHA-256; and last the SHA-256 of
//! everything before it.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

use super::error::{PlanError, io_at, io_with};
use super::sha256::Digest;
use super::walk::FileStat;

const MAGIC: &[u8; 16] = b"strata statcache";
const VERSION: u32 = 1;
/// Entries unused for this many days are dropped when the cache is saved.
const EXPIRY_DAYS: u32 = 30;

/// A problem with the cache file that was worked around: the cache starts
/// empty and is rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheWarning {
    /// The cache file.
    pub path: PathBuf,
    /// What was wrong.
    pub reason: String,
}

impl fmt::Display for CacheWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ignoring the stat cache `{}` ({}); it will be rebuilt",
            self.path.display(),
            self.reason
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Cached {
    stat: FileStat,
    digest: Digest,
    last_used_day: u32,
}

/// The stat cache of one context.
#[derive(Debug)]
pub struct StatCache {
    file: PathBuf,
    context: Vec<u8>,
    entries: HashMap<Vec<u8>, Cached>,
    racy_window: Duration,
    today: u32,
    dirty: bool,
}

impl StatCache {
    /// Files whose ctime is within this of the end of hashing are not cached.
    pub const DEFAULT_RACY_WINDOW: Duration = Duration::from_secs(2);

    /// Opens the cache of `context` under `cache_root` (see
    /// [`super::cache_root::cache_root`]). A missing file is an empty cache;
    /// an unreadable, corrupt or foreign one is an empty cache plus a warning.
    /// Errors only when the context path cannot be resolved.
    pub fn open(
        cache_root: &Path,
        context: &Path,
    ) -> Result<(StatCache, Vec<CacheWarning>), PlanError> {
        let canonical = fs_err::canonicalize(context).map_err(io_at(context))?;
        let context = canonical.as_os_str().as_bytes().to_vec();
        let file = cache_root
            .join("stat")
            .join(format!("{}.bin", Digest::of(&context).hex()));
        let mut cache = StatCache {
            file,
            context,
            entries: HashMap::new(),
            racy_window: Self::DEFAULT_RACY_WINDOW,
            today: day(SystemTime::now()),
            dirty: false,
        };
        let mut warnings = Vec::new();
        match fs_err::read(&cache.file) {
            Ok(bytes) => match decode(&bytes, &cache.context) {
                Ok(entries) => cache.entries = entries,
                Err(reason) => {
                    cache.dirty = true;
                    warnings.push(cache.warning(reason));
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                cache.dirty = true;
                warnings.push(cache.warning(format!("cannot read it: {e}")));
            }
        }
        Ok((cache, warnings))
    }

    /// The cache file.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The number of cached files.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Changes how recent a ctime must be for a file not to be cached
    /// (default [`Self::DEFAULT_RACY_WINDOW`]; it must cover the timestamp
    /// granularity of the file system).
    pub fn set_racy_window(&mut self, window: Duration) {
        self.racy_window = window;
    }

    /// The cached content hash of the file at `path` (context-relative) when
    /// every stat field still matches.
    pub fn lookup(&mut self, path: &[u8], stat: &FileStat) -> Option<Digest> {
        let today = self.today;
        let cached = self.entries.get_mut(path)?;
        if cached.stat != *stat {
            return None;
        }
        if cached.last_used_day != today {
            cached.last_used_day = today;
            self.dirty = true;
        }
        Some(cached.digest)
    }

    /// Records a hash computed from a file with `stat` whose reading ended at
    /// `read_done`. Returns false (and forgets the path) when the file
    /// changed too recently to be trusted later.
    pub fn insert(
        &mut self,
        path: &[u8],
        stat: &FileStat,
        digest: Digest,
        read_done: SystemTime,
    ) -> bool {
        let done_ns = read_done
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
        let trusted = i128::from(stat.ctime_ns) + (self.racy_window.as_nanos() as i128) < done_ns;
        let entry = Cached {
            stat: *stat,
            digest,
            last_used_day: self.today,
        };
        if trusted {
            if self.entries.get(path) != Some(&entry) {
                self.entries.insert(path.to_vec(), entry);
                self.dirty = true;
            }
        } else if self.entries.remove(path).is_some() {
            self.dirty = true;
        }
        trusted
    }

    /// Drops the entry of `path` (context-relative): its content was found
    /// not to match the hash recorded for its stat.
    pub fn forget(&mut self, path: &[u8]) {
        if self.entries.remove(path).is_some() {
            self.dirty = true;
        }
    }

    /// Writes the cache if it changed: to a temporary file in the cache
    /// directory, renamed over the old one. Entries unused for 30 days are
    /// dropped.
    pub fn save(&mut self) -> Result<(), PlanError> {
        if !self.dirty {
            return Ok(());
        }
        let today = self.today;
        self.entries
            .retain(|_, c| c.last_used_day.saturating_add(EXPIRY_DAYS) >= today);
        let dir = self.file.parent().unwrap_or(Path::new("."));
        fs_err::create_dir_all(dir).map_err(io_at(dir))?;
        let mut temp = tempfile::Builder::new()
            .prefix(".stat-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(io_with("failed to create a temporary file in", dir))?;
        let temp_path = temp.path().to_path_buf();
        self.write_to(temp.as_file_mut())
            .map_err(io_with("failed to write", &temp_path))?;
        temp.persist(&self.file)
            .map_err(|e| io_with("failed to rename a temporary file to", &self.file)(e.error))?;
        self.dirty = false;
        Ok(())
    }

    /// The whole file: the encoding, then its SHA-256.
    fn write_to(&self, file: &mut std::fs::File) -> std::io::Result<()> {
        let mut out = HashingWriter {
            inner: std::io::BufWriter::with_capacity(1 << 16, file),
            hasher: Sha256::new(),
        };
        self.encode(&mut out)?;
        let HashingWriter { mut inner, hasher } = out;
        inner.write_all(&hasher.finalize())?;
        inner.flush()
    }

    fn encode(&self, out: &mut impl Write) -> std::io::Result<()> {
        out.write_all(MAGIC)?;
        out.write_all(&VERSION.to_le_bytes())?;
        out.write_all(&(self.context.len() as u32).to_le_bytes())?;
        out.write_all(&self.context)?;
        out.write_all(&(self.entries.len() as u64).to_le_bytes())?;
        let mut paths: Vec<&Vec<u8>> = self.entries.keys().collect();
        paths.sort();
        for path in paths {
            let c = &self.entries[path];
            out.write_all(&(path.len() as u32).to_le_bytes())?;
            out.write_all(path)?;
            out.write_all(&c.stat.dev.to_le_bytes())?;
            out.write_all(&c.stat.ino.to_le_bytes())?;
            out.write_all(&c.stat.size.to_le_bytes())?;
            out.write_all(&c.stat.mtime_ns.to_le_bytes())?;
            out.write_all(&c.stat.ctime_ns.to_le_bytes())?;
            out.write_all(&c.last_used_day.to_le_bytes())?;
            out.write_all(c.digest.as_bytes())?;
        }
        Ok(())
    }

    fn warning(&self, reason: String) -> CacheWarning {
        CacheWarning {
            path: self.file.clone(),
            reason,
        }
    }
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn day(t: SystemTime) -> u32 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| (d.as_secs() / 86_400) as u32)
}

/// Reads a cache file; the error says why it cannot be used.
fn decode(bytes: &[u8], context: &[u8]) -> Result<HashMap<Vec<u8>, Cached>, String> {
    if bytes.len() < MAGIC.len() + 4 || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a strata stat cache".to_owned());
    }
    let version = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(format!("format version {version}, expected {VERSION}"));
    }
    if bytes.len() < 20 + 32 {
        return Err("truncated".to_owned());
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(body).as_slice() != sum {
        return Err("checksum mismatch: the file is corrupt or truncated".to_owned());
    }
    let mut r = Reader {
        bytes: body,
        at: 20,
    };
    let len = r.u32()? as usize;
    let written_for = r.take(len)?;
    if written_for != context {
        return Err(format!(
            "written for another context, `{}`",
            String::from_utf8_lossy(written_for)
        ));
    }
    let count = r.u64()?;
    // Each entry takes at least 80 bytes: refuse absurd counts before allocating.
    if count > (body.len() as u64) / 80 {
        return Err("truncated".to_owned());
    }
    let mut entries = HashMap::with_capacity(count as usize);
    for _ in 0..count {
        let len = r.u32()? as usize;
        let path = r.take(len)?.to_vec();
        let stat = FileStat {
            dev: r.u64()?,
            ino: r.u64()?,
            size: r.u64()?,
            mtime_ns: r.u64()? as i64,
            ctime_ns: r.u64()? as i64,
        };
        let last_used_day = r.u32()?;
        let digest = Digest::from_bytes(r.take(32)?.try_into().expect("32 bytes"));
        entries.insert(
            path,
            Cached {
                stat,
                digest,
                last_used_day,
            },
        );
    }
    if r.at != body.len() {
        return Err("trailing bytes".to_owned());
    }
    Ok(entries)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or("truncated")?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(ino: u64, ctime_ns: i64) -> FileStat {
        FileStat {
            dev: 1,
            ino,
            size: 10,
            mtime_ns: 5,
            ctime_ns,
        }
    }

    fn open(root: &Path, ctx: &Path) -> (StatCache, Vec<CacheWarning>) {
        StatCache::open(root, ctx).unwrap()
    }

    #[test]
    fn round_trip_and_key_fields() {
        let root = tempfile::tempdir().unwrap();
        let ctx = tempfile::tempdir().unwrap();
        let (mut c, w) = open(root.path(), ctx.path());
        assert!(w.is_empty() && c.is_empty());
        let d = Digest::of(b"x");
        assert!(c.insert(b"a/b", &stat(7, 1), d, SystemTime::now()));
        c.save().unwrap();
        let (mut c, w) = open(root.path(), ctx.path());
        assert!(w.is_empty());
        assert_eq!(c.len(), 1);
        assert_eq!(c.lookup(b"a/b", &stat(7, 1)), Some(d));
        assert_eq!(c.lookup(b"a/b", &stat(8, 1)), None, "inode");
        assert_eq!(c.lookup(b"a/b", &stat(7, 2)), None, "ctime");
        let mut s = stat(7, 1);
        s.size = 11;
        assert_eq!(c.lookup(b"a/b", &s), None, "size");
        s = stat(7, 1);
        s.mtime_ns = 6;
        assert_eq!(c.lookup(b"a/b", &s), None, "mtime");
        assert_eq!(c.lookup(b"a/c", &stat(7, 1)), None, "path");
        // Another context has its own file.
        let other = tempfile::tempdir().unwrap();
        let (c2, _) = open(root.path(), other.path());
        assert_ne!(c2.file(), c.file());
        assert!(c2.is_empty());
    }

    #[test]
    fn racily_clean_files_are_not_cached() {
        let root = tempfile::tempdir().unwrap();
        let ctx = tempfile::tempdir().unwrap();
        let (mut c, _) = open(root.path(), ctx.path());
        let now = SystemTime::now();
        let now_ns = now.duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64;
        assert!(!c.insert(
            b"new",
            &stat(1, now_ns - 1_000_000_000),
            Digest::of(b""),
            now
        ));
        assert!(c.insert(
            b"old",
            &stat(1, now_ns - 3_000_000_000),
            Digest::of(b""),
            now
        ));
        c.set_racy_window(Duration::ZERO);
        assert!(c.insert(b"new", &stat(1, now_ns - 1), Digest::of(b""), now));
    }

    #[test]
    fn corrupt_truncated_and_foreign_files_are_ignored_with_a_warning() {
        let root = tempfile::tempdir().unwrap();
        let ctx = tempfile::tempdir().unwrap();
        let (mut c, _) = open(root.path(), ctx.path());
        for i in 0..10u64 {
            c.insert(
                format!("f{i}").as_bytes(),
                &stat(i, 0),
                Digest::of(&i.to_le_bytes()),
                SystemTime::now(),
            );
        }
        c.save().unwrap();
        let file = c.file().to_path_buf();
        let good = fs_err::read(&file).unwrap();

        let mut flipped = good.clone();
        flipped[100] ^= 1;
        let other_ctx = {
            // A valid file written for another context, copied here.
            let other = tempfile::tempdir().unwrap();
            let (mut o, _) = open(root.path(), other.path());
            o.insert(b"x", &stat(1, 0), Digest::of(b""), SystemTime::now());
            o.save().unwrap();
            fs_err::read(o.file()).unwrap()
        };
        let mut newer = good.clone();
        newer[16] = 2;
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("checksum", flipped),
            ("checksum", good[..good.len() - 7].to_vec()),
            ("not a strata stat cache", b"{\"json\": true}".to_vec()),
            ("not a strata stat cache", Vec::new()),
            ("another context", other_ctx),
            ("version 2", newer),
        ];
        for (expected, bytes) in cases {
            fs_err::write(&file, &bytes).unwrap();
            let (mut c, w) = open(root.path(), ctx.path());
            assert!(c.is_empty());
            assert_eq!(w.len(), 1);
            let msg = w[0].to_string();
            assert!(msg.contains(expected), "{msg}");
            assert!(msg.contains(&file.display().to_string()), "{msg}");
            // Rebuilt on save, even with nothing new in it.
            c.save().unwrap();
            let (_, w) = open(root.path(), ctx.path());
            assert!(w.is_empty(), "{w:?}");
        }
    }

    #[test]
    fn concurrent_writers_never_leave_a_torn_file() {
        let root = tempfile::tempdir().unwrap();
        let ctx = tempfile::tempdir().unwrap();
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let (root, ctx) = (root.path(), ctx.path());
                s.spawn(move || {
                    for round in 0..20u64 {
                        let (mut c, w) = open(root, ctx);
                        assert!(w.is_empty(), "{w:?}");
                        for i in 0..200u64 {
                            let name = format!("t{t}/r{round}/f{i}");
                            c.insert(
                                name.as_bytes(),
                                &stat(i, 0),
                                Digest::of(b""),
                                SystemTime::now(),
                            );
                        }
                        c.save().unwrap();
                    }
                });
            }
        });
        let (_, w) = open(root.path(), ctx.path());
        assert!(w.is_empty());
        let leftovers: Vec<_> = fs_err::read_dir(root.path().join("stat"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.as_bytes().ends_with(b".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn old_entries_expire() {
        let root = tempfile::tempdir().unwrap();
        let ctx = tempfile::tempdir().unwrap();
        let (mut c, _) = open(root.path(), ctx.path());
        c.insert(b"old", &stat(1, 0), Digest::of(b""), SystemTime::now());
        c.insert(b"new", &stat(2, 0), Digest::of(b""), SystemTime::now());
        c.entries.get_mut(&b"old"[..]).unwrap().last_used_day = c.today - 31;
        c.save().unwrap();
        let (c, _) = open(root.path(), ctx.path());
        assert_eq!(c.len(), 1);
    }
}
