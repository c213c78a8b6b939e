//! The broker's HTTP server (axum): the three KBS routes, Cleanroom's governance route
//! (members' signed suspend/resume messages), one error mapping.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;

use crate::release::{self, Attested, Refusal};
use crate::store::Store;
use cleanroom_formats::jwe;
use cleanroom_formats::kbs_protocol::{
    AttestResult, Attestation, AuthRequest, Challenge, ErrorBody, GOVERNANCE_PATH,
    GovernanceRequest, GovernanceResult, SESSION_COOKIE,
};
use cleanroom_formats::keyfile;

/// How long a session (and its nonce) lives.
pub const SESSION_TTL: Duration = Duration::from_secs(300);
/// Most concurrent sessions: bounds what unauthenticated clients can make the broker hold.
pub const MAX_SESSIONS: usize = 10_000;

struct Session {
    nonce: String,
    created: Instant,
    attested: Option<Attested>,
}

struct BrokerState {
    store: Store,
    sessions: Mutex<HashMap<String, Session>>,
    /// Refused governance messages recorded in the current minute (the route is open to
    /// anyone: without a bound, junk would grow the event table without limit).
    governance_refusals: Mutex<(Instant, u32)>,
}

/// Most refused governance messages recorded per minute; later ones are refused unrecorded.
pub const MAX_RECORDED_GOVERNANCE_REFUSALS_PER_MINUTE: u32 = 60;

impl BrokerState {
    /// Whether another refused governance message may be recorded now.
    fn may_record_governance_refusal(&self) -> bool {
        let mut w = self.governance_refusals.lock().expect("lock");
        if w.0.elapsed() >= Duration::from_secs(60) {
            *w = (Instant::now(), 0);
        }
        w.1 += 1;
        w.1 <= MAX_RECORDED_GOVERNANCE_REFUSALS_PER_MINUTE
    }
}

/// A running broker.
#[derive(Debug)]
pub struct RunningBroker {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningBroker {
    /// Stop serving and wait for the server to finish.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

fn router(state: Arc<BrokerState>) -> Router {
    Router::new()
        .route("/kbs/v0/auth", post(auth))
        .route("/kbs/v0/attest", post(attest))
        .route("/kbs/v0/resource/{repo}/{ty}/{tag}", get(resource))
        .route(GOVERNANCE_PATH, post(governance))
        .with_state(state)
}

/// Serve on an already bound listener until `stop()`.
pub fn spawn(store: Store, listener: tokio::net::TcpListener) -> std::io::Result<RunningBroker> {
    let addr = listener.local_addr()?;
    let state = Arc::new(BrokerState {
        store,
        sessions: Mutex::new(HashMap::new()),
        governance_refusals: Mutex::new((Instant::now(), 0)),
    });
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = router(state);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    Ok(RunningBroker {
        addr,
        shutdown: Some(tx),
        task,
    })
}

fn refuse(status: StatusCode, r: &Refusal) -> Response {
    (
        status,
        Json(ErrorBody {
            kind: r.kind().to_string(),
            detail: r.to_string(),
        }),
    )
        .into_response()
}

fn status_of(r: &Refusal) -> StatusCode {
    match r {
        Refusal::Malformed(_) => StatusCode::BAD_REQUEST,
        Refusal::UnknownResource { .. } => StatusCode::NOT_FOUND,
        Refusal::Store => StatusCode::INTERNAL_SERVER_ERROR,
        Refusal::NoSession
        | Refusal::NonceMismatch
        | Refusal::Evidence(_)
        | Refusal::NotAttested => StatusCode::UNAUTHORIZED,
        _ => StatusCode::FORBIDDEN,
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

async fn auth(State(st): State<Arc<BrokerState>>, Json(req): Json<AuthRequest>) -> Response {
    if !req.version.starts_with("0.") {
        return refuse(
            StatusCode::BAD_REQUEST,
            &Refusal::Malformed(format!("unsupported protocol version `{}`", req.version)),
        );
    }
    let mut id = [0u8; 32];
    let mut nonce = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut id);
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let id = hex::encode(id);
    let nonce = B64.encode(nonce);
    {
        let mut s = st.sessions.lock().expect("lock");
        s.retain(|_, v| v.created.elapsed() < SESSION_TTL);
        if s.len() >= MAX_SESSIONS {
            return (StatusCode::SERVICE_UNAVAILABLE, "too many sessions").into_response();
        }
        s.insert(
            id.clone(),
            Session {
                nonce: nonce.clone(),
                created: Instant::now(),
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
            extra_params: serde_json::Value::String(String::new()),
        }),
    )
        .into_response()
}

async fn attest(
    State(st): State<Arc<BrokerState>>,
    headers: HeaderMap,
    Json(att): Json<Attestation>,
) -> Response {
    let nonce = session_id(&headers).and_then(|id| {
        let s = st.sessions.lock().expect("lock");
        s.get(&id)
            .filter(|v| v.created.elapsed() < SESSION_TTL)
            .map(|v| (id.clone(), v.nonce.clone()))
    });
    let Some((id, nonce)) = nonce else {
        return refuse(StatusCode::UNAUTHORIZED, &Refusal::NoSession);
    };
    let subject = format!("contract {}", att.runtime_data.contract_digest);
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
                "attest",
                &subject,
                "granted",
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
                // The nonce is single-use: a second attest on this session must fail.
                s.nonce = String::new();
                s.attested = Some(a);
            }
            Json(result).into_response()
        }
        Err(r) => {
            let _ = st
                .store
                .record_event("attest", &subject, "refused", &r.to_string());
            if let Some(s) = st.sessions.lock().expect("lock").get_mut(&id) {
                s.nonce = String::new();
            }
            refuse(status_of(&r), &r)
        }
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
        s.get(&id)
            .filter(|v| v.created.elapsed() < SESSION_TTL)
            .map(|v| v.attested.clone())
    });
    let attested = match attested {
        None => return refuse(StatusCode::UNAUTHORIZED, &Refusal::NoSession),
        Some(None) => {
            let _ = st.store.record_event(
                "release",
                &path,
                "refused",
                &Refusal::NotAttested.to_string(),
            );
            return refuse(StatusCode::UNAUTHORIZED, &Refusal::NotAttested);
        }
        Some(Some(a)) => a,
    };
    match release::release(&st.store, &attested, &path) {
        Ok(key) => {
            let _ = st
                .store
                .record_event("release", &path, "granted", "attested and approved");
            let plain = keyfile::to_json(&key, &path);
            Json(jwe::encrypt(attested.tee_pubkey(), &plain)).into_response()
        }
        Err(r) => {
            let _ = st
                .store
                .record_event("release", &path, "refused", &r.to_string());
            refuse(status_of(&r), &r)
        }
    }
}

/// `POST /cleanroom/v0/governance`: any member of a contract registered here suspends or
/// resumes key releases for it with a signed message. Unauthenticated by design: the
/// message's signature is the authentication.
async fn governance(
    State(st): State<Arc<BrokerState>>,
    Json(req): Json<GovernanceRequest>,
) -> Response {
    match release::record_governance(&st.store, &req.message) {
        Ok((member, state)) => {
            let suspended_by: Vec<String> = state.into_iter().map(|s| s.member).collect();
            let _ = st.store.record_event(
                "governance",
                "contract",
                "recorded",
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
        Err(r) => {
            if st.may_record_governance_refusal() {
                let _ = st
                    .store
                    .record_event("governance", "contract", "refused", &r.to_string());
            }
            refuse(status_of(&r), &r)
        }
    }
}
