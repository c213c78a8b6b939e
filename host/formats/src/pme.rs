//! Parquet Modular Encryption key material as PyArrow's and Spark's key tools write it
//! (`CryptoFactory` with internal key material, single wrapping) when their KMS client is
//! parquet-mr's local wrapping (`LKW1`). The footer's key metadata is read before anything
//! in the file is authenticated, so this parser takes bytes the operator controls; it is
//! fuzzed (`fuzz/fuzz_targets/pme_key_material.rs`). No Parquet dependency: the reader's
//! `KeyRetriever` is in [`crate::parquet`].

/// The data keys of a file written with Parquet Modular Encryption's key tools (PyArrow's or
/// Spark's `CryptoFactory` with internal key material and single wrapping) whose KMS client
/// is parquet-mr's local wrapping (`LKW1`): each footer or column key metadata is a JSON
/// key material naming its master key and carrying the data key wrapped under it
/// (AES-GCM, 12-byte nonce, AAD = the master key id). Holds one master key: a key under
/// any other master key is refused, so those columns stay unreadable.
pub struct LocalWrapKeys {
    master_key_id: String,
    master_key: zeroize::Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for LocalWrapKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalWrapKeys")
            .field("master_key_id", &self.master_key_id)
            .finish_non_exhaustive()
    }
}

/// `keyMaterialType` of the key material PyArrow and parquet-mr write.
pub const KEY_MATERIAL_TYPE: &str = "PKMT1";
/// `localWrappingType` of parquet-mr's local key wrapping.
pub const LOCAL_WRAPPING_TYPE: &str = "LKW1";

#[derive(serde::Deserialize)]
struct KeyMaterial {
    #[serde(rename = "keyMaterialType")]
    key_material_type: String,
    #[serde(rename = "internalStorage")]
    internal_storage: bool,
    #[serde(rename = "masterKeyID")]
    master_key_id: String,
    #[serde(rename = "wrappedDEK")]
    wrapped_dek: String,
    #[serde(rename = "doubleWrapping", default)]
    double_wrapping: bool,
}

#[derive(serde::Deserialize)]
struct LocalWrapped {
    #[serde(rename = "localWrappingType")]
    local_wrapping_type: String,
    #[serde(rename = "encryptedKey")]
    encrypted_key: String,
}

impl LocalWrapKeys {
    pub fn new(master_key_id: &str, master_key: &[u8; 32]) -> Self {
        Self {
            master_key_id: master_key_id.to_string(),
            master_key: zeroize::Zeroizing::new(*master_key),
        }
    }

    /// The key metadata PyArrow writes for `dek` wrapped under this master key with
    /// `nonce` (for the footer when `footer`): what [`LocalWrapKeys::unwrap_data_key`] reads.
    /// For tests and fuzz seeds; owners' files come from their own PME tools.
    pub fn key_material(&self, dek: &[u8], nonce: [u8; 12], footer: bool) -> Vec<u8> {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        use base64::Engine as _;
        let sealed = aes_gcm::Aes256Gcm::new_from_slice(self.master_key.as_ref())
            .expect("a 32-byte key")
            .encrypt(
                aes_gcm::Nonce::from_slice(&nonce),
                Payload {
                    msg: dek,
                    aad: self.master_key_id.as_bytes(),
                },
            )
            .expect("AES-GCM encryption does not fail");
        let wrapped = serde_json::json!({
            "localWrappingType": LOCAL_WRAPPING_TYPE,
            "masterKeyVersion": "NO_VERSION",
            "encryptedKey": base64::engine::general_purpose::STANDARD
                .encode([&nonce[..], &sealed].concat()),
        });
        serde_json::to_vec(&serde_json::json!({
            "keyMaterialType": KEY_MATERIAL_TYPE,
            "internalStorage": true,
            "isFooterKey": footer,
            "kmsInstanceID": "DEFAULT",
            "kmsInstanceURL": "DEFAULT",
            "masterKeyID": self.master_key_id,
            "wrappedDEK": wrapped.to_string(),
            "doubleWrapping": false,
        }))
        .expect("JSON values serialize")
    }

    /// The data key in `key_metadata` (a footer's or a column's), unwrapped.
    pub fn unwrap_data_key(&self, key_metadata: &[u8]) -> Result<Vec<u8>, LocalWrapError> {
        use aes_gcm::aead::{Aead, KeyInit, Payload};
        use base64::Engine as _;
        let m: KeyMaterial =
            serde_json::from_slice(key_metadata).map_err(|_| LocalWrapError::NotKeyMaterial)?;
        if m.key_material_type != KEY_MATERIAL_TYPE || !m.internal_storage || m.double_wrapping {
            return Err(LocalWrapError::UnsupportedKeyMaterial);
        }
        if m.master_key_id != self.master_key_id {
            return Err(LocalWrapError::OtherMasterKey);
        }
        let w: LocalWrapped =
            serde_json::from_str(&m.wrapped_dek).map_err(|_| LocalWrapError::NotKeyMaterial)?;
        if w.local_wrapping_type != LOCAL_WRAPPING_TYPE {
            return Err(LocalWrapError::UnsupportedKeyMaterial);
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(w.encrypted_key)
            .map_err(|_| LocalWrapError::NotKeyMaterial)?;
        if raw.len() < 12 + 16 {
            return Err(LocalWrapError::NotKeyMaterial);
        }
        let (nonce, ct) = raw.split_at(12);
        let cipher = aes_gcm::Aes256Gcm::new_from_slice(self.master_key.as_ref())
            .map_err(|_| LocalWrapError::Unwrap)?;
        let dek = cipher
            .decrypt(
                aes_gcm::Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: self.master_key_id.as_bytes(),
                },
            )
            .map_err(|_| LocalWrapError::Unwrap)?;
        if ![16, 24, 32].contains(&dek.len()) {
            return Err(LocalWrapError::Unwrap);
        }
        Ok(dek)
    }
}

/// Why a data key could not be unwrapped from a file's key material.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LocalWrapError {
    #[error("the key metadata is not PME key material")]
    NotKeyMaterial,
    #[error("the key material is not internal, single-wrapped, LKW1")]
    UnsupportedKeyMaterial,
    #[error("the key is under another master key")]
    OtherMasterKey,
    #[error("the wrapped key does not unwrap with the master key")]
    Unwrap,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_data_key_unwraps_only_under_its_own_master_key() {
        let master = [1u8; 32];
        let keys = LocalWrapKeys::new("footer", &master);
        let other = LocalWrapKeys::new("private", &[2u8; 32]);
        let forged = LocalWrapKeys::new("footer", &[2u8; 32]);
        for dek in [&[9u8; 16][..], &[9u8; 24], &[9u8; 32]] {
            let m = keys.key_material(dek, [7; 12], true);
            assert_eq!(keys.unwrap_data_key(&m), Ok(dek.to_vec()));
        }
        let dek = [9u8; 16];
        // A column under another master key stays unreadable, whatever it claims.
        assert_eq!(
            keys.unwrap_data_key(&other.key_material(&dek, [7; 12], false)),
            Err(LocalWrapError::OtherMasterKey)
        );
        // Its id claimed with another master key's wrapping does not unwrap.
        assert_eq!(
            keys.unwrap_data_key(&forged.key_material(&dek, [7; 12], false)),
            Err(LocalWrapError::Unwrap)
        );
        let double = String::from_utf8(keys.key_material(&dek, [7; 12], false))
            .unwrap()
            .replace(r#""doubleWrapping":false"#, r#""doubleWrapping":true"#);
        assert_eq!(
            keys.unwrap_data_key(double.as_bytes()),
            Err(LocalWrapError::UnsupportedKeyMaterial)
        );
        assert_eq!(
            keys.unwrap_data_key(b"footer-key-id"),
            Err(LocalWrapError::NotKeyMaterial)
        );
    }
}
