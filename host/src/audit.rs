//! The tamper-evident audit log (invariant I5).
//!
//! JSON lines. Each entry carries `seq` (from 0), `prev` (the previous entry's hash, zeros
//! for the first), `time`, `event`, `subject`, `decision`, `reason`, and `hash` = SHA-256 of
//! the RFC 8785 canonical JSON of the entry without `hash`. A run ends with a `checkpoint`
//! entry whose `signature` is the host identity key's ECDSA P-384 signature over
//! `"cleanroom-audit-checkpoint\0" || prev` (the chain head), and whose `host_key` is that
//! key (SEC1 hex), the key the run's evidence binds. A removed, reordered or edited entry
//! breaks the chain; an entry edited and re-hashed breaks every later `prev` and the
//! checkpoint signature.
//!
//! Each append writes one line and fsyncs before returning, so an appended entry is durable
//! and an append costs the same however long the log is. A crash during an append can leave
//! an incomplete last line, an entry that was never acknowledged: `cleanroom audit verify`
//! reports it, and the next `AuditLog::open` cuts it off and appends a `recovered` entry
//! saying so, so the drop itself is on the record.

use p384::ecdsa::signature::{Signer, Verifier};
use p384::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{HostError, Result};
use crate::fsutil::Root;

pub const LOG_FILE: &str = "audit.jsonl";
const CHECKPOINT_DOMAIN: &[u8] = b"cleanroom-audit-checkpoint\0";
const ZERO: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub seq: u64,
    pub prev: String,
    pub time: String,
    pub event: String,
    pub subject: String,
    pub decision: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    #[serde(default)]
    pub hash: String,
}

impl Entry {
    fn compute_hash(&self) -> String {
        let mut e = self.clone();
        e.hash = String::new();
        let mut v = serde_json::to_value(&e).expect("serialises");
        v.as_object_mut().expect("object").remove("hash");
        hex::encode(Sha256::digest(
            serde_json_canonicalizer::to_vec(&v).expect("serialises"),
        ))
    }
}

/// An event to append.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub event: &'a str,
    pub subject: &'a str,
    pub decision: &'a str,
    pub reason: &'a str,
}

/// The audit log of a room directory.
#[derive(Debug)]
pub struct AuditLog<'r> {
    root: &'r Root,
    entries: Vec<Entry>,
    run: Option<String>,
}

impl<'r> AuditLog<'r> {
    /// Open the log in `root` (empty if absent), verifying the existing chain first: a host
    /// does not append to a broken log.
    pub fn open(root: &'r Root, run: Option<String>) -> Result<Self> {
        let path = root.display(LOG_FILE).display().to_string();
        let mut torn = None;
        let entries = if root.exists(LOG_FILE) {
            let mut text = root.read(LOG_FILE)?;
            if let Some(cut) = torn_tail(&text) {
                torn = Some(text.len() - cut);
                text.truncate(cut);
            }
            let entries = parse(&text, &path)?;
            verify_entries(&entries, &path)?;
            if torn.is_some() {
                root.truncate(LOG_FILE, text.len() as u64)?;
            }
            entries
        } else {
            Vec::new()
        };
        let mut log = Self { root, entries, run };
        if let Some(bytes) = torn {
            log.append(Event {
                event: "audit",
                subject: LOG_FILE,
                decision: "recovered",
                reason: &format!(
                    "dropped an incomplete last line of {bytes} bytes (an append cut short by a crash; it was never acknowledged)"
                ),
            })?;
        }
        Ok(log)
    }

    fn head(&self) -> String {
        self.entries
            .last()
            .map(|e| e.hash.clone())
            .unwrap_or_else(|| ZERO.into())
    }

    fn push(&mut self, mut e: Entry) -> Result<()> {
        e.hash = e.compute_hash();
        let mut line = serde_json::to_vec(&e).expect("serialises");
        line.push(b'\n');
        self.root.append_durable(LOG_FILE, &line)?;
        self.entries.push(e);
        Ok(())
    }

    fn base(&self, ev: &Event<'_>) -> Entry {
        Entry {
            seq: self.entries.len() as u64,
            prev: self.head(),
            time: crate::clock::now_rfc3339(),
            event: ev.event.into(),
            subject: ev.subject.into(),
            decision: ev.decision.into(),
            reason: ev.reason.into(),
            run: self.run.clone(),
            host_key: None,
            signature: None,
            insecure: None,
            hash: String::new(),
        }
    }

    /// Append one event (committed before returning).
    pub fn append(&mut self, ev: Event<'_>) -> Result<()> {
        let e = self.base(&ev);
        self.push(e)
    }

    /// Append a checkpoint signed by the host identity key.
    pub fn checkpoint(&mut self, key: &SigningKey, insecure: bool) -> Result<()> {
        let mut e = self.base(&Event {
            event: "checkpoint",
            subject: "chain head",
            decision: "signed",
            reason: if insecure {
                "signed by a host whose attestation is SIMULATED (INSECURE)"
            } else {
                "signed by the attested host identity key"
            },
        });
        let sig: Signature = key.sign(&[CHECKPOINT_DOMAIN, e.prev.as_bytes()].concat());
        e.host_key = Some(hex::encode(
            VerifyingKey::from(key).to_encoded_point(true).as_bytes(),
        ));
        e.signature = Some(hex::encode(sig.to_bytes()));
        e.insecure = Some(insecure);
        self.push(e)
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The last entry's `seq` and `hash`: what an output sealed now anchors.
    pub fn anchor(&self) -> Option<(u64, String)> {
        self.entries.last().map(|e| (e.seq, e.hash.clone()))
    }
}

/// Where a torn last line starts: `Some(len)` if `text` does not end with a newline (the
/// log without its incomplete last line is `text[..len]`).
fn torn_tail(text: &[u8]) -> Option<usize> {
    if text.is_empty() || text.ends_with(b"\n") {
        return None;
    }
    Some(text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1))
}

fn parse(text: &[u8], path: &str) -> Result<Vec<Entry>> {
    if let Some(cut) = torn_tail(text) {
        let complete = text[..cut].iter().filter(|b| **b == b'\n').count();
        // A complete entry without its newline is still torn: the append did not finish.
        return Err(HostError::AuditBroken {
            path: path.into(),
            seq: complete as u64,
            what: format!(
                "the last line ({} bytes) is incomplete: an append cut short by a crash; the next run drops it and records that",
                text.len() - cut
            ),
        });
    }
    let text = std::str::from_utf8(text).map_err(|_| HostError::AuditBroken {
        path: path.into(),
        seq: 0,
        what: "not UTF-8".into(),
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| HostError::AuditBroken {
                path: path.into(),
                seq: i as u64,
                what: format!("line {} is not an audit entry: {e}", i + 1),
            })
        })
        .collect()
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

fn verify_entries(entries: &[Entry], path: &str) -> Result<Summary> {
    let broken = |seq: u64, what: String| HostError::AuditBroken {
        path: path.into(),
        seq,
        what,
    };
    let mut prev = ZERO.to_string();
    let mut checkpoints = 0;
    let mut insecure = 0;
    let mut last_cp = None;
    for (i, e) in entries.iter().enumerate() {
        let i = i as u64;
        if e.seq != i {
            return Err(broken(
                i,
                format!(
                    "sequence number is {}, expected {i} (entry removed or reordered)",
                    e.seq
                ),
            ));
        }
        if e.prev != prev {
            return Err(broken(
                i,
                "does not link to the previous entry (entry removed, reordered or edited)".into(),
            ));
        }
        if e.compute_hash() != e.hash {
            return Err(broken(
                i,
                "hash does not match its content (entry edited)".into(),
            ));
        }
        if e.event == "checkpoint" {
            let (Some(k), Some(s)) = (&e.host_key, &e.signature) else {
                return Err(broken(i, "checkpoint without key or signature".into()));
            };
            let key = hex::decode(k)
                .ok()
                .and_then(|b| VerifyingKey::from_sec1_bytes(&b).ok())
                .ok_or_else(|| broken(i, "checkpoint host key is malformed".into()))?;
            let sig = hex::decode(s)
                .ok()
                .and_then(|b| Signature::from_slice(&b).ok())
                .ok_or_else(|| broken(i, "checkpoint signature is malformed".into()))?;
            key.verify(&[CHECKPOINT_DOMAIN, e.prev.as_bytes()].concat(), &sig)
                .map_err(|_| broken(i, "checkpoint signature does not verify".into()))?;
            checkpoints += 1;
            if e.insecure != Some(false) {
                insecure += 1;
            }
            last_cp = Some(i);
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
pub fn verify_bytes(text: &[u8], path: &str) -> Result<Summary> {
    verify_with_anchors(text, path, &[])
}

/// Parse an anchor `SEQ:HASH` (as `output open` prints it).
pub fn parse_anchor(s: &str) -> Option<(u64, String)> {
    let (seq, hash) = s.split_once(':')?;
    let seq = seq.parse().ok()?;
    (hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| (seq, hash.to_ascii_lowercase()))
}

/// Verify a log and check that it holds every anchored entry (`seq`, `hash`) taken from
/// outputs: a log cut short before an output's anchor, or rewritten from there, verifies on
/// its own but fails here.
pub fn verify_with_anchors(text: &[u8], path: &str, anchors: &[(u64, String)]) -> Result<Summary> {
    let entries = parse(text, path)?;
    let summary = verify_entries(&entries, path)?;
    for (seq, hash) in anchors {
        match entries.get(*seq as usize) {
            Some(e) if &e.hash == hash => {}
            Some(_) => {
                return Err(HostError::AuditBroken {
                    path: path.into(),
                    seq: *seq,
                    what: "is not the entry an output anchors (the log was rewritten)".into(),
                });
            }
            None => {
                return Err(HostError::AuditBroken {
                    path: path.into(),
                    seq: *seq,
                    what: format!(
                        "is missing: an output anchors it, but the log ends at entry {} (truncated)",
                        entries.len().saturating_sub(1)
                    ),
                });
            }
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with_entries(dir: &std::path::Path) -> Vec<u8> {
        let root = Root::open_or_create(dir).unwrap();
        let mut log = AuditLog::open(&root, Some("r1".into())).unwrap();
        for ev in ["a", "b", "c"] {
            log.append(Event {
                event: ev,
                subject: "s",
                decision: "granted",
                reason: "r",
            })
            .unwrap();
        }
        log.checkpoint(&SigningKey::from_slice(&[5; 48]).unwrap(), true)
            .unwrap();
        root.read(LOG_FILE).unwrap()
    }

    fn lines(b: &[u8]) -> Vec<String> {
        String::from_utf8(b.to_vec())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn intact_log_verifies() {
        let d = tempfile::tempdir().unwrap();
        let s = verify_bytes(&log_with_entries(d.path()), "log").unwrap();
        assert_eq!((s.entries, s.checkpoints, s.unsigned_tail), (4, 1, 0));
    }

    #[test]
    fn torn_last_line_is_reported_then_dropped_and_recorded() {
        let d = tempfile::tempdir().unwrap();
        let mut text = log_with_entries(d.path());
        let whole = text.clone();
        // A crash in the middle of appending a fifth entry.
        text.extend_from_slice(br#"{"seq":4,"prev":"ab"#);
        std::fs::write(d.path().join(LOG_FILE), &text).unwrap();
        let err = verify_bytes(&text, "log").unwrap_err();
        assert!(
            matches!(&err, HostError::AuditBroken { seq: 4, what, .. } if what.contains("incomplete")),
            "{err}"
        );
        // The next open cuts the torn line and says so on the record.
        let root = Root::open(d.path()).unwrap();
        let log = AuditLog::open(&root, Some("r2".into())).unwrap();
        let last = log.entries().last().unwrap();
        assert_eq!(
            (last.event.as_str(), last.decision.as_str()),
            ("audit", "recovered")
        );
        let now = root.read(LOG_FILE).unwrap();
        assert!(now.starts_with(&whole));
        let s = verify_bytes(&now, "log").unwrap();
        assert_eq!((s.entries, s.unsigned_tail), (5, 1));
    }

    #[test]
    fn appends_add_lines_without_rewriting_earlier_ones() {
        let d = tempfile::tempdir().unwrap();
        let before = log_with_entries(d.path());
        let root = Root::open(d.path()).unwrap();
        let mut log = AuditLog::open(&root, None).unwrap();
        log.append(Event {
            event: "e",
            subject: "s",
            decision: "ok",
            reason: "r",
        })
        .unwrap();
        let after = root.read(LOG_FILE).unwrap();
        assert!(after.starts_with(&before));
        assert_eq!(verify_bytes(&after, "log").unwrap().entries, 5);
    }

    #[test]
    fn detects_removed_entry() {
        let d = tempfile::tempdir().unwrap();
        let mut l = lines(&log_with_entries(d.path()));
        l.remove(1);
        let err = verify_bytes(format!("{}\n", l.join("\n")).as_bytes(), "log").unwrap_err();
        assert!(
            matches!(err, HostError::AuditBroken { seq: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn detects_reordered_entries() {
        let d = tempfile::tempdir().unwrap();
        let mut l = lines(&log_with_entries(d.path()));
        l.swap(1, 2);
        assert!(matches!(
            verify_bytes(format!("{}\n", l.join("\n")).as_bytes(), "log"),
            Err(HostError::AuditBroken { seq: 1, .. })
        ));
    }

    #[test]
    fn detects_edited_entry() {
        let d = tempfile::tempdir().unwrap();
        let l = lines(&log_with_entries(d.path()));
        let edited = format!("{}\n", l.join("\n")).replacen("\"granted\"", "\"refused\"", 1);
        assert!(matches!(
            verify_bytes(edited.as_bytes(), "log"),
            Err(HostError::AuditBroken { seq: 0, .. })
        ));
    }

    #[test]
    fn detects_rehashed_forgery_by_checkpoint_signature() {
        let d = tempfile::tempdir().unwrap();
        let l = lines(&log_with_entries(d.path()));
        // Forge: edit entry 0 and recompute every hash and link, keeping the old signature.
        let mut entries: Vec<Entry> = l.iter().map(|x| serde_json::from_str(x).unwrap()).collect();
        entries[0].decision = "refused".into();
        let mut prev = ZERO.to_string();
        for e in &mut entries {
            e.prev = prev.clone();
            e.hash = e.compute_hash();
            prev = e.hash.clone();
        }
        let text: Vec<String> = entries
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect();
        let err = verify_bytes(format!("{}\n", text.join("\n")).as_bytes(), "log").unwrap_err();
        assert!(
            matches!(err, HostError::AuditBroken { seq: 3, ref what, .. } if what.contains("signature")),
            "{err}"
        );
    }
}
