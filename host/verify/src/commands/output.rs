//! `cleanroom output open|inspect`: for result recipients.

use cleanroom_formats::fsutil::FileMode;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use cleanroom_formats::envelope;
use cleanroom_formats::fsutil;
use cleanroom_formats::keys;

use super::attest::{load_policy_contract, verification_time};
use crate::VerifyError;

#[derive(Debug, Args)]
pub struct OutputArgs {
    #[command(subcommand)]
    pub command: OutputCommand,
}

#[derive(Debug, Subcommand)]
pub enum OutputCommand {
    /// Open a sealed output as a recipient, after checking that it was signed by the key
    /// bound in its run's evidence and that the evidence satisfies the contract: prints
    /// the authenticated header (what the output is, inside the sealed content) and the
    /// content (or writes the content to --out). Refuses (exit 1) anything else.
    Open {
        /// The sealed output (ROOM/outputs/<run>-<n>.cro).
        #[arg(long = "in", value_name = "FILE")]
        input: PathBuf,
        /// Recipient member name.
        #[arg(long)]
        name: String,
        /// The recipient's NAME.enc.key.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The contract the members signed: the run's evidence is verified against its
        /// attestation policy, and the output must be of this contract.
        #[arg(long, value_name = "FILE")]
        contract: PathBuf,
        /// The run's evidence bundle. Default: ROOM/evidence/<run>.json beside
        /// ROOM/outputs/.
        #[arg(long, value_name = "FILE")]
        evidence: Option<PathBuf>,
        /// Verify the evidence as of this time (RFC 3339); default: now.
        #[arg(long, value_name = "RFC3339")]
        at: Option<String>,
        /// Write the content here (mode 0600) instead of to stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Show an output's plaintext header and recipients without opening it
    /// (unauthenticated; it holds only what the host decided).
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
            contract,
            evidence,
            at,
            out,
        } => {
            let file = fsutil::read_file(input)?;
            let sk = keys::encryption_key(key)?;
            let contract = load_policy_contract(contract)?;
            let at = verification_time(at.as_deref())?;
            let path = input.display().to_string();
            let refused = |source| VerifyError::OutputUnopenable {
                path: path.clone(),
                source,
            };
            let (header, _) = envelope::inspect(&file)
                .map_err(|e| refused(crate::output::OutputError::Envelope(e)))?;
            let evidence = match evidence {
                Some(e) => e.clone(),
                None => crate::evidence::evidence_beside_output(input, &header.run_id).ok_or_else(
                    || {
                        anyhow::anyhow!(
                            "{path}: no evidence bundle found for run `{}`: give --evidence FILE",
                            header.run_id
                        )
                    },
                )?,
            };
            let bundle: cleanroom_attest::EvidenceBundle =
                serde_json::from_slice(&fsutil::read_file(&evidence)?).map_err(|e| {
                    anyhow::anyhow!("{} is not an evidence bundle: {e}", evidence.display())
                })?;
            let v = crate::output::open_verified(&file, name, &sk, &contract, &bundle, at)
                .map_err(refused)?;
            let (h, c) = (&v.opened.header, &v.opened.content);
            if h.insecure || v.host.insecure {
                eprintln!(
                    "WARNING: this output was produced under SIMULATED attestation (INSECURE): it proves nothing about hardware"
                );
            }
            eprintln!(
                "signed by run {}'s attested host key {}... ({} evidence {}, verified against contract {})",
                h.run_id,
                &h.host_key[..16],
                v.host.claims.platform,
                evidence.display(),
                h.contract_digest
            );
            eprintln!(
                "output {} of run {}: {}{} of workload `{}` ({}), {} rows, format {}{}",
                h.index,
                h.run_id,
                c.kind,
                if c.name.is_empty() {
                    String::new()
                } else {
                    format!(" `{}`", c.name)
                },
                c.workload,
                h.workload_digest,
                c.rows,
                c.format,
                if c.columns.is_empty() {
                    String::new()
                } else {
                    format!(", columns {}", c.columns.join(","))
                }
            );
            eprintln!(
                "audit anchor {}:{} (check a copy of the room's log: cleanroom audit verify --log FILE --evidence ROOM/evidence --contract CONTRACT --anchor {}:{})",
                h.audit_seq, h.audit_hash, h.audit_seq, h.audit_hash
            );
            match out {
                Some(o) => {
                    fsutil::write_file_atomic(o, &v.opened.data, FileMode::Secret)?;
                    eprintln!("content written to {} (mode 0600)", o.display());
                }
                None => print!("{}", String::from_utf8_lossy(&v.opened.data)),
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
