//! The embedded builder: a planned spec → an OCI image, no daemon.
//!
//! Steps: import the base (verified), check the layer budget (docs/design.md §6),
//! read the base's metadata for every ancestor directory (docs/design.md §1),
//! take each layer from the layer cache by its key or write it (in
//! parallel), assemble config and manifest, write the output, and leave the
//! build record (docs/design.md §5).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::base::{BaseImage, BasePath, ImageRef, base_paths, import_base};
use super::cache::{CachedLayer, LayerCache, hex_id};
use super::compress::{Compression, blob_key, write_layer};
use super::error::{OciError, Result};
use super::image::{
    Descriptor, Healthcheck, HistoryEntry, ImageSettings, build_config, check_layer_budget, rfc3339,
};
use super::layout::{OciDir, write_image};
use crate::plan::Digest;
use crate::plan::beneath::fstat_file;
use crate::plan::graph::{BaseDirs, BaseEntry, base_queries, layer_entries, layer_key};
use crate::plan::record::{self, Record};
use crate::plan::{Plan, PlannedKind, PlannedLayer};
use crate::spec::{BaseRef, ResolvedSpec};

/// What to build and where.
#[derive(Debug, Clone)]
pub struct BuildRequest<'a> {
    /// The spec, resolved for one platform.
    pub spec: &'a ResolvedSpec,
    /// Its plan (copy layers only).
    pub plan: &'a Plan,
    /// Where the image goes.
    pub output: ImageRef,
    /// The cache root (docs/design.md §5).
    pub cache_root: PathBuf,
    /// `SOURCE_DATE_EPOCH`: sets `created` and history times, never a layer.
    pub source_date_epoch: Option<u64>,
    /// Layer compression.
    pub compression: Compression,
    /// Where a registry base (`from = "REF"`) was fetched to by the caller
    /// (`registry::pull`); `None` for other bases.
    pub registry_base: Option<ImageRef>,
    /// Annotations asked for (`--annotation`), over the base annotations.
    pub annotations: ImageAnnotations,
}

/// Annotations of the image manifest and of its descriptor (in the layout's
/// `index.json`, an archive's, or a pushed index).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageAnnotations {
    /// In the manifest (part of its digest).
    pub manifest: BTreeMap<String, String>,
    /// On the manifest's descriptor.
    pub descriptor: BTreeMap<String, String>,
}

/// `org.opencontainers.image.base.name`.
pub const BASE_NAME: &str = "org.opencontainers.image.base.name";
/// `org.opencontainers.image.base.digest`.
pub const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";

/// The OCI base annotations of an image built on `base`: the base's manifest
/// digest, and for a registry base its fully qualified reference without
/// the digest (`docker.io/library/python:3.12-slim`). A local base has no
/// reference to name (a path is not one), scratch none at all.
pub fn base_annotations(spec: &ResolvedSpec, base: &BaseImage) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let BaseRef::Registry(r) = &spec.image.from
        && let Ok(r) = r.parse::<oci_client::Reference>()
    {
        let name = format!("{}/{}", r.registry(), r.repository());
        let name = match r.tag() {
            Some(t) => format!("{name}:{t}"),
            None => name,
        };
        out.insert(BASE_NAME.to_owned(), name);
    }
    if let Some(d) = &base.manifest_digest {
        out.insert(BASE_DIGEST.to_owned(), d.to_string());
    }
    out
}

/// What happened to one layer.
#[derive(Debug, Clone)]
pub struct LayerOutcome {
    /// Layer ID.
    pub id: String,
    /// Taken from the cache without reading its inputs.
    pub reused: bool,
    /// The layer key.
    pub key: String,
    /// The blob.
    pub layer: CachedLayer,
}

/// A finished build.
#[derive(Debug, Clone)]
pub struct BuildOutcome {
    /// The manifest written.
    pub manifest: Descriptor,
    /// Per layer, in image order.
    pub layers: Vec<LayerOutcome>,
    /// Cache warnings (corrupt records ignored).
    pub warnings: Vec<String>,
}

/// The last build of a context/spec/target/platform (docs/design.md §5).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildRecord {
    /// `strata.record/v1`.
    pub schema: String,
    /// The manifest digest.
    pub manifest: String,
    /// Where it was written.
    pub output: String,
    /// Per layer.
    pub layers: Vec<RecordLayer>,
}

/// One layer of a [`BuildRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordLayer {
    /// Layer ID.
    pub id: String,
    /// Input digest.
    pub inputs: String,
    /// Layer key.
    pub key: String,
    /// Input bytes.
    pub size: u64,
    /// Input files.
    pub files: usize,
    /// Blob digest.
    pub digest: String,
}

/// The record name of a build: context, spec, target and platform.
pub fn record_name(spec: &ResolvedSpec) -> String {
    hex_id(&[
        &spec.context.to_string_lossy(),
        &spec.source.path().to_string_lossy(),
        spec.target.as_deref().unwrap_or(""),
        &spec.platform.to_string(),
    ])
}

/// Converts the spec's base reference into an image location (paths are
/// relative to the context).
pub fn base_location(spec: &ResolvedSpec) -> Result<Option<ImageRef>> {
    let at = |p: &Path| spec.context.join(p);
    Ok(match &spec.image.from {
        BaseRef::Scratch => None,
        BaseRef::Local(r) => Some(r.map_path(at)),
        BaseRef::Registry(r) => {
            return Err(OciError::Unsupported {
                what: "base image",
                value: r.clone(),
                location: "the embedded builder reads bases from oci-layout:, oci-archive: or docker-archive: (save a registry image with `skopeo copy docker://REF oci-archive:base.tar`), or build with `docker buildx build`".into(),
            });
        }
    })
}

/// Imports the base for the spec's platform.
pub fn load_base(spec: &ResolvedSpec) -> Result<Option<BaseImage>> {
    load_base_from(spec, None)
}

/// Imports the base for the spec's platform; a registry base is read from
/// `registry_base`, where the caller fetched it.
pub fn load_base_from(
    spec: &ResolvedSpec,
    registry_base: Option<&ImageRef>,
) -> Result<Option<BaseImage>> {
    if let (BaseRef::Registry(r), Some(loc)) = (&spec.image.from, registry_base) {
        let mut base = import_base(loc, &spec.platform)?;
        base.location = r.clone();
        return Ok(Some(base));
    }
    let Some(loc) = base_location(spec)? else {
        return Ok(None);
    };
    Ok(Some(import_base(&loc, &spec.platform)?))
}

/// The base's metadata for every directory the plan's copy layers need.
pub fn base_dirs(spec: &ResolvedSpec, base: Option<&BaseImage>, plan: &Plan) -> Result<BaseDirs> {
    let mut queries: Vec<String> = Vec::new();
    for l in &plan.layers {
        if let Some(copy) = copy_of(spec, l) {
            queries.extend(base_queries(copy));
        }
    }
    queries.sort();
    queries.dedup();
    let mut out = BaseDirs::new();
    let Some(base) = base else {
        return Ok(out);
    };
    let paths: Vec<Vec<u8>> = queries
        .iter()
        .map(|q| q.trim_start_matches('/').as_bytes().to_vec())
        .collect();
    for (path, found) in base_paths(&base.layers, &paths)? {
        let key = format!("/{}", String::from_utf8_lossy(&path));
        out.insert(
            key,
            match found {
                BasePath::Absent => BaseEntry::Absent,
                BasePath::Dir { mode, uid, gid } => BaseEntry::Dir { mode, uid, gid },
                BasePath::Symlink { target } => BaseEntry::Symlink {
                    target: String::from_utf8_lossy(&target).into_owned(),
                },
                BasePath::Other => BaseEntry::Other,
            },
        );
    }
    Ok(out)
}

/// The spec's copy layer a planned layer comes from.
fn copy_of<'a>(spec: &'a ResolvedSpec, l: &PlannedLayer) -> Option<&'a crate::spec::CopyLayer> {
    match &spec.layers.get(l.spec_index)?.kind {
        crate::spec::LayerKind::Copy(c) => Some(c),
        crate::spec::LayerKind::Run(_) => None,
    }
}

/// The key of each copy layer (docs/design.md §1), in plan order.
pub fn layer_keys(spec: &ResolvedSpec, plan: &Plan, base: &BaseDirs) -> Vec<Option<Digest>> {
    plan.layers
        .iter()
        .map(|l| match &l.kind {
            PlannedKind::Copy { owner, .. } => {
                let queries = copy_of(spec, l).map(base_queries).unwrap_or_default();
                Some(layer_key(
                    &l.inputs,
                    *owner,
                    spec.image.timestamp,
                    base,
                    &queries,
                ))
            }
            PlannedKind::Run { .. } => None,
        })
        .collect()
}

/// What a build reports as it goes, for progress displays. Layers are
/// written in parallel: the calls come from worker threads, in completion
/// order; `index` is the layer's position in the plan.
pub trait BuildObserver: Sync {
    /// Layer `index` is not in the cache: it is being written now.
    fn writing(&self, _index: usize, _layer: &PlannedLayer) {}
    /// Layer `index` is done: taken from the cache or written.
    fn done(&self, _index: usize, _layer: &PlannedLayer, _outcome: &LayerOutcome) {}
}

/// Observes nothing.
impl BuildObserver for () {}

/// Builds the image.
pub fn build(req: &BuildRequest<'_>) -> Result<BuildOutcome> {
    build_observed(req, &())
}

/// Builds the image, telling `observer` about each layer.
pub fn build_observed(
    req: &BuildRequest<'_>,
    observer: &dyn BuildObserver,
) -> Result<BuildOutcome> {
    let spec = req.spec;
    if let Some(stage) = spec.stages.first() {
        // Checked before anything is written (docs/design.md §8).
        return Err(OciError::Unsupported {
            what: "build stage",
            value: stage.name.clone(),
            location: "build stages need BuildKit: build with `docker buildx build`".into(),
        });
    }
    let cache = LayerCache::open(&req.cache_root)?;
    let base = load_base_from(spec, req.registry_base.as_ref())?;
    let base_layers = base.as_ref().map_or(0, |b| b.layers.len());
    check_layer_budget(base_layers, req.plan.layers.len())?;
    let dirs = base_dirs(spec, base.as_ref(), req.plan)?;
    let keys = layer_keys(spec, req.plan, &dirs);
    let comps: Vec<Compression> = req
        .plan
        .layers
        .iter()
        .map(|l| layer_compression(spec, l, req.compression))
        .collect();

    // Every layer: from the cache by key, else written (in parallel).
    let results: Vec<Result<(LayerOutcome, Vec<String>)>> = req
        .plan
        .layers
        .par_iter()
        .enumerate()
        .zip(keys.par_iter())
        .zip(comps.par_iter())
        .map(|(((index, layer), key), comp)| {
            let key = key.as_ref().ok_or_else(|| run_layer_error(layer))?;
            let mut warnings = Vec::new();
            // The blob's cache key: the layer key, plus an explicit
            // compression choice (oci::compress::blob_key).
            let bkey = blob_key(key, *comp);
            if let Some(hit) = cache.get(&bkey.hex(), &mut warnings) {
                let outcome = LayerOutcome {
                    id: layer.id.clone(),
                    reused: true,
                    key: key.to_string(),
                    layer: hit,
                };
                observer.done(index, layer, &outcome);
                return Ok((outcome, warnings));
            }
            let PlannedKind::Copy { files, owner } = &layer.kind else {
                return Err(run_layer_error(layer));
            };
            observer.writing(index, layer);
            let entries = layer_entries(&layer.id, files, *owner, spec.image.timestamp, &dirs)?;
            let blob = write_layer(&entries, &cache.blobs_dir(), *comp)?;
            let stored = cache.put(&bkey.hex(), &blob)?;
            let outcome = LayerOutcome {
                id: layer.id.clone(),
                reused: false,
                key: key.to_string(),
                layer: stored,
            };
            observer.done(index, layer, &outcome);
            Ok((outcome, warnings))
        })
        .collect();
    let mut layers = Vec::new();
    let mut warnings = Vec::new();
    for r in results {
        let (l, w) = r?;
        layers.push(l);
        warnings.extend(w);
    }

    // Assemble in a working layout: the output layout itself (locked, and
    // undone on failure: super::output), or a temp one.
    let tmp;
    let mut output = None;
    let work = match &req.output {
        ImageRef::OciLayout { path, .. } => output
            .insert(super::output::LayoutWrite::begin(path)?)
            .layout()
            .clone(),
        _ => {
            tmp = tempfile::Builder::new()
                .prefix("build-")
                .tempdir_in(cache.root().join("tmp"))
                .map_err(|e| OciError::Io {
                    path: cache.root().join("tmp"),
                    source: e,
                })?;
            OciDir::create(tmp.path())?
        }
    };
    let mut descriptors = Vec::new();
    let verified = cache.verified();
    // Verified-stat records are kept for output layouts only: an archive's
    // working layout is deleted when the build ends.
    let lasting = matches!(req.output, ImageRef::OciLayout { .. });
    if let Some(b) = &base {
        for l in &b.layers {
            let d = &l.descriptor;
            // An existing blob is kept only when it checks out (a corrupt
            // one of the right size is replaced).
            if !verified.check(&work.blob_path(&d.digest), &d.digest, d.size)? {
                work.copy_blob(&d.digest, d.size, l.open()?)?;
                if lasting {
                    verified.record(&work.blob_path(&d.digest), &d.digest);
                }
            }
            descriptors.push(d.clone());
        }
    }
    let placed: Vec<Result<()>> = layers
        .par_iter()
        .zip(&req.plan.layers)
        .zip(&comps)
        .map(|((l, p), comp)| {
            let digest: Digest = l.layer.digest.parse()?;
            if !place_blob(&work, &cache, &digest, l.layer.size, lasting)? {
                // The cached blob is gone (`strata cache prune` removed it
                // meanwhile, docs/design.md §5) or no longer checks out: write the
                // layer again, straight into the working layout, where no
                // prune reaches it.
                let PlannedKind::Copy { files, owner } = &p.kind else {
                    return Err(run_layer_error(p));
                };
                let entries = layer_entries(&p.id, files, *owner, spec.image.timestamp, &dirs)?;
                let blob = write_layer(&entries, &work.blobs_dir(), *comp)?;
                if blob.digest != digest {
                    return Err(OciError::DigestMismatch {
                        what: format!("layer `{}` written again after a cache prune", p.id),
                        expected: digest.to_string(),
                        found: blob.digest.to_string(),
                    });
                }
                if lasting {
                    verified.record(&work.blob_path(&digest), &digest);
                }
            }
            Ok(())
        })
        .collect();
    for (r, l) in placed.into_iter().zip(&layers) {
        r?;
        let digest: Digest = l.layer.digest.parse()?;
        descriptors.push(Descriptor::new(&l.layer.media_type, digest, l.layer.size));
    }

    let created = req.source_date_epoch.unwrap_or(spec.image.timestamp);
    let history: Vec<HistoryEntry> = req
        .plan
        .layers
        .iter()
        .zip(&layers)
        .zip(&comps)
        .map(|((p, l), comp)| HistoryEntry {
            created: Some(rfc3339(created)),
            created_by: Some(record::created_by(&p.id)),
            author: None,
            comment: Some(
                match comp {
                    Compression::Auto => Record::copy(&l.key, p.inputs),
                    c => Record::copy(&l.key, p.inputs).field("compression", c.name()),
                }
                .to_string(),
            ),
            empty_layer: false,
        })
        .collect();
    let diff_ids: Vec<Digest> = layers
        .iter()
        .map(|l| Ok(l.layer.diff_id.parse::<Digest>()?))
        .collect::<Result<_>>()?;
    let settings = settings(spec);

    let config = build_config(&super::image::ConfigInput {
        base: base.as_ref().map(|b| &b.config),
        platform: &spec.platform,
        created,
        settings: &settings,
        diff_ids: &diff_ids,
        history: &history,
    })?;
    let mut annotations = base
        .as_ref()
        .map_or_else(BTreeMap::new, |b| base_annotations(spec, b));
    annotations.extend(req.annotations.manifest.clone());
    let mut manifest = write_image(&work, &config, descriptors, annotations)?;
    manifest
        .annotations
        .extend(req.annotations.descriptor.clone());
    match (&req.output, output) {
        (ImageRef::OciLayout { tag, .. }, Some(out)) => {
            out.commit(&manifest, tag.as_deref().unwrap_or("latest"))?
        }
        (other, _) => super::archive::write_output(other, &work, &manifest)?,
    }

    let record = BuildRecord {
        schema: "strata.record/v1".into(),
        manifest: manifest.digest.to_string(),
        output: req.output.to_string(),
        layers: req
            .plan
            .layers
            .iter()
            .zip(&layers)
            .map(|(p, l)| RecordLayer {
                id: p.id.clone(),
                inputs: p.inputs.to_string(),
                key: l.key.clone(),
                size: p.input_size,
                files: p.input_files,
                digest: l.layer.digest.clone(),
            })
            .collect(),
    };
    if let Err(e) = cache.write_record(&record_name(spec), &record) {
        warnings.push(format!("build record not saved: {e}"));
    }
    Ok(BuildOutcome {
        manifest,
        layers,
        warnings,
    })
}

/// A planned layer's compression: its spec layer's `compression`, else
/// `[image] compression` when set, else `default`.
pub fn layer_compression(
    spec: &ResolvedSpec,
    l: &PlannedLayer,
    default: Compression,
) -> Compression {
    let image = spec.image.compression;
    match copy_of(spec, l).and_then(|c| c.compression) {
        Some(c) => c,
        None if image != Compression::Auto => image,
        None => default,
    }
}

fn run_layer_error(layer: &PlannedLayer) -> OciError {
    OciError::Unsupported {
        what: "run layer",
        value: layer.id.clone(),
        location: "run layers need BuildKit".into(),
    }
}

/// Puts a cached blob into the layout as a copy of its own (a reflink where
/// the file system has them: `copy_file_range`), never a hard link, so a
/// corruption of the cache cannot reach an output or the other way round.
/// A blob already in the layout is kept only when it checks out (by digest,
/// or by its verified-stat record) and shares its inode with nothing.
/// Returns `false` when the cache no longer has a sound blob to copy (a
/// prune removed it, or it does not match its digest). `record`: keep a
/// verified-stat record of the copy (for a layout that outlives the build).
fn place_blob(
    work: &OciDir,
    cache: &LayerCache,
    digest: &Digest,
    size: u64,
    record: bool,
) -> Result<bool> {
    let verified = cache.verified();
    let dst = work.blob_path(digest);
    if let Ok(meta) = fs_err::symlink_metadata(&dst)
        && meta.is_file()
        && std::os::unix::fs::MetadataExt::nlink(&meta) == 1
        && verified.check(&dst, digest, size)?
    {
        return Ok(true);
    }
    let src = cache.blob_path(&digest.to_string());
    let from = match fs_err::File::open(&src) {
        Ok(f) => f.into_parts().0,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(OciError::Io {
                path: src,
                source: e,
            });
        }
    };
    // The source is sound now (by its record: a stat check, or a full
    // hash) and unchanged by the end of the copy, so the copy is sound.
    let before = fstat_file(&from).map_err(|e| OciError::io(&src, e))?;
    if !verified.check(&src, digest, size)? {
        return Ok(false);
    }
    let dir = work.blobs_dir();
    let mut tmp = tempfile::Builder::new()
        .prefix(super::blob::TEMP_PREFIX)
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(&dir)
        .map_err(|e| OciError::io(&dir, e))?;
    let copied = std::io::copy(&mut &from, tmp.as_file_mut()).map_err(|e| OciError::io(&dst, e))?;
    let after = fstat_file(&from).map_err(|e| OciError::io(&src, e))?;
    if copied != size || after != before {
        // Changed under us: the layer is written again instead.
        return Ok(false);
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| OciError::io(&dst, e))?;
    tmp.persist(&dst).map_err(|e| OciError::io(&dst, e.error))?;
    if record {
        verified.record(&dst, digest);
    }
    Ok(true)
}

/// The image settings of a resolved spec.
pub fn settings(spec: &ResolvedSpec) -> ImageSettings {
    let img = &spec.image;
    ImageSettings {
        entrypoint: img.entrypoint.clone(),
        cmd: img.cmd.clone(),
        env: img
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        workdir: img.workdir.clone(),
        user: img.user.clone(),
        labels: img.labels.clone(),
        exposed_ports: img.expose.clone(),
        volumes: img.volumes.clone(),
        stop_signal: img.stop_signal.clone(),
        healthcheck: img.healthcheck.as_ref().map(|h| Healthcheck {
            test: h.test.clone(),
            interval: h.interval.map(std::time::Duration::from_nanos),
            timeout: h.timeout.map(std::time::Duration::from_nanos),
            start_period: h.start_period.map(std::time::Duration::from_nanos),
            start_interval: None,
            retries: h.retries,
        }),
    }
}

/// Per-layer blob digests of the last build, by layer ID.
pub fn last_record(spec: &ResolvedSpec, cache_root: &Path) -> Option<BuildRecord> {
    let cache = LayerCache::open(cache_root).ok()?;
    let mut w = Vec::new();
    cache.read_record(&record_name(spec), &mut w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::image::ImageManifest;
    use crate::spec::{ResolveOptions, SpecSource, resolve_all};

    const SPEC: &str = r#"version = 1
[image]
from = "scratch"
platforms = ["linux/amd64"]
cmd = ["/app/main.py"]
[[layer]]
name = "models"
copy = [{ from = "m", to = "/models" }]
compression = "zstd"
[[layer]]
name = "app"
copy = [{ from = "app/main.py", to = "/app/main.py", mode = "0755" }]
"#;

    struct Built {
        outcome: BuildOutcome,
        layout: OciDir,
        config: serde_json::Value,
    }

    /// Builds the context `dir` into the layout `out` (tag `v1`).
    fn build_in(dir: &Path, cache: &Path, out: &Path) -> Built {
        let opts = ResolveOptions {
            context: dir.to_path_buf(),
            ..Default::default()
        };
        let spec = resolve_all(&SpecSource::new(dir.join("strata.toml"), SPEC), &opts)
            .unwrap()
            .specs
            .remove(0);
        let plan = crate::plan::make_plan(&spec, cache).unwrap();
        let outcome = build(&BuildRequest {
            spec: &spec,
            plan: &plan,
            output: ImageRef::OciLayout {
                path: out.to_path_buf(),
                tag: Some("v1".into()),
            },
            cache_root: cache.to_path_buf(),
            source_date_epoch: None,
            compression: Compression::Auto,
            registry_base: None,
            annotations: Default::default(),
        })
        .unwrap();
        let layout = OciDir::open(out).unwrap();
        let manifest: ImageManifest = layout.read_json_blob(&outcome.manifest.digest).unwrap();
        let config = layout.read_json_blob(&manifest.config.digest).unwrap();
        Built {
            outcome,
            layout,
            config,
        }
    }

    fn context() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(dir.path().join("m")).unwrap();
        fs_err::create_dir_all(dir.path().join("app")).unwrap();
        fs_err::write(dir.path().join("m/w.bin"), [3u8; 4096]).unwrap();
        fs_err::write(dir.path().join("app/main.py"), "print('hi')\n").unwrap();
        dir
    }

    /// The history carries one strata record per layer, in layer order,
    /// with the layer's key, inputs and explicit compression.
    #[test]
    fn history_records_each_layer_and_the_image_is_tagged() {
        let (dir, cache, out) = (
            context(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let b = build_in(dir.path(), cache.path(), out.path());
        assert_eq!(
            b.layout.resolve_tag("v1").unwrap().digest,
            b.outcome.manifest.digest
        );
        let history = b.config["history"].as_array().unwrap();
        assert_eq!(history.len(), 2);
        for (h, l) in history.iter().zip(&b.outcome.layers) {
            let by = h["created_by"].as_str().unwrap();
            assert_eq!(record::layer_id(by), Some(l.id.as_str()));
            let r = Record::parse(h["comment"].as_str().unwrap()).unwrap();
            assert_eq!(r.get("key"), Some(l.key.as_str()));
            assert!(r.get("inputs").is_some_and(|i| i.starts_with("sha256:")));
            assert_eq!(h["created"], "1980-01-02T00:00:00Z");
        }
        let models = Record::parse(history[0]["comment"].as_str().unwrap()).unwrap();
        assert_eq!(models.get("compression"), Some("zstd"));
        assert_eq!(
            b.outcome.layers[0].layer.media_type,
            crate::oci::image::media::LAYER_ZSTD
        );
        let app = Record::parse(history[1]["comment"].as_str().unwrap()).unwrap();
        assert_eq!(app.get("compression"), None);
        assert_eq!(
            b.config["config"]["Cmd"],
            serde_json::json!(["/app/main.py"])
        );
    }

    /// A second build of the same inputs reuses every layer from the cache
    /// and writes the same manifest; a changed file rebuilds its layer only.
    #[test]
    fn rebuilds_reuse_unchanged_layers() {
        let (dir, cache) = (context(), tempfile::tempdir().unwrap());
        let (out1, out2, out3) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let first = build_in(dir.path(), cache.path(), out1.path()).outcome;
        assert!(first.layers.iter().all(|l| !l.reused));
        let again = build_in(dir.path(), cache.path(), out2.path()).outcome;
        assert!(again.layers.iter().all(|l| l.reused));
        assert_eq!(again.manifest.digest, first.manifest.digest);
        fs_err::write(dir.path().join("app/main.py"), "print('changed')\n").unwrap();
        let third = build_in(dir.path(), cache.path(), out3.path()).outcome;
        let reused: Vec<bool> = third.layers.iter().map(|l| l.reused).collect();
        assert_eq!(reused, [true, false]);
        assert_eq!(third.layers[0].layer.digest, first.layers[0].layer.digest);
        assert_ne!(third.manifest.digest, first.manifest.digest);
    }

    /// A registry base is named fully qualified, without its digest; the
    /// digest is the manifest's the image was built on.
    #[test]
    fn base_annotations_name_a_registry_base() {
        let digest = Digest::of(b"manifest");
        let base = BaseImage {
            location: String::new(),
            manifest_digest: Some(digest),
            config_digest: digest,
            config: serde_json::Value::Null,
            platform: crate::spec::Platform::host(),
            layers: Vec::new(),
            history: Vec::new(),
        };
        for (from, name) in [
            ("python:3.12-slim", "docker.io/library/python:3.12-slim"),
            (
                "127.0.0.1:5000/team/base@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                "127.0.0.1:5000/team/base",
            ),
        ] {
            let text = SPEC.replace("\"scratch\"", &format!("{from:?}"));
            let spec = resolve_all(
                &SpecSource::new(PathBuf::from("strata.toml"), text.as_str()),
                &ResolveOptions::default(),
            )
            .unwrap()
            .specs
            .remove(0);
            let a = base_annotations(&spec, &base);
            assert_eq!(a[BASE_NAME], name, "{from}");
            assert_eq!(a[BASE_DIGEST], digest.to_string(), "{from}");
        }
    }
}
