//! What an attacker or a careless user tries against the embedded builder:
//! concurrent builds into one layout, full disks, endless inputs, specs that
//! `check` passes and `build` rejects, unreachable registries, and hostile
//! outputs and contexts. Each test states the behaviour it holds to: a clear
//! error (exit 1 or 2) that names the file, nothing written or lost.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::util::{Ctx, Run, in_ci};

/// A one-layer spec copying `app/` to `/app`.
const SPEC: &str = "version = 1\n[image]\nplatforms = [\"linux/amd64\"]\n\
                    [[layer]]\nname = \"app\"\ncopy = [{ from = \"app\", to = \"/app\" }]\n";

#[track_caller]
fn ok(run: &Run) -> String {
    assert_eq!(run.code(), 0, "exit status; stderr:\n{}", run.stderr());
    run.stdout().trim().to_string()
}

/// Asserts exit `code` and that stderr holds every phrase; returns stderr.
#[track_caller]
fn fails(run: &Run, code: i32, phrases: &[&str]) -> String {
    let err = run.stderr();
    assert_eq!(run.code(), code, "exit status; stderr:\n{err}");
    for p in phrases {
        assert!(err.contains(p), "stderr lacks `{p}`:\n{err}");
    }
    assert_eq!(run.stdout(), "", "nothing on stdout");
    err
}

/// Deterministic incompressible bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Every path under `root` (relative, sorted), with each regular file's
/// content, so that "nothing changed" compares bytes too.
fn snapshot(root: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    if !root.exists() {
        return out;
    }
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let ft = e.file_type().unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if ft.is_dir() {
                stack.push(p);
                out.push((rel + "/", None));
            } else if ft.is_file() {
                out.push((rel, Some(std::fs::read(&p).unwrap())));
            } else {
                out.push((rel + " (link)", None));
            }
        }
    }
    out.sort();
    out
}

fn names(snap: &[(String, Option<Vec<u8>>)]) -> Vec<&str> {
    snap.iter().map(|(n, _)| n.as_str()).collect()
}

/// The tags in a layout's `index.json`.
fn tags(layout: &Path) -> BTreeSet<String> {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .map(String::from)
        .collect()
}

/// A context beside `ctx`'s, holding `app/file` with `content`.
fn project(ctx: &Ctx, name: &str, content: &[u8]) -> PathBuf {
    let dir = ctx.outside(name);
    std::fs::create_dir_all(dir.join("app")).unwrap();
    std::fs::write(dir.join("strata.toml"), SPEC).unwrap();
    std::fs::write(dir.join("app/file"), content).unwrap();
    dir
}

// Item: concurrent builds into one layout.

/// Eight builds of different projects at once into one layout: each exits
/// 0 and each tag is in `index.json`, pointing at a complete image.
#[test]
fn concurrent_builds_into_one_layout_keep_every_tag() {
    let ctx = Ctx::new();
    let projects: Vec<PathBuf> = (0..8)
        .map(|i| project(&ctx, &format!("p{i}"), format!("project {i}\n").as_bytes()))
        .collect();
    for round in 0..3 {
        let out = ctx.outside(&format!("out{round}"));
        let children: Vec<_> = projects
            .iter()
            .enumerate()
            .map(|(i, p)| {
                ctx.command(&[
                    "build",
                    &p.display().to_string(),
                    "--output",
                    &format!("oci-layout:{}:t{i}", out.display()),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
            })
            .collect();
        let mut digests = BTreeSet::new();
        for c in children {
            let run = Run(c.wait_with_output().unwrap());
            digests.insert(ok(&run));
        }
        assert_eq!(digests.len(), 8, "eight different images");
        let want: BTreeSet<String> = (0..8).map(|i| format!("t{i}")).collect();
        assert_eq!(tags(&out), want, "round {round}: every tag lands");
        // Every image is complete: diff each against itself through strata.
        for i in 0..8 {
            let r = format!("oci-layout:{}:t{i}", out.display());
            ok(&ctx.strata(&["diff", &r, &r]));
        }
    }
}

// Item: a failed build leaves nothing behind (a real full disk).

/// A small tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`2m`); `None` (a skip) when not root
    /// outside CI.
    fn mount(size: &str) -> Option<Tmpfs> {
        let uid = Command::new("id").arg("-u").output().unwrap();
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            assert!(!in_ci(), "CI runs as root: nothing may skip");
            eprintln!("skipping: mounting a tmpfs needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "mount -t tmpfs");
        Some(Tmpfs(dir))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// On a full disk a build into a new layout or archive exits 2, names the
/// path, and leaves nothing at the output path; a build into an existing
/// layout leaves it exactly as it was.
#[test]
fn a_full_disk_leaves_no_partial_output() {
    let Some(fs) = Tmpfs::mount("2m") else {
        return;
    };
    let ctx = Ctx::new();
    ctx.spec(SPEC);
    ctx.write("app/small", "small\n");
    // An existing layout on the small disk, with one image.
    let existing = fs.path().join("existing");
    ok(&ctx.strata(&[
        "build",
        ".",
        "--output",
        &format!("oci-layout:{}:v1", existing.display()),
    ]));
    let before = snapshot(fs.path());
    // Now a layer (3 MiB of noise) that cannot fit.
    ctx.write("app/big", noise(3 << 20, 7));
    for dest in [
        format!("oci-layout:{}/new/out:v1", fs.path().display()),
        format!("oci-layout:{}:v2", existing.display()),
        format!("oci-archive:{}/image.tar", fs.path().display()),
        format!("docker-archive:{}/docker.tar:app:v1", fs.path().display()),
    ] {
        let run = ctx.strata(&["build", ".", "--output", &dest]);
        let err = fails(&run, 2, &[]);
        assert!(
            err.contains("No space left on device") || err.contains("os error 28"),
            "{dest}: {err}"
        );
        let after = snapshot(fs.path());
        assert_eq!(
            names(&after),
            names(&before),
            "{dest}: nothing left behind, nothing removed"
        );
        assert!(after == before, "{dest}: the existing layout is unchanged");
    }
    // The cache itself on the full disk: the build fails while writing the
    // layer, and the output path stays empty.
    let run = ctx.strata_env(
        &[
            "build",
            ".",
            "--output",
            &format!("oci-layout:{}:v1", ctx.outside("out-cache-full").display()),
        ],
        &[(
            "STRATA_CACHE_DIR",
            &fs.path().join("cache").display().to_string(),
        )],
    );
    fails(&run, 2, &[]);
    assert!(!ctx.outside("out-cache-full").exists());
    // With room again, the same builds succeed into the same paths.
    std::fs::remove_dir_all(fs.path().join("cache")).ok();
    ctx.write("app/big", noise(1 << 20, 7));
    ok(&ctx.strata(&[
        "build",
        ".",
        "--output",
        &format!("oci-layout:{}:v2", existing.display()),
    ]));
    let want: BTreeSet<String> = ["v1", "v2"].map(String::from).into();
    assert_eq!(tags(&existing), want);
}

// Item: unbounded input.

/// Runs `strata ARGS` in `ctx` with at most 1 GiB of address space and a
/// minute of time, so an unbounded read fails fast instead of eating the
/// machine.
fn strata_bounded(ctx: &Ctx, args: &[&str]) -> Run {
    let mut cmd = Command::new("timeout");
    cmd.args(["60", "sh", "-c", "ulimit -v 1048576 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .current_dir(ctx.path())
        .env("NO_COLOR", "1")
        .env("STRATA_CACHE_DIR", ctx.cache());
    Run(cmd.output().unwrap())
}

/// `strata check -f /dev/zero` stops after 2 MiB and one byte: exit 1,
/// naming the file, "more than 2 MiB" and the limit.
#[test]
fn an_endless_spec_is_read_at_most_to_the_limit() {
    let ctx = Ctx::new();
    let run = strata_bounded(&ctx, &["check", "-f", "/dev/zero", "."]);
    fails(
        &run,
        1,
        &["`/dev/zero`", "more than 2 MiB", "limit of 2097152 bytes"],
    );
    // A regular file over the limit says its size.
    ctx.write("big.toml", vec![b'#'; 3 << 20]);
    let run = strata_bounded(&ctx, &["check", "-f", "big.toml", "."]);
    fails(&run, 1, &["big.toml", "3145728 bytes", "2097152"]);
}

/// The ignore files and `strata.lock` are bounded too: a 10 MB
/// `.dockerignore` and a `strata.lock` that is `/dev/zero` are errors that
/// name them (exit 1), never a read without end.
#[test]
fn ignore_and_lock_files_are_bounded() {
    let ctx = Ctx::new();
    ctx.spec(SPEC);
    ctx.write("app/a", "a\n");
    ctx.write(".dockerignore", "x\n".repeat(5 << 20));
    for cmd in ["check", "plan"] {
        let run = strata_bounded(&ctx, &[cmd, "."]);
        fails(
            &run,
            1,
            &[
                "/.dockerignore`",
                "10485760 bytes",
                "limit of 2097152 bytes",
            ],
        );
    }
    // Beside the spec, `strata.toml.dockerignore` wins, and is bounded too.
    ctx.write("strata.toml.dockerignore", "x\n".repeat(5 << 20));
    let run = strata_bounded(&ctx, &["plan", "."]);
    fails(&run, 1, &["strata.toml.dockerignore`", "10485760 bytes"]);
    std::fs::remove_file(ctx.path().join("strata.toml.dockerignore")).unwrap();
    std::fs::remove_file(ctx.path().join(".dockerignore")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", ctx.path().join("strata.lock")).unwrap();
    let run = strata_bounded(&ctx, &["lock", "."]);
    fails(&run, 1, &["strata.lock", "character device"]);
}

// Item: `check` rejects what `build` would reject for the spec's sake.

/// Runs `check` and `build` on one spec: both must exit 1 with the spec's
/// line in the message, and `build` must write nothing.
#[track_caller]
fn both_reject(ctx: &Ctx, line: &str, phrases: &[&str]) {
    let check = ctx.strata(&["check", "."]);
    let err = fails(&check, 1, phrases);
    assert!(err.contains(line), "check names {line}:\n{err}");
    assert!(err.contains("help:"), "check says what to do:\n{err}");
    let out = ctx.outside("out-both");
    let build = ctx.strata(&[
        "build",
        ".",
        "--output",
        &format!("oci-layout:{}", out.display()),
    ]);
    let err = fails(&build, 1, phrases);
    assert!(err.contains(line), "build names {line}:\n{err}");
    assert!(!out.exists(), "build wrote nothing");
}

/// A destination with a NUL byte (`\u0000` in TOML) passed `check` and
/// failed `build` without a file or line.
#[test]
fn check_rejects_a_nul_byte_in_a_path() {
    let ctx = Ctx::new();
    ctx.write("app/a", "a\n");
    ctx.spec(
        "version = 1\n[image]\nplatforms = [\"linux/amd64\"]\n\
         [[layer]]\nname = \"app\"\ncopy = [{ from = \"app\", to = \"/app\\u0000x\" }]\n",
    );
    both_reject(&ctx, "strata.toml:6:", &["contains a NUL byte"]);
    ctx.spec(
        "version = 1\n[image]\nplatforms = [\"linux/amd64\"]\n\
         [[layer]]\nname = \"app\"\ncopy = [{ from = \"ap\\u0000p\", to = \"/app\" }]\n",
    );
    both_reject(&ctx, "strata.toml:6:", &["contains a NUL byte"]);
}

/// `max_layers = 20000` with 10,000 layers passed `check` and failed
/// `build` (at most 125 layers with the base's); `check` now names the line.
#[test]
fn check_rejects_max_layers_over_the_build_limit() {
    let ctx = Ctx::new();
    let mut spec =
        String::from("version = 1\n[image]\nplatforms = [\"linux/amd64\"]\nmax_layers = 20000\n");
    for i in 0..10_000 {
        ctx.write(&format!("f/{i}"), "x");
        spec.push_str(&format!(
            "[[layer]]\nname = \"l{i}\"\ncopy = [{{ from = \"f/{i}\", to = \"/f/{i}\" }}]\n"
        ));
    }
    ctx.spec(&spec);
    both_reject(&ctx, "strata.toml:4:", &["`max_layers` = 20000", "125"]);
}

// Item: `strata lock` and network failures.

fn lock_spec(ctx: &Ctx, from: &str) {
    ctx.spec(&format!(
        "version = 1\n[image]\nfrom = \"{from}\"\nplatforms = [\"linux/amd64\"]\n"
    ));
}

/// An unreachable registry is an error (exit 2) naming the registry and
/// the cause, never "authentication" and never a `local = true` pin; no
/// lock is written, and `plan --locked` fails after it.
#[test]
fn lock_fails_on_an_unreachable_registry() {
    // A loopback port with nothing listening: refused.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for (from, registry, cause) in [
        (
            format!("127.0.0.1:{port}/strata-adv/base:1"),
            format!("127.0.0.1:{port}"),
            "connection refused",
        ),
        (
            "registry.strata-test.invalid/base:1".to_owned(),
            "registry.strata-test.invalid".to_owned(),
            "DNS lookup failed",
        ),
    ] {
        let ctx = Ctx::new();
        lock_spec(&ctx, &from);
        let run = ctx.strata(&["lock", "."]);
        let err = fails(
            &run,
            2,
            &[&format!("registry {registry} is unreachable: {cause}")],
        );
        assert!(!err.to_lowercase().contains("authentication"), "{err}");
        assert!(!err.contains("local"), "{err}");
        assert!(!ctx.path().join("strata.lock").exists(), "no lock written");
        let run = ctx.strata(&["plan", "--locked", "."]);
        fails(&run, 1, &["no pin", "strata lock"]);
    }
    // A server that answers HTTPS with plain text, on an address that is
    // not loopback (so strata speaks TLS): a TLS failure.
    let host_ip = String::from_utf8(Command::new("hostname").arg("-I").output().unwrap().stdout)
        .unwrap()
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .map(String::from);
    let Some(ip) = host_ip else {
        assert!(!in_ci(), "no non-loopback IPv4 address");
        return;
    };
    let listener = std::net::TcpListener::bind((ip.as_str(), 0)).unwrap();
    let registry = format!("{ip}:{}", listener.local_addr().unwrap().port());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut conn = conn;
            let _ = std::io::Write::write_all(&mut conn, b"HTTP/1.1 400 Bad Request\r\n\r\n");
        }
    });
    let ctx = Ctx::new();
    lock_spec(&ctx, &format!("{registry}/strata-adv/base:1"));
    let run = ctx.strata(&["lock", "."]);
    let err = fails(
        &run,
        2,
        &[&format!(
            "registry {registry} is unreachable: TLS handshake failed"
        )],
    );
    assert!(!err.to_lowercase().contains("authentication"), "{err}");
    assert!(!ctx.path().join("strata.lock").exists(), "no lock written");
}

/// A registry that answers "not found" is an error too (exit 1), with the
/// way to pin a daemon-only image: `--local REF`, which pins it without a
/// request; `plan --locked` then passes with a warning.
#[test]
fn lock_pins_local_only_when_asked() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let Some(_) = crate::util::tool("docker") else {
        return;
    };
    let ctx = Ctx::new();
    // The loopback registry answers, and has no such image.
    let missing = "127.0.0.1:5000/strata-adv/missing:never";
    lock_spec(&ctx, missing);
    let run = ctx.strata(&["lock", "."]);
    if run.stderr().contains("unreachable") && !in_ci() {
        eprintln!("skipping: the loopback registry is not running");
        return;
    }
    fails(
        &run,
        1,
        &["not found", &format!("strata lock --local {missing}")],
    );
    assert!(!ctx.path().join("strata.lock").exists());
    ok(&ctx.strata(&["lock", "--local", missing, "."]));
    let lock = std::fs::read_to_string(ctx.path().join("strata.lock")).unwrap();
    assert!(lock.contains("local = true"), "{lock}");
    let run = ctx.strata(&["plan", "--locked", "."]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(run.stderr().contains("pinned as local"), "{}", run.stderr());
    // `--local` for an image the spec does not use is a usage error, and a
    // local pin needs no network at all (an unreachable registry).
    let run = ctx.strata(&["lock", "--local", "other:1", "."]);
    fails(&run, 2, &["--local `other:1`", missing]);
    let unreachable = format!("127.0.0.1:{port}/strata-adv/base:1");
    lock_spec(&ctx, &unreachable);
    ok(&ctx.strata(&["lock", "--local", &unreachable, "."]));
}

// Adversarial cases beyond the list.

/// The path of every entry of every layer of the image tagged `tag` in the
/// layout `dir`, each blob checked against its digest.
fn layer_paths(dir: &Path, tag: &str) -> Vec<Vec<u8>> {
    use sha2::Digest as _;
    use std::io::Read;
    let blob = |d: &str| {
        let bytes = std::fs::read(dir.join("blobs/sha256").join(&d[7..])).unwrap();
        assert_eq!(
            format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes))),
            d,
            "blob matches its digest"
        );
        bytes
    };
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap();
    let manifest: Value = serde_json::from_slice(&blob(m["digest"].as_str().unwrap())).unwrap();
    let mut out = Vec::new();
    for l in manifest["layers"].as_array().unwrap() {
        let bytes = blob(l["digest"].as_str().unwrap());
        let mut tar = Vec::new();
        if bytes.starts_with(&[0x1f, 0x8b]) {
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut tar)
                .unwrap();
        } else {
            tar = bytes;
        }
        for e in tar::Archive::new(&tar[..]).entries().unwrap() {
            out.push(e.unwrap().path_bytes().into_owned());
        }
    }
    out
}

fn build_to(ctx: &Ctx, dest: &str) -> Run {
    ctx.strata(&["build", ".", "--output", dest])
}

/// A spec that is a FIFO with no writer, and a `.dockerignore` that is a
/// FIFO in the context (a hostile checkout): neither hangs; the FIFO spec
/// reads as empty and the ignore file is refused by name (exit 1).
#[test]
fn fifos_never_hang_a_command() {
    let ctx = Ctx::new();
    let fifo = ctx.outside("spec.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let run = strata_bounded(&ctx, &["check", "-f", &fifo.display().to_string(), "."]);
    fails(&run, 1, &["the spec is empty"]);
    ctx.spec(SPEC);
    ctx.write("app/a", "a\n");
    let ignore = ctx.path().join(".dockerignore");
    assert!(
        Command::new("mkfifo")
            .arg(&ignore)
            .status()
            .unwrap()
            .success()
    );
    for cmd in ["check", "plan"] {
        let run = strata_bounded(&ctx, &[cmd, "."]);
        fails(&run, 1, &["/.dockerignore` is a FIFO, not a regular file"]);
    }
    // A spec through a pipe (`-f /dev/stdin`) still reads.
    std::fs::remove_file(&ignore).unwrap();
    let mut child = ctx
        .command(&["check", "-f", "/dev/stdin", "."])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), SPEC.as_bytes()).unwrap();
    let run = Run(child.wait_with_output().unwrap());
    assert_eq!(run.code(), 0, "{}", run.stderr());
}

/// Output names readers would refuse (`../`, spaces, a newline, upper
/// case in a Docker name) are bad flags (exit 2) before anything is built
/// or written.
#[test]
fn output_tags_and_names_are_checked_first() {
    let ctx = Ctx::new();
    ctx.spec(SPEC);
    ctx.write("app/a", "a\n");
    let out = ctx.outside("out");
    for (dest, phrase) in [
        (
            format!("oci-layout:{}:../evil", out.display()),
            "`../evil` is not a valid tag",
        ),
        (
            format!("oci-layout:{}:a b", out.display()),
            "`a b` is not a valid tag",
        ),
        (
            format!("oci-layout:{}:v1\nx", out.display()),
            "is not a valid tag",
        ),
        (
            format!("oci-archive:{}:-v1", out.display()),
            "`-v1` is not a valid tag",
        ),
        (
            format!("docker-archive:{}:App:v1", out.display()),
            "`App` is not a valid image name",
        ),
    ] {
        let run = build_to(&ctx, &dest);
        fails(&run, 2, &[phrase]);
        assert!(!out.exists(), "{dest}: nothing written");
        assert!(!ctx.cache().exists(), "{dest}: nothing built");
    }
}

/// An output path that is a regular file, a directory that is not a layout
/// (a careless `--output oci-layout:$HOME`), or a directory given to an
/// archive is refused (exit 1), and what is there is kept as it was.
#[test]
fn outputs_that_are_not_layouts_are_refused() {
    let ctx = Ctx::new();
    ctx.spec(SPEC);
    ctx.write("app/a", "a\n");
    let file = ctx.outside("file");
    std::fs::write(&file, "keep").unwrap();
    let home = ctx.outside("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::write(home.join("notes.txt"), "mine").unwrap();
    for (dest, phrase) in [
        (
            format!("oci-layout:{}", file.display()),
            "is not a directory",
        ),
        (
            format!("oci-layout:{}", home.display()),
            "is not an OCI layout",
        ),
        (format!("oci-archive:{}", home.display()), "is a directory"),
        (
            format!("docker-archive:{}:app:v1", home.display()),
            "is a directory",
        ),
    ] {
        let run = build_to(&ctx, &dest);
        fails(&run, 1, &[phrase]);
        assert_eq!(std::fs::read(&file).unwrap(), b"keep");
        assert_eq!(
            names(&snapshot(&home)),
            ["notes.txt"],
            "{dest}: nothing written into the directory"
        );
    }
}

/// An output path that is a symlink to a directory elsewhere is followed,
/// as any Unix tool does: the layout lands in the target and the link stays.
#[test]
fn an_output_through_a_symlink_lands_in_its_target() {
    let ctx = Ctx::new();
    ctx.spec(SPEC);
    ctx.write("app/a", "a\n");
    let target = ctx.outside("big-disk/out");
    std::fs::create_dir_all(&target).unwrap();
    let link = ctx.outside("out");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    ok(&build_to(
        &ctx,
        &format!("oci-layout:{}:v1", link.display()),
    ));
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    assert!(target.join("index.json").is_file());
    assert_eq!(
        layer_paths(&target, "v1"),
        [b"app/".to_vec(), b"app/a".to_vec()]
    );
}

/// An output inside the cache root would be pruned with it (or overwrite
/// the cache's files): refused (exit 2) before building.
#[test]
fn an_output_inside_the_cache_root_is_refused() {
    let ctx = Ctx::new();
    ctx.spec(SPEC);
    ctx.write("app/a", "a\n");
    ok(&build_to(
        &ctx,
        &format!("oci-layout:{}", ctx.outside("first").display()),
    ));
    let before = snapshot(&ctx.cache());
    for dest in [
        format!("oci-layout:{}/blobs", ctx.cache().display()),
        format!("oci-layout:{}", ctx.cache().display()),
        format!("oci-archive:{}/x.tar", ctx.cache().display()),
    ] {
        let run = build_to(&ctx, &dest);
        fails(&run, 2, &["is inside the cache root"]);
        assert!(snapshot(&ctx.cache()) == before, "{dest}: cache untouched");
    }
}

/// An existing layout whose `index.json` is garbage, a symlink to a file
/// outside, or 40 MB is refused (exit 1) and left exactly as it was; the
/// symlink's target is never written.
#[test]
fn a_broken_index_json_is_refused_and_kept() {
    let ctx = Ctx::new();
    ctx.spec(SPEC);
    ctx.write("app/a", "a\n");
    let out = ctx.outside("out");
    let dest = format!("oci-layout:{}:v2", out.display());
    ok(&build_to(&ctx, &format!("oci-layout:{}:v1", out.display())));
    ctx.write("app/b", "b\n");
    let outside = ctx.outside("secret.json");
    std::fs::write(&outside, "{\"manifests\":[]}").unwrap();
    let index = out.join("index.json");
    for (make, phrase) in [
        (0, "invalid json"),
        (1, "is not a regular file"),
        (2, "is larger than 33554432 bytes"),
    ] {
        std::fs::remove_file(&index).unwrap();
        match make {
            0 => std::fs::write(&index, "garbage").unwrap(),
            1 => std::os::unix::fs::symlink(&outside, &index).unwrap(),
            _ => std::fs::write(&index, vec![b' '; 40_000_000]).unwrap(),
        }
        let before = snapshot(&out);
        let run = build_to(&ctx, &dest);
        fails(&run, 1, &[phrase, "index.json"]);
        assert!(
            snapshot(&out) == before,
            "{phrase}: the layout is unchanged"
        );
        assert_eq!(std::fs::read(&outside).unwrap(), b"{\"manifests\":[]}");
    }
}

/// An existing layout whose blob is a symlink to a file elsewhere (a copy
/// of /etc/passwd), or whose `blobs/` is a symlink to another directory:
/// strata never writes through the link and never takes the link for the
/// blob.
#[test]
fn symlinks_in_a_layout_are_never_written_through() {
    let ctx = Ctx::new();
    ctx.spec(SPEC);
    ctx.write("app/a", "a\n");
    let out = ctx.outside("out");
    ok(&build_to(&ctx, &format!("oci-layout:{}:v1", out.display())));
    let passwd = ctx.outside("passwd");
    std::fs::copy("/etc/passwd", &passwd).unwrap();
    let original = std::fs::read(&passwd).unwrap();
    // Every blob of the image becomes a symlink to the passwd copy.
    let blobs = out.join("blobs/sha256");
    for e in std::fs::read_dir(&blobs).unwrap() {
        let p = e.unwrap().path();
        std::fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink(&passwd, &p).unwrap();
    }
    ok(&build_to(&ctx, &format!("oci-layout:{}:v2", out.display())));
    assert_eq!(
        std::fs::read(&passwd).unwrap(),
        original,
        "target untouched"
    );
    // The rebuilt image's blobs are regular files with their digests.
    assert_eq!(
        layer_paths(&out, "v2"),
        [b"app/".to_vec(), b"app/a".to_vec()]
    );
    for e in std::fs::read_dir(&blobs).unwrap() {
        let e = e.unwrap();
        assert!(e.file_type().unwrap().is_file(), "{:?}", e.path());
    }
    // `blobs` itself a symlink to another directory: refused.
    let elsewhere = ctx.outside("elsewhere");
    std::fs::create_dir_all(elsewhere.join("sha256")).unwrap();
    std::fs::remove_dir_all(out.join("blobs")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join("blobs")).unwrap();
    let run = build_to(&ctx, &format!("oci-layout:{}:v3", out.display()));
    fails(&run, 1, &["blobs` is not a directory"]);
    assert_eq!(names(&snapshot(&elsewhere)), ["sha256/"]);
}

/// A file copied to `/`, to `/proc/..` (which cleans to `/`) or to `/app/.`
/// lands inside that directory, as in Docker; `/proc/..` used to drop the
/// file silently.
#[test]
fn destinations_that_name_a_directory_keep_the_file() {
    let ctx = Ctx::new();
    ctx.write("app/a", "a\n");
    for (to, want) in [("/", "a"), ("/proc/..", "a"), ("/opt/.", "opt/a")] {
        ctx.spec(&format!(
            "version = 1\n[image]\nplatforms = [\"linux/amd64\"]\n\
             [[layer]]\nname = \"app\"\ncopy = [{{ from = \"app/a\", to = \"{to}\" }}]\n"
        ));
        let out = ctx.outside(&format!("out{}", to.len()));
        ok(&build_to(&ctx, &format!("oci-layout:{}:v1", out.display())));
        let paths = layer_paths(&out, "v1");
        assert!(paths.contains(&want.as_bytes().to_vec()), "{to}: {paths:?}");
    }
}

/// One layer that writes a file and a path below it (`/x` and `/x/y`)
/// made a tar no one can unpack; `check` and `build` now reject it at the
/// layer's line.
#[test]
fn a_file_with_a_destination_below_it_is_rejected() {
    let ctx = Ctx::new();
    ctx.write("app/a", "a\n");
    ctx.spec(
        "version = 1\n[image]\nplatforms = [\"linux/amd64\"]\n\
         [[layer]]\nname = \"app\"\n\
         copy = [{ from = \"app/a\", to = \"/x\" }, { from = \"app/a\", to = \"/x/y\" }]\n",
    );
    both_reject(
        &ctx,
        "strata.toml:5:",
        &["layer `app` writes `/x` as a file and `/x/y` below it"],
    );
}

/// A `timestamp` after the year 9999 made a config skopeo and Docker
/// refuse (RFC 3339 has four-digit years); so does SOURCE_DATE_EPOCH.
#[test]
fn times_after_the_year_9999_are_rejected() {
    let ctx = Ctx::new();
    ctx.write("app/a", "a\n");
    ctx.spec(&SPEC.replace("[image]\n", "[image]\ntimestamp = 99999999999999\n"));
    both_reject(&ctx, "strata.toml:3:", &["after the year 9999"]);
    ctx.spec(SPEC);
    let out = ctx.outside("out");
    let run = ctx.strata_env(
        &[
            "build",
            ".",
            "--output",
            &format!("oci-layout:{}", out.display()),
        ],
        &[("SOURCE_DATE_EPOCH", "99999999999999")],
    );
    fails(&run, 2, &["SOURCE_DATE_EPOCH", "the year 9999"]);
    assert!(!out.exists());
}

/// A build argument with a newline, interpolated into a destination, and a
/// context file whose name holds a newline: both land in the layer exactly
/// (tar's PAX records carry them).
#[test]
fn newlines_in_names_land_exactly() {
    let ctx = Ctx::new();
    ctx.write("app/we\nird", "x");
    ctx.spec(
        "version = 1\n[args]\nDEST = \"/app\"\n[image]\nplatforms = [\"linux/amd64\"]\n\
         [[layer]]\nname = \"app\"\ncopy = [{ from = \"app\", to = \"${DEST}\" }]\n",
    );
    let out = ctx.outside("out");
    ok(&ctx.strata(&[
        "build",
        ".",
        "--build-arg",
        "DEST=/a\nb",
        "--output",
        &format!("oci-layout:{}:v1", out.display()),
    ]));
    assert_eq!(
        layer_paths(&out, "v1"),
        [b"a\nb/".to_vec(), b"a\nb/we\nird".to_vec()]
    );
}

/// 10,000 nested directories: the walk recursed until the stack overflowed
/// (SIGABRT); now `check` and `build` stop with an error naming the path
/// (exit 1) and write nothing.
#[test]
fn extremely_deep_nesting_is_an_error_not_a_crash() {
    use rustix::fs::{Mode, OFlags, mkdirat, openat};
    let ctx = Ctx::new();
    ctx.spec(SPEC);
    ctx.write("app/a", "a\n");
    // Deeper than PATH_MAX allows by path: made through directory handles.
    let mut dir = rustix::fs::open(
        ctx.path().join("app"),
        OFlags::DIRECTORY | OFlags::RDONLY,
        Mode::empty(),
    )
    .unwrap();
    for _ in 0..10_000 {
        mkdirat(&dir, "d", Mode::from_raw_mode(0o755)).unwrap();
        dir = openat(&dir, "d", OFlags::DIRECTORY | OFlags::RDONLY, Mode::empty()).unwrap();
    }
    drop(dir);
    let run = ctx.strata(&["check", "."]);
    fails(&run, 1, &["is nested more than 256 directories deep"]);
    let out = ctx.outside("out");
    let run = build_to(&ctx, &format!("oci-layout:{}", out.display()));
    fails(&run, 1, &["is nested more than 256 directories deep"]);
    assert!(!out.exists());
    // Removing the tree needs handles too (`rm -rf` does that).
    let st = Command::new("rm")
        .arg("-rf")
        .arg(ctx.path().join("app/d"))
        .status()
        .unwrap();
    assert!(st.success());
}

/// A spec with 100,000 keys (labels) just under the 2 MiB limit is read,
/// checked and built, every label in the config.
#[test]
fn a_spec_with_100000_keys_builds() {
    let ctx = Ctx::new();
    ctx.write("app/a", "a\n");
    let mut spec =
        String::from("version = 1\n[image]\nplatforms = [\"linux/amd64\"]\n[image.labels]\n");
    for i in 0..100_000 {
        spec.push_str(&format!("k{i:06} = \"v\"\n"));
    }
    spec.push_str("[[layer]]\nname = \"app\"\ncopy = [{ from = \"app\", to = \"/app\" }]\n");
    assert!(spec.len() < 2 << 20);
    ctx.spec(&spec);
    ok(&ctx.strata(&["check", "."]));
    let out = ctx.outside("out");
    ok(&build_to(&ctx, &format!("oci-layout:{}:v1", out.display())));
    // The config holds every label.
    let index: Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| std::fs::read(out.join("blobs/sha256").join(&d[7..])).unwrap();
    let m: Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let c: Value = serde_json::from_slice(&blob(m["config"]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(c["config"]["Labels"].as_object().unwrap().len(), 100_000);
}

/// A context that is a symlink loop is an error (exit 1); symlink loops
/// inside the context are copied as the links they are, never followed.
#[test]
fn symlink_loops_are_never_followed() {
    let ctx = Ctx::new();
    let (a, b) = (ctx.outside("loop-a"), ctx.outside("loop-b"));
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    let run = ctx.strata(&["check", &a.display().to_string()]);
    fails(&run, 1, &["is not a directory"]);
    ctx.spec(SPEC);
    ctx.write("app/a", "a\n");
    std::os::unix::fs::symlink("loopB", ctx.path().join("app/loopA")).unwrap();
    std::os::unix::fs::symlink("loopA", ctx.path().join("app/loopB")).unwrap();
    std::os::unix::fs::symlink(".", ctx.path().join("app/self")).unwrap();
    let out = ctx.outside("out");
    ok(&build_to(&ctx, &format!("oci-layout:{}:v1", out.display())));
    assert_eq!(
        layer_paths(&out, "v1"),
        ["app/", "app/a", "app/loopA", "app/loopB", "app/self"].map(|s| s.as_bytes().to_vec())
    );
}

/// Builds killed (SIGKILL) at spread-out moments into an existing layout
/// and into a new one: the existing tag and every blob it references stay
/// sound, no blob has a name that is not its digest, and the next build
/// into either path succeeds (a new path left by a kill is still taken for
/// a layout).
#[test]
fn killed_builds_leave_outputs_usable() {
    let ctx = Ctx::new();
    ctx.spec(SPEC);
    ctx.write("app/a", "a\n");
    let existing = ctx.outside("existing");
    ok(&build_to(
        &ctx,
        &format!("oci-layout:{}:v1", existing.display()),
    ));
    let v1 = std::fs::read(existing.join("index.json")).unwrap();
    for round in 0..10u64 {
        // New content each round, so every build writes a new layer.
        ctx.write("app/big", noise(4 << 20, round));
        let fresh = ctx.outside(&format!("fresh{round}"));
        for dest in [
            format!("oci-layout:{}:v2", existing.display()),
            format!("oci-layout:{}:v1", fresh.display()),
        ] {
            let mut child = ctx
                .command(&["build", ".", "--output", &dest])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20 + round * 40));
            let _ = child.kill();
            let _ = child.wait();
        }
        // Every named blob matches its name; v1 still resolves, sound.
        for dir in [&existing, &fresh] {
            let Ok(rd) = std::fs::read_dir(dir.join("blobs/sha256")) else {
                continue;
            };
            for e in rd {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                use sha2::Digest as _;
                let bytes = std::fs::read(e.path()).unwrap();
                assert_eq!(
                    hex::encode(sha2::Sha256::digest(&bytes)),
                    name,
                    "round {round}"
                );
            }
        }
        layer_paths(&existing, "v1");
        let index = std::fs::read(existing.join("index.json")).unwrap();
        assert!(
            index == v1 || tags(&existing).contains("v2"),
            "round {round}"
        );
        // The next builds complete what the kills left.
        ok(&build_to(
            &ctx,
            &format!("oci-layout:{}:v2", existing.display()),
        ));
        ok(&build_to(
            &ctx,
            &format!("oci-layout:{}:v1", fresh.display()),
        ));
        assert!(layer_paths(&fresh, "v1").contains(&b"app/big".to_vec()));
        assert!(layer_paths(&existing, "v2").contains(&b"app/big".to_vec()));
    }
}
