//! Output discipline (contracts §8): data on stdout only; messages, warnings
//! and progress on stderr; colour only on a terminal and never with `NO_COLOR`.

use std::io::{IsTerminal, Write};

use crate::error::Error;
use crate::spec::{Diag, SpecError};

/// Whether stderr gets colour.
pub fn color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// Whether progress bars may be drawn.
pub fn progress_enabled() -> bool {
    std::io::stderr().is_terminal()
}

/// Prints a message line on stderr.
pub fn note(msg: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "{msg}");
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
            note(format!(
                "error: `{}` has {n} error{}",
                d[0].spec.path().display(),
                if n == 1 { "" } else { "s" }
            ));
        }
        // `strata diff`'s answer, already on stdout.
        Error::Different => {}
        other => note(format!("error: {other}")),
    }
}
