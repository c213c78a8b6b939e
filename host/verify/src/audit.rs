//! Verifying an audit log: the hash chain, every checkpoint signature, and the entries
//! outputs anchor (`cleanroom audit verify`, and the room before it appends).

use cleanroom_formats::audit::{self, Entry, ParseError, Step, ZERO};
use p384::ecdsa::signature::Verifier;
use p384::ecdsa::{Signature, VerifyingKey};

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
            | AuditError::AnchorMissing { seq, .. } => *seq,
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

/// Verify parsed entries: sequence, links, hashes, checkpoint signatures.
pub fn verify_entries(entries: &[Entry]) -> Result<Summary, AuditError> {
    let mut prev = ZERO.to_string();
    let mut checkpoints = 0;
    let mut insecure = 0;
    let mut last_cp = None;
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
        if e.event == Step::Checkpoint {
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
        prev = e.hash.clone();
    }
    let n = entries.len() as u64;
    Ok(Summary {
        entries: n,
        checkpoints,
        insecure_checkpoints: insecure,
        head: prev,
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
