//! The release: static binaries (statically linked, as `FROM scratch` needs) for x86_64 and aarch64 (`release/build.sh`),
//! the frontend image built from them by strata (`release/frontend.sh`,
//! `release/frontend.toml`) and pushed to the loopback registry, then
//! pulled by builders that never saw it: the remote builder `d26r` and a
//! pruned `d28`. The aarch64 build takes minutes: `integration/run.sh`
//! makes `dist/` before the tests, and they build it here only when it is
//! missing or stale (once per run).

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use serde_json::Value;

use crate::frontend::{REPO, frontend_image};
use crate::util::{REGISTRY, docker, engine, engine_lock, in_ci, nonce, run_ok, tool};

/// The frontend image pushed to the loopback registry.
struct Pushed {
    /// `127.0.0.1:5000/release-it/strata-…`, unique per run.
    repository: String,
    /// Cargo.toml's version: the `X.Y.Z` tag.
    version: String,
    /// The index digest `release/frontend.sh` printed.
    digest: String,
}

/// `strata --version` of `bin`, or `None` when it does not run.
fn version_of(bin: &Path) -> Option<String> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `dist/` with both architectures' binaries of the commit under test: as
/// `integration/run.sh` left it, or built now (`release/build.sh`) when its
/// x86_64 binary names another version or commit. (Not the same bytes as
/// the binary under test: `cargo test` builds strata with the features its
/// dev-dependencies add.) `false`: the aarch64 toolchain is missing (a
/// failure in CI).
fn dist() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let dist = Path::new(REPO).join("dist");
        let under_test = version_of(Path::new(env!("CARGO_BIN_EXE_strata")));
        let fresh = under_test.is_some()
            && version_of(&dist.join("strata-linux-amd64")) == under_test
            && dist.join("strata-linux-arm64").is_file()
            && dist.join("strata-normalize-linux-arm64").is_file();
        if fresh {
            return true;
        }
        let ready = Command::new("bash")
            .arg(format!("{REPO}/release/cross.sh"))
            .arg("check")
            .status()
            .is_ok_and(|s| s.success());
        if !ready {
            assert!(
                !in_ci(),
                "no aarch64 toolchain or qemu, and CI=true: run `release/cross.sh` (integration/run.sh does)"
            );
            eprintln!("skipping: no aarch64 toolchain or qemu (release/cross.sh installs them)");
            return false;
        }
        let start = Instant::now();
        run_ok(Command::new("bash").args([
            &format!("{REPO}/release/build.sh"),
            "x86_64",
            "aarch64",
        ]));
        eprintln!(
            "release: release/build.sh x86_64 aarch64 took {:.0?}",
            start.elapsed()
        );
        true
    })
}

/// Runs `release/frontend.sh --no-build ARGS` with its own cache root;
/// returns the index digest it printed.
fn frontend_sh(args: &[&str]) -> String {
    let cache = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let out = run_ok(
        Command::new("bash")
            .arg(format!("{REPO}/release/frontend.sh"))
            .arg("--no-build")
            .args(args)
            .env("STRATA_CACHE_DIR", cache.path()),
    );
    eprintln!(
        "release: release/frontend.sh {args:?} took {:.0?}",
        start.elapsed()
    );
    let digest = out.stdout().trim().to_owned();
    assert!(digest.starts_with("sha256:"), "{digest}");
    digest
}

/// The frontend image of this run's binaries in the loopback registry,
/// pushed once per run; `None` when something it needs is missing (a
/// failure in CI).
fn pushed() -> Option<&'static Pushed> {
    static PUSHED: OnceLock<Option<Pushed>> = OnceLock::new();
    PUSHED
        .get_or_init(|| {
            if !crate::registry::shared_registry() || tool("skopeo").is_none() || !dist() {
                return None;
            }
            let repository = format!("{REGISTRY}/release-it/strata-{}", nonce());
            let digest = frontend_sh(&[&repository]);
            let version = env!("CARGO_PKG_VERSION").to_owned();
            Some(Pushed {
                repository,
                version,
                digest,
            })
        })
        .as_ref()
}

/// `skopeo inspect ARGS` of the loopback registry, as JSON (`--raw`: the
/// manifest or index bytes).
fn skopeo(args: &[&str]) -> Vec<u8> {
    run_ok(
        Command::new("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .args(args),
    )
    .0
    .stdout
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", strata::plan::Digest::of(bytes).hex())
}

#[test]
fn the_pushed_frontend_is_an_amd64_and_arm64_index_under_every_version_tag() {
    let Some(p) = pushed() else { return };
    let mut parts = p.version.split('.');
    let (x, y) = (parts.next().unwrap(), parts.next().unwrap());
    for tag in [p.version.clone(), format!("{x}.{y}"), x.to_owned()] {
        let raw = skopeo(&["--raw", &format!("docker://{}:{tag}", p.repository)]);
        assert_eq!(sha256(&raw), p.digest, "tag {tag}");
    }
    let raw = skopeo(&["--raw", &format!("docker://{}:{}", p.repository, p.version)]);
    let index: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        crate::util::index_platforms(&index),
        ["linux/amd64", "linux/arm64"]
    );
    let revision = run_ok(Command::new("git").args(["-C", REPO, "rev-parse", "HEAD"]))
        .stdout()
        .trim()
        .to_owned();
    // The OCI labels are the index's annotations too.
    let annotations = &index["annotations"];
    assert_eq!(annotations["org.opencontainers.image.version"], p.version);
    assert_eq!(annotations["org.opencontainers.image.revision"], revision);
    assert_eq!(
        annotations["org.opencontainers.image.licenses"],
        "Apache-2.0"
    );
    for arch in ["amd64", "arm64"] {
        let config: Value = serde_json::from_slice(&skopeo(&[
            "--config",
            "--override-arch",
            arch,
            &format!("docker://{}:{}", p.repository, p.version),
        ]))
        .unwrap();
        assert_eq!(config["architecture"], arch);
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!(["/strata", "frontend"])
        );
        let labels = &config["config"]["Labels"];
        assert_eq!(labels["moby.buildkit.frontend.network.none"], "true");
        assert_eq!(
            labels["moby.buildkit.frontend.caps"],
            "moby.buildkit.frontend.inputs,moby.buildkit.frontend.subrequests,moby.buildkit.frontend.contexts"
        );
        assert_eq!(labels["org.opencontainers.image.version"], p.version);
        assert_eq!(labels["org.opencontainers.image.revision"], revision);
        assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");
    }
    // A second build, with a cold cache, gives the same index.
    assert_eq!(frontend_sh(&[]), p.digest);
}

#[test]
fn the_arm64_binary_of_the_pushed_frontend_prints_its_version_under_qemu() {
    let Some(p) = pushed() else { return };
    let expected = run_ok(Command::new(env!("CARGO_BIN_EXE_strata")).arg("--version")).stdout();
    let image = format!("{}:{}", p.repository, p.version);
    // The arm64 image's /strata, taken out of its first layer: an aarch64
    // ELF (e_machine 183) that qemu-aarch64 runs.
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("arm64");
    run_ok(Command::new("skopeo").args([
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--override-arch",
        "arm64",
        &format!("docker://{image}"),
        &format!("dir:{}", copy.display()),
    ]));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(copy.join("manifest.json")).unwrap()).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let blob = std::fs::File::open(copy.join(layer.strip_prefix("sha256:").unwrap())).unwrap();
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(blob));
    let bin = tmp.path().join("strata-arm64");
    let mut found = false;
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        if &*e.path_bytes() == b"strata" {
            e.unpack(&bin).unwrap();
            found = true;
        }
    }
    assert!(found, "/strata in the arm64 image's first layer");
    let elf = std::fs::read(&bin).unwrap();
    assert_eq!(
        u16::from_le_bytes([elf[0x12], elf[0x13]]),
        183,
        "an aarch64 ELF"
    );
    let qemu = tool("qemu-aarch64-static").expect("qemu-user-static (release/cross.sh)");
    let out = run_ok(Command::new(qemu).arg(&bin).arg("--version"));
    assert_eq!(out.stdout(), expected);

    // And as Docker runs it (binfmt_misc, release/cross.sh).
    let _engines = engine_lock();
    let Some(host) = engine("d28") else { return };
    let out = run_ok(docker(&host).args([
        "run",
        "--rm",
        "--pull",
        "always",
        "--platform",
        "linux/arm64",
        "--entrypoint",
        "/strata",
        &image,
        "--version",
    ]));
    assert_eq!(out.stdout(), expected);
    let _ = docker(&host).args(["image", "rm", &image]).output();
}

/// A copy-only spec whose first line names `syntax`.
fn copy_spec(dir: &Path, syntax: &str) {
    std::fs::create_dir_all(dir.join("app")).unwrap();
    std::fs::write(dir.join("app/main.py"), "print('release')\n").unwrap();
    std::fs::write(dir.join("app/data.bin"), crate::util::noise(40_000, 21)).unwrap();
    std::fs::write(
        dir.join("strata.toml"),
        format!(
            "# syntax={syntax}\nversion = 1\n\n[image]\nfrom = \"scratch\"\n\n\
             [[layer]]\nname = \"data\"\ncopy = [{{ from = \"app/data.bin\", to = \"/app/data.bin\" }}]\n\n\
             [[layer]]\nname = \"app\"\ncopy = [{{ from = \"app/main.py\", to = \"/app/main.py\" }}]\n"
        ),
    )
    .unwrap();
}

/// Builds `dir` on `host` (with `BUILDKIT_SYNTAX=frontend` when given,
/// else through the spec's `# syntax=`), loads it as `tag` and returns its
/// layer diffIDs.
fn build_layers(host: &str, dir: &Path, frontend: Option<&str>, tag: &str) -> Vec<String> {
    let out = crate::util::with_fault_retry(&format!("release build {tag}"), || {
        let mut cmd = docker(host);
        cmd.args(["buildx", "build", "--progress=plain", "-f", "strata.toml"]);
        if let Some(f) = frontend {
            cmd.arg(format!("--build-arg=BUILDKIT_SYNTAX={f}"));
        }
        cmd.args(["--load", "-t", tag, "."])
            .current_dir(dir)
            .output()
            .unwrap()
    });
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "build {tag} on {host}:\n{text}");
    assert!(
        text.contains("[strata "),
        "the frontend names itself:\n{text}"
    );
    let layers = run_ok(docker(host).args([
        "image",
        "inspect",
        "--format",
        "{{json .RootFS.Layers}}",
        tag,
    ]));
    let _ = docker(host).args(["image", "rm", tag]).output();
    serde_json::from_str(&layers.stdout()).unwrap()
}

#[test]
fn a_spec_naming_the_pushed_frontend_builds_on_a_remote_builder_and_a_pruned_engine() {
    let Some(p) = pushed() else { return };
    let _engines = engine_lock();
    let (Some(remote), Some(d28)) = (engine("d26r"), engine("d28")) else {
        return;
    };
    let by_tag = format!("{}:{}", p.repository, p.version);
    let by_digest = format!("{by_tag}@{}", p.digest);
    let tmp = tempfile::tempdir().unwrap();
    for (name, host) in [("d26r", &remote), ("d28", &d28)] {
        if name == "d28" {
            // Nothing of an earlier build or pull: no build cache, no
            // frontend image (its repository is new to every run anyway).
            run_ok(docker(host).args(["builder", "prune", "-af"]));
            let _ = docker(host).args(["image", "rm", &by_tag]).output();
        }
        let local = frontend_image(host);
        let mut seen = Vec::new();
        for (i, syntax) in [&by_tag, &by_digest].into_iter().enumerate() {
            let dir = tmp.path().join(format!("{name}-{i}"));
            copy_spec(&dir, syntax);
            let pulled = build_layers(host, &dir, None, &format!("release-it:{name}-{i}"));
            let tagged = build_layers(
                host,
                &dir,
                Some(&local),
                &format!("release-it:{name}-local-{i}"),
            );
            assert_eq!(pulled.len(), 2, "{name} {syntax}");
            assert_eq!(
                pulled, tagged,
                "{name}: {syntax} against the locally tagged frontend"
            );
            seen.push(pulled);
        }
        assert_eq!(seen[0], seen[1], "{name}: by tag and by digest");
    }
}

/// Built with `release/env.sh` (an explicit target, `+crt-static`), the
/// binaries under test are the release binaries, and `file` calls them
/// statically linked. A plain `cargo test` builds ordinary host binaries:
/// nothing to check then.
#[test]
fn the_release_binaries_are_statically_linked() {
    let bins = [
        env!("CARGO_BIN_EXE_strata"),
        env!("CARGO_BIN_EXE_strata-normalize"),
    ];
    if !bins[0].contains("-unknown-linux-gnu/release/") {
        eprintln!("skipping: not the release build (`. release/env.sh` first)");
        return;
    }
    if tool("file").is_none() {
        return;
    }
    for bin in bins {
        let text = run_ok(Command::new("file").args(["-L", bin])).stdout();
        assert!(
            text.contains("statically linked") || text.contains("static-pie linked"),
            "{bin} is not statically linked: {text}"
        );
    }
}
