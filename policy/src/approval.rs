//! Invariant I3: a workload runs only if every owner of every dataset it reads signed an
//! approval of its exact digest under this contract.

use std::collections::BTreeSet;

use crate::PolicyError;
use crate::contract::SignedContract;
use crate::message::{MessageType, SignedMessage};
use crate::workload::{ApprovalPayload, Workload, WorkloadDigest};

/// Proof that a workload is approved by every owner of its inputs. Only [`check`] makes one.
#[derive(Debug, Clone)]
pub struct Approved {
    digest: WorkloadDigest,
    approvers: BTreeSet<String>,
}

impl Approved {
    pub fn workload_digest(&self) -> WorkloadDigest {
        self.digest
    }
    pub fn approvers(&self) -> impl Iterator<Item = &str> {
        self.approvers.iter().map(String::as_str)
    }
}

/// Verify `approvals` for `workload` under `contract`.
///
/// Every approval must be a valid `workload-approve` by a member, for this contract and for
/// this workload's digest (an approval of anything else is an error, not ignored: a
/// mismatched approval usually means the workload was edited after approval). Then every
/// owner of every input must be among the approvers.
pub fn check(
    contract: &SignedContract,
    workload: &Workload,
    approvals: &[SignedMessage],
) -> Result<Approved, PolicyError> {
    let c = contract.contract();
    workload.check_against(c)?;
    let digest = workload.digest();
    let mut approvers = BTreeSet::new();
    for a in approvals {
        let m = c.verify_member_message(a, MessageType::WorkloadApprove)?;
        let member = m.name.get_ref().clone();
        let payload = ApprovalPayload::from_bytes(&a.payload).ok_or_else(|| {
            PolicyError::MalformedMessage {
                reason: format!("approval payload from `{member}` is not an approval"),
            }
        })?;
        if payload.workload_digest != digest.hex() {
            return Err(PolicyError::ApprovalForOtherWorkload {
                member,
                expected: digest.hex(),
                actual: payload.workload_digest,
            });
        }
        approvers.insert(member);
    }
    for input in &workload.inputs {
        let ds = c.dataset(input).ok_or_else(|| PolicyError::UnknownInput {
            input: input.clone(),
        })?;
        if !approvers.contains(ds.owner.get_ref()) {
            return Err(PolicyError::MissingApproval {
                workload: workload.name.clone(),
                owner: ds.owner.get_ref().clone(),
                dataset: input.clone(),
            });
        }
    }
    Ok(Approved { digest, approvers })
}
