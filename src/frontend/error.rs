//! Errors of the BuildKit frontend: transport, gateway calls and options
//! ([`FrontendError`]), and why a build failed, by kind ([`BuildError`]).

/// What can go wrong while strata runs as a BuildKit frontend.
#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    /// Setting up stdin/stdout as the gRPC transport failed.
    #[error("cannot use stdin/stdout as the gateway transport")]
    Stdio(#[source] std::io::Error),
    /// The HTTP/2 connection to BuildKit could not be made.
    #[error("cannot connect to the BuildKit gateway")]
    Connect(#[source] tonic::transport::Error),
    /// A gateway call failed; the status keeps BuildKit's error details.
    #[error("gateway call {call} failed: {}", .status.message())]
    Rpc {
        /// The `LLBBridge` method.
        call: &'static str,
        /// The gRPC status BuildKit answered with.
        status: Box<tonic::Status>,
    },
    /// A gateway call did not answer in time.
    #[error("gateway call {call} timed out after {secs} s")]
    Timeout {
        /// The `LLBBridge` method.
        call: &'static str,
        /// The limit.
        secs: u64,
    },
    /// A request is bigger than BuildKit before 0.14 accepts (docs/design.md §6).
    #[error("gateway request {call} is {size} bytes, over the {limit}-byte message limit")]
    RequestTooLarge {
        /// The `LLBBridge` method.
        call: &'static str,
        /// The encoded request size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// BuildKit answered something strata cannot use.
    #[error("unexpected answer to gateway call {call}: {what}")]
    Protocol {
        /// The `LLBBridge` method.
        call: &'static str,
        /// What was wrong.
        what: String,
    },
    /// An LLB definition handed to `solve` does not decode.
    #[error("invalid LLB definition")]
    Definition(#[source] prost::DecodeError),
    /// A frontend option or environment variable has a bad value.
    #[error("invalid frontend option `{key}`: {reason}")]
    Option {
        /// The option or variable name.
        key: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The async runtime could not start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
}

impl FrontendError {
    /// Wraps a failed call's status.
    pub(crate) fn rpc(call: &'static str, status: tonic::Status) -> FrontendError {
        FrontendError::Rpc {
            call,
            status: Box::new(status),
        }
    }
}

/// Why a build failed, by whose fault: the spec's (a diagnostic that points
/// at it), the build's other inputs, the engine's, or strata's own (a bug).
/// Only [`BuildError::Spec`] is a spec error.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The spec is wrong: its diagnostic, located in the spec where it can
    /// be (BuildKit's client prints the lines).
    #[error("{}", .0.message)]
    Spec(Box<crate::frontend::status::ErrorStatus>),
    /// A frontend option has a bad value, or a gateway call failed, or
    /// BuildKit answered something strata cannot use.
    #[error(transparent)]
    Frontend(#[from] FrontendError),
    /// The ignore file does not parse.
    #[error("`{file}` is not a valid ignore file: {source}")]
    Ignore {
        /// The file's name in its local source.
        file: String,
        /// What is wrong.
        source: crate::plan::PlanError,
    },
    /// strata.lock does not parse.
    #[error(transparent)]
    Lock(#[from] crate::plan::lock::LockError),
    /// With `STRATA_LOCKED=1`, an image has no pin in strata.lock.
    #[error("`{reference}` has no pin in strata.lock and STRATA_LOCKED=1: run `strata lock`")]
    Unpinned {
        /// The image reference.
        reference: String,
    },
    /// The spec exposes a secret as an environment variable, which this
    /// BuildKit cannot do.
    #[error(
        "layer `{layer}` exposes secret `{id}` as ${var}, but this BuildKit has no secret env (exec.secretenv, BuildKit >= 0.10): use `target` instead"
    )]
    NoSecretEnv {
        /// The layer.
        layer: String,
        /// The secret's ID.
        id: String,
        /// The variable.
        var: String,
    },
    /// The build's LLB is over BuildKit's message limit (docs/design.md §6).
    #[error(
        "the build definition is {size} bytes, over BuildKit's 4 MiB message limit (docs/design.md §6)"
    )]
    TooLarge {
        /// The definition's size.
        size: usize,
    },
    /// Neither `frontend.bin` nor the `source` option names the frontend's
    /// own image, which runs the copy helper.
    #[error("cannot find the strata frontend image: no frontend.bin and no `source` option")]
    NoHelperImage,
    /// A copy helper's record does not parse (a bug of strata's).
    #[error("the helper's record of layer `{layer}` does not parse: {source}")]
    Record {
        /// The layer ID.
        layer: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// An op could not be built (a bug of strata's).
    #[error("cannot build the op of {what}: {source}")]
    Llb {
        /// The op.
        what: String,
        /// The LLB builder's error.
        source: crate::llb::LlbError,
    },
    /// The image config could not be made (a bug of strata's, or a base
    /// image config it cannot read).
    #[error("cannot make the image config: {0}")]
    Config(#[source] crate::oci::OciError),
    /// A value did not serialize to JSON (a bug of strata's).
    #[error("cannot serialize {what} as JSON: {source}")]
    Json {
        /// The value.
        what: &'static str,
        /// The serializer's error.
        source: serde_json::Error,
    },
    /// Something strata guarantees did not hold (a bug of strata's).
    #[error("{0}")]
    Internal(String),
}

impl BuildError {
    /// Whether the fault is strata's own: a bug to report, not a wrong input.
    pub(crate) fn is_internal(&self) -> bool {
        matches!(
            self,
            BuildError::Record { .. }
                | BuildError::Llb { .. }
                | BuildError::Config(_)
                | BuildError::Json { .. }
                | BuildError::Internal(_)
        )
    }

    /// The process exit status (docs/design.md §8): 1 for a wrong input (the
    /// spec, an option, the ignore or lock file, a missing pin, a spec this
    /// BuildKit cannot build, a definition too large), 2 for trouble (the
    /// gateway, reading the lock, a bug of strata's).
    pub(crate) fn exit_code(&self) -> u8 {
        use crate::plan::lock::LockError;
        match self {
            BuildError::Frontend(FrontendError::Option { .. }) => 1,
            BuildError::Frontend(_) | BuildError::Lock(LockError::Io { .. }) => 2,
            BuildError::NoHelperImage => 2,
            e if e.is_internal() => 2,
            _ => 1,
        }
    }

    /// The error handed to BuildKit's `Return`: a spec error as located, a
    /// failed gateway call with BuildKit's own code and details, a bug of
    /// strata's said to be one, anything else as its message.
    pub(crate) fn status(&self) -> crate::frontend::status::ErrorStatus {
        use crate::frontend::status::ErrorStatus;
        match self {
            BuildError::Spec(status) => (**status).clone(),
            BuildError::Frontend(e) => ErrorStatus::from_error(e),
            e if e.is_internal() => {
                ErrorStatus::new(format!("internal error in strata (please report it): {e}"))
            }
            e => ErrorStatus::new(e.to_string()),
        }
    }
}
