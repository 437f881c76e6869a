//! `strata check`: the example validates; each class of bad input gets exit 1,
//! nothing on stdout, and a spanned error at the right line and column.

use crate::util::Ctx;

const HEAD: &str = "version = 1\n[image]\nfrom = \"scratch\"\n";

/// Runs `strata check` on `spec` (after creating `files`) and returns the run.
pub(crate) fn check(spec: &str, files: &[(&str, &str)]) -> crate::util::Run {
    let ctx = Ctx::new();
    for (p, c) in files {
        ctx.write(p, c);
    }
    ctx.spec(spec);
    ctx.strata(&["check"])
}

/// Asserts a failed check whose error mentions `message` at `line:col`.
#[track_caller]
pub(crate) fn assert_error(
    spec: &str,
    files: &[(&str, &str)],
    message: &str,
    line: usize,
    col: usize,
) {
    let run = check(spec, files);
    let err = run.stderr();
    assert_eq!(run.code(), 1, "exit status; stderr:\n{err}");
    assert_eq!(run.stdout(), "", "stdout must stay empty");
    assert!(err.contains(message), "`{message}` not in:\n{err}");
    let at = format!("strata.toml:{line}:{col}]");
    assert!(err.contains(&at), "`{at}` not in:\n{err}");
}

#[test]
fn example_validates_for_every_target() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/tts");
    let ctx = Ctx::new();
    for target in [None, Some("development")] {
        let mut args = vec!["check", root];
        if let Some(t) = target {
            args.extend(["--target", t]);
        }
        let run = ctx.strata(&args);
        assert_eq!(run.code(), 0, "{}", run.stderr());
        assert_eq!(run.stdout(), "");
        assert!(run.stderr().contains("ok:"), "{}", run.stderr());
    }
}

#[test]
fn syntax_error() {
    let spec = format!("{HEAD}[[layer]\nname = \"x\"\n");
    assert_error(&spec, &[], "unclosed array table, expected `]`", 4, 9);
}

#[test]
fn unknown_key_suggests_nearest() {
    let spec =
        format!("{HEAD}[[layer]]\nname = \"app\"\ncopy = [{{ form = \"src\", to = \"/app\" }}]\n");
    let run = check(&spec, &[("src/a.py", "")]);
    assert_eq!(run.code(), 1);
    assert!(
        run.stderr().contains("unknown key `form`"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr().contains("did you mean `from`?"),
        "{}",
        run.stderr()
    );
    assert!(
        run.stderr().contains("strata.toml:6:11]"),
        "{}",
        run.stderr()
    );
    // A top-level typo too.
    assert_error("version = 1\n[imge]\n", &[], "unknown key `imge`", 2, 2);
}

#[test]
fn wrong_type() {
    let spec = format!("{HEAD}[[layer]]\nname = 7\nrun = \"true\"\n");
    assert_error(
        &spec,
        &[],
        "invalid type: integer `7`, expected a string",
        5,
        8,
    );
}

/// A type error does not hide the file's other errors: two type errors
/// in different tables and a semantic error in a third are all reported,
/// each at its place with a help line; what a dropped value leaves behind
/// (the layer whose `name` had the wrong type now has none) is not.
#[test]
fn every_error_of_a_file_is_reported() {
    let spec = "version = 1\n[image]\nfrom = \"scratch\"\ncompression = 3\n\
                [[layer]]\nname = \"Bad Name\"\ncopy = [{ from = \"a\", to = \"/a\" }]\n\
                [[layer]]\nname = 7\ncopy = [{ from = \"a\", to = \"/b\", mode = 755 }]\n";
    let run = check(spec, &[("a", "a\n")]);
    let err = run.stderr();
    assert_eq!(run.code(), 1, "{err}");
    assert_eq!(run.stdout(), "");
    for (message, at, help) in [
        (
            "invalid type: integer `3`, expected a string",
            "strata.toml:4:15]",
            "write one of \"auto\", \"gzip\", \"zstd\", \"none\"",
        ),
        (
            "`Bad Name` is not a valid layer name",
            "strata.toml:6:8]",
            "layer names match",
        ),
        (
            "invalid type: integer `7`, expected a string",
            "strata.toml:9:8]",
            "write it as a string, in quotes: \"7\"",
        ),
        (
            "invalid type: integer `755`, expected a string",
            "strata.toml:10:41]",
            "in quotes: \"755\"",
        ),
    ] {
        assert!(err.contains(message), "`{message}` not in:\n{err}");
        assert!(err.contains(at), "`{at}` not in:\n{err}");
        assert!(err.contains(help), "`{help}` not in:\n{err}");
    }
    assert!(err.contains("has 4 errors"), "{err}");
    assert!(!err.contains("missing field"), "{err}");
    // In the order of the text.
    let pos = |m: &str| err.find(m).unwrap();
    assert!(pos("integer `3`") < pos("Bad Name") && pos("Bad Name") < pos("integer `7`"));
}

#[test]
fn unsupported_version() {
    assert_error("version = 2\n", &[], "unsupported spec version 2", 1, 11);
}

#[test]
fn escapes_and_absolute_sources() {
    let spec =
        format!("{HEAD}[[layer]]\nname = \"a\"\ncopy = [{{ from = \"../x\", to = \"/x\" }}]\n");
    assert_error(
        &spec,
        &[],
        "copy source `../x` leaves the build context",
        6,
        18,
    );
    let spec =
        format!("{HEAD}[[layer]]\nname = \"a\"\ncopy = [{{ from = \"/etc\", to = \"/x\" }}]\n");
    assert_error(&spec, &[], "`/etc` is an absolute path", 6, 18);
}

#[test]
fn symlink_out_of_the_context_is_rejected() {
    let ctx = Ctx::new();
    std::os::unix::fs::symlink("/etc", ctx.path().join("etc-link")).unwrap();
    ctx.spec(&format!(
        "{HEAD}[[layer]]\nname = \"a\"\ncopy = [{{ from = \"etc-link\", to = \"/x\" }}]\n"
    ));
    let run = ctx.strata(&["check"]);
    assert_eq!(run.code(), 1);
    assert!(
        run.stderr()
            .contains("leads outside the build context (it resolves to `/etc`)")
    );
    assert!(
        run.stderr().contains("strata.toml:6:18]"),
        "{}",
        run.stderr()
    );
    // A symlink inside the context is fine.
    let ctx = Ctx::new();
    ctx.write("real/f", "x");
    std::os::unix::fs::symlink("real", ctx.path().join("inner")).unwrap();
    ctx.spec(&format!(
        "{HEAD}[[layer]]\nname = \"a\"\ncopy = [{{ from = \"inner\", to = \"/x\" }}]\n"
    ));
    assert_eq!(ctx.strata(&["check"]).code(), 0);
}

#[test]
fn missing_input_suggests_a_sibling() {
    let spec =
        format!("{HEAD}[[layer]]\nname = \"a\"\nrun = \"true\"\ninputs = [\"requirement.txt\"]\n");
    let run = check(&spec, &[("requirements.txt", "x")]);
    assert_eq!(run.code(), 1);
    assert!(
        run.stderr()
            .contains("run input `requirement.txt` does not exist")
    );
    assert!(run.stderr().contains("did you mean `requirements.txt`?"));
    assert!(
        run.stderr().contains("strata.toml:7:11]"),
        "{}",
        run.stderr()
    );
}

#[test]
fn duplicate_layer_names() {
    let spec = format!(
        "{HEAD}[[layer]]\nname = \"a\"\nrun = \"true\"\n[[layer]]\nname = \"a\"\nrun = \"true\"\n"
    );
    assert_error(&spec, &[], "duplicate layer name `a`", 8, 8);
}

#[test]
fn overlapping_destinations() {
    let spec = format!(
        "{HEAD}[[layer]]\nname = \"a\"\ncopy = [{{ from = \"x.txt\", to = \"/etc/app.conf\" }}]\n\
         [[layer]]\nname = \"b\"\ncopy = [{{ from = \"y.txt\", to = \"/etc/app.conf\" }}]\n"
    );
    assert_error(
        &spec,
        &[("x.txt", "1"), ("y.txt", "2")],
        "`/etc/app.conf` is written by layer `a` and again by layer `b`",
        9,
        9,
    );
}

#[test]
fn dockerfile_given_by_mistake() {
    assert_error(
        "# syntax=docker/dockerfile:1\nFROM debian:12\nRUN apt-get update\n",
        &[],
        "this looks like a Dockerfile",
        2,
        1,
    );
}

#[test]
fn empty_file() {
    assert_error("", &[], "the spec is empty", 1, 1);
    assert_error("\n# only a comment\n", &[], "the spec is empty", 1, 1);
}

#[test]
fn non_utf8_bytes() {
    let ctx = Ctx::new();
    ctx.write("strata.toml", b"version = 1\n# caf\xe9\n");
    let run = ctx.strata(&["check"]);
    assert_eq!(run.code(), 1);
    assert!(run.stderr().contains("not valid UTF-8"), "{}", run.stderr());
    assert!(
        run.stderr().contains("strata.toml:2:6]"),
        "{}",
        run.stderr()
    );
}

#[test]
fn oversized_specs_are_rejected() {
    for size in [2 * 1024 * 1024 + 1, 5 * 1024 * 1024] {
        let ctx = Ctx::new();
        let mut text = String::from("version = 1\n");
        while text.len() < size {
            text.push_str("# padding padding padding padding padding padding padding\n");
        }
        ctx.spec(&text);
        let run = ctx.strata(&["check"]);
        assert_eq!(run.code(), 1);
        assert!(
            run.stderr().contains("over the limit of 2097152 bytes"),
            "{}",
            run.stderr()
        );
        assert!(run.stderr().contains("strata.toml"));
        assert_eq!(run.stdout(), "");
    }
}

#[test]
fn unknown_argument() {
    assert_error(
        "version = 1\n[image]\nfrom = \"img:${TAG}\"\n",
        &[],
        "unknown argument `${TAG}`",
        3,
        13,
    );
}

#[test]
fn build_args_override_and_undeclared_warn() {
    let ctx = Ctx::new();
    ctx.spec("version = 1\n[args]\nTAG = \"1\"\n[image]\nfrom = \"debian:${TAG}\"\n");
    let run = ctx.strata(&[
        "check",
        "--build-arg",
        "TAG=12",
        "--build-arg",
        "HTTP_PROXY=x",
    ]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(
        run.stderr()
            .contains("not declared in [args] are ignored: HTTP_PROXY")
    );
}

#[test]
fn unknown_target_and_bad_values() {
    let spec = format!(
        "{HEAD}[[layer]]\nname = \"a\"\nrun = \"true\"\ntargets = [\"devel\"]\n[target.development]\n"
    );
    let run = check(&spec, &[]);
    assert_eq!(run.code(), 1);
    assert!(run.stderr().contains("unknown target `devel`"));
    assert!(run.stderr().contains("did you mean `development`?"));
    assert_error(
        "version = 1\n[image]\nplatforms = [\"linux/x86_64\"]\n",
        &[],
        "did you mean `amd64`?",
        3,
        14,
    );
    assert_error(
        "version = 1\n[image]\nexpose = [\"99999\"]\n",
        &[],
        "port 99999 is out of range",
        3,
        11,
    );
    let spec = format!(
        "{HEAD}[[layer]]\nname = \"a\"\ncopy = [{{ from = \"f\", to = \"/f\", mode = \"0999\" }}]\n"
    );
    assert_error(&spec, &[("f", "")], "not an octal mode", 6, 41);
    let spec = format!(
        "{HEAD}[[layer]]\nname = \"a\"\ncopy = [{{ from = \"f\", to = \"/f\" }}]\nsplit = \"file\"\nsplit_min = \"12 parsecs\"\n"
    );
    assert_error(&spec, &[("f", "")], "unknown size unit", 8, 13);
    assert_error(
        "version = 1\n[image]\nhealthcheck = { test = [\"CMD\", \"true\"], interval = \"soon\" }\n",
        &[],
        "not a duration",
        3,
        52,
    );
    assert_error(
        "version = 1\n[image]\nenv = { \"1BAD\" = \"x\" }\n",
        &[],
        "not a valid environment variable name",
        3,
        18,
    );
}

#[test]
fn cli_target_must_exist() {
    let ctx = Ctx::new();
    ctx.spec("version = 1\n[target.dev]\n");
    let run = ctx.strata(&["check", "--target", "prod"]);
    assert_eq!(run.code(), 1);
    assert!(
        run.stderr()
            .contains("unknown target `prod`: the spec declares dev")
    );
}

#[test]
fn layer_budget_is_enforced() {
    let mut spec = String::from("version = 1\n[image]\nmax_layers = 3\n");
    for i in 0..4 {
        spec.push_str(&format!("[[layer]]\nname = \"l{i}\"\nrun = \"true\"\n"));
    }
    assert_error(
        &spec,
        &[],
        "the target has 4 layers, over `max_layers` = 3",
        14,
        8,
    );
}

#[test]
fn ten_thousand_layers_validate_quickly() {
    let mut spec = String::from("version = 1\n[image]\nmax_layers = 10000\n");
    for i in 0..10_000 {
        spec.push_str(&format!("[[layer]]\nname = \"l{i}\"\nrun = \"echo {i}\"\n"));
    }
    let ctx = Ctx::new();
    ctx.spec(&spec);
    let start = std::time::Instant::now();
    let run = ctx.strata(&["check"]);
    // A generous bound: this guards against quadratic behaviour, not speed.
    assert!(start.elapsed().as_secs() < 20, "took {:?}", start.elapsed());
    // Every build refuses more than 125 layers, so `check` does too, at the
    // `max_layers` line (after resolving all 10,000 layers).
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert!(
        run.stderr()
            .contains("`max_layers` = 10000 is over the limit of 125 layers"),
        "{}",
        run.stderr()
    );
    assert!(run.stderr().contains("strata.toml:3:"), "{}", run.stderr());
}

#[test]
fn targets_select_layers_and_override_config() {
    let ctx = Ctx::new();
    ctx.spec(
        "version = 1\n[image]\nenv = { A = \"1\" }\ncmd = [\"run\"]\n\
         [[layer]]\nname = \"base\"\nrun = \"true\"\n\
         [[layer]]\nname = \"dev\"\nrun = \"true\"\ntargets = [\"development\"]\n\
         [target.development]\nenv = { B = \"2\" }\ncmd = [\"debug\"]\n",
    );
    let opts = |target: Option<&str>| strata::spec::ResolveOptions {
        target: target.map(String::from),
        context: ctx.path().into(),
        ..Default::default()
    };
    let path = ctx.path().join("strata.toml");
    let default = strata::spec::load(&path, opts(None)).unwrap();
    let names: Vec<&str> = default.specs[0]
        .layers
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names, ["base"]);
    assert_eq!(
        default.specs[0].image.cmd.as_deref(),
        Some(&["run".to_string()][..])
    );
    let dev = strata::spec::load(&path, opts(Some("development"))).unwrap();
    let s = &dev.specs[0];
    let names: Vec<&str> = s.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["base", "dev"]);
    assert_eq!(s.image.env.get("A").map(String::as_str), Some("1"));
    assert_eq!(s.image.env.get("B").map(String::as_str), Some("2"));
    assert_eq!(s.image.cmd.as_deref(), Some(&["debug".to_string()][..]));
}

#[test]
fn platform_arguments_per_platform() {
    let ctx = Ctx::new();
    ctx.spec(
        "version = 1\n[image]\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\n\
         [[layer]]\nname = \"a\"\nrun = \"echo ${TARGETARCH} $${HOME} $PATH\"\n",
    );
    let loaded = strata::spec::load(
        &ctx.path().join("strata.toml"),
        strata::spec::ResolveOptions {
            context: ctx.path().into(),
            ..Default::default()
        },
    )
    .unwrap();
    let cmds: Vec<String> = loaded
        .specs
        .iter()
        .map(|s| match &s.layers[0].kind {
            strata::spec::LayerKind::Run(r) => r.command.clone(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        cmds,
        ["echo amd64 ${HOME} $PATH", "echo arm64 ${HOME} $PATH"]
    );
}

#[test]
fn schema_is_json_on_stdout() {
    let ctx = Ctx::new();
    let run = ctx.strata(&["schema"]);
    assert_eq!(run.code(), 0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(v["title"], "strata.toml");
    assert!(v["properties"]["layer"].is_object());
}

#[test]
fn usage_errors_exit_2() {
    let ctx = Ctx::new();
    assert_eq!(ctx.strata(&["check", "--bogus"]).code(), 2);
    assert_eq!(ctx.strata(&["check", "--build-arg", "NOEQUALS"]).code(), 2);
}

#[test]
fn directory_copies_that_write_the_same_file_overlap() {
    let spec = format!(
        "{HEAD}[[layer]]\nname = \"a\"\ncopy = [{{ from = \"one\", to = \"/etc\" }}]\n\
         [[layer]]\nname = \"b\"\ncopy = [{{ from = \"two\", to = \"/etc\" }}]\n"
    );
    let run = check(
        &spec,
        &[
            ("one/app.conf", "1"),
            ("two/app.conf", "2"),
            ("two/other", "3"),
        ],
    );
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert!(
        run.stderr()
            .contains("`/etc/app.conf` is written by layer `a` and again by layer `b`"),
        "{}",
        run.stderr()
    );
}

#[test]
fn split_files_count_against_the_budget_and_a_fitting_split_min_is_named() {
    let ctx = Ctx::new();
    for i in 0..5 {
        ctx.write(&format!("models/shard-{i}.bin"), vec![7u8; 1000 + i * 100]);
    }
    ctx.spec(
        "version = 1\n[image]\nmax_layers = 4\n[[layer]]\nname = \"models\"\n\
         copy = [{ from = \"models\", to = \"/m\" }]\nsplit = \"file\"\nsplit_min = \"1000\"\n",
    );
    let run = ctx.strata(&["check"]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let err = run.stderr();
    assert!(
        err.contains("the target has 5 layers, over `max_layers` = 4"),
        "{err}"
    );
    // Three split files plus the rest layer fit in four.
    assert!(
        err.contains("`split_min = \"1101\"` keeps 3 split files"),
        "{err}"
    );
    assert!(err.contains("strata.toml:7:9]"), "{err}");
}

#[test]
fn check_writes_nothing() {
    let ctx = Ctx::new();
    ctx.write("models/a.bin", "x");
    ctx.spec(&format!(
        "{HEAD}[[layer]]\nname = \"m\"\ncopy = [{{ from = \"models\", to = \"/m\" }}]\n"
    ));
    let before: Vec<_> = walk(ctx.path());
    let run = ctx.strata(&["check"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(walk(ctx.path()), before, "the context is unchanged");
    assert!(!ctx.cache().exists(), "no cache written");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}
