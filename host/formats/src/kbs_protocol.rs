//! KBS protocol messages (RCAR), as JSON.
//!
//! `POST /kbs/v0/auth` [`AuthRequest`] → [`Challenge`] and a `kbs-session-id` cookie;
//! `POST /kbs/v0/attest` [`Attestation`] → [`AttestResult`];
//! `GET /kbs/v0/resource/<repo>/<type>/<tag>` → a [`crate::jwe::Jwe`].
//! Errors are [`ErrorBody`] with a stable `type` ([`RefusalKind`]) and a human `detail`
//! naming the failed check.
//!
//! Cleanroom's additions, carried where RCAR leaves room: the auth request's `extra-params`
//! names the contract ([`AuthExtra`]), and the challenge's `extra-params` answers with the
//! newest audit log head the broker saw for it ([`ChallengeExtra`]); the room then proves its
//! own head extends that one with the log entries in between ([`RuntimeData::audit_proof`]).

use serde::{Deserialize, Serialize};

use crate::audit::Entry;

pub const PROTOCOL_VERSION: &str = "0.4.0";
pub const SESSION_COOKIE: &str = "kbs-session-id";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AuthRequest {
    pub version: String,
    pub tee: String,
    #[serde(default)]
    pub extra_params: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Challenge {
    pub nonce: String,
    #[serde(default)]
    pub extra_params: serde_json::Value,
}

/// The auth request's `extra-params` from a Cleanroom room: the contract it runs under.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AuthExtra {
    pub contract_digest: String,
}

/// An audit log head: the last entry's `seq` and `hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    pub seq: u64,
    pub hash: String,
}

/// The challenge's `extra-params` from a Cleanroom broker: the newest audit log head an
/// attested host of the contract presented to it (`null` when none did).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ChallengeExtra {
    #[serde(default)]
    pub audit_head: Option<AuditHead>,
}

impl ChallengeExtra {
    /// Read from a challenge's `extra-params` (absent or `""` from a plain RCAR broker).
    pub fn from_value(v: &serde_json::Value) -> Self {
        serde_json::from_value(v.clone()).unwrap_or_default()
    }
}

/// What the host binds into REPORT_DATA (SHA-384 of its RFC 8785 canonical JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RuntimeData {
    /// The broker's challenge nonce: freshness.
    pub nonce: String,
    /// The ephemeral P-384 key the resource is encrypted to (JWK).
    pub tee_pubkey: serde_json::Value,
    /// Hex contract digest the host runs under.
    pub contract_digest: String,
    /// The workload, as canonical JSON text.
    pub workload: String,
    /// Owner approvals (base64 COSE_Sign1), carried so the evidence binds them.
    pub approvals: Vec<String>,
    /// The room's audit log head (last entry's `seq` and `hash`) when the host asks: a
    /// broker refuses a head older than one it has already seen for the contract (the log
    /// was rolled back or replaced).
    pub audit_seq: u64,
    pub audit_hash: String,
    /// The room's log entries after the head the broker named in its challenge, up to and
    /// including (`audit-seq`, `audit-hash`): the broker recomputes each entry's hash and
    /// the chain from the head it stored to the presented one, and refuses a head that does
    /// not extend it. Empty when the broker named no head (or the same one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_proof: Vec<Entry>,
}

impl RuntimeData {
    pub fn canonical_json(&self) -> Vec<u8> {
        serde_json_canonicalizer::to_vec(self).expect("serialises")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Attestation {
    pub runtime_data: RuntimeData,
    /// The evidence bundle (`cleanroom_attest::EvidenceBundle` as JSON; the formats crate
    /// does not depend on the verifier, the broker parses it).
    pub tee_evidence: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttestResult {
    pub platform: String,
    pub insecure: bool,
    pub measurement: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(rename = "type")]
    pub kind: RefusalKind,
    pub detail: String,
}

/// The stable `type` of a broker's refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RefusalKind {
    /// No session, or it expired (call auth again).
    NoSession,
    /// The runtime data's nonce is not the session's unused challenge.
    NonceMismatch,
    UnknownContract,
    ContractInvalid,
    EvidenceRefused,
    NotApproved,
    MalformedRequest,
    NotAttested,
    UnknownResource,
    OtherContract,
    NotAnInput,
    Suspended,
    /// The presented audit head is older than one the broker saw.
    AuditRolledBack,
    /// The presented audit head does not extend the one the broker saw (no valid chain).
    AuditNotExtended,
    GovernanceRefused,
    /// The broker could not record the release durably, so it did not release.
    NotRecorded,
    /// The broker holds as many sessions as it may.
    TooManySessions,
    /// The request body is larger than the route accepts.
    TooLarge,
    /// The workload's differential-privacy ε exceeds what the dataset's budget has left at
    /// this broker (its own ledger).
    BudgetExhausted,
    Internal,
    /// A kind this client does not know.
    #[serde(other)]
    Unknown,
}

/// Cleanroom's governance route at a broker (not part of the KBS protocol).
pub const GOVERNANCE_PATH: &str = "/cleanroom/v0/governance";

/// Body of `POST /cleanroom/v0/governance`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GovernanceRequest {
    /// A member's `suspend` or `resume` COSE_Sign1, base64.
    pub message: String,
}

/// The broker's answer: who signed, and the suspensions in force now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GovernanceResult {
    pub member: String,
    pub suspended_by: Vec<String>,
}
