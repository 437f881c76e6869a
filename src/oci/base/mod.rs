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

mod container;
mod docker;
mod layers;
mod layout;
mod paths;
#[cfg(test)]
pub(crate) mod tests;

use container::Container;
use docker::import_docker;
pub use layers::{Packing, sniff};
use layout::{import_layout, layout_candidates};
pub use paths::{BasePath, base_paths};

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
