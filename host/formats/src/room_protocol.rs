//! The room service's wire types (`cleanroom-room serve`, `docs/api/openapi.json`), shared by
//! the room and the members' CLI.

use serde::{Deserialize, Serialize};

/// The body of every signed request: one base64 COSE_Sign1 message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageBody {
    pub message: String,
}

/// A proposal or approval the room verified and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub member: String,
    pub workload_digest: String,
}

/// A queued run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunAccepted {
    pub id: String,
    pub state: String,
}

/// A refusal: `{"type": "<stable kind>", "detail": "<the failed check>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(rename = "type")]
    pub kind: RoomRefusalKind,
    pub detail: String,
}

/// The stable `type` of a room service's refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RoomRefusalKind {
    MalformedRequest,
    /// The signer's key is no member's key.
    NotAMember,
    /// The signature does not verify with the key its `kid` names.
    BadSignature,
    /// `cr.created` is outside the room's freshness window.
    StaleRequest,
    /// The nonce was accepted before.
    Replayed,
    /// Only the workload's proposer and the owners of its inputs may request its runs.
    RunNotAllowed,
    /// Another policy refusal (proposer not allowed, workload not valid under the contract).
    PolicyRefused,
    UnknownWorkload,
    UnknownOutput,
    /// The member is not among the output's recipients.
    NotARecipient,
    UnknownRun,
    /// Only who requested a run and the owners of its inputs may cancel it.
    CancelNotAllowed,
    /// The run has finished (committed, refused or cancelled): it cannot be cancelled.
    RunNotCancellable,
    QueueFull,
    Internal,
    /// A kind this client does not know.
    #[serde(other)]
    Unknown,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    Queued,
    Running,
    Committed,
    Refused,
    /// The service stopped while the run was queued or running (found so at the next boot).
    NotCompleted,
    /// Cancelled by a signed `run-cancel` while queued or running (before it sealed).
    Cancelled,
}

impl RunState {
    /// The state's wire name (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Committed => "committed",
            RunState::Refused => "refused",
            RunState::NotCompleted => "not-completed",
            RunState::Cancelled => "cancelled",
        }
    }
}

/// One requested run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub workload_digest: String,
    pub requested_by: String,
    pub state: RunState,
    /// The run's id in the audit log, once it started.
    #[serde(default)]
    pub run_id: Option<String>,
    /// Output file names, once committed.
    #[serde(default)]
    pub outputs: Vec<String>,
    /// Why it was refused (the room's error: names, never data values).
    #[serde(default)]
    pub cause: Option<String>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod run_state_tests {
    use super::RunState;

    #[test]
    fn run_state_names_are_the_wire_names() {
        for s in [
            RunState::Queued,
            RunState::Running,
            RunState::Committed,
            RunState::Refused,
            RunState::NotCompleted,
            RunState::Cancelled,
        ] {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
    }
}
