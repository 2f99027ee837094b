//! `lemur dev` (in the spirit of `vault server -dev`) and `lemur create_config`.

use super::serve::{self, Mode};
use super::users;
use lemur_core::app::DEFAULT_ADMIN;
use lemur_core::config::{self, Config};
use lemur_core::files::{create_private_dir, random_hex, write_private};
use lemur_core::{Error, Result, clock};
use lemur_hsm::Pin;
use std::path::{Path, PathBuf};

/// The SoftHSM2 token label `dev` creates.
const DEV_TOKEN: &str = "lemur";

/// `lemur create_config`: the configuration file and fresh secrets (token secret, HSM PIN).
pub fn create_config(
    path: &Path,
    state_dir: &Path,
    listen: &str,
    database_url: Option<&str>,
    hsm_environment: &[(&str, &str)],
) -> Result<()> {
    if path.exists() {
        return Err(Error::Conflict(format!(
            "{} exists; move it away first",
            path.display()
        )));
    }
    create_private_dir(state_dir)?;
    let secrets = state_dir.join("secrets");
    create_private_dir(&secrets)?;
    for (name, bytes) in [("token-secret", 32), ("hsm-pin", 12)] {
        let file = secrets.join(name);
        if !file.exists() {
            write_private(&file, random_hex(bytes)?.as_bytes())?;
        }
    }
    let default_url = format!("sqlite://{}", state_dir.join("lemur.db").display());
    let text = config::template(
        state_dir,
        listen,
        database_url.unwrap_or(&default_url),
        hsm_environment,
    );
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(Error::io(format!("creating {}", parent.display())))?;
    }
    write_private(path, text.as_bytes())?;
    println!(
        "wrote {} and secrets in {}",
        path.display(),
        secrets.display()
    );
    Ok(())
}

/// The SoftHSM2 configuration of the dev token directory, created on first use.
fn softhsm_conf(state_dir: &Path) -> Result<PathBuf> {
    let dir = state_dir.join("softhsm");
    create_private_dir(&dir.join("tokens"))?;
    let conf = dir.join("softhsm2.conf");
    if !conf.exists() {
        let text = format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            dir.join("tokens").display()
        );
        write_private(&conf, text.as_bytes())?;
    }
    Ok(conf)
}

/// The dev token, initialised with fresh PINs on first use.
fn ensure_token(config: &Config, secrets: &Path) -> Result<()> {
    let module = config.hsm.module_path();
    let status = lemur_hsm::admin::status(&module, DEV_TOKEN, None)?;
    if status.token.is_some() {
        return Ok(());
    }
    let so_pin_file = secrets.join("hsm-so-pin");
    if !so_pin_file.exists() {
        write_private(&so_pin_file, random_hex(12)?.as_bytes())?;
    }
    let so_pin = Pin::from_file(&so_pin_file)?;
    let user_pin = Pin::from_file(&config.hsm.pin_file)?;
    lemur_hsm::admin::init_token(&module, DEV_TOKEN, &so_pin, &user_pin)?;
    println!("created SoftHSM2 token {DEV_TOKEN:?}");
    Ok(())
}

/// What `lemur dev` was asked for besides the state directory.
pub struct DevOptions {
    /// Listen address.
    pub listen: String,
    /// The admin password's file (generated when absent).
    pub admin_password_file: Option<PathBuf>,
    /// Database URL for a new configuration.
    pub database_url: Option<String>,
    /// Certificate chain and key to serve HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// `lemur dev`: everything in `state_dir`, created if missing, then the daemon in the foreground.
pub async fn run(state_dir: &Path, options: DevOptions) -> Result<()> {
    create_private_dir(state_dir)?;
    let state_dir = state_dir
        .canonicalize()
        .map_err(Error::io(format!("resolving {}", state_dir.display())))?;
    let softhsm = softhsm_conf(&state_dir)?;
    let config_path = state_dir.join("lemur.toml");
    if !config_path.exists() {
        let softhsm = softhsm.to_string_lossy();
        create_config(
            &config_path,
            &state_dir,
            &options.listen,
            options.database_url.as_deref(),
            &[("SOFTHSM2_CONF", &softhsm)],
        )?;
    }
    let mut config = Config::load(&config_path)?;
    // Made before configurations carried the module's environment: the dev token is still here.
    config
        .hsm
        .environment
        .entry("SOFTHSM2_CONF".to_owned())
        .or_insert_with(|| softhsm.to_string_lossy().into_owned());
    crate::open::module_environment(&config)?;
    config.server.listen = options.listen.clone();
    if let Some((certificate, key)) = &options.tls {
        config.server.tls_certificate = Some(certificate.clone());
        config.server.tls_private_key = Some(key.clone());
    }
    let secrets = state_dir.join("secrets");
    let generated_password = secrets.join("admin-password");
    let password_file = match options.admin_password_file {
        Some(file) => file,
        None => {
            if !generated_password.exists() {
                write_private(&generated_password, random_hex(16)?.as_bytes())?;
            }
            generated_password
        }
    };
    let hsm_config = config.clone();
    tokio::task::spawn_blocking(move || {
        ensure_token(&hsm_config, &hsm_config.state_dir.join("secrets"))
    })
    .await
    .map_err(|e| Error::Ca(format!("token set-up failed: {e}")))??;
    serve::preflight(&config_path, &config, Mode::Development)?;
    let (app, keys) = crate::open::app(config, clock::system()).await?;
    users::init_app(&app, &keys, Some(&password_file)).await?;
    println!("==================================================================");
    println!(
        " DEVELOPMENT MODE: SoftHSM2 token and secrets in {}",
        state_dir.display()
    );
    println!(" Not for production. Log in as `{DEFAULT_ADMIN}` with the password in");
    println!("   {}", password_file.display());
    println!("==================================================================");
    serve::serve_app(std::sync::Arc::new(app), |address| {
        println!("lemur: API at {address}/api/1 (POST /api/1/auth/login)");
    })
    .await
}
