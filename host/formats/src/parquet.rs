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
    let mut w = encrypted_writer(Vec::new(), keys, allowed, dataset, schema)?;
    for b in batches {
        w.write(&b)?;
    }
    w.into_inner()
}

/// A writer of an encrypted Parquet file into `sink`, keyed as [`write_encrypted`] keys it,
/// for a file too large to hold in memory: write batches, then `into_inner` (or `close`)
/// writes the encrypted footer.
pub fn encrypted_writer<W: std::io::Write + Send>(
    sink: W,
    keys: &DatasetKeys,
    allowed: &[String],
    dataset: &str,
    schema: SchemaRef,
) -> Result<ArrowWriter<W>, parquet::errors::ParquetError> {
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
    ArrowWriter::try_new(sink, schema, Some(props))
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

pub use crate::pme::{LocalWrapError, LocalWrapKeys};

impl parquet::encryption::decrypt::KeyRetriever for LocalWrapKeys {
    fn retrieve_key(&self, key_metadata: &[u8]) -> parquet::errors::Result<Vec<u8>> {
        self.unwrap_data_key(key_metadata)
            .map_err(|e| parquet::errors::ParquetError::General(e.to_string()))
    }
}
