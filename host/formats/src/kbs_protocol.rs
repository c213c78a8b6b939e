//! KBS protocol messages (RCAR), as JSON.
//!
//! `POST /kbs/v0/auth` [`AuthRequest`] → [`Challenge`] and a `kbs-session-id` cookie;
//! `POST /kbs/v0/attest` [`Attestation`] → [`AttestResult`];
//! `GET /kbs/v0/resource/<repo>/<type>/<tag>` → a [`crate::jwe::Jwe`].
//! Errors are [`ErrorBody`] with a stable `type` and a human `detail` naming the failed check.

use serde::{Deserialize, Serialize};

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
    pub kind: String,
    pub detail: String,
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
