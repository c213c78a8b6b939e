//! `cleanroom governance suspend|resume|status`: any member stops key releases and runs for
//! the contract (invariant I3), and lifts its own suspension.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use cleanroom_policy::MessageType;
use cleanroom_policy::governance::{self, GovernancePayload, Suspended};
use cleanroom_policy::message::SignedMessage;

use crate::broker_client::GovernanceError;
use crate::commands::contract::ContractFiles;
use crate::signing::append_message;
use cleanroom_formats::keys;
use cleanroom_formats::load::{GOVERNANCE_FILE, load_signed_contract, read_messages};

#[derive(Debug, Args)]
pub struct GovernanceArgs {
    #[command(subcommand)]
    pub command: GovernanceCommand,
}

/// Where a suspend or resume goes.
#[derive(Debug, Args)]
pub struct Delivery {
    #[command(flatten)]
    pub contract: ContractFiles,
    /// The member's NAME.sign.key.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Why (shown to members and operators; never put data here).
    #[arg(long, default_value = "")]
    pub reason: String,
    /// The room directory: the message is appended to ROOM/governance.msgs, which every
    /// run checks before it starts.
    #[arg(long, value_name = "DIR")]
    pub room: Option<PathBuf>,
    /// Do not send the message to the contract's key brokers (by default it goes to every
    /// broker the contract names, which then refuse keys while the suspension holds).
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Subcommand)]
pub enum GovernanceCommand {
    /// Suspend the room as a member: sign a COSE_Sign1 `suspend`, record it in the room and
    /// at every key broker of the contract. No run starts and no key is released until
    /// this member resumes.
    Suspend(Delivery),
    /// Lift this member's own suspension (COSE_Sign1 `resume`, delivered like suspend).
    /// Other members' suspensions stay in force.
    Resume(Delivery),
    /// Print the suspensions in force according to the room's record.
    Status {
        #[command(flatten)]
        contract: ContractFiles,
        /// The room directory.
        #[arg(long, value_name = "DIR")]
        room: PathBuf,
    },
}

/// What [`deliver`] did.
#[derive(Debug)]
pub struct Delivered {
    pub member: String,
    /// Suspensions in force in the room's record afterwards (when a room was given).
    pub room: Option<Vec<Suspended>>,
    /// Per broker URL: the members suspending there afterwards, or why delivery failed.
    pub brokers: Vec<(String, Result<Vec<String>, GovernanceError>)>,
}

/// Sign a `suspend` or `resume` as the member whose key is `d.key` and deliver it to the
/// room and (unless offline) to every broker of the contract.
pub async fn deliver(kind: MessageType, d: &Delivery) -> anyhow::Result<Delivered> {
    if d.room.is_none() && d.offline {
        anyhow::bail!("nowhere to deliver the message: give --room, or drop --offline");
    }
    let (signed, _) = load_signed_contract(&d.contract.contract, &d.contract.sigs())?;
    let sk = keys::signing_key(&d.key)?;
    let payload = GovernancePayload {
        reason: d.reason.clone(),
    };
    // A member's later message must carry a later time even if its clock went back since
    // its last one (the latest message of each member decides): use the room's record.
    let kid = cleanroom_policy::message::key_fingerprint(&p384::ecdsa::VerifyingKey::from(&sk));
    let own_latest = match &d.room {
        Some(room) => read_messages(&room.join(GOVERNANCE_FILE))?
            .iter()
            .filter(|m| m.kid == kid)
            .map(|m| m.created_at)
            .max(),
        None => None,
    };
    let created = own_latest.map_or(cleanroom_formats::clock::now_unix(), |t| {
        cleanroom_formats::clock::now_unix().max(t + 1)
    });
    let msg = SignedMessage::sign(&sk, kind, signed.digest().0, created, payload.to_bytes());
    let member = governance::verify(&signed, &msg).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (only members of the contract can suspend or resume)",
            d.key.display()
        )
    })?;
    let room = match &d.room {
        Some(room) => {
            let file = room.join(GOVERNANCE_FILE);
            append_message(&file, &msg)?;
            Some(governance::suspensions(&signed, &read_messages(&file)?)?)
        }
        None => None,
    };
    let mut brokers = Vec::new();
    if !d.offline {
        // Each broker with the key the contract pins for it (one pin per URL: contract
        // parse refuses two).
        let urls: BTreeSet<(String, Option<String>)> = signed
            .contract()
            .datasets
            .iter()
            .map(|ds| {
                (
                    ds.key.broker.get_ref().clone(),
                    ds.key
                        .broker_spki_sha256
                        .as_ref()
                        .map(|p| p.get_ref().clone()),
                )
            })
            .collect();
        let b64 = msg.to_base64();
        for (url, pin) in urls {
            let r = crate::broker_client::send_governance(&url, pin.as_deref(), &b64)
                .await
                .map(|r| r.suspended_by);
            brokers.push((url, r));
        }
    }
    Ok(Delivered {
        member,
        room,
        brokers,
    })
}

fn describe(s: &[Suspended]) -> String {
    if s.is_empty() {
        return "no suspension in force".into();
    }
    s.iter()
        .map(|s| {
            let since = chrono::DateTime::from_timestamp(s.since_unix as i64, 0)
                .map_or_else(|| s.since_unix.to_string(), |t| t.to_rfc3339());
            if s.reason.is_empty() {
                format!("suspended by `{}` since {since}", s.member)
            } else {
                format!(
                    "suspended by `{}` since {since}: {}",
                    s.member,
                    s.reason.escape_debug()
                )
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The suspensions in force according to the room's record.
pub fn status(contract: &ContractFiles, room: &Path) -> anyhow::Result<Vec<Suspended>> {
    let (signed, _) = load_signed_contract(&contract.contract, &contract.sigs())?;
    Ok(governance::suspensions(
        &signed,
        &read_messages(&room.join(GOVERNANCE_FILE))?,
    )?)
}

pub fn run(args: &GovernanceArgs) -> anyhow::Result<ExitCode> {
    let (kind, d) = match &args.command {
        GovernanceCommand::Suspend(d) => (MessageType::Suspend, d),
        GovernanceCommand::Resume(d) => (MessageType::Resume, d),
        GovernanceCommand::Status { contract, room } => {
            println!("{}", describe(&status(contract, room)?));
            return Ok(ExitCode::SUCCESS);
        }
    };
    let rt = tokio::runtime::Runtime::new()?;
    let done = rt.block_on(deliver(kind, d))?;
    println!("`{}` signed a {}", done.member, kind.as_str());
    if let Some(s) = &done.room {
        println!("room: {}", describe(s).replace('\n', "; "));
    }
    let mut failed = Vec::new();
    for (url, r) in &done.brokers {
        match r {
            Ok(by) if by.is_empty() => println!("broker {url}: recorded; no suspension in force"),
            Ok(by) => println!("broker {url}: recorded; suspended by {}", by.join(", ")),
            Err(e) => {
                eprintln!("broker {url}: NOT delivered: {e}");
                failed.push(url.clone());
            }
        }
    }
    if !failed.is_empty() {
        anyhow::bail!(
            "the message did not reach {} broker(s): {}; deliver it again when they are reachable",
            failed.len(),
            failed.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
