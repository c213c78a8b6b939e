//! Suspension (invariant I3: any member can suspend execution; suspension takes effect
//! before the next run starts).
//!
//! A member signs a COSE_Sign1 `suspend` (payload: canonical JSON `{"reason": text}`) or
//! `resume` (`{}` or a reason) for the contract. Each member holds its own suspension: the
//! room is suspended while any member's latest message, by `cr.created`, is a `suspend`. A
//! member's `resume` lifts only that member's suspension, so one member can never overrule
//! another's. Messages are only ever added (the room keeps them in a file, each broker in
//! its database), and an old `resume` replayed after a newer `suspend` changes nothing,
//! because the newer message wins.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::PolicyError;
use crate::contract::SignedContract;
use crate::message::{MessageType, SignedMessage};

/// What a suspend or resume message carries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GovernancePayload {
    /// Why, in the member's words (shown to members and operators; never data).
    #[serde(default)]
    pub reason: String,
}

impl GovernancePayload {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json_canonicalizer::to_vec(self).expect("serialises")
    }
}

/// A member's suspension in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspended {
    pub member: String,
    pub since_unix: u64,
    pub reason: String,
}

/// Verify one suspend or resume message under `contract`; returns the member.
pub fn verify(contract: &SignedContract, msg: &SignedMessage) -> Result<String, PolicyError> {
    let c = contract.contract();
    let expected = match msg.message_type {
        MessageType::Suspend | MessageType::Resume => msg.message_type,
        // Verified as a suspension, so the error names what was expected.
        _ => MessageType::Suspend,
    };
    let member = c
        .verify_member_message(msg, expected)?
        .name
        .get_ref()
        .clone();
    serde_json::from_slice::<GovernancePayload>(&msg.payload).map_err(|e| {
        PolicyError::MalformedMessage {
            reason: format!("{} payload from `{member}`: {e}", expected.as_str()),
        }
    })?;
    Ok(member)
}

/// The suspensions in force after `messages`, given in the order they were recorded (each
/// verified; any invalid message is an error, not skipped: a forged or foreign message in
/// the record means it was tampered with). Sorted by member name; empty means the room may
/// run.
pub fn suspensions(
    contract: &SignedContract,
    messages: &[SignedMessage],
) -> Result<Vec<Suspended>, PolicyError> {
    let mut latest: BTreeMap<String, &SignedMessage> = BTreeMap::new();
    for m in messages {
        let member = verify(contract, m)?;
        // The later message wins; on equal timestamps, the one recorded later.
        let replace = latest
            .get(&member)
            .is_none_or(|prev| m.created_at >= prev.created_at);
        if replace {
            latest.insert(member, m);
        }
    }
    Ok(latest
        .into_iter()
        .filter(|(_, m)| m.message_type == MessageType::Suspend)
        .map(|(member, m)| Suspended {
            member,
            since_unix: m.created_at,
            reason: serde_json::from_slice::<GovernancePayload>(&m.payload)
                .map(|p| p.reason)
                .unwrap_or_default(),
        })
        .collect())
}

/// Refuse when any member's suspension is in force.
pub fn check(contract: &SignedContract, messages: &[SignedMessage]) -> Result<(), PolicyError> {
    let s = suspensions(contract, messages)?;
    if s.is_empty() {
        return Ok(());
    }
    Err(PolicyError::Suspended {
        by: s
            .iter()
            .map(|s| format!("`{}`", s.member))
            .collect::<Vec<_>>()
            .join(", "),
    })
}
