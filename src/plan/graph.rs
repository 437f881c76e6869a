//! The layer graph: the spec's layers expanded into planned layers (one per
//! split file, docs/design.md §1), each with its files in destination space, its
//! input digest and, once the base is known, its layer key and final entries.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::digest::{Digest, InputEncoder};
use super::entries::{Entry, EntryKind, Expected, InputFile, path_order, sort_entries};
use super::error::PlanError;
use crate::spec::{CopyLayer, Owner};

/// The version of the layer writer: part of every layer key and history
/// comment, so a change of the bytes strata writes is never silent
/// (docs/design.md §1). Bump it whenever tar or compression output changes.
/// `/2`: block-parallel compression (gzip members of 1 MiB through
/// zlib-rs, zstd frames of 4 MiB; `oci::compress`); tars are unchanged.
pub const WRITER_VERSION: &str = "strata-writer/2";

/// One file, directory or symlink of a copy layer, in destination space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerFile {
    /// Path in the image relative to `/` (no leading slash), bytes.
    pub dest: Vec<u8>,
    /// What it is.
    pub kind: LayerFileKind,
}

/// The type of a [`LayerFile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerFileKind {
    /// A directory of the input tree.
    Dir,
    /// A regular file.
    File {
        /// Where it is read from.
        source: PathBuf,
        /// Its size.
        size: u64,
        /// Its final mode (docs/design.md §1).
        mode: u32,
        /// Its content hash.
        content: Digest,
        /// The context input it is read from, checked when it is written.
        input: Option<InputFile>,
    },
    /// A symlink.
    Symlink {
        /// The target.
        target: Vec<u8>,
    },
}

/// What the base image has at a path (docs/design.md §1 parent directories).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum BaseEntry {
    /// A directory with its metadata.
    Dir {
        /// Permission and special bits.
        mode: u32,
        /// Owner.
        uid: u64,
        /// Group.
        gid: u64,
    },
    /// A symlink to `target`.
    Symlink {
        /// The target.
        target: String,
    },
    /// A file or anything else that is not a directory.
    Other,
    /// Nothing.
    Absent,
}

/// The base's metadata for the directories a copy layer needs.
pub type BaseDirs = BTreeMap<String, BaseEntry>;

/// Absolute path text of a destination (for messages and base lookups).
pub fn abs(dest: &[u8]) -> String {
    format!("/{}", String::from_utf8_lossy(dest))
}

/// Paths (absolute) whose base metadata a copy layer's entries take
/// (docs/design.md §1): each entry's destination `to` and every ancestor of it.
/// Directories inside a copied tree come from the context (`0755`), so the
/// set depends on the spec alone and both backends ask the base the same
/// questions.
pub fn base_queries(copy: &CopyLayer) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    for e in &copy.entries {
        let mut p = e.to.as_str();
        while p != "/" && !p.is_empty() {
            out.insert(p.to_string());
            p = p.rsplit_once('/').map_or("/", |(parent, _)| parent);
            if p.is_empty() {
                break;
            }
        }
    }
    out.into_iter().collect()
}

/// The final entries of a copy layer (docs/design.md §1): its files with their
/// modes and owner, every ancestor directory (with the base's metadata where
/// the base has it), all stamped with `timestamp`, in canonical order.
pub fn layer_entries(
    layer_id: &str,
    files: &[LayerFile],
    owner: Owner,
    timestamp: u64,
    base: &BaseDirs,
) -> Result<Vec<Entry>, PlanError> {
    let mut entries: BTreeMap<Vec<u8>, Entry> = BTreeMap::new();
    // Only the queried paths ([`base_queries`]) are in `base`; every other
    // directory is the context's. `dest` is the destination that needs `path`.
    let dir_entry = |path: &[u8], dest: &[u8]| -> Result<Entry, PlanError> {
        let (mode, uid, gid) = match base.get(&abs(path)) {
            Some(BaseEntry::Dir { mode, uid, gid }) => (*mode, *uid, *gid),
            Some(BaseEntry::Symlink { target }) => {
                let below = String::from_utf8_lossy(&dest[path.len()..]);
                let resolved = resolve_link(&abs(path), target);
                let resolved = format!("{}{below}", resolved.trim_end_matches('/'));
                return Err(PlanError::BaseSymlink {
                    layer: layer_id.to_string(),
                    dest: abs(dest),
                    path: abs(path),
                    resolved: if resolved.is_empty() {
                        "/".into()
                    } else {
                        resolved
                    },
                });
            }
            Some(BaseEntry::Other) => {
                return Err(PlanError::BaseNotDir {
                    layer: layer_id.to_string(),
                    path: abs(path),
                });
            }
            Some(BaseEntry::Absent) | None => (0o755, u64::from(owner.uid), u64::from(owner.gid)),
        };
        Ok(Entry {
            path: path.to_vec(),
            kind: EntryKind::Dir,
            mode,
            uid,
            gid,
            mtime: timestamp,
        })
    };
    for f in files {
        // Ancestors first.
        let mut p: &[u8] = &f.dest;
        while let Some(i) = p.iter().rposition(|&c| c == b'/') {
            p = &p[..i];
            if entries.contains_key(p) {
                break;
            }
            entries.insert(p.to_vec(), dir_entry(p, &f.dest)?);
        }
        if f.dest.is_empty() {
            continue; // the root itself is never an entry
        }
        let e = match &f.kind {
            LayerFileKind::Dir => dir_entry(&f.dest, &f.dest)?,
            LayerFileKind::File {
                source,
                size,
                mode,
                content,
                input,
            } => Entry {
                path: f.dest.clone(),
                kind: EntryKind::File {
                    source: source.clone(),
                    size: *size,
                    expect: input.as_ref().map(|input| {
                        Box::new(Expected {
                            input: input.clone(),
                            content: *content,
                        })
                    }),
                },
                mode: *mode,
                uid: u64::from(owner.uid),
                gid: u64::from(owner.gid),
                mtime: timestamp,
            },
            LayerFileKind::Symlink { target } => Entry {
                path: f.dest.clone(),
                kind: EntryKind::Symlink {
                    target: target.clone(),
                },
                mode: 0o777,
                uid: u64::from(owner.uid),
                gid: u64::from(owner.gid),
                mtime: timestamp,
            },
        };
        entries.insert(f.dest.clone(), e);
    }
    let mut out: Vec<Entry> = entries.into_values().collect();
    sort_entries(&mut out);
    Ok(out)
}

/// Where a symlink at `path` with `target` leads, lexically.
fn resolve_link(path: &str, target: &str) -> String {
    let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
    let joined = if target.starts_with('/') {
        target.to_string()
    } else {
        format!("{parent}/{target}")
    };
    crate::spec::values::clean_abs(&joined).unwrap_or(joined)
}

/// The input digest of a copy layer's files in destination space
/// (`docs/digest.md`): the same encoding as an input's, with paths relative to
/// `/`, so the destination and the mode rule are covered too.
pub fn files_digest(files: &[LayerFile]) -> Result<Digest, PlanError> {
    let mut enc = InputEncoder::new();
    for f in files {
        match &f.kind {
            LayerFileKind::Dir => enc.dir(&f.dest)?,
            LayerFileKind::File {
                size,
                mode,
                content,
                ..
            } => enc.file(&f.dest, *mode, *size, content)?,
            LayerFileKind::Symlink { target } => enc.symlink(&f.dest, target)?,
        }
    }
    Ok(enc.finish())
}

/// The layer key (docs/design.md §1): the input digest plus every spec field that
/// changes the layer's bytes, and the base metadata its ancestor directories
/// take. Canonical JSON, hashed.
pub fn layer_key(
    inputs: &Digest,
    owner: Owner,
    timestamp: u64,
    base: &BaseDirs,
    queries: &[String],
) -> Digest {
    let base: BTreeMap<&String, &BaseEntry> = queries
        .iter()
        .filter_map(|q| base.get(q).map(|b| (q, b)))
        .filter(|(_, b)| !matches!(b, BaseEntry::Absent))
        .collect();
    let doc = serde_json::json!({
        "kind": "strata.layer-key/v1",
        "writer": WRITER_VERSION,
        "inputs": inputs.to_string(),
        "owner": [owner.uid, owner.gid],
        "timestamp": timestamp,
        "base": base,
    });
    Digest::of(doc.to_string().as_bytes())
}

/// Two destinations of one layer that cannot both be written.
#[derive(Debug, PartialEq, Eq)]
pub enum FileConflict {
    /// One path written as two different things.
    Same(Vec<u8>),
    /// A file or symlink that another destination needs as its directory.
    Parent {
        /// The file or symlink.
        file: Vec<u8>,
        /// A path below it.
        child: Vec<u8>,
    },
}

/// Sorts files into canonical order and merges duplicate directories; a path
/// that two entries write as different things is an overlap, and so is a
/// file with a path below it (a tar with both cannot be unpacked).
pub fn normalize_files(files: &mut Vec<LayerFile>) -> Result<(), FileConflict> {
    files.sort_by(|a, b| path_order(&a.dest, &b.dest));
    let mut out: Vec<LayerFile> = Vec::with_capacity(files.len());
    for f in files.drain(..) {
        if let Some(last) = out.last() {
            if last.dest == f.dest {
                if last.kind == LayerFileKind::Dir && f.kind == LayerFileKind::Dir {
                    continue;
                }
                return Err(FileConflict::Same(f.dest));
            }
            // In path order a subtree follows its root at once.
            if last.kind != LayerFileKind::Dir
                && f.dest.len() > last.dest.len()
                && f.dest.starts_with(&last.dest)
                && f.dest[last.dest.len()] == b'/'
            {
                return Err(FileConflict::Parent {
                    file: last.dest.clone(),
                    child: f.dest,
                });
            }
        }
        out.push(f);
    }
    *files = out;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symlink_error(dest: &str, link: &str, target: &str) -> String {
        let files = vec![LayerFile {
            dest: dest.as_bytes().to_vec(),
            kind: LayerFileKind::Dir,
        }];
        let mut base = BaseDirs::new();
        base.insert(
            link.to_string(),
            BaseEntry::Symlink {
                target: target.to_string(),
            },
        );
        let owner = Owner { uid: 0, gid: 0 };
        match layer_entries("l", &files, owner, 0, &base) {
            Err(e @ PlanError::BaseSymlink { .. }) => e.to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_destination_under_a_base_symlink_names_the_path_to_write() {
        assert_eq!(
            symlink_error("var/run/x", "/var/run", "../run"),
            "layer `l` writes `/var/run/x`, but `/var/run` is a symlink in the base image: write to `/run/x` instead"
        );
        // Merged /usr, and a destination that is the symlink itself.
        assert!(
            symlink_error("bin/tools", "/bin", "usr/bin").contains("write to `/usr/bin/tools`")
        );
        assert!(
            symlink_error("lib64", "/lib64", "/usr/lib64")
                .contains("writes `/lib64`, but `/lib64`")
        );
        assert!(symlink_error("lib64", "/lib64", "/usr/lib64").contains("write to `/usr/lib64`"));
        assert!(symlink_error("r/x", "/r", "/").contains("write to `/x`"));
    }
}
