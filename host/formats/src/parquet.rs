//! Parquet Modular Encryption (the Apache standard) for Parquet datasets.
//!
//! The footer and every column in the contract's `allowed_fields` are encrypted under the
//! dataset key (what the owner's broker releases to the room); every other column under the
//! owner's *withheld* key, which never leaves the owner, so the room can never decrypt
//! those columns, not even by a bug (DESIGN: per-column keys). With every column allowed,
//! the file uses uniform encryption under the dataset key. The AAD prefix names the dataset
//! and is *not* stored in the file, so a file cannot be swapped for another dataset's even
//! under the same key. Key metadata carries the key ids. Files are readable by any PME
//! implementation (PyArrow, Spark) given the keys and AAD prefix, and by DataFusion's
//! `parquet_encryption` feature, which is how the run path reads them (see `engine`).

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::encryption::decrypt::FileDecryptionProperties;
use parquet::encryption::encrypt::FileEncryptionProperties;
use parquet::file::properties::WriterProperties;

use crate::keyfile::DatasetKeys;

/// The last four bytes of a Parquet file whose footer is encrypted (plaintext: `PAR1`).
pub const ENCRYPTED_FOOTER_MAGIC: &[u8; 4] = b"PARE";

/// The AAD prefix binding a file to its dataset name.
pub fn aad_prefix(dataset: &str) -> Vec<u8> {
    format!("cleanroom:dataset:{dataset}").into_bytes()
}

/// Write `batches` as an encrypted Parquet file: `allowed` columns (and the footer) under
/// `keys.key`, the others under `keys.withheld`, which must then be present.
pub fn write_encrypted(
    keys: &DatasetKeys,
    allowed: &[String],
    dataset: &str,
    schema: SchemaRef,
    batches: impl IntoIterator<Item = RecordBatch>,
) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let key = &keys.key;
    let mut enc = FileEncryptionProperties::builder(key.key_bytes().to_vec())
        .with_footer_key_metadata(key.id_hex().into_bytes())
        .with_aad_prefix(aad_prefix(dataset))
        .with_aad_prefix_storage(false);
    let withheld: Vec<&str> = schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .filter(|n| !allowed.iter().any(|a| a == n))
        .collect();
    if !withheld.is_empty() {
        let w = keys.withheld.as_ref().ok_or_else(|| {
            parquet::errors::ParquetError::General(
                "columns outside allowed_fields need a withheld key".into(),
            )
        })?;
        // With column keys set, a column without one would be written in plaintext: give
        // every column its key.
        for f in schema.fields() {
            let (k, meta) = if withheld.contains(&f.name().as_str()) {
                (w, format!("withheld:{}", w.id_hex()))
            } else {
                (key, key.id_hex())
            };
            enc = enc.with_column_key_and_metadata(
                f.name(),
                k.key_bytes().to_vec(),
                meta.into_bytes(),
            );
        }
    }
    let enc = enc.build()?;
    let props = WriterProperties::builder()
        .with_file_encryption_properties(enc)
        .build();
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new(&mut out, schema, Some(props))?;
    for b in batches {
        w.write(&b)?;
    }
    w.close()?;
    Ok(out)
}

/// Read an encrypted Parquet file in memory with every key of `keys` (for `dataset open`,
/// the owner's check): `columns` are all the file's columns, `allowed` those under the
/// dataset key; the rest need the withheld key.
pub fn read_encrypted(
    keys: &DatasetKeys,
    columns: &[String],
    allowed: &[String],
    dataset: &str,
    bytes: Vec<u8>,
) -> Result<(SchemaRef, Vec<RecordBatch>), parquet::errors::ParquetError> {
    let mut dec = FileDecryptionProperties::builder(keys.key.key_bytes().to_vec())
        .with_aad_prefix(aad_prefix(dataset));
    for c in columns {
        let k = if allowed.contains(c) {
            Some(&keys.key)
        } else {
            keys.withheld.as_ref()
        };
        if let Some(k) = k {
            dec = dec.with_column_key(c, k.key_bytes().to_vec());
        }
    }
    let dec = dec.build()?;
    let opts = ArrowReaderOptions::new().with_file_decryption_properties(dec);
    let builder =
        ParquetRecordBatchReaderBuilder::try_new_with_options(bytes::Bytes::from(bytes), opts)?;
    let schema = builder.schema().clone();
    let batches = builder
        .build()?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))?;
    Ok((schema, batches))
}

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

impl parquet::encryption::decrypt::KeyRetriever for LocalWrapKeys {
    fn retrieve_key(&self, key_metadata: &[u8]) -> parquet::errors::Result<Vec<u8>> {
        self.unwrap_data_key(key_metadata)
            .map_err(|e| parquet::errors::ParquetError::General(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use base64::Engine as _;

    /// Key material as PyArrow writes it with parquet-mr's local wrapping.
    fn material(master_id: &str, master: &[u8; 32], dek: &[u8], double: bool) -> Vec<u8> {
        let nonce = [7u8; 12];
        let sealed = aes_gcm::Aes256Gcm::new_from_slice(master)
            .unwrap()
            .encrypt(
                aes_gcm::Nonce::from_slice(&nonce),
                Payload {
                    msg: dek,
                    aad: master_id.as_bytes(),
                },
            )
            .unwrap();
        let wrapped = serde_json::json!({
            "localWrappingType": "LKW1",
            "masterKeyVersion": "NO_VERSION",
            "encryptedKey": base64::engine::general_purpose::STANDARD
                .encode([&nonce[..], &sealed].concat()),
        });
        serde_json::to_vec(&serde_json::json!({
            "keyMaterialType": "PKMT1",
            "internalStorage": true,
            "isFooterKey": false,
            "kmsInstanceID": "DEFAULT",
            "kmsInstanceURL": "DEFAULT",
            "masterKeyID": master_id,
            "wrappedDEK": wrapped.to_string(),
            "doubleWrapping": double,
        }))
        .unwrap()
    }

    #[test]
    fn a_data_key_unwraps_only_under_its_own_master_key() {
        let master = [1u8; 32];
        let keys = LocalWrapKeys::new("footer", &master);
        let dek = [9u8; 16];
        assert_eq!(
            keys.unwrap_data_key(&material("footer", &master, &dek, false)),
            Ok(dek.to_vec())
        );
        // A column under another master key stays unreadable, whatever it claims.
        assert_eq!(
            keys.unwrap_data_key(&material("private", &[2u8; 32], &dek, false)),
            Err(LocalWrapError::OtherMasterKey)
        );
        // Its id claimed with another master key's wrapping does not unwrap.
        assert_eq!(
            keys.unwrap_data_key(&material("footer", &[2u8; 32], &dek, false)),
            Err(LocalWrapError::Unwrap)
        );
        assert_eq!(
            keys.unwrap_data_key(&material("footer", &master, &dek, true)),
            Err(LocalWrapError::UnsupportedKeyMaterial)
        );
        assert_eq!(
            keys.unwrap_data_key(b"footer-key-id"),
            Err(LocalWrapError::NotKeyMaterial)
        );
    }
}
