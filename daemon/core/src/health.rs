//! Health: the database, the HSM and entropy, each checked on every call.

use crate::App;
use crate::error::Result;
use crate::policy::{Action, Subject, authorize};
use lemur_entropy::HealthState;

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

/// Runs every check (for load balancers: no subject, only a verdict is shown).
pub async fn check(app: &App) -> Checks {
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

/// Every check with its reason: the reasons name HSM and entropy internals, so only some roles
/// may read them.
pub async fn details(app: &App, subject: &Subject) -> Result<Checks> {
    authorize(subject, Action::ReadHealthDetails)?;
    Ok(check(app).await)
}
