//! `strata helper copy`: writes one copy layer's tree inside BuildKit
//! (docs/design.md §2). It runs as an exec with the layer's local source mounted
//! read-only, walks it with the same code as the plan, and writes exactly the
//! entries of docs/design.md §1 — owners, modes (special bits included), the fixed
//! timestamp, every directory stamped after its contents — into a scratch
//! output, plus the layer's input digest and key for the history (§5).

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::plan::entries::{Entry, EntryKind};
use crate::plan::graph::{
    BaseDirs, WRITER_VERSION, base_queries, files_digest, layer_entries, layer_key,
};
use crate::plan::hash::hash_walks;
use crate::plan::ignore::Matcher;
use crate::plan::make::{copy_layer_files, split_layer};
use crate::plan::walk::{target_escapes, walk};
use crate::spec::{CopyEntry, CopyLayer, Owner};

/// Everything the helper needs, passed as one JSON argument so the exec's
/// cache key depends on exactly these values and the mounted content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CopyJob {
    /// The layer ID this job writes.
    pub(crate) layer: String,
    /// The spec layer's name.
    pub(crate) name: String,
    /// Copy entries.
    pub(crate) entries: Vec<JobEntry>,
    /// The context's ignore patterns (docs/design.md §3).
    pub(crate) ignore: Vec<String>,
    /// Numeric owner `[uid, gid]`.
    pub(crate) owner: [u32; 2],
    /// The layer timestamp.
    pub(crate) timestamp: u64,
    /// `split_min`, for split layers.
    pub(crate) split_min: Option<u64>,
    /// The paths whose base metadata the layer takes: those of the whole
    /// spec layer ([`base_queries`]), so a split file's key matches the plan's.
    pub(crate) queries: Vec<String>,
    /// The base's metadata for `queries` (docs/design.md §1).
    pub(crate) base: BaseDirs,
    /// The writer version; a different one means different bytes.
    pub(crate) writer: String,
}

/// One copy entry of a [`CopyJob`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JobEntry {
    /// Context-relative source.
    pub(crate) from: String,
    /// Absolute destination.
    pub(crate) to: String,
    /// `to` ended with `/`.
    pub(crate) to_is_dir: bool,
    /// Mode for regular files.
    pub(crate) mode: Option<u32>,
    /// Exclude patterns.
    pub(crate) exclude: Vec<String>,
}

/// What the helper records for the history entry (docs/design.md §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CopyRecord {
    /// Layer ID.
    pub(crate) layer: String,
    /// Input digest.
    pub(crate) inputs: String,
    /// Layer key.
    pub(crate) key: String,
}

/// Errors of the helper.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    /// The job argument does not parse.
    #[error("invalid helper job: {0}")]
    Job(String),
    /// Planning the layer failed.
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    /// Writing the tree failed.
    #[error("{}", crate::io_error::io_message(path, source))]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The layer ID names no layer of the split.
    #[error("layer `{0}` is not in the plan of its spec layer")]
    NoSuchLayer(String),
    /// A copy source is a symlink leading out of the build context (the
    /// frontend's view of `strata check`'s rule).
    #[error(
        "copy source `{from}` leads outside the build context (it is a symlink to `{target}`): copy the files into the context, or point the symlink inside it"
    )]
    Escapes {
        /// The context-relative source.
        from: String,
        /// The symlink's target.
        target: String,
    },
    /// Two copy layers write the same path (docs/design.md §1: each destination
    /// file belongs to one layer).
    #[error("{}", overlap_message(.0))]
    Overlaps(Vec<Overlap>),
}

/// A path that two copy layers both write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    /// The path in the image (absolute).
    pub(crate) path: String,
    /// The layer that writes it first, in layer order.
    pub(crate) first: String,
    /// The later layer.
    pub(crate) second: String,
}

fn overlap_message(all: &[Overlap]) -> String {
    let mut s = String::new();
    for o in all.iter().take(10) {
        s.push_str(&format!(
            "`{}` is written by layer `{}` and again by layer `{}`; ",
            o.path, o.first, o.second
        ));
    }
    if all.len() > 10 {
        s.push_str(&format!("and {} more; ", all.len() - 10));
    }
    s.push_str("each destination file belongs to one layer: exclude it from one of them");
    s
}

impl CopyJob {
    /// A job of layer `layer` that copies the one file `from` to `to`, for
    /// tests.
    #[cfg(test)]
    pub(crate) fn one_file(layer: &str, from: &str, to: &str) -> CopyJob {
        CopyJob {
            layer: layer.into(),
            name: layer.into(),
            entries: vec![JobEntry {
                from: from.into(),
                to: to.into(),
                to_is_dir: false,
                mode: None,
                exclude: vec![],
            }],
            ignore: vec![],
            owner: [0, 0],
            timestamp: 0,
            split_min: None,
            queries: vec![],
            base: BaseDirs::new(),
            writer: WRITER_VERSION.into(),
        }
    }

    fn copy_layer(&self) -> CopyLayer {
        CopyLayer {
            entries: self
                .entries
                .iter()
                .map(|e| CopyEntry {
                    from: e.from.clone(),
                    to: e.to.clone(),
                    to_is_dir: e.to_is_dir,
                    mode: e.mode,
                    exclude: e.exclude.clone(),
                    span: 0..0,
                    from_span: 0..0,
                    stage: None,
                })
                .collect(),
            split: None,
            owner: Owner {
                uid: self.owner[0],
                gid: self.owner[1],
            },
            // BuildKit's exporter compresses the frontend's layers.
            compression: None,
        }
    }

    /// The layer's entries and record, reading the inputs under `src`.
    pub(crate) fn plan(&self, src: &Path) -> Result<(Vec<Entry>, CopyRecord), HelperError> {
        let ignore = Matcher::new(&self.ignore)?;
        let copy = self.copy_layer();
        let mut walks = Vec::new();
        for e in &copy.entries {
            let path = src.join(&e.from);
            if let Ok(target) = fs_err::read_link(&path) {
                let target = target.as_os_str().as_bytes();
                if target_escapes(e.from.trim_end_matches('/').as_bytes(), target) {
                    return Err(HelperError::Escapes {
                        from: e.from.clone(),
                        target: String::from_utf8_lossy(target).into_owned(),
                    });
                }
            }
            walks.push(walk(
                src,
                Path::new(&e.from),
                &ignore,
                &Matcher::new(&e.exclude)?,
            )?);
        }
        let hashes = hash_walks(src, walks.iter(), None)?;
        let indexed: Vec<(usize, &crate::plan::walk::Walk)> = walks.iter().enumerate().collect();
        let files = copy_layer_files(src, &self.name, &copy, &indexed, &hashes)?;
        let (_, files) = split_layer(&self.name, self.split_min, files)
            .into_iter()
            .find(|(id, _)| *id == self.layer)
            .ok_or_else(|| HelperError::NoSuchLayer(self.layer.clone()))?;
        let inputs = files_digest(&files)?;
        let key = layer_key(
            &inputs,
            copy.owner,
            self.timestamp,
            &self.base,
            &base_queries(&copy),
        );
        let entries = layer_entries(&self.layer, &files, copy.owner, self.timestamp, &self.base)?;
        Ok((
            entries,
            CopyRecord {
                layer: self.layer.clone(),
                inputs: inputs.to_string(),
                key: key.to_string(),
            },
        ))
    }
}

/// Runs a job: plans from `src`, writes the tree under `out` (with
/// `paths_only`, only its paths: [`write_paths`]) and the record as JSON at
/// `record`. `out` may already hold a tree (the fallback's chain, docs/design.md
/// §4): existing directories take the entry's metadata, files are replaced.
pub(crate) fn run_copy(
    job_json: &str,
    src: &Path,
    out: &Path,
    record: &Path,
    paths_only: bool,
) -> Result<CopyRecord, HelperError> {
    let job: CopyJob =
        serde_json::from_str(job_json).map_err(|e| HelperError::Job(e.to_string()))?;
    if job.writer != WRITER_VERSION {
        return Err(HelperError::Job(format!(
            "job is for writer `{}`, this helper is `{WRITER_VERSION}`",
            job.writer
        )));
    }
    let (entries, rec) = job.plan(src)?;
    if paths_only {
        write_paths(&entries, out)?;
    } else {
        write_tree(&entries, out)?;
    }
    let io = |source| HelperError::Io {
        path: record.into(),
        source,
    };
    let mut f = fs_err::File::create(record).map_err(io)?;
    f.write_all(
        serde_json::to_string(&rec)
            .expect("record serializes")
            .as_bytes(),
    )
    .map_err(io)?;
    Ok(rec)
}

/// The paths that more than one of `layers` (layer ID, written tree, in
/// layer order) write, other than directories: a file, symlink or other
/// non-directory in two layers, or a directory in one and a non-directory
/// in another. Reads only metadata. Sorted by path.
pub(crate) fn find_overlaps(layers: &[(String, PathBuf)]) -> Result<Vec<Overlap>, HelperError> {
    use std::collections::BTreeMap;
    // path → (first layer, is a directory)
    let mut seen: BTreeMap<Vec<u8>, (usize, bool)> = BTreeMap::new();
    let mut found = Vec::new();
    for (li, (_, root)) in layers.iter().enumerate() {
        let mut stack = vec![Vec::<u8>::new()];
        while let Some(rel) = stack.pop() {
            let dir = root.join(std::ffi::OsStr::from_bytes(&rel));
            let io = |source| HelperError::Io {
                path: dir.clone(),
                source,
            };
            let mut names: Vec<(Vec<u8>, bool)> = Vec::new();
            for e in fs_err::read_dir(&dir).map_err(io)? {
                let e = e.map_err(io)?;
                let is_dir = e.file_type().map_err(io)?.is_dir();
                names.push((e.file_name().as_bytes().to_vec(), is_dir));
            }
            names.sort();
            for (name, is_dir) in names {
                let mut path = rel.clone();
                if !path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(&name);
                match seen.get(&path) {
                    Some(&(first, first_dir)) if first != li && !(is_dir && first_dir) => {
                        found.push(Overlap {
                            path: format!("/{}", String::from_utf8_lossy(&path)),
                            first: layers[first].0.clone(),
                            second: layers[li].0.clone(),
                        });
                    }
                    Some(_) => {}
                    None => {
                        seen.insert(path.clone(), (li, is_dir));
                    }
                }
                if is_dir {
                    stack.push(path);
                }
            }
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// Removes a non-directory at `p` (in an existing tree, the fallback's
/// chain), so the entry written there replaces it as a copy would, and a
/// symlink there is never followed.
fn replace_existing(p: &Path) -> Result<(), HelperError> {
    let io = |source| HelperError::Io {
        path: p.to_path_buf(),
        source,
    };
    match fs_err::symlink_metadata(p) {
        Ok(m) if m.is_dir() => Err(io(std::io::Error::other(
            "the image below this layer has a directory here",
        ))),
        Ok(_) => fs_err::remove_file(p).map_err(io),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(e)),
    }
}

/// Writes only the paths of `entries` under `root`: directories, and an
/// empty file for every other entry. Enough for [`find_overlaps`], which
/// reads names and directory-ness only, without reading or copying content.
pub(crate) fn write_paths(entries: &[Entry], root: &Path) -> Result<(), HelperError> {
    for e in entries {
        let p = root.join(std::ffi::OsStr::from_bytes(&e.path));
        let done = match e.kind {
            EntryKind::Dir => fs_err::create_dir_all(&p),
            _ => fs_err::File::create(&p).map(drop),
        };
        done.map_err(|source| HelperError::Io { path: p, source })?;
    }
    Ok(())
}

/// Writes `entries` (canonical order) under `root` with their exact metadata.
/// Directories get their times last, deepest first, so writing their
/// contents does not change them.
pub(crate) fn write_tree(entries: &[Entry], root: &Path) -> Result<(), HelperError> {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, chmod, chownat, utimensat};
    let at = |e: &Entry| root.join(std::ffi::OsStr::from_bytes(&e.path));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source: std::io::Error| HelperError::Io { path, source }
    };
    let errno = |path: &Path| {
        let path = path.to_path_buf();
        move |e: rustix::io::Errno| HelperError::Io {
            path,
            source: e.into(),
        }
    };
    for e in entries {
        let p = at(e);
        match &e.kind {
            EntryKind::Dir => match fs_err::create_dir(&p) {
                Ok(()) => {}
                // An existing tree (the fallback's chain): a directory takes
                // the entry's metadata; anything else there is an error.
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                    let meta = fs_err::symlink_metadata(&p).map_err(io(&p))?;
                    if !meta.is_dir() {
                        return Err(io(&p)(std::io::Error::other(
                            "the image below this layer has a non-directory here",
                        )));
                    }
                }
                Err(err) => return Err(io(&p)(err)),
            },
            EntryKind::File { source, size, .. } => {
                replace_existing(&p)?;
                let mut from = fs_err::File::open(source).map_err(io(source))?;
                let mut to = fs_err::File::create(&p).map_err(io(&p))?;
                let n = std::io::copy(&mut from, &mut to).map_err(io(&p))?;
                if n != *size {
                    return Err(HelperError::Io {
                        path: source.clone(),
                        source: std::io::Error::other(format!(
                            "changed while copying: planned {size} bytes, read {n}"
                        )),
                    });
                }
            }
            EntryKind::Symlink { target } => {
                replace_existing(&p)?;
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &p)
                    .map_err(io(&p))?;
            }
        }
        let uid = rustix::fs::Uid::from_raw(e.uid as u32);
        let gid = rustix::fs::Gid::from_raw(e.gid as u32);
        chownat(CWD, &p, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW).map_err(errno(&p))?;
        if !matches!(e.kind, EntryKind::Symlink { .. }) {
            // After chown, which clears setuid/setgid bits.
            chmod(&p, rustix::fs::Mode::from_raw_mode(e.mode)).map_err(errno(&p))?;
        }
    }
    let stamp = |e: &Entry| -> Result<(), HelperError> {
        let p = at(e);
        let t = Timespec {
            tv_sec: e.mtime as i64,
            tv_nsec: 0,
        };
        utimensat(
            CWD,
            &p,
            &Timestamps {
                last_access: t,
                last_modification: t,
            },
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(errno(&p))
    };
    for e in entries.iter().filter(|e| !matches!(e.kind, EntryKind::Dir)) {
        stamp(e)?;
    }
    for e in entries
        .iter()
        .rev()
        .filter(|e| matches!(e.kind, EntryKind::Dir))
    {
        stamp(e)?;
    }
    Ok(())
}

/// The job for one planned copy layer (the frontend builds these). For a
/// split file (`name@/dest`), only the entry that holds it is kept, so the
/// job needs only that file; the base map is cut down to the layer's own
/// queries, so other layers never change this job.
pub(crate) fn job_for(
    layer_id: &str,
    name: &str,
    copy: &CopyLayer,
    ignore: &[String],
    timestamp: u64,
    base: &BaseDirs,
) -> CopyJob {
    let queries = base_queries(copy);
    let base: BaseDirs = queries
        .iter()
        .filter_map(|q| base.get(q).map(|b| (q.clone(), b.clone())))
        .collect();
    let mut copy = copy.clone();
    if let Some((_, dest)) = layer_id.split_once('@') {
        copy.entries.retain(|e| {
            crate::spec::validate::file_destination(&e.from, &e.to, e.to_is_dir) == dest
                || dest.starts_with(&format!("{}/", e.to.trim_end_matches('/')))
        });
    }
    let copy = &copy;
    CopyJob {
        layer: layer_id.to_string(),
        name: name.to_string(),
        entries: copy
            .entries
            .iter()
            .map(|e| JobEntry {
                from: e.from.clone(),
                to: e.to.clone(),
                to_is_dir: e.to_is_dir,
                mode: e.mode,
                exclude: e.exclude.clone(),
            })
            .collect(),
        ignore: ignore.to_vec(),
        owner: [copy.owner.uid, copy.owner.gid],
        timestamp,
        split_min: copy.split.as_ref().map(|s| s.min),
        queries,
        base,
        writer: WRITER_VERSION.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::PlannedKind;

    fn example() -> crate::spec::ResolvedSpec {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/model-only");
        let opts = crate::spec::ResolveOptions {
            context: dir.clone(),
            ..Default::default()
        };
        crate::spec::load(&dir.join("strata.toml"), opts)
            .unwrap()
            .specs
            .remove(0)
    }

    /// The helper and the embedded builder plan the same entries and input
    /// digests for every layer, split files included: the backends cannot drift.
    #[test]
    fn helper_jobs_match_the_plan() {
        let spec = example();
        let cache = tempfile::tempdir().unwrap();
        let plan = crate::plan::make_plan(&spec, cache.path()).unwrap();
        let base = BaseDirs::new();
        for layer in &plan.layers {
            let PlannedKind::Copy { files, owner } = &layer.kind else {
                continue;
            };
            let spec_layer = &spec.layers[layer.spec_index];
            let crate::spec::LayerKind::Copy(copy) = &spec_layer.kind else {
                unreachable!()
            };
            let job = job_for(
                &layer.id,
                &spec_layer.name,
                copy,
                &[],
                spec.image.timestamp,
                &base,
            );
            let json = serde_json::to_string(&job).unwrap();
            let job: CopyJob = serde_json::from_str(&json).unwrap();
            let (entries, record) = job.plan(&spec.context).unwrap();
            let expected =
                layer_entries(&layer.id, files, *owner, spec.image.timestamp, &base).unwrap();
            assert_eq!(entries, expected, "layer {}", layer.id);
            assert_eq!(
                record.inputs,
                layer.inputs.to_string(),
                "layer {}",
                layer.id
            );
        }
    }

    #[test]
    fn write_tree_sets_exact_metadata() {
        use std::os::unix::fs::MetadataExt;
        let src = tempfile::tempdir().unwrap();
        fs_err::write(src.path().join("f"), b"hello").unwrap();
        let entries = vec![
            Entry {
                path: b"tmp".to_vec(),
                kind: EntryKind::Dir,
                mode: 0o1777,
                uid: 0,
                gid: 0,
                mtime: 315_619_200,
            },
            Entry {
                path: b"tmp/f".to_vec(),
                kind: EntryKind::File {
                    source: src.path().join("f"),
                    size: 5,
                    expect: None,
                },
                mode: 0o640,
                uid: 1000,
                gid: 1001,
                mtime: 315_619_200,
            },
            Entry {
                path: b"tmp/l".to_vec(),
                kind: EntryKind::Symlink {
                    target: b"f".to_vec(),
                },
                mode: 0o777,
                uid: 0,
                gid: 0,
                mtime: 315_619_200,
            },
        ];
        let out = tempfile::tempdir().unwrap();
        write_tree(&entries, out.path()).unwrap();
        let d = fs_err::symlink_metadata(out.path().join("tmp")).unwrap();
        assert_eq!(d.mode() & 0o7777, 0o1777);
        assert_eq!(d.mtime(), 315_619_200);
        let f = fs_err::symlink_metadata(out.path().join("tmp/f")).unwrap();
        assert_eq!(
            (f.mode() & 0o7777, f.uid(), f.gid(), f.mtime()),
            (0o640, 1000, 1001, 315_619_200)
        );
        let l = fs_err::symlink_metadata(out.path().join("tmp/l")).unwrap();
        assert!(l.file_type().is_symlink());
        assert_eq!(l.mtime(), 315_619_200);
    }

    /// Writing into an existing tree (the fallback's chain): an existing
    /// directory takes the entry's metadata and keeps its other files; a
    /// file or symlink there is replaced, a symlink never followed; and
    /// `write_paths` writes the same paths, empty.
    #[test]
    fn write_tree_onto_an_existing_tree_replaces_and_never_follows() {
        use std::os::unix::fs::MetadataExt;
        let src = tempfile::tempdir().unwrap();
        fs_err::write(src.path().join("f"), b"hello").unwrap();
        let entry = |path: &str, kind: EntryKind, mode: u32| Entry {
            path: path.as_bytes().to_vec(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: 315_619_200,
        };
        let entries = vec![
            entry("tmp", EntryKind::Dir, 0o1777),
            entry(
                "tmp/f",
                EntryKind::File {
                    source: src.path().join("f"),
                    size: 5,
                    expect: None,
                },
                0o644,
            ),
            entry(
                "tmp/l",
                EntryKind::Symlink {
                    target: b"f".to_vec(),
                },
                0o777,
            ),
        ];
        let out = tempfile::tempdir().unwrap();
        let root = out.path().join("root");
        fs_err::create_dir_all(root.join("tmp")).unwrap();
        fs_err::write(root.join("tmp/keep"), b"base").unwrap();
        fs_err::write(out.path().join("outside"), b"not mine").unwrap();
        std::os::unix::fs::symlink("../../outside", root.join("tmp/f")).unwrap();
        fs_err::write(root.join("tmp/l"), b"old").unwrap();
        write_tree(&entries, &root).unwrap();
        let d = fs_err::symlink_metadata(root.join("tmp")).unwrap();
        assert_eq!((d.mode() & 0o7777, d.mtime()), (0o1777, 315_619_200));
        assert_eq!(fs_err::read(root.join("tmp/keep")).unwrap(), b"base");
        let f = fs_err::symlink_metadata(root.join("tmp/f")).unwrap();
        assert!(f.file_type().is_file());
        assert_eq!(fs_err::read(root.join("tmp/f")).unwrap(), b"hello");
        assert_eq!(
            fs_err::read(out.path().join("outside")).unwrap(),
            b"not mine"
        );
        assert_eq!(
            fs_err::read_link(root.join("tmp/l")).unwrap(),
            Path::new("f")
        );

        // A directory where the layer has a file is an error naming it.
        let bad = out.path().join("bad");
        fs_err::create_dir_all(bad.join("tmp/f")).unwrap();
        let err = write_tree(&entries, &bad).unwrap_err().to_string();
        assert!(err.contains("tmp/f"), "{err}");

        let paths = out.path().join("paths");
        fs_err::create_dir(&paths).unwrap();
        write_paths(&entries, &paths).unwrap();
        assert!(fs_err::metadata(paths.join("tmp")).unwrap().is_dir());
        for name in ["tmp/f", "tmp/l"] {
            let m = fs_err::symlink_metadata(paths.join(name)).unwrap();
            assert!(m.is_file() && m.len() == 0, "{name}");
        }
        let found = find_overlaps(&[
            ("a".to_string(), paths.clone()),
            ("b".to_string(), root.clone()),
        ])
        .unwrap();
        let found: Vec<&str> = found.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(found, ["/tmp/f", "/tmp/l"]);
    }

    /// Two trees writing one file, or a file where the other has a
    /// directory, overlap; shared parent directories do not.
    #[test]
    fn overlapping_paths_are_found_and_shared_directories_are_not() {
        let root = tempfile::tempdir().unwrap();
        let tree = |name: &str, files: &[&str]| {
            let dir = root.path().join(name);
            for f in files {
                let p = dir.join(f);
                fs_err::create_dir_all(p.parent().unwrap()).unwrap();
                fs_err::write(&p, b"x").unwrap();
            }
            fs_err::create_dir_all(&dir).unwrap();
            (name.to_string(), dir)
        };
        let layers = vec![
            tree("models", &["app/models/a.bin", "app/models/b.bin"]),
            tree("app", &["app/main.py", "app/models/b.bin", "app/x/y"]),
            tree("extra", &["app/x"]),
        ];
        let found = find_overlaps(&layers).unwrap();
        assert_eq!(
            found,
            [
                Overlap {
                    path: "/app/models/b.bin".into(),
                    first: "models".into(),
                    second: "app".into()
                },
                Overlap {
                    path: "/app/x".into(),
                    first: "app".into(),
                    second: "extra".into()
                },
            ]
        );
        let msg = HelperError::Overlaps(found).to_string();
        assert!(
            msg.contains(
                "`/app/models/b.bin` is written by layer `models` and again by layer `app`"
            ),
            "{msg}"
        );
        assert!(find_overlaps(&layers[..1]).unwrap().is_empty());
    }

    /// A copy source that is a symlink out of the mounted context fails in
    /// the helper, as `strata check` fails on it; one inside is copied.
    #[test]
    fn a_source_symlink_out_of_the_context_is_refused() {
        let src = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(src.path().join("d")).unwrap();
        fs_err::write(src.path().join("d/real"), b"x").unwrap();
        std::os::unix::fs::symlink("../../secret", src.path().join("d/out")).unwrap();
        std::os::unix::fs::symlink("real", src.path().join("d/in")).unwrap();
        let job = |from: &str| CopyJob::one_file("a", from, "/x");
        let err = job("d/out").plan(src.path()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("copy source `d/out` leads outside the build context"),
            "{err}"
        );
        assert!(job("d/in").plan(src.path()).is_ok());
    }
}
