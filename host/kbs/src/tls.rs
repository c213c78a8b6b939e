//! The broker's TLS: its self-signed identity (made by `init`, pinned by contracts through
//! the SHA-256 of its SubjectPublicKeyInfo). The listener that serves it is
//! `cleanroom_formats::https` (shared with the room service).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

use cleanroom_formats::fsutil::{self, FileMode};
use cleanroom_formats::tls::{self as pin, SpkiPin};

use crate::error::{KbsError, Result};

pub use cleanroom_formats::https::{
    Conn, HANDSHAKE_TIMEOUT, Incoming, MAX_HANDSHAKES, Peer, incoming,
};

/// The default certificate file beside a broker database.
pub fn default_cert_path(db: &Path) -> PathBuf {
    fsutil::with_suffix(db, ".tls-cert.pem")
}

/// The default private key file beside a broker database.
pub fn default_key_path(db: &Path) -> PathBuf {
    fsutil::with_suffix(db, ".tls-key.pem")
}

/// A broker's TLS certificate and private key (PEM).
pub struct TlsIdentity {
    cert_pem: String,
    key_pem: Zeroizing<String>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("spki_sha256", &self.spki_sha256().ok())
            .finish_non_exhaustive()
    }
}

fn tls_err(what: impl std::fmt::Display) -> KbsError {
    KbsError::Tls {
        what: what.to_string(),
    }
}

impl TlsIdentity {
    /// A fresh self-signed certificate (ECDSA P-256) for `localhost` and `127.0.0.1`. Its
    /// names and dates mean nothing to Cleanroom clients: they pin the key.
    pub fn generate() -> Result<Self> {
        let ck = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])
        .map_err(tls_err)?;
        Ok(Self {
            cert_pem: ck.cert.pem(),
            key_pem: Zeroizing::new(ck.signing_key.serialize_pem()),
        })
    }

    /// Write the certificate (0644) and the key (0600); refuses to overwrite either.
    pub fn write(&self, cert: &Path, key: &Path) -> Result<()> {
        for p in [cert, key] {
            if p.exists() {
                return Err(tls_err(format!(
                    "{} already exists; refusing to overwrite a broker's TLS identity",
                    p.display()
                )));
            }
        }
        fsutil::write_file_atomic(key, self.key_pem.as_bytes(), FileMode::Secret)?;
        fsutil::write_file_atomic(cert, self.cert_pem.as_bytes(), FileMode::Public)?;
        Ok(())
    }

    /// Read a certificate and key written by [`TlsIdentity::write`] (or any PEM pair).
    pub fn read(cert: &Path, key: &Path) -> Result<Self> {
        let id = Self {
            cert_pem: fsutil::read_text(cert)?,
            key_pem: Zeroizing::new(fsutil::read_text(key)?),
        };
        id.server_config()?;
        Ok(id)
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// SHA-256 of the certificate's SubjectPublicKeyInfo: what contracts pin.
    pub fn spki_sha256(&self) -> Result<SpkiPin> {
        pin::spki_pin_of_pem(&self.cert_pem).map_err(tls_err)
    }

    /// The server configuration: TLS 1.3, this certificate alone.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>> {
        let cert = CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
            .map_err(|e| tls_err(format!("certificate: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|e| tls_err(format!("private key: {e}")))?;
        let config = ServerConfig::builder_with_provider(pin::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_err)?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .map_err(tls_err)?;
        Ok(Arc::new(config))
    }
}
