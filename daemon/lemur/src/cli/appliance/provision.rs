//! `lemur appliance provision`: what an appliance needs before its daemon first starts, made at
//! its first boot: the configuration, the SoftHSM2 token with the PINs `lemur appliance
//! credentials` made, the database with its key-encryption key, built-in roles and admin user,
//! the appliance CA in the token, and the HTTPS certificate nginx serves. Each step looks first
//! whether it is done, so the command may run again after a crash at any point, and at every
//! boot, when it changes nothing.
//!
//! It runs as the daemon's user (lemur-provision.service), never as root: everything it reads,
//! the configuration, SoftHSM2's, the token and the database, that user can write, so running it
//! as root would hand that user root at the next boot. Its secrets come decrypted by systemd
//! from the credentials root made (`$CREDENTIALS_DIRECTORY`), and what the console banner shows
//! it leaves as [`Facts`] for root's `lemur appliance banner` (see `banner.rs`).

use super::banner::{Facts, PASSWORD_CHANGED};
use super::config_update::{self, Additions};
use super::seed::{self, ExternalHsm, Hsm, Network, Seed};
use crate::cli::root_ca::{self, RootCa, Trust};
use crate::cli::token::{self, ADMIN_PASSWORD, HSM_PIN, HSM_SO_PIN};
use lemur_core::app::DEFAULT_ADMIN;
use lemur_core::auth::password;
use lemur_core::config::{
    BackupsConfig, Config, DEFAULT_TOKEN, FrontendConfig, SecretsIn, Template, UpgradesConfig,
};
use lemur_core::files::{check_credential, create_private_dir, is_root, replace_private};
use lemur_core::{App, Error, Result, clock};
use lemur_hsm::{HsmConfig, Pkcs11KeyStore};
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zeroize::Zeroizing;

/// What `lemur appliance provision` is given.
#[derive(clap::Args)]
pub struct Options {
    /// The seed file, read once, when the configuration is written. The ESP is root's alone:
    /// lemur-provision.service hands the seed over as its credential `seed`
    /// (${CREDENTIALS_DIRECTORY}/seed).
    #[arg(long, value_name = "FILE")]
    seed: PathBuf,
    /// The daemon's state directory.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/lemur")]
    state_dir: PathBuf,
    /// SoftHSM2's configuration, written with its token directory beside it when missing;
    /// STATE_DIR/softhsm/softhsm2.conf by default.
    #[arg(long, value_name = "FILE")]
    softhsm_conf: Option<PathBuf>,
    /// Where the daemon listens (nginx connects to the socket).
    #[arg(long, default_value = "unix:/run/lemur/lemur.sock")]
    listen: String,
    /// Exists while this boot is a release's trial (`lemur appliance trial` makes it).
    #[arg(long, value_name = "FILE", default_value = super::trial::ON_TRIAL)]
    on_trial: PathBuf,
}

/// The appliance's SQLite database, in the state directory.
const DATABASE: &str = "lemur.db";
/// The appliance CA's name.
const APPLIANCE_CA: &str = "appliance";
/// The key releases are signed with, on the verified root (`image/build.sh` puts it there).
const RELEASE_KEY: &str = "/usr/share/lemur-hsm/upgrade-key.pem";
/// RSA-2048 keys the appliance keeps generated ahead in its database: a burst of a thousand
/// certificates with server-made keys at the pace of issuance from a CSR, for about 1.3 MB.
const STOCKED_RSA_KEYS: usize = 1024;

/// The marker of the first provisioning's admin user: made once, so that an admin account an
/// operator removed is not made again at the next boot.
const ADMIN_CREATED: &str = "admin-created";

/// `lemur appliance provision`.
pub async fn run(options: &Options) -> Result<()> {
    if is_root() {
        return Err(Error::invalid(
            "user",
            "`lemur appliance provision` runs as the daemon's user (lemur-provision.service has User=lemur), not as root: as root it would load what that user may change",
        ));
    }
    let credentials = Credentials::from_environment()?;
    create_private_dir(&options.state_dir)?;
    let state_dir = options.state_dir.canonicalize().map_err(Error::io(format!(
        "resolving {}",
        options.state_dir.display()
    )))?;
    let config = configuration(options, &state_dir)?;
    crate::open::module_environment(&config)?;
    let hsm = config.hsm.clone();
    let token_credentials = credentials.clone();
    let token_ready = tokio::task::spawn_blocking(move || {
        if uses_softhsm(&hsm) {
            token::ensure_token(
                &hsm,
                || token::pin(token_credentials.read(HSM_SO_PIN.name)?),
                || token::pin(token_credentials.read(HSM_PIN.name)?),
            )
        } else {
            token::check_token(&hsm)
        }
    })
    .await
    .map_err(Error::task("the token set-up"))?;
    if let Err(error) = token_ready {
        forget_unused_config(&config, &state_dir)?;
        return Err(error);
    }
    let frontend = config
        .frontend
        .clone()
        .ok_or_else(|| Error::invalid("frontend", "the appliance's configuration has none"))?;
    let (app, keys) = crate::open::app(config, clock::system()).await?;
    let created = ensure_admin(&app, &keys, &credentials, &state_dir).await?;
    let (url, trust) = certificate(&app, &frontend, &state_dir).await?;
    // An admin just made has its first password: only a later boot needs to look.
    if !created {
        first_password(&app, &credentials, &state_dir).await?;
    }
    app.store.close().await;
    Facts::new(url.clone(), trust.fingerprint.clone())
        .map_err(|reason| Error::invalid("frontend.names", reason))?
        .write(&state_dir)?;
    println!("provisioned: {url}, CA SHA-256 {}", trust.fingerprint);
    Ok(())
}

/// The secrets systemd decrypted for the unit (`LoadCredentialEncrypted=`), in
/// `$CREDENTIALS_DIRECTORY`.
#[derive(Clone)]
struct Credentials(PathBuf);

impl Credentials {
    fn from_environment() -> Result<Self> {
        std::env::var_os("CREDENTIALS_DIRECTORY")
            .map(|dir| Self(PathBuf::from(dir)))
            .ok_or_else(|| {
                Error::invalid(
                    "CREDENTIALS_DIRECTORY",
                    "is not set: run provisioning as systemd does, `systemctl start lemur-provision`, which loads its credentials",
                )
            })
    }

    /// The credential `name` (its first line), closed to others as systemd leaves it.
    fn read(&self, name: &str) -> Result<Zeroizing<String>> {
        let file = self.0.join(name);
        if !file.exists() {
            return Err(Error::invalid(
                name,
                format!(
                    "{} is missing: lemur-credentials.service makes the credential, and lemur-provision.service must load it (LoadCredentialEncrypted={name}:...)",
                    file.display()
                ),
            ));
        }
        check_credential(&file)?;
        let text = Zeroizing::new(
            std::fs::read_to_string(&file)
                .map_err(Error::io(format!("reading {}", file.display())))?,
        );
        Ok(Zeroizing::new(
            text.lines().next().unwrap_or_default().to_owned(),
        ))
    }
}

/// The daemon's configuration, written when missing, and SoftHSM2's when the appliance uses
/// it; the seed is read only then, so that editing it later changes nothing here (the
/// certificate's names and the HSM stay those the configuration says).
fn configuration(options: &Options, state_dir: &Path) -> Result<Config> {
    let softhsm = options
        .softhsm_conf
        .clone()
        .unwrap_or_else(|| state_dir.join("softhsm/softhsm2.conf"));
    let path = state_dir.join("lemur.toml");
    if path.exists() {
        bring_up_to_date(&path, state_dir, &options.on_trial)?;
    } else {
        let seed = seed::load(&options.seed, clock::system().unix()).seed;
        let hsm = match &seed.hsm {
            Hsm::BuiltIn => ConfigHsm::BuiltIn(&softhsm),
            Hsm::External(external) => ConfigHsm::External(external),
            Hsm::Unusable => {
                return Err(Error::invalid(
                    "hsm",
                    "the seed's [hsm] section is wrong (each problem is above): no key is made until it names the HSM's module and token rightly; fix it on the ESP and reboot",
                ));
            }
        };
        write_config(&path, state_dir, hsm, &seed, &options.listen)?;
        config_update::record_all(state_dir)?;
    }
    let config = Config::load(&path)?;
    if uses_softhsm(&config.hsm) {
        token::softhsm_conf(&softhsm)?;
    }
    Ok(config)
}

/// Whether the configuration's HSM is SoftHSM2 (no module named), whose token provisioning
/// makes; any other token its owner made.
fn uses_softhsm(hsm: &HsmConfig) -> bool {
    hsm.module.is_none()
}

/// Removes the configuration when the HSM it names could not be used before anything was
/// made with it (no database yet), so that the next boot reads the seed again: a wrong module
/// or token label is then fixed in the seed, where the operator looks, rather than in a file on
/// the data partition. A network HSM that was only out of reach is found the same way at the
/// next boot, from the same seed.
fn forget_unused_config(config: &Config, state_dir: &Path) -> Result<()> {
    if uses_softhsm(&config.hsm) || state_dir.join(DATABASE).exists() {
        return Ok(());
    }
    let path = state_dir.join("lemur.toml");
    std::fs::remove_file(&path).map_err(Error::io(format!("removing {}", path.display())))?;
    eprintln!(
        "lemur: removed {}: the next boot reads the seed's [hsm] again",
        path.display()
    );
    Ok(())
}

/// The HSM a new configuration names.
enum ConfigHsm<'a> {
    /// SoftHSM2, with its configuration file.
    BuiltIn(&'a Path),
    /// A token its owner made.
    External(&'a ExternalHsm),
}

/// Adds to a configuration an earlier release wrote what this release's has (see
/// `config_update.rs`), unless this release is on trial (`on_trial` exists).
fn bring_up_to_date(path: &Path, state_dir: &Path, on_trial: &Path) -> Result<()> {
    let recorded = config_update::recorded(state_dir)?;
    if Additions::NAMES.iter().all(|name| recorded.contains(*name)) {
        return Ok(());
    }
    if on_trial.exists() {
        println!(
            "kept {} as it is while this release is on trial: the release before it may not read what this one adds",
            path.display()
        );
        return Ok(());
    }
    let text =
        std::fs::read_to_string(path).map_err(Error::io(format!("reading {}", path.display())))?;
    let additions = Additions {
        backups: &BackupsConfig::appliance(),
        stocked_rsa_keys: STOCKED_RSA_KEYS,
    };
    if let Some((updated, added)) = additions.apply(&text, &recorded)? {
        replace_private(path, updated.as_bytes(), None)?;
        println!("updated {}: added {}", path.display(), added.join(", "));
    }
    config_update::record_all(state_dir)
}

/// The configuration, once: listening where nginx connects, SQLite and the token in the state
/// directory, the secrets as systemd credentials, and the front end named after the seed.
fn write_config(
    path: &Path,
    state_dir: &Path,
    hsm: ConfigHsm<'_>,
    seed: &Seed,
    listen: &str,
) -> Result<()> {
    let database_url = format!("sqlite://{}", state_dir.join(DATABASE).display());
    let (environment, hsm_module, hsm_token) = match hsm {
        ConfigHsm::BuiltIn(conf) => (
            vec![(
                "SOFTHSM2_CONF".to_owned(),
                conf.to_string_lossy().into_owned(),
            )],
            None,
            DEFAULT_TOKEN,
        ),
        ConfigHsm::External(external) => (
            external.environment.clone().into_iter().collect(),
            Some(external.module.as_path()),
            external.token.as_str(),
        ),
    };
    let environment: Vec<(&str, &str)> = environment
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let frontend = frontend(seed, state_dir);
    let upgrades = UpgradesConfig::new(Path::new(RELEASE_KEY), &state_dir.join("upgrade"));
    let backups = BackupsConfig::appliance();
    let template = Template {
        secrets: SecretsIn::Credentials,
        trusted_proxies: &["unix"],
        security_team_email: seed.admin_email.as_deref(),
        frontend: Some(&frontend),
        upgrades: Some(&upgrades),
        backups: Some(&backups),
        stocked_rsa_keys: STOCKED_RSA_KEYS,
        hsm_module,
        hsm_token,
        ..Template::new(state_dir, listen, &database_url, &environment)
    };
    replace_private(path, template.render().as_bytes(), None)?;
    println!("wrote {}", path.display());
    Ok(())
}

/// The names the appliance is reached by: its host name when it has a domain, else
/// `HOSTNAME.local`, which mDNS answers (a name of one label is no DNS name a certificate may
/// carry); and its fixed address, if it has one.
fn frontend(seed: &Seed, state_dir: &Path) -> FrontendConfig {
    let mut names = vec![if seed.hostname.contains('.') {
        seed.hostname.clone()
    } else {
        format!("{}.local", seed.hostname)
    }];
    if let Network::Static(fixed) = &seed.network {
        names.push(fixed.address.ip().to_string());
    }
    FrontendConfig::new(APPLIANCE_CA, names, &state_dir.join("frontend"))
}

/// The database's baseline (key-encryption key, built-in roles) and, at the first provisioning
/// only, the admin user with the first password from its credential; whether it made the admin.
async fn ensure_admin(
    app: &App,
    keys: &Arc<Pkcs11KeyStore>,
    credentials: &Credentials,
    state_dir: &Path,
) -> Result<bool> {
    crate::open::ensure_baseline(app, keys).await?;
    let marker = state_dir.join(ADMIN_CREATED);
    if marker.exists() {
        return Ok(false);
    }
    let created =
        lemur_core::users::ensure_admin(app, || credentials.read(ADMIN_PASSWORD.name)).await?;
    if created {
        println!("created the admin user `{DEFAULT_ADMIN}`");
    }
    replace_private(
        &marker,
        format!("The first provisioning made the admin user `{DEFAULT_ADMIN}`; later ones do not make it again.\nRemove this file to have it made at the next boot, with the first password.\n").as_bytes(),
        None,
    )?;
    Ok(created)
}

/// The appliance CA, made on first use and named after the host its CRL is fetched from, and
/// nginx's certificate from it; with the URL the appliance is reached by.
async fn certificate(
    app: &App,
    frontend: &FrontendConfig,
    state_dir: &Path,
) -> Result<(String, Trust)> {
    let host = frontend.names.first().ok_or_else(|| {
        Error::invalid("frontend.names", "the appliance's configuration has none")
    })?;
    let common_name = format!("Lemur-HSM Appliance CA {host}");
    let crl_url = format!("http://{host}/crl/{APPLIANCE_CA}.crl");
    let ca = RootCa {
        name: APPLIANCE_CA,
        owner: "appliance",
        common_name: &common_name,
        description: "the appliance's own CA, made at its first boot; it issues the appliance's HTTPS certificate",
        // Replacing a root means every client trusting it again.
        validity_years: 10,
        crl_url: Some(&crl_url),
    };
    let root_file = state_dir.join("appliance-ca.pem");
    let trust = root_ca::issue_frontend(app, &ca, frontend, &root_file).await?;
    let url = match host.parse::<Ipv6Addr>() {
        Ok(ip) => format!("https://[{ip}]/"),
        Err(_) => format!("https://{host}/"),
    };
    Ok((url, trust))
}

/// Marks the first password changed once it no longer opens the admin account (changed, or
/// the account removed), for the banner to stop showing it; once marked, never checked again.
async fn first_password(app: &App, credentials: &Credentials, state_dir: &Path) -> Result<()> {
    let marker = state_dir.join(PASSWORD_CHANGED);
    if marker.exists() {
        return Ok(());
    }
    let password = credentials.read(ADMIN_PASSWORD.name)?;
    let hash = app
        .store
        .user_by_login(DEFAULT_ADMIN)
        .await?
        .and_then(|login| login.password_hash);
    let opens = match hash {
        Some(hash) => tokio::task::spawn_blocking(move || password::verify(&password, &hash))
            .await
            .map_err(Error::task("checking the admin's first password"))?,
        None => false,
    };
    if !opens {
        replace_private(
            &marker,
            b"The admin's first password no longer opens the account: the console does not show it.\n",
            None,
        )?;
        println!("the admin's first password is no longer in use: the console stops showing it");
    }
    Ok(())
}
