//! `cleanroom dataset seal|open`: the data owner's tools.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use cleanroom_formats::fsutil::{self, FileMode};
use cleanroom_formats::keyfile;
use cleanroom_formats::stream;

use crate::sealing;

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
    /// Make the key file of a Parquet dataset written with Parquet Modular Encryption's key
    /// tools (PyArrow's or Spark's CryptoFactory with parquet-mr local wrapping; see
    /// docs/guide.md) from its master key, for `kbs put`. The file is read as written, never
    /// re-sealed; the contract names the master key's id (key.master_key_id).
    ImportMasterKey {
        #[arg(long, value_name = "FILE")]
        contract: PathBuf,
        #[arg(long)]
        dataset: String,
        /// The master key: 32 bytes as 64 hexadecimal digits.
        #[arg(long, value_name = "FILE")]
        master_key: PathBuf,
        /// Where to write the dataset key file (mode 0600).
        #[arg(long, value_name = "FILE")]
        key_out: PathBuf,
    },
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
            let c = sealing::load_contract(contract)?;
            let existing = key
                .as_deref()
                .map(|k| sealing::read_key_for(k, name))
                .transpose()?;
            let sealed = sealing::seal_with_key_file(
                &c,
                contract,
                name,
                input,
                out,
                existing,
                key_out.as_deref(),
                *segment_size,
            )?;
            println!(
                "sealed {} rows of `{name}` to {} (key id {}{}{})",
                sealed.rows,
                out.display(),
                sealed.keys.key.id_hex(),
                if sealed.keys.withheld.is_some() {
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
        DatasetCommand::ImportMasterKey {
            contract,
            dataset: name,
            master_key,
            key_out,
        } => {
            let c = sealing::load_contract(contract)?;
            let keys = sealing::import_master_key(&c, contract, name, master_key, key_out)?;
            println!(
                "master key of `{name}` written to {} as key {} (mode 0600); register it with `cleanroom-kbs put`",
                key_out.display(),
                keys.key.id_hex()
            );
        }
        DatasetCommand::Open {
            contract,
            dataset: name,
            input,
            key,
            out,
        } => {
            let c = sealing::load_contract(contract)?;
            let ds = sealing::dataset(&c, name, contract)?;
            let (k, _) = keyfile::read(key)?;
            let opened = sealing::open(ds, input, &k)?;
            println!(
                "{}: `{name}` opens with key {}: {} rows, columns {}",
                input.display(),
                k.key.id_hex(),
                opened.rows,
                ds.schema
                    .iter()
                    .map(|f| f.name.get_ref().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if let Some(o) = out {
                fsutil::write_file_atomic(o, &opened.plaintext, FileMode::Secret)?;
                println!("plaintext written to {} (mode 0600)", o.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
