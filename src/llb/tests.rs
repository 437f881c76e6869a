//! Golden digests for each op kind (a change in encoding must fail here), and
//! the structure of marshaled definitions, checked by decoding them.

use prost::Message;

use super::*;
use crate::proto::pb;

fn ctx() -> State {
    local("context")
        .session_id("sess-1")
        .shared_key_hint("strata/app")
        .include_patterns(["app/**", "requirements.txt"])
        .exclude_patterns(["**/*.pyc"])
        .build()
}

fn base() -> State {
    image("debian:bookworm")
        .platform(Platform::parse("linux/amd64").unwrap())
        .build()
}

fn op_of(state: &State) -> pb::Op {
    pb::Op::decode(state.output().unwrap().node.bytes.as_slice()).unwrap()
}

fn caps_of(state: &State) -> Vec<String> {
    state
        .output()
        .unwrap()
        .node
        .meta
        .caps
        .keys()
        .cloned()
        .collect()
}

fn exec_op(state: &State) -> pb::ExecOp {
    match op_of(state).op {
        Some(pb::op::Op::Exec(e)) => e,
        other => panic!("not an exec: {other:?}"),
    }
}

fn file_actions(state: &State) -> Vec<pb::FileAction> {
    match op_of(state).op {
        Some(pb::op::Op::File(f)) => f.actions,
        other => panic!("not a file op: {other:?}"),
    }
}

/// Each case: the op, its pinned digest. Computed once from this encoding;
/// a different digest means the bytes sent to BuildKit changed.
fn golden_cases() -> Vec<(&'static str, State, &'static str)> {
    let run = |mount: Mount| {
        Exec::new(&base(), ["sh", "-c", "true"])
            .mount(mount)
            .build()
            .unwrap()
            .root()
            .unwrap()
    };
    vec![
        (
            "source local",
            local("context")
                .session_id("sess-1")
                .shared_key_hint("strata/app")
                .include_patterns(["app/**"])
                .exclude_patterns(["**/*.pyc"])
                .follow_paths(["strata.toml"])
                .differ(Differ::None, true)
                .build(),
            "sha256:1d7e49dfd2838cf9310a674f404bd378c16c0416891ee2fad0173d6af8a16fad",
        ),
        (
            "source image",
            image("debian:bookworm")
                .platform(Platform::parse("linux/arm64/v8").unwrap())
                .build(),
            "sha256:b22ea5a9f1b21257cf21a54a8ef7cb8dbe5aaf8d677bf878d158e7aca6100837",
        ),
        (
            "exec bind",
            run(Mount::bind("/src", &ctx()).selector("app").readonly()),
            "sha256:2e1f93a3ae00c2c74073bf4b564e008556edcf3721d1a30f915a3235fc3a9f0d",
        ),
        (
            "exec cache",
            run(Mount::cache("/root/.cache/pip", "strata//root/.cache/pip")
                .sharing(CacheSharing::Locked)),
            "sha256:4cde5cefd0399248a22dfdd9c7d259dfee476777b429310d60416665109d334d",
        ),
        (
            "exec secret",
            run(Mount::secret("/run/secrets/token", "token")),
            "sha256:3ea155bbf67df0af8c6b9d24edb33090e2498e117146a6c9c38bb72b42bded84",
        ),
        (
            "exec ssh",
            run(Mount::ssh("/run/buildkit/ssh_agent.0", "default")),
            "sha256:fc6ac7c824730c859d482062d8681622c5be2b7874ea9e461e25fb7c025b58c9",
        ),
        (
            "exec meta",
            Exec::new(&base(), ["python", "-m", "pip", "install", "."])
                .env("PATH", "/usr/local/bin:/usr/bin:/bin")
                .env("PIP_NO_CACHE_DIR", "1")
                .cwd("/app")
                .user("1000:1000")
                .remove_mount_stubs_recursive()
                .network(NetMode::None)
                .secret_env(SecretEnv {
                    id: "token".into(),
                    name: "TOKEN".into(),
                    optional: false,
                })
                .platform(Platform::parse("linux/amd64").unwrap())
                .build()
                .unwrap()
                .root()
                .unwrap(),
            "sha256:b6c49ec6cc44cf681119f8ee14368cbd06b60c78b5b5193eb5026bcf58e8ccc4",
        ),
        (
            "file mkdir",
            scratch().mkdir(Mkdir::new("/app/data", 0o755)),
            "sha256:b096fbdb8267143e14070f3317e2fbf0cafef7496de8e34741958b5ddf8d3a61",
        ),
        (
            "merge",
            merge([base(), ctx()]),
            "sha256:c75626e3562c082573dd32f81e998f277ebaf83efee46ff4e72b320da688b831",
        ),
        (
            "diff",
            diff(&base(), &ctx()),
            "sha256:19633fef8cac6fbd2a6800e40a4c6f2a60861115f95ddd2e15af9acd6c09ffcd",
        ),
    ]
}

#[test]
fn golden_digests() {
    let mut failures = Vec::new();
    for (name, state, want) in golden_cases() {
        let got = state.digest().unwrap();
        if got != want {
            failures.push(format!("{name}: {got}"));
        }
    }
    assert!(
        failures.is_empty(),
        "digests changed:\n{}",
        failures.join("\n")
    );
}

#[test]
fn golden_terminal() {
    let def = base().marshal();
    let views = def.ops().unwrap();
    let terminal = views.last().unwrap();
    assert_eq!(terminal.kind, OpKind::Terminal);
    assert_eq!(
        terminal.digest,
        "sha256:3caf285873de4a853c571ecfc89cfe2d718bf4a79901eb55a0799c3cd51fb68d"
    );
    assert_eq!(terminal.caps, ["constraints", "platform"]);
}

#[test]
fn op_digest_is_sha256_of_its_bytes() {
    let state = ctx();
    let node = &state.output().unwrap().node;
    let want = format!("sha256:{}", hex::encode(Sha256::digest(&node.bytes)));
    assert_eq!(node.digest, want);
}

#[test]
fn local_source_attrs_are_json_arrays_and_caps_are_listed() {
    let state = local("context")
        .session_id("s")
        .include_patterns(["a/**", "b"])
        .exclude_patterns(["*.pyc"])
        .follow_paths(["strata.toml"])
        .shared_key_hint("strata/spec")
        .differ(Differ::None, false)
        .build();
    let Some(pb::op::Op::Source(src)) = op_of(&state).op else {
        panic!("not a source");
    };
    assert_eq!(src.identifier, "local://context");
    let attrs: Vec<(&str, &str)> = src
        .attrs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        attrs,
        [
            ("local.differ", "none"),
            ("local.excludepatterns", r#"["*.pyc"]"#),
            ("local.followpaths", r#"["strata.toml"]"#),
            ("local.includepattern", r#"["a/**","b"]"#),
            ("local.session", "s"),
            ("local.sharedkeyhint", "strata/spec"),
        ]
    );
    assert_eq!(
        caps_of(&state),
        [
            "source.local",
            "source.local.excludepatterns",
            "source.local.followpaths",
            "source.local.includepatterns",
            "source.local.sessionid",
            "source.local.sharedkeyhint",
        ]
    );
}

#[test]
fn image_source_identifier_and_platform() {
    let op = op_of(&base());
    let Some(pb::op::Op::Source(src)) = &op.op else {
        panic!("not a source");
    };
    assert_eq!(
        src.identifier,
        "docker-image://docker.io/library/debian:bookworm"
    );
    let p = op.platform.unwrap();
    assert_eq!((p.os.as_str(), p.architecture.as_str()), ("linux", "amd64"));
    assert_eq!(caps_of(&base()), ["source.image"]);
}

#[test]
fn exec_mounts_are_sorted_and_outputs_numbered() {
    let ctx = ctx();
    let run = Exec::new(&base(), ["strata", "helper", "copy"])
        .readonly_root()
        .mount(Mount::bind("/out", &scratch()))
        .mount(Mount::bind("/src", &ctx).readonly().selector("app"))
        .mount(Mount::bind("/digest", &scratch()))
        .mount(Mount::bind("/src2", &ctx).readonly())
        .mount(Mount::cache("/cache", "ns/cache"))
        .network(NetMode::None)
        .build()
        .unwrap();
    assert!(run.root().is_none());
    let out = run.output("/out").unwrap();
    let digest_out = run.output("/digest").unwrap();
    assert_eq!(digest_out.output().unwrap().index(), 0);
    assert_eq!(out.output().unwrap().index(), 1);
    assert!(run.output("/src").is_none());
    assert!(run.output("/cache").is_none());

    let exec = exec_op(&out);
    let mounts: Vec<(&str, i64, i64, bool)> = exec
        .mounts
        .iter()
        .map(|m| (m.dest.as_str(), m.input, m.output, m.readonly))
        .collect();
    // The image and the context are inputs 0 and 1; both context mounts
    // share input 1.
    assert_eq!(
        mounts,
        [
            ("/", 0, -1, true),
            ("/cache", -1, -1, false),
            ("/digest", -1, 0, false),
            ("/out", -1, 1, false),
            ("/src", 1, -1, true),
            ("/src2", 1, -1, true),
        ]
    );
    assert_eq!(op_of(&out).inputs.len(), 2);
    assert_eq!(exec.network, pb::NetMode::None as i32);
    assert_eq!(
        caps_of(&out),
        [
            "exec.meta.base",
            "exec.meta.network",
            "exec.mount.bind",
            "exec.mount.cache",
            "exec.mount.cache.sharing",
            "exec.mount.selector",
        ]
    );
}

#[test]
fn exec_digest_does_not_depend_on_mount_order() {
    let a = Exec::new(&base(), ["true"])
        .mount(Mount::bind("/a", &ctx()).readonly())
        .mount(Mount::cache("/b", "b"))
        .build()
        .unwrap();
    let b = Exec::new(&base(), ["true"])
        .mount(Mount::cache("/b", "b"))
        .mount(Mount::bind("/a", &ctx()).readonly())
        .build()
        .unwrap();
    assert_eq!(a.digest(), b.digest());
}

#[test]
fn exec_secrets_ssh_and_stubs() {
    let out = Exec::new(&base(), ["sh", "-c", "make"])
        .env("A", "1")
        .env("B", "2")
        .env("A", "3")
        .remove_mount_stubs_recursive()
        .mount(Mount::secret("/run/secrets/npm", "npm"))
        .mount(Mount::ssh("/run/ssh", "default"))
        .mount(Mount::bind("/scratch", &scratch()).discard_changes())
        .secret_env(SecretEnv {
            id: "tok".into(),
            name: "TOKEN".into(),
            optional: true,
        })
        .build()
        .unwrap()
        .root()
        .unwrap();
    let exec = exec_op(&out);
    let meta = exec.meta.unwrap();
    assert_eq!(meta.env, ["A=3", "B=2"]);
    assert_eq!(meta.cwd, "/");
    assert!(meta.remove_mount_stubs_recursive);
    let secret = exec
        .mounts
        .iter()
        .find(|m| m.dest == "/run/secrets/npm")
        .unwrap();
    assert_eq!(secret.mount_type, pb::MountType::Secret as i32);
    assert_eq!(secret.secret_opt.as_ref().unwrap().mode, 0o400);
    let ssh = exec.mounts.iter().find(|m| m.dest == "/run/ssh").unwrap();
    assert_eq!(ssh.mount_type, pb::MountType::Ssh as i32);
    assert!(!ssh.ssh_opt.as_ref().unwrap().optional);
    assert_eq!(ssh.ssh_opt.as_ref().unwrap().mode, 0o600);
    assert_eq!(exec.secretenv[0].name, "TOKEN");
    assert_eq!(
        caps_of(&out),
        [
            "exec.meta.base",
            "exec.mount.bind",
            "exec.mount.bind.readwrite-nooutput",
            "exec.mount.secret",
            "exec.mount.ssh",
            "exec.secretenv",
        ]
    );
}

#[test]
fn exec_rejects_bad_input() {
    assert!(matches!(
        Exec::new(&base(), Vec::<String>::new()).build(),
        Err(LlbError::EmptyArgs)
    ));
    assert!(matches!(
        Exec::new(&base(), ["true"])
            .mount(Mount::cache("tmp", "c"))
            .build(),
        Err(LlbError::RelativeMountTarget { .. })
    ));
    let err = Exec::new(&base(), ["true"])
        .mount(Mount::secret("/x", "s"))
        .mount(Mount::cache("/x", "c"))
        .build()
        .unwrap_err();
    assert_eq!(err.to_string(), "two mounts at `/x`");
}

#[test]
fn mkdir_writes_an_unset_timestamp_as_minus_one() {
    let state = scratch().mkdir(Mkdir::new("a", 0o755));
    let actions = file_actions(&state);
    let Some(pb::file_action::Action::Mkdir(m)) = &actions[0].action else {
        panic!("not a mkdir");
    };
    assert_eq!((m.path.as_str(), m.mode, m.timestamp), ("/a", 0o755, -1));
    assert!(m.owner.is_none() && !m.make_parents);
    assert_eq!(
        (
            actions[0].input,
            actions[0].secondary_input,
            actions[0].output
        ),
        (-1, -1, 0),
        "on scratch: no input"
    );
    assert_eq!(caps_of(&state), ["file.base"]);
}

#[test]
fn merge_drops_scratch_and_diff_keeps_it() {
    assert!(merge([scratch(), scratch()]).is_scratch());
    assert_eq!(merge([scratch(), base()]).digest(), base().digest());
    let m = merge([base(), scratch(), ctx()]);
    let Some(pb::op::Op::Merge(op)) = op_of(&m).op else {
        panic!("not a merge");
    };
    assert_eq!(
        op.inputs.iter().map(|i| i.input).collect::<Vec<_>>(),
        [0, 1]
    );
    assert_eq!(caps_of(&m), ["mergeop"]);

    let d = diff(&scratch(), &ctx());
    let Some(pb::op::Op::Diff(op)) = op_of(&d).op else {
        panic!("not a diff");
    };
    assert_eq!((op.lower.unwrap().input, op.upper.unwrap().input), (-1, 0));
    assert_eq!(caps_of(&d), ["diffop"]);
}

/// A graph shaped like a strata build: base, two copy layers through the
/// helper (both reading one shared context op), a run layer, merged.
fn sample_graph() -> State {
    let base = base();
    let ctx = ctx();
    let helper = image("ghcr.io/example/strata@sha256:0123").build();
    let layer = |name: &str, sel: &str| {
        Exec::new(&helper, ["/strata", "helper", "copy", name])
            .readonly_root()
            .network(NetMode::None)
            .mount(Mount::bind("/in", &ctx).readonly().selector(sel))
            .mount(Mount::bind("/out", &scratch()))
            .custom_name(format!("layer {name}"))
            .build()
            .unwrap()
            .output("/out")
            .unwrap()
    };
    let run = Exec::new(&base, ["sh", "-c", "apt-get update"])
        .build()
        .unwrap()
        .root()
        .unwrap();
    merge([
        base.clone(),
        layer("app", "app"),
        layer("deps", "deps"),
        diff(&base, &run),
    ])
}

#[test]
fn marshal_puts_inputs_first_each_op_once_and_terminal_last() {
    let def = sample_graph().marshal();
    let views = def.ops().unwrap();
    // image, context, helper image, 2 copy execs, run exec, diff, merge,
    // terminal: the shared base and context appear once.
    assert_eq!(views.len(), 9);
    let mut seen = std::collections::BTreeSet::new();
    for (i, v) in views.iter().enumerate() {
        for (d, _) in &v.inputs {
            assert!(seen.contains(d), "op {i} uses {d} before it is defined");
        }
        assert!(seen.insert(v.digest.clone()), "op {} twice", v.digest);
    }
    let terminal = views.last().unwrap();
    assert_eq!(terminal.kind, OpKind::Terminal);
    assert_eq!(terminal.inputs, [(views[7].digest.clone(), 0)]);
    assert_eq!(views[7].kind, OpKind::Merge);
    assert_eq!(def.head().as_deref(), Some(views[7].digest.as_str()));
    assert_eq!(
        terminal.caps,
        ["constraints", "meta.description", "platform"]
    );
    // Every op has metadata; names come through.
    let names: Vec<_> = views.iter().filter_map(|v| v.description.clone()).collect();
    assert_eq!(names, ["layer app", "layer deps"]);
    assert!(views.iter().all(|v| !v.caps.is_empty()));
}

#[test]
fn marshal_is_deterministic() {
    let a = sample_graph().marshal().to_bytes();
    let b = sample_graph().marshal().to_bytes();
    let g = sample_graph();
    assert_eq!(a, b);
    assert_eq!(g.marshal().to_bytes(), g.marshal().to_bytes());
}

#[test]
fn scratch_marshals_to_an_empty_definition() {
    let def = scratch().marshal();
    assert!(def.is_empty());
    assert!(def.to_bytes().is_empty());
    assert_eq!(def.head(), None);
}

#[test]
fn source_locations_point_ops_at_spec_lines() {
    let spec = SourceMap::new("strata.toml", "[image]\nfrom = \"debian\"\n");
    let state = image("debian")
        .build()
        .with_location(&spec, &[SourceRange::lines(2, 2)]);
    let state = state.mkdir(Mkdir::new("/a", 0o755)).with_location(
        &spec,
        &[SourceRange {
            start_line: 1,
            start_column: 0,
            end_line: 2,
            end_column: 4,
        }],
    );
    let def = state.marshal();
    let proto = def.to_proto();
    let source = proto.source.as_ref().unwrap();
    assert_eq!(source.infos.len(), 1, "one file, shared");
    assert_eq!(source.infos[0].filename, "strata.toml");
    assert_eq!(source.infos[0].data, b"[image]\nfrom = \"debian\"\n");
    assert_eq!(source.locations.len(), 2);
    let image_digest = &def.ops().unwrap()[0].digest;
    let loc = &source.locations[image_digest].locations[0];
    assert_eq!(loc.source_index, 0);
    let r = &loc.ranges[0];
    assert_eq!((r.start.unwrap().line, r.end.unwrap().line), (2, 2));
}

#[test]
fn shared_op_metadata_is_merged() {
    let named = base().custom_name("base image");
    let def = merge([named, base().ignore_cache().mkdir(Mkdir::new("/a", 0o755))]).marshal();
    let views = def.ops().unwrap();
    let image = views
        .iter()
        .find(|v| v.kind == OpKind::Source && v.description.is_some());
    assert_eq!(image.unwrap().description.as_deref(), Some("base image"));
    let proto = def.to_proto();
    assert!(proto.metadata[&views[0].digest].ignore_cache);
    assert!(
        views
            .last()
            .unwrap()
            .caps
            .contains(&"meta.ignorecache".to_owned())
    );
}

#[test]
fn definitions_round_trip_through_bytes_and_state() {
    let spec = SourceMap::new("strata.toml", "x = 1\n");
    let state = sample_graph().with_location(&spec, &[SourceRange::lines(1, 1)]);
    let def = state.marshal();
    let bytes = def.to_bytes();
    let back = Definition::from_bytes(&bytes).unwrap();
    assert_eq!(back, def);
    let rebuilt = back.to_state().unwrap();
    assert_eq!(rebuilt.digest(), state.digest());
    assert_eq!(rebuilt.marshal().to_bytes(), bytes);
    // Building on a decoded graph works like building on the original.
    let on_top = rebuilt.mkdir(Mkdir::new("/x", 0o755));
    assert_eq!(
        on_top.digest(),
        state.mkdir(Mkdir::new("/x", 0o755)).digest()
    );
}

#[test]
fn bad_definitions_are_rejected() {
    assert!(matches!(
        Definition::from_bytes(b"\xff"),
        Err(LlbError::DecodeDefinition(_))
    ));
    let def = Definition::from_proto(pb::Definition {
        def: vec![b"\xff".to_vec()],
        ..Default::default()
    });
    assert!(matches!(
        def.ops(),
        Err(LlbError::DecodeOp { index: 0, .. })
    ));
    let mut proto = ctx().marshal().to_proto();
    proto.def.remove(0);
    assert!(matches!(
        Definition::from_proto(proto).to_state(),
        Err(LlbError::UnknownInput { .. })
    ));
}

#[test]
fn json_view_lists_ops() {
    let json = sample_graph().marshal().to_json().unwrap();
    assert_eq!(json["schema"], "strata.llb/v1");
    let ops = json["ops"].as_array().unwrap();
    assert_eq!(ops.len(), 9);
    assert_eq!(ops[0]["kind"], "source");
    assert_eq!(
        ops[0]["identifier"],
        "docker-image://docker.io/library/debian:bookworm"
    );
    assert_eq!(ops[8]["kind"], "terminal");
    assert_eq!(json["head"], ops[7]["digest"]);
    let copy = ops
        .iter()
        .find(|o| o["description"] == "layer app")
        .unwrap();
    assert_eq!(copy["kind"], "exec");
    assert_eq!(copy["network"], "none");
    assert_eq!(copy["mounts"][1]["dest"], "/in");
    assert_eq!(copy["mounts"][1]["selector"], "app");
}

/// LLB writes an unset variant, OS version or feature list as empty, and
/// reads empty ones back as unset: a spec platform goes through unchanged.
#[test]
fn platforms_convert_to_and_from_protobuf() {
    let arm = Platform::parse("linux/arm64/v8").unwrap();
    let proto = platform_to_proto(&arm);
    assert_eq!(
        (
            proto.os.as_str(),
            proto.architecture.as_str(),
            proto.variant.as_str()
        ),
        ("linux", "arm64", "v8")
    );
    assert!(proto.os_version.is_empty() && proto.os_features.is_empty());
    assert_eq!(platform_from_proto(&proto), arm);
    let amd = Platform::parse("linux/amd64").unwrap();
    assert_eq!(platform_to_proto(&amd).variant, "");
    assert_eq!(platform_from_proto(&platform_to_proto(&amd)), amd);
    let win = pb::Platform {
        architecture: "amd64".into(),
        os: "windows".into(),
        variant: String::new(),
        os_version: "10.0.17763.1".into(),
        os_features: vec!["win32k".into()],
    };
    let read = platform_from_proto(&win);
    assert_eq!(read.os_version.as_deref(), Some("10.0.17763.1"));
    assert_eq!(read.os_features, Some(vec!["win32k".to_string()]));
    assert_eq!(read.variant, None);
    assert_eq!(platform_to_proto(&read), win);
}
