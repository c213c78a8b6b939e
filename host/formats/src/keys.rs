//! Reading members' key files, with errors that name the file and the expected key type.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use p384::ecdsa::{SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::error::{FormatError, Result};
use crate::fsutil;

fn bad(path: &Path, what: impl Into<String>) -> FormatError {
    FormatError::BadKeyFile {
        path: path.display().to_string(),
        what: what.into(),
    }
}

/// A member's ECDSA P-384 signing key (PKCS#8 PEM, as `member keygen` writes NAME.sign.key).
pub fn signing_key(path: &Path) -> Result<SigningKey> {
    let text = Zeroizing::new(fsutil::read_text(path)?);
    cleanroom_policy::message::signing_key_from_pem(&text).map_err(|_| {
        bad(
            path,
            "not an ECDSA P-384 private key in PKCS#8 PEM (expected the NAME.sign.key that `cleanroom member keygen` writes)",
        )
    })
}

pub fn verifying_key_from_pem_file(text: &str, path: &Path) -> Result<VerifyingKey> {
    cleanroom_policy::message::verifying_key_from_pem(text)
        .map_err(|_| bad(path, "not an ECDSA P-384 public key in SPKI PEM"))
}

/// A member's X25519 private key (base64, as `member keygen` writes NAME.enc.key).
pub fn encryption_key(path: &Path) -> Result<Zeroizing<[u8; 32]>> {
    let text = Zeroizing::new(fsutil::read_text(path)?);
    let raw = Zeroizing::new(B64.decode(text.trim()).map_err(|_| {
        bad(
            path,
            "not an X25519 private key (expected the base64 NAME.enc.key that `cleanroom member keygen` writes)",
        )
    })?);
    let arr: [u8; 32] = raw.as_slice().try_into().map_err(|_| {
        bad(
            path,
            "not an X25519 private key (expected 32 bytes, base64)",
        )
    })?;
    Ok(Zeroizing::new(arr))
}
