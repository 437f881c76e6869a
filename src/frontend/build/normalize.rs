//! How a run layer's exec is normalized (docs/frontend.md, "Run layers"):
//! the command runs under `strata-normalize`, which gives every file,
//! directory and symlink it changed the layer timestamp.
//!
//! The normalizer is one file of the frontend image, mounted read-only on
//! `/dev` (a tmpfs in every container, so its mount point leaves no stub in
//! the layer on any BuildKit) and, where BuildKit can
//! (`exec.mount.cache.content`, ≥ 0.13), keyed by its content: a new
//! frontend image with the same normalizer keeps every run layer's cache.

use crate::llb::{Mount, State};

/// Where the run exec finds the normalizer.
pub(super) const NORMALIZER: &str = "/dev/.strata-normalize";

/// The normalizer in the frontend image (`frontend.Dockerfile`).
const IN_IMAGE: &str = "/strata-normalize";

/// What a run exec runs: its argv, working directory and user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RunCommand {
    pub(super) argv: Vec<String>,
    pub(super) cwd: String,
    pub(super) user: Option<String>,
}

/// The exec of `command` in `workdir` as `user`. Normalized, it runs as
/// root in `/`: the normalizer creates `workdir` (owned by the user, as
/// BuildKit would) after its start mark, runs the command there as the
/// user, and stamps as root (a user cannot stamp directories it does not
/// own, such as `/tmp`). `has_home`: the environment sets `HOME` (else the
/// normalizer sets the user's home from `/etc/passwd`, as the runtime does
/// for a user).
pub(super) fn run_command(
    command: &str,
    workdir: &str,
    user: Option<&str>,
    has_home: bool,
    timestamp: u64,
    normalize: bool,
) -> RunCommand {
    let shell = ["/bin/sh", "-c", command].map(String::from);
    if !normalize {
        return RunCommand {
            argv: shell.to_vec(),
            cwd: workdir.to_string(),
            user: user.map(String::from),
        };
    }
    let mut argv = vec![
        NORMALIZER.to_string(),
        "--timestamp".into(),
        timestamp.to_string(),
    ];
    if workdir != "/" {
        argv.extend(["--cwd".into(), workdir.to_string()]);
    }
    if let Some(u) = user {
        argv.extend(["--user".into(), u.to_string()]);
        if !has_home {
            argv.push("--set-home".into());
        }
    }
    argv.push("--".into());
    argv.extend(shell);
    RunCommand {
        argv,
        cwd: "/".into(),
        user: None,
    }
}

/// The normalizer's mount, from the frontend image.
pub(super) fn mount(image: &State, by_content: bool) -> Mount {
    let m = Mount::bind(NORMALIZER, image).selector(IN_IMAGE).readonly();
    if by_content { m.by_content() } else { m }
}

/// `SOURCE_DATE_EPOCH` for a run exec whose environment `env` does not set
/// it: the layer timestamp (docs/spec.md).
pub(super) fn source_date_epoch<'a>(
    mut env: impl Iterator<Item = &'a str>,
    timestamp: u64,
) -> Option<(String, String)> {
    (!env.any(|k| k == "SOURCE_DATE_EPOCH"))
        .then(|| ("SOURCE_DATE_EPOCH".to_string(), timestamp.to_string()))
}

/// A run layer's history comment: which mode built it
/// (`strata/v1 run normalize=on|off`).
pub(super) fn comment(normalize: bool) -> String {
    crate::plan::record::Record::run()
        .field("normalize", if normalize { "on" } else { "off" })
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_commands_run_as_root_in_slash_under_the_normalizer() {
        let c = run_command("make", "/app", Some("app"), false, 315619200, true);
        assert_eq!(
            c.argv,
            [
                NORMALIZER,
                "--timestamp",
                "315619200",
                "--cwd",
                "/app",
                "--user",
                "app",
                "--set-home",
                "--",
                "/bin/sh",
                "-c",
                "make"
            ]
        );
        assert_eq!((c.cwd.as_str(), c.user), ("/", None));
        let c = run_command("make", "/", None, true, 1, true);
        assert_eq!(
            c.argv,
            [
                NORMALIZER,
                "--timestamp",
                "1",
                "--",
                "/bin/sh",
                "-c",
                "make"
            ]
        );
        let c = run_command("make", "/", Some("1000"), true, 1, true);
        assert!(!c.argv.contains(&"--set-home".to_string()));
    }

    #[test]
    fn without_normalization_the_command_runs_as_before() {
        let c = run_command("make", "/app", Some("app"), false, 1, false);
        assert_eq!(c.argv, ["/bin/sh", "-c", "make"]);
        assert_eq!((c.cwd.as_str(), c.user.as_deref()), ("/app", Some("app")));
    }

    #[test]
    fn source_date_epoch_is_added_unless_set() {
        assert_eq!(
            source_date_epoch(["PATH"].into_iter(), 315619200),
            Some(("SOURCE_DATE_EPOCH".into(), "315619200".into()))
        );
        assert_eq!(
            source_date_epoch(["SOURCE_DATE_EPOCH"].into_iter(), 1),
            None
        );
        assert_eq!(comment(true), "strata/v1 run normalize=on");
        assert_eq!(comment(false), "strata/v1 run normalize=off");
    }
}
