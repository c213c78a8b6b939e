//! The service's routes and the run worker. Every route is in [`ROUTES`], from which the
//! router is built and against which a test checks the OpenAPI document ([`OPENAPI`]).

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use cleanroom_formats::audit::{Decision, Step};
use cleanroom_formats::fsutil::{self, FileMode, Root};
use cleanroom_formats::room_protocol::{Accepted, MessageBody, RunAccepted};
use cleanroom_policy::SignedContract;
use cleanroom_policy::message::{MessageType, SignedMessage};
use cleanroom_policy::request::RunRequestPayload;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::ServeConfig;
use super::state::{RunRecord, RunState, Runs, WorkloadFiles, is_digest, workload_files};
use crate::audit::{AuditLog, Event, VerifiedLog};
use crate::error::Result;
use crate::requests::{self, RequestRefusal, message};
use crate::run::{Cancellation, RunConfig};

/// The OpenAPI 3.1 description of the routes (kept in `docs/api/openapi.json`).
pub const OPENAPI: &str = include_str!("../../../../docs/api/openapi.json");

/// Every route: (method, path in OpenAPI's template syntax).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/health"),
    ("get", "/v1/evidence"),
    ("get", "/v1/evidence/runs/{run}"),
    ("get", "/v1/audit"),
    ("get", "/v1/openapi.json"),
    ("post", "/v1/proposals"),
    ("get", "/v1/workloads/{digest}"),
    ("post", "/v1/approvals"),
    ("post", "/v1/runs"),
    ("get", "/v1/runs"),
    ("get", "/v1/runs/{id}"),
    ("post", "/v1/runs/cancel"),
    ("post", "/v1/outputs/fetch"),
    ("post", "/v1/governance"),
    ("put", "/v1/modules/{digest}"),
    ("get", "/v1/metrics"),
];

/// Largest Wasm component the service stores.
const MODULE_LIMIT: usize = 64 << 20;

/// Largest request body (a proposal carries a workload's text).
const BODY_LIMIT: usize = 1 << 20;

type Answer<T> = std::result::Result<T, RequestRefusal>;

/// The service's state shared by the routes and the worker.
pub struct Service {
    cfg: ServeConfig,
    contract: SignedContract,
    evidence_json: Vec<u8>,
    insecure: bool,
    jobs: mpsc::Sender<String>,
    runs: Mutex<Runs>,
    /// Held by whoever appends to the audit log (a request, or a run for its whole length);
    /// it keeps the log as this service last verified and wrote it, so a request does not
    /// read and verify the whole chain again (`AuditLog::reopen`).
    log: tokio::sync::Mutex<Option<VerifiedLog>>,
    /// Held while the governance file is rewritten.
    governance: tokio::sync::Mutex<()>,
    /// The cancellation handle of the run in flight, by run id.
    cancels: Mutex<std::collections::BTreeMap<String, Cancellation>>,
    /// Per (route, status): requests and seconds spent (`/v1/metrics`).
    requests: Mutex<std::collections::BTreeMap<(String, u16), (u64, f64)>>,
}

impl Service {
    pub(super) fn new(
        cfg: ServeConfig,
        contract: SignedContract,
        evidence_json: Vec<u8>,
        insecure: bool,
        jobs: mpsc::Sender<String>,
    ) -> Result<Self> {
        let runs = Runs::load(&cfg.state)?;
        Ok(Self {
            cfg,
            contract,
            evidence_json,
            insecure,
            jobs,
            runs: Mutex::new(runs),
            log: tokio::sync::Mutex::new(None),
            governance: tokio::sync::Mutex::new(()),
            cancels: Mutex::new(std::collections::BTreeMap::new()),
            requests: Mutex::new(std::collections::BTreeMap::new()),
        })
    }

    fn room(&self) -> Answer<Root> {
        Root::open(&self.cfg.state.join("room")).map_err(|_| RequestRefusal::Storage)
    }

    /// Append a request's entry to the audit log (under the log lock): `Ok(reason)` accepted,
    /// `Err(reason)` refused. With `replay_check`, an accepted request whose subject (it
    /// holds the nonce) an earlier accepted entry has is refused as a replay instead.
    async fn record(
        &self,
        step: Step,
        subject: &str,
        outcome: std::result::Result<String, String>,
        replay_check: bool,
    ) -> Answer<()> {
        let mut held = self.log.lock().await;
        let root = self.room()?;
        let mut log =
            AuditLog::reopen(&root, None, held.take()).map_err(|_| RequestRefusal::Storage)?;
        let appended = Self::append_request(&mut log, step, subject, outcome, replay_check);
        // Kept for the next request unless writing failed; then the next one opens in full.
        *held = match &appended {
            Err(RequestRefusal::Storage) => None,
            _ => log.close().ok().flatten(),
        };
        appended
    }

    fn append_request(
        log: &mut AuditLog<'_>,
        step: Step,
        subject: &str,
        outcome: std::result::Result<String, String>,
        replay_check: bool,
    ) -> Answer<()> {
        if replay_check
            && outcome.is_ok()
            && log.entries().iter().any(|e| {
                e.event == step && e.decision == Decision::Accepted && e.subject == subject
            })
        {
            log.append(Event {
                event: step,
                subject,
                decision: Decision::Refused,
                reason: &RequestRefusal::Replayed.to_string(),
            })
            .map_err(|_| RequestRefusal::Storage)?;
            return Err(RequestRefusal::Replayed);
        }
        let (decision, reason) = match outcome {
            Ok(r) => (Decision::Accepted, r),
            Err(r) => (Decision::Refused, r),
        };
        log.append(Event {
            event: step,
            subject,
            decision,
            reason: &reason,
        })
        .map_err(|_| RequestRefusal::Storage)
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut RunRecord)) {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = runs.records.get_mut(id) {
            f(r);
        }
        let _ = runs.save();
    }
}

fn now() -> u64 {
    cleanroom_formats::clock::now_unix()
}

fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Build the router from [`ROUTES`].
pub(super) fn router(service: Arc<Service>) -> axum::Router {
    let mut router = axum::Router::new();
    for (method, path) in ROUTES {
        router = router.route(path, handler(method, path));
    }
    router
        .route_layer(axum::middleware::from_fn_with_state(service.clone(), track))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(service)
}

/// Count each request and its time by route template and status (no path values, no
/// bodies: the metrics carry no data).
async fn track(
    State(s): State<Arc<Service>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let t = std::time::Instant::now();
    let resp = next.run(req).await;
    let mut m = s.requests.lock().unwrap_or_else(|p| p.into_inner());
    let e = m.entry((route, resp.status().as_u16())).or_default();
    e.0 += 1;
    e.1 += t.elapsed().as_secs_f64();
    resp
}

/// `GET /v1/metrics`: Prometheus text: runs by state, queue depth, requests and their
/// seconds by route and status. No data values.
async fn metrics(State(s): State<Arc<Service>>) -> Response {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(out, "# HELP cleanroom_runs Run records by state.");
    let _ = writeln!(out, "# TYPE cleanroom_runs gauge");
    let mut by_state = std::collections::BTreeMap::<&str, u64>::new();
    {
        let runs = s.runs.lock().unwrap_or_else(|p| p.into_inner());
        for r in runs.records.values() {
            let name = r.state.as_str();
            *by_state.entry(name).or_default() += 1;
        }
    }
    for (state, n) in &by_state {
        let _ = writeln!(out, "cleanroom_runs{{state=\"{state}\"}} {n}");
    }
    let _ = writeln!(out, "# HELP cleanroom_queue_depth Runs waiting.");
    let _ = writeln!(out, "# TYPE cleanroom_queue_depth gauge");
    let _ = writeln!(
        out,
        "cleanroom_queue_depth {}",
        s.jobs.max_capacity() - s.jobs.capacity()
    );
    let _ = writeln!(
        out,
        "# HELP cleanroom_requests_total Requests by route and status."
    );
    let _ = writeln!(out, "# TYPE cleanroom_requests_total counter");
    let _ = writeln!(
        out,
        "# HELP cleanroom_request_seconds_total Seconds spent answering."
    );
    let _ = writeln!(out, "# TYPE cleanroom_request_seconds_total counter");
    let m = s.requests.lock().unwrap_or_else(|p| p.into_inner());
    for ((route, status), (n, secs)) in m.iter() {
        let _ = writeln!(
            out,
            "cleanroom_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
        );
        let _ = writeln!(
            out,
            "cleanroom_request_seconds_total{{route=\"{route}\",status=\"{status}\"}} {secs:.6}"
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

fn handler(method: &str, path: &str) -> MethodRouter<Arc<Service>> {
    match (method, path) {
        ("get", "/v1/health") => get(health),
        ("get", "/v1/evidence") => get(evidence),
        ("get", "/v1/evidence/runs/{run}") => get(run_evidence),
        ("get", "/v1/audit") => get(audit),
        ("get", "/v1/openapi.json") => get(openapi),
        ("post", "/v1/proposals") => post(propose),
        ("get", "/v1/workloads/{digest}") => get(workload),
        ("post", "/v1/approvals") => post(approve),
        ("post", "/v1/runs") => post(run),
        ("get", "/v1/runs") => get(runs),
        ("get", "/v1/runs/{id}") => get(run_status),
        ("post", "/v1/runs/cancel") => post(cancel_run),
        ("post", "/v1/outputs/fetch") => post(fetch_output),
        ("post", "/v1/governance") => post(governance),
        ("get", "/v1/metrics") => get(metrics),
        ("put", "/v1/modules/{digest}") => axum::routing::put(store_module)
            .layer(axum::extract::DefaultBodyLimit::max(MODULE_LIMIT)),
        (m, p) => unreachable!("route {m} {p} is in ROUTES without a handler"),
    }
}

async fn health(State(s): State<Arc<Service>>) -> Response {
    Json(serde_json::json!({
        "status": "ok",
        "contract_digest": s.contract.digest().hex(),
        "insecure": s.insecure,
    }))
    .into_response()
}

async fn evidence(State(s): State<Arc<Service>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        s.evidence_json.clone(),
    )
        .into_response()
}

/// A run's evidence bundle (what `audit verify --evidence` ties each checkpoint to).
async fn run_evidence(State(s): State<Arc<Service>>, Path(run): Path<String>) -> Answer<Response> {
    let valid = run.len() <= 64 && run.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let unknown = || RequestRefusal::UnknownRun {
        id: run.chars().take(64).collect(),
    };
    if !valid {
        return Err(unknown());
    }
    let bytes = s
        .room()?
        .read(&format!("evidence/{run}.json"))
        .map_err(|_| unknown())?;
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

async fn audit(State(s): State<Arc<Service>>) -> Answer<Response> {
    let _held = s.log.lock().await;
    let text = s
        .room()?
        .read(cleanroom_formats::audit::LOG_FILE)
        .map_err(|_| RequestRefusal::Storage)?;
    Ok(([(header::CONTENT_TYPE, "application/jsonl")], text).into_response())
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// `POST /v1/proposals`: a `workload-propose` by an allowed proposer; the workload and the
/// proposal are kept under the workload's digest.
async fn propose(
    State(s): State<Arc<Service>>,
    body: std::result::Result<Json<MessageBody>, JsonRejection>,
) -> Answer<Json<Accepted>> {
    let outcome = (|| -> Answer<(String, String, String)> {
        let msg = message(body)?;
        let p = cleanroom_policy::proposal::open(&s.contract, &msg)?;
        let digest = p.payload.workload_digest.clone();
        let f = workload_files(&s.cfg.state, &digest);
        let write = |path: &std::path::Path, bytes: &[u8]| {
            fsutil::write_file_atomic(path, bytes, FileMode::Public)
                .map_err(|_| RequestRefusal::Storage)
        };
        write(&f.workload, p.payload.workload_toml.as_bytes())?;
        write(&f.proposal, format!("{}\n", msg.to_base64()).as_bytes())?;
        Ok((p.proposer, p.workload.name, digest))
    })();
    let subject = match &outcome {
        Ok((member, name, digest)) => format!("proposal of {name} ({digest}) by {member}"),
        Err(_) => "proposal".to_string(),
    };
    let recorded = match &outcome {
        Ok(_) => Ok("verified and stored".to_string()),
        Err(e) => Err(e.to_string()),
    };
    s.record(Step::Proposal, &subject, recorded, false).await?;
    let (member, _, digest) = outcome?;
    Ok(Json(Accepted {
        member,
        workload_digest: digest,
    }))
}

/// Add `msg` to a file of signed messages (one base64 message per line, the format
/// `cleanroom_formats::load::read_messages` reads) unless it is there already; the file is
/// rewritten atomically.
fn append_message(path: &std::path::Path, msg: &SignedMessage) -> Answer<()> {
    let mut text = if path.exists() {
        fsutil::read_text(path).map_err(|_| RequestRefusal::Storage)?
    } else {
        String::new()
    };
    let line = msg.to_base64();
    if text.lines().any(|l| l.trim() == line) {
        return Ok(());
    }
    text.push_str(&line);
    text.push('\n');
    fsutil::write_file_atomic(path, text.as_bytes(), FileMode::Public)
        .map_err(|_| RequestRefusal::Storage)
}

/// `GET /v1/workloads/{digest}`: a stored workload's text and proposal, for the owners
/// who review and approve it.
async fn workload(State(s): State<Arc<Service>>, Path(digest): Path<String>) -> Answer<Response> {
    let f = stored(&s, &digest)?;
    let text = fsutil::read_text(&f.workload).map_err(|_| RequestRefusal::Storage)?;
    let proposal = fsutil::read_text(&f.proposal).map_err(|_| RequestRefusal::Storage)?;
    Ok(Json(serde_json::json!({
        "workload_digest": digest,
        "workload_toml": text,
        "proposal": proposal.trim(),
    }))
    .into_response())
}

fn stored(s: &Service, digest: &str) -> Answer<WorkloadFiles> {
    let f = workload_files(&s.cfg.state, digest);
    if !is_digest(digest) || !f.workload.exists() {
        return Err(RequestRefusal::UnknownWorkload {
            digest: digest.chars().take(64).collect(),
        });
    }
    Ok(f)
}

/// `POST /v1/approvals`: a member's `workload-approve` of a stored workload (optionally
/// with an expiry and a run cap), or its `workload-revoke`, appended to the workload's
/// approvals (every run checks that each input's owner holds an approval in force).
async fn approve(
    State(s): State<Arc<Service>>,
    body: std::result::Result<Json<MessageBody>, JsonRejection>,
) -> Answer<Json<Accepted>> {
    let outcome = (|| -> Answer<(String, String, SignedMessage, WorkloadFiles)> {
        let msg = message(body)?;
        let (member, digest) = requests::verify_approval(&s.contract, &msg)?;
        let f = stored(&s, &digest)?;
        let workload = cleanroom_formats::load::load_workload(&f.workload)
            .map_err(|_| RequestRefusal::Storage)?;
        if workload.digest().hex() != digest {
            return Err(RequestRefusal::Storage);
        }
        Ok((member, digest, msg, f))
    })();
    let subject = match &outcome {
        Ok((member, digest, msg, _)) if msg.message_type == MessageType::WorkloadRevoke => {
            cleanroom_formats::audit::revocation_subject(
                digest,
                member,
                &hex::encode(Sha256::digest(msg.to_base64())),
            )
        }
        Ok((member, digest, ..)) => format!("approval of {digest} by {member}"),
        Err(_) => "approval".to_string(),
    };
    let recorded = match &outcome {
        Ok(_) => Ok("verified and stored".to_string()),
        Err(e) => Err(e.to_string()),
    };
    // A revocation goes into the approvals at once (a run reads them when it starts), then
    // into the log, which every later run checks against the approvals it reads.
    if let Ok((_, _, msg, f)) = &outcome
        && msg.message_type == MessageType::WorkloadRevoke
    {
        append_message(&f.approvals, msg)?;
    }
    s.record(Step::Approval, &subject, recorded, false).await?;
    let (member, digest, msg, f) = outcome?;
    if msg.message_type != MessageType::WorkloadRevoke {
        append_message(&f.approvals, &msg)?;
    }
    Ok(Json(Accepted {
        member,
        workload_digest: digest,
    }))
}

/// `POST /v1/runs`: a fresh `run-request` by the workload's proposer or an owner of one of
/// its inputs, its nonce never accepted before; queued.
async fn run(
    State(s): State<Arc<Service>>,
    body: std::result::Result<Json<MessageBody>, JsonRejection>,
) -> Answer<Json<RunAccepted>> {
    let outcome = (|| -> Answer<(String, RunRequestPayload)> {
        let msg = message(body)?;
        // The workload named in the payload, to verify the request against.
        let fresh =
            requests::verify_run_request(&s.contract, &msg, now(), s.cfg.freshness, |digest| {
                let f = stored(&s, digest)?;
                let workload = cleanroom_formats::load::load_workload(&f.workload)
                    .map_err(|_| RequestRefusal::Storage)?;
                let proposer = cleanroom_formats::load::read_proposal(&f.proposal)
                    .ok()
                    .flatten()
                    .and_then(|p| cleanroom_policy::proposal::open(&s.contract, &p).ok())
                    .map(|p| p.proposer);
                Ok((workload, proposer))
            })?;
        Ok((fresh.member().to_string(), fresh.payload().clone()))
    })();
    let subject = match &outcome {
        Ok((member, p)) => format!("run-request {member} {}", p.nonce),
        Err(_) => "run-request".to_string(),
    };
    let recorded = match &outcome {
        Ok((_, p)) => Ok(format!(
            "fresh, signed, allowed; workload {}",
            p.workload_digest
        )),
        Err(e) => Err(e.to_string()),
    };
    s.record(Step::Run, &subject, recorded, true).await?;
    let (member, payload) = outcome?;
    let id = format!("q-{}", random_hex(8));
    {
        let mut runs = s.runs.lock().unwrap_or_else(|p| p.into_inner());
        runs.records.insert(
            id.clone(),
            RunRecord {
                id: id.clone(),
                workload_digest: payload.workload_digest,
                requested_by: member,
                state: RunState::Queued,
                run_id: None,
                outputs: vec![],
                cause: None,
            },
        );
        runs.save().map_err(|_| RequestRefusal::Storage)?;
    }
    if s.jobs.try_send(id.clone()).is_err() {
        s.update(&id, |r| {
            r.state = RunState::Refused;
            r.cause = Some("the run queue was full".into());
        });
        return Err(RequestRefusal::QueueFull { max: s.cfg.queue });
    }
    Ok(Json(RunAccepted {
        id,
        state: "queued".into(),
    }))
}

async fn runs(State(s): State<Arc<Service>>) -> Response {
    let runs = s.runs.lock().unwrap_or_else(|p| p.into_inner());
    Json(runs.records.values().cloned().collect::<Vec<_>>()).into_response()
}

async fn run_status(State(s): State<Arc<Service>>, Path(id): Path<String>) -> Answer<Response> {
    let runs = s.runs.lock().unwrap_or_else(|p| p.into_inner());
    runs.records
        .get(&id)
        .map(|r| Json(r.clone()).into_response())
        .ok_or(RequestRefusal::UnknownRun {
            id: id.chars().take(64).collect(),
        })
}

/// `POST /v1/runs/cancel`: a fresh `run-cancel` by who requested the run or an owner of one
/// of its inputs. Only a queued run can be cancelled (it then never starts: no key is
/// requested for it); a running one finishes or is refused by its own checks.
async fn cancel_run(
    State(s): State<Arc<Service>>,
    body: std::result::Result<Json<MessageBody>, JsonRejection>,
) -> Answer<Response> {
    let outcome = (|| -> Answer<(String, String, String)> {
        let msg = message(body)?;
        let (fresh, record) =
            requests::verify_run_cancel(&s.contract, &msg, now(), s.cfg.freshness, |run| {
                let record = {
                    let runs = s.runs.lock().unwrap_or_else(|p| p.into_inner());
                    runs.records.get(run).cloned()
                }
                .ok_or_else(|| RequestRefusal::UnknownRun {
                    id: run.chars().take(64).collect(),
                })?;
                let f = stored(&s, &record.workload_digest)?;
                let workload = cleanroom_formats::load::load_workload(&f.workload)
                    .map_err(|_| RequestRefusal::Storage)?;
                Ok((record, workload))
            })?;
        Ok((
            fresh.member().to_string(),
            fresh.payload().nonce.clone(),
            record.id,
        ))
    })();
    let subject = match &outcome {
        Ok((member, nonce, _)) => format!("run-cancel {member} {nonce}"),
        Err(_) => "run-cancel".to_string(),
    };
    // Applied at once, not after the audit log is free: a run in flight holds the log for
    // its whole length, and a cancellation is for that run. A queued run is marked
    // cancelled (the worker skips it); a running one is told through its handle and stops,
    // refused and audited, before it seals.
    let applied: Answer<RunRecord> = match &outcome {
        Ok((member, _, id)) => {
            let mut runs = s.runs.lock().unwrap_or_else(|p| p.into_inner());
            let cancels = s.cancels.lock().unwrap_or_else(|p| p.into_inner());
            match runs.records.get_mut(id) {
                Some(r) if r.state == RunState::Queued => {
                    r.state = RunState::Cancelled;
                    r.cause = Some(format!("cancelled by `{member}` while queued"));
                    let r = r.clone();
                    runs.save().map_err(|_| RequestRefusal::Storage)?;
                    Ok(r)
                }
                Some(r) if r.state == RunState::Running && cancels.contains_key(id) => {
                    if let Some(c) = cancels.get(id) {
                        c.cancel(member);
                    }
                    Ok(r.clone())
                }
                Some(r) => Err(RequestRefusal::RunNotCancellable {
                    id: id.clone(),
                    state: r.state.as_str(),
                }),
                None => Err(RequestRefusal::UnknownRun { id: id.clone() }),
            }
        }
        Err(e) => Err(RequestRefusal::Malformed(e.to_string())),
    };
    let recorded = match (&outcome, &applied) {
        (Ok((.., id)), Ok(_)) => Ok(format!("run {id} cancellation applied")),
        (Err(e), _) => Err(e.to_string()),
        (_, Err(e)) => Err(e.to_string()),
    };
    // Recorded once the log is free (a replayed cancellation of the same run changes
    // nothing: a cancelled run never runs again).
    let recorder = Arc::clone(&s);
    tokio::spawn(async move {
        let _ = recorder.record(Step::Run, &subject, recorded, false).await;
    });
    outcome?;
    Ok(Json(applied?).into_response())
}

/// `POST /v1/outputs/fetch`: a fresh `output-fetch` by one of the output's recipients.
async fn fetch_output(
    State(s): State<Arc<Service>>,
    body: std::result::Result<Json<MessageBody>, JsonRejection>,
) -> Answer<Response> {
    let outcome = (|| -> Answer<(String, String, String, Vec<u8>)> {
        let msg = message(body)?;
        let fresh = requests::verify_fetch(&s.contract, &msg, now(), s.cfg.freshness)?;
        let name = fresh.payload().output.clone();
        let member = fresh.member().to_string();
        let bytes = s
            .room()?
            .read(&format!("outputs/{name}"))
            .map_err(|_| RequestRefusal::UnknownOutput { name: name.clone() })?;
        let (_, recipients) =
            cleanroom_formats::envelope::inspect(&bytes).map_err(|_| RequestRefusal::Storage)?;
        if !recipients.iter().any(|r| r == &member) {
            return Err(RequestRefusal::NotARecipient { member, name });
        }
        Ok((member, fresh.payload().nonce.clone(), name, bytes))
    })();
    let subject = match &outcome {
        Ok((member, nonce, ..)) => format!("output-fetch {member} {nonce}"),
        Err(_) => "output-fetch".to_string(),
    };
    let recorded = match &outcome {
        Ok((.., name, _)) => Ok(format!("outputs/{name} sent to a recipient")),
        Err(e) => Err(e.to_string()),
    };
    s.record(Step::Output, &subject, recorded, true).await?;
    let (.., bytes) = outcome?;
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Bytes::from(bytes),
    )
        .into_response())
}

/// `POST /v1/governance`: a member's `suspend` or `resume`, kept in the room's governance
/// file (which every run checks when it starts and before it seals). Deliver it to the
/// brokers as well (`cleanroom governance suspend`): they stop releasing keys on their own.
async fn governance(
    State(s): State<Arc<Service>>,
    body: std::result::Result<Json<MessageBody>, JsonRejection>,
) -> Answer<Json<serde_json::Value>> {
    let outcome = (|| -> Answer<(String, SignedMessage)> {
        let msg = message(body)?;
        let member = cleanroom_policy::governance::verify(&s.contract, &msg)?;
        Ok((member, msg))
    })();
    let subject = match &outcome {
        Ok((member, msg)) => format!("{} by {member}", msg.message_type.as_str()),
        Err(_) => "governance".to_string(),
    };
    let recorded = match &outcome {
        Ok(_) => Ok("verified and recorded".to_string()),
        Err(e) => Err(e.to_string()),
    };
    let file = s
        .cfg
        .state
        .join("room")
        .join(cleanroom_formats::load::GOVERNANCE_FILE);
    // Into the governance file at once, without waiting for the audit log (a run in flight
    // holds it, and checks this file again before it seals).
    if let Ok((_, msg)) = &outcome {
        let _held = s.governance.lock().await;
        append_message(&file, msg)?;
    }
    s.record(Step::Suspension, &subject, recorded, false)
        .await?;
    let (member, _) = outcome?;
    let messages =
        cleanroom_formats::load::read_messages(&file).map_err(|_| RequestRefusal::Storage)?;
    let suspended: Vec<String> = cleanroom_policy::governance::suspensions(&s.contract, &messages)
        .map_err(RequestRefusal::Policy)?
        .into_iter()
        .map(|x| x.member)
        .collect();
    Ok(Json(
        serde_json::json!({ "member": member, "suspended_by": suspended }),
    ))
}

/// `PUT /v1/modules/{digest}`: the Wasm component a stored (signed) proposal names by its
/// SHA-256. Content-addressed: bytes with another digest, or a digest no proposal names,
/// are refused; the run checks the digest again before it compiles anything.
async fn store_module(
    State(s): State<Arc<Service>>,
    Path(digest): Path<String>,
    body: Bytes,
) -> Answer<Json<serde_json::Value>> {
    let outcome = (|| -> Answer<()> {
        if !is_digest(&digest) || crate::sandbox::digest_hex(&body) != digest {
            return Err(RequestRefusal::Malformed(
                "the component's SHA-256 is not the digest in the path".into(),
            ));
        }
        let named = std::fs::read_dir(s.cfg.state.join("workloads"))
            .map_err(|_| RequestRefusal::Storage)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .filter_map(|p| cleanroom_formats::load::load_workload(&p).ok())
            .any(|w| w.module_digest.as_deref() == Some(digest.as_str()));
        if !named {
            return Err(RequestRefusal::UnknownWorkload {
                digest: digest.chars().take(64).collect(),
            });
        }
        s.room()?
            .write_atomic(&format!("modules/{digest}.wasm"), &body, FileMode::Public)
            .map_err(|_| RequestRefusal::Storage)
    })();
    let recorded = match &outcome {
        Ok(()) => Ok(format!("{} bytes stored", body.len())),
        Err(e) => Err(e.to_string()),
    };
    let subject = format!("component {}", digest.chars().take(64).collect::<String>());
    s.record(Step::Module, &subject, recorded, false).await?;
    outcome?;
    Ok(Json(serde_json::json!({ "module_digest": digest })))
}

/// Run the queued runs one at a time, with the same stages as `cleanroom-room run`.
pub(super) async fn worker(s: Arc<Service>, mut rx: mpsc::Receiver<String>) {
    while let Some(id) = rx.recv().await {
        let held = s.log.lock().await;
        // Take the run only if it is still queued (a cancelled run never starts).
        let cancel = Cancellation::default();
        let digest = {
            let mut runs = s.runs.lock().unwrap_or_else(|p| p.into_inner());
            match runs.records.get_mut(&id) {
                Some(r) if r.state == RunState::Queued => {
                    r.state = RunState::Running;
                    let digest = r.workload_digest.clone();
                    let _ = runs.save();
                    s.cancels
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id.clone(), cancel.clone());
                    digest
                }
                _ => continue,
            }
        };
        let f = workload_files(&s.cfg.state, &digest);
        let cfg = RunConfig {
            contract: s.cfg.contract.clone(),
            contract_sigs: s.cfg.contract_sigs.clone(),
            workload: f.workload,
            approvals: f.approvals,
            proposal: f.proposal,
            room_dir: s.cfg.state.join("room"),
            data_dir: s.cfg.data.clone(),
            evidence: s.cfg.evidence.clone(),
            memory_limit: s.cfg.memory_limit,
            module: None,
            cancel: Some(cancel),
        };
        let result = crate::run::run(&cfg).await;
        drop(held);
        s.cancels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        s.update(&id, |r| match result {
            Ok(report) => {
                r.state = RunState::Committed;
                r.run_id = Some(report.run_id);
                r.outputs = report
                    .outputs
                    .iter()
                    .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .collect();
            }
            Err(e @ crate::RoomError::Cancelled { .. }) => {
                r.state = RunState::Cancelled;
                r.cause = Some(e.to_string());
            }
            Err(e) => {
                r.state = RunState::Refused;
                r.cause = Some(e.to_string());
            }
        });
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every route the router registers is described in the OpenAPI document, and every
    /// described route is registered: adding a route without its description fails here.
    #[test]
    fn openapi_describes_exactly_the_registered_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let described: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, ops)| {
                ops.as_object()
                    .unwrap()
                    .keys()
                    .map(move |m| (m.clone(), path.clone()))
            })
            .collect();
        let registered: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(described, registered);
        // And each registered route has a handler (the router builds).
        for (m, p) in ROUTES {
            let _ = handler(m, p);
        }
    }
}
