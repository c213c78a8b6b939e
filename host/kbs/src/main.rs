//! `cleanroom-kbs`: a data owner's key broker.

use std::process::ExitCode;

use clap::Parser;
use cleanroom_kbs::commands::{self, KbsArgs};

/// Cleanroom key broker: holds a data owner's dataset keys and releases each only to an
/// attested room running a workload the owner approved.
///
/// Exit codes: 0 success, 1 refused, 2 error (bad input, I/O).
#[derive(Debug, Parser)]
#[command(name = "cleanroom-kbs", version, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    args: KbsArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(&cli.args) {
        Ok(code) => code,
        Err(e) => cleanroom_verify::report(&e, cleanroom_kbs::classify),
    }
}
