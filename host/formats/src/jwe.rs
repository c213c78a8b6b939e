//! JWE (RFC 7516) in flattened JSON serialization with `alg` = ECDH-ES+A256KW and `enc` =
//! A256GCM (RFC 7518 §4.6, §5.3) on P-384: what a KBS answers a resource request with.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64U;
use p384::ecdh::EphemeralSecret;
use p384::{PublicKey, SecretKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const ALG: &str = "ECDH-ES+A256KW";
const ENC: &str = "A256GCM";

/// The flattened JSON serialization (the fields a KBS `Response` carries).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Jwe {
    pub protected: String,
    pub encrypted_key: String,
    pub iv: String,
    pub ciphertext: String,
    pub tag: String,
}

#[derive(Debug, thiserror::Error)]
pub enum JweError {
    #[error("JWE is malformed: {0}")]
    Malformed(&'static str),
    #[error("JWE does not decrypt with this key")]
    Decrypt,
}

/// Concat KDF (NIST SP 800-56A, as profiled by RFC 7518 §4.6.2) for a 256-bit key.
fn concat_kdf(z: &[u8], alg: &str) -> Zeroizing<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(1u32.to_be_bytes());
    h.update(z);
    h.update((alg.len() as u32).to_be_bytes());
    h.update(alg.as_bytes());
    h.update(0u32.to_be_bytes()); // PartyUInfo: empty
    h.update(0u32.to_be_bytes()); // PartyVInfo: empty
    h.update(256u32.to_be_bytes()); // SuppPubInfo: key length in bits
    Zeroizing::new(h.finalize().into())
}

/// Encrypt `plaintext` to `recipient`.
pub fn encrypt(recipient: &PublicKey, plaintext: &[u8]) -> Jwe {
    let eph = EphemeralSecret::random(&mut rand::rngs::OsRng);
    let epk = eph.public_key();
    let z = eph.diffie_hellman(recipient);
    let kek = concat_kdf(z.raw_secret_bytes(), ALG);
    let mut cek = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(cek.as_mut());
    let wrapped = aes_kw::KekAes256::from(*kek)
        .wrap_vec(cek.as_ref())
        .expect("wrapping a 32-byte key cannot fail");
    let epk_jwk: serde_json::Value =
        serde_json::from_str(&epk.to_jwk_string()).expect("JWK is JSON");
    let protected = serde_json::json!({"alg": ALG, "enc": ENC, "epk": epk_jwk});
    let protected_b64 = B64U.encode(serde_json::to_vec(&protected).expect("serialises"));
    let mut iv = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut iv);
    let mut ct = Aes256Gcm::new_from_slice(cek.as_ref())
        .expect("32-byte key")
        .encrypt(
            Nonce::from_slice(&iv),
            Payload {
                msg: plaintext,
                aad: protected_b64.as_bytes(),
            },
        )
        .expect("AES-GCM encryption");
    let tag = ct.split_off(ct.len() - 16);
    Jwe {
        protected: protected_b64,
        encrypted_key: B64U.encode(wrapped),
        iv: B64U.encode(iv),
        ciphertext: B64U.encode(ct),
        tag: B64U.encode(tag),
    }
}

/// Decrypt with the recipient's private key.
pub fn decrypt(key: &SecretKey, jwe: &Jwe) -> Result<Zeroizing<Vec<u8>>, JweError> {
    let b = |s: &str| B64U.decode(s).map_err(|_| JweError::Malformed("base64url"));
    let header: serde_json::Value = serde_json::from_slice(&b(&jwe.protected)?)
        .map_err(|_| JweError::Malformed("header JSON"))?;
    if header["alg"] != ALG || header["enc"] != ENC {
        return Err(JweError::Malformed("unsupported alg/enc"));
    }
    let epk = PublicKey::from_jwk_str(&header["epk"].to_string())
        .map_err(|_| JweError::Malformed("epk is not a P-384 JWK"))?;
    let z = p384::ecdh::diffie_hellman(key.to_nonzero_scalar(), epk.as_affine());
    let kek = concat_kdf(z.raw_secret_bytes(), ALG);
    let cek = Zeroizing::new(
        aes_kw::KekAes256::from(*kek)
            .unwrap_vec(&b(&jwe.encrypted_key)?)
            .map_err(|_| JweError::Decrypt)?,
    );
    let iv = b(&jwe.iv)?;
    if iv.len() != 12 {
        return Err(JweError::Malformed("iv length"));
    }
    let mut ct = b(&jwe.ciphertext)?;
    ct.extend_from_slice(&b(&jwe.tag)?);
    let pt = Aes256Gcm::new_from_slice(&cek)
        .map_err(|_| JweError::Decrypt)?
        .decrypt(
            Nonce::from_slice(&iv),
            Payload {
                msg: &ct,
                aad: jwe.protected.as_bytes(),
            },
        )
        .map_err(|_| JweError::Decrypt)?;
    Ok(Zeroizing::new(pt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_key_fails() {
        let k = SecretKey::random(&mut rand::rngs::OsRng);
        let jwe = encrypt(&k.public_key(), b"dataset key");
        assert_eq!(&decrypt(&k, &jwe).unwrap()[..], b"dataset key");
        let other = SecretKey::random(&mut rand::rngs::OsRng);
        assert!(matches!(decrypt(&other, &jwe), Err(JweError::Decrypt)));
        let mut tampered = jwe.clone();
        tampered.protected = B64U.encode(br#"{"alg":"ECDH-ES+A256KW","enc":"A256GCM","epk":{}}"#);
        assert!(decrypt(&k, &tampered).is_err());
    }
}
