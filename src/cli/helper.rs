//! `strata helper copy`: the layer writer run inside BuildKit (docs/design.md §2);
//! `strata helper overlaps`: the frontend's check that no two copy layers
//! write the same path.
//! Hidden: the frontend's LLB runs it, people do not.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::error::{Error, Result};
use crate::helper::HelperError;

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
        /// step (docs/design.md §4), which feeds the overlap check.
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
            let rec = crate::helper::run_copy(job, src, out, record, *paths_only)?;
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
            let found = crate::helper::find_overlaps(&layers)?;
            if !found.is_empty() {
                return Err(HelperError::Overlaps(found).into());
            }
            super::output::note(format!(
                "{} copy layers, no overlapping paths",
                layers.len()
            ));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helper::CopyJob;

    fn copy(job: &str, dir: &std::path::Path, record: PathBuf) -> Result<()> {
        run(&HelperArgs {
            command: HelperCommand::Copy {
                src: dir.join("src"),
                out: dir.join("out"),
                record,
                paths_only: false,
                job: job.to_string(),
            },
        })
    }

    fn overlaps(layers: &[&str]) -> Result<()> {
        run(&HelperArgs {
            command: HelperCommand::Overlaps {
                layers: layers.iter().map(|l| l.to_string()).collect(),
            },
        })
    }

    /// A wrong input (the job, layers that overlap) exits 1; failed I/O
    /// (an unwritable record, an unreadable tree) exits 2, naming its path.
    #[test]
    fn helper_errors_exit_1_for_input_and_2_for_io() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["src", "out", "a/x", "b/x"] {
            fs_err::create_dir_all(dir.path().join(d)).unwrap();
        }
        fs_err::write(dir.path().join("src/f"), "f").unwrap();
        fs_err::write(dir.path().join("a/x/f"), "1").unwrap();
        fs_err::write(dir.path().join("b/x/f"), "2").unwrap();
        let job = serde_json::to_string(&CopyJob::one_file("app", "f", "/f")).unwrap();
        let record = dir.path().join("record.json");
        copy(&job, dir.path(), record.clone()).unwrap();
        assert!(record.exists());

        let err = copy("{not json", dir.path(), record).unwrap_err();
        assert_eq!(err.exit_code(), 1, "{err}");
        let unwritable = dir.path().join("missing/record.json");
        let err = copy(&job, dir.path(), unwritable.clone()).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
        assert_eq!(
            err.to_string()
                .matches(&unwritable.display().to_string())
                .count(),
            1,
            "the path, named once: {err}"
        );

        let layer = |name: &str| format!("{name}={}", dir.path().join(name).display());
        let err = overlaps(&[&layer("a"), &layer("b")]).unwrap_err();
        assert_eq!(err.exit_code(), 1, "{err}");
        assert!(
            err.to_string().contains("`/x/f` is written by layer `a`"),
            "{err}"
        );
        let err = overlaps(&[&layer("a"), &layer("nope")]).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
