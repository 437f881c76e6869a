//! Writing into an output layout (`oci-layout:DIR[:TAG]`) safely next to
//! other builds and failures (docs/oci.md, "Guarantees").
//!
//! - **Lock.** A write holds an exclusive advisory `flock` on the layout
//!   directory itself (no lock file: nothing is left behind) from its first
//!   file to the new `index.json`, so concurrent builds into one layout take
//!   turns and every build's tag lands. After taking the lock the directory
//!   is checked to still be the one at the path (a failed build may have
//!   removed a directory it created); if not, the write starts over.
//! - **Validation.** An existing directory must be empty or an OCI layout;
//!   `index.json` must be a regular JSON file of at most [`MAX_JSON`] bytes,
//!   and `blobs/` and `blobs/sha256/` real directories (never symlinks that
//!   would send blobs elsewhere). Nothing is written before these hold.
//! - **Rollback.** Until [`LayoutWrite::commit`] succeeds, dropping the write
//!   removes every blob, file and directory it created (the layout's parent
//!   directories included), still under the lock, so no other build can have
//!   started using them. What existed before is never touched: `index.json`
//!   is replaced atomically, only by the commit.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::error::{IoContext, OciError, Result};
use super::image::{Descriptor, ImageIndex, REF_NAME};
use super::layout::{MAX_JSON, OCI_LAYOUT, OciDir, canonical_json, parse_json, write_atomic};

/// How often the lock is taken again when the directory vanished under it.
const ATTEMPTS: usize = 20;

/// Exclusive, undoable write access to an output layout.
pub struct LayoutWrite {
    dir: OciDir,
    /// The open layout directory, `flock`ed; closing it releases the lock.
    lock: Option<fs_err::File>,
    /// Directories this write created, outermost first.
    created_dirs: Vec<PathBuf>,
    /// Files this write created outside `blobs/sha256`.
    created_files: Vec<PathBuf>,
    /// Names in `blobs/sha256` before the write; `None` until they are
    /// listed (then the rollback removes no blob at all).
    blobs_before: Option<BTreeSet<OsString>>,
    committed: bool,
}

impl LayoutWrite {
    /// Takes the layout at `root` for writing, creating it (and its missing
    /// parents) when it does not exist. Blocks while another build holds it.
    pub fn begin(root: &Path) -> Result<Self> {
        let mut attempt = 0;
        let (lock, created_dirs) = loop {
            attempt += 1;
            let created = create_dirs(root)?;
            let dir = fs_err::File::open(root).at(root)?;
            if !dir.metadata().at(root)?.is_dir() {
                return Err(bad_output(root, "is not a directory"));
            }
            rustix::fs::flock(&dir, rustix::fs::FlockOperation::LockExclusive)
                .map_err(|e| OciError::io(root, io::Error::from(e)))?;
            let held = dir.metadata().at(root)?;
            let same = fs_err::metadata(root)
                .is_ok_and(|m| m.dev() == held.dev() && m.ino() == held.ino());
            if same {
                break (dir, created);
            }
            if attempt == ATTEMPTS {
                return Err(OciError::io(
                    root,
                    io::Error::other("the directory keeps being replaced while it is locked"),
                ));
            }
        };
        let mut w = Self {
            dir: OciDir::at(root),
            lock: Some(lock),
            created_dirs,
            created_files: Vec::new(),
            blobs_before: None,
            committed: false,
        };
        w.prepare()?;
        Ok(w)
    }

    /// Checks what is there and creates what is missing (recorded).
    fn prepare(&mut self) -> Result<()> {
        let root = self.dir.root().to_owned();
        let layout_file = root.join("oci-layout");
        let names: Vec<OsString> = fs_err::read_dir(&root)
            .at(&root)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .at(&root)?;
        // A temp file left by a killed write does not make a directory
        // someone else's.
        let names: Vec<OsString> = names
            .into_iter()
            .filter(|n| !n.to_string_lossy().starts_with(".tmp-"))
            .collect();
        if !names.is_empty() && !names.iter().any(|n| n == "oci-layout") {
            return Err(bad_output(
                &root,
                "exists and is not an OCI layout (it has files but no `oci-layout`): name a new or empty directory",
            ));
        }
        for sub in [root.join("blobs"), self.dir.blobs_dir()] {
            match fs_err::symlink_metadata(&sub) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(bad_output(&sub, "is not a directory (a symlink or a file)")),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(OciError::io(&sub, e)),
            }
        }
        if !names.is_empty() {
            OciDir::open(&root)?;
            read_index_file(&self.dir.index_path())?;
        }
        let blobs = self.dir.blobs_dir();
        self.blobs_before = Some(if blobs.is_dir() {
            fs_err::read_dir(&blobs)
                .at(&blobs)?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<io::Result<_>>()
                .at(&blobs)?
        } else {
            BTreeSet::new()
        });
        // `oci-layout` first: a directory a killed write left is still
        // recognized as a layout.
        if !layout_file.exists() {
            self.created_files.push(layout_file.clone());
            write_atomic(&layout_file, OCI_LAYOUT)?;
        }
        for sub in [root.join("blobs"), blobs] {
            match fs_err::create_dir(&sub) {
                Ok(()) => self.created_dirs.push(sub),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(OciError::io(&sub, e)),
            }
        }
        Ok(())
    }

    /// The layout being written.
    pub fn layout(&self) -> &OciDir {
        &self.dir
    }

    /// Points `tag` at `manifest` in `index.json` (read again under the
    /// lock, every other entry kept) and ends the write. Every blob the
    /// manifest references must be in the layout.
    pub fn commit(mut self, manifest: &Descriptor, tag: &str) -> Result<()> {
        let path = self.dir.index_path();
        let mut index = read_index_file(&path)?.unwrap_or_default();
        set_tag(&mut index, manifest, tag);
        let existed = path.exists();
        if !existed {
            self.created_files.push(path.clone());
        }
        write_atomic(&path, &canonical_json(&index)?)?;
        self.committed = true;
        Ok(())
    }

    /// Removes what this write created (under the lock).
    fn rollback(&mut self) {
        let blobs = self.dir.blobs_dir();
        if let (Some(before), Ok(rd)) = (&self.blobs_before, fs_err::read_dir(&blobs)) {
            for e in rd.flatten() {
                if !before.contains(&e.file_name()) {
                    let _ = fs_err::remove_file(e.path());
                }
            }
        }
        for f in self.created_files.iter().rev() {
            let _ = fs_err::remove_file(f);
        }
        for d in self.created_dirs.iter().rev() {
            // Only when empty: never what someone else put there.
            let _ = fs_err::remove_dir(d);
        }
    }
}

impl Drop for LayoutWrite {
    fn drop(&mut self) {
        if !self.committed {
            self.rollback();
        }
        // The lock goes last, after the rollback.
        drop(self.lock.take());
    }
}

/// Adds or replaces the entry tagged `tag` with `manifest`.
pub(crate) fn set_tag(index: &mut ImageIndex, manifest: &Descriptor, tag: &str) {
    let mut desc = manifest.clone();
    desc.annotations.insert(REF_NAME.to_owned(), tag.to_owned());
    let same_tag = |d: &Descriptor| d.annotations.get(REF_NAME).map(String::as_str) == Some(tag);
    match index.manifests.iter().position(same_tag) {
        Some(i) => index.manifests[i] = desc,
        None => index.manifests.push(desc),
    }
    index.manifests.retain({
        let mut seen = false;
        move |d| !same_tag(d) || !std::mem::replace(&mut seen, true)
    });
}

/// Reads an output's `index.json`: a regular file (not a symlink) of at most
/// [`MAX_JSON`] bytes holding an index; `None` when there is none.
fn read_index_file(path: &Path) -> Result<Option<ImageIndex>> {
    match fs_err::symlink_metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(_) => return Err(bad_output(path, "is not a regular file (a symlink?)")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(OciError::io(path, e)),
    }
    let mut bytes = Vec::new();
    fs_err::File::open(path)
        .at(path)?
        .take(MAX_JSON + 1)
        .read_to_end(&mut bytes)
        .at(path)?;
    if bytes.len() as u64 > MAX_JSON {
        return Err(bad_output(
            path,
            &format!("is larger than {MAX_JSON} bytes: not an index strata wrote"),
        ));
    }
    parse_json(&bytes, &path.display().to_string()).map(Some)
}

fn bad_output(path: &Path, reason: &str) -> OciError {
    OciError::BadOutput {
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Creates `root` and its missing parents; returns those it created,
/// outermost first (a directory that appears meanwhile is not ours).
fn create_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut p = root;
    loop {
        match fs_err::symlink_metadata(p) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(p.to_owned()),
            Err(e) => return Err(OciError::io(p, e)),
        }
        match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => p = parent,
            _ => break,
        }
    }
    let mut created = Vec::new();
    for d in missing.into_iter().rev() {
        match fs_err::create_dir(&d) {
            Ok(()) => created.push(d),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(OciError::io(&d, e)),
        }
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::layout::tests::small_image;

    fn tree(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_owned()];
        while let Some(d) = stack.pop() {
            for e in fs_err::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let p = e.path();
                out.push(p.strip_prefix(root).unwrap().display().to_string());
                if e.file_type().unwrap().is_dir() {
                    stack.push(p);
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn a_failed_write_into_a_new_path_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("a/b/out");
        {
            let w = LayoutWrite::begin(&root).unwrap();
            small_image(w.layout(), b"layer");
            assert!(root.join("oci-layout").exists());
            // Dropped without commit: a failure.
        }
        assert!(tree(tmp.path()).is_empty(), "{:?}", tree(tmp.path()));
    }

    #[test]
    fn a_failed_write_into_an_existing_layout_keeps_it_as_it_was() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("out");
        let w = LayoutWrite::begin(&root).unwrap();
        let one = small_image(w.layout(), b"one");
        w.commit(&one, "v1").unwrap();
        let before = tree(&root);
        let index = fs_err::read(root.join("index.json")).unwrap();
        {
            let w = LayoutWrite::begin(&root).unwrap();
            small_image(w.layout(), b"two");
        }
        assert_eq!(tree(&root), before);
        assert_eq!(fs_err::read(root.join("index.json")).unwrap(), index);
        let w = LayoutWrite::begin(&root).unwrap();
        let two = small_image(w.layout(), b"two");
        w.commit(&two, "v2").unwrap();
        let dir = OciDir::open(&root).unwrap();
        assert_eq!(dir.resolve_tag("v1").unwrap().digest, one.digest);
        assert_eq!(dir.resolve_tag("v2").unwrap().digest, two.digest);
        assert_eq!(dir.fsck().unwrap(), 5);
    }

    #[test]
    fn a_refused_layout_is_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("out");
        let w = LayoutWrite::begin(&root).unwrap();
        let one = small_image(w.layout(), b"one");
        w.commit(&one, "v1").unwrap();
        fs_err::write(root.join("index.json"), "garbage").unwrap();
        let before = tree(&root);
        let err = LayoutWrite::begin(&root).err().unwrap();
        assert!(err.to_string().contains("index.json"), "{err}");
        assert_eq!(tree(&root), before, "no blob removed");
        assert_eq!(fs_err::read(root.join("index.json")).unwrap(), b"garbage");
    }

    #[test]
    fn writes_take_turns_and_every_tag_lands() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("out");
        std::thread::scope(|s| {
            for i in 0..8 {
                let root = &root;
                s.spawn(move || {
                    let w = LayoutWrite::begin(root).unwrap();
                    let m = small_image(w.layout(), format!("layer {i}").as_bytes());
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    w.commit(&m, &format!("t{i}")).unwrap();
                });
            }
        });
        let dir = OciDir::open(&root).unwrap();
        assert_eq!(dir.read_index().unwrap().manifests.len(), 8);
    }

    #[test]
    fn refuses_what_is_not_a_layout() {
        let tmp = tempfile::tempdir().unwrap();
        // A directory with other files.
        let home = tmp.path().join("home");
        fs_err::create_dir(&home).unwrap();
        fs_err::write(home.join("notes.txt"), "mine").unwrap();
        let err = LayoutWrite::begin(&home).err().unwrap();
        assert!(err.to_string().contains("is not an OCI layout"), "{err}");
        assert_eq!(tree(&home), ["notes.txt"]);
        // A regular file.
        let file = tmp.path().join("file");
        fs_err::write(&file, "x").unwrap();
        assert!(LayoutWrite::begin(&file).is_err());
        assert_eq!(fs_err::read(&file).unwrap(), b"x");
        // `blobs` a symlink to elsewhere.
        let out = tmp.path().join("out");
        let w = LayoutWrite::begin(&out).unwrap();
        let m = small_image(w.layout(), b"x");
        w.commit(&m, "v1").unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        fs_err::create_dir_all(elsewhere.join("sha256")).unwrap();
        fs_err::remove_dir_all(out.join("blobs")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, out.join("blobs")).unwrap();
        let err = LayoutWrite::begin(&out).err().unwrap();
        assert!(err.to_string().contains("not a directory"), "{err}");
        assert!(tree(&elsewhere).len() == 1);
    }
}
