//! What `/metrics` reports beyond HTTP: certificates issued per authority since the daemon
//! started, the HSM's operations and session pool, entropy health per source, and how many
//! certificates expire within 7 and 30 days. The expiry counts are read at most once a minute,
//! so a scrape every few seconds does not count a million rows each time.

use crate::App;
use crate::error::Result;
use lemur_entropy::HealthState;
use lemur_hsm::HsmStats;
use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long expiry counts are reused.
const EXPIRING_CACHE: Duration = Duration::from_secs(60);

/// Counters the domain keeps for metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    issued: Mutex<BTreeMap<String, u64>>,
    expiring: tokio::sync::Mutex<Option<(Instant, Expiring)>>,
}

impl Metrics {
    /// Counts a certificate issued by `authority`.
    pub(crate) fn issued(&self, authority: &str) {
        *self
            .issued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(authority.to_owned())
            .or_default() += 1;
    }
}

/// Certificates, not revoked, that expire within a week and within 30 days from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiring {
    /// Within 7 days.
    pub within_7_days: i64,
    /// Within 30 days.
    pub within_30_days: i64,
}

/// Every figure at one moment.
#[derive(Debug)]
pub struct Snapshot {
    /// Certificates issued per authority since start.
    pub issued: Vec<(String, u64)>,
    /// The HSM's counters and sessions.
    pub hsm: HsmStats,
    /// The latest entropy verdict per source; empty before the first check.
    pub entropy: Vec<(String, bool)>,
    /// Whether the latest entropy check passed (`None` before the first).
    pub entropy_healthy: Option<bool>,
    /// Expiry counts; `Err` while the database cannot answer (the rest is still reported).
    pub expiring: Result<Expiring>,
}

/// Reads every figure.
pub async fn snapshot(app: &App) -> Snapshot {
    let issued = app
        .metrics
        .issued
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|(authority, count)| (authority.clone(), *count))
        .collect();
    let (entropy_healthy, report) = match app.entropy.state() {
        HealthState::NotChecked => (None, None),
        HealthState::Healthy(report) => (Some(true), Some(report)),
        HealthState::Unhealthy(report) => (Some(false), Some(report)),
    };
    let entropy = report
        .map(|report| {
            report
                .sources
                .iter()
                .map(|source| (source.source.clone(), source.passed()))
                .collect()
        })
        .unwrap_or_default();
    Snapshot {
        issued,
        hsm: app.hsm.stats(),
        entropy,
        entropy_healthy,
        expiring: expiring(app).await,
    }
}

async fn expiring(app: &App) -> Result<Expiring> {
    let mut cached = app.metrics.expiring.lock().await;
    if let Some((at, counts)) = *cached
        && at.elapsed() < EXPIRING_CACHE
    {
        return Ok(counts);
    }
    let now = app.clock.unix();
    const DAY: i64 = 24 * 60 * 60;
    let counts = Expiring {
        within_7_days: app.store.count_expiring(now, now + 7 * DAY).await?,
        within_30_days: app.store.count_expiring(now, now + 30 * DAY).await?,
    };
    *cached = Some((Instant::now(), counts));
    Ok(counts)
}
