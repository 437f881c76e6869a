//! Pieces several subcommands share: the cache root, run-layer refusal,
//! lock checks, sizes.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::plan::lock::Lock;
use crate::spec::{Diag, LayerKind, ResolvedSpec, SpecError};

/// The cache root (docs/design.md §5): `--cache-dir`, else `STRATA_CACHE_DIR`,
/// else `$XDG_CACHE_HOME/strata`, else `~/.cache/strata`.
pub fn cache_root(explicit: Option<&PathBuf>) -> PathBuf {
    crate::plan::cache_root::cache_root(explicit.map(PathBuf::as_path))
}

/// The embedded builder writes copy layers only: a run layer, or a layer
/// that needs a build stage, is a spanned error naming the layer (and the
/// stage) and the BuildKit command for this spec.
pub fn refuse_run_layers(
    spec: &ResolvedSpec,
    file: &std::path::Path,
    context: &std::path::Path,
) -> Result<()> {
    let diags: Vec<Diag> = spec
        .layers
        .iter()
        .filter(|l| matches!(l.kind, LayerKind::Run(_)) || !l.stages_used().is_empty())
        .map(|l| {
            let stages = l.stages_used();
            let (message, label) = match (stages.as_slice(), &l.kind) {
                ([], _) => (
                    format!("layer `{}` is a run layer: run layers need BuildKit", l.name),
                    "a run layer",
                ),
                ([one], LayerKind::Copy(_)) => (
                    format!("layer `{}` copies from stage `{one}`: build stages need BuildKit", l.name),
                    "needs a stage",
                ),
                (_, _) => (
                    format!(
                        "layer `{}` needs stage{} {}: build stages need BuildKit",
                        l.name,
                        if stages.len() > 1 { "s" } else { "" },
                        stages.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
                    ),
                    "needs a stage",
                ),
            };
            let without = if stages.is_empty() {
                "run layers"
            } else {
                "run layers or stages"
            };
            Diag::error(&spec.source, l.name_span.clone(), message)
                .label(label)
                .help(format!(
                    "build this spec with `docker buildx build -f {} {}`{}, or use a target without {without}",
                    file.display(),
                    context.display(),
                    spec.target.as_ref().map(|t| format!(" --target {t}")).unwrap_or_default()
                ))
        })
        .collect();
    if diags.is_empty() {
        Ok(())
    } else {
        Err(Error::Spec(SpecError::Invalid { diagnostics: diags }))
    }
}

/// Checks the base pin under `--locked` (docs/design.md §5): a missing pin or a
/// drift is an error (exit 1); `local = true` pins pass with a warning.
pub fn check_locked(spec: &ResolvedSpec, current: Option<String>) -> Result<()> {
    let reference = spec.image.from.to_string();
    if reference == "scratch" {
        return Ok(());
    }
    let lock_path = Lock::path_for(spec.source.path());
    let lock = Lock::read(&lock_path)?.unwrap_or_default();
    match lock.get(&reference) {
        None => Err(Error::Input(format!(
            "`{reference}` has no pin in `{}` and --locked was given: run `strata lock`",
            lock_path.display()
        ))),
        Some(pin) if pin.local => {
            super::output::warn(format!("`{reference}` is pinned as local (no digest)"));
            Ok(())
        }
        Some(pin) => {
            let want = pin
                .platforms
                .get(&spec.platform.to_string())
                .or(pin.digest.as_ref());
            match (want, current) {
                (Some(w), Some(c)) if *w != c => Err(Error::Input(format!(
                    "`{reference}` is pinned to {w} in `{}` but is now {c}: run `strata lock --update`",
                    lock_path.display()
                ))),
                _ => Ok(()),
            }
        }
    }
}

/// A byte count for people, as the progress bars write it (`1.36 KiB`):
/// every size strata prints goes through here.
pub fn human(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}

/// `1 file`, `2 files`.
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The short form of a digest: the first 12 hex digits.
pub fn short(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.chars().take(12).collect()
}
