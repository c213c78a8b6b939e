//! `cleanroom module inspect FILE` and `cleanroom module publish FILE --world W --out P`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::sandbox::{self, ModuleInfo, World};

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
    /// Check a component and write the workload proposal owners approve.
    Publish {
        /// The component (.wasm).
        file: PathBuf,
        /// The world the component must target: query, training or inference.
        #[arg(long)]
        world: World,
        /// The workload name (default: the file name without extension).
        #[arg(long)]
        name: Option<String>,
        /// Where to write the proposal JSON.
        #[arg(long)]
        out: PathBuf,
    },
}

impl clap::ValueEnum for World {
    fn value_variants<'a>() -> &'a [Self] {
        &World::ALL
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

/// The unsigned proposal `module publish` writes: what owners approve for a module.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModuleProposal {
    /// Workload name.
    pub name: String,
    /// Workload kind (the module's world): query, training or inference.
    pub kind: World,
    /// sha256 hex of the component bytes.
    pub module_digest: String,
    /// The component's imports (all inside its world).
    pub imports: Vec<String>,
}

/// Hook for signing a proposal (COSE_Sign1, workload-propose) before it is written. The
/// CLI wiring replaces [`unsigned_proposal_bytes`] with the member's signer; until then
/// publish writes the unsigned JSON proposal.
pub fn unsigned_proposal_bytes(p: &ModuleProposal) -> anyhow::Result<Vec<u8>> {
    let mut v = serde_json::to_vec_pretty(p)?;
    v.push(b'\n');
    Ok(v)
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
            world,
            name,
            out,
        } => {
            let bytes = std::fs::read(file).with_context(|| format!("read {}", file.display()))?;
            let info = sandbox::inspect(&bytes)?;
            if let Err(e) = check_publishable(&info, *world) {
                eprintln!("refused: {e}");
                return Ok(ExitCode::FAILURE);
            }
            let name = match name {
                Some(n) => n.clone(),
                None => file
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .context("the file name is not UTF-8; give --name")?
                    .to_string(),
            };
            let proposal = ModuleProposal {
                name,
                kind: *world,
                module_digest: info.digest,
                imports: info.imports,
            };
            std::fs::write(out, unsigned_proposal_bytes(&proposal)?)
                .with_context(|| format!("write {}", out.display()))?;
            println!(
                "{} {} -> {}",
                proposal.kind,
                proposal.module_digest,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
