//! The content-addressed layer cache and the build records in the cache root
//! (contracts §5). Layer blobs live in `blobs/sha256/`, one small JSON record
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
        let meta = fs_err::metadata(&blob).ok()?;
        if meta.len() != layer.size {
            warnings.push(format!(
                "ignoring layer cache blob `{}`: size {} is not {}",
                blob.display(),
                meta.len(),
                layer.size
            ));
            return None;
        }
        touch(&path);
        touch(&blob);
        Some(layer)
    }

    /// Records a blob written into [`LayerCache::blobs_dir`] under `key_hex`.
    pub fn put(&self, key_hex: &str, blob: &LayerBlob) -> Result<CachedLayer> {
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
        let mut blobs = list(&self.blobs_dir())?;
        blobs.retain(|(p, _)| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        });
        blobs.sort_by_key(|(p, m)| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), p.clone()));
        let mut total: u64 = blobs.iter().map(|(_, m)| m.len()).sum();
        let mut doomed = Vec::new();
        for (path, meta) in &blobs {
            let age = now
                .duration_since(meta.modified().unwrap_or(SystemTime::UNIX_EPOCH))
                .unwrap_or_default();
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
        for (path, len) in doomed {
            if fs_err::remove_file(&path).is_ok() {
                pruned.blobs += 1;
                pruned.bytes += len;
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
