//! `cleanroom kbs init|serve|put|events|upgrade`: the data owner's key broker.

use cleanroom_formats::fsutil::FileMode;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};

use cleanroom_formats::identity::FileIdentity;
use cleanroom_formats::load::{default_sigs, load_signed_contract, read_messages};
use cleanroom_formats::{fsutil, keyfile};

use crate::error::KbsError;
use crate::events::{EventDecision, EventKind};
use crate::server;
use crate::store::{MasterKey, ResourceRecord, Store};
use crate::tls::{self, TlsIdentity};

#[derive(Debug, Args)]
pub struct KbsArgs {
    #[command(subcommand)]
    pub command: KbsCommand,
}

#[derive(Debug, Subcommand)]
pub enum KbsCommand {
    /// Create a broker database, a new master key (mode 0600) and a self-signed TLS
    /// certificate and key (DB.tls-cert.pem, DB.tls-key.pem mode 0600). Prints the
    /// certificate's SPKI SHA-256, which the contract pins as `broker_spki_sha256`. Keys in
    /// the database are sealed under the master key; keep it apart from the database.
    Init {
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
        #[arg(long, value_name = "FILE")]
        master_key_out: PathBuf,
        /// Where to write the TLS certificate (default DB.tls-cert.pem).
        #[arg(long, value_name = "FILE")]
        tls_cert_out: Option<PathBuf>,
        /// Where to write the TLS private key (default DB.tls-key.pem).
        #[arg(long, value_name = "FILE")]
        tls_key_out: Option<PathBuf>,
    },
    /// Serve the KBS protocol (auth, attest, resource) over HTTPS on ADDR. Prints
    /// `listening on ADDR` once ready (use port 0 for any free port), then `spki-sha256 HEX`.
    /// Stops on Ctrl-C.
    Serve {
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
        #[arg(long, value_name = "FILE")]
        master_key: PathBuf,
        /// The TLS certificate (PEM; default DB.tls-cert.pem, written by init).
        #[arg(long, value_name = "FILE")]
        tls_cert: Option<PathBuf>,
        /// The TLS private key (PEM; default DB.tls-key.pem, written by init).
        #[arg(long, value_name = "FILE")]
        tls_key: Option<PathBuf>,
        /// Serve plain HTTP instead (INSECURE; only on a 127.0.0.1 address, for contracts
        /// with allow_simulated = true).
        #[arg(long, conflicts_with_all = ["tls_cert", "tls_key"])]
        plain_http: bool,
    },
    /// Register a dataset key: the contract (signed by every member), the key file that
    /// `dataset seal` wrote and the sealed file itself, whose identity (the header digest
    /// of a sealed stream, the AAD file-unique id of encrypted Parquet) is released with
    /// the key, so the room reads this sealing and no other. The key is released only
    /// under that contract, for the dataset's resource path, to attested runs the owner
    /// approved. Registering again (a new sealing) replaces it and is recorded in events.
    Put {
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
        #[arg(long, value_name = "FILE")]
        master_key: PathBuf,
        #[arg(long, value_name = "FILE")]
        contract: PathBuf,
        #[arg(long, value_name = "FILE")]
        sigs: Option<PathBuf>,
        #[arg(long)]
        dataset: String,
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The sealed file the key is registered for (what `dataset seal` wrote).
        #[arg(long, value_name = "FILE")]
        sealed: PathBuf,
    },
    /// Print the broker's decision log (registrations, attestations, releases and
    /// governance messages, granted and refused).
    Events {
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
        #[arg(long, value_name = "FILE")]
        master_key: PathBuf,
        /// Recompute the log's hash chain instead and check it ends at the head sealed under
        /// the master key; print the number of events and the head (SEQ:HASH, keep it to
        /// compare later), or name the first broken row (exit 1).
        #[arg(long)]
        verify: bool,
    },
    /// Chain the event log of a database made before the log was chained (once; the
    /// broker refuses to open such a database until then). Its events so far are chained
    /// as they are found, then an event records where the chain started.
    Upgrade {
        #[arg(long, value_name = "FILE")]
        db: PathBuf,
        #[arg(long, value_name = "FILE")]
        master_key: PathBuf,
    },
}

fn read_master_key(master_key: &Path) -> crate::error::Result<MasterKey> {
    let text = zeroize::Zeroizing::new(fsutil::read_text(master_key)?);
    MasterKey::from_file_text(&text, master_key)
}

/// Open the broker database `db` with the master key in the file `master_key`.
pub fn open_store(db: &Path, master_key: &Path) -> crate::error::Result<Store> {
    Store::open(db, read_master_key(master_key)?)
}

/// Register `dataset`'s key under the signed contract, for the sealed file `sealed`.
/// Returns the resource path.
pub fn put(
    store: &Store,
    contract: &Path,
    sigs: &Path,
    dataset: &str,
    key: &Path,
    sealed: &Path,
) -> crate::error::Result<String> {
    let (signed, text) = load_signed_contract(contract, sigs)?;
    let ds = signed
        .contract()
        .dataset(dataset)
        .ok_or_else(|| KbsError::UnknownDataset {
            dataset: dataset.into(),
            contract: contract.display().to_string(),
        })?;
    // Only the dataset key goes to the broker; a Parquet file's withheld column key stays
    // in the owner's key file.
    let (keys, for_ds) = keyfile::read(key)?;
    let k = keys.key;
    if for_ds != dataset {
        return Err(KbsError::KeyOfAnotherDataset {
            path: key.display().to_string(),
            key_dataset: for_ds,
            dataset: dataset.into(),
        });
    }
    let file_id = FileIdentity::of(ds.format, &fsutil::read_file(sealed)?).map_err(|e| {
        KbsError::SealedFileUnidentifiable {
            path: sealed.display().to_string(),
            what: e.to_string(),
        }
    })?;
    let sig_lines: Vec<String> = read_messages(sigs)?.iter().map(|m| m.to_base64()).collect();
    store.put_contract(&signed.digest().hex(), &text, &sig_lines)?;
    let path = ds.key.resource.get_ref().clone();
    store.put_key(
        &ResourceRecord {
            path: path.clone(),
            contract_digest: signed.digest().hex(),
            dataset: dataset.to_string(),
        },
        &k,
        &file_id,
    )?;
    store.record_event(
        EventKind::Register,
        &path,
        EventDecision::Recorded,
        &format!(
            "key {} of `{dataset}` for sealed file {file_id}",
            k.id_hex()
        ),
    )?;
    Ok(path)
}

pub fn run(args: &KbsArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        KbsCommand::Init {
            db,
            master_key_out,
            tls_cert_out,
            tls_key_out,
        } => {
            if master_key_out.exists() {
                bail!(
                    "--master-key-out {} already exists; refusing to overwrite a master key",
                    master_key_out.display()
                );
            }
            let cert = tls_cert_out
                .clone()
                .unwrap_or_else(|| tls::default_cert_path(db));
            let key = tls_key_out
                .clone()
                .unwrap_or_else(|| tls::default_key_path(db));
            for p in [&cert, &key] {
                if p.exists() {
                    bail!(
                        "{} already exists; refusing to overwrite a broker's TLS identity",
                        p.display()
                    );
                }
            }
            let identity = TlsIdentity::generate()?;
            let mk = MasterKey::generate();
            let text = mk.to_file_text();
            Store::init(db, mk)?;
            fsutil::write_file_atomic(master_key_out, text.as_bytes(), FileMode::Secret)?;
            identity.write(&cert, &key)?;
            println!(
                "created broker database {} and master key {} (mode 0600)",
                db.display(),
                master_key_out.display()
            );
            println!(
                "TLS certificate {} and key {} (mode 0600)",
                cert.display(),
                key.display()
            );
            println!("spki-sha256 {}", identity.spki_sha256()?);
        }
        KbsCommand::Serve {
            listen,
            db,
            master_key,
            tls_cert,
            tls_key,
            plain_http,
        } => {
            let identity = if *plain_http {
                None
            } else {
                let cert = tls_cert
                    .clone()
                    .unwrap_or_else(|| tls::default_cert_path(db));
                let key = tls_key.clone().unwrap_or_else(|| tls::default_key_path(db));
                Some(TlsIdentity::read(&cert, &key)?)
            };
            let store = open_store(db, master_key)?;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .map_err(|e| anyhow::anyhow!("--listen {listen}: {e}"))?;
                let broker = server::spawn(store, listener, identity.as_ref())?;
                println!("listening on {}", broker.addr);
                match &broker.spki_sha256 {
                    Some(pin) => println!("spki-sha256 {pin}"),
                    None => println!("plain HTTP (INSECURE, loopback only)"),
                }
                tokio::signal::ctrl_c().await?;
                broker.stop().await;
                anyhow::Ok(())
            })?;
        }
        KbsCommand::Put {
            db,
            master_key,
            contract,
            sigs,
            dataset,
            key,
            sealed,
        } => {
            let store = open_store(db, master_key)?;
            let sigs = sigs.clone().unwrap_or_else(|| default_sigs(contract));
            let path = put(&store, contract, &sigs, dataset, key, sealed)?;
            println!("registered the key of `{dataset}` as resource {path}");
        }
        KbsCommand::Events {
            db,
            master_key,
            verify,
        } => {
            let store = open_store(db, master_key)?;
            if *verify {
                let (events, head) = store.verify_events()?;
                println!(
                    "event log verifies: {} events, head {}",
                    events.len(),
                    head.to_text()
                );
            } else {
                for e in store.events()? {
                    println!("{:8} {:8} {}: {}", e.kind, e.decision, e.resource, e.reason);
                }
            }
        }
        KbsCommand::Upgrade { db, master_key } => {
            let master = read_master_key(master_key)?;
            let (store, chained) = Store::upgrade_events(db, master)?;
            match chained {
                None => println!("the event log of {} is chained already", db.display()),
                Some(n) => {
                    let (_, head) = store.verify_events()?;
                    println!(
                        "chained the event log of {}: {n} earlier events, then the chain's \
                         start event; head {}",
                        db.display(),
                        head.to_text()
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
