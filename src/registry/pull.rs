//! Registry bases: resolve a reference to its index and per-platform
//! manifest digests (what `strata lock` pins, docs/design.md §5), and fetch one
//! platform's image into the cache root, verified, content-addressed.
//!
//! Blobs go to the cache root's `blobs/sha256/` (the same store as strata's
//! layers; each is written to a temp file, checked against its digest and
//! size, then renamed). Each fetched manifest gets a small OCI layout
//! `registry/images/<manifest hex>/` whose `blobs` is a symlink to that
//! store, so the embedded builder imports it like any `oci-layout:` base and
//! verifies it again. A build with a pinned digest whose blobs are all
//! present makes no request at all.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use oci_client::{Reference, RegistryOperation};

use super::{Registry, RegistryError, Result};
use crate::oci::Digest;
use crate::oci::blob::BlobWriter;
use crate::oci::image::{Descriptor, ImageIndex, ImageManifest, media};
use crate::oci::layout::OciDir;
use crate::spec::Platform;

/// The media types strata accepts for a manifest or index.
pub(crate) const ACCEPTED: [&str; 4] = [
    media::INDEX,
    media::MANIFEST,
    media::DOCKER_LIST,
    media::DOCKER_MANIFEST,
];

/// A reference resolved against its registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// The digest of what the reference names (an index or a manifest).
    pub(crate) digest: Digest,
    /// Per platform, the manifest digest. A single manifest is listed under
    /// the platform its config declares.
    pub(crate) platforms: BTreeMap<Platform, Digest>,
}

impl Resolved {
    /// The platforms it has, for messages: `linux/amd64, linux/arm64`.
    pub(crate) fn platform_list(&self) -> String {
        self.platforms
            .keys()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The manifest digest for `wanted`: the entry listed under exactly that
    /// platform, else the first whose platform satisfies it
    /// ([`Platform::satisfies`]: `linux/arm64` finds `linux/arm64/v8`).
    pub(crate) fn manifest_for(&self, wanted: &Platform) -> Option<&Digest> {
        self.platforms.get(wanted).or_else(|| {
            self.platforms
                .iter()
                .find(|(p, _)| p.satisfies(wanted))
                .map(|(_, d)| d)
        })
    }
}

/// Resolves `r`: fetches its index or manifest (verifying a digest the
/// reference names) and lists the platforms.
pub(crate) fn resolve(reg: &Registry, r: &Reference) -> Result<Resolved> {
    reg.login(r, RegistryOperation::Pull)?;
    let (bytes, media_type) = reg.get_manifest(r, &ACCEPTED)?;
    let digest = Digest::of(&bytes);
    if let Some(want) = r.digest()
        && want != digest.to_string()
    {
        return Err(RegistryError::DigestMismatch {
            registry: reg.host().to_owned(),
            what: format!("manifest {}", r.whole()),
            expected: want.to_owned(),
            found: digest.to_string(),
        });
    }
    let invalid = |reason: String| RegistryError::InvalidImage {
        registry: reg.host().to_owned(),
        reference: r.whole(),
        reason,
    };
    let kind = media_type_of(&bytes, &media_type);
    let mut platforms = BTreeMap::new();
    if kind == media::INDEX || kind == media::DOCKER_LIST {
        let index: ImageIndex =
            serde_json::from_slice(&bytes).map_err(|e| invalid(format!("bad index: {e}")))?;
        for m in &index.manifests {
            // Attestation manifests are listed as unknown/unknown.
            if let Some(p) = &m.platform
                && p.os != "unknown"
            {
                platforms.entry(p.clone()).or_insert_with(|| m.digest);
            }
        }
    } else if kind == media::MANIFEST || kind == media::DOCKER_MANIFEST {
        let manifest: ImageManifest =
            serde_json::from_slice(&bytes).map_err(|e| invalid(format!("bad manifest: {e}")))?;
        let config = config_blob(reg, r, &manifest.config.digest, manifest.config.size)?;
        let p: Platform =
            serde_json::from_slice(&config).map_err(|e| invalid(format!("bad config: {e}")))?;
        platforms.insert(p, digest);
    } else {
        return Err(invalid(format!("unsupported media type `{kind}`")));
    }
    Ok(Resolved { digest, platforms })
}

/// The manifest's media type: the body's `mediaType`, else the header's.
fn media_type_of(bytes: &[u8], header: &str) -> String {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| {
            v.get("mediaType")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| header.split(';').next().unwrap_or("").trim().to_owned())
}

/// `r`'s repository at `digest`.
fn repo_ref(r: &Reference, digest: &Digest) -> Reference {
    Reference::with_digest(
        r.resolve_registry().to_owned(),
        r.repository().to_owned(),
        digest.to_string(),
    )
}

/// The layout directory of a fetched manifest in the cache root.
pub(crate) fn image_dir(cache_root: &Path, manifest: &Digest) -> PathBuf {
    cache_root.join("registry/images").join(manifest.hex())
}

/// Makes the image with manifest `manifest` (from `r`'s repository)
/// available as an OCI layout in the cache root and returns its directory.
/// `connect` is called only when a blob is missing locally.
pub(crate) fn fetch_image<'a>(
    connect: &mut dyn FnMut() -> Result<&'a Registry>,
    r: &Reference,
    manifest: &Digest,
    cache_root: &Path,
) -> Result<PathBuf> {
    let store = cache_root.join("blobs/sha256");
    let io = |path: &Path, e: std::io::Error| RegistryError::Io {
        path: path.to_owned(),
        source: e,
    };
    fs_err::create_dir_all(&store).map_err(|e| io(&store, e))?;
    let have = |d: &Digest| store.join(d.hex()).is_file();
    if !have(manifest) {
        let bytes = manifest_blob(connect()?, r, manifest)?;
        let mut w = BlobWriter::new(&store)?;
        w.write_all(&bytes).map_err(|e| io(&store, e))?;
        w.complete_verified(manifest, Some(bytes.len() as u64))?;
    }
    let mut fetch = |d: &Digest, size: Option<u64>| -> Result<()> {
        if have(d) {
            return Ok(());
        }
        let reg = connect()?;
        let mut writer: Option<BlobWriter> = None;
        reg.get_blob(
            &repo_ref(r, d),
            &d.to_string(),
            size.unwrap_or(0),
            &mut |chunk| {
                match chunk {
                    // A new attempt: drop the partial temp file, start over.
                    None => writer = Some(BlobWriter::new(&store).map_err(std::io::Error::other)?),
                    Some(c) => writer.as_mut().expect("started").write_all(c)?,
                }
                Ok(())
            },
        )?;
        writer
            .expect("get_blob called the writer")
            .complete_verified(d, size)?;
        Ok(())
    };
    let mpath = store.join(manifest.hex());
    let bytes = fs_err::read(&mpath).map_err(|e| io(&mpath, e))?;
    let parsed: ImageManifest =
        serde_json::from_slice(&bytes).map_err(|e| RegistryError::InvalidImage {
            registry: r.resolve_registry().to_owned(),
            reference: format!("{}@{manifest}", r.repository()),
            reason: format!("not an image manifest: {e}"),
        })?;
    fetch(&parsed.config.digest, Some(parsed.config.size))?;
    for l in &parsed.layers {
        fetch(&l.digest, Some(l.size))?;
    }
    let dir = image_dir(cache_root, manifest);
    if !dir.join("index.json").is_file() {
        let parent = dir.parent().expect("images dir");
        fs_err::create_dir_all(parent).map_err(|e| io(parent, e))?;
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempdir_in(parent)
            .map_err(|e| io(parent, e))?;
        let link = tmp.path().join("blobs");
        std::os::unix::fs::symlink("../../../blobs", &link).map_err(|e| io(&link, e))?;
        let layout = OciDir::create(tmp.path())?;
        let mut index = ImageIndex::default();
        let kind = media_type_of(&bytes, media::MANIFEST);
        index
            .manifests
            .push(Descriptor::new(&kind, *manifest, bytes.len() as u64));
        layout.write_index(&index)?;
        let tmp = tmp.keep();
        if let Err(e) = fs_err::rename(&tmp, &dir) {
            let _ = fs_err::remove_dir_all(&tmp);
            // Another build put it there first: as good as ours.
            if !dir.join("index.json").is_file() {
                return Err(io(&dir, e));
            }
        }
    }
    Ok(dir)
}

/// The manifest `digest` of the image `r` names (from the manifests
/// endpoint, by digest), in memory, verified.
fn manifest_blob(reg: &Registry, r: &Reference, digest: &Digest) -> Result<Vec<u8>> {
    let (bytes, _) = reg.get_manifest(&repo_ref(r, digest), &ACCEPTED)?;
    verify(reg, || format!("manifest of {}", r.whole()), &bytes, digest)?;
    Ok(bytes)
}

/// The config blob `digest` of the image `r` names, in memory, verified.
fn config_blob(reg: &Registry, r: &Reference, digest: &Digest, size: u64) -> Result<Vec<u8>> {
    let mut config = Vec::new();
    reg.get_blob(
        &repo_ref(r, digest),
        &digest.to_string(),
        size,
        &mut |chunk| {
            match chunk {
                None => config.clear(),
                Some(c) => config.extend_from_slice(c),
            }
            Ok(())
        },
    )?;
    verify(reg, || format!("config of {}", r.whole()), &config, digest)?;
    Ok(config)
}

/// `bytes` have the digest `expected`, else a mismatch naming `what`.
fn verify(
    reg: &Registry,
    what: impl FnOnce() -> String,
    bytes: &[u8],
    expected: &Digest,
) -> Result<()> {
    let found = Digest::of(bytes);
    if found != *expected {
        return Err(RegistryError::DigestMismatch {
            registry: reg.host().to_owned(),
            what: what(),
            expected: expected.to_string(),
            found: found.to_string(),
        });
    }
    Ok(())
}

/// The config of the image `r` names for `platform` (an index is resolved
/// to that platform's manifest); manifest and config are verified. Layers
/// are not fetched: `strata plan --against registry:REF` reads only the
/// history.
pub(crate) fn fetch_config(
    reg: &Registry,
    r: &Reference,
    platform: &Platform,
) -> Result<serde_json::Value> {
    let resolved = resolve(reg, r)?;
    let manifest = resolved
        .manifest_for(platform)
        .ok_or_else(|| RegistryError::InvalidImage {
            registry: reg.host().to_owned(),
            reference: r.whole(),
            reason: format!(
                "no image for {platform}; it has: {}",
                resolved.platform_list()
            ),
        })?;
    let bytes = manifest_blob(reg, r, manifest)?;
    let parsed: ImageManifest =
        serde_json::from_slice(&bytes).map_err(|e| RegistryError::InvalidImage {
            registry: reg.host().to_owned(),
            reference: r.whole(),
            reason: format!("not an image manifest: {e}"),
        })?;
    let config = config_blob(reg, r, &parsed.config.digest, parsed.config.size)?;
    serde_json::from_slice(&config).map_err(|e| RegistryError::InvalidImage {
        registry: reg.host().to_owned(),
        reference: r.whole(),
        reason: format!("bad config: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_come_from_the_body_else_the_header() {
        let index = br#"{"mediaType":"application/vnd.oci.image.index.v1+json"}"#;
        assert_eq!(media_type_of(index, "application/json"), media::INDEX);
        assert_eq!(
            media_type_of(
                b"{}",
                "application/vnd.docker.distribution.manifest.v2+json; charset=utf-8"
            ),
            media::DOCKER_MANIFEST
        );
        assert_eq!(media_type_of(b"not json", ""), "");
    }

    #[test]
    fn digests_address_the_repository_and_the_cache() {
        let r: Reference = "localhost:5000/team/app:v1".parse().unwrap();
        let d = Digest::of(b"manifest");
        let at = repo_ref(&r, &d);
        assert_eq!(at.whole(), format!("localhost:5000/team/app@{d}"));
        assert_eq!(
            image_dir(Path::new("/cache"), &d),
            Path::new("/cache/registry/images").join(d.hex())
        );
    }

    /// A platform is found under itself first, then by the one normalizing
    /// match ([`Platform::satisfies`]).
    #[test]
    fn manifests_are_found_by_platform() {
        let p = |s: &str| Platform::parse(s).unwrap();
        let (arm, v8, v7) = (Digest::of(b"arm"), Digest::of(b"v8"), Digest::of(b"v7"));
        let resolved = Resolved {
            digest: Digest::of(b"index"),
            platforms: [
                (p("linux/arm/v7"), v7),
                (p("linux/arm64"), arm),
                (p("linux/arm64/v8"), v8),
            ]
            .into(),
        };
        assert_eq!(resolved.manifest_for(&p("linux/arm64/v8")), Some(&v8));
        assert_eq!(resolved.manifest_for(&p("linux/arm64")), Some(&arm));
        assert_eq!(resolved.manifest_for(&p("linux/arm")), Some(&v7));
        assert_eq!(resolved.manifest_for(&p("linux/arm/v6")), None);
        assert_eq!(resolved.manifest_for(&p("linux/amd64")), None);
        assert_eq!(
            resolved.platform_list(),
            "linux/arm/v7, linux/arm64, linux/arm64/v8"
        );
    }
}
