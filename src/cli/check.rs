//! `strata check`: validate a spec against its context; never writes anything.

use clap::Args;

use super::{SpecArgs, output};
use crate::error::Result;
use crate::spec::LayerKind;

/// `strata check` flags.
#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// The spec and context.
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Never contact a registry. `check` never does (it reads the spec and
    /// walks the context only); the flag is accepted so that scripts can
    /// pass it to `check`, `plan` and `build` alike.
    #[arg(long)]
    pub offline: bool,
}

/// Validates and prints a one-line summary on stderr.
pub fn run(args: &CheckArgs) -> Result<()> {
    let args = &args.spec;
    let loaded = args.load()?;
    // Walk the context (no content read, nothing written): overlapping
    // destinations, split files against the layer budget, the spec file
    // copied into the image.
    let mut planned = 0;
    for spec in &loaded.specs {
        let survey = crate::plan::make::survey(spec)?;
        output::diagnostics(&survey.warnings);
        planned = planned.max(survey.layers.len());
    }
    let spec = &loaded.specs[0];
    let (copies, runs) = spec.layers.iter().fold((0, 0), |(c, r), l| match l.kind {
        LayerKind::Copy(_) => (c + 1, r),
        LayerKind::Run(_) => (c, r + 1),
    });
    let platforms: Vec<String> = spec.platforms.iter().map(ToString::to_string).collect();
    output::note(format!(
        "{}: ok: {} ({copies} copy, {runs} run; {planned} with split files) for {} on {}",
        args.spec_path().display(),
        super::common::plural(spec.layers.len(), "layer"),
        spec.target
            .as_deref()
            .map_or("the default target".to_string(), |t| format!(
                "target `{t}`"
            )),
        platforms.join(", ")
    ));
    Ok(())
}
