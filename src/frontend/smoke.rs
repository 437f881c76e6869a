//! A tiny frontend that proves the transport and the gateway calls against a
//! real BuildKit (`strata frontend-smoke`, hidden). It pings, reads the spec
//! file (option `filename`, default `strata.toml`) from the `dockerfile`
//! local source, and returns an image whose `/hello.txt` holds the spec's
//! first line and whose `/caps.txt` lists what the daemon reported. A spec
//! with a line `fail-here` fails the build with that line as the error's
//! source location instead.

use std::collections::BTreeMap;

use prost::Message as _;
use sha2::{Digest as _, Sha256};

use super::error::FrontendError;
use super::gateway::{Caps, FrontendResult, Gateway, ResultRefs, SolveOptions, cap};
use super::opts::FrontendEnv;
use super::status::{ErrorStatus, SourceLocation};
use crate::proto::pb;

/// The spec file when the `filename` option is absent.
const DEFAULT_FILENAME: &str = "strata.toml";

/// What the frontend hands to `Return`.
#[derive(Debug)]
enum Outcome {
    Result(FrontendResult),
    Error(ErrorStatus),
}

/// Runs as a frontend over stdin/stdout. After a successful `Return` the
/// process exits 0 at once (a pending stdin read cannot be cancelled); an
/// error returned here means BuildKit could not be told.
pub(crate) fn run() -> Result<(), FrontendError> {
    super::serve_stdio(|gateway, env| async move { run_with(&gateway, &env).await })
}

/// The frontend's logic on any gateway: build the outcome, then `Return` it.
pub(crate) async fn run_with<G: Gateway>(
    gateway: &G,
    env: &FrontendEnv,
) -> Result<(), FrontendError> {
    let outcome = match build(gateway, env).await {
        Ok(outcome) => outcome,
        Err(err) => Outcome::Error(ErrorStatus::from_error(&err)),
    };
    match outcome {
        Outcome::Result(result) => gateway.return_result(result).await,
        Outcome::Error(error) => gateway.return_error(error).await,
    }
}

async fn build<G: Gateway>(gateway: &G, env: &FrontendEnv) -> Result<Outcome, FrontendError> {
    let caps = gateway.ping().await?;
    let mut summary = caps_summary(&caps);
    if env.opt("build-arg:STRATA_SMOKE_LEGACY_REFS") == Some("1") {
        summary.push_str("result: deprecated string ref\n");
    }
    eprint!("strata frontend-smoke: {summary}");

    let filename = env.opt("filename").unwrap_or(DEFAULT_FILENAME);
    let source_name = env.opt("dockerfilekey").unwrap_or("dockerfile");
    let spec_def = spec_source(source_name, filename, &env.session_id, &caps);
    let spec_ref = gateway.solve(&spec_def, &SolveOptions::default()).await?;
    let data = gateway.read_file(&spec_ref, filename, None).await?;

    let text = String::from_utf8_lossy(&data);
    if let Some(index) = text.lines().position(|l| l.trim() == "fail-here") {
        let line = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let message = format!("{filename}:{line}: the spec asks the smoke frontend to fail");
        let location = SourceLocation::line(filename, data.clone(), line);
        return Ok(Outcome::Error(
            ErrorStatus::new(message).with_source(&location),
        ));
    }

    let first_line = text.lines().next().unwrap_or_default();
    let files = [
        ("/hello.txt", format!("{first_line}\n")),
        ("/caps.txt", summary),
    ];
    let options = SolveOptions {
        cache_imports: env.cache_imports()?,
        evaluate: false,
    };
    // A probe: `--build-arg STRATA_SMOKE_CAPS=a,b` lists extra caps on the
    // result's op, to see which ones the daemon's validation accepts.
    let probe: Vec<&str> = env
        .opt("build-arg:STRATA_SMOKE_CAPS")
        .map(|v| v.split(',').filter(|c| !c.is_empty()).collect())
        .unwrap_or_default();
    let image = gateway.solve(&mkfiles(&files, &probe), &options).await?;
    Ok(Outcome::Result(FrontendResult {
        refs: ResultRefs::Single(image),
        metadata: BTreeMap::from([(
            "containerimage.config".to_string(),
            image_config(&caps, env),
        )]),
    }))
}

/// Caps and workers, one fact per line.
fn caps_summary(caps: &Caps) -> String {
    let mut out = String::new();
    let join = |set: &std::collections::BTreeSet<String>| {
        set.iter().cloned().collect::<Vec<_>>().join(" ")
    };
    out.push_str(&format!("gateway caps: {}\n", join(&caps.gateway)));
    out.push_str(&format!("llb caps: {}\n", join(&caps.llb)));
    for (name, has) in [
        (cap::PROTO_REF_ARRAY, caps.has_gateway(cap::PROTO_REF_ARRAY)),
        (cap::WARNINGS, caps.has_gateway(cap::WARNINGS)),
        (cap::MERGE_OP, caps.has_llb(cap::MERGE_OP)),
        (cap::DIFF_OP, caps.has_llb(cap::DIFF_OP)),
        (cap::EXEC_SECRET_ENV, caps.has_llb(cap::EXEC_SECRET_ENV)),
        (
            cap::EXEC_REMOVE_MOUNT_STUBS_RECURSIVE,
            caps.has_llb(cap::EXEC_REMOVE_MOUNT_STUBS_RECURSIVE),
        ),
    ] {
        out.push_str(&format!("{name}: {}\n", if has { "yes" } else { "no" }));
    }
    for worker in &caps.workers {
        let platforms: Vec<String> = worker.platforms.iter().map(ToString::to_string).collect();
        let version = worker.buildkit_version.as_deref().unwrap_or("unknown");
        out.push_str(&format!(
            "worker {} (buildkit {version}): {}\n",
            worker.id,
            platforms.join(" ")
        ));
    }
    out
}

/// `sha256:<hex>` of an encoded op: its digest as BuildKit computes it.
fn op_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A definition of one op (plus the terminal op), with the op's metadata.
fn single_op_definition(op: pb::Op, metadata: pb::OpMetadata) -> Vec<u8> {
    let bytes = op.encode_to_vec();
    let digest = op_digest(&bytes);
    let terminal = pb::Op {
        inputs: vec![pb::Input {
            digest: digest.clone(),
            index: 0,
        }],
        ..Default::default()
    };
    pb::Definition {
        def: vec![bytes, terminal.encode_to_vec()],
        metadata: BTreeMap::from([(digest, metadata)]),
        source: None,
    }
    .encode_to_vec()
}

fn op_metadata(name: String, caps: &[&str]) -> pb::OpMetadata {
    pb::OpMetadata {
        description: BTreeMap::from([("llb.customname".to_string(), name)]),
        caps: caps.iter().map(|c| (c.to_string(), true)).collect(),
        ..Default::default()
    }
}

/// The local source holding only the spec file, as the Dockerfile frontend
/// reads its Dockerfile.
fn spec_source(name: &str, filename: &str, session_id: &str, caps: &Caps) -> Vec<u8> {
    let followpaths = serde_json::to_string(&[filename]).unwrap_or_default();
    let mut attrs = BTreeMap::from([
        ("local.followpaths".to_string(), followpaths),
        ("local.sharedkeyhint".to_string(), name.to_string()),
        ("local.session".to_string(), session_id.to_string()),
    ]);
    let mut needed = vec![
        "source.local",
        "source.local.followpaths",
        "source.local.sharedkeyhint",
        "source.local.sessionid",
    ];
    if caps.has_llb(cap::SOURCE_LOCAL_DIFFER) {
        attrs.insert("local.differ".to_string(), "none".to_string());
        needed.push(cap::SOURCE_LOCAL_DIFFER);
    }
    let op = pb::Op {
        op: Some(pb::op::Op::Source(pb::SourceOp {
            identifier: format!("local://{name}"),
            attrs,
        })),
        ..Default::default()
    };
    single_op_definition(
        op,
        op_metadata(format!("[strata] load spec from {filename}"), &needed),
    )
}

/// A FileOp on scratch that writes each `(path, text)` in turn.
fn mkfiles(files: &[(&str, String)], extra_caps: &[&str]) -> Vec<u8> {
    let actions = files
        .iter()
        .enumerate()
        .map(|(i, (path, text))| pb::FileAction {
            // The first action starts from scratch (-1); each later one from
            // the previous action's result (index = number of op inputs + i).
            input: if i == 0 { -1 } else { i as i64 - 1 },
            secondary_input: -1,
            output: if i + 1 == files.len() { 0 } else { -1 },
            action: Some(pb::file_action::Action::Mkfile(pb::FileActionMkFile {
                path: path.to_string(),
                mode: 0o644,
                data: text.clone().into_bytes(),
                owner: None,
                timestamp: -1,
            })),
        })
        .collect();
    let op = pb::Op {
        op: Some(pb::op::Op::File(pb::FileOp { actions })),
        ..Default::default()
    };
    let mut caps = vec!["file.base"];
    caps.extend_from_slice(extra_caps);
    single_op_definition(op, op_metadata("[strata] smoke files".into(), &caps))
}

/// A minimal image config for the worker's platform.
fn image_config(caps: &Caps, env: &FrontendEnv) -> Vec<u8> {
    let platform = caps
        .default_platform()
        .or_else(|| env.workers.first().and_then(|w| w.platforms.first()));
    let (os, arch) = platform.map_or(("linux", "amd64"), |p| {
        (p.os.as_str(), p.architecture.as_str())
    });
    let config = serde_json::json!({
        "architecture": arch,
        "os": os,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
    });
    config.to_string().into_bytes()
}

/// The ref a result carries, for tests.
#[cfg(test)]
fn single_ref(result: &FrontendResult) -> &super::gateway::Ref {
    match &result.refs {
        ResultRefs::Single(r) => r,
        ResultRefs::PerPlatform(_) => panic!("expected one ref"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::fake::{Call, FakeGateway};
    use crate::frontend::gateway::{Platform, Worker};
    use crate::frontend::status::SOURCE_TYPE_URL;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn caps() -> Caps {
        Caps {
            gateway: ["proto.refarray".to_string()].into(),
            llb: ["source.local.differ".to_string(), "mergeop".to_string()].into(),
            workers: vec![Worker {
                id: "w".into(),
                platforms: vec![Platform::parse("linux/arm64").unwrap()],
                ..Worker::default()
            }],
        }
    }

    fn env(filename: Option<&str>) -> FrontendEnv {
        let mut vars = vec![
            ("BUILDKIT_SESSION_ID".to_string(), "sess".to_string()),
            (
                "BUILDKIT_FRONTEND_OPT_0".to_string(),
                "cache-from=r/c:1".to_string(),
            ),
        ];
        if let Some(f) = filename {
            vars.push((
                "BUILDKIT_FRONTEND_OPT_1".to_string(),
                format!("filename={f}"),
            ));
        }
        FrontendEnv::from_vars(vars).0
    }

    fn decode_ops(definition: &[u8]) -> Vec<pb::Op> {
        let def = pb::Definition::decode(definition).unwrap();
        def.def
            .iter()
            .map(|b| pb::Op::decode(b.as_slice()).unwrap())
            .collect()
    }

    #[test]
    fn reads_the_spec_and_returns_its_first_line() {
        let gw =
            FakeGateway::new(caps()).with_file("spec.toml", "# syntax=strata-smoke:dev\n[image]\n");
        block_on(run_with(&gw, &env(Some("spec.toml")))).unwrap();
        let calls = gw.calls();
        assert_eq!(calls[0], Call::Ping);

        // The spec read: a local source restricted to the spec file.
        let Call::Solve {
            definition,
            options,
        } = &calls[1]
        else {
            panic!("{:?}", calls[1])
        };
        assert!(options.cache_imports.is_empty());
        let ops = decode_ops(definition);
        assert_eq!(ops.len(), 2);
        let Some(pb::op::Op::Source(src)) = &ops[0].op else {
            panic!()
        };
        assert_eq!(src.identifier, "local://dockerfile");
        assert_eq!(src.attrs["local.followpaths"], r#"["spec.toml"]"#);
        assert_eq!(src.attrs["local.session"], "sess");
        assert_eq!(src.attrs["local.sharedkeyhint"], "dockerfile");
        assert_eq!(src.attrs["local.differ"], "none");
        let def = pb::Definition::decode(definition.as_slice()).unwrap();
        let src_digest = op_digest(&def.def[0]);
        assert_eq!(ops[1].inputs[0].digest, src_digest);
        assert!(
            def.metadata[&src_digest]
                .caps
                .contains_key("source.local.differ")
        );

        assert_eq!(
            calls[2],
            Call::ReadFile {
                id: "ref2".into(),
                path: "spec.toml".into(),
                range: None
            }
        );

        // The result: files written on scratch, with cache imports.
        let Call::Solve {
            definition,
            options,
        } = &calls[3]
        else {
            panic!("{:?}", calls[3])
        };
        assert_eq!(options.cache_imports[0].attrs["ref"], "r/c:1");
        let ops = decode_ops(definition);
        let Some(pb::op::Op::File(file)) = &ops[0].op else {
            panic!()
        };
        assert_eq!(file.actions[0].input, -1);
        let Some(pb::file_action::Action::Mkfile(mk)) = &file.actions[0].action else {
            panic!()
        };
        assert_eq!(mk.path, "/hello.txt");
        assert_eq!(mk.data, b"# syntax=strata-smoke:dev\n");
        assert_eq!((file.actions[1].input, file.actions[1].output), (0, 0));

        let Call::ReturnResult(result) = &calls[4] else {
            panic!("{:?}", calls[4])
        };
        assert_eq!(single_ref(result).id, "ref4");
        let config: serde_json::Value =
            serde_json::from_slice(&result.metadata["containerimage.config"]).unwrap();
        assert_eq!(config["architecture"], "arm64");
        assert_eq!(calls.len(), 5);
    }

    #[test]
    fn a_fail_here_line_becomes_a_located_error() {
        let spec = "[image]\nname = 1\n  fail-here\n";
        let gw = FakeGateway::new(Caps::default()).with_file("strata.toml", spec);
        block_on(run_with(&gw, &env(None))).unwrap();
        let calls = gw.calls();
        let Call::Solve { definition, .. } = &calls[1] else {
            panic!()
        };
        let Some(pb::op::Op::Source(src)) = &decode_ops(definition)[0].op else {
            panic!()
        };
        // No `source.local.differ` cap (BuildKit 0.8): no `local.differ`.
        assert!(!src.attrs.contains_key("local.differ"));
        let Call::ReturnError(error) = calls.last().unwrap() else {
            panic!("{calls:?}")
        };
        assert_eq!(
            error.message,
            "strata.toml:3: the spec asks the smoke frontend to fail"
        );
        assert_eq!(error.details[0].type_url, SOURCE_TYPE_URL);
        let json: serde_json::Value = serde_json::from_slice(&error.details[0].value).unwrap();
        assert_eq!(json["ranges"][0]["start"]["line"], 3);
        assert_eq!(json["info"]["filename"], "strata.toml");
        assert_eq!(calls.len(), 4);
    }

    #[test]
    fn a_failed_call_is_returned_as_the_error() {
        let gw = FakeGateway::new(Caps::default());
        block_on(run_with(&gw, &env(None))).unwrap();
        let Call::ReturnError(error) = gw.calls().pop().unwrap() else {
            panic!()
        };
        assert_eq!(error.message, "strata.toml: no such file or directory");
    }
}
