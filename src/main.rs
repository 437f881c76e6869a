//! The `strata` binary: a shim that parses arguments, runs the command and maps
//! its error to an exit status (docs/design.md §8).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = strata::cli::Cli::parse();
    match strata::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            strata::cli::output::report(&e);
            ExitCode::from(e.exit_code())
        }
    }
}
