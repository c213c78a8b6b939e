//! The audit log's entry format (invariant I5), shared by the room that writes it and the
//! verifier that checks it.
//!
//! JSON lines. Each entry carries `seq` (from 0), `prev` (the previous entry's hash, zeros
//! for the first), `time`, `event` (a [`Step`]), `subject`, `decision` (a [`Decision`]),
//! `reason`, and `hash` = SHA-256 of the RFC 8785 canonical JSON of the entry without
//! `hash`. A run ends with a `checkpoint` entry whose `signature` is the host identity key's
//! ECDSA P-384 signature over `"cleanroom-audit-checkpoint\0" || prev` (the chain head), and
//! whose `host_key` is that key (SEC1 hex), the key the run's evidence binds.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The log's file name in a room directory.
pub const LOG_FILE: &str = "audit.jsonl";
/// Domain separation for checkpoint signatures.
pub const CHECKPOINT_DOMAIN: &[u8] = b"cleanroom-audit-checkpoint\0";
/// The `prev` of the first entry.
pub const ZERO: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an entry is about: one step of a run, or of the log itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Contract,
    Suspension,
    Workload,
    Proposal,
    Approval,
    Attestation,
    KeyRequest,
    Decrypt,
    Precondition,
    Module,
    Query,
    Guard,
    Output,
    /// A differential-privacy spend from a dataset's budget (the ledger).
    Budget,
    Log,
    Run,
    Audit,
    Checkpoint,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Contract => "contract",
            Step::Suspension => "suspension",
            Step::Workload => "workload",
            Step::Proposal => "proposal",
            Step::Approval => "approval",
            Step::Attestation => "attestation",
            Step::KeyRequest => "key-request",
            Step::Decrypt => "decrypt",
            Step::Precondition => "precondition",
            Step::Module => "module",
            Step::Query => "query",
            Step::Guard => "guard",
            Step::Output => "output",
            Step::Budget => "budget",
            Step::Log => "log",
            Step::Run => "run",
            Step::Audit => "audit",
            Step::Checkpoint => "checkpoint",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// What was decided at a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    Accepted,
    /// Nothing to decide (no suspension in force, no proposers named).
    None,
    Granted,
    Verified,
    Ok,
    Ran,
    Applied,
    Committed,
    Discarded,
    Refused,
    Recovered,
    Signed,
    /// Budget spent (a [`Step::Budget`] entry).
    Spent,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Accepted => "accepted",
            Decision::None => "none",
            Decision::Granted => "granted",
            Decision::Verified => "verified",
            Decision::Ok => "ok",
            Decision::Ran => "ran",
            Decision::Applied => "applied",
            Decision::Committed => "committed",
            Decision::Discarded => "discarded",
            Decision::Refused => "refused",
            Decision::Recovered => "recovered",
            Decision::Signed => "signed",
            Decision::Spent => "spent",
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub seq: u64,
    pub prev: String,
    pub time: String,
    pub event: Step,
    pub subject: String,
    pub decision: Decision,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    /// On a [`Step::Budget`] entry: what the run spent from which dataset's budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend: Option<Spend>,
    #[serde(default)]
    pub hash: String,
}

/// One ledger line: ε (in micro-units, so sums are exact) spent from `dataset`'s budget by
/// the entry's run, and the δ that release spent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spend {
    pub dataset: String,
    pub epsilon_micros: u64,
    /// δ as written in the contract (a decimal string: it is recorded, not summed).
    pub delta: String,
}

/// ε spent from `dataset` so far (micro-units): the sum of the log's budget entries.
pub fn spent_micros(entries: &[Entry], dataset: &str) -> u64 {
    entries
        .iter()
        .filter(|e| e.event == Step::Budget && e.decision == Decision::Spent)
        .filter_map(|e| e.spend.as_ref())
        .filter(|s| s.dataset == dataset)
        .map(|s| s.epsilon_micros)
        .fold(0u64, u64::saturating_add)
}

/// The subject of a run's approval entry: the workload's name and digest.
pub fn workload_subject(name: &str, digest_hex: &str) -> String {
    format!("{name} ({digest_hex})")
}

/// The subject of the service's record of a revocation: the workload, the member, and the
/// SHA-256 of the signed message (so a run can check the message is still in the approvals
/// it reads: an operator who deletes it from the state directory cannot also delete it from
/// the log, whose head the brokers pin).
pub fn revocation_subject(digest_hex: &str, member: &str, message_sha256: &str) -> String {
    format!("revocation {digest_hex} {member} {message_sha256}")
}

/// The revocations of workload `digest_hex` the log records as accepted: (member, SHA-256
/// of the signed message).
pub fn recorded_revocations(entries: &[Entry], digest_hex: &str) -> Vec<(String, String)> {
    let head = format!("revocation {digest_hex} ");
    entries
        .iter()
        .filter(|e| e.event == Step::Approval && e.decision == Decision::Accepted)
        .filter_map(|e| e.subject.strip_prefix(&head))
        .filter_map(|rest| rest.split_once(' '))
        .map(|(m, h)| (m.to_string(), h.to_string()))
        .collect()
}

/// Runs of the workload with digest `digest_hex` the log records as admitted (each run that
/// passed the approval check, whatever it did next): what an approval's `max_runs` counts.
pub fn admitted_runs(entries: &[Entry], digest_hex: &str) -> u64 {
    let tail = format!("({digest_hex})");
    entries
        .iter()
        .filter(|e| e.event == Step::Approval && e.decision == Decision::Granted)
        .filter(|e| e.subject.ends_with(&tail))
        .count() as u64
}

impl Entry {
    /// SHA-256 (hex) of the canonical JSON of this entry without its `hash`.
    pub fn compute_hash(&self) -> String {
        let mut v = serde_json::to_value(self).expect("an entry serialises");
        if let Some(o) = v.as_object_mut() {
            o.remove("hash");
        }
        hex::encode(Sha256::digest(
            serde_json_canonicalizer::to_vec(&v).expect("a JSON value serialises"),
        ))
    }

    /// The bytes a checkpoint signs.
    pub fn checkpoint_message(&self) -> Vec<u8> {
        [CHECKPOINT_DOMAIN, self.prev.as_bytes()].concat()
    }
}

/// Where a torn last line starts: `Some(len)` if `text` does not end with a newline (the
/// log without its incomplete last line is `text[..len]`).
pub fn torn_tail(text: &[u8]) -> Option<usize> {
    if text.is_empty() || text.ends_with(b"\n") {
        return None;
    }
    Some(text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1))
}

/// Why a log's bytes do not parse as entries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error(
        "the last line ({bytes} bytes) is incomplete: an append cut short by a crash; the next run drops it and records that"
    )]
    TornLastLine { seq: u64, bytes: usize },
    #[error("the log is not UTF-8")]
    NotUtf8,
    #[error("line {line} is not an audit entry")]
    NotAnEntry { seq: u64, line: usize },
}

impl ParseError {
    /// The sequence number of the entry the problem is at.
    pub fn seq(&self) -> u64 {
        match self {
            ParseError::TornLastLine { seq, .. } | ParseError::NotAnEntry { seq, .. } => *seq,
            ParseError::NotUtf8 => 0,
        }
    }
}

/// Parse a whole log (a torn last line is an error here: see [`torn_tail`]).
pub fn parse(text: &[u8]) -> Result<Vec<Entry>, ParseError> {
    if let Some(cut) = torn_tail(text) {
        let complete = text[..cut].iter().filter(|b| **b == b'\n').count();
        // A complete entry without its newline is still torn: the append did not finish.
        return Err(ParseError::TornLastLine {
            seq: complete as u64,
            bytes: text.len() - cut,
        });
    }
    let text = std::str::from_utf8(text).map_err(|_| ParseError::NotUtf8)?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|_| ParseError::NotAnEntry {
                seq: i as u64,
                line: i + 1,
            })
        })
        .collect()
}

/// Parse an anchor `SEQ:HASH` (as `output open` prints it).
pub fn parse_anchor(s: &str) -> Option<(u64, String)> {
    let (seq, hash) = s.split_once(':')?;
    let seq = seq.parse().ok()?;
    (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| (seq, hash.to_ascii_lowercase()))
}
