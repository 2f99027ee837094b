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

/// The status file. Unknown fields are allowed: the release that falls back reads what a later
/// one wrote.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UpgradeStatus {
    /// Where it stands.
    pub state: UpgradeState,
    /// The release installed, once the whole bundle was checked.
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
    /// The status at `path`, moved to `state` (with `error`) at `now`, if it is of release
    /// `version`; `None` when there is none of it (an upgrade installed before statuses were
    /// kept, or over a record of another).
    pub fn advance(
        path: &Path,
        version: &str,
        state: UpgradeState,
        error: Option<String>,
        now: i64,
    ) -> Result<Option<Self>> {
        let Some(mut status) = crate::status_file::read::<Self>(path)? else {
            return Ok(None);
        };
        if status.version.as_deref() != Some(version) {
            return Ok(None);
        }
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
    /// The root slot running, as root wrote it at boot (`[upgrades] running_slot`).
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
            slot: std::fs::read_to_string(&config.running_slot)
                .ok()
                .map(|slot| slot.trim().to_owned())
                .filter(|slot| slot == "a" || slot == "b"),
        })
    })
    .await
    .map_err(Error::task("reading the upgrade status"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn installed(version: &str) -> UpgradeStatus {
        UpgradeStatus {
            state: UpgradeState::Restarting,
            version: Some(version.into()),
            from_version: "0.1.0".into(),
            slot: "b".into(),
            written: 40,
            total: 40,
            started_at: 1,
            updated_at: 2,
            error: None,
        }
    }

    #[test]
    fn a_status_moves_on_only_for_its_own_release_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status.json");
        // None yet: nothing is made.
        let none = UpgradeStatus::advance(&path, "0.2.0", UpgradeState::OnTrial, None, 3);
        assert_eq!(none.unwrap(), None);
        assert!(!path.exists());
        crate::status_file::write(&path, &installed("0.2.0")).unwrap();
        // Another release's trial leaves it be.
        let other = UpgradeStatus::advance(&path, "0.3.0", UpgradeState::Passed, None, 3);
        assert_eq!(other.unwrap(), None);
        let moved = UpgradeStatus::advance(
            &path,
            "0.2.0",
            UpgradeState::FellBack,
            Some("bad".into()),
            9,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            moved,
            UpgradeStatus {
                state: UpgradeState::FellBack,
                error: Some("bad".into()),
                updated_at: 9,
                ..installed("0.2.0")
            }
        );
        assert_eq!(
            crate::status_file::read::<UpgradeStatus>(&path).unwrap(),
            Some(moved)
        );
        // A later release's extra field does not stop an earlier one from reading it.
        std::fs::write(
            &path,
            serde_json::to_string(&installed("0.2.0"))
                .unwrap()
                .replace('}', r#","later":1}"#),
        )
        .unwrap();
        assert!(
            crate::status_file::read::<UpgradeStatus>(&path)
                .unwrap()
                .is_some()
        );
    }
}
