//! `lemur appliance`: the appliance OS image's boot-time commands. The image's root file system is
//! read-only and its data partition is `/var`; the operator's only input is the seed file on the
//! EFI system partition. `apply-seed` turns the seed into the system's settings at every boot;
//! `credentials` (as root), `provision` (as the daemon's user) and `banner` (as root) make the
//! daemon's state at the first boot and check it at every later one; `seed check` tells the
//! operator what is wrong with a seed before they boot it; `upgrade` (as root) installs a release
//! the daemon received into the root slot not running.
//!
//! Privilege is split so that root never loads what the daemon's user can write: root makes the
//! encrypted credentials and the console banner from its own inputs and from two tiny files it
//! checks strictly (see `banner.rs`); all the rest runs as the daemon's user.

mod apply;
mod banner;
mod config_update;
mod credstore;
mod provision;
mod seed;
mod trial;
mod upgrade;

pub use credstore::Credstore;

use crate::cli::backup;
use clap::Subcommand;
use lemur_core::{Error, Result, clock};
use std::path::{Path, PathBuf};

/// `lemur appliance ...`.
#[derive(Subcommand)]
pub enum ApplianceCommand {
    /// The seed file, lemur-appliance.toml.
    Seed {
        #[command(subcommand)]
        command: SeedCommand,
    },
    /// Write the network, time, host name, remote syslog and ssh settings the seed asks for
    /// under DIR (at every boot, as root, before the network). A bad seed stops nothing: its
    /// problems are reported, and safe defaults used instead. A setting that cannot be written
    /// stops none of the others; the command fails once all were tried.
    #[command(name = "apply-seed")]
    ApplySeed {
        /// The seed file (defaults for everything when it is missing).
        #[arg(long, value_name = "FILE")]
        seed: PathBuf,
        /// Where the settings are written: /run on the appliance.
        #[arg(long, value_name = "DIR")]
        run_dir: PathBuf,
        /// Also set the kernel's (transient) host name.
        #[arg(long)]
        set_hostname: bool,
        /// Put the seed's problems and the settings not written on the console's login screen:
        /// an agetty issue file, e.g. /run/issue.d/40-lemur-seed.issue (removed when all is
        /// well).
        #[arg(long, value_name = "FILE")]
        issue_file: Option<PathBuf>,
        /// Have systemd load the units again when a unit drop-in written under the run
        /// directory changed (a network HSM's addresses, which open the daemon's sandbox).
        #[arg(long)]
        reload_units: bool,
    },
    /// Make the appliance's secrets as encrypted systemd credentials in DIR when they are
    /// missing (HSM PIN and SO PIN, login token secret, admin's first password), and check that
    /// those there decrypt. As root, before provisioning; never makes a PIN while the token
    /// may exist.
    Credentials {
        /// The credential store: /var/lib/credstore.encrypted on the appliance.
        #[arg(long, value_name = "DIR")]
        credstore: PathBuf,
        /// The SoftHSM2 token directory, only looked at for whether it holds anything.
        #[arg(
            long,
            value_name = "DIR",
            default_value = "/var/lib/lemur/softhsm/tokens"
        )]
        token_dir: PathBuf,
        /// The seed, for a hardware HSM's user PIN (`[hsm] pin`), which is then removed from it.
        #[arg(long, value_name = "FILE", default_value = "/efi/lemur-appliance.toml")]
        seed: PathBuf,
    },
    /// Make the daemon's state: configuration, SoftHSM2 token, database, admin user, the
    /// appliance CA and nginx's certificate (as the daemon's user, with the credentials in
    /// $CREDENTIALS_DIRECTORY, before lemur.service; safe to run again, and at every boot).
    Provision(provision::Options),
    /// Write the console banner (URL, CA fingerprint, the admin's first password until it is
    /// changed) from what provisioning left in the state directory, checked strictly, and the
    /// admin-password credential. As root, after provisioning.
    Banner {
        /// The daemon's state directory.
        #[arg(long, value_name = "DIR", default_value = "/var/lib/lemur")]
        state_dir: PathBuf,
        /// The credential store holding lemur.admin-password.
        #[arg(long, value_name = "DIR")]
        credstore: PathBuf,
        /// The agetty issue file, e.g. /run/issue.d/50-lemur.issue.
        #[arg(long, value_name = "FILE")]
        issue_file: PathBuf,
        /// Where to write the root slot running (`a` or `b`) for the daemon, whose sandbox
        /// hides the kernel's command line (`[upgrades] running_slot`).
        #[arg(long, value_name = "FILE")]
        slot_file: Option<PathBuf>,
    },
    /// Install a release bundle the daemon staged into the root slot not running, and boot it
    /// next, on trial: three boots to come up healthy, else the running slot boots again. As
    /// root (lemur-upgrade.service); the bundle's signature and every byte are checked again.
    Upgrade(upgrade::Options),
    /// Keep the database across a release's trial boots (as root, before the daemon, at every
    /// boot): in the slot on trial, a snapshot of it from before the new release ran; back in
    /// the previous slot after a failed trial, that snapshot put back if the trial migrated the
    /// database (what the trial wrote kept aside). With --passed (the boot check, once a trial
    /// boot is good): the snapshot removed.
    Trial(trial::Options),
    /// The daemon's user's side of `trial`: the database's snapshot taken, put back or removed.
    #[command(name = "trial-database", hide = true)]
    TrialDatabase {
        #[arg(value_enum)]
        action: trial::DatabaseAction,
    },
    /// Back the appliance up into one archive encrypted under a passphrase: a consistent
    /// snapshot of the database, the HSM token, the configuration and certificates, and the
    /// credentials (HSM PINs, login token secret). As root (over ssh), while it runs.
    Backup {
        /// The archive to write (a new file), or `-` for standard output (ssh appliance
        /// 'lemur appliance backup -o - --passphrase-file F' > backup.lemur).
        #[arg(long, short = 'o', value_name = "FILE")]
        output: PathBuf,
        /// The passphrase (first line of FILE, or of standard input with `-`, at least 12
        /// characters); asked twice on the terminal when absent.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Internal: frames for the daemon (root's backup service, `lemur-backup@.service`).
        #[arg(long, hide = true)]
        framed: bool,
    },
    /// Restore a backup onto this appliance (one freshly flashed and booted, or this one):
    /// stops the daemon, moves its state and credentials aside (/var/lib/lemur.replaced-TIME,
    /// /var/lib/credstore.encrypted.replaced-TIME), restores the archive's, encrypting the
    /// credentials for this machine, and starts the daemon and nginx again. As root.
    Restore {
        /// The archive, or `-` for standard input.
        #[arg(long, short = 'a', value_name = "FILE")]
        archive: PathBuf,
        /// The passphrase (first line of FILE); asked on the terminal when absent.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Internal: root's restore service for the daemon (`lemur-restore@.service`), its
        /// archive kept in DIR until restored.
        #[arg(long, hide = true, value_name = "DIR")]
        served: Option<PathBuf>,
        /// Internal, with --served: the service stopped; a restore it left `restoring` is
        /// recorded as failed.
        #[arg(long, hide = true, requires = "served")]
        abandoned: bool,
    },
}

/// The appliance's daemon user, state and credentials.
const DAEMON_USER: &str = "lemur";
const STATE_DIR: &str = "/var/lib/lemur";
const CREDSTORE: &str = "/var/lib/credstore.encrypted";

/// `lemur appliance seed ...`.
#[derive(Subcommand)]
pub enum SeedCommand {
    /// Print every problem of a seed file (field and what is wrong); exit 1 when there is one.
    Check {
        /// The seed file.
        file: PathBuf,
    },
}

/// Runs an appliance command; `config` is `lemur --config`.
pub async fn run(command: ApplianceCommand, config: &Path) -> Result<()> {
    match command {
        ApplianceCommand::Seed {
            command: SeedCommand::Check { file },
        } => check(&file),
        ApplianceCommand::ApplySeed {
            seed,
            run_dir,
            set_hostname,
            issue_file,
            reload_units,
        } => apply::apply(&apply::Options {
            seed: &seed,
            run_dir: &run_dir,
            set_hostname,
            issue_file: issue_file.as_deref(),
            reload_units,
        }),
        ApplianceCommand::Credentials {
            credstore,
            token_dir,
            seed,
        } => credstore::run(&credstore, &token_dir, &seed),
        ApplianceCommand::Provision(options) => provision::run(&options).await,
        ApplianceCommand::Banner {
            state_dir,
            credstore,
            issue_file,
            slot_file,
        } => banner::run(&state_dir, &credstore, &issue_file, slot_file.as_deref()),
        ApplianceCommand::Upgrade(options) => upgrade::run(&options),
        ApplianceCommand::Trial(options) => trial::run(&options),
        ApplianceCommand::TrialDatabase { action } => trial::run_database(config, action).await,
        ApplianceCommand::Backup {
            output,
            passphrase_file,
            framed,
        } => {
            let options = backup::BackupOptions {
                output,
                passphrase_file,
                credstore: Some(CREDSTORE.into()),
                as_user: Some(DAEMON_USER.into()),
                no_database: false,
                state_dir: Some(STATE_DIR.into()),
                state_only: false,
                framed,
            };
            backup::backup(&Path::new(STATE_DIR).join("lemur.toml"), &options).await
        }
        ApplianceCommand::Restore {
            archive,
            passphrase_file,
            served,
            abandoned,
        } => {
            let options = backup::RestoreOptions {
                archive,
                passphrase_file,
                state_dir: Some(STATE_DIR.into()),
                credstore: Some(CREDSTORE.into()),
                as_user: Some(DAEMON_USER.into()),
                state_only: false,
                served,
                abandoned,
                // An upgrade staged, or on trial: a restore now would cross it (the trial's
                // snapshot and marker are of the state it replaces).
                unless_exists: vec![
                    Path::new(STATE_DIR)
                        .join("upgrade")
                        .join(lemur_core::upgrade::STAGED),
                    trial::MARKER.into(),
                ],
            };
            if options.served.is_none() && !options.abandoned {
                // The last restore through the API is not this one: its status must not make
                // the daemon record that one in the audit log of the state restored here.
                forget_api_restore()?;
            }
            // Provisioning runs again before the daemon (lemur.service requires it): it finds
            // the restored state and writes the console banner for it.
            let config = Path::new(STATE_DIR).join("lemur.toml");
            backup::restore(&config, &options, &["lemur.service", "nginx.service"]).await
        }
    }
}

/// Removes the status of the last restore through the API, before a restore from the shell.
fn forget_api_restore() -> Result<()> {
    let status =
        Path::new(lemur_core::config::RESTORE_SPOOL).join(lemur_core::config::RESTORE_STATUS_NAME);
    match std::fs::remove_file(&status) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(format!("removing {}", status.display()))(error))
        }
        _ => Ok(()),
    }
}

/// `lemur appliance seed check`.
fn check(file: &Path) -> Result<()> {
    let reading = seed::read(file, clock::system().unix())?;
    for problem in &reading.problems {
        println!("{}: {}", problem.field, problem.reason);
    }
    match reading.problems.len() {
        0 => {
            println!("{}: no problems", file.display());
            Ok(())
        }
        count => Err(Error::invalid(
            &file.display().to_string(),
            format!(
                "{count} problem(s); a boot would use instead: {}",
                reading.defaults.join("; ")
            ),
        )),
    }
}
