//! The check that no two copy layers write one path (what `strata check`
//! and the plan reject): the helper compares the written trees of the
//! layers whose destinations nest, in an exec cached like any other.

use std::collections::BTreeMap;

use super::helper::Helper;
use super::lower::Lower;
use super::{BuildError, IMAGE_BINARY};
use crate::frontend::gateway::{Gateway, SolveOptions};
use crate::llb::{self, Mount, State};
use crate::spec::CopyLayer;

/// A copy layer's helper output, for the overlap check.
#[derive(Clone)]
pub(super) struct CopyOut {
    pub(crate) id: String,
    /// The spec layer it belongs to (split layers share it).
    pub(crate) layer: String,
    /// Destination roots: everything it writes is at or under one of them.
    pub(crate) roots: Vec<String>,
    pub(crate) state: State,
}

impl CopyOut {
    pub(crate) fn new(id: &str, layer: &str, copy: &CopyLayer, state: &State) -> CopyOut {
        let roots = match id.split_once('@') {
            Some((_, dest)) => vec![dest.to_string()],
            None => copy
                .entries
                .iter()
                .map(|e| match e.to.trim_end_matches('/') {
                    "" => "/".to_string(),
                    to => to.to_string(),
                })
                .collect(),
        };
        CopyOut {
            id: id.to_string(),
            layer: layer.to_string(),
            roots,
            state: state.clone(),
        }
    }
}

/// Whether one root is the other or an ancestor of it.
fn nested(a: &str, b: &str) -> bool {
    let under =
        |x: &str, y: &str| x == "/" || y.strip_prefix(x).is_some_and(|r| r.starts_with('/'));
    a == b || under(a, b) || under(b, a)
}

/// The copy outputs that may write a path another one writes, in layer
/// order: those with nested destination roots. Two layers whose roots do
/// not nest share at most ancestor directories, which every layer may
/// write (docs/design.md §1); the layers split from one spec layer are disjoint
/// by construction unless that layer's own entries nest.
pub(super) fn overlap_suspects(outs: &[CopyOut]) -> Vec<(String, State)> {
    // Per spec layer, once: whether its own entries' roots nest (its
    // unsplit part holds them all).
    let mut roots_of: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
    for o in outs.iter().filter(|o| !o.id.contains('@')) {
        roots_of.entry(&o.layer).or_default().extend(&o.roots);
    }
    let self_nested: BTreeMap<&str, bool> = roots_of
        .into_iter()
        .map(|(layer, roots)| {
            let any = roots
                .iter()
                .enumerate()
                .any(|(i, a)| roots[i + 1..].iter().any(|b| nested(a, b)));
            (layer, any)
        })
        .collect();
    let mut suspect = vec![false; outs.len()];
    for (i, a) in outs.iter().enumerate() {
        for (j, b) in outs.iter().enumerate().skip(i + 1) {
            if a.layer == b.layer && !self_nested.get(a.layer.as_str()).copied().unwrap_or(false) {
                continue;
            }
            if a.roots.iter().any(|x| b.roots.iter().any(|y| nested(x, y))) {
                suspect[i] = true;
                suspect[j] = true;
            }
        }
    }
    outs.iter()
        .zip(suspect)
        .filter(|(_, s)| *s)
        .map(|(o, _)| (o.id.clone(), o.state.clone()))
        .collect()
}

/// The exec that fails when two copy layers' trees (mounted read-only, in
/// layer order) write the same path: `strata helper overlaps`.
fn overlaps_exec(helper_image: &Helper, outs: &[(String, State)]) -> Result<State, BuildError> {
    let mut args = vec![
        IMAGE_BINARY.to_string(),
        "helper".to_string(),
        "overlaps".to_string(),
    ];
    args.extend(
        outs.iter()
            .enumerate()
            .map(|(i, (id, _))| format!("{id}=/layers/{i}")),
    );
    let mut exec = helper_image.exec(args).custom_name(format!(
        "[strata] check that the {} copy layers write distinct paths",
        outs.len()
    ));
    for (i, (_, out)) in outs.iter().enumerate() {
        exec = exec.mount(Mount::bind(format!("/layers/{i}"), out).readonly());
    }
    // An empty scratch output: the result to solve.
    let exec = exec
        .mount(Mount::bind("/out", &llb::scratch()))
        .build()
        .map_err(|source| BuildError::Llb {
            what: "the overlap check".into(),
            source,
        })?;
    exec.output("/out")
        .ok_or_else(|| BuildError::Internal("overlap check exec has no /out output".into()))
}

impl<G: Gateway> Lower<'_, G> {
    /// Solves the overlap check of `outs` where two of them may write one
    /// path.
    pub(crate) async fn check_overlaps(&self, outs: &[CopyOut]) -> Result<(), BuildError> {
        let suspects = overlap_suspects(outs);
        if suspects.len() > 1 {
            let check = overlaps_exec(self.helper, &suspects)?;
            self.gw
                .solve(
                    &check.marshal().to_bytes(),
                    &SolveOptions {
                        cache_imports: self.opts.cache_imports.clone(),
                        evaluate: true,
                    },
                )
                .await?;
        }
        Ok(())
    }
}
