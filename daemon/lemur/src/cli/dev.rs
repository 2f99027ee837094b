//! `lemur dev` (in the spirit of `vault server -dev`) and `lemur create_config`.

use super::serve::{self, Mode};
use super::users;
use lemur_core::app::DEFAULT_ADMIN;
use lemur_core::ca::x509;
use lemur_core::config::{self, Config, FrontendConfig};
use lemur_core::files::{create_private_dir, random_hex, write_private};
use lemur_core::policy::Subject;
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
    if lemur_hsm::admin::token_exists(&module, DEV_TOKEN)? {
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

/// The dev CA's name, and where its certificate is written for clients to trust.
const DEV_CA: &str = "lemur-dev";
const DEV_CA_FILE: &str = "dev-ca.pem";

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
    config.server.web_root = options.web_root.as_deref().map(web_root).transpose()?;
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
        Some(frontend) => Some(dev_certificate(&app, frontend).await?),
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
    let dir = state_dir.join("frontend");
    FrontendConfig {
        authority: DEV_CA.to_owned(),
        names,
        certificate: dir.join("chain.pem"),
        private_key: dir.join("key.pem"),
        owner: "dev".to_owned(),
        key_type: "ECCPRIME256V1".to_owned(),
        validity_days: 90,
    }
}

/// The dev CA's root, for a client to trust: where it was written, and its fingerprint.
struct Trust {
    file: PathBuf,
    fingerprint: String,
}

/// Creates the dev CA on first use, has the daemon's certificate issued by it (or finds it
/// current), and writes the root where clients can read it.
async fn dev_certificate(app: &lemur_core::App, frontend: &FrontendConfig) -> Result<Trust> {
    let subject = Subject::System("dev");
    if app.store.authority_by_name(DEV_CA).await?.is_none() {
        let request = serde_json::json!({
            "name": DEV_CA, "owner": "dev", "commonName": "Lemur-HSM Dev Root",
            "type": "root", "keyType": "ECCPRIME256V1", "validityYears": 5,
            "description": "made by `lemur dev` to serve HTTPS",
        });
        let request = serde_json::from_value(request)
            .map_err(|e| Error::Ca(format!("the dev CA's request: {e}")))?;
        let id = lemur_core::authorities::create(app, &subject, request).await?;
        println!("created the dev CA {DEV_CA:?} (authority {id}) in the token");
    }
    lemur_core::frontend::ensure(app, frontend).await?;
    let root = lemur_core::authorities::get(
        app,
        &subject,
        app.store
            .authority_by_name(DEV_CA)
            .await?
            .map(|authority| authority.id)
            .ok_or_else(|| Error::Ca(format!("the authority {DEV_CA} vanished")))?,
    )
    .await?
    .certificate
    .ok_or_else(|| Error::Ca(format!("the authority {DEV_CA} has no certificate")))?;
    let file = app.config.state_dir.join(DEV_CA_FILE);
    std::fs::write(&file, root.body.as_bytes())
        .map_err(Error::io(format!("writing {}", file.display())))?;
    let der = x509::first_certificate(&root.body, "authority")?;
    let fingerprint = x509::sha256_hex(&der)
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).to_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    Ok(Trust { file, fingerprint })
}
