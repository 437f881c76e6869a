//! `strata helper copy`: the layer writer run inside BuildKit (contracts §2).
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
        /// The job, as JSON.
        job: String,
    },
}

/// Runs the helper.
pub fn run(args: &HelperArgs) -> Result<()> {
    match &args.command {
        HelperCommand::Copy {
            src,
            out,
            record,
            job,
        } => {
            let rec = crate::helper::run_copy(job, src, out, record)
                .map_err(|e| Error::Input(format!("helper: {e}")))?;
            super::output::note(format!("{}: inputs {}", rec.layer, rec.inputs));
            Ok(())
        }
    }
}
