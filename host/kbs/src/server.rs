//! The broker's HTTPS server (axum over rustls, see [`crate::tls`]): the three KBS routes,
//! Cleanroom's governance route (members' signed suspend/resume messages), one error mapping.
//!
//! Robust against floods from unauthenticated clients: sessions are bounded per client and
//! in total and expire ([`CHALLENGE_TTL`], [`SESSION_TTL`]); each route caps its request
//! body; refusals are recorded in full (bounded text) only a few per route and minute and
//! counted beyond that; a challenge is used once; a release is recorded durably before the
//! key is sent, or refused.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;

use crate::error::KbsError;
use crate::events::{EventDecision, EventKind};
use crate::release::{self, Attested, Refusal};
use crate::store::Store;
use crate::tls::{self, Peer, TlsIdentity};
use cleanroom_formats::jwe;
use cleanroom_formats::kbs_protocol::{
    AttestResult, Attestation, AuditHead, AuthExtra, AuthRequest, Challenge, ChallengeExtra,
    ErrorBody, GOVERNANCE_PATH, GovernanceRequest, GovernanceResult, RefusalKind, SESSION_COOKIE,
};
use cleanroom_formats::keyfile;

/// How long an attested session lives (from its attestation).
pub const SESSION_TTL: Duration = Duration::from_secs(300);
/// How long a challenge waits for its attestation.
pub const CHALLENGE_TTL: Duration = Duration::from_secs(60);
/// Most sessions held at once: bounds what unauthenticated clients can make the broker hold.
pub const MAX_SESSIONS: usize = 4096;
/// Most sessions one client (an IPv4 address, an IPv6 /64) holds; its next `auth` evicts its
/// own oldest, so a flood from one client never fills the table for the others.
pub const MAX_SESSIONS_PER_CLIENT: usize = 16;
/// Most refusals recorded in full per route and minute; later ones are counted, and the
/// count is recorded as one row when the minute is over.
pub const MAX_RECORDED_REFUSALS_PER_MINUTE: u32 = 60;
/// The same bound, for the governance route.
pub const MAX_RECORDED_GOVERNANCE_REFUSALS_PER_MINUTE: u32 = MAX_RECORDED_REFUSALS_PER_MINUTE;
/// Request body caps, per route.
pub const AUTH_BODY_LIMIT: usize = 4 * 1024;
pub const ATTEST_BODY_LIMIT: usize = 8 * 1024 * 1024;
pub const GOVERNANCE_BODY_LIMIT: usize = 64 * 1024;
pub const RESOURCE_BODY_LIMIT: usize = 1024;
/// Longest subject or reason text a refusal row holds.
pub const MAX_RECORDED_TEXT: usize = 300;

/// Who a session belongs to, for the per-client bound.
type Client = IpAddr;

fn client_of(addr: SocketAddr) -> Client {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut o = v6.octets();
                o[8..].fill(0);
                IpAddr::V6(o.into())
            }
        },
        v4 => v4,
    }
}

struct Session {
    /// The challenge, until an attestation uses it (`None` afterwards).
    nonce: Option<String>,
    /// When the challenge was issued, or when the session attested.
    since: Instant,
    client: Client,
    attested: Option<Attested>,
}

impl Session {
    fn live(&self) -> bool {
        let ttl = if self.attested.is_some() {
            SESSION_TTL
        } else {
            CHALLENGE_TTL
        };
        self.since.elapsed() < ttl
    }
}

/// Refusals of one route in the current minute.
struct RefusalWindow {
    start: Instant,
    recorded: u32,
    counted: BTreeMap<RefusalKind, u64>,
}

struct BrokerState {
    store: Store,
    sessions: Mutex<HashMap<String, Session>>,
    refusals: Mutex<HashMap<EventKind, RefusalWindow>>,
}

/// Text from a request, fit for one event row: control characters replaced, at most
/// [`MAX_RECORDED_TEXT`] bytes.
fn bounded(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if out.len() + c.len_utf8() > MAX_RECORDED_TEXT {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { '?' } else { c });
    }
    out
}

impl BrokerState {
    /// Record a refusal: in full (bounded) for the first few per route and minute, then
    /// counted; the count of the previous minute is written when the next one starts.
    fn record_refusal(&self, event: EventKind, subject: &str, r: &Refusal) {
        let (full, summary) = {
            let mut all = self.refusals.lock().expect("lock");
            let w = all.entry(event).or_insert_with(|| RefusalWindow {
                start: Instant::now(),
                recorded: 0,
                counted: BTreeMap::new(),
            });
            let mut summary = None;
            if w.start.elapsed() >= Duration::from_secs(60) {
                if !w.counted.is_empty() {
                    let total: u64 = w.counted.values().sum();
                    let kinds: Vec<String> = w
                        .counted
                        .iter()
                        .map(|(k, n)| format!("{} {n}", kind_text(*k)))
                        .collect();
                    summary = Some(format!(
                        "{total} more refusals in the minute before, counted, not recorded in full: {}",
                        kinds.join(", ")
                    ));
                }
                *w = RefusalWindow {
                    start: Instant::now(),
                    recorded: 0,
                    counted: BTreeMap::new(),
                };
            }
            let full = w.recorded < MAX_RECORDED_REFUSALS_PER_MINUTE;
            if full {
                w.recorded += 1;
            } else {
                *w.counted.entry(r.kind()).or_insert(0) += 1;
            }
            (full, summary)
        };
        if let Some(s) = summary {
            let _ = self
                .store
                .record_event(event, "-", EventDecision::Counted, &s);
        }
        if full {
            let _ = self.store.record_event(
                event,
                &bounded(subject),
                EventDecision::Refused,
                &bounded(&r.to_string()),
            );
        }
    }

    fn refuse(&self, event: EventKind, subject: &str, r: &Refusal) -> Response {
        self.record_refusal(event, subject, r);
        refuse(r)
    }
}

fn kind_text(k: RefusalKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{k:?}"))
}

/// A running broker.
#[derive(Debug)]
pub struct RunningBroker {
    pub addr: SocketAddr,
    /// `https://ADDR`, or `http://ADDR` when serving plain HTTP on loopback.
    pub url: String,
    /// The pin of the certificate it serves (hex SPKI SHA-256), when serving TLS.
    pub spki_sha256: Option<String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    accept: tokio::task::JoinHandle<()>,
}

impl RunningBroker {
    /// Stop serving, wait for the server to finish and free the port.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
        self.accept.abort();
        let _ = (&mut self.accept).await;
    }
}

fn router(state: Arc<BrokerState>) -> Router {
    Router::new()
        .route(
            "/kbs/v0/auth",
            post(auth).layer(DefaultBodyLimit::max(AUTH_BODY_LIMIT)),
        )
        .route(
            "/kbs/v0/attest",
            post(attest).layer(DefaultBodyLimit::max(ATTEST_BODY_LIMIT)),
        )
        .route(
            "/kbs/v0/resource/{repo}/{ty}/{tag}",
            get(resource).layer(DefaultBodyLimit::max(RESOURCE_BODY_LIMIT)),
        )
        .route(
            GOVERNANCE_PATH,
            post(governance).layer(DefaultBodyLimit::max(GOVERNANCE_BODY_LIMIT)),
        )
        .with_state(state)
}

/// Serve on an already bound listener until `stop()`: HTTPS with `tls`, or plain HTTP,
/// which is refused unless the listener is on a loopback address.
pub fn spawn(
    store: Store,
    listener: tokio::net::TcpListener,
    tls: Option<&TlsIdentity>,
) -> Result<RunningBroker, KbsError> {
    let addr = listener.local_addr().map_err(|e| KbsError::Listen {
        what: e.to_string(),
    })?;
    let (config, spki) = match tls {
        Some(id) => (
            Some(id.server_config()?),
            Some(id.spki_sha256()?.to_string()),
        ),
        None if addr.ip().is_loopback() => (None, None),
        None => {
            return Err(KbsError::PlainHttpNotLoopback {
                addr: addr.to_string(),
            });
        }
    };
    let url = format!(
        "{}://{addr}",
        if config.is_some() { "https" } else { "http" }
    );
    let (incoming, accept) = tls::incoming(listener, config).map_err(|e| KbsError::Listen {
        what: e.to_string(),
    })?;
    let state = Arc::new(BrokerState {
        store,
        sessions: Mutex::new(HashMap::new()),
        refusals: Mutex::new(HashMap::new()),
    });
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = router(state).into_make_service_with_connect_info::<Peer>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(incoming, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    Ok(RunningBroker {
        addr,
        url,
        spki_sha256: spki,
        shutdown: Some(tx),
        task,
        accept,
    })
}

fn refuse(r: &Refusal) -> Response {
    (
        status_of(r),
        Json(ErrorBody {
            kind: r.kind(),
            detail: r.to_string(),
        }),
    )
        .into_response()
}

fn status_of(r: &Refusal) -> StatusCode {
    match r {
        Refusal::Malformed(_) => StatusCode::BAD_REQUEST,
        Refusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Refusal::UnknownResource { .. } => StatusCode::NOT_FOUND,
        Refusal::Store | Refusal::NotRecorded => StatusCode::INTERNAL_SERVER_ERROR,
        Refusal::TooManySessions => StatusCode::SERVICE_UNAVAILABLE,
        Refusal::NoSession
        | Refusal::NonceMismatch
        | Refusal::Evidence(_)
        | Refusal::NotAttested => StatusCode::UNAUTHORIZED,
        _ => StatusCode::FORBIDDEN,
    }
}

/// A body axum could not take: too large, or not the route's JSON. The body is not echoed.
fn rejected(rej: &JsonRejection, what: &str) -> Refusal {
    if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Refusal::TooLarge
    } else {
        Refusal::Malformed(format!("the body is not a {what} request"))
    }
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn auth(
    State(st): State<Arc<BrokerState>>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    body: Result<Json<AuthRequest>, JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(r)) => r,
        Err(rej) => return st.refuse(EventKind::Auth, "-", &rejected(&rej, "KBS auth")),
    };
    if !req.version.starts_with("0.") {
        return st.refuse(
            EventKind::Auth,
            "-",
            &Refusal::Malformed("unsupported protocol version".into()),
        );
    }
    // A Cleanroom room names its contract; the challenge answers with the newest audit
    // head seen for it, which the room's log must extend.
    let extra = match serde_json::from_value::<AuthExtra>(req.extra_params) {
        Ok(a) if is_digest(&a.contract_digest) => {
            let head = match st.store.audit_head(&a.contract_digest) {
                Ok(h) => h.map(|(seq, hash)| AuditHead { seq, hash }),
                Err(_) => return st.refuse(EventKind::Auth, "-", &Refusal::Store),
            };
            serde_json::to_value(ChallengeExtra { audit_head: head }).expect("serialises")
        }
        _ => serde_json::Value::String(String::new()),
    };
    let mut id = [0u8; 32];
    let mut nonce = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut id);
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let id = hex::encode(id);
    let nonce = B64.encode(nonce);
    let client = client_of(peer);
    {
        let mut s = st.sessions.lock().expect("lock");
        s.retain(|_, v| v.live());
        let mine: Vec<(&String, Instant)> = s
            .iter()
            .filter(|(_, v)| v.client == client)
            .map(|(k, v)| (k, v.since))
            .collect();
        if mine.len() >= MAX_SESSIONS_PER_CLIENT {
            let oldest = mine
                .iter()
                .min_by_key(|(_, since)| *since)
                .map(|(k, _)| (*k).clone());
            if let Some(k) = oldest {
                s.remove(&k);
            }
        }
        if s.len() >= MAX_SESSIONS {
            drop(s);
            return st.refuse(EventKind::Auth, "-", &Refusal::TooManySessions);
        }
        s.insert(
            id.clone(),
            Session {
                nonce: Some(nonce.clone()),
                since: Instant::now(),
                client,
                attested: None,
            },
        );
    }
    (
        [(
            header::SET_COOKIE,
            format!(
                "{SESSION_COOKIE}={id}; Path=/kbs; HttpOnly; Max-Age={}",
                SESSION_TTL.as_secs()
            ),
        )],
        Json(Challenge {
            nonce,
            extra_params: extra,
        }),
    )
        .into_response()
}

async fn attest(
    State(st): State<Arc<BrokerState>>,
    headers: HeaderMap,
    body: Result<Json<Attestation>, JsonRejection>,
) -> Response {
    let att = match body {
        Ok(Json(a)) => a,
        Err(rej) => return st.refuse(EventKind::Attest, "-", &rejected(&rej, "KBS attest")),
    };
    let digest = &att.runtime_data.contract_digest;
    let subject = if is_digest(digest) {
        format!("contract {digest}")
    } else {
        "contract (malformed digest)".to_string()
    };
    // The challenge is taken out of its session here: used once, whatever the outcome.
    let nonce = session_id(&headers).and_then(|id| {
        let mut s = st.sessions.lock().expect("lock");
        s.get_mut(&id)
            .filter(|v| v.live())
            .map(|v| (id.clone(), v.nonce.take()))
    });
    let (id, nonce) = match nonce {
        None => return st.refuse(EventKind::Attest, &subject, &Refusal::NoSession),
        Some((_, None)) => return st.refuse(EventKind::Attest, &subject, &Refusal::NonceMismatch),
        Some((id, Some(n))) => (id, n),
    };
    match release::attest(
        &st.store,
        &att,
        &nonce,
        cleanroom_formats::clock::now_unix(),
    ) {
        Ok(a) => {
            let result = AttestResult {
                platform: a.claims.platform.to_string(),
                insecure: a.claims.insecure,
                measurement: a.claims.measurement.clone(),
            };
            let _ = st.store.record_event(
                EventKind::Attest,
                &subject,
                EventDecision::Granted,
                &format!(
                    "platform {}{}",
                    result.platform,
                    if result.insecure {
                        " (INSECURE sim)"
                    } else {
                        ""
                    }
                ),
            );
            if let Some(s) = st.sessions.lock().expect("lock").get_mut(&id) {
                s.since = Instant::now();
                s.attested = Some(a);
            }
            Json(result).into_response()
        }
        Err(r) => st.refuse(EventKind::Attest, &subject, &r),
    }
}

async fn resource(
    State(st): State<Arc<BrokerState>>,
    headers: HeaderMap,
    Path((repo, ty, tag)): Path<(String, String, String)>,
) -> Response {
    let path = format!("{repo}/{ty}/{tag}");
    let attested = session_id(&headers).and_then(|id| {
        let s = st.sessions.lock().expect("lock");
        s.get(&id).filter(|v| v.live()).map(|v| v.attested.clone())
    });
    let attested = match attested {
        None => return st.refuse(EventKind::Release, &path, &Refusal::NoSession),
        Some(None) => return st.refuse(EventKind::Release, &path, &Refusal::NotAttested),
        Some(Some(a)) => a,
    };
    match release::release(&st.store, &attested, &path) {
        Ok(rel) => {
            // Durably recorded before the key leaves; a broker that cannot record refuses.
            let reason = match &rel.file_id {
                Some(f) => format!("attested and approved; sealed file {f}"),
                None => "attested and approved; no sealed file registered".to_string(),
            };
            if st
                .store
                .record_event(EventKind::Release, &path, EventDecision::Granted, &reason)
                .is_err()
            {
                return st.refuse(EventKind::Release, &path, &Refusal::NotRecorded);
            }
            let plain = match &rel.file_id {
                Some(f) => keyfile::released_to_json(&rel.key, &rel.dataset, f),
                None => keyfile::to_json(&rel.key, &rel.dataset),
            };
            Json(jwe::encrypt(attested.tee_pubkey(), &plain)).into_response()
        }
        Err(r) => st.refuse(EventKind::Release, &path, &r),
    }
}

/// `POST /cleanroom/v0/governance`: any member of a contract registered here suspends or
/// resumes key releases for it with a signed message. Unauthenticated by design: the
/// message's signature is the authentication.
async fn governance(
    State(st): State<Arc<BrokerState>>,
    body: Result<Json<GovernanceRequest>, JsonRejection>,
) -> Response {
    let req = match body {
        Ok(Json(r)) => r,
        Err(rej) => {
            return st.refuse(
                EventKind::Governance,
                "contract",
                &rejected(&rej, "governance"),
            );
        }
    };
    match release::record_governance(&st.store, &req.message) {
        Ok((member, state)) => {
            let suspended_by: Vec<String> = state.into_iter().map(|s| s.member).collect();
            let _ = st.store.record_event(
                EventKind::Governance,
                "contract",
                EventDecision::Recorded,
                &format!(
                    "message from `{member}`; suspended by: {}",
                    if suspended_by.is_empty() {
                        "nobody".to_string()
                    } else {
                        suspended_by.join(", ")
                    }
                ),
            );
            Json(GovernanceResult {
                member,
                suspended_by,
            })
            .into_response()
        }
        Err(r) => st.refuse(EventKind::Governance, "contract", &r),
    }
}
