//! The room service's signed requests as its routes read and check them, before anything
//! changes: the body (`{"message": "<base64 COSE_Sign1>"}`), the message in it, and each
//! route's checks of signature, membership, freshness and payload against the contract at a
//! given time. The handlers (`service`) call these with the service's clock and stored
//! state; the fuzz target `room_api` (`fuzz/src/room.rs`) calls the same functions with a
//! fixed contract, time and state, and `tests/fuzz_corpus.rs` replays its corpus through
//! them.
//!
//! Which check each route makes, in order:
//! - `POST /v1/proposals`: [`signed_message`], then [`cleanroom_policy::proposal::open`].
//! - `POST /v1/approvals`: [`signed_message`], [`verify_approval`], then the workload it
//!   names must be stored.
//! - `POST /v1/runs`: [`signed_message`], [`verify_run_request`] (the stored workload it
//!   names and its proposer looked up by the caller).
//! - `POST /v1/runs/cancel`: [`signed_message`], [`verify_run_cancel`] (the run and its
//!   workload looked up by the caller).
//! - `POST /v1/outputs/fetch`: [`signed_message`], [`verify_fetch`], then the member must be
//!   among the stored output's recipients.
//! - `POST /v1/governance`: [`signed_message`], then [`cleanroom_policy::governance::verify`].

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cleanroom_formats::room_protocol::{ErrorBody, MessageBody, RoomRefusalKind};
use cleanroom_policy::PolicyError;
use cleanroom_policy::SignedContract;
use cleanroom_policy::message::{MessageType, SignedMessage};
use cleanroom_policy::request::{
    self, Fresh, OutputFetchPayload, RunCancelPayload, RunRequestPayload,
};
use cleanroom_policy::workload::{ApprovalPayload, RevocationPayload, Workload};

use crate::service::RunRecord;

/// Why the service refused a request. `kind()` is the stable wire `type`.
#[derive(Debug, thiserror::Error)]
pub enum RequestRefusal {
    #[error("request is malformed: {0}")]
    Malformed(String),
    #[error("{0}")]
    Policy(PolicyError),
    #[error("the request's nonce was seen before: a replay")]
    Replayed,
    #[error("no workload {digest} here: propose it first")]
    UnknownWorkload { digest: String },
    #[error("no output `{name}`")]
    UnknownOutput { name: String },
    #[error("member `{member}` is not a recipient of output `{name}`")]
    NotARecipient { member: String, name: String },
    #[error("no run `{id}`")]
    UnknownRun { id: String },
    #[error("run `{id}` is {state} and can no longer be cancelled")]
    RunNotCancellable { id: String, state: &'static str },
    #[error("the run queue is full ({max} waiting); try again later")]
    QueueFull { max: usize },
    #[error("room storage error")]
    Storage,
}

impl RequestRefusal {
    pub fn kind(&self) -> RoomRefusalKind {
        match self {
            RequestRefusal::Malformed(_) => RoomRefusalKind::MalformedRequest,
            RequestRefusal::Policy(p) => match p {
                PolicyError::SignerNotAMember { .. } => RoomRefusalKind::NotAMember,
                PolicyError::BadSignature { .. } => RoomRefusalKind::BadSignature,
                PolicyError::StaleRequest { .. } => RoomRefusalKind::StaleRequest,
                PolicyError::RunNotAllowed { .. } => RoomRefusalKind::RunNotAllowed,
                PolicyError::CancelNotAllowed { .. } => RoomRefusalKind::CancelNotAllowed,
                PolicyError::WrongMessageType { .. } | PolicyError::MalformedMessage { .. } => {
                    RoomRefusalKind::MalformedRequest
                }
                _ => RoomRefusalKind::PolicyRefused,
            },
            RequestRefusal::Replayed => RoomRefusalKind::Replayed,
            RequestRefusal::UnknownWorkload { .. } => RoomRefusalKind::UnknownWorkload,
            RequestRefusal::UnknownOutput { .. } => RoomRefusalKind::UnknownOutput,
            RequestRefusal::NotARecipient { .. } => RoomRefusalKind::NotARecipient,
            RequestRefusal::UnknownRun { .. } => RoomRefusalKind::UnknownRun,
            RequestRefusal::RunNotCancellable { .. } => RoomRefusalKind::RunNotCancellable,
            RequestRefusal::QueueFull { .. } => RoomRefusalKind::QueueFull,
            RequestRefusal::Storage => RoomRefusalKind::Internal,
        }
    }

    /// The HTTP status the refusal is answered with.
    pub fn status(&self) -> StatusCode {
        match self.kind() {
            RoomRefusalKind::MalformedRequest => StatusCode::BAD_REQUEST,
            RoomRefusalKind::NotAMember | RoomRefusalKind::BadSignature => StatusCode::UNAUTHORIZED,
            RoomRefusalKind::StaleRequest
            | RoomRefusalKind::Replayed
            | RoomRefusalKind::RunNotCancellable => StatusCode::CONFLICT,
            RoomRefusalKind::UnknownWorkload
            | RoomRefusalKind::UnknownOutput
            | RoomRefusalKind::UnknownRun => StatusCode::NOT_FOUND,
            RoomRefusalKind::QueueFull => StatusCode::SERVICE_UNAVAILABLE,
            RoomRefusalKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::FORBIDDEN,
        }
    }
}

impl From<PolicyError> for RequestRefusal {
    fn from(e: PolicyError) -> Self {
        RequestRefusal::Policy(e)
    }
}

impl IntoResponse for RequestRefusal {
    fn into_response(self) -> Response {
        (
            self.status(),
            Json(ErrorBody {
                kind: self.kind(),
                detail: self.to_string(),
            }),
        )
            .into_response()
    }
}

type Answer<T> = std::result::Result<T, RequestRefusal>;

/// The signed message of a request body, not yet verified: the JSON `{"message": "<base64
/// COSE_Sign1>"}` as axum's `Json` extractor reads it once the content type is JSON
/// ([`Json::from_bytes`]), then the base64 COSE_Sign1 message in it.
pub fn signed_message(body: &[u8]) -> Answer<SignedMessage> {
    message(Json::<MessageBody>::from_bytes(body))
}

/// [`signed_message`] on what the `Json` extractor gave a handler.
pub(crate) fn message(
    body: std::result::Result<Json<MessageBody>, JsonRejection>,
) -> Answer<SignedMessage> {
    let Json(b) = body.map_err(|e| RequestRefusal::Malformed(e.body_text()))?;
    SignedMessage::from_base64(&b.message).map_err(RequestRefusal::Policy)
}

/// `POST /v1/approvals`: a member's `workload-approve` (or `workload-revoke`) signed with
/// its key, with a well-formed payload. Returns the member and the workload digest the
/// payload names (whether that workload is stored is the caller's check).
pub fn verify_approval(contract: &SignedContract, msg: &SignedMessage) -> Answer<(String, String)> {
    let revoke = msg.message_type == MessageType::WorkloadRevoke;
    let kind = if revoke {
        MessageType::WorkloadRevoke
    } else {
        MessageType::WorkloadApprove
    };
    let member = contract
        .contract()
        .verify_member_message(msg, kind)?
        .name
        .get_ref()
        .clone();
    let digest = if revoke {
        RevocationPayload::from_bytes(&msg.payload).map(|p| p.workload_digest)
    } else {
        ApprovalPayload::from_bytes(&msg.payload).map(|p| p.workload_digest)
    }
    .ok_or_else(|| {
        RequestRefusal::Malformed(format!(
            "{} payload from `{member}` is malformed",
            kind.as_str()
        ))
    })?;
    Ok((member, digest))
}

/// `POST /v1/runs`: the payload's workload digest is read first (before the signature is
/// checked: the request is verified against that workload), `stored` gives that workload
/// and its proposer (or refuses: unknown workload, storage), then
/// [`request::run_request`] checks signature, membership, freshness (`now`, `window`), the
/// nonce and who may run it.
pub fn verify_run_request(
    contract: &SignedContract,
    msg: &SignedMessage,
    now: u64,
    window: u64,
    stored: impl FnOnce(&str) -> Answer<(Workload, Option<String>)>,
) -> Answer<Fresh<RunRequestPayload>> {
    let claimed: RunRequestPayload = serde_json::from_slice(&msg.payload)
        .map_err(|e| RequestRefusal::Malformed(format!("run-request payload: {e}")))?;
    let (workload, proposer) = stored(&claimed.workload_digest)?;
    Ok(request::run_request(
        contract,
        msg,
        &workload,
        proposer.as_deref(),
        now,
        window,
    )?)
}

/// `POST /v1/runs/cancel`: the payload's run id is read first, `stored` gives that run's
/// record and its workload (or refuses: unknown run, unknown workload, storage), then
/// [`request::run_cancel`] checks signature, membership, freshness and who may cancel it.
/// Whether the run can still be cancelled is the caller's (it changes as runs proceed).
pub fn verify_run_cancel(
    contract: &SignedContract,
    msg: &SignedMessage,
    now: u64,
    window: u64,
    stored: impl FnOnce(&str) -> Answer<(RunRecord, Workload)>,
) -> Answer<(Fresh<RunCancelPayload>, RunRecord)> {
    let claimed: RunCancelPayload = serde_json::from_slice(&msg.payload)
        .map_err(|e| RequestRefusal::Malformed(format!("run-cancel payload: {e}")))?;
    let (record, workload) = stored(&claimed.run)?;
    let fresh = request::run_cancel(contract, msg, &workload, &record.requested_by, now, window)?;
    Ok((fresh, record))
}

/// `POST /v1/outputs/fetch`: [`request::output_fetch`] (signature, membership, freshness,
/// nonce), and the output named must be a name the room writes (so the path built from it
/// stays in `outputs/`). Whether the member is one of its recipients is the caller's check,
/// against the stored output.
pub fn verify_fetch(
    contract: &SignedContract,
    msg: &SignedMessage,
    now: u64,
    window: u64,
) -> Answer<Fresh<OutputFetchPayload>> {
    let fresh = request::output_fetch(contract, msg, now, window)?;
    let name = &fresh.payload().output;
    if !is_output_name(name) {
        return Err(RequestRefusal::UnknownOutput {
            name: name.chars().take(64).collect(),
        });
    }
    Ok(fresh)
}

/// Whether `name` is an output file name the room writes (`<run>-<index>.cro`).
pub fn is_output_name(name: &str) -> bool {
    name.len() <= 128
        && name.ends_with(".cro")
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
}
