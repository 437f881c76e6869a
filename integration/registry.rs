//! `strata build --output registry:REF` and registry bases against real
//! registries: the shared loopback `docker-registry`
//! on 127.0.0.1:5000 (repositories `registry-it/…`, unique per run), and
//! registries of our own (a temp directory, a free port) where a test must
//! kill one or turn on htpasswd auth.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{
    Ctx, REGISTRY, Run, assert_ok, engine, engine_lock, log_len, log_since, noise, nonce, ok,
    run_ok, tool,
};

/// A repository name no other run uses.
fn unique(name: &str) -> String {
    format!("registry-it/{name}-{}", nonce())
}

/// Runs `strata` with an empty Docker config (no credentials of the
/// machine's user leak in).
fn strata(ctx: &Ctx, args: &[&str]) -> Run {
    let docker_config = ctx.outside("docker-config");
    std::fs::create_dir_all(&docker_config).unwrap();
    ctx.strata_env(args, &[("DOCKER_CONFIG", docker_config.to_str().unwrap())])
}

/// A context with a weights layer and an app layer.
fn two_layer_context(ctx: &Ctx, from: &str, app: &str) {
    ctx.spec(&format!(
        "version = 1\n[image]\nfrom = \"{from}\"\nplatforms = [\"linux/amd64\"]\ncmd = [\"/app/main.py\"]\n\n\
         [[layer]]\nname = \"weights\"\ncopy = [{{ from = \"weights\", to = \"/models\" }}]\n\n\
         [[layer]]\nname = \"app\"\ncopy = [{{ from = \"app\", to = \"/app\" }}]\n"
    ));
    ctx.write("weights/model.bin", noise(3 << 20, 7));
    ctx.write("app/main.py", app);
}

fn skopeo_inspect(skopeo: &Path, reference: &str) -> Value {
    let o = run_ok(Command::new(skopeo).args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]));
    serde_json::from_slice(&o.0.stdout).unwrap()
}

/// The registry's access-log lines about `repo` written after `from` bytes.
fn log_lines(from: u64, repo: &str) -> Vec<String> {
    log_since(from)
        .lines()
        .filter(|l| l.starts_with("127.0.0.1 - ") && l.contains(&format!(" /v2/{repo}/")))
        .map(str::to_owned)
        .collect()
}

/// Blob uploads the registry committed (the final `PUT …?digest=`).
fn committed_uploads(lines: &[String]) -> usize {
    lines
        .iter()
        .filter(|l| {
            l.contains("\"PUT /v2/") && l.contains("/blobs/uploads/") && l.contains("digest=sha256")
        })
        .count()
}

fn manifest_puts(lines: &[String]) -> usize {
    lines
        .iter()
        .filter(|l| l.contains("\"PUT /v2/") && l.contains("/manifests/"))
        .count()
}

/// Registry available? (a failure in CI, a skip elsewhere).
pub(crate) fn shared_registry() -> bool {
    let up = Command::new("curl")
        .args([
            "-fsS",
            "-m",
            "5",
            "-o",
            "/dev/null",
            &format!("http://{REGISTRY}/v2/"),
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !up {
        assert!(
            !crate::util::in_ci(),
            "the registry on {REGISTRY} does not answer"
        );
        eprintln!("skipping: no registry on {REGISTRY}");
    }
    up
}

#[test]
fn push_then_pull_back_with_skopeo_and_docker() {
    if !shared_registry() {
        return;
    }
    let Some(skopeo) = tool("skopeo") else { return };
    let ctx = Ctx::new();
    two_layer_context(&ctx, "scratch", "print('v1')\n");
    let repo = unique("pull-back");
    let reference = format!("{REGISTRY}/{repo}:v1");
    let run = strata(
        &ctx,
        &["build", "--output", &format!("registry:{reference}"), "."],
    );
    let digest = ok(&run);
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    // Per-blob lines on stderr: every blob uploaded on a first push.
    let err = run.stderr();
    for what in ["weights", "app", "image config"] {
        assert!(
            err.lines()
                .any(|l| l.starts_with(what) && l.contains("uploaded")),
            "{what} uploaded:\n{err}"
        );
    }

    // skopeo reads it back: same digest, and a copy into an OCI layout has
    // the same manifest bytes as a local build of the same spec.
    let inspected = skopeo_inspect(&skopeo, &reference);
    assert_eq!(inspected["Digest"], digest);
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 2);
    let local = ok(&strata(
        &ctx,
        &[
            "build",
            "--output",
            &format!("oci-layout:{}:v1", ctx.outside("local").display()),
            ".",
        ],
    ));
    assert_eq!(local, digest, "a push and a local build give one image");
    let back = ctx.outside("back");
    run_ok(Command::new(&skopeo).args([
        "copy",
        "--src-tls-verify=false",
        // The weights layer is stored uncompressed; keep it so.
        "--dest-oci-accept-uncompressed-layers",
        "--preserve-digests",
        &format!("docker://{reference}"),
        &format!("oci:{}:v1", back.display()),
    ]));
    let index: Value =
        serde_json::from_slice(&std::fs::read(back.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest);

    // Docker pulls it (loopback registries are insecure by default there).
    let _engines = engine_lock();
    let Some(docker) = tool("docker") else { return };
    let Some(host) = engine("d28") else { return };
    let docker_cmd = |args: &[&str]| {
        Command::new(&docker)
            .args(args)
            .env("DOCKER_HOST", &host)
            .output()
            .unwrap()
    };
    assert_ok("docker pull", docker_cmd(&["pull", &reference]));
    let o = docker_cmd(&[
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        &reference,
    ]);
    let repo_digests = String::from_utf8_lossy(&o.stdout).into_owned();
    let _ = docker_cmd(&["rmi", &reference]);
    assert!(
        repo_digests.contains(&format!("{REGISTRY}/{repo}@{digest}")),
        "{repo_digests}"
    );
}

#[test]
fn a_second_push_after_a_code_change_uploads_one_layer_config_and_manifest() {
    if !shared_registry() {
        return;
    }
    let ctx = Ctx::new();
    two_layer_context(&ctx, "scratch", "print('v1')\n");
    let repo = unique("repush");
    let first = ok(&strata(
        &ctx,
        &[
            "build",
            "--tag",
            &format!("{REGISTRY}/{repo}:v1"),
            "--push",
            ".",
        ],
    ));
    ctx.write("app/main.py", "print('v2')\n");
    // `strata plan --against registry:REF` reads the pushed history.
    let plan: Value = serde_json::from_str(&ok(&strata(
        &ctx,
        &[
            "plan",
            "--format",
            "json",
            "--against",
            &format!("registry:{REGISTRY}/{repo}:v1"),
            ".",
        ],
    )))
    .unwrap();
    let status = |id: &str| {
        plan["platforms"][0]["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["id"] == id)
            .map(|l| l["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(status("weights").as_deref(), Some("reused"), "{plan}");
    assert_eq!(status("app").as_deref(), Some("rebuilt"), "{plan}");
    let before = log_len();
    let run = strata(
        &ctx,
        &[
            "build",
            "--tag",
            &format!("{REGISTRY}/{repo}:v2"),
            "--push",
            ".",
        ],
    );
    let second = ok(&run);
    assert_ne!(first, second);
    // strata's account: the weights exist, the app layer and config upload.
    let err = run.stderr();
    let line = |what: &str| {
        err.lines()
            .find(|l| {
                l.starts_with(what)
                    && (l.contains("exists") || l.contains("uploaded") || l.contains("mounted"))
            })
            .unwrap_or_else(|| panic!("no push line for {what}:\n{err}"))
            .to_owned()
    };
    assert!(line("weights").contains("exists"), "{err}");
    assert!(line("app").contains("uploaded"), "{err}");
    assert!(line("image config").contains("uploaded"), "{err}");
    // The registry's account, from its access log: two committed uploads
    // (the app layer and the config) and one manifest.
    std::thread::sleep(Duration::from_millis(300));
    let lines = log_lines(before, &repo);
    assert_eq!(committed_uploads(&lines), 2, "{lines:#?}");
    assert_eq!(manifest_puts(&lines), 1, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"PUT /v2/") && l.contains("/manifests/v2 "))
    );

    // Another repository of the same registry: every blob is mounted, none uploaded.
    let other = unique("repush-mount");
    let before = log_len();
    let run = strata(
        &ctx,
        &[
            "build",
            "--output",
            &format!("registry:{REGISTRY}/{other}:v2"),
            ".",
        ],
    );
    assert_eq!(ok(&run), second);
    assert_eq!(
        run.stderr().matches(" mounted ").count(),
        3,
        "{}",
        run.stderr()
    );
    std::thread::sleep(Duration::from_millis(300));
    let lines = log_lines(before, &other);
    assert_eq!(committed_uploads(&lines), 0, "{lines:#?}");
    assert_eq!(
        lines.iter().filter(|l| l.contains("mount=sha256")).count(),
        3,
        "{lines:#?}"
    );
}

#[test]
fn a_registry_base_gives_the_same_image_as_an_oci_layout_copy_and_follows_the_lock() {
    if !shared_registry() {
        return;
    }
    // The base: an image with a directory layer, in a layout and in the registry.
    let base_ctx = Ctx::new();
    base_ctx.spec(
        "version = 1\n[image]\nfrom = \"scratch\"\nplatforms = [\"linux/amd64\"]\nenv = { BASE = \"1\" }\n\n\
         [[layer]]\nname = \"root\"\ncopy = [{ from = \"root\", to = \"/\" }]\n",
    );
    base_ctx.write("root/etc/os-release", "NAME=base\n");
    base_ctx.write("root/app/.keep", "");
    let layout = base_ctx.outside("base-layout");
    let base_digest = ok(&strata(
        &base_ctx,
        &[
            "build",
            "--output",
            &format!("oci-layout:{}:v1", layout.display()),
            ".",
        ],
    ));
    let base_repo = unique("base");
    let base_ref = format!("{REGISTRY}/{base_repo}:v1");
    assert_eq!(
        ok(&strata(
            &base_ctx,
            &["build", "--output", &format!("registry:{base_ref}"), "."]
        )),
        base_digest
    );

    // The same spec on either copy of the base: the same config and layers;
    // the manifests differ only in the base annotations (a registry base is
    // named, a layout is not).
    let from_layout = Ctx::new();
    two_layer_context(
        &from_layout,
        &format!("oci-layout:{}:v1", layout.display()),
        "print(1)\n",
    );
    let via_layout = ok(&strata(
        &from_layout,
        &[
            "build",
            "--output",
            &format!("oci-layout:{}:out", from_layout.outside("out").display()),
            ".",
        ],
    ));
    let ctx = Ctx::new();
    two_layer_context(&ctx, &base_ref, "print(1)\n");
    let run = strata(
        &ctx,
        &[
            "build",
            "--output",
            &format!("oci-layout:{}:out", ctx.outside("out").display()),
            ".",
        ],
    );
    let via_registry = ok(&run);
    let (lm, lc) = layout_image(&from_layout.outside("out"), "out");
    let (rm, rc) = layout_image(&ctx.outside("out"), "out");
    assert_eq!(lc, rc, "registry base vs oci-layout base: config");
    assert_eq!(
        lm["layers"], rm["layers"],
        "registry base vs oci-layout base: layers"
    );
    assert_eq!(
        lm["annotations"],
        serde_json::json!({ "org.opencontainers.image.base.digest": base_digest })
    );
    assert_eq!(
        rm["annotations"],
        serde_json::json!({
            "org.opencontainers.image.base.digest": base_digest,
            "org.opencontainers.image.base.name": base_ref,
        })
    );
    assert_ne!(via_registry, via_layout);
    assert!(
        run.stderr().contains("no pin in strata.lock"),
        "{}",
        run.stderr()
    );
    // The base blobs are in the cache root, content-addressed.
    let m: Value = serde_json::from_slice(
        &std::fs::read(ctx.cache().join("blobs/sha256").join(&base_digest[7..])).unwrap(),
    )
    .unwrap();
    assert!(
        ctx.cache()
            .join("blobs/sha256")
            .join(&m["layers"][0]["digest"].as_str().unwrap()[7..])
            .is_file()
    );

    // strata lock pins the manifest; a new image under the tag does not move
    // the build until `strata lock --update`.
    ok(&strata(&ctx, &["lock", "."]));
    let lock = std::fs::read_to_string(ctx.path().join("strata.lock")).unwrap();
    assert!(
        lock.contains(&format!("reference = \"{base_ref}\"")),
        "{lock}"
    );
    assert!(
        lock.contains(&format!("digest = \"{base_digest}\"")),
        "{lock}"
    );
    assert!(
        lock.contains(&format!("\"linux/amd64\" = \"{base_digest}\"")),
        "{lock}"
    );
    base_ctx.write("root/etc/os-release", "NAME=base2\n");
    let base2 = ok(&strata(
        &base_ctx,
        &["build", "--output", &format!("registry:{base_ref}"), "."],
    ));
    assert_ne!(base2, base_digest);
    let out = |c: &Ctx| format!("oci-layout:{}:out", c.outside("out").display());
    let run = strata(&ctx, &["build", "--locked", "--output", &out(&ctx), "."]);
    assert_eq!(ok(&run), via_registry, "the pinned base is used");
    assert!(!run.stderr().contains("no pin"), "{}", run.stderr());
    ok(&strata(&ctx, &["lock", "--update", "."]));
    let lock = std::fs::read_to_string(ctx.path().join("strata.lock")).unwrap();
    assert!(lock.contains(&base2), "{lock}");
    let moved = ok(&strata(
        &ctx,
        &["build", "--locked", "--output", &out(&ctx), "."],
    ));
    assert_ne!(moved, via_registry);
    let (mm, _) = layout_image(&ctx.outside("out"), "out");
    assert_eq!(
        mm["annotations"]["org.opencontainers.image.base.digest"],
        base2
    );
}

/// A `docker-registry` of our own: temp storage, a free port, optional
/// htpasswd auth. Killed on drop.
struct OwnRegistry {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
}

impl OwnRegistry {
    fn start(htpasswd: Option<(&str, &str)>) -> Option<Self> {
        let bin = tool("docker-registry")?;
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = htpasswd {
            // bcrypt, as the registry requires (apache2-utils' htpasswd).
            let out = Command::new(tool("htpasswd")?)
                .args(["-nbB", "-C", "4", user, password])
                .output()
                .expect("run htpasswd");
            assert!(out.status.success(), "htpasswd failed");
            std::fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: strata-it\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let mut me = Self {
            child: None,
            dir,
            port,
        };
        me.spawn(&bin);
        Some(me)
    }

    fn spawn(&mut self, bin: &Path) {
        let log = std::fs::File::create(self.dir.path().join("log")).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "own registry did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Bytes in unfinished uploads.
    fn upload_bytes(&self) -> u64 {
        fn walk(p: &Path, total: &mut u64) {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    let path = e.path();
                    if path.is_dir() {
                        walk(&path, total);
                    } else if path.file_name().is_some_and(|n| n == "data")
                        && path.to_string_lossy().contains("/_uploads/")
                    {
                        *total += e.metadata().map_or(0, |m| m.len());
                    }
                }
            }
        }
        let mut total = 0;
        walk(&self.dir.path().join("data"), &mut total);
        total
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn a_registry_that_dies_mid_upload_gives_a_clear_error_and_keeps_the_old_tag() {
    let Some(skopeo) = tool("skopeo") else { return };
    let Some(mut reg) = OwnRegistry::start(None) else {
        return;
    };
    let ctx = Ctx::new();
    two_layer_context(&ctx, "scratch", "print('v1')\n");
    let reference = format!("{}/registry-it/dies:latest", reg.host());
    let v1 = ok(&strata(
        &ctx,
        &["build", "--output", &format!("registry:{reference}"), "."],
    ));

    // A large incompressible layer (stored uncompressed): kill the registry
    // once part of it has arrived.
    ctx.write("weights/big.bin", noise(192 << 20, 11));
    let docker_config = ctx.outside("docker-config");
    let mut child = ctx
        .command(&["build", "--output", &format!("registry:{reference}"), "."])
        .env("DOCKER_CONFIG", &docker_config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut killed = false;
    while Instant::now() < deadline {
        if reg.upload_bytes() >= 8 << 20 {
            reg.kill();
            killed = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        killed,
        "the upload finished before the registry could be killed"
    );
    let run = Run(out);
    assert_eq!(run.code(), 2, "stderr:\n{}", run.stderr());
    let err = run.stderr();
    assert!(
        err.contains(&format!("error: registry {}", reg.host()))
            && err.contains("upload of blob sha256:"),
        "{err}"
    );
    assert!(err.contains("tried 4 times"), "{err}");
    assert!(
        run.stdout().is_empty(),
        "no digest on failure: {}",
        run.stdout()
    );

    // The registry comes back: the tag still names the first image.
    let bin = tool("docker-registry").unwrap();
    reg.spawn(&bin);
    assert_eq!(skopeo_inspect(&skopeo, &reference)["Digest"], v1);
    // And the push, run again, completes.
    let v2 = ok(&strata(
        &ctx,
        &["build", "--output", &format!("registry:{reference}"), "."],
    ));
    assert_ne!(v2, v1);
    assert_eq!(skopeo_inspect(&skopeo, &reference)["Digest"], v2);
}

#[test]
fn htpasswd_auth_takes_credentials_from_the_docker_config_and_never_prints_them() {
    let (user, password) = ("strata-it", "pw-Zq8v1-not-for-print");
    let Some(reg) = OwnRegistry::start(Some((user, password))) else {
        return;
    };
    let ctx = Ctx::new();
    two_layer_context(&ctx, "scratch", "print('auth')\n");
    let reference = format!("{}/registry-it/auth:v1", reg.host());

    // No credentials: refused, with a hint, exit 2.
    let run = strata(
        &ctx,
        &["build", "--output", &format!("registry:{reference}"), "."],
    );
    assert_eq!(run.code(), 2, "stderr:\n{}", run.stderr());
    assert!(run.stderr().contains("not authorized"), "{}", run.stderr());
    assert!(run.stderr().contains("docker login"), "{}", run.stderr());

    // A Docker config with `auths` (base64 user:password), as `docker login` writes.
    let config_dir = ctx.outside("docker-config");
    std::fs::create_dir_all(&config_dir).unwrap();
    let auth = base64_encode(format!("{user}:{password}").as_bytes());
    std::fs::write(
        config_dir.join("config.json"),
        format!(
            "{{\"auths\":{{\"{}\":{{\"auth\":\"{auth}\"}}}}}}",
            reg.host()
        ),
    )
    .unwrap();
    let run = strata(
        &ctx,
        &["build", "--output", &format!("registry:{reference}"), "."],
    );
    let digest = ok(&run);
    assert!(digest.starts_with("sha256:"));
    for text in [run.stdout(), run.stderr()] {
        assert!(
            !text.contains(password) && !text.contains(&auth),
            "credential printed:\n{text}"
        );
    }
    // A wrong password is refused and named by user, not by password.
    let bad = base64_encode(format!("{user}:wrong-{password}").as_bytes());
    std::fs::write(
        config_dir.join("config.json"),
        format!(
            "{{\"auths\":{{\"{}\":{{\"auth\":\"{bad}\"}}}}}}",
            reg.host()
        ),
    )
    .unwrap();
    let run = strata(
        &ctx,
        &[
            "build",
            "--output",
            &format!("registry:{}/registry-it/auth:v2", reg.host()),
            ".",
        ],
    );
    assert_eq!(run.code(), 2, "stderr:\n{}", run.stderr());
    assert!(run.stderr().contains("not authorized"), "{}", run.stderr());
    assert!(
        run.stderr().contains(&format!("as user `{user}`")),
        "{}",
        run.stderr()
    );
    for text in [run.stdout(), run.stderr()] {
        assert!(
            !text.contains(password) && !text.contains(&bad),
            "credential printed:\n{text}"
        );
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The manifest and config of `tag` in an OCI layout.
fn layout_image(dir: &Path, tag: &str) -> (Value, Value) {
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let desc = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap()
        .clone();
    let blob = |d: &Value| -> Value {
        let hex = &d["digest"].as_str().unwrap()[7..];
        serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()).unwrap()
    };
    let manifest = blob(&desc);
    let config = blob(&manifest["config"]);
    (manifest, config)
}

fn compression_spec(code: &str) -> String {
    format!(
        "version = 1\n[image]\nfrom = \"scratch\"\nplatforms = [\"linux/amd64\"]\n\n\
         [[layer]]\nname = \"weights\"\ncopy = [{{ from = \"weights\", to = \"/models\" }}]\n\n\
         [[layer]]\nname = \"code\"\ncopy = [{{ from = \"code\", to = \"/app\" }}]\ncompression = \"{code}\"\n\n\
         [[layer]]\nname = \"conf\"\ncopy = [{{ from = \"conf\", to = \"/etc/app\" }}]\ncompression = \"gzip\"\n\n\
         [[layer]]\nname = \"data\"\ncopy = [{{ from = \"data\", to = \"/data\" }}]\ncompression = \"none\"\n"
    )
}

#[test]
fn per_layer_compression_changes_only_that_blob_and_never_depends_on_threads() {
    let ctx = Ctx::new();
    ctx.spec(&compression_spec("zstd"));
    ctx.write("weights/model.bin", noise(6 << 20, 3));
    let text = "def handler(x):\n    return x * 2\n".repeat(40_000);
    ctx.write("code/main.py", &text);
    ctx.write("conf/app.toml", "workers = 4\n".repeat(1000));
    ctx.write("data/table.csv", "a,b,c\n1,2,3\n".repeat(50_000));
    let out = ctx.outside("out");
    let dest = |tag: &str| format!("oci-layout:{}:{tag}", out.display());
    let all = ok(&strata(&ctx, &["build", "--output", &dest("all"), "."]));
    let (manifest, config) = layout_image(&out, "all");
    let media: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert_eq!(
        media,
        [
            "application/vnd.oci.image.layer.v1.tar", // auto: noise is stored
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.layer.v1.tar",
        ]
    );
    let comments: Vec<&str> = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["comment"].as_str().unwrap())
        .collect();
    assert!(!comments[0].contains("compression="), "{comments:?}");
    assert!(comments[1].ends_with(" compression=zstd"), "{comments:?}");

    // A zstd image is a base like any other: its layers are read for the
    // parent directories of a copy layer (`/app` comes from the zstd layer).
    let on_top = Ctx::new();
    on_top.spec(&format!(
        "version = 1\n[image]\nfrom = \"oci-layout:{}:all\"\n\n\
         [[layer]]\nname = \"extra\"\ncopy = [{{ from = \"extra.py\", to = \"/app/extra.py\" }}]\n",
        out.display()
    ));
    on_top.write("extra.py", "x = 1\n");
    ok(&strata(
        &on_top,
        &[
            "build",
            "--output",
            &format!("oci-layout:{}:top", on_top.outside("top").display()),
            ".",
        ],
    ));

    // One rayon thread, a fresh cache: byte-identical blobs.
    let one = ctx.outside("one");
    let run = ctx.strata_env(
        &[
            "build",
            "--output",
            &format!("oci-layout:{}:one", one.display()),
            ".",
        ],
        &[
            ("RAYON_NUM_THREADS", "1"),
            ("STRATA_CACHE_DIR", ctx.outside("cache-1").to_str().unwrap()),
        ],
    );
    assert_eq!(ok(&run), all, "1 thread vs all threads");

    // zstd → gzip on the code layer: only its blob changes, no diffID does.
    ctx.spec(&compression_spec("gzip"));
    let run = strata(&ctx, &["build", "--output", &dest("gz"), "."]);
    ok(&run);
    let err = run.stderr();
    let built: Vec<&str> = err.lines().filter(|l| l.contains(" built ")).collect();
    assert_eq!(built.len(), 1, "{}", run.stderr());
    assert!(built[0].starts_with("code "), "{}", run.stderr());
    let (m2, c2) = layout_image(&out, "gz");
    assert_eq!(c2["rootfs"]["diff_ids"], config["rootfs"]["diff_ids"]);
    let digests = |m: &Value| -> Vec<String> {
        m["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_owned())
            .collect()
    };
    let (a, b) = (digests(&manifest), digests(&m2));
    assert_eq!(
        (a[0] == b[0], a[1] == b[1], a[2] == b[2], a[3] == b[3]),
        (true, false, true, true)
    );
    assert_eq!(
        m2["layers"][1]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );

    // A zstd image default warns about the engines that cannot pull it; a
    // wrong value is a located error with the nearest spelling.
    ctx.spec(
        "version = 1\n[image]\nfrom = \"scratch\"\ncompression = \"zstd\"\n\n\
         [[layer]]\nname = \"code\"\ncopy = [{ from = \"code\", to = \"/app\" }]\n",
    );
    let run = strata(&ctx, &["check", "."]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(run.stderr().contains("Docker 20.10"), "{}", run.stderr());
    ctx.spec(
        "version = 1\n[image]\nfrom = \"scratch\"\n\n\
         [[layer]]\nname = \"code\"\ncopy = [{ from = \"code\", to = \"/app\" }]\ncompression = \"zsdt\"\n",
    );
    let run = strata(&ctx, &["check", "."]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let err = run.stderr();
    assert!(
        err.contains("unknown compression `zsdt`") && err.contains("`zstd`"),
        "{err}"
    );
    assert!(err.contains("strata.toml:8:15"), "{err}");
}

#[test]
fn a_multi_platform_push_is_an_index_of_one_manifest_per_platform() {
    if !shared_registry() {
        return;
    }
    let Some(skopeo) = tool("skopeo") else { return };
    let ctx = Ctx::new();
    ctx.spec(
        "version = 1\n[image]\nfrom = \"scratch\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n\n\
         [[layer]]\nname = \"app\"\ncopy = [{ from = \"app\", to = \"/app\" }]\n",
    );
    ctx.write("app/main.py", "print('multi')\n");
    let reference = format!("{REGISTRY}/{}:v1", unique("multi"));
    let run = strata(
        &ctx,
        &["build", "--output", &format!("registry:{reference}"), "."],
    );
    let digest = ok(&run);
    let o = run_ok(Command::new(&skopeo).args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reference}"),
    ]))
    .0;
    assert_eq!(
        format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&o.stdout))
        ),
        digest,
        "stdout is the index digest"
    );
    let index: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        crate::util::index_platforms(&index),
        ["linux/amd64", "linux/arm64"]
    );
    // Each platform's config says its architecture.
    for arch in ["amd64", "arm64"] {
        let o = Command::new(&skopeo)
            .args([
                "inspect",
                "--tls-verify=false",
                "--override-arch",
                arch,
                &format!("docker://{reference}"),
            ])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["Architecture"], arch);
    }
    // The same layer blob serves both platforms: uploaded once.
    assert_eq!(
        run.stderr()
            .lines()
            .filter(|l| l.starts_with("app") && l.contains("uploaded"))
            .count(),
        1,
        "{}",
        run.stderr()
    );

    // --annotation: index: on the index, manifest-descriptor: on its
    // entries (one platform's only, with a qualifier), manifest: in each
    // manifest.
    let annotated = format!("{REGISTRY}/{}:v1", unique("multi-annotated"));
    ok(&strata(
        &ctx,
        &[
            "build",
            "--annotation",
            "index:org.opencontainers.image.title=multi",
            "--annotation",
            "manifest-descriptor[linux/arm64]:arm=1",
            "--annotation",
            "manifest:m=1",
            "--output",
            &format!("registry:{annotated}"),
            ".",
        ],
    ));
    let raw = |r: &str| -> Value {
        let o = run_ok(Command::new(&skopeo).args(["inspect", "--raw", "--tls-verify=false", r])).0;
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let index = raw(&format!("docker://{annotated}"));
    assert_eq!(
        index["annotations"]["org.opencontainers.image.title"],
        "multi"
    );
    let entries = index["manifests"].as_array().unwrap();
    assert!(entries[0].get("annotations").is_none(), "{index}");
    assert_eq!(entries[1]["annotations"]["arm"], "1", "{index}");
    for e in entries {
        let by_digest = annotated.replace(":v1", &format!("@{}", e["digest"].as_str().unwrap()));
        let m = raw(&format!("docker://{by_digest}"));
        assert_eq!(m["annotations"]["m"], "1", "{m}");
    }
}

#[test]
fn zstd_layers_pull_on_docker_28_and_26_but_not_20_10() {
    if !shared_registry() {
        return;
    }
    let ctx = Ctx::new();
    ctx.spec(
        "version = 1\n[image]\nfrom = \"scratch\"\nplatforms = [\"linux/amd64\"]\ncompression = \"zstd\"\n\n\
         [[layer]]\nname = \"app\"\ncopy = [{ from = \"app\", to = \"/app\" }]\n",
    );
    ctx.write("app/main.py", "print('zstd')\n".repeat(100));
    let reference = format!("{REGISTRY}/{}:v1", unique("zstd"));
    let run = strata(
        &ctx,
        &["build", "--output", &format!("registry:{reference}"), "."],
    );
    let digest = ok(&run);
    assert!(run.stderr().contains("Docker 20.10"), "{}", run.stderr());
    let _engines = engine_lock();
    let Some(docker) = tool("docker") else { return };
    for (name, pulls) in [("d28", true), ("d26", true), ("d20", false)] {
        let Some(host) = engine(name) else { continue };
        let o = Command::new(&docker)
            .args(["pull", &reference])
            .env("DOCKER_HOST", &host)
            .output()
            .unwrap();
        let _ = Command::new(&docker)
            .args(["rmi", &reference])
            .env("DOCKER_HOST", &host)
            .output();
        assert_eq!(
            o.status.success(),
            pulls,
            "{name} pull of {digest}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
