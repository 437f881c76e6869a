//! Reproducible run layers (docs/reproducibility.md, "Run layers"): the
//! same run layers built with `--no-cache` on two fresh builders, from two
//! checkouts with other mtimes and creation order, a minute apart, have the
//! same diffIDs; `normalize = false` keeps the command's own times.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::frontend::{BASE, frontend_image};
use crate::util::{daemon_diff, docker, engine, engine_lock, run_ok, with_fault_retry};

/// The layer timestamp of docs/design.md §1.
const LAYER_TIME: i64 = 315_619_200;

/// The run layers under test: a pip install of wheels from PyPI (one
/// pure-Python package of hundreds of modules, one compiled manylinux
/// wheel), a `dpkg -i` of a `.deb` from the Debian archive, a shell command
/// writing files, directories, symlinks and hard links; and, last, a layer
/// with `normalize = false`.
const SPEC: &str = r#"version = 1

[image]
from = "strata-test/debian:bookworm"
workdir = "/app"

[[layer]]
name = "pip"
run = "python3 -m pip install --no-index --find-links wheels --no-deps wheels/*.whl"
inputs = ["wheels"]

[[layer]]
name = "dpkg"
run = "dpkg -i debs/*.deb && rm -f /var/log/dpkg.log"
inputs = ["debs"]

[[layer]]
name = "shell"
run = [
  "mkdir -p /opt/made/a/b /opt/made/c",
  "for i in 1 2 3 4 5 6 7 8 9 10; do echo $i > /opt/made/a/f$i; done",
  "ln -s a/f1 /opt/made/link",
  "ln /opt/made/a/f2 /opt/made/c/hard",
  "touch /opt/made/a/b/empty",
  "rm /opt/made/a/f10",
  "chown -R 0:0 /etc/apt",
]

[[layer]]
name = "raw"
normalize = false
run = "mkdir -p /opt/raw && echo raw > /opt/raw/file"
"#;

/// The layers above, in order (their diffIDs follow the base's).
const LAYERS: [&str; 4] = ["pip", "dpkg", "shell", "raw"];

/// The downloaded inputs (once per test run): `wheels/` and `debs/`.
fn inputs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("runlayers-inputs");
        let wheels = dir.join("wheels");
        let debs = dir.join("debs");
        if !wheels.is_dir() || !debs.is_dir() {
            let tmp = dir.with_extension("tmp");
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(tmp.join("wheels")).unwrap();
            std::fs::create_dir_all(tmp.join("debs")).unwrap();
            // Pygments: pure Python, hundreds of modules; MarkupSafe: a
            // compiled manylinux wheel for the base's Python 3.11.
            let out = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--python-version",
                    "3.11",
                    "--platform",
                    "manylinux2014_x86_64",
                    "-d",
                ])
                .arg(tmp.join("wheels"))
                .args(["pygments==2.19.2", "markupsafe==3.0.2"])
                .output()
                .expect("run pip download");
            assert!(
                out.status.success(),
                "pip download: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // `hello`: no shared libraries (no ldconfig trigger).
            let out = Command::new("apt-get")
                .args(["download", "hello"])
                .current_dir(tmp.join("debs"))
                .output()
                .expect("run apt-get download");
            assert!(
                out.status.success(),
                "apt-get download: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::rename(&tmp, &dir).unwrap();
        }
        dir
    })
}

/// A checkout of the spec and inputs: files written in sorted or reverse
/// order, every mtime set to `mtime` (a `touch -d` date).
fn checkout(reverse: bool, mtime: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for sub in ["wheels", "debs"] {
        for e in std::fs::read_dir(inputs().join(sub)).unwrap() {
            let e = e.unwrap();
            files.push((
                format!("{sub}/{}", e.file_name().to_string_lossy()),
                e.path(),
            ));
        }
    }
    files.sort();
    if reverse {
        files.reverse();
    }
    std::fs::write(dir.path().join("strata.toml"), SPEC).unwrap();
    for (rel, src) in &files {
        let to = dir.path().join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(src, &to).unwrap();
    }
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("find . -exec touch -h -d '{mtime}' {{}} +"))
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

/// Builds a checkout with `--no-cache` and loads it as `tag`.
fn build(host: &str, dir: &Path, tag: &str) {
    let syntax = frontend_image(host);
    let out = with_fault_retry(&format!("build {tag}"), || {
        docker(host)
            .args([
                "buildx",
                "build",
                "--progress=plain",
                "--no-cache",
                "-f",
                "strata.toml",
            ])
            .arg(format!("--build-arg=BUILDKIT_SYNTAX={syntax}"))
            .args(["--load", "-t", tag, "."])
            .current_dir(dir)
            .output()
            .unwrap()
    });
    assert!(
        out.status.success(),
        "build {tag} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The image's diffIDs.
fn diff_ids(host: &str, image: &str) -> Vec<String> {
    let run =
        run_ok(docker(host).args(["image", "inspect", "-f", "{{json .RootFS.Layers}}", image]));
    serde_json::from_str(&run.stdout()).unwrap()
}

/// The strata layers' diffIDs of `image`, by layer name.
fn layer_ids(host: &str, image: &str) -> Vec<(String, String)> {
    let base = diff_ids(host, BASE).len();
    let ids = diff_ids(host, image);
    assert_eq!(ids.len(), base + LAYERS.len(), "{image}: {ids:?}");
    LAYERS
        .iter()
        .map(|l| l.to_string())
        .zip(ids[base..].iter().cloned())
        .collect()
}

/// `stat -c %Y` of paths in `image`.
fn mtimes(host: &str, image: &str, paths: &[&str]) -> Vec<i64> {
    let out = docker(host)
        .args(["run", "--rm", "--entrypoint", "stat", image, "-c", "%Y"])
        .args(paths)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

/// The first builds on `a` engines, a minute, then the second builds on
/// their `b` partners (`a` itself for an engine without a partner): the
/// layers that differ are exactly `raw` (`normalize = false`) and the
/// pair's `also` (what an engine cannot normalize, measured).
fn reproducible(pairs: &[(&str, &str, &[&str])]) -> Option<Vec<(String, String)>> {
    let _guard = engine_lock();
    let mut hosts = Vec::new();
    for (a, b, _) in pairs {
        let (Some(ha), Some(hb)) = (engine(a), engine(b)) else {
            return None;
        };
        hosts.push((ha, hb));
    }
    let first = checkout(false, "2001-02-03 04:05:06");
    let second = checkout(true, "2011-12-13 14:15:16");
    for (ha, _) in &hosts {
        build(ha, first.path(), "strata-it-runlayers:a");
    }
    // Other clocks, whole seconds apart, for the second builds.
    std::thread::sleep(std::time::Duration::from_secs(61));
    for (_, hb) in &hosts {
        build(hb, second.path(), "strata-it-runlayers:b");
    }
    for ((ha, hb), (a, b, also)) in hosts.iter().zip(pairs) {
        let la = layer_ids(ha, "strata-it-runlayers:a");
        let lb = layer_ids(hb, "strata-it-runlayers:b");
        let differ: Vec<&str> = la
            .iter()
            .zip(&lb)
            .filter(|(x, y)| x.1 != y.1)
            .map(|(x, _)| x.0.as_str())
            .collect();
        // The raw layer keeps build-time mtimes, so it differs; the others
        // must not.
        let mut want: Vec<&str> = also.to_vec();
        want.push("raw");
        want.sort_by_key(|l| LAYERS.iter().position(|x| x == l));
        assert_eq!(
            differ,
            want,
            "{a} vs {b}: layers that differ (only {want:?} may):\n{}",
            daemon_diff((ha, "strata-it-runlayers:a"), (hb, "strata-it-runlayers:b"))
        );
        // What the normalized layers wrote has the layer timestamp; the
        // `normalize = false` layer keeps the build's time.
        let times = mtimes(
            ha,
            "strata-it-runlayers:a",
            &[
                "/opt/made/a/f1",
                "/opt/made/link",
                "/opt/made",
                "/usr/bin/hello",
                "/opt/raw/file",
            ],
        );
        assert_eq!(&times[..4], &[LAYER_TIME; 4], "{a}: {times:?}");
        assert!(
            times[4] > 1_700_000_000,
            "{a}: /opt/raw/file keeps its build time: {times:?}"
        );
    }
    Some(hosts)
}

#[test]
fn run_layers_are_reproducible_on_docker_28_and_26() {
    reproducible(&[("d28", "d28b", &[]), ("d26", "d26b", &[])]);
}

/// Docker 20.10 (BuildKit 0.8, the fallback): the same builds, measured
/// (docs/reproducibility.md). Every run layer differs there, but only where
/// BuildKit 0.8 writes after the command: the empty stubs of the input
/// mount points stay in the layer, and removing its `/etc/hosts` stub (the
/// base has none) gives `/etc` the removal time; what the commands wrote is
/// the same.
#[test]
fn run_layers_on_docker_20() {
    let Some(host) = reproducible(&[("d20", "d20", &["pip", "dpkg", "shell"])]) else {
        return;
    };
    let (host, _) = &host[0];
    let paths = differing_paths(host);
    let want = |l: &str| -> Vec<String> {
        match l {
            "pip" => vec!["app/wheels".into(), "etc".into()],
            "dpkg" => vec!["app/debs".into(), "etc".into()],
            _ => vec!["etc".into()],
        }
    };
    for l in ["pip", "dpkg", "shell"] {
        assert_eq!(paths.get(l), Some(&want(l)), "{l}: {paths:?}");
    }
}

/// The paths that differ, per layer, between the two images in `host`
/// (`strata diff --format json`).
fn differing_paths(host: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let mut sides = Vec::new();
    for (i, tag) in ["strata-it-runlayers:a", "strata-it-runlayers:b"]
        .iter()
        .enumerate()
    {
        let file = dir.path().join(format!("{i}.tar"));
        let out = docker(host)
            .args(["save", "-o"])
            .arg(&file)
            .arg(tag)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        sides.push(format!("docker-archive:{}:{tag}", file.display()));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(["diff", "--format", "json", &sides[0], &sides[1]])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut paths = std::collections::BTreeMap::new();
    for l in report["platforms"][0]["layers"].as_array().unwrap() {
        let mut ps: Vec<String> = l["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["path"].as_str().unwrap().to_string())
            .collect();
        ps.sort();
        if !ps.is_empty() {
            paths.insert(l["name"].as_str().unwrap().to_string(), ps);
        }
    }
    paths
}

/// A run layer that starts in the same second as the previous one ended
/// adds nothing of what that layer wrote with its build-time mtimes: the
/// normalizer's start mark must not fall before the exec began (Docker
/// 20.10's shared `/dev/mqueue` has whole-second ctimes and once made it do
/// so; Docker 28.5 for contrast).
#[test]
fn a_run_layer_right_after_another_takes_nothing_of_it() {
    const SPEC: &str = r#"version = 1

[image]
from = "strata-test/debian:bookworm"

# Keeps the build's mtimes, as the mount stubs of Docker 20.10 do.
[[layer]]
name = "first"
normalize = false
run = [
  "while :; do case $(date +%N) in 0*) break;; esac; done",
  "mkdir -p /opt/first && echo 1 > /opt/first/f",
]

[[layer]]
name = "second"
run = "mkdir /second"
"#;
    let _guard = engine_lock();
    for name in ["d20", "d28"] {
        let Some(host) = engine(name) else { return };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("strata.toml"), SPEC).unwrap();
        // Several tries: each one whose layers fall in one second could
        // show the fault.
        for i in 0..3 {
            let tag = format!("strata-it-runlayers-next:{i}");
            build(&host, dir.path(), &tag);
            let layers = layer_entries(&host, &tag);
            let second = layers.last().unwrap();
            assert!(
                second.iter().any(|p| p == "second"),
                "{name}: the last layer is not `second`: {second:?}"
            );
            let leaked: Vec<&String> = second.iter().filter(|p| p.starts_with("opt")).collect();
            assert!(
                leaked.is_empty(),
                "{name}, try {i}: the second layer holds what the first wrote: {leaked:?}\n\
                 all of it: {second:?}"
            );
        }
    }
}

/// The paths in each layer of `image` (`docker save`), without trailing
/// slashes, layer by layer.
fn layer_entries(host: &str, image: &str) -> Vec<Vec<String>> {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("image.tar");
    run_ok(docker(host).args(["save", "-o"]).arg(&file).arg(image));
    let mut members = std::collections::BTreeMap::new();
    let mut outer = tar::Archive::new(std::fs::File::open(&file).unwrap());
    for e in outer.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        members.insert(path, bytes);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&members["manifest.json"]).unwrap();
    manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let bytes = &members[l.as_str().unwrap()];
            let reader: Box<dyn Read> = if bytes.starts_with(&[0x1f, 0x8b]) {
                Box::new(flate2::read::GzDecoder::new(&bytes[..]))
            } else {
                Box::new(&bytes[..])
            };
            tar::Archive::new(reader)
                .entries()
                .unwrap()
                .map(|e| {
                    let p = e.unwrap().path().unwrap().to_string_lossy().into_owned();
                    p.trim_end_matches('/').to_string()
                })
                .collect()
        })
        .collect()
}
