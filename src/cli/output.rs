//! Output discipline (docs/design.md §8): data on stdout only; messages, warnings
//! and progress on stderr; colour only on a terminal and never with `NO_COLOR`.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU8, Ordering};

use clap::ValueEnum;

use crate::error::Error;
use crate::spec::{Diag, SpecError};

/// Whether stderr gets colour.
pub fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// How progress shows on stderr (`--progress`, as buildx's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Progress {
    /// `tty` when stderr is a terminal, else `plain`.
    #[default]
    Auto,
    /// Live lines redrawn in place (`plain` when stderr is not a terminal).
    Tty,
    /// One line per step as it finishes.
    Plain,
    /// Nothing but warnings and errors.
    Quiet,
}

static PROGRESS: AtomicU8 = AtomicU8::new(0);

/// Sets the progress style of this process (from `--progress` or `--quiet`).
pub fn set_progress(p: Progress) {
    let v = match p {
        Progress::Auto => 0,
        Progress::Tty => 1,
        Progress::Plain => 2,
        Progress::Quiet => 3,
    };
    PROGRESS.store(v, Ordering::Relaxed);
}

/// The progress style in effect: never `Auto`, and `Tty` only on a terminal.
pub fn progress() -> Progress {
    let tty = std::io::stderr().is_terminal();
    match PROGRESS.load(Ordering::Relaxed) {
        3 => Progress::Quiet,
        2 => Progress::Plain,
        _ if tty => Progress::Tty,
        _ => Progress::Plain,
    }
}

/// Whether progress bars may be drawn.
pub fn progress_enabled() -> bool {
    progress() == Progress::Tty
}

/// Prints a message line on stderr (nothing under `--quiet`).
pub fn note(msg: impl std::fmt::Display) {
    if progress() != Progress::Quiet {
        let _ = writeln!(std::io::stderr(), "{msg}");
    }
}

/// Prints a warning on stderr.
pub fn warn(msg: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "warning: {msg}");
}

/// Prints spec diagnostics on stderr.
pub fn diagnostics(diags: &[Diag]) {
    let color = color();
    let mut err = std::io::stderr().lock();
    for d in diags {
        let _ = write!(err, "{}", d.render(color));
    }
}

/// Reports a command's error on stderr.
pub fn report(e: &Error) {
    match e {
        Error::Spec(SpecError::Invalid { diagnostics: d })
        | Error::Plan(crate::plan::PlanError::Spec(SpecError::Invalid { diagnostics: d })) => {
            diagnostics(d);
            let n = d.iter().filter(|d| d.is_error()).count();
            let _ = writeln!(
                std::io::stderr(),
                "error: `{}` has {n} error{}",
                d[0].spec.path().display(),
                if n == 1 { "" } else { "s" }
            );
        }
        // `strata diff`'s answer, already on stdout.
        Error::Different => {}
        other => {
            let _ = writeln!(std::io::stderr(), "error: {other}");
        }
    }
}
