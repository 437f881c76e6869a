//! The report's summary lines, across platforms and layers.

use super::cause::{explain, plural};
use super::*;

/// The summary lines: entry causes across layers (most entries first), then
/// compression-only layers, layers on one side, config fields.
pub(super) fn summarize(platforms: &[PlatformDiff], opts: Options, equal: bool) -> Vec<String> {
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
                // A run layer's causes stay apart from copy layers' (their
                // explanation names what the command wrote).
                let key = if l.run {
                    format!("{}\0{}", c.what, c.explanation)
                } else {
                    c.what.clone()
                };
                let e = causes.entry(key).or_default();
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
        .map(|(key, (count, mut layers))| {
            layers.dedup();
            let explanation = match key.split_once('\0') {
                // A run layer's: its own explanation, with the total count.
                Some((_, e)) => e
                    .split_once(' ')
                    .map_or_else(|| e.to_string(), |(_, rest)| format!("{count} {rest}")),
                None => explain(&key, count),
            };
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
