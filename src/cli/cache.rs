//! `strata cache du` and `strata cache prune` (contracts §5).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::common::{cache_root, human};
use super::output;
use crate::error::{Error, Result};
use crate::oci::cache::LayerCache;
use crate::spec::values::{parse_duration, parse_size};

/// `strata cache` flags.
#[derive(Debug, Clone, Args)]
pub struct CacheArgs {
    /// The cache root.
    #[arg(long, value_name = "DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: CacheCommand,
}

/// Cache subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum CacheCommand {
    /// Show what the cache holds.
    Du,
    /// Remove least recently used layers.
    Prune {
        /// Keep at most this many bytes of layer blobs (e.g. `10GiB`).
        #[arg(long, value_name = "SIZE")]
        max_size: Option<String>,
        /// Remove layers unused for longer than this (e.g. `168h`).
        #[arg(long, value_name = "AGE")]
        older_than: Option<String>,
    },
}

/// Runs the command.
pub fn run(args: &CacheArgs) -> Result<()> {
    let root = cache_root(args.cache_dir.as_ref());
    let cache = LayerCache::open(&root)?;
    match &args.command {
        CacheCommand::Du => {
            let u = cache.usage()?;
            println!("cache root\t{}", root.display());
            println!("layer blobs\t{}\t{}", u.blobs, human(u.bytes));
            println!("layer records\t{}", u.layers);
            println!("build records\t{}", u.records);
            println!("stat caches\t{}", human(u.stat_bytes));
        }
        CacheCommand::Prune {
            max_size,
            older_than,
        } => {
            let max = max_size
                .as_deref()
                .map(|s| parse_size(s).map_err(|e| Error::Usage(format!("--max-size: {e}"))))
                .transpose()?;
            let age = older_than
                .as_deref()
                .map(|s| {
                    parse_duration(s)
                        .map(Duration::from_nanos)
                        .map_err(|e| Error::Usage(format!("--older-than: {e}")))
                })
                .transpose()?;
            if max.is_none() && age.is_none() {
                return Err(Error::Usage(
                    "say what to prune: --max-size SIZE and/or --older-than AGE (`--max-size 0` empties the cache)".into(),
                ));
            }
            let p = cache.prune(max, age)?;
            output::note(format!(
                "removed {} blobs ({}) and {} layer records",
                p.blobs,
                human(p.bytes),
                p.layers
            ));
        }
    }
    Ok(())
}
