//! strata as a BuildKit frontend: the only async code in the crate.
//!
//! - [`stdio`]: the gRPC channel over stdin/stdout;
//! - [`gateway`]: the [`Gateway`] trait, its value types and [`GrpcGateway`];
//! - [`offline`]: a [`Gateway`] on local directories (`strata llb`, tests);
//! - `fake` (tests only): a [`Gateway`] that records every call;
//! - [`status`]: the error returned to BuildKit, with spec locations;
//! - [`error`]: the frontend's errors, [`FrontendError`] and [`BuildError`];
//! - [`opts`]: options, session and workers from the environment;
//! - [`build`]: `strata frontend`, the spec lowered to LLB, one concern per
//!   module: [`build`]'s options, inputs, lowering, base images, stages, the
//!   helper, copy layers, run layers and their normalization, the overlap
//!   check, the image config;
//! - [`smoke`]: a minimal frontend that proves the above on a real daemon.

pub(crate) mod build;
pub(crate) mod error;
#[cfg(test)]
pub(crate) mod fake;
pub(crate) mod gateway;
pub(crate) mod offline;
pub(crate) mod opts;
pub(crate) mod smoke;
pub(crate) mod status;
pub(crate) mod stdio;

pub(crate) use error::{BuildError, FrontendError};
pub(crate) use gateway::GrpcGateway;

/// Runs `frontend` over stdin/stdout on a one-thread runtime, then exits 0
/// at once: after `Return` a pending stdin read cannot be cancelled.
pub(crate) fn serve_stdio<F, Fut>(frontend: F) -> Result<(), FrontendError>
where
    F: FnOnce(GrpcGateway, opts::FrontendEnv) -> Fut,
    Fut: std::future::Future<Output = Result<(), FrontendError>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(FrontendError::Runtime)?;
    runtime.block_on(async {
        let env = opts::FrontendEnv::from_env();
        let gateway = GrpcGateway::connect(env.session_id.clone()).await?;
        frontend(gateway, env).await
    })?;
    std::process::exit(0)
}
