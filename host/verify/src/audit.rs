//! Verifying an audit log: the hash chain, every checkpoint signature, and the entries
//! outputs anchor (`cleanroom audit verify`, and the room before it appends); then, given
//! the runs' verified evidence, which checkpoints count: a checkpoint's own `host_key` proves
//! nothing (anyone can re-sign a rewritten log with a fresh key), so only a checkpoint signed
//! by the key bound in its run's evidence covers the entries before it.

use std::collections::BTreeMap;

use cleanroom_formats::audit::{self, Entry, ParseError, Step, ZERO};
use p384::ecdsa::signature::Verifier;
use p384::ecdsa::{Signature, VerifyingKey};

use crate::evidence::AttestedHost;

/// What is wrong with a log, at which entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error(transparent)]
    Unparsable(#[from] ParseError),
    #[error("entry {seq}: sequence number is {found}, expected {seq} (entry removed or reordered)")]
    OutOfSequence { seq: u64, found: u64 },
    #[error(
        "entry {seq}: does not link to the previous entry (entry removed, reordered or edited)"
    )]
    BrokenLink { seq: u64 },
    #[error("entry {seq}: hash does not match its content (entry edited)")]
    HashMismatch { seq: u64 },
    #[error("entry {seq}: checkpoint without key or signature")]
    CheckpointUnsigned { seq: u64 },
    #[error("entry {seq}: checkpoint host key or signature is malformed")]
    CheckpointMalformed { seq: u64 },
    #[error("entry {seq}: checkpoint signature does not verify")]
    CheckpointSignatureInvalid { seq: u64 },
    #[error("entry {seq}: is not the entry an output anchors (the log was rewritten)")]
    AnchorRewritten { seq: u64 },
    #[error(
        "entry {seq}: is missing: an output anchors it, but the log ends at entry {last} (truncated)"
    )]
    AnchorMissing { seq: u64, last: u64 },
    #[error(
        "entry {seq}: checkpoint of run {run} is not signed by the key bound in that run's evidence (the log was rewritten and re-signed)"
    )]
    CheckpointKeyNotAttested { seq: u64, run: String },
    #[error(
        "no checkpoint in the log is signed by a key bound in the evidence given: nothing in its {entries} entries is tied to an attested room"
    )]
    NoAttestedCheckpoint { entries: u64 },
}

impl AuditError {
    /// The entry the problem is at.
    pub fn seq(&self) -> u64 {
        match self {
            AuditError::Unparsable(p) => p.seq(),
            AuditError::OutOfSequence { seq, .. }
            | AuditError::BrokenLink { seq }
            | AuditError::HashMismatch { seq }
            | AuditError::CheckpointUnsigned { seq }
            | AuditError::CheckpointMalformed { seq }
            | AuditError::CheckpointSignatureInvalid { seq }
            | AuditError::AnchorRewritten { seq }
            | AuditError::AnchorMissing { seq, .. }
            | AuditError::CheckpointKeyNotAttested { seq, .. } => *seq,
            AuditError::NoAttestedCheckpoint { .. } => 0,
        }
    }
}

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub entries: u64,
    pub checkpoints: u64,
    pub insecure_checkpoints: u64,
    pub head: String,
    /// Entries after the last checkpoint (not covered by a signature).
    pub unsigned_tail: u64,
}

/// The chain of parsed entries: sequence numbers, links, each entry's hash, and a key and
/// a signature on every checkpoint; not the signatures themselves. Returns the head hash.
///
/// What the room checks when it opens its own log before appending: the operator, who
/// owns the disk, can re-sign a rewritten checkpoint with a key of his own, so checking the
/// signatures there would stop nothing he can do; binding each checkpoint's key to its
/// run's evidence does ([`verify_against_evidence`], `audit verify --evidence`), and the
/// brokers refuse a log that does not extend the head they saw.
pub fn verify_chain(entries: &[Entry]) -> Result<String, AuditError> {
    let mut prev = ZERO.to_string();
    for (i, e) in entries.iter().enumerate() {
        let seq = i as u64;
        if e.seq != seq {
            return Err(AuditError::OutOfSequence { seq, found: e.seq });
        }
        if e.prev != prev {
            return Err(AuditError::BrokenLink { seq });
        }
        if e.compute_hash() != e.hash {
            return Err(AuditError::HashMismatch { seq });
        }
        if e.event == Step::Checkpoint && (e.host_key.is_none() || e.signature.is_none()) {
            return Err(AuditError::CheckpointUnsigned { seq });
        }
        prev = e.hash.clone();
    }
    Ok(prev)
}

/// Verify parsed entries: the chain ([`verify_chain`]), then every checkpoint's signature.
pub fn verify_entries(entries: &[Entry]) -> Result<Summary, AuditError> {
    let head = verify_chain(entries)?;
    let mut checkpoints = 0;
    let mut insecure = 0;
    let mut last_cp = None;
    for e in entries.iter().filter(|e| e.event == Step::Checkpoint) {
        let seq = e.seq;
        let (Some(k), Some(s)) = (&e.host_key, &e.signature) else {
            return Err(AuditError::CheckpointUnsigned { seq });
        };
        let key = hex::decode(k)
            .ok()
            .and_then(|b| VerifyingKey::from_sec1_bytes(&b).ok())
            .ok_or(AuditError::CheckpointMalformed { seq })?;
        let sig = hex::decode(s)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or(AuditError::CheckpointMalformed { seq })?;
        key.verify(&e.checkpoint_message(), &sig)
            .map_err(|_| AuditError::CheckpointSignatureInvalid { seq })?;
        checkpoints += 1;
        if e.insecure != Some(false) {
            insecure += 1;
        }
        last_cp = Some(seq);
    }
    let n = entries.len() as u64;
    Ok(Summary {
        entries: n,
        checkpoints,
        insecure_checkpoints: insecure,
        head,
        unsigned_tail: match last_cp {
            Some(c) => n - c - 1,
            None => n,
        },
    })
}

/// Verify a log file's bytes (for `cleanroom audit verify`).
pub fn verify_bytes(text: &[u8]) -> Result<Summary, AuditError> {
    verify_with_anchors(text, &[])
}

/// Verify a log and check that it holds every anchored entry (`seq`, `hash`) taken from
/// outputs: a log cut short before an output's anchor, or rewritten from there, verifies on
/// its own but fails here.
pub fn verify_with_anchors(text: &[u8], anchors: &[(u64, String)]) -> Result<Summary, AuditError> {
    let entries = audit::parse(text)?;
    let summary = verify_entries(&entries)?;
    for (seq, hash) in anchors {
        match entries.get(*seq as usize) {
            Some(e) if &e.hash == hash => {}
            Some(_) => return Err(AuditError::AnchorRewritten { seq: *seq }),
            None => {
                return Err(AuditError::AnchorMissing {
                    seq: *seq,
                    last: (entries.len() as u64).saturating_sub(1),
                });
            }
        }
    }
    Ok(summary)
}

/// What the runs' evidence says about a log's checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attested {
    /// Checkpoints signed by the key bound in their run's verified evidence.
    pub checkpoints: u64,
    /// Of those, by hosts whose evidence is simulated (INSECURE).
    pub insecure: u64,
    /// Checkpoints of runs without evidence (a run refused before it attested, or evidence
    /// not given): they do not count.
    pub unattested: u64,
    /// Entries after the last attested checkpoint: nothing ties them to an attested room.
    pub uncovered_tail: u64,
    /// Runs whose evidence was given but whose checkpoint is not in the log (a run that
    /// crashed, or a log cut or rewritten).
    pub runs_without_checkpoint: Vec<String>,
}

/// Verify a log (as [`verify_with_anchors`]) and count only the checkpoints signed by the
/// key bound in their run's verified evidence (`runs`: run id → the host its evidence
/// proves). A checkpoint of a run whose evidence binds another key is an error (the log was
/// re-signed); a checkpoint of a run without evidence does not count; a log none of whose
/// checkpoints counts is refused.
pub fn verify_against_evidence(
    text: &[u8],
    anchors: &[(u64, String)],
    runs: &BTreeMap<String, AttestedHost>,
) -> Result<(Summary, Attested), AuditError> {
    let summary = verify_with_anchors(text, anchors)?;
    let entries = audit::parse(text)?;
    let mut attested = Attested {
        checkpoints: 0,
        insecure: 0,
        unattested: 0,
        uncovered_tail: summary.entries,
        runs_without_checkpoint: Vec::new(),
    };
    let mut seen = std::collections::BTreeSet::new();
    for e in entries.iter().filter(|e| e.event == Step::Checkpoint) {
        let host = e.run.as_ref().and_then(|r| runs.get(r).map(|h| (r, h)));
        let Some((run, host)) = host else {
            attested.unattested += 1;
            continue;
        };
        // The signature was checked against `host_key` above; the key must be the run's.
        if !e
            .host_key
            .as_deref()
            .is_some_and(|k| k.eq_ignore_ascii_case(&host.host_key_hex))
        {
            return Err(AuditError::CheckpointKeyNotAttested {
                seq: e.seq,
                run: run.clone(),
            });
        }
        seen.insert(run.as_str());
        attested.checkpoints += 1;
        if host.insecure {
            attested.insecure += 1;
        }
        attested.uncovered_tail = summary.entries - e.seq - 1;
    }
    if summary.entries > 0 && attested.checkpoints == 0 {
        return Err(AuditError::NoAttestedCheckpoint {
            entries: summary.entries,
        });
    }
    attested.runs_without_checkpoint = runs
        .keys()
        .filter(|r| !seen.contains(r.as_str()))
        .cloned()
        .collect();
    Ok((summary, attested))
}
