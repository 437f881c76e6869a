//! The BuildKit frontend on real engines (`integration/env.sh`): the tts
//! example builds through `docker buildx build`, reuse holds layer by layer,
//! the history names every layer, the fallback warns, spec errors point at
//! their line. Under CI=true a missing engine is a failure, never a skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use crate::util::{buildx, docker, engine, run_ok};

pub(crate) const REPO: &str = env!("CARGO_MANIFEST_DIR");
pub(crate) const BASE: &str = "strata-test/debian:bookworm";

/// The frontend image of the binary under test in an engine, built once per
/// engine per test run. Its tag is named after the binary's digest, so runs
/// of different binaries never replace each other's image.
pub(crate) fn frontend_image(host: &str) -> String {
    frontend_image_with(host, b"")
}

/// Whether an ELF64 little-endian binary names a dynamic loader (a
/// `PT_INTERP` program header): static and static-pie binaries do not.
fn has_interpreter(elf: &[u8]) -> bool {
    let at = |o: usize, n: usize| {
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&elf[o..o + n]);
        u64::from_le_bytes(b) as usize
    };
    let (phoff, phentsize, phnum) = (at(0x20, 8), at(0x36, 2), at(0x38, 2));
    (0..phnum).any(|i| at(phoff + i * phentsize, 4) == 3)
}

#[test]
fn a_dynamic_binary_names_its_loader() {
    assert!(has_interpreter(&std::fs::read("/bin/sh").unwrap()));
}

/// The same, from the binary with `suffix` appended (a different image that
/// runs the same code: a rebuilt frontend image).
pub(crate) fn frontend_image_with(host: &str, suffix: &[u8]) -> String {
    static DONE: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    let mut bin = std::fs::read(env!("CARGO_BIN_EXE_strata")).unwrap();
    assert!(
        !has_interpreter(&bin),
        "the frontend image is FROM scratch, so the binary under test must be static: \
         run `bash integration/run.sh`, or `. release/env.sh` before `cargo test --release`"
    );
    bin.extend_from_slice(suffix);
    let normalize = std::fs::read(env!("CARGO_BIN_EXE_strata-normalize")).unwrap();
    let both = [bin.as_slice(), &normalize].concat();
    let digest = strata::plan::Digest::of(&both).hex();
    let tag = format!("strata-it:{}", &digest[..16]);
    let done = DONE.get_or_init(|| Mutex::new(Vec::new()));
    let mut done = done.lock().unwrap();
    let key = format!("{host} {tag}");
    if !done.contains(&key) {
        let ctx = tempfile::tempdir().unwrap();
        for (name, bytes) in [("strata", &bin), ("strata-normalize", &normalize)] {
            let path = ctx.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
            // The same image on every engine (fixed mtime and `created`), as
            // a frontend pulled from a registry would be: caches exported by
            // one engine then match the helper execs on another.
            let status = Command::new("touch")
                .args(["-d", "@0"])
                .arg(&path)
                .status()
                .unwrap();
            assert!(status.success());
        }
        run_ok(
            docker(host)
                .args([
                    "build",
                    "-q",
                    "--build-arg",
                    "SOURCE_DATE_EPOCH=0",
                    "-f",
                    &format!("{REPO}/frontend.Dockerfile"),
                    "--target",
                    "host",
                    "-t",
                    &tag,
                ])
                .arg(ctx.path()),
        );
        done.push(key);
    }
    tag
}

/// A copy of examples/tts in a temp dir.
pub(crate) fn tts() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tts");
    let status = Command::new("cp")
        .args(["-r", &format!("{REPO}/examples/tts")])
        .arg(&root)
        .status()
        .unwrap();
    assert!(status.success());
    (dir, root)
}

/// Builds `dir` with buildx and `--load`s it as `tag`; returns the output.
fn build(host: &str, dir: &Path, tag: &str, extra: &[&str]) -> String {
    build_with(host, &frontend_image(host), dir, tag, extra)
}

/// Builds with the frontend image `syntax`.
fn build_with(host: &str, syntax: &str, dir: &Path, tag: &str, extra: &[&str]) -> String {
    buildx(
        host,
        syntax,
        BASE,
        dir,
        &[extra, &["--load", "-t", tag]].concat(),
    )
}

/// Runs a build of `dir` that must fail; returns its output.
fn failing_build(host: &str, dir: &Path) -> String {
    let out = docker(host)
        .args([
            "buildx",
            "build",
            "--progress=plain",
            "-f",
            "strata.toml",
            ".",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the build must fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The image's layer diffIDs.
pub(crate) fn layers(host: &str, tag: &str) -> Vec<String> {
    let out = docker(host)
        .args([
            "image",
            "inspect",
            tag,
            "--format",
            "{{json .RootFS.Layers}}",
        ])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `created_by` of every history entry, oldest first.
pub(crate) fn history(host: &str, tag: &str) -> Vec<String> {
    let out = docker(host)
        .args(["history", "--no-trunc", "--format", "{{.CreatedBy}}", tag])
        .output()
        .unwrap();
    let mut h: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    h.reverse();
    h
}

/// The strata layer IDs in image order, from the history.
pub(crate) fn strata_layers(host: &str, tag: &str) -> Vec<String> {
    history(host, tag)
        .into_iter()
        .filter_map(|h| h.strip_prefix("strata layer ").map(String::from))
        .collect()
}

/// Asserts equal diffIDs for every copy layer of two tts images (run layers
/// are skipped: their files carry build-time mtimes).
fn assert_copy_layers_equal(a: (&str, &str), b: (&str, &str)) {
    let ids = strata_layers(a.0, a.1);
    let (la, lb) = (layers(a.0, a.1), layers(b.0, b.1));
    let (ba, bb) = (la.len() - ids.len(), lb.len() - ids.len());
    for (i, id) in ids.iter().enumerate() {
        if TTS_LAYERS[..2].contains(&id.as_str()) {
            continue;
        }
        assert_eq!(
            la[ba + i],
            lb[bb + i],
            "copy layer {id} differs: {a:?} vs {b:?}\n{}",
            crate::util::daemon_diff(a, b)
        );
    }
}

pub(crate) const TTS_LAYERS: &[&str] = &[
    "system",
    "python-deps",
    "models",
    "models@/app/models/vocos/pytorch_model.bin",
    "models@/app/models/whisper/model-00001-of-00003.safetensors",
    "models@/app/models/whisper/model-00002-of-00003.safetensors",
    "models@/app/models/whisper/model-00003-of-00003.safetensors",
    "runtime",
    "app",
];

/// A spec error through buildx prints the spec line, marked, and fails.
#[test]
fn spec_errors_point_at_their_line() {
    let _engines = crate::util::engine_lock();
    let Some(host) = engine("d28") else { return };
    let syntax = frontend_image(&host);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("strata.toml"),
        format!("# syntax={syntax}\nversion = 1\n[[layer]]\nname = \"app\"\ncopy = [{{ form = \"x\", to = \"/x\" }}]\n"),
    )
    .unwrap();
    let text = failing_build(&host, dir.path());
    assert!(text.contains(">>> copy = [{ form"), "{text}");
    assert!(
        text.contains("strata.toml:5:11: unknown key `form`"),
        "{text}"
    );

    // A failing run command names its layer (the vertex is named after it).
    std::fs::write(
        dir.path().join("strata.toml"),
        format!("# syntax={syntax}\nversion = 1\n[image]\nfrom = \"{BASE}\"\n[[layer]]\nname = \"fails\"\nrun = \"exit 3\"\n"),
    )
    .unwrap();
    let text = failing_build(&host, dir.path());
    assert!(text.contains("[strata] layer fails: exit 3"), "{text}");
}

/// docs/design.md §1 through BuildKit: a copy under `/tmp` keeps the base's
/// `1777`; a destination under a symlink of the base (`/var/run` → `/run`)
/// fails and names the path to write instead.
#[test]
fn parent_directories_follow_the_base_on_docker_28() {
    let _engines = crate::util::engine_lock();
    let Some(host) = engine("d28") else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.txt"), "x\n").unwrap();
    let syntax = frontend_image(&host);
    let spec = |to: &str| {
        format!(
            "# syntax={syntax}\nversion = 1\n[image]\nfrom = \"{BASE}\"\n\
             [[layer]]\nname = \"x\"\ncopy = [{{ from = \"x.txt\", to = \"{to}\" }}]\n"
        )
    };
    std::fs::write(dir.path().join("strata.toml"), spec("/tmp/x/x.txt")).unwrap();
    run_ok(
        docker(&host)
            .args(["buildx", "build", "--progress=plain", "-f", "strata.toml"])
            .args(["--load", "-t", "strata-it-tmp:1", "."])
            .current_dir(dir.path()),
    );
    let run = docker(&host)
        .args([
            "run",
            "--rm",
            "strata-it-tmp:1",
            "stat",
            "-c",
            "%a %U",
            "/tmp",
            "/tmp/x",
            "/tmp/x/x.txt",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "1777 root\n755 root\n644 root\n"
    );

    std::fs::write(dir.path().join("strata.toml"), spec("/var/run/x.txt")).unwrap();
    let text = failing_build(&host, dir.path());
    assert!(
        text.contains("`/var/run` is a symlink in the base image"),
        "{text}"
    );
    assert!(text.contains("/run/x.txt"), "{text}");
}

/// The same checkout on Docker 28.5 and 26.1 gives the same copy-layer
/// diffIDs: the helper writes the tree, not the engine's copy code.
#[test]
fn copy_layers_are_identical_across_docker_28_and_26() {
    let _engines = crate::util::engine_lock();
    let (Some(h28), Some(h26)) = (engine("d28"), engine("d26")) else {
        return;
    };
    let (_tmp, dir) = tts();
    build(&h28, &dir, "strata-it-x:28", &[]);
    build(&h26, &dir, "strata-it-x:26", &[]);
    assert_copy_layers_equal((&h28, "strata-it-x:28"), (&h26, "strata-it-x:26"));
}

/// A rebuilt frontend image (another image digest, same writer version)
/// re-runs the helpers and gives the same copy-layer diffIDs.
#[test]
fn a_rebuilt_frontend_image_gives_the_same_copy_layers() {
    let _engines = crate::util::engine_lock();
    let Some(host) = engine("d28") else { return };
    let (_tmp, dir) = tts();
    build(&host, &dir, "strata-it-rebuilt:1", &[]);
    let other = frontend_image_with(&host, b"\0rebuilt frontend image");
    let text = build_with(&host, &other, &dir, "strata-it-rebuilt:2", &[]);
    assert!(
        text.contains("app: inputs"),
        "the helpers re-ran with the new image:\n{text}"
    );
    assert_copy_layers_equal(
        (&host, "strata-it-rebuilt:1"),
        (&host, "strata-it-rebuilt:2"),
    );
}

/// A checkout of examples/tts made another way: files created in reverse
/// order, group-writable as under `umask 002`, with other mtimes.
pub(crate) fn other_checkout() -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tts");
    let src = Path::new(REPO).join("examples/tts");
    let mut files = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    for f in files.iter().rev() {
        let to = root.join(f.strip_prefix(&src).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(f, &to).unwrap();
        let mode = std::fs::metadata(f).unwrap().permissions().mode() | 0o020;
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let status = Command::new("sh")
        .arg("-c")
        .arg("find . -type d -exec chmod g+w {} + && find . -exec touch -d '2031-03-04 05:06:07' {} +")
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(status.success());
    (tmp, root)
}

/// Two fresh builders of one version (separate data roots, caches pruned),
/// a minute apart, two checkouts with other mtimes, umask and creation
/// order: identical diffIDs for every copy layer, on Docker 28.5 and 26.1.
#[test]
fn two_fresh_builders_give_identical_copy_layers() {
    let _engines = crate::util::engine_lock();
    let pairs: Vec<(String, String)> = [("d28", "d28b"), ("d26", "d26b")]
        .iter()
        .filter_map(|(a, b)| Some((engine(a)?, engine(b)?)))
        .collect();
    if pairs.is_empty() {
        return;
    }
    let (_ta, a) = tts();
    Command::new("sh")
        .arg("-c")
        .arg("find . -exec touch -d '2001-02-03' {} +")
        .current_dir(&a)
        .status()
        .unwrap();
    let (_tb, b) = other_checkout();
    std::thread::scope(|s| {
        for (first, second) in &pairs {
            let (a, b) = (&a, &b);
            s.spawn(move || {
                run_ok(docker(second).args(["builder", "prune", "-af"]));
                // Only the second builder is made fresh (pruned, --no-cache):
                // the first keeps the cache other tests rely on.
                build(first, a, "strata-it-fresh:a", &[]);
                std::thread::sleep(std::time::Duration::from_secs(61));
                build(second, b, "strata-it-fresh:b", &["--no-cache"]);
                assert_copy_layers_equal(
                    (first, "strata-it-fresh:a"),
                    (second, "strata-it-fresh:b"),
                );
            });
        }
    });
}

/// (diffIDs, blob digests) of the strata layers of an OCI archive that
/// `--output type=oci` wrote, read without strata's code.
fn oci_archive_layers(path: &Path) -> (Vec<String>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("tar")
        .arg("-xf")
        .arg(path)
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let read = |digest: &str| -> serde_json::Value {
        let hex = digest.strip_prefix("sha256:").unwrap();
        serde_json::from_slice(&std::fs::read(dir.path().join("blobs/sha256").join(hex)).unwrap())
            .unwrap()
    };
    let index = read_index(dir.path());
    let mut m = read(index["manifests"][0]["digest"].as_str().unwrap());
    if m["manifests"].is_array() {
        m = read(m["manifests"][0]["digest"].as_str().unwrap());
    }
    let config = read(m["config"]["digest"].as_str().unwrap());
    let n = config["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| {
            h["created_by"]
                .as_str()
                .is_some_and(|c| c.starts_with("strata layer "))
        })
        .count();
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    let blobs: Vec<String> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    (
        diff_ids[diff_ids.len() - n..].to_vec(),
        blobs[blobs.len() - n..].to_vec(),
    )
}

fn read_index(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap()
}

/// One checkout through `--load` and `--output type=oci` on Docker 28.5,
/// `--output type=oci` on Docker 26.1 and `--load` on Docker 20.10 (whose
/// docker driver has no OCI output): copy-layer diffIDs are asserted equal
/// on 28.5 and 26.1 in both outputs; blob digests and Docker 20.10 are
/// measured and printed (`docs/reproducibility.md` holds the table).
#[test]
fn copy_layers_across_engines_and_outputs() {
    let _engines = crate::util::engine_lock();
    let (Some(h28), Some(h26)) = (engine("d28"), engine("d26")) else {
        return;
    };
    let h20 = engine("d20");
    let (_tmp, dir) = tts();
    let out = tempfile::tempdir().unwrap();
    build(&h28, &dir, "strata-it-outputs:28", &[]);
    let loaded = layers(&h28, "strata-it-outputs:28");
    let ids = strata_layers(&h28, "strata-it-outputs:28");
    let loaded = loaded[loaded.len() - ids.len()..].to_vec();
    let oci = |host: &str, name: &str| {
        let path = out.path().join(format!("{name}.tar"));
        let syntax = frontend_image(host);
        let output = format!("--output=type=oci,dest={}", path.display());
        buildx(host, &syntax, BASE, &dir, &[&output]);
        oci_archive_layers(&path)
    };
    let (d28, b28) = oci(&h28, "d28");
    let (d26, b26) = oci(&h26, "d26");
    let d20 = h20.as_deref().map(|h| {
        build(h, &dir, "strata-it-outputs:20", &[]);
        let l = layers(h, "strata-it-outputs:20");
        l[l.len() - ids.len()..].to_vec()
    });
    let mut report = String::from(
        "layer | 28.5 load = oci | 28.5 = 26.1 (diffID) | 28.5 = 26.1 (blob) | 28.5 = 20.10 (diffID)\n",
    );
    let mut wrong = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let run = TTS_LAYERS[..2].contains(&id.as_str());
        let same = |a: bool| if a { "same" } else { "differs" };
        report.push_str(&format!(
            "{id} | {} | {} | {} | {}\n",
            same(loaded[i] == d28[i]),
            same(d28[i] == d26[i]),
            same(b28[i] == b26[i]),
            d20.as_ref().map_or("not run", |d| same(d[i] == d28[i])),
        ));
        if !run && (loaded[i] != d28[i] || d28[i] != d26[i]) {
            wrong.push(id.clone());
        }
    }
    eprintln!("{report}");
    assert!(wrong.is_empty(), "copy layers differ: {wrong:?}\n{report}");
}

/// `[image] platforms` applies when buildx sends no `--platform`
/// (docs/design.md §7): Docker 28.5 builds an index of one manifest per
/// platform, each with its own `${TARGETARCH}` source, with no emulator
/// (copy layers run the helper on the builder's platform).
#[test]
fn the_spec_platforms_apply_without_a_platform_flag() {
    let _engines = crate::util::engine_lock();
    let Some(h28) = engine("d28") else { return };
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("strata.toml"),
        "version = 1\n[image]\nfrom = \"scratch\"\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n\n\
         [[layer]]\nname = \"app\"\ncopy = [{ from = \"bin/${TARGETARCH}.txt\", to = \"/app.txt\" }]\n",
    )
    .unwrap();
    std::fs::create_dir_all(ctx.path().join("bin")).unwrap();
    for arch in ["amd64", "arm64"] {
        std::fs::write(ctx.path().join(format!("bin/{arch}.txt")), arch).unwrap();
    }
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("image.tar");
    buildx(
        &h28,
        &frontend_image(&h28),
        BASE,
        ctx.path(),
        &["--output", &format!("type=oci,dest={}", archive.display())],
    );
    let dir = out.path().join("x");
    std::fs::create_dir(&dir).unwrap();
    let status = Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let read = |digest: &str| -> Vec<u8> {
        std::fs::read(
            dir.join("blobs/sha256")
                .join(digest.strip_prefix("sha256:").unwrap()),
        )
        .unwrap()
    };
    let json =
        |digest: &str| -> serde_json::Value { serde_json::from_slice(&read(digest)).unwrap() };
    let index = read_index(&dir);
    let list = json(index["manifests"][0]["digest"].as_str().unwrap());
    let mut seen = Vec::new();
    for m in list["manifests"].as_array().expect("an index of manifests") {
        let arch = m["platform"]["architecture"].as_str().unwrap().to_string();
        if m["platform"]["os"] == "unknown" {
            continue; // an attestation manifest
        }
        let manifest = json(m["digest"].as_str().unwrap());
        let config = json(manifest["config"]["digest"].as_str().unwrap());
        assert_eq!(config["architecture"], arch.as_str());
        // The one layer holds this platform's file.
        let layer = manifest["layers"].as_array().unwrap().last().unwrap();
        let blob = read(layer["digest"].as_str().unwrap());
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
        let mut found = None;
        for e in tar.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().to_string_lossy() == "app.txt" {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut e, &mut s).unwrap();
                found = Some(s);
            }
        }
        assert_eq!(found.as_deref(), Some(arch.as_str()), "{arch}'s /app.txt");
        seen.push(arch);
    }
    seen.sort();
    assert_eq!(seen, ["amd64", "arm64"]);
}

/// buildx's `--label` (a `label:NAME` frontend option) reaches the image
/// config over the spec's labels, and its `--annotation` (exporter options,
/// BuildKit 0.11 and later) the manifest and its descriptor, on Docker 28.5
/// and 26.1; read from `--output type=oci`.
#[test]
fn buildx_labels_and_annotations_reach_the_image_on_docker_28_and_26() {
    let _engines = crate::util::engine_lock();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("strata.toml"),
        "version = 1\n[image]\nfrom = \"scratch\"\nlabels = { team = \"ml\", tier = \"dev\" }\n\
         [[layer]]\nname = \"app\"\ncopy = [{ from = \"app.py\", to = \"/app/app.py\" }]\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("app.py"), "print(1)\n").unwrap();
    for name in ["d28", "d26"] {
        let Some(host) = engine(name) else { continue };
        let out = tempfile::tempdir().unwrap();
        let tar = out.path().join("image.tar");
        buildx(
            &host,
            &frontend_image(&host),
            BASE,
            dir.path(),
            &[
                "--label",
                "tier=prod",
                "--label",
                "org.opencontainers.image.revision=abc",
                "--annotation",
                "org.opencontainers.image.title=app",
                "--annotation",
                "manifest:com.example.m=1",
                "--annotation",
                "manifest-descriptor:com.example.d=2",
                &format!("--output=type=oci,dest={}", tar.display()),
            ],
        );
        let status = Command::new("tar")
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(out.path())
            .status()
            .unwrap();
        assert!(status.success());
        let read = |digest: &serde_json::Value| -> serde_json::Value {
            let hex = digest.as_str().unwrap().strip_prefix("sha256:").unwrap();
            let path = out.path().join("blobs/sha256").join(hex);
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
        };
        let desc = &read_index(out.path())["manifests"][0];
        assert_eq!(desc["annotations"]["com.example.d"], "2", "{name}: {desc}");
        let manifest = read(&desc["digest"]);
        let a = &manifest["annotations"];
        assert_eq!(
            a["org.opencontainers.image.title"], "app",
            "{name}: {manifest}"
        );
        assert_eq!(a["com.example.m"], "1", "{name}: {manifest}");
        let labels = &read(&manifest["config"]["digest"])["config"]["Labels"];
        assert_eq!(labels["team"], "ml", "{name}: {labels}");
        assert_eq!(labels["tier"], "prod", "{name}: {labels}");
        assert_eq!(labels["org.opencontainers.image.revision"], "abc", "{name}");
    }
}
