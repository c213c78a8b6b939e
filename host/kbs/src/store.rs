//! The broker's SQLite database.
//!
//! Dataset keys are stored sealed under the broker's master key (AES-256-GCM, AAD = the
//! resource path, so a sealed key moved to another row does not open). A check value sealed
//! under the master key at `init` lets the broker refuse to start with a wrong master key
//! rather than fail later. Contracts are stored with their signatures and re-verified on
//! load. Every release decision is appended to `events`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use crate::error::{KbsError, Result};
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
  resource TEXT NOT NULL, decision TEXT NOT NULL, reason TEXT NOT NULL);
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
        }
        Ok(store)
    }

    /// Open an existing database, refusing a master key that does not match it.
    pub fn open(path: &Path, master: MasterKey) -> Result<Self> {
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

    pub fn record_event(
        &self,
        event: &str,
        resource: &str,
        decision: &str,
        reason: &str,
    ) -> Result<()> {
        let c = self.conn.lock().expect("lock");
        c.execute(
            "INSERT INTO events (time, event, resource, decision, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![cleanroom_formats::clock::now_rfc3339(), event, resource, decision, reason],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// All recorded events: (event, resource, decision, reason).
    pub fn events(&self) -> Result<Vec<(String, String, String, String)>> {
        let c = self.conn.lock().expect("lock");
        let mut st = c
            .prepare("SELECT event, resource, decision, reason FROM events ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))
    }
}
