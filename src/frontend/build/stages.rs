//! Build stages: the final state of every stage the target needs, each an
//! exec chain on its own base.

use std::collections::BTreeMap;

use super::base::Resolved;
use super::lower::Lower;
use super::run::Within;
use super::{BuildError, spec_error};
use crate::frontend::gateway::Gateway;
use crate::llb::{self, State};
use crate::spec::{BaseRef, Stage, StageFrom};

/// A built stage: its final state and its base image's config.
#[derive(Clone)]
pub(super) struct StageState {
    pub(crate) state: State,
    pub(crate) config: Option<serde_json::Value>,
}

impl<G: Gateway> Lower<'_, G> {
    /// The final state of every stage the target needs: an exec
    /// chain per stage on its base image (in `resolved`) or on its
    /// base stage's final state. Stages that share nothing are independent
    /// subgraphs, so BuildKit solves them in parallel.
    pub(crate) fn stages(
        &self,
        resolved: &Resolved,
    ) -> Result<BTreeMap<String, StageState>, BuildError> {
        let spec = self.spec;
        let mut done: BTreeMap<String, StageState> = BTreeMap::new();
        let mut pending: Vec<&Stage> = spec.stages.iter().collect();
        while !pending.is_empty() {
            let before = pending.len();
            let mut later = Vec::new();
            for stage in pending {
                let base = match &stage.from {
                    StageFrom::Image(BaseRef::Scratch) => StageState {
                        state: llb::scratch(),
                        config: None,
                    },
                    StageFrom::Image(BaseRef::Registry(r)) => {
                        let (state, config) =
                            self.image_base(r, &format!("stage {} base", stage.name), resolved)?;
                        StageState {
                            state,
                            config: Some(config),
                        }
                    }
                    StageFrom::Image(other) => {
                        return Err(spec_error(
                            &self.opts.filename,
                            format!(
                                "stage `{}`: `{other}` is not an image reference",
                                stage.name
                            ),
                        ));
                    }
                    StageFrom::Stage(parent) => match done.get(parent) {
                        Some(p) => p.clone(),
                        None => {
                            later.push(stage);
                            continue;
                        }
                    },
                };
                let mut state = base.state.clone();
                for (i, step) in stage.steps.iter().enumerate() {
                    // From the `[[stage.step]]` header to the end of its command.
                    let end = step
                        .span
                        .end
                        .max(step.run_span.end)
                        .saturating_sub(1)
                        .max(step.span.start);
                    let range = [llb::SourceRange::lines(
                        spec.source.line_col(step.span.start).0 as u32,
                        spec.source.line_col(end).0 as u32,
                    )];
                    state = self.run_exec(
                        &format!("stage/{}/{i}", stage.name),
                        &step.run,
                        &state,
                        &range,
                        Within::Stage {
                            stage,
                            base_config: base.config.as_ref(),
                        },
                    )?;
                }
                done.insert(
                    stage.name.clone(),
                    StageState {
                        state,
                        config: base.config.clone(),
                    },
                );
            }
            if later.len() == before {
                return Err(BuildError::Internal("build stages form a cycle".into()));
            }
            pending = later;
        }
        Ok(done)
    }
}
