//! Parquet Modular Encryption (the Apache standard) for Parquet datasets.
//!
//! Files are written with uniform encryption: footer and every column encrypted under the
//! dataset key, with an AAD prefix naming the dataset that is *not* stored in the file, so a
//! file cannot be swapped for another dataset's even under the same key. The footer key
//! metadata carries the key id. Files are readable by any PME implementation (PyArrow,
//! Spark) given the key and AAD prefix, and by DataFusion's `parquet_encryption` feature,
//! which is how the run path reads them (see `engine`).

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::config::ConfigFileDecryptionProperties;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::encryption::decrypt::FileDecryptionProperties;
use parquet::encryption::encrypt::FileEncryptionProperties;
use parquet::file::properties::WriterProperties;

use crate::seal::stream::DataKey;

/// The AAD prefix binding a file to its dataset name.
pub fn aad_prefix(dataset: &str) -> Vec<u8> {
    format!("cleanroom:dataset:{dataset}").into_bytes()
}

/// Write `batches` as an encrypted Parquet file.
pub fn write_encrypted(
    key: &DataKey,
    dataset: &str,
    schema: SchemaRef,
    batches: impl IntoIterator<Item = RecordBatch>,
) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let enc = FileEncryptionProperties::builder(key.key_bytes().to_vec())
        .with_footer_key_metadata(key.id_hex().into_bytes())
        .with_aad_prefix(aad_prefix(dataset))
        .with_aad_prefix_storage(false)
        .build()?;
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

/// Decryption properties for DataFusion's Parquet reader.
pub fn datafusion_decryption(key: &DataKey, dataset: &str) -> ConfigFileDecryptionProperties {
    ConfigFileDecryptionProperties {
        footer_key_as_hex: hex::encode(key.key_bytes()),
        aad_prefix_as_hex: hex::encode(aad_prefix(dataset)),
        ..Default::default()
    }
}

/// Read an encrypted Parquet file in memory (for `dataset open`, the owner's check).
pub fn read_encrypted(
    key: &DataKey,
    dataset: &str,
    bytes: Vec<u8>,
) -> Result<(SchemaRef, Vec<RecordBatch>), parquet::errors::ParquetError> {
    let dec = FileDecryptionProperties::builder(key.key_bytes().to_vec())
        .with_aad_prefix(aad_prefix(dataset))
        .build()?;
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
