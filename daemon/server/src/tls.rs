//! Serving HTTPS directly with rustls, for deployments without nginx in front.
//!
//! Handshakes run in their own tasks so a slow or silent client cannot hold up the accept loop;
//! finished connections are handed to the serving loop through a channel.
//!
//! The certificate and key are read again whenever their files change (the front end's
//! certificate, which `lemur dev` serves, is renewed in place; an operator may replace them), so
//! a renewal needs no restart. What does not load (a key that does not fit yet, half-written
//! files) leaves the certificate in use serving, and is tried again.

use crate::limits::ConnectionLimits;
use crate::serve::{Accepted, Connections, accept};
use lemur_core::{App, Error, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use std::time::SystemTime;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the certificate's and key's files are looked at for a change.
const RELOAD_CHECK_EVERY: Duration = Duration::from_secs(5);

/// Connections on a TCP listener, each handed over once its TLS handshake is done.
pub struct TlsListener {
    ready: mpsc::Receiver<Accepted<TlsStream<TcpStream>>>,
    acceptor: JoinHandle<()>,
    reloader: JoinHandle<()>,
}

/// The certificate chain and private key files HTTPS is served with.
#[derive(Debug, Clone)]
pub(crate) struct TlsFiles {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

/// When the files were last changed, and how long they are: what says they changed.
type Stamp = [Option<(SystemTime, u64)>; 2];

impl TlsFiles {
    fn stamp(&self) -> Stamp {
        [&self.certificate, &self.private_key].map(|path| {
            std::fs::metadata(path)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
    }

    /// The server configuration from the files as they are now; the key may be locked (sealed
    /// in the HSM by `lemur lock`).
    pub(crate) async fn load(&self, app: &App) -> Result<Arc<rustls::ServerConfig>> {
        let key = self.private_key.clone();
        let key = app
            .hsm(move |hsm| lemur_core::locked::read(&key, &**hsm))
            .await?;
        server_config(&self.certificate, &key)
    }
}

/// Serves the configuration loaded last, and loads the files again whenever they change.
async fn reload(app: Arc<App>, files: TlsFiles, current: watch::Sender<TlsAcceptor>) {
    let mut loaded = files.stamp();
    let mut reported = loaded;
    let mut ticks = tokio::time::interval(RELOAD_CHECK_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let stamp = files.stamp();
        if stamp == loaded {
            continue;
        }
        match files.load(&app).await {
            Ok(config) => {
                current.send_replace(TlsAcceptor::from(config));
                loaded = stamp;
                log::info!(
                    "serving the changed certificate in {}",
                    files.certificate.display()
                );
            }
            // Once per change: the files may be caught between two writes.
            Err(error) if stamp != reported => {
                reported = stamp;
                log::warn!(
                    "kept serving the certificate loaded before: {} did not load ({error}); trying again",
                    files.certificate.display()
                );
            }
            Err(_) => {}
        }
    }
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
    pub(crate) async fn new(
        listener: TcpListener,
        app: Arc<App>,
        files: TlsFiles,
        places: Arc<ConnectionLimits>,
    ) -> Result<Self> {
        let (current, acceptors) = watch::channel(TlsAcceptor::from(files.load(&app).await?));
        let reloader = tokio::spawn(reload(app, files, current));
        let (sender, ready) = mpsc::channel(64);
        let acceptor = tokio::spawn(async move {
            loop {
                let Accepted { io, peer, place } = accept(&listener, &places).await;
                let (acceptor, sender) = (acceptors.borrow().clone(), sender.clone());
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
        Ok(Self {
            ready,
            acceptor,
            reloader,
        })
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
        self.reloader.abort();
    }
}
