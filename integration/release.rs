//! The release binaries: statically linked, as `FROM scratch` needs.

use std::process::Command;

use crate::util::{run_ok, tool};

/// Built with `release/env.sh` (an explicit target, `+crt-static`), the
/// binaries under test are the release binaries, and `file` calls them
/// statically linked. A plain `cargo test` builds ordinary host binaries:
/// nothing to check then.
#[test]
fn the_release_binaries_are_statically_linked() {
    let bins = [
        env!("CARGO_BIN_EXE_strata"),
        env!("CARGO_BIN_EXE_strata-normalize"),
    ];
    if !bins[0].contains("-unknown-linux-gnu/release/") {
        eprintln!("skipping: not the release build (`. release/env.sh` first)");
        return;
    }
    if tool("file").is_none() {
        return;
    }
    for bin in bins {
        let text = run_ok(Command::new("file").args(["-L", bin])).stdout();
        assert!(
            text.contains("statically linked") || text.contains("static-pie linked"),
            "{bin} is not statically linked: {text}"
        );
    }
}
