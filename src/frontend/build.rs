//! `strata frontend`: turns strata.toml into LLB on a real BuildKit.
//!
//! Reads the spec, its `.dockerignore` and `strata.lock` through local
//! sources, resolves the spec per platform, and emits one helper exec per
//! copy layer (contracts §2), one exec chain for run layers (§4), and
//! `Merge(base, layer₁, …, layerₙ)` where the engine has `mergeop` and
//! `diffop`, else one linear chain. History carries one entry per layer (§5).

use std::collections::BTreeMap;
use std::path::Path;

use super::error::FrontendError;
use super::gateway::{
    Caps, FrontendResult, Gateway, Ref, ResolveMode, ResultRefs, SolveOptions, Warning, cap,
};
use super::opts::FrontendEnv;
use super::status::{ErrorStatus, SourceLocation};
use crate::helper::{CopyJob, CopyRecord, job_for};
use crate::llb::{self, Definition, Mount, State};
use crate::plan::graph::{BaseDirs, BaseEntry, base_queries};
use crate::plan::graph::{LayerFile, LayerFileKind};
use crate::plan::ignore::Matcher;
use crate::plan::lock::{LOCK_FILE, Lock};
use crate::plan::make::split_layer;
use crate::spec::{
    BaseRef, CopyLayer, Diag, LayerKind, Network, Platform, ResolveOptions, ResolvedSpec, RunLayer,
    SecretExpose, Sharing, SpecError, Stage, StageFrom,
};

/// The spec file when the `filename` option is absent.
pub const DEFAULT_FILENAME: &str = "strata.toml";
/// Where BuildKit (≥ 0.10) mounts the frontend's own LLB.
const FRONTEND_BIN: &str = "/run/config/buildkit/metadata/frontend.bin";
/// The strata binary inside the frontend image.
pub const IMAGE_BINARY: &str = "/strata";

/// A failure of the build: a spec error with its location, or anything else.
#[derive(Debug)]
enum Failure {
    Spec(ErrorStatus),
    Other(FrontendError),
}

impl From<FrontendError> for Failure {
    fn from(e: FrontendError) -> Self {
        Failure::Other(e)
    }
}

fn protocol(message: impl Into<String>) -> Failure {
    Failure::Spec(ErrorStatus::new(message))
}

/// Runs as a frontend over stdin/stdout and exits 0 after `Return`.
pub fn run() -> Result<(), FrontendError> {
    super::serve_stdio(|gateway, env| async move { run_with(&gateway, &env).await })
}

/// The frontend on any gateway: build, then `Return` the result or the error.
pub async fn run_with<G: Gateway>(gateway: &G, env: &FrontendEnv) -> Result<(), FrontendError> {
    match build(gateway, env).await {
        Ok(result) => gateway.return_result(result).await,
        Err(Failure::Spec(status)) => gateway.return_error(status).await,
        Err(Failure::Other(e)) => gateway.return_error(ErrorStatus::from_error(&e)).await,
    }
}

/// The spec's source files as read through the `dockerfile` local source.
struct SpecFiles {
    filename: String,
    spec: Vec<u8>,
    ignore: Option<Vec<u8>>,
    lock: Option<Vec<u8>>,
}

async fn read_optional<G: Gateway>(gw: &G, r: &Ref, path: &str) -> Option<Vec<u8>> {
    gw.read_file(r, path, None).await.ok()
}

async fn read_spec<G: Gateway>(
    gw: &G,
    env: &FrontendEnv,
    caps: &Caps,
) -> Result<SpecFiles, Failure> {
    let filename = env.opt("filename").unwrap_or(DEFAULT_FILENAME).to_string();
    let key = env.opt("dockerfilekey").unwrap_or("dockerfile");
    let ignore_name = format!("{filename}.dockerignore");
    let base = Path::new(&filename)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lock_path = if base.is_empty() {
        LOCK_FILE.to_string()
    } else {
        format!("{base}/{LOCK_FILE}")
    };
    let mut local = llb::local(key)
        .session_id(&env.session_id)
        .shared_key_hint("strata/spec")
        .follow_paths([filename.clone(), ignore_name.clone(), lock_path.clone()])
        .custom_name(format!("[strata] load {filename}"));
    if caps.has_llb(cap::SOURCE_LOCAL_DIFFER) {
        local = local.differ(llb::Differ::None, false);
    }
    let def = local.build().marshal().to_bytes();
    let r = gw.solve(&def, &SolveOptions::default()).await?;
    let (spec, ignore, lock) = tokio::join!(
        gw.read_file(&r, &filename, None),
        read_optional(gw, &r, &ignore_name),
        read_optional(gw, &r, &lock_path),
    );
    Ok(SpecFiles {
        spec: spec?,
        ignore,
        lock,
        filename,
    })
}

async fn read_context_ignore<G: Gateway>(
    gw: &G,
    env: &FrontendEnv,
) -> Result<Option<Vec<u8>>, Failure> {
    let key = env.opt("contextkey").unwrap_or("context");
    let def = llb::local(key)
        .session_id(&env.session_id)
        .shared_key_hint("strata/spec")
        .follow_paths([".dockerignore"])
        .custom_name("[strata] load .dockerignore")
        .build()
        .marshal()
        .to_bytes();
    let r = gw.solve(&def, &SolveOptions::default()).await?;
    Ok(read_optional(gw, &r, ".dockerignore").await)
}

/// A spec diagnostic as BuildKit's located error.
fn spec_status(files: &SpecFiles, err: &SpecError) -> ErrorStatus {
    let first: Option<&Diag> = match err {
        SpecError::Invalid { diagnostics } => diagnostics.iter().find(|d| d.is_error()),
        _ => None,
    };
    match first {
        Some(d) => {
            let (line, _) = d.line_col();
            let mut message = format!("{}: {}", d.location(), d.message);
            if let Some(h) = &d.help {
                message.push_str(&format!(" (help: {h})"));
            }
            ErrorStatus::new(message).with_source(&SourceLocation::line(
                files.filename.clone(),
                files.spec.clone(),
                line as u32,
            ))
        }
        None => ErrorStatus::new(format!("{}: {err}", files.filename)),
    }
}

fn resolve_options(env: &FrontendEnv, caps: &Caps) -> Result<ResolveOptions, Failure> {
    let build_args = env
        .opts
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("build-arg:")
                .map(|n| (n.to_string(), v.clone()))
        })
        .collect();
    let mut platforms = Vec::new();
    if let Some(list) = env.opt("platform") {
        for p in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            platforms.push(
                crate::spec::values::parse_platform(p)
                    .map_err(|e| protocol(format!("platform option: {e}")))?,
            );
        }
    }
    if platforms.is_empty()
        && let Some(p) = caps.default_platform()
    {
        if let Ok(p) = crate::spec::values::parse_platform(&p.to_string()) {
            platforms.push(p);
        }
    }
    Ok(ResolveOptions {
        target: env
            .opt("target")
            .filter(|t| !t.is_empty())
            .map(String::from),
        platforms,
        build_args,
        context: ".".into(),
    })
}

async fn build<G: Gateway>(gw: &G, env: &FrontendEnv) -> Result<FrontendResult, Failure> {
    let caps = gw.ping().await?;
    // The spec's files and the context's `.dockerignore` (used when the
    // spec has no ignore file of its own), at once.
    let (files, context_ignore) =
        tokio::try_join!(read_spec(gw, env, &caps), read_context_ignore(gw, env))?;
    let source =
        crate::spec::parse::source_from_bytes(Path::new(&files.filename), files.spec.clone())
            .map_err(|e| Failure::Spec(spec_status(&files, &e)))?;
    let opts = resolve_options(env, &caps)?;
    let loaded = crate::spec::resolve_all(&source, &opts)
        .map_err(|e| Failure::Spec(spec_status(&files, &e)))?;
    let ignore_bytes = files.ignore.clone().or(context_ignore);
    let ignore = match &ignore_bytes {
        Some(b) => Matcher::parse_ignore_file(b, ".dockerignore")
            .map_err(|e| protocol(e.to_string()))?
            .patterns(),
        None => Vec::new(),
    };
    let lock = match &files.lock {
        Some(b) => Some(
            Lock::parse(Path::new(LOCK_FILE), &String::from_utf8_lossy(b))
                .map_err(|e| protocol(e.to_string()))?,
        ),
        None => None,
    };
    for w in &loaded.warnings {
        warn(gw, &caps, &w.message).await;
    }
    let modern = caps.has_llb(cap::MERGE_OP) && caps.has_llb(cap::DIFF_OP);
    if !modern {
        warn(gw, &caps, "this BuildKit has no MergeOp/DiffOp (Docker 20.10, or Docker's graphdriver store): layers form one chain, so a changed layer rebuilds the run layers after it; use the containerd image store for full reuse").await;
    }
    let frontend_image = frontend_image(env, &caps)?;
    let mut outputs = Vec::new();
    for spec in &loaded.specs {
        let image = build_platform(
            gw,
            env,
            &caps,
            spec,
            &files,
            &ignore,
            lock.as_ref(),
            &frontend_image,
            modern,
        )
        .await?;
        outputs.push((spec.platform.clone(), image));
    }
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
            "Platform": {"architecture": p.arch, "os": p.os, "variant": p.variant},
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

/// The image the helper runs from (the frontend's own image) and how the
/// helper's execs key it.
#[derive(Debug, Clone)]
struct Helper {
    image: State,
    /// The execs key the image by its content (`contentCache = ON` on
    /// their read-only root, BuildKit ≥ 0.13), not by its op.
    by_content: bool,
}

impl Helper {
    /// An exec of the helper binary: read-only root, no network.
    fn exec<I, S>(&self, args: I) -> llb::Exec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let exec = llb::Exec::new(&self.image, args)
            .env("PATH", "/")
            .readonly_root()
            .network(llb::NetMode::None);
        if self.by_content {
            exec.root_keyed_by_content()
        } else {
            exec
        }
    }
}

/// The helper's image: the frontend's own image, from the LLB BuildKit
/// loaded the frontend with (where it mounts it), else the `source` option
/// (the `# syntax=` image).
///
/// A builder that pulls the frontend for a build solves that LLB's vertex
/// in the frontend's own job, without the build's `--cache-from`, so the
/// vertex ends with no cache keys, and an exec keyed by it matched nothing
/// in an imported cache (measured on a pruned Docker 28.5: every copy
/// helper re-ran on the first build with a new frontend image, none on the
/// second). So the helper's execs key the image by its content where
/// BuildKit can (`exec.mount.cache.content`), which the importer computes
/// itself, and keep the very vertex (no second resolve of the image). Where
/// it cannot, the image op is the frontend's pinned reference marked
/// `image.recordtype=internal`: another vertex, solved in the build's job,
/// at the cost of one more resolve.
fn frontend_image(env: &FrontendEnv, caps: &Caps) -> Result<Helper, Failure> {
    let bin = fs_err::read(FRONTEND_BIN).ok();
    helper_image(
        bin.as_deref(),
        env.opt("source"),
        caps.has_llb(cap::EXEC_MOUNT_CONTENT_CACHE),
    )
}

/// [`frontend_image`] from the bytes of `frontend.bin` (if any), the
/// `source` option, and whether execs can key a mount by its content.
fn helper_image(
    frontend_bin: Option<&[u8]>,
    source: Option<&str>,
    by_content: bool,
) -> Result<Helper, Failure> {
    let helper = |image| Ok(Helper { image, by_content });
    if let Some(def) = frontend_bin.and_then(|b| Definition::from_bytes(b).ok()) {
        if !by_content && let Some((reference, platform)) = def.image_source() {
            let image = llb::image(reference).internal();
            return helper(
                match platform {
                    Some(p) => image.platform(p),
                    None => image,
                }
                .build(),
            );
        }
        if let Ok(state) = def.to_state() {
            return helper(state);
        }
    }
    match source {
        Some(s) if !s.is_empty() => helper(llb::image(s).internal().build()),
        _ => Err(protocol(
            "cannot find the strata frontend image: no frontend.bin and no `source` option",
        )),
    }
}

fn oci_platform(p: &Platform) -> llb::Platform {
    let mut out = llb::Platform::new(&p.os, &p.arch);
    if let Some(v) = &p.variant {
        out = out.with_variant(v);
    }
    out
}

fn gw_platform(p: &Platform) -> super::gateway::Platform {
    super::gateway::Platform {
        os: p.os.clone(),
        architecture: p.arch.clone(),
        variant: p.variant.clone().unwrap_or_default(),
    }
}

#[allow(clippy::too_many_arguments)]
async fn build_platform<G: Gateway>(
    gw: &G,
    env: &FrontendEnv,
    caps: &Caps,
    spec: &ResolvedSpec,
    files: &SpecFiles,
    ignore: &[String],
    lock: Option<&Lock>,
    helper_image: &Helper,
    modern: bool,
) -> Result<(Ref, Vec<u8>), Failure> {
    let spec_map = llb::SourceMap::new(files.filename.clone(), files.spec.clone());
    let line_of = |span: &std::ops::Range<usize>| spec.source.line_col(span.start).0 as u32;
    let cache_imports = env.cache_imports()?;
    let solve_opts = SolveOptions {
        cache_imports: cache_imports.clone(),
        evaluate: false,
    };

    let ctx_key = env.opt("contextkey").unwrap_or("context").to_string();

    // What the graph needs from the gateway, all at once: the base and its
    // directories' metadata, the stages' bases, the split layers' listings.
    let base_fut = async {
        // The base image, pinned by strata.lock where it has a pin (contracts §5).
        let (base, base_config) = match &spec.image.from {
            BaseRef::Scratch => (llb::scratch(), None),
            BaseRef::Registry(reference) => {
                let (state, config) = image_base(gw, env, spec, lock, reference, "base").await?;
                (state, Some(config))
            }
            other => {
                return Err(protocol(format!(
                    "`{other}` is a base for the embedded builder (`strata build`); through BuildKit, use an image reference"
                )));
            }
        };
        let base_dirs = base_dirs(gw, spec, &base, &solve_opts).await?;
        Ok((base, base_config, base_dirs))
    };
    // Build stages: one exec chain each, on its own base (issue 11).
    let stages_fut = stage_states(gw, env, caps, spec, lock, &spec_map);
    let parts_fut = futures_util::future::try_join_all(spec.layers.iter().map(|layer| {
        let (solve_opts, ctx_key) = (&solve_opts, &ctx_key);
        async move {
            match &layer.kind {
                LayerKind::Copy(copy) if copy.entries.iter().all(|e| e.stage.is_none()) => {
                    copy_parts(gw, env, solve_opts, ctx_key, &layer.name, copy, ignore).await
                }
                _ => Ok(Vec::new()),
            }
        }
    }));
    let ((base, base_config, base_dirs), stages, parts) =
        tokio::try_join!(base_fut, stages_fut, parts_fut)?;
    let mut parts = parts.into_iter();

    let no_cache: Option<Vec<String>> = env.opt("no-cache").map(|v| {
        v.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    });
    let skip_cache = |name: &str| {
        no_cache
            .as_ref()
            .is_some_and(|l| l.is_empty() || l.iter().any(|n| n == name))
    };

    // Layers.
    let mut layers: Vec<(String, State, LayerNote)> = Vec::new();
    let mut copy_outs: Vec<CopyOut> = Vec::new();
    let mut run_parent = base.clone();
    let mut chain = base.clone();
    for layer in &spec.layers {
        let layer_parts = parts.next().unwrap_or_default();
        // The whole `[[layer]]` table, so a failing op marks its lines.
        let end = layer.span.end.saturating_sub(1).max(layer.span.start);
        let range = [llb::SourceRange::lines(
            line_of(&layer.span),
            spec.source.line_col(end).0 as u32,
        )];
        match &layer.kind {
            LayerKind::Copy(copy) if copy.entries.iter().any(|e| e.stage.is_some()) => {
                let exec = |mode: HelperMode<'_>| {
                    stage_copy_exec(
                        helper_image,
                        &layer.name,
                        copy,
                        &stages,
                        spec.image.timestamp,
                        &base_dirs,
                        mode,
                        &spec_map,
                        &range,
                    )
                };
                let (state, out, meta) =
                    copy_on(caps, modern, &mut chain, skip_cache(&layer.name), exec)?;
                copy_outs.push(CopyOut::new(&layer.name, &layer.name, copy, &out));
                layers.push((layer.name.clone(), state, LayerNote::Copy(meta)));
            }
            LayerKind::Copy(copy) => {
                for part in layer_parts {
                    let job = job_for(
                        &part.id,
                        &layer.name,
                        copy,
                        ignore,
                        spec.image.timestamp,
                        &base_dirs,
                    );
                    let exec = |mode: HelperMode<'_>| {
                        helper_exec(
                            env,
                            helper_image,
                            &ctx_key,
                            &part,
                            &job,
                            mode,
                            &spec_map,
                            &range,
                        )
                    };
                    let (state, out, meta) =
                        copy_on(caps, modern, &mut chain, skip_cache(&layer.name), exec)?;
                    copy_outs.push(CopyOut::new(&part.id, &layer.name, copy, &out));
                    layers.push((part.id, state, LayerNote::Copy(meta)));
                }
            }
            LayerKind::Run(run) => {
                let parent = if modern {
                    run_parent.clone()
                } else {
                    chain.clone()
                };
                let exec = run_exec(
                    env,
                    caps,
                    spec,
                    &ctx_key,
                    &layer.name,
                    run,
                    &parent,
                    base_config.as_ref(),
                    &spec_map,
                    &range,
                    None,
                    &stages,
                )?;
                let exec = if skip_cache(&layer.name) {
                    exec.ignore_cache()
                } else {
                    exec
                };
                if modern {
                    layers.push((
                        layer.name.clone(),
                        llb::diff(&parent, &exec),
                        LayerNote::Run,
                    ));
                    run_parent = exec;
                } else {
                    chain = exec.clone();
                    layers.push((layer.name.clone(), exec, LayerNote::Run));
                }
            }
        }
    }
    let image = if modern {
        // Each helper's record output joins the graph as an empty diff of
        // itself (no layer): a cache export then carries it, and a cold
        // builder importing that cache reads the record without running
        // the helper again.
        let records = layers.iter().filter_map(|(_, _, note)| match note {
            LayerNote::Copy(meta) => Some(llb::diff(meta, meta)),
            LayerNote::Run => None,
        });
        llb::merge(
            std::iter::once(base.clone())
                .chain(layers.iter().map(|(_, s, _)| s.clone()))
                .chain(records),
        )
    } else {
        chain
    };

    // The image first, in one request: with an imported cache (`--cache-from`)
    // every step that the cache holds resolves from it there, the helpers'
    // records included (they are in the graph, see above), so reading the
    // records below runs nothing on a cold builder.
    let def = image.marshal().to_bytes();
    if def.len() > 4 << 20 {
        return Err(protocol(format!(
            "the build definition is {} bytes, over BuildKit's 4 MiB message limit (contracts §6)",
            def.len()
        )));
    }
    let r = gw
        .solve(
            &def,
            &SolveOptions {
                cache_imports: cache_imports.clone(),
                evaluate: true,
            },
        )
        .await?;

    // No two copy layers write one path (what `strata check` and the plan
    // reject): the helper compares the written trees, cached like any exec.
    // Only layers whose destinations nest can write one path; the check
    // runs beside the records below.
    let suspects = overlap_suspects(&copy_outs);
    let check = async {
        if suspects.len() > 1 {
            let check = overlaps_exec(helper_image, &suspects)?;
            gw.solve(
                &check.marshal().to_bytes(),
                &SolveOptions {
                    cache_imports: cache_imports.clone(),
                    evaluate: true,
                },
            )
            .await?;
        }
        Ok::<_, Failure>(())
    };

    // History: one entry per layer, with the helper's record (contracts §5).
    let created = env
        .opt("build-arg:SOURCE_DATE_EPOCH")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(spec.image.timestamp);
    let records = futures_util::future::try_join_all(layers.iter().map(|(id, _, note)| {
        let solve_opts = &solve_opts;
        async move {
            Ok::<_, Failure>(match note {
                LayerNote::Copy(meta) => {
                    let r = gw.solve(&meta.marshal().to_bytes(), solve_opts).await?;
                    let bytes = gw.read_file(&r, "record.json", None).await?;
                    let rec: CopyRecord = serde_json::from_slice(&bytes)
                        .map_err(|e| protocol(format!("helper record of `{id}`: {e}")))?;
                    format!("strata/v1 key={} inputs={}", rec.key, rec.inputs)
                }
                LayerNote::Run => "strata/v1 run".to_string(),
            })
        }
    }));
    let ((), comments) = tokio::try_join!(check, records)?;
    let history: Vec<_> = layers
        .iter()
        .zip(comments)
        .map(|((id, _, _), comment)| crate::oci::image::HistoryEntry {
            created: Some(crate::oci::image::rfc3339(created)),
            created_by: Some(format!("strata layer {id}")),
            author: None,
            comment: Some(comment),
            empty_layer: false,
        })
        .collect();
    // `label:NAME` options (`docker buildx build --label`) over the spec's.
    let mut spec = spec.clone();
    for (k, v) in &env.opts {
        if let Some(name) = k.strip_prefix("label:") {
            spec.image.labels.insert(name.to_string(), v.clone());
        }
    }
    let config = image_config(&spec, base_config.as_ref(), created, &history, &layers)?;
    Ok((r, config))
}

/// The base's metadata for every copy destination and its ancestors
/// (contracts §1): all read at once (StatFile
/// resolves symlinks, so each query lists its parent for lstat entries).
async fn base_dirs<G: Gateway>(
    gw: &G,
    spec: &ResolvedSpec,
    base: &State,
    opts: &SolveOptions,
) -> Result<BaseDirs, Failure> {
    let mut queries: Vec<String> = spec
        .layers
        .iter()
        .filter_map(|l| match &l.kind {
            LayerKind::Copy(c) => Some(base_queries(c)),
            LayerKind::Run(_) => None,
        })
        .flatten()
        .collect();
    queries.sort();
    queries.dedup();
    let mut dirs = BaseDirs::new();
    if base.is_scratch() || queries.is_empty() {
        return Ok(dirs);
    }
    let base_ref = gw.solve(&base.marshal().to_bytes(), opts).await?;
    let split = |q: &str| -> (String, String) {
        let (parent, name) = q.rsplit_once('/').unwrap_or(("", q));
        let parent = if parent.is_empty() { "/" } else { parent };
        (parent.to_string(), name.to_string())
    };
    let listings = futures_util::future::join_all(queries.iter().map(|q| {
        let (parent, name) = split(q);
        let base_ref = &base_ref;
        async move {
            gw.read_dir(base_ref, &parent, Some(&name))
                .await
                .unwrap_or_default()
        }
    }))
    .await;
    let listed: BTreeMap<&str, Vec<crate::frontend::gateway::Stat>> =
        queries.iter().map(String::as_str).zip(listings).collect();
    // Sorted, so a directory is decided before anything under it.
    for q in &queries {
        let (parent, name) = split(q);
        let above = dirs.get(&parent).cloned();
        let entry = if matches!(
            above,
            Some(BaseEntry::Absent | BaseEntry::Other | BaseEntry::Symlink { .. })
        ) {
            BaseEntry::Absent
        } else {
            match listed
                .get(q.as_str())
                .and_then(|l| l.iter().find(|st| st.path == name))
            {
                Some(st) if st.is_symlink() => BaseEntry::Symlink {
                    target: st.linkname.clone(),
                },
                Some(st) if st.is_dir() => BaseEntry::Dir {
                    mode: st.permissions(),
                    uid: u64::from(st.uid),
                    gid: u64::from(st.gid),
                },
                Some(_) => BaseEntry::Other,
                None => BaseEntry::Absent,
            }
        };
        dirs.insert(q.clone(), entry);
    }
    Ok(dirs)
}

/// Resolves an image reference for the spec's platform, pinned by
/// strata.lock where it has a pin (contracts §5): its state and config.
async fn image_base<G: Gateway>(
    gw: &G,
    env: &FrontendEnv,
    spec: &ResolvedSpec,
    lock: Option<&Lock>,
    reference: &str,
    what: &str,
) -> Result<(State, serde_json::Value), Failure> {
    let pinned = lock
        .and_then(|l| l.get(reference))
        .and_then(|p| {
            p.platforms
                .get(&spec.platform.to_string())
                .or(p.digest.as_ref())
        })
        .filter(|d| !d.is_empty());
    let locked = env.opt("build-arg:STRATA_LOCKED") == Some("1");
    if locked && pinned.is_none() && !lock.and_then(|l| l.get(reference)).is_some_and(|p| p.local) {
        return Err(protocol(format!(
            "`{reference}` has no pin in strata.lock and STRATA_LOCKED=1: run `strata lock`"
        )));
    }
    let reference = match pinned {
        Some(d) if !reference.contains('@') => format!("{reference}@{d}"),
        _ => reference.to_string(),
    };
    let mode = match env.opt("image-resolve-mode") {
        Some("pull") => ResolveMode::Pull,
        Some("local") => ResolveMode::Local,
        _ => ResolveMode::Default,
    };
    let resolved = gw
        .resolve_image_config(&reference, Some(&gw_platform(&spec.platform)), mode)
        .await?;
    // Docker 20.10 returns no digest for local images: never an empty `@`.
    let full = if !resolved.digest.is_empty() && !reference.contains('@') {
        format!("{reference}@{}", resolved.digest)
    } else {
        reference.clone()
    };
    let state = llb::image(&full)
        .platform(oci_platform(&spec.platform))
        .custom_name(format!("[strata] {what} {reference}"))
        .build();
    let config: serde_json::Value =
        serde_json::from_slice(&resolved.config).unwrap_or(serde_json::Value::Null);
    Ok((state, config))
}

/// A built stage: its final state and its base image's config.
#[derive(Clone)]
struct StageState {
    state: State,
    config: Option<serde_json::Value>,
}

/// The final state of every stage the target needs (issue 11): an exec
/// chain per stage on its base image (resolved for this platform) or on its
/// base stage's final state. Stages that share nothing are independent
/// subgraphs, so BuildKit solves them in parallel.
async fn stage_states<G: Gateway>(
    gw: &G,
    env: &FrontendEnv,
    caps: &Caps,
    spec: &ResolvedSpec,
    lock: Option<&Lock>,
    map: &llb::SourceMap,
) -> Result<BTreeMap<String, StageState>, Failure> {
    let ctx_key = env.opt("contextkey").unwrap_or("context").to_string();
    let mut done: BTreeMap<String, StageState> = BTreeMap::new();
    let mut pending: Vec<&Stage> = spec.stages.iter().collect();
    while !pending.is_empty() {
        let before = pending.len();
        let mut later = Vec::new();
        for stage in pending {
            let base = match &stage.from {
                StageFrom::Image(BaseRef::Scratch) => StageState {
                    state: llb::scratch(),
                    config: None,
                },
                StageFrom::Image(BaseRef::Registry(r)) => {
                    let (state, config) = image_base(
                        gw,
                        env,
                        spec,
                        lock,
                        r,
                        &format!("stage {} base", stage.name),
                    )
                    .await?;
                    StageState {
                        state,
                        config: Some(config),
                    }
                }
                StageFrom::Image(other) => {
                    return Err(protocol(format!(
                        "stage `{}`: `{other}` is not an image reference",
                        stage.name
                    )));
                }
                StageFrom::Stage(parent) => match done.get(parent) {
                    Some(p) => p.clone(),
                    None => {
                        later.push(stage);
                        continue;
                    }
                },
            };
            let mut state = base.state.clone();
            for (i, step) in stage.steps.iter().enumerate() {
                // From the `[[stage.step]]` header to the end of its command.
                let end = step
                    .span
                    .end
                    .max(step.run_span.end)
                    .saturating_sub(1)
                    .max(step.span.start);
                let range = [llb::SourceRange::lines(
                    spec.source.line_col(step.span.start).0 as u32,
                    spec.source.line_col(end).0 as u32,
                )];
                state = run_exec(
                    env,
                    caps,
                    spec,
                    &ctx_key,
                    &format!("stage/{}/{i}", stage.name),
                    &step.run,
                    &state,
                    base.config.as_ref(),
                    map,
                    &range,
                    Some(stage),
                    &BTreeMap::new(),
                )?;
            }
            done.insert(
                stage.name.clone(),
                StageState {
                    state,
                    config: base.config.clone(),
                },
            );
        }
        if later.len() == before {
            return Err(protocol("build stages form a cycle"));
        }
        pending = later;
    }
    Ok(done)
}

/// Where a helper exec writes its tree.
#[derive(Debug, Clone, Copy)]
enum HelperMode<'a> {
    /// Into a scratch `/out`: the layer alone, which MergeOp stacks.
    Scratch,
    /// Onto the linear chain mounted writable at `/out` (contracts §4
    /// fallback): that output is the chain with the layer on it. With
    /// `true`, the mount is marked to be keyed by its definition only
    /// (where the engine has `exec.mount.cache.content`).
    Chain(&'a State, bool),
    /// The record only, and the layer's paths into a scratch `/out` for
    /// the overlap check (`--paths-only`; the fallback's record step).
    Record,
}

/// A copy layer's (state in the image, tree for the overlap check, record),
/// from `exec` run in the given [`HelperMode`]. With MergeOp the helper's
/// scratch output is the layer as is. Without it (contracts §4 fallback),
/// the helper writes onto the chain, which becomes the new chain: one exec
/// (one snapshot of the layer, no FileOp) keyed by the chain and the
/// layer's sources only (the chain is a writable mount, which BuildKit keys
/// by its definition, not its content), so a builder importing an inline
/// cache finds it without running anything. The record and the paths for
/// the overlap check come from a second exec on the same sources that
/// writes no content: an inline cache holds only the image's own chain
/// (min mode), so reading another output of the copy exec would re-run it
/// (as the helpers re-ran, re-copying, when the records were their `/meta`).
fn copy_on(
    caps: &Caps,
    modern: bool,
    chain: &mut State,
    ignore_cache: bool,
    exec: impl Fn(HelperMode<'_>) -> Result<(State, State), Failure>,
) -> Result<(State, State, State), Failure> {
    let skip = |s: State| if ignore_cache { s.ignore_cache() } else { s };
    if modern {
        let (out, meta) = exec(HelperMode::Scratch)?;
        let out = skip(out);
        return Ok((out.clone(), out, meta));
    }
    let by_definition = caps.has_llb(cap::EXEC_MOUNT_CONTENT_CACHE);
    let (layer, _) = exec(HelperMode::Chain(chain, by_definition))?;
    let (paths, meta) = exec(HelperMode::Record)?;
    *chain = skip(layer);
    Ok((chain.clone(), skip(paths), meta))
}

/// What the history needs of a layer.
enum LayerNote {
    /// A copy layer: the helper's record output.
    Copy(State),
    /// A run layer.
    Run,
}

/// Part of the build context, sent through the session: `local://CTX_KEY`
/// with exactly the `include` paths minus `exclude`, under its own shared
/// key hint `strata/KEY` (BuildKit keeps one synced copy per hint).
fn context_source(
    env: &FrontendEnv,
    ctx_key: &str,
    key: &str,
    include: Vec<String>,
    exclude: Vec<String>,
    name: String,
) -> State {
    llb::local(ctx_key)
        .session_id(&env.session_id)
        .shared_key_hint(format!("strata/{key}"))
        .include_patterns(include)
        .exclude_patterns(exclude)
        .custom_name(name)
        .build()
}

/// One layer of a copy layer: its ID and where its helper reads from.
struct CopyPart {
    id: String,
    source: PartSource,
}

/// The source a copy layer's helper mounts at `/src`.
enum PartSource {
    /// A local source of its own with these include and exclude patterns.
    Local {
        include: Vec<String>,
        exclude: Vec<String>,
    },
    /// One split file (context path) of the listing source, mounted with a
    /// selector: the file crosses the session once, in the listing, and
    /// BuildKit keys the helper by that file's content only.
    Listed { list: State, path: String },
}

/// The layers of a copy layer: one without a split; with `split = "file"`,
/// the context is listed to find the files of at least `split_min` bytes
/// (contracts §1), each its own layer read from the listing, and the rest.
async fn copy_parts<G: Gateway>(
    gw: &G,
    env: &FrontendEnv,
    opts: &SolveOptions,
    ctx_key: &str,
    name: &str,
    copy: &CopyLayer,
    ignore: &[String],
) -> Result<Vec<CopyPart>, Failure> {
    let includes: Vec<String> = copy.entries.iter().map(|e| e.from.clone()).collect();
    let Some(split) = &copy.split else {
        return Ok(vec![CopyPart {
            id: name.to_string(),
            source: PartSource::Local {
                include: includes,
                exclude: ignore.to_vec(),
            },
        }]);
    };
    let list = context_source(
        env,
        ctx_key,
        name,
        includes.clone(),
        ignore.to_vec(),
        format!("[strata] list {name}"),
    );
    let r = gw.solve(&list.marshal().to_bytes(), opts).await?;
    let ignore_m = Matcher::new(ignore).map_err(|e| protocol(e.to_string()))?;
    let mut files: Vec<LayerFile> = Vec::new();
    for e in &copy.entries {
        let excl = Matcher::new(&e.exclude).map_err(|err| protocol(err.to_string()))?;
        let root = gw.stat_file(&r, &e.from).await?;
        if !root.is_dir() {
            let dest = crate::spec::validate::file_destination(&e.from, &e.to, e.to_is_dir);
            files.push(layer_file(&dest, root.is_file(), root.size.max(0) as u64));
            continue;
        }
        // One directory level at a time, each level's listings at once.
        let mut level = vec![String::new()];
        while !level.is_empty() {
            let listings = futures_util::future::try_join_all(level.iter().map(|rel| {
                let dir = if rel.is_empty() {
                    e.from.clone()
                } else {
                    format!("{}/{rel}", e.from)
                };
                let r = &r;
                async move { gw.read_dir(r, &dir, None).await }
            }))
            .await?;
            let mut next = Vec::new();
            for (rel, listing) in level.iter().zip(listings) {
                for st in listing {
                    let child = if rel.is_empty() {
                        st.path.clone()
                    } else {
                        format!("{rel}/{}", st.path)
                    };
                    let ctx_path = if e.from == "." {
                        child.clone()
                    } else {
                        format!("{}/{child}", e.from)
                    };
                    if ignore_m.excluded(ctx_path.as_bytes(), st.is_dir())
                        || excl.excluded(child.as_bytes(), st.is_dir())
                    {
                        continue;
                    }
                    let dest = if e.to == "/" {
                        format!("/{child}")
                    } else {
                        format!("{}/{child}", e.to)
                    };
                    if st.is_dir() {
                        next.push(child);
                        files.push(LayerFile {
                            dest: dest.as_bytes()[1..].to_vec(),
                            kind: LayerFileKind::Dir,
                        });
                    } else {
                        files.push(layer_file(&dest, st.is_file(), st.size.max(0) as u64));
                    }
                }
            }
            level = next;
        }
    }
    files.sort_by(|a, b| crate::plan::entries::path_order(&a.dest, &b.dest));
    let mut out = Vec::new();
    let mut split_sources = Vec::new();
    let mut rest = None;
    for (id, _) in split_layer(name, Some(split.min), files) {
        match id.split_once('@') {
            Some((_, dest)) => {
                // The one source file of this layer, as a context path.
                let path = source_of(copy, dest).unwrap_or_else(|| includes[0].clone());
                split_sources.push(escape_pattern(&path));
                out.push(CopyPart {
                    id,
                    source: PartSource::Listed {
                        list: list.clone(),
                        path,
                    },
                });
            }
            None => {
                rest = Some(out.len());
                out.push(CopyPart {
                    id,
                    source: PartSource::Local {
                        include: includes.clone(),
                        exclude: Vec::new(),
                    },
                });
            }
        }
    }
    // The rest layer never reads the split files: their changes leave it cached.
    if let Some(i) = rest
        && let PartSource::Local { exclude, .. } = &mut out[i].source
    {
        *exclude = ignore.iter().cloned().chain(split_sources).collect();
    }
    Ok(out)
}

/// A path as an exclude pattern that matches only itself.
fn escape_pattern(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A listed file as a [`LayerFile`] for the split partition (content unknown).
fn layer_file(dest: &str, regular: bool, size: u64) -> LayerFile {
    let dest = dest.trim_start_matches('/').as_bytes().to_vec();
    if regular {
        LayerFile {
            dest,
            kind: LayerFileKind::File {
                source: Default::default(),
                size,
                mode: 0,
                content: crate::plan::digest::Digest::of(b""),
            },
        }
    } else {
        LayerFile {
            dest,
            kind: LayerFileKind::Symlink { target: Vec::new() },
        }
    }
}

/// The context path a destination comes from.
fn source_of(copy: &CopyLayer, dest: &str) -> Option<String> {
    for e in &copy.entries {
        if crate::spec::validate::file_destination(&e.from, &e.to, e.to_is_dir) == dest {
            return Some(e.from.clone());
        }
        let prefix = if e.to == "/" {
            "/".to_string()
        } else {
            format!("{}/", e.to)
        };
        if let Some(rest) = dest.strip_prefix(&prefix) {
            return Some(if e.from == "." {
                rest.to_string()
            } else {
                format!("{}/{rest}", e.from)
            });
        }
    }
    None
}

/// A copy layer from a stage (issue 11): the helper of context copies
/// (contracts §2), with each entry's `from` in the stage's final state
/// mounted read-only at `/src/<entry index>/<name>` instead of a local
/// source. BuildKit keys the exec by the content of those paths only, so
/// the helper re-runs only when the stage produced other files, and writes
/// the same layer whenever it produced the same ones.
#[allow(clippy::too_many_arguments)]
fn stage_copy_exec(
    helper_image: &Helper,
    name: &str,
    copy: &CopyLayer,
    stages: &BTreeMap<String, StageState>,
    timestamp: u64,
    base_dirs: &BaseDirs,
    mode: HelperMode<'_>,
    map: &llb::SourceMap,
    range: &[llb::SourceRange],
) -> Result<(State, State), Failure> {
    let mut local = copy.clone();
    let mut mounts = Vec::new();
    for (i, e) in local.entries.iter_mut().enumerate() {
        let stage = e.stage.take().unwrap_or_default();
        let st = stages.get(&stage).ok_or_else(|| {
            protocol(format!(
                "layer `{name}` copies from stage `{stage}`, which is not built"
            ))
        })?;
        let base = e.from.rsplit('/').next().unwrap_or("");
        let rel = if base.is_empty() {
            i.to_string()
        } else {
            format!("{i}/{base}")
        };
        mounts.push(
            Mount::bind(format!("/src/{rel}"), &st.state)
                .selector(&e.from)
                .readonly(),
        );
        e.from = rel;
    }
    let job = job_for(name, name, &local, &[], timestamp, base_dirs);
    helper_run(helper_image, name, &job, mounts, mode, map, range)
}

/// The helper exec of a context copy layer (contracts §2).
#[allow(clippy::too_many_arguments)]
fn helper_exec(
    env: &FrontendEnv,
    helper_image: &Helper,
    ctx_key: &str,
    part: &CopyPart,
    job: &CopyJob,
    mode: HelperMode<'_>,
    map: &llb::SourceMap,
    range: &[llb::SourceRange],
) -> Result<(State, State), Failure> {
    let id = &part.id;
    let mount = match &part.source {
        PartSource::Local { include, exclude } => {
            let src = context_source(
                env,
                ctx_key,
                id,
                include.clone(),
                exclude.clone(),
                format!("[strata] context for {id}"),
            );
            Mount::bind("/src", &src).readonly()
        }
        PartSource::Listed { list, path } => Mount::bind(format!("/src/{path}"), list)
            .selector(path)
            .readonly(),
    };
    helper_run(helper_image, id, job, vec![mount], mode, map, range)
}

/// The helper exec of one copy layer with its sources mounted under `/src`:
/// its `/out` (the layer, see [`HelperMode`]) and `/meta` (the record)
/// outputs.
fn helper_run(
    helper_image: &Helper,
    id: &str,
    job: &CopyJob,
    sources: Vec<Mount>,
    mode: HelperMode<'_>,
    map: &llb::SourceMap,
    range: &[llb::SourceRange],
) -> Result<(State, State), Failure> {
    let job_json = serde_json::to_string(job).map_err(|e| protocol(e.to_string()))?;
    let mut args = vec![
        IMAGE_BINARY,
        "helper",
        "copy",
        "--src",
        "/src",
        "--out",
        "/out",
        "--record",
        "/meta/record.json",
    ];
    if matches!(mode, HelperMode::Record) {
        args.push("--paths-only");
    }
    args.push(&job_json);
    let (out, title) = match mode {
        HelperMode::Scratch => (
            Mount::bind("/out", &llb::scratch()),
            format!("[strata] layer {id}"),
        ),
        HelperMode::Chain(chain, by_definition) => {
            // A writable mount that is not `/` is keyed by its content on
            // BuildKit >= 0.12 (0.8 keys it by definition): that would
            // hash the whole chain at every layer.
            let m = Mount::bind("/out", chain);
            let m = if by_definition {
                m.no_content_cache()
            } else {
                m
            };
            (m, format!("[strata] layer {id}"))
        }
        HelperMode::Record => (
            Mount::bind("/out", &llb::scratch()),
            format!("[strata] record {id}"),
        ),
    };
    let mut exec = helper_image.exec(args);
    for m in sources {
        exec = exec.mount(m);
    }
    let exec = exec
        .mount(out)
        .mount(Mount::bind("/meta", &llb::scratch()))
        .custom_name(title)
        .location(map, range)
        .build()
        .map_err(|e| protocol(e.to_string()))?;
    let out = exec
        .output("/out")
        .ok_or_else(|| protocol("helper exec has no /out output"))?;
    let meta = exec
        .output("/meta")
        .ok_or_else(|| protocol("helper exec has no /meta output"))?;
    Ok((out, meta))
}

/// A copy layer's helper output, for the overlap check.
#[derive(Clone)]
struct CopyOut {
    id: String,
    /// The spec layer it belongs to (split layers share it).
    layer: String,
    /// Destination roots: everything it writes is at or under one of them.
    roots: Vec<String>,
    state: State,
}

impl CopyOut {
    fn new(id: &str, layer: &str, copy: &CopyLayer, state: &State) -> CopyOut {
        let roots = match id.split_once('@') {
            Some((_, dest)) => vec![dest.to_string()],
            None => copy
                .entries
                .iter()
                .map(|e| match e.to.trim_end_matches('/') {
                    "" => "/".to_string(),
                    to => to.to_string(),
                })
                .collect(),
        };
        CopyOut {
            id: id.to_string(),
            layer: layer.to_string(),
            roots,
            state: state.clone(),
        }
    }
}

/// Whether one root is the other or an ancestor of it.
fn nested(a: &str, b: &str) -> bool {
    let under =
        |x: &str, y: &str| x == "/" || y.strip_prefix(x).is_some_and(|r| r.starts_with('/'));
    a == b || under(a, b) || under(b, a)
}

/// The copy outputs that may write a path another one writes, in layer
/// order: those with nested destination roots. Two layers whose roots do
/// not nest share at most ancestor directories, which every layer may
/// write (contracts §1); the layers split from one spec layer are disjoint
/// by construction unless that layer's own entries nest.
fn overlap_suspects(outs: &[CopyOut]) -> Vec<(String, State)> {
    // Per spec layer, once: whether its own entries' roots nest (its
    // unsplit part holds them all).
    let mut roots_of: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
    for o in outs.iter().filter(|o| !o.id.contains('@')) {
        roots_of.entry(&o.layer).or_default().extend(&o.roots);
    }
    let self_nested: BTreeMap<&str, bool> = roots_of
        .into_iter()
        .map(|(layer, roots)| {
            let any = roots
                .iter()
                .enumerate()
                .any(|(i, a)| roots[i + 1..].iter().any(|b| nested(a, b)));
            (layer, any)
        })
        .collect();
    let mut suspect = vec![false; outs.len()];
    for (i, a) in outs.iter().enumerate() {
        for (j, b) in outs.iter().enumerate().skip(i + 1) {
            if a.layer == b.layer && !self_nested.get(a.layer.as_str()).copied().unwrap_or(false) {
                continue;
            }
            if a.roots.iter().any(|x| b.roots.iter().any(|y| nested(x, y))) {
                suspect[i] = true;
                suspect[j] = true;
            }
        }
    }
    outs.iter()
        .zip(suspect)
        .filter(|(_, s)| *s)
        .map(|(o, _)| (o.id.clone(), o.state.clone()))
        .collect()
}

/// The exec that fails when two copy layers' trees (mounted read-only, in
/// layer order) write the same path: `strata helper overlaps`.
fn overlaps_exec(helper_image: &Helper, outs: &[(String, State)]) -> Result<State, Failure> {
    let mut args = vec![
        IMAGE_BINARY.to_string(),
        "helper".to_string(),
        "overlaps".to_string(),
    ];
    args.extend(
        outs.iter()
            .enumerate()
            .map(|(i, (id, _))| format!("{id}=/layers/{i}")),
    );
    let mut exec = helper_image.exec(args).custom_name(format!(
        "[strata] check that the {} copy layers write distinct paths",
        outs.len()
    ));
    for (i, (_, out)) in outs.iter().enumerate() {
        exec = exec.mount(Mount::bind(format!("/layers/{i}"), out).readonly());
    }
    // An empty scratch output: the result to solve.
    let exec = exec
        .mount(Mount::bind("/out", &llb::scratch()))
        .build()
        .map_err(|e| protocol(e.to_string()))?;
    exec.output("/out")
        .ok_or_else(|| protocol("overlap check exec has no /out output"))
}

#[allow(clippy::too_many_arguments)]
fn run_exec(
    env: &FrontendEnv,
    caps: &Caps,
    spec: &ResolvedSpec,
    ctx_key: &str,
    name: &str,
    run: &RunLayer,
    parent: &State,
    base_config: Option<&serde_json::Value>,
    map: &llb::SourceMap,
    range: &[llb::SourceRange],
    stage: Option<&Stage>,
    stages: &BTreeMap<String, StageState>,
) -> Result<State, Failure> {
    // A stage step: the stage's workdir (already in `run.workdir`) and env,
    // never the image's.
    let image_workdir = if stage.is_some() {
        None
    } else {
        spec.image.workdir.clone()
    };
    let workdir = run
        .workdir
        .clone()
        .or(image_workdir)
        .unwrap_or_else(|| "/".to_string());
    let title = match stage {
        Some(st) => format!("[strata] stage {}: {}", st.name, run.command),
        None => format!("[strata] layer {name}: {}", run.command),
    };
    let mut exec = llb::Exec::new(parent, ["/bin/sh", "-c", run.command.as_str()])
        .cwd(&workdir)
        .custom_name(title)
        .location(map, range)
        .platform(oci_platform(&spec.platform));
    // Environment: the base's, the image's, then the layer's (contracts §4).
    let mut envs: Vec<(String, String)> = Vec::new();
    if let Some(list) = base_config
        .and_then(|c| c.pointer("/config/Env"))
        .and_then(|e| e.as_array())
    {
        for item in list.iter().filter_map(|v| v.as_str()) {
            if let Some((k, v)) = item.split_once('=') {
                envs.push((k.to_string(), v.to_string()));
            }
        }
    }
    if !envs.iter().any(|(k, _)| k == "PATH") {
        envs.push((
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ));
    }
    let over = stage.map_or(&spec.image.env, |st| &st.env);
    for (k, v) in over.iter().chain(run.env.iter()) {
        envs.push((k.clone(), v.clone()));
    }
    for (k, v) in envs {
        exec = exec.env(k, v);
    }
    if let Some(u) = &run.user {
        exec = exec.user(u);
    }
    if !run.inputs.is_empty() {
        let src = context_source(
            env,
            ctx_key,
            name,
            run.inputs.iter().map(|i| i.path.clone()).collect(),
            Vec::new(),
            format!("[strata] inputs of {name}"),
        );
        for input in &run.inputs {
            let dest = if workdir == "/" {
                format!("/{}", input.path)
            } else {
                format!("{workdir}/{}", input.path)
            };
            let m = Mount::bind(dest, &src).selector(&input.path);
            exec = exec.mount(if run.inputs_writable {
                m.discard_changes()
            } else {
                m.readonly()
            });
        }
        // Always set: BuildKit ≥ 0.11 removes the stubs, 0.8 ignores the field.
        exec = exec.remove_mount_stubs_recursive();
    }
    // Stage paths, read-only: BuildKit keys the exec by their content.
    for m in &run.mounts {
        let st = stages.get(&m.stage).ok_or_else(|| {
            protocol(format!(
                "layer `{name}` mounts stage `{}`, which is not built",
                m.stage
            ))
        })?;
        exec = exec.mount(Mount::bind(&m.to, &st.state).selector(&m.from).readonly());
    }
    if !run.mounts.is_empty() && run.inputs.is_empty() {
        // No stubs of the mount points in the layer (set once per exec).
        exec = exec.remove_mount_stubs_recursive();
    }
    for c in &run.cache {
        let sharing = match c.sharing {
            Sharing::Shared => llb::CacheSharing::Shared,
            Sharing::Locked => llb::CacheSharing::Locked,
            Sharing::Private => llb::CacheSharing::Private,
        };
        exec = exec.mount(
            Mount::cache(
                &c.target,
                format!(
                    "{}/{}",
                    spec.image.cache_namespace,
                    c.target.trim_start_matches('/')
                ),
            )
            .sharing(sharing),
        );
    }
    for s in &run.secrets {
        match &s.expose {
            SecretExpose::File(target) => exec = exec.mount(Mount::secret(target, &s.id)),
            SecretExpose::Env(var) => {
                if !caps.has_llb(cap::EXEC_SECRET_ENV) {
                    return Err(protocol(format!(
                        "layer `{name}` exposes secret `{}` as ${var}, but this BuildKit has no secret env (exec.secretenv, BuildKit >= 0.10): use `target` instead",
                        s.id
                    )));
                }
                exec = exec.secret_env(llb::SecretEnv {
                    id: s.id.clone(),
                    name: var.clone(),
                    optional: false,
                });
            }
        }
    }
    for (i, id) in run.ssh.iter().enumerate() {
        let dest = if i == 0 {
            "/run/buildkit/ssh_agent.0".to_string()
        } else {
            format!("/run/buildkit/ssh_agent.{i}")
        };
        exec = exec
            .mount(Mount::ssh(dest, id))
            .env("SSH_AUTH_SOCK", "/run/buildkit/ssh_agent.0");
    }
    if run.network == Network::None {
        exec = exec.network(llb::NetMode::None);
    }
    let outs = exec.build().map_err(|e| protocol(e.to_string()))?;
    outs.root()
        .ok_or_else(|| protocol("run exec has no root output"))
}

fn image_config(
    spec: &ResolvedSpec,
    base: Option<&serde_json::Value>,
    created: u64,
    history: &[crate::oci::image::HistoryEntry],
    layers: &[(String, State, LayerNote)],
) -> Result<Vec<u8>, Failure> {
    let settings = crate::oci::build::settings(spec);
    let platform = crate::oci::build::oci_platform(&spec.platform);
    // The exporter fills in rootfs; placeholders keep build_config's check.
    let diff_ids: Vec<crate::oci::Digest> = layers
        .iter()
        .map(|(id, _, _)| crate::oci::Digest::of(id.as_bytes()))
        .collect();
    let mut config = crate::oci::image::build_config(&crate::oci::image::ConfigInput {
        base,
        platform: &platform,
        created,
        settings: &settings,
        diff_ids: &diff_ids,
        history,
    })
    .map_err(|e| protocol(e.to_string()))?;
    if let Some(obj) = config.as_object_mut() {
        obj.remove("rootfs");
    }
    serde_json::to_vec(&config).map_err(|e| protocol(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::frontend::fake::{Call, FakeGateway};

    fn caps(modern: bool) -> Caps {
        let mut llb: BTreeSet<String> = ["source.local", "source.image", "file.base"]
            .map(String::from)
            .into();
        if modern {
            llb.extend(["mergeop", "diffop"].map(String::from));
        }
        Caps {
            gateway: ["proto.refarray", "gateway.warnings"]
                .map(String::from)
                .into(),
            llb,
            workers: Vec::new(),
        }
    }

    fn env(opts: &[(&str, &str)]) -> FrontendEnv {
        FrontendEnv {
            opts: opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            session_id: "s".into(),
            workers: Vec::new(),
        }
    }

    const RECORD: &str = r#"{"layer":"app","inputs":"sha256:1111111111111111111111111111111111111111111111111111111111111111","key":"sha256:2222222222222222222222222222222222222222222222222222222222222222"}"#;

    fn run(gw: &FakeGateway, opts: &[(&str, &str)]) -> Call {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(run_with(gw, &env(opts))).unwrap();
        gw.calls().pop().unwrap()
    }

    #[test]
    fn spec_errors_are_returned_with_their_line() {
        let gw = FakeGateway::new(caps(true)).with_file(
            "strata.toml",
            "version = 1\n[[layer]]\nname = \"app\"\ncopy = [{ form = \"x\", to = \"/x\" }]\n",
        );
        let Call::ReturnError(status) = run(&gw, &[("source", "strata:dev")]) else {
            panic!("expected an error")
        };
        assert!(
            status
                .message
                .contains("strata.toml:4:11: unknown key `form`"),
            "{}",
            status.message
        );
        assert_eq!(status.details.len(), 1, "one source-location detail");
        assert!(String::from_utf8_lossy(&status.details[0].value).contains("\"line\":4"));
    }

    #[test]
    fn multi_platform_returns_one_ref_per_platform() {
        let gw = FakeGateway::new(caps(true))
            .with_file(
                "strata.toml",
                "version = 1\n[image]\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\nlabels = { a = \"1\" }\n\
                 [[layer]]\nname = \"app\"\ncopy = [{ from = \"app\", to = \"/app\" }]\n",
            )
            .with_file("app/main.py", "print(1)\n")
            .with_file("record.json", RECORD);
        let call = run(
            &gw,
            &[
                ("source", "strata:dev"),
                ("label:b", "2"),
                ("cache-from", "localhost:5000/cache"),
            ],
        );
        let Call::ReturnResult(result) = call else {
            panic!("expected a result: {call:?}")
        };
        let ResultRefs::PerPlatform(refs) = &result.refs else {
            panic!("expected refs per platform")
        };
        assert_eq!(
            refs.keys().collect::<Vec<_>>(),
            ["linux/amd64", "linux/arm64"]
        );
        let platforms: serde_json::Value =
            serde_json::from_slice(&result.metadata["refs.platforms"]).unwrap();
        assert_eq!(platforms["Platforms"].as_array().unwrap().len(), 2);
        for p in ["linux/amd64", "linux/arm64"] {
            let config: serde_json::Value =
                serde_json::from_slice(&result.metadata[&format!("containerimage.config/{p}")])
                    .unwrap();
            assert_eq!(config["architecture"], p.rsplit('/').next().unwrap());
            assert_eq!(config["config"]["Labels"]["a"], "1");
            assert_eq!(config["config"]["Labels"]["b"], "2", "label: options apply");
            let history = config["history"].as_array().unwrap();
            let last = history.last().unwrap();
            assert_eq!(last["created_by"], "strata layer app");
            assert!(
                last["comment"]
                    .as_str()
                    .unwrap()
                    .contains("inputs=sha256:1111")
            );
            assert_eq!(last["created"], "1980-01-02T00:00:00Z");
        }
        // Cache imports reach every solve.
        let imports = gw
            .calls()
            .iter()
            .filter_map(|c| match c {
                Call::Solve { options, .. } => Some(options.cache_imports.len()),
                _ => None,
            })
            .max();
        assert_eq!(imports, Some(1));
    }

    #[test]
    fn source_date_epoch_sets_created_only() {
        let gw = FakeGateway::new(caps(false))
            .with_file("strata.toml", "version = 1\n[[layer]]\nname = \"app\"\ncopy = [{ from = \"app\", to = \"/app\" }]\n")
            .with_file("app/main.py", "print(1)\n")
            .with_file("record.json", RECORD);
        let call = run(
            &gw,
            &[
                ("source", "strata:dev"),
                ("build-arg:SOURCE_DATE_EPOCH", "1700000000"),
            ],
        );
        let Call::ReturnResult(result) = call else {
            panic!("expected a result: {call:?}")
        };
        let config: serde_json::Value =
            serde_json::from_slice(&result.metadata["containerimage.config"]).unwrap();
        assert_eq!(config["created"], "2023-11-14T22:13:20Z");
        // The fallback (no mergeop) said so through Warn.
        assert!(
            gw.calls()
                .iter()
                .any(|c| matches!(c, Call::Warn(w) if w.short.contains("no MergeOp/DiffOp")))
        );
    }

    /// The LLB of a spec with two independent stages, one built on
    /// another, and an unused one, lowered offline; digests pinned.
    /// The overlap check runs only for copy layers whose destinations nest.
    #[test]
    fn overlap_check_covers_nested_destinations_only() {
        let out = |id: &str, layer: &str, roots: &[&str]| CopyOut {
            id: id.into(),
            layer: layer.into(),
            roots: roots.iter().map(|r| r.to_string()).collect(),
            state: llb::scratch(),
        };
        let ids = |outs: &[CopyOut]| -> Vec<String> {
            overlap_suspects(outs)
                .into_iter()
                .map(|(id, _)| id)
                .collect()
        };
        let models = || {
            [
                out(
                    "models",
                    "models",
                    &["/app/models/vocos", "/app/models/whisper"],
                ),
                out(
                    "models@/app/models/vocos/a.bin",
                    "models",
                    &["/app/models/vocos/a.bin"],
                ),
            ]
        };
        // A split layer, a file and a directory beside it, siblings that
        // share a prefix: nothing nests, no check.
        let mut outs = models().to_vec();
        outs.push(out(
            "runtime",
            "runtime",
            &["/app/entrypoint.sh", "/app/src2"],
        ));
        outs.push(out("app", "app", &["/app/src"]));
        assert!(ids(&outs).is_empty(), "{:?}", ids(&outs));
        // A layer into /app nests with every other one.
        outs.push(out("code", "code", &["/app"]));
        assert_eq!(
            ids(&outs),
            [
                "models",
                "models@/app/models/vocos/a.bin",
                "runtime",
                "app",
                "code"
            ]
        );
        // Into `/`: likewise; a file written where a directory is copied.
        let outs = [out("all", "all", &["/"]), out("app", "app", &["/app/src"])];
        assert_eq!(ids(&outs), ["all", "app"]);
        let outs = [
            out("a", "a", &["/app/src"]),
            out("b", "b", &["/app/src/x.py"]),
        ];
        assert_eq!(ids(&outs), ["a", "b"]);
        // One spec layer whose own entries nest: its split parts are checked.
        let outs = [
            out("m", "m", &["/app/m", "/app/m/sub"]),
            out("m@/app/m/sub/w.bin", "m", &["/app/m/sub/w.bin"]),
        ];
        assert_eq!(ids(&outs), ["m", "m@/app/m/sub/w.bin"]);
    }

    /// Writes `files` into a fresh directory (context and spec alike) and
    /// runs the frontend on it offline with `caps`: the gateway afterwards.
    fn lower_offline(
        files: &[(&str, &str)],
        caps: crate::frontend::offline::EngineCaps,
    ) -> crate::frontend::offline::OfflineGateway {
        let dir = tempfile::tempdir().unwrap();
        for (p, c) in files {
            let path = dir.path().join(p);
            fs_err::create_dir_all(path.parent().unwrap()).unwrap();
            fs_err::write(path, c).unwrap();
        }
        let gw = crate::frontend::offline::OfflineGateway::new(
            caps,
            BTreeMap::from([
                ("dockerfile".to_string(), dir.path().to_path_buf()),
                ("context".to_string(), dir.path().to_path_buf()),
            ]),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(run_with(
            &gw,
            &env(&[("source", "strata:dev"), ("platform", "linux/amd64")]),
        ))
        .unwrap();
        gw
    }

    #[test]
    fn stages_lower_to_independent_exec_chains() {
        use prost::Message;

        use crate::frontend::offline::EngineCaps;
        use crate::proto::pb;

        // Lines: build 4-10 (step 8-10), tools 11-15, dev 16-18, layers from 19.
        let gw = lower_offline(
            &[
                ("requirements.txt", "tts-textnorm==0.1.0\n"),
                ("src/app.py", "print(1)\n"),
                (
                    "strata.toml",
                    "version = 1\n[image]\nfrom = \"debian:bookworm\"\n\
             [[stage]]\nname = \"build\"\nfrom = \"debian:bookworm\"\nworkdir = \"/b\"\n\
             [[stage.step]]\nrun = \"pip wheel -r requirements.txt -w /wheels\"\ninputs = [\"requirements.txt\"]\n\
             [[stage]]\nname = \"tools\"\nfrom = \"alpine:3\"\n[[stage.step]]\nrun = \"echo 1 > /v\"\n\
             [[stage]]\nname = \"dev\"\nfrom = \"build\"\n\
             [[layer]]\nname = \"wheels\"\ncopy = [{ stage = \"build\", from = \"/wheels\", to = \"/opt/wheels\" }]\n\
             [[layer]]\nname = \"deps\"\nrun = \"cat /t/v\"\nmounts = [{ stage = \"tools\", from = \"/\", to = \"/t\" }]\n\
             [[layer]]\nname = \"app\"\ncopy = [{ from = \"src\", to = \"/app\" }]\n\
             [[layer]]\nname = \"dbg\"\ntargets = [\"development\"]\ncopy = [{ stage = \"dev\", from = \"/b\", to = \"/b\" }]\n\
             [target.development]\n",
                ),
            ],
            EngineCaps::Modern,
        );
        let bytes = gw.outcome().unwrap();
        let def = Definition::from_bytes(&bytes).unwrap();
        let ops = def.ops().unwrap();
        let by_name = |prefix: &str| {
            ops.iter()
                .find(|o| {
                    o.description
                        .as_deref()
                        .is_some_and(|d| d.starts_with(prefix))
                })
                .unwrap_or_else(|| panic!("no op named {prefix}"))
        };
        let build = by_name("[strata] stage build:");
        let tools = by_name("[strata] stage tools:");
        let helper = by_name("[strata] layer wheels");
        let deps = by_name("[strata] layer deps:");
        assert!(
            !ops.iter().any(|o| o
                .description
                .as_deref()
                .is_some_and(|d| d.contains("stage dev") || d.contains("layer dbg"))),
            "a stage the target does not need is not built"
        );
        // Everything each stage exec depends on.
        let ancestors = |digest: &str| {
            let mut seen = std::collections::BTreeSet::new();
            let mut todo = vec![digest.to_string()];
            while let Some(d) = todo.pop() {
                if seen.insert(d.clone())
                    && let Some(o) = ops.iter().find(|o| o.digest == d)
                {
                    todo.extend(o.inputs.iter().map(|(i, _)| i.clone()));
                }
            }
            seen
        };
        let (a, b) = (ancestors(&build.digest), ancestors(&tools.digest));
        assert!(a.is_disjoint(&b), "independent stages share no op");
        // The helper reads the build stage; the run layer mounts tools.
        assert!(helper.inputs.iter().any(|(d, _)| *d == build.digest));
        assert!(deps.inputs.iter().any(|(d, _)| *d == tools.digest));
        let raw = pb::Definition::decode(bytes.as_slice()).unwrap();
        let exec_of = |digest: &str| {
            let i = ops.iter().position(|o| o.digest == digest).unwrap();
            match pb::Op::decode(raw.def[i].as_slice()).unwrap().op {
                Some(pb::op::Op::Exec(e)) => e,
                other => panic!("{other:?}"),
            }
        };
        let m = exec_of(&helper.digest)
            .mounts
            .into_iter()
            .find(|m| m.dest == "/src/0/wheels")
            .expect("the stage path mounted for the helper");
        assert!(m.readonly);
        assert_eq!(m.selector, "/wheels");
        let m = exec_of(&deps.digest)
            .mounts
            .into_iter()
            .find(|m| m.dest == "/t")
            .expect("the stage mounted into the run layer");
        assert!(
            m.readonly && m.output == -1,
            "read-only, never in the layer"
        );
        assert!(
            exec_of(&deps.digest)
                .meta
                .unwrap()
                .remove_mount_stubs_recursive,
            "no mount-point stubs in the layer"
        );
        assert_eq!(exec_of(&build.digest).meta.unwrap().cwd, "/b");
        // A failing stage command points at its step's lines.
        let loc = &raw.source.as_ref().unwrap().locations[&build.digest].locations[0];
        let range = loc.ranges[0];
        assert_eq!(
            (range.start.unwrap().line, range.end.unwrap().line),
            (8, 9),
            "the step's header and its `run`"
        );
        // Golden digests: a change in how stages lower must show here.
        assert_eq!(
            (
                build.digest.as_str(),
                helper.digest.as_str(),
                def.head().unwrap().as_str()
            ),
            (
                "sha256:c71d7f5176fcfea562f30c661a2e92e283261a4766410805e11a87630801d32b",
                "sha256:b09ae4e8607b23407905b9f851d8100cdeb0c4c96a3f8c06afc71d98efdf648d",
                "sha256:3c87d3424cd9e81eed37618d96b8a2433c5994d9329a6a12e5ec1bf32f8dedde"
            )
        );
    }

    /// The helper runs from the frontend's own image. Where execs can key a
    /// mount by content, they do so for it and keep the very op BuildKit
    /// loaded the frontend with; elsewhere the image op is the frontend's
    /// pinned reference and platform, marked `internal` (another vertex).
    #[test]
    fn the_helper_image_is_keyed_apart_from_the_frontend_load() {
        use crate::proto::pb;

        // What BuildKit writes to frontend.bin: one pinned image source
        // marked as the frontend.
        let reference = "127.0.0.1:5000/s/strata:1@sha256:3d4a354869244654fdb291d643f0682456286304f8b935fcfd418017614f86b3";
        let source = pb::Op {
            op: Some(pb::op::Op::Source(pb::SourceOp {
                identifier: format!("docker-image://{reference}"),
                attrs: [("image.recordtype".to_string(), "frontend".to_string())].into(),
            })),
            platform: Some(pb::Platform {
                os: "linux".into(),
                architecture: "arm64".into(),
                variant: "v8".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let bytes = |op: &pb::Op| prost::Message::encode_to_vec(op);
        let digest = |b: &[u8]| crate::plan::Digest::of(b).to_string();
        let frontend = bytes(&source);
        let terminal = pb::Op {
            inputs: vec![pb::Input {
                digest: digest(&frontend),
                index: 0,
            }],
            ..Default::default()
        };
        let bin = prost::Message::encode_to_vec(&pb::Definition {
            def: vec![frontend.clone(), bytes(&terminal)],
            ..Default::default()
        });
        let root_of = |helper: &Helper| {
            let def = helper
                .exec(["/strata"])
                .mount(Mount::bind("/out", &llb::scratch()))
                .build()
                .unwrap()
                .output("/out")
                .unwrap()
                .marshal();
            let exec = def
                .decode_ops()
                .unwrap()
                .into_iter()
                .find_map(|op| match op.op {
                    Some(pb::op::Op::Exec(e)) => Some(e),
                    _ => None,
                })
                .unwrap();
            exec.mounts.into_iter().find(|m| m.dest == "/").unwrap()
        };

        // BuildKit >= 0.13: the very op, keyed by content in the execs.
        let helper = helper_image(Some(&bin), Some("ignored:1"), true).unwrap();
        let def = helper.image.marshal();
        assert_eq!(def.ops().unwrap()[0].digest, digest(&frontend));
        let root = root_of(&helper);
        assert!(root.readonly);
        assert_eq!(root.content_cache, pb::MountContentCache::On as i32);

        // Older: another op for the same image and platform, keyed by it.
        let helper = helper_image(Some(&bin), Some("ignored:1"), false).unwrap();
        let def = helper.image.marshal();
        let ops = def.decode_ops().unwrap();
        let [image, _] = ops.as_slice() else {
            panic!("one source and the terminal: {ops:?}")
        };
        let Some(pb::op::Op::Source(src)) = &image.op else {
            panic!("a source op")
        };
        assert_eq!(src.identifier, format!("docker-image://{reference}"));
        assert_eq!(src.attrs["image.recordtype"], "internal");
        assert_eq!(image.platform, source.platform, "the frontend's platform");
        assert_ne!(
            def.ops().unwrap()[0].digest,
            digest(&frontend),
            "another vertex than the one BuildKit loaded the frontend with"
        );
        assert_eq!(
            root_of(&helper).content_cache,
            pb::MountContentCache::Default as i32
        );

        // Without frontend.bin: the `source` option, marked the same way.
        let def = helper_image(None, Some("strata:dev"), true)
            .unwrap()
            .image
            .marshal();
        let Some(pb::op::Op::Source(src)) = &def.decode_ops().unwrap()[0].op else {
            panic!("a source op")
        };
        assert_eq!(
            src.identifier,
            "docker-image://docker.io/library/strata:dev"
        );
        assert_eq!(src.attrs["image.recordtype"], "internal");
        assert!(helper_image(None, None, true).is_err());
    }

    /// The fallback (BuildKit 0.8): each copy layer is one helper exec that
    /// writes onto the chain mounted writable at `/out` (no FileOp), and a
    /// record step on the same source writes the record and the paths to
    /// scratch outputs; with MergeOp the helper's `/out` is scratch.
    #[test]
    fn the_fallback_writes_each_copy_layer_onto_the_chain() {
        use prost::Message;

        use crate::frontend::offline::EngineCaps;
        use crate::proto::pb;

        let lower = |caps: EngineCaps| {
            let gw = lower_offline(
                &[
                    ("data/a.txt", "a\n"),
                    ("src/app.py", "print(1)\n"),
                    (
                        "strata.toml",
                        "version = 1\n[image]\nfrom = \"debian:bookworm\"\n\
             [[layer]]\nname = \"data\"\ncopy = [{ from = \"data\", to = \"/data\" }]\n\
             [[layer]]\nname = \"deps\"\nrun = \"true\"\n\
             [[layer]]\nname = \"app\"\ncopy = [{ from = \"src\", to = \"/app\" }]\n",
                    ),
                ],
                caps,
            );
            gw.outcome().unwrap();
            gw.solved()
        };
        // (description, exec op, input digests) of every op solved.
        let ops_of = |solved: Vec<Vec<u8>>| {
            let mut all = Vec::new();
            for bytes in &solved {
                let def = Definition::from_bytes(bytes).unwrap();
                let raw = pb::Definition::decode(bytes.as_slice()).unwrap();
                all.extend(def.ops().unwrap().into_iter().enumerate().map(|(i, o)| {
                    let op = pb::Op::decode(raw.def[i].as_slice()).unwrap();
                    let exec = match op.op {
                        Some(pb::op::Op::Exec(e)) => Some(e),
                        Some(pb::op::Op::File(_))
                            if !o
                                .description
                                .as_deref()
                                .is_some_and(|d| d.starts_with("[strata] WARNING")) =>
                        {
                            panic!("a FileOp: {:?}", o.description)
                        }
                        _ => None,
                    };
                    let inputs: Vec<String> = op.inputs.iter().map(|i| i.digest.clone()).collect();
                    (o.description.unwrap_or_default(), o.digest, exec, inputs)
                }));
            }
            all
        };
        let ops = ops_of(lower(EngineCaps::V08));
        let find = |prefix: &str| {
            ops.iter()
                .find(|(d, ..)| d.starts_with(prefix))
                .unwrap_or_else(|| panic!("no op named {prefix}"))
        };
        let out_mount =
            |e: &pb::ExecOp| e.mounts.iter().find(|m| m.dest == "/out").unwrap().clone();
        let (_, deps_digest, ..) = find("[strata] layer deps:");
        let (_, _, app, app_inputs) = find("[strata] layer app");
        let app = app.as_ref().unwrap();
        let out = out_mount(app);
        assert!(
            !out.readonly && out.output >= 0,
            "the chain, writable, an output"
        );
        assert_eq!(
            &app_inputs[out.input as usize], deps_digest,
            "the app layer is written onto the run layer's result"
        );
        let root = app.mounts.iter().find(|m| m.dest == "/").unwrap();
        assert!(root.readonly, "the root is the frontend image, read-only");
        let (_, _, record, _) = find("[strata] record app");
        let record = record.as_ref().unwrap();
        assert!(
            record
                .meta
                .as_ref()
                .unwrap()
                .args
                .iter()
                .any(|a| a == "--paths-only")
        );
        assert_eq!(
            out_mount(record).input,
            -1,
            "the record step writes to scratch"
        );
        // The first copy layer is written onto the base.
        let (_, _, data, data_inputs) = find("[strata] layer data");
        let data_out = out_mount(data.as_ref().unwrap());
        let (_, base_digest, ..) = find("[strata] base debian:bookworm");
        assert_eq!(&data_inputs[data_out.input as usize], base_digest);

        // With MergeOp, the helper writes to scratch and no record step exists.
        let ops = ops_of(lower(EngineCaps::Modern));
        assert!(!ops.iter().any(|(d, ..)| d.starts_with("[strata] record ")));
        let (_, _, app, _) = ops
            .iter()
            .find(|(d, ..)| d.starts_with("[strata] layer app"))
            .unwrap();
        assert_eq!(out_mount(app.as_ref().unwrap()).input, -1);
    }
}
