//! The input digest of a walked input (docs/design.md §1).
//!
//! The input digest is SHA-256 over a length-prefixed encoding of the
//! input's entries in canonical order; each file is represented by the
//! SHA-256 of its content, so the digest is a two-level Merkle hash. It covers
//! paths, types, each file's final mode (from its exec bit, or the spec's
//! `mode`), sizes, content hashes and symlink targets, and nothing else: no
//! times, inode numbers, owners, umask-dependent bits or listing order.
//! `docs/digest.md` specifies the encoding byte by byte with a worked example.

use sha2::{Digest as _, Sha256};

use super::entries::path_order;
use super::error::PlanError;
use super::hash::ContentHashes;
use super::walk::{Walk, WalkKind};

pub use super::sha256::Digest;

/// The version tag that starts every input digest's encoding. Changing the
/// encoding means a new tag (and every layer rebuilds once).
pub const INPUT_DIGEST_TAG: &str = "strata.input/v1";

/// The mode a regular file gets in a layer (docs/design.md §1): the spec's `mode`
/// when given (permission and special bits only), else `0755` when any exec
/// bit is set, else `0644`.
pub fn file_mode(exec: bool, spec_mode: Option<u32>) -> u32 {
    match spec_mode {
        Some(mode) => mode & 0o7777,
        None if exec => 0o755,
        None => 0o644,
    }
}

/// Streams entries into an input digest (`docs/digest.md`). Entries must come
/// in canonical order ([`path_order`]), each path once.
#[derive(Clone)]
pub struct InputEncoder {
    hasher: Sha256,
    previous: Option<Vec<u8>>,
    count: u64,
}

impl Default for InputEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl InputEncoder {
    /// Starts an encoding with the version tag.
    pub fn new() -> InputEncoder {
        let mut hasher = Sha256::new();
        field(&mut hasher, INPUT_DIGEST_TAG.as_bytes());
        InputEncoder {
            hasher,
            previous: None,
            count: 0,
        }
    }

    /// A directory (`path` empty for the input itself).
    pub fn dir(&mut self, path: &[u8]) -> Result<(), PlanError> {
        self.record(b'D', path)?;
        Ok(())
    }

    /// A regular file with its final mode, size and content hash.
    pub fn file(
        &mut self,
        path: &[u8],
        mode: u32,
        size: u64,
        content: &Digest,
    ) -> Result<(), PlanError> {
        self.record(b'F', path)?;
        self.hasher.update(mode.to_be_bytes());
        self.hasher.update(size.to_be_bytes());
        self.hasher.update(content.as_bytes());
        Ok(())
    }

    /// A symbolic link and its target.
    pub fn symlink(&mut self, path: &[u8], target: &[u8]) -> Result<(), PlanError> {
        self.record(b'L', path)?;
        field(&mut self.hasher, target);
        Ok(())
    }

    /// Ends the encoding with the entry count and returns the digest.
    pub fn finish(mut self) -> Digest {
        self.hasher.update(b"E");
        self.hasher.update(self.count.to_be_bytes());
        Digest::from_hasher(self.hasher)
    }

    fn record(&mut self, tag: u8, path: &[u8]) -> Result<(), PlanError> {
        let bad = || PlanError::BadEntry {
            path: String::from_utf8_lossy(path).into_owned(),
        };
        let well_formed = path.is_empty()
            || path
                .split(|&b| b == b'/')
                .all(|c| !c.is_empty() && c != b"." && c != b"..");
        if !well_formed {
            return Err(bad());
        }
        if let Some(previous) = &self.previous
            && path_order(previous, path) != std::cmp::Ordering::Less
        {
            return Err(bad());
        }
        self.previous = Some(path.to_vec());
        self.count += 1;
        self.hasher.update([tag]);
        field(&mut self.hasher, path);
        Ok(())
    }
}

/// A length-prefixed field: the length as 8 bytes big-endian, then the bytes.
fn field(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

/// The input digest of a walk, with its files' content hashes from
/// [`super::hash::hash_walks`]. `spec_mode` is the copy entry's `mode`, which
/// replaces every file's exec bit.
pub fn input_digest(
    walk: &Walk,
    hashes: &ContentHashes,
    spec_mode: Option<u32>,
) -> Result<Digest, PlanError> {
    let mut encoder = InputEncoder::new();
    for entry in &walk.entries {
        match &entry.kind {
            WalkKind::Dir => encoder.dir(&entry.path)?,
            WalkKind::File { exec, stat } => {
                let context_path = walk.context_path(entry);
                let content = hashes
                    .get(&context_path)
                    .ok_or_else(|| PlanError::MissingHash {
                        path: String::from_utf8_lossy(&context_path).into_owned(),
                    })?;
                encoder.file(
                    &entry.path,
                    file_mode(*exec, spec_mode),
                    stat.size,
                    &content,
                )?;
            }
            WalkKind::Symlink { target, .. } => encoder.symlink(&entry.path, target)?,
        }
    }
    Ok(encoder.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::hash::hash_walks;
    use crate::plan::ignore::Matcher;
    use crate::plan::walk::tests::write;
    use crate::plan::walk::walk;
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::path::Path;

    #[test]
    fn file_modes() {
        assert_eq!(file_mode(false, None), 0o644);
        assert_eq!(file_mode(true, None), 0o755);
        assert_eq!(file_mode(false, Some(0o100_4711)), 0o4711);
    }

    /// The worked example of `docs/digest.md`.
    fn worked_example() -> Digest {
        let mut e = InputEncoder::new();
        e.dir(b"").unwrap();
        e.dir(b"bin").unwrap();
        let script = b"#!/bin/sh\necho hi\n";
        e.file(
            b"bin/run.sh",
            0o755,
            script.len() as u64,
            &Digest::of(script),
        )
        .unwrap();
        e.dir(b"empty").unwrap();
        e.file(b"hello.txt", 0o644, 6, &Digest::of(b"hello\n"))
            .unwrap();
        e.symlink(b"latest", b"hello.txt").unwrap();
        e.finish()
    }

    const WORKED_EXAMPLE: &str =
        "sha256:c70b810350930a6a13af1c3f87d8193ddc0737e80eba0c2ebe6f932837638736";

    #[test]
    fn worked_example_is_pinned() {
        assert_eq!(worked_example().to_string(), WORKED_EXAMPLE);
    }

    #[test]
    fn the_encoder_rejects_disorder_and_odd_paths() {
        let mut e = InputEncoder::new();
        e.dir(b"").unwrap();
        e.dir(b"a").unwrap();
        assert!(e.dir(b"a").is_err());
        e.dir(b"a/b").unwrap();
        assert!(e.dir(b"a-").is_ok());
        assert!(e.dir(b"a/c").is_err());
        for bad in [&b"/x"[..], b"x/", b"x//y", b"./x", b"x/../y"] {
            assert!(InputEncoder::new().dir(bad).is_err(), "{bad:?}");
        }
    }

    fn digest_of(root: &Path, input: &str, ignore: &Matcher, excludes: &Matcher) -> Digest {
        let w = walk(root, Path::new(input), ignore, excludes).unwrap();
        let hashes = hash_walks(root, [&w], None).unwrap();
        input_digest(&w, &hashes, None).unwrap()
    }

    fn digest(root: &Path) -> Digest {
        digest_of(root, "", &Matcher::empty(), &Matcher::empty())
    }

    /// The worked example as a real tree; `reverse` creates it in the
    /// opposite order.
    fn example_tree(root: &Path, reverse: bool) {
        let mut steps: Vec<Box<dyn Fn()>> = vec![
            Box::new(|| write(root, "hello.txt", b"hello\n")),
            Box::new(|| {
                write(root, "bin/run.sh", b"#!/bin/sh\necho hi\n");
                let p = root.join("bin/run.sh");
                fs_err::set_permissions(p, std::fs::Permissions::from_mode(0o700)).unwrap();
            }),
            Box::new(|| fs_err::create_dir(root.join("empty")).unwrap()),
            Box::new(|| symlink("hello.txt", root.join("latest")).unwrap()),
        ];
        if reverse {
            steps.reverse();
        }
        for step in steps {
            step();
        }
    }

    #[test]
    fn a_real_tree_gives_the_worked_example() {
        let dir = tempfile::tempdir().unwrap();
        example_tree(dir.path(), false);
        assert_eq!(digest(dir.path()).to_string(), WORKED_EXAMPLE);
    }

    #[test]
    fn ignores_times_creation_order_and_permissions_other_than_exec() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        example_tree(a.path(), false);
        std::thread::sleep(std::time::Duration::from_millis(20));
        example_tree(b.path(), true);
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        let f = fs_err::File::options()
            .write(true)
            .open(b.path().join("hello.txt"))
            .unwrap();
        f.set_modified(old).unwrap();
        drop(f);
        // Group/other bits, as a `umask 002` checkout leaves them.
        let p = b.path().join("hello.txt");
        fs_err::set_permissions(&p, std::fs::Permissions::from_mode(0o664)).unwrap();
        let p = b.path().join("bin");
        fs_err::set_permissions(&p, std::fs::Permissions::from_mode(0o775)).unwrap();
        assert_eq!(digest(a.path()), digest(b.path()));
        // Owner: chown only works as root, where the tests usually run.
        let p = b.path().join("hello.txt");
        if std::os::unix::fs::chown(&p, Some(12345), Some(12345)).is_ok() {
            assert_eq!(digest(a.path()), digest(b.path()));
        }
    }

    #[test]
    fn changes_with_content_exec_bit_target_rename_and_empty_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        example_tree(root, false);
        let mut seen = vec![digest(root)];
        let mut changed = |what: &str| {
            let d = digest(root);
            assert!(!seen.contains(&d), "{what} did not change the digest");
            seen.push(d);
        };
        write(root, "hello.txt", b"hellO\n");
        changed("content");
        let p = root.join("hello.txt");
        fs_err::set_permissions(&p, std::fs::Permissions::from_mode(0o744)).unwrap();
        changed("exec bit");
        fs_err::remove_file(root.join("latest")).unwrap();
        symlink("bin/run.sh", root.join("latest")).unwrap();
        changed("symlink target");
        fs_err::rename(root.join("hello.txt"), root.join("hello.md")).unwrap();
        changed("rename");
        fs_err::create_dir(root.join("empty/more")).unwrap();
        changed("added empty directory");
        fs_err::remove_dir(root.join("empty/more")).unwrap();
        fs_err::remove_dir(root.join("empty")).unwrap();
        changed("removed empty directory");
    }

    #[test]
    fn spec_mode_replaces_the_exec_bit() {
        let dir = tempfile::tempdir().unwrap();
        example_tree(dir.path(), false);
        let w = walk(
            dir.path(),
            Path::new(""),
            &Matcher::empty(),
            &Matcher::empty(),
        )
        .unwrap();
        let hashes = hash_walks(dir.path(), [&w], None).unwrap();
        let plain = input_digest(&w, &hashes, None).unwrap();
        let m755 = input_digest(&w, &hashes, Some(0o755)).unwrap();
        let m600 = input_digest(&w, &hashes, Some(0o600)).unwrap();
        assert_ne!(plain, m755);
        assert_ne!(m755, m600);
        assert_eq!(m755, input_digest(&w, &hashes, Some(0o100_755)).unwrap());
    }

    #[test]
    fn excludes_and_dockerignore_change_what_is_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        example_tree(root, false);
        write(root, "bin/debug.log", b"noise");
        let none = Matcher::empty();
        let with_log = digest(root);
        let ignore = Matcher::parse_ignore_file(b"**/*.log\n", ".dockerignore").unwrap();
        let excludes = Matcher::new(["bin/*.log"]).unwrap();
        let ignored = digest_of(root, "", &ignore, &none);
        let excluded = digest_of(root, "", &none, &excludes);
        assert_ne!(ignored, with_log);
        assert_eq!(ignored, excluded);
        assert_eq!(ignored.to_string(), WORKED_EXAMPLE);
        // Changing an ignored file changes nothing.
        write(root, "bin/debug.log", b"other noise");
        assert_eq!(digest_of(root, "", &ignore, &none), ignored);
        assert_ne!(digest(root), with_log);
    }

    #[test]
    fn hard_links_are_just_files() {
        let linked = tempfile::tempdir().unwrap();
        let copied = tempfile::tempdir().unwrap();
        write(linked.path(), "a", b"same");
        fs_err::hard_link(linked.path().join("a"), linked.path().join("b")).unwrap();
        write(copied.path(), "a", b"same");
        write(copied.path(), "b", b"same");
        assert_eq!(digest(linked.path()), digest(copied.path()));
    }

    #[test]
    fn the_input_itself_is_part_of_the_digest() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "f", b"x");
        write(root, "d/f", b"x");
        let none = Matcher::empty();
        let file = digest_of(root, "f", &none, &none);
        let in_dir = digest_of(root, "d", &none, &none);
        assert_ne!(file, in_dir);
        // Same content under another input name: same digest (the destination
        // is covered by the layer key, not the input digest).
        write(root, "g", b"x");
        assert_eq!(digest_of(root, "g", &none, &none), file);
    }
}
