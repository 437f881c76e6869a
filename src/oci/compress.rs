//! Layer blobs: tar → sha256 (diffID) → gzip or zstd → sha256 (digest) →
//! blob file, in one streaming pass.
//!
//! Compression is block-parallel ([`super::blocks`]): the tar is cut into
//! blocks of a fixed uncompressed size ([`GZIP_BLOCK`], [`ZSTD_BLOCK`]), each
//! compressed on its own into a complete gzip member or zstd frame on the
//! rayon pool, and the members or frames are written in order. A block's
//! bytes depend only on its content, so the blob never depends on the number
//! of threads. A layer smaller than one block is a single member or frame.
//!
//! Gzip settings, fixed so the same tar gives the same blob on every machine:
//! flate2 with its pure-Rust zlib-rs backend (the version is pinned by
//! `Cargo.lock`; its hash is the same on every CPU, and the SIMD paths it
//! picks at run time only find the same matches faster: a build without
//! them wrote the same 128 MiB blob), level [`GZIP_LEVEL`] = 3, members of
//! [`GZIP_BLOCK`] = 1 MiB of tar (0.1% larger than one member on a tar of
//! `/usr`), each with a header with no file name, no comment, no extra
//! field, mtime 0 and OS byte 255 ("unknown", as Go's `compress/gzip`
//! writes). Any change here changes every gzip layer digest, so it is part
//! of the writer version.
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
//! [`ZSTD_CODEC`]), level [`ZSTD_LEVEL`], frames of [`ZSTD_BLOCK`] = 4 MiB
//! of tar (0.4% larger than one frame: zstd level 3 looks back up to 2 MiB,
//! so smaller frames cost more), no checksum, no content size, no
//! dictionary; libzstd's own threads (`zstdmt`) are not used. Media type
//! `application/vnd.oci.image.layer.v1.tar+zstd`. Explicit choices are part
//! of the blob's cache key ([`blob_key`]), so changing one layer's
//! compression rewrites only that layer's blob; its diffID stays.

use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use flate2::GzBuilder;
use flate2::write::{DeflateEncoder, GzEncoder};

use super::blob::{Blob, BlobWriter};
use super::blocks::{BlockCodec, BlockEncoder};
use super::error::{IoContext, Result};
use super::image::{Descriptor, media};
use super::tar::{Roots, open_source, write_layer_tar};
use crate::plan::Digest;
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
/// Uncompressed bytes per gzip member.
pub const GZIP_BLOCK: usize = 1 << 20;
/// Uncompressed bytes per zstd frame.
pub const ZSTD_BLOCK: usize = 4 << 20;
/// The codecs' identity in explicit blob keys: a change of level, library,
/// block size or settings must change this string (and the writer version
/// and the golden digests below).
pub const GZIP_CODEC: &str = "gzip/zlib-rs-0.6.9/level-3/os-255/members-1MiB";
/// See [`GZIP_CODEC`].
pub const ZSTD_CODEC: &str = "zstd/libzstd-1.5.7/level-3/frames-4MiB/no-checksum";
/// The gzip block codec of every gzip layer.
pub const GZIP: BlockCodec = BlockCodec::Gzip {
    level: GZIP_LEVEL,
    os: GZIP_OS,
};
/// The zstd block codec of every zstd layer.
pub const ZSTD: BlockCodec = BlockCodec::Zstd { level: ZSTD_LEVEL };

/// How to store a layer: the spec's `compression` (one type for both).
pub use crate::spec::LayerCompression as Compression;

/// The cache key of a layer's blob: the layer key itself under
/// [`Compression::Auto`] (so existing keys and digests stay), else the
/// layer key with the explicit choice and its codec identity.
pub fn blob_key(layer_key: &Digest, c: Compression) -> Digest {
    let codec = match c {
        Compression::Auto => return *layer_key,
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
        Descriptor::new(self.media_type, self.digest, self.size)
    }
}

/// A single-member gzip encoder with strata's fixed header and level (for
/// test fixtures; layers are written by [`write_layer`] in members).
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
    let gzip = Some((GZIP, GZIP_BLOCK, media::LAYER_GZIP));
    let block = match compression {
        Compression::Gzip => gzip,
        Compression::Zstd => Some((ZSTD, ZSTD_BLOCK, media::LAYER_ZSTD)),
        Compression::Auto if is_compressible(entries)? => gzip,
        Compression::Auto | Compression::None => None,
    };
    // An uncompressed blob is the tar itself: its digest is the diffID, so
    // the tar writer's hash names it and the blob writer hashes nothing.
    let writer = if block.is_none() {
        BlobWriter::unhashed(blobs_dir)?
    } else {
        BlobWriter::new(blobs_dir)?
    };
    let out = BufWriter::with_capacity(1 << 20, writer);
    let (blob, info, media_type): (Blob, _, _) = match block {
        Some((codec, size, media_type)) => {
            let enc = BlockEncoder::new(out, codec, size);
            let (enc, info) = write_layer_tar(entries, enc, blobs_dir)?;
            let out = enc.finish().at(blobs_dir)?;
            let blob = out.into_inner().map_err(|e| e.into_error()).at(blobs_dir)?;
            (blob.complete()?, info, media_type)
        }
        None => {
            let (out, info) = write_layer_tar(entries, out, blobs_dir)?;
            let blob = out.into_inner().map_err(|e| e.into_error()).at(blobs_dir)?;
            (blob.complete_as(info.diff_id)?, info, media::LAYER_TAR)
        }
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
            layer.digest.to_string(),
            "sha256:395dc339d7e44e461086fcc5523122f2c3e29b3999e6f73a383d1496dab4f53f"
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
            z.digest.to_string(),
            "sha256:c9e14367cf649d878a9940aff3848d97490db5b704b633acc1238237603efcdf"
        );
        let n = write_layer(&entries, &blobs, Compression::None).unwrap();
        assert_eq!(n.diff_id, info.diff_id);
        assert_eq!(n.digest, info.diff_id);
        assert_eq!(
            n.digest.to_string(),
            "sha256:52196da0c035b9405e4229d518b95ece131151c5a8235247c3e5b7c3ccdb6710"
        );
        let g = write_layer(&entries, &blobs, Compression::Gzip).unwrap();
        assert_eq!(g.diff_id, info.diff_id);
    }

    /// A layer of several blocks (9 gzip members, 3 zstd frames): the same
    /// digest with 1, 2 and 16 threads, pinned, and read back by
    /// multi-member readers.
    #[test]
    fn multi_block_layer_digests_do_not_depend_on_threads() {
        let dir = tempfile::tempdir().unwrap();
        let content = crate::oci::blocks::tests::text(9 << 20);
        let entries = vec![entry(dir.path(), "big.txt", &content)];
        let (tar, _) = layer_tar(&entries);
        for (comp, golden) in [
            (
                Compression::Gzip,
                "sha256:540cfb05a370d00567ede98ed20c94b930dbf467049d1f02b0c07636ae0b0cf3",
            ),
            (
                Compression::Zstd,
                "sha256:2615eb1ccb438a7025922ffc0f256cd4135a15bff7f2a131d6bc2013db29f096",
            ),
        ] {
            let digests: Vec<Digest> = [1, 2, 16]
                .into_iter()
                .map(|threads| {
                    let blobs = dir.path().join(format!("blobs-{}-{threads}", comp.name()));
                    fs_err::create_dir(&blobs).unwrap();
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .unwrap();
                    let layer = pool
                        .install(|| write_layer(&entries, &blobs, comp))
                        .unwrap();
                    let stored = fs_err::read(blobs.join(layer.digest.hex())).unwrap();
                    let mut unpacked = Vec::new();
                    if comp == Compression::Gzip {
                        flate2::read::MultiGzDecoder::new(&stored[..])
                            .read_to_end(&mut unpacked)
                            .unwrap();
                    } else {
                        unpacked = zstd::decode_all(&stored[..]).unwrap();
                    }
                    assert!(unpacked == tar, "{} round trip", comp.name());
                    layer.digest
                })
                .collect();
            assert_eq!(digests[0], digests[1], "{}: 1 and 2 threads", comp.name());
            assert_eq!(digests[0], digests[2], "{}: 1 and 16 threads", comp.name());
            assert_eq!(digests[0].to_string(), golden, "{}", comp.name());
        }
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
