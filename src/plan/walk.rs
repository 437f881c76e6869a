//! A sorted walk of one input: a context-relative path that is a file, a
//! symlink or a directory, filtered by the context's ignore rules (paths
//! relative to the context) and the copy entry's excludes (paths relative to
//! the input). Symlinks are never followed: they are entries. The output is in
//! the canonical order of [`super::entries::path_order`]; directories are
//! read in parallel.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use std::os::fd::{AsFd, OwnedFd};

use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType, Stat, statat};

use super::beneath::{open_dir_beneath, open_root};
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

impl FileStat {
    /// The stat fields of a `stat`/`fstat` result.
    #[allow(clippy::unnecessary_cast)]
    pub fn from_stat(st: &Stat) -> FileStat {
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        FileStat {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            size: st.st_size as u64,
            mtime_ns: ns(st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime_ns: ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
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
/// An input that is itself a symlink is followed while its target stays in
/// the context (as Docker's `COPY` follows a source that is a link); its
/// entries are then the target's.
///
/// Errors: the input is absolute or leaves the context, goes through a
/// symlinked directory, is a symlink leading out of the context, does not
/// exist, is entirely ignored; a FIFO, socket or device that is not
/// excluded; any I/O error (naming its path).
pub fn walk(
    context: &Path,
    input: &Path,
    ignore: &Matcher,
    excludes: &Matcher,
) -> Result<Walk, PlanError> {
    walk_skipping(context, input, ignore, excludes, &[])
}

/// Like [`walk`], leaving out the context-relative paths of `skip` (and
/// everything under them): strata's own output and cache when they lie
/// inside the context.
pub fn walk_skipping(
    context: &Path,
    input: &Path,
    ignore: &Matcher,
    excludes: &Matcher,
    skip: &[Vec<u8>],
) -> Result<Walk, PlanError> {
    let root_fd = open_root(context).map_err(io_at(context))?;
    let walker = Walker {
        context,
        ignore,
        excludes,
        skip,
    };
    let mut input = normalize_input(input)?;
    // A symlink named as the input is followed while it stays inside the
    // context (as Docker's COPY does), at most this many times.
    let mut hops = 0;
    let (input, state, input_ignored, parent, meta) = loop {
        let (state, input_ignored, parent, meta) = walker.parents(&root_fd, &input)?;
        if FileType::from_raw_mode(meta.st_mode) == FileType::Symlink && !input.is_empty() {
            let name = input
                .rsplit(|&b| b == b'/')
                .next()
                .unwrap_or(&input)
                .to_vec();
            let at = parent.as_ref().map_or(root_fd.as_fd(), |p| p.as_fd());
            let target = rustix::fs::readlinkat(at, OsStr::from_bytes(&name), Vec::new())
                .map_err(|e| PlanError::io(disk(context, &input), e.into()))?
                .into_bytes();
            let refuse = |reason: &'static str| PlanError::SourceLink {
                path: disk(context, &input),
                target: String::from_utf8_lossy(&target).into_owned(),
                reason,
            };
            if target_escapes(&input, &target) {
                return Err(refuse("it leads out of the context"));
            }
            hops += 1;
            if hops > 32 {
                return Err(refuse("too many levels of symbolic links"));
            }
            let dir = match input.iter().rposition(|&b| b == b'/') {
                Some(i) => &input[..i],
                None => &[][..],
            };
            let joined = join(dir, &target);
            let cleaned = clean(&joined);
            input = if cleaned == b"." { Vec::new() } else { cleaned };
            continue;
        }
        break (input, state, input_ignored, parent, meta);
    };

    let root = disk(context, &input);
    let entries = if FileType::from_raw_mode(meta.st_mode) == FileType::Directory {
        let dir_fd = if input.is_empty() {
            open_root(context).map_err(io_at(context))?
        } else {
            open_dir_beneath(&root_fd, &input).map_err(|e| changed_or_io(&root, e))?
        };
        let children = walker.dir(
            &dir_fd,
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
        let at = parent.as_ref().map_or(root_fd.as_fd(), |p| p.as_fd());
        let name = input
            .rsplit(|&b| b == b'/')
            .next()
            .unwrap_or(&input)
            .to_vec();
        vec![leaf(at, &name, &root, &input, Vec::new(), &meta)?]
    };
    Ok(Walk { input, entries })
}

/// An error opening a directory the walk saw: it changed (a symlink or
/// nothing is there now) or plain I/O.
fn changed_or_io(path: &Path, e: std::io::Error) -> PlanError {
    if super::beneath::is_changed(&e) {
        PlanError::Changed {
            path: path.to_path_buf(),
        }
    } else {
        PlanError::io(path, e)
    }
}

struct Walker<'a> {
    context: &'a Path,
    ignore: &'a Matcher,
    excludes: &'a Matcher,
    skip: &'a [Vec<u8>],
}

/// How many directories deep below the context root a walk goes.
pub const MAX_DEPTH: usize = 256;

/// What [`Walker::parents`] learns of an input: the ignore state below its
/// parent, whether the input itself is ignored, a handle of its parent
/// directory (`None`: the context) and the input's own `lstat`.
type Parents = (MatchState, bool, Option<OwnedFd>, Stat);

impl Walker<'_> {
    /// Checks the parent directories of `input` (no symlinks, decided as
    /// BuildKit's walk from the context root would) and `lstat`s the input.
    fn parents(&self, root_fd: &OwnedFd, input: &[u8]) -> Result<Parents, PlanError> {
        let context = self.context;
        let ignore = self.ignore;
        let mut state = ignore.root_state();
        let mut input_ignored = false;
        let components: Vec<&[u8]> = if input.is_empty() {
            Vec::new()
        } else {
            input.split(|&b| b == b'/').collect()
        };
        let mut parent: Option<OwnedFd> = None;
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
                let at = parent.as_ref().map_or(root_fd.as_fd(), |p| p.as_fd());
                let meta = lstat_input(at, component, &path, input, context)?;
                match FileType::from_raw_mode(meta.st_mode) {
                    FileType::Symlink => {
                        return Err(PlanError::SymlinkInInputPath {
                            path: disk(context, input),
                            link: path,
                        });
                    }
                    FileType::Directory => {}
                    _ => {
                        return Err(PlanError::MissingInput {
                            path: disk(context, input),
                        });
                    }
                }
                if excluded && ignore.can_skip_dir(&prefix) {
                    return Err(self.ignored(input));
                }
                let next = rustix::fs::openat(
                    at,
                    OsStr::from_bytes(component),
                    rustix::fs::OFlags::RDONLY
                        | rustix::fs::OFlags::DIRECTORY
                        | rustix::fs::OFlags::NOFOLLOW
                        | rustix::fs::OFlags::CLOEXEC,
                    rustix::fs::Mode::empty(),
                )
                .map_err(|e| changed_or_io(&path, e.into()))?;
                parent = Some(next);
            }
            input_ignored = excluded;
        }
        let meta = match components.last() {
            None => rustix::fs::fstat(root_fd).map_err(|e| PlanError::io(context, e.into()))?,
            Some(name) => {
                let at = parent.as_ref().map_or(root_fd.as_fd(), |p| p.as_fd());
                lstat_input(at, name, &disk(context, input), input, context)?
            }
        };
        Ok((state, input_ignored, parent, meta))
    }

    /// The sorted, filtered contents of the directory open as `dir_fd`
    /// (`disk_dir` names it). `excluded` says whether the directory itself is
    /// excluded (then unreadable is empty, as BuildKit).
    #[allow(clippy::too_many_arguments)]
    fn dir(
        &self,
        dir_fd: &OwnedFd,
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
        let read = match rustix::fs::Dir::read_from(dir_fd) {
            Ok(read) => read,
            Err(e) if excluded && e == rustix::io::Errno::ACCESS => {
                return Ok(Vec::new());
            }
            Err(e) => return Err(PlanError::io(disk_dir, e.into())),
        };
        let mut names: Vec<Vec<u8>> = Vec::new();
        for entry in read {
            let entry = entry.map_err(|e| PlanError::io(disk_dir, e.into()))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(name.to_vec());
            }
        }
        names.sort_unstable();
        let results: Vec<Result<Vec<WalkEntry>, PlanError>> = names
            .par_iter()
            .map(|name| {
                self.child(
                    dir_fd,
                    disk_dir,
                    ctx_rel,
                    from_rel,
                    name,
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
    #[allow(clippy::too_many_arguments)]
    fn child(
        &self,
        dir_fd: &OwnedFd,
        disk_dir: &Path,
        ctx_rel: &[u8],
        from_rel: &[u8],
        name: &[u8],
        ignore_state: &MatchState,
        exclude_state: &MatchState,
    ) -> Result<Vec<WalkEntry>, PlanError> {
        let disk_path = disk_dir.join(OsStr::from_bytes(name));
        let ctx_path = join(ctx_rel, name);
        if self.skip.contains(&ctx_path) {
            return Ok(Vec::new());
        }
        let from_path = join(from_rel, name);
        let (ignored, ignore_next) = self.ignore.eval(&ctx_path, ignore_state);
        let (excluded, exclude_next) = self.excludes.eval(&from_path, exclude_state);
        let meta = statat(dir_fd, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| changed_or_io(&disk_path, e.into()))?;
        if FileType::from_raw_mode(meta.st_mode) == FileType::Directory {
            if (ignored && self.ignore.can_skip_dir(&ctx_path))
                || (excluded && self.excludes.can_skip_dir(&from_path))
            {
                return Ok(Vec::new());
            }
            let dropped = ignored || excluded;
            let sub_fd = match rustix::fs::openat(
                dir_fd,
                OsStr::from_bytes(name),
                rustix::fs::OFlags::RDONLY
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::NOFOLLOW
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::ACCESS) if dropped => return Ok(Vec::new()),
                Err(e) => return Err(changed_or_io(&disk_path, e.into())),
            };
            let sub = self.dir(
                &sub_fd,
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
            Ok(vec![leaf(
                dir_fd.as_fd(),
                name,
                &disk_path,
                &ctx_path,
                from_path,
                &meta,
            )?])
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

/// A non-directory entry `name` of the directory `dir`: file, symlink, or an
/// error for anything else.
fn leaf(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &[u8],
    disk_path: &Path,
    ctx_path: &[u8],
    path: Vec<u8>,
    meta: &Stat,
) -> Result<WalkEntry, PlanError> {
    let file_type = FileType::from_raw_mode(meta.st_mode);
    let kind = match file_type {
        FileType::RegularFile => WalkKind::File {
            exec: meta.st_mode & 0o111 != 0,
            stat: FileStat::from_stat(meta),
        },
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(dir, OsStr::from_bytes(name), Vec::new())
                .map_err(|e| changed_or_io(disk_path, e.into()))?
                .into_bytes();
            WalkKind::Symlink {
                escapes_context: target_escapes(ctx_path, &target),
                target,
            }
        }
        other => {
            let kind = match other {
                FileType::Fifo => "fifo",
                FileType::Socket => "socket",
                FileType::CharacterDevice => "character device",
                FileType::BlockDevice => "block device",
                _ => "special file",
            };
            return Err(PlanError::SpecialFile {
                path: disk_path.to_path_buf(),
                kind,
            });
        }
    };
    Ok(WalkEntry { path, kind })
}

/// `lstat` of an input path or one of its parents (`name` in `dir`); not
/// found is a missing input.
fn lstat_input(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &[u8],
    path: &Path,
    input: &[u8],
    context: &Path,
) -> Result<Stat, PlanError> {
    match statat(dir, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(meta) => Ok(meta),
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => Err(PlanError::MissingInput {
            path: disk(context, input),
        }),
        Err(e) => Err(PlanError::io(path, e.into())),
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
    use std::os::unix::fs::{PermissionsExt, symlink};

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
        // A symlink named as the input is followed inside the context, and
        // refused when it leads out.
        let e = walk(root, Path::new("src/out"), &all(), &all()).unwrap_err();
        assert!(matches!(e, PlanError::SourceLink { .. }), "{e}");
        assert!(e.to_string().contains("src/out"), "{e}");
        symlink("lib", root.join("src/current")).unwrap();
        symlink("current", root.join("src/again")).unwrap();
        for name in ["src/current", "src/again"] {
            let w = walk(root, Path::new(name), &all(), &all()).unwrap();
            assert_eq!(w.input, b"src/lib");
            assert_eq!(paths(&w), ["/", "x.rs"]);
        }
        symlink("lib/x.rs", root.join("src/file")).unwrap();
        let w = walk(root, Path::new("src/file"), &all(), &all()).unwrap();
        assert_eq!(w.input, b"src/lib/x.rs");
        assert!(matches!(w.entries[0].kind, WalkKind::File { .. }));
        symlink("loop", root.join("src/loop")).unwrap();
        let e = walk(root, Path::new("src/loop"), &all(), &all()).unwrap_err();
        assert!(e.to_string().contains("too many levels"), "{e}");
        // Symlinks inside a walked directory stay links.
        let w = walk(root, Path::new("src"), &all(), &all()).unwrap();
        assert!(
            w.entries
                .iter()
                .any(|e| e.path == b"current" && matches!(e.kind, WalkKind::Symlink { .. }))
        );
    }

    #[test]
    fn own_paths_are_skipped_and_an_input_swapped_for_an_outside_link_is_refused() {
        // strata's own output inside an input is left out; an input
        // directory replaced by a symlink to an outside tree is refused.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("ctx");
        let outside = dir.path().join("outside");
        write(&root, "d/inside", b"in");
        write(&outside, "secret", b"out");
        write(&root, "d/out/x", b"own output");
        let skip = vec![b"d/out".to_vec()];
        let w = walk_skipping(&root, Path::new("d"), &all(), &all(), &skip).unwrap();
        assert_eq!(paths(&w), ["/", "inside"]);
        fs_err::rename(root.join("d"), dir.path().join("d.real")).unwrap();
        symlink(&outside, root.join("d")).unwrap();
        let e = walk(&root, Path::new("d"), &all(), &all()).unwrap_err();
        assert!(matches!(e, PlanError::SourceLink { .. }), "{e}");
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
