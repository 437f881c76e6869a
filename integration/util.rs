//! Test fixtures: a temporary context directory and a runner for the binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary directory holding a build context (`ctx/`) and a cache root
/// (`cache/`) outside it.
pub struct Ctx {
    root: tempfile::TempDir,
    ctx: PathBuf,
}

impl Ctx {
    /// An empty context.
    pub fn new() -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        let ctx = root.path().join("ctx");
        std::fs::create_dir(&ctx).unwrap();
        Self { root, ctx }
    }

    /// The context path.
    pub fn path(&self) -> &Path {
        &self.ctx
    }

    /// The cache root used by [`Ctx::strata`].
    pub fn cache(&self) -> PathBuf {
        self.root.path().join("cache")
    }

    /// A scratch directory outside the context.
    pub fn outside(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// Writes a file (creating parents) and returns its path.
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.ctx.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }

    /// Writes `strata.toml`.
    pub fn spec(&self, text: &str) -> PathBuf {
        self.write("strata.toml", text)
    }

    /// Runs `strata ARGS` in the context directory.
    pub fn strata(&self, args: &[&str]) -> Run {
        Run(self.command(args).output().expect("run strata"))
    }

    /// Runs `strata ARGS` in the context directory with extra environment.
    pub fn strata_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(args);
        cmd.envs(env.iter().copied());
        Run(cmd.output().expect("run strata"))
    }

    /// The command [`Ctx::strata`] runs, to spawn or adjust it.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
        cmd.args(args)
            .current_dir(self.path())
            .env("NO_COLOR", "1")
            .env_remove("SOURCE_DATE_EPOCH")
            .env("STRATA_CACHE_DIR", self.cache());
        cmd
    }
}

/// The result of running the binary.
pub struct Run(pub Output);

impl Run {
    /// The exit status.
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }

    /// Standard output as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    /// Standard error as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
}

/// Asserts exit 0 and returns stdout, trimmed.
#[track_caller]
pub fn ok(run: &Run) -> String {
    assert_eq!(run.code(), 0, "exit status; stderr:\n{}", run.stderr());
    run.stdout().trim().to_string()
}

/// Asserts that `out`, the output of `what`, shows exit 0 (its stderr in
/// the message); returns it as a [`Run`].
#[track_caller]
pub fn assert_ok(what: &str, out: Output) -> Run {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Run(out)
}

/// Runs `cmd` and asserts that it exits 0 ([`assert_ok`]).
#[track_caller]
pub fn run_ok(cmd: &mut Command) -> Run {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert_ok(&format!("{cmd:?}"), out)
}

/// Deterministic incompressible bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A value no other call makes (process id and wall-clock nanoseconds), so
/// that changed content or a repository name is new to the engines' caches
/// and the shared registry, which outlive a test run.
pub fn nonce() -> String {
    static LAST: std::sync::Mutex<u128> = std::sync::Mutex::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    *last = now.max(*last + 1);
    format!("{}-{}", std::process::id(), *last)
}

/// The shared loopback registry (`integration/env.sh`).
pub const REGISTRY: &str = "127.0.0.1:5000";
/// Its access log.
pub const REGISTRY_LOG: &str = "/var/log/strata-registry.log";

/// The registry log's length in bytes (0 while there is none).
pub fn log_len() -> u64 {
    std::fs::metadata(REGISTRY_LOG).map_or(0, |m| m.len())
}

/// The registry's log from byte `from` on.
pub fn log_since(from: u64) -> String {
    let bytes = std::fs::read(REGISTRY_LOG).expect("read the registry log");
    String::from_utf8_lossy(&bytes[from as usize..]).into_owned()
}

/// `docker` talking to the engine at `host` (no default attestations, so
/// images compare across engines).
pub fn docker(host: &str) -> Command {
    let mut c = Command::new("docker");
    c.env("DOCKER_HOST", host)
        .env("BUILDX_NO_DEFAULT_ATTESTATIONS", "1");
    c
}

/// `docker buildx build --progress=plain -f strata.toml EXTRA .` of `dir`
/// on `host` through the frontend image `syntax`, with the build argument
/// `BASE_IMAGE=base`; an engine fault is retried once
/// ([`with_fault_retry`]). Returns whether it succeeded, and its output
/// (stdout, then stderr, where the plain progress goes).
pub fn buildx_result(
    host: &str,
    syntax: &str,
    base: &str,
    dir: &Path,
    extra: &[&str],
) -> (bool, String) {
    let out = with_fault_retry(&format!("buildx build {extra:?}"), || {
        docker(host)
            .args(["buildx", "build", "--progress=plain", "-f", "strata.toml"])
            .arg(format!("--build-arg=BASE_IMAGE={base}"))
            .arg(format!("--build-arg=BUILDKIT_SYNTAX={syntax}"))
            .args(extra)
            .arg(".")
            .current_dir(dir)
            .output()
            .expect("run docker buildx build")
    });
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// [`buildx_result`] of a build that must succeed; returns its output.
#[track_caller]
pub fn buildx(host: &str, syntax: &str, base: &str, dir: &Path, extra: &[&str]) -> String {
    let (ok, text) = buildx_result(host, syntax, base, dir, extra);
    assert!(ok, "buildx build {extra:?} failed:\n{text}");
    text
}

/// Whether the suite runs in CI, where nothing may skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Looks a tool up on PATH; in CI a missing tool fails the test.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            !in_ci(),
            "`{name}` is not installed, and CI=true: nothing may skip"
        );
        eprintln!("skipping: `{name}` is not installed");
    }
    found
}

/// Serializes the tests that build on the shared engines: concurrent builds
/// of the same layers on one BuildKit share local-source snapshots and cache
/// records, so one test's edits would show in another's results. Hold the
/// guard for the whole test. Besides the in-process mutex it holds an
/// exclusive `flock` on `/tmp/strata-engines.lock`, so test runs from two
/// checkouts on one machine take turns too.
pub fn engine_lock() -> EngineGuard {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/strata-engines.lock")
        .expect("open /tmp/strata-engines.lock");
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .expect("flock /tmp/strata-engines.lock");
    EngineGuard {
        _file: file,
        _guard: guard,
    }
}

/// Held while a test uses the shared engines (see [`engine_lock`]); the
/// `flock` is released when the file closes.
pub struct EngineGuard {
    _file: std::fs::File,
    _guard: std::sync::MutexGuard<'static, ()>,
}

/// DOCKER_HOST of a running engine, or `None` (a failure in CI).
pub fn engine(name: &str) -> Option<String> {
    let status = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/integration/env.sh"))
        .arg("status")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&status.stdout).into_owned()
        + &String::from_utf8_lossy(&status.stderr);
    // `NAME running pid … HOST`: the last word is the engine's DOCKER_HOST.
    let host = text
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")) && l.contains(" running "))
        .and_then(|l| l.split_whitespace().last())
        .map(String::from);
    if host.is_none() {
        assert!(
            !in_ci(),
            "engine {name} is not running, and CI=true: run `integration/env.sh up`"
        );
        eprintln!("skipping: engine {name} is not running (integration/env.sh up {name})");
    }
    host
}

/// Failures inside an engine that strata does not cause, by a phrase of
/// their message (seen on Docker 26.1 about once in ten builds).
const ENGINE_FAULTS: &[&str] = &[
    "failed to prepare extraction snapshot",
    "parent snapshot",
    "failed to compute cache key: failed to get state for index",
];

/// The engine fault `text` shows, if any.
pub fn engine_fault(text: &str) -> Option<&'static str> {
    ENGINE_FAULTS.iter().copied().find(|f| text.contains(f))
}

/// Where engine faults are counted: one line per retried build; the test
/// command (`integration/run.sh`) prints them at the end.
pub fn fault_log() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("engine-faults.log")
}

/// Runs an engine command; when it fails with an engine fault, says so on
/// stderr, appends it to [`fault_log`] and runs it once more. The second
/// result counts, whatever it is: a fault is retried once, never hidden.
pub fn with_fault_retry(what: &str, run: impl FnMut() -> Output) -> Output {
    with_fault_retry_to(&fault_log(), what, run)
}

/// [`with_fault_retry`] with the fault log at `log`.
fn with_fault_retry_to(log: &Path, what: &str, mut run: impl FnMut() -> Output) -> Output {
    let out = run();
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    match (out.status.success(), engine_fault(&text)) {
        (false, Some(fault)) => {
            let line = format!("ENGINE FAULT (retried once): {what}: {fault}");
            eprintln!("{line}");
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .expect("open the engine fault log");
            std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()).unwrap();
            run()
        }
        _ => out,
    }
}

/// `strata diff A B`'s report (its first 40 lines, and stderr on trouble),
/// for the message of a failed reproducibility assertion.
pub fn diff_report(a: &str, b: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["diff", a, b])
        .env("NO_COLOR", "1")
        .output()
        .expect("run strata diff");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut report: String = text.lines().take(40).map(|l| format!("{l}\n")).collect();
    if text.lines().count() > 40 {
        report.push_str("…\n");
    }
    report + &String::from_utf8_lossy(&out.stderr)
}

/// `strata diff`'s report on two engine images, each `(DOCKER_HOST, tag)`
/// (saved with `docker save`, so the two may live in different engines).
pub fn daemon_diff(a: (&str, &str), b: (&str, &str)) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sides = Vec::new();
    for (i, (host, tag)) in [a, b].into_iter().enumerate() {
        let file = dir.path().join(format!("{i}.tar"));
        let out = Command::new("docker")
            .env("DOCKER_HOST", host)
            .args(["save", "-o"])
            .arg(&file)
            .arg(tag)
            .output()
            .expect("run docker save");
        if !out.status.success() {
            return format!(
                "docker save {tag} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        sides.push(format!("docker-archive:{}:{tag}", file.display()));
    }
    diff_report(&sides[0], &sides[1])
}

/// The retry recognizes the fault seen on Docker 26.1 and nothing else, and
/// retries exactly once, logging the fault.
#[test]
fn engine_faults_are_recognized_retried_once_and_logged() {
    use std::os::unix::process::ExitStatusExt;
    let seen = "ERROR: failed to solve: failed to prepare extraction snapshot \
                \"extract-1-sha256:ab\": parent snapshot sha256:cd does not exist: not found";
    assert_eq!(
        engine_fault(seen),
        Some("failed to prepare extraction snapshot")
    );
    assert_eq!(
        engine_fault("ERROR: process \"/bin/sh -c exit 3\" did not complete successfully"),
        None
    );
    let output = |code: i32, err: &str| Output {
        status: std::process::ExitStatus::from_raw(code << 8),
        stdout: Vec::new(),
        stderr: err.as_bytes().to_vec(),
    };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("faults.log");
    let mut calls = 0;
    let out = with_fault_retry_to(&log, "fault test", || {
        calls += 1;
        output(1, seen)
    });
    assert_eq!(calls, 2, "retried once, not more");
    assert!(!out.status.success(), "the second result counts");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("ENGINE FAULT (retried once): fault test"),
        "{text}"
    );
    let mut calls = 0;
    with_fault_retry_to(&log, "no fault", || {
        calls += 1;
        output(1, "exit 3")
    });
    assert_eq!(calls, 1, "other failures are not retried");
}

/// The `os/architecture` of each manifest of an OCI image index, in order,
/// after checking the media types of the index and of each entry.
#[track_caller]
pub fn index_platforms(index: &serde_json::Value) -> Vec<String> {
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    index["manifests"]
        .as_array()
        .expect("an index's manifests")
        .iter()
        .map(|m| {
            assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect()
}
