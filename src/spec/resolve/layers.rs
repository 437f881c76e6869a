//! One `[[layer]]`: its copy or run keys, the run-only keys a copy layer
//! may not set, copy sources and stage mounts.

use super::*;

const RUN_ONLY: &[&str] = &[
    "inputs",
    "inputs_writable",
    "normalize",
    "cache",
    "env",
    "user",
    "workdir",
    "network",
    "secrets",
    "ssh",
];

pub(super) fn resolve_layer(
    cx: &mut Cx<'_>,
    l: &RawLayer,
    span: Range<usize>,
) -> Option<LayerKind> {
    let name = l.name.get();
    match (&l.copy, &l.run) {
        (None, None) => {
            cx.err(
                l.name.span(),
                format!("layer `{name}` has neither `copy` nor `run`"),
            )
            .help(
                "a layer is either `copy = [{ from = \"...\", to = \"/...\" }]` or `run = \"...\"`",
            );
            None
        }
        (Some(_), Some(run)) => {
            cx.err(
                run.span(),
                format!("layer `{name}` has both `copy` and `run`"),
            )
            .label("second kind")
            .help("split it into two layers: one `copy`, one `run`");
            None
        }
        (Some(copy), None) => {
            // Keys that only run layers take.
            let run_keys: [(bool, &str); 10] = [
                (l.inputs.is_some(), RUN_ONLY[0]),
                (l.inputs_writable.is_some(), RUN_ONLY[1]),
                (l.normalize.is_some(), RUN_ONLY[2]),
                (l.cache.is_some(), RUN_ONLY[3]),
                (l.env.is_some(), RUN_ONLY[4]),
                (l.user.is_some(), RUN_ONLY[5]),
                (l.workdir.is_some(), RUN_ONLY[6]),
                (l.network.is_some(), RUN_ONLY[7]),
                (l.secrets.is_some(), RUN_ONLY[8]),
                (l.ssh.is_some(), RUN_ONLY[9]),
            ];
            for (present, key) in run_keys {
                if present {
                    cx.err(
                        span.clone(),
                        format!("`{key}` is only for run layers, and `{name}` is a copy layer"),
                    )
                    .help(format!("remove `{key}` from this layer"));
                }
            }
            if copy.get().is_empty() {
                cx.err(copy.span(), "`copy` is empty")
                    .help("list at least one `{ from = \"...\", to = \"/...\" }`");
            }
            let mut entries = Vec::new();
            for e in copy.get() {
                let c = e.get();
                let stage = c.stage.as_ref().map(|st| cx.stage_ref(st));
                let from = if stage.is_some() {
                    cx.stage_path(&c.from, "stage copy source")
                } else {
                    cx.rel(&c.from, "copy source")
                };
                let to_raw = cx.s(&c.to);
                let to = cx.abs(&c.to, "copy destination");
                let mode = c.mode.as_ref().and_then(|m| {
                    let s = cx.s(m);
                    values::parse_mode(&s)
                        .map_err(|err| {
                            cx.err(m.span(), err).label("not a mode");
                        })
                        .ok()
                });
                let mut exclude = Vec::new();
                for x in &c.exclude {
                    let s = cx.s(x);
                    if s.trim().is_empty() {
                        cx.err(x.span(), "an empty exclude pattern");
                    }
                    exclude.push(s);
                }
                entries.push(CopyEntry {
                    from,
                    // As in Docker: a trailing `/`, `/.` or `/..` names a
                    // directory, and so does `/` however it is written (a
                    // file cannot be the root).
                    to_is_dir: to_raw.ends_with('/')
                        || to_raw.ends_with("/.")
                        || to_raw.ends_with("/..")
                        || to == "/",
                    to,
                    mode,
                    exclude,
                    span: e.span(),
                    from_span: c.from.span(),
                    stage,
                });
            }
            check_copy_sources(cx, l, &entries, copy.span());
            let split = match &l.split {
                None => {
                    if let Some(m) = &l.split_min {
                        cx.err(m.span(), "`split_min` without `split = \"file\"`")
                            .help("add `split = \"file\"` or remove `split_min`");
                    }
                    None
                }
                Some(s) => {
                    let v = cx.s(s);
                    if v != "file" {
                        cx.err(s.span(), format!("unknown split `{v}`"))
                            .label("not a split mode")
                            .help("the only split is `split = \"file\"`");
                    }
                    let min = match &l.split_min {
                        None => DEFAULT_SPLIT_MIN,
                        Some(m) => {
                            let t = cx.s(m);
                            match values::parse_size(&t) {
                                Ok(0) => {
                                    cx.err(m.span(), "`split_min` must be more than 0");
                                    DEFAULT_SPLIT_MIN
                                }
                                Ok(n) => n,
                                Err(e) => {
                                    cx.err(m.span(), e).label("not a size");
                                    DEFAULT_SPLIT_MIN
                                }
                            }
                        }
                    };
                    Some(Split {
                        min,
                        span: s.span(),
                    })
                }
            };
            let owner = match &l.owner {
                None => Owner::default(),
                Some(o) => {
                    let s = cx.s(o);
                    values::parse_owner(&s).unwrap_or_else(|e| {
                        cx.err(o.span(), e).label("not a numeric owner");
                        Owner::default()
                    })
                }
            };
            let compression = l.compression.as_ref().map(|c| compression_value(cx, c));
            Some(LayerKind::Copy(CopyLayer {
                entries,
                split,
                owner,
                compression,
            }))
        }
        (None, Some(run)) => {
            for (present, key) in [
                (l.split.is_some(), "split"),
                (l.split_min.is_some(), "split_min"),
                (l.owner.is_some(), "owner"),
                (l.compression.is_some(), "compression"),
            ] {
                if present {
                    cx.err(
                        span.clone(),
                        format!("`{key}` is only for copy layers, and `{name}` is a run layer"),
                    )
                    .help(format!("remove `{key}` from this layer"));
                }
            }
            let mut r = resolve_run(
                cx,
                &RunKeys {
                    run,
                    inputs: &l.inputs,
                    inputs_writable: &l.inputs_writable,
                    normalize: &l.normalize,
                    cache: &l.cache,
                    env: &l.env,
                    user: &l.user,
                    workdir: &l.workdir,
                    network: &l.network,
                    secrets: &l.secrets,
                    ssh: &l.ssh,
                },
            );
            r.mounts = resolve_mounts(cx, l.mounts.as_deref().unwrap_or_default());
            Some(LayerKind::Run(r))
        }
    }
}

/// The keys a run layer and a stage step share.
pub(super) struct RunKeys<'a> {
    pub(super) run: &'a Sp<RunCommand>,
    pub(super) inputs: &'a Option<Vec<Sp<String>>>,
    pub(super) inputs_writable: &'a Option<Sp<bool>>,
    pub(super) normalize: &'a Option<Sp<bool>>,
    pub(super) cache: &'a Option<Vec<Sp<RawCache>>>,
    pub(super) env: &'a Option<BTreeMap<String, Sp<String>>>,
    pub(super) user: &'a Option<Sp<String>>,
    pub(super) workdir: &'a Option<Sp<String>>,
    pub(super) network: &'a Option<Sp<String>>,
    pub(super) secrets: &'a Option<Vec<Sp<RawSecret>>>,
    pub(super) ssh: &'a Option<Sp<RawSsh>>,
}

pub(super) fn resolve_run(cx: &mut Cx<'_>, k: &RunKeys<'_>) -> RunLayer {
    let run = k.run;
    let commands: Vec<String> = match run.get() {
        RunCommand::One(c) => vec![c.clone()],
        RunCommand::Many(cs) => cs.clone(),
    };
    let mut subst = Vec::new();
    for c in &commands {
        match cx.vars.subst_at(cx.src, c, run.span()) {
            Ok(s) => subst.push(s),
            Err(d) => cx.diags.push(d),
        }
    }
    if subst.iter().all(|c| c.trim().is_empty()) {
        cx.err(run.span(), "`run` has no command");
    }
    let command = subst.join(" && ");
    let inputs = k
        .inputs
        .iter()
        .flatten()
        .map(|i| RunInput {
            path: cx.rel(i, "run input"),
            span: i.span(),
        })
        .collect();
    let mut cache = Vec::new();
    for c in k.cache.iter().flatten() {
        let (target, sharing) = match c.get() {
            RawCache::Path(p) => (p.clone(), None),
            RawCache::Table(t) => (t.target.clone(), t.sharing.clone()),
        };
        let target = match cx
            .vars
            .subst_at(cx.src, &target, c.span())
            .map(|t| values::clean_abs(&t))
        {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => {
                cx.err(c.span(), format!("cache target {e}"));
                target
            }
            Err(d) => {
                cx.diags.push(d);
                target
            }
        };
        let sharing = match sharing.as_deref() {
            None | Some("shared") => Sharing::Shared,
            Some("locked") => Sharing::Locked,
            Some("private") => Sharing::Private,
            Some(other) => {
                cx.err(c.span(), format!("unknown cache sharing `{other}`"))
                    .help("use \"shared\", \"locked\" or \"private\"");
                Sharing::Shared
            }
        };
        cache.push(CacheMount { target, sharing });
    }
    let mut env = BTreeMap::new();
    if let Some(e) = k.env {
        cx.env(e, &mut env);
    }
    let network = match k.network {
        None => Network::Default,
        Some(n) => match cx.s(n).as_str() {
            "default" => Network::Default,
            "none" => Network::None,
            other => {
                cx.err(n.span(), format!("unknown network `{other}`"))
                    .help("use \"default\" or \"none\"");
                Network::Default
            }
        },
    };
    let mut secrets = Vec::new();
    let mut ids = BTreeSet::new();
    for s in k.secrets.iter().flatten() {
        let raw = s.get();
        if raw.id.is_empty() || !ids.insert(raw.id.clone()) {
            cx.err(s.span(), "each secret needs a unique, non-empty `id`");
        }
        let expose = match (&raw.env, &raw.target) {
            (Some(_), Some(_)) => {
                cx.err(s.span(), "a secret has either `env` or `target`, not both");
                continue;
            }
            (Some(e), None) => {
                if !values::is_env_name(e) {
                    cx.err(
                        s.span(),
                        format!("`{e}` is not a valid environment variable name"),
                    );
                }
                SecretExpose::Env(e.clone())
            }
            (None, Some(t)) => match values::clean_abs(t) {
                Ok(t) => SecretExpose::File(t),
                Err(e) => {
                    cx.err(s.span(), format!("secret target {e}"));
                    continue;
                }
            },
            (None, None) => SecretExpose::File(format!("/run/secrets/{}", raw.id)),
        };
        secrets.push(Secret {
            id: raw.id.clone(),
            expose,
        });
    }
    let ssh = match k.ssh.as_ref().map(|s| s.get()) {
        None | Some(RawSsh::Enabled(false)) => Vec::new(),
        Some(RawSsh::Enabled(true)) => vec!["default".to_string()],
        Some(RawSsh::Ids(ids)) => ids.clone(),
    };
    RunLayer {
        command,
        inputs,
        inputs_writable: k.inputs_writable.as_ref().is_some_and(|w| *w.get()),
        normalize: k.normalize.as_ref().is_none_or(|n| *n.get()),
        cache,
        env,
        user: cx.opt(k.user),
        workdir: k.workdir.as_ref().map(|w| cx.abs(w, "workdir")),
        network,
        secrets,
        ssh,
        mounts: Vec::new(),
    }
}

/// A copy layer takes its entries from one source (the context or one
/// stage), and only context copies split.
fn check_copy_sources(cx: &mut Cx<'_>, l: &RawLayer, entries: &[CopyEntry], span: Range<usize>) {
    let name = l.name.get();
    if let Some(m) = l.mounts.as_ref().and_then(|m| m.first()) {
        cx.err(
            m.span(),
            format!("`mounts` is only for run layers, and `{name}` is a copy layer"),
        )
        .label("a mount in a copy layer")
        .help("copy from the stage with `{ stage = \"NAME\", from = \"/path\", to = \"/dest\" }` in `copy`");
    }
    let sources: BTreeSet<Option<&String>> = entries.iter().map(|e| e.stage.as_ref()).collect();
    if sources.len() > 1 {
        cx.err(
            span,
            format!("layer `{name}` copies from more than one source"),
        )
        .label("context and stage entries, or two stages")
        .help("put the entries of each source (the context, or one stage) in a layer of their own");
    }
    if let (Some(split), true) = (&l.split, entries.iter().any(|e| e.stage.is_some())) {
        cx.err(
            split.span(),
            format!("layer `{name}` copies from a stage and cannot be split"),
        )
        .label("split of a stage copy")
        .help("remove `split`: only copies from the build context split");
    }
}

/// A run layer's `mounts`.
fn resolve_mounts(cx: &mut Cx<'_>, raw: &[Sp<RawMount>]) -> Vec<StageMount> {
    let mut out = Vec::new();
    for m in raw {
        let r = m.get();
        let stage = cx.stage_ref(&r.stage);
        let from = cx.stage_path(&r.from, "mount source");
        let to = cx.abs(&r.to, "mount target");
        out.push(StageMount {
            stage,
            from,
            to,
            span: m.span(),
        });
    }
    out
}
