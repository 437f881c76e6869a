//! Build stages: `[[stage]]` with `[[stage.step]]`, stage copies
//! and run-layer mounts. Spec errors with line and column, the plan's stage
//! digests, `strata lock`, the embedded builder's refusal, and end to end
//! through BuildKit on Docker 26.

use serde_json::Value;

use crate::check::check;
use crate::frontend::BASE;
use crate::util::{Ctx, buildx_result, docker, nonce};

/// Lines 1-3; a stage starts on line 4.
const HEAD: &str = "version = 1\n[image]\nfrom = \"scratch\"\n";

/// A stage `build` on lines 4-9 (name on 5, from on 6, step run on 9).
const BUILD_STAGE: &str = "[[stage]]\nname = \"build\"\nfrom = \"debian:bookworm\"\nworkdir = \"/src\"\n[[stage.step]]\nrun = \"mkdir -p /wheels && touch /wheels/a.whl\"\n";

/// Asserts a failed check whose error mentions `message` at `line:col`,
/// with a help line.
#[track_caller]
fn assert_error(spec: &str, message: &str, line: usize, col: usize) {
    crate::check::assert_error(spec, &[], message, line, col);
    let err = check(spec, &[]).stderr();
    assert!(err.contains("help:"), "a help line:\n{err}");
}

/// A copy layer from stage `build` (name on line 11, copy on 12).
fn copy_from(stage: &str, from: &str) -> String {
    format!(
        "[[layer]]\nname = \"deps\"\ncopy = [{{ stage = \"{stage}\", from = \"{from}\", to = \"/wheels\" }}]\n"
    )
}

#[test]
fn a_valid_stage_spec_checks() {
    let spec = format!("{HEAD}{BUILD_STAGE}{}", copy_from("build", "/wheels"));
    let run = check(&spec, &[]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(!run.stderr().contains("warning"), "{}", run.stderr());
}

#[test]
fn unknown_stage_in_a_copy_suggests_the_nearest() {
    let spec = format!("{HEAD}{BUILD_STAGE}{}", copy_from("biuld", "/wheels"));
    assert_error(&spec, "unknown stage `biuld`", 12, 19);
    let run = check(&spec, &[]);
    assert!(
        run.stderr().contains("did you mean `build`?"),
        "{}",
        run.stderr()
    );
}

#[test]
fn unknown_stage_in_a_mount() {
    let spec = format!(
        "{HEAD}{BUILD_STAGE}[[layer]]\nname = \"deps\"\nrun = \"true\"\n\
         mounts = [{{ stage = \"nope\", from = \"/wheels\", to = \"/wheels\" }}]\n"
    );
    assert_error(&spec, "unknown stage `nope`", 13, 21);
}

#[test]
fn a_stage_path_must_be_absolute() {
    let spec = format!("{HEAD}{BUILD_STAGE}{}", copy_from("build", "wheels"));
    assert_error(
        &spec,
        "stage copy source `wheels` is not an absolute path",
        12,
        35,
    );
    let spec = format!(
        "{HEAD}{BUILD_STAGE}[[layer]]\nname = \"deps\"\nrun = \"true\"\n\
         mounts = [{{ stage = \"build\", from = \"wheels\", to = \"/wheels\" }}]\n"
    );
    assert_error(
        &spec,
        "mount source `wheels` is not an absolute path",
        13,
        37,
    );
}

#[test]
fn duplicate_stage_names() {
    let spec = format!(
        "{HEAD}{BUILD_STAGE}[[stage]]\nname = \"build\"\nfrom = \"debian\"\n{}",
        copy_from("build", "/wheels")
    );
    assert_error(&spec, "duplicate stage name `build`", 11, 8);
    let run = check(&spec, &[]);
    assert!(
        run.stderr()
            .contains("the first stage named `build` is on line 5"),
        "{}",
        run.stderr()
    );
}

#[test]
fn stages_that_build_on_each_other_in_a_cycle() {
    // a (line 5) from b, b (line 8) from a: reported once, at a's `from`.
    let spec = format!(
        "{HEAD}[[stage]]\nname = \"a\"\nfrom = \"b\"\n[[stage]]\nname = \"b\"\nfrom = \"a\"\n\
         [[layer]]\nname = \"x\"\ncopy = [{{ stage = \"a\", from = \"/\", to = \"/x\" }}]\n"
    );
    assert_error(&spec, "stages form a cycle: `a` → `b` → `a`", 6, 8);
    let run = check(&spec, &[]);
    assert_eq!(
        run.stderr().matches("form a cycle").count(),
        1,
        "{}",
        run.stderr()
    );
    // A stage built on itself.
    let spec = format!(
        "{HEAD}[[stage]]\nname = \"a\"\nfrom = \"a\"\n\
         [[layer]]\nname = \"x\"\ncopy = [{{ stage = \"a\", from = \"/\", to = \"/x\" }}]\n"
    );
    assert_error(&spec, "stages form a cycle: `a` → `a`", 6, 8);
}

#[test]
fn a_stage_no_layer_uses_is_a_warning() {
    // `base` is used through `build`'s `from`; `lint` by nothing.
    let spec = format!(
        "{HEAD}[[stage]]\nname = \"base\"\nfrom = \"debian\"\n\
         [[stage]]\nname = \"build\"\nfrom = \"base\"\n\
         [[stage]]\nname = \"lint\"\nfrom = \"debian\"\n{}",
        copy_from("build", "/wheels")
    );
    let run = check(&spec, &[]);
    assert_eq!(run.code(), 0, "a warning only:\n{}", run.stderr());
    let err = run.stderr();
    assert!(err.contains("stage `lint` is used by no layer"), "{err}");
    assert!(err.contains("strata.toml:11:8]"), "{err}");
    assert!(!err.contains("stage `base` is used"), "{err}");
    assert!(!err.contains("stage `build` is used"), "{err}");
}

#[test]
fn a_copy_layer_takes_one_source_and_stage_copies_do_not_split() {
    let spec = format!(
        "{HEAD}{BUILD_STAGE}[[layer]]\nname = \"deps\"\n\
         copy = [{{ stage = \"build\", from = \"/wheels\", to = \"/wheels\" }}, {{ from = \"a.txt\", to = \"/a.txt\" }}]\n"
    );
    let run = check(&spec, &[("a.txt", "a")]);
    assert_eq!(run.code(), 1);
    assert!(
        run.stderr()
            .contains("layer `deps` copies from more than one source"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr().contains("strata.toml:12:8]"),
        "{}",
        run.stderr()
    );
    let spec = format!(
        "{HEAD}{BUILD_STAGE}{}split = \"file\"\n",
        copy_from("build", "/wheels")
    );
    assert_error(
        &spec,
        "layer `deps` copies from a stage and cannot be split",
        13,
        9,
    );
}

#[test]
fn a_stage_base_must_be_an_image_reference() {
    let spec = format!(
        "{HEAD}[[stage]]\nname = \"build\"\nfrom = \"oci-layout:base\"\n{}",
        copy_from("build", "/wheels")
    );
    assert_error(
        &spec,
        "stage base `oci-layout:base` is a local image file",
        6,
        8,
    );
}

#[test]
fn stage_step_inputs_must_exist() {
    let spec = format!(
        "{HEAD}{BUILD_STAGE}inputs = [\"requirements.txt\"]\n{}",
        copy_from("build", "/wheels")
    );
    let run = check(&spec, &[("requirments.txt", "x")]);
    assert_eq!(run.code(), 1);
    assert!(
        run.stderr()
            .contains("stage step input `requirements.txt` does not exist"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr().contains("strata.toml:10:11]"),
        "{}",
        run.stderr()
    );
}

#[test]
fn schema_has_the_stage_keys() {
    let run = Ctx::new().strata(&["schema"]);
    assert_eq!(run.code(), 0);
    let v: Value = serde_json::from_str(&run.stdout()).unwrap();
    let text = v.to_string();
    assert!(v["properties"]["stage"].is_object(), "{text}");
    for key in ["Stage", "Step", "Mount"] {
        assert!(v["$defs"][key].is_object(), "{key} in {text}");
    }
    assert!(v["$defs"]["Copy"]["properties"]["stage"].is_object());
    assert!(v["$defs"]["Layer"]["properties"]["mounts"].is_object());
}

/// A context with a build stage whose step reads `requirements.txt`, a
/// production layer that copies its wheels and a run layer that mounts them.
fn plan_ctx() -> Ctx {
    let ctx = Ctx::new();
    ctx.write("requirements.txt", "tts-textnorm==0.1.0\n");
    ctx.write("src/app.py", "print(1)\n");
    ctx.spec(&format!(
        "{HEAD}[[stage]]\nname = \"build\"\nfrom = \"debian:bookworm\"\n\
         [[stage.step]]\nrun = \"pip wheel -r requirements.txt -w /wheels\"\n\
         inputs = [\"requirements.txt\"]\n\
         [[stage]]\nname = \"tools\"\nfrom = \"build\"\n\
         [[stage.step]]\nrun = \"true\"\n\
         [[layer]]\nname = \"wheels\"\ncopy = [{{ stage = \"build\", from = \"/wheels\", to = \"/wheels\" }}]\n\
         [[layer]]\nname = \"deps\"\nrun = \"pip install /w/*\"\n\
         mounts = [{{ stage = \"tools\", from = \"/wheels\", to = \"/w\" }}]\n\
         [[layer]]\nname = \"app\"\ncopy = [{{ from = \"src\", to = \"/app\" }}]\n"
    ));
    ctx
}

/// The plan of the one platform of `strata plan --format json`.
fn plan(ctx: &Ctx) -> Value {
    let run = ctx.strata(&["plan", ".", "--format", "json"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let doc: Value = serde_json::from_str(&run.stdout()).unwrap();
    doc["platforms"][0].clone()
}

fn inputs_of(plan: &Value, section: &str, id: &str) -> String {
    let key = if section == "stages" { "name" } else { "id" };
    plan[section]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[key] == id)
        .unwrap_or_else(|| panic!("{id} in {plan}"))["inputs"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn plan_shows_stages_their_digests_and_users() {
    let ctx = plan_ctx();
    let p = plan(&ctx);
    let stages = p["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2, "{p}");
    assert_eq!(stages[0]["name"], "build");
    assert_eq!(stages[0]["from"], "debian:bookworm");
    assert_eq!(stages[0]["steps"], 1);
    assert_eq!(stages[0]["used_by"], serde_json::json!(["wheels"]));
    assert_eq!(stages[1]["name"], "tools");
    assert_eq!(stages[1]["from"], "stage:build");
    assert_eq!(stages[1]["used_by"], serde_json::json!(["deps"]));
    let rows = p["layers"].as_array().unwrap();
    assert_eq!(rows[0]["stages"], serde_json::json!(["build"]));
    assert_eq!(rows[1]["stages"], serde_json::json!(["tools"]));
    assert!(rows[2].get("stages").is_none(), "absent when none: {p}");

    // The table lists the stages after the layers.
    let table = ctx.strata(&["plan", "."]);
    assert_eq!(table.code(), 0, "{}", table.stderr());
    let out = table.stdout();
    assert!(out.contains("STAGE"), "{out}");
    let line = out.lines().find(|l| l.starts_with("tools")).unwrap();
    assert!(
        line.contains("stage:build") && line.ends_with("deps"),
        "{line}"
    );

    // App code: no stage digest and no stage user changes.
    ctx.write("src/app.py", "print(2)\n");
    let q = plan(&ctx);
    for s in ["build", "tools"] {
        assert_eq!(inputs_of(&p, "stages", s), inputs_of(&q, "stages", s));
    }
    for l in ["wheels", "deps"] {
        assert_eq!(inputs_of(&p, "layers", l), inputs_of(&q, "layers", l));
    }
    assert_ne!(
        inputs_of(&p, "layers", "app"),
        inputs_of(&q, "layers", "app")
    );

    // Requirements: both stages (tools builds on build) and both users change.
    ctx.write("requirements.txt", "tts-textnorm==0.2.0\n");
    let r = plan(&ctx);
    for s in ["build", "tools"] {
        assert_ne!(
            inputs_of(&q, "stages", s),
            inputs_of(&r, "stages", s),
            "{s}"
        );
    }
    for l in ["wheels", "deps"] {
        assert_ne!(
            inputs_of(&q, "layers", l),
            inputs_of(&r, "layers", l),
            "{l}"
        );
    }
    assert_eq!(
        inputs_of(&q, "layers", "app"),
        inputs_of(&r, "layers", "app")
    );
}

#[test]
fn the_embedded_builder_refuses_stages_before_writing_anything() {
    let ctx = Ctx::new();
    ctx.write("src/app.py", "print(1)\n");
    ctx.spec(&format!(
        "version = 1\n{BUILD_STAGE}{}\
         [[layer]]\nname = \"app\"\ncopy = [{{ from = \"src\", to = \"/app\" }}]\n",
        copy_from("build", "/wheels").replace("\"deps\"", "\"wheels\"")
    ));
    let out = ctx.outside("out");
    let run = ctx.strata(&[
        "build",
        ".",
        "--output",
        &format!("oci-layout:{}:v1", out.display()),
    ]);
    let err = run.stderr();
    assert_eq!(run.code(), 1, "{err}");
    assert!(
        err.contains("layer `wheels` copies from stage `build`: build stages need BuildKit"),
        "{err}"
    );
    assert!(err.contains("docker buildx build"), "{err}");
    assert!(err.contains("strata.toml:9:8]"), "{err}");
    assert_eq!(run.stdout(), "");
    assert!(!out.exists(), "no output");
    assert!(!ctx.cache().exists(), "no cache written");
}

#[test]
fn lock_pins_stage_bases_of_every_target() {
    let ctx = Ctx::new();
    ctx.spec(
        "version = 1\n[[stage]]\nname = \"build\"\nfrom = \"strata-test/debian:bookworm\"\n\
         [[stage]]\nname = \"dev\"\nfrom = \"busybox:1.36\"\n\
         [[layer]]\nname = \"w\"\ncopy = [{ stage = \"build\", from = \"/etc/os-release\", to = \"/os-release\" }]\n\
         [[layer]]\nname = \"d\"\ntargets = [\"development\"]\n\
         copy = [{ stage = \"dev\", from = \"/bin/busybox\", to = \"/busybox\" }]\n\
         [target.development]\n",
    );
    // Both exist only in the engines' stores here (no registry is reached):
    // pinned as local, as asked.
    let run = ctx.strata(&[
        "lock",
        "--local",
        "strata-test/debian:bookworm",
        "--local",
        "busybox:1.36",
        ".",
    ]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let lock = std::fs::read_to_string(ctx.path().join("strata.lock")).unwrap();
    assert!(
        lock.contains("reference = \"strata-test/debian:bookworm\""),
        "{lock}"
    );
    assert!(lock.contains("reference = \"busybox:1.36\""), "{lock}");
}

const GOLDEN_STAGE_PLAN: &str = r#"{
  "schema": "strata.plan/v2",
  "target": null,
  "platforms": [
    {
      "platform": "linux/amd64",
      "against": null,
      "layers": [
        {
          "id": "wheels",
          "kind": "copy",
          "inputs": "sha256:1eb37f6079b9d82c2a08499883793e4091b0eeda914c182dfc214f63e9b673b6",
          "key": "sha256:ebb65157c5b695283065e3a14ccc3d3c7d20cdf72925106c75b67b7ee9d44676",
          "size": 0,
          "files": 0,
          "status": "unknown",
          "stages": [
            "build"
          ]
        }
      ],
      "stages": [
        {
          "name": "build",
          "from": "debian:bookworm",
          "inputs": "sha256:ebb3356ef75d9ea8bc0fb0b7da9341c21b35d3a54c4a840ace53582ec845fc83",
          "steps": 1,
          "used_by": [
            "wheels"
          ]
        }
      ]
    }
  ]
}"#;

#[test]
fn plan_json_with_stages_is_pinned() {
    let ctx = Ctx::new();
    ctx.write("requirements.txt", "numpy==1\n");
    ctx.spec(
        "version = 1\n[[stage]]\nname = \"build\"\nfrom = \"debian:bookworm\"\n\
         [[stage.step]]\nrun = \"pip wheel -r requirements.txt -w /wheels\"\n\
         inputs = [\"requirements.txt\"]\n\
         [[layer]]\nname = \"wheels\"\ncopy = [{ stage = \"build\", from = \"/wheels\", to = \"/wheels\" }]\n",
    );
    let run = ctx.strata(&["plan", ".", "--platform", "linux/amd64", "--format", "json"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(run.stdout().trim_end(), GOLDEN_STAGE_PLAN);
}

// ------------------------------------------------------- end to end, Docker 26

/// `docker buildx build --load -t TAG` of `dir` with the frontend under
/// test; returns the plain progress output, or panics with it.
fn build(host: &str, dir: &std::path::Path, tag: &str, extra: &[&str]) -> String {
    let (ok, text) = build_result(host, dir, tag, extra);
    assert!(ok, "build failed:\n{text}");
    text
}

fn build_result(host: &str, dir: &std::path::Path, tag: &str, extra: &[&str]) -> (bool, String) {
    let syntax = crate::frontend::frontend_image(host);
    let load = ["--load", "-t", tag];
    buildx_result(host, &syntax, BASE, dir, &[extra, &load].concat())
}

/// The stage steps, run layers and copy helpers that ran (were not cached)
/// in a build's plain progress output, by vertex name.
fn ran(progress: &str) -> std::collections::BTreeSet<String> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut names: BTreeMap<&str, &str> = BTreeMap::new();
    let mut cached = BTreeSet::new();
    let mut done = BTreeSet::new();
    for line in progress.lines() {
        let Some((n, text)) = line.strip_prefix('#').and_then(|r| r.split_once(' ')) else {
            continue;
        };
        if n.parse::<u32>().is_err() {
            continue;
        }
        if text == "CACHED" {
            cached.insert(n);
        } else if text.starts_with("DONE") {
            done.insert(n);
        } else if text.starts_with("[strata] stage ") || text.starts_with("[strata] layer ") {
            names.entry(n).or_insert(text);
        }
    }
    done.difference(&cached)
        .filter_map(|n| names.get(n))
        .map(|t| {
            // `[strata] layer NAME: command` → `layer NAME`; stages likewise.
            let t = t.trim_start_matches("[strata] ");
            t.split(':').next().unwrap_or(t).to_string()
        })
        .collect()
}

fn set(items: &[&str]) -> std::collections::BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Writes the sdist `sdists/tts-textnorm-VERSION.tar.gz` into `dir`, the
/// way `examples/tts/sdists/` was made (fixed names, owners and times).
fn sdist(dir: &std::path::Path, version: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join(format!("tts-textnorm-{version}"));
    let write = |rel: &str, text: String| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "tts_textnorm/__init__.py",
        format!(
            "VERSION = \"{version}\"\n\n\ndef normalize(text):\n    return \" \".join(text.lower().split())\n"
        ),
    );
    write(
        "pyproject.toml",
        "[build-system]\nrequires = [\"setuptools\", \"wheel\"]\nbuild-backend = \"setuptools.build_meta\"\n".into(),
    );
    write(
        "setup.cfg",
        format!(
            "[metadata]\nname = tts-textnorm\nversion = {version}\n\n[options]\npackages = tts_textnorm\n"
        ),
    );
    write(
        "PKG-INFO",
        format!("Metadata-Version: 2.1\nName: tts-textnorm\nVersion: {version}\n"),
    );
    std::fs::create_dir_all(dir.join("sdists")).unwrap();
    let out = dir.join(format!("sdists/tts-textnorm-{version}.tar.gz"));
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar --sort=name --mtime=@315619200 --owner=0 --group=0 --numeric-owner -cf - tts-textnorm-{version} | gzip -n > '{}'",
            out.display()
        ))
        .current_dir(tmp.path())
        .status()
        .unwrap();
    assert!(status.success());
}

/// A copy of examples/tts whose requirements carry a nonce, so this run's
/// first build runs the stage on the shared engine whatever earlier runs
/// cached (never `--no-cache` on the shared engines).
fn tts_copy(nonce: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let (tmp, root) = crate::frontend::tts();
    std::fs::write(
        root.join("requirements.txt"),
        format!("# {nonce}\ntts-textnorm==0.1.0\n"),
    )
    .unwrap();
    (tmp, root)
}

/// Runs `sh -c SCRIPT` in `tag` (entrypoint replaced); returns (ok, output).
fn in_image(host: &str, tag: &str, script: &str) -> (bool, String) {
    let out = docker(host)
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "/bin/sh",
            tag,
            "-c",
            script,
        ])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// On Docker 26.1: the production image has the
/// packages the stage built but no compiler and no wheels; app code re-runs
/// nothing; touching every file re-runs nothing; the requirements re-run the
/// stage and the layer that mounts it, and nothing else.
#[test]
fn tts_production_with_a_build_stage_on_docker_26() {
    let _engines = crate::util::engine_lock();
    let Some(host) = crate::util::engine("d26") else {
        return;
    };
    let (_tmp, dir) = tts_copy(&nonce());
    let tag = |n: u32| format!("stages-it-tts:{n}");
    let prod = ["--target", "production"];

    let text = build(&host, &dir, &tag(1), &prod);
    let first = ran(&text);
    assert!(
        first.contains("stage build") && first.contains("layer python-deps"),
        "the stage and its user ran: {first:?}\n{text}"
    );
    let (ok, out) = in_image(
        &host,
        &tag(1),
        "python3 -c 'import tts_textnorm; print(tts_textnorm.normalize(\"A  B\"))' && \
         ! command -v gcc && ! command -v cc && test ! -e /wheels && test ! -e /build && echo clean",
    );
    assert!(ok && out.contains("a b") && out.contains("clean"), "{out}");
    let (ok, out) = in_image(&host, &tag(1), "python3 -m f5_tts_api");
    assert!(
        ok && out.contains("f5-tts-api 0.1.0"),
        "the image runs: {out}"
    );

    // Every file touched: nothing re-runs.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg("find . -exec touch -d '2030-01-01' {} +")
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let text = build(&host, &dir, &tag(2), &prod);
    assert_eq!(ran(&text), set(&[]), "touch re-runs nothing:\n{text}");

    // App code: only its copy helper; no stage, no run layer.
    std::fs::write(
        dir.join("src/f5_tts_api/__init__.py"),
        "VERSION = \"0.2.0\"\n",
    )
    .unwrap();
    let text = build(&host, &dir, &tag(3), &prod);
    assert_eq!(ran(&text), set(&["layer app"]), "{text}");

    // Requirements (a new sdist, a new pin): the stage and python-deps only.
    sdist(&dir, "0.2.0");
    std::fs::write(
        dir.join("requirements.txt"),
        format!("# {}\ntts-textnorm==0.2.0\n", nonce()),
    )
    .unwrap();
    let text = build(&host, &dir, &tag(4), &prod);
    assert_eq!(
        ran(&text),
        set(&["stage build", "layer python-deps"]),
        "{text}"
    );
    let (ok, out) = in_image(
        &host,
        &tag(4),
        "python3 -c 'import tts_textnorm; print(tts_textnorm.VERSION)'",
    );
    assert!(ok && out.contains("0.2.0"), "{out}");
    for n in 1..=4 {
        let _ = docker(&host).args(["rmi", &tag(n)]).output();
    }
}

/// The `wheels` layer of the development target, copied from a stage whose
/// output is deterministic, has the same diffID on two fresh builders
/// (`d26` and `d26b`, separate data roots); the stage runs on both (a nonce
/// no earlier build saw, instead of `--no-cache`).
#[test]
fn a_layer_copied_from_a_stage_is_identical_on_two_fresh_builders() {
    let _engines = crate::util::engine_lock();
    let (Some(a), Some(b)) = (crate::util::engine("d26"), crate::util::engine("d26b")) else {
        return;
    };
    // A small spec: the tts build stage and one copy from it.
    let n = nonce();
    let (_tmp, dir) = tts_copy(&n);
    std::fs::write(
        dir.join("strata.toml"),
        format!(
            "version = 1\n[args]\nBASE_IMAGE = \"{BASE}\"\n[image]\nfrom = \"${{BASE_IMAGE}}\"\n\
             [[stage]]\nname = \"build\"\nfrom = \"${{BASE_IMAGE}}\"\nworkdir = \"/build\"\n\
             env = {{ SOURCE_DATE_EPOCH = \"315619200\" }}\n\
             [[stage.step]]\n\
             run = \"python3 -m pip wheel --no-index --no-build-isolation --find-links sdists --wheel-dir /wheels -r requirements.txt\"\n\
             inputs = [\"requirements.txt\", \"sdists\"]\n\
             [[layer]]\nname = \"wheels\"\ncopy = [{{ stage = \"build\", from = \"/wheels\", to = \"/opt/wheels\" }}]\n"
        ),
    )
    .unwrap();
    let tag = "stages-it-fresh:1";
    let ta = build(&a, &dir, tag, &[]);
    let tb = build(&b, &dir, tag, &[]);
    // The stage runs on both (its inputs carry a nonce). The copy step may
    // be cached: its key is the content of the stage's /wheels, which is
    // deterministic, so an earlier test that built the same wheel on this
    // engine already wrote that layer.
    for (name, text) in [("d26", &ta), ("d26b", &tb)] {
        let r = ran(text);
        assert!(
            r.contains("stage build"),
            "{name} ran the stage: {r:?}\n{text}"
        );
    }
    let (la, lb) = (
        crate::frontend::layers(&a, tag),
        crate::frontend::layers(&b, tag),
    );
    assert_eq!(la.last(), lb.last(), "the stage copy layer differs");
    assert_eq!(la.len(), lb.len());
    let (ok, out) = in_image(&a, tag, "ls -l --time-style=+%s /opt/wheels");
    assert!(
        ok && out.contains("tts_textnorm-0.1.0-py3-none-any.whl") && out.contains("315619200"),
        "the wheel with the layer timestamp: {out}"
    );
    for h in [&a, &b] {
        let _ = docker(h).args(["rmi", tag]).output();
    }
}

/// A failing stage command fails the build and points at its step's line.
#[test]
fn a_failing_stage_step_points_at_its_line() {
    let _engines = crate::util::engine_lock();
    let Some(host) = crate::util::engine("d26") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The step: its header on line 7, its `run` on line 8.
    std::fs::write(
        dir.path().join("strata.toml"),
        format!(
            "version = 1\n[image]\nfrom = \"{BASE}\"\n[[stage]]\nname = \"build\"\nfrom = \"{BASE}\"\n\
             [[stage.step]]\nrun = \"echo {} && exit 3\"\n\
             [[layer]]\nname = \"out\"\ncopy = [{{ stage = \"build\", from = \"/etc/os-release\", to = \"/os-release\" }}]\n",
            nonce()
        ),
    )
    .unwrap();
    let (ok, text) = build_result(&host, dir.path(), "stages-it-fails:1", &[]);
    assert!(!ok, "the build must fail:\n{text}");
    assert!(text.contains("[strata] stage build: echo"), "{text}");
    assert!(text.contains("strata.toml:7"), "{text}");
    assert!(text.contains(">>> [[stage.step]]"), "{text}");
    assert!(text.contains(">>> run = \"echo"), "{text}");
}

/// examples/tts: every target checks; the plan shows the `build` stage and
/// which layers of each target use it.
#[test]
fn the_tts_example_has_a_build_stage_in_every_target() {
    let ctx = Ctx::new();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/tts");
    for (target, users) in [
        (None, vec!["python-deps"]),
        (Some("production"), vec!["python-deps"]),
        (Some("development"), vec!["python-deps", "wheels"]),
    ] {
        let mut args = vec!["plan", root, "--format", "json"];
        if let Some(t) = target {
            args.extend(["--target", t]);
        }
        let run = ctx.strata(&args);
        assert_eq!(run.code(), 0, "{}", run.stderr());
        let p: Value = serde_json::from_str(&run.stdout()).unwrap();
        let p = &p["platforms"][0];
        assert_eq!(p["stages"][0]["name"], "build", "{p}");
        assert_eq!(p["stages"][0]["used_by"], serde_json::json!(users), "{p}");
    }
}

#[test]
fn mounts_are_for_run_layers_only() {
    let spec = format!(
        "{HEAD}{BUILD_STAGE}{}mounts = [{{ stage = \"build\", from = \"/wheels\", to = \"/w\" }}]\n",
        copy_from("build", "/wheels")
    );
    assert_error(
        &spec,
        "`mounts` is only for run layers, and `deps` is a copy layer",
        13,
        11,
    );
}

/// BuildKit 0.8 (Docker 20.10, the linear fallback): a stage's files are
/// copied with the fixed owner, mode and timestamp, and a stage mount is
/// read-only and stays out of its layer.
#[test]
fn stage_copies_and_mounts_on_docker_20() {
    let _engines = crate::util::engine_lock();
    let Some(host) = crate::util::engine("d20") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("strata.toml"),
        format!(
            "version = 1\n[args]\nBASE_IMAGE = \"{BASE}\"\n[image]\nfrom = \"${{BASE_IMAGE}}\"\n\
             [[stage]]\nname = \"gen\"\nfrom = \"${{BASE_IMAGE}}\"\n\
             [[stage.step]]\nrun = \"mkdir -p /out/sub && echo {} > /out/sub/v.txt && chmod 0600 /out/sub/v.txt\"\n\
             [[layer]]\nname = \"gen\"\ncopy = [{{ stage = \"gen\", from = \"/out\", to = \"/opt/gen\" }}]\n\
             [[layer]]\nname = \"use\"\nrun = \"cp /m/sub/v.txt /used.txt && ! touch /m/x 2>/dev/null\"\n\
             mounts = [{{ stage = \"gen\", from = \"/out\", to = \"/m\" }}]\n",
            nonce()
        ),
    )
    .unwrap();
    let tag = "stages-it-d20:1";
    build(&host, dir.path(), tag, &[]);
    let (ok, out) = in_image(
        &host,
        tag,
        "stat -c '%a %u:%g %Y %n' /opt/gen/sub/v.txt /opt/gen/sub /used.txt && test ! -e /m/sub",
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("644 0:0 315619200 /opt/gen/sub/v.txt"),
        "{out}"
    );
    assert!(out.contains("755 0:0 315619200 /opt/gen/sub"), "{out}");
    assert!(out.contains("/used.txt"), "{out}");
    let _ = docker(&host).args(["rmi", tag]).output();
}
