//! `strata llb`: the frontend's LLB for a spec, offline (no daemon), as the
//! marshaled Definition on stdout (for `buildctl build`) or as JSON.

use std::collections::BTreeMap;

use clap::{Args, ValueEnum};

use super::SpecArgs;
use crate::error::{Error, Result};
use crate::frontend::offline::{EngineCaps, OfflineGateway};
use crate::frontend::opts::FrontendEnv;
use crate::llb::Definition;

/// The lowering to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Caps {
    /// A current BuildKit: MergeOp and DiffOp.
    Modern,
    /// BuildKit 0.13 (Docker 26.1).
    #[value(name = "0.13")]
    V013,
    /// BuildKit 0.8 (Docker 20.10): the linear fallback.
    #[value(name = "0.8")]
    V08,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The marshaled `pb.Definition`.
    Raw,
    /// `strata.llb/v1` JSON for people.
    Json,
}

/// `strata llb` flags.
#[derive(Debug, Clone, Args)]
pub struct LlbArgs {
    /// The spec and context.
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Which engine to lower for.
    #[arg(long, value_enum, default_value_t = Caps::Modern)]
    pub engine_caps: Caps,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Raw)]
    pub format: Format,
    /// The frontend image whose helper writes copy layers.
    #[arg(long, default_value = "strata:dev")]
    pub frontend_image: String,
    /// Write to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Write the binary Definition even when stdout is a terminal.
    #[arg(long)]
    pub force: bool,
}

/// Prints the Definition.
pub fn run(args: &LlbArgs) -> Result<()> {
    use std::io::IsTerminal;
    if args.format == Format::Raw
        && args.output.is_none()
        && !args.force
        && std::io::stdout().is_terminal()
    {
        return Err(Error::Usage(
            "refusing to write binary LLB to a terminal: pipe it (`| buildctl build ...`), pass -o FILE, --format json, or --force".into(),
        ));
    }
    if args.spec.platform.len() > 1 {
        return Err(Error::Usage(
            "strata llb shows one platform: pass one --platform".into(),
        ));
    }
    let spec_path = args.spec.spec_path();
    let spec_dir = spec_path
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_default();
    let filename = spec_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "strata.toml".into());
    let mut opts = BTreeMap::from([
        ("filename".to_string(), filename),
        ("source".to_string(), args.frontend_image.clone()),
    ]);
    if let Some(t) = &args.spec.target {
        opts.insert("target".into(), t.clone());
    }
    if let Some(p) = args.spec.platform.first() {
        opts.insert("platform".into(), p.clone());
    }
    for a in &args.spec.build_arg {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("--build-arg `{a}` is not NAME=VALUE")))?;
        opts.insert(format!("build-arg:{k}"), v.to_string());
    }
    let env = FrontendEnv {
        opts,
        session_id: "offline".into(),
        workers: Vec::new(),
    };
    let caps = match args.engine_caps {
        Caps::Modern => EngineCaps::Modern,
        Caps::V013 => EngineCaps::V013,
        Caps::V08 => EngineCaps::V08,
    };
    let gateway = OfflineGateway::new(
        caps,
        BTreeMap::from([
            ("dockerfile".to_string(), spec_dir),
            ("context".to_string(), args.spec.context.clone()),
        ]),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| Error::Io {
            path: "tokio runtime".into(),
            source: e,
        })?;
    let ran = runtime.block_on(crate::frontend::build::run_with(&gateway, &env));
    for w in gateway.warnings() {
        super::output::warn(w);
    }
    ran.map_err(|e| Error::Input(e.to_string()))?;
    let bytes = gateway.outcome().map_err(Error::Input)?;
    let out = match args.format {
        Format::Raw => bytes,
        Format::Json => {
            let def = Definition::from_bytes(&bytes).map_err(|e| Error::Input(e.to_string()))?;
            let mut json = def.to_json().map_err(|e| Error::Input(e.to_string()))?;
            if let Some(obj) = json.as_object_mut() {
                obj.insert("schema".into(), "strata.llb/v1".into());
            }
            let mut text = serde_json::to_string_pretty(&json).expect("json");
            text.push('\n');
            text.into_bytes()
        }
    };
    match &args.output {
        Some(path) => fs_err::write(path, &out).map_err(|e| Error::Io {
            path: path.clone(),
            source: e,
        }),
        None => {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(&out)
                .and_then(|()| stdout.flush())
                .map_err(|e| Error::Io {
                    path: "stdout".into(),
                    source: e,
                })
        }
    }
}
