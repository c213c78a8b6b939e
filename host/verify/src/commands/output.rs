//! `cleanroom output open|inspect`: for result recipients.

use cleanroom_formats::fsutil::FileMode;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use cleanroom_formats::envelope;
use cleanroom_formats::fsutil;
use cleanroom_formats::keys;

#[derive(Debug, Args)]
pub struct OutputArgs {
    #[command(subcommand)]
    pub command: OutputCommand,
}

#[derive(Debug, Subcommand)]
pub enum OutputCommand {
    /// Open a sealed output as a recipient: prints the authenticated header and the content
    /// (or writes the content to --out).
    Open {
        /// The sealed output (ROOM/outputs/<run>-....cro).
        #[arg(long = "in", value_name = "FILE")]
        input: PathBuf,
        /// Recipient member name.
        #[arg(long)]
        name: String,
        /// The recipient's NAME.enc.key.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Write the content here (mode 0600) instead of to stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Show an output's header and recipients without opening it (unauthenticated).
    Inspect {
        /// The sealed output.
        #[arg(long = "in", value_name = "FILE")]
        input: PathBuf,
    },
}

pub fn run(args: &OutputArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        OutputCommand::Open {
            input,
            name,
            key,
            out,
        } => {
            let file = fsutil::read_file(input)?;
            let sk = keys::encryption_key(key)?;
            let (h, content) = envelope::open(&file, name, &sk)
                .map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
            if h.insecure {
                eprintln!(
                    "WARNING: this output was produced under SIMULATED attestation (INSECURE): it proves nothing about hardware"
                );
            }
            eprintln!(
                "output of workload `{}` (run {}, contract {}), {} rows, format {}",
                h.workload, h.run_id, h.contract_digest, h.rows, h.format
            );
            eprintln!(
                "audit anchor {}:{} (check a copy of the room's log: cleanroom audit verify --log FILE --anchor {}:{})",
                h.audit_seq, h.audit_hash, h.audit_seq, h.audit_hash
            );
            match out {
                Some(o) => {
                    fsutil::write_file_atomic(o, &content, FileMode::Secret)?;
                    eprintln!("content written to {} (mode 0600)", o.display());
                }
                None => print!("{}", String::from_utf8_lossy(&content)),
            }
        }
        OutputCommand::Inspect { input } => {
            let file = fsutil::read_file(input)?;
            let (h, recipients) = envelope::inspect(&file)
                .map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
            println!("{}", serde_json::to_string_pretty(&h)?);
            println!("recipients: {}", recipients.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}
