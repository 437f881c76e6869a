//! Why entries differ: each kind's cause and hint, in the words the
//! report uses.

use super::*;

pub(super) fn shorten(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(59).collect::<String>())
    } else {
        s.to_owned()
    }
}

pub(super) fn hint(k: Kind) -> &'static str {
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

/// Groups differing entries by what differs; `run`: in a command's output.
pub(super) fn causes(entries: &[EntryDiff], moved: &[String], run: bool) -> Vec<Cause> {
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
            explanation: if run {
                explain_run(&what, &paths)
            } else {
                explain(&what, paths.len())
            },
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
pub(super) fn explain(what: &str, n: usize) -> String {
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

/// What the entries `paths` of a run layer differing in `what` mean: what
/// the command wrote, with a path of each kind.
fn explain_run(what: &str, paths: &[&str]) -> String {
    let n = paths.len();
    let entries = if n == 1 { "entry" } else { "entries" };
    let kinds: Vec<Kind> = what.split('+').filter_map(Kind::from_name).collect();
    if !kinds.is_empty() && kinds.iter().all(|k| k.is_time()) {
        return format!(
            "{n} {entries} {} only in {}: files written at build time (the layer was built with `normalize = false`, or not by strata's normalized run)",
            if n == 1 { "differs" } else { "differ" },
            names(&kinds)
        );
    }
    if !kinds.contains(&Kind::Content) {
        return explain(what, n);
    }
    // Content the command wrote: by the likely writer, one path of each.
    let mut pyc = Vec::new();
    let mut logs = Vec::new();
    let mut other = Vec::new();
    for p in paths {
        if p.ends_with(".pyc") {
            pyc.push(*p);
        } else if p.ends_with(".log") || p.contains("/log/") || p.contains("/logs/") {
            logs.push(*p);
        } else {
            other.push(*p);
        }
    }
    let mut parts = Vec::new();
    if let Some(p) = pyc.first() {
        parts.push(format!(
            "{} .pyc file{} compiled without SOURCE_DATE_EPOCH, with their source's build-time mtime ({p})",
            pyc.len(),
            plural(pyc.len())
        ));
    }
    if let Some(p) = logs.first() {
        parts.push(format!(
            "{} log{} with dates in {} ({p}): remove {} in the command",
            logs.len(),
            plural(logs.len()),
            if logs.len() == 1 { "it" } else { "them" },
            if logs.len() == 1 { "it" } else { "them" }
        ));
    }
    if let Some(p) = other.first() {
        parts.push(format!(
            "{} other file{} with build-time content: dates, random or host values ({p})",
            other.len(),
            plural(other.len())
        ));
    }
    format!(
        "{n} {entries} {} in {}: the command wrote other bytes: {}",
        if n == 1 { "differs" } else { "differ" },
        names(&kinds),
        parts.join("; ")
    )
}

pub(super) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

pub(super) fn names(kinds: &[Kind]) -> String {
    kinds
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}
