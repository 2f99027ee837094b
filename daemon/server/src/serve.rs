//! Serving the API until a shutdown signal: on a unix socket (behind nginx), plain TCP, or
//! HTTPS with rustls; requests in flight finish before it returns.
//!
//! The accept loop is ours rather than `axum::serve`'s so that every connection is bounded:
//! a cap on connections open at once (a connection waits in the kernel's backlog for a place
//! before it is accepted), and a deadline for each request's headers (hyper's header timeout,
//! which also closes keep-alive connections left idle as long). Request bodies have their own
//! deadline (`server.request_timeout_secs`, in the JSON extractor).

use crate::Peer;
use crate::limits::{ConnectionLimits, Place};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use lemur_core::config::ServerConfig;
use lemur_core::{App, Error, Result};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

/// A connection's read buffer, which bounds its request headers (hyper's default is ~400 KiB,
/// so the connection cap alone would still let slow clients hold hundreds of megabytes).
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// How long requests in flight may take to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves `app` where its configuration says until `shutdown` completes; `on_ready` runs with
/// the address once the listener is bound.
pub async fn serve(
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(&str),
) -> Result<()> {
    let server = &app.config.server;
    let places = ConnectionLimits::new(server)?;
    let router = crate::router(Arc::clone(&app));
    if let Some(path) = server.listen.strip_prefix("unix:") {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).map_err(Error::io(format!("binding {path}")))?;
        // Owner and group may connect: the directory decides who that is (the bundled units make
        // /run/lemur setgid to nginx's group, so nginx and no one else reaches the socket).
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o660))
            .map_err(Error::io(format!("opening {path} to its group")))?;
        on_ready(&format!("unix:{path}"));
        let connections = Plain { listener, places };
        return run(connections, router, server, shutdown).await;
    }
    let listener = TcpListener::bind(&server.listen)
        .await
        .map_err(Error::io(format!("binding {}", server.listen)))?;
    let address = listener
        .local_addr()
        .map_err(Error::io("reading the bound address"))?;
    match (&server.tls_certificate, &server.tls_private_key) {
        (Some(certificate), Some(private_key)) => {
            let files = crate::tls::TlsFiles {
                certificate: certificate.clone(),
                private_key: private_key.clone(),
            };
            let connections =
                crate::tls::TlsListener::new(listener, Arc::clone(&app), files, places).await?;
            on_ready(&format!("https://{address}"));
            run(connections, router, server, shutdown).await
        }
        (None, None) => {
            on_ready(&format!("http://{address}"));
            run(Plain { listener, places }, router, server, shutdown).await
        }
        _ => Err(Error::invalid(
            "server",
            "set both tls_certificate and tls_private_key, or neither",
        )),
    }
}

/// A connection ready for HTTP, holding its place under the connection cap until it closes.
pub(crate) struct Accepted<Io> {
    pub io: Io,
    /// The TCP peer (none on the unix socket).
    pub peer: Option<SocketAddr>,
    pub place: Place,
}

/// Where connections come from: a plain listener, or TLS handshakes finished in the background.
pub(crate) trait Connections: Send {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The next connection; waits for a place under the cap first.
    fn next(&mut self) -> impl Future<Output = Accepted<Self::Io>> + Send;
}

/// A socket listener, TCP or unix.
pub(crate) trait Listen: Send + Sync {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    fn accept_one(
        &self,
    ) -> impl Future<Output = std::io::Result<(Self::Io, Option<SocketAddr>)>> + Send;
}

impl Listen for TcpListener {
    type Io = tokio::net::TcpStream;

    async fn accept_one(&self) -> std::io::Result<(Self::Io, Option<SocketAddr>)> {
        let (stream, peer) = self.accept().await?;
        // Responses are written whole; Nagle's delay only adds latency.
        let _ = stream.set_nodelay(true);
        Ok((stream, Some(peer)))
    }
}

impl Listen for UnixListener {
    type Io = tokio::net::UnixStream;

    async fn accept_one(&self) -> std::io::Result<(Self::Io, Option<SocketAddr>)> {
        Ok((self.accept().await?.0, None))
    }
}

/// Waits for a place under the cap, then accepts a connection on `listener` that its client's
/// limit admits (others are closed at once). Accept errors (out of descriptors, a connection
/// reset before it was accepted) are logged and retried after a pause, never fatal.
pub(crate) async fn accept<L: Listen>(
    listener: &L,
    limits: &Arc<ConnectionLimits>,
) -> Accepted<L::Io> {
    let mut total = limits.wait_for_place().await;
    loop {
        match listener.accept_one().await {
            Ok((io, peer)) => match limits.admit(total, peer) {
                Some(place) => return Accepted { io, peer, place },
                None => total = limits.wait_for_place().await,
            },
            Err(error) => {
                log::warn!("accepting a connection failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Connections straight from a listener.
struct Plain<L> {
    listener: L,
    places: Arc<ConnectionLimits>,
}

impl<L: Listen> Connections for Plain<L> {
    type Io = L::Io;

    async fn next(&mut self) -> Accepted<L::Io> {
        accept(&self.listener, &self.places).await
    }
}

/// Serves HTTP/1.1 on every connection from `connections` until `shutdown`, then waits for the
/// requests in flight (idle connections are closed at once).
async fn run<C: Connections>(
    mut connections: C,
    router: Router,
    server: &ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(server.header_timeout_secs.max(1)))
        .max_buf_size(READ_BUFFER_BYTES);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = connections.next() => accepted,
            () = &mut shutdown => break,
        };
        let peer = accepted.peer.map(Peer);
        let service = tower::ServiceExt::map_request(
            router.clone(),
            move |mut request: axum::http::Request<Incoming>| {
                if let Some(peer) = peer {
                    request.extensions_mut().insert(peer);
                }
                request
            },
        );
        let connection = graceful.watch(
            http.serve_connection(TokioIo::new(accepted.io), TowerToHyperService::new(service)),
        );
        let place = accepted.place;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                log::debug!("connection closed: {error}");
            }
            drop(place);
        });
    }
    drop(connections);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        log::warn!(
            "connections still open {} s after shutdown began (a client not reading its \
             response?); stopping anyway",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    Ok(())
}
