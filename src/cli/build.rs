//! `strata build`: the embedded builder (no daemon).

use std::path::PathBuf;

use clap::Args;

use super::common::{cache_root, check_locked, refuse_run_layers};
use super::output::Progress;
use super::progress::BuildProgress;
use super::{SpecArgs, annotation, output, registry};
use crate::error::{Error, Result};
use crate::oci::OciError;
use crate::oci::base::ImageRef;
use crate::oci::build::{BuildRequest, build_observed, load_base};
use crate::oci::compress::Compression;
use crate::spec::BaseRef;

/// `strata build` flags.
#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// The spec and context.
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Where the image goes: `oci-layout:DIR[:TAG]` (also spelled
    /// `oci:DIR[:TAG]`, as skopeo does), `oci-archive:FILE[:TAG]`,
    /// `docker-archive:FILE[:NAME:TAG]` or `registry:REF` (a push).
    #[arg(short, long, value_name = "DEST")]
    pub output: Option<String>,
    /// The image reference to push to (with --push, the same as
    /// `--output registry:REF`).
    #[arg(short = 't', long, value_name = "REF")]
    pub tag: Option<String>,
    /// Push the image to the --tag reference.
    #[arg(long, requires = "tag")]
    pub push: bool,
    /// Reach this registry (`host[:port]`) over plain HTTP; repeatable.
    /// Loopback registries (localhost, 127.0.0.1) always are.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure_registry: Vec<String>,
    /// The cache root [default: $STRATA_CACHE_DIR, $XDG_CACHE_HOME/strata, ~/.cache/strata].
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Fail when the base has no pin in strata.lock or its pin drifted.
    #[arg(long)]
    pub locked: bool,
    /// Never contact a registry: a registry base must be pinned in
    /// strata.lock and already in the cache; pushing is refused.
    #[arg(long)]
    pub offline: bool,
    /// How to show progress on stderr: `auto` (live lines on a terminal,
    /// else `plain`), `tty`, `plain` (one line per layer as it finishes) or
    /// `quiet`.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = Progress::Auto, env = "STRATA_PROGRESS")]
    pub progress: Progress,
    /// Set a label in the image config (over the spec's `[image] labels`);
    /// repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Add an annotation, as buildx: `[TYPE[PLATFORM]:]KEY=VALUE`, TYPE
    /// `manifest` (the default), `manifest-descriptor` or, when several
    /// platforms are pushed, `index`; repeatable. Over the
    /// `org.opencontainers.image.base.*` annotations strata sets.
    #[arg(long = "annotation", value_name = "[TYPE:]KEY=VALUE")]
    pub annotation: Vec<String>,
    /// Print only the image digest (on stdout); the same as `--progress quiet`.
    #[arg(short, long, conflicts_with = "progress")]
    pub quiet: bool,
}

/// Every `--output` form, for errors.
const OUTPUT_FORMS: &str = "oci-layout:DIR[:TAG] (or oci:DIR[:TAG], skopeo's spelling), oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG], registry:REF";

/// Where a build goes.
enum Dest {
    /// A local layout or archive.
    Local(ImageRef),
    /// A registry reference to push to.
    Registry(String),
}

fn destination(args: &BuildArgs) -> Result<Dest> {
    match (&args.output, &args.tag, args.push) {
        (Some(_), Some(_), _) => Err(Error::Usage(
            "give either --output or --tag REF --push, not both".into(),
        )),
        (Some(o), None, _) => match o.strip_prefix("registry:") {
            Some("") => Err(Error::Usage("--output registry: needs a reference".into())),
            Some(r) => Ok(Dest::Registry(r.to_owned())),
            None => {
                let dest: ImageRef = o
                    .parse()
                    .map_err(|e| {
                        Error::Usage(format!("--output: {e}\n  accepted: {OUTPUT_FORMS}"))
                    })?;
                crate::oci::archive::check_output_name(&dest)
                    .map_err(|e| Error::Usage(format!("--output `{o}`: {e}")))?;
                Ok(Dest::Local(dest))
            }
        },
        (None, Some(t), true) => Ok(Dest::Registry(t.clone())),
        (None, Some(_), false) => Err(Error::Usage(
            "--tag names a registry image: add --push (the embedded builder has no local image store)".into(),
        )),
        (None, None, _) => Err(Error::Usage(
            "where should the image go? give --output DEST or --tag REF --push".into(),
        )),
    }
}

/// Builds, prints the manifest digest on stdout and one line per layer on
/// stderr. Several platforms give an OCI index of one manifest per platform
/// (in the order of the platforms), written to a layout or an OCI archive or
/// pushed (each manifest, then the index under the tag); the index digest is
/// printed.
pub fn run(args: &BuildArgs) -> Result<()> {
    output::set_progress(if args.quiet {
        Progress::Quiet
    } else {
        args.progress
    });
    let dest = destination(args)?;
    let opts = registry::Options {
        insecure: args.insecure_registry.clone(),
        offline: args.offline,
    };
    if let Dest::Registry(r) = &dest {
        crate::registry::parse_reference(r)?;
    }
    let annotations: Vec<annotation::Annotation> = args
        .annotation
        .iter()
        .map(|a| annotation::parse(a))
        .collect::<Result<_>>()?;
    let loaded = args.spec.load()?;
    let several = loaded.specs.len() > 1;
    let index_annotations = annotation::for_index(&annotations, several)?;
    let root = cache_root(args.cache_dir.as_ref());
    if let Dest::Local(output) = &dest {
        check_output_path(output, &root)?;
        if several && let ImageRef::DockerArchive { path, .. } = output {
            let platforms: Vec<String> = loaded
                .specs
                .iter()
                .map(|s| s.platform.to_string())
                .collect();
            return Err(Error::Input(format!(
                "--output docker-archive:{}: a docker archive holds one image per platform, not an index of {} platforms ({}): write them all with --output oci-layout:DIR[:TAG] or oci-archive:FILE[:TAG], push them with --output registry:REF, or pick one with --platform",
                path.display(),
                platforms.len(),
                platforms.join(", ")
            )));
        }
        if !several {
            let outcome = build_one(
                args,
                &loaded.specs[0],
                &annotations,
                &opts,
                &root,
                output,
                None,
            )?;
            output::note(format!("wrote {output}"));
            println!("{}", outcome.manifest.digest);
            return Ok(());
        }
    }
    // Several platforms, or a push: each platform is built into a scratch
    // layout in the cache root first.
    let dir = root.join("tmp");
    fs_err::create_dir_all(&dir).map_err(|e| Error::Io {
        path: dir.clone(),
        source: e,
    })?;
    let tmp = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(&dir)
        .map_err(|e| Error::Io {
            path: dir.clone(),
            source: e,
        })?;
    let user_output = match &dest {
        Dest::Local(o) => Some(o),
        Dest::Registry(_) => None,
    };
    let mut built = Vec::new();
    for spec in &loaded.specs {
        if several {
            output::note(format!("{}:", spec.platform));
        }
        let output = ImageRef::OciLayout {
            path: tmp.path().to_owned(),
            tag: Some(spec.platform.to_string().replace('/', "-")),
        };
        let outcome = build_one(args, spec, &annotations, &opts, &root, &output, user_output)?;
        built.push((spec, outcome));
    }
    let layout = crate::oci::layout::OciDir::open(tmp.path())?;
    let index = platform_index(args, &built, index_annotations)?;
    let target = match dest {
        Dest::Local(output) => {
            let blob = layout.write_json_blob(&index)?;
            let desc = crate::oci::image::Descriptor::new(
                crate::oci::image::media::INDEX,
                blob.digest,
                blob.size,
            );
            crate::oci::archive::write_output(&output, &layout, &desc)?;
            output::note(format!("wrote {output}"));
            println!("{}", desc.digest);
            return Ok(());
        }
        Dest::Registry(target) => target,
    };
    let r = crate::registry::parse_reference(&target)?;
    for (spec, outcome) in &built {
        let base_layers = layout_layers(&layout, &outcome.manifest)? - outcome.layers.len();
        let names: Vec<String> = (1..=base_layers)
            .map(|i| format!("base layer {i}"))
            .chain(outcome.layers.iter().map(|l| l.id.clone()))
            .collect();
        if !several {
            let digest = registry::push(&layout, &outcome.manifest, &names, &target, &opts, &root)?;
            println!("{digest}");
            return Ok(());
        }
        // Each platform's manifest by digest; the tag moves with the index.
        let by_digest = oci_client::Reference::with_digest(
            r.registry().to_owned(),
            r.repository().to_owned(),
            outcome.manifest.digest.to_string(),
        )
        .whole();
        output::note(format!("{}:", spec.platform));
        registry::push(&layout, &outcome.manifest, &names, &by_digest, &opts, &root)?;
    }
    let digest = registry::push_index(&index, &target, &opts)?;
    println!("{digest}");
    Ok(())
}

/// The index of the platforms' manifests, in build order, each with its
/// platform: the same bytes for a local output and a push. The
/// `org.opencontainers.image.*` labels that every platform's image has (from
/// the spec and `--label`) are the index's annotations too, as the OCI image
/// spec defines those keys for both: registries show an index's annotations
/// (source, description, version), not its images' labels.
fn platform_index(
    args: &BuildArgs,
    built: &[(&crate::spec::ResolvedSpec, crate::oci::build::BuildOutcome)],
    explicit: std::collections::BTreeMap<String, String>,
) -> Result<crate::oci::image::ImageIndex> {
    let mut index = crate::oci::image::ImageIndex::default();
    let mut common: Option<std::collections::BTreeMap<String, String>> = None;
    for (spec, outcome) in built {
        // The descriptor keeps its `manifest-descriptor:` annotations.
        let mut desc = outcome.manifest.clone();
        desc.platform = Some(spec.platform.clone());
        index.manifests.push(desc);
        let labels = with_labels(spec, &args.label)?.image.labels;
        let oci: std::collections::BTreeMap<String, String> = labels
            .into_iter()
            .filter(|(k, _)| k.starts_with("org.opencontainers.image."))
            .collect();
        common = Some(match common {
            None => oci,
            Some(c) => c
                .into_iter()
                .filter(|(k, v)| oci.get(k) == Some(v))
                .collect(),
        });
    }
    index.annotations = common.unwrap_or_default();
    // `--annotation index:` over the labels.
    index.annotations.extend(explicit);
    Ok(index)
}

/// `spec` with the `--label KEY=VALUE`s set over its labels.
fn with_labels(
    spec: &crate::spec::ResolvedSpec,
    labels: &[String],
) -> Result<crate::spec::ResolvedSpec> {
    let mut s = spec.clone();
    for l in labels {
        let (k, v) = l
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| Error::Usage(format!("--label `{l}` is not KEY=VALUE")))?;
        s.image.labels.insert(k.to_owned(), v.to_owned());
    }
    Ok(s)
}

/// Builds one platform into `output`, printing one line per layer.
fn build_one(
    args: &BuildArgs,
    spec: &crate::spec::ResolvedSpec,
    annotations: &[annotation::Annotation],
    opts: &registry::Options,
    root: &std::path::Path,
    output: &ImageRef,
    user_output: Option<&ImageRef>,
) -> Result<crate::oci::build::BuildOutcome> {
    refuse_run_layers(spec, &args.spec.spec_path(), &args.spec.context)?;
    let labelled;
    let spec = if args.label.is_empty() {
        spec
    } else {
        labelled = with_labels(spec, &args.label)?;
        &labelled
    };
    let registry_base = if matches!(spec.image.from, BaseRef::Registry(_)) {
        if args.locked {
            check_locked(spec, None)?;
        }
        registry::fetch_base(spec, root, opts)?
    } else {
        None
    };
    if args.locked && registry_base.is_none() {
        let current = load_base(spec)?.and_then(|b| b.manifest_digest.map(|d| d.to_string()));
        check_locked(spec, current)?;
    }
    let progress = BuildProgress::new();
    // The output (and, for a scratch layout, the output the user named)
    // is never an input.
    let own_output: Vec<PathBuf> = [Some(output), user_output]
        .into_iter()
        .flatten()
        .map(|o| match o {
            ImageRef::OciLayout { path, .. }
            | ImageRef::OciArchive { path, .. }
            | ImageRef::DockerArchive { path, .. } => path.clone(),
        })
        .collect();
    let plan = progress.hashing(
        || crate::plan::make::make_plan_excluding(spec, root, &own_output),
        |p| p.as_ref().ok().map(|p| p.hashing.clone()),
    )?;
    progress.layers(&plan.layers);
    if !plan.excluded.is_empty() {
        let list: Vec<String> = plan.excluded.iter().map(|p| format!("`{p}`")).collect();
        output::warn(format!(
            "leaving {} out of the context: strata's own output and cache are never inputs",
            list.join(", ")
        ));
    }
    output::diagnostics(&plan.warnings);
    for w in &plan.cache_warnings {
        output::warn(w);
    }
    let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => Some(
            v.parse::<u64>()
                .ok()
                .filter(|&t| t <= crate::spec::MAX_TIMESTAMP)
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "SOURCE_DATE_EPOCH `{v}` is not a number of seconds up to {} (the year 9999)",
                        crate::spec::MAX_TIMESTAMP
                    ))
                })?,
        ),
        _ => None,
    };
    let outcome = build_observed(
        &BuildRequest {
            spec,
            plan: &plan,
            output: output.clone(),
            cache_root: root.to_owned(),
            source_date_epoch,
            compression: Compression::Auto,
            registry_base,
            annotations: annotation::for_platform(annotations, &spec.platform),
        },
        &progress,
    )
    .inspect_err(|e| forget_changed(e, spec, root))?;
    progress.finish();
    for w in &outcome.warnings {
        output::warn(w);
    }
    Ok(outcome)
}

/// Refuses, before building, an output path that cannot work: inside the
/// cache root (it would be pruned with it, and a layout there could
/// overwrite the cache's own files), an archive onto a directory, a layout
/// onto a file.
fn check_output_path(output: &ImageRef, root: &std::path::Path) -> Result<()> {
    let path = match output {
        ImageRef::OciLayout { path, .. }
        | ImageRef::OciArchive { path, .. }
        | ImageRef::DockerArchive { path, .. } => path,
    };
    let bad = |reason: &str| {
        Err(Error::Oci(crate::oci::OciError::BadOutput {
            path: path.clone(),
            reason: reason.to_owned(),
        }))
    };
    match output {
        ImageRef::OciLayout { .. } if path.exists() && !path.is_dir() => {
            return bad(
                "is not a directory: an OCI layout is a directory (name a new or empty one)",
            );
        }
        ImageRef::OciArchive { .. } | ImageRef::DockerArchive { .. } if path.is_dir() => {
            return bad(
                "is a directory: an archive is a file (name a file, or use oci-layout: for a directory)",
            );
        }
        _ => {}
    }
    let (out, cache) = (resolved_path(path), resolved_path(root));
    if out.starts_with(&cache) {
        return Err(Error::Usage(format!(
            "--output `{}` is inside the cache root `{}`: `strata cache prune` would delete it; write the image elsewhere",
            path.display(),
            root.display()
        )));
    }
    Ok(())
}

/// `path` made absolute with symlinks resolved as far as it exists (the
/// rest appended as written).
fn resolved_path(path: &std::path::Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = fs_err::canonicalize(existing) {
            return rest.iter().rev().fold(real, |p, c| p.join(c));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return abs,
        }
    }
}

/// A file found not to hold the content hashed for its stat: its stat cache
/// entry must not answer for it again.
fn forget_changed(e: &OciError, spec: &crate::spec::ResolvedSpec, root: &std::path::Path) {
    use std::os::unix::ffi::OsStrExt;
    let OciError::ContentChanged { path } = e else {
        return;
    };
    let Ok(rel) = path.strip_prefix(&spec.context) else {
        return;
    };
    if let Ok((mut cache, _)) = crate::plan::statcache::StatCache::open(root, &spec.context) {
        cache.forget(rel.as_os_str().as_bytes());
        let _ = cache.save();
    }
}

/// The number of layers of the manifest `desc` in `layout`.
fn layout_layers(
    layout: &crate::oci::layout::OciDir,
    desc: &crate::oci::image::Descriptor,
) -> Result<usize> {
    let m: crate::oci::image::ImageManifest = layout.read_json_blob(&desc.digest)?;
    Ok(m.layers.len())
}
