//! Wiring: the application from a configuration, each part opened in the order that lets its
//! failure say what is wrong and that the next part needs (HSM and entropy first, since they
//! unseal locked secret files such as the database password; then the database; then token
//! keys).

use lemur_core::clock::Clock;
use lemur_core::config::Config;
use lemur_core::plugins::Registry;
use lemur_core::plugins::hsm_issuer::HsmIssuer;
use lemur_core::plugins::offline_issuer::OfflineIssuer;
use lemur_core::{App, Error, Parts, Result};
use lemur_entropy::{DeviceSource, HealthMonitor};
use lemur_hsm::Pkcs11KeyStore;
use lemur_store::SqlStore;
use std::os::unix::process::CommandExt;
use std::sync::Arc;

/// The installed plugins.
fn plugins() -> Registry {
    Registry::default()
        .with_issuer(Arc::new(HsmIssuer::default()))
        .with_issuer(Arc::new(OfflineIssuer::default()))
}

/// Makes sure this process has the environment the PKCS#11 module of `config` reads when it
/// loads (`[hsm.environment]`), re-executing the same command with it when not: modules such as
/// SoftHSM2 read their configuration path once, at load time, so it must be there from the start.
pub fn module_environment(config: &Config) -> Result<()> {
    let missing = config.hsm.missing_environment();
    if missing.is_empty() {
        return Ok(());
    }
    let program = std::env::current_exe().map_err(Error::io("finding this program"))?;
    let error = std::process::Command::new(program)
        .args(std::env::args_os().skip(1))
        .envs(missing)
        .exec();
    Err(Error::io("re-executing with the HSM module's environment")(
        error,
    ))
}

/// The key store, logged in, and an entropy monitor over every random source the configuration
/// has: the kernel's, the token's and `[entropy] devices`; nothing checked yet. Blocking.
pub fn hsm_and_entropy(config: &Config) -> Result<(Pkcs11KeyStore, Arc<HealthMonitor>)> {
    let entropy = Arc::new(HealthMonitor::with_os_source());
    let mut hsm = config.hsm.clone();
    if hsm.pool_size.is_none() && !config.keys.stock_targets().is_empty() {
        // The key stock's thread holds a session while it makes a key at the lowest priority,
        // which under load can take long: one session more, so requests keep one per CPU.
        hsm.pool_size = Some(hsm.pool_size() + 1);
    }
    let keys = Pkcs11KeyStore::open(&hsm, Arc::clone(&entropy))?;
    entropy.add_source(keys.rng_source());
    for device in &config.entropy.devices {
        entropy.add_source(Arc::new(DeviceSource::new(device.clone())));
    }
    Ok((keys, entropy))
}

/// The database, the HSM (with its KEK checked or created when `baseline`), the entropy monitor
/// after its self-test, and the application over them.
pub async fn app(config: Config, clock: Arc<dyn Clock>) -> Result<(App, Arc<Pkcs11KeyStore>)> {
    module_environment(&config)?;
    let (keys, entropy, password) = tokio::task::spawn_blocking({
        let config = config.clone();
        move || -> Result<_> {
            let (keys, entropy) = hsm_and_entropy(&config)?;
            let report = entropy.check();
            if let Some(reason) = &report.reason {
                log::error!(
                    "entropy self-test failed: {reason}; key generation is refused until a re-check passes"
                );
            }
            let password = database_password(&config, &keys)?;
            Ok((Arc::new(keys), entropy, password))
        }
    })
    .await
    .map_err(Error::task("the HSM start-up"))??;
    let store =
        SqlStore::connect(&config.database, password.as_deref().map(|p| p.as_str())).await?;
    let app = App::new(Parts {
        config,
        store: Arc::new(store),
        hsm: Arc::clone(&keys) as Arc<dyn lemur_core::app::Hsm>,
        entropy,
        clock,
        plugins: plugins(),
    })
    .await?;
    Ok((app, keys))
}

/// The database password from `database.password_file`, clear or locked, without its final
/// newline.
fn database_password(
    config: &Config,
    keys: &Pkcs11KeyStore,
) -> Result<Option<zeroize::Zeroizing<String>>> {
    let Some(file) = &config.database.password_file else {
        return Ok(None);
    };
    let bytes = lemur_core::locked::read(file, keys)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::invalid("database.password_file", "is not UTF-8 text"))?;
    Ok(Some(zeroize::Zeroizing::new(
        text.trim_end_matches(['\n', '\r']).to_owned(),
    )))
}

/// Makes sure the key-encryption key and the built-in roles exist (idempotent, as `lemur init`
/// must be).
pub async fn ensure_baseline(app: &App, keys: &Arc<Pkcs11KeyStore>) -> Result<()> {
    let keys = Arc::clone(keys);
    tokio::task::spawn_blocking(move || -> Result<()> {
        if keys.kek_versions()?.is_empty() {
            keys.create_kek()?;
            log::info!("created the key-encryption key in the HSM");
        }
        Ok(())
    })
    .await
    .map_err(Error::task("an HSM call"))??;
    app.ensure_builtin_roles().await
}
