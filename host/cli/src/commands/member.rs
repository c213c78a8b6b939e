//! `cleanroom member keygen|show`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use cleanroom_formats::fsutil;
use cleanroom_formats::keys;

use crate::keygen::{keygen, member_toml};

#[derive(Debug, Args)]
pub struct MemberArgs {
    #[command(subcommand)]
    pub command: MemberCommand,
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Make a member's keys: an ECDSA P-384 signing key (contract acceptance, approvals) and
    /// an X25519 key for receiving sealed outputs. Private keys are written mode 0600.
    ///
    /// Writes NAME.sign.key (PKCS#8 PEM), NAME.sign.pub (SPKI PEM), NAME.enc.key and
    /// NAME.enc.pub (base64), and NAME.member.toml: the [[members]] entry for contract.toml.
    Keygen {
        /// The member's name as it will appear in the contract.
        #[arg(long)]
        name: String,
        /// Directory to write the key files into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Print the [[members]] entry of an existing member's public keys.
    Show {
        #[arg(long)]
        name: String,
        /// Directory holding NAME.sign.pub and NAME.enc.pub.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
}

pub fn run(args: &MemberArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        MemberCommand::Keygen { name, out } => {
            let entry = keygen(name, out)?;
            eprintln!(
                "wrote {dir}/{name}.sign.key and {dir}/{name}.enc.key (private, mode 0600), their .pub files, and {dir}/{name}.member.toml",
                dir = out.display()
            );
            println!("{entry}");
        }
        MemberCommand::Show { name, dir } => {
            let pk = fsutil::read_text(&dir.join(format!("{name}.sign.pub")))?;
            keys::verifying_key_from_pem_file(&pk, &dir.join(format!("{name}.sign.pub")))?;
            let enc = fsutil::read_text(&dir.join(format!("{name}.enc.pub")))?;
            println!("{}", member_toml(name, &pk, enc.trim()));
        }
    }
    Ok(ExitCode::SUCCESS)
}
