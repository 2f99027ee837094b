//! The appliance's own responses (`/appliance/...`): an upgrade staged and followed, a restore
//! accepted and followed.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /appliance/restore`: a backup root's restore service has checked whole and restores
/// now. The appliance stops its daemon and nginx, restores, and starts them again: sign in
/// again with the restored appliance's credentials, and read `GET /appliance/restore`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreAccepted {
    /// The release that made the backup.
    pub backup_version: String,
    /// When the backup was made (RFC 3339).
    pub backup_created: String,
    /// When the restore was accepted (RFC 3339): `GET /appliance/restore` tells of this one
    /// while its `requestedAt` is this.
    pub requested_at: String,
    /// What happens next.
    pub status: String,
}

/// Where the last restore through the API stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RestoreState {
    /// No restore was asked for through the API on this appliance's state.
    #[default]
    None,
    /// Accepted: the services are stopping, or the archive is being restored.
    Restoring,
    /// Restored: what is running is the backup's.
    Restored,
    /// Failed: what was there before was put back (`error` says why).
    Failed,
}

/// `GET /appliance/restore`: the last restore asked through the API, as root's restore service
/// recorded it. Every field but `state` is absent when it is `none`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplianceRestore {
    /// Where it stands.
    pub state: RestoreState,
    /// The user who asked (on the appliance as it was then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Where the request came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_from: Option<String>,
    /// When it was accepted (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<String>,
    /// When it ended (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The release that made the backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_version: Option<String>,
    /// When the backup was made (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_created: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /appliance/upgrade`: the release running, a bundle waiting to be installed, and how the
/// last upgrade went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplianceUpgrade {
    /// The release running now.
    pub version: String,
    /// The root slot it runs from (`a` or `b`); absent off the appliance's own boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// A bundle was checked and staged, and waits for the appliance to take it up.
    pub staged: bool,
    /// The last upgrade the appliance took up, as it recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<UpgradeRecord>,
}

/// Where an upgrade stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpgradeState {
    /// Being written into the root slot not running (`written` of `total` bytes).
    Installing,
    /// Written: the appliance restarts into it.
    Restarting,
    /// Running on trial: it becomes the release once a boot of it is healthy.
    OnTrial,
    /// A boot of it was healthy: it is the release.
    Passed,
    /// None of its boots was healthy: the release before it runs again.
    FellBack,
    /// The installation failed: nothing changed.
    Failed,
}

/// An upgrade as the appliance recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeRecord {
    /// Where it stands.
    pub state: UpgradeState,
    /// The release installed, known once the whole bundle was checked (absent while it is
    /// installed, and when the installation failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The release running when it began.
    pub from_version: String,
    /// The root slot it went into.
    pub slot: String,
    /// Bytes of the bundle installed so far.
    pub written: u64,
    /// Bytes of the bundle.
    pub total: u64,
    /// When it began (RFC 3339).
    pub started_at: String,
    /// When it was last recorded (RFC 3339).
    pub updated_at: String,
    /// Why it failed or fell back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An appliance upgrade the daemon has checked and staged: root installs it into the inactive
/// root slot and restarts the appliance into it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeStaged {
    /// The release's version.
    pub version: String,
    /// The commit it was built from.
    pub source: String,
    /// What happens next.
    pub status: String,
}
