//! `strata build`: the embedded builder (no daemon).

use std::path::PathBuf;

use clap::Args;

use super::common::{cache_root, check_locked, human, refuse_run_layers, short};
use super::{SpecArgs, output};
use crate::error::{Error, Result};
use crate::oci::base::ImageRef;
use crate::oci::build::{BuildRequest, build, load_base};
use crate::oci::compress::Compression;

/// `strata build` flags.
#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// The spec and context.
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Where the image goes: `oci-layout:DIR[:TAG]`, `oci-archive:FILE[:TAG]`
    /// or `docker-archive:FILE[:NAME:TAG]`.
    #[arg(short, long, value_name = "DEST")]
    pub output: String,
    /// The cache root [default: $STRATA_CACHE_DIR, $XDG_CACHE_HOME/strata, ~/.cache/strata].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Fail when the base has no pin in strata.lock or its pin drifted.
    #[arg(long)]
    pub locked: bool,
}

/// Builds, prints the manifest digest on stdout and one line per layer on stderr.
pub fn run(args: &BuildArgs) -> Result<()> {
    let output: ImageRef = args
        .output
        .parse()
        .map_err(|e| Error::Usage(format!("--output: {e}")))?;
    let loaded = args.spec.load()?;
    if loaded.specs.len() > 1 {
        return Err(Error::Usage(
            "the embedded builder builds one platform at a time: pass --platform".into(),
        ));
    }
    let spec = &loaded.specs[0];
    refuse_run_layers(spec, &args.spec.spec_path(), &args.spec.context)?;
    if args.locked {
        let current = load_base(spec)?.and_then(|b| b.manifest_digest.map(|d| d.to_string()));
        check_locked(spec, current)?;
    }
    let root = cache_root(args.cache_dir.as_ref());
    let plan = crate::plan::make_plan(spec, &root)?;
    output::diagnostics(&plan.warnings);
    for w in &plan.cache_warnings {
        output::warn(w);
    }
    let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => Some(v.parse::<u64>().map_err(|_| {
            Error::Usage(format!(
                "SOURCE_DATE_EPOCH `{v}` is not a number of seconds"
            ))
        })?),
        _ => None,
    };
    let outcome = build(&BuildRequest {
        spec,
        plan: &plan,
        output: output.clone(),
        cache_root: root,
        source_date_epoch,
        compression: Compression::Auto,
    })?;
    for w in &outcome.warnings {
        output::warn(w);
    }
    let width = outcome.layers.iter().map(|l| l.id.len()).max().unwrap_or(0);
    for l in &outcome.layers {
        output::note(format!(
            "{:<width$}  {:<7}  {:>10}  {}",
            l.id,
            if l.reused { "reused" } else { "built" },
            human(l.layer.size),
            short(&l.layer.digest),
        ));
    }
    output::note(format!("wrote {output}"));
    println!("{}", outcome.manifest.digest);
    Ok(())
}
