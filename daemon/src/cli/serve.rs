//! `lemur start`: checks that secrets are private and that it is not root, opens everything, and
//! serves until SIGTERM or SIGINT, letting requests in flight finish.

use crate::app::App;
use crate::clock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::files::check_private;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How strict start-up checks are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Refuse to run as root.
    Production,
    /// Warn about root (tests and CI run as root).
    Development,
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

/// Refuses configuration, secrets or state readable by others, then root in production.
pub fn preflight(config_path: &Path, config: &Config, mode: Mode) -> Result<()> {
    check_private(config_path)?;
    check_private(&config.state_dir)?;
    for secret in config.secret_files() {
        check_private(secret)?;
    }
    if is_root() {
        match mode {
            Mode::Production => {
                return Err(Error::Forbidden(
                    "lemur start refuses to run as root: run it as the lemur user (see systemd/lemurd.service)".into(),
                ));
            }
            Mode::Development => log::warn!("running as root: acceptable in development only"),
        }
    }
    Ok(())
}

/// `lemur start`.
pub async fn start(config_path: &Path, mode: Mode) -> Result<()> {
    let config = Config::load(config_path)?;
    serve(config_path, config, mode, |_| {}).await
}

/// Checks the files, opens the application and serves it; `on_ready` runs once the listener is
/// bound.
pub async fn serve(
    config_path: &Path,
    config: Config,
    mode: Mode,
    on_ready: impl FnOnce(&str),
) -> Result<()> {
    preflight(config_path, &config, mode)?;
    let app = App::open(config, clock::system()).await?;
    serve_app(Arc::new(app), on_ready).await
}

/// Serves an opened application until SIGTERM or SIGINT.
pub async fn serve_app(app: Arc<App>, on_ready: impl FnOnce(&str)) -> Result<()> {
    if app.store.role_by_name("admin").await?.is_none() {
        return Err(Error::invalid(
            "database",
            "not initialised: run `lemur init` first",
        ));
    }
    let _entropy_rechecks = app.entropy.start_periodic(Duration::from_secs(
        app.config.entropy.recheck_interval_secs.max(1),
    ));
    let router = crate::api::router(Arc::clone(&app));
    let listen = app.config.server.listen.clone();
    let shutdown = shutdown_signal();
    if let Some(path) = listen.strip_prefix("unix:") {
        let _ = std::fs::remove_file(path);
        let listener =
            tokio::net::UnixListener::bind(path).map_err(Error::io(format!("binding {path}")))?;
        let address = format!("unix:{path}");
        announce(&address, on_ready);
        axum::serve(listener, router.into_make_service())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(Error::io("serving"))?;
    } else {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(Error::io(format!("binding {listen}")))?;
        let address = listener
            .local_addr()
            .map_err(Error::io("reading the bound address"))?;
        let service = router.into_make_service_with_connect_info::<crate::api::Peer>();
        match (
            &app.config.server.tls_certificate,
            &app.config.server.tls_private_key,
        ) {
            (Some(certificate), Some(key)) => {
                let tls = super::tls::TlsListener::new(
                    listener,
                    super::tls::server_config(certificate, key)?,
                )?;
                announce(&format!("https://{address}"), on_ready);
                axum::serve(tls, service)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            (None, None) => {
                announce(&format!("http://{address}"), on_ready);
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
        .map_err(Error::io("serving"))?;
    }
    log::info!("stopped; closing the database");
    app.store.close().await;
    Ok(())
}

fn announce(address: &str, on_ready: impl FnOnce(&str)) {
    log::info!("ready: listening on {address}");
    println!("lemur: listening on {address}");
    on_ready(address);
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        log::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => log::info!("SIGTERM: finishing requests in flight"),
        _ = int.recv() => log::info!("SIGINT: finishing requests in flight"),
    }
}
