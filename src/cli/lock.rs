//! `strata lock`: pin every image the spec builds from in `strata.lock`
//! (docs/design.md §5). Local sources are pinned by their manifest digest.
//! A registry reference that cannot be resolved is an error, whatever the
//! reason (unreachable, not found, denied), and nothing is written; an
//! image that exists only in a local store (a Docker daemon's images) is
//! pinned `local = true` only when `--local REF` names it.

use std::collections::BTreeMap;

use clap::Args;

use super::{SpecArgs, output, registry};
use crate::error::{Error, Result};
use crate::oci::build::load_base;
use crate::plan::lock::{Lock, Pin};
use crate::registry::RegistryError;
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
    /// Pin this image reference as `local = true` (it exists only in a
    /// local store, such as a Docker daemon's images) without asking a
    /// registry; repeatable.
    #[arg(long = "local", value_name = "REF")]
    pub local: Vec<String>,
}

/// Writes or updates the lock; prints its path on stderr.
pub fn run(args: &LockArgs) -> Result<()> {
    let loaded = args.spec.load()?;
    let path = Lock::path_for(loaded.specs[0].source.path());
    let old = Lock::read(&path)?;
    let mut lock = old.clone().unwrap_or_else(Lock::new);
    let mut pins: BTreeMap<String, Pin> = BTreeMap::new();
    let mut resolved = BTreeMap::new();
    // Every registry reference, to check `--local` before any request.
    let used: std::collections::BTreeSet<String> = loaded
        .specs
        .iter()
        .flat_map(|s| std::iter::once(&s.image.from).chain(&s.stage_bases))
        .filter(|b| matches!(b, BaseRef::Registry(_)))
        .map(ToString::to_string)
        .collect();
    let opts = registry::Options {
        insecure: args.insecure_registry.clone(),
        offline: false,
    };
    if let Some(unknown) = args.local.iter().find(|r| !used.contains(*r)) {
        return Err(Error::Usage(format!(
            "--local `{unknown}`: the spec builds from no such image (it uses {})",
            if used.is_empty() {
                "no registry image".to_owned()
            } else {
                used.iter()
                    .map(|r| format!("`{r}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )));
    }
    for spec in &loaded.specs {
        // The image's base, then the stages' image bases (docs/design.md §5).
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
            if !args.update
                && !args.local.contains(&reference)
                && lock.get(&reference).is_some()
                && !pins.contains_key(&reference)
            {
                continue;
            }
            let pin = pins.entry(reference.clone()).or_insert_with(|| Pin {
                reference: reference.clone(),
                digest: None,
                platforms: BTreeMap::new(),
                local: false,
            });
            match &from {
                BaseRef::Registry(_) if args.local.contains(&reference) => {
                    pin.local = true;
                    pin.digest = None;
                    pin.platforms.clear();
                }
                BaseRef::Registry(_) => {
                    let was_local = lock.get(&reference).is_some_and(|p| p.local);
                    let resolved = resolved
                        .entry(reference.clone())
                        .or_insert_with(|| resolve(&reference, &opts));
                    match resolved {
                        Ok(res) => {
                            pin.local = false;
                            pin.digest = Some(res.digest.to_string());
                            let d = registry::pick_platform(res, &reference, &spec.platform)?;
                            pin.platforms
                                .insert(spec.platform.to_string(), d.to_string());
                        }
                        // `--update` keeps a pin the user made local when
                        // the registry still has no such image.
                        Err(Error::Registry(
                            RegistryError::NotFound { .. } | RegistryError::Unauthorized { .. },
                        )) if was_local => {
                            pin.local = true;
                            output::note(format!(
                                "`{reference}` is still pinned as local: no registry has it"
                            ));
                        }
                        Err(_) => {
                            let Err(e) = resolved_take(resolved) else {
                                unreachable!("matched an error")
                            };
                            return Err(hint_local(e, &reference));
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

/// Takes the error out of a cached resolution (each reference is resolved
/// once per run; an error ends the run).
fn resolved_take(
    r: &mut Result<crate::registry::pull::Resolved>,
) -> Result<crate::registry::pull::Resolved> {
    std::mem::replace(r, Err(Error::Input(String::new())))
}

/// A registry that has no such image, or refuses it: say how to pin an
/// image that exists only in a local store.
fn hint_local(e: Error, reference: &str) -> Error {
    match &e {
        Error::Registry(RegistryError::NotFound { .. } | RegistryError::Unauthorized { .. }) => {
            Error::Hinted {
                source: Box::new(e),
                help: format!(
                    "if `{reference}` exists only in a local store (a Docker daemon's images), pin it as local: `strata lock --local {reference}`"
                ),
            }
        }
        _ => e,
    }
}
