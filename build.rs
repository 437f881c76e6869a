//! Compiles strata's subset of BuildKit's protobuf schema (`proto/`) into Rust:
//! prost messages and the tonic client for `LLBBridge`, written to `OUT_DIR`
//! and included by `src/proto.rs`. protox parses the files, so no `protoc`.
//!
//! Also sets `STRATA_COMMIT` for `strata --version` (docs/design.md §9): the
//! `STRATA_COMMIT` environment variable when set, else the checkout's commit
//! (`git rev-parse`), else the one `cargo package` recorded in
//! `.cargo_vcs_info.json`, else `unknown`. A source tree without git builds.

use std::path::{Path, PathBuf};
use std::process::Command;

const PROTO_ROOT: &str = "proto";
const PROTOS: &[&str] = &[
    "github.com/moby/buildkit/frontend/gateway/pb/gateway.proto",
    "github.com/moby/buildkit/solver/pb/ops.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    let files = protox::compile(PROTOS, [PROTO_ROOT])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        // Maps encode in key order, so the bytes BuildKit digests are stable.
        .btree_map(".")
        .out_dir(&out_dir)
        .compile_fds(files)?;

    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    println!("cargo:rustc-env=STRATA_COMMIT={}", commit(&manifest_dir));
    Ok(())
}

/// The commit strata is built from, 12 hex digits where known.
#[allow(
    clippy::disallowed_methods,
    reason = "a missing or unreadable record means `unknown`; no error is shown"
)]
fn commit(dir: &Path) -> String {
    println!("cargo:rerun-if-env-changed=STRATA_COMMIT");
    if let Some(c) = std::env::var("STRATA_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
    {
        return c;
    }
    if let Some(c) = git_commit(dir) {
        return c;
    }
    let vcs_info = dir.join(".cargo_vcs_info.json");
    watch(&vcs_info);
    std::fs::read_to_string(&vcs_info)
        .ok()
        .and_then(|s| {
            let sha = s.split("\"sha1\"").nth(1)?.split('"').nth(1)?.to_string();
            let ok = sha.len() >= 12 && sha.bytes().all(|b| b.is_ascii_hexdigit());
            ok.then(|| sha[..12].to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// `git rev-parse` of the checkout at `dir`, only when `dir` is the top of
/// that checkout (a source tarball unpacked inside another repository must
/// not take that repository's commit). Re-runs when HEAD moves.
fn git_commit(dir: &Path) -> Option<String> {
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let top = git(&["rev-parse", "--show-toplevel"])?;
    if Path::new(&top).canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    // HEAD, the branch it names and packed refs: a commit or checkout moves one.
    let mut refs = vec!["HEAD".to_string(), "packed-refs".to_string()];
    refs.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    for r in refs {
        watch(&dir.join(git(&["rev-parse", "--git-path", &r])?));
    }
    git(&["rev-parse", "--short=12", "HEAD"])
}

/// Re-runs the build script when `path` changes; a missing path is not
/// watched (cargo would re-run the script on every build).
fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
