//! Run layers and stage steps: one exec each, `/bin/sh -c` on its parent
//! under the normalizer ([`super::normalize`]), with the layer's inputs,
//! stage mounts, caches, secrets and SSH agents (docs/design.md §4).

use std::collections::BTreeMap;

use super::BuildError;
use super::copy::context_source;
use super::lower::Lower;
use super::normalize;
use super::stages::StageState;
use crate::frontend::gateway::{Gateway, cap};
use crate::llb::{self, Mount, State};
use crate::spec::{LayerKind, Network, RunLayer, SecretExpose, Sharing, Stage};

/// What a run exec belongs to.
#[derive(Clone, Copy)]
pub(super) enum Within<'s> {
    /// A `[[layer]]` of the image on its base (with this config); it may
    /// mount these stages.
    Image {
        base_config: Option<&'s serde_json::Value>,
        stages: &'s BTreeMap<String, StageState>,
    },
    /// A step of this stage, on a base with this config.
    Stage {
        stage: &'s Stage,
        base_config: Option<&'s serde_json::Value>,
    },
}

impl<G: Gateway> Lower<'_, G> {
    /// The context source the run layers and stage steps share for their
    /// inputs (docs/design.md §2, §4): every input path of the spec, without
    /// the ignore patterns (a command sees its inputs whole). Each exec
    /// mounts its own paths with selectors, so BuildKit keys it by their
    /// content only.
    pub fn run_inputs_source(&self) -> State {
        let steps = self
            .spec
            .stages
            .iter()
            .flat_map(|st| st.steps.iter().map(|s| &s.run));
        let runs = self.spec.layers.iter().filter_map(|l| match &l.kind {
            LayerKind::Run(run) => Some(run),
            _ => None,
        });
        let mut paths: Vec<String> = runs
            .chain(steps)
            .flat_map(|r| r.inputs.iter().map(|i| i.path.clone()))
            .collect();
        paths.sort();
        paths.dedup();
        context_source(
            self.opts,
            paths,
            Vec::new(),
            "[strata] run inputs".to_string(),
        )
    }

    /// The exec of a run layer or stage step `name`, on `parent`; `range` is
    /// where the spec declares it.
    pub(crate) fn run_exec(
        &self,
        name: &str,
        run: &RunLayer,
        parent: &State,
        range: &[llb::SourceRange],
        within: Within<'_>,
    ) -> Result<State, BuildError> {
        let (caps, spec, map) = (self.caps, self.spec, &self.map);
        let no_stages = BTreeMap::new();
        let (base_config, stage, stages) = match within {
            Within::Image {
                base_config,
                stages,
            } => (base_config, None, stages),
            Within::Stage { stage, base_config } => (base_config, Some(stage), &no_stages),
        };
        // A stage step: the stage's workdir (already in `run.workdir`) and env,
        // never the image's.
        let image_workdir = if stage.is_some() {
            None
        } else {
            spec.image.workdir.clone()
        };
        let workdir = run
            .workdir
            .clone()
            .or(image_workdir)
            .unwrap_or_else(|| "/".to_string());
        let title = match stage {
            Some(st) => format!("[strata] stage {}: {}", st.name, run.command),
            None => format!("[strata] layer {name}: {}", run.command),
        };
        let mut exec = llb::Exec::new(parent, Vec::<String>::new())
            .custom_name(title)
            .location(map, range)
            .platform(spec.platform.clone());
        // Environment: the base's, the image's, then the layer's (docs/design.md §4).
        let mut envs: Vec<(String, String)> = Vec::new();
        if let Some(list) = base_config
            .and_then(|c| c.pointer("/config/Env"))
            .and_then(|e| e.as_array())
        {
            for item in list.iter().filter_map(|v| v.as_str()) {
                if let Some((k, v)) = item.split_once('=') {
                    envs.push((k.to_string(), v.to_string()));
                }
            }
        }
        if !envs.iter().any(|(k, _)| k == "PATH") {
            envs.push((
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ));
        }
        let over = stage.map_or(&spec.image.env, |st| &st.env);
        for (k, v) in over.iter().chain(run.env.iter()) {
            envs.push((k.clone(), v.clone()));
        }
        // SOURCE_DATE_EPOCH: the layer timestamp unless set (docs/spec.md).
        if let Some(kv) =
            normalize::source_date_epoch(envs.iter().map(|(k, _)| k.as_str()), spec.image.timestamp)
        {
            envs.push(kv);
        }
        // The command under the normalizer (docs/frontend.md, "Run layers:
        // normalization"), or as it is with `normalize = false`.
        let command = normalize::run_command(
            &run.command,
            &workdir,
            run.user.as_deref(),
            envs.iter().any(|(k, _)| k == "HOME"),
            spec.image.timestamp,
            run.normalize,
        );
        exec = exec.args(command.argv).cwd(command.cwd);
        for (k, v) in envs {
            exec = exec.env(k, v);
        }
        if let Some(u) = &command.user {
            exec = exec.user(u);
        }
        if run.normalize {
            exec = exec.mount(normalize::mount(&self.helper.image, self.helper.by_content));
        }
        if !run.inputs.is_empty() {
            let src = self.run_inputs_source();
            for input in &run.inputs {
                let dest = if workdir == "/" {
                    format!("/{}", input.path)
                } else {
                    format!("{workdir}/{}", input.path)
                };
                let m = Mount::bind(dest, &src).selector(&input.path);
                exec = exec.mount(if run.inputs_writable {
                    m.discard_changes()
                } else {
                    m.readonly()
                });
            }
            // Always set: BuildKit ≥ 0.11 removes the stubs, 0.8 ignores the field.
            exec = exec.remove_mount_stubs_recursive();
        }
        // Stage paths, read-only: BuildKit keys the exec by their content.
        for m in &run.mounts {
            let st = stages.get(&m.stage).ok_or_else(|| {
                BuildError::Internal(format!(
                    "layer `{name}` mounts stage `{}`, which is not built",
                    m.stage
                ))
            })?;
            exec = exec.mount(Mount::bind(&m.to, &st.state).selector(&m.from).readonly());
        }
        if !run.mounts.is_empty() && run.inputs.is_empty() {
            // No stubs of the mount points in the layer (set once per exec).
            exec = exec.remove_mount_stubs_recursive();
        }
        for c in &run.cache {
            let sharing = match c.sharing {
                Sharing::Shared => llb::CacheSharing::Shared,
                Sharing::Locked => llb::CacheSharing::Locked,
                Sharing::Private => llb::CacheSharing::Private,
            };
            exec = exec.mount(
                Mount::cache(
                    &c.target,
                    format!(
                        "{}/{}",
                        spec.image.cache_namespace,
                        c.target.trim_start_matches('/')
                    ),
                )
                .sharing(sharing),
            );
        }
        for s in &run.secrets {
            match &s.expose {
                SecretExpose::File(target) => exec = exec.mount(Mount::secret(target, &s.id)),
                SecretExpose::Env(var) => {
                    if !caps.has_llb(cap::EXEC_SECRET_ENV) {
                        return Err(BuildError::NoSecretEnv {
                            layer: name.to_string(),
                            id: s.id.clone(),
                            var: var.clone(),
                        });
                    }
                    exec = exec.secret_env(llb::SecretEnv {
                        id: s.id.clone(),
                        name: var.clone(),
                        optional: false,
                    });
                }
            }
        }
        for (i, id) in run.ssh.iter().enumerate() {
            let dest = if i == 0 {
                "/run/buildkit/ssh_agent.0".to_string()
            } else {
                format!("/run/buildkit/ssh_agent.{i}")
            };
            exec = exec
                .mount(Mount::ssh(dest, id))
                .env("SSH_AUTH_SOCK", "/run/buildkit/ssh_agent.0");
        }
        if run.network == Network::None {
            exec = exec.network(llb::NetMode::None);
        }
        let outs = exec.build().map_err(|source| BuildError::Llb {
            what: format!("`{name}`"),
            source,
        })?;
        outs.root()
            .ok_or_else(|| BuildError::Internal("run exec has no root output".into()))
    }
}
