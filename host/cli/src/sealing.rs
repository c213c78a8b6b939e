//! Sealing a dataset for the room, and opening it again with its key (a data owner's
//! check). The contract says each dataset's format and schema: CSV and JSON lines become a
//! Cleanroom sealed stream (AES-256-GCM segments), Parquet datasets become Parquet Modular
//! Encryption files with the columns outside `allowed_fields` under a withheld key.

use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use cleanroom_policy::Contract;
use cleanroom_policy::contract::{DataFormat, Dataset};

use cleanroom_formats::fsutil::{self, FileMode};
use cleanroom_formats::keyfile::{self, DatasetKeys};
use cleanroom_formats::stream::{self, DataKey};
use cleanroom_formats::{FormatError, parquet, tabular};

use crate::error::{MemberError, Result};

/// A sealed dataset, in memory.
#[derive(Debug)]
pub struct Sealed {
    /// The dataset key (and the withheld key of columns outside `allowed_fields`).
    pub keys: DatasetKeys,
    /// The sealed bytes.
    pub bytes: Vec<u8>,
    /// Rows sealed (0 for a `file` dataset).
    pub rows: u64,
}

/// A sealed dataset opened with its key.
#[derive(Debug)]
pub struct Opened {
    /// The plaintext (CSV for a Parquet dataset).
    pub plaintext: zeroize::Zeroizing<Vec<u8>>,
    /// Rows (0 for a `file` dataset).
    pub rows: u64,
}

/// The dataset `name` of `contract` (read from `contract_path`).
pub fn dataset<'c>(
    contract: &'c Contract,
    name: &str,
    contract_path: &Path,
) -> Result<&'c Dataset> {
    contract
        .dataset(name)
        .ok_or_else(|| MemberError::UnknownDataset {
            dataset: name.into(),
            contract: contract_path.display().to_string(),
            known: contract
                .datasets
                .iter()
                .map(|d| d.name.get_ref().as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Read the contract at `path`.
pub fn load_contract(path: &Path) -> Result<Contract> {
    let text = fsutil::read_text(path)?;
    Ok(Contract::parse(&text, &path.display().to_string())?)
}

/// Read the key file at `path`, which must be the key of dataset `name`.
pub fn read_key_for(path: &Path, name: &str) -> Result<DatasetKeys> {
    let (keys, for_ds) = keyfile::read(path)?;
    if for_ds != name {
        return Err(MemberError::KeyOfAnotherDataset {
            path: path.display().to_string(),
            key_dataset: for_ds,
            dataset: name.into(),
        });
    }
    Ok(keys)
}

fn read_parquet_plain(path: &Path, ds: &Dataset) -> Result<Vec<RecordBatch>> {
    let unreadable = |source| MemberError::ParquetUnreadable {
        path: path.display().to_string(),
        source,
    };
    let bytes = fsutil::read_file(path)?;
    let reader = ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(bytes),
    )
    .and_then(|b| b.build())
    .map_err(unreadable)?;
    let want = tabular::contract_schema(ds);
    let mut out = Vec::new();
    for b in reader {
        let b = b.map_err(|e| unreadable(e.into()))?;
        let cols = want
            .fields()
            .iter()
            .zip(&ds.schema)
            .map(|(f, declared)| {
                let mismatch = |found: String| MemberError::ColumnMismatch {
                    path: path.display().to_string(),
                    column: f.name().clone(),
                    want: declared.ty.to_string(),
                    found,
                };
                match b.column_by_name(f.name()) {
                    None => Err(mismatch("missing".into())),
                    Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
                    Some(c) => Err(mismatch(c.data_type().to_string())),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        out.push(RecordBatch::try_new(want.clone(), cols).map_err(|e| {
            MemberError::Unreadable {
                path: path.display().to_string(),
                detail: e.to_string(),
            }
        })?);
    }
    Ok(out)
}

fn seal_stream(key: &DataKey, name: &str, segment_size: u32, plain: &[u8]) -> Result<Vec<u8>> {
    let mut sealed = Vec::with_capacity(plain.len() + plain.len() / 1000 + 256);
    stream::seal(key, name, segment_size, &mut &plain[..], &mut sealed).map_err(|e| {
        MemberError::Unreadable {
            path: name.into(),
            detail: e.to_string(),
        }
    })?;
    Ok(sealed)
}

/// Seal `input` as dataset `name` of `contract` in memory, with `keys` or a new key.
/// `segment_size` is the plaintext bytes per sealed-stream segment (1 to
/// [`stream::MAX_SEGMENT_SIZE`]).
pub fn seal_to_bytes(
    contract: &Contract,
    contract_path: &Path,
    name: &str,
    input: &Path,
    keys: Option<DatasetKeys>,
    segment_size: u32,
) -> Result<Sealed> {
    let ds = dataset(contract, name, contract_path)?;
    let mut keys = keys.unwrap_or_else(DatasetKeys::generate);
    let key = keys.key.clone();
    let tabular_error = |e: FormatError| MemberError::Unreadable {
        path: input.display().to_string(),
        detail: e.to_string(),
    };
    let (bytes, rows) = match ds.format {
        DataFormat::File => {
            let plain = zeroize::Zeroizing::new(fsutil::read_file(input)?);
            (seal_stream(&key, name, segment_size, &plain)?, 0)
        }
        DataFormat::Csv | DataFormat::Json => {
            let plain = zeroize::Zeroizing::new(fsutil::read_file(input)?);
            let batches = tabular::parse_rows(ds, &plain).map_err(tabular_error)?;
            let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
            drop(batches);
            (seal_stream(&key, name, segment_size, &plain)?, rows)
        }
        DataFormat::Parquet => {
            let is_csv = input
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
            let batches = if is_csv {
                let plain = zeroize::Zeroizing::new(fsutil::read_file(input)?);
                let mut as_csv = ds.clone();
                as_csv.format = DataFormat::Csv;
                tabular::parse_rows(&as_csv, &plain).map_err(tabular_error)?
            } else {
                read_parquet_plain(input, ds)?
            };
            let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
            let schema = Arc::new(tabular::contract_schema(ds).as_ref().clone());
            let allowed = tabular::allowed(ds);
            if allowed.len() < ds.schema.len() && keys.withheld.is_none() {
                keys.withheld = Some(DataKey::generate());
            }
            let bytes = parquet::write_encrypted(&keys, &allowed, name, schema, batches).map_err(
                |source| MemberError::ParquetEncryption {
                    dataset: name.into(),
                    source,
                },
            )?;
            (bytes, rows)
        }
    };
    Ok(Sealed { keys, bytes, rows })
}

/// Seal `input` as dataset `name` of `contract` and write it to `out` (atomically).
pub fn seal(
    contract: &Contract,
    contract_path: &Path,
    name: &str,
    input: &Path,
    out: &Path,
    keys: Option<DatasetKeys>,
    segment_size: u32,
) -> Result<Sealed> {
    seal_with_key_file(
        contract,
        contract_path,
        name,
        input,
        out,
        keys,
        None,
        segment_size,
    )
}

/// Seal and write both files, the key first: a crash after it leaves a key for a file not
/// yet written (seal again with it); the other order would leave a sealed file, perhaps
/// over the registered one, whose key was never written. Refuses to overwrite a key file.
#[allow(clippy::too_many_arguments)]
pub fn seal_with_key_file(
    contract: &Contract,
    contract_path: &Path,
    name: &str,
    input: &Path,
    out: &Path,
    keys: Option<DatasetKeys>,
    key_out: Option<&Path>,
    segment_size: u32,
) -> Result<Sealed> {
    if let Some(ko) = key_out
        && ko.exists()
    {
        return Err(MemberError::WouldOverwriteKey {
            path: ko.display().to_string(),
        });
    }
    let sealed = seal_to_bytes(contract, contract_path, name, input, keys, segment_size)?;
    if let Some(ko) = key_out {
        keyfile::write(ko, &sealed.keys, name)?;
    }
    fsutil::write_file_atomic(out, &sealed.bytes, FileMode::Public)?;
    Ok(sealed)
}

/// Open the sealed file at `input` as dataset `ds` with `keys`: every segment or page is
/// authenticated and the rows are checked against the contract's schema.
pub fn open(ds: &Dataset, input: &Path, keys: &DatasetKeys) -> Result<Opened> {
    let name = ds.name.get_ref().as_str();
    let sealed = fsutil::read_file(input)?;
    let open_stream = || {
        stream::open(&keys.key, Some(name), &sealed).map_err(|source| FormatError::Sealed {
            path: input.display().to_string(),
            source,
        })
    };
    let (plaintext, rows) = match ds.format {
        DataFormat::File => (open_stream()?, 0),
        DataFormat::Csv | DataFormat::Json => {
            let plain = open_stream()?;
            let rows: u64 = tabular::parse_rows(ds, &plain)?
                .iter()
                .map(|b| b.num_rows() as u64)
                .sum();
            (plain, rows)
        }
        DataFormat::Parquet => {
            let columns: Vec<String> = ds.schema.iter().map(|f| f.name.get_ref().clone()).collect();
            let allowed = tabular::allowed(ds);
            let (schema, batches) = parquet::read_encrypted(keys, &columns, &allowed, name, sealed)
                .map_err(|_| MemberError::DoesNotDecrypt {
                    path: input.display().to_string(),
                    dataset: name.into(),
                })?;
            let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
            (
                zeroize::Zeroizing::new(tabular::to_csv(&schema, &batches)?),
                rows,
            )
        }
    };
    Ok(Opened { plaintext, rows })
}

/// The dataset key file of a Parquet dataset written with Parquet Modular Encryption's key
/// tools (PyArrow's or Spark's `CryptoFactory`, parquet-mr local wrapping): its master key,
/// read from `master_key` (64 hexadecimal digits), for `kbs put`. The contract must name the
/// key's id (`key.master_key_id`). Writes `key_out` (mode 0600) and returns the keys.
pub fn import_master_key(
    contract: &Contract,
    contract_path: &Path,
    name: &str,
    master_key: &Path,
    key_out: &Path,
) -> Result<DatasetKeys> {
    let ds = dataset(contract, name, contract_path)?;
    if ds.key.master_key_id.is_none() {
        return Err(MemberError::NoMasterKeyId {
            dataset: name.into(),
        });
    }
    let bad = || MemberError::BadMasterKey {
        path: master_key.display().to_string(),
    };
    let text = zeroize::Zeroizing::new(fsutil::read_file(master_key)?);
    let text = std::str::from_utf8(&text).map_err(|_| bad())?;
    let bytes = zeroize::Zeroizing::new(hex::decode(text.trim()).map_err(|_| bad())?);
    let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| bad())?;
    let mut id = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
    let keys = DatasetKeys {
        key: DataKey::from_parts(id, key),
        withheld: None,
    };
    keyfile::write(key_out, &keys, name)?;
    Ok(keys)
}
