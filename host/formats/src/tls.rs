//! TLS to key brokers, pinned by key (feature `tls`).
//!
//! The contract names each broker's URL and the SHA-256 of its certificate's
//! SubjectPublicKeyInfo (`broker_spki_sha256`). A broker's certificate is self-signed (`kbs
//! init` makes it); no CA, name or date is trusted. [`PinnedVerifier`] accepts exactly the
//! certificate whose SPKI hashes to the pin and then checks the handshake signature with that
//! key, so only the holder of the pinned private key completes a handshake: the operator, who
//! carries every packet, cannot stand in for a broker. TLS 1.3 only; rustls with `ring`.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// SHA-256 of a certificate's DER SubjectPublicKeyInfo: what a contract pins.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpkiPin(pub [u8; 32]);

impl fmt::Display for SpkiPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for SpkiPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpkiPin({self})")
    }
}

/// Why a pin or a certificate could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("broker_spki_sha256 `{0}` is not 64 hex characters")]
    BadPin(String),
    #[error("not an X.509 certificate: {0}")]
    BadCertificate(String),
    #[error("TLS configuration: {0}")]
    Config(String),
    #[error("an https broker needs broker_spki_sha256")]
    PinMissing,
    #[error("not an https:// URL with a pinned key or a plain http:// URL")]
    UnsupportedUrl,
}

impl FromStr for SpkiPin {
    type Err = TlsError;
    fn from_str(s: &str) -> Result<Self, TlsError> {
        hex::decode(s)
            .ok()
            .and_then(|v| <[u8; 32]>::try_from(v).ok())
            .map(SpkiPin)
            .ok_or_else(|| TlsError::BadPin(s.chars().take(80).collect()))
    }
}

/// The pin of a DER certificate (SHA-256 of its SubjectPublicKeyInfo).
pub fn spki_pin(cert: &CertificateDer<'_>) -> Result<SpkiPin, TlsError> {
    let ee = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    let spki = ee.subject_public_key_info();
    Ok(SpkiPin(Sha256::digest(spki.as_ref()).into()))
}

/// The pin of the first certificate in a PEM text.
pub fn spki_pin_of_pem(pem: &str) -> Result<SpkiPin, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let cert = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    spki_pin(&cert)
}

/// The crypto provider every Cleanroom TLS endpoint uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts exactly the certificate whose SPKI hashes to the pin, and handshake signatures
/// made with its key. Remembers what a refused server presented, so a caller can say which
/// key the impostor had.
#[derive(Debug)]
pub struct PinnedVerifier {
    pin: SpkiPin,
    algorithms: WebPkiSupportedAlgorithms,
    refused: Mutex<Option<String>>,
}

impl PinnedVerifier {
    pub fn new(pin: SpkiPin) -> Self {
        Self {
            pin,
            algorithms: provider().signature_verification_algorithms,
            refused: Mutex::new(None),
        }
    }

    pub fn pin(&self) -> SpkiPin {
        self.pin
    }

    /// When this verifier refused a server: the SPKI SHA-256 (hex) of the certificate it
    /// presented instead of the pinned one, or a note that it was not a certificate.
    pub fn presented_instead(&self) -> Option<String> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn check(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let presented = match spki_pin(cert) {
            Ok(p) if p == self.pin => return Ok(()),
            Ok(p) => p.to_string(),
            Err(_) => "something that is not an X.509 certificate".to_string(),
        };
        *self.refused.lock().unwrap_or_else(|p| p.into_inner()) = Some(presented);
        Err(rustls::Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        ))
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The key is the identity: names, dates and issuers of a self-signed certificate
        // prove nothing, the pin and the handshake signature below do.
        self.check(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls12_not_offered()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.check(cert)?;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The client configurations offer TLS 1.3 only.
fn tls12_not_offered() -> Result<HandshakeSignatureValid, rustls::Error> {
    Err(rustls::Error::General("TLS 1.2 is not offered".into()))
}

/// The X.509 extension in which a room service's certificate carries its attestation
/// evidence, RA-TLS style: the room's evidence bundle without the certificate chain and
/// collateral a verifier also needs (those can run to tens of KB and are served at
/// `GET /v1/evidence`), as JSON in a DER OCTET STRING. Non-critical. The OID is
/// 2.25.118440845: an arc under 2.25 (OIDs made from random numbers, X.667) with a 27-bit
/// random value, not a whole 128-bit UUID, because the DER library that parses certificates
/// here (`const-oid`) refuses arcs of more than four base-128 bytes (28 bits); a registered
/// arc replaces it when there is one.
pub const ROOM_EVIDENCE_OID: &[u64] = &[2, 25, 118_440_845];

fn room_evidence_oid() -> der::asn1::ObjectIdentifier {
    der::asn1::ObjectIdentifier::new_unwrap("2.25.118440845")
}

/// The content of the [`ROOM_EVIDENCE_OID`] extension for `evidence_json` (a DER OCTET
/// STRING holding it).
pub fn encode_certificate_evidence(evidence_json: &[u8]) -> Result<Vec<u8>, TlsError> {
    use der::Encode;
    der::asn1::OctetString::new(evidence_json)
        .and_then(|o| o.to_der())
        .map_err(|e| TlsError::Config(format!("evidence extension: {e}")))
}

/// The evidence JSON a DER certificate carries in its [`ROOM_EVIDENCE_OID`] extension:
/// `None` when it carries none; an error when the certificate does not parse or carries the
/// extension twice or malformed.
pub fn certificate_evidence(cert: &[u8]) -> Result<Option<Vec<u8>>, TlsError> {
    use der::Decode;
    let bad = |what: String| TlsError::BadCertificate(what);
    let cert = x509_cert::Certificate::from_der(cert).map_err(|e| bad(e.to_string()))?;
    let oid = room_evidence_oid();
    let mut found = cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == oid);
    let Some(ext) = found.next() else {
        return Ok(None);
    };
    if found.next().is_some() {
        return Err(bad("the evidence extension appears twice".into()));
    }
    let inner = der::asn1::OctetString::from_der(ext.extn_value.as_bytes()).map_err(|e| {
        bad(format!(
            "the evidence extension is not an OCTET STRING: {e}"
        ))
    })?;
    Ok(Some(inner.as_bytes().to_vec()))
}

/// Accepts any certificate, checks the handshake signature against its key, and remembers
/// the SPKI pin of what was presented: for the one request whose answer authenticates the
/// server by other means (a room service's attestation evidence, which binds its TLS key),
/// after which the caller pins that key.
#[derive(Debug)]
pub struct CaptureVerifier {
    algorithms: WebPkiSupportedAlgorithms,
    presented: Mutex<Option<(SpkiPin, Vec<u8>)>>,
}

impl CaptureVerifier {
    pub fn new() -> Self {
        Self {
            algorithms: provider().signature_verification_algorithms,
            presented: Mutex::new(None),
        }
    }
    /// The pin of the last certificate a server presented (and proved it holds the key of).
    pub fn presented(&self) -> Option<SpkiPin> {
        self.presented
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(pin, _)| *pin)
    }

    /// That certificate (DER), for what else it carries ([`certificate_evidence`]).
    pub fn presented_certificate(&self) -> Option<Vec<u8>> {
        self.presented
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(_, der)| der.clone())
    }
}

impl Default for CaptureVerifier {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerCertVerifier for CaptureVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        spki_pin(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls12_not_offered()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let valid = rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)?;
        let pin = spki_pin(cert)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        *self.presented.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((pin, cert.as_ref().to_vec()));
        Ok(valid)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A TLS 1.3 client configuration that accepts any server key and remembers it (see
/// [`CaptureVerifier`]).
pub fn capture_client_config() -> Result<(rustls::ClientConfig, Arc<CaptureVerifier>), TlsError> {
    let verifier = Arc::new(CaptureVerifier::new());
    Ok((client_config_with(verifier.clone())?, verifier))
}

/// A TLS 1.3 client configuration whose server certificates `verifier` judges.
fn client_config_with(
    verifier: Arc<dyn ServerCertVerifier>,
) -> Result<rustls::ClientConfig, TlsError> {
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// The pin of a raw SubjectPublicKeyInfo (DER).
pub fn spki_pin_of_der(spki: &[u8]) -> SpkiPin {
    use sha2::Digest;
    SpkiPin(sha2::Sha256::digest(spki).into())
}

/// A TLS 1.3 client configuration that trusts only the broker key `pin`, and its verifier
/// (ask it after a failed connection whether the broker presented another key).
pub fn pinned_client_config(
    pin: SpkiPin,
) -> Result<(rustls::ClientConfig, Arc<PinnedVerifier>), TlsError> {
    let verifier = Arc::new(PinnedVerifier::new(pin));
    Ok((client_config_with(verifier.clone())?, verifier))
}

/// How a client reaches the broker at `url`, pinned as the contract says: TLS trusting only
/// `spki_sha256` for `https://` (required), nothing for a plain `http://` URL without a pin
/// (the contract allows one only for 127.0.0.1 under simulation), refused otherwise. The
/// room and the members' CLI both decide here.
pub fn broker_client_config(
    url: &str,
    spki_sha256: Option<&str>,
) -> Result<Option<(rustls::ClientConfig, Arc<PinnedVerifier>)>, TlsError> {
    if url.starts_with("https://") {
        let pin: SpkiPin = spki_sha256.ok_or(TlsError::PinMissing)?.parse()?;
        pinned_client_config(pin).map(Some)
    } else if url.starts_with("http://") && spki_sha256.is_none() {
        Ok(None)
    } else {
        Err(TlsError::UnsupportedUrl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(extensions: &[Vec<u8>]) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["room".to_string()]).unwrap();
        for content in extensions {
            params
                .custom_extensions
                .push(rcgen::CustomExtension::from_oid_content(
                    ROOM_EVIDENCE_OID,
                    content.clone(),
                ));
        }
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn the_evidence_extension_reads_back_what_was_put_in() {
        let json = br#"{"platform":"sim","report":"AAAA"}"#;
        let cert = certificate(&[encode_certificate_evidence(json).unwrap()]);
        assert_eq!(certificate_evidence(&cert).unwrap().unwrap(), json);
        assert_eq!(certificate_evidence(&certificate(&[])).unwrap(), None);
    }

    #[test]
    fn a_certificate_with_two_evidence_extensions_is_refused() {
        let one = encode_certificate_evidence(b"{}").unwrap();
        let cert = certificate(&[one.clone(), one]);
        match certificate_evidence(&cert) {
            Err(TlsError::BadCertificate(what)) => assert!(what.contains("twice"), "{what}"),
            other => panic!("expected BadCertificate, got {other:?}"),
        }
    }

    #[test]
    fn a_malformed_evidence_extension_or_certificate_is_refused() {
        // The extension's content is not an OCTET STRING.
        let cert = certificate(&[b"not DER".to_vec()]);
        assert!(matches!(
            certificate_evidence(&cert),
            Err(TlsError::BadCertificate(_))
        ));
        assert!(matches!(
            certificate_evidence(b"not a certificate"),
            Err(TlsError::BadCertificate(_))
        ));
    }
}
