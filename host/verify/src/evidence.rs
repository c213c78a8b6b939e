//! A run's identity key, as its evidence proves it: the evidence bundle verified against a
//! contract's attestation policy, with REPORT_DATA recomputed from the bundle's host key and
//! the contract digest, and HOST_DATA equal to that digest. The room binds its key with
//! [`host_identity_report_data`]; outputs, audit checkpoints and `attest verify` are checked
//! with [`verify_host_evidence`].

use std::path::Path;

use cleanroom_attest::{AttestError, Claims, EvidenceBundle, Expected, report_data_for};
use cleanroom_policy::Contract;
use p384::ecdsa::VerifyingKey;

use crate::reference::reference_values;

/// The `purpose` of the REPORT_DATA binding of a run's identity key.
pub const HOST_IDENTITY_PURPOSE: &str = "cleanroom-host-identity";

/// Why a run's evidence does not prove its host key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvidenceError {
    #[error("the evidence bundle names no host public key (it is not a run's identity evidence)")]
    NoHostKey,
    #[error("the evidence bundle's host public key is not a P-384 public key (SEC1 hex)")]
    HostKeyMalformed,
    #[error(
        "the evidence bundle says contract {bundle}, but the contract given has digest {contract}"
    )]
    OtherContract { bundle: String, contract: String },
    /// The evidence fails the contract's policy or the binding (REPORT_DATA, HOST_DATA).
    #[error(transparent)]
    Refused(#[from] AttestError),
}

/// The canonical JSON a run's REPORT_DATA is the SHA-384 of:
/// `{"contract_digest", "host_public_key", "purpose": "cleanroom-host-identity"}`.
pub fn host_identity_binding(host_public_key_hex: &str, contract_digest_hex: &str) -> Vec<u8> {
    serde_json_canonicalizer::to_vec(&serde_json::json!({
        "purpose": HOST_IDENTITY_PURPOSE,
        "host_public_key": host_public_key_hex,
        "contract_digest": contract_digest_hex,
    }))
    .expect("a JSON value serialises")
}

/// REPORT_DATA binding `host_public_key_hex` (SEC1 compressed, hex) to a contract.
pub fn host_identity_report_data(host_public_key_hex: &str, contract_digest_hex: &str) -> [u8; 64] {
    report_data_for(&host_identity_binding(
        host_public_key_hex,
        contract_digest_hex,
    ))
}

/// A host key proven by verified evidence.
#[derive(Debug, Clone)]
pub struct AttestedHost {
    pub host_key: VerifyingKey,
    /// The key as the evidence bundle, outputs and checkpoints name it (SEC1 compressed, hex,
    /// lower case).
    pub host_key_hex: String,
    /// The evidence is simulated (INSECURE): it proves nothing about hardware.
    pub insecure: bool,
    pub claims: Claims,
}

/// Verify `bundle` at `at_unix` against `contract`'s attestation policy: HOST_DATA must be
/// the contract's digest and REPORT_DATA must bind the bundle's host key to it.
pub fn verify_host_evidence(
    bundle: &EvidenceBundle,
    contract: &Contract,
    at_unix: u64,
) -> Result<AttestedHost, EvidenceError> {
    let digest = contract.digest();
    let key_hex = bundle
        .host_public_key
        .as_deref()
        .ok_or(EvidenceError::NoHostKey)?
        .to_ascii_lowercase();
    let host_key = hex::decode(&key_hex)
        .ok()
        .and_then(|b| VerifyingKey::from_sec1_bytes(&b).ok())
        .ok_or(EvidenceError::HostKeyMalformed)?;
    // The canonical spelling: what the room binds and what outputs and checkpoints name.
    let key_hex = hex::encode(host_key.to_encoded_point(true).as_bytes());
    if let Some(d) = &bundle.contract_digest
        && !d.eq_ignore_ascii_case(&digest.hex())
    {
        return Err(EvidenceError::OtherContract {
            bundle: d.clone(),
            contract: digest.hex(),
        });
    }
    let verified = cleanroom_attest::verify(
        bundle,
        &reference_values(contract),
        &Expected {
            report_data: host_identity_report_data(&key_hex, &digest.hex()),
            host_data: digest.0,
        },
        at_unix,
    )?;
    let claims = verified.claims().clone();
    Ok(AttestedHost {
        host_key,
        host_key_hex: key_hex,
        insecure: claims.insecure,
        claims,
    })
}

/// Where a run's evidence is, given the path of one of its outputs
/// (`ROOM/outputs/<run>-<n>.cro` → `ROOM/evidence/<run>.json`).
/// `None` when the run id (read from an unauthenticated header) is not a plain name.
pub fn evidence_beside_output(output: &Path, run_id: &str) -> Option<std::path::PathBuf> {
    if run_id.is_empty()
        || run_id.len() > 128
        || !run_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    let room = output.parent()?.parent()?;
    Some(room.join("evidence").join(format!("{run_id}.json")))
}
