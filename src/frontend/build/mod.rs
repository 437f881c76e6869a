//! `strata frontend`: turns strata.toml into LLB on a real BuildKit.
//!
//! Reads the spec, its `.dockerignore` and `strata.lock` through local
//! sources, resolves the spec per platform, and emits one helper exec per
//! copy layer (docs/design.md §2), one exec chain for run layers (§4), and
//! `Merge(base, layer₁, …, layerₙ)` where the engine has `mergeop` and
//! `diffop`, else one linear chain. History carries one entry per layer (§5).
//!
//! - `options`: every frontend option, parsed once;
//! - `inputs`: the spec, ignore and lock files read through local sources;
//! - `lower`: one platform's lowering (`lower::Lower`), layer by layer;
//! - `base`: base images (pinned by the lock) and the base's directories;
//! - `stages`: build stages, one exec chain each;
//! - `helper`: the helper's image and its execs;
//! - `copy`: copy layers, their sources and split parts;
//! - `run`: run layers' and stage steps' execs;
//! - `normalize`: how a run layer's command runs under `strata-normalize`;
//! - `overlap`: the check that no two copy layers write one path;
//! - `config`: the image config and its history.

use std::collections::BTreeMap;
use std::path::Path;

use super::error::{BuildError, FrontendError};
use super::gateway::{Caps, FrontendResult, Gateway, ResultRefs, SolveOptions, Warning, cap};
use super::opts::FrontendEnv;
use super::status::ErrorStatus;
use crate::llb;
use crate::spec::SpecError;

mod base;
mod config;
mod copy;
mod helper;
mod inputs;
mod lower;
mod normalize;
mod options;
mod overlap;
mod run;
mod stages;
#[cfg(test)]
mod tests;

use inputs::{Inputs, spec_status};
use lower::Lower;
use options::Options;

/// The spec file when the `filename` option is absent.
pub(crate) const DEFAULT_FILENAME: &str = "strata.toml";
/// The strata binary inside the frontend image.
pub(crate) const IMAGE_BINARY: &str = "/strata";

/// A spec error that has no location: its message, after the spec's name.
fn spec_error(filename: &str, message: impl std::fmt::Display) -> BuildError {
    BuildError::Spec(Box::new(ErrorStatus::new(format!("{filename}: {message}"))))
}

/// Runs as a frontend over stdin/stdout and exits 0 after `Return`.
pub(crate) fn run() -> Result<(), FrontendError> {
    super::serve_stdio(|gateway, env| async move { run_with(&gateway, &env).await })
}

/// The frontend on any gateway: build, then `Return` the result or the error.
pub(crate) async fn run_with<G: Gateway>(
    gateway: &G,
    env: &FrontendEnv,
) -> Result<(), FrontendError> {
    match build(gateway, env).await {
        Ok(result) => gateway.return_result(result).await,
        Err(e) => gateway.return_error(e.status()).await,
    }
}

async fn build<G: Gateway>(gw: &G, env: &FrontendEnv) -> Result<FrontendResult, BuildError> {
    let caps = gw.ping().await?;
    let opts = Options::parse(env, &caps)?;
    // The spec's files and the context's `.dockerignore` (used when the
    // spec has no ignore file of its own), at once.
    let (files, context_ignore) = tokio::try_join!(
        inputs::read_spec(gw, &opts, &caps),
        inputs::read_context_ignore(gw, &opts)
    )?;
    if files.spec.len() as u64 > crate::spec::MAX_SPEC_BYTES {
        let e = SpecError::TooLarge {
            path: files.filename.clone().into(),
            size: None,
            limit: crate::spec::MAX_SPEC_BYTES,
        };
        return Err(BuildError::Spec(Box::new(spec_status(&files, &e))));
    }
    let source =
        crate::spec::parse::source_from_bytes(Path::new(&files.filename), files.spec.clone())
            .map_err(|e| BuildError::Spec(Box::new(spec_status(&files, &e))))?;
    let loaded = crate::spec::resolve_all(&source, &opts.resolve)
        .map_err(|e| BuildError::Spec(Box::new(spec_status(&files, &e))))?;
    let inputs = Inputs::parse(&files, context_ignore)?;
    let modern = caps.has_llb(cap::MERGE_OP) && caps.has_llb(cap::DIFF_OP);
    // The warnings, in order, beside the build: nothing waits for them.
    let warnings = async {
        for w in &loaded.warnings {
            warn(gw, &caps, &w.message).await;
        }
        if !modern {
            warn(gw, &caps, "this BuildKit has no MergeOp/DiffOp (Docker 20.10, or Docker's graphdriver store): layers form one chain, so a changed layer rebuilds the run layers after it; use the containerd image store for full reuse").await;
        }
    };
    let helper = helper::frontend_image(&opts, &caps)?;
    // Every platform at once (BuildKit builds them side by side), in the
    // specs' order.
    let lower_all = futures_util::future::try_join_all(loaded.specs.iter().map(|spec| {
        let lower = Lower {
            gw,
            opts: &opts,
            caps: &caps,
            spec,
            inputs: &inputs,
            helper: &helper,
            modern,
            map: llb::SourceMap::new(files.filename.clone(), files.spec.clone()),
            solve_opts: SolveOptions {
                cache_imports: opts.cache_imports.clone(),
                evaluate: false,
            },
        };
        async move {
            let image = lower.platform().await?;
            Ok::<_, BuildError>((spec.platform.clone(), image))
        }
    }));
    let ((), outputs) = tokio::join!(warnings, lower_all);
    let mut outputs = outputs?;
    let mut metadata = BTreeMap::new();
    if outputs.len() == 1 {
        let (_, (r, config)) = outputs.pop().expect("one platform");
        metadata.insert("containerimage.config".to_string(), config);
        return Ok(FrontendResult {
            refs: ResultRefs::Single(r),
            metadata,
        });
    }
    let mut refs = BTreeMap::new();
    let mut list = Vec::new();
    for (p, (r, config)) in outputs {
        let id = p.to_string();
        metadata.insert(format!("containerimage.config/{id}"), config);
        list.push(serde_json::json!({
            "ID": id,
            "Platform": {"architecture": p.architecture, "os": p.os, "variant": p.variant},
        }));
        refs.insert(id, r);
    }
    metadata.insert(
        "refs.platforms".to_string(),
        serde_json::to_vec(&serde_json::json!({ "Platforms": list })).expect("json"),
    );
    Ok(FrontendResult {
        refs: ResultRefs::PerPlatform(refs),
        metadata,
    })
}

/// Shows a warning in the build output: BuildKit's `Warn` where the engine
/// has it, else a vertex named after the warning (BuildKit 0.8).
async fn warn<G: Gateway>(gw: &G, caps: &Caps, message: &str) {
    if caps.has_gateway(cap::WARNINGS) {
        let _ = gw
            .warn(&Warning {
                level: 1,
                short: message.to_string(),
                ..Default::default()
            })
            .await;
    } else {
        // Also on stderr, in the CLI's warning style (`strata llb` shows it).
        eprintln!("warning: {message}");
        // The op must differ per message: names live in metadata, not in
        // the op bytes, and BuildKit shows one vertex per op digest.
        let id = crate::plan::Digest::of(message.as_bytes()).hex();
        let vertex = llb::scratch()
            .mkdir(llb::Mkdir::new(
                format!("/strata-warning-{}", &id[..12]),
                0o755,
            ))
            .custom_name(format!("[strata] WARNING: {message}"));
        let options = SolveOptions {
            evaluate: caps.has_gateway(cap::SOLVE_EVALUATE),
            ..Default::default()
        };
        let _ = gw.solve(&vertex.marshal().to_bytes(), &options).await;
    }
}
