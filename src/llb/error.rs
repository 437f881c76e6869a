//! Errors of the LLB builder: invalid ops, and definitions that do not decode.

/// What can go wrong while building or decoding LLB.
#[derive(Debug, thiserror::Error)]
pub enum LlbError {
    /// An exec op has no arguments.
    #[error("exec has no arguments")]
    EmptyArgs,
    /// A mount target is not an absolute path.
    #[error("mount target `{dest}` is not an absolute path")]
    RelativeMountTarget {
        /// The target as given.
        dest: String,
    },
    /// Two mounts of one exec share a target.
    #[error("two mounts at `{dest}`")]
    DuplicateMount {
        /// The shared target.
        dest: String,
    },
    /// An op in a definition is not a valid protobuf message.
    #[error("op {index} of the definition does not decode: {source}")]
    DecodeOp {
        /// Position of the op in the definition.
        index: usize,
        /// The decoder's error.
        source: prost::DecodeError,
    },
    /// The definition itself is not a valid protobuf message.
    #[error("definition does not decode: {0}")]
    DecodeDefinition(#[from] prost::DecodeError),
    /// An op refers to an input that does not come before it.
    #[error("op {digest} refers to `{input}`, which is not defined before it")]
    UnknownInput {
        /// The op with the dangling edge.
        digest: String,
        /// The digest it refers to.
        input: String,
    },
    /// The last op of a definition is not a terminal op with one input.
    #[error("the last op of the definition is not a terminal op with exactly one input")]
    NoTerminal,
}
