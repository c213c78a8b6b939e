//! `cleanroom contract digest|sign|verify`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use cleanroom_policy::Contract;

use cleanroom_formats::fsutil;
use cleanroom_formats::load::load_signed_contract;
pub use cleanroom_formats::load::{default_approvals, default_proposal, default_sigs};

#[derive(Debug, Args)]
pub struct ContractArgs {
    #[command(subcommand)]
    pub command: ContractCommand,
}

#[derive(Debug, Subcommand)]
pub enum ContractCommand {
    /// Validate contract.toml and print its digest: SHA-256 of the RFC 8785 canonical JSON
    /// (comments and whitespace do not change it). This is the value the operator launches
    /// the VM with (SNP HOST_DATA / TDX MRCONFIGID).
    Digest {
        #[arg(long, value_name = "FILE")]
        contract: PathBuf,
    },
    /// Sign the contract as a member (COSE_Sign1 ES384 `contract-accept`), appending the
    /// signature to the signatures file.
    Sign {
        #[arg(long, value_name = "FILE")]
        contract: PathBuf,
        /// The member's NAME.sign.key.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Signatures file (default: CONTRACT.sigs), one base64 COSE_Sign1 per line.
        #[arg(long, value_name = "FILE")]
        sigs: Option<PathBuf>,
    },
    /// Check that every member has signed this exact contract, and no one else has.
    Verify {
        #[arg(long, value_name = "FILE")]
        contract: PathBuf,
        #[arg(long, value_name = "FILE")]
        sigs: Option<PathBuf>,
    },
}

/// `--contract FILE [--sigs FILE]`: a contract and the file of its members' signatures.
#[derive(Debug, Clone, Args)]
pub struct ContractFiles {
    /// The contract.
    #[arg(long, value_name = "FILE")]
    pub contract: PathBuf,
    /// Contract signatures (default: CONTRACT.sigs).
    #[arg(long, value_name = "FILE")]
    pub sigs: Option<PathBuf>,
}

impl ContractFiles {
    /// The signatures file: --sigs, or CONTRACT.sigs.
    pub fn sigs(&self) -> PathBuf {
        self.sigs
            .clone()
            .unwrap_or_else(|| default_sigs(&self.contract))
    }
}

pub fn run(args: &ContractArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        ContractCommand::Digest { contract } => {
            let text = fsutil::read_text(contract)?;
            let c = Contract::parse(&text, &contract.display().to_string())?;
            println!("{}", c.digest());
        }
        ContractCommand::Sign {
            contract,
            key,
            sigs,
        } => {
            let sigs = sigs.clone().unwrap_or_else(|| default_sigs(contract));
            let member = crate::signing::sign_contract(contract, key, &sigs)?;
            println!(
                "signed {} as `{member}`; signature appended to {}",
                contract.display(),
                sigs.display()
            );
        }
        ContractCommand::Verify { contract, sigs } => {
            let sigs = sigs.clone().unwrap_or_else(|| default_sigs(contract));
            let (signed, _) = load_signed_contract(contract, &sigs)?;
            let c = signed.contract();
            println!(
                "contract `{}` version {} ({}): signed by every member ({})",
                c.id,
                c.version,
                signed.digest(),
                c.members
                    .iter()
                    .map(|m| m.name.get_ref().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            // What the attestation policy leaves unchecked, loudly (each starts WARNING:).
            for w in c.attestation_warnings() {
                eprintln!("{w}");
            }
            // And what the privacy guards leave at their legacy form.
            for w in c.privacy_warnings() {
                eprintln!("{w}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
