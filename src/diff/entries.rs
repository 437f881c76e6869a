//! Inside a layer pair: both tars streamed side by side, entry by entry.
//!
//! Nothing is extracted and no layer is held in memory: each entry's content
//! is hashed as it streams past, and only per-entry metadata (with that
//! sha256) is kept, for entries met out of step (an entry the other tar has
//! not reached yet). Entries are matched by path; their order is compared
//! afterwards through the longest run of pairs in the same relative order.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};
use std::sync::mpsc;

use serde::Serialize;
use serde_json::{Value, json};

use crate::oci::Digest;
use crate::plan::sha256::hash_reader;

/// The kinds of difference between two entries of the same path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    /// Size or sha256 of a regular file's content.
    Content,
    /// Entry type (file, directory, symlink, …).
    Type,
    /// Symlink or hard link target.
    Link,
    /// Device numbers.
    Device,
    /// Numeric owner.
    Owner,
    /// Permission bits (including setuid, setgid, sticky).
    Mode,
    /// User and group names.
    Names,
    /// Extended attributes.
    Xattrs,
    /// Other PAX records.
    Pax,
    /// Modification time.
    Mtime,
    /// Access time.
    Atime,
    /// Status change time.
    Ctime,
}

impl Kind {
    /// The name used in reports and JSON.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Content => "content",
            Kind::Type => "type",
            Kind::Link => "link",
            Kind::Device => "device",
            Kind::Owner => "owner",
            Kind::Mode => "mode",
            Kind::Names => "names",
            Kind::Xattrs => "xattrs",
            Kind::Pax => "pax",
            Kind::Mtime => "mtime",
            Kind::Atime => "atime",
            Kind::Ctime => "ctime",
        }
    }

    /// The kind [`Kind::name`] names.
    pub(crate) fn from_name(name: &str) -> Option<Kind> {
        ALL_KINDS.iter().copied().find(|k| k.name() == name)
    }

    /// Timestamps: ignored by `--semantic`.
    pub(crate) fn is_time(self) -> bool {
        matches!(self, Kind::Mtime | Kind::Atime | Kind::Ctime)
    }
}

/// Every kind, most significant first.
pub(crate) const ALL_KINDS: [Kind; 12] = [
    Kind::Content,
    Kind::Type,
    Kind::Link,
    Kind::Device,
    Kind::Owner,
    Kind::Mode,
    Kind::Names,
    Kind::Xattrs,
    Kind::Pax,
    Kind::Mtime,
    Kind::Atime,
    Kind::Ctime,
];

/// What a tar says about one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Path without `./`, leading or trailing `/` (`.` for the root).
    pub(crate) path: String,
    /// Position in its tar, from 0.
    pub(crate) index: u32,
    /// `file`, `dir`, `symlink`, `hardlink`, `char`, `block`, `fifo` or the type byte.
    pub(crate) kind: String,
    /// Permission bits with setuid, setgid and sticky.
    pub(crate) mode: u32,
    /// Owner.
    pub(crate) uid: u64,
    /// Group.
    pub(crate) gid: u64,
    /// User name.
    pub(crate) uname: String,
    /// Group name.
    pub(crate) gname: String,
    /// Modification time, seconds (with a fraction when PAX gives one).
    pub(crate) mtime: String,
    /// Access time, where PAX or a GNU header records one.
    pub(crate) atime: Option<String>,
    /// Change time, where PAX or a GNU header records one.
    pub(crate) ctime: Option<String>,
    /// Content size (regular files).
    pub(crate) size: u64,
    /// Content sha256 (regular files).
    pub(crate) sha256: Option<Digest>,
    /// Symlink or hard link target.
    pub(crate) link: Option<String>,
    /// Device major and minor numbers.
    pub(crate) device: Option<(u32, u32)>,
    /// Extended attributes (`SCHILY.xattr.*`), values lossily decoded.
    pub(crate) xattrs: BTreeMap<String, String>,
    /// Every other PAX record.
    pub(crate) pax: BTreeMap<String, String>,
}

impl Meta {
    /// Whether this is a whiteout (`.wh.NAME` or `.wh..wh..opq`).
    pub(crate) fn is_whiteout(&self) -> bool {
        self.path
            .rsplit('/')
            .next()
            .is_some_and(|n| n.starts_with(".wh."))
    }

    /// A JSON summary for entries only on one side.
    pub(crate) fn summary(&self) -> Value {
        let mut v = json!({ "type": self.kind, "mode": format!("{:04o}", self.mode) });
        if let Some(d) = &self.sha256 {
            v["size"] = json!(self.size);
            v["sha256"] = json!(d.to_string());
        }
        if let Some(l) = &self.link {
            v["link"] = json!(l);
        }
        v
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Normalizes a tar entry name: no `./`, leading or trailing `/`.
fn entry_path(raw: &[u8]) -> String {
    let parts: Vec<&[u8]> = raw
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    if parts.is_empty() {
        ".".to_owned()
    } else {
        lossy(&parts.join(&b'/'))
    }
}

/// A PAX time (`1700000000.5`), normalized: no trailing zeros, no `.`.
fn pax_time(v: &[u8]) -> String {
    let s = lossy(v);
    match s.split_once('.') {
        Some((secs, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                secs.to_owned()
            } else {
                format!("{secs}.{frac}")
            }
        }
        None => s,
    }
}

fn kind_name(t: tar::EntryType) -> String {
    match t {
        tar::EntryType::Regular | tar::EntryType::Continuous => "file".into(),
        tar::EntryType::Directory => "dir".into(),
        tar::EntryType::Symlink => "symlink".into(),
        tar::EntryType::Link => "hardlink".into(),
        tar::EntryType::Char => "char".into(),
        tar::EntryType::Block => "block".into(),
        tar::EntryType::Fifo => "fifo".into(),
        other => format!("type {}", other.as_byte() as char),
    }
}

/// Reads one entry's metadata, hashing its content as it streams past.
pub(crate) fn read_meta<R: Read>(e: &mut tar::Entry<'_, R>, index: u32) -> io::Result<Meta> {
    let h = e.header().clone();
    let ty = h.entry_type();
    let mut m = Meta {
        path: entry_path(&e.path_bytes()),
        index,
        kind: kind_name(ty),
        mode: h.mode()? & 0o7777,
        uid: h.uid()?,
        gid: h.gid()?,
        uname: h.username_bytes().map(lossy).unwrap_or_default(),
        gname: h.groupname_bytes().map(lossy).unwrap_or_default(),
        mtime: h.mtime()?.to_string(),
        atime: None,
        ctime: None,
        size: 0,
        sha256: None,
        link: match ty {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                e.link_name_bytes().map(|l| lossy(&l))
            }
            _ => None,
        },
        device: match ty {
            tar::EntryType::Char | tar::EntryType::Block => Some((
                h.device_major()?.unwrap_or(0),
                h.device_minor()?.unwrap_or(0),
            )),
            _ => None,
        },
        xattrs: BTreeMap::new(),
        pax: BTreeMap::new(),
    };
    if let Some(gnu) = h.as_gnu() {
        let (a, c) = (gnu.atime().unwrap_or(0), gnu.ctime().unwrap_or(0));
        if a != 0 {
            m.atime = Some(a.to_string());
        }
        if c != 0 {
            m.ctime = Some(c.to_string());
        }
    }
    if let Some(pax) = e.pax_extensions()? {
        for rec in pax {
            let rec = rec?;
            let key = lossy(rec.key_bytes());
            let v = rec.value_bytes();
            match key.as_str() {
                // Already applied by the reader (path, link, size) or below.
                "path" | "linkpath" | "size" => {}
                "mtime" => m.mtime = pax_time(v),
                "atime" => m.atime = Some(pax_time(v)),
                "ctime" => m.ctime = Some(pax_time(v)),
                "uid" => m.uid = lossy(v).parse().unwrap_or(m.uid),
                "gid" => m.gid = lossy(v).parse().unwrap_or(m.gid),
                "uname" => m.uname = lossy(v),
                "gname" => m.gname = lossy(v),
                k if k.starts_with("SCHILY.xattr.") => {
                    m.xattrs
                        .insert(k["SCHILY.xattr.".len()..].to_owned(), lossy(v));
                }
                _ => {
                    m.pax.insert(key, lossy(v));
                }
            }
        }
    }
    if m.kind == "file" {
        let (d, n) = hash_reader(&mut *e)?;
        m.size = n;
        m.sha256 = Some(d);
    }
    Ok(m)
}

/// One difference in one field of an entry.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Change {
    /// The kind of difference.
    pub(crate) kind: Kind,
    /// A's value.
    pub(crate) a: Value,
    /// B's value.
    pub(crate) b: Value,
}

/// The field differences between two entries of one path (`a`, `b` order).
pub(crate) fn compare(a: &Meta, b: &Meta) -> Vec<Change> {
    let mut out = Vec::new();
    let mut push = |kind, va: Value, vb: Value| {
        if va != vb {
            out.push(Change { kind, a: va, b: vb });
        }
    };
    push(Kind::Type, json!(a.kind), json!(b.kind));
    if a.sha256.is_some() || b.sha256.is_some() {
        push(
            Kind::Content,
            json!({"size": a.size, "sha256": a.sha256.as_ref().map(ToString::to_string)}),
            json!({"size": b.size, "sha256": b.sha256.as_ref().map(ToString::to_string)}),
        );
    }
    push(Kind::Link, json!(a.link), json!(b.link));
    push(Kind::Device, json!(a.device), json!(b.device));
    push(
        Kind::Owner,
        json!(format!("{}:{}", a.uid, a.gid)),
        json!(format!("{}:{}", b.uid, b.gid)),
    );
    push(
        Kind::Mode,
        json!(format!("{:04o}", a.mode)),
        json!(format!("{:04o}", b.mode)),
    );
    push(
        Kind::Names,
        json!(format!("{}:{}", a.uname, a.gname)),
        json!(format!("{}:{}", b.uname, b.gname)),
    );
    push(Kind::Xattrs, json!(a.xattrs), json!(b.xattrs));
    push(Kind::Pax, json!(a.pax), json!(b.pax));
    push(Kind::Mtime, json!(a.mtime), json!(b.mtime));
    push(Kind::Atime, json!(a.atime), json!(b.atime));
    push(Kind::Ctime, json!(a.ctime), json!(b.ctime));
    out
}

/// An entry that differs between the two layers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct EntryDiff {
    /// The entry's path.
    pub(crate) path: String,
    /// `a` or `b` when only one layer has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) only_in: Option<&'static str>,
    /// Whether it is a whiteout (a deletion of a lower layer's file).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) whiteout: bool,
    /// The entry, for entries only on one side.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) entry: Option<Value>,
    /// The differing fields, for entries on both sides.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) changes: Vec<Change>,
}

/// The outcome of walking a layer pair.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Walked {
    /// Differing entries: pairs in A's order, then entries only in A, then
    /// entries only in B (each in tar order).
    pub(crate) entries: Vec<EntryDiff>,
    /// Paths present on both sides whose relative order differs, in A's order.
    pub(crate) moved: Vec<String>,
    /// Entries in A and in B.
    pub(crate) counts: (u32, u32),
}

/// Reads every entry of a tar (skipping global PAX headers) and sends its
/// metadata, numbered from 0; stops early when the receiver is gone.
fn read_all(r: impl Read, tx: &mpsc::SyncSender<io::Result<Meta>>) -> u32 {
    let mut n = 0u32;
    let mut archive = tar::Archive::new(r);
    let entries = match archive.entries() {
        Ok(e) => e,
        Err(e) => {
            let _ = tx.send(Err(e));
            return n;
        }
    };
    for e in entries {
        let meta = e.and_then(|mut e| {
            // Global PAX headers describe the archive, not an entry.
            if e.header().entry_type() == tar::EntryType::XGlobalHeader {
                return Ok(None);
            }
            read_meta(&mut e, n).map(Some)
        });
        match meta {
            Ok(None) => continue,
            Ok(Some(m)) => {
                n += 1;
                if tx.send(Ok(m)).is_err() {
                    return n;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return n;
            }
        }
    }
    n
}

/// Entries read ahead on each side, at most.
const READ_AHEAD: usize = 256;

/// Walks two tars side by side. `ignore` drops kinds of difference
/// (`--semantic` drops timestamps).
/// Each tar is read (decompressed and hashed) on its own thread, a few
/// hundred entries ahead at most; this thread matches them.
pub(crate) fn walk(
    a: impl Read + Send,
    b: impl Read + Send,
    ignore: &dyn Fn(Kind) -> bool,
) -> io::Result<Walked> {
    std::thread::scope(|scope| {
        let (txa, rxa) = mpsc::sync_channel(READ_AHEAD);
        let (txb, rxb) = mpsc::sync_channel(READ_AHEAD);
        let ha = scope.spawn(move || read_all(a, &txa));
        let hb = scope.spawn(move || read_all(b, &txb));
        let result = match_entries(&rxa, &rxb, ignore);
        // Let the readers stop if matching ended early on an error.
        drop((rxa, rxb));
        let na = ha.join().expect("tar reader thread");
        let nb = hb.join().expect("tar reader thread");
        result.map(|mut w| {
            w.counts = (na, nb);
            w
        })
    })
}

fn match_entries(
    ia: &mpsc::Receiver<io::Result<Meta>>,
    ib: &mpsc::Receiver<io::Result<Meta>>,
    ignore: &dyn Fn(Kind) -> bool,
) -> io::Result<Walked> {
    // A closed channel is the end of that tar.
    let next = |rx: &mpsc::Receiver<io::Result<Meta>>| rx.recv().ok().transpose();
    let mut pend_a: HashMap<String, Meta> = HashMap::new();
    let mut pend_b: HashMap<String, Meta> = HashMap::new();
    // (A index, B index, A-order diff) for every matched pair.
    let mut pairs: Vec<(u32, u32, String, Option<EntryDiff>)> = Vec::new();
    let mut matched = |x: Meta, y: Meta| {
        let changes: Vec<Change> = compare(&x, &y)
            .into_iter()
            .filter(|c| !ignore(c.kind))
            .collect();
        let d = (!changes.is_empty()).then(|| EntryDiff {
            whiteout: x.is_whiteout(),
            path: x.path.clone(),
            only_in: None,
            entry: None,
            changes,
        });
        pairs.push((x.index, y.index, x.path, d));
    };
    loop {
        let ea = next(ia)?;
        let eb = next(ib)?;
        match (ea, eb) {
            (None, None) => break,
            (Some(x), Some(y)) if x.path == y.path => matched(x, y),
            (ea, eb) => {
                if let Some(x) = ea {
                    match pend_b.remove(&x.path) {
                        Some(y) => matched(x, y),
                        None => {
                            pend_a.insert(x.path.clone(), x);
                        }
                    }
                }
                if let Some(y) = eb {
                    match pend_a.remove(&y.path) {
                        Some(x) => matched(x, y),
                        None => {
                            pend_b.insert(y.path.clone(), y);
                        }
                    }
                }
            }
        }
    }
    pairs.sort_by_key(|p| p.0);
    let moved = if ignore(Kind::Mtime) {
        // `--semantic` ignores order along with timestamps.
        Vec::new()
    } else {
        let keep = increasing_run(&pairs.iter().map(|p| p.1).collect::<Vec<_>>());
        pairs
            .iter()
            .zip(keep)
            .filter(|(_, k)| !k)
            .map(|(p, _)| p.2.clone())
            .collect()
    };
    let mut entries: Vec<EntryDiff> = pairs.into_iter().filter_map(|p| p.3).collect();
    for (pending, side) in [(pend_a, "a"), (pend_b, "b")] {
        let mut rest: Vec<Meta> = pending.into_values().collect();
        rest.sort_by_key(|m| m.index);
        entries.extend(rest.into_iter().map(|m| EntryDiff {
            whiteout: m.is_whiteout(),
            entry: Some(m.summary()),
            path: m.path,
            only_in: Some(side),
            changes: Vec::new(),
        }));
    }
    Ok(Walked {
        entries,
        moved,
        counts: (0, 0),
    })
}

/// Marks the members of one longest strictly increasing subsequence of `xs`
/// (O(n log n)); the others are the entries that moved.
fn increasing_run(xs: &[u32]) -> Vec<bool> {
    let mut tails: Vec<usize> = Vec::new(); // index into xs of the tail of each length
    let mut prev: Vec<Option<usize>> = vec![None; xs.len()];
    for (i, &x) in xs.iter().enumerate() {
        let pos = tails.partition_point(|&t| xs[t] < x);
        if pos > 0 {
            prev[i] = Some(tails[pos - 1]);
        }
        if pos == tails.len() {
            tails.push(i);
        } else {
            tails[pos] = i;
        }
    }
    let mut keep = vec![false; xs.len()];
    let mut cur = tails.last().copied();
    while let Some(i) = cur {
        keep[i] = true;
        cur = prev[i];
    }
    keep
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tar entry for tests: path, type, content or link, mode, uid, mtime.
    pub(crate) struct T<'a> {
        pub(crate) path: &'a str,
        pub(crate) ty: tar::EntryType,
        pub(crate) data: &'a [u8],
        pub(crate) mode: u32,
        pub(crate) uid: u64,
        pub(crate) mtime: u64,
        pub(crate) pax: &'a [(&'a str, &'a [u8])],
    }

    pub(crate) fn file<'a>(path: &'a str, data: &'a [u8]) -> T<'a> {
        T {
            path,
            ty: tar::EntryType::Regular,
            data,
            mode: 0o644,
            uid: 0,
            mtime: 315_619_200,
            pax: &[],
        }
    }

    pub(crate) fn tar_of(entries: &[T<'_>]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for t in entries {
            if !t.pax.is_empty() {
                b.append_pax_extensions(t.pax.iter().copied()).unwrap();
            }
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(t.ty);
            h.set_mode(t.mode);
            h.set_uid(t.uid);
            h.set_gid(0);
            h.set_mtime(t.mtime);
            if t.ty == tar::EntryType::Symlink || t.ty == tar::EntryType::Link {
                h.set_size(0);
                b.append_link(&mut h, t.path, std::str::from_utf8(t.data).unwrap())
                    .unwrap();
            } else {
                h.set_size(t.data.len() as u64);
                b.append_data(&mut h, t.path, t.data).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    fn run(a: &[T<'_>], b: &[T<'_>], semantic: bool) -> Walked {
        let (ta, tb) = (tar_of(a), tar_of(b));
        walk(&ta[..], &tb[..], &|k: Kind| semantic && k.is_time()).unwrap()
    }

    fn kinds(w: &Walked, path: &str) -> Vec<Kind> {
        w.entries
            .iter()
            .find(|e| e.path == path)
            .unwrap_or_else(|| panic!("{path} not in {w:?}"))
            .changes
            .iter()
            .map(|c| c.kind)
            .collect()
    }

    #[test]
    fn equal_tars_have_no_differences() {
        let t = [file("a", b"1"), file("b/c", b"2")];
        let w = run(&t, &t, false);
        assert_eq!(w.entries, []);
        assert_eq!(w.moved, Vec::<String>::new());
        assert_eq!(w.counts, (2, 2));
    }

    #[test]
    fn each_kind_of_difference_is_named() {
        let a = [
            file("./content", b"one"),
            file("mode", b"x"),
            file("owner", b"x"),
            file("time", b"x"),
            T {
                ty: tar::EntryType::Symlink,
                ..file("link", b"target-a")
            },
            T {
                pax: &[("SCHILY.xattr.user.k", b"1"), ("atime", b"5.50")],
                ..file("xattr", b"x")
            },
        ];
        let b = [
            file("content", b"two!"),
            T {
                mode: 0o755,
                ..file("mode", b"x")
            },
            T {
                uid: 1000,
                ..file("owner", b"x")
            },
            T {
                mtime: 1_700_000_000,
                ..file("time", b"x")
            },
            T {
                ty: tar::EntryType::Symlink,
                ..file("link", b"target-b")
            },
            T {
                pax: &[("SCHILY.xattr.user.k", b"2"), ("atime", b"5.5")],
                ..file("xattr", b"x")
            },
        ];
        let w = run(&a, &b, false);
        assert_eq!(kinds(&w, "content"), [Kind::Content]);
        let c = &w.entries[0].changes[0];
        assert_eq!(c.a["size"], 3);
        assert_eq!(c.b["size"], 4);
        assert_eq!(c.a["sha256"], Digest::of(b"one").to_string());
        assert_eq!(c.b["sha256"], Digest::of(b"two!").to_string());
        assert_eq!(kinds(&w, "mode"), [Kind::Mode]);
        assert_eq!(kinds(&w, "owner"), [Kind::Owner]);
        assert_eq!(kinds(&w, "time"), [Kind::Mtime]);
        assert_eq!(kinds(&w, "link"), [Kind::Link]);
        // `5.50` and `5.5` are the same time.
        assert_eq!(kinds(&w, "xattr"), [Kind::Xattrs]);
        let s = run(&a, &b, true);
        assert!(s.entries.iter().all(|e| e.path != "time"));
    }

    #[test]
    fn missing_entries_whiteouts_and_order() {
        let a = [
            file("a", b""),
            file("b", b""),
            file("c", b""),
            file("d", b""),
        ];
        let b = [
            file("a", b""),
            file("c", b""),
            file("b", b""),
            file(".wh.d", b""),
            file("new", b""),
        ];
        let w = run(&a, &b, false);
        let only: Vec<(&str, Option<&str>, bool)> = w
            .entries
            .iter()
            .map(|e| (e.path.as_str(), e.only_in, e.whiteout))
            .collect();
        assert_eq!(
            only,
            [
                ("d", Some("a"), false),
                (".wh.d", Some("b"), true),
                ("new", Some("b"), false)
            ]
        );
        assert_eq!(w.moved, ["b"]);
        assert!(run(&a, &b, true).moved.is_empty());
    }

    #[test]
    fn an_insertion_does_not_count_as_reordering() {
        let a = [
            file("a", b""),
            file("b", b""),
            file("c", b""),
            file("d", b""),
        ];
        let b = [
            file("a", b""),
            file("x", b""),
            file("b", b""),
            file("c", b""),
            file("d", b""),
        ];
        let w = run(&a, &b, false);
        assert!(w.moved.is_empty(), "{:?}", w.moved);
        assert_eq!(w.entries.len(), 1);
        assert_eq!(w.entries[0].only_in, Some("b"));
    }

    #[test]
    fn increasing_run_keeps_the_longest() {
        assert_eq!(increasing_run(&[0, 2, 1, 3]), [true, false, true, true]);
        assert_eq!(increasing_run(&[]), Vec::<bool>::new());
    }
}
