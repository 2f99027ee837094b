//! `lemur appliance trial`: the database across a release's trial boots. A new release may
//! migrate the database when its daemon starts; if that release then fails its trial, the
//! previous one boots again and would find a schema it does not know (and refuses it). So:
//! - the installer (`lemur appliance upgrade`) leaves a marker naming the slot on trial, before
//!   it writes that slot's boot entry;
//! - at every boot, before the daemon, `lemur appliance trial` (root) reads the marker. In the
//!   slot on trial, the daemon's user takes a snapshot of the database (once: the first try's
//!   is the one from before the new release ran). In the other slot, the trial has failed: if
//!   the trial's release migrated the database, it is moved aside
//!   (`lemur.db.failed-trial-TIME`) and the snapshot put back, so the previous release runs on
//!   the data it knows; otherwise the database stays as it is, writes made during the trial
//!   included. The marker then goes;
//! - once a boot on trial is good (`lemur-boot-check`), `lemur appliance trial --passed` removes
//!   the marker and the snapshot.
//!
//! The marker is root's (in a directory of root's); the database is only ever opened by the
//! daemon's user, through a child process (`lemur appliance trial-database`).

use super::upgrade::Slot;
use crate::cli::backup::{as_user, finish_child};
use clap::ValueEnum;
use lemur_core::config::Config;
use lemur_core::files::{ensure_private_dir, replace_private, sync_parent};
use lemur_core::upgrade::status::{UpgradeState, UpgradeStatus};
use lemur_core::{Error, Result, clock};
use std::path::{Path, PathBuf};

/// Where the installer leaves the marker.
pub const MARKER: &str = "/var/lib/lemur-upgrade/trial";
/// The status of the last upgrade, which the installer starts and the trial carries on, for
/// the daemon (`[upgrades] status`; the directory is setgid to its group).
pub const STATUS: &str = lemur_core::config::UPGRADE_STATUS;
/// Made for the rest of a boot that is a release's trial, where the daemon's user can see it
/// (provisioning then leaves the configuration as the previous release can read it).
pub const ON_TRIAL: &str = "/run/lemur-on-trial";
/// The snapshot, in the upgrade spool (which backups leave out).
const SNAPSHOT: &str = "upgrade/before-trial.db";

/// `lemur appliance trial`.
#[derive(clap::Args)]
pub struct Options {
    /// The marker the installer leaves.
    #[arg(long, value_name = "FILE", default_value = MARKER)]
    marker: PathBuf,
    /// The running kernel's command line, which names the running slot (lemur.slot=).
    #[arg(long, value_name = "FILE", default_value = "/proc/cmdline")]
    cmdline: PathBuf,
    /// The daemon's configuration (in its state directory on the appliance).
    #[arg(long, value_name = "FILE", default_value = "/var/lib/lemur/lemur.toml")]
    daemon_config: PathBuf,
    /// The daemon's user, which alone opens the database.
    #[arg(long, value_name = "USER", default_value = "lemur")]
    user: String,
    /// This boot, on trial, is good: forget the marker and the snapshot.
    #[arg(long)]
    passed: bool,
    /// What is made for the rest of a boot on trial.
    #[arg(long, value_name = "FILE", default_value = ON_TRIAL)]
    on_trial: PathBuf,
    /// The upgrade's status, for the daemon.
    #[arg(long, value_name = "FILE", default_value = STATUS)]
    status: PathBuf,
}

/// The marker: which slot is on trial with which release.
pub fn write_marker(marker: &Path, slot: Slot, version: &str) -> Result<()> {
    if let Some(dir) = marker.parent() {
        ensure_private_dir(dir)?;
    }
    // Durable, directory included, before the entry that starts the trial is written.
    replace_private(marker, format!("{slot} {version}\n").as_bytes(), None)
}

/// The marker's slot and release, if there is one.
fn read_marker(marker: &Path) -> Result<Option<(Slot, String)>> {
    let text = match std::fs::read_to_string(marker) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(Error::io(format!("reading {}", marker.display()))(error)),
    };
    let mut words = text.split_whitespace();
    let slot = words
        .next()
        .map(|slot| Slot::running(&format!("lemur.slot={slot}")))
        .transpose()?;
    match (slot, words.next()) {
        (Some(slot), Some(version)) => Ok(Some((slot, version.to_owned()))),
        _ => Err(Error::invalid(
            "marker",
            format!(
                "{} is not \"SLOT VERSION\": remove it (the upgrade it stood for is over)",
                marker.display()
            ),
        )),
    }
}

/// `lemur appliance trial`.
pub fn run(options: &Options) -> Result<()> {
    let Some((slot, version)) = read_marker(&options.marker)? else {
        return Ok(());
    };
    let cmdline = std::fs::read_to_string(&options.cmdline)
        .map_err(Error::io(format!("reading {}", options.cmdline.display())))?;
    let on_trial = Slot::running(&cmdline)? == slot;
    if options.passed {
        // Only the slot on trial passes it; the other one's boots say nothing of it.
        if !on_trial {
            return Ok(());
        }
        database(options, DatabaseAction::Forget)?;
        remove_marker(
            &options.marker,
            &format!("release {version} passed its trial"),
        )?;
        tell(options, &version, UpgradeState::Passed, None);
        return Ok(());
    }
    if on_trial {
        println!(
            "release {version} is on trial in slot {slot}: keeping the database as it was before it"
        );
        replace_private(
            &options.on_trial,
            format!("{slot} {version}\n").as_bytes(),
            None,
        )?;
        database(options, DatabaseAction::Snapshot)?;
        tell(options, &version, UpgradeState::OnTrial, None);
        return Ok(());
    }
    let failed =
        format!("release {version} failed its trial in slot {slot}: this slot boots again");
    println!("{failed}");
    database(options, DatabaseAction::RollBack)?;
    remove_marker(&options.marker, "the trial is over")?;
    tell(
        options,
        &version,
        UpgradeState::FellBack,
        Some(format!(
            "{failed}: none of its boots came up healthy (the daemon ready, nginx serving)"
        )),
    );
    Ok(())
}

/// Moves the status of the upgrade to `version` on, if the installer left one. Best effort: a
/// record the daemon shows is never worth a boot (the trial's own work is done by now).
fn tell(options: &Options, version: &str, state: UpgradeState, error: Option<String>) {
    let now = clock::system().unix();
    if let Err(error) = UpgradeStatus::advance(&options.status, version, state, error, now) {
        eprintln!("lemur: the upgrade's status was not updated: {error}");
    }
}

fn remove_marker(marker: &Path, why: &str) -> Result<()> {
    std::fs::remove_file(marker).map_err(Error::io(format!("removing {}", marker.display())))?;
    println!("{why}: removed {}", marker.display());
    Ok(())
}

/// Runs `lemur appliance trial-database ACTION` as the daemon's user.
fn database(options: &Options, action: DatabaseAction) -> Result<()> {
    let name = action
        .to_possible_value()
        .map(|value| value.get_name().to_owned())
        .unwrap_or_default();
    let what = format!("lemur appliance trial-database {name}");
    let child = as_user(&options.user, &options.daemon_config)?
        .args(["appliance", "trial-database", &name])
        .spawn()
        .map_err(Error::io(format!("starting {what}")))?;
    finish_child(child, &what)
}

/// What `lemur appliance trial-database` does, as the daemon's user.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum DatabaseAction {
    /// Take the snapshot, unless an earlier try of this trial took it.
    Snapshot,
    /// The trial failed: put the snapshot back if the trial migrated the database.
    RollBack,
    /// The trial passed: remove the snapshot.
    Forget,
}

/// `lemur appliance trial-database`.
pub async fn run_database(config_path: &Path, action: DatabaseAction) -> Result<()> {
    let config = Config::load_unresolved(config_path)?;
    let Some(database) = lemur_store::sqlite_file(&config.database.url)? else {
        println!("the database is not SQLite: nothing to keep across the trial");
        return Ok(());
    };
    let snapshot = config.state_dir.join(SNAPSHOT);
    match action {
        DatabaseAction::Snapshot => take(&config.database.url, &snapshot).await,
        DatabaseAction::RollBack => roll_back(&config.database.url, &database, &snapshot).await,
        DatabaseAction::Forget => remove(&snapshot),
    }
}

async fn take(url: &str, snapshot: &Path) -> Result<()> {
    if snapshot.exists() {
        println!(
            "{} is there from the trial's first boot",
            snapshot.display()
        );
        return Ok(());
    }
    if let Some(dir) = snapshot.parent() {
        ensure_private_dir(dir)?;
    }
    // Complete and on disk, or absent: a snapshot cut short by a crash is never taken for one
    // (VACUUM INTO does not sync what it writes).
    let partial = snapshot.with_extension("db.partial");
    remove(&partial)?;
    lemur_store::snapshot_sqlite(url, &partial).await?;
    std::fs::File::open(&partial)
        .and_then(|file| file.sync_all())
        .map_err(Error::io(format!("syncing {}", partial.display())))?;
    std::fs::rename(&partial, snapshot)
        .map_err(Error::io(format!("naming {}", snapshot.display())))?;
    sync_parent(snapshot)?;
    println!(
        "kept the database as it was before the trial in {}",
        snapshot.display()
    );
    Ok(())
}

async fn roll_back(url: &str, database: &Path, snapshot: &Path) -> Result<()> {
    if !snapshot.exists() {
        println!("the trial took no snapshot, so it never reached the database: it stays");
        return Ok(());
    }
    // A roll-back a crash cut short (the database moved aside, the snapshot not yet in its
    // place) is finished; otherwise the snapshot goes back only over a database the trial's
    // release migrated.
    let interrupted = !database.exists();
    if !interrupted && !lemur_store::sqlite_is_from_a_later_release(url).await? {
        println!("the trial did not migrate the database: it stays, with what the trial wrote");
        return remove(snapshot);
    }
    let aside = format!("failed-trial-{}", clock::system().unix());
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", database.display()));
        let to = PathBuf::from(format!("{}.{aside}{suffix}", database.display()));
        match std::fs::rename(&from, &to) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(Error::io(format!("moving {} aside", from.display()))(error)),
        }
    }
    std::fs::rename(snapshot, database)
        .map_err(Error::io(format!("putting {} back", snapshot.display())))?;
    sync_parent(database)?;
    sync_parent(snapshot)?;
    println!(
        "the trial's release had migrated the database: it is back as it was before the trial; what the trial wrote is in {}.{aside}",
        database.display()
    );
    Ok(())
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(Error::io(format!("removing {}", path.display()))(error)),
    }
}
