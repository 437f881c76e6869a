//! `strata diff A B`: compare two images and say why their digests differ
//! (`docs/diff.md`). Exit 0 when equal, 1 when different, 2 on trouble
//! (docs/design.md §8).

use std::io::{IsTerminal, Write};

use clap::{Args, ValueEnum};

use crate::diff::{self, Options, side::Side};
use crate::error::{Error, Result};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A report for people.
    Text,
    /// `strata.diff/v1` JSON, canonical.
    Json,
}

/// `strata diff` flags.
#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// Image A: `oci-layout:DIR[:TAG]`, `oci-archive:FILE[:TAG]`,
    /// `docker-archive:FILE[:NAME:TAG]` or `docker-daemon:NAME[:TAG]`.
    #[arg(value_name = "A")]
    pub a: String,
    /// Image B, in the same forms.
    #[arg(value_name = "B")]
    pub b: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Ignore timestamps, entry order, history and compression: compare
    /// the files and settings only.
    #[arg(long)]
    pub semantic: bool,
}

/// Runs the command.
pub fn run(args: &DiffArgs) -> Result<()> {
    let a: Side = args.a.parse()?;
    let b: Side = args.b.parse()?;
    let report = diff::diff(
        &a,
        &b,
        Options {
            semantic: args.semantic,
        },
    )?;
    let text = match args.format {
        Format::Json => {
            let mut bytes = crate::oci::layout::canonical_json(&report)?;
            bytes.push(b'\n');
            bytes
        }
        Format::Text => {
            let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stdout().is_terminal();
            diff::render::text(&report, color).into_bytes()
        }
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&text)
        .and_then(|()| stdout.flush())
        .map_err(|e| Error::Io {
            path: "stdout".into(),
            source: e,
        })?;
    if report.equal {
        Ok(())
    } else {
        Err(Error::Different)
    }
}
