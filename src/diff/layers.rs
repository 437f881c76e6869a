//! Layer pairs: names from the history (strata layer IDs, docs/design.md §5),
//! the compressed blob and the diffID compared, and for a compression-only
//! difference the codec, the gzip header fields and a level guess.

use std::io::Read;

use serde::Serialize;

use super::error::{DiffError, Result};
use crate::oci::base::{BaseLayer, Packing as Codec, sniff};
use crate::oci::image::HistoryEntry;

/// How a layer blob is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Packing {
    /// `gzip`, `zstd` or `none`.
    pub(crate) codec: &'static str,
    /// The blob's size in bytes.
    pub(crate) size: u64,
    /// The gzip header, for gzip blobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) gzip: Option<GzipHeader>,
}

/// The fields of a gzip header (RFC 1952) that writers set differently.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct GzipHeader {
    /// MTIME: 0, or the time the writer stamped.
    pub(crate) mtime: u32,
    /// OS byte: 3 Unix, 255 unknown (Go's `compress/gzip`, strata), ….
    pub(crate) os: u8,
    /// XFL: 2 when the writer used its maximum level, 4 its fastest.
    pub(crate) xfl: u8,
    /// The level XFL implies: `9` (XFL 2, the writer's maximum), `1`
    /// (XFL 4, its fastest) or `2-8` (XFL 0).
    pub(crate) level_guess: &'static str,
    /// FNAME, if present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    /// FCOMMENT, if present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) comment: Option<String>,
    /// Length of FEXTRA, if present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) extra_len: Option<u16>,
}

/// Parses a gzip header from the first bytes of a blob.
pub(crate) fn parse_gzip_header(h: &[u8]) -> Option<GzipHeader> {
    if h.len() < 10 || h[0] != 0x1f || h[1] != 0x8b {
        return None;
    }
    let flags = h[3];
    let mut header = GzipHeader {
        mtime: u32::from_le_bytes([h[4], h[5], h[6], h[7]]),
        xfl: h[8],
        os: h[9],
        level_guess: match h[8] {
            2 => "9",
            4 => "1",
            _ => "2-8",
        },
        name: None,
        comment: None,
        extra_len: None,
    };
    let mut pos = 10;
    if flags & 4 != 0 {
        let len = u16::from_le_bytes([*h.get(pos)?, *h.get(pos + 1)?]);
        header.extra_len = Some(len);
        pos += 2 + len as usize;
    }
    let zstring = |pos: &mut usize| -> Option<String> {
        let rest = h.get(*pos..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        *pos += end + 1;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    };
    if flags & 8 != 0 {
        header.name = zstring(&mut pos);
    }
    if flags & 16 != 0 {
        header.comment = zstring(&mut pos);
    }
    Some(header)
}

/// Reads a layer blob's first bytes to tell its packing.
pub(crate) fn packing(layer: &BaseLayer) -> Result<Packing> {
    let mut head = Vec::with_capacity(4096);
    layer
        .open()?
        .take(64 << 10)
        .read_to_end(&mut head)
        .map_err(|e| DiffError::Io {
            path: layer.source.path.clone(),
            source: e,
        })?;
    let codec = sniff(&mut &head[..]).map_err(|e| DiffError::Io {
        path: layer.source.path.clone(),
        source: e,
    })?;
    Ok(Packing {
        codec: match codec {
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
            Codec::Tar => "none",
        },
        size: layer.descriptor.size,
        gzip: (codec == Codec::Gzip)
            .then(|| parse_gzip_header(&head))
            .flatten(),
    })
}

/// Checks a layer blob's size and digest against its descriptor.
pub(crate) fn verify(layer: &BaseLayer, location: &str) -> Result<()> {
    let (digest, size) =
        crate::plan::sha256::hash_reader(layer.open()?).map_err(|e| DiffError::Io {
            path: layer.source.path.clone(),
            source: e,
        })?;
    let d = &layer.descriptor;
    if digest != d.digest || size != d.size {
        return Err(DiffError::CorruptBlob {
            location: location.to_owned(),
            digest: d.digest.to_string(),
            found: format!("{size} bytes with digest {digest}"),
        });
    }
    Ok(())
}

/// The layer's uncompressed tar, decompressed as it is read.
pub(crate) fn open_tar(layer: &BaseLayer) -> Result<Box<dyn Read + Send>> {
    Ok(layer.open_tar()?)
}

/// A layer's name from the history entry that made it: the strata layer ID
/// when `created_by` is `strata layer ID` (docs/design.md §5).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LayerName {
    /// The strata layer ID.
    pub(crate) id: Option<String>,
    /// The history's `created_by`.
    pub(crate) created_by: Option<String>,
    /// A command's output: a strata run layer (`strata/v1 run…` comment)
    /// or a Dockerfile `RUN`.
    pub(crate) run: bool,
}

/// Names for `n` layers from a config's history (its non-empty entries, in
/// order; missing entries give no name).
pub(crate) fn layer_names(history: &[HistoryEntry], n: usize) -> Vec<LayerName> {
    let mut names: Vec<LayerName> = history
        .iter()
        .filter(|h| !h.empty_layer)
        .map(|h| LayerName {
            id: h
                .created_by
                .as_deref()
                .and_then(crate::plan::record::layer_id)
                .map(str::to_owned),
            created_by: h.created_by.clone(),
            run: h
                .comment
                .as_deref()
                .is_some_and(|c| c.starts_with("strata/v1 run"))
                || h.created_by.as_deref().is_some_and(|c| {
                    c.starts_with("RUN ") || (c.contains("/bin/sh -c") && !c.contains("#(nop)"))
                }),
        })
        .take(n)
        .collect();
    names.resize(n, LayerName::default());
    names
}

/// Lines two images' layers up: rows of (A position, B position). Layers
/// that both name by strata layer ID pair by ID, so a layer added or
/// removed in the middle shows as one row on one side instead of shifting
/// every later pair; other layers pair by position.
pub(crate) fn align(a: &[LayerName], b: &[LayerName]) -> Vec<(Option<usize>, Option<usize>)> {
    let (mut i, mut j) = (0, 0);
    let mut rows = Vec::with_capacity(a.len().max(b.len()));
    while i < a.len() || j < b.len() {
        let (ia, ib) = (
            a.get(i).and_then(|n| n.id.as_ref()),
            b.get(j).and_then(|n| n.id.as_ref()),
        );
        match (ia, ib) {
            (Some(x), Some(y)) if x != y => {
                if b[j..].iter().any(|n| n.id.as_ref() == Some(x)) {
                    rows.push((None, Some(j)));
                    j += 1;
                } else {
                    rows.push((Some(i), None));
                    i += 1;
                }
            }
            _ => {
                rows.push(((i < a.len()).then_some(i), (j < b.len()).then_some(j)));
                i += 1;
                j += 1;
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_headers_read_back() {
        let mut gz = flate2::GzBuilder::new()
            .mtime(7)
            .filename("layer.tar")
            .comment("hi")
            .write(Vec::new(), flate2::Compression::best());
        gz.write_all(b"x").unwrap();
        let bytes = gz.finish().unwrap();
        let h = parse_gzip_header(&bytes).unwrap();
        assert_eq!(h.mtime, 7);
        assert_eq!(h.xfl, 2);
        assert_eq!(h.level_guess, "9");
        assert_eq!(h.name.as_deref(), Some("layer.tar"));
        assert_eq!(h.comment.as_deref(), Some("hi"));
        let mut fast = Vec::new();
        crate::oci::compress::gzip_encoder(&mut fast)
            .finish()
            .unwrap();
        let h = parse_gzip_header(&fast).unwrap();
        assert_eq!((h.mtime, h.os, h.xfl), (0, 255, 0));
        assert_eq!(parse_gzip_header(b"not gzip"), None);
    }

    #[test]
    fn layers_line_up_by_strata_id() {
        let n = |id: Option<&str>| LayerName {
            id: id.map(str::to_owned),
            created_by: None,
            run: false,
        };
        let a = [n(None), n(Some("models")), n(Some("app"))];
        let b = [
            n(None),
            n(Some("models")),
            n(Some("models@/x")),
            n(Some("app")),
        ];
        assert_eq!(
            align(&a, &b),
            [
                (Some(0), Some(0)),
                (Some(1), Some(1)),
                (None, Some(2)),
                (Some(2), Some(3))
            ]
        );
        assert_eq!(
            align(&b[..2], &a[..1]),
            [(Some(0), Some(0)), (Some(1), None)]
        );
        let plain = [n(None), n(None)];
        assert_eq!(
            align(&plain, &a[..1]),
            [(Some(0), Some(0)), (Some(1), None)]
        );
    }

    #[test]
    fn names_come_from_non_empty_history_entries() {
        let h = |by: &str, empty| HistoryEntry {
            created_by: Some(by.into()),
            empty_layer: empty,
            ..Default::default()
        };
        let names = layer_names(
            &[
                h("ENV A=1", true),
                h("ADD base", false),
                h("strata layer app", false),
            ],
            3,
        );
        assert_eq!(names[0].id, None);
        assert_eq!(names[0].created_by.as_deref(), Some("ADD base"));
        assert_eq!(names[1].id.as_deref(), Some("app"));
        assert_eq!(names[2], LayerName::default());
    }
}
