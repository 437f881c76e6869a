//! Base images: import from `oci-layout:PATH[:TAG]`, `oci-archive:FILE[:TAG]`
//! and `docker-archive:FILE[:NAME[:TAG]]`, and read the base's final
//! filesystem metadata for chosen paths (docs/design.md §1, parent directories).
//!
//! Every blob is checked before use: JSON blobs (indexes, manifests, configs)
//! when read, layer blobs by hashing them in full during import. Docker's
//! legacy `docker save` layers (`<id>/layer.tar`) carry no digest in their
//! names, so they are checked against the config's diffIDs instead.
//!
//! Archives are not unpacked: a blob inside one is read in place (offset and
//! length in the tar file), so importing costs one read of each blob.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;
use serde::Deserialize;
use serde_json::Value;

use super::error::{IoContext, OciError, Result};
use super::image::{
    CONTAINERD_NAME, Descriptor, HistoryEntry, ImageIndex, ImageManifest, Platform, REF_NAME, media,
};
use super::layout::{MAX_JSON, parse_json};
use crate::plan::sha256::{Digest, hash_reader};

pub use crate::spec::reference::ImageRef;

/// A byte range of a file holding one blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobSource {
    /// The file (a blob file, or an archive).
    pub path: PathBuf,
    /// Where the blob starts in it.
    pub offset: u64,
    /// The blob's length.
    pub len: u64,
}

impl BlobSource {
    /// Opens the blob for reading.
    pub fn open(&self) -> Result<impl Read + use<>> {
        let mut f = fs_err::File::open(&self.path).at(&self.path)?;
        if self.offset > 0 {
            f.seek(SeekFrom::Start(self.offset)).at(&self.path)?;
        }
        Ok(BufReader::with_capacity(1 << 20, f).take(self.len))
    }

    /// Opens the blob's uncompressed tar, decompressed as it is read (gzip,
    /// zstd or none, told by its first bytes): the one reader of layer
    /// blobs, for base images and `strata diff` alike.
    pub fn open_tar(&self) -> Result<Box<dyn Read + Send>> {
        let mut reader = BufReader::with_capacity(1 << 20, self.open()?);
        Ok(match sniff(&mut reader).at(&self.path)? {
            Packing::Tar => Box::new(reader),
            Packing::Gzip => Box::new(MultiGzDecoder::new(reader)),
            Packing::Zstd => {
                Box::new(zstd::stream::read::Decoder::with_buffer(reader).at(&self.path)?)
            }
        })
    }

    fn read_json<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        expected: Option<&Digest>,
    ) -> Result<(T, Digest)> {
        if self.len > MAX_JSON {
            return Err(OciError::InvalidImage {
                location: what.to_owned(),
                reason: format!(
                    "{} bytes is over the {MAX_JSON}-byte limit for JSON",
                    self.len
                ),
            });
        }
        let mut bytes = Vec::with_capacity(self.len as usize);
        self.open()?.read_to_end(&mut bytes).at(&self.path)?;
        let digest = Digest::of(&bytes);
        if let Some(expected) = expected {
            check_digest(what, expected, &digest)?;
        }
        Ok((parse_json(&bytes, what)?, digest))
    }
}

fn check_digest(what: &str, expected: &Digest, found: &Digest) -> Result<()> {
    if expected == found {
        Ok(())
    } else {
        Err(OciError::DigestMismatch {
            what: what.to_owned(),
            expected: expected.to_string(),
            found: found.to_string(),
        })
    }
}

/// One layer of a base image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseLayer {
    /// The blob's descriptor (OCI media types; Docker's are mapped).
    pub descriptor: Descriptor,
    /// The uncompressed tar's digest, from the config.
    pub diff_id: Digest,
    /// Where the blob's bytes are.
    pub source: BlobSource,
}

impl BaseLayer {
    /// Opens the layer blob as stored (possibly compressed).
    pub fn open(&self) -> Result<impl Read + use<>> {
        self.source.open()
    }

    /// Opens the layer's uncompressed tar ([`BlobSource::open_tar`]).
    pub fn open_tar(&self) -> Result<Box<dyn Read + Send>> {
        self.source.open_tar()
    }
}

/// An imported, verified base image.
#[derive(Clone, Debug)]
pub struct BaseImage {
    /// The reference it was read from, for messages.
    pub location: String,
    /// The manifest's digest (`None` for a legacy docker archive).
    pub manifest_digest: Option<Digest>,
    /// The config's digest (the Docker image ID).
    pub config_digest: Digest,
    /// The config JSON.
    pub config: Value,
    /// The platform the config declares.
    pub platform: Platform,
    /// Layers, bottom first.
    pub layers: Vec<BaseLayer>,
    /// The config's history.
    pub history: Vec<HistoryEntry>,
}

/// Files of a layout directory or of a tar archive, by relative path.
enum Container {
    Dir(PathBuf),
    Tar {
        file: PathBuf,
        files: HashMap<String, (u64, u64)>,
        links: HashMap<String, String>,
    },
}

/// Normalizes a relative path: no `.`, empty or leading `/` components;
/// `..` pops. `None` if it climbs out.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

impl Container {
    fn open_tar(file: &Path) -> Result<Self> {
        let f = fs_err::File::open(file).at(file)?;
        let mut archive = tar::Archive::new(f);
        let mut files = HashMap::new();
        let mut links = HashMap::new();
        for entry in archive.entries_with_seek().at(file)? {
            let entry = entry.at(file)?;
            let Some(name) = normalize(&String::from_utf8_lossy(&entry.path_bytes())) else {
                continue;
            };
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    files.insert(name, (entry.raw_file_position(), entry.size()));
                }
                ty @ (tar::EntryType::Symlink | tar::EntryType::Link) => {
                    if let Some(target) = entry.link_name_bytes() {
                        let target = String::from_utf8_lossy(&target).into_owned();
                        // Hard link targets are archive paths; symlinks are
                        // relative to the link's directory.
                        let resolved = if ty == tar::EntryType::Link || target.starts_with('/') {
                            target
                        } else {
                            let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                            format!("{dir}/{target}")
                        };
                        links.insert(name, resolved);
                    }
                }
                _ => {}
            }
        }
        Ok(Self::Tar {
            file: file.to_owned(),
            files,
            links,
        })
    }

    fn location(&self) -> &Path {
        match self {
            Self::Dir(p) => p,
            Self::Tar { file, .. } => file,
        }
    }

    fn locate(&self, name: &str) -> Result<BlobSource> {
        let missing = || OciError::MissingBlob {
            location: self.location().display().to_string(),
            digest: name.to_owned(),
        };
        let Some(mut name) = normalize(name) else {
            return Err(OciError::InvalidImage {
                location: self.location().display().to_string(),
                reason: format!("path `{name}` leaves the image"),
            });
        };
        match self {
            Self::Dir(root) => {
                let path = root.join(&name);
                let meta = fs_err::metadata(&path).map_err(|_| missing())?;
                if !meta.is_file() {
                    return Err(missing());
                }
                Ok(BlobSource {
                    path,
                    offset: 0,
                    len: meta.len(),
                })
            }
            Self::Tar { file, files, links } => {
                for _ in 0..16 {
                    if let Some(&(offset, len)) = files.get(&name) {
                        return Ok(BlobSource {
                            path: file.clone(),
                            offset,
                            len,
                        });
                    }
                    name = links
                        .get(&name)
                        .and_then(|t| normalize(t))
                        .ok_or_else(missing)?;
                }
                Err(missing())
            }
        }
    }
}

/// Imports the image `r` for `platform` and verifies every blob it uses.
pub fn import_base(r: &ImageRef, platform: &Platform) -> Result<BaseImage> {
    import(r, Some(platform), true)
}

/// Reads the image `r` without reading its layer blobs: the index, manifest
/// and config are checked against their digests as usual, but a layer's
/// digest is taken from its descriptor (or, in a docker archive, from its
/// file name, else from its diffID when the blob is an uncompressed tar), so
/// equal layers can be skipped unread (`strata diff`). With `platform` `None`
/// the image must be a single one (or the only non-`unknown` platform).
pub fn import_unverified(r: &ImageRef, platform: Option<&Platform>) -> Result<BaseImage> {
    import(r, platform, false)
}

/// The platforms of a multi-platform image: the digest of the index the
/// reference selects (if it selects one) and the platforms its manifests
/// declare (attestation manifests, `unknown/unknown`, left out). An empty
/// list means a single-platform image (its platform is in its config).
pub fn image_platforms(r: &ImageRef) -> Result<(Option<Digest>, Vec<Platform>)> {
    let location = r.to_string();
    let (c, tag) = match r {
        ImageRef::OciLayout { path, tag } => (Container::Dir(path.clone()), tag),
        ImageRef::OciArchive { path, tag } => (Container::open_tar(path)?, tag),
        ImageRef::DockerArchive { .. } => return Ok((None, Vec::new())),
    };
    let candidates = layout_candidates(&c, &location, tag.as_deref())?;
    let real = |d: &&Descriptor| d.platform.as_ref().is_some_and(|p| p.os != "unknown");
    match candidates.as_slice() {
        [one] if is_index(&one.media_type) => {
            let (index, _): (ImageIndex, _) = c.locate(&blob_name(&one.digest))?.read_json(
                &format!("{location} index {}", one.digest),
                Some(&one.digest),
            )?;
            let platforms = index
                .manifests
                .iter()
                .filter(real)
                .filter_map(|d| d.platform.clone())
                .collect();
            Ok((Some(one.digest), platforms))
        }
        [_] => Ok((None, Vec::new())),
        many => Ok((
            None,
            many.iter()
                .filter(real)
                .filter_map(|d| d.platform.clone())
                .collect(),
        )),
    }
}

fn import(r: &ImageRef, platform: Option<&Platform>, verify: bool) -> Result<BaseImage> {
    let location = r.to_string();
    match r {
        ImageRef::OciLayout { path, tag } => import_layout(
            &Container::Dir(path.clone()),
            &location,
            tag.as_deref(),
            platform,
            verify,
        ),
        ImageRef::OciArchive { path, tag } => import_layout(
            &Container::open_tar(path)?,
            &location,
            tag.as_deref(),
            platform,
            verify,
        ),
        ImageRef::DockerArchive { path, reference } => import_docker(
            &Container::open_tar(path)?,
            &location,
            reference.as_deref(),
            platform,
            verify,
        ),
    }
}

fn is_index(media_type: &str) -> bool {
    media_type == media::INDEX || media_type == media::DOCKER_LIST
}

fn is_manifest(media_type: &str) -> bool {
    media_type == media::MANIFEST || media_type == media::DOCKER_MANIFEST
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// The descriptors of a layout's `index.json` that `tag` selects (all of
/// them without a tag); never empty.
fn layout_candidates(c: &Container, location: &str, tag: Option<&str>) -> Result<Vec<Descriptor>> {
    let invalid = |reason: String| OciError::InvalidImage {
        location: location.to_owned(),
        reason,
    };
    c.locate("oci-layout")
        .map_err(|_| invalid("no `oci-layout` file: not an OCI layout".to_owned()))?;
    let (index, _): (ImageIndex, _) = c
        .locate("index.json")?
        .read_json(&format!("{location} index.json"), None)?;
    let tags = |d: &Descriptor| d.annotations.get(REF_NAME).cloned();
    let candidates: Vec<Descriptor> = match tag {
        Some(t) => index
            .manifests
            .iter()
            .filter(|d| {
                tags(d).as_deref() == Some(t)
                    || d.annotations.get(CONTAINERD_NAME).map(String::as_str) == Some(t)
            })
            .cloned()
            .collect(),
        None => index.manifests.clone(),
    };
    match (candidates.len(), tag) {
        (0, Some(t)) => Err(OciError::TagNotFound {
            location: location.to_owned(),
            tag: t.to_owned(),
            available: index.manifests.iter().filter_map(tags).collect(),
        }),
        (0, None) => Err(invalid("index.json lists no images".to_owned())),
        _ => Ok(candidates),
    }
}

fn import_layout(
    c: &Container,
    location: &str,
    tag: Option<&str>,
    wanted: Option<&Platform>,
    verify: bool,
) -> Result<BaseImage> {
    let invalid = |reason: String| OciError::InvalidImage {
        location: location.to_owned(),
        reason,
    };
    let tags = |d: &Descriptor| d.annotations.get(REF_NAME).cloned();
    let candidates = layout_candidates(c, location, tag)?;
    let chosen = match candidates.len() {
        1 => candidates[0].clone(),
        _ if candidates
            .iter()
            .all(|d| is_manifest(&d.media_type) && d.platform.is_some()) =>
        {
            pick_platform(&candidates, location, wanted)?
        }
        _ => {
            return Err(OciError::AmbiguousImage {
                location: location.to_owned(),
                candidates: candidates
                    .iter()
                    .map(|d| tags(d).unwrap_or_else(|| d.digest.to_string()))
                    .collect(),
            });
        }
    };
    let manifest_desc = resolve_manifest(c, location, chosen, wanted)?;
    let (manifest, _): (ImageManifest, _) =
        c.locate(&blob_name(&manifest_desc.digest))?.read_json(
            &format!("{location} manifest {}", manifest_desc.digest),
            Some(&manifest_desc.digest),
        )?;
    let config_desc = &manifest.config;
    let (config, config_digest): (Value, _) =
        c.locate(&blob_name(&config_desc.digest))?.read_json(
            &format!("{location} config {}", config_desc.digest),
            Some(&config_desc.digest),
        )?;
    let diff_ids = diff_ids(&config, location)?;
    if diff_ids.len() != manifest.layers.len() {
        return Err(invalid(format!(
            "{} layers but {} diffIDs in the config",
            manifest.layers.len(),
            diff_ids.len()
        )));
    }
    let mut layers = Vec::with_capacity(diff_ids.len());
    for (desc, diff_id) in manifest.layers.iter().zip(diff_ids) {
        let source = c.locate(&blob_name(&desc.digest))?;
        if verify {
            verify_layer(&source, location, Some(desc), None, &diff_id)?;
        }
        let mut descriptor = desc.clone();
        descriptor.media_type = oci_layer_type(&desc.media_type).to_owned();
        layers.push(BaseLayer {
            descriptor,
            diff_id,
            source,
        });
    }
    finish(
        location,
        Some(manifest_desc.digest),
        config_digest,
        config,
        layers,
        wanted,
    )
}

/// Follows indexes down to one manifest for `wanted`.
fn resolve_manifest(
    c: &Container,
    location: &str,
    mut desc: Descriptor,
    wanted: Option<&Platform>,
) -> Result<Descriptor> {
    for _ in 0..4 {
        if is_manifest(&desc.media_type) {
            return Ok(desc);
        }
        if !is_index(&desc.media_type) {
            return Err(OciError::Unsupported {
                what: "manifest media type",
                value: desc.media_type,
                location: location.to_owned(),
            });
        }
        let (index, _): (ImageIndex, _) = c.locate(&blob_name(&desc.digest))?.read_json(
            &format!("{location} index {}", desc.digest),
            Some(&desc.digest),
        )?;
        desc = pick_platform(&index.manifests, location, wanted)?;
    }
    Err(OciError::InvalidImage {
        location: location.to_owned(),
        reason: "indexes nested too deeply".to_owned(),
    })
}

/// The first descriptor whose platform serves `wanted`; without `wanted`,
/// the only one with a real platform (not an attestation's `unknown/unknown`).
fn pick_platform(
    descs: &[Descriptor],
    location: &str,
    wanted: Option<&Platform>,
) -> Result<Descriptor> {
    let found = match wanted {
        Some(w) => descs
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|p| p.satisfies(w))),
        None => {
            let real: Vec<&Descriptor> = descs
                .iter()
                .filter(|d| d.platform.as_ref().is_none_or(|p| p.os != "unknown"))
                .collect();
            match real.as_slice() {
                [one] => Some(*one),
                _ => None,
            }
        }
    };
    found.cloned().ok_or_else(|| OciError::PlatformNotFound {
        location: location.to_owned(),
        wanted: wanted.map_or_else(|| "(any one)".to_owned(), |w| w.to_string()),
        available: descs
            .iter()
            .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
            .collect(),
    })
}

fn diff_ids(config: &Value, location: &str) -> Result<Vec<Digest>> {
    let ids = config
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .cloned()
        .unwrap_or(Value::Array(Vec::new()));
    serde_json::from_value(ids).map_err(|e| OciError::Json {
        what: format!("{location} config rootfs.diff_ids"),
        source: e,
    })
}

fn oci_layer_type(media_type: &str) -> &str {
    match media_type {
        media::DOCKER_LAYER_GZIP => media::LAYER_GZIP,
        media::DOCKER_LAYER_TAR => media::LAYER_TAR,
        other => other,
    }
}

/// Compression of a layer blob, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packing {
    /// An uncompressed tar.
    Tar,
    /// gzip (one or more members).
    Gzip,
    /// zstd.
    Zstd,
}

/// The packing of the blob `r` starts, without consuming it.
pub fn sniff(r: &mut impl BufRead) -> std::io::Result<Packing> {
    let head = r.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Packing::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Packing::Zstd
    } else {
        Packing::Tar
    })
}

/// Hashes a layer blob: checks it against `desc` when given, against the
/// digest its archive path names (`named`) when given, and against `diff_id`
/// whenever the tar can be read (uncompressed: the blob itself; gzip
/// without a descriptor: decompressed). Returns the blob's digest, size and
/// packing.
fn verify_layer(
    source: &BlobSource,
    location: &str,
    desc: Option<&Descriptor>,
    named: Option<&Digest>,
    diff_id: &Digest,
) -> Result<(Digest, u64, Packing)> {
    let what = match (desc, named) {
        (Some(d), _) => format!("{location} layer {}", d.digest),
        (None, Some(n)) => format!("{location} layer {n}"),
        (None, None) => format!("{location} layer {}", source.path.display()),
    };
    let mut r = source.open()?;
    let packing = sniff(&mut BufReader::new(&mut r)).at(&source.path)?;
    let (digest, size) = hash_reader(source.open()?).at(&source.path)?;
    if let Some(d) = desc {
        if d.size != size {
            return Err(OciError::SizeMismatch {
                what,
                expected: d.size,
                found: size,
            });
        }
        check_digest(&what, &d.digest, &digest)?;
    }
    // The digest a docker archive's blob path names, checked before the
    // content is decompressed, so a corrupted blob is named by its digest.
    if let Some(n) = named {
        check_digest(&what, n, &digest)?;
    }
    match packing {
        Packing::Tar => check_digest(&what, diff_id, &digest)?,
        Packing::Gzip if desc.is_none() => {
            let (unpacked, _) = hash_reader(source.open_tar()?).map_err(|e| {
                // A corrupt stream is a wrong input (exit 1), not trouble.
                match e.kind() {
                    std::io::ErrorKind::InvalidInput
                    | std::io::ErrorKind::InvalidData
                    | std::io::ErrorKind::UnexpectedEof => OciError::InvalidImage {
                        location: what.clone(),
                        reason: format!(
                            "the layer does not decompress to its diffID {diff_id}: {e}"
                        ),
                    },
                    _ => OciError::io(&source.path, e),
                }
            })?;
            check_digest(&what, diff_id, &unpacked)?;
        }
        Packing::Gzip => {}
        Packing::Zstd if desc.is_none() => {
            return Err(OciError::Unsupported {
                what: "layer compression",
                value: "zstd".to_owned(),
                location: what,
            });
        }
        Packing::Zstd => {}
    }
    Ok((digest, size, packing))
}

/// A docker-archive layer's digest, size and packing without hashing it:
/// the digest its file name carries, else (an uncompressed tar) its diffID;
/// only a compressed legacy layer is hashed.
fn describe_layer(
    source: &BlobSource,
    named: Option<Digest>,
    diff_id: &Digest,
) -> Result<(Digest, u64, Packing)> {
    let packing = sniff(&mut BufReader::new(source.open()?)).at(&source.path)?;
    let digest = match (named, packing) {
        (Some(d), _) => d,
        (None, Packing::Tar) => *diff_id,
        (None, _) => hash_reader(source.open()?).at(&source.path)?.0,
    };
    Ok((digest, source.len, packing))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestItem {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// `NAME` and `NAME:latest`, with and without `docker.io/library/`, match.
fn same_reference(a: &str, b: &str) -> bool {
    fn norm(r: &str) -> String {
        let r = r.strip_prefix("docker.io/").unwrap_or(r);
        let r = r.strip_prefix("library/").unwrap_or(r);
        let has_tag = r.rsplit_once('/').map_or(r, |(_, last)| last).contains(':');
        if has_tag {
            r.to_owned()
        } else {
            format!("{r}:latest")
        }
    }
    norm(a) == norm(b)
}

/// The 64 hex digits a docker-archive file name carries, if any
/// (`blobs/sha256/<hex>` or `<hex>.json`).
fn digest_in_name(name: &str) -> Option<Digest> {
    let hex = name
        .strip_prefix("blobs/sha256/")
        .or_else(|| name.strip_suffix(".json"))?;
    Digest::from_hex(hex).ok()
}

fn import_docker(
    c: &Container,
    location: &str,
    reference: Option<&str>,
    wanted: Option<&Platform>,
    verify: bool,
) -> Result<BaseImage> {
    let (items, _): (Vec<DockerManifestItem>, _) = c
        .locate("manifest.json")?
        .read_json(&format!("{location} manifest.json"), None)?;
    let names = |i: &DockerManifestItem| i.repo_tags.clone().unwrap_or_default();
    let chosen: Vec<&DockerManifestItem> = match reference {
        Some(r) => items
            .iter()
            .filter(|i| names(i).iter().any(|t| same_reference(t, r)))
            .collect(),
        None => items.iter().collect(),
    };
    let item = match (chosen.as_slice(), reference) {
        ([one], _) => *one,
        ([], Some(r)) => {
            return Err(OciError::TagNotFound {
                location: location.to_owned(),
                tag: r.to_owned(),
                available: items.iter().flat_map(names).collect(),
            });
        }
        ([], None) => {
            return Err(OciError::InvalidImage {
                location: location.to_owned(),
                reason: "manifest.json lists no images".to_owned(),
            });
        }
        (many, _) => {
            return Err(OciError::AmbiguousImage {
                location: location.to_owned(),
                candidates: many.iter().map(|i| names(i).join(" ")).collect(),
            });
        }
    };
    let config_source = c.locate(&item.config)?;
    let (config, config_digest): (Value, _) = config_source.read_json(
        &format!("{location} config {}", item.config),
        digest_in_name(&item.config).as_ref(),
    )?;
    let diff_ids = diff_ids(&config, location)?;
    if diff_ids.len() != item.layers.len() {
        return Err(OciError::InvalidImage {
            location: location.to_owned(),
            reason: format!(
                "{} layers but {} diffIDs in the config",
                item.layers.len(),
                diff_ids.len()
            ),
        });
    }
    let mut layers = Vec::with_capacity(diff_ids.len());
    for (name, diff_id) in item.layers.iter().zip(diff_ids) {
        let source = c.locate(name)?;
        let named = digest_in_name(name);
        let (digest, size, packing) = if verify {
            verify_layer(&source, location, None, named.as_ref(), &diff_id)?
        } else {
            describe_layer(&source, named, &diff_id)?
        };
        let media_type = match packing {
            Packing::Tar => media::LAYER_TAR,
            Packing::Gzip => media::LAYER_GZIP,
            Packing::Zstd => media::LAYER_ZSTD,
        };
        layers.push(BaseLayer {
            descriptor: Descriptor::new(media_type, digest, size),
            diff_id,
            source,
        });
    }
    finish(location, None, config_digest, config, layers, wanted)
}

fn finish(
    location: &str,
    manifest_digest: Option<Digest>,
    config_digest: Digest,
    config: Value,
    layers: Vec<BaseLayer>,
    wanted: Option<&Platform>,
) -> Result<BaseImage> {
    let platform: Platform =
        serde_json::from_value(config.clone()).map_err(|e| OciError::Json {
            what: format!("{location} config (os, architecture)"),
            source: e,
        })?;
    if let Some(wanted) = wanted
        && !platform.satisfies(wanted)
    {
        return Err(OciError::PlatformNotFound {
            location: location.to_owned(),
            wanted: wanted.to_string(),
            available: vec![platform.to_string()],
        });
    }
    let history = match config.get("history") {
        Some(h) => serde_json::from_value(h.clone()).map_err(|e| OciError::Json {
            what: format!("{location} config history"),
            source: e,
        })?,
        None => Vec::new(),
    };
    Ok(BaseImage {
        location: location.to_owned(),
        manifest_digest,
        config_digest,
        config,
        platform,
        layers,
        history,
    })
}

/// What a path is in the base image's final filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BasePath {
    /// Not there.
    Absent,
    /// A directory; `mode` includes setuid/setgid/sticky.
    Dir {
        /// Permission bits.
        mode: u32,
        /// Owner.
        uid: u64,
        /// Group.
        gid: u64,
    },
    /// A symbolic link.
    Symlink {
        /// Its target, unchanged.
        target: Vec<u8>,
    },
    /// A regular file or anything else that is not a directory.
    Other,
}

/// Strips `./`, `/` and trailing `/` from a layer tar's entry name.
fn layer_path(raw: &[u8]) -> Vec<u8> {
    raw.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect::<Vec<_>>()
        .join(&b'/')
}

/// The final state of each of `paths` (entry paths: relative, no leading or
/// trailing `/`) after stacking `layers` bottom first, applying whiteouts
/// (`.wh.NAME` removes NAME from lower layers, `.wh..wh..opq` hides a
/// directory's lower contents). A directory that only exists implicitly (a
/// layer has entries below it but no entry for it) is reported as `0755`
/// owned by `0:0`, what extraction creates.
pub fn base_paths(layers: &[BaseLayer], paths: &[Vec<u8>]) -> Result<BTreeMap<Vec<u8>, BasePath>> {
    let mut state: BTreeMap<Vec<u8>, BasePath> = paths
        .iter()
        .map(|p| (p.clone(), BasePath::Absent))
        .collect();
    for layer in layers {
        let tar_reader = layer.open_tar()?;
        // This layer's own entries, applied over the lower state at the end,
        // so its whiteouts only hide lower layers.
        let mut layer_set: BTreeMap<Vec<u8>, BasePath> = BTreeMap::new();
        let mut archive = tar::Archive::new(tar_reader);
        for entry in archive.entries().at(&layer.source.path)? {
            let entry = entry.at(&layer.source.path)?;
            let path = layer_path(&entry.path_bytes());
            if path.is_empty() {
                continue;
            }
            let (parent, name) = match path.iter().rposition(|&b| b == b'/') {
                Some(i) => (&path[..i], &path[i + 1..]),
                None => (&b""[..], &path[..]),
            };
            if name == b".wh..wh..opq" {
                hide_below(&mut state, parent, false);
                continue;
            }
            if let Some(hidden) = name.strip_prefix(b".wh.") {
                let mut target = parent.to_vec();
                if !target.is_empty() {
                    target.push(b'/');
                }
                target.extend_from_slice(hidden);
                hide_below(&mut state, &target, true);
                continue;
            }
            // Implicit parents of this entry.
            for (i, _) in path.iter().enumerate().filter(|&(_, &b)| b == b'/') {
                let ancestor = &path[..i];
                if state.get(ancestor) == Some(&BasePath::Absent)
                    && !layer_set.contains_key(ancestor)
                {
                    layer_set.insert(
                        ancestor.to_vec(),
                        BasePath::Dir {
                            mode: 0o755,
                            uid: 0,
                            gid: 0,
                        },
                    );
                }
            }
            let h = entry.header();
            let kind = match h.entry_type() {
                tar::EntryType::Directory => BasePath::Dir {
                    mode: h.mode().at(&layer.source.path)? & 0o7777,
                    uid: h.uid().at(&layer.source.path)?,
                    gid: h.gid().at(&layer.source.path)?,
                },
                tar::EntryType::Symlink => BasePath::Symlink {
                    target: entry
                        .link_name_bytes()
                        .map(|t| t.into_owned())
                        .unwrap_or_default(),
                },
                _ => BasePath::Other,
            };
            if !matches!(kind, BasePath::Dir { .. }) {
                // A non-directory replaces whatever lower layers had below it.
                hide_below(&mut state, &path, false);
            }
            if state.contains_key(&path) {
                layer_set.insert(path, kind);
            }
        }
        state.extend(layer_set);
    }
    Ok(state)
}

/// Marks queried paths below `dir` (and `dir` itself if `inclusive`) absent.
fn hide_below(state: &mut BTreeMap<Vec<u8>, BasePath>, dir: &[u8], inclusive: bool) {
    if inclusive && let Some(v) = state.get_mut(dir) {
        *v = BasePath::Absent;
    }
    let mut prefix = dir.to_vec();
    if !prefix.is_empty() {
        prefix.push(b'/');
    }
    for (path, value) in state.range_mut(prefix.clone()..) {
        if !path.starts_with(&prefix) {
            break;
        }
        *value = BasePath::Absent;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::oci::compress::gzip_encoder;
    use crate::oci::image::build_manifest;
    use crate::oci::layout::{OciDir, canonical_json};
    use crate::oci::tar::{Meta, TarStream};
    use serde_json::json;
    use std::io::Write;

    fn meta(mode: u32) -> Meta {
        Meta {
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
        }
    }

    /// A tar of regular files.
    pub(crate) fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut t = TarStream::new(Vec::new(), Path::new("memory"));
        for (name, bytes) in files {
            t.append_bytes(name.as_bytes(), bytes, meta(0o644)).unwrap();
        }
        t.finish().unwrap()
    }

    /// Two layers: the lower one with /tmp, a /var/run symlink and some
    /// directories; the upper one with whiteouts and an implicit directory.
    pub(crate) fn layers() -> (Vec<u8>, Vec<u8>) {
        let mut t = TarStream::new(Vec::new(), Path::new("memory"));
        t.append_dir(b"gone", meta(0o755)).unwrap();
        t.append_dir(b"keep", meta(0o755)).unwrap();
        t.append_dir(b"keep/sub", meta(0o755)).unwrap();
        t.append_dir(b"opt", meta(0o755)).unwrap();
        t.append_bytes(b"opt/a", b"a", meta(0o644)).unwrap();
        t.append_dir(b"tmp", meta(0o1777)).unwrap();
        t.append_dir(b"var", meta(0o755)).unwrap();
        t.append_symlink(b"var/run", b"/run", meta(0o777)).unwrap();
        let lower = t.finish().unwrap();
        let mut t = TarStream::new(Vec::new(), Path::new("memory"));
        t.append_bytes(b".wh.gone", b"", meta(0o644)).unwrap();
        t.append_dir(
            b"keep",
            Meta {
                uid: 5,
                gid: 6,
                ..meta(0o700)
            },
        )
        .unwrap();
        t.append_bytes(b"keep/.wh..wh..opq", b"", meta(0o644))
            .unwrap();
        t.append_bytes(b"new/implicit/file", b"x", meta(0o644))
            .unwrap();
        let upper = t.finish().unwrap();
        (lower, upper)
    }

    fn config(diff_ids: &[Digest], arch: &str) -> Vec<u8> {
        canonical_json(&json!({
            "architecture": arch, "os": "linux",
            "config": {"Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": "2020-01-01T00:00:00Z", "created_by": "lower"},
                        {"created": "2020-01-01T00:00:00Z", "created_by": "upper"}]
        }))
        .unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = gzip_encoder(Vec::new());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        fs_err::write(&p, bytes).unwrap();
        p
    }

    fn amd64() -> Platform {
        Platform::parse("linux/amd64").unwrap()
    }

    /// `docker save` of Docker 20.10: `<id>/layer.tar`, `<hex>.json`, manifest.json.
    fn legacy_archive(lower: &[u8], upper: &[u8], upper_stored: &[u8]) -> Vec<u8> {
        let config = config(&[Digest::of(lower), Digest::of(upper)], "amd64");
        let config_name = format!("{}.json", Digest::of(&config).hex());
        let manifest = canonical_json(&json!([{
            "Config": config_name, "RepoTags": ["base:1"],
            "Layers": ["l1/layer.tar", "l2/layer.tar"]
        }]))
        .unwrap();
        tar_of(&[
            (&config_name, &config),
            ("l1/VERSION", b"1.0"),
            ("l1/json", b"{}"),
            ("l1/layer.tar", lower),
            ("l2/layer.tar", upper_stored),
            ("manifest.json", &manifest),
            ("repositories", b"{}"),
        ])
    }

    /// `docker save` of Docker >= 25: an OCI layout plus manifest.json; the
    /// lower layer gzip-compressed.
    fn new_archive(lower: &[u8], upper: &[u8], upper_stored: &[u8]) -> Vec<u8> {
        let config = config(&[Digest::of(lower), Digest::of(upper)], "amd64");
        let lower_gz = gzip(lower);
        let b = |bytes: &[u8]| format!("blobs/sha256/{}", Digest::of(bytes).hex());
        let docker_manifest = canonical_json(&json!([{
            "Config": b(&config), "RepoTags": ["docker.io/library/base:1"],
            "Layers": [b(&lower_gz), b(upper)]
        }]))
        .unwrap();
        tar_of(&[
            (&b(&config), &config),
            (&b(&lower_gz), &lower_gz),
            (&b(upper), upper_stored),
            ("index.json", br#"{"schemaVersion":2,"manifests":[]}"#),
            ("manifest.json", &docker_manifest),
            ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        ])
    }

    fn check_image(image: &BaseImage, lower: &[u8], upper: &[u8]) {
        assert_eq!(image.layers.len(), 2);
        assert_eq!(image.layers[0].diff_id, Digest::of(lower));
        assert_eq!(image.layers[1].diff_id, Digest::of(upper));
        assert_eq!(image.layers[1].descriptor.media_type, media::LAYER_TAR);
        assert_eq!(image.history.len(), 2);
        assert_eq!(image.history[1].created_by.as_deref(), Some("upper"));
        assert_eq!(image.config["config"]["Env"], json!(["PATH=/bin"]));
        let mut stored = Vec::new();
        image.layers[1]
            .open()
            .unwrap()
            .read_to_end(&mut stored)
            .unwrap();
        assert_eq!(stored, upper);
        let queries: Vec<Vec<u8>> = [
            "tmp", "var", "var/run", "gone", "keep", "keep/sub", "opt/a", "new", "nothing",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        let got = base_paths(&image.layers, &queries).unwrap();
        let dir = |mode, uid, gid| BasePath::Dir { mode, uid, gid };
        assert_eq!(got[&b"tmp"[..]], dir(0o1777, 0, 0));
        assert_eq!(got[&b"var"[..]], dir(0o755, 0, 0));
        assert_eq!(
            got[&b"var/run"[..]],
            BasePath::Symlink {
                target: b"/run".to_vec()
            }
        );
        assert_eq!(got[&b"gone"[..]], BasePath::Absent);
        assert_eq!(got[&b"keep"[..]], dir(0o700, 5, 6));
        assert_eq!(got[&b"keep/sub"[..]], BasePath::Absent);
        assert_eq!(got[&b"opt/a"[..]], BasePath::Other);
        assert_eq!(got[&b"new"[..]], dir(0o755, 0, 0));
        assert_eq!(got[&b"nothing"[..]], BasePath::Absent);
    }

    #[test]
    fn reads_legacy_docker_archive() {
        let tmp = tempfile::tempdir().unwrap();
        let (lower, upper) = layers();
        let file = write(
            tmp.path(),
            "legacy.tar",
            &legacy_archive(&lower, &upper, &upper),
        );
        let r: ImageRef = format!("docker-archive:{}", file.display())
            .parse()
            .unwrap();
        let image = import_base(&r, &amd64()).unwrap();
        check_image(&image, &lower, &upper);
        assert_eq!(image.manifest_digest, None);
        // Selecting by name works; another name does not exist.
        let r: ImageRef = format!("docker-archive:{}:base:1", file.display())
            .parse()
            .unwrap();
        assert!(import_base(&r, &amd64()).is_ok());
        let r: ImageRef = format!("docker-archive:{}:base:2", file.display())
            .parse()
            .unwrap();
        assert!(matches!(
            import_base(&r, &amd64()),
            Err(OciError::TagNotFound { .. })
        ));
        // Wrong platform.
        let arm = Platform::parse("linux/arm64").unwrap();
        let r: ImageRef = format!("docker-archive:{}", file.display())
            .parse()
            .unwrap();
        assert!(matches!(
            import_base(&r, &arm),
            Err(OciError::PlatformNotFound { .. })
        ));
    }

    #[test]
    fn reads_docker_25_archive() {
        let tmp = tempfile::tempdir().unwrap();
        let (lower, upper) = layers();
        let file = write(tmp.path(), "new.tar", &new_archive(&lower, &upper, &upper));
        let r: ImageRef = format!("docker-archive:{}:base:1", file.display())
            .parse()
            .unwrap();
        let image = import_base(&r, &amd64()).unwrap();
        check_image(&image, &lower, &upper);
        assert_eq!(image.layers[0].descriptor.media_type, media::LAYER_GZIP);
    }

    #[test]
    fn rejects_corrupted_layers_in_both_formats() {
        let tmp = tempfile::tempdir().unwrap();
        let (lower, upper) = layers();
        let mut bad = upper.clone();
        bad[600] ^= 1;
        for (name, bytes) in [
            ("legacy.tar", legacy_archive(&lower, &upper, &bad)),
            ("new.tar", new_archive(&lower, &upper, &bad)),
        ] {
            let file = write(tmp.path(), name, &bytes);
            let r: ImageRef = format!("docker-archive:{}", file.display())
                .parse()
                .unwrap();
            let err = import_base(&r, &amd64()).unwrap_err();
            assert!(
                matches!(err, OciError::DigestMismatch { .. }),
                "{name}: {err}"
            );
            // Unverified (`strata diff`), the layers are described from
            // their names or diffIDs, unread.
            let image = import_unverified(&r, None).unwrap();
            assert_eq!(image.layers[1].descriptor.digest, Digest::of(&upper));
            assert_eq!(image.layers[1].descriptor.size, bad.len() as u64);
            assert_eq!(image_platforms(&r).unwrap(), (None, Vec::new()));
        }
    }

    /// An OCI layout with a two-platform index tagged `v1`.
    pub(crate) fn multi_platform_layout(root: &Path) -> (Vec<u8>, Vec<u8>) {
        let (lower, upper) = layers();
        let dir = OciDir::create(root).unwrap();
        let mut manifests = Vec::new();
        for arch in ["amd64", "arm64"] {
            let l = dir.write_blob(&gzip(&lower)).unwrap();
            let u = dir.write_blob(&upper).unwrap();
            let c = dir
                .write_blob(&config(&[Digest::of(&lower), Digest::of(&upper)], arch))
                .unwrap();
            let m = build_manifest(
                Descriptor::new(media::CONFIG, c.digest, c.size),
                vec![
                    Descriptor::new(media::DOCKER_LAYER_GZIP, l.digest, l.size),
                    Descriptor::new(media::LAYER_TAR, u.digest, u.size),
                ],
            );
            let m = dir.write_json_blob(&m).unwrap();
            let mut d = Descriptor::new(media::MANIFEST, m.digest, m.size);
            d.platform = Some(Platform::parse(&format!("linux/{arch}")).unwrap());
            manifests.push(d);
        }
        let index = ImageIndex {
            manifests,
            ..ImageIndex::default()
        };
        let i = dir.write_json_blob(&index).unwrap();
        dir.set_tag(&Descriptor::new(media::INDEX, i.digest, i.size), "v1")
            .unwrap();
        (lower, upper)
    }

    #[test]
    fn reads_oci_layout_and_archive_selecting_the_platform() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("layout");
        let (lower, upper) = multi_platform_layout(&root);
        let arm = Platform::parse("linux/arm64/v8").unwrap();
        let r: ImageRef = format!("oci-layout:{}:v1", root.display()).parse().unwrap();
        let image = import_base(&r, &arm).unwrap();
        check_image(&image, &lower, &upper);
        assert_eq!(image.platform.architecture, "arm64");
        assert_eq!(image.layers[0].descriptor.media_type, media::LAYER_GZIP);
        let s390 = Platform::parse("linux/s390x").unwrap();
        let err = import_base(&r, &s390).unwrap_err();
        assert!(
            err.to_string().contains("linux/amd64, linux/arm64"),
            "{err}"
        );
        let r: ImageRef = format!("oci-layout:{}:v2", root.display()).parse().unwrap();
        assert!(matches!(
            import_base(&r, &arm),
            Err(OciError::TagNotFound { .. })
        ));

        // The same layout as a tar.
        let mut files: Vec<(String, Vec<u8>)> = vec![
            (
                "index.json".into(),
                fs_err::read(root.join("index.json")).unwrap(),
            ),
            (
                "oci-layout".into(),
                fs_err::read(root.join("oci-layout")).unwrap(),
            ),
        ];
        for e in fs_err::read_dir(root.join("blobs/sha256")).unwrap() {
            let e = e.unwrap();
            let name = format!("blobs/sha256/{}", e.file_name().to_string_lossy());
            files.push((name, fs_err::read(e.path()).unwrap()));
        }
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, b)| (n.as_str(), b.as_slice()))
            .collect();
        let file = write(tmp.path(), "layout.tar", &tar_of(&refs));
        let r: ImageRef = format!("oci-archive:{}", file.display()).parse().unwrap();
        let from_archive = import_base(&r, &arm).unwrap();
        assert_eq!(from_archive.config_digest, image.config_digest);
        assert_eq!(from_archive.manifest_digest, image.manifest_digest);
    }

    #[test]
    fn same_references() {
        assert!(same_reference("docker.io/library/base", "base:latest"));
        assert!(!same_reference("base:1", "base:2"));
    }
}
