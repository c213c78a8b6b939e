//! The room as a service (`cleanroom-room serve`): it proves what it is before anyone sends
//! it anything, and every request that changes something is a member's signature.
//!
//! At boot the room collects its own evidence with REPORT_DATA binding a fresh identity
//! key (the same binding a run's evidence has: `cleanroom_verify::evidence`) and verifies
//! it against the contract's attestation policy; on any mismatch it refuses to start. It
//! then serves HTTPS with a certificate for that key, so a member who verified the evidence
//! (`GET /v1/evidence`) pins the TLS key to the attested one and sends nothing to anything
//! else (`cleanroom room ...`).
//!
//! Requests (see `docs/api/openapi.json`, served at `/v1/openapi.json`):
//! - proposals and approvals are the members' `workload-propose` / `workload-approve`
//!   messages, verified and kept under `--state` beside the workload they name;
//! - a run is a member's `run-request` (proposer or input owner, fresh, its nonce never
//!   seen before), queued and run one at a time by the same run stages as `cleanroom-room
//!   run` (which check everything again: admission, attestation, keys from the brokers on
//!   every run);
//! - a sealed output is read with a recipient's `output-fetch`;
//! - the audit log and the evidence are readable by anyone who can reach the room (they
//!   hold no data values).
//!
//! Every accepted or refused request is in the audit log, whose head the brokers pin: a
//! replayed nonce is found there. A state directory restored from an older copy is an older
//! log: at boot the room asks each broker which head it last saw and refuses to start if
//! its log does not hold it (so no request is replayed into the older log), and the brokers
//! refuse keys to it at every run.

mod api;
mod state;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use cleanroom_attest::Expected;
use cleanroom_formats::audit::{Decision, Step};
use cleanroom_formats::fsutil::{FileMode, Root};
use cleanroom_formats::tls::SpkiPin;
use cleanroom_policy::SignedContract;
use cleanroom_verify::evidence::host_identity_report_data;
use cleanroom_verify::reference::reference_values;
use p384::ecdsa::{SigningKey, VerifyingKey};

use crate::attestation::EvidenceSource;
use crate::audit::{AuditLog, Event};
use crate::error::{Result, RoomError};

pub use api::OPENAPI;
pub use state::{RunRecord, RunState};

/// Default freshness window of signed requests, seconds either side of the room's clock.
pub const DEFAULT_FRESHNESS: u64 = 300;
/// Runs waiting at most; a request beyond it is refused (`queue-full`).
pub const DEFAULT_QUEUE: usize = 16;

/// What `serve` needs.
#[derive(Clone)]
pub struct ServeConfig {
    pub contract: PathBuf,
    pub contract_sigs: PathBuf,
    /// The service's state: `room/` (audit log, outputs, evidence), `workloads/`.
    pub state: PathBuf,
    /// Sealed datasets; contract `location`s are relative to it.
    pub data: PathBuf,
    pub evidence: Arc<dyn EvidenceSource>,
    pub memory_limit: usize,
    pub freshness: u64,
    pub queue: usize,
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("contract", &self.contract)
            .field("state", &self.state)
            .field("data", &self.data)
            .field("platform", &self.evidence.platform())
            .finish()
    }
}

/// Why the service refused to start or a request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The room's own evidence does not satisfy the contract: it serves nothing.
    #[error("the room's own evidence does not satisfy the contract, so it does not start: {0}")]
    BootAttestation(cleanroom_attest::AttestError),
    /// A broker saw a newer audit log head from this contract's room than the state
    /// directory holds (or another log at that point): the state was restored from an older
    /// copy or replaced. The room does not serve it.
    #[error(
        "key broker {broker} saw this contract's audit log up to entry {seen}, but the state directory's log {why}: it was restored from an older copy or replaced, so the room does not start"
    )]
    RolledBack {
        broker: String,
        seen: u64,
        why: &'static str,
    },
    #[error("listening: {what}")]
    Listen { what: String },
    #[error("TLS: {what}")]
    Tls { what: String },
}

/// A running room service.
#[derive(Debug)]
pub struct RunningRoom {
    pub addr: SocketAddr,
    /// `https://ADDR`.
    pub url: String,
    /// The SPKI SHA-256 of its TLS key, the identity key its evidence binds.
    pub pin: SpkiPin,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    accept: tokio::task::JoinHandle<()>,
    worker: tokio::task::JoinHandle<()>,
}

impl RunningRoom {
    /// Stop serving (a run in progress is dropped with the process's tasks).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.accept.abort();
        self.worker.abort();
        let _ = self.task.await;
    }
}

/// The room's boot identity: a fresh key, its evidence verified against the contract.
struct Booted {
    identity: SigningKey,
    bundle: cleanroom_attest::EvidenceBundle,
    evidence_json: Vec<u8>,
    insecure: bool,
}

/// Collect and verify the room's own evidence for a fresh identity key; record the boot in
/// the audit log and keep the bundle as `evidence/boot-<key>.json`.
fn boot(cfg: &ServeConfig, contract: &SignedContract, room: &Root) -> Result<Booted> {
    let identity = SigningKey::random(&mut rand::rngs::OsRng);
    let key_hex = hex::encode(
        VerifyingKey::from(&identity)
            .to_encoded_point(true)
            .as_bytes(),
    );
    let digest = contract.digest();
    let report_data = host_identity_report_data(&key_hex, &digest.hex());
    let mut bundle = cfg.evidence.collect(report_data)?;
    let verified = cleanroom_attest::verify(
        &bundle,
        &reference_values(contract.contract()),
        &Expected {
            report_data,
            host_data: digest.0,
        },
        cleanroom_formats::clock::now_unix(),
    )
    .map_err(|e| RoomError::Service(ServiceError::BootAttestation(e)))?;
    bundle.host_public_key = Some(key_hex.clone());
    bundle.contract_digest = Some(digest.hex());
    let evidence_json = serde_json::to_vec_pretty(&bundle).expect("a bundle serialises");
    room.write_atomic(
        &format!("evidence/boot-{}.json", &key_hex[..16]),
        &evidence_json,
        FileMode::Public,
    )?;
    let insecure = verified.claims().insecure;
    let mut log = AuditLog::open(room, None)?;
    log.recover_outputs()?;
    log.append(Event {
        event: Step::Attestation,
        subject: "room service",
        decision: Decision::Verified,
        reason: &format!(
            "booted with identity key {}, platform {} measurement {}{}",
            &key_hex[..16],
            verified.claims().platform,
            &verified.claims().measurement[..16],
            if insecure {
                " — SIMULATED, INSECURE"
            } else {
                ""
            }
        ),
    })?;
    log.checkpoint(&identity, insecure)?;
    Ok(Booted {
        identity,
        bundle,
        evidence_json,
        insecure,
    })
}

/// Ask every broker of the contract which audit log head it last saw from this contract's
/// room; refuse if that head is not in the room's log (the state was rolled back or
/// replaced: a replayed request would find no trace of its nonce in it). A broker that
/// cannot be reached is recorded and skipped: it refuses keys to a rolled-back log anyway.
async fn check_not_rolled_back(
    cfg: &ServeConfig,
    contract: &SignedContract,
    room: &Root,
) -> Result<()> {
    let mut brokers: Vec<(String, Option<String>)> = contract
        .contract()
        .datasets
        .iter()
        .map(|d| {
            (
                d.key.broker.get_ref().clone(),
                d.key
                    .broker_spki_sha256
                    .as_ref()
                    .map(|p| p.get_ref().clone()),
            )
        })
        .collect();
    brokers.sort();
    brokers.dedup();
    let digest = contract.digest().hex();
    let mut log = AuditLog::open(room, None)?;
    for (url, pin) in brokers {
        let client = crate::kbs_client::BrokerClient::new(
            &url,
            pin.as_deref(),
            std::time::Duration::from_secs(10),
        )?;
        match crate::kbs_client::seen_head(&client, &digest, cfg.evidence.platform()).await {
            Ok(None) => {}
            Ok(Some((seen, hash))) => {
                let entries = log.entries();
                let why = match entries.get(seen as usize) {
                    None => Some("ends before it"),
                    Some(e) if e.hash != hash => Some("has another entry there"),
                    Some(_) => None,
                };
                if let Some(why) = why {
                    let e = RoomError::Service(ServiceError::RolledBack {
                        broker: url.clone(),
                        seen,
                        why,
                    });
                    log.append(Event {
                        event: Step::Audit,
                        subject: "room service",
                        decision: Decision::Refused,
                        reason: &e.to_string(),
                    })?;
                    return Err(e);
                }
            }
            Err(e) => {
                log.append(Event {
                    event: Step::Audit,
                    subject: "room service",
                    decision: Decision::None,
                    reason: &format!(
                        "could not ask key broker {url} for the head it saw ({e}); its own check at every key request stands"
                    ),
                })?;
            }
        }
    }
    Ok(())
}

/// Boot (refusing to start on evidence that does not satisfy the contract, or on a state
/// directory older than what the brokers saw) and serve on `listener`.
pub async fn start(cfg: ServeConfig, listener: tokio::net::TcpListener) -> Result<RunningRoom> {
    let (contract, _) =
        cleanroom_formats::load::load_signed_contract(&cfg.contract, &cfg.contract_sigs)?;
    let room = Root::open_or_create(&cfg.state.join("room"))?;
    Root::open_or_create(&cfg.state.join("workloads"))?;
    check_not_rolled_back(&cfg, &contract, &room).await?;
    let booted = boot(&cfg, &contract, &room)?;
    let addr = listener.local_addr().map_err(|e| {
        RoomError::Service(ServiceError::Listen {
            what: e.to_string(),
        })
    })?;
    let (server_config, pin) = tls::server_config(&booted.identity, &booted.bundle)?;
    let (incoming, accept) = cleanroom_formats::https::incoming(listener, Some(server_config))
        .map_err(|e| {
            RoomError::Service(ServiceError::Listen {
                what: e.to_string(),
            })
        })?;
    let (jobs, rx) = tokio::sync::mpsc::channel(cfg.queue.max(1));
    let service = Arc::new(api::Service::new(
        cfg,
        contract,
        booted.evidence_json,
        booted.insecure,
        jobs,
    )?);
    let worker = tokio::spawn(api::worker(service.clone(), rx));
    let (tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let app = api::router(service);
    let task = tokio::spawn(async move {
        let _ = axum::serve(incoming, app)
            .with_graceful_shutdown(async {
                let _ = shutdown_rx.await;
            })
            .await;
    });
    Ok(RunningRoom {
        addr,
        url: format!("https://{addr}"),
        pin,
        shutdown: Some(tx),
        task,
        accept,
        worker,
    })
}
