//! OCI image layout directories: `oci-layout`, `blobs/sha256/<hex>` and
//! `index.json`.
//!
//! Blobs are written with [`BlobWriter`] (temp file, rename on completion);
//! `index.json` is replaced atomically (temp file in the layout, fsync,
//! rename) and is written last, after every blob it references. JSON blobs
//! are canonical: object keys sorted bytewise, no whitespace. [`OciDir`]
//! itself takes no lock: outputs are written through
//! [`super::output::LayoutWrite`], which locks the layout and undoes a failed
//! write.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::blob::{Blob, BlobWriter, sync_dir, write_blob};
use super::error::{IoContext, OciError, Result};
use super::image::{Descriptor, ImageIndex, ImageManifest, Platform, build_manifest, media};
use crate::plan::sha256::Digest;
#[cfg(test)]
use {super::image::REF_NAME, crate::plan::sha256::hash_reader};

/// Content of the `oci-layout` file.
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// Largest JSON document (index, manifest, config) read into memory.
pub const MAX_JSON: u64 = 32 << 20;

/// Serializes `value` as canonical JSON: keys sorted, no whitespace.
pub fn canonical_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let json_err = |e| OciError::Json {
        what: "canonical json".to_owned(),
        source: e,
    };
    let value = serde_json::to_value(value).map_err(json_err)?;
    let mut out = Vec::new();
    write_canonical(&value, &mut out).map_err(json_err)?;
    Ok(out)
}

fn write_canonical(v: &Value, out: &mut Vec<u8>) -> serde_json::Result<()> {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, k)?;
                out.push(b':');
                write_canonical(&m[k], out)?;
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out)?;
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar)?,
    }
    Ok(())
}

/// Parses JSON, naming `what` in errors.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| OciError::Json {
        what: what.to_owned(),
        source: e,
    })
}

/// Writes `bytes` to `path` atomically: temp file beside it, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)
        .at(dir)?;
    tmp.write_all(bytes).at(tmp.path())?;
    tmp.as_file().sync_all().at(path)?;
    tmp.persist(path).map_err(|e| OciError::io(path, e.error))?;
    sync_dir(dir)
}

/// An OCI image layout on disk.
#[derive(Clone, Debug)]
pub struct OciDir {
    root: PathBuf,
}

impl OciDir {
    /// Opens the layout at `root`, creating it (and an empty `index.json`)
    /// if it does not exist.
    pub fn create(root: &Path) -> Result<Self> {
        let dir = Self {
            root: root.to_owned(),
        };
        let blobs = dir.blobs_dir();
        fs_err::create_dir_all(&blobs).at(&blobs)?;
        let layout = root.join("oci-layout");
        if !layout.exists() {
            write_atomic(&layout, OCI_LAYOUT)?;
        }
        if !dir.index_path().exists() {
            dir.write_index(&ImageIndex::default())?;
        }
        Ok(dir)
    }

    /// The layout at `root`, as it is (no check, nothing created).
    pub(crate) fn at(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    /// Opens an existing layout.
    pub fn open(root: &Path) -> Result<Self> {
        let layout = root.join("oci-layout");
        let bytes = fs_err::read(&layout).at(&layout)?;
        let v: Value = parse_json(&bytes, &layout.display().to_string())?;
        if v.get("imageLayoutVersion").and_then(Value::as_str) != Some("1.0.0") {
            return Err(OciError::InvalidImage {
                location: root.display().to_string(),
                reason: "`oci-layout` does not say imageLayoutVersion 1.0.0".to_owned(),
            });
        }
        Ok(Self {
            root: root.to_owned(),
        })
    }

    /// The layout's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `blobs/sha256`.
    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    /// Where the blob `digest` lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    /// Starts writing a blob.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        BlobWriter::new(&self.blobs_dir())
    }

    /// Stores `bytes` as a blob.
    pub fn write_blob(&self, bytes: &[u8]) -> Result<Blob> {
        write_blob(&self.blobs_dir(), bytes)
    }

    /// Stores `value` as a canonical JSON blob.
    pub fn write_json_blob<T: Serialize + ?Sized>(&self, value: &T) -> Result<Blob> {
        self.write_blob(&canonical_json(value)?)
    }

    /// Copies a blob in from `reader`, keeping it only if it has `digest`
    /// and `size`. An existing blob of that name is replaced (it is not
    /// trusted to hold those bytes).
    pub fn copy_blob(&self, digest: &Digest, size: u64, mut reader: impl Read) -> Result<Blob> {
        let mut w = self.blob_writer()?;
        std::io::copy(&mut reader, &mut w).at(&self.blobs_dir())?;
        w.complete_verified(digest, Some(size))
    }

    /// Opens a blob for reading (not verified).
    pub fn open_blob(&self, digest: &Digest) -> Result<fs_err::File> {
        let path = self.blob_path(digest);
        fs_err::File::open(&path).at(&path)
    }

    /// Reads a JSON blob (at most [`MAX_JSON`] bytes), checking its digest.
    pub fn read_json_blob<T: DeserializeOwned>(&self, digest: &Digest) -> Result<T> {
        let path = self.blob_path(digest);
        let mut bytes = Vec::new();
        self.open_blob(digest)?
            .take(MAX_JSON + 1)
            .read_to_end(&mut bytes)
            .at(&path)?;
        let found = Digest::of(&bytes);
        if found != *digest {
            return Err(OciError::DigestMismatch {
                what: path.display().to_string(),
                expected: digest.to_string(),
                found: found.to_string(),
            });
        }
        parse_json(&bytes, &path.display().to_string())
    }

    pub(crate) fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// Reads `index.json`.
    #[cfg(test)]
    pub fn read_index(&self) -> Result<ImageIndex> {
        let path = self.index_path();
        let bytes = fs_err::read(&path).at(&path)?;
        parse_json(&bytes, &path.display().to_string())
    }

    /// Replaces `index.json` atomically.
    pub fn write_index(&self, index: &ImageIndex) -> Result<()> {
        write_atomic(&self.index_path(), &canonical_json(index)?)
    }

    /// Points `tag` at `manifest` in `index.json`, replacing an entry with
    /// the same tag and keeping every other one. Call it after every blob
    /// the manifest references has been written. No lock: for a layout
    /// other builds may write, use [`super::output::LayoutWrite`].
    #[cfg(test)]
    pub fn set_tag(&self, manifest: &Descriptor, tag: &str) -> Result<()> {
        let mut index = self.read_index()?;
        super::output::set_tag(&mut index, manifest, tag);
        self.write_index(&index)
    }

    /// Finds the manifest descriptor tagged `tag`.
    #[cfg(test)]
    pub fn resolve_tag(&self, tag: &str) -> Result<Descriptor> {
        let index = self.read_index()?;
        index
            .manifests
            .iter()
            .find(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(tag))
            .cloned()
            .ok_or_else(|| OciError::TagNotFound {
                location: self.root.display().to_string(),
                tag: tag.to_owned(),
                available: index
                    .manifests
                    .iter()
                    .filter_map(|d| d.annotations.get(REF_NAME).cloned())
                    .collect(),
            })
    }

    /// Every blob reachable from `desc` (itself included), each once, in
    /// reference order: index or manifest, then config, then layers.
    pub fn reachable(&self, desc: &Descriptor) -> Result<Vec<Descriptor>> {
        let mut out = Vec::new();
        self.walk(desc, &mut out, 0)?;
        Ok(out)
    }

    fn walk(&self, desc: &Descriptor, out: &mut Vec<Descriptor>, depth: usize) -> Result<()> {
        if out.iter().any(|d| d.digest == desc.digest) {
            return Ok(());
        }
        out.push(desc.clone());
        match desc.media_type.as_str() {
            media::INDEX | media::DOCKER_LIST => {
                if depth > 4 {
                    return Err(OciError::InvalidImage {
                        location: self.root.display().to_string(),
                        reason: "indexes nested too deeply".to_owned(),
                    });
                }
                let index: ImageIndex = self.read_json_blob(&desc.digest)?;
                for m in &index.manifests {
                    self.walk(m, out, depth + 1)?;
                }
            }
            media::MANIFEST | media::DOCKER_MANIFEST => {
                let m: ImageManifest = self.read_json_blob(&desc.digest)?;
                self.walk(&m.config, out, depth + 1)?;
                for l in m.layers.iter().filter(|l| l.urls.is_none()) {
                    self.walk(l, out, depth + 1)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Re-hashes every blob that `index.json` references (directly or
    /// through manifests and indexes); returns how many were checked.
    #[cfg(test)]
    pub fn fsck(&self) -> Result<usize> {
        let index = self.read_index()?;
        let mut all = Vec::new();
        for m in &index.manifests {
            self.walk(m, &mut all, 0)?;
        }
        for desc in &all {
            self.verify_blob(desc)?;
        }
        Ok(all.len())
    }

    /// Checks one blob's size and digest against its descriptor.
    #[cfg(test)]
    pub fn verify_blob(&self, desc: &Descriptor) -> Result<()> {
        let path = self.blob_path(&desc.digest);
        if !path.is_file() {
            return Err(OciError::MissingBlob {
                location: self.root.display().to_string(),
                digest: desc.digest.to_string(),
            });
        }
        let (digest, size) = hash_reader(self.open_blob(&desc.digest)?).at(&path)?;
        if size != desc.size {
            return Err(OciError::SizeMismatch {
                what: path.display().to_string(),
                expected: desc.size,
                found: size,
            });
        }
        if digest != desc.digest {
            return Err(OciError::DigestMismatch {
                what: path.display().to_string(),
                expected: desc.digest.to_string(),
                found: digest.to_string(),
            });
        }
        Ok(())
    }
}

/// Writes `config` and its manifest (canonical JSON, with `annotations`)
/// into `layout`; returns the manifest's descriptor, with the config's
/// platform. The layer blobs must already be in the layout. Does not tag it
/// (see `OciDir::set_tag`).
pub fn write_image(
    layout: &OciDir,
    config: &Value,
    layers: Vec<Descriptor>,
    annotations: BTreeMap<String, String>,
) -> Result<Descriptor> {
    let platform: Option<Platform> = serde_json::from_value(config.clone()).ok();
    let config = layout.write_json_blob(config)?;
    let mut manifest = build_manifest(
        Descriptor::new(media::CONFIG, config.digest, config.size),
        layers,
    );
    manifest.annotations = annotations;
    let blob = layout.write_json_blob(&manifest)?;
    let mut desc = Descriptor::new(media::MANIFEST, blob.digest, blob.size);
    desc.platform = platform.map(|p| Platform {
        os_features: None,
        ..p
    });
    Ok(desc)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_without_whitespace() {
        let v = json!({"b": [1, {"z": null, "a": "é\n"}], "a": true, "A": 1.5});
        assert_eq!(
            String::from_utf8(canonical_json(&v).unwrap()).unwrap(),
            r#"{"A":1.5,"a":true,"b":[1,{"a":"é\n","z":null}]}"#
        );
    }

    /// A one-layer image in `dir`; returns its manifest descriptor.
    pub(crate) fn small_image(dir: &OciDir, layer: &[u8]) -> Descriptor {
        let layer = dir.write_blob(layer).unwrap();
        let config = dir
            .write_json_blob(&json!({"architecture": "amd64", "os": "linux"}))
            .unwrap();
        let manifest = build_manifest(
            Descriptor::new(media::CONFIG, config.digest, config.size),
            vec![Descriptor::new(media::LAYER_TAR, layer.digest, layer.size)],
        );
        let m = dir.write_json_blob(&manifest).unwrap();
        Descriptor::new(media::MANIFEST, m.digest, m.size)
    }

    #[test]
    fn tags_are_added_and_replaced_and_fsck_checks_blobs() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = OciDir::create(tmp.path()).unwrap();
        assert_eq!(
            fs_err::read(tmp.path().join("oci-layout")).unwrap(),
            OCI_LAYOUT
        );
        let one = small_image(&dir, b"one");
        let two = small_image(&dir, b"two");
        dir.set_tag(&one, "a").unwrap();
        dir.set_tag(&one, "b").unwrap();
        dir.set_tag(&two, "a").unwrap();
        let dir = OciDir::open(tmp.path()).unwrap();
        let index = dir.read_index().unwrap();
        assert_eq!(index.manifests.len(), 2);
        assert_eq!(dir.resolve_tag("a").unwrap().digest, two.digest);
        assert_eq!(dir.resolve_tag("b").unwrap().digest, one.digest);
        assert!(matches!(
            dir.resolve_tag("c"),
            Err(OciError::TagNotFound { .. })
        ));
        // Two manifests, two layers, one shared config.
        assert_eq!(dir.fsck().unwrap(), 5);
        // No temp files remain.
        let leftovers: Vec<_> = fs_err::read_dir(tmp.path().join("blobs/sha256"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')
            })
            .collect();
        assert!(leftovers.is_empty());
        // Corrupt a layer: fsck names it.
        let layer = dir.blob_path(&Digest::of(b"two"));
        fs_err::write(&layer, b"tw0").unwrap();
        let err = dir.fsck().unwrap_err();
        assert!(matches!(err, OciError::DigestMismatch { .. }), "{err}");
        assert!(err.to_string().contains(&Digest::of(b"two").hex()[..12]));
    }

    #[test]
    fn write_image_stores_config_and_manifest() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = OciDir::create(tmp.path()).unwrap();
        let layer = layout.write_blob(b"layer").unwrap();
        let config = json!({"architecture": "arm64", "os": "linux", "variant": "v8"});
        let desc = write_image(
            &layout,
            &config,
            vec![Descriptor::new(media::LAYER_TAR, layer.digest, layer.size)],
            BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(
            desc.platform.as_ref().unwrap().to_string(),
            "linux/arm64/v8"
        );
        let manifest: ImageManifest = layout.read_json_blob(&desc.digest).unwrap();
        let stored = fs_err::read(layout.blob_path(&manifest.config.digest)).unwrap();
        assert_eq!(
            stored,
            br#"{"architecture":"arm64","os":"linux","variant":"v8"}"#
        );
        layout.set_tag(&desc, "latest").unwrap();
        assert_eq!(layout.fsck().unwrap(), 3);
    }
}
