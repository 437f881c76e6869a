//! The validated spec: the only form later layers accept.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use super::error::SpecSource;
use super::reference::ImageRef;

/// The docs/design.md §1 default layer timestamp: 1980-01-02T00:00:00Z. Frozen.
pub const DEFAULT_TIMESTAMP: u64 = 315_619_200;
/// The latest time an image can record: 9999-12-31T23:59:59Z. RFC 3339,
/// which image configs use, has four-digit years (skopeo and Docker refuse
/// a later `created`).
pub const MAX_TIMESTAMP: u64 = 253_402_300_799;
/// Default `max_layers` (docs/design.md §6).
pub const DEFAULT_MAX_LAYERS: u32 = 100;
/// Most layers an image may have, base layers included: Docker's
/// graphdriver store stacks at most 125 (docs/design.md §6). `max_layers`
/// cannot be raised past it.
pub const LAYER_LIMIT: u32 = 125;
/// Default `split_min`: 32 MiB.
pub const DEFAULT_SPLIT_MIN: u64 = 32 * 1024 * 1024;
/// Largest spec file accepted (docs/design.md §6).
pub const MAX_SPEC_BYTES: u64 = 2 * 1024 * 1024;
/// Default cache mount namespace (docs/design.md §4).
pub const DEFAULT_CACHE_NAMESPACE: &str = "strata";

/// A spec resolved for one target and one platform, checked against the context.
#[derive(Debug, Clone)]
pub struct ResolvedSpec {
    /// The spec text, for diagnostics.
    pub source: SpecSource,
    /// The build context directory, canonical.
    pub context: PathBuf,
    /// The target built, if any.
    pub target: Option<String>,
    /// The platform this resolution is for.
    pub platform: Platform,
    /// Every platform the spec asks for (or the builder's default).
    pub platforms: Vec<Platform>,
    /// Build argument values after overrides.
    pub args: BTreeMap<String, String>,
    /// Base image and config.
    pub image: Image,
    /// The layers of the target, in spec order.
    pub layers: Vec<Layer>,
    /// The stages the target's layers need (directly or as another stage's
    /// base), in spec order; a stage no layer of the target needs is left out.
    pub stages: Vec<Stage>,
    /// The image bases of every declared stage, of any target, sorted
    /// (`strata lock` pins them all, docs/design.md §5).
    pub stage_bases: Vec<BaseRef>,
}

impl ResolvedSpec {
    /// The spec file's name (`strata.toml`), for `<name>.dockerignore`.
    pub fn spec_file_name(&self) -> String {
        self.source
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "strata.toml".into())
    }
}

/// Where the base image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseRef {
    /// No base.
    Scratch,
    /// An image on disk: `oci-layout:`, `oci-archive:` or `docker-archive:`
    /// (its path relative to the context).
    Local(ImageRef),
    /// A registry reference such as `python:3.11-slim`.
    Registry(String),
}

impl fmt::Display for BaseRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BaseRef::Scratch => f.write_str("scratch"),
            BaseRef::Local(r) => r.fmt(f),
            BaseRef::Registry(r) => f.write_str(r),
        }
    }
}

pub use crate::platform::Platform;

/// `[image]` after substitution, with the target's overrides applied.
#[derive(Debug, Clone)]
pub struct Image {
    /// Base image.
    pub from: BaseRef,
    /// Span of `from` in the spec (empty when defaulted).
    pub from_span: Range<usize>,
    /// Working directory.
    pub workdir: Option<String>,
    /// User.
    pub user: Option<String>,
    /// Entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Command.
    pub cmd: Option<Vec<String>>,
    /// Environment (sorted by name).
    pub env: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Exposed ports, normalized to `PORT/proto`.
    pub expose: Vec<String>,
    /// Volumes.
    pub volumes: Vec<String>,
    /// Stop signal.
    pub stop_signal: Option<String>,
    /// Health check.
    pub healthcheck: Option<Healthcheck>,
    /// Layer timestamp (docs/design.md §1).
    pub timestamp: u64,
    /// Layer budget (docs/design.md §6).
    pub max_layers: u32,
    /// Span of `max_layers` in the spec (empty when defaulted).
    pub max_layers_span: Range<usize>,
    /// Cache mount namespace (docs/design.md §4).
    pub cache_namespace: String,
    /// Default layer compression (`[image] compression`).
    pub compression: LayerCompression,
}

/// How the embedded builder stores a copy layer's blob (`compression`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerCompression {
    /// gzip, unless the content does not compress (then uncompressed).
    #[default]
    Auto,
    /// Always gzip.
    Gzip,
    /// Always zstd (`+zstd` media type).
    Zstd,
    /// Never compressed.
    None,
}

impl LayerCompression {
    /// Every spelling, for messages.
    pub const NAMES: [&str; 4] = ["auto", "gzip", "zstd", "none"];

    /// Parses a spec value.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "auto" => Self::Auto,
            "gzip" => Self::Gzip,
            "zstd" => Self::Zstd,
            "none" => Self::None,
            _ => return None,
        })
    }

    /// The spec spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
            Self::None => "none",
        }
    }
}

/// Docker's health check; durations in nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    /// The test command.
    pub test: Vec<String>,
    /// Interval in ns.
    pub interval: Option<u64>,
    /// Timeout in ns.
    pub timeout: Option<u64>,
    /// Start period in ns.
    pub start_period: Option<u64>,
    /// Retries.
    pub retries: Option<u32>,
}

/// One spec layer of the target.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The name: the layer ID (docs/design.md §1).
    pub name: String,
    /// Span of the whole `[[layer]]` table.
    pub span: Range<usize>,
    /// Span of the name value.
    pub name_span: Range<usize>,
    /// What it is.
    pub kind: LayerKind,
}

/// Copy or run.
#[derive(Debug, Clone)]
pub enum LayerKind {
    /// Context files.
    Copy(CopyLayer),
    /// A command.
    Run(RunLayer),
}

/// A copy layer.
#[derive(Debug, Clone)]
pub struct CopyLayer {
    /// Entries in spec order.
    pub entries: Vec<CopyEntry>,
    /// `split = "file"` with its threshold.
    pub split: Option<Split>,
    /// Owner of every entry.
    pub owner: Owner,
    /// This layer's `compression`, when it sets one.
    pub compression: Option<LayerCompression>,
}

/// `split = "file"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Files of at least this many bytes get their own layer.
    pub min: u64,
    /// Span of the `split` key's value.
    pub span: Range<usize>,
}

/// Numeric owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// One copy entry.
#[derive(Debug, Clone)]
pub struct CopyEntry {
    /// Context-relative source, cleaned (`.` for the whole context).
    pub from: String,
    /// Absolute destination, cleaned.
    pub to: String,
    /// Whether `to` ended with `/` (a file is then copied into it).
    pub to_is_dir: bool,
    /// Mode for every regular file.
    pub mode: Option<u32>,
    /// Exclude patterns relative to `from`.
    pub exclude: Vec<String>,
    /// Span of the entry table.
    pub span: Range<usize>,
    /// Span of `from`.
    pub from_span: Range<usize>,
    /// The stage it copies from; `from` is then an absolute path in the
    /// stage's final state instead of a context path.
    pub stage: Option<String>,
}

/// A run layer.
#[derive(Debug, Clone)]
pub struct RunLayer {
    /// The shell command (list joined with ` && `), run by `/bin/sh -c`.
    pub command: String,
    /// Context-relative inputs, cleaned.
    pub inputs: Vec<RunInput>,
    /// Inputs are mounted writable (changes discarded).
    pub inputs_writable: bool,
    /// What the command wrote gets the layer timestamp (`normalize`,
    /// default `true`).
    pub normalize: bool,
    /// Cache mounts.
    pub cache: Vec<CacheMount>,
    /// Environment over the image's.
    pub env: BTreeMap<String, String>,
    /// User.
    pub user: Option<String>,
    /// Working directory.
    pub workdir: Option<String>,
    /// Network mode.
    pub network: Network,
    /// Secrets.
    pub secrets: Vec<Secret>,
    /// SSH agent ids (`default` for `ssh = true`).
    pub ssh: Vec<String>,
    /// Stage paths mounted read-only while the command runs.
    pub mounts: Vec<StageMount>,
}

/// A stage path mounted read-only into a run layer's command; never in the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageMount {
    /// The stage.
    pub stage: String,
    /// Absolute path in the stage's final state, cleaned.
    pub from: String,
    /// Absolute mount point, cleaned.
    pub to: String,
    /// Span of the mount table.
    pub span: Range<usize>,
}

/// A `[[stage]]`: an exec chain on its own base, never in the image.
#[derive(Debug, Clone)]
pub struct Stage {
    /// The name.
    pub name: String,
    /// Span of the whole `[[stage]]` table.
    pub span: Range<usize>,
    /// Span of the name value.
    pub name_span: Range<usize>,
    /// Its base.
    pub from: StageFrom,
    /// Span of `from`.
    pub from_span: Range<usize>,
    /// Working directory of the steps.
    pub workdir: Option<String>,
    /// Environment of every step (sorted by name).
    pub env: BTreeMap<String, String>,
    /// The steps in order; each step's `workdir` defaults to the stage's.
    pub steps: Vec<StageStep>,
}

/// The base of a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageFrom {
    /// An image (as the image's `from`; pinned in `strata.lock`).
    Image(BaseRef),
    /// The final state of another stage.
    Stage(String),
}

/// One `[[stage.step]]`.
#[derive(Debug, Clone)]
pub struct StageStep {
    /// The command and its mounts, as a run layer's.
    pub run: RunLayer,
    /// Span of the `[[stage.step]]` table.
    pub span: Range<usize>,
    /// Span of its `run` value.
    pub run_span: Range<usize>,
}

impl ResolvedSpec {
    /// The stage named `name`, if the target needs it.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }
}

impl Layer {
    /// The stages this layer reads directly (copy entries and mounts), sorted.
    pub fn stages_used(&self) -> Vec<String> {
        self.kind.stages_used()
    }
}

impl LayerKind {
    /// The stages a layer of this kind reads directly, sorted.
    pub fn stages_used(&self) -> Vec<String> {
        let mut out: Vec<String> = match self {
            LayerKind::Copy(c) => c.entries.iter().filter_map(|e| e.stage.clone()).collect(),
            LayerKind::Run(r) => r.mounts.iter().map(|m| m.stage.clone()).collect(),
        };
        out.sort();
        out.dedup();
        out
    }
}

/// A cache mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheMount {
    /// Where it is mounted.
    pub target: String,
    /// Sharing mode.
    pub sharing: Sharing,
}

/// Cache sharing, as BuildKit's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Shared between concurrent builds.
    Shared,
    /// One build at a time.
    Locked,
    /// A private copy per build.
    Private,
}

/// Network mode of a run layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// The builder's default network.
    Default,
    /// No network.
    None,
}

/// A secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    /// Id.
    pub id: String,
    /// How it is exposed.
    pub expose: SecretExpose,
}

/// How a secret is exposed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretExpose {
    /// As an environment variable.
    Env(String),
    /// As a file.
    File(String),
}

/// One input of a run layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInput {
    /// Context-relative path, cleaned.
    pub path: String,
    /// Span in the spec.
    pub span: Range<usize>,
}
