//! `cleanroom-room`: the room binary a confidential VM image ships and a contract measures.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cleanroom_room::commands::{self, RunArgs, ServeArgs};

/// Cleanroom room: runs approved workloads over members' sealed data, only after proving
/// with hardware attestation what it runs, and releases results only through guards, sealed
/// to the agreed recipients, with a tamper-evident audit log.
///
/// Exit codes: 0 success, 1 refused by policy or verification, 2 error (bad input, I/O).
#[derive(Debug, Parser)]
#[command(name = "cleanroom-room", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an approved workload once.
    Run(RunArgs),
    /// Serve the room over attested HTTPS: members propose, approve, request runs and fetch
    /// outputs with signed requests (`cleanroom room --help`).
    Serve(ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match &cli.command {
        Command::Run(a) => commands::run_command(a),
        Command::Serve(a) => commands::serve_command(a),
    };
    match r {
        Ok(code) => code,
        Err(e) => cleanroom_verify::report(&e, cleanroom_room::classify),
    }
}
