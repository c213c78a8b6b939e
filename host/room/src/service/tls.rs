//! The service's TLS: a self-signed certificate for the room's boot identity key (ECDSA
//! P-384), so the key a client pins after verifying the evidence is the key the handshake
//! proves.

use std::sync::Arc;

use cleanroom_formats::tls::{SpkiPin, provider, spki_pin_of_der};
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

/// The server configuration (TLS 1.3, one certificate for `identity`) and the pin of its
/// key.
pub(super) fn server_config(identity: &SigningKey) -> Result<(Arc<ServerConfig>, SpkiPin)> {
    let pkcs8 = identity.to_pkcs8_der().map_err(tls_err)?;
    let key_pair = rcgen::KeyPair::try_from(pkcs8.as_bytes()).map_err(tls_err)?;
    let params =
        rcgen::CertificateParams::new(vec!["cleanroom-room".to_string()]).map_err(tls_err)?;
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
