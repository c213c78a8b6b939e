//! Requests members sign for a room service: `run-request` (run an approved workload) and
//! `output-fetch` (read a sealed output). Each carries a nonce; its `cr.created` must be
//! within the service's freshness window of the service's clock. Whether a nonce was seen
//! before is the service's state (its audit log), not this crate's.
//!
//! Who may request a run: the members the contract names in `governance.runners`, or, when
//! it names none, the workload's proposer and the owners of its inputs.

use serde::{Deserialize, Serialize};

use crate::PolicyError;
use crate::contract::SignedContract;
use crate::message::{MessageType, SignedMessage};
use crate::workload::Workload;

/// The payload of a `run-request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequestPayload {
    pub workload_digest: String,
    /// 32 hex characters, fresh per request.
    pub nonce: String,
}

/// The payload of an `output-fetch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputFetchPayload {
    /// The output's file name (`<run>-<index>.cro`).
    pub output: String,
    pub nonce: String,
}

/// The payload of a `run-cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunCancelPayload {
    /// The run's id in the service (`q-...`).
    pub run: String,
    pub nonce: String,
}

macro_rules! payload_bytes {
    ($t:ty) => {
        impl $t {
            pub fn to_bytes(&self) -> Vec<u8> {
                serde_json_canonicalizer::to_vec(self).expect("serialises")
            }
        }
    };
}
payload_bytes!(RunRequestPayload);
payload_bytes!(OutputFetchPayload);
payload_bytes!(RunCancelPayload);

/// A verified, fresh request: who sent it and its nonce. Only this module makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fresh<P> {
    member: String,
    created_at: u64,
    payload: P,
}

impl<P> Fresh<P> {
    pub fn member(&self) -> &str {
        &self.member
    }
    pub fn created_at(&self) -> u64 {
        self.created_at
    }
    pub fn payload(&self) -> &P {
        &self.payload
    }
}

fn is_nonce(n: &str) -> bool {
    n.len() == 32
        && n.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Signed by a member, for this contract, of type `expected`, created within `window`
/// seconds of `now`, with a well-formed payload and nonce.
fn open<P: serde::de::DeserializeOwned>(
    contract: &SignedContract,
    msg: &SignedMessage,
    expected: MessageType,
    now: u64,
    window: u64,
    nonce_of: impl Fn(&P) -> &str,
) -> Result<Fresh<P>, PolicyError> {
    let member = contract
        .contract()
        .verify_member_message(msg, expected)?
        .name
        .get_ref()
        .clone();
    if msg.created_at.abs_diff(now) > window {
        return Err(PolicyError::StaleRequest {
            member,
            created_at: msg.created_at,
            now,
            window,
        });
    }
    let payload: P =
        serde_json::from_slice(&msg.payload).map_err(|e| PolicyError::MalformedMessage {
            reason: format!("{} payload from `{member}`: {e}", expected.as_str()),
        })?;
    if !is_nonce(nonce_of(&payload)) {
        return Err(PolicyError::MalformedMessage {
            reason: format!(
                "{} from `{member}`: the nonce is not 32 lowercase hex characters",
                expected.as_str()
            ),
        });
    }
    Ok(Fresh {
        member,
        created_at: msg.created_at,
        payload,
    })
}

/// Verify a run request for `workload` (proposed by `proposer`, if the service holds its
/// proposal): a fresh request by its proposer or an owner of one of its inputs.
pub fn run_request(
    contract: &SignedContract,
    msg: &SignedMessage,
    workload: &Workload,
    proposer: Option<&str>,
    now: u64,
    window: u64,
) -> Result<Fresh<RunRequestPayload>, PolicyError> {
    let fresh = open(
        contract,
        msg,
        MessageType::RunRequest,
        now,
        window,
        |p: &RunRequestPayload| &p.nonce,
    )?;
    let digest = workload.digest().hex();
    if fresh.payload.workload_digest != digest {
        return Err(PolicyError::MalformedMessage {
            reason: format!(
                "run request from `{}` is for workload {}, not {digest}",
                fresh.member, fresh.payload.workload_digest
            ),
        });
    }
    let c = contract.contract();
    let runners = &c.governance.runners;
    let allowed = if runners.is_empty() {
        let owner = workload.inputs.iter().any(|i| {
            c.dataset(i)
                .is_some_and(|d| d.owner.get_ref() == &fresh.member)
        });
        owner || proposer == Some(fresh.member.as_str())
    } else {
        runners.iter().any(|r| r.get_ref() == &fresh.member)
    };
    if !allowed {
        return Err(PolicyError::RunNotAllowed {
            member: fresh.member,
            workload: workload.name.clone(),
        });
    }
    Ok(fresh)
}

/// Verify a run cancellation: a fresh request by the member who requested the run
/// (`requested_by`) or an owner of one of the workload's inputs.
pub fn run_cancel(
    contract: &SignedContract,
    msg: &SignedMessage,
    workload: &Workload,
    requested_by: &str,
    now: u64,
    window: u64,
) -> Result<Fresh<RunCancelPayload>, PolicyError> {
    let fresh = open(
        contract,
        msg,
        MessageType::RunCancel,
        now,
        window,
        |p: &RunCancelPayload| &p.nonce,
    )?;
    let c = contract.contract();
    let owner = workload.inputs.iter().any(|i| {
        c.dataset(i)
            .is_some_and(|d| d.owner.get_ref() == &fresh.member)
    });
    if !(owner || fresh.member == requested_by) {
        return Err(PolicyError::CancelNotAllowed {
            member: fresh.member,
            run: fresh.payload.run,
        });
    }
    Ok(fresh)
}

/// Verify an output fetch: a fresh request by a member (whether it receives that output is
/// the service's check, against the output's own recipients).
pub fn output_fetch(
    contract: &SignedContract,
    msg: &SignedMessage,
    now: u64,
    window: u64,
) -> Result<Fresh<OutputFetchPayload>, PolicyError> {
    open(
        contract,
        msg,
        MessageType::OutputFetch,
        now,
        window,
        |p: &OutputFetchPayload| &p.nonce,
    )
}
