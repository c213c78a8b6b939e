//! The output envelope: a result sealed to the contract's recipients and signed by the run's
//! attested identity key (docs/formats.md, "Output envelope", specifies it byte for byte).
//!
//! ```text
//! file    = body | signature [96]
//! body    = "CLRMOUT2" | meta_len u32 BE | meta (JSON) | sealed stream of the content
//! meta    = { header: OutputHeader, recipients: [{ name, enc, wrapped_key }] }
//! content = inner_len u32 BE | inner (JSON ContentHeader) | data
//! ```
//! The plaintext header holds only what the host decides (digests, run id, output index,
//! anchor, insecure flag, the signing key); everything a module chose (kind, name, format,
//! columns, row count) is in the authenticated inner header, inside the sealed content.
//!
//! The content is sealed under a fresh content key in the sealed-stream format, with stream
//! name `output:<H>` where H = SHA-256 of the canonical JSON of the header. For each
//! recipient, HPKE (RFC 9180: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM, base
//! mode) seals `key id [16] | key [32]` to the recipient's X25519 key with info
//! `cleanroom-output-v2` and aad H. The signature is ECDSA P-384 with SHA-384 over
//! `"cleanroom-output-signature\0" | body`, as `r | s` (48 bytes each, big-endian), by the
//! key the header names (`host_key`); whether that key is the run's attested one is the
//! verifier's question (`cleanroom_verify::output`), answered from the run's evidence.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use p384::ecdsa::signature::{DigestSigner, DigestVerifier};
use p384::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha384};
use zeroize::Zeroizing;

use crate::stream::{self, DEFAULT_SEGMENT_SIZE, DataKey};

const MAGIC: &[u8; 8] = b"CLRMOUT2";
/// HPKE `info` of every recipient entry.
pub const HPKE_INFO: &[u8] = b"cleanroom-output-v2";
/// Domain separation of the envelope signature.
pub const SIGNATURE_DOMAIN: &[u8] = b"cleanroom-output-signature\0";
/// Length of the signature that ends the file: ECDSA P-384 `r | s`.
pub const SIGNATURE_LEN: usize = 96;
/// Bound on the metadata a reader will parse.
const MAX_META: usize = 1 << 20;
/// Bound on the inner header a reader will parse.
const MAX_INNER: usize = 1 << 20;

type Kem = X25519HkdfSha256;

/// What an output says about itself in plaintext: only what the host decides. Authenticated
/// (its hash is bound into every key wrap and the stream; the signature covers it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputHeader {
    pub contract_digest: String,
    pub workload_digest: String,
    pub run_id: String,
    /// The host-assigned number of this output within its run (its file is
    /// `outputs/<run_id>-<index>.cro`).
    pub index: u32,
    pub created_at: String,
    /// True when the run's attestation was simulated: the result proves nothing about
    /// hardware.
    pub insecure: bool,
    /// The room's audit log when this output was sealed: its last entry's `seq` and `hash`.
    /// A copy of the log without that entry was truncated (`cleanroom audit verify
    /// --anchor SEQ:HASH`).
    pub audit_seq: u64,
    pub audit_hash: String,
    /// The key that signs the envelope (P-384, SEC1 compressed, hex): the run's identity
    /// key, bound in REPORT_DATA of the run's evidence.
    pub host_key: String,
}

/// What an output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContentKind {
    /// The result of a SQL workload.
    Result,
    /// A table a module wrote.
    Table,
    /// A module's metrics (JSON object of numbers).
    Metrics,
    /// A named artifact a module wrote (e.g. model weights).
    Artifact,
    /// A module's log (kept only under logging consent).
    Log,
}

impl ContentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ContentKind::Result => "result",
            ContentKind::Table => "table",
            ContentKind::Metrics => "metrics",
            ContentKind::Artifact => "artifact",
            ContentKind::Log => "log",
        }
    }
}

impl std::fmt::Display for ContentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// The inner header, sealed with the data: everything about an output that a workload or a
/// module chose. Only a recipient reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentHeader {
    pub kind: ContentKind,
    /// The table or artifact name (empty for a result, metrics or a log).
    pub name: String,
    /// The workload's name.
    pub workload: String,
    /// `csv`, `json`, `artifact` or `text`.
    pub format: String,
    pub columns: Vec<String>,
    pub rows: u64,
}

/// An opened output: its header, its inner header and its data.
#[derive(Debug)]
pub struct Opened {
    pub header: OutputHeader,
    pub content: ContentHeader,
    pub data: Zeroizing<Vec<u8>>,
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
#[non_exhaustive]
pub enum EnvelopeError {
    #[error("not a Cleanroom output file")]
    NotAnOutput,
    #[error("output metadata is malformed")]
    BadMeta,
    #[error("the output's host key is not a P-384 public key (SEC1 hex)")]
    HostKeyMalformed,
    #[error(
        "the output's signature does not verify with the host key its header names (the output was modified or forged)"
    )]
    SignatureInvalid,
    #[error("recipient `{0}` is not among this output's recipients")]
    NotARecipient(String),
    #[error(
        "the private key does not open this output's key for `{0}` (wrong key, or the output was modified)"
    )]
    UnwrapFailed(String),
    #[error("content: {0}")]
    Content(#[from] crate::error::StreamError),
    #[error("the sealed content's inner header is malformed")]
    BadContentHeader,
    #[error("recipient `{0}` public key is not a 32-byte X25519 key")]
    BadRecipientKey(String),
    #[error("the header's host key is not the signing key's")]
    HostKeyNotSigner,
    #[error("HPKE sealing failed")]
    Seal,
}

/// The OS RNG, in the rand_core version hpke takes.
fn hpke_rng() -> rand_core_09::UnwrapErr<rand_core_09::OsRng> {
    rand_core_09::UnwrapErr(rand_core_09::OsRng)
}

/// H: SHA-256 of the RFC 8785 canonical JSON of the header.
pub fn header_hash(h: &OutputHeader) -> [u8; 32] {
    Sha256::digest(serde_json_canonicalizer::to_vec(h).expect("serialises")).into()
}

/// A P-384 public key as the header names it: SEC1 compressed, hex.
pub fn host_key_hex(key: &VerifyingKey) -> String {
    hex::encode(key.to_encoded_point(true).as_bytes())
}

/// Parse a header's `host_key`.
pub fn parse_host_key(hex_key: &str) -> Result<VerifyingKey, EnvelopeError> {
    hex::decode(hex_key)
        .ok()
        .and_then(|b| VerifyingKey::from_sec1_bytes(&b).ok())
        .ok_or(EnvelopeError::HostKeyMalformed)
}

fn signed_digest(body: &[u8]) -> Sha384 {
    let mut d = Sha384::new();
    d.update(SIGNATURE_DOMAIN);
    d.update(body);
    d
}

/// Generate an X25519 key pair: (private, public) raw bytes.
pub fn generate_keypair() -> (Zeroizing<[u8; 32]>, [u8; 32]) {
    let (sk, pk) = Kem::gen_keypair(&mut hpke_rng());
    let mut s = Zeroizing::new([0u8; 32]);
    s.copy_from_slice(&sk.to_bytes());
    (s, pk.to_bytes().into())
}

/// The X25519 public key of a private key.
pub fn public_key(private_key: &[u8; 32]) -> Option<[u8; 32]> {
    let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(private_key).ok()?;
    Some(Kem::sk_to_pk(&sk).to_bytes().into())
}

/// Seal `data`, described by `content`, to `recipients` (name, X25519 public key), and sign
/// the envelope with `signer`, whose public key `header.host_key` must name.
pub fn seal(
    header: &OutputHeader,
    recipients: &[(String, [u8; 32])],
    content: &ContentHeader,
    data: &[u8],
    signer: &SigningKey,
) -> Result<Vec<u8>, EnvelopeError> {
    if header.host_key != host_key_hex(signer.verifying_key()) {
        return Err(EnvelopeError::HostKeyNotSigner);
    }
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
            HPKE_INFO,
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
    let inner = serde_json::to_vec(content).expect("serialises");
    let mut plain = Zeroizing::new(Vec::with_capacity(4 + inner.len() + data.len()));
    plain.extend_from_slice(&(inner.len() as u32).to_be_bytes());
    plain.extend_from_slice(&inner);
    plain.extend_from_slice(data);
    let mut out = Vec::with_capacity(plain.len() + meta.len() + 1024);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    out.extend_from_slice(&meta);
    stream::seal(
        &content_key,
        &format!("output:{}", hex::encode(h)),
        DEFAULT_SEGMENT_SIZE,
        &mut &plain[..],
        &mut out,
    )
    .map_err(|_| EnvelopeError::Seal)?;
    let sig: Signature = signer.sign_digest(signed_digest(&out));
    out.extend_from_slice(&sig.to_bytes());
    Ok(out)
}

/// The parts of a file: metadata, the sealed stream, the body the signature covers, the
/// signature.
struct Parts<'a> {
    meta: Meta,
    stream: &'a [u8],
    body: &'a [u8],
    signature: &'a [u8],
}

fn split(file: &[u8]) -> Result<Parts<'_>, EnvelopeError> {
    if file.len() < 12 || &file[..8] != MAGIC {
        return Err(EnvelopeError::NotAnOutput);
    }
    let len = u32::from_be_bytes(file[8..12].try_into().expect("4 bytes")) as usize;
    if len > MAX_META || file.len() < 12 + len + SIGNATURE_LEN {
        return Err(EnvelopeError::BadMeta);
    }
    let meta: Meta =
        serde_json::from_slice(&file[12..12 + len]).map_err(|_| EnvelopeError::BadMeta)?;
    let (body, signature) = file.split_at(file.len() - SIGNATURE_LEN);
    Ok(Parts {
        meta,
        stream: &body[12 + len..],
        body,
        signature,
    })
}

/// Read the (unauthenticated until opened) header and recipient names.
pub fn inspect(file: &[u8]) -> Result<(OutputHeader, Vec<String>), EnvelopeError> {
    let parts = split(file)?;
    Ok((
        parts.meta.header,
        parts.meta.recipients.into_iter().map(|r| r.name).collect(),
    ))
}

/// Check the envelope's signature with the key its header names, and return the header and
/// that key. Says nothing about whose key it is: that is the run's evidence's to say.
pub fn verify_signature(file: &[u8]) -> Result<(OutputHeader, VerifyingKey), EnvelopeError> {
    let parts = split(file)?;
    let key = check_signature(&parts)?;
    Ok((parts.meta.header, key))
}

fn check_signature(parts: &Parts<'_>) -> Result<VerifyingKey, EnvelopeError> {
    let key = parse_host_key(&parts.meta.header.host_key)?;
    let sig =
        Signature::from_slice(parts.signature).map_err(|_| EnvelopeError::SignatureInvalid)?;
    key.verify_digest(signed_digest(parts.body), &sig)
        .map_err(|_| EnvelopeError::SignatureInvalid)?;
    Ok(key)
}

/// Open as recipient `name` with its X25519 private key: the signature is checked against
/// the header's host key first, then the content key is unwrapped and the content opened.
pub fn open(file: &[u8], name: &str, private_key: &[u8; 32]) -> Result<Opened, EnvelopeError> {
    let parts = split(file)?;
    check_signature(&parts)?;
    let meta = &parts.meta;
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
            HPKE_INFO,
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
    let content = stream::open(
        &key,
        Some(&format!("output:{}", hex::encode(h))),
        parts.stream,
    )?;
    if content.len() < 4 {
        return Err(EnvelopeError::BadContentHeader);
    }
    let inner_len = u32::from_be_bytes(content[..4].try_into().expect("4 bytes")) as usize;
    if inner_len > MAX_INNER || content.len() < 4 + inner_len {
        return Err(EnvelopeError::BadContentHeader);
    }
    let inner: ContentHeader = serde_json::from_slice(&content[4..4 + inner_len])
        .map_err(|_| EnvelopeError::BadContentHeader)?;
    let data = Zeroizing::new(content[4 + inner_len..].to_vec());
    Ok(Opened {
        header: parts.meta.header,
        content: inner,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> SigningKey {
        SigningKey::from_slice(&[7; 48]).unwrap()
    }

    fn header() -> OutputHeader {
        OutputHeader {
            contract_digest: "c".into(),
            workload_digest: "d".into(),
            run_id: "r".into(),
            index: 0,
            created_at: "t".into(),
            insecure: true,
            audit_seq: 0,
            audit_hash: "0".repeat(64),
            host_key: host_key_hex(signer().verifying_key()),
        }
    }

    fn content() -> ContentHeader {
        ContentHeader {
            kind: ContentKind::Table,
            name: "t".into(),
            workload: "w".into(),
            format: "csv".into(),
            columns: vec!["a".into()],
            rows: 1,
        }
    }

    #[test]
    fn recipient_opens_and_others_cannot() {
        let (sk_a, pk_a) = generate_keypair();
        let (sk_b, _) = generate_keypair();
        let f = seal(
            &header(),
            &[("alice".into(), pk_a)],
            &content(),
            b"a\n1\n",
            &signer(),
        )
        .unwrap();
        let o = open(&f, "alice", &sk_a).unwrap();
        assert_eq!(
            (o.header, o.content, &o.data[..]),
            (header(), content(), &b"a\n1\n"[..])
        );
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
        let f = seal(
            &header(),
            &[("alice".into(), pk)],
            &content(),
            b"x",
            &signer(),
        )
        .unwrap();
        // Find the field in the raw bytes (the length prefix before the JSON need not be
        // UTF-8, so a lossy string's offsets would not match).
        let pos = f
            .windows(9)
            .position(|w| w == b"\"index\":0")
            .expect("the header is in the file");
        let mut edited = f.clone();
        edited[pos + 8] = b'9';
        assert!(matches!(
            open(&edited, "alice", &sk),
            Err(EnvelopeError::SignatureInvalid)
        ));
    }

    #[test]
    fn rejects_output_signed_by_another_key_than_its_header_names() {
        let (_, pk) = generate_keypair();
        let other = SigningKey::from_slice(&[9; 48]).unwrap();
        assert!(matches!(
            seal(&header(), &[("alice".into(), pk)], &content(), b"x", &other),
            Err(EnvelopeError::HostKeyNotSigner)
        ));
    }

    #[test]
    fn nothing_but_the_host_header_is_in_plaintext() {
        let (_, pk) = generate_keypair();
        let f = seal(
            &header(),
            &[("alice".into(), pk)],
            &content(),
            b"x",
            &signer(),
        )
        .unwrap();
        let (h, recipients) = inspect(&f).unwrap();
        assert_eq!((h, recipients), (header(), vec!["alice".to_string()]));
        assert!(!f.windows(b"columns".len()).any(|w| w == b"columns"));
    }
}
