//! `cleanroom workload digest|propose|show|approve`.

use cleanroom_formats::fsutil::FileMode;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use cleanroom_policy::message::{MessageType, SignedMessage};
use cleanroom_policy::proposal::{self, ModuleSummary, Proposal, ProposalPayload};
use cleanroom_policy::workload::ApprovalPayload;
use cleanroom_policy::{SignedContract, Workload};

use crate::commands::contract::{ContractFiles, append_message};
use cleanroom_formats::fsutil;
use cleanroom_formats::keys;
pub use cleanroom_formats::load::{default_approvals, default_proposal, default_sigs};
use cleanroom_formats::load::{load_signed_contract, load_workload, read_proposal};

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
    },
}

/// The member whose signing key is at `key`, with the key.
fn member_key(
    signed: &SignedContract,
    key: &Path,
) -> anyhow::Result<(p384::ecdsa::SigningKey, String)> {
    let sk = keys::signing_key(key)?;
    let fp = cleanroom_policy::message::key_fingerprint(&p384::ecdsa::VerifyingKey::from(&sk));
    let member = signed
        .contract()
        .member_by_kid(&fp)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{}: this key is not the signing key of any member of the contract",
                key.display()
            )
        })?
        .name
        .get_ref()
        .clone();
    Ok((sk, member))
}

/// Sign a proposal of the workload file at `workload` (with `module` for a module workload)
/// and write it to `out`. Refuses what the run would refuse: a workload the contract does
/// not allow, or a proposer outside governance.proposers. Returns (proposer, workload).
pub fn propose(
    contract: &Path,
    sigs: &Path,
    workload: &Path,
    key: &Path,
    module: Option<ModuleSummary>,
    out: &Path,
) -> anyhow::Result<(String, Workload)> {
    let (signed, _) = load_signed_contract(contract, sigs)?;
    let text = fsutil::read_text(workload)?;
    let payload = ProposalPayload::new(&text, &workload.display().to_string(), module)?;
    let (sk, member) = member_key(&signed, key)?;
    let msg = SignedMessage::sign(
        &sk,
        MessageType::WorkloadPropose,
        signed.digest().0,
        cleanroom_formats::clock::now_unix(),
        payload.to_bytes(),
    );
    // Verify it as an owner will (proposer allowed, workload valid under the contract)
    // before anything is written.
    let p = proposal::open(&signed, &msg)?;
    let mut line = msg.to_base64();
    line.push('\n');
    fsutil::write_file_atomic(out, line.as_bytes(), FileMode::Public)?;
    Ok((member, p.workload))
}

/// Read the proposal in `path`, which must exist.
fn read_existing_proposal(path: &Path) -> anyhow::Result<SignedMessage> {
    read_proposal(path)?.ok_or_else(|| anyhow::anyhow!("{}: no such proposal file", path.display()))
}

/// Read and verify the proposal in `path`.
pub fn open_proposal(signed: &SignedContract, path: &Path) -> anyhow::Result<Proposal> {
    let msg = read_existing_proposal(path)?;
    proposal::open(signed, &msg).with_context(|| format!("proposal {}", path.display()))
}

/// Approve the workload at `workload` as the member whose key is at `key`. When a proposal
/// is given (or the contract names proposers, which makes one required) it must propose
/// exactly this workload. Returns (approving member, proposer if any).
pub fn approve(
    contract: &Path,
    sigs: &Path,
    workload: &Path,
    key: &Path,
    proposal_path: Option<&Path>,
    approvals: &Path,
) -> anyhow::Result<(String, Option<String>)> {
    let (signed, _) = load_signed_contract(contract, sigs)?;
    let w = load_workload(workload)?;
    w.check_against(signed.contract())?;
    let msg = proposal_path.map(read_existing_proposal).transpose()?;
    let proposer = proposal::require(&signed, &w, msg.as_ref())?;
    let (sk, member) = member_key(&signed, key)?;
    let msg = SignedMessage::sign(
        &sk,
        MessageType::WorkloadApprove,
        signed.digest().0,
        cleanroom_formats::clock::now_unix(),
        ApprovalPayload::for_workload(&w).to_bytes(),
    );
    append_message(approvals, &msg)?;
    Ok((member, proposer))
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
            )?;
            let by = proposer.map_or(String::new(), |p| format!(" (proposed by `{p}`)"));
            println!(
                "`{member}` approved {}{by}; approval appended to {}",
                workload.display(),
                approvals.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
