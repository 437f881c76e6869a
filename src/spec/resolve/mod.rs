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

mod layers;
mod stages;
#[cfg(test)]
mod tests;

use layers::resolve_layer;
use stages::resolve_stages;

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
