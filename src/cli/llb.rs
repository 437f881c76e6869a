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
}

/// Prints the Definition.
pub fn run(args: &LlbArgs) -> Result<()> {
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
    match args.format {
        Format::Raw => {
            use std::io::Write;
            std::io::stdout().write_all(&bytes).map_err(|e| Error::Io {
                path: "stdout".into(),
                source: e,
            })?;
        }
        Format::Json => {
            let def = Definition::from_bytes(&bytes).map_err(|e| Error::Input(e.to_string()))?;
            let mut json = def.to_json().map_err(|e| Error::Input(e.to_string()))?;
            if let Some(obj) = json.as_object_mut() {
                obj.insert("schema".into(), "strata.llb/v1".into());
            }
            println!("{}", serde_json::to_string_pretty(&json).expect("json"));
        }
    }
    Ok(())
}
