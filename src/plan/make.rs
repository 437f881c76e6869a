//! Making a plan: walk every input, hash with the stat cache, expand splits,
//! check overlaps and the layer budget, compute input digests.

use std::collections::BTreeMap;
use std::path::Path;

use super::digest::{Digest, file_mode, input_digest};
use super::error::PlanError;
use super::graph::{LayerFile, LayerFileKind, abs, files_digest, normalize_files};
use super::hash::{ContentHashes, HashReport, hash_walks, placeholder_hashes};
use super::ignore::Matcher;
use super::statcache::StatCache;
use super::walk::{Walk, WalkKind, walk};
use crate::spec::validate::file_destination;
use crate::spec::{CopyLayer, Diag, LayerKind, Owner, ResolvedSpec, SpecError};

/// A spec's layers expanded and content-addressed.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Planned layers in image order.
    pub layers: Vec<PlannedLayer>,
    /// Spec warnings found while planning (a copy that includes the spec file).
    pub warnings: Vec<Diag>,
    /// Stat cache warnings (a corrupt cache file was ignored).
    pub cache_warnings: Vec<String>,
    /// What hashing did.
    pub hashing: HashReport,
}

/// One layer of the image, after `split = "file"` expansion.
#[derive(Debug, Clone)]
pub struct PlannedLayer {
    /// The layer ID (contracts §1).
    pub id: String,
    /// Index of the spec layer it comes from.
    pub spec_index: usize,
    /// Copy or run specifics.
    pub kind: PlannedKind,
    /// The input digest (`docs/digest.md`).
    pub inputs: Digest,
    /// Total size of the input files.
    pub input_size: u64,
    /// Number of input files.
    pub input_files: usize,
}

/// Copy or run specifics of a planned layer.
#[derive(Debug, Clone)]
pub enum PlannedKind {
    /// A copy layer (or one split file of it).
    Copy {
        /// Files in destination space, canonical order, no ancestors.
        files: Vec<LayerFile>,
        /// The owner of every entry.
        owner: Owner,
    },
    /// A run layer.
    Run {
        /// Each input with its digest.
        inputs: Vec<(String, Digest)>,
    },
}

impl PlannedLayer {
    /// Whether this is a copy layer.
    pub fn is_copy(&self) -> bool {
        matches!(self.kind, PlannedKind::Copy { .. })
    }
}

/// Plans `spec`, hashing with the stat cache in `cache_root` (contracts §5).
pub fn make_plan(spec: &ResolvedSpec, cache_root: &Path) -> Result<Plan, PlanError> {
    plan_with(spec, Some(cache_root))
}

/// Plans `spec` without reading file content or writing anything: paths,
/// overlaps, splits and the layer budget are checked, input digests are not
/// meaningful. `strata check` uses it.
pub fn survey(spec: &ResolvedSpec) -> Result<Plan, PlanError> {
    plan_with(spec, None)
}

fn plan_with(spec: &ResolvedSpec, cache_root: Option<&Path>) -> Result<Plan, PlanError> {
    let context = &spec.context;
    let ignore = Matcher::for_context(context, spec.source.path())?;

    // Walk every input once.
    struct Walked {
        layer: usize,
        entry: usize,
        walk: Walk,
    }
    let mut walks: Vec<Walked> = Vec::new();
    for (li, layer) in spec.layers.iter().enumerate() {
        match &layer.kind {
            LayerKind::Copy(c) => {
                for (ei, e) in c.entries.iter().enumerate() {
                    let excludes = Matcher::new(&e.exclude)?;
                    walks.push(Walked {
                        layer: li,
                        entry: ei,
                        walk: walk(context, Path::new(&e.from), &ignore, &excludes)?,
                    });
                }
            }
            LayerKind::Run(r) => {
                for (ei, i) in r.inputs.iter().enumerate() {
                    walks.push(Walked {
                        layer: li,
                        entry: ei,
                        walk: walk(context, Path::new(&i.path), &ignore, &Matcher::empty())?,
                    });
                }
            }
        }
    }

    let mut cache_warnings: Vec<String> = Vec::new();
    let hashes = match cache_root {
        Some(root) => {
            let (mut cache, warnings) = StatCache::open(root, context)?;
            let hashes = hash_walks(context, walks.iter().map(|w| &w.walk), Some(&mut cache))?;
            cache_warnings.extend(warnings.iter().map(ToString::to_string));
            // A cache that cannot be saved costs speed, not correctness.
            if let Err(e) = cache.save() {
                cache_warnings.push(format!("stat cache not saved: {e}"));
            }
            hashes
        }
        None => placeholder_hashes(walks.iter().map(|w| &w.walk)),
    };

    let spec_rel = spec_relative(context, spec.source.path());
    let mut warnings = Vec::new();
    let mut layers = Vec::new();
    let mut owners: BTreeMap<Vec<u8>, String> = BTreeMap::new();
    for (li, layer) in spec.layers.iter().enumerate() {
        let these: Vec<&Walked> = walks.iter().filter(|w| w.layer == li).collect();
        match &layer.kind {
            LayerKind::Run(r) => {
                let mut inputs = Vec::new();
                let (mut size, mut count) = (0, 0);
                for w in &these {
                    inputs.push((
                        r.inputs[w.entry].path.clone(),
                        input_digest(&w.walk, &hashes, None)?,
                    ));
                    for (_, stat) in w.walk.files() {
                        size += stat.size;
                        count += 1;
                    }
                }
                let doc = serde_json::json!({
                    "kind": "strata.run-inputs/v1",
                    "command": r.command,
                    "env": r.env,
                    "user": r.user,
                    "workdir": r.workdir,
                    "inputs": inputs.iter().map(|(p, d)| [p.clone(), d.to_string()]).collect::<Vec<_>>(),
                });
                layers.push(PlannedLayer {
                    id: layer.name.clone(),
                    spec_index: li,
                    kind: PlannedKind::Run { inputs },
                    inputs: Digest::of(doc.to_string().as_bytes()),
                    input_size: size,
                    input_files: count,
                });
            }
            LayerKind::Copy(c) => {
                for w in &these {
                    let e = &c.entries[w.entry];
                    for candidate in [&spec_rel, &Some("strata.lock".to_string())]
                        .into_iter()
                        .flatten()
                    {
                        if w.walk
                            .files()
                            .any(|(f, _)| w.walk.context_path(f) == candidate.as_bytes())
                        {
                            let name = candidate.rsplit('/').next().unwrap_or(candidate);
                            warnings.push(
                                Diag::warning(
                                    &spec.source,
                                    Some(e.span.clone()),
                                    format!(
                                        "layer `{}` copies `{candidate}` into the image",
                                        layer.name
                                    ),
                                )
                                .label("includes it")
                                .help(format!("add `exclude = [\"{name}\"]` to this entry")),
                            );
                        }
                    }
                }
                let walked: Vec<(usize, &Walk)> =
                    these.iter().map(|w| (w.entry, &w.walk)).collect();
                let files = copy_layer_files(context, &layer.name, c, &walked, &hashes)?;
                for f in &files {
                    if f.kind != LayerFileKind::Dir
                        && let Some(first) = owners.insert(f.dest.clone(), layer.name.clone())
                    {
                        return Err(PlanError::Overlap {
                            path: abs(&f.dest),
                            first,
                            second: layer.name.clone(),
                        });
                    }
                }
                for (id, files) in split_layer(&layer.name, c.split.as_ref().map(|s| s.min), files)
                {
                    let (size, count) = files.iter().fold((0, 0), |(s, n), f| match &f.kind {
                        LayerFileKind::File { size, .. } => (s + size, n + 1),
                        _ => (s, n),
                    });
                    layers.push(PlannedLayer {
                        id,
                        spec_index: li,
                        inputs: files_digest(&files)?,
                        kind: PlannedKind::Copy {
                            files,
                            owner: c.owner,
                        },
                        input_size: size,
                        input_files: count,
                    });
                }
            }
        }
    }
    check_budget(spec, &layers)?;
    Ok(Plan {
        layers,
        warnings,
        cache_warnings,
        hashing: hashes.report().clone(),
    })
}

/// The spec file's path relative to the context, when it is inside.
fn spec_relative(context: &Path, spec: &Path) -> Option<String> {
    let spec = fs_err::canonicalize(spec).ok()?;
    spec.strip_prefix(context)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// The layer budget with splits counted (contracts §6).
fn check_budget(spec: &ResolvedSpec, layers: &[PlannedLayer]) -> Result<(), PlanError> {
    let max = spec.image.max_layers as usize;
    if layers.len() <= max {
        return Ok(());
    }
    // The split that produced the most layers, and a split_min that fits.
    let mut by_layer: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for l in layers.iter().filter(|l| l.id.contains('@')) {
        by_layer.entry(l.spec_index).or_default().push(l.input_size);
    }
    let source = &spec.source;
    let diag = match by_layer.into_iter().max_by_key(|(_, v)| v.len()) {
        Some((li, mut sizes)) => {
            let layer = &spec.layers[li];
            let span = match &layer.kind {
                LayerKind::Copy(c) => c
                    .split
                    .as_ref()
                    .map_or(layer.name_span.clone(), |s| s.span.clone()),
                LayerKind::Run(_) => layer.name_span.clone(),
            };
            sizes.sort_unstable_by(|a, b| b.cmp(a));
            // Files no longer split join the layer's rest, which then exists.
            let rest = usize::from(
                layers
                    .iter()
                    .any(|l| l.spec_index == li && !l.id.contains('@')),
            );
            let others = layers.len() - sizes.len() - rest;
            let keep = max.saturating_sub(others + 1).min(sizes.len());
            let help = if keep == 0 || keep >= sizes.len() {
                format!(
                    "remove `split` from layer `{}`, or raise `max_layers`",
                    layer.name
                )
            } else {
                format!(
                    "`split_min = \"{}\"` keeps {keep} split files and fits; or raise `max_layers`",
                    sizes[keep] + 1
                )
            };
            Diag::error(
                source,
                span,
                format!(
                    "the target has {} layers, over `max_layers` = {max}: layer `{}` splits into {} files",
                    layers.len(),
                    layer.name,
                    sizes.len()
                ),
            )
            .label("this split")
            .help(help)
        }
        None => Diag::error(
            source,
            spec.image.max_layers_span.clone(),
            format!(
                "the target has {} layers, over `max_layers` = {max}",
                layers.len()
            ),
        ),
    };
    Err(PlanError::Spec(SpecError::Invalid {
        diagnostics: vec![diag],
    }))
}

/// The files of a copy layer in destination space, canonical order, from the
/// walks of its entries (`(entry index, walk)`) and their content hashes.
/// Both the plan and `strata helper copy` (contracts §2) use it.
pub fn copy_layer_files(
    context: &Path,
    layer: &str,
    c: &CopyLayer,
    walks: &[(usize, &Walk)],
    hashes: &ContentHashes,
) -> Result<Vec<LayerFile>, PlanError> {
    let mut files = Vec::new();
    for (ei, walk) in walks {
        let e = &c.entries[*ei];
        let root_is_file = !matches!(walk.entries.first().map(|x| &x.kind), Some(WalkKind::Dir));
        for entry in &walk.entries {
            // Destination, relative to `/` (contracts §1 destinations).
            let dest = if root_is_file {
                file_destination(&e.from, &e.to, e.to_is_dir).into_bytes()
            } else {
                let mut d = e.to.clone().into_bytes();
                if !entry.path.is_empty() {
                    if d != b"/" {
                        d.push(b'/');
                    }
                    d.extend_from_slice(&entry.path);
                }
                d
            };
            let dest = dest[1..].to_vec();
            let kind = match &entry.kind {
                WalkKind::Dir => LayerFileKind::Dir,
                WalkKind::File { exec, stat } => {
                    let cp = walk.context_path(entry);
                    LayerFileKind::File {
                        source: walk.disk_path(context, entry),
                        size: stat.size,
                        mode: file_mode(*exec, e.mode),
                        content: hashes.get(&cp).ok_or_else(|| PlanError::MissingHash {
                            path: String::from_utf8_lossy(&cp).into_owned(),
                        })?,
                    }
                }
                WalkKind::Symlink { target, .. } => LayerFileKind::Symlink {
                    target: target.clone(),
                },
            };
            files.push(LayerFile { dest, kind });
        }
    }
    normalize_files(&mut files).map_err(|dest| PlanError::Overlap {
        path: abs(&dest),
        first: layer.to_string(),
        second: layer.to_string(),
    })?;
    Ok(files)
}

/// Splits a copy layer's files (contracts §1): every regular file of at least
/// `min` bytes becomes the layer `<name>@<destination>`; the rest stays in
/// `<name>` (dropped when only directories would be left of it). Image order:
/// `<name>` first, then the split files in path order.
pub fn split_layer(
    name: &str,
    min: Option<u64>,
    files: Vec<LayerFile>,
) -> Vec<(String, Vec<LayerFile>)> {
    let mut rest = Vec::new();
    let mut split = Vec::new();
    for f in files {
        match (min, &f.kind) {
            (Some(min), LayerFileKind::File { size, .. }) if *size >= min => split.push(f),
            _ => rest.push(f),
        }
    }
    let mut out = Vec::new();
    if split.is_empty() || rest.iter().any(|f| f.kind != LayerFileKind::Dir) {
        out.push((name.to_string(), rest));
    }
    for f in split {
        out.push((format!("{name}@{}", abs(&f.dest)), vec![f]));
    }
    out
}
