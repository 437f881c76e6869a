//! Which repositories of a registry hold a blob, as far as strata has seen
//! (pushed, found or pulled). A push asks the registry to mount a missing
//! blob from one of them instead of uploading it (cross-repository blob
//! mount). Kept per registry host in `<cache root>/registry/known/`; it is
//! only a hint: a stale entry costs one refused mount request.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::oci::cache::hex_id;
use crate::oci::layout::write_atomic;

/// Blob digest → repositories, for one registry host.
#[derive(Debug, Default)]
pub(crate) struct KnownRepos {
    path: Option<PathBuf>,
    map: BTreeMap<String, BTreeSet<String>>,
    changed: bool,
}

impl KnownRepos {
    /// Loads the map for `host` from the cache root (empty when missing or
    /// unreadable).
    pub(crate) fn load(cache_root: &Path, host: &str) -> Self {
        let path = cache_root
            .join("registry/known")
            .join(format!("{}.json", hex_id(&[host])));
        let map = fs_err::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self {
            path: Some(path),
            map,
            changed: false,
        }
    }

    /// Repositories other than `repo` known to hold `digest`, sorted.
    pub(crate) fn sources(&self, digest: &str, repo: &str) -> Vec<String> {
        self.map
            .get(digest)
            .map(|s| s.iter().filter(|r| *r != repo).cloned().collect())
            .unwrap_or_default()
    }

    /// Records that `repo` holds `digest`.
    pub(crate) fn add(&mut self, digest: &str, repo: &str) {
        self.changed |= self
            .map
            .entry(digest.to_owned())
            .or_default()
            .insert(repo.to_owned());
    }

    /// Writes the map back (best effort: it is a hint).
    pub(crate) fn save(&self) {
        let Some(path) = &self.path else { return };
        if !self.changed {
            return;
        }
        if let Some(dir) = path.parent() {
            let _ = fs_err::create_dir_all(dir);
        }
        if let Ok(bytes) = serde_json::to_vec(&self.map) {
            let _ = write_atomic(path, &bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_sources() {
        let dir = tempfile::tempdir().unwrap();
        let mut k = KnownRepos::load(dir.path(), "127.0.0.1:5000");
        k.add("sha256:aa", "a/one");
        k.add("sha256:aa", "a/two");
        k.save();
        let k = KnownRepos::load(dir.path(), "127.0.0.1:5000");
        assert_eq!(k.sources("sha256:aa", "a/one"), vec!["a/two".to_string()]);
        assert!(k.sources("sha256:bb", "a/one").is_empty());
        let other = KnownRepos::load(dir.path(), "other:5000");
        assert!(other.sources("sha256:aa", "x").is_empty());
    }
}
