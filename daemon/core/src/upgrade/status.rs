//! How the last upgrade went, as root's side records it in a status file the daemon's group
//! reads (`[upgrades] status`): the installer (`lemur appliance upgrade`) while it writes the
//! inactive slot and when it is done, then the trial (`lemur appliance trial`) at the boots
//! that follow, when the new release is on trial, has passed, or has failed and the slot it
//! came from booted again. The daemon serves it at `GET /api/1/appliance/upgrade`; the
//! daemon's own part (a bundle staged, not yet taken up) it knows from its spool.

use crate::App;
use crate::error::{Error, Result};
use crate::policy::{Action, Subject, authorize};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Where an upgrade stands.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UpgradeState {
    /// Being written into the inactive root slot (`written` of `total` bytes).
    Installing,
    /// Written: the appliance restarts into it, on trial.
    Restarting,
    /// Running on trial: it becomes the release once a boot of it is good.
    OnTrial,
    /// A boot of it was good: it is the release.
    Passed,
    /// Its boots were not good: the slot it came from booted again.
    FellBack,
    /// The installation failed: nothing changed.
    Failed,
}

/// The status file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UpgradeStatus {
    /// Where it stands.
    pub state: UpgradeState,
    /// The release being installed, once its signed manifest was read.
    pub version: Option<String>,
    /// The release that was running when it began.
    pub from_version: String,
    /// The root slot it goes into (`a` or `b`).
    pub slot: String,
    /// Bytes of the bundle written so far.
    pub written: u64,
    /// Bytes of the bundle.
    pub total: u64,
    /// When it began (Unix seconds).
    pub started_at: i64,
    /// When this was written (Unix seconds).
    pub updated_at: i64,
    /// Why it failed or fell back.
    pub error: Option<String>,
}

impl UpgradeStatus {
    /// The status at `path`, moved to `state` (with `error`) at `now`; `None` when there is no
    /// status (an upgrade installed by hand, before statuses were kept).
    pub fn advance(
        path: &Path,
        state: UpgradeState,
        error: Option<String>,
        now: i64,
    ) -> Result<Option<Self>> {
        let Some(mut status) = crate::status_file::read::<Self>(path)? else {
            return Ok(None);
        };
        status.state = state;
        status.error = error;
        status.updated_at = now;
        crate::status_file::write(path, &status)?;
        Ok(Some(status))
    }
}

/// What `GET /appliance/upgrade` tells: the last upgrade's status, and whether a bundle is
/// staged and waiting for root.
pub struct Upgrades {
    /// Root's record of the last upgrade.
    pub last: Option<UpgradeStatus>,
    /// A bundle checked and staged, not yet taken up by root.
    pub staged: bool,
    /// The root slot running (`lemur.slot=` on the kernel's command line), on the appliance.
    pub slot: Option<String>,
}

/// The last upgrade, for an administrator.
pub async fn read(app: &App, subject: &Subject) -> Result<Upgrades> {
    authorize(subject, Action::UpgradeAppliance)?;
    let config = app.config.upgrades.clone().ok_or_else(|| {
        Error::Conflict(
            "this daemon takes no upgrades: only the appliance image configures [upgrades]".into(),
        )
    })?;
    tokio::task::spawn_blocking(move || {
        Ok(Upgrades {
            last: crate::status_file::read(&config.status)?,
            staged: config.spool.join(super::STAGED).exists(),
            slot: std::fs::read_to_string("/proc/cmdline")
                .ok()
                .and_then(|line| {
                    line.split_whitespace()
                        .find_map(|word| word.strip_prefix("lemur.slot=").map(str::to_owned))
                }),
        })
    })
    .await
    .map_err(Error::task("reading the upgrade status"))?
}
