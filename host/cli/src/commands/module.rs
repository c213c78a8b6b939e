//! `cleanroom module inspect FILE` and `cleanroom module publish FILE --workload W ...`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::commands::contract::ContractFiles;
use crate::commands::workload::default_proposal;
use crate::signing::publish;
use cleanroom_room::sandbox::{self};

/// `cleanroom module ...`: work with Wasm modules (components of `cleanroom:workload`).
#[derive(Debug, Args)]
pub struct ModuleArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ModuleCommand,
}

/// Subcommands of `cleanroom module`.
#[derive(Debug, Subcommand)]
pub enum ModuleCommand {
    /// Print a component's digest, world and imports (nothing runs).
    Inspect {
        /// The component (.wasm).
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check a component against its workload and sign the proposal owners approve: the
    /// component must implement the workload's kind as its world, import nothing outside
    /// it, and have the workload's module_digest. Writes WORKLOAD.proposal (COSE_Sign1
    /// `workload-propose`, carrying the workload and the component's digest, world and
    /// imports); with --room, also stores the component as ROOM/modules/<digest>.wasm.
    Publish {
        /// The component (.wasm).
        file: PathBuf,
        #[command(flatten)]
        contract: ContractFiles,
        /// The workload that runs this component (its module_digest must be the
        /// component's sha256: `cleanroom module inspect` prints it).
        #[arg(long, value_name = "FILE")]
        workload: PathBuf,
        /// The proposer's NAME.sign.key.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Where to write the proposal (default: WORKLOAD.proposal).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The room directory to store the component in (modules/<digest>.wasm).
        #[arg(long, value_name = "DIR")]
        room: Option<PathBuf>,
    },
}

/// Run `cleanroom module ...`.
pub fn run(args: &ModuleArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        ModuleCommand::Inspect { file, json } => {
            let bytes = std::fs::read(file).with_context(|| format!("read {}", file.display()))?;
            let info = sandbox::inspect(&bytes)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!("digest: {}", info.digest);
                match info.world {
                    Some(w) => println!("world: {w}"),
                    None => println!("world: none (exports: {})", info.exports.join(", ")),
                }
                println!("imports:");
                for i in &info.imports {
                    let mark = if info.forbidden_imports.contains(i) {
                        "  FORBIDDEN"
                    } else {
                        ""
                    };
                    println!("  {i}{mark}");
                }
            }
            Ok(
                if info.forbidden_imports.is_empty() && info.world.is_some() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                },
            )
        }
        ModuleCommand::Publish {
            file,
            contract,
            workload,
            key,
            out,
            room,
        } => {
            let bytes = std::fs::read(file).with_context(|| format!("read {}", file.display()))?;
            let sigs = contract.sigs();
            let contract = &contract.contract;
            let out = out.clone().unwrap_or_else(|| default_proposal(workload));
            let p = match publish(
                &bytes,
                contract,
                &sigs,
                workload,
                key,
                &out,
                room.as_deref(),
            ) {
                Ok(p) => p,
                Err(crate::error::MemberError::Sandbox(refusal)) => {
                    eprintln!("refused: {}: {refusal}", file.display());
                    return Ok(ExitCode::FAILURE);
                }
                Err(e) => return Err(e.into()),
            };
            if let Some(stored) = &p.stored {
                println!("component stored as {}", stored.display());
            }
            println!(
                "`{}` proposed {} ({}) running {} module {}; proposal written to {}",
                p.proposer,
                p.workload.name,
                p.workload.digest().hex(),
                p.world,
                p.module_digest,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
