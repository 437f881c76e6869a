//! The command line as a user meets it: progress, network notices,
//! completions, output formats, small errors.

use std::process::{Command, Stdio};

use crate::util::{Ctx, Run, ok, tool};

const TWO_LAYERS: &str = r#"version = 1
[image]
from = "scratch"

[[layer]]
name = "data"
copy = [{ from = "data", to = "/data" }]

[[layer]]
name = "app"
copy = [{ from = "app.py", to = "/app/app.py" }]
"#;

fn two_layers() -> Ctx {
    let ctx = Ctx::new();
    ctx.spec(TWO_LAYERS);
    ctx.write("data/a.txt", "a\n".repeat(1000));
    ctx.write("data/b.txt", "b\n");
    ctx.write("app.py", "print(1)\n");
    ctx
}

/// Lines of `err` that start with a layer ID.
fn layer_lines<'a>(err: &'a str, id: &str) -> Vec<&'a str> {
    err.lines()
        .filter(|l| l.split_whitespace().next() == Some(id))
        .collect()
}

#[test]
fn build_without_a_terminal_prints_one_plain_line_per_layer() {
    let ctx = two_layers();
    let out = ctx.outside("out");
    let dest = format!("oci-layout:{}", out.display());
    let run = ctx.strata(&["build", ".", "-o", &dest]);
    let digest = ok(&run);
    assert!(digest.starts_with("sha256:"), "{digest}");
    let err = run.stderr();
    // No terminal: no escape sequences, no spinner.
    assert!(!err.contains('\u{1b}'), "{err:?}");
    let data = layer_lines(&err, "data");
    assert_eq!(data.len(), 1, "{err}");
    assert!(data[0].contains(" built "), "{err}");
    // Input bytes and files, time and rate, and the blob's short digest.
    assert!(data[0].contains("from 1.96 KiB in 2 files"), "{err}");
    assert!(data[0].contains("/s)"), "{err}");
    let app = layer_lines(&err, "app");
    assert!(app[0].contains("in 1 file,"), "{err}");
    assert!(err.contains("hashed 3 files"), "{err}");
    assert!(err.contains("2 layers (0 reused, 2 written) in "), "{err}");

    // Again: both reused, said at once, with no timing (nothing was written).
    let run = ctx.strata(&["build", ".", "-o", &dest, "--progress", "plain"]);
    ok(&run);
    let err = run.stderr();
    for id in ["data", "app"] {
        let l = layer_lines(&err, id);
        assert_eq!(l.len(), 1, "{err}");
        assert!(l[0].contains(" reused "), "{err}");
        assert!(!l[0].contains("/s"), "{err}");
    }
    // Files this fresh are hashed again (the stat cache trusts only files
    // older than their last hash); either way the hashing says its line.
    assert!(
        err.contains("hashed 3 files") || err.contains("inputs unchanged: 3 files"),
        "{err}"
    );
    assert!(err.contains("(2 reused, 0 written)"), "{err}");
}

#[test]
fn build_quiet_prints_only_the_digest() {
    for flag in [&["-q"][..], &["--quiet"], &["--progress", "quiet"]] {
        let ctx = two_layers();
        let dest = format!("oci-layout:{}", ctx.outside("out").display());
        let mut args = vec!["build", ".", "-o", &dest];
        args.extend_from_slice(flag);
        let run = ctx.strata(&args);
        let digest = ok(&run);
        assert!(digest.starts_with("sha256:") && !digest.contains('\n'));
        assert_eq!(run.stderr(), "", "{flag:?}");
    }
    // Warnings still show under --quiet.
    let ctx = two_layers();
    let dest = format!("oci-layout:{}", ctx.outside("out").display());
    let run = ctx.strata(&["build", ".", "-o", &dest, "-q", "--build-arg", "NOPE=1"]);
    ok(&run);
    assert!(
        run.stderr().contains("not declared in [args]"),
        "{}",
        run.stderr()
    );
}

#[test]
fn build_progress_takes_the_buildx_values() {
    let ctx = two_layers();
    let run = ctx.strata(&["build", ".", "-o", "oci-layout:x", "--progress", "fancy"]);
    assert_eq!(run.code(), 2);
    for v in ["auto", "tty", "plain", "quiet"] {
        assert!(run.stderr().contains(v), "{}", run.stderr());
    }
}

/// Runs `strata ARGS` under a pseudo-terminal (`script` from util-linux);
/// returns what the terminal showed.
fn under_pty(ctx: &Ctx, args: &str) -> Option<String> {
    tool("script")?;
    let cmd = format!("{} {args} 2>&1", env!("CARGO_BIN_EXE_strata"));
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(ctx.path())
        .env("STRATA_CACHE_DIR", ctx.cache())
        .env("NO_COLOR", "1")
        .env("TERM", "xterm")
        .env_remove("STRATA_PROGRESS")
        .output()
        .expect("run script");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn build_on_a_terminal_draws_live_lines_and_keeps_the_layer_lines() {
    let ctx = two_layers();
    // A layer big enough to be seen while it is written.
    let big: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    ctx.write("data/big.bin", big);
    let dest = format!("oci-layout:{}", ctx.outside("out").display());
    let Some(shown) = under_pty(&ctx, &format!("build . -o {dest}")) else {
        return;
    };
    // Live lines are redrawn in place: cursor movement and line clearing.
    assert!(shown.contains("\u{1b}["), "{shown:?}");
    assert!(shown.contains("hashing inputs"), "{shown:?}");
    assert!(shown.contains("writing"), "{shown:?}");
    // The finished lines stay, as without a terminal.
    assert!(shown.contains(" built "), "{shown:?}");
    assert!(
        shown.contains("2 layers (0 reused, 2 written)"),
        "{shown:?}"
    );
    // `--progress plain` on a terminal: no live lines.
    let shown = under_pty(&ctx, &format!("build . -o {dest} --progress plain")).unwrap();
    assert!(!shown.contains("hashing inputs"), "{shown:?}");
    assert!(shown.contains(" reused "), "{shown:?}");
}

/// Reads `out`, the output of `child`, to its end; returns whether the
/// child was still running when `mark` arrived, and everything read.
fn seen_while_running(
    mut child: std::process::Child,
    mut out: impl std::io::Read,
    mark: &str,
) -> (bool, String) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let mut running = None;
    loop {
        let n = out.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
        if running.is_none() && String::from_utf8_lossy(&seen).contains(mark) {
            running = Some(child.try_wait().unwrap().is_none());
        }
    }
    assert!(
        child.wait().unwrap().success(),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    let seen = String::from_utf8_lossy(&seen).into_owned();
    (
        running.unwrap_or_else(|| panic!("`{mark}` never shown:\n{seen}")),
        seen,
    )
}

/// Progress shows while the build runs, not after it: on a terminal the
/// first live line, without one the line of a layer as soon as that layer
/// is done (the small `app` while the 64 MiB `data` is still written).
#[test]
fn progress_arrives_while_the_build_runs() {
    let ctx = two_layers();
    ctx.write("data/big.bin", crate::util::noise(64 << 20, 7));
    let Some(_) = tool("script") else { return };
    let dest = format!("oci-layout:{}", ctx.outside("tty").display());
    let cmd = format!("{} build . -o {dest} 2>&1", env!("CARGO_BIN_EXE_strata"));
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(ctx.path())
        .env("STRATA_CACHE_DIR", ctx.cache())
        .env("TERM", "xterm")
        .env_remove("STRATA_PROGRESS")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (running, seen) = seen_while_running(child, out, "hashing inputs");
    assert!(
        running,
        "the first progress line came only at the end:\n{seen:?}"
    );

    std::fs::remove_dir_all(ctx.cache()).unwrap();
    let dest = format!("oci-layout:{}", ctx.outside("plain").display());
    let mut child = ctx
        .command(&["build", ".", "-o", &dest, "--progress", "plain"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let (running, seen) = seen_while_running(child, err, "\napp ");
    assert!(running, "the `app` line came only at the end:\n{seen}");
    let app = seen.find("\napp ").unwrap();
    let data = seen.find("\ndata ").unwrap();
    assert!(app < data, "{seen}");
}

/// A repository on the shared loopback registry no other run uses.
fn unique_repo(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "127.0.0.1:5000/registry-it/{name}-{}-{nanos}",
        std::process::id()
    )
}

/// Runs `strata` with an empty Docker config.
fn strata(ctx: &Ctx, args: &[&str]) -> Run {
    let docker_config = ctx.outside("docker-config");
    std::fs::create_dir_all(&docker_config).unwrap();
    ctx.strata_env(args, &[("DOCKER_CONFIG", docker_config.to_str().unwrap())])
}

/// The layer keys of `strata plan --format json` (one platform).
fn plan_keys(run: &Run) -> Vec<Option<String>> {
    let v: serde_json::Value = serde_json::from_str(&ok(run)).unwrap();
    v["platforms"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["key"].as_str().map(String::from))
        .collect()
}

#[test]
fn network_use_is_said_and_offline_is_honoured() {
    // A base on the shared loopback registry.
    let base_ctx = two_layers();
    let base_ref = format!("{}:1", unique_repo("cli-base"));
    let run = strata(
        &base_ctx,
        &["build", ".", "--output", &format!("registry:{base_ref}")],
    );
    ok(&run);
    assert!(
        run.stderr().contains(&format!(
            "network: registry 127.0.0.1:5000: pushing `{base_ref}`"
        )),
        "{}",
        run.stderr()
    );

    let ctx = Ctx::new();
    ctx.spec(&format!(
        "version = 1\n[image]\nfrom = \"{base_ref}\"\nplatforms = [\"linux/amd64\"]\n\n\
         [[layer]]\nname = \"app\"\ncopy = [{{ from = \"app.py\", to = \"/app/app.py\" }}]\n"
    ));
    ctx.write("app.py", "print(2)\n");

    // Offline and unpinned: nothing contacted, the plan says why it has no keys.
    let run = strata(&ctx, &["plan", ".", "--offline", "--format", "json"]);
    assert_eq!(plan_keys(&run), [None]);
    let err = run.stderr();
    assert!(!err.contains("network:"), "{err}");
    assert!(err.contains("has no pin in strata.lock"), "{err}");
    assert!(err.contains("--offline"), "{err}");
    assert!(err.contains("strata lock"), "{err}");

    // Online and unpinned: the lookup is said, with how to avoid it.
    let run = strata(&ctx, &["plan", ".", "--format", "json"]);
    let keys = plan_keys(&run);
    assert!(keys[0].is_some(), "{}", run.stderr());
    let err = run.stderr();
    assert!(
        err.contains(&format!(
            "network: registry 127.0.0.1:5000: resolving `{base_ref}`: it has no pin in strata.lock (pin it with `strata lock`"
        )),
        "{err}"
    );

    // Pinned and cached: offline plan and build need nothing.
    let run = strata(&ctx, &["lock", "."]);
    ok(&run);
    assert!(
        run.stderr()
            .contains("network: registry 127.0.0.1:5000: resolving")
    );
    let run = strata(&ctx, &["plan", ".", "--offline", "--format", "json"]);
    assert_eq!(plan_keys(&run), keys, "{}", run.stderr());
    assert!(!run.stderr().contains("network:"), "{}", run.stderr());
    assert!(!run.stderr().contains("warning"), "{}", run.stderr());
    let dest = format!("oci-layout:{}", ctx.outside("out").display());
    let run = strata(&ctx, &["build", ".", "--offline", "-o", &dest]);
    ok(&run);
    assert!(!run.stderr().contains("network:"), "{}", run.stderr());

    // A push and --against registry: are refused offline, exit 1.
    let registry = format!("registry:{base_ref}");
    for args in [
        ["build", ".", "--offline", "-o", &registry],
        ["plan", ".", "--offline", "--against", &registry],
    ] {
        let run = strata(&ctx, &args);
        assert_eq!(run.code(), 1, "{args:?}: {}", run.stderr());
        assert!(
            run.stderr().contains("--offline was given"),
            "{args:?}: {}",
            run.stderr()
        );
    }

    // check takes --offline too.
    ok(&strata(&ctx, &["check", ".", "--offline"]));
}

#[test]
fn plan_says_why_an_unreachable_base_leaves_the_keys_out() {
    let ctx = Ctx::new();
    // Port 9 (discard): nothing listens there.
    ctx.spec(
        "version = 1\n[image]\nfrom = \"127.0.0.1:9/none/base:1\"\nplatforms = [\"linux/amd64\"]\n\n\
         [[layer]]\nname = \"app\"\ncopy = [{ from = \"app.py\", to = \"/app.py\" }]\n",
    );
    ctx.write("app.py", "print(2)\n");
    let run = strata(&ctx, &["plan", ".", "--format", "json"]);
    assert_eq!(plan_keys(&run), [None]);
    let err = run.stderr();
    assert!(
        err.contains("network: registry 127.0.0.1:9: resolving"),
        "{err}"
    );
    assert!(
        err.contains(
            "the base `127.0.0.1:9/none/base:1` was not read, so the plan has no layer keys"
        ),
        "{err}"
    );
}

#[test]
fn completions_load_in_bash_and_exist_for_every_shell() {
    let ctx = Ctx::new();
    let bin = env!("CARGO_BIN_EXE_strata");
    if tool("bash").is_some() {
        let out = Command::new("bash")
            .args([
                "-c",
                &format!("source <('{bin}' completions bash) && complete -p strata"),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(shown.contains("-F _strata strata"), "{shown}");
        // Completing `strata b` offers `build`, from the same clap definition.
        let out = Command::new("bash")
            .args([
                "-c",
                &format!(
                    "source <('{bin}' completions bash) && COMP_WORDS=(strata b) COMP_CWORD=1 COMP_LINE='strata b' COMP_POINT=8 && _strata strata b strata && echo \"${{COMPREPLY[@]}}\""
                ),
            ])
            .output()
            .unwrap();
        let words = String::from_utf8_lossy(&out.stdout);
        assert!(words.split_whitespace().any(|w| w == "build"), "{words}");
    }
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let run = ctx.strata(&["completions", shell]);
        let script = ok(&run);
        for word in ["build", "progress", "offline"] {
            assert!(script.contains(word), "{shell}: {word}");
        }
    }
    let run = ctx.strata(&["completions", "tcsh"]);
    assert_eq!(run.code(), 2);
    assert!(run.stderr().contains("powershell"), "{}", run.stderr());
}

#[test]
fn man_writes_one_page_per_subcommand() {
    let ctx = Ctx::new();
    let dir = ctx.outside("man");
    let run = ctx.strata(&["man", dir.to_str().unwrap()]);
    ok(&run);
    for page in [
        "strata",
        "strata-build",
        "strata-plan",
        "strata-cache-prune",
        "strata-completions",
    ] {
        let text = std::fs::read_to_string(dir.join(format!("{page}.1"))).unwrap();
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page}: {text}"
        );
        let name = page.replace('-', "\\-");
        assert!(text.contains(&format!("{name} \\- ")), "{page}: {text}");
        assert!(
            // `strata --version`: the version, then the commit in parentheses.
            text.contains(&format!("\"{page} {} (", env!("CARGO_PKG_VERSION"))),
            "{page}: {text}"
        );
    }
    let build = std::fs::read_to_string(dir.join("strata-build.1")).unwrap();
    assert!(build.contains("progress"), "{build}");
    // Hidden internal commands get no page.
    assert!(!dir.join("strata-helper.1").exists());
    assert!(!dir.join("strata-frontend.1").exists());
}

#[test]
fn plan_json_has_one_shape_for_one_and_several_platforms() {
    let ctx = two_layers();
    for (platforms, n) in [("linux/amd64", 1), ("linux/amd64,linux/arm64", 2)] {
        let run = ctx.strata(&["plan", ".", "--platform", platforms, "--format", "json"]);
        let doc: serde_json::Value = serde_json::from_str(&ok(&run)).unwrap();
        assert_eq!(doc["schema"], "strata.plan/v2");
        assert!(doc["target"].is_null());
        let p = doc["platforms"].as_array().unwrap();
        assert_eq!(p.len(), n, "{doc}");
        for (want, got) in platforms.split(',').zip(p) {
            assert_eq!(got["platform"], want);
            assert_eq!(got["layers"].as_array().unwrap().len(), 2);
        }
    }
}

#[test]
fn cache_du_takes_json_and_prune_takes_days_and_any_size_unit() {
    let ctx = two_layers();
    let dest = format!("oci-layout:{}", ctx.outside("out").display());
    ok(&ctx.strata(&["build", ".", "-o", &dest]));
    let doc: serde_json::Value =
        serde_json::from_str(&ok(&ctx.strata(&["cache", "du", "--format", "json"]))).unwrap();
    assert_eq!(doc["schema"], "strata.cache-du/v1");
    assert_eq!(doc["root"], ctx.cache().display().to_string());
    assert_eq!(doc["blobs"], 2, "{doc}");
    assert!(doc["blob_bytes"].as_u64().unwrap() > 0, "{doc}");
    assert_eq!(doc["layer_records"], 2, "{doc}");
    assert_eq!(doc["build_records"], 1, "{doc}");
    assert!(doc["stat_cache_bytes"].is_u64(), "{doc}");
    let table = ok(&ctx.strata(&["cache", "du"]));
    assert!(table.contains("layer blobs\t2\t"), "{table}");

    // Nothing is a week old; sizes in what users write.
    let run = ctx.strata(&["cache", "prune", "--older-than", "7d"]);
    ok(&run);
    assert!(
        run.stderr()
            .contains("removed 0 blobs (0 B) and 0 layer records"),
        "{}",
        run.stderr()
    );
    let run = ctx.strata(&["cache", "prune", "--max-size", "16kb"]);
    ok(&run);
    let run = ctx.strata(&["cache", "prune", "--older-than", "7 days"]);
    assert_eq!(run.code(), 2);
    assert!(
        run.stderr().contains("units: s, m, h, d, w"),
        "{}",
        run.stderr()
    );
    let run = ctx.strata(&["cache", "prune", "--max-size", "1 parsec"]);
    assert_eq!(run.code(), 2);
    for unit in ["B", "kB", "KiB", "MB", "MiB", "GB", "GiB", "TB", "TiB"] {
        assert!(run.stderr().contains(unit), "{}", run.stderr());
    }
    let run = ctx.strata(&["cache", "prune", "--max-size", "1b"]);
    ok(&run);
    assert!(run.stderr().contains("removed 2 blobs"), "{}", run.stderr());
}

#[test]
fn plan_table_labels_its_columns_and_counts_files_in_words() {
    let ctx = two_layers();
    let dest = format!("oci-layout:{}", ctx.outside("out").display());
    ok(&ctx.strata(&["build", ".", "-o", &dest]));
    ctx.write("app.py", "print(1) # changed\n");
    let table = ok(&ctx.strata(&["plan", "."]));
    let header = table.lines().next().unwrap();
    for col in ["LAYER", "INPUTS", "INPUT BYTES", "FILES", "STATUS"] {
        assert!(header.contains(col), "{table}");
    }
    let app = table.lines().find(|l| l.starts_with("app")).unwrap();
    assert!(
        app.contains("inputs changed: 1 file, 9 B before; 1 file, 19 B now"),
        "{app}"
    );
}

#[test]
fn llb_prints_each_spec_warning_once_in_the_warning_style() {
    let ctx = two_layers();
    let run = ctx.strata(&["llb", ".", "--format", "json", "--build-arg", "NOPE=1"]);
    ok(&run);
    let err = run.stderr();
    // Once: it used to come twice (`strata: warning: …` and `warning: …`).
    assert_eq!(err.matches("NOPE").count(), 1, "{err}");
    assert!(
        err.contains("warning: build arguments not declared"),
        "{err}"
    );
    assert!(!err.contains("strata: warning"), "{err}");
}

/// `strata schema`, checked by a real JSON Schema validator: Python's
/// `jsonschema` (Debian's `python3-jsonschema`, installed by
/// `integration/run.sh`), which picks the draft from `$schema`. Not a Rust
/// crate: a dev-dependency's features would change the `strata` that
/// `cargo test` builds (Cargo unifies them), and the tests must run the
/// binary that ships.
struct SchemaValidator {
    dir: tempfile::TempDir,
}

/// Reads the schema (argv 1) and a JSON array of documents (stdin); prints,
/// for each document, the list of its errors.
const VALIDATE_PY: &str = r#"
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
cls = jsonschema.validators.validator_for(schema)
cls.check_schema(schema)
v = cls(schema)
docs = json.load(sys.stdin)
print(json.dumps([[e.message for e in v.iter_errors(d)] for d in docs]))
"#;

impl SchemaValidator {
    /// The errors of each document, in order.
    fn errors(&self, docs: &[serde_json::Value]) -> Vec<Vec<String>> {
        use std::io::Write;
        // Debian's Python, where apt installs the module (not a python3
        // that happens to come first on PATH).
        let mut child = Command::new("/usr/bin/python3")
            .args(["-c", VALIDATE_PY])
            .arg(self.dir.path().join("schema.json"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run python3");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&serde_json::to_vec(docs).unwrap())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "the validator failed (is python3-jsonschema installed?): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn is_valid(&self, doc: serde_json::Value) -> bool {
        self.errors(&[doc])[0].is_empty()
    }
}

fn schema_validator() -> (serde_json::Value, SchemaValidator) {
    let run = Ctx::new().strata(&["schema"]);
    let text = ok(&run);
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.json"), text).unwrap();
    let validator = SchemaValidator { dir };
    // A valid JSON Schema (check_schema) that accepts a minimal spec.
    assert!(validator.is_valid(serde_json::json!({ "version": 1 })));
    (schema, validator)
}

/// A TOML spec as the JSON an editor validates.
fn toml_as_json(text: &str) -> serde_json::Value {
    toml::from_str(text).expect("TOML")
}

#[test]
fn the_examples_validate_against_the_schema() {
    let (_, validator) = schema_validator();
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut seen = 0;
    for dir in std::fs::read_dir(examples).unwrap() {
        let spec = dir.unwrap().path().join("strata.toml");
        if !spec.is_file() {
            continue;
        }
        let doc = toml_as_json(&std::fs::read_to_string(&spec).unwrap());
        let errors = validator.errors(&[doc]).remove(0);
        assert!(errors.is_empty(), "{}: {errors:#?}", spec.display());
        seen += 1;
    }
    assert!(seen >= 2, "examples/*/strata.toml");
    // And the validator does say no: closed sets, unknown keys, the version.
    for bad in [
        "version = 1\n[image]\ncompression = \"brotli\"\n",
        "version = 1\n[[layer]]\nname = \"a\"\nnetwork = \"host\"\nrun = \"true\"\n",
        "version = 1\n[[layer]]\nname = \"a\"\nrun = \"true\"\ncache = [{ target = \"/c\", sharing = \"open\" }]\n",
        "version = 1\n[[layer]]\nname = \"a\"\nsplit = \"dir\"\ncopy = []\n",
        "version = 2\n",
        "version = 1\n[image]\nfrm = \"scratch\"\n",
    ] {
        assert!(!validator.is_valid(toml_as_json(bad)), "{bad}");
    }
    // A build argument may stand for a closed-set value.
    let arg = "version = 1\n[args]\nC = \"zstd\"\n[image]\ncompression = \"${C}\"\n";
    assert!(validator.is_valid(toml_as_json(arg)));
}

#[test]
fn the_schema_names_things_as_the_docs_do_and_describes_every_key() {
    let (schema, _) = schema_validator();
    let text = schema.to_string();
    assert!(!text.contains("Raw"), "internal names: {text}");
    fn walk(v: &serde_json::Value, path: &str, missing: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::Object(props)) = map.get("properties") {
                    for (k, p) in props {
                        let described = p["description"].as_str().is_some_and(|d| !d.is_empty());
                        if !described {
                            missing.push(format!("{path}.{k}"));
                        }
                    }
                }
                for (k, x) in map {
                    walk(x, &format!("{path}/{k}"), missing);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, x) in items.iter().enumerate() {
                    walk(x, &format!("{path}/{i}"), missing);
                }
            }
            _ => {}
        }
    }
    let mut missing = Vec::new();
    walk(&schema, "", &mut missing);
    assert!(
        missing.is_empty(),
        "keys without a description: {missing:?}"
    );
    let defs = schema["$defs"].as_object().unwrap();
    for name in [
        "Image",
        "Layer",
        "Copy",
        "Stage",
        "Step",
        "Target",
        "CacheTable",
    ] {
        assert!(defs.contains_key(name), "{name}");
        assert!(defs[name]["description"].is_string(), "{name}");
    }
    let enum_of =
        |def: &str, key: &str| schema["$defs"][def]["properties"][key]["anyOf"][0]["enum"].clone();
    assert_eq!(
        enum_of("Layer", "compression"),
        serde_json::json!(["auto", "gzip", "zstd", "none"])
    );
    assert_eq!(
        enum_of("Image", "compression"),
        enum_of("Layer", "compression")
    );
    assert_eq!(
        enum_of("Layer", "network"),
        serde_json::json!(["default", "none"])
    );
    assert_eq!(
        enum_of("Step", "network"),
        serde_json::json!(["default", "none"])
    );
    assert_eq!(
        enum_of("CacheTable", "sharing"),
        serde_json::json!(["shared", "locked", "private"])
    );
    assert_eq!(
        schema["properties"]["version"]["enum"],
        serde_json::json!([1])
    );
}

#[test]
fn a_directory_given_as_the_spec_file_is_named_as_such() {
    let ctx = two_layers();
    let run = ctx.strata(&["check", "-f", "data"]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert!(
        run.stderr().contains("`data` is a directory"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr().contains("-f data/strata.toml"),
        "{}",
        run.stderr()
    );
    assert!(!run.stderr().contains("not found"), "{}", run.stderr());
}

#[test]
fn output_errors_list_every_accepted_form() {
    let ctx = two_layers();
    let run = ctx.strata(&["build", ".", "-o", "tarball:x.tar"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    for form in [
        "oci-layout:DIR[:TAG]",
        "oci:DIR[:TAG]",
        "oci-archive:FILE[:TAG]",
        "docker-archive:FILE[:NAME:TAG]",
        "registry:REF",
    ] {
        assert!(run.stderr().contains(form), "{form}: {}", run.stderr());
    }
    // `oci:` is skopeo's spelling of oci-layout:, as documented.
    let dir = ctx.outside("oci");
    ok(&ctx.strata(&["build", ".", "-q", "-o", &format!("oci:{}", dir.display())]));
    assert!(dir.join("oci-layout").is_file());
}

#[test]
fn diff_of_a_layout_and_an_archive_of_one_image_shows_no_unequal_mark() {
    let ctx = two_layers();
    let layout = ctx.outside("layout");
    let archive = ctx.outside("image.tar");
    ok(&ctx.strata(&[
        "build",
        ".",
        "-q",
        "-o",
        &format!("oci-layout:{}", layout.display()),
    ]));
    ok(&ctx.strata(&[
        "build",
        ".",
        "-q",
        "-o",
        &format!("docker-archive:{}:x:1", archive.display()),
    ]));
    let run = ctx.strata(&[
        "diff",
        &format!("oci-layout:{}", layout.display()),
        &format!("docker-archive:{}", archive.display()),
    ]);
    let text = ok(&run);
    assert!(text.contains("equal (exact)"), "{text}");
    assert!(!text.contains('≠'), "{text}");
    assert!(text.contains("B has no manifest"), "{text}");
}

#[test]
fn llb_refuses_binary_on_a_terminal_unless_asked() {
    let ctx = two_layers();
    let Some(shown) = under_pty(&ctx, "llb . ; echo rc=$?") else {
        return;
    };
    assert!(
        shown.contains("refusing to write binary LLB to a terminal"),
        "{shown:?}"
    );
    assert!(shown.contains("rc=2"), "{shown:?}");
    // -o FILE writes it; a pipe (no terminal) still gets it.
    let file = ctx.outside("def.pb");
    let shown = under_pty(&ctx, &format!("llb . -o {} ; echo rc=$?", file.display())).unwrap();
    assert!(shown.contains("rc=0"), "{shown:?}");
    let written = std::fs::read(&file).unwrap();
    let piped = ctx.strata(&["llb", "."]);
    assert_eq!(piped.code(), 0, "{}", piped.stderr());
    assert_eq!(piped.0.stdout, written);
    let shown = under_pty(&ctx, "llb . --force > /dev/null; echo rc=$?").unwrap();
    assert!(shown.contains("rc=0"), "{shown:?}");
}

/// The config of the image tagged `latest` in an OCI layout.
fn layout_config(dir: &std::path::Path) -> serde_json::Value {
    let read = |digest: &str| -> serde_json::Value {
        let hex = digest.strip_prefix("sha256:").unwrap();
        serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let manifest = read(index["manifests"][0]["digest"].as_str().unwrap());
    read(manifest["config"]["digest"].as_str().unwrap())
}

#[test]
fn build_label_sets_config_labels_over_the_spec() {
    let ctx = two_layers();
    ctx.spec(&TWO_LAYERS.replace(
        "from = \"scratch\"",
        "from = \"scratch\"\nlabels = { team = \"ml\", tier = \"dev\" }",
    ));
    let plain = ctx.outside("plain");
    let labelled = ctx.outside("labelled");
    let a = ok(&ctx.strata(&[
        "build",
        ".",
        "-q",
        "-o",
        &format!("oci-layout:{}", plain.display()),
    ]));
    let b = ok(&ctx.strata(&[
        "build",
        ".",
        "-q",
        "--label",
        "tier=prod",
        "--label",
        "org.opencontainers.image.revision=abc=1",
        "-o",
        &format!("oci-layout:{}", labelled.display()),
    ]));
    assert_ne!(a, b);
    let labels = &layout_config(&labelled)["config"]["Labels"];
    assert_eq!(labels["team"], "ml");
    assert_eq!(labels["tier"], "prod");
    assert_eq!(labels["org.opencontainers.image.revision"], "abc=1");
    assert_eq!(layout_config(&plain)["config"]["Labels"]["tier"], "dev");
    // Same layers: a label is config only.
    assert_eq!(
        layout_config(&plain)["rootfs"],
        layout_config(&labelled)["rootfs"]
    );
    let run = ctx.strata(&["build", ".", "--label", "novalue", "-o", "oci-layout:x"]);
    assert_eq!(run.code(), 2);
    assert!(
        run.stderr().contains("--label `novalue` is not KEY=VALUE"),
        "{}",
        run.stderr()
    );
}

/// The manifest tagged first in the layout `dir`, and its descriptor.
fn layout_manifest(dir: &std::path::Path) -> (serde_json::Value, serde_json::Value) {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let desc = index["manifests"][0].clone();
    let hex = desc["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap();
    let m = serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap());
    (m.unwrap(), desc)
}

#[test]
fn build_annotations_and_the_base_annotations() {
    let ctx = two_layers();
    // A scratch image: no annotations at all.
    let base = ctx.path().join("base");
    let base_digest = ok(&ctx.strata(&[
        "build",
        ".",
        "-q",
        "-o",
        &format!("oci-layout:{}:v1", base.display()),
    ]));
    let (m, _) = layout_manifest(&base);
    assert!(m.get("annotations").is_none(), "{m}");

    // On that base: the base's manifest digest, and no name (a path is not
    // an image reference).
    ctx.spec(&TWO_LAYERS.replace("\"scratch\"", "\"oci-layout:base:v1\""));
    let plain = ctx.outside("plain");
    ok(&ctx.strata(&[
        "build",
        ".",
        "-q",
        "-o",
        &format!("oci-layout:{}", plain.display()),
    ]));
    let (m, desc) = layout_manifest(&plain);
    assert_eq!(
        m["annotations"],
        serde_json::json!({ "org.opencontainers.image.base.digest": base_digest })
    );
    assert_eq!(
        desc["annotations"],
        serde_json::json!({ "org.opencontainers.image.ref.name": "latest" })
    );

    // --annotation: bare and manifest: in the manifest, over strata's own;
    // manifest-descriptor: on the descriptor in index.json; a platform
    // qualifier that does not match is left out.
    let host = if cfg!(target_arch = "aarch64") {
        "linux/arm64"
    } else {
        "linux/amd64"
    };
    let annotated = ctx.outside("annotated");
    ok(&ctx.strata(&[
        "build",
        ".",
        "-q",
        "--annotation",
        "org.opencontainers.image.title=app",
        "--annotation",
        "manifest:org.opencontainers.image.base.digest=mine",
        "--annotation",
        &format!("manifest[{host}]:here=1"),
        "--annotation",
        "manifest[linux/s390x]:elsewhere=1",
        "--annotation",
        "manifest-descriptor:d=x=y",
        "-o",
        &format!("oci-layout:{}", annotated.display()),
    ]));
    let (ma, desc) = layout_manifest(&annotated);
    assert_eq!(
        ma["annotations"],
        serde_json::json!({
            "here": "1",
            "org.opencontainers.image.base.digest": "mine",
            "org.opencontainers.image.title": "app",
        })
    );
    assert_eq!(desc["annotations"]["d"], "x=y");
    assert_eq!(
        desc["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );
    // Annotations are manifest only: config and layers are the same.
    assert_eq!(m["layers"], ma["layers"]);
    assert_eq!(m["config"], ma["config"]);

    // An index annotation with no index to put it on: refused, nothing written.
    let none = ctx.outside("none");
    for (a, says) in [
        ("index:k=v", "writes no image index"),
        ("index-descriptor:k=v", "no descriptor of an index"),
        ("manifests:k=v", "unknown type `manifests`"),
    ] {
        let run = ctx.strata(&[
            "build",
            ".",
            "--annotation",
            a,
            "-o",
            &format!("oci-layout:{}", none.display()),
        ]);
        assert_eq!(run.code(), 2, "{a}");
        assert!(run.stderr().contains(says), "{a}: {}", run.stderr());
        assert!(!none.exists(), "{a}");
    }
}

#[test]
fn an_archive_in_a_missing_directory_names_the_users_path() {
    let ctx = two_layers();
    let dest = ctx.outside("missing/dir/app.tar");
    let run = ctx.strata(&[
        "build",
        "--output",
        &format!("oci-archive:{}", dest.display()),
    ]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    let err = run.stderr();
    assert!(err.contains(&dest.display().to_string()), "{err}");
    assert!(!err.contains(".tmp-"), "a temporary name leaked: {err}");
    assert!(!dest.exists());
}
