//! Base images: resolved for the platform and pinned by strata.lock where
//! it has a pin (contracts §5), and the base's directories that copy layers
//! write into (contracts §1).

use std::collections::BTreeMap;

use super::lower::Lower;
use super::{Failure, protocol};
use crate::frontend::gateway::{Gateway, Stat};
use crate::llb::{self, State};
use crate::plan::graph::{BaseDirs, BaseEntry, base_queries};
use crate::spec::{BaseRef, LayerKind, Platform};

pub(super) fn oci_platform(p: &Platform) -> llb::Platform {
    let mut out = llb::Platform::new(&p.os, &p.arch);
    if let Some(v) = &p.variant {
        out = out.with_variant(v);
    }
    out
}

fn gw_platform(p: &Platform) -> crate::frontend::gateway::Platform {
    crate::frontend::gateway::Platform {
        os: p.os.clone(),
        architecture: p.arch.clone(),
        variant: p.variant.clone().unwrap_or_default(),
    }
}

impl<G: Gateway> Lower<'_, G> {
    /// The image's base, its config (none for scratch) and its directories.
    pub async fn base(&self) -> Result<(State, Option<serde_json::Value>, BaseDirs), Failure> {
        let spec = self.spec;
        // The base image, pinned by strata.lock where it has a pin (contracts §5).
        let (base, base_config) = match &spec.image.from {
            BaseRef::Scratch => (llb::scratch(), None),
            BaseRef::Registry(reference) => {
                let (state, config) = self.image_base(reference, "base").await?;
                (state, Some(config))
            }
            other => {
                return Err(protocol(format!(
                    "`{other}` is a base for the embedded builder (`strata build`); through BuildKit, use an image reference"
                )));
            }
        };
        let base_dirs = self.base_dirs(&base).await?;
        Ok((base, base_config, base_dirs))
    }

    /// The base's metadata for every copy destination and its ancestors
    /// (contracts §1): all read at once (StatFile
    /// resolves symlinks, so each query lists its parent for lstat entries).
    async fn base_dirs(&self, base: &State) -> Result<BaseDirs, Failure> {
        let (gw, spec, opts) = (self.gw, self.spec, &self.solve_opts);
        let mut queries: Vec<String> = spec
            .layers
            .iter()
            .filter_map(|l| match &l.kind {
                LayerKind::Copy(c) => Some(base_queries(c)),
                LayerKind::Run(_) => None,
            })
            .flatten()
            .collect();
        queries.sort();
        queries.dedup();
        let mut dirs = BaseDirs::new();
        if base.is_scratch() || queries.is_empty() {
            return Ok(dirs);
        }
        let base_ref = gw.solve(&base.marshal().to_bytes(), opts).await?;
        let split = |q: &str| -> (String, String) {
            let (parent, name) = q.rsplit_once('/').unwrap_or(("", q));
            let parent = if parent.is_empty() { "/" } else { parent };
            (parent.to_string(), name.to_string())
        };
        let listings = futures_util::future::join_all(queries.iter().map(|q| {
            let (parent, name) = split(q);
            let base_ref = &base_ref;
            async move {
                gw.read_dir(base_ref, &parent, Some(&name))
                    .await
                    .unwrap_or_default()
            }
        }))
        .await;
        let listed: BTreeMap<&str, Vec<Stat>> =
            queries.iter().map(String::as_str).zip(listings).collect();
        // Sorted, so a directory is decided before anything under it.
        for q in &queries {
            let (parent, name) = split(q);
            let above = dirs.get(&parent).cloned();
            let entry = if matches!(
                above,
                Some(BaseEntry::Absent | BaseEntry::Other | BaseEntry::Symlink { .. })
            ) {
                BaseEntry::Absent
            } else {
                match listed
                    .get(q.as_str())
                    .and_then(|l| l.iter().find(|st| st.path == name))
                {
                    Some(st) if st.is_symlink() => BaseEntry::Symlink {
                        target: st.linkname.clone(),
                    },
                    Some(st) if st.is_dir() => BaseEntry::Dir {
                        mode: st.permissions(),
                        uid: u64::from(st.uid),
                        gid: u64::from(st.gid),
                    },
                    Some(_) => BaseEntry::Other,
                    None => BaseEntry::Absent,
                }
            };
            dirs.insert(q.clone(), entry);
        }
        Ok(dirs)
    }

    /// Resolves an image reference for the spec's platform, pinned by
    /// strata.lock where it has a pin (contracts §5): its state and config.
    pub async fn image_base(
        &self,
        reference: &str,
        what: &str,
    ) -> Result<(State, serde_json::Value), Failure> {
        let (gw, spec, lock) = (self.gw, self.spec, self.inputs.lock.as_ref());
        let pinned = lock
            .and_then(|l| l.get(reference))
            .and_then(|p| {
                p.platforms
                    .get(&spec.platform.to_string())
                    .or(p.digest.as_ref())
            })
            .filter(|d| !d.is_empty());
        let locked = self.opts.locked;
        if locked
            && pinned.is_none()
            && !lock.and_then(|l| l.get(reference)).is_some_and(|p| p.local)
        {
            return Err(protocol(format!(
                "`{reference}` has no pin in strata.lock and STRATA_LOCKED=1: run `strata lock`"
            )));
        }
        let reference = match pinned {
            Some(d) if !reference.contains('@') => format!("{reference}@{d}"),
            _ => reference.to_string(),
        };
        let mode = self.opts.resolve_mode;
        let resolved = gw
            .resolve_image_config(&reference, Some(&gw_platform(&spec.platform)), mode)
            .await?;
        // Docker 20.10 returns no digest for local images: never an empty `@`.
        let full = if !resolved.digest.is_empty() && !reference.contains('@') {
            format!("{reference}@{}", resolved.digest)
        } else {
            reference.clone()
        };
        let state = llb::image(&full)
            .platform(oci_platform(&spec.platform))
            .custom_name(format!("[strata] {what} {reference}"))
            .build();
        let config: serde_json::Value =
            serde_json::from_slice(&resolved.config).unwrap_or(serde_json::Value::Null);
        Ok((state, config))
    }
}
