//! Registries and cache persistence through BuildKit: an image pushed from
//! one engine is pulled and run on the others; a code change pushes one
//! layer blob; `--cache-to`/`--cache-from` (registry and local) let a fresh
//! engine reuse every unchanged step; inline cache does the same on Docker
//! 20.10, whose graphdriver store exports no other kind. Each scenario names
//! its engines.

use std::collections::BTreeSet;
use std::path::Path;

use crate::frontend::{BASE, TTS_LAYERS, frontend_image, frontend_image_with, layers, tts};
use crate::matrix::steps;
use crate::util::{REGISTRY, buildx, docker, engine, log_len, log_since, nonce, run_ok};

/// A repository name new to this test run.
fn repo(name: &str) -> String {
    format!("strata-it/{name}-{}", nonce())
}

/// `docker buildx build` of the tts checkout with extra arguments; returns
/// the plain progress.
fn build(host: &str, dir: &Path, extra: &[&str]) -> String {
    build_with(host, &frontend_image(host), BASE, dir, extra)
}

/// The same with the frontend image `syntax` and the base `base`.
fn build_with(host: &str, syntax: &str, base: &str, dir: &Path, extra: &[&str]) -> String {
    buildx(
        host,
        syntax,
        base,
        dir,
        &[&["--provenance=false"], extra].concat(),
    )
}

/// Completed uploads into `repo` in a stretch of the registry's access
/// log: (blob PUTs, manifest PUTs).
fn uploads(log: &str, repo: &str) -> (usize, usize) {
    let blobs = format!("\"PUT /v2/{repo}/blobs/uploads/");
    let manifests = format!("\"PUT /v2/{repo}/manifests/");
    let done = |l: &&str| l.contains("HTTP/1.1\" 201 ");
    (
        log.lines()
            .filter(|l| l.contains(&blobs))
            .filter(done)
            .count(),
        log.lines()
            .filter(|l| l.contains(&manifests))
            .filter(done)
            .count(),
    )
}

/// Docker 28.5 pushes; Docker 26.1 and 20.10 pull the same layers and run
/// the image. After an app code change the second push uploads exactly two
/// blobs (the app layer and the config) and one manifest.
#[test]
fn a_push_is_pulled_everywhere_and_a_code_change_uploads_one_layer() {
    let _engines = crate::util::engine_lock();
    let Some(h28) = engine("d28") else { return };
    let others: Vec<String> = ["d26", "d20"].iter().filter_map(|e| engine(e)).collect();
    let repo = repo("push");
    let image = format!("{REGISTRY}/{repo}");
    let (_tmp, dir) = tts();
    build(&h28, &dir, &["--push", "-t", &format!("{image}:1")]);
    run_ok(docker(&h28).args(["pull", &format!("{image}:1")])).stdout();
    let want = layers(&h28, &format!("{image}:1"));
    for host in &others {
        run_ok(docker(host).args(["pull", &format!("{image}:1")])).stdout();
        assert_eq!(
            layers(host, &format!("{image}:1")),
            want,
            "{host}: same layers"
        );
        let run = run_ok(docker(host).args(["run", "--rm", &format!("{image}:1")])).stdout();
        assert!(run.contains("f5-tts-api 0.1.0"), "{host}: {run}");
    }

    std::fs::write(
        dir.join("src/f5_tts_api/__init__.py"),
        format!("VERSION = \"0.2.0\"  # {repo}\n"),
    )
    .unwrap();
    let before = log_len();
    build(&h28, &dir, &["--push", "-t", &format!("{image}:2")]);
    let log = log_since(before);
    assert_eq!(
        uploads(&log, &repo),
        (2, 1),
        "the app layer's blob and the config, then the manifest:\n{}",
        log.lines()
            .filter(|l| l.contains("\"PUT ") || l.contains("\"POST "))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The frontend image of `host`, pushed to the local registry: one image
/// for every engine, as users get it, so the helper steps' cache keys match
/// across engines.
/// `suffix` makes another image of the same code (see
/// [`crate::frontend::frontend_image_with`]).
fn published_frontend(host: &str, suffix: &[u8]) -> String {
    let local = frontend_image_with(host, suffix);
    let name = format!("strata-it/{}", local.replace(':', "-frontend:"));
    published(host, &local, &name)
}

/// `image` of `host` pushed to the local registry as `name`: the base too
/// must be one image on both engines (each engine loaded the test base
/// from a tarball, under its own manifest digest), as a registry base is.
fn published(host: &str, image: &str, name: &str) -> String {
    let (local, remote) = (image.to_string(), format!("{REGISTRY}/{name}"));
    run_ok(docker(host).args(["tag", &local, &remote])).stdout();
    run_ok(docker(host).args(["push", &remote])).stdout();
    remote
}

/// Prunes an engine's build cache: a fresh builder, as on a new CI runner.
fn prune(host: &str) {
    run_ok(docker(host).args(["builder", "prune", "-af"])).stdout();
}

/// Asserts what an imported cache gives a pruned builder: every layer step
/// is found in the cache (no run layer re-runs, no model is re-read or
/// re-copied).
fn assert_reused(progress: &str, what: &str) {
    let (ran, cached) = steps(progress);
    for run_layer in ["system", "python-deps"] {
        assert!(
            cached.contains(run_layer),
            "{what}: `{run_layer}` was not found in the cache: ran {ran:?}\n{progress}"
        );
    }
    assert!(
        ran.is_empty(),
        "{what}: steps ran again: {ran:?}\n{progress}"
    );
}

/// Docker 28.5 exports its cache to the registry and to a directory; the
/// second, fresh Docker 28.5 builder (pruned, so the frontend image is new
/// to it, as on a new CI runner) imports each and runs no step again (no
/// pip re-run, no model re-copy) and gives the same layers. The export is
/// fresh too: the content is new to the exporting engine, so its helpers
/// run there and their records reach the cache from that run.
#[test]
fn a_fresh_engine_reuses_registry_and_local_caches() {
    let _engines = crate::util::engine_lock();
    let (Some(h28), Some(fresh)) = (engine("d28"), engine("d28b")) else {
        return;
    };
    let cache = format!("{REGISTRY}/{}", repo("cache"));
    let local = tempfile::tempdir().unwrap();
    // A frontend image new to both engines, as after a strata release: the
    // exporter runs every helper (no record of its comes from an older
    // cache) and the importer pulls the image in this build.
    let syntax = published_frontend(&h28, format!("\0{cache}").as_bytes());
    let base = published(&h28, BASE, "strata-it/debian:bookworm");
    let (_tmp, dir) = tts();
    // Content new to both engines, so the export is this run's.
    std::fs::write(dir.join("src/f5_tts_api/extra.py"), format!("# {cache}\n")).unwrap();
    build_with(
        &h28,
        &syntax,
        &base,
        &dir,
        &[
            &format!("--cache-to=type=registry,ref={cache},mode=max"),
            &format!(
                "--cache-to=type=local,dest={},mode=max",
                local.path().display()
            ),
            "-t",
            "strata-it-cache:src",
        ],
    );
    // Both engines build on the same registry base: the test base loaded
    // into each engine from a tarball has another manifest digest on each,
    // so the run layers' cache keys would differ (as in a trial run of the
    // benchmark, where every `RUN` re-ran on the cold runner).
    for (kind, from) in [
        ("registry", format!("type=registry,ref={cache}")),
        (
            "local",
            format!("type=local,src={}", local.path().display()),
        ),
    ] {
        prune(&fresh);
        let progress = build_with(
            &fresh,
            &syntax,
            &base,
            &dir,
            &[
                &format!("--cache-from={from}"),
                "-t",
                &format!("strata-it-cache:{kind}"),
            ],
        );
        assert_reused(&progress, &format!("--cache-from {kind} on d28b"));
        let tag = format!("strata-it-cache:{kind}");
        assert_eq!(
            layers(&fresh, &tag)[..],
            layers(&h28, "strata-it-cache:src")[..],
            "--cache-from {kind}: the same layers on the fresh builder"
        );
    }
    // This run's frontend image is of no use to another run.
    let local = syntax.rsplit_once('/').map_or(&*syntax, |(_, n)| n);
    let _ = docker(&h28).args(["rmi", &syntax]).output();
    let _ = docker(&h28)
        .args(["rmi", &local.replace("-frontend:", ":")])
        .output();
}

/// Docker 20.10 (graphdriver store): inline cache in a pushed image, then
/// a pruned builder imports it: every layer step is `CACHED` (no run layer
/// re-runs, no model is re-copied), the same layers. The fallback writes
/// each copy layer with one helper exec onto the chain, keyed by the chain
/// and its sources only, so the inline cache (min mode: the image's own
/// chain) holds it. What runs again is the record step of each copy layer
/// (`[strata] record ID`: it re-hashes the layer's inputs for the history
/// and writes their paths, no content), since records are not image
/// layers and an inline cache holds nothing else; the image's config is
/// the same.
#[test]
fn inline_cache_on_docker_20() {
    let _engines = crate::util::engine_lock();
    let Some(h20) = engine("d20") else { return };
    let image = format!("{REGISTRY}/{}:1", repo("inline"));
    let (_tmp, dir) = tts();
    std::fs::write(dir.join("src/f5_tts_api/extra.py"), format!("# {image}\n")).unwrap();
    build(
        &h20,
        &dir,
        &["--cache-to=type=inline", "--push", "-t", &image],
    );
    prune(&h20);
    let progress = build(
        &h20,
        &dir,
        &[&format!("--cache-from={image}"), "-t", "strata-it-inline:2"],
    );
    // No layer step runs, not even after being reported CACHED for the
    // image (the earlier layout re-ran every copy helper to read its record,
    // re-copying its layer: `steps` counts that as a run).
    assert_reused(&progress, "inline cache on d20");
    let (_, cached) = steps(&progress);
    assert_eq!(
        cached,
        TTS_LAYERS.iter().map(|s| s.to_string()).collect(),
        "every layer step reported CACHED:\n{progress}"
    );
    let records_run: BTreeSet<&str> = progress
        .lines()
        .filter_map(|l| l.split_once(" [strata] record ").map(|(_, id)| id))
        .collect();
    eprintln!("inline cache on d20: record steps run (re-hash, no copy): {records_run:?}");
    assert_eq!(
        layers(&h20, "strata-it-inline:2"),
        layers(&h20, &image),
        "the same layers from the inline cache"
    );
    assert_eq!(
        records(&h20, "strata-it-inline:2"),
        records(&h20, &image),
        "the same history records from the inline cache"
    );
}

/// Each history entry's `created_by` and comment (the strata records),
/// newest first.
fn records(host: &str, image: &str) -> String {
    run_ok(
        docker(host)
            .args([
                "history",
                "--no-trunc",
                "--format",
                "{{.CreatedBy}} | {{.Comment}}",
            ])
            .arg(image),
    )
    .stdout()
}
