//! Command-line interface: clap types and one module per subcommand.

mod annotation;
mod build;
mod cache;
mod check;
pub(crate) mod common;
mod completions;
mod diff;
mod helper;
mod llb;
mod lock;
pub mod output;
mod plan;
mod progress;
mod registry;
mod schema;

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::error::{Error, Result};
use crate::spec::{self, Platform, ResolveOptions};

/// strata: big container images from a declarative layer spec.
#[derive(Debug, Parser)]
#[command(name = "strata", version = crate::VERSION, about, propagate_version = true)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate a spec against its build context; writes nothing.
    Check(check::CheckArgs),
    /// Show the planned layers and which the next build reuses or rebuilds.
    Plan(plan::PlanArgs),
    /// Build an OCI image with the embedded builder (no daemon).
    Build(build::BuildArgs),
    /// Pin the images the spec builds from in strata.lock.
    Lock(lock::LockArgs),
    /// Compare two images layer by layer and say why their digests differ.
    Diff(diff::DiffArgs),
    /// Inspect or trim the cache root.
    Cache(cache::CacheArgs),
    /// Print the frontend's LLB for a spec, offline (for buildctl or people).
    Llb(llb::LlbArgs),
    /// Print the JSON Schema of strata.toml.
    Schema,
    /// Print a shell completion script (`source <(strata completions bash)`).
    Completions(completions::CompletionsArgs),
    /// Write man pages, one per subcommand, into a directory.
    Man(completions::ManArgs),
    /// Run as a BuildKit frontend (the image's entrypoint; started by
    /// BuildKit through `# syntax=`, talks gRPC on stdin/stdout).
    #[command(hide = true)]
    Frontend,
    /// Internal: run inside BuildKit by the frontend's LLB.
    #[command(hide = true)]
    Helper(helper::HelperArgs),
    /// Run the transport smoke test as a BuildKit frontend (started by
    /// BuildKit through `# syntax=`; talks gRPC on stdin/stdout).
    #[command(hide = true)]
    FrontendSmoke,
}

/// Arguments every spec command takes (docs/design.md §8).
#[derive(Debug, Clone, Args)]
pub struct SpecArgs {
    /// The spec file [default: CONTEXT/strata.toml].
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Build only the layers of this target.
    #[arg(long)]
    pub target: Option<String>,
    /// Platforms, `os/arch[/variant]`, comma-separated or repeated.
    #[arg(long, value_delimiter = ',')]
    pub platform: Vec<String>,
    /// Override a build argument declared in [args].
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    pub build_arg: Vec<String>,
    /// The build context directory.
    #[arg(default_value = ".")]
    pub context: PathBuf,
}

impl SpecArgs {
    /// The spec file path.
    pub fn spec_path(&self) -> PathBuf {
        spec::spec_path(&self.context, self.file.as_deref())
    }

    /// Resolve options from the flags.
    pub fn resolve_options(&self) -> Result<ResolveOptions> {
        let mut build_args = BTreeMap::new();
        for a in &self.build_arg {
            let (k, v) = a
                .split_once('=')
                .ok_or_else(|| Error::Usage(format!("--build-arg `{a}` is not NAME=VALUE")))?;
            build_args.insert(k.to_string(), v.to_string());
        }
        let platforms = self
            .platform
            .iter()
            .map(|p| spec::Platform::parse(p).map_err(|e| Error::Usage(format!("--platform: {e}"))))
            .collect::<Result<Vec<Platform>>>()?;
        Ok(ResolveOptions {
            target: self.target.clone(),
            platforms,
            host: None,
            build_args,
            context: self.context.clone(),
        })
    }

    /// Loads and validates the spec, printing its warnings.
    pub fn load(&self) -> Result<spec::Loaded> {
        let loaded = spec::load(&self.spec_path(), self.resolve_options()?)?;
        output::diagnostics(&loaded.warnings);
        Ok(loaded)
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    // Worker threads as deep as the main thread: the context walk recurses
    // once per directory level (up to `plan::walk::MAX_DEPTH`).
    let _ = rayon::ThreadPoolBuilder::new()
        .stack_size(8 << 20)
        .build_global();
    match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Build(args) => build::run(&args),
        Command::Lock(args) => lock::run(&args),
        Command::Cache(args) => cache::run(&args),
        Command::Diff(args) => diff::run(&args),
        Command::Llb(args) => llb::run(&args),
        Command::Schema => schema::run(),
        Command::Completions(args) => completions::completions(&args),
        Command::Man(args) => completions::man(&args),
        Command::Helper(args) => helper::run(&args),
        Command::Frontend => Ok(crate::frontend::build::run()?),
        Command::FrontendSmoke => Ok(crate::frontend::smoke::run()?),
    }
}
