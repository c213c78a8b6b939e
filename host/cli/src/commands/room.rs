//! `cleanroom room ...`: a member acting on a running room service from its own machine.
//! Every subcommand first verifies the room's evidence against the member's copy of the
//! contract and pins the room's TLS key to the attested one (`crate::room_client`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use cleanroom_formats::fsutil::{self, FileMode};
use cleanroom_formats::load::{default_sigs, load_signed_contract};
use cleanroom_formats::room_protocol::RunState;
use cleanroom_policy::SignedContract;
use cleanroom_policy::message::{MessageType, SignedMessage};
use cleanroom_policy::request::{OutputFetchPayload, RunCancelPayload, RunRequestPayload};
use cleanroom_policy::workload::{ApprovalPayload, RevocationPayload};

use crate::room_client::{RoomClient, nonce};

#[derive(Debug, Args)]
pub struct RoomArgs {
    /// The room service, `https://HOST:PORT`.
    #[arg(long, value_name = "URL", global = true)]
    pub room: Option<String>,
    /// Your copy of the contract (its signatures in CONTRACT.sigs unless --sigs): the room
    /// must prove it runs under exactly this contract.
    #[arg(long, value_name = "FILE", global = true)]
    pub contract: Option<PathBuf>,
    #[arg(long, value_name = "FILE", global = true)]
    pub sigs: Option<PathBuf>,
    #[command(subcommand)]
    pub command: RoomCommand,
}

#[derive(Debug, Subcommand)]
pub enum RoomCommand {
    /// Verify the room's evidence against the contract and print what it proves.
    Verify,
    /// Propose a workload file (signed with your key) to the room; for a module workload,
    /// with its component (inspected here, as `module publish` does, then uploaded).
    Propose {
        #[arg(long, value_name = "FILE")]
        workload: PathBuf,
        /// The Wasm component of a module workload.
        #[arg(long, value_name = "FILE")]
        module: Option<PathBuf>,
        /// Your signing key (`member keygen` wrote it).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Approve a workload the room holds, after checking its proposal yourself.
    Approve {
        /// The workload's digest (as `room propose` printed it).
        #[arg(long, value_name = "HEX")]
        workload: String,
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Also save the workload text here, to read it before approving next time.
        #[arg(long, value_name = "FILE")]
        save: Option<PathBuf>,
        #[command(flatten)]
        limits: ApprovalLimits,
    },
    /// Withdraw your approval of one workload (the room stays open to others; approve
    /// again to restore it). Runs that start afterwards are refused.
    Revoke {
        /// The workload's digest.
        #[arg(long, value_name = "HEX")]
        workload: String,
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Request a run of an approved workload (its proposer or an input's owner may).
    Run {
        #[arg(long, value_name = "HEX")]
        workload: String,
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Wait until the run is committed or refused and print its record.
        #[arg(long)]
        wait: bool,
    },
    /// Cancel a queued or running run (you requested it, or you own one of its inputs): a
    /// running run stops before it seals anything. A finished run cannot be cancelled.
    Cancel {
        /// The run's id (as `room run` printed it).
        #[arg(long, value_name = "ID")]
        id: String,
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// List the room's runs, or show one.
    Runs {
        #[arg(long, value_name = "ID")]
        id: Option<String>,
    },
    /// Fetch a sealed output you are a recipient of (open it with `output open`).
    Fetch {
        /// The output's file name, as the run record lists it.
        #[arg(long, value_name = "NAME")]
        output: String,
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Suspend the room as a member: no run starts, and a run in flight seals nothing
    /// (deliver it to the brokers too: `cleanroom governance suspend`).
    Suspend {
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Why, in your words (members and operators see it; never data).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Lift your own suspension.
    Resume {
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Fetch the evidence bundle of a run (its `run_id`, as `room runs` shows it), or with
    /// no --run the room's boot evidence: what `output open --evidence` and `audit verify
    /// --evidence DIR` check outputs and checkpoints against.
    Evidence {
        #[arg(long, value_name = "RUN_ID")]
        run: Option<String>,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Fetch the room's audit log (verify it with `audit verify`).
    Audit {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// `--expires-at`, `--max-runs`: how long and how often an approval holds.
#[derive(Debug, Clone, Args)]
pub struct ApprovalLimits {
    /// The approval holds until this time (RFC 3339, e.g. 2027-01-31T00:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = parse_rfc3339)]
    pub expires_at: Option<u64>,
    /// The workload may run at most this many times in all (counted by the room in its
    /// audit log).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_runs: Option<u64>,
}

fn parse_rfc3339(s: &str) -> Result<u64, String> {
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("`{s}` is not an RFC 3339 time ({e})"))?;
    u64::try_from(t.timestamp()).map_err(|_| format!("`{s}` is before 1970"))
}

impl ApprovalLimits {
    /// `payload` with these limits.
    pub fn apply(&self, payload: ApprovalPayload) -> ApprovalPayload {
        payload.limited(self.expires_at, self.max_runs)
    }
}

fn contract(args: &RoomArgs) -> anyhow::Result<SignedContract> {
    let c = args.contract.as_ref().ok_or_else(|| {
        anyhow::anyhow!("--contract is required: the room is verified against it")
    })?;
    let sigs = args.sigs.clone().unwrap_or_else(|| default_sigs(c));
    Ok(load_signed_contract(c, &sigs)?.0)
}

/// Sign `payload` as `message_type` with the member key at `key`.
fn sign(
    contract: &SignedContract,
    key: &Path,
    message_type: MessageType,
    payload: Vec<u8>,
) -> anyhow::Result<SignedMessage> {
    let sk = cleanroom_formats::keys::signing_key(key)?;
    Ok(SignedMessage::sign(
        &sk,
        message_type,
        contract.digest().0,
        cleanroom_formats::clock::now_unix(),
        payload,
    ))
}

pub fn run(args: &RoomArgs) -> anyhow::Result<ExitCode> {
    let url = args
        .room
        .clone()
        .ok_or_else(|| anyhow::anyhow!("--room https://HOST:PORT is required"))?;
    let contract = contract(args)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let room = RoomClient::connect(&url, contract.contract()).await?;
        match &args.command {
            RoomCommand::Verify => {
                let a = room.attested();
                println!(
                    "room {url} verified: platform {}, measurement {}, contract {}{}",
                    a.claims.platform,
                    a.claims.measurement,
                    contract.digest().hex(),
                    if a.insecure {
                        " (SIMULATED, INSECURE)"
                    } else {
                        ""
                    }
                );
                println!("tls key spki sha256 {} (pinned)", room.pin());
            }
            RoomCommand::Propose {
                workload,
                module,
                key,
            } => {
                let text = fsutil::read_text(workload)?;
                let component = match module {
                    Some(m) => {
                        let bytes = fsutil::read_file(m)?;
                        let summary = crate::signing::module_summary(&bytes, workload)?;
                        Some((bytes, summary))
                    }
                    None => None,
                };
                let payload = cleanroom_policy::proposal::ProposalPayload::new(
                    &text,
                    &workload.display().to_string(),
                    component.as_ref().map(|(_, s)| s.clone()),
                )?;
                let msg = sign(
                    &contract,
                    key,
                    MessageType::WorkloadPropose,
                    payload.to_bytes(),
                )?;
                let a = room.propose(&msg).await?;
                if let Some((bytes, summary)) = component {
                    room.put_module(&summary.digest, bytes).await?;
                    println!("component {} uploaded", summary.digest);
                }
                println!("workload {} proposed by {}", a.workload_digest, a.member);
            }
            RoomCommand::Approve {
                workload,
                key,
                save,
                limits,
            } => {
                let (text, proposal) = room.workload(workload).await?;
                let w = cleanroom_policy::Workload::parse(&text, "the room's workload")?;
                if &w.digest().hex() != workload {
                    anyhow::bail!("the room's workload text does not have digest {workload}");
                }
                let p = cleanroom_policy::proposal::check(
                    &contract,
                    &w,
                    &SignedMessage::from_base64(&proposal)?,
                )?;
                if let Some(save) = save {
                    fsutil::write_file_atomic(save, text.as_bytes(), FileMode::Public)?;
                }
                let msg = sign(
                    &contract,
                    key,
                    MessageType::WorkloadApprove,
                    limits.apply(ApprovalPayload::for_workload(&w)).to_bytes(),
                )?;
                let a = room.approve(&msg).await?;
                println!(
                    "workload {} ({}, proposed by {}) approved by {}",
                    w.name, a.workload_digest, p.proposer, a.member
                );
            }
            RoomCommand::Cancel { id, key } => {
                let payload = RunCancelPayload {
                    run: id.clone(),
                    nonce: nonce(),
                };
                let msg = sign(&contract, key, MessageType::RunCancel, payload.to_bytes())?;
                let r = room.cancel_run(&msg).await?;
                println!("run {} cancelled", r.id);
            }
            RoomCommand::Revoke { workload, key } => {
                let msg = sign(
                    &contract,
                    key,
                    MessageType::WorkloadRevoke,
                    RevocationPayload {
                        workload_digest: workload.clone(),
                    }
                    .to_bytes(),
                )?;
                let a = room.approve(&msg).await?;
                println!(
                    "{} revoked its approval of workload {}",
                    a.member, a.workload_digest
                );
            }
            RoomCommand::Run {
                workload,
                key,
                wait,
            } => {
                let payload = RunRequestPayload {
                    workload_digest: workload.clone(),
                    nonce: nonce(),
                };
                let msg = sign(&contract, key, MessageType::RunRequest, payload.to_bytes())?;
                let q = room.request_run(&msg).await?;
                println!("run {} queued", q.id);
                if *wait {
                    let r = room.wait(&q.id).await?;
                    println!("{}", serde_json::to_string_pretty(&r)?);
                    if r.state != RunState::Committed {
                        return Ok(ExitCode::from(1));
                    }
                }
            }
            RoomCommand::Runs { id } => match id {
                Some(id) => println!("{}", serde_json::to_string_pretty(&room.run(id).await?)?),
                None => println!("{}", serde_json::to_string_pretty(&room.runs().await?)?),
            },
            RoomCommand::Fetch { output, key, out } => {
                let payload = OutputFetchPayload {
                    output: output.clone(),
                    nonce: nonce(),
                };
                let msg = sign(&contract, key, MessageType::OutputFetch, payload.to_bytes())?;
                let bytes = room.fetch_output(&msg).await?;
                fsutil::write_file_atomic(out, &bytes, FileMode::Public)?;
                println!("{} bytes written to {}", bytes.len(), out.display());
            }
            RoomCommand::Suspend { key, .. } | RoomCommand::Resume { key } => {
                let (t, reason) = match &args.command {
                    RoomCommand::Suspend { reason, .. } => (MessageType::Suspend, reason.clone()),
                    _ => (MessageType::Resume, String::new()),
                };
                let payload = cleanroom_policy::governance::GovernancePayload { reason };
                let msg = sign(&contract, key, t, payload.to_bytes())?;
                let by = room.governance(&msg).await?;
                if by.is_empty() {
                    println!("recorded; no member's suspension is in force");
                } else {
                    println!("recorded; suspended by {}", by.join(", "));
                }
            }
            RoomCommand::Evidence { run, out } => {
                let bytes = match run {
                    Some(run) => room.run_evidence(run).await?,
                    None => room.evidence().await?,
                };
                fsutil::write_file_atomic(out, &bytes, FileMode::Public)?;
                println!(
                    "evidence of {} ({} bytes) written to {}",
                    run.as_deref()
                        .map_or("the room's boot".into(), |r| format!("run {r}")),
                    bytes.len(),
                    out.display()
                );
            }
            RoomCommand::Audit { out } => {
                let bytes = room.audit().await?;
                fsutil::write_file_atomic(out, &bytes, FileMode::Public)?;
                println!(
                    "audit log ({} bytes) written to {}",
                    bytes.len(),
                    out.display()
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
