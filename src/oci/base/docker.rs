//! `docker save` archives (`manifest.json`, legacy `<id>/layer.tar`).

use super::layers::{describe_layer, diff_ids, verify_layer};
use super::*;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestItem {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// `NAME` and `NAME:latest`, with and without `docker.io/library/`, match.
pub(super) fn same_reference(a: &str, b: &str) -> bool {
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

pub(super) fn import_docker(
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
