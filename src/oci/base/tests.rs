//! Unit tests of base import, over layouts and archives written here.

use super::docker::same_reference;
use super::*;
use crate::oci::compress::gzip_encoder;
use crate::oci::image::build_manifest;
use crate::oci::layout::{OciDir, canonical_json};
use crate::oci::tar::{Meta, TarStream};
use serde_json::json;
use std::io::Write;

fn meta(mode: u32) -> Meta {
    Meta {
        mode,
        uid: 0,
        gid: 0,
        mtime: 0,
    }
}

/// A tar of regular files.
pub(crate) fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut t = TarStream::new(Vec::new(), Path::new("memory"));
    for (name, bytes) in files {
        t.append_bytes(name.as_bytes(), bytes, meta(0o644)).unwrap();
    }
    t.finish().unwrap()
}

/// Two layers: the lower one with /tmp, a /var/run symlink and some
/// directories; the upper one with whiteouts and an implicit directory.
pub(crate) fn layers() -> (Vec<u8>, Vec<u8>) {
    let mut t = TarStream::new(Vec::new(), Path::new("memory"));
    t.append_dir(b"gone", meta(0o755)).unwrap();
    t.append_dir(b"keep", meta(0o755)).unwrap();
    t.append_dir(b"keep/sub", meta(0o755)).unwrap();
    t.append_dir(b"opt", meta(0o755)).unwrap();
    t.append_bytes(b"opt/a", b"a", meta(0o644)).unwrap();
    t.append_dir(b"tmp", meta(0o1777)).unwrap();
    t.append_dir(b"var", meta(0o755)).unwrap();
    t.append_symlink(b"var/run", b"/run", meta(0o777)).unwrap();
    let lower = t.finish().unwrap();
    let mut t = TarStream::new(Vec::new(), Path::new("memory"));
    t.append_bytes(b".wh.gone", b"", meta(0o644)).unwrap();
    t.append_dir(
        b"keep",
        Meta {
            uid: 5,
            gid: 6,
            ..meta(0o700)
        },
    )
    .unwrap();
    t.append_bytes(b"keep/.wh..wh..opq", b"", meta(0o644))
        .unwrap();
    t.append_bytes(b"new/implicit/file", b"x", meta(0o644))
        .unwrap();
    let upper = t.finish().unwrap();
    (lower, upper)
}

fn config(diff_ids: &[Digest], arch: &str) -> Vec<u8> {
    canonical_json(&json!({
        "architecture": arch, "os": "linux",
        "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2020-01-01T00:00:00Z", "created_by": "lower"},
                    {"created": "2020-01-01T00:00:00Z", "created_by": "upper"}]
    }))
    .unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = gzip_encoder(Vec::new());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs_err::write(&p, bytes).unwrap();
    p
}

fn amd64() -> Platform {
    Platform::parse("linux/amd64").unwrap()
}

/// `docker save` of Docker 20.10: `<id>/layer.tar`, `<hex>.json`, manifest.json.
fn legacy_archive(lower: &[u8], upper: &[u8], upper_stored: &[u8]) -> Vec<u8> {
    let config = config(&[Digest::of(lower), Digest::of(upper)], "amd64");
    let config_name = format!("{}.json", Digest::of(&config).hex());
    let manifest = canonical_json(&json!([{
        "Config": config_name, "RepoTags": ["base:1"],
        "Layers": ["l1/layer.tar", "l2/layer.tar"]
    }]))
    .unwrap();
    tar_of(&[
        (&config_name, &config),
        ("l1/VERSION", b"1.0"),
        ("l1/json", b"{}"),
        ("l1/layer.tar", lower),
        ("l2/layer.tar", upper_stored),
        ("manifest.json", &manifest),
        ("repositories", b"{}"),
    ])
}

/// `docker save` of Docker >= 25: an OCI layout plus manifest.json; the
/// lower layer gzip-compressed.
fn new_archive(lower: &[u8], upper: &[u8], upper_stored: &[u8]) -> Vec<u8> {
    let config = config(&[Digest::of(lower), Digest::of(upper)], "amd64");
    let lower_gz = gzip(lower);
    let b = |bytes: &[u8]| format!("blobs/sha256/{}", Digest::of(bytes).hex());
    let docker_manifest = canonical_json(&json!([{
        "Config": b(&config), "RepoTags": ["docker.io/library/base:1"],
        "Layers": [b(&lower_gz), b(upper)]
    }]))
    .unwrap();
    tar_of(&[
        (&b(&config), &config),
        (&b(&lower_gz), &lower_gz),
        (&b(upper), upper_stored),
        ("index.json", br#"{"schemaVersion":2,"manifests":[]}"#),
        ("manifest.json", &docker_manifest),
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
    ])
}

fn check_image(image: &BaseImage, lower: &[u8], upper: &[u8]) {
    assert_eq!(image.layers.len(), 2);
    assert_eq!(image.layers[0].diff_id, Digest::of(lower));
    assert_eq!(image.layers[1].diff_id, Digest::of(upper));
    assert_eq!(image.layers[1].descriptor.media_type, media::LAYER_TAR);
    assert_eq!(image.history.len(), 2);
    assert_eq!(image.history[1].created_by.as_deref(), Some("upper"));
    assert_eq!(image.config["config"]["Env"], json!(["PATH=/bin"]));
    let mut stored = Vec::new();
    image.layers[1]
        .open()
        .unwrap()
        .read_to_end(&mut stored)
        .unwrap();
    assert_eq!(stored, upper);
    let queries: Vec<Vec<u8>> = [
        "tmp", "var", "var/run", "gone", "keep", "keep/sub", "opt/a", "new", "nothing",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let got = base_paths(&image.layers, &queries).unwrap();
    let dir = |mode, uid, gid| BasePath::Dir { mode, uid, gid };
    assert_eq!(got[&b"tmp"[..]], dir(0o1777, 0, 0));
    assert_eq!(got[&b"var"[..]], dir(0o755, 0, 0));
    assert_eq!(
        got[&b"var/run"[..]],
        BasePath::Symlink {
            target: b"/run".to_vec()
        }
    );
    assert_eq!(got[&b"gone"[..]], BasePath::Absent);
    assert_eq!(got[&b"keep"[..]], dir(0o700, 5, 6));
    assert_eq!(got[&b"keep/sub"[..]], BasePath::Absent);
    assert_eq!(got[&b"opt/a"[..]], BasePath::Other);
    assert_eq!(got[&b"new"[..]], dir(0o755, 0, 0));
    assert_eq!(got[&b"nothing"[..]], BasePath::Absent);
}

#[test]
fn reads_legacy_docker_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let (lower, upper) = layers();
    let file = write(
        tmp.path(),
        "legacy.tar",
        &legacy_archive(&lower, &upper, &upper),
    );
    let r: ImageRef = format!("docker-archive:{}", file.display())
        .parse()
        .unwrap();
    let image = import_base(&r, &amd64()).unwrap();
    check_image(&image, &lower, &upper);
    assert_eq!(image.manifest_digest, None);
    // Selecting by name works; another name does not exist.
    let r: ImageRef = format!("docker-archive:{}:base:1", file.display())
        .parse()
        .unwrap();
    assert!(import_base(&r, &amd64()).is_ok());
    let r: ImageRef = format!("docker-archive:{}:base:2", file.display())
        .parse()
        .unwrap();
    assert!(matches!(
        import_base(&r, &amd64()),
        Err(OciError::TagNotFound { .. })
    ));
    // Wrong platform.
    let arm = Platform::parse("linux/arm64").unwrap();
    let r: ImageRef = format!("docker-archive:{}", file.display())
        .parse()
        .unwrap();
    assert!(matches!(
        import_base(&r, &arm),
        Err(OciError::PlatformNotFound { .. })
    ));
}

#[test]
fn reads_docker_25_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let (lower, upper) = layers();
    let file = write(tmp.path(), "new.tar", &new_archive(&lower, &upper, &upper));
    let r: ImageRef = format!("docker-archive:{}:base:1", file.display())
        .parse()
        .unwrap();
    let image = import_base(&r, &amd64()).unwrap();
    check_image(&image, &lower, &upper);
    assert_eq!(image.layers[0].descriptor.media_type, media::LAYER_GZIP);
}

#[test]
fn rejects_corrupted_layers_in_both_formats() {
    let tmp = tempfile::tempdir().unwrap();
    let (lower, upper) = layers();
    let mut bad = upper.clone();
    bad[600] ^= 1;
    for (name, bytes) in [
        ("legacy.tar", legacy_archive(&lower, &upper, &bad)),
        ("new.tar", new_archive(&lower, &upper, &bad)),
    ] {
        let file = write(tmp.path(), name, &bytes);
        let r: ImageRef = format!("docker-archive:{}", file.display())
            .parse()
            .unwrap();
        let err = import_base(&r, &amd64()).unwrap_err();
        assert!(
            matches!(err, OciError::DigestMismatch { .. }),
            "{name}: {err}"
        );
        // Unverified (`strata diff`), the layers are described from
        // their names or diffIDs, unread.
        let image = import_unverified(&r, None).unwrap();
        assert_eq!(image.layers[1].descriptor.digest, Digest::of(&upper));
        assert_eq!(image.layers[1].descriptor.size, bad.len() as u64);
        assert_eq!(image_platforms(&r).unwrap(), (None, Vec::new()));
    }
}

/// An OCI layout with a two-platform index tagged `v1`.
pub(crate) fn multi_platform_layout(root: &Path) -> (Vec<u8>, Vec<u8>) {
    let (lower, upper) = layers();
    let dir = OciDir::create(root).unwrap();
    let mut manifests = Vec::new();
    for arch in ["amd64", "arm64"] {
        let l = dir.write_blob(&gzip(&lower)).unwrap();
        let u = dir.write_blob(&upper).unwrap();
        let c = dir
            .write_blob(&config(&[Digest::of(&lower), Digest::of(&upper)], arch))
            .unwrap();
        let m = build_manifest(
            Descriptor::new(media::CONFIG, c.digest, c.size),
            vec![
                Descriptor::new(media::DOCKER_LAYER_GZIP, l.digest, l.size),
                Descriptor::new(media::LAYER_TAR, u.digest, u.size),
            ],
        );
        let m = dir.write_json_blob(&m).unwrap();
        let mut d = Descriptor::new(media::MANIFEST, m.digest, m.size);
        d.platform = Some(Platform::parse(&format!("linux/{arch}")).unwrap());
        manifests.push(d);
    }
    let index = ImageIndex {
        manifests,
        ..ImageIndex::default()
    };
    let i = dir.write_json_blob(&index).unwrap();
    dir.set_tag(&Descriptor::new(media::INDEX, i.digest, i.size), "v1")
        .unwrap();
    (lower, upper)
}

#[test]
fn reads_oci_layout_and_archive_selecting_the_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("layout");
    let (lower, upper) = multi_platform_layout(&root);
    let arm = Platform::parse("linux/arm64/v8").unwrap();
    let r: ImageRef = format!("oci-layout:{}:v1", root.display()).parse().unwrap();
    let image = import_base(&r, &arm).unwrap();
    check_image(&image, &lower, &upper);
    assert_eq!(image.platform.architecture, "arm64");
    assert_eq!(image.layers[0].descriptor.media_type, media::LAYER_GZIP);
    let s390 = Platform::parse("linux/s390x").unwrap();
    let err = import_base(&r, &s390).unwrap_err();
    assert!(
        err.to_string().contains("linux/amd64, linux/arm64"),
        "{err}"
    );
    let r: ImageRef = format!("oci-layout:{}:v2", root.display()).parse().unwrap();
    assert!(matches!(
        import_base(&r, &arm),
        Err(OciError::TagNotFound { .. })
    ));

    // The same layout as a tar.
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (
            "index.json".into(),
            fs_err::read(root.join("index.json")).unwrap(),
        ),
        (
            "oci-layout".into(),
            fs_err::read(root.join("oci-layout")).unwrap(),
        ),
    ];
    for e in fs_err::read_dir(root.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let name = format!("blobs/sha256/{}", e.file_name().to_string_lossy());
        files.push((name, fs_err::read(e.path()).unwrap()));
    }
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let file = write(tmp.path(), "layout.tar", &tar_of(&refs));
    let r: ImageRef = format!("oci-archive:{}", file.display()).parse().unwrap();
    let from_archive = import_base(&r, &arm).unwrap();
    assert_eq!(from_archive.config_digest, image.config_digest);
    assert_eq!(from_archive.manifest_digest, image.manifest_digest);
}

#[test]
fn same_references() {
    assert!(same_reference("docker.io/library/base", "base:latest"));
    assert!(!same_reference("base:1", "base:2"));
}
