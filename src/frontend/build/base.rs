//! Base images: resolved for the platform and pinned by strata.lock where
//! it has a pin (docs/design.md §5), and the base's directories that copy layers
//! write into (docs/design.md §1).

use std::collections::BTreeMap;

use super::lower::Lower;
use super::{BuildError, spec_error};
use crate::frontend::gateway::{Gateway, ImageConfig, Stat};
use crate::llb::{self, State};
use crate::plan::graph::{BaseDirs, BaseEntry, base_queries};
use crate::spec::{BaseRef, LayerKind, StageFrom};

/// The image configs a platform's build resolved, by pinned reference:
/// each distinct reference is asked of BuildKit once (an image that is
/// both the base and a stage's base, or the base of two stages, costs one
/// `ResolveImageConfig`, not one per use).
pub(super) type Resolved = BTreeMap<String, ImageConfig>;

impl<G: Gateway> Lower<'_, G> {
    /// The image's base reference: `None` for scratch, a spec error for a
    /// base only the embedded builder reads.
    fn base_reference(&self) -> Result<Option<&str>, BuildError> {
        match &self.spec.image.from {
            BaseRef::Scratch => Ok(None),
            BaseRef::Registry(reference) => Ok(Some(reference)),
            other => Err(spec_error(
                &self.opts.filename,
                format!(
                    "`{other}` is a base for the embedded builder (`strata build`); through BuildKit, use an image reference"
                ),
            )),
        }
    }

    /// Resolves every image this platform's build starts from (the image's
    /// base and the stages' bases), pinned by strata.lock where it has a pin
    /// (docs/design.md §5): each distinct reference once, all at once.
    pub(crate) async fn resolve_images(&self) -> Result<Resolved, BuildError> {
        let spec = self.spec;
        let stage_refs = spec.stages.iter().filter_map(|s| match &s.from {
            StageFrom::Image(BaseRef::Registry(r)) => Some(r.as_str()),
            _ => None,
        });
        let mut references = self
            .base_reference()?
            .into_iter()
            .chain(stage_refs)
            .map(|r| self.pinned(r))
            .collect::<Result<Vec<String>, BuildError>>()?;
        references.sort();
        references.dedup();
        let (gw, mode) = (self.gw, self.opts.resolve_mode);
        let platform = spec.platform.clone();
        let configs = futures_util::future::try_join_all(
            references
                .iter()
                .map(|r| gw.resolve_image_config(r, Some(&platform), mode)),
        )
        .await?;
        Ok(references.into_iter().zip(configs).collect())
    }

    /// The image's base, its config (none for scratch) and its directories.
    pub(crate) async fn base(
        &self,
        resolved: &Resolved,
    ) -> Result<(State, Option<serde_json::Value>, BaseDirs), BuildError> {
        // The base image, pinned by strata.lock where it has a pin (docs/design.md §5).
        let (base, base_config) = match self.base_reference()? {
            None => (llb::scratch(), None),
            Some(reference) => {
                let (state, config) = self.image_base(reference, "base", resolved)?;
                (state, Some(config))
            }
        };
        let base_dirs = self.base_dirs(&base).await?;
        Ok((base, base_config, base_dirs))
    }

    /// The base's metadata for every copy destination and its ancestors
    /// (docs/design.md §1): all read at once (StatFile
    /// resolves symlinks, so each query lists its parent for lstat entries).
    async fn base_dirs(&self, base: &State) -> Result<BaseDirs, BuildError> {
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

    /// An image reference pinned by strata.lock where it has a pin for the
    /// spec's platform (docs/design.md §5); with `--locked`, an error where it has
    /// none (unless the lock marks the image local).
    fn pinned(&self, reference: &str) -> Result<String, BuildError> {
        let (spec, lock) = (self.spec, self.inputs.lock.as_ref());
        let pinned = lock
            .and_then(|l| l.get(reference))
            .and_then(|p| {
                p.platforms
                    .get(&spec.platform.to_string())
                    .or(p.digest.as_ref())
            })
            .filter(|d| !d.is_empty());
        if self.opts.locked
            && pinned.is_none()
            && !lock.and_then(|l| l.get(reference)).is_some_and(|p| p.local)
        {
            return Err(BuildError::Unpinned {
                reference: reference.to_string(),
            });
        }
        Ok(match pinned {
            Some(d) if !reference.contains('@') => format!("{reference}@{d}"),
            _ => reference.to_string(),
        })
    }

    /// An image reference as the spec's platform's image (pinned, see
    /// [`Self::pinned`]), from its config in `resolved`: its state and config.
    pub(crate) fn image_base(
        &self,
        reference: &str,
        what: &str,
        resolved: &Resolved,
    ) -> Result<(State, serde_json::Value), BuildError> {
        let reference = self.pinned(reference)?;
        let resolved = resolved.get(&reference).ok_or_else(|| {
            BuildError::Internal(format!("the image `{reference}` was not resolved"))
        })?;
        // Docker 20.10 returns no digest for local images: never an empty `@`.
        let full = if !resolved.digest.is_empty() && !reference.contains('@') {
            format!("{reference}@{}", resolved.digest)
        } else {
            reference.clone()
        };
        let state = llb::image(&full)
            .platform(self.spec.platform.clone())
            .custom_name(format!("[strata] {what} {reference}"))
            .build();
        let config: serde_json::Value =
            serde_json::from_slice(&resolved.config).unwrap_or(serde_json::Value::Null);
        Ok((state, config))
    }
}
