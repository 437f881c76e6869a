//! The `[[stage]]` tables: each resolved, duplicates, cycles and unread
//! stages reported, and the stages the target needs.

use super::layers::{RunKeys, resolve_run};
use super::*;

/// Resolves every `[[stage]]` (so every error shows), reports duplicate
/// names, cycles and stages no layer reads, and returns the stages the
/// target's `layers` need, in spec order, with every stage's image base.
pub(super) fn resolve_stages(
    cx: &mut Cx<'_>,
    raw: &[Sp<RawStage>],
    read_by_any_layer: &BTreeSet<String>,
    layers: &[Layer],
    warnings: &mut Vec<Diag>,
) -> (Vec<Stage>, Vec<BaseRef>) {
    let mut names: BTreeMap<String, Range<usize>> = BTreeMap::new();
    let mut stages: Vec<Stage> = Vec::new();
    for st in raw {
        let r = st.get();
        let name = r.name.get().clone();
        if !values::is_layer_name(&name) {
            cx.err(r.name.span(), format!("`{name}` is not a valid stage name"))
                .label("invalid name")
                .help("stage names match [a-z0-9][a-z0-9._-]*, e.g. \"build\"");
        } else if let Some(first) = names.get(&name) {
            let (line, _) = cx.src.line_col(first.start);
            cx.err(r.name.span(), format!("duplicate stage name `{name}`"))
                .label("used again here")
                .help(format!(
                    "the first stage named `{name}` is on line {line}; stage names are unique"
                ));
        } else {
            names.insert(name.clone(), r.name.span());
        }
        let from_s = cx.s(&r.from);
        let from = if cx.stage_names.contains(&from_s) {
            StageFrom::Stage(from_s)
        } else {
            match values::parse_base(&from_s) {
                Ok(b @ (BaseRef::Registry(_) | BaseRef::Scratch)) => StageFrom::Image(b),
                Ok(_) => {
                    cx.err(r.from.span(), format!("stage base `{from_s}` is a local image file"))
                        .label("not an image reference")
                        .help("stages build through BuildKit: use an image reference, `scratch`, or another stage");
                    StageFrom::Image(BaseRef::Scratch)
                }
                Err(_) if from_s.contains("${") => StageFrom::Image(BaseRef::Scratch),
                Err(e) => {
                    cx.err(r.from.span(), e)
                        .label("not an image reference or a stage")
                        .help("a stage's `from` is an image reference, `scratch`, or the name of another stage");
                    StageFrom::Image(BaseRef::Scratch)
                }
            }
        };
        let workdir = r.workdir.as_ref().map(|w| cx.abs(w, "workdir"));
        let mut env = BTreeMap::new();
        cx.env(&r.env, &mut env);
        let mut steps = Vec::new();
        for step in &r.step {
            let k = step.get();
            let mut run = resolve_run(
                cx,
                &RunKeys {
                    run: &k.run,
                    inputs: &k.inputs,
                    inputs_writable: &k.inputs_writable,
                    normalize: &k.normalize,
                    cache: &k.cache,
                    env: &k.env,
                    user: &k.user,
                    workdir: &k.workdir,
                    network: &k.network,
                    secrets: &k.secrets,
                    ssh: &k.ssh,
                },
            );
            if run.workdir.is_none() {
                run.workdir = workdir.clone();
            }
            steps.push(StageStep {
                run,
                span: step.span(),
                run_span: k.run.span(),
            });
        }
        stages.push(Stage {
            name,
            span: st.span(),
            name_span: r.name.span(),
            from,
            from_span: r.from.span(),
            workdir,
            env,
            steps,
        });
    }

    // Cycles through `from`: reported once, at the first stage of the cycle
    // in spec order.
    let base_of = |name: &str| -> Option<String> {
        stages
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| match &s.from {
                StageFrom::Stage(p) => Some(p.clone()),
                StageFrom::Image(_) => None,
            })
    };
    let mut in_cycle: BTreeSet<String> = BTreeSet::new();
    for st in &stages {
        if in_cycle.contains(&st.name) {
            continue;
        }
        let mut path = vec![st.name.clone()];
        let mut cur = st.name.clone();
        while let Some(next) = base_of(&cur) {
            if next == st.name {
                path.push(next);
                let chain = path
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(" → ");
                cx.err(
                    st.from_span.clone(),
                    format!("stages form a cycle: {chain}"),
                )
                .label("this `from` closes the cycle")
                .help("a stage builds on an image or on another stage that does not build on it; set `from` to an image");
                in_cycle.extend(path.iter().cloned());
                break;
            }
            if path.contains(&next) || path.len() > stages.len() {
                break; // a cycle that does not pass through `st`: reported at its own stage
            }
            path.push(next.clone());
            cur = next;
        }
    }

    // Every stage reachable from the stages a set of names reads.
    let closure = |start: &mut dyn Iterator<Item = String>| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<String> = start.collect();
        while let Some(n) = todo.pop() {
            if seen.insert(n.clone())
                && let Some(b) = base_of(&n)
            {
                todo.push(b);
            }
        }
        seen
    };
    let used = closure(&mut read_by_any_layer.iter().cloned());
    for st in &stages {
        if !used.contains(&st.name) {
            warnings.push(
                Diag::warning(
                    cx.src,
                    Some(st.name_span.clone()),
                    format!("stage `{}` is used by no layer", st.name),
                )
                .label("never copied from or mounted")
                .help(format!(
                    "copy from it with `{{ stage = \"{}\", from = \"/path\", to = \"/dest\" }}`, mount it with `mounts`, or remove it",
                    st.name
                )),
            );
        }
    }
    let mut bases: Vec<BaseRef> = Vec::new();
    for st in &stages {
        if let StageFrom::Image(b) = &st.from
            && *b != BaseRef::Scratch
            && !bases.contains(b)
        {
            bases.push(b.clone());
        }
    }
    bases.sort_by_key(ToString::to_string);
    let needed = closure(&mut layers.iter().flat_map(|l| l.stages_used()));
    stages.retain(|s| needed.contains(&s.name));
    (stages, bases)
}
