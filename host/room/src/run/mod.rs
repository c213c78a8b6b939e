//! One run of an approved workload (DESIGN "Flow", step 7), as typed stages. Each stage
//! consumes the previous stage's proof value and returns the next; each proof's
//! constructor is private to the stage that checks it:
//!
//! ```text
//! admit  → Admitted       contract signed by every member, no suspension in force,
//!                         proposal by a listed proposer, every input owner's approval
//! (rules)                 SQL: the query rules on the plan over empty views, so a query
//!                         breaking them is refused before any evidence or key request;
//!                         DP: the budget left by the audit log's ledger
//! attest → Attested       the room's own evidence, binding its identity key, satisfies the
//!                         contract (before anyone is asked for a key)
//! keys   → KeysReleased   each input's key from its owner's broker
//! load   → Loaded         inputs decrypted in memory into views of allowed fields; min_rows
//! sql | module → Produced the approved SQL, or the approved module in the sandbox
//! guard  → Guarded        the host's guards on everything produced
//! seal   → committed      no suspension arrived meanwhile; sealed to the recipients,
//!                         committed atomically, audited
//! ```
//!
//! Every decision is appended to the audit log; a refusal at any stage goes through
//! [`Ctx::refuse`], which audits it and returns the error, so a refused run writes nothing
//! but its audit entries.

mod admit;
mod attest;
mod guard;
mod keys;
mod load;
mod module;
mod seal;
mod sql;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cleanroom_formats::audit::{Decision, Step};
use cleanroom_formats::fsutil::Root;
use p384::ecdsa::SigningKey;
use rand::RngCore;

pub use admit::Admitted;
pub use attest::Attested;
pub use guard::Guarded;
pub use keys::KeysReleased;
pub use load::Loaded;

use crate::attestation::EvidenceSource;
use crate::audit::{AuditLog, Event};
use crate::error::{Result, RoomError};

/// Where the run's inputs are and where it writes.
#[derive(Clone)]
pub struct RunConfig {
    pub contract: PathBuf,
    pub contract_sigs: PathBuf,
    pub workload: PathBuf,
    pub approvals: PathBuf,
    /// The workload's signed proposal (`workload-propose`); a missing file means none, which
    /// a contract naming `governance.proposers` refuses.
    pub proposal: PathBuf,
    /// The room directory: `audit.jsonl`, `outputs/`, `evidence/`.
    pub room_dir: PathBuf,
    /// Sealed datasets; contract `location`s are relative to it.
    pub data_dir: PathBuf,
    pub evidence: Arc<dyn EvidenceSource>,
    pub memory_limit: usize,
    /// The Wasm component of a module workload; default `<room>/modules/<digest>.wasm`.
    pub module: Option<PathBuf>,
    /// A member's cancellation of this run (the room service's `run-cancel`), checked when
    /// the run starts and again before it seals; `None` for a one-shot run.
    pub cancel: Option<Cancellation>,
}

/// A member's request to cancel a run in flight: set by the room service, checked by the
/// run before its first stage and before it seals (a cancelled run seals nothing).
#[derive(Debug, Clone, Default)]
pub struct Cancellation(Arc<std::sync::OnceLock<String>>);

impl Cancellation {
    /// Cancel, as `member` asked (the first cancellation counts).
    pub fn cancel(&self, member: &str) {
        let _ = self.0.set(member.to_string());
    }
    /// Who cancelled the run, if anyone has.
    pub fn cancelled_by(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

impl std::fmt::Debug for RunConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunConfig")
            .field("contract", &self.contract)
            .field("workload", &self.workload)
            .field("room_dir", &self.room_dir)
            .field("data_dir", &self.data_dir)
            .field("platform", &self.evidence.platform())
            .finish()
    }
}

/// What a successful run reports (no data values: those are only in the sealed output).
/// `cleanroom-room run --json` prints it as JSON.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunReport {
    pub run_id: String,
    /// Sealed outputs written (result tables, metrics, artifacts, log under consent).
    pub outputs: Vec<PathBuf>,
    /// Rows released and groups dropped by a SQL run. Zero for a module run: its counts are
    /// the module's choice and stay inside the sealed outputs.
    pub rows: u64,
    pub groups_dropped: u64,
    pub input_rows: Vec<(String, u64)>,
    pub recipients: Vec<String>,
    pub insecure: bool,
    /// Wall time of each stage, in order: `audit log` (open, recover), `admit` (signatures,
    /// approvals, the query rules on empty views), `attest` (the room's own evidence), `key
    /// release` (the brokers), `decrypt` (registering the inputs), `query` or `module`,
    /// `guard`, `seal`, `checkpoint` (the signed end of the run's log).
    pub phases: Vec<(String, Duration)>,
}

fn new_run_id() -> String {
    let mut r = [0u8; 6];
    rand::rngs::OsRng.fill_bytes(&mut r);
    format!(
        "{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        hex::encode(r)
    )
}

/// The run's audit context: every stage records its decisions through it.
pub(crate) struct Ctx<'a, 'r> {
    audit: &'a mut AuditLog<'r>,
    /// The run's identity key (bound in its evidence): it signs the checkpoint and every
    /// output.
    identity: &'a SigningKey,
    /// Outputs sealed so far: the next output's host-assigned index.
    outputs: u32,
}

impl Ctx<'_, '_> {
    /// Record a decision that lets the run go on.
    pub(crate) fn ok(
        &mut self,
        step: Step,
        subject: &str,
        decision: Decision,
        reason: &str,
    ) -> Result<()> {
        self.audit.append(Event {
            event: step,
            subject,
            decision,
            reason,
        })
    }

    /// Audit a refusal and return the error: the one way a stage refuses.
    pub(crate) fn refuse<T>(
        &mut self,
        step: Step,
        subject: &str,
        e: impl Into<RoomError>,
    ) -> Result<T> {
        let e = e.into();
        self.audit.append(Event {
            event: step,
            subject,
            decision: Decision::Refused,
            reason: &e.to_string(),
        })?;
        Err(e)
    }

    /// The run's identity key.
    pub(crate) fn identity(&self) -> &SigningKey {
        self.identity
    }

    /// The index of the next output (outputs are numbered from 0 in the order sealed).
    pub(crate) fn next_output_index(&mut self) -> u32 {
        let i = self.outputs;
        self.outputs += 1;
        i
    }

    /// Append a budget (ledger) entry, durable before it returns.
    pub(crate) fn spend(
        &mut self,
        spend: cleanroom_formats::audit::Spend,
        reason: &str,
    ) -> Result<()> {
        self.audit.spend(spend, reason)
    }

    /// The log's head (`seq`, `hash`): what a key request carries and an output anchors.
    /// Every run appends entries before it asks for keys or seals, so the log has a head.
    pub(crate) fn anchor(&self) -> (u64, String) {
        self.audit.anchor().unwrap_or((0, String::new()))
    }

    /// The log's entries so far (a key request proves its head from them).
    pub(crate) fn entries(&self) -> &[cleanroom_formats::audit::Entry] {
        self.audit.entries()
    }
}

/// Run the workload. On refusal, the error is returned after its audit entry is committed;
/// the run's checkpoint is signed either way.
pub async fn run(cfg: &RunConfig) -> Result<RunReport> {
    let t = std::time::Instant::now();
    let room = Root::open_or_create(&cfg.room_dir)?;
    let run_id = new_run_id();
    let mut audit = AuditLog::open(&room, Some(run_id.clone()))?;
    audit.recover_outputs()?;
    let opened = t.elapsed();
    let identity = SigningKey::random(&mut rand::rngs::OsRng);
    let mut insecure = cfg.evidence.platform() == cleanroom_attest::Platform::Sim;
    let result = {
        let mut ctx = Ctx {
            audit: &mut audit,
            identity: &identity,
            outputs: 0,
        };
        stages(cfg, &room, &run_id, &identity, &mut insecure, &mut ctx).await
    };
    let t = std::time::Instant::now();
    audit.checkpoint(&identity, insecure)?;
    let checkpoint = t.elapsed();
    result.map(|mut r| {
        r.phases.insert(0, ("audit log".into(), opened));
        r.phases.push(("checkpoint".into(), checkpoint));
        r
    })
}

/// A run a member cancelled stops here, audited, before any key or before it seals.
fn check_not_cancelled(cfg: &RunConfig, run_id: &str, ctx: &mut Ctx<'_, '_>) -> Result<()> {
    match cfg.cancel.as_ref().and_then(Cancellation::cancelled_by) {
        Some(member) => ctx.refuse(
            Step::Run,
            run_id,
            RoomError::Cancelled {
                member: member.to_string(),
            },
        ),
        None => Ok(()),
    }
}

async fn stages(
    cfg: &RunConfig,
    room: &Root,
    run_id: &str,
    identity: &SigningKey,
    insecure: &mut bool,
    ctx: &mut Ctx<'_, '_>,
) -> Result<RunReport> {
    let mut phases = Vec::new();
    let t = std::time::Instant::now();
    check_not_cancelled(cfg, run_id, ctx)?;
    let admitted = admit::admit(cfg, ctx)?;
    sql::check_before_keys(&admitted, ctx).await?;
    phases.push(("admit".into(), t.elapsed()));
    let t = std::time::Instant::now();
    let attested = attest::attest(admitted, cfg, room, run_id, identity, ctx)?;
    *insecure = attested.insecure();
    phases.push(("attest".into(), t.elapsed()));
    let t = std::time::Instant::now();
    let released = keys::request(attested, cfg, ctx).await?;
    phases.push(("key release".into(), t.elapsed()));
    let t = std::time::Instant::now();
    let mut loaded = load::load(released, cfg, ctx).await?;
    crate::failpoint::pause(crate::failpoint::INPUTS_LOADED);
    phases.push(("decrypt".into(), t.elapsed()));
    let t = std::time::Instant::now();
    let (guarded, tally) = match loaded.program() {
        load::Program::Sql(sql) if loaded.workload().dp.is_some() => {
            let sql = sql.to_string();
            let produced = sql::execute_dp(&loaded, &sql, ctx).await?;
            phases.push(("query".into(), t.elapsed()));
            let t = std::time::Instant::now();
            let g = guard::dp_output(&loaded, produced, ctx)?;
            phases.push(("guard".into(), t.elapsed()));
            g
        }
        load::Program::Sql(sql) => {
            let sql = sql.to_string();
            let produced = sql::execute(&loaded, &sql, ctx).await?;
            phases.push(("query".into(), t.elapsed()));
            let t = std::time::Instant::now();
            let g = guard::sql_output(&loaded, produced, ctx)?;
            phases.push(("guard".into(), t.elapsed()));
            g
        }
        load::Program::Module(digest) => {
            let digest = digest.to_string();
            let produced = module::execute(&mut loaded, &digest, cfg, room, run_id, ctx).await?;
            phases.push(("module".into(), t.elapsed()));
            guard::module_output(&loaded, produced, ctx)?
        }
    };
    // A suspension that arrived while the run was in flight withholds its outputs.
    crate::failpoint::pause(crate::failpoint::BEFORE_SEAL);
    check_not_cancelled(cfg, run_id, ctx)?;
    admit::check_not_suspended(
        cfg,
        loaded.signed_contract(),
        ctx,
        "no member's suspension arrived while the run was in flight",
    )?;
    let t = std::time::Instant::now();
    let sealer = seal::Sealer::new(room, &loaded, run_id);
    let mut outputs = Vec::new();
    for g in guarded {
        outputs.push(sealer.seal(g, ctx)?);
    }
    phases.push(("seal".into(), t.elapsed()));
    Ok(RunReport {
        run_id: run_id.to_string(),
        outputs,
        rows: tally.rows,
        groups_dropped: tally.dropped,
        input_rows: loaded.input_rows().to_vec(),
        recipients: loaded.workload().output.recipients.clone(),
        insecure: loaded.insecure(),
        phases,
    })
}
