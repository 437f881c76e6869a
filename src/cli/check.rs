//! `strata check`: validate a spec against its context; never writes anything.

use super::{SpecArgs, output};
use crate::error::Result;
use crate::spec::LayerKind;

/// Validates and prints a one-line summary on stderr.
pub fn run(args: &SpecArgs) -> Result<()> {
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
        "{}: ok: {} layers ({copies} copy, {runs} run; {planned} with split files) for {} on {}",
        args.spec_path().display(),
        spec.layers.len(),
        spec.target
            .as_deref()
            .map_or("the default target".to_string(), |t| format!(
                "target `{t}`"
            )),
        platforms.join(", ")
    ));
    Ok(())
}
