//! FileOp: file actions on a base state. strata writes one, a directory
//! made on a state ([`State::mkdir`]).
//!
//! Protobuf 3 cannot tell an unset integer from zero, and BuildKit reads a
//! timestamp of 0 as 1970: an unset timestamp is therefore written as −1.

use super::{Inputs, Node, OpKind, OpMeta, State};
use crate::proto::pb;

/// A path made absolute (relative paths are taken from `/`).
fn absolute(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

/// Creates a directory (owner 0:0, modification time now, parents not made).
#[derive(Debug, Clone)]
#[must_use]
pub(crate) struct Mkdir {
    path: String,
    mode: u32,
}

impl Mkdir {
    /// Creates `path` with permission bits `mode`.
    pub(crate) fn new(path: impl AsRef<str>, mode: u32) -> Mkdir {
        Mkdir {
            path: absolute(path.as_ref()),
            mode,
        }
    }
}

impl State {
    /// Creates a directory in this state: a one-action FileOp.
    pub(crate) fn mkdir(&self, mkdir: Mkdir) -> State {
        let mut meta = OpMeta::default();
        meta.cap("file.base");
        let mut inputs = Inputs::default();
        let base = inputs.index_of(self);
        let action = pb::file_action::Action::Mkdir(pb::FileActionMkDir {
            path: mkdir.path,
            mode: mkdir.mode as i32,
            make_parents: false,
            owner: None,
            timestamp: -1,
        });
        let op = pb::Op {
            op: Some(pb::op::Op::File(pb::FileOp {
                actions: vec![pb::FileAction {
                    input: base,
                    secondary_input: -1,
                    output: 0,
                    action: Some(action),
                }],
            })),
            ..Default::default()
        };
        State::from_output(Node::build(op, inputs.outputs, OpKind::File, meta), 0)
    }
}
