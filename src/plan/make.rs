//! Making a plan: walk every input, hash with the stat cache, expand splits,
//! check overlaps and the layer budget, compute input digests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::digest::{Digest, file_mode, input_digest};
use super::entries::InputFile;
use super::error::PlanError;
use super::graph::{FileConflict, LayerFile, LayerFileKind, abs, files_digest, normalize_files};
use super::hash::{ContentHashes, HashReport, hash_walks, placeholder_hashes};
use super::ignore::Matcher;
use super::statcache::StatCache;
use super::walk::{Walk, WalkKind, walk_skipping};
use crate::spec::validate::file_destination;
use crate::spec::{
    CopyLayer, Diag, LayerKind, Owner, ResolvedSpec, RunLayer, SpecError, StageFrom,
};

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
    /// strata's own paths (the cache root, the build's output) that lie
    /// inside an input and were left out of it, context-relative.
    pub excluded: Vec<String>,
    /// The stages the target needs, in spec order.
    pub stages: Vec<PlannedStage>,
}

/// A build stage with its input digest: its base reference (or its base
/// stage's digest), workdir, environment, and each step's inputs as a run
/// layer's. Layers that copy from or mount a stage include this digest in
/// their own, so their keys change exactly when the stage's inputs do.
#[derive(Debug, Clone)]
pub struct PlannedStage {
    /// The stage name.
    pub name: String,
    /// Its base: an image reference, or `stage:NAME`.
    pub from: String,
    /// The input digest.
    pub inputs: Digest,
    /// Number of steps.
    pub steps: usize,
    /// IDs of the planned layers that read it directly, in image order.
    pub used_by: Vec<String>,
}

/// One layer of the image, after `split = "file"` expansion.
#[derive(Debug, Clone)]
pub struct PlannedLayer {
    /// The layer ID (docs/design.md §1).
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

/// Plans `spec`, hashing with the stat cache in `cache_root` (docs/design.md §5).
/// The cache root is left out of the inputs when it lies inside them.
pub fn make_plan(spec: &ResolvedSpec, cache_root: &Path) -> Result<Plan, PlanError> {
    plan_with(spec, Some(cache_root), &[])
}

/// [`make_plan`], also leaving `outputs` (the build's own output paths) out
/// of the inputs when they lie inside them: a build must never copy its
/// previous output.
pub fn make_plan_excluding(
    spec: &ResolvedSpec,
    cache_root: &Path,
    outputs: &[PathBuf],
) -> Result<Plan, PlanError> {
    plan_with(spec, Some(cache_root), outputs)
}

/// The context-relative paths of `paths` that lie strictly inside `context`
/// (an output need not exist yet: its parent is resolved).
fn inside_context(context: &Path, paths: &[&Path]) -> Vec<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    for p in paths {
        let canonical = fs_err::canonicalize(p).ok().or_else(|| {
            let parent = p.parent().filter(|d| !d.as_os_str().is_empty())?;
            let parent = fs_err::canonicalize(parent).ok()?;
            Some(parent.join(p.file_name()?))
        });
        if let Some(rel) = canonical
            .as_deref()
            .and_then(|c| c.strip_prefix(context).ok())
            && !rel.as_os_str().is_empty()
        {
            out.push(rel.as_os_str().as_bytes().to_vec());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Plans `spec` without reading file content or writing anything: paths,
/// overlaps, splits and the layer budget are checked, input digests are not
/// meaningful. `strata check` uses it.
pub fn survey(spec: &ResolvedSpec) -> Result<Plan, PlanError> {
    plan_with(spec, None, &[])
}

fn plan_with(
    spec: &ResolvedSpec,
    cache_root: Option<&Path>,
    outputs: &[PathBuf],
) -> Result<Plan, PlanError> {
    let context = &spec.context;
    let ignore = Matcher::for_context(context, spec.source.path())?;
    let own: Vec<&Path> = cache_root
        .into_iter()
        .chain(outputs.iter().map(PathBuf::as_path))
        .collect();
    let skip = inside_context(context, &own);
    let walk = |context: &Path, input: &Path, ignore: &Matcher, excludes: &Matcher| {
        walk_skipping(context, input, ignore, excludes, &skip)
    };

    // Walk every input once.
    struct Walked {
        layer: usize,
        entry: usize,
        walk: Walk,
        /// `(stage, step)` for a stage step's input; `layer` is then `usize::MAX`.
        stage: Option<(usize, usize)>,
    }
    let mut walks: Vec<Walked> = Vec::new();
    for (si, stage) in spec.stages.iter().enumerate() {
        for (sj, step) in stage.steps.iter().enumerate() {
            for (ei, i) in step.run.inputs.iter().enumerate() {
                walks.push(Walked {
                    layer: usize::MAX,
                    entry: ei,
                    walk: walk(context, Path::new(&i.path), &ignore, &Matcher::empty())?,
                    stage: Some((si, sj)),
                });
            }
        }
    }
    for (li, layer) in spec.layers.iter().enumerate() {
        match &layer.kind {
            LayerKind::Copy(c) => {
                // A stage copy reads the stage, not the context.
                for (ei, e) in c.entries.iter().enumerate() {
                    if e.stage.is_some() {
                        continue;
                    }
                    let excludes = Matcher::new(&e.exclude)?;
                    walks.push(Walked {
                        layer: li,
                        entry: ei,
                        walk: walk(context, Path::new(&e.from), &ignore, &excludes)?,
                        stage: None,
                    });
                }
            }
            LayerKind::Run(r) => {
                for (ei, i) in r.inputs.iter().enumerate() {
                    walks.push(Walked {
                        layer: li,
                        entry: ei,
                        walk: walk(context, Path::new(&i.path), &ignore, &Matcher::empty())?,
                        stage: None,
                    });
                }
            }
        }
    }

    // strata's own paths that an input would have held.
    let excluded: Vec<String> = skip
        .iter()
        .filter(|s| {
            walks.iter().any(|w| {
                w.walk.input.is_empty()
                    || (s.starts_with(&w.walk.input) && s.get(w.walk.input.len()) == Some(&b'/'))
            })
        })
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
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

    // Stages, in spec order: a stage's base stage comes first or is
    // digested on demand (the spec resolves no cycles).
    let mut stage_digests: BTreeMap<String, Digest> = BTreeMap::new();
    let mut stages: Vec<PlannedStage> = Vec::new();
    let mut pending: Vec<usize> = (0..spec.stages.len()).collect();
    while !pending.is_empty() {
        let before = pending.len();
        let mut i = 0;
        while i < pending.len() {
            let si = pending[i];
            let stage = &spec.stages[si];
            let from = match &stage.from {
                StageFrom::Image(b) => b.to_string(),
                StageFrom::Stage(p) => match stage_digests.get(p) {
                    Some(d) => format!("stage:{d}"),
                    None => {
                        i += 1;
                        continue;
                    }
                },
            };
            let mut steps = Vec::new();
            for (sj, step) in stage.steps.iter().enumerate() {
                let mut inputs = Vec::new();
                for w in walks.iter().filter(|w| w.stage == Some((si, sj))) {
                    inputs.push((
                        step.run.inputs[w.entry].path.clone(),
                        input_digest(&w.walk, &hashes, None)?,
                    ));
                }
                steps.push(run_inputs_digest(&step.run, &inputs).to_string());
            }
            let doc = serde_json::json!({
                "kind": "strata.stage-inputs/v1",
                "from": from,
                "workdir": stage.workdir,
                "env": stage.env,
                "steps": steps,
            });
            let digest = Digest::of(doc.to_string().as_bytes());
            stage_digests.insert(stage.name.clone(), digest);
            stages.push(PlannedStage {
                name: stage.name.clone(),
                from: match &stage.from {
                    StageFrom::Image(b) => b.to_string(),
                    StageFrom::Stage(p) => format!("stage:{p}"),
                },
                inputs: digest,
                steps: stage.steps.len(),
                used_by: Vec::new(),
            });
            pending.remove(i);
        }
        assert!(
            pending.len() < before,
            "stage cycles are rejected by the spec"
        );
    }
    stages.sort_by_key(|st| spec.stages.iter().position(|s| s.name == st.name));
    // The stage digests a layer depends on, as JSON for its input digest.
    let uses = |names: Vec<String>| -> serde_json::Value {
        names
            .into_iter()
            .map(|n| {
                let d = stage_digests.get(&n).map(ToString::to_string);
                (n, serde_json::json!(d))
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
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
                let mut digest = run_inputs_digest(r, &inputs);
                if !r.mounts.is_empty() {
                    // Mounted stages: their paths and digests (never in the layer).
                    let doc = serde_json::json!({
                        "kind": "strata.stage-mounts/v1",
                        "run": digest.to_string(),
                        "mounts": r.mounts.iter().map(|m| [&m.stage, &m.from, &m.to]).collect::<Vec<_>>(),
                        "stages": uses(layer.stages_used()),
                    });
                    digest = Digest::of(doc.to_string().as_bytes());
                }
                layers.push(PlannedLayer {
                    id: layer.name.clone(),
                    spec_index: li,
                    kind: PlannedKind::Run { inputs },
                    inputs: digest,
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
                // Destinations that cannot all be written are the spec's
                // fault: a diagnostic on the layer's `copy`.
                let at_copy = |e: PlanError, help: &str| match e {
                    e @ (PlanError::Overlap { .. } | PlanError::FileIsParent { .. }) => {
                        PlanError::Spec(SpecError::Invalid {
                            diagnostics: vec![
                                Diag::error(&spec.source, layer.name_span.clone(), e.to_string())
                                    .label("this layer")
                                    .help(help),
                            ],
                        })
                    }
                    e => e,
                };
                let files = copy_layer_files(context, &layer.name, c, &walked, &hashes)
                    .map_err(|e| {
                        at_copy(
                            e,
                            "give each entry its own destination, or end `to` with `/` to copy into a directory",
                        )
                    })?;
                for f in &files {
                    if f.kind != LayerFileKind::Dir
                        && let Some(first) = owners.insert(f.dest.clone(), layer.name.clone())
                    {
                        return Err(at_copy(
                            PlanError::Overlap {
                                path: abs(&f.dest),
                                first,
                                second: layer.name.clone(),
                            },
                            "give each layer its own destinations, or exclude the file from one of them",
                        ));
                    }
                }
                if c.entries.iter().any(|e| e.stage.is_some()) {
                    // A stage copy (the spec allows no split and no context
                    // entries beside it): the files are known only once the
                    // stage ran, so the digest covers the entries and the
                    // stage's input digest.
                    let doc = serde_json::json!({
                        "kind": "strata.stage-copy/v1",
                        "entries": c.entries.iter().map(|e| serde_json::json!({
                            "stage": e.stage,
                            "from": e.from,
                            "to": e.to,
                            "to_is_dir": e.to_is_dir,
                            "mode": e.mode,
                            "exclude": e.exclude,
                        })).collect::<Vec<_>>(),
                        "stages": uses(layer.stages_used()),
                    });
                    layers.push(PlannedLayer {
                        id: layer.name.clone(),
                        spec_index: li,
                        inputs: Digest::of(doc.to_string().as_bytes()),
                        kind: PlannedKind::Copy {
                            files: Vec::new(),
                            owner: c.owner,
                        },
                        input_size: 0,
                        input_files: 0,
                    });
                    continue;
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
    for st in &mut stages {
        st.used_by = layers
            .iter()
            .filter(|l| spec.layers[l.spec_index].stages_used().contains(&st.name))
            .map(|l| l.id.clone())
            .collect();
    }
    Ok(Plan {
        layers,
        warnings,
        cache_warnings,
        hashing: hashes.report().clone(),
        excluded,
        stages,
    })
}

/// A run layer's (or stage step's) input digest: its command, environment,
/// user, workdir and each context input's digest (`docs/digest.md`).
fn run_inputs_digest(r: &RunLayer, inputs: &[(String, Digest)]) -> Digest {
    let doc = serde_json::json!({
        "kind": "strata.run-inputs/v1",
        "command": r.command,
        "env": r.env,
        "user": r.user,
        "workdir": r.workdir,
        "inputs": inputs.iter().map(|(p, d)| [p.clone(), d.to_string()]).collect::<Vec<_>>(),
    });
    Digest::of(doc.to_string().as_bytes())
}

/// The spec file's path relative to the context, when it is inside.
fn spec_relative(context: &Path, spec: &Path) -> Option<String> {
    let spec = fs_err::canonicalize(spec).ok()?;
    spec.strip_prefix(context)
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// The layer budget with splits counted (docs/design.md §6).
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
/// Both the plan and `strata helper copy` (docs/design.md §2) use it.
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
            // Destination, relative to `/` (docs/design.md §1 destinations).
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
                        input: Some(InputFile {
                            root: context.to_path_buf(),
                            rel: cp,
                            stat: *stat,
                        }),
                    }
                }
                WalkKind::Symlink { target, .. } => LayerFileKind::Symlink {
                    target: target.clone(),
                },
            };
            files.push(LayerFile { dest, kind });
        }
    }
    normalize_files(&mut files).map_err(|c| match c {
        FileConflict::Same(dest) => PlanError::Overlap {
            path: abs(&dest),
            first: layer.to_string(),
            second: layer.to_string(),
        },
        FileConflict::Parent { file, child } => PlanError::FileIsParent {
            path: abs(&file),
            child: abs(&child),
            layer: layer.to_string(),
        },
    })?;
    Ok(files)
}

/// Splits a copy layer's files (docs/design.md §1): every regular file of at least
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `text`, written as the context's spec, resolved for linux/amd64.
    fn spec_in(dir: &Path, text: &str) -> ResolvedSpec {
        fs_err::write(dir.join("strata.toml"), text).unwrap();
        crate::spec::validate::tests::spec_in(dir, text)
    }

    const SPEC: &str = r#"version = 1
[image]
from = "scratch"
[[layer]]
name = "models"
copy = [{ from = "m", to = "/models", exclude = ["*.tmp"] }]
split = "file"
split_min = "1KiB"
[[layer]]
name = "conf"
copy = [{ from = "etc/app.conf", to = "/etc/app/" }]
"#;

    fn context() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let w = |rel: &str, data: &[u8]| {
            let p = dir.path().join(rel);
            fs_err::create_dir_all(p.parent().unwrap()).unwrap();
            fs_err::write(p, data).unwrap();
        };
        w("m/big.bin", &[7; 2048]);
        w("m/small.txt", b"small\n");
        w("m/scratch.tmp", b"excluded\n");
        w("etc/app.conf", b"port = 8000\n");
        dir
    }

    fn by_id(plan: &Plan) -> BTreeMap<&str, &PlannedLayer> {
        plan.layers.iter().map(|l| (l.id.as_str(), l)).collect()
    }

    #[test]
    fn splits_excludes_and_layer_ids() {
        let dir = context();
        let cache = tempfile::tempdir().unwrap();
        let plan = make_plan(&spec_in(dir.path(), SPEC), cache.path()).unwrap();
        let ids: Vec<&str> = plan.layers.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, ["models", "models@/models/big.bin", "conf"]);
        let layers = by_id(&plan);
        assert_eq!(
            (layers["models"].input_files, layers["models"].input_size),
            (1, 6),
            "the excluded file is no input"
        );
        assert_eq!(layers["models@/models/big.bin"].input_size, 2048);
        let PlannedKind::Copy { files, owner } = &layers["conf"].kind else {
            panic!("conf is a copy layer")
        };
        assert_eq!((owner.uid, owner.gid), (0, 0));
        assert_eq!(
            files.iter().map(|f| abs(&f.dest)).collect::<Vec<_>>(),
            ["/etc/app/app.conf"]
        );
        // The survey (strata check) finds the same layers without hashing.
        let survey = survey(&spec_in(dir.path(), SPEC)).unwrap();
        let surveyed: Vec<&str> = survey.layers.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(surveyed, ids);
    }

    /// A content change moves only its own layer's input digest; a new
    /// mtime or an excluded file moves none.
    #[test]
    fn input_digests_follow_content_only() {
        let dir = context();
        let cache = tempfile::tempdir().unwrap();
        let digests = |dir: &Path| -> BTreeMap<String, Digest> {
            make_plan(&spec_in(dir, SPEC), cache.path())
                .unwrap()
                .layers
                .into_iter()
                .map(|l| (l.id, l.inputs))
                .collect()
        };
        let first = digests(dir.path());
        let f = fs_err::File::options()
            .write(true)
            .open(dir.path().join("m/small.txt"))
            .unwrap();
        f.set_modified(std::time::SystemTime::UNIX_EPOCH).unwrap();
        fs_err::write(dir.path().join("m/scratch.tmp"), "other\n").unwrap();
        assert_eq!(digests(dir.path()), first);
        fs_err::write(dir.path().join("m/small.txt"), "SMALL\n").unwrap();
        let second = digests(dir.path());
        assert_ne!(second["models"], first["models"]);
        assert_eq!(
            second["models@/models/big.bin"],
            first["models@/models/big.bin"]
        );
        assert_eq!(second["conf"], first["conf"]);
    }

    #[test]
    fn a_missing_input_is_an_error_naming_it() {
        let dir = context();
        fs_err::remove_file(dir.path().join("etc/app.conf")).unwrap();
        let cache = tempfile::tempdir().unwrap();
        let err = make_plan(&spec_in(dir.path(), SPEC), cache.path()).unwrap_err();
        assert!(err.to_string().contains("app.conf"), "{err}");
    }
}
