//! The frontend options (`BUILDKIT_FRONTEND_OPT_*`, read by
//! [`FrontendEnv`]), parsed once into one [`Options`] at the start of a
//! build, as BuildKit's Dockerfile frontend does: nothing below reads an
//! option by its name.

use std::collections::BTreeMap;

use super::DEFAULT_FILENAME;
use crate::frontend::error::{BuildError, FrontendError};
use crate::frontend::gateway::{CacheImport, Caps, ResolveMode};
use crate::frontend::opts::FrontendEnv;
use crate::spec::ResolveOptions;

/// Every frontend option the build uses.
#[derive(Debug, Clone)]
pub(super) struct Options {
    /// `filename`: the spec's path in the spec's local source.
    pub(crate) filename: String,
    /// `dockerfilekey`: the local source that holds the spec.
    pub(crate) spec_key: String,
    /// `contextkey`: the local source that holds the build context.
    pub(crate) context_key: String,
    /// `BUILDKIT_SESSION_ID`: the client session that serves local sources.
    pub(crate) session_id: String,
    /// `source`: the frontend's own image (the `# syntax=` reference).
    pub(crate) source: Option<String>,
    /// `target`, `platform` (else the spec's `[image] platforms`, else the
    /// worker's default platform) and `build-arg:NAME`, for spec resolution.
    pub(crate) resolve: ResolveOptions,
    /// `no-cache`: `Some` of the layer names whose cache is ignored, every
    /// layer's when the list is empty.
    pub(crate) no_cache: Option<Vec<String>>,
    /// `cache-imports` and `cache-from`.
    pub(crate) cache_imports: Vec<CacheImport>,
    /// `image-resolve-mode`.
    pub(crate) resolve_mode: ResolveMode,
    /// `build-arg:SOURCE_DATE_EPOCH`, when it is a number: the image's
    /// creation time.
    pub(crate) source_date_epoch: Option<u64>,
    /// `build-arg:STRATA_LOCKED=1`: every image base needs a pin.
    pub(crate) locked: bool,
    /// `label:NAME` (`docker buildx build --label`), over the spec's labels.
    pub(crate) labels: BTreeMap<String, String>,
}

impl Options {
    /// Parses `env`'s options; `caps` gives the default platform.
    pub(crate) fn parse(env: &FrontendEnv, caps: &Caps) -> Result<Options, BuildError> {
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
                platforms.push(crate::spec::Platform::parse(p).map_err(|e| {
                    FrontendError::Option {
                        key: "platform".into(),
                        reason: e.to_string(),
                    }
                })?);
            }
        }
        // The worker's platform is the builder's: what is built when neither
        // the option nor the spec's `[image] platforms` names a platform.
        let host = caps
            .default_platform()
            .and_then(|p| crate::spec::Platform::parse(&p.to_string()).ok());
        let resolve = ResolveOptions {
            target: env
                .opt("target")
                .filter(|t| !t.is_empty())
                .map(String::from),
            platforms,
            host,
            build_args,
            context: ".".into(),
        };
        let no_cache = env.opt("no-cache").map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        });
        let resolve_mode = match env.opt("image-resolve-mode") {
            Some("pull") => ResolveMode::ForcePull,
            Some("local") => ResolveMode::PreferLocal,
            _ => ResolveMode::Default,
        };
        let labels = env
            .opts
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("label:").map(|n| (n.to_string(), v.clone())))
            .collect();
        Ok(Options {
            filename: env.opt("filename").unwrap_or(DEFAULT_FILENAME).to_string(),
            spec_key: env.opt("dockerfilekey").unwrap_or("dockerfile").to_string(),
            context_key: env.opt("contextkey").unwrap_or("context").to_string(),
            session_id: env.session_id.clone(),
            source: env.opt("source").map(String::from),
            resolve,
            no_cache,
            cache_imports: env.cache_imports()?,
            resolve_mode,
            source_date_epoch: env
                .opt("build-arg:SOURCE_DATE_EPOCH")
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|&t| t <= crate::spec::MAX_TIMESTAMP),
            locked: env.opt("build-arg:STRATA_LOCKED") == Some("1"),
            labels,
        })
    }

    /// Whether `no-cache` names the layer `name` (or every layer).
    pub(crate) fn skip_cache(&self, name: &str) -> bool {
        self.no_cache
            .as_ref()
            .is_some_and(|l| l.is_empty() || l.iter().any(|n| n == name))
    }
}
