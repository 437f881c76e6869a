//! Layer blobs of a base: diffIDs, media types, packing, and the check of
//! each blob against its digest.

use super::*;

pub(super) fn diff_ids(config: &Value, location: &str) -> Result<Vec<Digest>> {
    let ids = config
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .cloned()
        .unwrap_or(Value::Array(Vec::new()));
    serde_json::from_value(ids).map_err(|e| OciError::Json {
        what: format!("{location} config rootfs.diff_ids"),
        source: e,
    })
}

pub(super) fn oci_layer_type(media_type: &str) -> &str {
    match media_type {
        media::DOCKER_LAYER_GZIP => media::LAYER_GZIP,
        media::DOCKER_LAYER_TAR => media::LAYER_TAR,
        other => other,
    }
}

/// Compression of a layer blob, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packing {
    /// An uncompressed tar.
    Tar,
    /// gzip (one or more members).
    Gzip,
    /// zstd.
    Zstd,
}

/// The packing of the blob `r` starts, without consuming it.
pub fn sniff(r: &mut impl BufRead) -> std::io::Result<Packing> {
    let head = r.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Packing::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Packing::Zstd
    } else {
        Packing::Tar
    })
}

/// Hashes a layer blob: checks it against `desc` when given, against the
/// digest its archive path names (`named`) when given, and against `diff_id`
/// whenever the tar can be read (uncompressed: the blob itself; gzip
/// without a descriptor: decompressed). Returns the blob's digest, size and
/// packing.
pub(super) fn verify_layer(
    source: &BlobSource,
    location: &str,
    desc: Option<&Descriptor>,
    named: Option<&Digest>,
    diff_id: &Digest,
) -> Result<(Digest, u64, Packing)> {
    let what = match (desc, named) {
        (Some(d), _) => format!("{location} layer {}", d.digest),
        (None, Some(n)) => format!("{location} layer {n}"),
        (None, None) => format!("{location} layer {}", source.path.display()),
    };
    let mut r = source.open()?;
    let packing = sniff(&mut BufReader::new(&mut r)).at(&source.path)?;
    let (digest, size) = hash_reader(source.open()?).at(&source.path)?;
    if let Some(d) = desc {
        if d.size != size {
            return Err(OciError::SizeMismatch {
                what,
                expected: d.size,
                found: size,
            });
        }
        check_digest(&what, &d.digest, &digest)?;
    }
    // The digest a docker archive's blob path names, checked before the
    // content is decompressed, so a corrupted blob is named by its digest.
    if let Some(n) = named {
        check_digest(&what, n, &digest)?;
    }
    match packing {
        Packing::Tar => check_digest(&what, diff_id, &digest)?,
        Packing::Gzip if desc.is_none() => {
            let (unpacked, _) = hash_reader(source.open_tar()?).map_err(|e| {
                // A corrupt stream is a wrong input (exit 1), not trouble.
                match e.kind() {
                    std::io::ErrorKind::InvalidInput
                    | std::io::ErrorKind::InvalidData
                    | std::io::ErrorKind::UnexpectedEof => OciError::InvalidImage {
                        location: what.clone(),
                        reason: format!(
                            "the layer does not decompress to its diffID {diff_id}: {e}"
                        ),
                    },
                    _ => OciError::io(&source.path, e),
                }
            })?;
            check_digest(&what, diff_id, &unpacked)?;
        }
        Packing::Gzip => {}
        Packing::Zstd if desc.is_none() => {
            return Err(OciError::Unsupported {
                what: "layer compression",
                value: "zstd".to_owned(),
                location: what,
            });
        }
        Packing::Zstd => {}
    }
    Ok((digest, size, packing))
}

/// A docker-archive layer's digest, size and packing without hashing it:
/// the digest its file name carries, else (an uncompressed tar) its diffID;
/// only a compressed legacy layer is hashed.
pub(super) fn describe_layer(
    source: &BlobSource,
    named: Option<Digest>,
    diff_id: &Digest,
) -> Result<(Digest, u64, Packing)> {
    let packing = sniff(&mut BufReader::new(source.open()?)).at(&source.path)?;
    let digest = match (named, packing) {
        (Some(d), _) => d,
        (None, Packing::Tar) => *diff_id,
        (None, _) => hash_reader(source.open()?).at(&source.path)?.0,
    };
    Ok((digest, source.len, packing))
}
