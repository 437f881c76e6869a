//! `strata lock`: pin every image the spec builds from in `strata.lock`
//! (contracts §5). Local sources are pinned by their manifest digest.

use std::collections::BTreeMap;

use clap::Args;

use super::{SpecArgs, output, registry};
use crate::error::Result;
use crate::oci::build::load_base;
use crate::plan::lock::{Lock, Pin};
use crate::spec::BaseRef;

/// `strata lock` flags.
#[derive(Debug, Clone, Args)]
pub struct LockArgs {
    /// The spec and context.
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Re-resolve references that are pinned already.
    #[arg(long)]
    pub update: bool,
    /// Reach this registry (`host[:port]`) over plain HTTP; repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registry: Vec<String>,
}

/// Writes or updates the lock; prints its path on stderr.
pub fn run(args: &LockArgs) -> Result<()> {
    let loaded = args.spec.load()?;
    let path = Lock::path_for(loaded.specs[0].source.path());
    let old = Lock::read(&path)?;
    let mut lock = old.clone().unwrap_or_else(Lock::new);
    let mut pins: BTreeMap<String, Pin> = BTreeMap::new();
    let mut resolved = BTreeMap::new();
    let opts = registry::Options {
        insecure: args.insecure_registry.clone(),
        offline: false,
    };
    for spec in &loaded.specs {
        // The image's base, then the stages' image bases (contracts §5).
        let mut bases = vec![spec.image.from.clone()];
        bases.extend(
            spec.stage_bases
                .iter()
                .filter(|b| **b != spec.image.from)
                .cloned(),
        );
        for from in bases {
            let reference = from.to_string();
            if from == BaseRef::Scratch {
                continue;
            }
            if !args.update && lock.get(&reference).is_some() && !pins.contains_key(&reference) {
                continue;
            }
            let pin = pins.entry(reference.clone()).or_insert_with(|| Pin {
                reference: reference.clone(),
                digest: None,
                platforms: BTreeMap::new(),
                local: false,
            });
            match &from {
                BaseRef::Registry(_) => {
                    let resolved = resolved
                        .entry(reference.clone())
                        .or_insert_with(|| resolve(&reference, &opts));
                    match resolved {
                        Ok(res) => {
                            pin.local = false;
                            pin.digest = Some(res.digest.to_string());
                            let platform = spec.platform.to_string();
                            let d = registry::pick_platform(res, &reference, &platform)?;
                            pin.platforms.insert(platform, d.to_string());
                        }
                        // An image only a daemon's store has (contracts §5).
                        Err(e) => {
                            pin.local = true;
                            output::warn(format!(
                                "`{reference}` cannot be resolved ({e}): pinned as local, without a digest"
                            ));
                        }
                    }
                }
                _ => {
                    let base = load_base(spec)?.expect("non-scratch base");
                    let digest = base
                        .manifest_digest
                        .as_ref()
                        .unwrap_or(&base.config_digest)
                        .to_string();
                    pin.digest.get_or_insert_with(|| digest.clone());
                    pin.platforms.insert(spec.platform.to_string(), digest);
                }
            }
        }
    }
    for (_, pin) in pins {
        lock.set(pin);
    }
    if old.as_ref() == Some(&lock) {
        output::note(format!("{} is up to date", path.display()));
    } else {
        lock.write(&path)?;
        output::note(format!("wrote {}", path.display()));
    }
    Ok(())
}

/// Resolves a registry reference (index and per-platform manifest digests).
fn resolve(reference: &str, opts: &registry::Options) -> Result<crate::registry::pull::Resolved> {
    let r = crate::registry::parse_reference(reference)?;
    let reg = registry::connect(&r, opts, &format!("resolving `{reference}`"))?;
    Ok(crate::registry::pull::resolve(&reg, &r)?)
}
