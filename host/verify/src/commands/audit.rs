//! `cleanroom audit verify|show`: for anyone holding a copy of the log.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::audit;
use crate::evidence::{AttestedHost, verify_host_evidence};
use cleanroom_formats::audit as entry;
use cleanroom_formats::fsutil;

use super::attest::{load_policy_contract, verification_time};

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: AuditCommand,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain and every checkpoint signature, and tie the checkpoints to
    /// the runs' hardware evidence: a checkpoint counts only if its key is the one bound in
    /// its run's evidence, verified against the contract. Exits 1 naming the first broken
    /// entry if any entry was removed, reordered or edited, if a checkpoint was re-signed,
    /// if no checkpoint counts, or if the log lacks an entry an output anchors (--anchor, as
    /// `output open` prints it: the log was cut). Without --evidence it checks the chain
    /// and says UNVERIFIED (exit 1): checkpoints alone prove nothing.
    Verify {
        /// The log (a room's audit.jsonl).
        #[arg(long, value_name = "FILE")]
        log: PathBuf,
        /// An output's audit anchor SEQ:HASH; repeat for several outputs.
        #[arg(long, value_name = "SEQ:HASH", value_parser = anchor)]
        anchor: Vec<(u64, String)>,
        /// The runs' evidence bundles: a directory (ROOM/evidence, files <run>.json) or
        /// bundle files; repeatable.
        #[arg(long, value_name = "DIR|FILE", requires = "contract")]
        evidence: Vec<PathBuf>,
        /// The contract the members signed: every bundle is verified against its
        /// attestation policy.
        #[arg(long, value_name = "FILE", requires = "evidence")]
        contract: Option<PathBuf>,
        /// Verify the evidence as of this time (RFC 3339); default: now.
        #[arg(long, value_name = "RFC3339")]
        at: Option<String>,
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
        AuditCommand::Verify {
            log,
            anchor,
            evidence,
            contract,
            at,
        } => {
            let text = fsutil::read_file(log)?;
            let broken = |source| crate::VerifyError::AuditBroken {
                path: log.display().to_string(),
                source,
            };
            if let Some(contract) = contract {
                let contract = load_policy_contract(contract)?;
                let runs = load_evidence(evidence, &contract, verification_time(at.as_deref())?)?;
                let (s, a) =
                    audit::verify_against_evidence(&text, anchor, &runs).map_err(broken)?;
                println!(
                    "audit log verified: {} entries, {} checkpoints signed by the key bound in their run's verified evidence ({} bundles){}, head {}",
                    s.entries,
                    a.checkpoints,
                    runs.len(),
                    if a.insecure > 0 {
                        format!(" ({} by SIMULATED, INSECURE hosts)", a.insecure)
                    } else {
                        String::new()
                    },
                    &s.head[..16]
                );
                if !anchor.is_empty() {
                    println!("every anchored entry is present ({})", anchor.len());
                }
                if a.unattested > 0 {
                    println!(
                        "note: {} checkpoint(s) without evidence (runs refused before they attested) do not count",
                        a.unattested
                    );
                }
                if a.uncovered_tail > 0 {
                    println!(
                        "note: the last {} entries are not covered by an attested checkpoint: nothing ties them to the attested room",
                        a.uncovered_tail
                    );
                }
                if !a.runs_without_checkpoint.is_empty() {
                    println!(
                        "note: evidence of runs without a checkpoint in this log (a run that crashed, or a log cut or rewritten): {}",
                        a.runs_without_checkpoint.join(", ")
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            let s = audit::verify_with_anchors(&text, anchor).map_err(broken)?;
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
            println!(
                "UNVERIFIED: the checkpoints were not tied to hardware evidence (anyone can re-sign a rewritten log); give --evidence ROOM/evidence --contract CONTRACT"
            );
            return Ok(ExitCode::from(1));
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

/// The bundles under `paths` (directories of `<run>.json`, or files), each verified against
/// `contract` at `at`: run id (the file's stem) → the host its evidence proves. A bundle
/// that does not verify is an error.
pub fn load_evidence(
    paths: &[PathBuf],
    contract: &cleanroom_policy::Contract,
    at: u64,
) -> anyhow::Result<BTreeMap<String, AttestedHost>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| cleanroom_formats::FormatError::io(p.clone(), e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "json"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    let mut runs = BTreeMap::new();
    for f in files {
        let run = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bundle: cleanroom_attest::EvidenceBundle =
            serde_json::from_slice(&fsutil::read_file(&f)?)
                .map_err(|e| anyhow::anyhow!("{} is not an evidence bundle: {e}", f.display()))?;
        let host = verify_host_evidence(&bundle, contract, at).map_err(|source| {
            crate::VerifyError::Evidence {
                path: f.display().to_string(),
                source,
            }
        })?;
        runs.insert(run, host);
    }
    Ok(runs)
}
