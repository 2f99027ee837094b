//! `lemur dev` (in the spirit of `vault server -dev`) and `lemur create_config`.

use super::root_ca::{self, RootCa};
use super::serve::{self, Mode};
use super::token::{self, ADMIN_PASSWORD, HSM_PIN, HSM_SO_PIN, SecretFiles, TOKEN_SECRET};
use super::users;
use lemur_core::app::DEFAULT_ADMIN;
use lemur_core::config::{Config, FrontendConfig, Template};
use lemur_core::files::{create_private_dir, write_private};
use lemur_core::{Error, Result, clock};
use lemur_hsm::Pin;
use std::path::{Path, PathBuf};

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
    for secret in [TOKEN_SECRET, HSM_PIN] {
        SecretFiles(&secrets).ensure(&secret)?;
    }
    let default_url = format!("sqlite://{}", state_dir.join("lemur.db").display());
    let text = Template::new(
        state_dir,
        listen,
        database_url.unwrap_or(&default_url),
        hsm_environment,
    )
    .render();
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

/// The dev token, initialised with fresh PINs on first use (its SO PIN beside the others).
fn ensure_token(config: &Config, secrets: &Path) -> Result<()> {
    token::ensure_token(
        &config.hsm,
        || token::pin(SecretFiles(secrets).ensure(&HSM_SO_PIN)?),
        || Ok(Pin::from_file(&config.hsm.pin_file)?),
    )
}

/// What `lemur dev` was asked for besides the state directory.
pub struct DevOptions {
    /// Listen address.
    pub listen: String,
    /// The admin password's file (generated when absent).
    pub admin_password_file: Option<PathBuf>,
    /// Database URL for a new configuration.
    pub database_url: Option<String>,
    /// How it is served.
    pub transport: Transport,
    /// The web UI's built files, served at `/`.
    pub web_root: Option<PathBuf>,
}

/// How `lemur dev` serves.
pub enum Transport {
    /// Plain HTTP, or a unix socket behind nginx.
    Plain,
    /// HTTPS with this certificate chain and key.
    Https((PathBuf, PathBuf)),
    /// HTTPS with a certificate from the dev CA, a root in the token made on first use: the
    /// daemon issues and renews it as the appliance does nginx's (`[frontend]`).
    DevCa,
}

/// The dev CA, and where its certificate is written for clients to trust.
const DEV_ROOT: RootCa<'static> = RootCa {
    name: "lemur-dev",
    owner: "dev",
    common_name: "Lemur-HSM Dev Root",
    description: "made by `lemur dev` to serve HTTPS",
    validity_years: 5,
    crl_url: None,
};
const DEV_CA_FILE: &str = "dev-ca.pem";

/// `lemur dev`: everything in `state_dir`, created if missing, then the daemon in the foreground.
pub async fn run(state_dir: &Path, options: DevOptions) -> Result<()> {
    create_private_dir(state_dir)?;
    let state_dir = state_dir
        .canonicalize()
        .map_err(Error::io(format!("resolving {}", state_dir.display())))?;
    let softhsm = state_dir.join("softhsm/softhsm2.conf");
    token::softhsm_conf(&softhsm)?;
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
    config.server.web_root = options.web_root.as_deref().map(web_root).transpose()?;
    let secrets = state_dir.join("secrets");
    let password_file = match options.admin_password_file {
        Some(file) => file,
        None => {
            SecretFiles(&secrets).ensure(&ADMIN_PASSWORD)?;
            secrets.join(ADMIN_PASSWORD.name)
        }
    };
    let hsm_config = config.clone();
    tokio::task::spawn_blocking(move || {
        ensure_token(&hsm_config, &hsm_config.state_dir.join("secrets"))
    })
    .await
    .map_err(Error::task("the token set-up"))??;
    if let Transport::Https((certificate, key)) = &options.transport {
        config.server.tls_certificate = Some(certificate.clone());
        config.server.tls_private_key = Some(key.clone());
    }
    serve::preflight(&config_path, &config, Mode::Development)?;
    // After the check of secret files: the daemon writes the dev certificate's key, private.
    if let Transport::DevCa = options.transport {
        let frontend = dev_frontend(&state_dir, &options.listen);
        config.server.tls_certificate = Some(frontend.certificate.clone());
        config.server.tls_private_key = Some(frontend.private_key.clone());
        config.frontend = Some(frontend);
    }
    let (app, keys) = crate::open::app(config, clock::system()).await?;
    users::init_app(&app, &keys, Some(&password_file)).await?;
    let trust = match &app.config.frontend {
        Some(frontend) => {
            let root_file = app.config.state_dir.join(DEV_CA_FILE);
            Some(root_ca::issue_frontend(&app, &DEV_ROOT, frontend, &root_file).await?)
        }
        None => None,
    };
    println!("==================================================================");
    println!(
        " DEVELOPMENT MODE: SoftHSM2 token and secrets in {}",
        state_dir.display()
    );
    println!(" Not for production. Log in as `{DEFAULT_ADMIN}` with the password in");
    println!("   {}", password_file.display());
    if let Some(trust) = &trust {
        println!(" HTTPS certificate from the dev CA, whose root is in");
        println!("   {}", trust.file.display());
        println!(" SHA-256 fingerprint {}", trust.fingerprint);
    }
    println!("==================================================================");
    let ui = app.config.server.web_root.is_some();
    serve::serve_app(std::sync::Arc::new(app), |address| {
        if ui {
            println!("lemur: web UI at {address}/");
        }
        println!("lemur: API at {address}/api/1 (POST /api/1/auth/login)");
    })
    .await
}

/// `--web-root`, checked: a built UI has its `index.html`.
fn web_root(dir: &Path) -> Result<PathBuf> {
    let dir = dir.canonicalize().map_err(Error::io(format!(
        "--web-root {}: build the UI first (cd web && npm ci && npm run build)",
        dir.display()
    )))?;
    if !dir.join("index.html").is_file() {
        return Err(Error::invalid(
            "--web-root",
            format!(
                "{} has no index.html: build the UI first (cd web && npm ci && npm run build)",
                dir.display()
            ),
        ));
    }
    Ok(dir)
}

/// The dev CA's certificate for the addresses `listen` is reached by: loopback's, and the
/// address itself when it is a particular one. (Not `localhost`: a name of one label is no DNS
/// name the issuance checks accept.)
fn dev_frontend(state_dir: &Path, listen: &str) -> FrontendConfig {
    let mut names = vec!["127.0.0.1".to_owned()];
    if let Ok(address) = listen.parse::<std::net::SocketAddr>() {
        let ip = address.ip();
        if !ip.is_unspecified() && !names.contains(&ip.to_string()) {
            names.push(ip.to_string());
        }
    }
    FrontendConfig {
        owner: DEV_ROOT.owner.to_owned(),
        ..FrontendConfig::new(DEV_ROOT.name, names, &state_dir.join("frontend"))
    }
}
