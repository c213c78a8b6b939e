//! The release decision (invariant I2), as proof types.
//!
//! [`attest`] turns a session's attestation into [`Attested`]: the evidence verified against
//! the contract's reference values, REPORT_DATA binding the runtime data (broker nonce,
//! ephemeral key, contract, workload, approvals), launch data binding the contract digest,
//! and the workload approved by every owner of its inputs. [`release`] then needs an
//! `Attested` to unseal a key, and only for a dataset the workload reads, under the contract
//! the resource was registered with. Nothing else in the broker can unseal a key.

use cleanroom_attest::{AttestError, Expected, report_data_for};
use cleanroom_policy::approval::{self, Approved};
use cleanroom_policy::governance;
use cleanroom_policy::message::SignedMessage;
use cleanroom_policy::{Contract, PolicyError, SignedContract, Workload};
use p384::PublicKey;

use crate::store::Store;
use cleanroom_formats::kbs_protocol::Attestation;
use cleanroom_formats::stream::DataKey;
use cleanroom_verify::reference;

/// Why the broker refused. `kind()` is the stable wire `type`.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("no session: call /kbs/v0/auth first (or the session expired)")]
    NoSession,
    #[error("runtime-data nonce is not this session's challenge (stale or replayed evidence)")]
    NonceMismatch,
    #[error("contract {digest} is not registered at this broker")]
    UnknownContract { digest: String },
    #[error("stored contract does not verify: {0}")]
    ContractInvalid(PolicyError),
    #[error("evidence refused: {0}")]
    Evidence(#[from] AttestError),
    #[error("workload not approved: {0}")]
    NotApproved(PolicyError),
    #[error("request is malformed: {0}")]
    Malformed(String),
    #[error("session has not attested")]
    NotAttested,
    #[error("no resource `{path}` at this broker")]
    UnknownResource { path: String },
    #[error("resource `{path}` belongs to another contract")]
    OtherContract { path: String },
    #[error("workload `{workload}` does not read dataset `{dataset}`")]
    NotAnInput { workload: String, dataset: String },
    #[error("key release suspended: {0}")]
    Suspended(PolicyError),
    #[error(
        "the host's audit log is behind one this broker already saw (entry {presented} presented, entry {seen} seen): the log was rolled back or replaced"
    )]
    AuditRolledBack { presented: u64, seen: u64 },
    #[error("governance message refused: {0}")]
    BadGovernance(PolicyError),
    #[error("broker storage error")]
    Store,
}

impl Refusal {
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::NoSession => "no-session",
            Refusal::NonceMismatch => "nonce-mismatch",
            Refusal::UnknownContract { .. } => "unknown-contract",
            Refusal::ContractInvalid(_) => "contract-invalid",
            Refusal::Evidence(_) => "evidence-refused",
            Refusal::NotApproved(_) => "not-approved",
            Refusal::Malformed(_) => "malformed-request",
            Refusal::NotAttested => "not-attested",
            Refusal::UnknownResource { .. } => "unknown-resource",
            Refusal::OtherContract { .. } => "other-contract",
            Refusal::NotAnInput { .. } => "not-an-input",
            Refusal::Suspended(_) => "suspended",
            Refusal::AuditRolledBack { .. } => "audit-rolled-back",
            Refusal::BadGovernance(_) => "governance-refused",
            Refusal::Store => "internal",
        }
    }
}

/// Proof that a session attested under a contract for an approved workload.
#[derive(Debug, Clone)]
pub struct Attested {
    contract: SignedContract,
    workload: Workload,
    approved: Approved,
    tee_pubkey: PublicKey,
    pub claims: cleanroom_attest::Claims,
}

impl Attested {
    pub fn tee_pubkey(&self) -> &PublicKey {
        &self.tee_pubkey
    }
}

/// Check a session's attestation. `nonce` is the session's challenge; `now_unix` the
/// broker's clock.
pub fn attest(
    store: &Store,
    att: &Attestation,
    nonce: &str,
    now_unix: u64,
) -> Result<Attested, Refusal> {
    let rd = &att.runtime_data;
    if rd.nonce != nonce {
        return Err(Refusal::NonceMismatch);
    }
    let (text, sigs) = store
        .contract(&rd.contract_digest)
        .map_err(|_| Refusal::Store)?
        .ok_or_else(|| Refusal::UnknownContract {
            digest: rd.contract_digest.clone(),
        })?;
    let contract = verify_stored_contract(&text, &sigs).map_err(Refusal::ContractInvalid)?;
    check_not_suspended(store, &contract)?;
    let refs = reference::reference_values(contract.contract());
    let expected = Expected {
        report_data: report_data_for(&rd.canonical_json()),
        host_data: contract.digest().0,
    };
    let bundle: cleanroom_attest::EvidenceBundle = serde_json::from_value(att.tee_evidence.clone())
        .map_err(|_| Refusal::Malformed("tee-evidence is not an evidence bundle".into()))?;
    let verified = cleanroom_attest::verify(&bundle, &refs, &expected, now_unix)?;

    let workload: Workload = serde_json::from_str(&rd.workload)
        .map_err(|e| Refusal::Malformed(format!("workload: {e}")))?;
    let approvals = rd
        .approvals
        .iter()
        .map(|a| SignedMessage::from_base64(a))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Refusal::NotApproved)?;
    let approved =
        approval::check(&contract, &workload, &approvals).map_err(Refusal::NotApproved)?;
    let tee_pubkey = PublicKey::from_jwk_str(&rd.tee_pubkey.to_string())
        .map_err(|_| Refusal::Malformed("tee-pubkey is not a P-384 JWK".into()))?;
    // I5: the attested host's audit log must not be behind what an earlier host of this
    // contract presented here (the evidence binds the presented head). Same entry number
    // with another hash is a replaced log too.
    let digest = contract.digest().hex();
    if let Some((seen, seen_hash)) = store.audit_head(&digest).map_err(|_| Refusal::Store)?
        && (rd.audit_seq < seen || (rd.audit_seq == seen && rd.audit_hash != seen_hash))
    {
        return Err(Refusal::AuditRolledBack {
            presented: rd.audit_seq,
            seen,
        });
    }
    store
        .raise_audit_head(&digest, rd.audit_seq, &rd.audit_hash)
        .map_err(|_| Refusal::Store)?;
    Ok(Attested {
        contract,
        workload,
        approved,
        tee_pubkey,
        claims: verified.claims().clone(),
    })
}

/// I3: a member's suspension recorded at this broker stops every release for the contract,
/// even if the room's own copy of it was removed.
fn check_not_suspended(store: &Store, contract: &SignedContract) -> Result<(), Refusal> {
    let messages = stored_governance(store, contract)?;
    governance::check(contract, &messages).map_err(Refusal::Suspended)
}

/// The suspend/resume messages recorded for `contract`.
fn stored_governance(
    store: &Store,
    contract: &SignedContract,
) -> Result<Vec<SignedMessage>, Refusal> {
    store
        .governance(&contract.digest().hex())
        .map_err(|_| Refusal::Store)?
        .iter()
        .map(|m| SignedMessage::from_base64(m))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Refusal::Store)
}

/// Record a member's suspend or resume message (base64 COSE_Sign1) for a contract
/// registered here, after verifying it. Returns the signing member and the suspensions in
/// force afterwards.
pub fn record_governance(
    store: &Store,
    message_b64: &str,
) -> Result<(String, Vec<governance::Suspended>), Refusal> {
    let msg = SignedMessage::from_base64(message_b64.trim())
        .map_err(|e| Refusal::Malformed(e.to_string()))?;
    let digest = hex::encode(msg.contract_digest);
    let (text, sigs) = store
        .contract(&digest)
        .map_err(|_| Refusal::Store)?
        .ok_or(Refusal::UnknownContract { digest })?;
    let contract = verify_stored_contract(&text, &sigs).map_err(Refusal::ContractInvalid)?;
    let member = governance::verify(&contract, &msg).map_err(Refusal::BadGovernance)?;
    store
        .put_governance(&contract.digest().hex(), &msg.to_base64())
        .map_err(|_| Refusal::Store)?;
    let messages = stored_governance(store, &contract)?;
    let state = governance::suspensions(&contract, &messages).map_err(|_| Refusal::Store)?;
    Ok((member, state))
}

/// Parse and verify a contract stored at the broker.
pub fn verify_stored_contract(text: &str, sigs: &[String]) -> Result<SignedContract, PolicyError> {
    let contract = Contract::parse(text, "stored contract")?;
    let sigs = sigs
        .iter()
        .map(|s| SignedMessage::from_base64(s))
        .collect::<Result<Vec<_>, _>>()?;
    SignedContract::verify(contract, &sigs)
}

/// Release the key of `path` to an attested session.
pub fn release(store: &Store, attested: &Attested, path: &str) -> Result<DataKey, Refusal> {
    let rec = store
        .resource(path)
        .map_err(|_| Refusal::Store)?
        .ok_or_else(|| Refusal::UnknownResource { path: path.into() })?;
    if rec.contract_digest != attested.contract.digest().hex() {
        return Err(Refusal::OtherContract { path: path.into() });
    }
    check_not_suspended(store, &attested.contract)?;
    let c = attested.contract.contract();
    let ds = c
        .dataset(&rec.dataset)
        .filter(|d| d.key.resource.get_ref() == path)
        .ok_or_else(|| Refusal::OtherContract { path: path.into() })?;
    if !attested
        .workload
        .inputs
        .iter()
        .any(|i| i == ds.name.get_ref())
    {
        return Err(Refusal::NotAnInput {
            workload: attested.workload.name.clone(),
            dataset: rec.dataset.clone(),
        });
    }
    // approval::check already required the owner of every input; keep the owner check local
    // to the release so a change there cannot silently widen it.
    if !attested
        .approved
        .approvers()
        .any(|a| a == ds.owner.get_ref())
    {
        return Err(Refusal::NotApproved(PolicyError::MissingApproval {
            workload: attested.workload.name.clone(),
            owner: ds.owner.get_ref().clone(),
            dataset: rec.dataset.clone(),
        }));
    }
    store
        .unseal_key(path)
        .map_err(|_| Refusal::Store)?
        .ok_or_else(|| Refusal::UnknownResource { path: path.into() })
}
