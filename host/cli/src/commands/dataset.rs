//! `cleanroom dataset seal|open`: the data owner's tools.

use cleanroom_formats::fsutil::FileMode;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use arrow::array::RecordBatch;
use clap::{Args, Subcommand};
use cleanroom_policy::Contract;
use cleanroom_policy::contract::{DataFormat, Dataset};

use cleanroom_formats::fsutil;
use cleanroom_formats::keyfile::{self, DatasetKeys};
use cleanroom_formats::parquet;
use cleanroom_formats::stream::{self, DataKey};
use cleanroom_formats::tabular;

#[derive(Debug, Args)]
pub struct DatasetArgs {
    #[command(subcommand)]
    pub command: DatasetCommand,
}

#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// Seal a dataset for the room. The contract says its format and schema: CSV and
    /// JSON-lines become a Cleanroom sealed stream (AES-256-GCM segments); Parquet datasets
    /// become Parquet Modular Encryption files (input may be Parquet or CSV). A new key is
    /// generated (or --key reused) and written to --key-out (mode 0600) for `kbs put`.
    Seal {
        #[arg(long, value_name = "FILE")]
        contract: PathBuf,
        /// Dataset name in the contract.
        #[arg(long)]
        dataset: String,
        /// Plaintext input (CSV with a header row, JSON lines, or Parquet).
        #[arg(long = "in", value_name = "FILE")]
        input: PathBuf,
        /// Sealed output file.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Where to write the new dataset key.
        #[arg(long, value_name = "FILE", required_unless_present = "key")]
        key_out: Option<PathBuf>,
        /// Reuse an existing dataset key instead of generating one.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Plaintext bytes per sealed-stream segment.
        #[arg(long, default_value_t = stream::DEFAULT_SEGMENT_SIZE, value_parser = clap::value_parser!(u32).range(1..=stream::MAX_SEGMENT_SIZE as i64))]
        segment_size: u32,
    },
    /// Open a sealed dataset with its key (an owner checking its own file): verifies every
    /// segment or page, checks it against the contract schema, prints rows and columns, and
    /// with --out writes the plaintext (mode 0600).
    Open {
        #[arg(long, value_name = "FILE")]
        contract: PathBuf,
        #[arg(long)]
        dataset: String,
        #[arg(long = "in", value_name = "FILE")]
        input: PathBuf,
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

fn dataset<'c>(c: &'c Contract, name: &str, path: &Path) -> anyhow::Result<&'c Dataset> {
    c.dataset(name).ok_or_else(|| {
        anyhow::anyhow!(
            "--dataset `{name}` is not in {} (datasets: {})",
            path.display(),
            c.datasets
                .iter()
                .map(|d| d.name.get_ref().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

fn load_contract(path: &Path) -> anyhow::Result<Contract> {
    let text = fsutil::read_text(path)?;
    Ok(Contract::parse(&text, &path.display().to_string())?)
}

fn read_parquet_plain(path: &Path, ds: &Dataset) -> anyhow::Result<Vec<RecordBatch>> {
    let bytes = fsutil::read_file(path)?;
    let reader = ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(bytes),
    )
    .with_context(|| format!("{}: not a readable Parquet file", path.display()))?
    .build()?;
    let want = tabular::contract_schema(ds);
    let mut out = Vec::new();
    for b in reader {
        let b = b.with_context(|| format!("{}: reading Parquet", path.display()))?;
        let cols = want
            .fields()
            .iter()
            .map(|f| {
                b.column_by_name(f.name())
                    .filter(|c| c.data_type() == f.data_type())
                    .cloned()
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "{}: column `{}` missing or not {}",
                            path.display(),
                            f.name(),
                            f.data_type()
                        )
                    })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        out.push(RecordBatch::try_new(want.clone(), cols)?);
    }
    Ok(out)
}

/// Seal `input` as dataset `name` of `contract` and write it to `out`; returns the key and
/// the row count.
pub fn seal(
    contract: &Contract,
    contract_path: &Path,
    name: &str,
    input: &Path,
    out: &Path,
    keys: Option<DatasetKeys>,
    segment_size: u32,
) -> anyhow::Result<(DatasetKeys, u64)> {
    let (keys, sealed, rows) =
        seal_to_bytes(contract, contract_path, name, input, keys, segment_size)?;
    fsutil::write_file_atomic(out, &sealed, FileMode::Public)?;
    Ok((keys, rows))
}

/// Seal `input` as dataset `name` of `contract` in memory; returns the key, the sealed
/// bytes and the row count.
pub fn seal_to_bytes(
    contract: &Contract,
    contract_path: &Path,
    name: &str,
    input: &Path,
    keys: Option<DatasetKeys>,
    segment_size: u32,
) -> anyhow::Result<(DatasetKeys, Vec<u8>, u64)> {
    let ds = dataset(contract, name, contract_path)?;
    let mut keys = keys.unwrap_or_else(DatasetKeys::generate);
    let key = keys.key.clone();
    let (sealed, rows) = match ds.format {
        DataFormat::File => {
            let plain = zeroize::Zeroizing::new(fsutil::read_file(input)?);
            let mut sealed = Vec::with_capacity(plain.len() + plain.len() / 1000 + 256);
            stream::seal(&key, name, segment_size, &mut &plain[..], &mut sealed)?;
            (sealed, 0)
        }
        DataFormat::Csv | DataFormat::Json => {
            let plain = zeroize::Zeroizing::new(fsutil::read_file(input)?);
            let batches =
                tabular::parse_rows(ds, &plain).with_context(|| format!("{}", input.display()))?;
            let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
            drop(batches);
            let mut sealed = Vec::with_capacity(plain.len() + plain.len() / 1000 + 256);
            stream::seal(&key, name, segment_size, &mut &plain[..], &mut sealed)?;
            (sealed, rows)
        }
        DataFormat::Parquet => {
            let is_csv = input
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
            let batches = if is_csv {
                let plain = zeroize::Zeroizing::new(fsutil::read_file(input)?);
                let mut as_csv = ds.clone();
                as_csv.format = DataFormat::Csv;
                tabular::parse_rows(&as_csv, &plain)
                    .with_context(|| format!("{}", input.display()))?
            } else {
                read_parquet_plain(input, ds)?
            };
            let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
            let schema = Arc::new(tabular::contract_schema(ds).as_ref().clone());
            let allowed = tabular::allowed(ds);
            if allowed.len() < ds.schema.len() && keys.withheld.is_none() {
                keys.withheld = Some(DataKey::generate());
            }
            (
                parquet::write_encrypted(&keys, &allowed, name, schema, batches)?,
                rows,
            )
        }
    };
    Ok((keys, sealed, rows))
}

pub fn run(args: &DatasetArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        DatasetCommand::Seal {
            contract,
            dataset: name,
            input,
            out,
            key_out,
            key,
            segment_size,
        } => {
            let c = load_contract(contract)?;
            let existing = match key {
                Some(k) => {
                    let (k, for_ds) = keyfile::read(k)?;
                    if for_ds != *name {
                        bail!("--key is the key of dataset `{for_ds}`, not `{name}`");
                    }
                    Some(k)
                }
                None => None,
            };
            if let Some(ko) = key_out
                && ko.exists()
            {
                bail!(
                    "--key-out {} already exists; refusing to overwrite a key",
                    ko.display()
                );
            }
            let (k, sealed, rows) =
                seal_to_bytes(&c, contract, name, input, existing, *segment_size)?;
            // The key first: a crash after it leaves a key for a file not yet written (seal
            // again with --key); the other order would leave a sealed file, perhaps over the
            // registered one, whose key was never written.
            if let Some(ko) = key_out {
                keyfile::write(ko, &k, name)?;
            }
            fsutil::write_file_atomic(out, &sealed, FileMode::Public)?;
            println!(
                "sealed {rows} rows of `{name}` to {} (key id {}{}{})",
                out.display(),
                k.key.id_hex(),
                if k.withheld.is_some() {
                    "; columns outside allowed_fields under a withheld key that stays with you"
                } else {
                    ""
                },
                key_out
                    .as_ref()
                    .map(|p| format!(", key in {}", p.display()))
                    .unwrap_or_default()
            );
        }
        DatasetCommand::Open {
            contract,
            dataset: name,
            input,
            key,
            out,
        } => {
            let c = load_contract(contract)?;
            let ds = dataset(&c, name, contract)?;
            let (k, _) = keyfile::read(key)?;
            let sealed = fsutil::read_file(input)?;
            let (plain, rows) = match ds.format {
                DataFormat::File => {
                    let plain = stream::open(&k.key, Some(name), &sealed).map_err(|source| {
                        cleanroom_formats::FormatError::Sealed {
                            path: input.display().to_string(),
                            source,
                        }
                    })?;
                    (plain.to_vec(), 0)
                }
                DataFormat::Csv | DataFormat::Json => {
                    let plain = stream::open(&k.key, Some(name), &sealed).map_err(|source| {
                        cleanroom_formats::FormatError::Sealed {
                            path: input.display().to_string(),
                            source,
                        }
                    })?;
                    let rows: u64 = tabular::parse_rows(ds, &plain)?
                        .iter()
                        .map(|b| b.num_rows() as u64)
                        .sum();
                    (plain.to_vec(), rows)
                }
                DataFormat::Parquet => {
                    let columns: Vec<String> =
                        ds.schema.iter().map(|f| f.name.get_ref().clone()).collect();
                    let allowed = tabular::allowed(ds);
                    let (schema, batches) = parquet::read_encrypted(&k, &columns, &allowed, name, sealed)
                        .map_err(|_| anyhow::anyhow!("{}: does not decrypt as dataset `{name}` with this key (wrong key, or modified/swapped file)", input.display()))?;
                    let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
                    (tabular::to_csv(&schema, &batches)?, rows)
                }
            };
            println!(
                "{}: `{name}` opens with key {}: {rows} rows, columns {}",
                input.display(),
                k.key.id_hex(),
                ds.schema
                    .iter()
                    .map(|f| f.name.get_ref().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if let Some(o) = out {
                fsutil::write_file_atomic(o, &plain, FileMode::Secret)?;
                println!("plaintext written to {} (mode 0600)", o.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
