//! `cleanroom workload digest|approve`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use cleanroom_policy::message::{MessageType, SignedMessage};
use cleanroom_policy::workload::ApprovalPayload;

use crate::commands::contract::{append_message, default_sigs};
use crate::keys;
use crate::run::{load_signed_contract, load_workload};

#[derive(Debug, Args)]
pub struct WorkloadArgs {
    #[command(subcommand)]
    pub command: WorkloadCommand,
}

#[derive(Debug, Subcommand)]
pub enum WorkloadCommand {
    /// Validate workload.toml and print its digest (what owners approve).
    Digest {
        #[arg(long, value_name = "FILE")]
        workload: PathBuf,
    },
    /// Approve a workload as a data owner: checks it against the signed contract, then
    /// appends a COSE_Sign1 `workload-approve` of its exact digest to the approvals file.
    Approve {
        #[arg(long, value_name = "FILE")]
        contract: PathBuf,
        #[arg(long, value_name = "FILE")]
        workload: PathBuf,
        /// The owner's NAME.sign.key.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Contract signatures (default: CONTRACT.sigs).
        #[arg(long, value_name = "FILE")]
        sigs: Option<PathBuf>,
        /// Approvals file (default: WORKLOAD.approvals).
        #[arg(long, value_name = "FILE")]
        approvals: Option<PathBuf>,
    },
}

pub fn default_approvals(workload: &Path) -> PathBuf {
    let mut s = workload.as_os_str().to_owned();
    s.push(".approvals");
    PathBuf::from(s)
}

pub fn approve(
    contract: &Path,
    sigs: &Path,
    workload: &Path,
    key: &Path,
    approvals: &Path,
) -> anyhow::Result<String> {
    let (signed, _) = load_signed_contract(contract, sigs)?;
    let w = load_workload(workload)?;
    w.check_against(signed.contract())?;
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
    let msg = SignedMessage::sign(
        &sk,
        MessageType::WorkloadApprove,
        signed.digest().0,
        crate::clock::now_unix(),
        ApprovalPayload::for_workload(&w).to_bytes(),
    );
    append_message(approvals, &msg)?;
    Ok(member)
}

pub fn run(args: &WorkloadArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        WorkloadCommand::Digest { workload } => {
            println!("{}", load_workload(workload)?.digest().hex());
        }
        WorkloadCommand::Approve {
            contract,
            workload,
            key,
            sigs,
            approvals,
        } => {
            let sigs = sigs.clone().unwrap_or_else(|| default_sigs(contract));
            let approvals = approvals
                .clone()
                .unwrap_or_else(|| default_approvals(workload));
            let member = approve(contract, &sigs, workload, key, &approvals)?;
            println!(
                "`{member}` approved {}; approval appended to {}",
                workload.display(),
                approvals.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
