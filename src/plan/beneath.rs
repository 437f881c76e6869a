//! Opening inputs beneath the context directory, never through a symlink
//! (`docs/oci.md`, "Guarantees"). A path component replaced by a symlink
//! after the walk cannot lead a read out of the context: every input is
//! opened relative to a handle of the context directory with `openat2`
//! (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`) where the kernel has it, else
//! component by component with `openat` (`O_NOFOLLOW`, `O_DIRECTORY` for the
//! directories). Files are opened with `O_NONBLOCK`, so a FIFO swapped in
//! cannot hang the build; the caller checks what it got with `fstat`.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{CWD, Mode, OFlags, ResolveFlags, openat, openat2};
use rustix::io::Errno;

use super::walk::FileStat;

/// Set once `openat2` is known to be missing (old kernel, seccomp filter).
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Opens the context directory itself (its own path may contain symlinks:
/// the user chose it).
pub fn open_root(path: &Path) -> io::Result<OwnedFd> {
    Ok(openat(
        CWD,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens the directory `rel` (context-relative, `/`-separated) beneath
/// `root`, following no symlink.
pub fn open_dir_beneath(root: impl AsFd, rel: &[u8]) -> io::Result<OwnedFd> {
    open(
        root.as_fd(),
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
    )
}

/// Opens the file `rel` (context-relative, `/`-separated) beneath `root`
/// for reading, following no symlink, without blocking on a FIFO.
pub fn open_file_beneath(root: impl AsFd, rel: &[u8]) -> io::Result<File> {
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    open(root.as_fd(), rel, flags).map(File::from)
}

/// Opens the regular file `rel` beneath `root` and checks that it is the
/// file the walk saw (`expected`: device, inode, size and times). `Ok(None)`
/// when it is not, or no longer there: it changed after the walk.
pub fn open_input(root: impl AsFd, rel: &[u8], expected: &FileStat) -> io::Result<Option<File>> {
    let file = match open_file_beneath(root, rel) {
        Ok(f) => f,
        Err(e) if is_changed(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    if fstat_file(&file)? != Some(*expected) {
        return Ok(None);
    }
    Ok(Some(file))
}

/// The stat of an open file, `None` when it is not a regular file.
pub fn fstat_file(file: &File) -> io::Result<Option<FileStat>> {
    let st = rustix::fs::fstat(file)?;
    Ok(
        (rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile)
            .then(|| FileStat::from_stat(&st)),
    )
}

/// Whether an open error means the path no longer leads to the walked file:
/// a symlink (`ELOOP`, `EXDEV`), something that is not a directory any more,
/// or nothing at all.
pub fn is_changed(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw_os_error),
        Some(Errno::LOOP | Errno::XDEV | Errno::NOTDIR | Errno::NOENT | Errno::NXIO)
    )
}

fn open(root: std::os::fd::BorrowedFd<'_>, rel: &[u8], flags: OFlags) -> io::Result<OwnedFd> {
    let components: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
    if components
        .iter()
        .any(|c| c.is_empty() || *c == b"." || *c == b"..")
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a clean relative path",
        ));
    }
    let rel_os = std::ffi::OsStr::from_bytes(rel);
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        let mut tries = 0;
        loop {
            match openat2(root, rel_os, flags, Mode::empty(), resolve) {
                Ok(fd) => return Ok(fd),
                // A concurrent rename made the kernel give up: try again.
                Err(Errno::AGAIN) if tries < 8 => tries += 1,
                Err(Errno::NOSYS | Errno::PERM) => {
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    let (last, dirs) = components.split_last().expect("split yields one item");
    let mut dir: Option<OwnedFd> = None;
    for c in dirs {
        let at = dir.as_ref().map_or(root, |d| d.as_fd());
        let next = openat(
            at,
            std::ffi::OsStr::from_bytes(c),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        dir = Some(next);
    }
    let at = dir.as_ref().map_or(root, |d| d.as_fd());
    Ok(openat(
        at,
        std::ffi::OsStr::from_bytes(last),
        flags,
        Mode::empty(),
    )?)
}

use std::os::unix::ffi::OsStrExt;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn opens_below_the_root_and_never_through_a_symlink() {
        let outside = tempfile::tempdir().unwrap();
        fs_err::write(outside.path().join("secret"), b"outside").unwrap();
        let ctx = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(ctx.path().join("d")).unwrap();
        fs_err::write(ctx.path().join("d/f"), b"inside").unwrap();
        symlink(outside.path(), ctx.path().join("swapped")).unwrap();
        symlink("d/f", ctx.path().join("link")).unwrap();
        let root = open_root(ctx.path()).unwrap();
        let read = |rel: &[u8]| -> io::Result<Vec<u8>> {
            let mut f = open_file_beneath(&root, rel)?;
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut v)?;
            Ok(v)
        };
        assert_eq!(read(b"d/f").unwrap(), b"inside");
        for rel in [
            &b"swapped/secret"[..],
            b"link",
            b"../x",
            b"/etc/passwd",
            b"d//f",
        ] {
            let e = read(rel).unwrap_err();
            assert!(
                is_changed(&e) || e.kind() == io::ErrorKind::InvalidInput,
                "{}: {e}",
                String::from_utf8_lossy(rel)
            );
        }
        assert!(open_dir_beneath(&root, b"d").is_ok());
        assert!(open_dir_beneath(&root, b"swapped").is_err());
        // The fallback gives the same answers.
        NO_OPENAT2.store(true, Ordering::Relaxed);
        assert_eq!(read(b"d/f").unwrap(), b"inside");
        assert!(is_changed(&read(b"swapped/secret").unwrap_err()));
        assert!(is_changed(&read(b"link").unwrap_err()));
        NO_OPENAT2.store(false, Ordering::Relaxed);
    }

    #[test]
    fn a_fifo_does_not_block_and_a_replaced_file_is_refused() {
        let ctx = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(ctx.path().join("pipe"))
            .status()
            .unwrap();
        assert!(status.success());
        fs_err::write(ctx.path().join("f"), b"one").unwrap();
        let root = open_root(ctx.path()).unwrap();
        let stat = FileStat::from_metadata(&fs_err::metadata(ctx.path().join("f")).unwrap());
        assert!(open_input(&root, b"f", &stat).unwrap().is_some());
        assert!(open_input(&root, b"pipe", &stat).unwrap().is_none());
        fs_err::remove_file(ctx.path().join("f")).unwrap();
        fs_err::write(ctx.path().join("f"), b"two").unwrap();
        assert!(open_input(&root, b"f", &stat).unwrap().is_none());
    }
}
