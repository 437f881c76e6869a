//! Deterministic layer tars (docs/design.md §1).
//!
//! Every header is written field by field: ustar magic `ustar\0` version `00`;
//! `mode`, `uid`, `gid`, `mtime` exactly as the [`Entry`] gives them; empty
//! `uname`/`gname`; `devmajor`/`devminor` zero; no atime or ctime; directory
//! names end in `/`. A PAX extended header (`x`, named `././@PaxHeader`, mode
//! 0644, owner 0:0, mtime 0) precedes an entry only when ustar cannot hold it:
//!
//! - `path` when the name (with a directory's `/`) is not ASCII (any byte
//!   outside 0x01–0x7f) or fits neither the 100-byte `name` field
//!   nor a split at a `/` into `prefix` (≤ 155 bytes) and `name` (≤ 100
//!   bytes; the last such `/` is used);
//! - `linkpath` when a symlink target is non-ASCII or longer than 100 bytes;
//! - `size` from 8 GiB, `uid`/`gid` from 2^21, `mtime` from 8^11 s;
//!
//! Records are sorted by key. Values are the raw bytes, UTF-8 or not, as Go's
//! `archive/tar` (Docker, BuildKit) reads and writes them; no `hdrcharset`
//! record, which GNU tar does not know and warns about. When `path` is in PAX, the ustar name fields
//! hold the name with each non-ASCII byte replaced by `_`, split as above or
//! cut to 100 bytes; numeric fields past their octal range use base-256 as
//! well as the PAX record. The archive ends with two zero blocks and no
//! padding to a record size.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use std::os::fd::OwnedFd;

use sha2::{Digest as _, Sha256};

use super::error::{IoContext, OciError, Result};
use crate::plan::beneath::{fstat_file, open_input, open_root};
use crate::plan::entries::{Entry, EntryKind, Expected, path_order};
use crate::plan::sha256::{Digest, HashingWriter};

/// Size of a tar block.
pub const BLOCK: usize = 512;
const NAME_LEN: usize = 100;
const PREFIX_LEN: usize = 155;
/// Largest value an 11-digit octal field (size, mtime) holds, plus one.
const OCTAL_11: u64 = 1 << 33;
/// Largest value a 7-digit octal field (uid, gid) holds, plus one.
const OCTAL_7: u64 = 1 << 21;
const COPY_BUF: usize = 256 * 1024;

/// What a finished layer tar is: its diffID and length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TarInfo {
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Length of the uncompressed tar in bytes.
    pub size: u64,
}

/// Metadata of one tar entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    /// Numeric owner.
    pub uid: u64,
    /// Numeric group.
    pub gid: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
}

impl Meta {
    fn of(entry: &Entry) -> Self {
        Self {
            mode: entry.mode,
            uid: entry.uid,
            gid: entry.gid,
            mtime: entry.mtime,
        }
    }
}

/// A low-level deterministic tar stream: directories, symlinks and regular
/// files with explicit metadata. [`LayerWriter`] builds on it; archives of
/// layouts (`archive.rs`) use it directly.
pub struct TarStream<W: Write> {
    out: W,
    out_path: PathBuf,
    buf: Vec<u8>,
}

impl<W: Write> TarStream<W> {
    /// Writes to `out`; `out_path` names the destination in errors.
    pub fn new(out: W, out_path: &Path) -> Self {
        Self {
            out,
            out_path: out_path.to_owned(),
            buf: Vec::new(),
        }
    }

    /// Appends a directory; `path` has no trailing `/` (one is added).
    pub fn append_dir(&mut self, path: &[u8], meta: Meta) -> Result<()> {
        check_path(path)?;
        let mut name = path.to_vec();
        name.push(b'/');
        let headers = headers(&name, EntryType::Directory, b"", 0, meta);
        self.write(&headers)
    }

    /// Appends a symbolic link to `target`.
    pub fn append_symlink(&mut self, path: &[u8], target: &[u8], meta: Meta) -> Result<()> {
        check_path(path)?;
        if target.is_empty() || target.contains(&0) {
            return Err(OciError::InvalidEntryPath {
                path: String::from_utf8_lossy(path).into_owned(),
                reason: "symlink target is empty or contains a NUL byte",
            });
        }
        let headers = headers(path, EntryType::Symlink, target, 0, meta);
        self.write(&headers)
    }

    /// Appends a regular file of `size` bytes read from `reader`; `source`
    /// names the reader in errors. Fails if the reader yields fewer or more
    /// bytes than `size`.
    pub fn append_reader(
        &mut self,
        path: &[u8],
        size: u64,
        mut reader: impl Read,
        source: &Path,
        meta: Meta,
    ) -> Result<()> {
        check_path(path)?;
        let headers = headers(path, EntryType::Regular, b"", size, meta);
        self.write(&headers)?;
        if self.buf.len() != COPY_BUF {
            self.buf = vec![0; COPY_BUF];
        }
        let mut left = size;
        while left > 0 {
            let want = left.min(COPY_BUF as u64) as usize;
            let n = read_retrying(&mut reader, &mut self.buf[..want]).at(source)?;
            if n == 0 {
                return Err(OciError::InputChanged {
                    path: source.to_owned(),
                    planned: size,
                    found: size - left,
                });
            }
            self.out.write_all(&self.buf[..n]).at(&self.out_path)?;
            left -= n as u64;
        }
        let mut probe = [0u8; 1];
        if read_retrying(&mut reader, &mut probe).at(source)? != 0 {
            return Err(OciError::InputChanged {
                path: source.to_owned(),
                planned: size,
                found: size + 1,
            });
        }
        let pad = padding(size);
        self.write(&[0u8; BLOCK][..pad])
    }

    /// Appends a regular file whose content is `bytes`.
    pub fn append_bytes(&mut self, path: &[u8], bytes: &[u8], meta: Meta) -> Result<()> {
        let out = self.out_path.clone();
        self.append_reader(path, bytes.len() as u64, bytes, &out, meta)
    }

    /// Writes the end-of-archive marker (two zero blocks) and returns the writer.
    pub fn finish(mut self) -> Result<W> {
        self.write(&[0u8; 2 * BLOCK])?;
        self.out.flush().at(&self.out_path)?;
        Ok(self.out)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).at(&self.out_path)
    }
}

fn read_retrying(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

fn padding(size: u64) -> usize {
    (BLOCK - (size % BLOCK as u64) as usize) % BLOCK
}

/// Writes a layer tar from entries in canonical order, hashing it on the way
/// to compute the diffID.
pub struct LayerWriter<W: Write> {
    tar: TarStream<HashingWriter<W>>,
    last: Option<Vec<u8>>,
    roots: Roots,
}

impl<W: Write> LayerWriter<W> {
    /// Writes the tar to `out`; `out_path` names it in errors.
    pub fn new(out: W, out_path: &Path) -> Self {
        Self {
            tar: TarStream::new(HashingWriter::new(out), out_path),
            last: None,
            roots: Roots::default(),
        }
    }

    /// Appends one entry; entries must come in [`path_order`], without duplicates.
    /// A file's content is streamed from its `source`, whose size must still
    /// be the planned one.
    pub fn append(&mut self, entry: &Entry) -> Result<()> {
        if let Some(last) = &self.last
            && path_order(last, &entry.path) != std::cmp::Ordering::Less
        {
            return Err(OciError::EntryOrder {
                previous: String::from_utf8_lossy(last).into_owned(),
                path: String::from_utf8_lossy(&entry.path).into_owned(),
            });
        }
        let meta = Meta::of(entry);
        match &entry.kind {
            EntryKind::Dir => self.tar.append_dir(&entry.path, meta)?,
            EntryKind::Symlink { target } => self.tar.append_symlink(&entry.path, target, meta)?,
            EntryKind::File {
                source,
                size,
                expect,
            } => {
                let file = open_source(source, expect.as_deref(), &mut self.roots)?;
                let found = file.metadata().at(source)?;
                if !found.is_file() {
                    return Err(OciError::InputChanged {
                        path: source.clone(),
                        planned: *size,
                        found: 0,
                    });
                }
                if found.len() != *size {
                    return Err(OciError::InputChanged {
                        path: source.clone(),
                        planned: *size,
                        found: found.len(),
                    });
                }
                match expect {
                    None => self
                        .tar
                        .append_reader(&entry.path, *size, &file, source, meta)?,
                    Some(expect) => {
                        // Hash while writing: the bytes in the layer must be
                        // the bytes whose hash keyed it.
                        let mut reader = HashingReader {
                            inner: &file,
                            hasher: Sha256::new(),
                        };
                        self.tar
                            .append_reader(&entry.path, *size, &mut reader, source, meta)?;
                        let written = Digest::from_bytes(reader.hasher.finalize().into());
                        let after = fstat_file(&file).at(source)?;
                        if written != expect.content || after != Some(expect.input.stat) {
                            return Err(OciError::ContentChanged {
                                path: source.clone(),
                            });
                        }
                    }
                }
            }
        }
        self.last = Some(entry.path.clone());
        Ok(())
    }

    /// Appends every entry in order.
    pub fn append_all(&mut self, entries: &[Entry]) -> Result<()> {
        entries.iter().try_for_each(|e| self.append(e))
    }

    /// Ends the archive; returns the writer and the tar's diffID and size.
    pub fn finish(self) -> Result<(W, TarInfo)> {
        let (out, diff_id, size) = self.tar.finish()?.finish();
        Ok((out, TarInfo { diff_id, size }))
    }
}

/// Handles of the context directories files are read beneath, by path.
#[derive(Default)]
pub(crate) struct Roots(Vec<(PathBuf, OwnedFd)>);

/// Opens a file's content: a context input beneath its context, following
/// no symlink and only when it is still the walked file (else the input
/// changed during the build); anything else by its path.
pub(crate) fn open_source(
    source: &Path,
    expect: Option<&Expected>,
    roots: &mut Roots,
) -> Result<std::fs::File> {
    let Some(expect) = expect else {
        return Ok(fs_err::File::open(source).at(source)?.into());
    };
    let input = &expect.input;
    let i = match roots.0.iter().position(|(p, _)| *p == input.root) {
        Some(i) => i,
        None => {
            let fd = open_root(&input.root).at(&input.root)?;
            roots.0.push((input.root.clone(), fd));
            roots.0.len() - 1
        }
    };
    match open_input(&roots.0[i].1, &input.rel, &input.stat).at(source)? {
        Some(f) => Ok(f),
        None => Err(OciError::ContentChanged {
            path: source.to_owned(),
        }),
    }
}

/// A reader that hashes what it reads.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Writes `entries` (in canonical order) as a tar to `out`.
pub fn write_layer_tar<W: Write>(
    entries: &[Entry],
    out: W,
    out_path: &Path,
) -> Result<(W, TarInfo)> {
    let mut w = LayerWriter::new(out, out_path);
    w.append_all(entries)?;
    w.finish()
}

fn check_path(path: &[u8]) -> Result<()> {
    let reason = if path.is_empty() {
        Some("empty path")
    } else if path.contains(&0) {
        Some("contains a NUL byte")
    } else if path
        .split(|&b| b == b'/')
        .any(|c| c.is_empty() || c == b"." || c == b"..")
    {
        Some("must be relative with no empty, `.` or `..` components")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(OciError::InvalidEntryPath {
            path: String::from_utf8_lossy(path).into_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

fn is_ascii_field(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| (1..0x80).contains(&b))
}

/// Splits `name` into ustar `(prefix, name)` fields, or `None` if it cannot fit.
fn split_ustar(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= NAME_LEN {
        return Some((&[], name));
    }
    let window = &name[..name.len().min(PREFIX_LEN + 1)];
    let slash = window.iter().rposition(|&b| b == b'/')?;
    let (prefix, rest) = (&name[..slash], &name[slash + 1..]);
    (slash > 0 && !rest.is_empty() && rest.len() <= NAME_LEN).then_some((prefix, rest))
}

/// One PAX record: `"<len> <key>=<value>\n"`, where `len` counts itself.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let base = key.len() + value.len() + 3;
    let mut len = base + base.to_string().len();
    if len.to_string().len() + base != len {
        len = base + len.to_string().len();
    }
    out.extend_from_slice(format!("{len} {key}=").as_bytes());
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// The header blocks (an optional PAX header and its data, then the ustar
/// header) for one entry. `name` includes a directory's trailing `/`.
fn headers(name: &[u8], kind: EntryType, link: &[u8], size: u64, meta: Meta) -> Vec<u8> {
    let path_fits = is_ascii_field(name) && split_ustar(name).is_some();
    let link_fits = is_ascii_field(link) && link.len() <= NAME_LEN;

    // Records in key order.
    let mut pax = Vec::new();
    if meta.gid >= OCTAL_7 {
        pax_record(&mut pax, "gid", meta.gid.to_string().as_bytes());
    }
    if !link_fits {
        pax_record(&mut pax, "linkpath", link);
    }
    if meta.mtime >= OCTAL_11 {
        pax_record(&mut pax, "mtime", meta.mtime.to_string().as_bytes());
    }
    if !path_fits {
        pax_record(&mut pax, "path", name);
    }
    if size >= OCTAL_11 {
        pax_record(&mut pax, "size", size.to_string().as_bytes());
    }
    if meta.uid >= OCTAL_7 {
        pax_record(&mut pax, "uid", meta.uid.to_string().as_bytes());
    }

    let mut out = Vec::with_capacity(3 * BLOCK);
    if !pax.is_empty() {
        let pax_meta = Meta {
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
        };
        let h = ustar_header(
            b"././@PaxHeader",
            EntryType::XHeader,
            b"",
            pax.len() as u64,
            pax_meta,
        );
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(&pax);
        out.resize(out.len() + padding(pax.len() as u64), 0);
    }
    let fallback_name;
    let name = if path_fits {
        name
    } else {
        fallback_name = name
            .iter()
            .map(|&b| if is_ascii_field(&[b]) { b } else { b'_' })
            .collect::<Vec<u8>>();
        &fallback_name
    };
    let fallback_link;
    let link = if link_fits {
        link
    } else {
        fallback_link = link
            .iter()
            .take(NAME_LEN)
            .map(|&b| if is_ascii_field(&[b]) { b } else { b'_' })
            .collect::<Vec<u8>>();
        &fallback_link
    };
    out.extend_from_slice(ustar_header(name, kind, link, size, meta).as_bytes());
    out
}

/// One ustar header, every field set explicitly.
fn ustar_header(name: &[u8], kind: EntryType, link: &[u8], size: u64, meta: Meta) -> Header {
    let mut h = Header::new_ustar();
    let (prefix, short) = split_ustar(name).unwrap_or((&[], &name[..name.len().min(NAME_LEN)]));
    {
        let u = h.as_ustar_mut().expect("a ustar header");
        u.name = [0; NAME_LEN];
        u.name[..short.len()].copy_from_slice(short);
        u.prefix = [0; PREFIX_LEN];
        u.prefix[..prefix.len()].copy_from_slice(prefix);
        u.linkname = [0; NAME_LEN];
        u.linkname[..link.len()].copy_from_slice(link);
        u.magic = *b"ustar\0";
        u.version = *b"00";
        u.uname = [0; 32];
        u.gname = [0; 32];
        u.pad = [0; 12];
    }
    h.set_mode(meta.mode & 0o7777);
    h.set_uid(meta.uid);
    h.set_gid(meta.gid);
    h.set_size(size);
    h.set_mtime(meta.mtime);
    h.set_entry_type(kind);
    h.set_device_major(0).expect("ustar has device fields");
    h.set_device_minor(0).expect("ustar has device fields");
    h.set_cksum();
    h
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::plan::entries::sort_entries;

    pub(crate) const T: u64 = 315_619_200;

    fn dir(path: &[u8], mode: u32) -> Entry {
        Entry {
            path: path.to_vec(),
            kind: EntryKind::Dir,
            mode,
            uid: 0,
            gid: 0,
            mtime: T,
        }
    }

    /// A fixed tree exercising every header rule, created under `root`.
    pub(crate) fn fixture(root: &Path) -> Vec<Entry> {
        let file = |path: &[u8], name: &str, content: &[u8], mode: u32| {
            let source = root.join(name);
            fs_err::write(&source, content).unwrap();
            Entry {
                path: path.to_vec(),
                kind: EntryKind::File {
                    source,
                    size: content.len() as u64,
                    expect: None,
                },
                mode,
                uid: 1000,
                gid: 1000,
                mtime: T,
            }
        };
        let long_dir = format!("app/{}", "d".repeat(120));
        let long_file = format!("{long_dir}/{}", "f".repeat(90));
        let very_long = format!("app/{}", "x/".repeat(150) + "end");
        let mut entries = vec![
            dir(b"app", 0o755),
            dir(b"tmp", 0o1777),
            file(b"app/hello.txt", "hello", b"hello\n", 0o644),
            file(b"app/run.sh", "run", b"#!/bin/sh\necho hi\n", 0o755),
            Entry {
                path: b"app/link".to_vec(),
                kind: EntryKind::Symlink {
                    target: b"hello.txt".to_vec(),
                },
                mode: 0o777,
                uid: 0,
                gid: 0,
                mtime: T,
            },
            Entry {
                path: b"app/longlink".to_vec(),
                kind: EntryKind::Symlink {
                    target: format!("/{}", "t".repeat(150)).into_bytes(),
                },
                mode: 0o777,
                uid: 0,
                gid: 0,
                mtime: T,
            },
            dir(long_dir.as_bytes(), 0o755),
            file(long_file.as_bytes(), "long", b"long\n", 0o644),
            file(very_long.as_bytes(), "verylong", b"very long\n", 0o644),
            file("app/café".as_bytes(), "cafe", b"utf-8\n", 0o644),
            file(b"app/caf\xe9", "latin1", b"latin-1\n", 0o644),
            file(b"app/empty", "empty", b"", 0o600),
        ];
        // The ancestors of the very long path.
        let mut p = String::from("app");
        for _ in 0..150 {
            p.push_str("/x");
            entries.push(dir(p.as_bytes(), 0o755));
        }
        sort_entries(&mut entries);
        entries
    }

    pub(crate) fn layer_tar(entries: &[Entry]) -> (Vec<u8>, TarInfo) {
        write_layer_tar(entries, Vec::new(), Path::new("memory")).unwrap()
    }

    /// Pins the bytes: any change to the tar format changes this digest.
    #[test]
    fn golden_layer_tar_digest() {
        let dir = tempfile::tempdir().unwrap();
        let entries = fixture(dir.path());
        let (bytes, info) = layer_tar(&entries);
        assert_eq!(info.size, bytes.len() as u64);
        assert_eq!(info.diff_id, Digest::of(&bytes));
        assert_eq!(bytes.len() % BLOCK, 0);
        if let Some(out) = std::env::var_os("STRATA_DUMP_TAR") {
            fs_err::write(out, &bytes).unwrap();
        }
        assert_eq!(
            info.diff_id.to_string(),
            "sha256:52196da0c035b9405e4229d518b95ece131151c5a8235247c3e5b7c3ccdb6710"
        );
    }

    #[test]
    fn tar_reads_back_with_the_tar_crate() {
        let dir = tempfile::tempdir().unwrap();
        let entries = fixture(dir.path());
        let (bytes, _) = layer_tar(&entries);
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut seen = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let h = e.header().clone();
            assert_eq!(h.as_ustar().unwrap().magic, *b"ustar\0");
            assert_eq!(h.username_bytes(), Some(&b""[..]));
            assert_eq!(h.groupname_bytes(), Some(&b""[..]));
            assert_eq!(h.mtime().unwrap(), T);
            assert_eq!(h.device_major().unwrap(), Some(0));
            let path = e.path_bytes().into_owned();
            let mut content = Vec::new();
            e.read_to_end(&mut content).unwrap();
            let link = e.link_name_bytes().map(|l| l.into_owned());
            seen.push((
                path,
                h.entry_type(),
                h.mode().unwrap(),
                h.uid().unwrap(),
                link,
                content,
            ));
        }
        assert_eq!(seen.len(), entries.len());
        for (entry, (path, ty, mode, uid, link, content)) in entries.iter().zip(&seen) {
            assert_eq!(*mode, entry.mode);
            assert_eq!(*uid, entry.uid);
            match &entry.kind {
                EntryKind::Dir => {
                    assert_eq!(*ty, EntryType::Directory);
                    assert_eq!(path[..path.len() - 1], entry.path[..]);
                    assert_eq!(path.last(), Some(&b'/'));
                }
                EntryKind::File { source, .. } => {
                    assert_eq!(*ty, EntryType::Regular);
                    assert_eq!(*path, entry.path);
                    assert_eq!(*content, fs_err::read(source).unwrap());
                }
                EntryKind::Symlink { target } => {
                    assert_eq!(*ty, EntryType::Symlink);
                    assert_eq!(*path, entry.path);
                    assert_eq!(link.as_deref(), Some(&target[..]));
                }
            }
        }
        let paths: Vec<&[u8]> = seen.iter().map(|s| &s.0[..]).collect();
        assert!(paths.contains(&&b"app/caf\xe9"[..]));
        assert!(paths.contains(&"app/café".as_bytes()));
        assert!(paths.contains(&&b"app/link"[..]));
    }

    #[test]
    fn pax_only_when_needed() {
        let m = Meta {
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: T,
        };
        // Short ASCII: one block, no PAX.
        assert_eq!(headers(b"a/b", EntryType::Regular, b"", 1, m).len(), BLOCK);
        // 150 bytes splittable into prefix + name: still one block.
        let split = format!("{}/{}", "p".repeat(100), "n".repeat(49));
        let h = headers(split.as_bytes(), EntryType::Regular, b"", 1, m);
        assert_eq!(h.len(), BLOCK);
        let u = Header::from_byte_slice(&h).as_ustar().unwrap();
        assert_eq!(&u.prefix[..100], "p".repeat(100).as_bytes());
        assert_eq!(&u.name[..49], "n".repeat(49).as_bytes());
        // A last component over 100 bytes cannot be split.
        let unsplittable = format!("a/{}", "n".repeat(101));
        let h = headers(unsplittable.as_bytes(), EntryType::Regular, b"", 1, m);
        assert_eq!(h.len(), 3 * BLOCK);
        let data = String::from_utf8(h[BLOCK..2 * BLOCK].to_vec()).unwrap();
        assert!(
            data.starts_with(&format!("113 path={unsplittable}\n")),
            "{data}"
        );
        // 8 GiB needs a size record; large ids need uid/gid records.
        let big = Meta {
            uid: 1 << 21,
            gid: 1 << 22,
            ..m
        };
        let h = headers(b"big", EntryType::Regular, b"", 8 << 30, big);
        let data = String::from_utf8_lossy(&h[BLOCK..2 * BLOCK]).into_owned();
        assert!(
            data.starts_with("15 gid=4194304\n19 size=8589934592\n15 uid=2097152\n"),
            "{data}"
        );
        let ustar = Header::from_byte_slice(&h[2 * BLOCK..]);
        assert_eq!(ustar.size().unwrap(), 8 << 30);
        // Non-ASCII names go to PAX as raw bytes.
        let h = headers(b"caf\xe9", EntryType::Regular, b"", 1, m);
        assert!(h[BLOCK..].starts_with(b"13 path=caf\xe9\n"));
    }

    #[test]
    fn pax_record_length_counts_itself() {
        for n in 0..2000 {
            let mut v = Vec::new();
            pax_record(&mut v, "path", "a".repeat(n).as_bytes());
            let s = String::from_utf8(v.clone()).unwrap();
            let len: usize = s.split(' ').next().unwrap().parse().unwrap();
            assert_eq!(len, v.len(), "value length {n}");
        }
    }

    #[test]
    fn changed_input_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("f");
        fs_err::write(&source, b"grown since planning").unwrap();
        let entry = Entry {
            path: b"f".to_vec(),
            kind: EntryKind::File {
                source: source.clone(),
                size: 3,
                expect: None,
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: T,
        };
        let err = write_layer_tar(&[entry], Vec::new(), Path::new("memory")).unwrap_err();
        assert!(
            matches!(&err, OciError::InputChanged { path, planned: 3, found: 20 } if *path == source)
        );
        assert!(err.to_string().contains(&source.display().to_string()));
        // A reader that ends early is caught too.
        let mut s = TarStream::new(Vec::new(), Path::new("memory"));
        let err = s
            .append_reader(b"f", 10, &b"short"[..], &source, Meta::of(&dir_entry()))
            .unwrap_err();
        assert!(matches!(err, OciError::InputChanged { found: 5, .. }));
    }

    fn dir_entry() -> Entry {
        dir(b"d", 0o755)
    }

    #[test]
    fn out_of_order_and_bad_paths_are_rejected() {
        let err = write_layer_tar(
            &[dir(b"b", 0o755), dir(b"a", 0o755)],
            Vec::new(),
            Path::new("memory"),
        )
        .unwrap_err();
        assert!(matches!(err, OciError::EntryOrder { .. }));
        let err = write_layer_tar(
            &[dir(b"a", 0o755), dir(b"a", 0o755)],
            Vec::new(),
            Path::new("m"),
        )
        .unwrap_err();
        assert!(matches!(err, OciError::EntryOrder { .. }));
        for bad in [&b"/abs"[..], b"a//b", b"a/../b", b"", b"a/", b"n\0ul"] {
            let err = write_layer_tar(&[dir(bad, 0o755)], Vec::new(), Path::new("m")).unwrap_err();
            assert!(matches!(err, OciError::InvalidEntryPath { .. }), "{bad:?}");
        }
    }
}
