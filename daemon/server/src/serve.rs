//! Serving the API until a shutdown signal: on a unix socket (behind nginx), plain TCP, or
//! HTTPS with rustls; requests in flight finish before it returns.

use lemur_core::{App, Error, Result};
use std::future::Future;
use std::sync::Arc;

/// Serves `app` where its configuration says until `shutdown` completes; `on_ready` runs with
/// the address once the listener is bound.
pub async fn serve(
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(&str),
) -> Result<()> {
    let router = crate::router(Arc::clone(&app));
    let server = &app.config.server;
    if let Some(path) = server.listen.strip_prefix("unix:") {
        let _ = std::fs::remove_file(path);
        let listener =
            tokio::net::UnixListener::bind(path).map_err(Error::io(format!("binding {path}")))?;
        on_ready(&format!("unix:{path}"));
        return axum::serve(listener, router.into_make_service())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(Error::io("serving"));
    }
    let listener = tokio::net::TcpListener::bind(&server.listen)
        .await
        .map_err(Error::io(format!("binding {}", server.listen)))?;
    let address = listener
        .local_addr()
        .map_err(Error::io("reading the bound address"))?;
    let service = router.into_make_service_with_connect_info::<crate::Peer>();
    match (&server.tls_certificate, &server.tls_private_key) {
        (Some(certificate), Some(key)) => {
            let tls = crate::tls::TlsListener::new(
                listener,
                crate::tls::server_config(certificate, key)?,
            )?;
            on_ready(&format!("https://{address}"));
            axum::serve(tls, service)
                .with_graceful_shutdown(shutdown)
                .await
        }
        (None, None) => {
            on_ready(&format!("http://{address}"));
            axum::serve(listener, service)
                .with_graceful_shutdown(shutdown)
                .await
        }
        _ => {
            return Err(Error::invalid(
                "server",
                "set both tls_certificate and tls_private_key, or neither",
            ));
        }
    }
    .map_err(Error::io("serving"))
}
