//! The broker's event log: what it registered, granted and refused, typed and hash-chained.
//!
//! Each row of the `events` table is one [`Event`]: its place in the chain (`seq`, from 0),
//! `time`, what it is about ([`EventKind`]), the resource or contract it concerns, the
//! [`EventDecision`] and a reason, then `prev` (the previous event's `hash`, [`ZERO`] for the
//! first) and `hash` = SHA-256 of the RFC 8785 canonical JSON of all of these but `hash`,
//! as in the room's audit log. The chain makes an edited, deleted, inserted or reordered row
//! evident ([`verify_chain`] names the first broken row); an operator who rewrites the whole
//! chain from some row on, or cuts rows off its end, is caught by the head: each append also
//! seals `(seq, hash)` of the new last event under the broker's master key (the `meta` row
//! `events_head`, in the same transaction), which nobody without the master key can forge.
//! What the chain cannot show is a whole database file rolled back to an earlier copy (its
//! chain and head are consistent); an owner who keeps the head `events --verify` prints can.
//!
//! A database made before the log was chained is refused by `Store::open` until its owner
//! runs `cleanroom-kbs upgrade` once (`Store::upgrade_events`): its rows are chained as they
//! are found, in order, and a [`EventKind::Log`]/[`EventDecision::Started`] event saying so
//! is appended. Rows written before that are only as trustworthy as the database was then.
//! The upgrade is explicit because an automatic one would re-chain, unnoticed, a log whose
//! chain columns someone dropped after rewriting it.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev` of the first event.
pub const ZERO: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// The log itself: created, or chained on upgrade.
    Log,
    /// A dataset key registered (`kbs put`).
    Register,
    /// A session request (`POST /kbs/v0/auth`), recorded when refused.
    Auth,
    /// A room's attestation (`POST /kbs/v0/attest`).
    Attest,
    /// A key release (`GET /kbs/v0/resource/...`).
    Release,
    /// A member's suspend/resume message (`POST /cleanroom/v0/governance`).
    Governance,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::Log,
        EventKind::Register,
        EventKind::Auth,
        EventKind::Attest,
        EventKind::Release,
        EventKind::Governance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Log => "log",
            EventKind::Register => "register",
            EventKind::Auth => "auth",
            EventKind::Attest => "attest",
            EventKind::Release => "release",
            EventKind::Governance => "governance",
        }
    }

    /// The kind a stored column names, if it is one.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// What the broker decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventDecision {
    /// The log started (a new database, or the chain's start on upgrade).
    Started,
    /// Something was recorded (a registration, a governance message).
    Recorded,
    /// An attestation passed or a key was released.
    Granted,
    /// A request was refused (recorded in full).
    Refused,
    /// Refusals over the per-minute limit, counted in one event.
    Counted,
}

impl EventDecision {
    pub const ALL: [EventDecision; 5] = [
        EventDecision::Started,
        EventDecision::Recorded,
        EventDecision::Granted,
        EventDecision::Refused,
        EventDecision::Counted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventDecision::Started => "started",
            EventDecision::Recorded => "recorded",
            EventDecision::Granted => "granted",
            EventDecision::Refused => "refused",
            EventDecision::Counted => "counted",
        }
    }

    /// The decision a stored column names, if it is one.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

impl std::fmt::Display for EventDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One event, as stored (`row` is the SQLite row id, which orders the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub row: i64,
    pub seq: u64,
    pub time: String,
    pub kind: EventKind,
    pub resource: String,
    pub decision: EventDecision,
    pub reason: String,
    pub prev: String,
    pub hash: String,
}

/// The hashed content of an event: everything but its hash and row id.
#[derive(Serialize)]
struct Hashed<'a> {
    seq: u64,
    prev: &'a str,
    time: &'a str,
    event: EventKind,
    resource: &'a str,
    decision: EventDecision,
    reason: &'a str,
}

/// SHA-256 (hex) of the canonical JSON of an event's content.
pub fn event_hash(
    seq: u64,
    prev: &str,
    time: &str,
    kind: EventKind,
    resource: &str,
    decision: EventDecision,
    reason: &str,
) -> String {
    let content = Hashed {
        seq,
        prev,
        time,
        event: kind,
        resource,
        decision,
        reason,
    };
    // Strings and small integers: serialising and canonicalising cannot fail.
    let bytes = serde_json::to_value(&content)
        .ok()
        .and_then(|v| serde_json_canonicalizer::to_vec(&v).ok())
        .unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

impl Event {
    /// The hash this event's content has (compare with [`Event::hash`]).
    pub fn compute_hash(&self) -> String {
        event_hash(
            self.seq,
            &self.prev,
            &self.time,
            self.kind,
            &self.resource,
            self.decision,
            &self.reason,
        )
    }
}

/// The last event of a chain: what `events --verify` prints for the owner to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

impl Head {
    /// The head as sealed in `meta` (`SEQ:HASH`).
    pub fn to_text(&self) -> String {
        format!("{}:{}", self.seq, self.hash)
    }

    pub fn from_text(text: &str) -> Option<Self> {
        let (seq, hash) = text.split_once(':')?;
        Some(Self {
            seq: seq.parse().ok()?,
            hash: hash.to_string(),
        })
    }
}

/// An event row as read from the database, before its vocabulary is checked.
#[derive(Debug, Clone)]
pub struct RawEvent {
    pub row: i64,
    pub seq: Option<i64>,
    pub time: String,
    pub kind: String,
    pub resource: String,
    pub decision: String,
    pub reason: String,
    pub prev: Option<String>,
    pub hash: Option<String>,
}

/// Why the event log does not verify. `row` is the SQLite row id of the first broken row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventChainError {
    #[error("event row {row} has no chain hash: it was written around the broker")]
    Unchained { row: i64 },
    #[error("event row {row}: `{value}` is not an event {what} the broker records")]
    UnknownVocabulary {
        row: i64,
        what: &'static str,
        value: String,
    },
    #[error(
        "event row {row} is event {found:?} of the chain where event {expected} belongs: an event before it was deleted, or rows were reordered"
    )]
    OutOfOrder {
        row: i64,
        expected: u64,
        found: Option<i64>,
    },
    #[error(
        "event row {row} does not follow the event before it (its prev is not that event's hash): an event before it was replaced"
    )]
    Unlinked { row: i64 },
    #[error("event row {row} does not hash to its recorded hash: it was edited")]
    Edited { row: i64 },
    #[error(
        "the event log's last event ({last_seq:?}) is not the head the broker sealed (event {sealed_seq}): events were cut off its end, or the log was rewritten from some event on"
    )]
    HeadMismatch {
        sealed_seq: u64,
        last_seq: Option<u64>,
    },
    #[error("the event log's sealed head is missing or does not open under the master key")]
    HeadInvalid,
}

impl RawEvent {
    /// Check this row's vocabulary and that it carries a chain.
    pub fn typed(self) -> Result<Event, EventChainError> {
        let row = self.row;
        let kind = EventKind::parse(&self.kind).ok_or(EventChainError::UnknownVocabulary {
            row,
            what: "kind",
            value: self.kind.clone(),
        })?;
        let decision =
            EventDecision::parse(&self.decision).ok_or(EventChainError::UnknownVocabulary {
                row,
                what: "decision",
                value: self.decision.clone(),
            })?;
        let (Some(seq), Some(prev), Some(hash)) = (self.seq, self.prev, self.hash) else {
            return Err(EventChainError::Unchained { row });
        };
        let seq = u64::try_from(seq).map_err(|_| EventChainError::OutOfOrder {
            row,
            expected: 0,
            found: Some(seq),
        })?;
        Ok(Event {
            row,
            seq,
            time: self.time,
            kind,
            resource: self.resource,
            decision,
            reason: self.reason,
            prev,
            hash,
        })
    }
}

/// Recompute the chain over `rows` (in row order) and check it ends at `sealed` (the head
/// the broker sealed, `None` if there is none or it does not open). Returns the events and
/// the head. The first broken row is named.
pub fn verify_chain(
    rows: Vec<RawEvent>,
    sealed: Option<Head>,
) -> Result<(Vec<Event>, Head), EventChainError> {
    let mut events = Vec::with_capacity(rows.len());
    let mut prev = ZERO.to_string();
    for (expected, raw) in (0u64..).zip(rows) {
        let row = raw.row;
        let seq = raw.seq;
        if seq.and_then(|s| u64::try_from(s).ok()) != Some(expected) && raw.hash.is_some() {
            return Err(EventChainError::OutOfOrder {
                row,
                expected,
                found: seq,
            });
        }
        let e = raw.typed()?;
        if e.prev != prev {
            return Err(EventChainError::Unlinked { row });
        }
        if e.compute_hash() != e.hash {
            return Err(EventChainError::Edited { row });
        }
        prev = e.hash.clone();
        events.push(e);
    }
    let sealed = sealed.ok_or(EventChainError::HeadInvalid)?;
    match events.last() {
        Some(last) if last.seq == sealed.seq && last.hash == sealed.hash => {}
        last => {
            return Err(EventChainError::HeadMismatch {
                sealed_seq: sealed.seq,
                last_seq: last.map(|e| e.seq),
            });
        }
    }
    Ok((events, sealed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_round_trips_through_its_column_text() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::Value::String(k.as_str().into())
            );
        }
        for d in EventDecision::ALL {
            assert_eq!(EventDecision::parse(d.as_str()), Some(d));
            assert_eq!(
                serde_json::to_value(d).unwrap(),
                serde_json::Value::String(d.as_str().into())
            );
        }
        assert_eq!(EventKind::parse("granted"), None);
    }

    #[test]
    fn hash_covers_every_field() {
        let base = || {
            (
                0u64,
                ZERO,
                "2026-01-01T00:00:00Z",
                EventKind::Release,
                "a/b/c",
                EventDecision::Granted,
                "ok",
            )
        };
        let h = |t: (u64, &str, &str, EventKind, &str, EventDecision, &str)| {
            event_hash(t.0, t.1, t.2, t.3, t.4, t.5, t.6)
        };
        let b = h(base());
        let mut all = vec![b.clone()];
        let mut t = base();
        t.0 = 1;
        all.push(h(t));
        let mut t = base();
        t.1 = "11";
        all.push(h(t));
        let mut t = base();
        t.2 = "2026-01-01T00:00:01Z";
        all.push(h(t));
        let mut t = base();
        t.3 = EventKind::Attest;
        all.push(h(t));
        let mut t = base();
        t.4 = "a/b/d";
        all.push(h(t));
        let mut t = base();
        t.5 = EventDecision::Refused;
        all.push(h(t));
        let mut t = base();
        t.6 = "ok.";
        all.push(h(t));
        let distinct: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), all.len());
    }
}
