//! The command-line interface: one clap tree, dispatch to `commands::*`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands;

/// Cleanroom: a confidential data clean room.
///
/// Members agree on a signed contract; owners seal their datasets and keep the keys in their
/// own key broker; the room runs approved SQL over the combined data only after proving with
/// hardware attestation what it runs, and releases results only through guards, sealed to the
/// agreed recipients, with a tamper-evident audit log.
///
/// Start with `cleanroom demo`. Exit codes: 0 success, 1 refused by policy or verification,
/// 2 error (bad input, I/O).
#[derive(Debug, Parser)]
#[command(
    name = "cleanroom",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Members: make signing and encryption keys.
    Member(commands::member::MemberArgs),
    /// Contracts: digest, sign (COSE ES384), verify every member's signature.
    Contract(commands::contract::ContractArgs),
    /// Data owners: seal a dataset (sealed stream or Parquet Modular Encryption), open it.
    Dataset(commands::dataset::DatasetArgs),
    /// Data owners: run a key broker (KBS protocol) and register dataset keys in it
    /// (runs `cleanroom-kbs`, the broker's own binary; `cleanroom kbs --help`).
    #[command(disable_help_flag = true)]
    Kbs {
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<OsString>,
    },
    /// Workloads: digest, propose, show a proposal, approve as an owner.
    Workload(commands::workload::WorkloadArgs),
    /// Members: suspend the room (no run starts, no broker releases a key) and resume it.
    Governance(commands::governance::GovernanceArgs),
    /// Operators: run an approved workload in the room (runs `cleanroom-room run`, the
    /// measured room binary; `cleanroom run --help`).
    #[command(disable_help_flag = true)]
    Run {
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<OsString>,
    },
    /// Members: act on a running room service (`cleanroom-room serve`) over attested TLS:
    /// verify it, propose, approve, request runs, fetch outputs and the audit log.
    Room(commands::room::RoomArgs),
    /// Recipients: open a sealed output.
    Output(cleanroom_verify::commands::output::OutputArgs),
    /// Anyone: verify the audit log.
    Audit(cleanroom_verify::commands::audit::AuditArgs),
    /// Members and auditors: what each dataset's differential-privacy budget has left.
    Budget(cleanroom_verify::commands::budget::BudgetArgs),
    /// Workload authors: inspect and publish Wasm components.
    Module(commands::module::ModuleArgs),
    /// Members and auditors: verify SNP / TDX / Azure / sim evidence offline.
    Attest(cleanroom_verify::commands::attest::AttestArgs),
    /// Print reference measurements a contract lists.
    Measure(commands::measure::MeasureArgs),
    /// Measure the clean-room path against plain DataFusion and DuckDB (TPC-H).
    Bench(crate::bench::BenchArgs),
    /// Run a full two-party demo on this machine (simulated attestation, INSECURE): two
    /// members, two key brokers on 127.0.0.1, sealed data, a guarded query, sealed output,
    /// audit verification. Everything it makes stays in --dir.
    Demo {
        /// Where to put everything the demo makes.
        #[arg(long, value_name = "DIR", default_value = "demo-out")]
        dir: PathBuf,
        /// Impressions to generate (conversions are a fifth of this).
        #[arg(long, default_value_t = 100_000)]
        impressions: usize,
    },
}

pub fn dispatch(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Member(a) => commands::member::run(a),
        Command::Contract(a) => commands::contract::run(a),
        Command::Dataset(a) => commands::dataset::run(a),
        Command::Kbs { args } => commands::delegate::run("cleanroom-kbs", &[], args),
        Command::Governance(a) => commands::governance::run(a),
        Command::Workload(a) => commands::workload::run(a),
        Command::Run { args } => commands::delegate::run("cleanroom-room", &["run"], args),
        Command::Output(a) => cleanroom_verify::commands::output::run(a),
        Command::Audit(a) => cleanroom_verify::commands::audit::run(a),
        Command::Room(a) => commands::room::run(a),
        Command::Budget(a) => cleanroom_verify::commands::budget::run(a),
        Command::Module(a) => commands::module::run(a),
        Command::Attest(a) => cleanroom_verify::commands::attest::run(a),
        Command::Measure(a) => commands::measure::run(a),
        Command::Bench(a) => crate::bench::run(a),
        Command::Demo { dir, impressions } => crate::demo::run(dir, *impressions),
    }
}
