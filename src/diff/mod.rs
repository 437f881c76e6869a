//! `strata diff`: compare two images level by level (index → manifest per
//! platform → config → layers → tar entries) and say why their digests
//! differ, cause first. `docs/diff.md` describes the report.
//!
//! Every layer blob of both images is first checked against its digest (a
//! corrupt blob is trouble, not a difference). Layers whose blob digests
//! are equal are then not compared further; a pair whose diffIDs are equal
//! differs only in compression and is told apart by its first bytes; the
//! other pairs are streamed side by side ([`entries::walk`]), in parallel
//! across pairs.

pub mod config;
pub mod entries;
pub mod error;
pub mod layers;
pub mod render;
pub mod side;

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::Serialize;

pub use error::DiffError;
use error::Result;
use side::Side;

use crate::oci::base::{BaseImage, ImageRef, image_platforms, import_unverified};
use config::FieldDiff;
use entries::{EntryDiff, Kind};
use layers::{LayerName, Packing};

/// The JSON schema name of [`Report`].
pub const SCHEMA: &str = "strata.diff/v1";

/// What counts as a difference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Ignore timestamps, entry order, history and compression: do the two
    /// images hold the same files and settings?
    pub semantic: bool,
}

/// A value on each side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pair<T> {
    /// Image A's.
    pub a: T,
    /// Image B's.
    pub b: T,
}

/// The whole comparison (`strata.diff/v1`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// `strata.diff/v1`.
    pub schema: &'static str,
    /// The images as given.
    pub images: Pair<String>,
    /// `exact` or `semantic`.
    pub mode: &'static str,
    /// Whether the images are equal under `mode`.
    pub equal: bool,
    /// The causes, most frequent first: the first line names the likely fix.
    pub summary: Vec<String>,
    /// The index each reference selects, where it selects one.
    pub index: Pair<Option<String>>,
    /// One comparison per platform.
    pub platforms: Vec<PlatformDiff>,
}

/// The two images of one platform.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlatformDiff {
    /// `os/arch[/variant]`.
    pub platform: String,
    /// `a` or `b` when only one image has this platform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only_in: Option<&'static str>,
    /// Whether the two are equal under the mode.
    pub equal: bool,
    /// Manifest digests (none for a legacy docker archive).
    pub manifest: Pair<Option<String>>,
    /// Config digests.
    pub config: Pair<Option<String>>,
    /// Differing config fields (under `--semantic`, without times, history
    /// and diffIDs).
    pub config_fields: Vec<FieldDiff>,
    /// Layer pairs, bottom first.
    pub layers: Vec<LayerDiff>,
}

/// One layer of each image: lined up by strata layer ID where both
/// histories carry IDs, else by position ([`layers::align`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerDiff {
    /// Position in each image, from 0 at the bottom (null on the side that
    /// lacks the layer).
    pub index: Pair<Option<usize>>,
    /// The strata layer ID from the history (A's, else B's), if any.
    pub id: Option<String>,
    /// A name for people: the ID, else the history's `created_by`.
    pub name: String,
    /// `equal`, `compression` (diffIDs equal), `content` (diffIDs differ),
    /// `same_files` (diffIDs differ, not under `--semantic`), `only_in_a`,
    /// `only_in_b`.
    pub status: &'static str,
    /// Blob digests.
    pub digest: Pair<Option<String>>,
    /// diffIDs.
    pub diff_id: Pair<Option<String>>,
    /// How each blob is stored, when the blobs differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packing: Option<Pair<Packing>>,
    /// Entries in each tar, when the tars were read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry_count: Option<Pair<u32>>,
    /// The differing entries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<EntryDiff>,
    /// Paths on both sides whose relative order differs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub moved: Vec<String>,
    /// The entry differences grouped by cause, most frequent first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<Cause>,
}

/// Entries that differ in the same way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cause {
    /// What differs: kind names joined by `+` (`mtime`, `mode+mtime`), or
    /// `only_in_a`, `only_in_b`, `whiteout_only_in_a`, `whiteout_only_in_b`,
    /// `order`.
    pub what: String,
    /// How many entries.
    pub count: usize,
    /// What it means and the likely fix.
    pub explanation: String,
    /// Up to three of the paths.
    pub examples: Vec<String>,
}

/// Compares two sides (reads a daemon's image with `docker save`).
pub fn diff(a: &Side, b: &Side, opts: Options) -> Result<Report> {
    let (oa, ob) = rayon::join(|| a.open(), || b.open());
    let (oa, ob) = (oa?, ob?);
    diff_images(
        (&oa.image, &a.to_string()),
        (&ob.image, &b.to_string()),
        opts,
    )
}

/// Compares two images on disk; the labels name them in the report.
pub fn diff_images(
    (a, label_a): (&ImageRef, &str),
    (b, label_b): (&ImageRef, &str),
    opts: Options,
) -> Result<Report> {
    let (index_a, by_platform_a) = load(a)?;
    let (index_b, by_platform_b) = load(b)?;
    let mut keys: Vec<&String> = by_platform_a.keys().chain(by_platform_b.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut platforms = Vec::new();
    // One image on each side: a pair, whatever their platforms (the config
    // diff shows `os` and `architecture` when they differ).
    if let ([(ka, ia)], [(kb, ib)]) = (
        by_platform_a.iter().collect::<Vec<_>>().as_slice(),
        by_platform_b.iter().collect::<Vec<_>>().as_slice(),
    ) && ka != kb
    {
        let label = format!("{ka} / {kb}");
        platforms.push(compare_images(&label, ia, ib, opts)?);
        keys.clear();
    }
    for k in keys {
        platforms.push(match (by_platform_a.get(k), by_platform_b.get(k)) {
            (Some(ia), Some(ib)) => compare_images(k, ia, ib, opts)?,
            (ia, ib) => PlatformDiff {
                platform: k.clone(),
                only_in: Some(if ia.is_some() { "a" } else { "b" }),
                equal: false,
                manifest: Pair {
                    a: ia.and_then(|i| i.manifest_digest.as_ref().map(ToString::to_string)),
                    b: ib.and_then(|i| i.manifest_digest.as_ref().map(ToString::to_string)),
                },
                config: Pair {
                    a: ia.map(|i| i.config_digest.to_string()),
                    b: ib.map(|i| i.config_digest.to_string()),
                },
                config_fields: Vec::new(),
                layers: Vec::new(),
            },
        });
    }
    let equal = platforms.iter().all(|p| p.equal);
    let summary = summarize(&platforms, opts, equal);
    Ok(Report {
        schema: SCHEMA,
        images: Pair {
            a: label_a.to_owned(),
            b: label_b.to_owned(),
        },
        mode: if opts.semantic { "semantic" } else { "exact" },
        equal,
        summary,
        index: Pair {
            a: index_a.map(|d| d.to_string()),
            b: index_b.map(|d| d.to_string()),
        },
        platforms,
    })
}

type Loaded = (Option<crate::oci::Digest>, BTreeMap<String, BaseImage>);

/// Every platform's image of a reference, layers unread.
fn load(r: &ImageRef) -> Result<Loaded> {
    let (index, platforms) = image_platforms(r)?;
    let mut out = BTreeMap::new();
    if platforms.is_empty() {
        let img = import_unverified(r, None)?;
        out.insert(img.platform.to_string(), img);
    } else {
        for p in &platforms {
            let img = import_unverified(r, Some(p))?;
            out.insert(p.to_string(), img);
        }
    }
    Ok((index, out))
}

/// What to do with a layer pair.
enum Job<'a> {
    Equal,
    Compression,
    Walk(
        &'a crate::oci::base::BaseLayer,
        &'a crate::oci::base::BaseLayer,
    ),
    OnlyIn(&'static str),
}

fn compare_images(
    platform: &str,
    a: &BaseImage,
    b: &BaseImage,
    opts: Options,
) -> Result<PlatformDiff> {
    let ignored: &[&str] = if opts.semantic {
        config::SEMANTIC_IGNORED
    } else {
        &[]
    };
    // No byte is trusted: every layer blob of both sides must match its
    // digest before anything is compared (a corrupt blob is trouble, exit 2,
    // not a difference).
    a.layers
        .par_iter()
        .map(|l| (l, &a.location))
        .chain(b.layers.par_iter().map(|l| (l, &b.location)))
        .try_for_each(|(l, location)| layers::verify(l, location))?;
    let config_fields = config::diff_json(&a.config, &b.config, ignored);
    let (names_a, names_b) = (
        layers::layer_names(&a.history, a.layers.len()),
        layers::layer_names(&b.history, b.layers.len()),
    );
    let rows = layers::align(&names_a, &names_b);
    let n = rows.len();
    let jobs: Vec<Job<'_>> = rows
        .iter()
        .map(
            |&(i, j)| match (i.map(|i| &a.layers[i]), j.map(|j| &b.layers[j])) {
                (Some(la), Some(lb)) if la.descriptor.digest == lb.descriptor.digest => Job::Equal,
                (Some(la), Some(lb)) if la.diff_id == lb.diff_id => Job::Compression,
                (Some(la), Some(lb)) => Job::Walk(la, lb),
                (Some(_), None) => Job::OnlyIn("a"),
                _ => Job::OnlyIn("b"),
            },
        )
        .collect();
    // The expensive part: differing layer pairs, streamed in parallel.
    let ignore = move |k: Kind| opts.semantic && k.is_time();
    let walked: Vec<Option<entries::Walked>> = jobs
        .par_iter()
        .map(|j| match j {
            Job::Walk(la, lb) => {
                let ta = layers::open_tar(la, &a.location)?;
                let tb = layers::open_tar(lb, &b.location)?;
                entries::walk(ta, tb, &ignore)
                    .map(Some)
                    .map_err(|e| DiffError::Layer {
                        location: format!("{} and {}", a.location, b.location),
                        digest: format!("{} / {}", la.descriptor.digest, lb.descriptor.digest),
                        reason: e.to_string(),
                    })
            }
            _ => Ok(None),
        })
        .collect::<Result<_>>()?;
    let mut layer_diffs = Vec::with_capacity(n);
    for ((job, walked), &(i, j)) in jobs.iter().zip(walked).zip(&rows) {
        let (la, lb) = (i.map(|i| &a.layers[i]), j.map(|j| &b.layers[j]));
        let none = LayerName::default();
        let (na, nb) = (
            i.map_or(&none, |i| &names_a[i]),
            j.map_or(&none, |j| &names_b[j]),
        );
        let id = na.id.clone().or_else(|| nb.id.clone());
        let name = id
            .clone()
            .or_else(|| {
                na.created_by
                    .clone()
                    .or_else(|| nb.created_by.clone())
                    .map(|c| shorten(&c))
            })
            .unwrap_or_else(|| format!("layer {}", i.or(j).unwrap_or(0)));
        let packing = match (job, la, lb) {
            (Job::Compression | Job::Walk(..), Some(la), Some(lb)) => Some(Pair {
                a: layers::packing(la)?,
                b: layers::packing(lb)?,
            }),
            _ => None,
        };
        let mut d = LayerDiff {
            index: Pair { a: i, b: j },
            id,
            name,
            status: match job {
                Job::Equal => "equal",
                Job::Compression => "compression",
                Job::Walk(..) => "content",
                Job::OnlyIn("a") => "only_in_a",
                Job::OnlyIn(_) => "only_in_b",
            },
            digest: Pair {
                a: la.map(|l| l.descriptor.digest.to_string()),
                b: lb.map(|l| l.descriptor.digest.to_string()),
            },
            diff_id: Pair {
                a: la.map(|l| l.diff_id.to_string()),
                b: lb.map(|l| l.diff_id.to_string()),
            },
            packing,
            entry_count: None,
            entries: Vec::new(),
            moved: Vec::new(),
            causes: Vec::new(),
        };
        if let Some(w) = walked {
            d.entry_count = Some(Pair {
                a: w.counts.0,
                b: w.counts.1,
            });
            d.causes = causes(&w.entries, &w.moved);
            if w.entries.is_empty() && w.moved.is_empty() {
                d.status = "same_files";
            }
            d.entries = w.entries;
            d.moved = w.moved;
        }
        layer_diffs.push(d);
    }
    let layers_equal = layer_diffs.iter().all(|l| match l.status {
        "equal" => true,
        "compression" | "same_files" => opts.semantic,
        _ => false,
    });
    let equal = if opts.semantic {
        config_fields.is_empty() && layers_equal
    } else {
        let manifests_equal = match (&a.manifest_digest, &b.manifest_digest) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        };
        manifests_equal && a.config_digest == b.config_digest && layers_equal
    };
    Ok(PlatformDiff {
        platform: platform.to_owned(),
        only_in: None,
        equal,
        manifest: Pair {
            a: a.manifest_digest.as_ref().map(ToString::to_string),
            b: b.manifest_digest.as_ref().map(ToString::to_string),
        },
        config: Pair {
            a: Some(a.config_digest.to_string()),
            b: Some(b.config_digest.to_string()),
        },
        config_fields,
        layers: layer_diffs,
    })
}

fn shorten(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(59).collect::<String>())
    } else {
        s.to_owned()
    }
}

fn hint(k: Kind) -> &'static str {
    match k {
        Kind::Content => "the files themselves changed",
        Kind::Type => {
            "paths changed type (a hard link in one checkout is a file in the other, or a file became a directory or symlink)"
        }
        Kind::Link => "link targets changed",
        Kind::Device => "device numbers changed",
        Kind::Owner => {
            "files were written with the builder's or the checkout's owner: set an explicit owner"
        }
        Kind::Mode => "permission bits came from the checkout (umask, exec bits): normalize modes",
        Kind::Names => {
            "the tar writer looked user and group names up on the build host: leave them empty"
        }
        Kind::Xattrs => {
            "extended attributes of the build host leaked in (SELinux labels, capabilities)"
        }
        Kind::Pax => "the tar writers differ (other PAX records)",
        Kind::Mtime => "the inputs were copied without a fixed timestamp",
        Kind::Atime | Kind::Ctime => {
            "the tar writer records access or change times (PAX atime/ctime): drop them"
        }
    }
}

/// Groups differing entries by what differs.
fn causes(entries: &[EntryDiff], moved: &[String]) -> Vec<Cause> {
    let mut groups: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for e in entries {
        let key = match e.only_in {
            Some(side) if e.whiteout => format!("whiteout_only_in_{side}"),
            Some(side) => format!("only_in_{side}"),
            None => {
                let mut kinds: Vec<Kind> = e.changes.iter().map(|c| c.kind).collect();
                kinds.sort();
                kinds.dedup();
                kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join("+")
            }
        };
        groups.entry(key).or_default().push(&e.path);
    }
    let mut out: Vec<Cause> = groups
        .into_iter()
        .map(|(what, paths)| Cause {
            explanation: explain(&what, paths.len()),
            count: paths.len(),
            examples: paths.iter().take(3).map(|p| (*p).to_owned()).collect(),
            what,
        })
        .collect();
    if !moved.is_empty() {
        out.push(Cause {
            what: "order".to_owned(),
            count: moved.len(),
            explanation: explain("order", moved.len()),
            examples: moved.iter().take(3).cloned().collect(),
        });
    }
    out.sort_by(|x, y| y.count.cmp(&x.count).then_with(|| x.what.cmp(&y.what)));
    out
}

/// What `n` entries differing in `what` (a [`Cause::what`]) mean.
fn explain(what: &str, n: usize) -> String {
    let (entries, verb) = if n == 1 {
        ("entry", "differs")
    } else {
        ("entries", "differ")
    };
    match what {
        "only_in_a" => format!("{n} {entries} only in A: files missing from B"),
        "only_in_b" => format!("{n} {entries} only in B: files added in B"),
        "whiteout_only_in_a" => format!(
            "{n} whiteout{} only in A: A's layer deletes files",
            plural(n)
        ),
        "whiteout_only_in_b" => format!(
            "{n} whiteout{} only in B: B's layer deletes files",
            plural(n)
        ),
        "order" => format!(
            "{n} {} in another order: the tar writer does not sort entries (directory read order)",
            if n == 1 { "entry is" } else { "entries are" }
        ),
        _ => {
            let kinds: Vec<Kind> = what.split('+').filter_map(Kind::from_name).collect();
            let first = kinds.first().copied().unwrap_or(Kind::Pax);
            let only = if kinds.len() == 1 || kinds.iter().all(|k| k.is_time()) {
                "only "
            } else {
                ""
            };
            format!(
                "{n} {entries} {verb} {only}in {}: {}",
                names(&kinds),
                hint(first)
            )
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn names(kinds: &[Kind]) -> String {
    kinds
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The summary lines: entry causes across layers (most entries first), then
/// compression-only layers, layers on one side, config fields.
fn summarize(platforms: &[PlatformDiff], opts: Options, equal: bool) -> Vec<String> {
    if equal {
        return vec![if opts.semantic {
            "the images hold the same files and settings (timestamps, entry order, history and compression ignored)".to_owned()
        } else {
            "the images are identical".to_owned()
        }];
    }
    let multi = platforms.len() > 1;
    let mut causes: BTreeMap<String, (usize, Vec<String>)> = BTreeMap::new();
    let mut rest = Vec::new();
    // Compression-only layers, by how each side is compressed.
    let mut compression: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in platforms {
        let on = if multi {
            format!(" on {}", p.platform)
        } else {
            String::new()
        };
        if let Some(side) = p.only_in {
            rest.push(format!(
                "platform {} is only in {}",
                p.platform,
                side.to_uppercase()
            ));
            continue;
        }
        for l in &p.layers {
            for c in &l.causes {
                let e = causes.entry(c.what.clone()).or_default();
                e.0 += c.count;
                e.1.push(format!("{}{on}", l.name));
            }
            match l.status {
                "compression" if !opts.semantic => {
                    let pk = l.packing.as_ref().expect("compression pairs have packings");
                    let how = format!(
                        "{} → {}",
                        render::packing_kind(&pk.a),
                        render::packing_kind(&pk.b)
                    );
                    compression
                        .entry(how)
                        .or_default()
                        .push(format!("{}{on}", l.name));
                }
                "same_files" if !opts.semantic => rest.push(format!(
                    "layer {}{on}: the tars differ but no entry does (padding or header encoding)",
                    l.name
                )),
                "only_in_a" | "only_in_b" => rest.push(format!(
                    "layer {}{on} is only in {}",
                    l.name,
                    &l.status[8..].to_uppercase()
                )),
                _ => {}
            }
        }
        if !p.config_fields.is_empty() {
            let mut tops: Vec<&str> = p
                .config_fields
                .iter()
                .map(|f| f.path.split('/').nth(1).unwrap_or(""))
                .collect();
            tops.dedup();
            rest.push(format!(
                "config{on}: {} field{} differ ({})",
                p.config_fields.len(),
                plural(p.config_fields.len()),
                tops.join(", ")
            ));
        } else if !opts.semantic && p.config.a != p.config.b {
            rest.push(format!("config{on}: the bytes differ, no field does"));
        }
    }
    let mut lines: Vec<(usize, String)> = causes
        .into_iter()
        .map(|(what, (count, mut layers))| {
            layers.dedup();
            let explanation = explain(&what, count);
            let (head, tail) = explanation.split_once(": ").unwrap_or((&explanation, ""));
            let shown: Vec<String> = layers.iter().take(3).cloned().collect();
            let more = if layers.len() > 3 {
                format!(" and {} more", layers.len() - 3)
            } else {
                String::new()
            };
            (
                count,
                format!(
                    "{head} (layer{} {}{more}): {tail}",
                    plural(layers.len()),
                    shown.join(", ")
                ),
            )
        })
        .collect();
    lines.sort_by(|x, y| y.0.cmp(&x.0).then_with(|| x.1.cmp(&y.1)));
    let mut out: Vec<String> = lines.into_iter().map(|(_, l)| l).collect();
    for (how, layers) in compression {
        let n = layers.len();
        let shown: Vec<&str> = layers.iter().take(3).map(String::as_str).collect();
        out.push(format!(
            "{n} layer{} differ{} only in compression, diffIDs equal ({}{}): {how}",
            plural(n),
            if n == 1 { "s" } else { "" },
            shown.join(", "),
            if n > 3 {
                format!(" and {} more", n - 3)
            } else {
                String::new()
            }
        ));
    }
    out.extend(rest);
    if out.is_empty() {
        out.push(
            "the manifests differ (media types or annotations); configs and layers are equal"
                .to_owned(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::Digest;
    use crate::oci::base::tests::multi_platform_layout;
    use crate::oci::compress::gzip_encoder;
    use crate::oci::image::{Descriptor, Platform, build_manifest, media};
    use crate::oci::layout::OciDir;
    use entries::tests::{T, file, tar_of};
    use std::io::Write;
    use std::path::Path;

    fn layout_ref(dir: &Path, tag: &str) -> ImageRef {
        format!("oci-layout:{}:{tag}", dir.display())
            .parse()
            .unwrap()
    }

    fn copy_dir(from: &Path, to: &Path) {
        fs_err::create_dir_all(to).unwrap();
        for e in fs_err::read_dir(from).unwrap() {
            let e = e.unwrap();
            let dest = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy_dir(&e.path(), &dest);
            } else {
                fs_err::copy(e.path(), dest).unwrap();
            }
        }
    }

    #[test]
    fn equal_layers_are_not_read_and_platforms_line_up() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        let (lower, _) = multi_platform_layout(&a);
        copy_dir(&a, &b);
        // B's copy of the shared lower blob is garbage: equal digests are
        // not trusted, every blob is checked before anything is compared.
        let mut gz = gzip_encoder(Vec::new());
        gz.write_all(&lower).unwrap();
        let blob = Digest::of(&gz.finish().unwrap());
        let path = b.join("blobs/sha256").join(blob.hex());
        let good = fs_err::read(&path).unwrap();
        fs_err::write(&path, b"garbage").unwrap();
        let e = diff_images(
            (&layout_ref(&a, "v1"), "A"),
            (&layout_ref(&b, "v1"), "B"),
            Options::default(),
        )
        .unwrap_err();
        assert!(matches!(e, error::DiffError::CorruptBlob { .. }), "{e}");
        assert!(e.to_string().contains(blob.as_str()), "{e}");
        fs_err::write(&path, good).unwrap();
        let r = diff_images(
            (&layout_ref(&a, "v1"), "A"),
            (&layout_ref(&b, "v1"), "B"),
            Options::default(),
        )
        .unwrap();
        assert!(r.equal, "{r:#?}");
        assert_eq!(r.summary, ["the images are identical"]);
        let names: Vec<&str> = r.platforms.iter().map(|p| p.platform.as_str()).collect();
        assert_eq!(names, ["linux/amd64", "linux/arm64"]);
        assert!(r.index.a.is_some() && r.index.a == r.index.b);
        assert!(
            r.platforms
                .iter()
                .all(|p| p.layers.iter().all(|l| l.status == "equal"))
        );
    }

    #[test]
    fn a_single_image_pairs_with_its_platform_and_names_the_cause() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        let (lower, _) = multi_platform_layout(&a);
        // B: amd64 only, the same lower layer, an upper layer whose files
        // differ in mtime only, and a strata history.
        let upper_a = tar_of(&[file("app/x", b"1"), file("app/y", b"2")]);
        let upper_b = tar_of(&[
            T {
                mtime: 1_700_000_000,
                ..file("app/x", b"1")
            },
            T {
                mtime: 1_700_000_000,
                ..file("app/y", b"2")
            },
        ]);
        let mut images = Vec::new();
        for (name, upper, arch) in [
            ("c", &upper_a, "amd64"),
            ("d", &upper_b, "amd64"),
            ("e", &upper_a, "arm64"),
        ] {
            let dir = OciDir::create(&tmp.path().join(name)).unwrap();
            let mut gz = gzip_encoder(Vec::new());
            gz.write_all(&lower).unwrap();
            let l = dir.write_blob(&gz.finish().unwrap()).unwrap();
            let u = dir.write_blob(upper).unwrap();
            let config = serde_json::json!({
                "architecture": arch, "os": "linux",
                "rootfs": {"type": "layers",
                           "diff_ids": [Digest::of(&lower), Digest::of(upper)]},
                "history": [{"created_by": "ADD base"},
                            {"created_by": "strata layer app"}],
            });
            let c = dir.write_json_blob(&config).unwrap();
            let m = build_manifest(
                Descriptor::new(media::CONFIG, c.digest, c.size),
                vec![
                    Descriptor::new(media::LAYER_GZIP, l.digest, l.size),
                    Descriptor::new(media::LAYER_TAR, u.digest, u.size),
                ],
            );
            let m = dir.write_json_blob(&m).unwrap();
            dir.set_tag(&Descriptor::new(media::MANIFEST, m.digest, m.size), "v1")
                .unwrap();
            images.push(layout_ref(&tmp.path().join(name), "v1"));
        }
        let r = diff_images(
            (&layout_ref(&a, "v1"), "A"),
            (&images[1], "D"),
            Options::default(),
        )
        .unwrap();
        assert!(!r.equal);
        assert_eq!(r.platforms[1].only_in, Some("a"), "arm64 is only in A");
        let amd = &r.platforms[0];
        assert_eq!(amd.layers[0].status, "equal");
        assert_eq!(amd.layers[1].status, "content");
        assert_eq!(
            amd.layers[1].id.as_deref(),
            Some("app"),
            "A's history names no strata layer: B's does"
        );

        let r = diff_images((&images[0], "C"), (&images[1], "D"), Options::default()).unwrap();
        assert!(!r.equal);
        assert_eq!(
            r.summary[0],
            "2 entries differ only in mtime (layer app): \
             the inputs were copied without a fixed timestamp"
        );
        let app = &r.platforms[0].layers[1];
        assert_eq!(app.id.as_deref(), Some("app"));
        assert_eq!(app.causes[0].examples, ["app/x", "app/y"]);
        assert_eq!(
            r.platforms[0].platform,
            Platform::parse("linux/amd64").unwrap().to_string()
        );
        let semantic = diff_images(
            (&images[0], "C"),
            (&images[1], "D"),
            Options { semantic: true },
        )
        .unwrap();
        assert!(semantic.equal, "{semantic:#?}");
        assert_eq!(semantic.platforms[0].layers[1].status, "same_files");
        // One image on each side: paired, whatever their platforms.
        let r2 = diff_images((&images[0], "C"), (&images[2], "E"), Options::default()).unwrap();
        assert_eq!(r2.platforms.len(), 1);
        assert_eq!(r2.platforms[0].platform, "linux/amd64 / linux/arm64");
        assert_eq!(r2.platforms[0].config_fields[0].path, "/architecture");
        assert!(r2.platforms[0].layers.iter().all(|l| l.status == "equal"));
        let text = render::text(&r, false);
        assert!(
            text.contains("≠ app/x mtime: 315619200 (1980-01-02T00:00:00Z) → 1700000000"),
            "{text}"
        );
    }
}
