//! The raw, deserialized form of `strata.toml` v1 (`docs/spec.md`).
//!
//! These types mirror the file one to one and keep the source span of every
//! value, so validation can point at the offending text. Nothing here is
//! checked beyond its TOML type: [`super::resolve`] turns a [`RawSpec`] into the
//! validated [`super::ResolvedSpec`] that later layers accept.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;

/// A value with the byte range it came from in the spec text.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct Sp<T>(pub toml::Spanned<T>);

impl<T> Sp<T> {
    /// The value.
    pub fn get(&self) -> &T {
        self.0.get_ref()
    }

    /// The byte range of the value in the spec text.
    pub fn span(&self) -> Range<usize> {
        self.0.span()
    }
}

impl<T: JsonSchema> JsonSchema for Sp<T> {
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }

    fn inline_schema() -> bool {
        T::inline_schema()
    }
}

/// A whole `strata.toml`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "strata.toml", description = "strata layer spec, version 1")]
pub struct RawSpec {
    /// Spec format version; must be 1.
    pub version: Sp<i64>,
    /// The image: base, platforms and config.
    #[serde(default)]
    pub image: Option<Sp<RawImage>>,
    /// Build arguments with their default values, used by `${NAME}`.
    #[serde(default)]
    pub args: BTreeMap<String, Sp<String>>,
    /// The layers, from least to most frequently changing.
    #[serde(default)]
    pub layer: Vec<Sp<RawLayer>>,
    /// Named targets with their config overrides.
    #[serde(default)]
    pub target: BTreeMap<String, Sp<RawTarget>>,
    /// Build stages: exec chains whose results layers copy or mount; never in the image.
    #[serde(default)]
    pub stage: Vec<Sp<RawStage>>,
}

/// One `[[stage]]`: an exec chain on its own base whose final state layers
/// copy from (`{ stage, from, to }`) or mount (`mounts`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    /// Unique name, `[a-z0-9][a-z0-9._-]*`.
    pub name: Sp<String>,
    /// Base: an image reference, `scratch`, or the name of another stage.
    pub from: Sp<String>,
    /// Working directory of the steps (default `/`).
    pub workdir: Option<Sp<String>>,
    /// Environment of every step.
    #[serde(default)]
    pub env: BTreeMap<String, Sp<String>>,
    /// The steps, in order: each one cached exec in the stage's chain.
    #[serde(default)]
    pub step: Vec<Sp<RawStep>>,
}

/// One `[[stage.step]]`: the keys of a run layer.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    /// Command(s) to run; a list is joined with `&&`.
    pub run: Sp<RunCommand>,
    /// Context paths mounted read-only while the command runs.
    pub inputs: Option<Vec<Sp<String>>>,
    /// Mount the inputs writable (changes are discarded).
    pub inputs_writable: Option<Sp<bool>>,
    /// Give what the command wrote the layer timestamp (default `true`);
    /// `false` keeps the command's own file times.
    pub normalize: Option<Sp<bool>>,
    /// Cache mounts kept across builds.
    pub cache: Option<Vec<Sp<RawCache>>>,
    /// Environment of the command, over the stage's.
    pub env: Option<BTreeMap<String, Sp<String>>>,
    /// User the command runs as.
    pub user: Option<Sp<String>>,
    /// Working directory of the command, over the stage's.
    pub workdir: Option<Sp<String>>,
    /// `"default"` or `"none"`.
    pub network: Option<Sp<String>>,
    /// Secrets, as files or environment variables.
    pub secrets: Option<Vec<Sp<RawSecret>>>,
    /// SSH agent forwarding: `true` or a list of ids.
    pub ssh: Option<Sp<RawSsh>>,
}

/// `{ stage, from, to }` in a run layer's `mounts`: a stage's path, read-only.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMount {
    /// The stage.
    pub stage: Sp<String>,
    /// Absolute path in the stage's final state.
    pub from: Sp<String>,
    /// Absolute mount point while the command runs.
    pub to: Sp<String>,
}

/// `[image]`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawImage {
    /// Base image: a reference, `scratch`, `oci-layout:PATH[:TAG]`,
    /// `oci-archive:FILE[:TAG]` or `docker-archive:FILE`.
    pub from: Option<Sp<String>>,
    /// Platforms to build, `os/arch[/variant]`.
    pub platforms: Option<Vec<Sp<String>>>,
    /// Working directory of the image.
    pub workdir: Option<Sp<String>>,
    /// User the image runs as.
    pub user: Option<Sp<String>>,
    /// Entrypoint, as a list of strings.
    pub entrypoint: Option<Vec<Sp<String>>>,
    /// Default command, as a list of strings.
    pub cmd: Option<Vec<Sp<String>>>,
    /// Environment, merged over the base image's by name.
    #[serde(default)]
    pub env: BTreeMap<String, Sp<String>>,
    /// Labels, merged over the base image's.
    #[serde(default)]
    pub labels: BTreeMap<String, Sp<String>>,
    /// Exposed ports, `PORT[/tcp|/udp]`.
    #[serde(default)]
    pub expose: Vec<Sp<String>>,
    /// Volumes (absolute paths).
    #[serde(default)]
    pub volumes: Vec<Sp<String>>,
    /// Stop signal, e.g. `SIGTERM`.
    pub stop_signal: Option<Sp<String>>,
    /// Health check, as Docker's.
    pub healthcheck: Option<Sp<RawHealthcheck>>,
    /// Fixed mtime of every entry of every copy layer (docs/design.md §1).
    pub timestamp: Option<Sp<i64>>,
    /// Most strata layers a target may have (docs/design.md §6).
    pub max_layers: Option<Sp<i64>>,
    /// Namespace of cache mount ids (docs/design.md §4).
    pub cache_namespace: Option<Sp<String>>,
    /// Default layer compression: `auto` (the default), `gzip`, `zstd` or
    /// `none` (embedded builder).
    pub compression: Option<Sp<String>>,
}

/// `[image.healthcheck]`, as Docker's `HEALTHCHECK`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHealthcheck {
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]`.
    pub test: Sp<Vec<String>>,
    /// Time between checks, e.g. `30s`.
    pub interval: Option<Sp<String>>,
    /// Time one check may take.
    pub timeout: Option<Sp<String>>,
    /// Grace period after start.
    pub start_period: Option<Sp<String>>,
    /// Failures before unhealthy.
    pub retries: Option<Sp<i64>>,
}

/// One `[[layer]]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLayer {
    /// Unique name, `[a-z0-9][a-z0-9._-]*`: the layer ID.
    pub name: Sp<String>,
    /// Context files to copy (a copy layer).
    pub copy: Option<Sp<Vec<Sp<RawCopy>>>>,
    /// `"file"`: every regular file at or above `split_min` becomes its own layer.
    pub split: Option<Sp<String>>,
    /// Size threshold of `split`, e.g. `32MiB` (the default).
    pub split_min: Option<Sp<String>>,
    /// This copy layer's compression: `auto`, `gzip`, `zstd` or `none`
    /// (default: `[image] compression`; embedded builder).
    pub compression: Option<Sp<String>>,
    /// Owner of every entry, `uid[:gid]` (default `0:0`).
    pub owner: Option<Sp<String>>,
    /// Command(s) to run (a run layer); a list is joined with `&&`.
    pub run: Option<Sp<RunCommand>>,
    /// Context paths mounted read-only while the command runs.
    pub inputs: Option<Vec<Sp<String>>>,
    /// Mount the inputs writable (changes are discarded).
    pub inputs_writable: Option<Sp<bool>>,
    /// Give what the command wrote the layer timestamp (default `true`);
    /// `false` keeps the command's own file times.
    pub normalize: Option<Sp<bool>>,
    /// Cache mounts kept across builds.
    pub cache: Option<Vec<Sp<RawCache>>>,
    /// Environment of the command, over the image's.
    pub env: Option<BTreeMap<String, Sp<String>>>,
    /// User the command runs as.
    pub user: Option<Sp<String>>,
    /// Working directory of the command.
    pub workdir: Option<Sp<String>>,
    /// `"default"` or `"none"`.
    pub network: Option<Sp<String>>,
    /// Secrets, as files or environment variables.
    pub secrets: Option<Vec<Sp<RawSecret>>>,
    /// SSH agent forwarding: `true` or a list of ids.
    pub ssh: Option<Sp<RawSsh>>,
    /// Targets this layer belongs to; without it, every target.
    pub targets: Option<Vec<Sp<String>>>,
    /// Stage paths mounted read-only while the command runs (run layers).
    pub mounts: Option<Vec<Sp<RawMount>>>,
}

/// One entry of a copy layer.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCopy {
    /// Context-relative file or directory; with `stage`, an absolute path in
    /// that stage's final state.
    pub from: Sp<String>,
    /// Copy from this stage instead of the build context.
    pub stage: Option<Sp<String>>,
    /// Absolute destination in the image.
    pub to: Sp<String>,
    /// Octal mode for every regular file, e.g. `"0755"`.
    pub mode: Option<Sp<String>>,
    /// Patterns (`.dockerignore` syntax) relative to `from` to leave out.
    #[serde(default)]
    pub exclude: Vec<Sp<String>>,
}

/// `run = "cmd"` or `run = ["cmd1", "cmd2"]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "a command string or a list of command strings")]
pub enum RunCommand {
    /// One command.
    One(String),
    /// Commands joined with `&&`.
    Many(Vec<String>),
}

/// A cache mount: a target path or a table.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "a path or a table { target = \"/path\", sharing = \"shared\" | \"locked\" | \"private\" }"
)]
pub enum RawCache {
    /// Just the target path; sharing is `shared`.
    Path(String),
    /// A table.
    Table(RawCacheTable),
}

/// `{ target, sharing }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCacheTable {
    /// Where the cache is mounted.
    pub target: String,
    /// `shared` (default), `locked` or `private`.
    pub sharing: Option<String>,
}

/// `{ id, env | target }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSecret {
    /// Secret id, as given to `--secret id=...`.
    pub id: String,
    /// Expose as this environment variable.
    pub env: Option<String>,
    /// Expose as a file at this path (default `/run/secrets/ID`).
    pub target: Option<String>,
}

/// `ssh = true` or `ssh = ["ID", ...]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "true, false or a list of ssh ids")]
pub enum RawSsh {
    /// The default agent.
    Enabled(bool),
    /// Named agents.
    Ids(Vec<String>),
}

/// `[target.NAME]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    /// Entrypoint override.
    pub entrypoint: Option<Vec<Sp<String>>>,
    /// Command override.
    pub cmd: Option<Vec<Sp<String>>>,
    /// User override.
    pub user: Option<Sp<String>>,
    /// Working directory override.
    pub workdir: Option<Sp<String>>,
    /// Extra environment.
    #[serde(default)]
    pub env: BTreeMap<String, Sp<String>>,
    /// Extra labels.
    #[serde(default)]
    pub labels: BTreeMap<String, Sp<String>>,
}
