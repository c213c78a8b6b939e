//! The service's TLS: a self-signed certificate for the room's boot identity key (ECDSA
//! P-384), so the key a client pins after verifying the evidence is the key the handshake
//! proves. The certificate also carries the boot evidence's report (RA-TLS style, without
//! the chain or collateral): a client sees in the handshake which report binds the key it
//! is talking to, and the member CLI refuses a room whose certificate's report is not the
//! evidence it serves.

use std::sync::Arc;

use cleanroom_attest::EvidenceBundle;
use cleanroom_formats::tls::{
    ROOM_EVIDENCE_OID, SpkiPin, encode_certificate_evidence, provider, spki_pin_of_der,
};
use p384::ecdsa::{SigningKey, VerifyingKey};
use p384::pkcs8::{EncodePrivateKey, EncodePublicKey};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::ServiceError;
use crate::error::{Result, RoomError};

fn tls_err(what: impl std::fmt::Display) -> RoomError {
    RoomError::Service(ServiceError::Tls {
        what: what.to_string(),
    })
}

/// The evidence the certificate carries: the boot evidence without the certificate chain
/// and collateral (served at `GET /v1/evidence`), as JSON.
pub(super) fn certificate_evidence_json(bundle: &EvidenceBundle) -> Vec<u8> {
    let mut short = bundle.clone();
    short.cert_chain.clear();
    short.collateral = None;
    serde_json::to_vec(&short).expect("a bundle serialises")
}

/// The server configuration (TLS 1.3, one certificate for `identity` carrying `evidence`
/// in its [`ROOM_EVIDENCE_OID`] extension) and the pin of its key.
pub(super) fn server_config(
    identity: &SigningKey,
    evidence: &EvidenceBundle,
) -> Result<(Arc<ServerConfig>, SpkiPin)> {
    let pkcs8 = identity.to_pkcs8_der().map_err(tls_err)?;
    let key_pair = rcgen::KeyPair::try_from(pkcs8.as_bytes()).map_err(tls_err)?;
    let mut params =
        rcgen::CertificateParams::new(vec!["cleanroom-room".to_string()]).map_err(tls_err)?;
    let content =
        encode_certificate_evidence(&certificate_evidence_json(evidence)).map_err(tls_err)?;
    params
        .custom_extensions
        .push(rcgen::CustomExtension::from_oid_content(
            ROOM_EVIDENCE_OID,
            content,
        ));
    let cert = params.self_signed(&key_pair).map_err(tls_err)?;
    let spki = VerifyingKey::from(identity)
        .to_public_key_der()
        .map_err(tls_err)?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.as_bytes().to_vec())),
        )
        .map_err(tls_err)?;
    Ok((Arc::new(config), spki_pin_of_der(spki.as_bytes())))
}
