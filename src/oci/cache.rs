//! The content-addressed layer cache and the build records in the cache root
//! (docs/design.md §5). Layer blobs live in `blobs/sha256/`, one small JSON record
//! per layer key in `layers/`, the last build per context, spec, target and
//! platform in `records/`. Every write is temp + rename, so concurrent builds
//! and `strata cache prune` never leave a torn file; a corrupt record is
//! ignored with a warning and rebuilt.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::compress::LayerBlob;
use super::error::{OciError, Result};
use super::layout::write_atomic;
use super::verified::Verified;
use crate::plan::Digest;

/// A layer blob known by its layer key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLayer {
    /// Digest of the blob.
    pub digest: String,
    /// Size of the blob.
    pub size: u64,
    /// Media type of the blob.
    pub media_type: String,
    /// diffID.
    pub diff_id: String,
    /// Size of the uncompressed tar.
    pub tar_size: u64,
}

/// The layer cache under a cache root.
#[derive(Debug, Clone)]
pub struct LayerCache {
    root: PathBuf,
}

impl LayerCache {
    /// The cache in `root`, creating its directories.
    pub fn open(root: &Path) -> Result<Self> {
        for d in ["blobs/sha256", "layers", "records", "tmp"] {
            let p = root.join(d);
            fs_err::create_dir_all(&p).map_err(|e| OciError::Io {
                path: p.clone(),
                source: e,
            })?;
        }
        Ok(Self { root: root.into() })
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where layer blobs are written.
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }

    /// A blob's path.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.blobs_dir()
            .join(digest.strip_prefix("sha256:").unwrap_or(digest))
    }

    fn record_path(&self, key_hex: &str) -> PathBuf {
        self.root.join("layers").join(format!("{key_hex}.json"))
    }

    /// The layer stored under `key_hex`, when its record and blob are both
    /// there; marks it used (for least-recently-used pruning). A corrupt
    /// record is reported in `warnings` and treated as missing.
    pub fn get(&self, key_hex: &str, warnings: &mut Vec<String>) -> Option<CachedLayer> {
        let path = self.record_path(key_hex);
        let bytes = fs_err::read(&path).ok()?;
        let layer: CachedLayer = match serde_json::from_slice(&bytes) {
            Ok(l) => l,
            Err(e) => {
                warnings.push(format!(
                    "ignoring corrupt layer cache record `{}`: {e}",
                    path.display()
                ));
                return None;
            }
        };
        let blob = self.blob_path(&layer.digest);
        let digest: Digest = layer.digest.parse().ok()?;
        // Never reuse an unverified byte: the blob is checked against its
        // digest (in full, or by its verified-stat record).
        match self.verified().check(&blob, &digest, layer.size) {
            Ok(true) => {}
            Ok(false) if !blob.exists() => return None,
            Ok(false) => {
                warnings.push(format!(
                    "ignoring layer cache blob `{}`: its content does not match its digest; the layer is written again",
                    blob.display()
                ));
                let _ = fs_err::remove_file(&blob);
                return None;
            }
            Err(e) => {
                warnings.push(format!("ignoring layer cache blob: {e}"));
                return None;
            }
        }
        // The record's time is the blob's last use (for pruning): the blob
        // itself is not touched, which would void its verified-stat record.
        touch(&path);
        Some(layer)
    }

    /// The verified-stat records of this cache root.
    pub fn verified(&self) -> Verified {
        Verified::new(&self.root)
    }

    /// Records a blob written into [`LayerCache::blobs_dir`] under `key_hex`
    /// (written and hashed by this process: its verified-stat record is
    /// made here).
    pub fn put(&self, key_hex: &str, blob: &LayerBlob) -> Result<CachedLayer> {
        self.verified()
            .record(&self.blob_path(&blob.digest.to_string()), &blob.digest);
        let layer = CachedLayer {
            digest: blob.digest.to_string(),
            size: blob.size,
            media_type: blob.media_type.to_string(),
            diff_id: blob.diff_id.to_string(),
            tar_size: blob.tar_size,
        };
        let bytes = serde_json::to_vec(&layer).expect("record serializes");
        write_atomic(&self.record_path(key_hex), &bytes)?;
        Ok(layer)
    }

    /// Reads the build record `name` (a hex id), if it is there and sound.
    pub fn read_record<T: for<'de> Deserialize<'de>>(
        &self,
        name: &str,
        warnings: &mut Vec<String>,
    ) -> Option<T> {
        let path = self.root.join("records").join(format!("{name}.json"));
        let bytes = fs_err::read(&path).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(r) => Some(r),
            Err(e) => {
                warnings.push(format!(
                    "ignoring corrupt build record `{}`: {e}",
                    path.display()
                ));
                None
            }
        }
    }

    /// Writes the build record `name` atomically.
    pub fn write_record<T: Serialize>(&self, name: &str, record: &T) -> Result<()> {
        let path = self.root.join("records").join(format!("{name}.json"));
        let bytes = serde_json::to_vec_pretty(record).expect("record serializes");
        write_atomic(&path, &bytes)
    }

    /// What the cache holds: (layer records, blobs, blob bytes).
    pub fn usage(&self) -> Result<Usage> {
        let mut u = Usage::default();
        for (_, meta) in list(&self.blobs_dir())? {
            u.blobs += 1;
            u.bytes += meta.len();
        }
        u.layers = list(&self.root.join("layers"))?.len();
        u.records = list(&self.root.join("records"))?.len();
        let stat = self.root.join("stat");
        if stat.is_dir() {
            for (_, meta) in list(&stat)? {
                u.stat_bytes += meta.len();
            }
        }
        Ok(u)
    }

    /// Removes least recently used blobs (and their layer records) until the
    /// blobs total at most `max_bytes`, and every blob unused for longer than
    /// `older_than`. Records go first, so a build that still finds a record
    /// and then misses its blob rebuilds the layer. Returns what was removed.
    pub fn prune(&self, max_bytes: Option<u64>, older_than: Option<Duration>) -> Result<Pruned> {
        let now = SystemTime::now();
        // A blob's last use: its own mtime, or the latest of the layer
        // records naming it (a reuse touches the record, not the blob).
        let mut used: std::collections::BTreeMap<String, SystemTime> = Default::default();
        for (path, meta) in list(&self.root.join("layers"))? {
            let Some(l) = fs_err::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<CachedLayer>(&b).ok())
            else {
                continue;
            };
            let t = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            let e = used.entry(l.digest).or_insert(t);
            *e = (*e).max(t);
        }
        let last_use = |p: &Path, m: &std::fs::Metadata| {
            let own = m.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            let name = p
                .file_name()
                .map(|n| format!("sha256:{}", n.to_string_lossy()));
            name.and_then(|n| used.get(&n).copied())
                .map_or(own, |t| t.max(own))
        };
        let mut blobs = list(&self.blobs_dir())?;
        blobs.retain(|(p, _)| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        });
        blobs.sort_by_key(|(p, m)| (last_use(p, m), p.clone()));
        let mut total: u64 = blobs.iter().map(|(_, m)| m.len()).sum();
        let mut doomed = Vec::new();
        for (path, meta) in &blobs {
            let age = now.duration_since(last_use(path, meta)).unwrap_or_default();
            let too_old = older_than.is_some_and(|o| age > o);
            let too_big = max_bytes.is_some_and(|m| total > m);
            if too_old || too_big {
                total -= meta.len();
                doomed.push((path.clone(), meta.len()));
            }
        }
        let doomed_digests: std::collections::BTreeSet<String> = doomed
            .iter()
            .filter_map(|(p, _)| {
                p.file_name()
                    .map(|n| format!("sha256:{}", n.to_string_lossy()))
            })
            .collect();
        let mut pruned = Pruned::default();
        for (path, meta) in list(&self.root.join("layers"))? {
            // A dot name is a record a running build is writing (temp +
            // rename): left alone unless a build that died left it long ago.
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                let age = now
                    .duration_since(meta.modified().unwrap_or(now))
                    .unwrap_or_default();
                if age > Duration::from_secs(24 * 3600) {
                    let _ = fs_err::remove_file(&path);
                }
                continue;
            }
            let keep = fs_err::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<CachedLayer>(&b).ok())
                .is_some_and(|l| !doomed_digests.contains(&l.digest));
            if !keep {
                let _ = fs_err::remove_file(&path);
                pruned.layers += 1;
            }
        }
        let verified = self.verified();
        for (path, len) in doomed {
            verified.forget(&path);
            if fs_err::remove_file(&path).is_ok() {
                pruned.blobs += 1;
                pruned.bytes += len;
            }
        }
        // Verified-stat records not renewed for 30 days (their blob may be
        // long gone; a record still needed costs one re-hash).
        for (path, meta) in list(&self.root.join("verified"))? {
            let age = now
                .duration_since(meta.modified().unwrap_or(now))
                .unwrap_or_default();
            if age > Duration::from_secs(30 * 24 * 3600) {
                let _ = fs_err::remove_file(&path);
            }
        }
        // Stale temp files of builds that died.
        for (path, meta) in list(&self.root.join("tmp"))? {
            let age = now
                .duration_since(meta.modified().unwrap_or(now))
                .unwrap_or_default();
            if age > Duration::from_secs(24 * 3600) {
                let _ = fs_err::remove_dir_all(&path).or_else(|_| fs_err::remove_file(&path));
            }
        }
        Ok(pruned)
    }
}

/// What the cache holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Layer records.
    pub layers: usize,
    /// Blobs.
    pub blobs: usize,
    /// Bytes of blobs.
    pub bytes: u64,
    /// Build records.
    pub records: usize,
    /// Bytes of stat caches.
    pub stat_bytes: u64,
}

/// What a prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Layer records.
    pub layers: usize,
    /// Blobs.
    pub blobs: usize,
    /// Bytes.
    pub bytes: u64,
}

fn list(dir: &Path) -> Result<Vec<(PathBuf, std::fs::Metadata)>> {
    let mut out = Vec::new();
    let rd = match fs_err::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            return Err(OciError::Io {
                path: dir.into(),
                source: e,
            });
        }
    };
    for entry in rd.flatten() {
        if let Ok(meta) = entry.metadata() {
            out.push((entry.path(), meta));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn touch(path: &Path) {
    if let Ok(f) = fs_err::File::options().append(true).open(path) {
        let _ = f.file().set_modified(SystemTime::now());
    }
}

/// A stable hex id for a digest-like string.
pub fn hex_id(parts: &[&str]) -> String {
    Digest::of(parts.join("\0").as_bytes()).hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::blob::write_blob;
    use crate::oci::image::media;
    use std::io::{Seek, SeekFrom, Write};

    fn put(cache: &LayerCache, key: &str, bytes: &[u8]) -> PathBuf {
        let blob = write_blob(&cache.blobs_dir(), bytes).unwrap();
        let layer = LayerBlob {
            digest: blob.digest,
            size: blob.size,
            media_type: media::LAYER_TAR,
            diff_id: blob.digest,
            tar_size: blob.size,
        };
        cache.put(key, &layer).unwrap();
        cache.blob_path(&blob.digest.to_string())
    }

    fn age(path: &Path, secs: u64) {
        let f = fs_err::File::options().append(true).open(path).unwrap();
        f.file()
            .set_modified(SystemTime::now() - Duration::from_secs(secs))
            .unwrap();
    }

    #[test]
    fn reuse_counts_for_pruning_without_touching_the_blob() {
        let root = tempfile::tempdir().unwrap();
        let cache = LayerCache::open(root.path()).unwrap();
        let (ka, kb) = ("a".repeat(64), "b".repeat(64));
        let a = put(&cache, &ka, &[1u8; 1000]);
        let b = put(&cache, &kb, &[2u8; 1000]);
        // A is older than B, but then reused.
        for (p, secs) in [(&a, 7200), (&cache.record_path(&ka), 7200)] {
            age(p, secs);
        }
        for (p, secs) in [(&b, 3600), (&cache.record_path(&kb), 3600)] {
            age(p, secs);
        }
        let blob_mtime = fs_err::metadata(&a).unwrap().modified().unwrap();
        let mut w = Vec::new();
        assert!(cache.get(&ka, &mut w).is_some(), "{w:?}");
        assert_eq!(
            fs_err::metadata(&a).unwrap().modified().unwrap(),
            blob_mtime
        );
        let pruned = cache.prune(Some(1000), None).unwrap();
        assert_eq!(pruned.blobs, 1);
        assert!(a.exists() && !b.exists());
    }

    #[test]
    fn a_corrupt_blob_is_refused_reported_and_removed() {
        let root = tempfile::tempdir().unwrap();
        let cache = LayerCache::open(root.path()).unwrap();
        let key = "c".repeat(64);
        let blob = put(&cache, &key, b"layer bytes");
        let mut w = Vec::new();
        assert!(cache.get(&key, &mut w).is_some());
        let mut f = fs_err::File::options().write(true).open(&blob).unwrap();
        f.seek(SeekFrom::Start(2)).unwrap();
        f.write_all(b"Y").unwrap();
        drop(f);
        assert!(cache.get(&key, &mut w).is_none());
        assert!(w[0].contains("does not match its digest"), "{w:?}");
        assert!(!blob.exists());
    }
}
