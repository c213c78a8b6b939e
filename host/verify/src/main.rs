//! `cleanroom-verify`: for auditors and recipients, without the room's engine or sandbox.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cleanroom_verify::commands;

/// Cleanroom verifier: check an audit log, open a sealed output, verify attestation
/// evidence against a contract. Needs neither the room's engine nor its sandbox.
///
/// Exit codes: 0 success, 1 refused by verification, 2 error (bad input, I/O).
#[derive(Debug, Parser)]
#[command(name = "cleanroom-verify", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size difference between variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Verify or show an audit log.
    Audit(commands::audit::AuditArgs),
    /// Show what each dataset's differential-privacy budget has left, from the audit log.
    Budget(commands::budget::BudgetArgs),
    /// Open or inspect a sealed output.
    Output(commands::output::OutputArgs),
    /// Verify SNP / TDX / Azure / sim evidence offline.
    Attest(commands::attest::AttestArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match &cli.command {
        Command::Audit(a) => commands::audit::run(a),
        Command::Budget(a) => commands::budget::run(a),
        Command::Output(a) => commands::output::run(a),
        Command::Attest(a) => commands::attest::run(a),
    };
    match r {
        Ok(code) => code,
        Err(e) => cleanroom_verify::report(&e, |_| None),
    }
}
