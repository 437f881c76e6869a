//! The stamping pass: every file, directory and symlink of the root
//! filesystem changed since the start mark gets the layer timestamp.

use fs_err as fs;
use std::collections::{BTreeSet, HashMap};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};

/// A point in time as the kernel stamps files: seconds and nanoseconds.
pub(crate) type Mark = (i64, i64);

/// What a pass did, for tests and the `--stats` line.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    /// Entries looked at (mount points and other file systems excluded).
    pub(crate) seen: u64,
    /// Entries stamped.
    pub(crate) stamped: u64,
}

/// The mount points of `/proc/self/mountinfo` (its fifth field, with the
/// kernel's octal escapes undone), `/` excluded.
pub(crate) fn mount_points(mountinfo: &str) -> BTreeSet<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .filter(|p| p != "/")
        .map(PathBuf::from)
        .collect()
}

/// Undoes the `\NNN` octal escapes of mountinfo (space, tab, newline, `\`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What BuildKit's overlay differ compares to leave a copied-up entry out
/// of the layer: type and mode, owner, size, mtime.
type Sig = (u32, u32, u32, u64, i64, i64);

fn sig(m: &std::fs::Metadata) -> Sig {
    (
        m.mode(),
        m.uid(),
        m.gid(),
        if m.is_dir() { 0 } else { m.size() },
        m.mtime(),
        m.mtime_nsec(),
    )
}

fn with_path(p: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

/// Calls `f` for `root` and every entry under it, without following
/// symlinks and without entering `skip` or any other file system.
fn walk(
    root: &Path,
    skip: &BTreeSet<PathBuf>,
    mut f: impl FnMut(&Path, &std::fs::Metadata) -> io::Result<()>,
) -> io::Result<()> {
    let meta = fs::symlink_metadata(root)?;
    let dev = meta.dev();
    f(root, &meta)?;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            // Removed by a process the command left behind: nothing to stamp.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry.map_err(|e| with_path(&dir, e))?;
            let path = entry.path();
            if skip.contains(&path) {
                continue;
            }
            let m = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(with_path(&path, e)),
            };
            if m.dev() != dev {
                continue;
            }
            f(&path, &m)?;
            if m.is_dir() {
                stack.push(path);
            }
        }
    }
    Ok(())
}

/// The root file system before the command: what the differ would compare
/// an entry the command changed with, by path.
pub(crate) struct Before(HashMap<PathBuf, Sig>);

/// Records every entry's [`Sig`] (see [`stamp`]).
pub(crate) fn before(root: &Path, skip: &BTreeSet<PathBuf>) -> io::Result<Before> {
    let mut map = HashMap::new();
    walk(root, skip, |p, m| {
        map.insert(p.to_path_buf(), sig(m));
        Ok(())
    })?;
    Ok(Before(map))
}

/// Sets atime and mtime of every entry the command changed to `timestamp`.
///
/// Changed: its ctime is at or after `mark`. Left alone: an entry whose
/// mtime is before the mark and whose mode, owner, size and mtime are what
/// they were before the command: a base file it only copied up (a no-op
/// `chown -R`), which BuildKit's differ leaves out of the layer unless it
/// is stamped. So new files with old mtimes (`cp -p` of an input) are
/// stamped, untouched base files are never copied up.
pub(crate) fn stamp(
    root: &Path,
    skip: &BTreeSet<PathBuf>,
    before: &Before,
    mark: Mark,
    timestamp: i64,
) -> io::Result<Stats> {
    let ts = Timespec {
        tv_sec: timestamp,
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: ts,
        last_modification: ts,
    };
    let mut stats = Stats::default();
    walk(root, skip, |path, m| {
        stats.seen += 1;
        if (m.ctime(), m.ctime_nsec()) < mark {
            return Ok(());
        }
        if (m.mtime(), m.mtime_nsec()) < mark && before.0.get(path) == Some(&sig(m)) {
            return Ok(());
        }
        utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| with_path(path, e.into()))?;
        stats.stamped += 1;
        Ok(())
    })?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn mountinfo_points_are_unescaped_and_root_is_left_out() {
        let info = "22 1 0:21 / / rw - overlay overlay rw\n\
                    23 22 0:22 / /proc rw - proc proc rw\n\
                    24 22 0:23 / /app/my\\040dir ro - ext4 /dev/sda rw\n";
        let points = mount_points(info);
        assert_eq!(
            points.into_iter().collect::<Vec<_>>(),
            vec![PathBuf::from("/app/my dir"), PathBuf::from("/proc")]
        );
    }

    fn mtime(p: &Path) -> i64 {
        fs::symlink_metadata(p).unwrap().mtime()
    }

    #[test]
    fn only_entries_changed_since_the_mark_are_stamped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir(root.join("old")).unwrap();
        fs::write(root.join("old/file"), "x").unwrap();
        fs::create_dir(root.join("skipped")).unwrap();
        // Age the "base": stamp it with a time far before the mark.
        let old = Timespec {
            tv_sec: 1_000_000_000,
            tv_nsec: 0,
        };
        let t = Timestamps {
            last_access: old,
            last_modification: old,
        };
        for p in ["old/file", "old", "skipped", ""] {
            utimensat(CWD, root.join(p), &t, AtFlags::SYMLINK_NOFOLLOW).unwrap();
        }
        let skip = BTreeSet::from([root.join("skipped")]);
        let before = before(root, &skip).unwrap();
        // The mark comes from a file's own ctime, as in main.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let probe = tempfile::NamedTempFile::new_in(root).unwrap();
        let pm = fs::metadata(probe.path()).unwrap();
        let mark = (pm.ctime(), pm.ctime_nsec());
        drop(probe);
        // The "command": new files, a dir, a symlink, a hard link, and a
        // file in a skipped mount point.
        fs::create_dir(root.join("new")).unwrap();
        fs::write(root.join("new/a"), "a").unwrap();
        fs::hard_link(root.join("new/a"), root.join("new/b")).unwrap();
        symlink("/nonexistent", root.join("new/link")).unwrap();
        fs::write(root.join("skipped/inside"), "s").unwrap();
        // A no-op chown of a base file (ctime only) and a new file with an
        // old mtime (`cp -p`).
        std::os::unix::fs::lchown(
            root.join("old/file"),
            Some(fs::metadata(root.join("old/file")).unwrap().uid()),
            None,
        )
        .unwrap();
        fs::write(root.join("new/kept"), "k").unwrap();
        utimensat(CWD, root.join("new/kept"), &t, AtFlags::SYMLINK_NOFOLLOW).unwrap();
        assert!(fs::metadata(root.join("old/file")).unwrap().ctime() >= mark.0);
        let stats = stamp(root, &skip, &before, mark, 315_619_200).unwrap();
        for p in ["new", "new/a", "new/b", "new/link", "new/kept", ""] {
            assert_eq!(mtime(&root.join(p)), 315_619_200, "{p}");
        }
        // Untouched entries keep their time; the skipped tree is not entered.
        assert_eq!(mtime(&root.join("old")), 1_000_000_000);
        assert_eq!(mtime(&root.join("old/file")), 1_000_000_000);
        assert_ne!(mtime(&root.join("skipped/inside")), 315_619_200);
        assert_eq!(stats.stamped, 6);
    }
}
