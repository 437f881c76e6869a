//! `strata llb`: the frontend's Definition for examples/tts, offline. It
//! decodes to the expected graph, does not depend on the checkout's mtimes,
//! falls back to a linear chain for BuildKit 0.8, and stays far under the
//! 4 MiB message limit (docs/design.md §6).

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

use crate::util::run_ok;

fn llb(dir: &std::path::Path, extra: &[&str]) -> Vec<u8> {
    run_ok(
        Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("llb")
            .arg(dir)
            .args(extra),
    )
    .0
    .stdout
}

fn kinds(json: &Value) -> BTreeMap<String, usize> {
    let mut k = BTreeMap::new();
    for op in json["ops"].as_array().unwrap() {
        *k.entry(op["kind"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    k
}

fn example_copy(mtime: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tts");
    assert!(
        Command::new("cp")
            .arg("-r")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/tts"))
            .arg(&dir)
            .status()
            .unwrap()
            .success()
    );
    assert!(
        Command::new("sh")
            .arg("-c")
            .arg(format!("find . -exec touch -d '{mtime}' {{}} +"))
            .current_dir(&dir)
            .status()
            .unwrap()
            .success()
    );
    tmp
}

#[test]
fn tts_definition_decodes_to_the_expected_graph() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/tts");
    let json: Value = serde_json::from_slice(&llb(dir.as_ref(), &["--format", "json"])).unwrap();
    assert_eq!(json["schema"], "strata.llb/v1");
    // 7 copy layers (4 split files) as helper execs, 2 run layers as execs
    // with their diffs, the `build` stage's one step, one empty diff per
    // helper record (no layer, but in the graph for cache export), one
    // merge of base + 9 layers + 7 records, the terminal op.
    let k = kinds(&json);
    assert_eq!(k["exec"], 10, "{k:?}");
    assert_eq!(k["diff"], 2 + 7, "{k:?}");
    assert_eq!(k["merge"], 1, "{k:?}");
    assert_eq!(k["terminal"], 1, "{k:?}");
    let ops = json["ops"].as_array().unwrap();
    let head = ops.iter().find(|o| o["digest"] == json["head"]).unwrap();
    assert_eq!(head["kind"], "merge");
    assert_eq!(head["inputs"].as_array().unwrap().len(), 1 + 9 + 7);
    let helpers = ops
        .iter()
        .filter(|o| {
            o["description"]
                .as_str()
                .is_some_and(|d| d.starts_with("[strata] layer models@"))
        })
        .count();
    assert_eq!(helpers, 4, "one helper exec per split file");
    let stage = ops
        .iter()
        .filter(|o| {
            o["description"]
                .as_str()
                .is_some_and(|d| d.starts_with("[strata] stage build: python3 -m pip wheel"))
        })
        .count();
    assert_eq!(stage, 1, "the build stage is one exec");
}

#[test]
fn definition_does_not_depend_on_mtimes_and_stays_small() {
    let a = example_copy("2001-01-01");
    let b = example_copy("2031-06-15 12:00");
    let da = llb(&a.path().join("tts"), &[]);
    let db = llb(&b.path().join("tts"), &[]);
    assert_eq!(da, db, "same content, other mtimes: identical bytes");
    assert!(da.len() < 4 << 20, "{} bytes", da.len());
}

#[test]
fn buildkit_0_8_gets_a_linear_chain() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/tts");
    let json: Value = serde_json::from_slice(&llb(
        dir.as_ref(),
        &["--format", "json", "--engine-caps", "0.8"],
    ))
    .unwrap();
    let k = kinds(&json);
    assert!(
        !k.contains_key("merge") && !k.contains_key("diff") && !k.contains_key("file"),
        "{k:?}"
    );
    // Each of the 7 copy layers is one helper exec writing onto the chain
    // (no FileOp), beside the 2 run layers and the 1 stage step.
    assert_eq!(
        k["exec"], 10,
        "copy layers written onto the chain by their helpers: {k:?}"
    );
}
