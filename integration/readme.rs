//! The README's user path, run as a user would run it (CONTRIBUTING.md, "The
//! README test"): the quickstart's command blocks, marked
//! `<!-- readme-test: PATH -->`, run by bash in a fresh clone of the checkout
//! with the binary under test as `strata`, against engine d28 (its build
//! cache pruned) and the loopback registry. A README that drifts from what
//! works fails here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use regex::Regex;

use crate::frontend::{BASE, REPO, frontend_image};
use crate::util::{REGISTRY, docker, engine, engine_lock, nonce, run_ok, tool, with_fault_retry};

/// One quickstart path of the README: its commands (the marked blocks in
/// order, one bash script) and what the last of them prints.
#[derive(Debug, Default, PartialEq)]
struct Quickstart {
    commands: String,
    output: Option<String>,
}

/// The marked blocks of `readme`, by path name. A marker
/// `<!-- readme-test: NAME -->` (or `… NAME output -->`) on a line of its
/// own applies to the next code block, fenced or indented, before the next
/// heading or marker; anything else is an error naming the line.
fn extract(readme: &str) -> Result<BTreeMap<String, Quickstart>, String> {
    let marker = Regex::new(r"^<!--\s*readme-test:\s*([a-z0-9-]+)(\s+output)?\s*-->\s*$").unwrap();
    let lines: Vec<&str> = readme.lines().collect();
    let mut paths: BTreeMap<String, Quickstart> = BTreeMap::new();
    let mut i = 0;
    while i < lines.len() {
        if !lines[i].trim_start().starts_with("<!-- readme-test") {
            i += 1;
            continue;
        }
        let at = i + 1;
        let m = marker
            .captures(lines[i])
            .ok_or_else(|| format!("README.md:{at}: malformed marker `{}`", lines[i]))?;
        let (block, next) =
            next_block(&lines, i + 1).map_err(|e| format!("README.md:{at}: {e}"))?;
        let path = paths.entry(m[1].to_string()).or_default();
        if m.get(2).is_some() {
            if path.output.replace(block).is_some() {
                return Err(format!(
                    "README.md:{at}: a second output block for `{}`",
                    &m[1]
                ));
            }
        } else {
            path.commands.push_str(&block);
        }
        i = next;
    }
    Ok(paths)
}

/// The code block at or after line index `from` (its text, each line ending
/// in a newline) and the index after it.
fn next_block(lines: &[&str], from: usize) -> Result<(String, usize), String> {
    let mut j = from;
    while j < lines.len() {
        let line = lines[j];
        if line.starts_with('#') || line.trim_start().starts_with("<!-- readme-test") {
            break;
        }
        if line.starts_with("```") {
            let end = (j + 1..lines.len())
                .find(|&k| lines[k].starts_with("```"))
                .ok_or("the marked fenced block is not closed")?;
            let text = lines[j + 1..end].iter().map(|l| format!("{l}\n")).collect();
            return Ok((text, end + 1));
        }
        if line.starts_with("    ") && (j == 0 || lines[j - 1].trim().is_empty()) {
            let mut end = j;
            while end < lines.len()
                && (lines[end].starts_with("    ") || lines[end].trim().is_empty())
            {
                end += 1;
            }
            let mut body: Vec<&str> = lines[j..end]
                .iter()
                .map(|l| l.get(4..).unwrap_or(""))
                .collect();
            while body.last().is_some_and(|l| l.trim().is_empty()) {
                body.pop();
            }
            return Ok((body.iter().map(|l| format!("{l}\n")).collect(), end));
        }
        j += 1;
    }
    Err("the marker has no code block after it in its section".into())
}

/// The README's placeholders and what the test puts in their place
/// (CONTRIBUTING.md, "The README test"): `REGISTRY`, a registry and
/// repository prefix the builders reach, becomes a new prefix on the
/// loopback registry; the public base `python:3.12-slim` (the suite does not
/// reach Docker Hub) becomes the suite's Debian base with python3, pushed to
/// that prefix under the same name.
fn substitute(text: &str, registry: &str) -> String {
    let text = text.replace("python:3.12-slim", "REGISTRY/python:3.12-slim");
    Regex::new(r"\bREGISTRY\b")
        .unwrap()
        .replace_all(&text, registry)
        .into_owned()
}

/// A fresh clone of the checkout in `dir`: its HEAD commit, plus the
/// uncommitted changes to tracked files (what the binary under test was
/// built from); untracked files stay out, as from any clone.
fn fresh_clone(dir: &Path) -> PathBuf {
    let clone = dir.join(format!("strata-{}", nonce()));
    let head = run_ok(Command::new("git").args(["-C", REPO, "rev-parse", "HEAD"])).stdout();
    run_ok(
        Command::new("git")
            .args(["clone", "--quiet", "--no-checkout", REPO])
            .arg(&clone),
    );
    run_ok(Command::new("git").arg("-C").arg(&clone).args([
        "checkout",
        "--quiet",
        "--detach",
        head.trim(),
    ]));
    let diff = run_ok(Command::new("git").args(["-C", REPO, "diff", "--binary", "HEAD"]))
        .0
        .stdout;
    if !diff.is_empty() {
        let patch = dir.join("uncommitted.patch");
        std::fs::write(&patch, diff).unwrap();
        run_ok(
            Command::new("git")
                .arg("-C")
                .arg(&clone)
                .arg("apply")
                .arg(&patch),
        );
    }
    clone
}

/// Runs the README's quickstart `name` on engine d28, from a fresh clone,
/// and asserts that it succeeds and that its last command prints what the
/// README says.
fn run_quickstart(name: &str) {
    let Some(host) = engine("d28") else { return };
    if tool("git").is_none() || tool("docker").is_none() {
        return;
    }
    let _engines = engine_lock();
    let tmp = tempfile::tempdir().unwrap();
    let readme = std::fs::read_to_string(fresh_clone(tmp.path()).join("README.md")).unwrap();
    let paths = extract(&readme).unwrap();
    let quickstart = paths
        .get(name)
        .unwrap_or_else(|| panic!("README.md marks no `{name}` quickstart"));
    let registry = format!("{REGISTRY}/readme-{}", nonce());

    // A fresh engine: no build cache, none of the quickstart's images.
    run_ok(docker(&host).args(["builder", "prune", "-af"]));
    let _ = docker(&host)
        .args(["image", "rm", "-f", "model-only:latest", "model-only:dev"])
        .output();
    // What the quickstart pulls: the frontend image of the binary under test
    // under every `REGISTRY/strata:TAG` it names, and the base.
    let frontend = frontend_image(&host);
    let tags = Regex::new(r"\bREGISTRY/strata:([0-9A-Za-z._-]+)").unwrap();
    let mut pushed = vec![(BASE.to_string(), format!("{registry}/python:3.12-slim"))];
    for tag in tags.captures_iter(&quickstart.commands) {
        pushed.push((frontend.clone(), format!("{registry}/strata:{}", &tag[1])));
    }
    for (local, remote) in &pushed {
        run_ok(docker(&host).args(["tag", local, remote]));
        run_ok(docker(&host).args(["push", "-q", remote]));
        // Pulled back from the registry by the builder, not found locally.
        run_ok(docker(&host).args(["image", "rm", remote]));
    }

    let script = format!(
        "set -euxo pipefail\n{}",
        substitute(&quickstart.commands, &registry)
    );
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_strata")).parent().unwrap();
    let path = std::env::join_paths(std::iter::once(bin_dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    // An engine fault retries the whole path in another fresh clone.
    let out: Output = with_fault_retry(&format!("README quickstart `{name}`"), || {
        Command::new("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(fresh_clone(tmp.path()))
            .env("PATH", &path)
            .env("DOCKER_HOST", &host)
            .env(
                "STRATA_CACHE_DIR",
                tmp.path().join(format!("cache-{}", nonce())),
            )
            .env("NO_COLOR", "1")
            .env_remove("SOURCE_DATE_EPOCH")
            .output()
            .expect("run bash")
    });
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "README quickstart `{name}` failed ({}):\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    let expected = quickstart
        .output
        .as_deref()
        .unwrap_or_else(|| panic!("README.md marks no output of the `{name}` quickstart"));
    assert!(
        stdout.trim_end().ends_with(expected.trim_end()),
        "README quickstart `{name}`: the README says it prints\n{expected}\nit printed\n{stdout}\n--- stderr\n{stderr}"
    );
}

#[test]
fn embedded_quickstart_runs_on_docker_28() {
    run_quickstart("embedded");
}

#[test]
fn buildkit_quickstart_runs_on_docker_28() {
    run_quickstart("buildkit");
}

/// The README marks both quickstart paths, each ending with the built image
/// running and naming the frontend by the crate's version.
#[test]
fn the_readme_marks_both_quickstarts() {
    let readme = std::fs::read_to_string(Path::new(REPO).join("README.md")).unwrap();
    let paths = extract(&readme).unwrap();
    assert_eq!(paths.keys().collect::<Vec<_>>(), ["buildkit", "embedded"]);
    for (name, q) in &paths {
        let last = q.commands.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("docker run "),
            "`{name}` ends with `{last}`, not the image running"
        );
        assert!(
            q.output.as_deref().is_some_and(|o| !o.trim().is_empty()),
            "`{name}` has no output"
        );
    }
    assert!(paths["embedded"].commands.contains("strata build "));
    assert!(
        !paths["embedded"].commands.contains("buildx"),
        "the embedded path needs no BuildKit"
    );
    let buildkit = &paths["buildkit"].commands;
    assert!(buildkit.contains("docker buildx build -f strata.toml "));
    // The frontend's tag is the crate's X.Y.Z, X.Y or X (docs/frontend.md).
    let version = env!("CARGO_PKG_VERSION");
    let minor = version.rsplit_once('.').unwrap().0;
    let major = minor.split_once('.').unwrap().0;
    let syntax = Regex::new(r"# syntax=REGISTRY/strata:([0-9.]+)").unwrap();
    let tag = &syntax
        .captures(buildkit)
        .expect("a `# syntax=REGISTRY/strata:TAG` line")[1];
    assert!(
        [version, minor, major].contains(&tag),
        "the README names strata:{tag}, the crate is {version}"
    );
}

#[test]
fn markers_take_the_next_fenced_or_indented_block() {
    let text = "# T\n\n<!-- readme-test: a -->\n\n    one \\\n      two\n\n    three\n\nprose\n\n\
                <!-- readme-test: a output -->\nIt prints\n\n```\nout\n```\n\n\
                <!-- readme-test: b -->\n```sh\nfour\n```\n";
    let paths = extract(text).unwrap();
    assert_eq!(
        paths["a"],
        Quickstart {
            commands: "one \\\n  two\n\nthree\n".into(),
            output: Some("out\n".into())
        }
    );
    assert_eq!(paths["b"].commands, "four\n");
    assert_eq!(paths["b"].output, None);
}

#[test]
fn a_marker_without_its_block_is_an_error() {
    let e = extract("<!-- readme-test: a -->\nprose\n\n## Next\n\n    cmd\n").unwrap_err();
    assert!(
        e.starts_with("README.md:1: the marker has no code block"),
        "{e}"
    );
    let e =
        extract("x\n<!-- readme-test: a -->\n<!-- readme-test: b -->\n\n    cmd\n").unwrap_err();
    assert!(e.starts_with("README.md:2:"), "{e}");
    let e = extract("<!-- readme-test a -->\n\n    cmd\n").unwrap_err();
    assert!(e.contains("malformed marker"), "{e}");
    let e = extract("<!-- readme-test: a -->\n```\ncmd\n").unwrap_err();
    assert!(e.contains("not closed"), "{e}");
}

#[test]
fn placeholders_name_the_loopback_registry() {
    assert_eq!(
        substitute(
            "echo '# syntax=REGISTRY/strata:0.1' BASE=python:3.12-slim MY_REGISTRY",
            "127.0.0.1:5000/x"
        ),
        "echo '# syntax=127.0.0.1:5000/x/strata:0.1' BASE=127.0.0.1:5000/x/python:3.12-slim MY_REGISTRY"
    );
}
