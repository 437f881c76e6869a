//! strata as a BuildKit frontend: the only async code in the crate.
//!
//! - [`stdio`]: the gRPC channel over stdin/stdout;
//! - [`gateway`]: the [`Gateway`] trait, its value types and [`GrpcGateway`];
//! - [`status`]: the error returned to BuildKit, with spec locations;
//! - [`opts`]: options, session and workers from the environment;
//! - [`smoke`]: a minimal frontend that proves the above on a real daemon.

pub mod build;
pub mod error;
#[cfg(test)]
pub(crate) mod fake;
pub mod gateway;
pub mod offline;
pub mod opts;
pub mod smoke;
pub mod status;
pub mod stdio;

pub use error::FrontendError;
pub use gateway::{Gateway, GrpcGateway};
