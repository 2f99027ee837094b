//! `lemur lock`, `lemur unlock` and `lemur rotate_kek`: the secrets on disk and in the database,
//! sealed under the HSM's key-encryption key. Safe while the daemon runs: it reads its secret
//! files at start, in either form, and notices a new KEK version at its next seal.

use super::users::CLI;
use lemur_core::config::Config;
use lemur_core::locked::{self, Outcome};
use lemur_core::{Error, Result};
use lemur_hsm::Pkcs11KeyStore;
use std::path::{Path, PathBuf};

/// Which way `lemur lock` and `lemur unlock` go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Seal clear files.
    Lock,
    /// Open locked files.
    Unlock,
}

/// `lemur lock` / `lemur unlock`: every lockable secret file of the configuration, one line
/// each.
pub async fn lock(config_path: &Path, direction: Direction) -> Result<()> {
    let config = Config::load(config_path)?;
    crate::open::module_environment(&config)?;
    tokio::task::spawn_blocking(move || lock_files(&config, direction))
        .await
        .map_err(Error::task("an HSM call"))?
}

fn lock_files(config: &Config, direction: Direction) -> Result<()> {
    let keys = checked_hsm(config)?;
    // systemd credentials: under this unit's directory when run as one, else anywhere systemd
    // puts them (read-only, encrypted at rest by systemd: nothing to lock).
    let credentials: Vec<PathBuf> = std::env::var_os("CREDENTIALS_DIRECTORY")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("/run/credentials")])
        .collect();
    println!(
        "{} (the HSM PIN opens the token and stays as it is: protect it with LoadCredentialEncrypted=)",
        config.hsm.pin_file.display()
    );
    let (credentials, files): (Vec<PathBuf>, Vec<PathBuf>) = config
        .lockable_files()?
        .into_iter()
        .partition(|file| credentials.iter().any(|dir| file.starts_with(dir)));
    for file in credentials {
        println!(
            "{} (a systemd credential: systemd encrypts it)",
            file.display()
        );
    }
    if direction == Direction::Unlock {
        // Every locked file must open before any is changed: one that does not stops the
        // command with the others as they were.
        for file in &files {
            if !file.exists() && locked::sealed_path(file).exists() {
                locked::read(file, &keys)?;
            }
        }
    }
    for file in &files {
        for leftover in locked::remove_leftovers(file)? {
            println!(
                "{} removed (left by an interrupted write)",
                leftover.display()
            );
        }
    }
    for file in files {
        let outcome = match direction {
            Direction::Lock => locked::lock(&file, &keys)?,
            Direction::Unlock => locked::unlock(&file, &keys)?,
        };
        let state = match (direction, outcome) {
            (Direction::Lock, Outcome::Done) => "locked",
            (Direction::Lock, Outcome::AlreadyDone) => "was locked",
            (Direction::Unlock, Outcome::Done) => "unlocked",
            (Direction::Unlock, Outcome::AlreadyDone) => "was not locked",
        };
        println!("{} {state}", file.display());
    }
    Ok(())
}

/// The token, logged in, once the entropy self-test has passed (sealing draws nonces from it).
fn checked_hsm(config: &Config) -> Result<Pkcs11KeyStore> {
    let (keys, entropy) = crate::open::hsm_and_entropy(config)?;
    let report = entropy.check();
    match report.reason {
        None => Ok(keys),
        Some(reason) => Err(lemur_entropy::Error::Unhealthy { reason }.into()),
    }
}

/// `lemur rotate_kek`: a new KEK version in the token (or, with `reseal_only`, the newest one
/// there, to finish a rotation that left keys behind), then every stored private key and locked
/// file sealed again under it.
pub async fn rotate_kek(config_path: &Path, reseal_only: bool) -> Result<()> {
    let config = Config::load(config_path)?;
    let files = config.lockable_files()?;
    let (app, keys) = crate::open::app(config, lemur_core::clock::system()).await?;
    let kek = tokio::task::spawn_blocking(move || -> Result<_> {
        if !reseal_only {
            return Ok(keys.rotate_kek()?);
        }
        keys.kek_versions()?
            .pop()
            .ok_or_else(|| Error::invalid("kek", "the token holds no KEK: run `lemur init`"))
    })
    .await
    .map_err(Error::task("an HSM call"))??;
    if reseal_only {
        println!("sealing under {} (version {})", kek.uri, kek.version);
    } else {
        println!("created {} (version {})", kek.uri, kek.version);
    }
    let rotation = lemur_core::kek::reseal_everything(&app, &CLI, kek.version, &files).await;
    app.store.close().await;
    let rotation = rotation?;
    println!(
        "sealed again under version {}: {} private keys",
        rotation.version, rotation.private_keys
    );
    for file in &rotation.files {
        println!(
            "sealed again under version {}: {}",
            rotation.version,
            file.display()
        );
    }
    println!("older versions stay in the token, so backups sealed under them still open");
    for ((holder, id), reason) in &rotation.failed {
        eprintln!(
            "{} {id}: its private key did not open: {reason}",
            holder.noun()
        );
    }
    if rotation.left_behind == 0 {
        return Ok(());
    }
    Err(Error::Ca(format!(
        "{} private keys are still under an older version ({} did not open, listed above): \
         run `lemur rotate_kek --reseal-only` to try them again",
        rotation.left_behind,
        rotation.failed.len()
    )))
}
