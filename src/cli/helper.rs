//! `strata helper copy`: the layer writer run inside BuildKit (contracts §2);
//! `strata helper overlaps`: the frontend's check that no two copy layers
//! write the same path.
//! Hidden: the frontend's LLB runs it, people do not.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::error::{Error, Result};

/// `strata helper` flags.
#[derive(Debug, Clone, Args)]
pub struct HelperArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: HelperCommand,
}

/// Helper subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum HelperCommand {
    /// Write one copy layer's tree.
    Copy {
        /// The mounted build context (the layer's inputs).
        #[arg(long)]
        src: PathBuf,
        /// The scratch output the tree is written to.
        #[arg(long)]
        out: PathBuf,
        /// Where the layer's record (input digest, key) is written.
        #[arg(long)]
        record: PathBuf,
        /// Write only the tree's paths (directories, and empty files for
        /// the rest), no content and no metadata: the fallback's record
        /// step (contracts §4), which feeds the overlap check.
        #[arg(long)]
        paths_only: bool,
        /// The job, as JSON.
        job: String,
    },
    /// Fail when two copy layers' trees write the same path.
    Overlaps {
        /// `LAYER_ID=DIR` for each copy layer's written tree, in layer order.
        #[arg(required = true)]
        layers: Vec<String>,
    },
}

/// Runs the helper.
pub fn run(args: &HelperArgs) -> Result<()> {
    match &args.command {
        HelperCommand::Copy {
            src,
            out,
            record,
            paths_only,
            job,
        } => {
            let rec = crate::helper::run_copy(job, src, out, record, *paths_only)
                .map_err(|e| Error::Input(format!("helper: {e}")))?;
            super::output::note(format!("{}: inputs {}", rec.layer, rec.inputs));
            Ok(())
        }
        HelperCommand::Overlaps { layers } => {
            let layers: Vec<(String, PathBuf)> = layers
                .iter()
                .map(|l| match l.rsplit_once('=') {
                    Some((id, dir)) => Ok((id.to_string(), PathBuf::from(dir))),
                    None => Err(Error::Usage(format!("`{l}` is not LAYER_ID=DIR"))),
                })
                .collect::<Result<_>>()?;
            let found = crate::helper::find_overlaps(&layers)
                .map_err(|e| Error::Input(format!("helper: {e}")))?;
            if !found.is_empty() {
                return Err(Error::Input(
                    crate::helper::HelperError::Overlaps(found).to_string(),
                ));
            }
            super::output::note(format!(
                "{} copy layers, no overlapping paths",
                layers.len()
            ));
            Ok(())
        }
    }
}
