//! Signed messages: COSE_Sign1 (RFC 9052) with ES384, verifiable with any COSE library.
//!
//! Protected headers: `alg` = ES384, `kid` = the signer's key fingerprint (SHA-256 of its
//! SPKI DER), and three text-labelled headers: `cr.type` (the message type), `cr.contract`
//! (the 32-byte contract digest) and `cr.created` (unix seconds). The payload depends on the
//! type (the contract digest for an acceptance, the workload digest for an approval).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use coset::cbor::value::Value;
use coset::{
    CborSerializable, CoseSign1, CoseSign1Builder, HeaderBuilder, Label, TaggedCborSerializable,
    iana,
};
use p384::ecdsa::signature::{Signer, Verifier};
use p384::ecdsa::{Signature, SigningKey, VerifyingKey};
use p384::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use sha2::Digest;

use crate::PolicyError;

const H_TYPE: &str = "cr.type";
const H_CONTRACT: &str = "cr.contract";
const H_CREATED: &str = "cr.created";

/// What a signed message means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    ContractAccept,
    WorkloadPropose,
    WorkloadApprove,
    /// An owner withdraws its approval of one workload (the room stays open to others).
    WorkloadRevoke,
    Suspend,
    Resume,
    /// A member asks a room service to run an approved workload.
    RunRequest,
    /// A recipient asks a room service for a sealed output.
    OutputFetch,
    /// A member asks a room service to cancel a queued run.
    RunCancel,
}

impl MessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::ContractAccept => "contract-accept",
            MessageType::WorkloadPropose => "workload-propose",
            MessageType::WorkloadApprove => "workload-approve",
            MessageType::WorkloadRevoke => "workload-revoke",
            MessageType::Suspend => "suspend",
            MessageType::Resume => "resume",
            MessageType::RunRequest => "run-request",
            MessageType::OutputFetch => "output-fetch",
            MessageType::RunCancel => "run-cancel",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "contract-accept" => MessageType::ContractAccept,
            "workload-propose" => MessageType::WorkloadPropose,
            "workload-approve" => MessageType::WorkloadApprove,
            "workload-revoke" => MessageType::WorkloadRevoke,
            "suspend" => MessageType::Suspend,
            "resume" => MessageType::Resume,
            "run-request" => MessageType::RunRequest,
            "output-fetch" => MessageType::OutputFetch,
            "run-cancel" => MessageType::RunCancel,
            _ => return None,
        })
    }
}

/// A parsed COSE_Sign1 message. Parsing does not verify; see [`SignedMessage::verify`] and
/// [`crate::Contract::verify_member_message`].
#[derive(Debug, Clone)]
pub struct SignedMessage {
    pub kid: Vec<u8>,
    pub message_type: MessageType,
    pub contract_digest: [u8; 32],
    pub created_at: u64,
    pub payload: Vec<u8>,
    cose: CoseSign1,
}

fn malformed(reason: impl Into<String>) -> PolicyError {
    PolicyError::MalformedMessage {
        reason: reason.into(),
    }
}

impl SignedMessage {
    /// Sign a message. `created_at` is unix seconds (the caller reads the clock).
    pub fn sign(
        key: &SigningKey,
        message_type: MessageType,
        contract_digest: [u8; 32],
        created_at: u64,
        payload: Vec<u8>,
    ) -> Self {
        let kid = key_fingerprint(&VerifyingKey::from(key)).to_vec();
        let protected = HeaderBuilder::new()
            .algorithm(iana::Algorithm::ES384)
            .key_id(kid.clone())
            .text_value(H_TYPE.into(), Value::Text(message_type.as_str().into()))
            .text_value(H_CONTRACT.into(), Value::Bytes(contract_digest.to_vec()))
            .text_value(H_CREATED.into(), Value::Integer(created_at.into()))
            .build();
        let cose = CoseSign1Builder::new()
            .protected(protected)
            .payload(payload.clone())
            .create_signature(&[], |tbs| {
                let sig: Signature = key.sign(tbs);
                sig.to_bytes().to_vec()
            })
            .build();
        Self {
            kid,
            message_type,
            contract_digest,
            created_at,
            payload,
            cose,
        }
    }

    /// Tagged COSE_Sign1 bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.cose
            .clone()
            .to_tagged_vec()
            .expect("a built COSE_Sign1 encodes")
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.to_bytes())
    }

    /// Parse tagged or untagged COSE_Sign1 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PolicyError> {
        let cose = CoseSign1::from_tagged_slice(bytes)
            .or_else(|_| CoseSign1::from_slice(bytes))
            .map_err(|e| malformed(format!("not a COSE_Sign1: {e}")))?;
        let h = &cose.protected.header;
        if h.alg
            != Some(coset::RegisteredLabelWithPrivate::Assigned(
                iana::Algorithm::ES384,
            ))
        {
            return Err(malformed("algorithm is not ES384"));
        }
        if h.key_id.len() != 32 {
            return Err(malformed("kid is not a 32-byte key fingerprint"));
        }
        let get = |name: &str| {
            h.rest
                .iter()
                .find(|(l, _)| *l == Label::Text(name.into()))
                .map(|(_, v)| v)
        };
        let message_type = match get(H_TYPE) {
            Some(Value::Text(t)) => MessageType::parse(t)
                .ok_or_else(|| malformed(format!("unknown message type `{t}`")))?,
            _ => return Err(malformed("missing cr.type header")),
        };
        let contract_digest: [u8; 32] = match get(H_CONTRACT) {
            Some(Value::Bytes(b)) => b
                .as_slice()
                .try_into()
                .map_err(|_| malformed("cr.contract is not 32 bytes"))?,
            _ => return Err(malformed("missing cr.contract header")),
        };
        let created_at = match get(H_CREATED) {
            Some(Value::Integer(i)) => {
                u64::try_from(*i).map_err(|_| malformed("cr.created is negative"))?
            }
            _ => return Err(malformed("missing cr.created header")),
        };
        let payload = cose
            .payload
            .clone()
            .ok_or_else(|| malformed("detached payloads are not used"))?;
        Ok(Self {
            kid: h.key_id.clone(),
            message_type,
            contract_digest,
            created_at,
            payload,
            cose,
        })
    }

    pub fn from_base64(s: &str) -> Result<Self, PolicyError> {
        let bytes = B64.decode(s.trim()).map_err(|_| malformed("not base64"))?;
        Self::from_bytes(&bytes)
    }

    /// Check the ES384 signature with `key`.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), PolicyError> {
        if key_fingerprint(key)[..] != self.kid[..] {
            return Err(malformed("kid does not match the verifying key"));
        }
        self.cose
            .verify_signature(&[], |sig, tbs| {
                let sig = Signature::from_slice(sig).map_err(|_| ())?;
                key.verify(tbs, &sig).map_err(|_| ())
            })
            .map_err(|_| malformed("signature does not verify"))
    }
}

/// SHA-256 of the SPKI DER of `key`: the `kid` of its messages.
pub fn key_fingerprint(key: &VerifyingKey) -> [u8; 32] {
    let der = key
        .to_public_key_der()
        .expect("a P-384 public key encodes as SPKI");
    sha2::Sha256::digest(der.as_bytes()).into()
}

pub fn key_fingerprint_pem(pem: &str) -> Result<[u8; 32], PolicyError> {
    Ok(key_fingerprint(&verifying_key_from_pem(pem)?))
}

/// Parse an ECDSA P-384 public key from SPKI PEM.
pub fn verifying_key_from_pem(pem: &str) -> Result<VerifyingKey, PolicyError> {
    VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| PolicyError::BadKey {
        expected: "ECDSA P-384 public key (SPKI PEM)",
        reason: e.to_string(),
    })
}

/// Parse an ECDSA P-384 private key from PKCS#8 PEM.
pub fn signing_key_from_pem(pem: &str) -> Result<SigningKey, PolicyError> {
    SigningKey::from_pkcs8_pem(pem.trim()).map_err(|e| PolicyError::BadKey {
        expected: "ECDSA P-384 private key (PKCS#8 PEM)",
        reason: e.to_string(),
    })
}

/// Parse a base64 X25519 public key (32 bytes).
pub fn x25519_public_from_b64(s: &str) -> Result<[u8; 32], PolicyError> {
    let bytes = B64.decode(s.trim()).map_err(|_| PolicyError::BadKey {
        expected: "X25519 public key (base64)",
        reason: "not base64".into(),
    })?;
    bytes.try_into().map_err(|b: Vec<u8>| PolicyError::BadKey {
        expected: "X25519 public key (base64)",
        reason: format!("{} bytes, expected 32", b.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_slice(&[seed; 48]).unwrap()
    }

    #[test]
    fn round_trips_and_verifies() {
        let k = key(1);
        let m = SignedMessage::sign(
            &k,
            MessageType::WorkloadApprove,
            [3; 32],
            1700,
            b"w".to_vec(),
        );
        let back = SignedMessage::from_bytes(&m.to_bytes()).unwrap();
        assert_eq!(back.message_type, MessageType::WorkloadApprove);
        assert_eq!(back.contract_digest, [3; 32]);
        assert_eq!(back.created_at, 1700);
        assert_eq!(back.payload, b"w");
        back.verify(&VerifyingKey::from(&k)).unwrap();
    }

    #[test]
    fn rejects_message_verified_with_other_key() {
        let m = SignedMessage::sign(&key(1), MessageType::Suspend, [3; 32], 1, vec![]);
        assert!(matches!(
            m.verify(&VerifyingKey::from(&key(2))),
            Err(PolicyError::MalformedMessage { .. })
        ));
    }

    #[test]
    fn rejects_message_with_edited_payload() {
        let m = SignedMessage::sign(
            &key(1),
            MessageType::WorkloadApprove,
            [3; 32],
            1,
            b"a".to_vec(),
        );
        let mut cose = CoseSign1::from_tagged_slice(&m.to_bytes()).unwrap();
        cose.payload = Some(b"b".to_vec());
        let forged = SignedMessage::from_bytes(&cose.to_tagged_vec().unwrap()).unwrap();
        assert!(forged.verify(&VerifyingKey::from(&key(1))).is_err());
    }

    #[test]
    fn rejects_garbage_as_malformed() {
        assert!(matches!(
            SignedMessage::from_bytes(b"not cbor"),
            Err(PolicyError::MalformedMessage { .. })
        ));
    }
}
