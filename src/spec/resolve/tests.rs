//! Unit tests of spec resolution, with inline TOML.

use std::path::Path;

use super::*;
use crate::spec::{ImageRef, SpecError, resolve_all};

const SPEC: &str = r#"version = 1
[args]
BASE = "python:3.11-slim"
[image]
from = "${BASE}"
platforms = ["linux/amd64", "linux/arm64"]
cmd = ["serve"]
env = { A = "1" }
[[layer]]
name = "models"
copy = [{ from = "m", to = "/app/models/" }]
[[layer]]
name = "app"
copy = [{ from = "bin/${TARGETARCH}/main", to = "/app/main", mode = "0755" }]
[[layer]]
name = "tools"
targets = ["dev"]
run = "pip install jupyter"
[target.dev]
cmd = ["--reload"]
env = { DEBUG = "1" }
"#;

fn resolved(text: &str, opts: &ResolveOptions) -> Result<crate::spec::Loaded, SpecError> {
    resolve_all(&SpecSource::new(Path::new("strata.toml"), text), opts)
}

fn names(spec: &ResolvedSpec) -> Vec<&str> {
    spec.layers.iter().map(|l| l.name.as_str()).collect()
}

#[test]
fn one_spec_per_platform_with_platform_args() {
    let loaded = resolved(SPEC, &ResolveOptions::default()).unwrap();
    let platforms: Vec<String> = loaded
        .specs
        .iter()
        .map(|s| s.platform.to_string())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    assert_eq!(names(&loaded.specs[0]), ["models", "app"]);
    let from = |s: &ResolvedSpec| match &s.layers[1].kind {
        LayerKind::Copy(c) => c.entries[0].from.clone(),
        LayerKind::Run(_) => panic!("app is a copy layer"),
    };
    assert_eq!(from(&loaded.specs[0]), "bin/amd64/main");
    assert_eq!(from(&loaded.specs[1]), "bin/arm64/main");
    let spec = &loaded.specs[0];
    assert_eq!(
        spec.image.from,
        BaseRef::Registry("python:3.11-slim".into())
    );
    assert_eq!(spec.image.cmd.as_deref(), Some(&["serve".to_string()][..]));
    assert_eq!(spec.image.timestamp, 315_619_200, "the frozen default");
    let LayerKind::Copy(app) = &spec.layers[1].kind else {
        panic!("app is a copy layer")
    };
    assert_eq!(app.entries[0].to, "/app/main");
    assert_eq!(app.entries[0].mode, Some(0o755));
    assert_eq!((app.owner.uid, app.owner.gid), (0, 0));
}

#[test]
fn a_target_adds_its_layers_and_overrides_the_config() {
    let opts = ResolveOptions {
        target: Some("dev".into()),
        platforms: vec![Platform::parse("linux/arm64").unwrap()],
        ..Default::default()
    };
    let loaded = resolved(SPEC, &opts).unwrap();
    assert_eq!(loaded.specs.len(), 1, "--platform wins over platforms");
    let spec = &loaded.specs[0];
    assert_eq!(names(spec), ["models", "app", "tools"]);
    assert_eq!(
        spec.image.cmd.as_deref(),
        Some(&["--reload".to_string()][..])
    );
    assert_eq!(spec.image.env.get("A").map(String::as_str), Some("1"));
    assert_eq!(spec.image.env.get("DEBUG").map(String::as_str), Some("1"));
}

#[test]
fn build_args_override_declared_ones_and_local_bases_parse() {
    let opts = ResolveOptions {
        build_args: [("BASE".to_string(), "oci:base:v1".to_string())].into(),
        platforms: vec![Platform::parse("linux/amd64").unwrap()],
        ..Default::default()
    };
    let loaded = resolved(SPEC, &opts).unwrap();
    assert_eq!(
        loaded.specs[0].image.from,
        BaseRef::Local(ImageRef::OciLayout {
            path: "base".into(),
            tag: Some("v1".into())
        })
    );
}

#[test]
fn errors_point_at_their_spans() {
    let err = resolved(
        &SPEC.replace("name = \"tools\"", "name = \"models\""),
        &ResolveOptions::default(),
    )
    .unwrap_err();
    let SpecError::Invalid { diagnostics } = err else {
        panic!("{err:?}")
    };
    assert!(
        diagnostics[0].message.contains("`models`"),
        "{:?}",
        diagnostics[0]
    );
    let err = resolved(
        "version = 2\n[image]\nfrom = \"scratch\"\n",
        &ResolveOptions::default(),
    )
    .unwrap_err();
    let SpecError::Invalid { diagnostics } = err else {
        panic!("{err:?}")
    };
    assert!(
        diagnostics[0]
            .message
            .contains("unsupported spec version 2"),
        "{:?}",
        diagnostics[0]
    );
    let unknown = ResolveOptions {
        target: Some("nope".into()),
        ..Default::default()
    };
    assert!(matches!(
        resolved(SPEC, &unknown).unwrap_err(),
        SpecError::UnknownTarget { .. }
    ));
}
