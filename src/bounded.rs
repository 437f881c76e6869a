//! Bounded reads of the small files strata reads whole: the spec, ignore
//! files and `strata.lock` (docs/design.md §6: 2 MiB). A file is never read
//! past its limit plus one byte, whatever its size claims (`/dev/zero`, a
//! FIFO, a file that grows while it is read), and opening one never blocks
//! on a FIFO without a writer.

use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use rustix::fs::OFlags;

/// The limit of every file strata reads whole (docs/design.md §6).
pub const MAX_SMALL_FILE: u64 = 2 * 1024 * 1024;

/// Why a bounded read failed.
#[derive(Debug)]
pub enum ReadError {
    /// Opening or reading failed.
    Io(io::Error),
    /// The file holds more than the limit: its size when it is a regular
    /// file, `None` when only reading found out (a device, a FIFO).
    TooLarge(Option<u64>),
    /// The file is not a regular file (and the caller asked for one).
    NotRegular(&'static str),
}

/// What may be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    /// Any file that is not a directory: a pipe or a device too (`-f
    /// /dev/stdin`); a FIFO without a writer reads as empty.
    AnyFile,
    /// Only a regular file (after following symlinks): files found in a
    /// context, which may be hostile.
    Regular,
}

/// Reads at most `limit` bytes of `path`, failing when it holds more.
/// `Ok(None)` when the file does not exist.
pub fn read(path: &Path, limit: u64, accept: Accept) -> Result<Option<Vec<u8>>, ReadError> {
    // O_NONBLOCK: opening a FIFO for reading never waits for a writer.
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(OFlags::NONBLOCK.bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReadError::Io(e)),
    };
    let meta = file.metadata().map_err(ReadError::Io)?;
    let ft = meta.file_type();
    if ft.is_dir() {
        return Err(ReadError::NotRegular("directory"));
    }
    if !ft.is_file() {
        if accept == Accept::Regular {
            return Err(ReadError::NotRegular(kind(&ft)));
        }
        // Reads of a pipe wait for data as usual.
        let flags = rustix::fs::fcntl_getfl(&file).map_err(|e| ReadError::Io(e.into()))?;
        rustix::fs::fcntl_setfl(&file, flags - OFlags::NONBLOCK)
            .map_err(|e| ReadError::Io(e.into()))?;
    } else if meta.len() > limit {
        return Err(ReadError::TooLarge(Some(meta.len())));
    }
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > limit {
        // A device, a pipe, or a file that grew while it was read.
        return Err(ReadError::TooLarge(None));
    }
    Ok(Some(bytes))
}

/// A file type for messages.
pub fn kind(ft: &std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "directory"
    } else if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_symlink() {
        "symlink"
    } else {
        "regular file"
    }
}

/// `N bytes`, or `more than 2 MiB` when the size is unknown.
pub fn describe_size(size: Option<u64>, limit: u64) -> String {
    match size {
        Some(n) => format!("{n} bytes"),
        None if limit.is_multiple_of(1 << 20) => format!("more than {} MiB", limit >> 20),
        None => format!("more than {limit} bytes"),
    }
}
