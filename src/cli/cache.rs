//! `strata cache du` and `strata cache prune` (docs/design.md §5).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use super::common::{cache_root, human, plural};
use super::output;
use crate::error::{Error, Result};
use crate::oci::cache::LayerCache;
use crate::spec::values::parse_size;

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
    Du {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Remove least recently used layers.
    Prune {
        /// Keep at most this many bytes of layer blobs (`10GiB`, `500mb`;
        /// `KB`, `MB`, `GB` are powers of 1000, `KiB`, `MiB`, `GiB` of 1024).
        #[arg(long, value_name = "SIZE")]
        max_size: Option<String>,
        /// Remove layers unused for longer than this: a number and a unit,
        /// `s`, `m`, `h`, `d` or `w`, repeated (`7d`, `36h`, `1w2d`).
        #[arg(long, value_name = "AGE")]
        older_than: Option<String>,
    },
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table for people.
    Table,
    /// `strata.cache-du/v1` JSON (`docs/json.md`).
    Json,
}

/// `strata cache du --format json`.
#[derive(Debug, Serialize)]
struct DuDoc {
    schema: &'static str,
    root: String,
    blobs: usize,
    blob_bytes: u64,
    layer_records: usize,
    build_records: usize,
    stat_cache_bytes: u64,
}

/// Runs the command.
pub fn run(args: &CacheArgs) -> Result<()> {
    let root = cache_root(args.cache_dir.as_ref());
    let cache = LayerCache::open(&root)?;
    match &args.command {
        CacheCommand::Du { format } => {
            let u = cache.usage()?;
            match format {
                Format::Json => {
                    let doc = DuDoc {
                        schema: "strata.cache-du/v1",
                        root: root.display().to_string(),
                        blobs: u.blobs,
                        blob_bytes: u.bytes,
                        layer_records: u.layers,
                        build_records: u.records,
                        stat_cache_bytes: u.stat_bytes,
                    };
                    let text = serde_json::to_string_pretty(&doc).expect("usage serializes");
                    println!("{text}");
                }
                Format::Table => {
                    println!("cache root\t{}", root.display());
                    println!("layer blobs\t{}\t{}", u.blobs, human(u.bytes));
                    println!("layer records\t{}", u.layers);
                    println!("build records\t{}", u.records);
                    println!("stat caches\t{}", human(u.stat_bytes));
                }
            }
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
                .map(|s| parse_age(s).map_err(|e| Error::Usage(format!("--older-than: {e}"))))
                .transpose()?;
            if max.is_none() && age.is_none() {
                return Err(Error::Usage(
                    "say what to prune: --max-size SIZE and/or --older-than AGE (`--max-size 0` empties the cache)".into(),
                ));
            }
            let p = cache.prune(max, age)?;
            output::note(format!(
                "removed {} ({}) and {}",
                plural(p.blobs, "blob"),
                human(p.bytes),
                plural(p.layers, "layer record")
            ));
        }
    }
    Ok(())
}

/// An age for `--older-than`: `7d`, `36h`, `1w2d`, `90m`, `30s`.
fn parse_age(s: &str) -> std::result::Result<Duration, String> {
    let err =
        || format!("`{s}` is not an age such as `7d`, `36h` or `1w2d` (units: s, m, h, d, w)");
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(err());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(err)?;
        let (num, tail) = rest.split_at(digits);
        let n: f64 = num.parse().map_err(|_| err())?;
        let mut chars = tail.chars();
        let secs = match chars.next() {
            Some('s') => 1.0,
            Some('m') => 60.0,
            Some('h') => 3600.0,
            Some('d') => 86_400.0,
            Some('w') => 604_800.0,
            _ => return Err(err()),
        };
        total += n * secs;
        rest = chars.as_str().trim_start();
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_take_days_and_weeks() {
        assert_eq!(parse_age("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(parse_age("1w2d").unwrap(), Duration::from_secs(9 * 86_400));
        assert_eq!(parse_age("168h").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(parse_age("90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_age("30s").unwrap(), Duration::from_secs(30));
        for bad in ["", "7", "7y", "d", "7 days"] {
            let e = parse_age(bad).unwrap_err();
            assert!(e.contains("units: s, m, h, d, w"), "{bad}: {e}");
        }
    }
}
