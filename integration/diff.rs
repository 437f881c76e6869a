//! `strata diff` on real images: strata's own
//! builds from two checkouts are equal, a changed and a deleted file are
//! named, a recompressed copy (skopeo) is a compression-only difference,
//! Docker's `COPY --link` from two checkouts differs in mtime where strata's
//! image of the same checkouts is equal, and a deleted base file is a
//! whiteout. The JSON document is pinned.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::util::{Ctx, Run, docker, engine, nonce, run_ok, tool};

const SPEC: &str = r#"version = 1
[image]
from = "scratch"
platforms = ["linux/amd64"]
[[layer]]
name = "models"
copy = [{ from = "models", to = "/srv/models" }]
[[layer]]
name = "app"
copy = [{ from = "app", to = "/srv/app" }]
"#;

/// A checkout: the same files, every path stamped with `mtime`; `nonce`
/// makes the content unique to one test run (so engines cannot reuse an
/// earlier run's layers).
fn checkout(ctx: &Ctx, mtime: &str, nonce: &str) {
    ctx.spec(SPEC);
    ctx.write("models/enc/weights.bin", vec![7u8; 5000]);
    ctx.write("models/enc/config.json", "{\"dim\": 8}\n");
    ctx.write("models/nonce.txt", nonce);
    ctx.write("app/main.py", "print('hi')\n");
    ctx.write("app/util.py", "X = 1\n");
    touch(ctx.path(), mtime);
}

fn touch(dir: &Path, mtime: &str) {
    let status = Command::new("find")
        .arg(dir)
        .args(["-exec", "touch", "-h", "-d", mtime, "{}", "+"])
        .status()
        .unwrap();
    assert!(status.success());
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[track_caller]
fn built(ctx: &Ctx, dest: &str) {
    let run = ctx.strata(&["build", ".", "-o", dest]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
}

fn diff(ctx: &Ctx, args: &[&str]) -> Run {
    let mut all = vec!["diff"];
    all.extend_from_slice(args);
    ctx.strata(&all)
}

fn json(run: &Run) -> Value {
    serde_json::from_str(&run.stdout()).unwrap_or_else(|e| panic!("{e}: {}", run.stdout()))
}

/// The layer named `id` in the (single-platform) report.
fn layer<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["platforms"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == id)
        .unwrap_or_else(|| panic!("no layer {id} in {report}"))
}

#[test]
fn strata_builds_from_two_checkouts_are_equal_and_changes_are_named() {
    let (a, b) = (Ctx::new(), Ctx::new());
    checkout(&a, "2001-02-03", "n");
    checkout(&b, "2031-03-04", "n");
    let (la, lb) = (a.outside("a"), b.outside("b"));
    let (ra, rb) = (
        format!("oci-layout:{}:v1", la.display()),
        format!("oci-layout:{}:v1", lb.display()),
    );
    built(&a, &ra);
    built(&b, &rb);
    let same = diff(&a, &[&ra, &rb]);
    assert_eq!(same.code(), 0, "{}{}", same.stdout(), same.stderr());
    assert!(
        same.stdout().contains("the images are identical"),
        "{}",
        same.stdout()
    );
    assert_eq!(diff(&a, &["--semantic", &ra, &rb]).code(), 0);

    // A changed file: its path and both sha256s; a deleted one: missing.
    b.write("app/main.py", "print('changed')\n");
    std::fs::remove_file(b.path().join("models/enc/config.json")).unwrap();
    let rb2 = format!("oci-layout:{}:v2", lb.display());
    built(&b, &rb2);
    let run = diff(&a, &["--format", "json", &ra, &rb2]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let report = json(&run);
    assert_eq!(report["schema"], "strata.diff/v1");
    assert_eq!(report["equal"], false);
    let app = layer(&report, "app");
    assert_eq!(app["status"], "content");
    let e = &app["entries"][0];
    assert_eq!(e["path"], "srv/app/main.py");
    assert_eq!(e["changes"][0]["kind"], "content");
    assert_eq!(e["changes"][0]["a"]["sha256"], sha256(b"print('hi')\n"));
    assert_eq!(
        e["changes"][0]["b"]["sha256"],
        sha256(b"print('changed')\n")
    );
    let models = layer(&report, "models");
    let gone: Vec<&Value> = models["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["only_in"] == "a")
        .collect();
    assert_eq!(gone.len(), 1, "{models}");
    assert_eq!(gone[0]["path"], "srv/models/enc/config.json");
    assert_eq!(gone[0]["entry"]["sha256"], sha256(b"{\"dim\": 8}\n"));
    // The text report says the same, cause first.
    let text = crate::util::diff_report(&ra, &rb2);
    let summary: Vec<&str> = text.lines().skip(3).take(2).collect();
    assert!(
        summary
            .iter()
            .any(|l| l.contains("1 entry differs only in content (layer app)")),
        "{text}"
    );
    assert!(text.contains("srv/app/main.py content: 12 B "), "{text}");
    assert!(
        text.contains("srv/models/enc/config.json: entry only in A"),
        "{text}"
    );
}

/// Layers stored with zstd (`compression = "zstd"`) are read and compared
/// entry by entry, as gzip ones are.
#[test]
fn zstd_layers_are_compared_entry_by_entry() {
    let ctx = Ctx::new();
    checkout(&ctx, "2001-02-03", "zstd");
    ctx.spec(&SPEC.replace(
        "name = \"app\"\n",
        "name = \"app\"\ncompression = \"zstd\"\n",
    ));
    let img = ctx.outside("img");
    let (r1, r2) = (
        format!("oci-layout:{}:v1", img.display()),
        format!("oci-layout:{}:v2", img.display()),
    );
    built(&ctx, &r1);
    ctx.write("app/main.py", "print('changed')\n");
    built(&ctx, &r2);
    let run = diff(&ctx, &["--format", "json", &r1, &r2]);
    assert_eq!(run.code(), 1, "{}{}", run.stdout(), run.stderr());
    let report = json(&run);
    let app = layer(&report, "app");
    assert_eq!(app["status"], "content", "{app}");
    let e = &app["entries"][0];
    assert_eq!(e["path"], "srv/app/main.py");
    assert_eq!(
        e["changes"][0]["b"]["sha256"],
        sha256(b"print('changed')\n")
    );
}

#[test]
fn bad_sides_are_trouble() {
    let ctx = Ctx::new();
    let run = ctx.strata(&["diff", "registry:localhost:5000/x", "oci-layout:nope"]);
    assert_eq!(run.code(), 2);
    assert!(
        run.stderr()
            .contains("reading images from a registry is not supported yet"),
        "{}",
        run.stderr()
    );
    let run = ctx.strata(&["diff", "oci-layout:nope:v1", "oci-layout:nope:v1"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(run.stderr().contains("nope"), "{}", run.stderr());
}

/// `strata.diff/v1` of two strata builds: a changed file, a deleted one, a
/// new symlink (docs/json.md).
const GOLDEN: &str = include_str!("golden/diff.json");

#[test]
fn json_report_is_pinned() {
    let ctx = Ctx::new();
    ctx.spec(
        "version = 1\n[image]\nplatforms = [\"linux/amd64\"]\n\
         [[layer]]\nname = \"conf\"\ncopy = [{ from = \"etc\", to = \"/etc/app\" }]\n",
    );
    ctx.write("etc/app.conf", "port = 8000\n");
    ctx.write("etc/old.conf", "x\n");
    built(&ctx, "oci-layout:../a:v1");
    ctx.write("etc/app.conf", "port = 9000\n");
    std::fs::remove_file(ctx.path().join("etc/old.conf")).unwrap();
    std::os::unix::fs::symlink("app.conf", ctx.path().join("etc/current")).unwrap();
    built(&ctx, "oci-layout:../a:v2");
    let run = diff(
        &ctx,
        &[
            "--format",
            "json",
            "oci-layout:../a:v1",
            "oci-layout:../a:v2",
        ],
    );
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert_eq!(run.stdout(), GOLDEN);
    let report = json(&run);
    let change = &report["platforms"][0]["layers"][0]["entries"][0]["changes"][0];
    assert_eq!(change["a"]["sha256"], sha256(b"port = 8000\n"));
    assert_eq!(change["b"]["sha256"], sha256(b"port = 9000\n"));
}

/// skopeo recompresses strata's image at gzip level 9: every layer differs
/// only in compression, with equal diffIDs.
#[test]
fn a_recompressed_copy_is_a_compression_only_difference() {
    let Some(_) = tool("skopeo") else { return };
    let ctx = Ctx::new();
    checkout(&ctx, "2001-02-03", "n");
    built(&ctx, "oci-layout:../a:v1");
    // skopeo reuses blobs of the same compression: go through an
    // uncompressed `dir:` copy first.
    for args in [
        &[
            "copy",
            "-q",
            "--dest-decompress",
            "oci:../a:v1",
            "dir:../plain",
        ][..],
        &[
            "copy",
            "-q",
            "--dest-compress-format",
            "gzip",
            "--dest-compress-level",
            "9",
            "dir:../plain",
            "oci:../b:v1",
        ],
    ] {
        run_ok(Command::new("skopeo").args(args).current_dir(ctx.path()));
    }
    let run = diff(
        &ctx,
        &[
            "--format",
            "json",
            "oci-layout:../a:v1",
            "oci-layout:../b:v1",
        ],
    );
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let report = json(&run);
    for id in ["models", "app"] {
        let l = layer(&report, id);
        assert_eq!(l["status"], "compression", "{l}");
        assert_eq!(l["diff_id"]["a"], l["diff_id"]["b"]);
        assert_ne!(l["digest"]["a"], l["digest"]["b"]);
        assert_eq!(l["packing"]["a"]["gzip"]["xfl"], 0, "strata writes level 3");
        assert_eq!(l["packing"]["b"]["gzip"]["level_guess"], "9", "{l}");
    }
    assert!(
        report["summary"][0]
            .as_str()
            .unwrap()
            .starts_with("2 layers differ only in compression, diffIDs equal"),
        "{report}"
    );
    // The files are the same.
    let run = diff(
        &ctx,
        &["--semantic", "oci-layout:../a:v1", "oci-layout:../b:v1"],
    );
    assert_eq!(run.code(), 0, "{}", run.stdout());
}

const DOCKERFILE: &str = "FROM scratch\nCOPY --link models /srv/models\nCOPY --link app /srv/app\n";

/// Docker 28.5's `COPY --link` from two checkouts with other mtimes (built
/// on two engines, so neither reuses the other's layers): the report names
/// the mtime cause and the layers; strata's image of the same checkouts is
/// equal.
#[test]
fn docker_copy_link_differs_in_mtime_where_strata_is_equal() {
    let _engines = crate::util::engine_lock();
    let (Some(h1), Some(h2)) = (engine("d28"), engine("d28b")) else {
        return;
    };
    // BuildKit re-sends a context file only when its size or mtime changed
    // since the last build from a context of that name: mtimes unique to
    // this run, so an earlier run's files are never taken for these.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let nonce = nonce();
    let (ta, tb) = (
        981_158_400 + now.as_secs() % 1_000_000,
        1_930_348_800 + now.as_secs() % 1_000_000,
    );
    let (a, b) = (Ctx::new(), Ctx::new());
    checkout(&a, &format!("@{ta}"), &nonce);
    checkout(&b, &format!("@{tb}"), &nonce);
    for (host, ctx, tag) in [(&h1, &a, "diff-it-link:a"), (&h2, &b, "diff-it-link:b")] {
        std::fs::write(ctx.outside("Dockerfile"), DOCKERFILE).unwrap();
        run_ok(
            docker(host)
                .args(["buildx", "build", "-q", "--load", "-t", tag, "-f"])
                .arg(ctx.outside("Dockerfile"))
                .arg(ctx.path()),
        );
    }
    // B comes over as an archive; A is read from the engine.
    let saved = b.outside("b.tar");
    run_ok(
        docker(&h2)
            .args(["save", "-o"])
            .arg(&saved)
            .arg("diff-it-link:b"),
    );
    let side_b = format!("docker-archive:{}", saved.display());
    let run = a.strata_env(
        &[
            "diff",
            "--format",
            "json",
            "docker-daemon:diff-it-link:a",
            &side_b,
        ],
        &[("DOCKER_HOST", &h1)],
    );
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let report = json(&run);
    let first = report["summary"][0].as_str().unwrap();
    assert!(
        first.contains("entries differ only in mtime")
            && first.contains("COPY models /srv/models")
            && first.ends_with("the inputs were copied without a fixed timestamp"),
        "{report}"
    );
    let models = layer(&report, "COPY models /srv/models # buildkit");
    assert_eq!(models["causes"][0]["what"], "mtime");
    let weights = models["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "srv/models/enc/weights.bin")
        .unwrap();
    assert_eq!(weights["changes"][0]["kind"], "mtime");
    assert_eq!(weights["changes"][0]["a"], ta.to_string());
    assert_eq!(weights["changes"][0]["b"], tb.to_string());
    // The helper the reproducibility checks print on failure.
    let report = crate::util::daemon_diff((&h1, "diff-it-link:a"), (&h2, "diff-it-link:b"));
    assert!(report.contains("entries differ only in mtime"), "{report}");
    let semantic = a.strata_env(
        &[
            "diff",
            "--semantic",
            "docker-daemon:diff-it-link:a",
            &side_b,
        ],
        &[("DOCKER_HOST", &h1)],
    );
    assert_eq!(semantic.code(), 0, "{}", semantic.stdout());

    let (ra, rb) = ("oci-layout:../img:v1", "oci-layout:../img:v2");
    built(&a, ra);
    let rb_full = format!("oci-layout:{}:v2", a.outside("img").display());
    built(&b, &rb_full);
    let run = diff(&a, &[ra, rb]);
    assert_eq!(run.code(), 0, "{}", run.stdout());
}

/// A run layer that deletes a base file carries a whiteout; the report
/// names it.
#[test]
fn a_deleted_base_file_is_a_whiteout() {
    let _engines = crate::util::engine_lock();
    let Some(host) = engine("d28") else { return };
    let ctx = Ctx::new();
    let nonce = nonce();
    for (tag, cmd) in [
        (
            "diff-it-wh:a",
            format!("echo '{nonce}' > /etc/strata-nonce"),
        ),
        (
            "diff-it-wh:b",
            format!("echo '{nonce}' > /etc/strata-nonce && rm /etc/issue"),
        ),
    ] {
        let file = ctx.outside(&format!("{}.Dockerfile", &tag[11..]));
        std::fs::write(
            &file,
            format!("FROM strata-test/debian:bookworm\nRUN {cmd}\n"),
        )
        .unwrap();
        run_ok(
            docker(&host)
                .args(["buildx", "build", "-q", "--load", "-t", tag, "-f"])
                .arg(&file)
                .arg(ctx.path()),
        );
    }
    let run = ctx.strata_env(
        &[
            "diff",
            "--format",
            "json",
            "docker-daemon:diff-it-wh:a",
            "docker-daemon:diff-it-wh:b",
        ],
        &[("DOCKER_HOST", &host)],
    );
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let report = json(&run);
    let layers = report["platforms"][0]["layers"].as_array().unwrap();
    let top = layers.last().unwrap();
    let wh: Vec<&Value> = top["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["whiteout"] == true)
        .collect();
    assert_eq!(wh.len(), 1, "{top}");
    assert_eq!(wh[0]["path"], "etc/.wh.issue");
    assert_eq!(wh[0]["only_in"], "b");
    assert!(
        layers[..layers.len() - 1]
            .iter()
            .all(|l| l["status"] == "equal"),
        "the base layers are skipped: {report}"
    );
}
