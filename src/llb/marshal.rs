//! Marshaling: a [`State`] becomes a [`Definition`], the message BuildKit
//! solves. Ops come depth-first with inputs before their users, each op once,
//! and a terminal op last that holds only the edge to the result.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use prost::Message;
use serde_json::{Value, json};

use super::{
    CUSTOM_NAME, LlbError, Node, OpKind, OpMeta, Output, SourceFile, SourceLocation, SourceMap,
    SourceRange, State, digest_of,
};
use crate::proto::pb;

/// The `schema` of [`Definition::to_json`].
pub(crate) const SCHEMA: &str = "strata.llb/v1";

/// Caps every definition needs for its terminal op, as BuildKit's own client
/// lists them.
const TERMINAL_CAPS: [&str; 2] = ["constraints", "platform"];

/// A marshaled LLB graph, ready to send in a `SolveRequest`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Definition {
    proto: pb::Definition,
}

impl State {
    /// Marshals the graph that produces this state. Scratch gives an empty
    /// definition, which BuildKit solves to an empty result.
    pub(crate) fn marshal(&self) -> Definition {
        let Some(head) = &self.output else {
            return Definition {
                proto: pb::Definition::default(),
            };
        };
        let mut order: Vec<Arc<Node>> = Vec::new();
        let mut metas: BTreeMap<String, OpMeta> = BTreeMap::new();
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        // Iterative post-order walk, so long chains cannot overflow the stack.
        let mut stack: Vec<(&Arc<Node>, usize)> = vec![(&head.node, 0)];
        while let Some((node, next)) = stack.pop() {
            if next == 0 && seen.contains(node.digest.as_str()) {
                // Another path reached this op first; keep its metadata too.
                if let Some(m) = metas.get_mut(&node.digest) {
                    m.merge_from(&node.meta);
                }
                continue;
            }
            if let Some(input) = node.inputs.get(next) {
                stack.push((node, next + 1));
                stack.push((&input.node, 0));
                continue;
            }
            if seen.insert(node.digest.as_str()) {
                metas.insert(node.digest.clone(), node.meta.clone());
                order.push(node.clone());
            } else if let Some(m) = metas.get_mut(&node.digest) {
                m.merge_from(&node.meta);
            }
        }

        let terminal = pb::Op {
            inputs: vec![head.to_input()],
            ..Default::default()
        };
        let terminal_bytes = terminal.encode_to_vec();
        let terminal_digest = digest_of(&terminal_bytes);
        let mut terminal_meta = OpMeta::default();
        for cap in TERMINAL_CAPS {
            terminal_meta.cap(cap);
        }
        if metas.values().any(|m| !m.description.is_empty()) {
            terminal_meta.cap("meta.description");
        }
        if metas.values().any(|m| m.ignore_cache) {
            terminal_meta.cap("meta.ignorecache");
        }

        let mut def: Vec<Vec<u8>> = order.iter().map(|n| n.bytes.clone()).collect();
        def.push(terminal_bytes);
        let source = source_map(&order, &metas);
        metas.insert(terminal_digest, terminal_meta);
        let metadata = metas
            .into_iter()
            .map(|(digest, m)| {
                let md = pb::OpMetadata {
                    ignore_cache: m.ignore_cache,
                    description: m.description,
                    caps: m.caps,
                    ..Default::default()
                };
                (digest, md)
            })
            .collect();
        Definition {
            proto: pb::Definition {
                def,
                metadata,
                source,
            },
        }
    }
}

/// `Definition.Source`: the files ops point at, in order of first use, and
/// each op's ranges in them.
fn source_map(order: &[Arc<Node>], metas: &BTreeMap<String, OpMeta>) -> Option<pb::Source> {
    let mut infos: Vec<&SourceMap> = Vec::new();
    let mut locations = BTreeMap::new();
    for node in order {
        let meta = &metas[&node.digest];
        if meta.locations.is_empty() {
            continue;
        }
        let mut locs = Vec::new();
        for loc in &meta.locations {
            let index = match infos.iter().position(|m| *m == &loc.map) {
                Some(i) => i,
                None => {
                    infos.push(&loc.map);
                    infos.len() - 1
                }
            };
            locs.push(pb::Location {
                source_index: index as i32,
                ranges: loc.ranges.iter().map(range_to_proto).collect(),
            });
        }
        locations.insert(node.digest.clone(), pb::Locations { locations: locs });
    }
    if infos.is_empty() {
        return None;
    }
    Some(pb::Source {
        locations,
        infos: infos
            .into_iter()
            .map(|m| pb::SourceInfo {
                filename: m.inner.filename.clone(),
                data: m.inner.data.clone(),
                definition: None,
                language: m.inner.language.clone(),
            })
            .collect(),
    })
}

fn range_to_proto(r: &SourceRange) -> pb::Range {
    let pos = |line: u32, character: u32| pb::Position {
        line: i32::try_from(line).unwrap_or(i32::MAX),
        character: i32::try_from(character).unwrap_or(i32::MAX),
    };
    pb::Range {
        start: Some(pos(r.start_line, r.start_column)),
        end: Some(pos(r.end_line, r.end_column)),
    }
}

fn range_from_proto(r: &pb::Range) -> SourceRange {
    let (start, end) = (r.start.unwrap_or_default(), r.end.unwrap_or_default());
    let n = |v: i32| u32::try_from(v).unwrap_or(0);
    SourceRange {
        start_line: n(start.line),
        start_column: n(start.character),
        end_line: n(end.line),
        end_column: n(end.character),
    }
}

/// One op of a [`Definition`], decoded for inspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpView {
    /// `sha256:` digest of the op's bytes.
    pub(crate) digest: String,
    /// What the op does; the last op is [`OpKind::Terminal`].
    pub(crate) kind: OpKind,
    /// Input edges: op digest and output index.
    pub(crate) inputs: Vec<(String, i64)>,
    /// The `llb.customname` of the op, if any.
    pub(crate) description: Option<String>,
    /// The caps listed for the op, sorted.
    pub(crate) caps: Vec<String>,
}

impl Definition {
    /// The encoded `pb.Definition`, as sent to BuildKit.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        self.proto.encode_to_vec()
    }

    /// Parses encoded bytes, checking that every op decodes.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Definition, LlbError> {
        let proto = pb::Definition::decode(bytes)?;
        let def = Definition { proto };
        def.decode_ops()?;
        Ok(def)
    }

    /// Whether this is the empty (scratch) definition.
    pub(crate) fn is_empty(&self) -> bool {
        self.proto.def.is_empty()
    }

    /// The digest of the op whose output is the result, or `None` when empty.
    pub(crate) fn head(&self) -> Option<String> {
        let last = self.proto.def.last()?;
        let op = pb::Op::decode(last.as_slice()).ok()?;
        op.inputs.first().map(|i| i.digest.clone())
    }

    /// The image reference (without `docker-image://`) and platform when the
    /// definition is exactly one image source, as BuildKit writes a
    /// frontend's own LLB; `None` for anything else.
    pub(crate) fn image_source(&self) -> Option<(String, Option<super::Platform>)> {
        let ops = self.decode_ops().ok()?;
        let [source, terminal] = ops.as_slice() else {
            return None;
        };
        if terminal.op.is_some() {
            return None;
        }
        let Some(pb::op::Op::Source(src)) = &source.op else {
            return None;
        };
        let reference = src.identifier.strip_prefix("docker-image://")?;
        let platform = source.platform.as_ref().map(super::platform_from_proto);
        Some((reference.to_owned(), platform))
    }

    /// The protobuf message, for the gateway client's `SolveRequest`.
    #[cfg(test)]
    pub(crate) fn to_proto(&self) -> pb::Definition {
        self.proto.clone()
    }

    /// Wraps a protobuf message (from `Inputs` or a solved `Ref`); see
    /// [`Definition::to_state`] to build on it.
    #[cfg(test)]
    pub(crate) fn from_proto(proto: pb::Definition) -> Definition {
        Definition { proto }
    }

    /// Each op decoded, in definition order.
    pub(crate) fn decode_ops(&self) -> Result<Vec<pb::Op>, LlbError> {
        self.proto
            .def
            .iter()
            .enumerate()
            .map(|(index, bytes)| {
                pb::Op::decode(bytes.as_slice())
                    .map_err(|source| LlbError::DecodeOp { index, source })
            })
            .collect()
    }

    /// A summary of every op, in definition order.
    pub(crate) fn ops(&self) -> Result<Vec<OpView>, LlbError> {
        let ops = self.decode_ops()?;
        let last = ops.len().saturating_sub(1);
        Ok(ops
            .iter()
            .zip(&self.proto.def)
            .enumerate()
            .map(|(i, (op, bytes))| {
                let digest = digest_of(bytes);
                let md = self.proto.metadata.get(&digest);
                OpView {
                    kind: if i == last && op.op.is_none() {
                        OpKind::Terminal
                    } else {
                        OpKind::of(op)
                    },
                    inputs: op
                        .inputs
                        .iter()
                        .map(|inp| (inp.digest.clone(), inp.index))
                        .collect(),
                    description: md.and_then(|m| m.description.get(CUSTOM_NAME).cloned()),
                    caps: md
                        .map(|m| {
                            m.caps
                                .iter()
                                .filter(|(_, on)| **on)
                                .map(|(c, _)| c.clone())
                                .collect()
                        })
                        .unwrap_or_default(),
                    digest,
                }
            })
            .collect())
    }

    /// A JSON view for debugging (`strata llb --format json`): schema
    /// [`SCHEMA`], the head digest and every op with its digest, kind,
    /// inputs, description, caps and the fields that say what it does.
    pub(crate) fn to_json(&self) -> Result<Value, LlbError> {
        let ops = self.decode_ops()?;
        let views = self.ops()?;
        let ops: Vec<Value> = views
            .iter()
            .zip(&ops)
            .map(|(view, op)| {
                let mut v = json!({
                    "digest": view.digest,
                    "kind": view.kind.as_str(),
                    "inputs": view.inputs.iter().map(|(d, i)| json!({"digest": d, "index": i})).collect::<Vec<_>>(),
                });
                if let Some(d) = &view.description {
                    v["description"] = json!(d);
                }
                if !view.caps.is_empty() {
                    v["caps"] = json!(view.caps);
                }
                if let Some(p) = &op.platform {
                    v["platform"] = json!(platform_string(p));
                }
                op_details(op, &mut v);
                v
            })
            .collect();
        Ok(json!({
            "schema": SCHEMA,
            "head": self.head(),
            "ops": ops,
        }))
    }

    /// Rebuilds the graph as a [`State`] whose ops keep their exact bytes, so
    /// a definition from BuildKit (a solved ref, a frontend input) can be
    /// built on.
    pub(crate) fn to_state(&self) -> Result<State, LlbError> {
        if self.is_empty() {
            return Ok(State::default());
        }
        let ops = self.decode_ops()?;
        let infos: Vec<SourceMap> = self
            .proto
            .source
            .iter()
            .flat_map(|s| &s.infos)
            .map(|i| SourceMap {
                inner: Arc::new(SourceFile {
                    filename: i.filename.clone(),
                    data: i.data.clone(),
                    language: i.language.clone(),
                }),
            })
            .collect();
        let mut nodes: BTreeMap<String, Arc<Node>> = BTreeMap::new();
        let (terminal, rest) = ops.split_last().ok_or(LlbError::NoTerminal)?;
        for (op, bytes) in rest.iter().zip(&self.proto.def) {
            let digest = digest_of(bytes);
            let inputs = op
                .inputs
                .iter()
                .map(|inp| {
                    let node = nodes
                        .get(&inp.digest)
                        .ok_or_else(|| LlbError::UnknownInput {
                            digest: digest.clone(),
                            input: inp.digest.clone(),
                        })?;
                    Ok(Output {
                        node: node.clone(),
                        index: u32::try_from(inp.index).unwrap_or(0),
                    })
                })
                .collect::<Result<Vec<_>, LlbError>>()?;
            let meta = self.meta_of(&digest, &infos);
            let node = Arc::new(Node {
                digest: digest.clone(),
                bytes: bytes.clone(),
                inputs,
                kind: OpKind::of(op),
                meta,
            });
            nodes.insert(digest, node);
        }
        let [edge] = terminal.inputs.as_slice() else {
            return Err(LlbError::NoTerminal);
        };
        if terminal.op.is_some() {
            return Err(LlbError::NoTerminal);
        }
        let node = nodes
            .get(&edge.digest)
            .ok_or_else(|| LlbError::UnknownInput {
                digest: digest_of(self.proto.def.last().map_or(&[][..], Vec::as_slice)),
                input: edge.digest.clone(),
            })?;
        Ok(State::from_output(
            node.clone(),
            u32::try_from(edge.index).unwrap_or(0),
        ))
    }

    fn meta_of(&self, digest: &str, infos: &[SourceMap]) -> OpMeta {
        let mut meta = OpMeta::default();
        if let Some(md) = self.proto.metadata.get(digest) {
            meta.description = md.description.clone();
            meta.caps = md.caps.clone();
            meta.ignore_cache = md.ignore_cache;
        }
        let locs = self
            .proto
            .source
            .as_ref()
            .and_then(|s| s.locations.get(digest));
        for loc in locs.iter().flat_map(|l| &l.locations) {
            if let Some(map) = usize::try_from(loc.source_index)
                .ok()
                .and_then(|i| infos.get(i))
            {
                meta.locations.push(SourceLocation {
                    map: map.clone(),
                    ranges: loc.ranges.iter().map(range_from_proto).collect(),
                });
            }
        }
        meta
    }
}

fn platform_string(p: &pb::Platform) -> String {
    let mut s = format!("{}/{}", p.os, p.architecture);
    if !p.variant.is_empty() {
        s.push('/');
        s.push_str(&p.variant);
    }
    s
}

/// Adds the fields that say what `op` does to its JSON object.
fn op_details(op: &pb::Op, v: &mut Value) {
    match &op.op {
        Some(pb::op::Op::Source(s)) => {
            v["identifier"] = json!(s.identifier);
            if !s.attrs.is_empty() {
                v["attrs"] = json!(s.attrs);
            }
        }
        Some(pb::op::Op::Exec(e)) => {
            if let Some(m) = &e.meta {
                v["args"] = json!(m.args);
                v["env"] = json!(m.env);
                v["cwd"] = json!(m.cwd);
                if !m.user.is_empty() {
                    v["user"] = json!(m.user);
                }
            }
            v["mounts"] = e
                .mounts
                .iter()
                .map(|m| {
                    let kind = pb::MountType::try_from(m.mount_type)
                        .map_or("unknown", |t| t.as_str_name())
                        .to_ascii_lowercase();
                    let mut mv = json!({
                        "dest": m.dest,
                        "type": kind,
                        "input": m.input,
                        "output": m.output,
                    });
                    if m.readonly {
                        mv["readonly"] = json!(true);
                    }
                    if !m.selector.is_empty() {
                        mv["selector"] = json!(m.selector);
                    }
                    if let Some(c) = &m.cache_opt {
                        mv["id"] = json!(c.id);
                    }
                    if let Some(s) = &m.secret_opt {
                        mv["id"] = json!(s.id);
                    }
                    if let Some(s) = &m.ssh_opt {
                        mv["id"] = json!(s.id);
                    }
                    mv
                })
                .collect();
            let network = pb::NetMode::try_from(e.network).map_or("unknown", |n| n.as_str_name());
            v["network"] = json!(network.to_ascii_lowercase());
        }
        Some(pb::op::Op::File(f)) => {
            v["actions"] = f.actions.iter().map(file_action_json).collect();
        }
        Some(pb::op::Op::Merge(m)) => {
            v["merge"] = json!(m.inputs.iter().map(|i| i.input).collect::<Vec<_>>());
        }
        Some(pb::op::Op::Diff(d)) => {
            v["lower"] = json!(d.lower.map_or(-1, |l| l.input));
            v["upper"] = json!(d.upper.map_or(-1, |u| u.input));
        }
        None => {}
    }
}

fn file_action_json(a: &pb::FileAction) -> Value {
    use pb::file_action::Action;
    let mut v = json!({
        "input": a.input,
        "secondaryInput": a.secondary_input,
        "output": a.output,
    });
    match &a.action {
        Some(Action::Copy(c)) => {
            v["action"] = json!("copy");
            v["src"] = json!(c.src);
            v["dest"] = json!(c.dest);
            v["mode"] = json!(c.mode);
            v["timestamp"] = json!(c.timestamp);
            if !c.include_patterns.is_empty() {
                v["includePatterns"] = json!(c.include_patterns);
            }
            if !c.exclude_patterns.is_empty() {
                v["excludePatterns"] = json!(c.exclude_patterns);
            }
        }
        Some(Action::Mkdir(m)) => {
            v["action"] = json!("mkdir");
            v["path"] = json!(m.path);
            v["mode"] = json!(m.mode);
            v["timestamp"] = json!(m.timestamp);
        }
        Some(Action::Mkfile(m)) => {
            v["action"] = json!("mkfile");
            v["path"] = json!(m.path);
            v["mode"] = json!(m.mode);
            v["size"] = json!(m.data.len());
            v["timestamp"] = json!(m.timestamp);
        }
        Some(Action::Rm(r)) => {
            v["action"] = json!("rm");
            v["path"] = json!(r.path);
        }
        None => {}
    }
    v
}
