//! Health: the database, the HSM and entropy, each checked at most every few seconds.

use crate::App;
use crate::error::Result;
use crate::policy::{Action, Subject, authorize};
use lemur_entropy::HealthState;
use std::time::{Duration, Instant};

/// The result of each check: `Err` holds the reason.
#[derive(Debug, Clone)]
pub struct Checks {
    /// One round trip to the database.
    pub database: std::result::Result<(), String>,
    /// One random byte from the token.
    pub hsm: std::result::Result<(), String>,
    /// The latest entropy health verdict.
    pub entropy: std::result::Result<(), String>,
}

impl Checks {
    /// Every check passed.
    pub fn healthy(&self) -> bool {
        self.database.is_ok() && self.hsm.is_ok() && self.entropy.is_ok()
    }
}

/// How long a health verdict is reused: `/healthcheck` needs no sign-in, so without this every
/// probe (or anyone) would take an HSM session and a database connection.
const CACHE_SECS: u64 = 5;

/// The latest verdict and when it was reached. Held while a new verdict is reached, so probes
/// that arrive meanwhile wait for it rather than each running the checks (one at a time even
/// while the database hangs).
#[derive(Debug, Default)]
pub struct HealthCache(tokio::sync::Mutex<Option<(Instant, Checks)>>);

/// Every check's verdict, at most [`CACHE_SECS`] old (for load balancers: no subject, only a
/// verdict is shown).
pub async fn check(app: &App) -> Checks {
    let mut cached = app.health.0.lock().await;
    if let Some((at, checks)) = cached.as_ref()
        && at.elapsed() < Duration::from_secs(CACHE_SECS)
    {
        return checks.clone();
    }
    let checks = run(app).await;
    *cached = Some((Instant::now(), checks.clone()));
    checks
}

/// Every check run now; the verdict is kept for [`check`].
async fn fresh(app: &App) -> Checks {
    let mut cached = app.health.0.lock().await;
    let checks = run(app).await;
    *cached = Some((Instant::now(), checks.clone()));
    checks
}

/// Runs every check.
async fn run(app: &App) -> Checks {
    let database = app.store.ping().await.map_err(|e| e.to_string());
    let hsm = app
        .hsm(|hsm| {
            let mut probe = [0u8; 1];
            hsm.random(&mut probe).map_err(Into::into)
        })
        .await
        .map_err(|e| e.to_string());
    let entropy = match app.entropy.state() {
        HealthState::Healthy(_) => Ok(()),
        HealthState::NotChecked => Err("not checked yet".to_owned()),
        HealthState::Unhealthy(report) => Err(report.reason.unwrap_or_default()),
    };
    Checks {
        database,
        hsm,
        entropy,
    }
}

/// Every check with its reason, run now: the reasons name HSM and entropy internals, so only
/// some roles may read them.
pub async fn details(app: &App, subject: &Subject) -> Result<Checks> {
    authorize(subject, Action::ReadHealthDetails)?;
    Ok(fresh(app).await)
}
