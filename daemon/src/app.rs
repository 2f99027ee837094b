//! The running application: configuration, store, HSM key store, entropy monitor and token keys,
//! opened in the order that lets each failure say what is wrong.

use crate::auth::token::TokenKeys;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::store::Store;
use lemur_entropy::{DeviceSource, HealthMonitor};
use lemur_hsm::Pkcs11KeyStore;
use std::sync::Arc;

/// Built-in roles created by `lemur init`, with what each may do.
pub const BUILTIN_ROLES: [(&str, &str); 4] = [
    ("admin", "Full administrative access"),
    (
        "operator",
        "Issue and manage certificates on authorities they hold a role on",
    ),
    ("read-only", "Read the inventory; change nothing"),
    (
        "global_cert_issuer",
        "Issue for any domain without domain authorization",
    ),
];

/// Lemur's default admin user name.
pub const DEFAULT_ADMIN: &str = "lemur";

/// Everything a request handler or operator command needs.
pub struct App {
    /// The configuration.
    pub config: Config,
    /// The inventory.
    pub store: Store,
    /// CA keys and sealing, in the HSM.
    pub keys: Arc<Pkcs11KeyStore>,
    /// Entropy health, gating key generation.
    pub entropy: Arc<HealthMonitor>,
    /// Login tokens.
    pub tokens: TokenKeys,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The `default` rotation policy new certificates get.
    pub default_rotation_policy: i64,
    /// Authorities' signing material, read once each.
    pub signing: crate::ca::material::SigningCache,
    /// Password checks running at once, at most one per CPU: each Argon2 verification takes
    /// 19 MiB and tens of milliseconds, so a login flood must queue rather than exhaust memory
    /// and the blocking threads HSM calls share.
    pub password_checks: tokio::sync::Semaphore,
}

impl App {
    /// Connects the database (applying migrations), opens the HSM, runs the entropy self-test.
    pub async fn open(config: Config, clock: Arc<dyn Clock>) -> Result<Self> {
        let store = Store::connect(&config.database, Arc::clone(&clock)).await?;
        store.migrate().await?;
        let default_rotation_policy = store.ensure_rotation_policy("default", 30).await?;
        let hsm_config = config.hsm.clone();
        let devices = config.entropy.devices.clone();
        let (keys, entropy) = tokio::task::spawn_blocking(move || -> Result<_> {
            let entropy = Arc::new(HealthMonitor::with_os_source());
            let keys = Pkcs11KeyStore::open(&hsm_config, Arc::clone(&entropy))?;
            entropy.add_source(keys.rng_source());
            for device in devices {
                entropy.add_source(Arc::new(DeviceSource::new(device)));
            }
            let report = entropy.check();
            if let Some(reason) = &report.reason {
                log::error!("entropy self-test failed: {reason}; key generation is refused until a re-check passes");
            }
            Ok((Arc::new(keys), entropy))
        })
        .await
        .map_err(|e| Error::Ca(format!("HSM start-up task failed: {e}")))??;
        let tokens = TokenKeys::load(
            &config.auth.token_secret_file,
            config.auth.token_lifetime_minutes,
            Arc::clone(&clock),
        )?;
        Ok(Self {
            config,
            store,
            keys,
            entropy,
            tokens,
            clock,
            default_rotation_policy,
            signing: Default::default(),
            password_checks: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
        })
    }

    /// Runs a blocking HSM operation off the async runtime.
    pub async fn hsm<T: Send + 'static>(
        &self,
        operation: impl FnOnce(&Arc<Pkcs11KeyStore>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let keys = Arc::clone(&self.keys);
        tokio::task::spawn_blocking(move || operation(&keys))
            .await
            .map_err(|e| Error::Ca(format!("HSM task failed: {e}")))?
    }

    /// Makes sure the key-encryption key, the built-in roles and the default rotation policy exist
    /// (idempotent, as `lemur init` must be).
    pub async fn ensure_baseline(&self) -> Result<()> {
        self.hsm(|keys| {
            if keys.kek_versions()?.is_empty() {
                keys.create_kek()?;
                log::info!("created the key-encryption key in the HSM");
            }
            Ok(())
        })
        .await?;
        for (name, description) in BUILTIN_ROLES {
            self.store.ensure_role(name, description).await?;
        }
        Ok(())
    }
}
