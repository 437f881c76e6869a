//! A remote builder: Docker 26.1 listening only on a loopback TCP port
//! (`d26r` in `integration/env.sh`), reached through a `docker context`
//! from a client whose build context is on the client's side. The frontend
//! builds, the context travels over the API, and reuse holds.

use std::path::Path;
use std::process::Command;

use crate::frontend::{BASE, TTS_LAYERS, frontend_image, tts};
use crate::matrix::steps;
use crate::util::{engine, run_ok, with_fault_retry};

/// A docker client with its own config directory (holding the context and
/// the buildx plugin) and no DOCKER_HOST: it reaches the engine only
/// through the context.
struct Client {
    config: tempfile::TempDir,
}

impl Client {
    fn new(name: &str, host: &str) -> Self {
        let config = tempfile::tempdir().unwrap();
        let home = std::env::var("DOCKER_CONFIG")
            .unwrap_or_else(|_| format!("{}/.docker", std::env::var("HOME").unwrap()));
        std::os::unix::fs::symlink(
            Path::new(&home).join("cli-plugins"),
            config.path().join("cli-plugins"),
        )
        .unwrap();
        let client = Self { config };
        run_ok(
            client
                .docker()
                .args(["context", "create", name, "--docker"])
                .arg(format!("host={host}")),
        );
        client
    }

    fn docker(&self) -> Command {
        let mut c = Command::new("docker");
        c.env_remove("DOCKER_HOST")
            .env("DOCKER_CONFIG", self.config.path())
            .env("BUILDX_NO_DEFAULT_ATTESTATIONS", "1");
        c
    }
}

#[test]
fn a_remote_docker_26_over_loopback_tcp_builds_and_reuses() {
    let _engines = crate::util::engine_lock();
    let Some(host) = engine("d26r") else { return };
    assert!(host.starts_with("tcp://127.0.0.1:"), "{host}");
    let syntax = frontend_image(&host);
    let client = Client::new("strata-it-remote", &host);
    let (_tmp, dir) = tts();
    let build = |tag: &str| {
        let out = with_fault_retry(&format!("remote build {tag}"), || {
            client
                .docker()
                .args(["--context", "strata-it-remote", "buildx", "build"])
                .args(["--builder", "strata-it-remote", "--progress=plain"])
                .args(["-f", "strata.toml"])
                .arg(format!("--build-arg=BASE_IMAGE={BASE}"))
                .arg(format!("--build-arg=BUILDKIT_SYNTAX={syntax}"))
                .args(["--load", "-t", tag, "."])
                .current_dir(&dir)
                .output()
                .unwrap()
        });
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "remote build {tag}:\n{text}");
        text
    };
    let layers = |tag: &str| -> Vec<String> {
        let out = client
            .docker()
            .args(["--context", "strata-it-remote", "image", "inspect", tag])
            .args(["--format", "{{json .RootFS.Layers}}"])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let first = build("strata-it-remote:1");
    assert!(first.contains("[strata] layer app"), "{first}");
    let l1 = layers("strata-it-remote:1");
    assert!(l1.len() >= TTS_LAYERS.len());

    // An app change on the client: only the app layer's step runs, and only
    // the app layer (the last) changes.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::fs::write(
        dir.join("src/f5_tts_api/__init__.py"),
        format!("VERSION = \"0.3.0\"  # {t}\n"),
    )
    .unwrap();
    let second = build("strata-it-remote:2");
    let (ran, _) = steps(&second);
    assert_eq!(ran.into_iter().collect::<Vec<_>>(), ["app"], "{second}");
    let l2 = layers("strata-it-remote:2");
    assert_eq!(l1.len(), l2.len());
    let differ: Vec<usize> = (0..l1.len()).filter(|&i| l1[i] != l2[i]).collect();
    assert_eq!(differ, [l1.len() - 1], "only the app layer changes");
}
