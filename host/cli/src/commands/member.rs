//! `cleanroom member keygen|show`.

use cleanroom_formats::fsutil::FileMode;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::{Args, Subcommand};
use p384::ecdsa::{SigningKey, VerifyingKey};
use p384::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

use cleanroom_formats::envelope;
use cleanroom_formats::fsutil;
use cleanroom_formats::keys;

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

pub fn member_toml(name: &str, sign_pub_pem: &str, enc_pub_b64: &str) -> String {
    format!(
        "[[members]]\nname = \"{name}\"\nsigning_key = \"\"\"\n{}\n\"\"\"\nencryption_key = \"{enc_pub_b64}\"\n",
        sign_pub_pem.trim()
    )
}

/// Generate and write a member's keys; returns the [[members]] entry.
pub fn keygen(name: &str, out: &std::path::Path) -> anyhow::Result<String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        anyhow::bail!("--name `{name}`: use letters, digits, `-` and `_` only");
    }
    let sk = SigningKey::random(&mut rand::rngs::OsRng);
    let sk_pem = sk
        .to_pkcs8_pem(LineEnding::LF)
        .context("encoding the signing key")?;
    let pk_pem = VerifyingKey::from(&sk)
        .to_public_key_pem(LineEnding::LF)
        .context("encoding the public key")?;
    let (enc_sk, enc_pk) = envelope::generate_keypair();
    let enc_sk_b64 = zeroize::Zeroizing::new(B64.encode(enc_sk.as_ref()) + "\n");
    let enc_pk_b64 = B64.encode(enc_pk);
    let f = |ext: &str| out.join(format!("{name}.{ext}"));
    for ext in ["sign.key", "enc.key"] {
        if f(ext).exists() {
            anyhow::bail!(
                "{} already exists; refusing to overwrite a private key",
                f(ext).display()
            );
        }
    }
    fsutil::write_file_atomic(&f("sign.key"), sk_pem.as_bytes(), FileMode::Secret)?;
    fsutil::write_file_atomic(&f("sign.pub"), pk_pem.as_bytes(), FileMode::Public)?;
    fsutil::write_file_atomic(&f("enc.key"), enc_sk_b64.as_bytes(), FileMode::Secret)?;
    fsutil::write_file_atomic(
        &f("enc.pub"),
        format!("{enc_pk_b64}\n").as_bytes(),
        FileMode::Public,
    )?;
    let entry = member_toml(name, &pk_pem, &enc_pk_b64);
    fsutil::write_file_atomic(&f("member.toml"), entry.as_bytes(), FileMode::Public)?;
    Ok(entry)
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
