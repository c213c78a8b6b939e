//! The broker's TLS: its self-signed identity (made by `init`, pinned by contracts through
//! the SHA-256 of its SubjectPublicKeyInfo) and the listener that serves it.
//!
//! rustls with `ring`, TLS 1.3 only. Handshakes run in their own tasks, at most
//! [`MAX_HANDSHAKES`] at once and each within [`HANDSHAKE_TIMEOUT`], so a client that opens
//! connections and never finishes a handshake cannot hold up the others.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use zeroize::Zeroizing;

use cleanroom_formats::fsutil::{self, FileMode};
use cleanroom_formats::tls::{self as pin, SpkiPin};

use crate::error::{KbsError, Result};

/// Most TLS handshakes in progress at once; connections beyond it are closed at once.
pub const MAX_HANDSHAKES: usize = 256;
/// A handshake not finished by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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

/// A connection to the broker: TLS, or plain HTTP on loopback.
#[derive(Debug)]
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The peer of a connection (axum `ConnectInfo`): sessions are bounded per client.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Incoming>> for Peer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Incoming>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// Accepted (and, with TLS, handshaken) connections, for `axum::serve`.
#[derive(Debug)]
pub struct Incoming {
    rx: mpsc::Receiver<(Conn, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for Incoming {
    type Io = Conn;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Conn, SocketAddr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept task ended (the broker is stopping): accept nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Start accepting on `listener`: with `tls`, each connection's handshake runs in its own
/// task (bounded in number and time). Returns the listener for axum and the accept task
/// (abort it to stop accepting and free the port).
pub fn incoming(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
) -> std::io::Result<(Incoming, tokio::task::JoinHandle<()>)> {
    let local = listener.local_addr()?;
    let (tx, rx) = mpsc::channel(64);
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let task = tokio::spawn(async move {
        loop {
            let (tcp, addr) = match listener.accept().await {
                Ok(c) => c,
                Err(_) => {
                    // Out of file descriptors and the like: back off, as axum does.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let Some(acceptor) = acceptor.clone() else {
                if tx.send((Conn::Plain(tcp), addr)).await.is_err() {
                    return;
                }
                continue;
            };
            let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                drop(tcp);
                continue;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                if let Ok(Ok(s)) =
                    tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    let _ = tx.send((Conn::Tls(Box::new(s)), addr)).await;
                }
            });
        }
    });
    Ok((Incoming { rx, local }, task))
}
