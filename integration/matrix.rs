//! The reuse matrix: one seed-shaped project (examples/tts: a system-packages
//! run layer, a pip layer from a local wheel, two model directories split
//! per shard, entrypoint and reference audio, app code), built, then changed
//! one way at a time, on every engine and, in its copy-only variant, with the
//! embedded builder. [`MATRIX`] is the promise at a glance: which layers get
//! a new digest and which steps run again, for each change.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::frontend::{BASE, TTS_LAYERS, frontend_image, layers, strata_layers, tts};
use crate::util::{Ctx, assert_ok, buildx, docker, engine, nonce, run_ok, with_fault_retry};

const SHARD: &str = "models@/app/models/whisper/model-00002-of-00003.safetensors";

/// One change to the project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// Build again, nothing changed.
    Nothing,
    /// An edit to the app's code.
    AppCode,
    /// A new requirements file (the pip layer's input).
    Requirements,
    /// One model shard's bytes.
    OneShard,
    /// Every file touched: mtimes only.
    TouchAll,
    /// Another base image (one more file in it).
    Base,
}

/// What a change does on one kind of builder: the layer IDs whose digest
/// changes, and the layer steps that run again (not reported `CACHED`).
type Effect = (&'static [&'static str], &'static [&'static str]);

/// The promise. Columns: modern engines (MergeOp and DiffOp: Docker 28.5
/// and 26.1 on the containerd store), the linear fallback (docs/design.md §4:
/// Docker 20.10, and Docker 28.5 on its graphdriver store), and the
/// embedded builder on the copy-only variant (layer IDs whose digest
/// changes; it has no run layers, and its base is a `docker-archive:` file).
///
/// The fallback's layer digests change as the modern ones do; its steps
/// differ. It writes each copy layer with one helper exec onto the chain
/// (docs/design.md §4, `docs/frontend.md`), keyed by the chain and the layer's
/// inputs: so a changed layer re-runs every copy step after it in the
/// chain, and those steps write the same bytes again (same digests). The
/// helper's record step (`[strata] record ID`, not counted here) depends on
/// the layer's inputs only and stays cached. Before, a helper wrote to a
/// scratch output, cached on its inputs alone, and an unnamed FileOp copied
/// it onto the chain again (re-writing the same bytes, as the copy steps
/// here do); on a fresh builder importing an inline cache every helper ran
/// again, to give its record (`persistence::inline_cache_on_docker_20`).
///
/// Run layers re-run on a new base and on a new input; they are normalized
/// (`docs/reproducibility.md`, "Run layers"), so a re-run that writes the
/// same files gives the same digest: here `system` (its package is in both
/// bases) and `python-deps` (the same wheels; a comment added to the
/// requirements) keep theirs. Except on BuildKit 0.8 (Docker 20.10), where
/// every run layer that runs gets a new digest (the stubs of its mount
/// points and `/etc`'s time stay in the layer: `docs/frontend.md`), which
/// [`frontend_matrix`] adds to the fallback column there. Copy
/// layers depend only on their inputs' content (docs/design.md §1): a new base
/// changes none of them here, because the base's metadata for their parent
/// directories (`/`, `/app` absent) is the same in both bases.
const MATRIX: &[(Change, Effect, Effect, &[&str])] = &[
    (Change::Nothing, (&[], &[]), (&[], &[]), &[]),
    (
        Change::AppCode,
        (&["app"], &["app"]),
        (&["app"], &["app"]),
        &["app"],
    ),
    (
        Change::Requirements,
        (&[], &["python-deps"]),
        (&[], &TTS_LAYERS_AFTER_SYSTEM),
        &[],
    ),
    (
        Change::OneShard,
        (&[SHARD], &[SHARD]),
        (&[SHARD], &[SHARD, SHARD_3, "runtime", "app"]),
        &[SHARD],
    ),
    (Change::TouchAll, (&[], &[]), (&[], &[]), &[]),
    (
        Change::Base,
        (&[], &["system", "python-deps"]),
        (&[], TTS_LAYERS),
        &[],
    ),
];

/// The shard after [`SHARD`] in the chain.
const SHARD_3: &str = "models@/app/models/whisper/model-00003-of-00003.safetensors";

/// Every layer of examples/tts but the first (`system`), in chain order.
const TTS_LAYERS_AFTER_SYSTEM: [&str; 8] = [
    "python-deps",
    "models",
    "models@/app/models/vocos/pytorch_model.bin",
    "models@/app/models/whisper/model-00001-of-00003.safetensors",
    SHARD,
    SHARD_3,
    "runtime",
    "app",
];

/// Applies `change` to the checkout at `dir` (`base` is the base to use
/// from now on, updated for [`Change::Base`]).
fn apply(change: Change, dir: &Path, n: usize, base: &mut String, other_base: &str) {
    let nonce = nonce();
    match change {
        Change::Nothing => {}
        Change::AppCode => std::fs::write(
            dir.join("src/f5_tts_api/__init__.py"),
            format!("VERSION = \"0.{n}.0\"  # {nonce}\n"),
        )
        .unwrap(),
        Change::Requirements => std::fs::write(
            dir.join("requirements.txt"),
            format!("tts-textnorm>=0.1 # {n} {nonce}\n"),
        )
        .unwrap(),
        Change::OneShard => {
            let shard = dir.join("models/whisper/model-00002-of-00003.safetensors");
            let mut data = std::fs::read(&shard).unwrap();
            data.extend_from_slice(format!("new weights {n} {nonce}").as_bytes());
            std::fs::write(&shard, data).unwrap();
        }
        Change::TouchAll => {
            let status = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "find . -exec touch -d '2030-01-{:02}' {{}} +",
                    n + 1
                ))
                .current_dir(dir)
                .status()
                .unwrap();
            assert!(status.success());
        }
        Change::Base => *base = other_base.to_string(),
    }
}

/// A second base image in the engine: the test base plus one file (new
/// in each test run).
fn other_base(host: &str) -> String {
    let tag = "strata-it-base:2".to_string();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!(
            "FROM {BASE}\nRUN echo {} > /etc/strata-test-base\n",
            nonce()
        ),
    )
    .unwrap();
    let out = with_fault_retry("build the second base", || {
        docker(host)
            .args(["buildx", "build", "--load", "-t", &tag, "."])
            .current_dir(dir.path())
            .output()
            .unwrap()
    });
    assert_ok("build the second base", out);
    tag
}

/// Builds the checkout through the frontend; returns the plain progress.
fn frontend_build(host: &str, dir: &Path, base: &str, tag: &str, extra: &[&str]) -> String {
    let load = ["--load", "-t", tag];
    buildx(
        host,
        &frontend_image(host),
        base,
        dir,
        &[extra, &load].concat(),
    )
}

/// The layers whose step BuildKit ran and those it only found in a cache,
/// from `--progress=plain` output. A `[strata] layer ID` vertex ran when it
/// printed output (`#N 0.412 …`; every helper prints its input digest),
/// also after BuildKit reported it `CACHED` (a step cached for the image
/// can still run when a later solve needs its other output), or when it
/// was neither reported `CACHED` nor loaded from an imported cache. A
/// loaded step pulls its blob (`#N sha256:… 258B / 258B done`, `#N
/// extracting …`) and ends `DONE`, with or without `CACHED` first: that is
/// not a run.
pub(crate) fn steps(progress: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut names: Vec<(String, String)> = Vec::new();
    let mut cached = BTreeSet::new();
    let mut printed = BTreeSet::new();
    for line in progress.lines() {
        let Some((num, rest)) = line.strip_prefix('#').and_then(|l| l.split_once(' ')) else {
            continue;
        };
        let first = rest.split_once(' ').map_or(rest, |(t, _)| t);
        if rest == "CACHED"
            || first.starts_with("sha256:")
            || rest.starts_with("extracting sha256:")
        {
            cached.insert(num.to_string());
        } else if first.contains('.') && first.parse::<f64>().is_ok() {
            printed.insert(num.to_string());
        } else if let Some(name) = rest.strip_prefix("[strata] layer ") {
            let id = name.split_once(": ").map_or(name, |(id, _)| id);
            if !names.iter().any(|(n, _)| n == num) {
                names.push((num.to_string(), id.to_string()));
            }
        }
    }
    let (hit, ran): (Vec<_>, Vec<_>) = names
        .into_iter()
        .partition(|(n, _)| cached.contains(n) && !printed.contains(n));
    (
        ran.into_iter().map(|(_, id)| id).collect(),
        hit.into_iter().map(|(_, id)| id).collect(),
    )
}

/// Layer IDs whose diffID differs between two images of one engine.
fn changed(host: &str, a: &str, b: &str) -> BTreeSet<String> {
    let ids = strata_layers(host, a);
    assert_eq!(ids, strata_layers(host, b), "same layers in both images");
    let (la, lb) = (layers(host, a), layers(host, b));
    let (ba, bb) = (la.len() - ids.len(), lb.len() - ids.len());
    ids.iter()
        .enumerate()
        .filter(|(i, _)| la[ba + i] != lb[bb + i])
        .map(|(_, id)| id.clone())
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// Runs the matrix on one engine, with the modern or the fallback column.
fn frontend_matrix(name: &str, fallback: bool) {
    let _engines = crate::util::engine_lock();
    let Some(host) = engine(name) else { return };
    assert_eq!(
        TTS_LAYERS_AFTER_SYSTEM,
        TTS_LAYERS[1..],
        "the table's layer list"
    );
    let other = other_base(&host);
    let (_tmp, dir) = tts();
    let mut base = BASE.to_string();
    let tag = |n: usize| format!("strata-it-matrix-{name}:{n}");
    let first = frontend_build(&host, &dir, &base, &tag(0), &[]);
    assert_eq!(
        strata_layers(&host, &tag(0)),
        TTS_LAYERS,
        "one history entry per layer"
    );
    assert_eq!(
        first.contains("this BuildKit has no MergeOp/DiffOp"),
        fallback,
        "the fallback says so, and only the fallback:\n{first}"
    );
    let run = docker(&host)
        .args(["run", "--rm", &tag(0)])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("f5-tts-api 0.1.0"),
        "the image runs: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut failures = Vec::new();
    for (n, (change, modern, fb, _)) in MATRIX.iter().enumerate() {
        let n = n + 1;
        let (want_changed, want_run) = if fallback { fb } else { modern };
        // BuildKit 0.8: a run layer that runs gets a new digest.
        let mut want_changed = set(want_changed);
        if name == "d20" {
            want_changed.extend(
                want_run
                    .iter()
                    .filter(|l| ["system", "python-deps"].contains(l))
                    .map(|l| l.to_string()),
            );
        }
        apply(*change, &dir, n, &mut base, &other);
        let progress = frontend_build(&host, &dir, &base, &tag(n), &[]);
        let got_changed = changed(&host, &tag(n - 1), &tag(n));
        let (got_run, got_cached) = steps(&progress);
        eprintln!("{name} {change:?}: changed {got_changed:?}, ran {got_run:?}");
        // Every other layer's step is reported, as cached.
        let want_cached: BTreeSet<String> = set(TTS_LAYERS)
            .difference(&set(want_run))
            .cloned()
            .collect();
        if got_changed != want_changed || got_run != set(want_run) || got_cached != want_cached {
            failures.push(format!(
                "{change:?}: changed {got_changed:?} (want {want_changed:?}), ran {got_run:?} (want {want_run:?}), cached {got_cached:?} (want {want_cached:?})\n{}",
                crate::util::daemon_diff((&host, &tag(n - 1)), (&host, &tag(n)))
            ));
        }
    }
    // SOURCE_DATE_EPOCH sets `created` only: no layer changes, no step runs.
    let n = MATRIX.len() + 1;
    let progress = frontend_build(
        &host,
        &dir,
        &base,
        &tag(n),
        &["--build-arg", "SOURCE_DATE_EPOCH=1700000000"],
    );
    let got_changed = changed(&host, &tag(n - 1), &tag(n));
    let (got_run, _) = steps(&progress);
    if !got_changed.is_empty() || !got_run.is_empty() {
        failures.push(format!(
            "SOURCE_DATE_EPOCH: changed {got_changed:?}, ran {got_run:?} (want none)"
        ));
    }
    assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n"));
}

#[test]
fn reuse_matrix_on_docker_28() {
    frontend_matrix("d28", false);
}

#[test]
fn reuse_matrix_on_docker_26() {
    frontend_matrix("d26", false);
}

#[test]
fn reuse_matrix_on_docker_20_fallback() {
    frontend_matrix("d20", true);
}

#[test]
fn reuse_matrix_on_docker_28_graphdriver_fallback() {
    frontend_matrix("d28g", true);
}

/// The copy-only variant of examples/tts for the embedded builder: the
/// same copy layers on a `docker-archive:` base, no run layers.
const COPY_ONLY: &str = r#"version = 1
[args]
BASE = "base-1.tar"
[image]
from = "docker-archive:${BASE}"
workdir = "/app"
[[layer]]
name = "models"
copy = [
  { from = "models/vocos", to = "/app/models/vocos" },
  { from = "models/whisper", to = "/app/models/whisper" },
]
split = "file"
split_min = "32KiB"
[[layer]]
name = "runtime"
copy = [
  { from = "docker-entrypoint.sh", to = "/app/docker-entrypoint.sh", mode = "0755" },
  { from = "ref_audio", to = "/app/ref_audio" },
]
[[layer]]
name = "app"
copy = [{ from = "src", to = "/app/src", exclude = ["**/__pycache__"] }]
"#;

/// (strata layer ID, layer digest) of the image tagged `tag` in a layout.
fn layout_layers(dir: &Path, tag: &str) -> Vec<(String, String)> {
    let read = |digest: &str| -> Value {
        let hex = digest.strip_prefix("sha256:").unwrap();
        serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()).unwrap()
    };
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("tag {tag}"));
    let manifest = read(m["digest"].as_str().unwrap());
    let config = read(manifest["config"]["digest"].as_str().unwrap());
    let ids: Vec<String> = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| {
            h["created_by"]
                .as_str()?
                .strip_prefix("strata layer ")
                .map(String::from)
        })
        .collect();
    let layers = manifest["layers"].as_array().unwrap();
    let skip = layers.len() - ids.len();
    ids.into_iter()
        .zip(
            layers[skip..]
                .iter()
                .map(|l| l["digest"].as_str().unwrap().to_string()),
        )
        .collect()
}

/// The embedded builder's column: the copy-only variant on two
/// `docker-archive:` bases saved from Docker 28.5.
#[test]
fn reuse_matrix_with_the_embedded_builder() {
    let _engines = crate::util::engine_lock();
    let Some(host) = engine("d28") else { return };
    let other = other_base(&host);
    let ctx = Ctx::new();
    let (_tmp, dir) = tts();
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", dir.display()))
        .arg(ctx.path())
        .status()
        .unwrap();
    assert!(status.success());
    ctx.spec(COPY_ONLY);
    for (file, image) in [("base-1.tar", BASE), ("base-2.tar", other.as_str())] {
        run_ok(
            docker(&host)
                .args(["save", "-o"])
                .arg(ctx.path().join(file))
                .arg(image),
        );
    }
    let out = ctx.outside("out");
    let build = |n: usize, base: &str| {
        let run = ctx.strata(&[
            "build",
            ".",
            "--build-arg",
            &format!("BASE={base}"),
            "-o",
            &format!("oci-layout:{}:{n}", out.display()),
        ]);
        assert_eq!(run.code(), 0, "{}", run.stderr());
        layout_layers(&out, &n.to_string())
    };
    let mut base = "base-1.tar".to_string();
    let mut prev = build(0, &base);
    let mut failures = Vec::new();
    for (n, (change, _, _, want)) in MATRIX.iter().enumerate() {
        let n = n + 1;
        apply(*change, ctx.path(), n, &mut base, "base-2.tar");
        let now = build(n, &base);
        let got: BTreeSet<String> = prev
            .iter()
            .zip(&now)
            .filter(|(a, b)| a != b)
            .map(|(a, _)| a.0.clone())
            .collect();
        eprintln!("embedded {change:?}: changed {got:?}");
        if got != set(want) {
            failures.push(format!("{change:?}: changed {got:?} (want {want:?})"));
        }
        prev = now;
    }
    assert!(failures.is_empty(), "embedded:\n{}", failures.join("\n"));
}
