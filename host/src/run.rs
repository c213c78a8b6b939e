//! One run of an approved workload (DESIGN "Flow", step 7):
//! contract signatures → approvals → self-attestation → keys from each owner's broker →
//! decrypt in memory → views of allowed fields → min_rows → SQL → guards → seal to the
//! recipients → atomic commit → audit. Every decision is appended to the audit log, and a
//! refusal at any step stops the run before anything is written but its audit entry.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cleanroom_attest::{Expected, report_data_for};
use cleanroom_policy::contract::DataFormat;
use cleanroom_policy::guards::{EffectiveGuards, check_min_rows};
use cleanroom_policy::message::{self, SignedMessage};
use cleanroom_policy::workload::OutputFormat;
use cleanroom_policy::{Contract, SignedContract, Workload};
use cleanroom_policy::{approval, governance, proposal};
use p384::ecdsa::{SigningKey, VerifyingKey};
use rand::RngCore;

use crate::attestation::{self, EvidenceSource};
use crate::audit::{AuditLog, Event};
use crate::engine::{self, Engine};
use crate::error::{HostError, Result};
use crate::fsutil::{self, Root};
use crate::kbs::client::{self, KeyRequest};
use crate::seal::envelope::{self, OutputHeader};
use crate::seal::stream;

/// The room's record of members' suspend/resume messages (one base64 COSE_Sign1 per line,
/// appended by `cleanroom governance suspend|resume --room`).
pub const GOVERNANCE_FILE: &str = "governance.msgs";

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
#[derive(Debug, Clone)]
pub struct RunReport {
    pub run_id: String,
    /// Sealed outputs written (result tables, metrics, artifacts, log under consent).
    pub outputs: Vec<PathBuf>,
    pub rows: u64,
    pub groups_dropped: u64,
    pub input_rows: Vec<(String, u64)>,
    pub recipients: Vec<String>,
    pub insecure: bool,
    pub phases: Vec<(&'static str, Duration)>,
}

/// Seals a run's outputs to members and commits them, auditing each.
pub(crate) struct Sealer<'a> {
    pub room: &'a Root,
    pub contract: &'a Contract,
    pub workload: &'a Workload,
    pub digest: String,
    pub run_id: &'a str,
    pub insecure: bool,
}

impl Sealer<'_> {
    /// Seal `content` to `recipients` at `rel` (atomic commit) and audit it.
    #[allow(clippy::too_many_arguments)]
    pub fn seal(
        &self,
        rel: &str,
        recipients: &[String],
        content: &[u8],
        format: &str,
        columns: Vec<String>,
        rows: u64,
        ctx: &mut Ctx<'_, '_>,
    ) -> Result<PathBuf> {
        let mut keys = Vec::new();
        for r in recipients {
            let m = self
                .contract
                .member(r)
                .ok_or_else(|| HostError::BadRecipient {
                    recipient: r.clone(),
                    what: "not a member of the contract".into(),
                })?;
            let pk = message::x25519_public_from_b64(m.encryption_key.get_ref()).map_err(|e| {
                HostError::BadRecipient {
                    recipient: r.clone(),
                    what: e.to_string(),
                }
            })?;
            keys.push((r.clone(), pk));
        }
        // Every run appends entries before it seals anything, so the log has a last entry.
        let anchor = ctx.audit.anchor().unwrap_or((0, String::new()));
        let header = OutputHeader {
            contract_digest: self.digest.clone(),
            workload: self.workload.name.clone(),
            workload_digest: self.workload.digest().hex(),
            run_id: self.run_id.to_string(),
            created_at: crate::clock::now_rfc3339(),
            insecure: self.insecure,
            format: format.into(),
            columns,
            rows,
            audit_seq: anchor.0,
            audit_hash: anchor.1,
        };
        let sealed =
            envelope::seal(&header, &keys, content).map_err(|e| HostError::BadRecipient {
                recipient: recipients.join(", "),
                what: e.to_string(),
            })?;
        self.room.write_atomic(rel, &sealed, false)?;
        ctx.ok(
            "output",
            rel,
            "committed",
            &format!(
                "{format}, {rows} rows, sealed to {}{}",
                recipients.join(", "),
                if self.insecure {
                    " (INSECURE: simulated attestation)"
                } else {
                    ""
                }
            ),
        )?;
        Ok(self.room.display(rel))
    }
}

/// Read a file of base64 signed messages, one per line.
pub fn read_messages(path: &std::path::Path) -> Result<Vec<SignedMessage>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = fsutil::read_text(path)?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            SignedMessage::from_base64(l).map_err(|e| HostError::BadFile {
                path: format!("{}:{}", path.display(), i + 1),
                what: e.to_string(),
            })
        })
        .collect()
}

/// The proposal in `path`: none if the file does not exist, an error unless it holds exactly
/// one message.
pub fn read_proposal(path: &std::path::Path) -> Result<Option<SignedMessage>> {
    let mut msgs = read_messages(path)?;
    match msgs.len() {
        0 if !path.exists() => Ok(None),
        1 => Ok(msgs.pop()),
        n => Err(HostError::BadFile {
            path: path.display().to_string(),
            what: format!("holds {n} signed messages; a proposal file holds exactly one"),
        }),
    }
}

/// Load a contract and verify every member's signature.
pub fn load_signed_contract(
    contract: &std::path::Path,
    sigs: &std::path::Path,
) -> Result<(SignedContract, String)> {
    let text = fsutil::read_text(contract)?;
    let parsed = Contract::parse(&text, &contract.display().to_string())?;
    let signed = SignedContract::verify(parsed, &read_messages(sigs)?)?;
    Ok((signed, text))
}

pub fn load_workload(path: &std::path::Path) -> Result<Workload> {
    let text = fsutil::read_text(path)?;
    Ok(Workload::parse(&text, &path.display().to_string())?)
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

pub(crate) struct Ctx<'a, 'r> {
    audit: &'a mut AuditLog<'r>,
}

impl Ctx<'_, '_> {
    pub(crate) fn ok(
        &mut self,
        event: &str,
        subject: &str,
        decision: &str,
        reason: &str,
    ) -> Result<()> {
        self.audit.append(Event {
            event,
            subject,
            decision,
            reason,
        })
    }
    /// Audit a refusal and return the error.
    pub(crate) fn refuse<T>(&mut self, event: &str, subject: &str, e: HostError) -> Result<T> {
        self.audit.append(Event {
            event,
            subject,
            decision: "refused",
            reason: &e.to_string(),
        })?;
        Err(e)
    }
}

/// Run the workload. On refusal, the error is returned after its audit entry is committed.
pub async fn run(cfg: &RunConfig) -> Result<RunReport> {
    let room = Root::open_or_create(&cfg.room_dir)?;
    let run_id = new_run_id();
    let mut audit = AuditLog::open(&room, Some(run_id.clone()))?;
    let identity = SigningKey::random(&mut rand::rngs::OsRng);
    let mut insecure = cfg.evidence.platform() == cleanroom_attest::Platform::Sim;
    let result = {
        let mut ctx = Ctx { audit: &mut audit };
        run_steps(cfg, &room, &run_id, &identity, &mut insecure, &mut ctx).await
    };
    audit.checkpoint(&identity, insecure)?;
    result
}

async fn run_steps(
    cfg: &RunConfig,
    room: &Root,
    run_id: &str,
    identity: &SigningKey,
    insecure: &mut bool,
    ctx: &mut Ctx<'_, '_>,
) -> Result<RunReport> {
    let mut phases = Vec::new();
    let contract_name = cfg.contract.display().to_string();

    // 1. The contract, signed by every member.
    let (signed, _) = match load_signed_contract(&cfg.contract, &cfg.contract_sigs) {
        Ok(s) => s,
        Err(e) => return ctx.refuse("contract", &contract_name, e),
    };
    let contract = signed.contract();
    let digest = signed.digest();
    ctx.ok(
        "contract",
        &format!("{} ({})", contract.id, digest),
        "accepted",
        "signed by every member",
    )?;

    // Suspension (I3): no member's suspension may be in force when a run starts. The
    // brokers check their own copies too, so removing this file does not lift one.
    let gov_file = cfg.room_dir.join(GOVERNANCE_FILE);
    let subject = format!("contract {}", digest.hex());
    let suspensions = match read_messages(&gov_file) {
        Ok(m) => m,
        Err(e) => return ctx.refuse("suspension", &subject, e),
    };
    match governance::check(&signed, &suspensions) {
        Ok(()) => ctx.ok(
            "suspension",
            &subject,
            "none",
            "no member's suspension is in force",
        )?,
        Err(e) => return ctx.refuse("suspension", &subject, e.into()),
    }

    // 2. The workload, approved by every owner of every input.
    let workload = match load_workload(&cfg.workload) {
        Ok(w) => w,
        Err(e) => return ctx.refuse("workload", &cfg.workload.display().to_string(), e),
    };
    let wsubject = format!("{} ({})", workload.name, workload.digest().hex());
    let proposal = match read_proposal(&cfg.proposal) {
        Ok(p) => p,
        Err(e) => return ctx.refuse("proposal", &wsubject, e),
    };
    match proposal::require(&signed, &workload, proposal.as_ref()) {
        Ok(Some(by)) => ctx.ok(
            "proposal",
            &wsubject,
            "accepted",
            &format!("proposed by {by}"),
        )?,
        Ok(None) => ctx.ok(
            "proposal",
            &wsubject,
            "none",
            "the contract names no proposers",
        )?,
        Err(e) => return ctx.refuse("proposal", &wsubject, e.into()),
    }
    let approvals = match read_messages(&cfg.approvals) {
        Ok(a) => a,
        Err(e) => return ctx.refuse("approval", &wsubject, e),
    };
    let approved = match approval::check(&signed, &workload, &approvals) {
        Ok(a) => a,
        Err(e) => return ctx.refuse("approval", &wsubject, e.into()),
    };
    ctx.ok(
        "approval",
        &wsubject,
        "granted",
        &format!(
            "approved by {}",
            approved.approvers().collect::<Vec<_>>().join(", ")
        ),
    )?;
    // 3. Self-attestation: the host's own evidence, binding its identity key, must satisfy
    // the contract before it asks anyone for a key.
    let t = Instant::now();
    let host_key_hex = hex::encode(
        VerifyingKey::from(identity)
            .to_encoded_point(true)
            .as_bytes(),
    );
    let binding = serde_json_canonicalizer::to_vec(&serde_json::json!({
        "purpose": "cleanroom-host-identity",
        "host_public_key": host_key_hex,
        "contract_digest": digest.hex(),
    }))
    .expect("serialises");
    let report_data = report_data_for(&binding);
    let mut bundle = match cfg.evidence.collect(report_data) {
        Ok(b) => b,
        Err(e) => return ctx.refuse("attestation", "host", e),
    };
    let refs = attestation::reference_values(contract);
    let verified = match cleanroom_attest::verify(
        &bundle,
        &refs,
        &Expected {
            report_data,
            host_data: digest.0,
        },
        crate::clock::now_unix(),
    ) {
        Ok(v) => v,
        Err(e) => return ctx.refuse("attestation", "host", e.into()),
    };
    *insecure = verified.claims().insecure;
    bundle.host_public_key = Some(host_key_hex);
    bundle.contract_digest = Some(digest.hex());
    room.write_atomic(
        &format!("evidence/{run_id}.json"),
        &serde_json::to_vec_pretty(&bundle).expect("serialises"),
        false,
    )?;
    ctx.ok(
        "attestation",
        "host",
        "verified",
        &format!(
            "platform {} measurement {}{}",
            verified.claims().platform,
            &verified.claims().measurement[..16],
            if *insecure {
                " — SIMULATED, INSECURE"
            } else {
                ""
            }
        ),
    )?;

    // 4. Keys from each owner's broker.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| HostError::Usage(format!("HTTP client: {e}")))?;
    let workload_json = String::from_utf8(workload.canonical_json()).expect("JSON is UTF-8");
    let approvals_b64: Vec<String> = approvals.iter().map(SignedMessage::to_base64).collect();
    let mut keys = Vec::new();
    for input in &workload.inputs {
        let ds = contract
            .dataset(input)
            .expect("approval::check validated inputs");
        let subject = format!("{input} @ {}", ds.key.broker.get_ref());
        // Entries were appended before any key request, so the log has a head.
        let (seq, hash) = ctx.audit.anchor().unwrap_or((0, String::new()));
        let req = KeyRequest {
            broker: ds.key.broker.get_ref(),
            resource: ds.key.resource.get_ref(),
            contract_digest: &digest.hex(),
            workload_json: &workload_json,
            approvals: &approvals_b64,
            audit_head: (seq, &hash),
        };
        match client::fetch_key(&http, &req, cfg.evidence.as_ref()).await {
            Ok(k) => {
                ctx.ok(
                    "key-request",
                    &subject,
                    "granted",
                    "released by the owner's broker",
                )?;
                keys.push((ds, k));
            }
            Err(e) => return ctx.refuse("key-request", &subject, e),
        }
    }
    phases.push(("key release", t.elapsed()));

    // 5. Decrypt in memory into views of the allowed fields; check min_rows.
    let t = Instant::now();
    let data = Root::open(&cfg.data_dir)?;
    let mut eng = Engine::new(cfg.memory_limit)?;
    let mut input_rows = Vec::new();
    let mut artifacts = std::collections::BTreeMap::new();
    for (ds, key) in &keys {
        let name = ds.name.get_ref();
        let location = ds.location.get_ref();
        let sealed = match data.read(location) {
            Ok(b) => b,
            Err(e) => return ctx.refuse("decrypt", name, e),
        };
        if ds.format == DataFormat::File {
            match stream::open(key, Some(name), &sealed) {
                Ok(plain) => {
                    ctx.ok(
                        "decrypt",
                        name,
                        "ok",
                        &format!("file of {} bytes, for the module", plain.len()),
                    )?;
                    artifacts.insert(name.clone(), plain.to_vec());
                    continue;
                }
                Err(source) => {
                    let e = HostError::Sealed {
                        path: data.display(location).display().to_string(),
                        source,
                    };
                    return ctx.refuse("decrypt", name, e);
                }
            }
        }
        let rows = match ds.format {
            DataFormat::Parquet | DataFormat::File => eng.register_parquet(ds, key, sealed).await,
            DataFormat::Csv | DataFormat::Json => match stream::open(key, Some(name), &sealed) {
                Ok(plain) => eng.register_rows(ds, &plain),
                Err(source) => Err(HostError::Sealed {
                    path: data.display(location).display().to_string(),
                    source,
                }),
            },
        };
        let rows = match rows {
            Ok(r) => r,
            Err(e) => return ctx.refuse("decrypt", name, e),
        };
        if let Err(min_rows) = check_min_rows(contract, name, rows) {
            return ctx.refuse(
                "precondition",
                name,
                HostError::TooFewRows {
                    dataset: name.clone(),
                    rows,
                    min_rows,
                },
            );
        }
        ctx.ok(
            "decrypt",
            name,
            "ok",
            &format!("{rows} rows; views hold allowed fields only"),
        )?;
        input_rows.push((name.clone(), rows));
    }
    phases.push(("decrypt", t.elapsed()));

    let guards = EffectiveGuards::for_run(contract, &workload);
    let sealer = Sealer {
        room,
        contract,
        workload: &workload,
        digest: digest.hex(),
        run_id,
        insecure: *insecure,
    };
    let (outputs, rows, groups_dropped) = if let Some(module_digest) = &workload.module_digest {
        // 6m. The approved module, in the sandbox; then the guards on what it wrote.
        let t = Instant::now();
        let outcome = crate::module_run::run_module(
            cfg,
            room,
            &workload,
            module_digest,
            &eng,
            artifacts,
            &guards,
            &sealer,
            ctx,
        )
        .await?;
        phases.push(("module", t.elapsed()));
        outcome
    } else {
        let Some(sql) = workload.sql.clone() else {
            return ctx.refuse(
                "run",
                &wsubject,
                HostError::Usage("workload has no SQL and no module".into()),
            );
        };
        // 6. The approved SQL, then the guards.
        let t = Instant::now();
        let result = match eng.query(&sql, &guards).await {
            Ok(r) => r,
            Err(e) => return ctx.refuse("query", &wsubject, e),
        };
        phases.push(("query", t.elapsed() - result.guard_time));
        phases.push(("guard", result.guard_time));
        ctx.ok(
            "guard",
            &wsubject,
            "applied",
            &format!(
                "min_group_size {}: {} groups dropped, {} rows released (cap {})",
                guards.min_group_size, result.groups_dropped, result.rows, guards.max_output_rows
            ),
        )?;

        // 7. Seal to the recipients and commit atomically.
        let t = Instant::now();
        let (content, format) = match workload.output.format {
            OutputFormat::Csv => (engine::to_csv(&result.schema, &result.batches)?, "csv"),
            OutputFormat::Json => (engine::to_json_lines(&result.batches)?, "json"),
        };
        let columns = result
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let path = sealer.seal(
            &format!("outputs/{run_id}.cro"),
            &workload.output.recipients,
            &content,
            format,
            columns,
            result.rows,
            ctx,
        )?;
        phases.push(("seal", t.elapsed()));
        (vec![path], result.rows, result.groups_dropped)
    };
    Ok(RunReport {
        run_id: run_id.to_string(),
        outputs,
        rows,
        groups_dropped,
        input_rows,
        recipients: workload.output.recipients.clone(),
        insecure: *insecure,
        phases,
    })
}
