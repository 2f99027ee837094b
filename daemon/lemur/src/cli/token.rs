//! The SoftHSM2 token and the secrets an installation generates, shared by `lemur dev` (plain
//! files beside the token) and the appliance (encrypted systemd credentials, made by `lemur
//! appliance credentials` and used by `lemur appliance provision`). Each is made on first use
//! and found again on every later run, so these commands may be run again after a crash at any
//! point.

use lemur_core::config;
use lemur_core::files::{create_private_dir, random_hex, replace_private};
use lemur_core::{Error, Result};
use lemur_hsm::{HsmConfig, Pin};
use std::path::Path;
use zeroize::Zeroizing;

/// A secret an installation generates once: its name (as a file or a credential) and how many
/// random bytes it holds, hex-encoded.
pub struct Generated {
    /// The file or credential name.
    pub name: &'static str,
    bytes: usize,
}

/// The token's user PIN, which the daemon logs in with.
pub const HSM_PIN: Generated = Generated {
    name: config::HSM_PIN,
    bytes: 12,
};

/// The token's security officer PIN. Kept, never given to the daemon (on the appliance only to
/// provisioning, whose credentials systemd removes when it has finished): it is what sets a
/// user PIN (`C_InitPIN`), so it finishes a token whose initialisation a crash cut short and
/// gives a new user PIN to a token whose one was lost, without losing the keys in it.
pub const HSM_SO_PIN: Generated = Generated {
    name: "hsm-so-pin",
    bytes: 12,
};

/// The HS256 login token signing secret.
pub const TOKEN_SECRET: Generated = Generated {
    name: config::TOKEN_SECRET,
    bytes: 32,
};

/// The admin user's first password, until its owner sets another.
pub const ADMIN_PASSWORD: Generated = Generated {
    name: "admin-password",
    bytes: 16,
};

impl Generated {
    /// A fresh value.
    pub fn generate(&self) -> Result<Zeroizing<String>> {
        random_hex(self.bytes)
    }

    /// The secret in the plain file `file` (its first line), written there (0600, whole or not
    /// at all) when missing.
    pub fn ensure_file(&self, file: &Path) -> Result<Zeroizing<String>> {
        if file.exists() {
            let text = Zeroizing::new(
                std::fs::read_to_string(file)
                    .map_err(Error::io(format!("reading {}", file.display())))?,
            );
            return Ok(Zeroizing::new(
                text.lines().next().unwrap_or_default().to_owned(),
            ));
        }
        let value = self.generate()?;
        replace_private(file, value.as_bytes(), None)?;
        Ok(value)
    }
}

/// Plain 0600 files in a private directory, for development: the secrets sit next to the token.
pub struct SecretFiles<'a>(pub &'a Path);

impl SecretFiles<'_> {
    /// The secret, generated and stored first when it is not there yet: stored before it is
    /// used, so a crash never leaves a token or a database behind whose secret was lost.
    pub fn ensure(&self, secret: &Generated) -> Result<Zeroizing<String>> {
        secret.ensure_file(&self.0.join(secret.name))
    }
}

/// A PIN from a generated secret.
pub fn pin(value: Zeroizing<String>) -> Result<Pin> {
    Pin::new(value).map_err(|reason| Error::invalid("PIN", reason))
}

/// Writes the SoftHSM2 configuration `conf` when missing (whole or not at all: a half-written
/// one would load no token), with its token directory beside it (0700).
pub fn softhsm_conf(conf: &Path) -> Result<()> {
    let tokens = conf.parent().unwrap_or(Path::new(".")).join("tokens");
    create_private_dir(&tokens)?;
    if !conf.exists() {
        let text = format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        );
        replace_private(conf, text.as_bytes(), None)?;
    }
    Ok(())
}

/// Makes sure the token of `hsm` exists with its user PIN set: initialised with both PINs when
/// missing, its user PIN set when its initialisation stopped before that. Blocking.
pub fn ensure_token(
    hsm: &HsmConfig,
    so_pin: impl FnOnce() -> Result<Pin>,
    user_pin: impl FnOnce() -> Result<Pin>,
) -> Result<()> {
    let module = hsm.module_path();
    let label = &hsm.token;
    match lemur_hsm::admin::find(&module, label)? {
        None => {
            lemur_hsm::admin::init_token(&module, label, &so_pin()?, &user_pin()?)?;
            println!("created the HSM token {label:?}");
        }
        Some(token) if !token.user_pin_initialized => {
            lemur_hsm::admin::init_user_pin(&module, label, &so_pin()?, &user_pin()?)?;
            println!(
                "set the user PIN of the HSM token {label:?}, whose initialisation had stopped"
            );
        }
        Some(_) => {}
    }
    Ok(())
}

/// Checks that the token of `hsm`, which its owner made with the HSM vendor's tools, is there
/// with its user PIN set: never initialised here, since that would erase whatever it holds.
/// Blocking.
pub fn check_token(hsm: &HsmConfig) -> Result<()> {
    let module = hsm.module_path();
    let label = &hsm.token;
    match lemur_hsm::admin::find(&module, label)? {
        None => Err(Error::invalid(
            "hsm.token",
            format!(
                "the HSM (module {}) has no token labelled {label:?}: initialise it with the HSM vendor's tools, or name the token it has",
                module.display()
            ),
        )),
        Some(token) if !token.user_pin_initialized => Err(Error::invalid(
            "hsm.token",
            format!("the token {label:?} has no user PIN yet: set one with the HSM vendor's tools"),
        )),
        Some(_) => Ok(()),
    }
}
