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

pub(crate) mod config;
pub(crate) mod entries;
pub(crate) mod error;
pub(crate) mod layers;
pub(crate) mod render;
pub(crate) mod side;

mod cause;
mod summary;
#[cfg(test)]
mod tests;

use cause::{causes, shorten};
use summary::summarize;

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::Serialize;

pub(crate) use error::DiffError;
use error::Result;
use side::Side;

use crate::oci::base::{BaseImage, ImageRef, image_platforms, import_unverified};
use config::FieldDiff;
use entries::{EntryDiff, Kind};
use layers::{LayerName, Packing};

/// The JSON schema name of [`Report`].
pub(crate) const SCHEMA: &str = "strata.diff/v1";

/// What counts as a difference.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Options {
    /// Ignore timestamps, entry order, history and compression: do the two
    /// images hold the same files and settings?
    pub(crate) semantic: bool,
}

/// A value on each side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Pair<T> {
    /// Image A's.
    pub(crate) a: T,
    /// Image B's.
    pub(crate) b: T,
}

/// The whole comparison (`strata.diff/v1`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Report {
    /// `strata.diff/v1`.
    pub(crate) schema: &'static str,
    /// The images as given.
    pub(crate) images: Pair<String>,
    /// `exact` or `semantic`.
    pub(crate) mode: &'static str,
    /// Whether the images are equal under `mode`.
    pub(crate) equal: bool,
    /// The causes, most frequent first: the first line names the likely fix.
    pub(crate) summary: Vec<String>,
    /// The index each reference selects, where it selects one.
    pub(crate) index: Pair<Option<String>>,
    /// One comparison per platform.
    pub(crate) platforms: Vec<PlatformDiff>,
}

/// The two images of one platform.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct PlatformDiff {
    /// `os/arch[/variant]`.
    pub(crate) platform: String,
    /// `a` or `b` when only one image has this platform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) only_in: Option<&'static str>,
    /// Whether the two are equal under the mode.
    pub(crate) equal: bool,
    /// Manifest digests (none for a legacy docker archive).
    pub(crate) manifest: Pair<Option<String>>,
    /// Config digests.
    pub(crate) config: Pair<Option<String>>,
    /// Differing config fields (under `--semantic`, without times, history
    /// and diffIDs).
    pub(crate) config_fields: Vec<FieldDiff>,
    /// Layer pairs, bottom first.
    pub(crate) layers: Vec<LayerDiff>,
}

/// One layer of each image: lined up by strata layer ID where both
/// histories carry IDs, else by position ([`layers::align`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct LayerDiff {
    /// Position in each image, from 0 at the bottom (null on the side that
    /// lacks the layer).
    pub(crate) index: Pair<Option<usize>>,
    /// The strata layer ID from the history (A's, else B's), if any.
    pub(crate) id: Option<String>,
    /// A name for people: the ID, else the history's `created_by`.
    pub(crate) name: String,
    /// `equal`, `compression` (diffIDs equal), `content` (diffIDs differ),
    /// `same_files` (diffIDs differ, not under `--semantic`), `only_in_a`,
    /// `only_in_b`.
    pub(crate) status: &'static str,
    /// Blob digests.
    pub(crate) digest: Pair<Option<String>>,
    /// diffIDs.
    pub(crate) diff_id: Pair<Option<String>>,
    /// How each blob is stored, when the blobs differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) packing: Option<Pair<Packing>>,
    /// Entries in each tar, when the tars were read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) entry_count: Option<Pair<u32>>,
    /// The differing entries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) entries: Vec<EntryDiff>,
    /// Paths on both sides whose relative order differs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) moved: Vec<String>,
    /// The entry differences grouped by cause, most frequent first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) causes: Vec<Cause>,
    /// A command's output (a strata run layer or a Dockerfile `RUN`): its
    /// causes name what a command writes, not how files were copied.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) run: bool,
}

/// Entries that differ in the same way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Cause {
    /// What differs: kind names joined by `+` (`mtime`, `mode+mtime`), or
    /// `only_in_a`, `only_in_b`, `whiteout_only_in_a`, `whiteout_only_in_b`,
    /// `order`.
    pub(crate) what: String,
    /// How many entries.
    pub(crate) count: usize,
    /// What it means and the likely fix.
    pub(crate) explanation: String,
    /// Up to three of the paths.
    pub(crate) examples: Vec<String>,
}

/// Compares two sides (reads a daemon's image with `docker save`).
pub(crate) fn diff(a: &Side, b: &Side, opts: Options) -> Result<Report> {
    let (oa, ob) = rayon::join(|| a.open(), || b.open());
    let (oa, ob) = (oa?, ob?);
    diff_images(
        (&oa.image, &a.to_string()),
        (&ob.image, &b.to_string()),
        opts,
    )
}

/// Compares two images on disk; the labels name them in the report.
pub(crate) fn diff_images(
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
                let ta = layers::open_tar(la)?;
                let tb = layers::open_tar(lb)?;
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
            run: na.run || nb.run,
        };
        if let Some(w) = walked {
            d.entry_count = Some(Pair {
                a: w.counts.0,
                b: w.counts.1,
            });
            d.causes = causes(&w.entries, &w.moved, d.run);
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
