//! `cleanroom contract digest|sign|verify`.

use cleanroom_formats::fsutil::FileMode;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use cleanroom_policy::Contract;
use cleanroom_policy::message::{MessageType, SignedMessage};

use cleanroom_formats::fsutil;
use cleanroom_formats::keys;
pub use cleanroom_formats::load::{default_approvals, default_proposal, default_sigs};
use cleanroom_formats::load::{load_signed_contract, read_messages};

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

/// Append `msg` to a file of base64 messages (atomically).
pub fn append_message(path: &Path, msg: &SignedMessage) -> anyhow::Result<()> {
    let mut text = if path.exists() {
        fsutil::read_text(path)?
    } else {
        String::new()
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&msg.to_base64());
    text.push('\n');
    fsutil::write_file_atomic(path, text.as_bytes(), FileMode::Public)?;
    Ok(())
}

pub fn sign(contract: &Path, key: &Path, sigs: &Path) -> anyhow::Result<String> {
    let text = fsutil::read_text(contract)?;
    let c = Contract::parse(&text, &contract.display().to_string())?;
    let sk = keys::signing_key(key)?;
    let vk = p384::ecdsa::VerifyingKey::from(&sk);
    let fp = cleanroom_policy::message::key_fingerprint(&vk);
    let member = c
        .member_by_kid(&fp)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{}: this key is not the signing key of any member of {}",
                key.display(),
                contract.display()
            )
        })?
        .name
        .get_ref()
        .clone();
    let d = c.digest();
    // Drop an earlier signature by the same member, so re-signing does not accumulate.
    let existing: Vec<SignedMessage> = read_messages(sigs)?
        .into_iter()
        .filter(|m| m.kid != fp)
        .collect();
    let msg = SignedMessage::sign(
        &sk,
        MessageType::ContractAccept,
        d.0,
        cleanroom_formats::clock::now_unix(),
        d.0.to_vec(),
    );
    let mut out = String::new();
    for m in existing.iter().chain(std::iter::once(&msg)) {
        out.push_str(&m.to_base64());
        out.push('\n');
    }
    fsutil::write_file_atomic(sigs, out.as_bytes(), FileMode::Public)?;
    Ok(member)
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
            let member = sign(contract, key, &sigs)?;
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
