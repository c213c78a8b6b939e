//! `cleanroom module inspect FILE` and `cleanroom module publish FILE --workload W ...`.

use cleanroom_formats::fsutil::FileMode;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use cleanroom_policy::proposal::ModuleSummary;

use crate::commands::contract::ContractFiles;
use crate::commands::workload::{default_proposal, propose};
use cleanroom_formats::fsutil;
use cleanroom_room::sandbox::{self, ModuleInfo, World};

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

/// Check `info` for publication as a `world` module: an error lists what is wrong.
pub fn check_publishable(info: &ModuleInfo, world: World) -> Result<(), sandbox::SandboxError> {
    if !info.forbidden_imports.is_empty() {
        return Err(sandbox::SandboxError::ForbiddenImports {
            imports: info.forbidden_imports.clone(),
        });
    }
    match info.world {
        None => Err(sandbox::SandboxError::UnknownWorld {
            exports: info.exports.clone(),
        }),
        Some(w) if w != world => Err(sandbox::SandboxError::WrongWorld {
            expected: world.to_string(),
            found: w.to_string(),
        }),
        Some(_) => Ok(()),
    }
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
                Err(e) => match e.downcast_ref::<sandbox::SandboxError>() {
                    Some(refusal) => {
                        eprintln!("refused: {}: {refusal}", file.display());
                        return Ok(ExitCode::FAILURE);
                    }
                    None => return Err(e),
                },
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

/// What [`publish`] did.
#[derive(Debug)]
pub struct Published {
    pub proposer: String,
    pub workload: cleanroom_policy::Workload,
    pub world: World,
    pub module_digest: String,
    /// Where the component was stored, with a room.
    pub stored: Option<PathBuf>,
}

/// `module publish`: check the component `bytes` against the workload at `workload` (world =
/// kind, no import outside it, digest = module_digest), sign the proposal as the member
/// whose key is at `key` and write it to `out`; with `room`, store the component as
/// ROOM/modules/<digest>.wasm. A refused component is a [`sandbox::SandboxError`] inside
/// the error.
/// What a proposal records of `bytes` as the component of the workload at `workload`,
/// after the checks `publish` makes (the component implements the workload's world and
/// imports nothing else).
pub fn summary(bytes: &[u8], workload: &Path) -> anyhow::Result<ModuleSummary> {
    let info = sandbox::inspect(bytes)?;
    let world = World::from(cleanroom_formats::load::load_workload(workload)?.kind);
    check_publishable(&info, world)?;
    Ok(ModuleSummary {
        digest: info.digest,
        world: world.name().to_string(),
        imports: info.imports,
    })
}

pub fn publish(
    bytes: &[u8],
    contract: &Path,
    sigs: &Path,
    workload: &Path,
    key: &Path,
    out: &Path,
    room: Option<&Path>,
) -> anyhow::Result<Published> {
    let summary = summary(bytes, workload)?;
    let digest = summary.digest.clone();
    let world = World::from(cleanroom_formats::load::load_workload(workload)?.kind);
    let (proposer, w) = propose(contract, sigs, workload, key, Some(summary), out)?;
    let stored = match room {
        Some(room) => {
            let dest = room.join(format!("modules/{digest}.wasm"));
            fsutil::write_file_atomic(&dest, bytes, FileMode::Public)?;
            Some(dest)
        }
        None => None,
    };
    Ok(Published {
        proposer,
        workload: w,
        world,
        module_digest: digest,
        stored,
    })
}
