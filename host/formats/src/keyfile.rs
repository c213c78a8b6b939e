//! Dataset key files: `{"kid": hex16, "key": base64 32 bytes, "dataset": name}`, mode 0600,
//! plus, for a Parquet dataset with columns outside the contract's `allowed_fields`, the
//! owner's *withheld* key of those columns (`withheld_kid`, `withheld_key`). The withheld key
//! never leaves the owner: `kbs put` registers only `key`, so the room can never decrypt
//! those columns.
//!
//! What a broker stores and releases adds `"file_id"`: the [`FileIdentity`] of the sealed
//! file the owner registered with the key (`kbs put`), which the room requires of the file
//! it reads.

use crate::fsutil::FileMode;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{FormatError, Result};
use crate::fsutil;
use crate::identity::FileIdentity;
use crate::stream::DataKey;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    kid: String,
    key: String,
    dataset: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    withheld_kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    withheld_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file_id: Option<FileIdentity>,
}

/// An owner's keys for one dataset.
#[derive(Clone)]
pub struct DatasetKeys {
    /// What the owner's broker releases to the room: the sealed stream's key, or a Parquet
    /// file's footer key and the key of every allowed column.
    pub key: DataKey,
    /// Parquet only: the key of the columns outside `allowed_fields`, kept by the owner.
    pub withheld: Option<DataKey>,
}

impl DatasetKeys {
    /// A fresh dataset key (no withheld key until a Parquet seal needs one).
    pub fn generate() -> Self {
        Self {
            key: DataKey::generate(),
            withheld: None,
        }
    }
}

impl std::fmt::Debug for DatasetKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasetKeys")
            .field("kid", &self.key.id_hex())
            .field("withheld_kid", &self.withheld.as_ref().map(DataKey::id_hex))
            .finish()
    }
}

/// The key file of `key` alone.
pub fn to_json(key: &DataKey, dataset: &str) -> Zeroizing<Vec<u8>> {
    encode(key, None, dataset, None)
}

/// What a broker stores and releases: the key file of `key` alone, with the identity of the
/// sealed file the owner registered it for.
pub fn released_to_json(
    key: &DataKey,
    dataset: &str,
    file_id: &FileIdentity,
) -> Zeroizing<Vec<u8>> {
    encode(key, None, dataset, Some(file_id))
}

/// A key as a broker stores and releases it.
#[derive(Clone)]
pub struct Released {
    pub key: DataKey,
    pub dataset: String,
    /// The sealed file the owner registered the key for (`None` only in a broker database
    /// written before identities were registered; the room refuses that).
    pub file_id: Option<FileIdentity>,
}

impl std::fmt::Debug for Released {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Released")
            .field("kid", &self.key.id_hex())
            .field("dataset", &self.dataset)
            .field("file_id", &self.file_id)
            .finish()
    }
}

/// Parse a stored or released key (a withheld key is refused, as in [`from_json`]).
pub fn released_from_json(bytes: &[u8], path: &str) -> Result<Released> {
    let (keys, dataset, file_id) = decode(bytes, path)?;
    if keys.withheld.is_some() {
        return Err(withheld_refused(path));
    }
    Ok(Released {
        key: keys.key,
        dataset,
        file_id,
    })
}

fn encode(
    key: &DataKey,
    withheld: Option<&DataKey>,
    dataset: &str,
    file_id: Option<&FileIdentity>,
) -> Zeroizing<Vec<u8>> {
    let kf = KeyFile {
        kid: key.id_hex(),
        key: B64.encode(key.key_bytes()),
        dataset: dataset.to_string(),
        withheld_kid: withheld.map(DataKey::id_hex),
        withheld_key: withheld.map(|w| B64.encode(w.key_bytes())),
        file_id: file_id.cloned(),
    };
    let out = Zeroizing::new(serde_json::to_vec_pretty(&kf).expect("serialises"));
    drop(Zeroizing::new(kf.key));
    drop(kf.withheld_key.map(Zeroizing::new));
    out
}

fn decode(bytes: &[u8], path: &str) -> Result<(DatasetKeys, String, Option<FileIdentity>)> {
    let bad = |what: &str| FormatError::BadKeyFile {
        path: path.to_string(),
        what: what.to_string(),
    };
    let kf: KeyFile = serde_json::from_slice(bytes)
        .map_err(|_| bad("not a Cleanroom dataset key file (JSON with kid, key, dataset)"))?;
    let one = |kid: &str, key: &str| -> Result<DataKey> {
        let kid: [u8; 16] = hex::decode(kid)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| bad("kid is not 16 bytes of hex"))?;
        let raw = Zeroizing::new(B64.decode(key).map_err(|_| bad("key is not base64"))?);
        let key: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| bad("key is not 32 bytes (AES-256)"))?;
        Ok(DataKey::from_parts(kid, key))
    };
    let key = one(&kf.kid, &kf.key)?;
    let withheld = match (&kf.withheld_kid, &kf.withheld_key) {
        (Some(k), Some(v)) => Some(one(k, v)?),
        (None, None) => None,
        _ => return Err(bad("withheld_kid and withheld_key come together")),
    };
    drop(Zeroizing::new(kf.key));
    drop(kf.withheld_key.map(Zeroizing::new));
    Ok((DatasetKeys { key, withheld }, kf.dataset, kf.file_id))
}

fn withheld_refused(path: &str) -> FormatError {
    FormatError::BadKeyFile {
        path: path.to_string(),
        what: "carries a withheld column key, which must never reach a broker".into(),
    }
}

/// Parse a released or stored key file: the key alone (a withheld key is refused here, so
/// one can never be registered at or released by a broker).
pub fn from_json(bytes: &[u8], path: &str) -> Result<(DataKey, String)> {
    let (keys, dataset, _) = decode(bytes, path)?;
    if keys.withheld.is_some() {
        return Err(withheld_refused(path));
    }
    Ok((keys.key, dataset))
}

/// Write an owner's key file (mode 0600).
pub fn write(path: &Path, keys: &DatasetKeys, dataset: &str) -> Result<()> {
    fsutil::write_file_atomic(
        path,
        &encode(&keys.key, keys.withheld.as_ref(), dataset, None),
        FileMode::Secret,
    )
}

/// Read an owner's key file.
pub fn read(path: &Path) -> Result<(DatasetKeys, String)> {
    let bytes = Zeroizing::new(fsutil::read_file(path)?);
    let (keys, dataset, _) = decode(&bytes, &path.display().to_string())?;
    Ok((keys, dataset))
}
