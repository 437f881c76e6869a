//! `strata-normalize`: runs a run layer's command, then gives every file,
//! directory and symlink the command created or changed the layer timestamp
//! (docs/reproducibility.md, "Run layers").
//!
//! ```text
//! strata-normalize --timestamp T [--cwd DIR] [--user U [--set-home]] -- CMD...
//! ```
//!
//! It runs as root in the layer's exec and stays small and apart from the
//! strata library: its bytes are part of every run layer's cache key.
//!
//! 1. The start mark is a timestamp the kernel gave a file, never the clock
//!    (file times come from a coarse clock that can lag it): the earlier of
//!    a fresh memfd's ctime and the ctime of the container's own `/dev/shm`
//!    mount, made when the container was set up, so that the mount stubs
//!    the runtime created before the command count as changes too. Never
//!    `/dev/mqueue`: measured on BuildKit 0.8, every exec shares one mqueue
//!    mount whose ctime is whole seconds, so a mark taken from it falls up
//!    to a second early and stamps what the previous layer wrote in that
//!    second.
//! 2. `--cwd` is created here (after the mark, owned by the user as
//!    BuildKit would), then the command runs there with the environment
//!    unchanged (with `--set-home`, `HOME` is the user's passwd home as the
//!    runtime would have set it), stdio inherited, as the user.
//! 3. Before the command, the root file system is walked once (without
//!    following symlinks, skipping every mount point and other file system)
//!    to record each entry's mode, owner, size and mtime; after exit 0 it
//!    is walked again, and every entry the command changed gets atime and
//!    mtime `T` (see [`walk::stamp`] for what counts as changed).
//! 4. The exit status is the command's (a signal `n` gives `128 + n`);
//!    nothing is printed on success, failures go to stderr prefixed
//!    `strata normalize:` with exit status 125.

mod user;
mod walk;

use fs_err as fs;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use rustix::fs::{MemfdFlags, fstat, memfd_create};

/// The exit status of the normalizer's own failures (as `docker run`'s).
const FAILED: u8 = 125;

#[derive(Debug, Default)]
struct Args {
    timestamp: Option<i64>,
    cwd: Option<PathBuf>,
    user: Option<String>,
    set_home: bool,
    command: Vec<OsString>,
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("strata normalize: {message}");
    ExitCode::from(FAILED)
}

fn parse(mut it: impl Iterator<Item = OsString>) -> Result<Args, String> {
    let mut args = Args::default();
    let value = |it: &mut dyn Iterator<Item = OsString>, name: &str| {
        it.next()
            .and_then(|v| v.into_string().ok())
            .ok_or_else(|| format!("{name} needs a value"))
    };
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--timestamp") => {
                let v = value(&mut it, "--timestamp")?;
                args.timestamp = Some(v.parse().map_err(|_| format!("bad --timestamp `{v}`"))?);
            }
            Some("--cwd") => args.cwd = Some(PathBuf::from(value(&mut it, "--cwd")?)),
            Some("--user") => args.user = Some(value(&mut it, "--user")?),
            Some("--set-home") => args.set_home = true,
            Some("--") => {
                args.command = it.collect();
                break;
            }
            _ => return Err(format!("unknown argument `{}`", a.to_string_lossy())),
        }
    }
    if args.command.is_empty() {
        return Err("no command after `--`".into());
    }
    Ok(args)
}

/// The start mark (see the module docs).
fn start_mark() -> Result<walk::Mark, String> {
    let fd = memfd_create("strata-mark", MemfdFlags::CLOEXEC)
        .map_err(|e| format!("memfd_create: {e}"))?;
    let st = fstat(&fd).map_err(|e| format!("fstat of a memfd: {e}"))?;
    let mut mark = (st.st_ctime, st.st_ctime_nsec as i64);
    // Only a mount of its own, made for this container (a tmpfs, with
    // nanosecond times).
    if let (Ok(m), Ok(parent)) = (fs::metadata("/dev/shm"), fs::metadata("/dev"))
        && m.dev() != parent.dev()
    {
        mark = mark.min((m.ctime(), m.ctime_nsec()));
    }
    Ok(mark)
}

/// Creates the missing directories of `dir` (mode 0755, owned by `owner`).
fn make_cwd(dir: &Path, owner: Option<(u32, u32)>) -> Result<(), String> {
    let mut missing = Vec::new();
    let mut p = Some(dir);
    while let Some(d) = p {
        if fs::symlink_metadata(d).is_ok() {
            break;
        }
        missing.push(d);
        p = d.parent();
    }
    for d in missing.into_iter().rev() {
        fs::create_dir(d).map_err(|e| format!("{}: {e}", d.display()))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(d, Some(uid), Some(gid))
                .map_err(|e| format!("{}: {e}", d.display()))?;
        }
    }
    Ok(())
}

/// `--exec-as UID GID G1,G2 -- CMD...`: this process (single-threaded, so
/// the per-thread calls are the process's) drops to the user and becomes
/// the command.
fn exec_as(mut it: impl Iterator<Item = OsString>) -> ExitCode {
    let mut num = |what: &str| -> Result<String, String> {
        it.next()
            .and_then(|v| v.into_string().ok())
            .ok_or_else(|| format!("--exec-as needs {what}"))
    };
    let parsed = (|| -> Result<(u32, u32, Vec<u32>), String> {
        let uid = num("a uid")?.parse().map_err(|_| "bad uid")?;
        let gid = num("a gid")?.parse().map_err(|_| "bad gid")?;
        let groups = num("groups")?;
        let groups = groups
            .split(',')
            .filter(|g| !g.is_empty())
            .map(|g| g.parse().map_err(|_| format!("bad group `{g}`")))
            .collect::<Result<Vec<u32>, String>>()?;
        Ok((uid, gid, groups))
    })();
    let (uid, gid, groups) = match parsed {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    if it.next().as_deref() != Some(std::ffi::OsStr::new("--")) {
        return fail("--exec-as: missing `--`");
    }
    let command: Vec<OsString> = it.collect();
    let Some((program, rest)) = command.split_first() else {
        return fail("--exec-as: no command");
    };
    use rustix::thread::{Gid, Uid};
    let gids: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
    let dropped = rustix::thread::set_thread_groups(&gids)
        .and_then(|()| {
            rustix::thread::set_thread_res_gid(
                Gid::from_raw(gid),
                Gid::from_raw(gid),
                Gid::from_raw(gid),
            )
        })
        .and_then(|()| {
            rustix::thread::set_thread_res_uid(
                Uid::from_raw(uid),
                Uid::from_raw(uid),
                Uid::from_raw(uid),
            )
        });
    if let Err(e) = dropped {
        return fail(format!("cannot switch to uid {uid} gid {gid}: {e}"));
    }
    let e = Command::new(program).args(rest).exec();
    eprintln!("strata normalize: {}: {e}", program.to_string_lossy());
    ExitCode::from(not_run(&e))
}

/// A command that could not start, as a shell says it: 127 when it does
/// not exist, 126 otherwise.
fn not_run(e: &std::io::Error) -> u8 {
    if e.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}

fn main() -> ExitCode {
    let mut argv = std::env::args_os().skip(1).peekable();
    if argv.peek().and_then(|a| a.to_str()) == Some("--exec-as") {
        argv.next();
        return exec_as(argv);
    }
    let args = match parse(argv) {
        Ok(a) => a,
        Err(e) => return fail(e),
    };
    let Some(timestamp) = args.timestamp else {
        return fail("--timestamp is required");
    };
    let mark = match start_mark() {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let user = match args.user.as_deref().map(user::lookup).transpose() {
        Ok(u) => u,
        Err(e) => return fail(e),
    };
    let skip = match fs::read_to_string("/proc/self/mountinfo") {
        Ok(info) => walk::mount_points(&info),
        Err(e) => return fail(format!("/proc/self/mountinfo: {e}")),
    };
    let before = match walk::before(Path::new("/"), &skip) {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let cwd = args.cwd.clone().unwrap_or_else(|| PathBuf::from("/"));
    if let Err(e) = make_cwd(&cwd, user.as_ref().map(|u| (u.uid, u.gid))) {
        return fail(format!("cannot create the working directory: {e}"));
    }
    let mut cmd = match &user {
        Some(u) => {
            let exe = match std::env::current_exe() {
                Ok(p) => p,
                Err(e) => return fail(format!("cannot find my own binary: {e}")),
            };
            let groups: Vec<String> = u.groups.iter().map(u32::to_string).collect();
            let mut c = Command::new(exe);
            c.arg("--exec-as")
                .arg(u.uid.to_string())
                .arg(u.gid.to_string())
                .arg(groups.join(","))
                .arg("--")
                .args(&args.command);
            if args.set_home {
                c.env("HOME", &u.home);
            }
            c
        }
        None => {
            let mut c = Command::new(&args.command[0]);
            c.args(&args.command[1..]);
            c
        }
    };
    let status = match cmd.current_dir(&cwd).status() {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "strata normalize: {}: {e}",
                args.command[0].to_string_lossy()
            );
            return ExitCode::from(not_run(&e));
        }
    };
    if !status.success() {
        let code = status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(i32::from(FAILED));
        return ExitCode::from(u8::try_from(code & 0xff).unwrap_or(FAILED));
    }
    match walk::stamp(Path::new("/"), &skip, &before, mark, timestamp) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}
