//! `cleanroom audit verify|show`: for anyone holding a copy of the log.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::audit;
use cleanroom_formats::audit as entry;
use cleanroom_formats::fsutil;

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain and every checkpoint signature. Exits 1 naming the first
    /// broken entry if any entry was removed, reordered or edited, or if the log lacks an
    /// entry an output anchors (--anchor, as `output open` prints it: the log was cut).
    Verify {
        /// The log (a room's audit.jsonl).
        #[arg(long, value_name = "FILE")]
        log: PathBuf,
        /// An output's audit anchor SEQ:HASH; repeat for several outputs.
        #[arg(long, value_name = "SEQ:HASH", value_parser = anchor)]
        anchor: Vec<(u64, String)>,
    },
    /// Print the log, one line per entry.
    Show {
        #[arg(long, value_name = "FILE")]
        log: PathBuf,
    },
}

fn anchor(s: &str) -> Result<(u64, String), String> {
    entry::parse_anchor(s).ok_or_else(|| "expected SEQ:HASH (a number, a colon, 64 hex)".into())
}

pub fn run(args: &AuditArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        AuditCommand::Verify { log, anchor } => {
            let text = fsutil::read_file(log)?;
            let s = audit::verify_with_anchors(&text, anchor).map_err(|source| {
                crate::VerifyError::AuditBroken {
                    path: log.display().to_string(),
                    source,
                }
            })?;
            println!(
                "audit log verified: {} entries, {} signed checkpoints{}, head {}",
                s.entries,
                s.checkpoints,
                if s.insecure_checkpoints > 0 {
                    format!(" ({} by SIMULATED, INSECURE hosts)", s.insecure_checkpoints)
                } else {
                    String::new()
                },
                &s.head[..16]
            );
            if !anchor.is_empty() {
                println!("every anchored entry is present ({})", anchor.len());
            }
            if s.unsigned_tail > 0 {
                println!(
                    "note: the last {} entries are not yet covered by a checkpoint",
                    s.unsigned_tail
                );
            }
        }
        AuditCommand::Show { log } => {
            let text = fsutil::read_text(log)?;
            for line in text.lines() {
                let e: entry::Entry = serde_json::from_str(line)?;
                println!(
                    "{:>4} {} {:12} {:9} {}: {}",
                    e.seq, e.time, e.event, e.decision, e.subject, e.reason
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
