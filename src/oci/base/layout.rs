//! OCI layouts and archives: the index's candidates for a tag, the
//! manifest for a platform, and the layers it lists.

use super::layers::{diff_ids, oci_layer_type, verify_layer};
use super::*;

/// The descriptors of a layout's `index.json` that `tag` selects (all of
/// them without a tag); never empty.
pub(super) fn layout_candidates(
    c: &Container,
    location: &str,
    tag: Option<&str>,
) -> Result<Vec<Descriptor>> {
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

pub(super) fn import_layout(
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
