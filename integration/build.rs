//! `strata build` and `strata plan` end to end: layers
//! that depend only on input content, parent directories from the base,
//! reuse, verified bases, atomic outputs, a prune racing a build, the layer
//! tars read back by two readers, and skopeo, umoci and Docker reading the
//! images.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::util::{Ctx, Run, docker, engine, engine_lock, noise, ok, run_ok, tool};

/// The fixed layer timestamp (docs/design.md §1).
const EPOCH_1980: u64 = 315_619_200;

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// Writes `content` at `root/rel` with `mode`, creating parents.
fn put(root: &Path, rel: &str, content: &[u8], mode: u32) -> PathBuf {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, content).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// `oci-layout:DIR:TAG` for a directory outside the context.
fn layout_ref(dir: &Path, tag: &str) -> String {
    format!("oci-layout:{}:{tag}", dir.display())
}

/// Runs `strata build . -o DEST`.
fn build(ctx: &Ctx, dest: &str) -> Run {
    ctx.strata(&["build", ".", "-o", dest])
}

/// An OCI layout written by a build, read without strata's code.
struct Layout(PathBuf);

impl Layout {
    fn blob_path(&self, digest: &str) -> PathBuf {
        self.0
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap())
    }

    fn has(&self, digest: &str) -> bool {
        self.blob_path(digest).exists()
    }

    fn index(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.0.join("index.json")).unwrap()).unwrap()
    }

    /// The manifest digest tagged `tag`.
    fn tag(&self, tag: &str) -> String {
        let index = self.index();
        let found: Vec<&Value> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .collect();
        assert_eq!(found.len(), 1, "tag {tag} in {index}");
        found[0]["digest"].as_str().unwrap().to_string()
    }

    /// A blob, checked against its name.
    fn blob(&self, digest: &str) -> Vec<u8> {
        let bytes = std::fs::read(self.blob_path(digest)).unwrap();
        assert_eq!(digest_of(&bytes), digest, "blob content does not match");
        bytes
    }

    fn json(&self, digest: &str) -> Value {
        serde_json::from_slice(&self.blob(digest)).unwrap()
    }

    fn manifest(&self, tag: &str) -> Value {
        self.json(&self.tag(tag))
    }

    fn config(&self, tag: &str) -> Value {
        let m = self.manifest(tag);
        self.json(m["config"]["digest"].as_str().unwrap())
    }

    /// Layer digests of the image tagged `tag`, bottom first.
    fn layers(&self, tag: &str) -> Vec<String> {
        self.manifest(tag)["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string())
            .collect()
    }

    /// A layer as an uncompressed tar.
    fn layer_tar(&self, digest: &str) -> Vec<u8> {
        gunzip_if_needed(self.blob(digest))
    }

    /// Checks every file in `blobs/sha256/`: a final name is the digest of
    /// its content; and every blob `index.json` reaches is there with its
    /// size and digest. Returns the temp files (dot names) it saw.
    fn check_sound(&self) -> Vec<String> {
        let mut temps = Vec::new();
        for e in std::fs::read_dir(self.0.join("blobs/sha256")).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                temps.push(name);
                continue;
            }
            assert!(e.file_type().unwrap().is_file(), "{name} is not a file");
            let bytes = std::fs::read(e.path()).unwrap();
            assert_eq!(
                sha256_hex(&bytes),
                name,
                "blob named {name} has other content"
            );
        }
        let index = self.index();
        let mut todo: Vec<Value> = index["manifests"].as_array().unwrap().clone();
        while let Some(d) = todo.pop() {
            let digest = d["digest"].as_str().unwrap();
            let bytes = self.blob(digest);
            assert_eq!(bytes.len() as u64, d["size"].as_u64().unwrap(), "{digest}");
            let media = d["mediaType"].as_str().unwrap_or("");
            if media.ends_with("manifest.v1+json") {
                let m: Value = serde_json::from_slice(&bytes).unwrap();
                todo.push(m["config"].clone());
                todo.extend(m["layers"].as_array().unwrap().iter().cloned());
            } else if media.ends_with("index.v1+json") {
                let i: Value = serde_json::from_slice(&bytes).unwrap();
                todo.extend(i["manifests"].as_array().unwrap().iter().cloned());
            }
        }
        temps
    }
}

fn gunzip_if_needed(bytes: Vec<u8>) -> Vec<u8> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        // Layers are gzip members of 1 MiB each (docs/oci.md).
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        bytes
    }
}

/// One entry of a layer tar, as the `tar` crate reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TarEntry {
    path: Vec<u8>,
    kind: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    names: (Vec<u8>, Vec<u8>),
    link: Option<Vec<u8>>,
    content: Vec<u8>,
}

impl TarEntry {
    fn path_str(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
}

fn tar_entries(tar: &[u8]) -> Vec<TarEntry> {
    let mut out = Vec::new();
    let mut archive = tar::Archive::new(tar);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let mut path = e.path_bytes().into_owned();
        if path.ends_with(b"/") {
            path.pop();
        }
        let link = e.link_name_bytes().map(|l| l.into_owned());
        let mut content = Vec::new();
        e.read_to_end(&mut content).unwrap();
        out.push(TarEntry {
            path,
            kind: h.entry_type().as_byte(),
            mode: h.mode().unwrap(),
            uid: h.uid().unwrap(),
            gid: h.gid().unwrap(),
            mtime: h.mtime().unwrap(),
            names: (
                h.username_bytes().unwrap_or_default().to_vec(),
                h.groupname_bytes().unwrap_or_default().to_vec(),
            ),
            link,
            content,
        });
    }
    out
}

/// The entry at `path` of a layer.
#[track_caller]
fn entry<'a>(entries: &'a [TarEntry], path: &str) -> &'a TarEntry {
    entries
        .iter()
        .find(|e| e.path == path.as_bytes())
        .unwrap_or_else(|| panic!("no `{path}` in {:?}", paths(entries)))
}

fn paths(entries: &[TarEntry]) -> Vec<String> {
    entries.iter().map(TarEntry::path_str).collect()
}

// ---------------------------------------------------------------- base images

/// An entry of a hand-made base layer.
enum Base<'a> {
    Dir(&'a str, u32, u64, u64),
    Symlink(&'a str, &'a str),
    File(&'a str, &'a [u8]),
}

/// A base layer tar written with the `tar` crate.
fn base_layer(items: &[Base<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for item in items {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(0);
        let (path, data): (&str, &[u8]) = match item {
            Base::Dir(p, mode, uid, gid) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_uid(*uid);
                h.set_gid(*gid);
                (p, &[])
            }
            Base::Symlink(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_link_name(target).unwrap();
                (p, &[])
            }
            Base::File(p, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                (p, data)
            }
        };
        h.set_path(path).unwrap();
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// The blobs of a one-layer base image: (layer, config, manifest) bytes.
fn base_blobs(layer_tar: &[u8]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(layer_tar).unwrap();
    let layer = gz.finish().unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Env": ["PATH=/usr/bin:/bin"] },
        "rootfs": { "type": "layers", "diff_ids": [digest_of(layer_tar)] },
        "history": [{ "created_by": "hand-made base" }],
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest_of(&config),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": digest_of(&layer),
            "size": layer.len(),
        }],
    }))
    .unwrap();
    (layer, config, manifest)
}

/// Writes an OCI layout at `dir` holding one image tagged `latest`.
/// Returns the (layer, config) digests.
fn write_base_layout(dir: &Path, layer_tar: &[u8]) -> (String, String) {
    let (layer, config, manifest) = base_blobs(layer_tar);
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    for b in [&layer, &config, &manifest] {
        std::fs::write(dir.join("blobs/sha256").join(sha256_hex(b)), b).unwrap();
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest_of(&manifest),
            "size": manifest.len(),
            "annotations": { "org.opencontainers.image.ref.name": "latest" },
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).unwrap();
    (digest_of(&layer), digest_of(&config))
}

/// A tar of `files` (name, bytes).
fn tar_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_path(name).unwrap();
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// A `docker save` archive of one image: `manifest.json` plus blobs, named
/// by digest as Docker ≥ 25 writes them, or (`legacy`) as `<id>/layer.tar`
/// and `<hex>.json` with no digest in a layer's name, as Docker 20.10 does.
/// Returns the archive and the layer digest.
fn docker_archive(layer_tar: &[u8], corrupt_layer: bool, legacy: bool) -> (Vec<u8>, String) {
    let (mut layer, config, _) = base_blobs(layer_tar);
    let layer_digest = digest_of(&layer);
    if corrupt_layer {
        let mid = layer.len() / 2;
        layer[mid] ^= 0x55;
    }
    let (layer_name, config_name) = if legacy {
        (
            format!("{}/layer.tar", &sha256_hex(b"id")),
            format!("{}.json", sha256_hex(&config)),
        )
    } else {
        (
            format!("blobs/sha256/{}", &layer_digest[7..]),
            format!("blobs/sha256/{}", sha256_hex(&config)),
        )
    };
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": ["base:latest"],
        "Layers": [layer_name],
    }]);
    let tar = tar_of(&[
        (layer_name, layer),
        (config_name, config),
        (
            "manifest.json".to_string(),
            manifest.to_string().into_bytes(),
        ),
    ]);
    (tar, layer_digest)
}

/// The tree of a small Debian-like base: `/tmp` sticky, `/var/run` a
/// symlink to `../run`, `/srv` owned by 5:6 with mode 0750.
fn debianish(srv_mode: u32) -> Vec<u8> {
    base_layer(&[
        Base::Dir("etc/", 0o755, 0, 0),
        Base::File("etc/os-release", b"ID=test\n"),
        Base::Dir("run/", 0o755, 0, 0),
        Base::Dir("srv/", srv_mode, 5, 6),
        Base::Dir("tmp/", 0o1777, 0, 0),
        Base::Dir("var/", 0o755, 0, 0),
        Base::Symlink("var/run", "../run"),
    ])
}

// ---------------------------------------------------------------- 1. reproducibility

const REPRO_SPEC: &str = r#"version = 1
[image]
platforms = ["linux/amd64"]
workdir = "/srv"
[[layer]]
name = "models"
copy = [{ from = "models", to = "/srv/models" }]
split = "file"
split_min = "2KiB"
[[layer]]
name = "app"
copy = [
  { from = "app", to = "/srv/app" },
  { from = "bin/tool", to = "/usr/local/bin/", mode = "0750" },
]
"#;

/// A checkout of the same tree: `umask002` gives group-writable files and
/// directories; `reverse` creates files in the opposite order (and
/// `app/copy.py` as a hard link of `app/main.py`); every path gets `mtime`.
fn checkout(ctx: &Ctx, umask002: bool, reverse: bool, mtime: u64) {
    let (file, exec, dir) = if umask002 {
        (0o664, 0o775, 0o775)
    } else {
        (0o644, 0o755, 0o755)
    };
    let mut files: Vec<(&str, Vec<u8>, bool)> = vec![
        ("models/enc/shard-1.bin", noise(4096, 1), false),
        ("models/enc/shard-2.bin", noise(3000, 2), false),
        ("models/enc/config.json", b"{\"dim\":8}\n".to_vec(), false),
        ("models/tok/vocab.txt", b"a\nb\n".to_vec(), false),
        ("app/main.py", b"print('hi')\n".to_vec(), false),
        (
            "app/bin/run.sh",
            b"#!/bin/sh\nexec python3 main.py\n".to_vec(),
            true,
        ),
        ("bin/tool", b"#!/bin/sh\n".to_vec(), true),
    ];
    if reverse {
        files.reverse();
    }
    for (rel, content, x) in &files {
        let p = ctx.path().join(rel);
        let mut missing = Vec::new();
        let mut d = p.parent().unwrap();
        while !d.exists() {
            missing.push(d.to_path_buf());
            d = d.parent().unwrap();
        }
        for d in missing.iter().rev() {
            std::fs::create_dir(d).unwrap();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(dir)).unwrap();
        }
        put(ctx.path(), rel, content, if *x { exec } else { file });
    }
    let copy = ctx.path().join("app/copy.py");
    if reverse {
        std::fs::hard_link(ctx.path().join("app/main.py"), &copy).unwrap();
    } else {
        put(ctx.path(), "app/copy.py", b"print('hi')\n", file);
    }
    std::os::unix::fs::symlink("main.py", ctx.path().join("app/latest")).unwrap();
    std::fs::create_dir(ctx.path().join("app/cache")).unwrap();
    std::fs::set_permissions(
        ctx.path().join("app/cache"),
        std::fs::Permissions::from_mode(dir),
    )
    .unwrap();
    ctx.spec(REPRO_SPEC);
    let status = Command::new("find")
        .arg(ctx.path())
        .args([
            "-exec",
            "touch",
            "-h",
            "-d",
            &format!("@{mtime}"),
            "{}",
            "+",
        ])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn checkouts_with_other_mtimes_umask_and_order_give_the_same_image() {
    let a = Ctx::new();
    checkout(&a, false, false, 1_000_000_000);
    let b = Ctx::new();
    checkout(&b, true, true, 1_700_000_000);
    let meta = std::fs::metadata(b.path().join("app/main.py")).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o664, "the checkout is group-writable");
    assert_eq!(meta.nlink(), 2, "and has a hard link");

    let (out_a, out_b) = (a.outside("out"), b.outside("out"));
    let digest_a = ok(&build(&a, &layout_ref(&out_a, "v1")));
    let digest_b = ok(&build(&b, &layout_ref(&out_b, "v1")));
    assert!(digest_a.starts_with("sha256:"), "{digest_a}");
    assert_eq!(
        digest_a,
        digest_b,
        "same content, other checkout: same manifest\n{}",
        crate::util::diff_report(&layout_ref(&out_a, "v1"), &layout_ref(&out_b, "v1"))
    );
    let (la, lb) = (Layout(out_a), Layout(out_b));
    assert_eq!(la.tag("v1"), digest_a);
    let layers = lb.layers("v1");
    assert_eq!(layers.len(), 4, "models, two split shards, app");
    // The group-writable checkout left no group or other write bit, and the
    // hard link is a regular file.
    let app = tar_entries(&lb.layer_tar(&layers[3]));
    for e in &app {
        if e.kind != b'2' {
            assert_eq!(e.mode & 0o022, 0, "{} has mode {:o}", e.path_str(), e.mode);
        }
    }
    assert_eq!(entry(&app, "srv/app/copy.py").kind, b'0');
    assert_eq!(entry(&app, "srv/app/cache").mode, 0o755);
    assert_eq!(entry(&app, "usr/local/bin/tool").mode, 0o750);

    // SOURCE_DATE_EPOCH changes the config and manifest, never a layer
    // (written afresh here, with an empty cache).
    let cache = b.outside("sde-cache");
    let run = b.strata_env(
        &[
            "build",
            ".",
            "--cache-dir",
            cache.to_str().unwrap(),
            "-o",
            &layout_ref(&b.outside("sde"), "v1"),
        ],
        &[("SOURCE_DATE_EPOCH", "1700000000")],
    );
    let digest_sde = ok(&run);
    let built = run
        .stderr()
        .lines()
        .filter(|l| l.contains(" built "))
        .count();
    assert_eq!(built, 4, "{}", run.stderr());
    assert_ne!(digest_sde, digest_b);
    let sde = Layout(b.outside("sde"));
    assert_eq!(sde.layers("v1"), layers);
    let (c_sde, c_b) = (sde.config("v1"), lb.config("v1"));
    assert_eq!(c_sde["rootfs"], c_b["rootfs"]);
    assert_eq!(c_sde["created"], "2023-11-14T22:13:20Z");
    assert_eq!(c_b["created"], "1980-01-02T00:00:00Z");
    for h in c_sde["history"].as_array().unwrap() {
        assert_eq!(h["created"], "2023-11-14T22:13:20Z");
    }
}

// ---------------------------------------------------------------- 2. parent directories

const PARENTS_SPEC: &str = r#"version = 1
[image]
from = "oci-layout:base:latest"
platforms = ["linux/amd64"]
[[layer]]
name = "scratchpad"
copy = [{ from = "x", to = "/tmp/x" }]
[[layer]]
name = "site"
copy = [{ from = "site", to = "/srv/site" }]
[[layer]]
name = "fresh"
copy = [{ from = "x", to = "/opt/new/x" }]
"#;

#[test]
fn ancestor_directories_take_the_base_metadata() {
    let ctx = Ctx::new();
    write_base_layout(&ctx.path().join("base"), &debianish(0o750));
    ctx.write("x", "x\n");
    ctx.write("site/index.html", "<p>hi</p>\n");
    ctx.spec(PARENTS_SPEC);
    let out = ctx.outside("out");
    ok(&build(&ctx, &layout_ref(&out, "v1")));
    let layout = Layout(out.clone());
    let layers = layout.layers("v1");
    assert_eq!(layers.len(), 4, "the base layer and three strata layers");

    let tmp = tar_entries(&layout.layer_tar(&layers[1]));
    assert_eq!(paths(&tmp), ["tmp", "tmp/x"]);
    let t = entry(&tmp, "tmp");
    assert_eq!(
        (t.kind, t.mode, t.uid, t.gid),
        (b'5', 0o1777, 0, 0),
        "{t:?}"
    );
    assert_eq!(t.mtime, EPOCH_1980);
    let site = tar_entries(&layout.layer_tar(&layers[2]));
    let s = entry(&site, "srv");
    assert_eq!((s.mode, s.uid, s.gid), (0o750, 5, 6), "{s:?}");
    assert_eq!(entry(&site, "srv/site").mode, 0o755, "not in the base");
    let fresh = tar_entries(&layout.layer_tar(&layers[3]));
    for d in ["opt", "opt/new"] {
        let e = entry(&fresh, d);
        assert_eq!((e.mode, e.uid, e.gid), (0o755, 0, 0), "{e:?}");
    }

    // A base whose `/srv` differs changes the layer under it, and only it:
    // the layer key covers the base's metadata of its ancestors.
    std::fs::remove_dir_all(ctx.path().join("base")).unwrap();
    write_base_layout(&ctx.path().join("base"), &debianish(0o755));
    let run = build(&ctx, &layout_ref(&out, "v2"));
    ok(&run);
    let v2 = layout.layers("v2");
    assert_ne!(v2[0], layers[0]);
    assert_eq!(v2[1], layers[1]);
    assert_ne!(v2[2], layers[2], "{}", run.stderr());
    assert_eq!(v2[3], layers[3]);
    let site = tar_entries(&layout.layer_tar(&v2[2]));
    assert_eq!(entry(&site, "srv").mode, 0o755);

    // Under a symlink of the base: exit 1, naming the resolved path.
    ctx.spec(
        "version = 1\n[image]\nfrom = \"oci-layout:base:latest\"\nplatforms = [\"linux/amd64\"]\n\
         [[layer]]\nname = \"pid\"\ncopy = [{ from = \"x\", to = \"/var/run/x\" }]\n",
    );
    let out3 = ctx.outside("out3");
    let run = build(&ctx, &layout_ref(&out3, "v1"));
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let err = run.stderr();
    assert!(err.contains("`/var/run`"), "{err}");
    assert!(err.contains("`/var/run/x`"), "names the destination: {err}");
    assert!(err.contains("`/run/x`"), "names the path to write: {err}");
    assert!(err.contains("layer `pid`"), "{err}");
    assert_eq!(run.stdout(), "");
    assert!(!out3.exists(), "nothing written");
}

// ---------------------------------------------------------------- 3. reuse and plan

const REUSE_SPEC: &str = r#"version = 1
[image]
platforms = ["linux/amd64"]
[[layer]]
name = "models"
copy = [{ from = "models", to = "/srv/models" }]
split = "file"
split_min = "1KiB"
[[layer]]
name = "app"
copy = [{ from = "app", to = "/srv/app" }]
"#;

const SHARD1: &str = "models@/srv/models/shard-1.bin";
const SHARD2: &str = "models@/srv/models/shard-2.bin";

/// The plan as JSON.
/// The plan of the one platform of `strata plan --format json`.
fn plan_json(ctx: &Ctx, extra: &[&str]) -> Value {
    let mut args = vec!["plan", ".", "--format", "json"];
    args.extend(extra);
    let doc: Value = serde_json::from_str(&ok(&ctx.strata(&args))).unwrap();
    assert_eq!(doc["schema"], "strata.plan/v2");
    assert_eq!(doc["platforms"].as_array().unwrap().len(), 1, "{doc}");
    doc["platforms"][0].clone()
}

/// Layer IDs with the given status in a plan document.
fn with_status(plan: &Value, status: &str) -> BTreeSet<String> {
    plan["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["status"] == status)
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect()
}

/// The status word of each layer's line, in `ids` order (the lines come in
/// completion order).
fn build_lines(run: &Run, ids: &[String]) -> Vec<(String, String)> {
    let err = run.stderr();
    let mut lines: Vec<(String, String)> = err
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let id = w.next()?;
            ids.contains(&id.to_string())
                .then(|| (id.to_string(), w.next().unwrap_or("").to_string()))
        })
        .collect();
    assert_eq!(lines.len(), ids.len(), "one line per layer:\n{err}");
    lines.sort_by_key(|(id, _)| ids.iter().position(|i| i == id));
    lines
}

/// Positions where two layer lists differ.
fn changed(a: &[String], b: &[String]) -> Vec<usize> {
    assert_eq!(a.len(), b.len());
    (0..a.len()).filter(|&i| a[i] != b[i]).collect()
}

#[test]
fn unchanged_layers_are_reused_and_plan_says_which_rebuild() {
    let ctx = Ctx::new();
    ctx.write("models/shard-1.bin", noise(2048, 11));
    ctx.write("models/shard-2.bin", noise(2048, 12));
    ctx.write("models/config.json", "{}\n");
    ctx.write("app/main.py", "print(1)\n");
    ctx.spec(REUSE_SPEC);
    let out = ctx.outside("out");
    let layout = Layout(out.clone());
    let ids: Vec<String> = ["models", SHARD1, SHARD2, "app"].map(String::from).into();

    // Before any build there is nothing to compare with.
    assert_eq!(with_status(&plan_json(&ctx, &[]), "unknown").len(), 4);
    let first = build(&ctx, &layout_ref(&out, "v1"));
    ok(&first);
    assert!(build_lines(&first, &ids).iter().all(|(_, s)| s == "built"));
    let v1 = layout.layers("v1");
    assert_eq!(v1.len(), 4);

    // One shard changes: exactly its layer changes.
    ctx.write("models/shard-2.bin", noise(2048, 13));
    let run = build(&ctx, &layout_ref(&out, "v2"));
    ok(&run);
    let v2 = layout.layers("v2");
    assert_eq!(changed(&v1, &v2), [2]);
    let status = build_lines(&run, &ids);
    assert_eq!(status[2], (SHARD2.to_string(), "built".to_string()));
    for i in [0, 1, 3] {
        assert_eq!(status[i].1, "reused", "{:?}", status[i]);
    }

    // The app changes: exactly the app layer.
    ctx.write("app/main.py", "print(2)\n");
    ok(&build(&ctx, &layout_ref(&out, "v3")));
    let v3 = layout.layers("v3");
    assert_eq!(changed(&v2, &v3), [3]);

    // Touching every file (mtime only) changes nothing, and reads no layer.
    let status = Command::new("find")
        .arg(ctx.path())
        .args(["-exec", "touch", "-d", "@1800000000", "{}", "+"])
        .status()
        .unwrap();
    assert!(status.success());
    let run = build(&ctx, &layout_ref(&out, "v4"));
    assert_eq!(ok(&run), layout.tag("v3"), "same manifest");
    for (id, s) in build_lines(&run, &ids) {
        assert_eq!(s, "reused", "{id}");
    }

    // After a change, `plan` says rebuilt for that layer only, in the table
    // and in JSON, compared with the last build.
    ctx.write("models/shard-1.bin", noise(2048, 14));
    let table = ok(&ctx.strata(&["plan", "."]));
    let mut rows = 0;
    for line in table.lines().skip(1) {
        let id = line.split_whitespace().next().unwrap();
        let want = if id == SHARD1 { "rebuilt" } else { "reused" };
        assert!(line.split_whitespace().any(|w| w == want), "{id}: {line}");
        rows += 1;
    }
    assert_eq!(rows, 4, "{table}");
    let plan = plan_json(&ctx, &[]);
    assert_eq!(plan["against"], "last build");
    assert_eq!(
        with_status(&plan, "rebuilt"),
        BTreeSet::from([SHARD1.into()])
    );
    assert_eq!(with_status(&plan, "reused").len(), 3);

    // Against the first image: exactly the layers that differ from it.
    let plan = plan_json(&ctx, &["--against", &layout_ref(&out, "v1")]);
    let rebuilt = with_status(&plan, "rebuilt");
    ok(&build(&ctx, &layout_ref(&out, "v5")));
    let differ: BTreeSet<String> = changed(&v1, &layout.layers("v5"))
        .into_iter()
        .map(|i| ids[i].clone())
        .collect();
    assert_eq!(rebuilt, differ);
    assert_eq!(
        rebuilt,
        BTreeSet::from([SHARD1.into(), SHARD2.into(), "app".into()])
    );
    assert_eq!(
        with_status(&plan, "reused"),
        BTreeSet::from(["models".into()])
    );
    // And against an image that is not strata's: exit 1.
    let base = ctx.outside("plain");
    write_base_layout(&base, &debianish(0o755));
    let run = ctx.strata(&["plan", ".", "--against", &layout_ref(&base, "latest")]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert!(
        run.stderr().contains("not built by strata"),
        "{}",
        run.stderr()
    );
}

/// The `strata.input/v1` encoding of one regular file (`docs/digest.md`),
/// written here from the document, not from strata's code.
fn one_file_digest(path: &str, mode: u32, content: &[u8]) -> String {
    let field = |b: &[u8]| {
        let mut v = (b.len() as u64).to_be_bytes().to_vec();
        v.extend_from_slice(b);
        v
    };
    let mut s = field(b"strata.input/v1");
    s.push(b'F');
    s.extend(field(path.as_bytes()));
    s.extend(mode.to_be_bytes());
    s.extend((content.len() as u64).to_be_bytes());
    s.extend(Sha256::digest(content));
    s.push(b'E');
    s.extend(1u64.to_be_bytes());
    digest_of(&s)
}

const GOLDEN_PLAN: &str = r#"{
  "schema": "strata.plan/v2",
  "target": null,
  "platforms": [
    {
      "platform": "linux/amd64",
      "against": null,
      "layers": [
        {
          "id": "models",
          "kind": "copy",
          "inputs": "sha256:41da05b2b6c5618aab109461bc12eb33b839ead4d1d74212cf97858ddb6bc0c6",
          "key": "sha256:5818fe9dacf7d8d2816d33cece3c0760e4506272a54ca21880e42f83f830dd30",
          "size": 6,
          "files": 1,
          "status": "unknown"
        },
        {
          "id": "models@/models/big.bin",
          "kind": "copy",
          "inputs": "sha256:875604d6c7dc33f9dcbcdbe912ce95540738f625a98fdeaf32b761849cd1c79e",
          "key": "sha256:36eefe0d44e2c1379d4e00a2a7ebde5bcb547e6143e3cd15947db28328760dc5",
          "size": 2048,
          "files": 1,
          "status": "unknown"
        },
        {
          "id": "conf",
          "kind": "copy",
          "inputs": "sha256:47e7585fc4c67c48c4939558f71a19a7f05c82d9ae92f6f6051b5a92022dcc63",
          "key": "sha256:b970247eb3278aa4940b3345ed626e6d9c994fb6a609af028e93a929526f3598",
          "size": 12,
          "files": 1,
          "status": "unknown"
        }
      ]
    }
  ]
}"#;

#[test]
fn plan_json_is_pinned() {
    let ctx = Ctx::new();
    ctx.write("m/big.bin", vec![7u8; 2048]);
    ctx.write("m/small.txt", "small\n");
    ctx.write("etc/app.conf", "port = 8000\n");
    ctx.spec(
        "version = 1\n\
         [[layer]]\nname = \"models\"\ncopy = [{ from = \"m\", to = \"/models\" }]\n\
         split = \"file\"\nsplit_min = \"1KiB\"\n\
         [[layer]]\nname = \"conf\"\ncopy = [{ from = \"etc/app.conf\", to = \"/etc/app/\" }]\n",
    );
    let run = ctx.strata(&["plan", ".", "--platform", "linux/amd64", "--format", "json"]);
    let text = ok(&run);
    assert_eq!(text, GOLDEN_PLAN);
    let plan: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        plan["platforms"][0]["layers"][2]["inputs"],
        one_file_digest("etc/app/app.conf", 0o644, b"port = 8000\n")
    );
}

// ---------------------------------------------------------------- 4. corrupted bases

#[test]
fn a_base_with_a_corrupted_blob_is_rejected() {
    let spec = |from: &str| {
        format!(
            "version = 1\n[image]\nfrom = \"{from}\"\nplatforms = [\"linux/amd64\"]\n\
             [[layer]]\nname = \"x\"\ncopy = [{{ from = \"x\", to = \"/x\" }}]\n"
        )
    };
    let layer_tar = debianish(0o755);
    let ctx = Ctx::new();
    ctx.write("x", "x\n");

    // The sound forms build.
    let (layer, config) = write_base_layout(&ctx.path().join("layout"), &layer_tar);
    let (archive, docker_layer) = docker_archive(&layer_tar, false, false);
    ctx.write("legacy.tar", docker_archive(&layer_tar, false, true).0);
    assert_eq!(docker_layer, layer);
    ctx.write("docker.tar", &archive);
    let oci_archive = |root: &Path| {
        let mut files = Vec::new();
        for name in ["oci-layout", "index.json"] {
            files.push((name.to_string(), std::fs::read(root.join(name)).unwrap()));
        }
        for e in std::fs::read_dir(root.join("blobs/sha256")).unwrap() {
            let e = e.unwrap();
            files.push((
                format!("blobs/sha256/{}", e.file_name().to_string_lossy()),
                std::fs::read(e.path()).unwrap(),
            ));
        }
        tar_of(&files)
    };
    ctx.write("oci.tar", oci_archive(&ctx.path().join("layout")));
    for from in [
        "oci-layout:layout:latest",
        "docker-archive:docker.tar",
        "docker-archive:legacy.tar",
        "oci-archive:oci.tar:latest",
    ] {
        ctx.spec(&spec(from));
        ok(&build(&ctx, &layout_ref(&ctx.outside("ok"), "v1")));
    }

    // One flipped byte in a layer (same size): exit 1, naming the blob.
    let mut cases: Vec<(String, String)> = Vec::new();
    let blob = ctx.path().join("layout/blobs/sha256").join(&layer[7..]);
    let mut bytes = std::fs::read(&blob).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&blob, &bytes).unwrap();
    ctx.write("oci.tar", oci_archive(&ctx.path().join("layout")));
    cases.push(("oci-layout:layout:latest".into(), layer.clone()));
    cases.push(("oci-archive:oci.tar:latest".into(), layer.clone()));
    ctx.write("docker.tar", docker_archive(&layer_tar, true, false).0);
    cases.push(("docker-archive:docker.tar".into(), layer.clone()));
    // Without a digest in the layer's name, the diffID is the one to name.
    ctx.write("legacy.tar", docker_archive(&layer_tar, true, true).0);
    cases.push(("docker-archive:legacy.tar".into(), digest_of(&layer_tar)));
    for (from, digest) in &cases {
        ctx.spec(&spec(from));
        let out = ctx.outside("bad");
        let run = build(&ctx, &layout_ref(&out, "v1"));
        assert_eq!(run.code(), 1, "{from}: {}", run.stderr());
        assert!(
            run.stderr().contains(digest.as_str()),
            "{from}: {}",
            run.stderr()
        );
        assert_eq!(run.stdout(), "");
        assert!(!out.exists(), "{from}: nothing written");
    }

    // A corrupted config: the same.
    std::fs::remove_dir_all(ctx.path().join("layout")).unwrap();
    write_base_layout(&ctx.path().join("layout"), &layer_tar);
    let blob = ctx.path().join("layout/blobs/sha256").join(&config[7..]);
    let text = std::fs::read_to_string(&blob)
        .unwrap()
        .replace("/usr/bin:/bin", "/usr/bin:/xyz");
    std::fs::write(&blob, text).unwrap();
    ctx.spec(&spec("oci-layout:layout:latest"));
    let run = build(&ctx, &layout_ref(&ctx.outside("bad"), "v1"));
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert!(run.stderr().contains(&config), "{}", run.stderr());
}

// ---------------------------------------------------------------- 5. atomicity

const TWO_LAYERS: &str = r#"version = 1
[image]
platforms = ["linux/amd64"]
[[layer]]
name = "data"
copy = [{ from = "data", to = "/data" }]
[[layer]]
name = "app"
copy = [{ from = "app", to = "/app" }]
"#;

/// A failed build leaves the layout as it was. Permission tricks do not
/// work as root and `chattr` not on every file system, so the failure is
/// forced another way: a directory (with a file in it) squats the name of a
/// blob the build must write, learned from a probe build of the same inputs
/// into another layout. Renaming the finished blob onto a directory fails
/// on any file system and for any user, after planning and after the
/// blobs before it are in place: first the new layer (linked from the
/// cache), then the config (written after every layer). Builds killed at
/// points spread over a whole build then check the same for an
/// interruption.
#[test]
fn a_failed_or_killed_build_leaves_the_previous_image_intact() {
    let skopeo = tool("skopeo");
    let ctx = Ctx::new();
    ctx.write("data/blob.bin", noise(8192, 21));
    ctx.write("app/main.py", "v1\n");
    ctx.spec(TWO_LAYERS);
    let out = ctx.outside("out");
    let layout = Layout(out.clone());
    let v1 = ok(&build(&ctx, &layout_ref(&out, "v1")));
    let index_v1 = std::fs::read(out.join("index.json")).unwrap();

    ctx.write("app/main.py", "v2\n");
    let probe = Layout(ctx.outside("probe"));
    let v2 = ok(&build(&ctx, &layout_ref(&probe.0, "v2")));
    let new_layer = probe.layers("v2")[1].clone();
    let new_config = probe.manifest("v2")["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let intact = |what: &str| {
        assert_eq!(
            std::fs::read(out.join("index.json")).unwrap(),
            index_v1,
            "{what}: index.json changed"
        );
        assert_eq!(layout.tag("v1"), v1);
        let temps = layout.check_sound();
        assert!(temps.is_empty(), "{what}: left {temps:?}");
        if let Some(skopeo) = &skopeo {
            let o = run_ok(
                Command::new(skopeo).args(["inspect", &format!("oci:{}:v1", out.display())]),
            );
            let v: Value = serde_json::from_slice(&o.0.stdout).unwrap();
            assert_eq!(v["Digest"], v1.as_str());
        }
    };
    for (what, squatted) in [("layer", &new_layer), ("config", &new_config)] {
        assert!(!layout.has(squatted));
        let squat = layout.blob_path(squatted);
        std::fs::create_dir(&squat).unwrap();
        std::fs::write(squat.join("keep"), "").unwrap();
        let run = build(&ctx, &layout_ref(&out, "v2"));
        assert_ne!(run.code(), 0, "{what}: the build must fail");
        assert!(run.stderr().contains("error:"), "{}", run.stderr());
        assert!(!run.stderr().contains("panicked"), "{}", run.stderr());
        assert_eq!(run.stdout(), "");
        std::fs::remove_dir_all(&squat).unwrap();
        intact(what);
    }
    assert_eq!(ok(&build(&ctx, &layout_ref(&out, "v2"))), v2);

    // Killed at points spread over a whole build (timed first) and at random
    // ones: whatever the
    // moment, v1 and v2 stay readable and every blob with a final name is
    // whole; a build that got to finish has tagged v3.
    let mut index = std::fs::read(out.join("index.json")).unwrap();
    ctx.write("data/blob.bin", noise(1 << 20, 99));
    let start = Instant::now();
    ok(&build(&ctx, &layout_ref(&ctx.outside("timing"), "t")));
    let full = start.elapsed();
    // Fixed points, then five random ones (the seed is printed; set
    // STRATA_KILL_SEED to replay a run).
    let seed: u64 = std::env::var("STRATA_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos() as u64
                | 1
        });
    eprintln!("kill points: STRATA_KILL_SEED={seed}");
    let mut x = seed;
    let random = (0..5).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 121) as u32
    });
    let points: Vec<u32> = [0u32, 10, 25, 40, 55, 70, 85, 100, 150, 250]
        .into_iter()
        .chain(random)
        .collect();
    for (i, percent) in points.into_iter().enumerate() {
        ctx.write("data/blob.bin", noise(1 << 20, 100 + i as u64));
        let mut child = ctx
            .command(&["build", ".", "-o", &layout_ref(&out, "v3")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(full * percent / 100);
        let _ = child.kill();
        let finished = child.wait().unwrap().success();
        eprintln!("killed at {percent}% of {full:?}: finished = {finished}");
        // index.json is the previous one, or a new one that tags v3 and
        // whose every blob is whole (checked by `check_sound`).
        let now = std::fs::read(out.join("index.json")).unwrap();
        if now != index {
            assert!(!layout.tag("v3").is_empty());
            index = now;
        } else {
            assert!(!finished, "a finished build tagged nothing");
        }
        assert_eq!(layout.tag("v1"), v1);
        assert_eq!(layout.tag("v2"), v2);
        layout.check_sound();
    }
    // And the next build completes.
    ok(&build(&ctx, &layout_ref(&out, "v3")));
    layout.check_sound();
}

// ---------------------------------------------------------------- 6. prune during a build

#[test]
fn pruning_the_cache_during_a_build_is_safe() {
    let ctx = Ctx::new();
    ctx.spec(
        "version = 1\n[image]\nplatforms = [\"linux/amd64\"]\n\
         [[layer]]\nname = \"data\"\ncopy = [{ from = \"data\", to = \"/data\" }]\n\
         split = \"file\"\nsplit_min = \"64KiB\"\n",
    );
    let out = ctx.outside("out");
    let layout = Layout(out.clone());
    for round in 0..4u64 {
        for f in 0..6u64 {
            ctx.write(&format!("data/f{f}.bin"), noise(128 << 10, round * 10 + f));
        }
        let tag = format!("r{round}");
        let child = ctx
            .command(&["build", ".", "-o", &layout_ref(&out, &tag)])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
        let (mut prunes, mut during, start) = (0, 0, Instant::now());
        while prunes < 3 || !waiter.is_finished() {
            let running = !waiter.is_finished();
            let run = ctx.strata(&["cache", "prune", "--max-size", "0"]);
            assert_eq!(run.code(), 0, "prune: {}", run.stderr());
            prunes += 1;
            during += usize::from(running);
            assert!(start.elapsed().as_secs() < 120, "the build does not finish");
            std::thread::sleep(Duration::from_millis(5));
        }
        eprintln!("round {round}: {during} prunes while the build ran");
        let o = waiter.join().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        // A layer whose cached blob a prune removed is written again, so the
        // build succeeds (the weaker promise is a clean failure).
        assert!(o.status.success(), "round {round}: {err}");
        let digest = String::from_utf8_lossy(&o.stdout).trim().to_string();
        assert_eq!(layout.tag(&tag), digest);
        assert!(layout.check_sound().is_empty());
    }

    // Afterwards a build succeeds, the cache holds only whole blobs and sound
    // records, and the next build reuses every layer.
    let run = build(&ctx, &layout_ref(&out, "after"));
    ok(&run);
    assert!(layout.check_sound().is_empty());
    let blobs = ctx.cache().join("blobs/sha256");
    for e in std::fs::read_dir(&blobs).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') {
            assert_eq!(sha256_hex(&std::fs::read(e.path()).unwrap()), name);
        }
    }
    for e in std::fs::read_dir(ctx.cache().join("layers")).unwrap() {
        let v: Value = serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap();
        assert!(v["digest"].as_str().unwrap().starts_with("sha256:"));
    }
    let again = build(&ctx, &layout_ref(&out, "again"));
    assert_eq!(ok(&again), layout.tag("after"));
    let reused = again
        .stderr()
        .lines()
        .filter(|l| l.contains(" reused "))
        .count();
    assert_eq!(reused, 6, "{}", again.stderr());
}

// ---------------------------------------------------------------- 7. tar read-back

/// A 120-byte file name: longer than ustar's 100-byte name field, and not
/// splittable, so the writer needs a PAX header.
fn long_name() -> String {
    format!("{}.txt", "n".repeat(116))
}

/// The input tree of the read-back and interop tests, under `t/`:
/// (relative path, content or symlink target, mode on disk, kind).
fn input_tree(ctx: &Ctx) {
    let t = ctx.path().join("t");
    put(&t, "a.txt", b"alpha\n", 0o664);
    put(&t, "run.sh", b"#!/bin/sh\necho run\n", 0o775);
    put(&t, "suid", b"s\n", 0o4755);
    put(&t, &format!("deep/{}", long_name()), b"long\n", 0o644);
    let odd = t.join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt"));
    std::fs::write(&odd, b"latin-1 name\n").unwrap();
    std::os::unix::fs::symlink("a.txt", t.join("link")).unwrap();
    std::fs::create_dir_all(t.join("sub/empty")).unwrap();
    std::fs::set_permissions(t.join("sub"), std::fs::Permissions::from_mode(0o775)).unwrap();
    ctx.write("o.txt", "owned\n");
}

const TREE_SPEC: &str = r#"version = 1
[image]
platforms = ["linux/amd64"]
[[layer]]
name = "tree"
copy = [
  { from = "t", to = "/app" },
  { from = "t/a.txt", to = "/etc/conf/a.conf", mode = "0600" },
]
[[layer]]
name = "owned"
copy = [{ from = "o.txt", to = "/home/u/o.txt" }]
owner = "1000:1001"
"#;

/// What each entry of the `tree` layer must be: (path, type, mode).
fn tree_expected() -> Vec<(Vec<u8>, u8, u32)> {
    let mut v: Vec<(Vec<u8>, u8, u32)> = vec![
        (b"app".to_vec(), b'5', 0o755),
        (b"app/a.txt".to_vec(), b'0', 0o644),
        (b"app/caf\xe9.txt".to_vec(), b'0', 0o644),
        (b"app/deep".to_vec(), b'5', 0o755),
        (
            format!("app/deep/{}", long_name()).into_bytes(),
            b'0',
            0o644,
        ),
        (b"app/link".to_vec(), b'2', 0o777),
        (b"app/run.sh".to_vec(), b'0', 0o755),
        (b"app/sub".to_vec(), b'5', 0o755),
        (b"app/sub/empty".to_vec(), b'5', 0o755),
        (b"app/suid".to_vec(), b'0', 0o755),
        (b"etc".to_vec(), b'5', 0o755),
        (b"etc/conf".to_vec(), b'5', 0o755),
        (b"etc/conf/a.conf".to_vec(), b'0', 0o600),
    ];
    v.sort_by(|a, b| a.0.split(|&c| c == b'/').cmp(b.0.split(|&c| c == b'/')));
    v
}

/// The input a layer entry comes from.
fn source_of(ctx: &Ctx, path: &[u8]) -> PathBuf {
    let rel = if path == b"etc/conf/a.conf" {
        b"t/a.txt".to_vec()
    } else {
        let mut r = b"t".to_vec();
        r.extend_from_slice(&path[3..]);
        r
    };
    ctx.path().join(std::ffi::OsStr::from_bytes(&rel))
}

fn mode_string(kind: u8, mode: u32) -> String {
    let mut s = String::from(match kind {
        b'5' => 'd',
        b'2' => 'l',
        _ => '-',
    });
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        s.push(if mode & (1 << (8 - i)) != 0 { c } else { '-' });
    }
    s
}

#[test]
fn layer_tars_read_back_with_two_readers() {
    let gnu_tar = tool("tar");
    let ctx = Ctx::new();
    input_tree(&ctx);
    ctx.spec(TREE_SPEC);
    let out = ctx.outside("out");
    ok(&build(&ctx, &layout_ref(&out, "v1")));
    let layout = Layout(out);
    let layers = layout.layers("v1");
    let tar = layout.layer_tar(&layers[0]);
    let entries = tar_entries(&tar);

    // The tar crate: names, types, modes, owners, times, content, order.
    let want = tree_expected();
    let got: Vec<(Vec<u8>, u8, u32)> = entries
        .iter()
        .map(|e| (e.path.clone(), e.kind, e.mode))
        .collect();
    assert_eq!(got, want);
    let mut seen_dirs: BTreeSet<Vec<u8>> = BTreeSet::new();
    for e in &entries {
        assert_eq!((e.uid, e.gid), (0, 0), "{}", e.path_str());
        assert_eq!(e.names, (vec![], vec![]), "{}", e.path_str());
        assert_eq!(e.mtime, EPOCH_1980, "{}", e.path_str());
        if let Some(i) = e.path.iter().rposition(|&c| c == b'/') {
            assert!(
                seen_dirs.contains(&e.path[..i]),
                "{} before its parent",
                e.path_str()
            );
        }
        match e.kind {
            b'5' => {
                seen_dirs.insert(e.path.clone());
            }
            b'0' => assert_eq!(
                e.content,
                std::fs::read(source_of(&ctx, &e.path)).unwrap(),
                "{}",
                e.path_str()
            ),
            b'2' => assert_eq!(e.link.as_deref(), Some(&b"a.txt"[..])),
            k => panic!("unexpected type {k}"),
        }
    }
    let owned = tar_entries(&layout.layer_tar(&layers[1]));
    assert_eq!(paths(&owned), ["home", "home/u", "home/u/o.txt"]);
    for e in &owned {
        assert_eq!((e.uid, e.gid, e.mtime), (1000, 1001, EPOCH_1980), "{e:?}");
    }

    // GNU tar: the same listing, and extraction gives the inputs back.
    let Some(gnu_tar) = gnu_tar else { return };
    let file = ctx.outside("layer.tar");
    std::fs::write(&file, &tar).unwrap();
    let o = run_ok(
        Command::new(&gnu_tar)
            .args([
                "--numeric-owner",
                "--full-time",
                "--quoting-style=literal",
                "-tvf",
            ])
            .arg(&file)
            .env("TZ", "UTC")
            .env("LC_ALL", "C"),
    );
    let mut listed = Vec::new();
    for line in o.0.stdout.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
        // perms owner size date time name [-> target]
        let mut fields = Vec::new();
        let mut rest = line;
        for _ in 0..5 {
            let start = rest.iter().position(|&c| c != b' ').unwrap();
            rest = &rest[start..];
            let end = rest.iter().position(|&c| c == b' ').unwrap();
            fields.push(String::from_utf8_lossy(&rest[..end]).into_owned());
            rest = &rest[end + 1..];
        }
        let mut name = rest.to_vec();
        if let Some(i) = name.windows(4).position(|w| w == b" -> ") {
            assert_eq!(&name[i + 4..], b"a.txt");
            name.truncate(i);
        }
        if name.ends_with(b"/") {
            name.pop();
        }
        assert_eq!(fields[1], "0/0", "{}", String::from_utf8_lossy(line));
        assert_eq!(
            (fields[3].as_str(), fields[4].as_str()),
            ("1980-01-02", "00:00:00")
        );
        listed.push((name, fields[0].clone()));
    }
    let want_listing: Vec<(Vec<u8>, String)> = want
        .iter()
        .map(|(p, k, m)| (p.clone(), mode_string(*k, *m)))
        .collect();
    assert_eq!(listed, want_listing);

    let x = ctx.outside("x");
    std::fs::create_dir(&x).unwrap();
    let status = Command::new(&gnu_tar)
        .args(["-xpf"])
        .arg(&file)
        .arg("-C")
        .arg(&x)
        .status()
        .unwrap();
    assert!(status.success());
    for (path, kind, mode) in &want {
        let p = x.join(std::ffi::OsStr::from_bytes(path));
        let meta = std::fs::symlink_metadata(&p).unwrap();
        match kind {
            b'0' => {
                assert_eq!(meta.mode() & 0o7777, *mode, "{}", p.display());
                assert_eq!(
                    std::fs::read(&p).unwrap(),
                    std::fs::read(source_of(&ctx, path)).unwrap()
                );
                assert_eq!(meta.mtime() as u64, EPOCH_1980);
            }
            b'5' => assert_eq!(meta.mode() & 0o7777, *mode, "{}", p.display()),
            _ => assert_eq!(std::fs::read_link(&p).unwrap(), Path::new("a.txt")),
        }
    }
}

// ---------------------------------------------------------------- 8. interop

/// Compares an unpacked root filesystem with the inputs of `TREE_SPEC`.
fn assert_rootfs(ctx: &Ctx, rootfs: &Path) {
    for (path, kind, mode) in tree_expected() {
        let p = rootfs.join(std::ffi::OsStr::from_bytes(&path));
        let meta = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        match kind {
            b'0' => {
                assert!(meta.is_file());
                assert_eq!(meta.mode() & 0o7777, mode, "{}", p.display());
                assert_eq!(
                    std::fs::read(&p).unwrap(),
                    std::fs::read(source_of(ctx, &path)).unwrap(),
                    "{}",
                    p.display()
                );
            }
            b'5' => {
                assert!(meta.is_dir());
                assert_eq!(meta.mode() & 0o7777, mode, "{}", p.display());
            }
            _ => assert_eq!(std::fs::read_link(&p).unwrap(), Path::new("a.txt")),
        }
    }
    // Nothing more under /app than the inputs.
    let mut found = Vec::new();
    let mut todo = vec![rootfs.join("app")];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            found.push(e.path());
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            }
        }
    }
    let app = tree_expected()
        .iter()
        .filter(|(p, _, _)| p.starts_with(b"app/"))
        .count();
    assert_eq!(found.len(), app, "{found:?}");
    assert_eq!(
        std::fs::read(rootfs.join("home/u/o.txt")).unwrap(),
        b"owned\n"
    );
    let meta = std::fs::metadata(rootfs.join("home/u/o.txt")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1000, 1001));
}

#[test]
fn skopeo_umoci_and_docker_read_the_outputs() {
    let (skopeo, umoci) = (tool("skopeo"), tool("umoci"));
    let ctx = Ctx::new();
    input_tree(&ctx);
    ctx.spec(TREE_SPEC);
    let out = ctx.outside("out");
    let digest = ok(&build(&ctx, &layout_ref(&out, "v1")));
    let layout = Layout(out.clone());
    let diff_ids = layout.config("v1")["rootfs"]["diff_ids"].clone();
    let docker_file = ctx.outside("docker.tar");
    let name = format!("strata-it/build-interop:{}", std::process::id());
    ok(&build(
        &ctx,
        &format!("docker-archive:{}:{name}", docker_file.display()),
    ));
    let oci_file = ctx.outside("oci.tar");
    ok(&build(
        &ctx,
        &format!("oci-archive:{}:v1", oci_file.display()),
    ));

    if let Some(skopeo) = &skopeo {
        for reference in [
            format!("oci:{}:v1", out.display()),
            format!("docker-archive:{}", docker_file.display()),
            format!("oci-archive:{}:v1", oci_file.display()),
        ] {
            let v: Value = serde_json::from_slice(
                &run_ok(Command::new(skopeo).args(["inspect", &reference]))
                    .0
                    .stdout,
            )
            .unwrap();
            assert_eq!(v["Layers"].as_array().unwrap().len(), 2, "{reference}");
            assert_eq!(v["Architecture"], "amd64", "{reference}");
            if reference.starts_with("oci:") {
                assert_eq!(v["Digest"], digest.as_str());
            }
        }
    }

    if let Some(umoci) = &umoci {
        let bundle = ctx.outside("bundle");
        let mut cmd = Command::new(umoci);
        cmd.arg("unpack");
        let me = std::fs::metadata(ctx.path()).unwrap().uid();
        if me != 0 {
            cmd.arg("--rootless");
        }
        run_ok(
            cmd.arg("--image")
                .arg(format!("{}:v1", out.display()))
                .arg(&bundle),
        );
        if me == 0 {
            assert_rootfs(&ctx, &bundle.join("rootfs"));
        } else {
            // Rootless unpacking cannot chown to 1000:1001; check the rest.
            let meta = std::fs::metadata(bundle.join("rootfs/app/run.sh")).unwrap();
            assert_eq!(meta.mode() & 0o7777, 0o755);
        }
    }

    // Docker 28.5 loads the docker archive.
    let _engines = engine_lock();
    let Some(host) = engine("d28") else { return };
    let loaded = run_ok(docker(&host).arg("load").arg("-i").arg(&docker_file)).stdout();
    assert!(loaded.contains(&name), "{loaded}");
    let inspect = run_ok(docker(&host).args([
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        &name,
    ]));
    let _ = docker(&host).args(["rmi", &name]).output();
    let layers: Value = serde_json::from_slice(&inspect.0.stdout).unwrap();
    assert_eq!(layers, diff_ids);
}

// ---------------------------------------------------------------- 9. run layers

/// Compressible text of `len` bytes (numbered lines).
fn text(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut i = seed;
    while out.len() < len {
        out.extend_from_slice(
            format!("line {i} of a compressible layer: {}\n", i % 977).as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

/// Layers of several blocks (gzip members of 1 MiB, zstd frames of 4 MiB,
/// docs/oci.md) read back in full by multi-member readers: strata's own
/// (`strata diff`), skopeo, umoci and Docker's `docker load`, which checks
/// the diffIDs.
#[test]
fn multi_block_layers_are_read_by_every_reader() {
    let ctx = Ctx::new();
    let (g, z) = (text(3 << 20, 0), text(9 << 20, 1));
    ctx.write("g/text.txt", &g);
    ctx.write("z/text.txt", &z);
    let gzip_only = "version = 1\n[image]\nplatforms = [\"linux/amd64\"]\n\
        [[layer]]\nname = \"g\"\ncopy = [{ from = \"g\", to = \"/g\" }]\n";
    ctx.spec(gzip_only);
    let out = ctx.outside("out");
    ok(&build(&ctx, &layout_ref(&out, "g")));
    ctx.spec(&format!(
        "{gzip_only}[[layer]]\nname = \"z\"\ncopy = [{{ from = \"z\", to = \"/z\" }}]\n\
         compression = \"zstd\"\n"
    ));
    ok(&build(&ctx, &layout_ref(&out, "v1")));
    let layout = Layout(out.clone());
    let diff_ids = layout.config("v1")["rootfs"]["diff_ids"].clone();
    let layers = layout.layers("v1");
    assert_eq!(layers[0], layout.layers("g")[0]);

    // More than one member or frame: a single-member reader stops early.
    let gz = layout.blob(&layers[0]);
    let mut first = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut first)
        .unwrap();
    assert_eq!(first.len(), 1 << 20, "the first member holds 1 MiB");
    let tar = layout.layer_tar(&layers[0]);
    assert_eq!(digest_of(&tar), diff_ids[0]);
    let zst = layout.blob(&layers[1]);
    let mut first = Vec::new();
    zstd::stream::read::Decoder::new(&zst[..])
        .unwrap()
        .single_frame()
        .read_to_end(&mut first)
        .unwrap();
    assert_eq!(first.len(), 4 << 20, "the first frame holds 4 MiB");
    let tar = zstd::decode_all(&zst[..]).unwrap();
    assert_eq!(digest_of(&tar), diff_ids[1]);

    if let Some(umoci) = tool("umoci") {
        // umoci 0.4 reads no zstd layers: the gzip image.
        let bundle = ctx.outside("bundle");
        let mut cmd = Command::new(umoci);
        cmd.arg("unpack");
        if std::fs::metadata(ctx.path()).unwrap().uid() != 0 {
            cmd.arg("--rootless");
        }
        run_ok(
            cmd.arg("--image")
                .arg(format!("{}:g", out.display()))
                .arg(&bundle),
        );
        assert!(std::fs::read(bundle.join("rootfs/g/text.txt")).unwrap() == g);
    }
    if let Some(skopeo) = tool("skopeo") {
        // Decompressed blobs are named by their digest: the diffIDs.
        let plain = ctx.outside("plain");
        run_ok(
            Command::new(&skopeo)
                .args(["copy", "-q", "--dest-decompress"])
                .arg(format!("oci:{}:v1", out.display()))
                .arg(format!("dir:{}", plain.display())),
        );
        for id in diff_ids.as_array().unwrap() {
            let hex = id.as_str().unwrap().strip_prefix("sha256:").unwrap();
            assert!(plain.join(hex).is_file(), "{hex} from skopeo");
        }
        let again = ctx.outside("again");
        run_ok(
            Command::new(&skopeo)
                .args(["copy", "-q", "--dest-compress-format", "gzip"])
                .arg(format!("dir:{}", plain.display()))
                .arg(format!("oci:{}:v1", again.display())),
        );
        // strata diff reads both sides in full: the same files.
        let run = ctx.strata(&[
            "diff",
            "--semantic",
            &layout_ref(&out, "v1"),
            &layout_ref(&again, "v1"),
        ]);
        assert_eq!(run.code(), 0, "{}{}", run.stdout(), run.stderr());
    }

    // Docker recomputes the diffIDs while loading (Go's gzip reader).
    let _engines = engine_lock();
    let Some(host) = engine("d28") else { return };
    let file = ctx.outside("docker.tar");
    let name = format!("strata-it/multi-member:{}", std::process::id());
    ctx.spec(gzip_only);
    ok(&build(
        &ctx,
        &format!("docker-archive:{}:{name}", file.display()),
    ));
    let docker_cmd = || docker(&host);
    run_ok(docker_cmd().arg("load").arg("-i").arg(&file));
    let inspect = run_ok(docker_cmd().args([
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        &name,
    ]))
    .stdout();
    let _ = docker_cmd().args(["rmi", &name]).output();
    let loaded: Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(loaded[0], diff_ids[0]);
}

#[test]
fn run_layers_are_refused_before_anything_is_written() {
    let ctx = Ctx::new();
    ctx.write("requirements.txt", "numpy\n");
    ctx.write("src/app.py", "print(1)\n");
    ctx.spec(
        "version = 1\n\
         [[layer]]\nname = \"app\"\ncopy = [{ from = \"src\", to = \"/app\" }]\n\
         [[layer]]\nname = \"deps\"\nrun = \"pip install -r requirements.txt\"\n\
         inputs = [\"requirements.txt\"]\n",
    );
    let out = ctx.outside("out");
    let run = build(&ctx, &layout_ref(&out, "v1"));
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let err = run.stderr();
    assert!(err.contains("layer `deps` is a run layer"), "{err}");
    assert!(err.contains("docker buildx build"), "{err}");
    assert!(err.contains("strata.toml:6:8]"), "{err}");
    assert_eq!(run.stdout(), "");
    assert!(!out.exists(), "no output");
    assert!(!ctx.cache().exists(), "no cache written");
}

#[test]
fn several_platforms_give_one_index_in_a_layout_or_an_oci_archive() {
    let Some(skopeo) = tool("skopeo") else { return };
    let ctx = Ctx::new();
    ctx.write("bin/amd64/tool", "the amd64 tool\n");
    ctx.write("bin/arm64/tool", "the arm64 tool\n");
    ctx.spec(
        "version = 1\n[image]\nfrom = \"scratch\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n\
         entrypoint = [\"/tool\"]\n\
         labels = { \"org.opencontainers.image.version\" = \"1.2.3\", \"team\" = \"ml\" }\n\n\
         [[layer]]\nname = \"tool\"\ncopy = [{ from = \"bin/${TARGETARCH}/tool\", to = \"/tool\" }]\n",
    );
    let out = ctx.outside("out");
    let digest = ok(&build(&ctx, &layout_ref(&out, "v1")));
    let layout = Layout(out.clone());
    assert!(layout.check_sound().is_empty());
    // skopeo reads the tag as the index strata printed.
    let raw = run_ok(Command::new(&skopeo).args([
        "inspect",
        "--raw",
        &format!("oci:{}:v1", out.display()),
    ]))
    .0
    .stdout;
    assert_eq!(digest_of(&raw), digest, "stdout is the index digest");
    assert_eq!(layout.tag("v1"), digest);
    let index: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        crate::util::index_platforms(&index),
        ["linux/amd64", "linux/arm64"]
    );
    let manifests = index["manifests"].as_array().unwrap();
    // The OCI labels every platform has are the index's annotations.
    assert_eq!(
        index["annotations"],
        serde_json::json!({"org.opencontainers.image.version": "1.2.3"})
    );
    // Each manifest: its architecture in the config, its own `/tool`.
    for (m, arch) in manifests.iter().zip(["amd64", "arm64"]) {
        let manifest = layout.json(m["digest"].as_str().unwrap());
        let config = layout.json(manifest["config"]["digest"].as_str().unwrap());
        assert_eq!(config["architecture"], arch);
        assert_eq!(config["os"], "linux");
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1);
        let entries = tar_entries(&layout.layer_tar(layers[0]["digest"].as_str().unwrap()));
        let tool = entries.iter().find(|e| e.path == b"tool").expect("/tool");
        assert_eq!(tool.content, format!("the {arch} tool\n").as_bytes());
        // skopeo picks the same manifest for the platform.
        let v: Value = serde_json::from_slice(
            &run_ok(Command::new(&skopeo).args([
                "inspect",
                "--override-arch",
                arch,
                &format!("oci:{}:v1", out.display()),
            ]))
            .0
            .stdout,
        )
        .unwrap();
        assert_eq!(v["Architecture"], arch);
        assert_eq!(v["Layers"][0], layers[0]["digest"]);
    }

    // The same inputs give the same index, with a cold cache too.
    std::fs::remove_dir_all(ctx.cache()).unwrap();
    let again = ctx.outside("again");
    assert_eq!(ok(&build(&ctx, &layout_ref(&again, "v1"))), digest);
    // An OCI archive holds the same index.
    let archive = ctx.outside("out.tar");
    assert_eq!(
        ok(&build(
            &ctx,
            &format!("oci-archive:{}:v1", archive.display())
        )),
        digest
    );
    let raw = run_ok(Command::new(&skopeo).args([
        "inspect",
        "--raw",
        &format!("oci-archive:{}:v1", archive.display()),
    ]))
    .0
    .stdout;
    assert_eq!(digest_of(&raw), digest);

    // A docker archive cannot hold an index: refused, nothing written.
    let docker_file = ctx.outside("docker.tar");
    let run = build(
        &ctx,
        &format!("docker-archive:{}:app:v1", docker_file.display()),
    );
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let err = run.stderr();
    for part in [
        "docker archive",
        "linux/amd64, linux/arm64",
        "oci-layout:",
        "oci-archive:",
        "registry:",
        "--platform",
    ] {
        assert!(err.contains(part), "{part}: {err}");
    }
    assert_eq!(run.stdout(), "");
    assert!(!docker_file.exists());
    // `--annotation index:` reaches a local index, over the labels.
    let annotated = ctx.outside("annotated");
    ok(&ctx.strata(&[
        "build",
        ".",
        "--annotation",
        "index:org.opencontainers.image.version=2.0.0",
        "-o",
        &layout_ref(&annotated, "v1"),
    ]));
    let index = Layout(annotated.clone()).json(&Layout(annotated).tag("v1"));
    assert_eq!(
        index["annotations"]["org.opencontainers.image.version"],
        "2.0.0"
    );
    // One platform of the two is an image again.
    let one = ok(&ctx.strata(&[
        "build",
        ".",
        "--platform",
        "linux/arm64",
        "-o",
        &format!("docker-archive:{}:app:v1", docker_file.display()),
    ]));
    assert_eq!(one, manifests[1]["digest"].as_str().unwrap());
}
