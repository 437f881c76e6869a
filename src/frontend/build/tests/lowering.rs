//! The LLB the frontend lowers a spec to, on the offline gateway: build
//! stages, the helper's image and execs, the fallback chain, the shared
//! context sources.

use super::*;

/// Writes `files` into a fresh directory (context and spec alike) and
/// runs the frontend on it offline with `caps`: the gateway afterwards.
fn lower_offline(
    files: &[(&str, &str)],
    caps: crate::frontend::offline::EngineCaps,
) -> crate::frontend::offline::OfflineGateway {
    let dir = tempfile::tempdir().unwrap();
    for (p, c) in files {
        let path = dir.path().join(p);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(path, c).unwrap();
    }
    let gw = crate::frontend::offline::OfflineGateway::new(
        caps,
        BTreeMap::from([
            ("dockerfile".to_string(), dir.path().to_path_buf()),
            ("context".to_string(), dir.path().to_path_buf()),
        ]),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(run_with(
        &gw,
        &env(&[("source", "strata:dev"), ("platform", "linux/amd64")]),
    ))
    .unwrap();
    gw
}

#[test]
fn stages_lower_to_independent_exec_chains() {
    use prost::Message;

    use crate::frontend::offline::EngineCaps;
    use crate::proto::pb;

    // Lines: build 4-10 (step 8-10), tools 11-15, dev 16-18, layers from 19.
    let gw = lower_offline(
        &[
            ("requirements.txt", "tts-textnorm==0.1.0\n"),
            ("src/app.py", "print(1)\n"),
            (
                "strata.toml",
                "version = 1\n[image]\nfrom = \"debian:bookworm\"\n\
         [[stage]]\nname = \"build\"\nfrom = \"debian:bookworm\"\nworkdir = \"/b\"\n\
         [[stage.step]]\nrun = \"pip wheel -r requirements.txt -w /wheels\"\ninputs = [\"requirements.txt\"]\n\
         [[stage]]\nname = \"tools\"\nfrom = \"alpine:3\"\n[[stage.step]]\nrun = \"echo 1 > /v\"\n\
         [[stage]]\nname = \"dev\"\nfrom = \"build\"\n\
         [[layer]]\nname = \"wheels\"\ncopy = [{ stage = \"build\", from = \"/wheels\", to = \"/opt/wheels\" }]\n\
         [[layer]]\nname = \"deps\"\nrun = \"cat /t/v\"\nmounts = [{ stage = \"tools\", from = \"/\", to = \"/t\" }]\n\
         [[layer]]\nname = \"app\"\ncopy = [{ from = \"src\", to = \"/app\" }]\n\
         [[layer]]\nname = \"dbg\"\ntargets = [\"development\"]\ncopy = [{ stage = \"dev\", from = \"/b\", to = \"/b\" }]\n\
         [target.development]\n",
            ),
        ],
        EngineCaps::Modern,
    );
    let bytes = gw.outcome().unwrap();
    let def = Definition::from_bytes(&bytes).unwrap();
    let ops = def.ops().unwrap();
    let by_name = |prefix: &str| {
        ops.iter()
            .find(|o| {
                o.description
                    .as_deref()
                    .is_some_and(|d| d.starts_with(prefix))
            })
            .unwrap_or_else(|| panic!("no op named {prefix}"))
    };
    let build = by_name("[strata] stage build:");
    let tools = by_name("[strata] stage tools:");
    let helper = by_name("[strata] layer wheels");
    let deps = by_name("[strata] layer deps:");
    assert!(
        !ops.iter().any(|o| o
            .description
            .as_deref()
            .is_some_and(|d| d.contains("stage dev") || d.contains("layer dbg"))),
        "a stage the target does not need is not built"
    );
    // Everything each stage exec depends on.
    let ancestors = |digest: &str| {
        let mut seen = std::collections::BTreeSet::new();
        let mut todo = vec![digest.to_string()];
        while let Some(d) = todo.pop() {
            if seen.insert(d.clone())
                && let Some(o) = ops.iter().find(|o| o.digest == d)
            {
                todo.extend(o.inputs.iter().map(|(i, _)| i.clone()));
            }
        }
        seen
    };
    let (a, b) = (ancestors(&build.digest), ancestors(&tools.digest));
    let raw = pb::Definition::decode(bytes.as_slice()).unwrap();
    let exec_of = |digest: &str| {
        let i = ops.iter().position(|o| o.digest == digest).unwrap();
        match pb::Op::decode(raw.def[i].as_slice()).unwrap().op {
            Some(pb::op::Op::Exec(e)) => e,
            other => panic!("{other:?}"),
        }
    };
    // Independent stages share no op but the frontend image their
    // normalizer comes from.
    let normalizer = exec_of(&build.digest)
        .mounts
        .into_iter()
        .find(|m| m.dest == super::super::normalize::NORMALIZER)
        .expect("the normalizer mounted into the stage step");
    assert!(normalizer.readonly && normalizer.selector == "/strata-normalize");
    let image = ancestors(&build.inputs[normalizer.input as usize].0);
    assert!(
        a.intersection(&b).all(|d| image.contains(d)),
        "independent stages share no op but the frontend image"
    );
    // The helper reads the build stage; the run layer mounts tools.
    assert!(helper.inputs.iter().any(|(d, _)| *d == build.digest));
    assert!(deps.inputs.iter().any(|(d, _)| *d == tools.digest));
    let m = exec_of(&helper.digest)
        .mounts
        .into_iter()
        .find(|m| m.dest == "/src/0/wheels")
        .expect("the stage path mounted for the helper");
    assert!(m.readonly);
    assert_eq!(m.selector, "/wheels");
    let m = exec_of(&deps.digest)
        .mounts
        .into_iter()
        .find(|m| m.dest == "/t")
        .expect("the stage mounted into the run layer");
    assert!(
        m.readonly && m.output == -1,
        "read-only, never in the layer"
    );
    assert!(
        exec_of(&deps.digest)
            .meta
            .unwrap()
            .remove_mount_stubs_recursive,
        "no mount-point stubs in the layer"
    );
    // The normalizer creates the working directory and runs there.
    let meta = exec_of(&build.digest).meta.unwrap();
    assert_eq!(meta.cwd, "/");
    assert_eq!(
        meta.args[..5],
        [
            super::super::normalize::NORMALIZER,
            "--timestamp",
            "315619200",
            "--cwd",
            "/b"
        ]
    );
    assert!(
        meta.env
            .contains(&"SOURCE_DATE_EPOCH=315619200".to_string())
    );
    // A failing stage command points at its step's lines.
    let loc = &raw.source.as_ref().unwrap().locations[&build.digest].locations[0];
    let range = loc.ranges[0];
    assert_eq!(
        (range.start.unwrap().line, range.end.unwrap().line),
        (8, 9),
        "the step's header and its `run`"
    );
    // Golden digests: a change in how stages lower must show here.
    assert_eq!(
        (
            build.digest.as_str(),
            helper.digest.as_str(),
            def.head().unwrap().as_str()
        ),
        (
            "sha256:882c48af300865d48549459858392845b56ef3442b2a0e95f1758aea054e10d0",
            "sha256:3c6d6a4ea6fab2dcea254d54bbaa091c52308e212eefde9dc0dcf868c95adecb",
            "sha256:e40bce61b38772e6b0c4dd2b9295baa8ca3c6b7fce8352978e3cead85729f96f"
        )
    );
}

/// The helper runs from the frontend's own image. Where execs can key a
/// mount by content, they do so for it and keep the very op BuildKit
/// loaded the frontend with; elsewhere the image op is the frontend's
/// pinned reference and platform, marked `internal` (another vertex).
#[test]
fn the_helper_image_is_keyed_apart_from_the_frontend_load() {
    use crate::proto::pb;

    // What BuildKit writes to frontend.bin: one pinned image source
    // marked as the frontend.
    let reference = "127.0.0.1:5000/s/strata:1@sha256:3d4a354869244654fdb291d643f0682456286304f8b935fcfd418017614f86b3";
    let source = pb::Op {
        op: Some(pb::op::Op::Source(pb::SourceOp {
            identifier: format!("docker-image://{reference}"),
            attrs: [("image.recordtype".to_string(), "frontend".to_string())].into(),
        })),
        platform: Some(pb::Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: "v8".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let bytes = |op: &pb::Op| prost::Message::encode_to_vec(op);
    let digest = |b: &[u8]| crate::plan::Digest::of(b).to_string();
    let frontend = bytes(&source);
    let terminal = pb::Op {
        inputs: vec![pb::Input {
            digest: digest(&frontend),
            index: 0,
        }],
        ..Default::default()
    };
    let bin = prost::Message::encode_to_vec(&pb::Definition {
        def: vec![frontend.clone(), bytes(&terminal)],
        ..Default::default()
    });
    let root_of = |helper: &Helper| {
        let def = helper
            .exec(["/strata"])
            .mount(Mount::bind("/out", &llb::scratch()))
            .build()
            .unwrap()
            .output("/out")
            .unwrap()
            .marshal();
        let exec = def
            .decode_ops()
            .unwrap()
            .into_iter()
            .find_map(|op| match op.op {
                Some(pb::op::Op::Exec(e)) => Some(e),
                _ => None,
            })
            .unwrap();
        exec.mounts.into_iter().find(|m| m.dest == "/").unwrap()
    };

    // BuildKit >= 0.13: the very op, keyed by content in the execs.
    let helper = helper_image(Some(&bin), Some("ignored:1"), true).unwrap();
    let def = helper.image.marshal();
    assert_eq!(def.ops().unwrap()[0].digest, digest(&frontend));
    let root = root_of(&helper);
    assert!(root.readonly);
    assert_eq!(root.content_cache, pb::MountContentCache::On as i32);

    // Older: another op for the same image and platform, keyed by it.
    let helper = helper_image(Some(&bin), Some("ignored:1"), false).unwrap();
    let def = helper.image.marshal();
    let ops = def.decode_ops().unwrap();
    let [image, _] = ops.as_slice() else {
        panic!("one source and the terminal: {ops:?}")
    };
    let Some(pb::op::Op::Source(src)) = &image.op else {
        panic!("a source op")
    };
    assert_eq!(src.identifier, format!("docker-image://{reference}"));
    assert_eq!(src.attrs["image.recordtype"], "internal");
    assert_eq!(image.platform, source.platform, "the frontend's platform");
    assert_ne!(
        def.ops().unwrap()[0].digest,
        digest(&frontend),
        "another vertex than the one BuildKit loaded the frontend with"
    );
    assert_eq!(
        root_of(&helper).content_cache,
        pb::MountContentCache::Default as i32
    );

    // Without frontend.bin: the `source` option, marked the same way.
    let def = helper_image(None, Some("strata:dev"), true)
        .unwrap()
        .image
        .marshal();
    let Some(pb::op::Op::Source(src)) = &def.decode_ops().unwrap()[0].op else {
        panic!("a source op")
    };
    assert_eq!(
        src.identifier,
        "docker-image://docker.io/library/strata:dev"
    );
    assert_eq!(src.attrs["image.recordtype"], "internal");
    assert!(helper_image(None, None, true).is_err());
}

/// The fallback (BuildKit 0.8): each copy layer is one helper exec that
/// writes onto the chain mounted writable at `/out` (no FileOp), and a
/// record step on the same source writes the record and the paths to
/// scratch outputs; with MergeOp the helper's `/out` is scratch.
#[test]
fn the_fallback_writes_each_copy_layer_onto_the_chain() {
    use prost::Message;

    use crate::frontend::offline::EngineCaps;
    use crate::proto::pb;

    let lower = |caps: EngineCaps| {
        let gw = lower_offline(
            &[
                ("data/a.txt", "a\n"),
                ("src/app.py", "print(1)\n"),
                (
                    "strata.toml",
                    "version = 1\n[image]\nfrom = \"debian:bookworm\"\n\
         [[layer]]\nname = \"data\"\ncopy = [{ from = \"data\", to = \"/data\" }]\n\
         [[layer]]\nname = \"deps\"\nrun = \"true\"\n\
         [[layer]]\nname = \"app\"\ncopy = [{ from = \"src\", to = \"/app\" }]\n",
                ),
            ],
            caps,
        );
        gw.outcome().unwrap();
        gw.solved()
    };
    // (description, exec op, input digests) of every op solved.
    let ops_of = |solved: Vec<Vec<u8>>| {
        let mut all = Vec::new();
        for bytes in &solved {
            let def = Definition::from_bytes(bytes).unwrap();
            let raw = pb::Definition::decode(bytes.as_slice()).unwrap();
            all.extend(def.ops().unwrap().into_iter().enumerate().map(|(i, o)| {
                let op = pb::Op::decode(raw.def[i].as_slice()).unwrap();
                let exec = match op.op {
                    Some(pb::op::Op::Exec(e)) => Some(e),
                    Some(pb::op::Op::File(_))
                        if !o
                            .description
                            .as_deref()
                            .is_some_and(|d| d.starts_with("[strata] WARNING")) =>
                    {
                        panic!("a FileOp: {:?}", o.description)
                    }
                    _ => None,
                };
                let inputs: Vec<String> = op.inputs.iter().map(|i| i.digest.clone()).collect();
                (o.description.unwrap_or_default(), o.digest, exec, inputs)
            }));
        }
        all
    };
    let ops = ops_of(lower(EngineCaps::V08));
    let find = |prefix: &str| {
        ops.iter()
            .find(|(d, ..)| d.starts_with(prefix))
            .unwrap_or_else(|| panic!("no op named {prefix}"))
    };
    let out_mount = |e: &pb::ExecOp| e.mounts.iter().find(|m| m.dest == "/out").unwrap().clone();
    let (_, deps_digest, ..) = find("[strata] layer deps:");
    let (_, _, app, app_inputs) = find("[strata] layer app");
    let app = app.as_ref().unwrap();
    let out = out_mount(app);
    assert!(
        !out.readonly && out.output >= 0,
        "the chain, writable, an output"
    );
    assert_eq!(
        &app_inputs[out.input as usize], deps_digest,
        "the app layer is written onto the run layer's result"
    );
    let root = app.mounts.iter().find(|m| m.dest == "/").unwrap();
    assert!(root.readonly, "the root is the frontend image, read-only");
    let (_, _, record, _) = find("[strata] record app");
    let record = record.as_ref().unwrap();
    assert!(
        record
            .meta
            .as_ref()
            .unwrap()
            .args
            .iter()
            .any(|a| a == "--paths-only")
    );
    assert_eq!(
        out_mount(record).input,
        -1,
        "the record step writes to scratch"
    );
    // The first copy layer is written onto the base.
    let (_, _, data, data_inputs) = find("[strata] layer data");
    let data_out = out_mount(data.as_ref().unwrap());
    let (_, base_digest, ..) = find("[strata] base debian:bookworm");
    assert_eq!(&data_inputs[data_out.input as usize], base_digest);

    // With MergeOp, the helper writes to scratch and no record step exists.
    let ops = ops_of(lower(EngineCaps::Modern));
    assert!(!ops.iter().any(|(d, ..)| d.starts_with("[strata] record ")));
    let (_, _, app, _) = ops
        .iter()
        .find(|(d, ..)| d.starts_with("[strata] layer app"))
        .unwrap();
    assert_eq!(out_mount(app.as_ref().unwrap()).input, -1);
}

/// The copy layers share one context source, each helper mounting its own
/// paths with selectors (so BuildKit keys it by their content only); the
/// rest of a split layer keeps a source of its own without the split
/// files; the run inputs share another, without the ignore patterns. Every
/// source's shared key hint names its input set (docs/design.md §2).
#[test]
fn copy_layers_share_one_context_source() {
    use prost::Message;

    use crate::frontend::offline::EngineCaps;
    use crate::proto::pb;

    let big = "x".repeat(2048);
    let gw = lower_offline(
        &[
            ("requirements.txt", "tts-textnorm==0.1.0\n"),
            ("sdists/a.tar.gz", "a"),
            ("models/big.bin", &big),
            ("models/c.json", "{}"),
            ("entry.sh", "#!/bin/sh\n"),
            ("ref/a.wav", "w"),
            ("src/app.py", "print(1)\n"),
            (".dockerignore", "**/*.tmp\n"),
            (
                "strata.toml",
                "version = 1\n[image]\nfrom = \"debian:bookworm\"\n\
         [[stage]]\nname = \"build\"\nfrom = \"debian:bookworm\"\n\
         [[stage.step]]\nrun = \"pip wheel\"\ninputs = [\"requirements.txt\", \"sdists\"]\n\
         [[layer]]\nname = \"deps\"\nrun = \"pip install\"\ninputs = [\"requirements.txt\"]\n\
         mounts = [{ stage = \"build\", from = \"/w\", to = \"/w\" }]\n\
         [[layer]]\nname = \"models\"\ncopy = [{ from = \"models\", to = \"/m\" }]\nsplit = \"file\"\nsplit_min = \"1KiB\"\n\
         [[layer]]\nname = \"runtime\"\ncopy = [{ from = \"entry.sh\", to = \"/e.sh\", mode = \"0755\" }, { from = \"ref\", to = \"/ref\" }]\n\
         [[layer]]\nname = \"app\"\ncopy = [{ from = \"src\", to = \"/app\", exclude = [\"**/__pycache__\"] }]\n",
            ),
        ],
        EngineCaps::Modern,
    );
    let bytes = gw.outcome().unwrap();
    let raw = pb::Definition::decode(bytes.as_slice()).unwrap();
    let ops: Vec<(String, pb::Op)> = raw
        .def
        .iter()
        .map(|b| {
            (
                format!("sha256:{}", crate::plan::Digest::of(b).hex()),
                pb::Op::decode(b.as_slice()).unwrap(),
            )
        })
        .collect();
    let attrs = |s: &pb::SourceOp, k: &str| s.attrs.get(k).cloned().unwrap_or_default();
    // The context's sources: (include, exclude, hint) by op digest.
    let sources: BTreeMap<String, (String, String, String)> = ops
        .iter()
        .filter_map(|(d, op)| match &op.op {
            Some(pb::op::Op::Source(s)) if s.identifier == "local://context" => Some((
                d.clone(),
                (
                    attrs(s, "local.includepattern"),
                    attrs(s, "local.excludepatterns"),
                    attrs(s, "local.sharedkeyhint"),
                ),
            )),
            _ => None,
        })
        .collect();
    let with_include = |include: &str| {
        sources
            .iter()
            .find(|(_, (i, _, _))| i == include)
            .unwrap_or_else(|| panic!("no source including {include}: {sources:?}"))
    };
    let shared = with_include(r#"["entry.sh","models","ref","src"]"#);
    let rest = with_include(r#"["models"]"#);
    let inputs = with_include(r#"["requirements.txt","sdists"]"#);
    assert_eq!(sources.len(), 3, "{sources:?}");
    assert_eq!(shared.1.1, r#"["**/*.tmp"]"#, "the ignore patterns");
    assert_eq!(
        rest.1.1, r#"["**/*.tmp","models/big.bin"]"#,
        "no split file"
    );
    assert_eq!(inputs.1.1, "", "run inputs see every file");
    let hints: BTreeSet<&String> = sources.values().map(|(_, _, h)| h).collect();
    assert_eq!(hints.len(), 3, "one hint per input set: {sources:?}");
    assert!(
        hints
            .iter()
            .all(|h| h.starts_with("strata/") && h.len() == 39)
    );
    // Each helper's mounts under `/src`: (dest, source digest, selector).
    let helper_mounts = |layer: &str| -> Vec<(String, String, String)> {
        let want = format!("[strata] layer {layer}");
        let (d, op) = ops
            .iter()
            .find(|(d, _)| {
                raw.metadata
                    .get(d)
                    .and_then(|m| m.description.get("llb.customname"))
                    .is_some_and(|n| *n == want)
            })
            .unwrap_or_else(|| panic!("no helper for {layer}"));
        let Some(pb::op::Op::Exec(e)) = &op.op else {
            panic!("{d} is not an exec")
        };
        e.mounts
            .iter()
            .filter(|m| m.dest.starts_with("/src"))
            .map(|m| {
                assert!(m.readonly, "{layer}: {m:?}");
                (
                    m.dest.clone(),
                    op.inputs[m.input as usize].digest.clone(),
                    m.selector.clone(),
                )
            })
            .collect()
    };
    let on = |src: &(&String, &(String, String, String)), dest: &str, sel: &str| {
        (dest.to_string(), src.0.clone(), sel.to_string())
    };
    assert_eq!(
        helper_mounts("runtime"),
        [
            on(&shared, "/src/entry.sh", "entry.sh"),
            on(&shared, "/src/ref", "ref")
        ]
    );
    assert_eq!(helper_mounts("app"), [on(&shared, "/src/src", "src")]);
    assert_eq!(
        helper_mounts("models@/m/big.bin"),
        [on(&shared, "/src/models/big.bin", "models/big.bin")]
    );
    assert_eq!(helper_mounts("models"), [on(&rest, "/src", "")]);
}
