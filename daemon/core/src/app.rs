//! The running application: what every domain operation needs, each behind its seam (the
//! [`Store`], the HSM's [`KeyStore`] and [`Sealer`], the entropy monitor, the [`Clock`], the
//! plugin [`Registry`]). Only the `lemur` binary chooses the concrete backends.

use crate::auth::throttle::{LoginThrottle, QueueGate};
use crate::auth::token::TokenKeys;
use crate::ca::key_pool::KeyPool;
use crate::ca::key_stock::KeyStock;
use crate::ca::material::SigningCache;
use crate::ca::suffixes::PublicSuffixes;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::plugins::Registry;
use crate::store::Store;
use lemur_entropy::HealthMonitor;
use lemur_hsm::{KeyStore, Sealer};
use std::sync::Arc;

/// Logins that may wait for a password check, per CPU: a few tenths of a second of work each.
const LOGINS_WAITING_PER_CPU: usize = 8;

/// Lemur's default admin user name.
pub const DEFAULT_ADMIN: &str = "lemur";

/// The HSM: asymmetric keys and sealing, usually one PKCS#11 token behind both traits.
pub trait Hsm: KeyStore + Sealer {}

impl<T: KeyStore + Sealer> Hsm for T {}

/// The parts an [`App`] is built from.
pub struct Parts {
    /// The configuration.
    pub config: Config,
    /// The inventory.
    pub store: Arc<dyn Store>,
    /// CA keys and sealing.
    pub hsm: Arc<dyn Hsm>,
    /// Entropy health, gating key generation and random draws.
    pub entropy: Arc<HealthMonitor>,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The installed plugins.
    pub plugins: Registry,
}

/// Everything a domain operation needs.
pub struct App {
    /// The configuration.
    pub config: Config,
    /// The inventory.
    pub store: Arc<dyn Store>,
    /// CA keys and sealing, in the HSM.
    pub hsm: Arc<dyn Hsm>,
    /// Entropy health, gating key generation.
    pub entropy: Arc<HealthMonitor>,
    /// Login tokens.
    pub tokens: TokenKeys,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// The installed plugins.
    pub plugins: Registry,
    /// The `default` rotation policy new certificates get.
    pub(crate) default_rotation_policy: i64,
    /// Authorities' signing material, read once each.
    pub(crate) signing: SigningCache,
    /// Password checks running at once, at most one per CPU: each Argon2 verification takes
    /// 19 MiB and tens of milliseconds, so a login flood must queue rather than exhaust memory
    /// and the blocking threads HSM calls share.
    pub(crate) password_checks: tokio::sync::Semaphore,
    /// How many logins may wait for a password check.
    pub(crate) login_queue: QueueGate,
    /// Failed logins by account name and client address.
    pub(crate) login_throttle: LoginThrottle,
    /// The latest health verdict.
    pub(crate) health: crate::health::HealthCache,
    /// The public suffix list, if installed (CA/Browser Forum compliant issuance needs it).
    pub(crate) suffixes: Option<PublicSuffixes>,
    /// Keys generated ahead of demand (filled by [`crate::ca::key_pool::refill`]).
    pub key_pool: KeyPool,
    /// Keys generated ahead and kept sealed in the database (filled by
    /// [`crate::ca::key_stock::fill`]).
    pub key_stock: KeyStock,
    /// Counters for `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// The CRLs made.
    pub(crate) crls: crate::crl::CrlCache,
}

impl App {
    /// Brings the schema up to date and assembles the application.
    pub async fn new(parts: Parts) -> Result<Self> {
        let Parts {
            config,
            store,
            hsm,
            entropy,
            clock,
            plugins,
        } = parts;
        store.migrate(clock.unix()).await?;
        let default_rotation_policy = store.ensure_rotation_policy("default", 30).await?;
        // Read off the runtime: a locked file is unsealed by the HSM.
        let token_secret = {
            let (hsm, file) = (Arc::clone(&hsm), config.auth.token_secret_file.clone());
            tokio::task::spawn_blocking(move || crate::locked::read(&file, &*hsm))
                .await
                .map_err(Error::task("an HSM call"))??
        };
        let tokens = TokenKeys::new(
            &token_secret,
            config.auth.token_lifetime_minutes,
            Arc::clone(&clock),
        )?;
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let suffixes = match PublicSuffixes::load(&config.names.public_suffix_list) {
            Ok(list) => Some(list),
            Err(error) => {
                log::warn!("{error}: CA/Browser Forum compliant authorities cannot issue");
                None
            }
        };
        Ok(Self {
            key_pool: KeyPool::new(config.keys.ready_targets()),
            key_stock: KeyStock::new(config.keys.stock_targets()),
            metrics: Default::default(),
            crls: Default::default(),
            config,
            store,
            hsm,
            entropy,
            tokens,
            clock,
            plugins,
            default_rotation_policy,
            signing: SigningCache::default(),
            password_checks: tokio::sync::Semaphore::new(cpus),
            login_queue: QueueGate::new(LOGINS_WAITING_PER_CPU * cpus),
            login_throttle: LoginThrottle::default(),
            health: Default::default(),
            suffixes,
        })
    }

    /// Runs a blocking HSM operation off the async runtime.
    pub async fn hsm<T: Send + 'static>(
        &self,
        operation: impl FnOnce(&Arc<dyn Hsm>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let hsm = Arc::clone(&self.hsm);
        tokio::task::spawn_blocking(move || operation(&hsm))
            .await
            .map_err(Error::task("an HSM call"))?
    }

    /// Makes sure the built-in roles exist (idempotent, as `lemur init` must be).
    pub async fn ensure_builtin_roles(&self) -> Result<()> {
        for (name, description) in crate::policy::Role::BUILTIN {
            self.store.ensure_role(name, description).await?;
        }
        Ok(())
    }
}
