//! Compiles strata's subset of BuildKit's protobuf schema (`proto/`) into Rust:
//! prost messages and the tonic client for `LLBBridge`, written to `OUT_DIR`
//! and included by `src/proto.rs`. protox parses the files, so no `protoc`.

use std::path::PathBuf;

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
    Ok(())
}
