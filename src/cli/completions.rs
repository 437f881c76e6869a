//! `strata completions SHELL` and `strata man DIR`: shell completions and
//! man pages generated from the clap definition itself, so they never
//! drift from `--help`.

use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, output};
use crate::error::{Error, Result};

/// `strata completions` flags.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, powershell or elvish.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// `strata man` flags.
#[derive(Debug, Clone, Args)]
pub struct ManArgs {
    /// The directory to write `strata.1` and one `strata-COMMAND.1` per
    /// subcommand into (created if missing).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Prints the completion script on stdout.
pub fn completions(args: &CompletionsArgs) -> Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "strata", &mut std::io::stdout());
    Ok(())
}

/// Writes the man pages.
pub fn man(args: &ManArgs) -> Result<()> {
    let io = |path: &Path, e: std::io::Error| Error::Io {
        path: path.to_owned(),
        source: e,
    };
    fs_err::create_dir_all(&args.dir).map_err(|e| io(&args.dir, e))?;
    let mut cmd = Cli::command();
    // Propagates the version (and global flags) to every subcommand.
    cmd.build();
    let pages = pages(&cmd);
    for (name, page) in &pages {
        let path = args.dir.join(format!("{name}.1"));
        let mut bytes = Vec::new();
        clap_mangen::Man::new(page.clone())
            .render(&mut bytes)
            .map_err(|e| io(&path, e))?;
        fs_err::write(&path, bytes).map_err(|e| io(&path, e))?;
    }
    output::note(format!(
        "wrote {} man pages to {}",
        pages.len(),
        args.dir.display()
    ));
    Ok(())
}

/// `strata` and each visible subcommand (nested ones too), named as man
/// pages are (`strata-cache-prune`).
fn pages(cmd: &clap::Command) -> Vec<(String, clap::Command)> {
    let mut out = Vec::new();
    fn walk(prefix: &str, cmd: &clap::Command, out: &mut Vec<(String, clap::Command)>) {
        out.push((prefix.to_string(), cmd.clone().name(prefix.to_string())));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(&format!("{prefix}-{}", sub.get_name()), sub, out);
        }
    }
    walk("strata", cmd, &mut out);
    out
}
