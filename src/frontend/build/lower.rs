//! One platform's lowering: the [`Lower`] context every part of the build
//! reads, and [`Lower::platform`], which walks the layers in order and
//! joins them into the image: `Merge(base, layer₁, …, layerₙ)` with
//! MergeOp and DiffOp, else one linear chain (docs/design.md §4).

use super::BuildError;
use super::copy::copy_on;
use super::helper::{Helper, HelperMode};
use super::inputs::Inputs;
use super::options::Options;
use super::overlap::CopyOut;
use super::run::Within;
use crate::frontend::gateway::{Caps, Gateway, Ref, SolveOptions};
use crate::helper::job_for;
use crate::llb::{self, State};
use crate::spec::{LayerKind, ResolvedSpec};

/// What lowering one platform's spec reads: the gateway, the options, the
/// engine's capabilities, the resolved spec and the build's inputs.
pub(super) struct Lower<'a, G> {
    pub(crate) gw: &'a G,
    pub(crate) opts: &'a Options,
    pub(crate) caps: &'a Caps,
    /// The spec resolved for this platform.
    pub(crate) spec: &'a ResolvedSpec,
    pub(crate) inputs: &'a Inputs,
    /// The image the helper execs run from.
    pub(crate) helper: &'a Helper,
    /// The engine has MergeOp and DiffOp.
    pub(crate) modern: bool,
    /// The spec's source, for the ops' locations.
    pub(crate) map: llb::SourceMap,
    /// How the graph's parts are solved while lowering (no evaluation).
    pub(crate) solve_opts: SolveOptions,
}

/// What the history needs of a layer.
pub(super) enum LayerNote {
    /// A copy layer: the helper's record output.
    Copy(State),
    /// A run layer, normalized or not.
    Run(bool),
}

impl<G: Gateway> Lower<'_, G> {
    /// Lowers the spec, solves the image, checks the copy layers for
    /// overlaps and reads their records: the image's ref and config.
    pub(crate) async fn platform(&self) -> Result<(Ref, Vec<u8>), BuildError> {
        let (spec, caps, modern) = (self.spec, self.caps, self.modern);
        let line_of = |span: &std::ops::Range<usize>| spec.source.line_col(span.start).0 as u32;

        // What the graph needs from the gateway, all at once: the base images
        // (each distinct one resolved once), then the base's directories'
        // metadata and the stages; beside them the split layers' listings.
        let bases_fut = async {
            let resolved = self.resolve_images().await?;
            // Build stages: one exec chain each, on its own base.
            let stages = self.stages(&resolved)?;
            let base = self.base(&resolved).await?;
            Ok::<_, BuildError>((base, stages))
        };
        // The context source the copy layers share, then every copy
        // layer's parts (the split layers list it).
        let parts_fut = async {
            let shared = self.shared_context().await?;
            let shared = shared.as_ref();
            futures_util::future::try_join_all(spec.layers.iter().map(|layer| async move {
                match (&layer.kind, shared) {
                    (LayerKind::Copy(copy), Some(shared))
                        if copy.entries.iter().all(|e| e.stage.is_none()) =>
                    {
                        self.copy_parts(&layer.name, copy, shared).await
                    }
                    _ => Ok(Vec::new()),
                }
            }))
            .await
        };
        let (((base, base_config, base_dirs), stages), parts) =
            tokio::try_join!(bases_fut, parts_fut)?;
        let mut parts = parts.into_iter();

        // Layers.
        let mut layers: Vec<(String, State, LayerNote)> = Vec::new();
        let mut copy_outs: Vec<CopyOut> = Vec::new();
        let mut run_parent = base.clone();
        let mut chain = base.clone();
        for layer in &spec.layers {
            let layer_parts = parts.next().unwrap_or_default();
            let skip_cache = self.opts.skip_cache(&layer.name);
            // The whole `[[layer]]` table, so a failing op marks its lines.
            let end = layer.span.end.saturating_sub(1).max(layer.span.start);
            let range = [llb::SourceRange::lines(
                line_of(&layer.span),
                spec.source.line_col(end).0 as u32,
            )];
            match &layer.kind {
                LayerKind::Copy(copy) if copy.entries.iter().any(|e| e.stage.is_some()) => {
                    let exec = |mode: HelperMode<'_>| {
                        self.stage_copy_exec(&layer.name, copy, &stages, &base_dirs, mode, &range)
                    };
                    let (state, out, meta) = copy_on(caps, modern, &mut chain, skip_cache, exec)?;
                    copy_outs.push(CopyOut::new(&layer.name, &layer.name, copy, &out));
                    layers.push((layer.name.clone(), state, LayerNote::Copy(meta)));
                }
                LayerKind::Copy(copy) => {
                    for part in layer_parts {
                        let job = job_for(
                            &part.id,
                            &layer.name,
                            copy,
                            &self.inputs.ignore,
                            spec.image.timestamp,
                            &base_dirs,
                        );
                        let exec =
                            |mode: HelperMode<'_>| self.helper_exec(&part, &job, mode, &range);
                        let (state, out, meta) =
                            copy_on(caps, modern, &mut chain, skip_cache, exec)?;
                        copy_outs.push(CopyOut::new(&part.id, &layer.name, copy, &out));
                        layers.push((part.id, state, LayerNote::Copy(meta)));
                    }
                }
                LayerKind::Run(run) => {
                    let parent = if modern {
                        run_parent.clone()
                    } else {
                        chain.clone()
                    };
                    let exec = self.run_exec(
                        &layer.name,
                        run,
                        &parent,
                        &range,
                        Within::Image {
                            base_config: base_config.as_ref(),
                            stages: &stages,
                        },
                    )?;
                    let exec = if skip_cache {
                        exec.ignore_cache()
                    } else {
                        exec
                    };
                    if modern {
                        layers.push((
                            layer.name.clone(),
                            llb::diff(&parent, &exec),
                            LayerNote::Run(run.normalize),
                        ));
                        run_parent = exec;
                    } else {
                        chain = exec.clone();
                        layers.push((layer.name.clone(), exec, LayerNote::Run(run.normalize)));
                    }
                }
            }
        }
        let image = if modern {
            // Each helper's record output joins the graph as an empty diff of
            // itself (no layer): a cache export then carries it, and a cold
            // builder importing that cache reads the record without running
            // the helper again.
            let records = layers.iter().filter_map(|(_, _, note)| match note {
                LayerNote::Copy(meta) => Some(llb::diff(meta, meta)),
                LayerNote::Run(_) => None,
            });
            llb::merge(
                std::iter::once(base.clone())
                    .chain(layers.iter().map(|(_, s, _)| s.clone()))
                    .chain(records),
            )
        } else {
            chain
        };

        // The image first, in one request: with an imported cache (`--cache-from`)
        // every step that the cache holds resolves from it there, the helpers'
        // records included (they are in the graph, see above), so reading the
        // records below runs nothing on a cold builder.
        let def = image.marshal().to_bytes();
        if def.len() > 4 << 20 {
            return Err(BuildError::TooLarge { size: def.len() });
        }
        // The records' solves go beside it: they only load their
        // definitions (no evaluation), and are read once the image is built.
        let image_opts = SolveOptions {
            cache_imports: self.opts.cache_imports.clone(),
            evaluate: true,
        };
        let image_fut = async { Ok::<_, BuildError>(self.gw.solve(&def, &image_opts).await?) };
        let (r, record_refs) = tokio::try_join!(image_fut, self.record_refs(&layers))?;

        // No two copy layers write one path (what `strata check` and the plan
        // reject): the helper compares the written trees, cached like any exec.
        // Only layers whose destinations nest can write one path; the check
        // runs beside the records below.
        let check = self.check_overlaps(&copy_outs);
        // History: one entry per layer, with the helper's record (docs/design.md §5).
        let records = self.history_comments(&layers, &record_refs);
        let ((), comments) = tokio::try_join!(check, records)?;
        let config = self.config(base_config.as_ref(), &layers, comments)?;
        Ok((r, config))
    }
}
