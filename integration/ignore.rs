//! The `.dockerignore` conformance table (`src/plan/ignore_conformance.txt`,
//! docs/design.md §3) through a real `docker buildx build` on Docker 28.5: each
//! row's context is copied with `COPY . /ctx/` and the exported files must
//! agree with strata's matcher. Under CI=true a missing engine fails.

use crate::util::{docker, engine, run_ok};

const TABLE: &str = include_str!("../src/plan/ignore_conformance.txt");

struct Row {
    excluded: bool,
    path: String,
    patterns: Vec<String>,
}

fn rows() -> Vec<Row> {
    TABLE
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut f = l.split_whitespace();
            let excluded = f.next() == Some("excluded");
            let path = f.next().unwrap().to_string();
            Row {
                excluded,
                path,
                patterns: f.map(String::from).collect(),
            }
        })
        .collect()
}

/// Whether Docker's own build leaves `row.path` out of the context.
fn docker_excludes(host: &str, row: &Row) -> bool {
    let root = tempfile::tempdir().unwrap();
    let ctx = root.path().join("ctx");
    let target = ctx.join(row.path.trim_end_matches('/'));
    std::fs::create_dir_all(if row.path.ends_with('/') {
        &target
    } else {
        target.parent().unwrap()
    })
    .unwrap();
    if !row.path.ends_with('/') {
        std::fs::write(&target, "x").unwrap();
    }
    std::fs::write(ctx.join(".dockerignore"), row.patterns.join("\n") + "\n").unwrap();
    let dockerfile = root.path().join("Dockerfile");
    std::fs::write(&dockerfile, "FROM scratch\nCOPY . /ctx/\n").unwrap();
    let out = root.path().join("out");
    run_ok(
        docker(host)
            .args(["buildx", "build", "-q", "-f"])
            .arg(&dockerfile)
            .arg("--output")
            .arg(format!("type=local,dest={}", out.display()))
            .arg(&ctx),
    );
    !out.join("ctx")
        .join(row.path.trim_end_matches('/'))
        .exists()
}

#[test]
fn conformance_table_agrees_with_docker_28() {
    let _engines = crate::util::engine_lock();
    let Some(host) = engine("d28") else { return };
    let host = host.as_str();
    let rows = rows();
    assert!(rows.len() > 40);
    let disagree: Vec<String> = std::thread::scope(|s| {
        let chunks: Vec<_> = rows.chunks(rows.len().div_ceil(4)).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .filter(|r| docker_excludes(host, r) != r.excluded)
                        .map(|r| {
                            format!(
                                "{} {} {}",
                                if r.excluded { "excluded" } else { "included" },
                                r.path,
                                r.patterns.join(" ")
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(
        disagree.is_empty(),
        "Docker disagrees with these rows:\n{}",
        disagree.join("\n")
    );
}
