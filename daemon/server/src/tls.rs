//! Serving HTTPS directly with rustls, for deployments without nginx in front.
//!
//! Handshakes run in their own tasks so a slow or silent client cannot hold up the accept loop;
//! finished connections are handed to the serving loop through a channel.

use crate::limits::ConnectionLimits;
use crate::serve::{Accepted, Connections, accept};
use lemur_core::{Error, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections on a TCP listener, each handed over once its TLS handshake is done.
pub struct TlsListener {
    ready: mpsc::Receiver<Accepted<TlsStream<TcpStream>>>,
    acceptor: JoinHandle<()>,
}

/// The server configuration from a PEM chain and the PEM private key read from `private_key`
/// (TLS 1.2 and 1.3, HTTP/1.1).
pub fn server_config(certificate: &Path, private_key: &[u8]) -> Result<Arc<rustls::ServerConfig>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect())
        .map_err(|e| {
            Error::invalid(
                "server.tls_certificate",
                format!("{}: {e}", certificate.display()),
            )
        })?;
    if chain.is_empty() {
        return Err(Error::invalid(
            "server.tls_certificate",
            format!("{} holds no certificate", certificate.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(private_key)
        .map_err(|e| Error::invalid("server.tls_private_key", e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::invalid("server", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            Error::invalid(
                "server.tls_private_key",
                format!("does not fit the certificate: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl TlsListener {
    /// Accepts TCP connections on `listener`, each once it has a place under the cap, and
    /// completes TLS handshakes in the background (the place is held through the handshake).
    pub(crate) fn new(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
        places: Arc<ConnectionLimits>,
    ) -> Self {
        let acceptor = TlsAcceptor::from(config);
        let (sender, ready) = mpsc::channel(64);
        let acceptor = tokio::spawn(async move {
            loop {
                let Accepted { io, peer, place } = accept(&listener, &places).await;
                let (acceptor, sender) = (acceptor.clone(), sender.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                        Ok(Ok(io)) => {
                            let _ = sender.send(Accepted { io, peer, place }).await;
                        }
                        Ok(Err(error)) => {
                            log::debug!("TLS handshake with {peer:?} failed: {error}")
                        }
                        Err(_) => log::debug!("TLS handshake with {peer:?} timed out"),
                    }
                });
            }
        });
        Self { ready, acceptor }
    }
}

impl Connections for TlsListener {
    type Io = TlsStream<TcpStream>;

    async fn next(&mut self) -> Accepted<Self::Io> {
        match self.ready.recv().await {
            Some(connection) => connection,
            None => std::future::pending().await,
        }
    }
}

impl Drop for TlsListener {
    /// Stops accepting: the listener closes with the task.
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}
