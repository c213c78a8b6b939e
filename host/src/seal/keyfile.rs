//! Dataset key files: `{"kid": hex16, "key": base64 32 bytes, "dataset": name}`, mode 0600.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{HostError, Result};
use crate::fsutil;
use crate::seal::stream::DataKey;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    kid: String,
    key: String,
    dataset: String,
}

pub fn to_json(key: &DataKey, dataset: &str) -> Zeroizing<Vec<u8>> {
    let kf = KeyFile {
        kid: key.id_hex(),
        key: B64.encode(key.key_bytes()),
        dataset: dataset.to_string(),
    };
    let out = Zeroizing::new(serde_json::to_vec_pretty(&kf).expect("serialises"));
    drop(Zeroizing::new(kf.key));
    out
}

pub fn from_json(bytes: &[u8], path: &str) -> Result<(DataKey, String)> {
    let bad = |what: &str| HostError::BadKeyFile {
        path: path.to_string(),
        what: what.to_string(),
    };
    let kf: KeyFile = serde_json::from_slice(bytes)
        .map_err(|_| bad("not a Cleanroom dataset key file (JSON with kid, key, dataset)"))?;
    let kid: [u8; 16] = hex::decode(&kf.kid)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| bad("kid is not 16 bytes of hex"))?;
    let raw = Zeroizing::new(B64.decode(&kf.key).map_err(|_| bad("key is not base64"))?);
    let key: [u8; 32] = raw
        .as_slice()
        .try_into()
        .map_err(|_| bad("key is not 32 bytes (AES-256)"))?;
    Ok((DataKey::from_parts(kid, key), kf.dataset))
}

pub fn write(path: &Path, key: &DataKey, dataset: &str) -> Result<()> {
    fsutil::write_file_atomic(path, &to_json(key, dataset), true)
}

pub fn read(path: &Path) -> Result<(DataKey, String)> {
    let bytes = Zeroizing::new(fsutil::read_file(path)?);
    from_json(&bytes, &path.display().to_string())
}
