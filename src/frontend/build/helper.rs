//! The helper: the frontend's own image, which runs `strata helper` in the
//! build, and its execs that write one copy layer each (docs/design.md §2).

use super::options::Options;
use super::{BuildError, IMAGE_BINARY};
use crate::frontend::gateway::{Caps, cap};
use crate::helper::CopyJob;
use crate::llb::{self, Definition, Mount, State};

/// Where BuildKit (≥ 0.10) mounts the frontend's own LLB.
const FRONTEND_BIN: &str = "/run/config/buildkit/metadata/frontend.bin";

/// The image the helper runs from (the frontend's own image) and how the
/// helper's execs key it.
#[derive(Debug, Clone)]
pub(super) struct Helper {
    pub(crate) image: State,
    /// The execs key the image by its content (`contentCache = ON` on
    /// their read-only root, BuildKit ≥ 0.13), not by its op.
    pub(crate) by_content: bool,
}

impl Helper {
    /// An exec of the helper binary: read-only root, no network.
    pub(crate) fn exec<I, S>(&self, args: I) -> llb::Exec
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let exec = llb::Exec::new(&self.image, args)
            .env("PATH", "/")
            .readonly_root()
            .network(llb::NetMode::None);
        if self.by_content {
            exec.root_keyed_by_content()
        } else {
            exec
        }
    }
}

/// The helper's image: the frontend's own image, from the LLB BuildKit
/// loaded the frontend with (where it mounts it), else the `source` option
/// (the `# syntax=` image).
///
/// A builder that pulls the frontend for a build solves that LLB's vertex
/// in the frontend's own job, without the build's `--cache-from`, so the
/// vertex ends with no cache keys, and an exec keyed by it matched nothing
/// in an imported cache (measured on a pruned Docker 28.5: every copy
/// helper re-ran on the first build with a new frontend image, none on the
/// second). So the helper's execs key the image by its content where
/// BuildKit can (`exec.mount.cache.content`), which the importer computes
/// itself, and keep the very vertex (no second resolve of the image). Where
/// it cannot, the image op is the frontend's pinned reference marked
/// `image.recordtype=internal`: another vertex, solved in the build's job,
/// at the cost of one more resolve.
pub(super) fn frontend_image(opts: &Options, caps: &Caps) -> Result<Helper, BuildError> {
    let bin = fs_err::read(FRONTEND_BIN).ok();
    helper_image(
        bin.as_deref(),
        opts.source.as_deref(),
        caps.has_llb(cap::EXEC_MOUNT_CONTENT_CACHE),
    )
}

/// [`frontend_image`] from the bytes of `frontend.bin` (if any), the
/// `source` option, and whether execs can key a mount by its content.
pub(super) fn helper_image(
    frontend_bin: Option<&[u8]>,
    source: Option<&str>,
    by_content: bool,
) -> Result<Helper, BuildError> {
    let helper = |image| Ok(Helper { image, by_content });
    if let Some(def) = frontend_bin.and_then(|b| Definition::from_bytes(b).ok()) {
        if !by_content && let Some((reference, platform)) = def.image_source() {
            let image = llb::image(reference).internal();
            return helper(
                match platform {
                    Some(p) => image.platform(p),
                    None => image,
                }
                .build(),
            );
        }
        if let Ok(state) = def.to_state() {
            return helper(state);
        }
    }
    match source {
        Some(s) if !s.is_empty() => helper(llb::image(s).internal().build()),
        _ => Err(BuildError::NoHelperImage),
    }
}

/// Where a helper exec writes its tree.
#[derive(Debug, Clone, Copy)]
pub(super) enum HelperMode<'a> {
    /// Into a scratch `/out`: the layer alone, which MergeOp stacks.
    Scratch,
    /// Onto the linear chain mounted writable at `/out` (docs/design.md §4
    /// fallback): that output is the chain with the layer on it. With
    /// `true`, the mount is marked to be keyed by its definition only
    /// (where the engine has `exec.mount.cache.content`).
    Chain(&'a State, bool),
    /// The record only, and the layer's paths into a scratch `/out` for
    /// the overlap check (`--paths-only`; the fallback's record step).
    Record,
}

impl Helper {
    /// The helper exec of one copy layer with its sources mounted under `/src`:
    /// its `/out` (the layer, see [`HelperMode`]) and `/meta` (the record)
    /// outputs.
    pub(crate) fn copy_exec(
        &self,
        id: &str,
        job: &CopyJob,
        sources: Vec<Mount>,
        mode: HelperMode<'_>,
        map: &llb::SourceMap,
        range: &[llb::SourceRange],
    ) -> Result<(State, State), BuildError> {
        let job_json = serde_json::to_string(job).map_err(|source| BuildError::Json {
            what: "a copy job",
            source,
        })?;
        let mut args = vec![
            IMAGE_BINARY,
            "helper",
            "copy",
            "--src",
            "/src",
            "--out",
            "/out",
            "--record",
            "/meta/record.json",
        ];
        if matches!(mode, HelperMode::Record) {
            args.push("--paths-only");
        }
        args.push(&job_json);
        let (out, title) = match mode {
            HelperMode::Scratch => (
                Mount::bind("/out", &llb::scratch()),
                format!("[strata] layer {id}"),
            ),
            HelperMode::Chain(chain, by_definition) => {
                // A writable mount that is not `/` is keyed by its content on
                // BuildKit >= 0.12 (0.8 keys it by definition): that would
                // hash the whole chain at every layer.
                let m = Mount::bind("/out", chain);
                let m = if by_definition {
                    m.no_content_cache()
                } else {
                    m
                };
                (m, format!("[strata] layer {id}"))
            }
            HelperMode::Record => (
                Mount::bind("/out", &llb::scratch()),
                format!("[strata] record {id}"),
            ),
        };
        let mut exec = self.exec(args);
        for m in sources {
            exec = exec.mount(m);
        }
        let exec = exec
            .mount(out)
            .mount(Mount::bind("/meta", &llb::scratch()))
            .custom_name(title)
            .location(map, range)
            .build()
            .map_err(|source| BuildError::Llb {
                what: format!("the helper of `{id}`"),
                source,
            })?;
        let out = exec
            .output("/out")
            .ok_or_else(|| BuildError::Internal("helper exec has no /out output".into()))?;
        let meta = exec
            .output("/meta")
            .ok_or_else(|| BuildError::Internal("helper exec has no /meta output".into()))?;
        Ok((out, meta))
    }
}
