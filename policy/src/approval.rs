//! Invariant I3: a workload runs only if every owner of every dataset it reads signed an
//! approval of its exact digest under this contract.

use std::collections::{BTreeMap, BTreeSet};

use crate::PolicyError;
use crate::contract::SignedContract;
use crate::message::{MessageType, SignedMessage};
use crate::workload::{ApprovalPayload, RevocationPayload, Workload, WorkloadDigest};

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

/// What the approvals are checked against besides the messages: the time, and how many
/// runs of the workload the room's audit log records (`None` where it is not known, at a
/// broker: the room, whose log the brokers pin, enforces `max_runs`).
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub now: u64,
    pub runs: Option<u64>,
}

/// One member's latest word on the workload: an approval (with its limits) or a revocation.
enum Word {
    Approved(ApprovalPayload),
    Revoked,
}

/// A member's verified `workload-approve` or `workload-revoke` of the workload with digest
/// `expected`; one of another workload is refused.
fn word_of(
    c: &crate::contract::Contract,
    a: &SignedMessage,
    expected: &str,
) -> Result<(String, Word), PolicyError> {
    let kind = match a.message_type {
        MessageType::WorkloadRevoke => MessageType::WorkloadRevoke,
        _ => MessageType::WorkloadApprove,
    };
    let member = c.verify_member_message(a, kind)?.name.get_ref().clone();
    let parsed = match kind {
        MessageType::WorkloadRevoke => {
            RevocationPayload::from_bytes(&a.payload).map(|p| (p.workload_digest, Word::Revoked))
        }
        _ => ApprovalPayload::from_bytes(&a.payload)
            .map(|p| (p.workload_digest.clone(), Word::Approved(p))),
    };
    let (actual, word) = parsed.ok_or_else(|| PolicyError::MalformedMessage {
        reason: format!("{} payload from `{member}` is malformed", kind.as_str()),
    })?;
    if actual != expected {
        return Err(PolicyError::ApprovalForOtherWorkload {
            member,
            expected: expected.to_string(),
            actual,
        });
    }
    Ok((member, word))
}

/// Verify `messages` (approvals and revocations) for `workload` under `contract` at `usage`.
///
/// Every message must be a valid `workload-approve` or `workload-revoke` by a member, for
/// this contract and for this workload's digest (one of anything else is an error, not
/// ignored: a mismatched approval usually means the workload was edited after approval).
/// Each member's latest message counts (a revocation wins a tie): a revocation withdraws
/// the member's approval until it approves again. Then every owner of every input must
/// hold an approval in force: not expired at `usage.now`, and with fewer runs than its
/// `max_runs`.
pub fn check(
    contract: &SignedContract,
    workload: &Workload,
    messages: &[SignedMessage],
    usage: Usage,
) -> Result<Approved, PolicyError> {
    let c = contract.contract();
    workload.check_against(c)?;
    let digest = workload.digest();
    let mut latest: BTreeMap<String, (u64, Word)> = BTreeMap::new();
    for a in messages {
        let (member, word) = word_of(c, a, &digest.hex())?;
        let later = match latest.get(&member) {
            None => true,
            Some((t, _)) => {
                a.created_at > *t || (a.created_at == *t && matches!(word, Word::Revoked))
            }
        };
        if later {
            latest.insert(member, (a.created_at, word));
        }
    }
    let mut approvers = BTreeSet::new();
    for (member, (_, word)) in &latest {
        if let Word::Approved(_) = word {
            approvers.insert(member.clone());
        }
    }
    for input in &workload.inputs {
        let ds = c.dataset(input).ok_or_else(|| PolicyError::UnknownInput {
            input: input.clone(),
        })?;
        let owner = ds.owner.get_ref();
        match latest.get(owner) {
            None => {
                return Err(PolicyError::MissingApproval {
                    workload: workload.name.clone(),
                    owner: owner.clone(),
                    dataset: input.clone(),
                });
            }
            Some((_, Word::Revoked)) => {
                return Err(PolicyError::ApprovalRevoked {
                    member: owner.clone(),
                    workload: workload.name.clone(),
                });
            }
            Some((_, Word::Approved(p))) => {
                if let Some(t) = p.expires_at
                    && usage.now >= t
                {
                    return Err(PolicyError::ApprovalExpired {
                        member: owner.clone(),
                        workload: workload.name.clone(),
                        expired_at: t,
                    });
                }
                if let (Some(max), Some(runs)) = (p.max_runs, usage.runs)
                    && runs >= max
                {
                    return Err(PolicyError::ApprovalRunsExhausted {
                        member: owner.clone(),
                        workload: workload.name.clone(),
                        max_runs: max,
                        runs,
                    });
                }
            }
        }
    }
    Ok(Approved { digest, approvers })
}
