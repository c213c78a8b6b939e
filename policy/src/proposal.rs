//! Workload proposals: a member (one of the contract's `governance.proposers`, or any member
//! when it names none) signs a COSE_Sign1 `workload-propose` carrying the whole workload, so
//! owners review and approve exactly what was proposed, and a run can show who proposed it.
//!
//! For module workloads the proposal also records what `cleanroom module publish` found in
//! the component: its digest (which must be the workload's `module_digest`), its world
//! (which must be the workload's kind) and its imports.

use serde::{Deserialize, Serialize};

use crate::PolicyError;
use crate::contract::SignedContract;
use crate::message::{MessageType, SignedMessage};
use crate::workload::Workload;

/// What `module publish` found in the component a workload runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleSummary {
    /// sha256 hex of the component bytes.
    pub digest: String,
    /// The world the component implements: query, training or inference.
    pub world: String,
    /// Every import of the component (all inside its world: publish refuses others).
    pub imports: Vec<String>,
}

/// The payload of a `workload-propose` message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposalPayload {
    /// The workload's name.
    pub workload: String,
    /// SHA-256 hex of the workload's canonical JSON: what owners approve.
    pub workload_digest: String,
    /// The workload file as proposed, byte for byte.
    pub workload_toml: String,
    /// For module workloads: the component as publish inspected it.
    #[serde(default)]
    pub module: Option<ModuleSummary>,
}

/// A verified proposal: who proposed which workload.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub proposer: String,
    pub payload: ProposalPayload,
    pub workload: Workload,
}

fn malformed(reason: String) -> PolicyError {
    PolicyError::MalformedMessage { reason }
}

impl ProposalPayload {
    /// The payload proposing `workload_toml` (named `source_name` in errors). A module
    /// workload needs `module`, whose digest and world must match the workload; a SQL-only
    /// workload must not have one.
    pub fn new(
        workload_toml: &str,
        source_name: &str,
        module: Option<ModuleSummary>,
    ) -> Result<Self, PolicyError> {
        let w = Workload::parse(workload_toml, source_name)?;
        let invalid = |field: &str, reason: String| PolicyError::InvalidValue {
            source_name: source_name.to_string(),
            field: field.to_string(),
            reason,
        };
        match (&w.module_digest, &module) {
            (Some(d), Some(m)) => {
                if &m.digest != d {
                    return Err(invalid(
                        "module_digest",
                        format!("is {d}, but the component's sha256 is {}", m.digest),
                    ));
                }
                if m.world != w.kind.as_str() {
                    return Err(invalid(
                        "kind",
                        format!(
                            "is {}, but the component implements world `{}`",
                            w.kind.as_str(),
                            m.world
                        ),
                    ));
                }
            }
            (Some(_), None) => {
                return Err(invalid(
                    "module_digest",
                    "a module workload is proposed with its component (`cleanroom module publish`)"
                        .into(),
                ));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "module_digest",
                    "missing: the workload runs no module, yet a component was given".into(),
                ));
            }
            (None, None) => {}
        }
        Ok(Self {
            workload: w.name.clone(),
            workload_digest: w.digest().hex(),
            workload_toml: workload_toml.to_string(),
            module,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json_canonicalizer::to_vec(self).expect("serialises")
    }
}

/// Verify a proposal on its own: signed by a member allowed to propose, for this contract,
/// a well-formed payload whose workload text has the digest it claims and passes the
/// contract's checks.
pub fn open(contract: &SignedContract, proposal: &SignedMessage) -> Result<Proposal, PolicyError> {
    let c = contract.contract();
    let member = c
        .verify_member_message(proposal, MessageType::WorkloadPropose)?
        .name
        .get_ref()
        .clone();
    let proposers = &c.governance.proposers;
    if !proposers.is_empty() && !proposers.iter().any(|p| p.get_ref() == &member) {
        return Err(PolicyError::ProposerNotAllowed {
            member,
            proposers: names(c),
        });
    }
    let payload: ProposalPayload = serde_json::from_slice(&proposal.payload)
        .map_err(|e| malformed(format!("proposal payload from `{member}`: {e}")))?;
    let workload = Workload::parse(&payload.workload_toml, "the proposed workload")?;
    if workload.digest().hex() != payload.workload_digest || workload.name != payload.workload {
        return Err(malformed(format!(
            "proposal from `{member}` names a digest or name its workload text does not have"
        )));
    }
    workload.check_against(c)?;
    Ok(Proposal {
        proposer: member,
        payload,
        workload,
    })
}

/// Verify that `proposal` proposes exactly `workload`.
pub fn check(
    contract: &SignedContract,
    workload: &Workload,
    proposal: &SignedMessage,
) -> Result<Proposal, PolicyError> {
    let p = open(contract, proposal)?;
    let expected = workload.digest().hex();
    if p.payload.workload_digest != expected {
        return Err(PolicyError::ProposalForOtherWorkload {
            member: p.proposer,
            expected,
            actual: p.payload.workload_digest,
        });
    }
    Ok(p)
}

/// The governance rule for a run or an approval: when the contract names proposers, the
/// workload must come with a valid proposal by one of them; a proposal that is present is
/// always checked. Returns the proposer, if any.
pub fn require(
    contract: &SignedContract,
    workload: &Workload,
    proposal: Option<&SignedMessage>,
) -> Result<Option<String>, PolicyError> {
    match proposal {
        Some(p) => Ok(Some(check(contract, workload, p)?.proposer)),
        None if contract.contract().governance.proposers.is_empty() => Ok(None),
        None => Err(PolicyError::MissingProposal {
            workload: workload.name.clone(),
            proposers: names(contract.contract()),
        }),
    }
}

fn names(c: &crate::Contract) -> String {
    c.governance
        .proposers
        .iter()
        .map(|p| format!("`{}`", p.get_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}
