//! A member's keys: an ECDSA P-384 signing key (contract acceptance, proposals, approvals,
//! requests) and an X25519 key for receiving sealed outputs.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use p384::ecdsa::{SigningKey, VerifyingKey};
use p384::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

use cleanroom_formats::envelope;
use cleanroom_formats::fsutil::{self, FileMode};

use crate::error::{MemberError, Result};

/// The `[[members]]` entry of a member's public keys, for contract.toml.
pub fn member_toml(name: &str, sign_pub_pem: &str, enc_pub_b64: &str) -> String {
    format!(
        "[[members]]\nname = \"{name}\"\nsigning_key = \"\"\"\n{}\n\"\"\"\nencryption_key = \"{enc_pub_b64}\"\n",
        sign_pub_pem.trim()
    )
}

/// Generate a member's keys and write them to `out`: NAME.sign.key (PKCS#8 PEM, mode
/// 0600), NAME.sign.pub (SPKI PEM), NAME.enc.key (base64, 0600), NAME.enc.pub and
/// NAME.member.toml. Refuses to overwrite a private key. Returns the `[[members]]` entry.
pub fn keygen(name: &str, out: &Path) -> Result<String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(MemberError::BadMemberName { name: name.into() });
    }
    let f = |ext: &str| out.join(format!("{name}.{ext}"));
    for ext in ["sign.key", "enc.key"] {
        if f(ext).exists() {
            return Err(MemberError::WouldOverwriteKey {
                path: f(ext).display().to_string(),
            });
        }
    }
    let sk = SigningKey::random(&mut rand::rngs::OsRng);
    let sk_pem = sk
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| MemberError::KeyEncoding {
            what: "signing key",
            detail: e.to_string(),
        })?;
    let pk_pem = VerifyingKey::from(&sk)
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| MemberError::KeyEncoding {
            what: "public key",
            detail: e.to_string(),
        })?;
    let (enc_sk, enc_pk) = envelope::generate_keypair();
    let enc_sk_b64 = zeroize::Zeroizing::new(B64.encode(enc_sk.as_ref()) + "\n");
    let enc_pk_b64 = B64.encode(enc_pk);
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keygen_refuses_to_overwrite_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        keygen("alice", dir.path()).unwrap();
        let before = std::fs::read(dir.path().join("alice.sign.key")).unwrap();
        let err = keygen("alice", dir.path()).unwrap_err();
        assert!(
            matches!(&err, MemberError::WouldOverwriteKey { path } if path.ends_with("alice.sign.key")),
            "{err:?}"
        );
        assert_eq!(
            std::fs::read(dir.path().join("alice.sign.key")).unwrap(),
            before
        );
    }

    #[test]
    fn keygen_refuses_a_name_that_escapes_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let err = keygen("../alice", dir.path()).unwrap_err();
        assert!(
            matches!(&err, MemberError::BadMemberName { name } if name == "../alice"),
            "{err:?}"
        );
    }
}
