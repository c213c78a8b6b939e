//! `cleanroom workload digest|propose|show|approve`.

use cleanroom_formats::fsutil::FileMode;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::commands::contract::ContractFiles;
use crate::commands::room::ApprovalLimits;
use crate::signing::{approve, open_proposal, propose};
use cleanroom_formats::fsutil;
pub use cleanroom_formats::load::{default_approvals, default_proposal, default_sigs};
use cleanroom_formats::load::{load_signed_contract, load_workload};

#[derive(Debug, Args)]
pub struct WorkloadArgs {
    #[command(subcommand)]
    pub command: WorkloadCommand,
}

#[derive(Debug, Subcommand)]
pub enum WorkloadCommand {
    /// Validate workload.toml and print its digest (what owners approve).
    Digest {
        /// The workload file (workload.toml).
        #[arg(long, value_name = "FILE")]
        workload: PathBuf,
    },
    /// Propose a SQL-only workload as a member (COSE_Sign1 `workload-propose` carrying the
    /// whole workload file). Module workloads are proposed with `cleanroom module publish`,
    /// which checks the component first.
    Propose {
        #[command(flatten)]
        contract: ContractFiles,
        /// The workload file (workload.toml).
        #[arg(long, value_name = "FILE")]
        workload: PathBuf,
        /// The proposer's NAME.sign.key (a member; one of governance.proposers if the
        /// contract names any).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Where to write the proposal (default: WORKLOAD.proposal).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Verify a proposal and print who proposed what: the workload text, its digest and,
    /// for a module, the component's digest, world and imports. With --out, also write the
    /// proposed workload file (byte for byte) for `workload approve` and `run`.
    Show {
        #[command(flatten)]
        contract: ContractFiles,
        /// The proposal file (WORKLOAD.proposal).
        #[arg(long, value_name = "FILE")]
        proposal: PathBuf,
        /// Write the proposed workload.toml here.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Approve a workload as a data owner: checks it against the signed contract and its
    /// proposal (required when the contract names governance.proposers), then appends a
    /// COSE_Sign1 `workload-approve` of its exact digest to the approvals file.
    Approve {
        #[command(flatten)]
        contract: ContractFiles,
        /// The workload file (workload.toml).
        #[arg(long, value_name = "FILE")]
        workload: PathBuf,
        /// The owner's NAME.sign.key.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The workload's proposal (default: WORKLOAD.proposal, if it exists).
        #[arg(long, value_name = "FILE")]
        proposal: Option<PathBuf>,
        /// Approvals file (default: WORKLOAD.approvals).
        #[arg(long, value_name = "FILE")]
        approvals: Option<PathBuf>,
        #[command(flatten)]
        limits: ApprovalLimits,
    },
    /// Withdraw your approval of a workload: appends a COSE_Sign1 `workload-revoke` of its
    /// digest to the approvals file (approve again to restore it).
    Revoke {
        #[command(flatten)]
        contract: ContractFiles,
        /// The workload file (workload.toml).
        #[arg(long, value_name = "FILE")]
        workload: PathBuf,
        /// The owner's NAME.sign.key.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Approvals file (default: WORKLOAD.approvals).
        #[arg(long, value_name = "FILE")]
        approvals: Option<PathBuf>,
    },
}

pub fn run(args: &WorkloadArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        WorkloadCommand::Digest { workload } => {
            println!("{}", load_workload(workload)?.digest().hex());
        }
        WorkloadCommand::Propose {
            contract,
            workload,
            key,
            out,
        } => {
            let out = out.clone().unwrap_or_else(|| default_proposal(workload));
            let (member, w) = propose(
                &contract.contract,
                &contract.sigs(),
                workload,
                key,
                None,
                &out,
            )?;
            println!(
                "`{member}` proposed {} ({}); proposal written to {}",
                w.name,
                w.digest().hex(),
                out.display()
            );
        }
        WorkloadCommand::Show {
            contract,
            proposal,
            out,
        } => {
            let (signed, _) = load_signed_contract(&contract.contract, &contract.sigs())?;
            let p = open_proposal(&signed, proposal)?;
            println!("proposed by: {}", p.proposer);
            println!(
                "workload: {} ({})",
                p.workload.name, p.payload.workload_digest
            );
            if let Some(m) = &p.payload.module {
                println!("module: {} (world {})", m.digest, m.world);
                println!("imports:");
                for i in &m.imports {
                    println!("  {i}");
                }
            }
            println!("--- workload.toml ---");
            print!("{}", p.payload.workload_toml);
            if let Some(out) = out {
                fsutil::write_file_atomic(
                    out,
                    p.payload.workload_toml.as_bytes(),
                    FileMode::Public,
                )?;
                eprintln!("workload written to {}", out.display());
            }
        }
        WorkloadCommand::Approve {
            contract,
            workload,
            key,
            proposal,
            approvals,
            limits,
        } => {
            let approvals = approvals
                .clone()
                .unwrap_or_else(|| default_approvals(workload));
            let proposal = proposal.clone().or_else(|| {
                let d = default_proposal(workload);
                d.exists().then_some(d)
            });
            let (member, proposer) = approve(
                &contract.contract,
                &contract.sigs(),
                workload,
                key,
                proposal.as_deref(),
                &approvals,
                |p| limits.apply(p),
            )?;
            let by = proposer.map_or(String::new(), |p| format!(" (proposed by `{p}`)"));
            println!(
                "`{member}` approved {}{by}; approval appended to {}",
                workload.display(),
                approvals.display()
            );
        }
        WorkloadCommand::Revoke {
            contract,
            workload,
            key,
            approvals,
        } => {
            let approvals = approvals
                .clone()
                .unwrap_or_else(|| default_approvals(workload));
            let member = crate::signing::revoke(
                &contract.contract,
                &contract.sigs(),
                workload,
                key,
                &approvals,
            )?;
            println!(
                "`{member}` revoked its approval of {}; revocation appended to {}",
                workload.display(),
                approvals.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
