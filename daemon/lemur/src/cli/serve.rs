//! `lemur start`: checks that secrets are private and that it is not root, opens everything, and
//! serves until SIGTERM or SIGINT, letting requests in flight finish.

use crate::systemd;
use lemur_core::config::Config;
use lemur_core::files::{check_credential, check_not_writable_by_others, check_private, is_root};
use lemur_core::{App, Error, Result, clock};
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

/// Refuses configuration, secrets or state readable by others, then root in production.
pub fn preflight(config_path: &Path, config: &Config, mode: Mode) -> Result<()> {
    check_private(config_path)?;
    check_private(&config.state_dir)?;
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(std::path::PathBuf::from);
    for secret in config.secret_files() {
        match &credentials {
            Some(directory) if secret.starts_with(directory) => check_credential(secret)?,
            _ => check_private(&lemur_core::locked::on_disk(secret))?,
        }
    }
    // A database file outside the private state directory must be private itself (compared
    // once links and `..` are resolved, without the URL's query).
    if let Some(file) = config
        .database
        .url
        .strip_prefix("sqlite://")
        .map(|rest| Path::new(rest.split('?').next().unwrap_or(rest)))
        && let (Ok(file), Ok(state)) = (file.canonicalize(), config.state_dir.canonicalize())
        && !file.starts_with(&state)
    {
        check_private(&file)?;
    }
    check_not_writable_by_others(&config.hsm.module_path())?;
    if is_root() {
        match mode {
            Mode::Production => {
                return Err(Error::Forbidden(
                    "lemur start refuses to run as root: run it as the lemur user (see systemd/lemur.service)".into(),
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
    if let Some(manager) = systemd::manager() {
        manager.status("starting: HSM login, entropy self-test, database");
    }
    let (app, _) = crate::open::app(config, clock::system()).await?;
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
    // Roles added by an upgrade exist before anyone is checked against them.
    app.ensure_builtin_roles().await?;
    // Tried again at the next start when it fails: a restore's record is not worth an outage.
    if let Err(error) = lemur_core::backup::api_restore::audit_restored(&app).await {
        log::error!("recording the restore that brought this appliance back failed: {error}");
    }
    let _entropy_rechecks = app.entropy.start_periodic(Duration::from_secs(
        app.config.entropy.recheck_interval_secs.max(1),
    ));
    let key_pool = tokio::spawn(lemur_core::ca::key_pool::refill(Arc::clone(&app)));
    let (stop_stock, stock_stopping) = tokio::sync::oneshot::channel::<()>();
    let key_stock = tokio::spawn(lemur_core::ca::key_stock::fill(Arc::clone(&app), async {
        let _ = stock_stopping.await;
    }));
    let first_look = lemur_core::frontend::check(&app).await;
    let frontend = tokio::spawn(lemur_core::frontend::maintain(Arc::clone(&app), first_look));
    let tidying = tokio::spawn(tidy_now_and_then(Arc::clone(&app)));
    let watchdog = systemd::manager()
        .zip(systemd::watchdog_interval())
        .map(|(manager, interval)| tokio::spawn(keep_alive(manager, interval)));
    let signalled = shutdown_signal();
    let shutdown = async {
        signalled.await;
        if let Some(manager) = systemd::manager() {
            manager.stopping();
        }
    };
    let served = lemur_server::serve(Arc::clone(&app), shutdown, |address| {
        announce(address, on_ready)
    })
    .await;
    // Unused ready keys are wiped as the pool drops with the application.
    key_pool.abort();
    frontend.abort();
    tidying.abort();
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    let _ = stop_stock.send(());
    let _ = key_stock.await;
    served?;
    log::info!("stopped; closing the database");
    app.store.close().await;
    Ok(())
}

/// Called once the listener is bound, which is after HSM login and the entropy self-test.
fn announce(address: &str, on_ready: impl FnOnce(&str)) {
    log::info!("ready: listening on {address}");
    println!("lemur: listening on {address}");
    if let Some(manager) = systemd::manager() {
        manager.ready(&format!("serving on {address}"));
    }
    on_ready(address);
}

/// How often the database's planner statistics are brought up to date (SQLite's advice for
/// long-lived connections: hourly to daily).
const TIDY_EVERY: Duration = Duration::from_secs(6 * 3600);

/// Tidies the database at start, then every [`TIDY_EVERY`] (and the store tidies as it closes).
async fn tidy_now_and_then(app: Arc<App>) {
    let mut ticks = tokio::time::interval(TIDY_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        app.store.tidy().await;
    }
}

/// Tells systemd's watchdog the daemon is alive, twice per interval as `sd_watchdog_enabled(3)`
/// advises. The pings come from the async runtime that serves every request, so a runtime that
/// stops turning altogether stops them and systemd restarts the daemon. A hung HSM or database
/// does not: those are reported as 503s and by the health route, and retried.
async fn keep_alive(manager: &'static systemd::Notifier, interval: Duration) {
    let mut ticks = tokio::time::interval(interval / 2);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        manager.watchdog();
    }
}

/// Completes on SIGTERM or SIGINT. The handlers are installed when this is called, not when the
/// future is first polled: a stop that arrives as soon as the daemon reports ready (systemd's,
/// or a test's) must find them in place, or the default action kills the daemon mid-start.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            log::error!("cannot install signal handlers; stop with SIGKILL");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => log::info!("SIGTERM: finishing requests in flight"),
            _ = int.recv() => log::info!("SIGINT: finishing requests in flight"),
        }
    }
}
