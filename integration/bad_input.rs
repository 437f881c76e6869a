//! Broken specs through both `strata check` and `docker buildx build` on
//! Docker 28.5: each fails with a message that names the file and line (or
//! the path), and no image tag is created.

use crate::util::{Ctx, docker, engine};

const BASE: &str = "version = 1\n[image]\nfrom = \"scratch\"\n";

/// One broken spec: name, spec bytes, files (a content `-> TARGET` makes a
/// symlink), what both outputs must mention.
type Case = (
    &'static str,
    Vec<u8>,
    Vec<(&'static str, &'static str)>,
    &'static str,
);

fn corpus() -> Vec<Case> {
    let copy = |from: &str| {
        format!("{BASE}[[layer]]\nname = \"a\"\ncopy = [{{ from = \"{from}\", to = \"/x\" }}]\n")
    };
    let mut big = String::from("version = 1\n");
    while big.len() < 5 << 20 {
        big.push_str("# padding padding padding padding padding padding padding\n");
    }
    vec![
        ("syntax", format!("{BASE}[[layer]\n").into_bytes(), vec![], "strata.toml:4"),
        ("unknown-key", format!("{BASE}[[layer]]\nname = \"a\"\nrun = \"true\"\nrunn = \"x\"\n").into_bytes(), vec![], "strata.toml:7"),
        ("escape", copy("../etc").into_bytes(), vec![], "strata.toml:6"),
        ("absolute", copy("/etc").into_bytes(), vec![], "strata.toml:6"),
        (
            "duplicate",
            format!("{BASE}[[layer]]\nname = \"a\"\nrun = \"true\"\n[[layer]]\nname = \"a\"\nrun = \"true\"\n").into_bytes(),
            vec![],
            "strata.toml:8",
        ),
        ("dockerfile", b"FROM debian:12\nRUN true\n".to_vec(), vec![], "strata.toml:1"),
        ("five-mib", big.into_bytes(), vec![], "over the limit"),
        ("non-utf8", b"version = 1\n# caf\xe9\n".to_vec(), vec![], "strata.toml:2"),
        ("empty", Vec::new(), vec![], "strata.toml:1"),
        ("missing-input", copy("nope").into_bytes(), vec![("other", "x")], "nope"),
        (
            "symlink-out",
            copy("link").into_bytes(),
            vec![("link", "-> ../outside")],
            "`link` leads outside the build context",
        ),
        (
            "overlap",
            format!(
                "{BASE}[[layer]]\nname = \"a\"\ncopy = [{{ from = \"d\", to = \"/app\" }}]\n\
                 [[layer]]\nname = \"b\"\ncopy = [{{ from = \"x\", to = \"/app/x\" }}]\n"
            )
            .into_bytes(),
            vec![("d/x", "1"), ("x", "2")],
            "`/app/x` is written by layer `a` and again by layer `b`",
        ),
    ]
}

#[test]
fn broken_specs_fail_in_check_and_through_buildx() {
    let _engines = crate::util::engine_lock();
    let host = engine("d28");
    let syntax = host.as_deref().map(crate::frontend::frontend_image);
    let host = host.unwrap_or_default();
    for (name, spec, files, mention) in corpus() {
        let ctx = Ctx::new();
        for (p, c) in &files {
            match c.strip_prefix("-> ") {
                Some(target) => std::os::unix::fs::symlink(target, ctx.path().join(p)).unwrap(),
                None => {
                    ctx.write(p, c);
                }
            }
        }
        ctx.write("strata.toml", &spec);
        let run = ctx.strata(&["check"]);
        assert_eq!(run.code(), 1, "{name}: check exit status\n{}", run.stderr());
        assert!(
            run.stderr().contains(mention),
            "{name}: check output lacks `{mention}`:\n{}",
            run.stderr()
        );
        assert_eq!(run.stdout(), "", "{name}: stdout stays empty");

        let Some(syntax) = &syntax else { continue };
        let tag = format!("strata-it-bad:{name}");
        let out = docker(&host)
            .args([
                "buildx",
                "build",
                "--progress=plain",
                "-f",
                "strata.toml",
                "--build-arg",
            ])
            .arg(format!("BUILDKIT_SYNTAX={syntax}"))
            .args(["--load", "-t", &tag, "."])
            .current_dir(ctx.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: buildx must fail");
        assert!(
            text.contains(mention),
            "{name}: buildx output lacks `{mention}`:\n{text}"
        );
        let exists = docker(&host)
            .args(["image", "inspect", &tag])
            .output()
            .unwrap()
            .status
            .success();
        assert!(!exists, "{name}: no image may be tagged");
    }
}
