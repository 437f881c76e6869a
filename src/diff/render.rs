//! The readable report: the verdict and the causes first, then each level
//! (manifest, config, layers, entries) with `=` for equal and `≠` for
//! different. Colour only when asked (the CLI asks on a terminal without
//! `NO_COLOR`, docs/design.md §8).

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};
use serde_json::Value;

use super::layers::Packing;
use super::{LayerDiff, PlatformDiff, Report};

/// The first 12 hex digits of a digest.
fn short(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.chars().take(12).collect()
}

/// A byte count for people, as every strata command prints one:
/// indicatif's binary units (`1.36 KiB`).
fn human(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}

/// Entries shown per layer; `--format json` lists all of them.
pub(crate) const MAX_ENTRIES: usize = 20;

struct Paint(bool);

impl Paint {
    fn with(&self, color: AnsiColor, text: &str) -> String {
        if self.0 {
            let s = Style::new().fg_color(Some(color.into()));
            format!("{s}{text}{s:#}")
        } else {
            text.to_owned()
        }
    }
    fn bold(&self, text: &str) -> String {
        if self.0 {
            let s = Style::new().bold();
            format!("{s}{text}{s:#}")
        } else {
            text.to_owned()
        }
    }
}

/// How a blob is stored, in a few words:
/// `gzip level 9 (XFL 2, OS 255), 1.2 MiB`.
pub(crate) fn packing_text(p: &Packing) -> String {
    format!("{}, {}", packing_kind(p), human(p.size))
}

/// [`packing_text`] without the size.
pub(crate) fn packing_kind(p: &Packing) -> String {
    match &p.gzip {
        Some(g) => {
            let mut extra = String::new();
            if g.mtime != 0 {
                let _ = write!(extra, ", mtime {}", g.mtime);
            }
            if let Some(n) = &g.name {
                let _ = write!(extra, ", name {n:?}");
            }
            if let Some(c) = &g.comment {
                let _ = write!(extra, ", comment {c:?}");
            }
            if let Some(e) = g.extra_len {
                let _ = write!(extra, ", {e} extra bytes");
            }
            format!(
                "gzip level {} (XFL {}, OS {}{extra})",
                g.level_guess, g.xfl, g.os
            )
        }
        None => p.codec.to_owned(),
    }
}

fn digest_pair(a: Option<&str>, b: Option<&str>) -> String {
    let s = |d: Option<&str>| d.map_or_else(|| "-".to_owned(), short);
    if a == b {
        s(a)
    } else {
        format!("{} → {}", s(a), s(b))
    }
}

fn value(v: &Value) -> String {
    match v {
        Value::Null => "(absent)".to_owned(),
        Value::String(s) => format!("{s:?}"),
        Value::Object(m) if m.contains_key("sha256") => format!(
            "{} {}",
            m.get("size")
                .and_then(Value::as_u64)
                .map_or("-".into(), human),
            m.get("sha256")
                .and_then(Value::as_str)
                .map_or("-".into(), |d| d.to_owned())
        ),
        other => other.to_string(),
    }
}

/// A tar time for people: `981158400 (2001-02-03T00:00:00Z)`.
fn time(v: &Value) -> String {
    match v.as_str() {
        Some(t) => {
            let secs = t.split('.').next().and_then(|s| s.parse::<u64>().ok());
            match secs {
                Some(secs) => format!("{t} ({})", crate::oci::image::rfc3339(secs)),
                None => t.to_owned(),
            }
        }
        None => value(v),
    }
}

/// Renders the report as text.
pub(crate) fn text(r: &Report, color: bool) -> String {
    let p = Paint(color);
    let mut out = String::new();
    let _ = writeln!(out, "A: {}", r.images.a);
    let _ = writeln!(out, "B: {}", r.images.b);
    let verdict = if r.equal {
        p.with(AnsiColor::Green, "equal")
    } else {
        p.with(AnsiColor::Red, "different")
    };
    let _ = writeln!(out, "{} ({})", p.bold(&verdict), r.mode);
    for line in &r.summary {
        let _ = writeln!(out, "  {line}");
    }
    if r.index.a.is_some() || r.index.b.is_some() {
        let _ = writeln!(
            out,
            "\nindex {}",
            digest_pair(r.index.a.as_deref(), r.index.b.as_deref())
        );
    }
    for pd in &r.platforms {
        platform(&mut out, &p, pd);
    }
    out
}

fn mark(p: &Paint, equal: bool) -> String {
    if equal {
        p.with(AnsiColor::Green, "=")
    } else {
        p.with(AnsiColor::Red, "≠")
    }
}

fn platform(out: &mut String, p: &Paint, pd: &PlatformDiff) {
    let _ = writeln!(out, "\n{}", p.bold(&format!("platform {}", pd.platform)));
    if let Some(side) = pd.only_in {
        let _ = writeln!(out, "  only in {}", side.to_uppercase());
        return;
    }
    match (pd.manifest.a.as_deref(), pd.manifest.b.as_deref()) {
        (None, None) => {}
        // A docker archive has no manifest digest: nothing to compare, so
        // neither `=` nor `≠` (an equal verdict above must not meet a `≠`).
        (Some(d), None) | (None, Some(d)) => {
            let side = if pd.manifest.a.is_some() { 'B' } else { 'A' };
            let _ = writeln!(
                out,
                "  · manifest {}  ({side} has no manifest: a docker archive)",
                short(d)
            );
        }
        (a, b) => {
            let _ = writeln!(out, "  {} manifest {}", mark(p, a == b), digest_pair(a, b));
        }
    }
    let _ = writeln!(
        out,
        "  {} config   {}",
        mark(p, pd.config.a == pd.config.b),
        digest_pair(pd.config.a.as_deref(), pd.config.b.as_deref())
    );
    for f in &pd.config_fields {
        let _ = writeln!(out, "      {}: {} → {}", f.path, value(&f.a), value(&f.b));
    }
    let width = pd
        .layers
        .iter()
        .map(|l| l.name.chars().count())
        .max()
        .unwrap_or(0);
    for l in &pd.layers {
        layer(out, p, l, width);
    }
}

fn layer(out: &mut String, p: &Paint, l: &LayerDiff, width: usize) {
    let (m, what) = match l.status {
        "equal" => (
            mark(p, true),
            digest_pair(l.digest.a.as_deref(), l.digest.b.as_deref()),
        ),
        "compression" => {
            let pk = l.packing.as_ref().expect("compression pairs have packings");
            (
                p.with(AnsiColor::Yellow, "≈"),
                format!(
                    "compression only, diffID {} equal: {} → {}",
                    short(l.diff_id.a.as_deref().unwrap_or("")),
                    packing_text(&pk.a),
                    packing_text(&pk.b)
                ),
            )
        }
        "same_files" => (
            p.with(AnsiColor::Yellow, "≈"),
            format!(
                "same files; diffID {}",
                digest_pair(l.diff_id.a.as_deref(), l.diff_id.b.as_deref())
            ),
        ),
        "only_in_a" | "only_in_b" => (
            mark(p, false),
            format!("only in {}", l.status[8..].to_uppercase()),
        ),
        _ => (
            mark(p, false),
            format!(
                "diffID {}{}",
                digest_pair(l.diff_id.a.as_deref(), l.diff_id.b.as_deref()),
                l.entry_count
                    .as_ref()
                    .map(|c| format!(", {} / {} entries", c.a, c.b))
                    .unwrap_or_default()
            ),
        ),
    };
    let pos = match (l.index.a, l.index.b) {
        (Some(x), Some(y)) if x == y => format!("{x:>2}"),
        (x, y) => format!(
            "{}/{}",
            x.map_or("-".to_owned(), |x| x.to_string()),
            y.map_or("-".to_owned(), |y| y.to_string())
        ),
    };
    let _ = writeln!(out, "  {m} layer {pos} {:<width$}  {what}", l.name);
    for c in &l.causes {
        let _ = writeln!(out, "      {}", c.explanation);
    }
    for e in l.entries.iter().take(MAX_ENTRIES) {
        match e.only_in {
            Some(side) => {
                let what = if e.whiteout { "whiteout" } else { "entry" };
                let detail = e
                    .entry
                    .as_ref()
                    .map(|v| {
                        let mut s = v["type"].as_str().unwrap_or("").to_owned();
                        if let Some(d) = v.get("sha256").and_then(Value::as_str) {
                            let _ = write!(s, ", {} {d}", human(v["size"].as_u64().unwrap_or(0)));
                        }
                        s
                    })
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "        {} {}: {what} only in {} ({detail})",
                    p.with(AnsiColor::Red, "±"),
                    e.path,
                    side.to_uppercase()
                );
            }
            None => {
                for c in &e.changes {
                    let (va, vb) = if c.kind.is_time() {
                        (time(&c.a), time(&c.b))
                    } else {
                        (value(&c.a), value(&c.b))
                    };
                    let _ = writeln!(
                        out,
                        "        {} {} {}: {va} → {vb}",
                        p.with(AnsiColor::Red, "≠"),
                        e.path,
                        c.kind.name(),
                    );
                }
            }
        }
    }
    if l.entries.len() > MAX_ENTRIES {
        let _ = writeln!(
            out,
            "        … and {} more (`--format json` lists every entry)",
            l.entries.len() - MAX_ENTRIES
        );
    }
}
