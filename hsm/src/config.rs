//! How the daemon and the admin CLI find the HSM: module, token label, PIN file, pool size.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where SoftHSM2's module is on Debian (multiarch path first, then the compatibility link).
pub const DEFAULT_MODULE_PATHS: [&str; 3] = [
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/softhsm/libsofthsm2.so",
];

/// The `[hsm]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsmConfig {
    /// The PKCS#11 module; SoftHSM2's Debian path when absent.
    #[serde(default)]
    pub module: Option<PathBuf>,
    /// The token label.
    #[serde(default = "default_token")]
    pub token: String,
    /// File holding the user PIN (a systemd credential in production).
    pub pin_file: PathBuf,
    /// Sessions in the pool; the number of CPUs when absent.
    #[serde(default)]
    pub pool_size: Option<usize>,
    /// Family label of the key-encryption keys (`{kek_label}-v{n}` in the token).
    #[serde(default = "default_kek_label")]
    pub kek_label: String,
    /// How long a caller waits for a free session before giving up, in seconds.
    #[serde(default = "default_checkout_timeout")]
    pub checkout_timeout_secs: u64,
    /// Environment variables the PKCS#11 module reads when it loads (SoftHSM2's
    /// `SOFTHSM2_CONF`, a network HSM client's configuration path): every command that opens
    /// the token sets them first, so the configuration alone says how to reach the token.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
}

fn default_token() -> String {
    "lemur".to_owned()
}

fn default_kek_label() -> String {
    "lemur-kek".to_owned()
}

fn default_checkout_timeout() -> u64 {
    30
}

impl HsmConfig {
    /// A configuration for `token` with its PIN in `pin_file` and every other setting defaulted.
    pub fn new(token: impl Into<String>, pin_file: impl Into<PathBuf>) -> Self {
        Self {
            module: None,
            token: token.into(),
            pin_file: pin_file.into(),
            pool_size: None,
            kek_label: default_kek_label(),
            checkout_timeout_secs: default_checkout_timeout(),
            environment: BTreeMap::new(),
        }
    }

    /// The module path to load.
    pub fn module_path(&self) -> PathBuf {
        resolve_module(self.module.as_deref())
    }

    /// The pool size to use.
    pub fn pool_size(&self) -> usize {
        self.pool_size
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    /// The variables of [`HsmConfig::environment`] that this process's environment lacks or
    /// holds with another value: the module must be loaded in a process that has them.
    pub fn missing_environment(&self) -> Vec<(&str, &str)> {
        self.environment
            .iter()
            .filter(|(name, value)| {
                std::env::var_os(name.as_str()).is_none_or(|current| current != value.as_str())
            })
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect()
    }

    /// The checkout timeout.
    pub fn checkout_timeout(&self) -> Duration {
        Duration::from_secs(self.checkout_timeout_secs)
    }
}

/// The configured module, else the first SoftHSM2 path that exists, else the last default (so the
/// "not found" error names a real candidate).
pub fn resolve_module(configured: Option<&Path>) -> PathBuf {
    if let Some(path) = configured {
        return path.to_owned();
    }
    DEFAULT_MODULE_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_MODULE_PATHS[DEFAULT_MODULE_PATHS.len() - 1]))
}
