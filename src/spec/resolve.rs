//! Raw spec → [`ResolvedSpec`]: argument substitution, value checks, target
//! selection. No file system access: the frontend resolves specs it read over
//! the gateway. Checks against the context are in [`super::validate`].

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::PathBuf;

use super::error::{Diag, SpecSource};
use super::interpolate::Vars;
use super::model::{
    RawCache, RawLayer, RawMount, RawSecret, RawSpec, RawSsh, RawStage, RunCommand, Sp,
};
use super::parse::nearest;
use super::resolved::*;
use super::values;

/// What a resolution is for.
#[derive(Debug, Clone, Default)]
pub struct ResolveOptions {
    /// The target, or the default (layers without `targets`).
    pub target: Option<String>,
    /// `--platform` values; they win over `[image] platforms` (docs/design.md §7).
    pub platforms: Vec<Platform>,
    /// The builder's platform (`BUILDPLATFORM`, and the platform built when
    /// neither of the above names one); `None`: this machine's.
    pub host: Option<Platform>,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// The build context (not read here).
    pub context: PathBuf,
}

/// Build args that are never reported as undeclared (docs/design.md §5, §7).
const EXEMPT_ARGS: &[&str] = &["STRATA_LOCKED"];

/// Adds a label or help to a diagnostic already collected.
struct DiagMut<'a>(&'a mut Diag);

impl DiagMut<'_> {
    fn label(self, label: &str) -> Self {
        self.0.label = label.into();
        self
    }

    fn help(self, help: impl Into<String>) -> Self {
        self.0.help = Some(help.into());
        self
    }
}

/// Collects diagnostics while resolving.
struct Cx<'a> {
    src: &'a SpecSource,
    diags: Vec<Diag>,
    vars: Vars,
    /// Names of the declared stages, for `stage = "NAME"` references.
    stage_names: Vec<String>,
}

impl Cx<'_> {
    fn err(&mut self, span: Range<usize>, msg: impl Into<String>) -> DiagMut<'_> {
        self.diags.push(Diag::error(self.src, span, msg));
        DiagMut(self.diags.last_mut().expect("just pushed"))
    }

    fn s(&mut self, v: &Sp<String>) -> String {
        match self.vars.subst(self.src, v) {
            Ok(s) => s,
            Err(d) => {
                self.diags.push(d);
                v.get().clone()
            }
        }
    }

    fn opt(&mut self, v: &Option<Sp<String>>) -> Option<String> {
        v.as_ref().map(|v| self.s(v))
    }

    fn list(&mut self, v: &Option<Vec<Sp<String>>>) -> Option<Vec<String>> {
        v.as_ref().map(|l| l.iter().map(|x| self.s(x)).collect())
    }

    fn env(&mut self, map: &BTreeMap<String, Sp<String>>, out: &mut BTreeMap<String, String>) {
        for (k, v) in map {
            if !values::is_env_name(k) {
                self.err(
                    v.span(),
                    format!("`{k}` is not a valid environment variable name"),
                )
                .help("names are letters, digits and `_`, not starting with a digit");
            }
            let value = self.s(v);
            out.insert(k.clone(), value);
        }
    }

    fn abs(&mut self, v: &Sp<String>, what: &str) -> String {
        let s = self.s(v);
        match values::clean_abs(&s) {
            Ok(p) => p,
            Err(e) if s.contains('\0') => {
                self.nul_err(v.span(), format!("{what} {e}"));
                s
            }
            Err(e) => {
                self.err(v.span(), format!("{what} {e}"))
                    .label("not absolute")
                    .help("paths in the image are absolute, e.g. \"/app\"");
                s
            }
        }
    }

    /// A path with a NUL byte (`\u0000` in TOML): every build would fail on it.
    fn nul_err(&mut self, span: Range<usize>, msg: String) {
        self.err(span, msg)
            .label("NUL byte")
            .help("remove the `\\u0000` (or other escape that makes a NUL) from the path");
    }

    /// A path in a stage's final state: absolute, cleaned.
    fn stage_path(&mut self, v: &Sp<String>, what: &str) -> String {
        let s = self.s(v);
        match values::clean_abs(&s) {
            Ok(p) => p,
            Err(e) if s.contains('\0') => {
                self.nul_err(v.span(), format!("{what} {e}"));
                s
            }
            Err(_) => {
                self.err(v.span(), format!("{what} `{s}` is not an absolute path"))
                    .label("not absolute")
                    .help("paths in a stage are absolute, e.g. \"/wheels\"");
                s
            }
        }
    }

    /// A `stage = "NAME"` reference, reported when no `[[stage]]` has that name.
    fn stage_ref(&mut self, v: &Sp<String>) -> String {
        let name = self.s(v);
        if !self.stage_names.contains(&name) {
            let help = match nearest(&name, &self.stage_names) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!("declare it with a `[[stage]]` table named \"{name}\""),
            };
            self.err(v.span(), format!("unknown stage `{name}`"))
                .label("no [[stage]] of this name")
                .help(help);
        }
        name
    }

    fn rel(&mut self, v: &Sp<String>, what: &str) -> String {
        let s = self.s(v);
        match values::clean_rel(&s) {
            Ok(p) => p,
            Err(e) if s.contains('\0') => {
                self.nul_err(v.span(), format!("{what} {e}"));
                s
            }
            Err(e) => {
                self.err(v.span(), format!("{what} {e}"))
                    .label("outside the build context")
                    .help("sources are paths inside the build context, e.g. \"models/whisper\"");
                s
            }
        }
    }
}

/// Resolves `raw` for one platform. Returns the spec and its warnings, or every
/// diagnostic (errors first) when anything is wrong.
pub fn resolve(
    src: &SpecSource,
    raw: &RawSpec,
    opts: &ResolveOptions,
    platform: Option<&Platform>,
) -> Result<(ResolvedSpec, Vec<Diag>), Vec<Diag>> {
    let host = opts.host.clone().unwrap_or_else(Platform::host);
    let mut warnings = Vec::new();
    let mut diags = Vec::new();

    if *raw.version.get() != 1 {
        diags.push(
            Diag::error(
                src,
                raw.version.span(),
                format!("unsupported spec version {}", raw.version.get()),
            )
            .label("this strata reads version 1")
            .help("set `version = 1`"),
        );
    }

    // Arguments: spec defaults, overridden by build args (docs/design.md §7).
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in &raw.args {
        if !values::is_env_name(name) {
            diags.push(
                Diag::error(
                    src,
                    value.span(),
                    format!("`{name}` is not a valid argument name"),
                )
                .help("names are letters, digits and `_`, not starting with a digit"),
            );
        }
        args.insert(name.clone(), value.get().clone());
    }
    let mut undeclared = Vec::new();
    for (name, value) in &opts.build_args {
        if args.contains_key(name) {
            args.insert(name.clone(), value.clone());
        } else if !EXEMPT_ARGS.contains(&name.as_str()) {
            undeclared.push(name.clone());
        }
    }
    if !undeclared.is_empty() {
        warnings.push(
            Diag::warning(
                src,
                None,
                format!(
                    "build arguments not declared in [args] are ignored: {}",
                    undeclared.join(", ")
                ),
            )
            .help("declare them in [args] to use them as ${NAME}"),
        );
    }

    let empty_image = Default::default();
    let image = raw.image.as_ref().map(|i| i.get()).unwrap_or(&empty_image);

    // Platforms: --platform wins over [image] platforms over the host (docs/design.md §7).
    let mut cx = Cx {
        src,
        diags,
        vars: Vars::new(&args, &host, &host),
        stage_names: raw
            .stage
            .iter()
            .map(|s| s.get().name.get().clone())
            .collect(),
    };
    let mut platforms = Vec::new();
    if let Some(list) = &image.platforms {
        if list.is_empty() {
            cx.err(
                raw.image.as_ref().map(|i| i.span()).unwrap_or(0..0),
                "`platforms` is empty",
            )
            .help("remove it to build for the builder's platform");
        }
        for p in list {
            let s = cx.s(p);
            match Platform::parse(&s) {
                Ok(pl) if platforms.contains(&pl) => {
                    cx.err(p.span(), format!("platform `{s}` is listed twice"));
                }
                Ok(pl) => platforms.push(pl),
                Err(e) => {
                    cx.err(p.span(), e).label("not a platform");
                }
            }
        }
    }
    if !opts.platforms.is_empty() {
        platforms = opts.platforms.clone();
    }
    if platforms.is_empty() {
        platforms.push(host.clone());
    }
    let platform = platform.cloned().unwrap_or_else(|| platforms[0].clone());
    cx.vars = Vars::new(&args, &platform, &host);

    // Targets.
    let mut target_names: Vec<String> = Vec::new();
    for (name, t) in &raw.target {
        if !values::is_target_name(name) {
            cx.err(t.span(), format!("`{name}` is not a valid target name"))
                .help("target names are letters, digits, `.`, `_` and `-`");
        }
        target_names.push(name.clone());
    }
    let selected = opts.target.clone();
    if let Some(t) = &selected
        && !raw.target.contains_key(t)
    {
        // Reported by the caller as SpecError::UnknownTarget.
        return Err(vec![Diag::error(
            src,
            0..0,
            format!("unknown target `{t}`"),
        )]);
    }

    // [image]
    let from_span = image.from.as_ref().map(|f| f.span()).unwrap_or(0..0);
    let from = match &image.from {
        None => BaseRef::Scratch,
        Some(f) => {
            let s = cx.s(f);
            match values::parse_base(&s) {
                Ok(b) => b,
                // An unknown `${NAME}` was reported already.
                Err(_) if s.contains("${") => BaseRef::Scratch,
                Err(e) => {
                    cx.err(f.span(), e).label("not an image reference");
                    BaseRef::Scratch
                }
            }
        }
    };
    let mut env = BTreeMap::new();
    cx.env(&image.env, &mut env);
    let mut labels = BTreeMap::new();
    for (k, v) in &image.labels {
        let value = cx.s(v);
        labels.insert(k.clone(), value);
    }
    let mut expose = Vec::new();
    for p in &image.expose {
        let s = cx.s(p);
        match values::parse_port(&s) {
            Ok(port) => expose.push(port),
            Err(e) => {
                cx.err(p.span(), e).label("not a port");
            }
        }
    }
    let mut volumes = Vec::new();
    for v in &image.volumes {
        volumes.push(cx.abs(v, "volume"));
    }
    let workdir = image.workdir.as_ref().map(|w| cx.abs(w, "workdir"));
    let healthcheck = image.healthcheck.as_ref().map(|h| {
        let h = h.get();
        let test = h.test.get().clone();
        match test.first().map(String::as_str) {
            Some("CMD" | "CMD-SHELL") if test.len() >= 2 => {}
            Some("NONE") if test.len() == 1 => {}
            _ => {
                cx.err(h.test.span(), "healthcheck `test` must be [\"CMD\", ...], [\"CMD-SHELL\", \"command\"] or [\"NONE\"]")
                    .label("not a health check test");
            }
        }
        let mut dur = |v: &Option<Sp<String>>| {
            v.as_ref().and_then(|v| {
                let s = cx.s(v);
                values::parse_duration(&s)
                    .map_err(|e| {
                        cx.err(v.span(), e).label("not a duration");
                    })
                    .ok()
            })
        };
        let interval = dur(&h.interval);
        let timeout = dur(&h.timeout);
        let start_period = dur(&h.start_period);
        let retries = h.retries.as_ref().and_then(|r| match u32::try_from(*r.get()) {
            Ok(n) => Some(n),
            Err(_) => {
                cx.err(r.span(), "`retries` must be a number from 0 up");
                None
            }
        });
        Healthcheck {
            test,
            interval,
            timeout,
            start_period,
            retries,
        }
    });
    let timestamp = match &image.timestamp {
        None => DEFAULT_TIMESTAMP,
        Some(t) => match u64::try_from(*t.get()) {
            Ok(secs) if secs > MAX_TIMESTAMP => {
                cx.err(
                    t.span(),
                    format!("`timestamp` {secs} is after the year 9999"),
                )
                .label("too late")
                .help(format!(
                    "image configs record times as RFC 3339, with four-digit years: use at most {MAX_TIMESTAMP} (9999-12-31T23:59:59Z)"
                ));
                DEFAULT_TIMESTAMP
            }
            Ok(secs) => secs,
            Err(_) => {
                cx.err(
                    t.span(),
                    "`timestamp` must be seconds since 1970, not negative",
                );
                DEFAULT_TIMESTAMP
            }
        },
    };
    let (max_layers, max_layers_span) = match &image.max_layers {
        None => (DEFAULT_MAX_LAYERS, 0..0),
        Some(m) => match u32::try_from(*m.get()) {
            Ok(n) if n > LAYER_LIMIT => {
                cx.err(
                    m.span(),
                    format!("`max_layers` = {n} is over the limit of {LAYER_LIMIT} layers that every build enforces"),
                )
                .label("too many")
                .help(format!(
                    "Docker's graphdriver store stacks at most {LAYER_LIMIT} layers, base layers included: set `max_layers` to {LAYER_LIMIT} or less"
                ));
                (LAYER_LIMIT, m.span())
            }
            Ok(n) if n >= 1 => (n, m.span()),
            _ => {
                cx.err(m.span(), "`max_layers` must be at least 1");
                (DEFAULT_MAX_LAYERS, m.span())
            }
        },
    };
    let cache_namespace = match &image.cache_namespace {
        None => DEFAULT_CACHE_NAMESPACE.to_string(),
        Some(n) => {
            let s = cx.s(n);
            if s.is_empty() || s.contains(char::is_whitespace) {
                cx.err(n.span(), "`cache_namespace` must be a non-empty word");
            }
            s
        }
    };
    let compression = match &image.compression {
        None => LayerCompression::Auto,
        Some(c) => {
            let c = compression_value(&mut cx, c);
            if c == LayerCompression::Zstd {
                let span = image.compression.as_ref().map(Sp::span);
                cx.diags.push(
                    Diag::warning(
                        cx.src,
                        span,
                        "zstd layers cannot be pulled by Docker 20.10 or containerd before 1.5",
                    )
                    .label("every layer zstd")
                    .help("use zstd where every engine that pulls the image is Docker 23+ (containerd 1.5+, BuildKit 0.10+, Podman 3+), or set it per layer"),
                );
            }
            c
        }
    };
    let mut img = Image {
        from,
        from_span,
        workdir,
        user: cx.opt(&image.user),
        entrypoint: cx.list(&image.entrypoint),
        cmd: cx.list(&image.cmd),
        env,
        labels,
        expose,
        volumes,
        stop_signal: cx.opt(&image.stop_signal),
        healthcheck,
        timestamp,
        max_layers,
        max_layers_span,
        cache_namespace,
        compression,
    };

    // Target overrides.
    if let Some(t) = selected.as_ref().and_then(|t| raw.target.get(t)) {
        let t = t.get();
        if let Some(e) = cx.list(&t.entrypoint) {
            img.entrypoint = Some(e);
        }
        if let Some(c) = cx.list(&t.cmd) {
            img.cmd = Some(c);
        }
        if let Some(u) = cx.opt(&t.user) {
            img.user = Some(u);
        }
        if let Some(w) = &t.workdir {
            img.workdir = Some(cx.abs(w, "workdir"));
        }
        let mut env = std::mem::take(&mut img.env);
        cx.env(&t.env, &mut env);
        img.env = env;
        for (k, v) in &t.labels {
            let value = cx.s(v);
            img.labels.insert(k.clone(), value);
        }
    }

    // Layers: every layer is checked; the target's are kept.
    let mut names: BTreeMap<String, Range<usize>> = BTreeMap::new();
    let mut layers = Vec::new();
    // Stages read by any layer of any target (for the unused-stage warning).
    let mut stages_read: BTreeSet<String> = BTreeSet::new();
    for layer in &raw.layer {
        let l = layer.get();
        let name = l.name.get().clone();
        if !values::is_layer_name(&name) {
            cx.err(l.name.span(), format!("`{name}` is not a valid layer name"))
                .label("invalid name")
                .help("layer names match [a-z0-9][a-z0-9._-]*, e.g. \"models\" or \"py-deps\"");
        } else if let Some(first) = names.get(&name) {
            let (line, _) = src.line_col(first.start);
            cx.err(l.name.span(), format!("duplicate layer name `{name}`"))
                .label("used again here")
                .help(format!(
                    "the first layer named `{name}` is on line {line}; layer names are unique"
                ));
        } else {
            names.insert(name.clone(), l.name.span());
        }
        let in_target = match &l.targets {
            None => true,
            Some(ts) => {
                for t in ts {
                    if !raw.target.contains_key(t.get()) {
                        let help = match nearest(t.get(), &target_names) {
                            Some(best) => format!("did you mean `{best}`?"),
                            None => format!("declare it with a `[target.{}]` table", t.get()),
                        };
                        cx.err(t.span(), format!("unknown target `{}`", t.get()))
                            .label("no [target] of this name")
                            .help(help);
                    }
                }
                selected
                    .as_ref()
                    .is_some_and(|s| ts.iter().any(|t| t.get() == s))
            }
        };
        let kind = resolve_layer(&mut cx, l, layer.span());
        if let Some(kind) = &kind {
            stages_read.extend(kind.stages_used());
        }
        if let (true, Some(kind)) = (in_target, kind) {
            layers.push(Layer {
                name,
                span: layer.span(),
                name_span: l.name.span(),
                kind,
            });
        }
    }

    // The layer budget without splits (docs/design.md §6; the plan counts splits).
    if layers.len() > img.max_layers as usize {
        let span = layers[img.max_layers as usize].name_span.clone();
        let max = img.max_layers;
        cx.err(
            span,
            format!(
                "the target has {} layers, over `max_layers` = {max}",
                layers.len()
            ),
        )
        .label("over the budget from here")
        .help(
            "merge layers, or raise `max_layers` in [image] (at most 125 with the base's layers)",
        );
    }

    let (stages, stage_bases) =
        resolve_stages(&mut cx, &raw.stage, &stages_read, &layers, &mut warnings);

    let Cx { diags, .. } = cx;
    if diags.iter().any(Diag::is_error) {
        let mut all = diags;
        all.sort_by_key(|d| (!d.is_error(), d.span.as_ref().map_or(0, |s| s.start)));
        all.extend(warnings);
        return Err(all);
    }
    warnings.extend(diags);
    Ok((
        ResolvedSpec {
            source: src.clone(),
            context: opts.context.clone(),
            target: selected,
            platform,
            platforms,
            args,
            image: img,
            layers,
            stages,
            stage_bases,
        },
        warnings,
    ))
}

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

fn resolve_layer(cx: &mut Cx<'_>, l: &RawLayer, span: Range<usize>) -> Option<LayerKind> {
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
struct RunKeys<'a> {
    run: &'a Sp<RunCommand>,
    inputs: &'a Option<Vec<Sp<String>>>,
    inputs_writable: &'a Option<Sp<bool>>,
    normalize: &'a Option<Sp<bool>>,
    cache: &'a Option<Vec<Sp<RawCache>>>,
    env: &'a Option<BTreeMap<String, Sp<String>>>,
    user: &'a Option<Sp<String>>,
    workdir: &'a Option<Sp<String>>,
    network: &'a Option<Sp<String>>,
    secrets: &'a Option<Vec<Sp<RawSecret>>>,
    ssh: &'a Option<Sp<RawSsh>>,
}

fn resolve_run(cx: &mut Cx<'_>, k: &RunKeys<'_>) -> RunLayer {
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

/// Resolves every `[[stage]]` (so every error shows), reports duplicate
/// names, cycles and stages no layer reads, and returns the stages the
/// target's `layers` need, in spec order, with every stage's image base.
fn resolve_stages(
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

/// A `compression` value; an unknown one is a spanned error (and `auto`).
fn compression_value(cx: &mut Cx<'_>, v: &Sp<String>) -> LayerCompression {
    let s = cx.s(v);
    LayerCompression::parse(&s).unwrap_or_else(|| {
        let nearest = LayerCompression::NAMES
            .iter()
            .min_by_key(|n| strsim::levenshtein(n, &s))
            .expect("names");
        cx.err(v.span(), format!("unknown compression `{s}`"))
            .label("not a compression")
            .help(format!(
                "use one of `auto`, `gzip`, `zstd`, `none` (did you mean `{nearest}`?)"
            ));
        LayerCompression::Auto
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::spec::{ImageRef, SpecError, resolve_all};

    const SPEC: &str = r#"version = 1
[args]
BASE = "python:3.11-slim"
[image]
from = "${BASE}"
platforms = ["linux/amd64", "linux/arm64"]
cmd = ["serve"]
env = { A = "1" }
[[layer]]
name = "models"
copy = [{ from = "m", to = "/app/models/" }]
[[layer]]
name = "app"
copy = [{ from = "bin/${TARGETARCH}/main", to = "/app/main", mode = "0755" }]
[[layer]]
name = "tools"
targets = ["dev"]
run = "pip install jupyter"
[target.dev]
cmd = ["--reload"]
env = { DEBUG = "1" }
"#;

    fn resolved(text: &str, opts: &ResolveOptions) -> Result<crate::spec::Loaded, SpecError> {
        resolve_all(&SpecSource::new(Path::new("strata.toml"), text), opts)
    }

    fn names(spec: &ResolvedSpec) -> Vec<&str> {
        spec.layers.iter().map(|l| l.name.as_str()).collect()
    }

    #[test]
    fn one_spec_per_platform_with_platform_args() {
        let loaded = resolved(SPEC, &ResolveOptions::default()).unwrap();
        let platforms: Vec<String> = loaded
            .specs
            .iter()
            .map(|s| s.platform.to_string())
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
        assert_eq!(names(&loaded.specs[0]), ["models", "app"]);
        let from = |s: &ResolvedSpec| match &s.layers[1].kind {
            LayerKind::Copy(c) => c.entries[0].from.clone(),
            LayerKind::Run(_) => panic!("app is a copy layer"),
        };
        assert_eq!(from(&loaded.specs[0]), "bin/amd64/main");
        assert_eq!(from(&loaded.specs[1]), "bin/arm64/main");
        let spec = &loaded.specs[0];
        assert_eq!(
            spec.image.from,
            BaseRef::Registry("python:3.11-slim".into())
        );
        assert_eq!(spec.image.cmd.as_deref(), Some(&["serve".to_string()][..]));
        assert_eq!(spec.image.timestamp, 315_619_200, "the frozen default");
        let LayerKind::Copy(app) = &spec.layers[1].kind else {
            panic!("app is a copy layer")
        };
        assert_eq!(app.entries[0].to, "/app/main");
        assert_eq!(app.entries[0].mode, Some(0o755));
        assert_eq!((app.owner.uid, app.owner.gid), (0, 0));
    }

    #[test]
    fn a_target_adds_its_layers_and_overrides_the_config() {
        let opts = ResolveOptions {
            target: Some("dev".into()),
            platforms: vec![Platform::parse("linux/arm64").unwrap()],
            ..Default::default()
        };
        let loaded = resolved(SPEC, &opts).unwrap();
        assert_eq!(loaded.specs.len(), 1, "--platform wins over platforms");
        let spec = &loaded.specs[0];
        assert_eq!(names(spec), ["models", "app", "tools"]);
        assert_eq!(
            spec.image.cmd.as_deref(),
            Some(&["--reload".to_string()][..])
        );
        assert_eq!(spec.image.env.get("A").map(String::as_str), Some("1"));
        assert_eq!(spec.image.env.get("DEBUG").map(String::as_str), Some("1"));
    }

    #[test]
    fn build_args_override_declared_ones_and_local_bases_parse() {
        let opts = ResolveOptions {
            build_args: [("BASE".to_string(), "oci:base:v1".to_string())].into(),
            platforms: vec![Platform::parse("linux/amd64").unwrap()],
            ..Default::default()
        };
        let loaded = resolved(SPEC, &opts).unwrap();
        assert_eq!(
            loaded.specs[0].image.from,
            BaseRef::Local(ImageRef::OciLayout {
                path: "base".into(),
                tag: Some("v1".into())
            })
        );
    }

    #[test]
    fn errors_point_at_their_spans() {
        let err = resolved(
            &SPEC.replace("name = \"tools\"", "name = \"models\""),
            &ResolveOptions::default(),
        )
        .unwrap_err();
        let SpecError::Invalid { diagnostics } = err else {
            panic!("{err:?}")
        };
        assert!(
            diagnostics[0].message.contains("`models`"),
            "{:?}",
            diagnostics[0]
        );
        let err = resolved(
            "version = 2\n[image]\nfrom = \"scratch\"\n",
            &ResolveOptions::default(),
        )
        .unwrap_err();
        let SpecError::Invalid { diagnostics } = err else {
            panic!("{err:?}")
        };
        assert!(
            diagnostics[0]
                .message
                .contains("unsupported spec version 2"),
            "{:?}",
            diagnostics[0]
        );
        let unknown = ResolveOptions {
            target: Some("nope".into()),
            ..Default::default()
        };
        assert!(matches!(
            resolved(SPEC, &unknown).unwrap_err(),
            SpecError::UnknownTarget { .. }
        ));
    }
}
