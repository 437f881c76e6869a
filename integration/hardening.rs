//! The embedded builder against hostile trees and careless users
//! (`docs/oci.md`, "Guarantees"): inputs swapped for symlinks or edited
//! during a build, corrupt cache and output blobs, `strata diff` on a
//! corrupt blob, the output inside the context, a symlink named as a copy
//! source. The deterministic tests act between planning and writing through
//! the library; the randomized ones spawn the binary and act at a random
//! moment (seed printed, `STRATA_TEST_SEED=N` replays it).

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::util::{Ctx, Run};

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[track_caller]
fn ok(run: &Run) -> String {
    assert_eq!(run.code(), 0, "exit status; stderr:\n{}", run.stderr());
    run.stdout().trim().to_string()
}

/// A small xorshift generator: the tests need no `rand`.
struct Rng(u64);

impl Rng {
    /// Seeded from `STRATA_TEST_SEED` or the clock; prints the seed.
    fn new(test: &str) -> Self {
        let seed = std::env::var("STRATA_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{test}: seed {seed} (replay with STRATA_TEST_SEED={seed})");
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Deterministic bytes of a given length, different per seed.
fn bytes(len: usize, seed: u64, marker: &[u8]) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'a' + (x % 26) as u8
        })
        .collect();
    for (i, b) in marker.iter().enumerate().take(len) {
        out[i] = *b;
    }
    out
}

/// Every blob of a layout, as (digest named, path).
fn blobs(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir.join("blobs/sha256")) else {
        return Vec::new();
    };
    rd.map(|e| e.unwrap())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| {
            (
                format!("sha256:{}", e.file_name().to_string_lossy()),
                e.path(),
            )
        })
        .collect()
}

/// Uncompressed content of a blob (gzip or plain).
fn unpacked(bytes: &[u8]) -> Vec<u8> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        if flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .is_ok()
        {
            return out;
        }
    }
    bytes.to_vec()
}

/// Checks that every blob of `dir` (a layout or the cache root) matches its
/// name, and that none holds `forbidden`; returns the problems.
fn unsound(dir: &Path, forbidden: &[u8]) -> Vec<String> {
    let mut bad = Vec::new();
    for (digest, path) in blobs(dir) {
        let b = std::fs::read(&path).unwrap();
        if digest_of(&b) != digest {
            bad.push(format!("{}: does not match its digest", path.display()));
        }
        if !forbidden.is_empty() && contains(&unpacked(&b), forbidden) {
            bad.push(format!(
                "{}: holds bytes from outside the context",
                path.display()
            ));
        }
    }
    bad
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Flips one byte in place (same size, same inode).
fn flip(path: &Path, at: u64) {
    // A blob a build removed meanwhile is simply not flipped.
    let Ok(mut f) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    else {
        return;
    };
    let len = f.metadata().unwrap().len();
    let at = at % len.max(1);
    let mut b = [0u8];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[b[0] ^ 0x55]).unwrap();
}

/// Rewrites a file in place with new content of the same size.
fn edit_in_place(path: &Path, content: &[u8]) {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all(content).unwrap();
}

/// Loads `ctx`'s spec and plans it through the library.
fn plan(ctx: &Ctx) -> (strata::spec::ResolvedSpec, strata::plan::Plan) {
    let loaded = strata::spec::load(
        &ctx.path().join("strata.toml"),
        strata::spec::ResolveOptions {
            context: ctx.path().into(),
            ..Default::default()
        },
    )
    .unwrap();
    let spec = loaded.specs.into_iter().next().unwrap();
    let plan = strata::plan::make_plan(&spec, &ctx.cache()).unwrap();
    (spec, plan)
}

/// Builds a planned spec through the library into `out`.
fn build_planned(
    ctx: &Ctx,
    spec: &strata::spec::ResolvedSpec,
    plan: &strata::plan::Plan,
    out: &Path,
) -> Result<strata::oci::build::BuildOutcome, strata::oci::OciError> {
    strata::oci::build::build(&strata::oci::build::BuildRequest {
        spec,
        plan,
        output: strata::oci::base::ImageRef::OciLayout {
            path: out.to_path_buf(),
            tag: Some("t".into()),
        },
        cache_root: ctx.cache(),
        source_date_epoch: None,
        compression: strata::oci::compress::Compression::Gzip,
        registry_base: None,
        annotations: Default::default(),
    })
}

const COPY_D: &str = "version = 1\n[image]\nfrom = \"scratch\"\n\
    [[layer]]\nname = \"d\"\ncopy = [{ from = \"d\", to = \"/d\" }]\n";

/// A directory replaced by a symlink to a directory outside the context
/// between hashing and writing: the writer must not follow it.
#[test]
fn a_directory_swapped_for_a_symlink_after_hashing_brings_nothing_from_outside() {
    let ctx = Ctx::new();
    ctx.spec(COPY_D);
    let outside = ctx.outside("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();
    for i in 0..50 {
        ctx.write(&format!("d/f{i:02}"), bytes(300, i, b"inside"));
        std::fs::write(outside.join(format!("f{i:02}")), bytes(300, i, b"OUTSIDE")).unwrap();
    }
    let (spec, plan) = plan(&ctx);
    std::fs::rename(ctx.path().join("d"), ctx.outside("d.real")).unwrap();
    std::os::unix::fs::symlink(&outside, ctx.path().join("d")).unwrap();
    let out = ctx.outside("out");
    let result = build_planned(&ctx, &spec, &plan, &out);
    let bad = [unsound(&out, b"OUTSIDE"), unsound(&ctx.cache(), b"OUTSIDE")].concat();
    assert!(bad.is_empty(), "{bad:#?}");
    let e = result.expect_err("the build must fail");
    assert!(e.to_string().contains("changed while being read"), "{e}");
    assert!(e.to_string().contains("/d/f"), "{e}");
}

/// A file rewritten at the same size between hashing and writing: the
/// layer must not hold the new bytes under the old content's key, and the
/// cache must not keep them.
#[test]
fn a_same_size_edit_after_hashing_fails_and_leaves_nothing_in_the_cache() {
    let ctx = Ctx::new();
    ctx.spec(COPY_D);
    let f = ctx.write("d/model.bin", bytes(5000, 1, b"version-1"));
    ctx.write("d/other", b"unchanged");
    let (spec, plan) = plan(&ctx);
    edit_in_place(&f, &bytes(5000, 2, b"version-2"));
    let out = ctx.outside("out");
    let e = build_planned(&ctx, &spec, &plan, &out).expect_err("the build must fail");
    let msg = e.to_string();
    assert!(msg.contains("changed while being read"), "{msg}");
    assert!(msg.contains("d/model.bin"), "{msg}");
    let layers = std::fs::read_dir(ctx.cache().join("layers"))
        .unwrap()
        .count();
    assert_eq!(layers, 0, "no layer record for the failed layer");
    assert!(unsound(&ctx.cache(), b"version-2").is_empty());
    // The original content, restored, builds a layer that holds it.
    edit_in_place(&f, &bytes(5000, 1, b"version-1"));
    let run = ctx.strata(&[
        "build",
        ".",
        "-o",
        &format!("oci-layout:{}:t", out.display()),
    ]);
    ok(&run);
    let all: Vec<u8> = blobs(&out)
        .iter()
        .flat_map(|(_, p)| unpacked(&std::fs::read(p).unwrap()))
        .collect();
    assert!(contains(&all, b"version-1") && !contains(&all, b"version-2"));
}

/// The single layer blob digest of the image tagged `t` in `out`.
fn layer_digest(out: &Path) -> String {
    let index: Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    let m = index["manifests"][0]["digest"].as_str().unwrap();
    let m: Value = serde_json::from_slice(
        &std::fs::read(out.join("blobs/sha256").join(&m["sha256:".len()..])).unwrap(),
    )
    .unwrap();
    m["layers"][0]["digest"].as_str().unwrap().to_string()
}

fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256").join(&digest["sha256:".len()..])
}

/// One byte flipped in a cached blob: the next build must notice, write the
/// layer again and ship sound blobs; earlier outputs share no inode with the
/// cache, so they are untouched.
#[test]
fn a_flipped_byte_in_the_cache_is_caught_and_never_reaches_an_output() {
    let ctx = Ctx::new();
    ctx.spec(COPY_D);
    ctx.write("d/weights", bytes(100_000, 3, b"w"));
    let first = ctx.outside("first");
    ok(&ctx.strata(&[
        "build",
        ".",
        "-o",
        &format!("oci-layout:{}:t", first.display()),
    ]));
    let digest = layer_digest(&first);
    let cached = blob_path(&ctx.cache(), &digest);
    flip(&cached, 5000);
    assert!(
        unsound(&first, b"").is_empty(),
        "the first output shares the flip"
    );
    let second = ctx.outside("second");
    let run = ctx.strata(&[
        "build",
        ".",
        "-o",
        &format!("oci-layout:{}:t", second.display()),
    ]);
    ok(&run);
    assert!(
        run.stderr().contains("does not match its digest"),
        "{}",
        run.stderr()
    );
    assert!(run.stderr().contains(" built "), "{}", run.stderr());
    assert_eq!(layer_digest(&second), digest);
    let bad = [unsound(&second, b""), unsound(&ctx.cache(), b"")].concat();
    assert!(bad.is_empty(), "{bad:#?}");
}

/// A corrupt blob in an existing output layout: a rebuild into it replaces
/// it instead of keeping it because its size matches.
#[test]
fn a_rebuild_replaces_a_corrupt_blob_in_its_output() {
    let ctx = Ctx::new();
    ctx.spec(COPY_D);
    ctx.write("d/weights", bytes(100_000, 4, b"w"));
    let out = ctx.outside("out");
    let dest = format!("oci-layout:{}:t", out.display());
    ok(&ctx.strata(&["build", ".", "-o", &dest]));
    // A no-op rebuild first, so the blob has a verified-stat record.
    ok(&ctx.strata(&["build", ".", "-o", &dest]));
    let digest = layer_digest(&out);
    flip(&blob_path(&out, &digest), 777);
    assert!(!unsound(&out, b"").is_empty());
    ok(&ctx.strata(&["build", ".", "-o", &dest]));
    let bad = [unsound(&out, b""), unsound(&ctx.cache(), b"")].concat();
    assert!(bad.is_empty(), "{bad:#?}");
}

/// `strata diff` on an image with a flipped byte in a layer blob: a corrupt
/// blob (exit 2), not a file difference (exit 1).
#[test]
fn diff_reports_a_corrupt_blob_as_trouble() {
    let ctx = Ctx::new();
    ctx.spec(COPY_D);
    ctx.write("d/a", bytes(20_000, 5, b"a"));
    let a = ctx.outside("a");
    ok(&ctx.strata(&["build", ".", "-o", &format!("oci-layout:{}:t", a.display())]));
    ctx.write("d/a", bytes(20_000, 6, b"a"));
    let b = ctx.outside("b");
    ok(&ctx.strata(&["build", ".", "-o", &format!("oci-layout:{}:t", b.display())]));
    let b_ref = format!("oci-layout:{}:t", b.display());
    let a_ref = format!("oci-layout:{}:t", a.display());
    assert_eq!(ctx.strata(&["diff", &a_ref, &b_ref]).code(), 1);
    let digest = layer_digest(&b);
    flip(&blob_path(&b, &digest), 9000);
    let run = ctx.strata(&["diff", &a_ref, &b_ref]);
    assert_eq!(
        run.code(),
        2,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout(),
        run.stderr()
    );
    assert!(run.stderr().contains("corrupt blob"), "{}", run.stderr());
    assert!(run.stderr().contains(&digest), "{}", run.stderr());
}

/// `--output oci-layout:data/out` inside a copied directory: left out of the
/// context with one warning, so the digest settles.
#[test]
fn an_output_inside_the_context_is_left_out_of_it() {
    let ctx = Ctx::new();
    ctx.spec(
        "version = 1\n[image]\nfrom = \"scratch\"\n\
         [[layer]]\nname = \"data\"\ncopy = [{ from = \"data\", to = \"/data\" }]\n",
    );
    ctx.write("data/a.txt", b"a");
    let first = ctx.strata(&["build", ".", "-o", "oci-layout:data/out:t"]);
    let d1 = ok(&first);
    let second = ctx.strata(&["build", ".", "-o", "oci-layout:data/out:t"]);
    let d2 = ok(&second);
    assert_eq!(d1, d2, "the digest settles");
    let warnings: Vec<&str> = second
        .0
        .stderr
        .split(|&b| b == b'\n')
        .filter_map(|l| std::str::from_utf8(l).ok())
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", second.stderr());
    assert!(warnings[0].contains("`data/out`"), "{}", warnings[0]);
    assert!(second.stderr().contains("reused"), "{}", second.stderr());
    // An output outside every input says nothing.
    let other = ctx.strata(&["build", ".", "-o", "oci-layout:elsewhere:t"]);
    ok(&other);
    assert!(!other.stderr().contains("warning:"), "{}", other.stderr());
}

/// `from = "models/current"` with `current -> v2`: the files of `v2` are
/// copied (as Docker's COPY does); a link leading out of the context is
/// refused, naming it.
#[test]
fn a_symlink_named_as_a_copy_source_is_followed_inside_the_context() {
    let ctx = Ctx::new();
    ctx.spec(
        "version = 1\n[image]\nfrom = \"scratch\"\n\
         [[layer]]\nname = \"m\"\ncopy = [{ from = \"models/current\", to = \"/models\" }]\n",
    );
    ctx.write("models/v1/w.bin", b"one");
    ctx.write("models/v2/w.bin", b"two");
    std::os::unix::fs::symlink("v2", ctx.path().join("models/current")).unwrap();
    let out = ctx.outside("out");
    ok(&ctx.strata(&[
        "build",
        ".",
        "-o",
        &format!("oci-layout:{}:t", out.display()),
    ]));
    let tar = unpacked(&std::fs::read(blob_path(&out, &layer_digest(&out))).unwrap());
    let mut names = Vec::new();
    for e in tar::Archive::new(&tar[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let ty = e.header().entry_type();
        if name == "models/w.bin" {
            let mut s = String::new();
            e.read_to_string(&mut s).unwrap();
            assert_eq!(s, "two");
            assert!(ty.is_file());
        }
        names.push(name);
    }
    assert_eq!(names, ["models/", "models/w.bin"]);

    std::fs::remove_file(ctx.path().join("models/current")).unwrap();
    std::os::unix::fs::symlink("../../elsewhere", ctx.path().join("models/current")).unwrap();
    std::fs::create_dir_all(ctx.outside("elsewhere")).unwrap();
    let run = ctx.strata(&[
        "build",
        ".",
        "-o",
        &format!("oci-layout:{}:t", out.display()),
    ]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert!(run.stderr().contains("models/current"), "{}", run.stderr());
    assert!(
        run.stderr().contains("out of the context"),
        "{}",
        run.stderr()
    );
}

/// Spawns `strata build` into `out` and runs `act` after `delay`; returns
/// the exit code and stderr.
fn race(ctx: &Ctx, out: &Path, delay: Duration, act: impl FnOnce()) -> (i32, String) {
    let dest = format!("oci-layout:{}:t", out.display());
    let child = ctx
        .command(&["build", ".", "-o", &dest])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    act();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// How long a build of `ctx` takes, from an empty cache (the time window
/// the randomized tests act in).
fn window(ctx: &Ctx) -> Duration {
    let out = ctx.outside("window");
    let start = Instant::now();
    ok(&ctx.strata(&[
        "build",
        ".",
        "-o",
        &format!("oci-layout:{}:t", out.display()),
    ]));
    let took = start.elapsed();
    std::fs::remove_dir_all(ctx.cache()).unwrap();
    std::fs::remove_dir_all(&out).unwrap();
    took + took / 5
}

/// 20 builds, each with the copied directory swapped for a symlink to an
/// outside directory at a random moment: no output or cache blob ever holds
/// an outside byte or mismatches its digest.
#[test]
fn randomized_symlink_swaps_never_bring_outside_files() {
    let mut rng = Rng::new("randomized_symlink_swaps_never_bring_outside_files");
    let ctx = Ctx::new();
    ctx.spec(COPY_D);
    let outside = ctx.outside("elsewhere");
    for i in 0..30 {
        let sub = if i % 2 == 0 { "" } else { "sub/" };
        ctx.write(&format!("d/{sub}f{i:02}"), bytes(20_000, i, b"inside"));
        let p = outside.join(format!("{sub}f{i:02}"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes(20_000, i, b"OUTSIDE")).unwrap();
    }
    let window = window(&ctx);
    let real = ctx.outside("d.real");
    for round in 0..20 {
        let out = ctx.outside(&format!("out{round}"));
        let delay = Duration::from_micros(rng.below(window.as_micros() as u64));
        // A new layer key each round, so the layer is written each time.
        ctx.write("d/round", format!("{round}"));
        // Sometimes the stat cache knows the files, sometimes not.
        if rng.below(3) == 0 {
            let _ = std::fs::remove_dir_all(ctx.cache().join("stat"));
        }
        let (code, stderr) = race(&ctx, &out, delay, || {
            std::fs::rename(ctx.path().join("d"), &real).unwrap();
            std::os::unix::fs::symlink(&outside, ctx.path().join("d")).unwrap();
        });
        std::fs::remove_file(ctx.path().join("d")).unwrap();
        std::fs::rename(&real, ctx.path().join("d")).unwrap();
        eprintln!("round {round}: acted after {delay:?}, exit {code}");
        assert!(
            code == 0 || code == 1,
            "round {round} (delay {delay:?}): exit {code}\n{stderr}"
        );
        let bad = [unsound(&out, b"OUTSIDE"), unsound(&ctx.cache(), b"OUTSIDE")].concat();
        assert!(
            bad.is_empty(),
            "round {round} (delay {delay:?}): {bad:#?}\n{stderr}"
        );
    }
}

/// 20 builds, each with one input rewritten at the same size at a random
/// moment: an output holds either version only under that version's key, so
/// a build of each version afterwards gets exactly its bytes.
#[test]
fn randomized_same_size_edits_never_store_bytes_under_another_key() {
    let mut rng = Rng::new("randomized_same_size_edits_never_store_bytes_under_another_key");
    let ctx = Ctx::new();
    ctx.spec(COPY_D);
    // The edited file comes last in the layer: the others are written
    // between its hashing and its writing.
    for i in 0..10 {
        ctx.write(&format!("d/f{i:02}"), bytes(30_000, 100 + i, b"fixed"));
    }
    // Each round's two versions: new to the cache, the same size.
    let version = |round: u64, v: char| {
        let marker = format!("VERSION-{round:02}-{v}");
        bytes(100_000, round * 2 + u64::from(v == 'B'), marker.as_bytes())
    };
    let target = ctx.write("d/model.bin", version(99, 'A'));
    let window = window(&ctx);
    for round in 0..20 {
        let out = ctx.outside(&format!("out{round}"));
        edit_in_place(&target, &version(round, 'A'));
        let delay = Duration::from_micros(rng.below(window.as_micros() as u64));
        let (code, stderr) = race(&ctx, &out, delay, || {
            edit_in_place(&target, &version(round, 'B'))
        });
        eprintln!("round {round}: acted after {delay:?}, exit {code}");
        assert!(
            code == 0 || code == 1,
            "round {round} (delay {delay:?}): exit {code}\n{stderr}"
        );
        if code == 1 {
            assert!(stderr.contains("changed while"), "round {round}: {stderr}");
        }
        let bad = [unsound(&out, b""), unsound(&ctx.cache(), b"")].concat();
        assert!(bad.is_empty(), "round {round}: {bad:#?}");
        // Whatever the cache now holds, version A (the one the build hashed
        // unless the edit came first) and, at random, version B build to
        // their own bytes.
        let both = rng.below(2) == 0;
        for v in ['A', 'B'].into_iter().take(if both { 2 } else { 1 }) {
            edit_in_place(&target, &version(round, v));
            let check = ctx.outside(&format!("check{round}{v}"));
            ok(&ctx.strata(&[
                "build",
                ".",
                "-o",
                &format!("oci-layout:{}:t", check.display()),
            ]));
            let tar = unpacked(&std::fs::read(blob_path(&check, &layer_digest(&check))).unwrap());
            assert!(
                contains(&tar, format!("VERSION-{round:02}-{v}").as_bytes()),
                "round {round} (delay {delay:?}): the layer built from version {v} holds other bytes"
            );
            std::fs::remove_dir_all(&check).unwrap();
        }
    }
}

/// 20 builds, each with one byte flipped at a random moment in a random
/// cache blob or earlier output blob: no output is ever written with a blob
/// that mismatches its digest, and outputs nobody flipped stay sound.
#[test]
fn randomized_byte_flips_never_reach_an_output() {
    let mut rng = Rng::new("randomized_byte_flips_never_reach_an_output");
    let ctx = Ctx::new();
    ctx.spec(
        "version = 1\n[image]\nfrom = \"scratch\"\n\
         [[layer]]\nname = \"d\"\ncopy = [{ from = \"d\", to = \"/d\" }]\nsplit = \"file\"\nsplit_min = \"100KB\"\n\
         [[layer]]\nname = \"app\"\ncopy = [{ from = \"app\", to = \"/app\" }]\n",
    );
    for i in 0..4 {
        ctx.write(&format!("d/shard{i}"), bytes(300_000, 200 + i, b"shard"));
    }
    ctx.write("app/main.py", b"print(0)\n");
    let window = window(&ctx);
    let first = ctx.outside("first");
    ok(&ctx.strata(&[
        "build",
        ".",
        "-o",
        &format!("oci-layout:{}:t", first.display()),
    ]));
    let mut outputs: Vec<PathBuf> = vec![first];
    let mut flipped: BTreeMap<PathBuf, ()> = BTreeMap::new();
    for round in 0..20 {
        let out = ctx.outside(&format!("out{round}"));
        // Sometimes a layer must be written, sometimes all are reused.
        if rng.below(2) == 0 {
            ctx.write("app/main.py", format!("print({round})\n"));
        }
        let mut candidates: Vec<PathBuf> = blobs(&ctx.cache()).into_iter().map(|b| b.1).collect();
        for o in &outputs {
            candidates.extend(blobs(o).into_iter().map(|b| b.1));
        }
        let pick = candidates[rng.below(candidates.len() as u64) as usize].clone();
        let at = rng.next();
        let delay = Duration::from_micros(rng.below(window.as_micros() as u64));
        let (code, stderr) = race(&ctx, &out, delay, || {
            if pick.exists() {
                flip(&pick, at);
            }
        });
        if pick.starts_with(ctx.outside("out")) || !pick.starts_with(ctx.cache()) {
            flipped.insert(pick.clone(), ());
        }
        eprintln!("round {round}: acted after {delay:?}, exit {code}");
        assert!(
            code == 0 || code == 1,
            "round {round} (delay {delay:?}): exit {code}\n{stderr}"
        );
        if code == 0 {
            let bad = unsound(&out, b"");
            assert!(
                bad.is_empty(),
                "round {round} (delay {delay:?}, flipped {}): {bad:#?}",
                pick.display()
            );
        }
        outputs.push(out);
        // Outputs nobody flipped are sound (they share no inode with the
        // cache or with each other).
        for o in &outputs {
            let bad: Vec<String> = unsound(o, b"")
                .into_iter()
                .filter(|m| {
                    !flipped
                        .keys()
                        .any(|f| m.starts_with(&f.display().to_string()))
                })
                .collect();
            assert!(bad.is_empty(), "round {round}: {bad:#?}");
        }
    }
}
