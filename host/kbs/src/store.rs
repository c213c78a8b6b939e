//! The broker's SQLite database.
//!
//! Dataset keys are stored sealed under the broker's master key (AES-256-GCM, AAD = the
//! resource path, so a sealed key moved to another row does not open). A check value sealed
//! under the master key at `init` lets the broker refuse to start with a wrong master key
//! rather than fail later. Contracts are stored with their signatures and re-verified on
//! load. Every decision is appended to `events`, a hash chain whose head is sealed under the
//! master key ([`crate::events`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use zeroize::Zeroizing;

use crate::error::{KbsError, Result};
use crate::events::{self, Event, EventChainError, EventDecision, EventKind, Head, RawEvent};
use cleanroom_formats::identity::FileIdentity;
use cleanroom_formats::keyfile::{self, Released};
use cleanroom_formats::stream::DataKey;

const CHECK_PLAINTEXT: &[u8] = b"cleanroom-kbs-master-key-check-v1";

/// A 256-bit master key.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(k.as_mut());
        Self(k)
    }

    /// Parse a master key file (base64 of 32 bytes).
    pub fn from_file_text(text: &str, path: &Path) -> Result<Self> {
        let bad = || KbsError::BadMasterKey {
            path: path.display().to_string(),
        };
        let raw = Zeroizing::new(B64.decode(text.trim()).map_err(|_| bad())?);
        let arr: [u8; 32] = raw.as_slice().try_into().map_err(|_| bad())?;
        Ok(Self(Zeroizing::new(arr)))
    }

    pub fn to_file_text(&self) -> Zeroizing<String> {
        Zeroizing::new(B64.encode(self.0.as_ref()) + "\n")
    }

    fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ct = Aes256Gcm::new_from_slice(self.0.as_ref())
            .expect("32-byte key")
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("AES-GCM encryption");
        [nonce.to_vec(), ct].concat()
    }

    fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() < 12 + 16 {
            return None;
        }
        Aes256Gcm::new_from_slice(self.0.as_ref())
            .ok()?
            .decrypt(
                Nonce::from_slice(&sealed[..12]),
                Payload {
                    msg: &sealed[12..],
                    aad,
                },
            )
            .ok()
            .map(Zeroizing::new)
    }
}

/// A stored resource: which contract and dataset it belongs to.
#[derive(Debug, Clone)]
pub struct ResourceRecord {
    pub path: String,
    pub contract_digest: String,
    pub dataset: String,
}

/// The broker database, opened and checked against the master key.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    master: MasterKey,
    path: PathBuf,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS contracts (
  digest TEXT PRIMARY KEY, contract_toml TEXT NOT NULL, signatures TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS resources (
  path TEXT PRIMARY KEY, contract_digest TEXT NOT NULL, dataset TEXT NOT NULL,
  sealed_key BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, event TEXT NOT NULL,
  resource TEXT NOT NULL, decision TEXT NOT NULL, reason TEXT NOT NULL,
  seq INTEGER, prev TEXT, hash TEXT);
CREATE TABLE IF NOT EXISTS audit_heads (
  contract_digest TEXT PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dp_ledger (
  id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, contract_digest TEXT NOT NULL,
  dataset TEXT NOT NULL, workload_digest TEXT NOT NULL, epsilon_micros INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS governance (
  id INTEGER PRIMARY KEY AUTOINCREMENT, contract_digest TEXT NOT NULL, message TEXT NOT NULL,
  UNIQUE (contract_digest, message));
";

impl Store {
    fn err(&self, e: impl std::fmt::Display) -> KbsError {
        KbsError::Store {
            path: self.path.display().to_string(),
            what: e.to_string(),
        }
    }

    /// Connect to the database at `path`, which must exist (`exists`) or must not.
    fn connect(path: &Path, master: MasterKey, exists: bool) -> Result<Self> {
        let refuse = |what: &str| KbsError::Store {
            path: path.display().to_string(),
            what: what.into(),
        };
        match (path.exists(), exists) {
            (true, false) => {
                return Err(refuse(
                    "already exists; refusing to overwrite a broker database",
                ));
            }
            (false, true) => {
                return Err(refuse(
                    "does not exist; create it with `cleanroom kbs init`",
                ));
            }
            _ => {}
        }
        let conn = Connection::open(path).map_err(|e| refuse(&e.to_string()))?;
        Ok(Self {
            conn: Mutex::new(conn),
            master,
            path: path.to_path_buf(),
        })
    }

    /// Create a new database at `path` for `master`. Refuses to overwrite one.
    pub fn init(path: &Path, master: MasterKey) -> Result<Self> {
        let store = Self::connect(path, master, false)?;
        {
            let c = store.conn.lock().expect("lock");
            c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
                .map_err(|e| store.err(e))?;
            c.execute_batch(SCHEMA).map_err(|e| store.err(e))?;
            c.execute(
                "INSERT INTO meta (k, v) VALUES ('master_check', ?1)",
                params![store.master.seal(b"master_check", CHECK_PLAINTEXT)],
            )
            .map_err(|e| store.err(e))?;
            c.execute_batch("CREATE UNIQUE INDEX IF NOT EXISTS events_seq ON events (seq);")
                .map_err(|e| store.err(e))?;
            store.append_locked(
                &c,
                None,
                EventKind::Log,
                "-",
                EventDecision::Started,
                "broker database created",
            )?;
        }
        Ok(store)
    }

    /// Open an existing database, refusing a master key that does not match it, and one
    /// whose event log is not chained yet ([`KbsError::EventLogUnchained`]: upgrade it with
    /// [`Store::upgrade_events`], `cleanroom-kbs upgrade`).
    pub fn open(path: &Path, master: MasterKey) -> Result<Self> {
        let store = Self::open_checked(path, master)?;
        if !store.events_chained()? {
            return Err(KbsError::EventLogUnchained {
                path: path.display().to_string(),
            });
        }
        Ok(store)
    }

    /// Open a database made before the event log was chained and chain it: its rows as
    /// found, in order, then an event saying the chain started there. Returns the store and
    /// how many rows were chained; `None` if the log was chained already (nothing done).
    /// Refuses rows naming an event or decision the broker never writes.
    pub fn upgrade_events(path: &Path, master: MasterKey) -> Result<(Self, Option<usize>)> {
        let store = Self::open_checked(path, master)?;
        let n = store.chain_legacy_events()?;
        Ok((store, n))
    }

    fn open_checked(path: &Path, master: MasterKey) -> Result<Self> {
        let store = Self::connect(path, master, true)?;
        let check: Option<Vec<u8>> = {
            let c = store.conn.lock().expect("lock");
            c.execute_batch("PRAGMA synchronous=FULL;")
                .map_err(|e| store.err(e))?;
            c.query_row("SELECT v FROM meta WHERE k = 'master_check'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| store.err(format!("not a Cleanroom broker database ({e})")))?
        };
        let check =
            check.ok_or_else(|| store.err("not a Cleanroom broker database (no master check)"))?;
        match store.master.open(b"master_check", &check) {
            Some(p) if p.as_slice() == CHECK_PLAINTEXT => {}
            _ => {
                return Err(KbsError::WrongMasterKey {
                    path: path.display().to_string(),
                });
            }
        }
        // Tables added since the database was made (idempotent).
        store
            .conn
            .lock()
            .expect("lock")
            .execute_batch(SCHEMA)
            .map_err(|e| store.err(e))?;
        Ok(store)
    }

    /// Whether the `events` table has its chain columns (a database made before the chain
    /// has not).
    fn events_chained(&self) -> Result<bool> {
        let c = self.conn.lock().expect("lock");
        Self::has_chain_columns(&c).map_err(|e| self.err(e))
    }

    fn has_chain_columns(c: &Connection) -> rusqlite::Result<bool> {
        let mut st = c.prepare("SELECT name FROM pragma_table_info('events')")?;
        let columns = st
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(columns.iter().any(|c| c == "hash"))
    }

    fn chain_legacy_events(&self) -> Result<Option<usize>> {
        let mut c = self.conn.lock().expect("lock");
        let tx = c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        if Self::has_chain_columns(&tx).map_err(|e| self.err(e))? {
            return Ok(None);
        }
        tx.execute_batch(
            "ALTER TABLE events ADD COLUMN seq INTEGER;
             ALTER TABLE events ADD COLUMN prev TEXT;
             ALTER TABLE events ADD COLUMN hash TEXT;",
        )
        .map_err(|e| self.err(e))?;
        let rows = Self::raw_events(&tx).map_err(|e| self.err(e))?;
        let mut head: Option<Head> = None;
        for raw in &rows {
            let bad = |what: &str, value: &str| {
                self.err(format!(
                    "event row {} has {what} `{value}`, which this broker never writes; \
                     refusing to chain it (upgrade refused, nothing changed)",
                    raw.row
                ))
            };
            let kind = EventKind::parse(&raw.kind).ok_or_else(|| bad("event", &raw.kind))?;
            let decision = EventDecision::parse(&raw.decision)
                .ok_or_else(|| bad("decision", &raw.decision))?;
            let (seq, prev) = match &head {
                None => (0, events::ZERO.to_string()),
                Some(h) => (h.seq + 1, h.hash.clone()),
            };
            let hash = events::event_hash(
                seq,
                &prev,
                &raw.time,
                kind,
                &raw.resource,
                decision,
                &raw.reason,
            );
            let seq_sql = i64::try_from(seq).map_err(|_| self.err("event seq out of range"))?;
            tx.execute(
                "UPDATE events SET seq = ?1, prev = ?2, hash = ?3 WHERE id = ?4",
                params![seq_sql, prev, hash, raw.row],
            )
            .map_err(|e| self.err(e))?;
            head = Some(Head { seq, hash });
        }
        tx.execute_batch("CREATE UNIQUE INDEX IF NOT EXISTS events_seq ON events (seq);")
            .map_err(|e| self.err(e))?;
        self.append_locked(
            &tx,
            head.as_ref(),
            EventKind::Log,
            "-",
            EventDecision::Started,
            &format!(
                "event log chained on upgrade: the {} events before this one were recorded \
                 before the broker chained its log and are chained as they were found now",
                rows.len()
            ),
        )?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(Some(rows.len()))
    }

    /// Record a verified suspend/resume message (base64 COSE) for a contract. Returns
    /// whether it was new. Messages are only ever added.
    pub fn put_governance(&self, contract_digest: &str, message_b64: &str) -> Result<bool> {
        let c = self.conn.lock().expect("lock");
        let n = c
            .execute(
                "INSERT OR IGNORE INTO governance (contract_digest, message) VALUES (?1, ?2)",
                params![contract_digest, message_b64],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// The newest audit log head an attested host of the contract presented: (seq, hash).
    pub fn audit_head(&self, contract_digest: &str) -> Result<Option<(u64, String)>> {
        let c = self.conn.lock().expect("lock");
        c.query_row(
            "SELECT seq, hash FROM audit_heads WHERE contract_digest = ?1",
            params![contract_digest],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
        )
        .optional()
        .map_err(|e| self.err(e))
    }

    /// Move the contract's audit head to (`seq`, `hash`) if `check` accepts it given the
    /// stored head (`None` before any). The read, the check and the write happen under one
    /// lock of the database, so concurrent sessions cannot both pass against the old head.
    /// The outer error is storage; the inner one is `check`'s refusal.
    pub fn advance_audit_head<E>(
        &self,
        contract_digest: &str,
        seq: u64,
        hash: &str,
        check: impl FnOnce(Option<(u64, &str)>) -> std::result::Result<(), E>,
    ) -> Result<std::result::Result<(), E>> {
        let c = self.conn.lock().expect("lock");
        let seen: Option<(u64, String)> = c
            .query_row(
                "SELECT seq, hash FROM audit_heads WHERE contract_digest = ?1",
                params![contract_digest],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        if let Err(refused) = check(seen.as_ref().map(|(s, h)| (*s, h.as_str()))) {
            return Ok(Err(refused));
        }
        let seq = i64::try_from(seq).map_err(|_| self.err("audit seq out of range"))?;
        c.execute(
            "INSERT INTO audit_heads (contract_digest, seq, hash) VALUES (?1, ?2, ?3)
             ON CONFLICT(contract_digest) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            params![contract_digest, seq, hash],
        )
        .map_err(|e| self.err(e))?;
        Ok(Ok(()))
    }

    /// Every suspend/resume message recorded for a contract (base64 COSE), in the order
    /// they were recorded.
    pub fn governance(&self, contract_digest: &str) -> Result<Vec<String>> {
        let c = self.conn.lock().expect("lock");
        let mut st = c
            .prepare("SELECT message FROM governance WHERE contract_digest = ?1 ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map(params![contract_digest], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<std::result::Result<Vec<String>, _>>()
            .map_err(|e| self.err(e))
    }

    /// Store a (fully signed, already verified) contract.
    pub fn put_contract(&self, digest: &str, toml_text: &str, signatures: &[String]) -> Result<()> {
        let c = self.conn.lock().expect("lock");
        c.execute(
            "INSERT OR REPLACE INTO contracts (digest, contract_toml, signatures) VALUES (?1, ?2, ?3)",
            params![digest, toml_text, serde_json::to_string(signatures).expect("serialises")],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The contract text and signatures stored under `digest`.
    pub fn contract(&self, digest: &str) -> Result<Option<(String, Vec<String>)>> {
        let c = self.conn.lock().expect("lock");
        let row: Option<(String, String)> = c
            .query_row(
                "SELECT contract_toml, signatures FROM contracts WHERE digest = ?1",
                params![digest],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        match row {
            None => Ok(None),
            Some((t, s)) => Ok(Some((
                t,
                serde_json::from_str(&s).map_err(|e| self.err(e))?,
            ))),
        }
    }

    /// Store a dataset key for `resource`, sealed under the master key with the identity
    /// of the sealed file the owner registered (released with the key).
    pub fn put_key(
        &self,
        rec: &ResourceRecord,
        key: &DataKey,
        file_id: &FileIdentity,
    ) -> Result<()> {
        let plain = keyfile::released_to_json(key, &rec.dataset, file_id);
        let sealed = self.master.seal(rec.path.as_bytes(), &plain);
        let c = self.conn.lock().expect("lock");
        c.execute(
            "INSERT OR REPLACE INTO resources (path, contract_digest, dataset, sealed_key) VALUES (?1, ?2, ?3, ?4)",
            params![rec.path, rec.contract_digest, rec.dataset, sealed],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn resource(&self, path: &str) -> Result<Option<ResourceRecord>> {
        let c = self.conn.lock().expect("lock");
        c.query_row(
            "SELECT path, contract_digest, dataset FROM resources WHERE path = ?1",
            params![path],
            |r| {
                Ok(ResourceRecord {
                    path: r.get(0)?,
                    contract_digest: r.get(1)?,
                    dataset: r.get(2)?,
                })
            },
        )
        .optional()
        .map_err(|e| self.err(e))
    }

    /// Unseal the key of `path`. Only [`crate::release`] calls this, with a release proof.
    pub(crate) fn unseal_key(&self, path: &str) -> Result<Option<Released>> {
        let sealed: Option<Vec<u8>> = {
            let c = self.conn.lock().expect("lock");
            c.query_row(
                "SELECT sealed_key FROM resources WHERE path = ?1",
                params![path],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?
        };
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let plain = self.master.open(path.as_bytes(), &sealed).ok_or_else(|| {
            self.err(format!(
                "sealed key of `{path}` does not open (tampered row?)"
            ))
        })?;
        Ok(Some(keyfile::released_from_json(&plain, path)?))
    }

    /// ε (micro-units) spent from `dataset` under `contract_digest` so far.
    pub fn budget_spent(&self, contract_digest: &str, dataset: &str) -> Result<u64> {
        let c = self.conn.lock().expect("lock");
        Self::spent_locked(&c, contract_digest, dataset).map_err(|e| self.err(e))
    }

    fn spent_locked(c: &Connection, contract_digest: &str, dataset: &str) -> rusqlite::Result<u64> {
        let spent: i64 = c.query_row(
            "SELECT COALESCE(SUM(epsilon_micros), 0) FROM dp_ledger
             WHERE contract_digest = ?1 AND dataset = ?2",
            params![contract_digest, dataset],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(spent).unwrap_or(u64::MAX))
    }

    /// Charge `micros` to `dataset`'s ledger if the spent total stays within `total`; the
    /// read, the check and the write are one transaction under one lock (two sessions
    /// cannot both pass against the old total), committed durably before this returns.
    /// The inner error is the ε already spent, when the charge would exceed `total`.
    pub fn charge_budget(
        &self,
        contract_digest: &str,
        dataset: &str,
        workload_digest: &str,
        micros: u64,
        total: u64,
    ) -> Result<std::result::Result<(), u64>> {
        let mut c = self.conn.lock().expect("lock");
        let tx = c.transaction().map_err(|e| self.err(e))?;
        let spent = Self::spent_locked(&tx, contract_digest, dataset).map_err(|e| self.err(e))?;
        if spent.checked_add(micros).is_none_or(|after| after > total) {
            return Ok(Err(spent));
        }
        let micros = i64::try_from(micros).map_err(|_| self.err("ε out of range"))?;
        tx.execute(
            "INSERT INTO dp_ledger (time, contract_digest, dataset, workload_digest, epsilon_micros)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                cleanroom_formats::clock::now_rfc3339(),
                contract_digest,
                dataset,
                workload_digest,
                micros
            ],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(Ok(()))
    }

    /// Append an event to the chain, durably (one transaction, committed with
    /// `synchronous=FULL`, before this returns). Writers in other processes wait for the
    /// write lock (the transaction is `IMMEDIATE`), so the chain never forks.
    pub fn record_event(
        &self,
        kind: EventKind,
        resource: &str,
        decision: EventDecision,
        reason: &str,
    ) -> Result<()> {
        let mut c = self.conn.lock().expect("lock");
        let tx = c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let head = self.sealed_head(&tx)?.ok_or_else(|| {
            self.err(
                "the event log's sealed head is missing or does not open; \
                 run `cleanroom-kbs events --verify`",
            )
        })?;
        self.append_locked(&tx, Some(&head), kind, resource, decision, reason)?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Append the event after `after` (the head the broker sealed last, not whatever the
    /// last row says, so rows cut off the end stay evident; `None` for the first event) and
    /// seal the new head, inside the caller's transaction.
    fn append_locked(
        &self,
        c: &Connection,
        after: Option<&Head>,
        kind: EventKind,
        resource: &str,
        decision: EventDecision,
        reason: &str,
    ) -> Result<Head> {
        let (seq, prev) = match after {
            None => (0u64, events::ZERO.to_string()),
            Some(h) => (
                h.seq
                    .checked_add(1)
                    .ok_or_else(|| self.err("the event seq is out of range"))?,
                h.hash.clone(),
            ),
        };
        let time = cleanroom_formats::clock::now_rfc3339();
        let hash = events::event_hash(seq, &prev, &time, kind, resource, decision, reason);
        let seq_sql = i64::try_from(seq).map_err(|_| self.err("event seq out of range"))?;
        c.execute(
            "INSERT INTO events (time, event, resource, decision, reason, seq, prev, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                time,
                kind.as_str(),
                resource,
                decision.as_str(),
                reason,
                seq_sql,
                prev,
                hash
            ],
        )
        .map_err(|e| self.err(e))?;
        let head = Head { seq, hash };
        c.execute(
            "INSERT INTO meta (k, v) VALUES ('events_head', ?1)
             ON CONFLICT(k) DO UPDATE SET v = excluded.v",
            params![self.master.seal(b"events_head", head.to_text().as_bytes())],
        )
        .map_err(|e| self.err(e))?;
        Ok(head)
    }

    fn raw_events(c: &Connection) -> rusqlite::Result<Vec<RawEvent>> {
        let mut st = c.prepare(
            "SELECT id, seq, time, event, resource, decision, reason, prev, hash
             FROM events ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(RawEvent {
                row: r.get(0)?,
                seq: r.get(1)?,
                time: r.get(2)?,
                kind: r.get(3)?,
                resource: r.get(4)?,
                decision: r.get(5)?,
                reason: r.get(6)?,
                prev: r.get(7)?,
                hash: r.get(8)?,
            })
        })?;
        rows.collect()
    }

    /// The head sealed under the master key, if there is one and it opens.
    fn sealed_head(&self, c: &Connection) -> Result<Option<Head>> {
        let sealed: Option<Vec<u8>> = c
            .query_row("SELECT v FROM meta WHERE k = 'events_head'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(sealed
            .and_then(|s| self.master.open(b"events_head", &s))
            .and_then(|p| std::str::from_utf8(&p).ok().and_then(Head::from_text)))
    }

    /// All recorded events, in order, typed (a row naming an event or decision the broker
    /// never writes, or without a chain, is an error). Does not check the chain: see
    /// [`Store::verify_events`].
    pub fn events(&self) -> Result<Vec<Event>> {
        let c = self.conn.lock().expect("lock");
        let rows = Self::raw_events(&c).map_err(|e| self.err(e))?;
        rows.into_iter()
            .map(|r| r.typed().map_err(KbsError::from))
            .collect()
    }

    /// Recompute the event chain and check it ends at the head sealed under the master key.
    /// Returns the events and the head; the first broken row is named in the error.
    pub fn verify_events(&self) -> Result<(Vec<Event>, Head)> {
        let c = self.conn.lock().expect("lock");
        let rows = Self::raw_events(&c).map_err(|e| self.err(e))?;
        let sealed = self.sealed_head(&c)?;
        events::verify_chain(rows, sealed).map_err(|e: EventChainError| e.into())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key_pair() -> (MasterKey, MasterKey) {
        let k = MasterKey::generate();
        let again = MasterKey::from_file_text(&k.to_file_text(), Path::new("k")).unwrap();
        (k, again)
    }

    /// A broker database with its first event and three more: (dir, path, master key).
    fn broker_with_events() -> (tempfile::TempDir, PathBuf, MasterKey) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kbs.db");
        let (k, again) = key_pair();
        let store = Store::init(&path, k).unwrap();
        for (kind, decision) in [
            (EventKind::Register, EventDecision::Recorded),
            (EventKind::Attest, EventDecision::Granted),
            (EventKind::Release, EventDecision::Granted),
        ] {
            store
                .record_event(kind, "alice/dataset/sales", decision, "why")
                .unwrap();
        }
        (dir, path, again)
    }

    /// The operator's own connection to the database file.
    fn sql(path: &Path, statements: &str) {
        Connection::open(path)
            .unwrap()
            .execute_batch(statements)
            .unwrap();
    }

    fn row_of(path: &Path, seq: i64) -> i64 {
        Connection::open(path)
            .unwrap()
            .query_row("SELECT id FROM events WHERE seq = ?1", [seq], |r| r.get(0))
            .unwrap()
    }

    fn chain_error(store: &Store) -> EventChainError {
        match store.verify_events() {
            Err(KbsError::EventChain(e)) => e,
            other => panic!("expected a broken chain, got {other:?}"),
        }
    }

    #[test]
    fn event_log_verifies_and_ends_at_its_sealed_head() {
        let (_d, path, k) = broker_with_events();
        let store = Store::open(&path, k).unwrap();
        let (events, head) = store.verify_events().unwrap();
        assert_eq!(events.len(), 4);
        assert_eq!(
            (events[0].kind, events[0].decision),
            (EventKind::Log, EventDecision::Started)
        );
        assert_eq!(events[0].prev, events::ZERO);
        assert_eq!(
            (events[3].kind, events[3].decision),
            (EventKind::Release, EventDecision::Granted)
        );
        assert_eq!(head.seq, 3);
        assert_eq!(head.hash, events[3].hash);
        assert_eq!(store.events().unwrap(), events);
    }

    #[test]
    fn operator_editing_an_event_row_is_detected() {
        let (_d, path, k) = broker_with_events();
        let row = row_of(&path, 3);
        sql(
            &path,
            "UPDATE events SET decision = 'refused' WHERE seq = 3",
        );
        let store = Store::open(&path, k).unwrap();
        assert_eq!(chain_error(&store), EventChainError::Edited { row });
    }

    #[test]
    fn operator_editing_an_event_reason_is_detected() {
        let (_d, path, k) = broker_with_events();
        let row = row_of(&path, 1);
        sql(
            &path,
            "UPDATE events SET reason = 'nothing to see' WHERE seq = 1",
        );
        let store = Store::open(&path, k).unwrap();
        assert_eq!(chain_error(&store), EventChainError::Edited { row });
    }

    #[test]
    fn operator_deleting_an_event_row_is_detected() {
        let (_d, path, k) = broker_with_events();
        let next = row_of(&path, 2);
        sql(&path, "DELETE FROM events WHERE seq = 1");
        let store = Store::open(&path, k).unwrap();
        assert_eq!(
            chain_error(&store),
            EventChainError::OutOfOrder {
                row: next,
                expected: 1,
                found: Some(2)
            }
        );
    }

    #[test]
    fn operator_reordering_event_rows_is_detected() {
        let (_d, path, k) = broker_with_events();
        let (a, b) = (row_of(&path, 1), row_of(&path, 2));
        sql(
            &path,
            &format!(
                "UPDATE events SET id = -1 WHERE id = {a};
                 UPDATE events SET id = {a} WHERE id = {b};
                 UPDATE events SET id = {b} WHERE id = -1;"
            ),
        );
        let store = Store::open(&path, k).unwrap();
        assert_eq!(
            chain_error(&store),
            EventChainError::OutOfOrder {
                row: a,
                expected: 1,
                found: Some(2)
            }
        );
    }

    #[test]
    fn operator_inserting_an_event_row_is_detected() {
        let (_d, path, k) = broker_with_events();
        sql(
            &path,
            "INSERT INTO events (time, event, resource, decision, reason)
             VALUES ('2026-01-01T00:00:00Z', 'release', 'alice/dataset/sales', 'refused', 'x')",
        );
        let row = Connection::open(&path)
            .unwrap()
            .query_row("SELECT MAX(id) FROM events", [], |r| r.get(0))
            .unwrap();
        let store = Store::open(&path, k).unwrap();
        assert_eq!(chain_error(&store), EventChainError::Unchained { row });
    }

    #[test]
    fn operator_writing_an_event_kind_the_broker_never_writes_is_detected() {
        let (_d, path, k) = broker_with_events();
        let row = row_of(&path, 2);
        sql(&path, "UPDATE events SET event = 'audit' WHERE seq = 2");
        let store = Store::open(&path, k).unwrap();
        assert_eq!(
            chain_error(&store),
            EventChainError::UnknownVocabulary {
                row,
                what: "kind",
                value: "audit".into()
            }
        );
    }

    #[test]
    fn operator_cutting_events_off_the_end_is_detected_before_and_after_the_next_event() {
        let (_d, path, k) = broker_with_events();
        sql(&path, "DELETE FROM events WHERE seq = 3");
        let store = Store::open(&path, k).unwrap();
        assert_eq!(
            chain_error(&store),
            EventChainError::HeadMismatch {
                sealed_seq: 3,
                last_seq: Some(2)
            }
        );
        // The broker chains its next event after the head it sealed, not after the cut.
        store
            .record_event(EventKind::Attest, "-", EventDecision::Refused, "late")
            .unwrap();
        let row = row_of(&path, 4);
        assert_eq!(
            chain_error(&store),
            EventChainError::OutOfOrder {
                row,
                expected: 3,
                found: Some(4)
            }
        );
    }

    #[test]
    fn operator_rewriting_the_chain_after_an_edit_is_detected_by_the_sealed_head() {
        let (_d, path, k) = broker_with_events();
        // Edit event 1, then recompute every hash from there on, as anyone can with SHA-256.
        let c = Connection::open(&path).unwrap();
        c.execute_batch("UPDATE events SET decision = 'refused' WHERE seq = 1")
            .unwrap();
        let rows = Store::raw_events(&c).unwrap();
        let mut prev = events::ZERO.to_string();
        for raw in rows {
            let e = RawEvent {
                prev: Some(prev.clone()),
                ..raw
            }
            .typed()
            .unwrap();
            let hash = e.compute_hash();
            c.execute(
                "UPDATE events SET prev = ?1, hash = ?2 WHERE id = ?3",
                params![prev, hash, e.row],
            )
            .unwrap();
            prev = hash;
        }
        drop(c);
        let store = Store::open(&path, k).unwrap();
        assert_eq!(
            chain_error(&store),
            EventChainError::HeadMismatch {
                sealed_seq: 3,
                last_seq: Some(3)
            }
        );
    }

    #[test]
    fn operator_deleting_the_sealed_head_is_detected_and_the_broker_records_nothing_more() {
        let (_d, path, k) = broker_with_events();
        sql(&path, "DELETE FROM meta WHERE k = 'events_head'");
        let store = Store::open(&path, k).unwrap();
        assert_eq!(chain_error(&store), EventChainError::HeadInvalid);
        // A release is recorded before its key leaves: without a head, nothing is recorded
        // (and the server refuses the release, `not-recorded`).
        assert!(matches!(
            store.record_event(EventKind::Release, "-", EventDecision::Granted, "x"),
            Err(KbsError::Store { .. })
        ));
    }

    /// A database as the broker made it before the event log was chained.
    fn old_schema_broker(rows: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf, MasterKey) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kbs.db");
        let (k, again) = key_pair();
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE meta (k TEXT PRIMARY KEY, v BLOB NOT NULL);
             CREATE TABLE events (
               id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, event TEXT NOT NULL,
               resource TEXT NOT NULL, decision TEXT NOT NULL, reason TEXT NOT NULL);",
        )
        .unwrap();
        c.execute(
            "INSERT INTO meta (k, v) VALUES ('master_check', ?1)",
            params![k.seal(b"master_check", CHECK_PLAINTEXT)],
        )
        .unwrap();
        for (event, decision) in rows {
            c.execute(
                "INSERT INTO events (time, event, resource, decision, reason)
                 VALUES ('2025-01-01T00:00:00Z', ?1, 'alice/dataset/sales', ?2, 'before')",
                params![event, decision],
            )
            .unwrap();
        }
        (dir, path, again)
    }

    #[test]
    fn database_of_the_old_schema_is_refused_until_upgraded_then_chained_from_a_genesis_event() {
        let (_d, path, k) = old_schema_broker(&[("register", "recorded"), ("release", "granted")]);
        let k2 = MasterKey::from_file_text(&k.to_file_text(), Path::new("k")).unwrap();
        let k3 = MasterKey::from_file_text(&k.to_file_text(), Path::new("k")).unwrap();
        let k4 = MasterKey::from_file_text(&k.to_file_text(), Path::new("k")).unwrap();
        assert!(matches!(
            Store::open(&path, k),
            Err(KbsError::EventLogUnchained { .. })
        ));
        let (store, chained) = Store::upgrade_events(&path, k2).unwrap();
        assert_eq!(chained, Some(2));
        let (events, head) = store.verify_events().unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(
            (
                events[0].kind,
                events[0].decision,
                events[0].reason.as_str()
            ),
            (EventKind::Register, EventDecision::Recorded, "before")
        );
        assert_eq!(
            (events[2].kind, events[2].decision),
            (EventKind::Log, EventDecision::Started)
        );
        assert_eq!(head.seq, 2);
        drop(store);
        let store = Store::open(&path, k3).unwrap();
        store
            .record_event(EventKind::Attest, "-", EventDecision::Refused, "after")
            .unwrap();
        assert_eq!(store.verify_events().unwrap().1.seq, 3);
        drop(store);
        let (_, again) = Store::upgrade_events(&path, k4).unwrap();
        assert_eq!(again, None, "a chained log is not chained twice");
    }

    #[test]
    fn upgrade_refuses_an_old_row_the_broker_never_wrote_and_changes_nothing() {
        let (_d, path, k) = old_schema_broker(&[("register", "recorded"), ("release", "leaked")]);
        let k2 = MasterKey::from_file_text(&k.to_file_text(), Path::new("k")).unwrap();
        assert!(matches!(
            Store::upgrade_events(&path, k),
            Err(KbsError::Store { .. })
        ));
        assert!(matches!(
            Store::open(&path, k2),
            Err(KbsError::EventLogUnchained { .. })
        ));
    }
}
