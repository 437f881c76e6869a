//! Registry pieces several subcommands share: fetching a registry base for
//! the embedded builder (by its `strata.lock` pin when there is one,
//! docs/design.md §5), and pushing a built image with per-blob lines and, on a
//! terminal, progress bars.

use std::path::Path;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};

use super::common::{human, short};
use super::output;
use crate::error::{Error, Result};
use crate::oci::Digest;
use crate::oci::base::ImageRef;
use crate::oci::image::Descriptor;
use crate::oci::layout::OciDir;
use crate::plan::lock::Lock;
pub(crate) use crate::registry::Options;
use crate::registry::known::KnownRepos;
use crate::registry::push::{BlobAction, Observer, PushBlob, image_blobs, push_image};
use crate::registry::{self, Registry, parse_reference, pull};
use crate::spec::{BaseRef, Platform, ResolvedSpec};

/// Opens a client for `r`'s registry, saying on stderr that the command
/// goes to the network and `why`, and printing its credential warnings.
/// Under `--offline` it fails instead (every command reaches registries
/// through here).
pub fn connect(r: &oci_client::Reference, opts: &Options, why: &str) -> Result<Registry> {
    Ok(open(r, opts, why)?)
}

fn open(r: &oci_client::Reference, opts: &Options, why: &str) -> registry::Result<Registry> {
    let reg = Registry::new(r, opts)?;
    output::note(format!("network: registry {}: {why}", reg.host()));
    for w in &reg.warnings {
        output::warn(w);
    }
    Ok(reg)
}

/// For a spec whose base is a registry reference: the pinned (or, without
/// a pin, freshly resolved) manifest for the spec's platform, fetched into
/// the cache root. `None` for other bases.
pub fn fetch_base(
    spec: &ResolvedSpec,
    cache_root: &Path,
    opts: &Options,
) -> Result<Option<ImageRef>> {
    let BaseRef::Registry(reference) = &spec.image.from else {
        return Ok(None);
    };
    let r = parse_reference(reference)?;
    let platform = spec.platform.to_string();
    let lock = Lock::read(&Lock::path_for(spec.source.path()))?.unwrap_or_default();
    let pinned = lock
        .get(reference)
        .filter(|p| !p.local)
        .and_then(|p| p.platforms.get(&platform))
        .map(|d| d.parse::<Digest>().map_err(crate::oci::OciError::from))
        .transpose()?;
    let reg: std::cell::OnceCell<Registry> = std::cell::OnceCell::new();
    let manifest = match pinned {
        Some(d) => d,
        None if opts.offline => {
            return Err(Error::Input(format!(
                "`{reference}` has no pin in strata.lock, and resolving it needs registry {} but --offline was given: pin it with `strata lock` first",
                registry::host_of(&r)
            )));
        }
        None => {
            let _ = reg.set(connect(
                &r,
                opts,
                &format!("resolving `{reference}`: it has no pin in strata.lock (pin it with `strata lock` to skip this lookup)"),
            )?);
            let client = reg.get().expect("just set");
            let resolved = pull::resolve(client, &r)?;
            let d = pick_platform(&resolved, reference, &spec.platform)?;
            output::warn(format!(
                "`{reference}` has no pin in strata.lock: using {d}; run `strata lock` to pin it"
            ));
            d
        }
    };
    let mut connect_once = || -> registry::Result<&Registry> {
        if reg.get().is_none() {
            let _ = reg.set(open(
                &r,
                opts,
                &format!("fetching the base `{reference}` (not in the cache yet)"),
            )?);
        }
        Ok(reg.get().expect("just set"))
    };
    let dir = pull::fetch_image(&mut connect_once, &r, &manifest, cache_root)?;
    Ok(Some(ImageRef::OciLayout {
        path: dir,
        tag: None,
    }))
}

/// The manifest digest of `platform` in a resolved reference.
pub fn pick_platform(
    resolved: &pull::Resolved,
    reference: &str,
    platform: &Platform,
) -> Result<Digest> {
    resolved.manifest_for(platform).copied().ok_or_else(|| {
        Error::Input(format!(
            "`{reference}` has no image for {platform}; it has: {}",
            resolved.platform_list()
        ))
    })
}

/// Per-blob lines on stderr, and a bar per upload on a terminal.
struct Lines {
    bars: indicatif::MultiProgress,
    open: std::sync::Mutex<std::collections::BTreeMap<String, ProgressBar>>,
}

impl Observer for Lines {
    fn uploading(&self, blob: &PushBlob) -> Arc<dyn Fn(u64) + Send + Sync> {
        if !output::progress_enabled() {
            return Arc::new(|_| {});
        }
        let bar = self.bars.add(ProgressBar::new(blob.size));
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_message(blob.what.clone());
        self.open
            .lock()
            .expect("bars lock")
            .insert(blob.digest.to_string(), bar.clone());
        Arc::new(move |n| bar.set_position(n))
    }

    fn done(&self, blob: &PushBlob, action: &BlobAction) {
        if let Some(bar) = self
            .open
            .lock()
            .expect("bars lock")
            .remove(&blob.digest.to_string())
        {
            bar.finish_and_clear();
            self.bars.remove(&bar);
        }
        let from = match action {
            BlobAction::Mounted { from } => format!("  (from {from})"),
            _ => String::new(),
        };
        let line = format!(
            "{}  {:<8}  {:>10}  {}{from}",
            blob.what,
            action.word(),
            human(blob.size),
            short(&blob.digest.to_string()),
        );
        self.bars.suspend(|| output::note(line));
    }
}

/// Pushes the manifest `desc` of `layout` to `target`; `names` label the
/// layers, bottom first. Returns the pushed manifest digest.
pub fn push(
    layout: &OciDir,
    desc: &Descriptor,
    names: &[String],
    target: &str,
    opts: &Options,
    cache_root: &Path,
) -> Result<Digest> {
    let r = parse_reference(target)?;
    let reg = connect(&r, opts, &format!("pushing `{target}`"))?;
    let (blobs, manifest) = image_blobs(layout, desc, names)?;
    let width = blobs.iter().map(|b| b.what.len()).max().unwrap_or(0);
    let blobs: Vec<PushBlob> = blobs
        .into_iter()
        .map(|mut b| {
            b.what = format!("{:<width$}", b.what);
            b
        })
        .collect();
    let mut known = KnownRepos::load(cache_root, reg.host());
    let lines = Lines {
        bars: indicatif::MultiProgress::with_draw_target(if output::progress_enabled() {
            indicatif::ProgressDrawTarget::stderr()
        } else {
            indicatif::ProgressDrawTarget::hidden()
        }),
        open: std::sync::Mutex::new(std::collections::BTreeMap::new()),
    };
    let pushed = push_image(
        &reg,
        &r,
        &blobs,
        &manifest,
        &desc.media_type,
        &mut known,
        &lines,
    )?;
    let (mut up, mut up_bytes) = (0, 0);
    for (b, a) in &pushed.blobs {
        if *a == BlobAction::Uploaded {
            up += 1;
            up_bytes += b.size;
        }
    }
    output::note(format!(
        "pushed {} ({up} blob{} uploaded, {})",
        r.whole(),
        if up == 1 { "" } else { "s" },
        human(up_bytes)
    ));
    Ok(pushed.digest)
}

/// Pushes an index (its manifests are in the repository already) under
/// `target`'s tag; returns its digest.
pub fn push_index(
    index: &crate::oci::image::ImageIndex,
    target: &str,
    opts: &Options,
) -> Result<Digest> {
    let r = parse_reference(target)?;
    let reg = connect(&r, opts, &format!("pushing the index `{target}`"))?;
    let bytes = crate::oci::layout::canonical_json(index)?;
    reg.login(&r, oci_client::RegistryOperation::Push)?;
    reg.put_manifest(&r, &bytes, crate::oci::image::media::INDEX)?;
    let digest = Digest::of(&bytes);
    output::note(format!(
        "pushed {} (index of {} platforms)",
        r.whole(),
        index.manifests.len()
    ));
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index lists `linux/arm64/v8`; a spec asks for `linux/arm64`
    /// (`arm64` without a variant is `v8`), and the other way round.
    #[test]
    fn platforms_match_with_arm64_as_v8() {
        let p = |s: &str| Platform::parse(s).unwrap();
        let (amd, arm) = (Digest::of(b"amd64"), Digest::of(b"arm64"));
        let resolved = pull::Resolved {
            digest: Digest::of(b"index"),
            platforms: [(p("linux/amd64"), amd), (p("linux/arm64/v8"), arm)].into(),
        };
        let pick = |s: &str| pick_platform(&resolved, "base", &p(s)).ok();
        assert_eq!(pick("linux/amd64"), Some(amd));
        assert_eq!(pick("linux/arm64"), Some(arm));
        assert_eq!(pick("linux/arm64/v8"), Some(arm));
        assert_eq!(pick("linux/arm64/v9"), None);
        assert_eq!(pick("linux/arm/v7"), None);
        let plain = pull::Resolved {
            digest: Digest::of(b"index"),
            platforms: [(p("linux/arm64"), arm)].into(),
        };
        assert_eq!(
            pick_platform(&plain, "base", &p("linux/arm64/v8")).ok(),
            Some(arm)
        );
    }
}
