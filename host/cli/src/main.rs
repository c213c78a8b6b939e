//! `cleanroom`: parse, dispatch, map errors to exit codes (0 ok, 1 refused, 2 error).

use std::process::ExitCode;

use clap::Parser;
use cleanroom_cli::cli::{Cli, dispatch};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(&cli) {
        Ok(code) => code,
        Err(e) => cleanroom_verify::report(&e, |c| {
            cleanroom_room::classify(c)
                .or_else(|| cleanroom_kbs::classify(c))
                .or_else(|| cleanroom_cli::error::classify(c))
        }),
    }
}
