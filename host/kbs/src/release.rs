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
use cleanroom_policy::dp::Epsilon;
use cleanroom_policy::governance;
use cleanroom_policy::message::SignedMessage;
use cleanroom_policy::{Contract, PolicyError, SignedContract, Workload};
use p384::PublicKey;

use crate::store::Store;
use cleanroom_formats::audit::Entry;
use cleanroom_formats::kbs_protocol::{Attestation, RefusalKind};
use cleanroom_formats::keyfile::Released;
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
    #[error(
        "the host's audit log head (entry {presented}) does not extend the head this broker saw (entry {seen}): {why}; the log was rolled back and padded, or replaced"
    )]
    AuditNotExtended {
        presented: u64,
        seen: u64,
        why: &'static str,
    },
    #[error("governance message refused: {0}")]
    BadGovernance(PolicyError),
    #[error("the release could not be recorded durably, so the key was not released")]
    NotRecorded,
    #[error("the broker holds as many sessions as it may; try again later")]
    TooManySessions,
    #[error("the request body is larger than this route accepts")]
    TooLarge,
    #[error(
        "the differential-privacy budget of `{dataset}` at this broker is exhausted: {spent} of {total} spent, the workload asks for {asked}"
    )]
    BudgetExhausted {
        dataset: String,
        spent: String,
        total: String,
        asked: String,
    },
    #[error("broker storage error")]
    Store,
}

impl Refusal {
    /// The stable wire `type`.
    pub fn kind(&self) -> RefusalKind {
        match self {
            Refusal::NoSession => RefusalKind::NoSession,
            Refusal::NonceMismatch => RefusalKind::NonceMismatch,
            Refusal::UnknownContract { .. } => RefusalKind::UnknownContract,
            Refusal::ContractInvalid(_) => RefusalKind::ContractInvalid,
            Refusal::Evidence(_) => RefusalKind::EvidenceRefused,
            Refusal::NotApproved(_) => RefusalKind::NotApproved,
            Refusal::Malformed(_) => RefusalKind::MalformedRequest,
            Refusal::NotAttested => RefusalKind::NotAttested,
            Refusal::UnknownResource { .. } => RefusalKind::UnknownResource,
            Refusal::OtherContract { .. } => RefusalKind::OtherContract,
            Refusal::NotAnInput { .. } => RefusalKind::NotAnInput,
            Refusal::Suspended(_) => RefusalKind::Suspended,
            Refusal::AuditRolledBack { .. } => RefusalKind::AuditRolledBack,
            Refusal::AuditNotExtended { .. } => RefusalKind::AuditNotExtended,
            Refusal::BadGovernance(_) => RefusalKind::GovernanceRefused,
            Refusal::NotRecorded => RefusalKind::NotRecorded,
            Refusal::TooManySessions => RefusalKind::TooManySessions,
            Refusal::TooLarge => RefusalKind::TooLarge,
            Refusal::BudgetExhausted { .. } => RefusalKind::BudgetExhausted,
            Refusal::Store => RefusalKind::Internal,
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
    // A used challenge is gone from its session; an empty one never matches.
    if nonce.is_empty() || rd.nonce != nonce {
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
    // Expiry and revocation at this broker's clock; `max_runs` is counted by the room from
    // its audit log, whose head this broker pins.
    let usage = approval::Usage {
        now: now_unix,
        runs: None,
    };
    let approved =
        approval::check(&contract, &workload, &approvals, usage).map_err(Refusal::NotApproved)?;
    let tee_pubkey = PublicKey::from_jwk_str(&rd.tee_pubkey.to_string())
        .map_err(|_| Refusal::Malformed("tee-pubkey is not a P-384 JWK".into()))?;
    // I5: the attested host's audit log must extend the newest head an earlier host of this
    // contract presented here (the evidence binds the presented head and the entries that
    // prove it). Checked and raised under one lock, so two sessions cannot both pass.
    let digest = contract.digest().hex();
    store
        .advance_audit_head(&digest, rd.audit_seq, &rd.audit_hash, |seen| {
            check_extends(seen, rd.audit_seq, &rd.audit_hash, &rd.audit_proof)
        })
        .map_err(|_| Refusal::Store)??;
    Ok(Attested {
        contract,
        workload,
        approved,
        tee_pubkey,
        claims: verified.claims().clone(),
    })
}

/// Whether the presented head (`seq`, `hash`) extends `seen`, the newest head stored for the
/// contract, given `proof`: the presenter's log entries up to and including its head, from
/// some entry at or before `seen.seq + 1`. Each entry's hash is recomputed
/// ([`Entry::compute_hash`]) and each must name the one before it as `prev`.
pub fn check_extends(
    seen: Option<(u64, &str)>,
    seq: u64,
    hash: &str,
    proof: &[Entry],
) -> Result<(), Refusal> {
    let Some((seen_seq, seen_hash)) = seen else {
        return Ok(());
    };
    if seq < seen_seq || (seq == seen_seq && hash != seen_hash) {
        return Err(Refusal::AuditRolledBack {
            presented: seq,
            seen: seen_seq,
        });
    }
    if seq == seen_seq {
        return Ok(());
    }
    let not = |why| Refusal::AuditNotExtended {
        presented: seq,
        seen: seen_seq,
        why,
    };
    for (i, e) in proof.iter().enumerate() {
        if e.compute_hash() != e.hash {
            return Err(not("an entry of the proof does not hash to its `hash`"));
        }
        if i > 0 && (proof[i - 1].seq.checked_add(1) != Some(e.seq) || e.prev != proof[i - 1].hash)
        {
            return Err(not("the proof's entries are not a chain"));
        }
    }
    match proof.last() {
        Some(last) if last.seq == seq && last.hash == hash => {}
        _ => return Err(not("the proof does not end at the presented head")),
    }
    let first = &proof[0];
    let joins = if first.seq == seen_seq + 1 {
        first.prev == seen_hash
    } else if first.seq <= seen_seq {
        proof[(seen_seq - first.seq) as usize].hash == seen_hash
    } else {
        return Err(not("the proof starts after the head the broker saw"));
    };
    if !joins {
        return Err(not(
            "the chain does not pass through the head the broker saw",
        ));
    }
    Ok(())
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

/// Release the key of `path` to an attested session, with the identity of the sealed file
/// the owner registered it for.
pub fn release(store: &Store, attested: &Attested, path: &str) -> Result<Released, Refusal> {
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
    charge_budget(store, attested, ds)?;
    store
        .unseal_key(path)
        .map_err(|_| Refusal::Store)?
        .ok_or_else(|| Refusal::UnknownResource { path: path.into() })
}

/// A DP workload's ε, charged to this broker's own ledger for the dataset before its key
/// leaves, or refused when the dataset's budget has less left. The ledger lives in the
/// broker's database, outside the room: a room whose audit log was rolled back (and so
/// shows budget it no longer has) cannot spend it again here. Every key release of a DP
/// workload charges, so a run that asks twice pays twice (never the reverse).
fn charge_budget(
    store: &Store,
    attested: &Attested,
    ds: &cleanroom_policy::contract::Dataset,
) -> Result<(), Refusal> {
    let Some(dp) = &attested.workload.dp else {
        return Ok(());
    };
    let dataset = ds.name.get_ref();
    let Some(budget) = &ds.dp else {
        return Err(Refusal::NotApproved(PolicyError::NoDpBudget {
            workload: attested.workload.name.clone(),
            dataset: dataset.clone(),
        }));
    };
    let (asked, total) = (dp.spend(), budget.total());
    let charged = store
        .charge_budget(
            &attested.contract.digest().hex(),
            dataset,
            &attested.workload.digest().hex(),
            asked.micros(),
            total.micros(),
        )
        .map_err(|_| Refusal::Store)?;
    charged.map_err(|spent| Refusal::BudgetExhausted {
        dataset: dataset.clone(),
        spent: Epsilon::from_micros(spent).to_string(),
        total: total.to_string(),
        asked: asked.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cleanroom_formats::audit::{Decision, Step, ZERO};

    /// A valid chain of `n` entries whose reasons start with `tag`.
    fn chain(n: u64, tag: &str) -> Vec<Entry> {
        let mut out: Vec<Entry> = Vec::new();
        for seq in 0..n {
            let mut e = Entry {
                seq,
                prev: out.last().map_or(ZERO.to_string(), |p| p.hash.clone()),
                time: "2026-01-01T00:00:00Z".into(),
                event: Step::Run,
                subject: "s".into(),
                decision: Decision::Ok,
                reason: format!("{tag} {seq}"),
                run: None,
                host_key: None,
                signature: None,
                insecure: None,
                spend: None,
                hash: String::new(),
            };
            e.hash = e.compute_hash();
            out.push(e);
        }
        out
    }

    #[test]
    fn a_head_extends_the_seen_one_only_through_a_chain_passing_through_it() {
        let log = chain(10, "real");
        let seen = (4, log[4].hash.as_str());
        let head = &log[9];
        // No head seen yet: anything goes (first contact).
        assert!(check_extends(None, 3, "x", &[]).is_ok());
        // The entries after the seen head, or starting earlier: accepted.
        assert!(check_extends(Some(seen), 9, &head.hash, &log[5..]).is_ok());
        assert!(check_extends(Some(seen), 9, &head.hash, &log[2..]).is_ok());
        // Same head: accepted without proof; same seq, other hash: rolled back.
        assert!(check_extends(Some(seen), 4, &log[4].hash, &[]).is_ok());
        assert!(matches!(
            check_extends(Some(seen), 4, &log[3].hash, &[]),
            Err(Refusal::AuditRolledBack { .. })
        ));
        assert!(matches!(
            check_extends(Some(seen), 3, &log[3].hash, &[]),
            Err(Refusal::AuditRolledBack { .. })
        ));
        // No proof, a gap, a proof that stops short, or an edited entry: not extended.
        for proof in [&[][..], &log[6..], &log[5..9]] {
            assert!(matches!(
                check_extends(Some(seen), 9, &head.hash, proof),
                Err(Refusal::AuditNotExtended { .. })
            ));
        }
        let mut edited = log[5..].to_vec();
        edited[2].reason = "edited".into();
        assert!(matches!(
            check_extends(Some(seen), 9, &head.hash, &edited),
            Err(Refusal::AuditNotExtended { .. })
        ));
        // Another history (rolled back to before the seen head and padded): its entries
        // chain among themselves but not through the seen head.
        let other = chain(12, "padded");
        assert!(matches!(
            check_extends(Some(seen), 11, &other[11].hash, &other[5..]),
            Err(Refusal::AuditNotExtended { .. })
        ));
        assert!(matches!(
            check_extends(Some(seen), 11, &other[11].hash, &other[..]),
            Err(Refusal::AuditNotExtended { .. })
        ));
    }
}
