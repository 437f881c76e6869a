//! Input hashing benchmark (`docs/benchmarks.md`, "Input hashing").
//!
//! ```text
//! cargo bench --bench hash -- [--size 2G] [--dir /var/tmp] [--keep]
//! ```
//!
//! Generates a tree of about `--size` bytes under `--dir` (three quarters in
//! 256 MiB incompressible shards, the rest in files of 1 to 32 KiB), then
//! times, each pass in its own process under `/usr/bin/time -v` for its peak
//! RSS:
//!
//! - strata, cold: no stat cache, the tree evicted from the page cache;
//! - strata, cold with the page cache warm (hashing bound by the CPU);
//! - strata, warm: the stat cache of the previous pass;
//! - `sha256sum -b` over every file with `xargs -P2`, evicted and warm.
//!
//! Then single-thread numbers for one shard: SHA-256 of memory, reading
//! alone, and reading plus hashing with several buffer sizes. Prints markdown.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use strata::plan::hash::hash_walks;
use strata::plan::ignore::Matcher;
use strata::plan::sha256::hash_reader_with;
use strata::plan::statcache::StatCache;
use strata::plan::walk::walk;

const MIB: u64 = 1 << 20;
const SHARD: u64 = 256 * MIB;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--pass") {
        child_pass(&args[1..]);
        return;
    }
    let mut size = 2 << 30;
    let mut base = PathBuf::from("/var/tmp");
    let mut keep = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--size" => size = parse_size(it.next().expect("--size N[KMG]")),
            "--dir" => base = PathBuf::from(it.next().expect("--dir DIR")),
            "--keep" => keep = true,
            "--bench" => {} // passed by `cargo bench`
            other => panic!("unknown argument {other}"),
        }
    }

    let work = tempfile::Builder::new()
        .prefix("strata-bench-hash-")
        .tempdir_in(&base)
        .expect("temporary directory");
    let tree = work.path().join("tree");
    let start = Instant::now();
    let (files, bytes) = generate(&tree, size);
    let generated = start.elapsed();
    run("sync", &[]);
    // Let every file age past the stat cache's racy window.
    std::thread::sleep(StatCache::DEFAULT_RACY_WINDOW + Duration::from_millis(200));

    let load_before = load_average();
    let mut rows = Vec::new();
    evict(&tree);
    rows.push(strata_pass(
        "strata, cold (not in page cache)",
        &tree,
        &work.path().join("c1"),
        true,
    ));
    rows.push(strata_pass(
        "strata, cold (page cache warm)",
        &tree,
        &work.path().join("c2"),
        true,
    ));
    rows.push(strata_pass(
        "strata, warm (stat cache)",
        &tree,
        &work.path().join("c2"),
        false,
    ));
    evict(&tree);
    rows.push(sha256sum_pass(
        "sha256sum -b, xargs -P2 (not in page cache)",
        &tree,
        files,
        bytes,
    ));
    rows.push(sha256sum_pass(
        "sha256sum -b, xargs -P2 (page cache warm)",
        &tree,
        files,
        bytes,
    ));

    println!("## Input hashing\n");
    println!(
        "```text\n$ cargo bench --bench hash -- --size {}\n```\n",
        show_size(size)
    );
    println!(
        "Tree: {files} files, {:.0} MiB ({} shards of {} MiB, the rest 1-32 KiB files), \
         generated in {:.1} s. Machine: {}, {} cores; load average {} before the passes, \
         {} after.\n",
        bytes as f64 / MIB as f64,
        shard_count(size),
        size * 3 / 4 / shard_count(size) / MIB,
        generated.as_secs_f64(),
        cpu_model(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        load_before,
        load_average(),
    );
    println!("| pass | files hashed | time (s) | MB/s | peak RSS (MiB) |");
    println!("|---|---:|---:|---:|---:|");
    for r in &rows {
        let rate = if r.hashed_bytes > 0 {
            format!("{:.0}", r.hashed_bytes as f64 / r.secs / 1e6)
        } else {
            "-".to_owned()
        };
        println!(
            "| {} | {} | {:.2} | {} | {:.1} |",
            r.name,
            r.hashed,
            r.secs,
            rate,
            r.max_rss_kib as f64 / 1024.0
        );
    }
    println!("\nMB/s is bytes hashed per second of wall time (10^6 bytes).\n");

    single_file(&tree.join("shards/shard-0"));
    if keep {
        println!("\nTree kept in {}", work.keep().display());
    }
}

struct Row {
    name: String,
    hashed: u64,
    hashed_bytes: u64,
    secs: f64,
    max_rss_kib: u64,
}

/// One strata pass in a child process under `/usr/bin/time -v`.
fn strata_pass(name: &str, tree: &Path, cache: &Path, fresh: bool) -> Row {
    if fresh && cache.exists() {
        fs_err::remove_dir_all(cache).expect("remove cache");
    }
    let exe = std::env::current_exe().expect("current exe");
    let output = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(exe)
        .arg("--pass")
        .arg(tree)
        .arg(cache)
        .stderr(Stdio::piped())
        .output()
        .expect("run /usr/bin/time");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "pass failed: {stderr}");
    let field = |key: &str| -> f64 {
        stdout
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {stdout}"))
    };
    Row {
        name: name.to_owned(),
        hashed: field("hashed") as u64,
        hashed_bytes: field("bytes") as u64,
        secs: field("secs"),
        max_rss_kib: max_rss(&stderr),
    }
}

/// The child side of [`strata_pass`]: walk, hash with the stat cache, save.
fn child_pass(args: &[String]) {
    let tree = Path::new(&args[0]);
    let cache_root = Path::new(&args[1]);
    let start = Instant::now();
    let (mut cache, warnings) = StatCache::open(cache_root, tree).expect("open stat cache");
    assert!(warnings.is_empty(), "{warnings:?}");
    let w = walk(tree, Path::new(""), &Matcher::empty(), &Matcher::empty()).expect("walk");
    let walked = start.elapsed();
    let hashes = hash_walks(tree, [&w], Some(&mut cache)).expect("hash");
    cache.save().expect("save stat cache");
    let r = hashes.report();
    println!(
        "secs={} walk={} files={} hashed={} bytes={} cached={}",
        start.elapsed().as_secs_f64(),
        walked.as_secs_f64(),
        r.files,
        r.hashed,
        r.hashed_bytes,
        r.cached
    );
}

fn sha256sum_pass(name: &str, tree: &Path, files: u64, bytes: u64) -> Row {
    let script = format!(
        "find '{}' -type f -print0 | xargs -0 -P2 -n 256 sha256sum -b > /dev/null",
        tree.display()
    );
    let start = Instant::now();
    let output = Command::new("/usr/bin/time")
        .args(["-v", "sh", "-c", &script])
        .stderr(Stdio::piped())
        .output()
        .expect("run sha256sum");
    let secs = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "sha256sum failed: {stderr}");
    Row {
        name: name.to_owned(),
        hashed: files,
        hashed_bytes: bytes,
        secs,
        max_rss_kib: max_rss(&stderr),
    }
}

fn max_rss(time_output: &str) -> u64 {
    time_output
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes):")?
                .trim()
                .parse()
                .ok()
        })
        .expect("no maximum RSS in /usr/bin/time output")
}

/// Single-thread numbers for one large file already in the page cache.
fn single_file(shard: &Path) {
    let len = fs_err::metadata(shard).expect("shard").len();
    let memory = vec![0x5au8; SHARD as usize];
    let mem_rate = (0..3)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(Sha256::digest(&memory));
            SHARD as f64 / t.elapsed().as_secs_f64() / 1e6
        })
        .fold(0.0, f64::max);
    drop(memory);

    let read_only = |buf_size: usize| {
        let mut f = fs_err::File::open(shard).expect("open");
        let mut buf = vec![0u8; buf_size];
        let t = Instant::now();
        while std::io::Read::read(&mut f, &mut buf).expect("read") > 0 {}
        len as f64 / t.elapsed().as_secs_f64() / 1e6
    };
    let read_hash = |buf_size: usize| {
        let f = fs_err::File::open(shard).expect("open");
        let mut buf = vec![0u8; buf_size];
        let t = Instant::now();
        let (d, n) = hash_reader_with(f, &mut buf).expect("hash");
        std::hint::black_box(d);
        assert_eq!(n, len);
        len as f64 / t.elapsed().as_secs_f64() / 1e6
    };
    // Reading on a second thread while this one hashes (two buffers in flight).
    let pipelined = |buf_size: usize| {
        let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<(Vec<u8>, usize)>(2);
        let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        for _ in 0..3 {
            empty_tx.send(vec![0u8; buf_size]).expect("send");
        }
        let t = Instant::now();
        let reader = std::thread::scope(|s| {
            s.spawn(move || {
                let mut f = fs_err::File::open(shard).expect("open");
                while let Ok(mut buf) = empty_rx.recv() {
                    let n = std::io::Read::read(&mut f, &mut buf).expect("read");
                    if n == 0 || full_tx.send((buf, n)).is_err() {
                        break;
                    }
                }
            });
            let mut hasher = Sha256::new();
            let mut total = 0;
            while let Ok((buf, n)) = full_rx.recv() {
                hasher.update(&buf[..n]);
                total += n as u64;
                // The reader may be gone already; keep draining.
                let _ = empty_tx.send(buf);
            }
            drop(empty_tx);
            std::hint::black_box(hasher.finalize());
            total
        });
        assert_eq!(reader, len);
        len as f64 / t.elapsed().as_secs_f64() / 1e6
    };
    read_hash(1 << 20); // warm the page cache
    println!(
        "One {} MiB file in the page cache, one thread:\n",
        len / MIB
    );
    println!("| operation | buffer | MB/s |");
    println!("|---|---:|---:|");
    println!("| SHA-256 of memory | - | {mem_rate:.0} |");
    println!("| read only | 256 KiB | {:.0} |", read_only(256 << 10));
    for kib in [16usize, 64, 256, 1024, 4096] {
        let rate = (0..3).map(|_| read_hash(kib << 10)).fold(0.0, f64::max);
        println!("| read + SHA-256 (best of 3) | {kib} KiB | {rate:.0} |");
    }
    let rate = (0..3).map(|_| pipelined(1 << 20)).fold(0.0, f64::max);
    println!("| read on a second thread + SHA-256 (best of 3) | 1024 KiB | {rate:.0} |");
}

/// Writes the tree; returns (files, bytes).
fn generate(tree: &Path, size: u64) -> (u64, u64) {
    let mut rng = SplitMix(0x5eed);
    let shards = shard_count(size);
    let shard_bytes = size * 3 / 4 / shards;
    let dir = tree.join("shards");
    fs_err::create_dir_all(&dir).expect("mkdir");
    let (mut files, mut bytes) = (0u64, 0u64);
    for i in 0..shards {
        write_random(&dir.join(format!("shard-{i}")), shard_bytes, &mut rng);
        files += 1;
        bytes += shard_bytes;
    }
    let small_total = size - bytes;
    let mut written = 0;
    while written < small_total {
        let n = (1024 + rng.next() % (31 * 1024)).min(small_total - written);
        let dir = tree.join(format!("small/d{:03}", files % 100));
        if files < 100 || !dir.exists() {
            fs_err::create_dir_all(&dir).expect("mkdir");
        }
        write_random(&dir.join(format!("f{files:06}")), n, &mut rng);
        files += 1;
        written += n;
    }
    bytes += written;
    (files, bytes)
}

fn write_random(path: &Path, len: u64, rng: &mut SplitMix) {
    use std::io::Write;
    let mut f =
        std::io::BufWriter::with_capacity(1 << 20, fs_err::File::create(path).expect("create"));
    let mut left = len;
    let mut chunk = vec![0u8; 1 << 20];
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        for word in chunk[..n].chunks_mut(8) {
            let r = rng.next().to_le_bytes();
            word.copy_from_slice(&r[..word.len()]);
        }
        f.write_all(&chunk[..n]).expect("write");
        left -= n as u64;
    }
    f.flush().expect("flush");
}

/// Evicts every file of the tree from the page cache (after `sync`).
fn evict(tree: &Path) {
    run("sync", &[]);
    let mut stack = vec![tree.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs_err::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            let meta = fs_err::symlink_metadata(&path).expect("stat");
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() && meta.size() > 0 {
                let f = fs_err::File::open(&path).expect("open");
                rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).expect("fadvise");
            }
        }
    }
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().expect(program);
    assert!(status.success(), "{program} failed");
}

fn shard_count(size: u64) -> u64 {
    (size * 3 / 4 / SHARD).max(1)
}

fn parse_size(text: &str) -> u64 {
    let (digits, unit) = text.split_at(text.trim_end_matches(['K', 'M', 'G']).len());
    let n: u64 = digits.parse().expect("size");
    n * match unit {
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => 1,
    }
}

fn show_size(size: u64) -> String {
    if size.is_multiple_of(1 << 30) {
        format!("{}G", size >> 30)
    } else {
        format!("{}M", size >> 20)
    }
}

fn cpu_model() -> String {
    fs_err::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split(':')
                    .nth(1)
                    .map(|m| m.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

fn load_average() -> String {
    fs_err::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
