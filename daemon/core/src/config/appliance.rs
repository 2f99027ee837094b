//! The appliance's own tables: `[upgrades]` and `[backups]`, which only the image writes.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `[upgrades]`: where `POST /api/1/appliance/upgrade` puts a bundle it has checked, for root's
/// `lemur-upgrade.path` to install into the inactive root slot.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpgradesConfig {
    /// The release key bundles must be signed with (PEM public key, on the verified root).
    pub key: PathBuf,
    /// The daemon's spool directory (created 0700).
    pub spool: PathBuf,
    /// The largest bundle accepted.
    #[serde(default = "default_upgrade_max_bytes")]
    pub max_bytes: u64,
    /// The status root's installer and trial keep of the last upgrade. Appliances configured
    /// before it was kept have no such key: theirs is where the image puts it.
    #[serde(default = "default_upgrade_status")]
    pub status: PathBuf,
    /// Where root writes the root slot running at each boot (the daemon's sandbox hides the
    /// kernel's command line, which names it).
    #[serde(default = "default_running_slot")]
    pub running_slot: PathBuf,
}

impl UpgradesConfig {
    /// Bundles signed with the key in `key`, spooled in `spool`, of the default largest size.
    pub fn new(key: &Path, spool: &Path) -> Self {
        Self {
            key: key.to_owned(),
            spool: spool.to_owned(),
            max_bytes: default_upgrade_max_bytes(),
            status: default_upgrade_status(),
            running_slot: default_running_slot(),
        }
    }
}

/// Where the appliance's installer keeps the last upgrade's status.
pub const UPGRADE_STATUS: &str = "/var/lib/lemur-upgrade/status.json";
/// Where the appliance writes the root slot running.
pub const RUNNING_SLOT: &str = "/run/lemur-appliance/slot";
/// Root's backup service on the appliance.
pub const BACKUP_SOCKET: &str = "/run/lemur-backup.sock";
/// Root's restore service on the appliance.
pub const RESTORE_SOCKET: &str = "/run/lemur-restore.sock";
/// The spool of root's restore service on the appliance, and the status it keeps there.
pub const RESTORE_SPOOL: &str = "/var/lib/lemur-restore";
/// The name of the restore status in [`RESTORE_SPOOL`].
pub const RESTORE_STATUS_NAME: &str = "status.json";

fn default_upgrade_status() -> PathBuf {
    UPGRADE_STATUS.into()
}

fn default_running_slot() -> PathBuf {
    RUNNING_SLOT.into()
}

fn default_upgrade_max_bytes() -> u64 {
    2 << 30
}

/// `[backups]`: where root's backup service listens for `POST /api/1/appliance/backup`, and its
/// restore service for `POST /api/1/appliance/restore`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupsConfig {
    /// The backup service's socket (`lemur-backup.socket`).
    pub socket: PathBuf,
    /// The restore service's socket (`lemur-restore.socket`). Appliances configured before
    /// restores came through the API have only `socket`: theirs is where the image puts it.
    #[serde(default = "default_restore_socket")]
    pub restore_socket: PathBuf,
    /// The status file the restore service writes, for `GET /api/1/appliance/restore`.
    #[serde(default = "default_restore_status")]
    pub restore_status: PathBuf,
}

fn default_restore_socket() -> PathBuf {
    RESTORE_SOCKET.into()
}

fn default_restore_status() -> PathBuf {
    Path::new(RESTORE_SPOOL).join(RESTORE_STATUS_NAME)
}

impl BackupsConfig {
    /// Root's services where the appliance image installs them.
    pub fn appliance() -> Self {
        Self {
            socket: BACKUP_SOCKET.into(),
            restore_socket: default_restore_socket(),
            restore_status: default_restore_status(),
        }
    }
}
