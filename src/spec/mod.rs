//! The `strata.toml` layer spec: parse, substitute arguments, validate, resolve.
//!
//! [`load`] is the whole pipeline for a spec on disk; the frontend, which reads
//! the spec over the gateway, calls [`parse::source_from_bytes`],
//! [`parse::parse_all`] and [`resolve::resolve`] itself.

pub(crate) mod error;
pub(crate) mod interpolate;
pub(crate) mod model;
pub(crate) mod parse;
pub(crate) mod reference;
pub(crate) mod resolve;
pub(crate) mod resolved;
pub(crate) mod validate;
pub(crate) mod values;

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

/// The spec path: `file` as given, or `strata.toml` in the context (docs/design.md §8).
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
    let parsed = parse::parse_all(source)?;
    if !parsed.errors.is_empty() {
        return Err(SpecError::Invalid {
            diagnostics: with_later_errors(source, parsed, opts),
        });
    }
    let raw = parsed.raw.expect("a model when there are no errors");
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

/// The type errors of a spec, then what resolving the rest of it finds,
/// less anything about a table an entry was dropped from (it may be a
/// consequence of the drop), in the order of the text.
fn with_later_errors(
    source: &SpecSource,
    parsed: parse::Parsed,
    opts: &ResolveOptions,
) -> Vec<Diag> {
    let mut diags = parsed.errors;
    if let Some(raw) = &parsed.raw
        && let Err(later) = resolve::resolve(source, raw, opts, None)
    {
        let about_dropped = |d: &Diag| {
            d.span.as_ref().is_some_and(|s| {
                parsed
                    .touched
                    .iter()
                    .any(|t| t.start < s.end.max(s.start + 1) && s.start < t.end)
            })
        };
        diags.extend(
            later
                .into_iter()
                .filter(|d| d.is_error() && !about_dropped(d)),
        );
    }
    diags.sort_by_key(|d| d.span.as_ref().map_or(usize::MAX, |s| s.start));
    diags
}

/// The JSON Schema of the spec, for editors: generated from the raw model,
/// with definitions named as `docs/spec.md` names things (`Layer`, not the
/// internal `RawLayer`) and the closed sets of values as `enum`s.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(model::RawSpec);
    let mut v = serde_json::to_value(&schema).expect("schema serializes");
    rename_raw(&mut v);
    // `version` is exactly 1.
    let version = &mut v["properties"]["version"];
    version["enum"] = serde_json::json!([1]);
    for (def, key, values) in ENUMS {
        let prop = v["$defs"][def]["properties"]
            .get_mut(*key)
            .unwrap_or_else(|| panic!("schema: {def} has no `{key}`"));
        let description = prop["description"].take();
        // A build argument (`${NAME}`) may stand for the value.
        *prop = serde_json::json!({
            "description": description,
            "anyOf": [
                { "enum": values },
                { "type": "string", "pattern": "\\$\\{" },
            ],
        });
    }
    v
}

/// Closed sets of string values: definition, key, values.
const ENUMS: &[(&str, &str, &[&str])] = &[
    ("Image", "compression", &LayerCompression::NAMES),
    ("Layer", "compression", &LayerCompression::NAMES),
    ("Layer", "split", &["file"]),
    ("Layer", "network", &["default", "none"]),
    ("Step", "network", &["default", "none"]),
    ("CacheTable", "sharing", &["shared", "locked", "private"]),
];

/// Drops the `Raw` prefix of definition names and their references.
fn rename_raw(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(r)) = map.get_mut("$ref")
                && let Some(rest) = r.strip_prefix("#/$defs/Raw")
            {
                *r = format!("#/$defs/{rest}");
            }
            if let Some(serde_json::Value::Object(defs)) = map.get_mut("$defs") {
                let old = std::mem::take(defs);
                for (k, val) in old {
                    let k = k.strip_prefix("Raw").map(str::to_owned).unwrap_or(k);
                    defs.insert(k, val);
                }
            }
            map.values_mut().for_each(rename_raw);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(rename_raw),
        _ => {}
    }
}
