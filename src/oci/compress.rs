//! Layer blobs: tar → sha256 (diffID) → gzip → sha256 (digest) → blob file,
//! in one streaming pass.
//!
//! Gzip settings, fixed so the same tar gives the same blob on every machine:
//! flate2 with its pure-Rust miniz_oxide backend (no CPU-dependent code
//! paths; the version is pinned by `Cargo.lock`), level [`GZIP_LEVEL`] = 3
//! (within ~4% of level 6's size and ~2.5× faster with this backend), header
//! with no file name, no comment, no extra field, mtime 0 and OS byte 255
//! ("unknown", as Go's `compress/gzip` writes). Any change here changes every
//! layer digest, so it is part of the writer version.
//!
//! Incompressible layers ([`Compression::Auto`]): a layer whose regular files
//! total less than [`SMALL_LAYER`] bytes is always gzipped (its tar headers
//! and padding compress well, and the cost is small). Otherwise sample
//! [`SAMPLE_BYTES`] of
//! the layer's regular-file content, the files taken in entry order as one
//! stream; for larger layers the sample is [`SAMPLE_WINDOWS`] windows evenly
//! spaced over that stream, so large files weigh by their size. If deflate at
//! [`GZIP_LEVEL`] does not shrink the sample by more than
//! [`MIN_SAVING_PERCENT`]%, the layer is written uncompressed with media type
//! `application/vnd.oci.image.layer.v1.tar` (its digest is then its diffID).
//! The sample is a function of the files' content only, so the choice is too.
//!
//! zstd ([`Compression::Zstd`], the spec's `compression = "zstd"`): libzstd
//! through the `zstd` crate (version pinned by `Cargo.lock`, see
//! [`ZSTD_CODEC`]), level [`ZSTD_LEVEL`], single-threaded (no
//! `zstdmt`), one frame, no checksum, no content size, no dictionary;
//! media type `application/vnd.oci.image.layer.v1.tar+zstd`. Each blob is
//! written by one thread whatever the rayon pool size, so the bytes never
//! depend on the thread count (layers are compressed in parallel, each on
//! its own). Explicit choices are part of the blob's cache key
//! ([`blob_key`]), so changing one layer's compression rewrites only that
//! layer's blob; its diffID stays.

use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use flate2::GzBuilder;
use flate2::write::{DeflateEncoder, GzEncoder};

use super::blob::{Blob, BlobWriter};
use super::digest::Digest;
use super::error::{IoContext, Result};
use super::image::{Descriptor, media};
use super::tar::{Roots, open_source, write_layer_tar};
use crate::plan::entries::{Entry, EntryKind, Expected};

/// The deflate level of every gzip layer.
pub const GZIP_LEVEL: u32 = 3;
/// Gzip header OS byte: 255, unknown.
pub const GZIP_OS: u8 = 255;
/// Bytes of file content sampled to decide whether to compress.
pub const SAMPLE_BYTES: u64 = 4 << 20;
/// Layers with less file content than this are always compressed.
pub const SMALL_LAYER: u64 = 1 << 20;
/// Number of evenly spaced windows the sample is made of.
pub const SAMPLE_WINDOWS: u64 = 64;
/// A layer is compressed only if the sample shrinks by more than this.
pub const MIN_SAVING_PERCENT: u64 = 10;
/// The zstd level of every zstd layer.
pub const ZSTD_LEVEL: i32 = 3;
/// The codecs' identity in explicit blob keys: a change of level, library
/// or settings must change this string (and the golden digests below).
pub const GZIP_CODEC: &str = "gzip/miniz_oxide-0.9/level-3/os-255";
/// See [`GZIP_CODEC`].
pub const ZSTD_CODEC: &str = "zstd/libzstd-1.5.7/level-3/single-frame/no-checksum";

/// How to store a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Always gzip.
    Gzip,
    /// Never compress.
    None,
    /// Gzip unless the sample rule says the content is incompressible.
    Auto,
    /// Always zstd.
    Zstd,
}

impl Compression {
    /// The spec's choice.
    pub fn from_spec(c: crate::spec::LayerCompression) -> Self {
        use crate::spec::LayerCompression as L;
        match c {
            L::Auto => Self::Auto,
            L::Gzip => Self::Gzip,
            L::Zstd => Self::Zstd,
            L::None => Self::None,
        }
    }

    /// The name in history comments: `gzip`, `zstd`, `none` or `auto`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
            Self::None => "none",
        }
    }
}

/// The cache key of a layer's blob: the layer key itself under
/// [`Compression::Auto`] (so existing keys and digests stay), else the
/// layer key with the explicit choice and its codec identity.
pub fn blob_key(layer_key: &Digest, c: Compression) -> Digest {
    let codec = match c {
        Compression::Auto => return layer_key.clone(),
        Compression::Gzip => GZIP_CODEC,
        Compression::Zstd => ZSTD_CODEC,
        Compression::None => "none",
    };
    let doc = serde_json::json!({
        "kind": "strata.blob-key/v1",
        "layer": layer_key.to_string(),
        "compression": c.name(),
        "codec": codec,
    });
    Digest::of(doc.to_string().as_bytes())
}

/// A zstd encoder with strata's fixed settings.
pub fn zstd_encoder<W: Write>(w: W) -> std::io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut enc = zstd::stream::write::Encoder::new(w, ZSTD_LEVEL)?;
    enc.include_checksum(false)?;
    enc.include_contentsize(false)?;
    enc.include_dictid(false)?;
    Ok(enc)
}

/// A written layer blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerBlob {
    /// Digest of the blob as stored.
    pub digest: Digest,
    /// Size of the blob as stored.
    pub size: u64,
    /// `…layer.v1.tar+gzip`, `…layer.v1.tar+zstd` or `…layer.v1.tar`.
    pub media_type: &'static str,
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub tar_size: u64,
}

impl LayerBlob {
    /// The descriptor for a manifest's `layers`.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.media_type, self.digest.clone(), self.size)
    }
}

/// A gzip encoder with strata's fixed header and level.
pub fn gzip_encoder<W: Write>(w: W) -> GzEncoder<W> {
    GzBuilder::new()
        .mtime(0)
        .operating_system(GZIP_OS)
        .write(w, flate2::Compression::new(GZIP_LEVEL))
}

/// Writes the layer of `entries` (in canonical order) as a blob into
/// `blobs_dir` (a `blobs/sha256` directory).
pub fn write_layer(
    entries: &[Entry],
    blobs_dir: &Path,
    compression: Compression,
) -> Result<LayerBlob> {
    let gzip = match compression {
        Compression::Gzip => true,
        Compression::None => false,
        Compression::Auto => is_compressible(entries)?,
        Compression::Zstd => false,
    };
    let plain = compression != Compression::Zstd && !gzip;
    // An uncompressed blob is the tar itself: its digest is the diffID, so
    // the tar writer's hash names it and the blob writer hashes nothing.
    let writer = if plain {
        BlobWriter::unhashed(blobs_dir)?
    } else {
        BlobWriter::new(blobs_dir)?
    };
    let out = BufWriter::with_capacity(1 << 20, writer);
    let (blob, info, media_type): (Blob, _, _) = if compression == Compression::Zstd {
        let enc = zstd_encoder(out).at(blobs_dir)?;
        let (enc, info) = write_layer_tar(entries, enc, blobs_dir)?;
        let out = enc.finish().at(blobs_dir)?;
        let blob = out.into_inner().map_err(|e| e.into_error()).at(blobs_dir)?;
        (blob.complete()?, info, media::LAYER_ZSTD)
    } else if gzip {
        let (gz, info) = write_layer_tar(entries, gzip_encoder(out), blobs_dir)?;
        let out = gz.finish().at(blobs_dir)?;
        let blob = out.into_inner().map_err(|e| e.into_error()).at(blobs_dir)?;
        (blob.complete()?, info, media::LAYER_GZIP)
    } else {
        let (out, info) = write_layer_tar(entries, out, blobs_dir)?;
        let blob = out.into_inner().map_err(|e| e.into_error()).at(blobs_dir)?;
        (
            blob.complete_as(info.diff_id.clone())?,
            info,
            media::LAYER_TAR,
        )
    };
    Ok(LayerBlob {
        digest: blob.digest,
        size: blob.size,
        media_type,
        diff_id: info.diff_id,
        tar_size: info.size,
    })
}

/// The sample rule: whether `entries`' file content is worth compressing.
pub fn is_compressible(entries: &[Entry]) -> Result<bool> {
    let sample = sample(entries)?;
    if (sample.len() as u64) < SMALL_LAYER {
        return Ok(true);
    }
    let mut enc = DeflateEncoder::new(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
    enc.write_all(&sample).expect("writing to memory");
    let compressed = enc.finish().expect("writing to memory").len() as u64;
    Ok(compressed * 100 < sample.len() as u64 * (100 - MIN_SAVING_PERCENT))
}

/// The content sample described in the module docs.
fn sample(entries: &[Entry]) -> Result<Vec<u8>> {
    let files: Vec<(&PathBuf, Option<&Expected>, u64)> = entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::File {
                source,
                size,
                expect,
            } if *size > 0 => Some((source, expect.as_deref(), *size)),
            _ => None,
        })
        .collect();
    let mut roots = Roots::default();
    let total: u64 = files.iter().map(|f| f.2).sum();
    if total <= SAMPLE_BYTES {
        let mut out = Vec::with_capacity(total as usize);
        for (source, expect, size) in files {
            read_range(source, expect, &mut roots, 0, size, &mut out)?;
        }
        return Ok(out);
    }
    let window = SAMPLE_BYTES / SAMPLE_WINDOWS;
    let mut out = Vec::with_capacity(SAMPLE_BYTES as usize);
    // Start offset of each file in the concatenated stream.
    let mut starts = Vec::with_capacity(files.len());
    let mut acc = 0u64;
    for (_, _, size) in &files {
        starts.push(acc);
        acc += size;
    }
    for i in 0..SAMPLE_WINDOWS {
        let mut pos = (u128::from(i) * u128::from(total) / u128::from(SAMPLE_WINDOWS)) as u64;
        let mut want = window;
        let mut idx = starts.partition_point(|&s| s <= pos) - 1;
        while want > 0 && idx < files.len() {
            let (source, expect, size) = files[idx];
            let offset = pos - starts[idx];
            let n = want.min(size - offset);
            read_range(source, expect, &mut roots, offset, n, &mut out)?;
            want -= n;
            pos += n;
            idx += 1;
        }
    }
    Ok(out)
}

/// Appends up to `len` bytes of `path` from `offset` (fewer if it shrank:
/// the writing pass reports that), opened as the writer opens it.
fn read_range(
    path: &Path,
    expect: Option<&Expected>,
    roots: &mut Roots,
    offset: u64,
    len: u64,
    out: &mut Vec<u8>,
) -> Result<()> {
    let mut f = open_source(path, expect, roots)?;
    f.seek(SeekFrom::Start(offset)).at(path)?;
    f.take(len).read_to_end(out).at(path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::tar::tests::{T, fixture, layer_tar};
    use flate2::read::GzDecoder;

    fn entry(root: &Path, name: &str, content: &[u8]) -> Entry {
        let source = root.join(name);
        fs_err::write(&source, content).unwrap();
        Entry {
            path: name.as_bytes().to_vec(),
            kind: EntryKind::File {
                source,
                size: content.len() as u64,
                expect: None,
            },
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: T,
        }
    }

    /// Pins the gzip bytes of the golden tar: a change of level, header or
    /// deflate backend fails here.
    #[test]
    fn golden_gzip_layer_blob() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs");
        fs_err::create_dir(&blobs).unwrap();
        let entries = fixture(dir.path());
        let layer = write_layer(&entries, &blobs, Compression::Gzip).unwrap();
        let (tar, info) = layer_tar(&entries);
        assert_eq!(layer.diff_id, info.diff_id);
        assert_eq!(layer.tar_size, tar.len() as u64);
        assert_eq!(layer.media_type, media::LAYER_GZIP);
        let stored = fs_err::read(blobs.join(layer.digest.hex())).unwrap();
        assert_eq!(stored.len() as u64, layer.size);
        assert_eq!(Digest::of(&stored), layer.digest);
        // Header: magic, deflate, no flags, mtime 0, XFL 0, OS 255.
        assert_eq!(stored[..10], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        let mut unpacked = Vec::new();
        GzDecoder::new(&stored[..])
            .read_to_end(&mut unpacked)
            .unwrap();
        assert_eq!(unpacked, tar);
        assert_eq!(
            layer.digest.as_str(),
            "sha256:30b31ab1be84f0854b7a9ac7ac1657330e416b34ea1ae18244c29201fb2c5479"
        );
    }

    /// Pins the zstd and uncompressed bytes of the golden tar, and shows
    /// that all three choices share the diffID.
    #[test]
    fn golden_zstd_and_none_layer_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs");
        fs_err::create_dir(&blobs).unwrap();
        let entries = fixture(dir.path());
        let (tar, info) = layer_tar(&entries);
        let z = write_layer(&entries, &blobs, Compression::Zstd).unwrap();
        assert_eq!(z.media_type, media::LAYER_ZSTD);
        assert_eq!(z.diff_id, info.diff_id);
        let stored = fs_err::read(blobs.join(z.digest.hex())).unwrap();
        // zstd frame magic, then a header with no checksum flag.
        assert_eq!(stored[..4], [0x28, 0xb5, 0x2f, 0xfd]);
        assert_eq!(stored[4] & 0x04, 0, "no checksum");
        assert_eq!(zstd::decode_all(&stored[..]).unwrap(), tar);
        assert_eq!(
            z.digest.as_str(),
            "sha256:c5739db2a08e8f340209195fbacbc7046a564f50a04ba1aea1ab435356ea2a4b"
        );
        let n = write_layer(&entries, &blobs, Compression::None).unwrap();
        assert_eq!(n.diff_id, info.diff_id);
        assert_eq!(n.digest, info.diff_id);
        assert_eq!(
            n.digest.as_str(),
            "sha256:52196da0c035b9405e4229d518b95ece131151c5a8235247c3e5b7c3ccdb6710"
        );
        let g = write_layer(&entries, &blobs, Compression::Gzip).unwrap();
        assert_eq!(g.diff_id, info.diff_id);
    }

    #[test]
    fn explicit_compression_changes_the_blob_key_not_auto() {
        let k = Digest::of(b"layer");
        assert_eq!(blob_key(&k, Compression::Auto), k);
        let keys: std::collections::BTreeSet<Digest> = [
            Compression::Auto,
            Compression::Gzip,
            Compression::Zstd,
            Compression::None,
        ]
        .into_iter()
        .map(|c| blob_key(&k, c))
        .collect();
        assert_eq!(keys.len(), 4);
    }

    #[test]
    fn uncompressed_layer_digest_is_its_diff_id() {
        let dir = tempfile::tempdir().unwrap();
        let entries = vec![entry(dir.path(), "a", b"abc")];
        let layer = write_layer(&entries, dir.path(), Compression::None).unwrap();
        assert_eq!(layer.digest, layer.diff_id);
        assert_eq!(layer.media_type, media::LAYER_TAR);
        assert_eq!(layer.size, layer.tar_size);
    }

    #[test]
    fn auto_stores_incompressible_content_uncompressed() {
        let dir = tempfile::tempdir().unwrap();
        // Pseudo-random bytes (xorshift) do not compress; text does.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut noise: Vec<u8> = (0..(SAMPLE_BYTES + 300_000))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let text = b"the quick brown fox jumps over the lazy dog\n".repeat(1000);
        let noisy = vec![
            entry(dir.path(), "a", &text),
            entry(dir.path(), "b", &noise),
        ];
        assert!(!is_compressible(&noisy).unwrap());
        let layer = write_layer(&noisy, dir.path(), Compression::Auto).unwrap();
        assert_eq!(layer.media_type, media::LAYER_TAR);
        let text = b"the quick brown fox jumps over the lazy dog\n".repeat(30_000);
        let texty = vec![entry(dir.path(), "c", &text)];
        assert!(is_compressible(&texty).unwrap());
        let layer = write_layer(&texty, dir.path(), Compression::Auto).unwrap();
        assert_eq!(layer.media_type, media::LAYER_GZIP);
        assert!(is_compressible(&[]).unwrap());
        noise.truncate(SMALL_LAYER as usize - 1);
        assert!(is_compressible(&[entry(dir.path(), "d", &noise)]).unwrap());
    }
}
