//! The frontend's build on the fake and offline gateways: results,
//! errors and options (the LLB it lowers to: `lowering`).

use std::collections::{BTreeMap, BTreeSet};

use super::helper::{Helper, helper_image};
use super::overlap::{CopyOut, overlap_suspects};
use super::run_with;
use crate::frontend::error::{BuildError, FrontendError};
use crate::frontend::fake::{Call, FakeGateway};
use crate::frontend::gateway::{Caps, ResultRefs};
use crate::frontend::opts::FrontendEnv;
use crate::llb::{self, Definition, Mount};

mod lowering;

fn caps(modern: bool) -> Caps {
    let mut llb: BTreeSet<String> = ["source.local", "source.image", "file.base"]
        .map(String::from)
        .into();
    if modern {
        llb.extend(["mergeop", "diffop"].map(String::from));
    }
    Caps {
        gateway: ["proto.refarray", "gateway.warnings"]
            .map(String::from)
            .into(),
        llb,
        workers: Vec::new(),
    }
}

fn env(opts: &[(&str, &str)]) -> FrontendEnv {
    FrontendEnv {
        opts: opts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        session_id: "s".into(),
        workers: Vec::new(),
    }
}

const RECORD: &str = r#"{"layer":"app","inputs":"sha256:1111111111111111111111111111111111111111111111111111111111111111","key":"sha256:2222222222222222222222222222222222222222222222222222222222222222"}"#;

fn run(gw: &FakeGateway, opts: &[(&str, &str)]) -> Call {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(run_with(gw, &env(opts))).unwrap();
    gw.calls().pop().unwrap()
}

#[test]
fn spec_errors_are_returned_with_their_line() {
    let gw = FakeGateway::new(caps(true)).with_file(
        "strata.toml",
        "version = 1\n[[layer]]\nname = \"app\"\ncopy = [{ form = \"x\", to = \"/x\" }]\n",
    );
    let Call::ReturnError(status) = run(&gw, &[("source", "strata:dev")]) else {
        panic!("expected an error")
    };
    assert!(
        status
            .message
            .contains("strata.toml:4:11: unknown key `form`"),
        "{}",
        status.message
    );
    assert_eq!(status.details.len(), 1, "one source-location detail");
    assert!(String::from_utf8_lossy(&status.details[0].value).contains("\"line\":4"));
}

#[test]
fn the_build_output_names_the_strata_version() {
    let gw = FakeGateway::new(caps(true)).with_file("strata.toml", "version = 1\n");
    run(&gw, &[("source", "strata:dev")]);
    let names: Vec<String> = gw
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Solve { definition, .. } => Some(definition),
            _ => None,
        })
        .flat_map(|d| Definition::from_bytes(&d).unwrap().ops().unwrap())
        .filter_map(|o| o.description)
        .collect();
    let want = format!("[strata {}] load strata.toml", crate::VERSION);
    assert!(names.contains(&want), "{want} not in {names:?}");
    assert!(crate::VERSION.starts_with(concat!(env!("CARGO_PKG_VERSION"), " (")));
}

/// The platforms built, by the worker's platform and the `platform`
/// option: the option wins over `[image] platforms`, which wins over the
/// worker's platform (docs/design.md §7).
#[test]
fn the_spec_platforms_apply_when_buildx_sends_none() {
    let spec_with = |platforms: &str| {
        format!(
            "version = 1\n[image]\n{platforms}\n[[layer]]\nname = \"app\"\n\
             copy = [{{ from = \"app\", to = \"/app\" }}]\n"
        )
    };
    let built = |spec: &str, opts: &[(&str, &str)]| -> Vec<String> {
        let mut caps = caps(true);
        caps.workers.push(crate::frontend::gateway::Worker {
            platforms: vec![llb::Platform::parse("linux/arm64").unwrap()],
            ..Default::default()
        });
        let gw = FakeGateway::new(caps)
            .with_file("strata.toml", spec)
            .with_file("app/main.py", "print(1)\n")
            .with_file("record.json", RECORD);
        let mut all = vec![("source", "strata:dev")];
        all.extend_from_slice(opts);
        let call = run(&gw, &all);
        let Call::ReturnResult(result) = call else {
            panic!("expected a result: {call:?}")
        };
        match &result.refs {
            ResultRefs::PerPlatform(refs) => refs.keys().cloned().collect(),
            ResultRefs::Single(_) => {
                let config: serde_json::Value =
                    serde_json::from_slice(&result.metadata["containerimage.config"]).unwrap();
                vec![format!(
                    "linux/{}",
                    config["architecture"].as_str().unwrap()
                )]
            }
        }
    };
    let two = spec_with("platforms = [\"linux/amd64\", \"linux/s390x\"]");
    assert_eq!(built(&two, &[]), ["linux/amd64", "linux/s390x"]);
    assert_eq!(
        built(&two, &[("platform", "linux/ppc64le")]),
        ["linux/ppc64le"]
    );
    assert_eq!(built(&spec_with(""), &[]), ["linux/arm64"], "the worker's");
}

#[test]
fn multi_platform_returns_one_ref_per_platform() {
    let gw = FakeGateway::new(caps(true))
        .with_file(
            "strata.toml",
            "version = 1\n[image]\nplatforms = [\"linux/amd64\", \"linux/arm64\"]\nlabels = { a = \"1\" }\n\
             [[layer]]\nname = \"app\"\ncopy = [{ from = \"app\", to = \"/app\" }]\n",
        )
        .with_file("app/main.py", "print(1)\n")
        .with_file("record.json", RECORD);
    let call = run(
        &gw,
        &[
            ("source", "strata:dev"),
            ("label:b", "2"),
            ("cache-from", "localhost:5000/cache"),
        ],
    );
    let Call::ReturnResult(result) = call else {
        panic!("expected a result: {call:?}")
    };
    let ResultRefs::PerPlatform(refs) = &result.refs else {
        panic!("expected refs per platform")
    };
    assert_eq!(
        refs.keys().collect::<Vec<_>>(),
        ["linux/amd64", "linux/arm64"]
    );
    let platforms: serde_json::Value =
        serde_json::from_slice(&result.metadata["refs.platforms"]).unwrap();
    assert_eq!(platforms["Platforms"].as_array().unwrap().len(), 2);
    for p in ["linux/amd64", "linux/arm64"] {
        let config: serde_json::Value =
            serde_json::from_slice(&result.metadata[&format!("containerimage.config/{p}")])
                .unwrap();
        assert_eq!(config["architecture"], p.rsplit('/').next().unwrap());
        assert_eq!(config["config"]["Labels"]["a"], "1");
        assert_eq!(config["config"]["Labels"]["b"], "2", "label: options apply");
        let history = config["history"].as_array().unwrap();
        let last = history.last().unwrap();
        assert_eq!(last["created_by"], "strata layer app");
        assert!(
            last["comment"]
                .as_str()
                .unwrap()
                .contains("inputs=sha256:1111")
        );
        assert_eq!(last["created"], "1980-01-02T00:00:00Z");
    }
    // Cache imports reach every solve.
    let imports = gw
        .calls()
        .iter()
        .filter_map(|c| match c {
            Call::Solve { options, .. } => Some(options.cache_imports.len()),
            _ => None,
        })
        .max();
    assert_eq!(imports, Some(1));
}

#[test]
fn source_date_epoch_sets_created_only() {
    let gw = FakeGateway::new(caps(false))
        .with_file(
            "strata.toml",
            "version = 1\n[[layer]]\nname = \"app\"\ncopy = [{ from = \"app\", to = \"/app\" }]\n",
        )
        .with_file("app/main.py", "print(1)\n")
        .with_file("record.json", RECORD);
    let call = run(
        &gw,
        &[
            ("source", "strata:dev"),
            ("build-arg:SOURCE_DATE_EPOCH", "1700000000"),
        ],
    );
    let Call::ReturnResult(result) = call else {
        panic!("expected a result: {call:?}")
    };
    let config: serde_json::Value =
        serde_json::from_slice(&result.metadata["containerimage.config"]).unwrap();
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    // The fallback (no mergeop) said so through Warn.
    assert!(
        gw.calls()
            .iter()
            .any(|c| matches!(c, Call::Warn(w) if w.short.contains("no MergeOp/DiffOp")))
    );
}

/// The LLB of a spec with two independent stages, one built on
/// another, and an unused one, lowered offline; digests pinned.
/// The overlap check runs only for copy layers whose destinations nest.
#[test]
fn overlap_check_covers_nested_destinations_only() {
    let out = |id: &str, layer: &str, roots: &[&str]| CopyOut {
        id: id.into(),
        layer: layer.into(),
        roots: roots.iter().map(|r| r.to_string()).collect(),
        state: llb::scratch(),
    };
    let ids = |outs: &[CopyOut]| -> Vec<String> {
        overlap_suspects(outs)
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    };
    let models = || {
        [
            out(
                "models",
                "models",
                &["/app/models/vocos", "/app/models/whisper"],
            ),
            out(
                "models@/app/models/vocos/a.bin",
                "models",
                &["/app/models/vocos/a.bin"],
            ),
        ]
    };
    // A split layer, a file and a directory beside it, siblings that
    // share a prefix: nothing nests, no check.
    let mut outs = models().to_vec();
    outs.push(out(
        "runtime",
        "runtime",
        &["/app/entrypoint.sh", "/app/src2"],
    ));
    outs.push(out("app", "app", &["/app/src"]));
    assert!(ids(&outs).is_empty(), "{:?}", ids(&outs));
    // A layer into /app nests with every other one.
    outs.push(out("code", "code", &["/app"]));
    assert_eq!(
        ids(&outs),
        [
            "models",
            "models@/app/models/vocos/a.bin",
            "runtime",
            "app",
            "code"
        ]
    );
    // Into `/`: likewise; a file written where a directory is copied.
    let outs = [out("all", "all", &["/"]), out("app", "app", &["/app/src"])];
    assert_eq!(ids(&outs), ["all", "app"]);
    let outs = [
        out("a", "a", &["/app/src"]),
        out("b", "b", &["/app/src/x.py"]),
    ];
    assert_eq!(ids(&outs), ["a", "b"]);
    // One spec layer whose own entries nest: its split parts are checked.
    let outs = [
        out("m", "m", &["/app/m", "/app/m/sub"]),
        out("m@/app/m/sub/w.bin", "m", &["/app/m/sub/w.bin"]),
    ];
    assert_eq!(ids(&outs), ["m", "m@/app/m/sub/w.bin"]);
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// A bug of strata's (here a helper record that does not parse) reaches
/// BuildKit as an internal error, not as a spec error: no spec location,
/// and a message that says whose fault it is.
#[test]
fn an_internal_failure_is_not_reported_as_a_spec_error() {
    let gw = || {
        FakeGateway::new(caps(true))
            .with_file(
                "strata.toml",
                "version = 1\n[[layer]]\nname = \"app\"\ncopy = [{ from = \"app\", to = \"/app\" }]\n",
            )
            .with_file("app/main.py", "print(1)\n")
            .with_file("record.json", "{not json")
    };
    let opts = [("source", "strata:dev")];
    let err = block_on(super::build(&gw(), &env(&opts))).unwrap_err();
    assert!(
        matches!(&err, BuildError::Record { layer, .. } if layer == "app"),
        "{err:?}"
    );
    assert!(err.is_internal());
    assert_eq!(err.exit_code(), 2, "trouble, not a wrong input");

    let call = run(&gw(), &opts);
    let Call::ReturnError(status) = call else {
        panic!("expected an error: {call:?}")
    };
    assert!(
        status
            .message
            .starts_with("internal error in strata (please report it): "),
        "{}",
        status.message
    );
    assert!(
        status.message.contains("record of layer `app`"),
        "{}",
        status.message
    );
    assert!(status.details.is_empty(), "no spec location");
}

/// A failing build step is BuildKit's error, returned with its own code,
/// message and details (the failing op's location), not a spec error.
#[test]
fn a_failed_solve_keeps_buildkits_error() {
    use prost::Message;

    let detail = crate::proto::google::rpc::Status {
        code: 2,
        message: "exit code: 1".into(),
        details: vec![prost_types::Any {
            type_url: crate::frontend::status::SOURCE_TYPE_URL.into(),
            value: b"{}".to_vec(),
        }],
    };
    let message = "process \"/bin/sh -c false\" did not complete successfully: exit code: 1";
    let gw = FakeGateway::new(caps(true))
        .with_file(
            "strata.toml",
            "version = 1\n[[layer]]\nname = \"deps\"\nrun = \"false\"\n",
        )
        .failing_evaluate(tonic::Status::with_details(
            tonic::Code::Unknown,
            message,
            detail.encode_to_vec().into(),
        ));
    let opts = [("source", "strata:dev")];
    let err = block_on(super::build(&gw, &env(&opts))).unwrap_err();
    assert!(
        matches!(
            &err,
            BuildError::Frontend(FrontendError::Rpc { call: "Solve", .. })
        ),
        "{err:?}"
    );
    assert!(!err.is_internal());
    let Call::ReturnError(status) = run(&gw, &opts) else {
        panic!("expected an error")
    };
    assert_eq!(status.message, message);
    assert_eq!(status.code, 2);
    assert_eq!(status.details.len(), 1, "BuildKit's own details, kept");
    assert_eq!(
        status.details[0].type_url,
        crate::frontend::status::SOURCE_TYPE_URL
    );
}

/// Each failure says whose it is: the spec's (named, exit 1), another
/// input's (exit 1), or strata's (exit 2); only the first is a spec error.
#[test]
fn failures_keep_their_kind() {
    let fails = |spec: &str, opts: &[(&str, &str)]| {
        let gw = FakeGateway::new(caps(true)).with_file("strata.toml", spec.to_string());
        block_on(super::build(&gw, &env(opts))).unwrap_err()
    };
    let source = ("source", "strata:dev");
    // A base the frontend cannot use: a spec error, naming the spec.
    let err = fails(
        "version = 1\n[image]\nfrom = \"oci-layout:base\"\n[[layer]]\nname = \"a\"\nrun = \"true\"\n",
        &[source],
    );
    let BuildError::Spec(status) = &err else {
        panic!("{err:?}")
    };
    assert!(
        status
            .message
            .starts_with("strata.toml: `oci-layout:base` is a base"),
        "{}",
        status.message
    );
    assert_eq!(err.exit_code(), 1);
    // A bad option: the option's error, not the spec's.
    let err = fails(
        "version = 1\n[[layer]]\nname = \"a\"\nrun = \"true\"\n",
        &[source, ("platform", "linux/")],
    );
    assert!(
        matches!(&err, BuildError::Frontend(FrontendError::Option { key, .. }) if key == "platform"),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), 1);
    assert!(!err.is_internal());
    // No pin with STRATA_LOCKED=1: the lock's fault, exit 1.
    let err = fails(
        "version = 1\n[image]\nfrom = \"debian:bookworm\"\n[[layer]]\nname = \"a\"\nrun = \"true\"\n",
        &[source, ("build-arg:STRATA_LOCKED", "1")],
    );
    assert!(matches!(&err, BuildError::Unpinned { .. }), "{err:?}");
    assert_eq!(err.exit_code(), 1);
    assert!(!err.status().message.starts_with("internal error"));
}

/// The gateway calls of a representative build, by kind: a base image that
/// a stage shares, another stage's image, four context copy layers, a copy
/// from a stage and a run layer. Each call is a round trip to BuildKit, so
/// one more (an image resolved twice, a record read twice) fails here.
#[test]
fn a_build_makes_each_round_trip_once() {
    let debian = r#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/bin"]}}"#;
    let alpine = r#"{"architecture":"amd64","os":"linux","config":{}}"#;
    let mut spec = String::from(
        "version = 1\n[image]\nfrom = \"debian:12\"\n\
         [[stage]]\nname = \"build\"\nfrom = \"debian:12\"\n[[stage.step]]\nrun = \"mkdir /w\"\n\
         [[stage]]\nname = \"tools\"\nfrom = \"alpine:3\"\n[[stage.step]]\nrun = \"echo 1 > /v\"\n",
    );
    for name in ["a", "b", "c", "d"] {
        spec.push_str(&format!(
            "[[layer]]\nname = \"{name}\"\ncopy = [{{ from = \"{name}\", to = \"/opt/{name}\" }}]\n"
        ));
    }
    spec.push_str(
        "[[layer]]\nname = \"wheels\"\ncopy = [{ stage = \"build\", from = \"/w\", to = \"/opt/w\" }]\n\
         [[layer]]\nname = \"deps\"\nrun = \"cat /t/v\"\nmounts = [{ stage = \"tools\", from = \"/\", to = \"/t\" }]\n",
    );
    let gw = FakeGateway::new(caps(true))
        .with_file("strata.toml", spec)
        .with_file("a/x", "1")
        .with_file("b/x", "2")
        .with_file("c/x", "3")
        .with_file("d/x", "4")
        .with_file("record.json", RECORD)
        .with_image(
            "debian:12",
            &format!("sha256:{}", "d".repeat(64)),
            debian.as_bytes(),
        )
        .with_image(
            "alpine:3",
            &format!("sha256:{}", "a".repeat(64)),
            alpine.as_bytes(),
        );
    let call = run(&gw, &[("source", "strata:dev")]);
    assert!(matches!(call, Call::ReturnResult(_)), "{call:?}");
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut resolved = Vec::new();
    for c in gw.calls() {
        let kind = match &c {
            Call::Ping => "ping",
            Call::Solve { options, .. } if options.evaluate => "solve (evaluate)",
            Call::Solve { .. } => "solve",
            Call::ReadFile { .. } => "read file",
            Call::ReadDir { .. } => "read dir",
            Call::StatFile { .. } => "stat file",
            Call::ResolveImageConfig { image, .. } => {
                resolved.push(image.clone());
                "resolve image"
            }
            Call::Warn(_) => "warn",
            Call::ReturnResult(_) | Call::ReturnError(_) => "return",
        };
        *counts.entry(kind).or_default() += 1;
    }
    resolved.sort();
    assert_eq!(resolved, ["alpine:3", "debian:12"], "each image once");
    let expected = BTreeMap::from([
        ("ping", 1),
        // The spec's local source, the context's `.dockerignore`, the
        // context source the copy layers share, the base (for its
        // directories) and the five copy layers' records.
        ("solve", 9),
        // The image, in one request.
        ("solve (evaluate)", 1),
        // The spec, its ignore file, the lock, `.dockerignore`, five records.
        ("read file", 9),
        // The base's directories: `/opt` and the five destinations under
        // it; the shared context's root (the kinds of `a` to `d`).
        ("read dir", 7),
        ("resolve image", 2),
        ("return", 1),
    ]);
    assert_eq!(counts, expected);
}
