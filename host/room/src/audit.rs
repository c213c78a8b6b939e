//! The room's audit-log writer (invariant I5). The entry format is
//! `cleanroom_formats::audit`; verification is `cleanroom_verify::audit`.
//!
//! Each append writes one line and fsyncs before returning, so an appended entry is durable
//! and an append costs the same however long the log is. A crash during an append can leave
//! an incomplete last line, an entry that was never acknowledged: `cleanroom audit verify`
//! reports it, and the next `AuditLog::open` cuts it off and appends a `recovered` entry
//! saying so, so the drop itself is on the record.

use cleanroom_formats::audit::{self as format, Decision, Entry, LOG_FILE, Step, ZERO};
use cleanroom_formats::fsutil::{FileStamp, Root};
use cleanroom_verify::audit::verify_chain;
use p384::ecdsa::signature::Signer;
use p384::ecdsa::{Signature, SigningKey, VerifyingKey};

use crate::error::{Result, RoomError};

/// A log this host verified (or wrote) and the version of its file it last saw: what
/// [`AuditLog::reopen`] resumes from without reading and verifying the whole chain again.
/// Only [`AuditLog::close`] makes one.
#[derive(Debug)]
pub struct VerifiedLog {
    entries: Vec<Entry>,
    stamp: FileStamp,
}

/// An event to append.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub event: Step,
    pub subject: &'a str,
    pub decision: Decision,
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
        let broken = |source| RoomError::AuditBroken {
            path: path.clone(),
            source,
        };
        let mut torn = None;
        let entries = if root.exists(LOG_FILE) {
            let mut text = root.read(LOG_FILE)?;
            if let Some(cut) = format::torn_tail(&text) {
                torn = Some(text.len() - cut);
                text.truncate(cut);
            }
            let entries = format::parse(&text).map_err(|e| broken(e.into()))?;
            verify_chain(&entries).map_err(broken)?;
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
                event: Step::Audit,
                subject: LOG_FILE,
                decision: Decision::Recovered,
                reason: &format!(
                    "dropped an incomplete last line of {bytes} bytes (an append cut short by a crash; it was never acknowledged)"
                ),
            })?;
        }
        Ok(log)
    }

    /// [`AuditLog::open`], unless `known` is the log file as it is now (the same size, inode
    /// and change time as when this host closed it): then the log resumes from `known`
    /// without reading and verifying the chain again, which costs time in proportion to the
    /// log. Any change to the file since (another writer's append, an edit, a replacement)
    /// makes this a full open, which refuses a broken chain.
    pub fn reopen(root: &'r Root, run: Option<String>, known: Option<VerifiedLog>) -> Result<Self> {
        if let Some(k) = known
            && root.stamp(LOG_FILE)? == Some(k.stamp)
        {
            return Ok(Self {
                root,
                entries: k.entries,
                run,
            });
        }
        Self::open(root, run)
    }

    /// Close the log, keeping what it verified and wrote for [`AuditLog::reopen`]; None when
    /// there is no log file (an empty log costs nothing to open).
    pub fn close(self) -> Result<Option<VerifiedLog>> {
        Ok(self.root.stamp(LOG_FILE)?.map(|stamp| VerifiedLog {
            entries: self.entries,
            stamp,
        }))
    }

    /// Put the outputs directory back in step with the log after a crash, on the record:
    /// remove temporary files a sealing left before its rename (never outputs), and record
    /// every output the log says was committed whose file was never renamed into place (the
    /// record comes first, so a crash between the two leaves a record without a file, never a
    /// file without a record). Each is recorded once.
    pub fn recover_outputs(&mut self) -> Result<()> {
        const OUTPUTS: &str = "outputs";
        for name in self.root.list(OUTPUTS)? {
            if name.starts_with('.') && name.contains(".tmp-") {
                let rel = format!("{OUTPUTS}/{name}");
                self.root.remove_file(&rel)?;
                self.append(Event {
                    event: Step::Output,
                    subject: &rel,
                    decision: Decision::Recovered,
                    reason: "removed a temporary file a crash left before its rename (never an output)",
                })?;
            }
        }
        let recovered: std::collections::HashSet<String> = self
            .entries
            .iter()
            .filter(|e| e.event == Step::Output && e.decision == Decision::Recovered)
            .map(|e| e.subject.clone())
            .collect();
        let missing: Vec<String> = self
            .entries
            .iter()
            .filter(|e| e.event == Step::Output && e.decision == Decision::Committed)
            .map(|e| e.subject.clone())
            .filter(|s| !recovered.contains(s) && !self.root.exists(s))
            .collect();
        for rel in missing {
            self.append(Event {
                event: Step::Output,
                subject: &rel,
                decision: Decision::Recovered,
                reason: "recorded as committed, but its file was never renamed into place (a crash between the record and the rename): there is no such output",
            })?;
        }
        Ok(())
    }

    fn head(&self) -> String {
        self.entries
            .last()
            .map(|e| e.hash.clone())
            .unwrap_or_else(|| ZERO.into())
    }

    fn push(&mut self, mut e: Entry) -> Result<()> {
        e.hash = e.compute_hash();
        let mut line = serde_json::to_vec(&e).expect("an entry serialises");
        line.push(b'\n');
        self.root.append_durable(LOG_FILE, &line)?;
        self.entries.push(e);
        Ok(())
    }

    fn base(&self, ev: &Event<'_>) -> Entry {
        Entry {
            seq: self.entries.len() as u64,
            prev: self.head(),
            time: cleanroom_formats::clock::now_rfc3339(),
            event: ev.event,
            subject: ev.subject.into(),
            decision: ev.decision,
            reason: ev.reason.into(),
            run: self.run.clone(),
            host_key: None,
            signature: None,
            insecure: None,
            spend: None,
            hash: String::new(),
        }
    }

    /// Append one event (committed before returning).
    pub fn append(&mut self, ev: Event<'_>) -> Result<()> {
        let e = self.base(&ev);
        self.push(e)
    }

    /// Append a budget (ledger) entry: `spend` charged to its dataset by this run. Durable
    /// before it returns, like every append: a release that follows it is on the record
    /// with its cost, and a crash after it leaves the budget spent, never refunded.
    pub fn spend(&mut self, spend: cleanroom_formats::audit::Spend, reason: &str) -> Result<()> {
        let subject = spend.dataset.clone();
        let mut e = self.base(&Event {
            event: Step::Budget,
            subject: &subject,
            decision: Decision::Spent,
            reason,
        });
        e.spend = Some(spend);
        self.push(e)
    }

    /// ε spent from `dataset` so far (micro-units), from the whole log.
    pub fn spent_micros(&self, dataset: &str) -> u64 {
        cleanroom_formats::audit::spent_micros(&self.entries, dataset)
    }

    /// Append a checkpoint signed by the host identity key.
    pub fn checkpoint(&mut self, key: &SigningKey, insecure: bool) -> Result<()> {
        let mut e = self.base(&Event {
            event: Step::Checkpoint,
            subject: "chain head",
            decision: Decision::Signed,
            reason: if insecure {
                "signed by a host whose attestation is SIMULATED (INSECURE)"
            } else {
                "signed by the attested host identity key"
            },
        });
        let sig: Signature = key.sign(&e.checkpoint_message());
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

#[cfg(test)]
mod tests {
    use super::*;
    use cleanroom_formats::audit::ParseError;
    use cleanroom_verify::audit::{AuditError, verify_bytes};

    fn log_with_entries(dir: &std::path::Path) -> Vec<u8> {
        let root = Root::open_or_create(dir).unwrap();
        let mut log = AuditLog::open(&root, Some("r1".into())).unwrap();
        for ev in [Step::Contract, Step::Approval, Step::Decrypt] {
            log.append(Event {
                event: ev,
                subject: "s",
                decision: Decision::Granted,
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

    /// The service keeps its log between requests (`reopen`): an unchanged file resumes, and
    /// the next append continues the chain as a full open would have.
    #[test]
    fn an_unchanged_log_resumes_and_its_chain_continues() {
        let dir = tempfile::tempdir().unwrap();
        log_with_entries(dir.path());
        let root = Root::open(dir.path()).unwrap();
        let known = AuditLog::open(&root, None).unwrap().close().unwrap();
        let mut log = AuditLog::reopen(&root, None, known).unwrap();
        log.append(Event {
            event: Step::Proposal,
            subject: "p",
            decision: Decision::Accepted,
            reason: "r",
        })
        .unwrap();
        let n = log.entries().len();
        drop(log);
        assert_eq!(AuditLog::open(&root, None).unwrap().entries().len(), n);
        verify_bytes(&root.read(LOG_FILE).unwrap()).unwrap();
    }

    /// The operator edits an entry in place between two requests, keeping the file's size:
    /// the kept log is not trusted for a changed file, and the full open refuses the chain.
    #[test]
    fn a_log_edited_between_requests_is_verified_again_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = log_with_entries(dir.path());
        let root = Root::open(dir.path()).unwrap();
        let known = AuditLog::open(&root, None).unwrap().close().unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let edited = text.replacen("\"subject\":\"s\"", "\"subject\":\"t\"", 1);
        assert_eq!(edited.len(), text.len());
        assert_ne!(edited, text);
        // Rewritten in place: same inode, same size.
        std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(LOG_FILE))
            .and_then(|mut f| std::io::Write::write_all(&mut f, edited.as_bytes()))
            .unwrap();
        assert!(matches!(
            AuditLog::reopen(&root, None, known),
            Err(RoomError::AuditBroken {
                source: AuditError::HashMismatch { .. },
                ..
            })
        ));
    }

    /// `log` with entry 0 edited and every hash and link recomputed, keeping the old
    /// checkpoint signature.
    fn rehashed_forgery(log: &[u8]) -> String {
        let mut entries: Vec<Entry> = lines(log)
            .iter()
            .map(|x| serde_json::from_str(x).unwrap())
            .collect();
        entries[0].decision = Decision::Refused;
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
        format!("{}\n", text.join("\n"))
    }

    #[test]
    fn intact_log_verifies() {
        let d = tempfile::tempdir().unwrap();
        let s = verify_bytes(&log_with_entries(d.path())).unwrap();
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
        let err = verify_bytes(&text).unwrap_err();
        assert!(
            matches!(
                err,
                AuditError::Unparsable(ParseError::TornLastLine { seq: 4, .. })
            ),
            "{err}"
        );
        // The next open cuts the torn line and says so on the record.
        let root = Root::open(d.path()).unwrap();
        let log = AuditLog::open(&root, Some("r2".into())).unwrap();
        let last = log.entries().last().unwrap();
        assert_eq!(
            (last.event, last.decision),
            (Step::Audit, Decision::Recovered)
        );
        let now = root.read(LOG_FILE).unwrap();
        assert!(now.starts_with(&whole));
        let s = verify_bytes(&now).unwrap();
        assert_eq!((s.entries, s.unsigned_tail), (5, 1));
    }

    #[test]
    fn appends_add_lines_without_rewriting_earlier_ones() {
        let d = tempfile::tempdir().unwrap();
        let before = log_with_entries(d.path());
        let root = Root::open(d.path()).unwrap();
        let mut log = AuditLog::open(&root, None).unwrap();
        log.append(Event {
            event: Step::Guard,
            subject: "s",
            decision: Decision::Ok,
            reason: "r",
        })
        .unwrap();
        let after = root.read(LOG_FILE).unwrap();
        assert!(after.starts_with(&before));
        assert_eq!(verify_bytes(&after).unwrap().entries, 5);
    }

    #[test]
    fn detects_removed_entry() {
        let d = tempfile::tempdir().unwrap();
        let mut l = lines(&log_with_entries(d.path()));
        l.remove(1);
        let err = verify_bytes(format!("{}\n", l.join("\n")).as_bytes()).unwrap_err();
        assert!(
            matches!(err, AuditError::OutOfSequence { seq: 1, found: 2 }),
            "{err}"
        );
    }

    #[test]
    fn detects_reordered_entries() {
        let d = tempfile::tempdir().unwrap();
        let mut l = lines(&log_with_entries(d.path()));
        l.swap(1, 2);
        assert!(matches!(
            verify_bytes(format!("{}\n", l.join("\n")).as_bytes()),
            Err(AuditError::OutOfSequence { seq: 1, found: 2 })
        ));
    }

    #[test]
    fn detects_edited_entry() {
        let d = tempfile::tempdir().unwrap();
        let l = lines(&log_with_entries(d.path()));
        let edited = format!("{}\n", l.join("\n")).replacen("\"granted\"", "\"refused\"", 1);
        assert!(matches!(
            verify_bytes(edited.as_bytes()),
            Err(AuditError::HashMismatch { seq: 0 })
        ));
    }

    #[test]
    fn the_room_does_not_append_to_an_edited_log() {
        let d = tempfile::tempdir().unwrap();
        let l = lines(&log_with_entries(d.path()));
        let edited = format!("{}\n", l.join("\n")).replacen("\"granted\"", "\"refused\"", 1);
        std::fs::write(d.path().join(LOG_FILE), edited).unwrap();
        let root = Root::open(d.path()).unwrap();
        let err = AuditLog::open(&root, None).unwrap_err();
        assert!(
            matches!(
                err,
                RoomError::AuditBroken {
                    source: AuditError::HashMismatch { seq: 0 },
                    ..
                }
            ),
            "{err}"
        );
    }

    /// The room checks its log's chain when it opens it, not the checkpoints' signatures: the
    /// operator could re-sign a forgery with a key of his own. The auditor's verification
    /// refuses the forgery (and, with the evidence, a re-signed one; tests/tests/provenance.rs).
    #[test]
    fn a_rehashed_forgery_is_refused_by_the_auditor_not_at_open() {
        let d = tempfile::tempdir().unwrap();
        let forged = rehashed_forgery(&log_with_entries(d.path()));
        std::fs::write(d.path().join(LOG_FILE), &forged).unwrap();
        let root = Root::open(d.path()).unwrap();
        assert_eq!(AuditLog::open(&root, None).unwrap().entries().len(), 4);
        assert!(matches!(
            verify_bytes(forged.as_bytes()),
            Err(AuditError::CheckpointSignatureInvalid { seq: 3 })
        ));
    }

    #[test]
    fn detects_rehashed_forgery_by_checkpoint_signature() {
        let d = tempfile::tempdir().unwrap();
        let forged = rehashed_forgery(&log_with_entries(d.path()));
        let err = verify_bytes(forged.as_bytes()).unwrap_err();
        assert!(
            matches!(err, AuditError::CheckpointSignatureInvalid { seq: 3 }),
            "{err}"
        );
    }
}
