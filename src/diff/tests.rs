//! Unit tests of image comparison, over layouts written here.

use super::*;
use crate::oci::Digest;
use crate::oci::base::tests::multi_platform_layout;
use crate::oci::compress::gzip_encoder;
use crate::oci::image::{Descriptor, Platform, build_manifest, media};
use crate::oci::layout::OciDir;
use entries::tests::{T, file, tar_of};
use std::io::Write;
use std::path::Path;

fn layout_ref(dir: &Path, tag: &str) -> ImageRef {
    format!("oci-layout:{}:{tag}", dir.display())
        .parse()
        .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    fs_err::create_dir_all(to).unwrap();
    for e in fs_err::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs_err::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn equal_layers_are_not_read_and_platforms_line_up() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (lower, _) = multi_platform_layout(&a);
    copy_dir(&a, &b);
    // B's copy of the shared lower blob is garbage: equal digests are
    // not trusted, every blob is checked before anything is compared.
    let mut gz = gzip_encoder(Vec::new());
    gz.write_all(&lower).unwrap();
    let blob = Digest::of(&gz.finish().unwrap());
    let path = b.join("blobs/sha256").join(blob.hex());
    let good = fs_err::read(&path).unwrap();
    fs_err::write(&path, b"garbage").unwrap();
    let e = diff_images(
        (&layout_ref(&a, "v1"), "A"),
        (&layout_ref(&b, "v1"), "B"),
        Options::default(),
    )
    .unwrap_err();
    assert!(matches!(e, error::DiffError::CorruptBlob { .. }), "{e}");
    assert!(e.to_string().contains(&blob.to_string()), "{e}");
    fs_err::write(&path, good).unwrap();
    let r = diff_images(
        (&layout_ref(&a, "v1"), "A"),
        (&layout_ref(&b, "v1"), "B"),
        Options::default(),
    )
    .unwrap();
    assert!(r.equal, "{r:#?}");
    assert_eq!(r.summary, ["the images are identical"]);
    let names: Vec<&str> = r.platforms.iter().map(|p| p.platform.as_str()).collect();
    assert_eq!(names, ["linux/amd64", "linux/arm64"]);
    assert!(r.index.a.is_some() && r.index.a == r.index.b);
    assert!(
        r.platforms
            .iter()
            .all(|p| p.layers.iter().all(|l| l.status == "equal"))
    );
}

#[test]
fn a_single_image_pairs_with_its_platform_and_names_the_cause() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let (lower, _) = multi_platform_layout(&a);
    // B: amd64 only, the same lower layer, an upper layer whose files
    // differ in mtime only, and a strata history.
    let upper_a = tar_of(&[file("app/x", b"1"), file("app/y", b"2")]);
    let upper_b = tar_of(&[
        T {
            mtime: 1_700_000_000,
            ..file("app/x", b"1")
        },
        T {
            mtime: 1_700_000_000,
            ..file("app/y", b"2")
        },
    ]);
    let mut images = Vec::new();
    for (name, upper, arch) in [
        ("c", &upper_a, "amd64"),
        ("d", &upper_b, "amd64"),
        ("e", &upper_a, "arm64"),
    ] {
        let dir = OciDir::create(&tmp.path().join(name)).unwrap();
        let mut gz = gzip_encoder(Vec::new());
        gz.write_all(&lower).unwrap();
        let l = dir.write_blob(&gz.finish().unwrap()).unwrap();
        let u = dir.write_blob(upper).unwrap();
        let config = serde_json::json!({
            "architecture": arch, "os": "linux",
            "rootfs": {"type": "layers",
                       "diff_ids": [Digest::of(&lower), Digest::of(upper)]},
            "history": [{"created_by": "ADD base"},
                        {"created_by": "strata layer app"}],
        });
        let c = dir.write_json_blob(&config).unwrap();
        let m = build_manifest(
            Descriptor::new(media::CONFIG, c.digest, c.size),
            vec![
                Descriptor::new(media::LAYER_GZIP, l.digest, l.size),
                Descriptor::new(media::LAYER_TAR, u.digest, u.size),
            ],
        );
        let m = dir.write_json_blob(&m).unwrap();
        dir.set_tag(&Descriptor::new(media::MANIFEST, m.digest, m.size), "v1")
            .unwrap();
        images.push(layout_ref(&tmp.path().join(name), "v1"));
    }
    let r = diff_images(
        (&layout_ref(&a, "v1"), "A"),
        (&images[1], "D"),
        Options::default(),
    )
    .unwrap();
    assert!(!r.equal);
    assert_eq!(r.platforms[1].only_in, Some("a"), "arm64 is only in A");
    let amd = &r.platforms[0];
    assert_eq!(amd.layers[0].status, "equal");
    assert_eq!(amd.layers[1].status, "content");
    assert_eq!(
        amd.layers[1].id.as_deref(),
        Some("app"),
        "A's history names no strata layer: B's does"
    );

    let r = diff_images((&images[0], "C"), (&images[1], "D"), Options::default()).unwrap();
    assert!(!r.equal);
    assert_eq!(
        r.summary[0],
        "2 entries differ only in mtime (layer app): \
         the inputs were copied without a fixed timestamp"
    );
    let app = &r.platforms[0].layers[1];
    assert_eq!(app.id.as_deref(), Some("app"));
    assert_eq!(app.causes[0].examples, ["app/x", "app/y"]);
    assert_eq!(
        r.platforms[0].platform,
        Platform::parse("linux/amd64").unwrap().to_string()
    );
    let semantic = diff_images(
        (&images[0], "C"),
        (&images[1], "D"),
        Options { semantic: true },
    )
    .unwrap();
    assert!(semantic.equal, "{semantic:#?}");
    assert_eq!(semantic.platforms[0].layers[1].status, "same_files");
    // One image on each side: paired, whatever their platforms.
    let r2 = diff_images((&images[0], "C"), (&images[2], "E"), Options::default()).unwrap();
    assert_eq!(r2.platforms.len(), 1);
    assert_eq!(r2.platforms[0].platform, "linux/amd64 / linux/arm64");
    assert_eq!(r2.platforms[0].config_fields[0].path, "/architecture");
    assert!(r2.platforms[0].layers.iter().all(|l| l.status == "equal"));
    let text = render::text(&r, false);
    assert!(
        text.contains("≠ app/x mtime: 315619200 (1980-01-02T00:00:00Z) → 1700000000"),
        "{text}"
    );
}

#[test]
fn run_layer_causes_name_what_the_command_wrote() {
    use entries::Change;
    let change = |path: &str, kinds: &[Kind]| EntryDiff {
        path: path.into(),
        only_in: None,
        whiteout: false,
        entry: None,
        changes: kinds
            .iter()
            .map(|&kind| Change {
                kind,
                a: serde_json::json!(1),
                b: serde_json::json!(2),
            })
            .collect(),
    };
    let entries = [
        change("usr/lib/python3/x.py", &[Kind::Mtime]),
        change(
            "usr/lib/python3/__pycache__/x.cpython-311.pyc",
            &[Kind::Content, Kind::Mtime],
        ),
        change("var/log/dpkg.log", &[Kind::Content, Kind::Mtime]),
    ];
    let run = causes(&entries, &[], true);
    let by = |what: &str| {
        run.iter()
            .find(|c| c.what == what)
            .unwrap()
            .explanation
            .clone()
    };
    assert_eq!(
        by("mtime"),
        "1 entry differs only in mtime: files written at build time (the layer was built with `normalize = false`, or not by strata's normalized run)"
    );
    assert_eq!(
        by("content+mtime"),
        "2 entries differ in content, mtime: the command wrote other bytes: \
         1 .pyc file compiled without SOURCE_DATE_EPOCH, with their source's build-time mtime (usr/lib/python3/__pycache__/x.cpython-311.pyc); \
         1 log with dates in it (var/log/dpkg.log): remove it in the command"
    );
    // A copy layer keeps the copy cause.
    let copy = causes(&entries, &[], false);
    assert!(
        copy.iter()
            .any(|c| c.explanation.contains("copied without a fixed timestamp"))
    );
    assert!(!run.iter().any(|c| c.explanation.contains("copied")));
}
