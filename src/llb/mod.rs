//! A pure builder for BuildKit's LLB: immutable values in, encoded bytes out.
//! No I/O happens here, and no protobuf or gRPC type appears in the public API.
//!
//! A [`State`] is a filesystem: either empty ([`scratch`]) or one output of an
//! op. Ops are built from option values ([`local`], [`image`], [`Exec`],
//! [`State::mkdir`], [`merge`], [`diff`]) and encoded as soon as they are built, so
//! every op knows its digest: `sha256:` and the hex SHA-256 of its exact bytes.
//! Ops are shared through [`Arc`], so cloning a [`State`] is cheap and a graph
//! can reuse an op any number of times; [`State::marshal`] writes each op once.
//!
//! What strata emits and why is in `docs/llb.md`; the wire schema is in `proto/`.

mod error;
mod exec;
mod file;
mod marshal;
mod source;

use std::collections::BTreeMap;
use std::sync::Arc;

use prost::Message;
use sha2::{Digest as _, Sha256};

use crate::proto::pb;

pub(crate) use error::LlbError;
pub(crate) use exec::{CacheSharing, Exec, Mount, NetMode, SecretEnv};
pub(crate) use file::Mkdir;
pub(crate) use marshal::Definition;
pub(crate) use source::{Differ, ResolveMode, image, local, scratch};

/// The `OpMetadata.description` key that names an op in progress output.
pub(crate) const CUSTOM_NAME: &str = "llb.customname";

/// The kind of an op, as reported by [`OpView`] and the JSON view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum OpKind {
    /// A source: local directory, image.
    Source,
    /// A process run in a container.
    Exec,
    /// File actions: copy, mkdir, mkfile, rm.
    File,
    /// Layers stacked on each other.
    Merge,
    /// The changes between two states.
    Diff,
    /// The last op of a definition, which names its result.
    Terminal,
    /// An op of a kind this builder does not make (from a decoded definition).
    Other,
}

impl OpKind {
    /// The lowercase name used in JSON.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            OpKind::Source => "source",
            OpKind::Exec => "exec",
            OpKind::File => "file",
            OpKind::Merge => "merge",
            OpKind::Diff => "diff",
            OpKind::Terminal => "terminal",
            OpKind::Other => "other",
        }
    }

    fn of(op: &pb::Op) -> OpKind {
        match &op.op {
            Some(pb::op::Op::Source(_)) => OpKind::Source,
            Some(pb::op::Op::Exec(_)) => OpKind::Exec,
            Some(pb::op::Op::File(_)) => OpKind::File,
            Some(pb::op::Op::Merge(_)) => OpKind::Merge,
            Some(pb::op::Op::Diff(_)) => OpKind::Diff,
            None => OpKind::Other,
        }
    }
}

pub(crate) use crate::platform::Platform;

/// A platform as LLB writes it, on the ops whose result depends on it
/// (image sources and execs; ops without one run on the worker's default
/// platform). An unset field is the empty string or list.
pub(crate) fn platform_to_proto(p: &Platform) -> pb::Platform {
    pb::Platform {
        architecture: p.architecture.clone(),
        os: p.os.clone(),
        variant: p.variant.clone().unwrap_or_default(),
        os_version: p.os_version.clone().unwrap_or_default(),
        os_features: p.os_features.clone().unwrap_or_default(),
    }
}

/// The platform of a protobuf message (a worker's, an image source's):
/// empty fields are unset.
pub(crate) fn platform_from_proto(p: &pb::Platform) -> Platform {
    let set = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Platform {
        architecture: p.architecture.clone(),
        os: p.os.clone(),
        os_version: set(&p.os_version),
        os_features: (!p.os_features.is_empty()).then(|| p.os_features.clone()),
        variant: set(&p.variant),
    }
}

/// A source file (the spec) that ops can point at, so BuildKit can show the
/// lines an op came from when it fails. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceMap {
    inner: Arc<SourceFile>,
}

#[derive(Debug, PartialEq, Eq)]
struct SourceFile {
    filename: String,
    data: Vec<u8>,
    language: String,
}

impl SourceMap {
    /// A file by its name as shown to the user, and its full content.
    pub(crate) fn new(filename: impl Into<String>, data: impl Into<Vec<u8>>) -> SourceMap {
        SourceMap {
            inner: Arc::new(SourceFile {
                filename: filename.into(),
                data: data.into(),
                language: String::new(),
            }),
        }
    }
}

/// A range of lines (1-based, inclusive) with optional columns (0 = none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct SourceRange {
    /// First line, 1-based.
    pub(crate) start_line: u32,
    /// Column on the first line, or 0.
    pub(crate) start_column: u32,
    /// Last line, 1-based.
    pub(crate) end_line: u32,
    /// Column on the last line, or 0.
    pub(crate) end_column: u32,
}

impl SourceRange {
    /// Whole lines `start..=end`.
    pub(crate) fn lines(start: u32, end: u32) -> SourceRange {
        SourceRange {
            start_line: start,
            start_column: 0,
            end_line: end,
            end_column: 0,
        }
    }
}

/// Where in a source file an op comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SourceLocation {
    map: SourceMap,
    ranges: Vec<SourceRange>,
}

/// Per-op data that is sent beside the op and is not part of its digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct OpMeta {
    description: BTreeMap<String, String>,
    caps: BTreeMap<String, bool>,
    ignore_cache: bool,
    locations: Vec<SourceLocation>,
}

impl OpMeta {
    fn cap(&mut self, cap: &str) {
        self.caps.insert(cap.to_owned(), true);
    }

    /// Adds what `other` says to `self`: for two ops with one digest.
    fn merge_from(&mut self, other: &OpMeta) {
        for (k, v) in &other.description {
            self.description
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
        for (k, v) in &other.caps {
            *self.caps.entry(k.clone()).or_insert(false) |= *v;
        }
        self.ignore_cache |= other.ignore_cache;
        for loc in &other.locations {
            if !self.locations.contains(loc) {
                self.locations.push(loc.clone());
            }
        }
    }
}

/// Options every op builder shares: a name for progress output, source
/// locations, and the cache switch.
#[derive(Debug, Clone, Default)]
struct Common {
    meta: OpMeta,
}

impl Common {
    fn custom_name(&mut self, name: String) {
        self.meta.description.insert(CUSTOM_NAME.to_owned(), name);
    }

    fn location(&mut self, map: &SourceMap, ranges: Vec<SourceRange>) {
        self.meta.locations.push(SourceLocation {
            map: map.clone(),
            ranges,
        });
    }
}

/// One encoded op and what it points at.
#[derive(Debug)]
struct Node {
    digest: String,
    bytes: Vec<u8>,
    inputs: Vec<Output>,
    kind: OpKind,
    meta: OpMeta,
}

impl Node {
    /// Encodes `op` with `inputs` as its input edges.
    fn build(mut op: pb::Op, inputs: Vec<Output>, kind: OpKind, meta: OpMeta) -> Arc<Node> {
        op.inputs = inputs.iter().map(Output::to_input).collect();
        let bytes = op.encode_to_vec();
        Arc::new(Node {
            digest: digest_of(&bytes),
            bytes,
            inputs,
            kind,
            meta,
        })
    }

    /// The same op with other metadata.
    fn with_meta(&self, meta: OpMeta) -> Arc<Node> {
        Arc::new(Node {
            digest: self.digest.clone(),
            bytes: self.bytes.clone(),
            inputs: self.inputs.clone(),
            kind: self.kind,
            meta,
        })
    }
}

/// `sha256:<hex>` of `bytes`: the digest BuildKit computes for an op.
fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// One output of an op: an edge other ops can take as input.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    node: Arc<Node>,
    index: u32,
}

impl Output {
    /// The digest of the op.
    #[cfg(test)]
    pub(crate) fn digest(&self) -> &str {
        &self.node.digest
    }

    /// Which output of the op.
    #[cfg(test)]
    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    fn to_input(&self) -> pb::Input {
        pb::Input {
            digest: self.node.digest.clone(),
            index: i64::from(self.index),
        }
    }

    fn same_edge(&self, other: &Output) -> bool {
        self.index == other.index && self.node.digest == other.node.digest
    }
}

/// A filesystem: empty, or one output of an op. Immutable; every method
/// returns a new value and clones are cheap.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    output: Option<Output>,
}

impl State {
    fn from_output(node: Arc<Node>, index: u32) -> State {
        State {
            output: Some(Output { node, index }),
        }
    }

    /// Whether this is the empty filesystem.
    pub(crate) fn is_scratch(&self) -> bool {
        self.output.is_none()
    }

    /// The op output this state is, or `None` for scratch.
    #[cfg(test)]
    pub(crate) fn output(&self) -> Option<&Output> {
        self.output.as_ref()
    }

    /// The digest of the op that produces this state, or `None` for scratch.
    #[cfg(test)]
    pub(crate) fn digest(&self) -> Option<&str> {
        self.output.as_ref().map(Output::digest)
    }

    /// The same state, with its op shown as `name` in progress output
    /// (`llb.customname`). Scratch is returned unchanged.
    pub(crate) fn custom_name(&self, name: impl Into<String>) -> State {
        let name = name.into();
        self.map_meta(|m| {
            m.description.insert(CUSTOM_NAME.to_owned(), name);
        })
    }

    /// The same state, with its op pointing at `ranges` of `map`, so BuildKit
    /// can show those lines when the op fails. Scratch is returned unchanged.
    #[cfg(test)]
    pub(crate) fn with_location(&self, map: &SourceMap, ranges: &[SourceRange]) -> State {
        self.map_meta(|m| {
            m.locations.push(SourceLocation {
                map: map.clone(),
                ranges: ranges.to_vec(),
            });
        })
    }

    /// The same state, with its op never taken from the cache.
    pub(crate) fn ignore_cache(&self) -> State {
        self.map_meta(|m| m.ignore_cache = true)
    }

    fn map_meta(&self, f: impl FnOnce(&mut OpMeta)) -> State {
        match &self.output {
            None => State::default(),
            Some(out) => {
                let mut meta = out.node.meta.clone();
                f(&mut meta);
                State::from_output(out.node.with_meta(meta), out.index)
            }
        }
    }
}

/// Stacks `states` in order, later ones on top (BuildKit's MergeOp, cap
/// `mergeop`). Scratch states are dropped; one state left is returned as is,
/// none gives scratch.
pub(crate) fn merge(states: impl IntoIterator<Item = State>) -> State {
    let outputs: Vec<Output> = states.into_iter().filter_map(|s| s.output).collect();
    match outputs.len() {
        0 => State::default(),
        1 => State {
            output: outputs.into_iter().next(),
        },
        n => {
            let merge = pb::MergeOp {
                inputs: (0..n as i64)
                    .map(|input| pb::MergeInput { input })
                    .collect(),
            };
            let op = pb::Op {
                op: Some(pb::op::Op::Merge(merge)),
                ..Default::default()
            };
            let mut meta = OpMeta::default();
            meta.cap("mergeop");
            State::from_output(Node::build(op, outputs, OpKind::Merge, meta), 0)
        }
    }
}

/// The changes that turn `lower` into `upper` (BuildKit's DiffOp, cap
/// `diffop`); either side may be scratch.
pub(crate) fn diff(lower: &State, upper: &State) -> State {
    let mut inputs = Vec::new();
    let mut index_of = |s: &State| match &s.output {
        None => -1,
        Some(o) => {
            inputs.push(o.clone());
            inputs.len() as i64 - 1
        }
    };
    let diff = pb::DiffOp {
        lower: Some(pb::LowerDiffInput {
            input: index_of(lower),
        }),
        upper: Some(pb::UpperDiffInput {
            input: index_of(upper),
        }),
    };
    let op = pb::Op {
        op: Some(pb::op::Op::Diff(diff)),
        ..Default::default()
    };
    let mut meta = OpMeta::default();
    meta.cap("diffop");
    State::from_output(Node::build(op, inputs, OpKind::Diff, meta), 0)
}

/// The distinct edges an op takes, in first-use order; each op input is
/// listed once however often it is used.
#[derive(Debug, Default)]
struct Inputs {
    outputs: Vec<Output>,
}

impl Inputs {
    /// The input index of `state`, or −1 for scratch.
    fn index_of(&mut self, state: &State) -> i64 {
        let Some(out) = &state.output else {
            return -1;
        };
        if let Some(i) = self.outputs.iter().position(|o| o.same_edge(out)) {
            return i as i64;
        }
        self.outputs.push(out.clone());
        self.outputs.len() as i64 - 1
    }
}

#[cfg(test)]
mod tests;
