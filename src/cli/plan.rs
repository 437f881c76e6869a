//! `strata plan`: the planned layers, their input digests, and whether the
//! next build reuses or rebuilds each, compared with the last build's record
//! or with any strata-built image's history (docs/design.md §5).

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::common::{cache_root, check_locked, human, plural, short};
use super::{SpecArgs, output};
use crate::error::{Error, Result};
use crate::oci::base::{ImageRef, import_base};
use crate::oci::build::{base_dirs, last_record, layer_keys, load_base_from};
use crate::oci::image::HistoryEntry;
use crate::plan::record::{self, Record};
use crate::plan::{Plan, PlannedKind, make_plan};
use crate::spec::ResolvedSpec;

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table for people.
    Table,
    /// `strata.plan/v2` JSON (`docs/json.md`).
    Json,
}

/// `strata plan` flags.
#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    /// The spec and context.
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Compare with this image's history instead of the last build:
    /// `oci-layout:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE`,
    /// `docker-daemon:NAME[:TAG]`, `registry:REF`.
    #[arg(long, value_name = "IMAGE")]
    pub against: Option<String>,
    /// Reach this registry (`host[:port]`) over plain HTTP; repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registry: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// The cache root.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Fail when the base has no pin in strata.lock or its pin drifted.
    #[arg(long)]
    pub locked: bool,
    /// Never contact a registry: a registry base must be pinned in
    /// strata.lock and in the cache (else the layer keys are left out), and
    /// `--against registry:REF` is refused.
    #[arg(long)]
    pub offline: bool,
}

/// One row of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Layer ID.
    pub id: String,
    /// `copy` or `run`.
    pub kind: &'static str,
    /// Input digest.
    pub inputs: String,
    /// Layer key, where known (copy layers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Bytes of input files.
    pub size: u64,
    /// Number of input files.
    pub files: usize,
    /// `reused`, `rebuilt`, or `unknown` without anything to compare with.
    pub status: &'static str,
    /// Why, for `rebuilt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The stages the layer copies from or mounts (absent when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<String>,
}

/// One build stage of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct StageRow {
    /// Stage name.
    pub name: String,
    /// Its base: an image reference or `stage:NAME`.
    pub from: String,
    /// Its input digest.
    pub inputs: String,
    /// Number of steps.
    pub steps: usize,
    /// IDs of the layers that copy from or mount it.
    pub used_by: Vec<String>,
}

/// The JSON document, `strata.plan/v2`: the same shape for one platform
/// and for several.
#[derive(Debug, Clone, Serialize)]
pub struct PlanDocument {
    /// `strata.plan/v2`.
    pub schema: &'static str,
    /// The target, if any.
    pub target: Option<String>,
    /// One plan per platform, in the order built.
    pub platforms: Vec<PlanDoc>,
}

/// The plan of one platform.
#[derive(Debug, Clone, Serialize)]
pub struct PlanDoc {
    /// The target, if any (shown in the table; in JSON on the document).
    #[serde(skip)]
    pub target: Option<String>,
    /// The platform.
    pub platform: String,
    /// What the plan was compared with: `record`, an image, or nothing.
    pub against: Option<String>,
    /// Rows in image order.
    pub layers: Vec<Row>,
    /// The build stages the target needs, in spec order (absent when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageRow>,
}

/// What an earlier build says of a layer.
#[derive(Debug, Clone)]
struct Earlier {
    inputs: String,
    key: Option<String>,
    size: Option<u64>,
    files: Option<usize>,
}

/// Runs the command.
pub fn run(args: &PlanArgs) -> Result<()> {
    let loaded = args.spec.load()?;
    let root = cache_root(args.cache_dir.as_ref());
    let mut docs = Vec::new();
    for spec in &loaded.specs {
        let opts = super::registry::Options {
            insecure: args.insecure_registry.clone(),
            offline: args.offline,
        };
        // A registry base: from the cache root by its pin (fetched if need
        // be). Without the base the layer keys are unknown: say so.
        let base = super::registry::fetch_base(spec, &root, &opts)
            .and_then(|registry_base| Ok(load_base_from(spec, registry_base.as_ref())?));
        let base = match base {
            Ok(b) => Some(b),
            Err(e) => {
                output::warn(format!(
                    "the base `{}` was not read, so the plan has no layer keys: {e}",
                    spec.image.from
                ));
                None
            }
        };
        if args.locked {
            check_locked(
                spec,
                base.as_ref()
                    .and_then(Option::as_ref)
                    .and_then(|b| b.manifest_digest.as_ref().map(ToString::to_string)),
            )?;
        }
        let plan = make_plan(spec, &root)?;
        output::diagnostics(&plan.warnings);
        for w in &plan.cache_warnings {
            output::warn(w);
        }
        let dirs = match &base {
            Some(b) => base_dirs(spec, b.as_ref(), &plan)
                .map(Some)
                .unwrap_or_else(|e| {
                    output::warn(format!(
                        "the base `{}` was not read, so the plan has no layer keys: {e}",
                        spec.image.from
                    ));
                    None
                }),
            None => None,
        };
        let keys: Vec<Option<String>> = match dirs {
            Some(dirs) => layer_keys(spec, &plan, &dirs)
                .into_iter()
                .map(|k| k.map(|k| k.to_string()))
                .collect(),
            None => vec![None; plan.layers.len()],
        };
        let (against, earlier) = match &args.against {
            Some(image) => (Some(image.clone()), Some(from_image(image, spec, &opts)?)),
            None => match last_record(spec, &root) {
                Some(r) => (
                    Some("last build".to_string()),
                    Some(
                        r.layers
                            .into_iter()
                            .map(|l| {
                                (
                                    l.id,
                                    Earlier {
                                        inputs: l.inputs,
                                        key: Some(l.key),
                                        size: Some(l.size),
                                        files: Some(l.files),
                                    },
                                )
                            })
                            .collect(),
                    ),
                ),
                None => (None, None),
            },
        };
        docs.push(PlanDoc {
            target: spec.target.clone(),
            platform: spec.platform.to_string(),
            against,
            layers: rows(&plan, &keys, earlier.as_ref()),
            stages: plan
                .stages
                .iter()
                .map(|st| StageRow {
                    name: st.name.clone(),
                    from: st.from.clone(),
                    inputs: st.inputs.to_string(),
                    steps: st.steps,
                    used_by: st.used_by.clone(),
                })
                .collect(),
        });
    }
    match args.format {
        Format::Json => {
            let doc = PlanDocument {
                schema: "strata.plan/v2",
                target: loaded.specs[0].target.clone(),
                platforms: docs,
            };
            let text = serde_json::to_string_pretty(&doc).expect("plan serializes");
            println!("{text}");
        }
        Format::Table => {
            for doc in &docs {
                print_table(doc);
            }
        }
    }
    Ok(())
}

fn rows(
    plan: &Plan,
    keys: &[Option<String>],
    earlier: Option<&BTreeMap<String, Earlier>>,
) -> Vec<Row> {
    let mut run_rebuilt = false;
    let mut out = Vec::new();
    for (layer, key) in plan.layers.iter().zip(keys) {
        let kind = match layer.kind {
            PlannedKind::Copy { .. } => "copy",
            PlannedKind::Run { .. } => "run",
        };
        let inputs = layer.inputs.to_string();
        let (status, reason) = match earlier.map(|e| e.get(&layer.id)) {
            None => ("unknown", None),
            Some(None) => (
                "rebuilt",
                Some("new layer: not in the earlier build".to_string()),
            ),
            Some(Some(e)) => {
                if e.inputs != inputs {
                    let how = match (e.size, e.files) {
                        (Some(s), Some(f)) => format!(
                            "inputs changed: {}, {} before; {}, {} now",
                            plural(f, "file"),
                            human(s),
                            plural(layer.input_files, "file"),
                            human(layer.input_size)
                        ),
                        _ => "inputs changed".to_string(),
                    };
                    ("rebuilt", Some(how))
                } else if kind == "run" && run_rebuilt {
                    (
                        "rebuilt",
                        Some("an earlier run layer is rebuilt".to_string()),
                    )
                } else if let (Some(k), Some(ek)) = (key, &e.key)
                    && k != ek
                {
                    (
                        "rebuilt",
                        Some(
                            "same inputs, but the base's directories or the writer changed"
                                .to_string(),
                        ),
                    )
                } else {
                    ("reused", None)
                }
            }
        };
        if kind == "run" && status == "rebuilt" {
            run_rebuilt = true;
        }
        out.push(Row {
            id: layer.id.clone(),
            kind,
            inputs,
            key: key.clone(),
            size: layer.input_size,
            files: layer.input_files,
            status,
            reason,
            stages: plan
                .stages
                .iter()
                .filter(|st| st.used_by.contains(&layer.id))
                .map(|st| st.name.clone())
                .collect(),
        });
    }
    out
}

fn print_table(doc: &PlanDoc) {
    let width = doc
        .layers
        .iter()
        .map(|r| r.id.len())
        .max()
        .unwrap_or(5)
        .max(5);
    output::note(format!(
        "plan for {} on {}{}",
        doc.target
            .as_deref()
            .map_or("the default target".into(), |t| format!("target `{t}`")),
        doc.platform,
        doc.against
            .as_ref()
            .map(|a| format!(", compared with {a}"))
            .unwrap_or_default()
    ));
    println!(
        "{:<width$}  {:<4}  {:<12}  {:>11}  {:>6}  {:<7}  REASON",
        "LAYER", "KIND", "INPUTS", "INPUT BYTES", "FILES", "STATUS"
    );
    for r in &doc.layers {
        println!(
            "{:<width$}  {:<4}  {:<12}  {:>11}  {:>6}  {:<7}  {}",
            r.id,
            r.kind,
            short(&r.inputs),
            human(r.size),
            r.files,
            r.status,
            r.reason.as_deref().unwrap_or("")
        );
    }
    if !doc.stages.is_empty() {
        let width = doc
            .stages
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let from_width = doc
            .stages
            .iter()
            .map(|s| s.from.len())
            .max()
            .unwrap_or(4)
            .max(4);
        println!();
        println!(
            "{:<width$}  {:<from_width$}  {:<12}  {:>5}  USED BY",
            "STAGE", "FROM", "INPUTS", "STEPS"
        );
        for s in &doc.stages {
            println!(
                "{:<width$}  {:<from_width$}  {:<12}  {:>5}  {}",
                s.name,
                s.from,
                short(&s.inputs),
                s.steps,
                if s.used_by.is_empty() {
                    "-".to_string()
                } else {
                    s.used_by.join(", ")
                }
            );
        }
    }
}

/// Reads the strata history entries of an image (docs/design.md §5).
fn from_image(
    image: &str,
    spec: &ResolvedSpec,
    opts: &super::registry::Options,
) -> Result<BTreeMap<String, Earlier>> {
    if let Some(reference) = image.strip_prefix("registry:") {
        let r = crate::registry::parse_reference(reference)?;
        let reg = super::registry::connect(
            &r,
            opts,
            &format!("reading the history of `{reference}` (--against)"),
        )?;
        let config = crate::registry::pull::fetch_config(&reg, &r, &spec.platform)?;
        let history: Vec<HistoryEntry> = config
            .get("history")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| Error::Input(format!("`{image}` has a malformed history: {e}")))?
            .unwrap_or_default();
        return strata_history(image, &history);
    }
    let mut _tmp = None;
    let r: ImageRef = if let Some(name) = image.strip_prefix("docker-daemon:") {
        let dir = tempfile::tempdir().map_err(|e| Error::Io {
            path: std::env::temp_dir(),
            source: e,
        })?;
        let file = dir.path().join("image.tar");
        let status = std::process::Command::new("docker")
            .args(["save", "-o"])
            .arg(&file)
            .arg(name)
            .status()
            .map_err(|e| Error::Io {
                path: "docker".into(),
                source: e,
            })?;
        if !status.success() {
            return Err(Error::Input(format!("`docker save {name}` failed")));
        }
        _tmp = Some(dir);
        ImageRef::DockerArchive {
            path: file,
            reference: Some(name.to_string()),
        }
    } else {
        image
            .parse()
            .map_err(|e| Error::Usage(format!("--against: {e}")))?
    };
    let img = import_base(&r, &spec.platform)?;
    strata_history(image, &img.history)
}

/// The strata entries of a history, by layer ID.
fn strata_history(image: &str, history: &[HistoryEntry]) -> Result<BTreeMap<String, Earlier>> {
    let mut out = BTreeMap::new();
    for h in history {
        let (Some(by), Some(comment)) = (&h.created_by, &h.comment) else {
            continue;
        };
        let (Some(id), Some(record)) = (record::layer_id(by), Record::parse(comment)) else {
            continue;
        };
        if let Some(inputs) = record.get("inputs") {
            out.insert(
                id.to_string(),
                Earlier {
                    inputs: inputs.to_string(),
                    key: record.get("key").map(str::to_string),
                    size: None,
                    files: None,
                },
            );
        }
    }
    if out.is_empty() {
        return Err(Error::Input(format!(
            "`{image}` has no strata history entries: it was not built by strata"
        )));
    }
    Ok(out)
}
