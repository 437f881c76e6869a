//! Errors of the BuildKit frontend: transport, gateway calls, options.

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
    /// A request is bigger than BuildKit before 0.14 accepts (contracts §6).
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
