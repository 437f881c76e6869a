//! A sorted walk of one input: a context-relative path that is a file, a
//! symlink or a directory, filtered by the context's ignore rules (paths
//! relative to the context) and the copy entry's excludes (paths relative to
//! the input). Symlinks are never followed: they are entries. The output is in
//! the canonical order of [`super::entries::path_order`]; directories are
//! read in parallel.

use std::ffi::OsStr;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::error::{PlanError, io_at};
use super::ignore::{MatchState, Matcher, clean};

/// The walked entries of one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walk {
    /// The input, relative to the context: cleaned, `/`-separated, empty for
    /// the context itself.
    pub input: Vec<u8>,
    /// The entries in canonical order, the input itself first (with an
    /// empty path).
    pub entries: Vec<WalkEntry>,
}

/// One file, directory or symlink of an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkEntry {
    /// Path relative to the input, `/`-separated, empty for the input itself.
    /// Bytes: names need not be UTF-8.
    pub path: Vec<u8>,
    /// What it is.
    pub kind: WalkKind,
}

/// The type of a [`WalkEntry`] and what the digest and the stat cache need of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkKind {
    /// A directory.
    Dir,
    /// A regular file (hard links are just files).
    File {
        /// Any of the owner, group or other exec bits is set.
        exec: bool,
        /// Identity, size and times, for the stat cache.
        stat: FileStat,
    },
    /// A symbolic link, never followed.
    Symlink {
        /// The link's target, unchanged.
        target: Vec<u8>,
        /// The target, resolved lexically from the link's directory, is
        /// absolute or leads out of the context. Such a link is copied as a
        /// link; the spec validator rejects it when it is the input itself.
        escapes_context: bool,
    },
}

/// What the stat cache keys a file's content hash on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileStat {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status change time, nanoseconds since the epoch.
    pub ctime_ns: i64,
}

impl FileStat {
    /// The stat fields of `meta` (from `lstat` or `fstat`).
    pub fn from_metadata(meta: &std::fs::Metadata) -> FileStat {
        FileStat {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.mtime_nsec()),
            ctime_ns: meta
                .ctime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.ctime_nsec()),
        }
    }
}

impl WalkEntry {
    /// The size of a file; zero for directories and symlinks.
    pub fn size(&self) -> u64 {
        match &self.kind {
            WalkKind::File { stat, .. } => stat.size,
            _ => 0,
        }
    }
}

impl Walk {
    /// The context-relative path of `entry`.
    pub fn context_path(&self, entry: &WalkEntry) -> Vec<u8> {
        join(&self.input, &entry.path)
    }

    /// Where `entry` is on disk.
    pub fn disk_path(&self, context: &Path, entry: &WalkEntry) -> PathBuf {
        disk(context, &self.context_path(entry))
    }

    /// The regular files of the walk.
    pub fn files(&self) -> impl Iterator<Item = (&WalkEntry, &FileStat)> {
        self.entries.iter().filter_map(|e| match &e.kind {
            WalkKind::File { stat, .. } => Some((e, stat)),
            _ => None,
        })
    }
}

/// Walks `input` (relative to `context`) applying `ignore` (the context's
/// `.dockerignore` rules, relative to the context) and `excludes` (the copy
/// entry's `exclude` patterns, relative to the input).
///
/// Errors: the input is absolute or leaves the context, goes through a
/// symlinked directory, does not exist, is entirely ignored; a FIFO, socket
/// or device that is not excluded; any I/O error (naming its path).
pub fn walk(
    context: &Path,
    input: &Path,
    ignore: &Matcher,
    excludes: &Matcher,
) -> Result<Walk, PlanError> {
    let input = normalize_input(input)?;
    let walker = Walker {
        context,
        ignore,
        excludes,
    };

    // The parent directories: no symlinks, and decide them as BuildKit's
    // walk from the context root would have.
    let mut state = ignore.root_state();
    let mut input_ignored = false;
    let components: Vec<&[u8]> = if input.is_empty() {
        Vec::new()
    } else {
        input.split(|&b| b == b'/').collect()
    };
    let mut prefix: Vec<u8> = Vec::new();
    for (i, component) in components.iter().enumerate() {
        if !prefix.is_empty() {
            prefix.push(b'/');
        }
        prefix.extend_from_slice(component);
        let (excluded, next) = ignore.eval(&prefix, &state);
        state = next;
        let last = i + 1 == components.len();
        if !last {
            let path = disk(context, &prefix);
            let meta = lstat_input(&path, &input, context)?;
            if meta.file_type().is_symlink() {
                return Err(PlanError::SymlinkInInputPath {
                    path: disk(context, &input),
                    link: path,
                });
            }
            if !meta.is_dir() {
                return Err(PlanError::MissingInput {
                    path: disk(context, &input),
                });
            }
            if excluded && ignore.can_skip_dir(&prefix) {
                return Err(walker.ignored(&input));
            }
        }
        input_ignored = excluded;
    }

    let root = disk(context, &input);
    let meta = lstat_input(&root, &input, context)?;
    let file_type = meta.file_type();
    let entries = if file_type.is_dir() {
        let children = walker.dir(
            &root,
            &input,
            b"",
            &state,
            &excludes.root_state(),
            input_ignored,
        )?;
        if input_ignored && children.is_empty() {
            return Err(walker.ignored(&input));
        }
        let mut entries = Vec::with_capacity(children.len() + 1);
        entries.push(WalkEntry {
            path: Vec::new(),
            kind: WalkKind::Dir,
        });
        entries.extend(children);
        entries
    } else if input_ignored {
        return Err(walker.ignored(&input));
    } else {
        vec![leaf(&root, &input, Vec::new(), &meta)?]
    };
    Ok(Walk { input, entries })
}

struct Walker<'a> {
    context: &'a Path,
    ignore: &'a Matcher,
    excludes: &'a Matcher,
}

/// How many directories deep below the context root a walk goes.
pub const MAX_DEPTH: usize = 256;

impl Walker<'_> {
    /// The sorted, filtered contents of a directory. `excluded` says whether
    /// the directory itself is excluded (then unreadable is empty, as BuildKit).
    fn dir(
        &self,
        disk_dir: &Path,
        ctx_rel: &[u8],
        from_rel: &[u8],
        ignore_state: &MatchState,
        exclude_state: &MatchState,
        excluded: bool,
    ) -> Result<Vec<WalkEntry>, PlanError> {
        // The walk recurses once per level: bounded, so a hostile tree
        // gets an error instead of a stack overflow.
        if ctx_rel.iter().filter(|&&b| b == b'/').count() >= MAX_DEPTH {
            return Err(PlanError::TooDeep {
                path: disk_dir.to_owned(),
                limit: MAX_DEPTH,
            });
        }
        let read = match fs_err::read_dir(disk_dir) {
            Ok(read) => read,
            Err(e) if excluded && e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(PlanError::io(disk_dir, e)),
        };
        let mut names = Vec::new();
        for entry in read {
            let entry = entry.map_err(io_at(disk_dir))?;
            names.push(entry.file_name());
        }
        names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let results: Vec<Result<Vec<WalkEntry>, PlanError>> = names
            .par_iter()
            .map(|name| {
                self.child(
                    disk_dir,
                    ctx_rel,
                    from_rel,
                    name.as_bytes(),
                    ignore_state,
                    exclude_state,
                )
            })
            .collect();
        let total = results.iter().map(|r| r.as_ref().map_or(0, Vec::len)).sum();
        let mut out = Vec::with_capacity(total);
        for result in results {
            out.extend(result?);
        }
        Ok(out)
    }

    /// One directory entry and, for a directory, its contents.
    fn child(
        &self,
        disk_dir: &Path,
        ctx_rel: &[u8],
        from_rel: &[u8],
        name: &[u8],
        ignore_state: &MatchState,
        exclude_state: &MatchState,
    ) -> Result<Vec<WalkEntry>, PlanError> {
        let disk_path = disk_dir.join(OsStr::from_bytes(name));
        let ctx_path = join(ctx_rel, name);
        let from_path = join(from_rel, name);
        let (ignored, ignore_next) = self.ignore.eval(&ctx_path, ignore_state);
        let (excluded, exclude_next) = self.excludes.eval(&from_path, exclude_state);
        let meta = fs_err::symlink_metadata(&disk_path).map_err(io_at(&disk_path))?;
        if meta.is_dir() {
            if (ignored && self.ignore.can_skip_dir(&ctx_path))
                || (excluded && self.excludes.can_skip_dir(&from_path))
            {
                return Ok(Vec::new());
            }
            let dropped = ignored || excluded;
            let sub = self.dir(
                &disk_path,
                &ctx_path,
                &from_path,
                &ignore_next,
                &exclude_next,
                dropped,
            )?;
            if dropped && sub.is_empty() {
                return Ok(Vec::new());
            }
            let mut out = Vec::with_capacity(sub.len() + 1);
            out.push(WalkEntry {
                path: from_path,
                kind: WalkKind::Dir,
            });
            out.extend(sub);
            Ok(out)
        } else if ignored || excluded {
            Ok(Vec::new())
        } else {
            Ok(vec![leaf(&disk_path, &ctx_path, from_path, &meta)?])
        }
    }

    fn ignored(&self, input: &[u8]) -> PlanError {
        let by = if self.ignore.origin().is_empty() {
            ".dockerignore".to_owned()
        } else {
            self.ignore.origin().to_owned()
        };
        PlanError::InputIgnored {
            path: disk(self.context, input),
            by,
        }
    }
}

/// A non-directory entry: file, symlink, or an error for anything else.
fn leaf(
    disk_path: &Path,
    ctx_path: &[u8],
    path: Vec<u8>,
    meta: &std::fs::Metadata,
) -> Result<WalkEntry, PlanError> {
    let file_type = meta.file_type();
    let kind = if file_type.is_file() {
        WalkKind::File {
            exec: meta.permissions().mode() & 0o111 != 0,
            stat: FileStat::from_metadata(meta),
        }
    } else if file_type.is_symlink() {
        let target = fs_err::read_link(disk_path).map_err(io_at(disk_path))?;
        let target = target.into_os_string().into_vec();
        WalkKind::Symlink {
            escapes_context: target_escapes(ctx_path, &target),
            target,
        }
    } else {
        let kind = if file_type.is_fifo() {
            "fifo"
        } else if file_type.is_socket() {
            "socket"
        } else if file_type.is_char_device() {
            "character device"
        } else if file_type.is_block_device() {
            "block device"
        } else {
            "special file"
        };
        return Err(PlanError::SpecialFile {
            path: disk_path.to_path_buf(),
            kind,
        });
    };
    Ok(WalkEntry { path, kind })
}

/// `lstat` of an input path or one of its parents; not found is a missing input.
fn lstat_input(path: &Path, input: &[u8], context: &Path) -> Result<std::fs::Metadata, PlanError> {
    match fs_err::symlink_metadata(path) {
        Ok(meta) => Ok(meta),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.kind() == std::io::ErrorKind::NotADirectory =>
        {
            Err(PlanError::MissingInput {
                path: disk(context, input),
            })
        }
        Err(e) => Err(PlanError::io(path, e)),
    }
}

/// Cleans a context-relative input path; rejects absolute paths and `..`
/// leading out of the context. The context itself is the empty path.
fn normalize_input(input: &Path) -> Result<Vec<u8>, PlanError> {
    let bytes = input.as_os_str().as_bytes();
    let outside = || PlanError::InputOutsideContext {
        input: input.display().to_string(),
    };
    if bytes.starts_with(b"/") {
        return Err(outside());
    }
    let cleaned = clean(bytes);
    if cleaned == b"." {
        return Ok(Vec::new());
    }
    if cleaned == b".." || cleaned.starts_with(b"../") {
        return Err(outside());
    }
    Ok(cleaned)
}

/// Whether a link at `link_path` (context-relative) pointing to `target`
/// leaves the context, resolving `target` lexically.
pub fn target_escapes(link_path: &[u8], target: &[u8]) -> bool {
    if target.starts_with(b"/") {
        return true;
    }
    let mut depth = link_path.iter().filter(|&&b| b == b'/').count() as i64;
    for component in target.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    if a.is_empty() {
        return b.to_vec();
    }
    if b.is_empty() {
        return a.to_vec();
    }
    let mut out = Vec::with_capacity(a.len() + 1 + b.len());
    out.extend_from_slice(a);
    out.push(b'/');
    out.extend_from_slice(b);
    out
}

fn disk(context: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        context.to_path_buf()
    } else {
        context.join(OsStr::from_bytes(rel))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::plan::entries::path_order;
    use crate::plan::ignore::conformance;
    use std::os::unix::fs::symlink;

    pub(crate) fn write(root: &Path, rel: &str, content: &[u8]) {
        let path = root.join(rel);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(path, content).unwrap();
    }

    fn paths(walk: &Walk) -> Vec<String> {
        walk.entries
            .iter()
            .map(|e| {
                let mut p = String::from_utf8_lossy(&e.path).into_owned();
                if e.kind == WalkKind::Dir {
                    p.push('/');
                }
                p
            })
            .collect()
    }

    fn all() -> Matcher {
        Matcher::empty()
    }

    #[test]
    fn sorted_canonically_with_types_and_exec_bits() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "b", b"");
        write(root, "a-b", b"x");
        write(root, "a/z", b"12");
        write(root, "a/b/c", b"");
        fs_err::create_dir(root.join("empty")).unwrap();
        fs_err::set_permissions(root.join("b"), std::fs::Permissions::from_mode(0o744)).unwrap();
        symlink("a/z", root.join("link")).unwrap();
        let w = walk(root, Path::new(""), &all(), &all()).unwrap();
        assert_eq!(
            paths(&w),
            [
                "/", "a/", "a/b/", "a/b/c", "a/z", "a-b", "b", "empty/", "link"
            ]
        );
        for pair in w.entries.windows(2) {
            assert_eq!(
                path_order(&pair[0].path, &pair[1].path),
                std::cmp::Ordering::Less
            );
        }
        let by = |p: &str| w.entries.iter().find(|e| e.path == p.as_bytes()).unwrap();
        assert!(matches!(by("b").kind, WalkKind::File { exec: true, .. }));
        assert!(matches!(by("a-b").kind, WalkKind::File { exec: false, .. }));
        assert_eq!(by("a/z").size(), 2);
        assert_eq!(
            by("link").kind,
            WalkKind::Symlink {
                target: b"a/z".to_vec(),
                escapes_context: false
            }
        );
    }

    #[test]
    fn inputs_that_are_files_links_and_subdirectories() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "src/lib/x.rs", b"x");
        symlink("../../etc/passwd", root.join("src/out")).unwrap();
        let w = walk(root, Path::new("./src/lib/x.rs"), &all(), &all()).unwrap();
        assert_eq!(w.input, b"src/lib/x.rs");
        assert_eq!(paths(&w), [""]);
        let w = walk(root, Path::new("src/lib/"), &all(), &all()).unwrap();
        assert_eq!(paths(&w), ["/", "x.rs"]);
        assert_eq!(w.context_path(&w.entries[1]), b"src/lib/x.rs");
        assert_eq!(w.disk_path(root, &w.entries[1]), root.join("src/lib/x.rs"));
        let w = walk(root, Path::new("src/out"), &all(), &all()).unwrap();
        assert!(matches!(
            w.entries[0].kind,
            WalkKind::Symlink {
                escapes_context: true,
                ..
            }
        ));
    }

    #[test]
    fn bad_inputs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "real/f", b"");
        symlink("real", root.join("link")).unwrap();
        let err = |p: &str| walk(root, Path::new(p), &all(), &all()).unwrap_err();
        assert!(matches!(err("/etc"), PlanError::InputOutsideContext { .. }));
        assert!(matches!(
            err("a/../../x"),
            PlanError::InputOutsideContext { .. }
        ));
        assert!(matches!(err("nope"), PlanError::MissingInput { .. }));
        assert!(matches!(err("real/f/g"), PlanError::MissingInput { .. }));
        let e = err("link/f");
        assert!(matches!(e, PlanError::SymlinkInInputPath { .. }));
        assert!(e.to_string().contains("link"), "{e}");
    }

    #[test]
    fn escaping_targets_are_detected_lexically() {
        assert!(target_escapes(b"l", b"/etc"));
        assert!(target_escapes(b"l", b".."));
        assert!(target_escapes(b"a/l", b"../../x"));
        assert!(target_escapes(b"a/l", b"b/../../../x"));
        assert!(!target_escapes(b"a/l", b"../x"));
        assert!(!target_escapes(b"a/b/l", b"./../../x"));
        assert!(!target_escapes(b"l", b"l"));
    }

    #[test]
    fn fifo_is_rejected_with_its_path_unless_excluded() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "d/ok", b"");
        let status = std::process::Command::new("mkfifo")
            .arg(root.join("d/pipe"))
            .status()
            .unwrap();
        assert!(status.success());
        let e = walk(root, Path::new("d"), &all(), &all()).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, PlanError::SpecialFile { kind: "fifo", .. }),
            "{msg}"
        );
        assert!(
            msg.contains(&root.join("d/pipe").display().to_string()),
            "{msg}"
        );
        let excludes = Matcher::new(["pipe"]).unwrap();
        let w = walk(root, Path::new("d"), &all(), &excludes).unwrap();
        assert_eq!(paths(&w), ["/", "ok"]);
        let ignore = Matcher::new(["d/pipe"]).unwrap();
        let w = walk(root, Path::new("d"), &ignore, &all()).unwrap();
        assert_eq!(paths(&w), ["/", "ok"]);
    }

    #[test]
    fn symlink_loops_long_paths_and_non_utf8_names() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        symlink("loop", root.join("loop")).unwrap();
        symlink("b", root.join("a")).unwrap();
        symlink("a", root.join("b")).unwrap();
        symlink(".", root.join("self")).unwrap();
        let long: String = (0..34).map(|i| format!("dir{i:05}/")).collect::<String>() + "file";
        assert!(long.len() >= 300);
        write(root, &long, b"deep");
        let name = OsStr::from_bytes(b"caf\xe9");
        fs_err::write(root.join(name), b"latin-1").unwrap();
        let w = walk(root, Path::new(""), &all(), &all()).unwrap();
        assert!(w.entries.iter().any(|e| e.path == long.as_bytes()));
        assert!(w.entries.iter().any(|e| e.path == b"caf\xe9"));
        let links = w
            .entries
            .iter()
            .filter(|e| matches!(e.kind, WalkKind::Symlink { .. }))
            .count();
        assert_eq!(links, 4);
    }

    #[test]
    fn ignore_and_excludes_combine() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "app/main.py",
            "app/test/t.py",
            "app/cache/x",
            "app/keep/k",
            "notes",
        ] {
            write(root, f, b"");
        }
        let ignore = Matcher::new(["**/cache", "notes"]).unwrap();
        let excludes = Matcher::new(["test", "*.md"]).unwrap();
        let w = walk(root, Path::new("app"), &ignore, &excludes).unwrap();
        assert_eq!(paths(&w), ["/", "keep/", "keep/k", "main.py"]);
        // Excludes are relative to the input, not the context.
        let excludes = Matcher::new(["app/main.py"]).unwrap();
        let w = walk(root, Path::new("app"), &all(), &excludes).unwrap();
        assert!(paths(&w).contains(&"main.py".to_owned()));
        // An input the ignore rules remove entirely is an error naming both.
        let ignore = Matcher::parse_ignore_file(b"app\n", "/ctx/.dockerignore").unwrap();
        let e = walk(root, Path::new("app/keep"), &ignore, &all()).unwrap_err();
        assert!(matches!(e, PlanError::InputIgnored { .. }));
        assert!(e.to_string().contains("/ctx/.dockerignore"), "{e}");
        // ... unless something under it is re-included.
        let ignore = Matcher::new(["app", "!app/keep/k"]).unwrap();
        let w = walk(root, Path::new("app/keep"), &ignore, &all()).unwrap();
        assert_eq!(paths(&w), ["/", "k"]);
        let w = walk(root, Path::new(""), &ignore, &all()).unwrap();
        assert_eq!(paths(&w), ["/", "app/", "app/keep/", "app/keep/k", "notes"]);
    }

    #[test]
    fn conformance_table_through_a_real_walk() {
        for row in conformance::rows() {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path();
            let path = row.path.trim_end_matches('/');
            if row.path.ends_with('/') {
                fs_err::create_dir_all(root.join(path)).unwrap();
            } else {
                write(root, path, b"");
            }
            let file = row.patterns.join("\n");
            let ignore = Matcher::parse_ignore_file(file.as_bytes(), "table").unwrap();
            let w = walk(root, Path::new(""), &ignore, &all()).unwrap();
            let present = w.entries.iter().any(|e| e.path == path.as_bytes());
            assert_eq!(
                !present, row.excluded,
                "ignore_conformance.txt:{}: {} with {:?}",
                row.line, row.path, row.patterns
            );
        }
    }
}
