//! Pushing an image from an OCI layout: blobs the repository lacks (HEAD
//! first; a cross-repository mount when another repository of the registry
//! is known to hold the blob; else a chunked upload), the config, and the
//! manifest last, under its tag. A push that fails before the manifest
//! leaves the tag where it was: the registry moves a tag only when it
//! accepts a whole manifest whose blobs it has.

use std::path::PathBuf;
use std::sync::Arc;

use oci_client::{Reference, RegistryOperation};

use super::known::KnownRepos;
use super::{Registry, RegistryError, Result, Upload};
use crate::oci::Digest;
use crate::oci::image::{Descriptor, ImageManifest};
use crate::oci::layout::OciDir;

/// One blob to push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PushBlob {
    /// What it is, for messages: a layer ID, `base layer N` or `config`.
    pub(crate) what: String,
    /// Its digest.
    pub(crate) digest: Digest,
    /// Its size.
    pub(crate) size: u64,
    /// The file holding it.
    pub(crate) path: PathBuf,
}

/// What a push did with a blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum BlobAction {
    /// The repository had it (HEAD answered 200).
    Exists,
    /// Mounted from another repository of the same registry.
    Mounted {
        /// The repository it came from.
        from: String,
    },
    /// Uploaded.
    Uploaded,
}

impl BlobAction {
    /// `exists`, `mounted` or `uploaded`.
    pub(crate) fn word(&self) -> &'static str {
        match self {
            Self::Exists => "exists",
            Self::Mounted { .. } => "mounted",
            Self::Uploaded => "uploaded",
        }
    }
}

/// Progress callbacks of a push (the CLI prints lines and bars).
pub(crate) trait Observer {
    /// A blob upload starts; the returned function gets the bytes sent so far.
    fn uploading(&self, blob: &PushBlob) -> Arc<dyn Fn(u64) + Send + Sync>;
    /// A blob is in the repository.
    fn done(&self, blob: &PushBlob, action: &BlobAction);
}

/// A finished push.
#[derive(Clone, Debug)]
pub(crate) struct Pushed {
    /// The manifest digest.
    pub(crate) digest: Digest,
    /// Per blob, in push order (layers, then config).
    pub(crate) blobs: Vec<(PushBlob, BlobAction)>,
}

/// The blobs of the manifest `desc` in `layout`, layers first, then the
/// config; and the manifest's bytes. `names` label the layers (bottom
/// first; missing names read `layer N`).
pub(crate) fn image_blobs(
    layout: &OciDir,
    desc: &Descriptor,
    names: &[String],
) -> Result<(Vec<PushBlob>, Vec<u8>)> {
    let path = layout.blob_path(&desc.digest);
    let bytes = fs_err::read(&path).map_err(|e| RegistryError::Io {
        path: path.clone(),
        source: e,
    })?;
    let manifest: ImageManifest =
        serde_json::from_slice(&bytes).map_err(|e| RegistryError::InvalidImage {
            registry: "local".into(),
            reference: path.display().to_string(),
            reason: format!("not an image manifest: {e}"),
        })?;
    let mut blobs: Vec<PushBlob> = manifest
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| PushBlob {
            what: names
                .get(i)
                .cloned()
                .unwrap_or_else(|| format!("layer {}", i + 1)),
            digest: l.digest,
            size: l.size,
            path: layout.blob_path(&l.digest),
        })
        .collect();
    blobs.push(PushBlob {
        what: "image config".into(),
        digest: manifest.config.digest,
        size: manifest.config.size,
        path: layout.blob_path(&manifest.config.digest),
    });
    Ok((blobs, bytes))
}

/// Pushes `blobs` and then `manifest` (of `media_type`) to `target`.
pub(crate) fn push_image(
    reg: &Registry,
    target: &Reference,
    blobs: &[PushBlob],
    manifest: &[u8],
    media_type: &str,
    known: &mut KnownRepos,
    observer: &dyn Observer,
) -> Result<Pushed> {
    reg.login(target, RegistryOperation::Push)?;
    let result =
        push_blobs_then_manifest(reg, target, blobs, manifest, media_type, known, observer);
    // What the registry holds now is worth remembering even after a failure.
    known.save();
    result
}

fn push_blobs_then_manifest(
    reg: &Registry,
    target: &Reference,
    blobs: &[PushBlob],
    manifest: &[u8],
    media_type: &str,
    known: &mut KnownRepos,
    observer: &dyn Observer,
) -> Result<Pushed> {
    let repo = target.repository().to_owned();
    // First what the repository has or can mount, in order; then the
    // uploads, several at a time.
    let mut actions: Vec<Option<BlobAction>> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut unique = Vec::new();
    for b in blobs {
        // Each blob once (a base and a strata layer can share a digest).
        if !seen.insert(b.digest) {
            continue;
        }
        let digest = &b.digest.to_string();
        let action = if reg.blob_exists(target, digest)? {
            Some(BlobAction::Exists)
        } else {
            known
                .sources(digest, &repo)
                .into_iter()
                .take(3)
                .find(|from| {
                    let source =
                        Reference::with_tag(reg.host().to_owned(), from.clone(), "latest".into());
                    reg.mount_blob(target, &source, digest)
                })
                .map(|from| BlobAction::Mounted { from })
        };
        if let Some(a) = &action {
            known.add(digest, &repo);
            observer.done(b, a);
        }
        actions.push(action);
        unique.push(b);
    }
    let uploads: Vec<Upload> = unique
        .iter()
        .zip(&actions)
        .filter(|(_, a)| a.is_none())
        .map(|(b, _)| Upload {
            digest: b.digest.to_string(),
            size: b.size,
            path: b.path.clone(),
            progress: observer.uploading(b),
        })
        .collect();
    let mut results = reg.upload_blobs(target, &uploads).into_iter();
    let mut done = Vec::new();
    for (b, a) in unique.into_iter().zip(actions) {
        let a = match a {
            Some(a) => a,
            None => {
                results.next().expect("one result per upload")?;
                known.add(&b.digest.to_string(), &repo);
                observer.done(b, &BlobAction::Uploaded);
                BlobAction::Uploaded
            }
        };
        done.push((b.clone(), a));
    }
    let digest = Digest::of(manifest);
    if let Some(d) = target.digest()
        && d != digest.to_string()
    {
        return Err(RegistryError::InvalidImage {
            registry: reg.host().to_owned(),
            reference: target.whole(),
            reason: format!(
                "the image's manifest digest is {digest}, not the one the reference names"
            ),
        });
    }
    reg.put_manifest(target, manifest, media_type)?;
    Ok(Pushed {
        digest,
        blobs: done,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::image::{build_manifest, media};

    /// The blobs pushed for an image: layers bottom first with their names
    /// (or `layer N`), then the config, each at its blob path; the manifest
    /// bytes as stored (its digest is the image's).
    #[test]
    fn image_blobs_lists_layers_then_config() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = OciDir::create(tmp.path()).unwrap();
        let l1 = layout.write_blob(b"layer one").unwrap();
        let l2 = layout.write_blob(b"layer two").unwrap();
        let config = layout.write_blob(b"{}").unwrap();
        let manifest = build_manifest(
            Descriptor::new(media::CONFIG, config.digest, config.size),
            vec![
                Descriptor::new(media::LAYER_TAR, l1.digest, l1.size),
                Descriptor::new(media::LAYER_TAR, l2.digest, l2.size),
            ],
        );
        let stored = layout.write_json_blob(&manifest).unwrap();
        let desc = Descriptor::new(media::MANIFEST, stored.digest, stored.size);
        let (blobs, bytes) = image_blobs(&layout, &desc, &["models".to_string()]).unwrap();
        let listed: Vec<(&str, Digest, u64)> = blobs
            .iter()
            .map(|b| (b.what.as_str(), b.digest, b.size))
            .collect();
        assert_eq!(
            listed,
            [
                ("models", l1.digest, 9),
                ("layer 2", l2.digest, 9),
                ("image config", config.digest, 2),
            ]
        );
        assert!(blobs.iter().all(|b| b.path == layout.blob_path(&b.digest)));
        assert_eq!(Digest::of(&bytes), desc.digest);
        // A config blob is no manifest: an input error naming the blob.
        let not_manifest = Descriptor::new(media::MANIFEST, config.digest, config.size);
        let err = image_blobs(&layout, &not_manifest, &[]).unwrap_err();
        assert!(err.to_string().contains("not an image manifest"), "{err}");
    }
}
