//! The output envelope: a result sealed to the contract's recipients.
//!
//! ```text
//! file = "CLRMOUT1" | meta_len u32 BE | meta (JSON) | sealed stream of the content
//! meta = { header: OutputHeader, recipients: [{ name, enc, wrapped_key }] }
//! ```
//! The content is sealed under a fresh content key in the sealed-stream format, with stream
//! name `output:<H>` where H = SHA-256 of the canonical JSON of the header. For each
//! recipient, HPKE (RFC 9180: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM, base
//! mode) seals the content key to the recipient's X25519 key with info
//! `cleanroom-output-v1` and aad H. Editing the header breaks both the key unwrap and the
//! stream; a recipient's entry opens only with that recipient's private key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::stream::{self, DEFAULT_SEGMENT_SIZE, DataKey};

const MAGIC: &[u8; 8] = b"CLRMOUT1";
const INFO: &[u8] = b"cleanroom-output-v1";
/// Bound on the metadata a reader will parse.
const MAX_META: usize = 1 << 20;

type Kem = X25519HkdfSha256;

/// What an output says about itself. Authenticated (its hash is bound into the stream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputHeader {
    pub contract_digest: String,
    pub workload: String,
    pub workload_digest: String,
    pub run_id: String,
    pub created_at: String,
    /// True when the run's attestation was simulated: the result proves nothing about
    /// hardware.
    pub insecure: bool,
    pub format: String,
    pub columns: Vec<String>,
    pub rows: u64,
    /// The room's audit log when this output was sealed: its last entry's `seq` and `hash`.
    /// A copy of the log without that entry was truncated (`cleanroom audit verify
    /// --anchor SEQ:HASH`).
    pub audit_seq: u64,
    pub audit_hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipientEntry {
    name: String,
    enc: String,
    wrapped_key: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    header: OutputHeader,
    recipients: Vec<RecipientEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not a Cleanroom output file")]
    NotAnOutput,
    #[error("output metadata is malformed")]
    BadMeta,
    #[error("recipient `{0}` is not among this output's recipients")]
    NotARecipient(String),
    #[error(
        "the private key does not open this output's key for `{0}` (wrong key, or the output was modified)"
    )]
    UnwrapFailed(String),
    #[error("content: {0}")]
    Content(#[from] crate::error::StreamError),
    #[error("recipient `{0}` public key is not a 32-byte X25519 key")]
    BadRecipientKey(String),
    #[error("HPKE sealing failed")]
    Seal,
}

/// The OS RNG, in the rand_core version hpke takes.
fn hpke_rng() -> rand_core_09::UnwrapErr<rand_core_09::OsRng> {
    rand_core_09::UnwrapErr(rand_core_09::OsRng)
}

fn header_hash(h: &OutputHeader) -> [u8; 32] {
    Sha256::digest(serde_json_canonicalizer::to_vec(h).expect("serialises")).into()
}

/// Generate an X25519 key pair: (private, public) raw bytes.
pub fn generate_keypair() -> (Zeroizing<[u8; 32]>, [u8; 32]) {
    let (sk, pk) = Kem::gen_keypair(&mut hpke_rng());
    let mut s = Zeroizing::new([0u8; 32]);
    s.copy_from_slice(&sk.to_bytes());
    (s, pk.to_bytes().into())
}

/// Seal `content` to `recipients` (name, X25519 public key).
pub fn seal(
    header: &OutputHeader,
    recipients: &[(String, [u8; 32])],
    content: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let h = header_hash(header);
    let content_key = DataKey::generate();
    let mut entries = Vec::new();
    for (name, pk) in recipients {
        let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(pk)
            .map_err(|_| EnvelopeError::BadRecipientKey(name.clone()))?;
        let mut plain = Zeroizing::new(content_key.id.to_vec());
        plain.extend_from_slice(content_key.key_bytes());
        let (enc, ct) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, Kem, _>(
            &OpModeS::Base,
            &pk,
            INFO,
            &plain,
            &h,
            &mut hpke_rng(),
        )
        .map_err(|_| EnvelopeError::Seal)?;
        entries.push(RecipientEntry {
            name: name.clone(),
            enc: B64.encode(enc.to_bytes()),
            wrapped_key: B64.encode(ct),
        });
    }
    let meta = serde_json::to_vec(&Meta {
        header: header.clone(),
        recipients: entries,
    })
    .expect("serialises");
    let mut out = Vec::with_capacity(content.len() + meta.len() + 1024);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    out.extend_from_slice(&meta);
    stream::seal(
        &content_key,
        &format!("output:{}", hex::encode(h)),
        DEFAULT_SEGMENT_SIZE,
        &mut &content[..],
        &mut out,
    )
    .map_err(|_| EnvelopeError::Seal)?;
    Ok(out)
}

fn split(file: &[u8]) -> Result<(Meta, &[u8]), EnvelopeError> {
    if file.len() < 12 || &file[..8] != MAGIC {
        return Err(EnvelopeError::NotAnOutput);
    }
    let len = u32::from_be_bytes(file[8..12].try_into().expect("4 bytes")) as usize;
    if len > MAX_META || file.len() < 12 + len {
        return Err(EnvelopeError::BadMeta);
    }
    let meta: Meta =
        serde_json::from_slice(&file[12..12 + len]).map_err(|_| EnvelopeError::BadMeta)?;
    Ok((meta, &file[12 + len..]))
}

/// Read the (unauthenticated until opened) header and recipient names.
pub fn inspect(file: &[u8]) -> Result<(OutputHeader, Vec<String>), EnvelopeError> {
    let (meta, _) = split(file)?;
    Ok((
        meta.header,
        meta.recipients.into_iter().map(|r| r.name).collect(),
    ))
}

/// Open as recipient `name` with its X25519 private key.
pub fn open(
    file: &[u8],
    name: &str,
    private_key: &[u8; 32],
) -> Result<(OutputHeader, Zeroizing<Vec<u8>>), EnvelopeError> {
    let (meta, body) = split(file)?;
    let entry = meta
        .recipients
        .iter()
        .find(|r| r.name == name)
        .ok_or_else(|| EnvelopeError::NotARecipient(name.to_string()))?;
    let unwrap_failed = || EnvelopeError::UnwrapFailed(name.to_string());
    let h = header_hash(&meta.header);
    let sk =
        <Kem as hpke::Kem>::PrivateKey::from_bytes(private_key).map_err(|_| unwrap_failed())?;
    let enc_bytes = B64.decode(&entry.enc).map_err(|_| unwrap_failed())?;
    let enc =
        <Kem as hpke::Kem>::EncappedKey::from_bytes(&enc_bytes).map_err(|_| unwrap_failed())?;
    let ct = B64
        .decode(&entry.wrapped_key)
        .map_err(|_| unwrap_failed())?;
    let plain = Zeroizing::new(
        hpke::single_shot_open::<AesGcm256, HkdfSha256, Kem>(
            &OpModeR::Base,
            &sk,
            &enc,
            INFO,
            &ct,
            &h,
        )
        .map_err(|_| unwrap_failed())?,
    );
    if plain.len() != 48 {
        return Err(unwrap_failed());
    }
    let key = DataKey::from_parts(
        plain[..16].try_into().expect("16"),
        plain[16..].try_into().expect("32"),
    );
    let content = stream::open(&key, Some(&format!("output:{}", hex::encode(h))), body)?;
    Ok((meta.header, content))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> OutputHeader {
        OutputHeader {
            contract_digest: "c".into(),
            workload: "w".into(),
            workload_digest: "d".into(),
            run_id: "r".into(),
            created_at: "t".into(),
            insecure: true,
            format: "csv".into(),
            columns: vec!["a".into()],
            rows: 1,
            audit_seq: 0,
            audit_hash: "0".repeat(64),
        }
    }

    #[test]
    fn recipient_opens_and_others_cannot() {
        let (sk_a, pk_a) = generate_keypair();
        let (sk_b, _) = generate_keypair();
        let f = seal(&header(), &[("alice".into(), pk_a)], b"a\n1\n").unwrap();
        let (h, c) = open(&f, "alice", &sk_a).unwrap();
        assert_eq!((h, &c[..]), (header(), &b"a\n1\n"[..]));
        assert!(matches!(
            open(&f, "alice", &sk_b),
            Err(EnvelopeError::UnwrapFailed(_))
        ));
        assert!(matches!(
            open(&f, "bob", &sk_b),
            Err(EnvelopeError::NotARecipient(_))
        ));
    }

    #[test]
    fn rejects_output_with_edited_header() {
        let (sk, pk) = generate_keypair();
        let f = seal(&header(), &[("alice".into(), pk)], b"x").unwrap();
        // Find the field in the raw bytes (the length prefix before the JSON need not be
        // UTF-8, so a lossy string's offsets would not match).
        let pos = f
            .windows(8)
            .position(|w| w == b"\"rows\":1")
            .expect("the header is in the file");
        let mut edited = f.clone();
        edited[pos + 7] = b'9';
        assert!(matches!(
            open(&edited, "alice", &sk),
            Err(EnvelopeError::UnwrapFailed(_))
        ));
    }
}
