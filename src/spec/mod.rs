//! The `strata.toml` layer spec: parse, substitute arguments, validate, resolve.
//!
//! [`load`] is the whole pipeline for a spec on disk; the frontend, which reads
//! the spec over the gateway, calls [`parse::source_from_bytes`],
//! [`parse::parse`] and [`resolve::resolve`] itself.

pub mod error;
pub mod interpolate;
pub mod model;
pub mod parse;
pub mod reference;
pub mod resolve;
pub mod resolved;
pub mod validate;
pub mod values;

use std::path::{Path, PathBuf};

pub use error::{Diag, SpecError, SpecSource};
pub use reference::ImageRef;
pub use resolve::ResolveOptions;
pub use resolved::*;

/// A spec resolved for every platform it builds, with its warnings.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// One resolution per platform, in platform order.
    pub specs: Vec<ResolvedSpec>,
    /// Warnings (never errors).
    pub warnings: Vec<Diag>,
}

/// The spec path: `file` as given, or `strata.toml` in the context (contracts §8).
pub fn spec_path(context: &Path, file: Option<&Path>) -> PathBuf {
    file.map(Path::to_path_buf)
        .unwrap_or_else(|| context.join("strata.toml"))
}

/// Reads, parses, resolves and validates the spec against the context.
pub fn load(file: &Path, mut opts: ResolveOptions) -> Result<Loaded, SpecError> {
    let context = match fs_err::canonicalize(&opts.context) {
        Ok(c) if c.is_dir() => c,
        _ => {
            return Err(SpecError::BadContext {
                path: opts.context.clone(),
            });
        }
    };
    opts.context = context;
    let source = parse::read_source(file)?;
    let loaded = resolve_all(&source, &opts)?;
    let mut errors: Vec<Diag> = Vec::new();
    for spec in &loaded.specs {
        for d in validate::validate_context(spec) {
            if !errors
                .iter()
                .any(|e| e.span == d.span && e.message == d.message)
            {
                errors.push(d);
            }
        }
    }
    if errors.iter().any(Diag::is_error) {
        errors.extend(loaded.warnings);
        return Err(SpecError::Invalid {
            diagnostics: errors,
        });
    }
    Ok(loaded)
}

/// Parses and resolves a spec text for every platform, without touching the context.
pub fn resolve_all(source: &SpecSource, opts: &ResolveOptions) -> Result<Loaded, SpecError> {
    let raw = parse::parse(source)?;
    if let Some(t) = &opts.target
        && !raw.target.contains_key(t)
    {
        return Err(SpecError::UnknownTarget {
            name: t.clone(),
            known: raw.target.keys().cloned().collect(),
        });
    }
    let (first, warnings) = resolve::resolve(source, &raw, opts, None)
        .map_err(|diagnostics| SpecError::Invalid { diagnostics })?;
    let mut specs = vec![first];
    for p in specs[0].platforms.clone().iter().skip(1) {
        let (spec, _) = resolve::resolve(source, &raw, opts, Some(p))
            .map_err(|diagnostics| SpecError::Invalid { diagnostics })?;
        specs.push(spec);
    }
    Ok(Loaded { specs, warnings })
}

/// The JSON Schema of the spec, for editors.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(model::RawSpec);
    serde_json::to_value(&schema).expect("schema serializes")
}
