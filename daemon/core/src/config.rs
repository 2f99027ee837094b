//! The daemon's configuration: versioned TOML, unknown keys rejected by name, secrets only by file.
//!
//! Found through `--config` or `LEMUR_CONF` (Lemur's variable). Every secret (HSM PIN, token
//! signing secret, database password) is a path to a file, so the file itself never holds one and
//! `Debug` output is safe to log.

use crate::error::{Error, Result};
use lemur_hsm::HsmConfig;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

mod appliance;
mod keys;
mod template;
pub use appliance::{
    BACKUP_SOCKET, BackupsConfig, RESTORE_SOCKET, RESTORE_SPOOL, RESTORE_STATUS_NAME, RUNNING_SLOT,
    UPGRADE_STATUS, UpgradesConfig,
};
pub use keys::KeysConfig;
pub use template::{DEFAULT_TOKEN, SecretsIn, Template};

/// The only configuration format this build reads.
pub const CONFIG_VERSION: u32 = 1;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Format version; must be [`CONFIG_VERSION`].
    pub version: u32,
    /// Where the daemon listens.
    pub server: ServerConfig,
    /// The inventory database.
    pub database: DatabaseConfig,
    /// The HSM holding CA keys and the key-encryption key.
    pub hsm: HsmConfig,
    /// Login tokens.
    pub auth: AuthConfig,
    /// Defaults for new certificates and authorities.
    #[serde(default)]
    pub defaults: Defaults,
    /// Entropy health checks.
    #[serde(default)]
    pub entropy: EntropyConfig,
    /// What names certificates may carry.
    #[serde(default)]
    pub names: NamesConfig,
    /// Keys generated ahead of demand.
    #[serde(default)]
    pub keys: KeysConfig,
    /// Who may read `/metrics`.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The certificate nginx serves, kept current by the daemon; none when absent.
    #[serde(default)]
    pub frontend: Option<FrontendConfig>,
    /// Upgrades of the appliance image through the API; none when absent (not an appliance).
    #[serde(default)]
    pub upgrades: Option<UpgradesConfig>,
    /// Backups of the appliance through the API; none when absent (not an appliance).
    #[serde(default)]
    pub backups: Option<BackupsConfig>,
    /// Directory for the daemon's state (SQLite database, runtime files).
    pub state_dir: PathBuf,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// `127.0.0.1:8000`, or `unix:/run/lemur/lemur.sock` for nginx in front.
    pub listen: String,
    /// PEM certificate chain to serve HTTPS directly (without nginx).
    #[serde(default)]
    pub tls_certificate: Option<PathBuf>,
    /// PEM private key for `tls_certificate` (a secret: 0600).
    #[serde(default)]
    pub tls_private_key: Option<PathBuf>,
    /// Peers whose `X-Forwarded-For` (its last entry) names the client (the proxy in front): IP
    /// addresses, or `unix` for the unix socket. Anyone else's headers are ignored, so a client
    /// cannot choose the address the audit log records.
    #[serde(default)]
    pub trusted_proxies: TrustedProxies,
    /// Seconds a request's body may take to arrive; past that it is answered 408 (the work a
    /// request starts is never cut short).
    #[serde(default = "default_request_timeout")]
    pub request_timeout_secs: u64,
    /// Requests served at once; past that, a request is answered 503 at once rather than queued.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight_requests: usize,
    /// Seconds a connection may take to send a request's headers, counted from when the daemon
    /// starts waiting for them (so an idle keep-alive connection is closed after as long).
    #[serde(default = "default_header_timeout")]
    pub header_timeout_secs: u64,
    /// Connections open at once (TLS handshakes included); past that, new connections wait in
    /// the kernel's backlog until one closes. Keep it under the process's file-descriptor limit.
    #[serde(default = "default_connection_cap")]
    pub max_connections: usize,
    /// Connections open at once from one address (trusted proxies and the unix socket are
    /// bounded by `max_connections` only); past that, its new connections are closed at once.
    #[serde(default = "default_connections_per_client")]
    pub max_connections_per_client: usize,
    /// The web UI's built files (`web/dist`), served at `/` by the daemon itself when set (`lemur
    /// dev`, or a machine without nginx); nginx serves them on the appliance.
    #[serde(default)]
    pub web_root: Option<PathBuf>,
}

/// `server.trusted_proxies`, parsed once at load: whether the unix socket is one, and the
/// addresses, canonical (so `10.0.0.1` also matches `::ffff:10.0.0.1` on a dual-stack listener).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    unix: bool,
    addresses: Vec<IpAddr>,
}

impl TrustedProxies {
    /// Whether a peer (its address, or `None` on the unix socket) is a trusted proxy.
    pub fn contains(&self, peer: Option<IpAddr>) -> bool {
        match peer {
            None => self.unix,
            Some(ip) => self.addresses.contains(&ip.to_canonical()),
        }
    }
}

impl<'de> Deserialize<'de> for TrustedProxies {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut proxies = Self::default();
        for entry in Vec::<String>::deserialize(deserializer)? {
            if entry == "unix" {
                proxies.unix = true;
                continue;
            }
            let ip = entry.parse::<IpAddr>().map_err(|_| {
                serde::de::Error::custom(format!(
                    "server.trusted_proxies: {entry:?} is neither an IP address nor \"unix\""
                ))
            })?;
            proxies.addresses.push(ip.to_canonical());
        }
        Ok(proxies)
    }
}

fn default_request_timeout() -> u64 {
    60
}

fn default_max_in_flight() -> usize {
    512
}

fn default_header_timeout() -> u64 {
    30
}

fn default_connection_cap() -> usize {
    768
}

fn default_connections_per_client() -> usize {
    64
}

/// `[database]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite:///var/lib/lemur/lemur.db` or `postgres://lemur@host/lemur` (no password here).
    pub url: String,
    /// File holding the PostgreSQL password, if it needs one.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Connections in the pool the requests share; the certificate writer holds one more of
    /// its own.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// How long a request waits for a database connection before it fails with 503, in
    /// seconds: while the database is down, every request waits this long.
    #[serde(default = "default_acquire_timeout")]
    pub acquire_timeout_secs: u64,
    /// PEM file of the CA that signed the PostgreSQL server's certificate (the system's trust
    /// store when absent).
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Let a PostgreSQL server that is not on this machine be reached without verifying its
    /// certificate and name (`sslmode` other than `verify-full`). Users, roles and token validity
    /// come from the database, so only for a network you trust; a warning is logged.
    #[serde(default)]
    pub allow_unverified_tls: bool,
}

fn default_acquire_timeout() -> u64 {
    5
}

fn default_max_connections() -> u32 {
    8
}

/// `[auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// File with the HS256 token signing secret (at least 32 bytes).
    pub token_secret_file: PathBuf,
    /// Lifetime of a login token, in minutes.
    #[serde(default = "default_token_minutes")]
    pub token_lifetime_minutes: u64,
}

fn default_token_minutes() -> u64 {
    60
}

/// `[defaults]`: Lemur's `LEMUR_DEFAULT_*` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Country (C).
    pub country: String,
    /// State or province (ST).
    pub state: String,
    /// Locality (L).
    pub location: String,
    /// Organization (O).
    pub organization: String,
    /// Organizational unit (OU).
    pub organizational_unit: String,
    /// Where security notifications go (Lemur's `LEMUR_SECURITY_TEAM_EMAIL`).
    pub security_team_email: String,
    /// Default validity of end-entity certificates, in days (CA/Browser Forum compliant
    /// authorities are further capped by the Baseline Requirements' schedule).
    pub validity_days: i64,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            country: "US".into(),
            state: "California".into(),
            location: "Los Gatos".into(),
            organization: "Example".into(),
            organizational_unit: "Operations".into(),
            security_team_email: "security@example.com".into(),
            validity_days: 365,
        }
    }
}

/// `[frontend]`: the appliance's own HTTPS certificate, which nginx serves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontendConfig {
    /// The authority that issues it (by name).
    pub authority: String,
    /// The DNS names and IP addresses the appliance is reached by; the first is the CN.
    pub names: Vec<String>,
    /// Where the certificate and its chain are written (PEM), for nginx's
    /// `ssl_certificate`.
    pub certificate: PathBuf,
    /// Where its private key is written (PEM, 0600), for nginx's `ssl_certificate_key`.
    pub private_key: PathBuf,
    /// The certificate's owner in the inventory.
    #[serde(default = "default_frontend_owner")]
    pub owner: String,
    /// Lemur's key type name.
    #[serde(default = "default_frontend_key_type")]
    pub key_type: String,
    /// Days each certificate is valid; a new one is issued once a third of that is left.
    #[serde(default = "default_frontend_validity")]
    pub validity_days: i64,
}

impl FrontendConfig {
    /// A certificate from `authority` for `names`, written as `chain.pem` and `key.pem` in
    /// `dir`, with the default owner, key type and validity.
    pub fn new(authority: &str, names: Vec<String>, dir: &Path) -> Self {
        Self {
            authority: authority.to_owned(),
            names,
            certificate: dir.join("chain.pem"),
            private_key: dir.join("key.pem"),
            owner: default_frontend_owner(),
            key_type: default_frontend_key_type(),
            validity_days: default_frontend_validity(),
        }
    }

    /// Refuses what would fail only when the daemon first issues.
    fn check(&self) -> std::result::Result<(), String> {
        if self.authority.trim().is_empty() {
            return Err(
                "frontend.authority: name the authority that issues nginx's certificate".into(),
            );
        }
        if self.names.is_empty() || self.names.iter().any(|n| n.trim().is_empty()) {
            return Err(
                "frontend.names: give the DNS names and addresses the appliance is reached by"
                    .into(),
            );
        }
        if !(1..=3650).contains(&self.validity_days) {
            return Err("frontend.validity_days: must be between 1 and 3650".into());
        }
        if self.key_type.parse::<lemur_hsm::KeyAlgorithm>().is_err() {
            return Err(format!(
                "frontend.key_type: {:?} is not a key type",
                self.key_type
            ));
        }
        for (key, path) in [
            ("certificate", &self.certificate),
            ("private_key", &self.private_key),
        ] {
            if !path.is_absolute() {
                return Err(format!("frontend.{key}: must be an absolute path"));
            }
        }
        Ok(())
    }
}

fn default_frontend_owner() -> String {
    "appliance".to_owned()
}

fn default_frontend_key_type() -> String {
    "ECCPRIME256V1".to_owned()
}

fn default_frontend_validity() -> i64 {
    90
}

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Client addresses or networks (`10.0.0.0/8`) that may read `/metrics`, as the audit log
    /// sees them (behind nginx, the address nginx passes on); nobody when empty.
    #[serde(default = "default_metrics_allow")]
    pub allow: Vec<AddressRange>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            allow: default_metrics_allow(),
        }
    }
}

fn default_metrics_allow() -> Vec<AddressRange> {
    ["127.0.0.1", "::1"]
        .iter()
        .filter_map(|a| a.parse().ok())
        .collect()
}

/// An IP address or a network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressRange {
    network: IpAddr,
    prefix: u8,
}

impl AddressRange {
    /// The address as written (IPv4-mapped IPv6 addresses as IPv4), before the prefix.
    pub fn ip(&self) -> IpAddr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies in the range (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| match ip.to_canonical() {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32u32),
            IpAddr::V6(v6) => (u128::from(v6), 128u32),
        };
        let ((network, width), (candidate, candidate_width)) = (bits(self.network), bits(ip));
        if width != candidate_width {
            return false;
        }
        let host_bits = width - u32::from(self.prefix);
        network.checked_shr(host_bits).unwrap_or(0) == candidate.checked_shr(host_bits).unwrap_or(0)
    }
}

impl std::str::FromStr for AddressRange {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let (address, prefix) = text.split_once('/').unwrap_or((text, ""));
        let network = address
            .parse::<IpAddr>()
            .map_err(|_| format!("{text:?} is neither an IP address nor a network"))?
            .to_canonical();
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            "" => width,
            prefix => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {width}"))?,
        };
        Ok(Self { network, prefix })
    }
}

impl<'de> Deserialize<'de> for AddressRange {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(|reason: String| serde::de::Error::custom(format!("metrics.allow: {reason}")))
    }
}

/// `[names]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamesConfig {
    /// The public suffix list, which CA/Browser Forum compliant issuance checks names against.
    #[serde(default = "default_public_suffix_list")]
    pub public_suffix_list: PathBuf,
    /// Roles that may mark domains sensitive and issue for them, besides `admin` (Lemur's
    /// `SENSITIVE_DOMAIN_ROLES`).
    #[serde(default)]
    pub sensitive_domain_roles: Vec<String>,
    /// Domains anyone but administrators and `global_cert_issuer` may issue for (and names under
    /// them); any when empty (Lemur's `LEMUR_ALLOWED_DOMAINS`, as domains rather than a regex).
    #[serde(default)]
    pub allowed_domains: Vec<String>,
}

fn default_public_suffix_list() -> PathBuf {
    PathBuf::from(crate::ca::suffixes::DEBIAN_LIST)
}

impl Default for NamesConfig {
    fn default() -> Self {
        Self {
            public_suffix_list: default_public_suffix_list(),
            sensitive_domain_roles: Vec::new(),
            allowed_domains: Vec::new(),
        }
    }
}

/// `[entropy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntropyConfig {
    /// Seconds between health re-checks.
    #[serde(default = "default_recheck")]
    pub recheck_interval_secs: u64,
    /// Random-number devices (e.g. `/dev/hwrng`) whose output must pass the health tests too.
    #[serde(default)]
    pub devices: Vec<PathBuf>,
}

fn default_recheck() -> u64 {
    600
}

impl Default for EntropyConfig {
    fn default() -> Self {
        Self {
            recheck_interval_secs: default_recheck(),
            devices: Vec::new(),
        }
    }
}

/// How a secret file names a systemd credential.
const CREDENTIALS_PREFIX: &str = "$CREDENTIALS_DIRECTORY";

impl Config {
    /// Reads and validates the configuration at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let mut config = Self::load_unresolved(path)?;
        let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        config
            .resolve_credentials(credentials.as_deref())
            .map_err(|reason| Error::Config {
                path: path.to_owned(),
                reason,
            })?;
        Ok(config)
    }

    /// The configuration at `path` with secret files as written, systemd credentials not
    /// resolved: for commands that never read a secret, such as a backup's state side, which runs
    /// without the daemon's credentials.
    pub fn load_unresolved(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.to_owned(),
            reason: format!("cannot read it: {e}"),
        })?;
        Self::parse(&text).map_err(|reason| Error::Config {
            path: path.to_owned(),
            reason,
        })
    }

    /// Resolves secret files written `$CREDENTIALS_DIRECTORY/NAME`: systemd credentials, which
    /// systemd decrypts into a private directory for the unit it starts (`LoadCredentialEncrypted=`).
    /// The same configuration then serves the daemon and any command run with the credentials
    /// (`systemd-run -p LoadCredentialEncrypted=...`), whatever unit name systemd gives it.
    fn resolve_credentials(&mut self, directory: Option<&Path>) -> std::result::Result<(), String> {
        let secrets = [
            ("hsm.pin_file", Some(&mut self.hsm.pin_file)),
            (
                "auth.token_secret_file",
                Some(&mut self.auth.token_secret_file),
            ),
            (
                "database.password_file",
                self.database.password_file.as_mut(),
            ),
            (
                "server.tls_private_key",
                self.server.tls_private_key.as_mut(),
            ),
        ];
        for (key, path) in secrets {
            let Some(path) = path else { continue };
            let Ok(name) = path.strip_prefix(CREDENTIALS_PREFIX) else {
                continue;
            };
            let Some(directory) = directory else {
                return Err(format!(
                    "{key} names the systemd credential {:?}, but CREDENTIALS_DIRECTORY is not set: run this command under systemd with its credentials (systemctl start lemur, or systemd-run -p LoadCredentialEncrypted=...; see README.md)",
                    name.display()
                ));
            };
            *path = directory.join(name);
        }
        Ok(())
    }

    /// Parses configuration text; the error names the offending key.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        if config.version != CONFIG_VERSION {
            return Err(format!(
                "version = {} is not supported by this build (expected {CONFIG_VERSION})",
                config.version
            ));
        }
        config.keys.check()?;
        if let Some(frontend) = &config.frontend {
            frontend.check()?;
        }
        Ok(config)
    }

    /// The secret files `lemur lock` may seal: all but the HSM PIN, which opens the token that
    /// unseals them (systemd's encrypted credentials protect it instead), and the files in the
    /// keys directory (third-party credentials, as Lemur keeps them).
    pub fn lockable_files(&self) -> Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = self
            .secret_files()
            .into_iter()
            .filter(|file| *file != self.hsm.pin_file)
            .map(Path::to_owned)
            .collect();
        files.extend(crate::locked::files_in(&self.keys_dir())?);
        Ok(files)
    }

    /// Where third-party credentials (plugins' passwords and API keys) are kept: `keys/` in
    /// the state directory.
    pub fn keys_dir(&self) -> PathBuf {
        self.state_dir.join("keys")
    }

    /// Every secret file the configuration names.
    pub fn secret_files(&self) -> Vec<&Path> {
        let mut files = vec![
            self.hsm.pin_file.as_path(),
            self.auth.token_secret_file.as_path(),
        ];
        files.extend(self.database.password_file.as_deref());
        files.extend(self.server.tls_private_key.as_deref());
        files
    }
}

/// The HSM user PIN's name: its file in the state directory's `secrets/`, or its systemd
/// credential (`LoadCredentialEncrypted=hsm-pin:...` in systemd/lemur.service).
pub const HSM_PIN: &str = "hsm-pin";
/// The token signing secret's name, as a file or a credential (see [`HSM_PIN`]).
pub const TOKEN_SECRET: &str = "token-secret";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_ranges_hold_what_they_say() {
        let range = |text: &str| text.parse::<AddressRange>().unwrap();
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert!(range("10.0.0.0/8").contains(ip("10.200.1.2")));
        assert!(!range("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(range("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
        assert!(!range("127.0.0.1").contains(ip("127.0.0.2")));
        assert!(range("::1").contains(ip("::1")));
        assert!(!range("::1").contains(ip("127.0.0.1")));
        assert!(range("0.0.0.0/0").contains(ip("192.0.2.1")));
        assert!(range("2001:db8::/32").contains(ip("2001:db8:1::5")));
        for bad in ["10.0.0.0/33", "host", "::/129", "1.2.3.4/x"] {
            assert!(bad.parse::<AddressRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_template_parses() {
        let config = Config::parse(
            &Template::new(
                Path::new("/var/lib/lemur"),
                "127.0.0.1:8000",
                "sqlite:///var/lib/lemur/lemur.db",
                &[("SOFTHSM2_CONF", "/var/lib/lemur/softhsm2.conf")],
            )
            .render(),
        )
        .unwrap();
        assert_eq!(
            config.hsm.environment["SOFTHSM2_CONF"],
            "/var/lib/lemur/softhsm2.conf"
        );
        assert_eq!(config.hsm.token, "lemur");
        assert_eq!(
            config.auth.token_secret_file,
            Path::new("/var/lib/lemur/secrets/token-secret")
        );
    }

    #[test]
    fn secrets_may_be_systemd_credentials() {
        let text = Template::new(
            Path::new("/var/lib/lemur"),
            "unix:/run/lemur/lemur.sock",
            "sqlite:///var/lib/lemur/lemur.db",
            &[],
        )
        .render()
        .replace(
            "/var/lib/lemur/secrets/hsm-pin",
            "$CREDENTIALS_DIRECTORY/hsm-pin",
        );
        let mut config = Config::parse(&text).unwrap();
        let mut unresolved = config.clone();
        config
            .resolve_credentials(Some(Path::new("/run/credentials/lemur.service")))
            .unwrap();
        assert_eq!(
            config.hsm.pin_file,
            Path::new("/run/credentials/lemur.service/hsm-pin")
        );
        // Other paths stay as written.
        assert_eq!(
            config.auth.token_secret_file,
            Path::new("/var/lib/lemur/secrets/token-secret")
        );
        let error = unresolved.resolve_credentials(None).unwrap_err();
        assert!(
            error.starts_with("hsm.pin_file names the systemd credential \"hsm-pin\", but CREDENTIALS_DIRECTORY is not set"),
            "{error}"
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let text = Template::new(Path::new("/x"), "127.0.0.1:1", "sqlite:///x/db", &[])
            .render()
            .replace("token_lifetime_minutes", "token_lifetime_minutez");
        let error = Config::parse(&text).unwrap_err();
        assert!(error.contains("token_lifetime_minutez"), "{error}");
    }

    #[test]
    fn ready_keys_must_be_key_types_in_reason() {
        let with = |ready: &str| {
            Config::parse(
                &Template::new(Path::new("/x"), "127.0.0.1:1", "sqlite:///x/db", &[])
                    .render()
                    .replace("ready = { RSA2048 = 32 }", ready),
            )
        };
        assert_eq!(with("ready = {}").unwrap().keys.ready.len(), 0);
        assert!(
            with("ready = { RSA1024 = 1 }")
                .unwrap_err()
                .contains("keys.ready")
        );
        assert!(
            with("ready = { RSA2048 = 100000 }")
                .unwrap_err()
                .contains("at most")
        );
        assert_eq!(
            with("ready = { RSA2048 = 32 }").unwrap().keys.ready["RSA2048"],
            32
        );
        // The stock is checked the same way, against its own limit.
        let with_stock = |stock: &str| {
            Config::parse(
                &Template::new(Path::new("/x"), "127.0.0.1:1", "sqlite:///x/db", &[])
                    .render()
                    .replace("stock = {}", stock),
            )
        };
        assert!(with_stock("stock = {}").unwrap().keys.stock.is_empty());
        let stocked = with_stock("stock = { RSA2048 = 500000, ECCPRIME256V1 = 0 }").unwrap();
        assert_eq!(
            stocked.keys.stock_targets(),
            [(lemur_hsm::KeyAlgorithm::Rsa2048, 500_000)]
        );
        assert!(
            with_stock("stock = { ECCPRIME256V1 = 5 }")
                .unwrap_err()
                .contains("keys.stock.ECCPRIME256V1: the stock only refills keys.ready")
        );
        assert!(
            with_stock("stock = { RSA1024 = 1 }")
                .unwrap_err()
                .contains("keys.stock")
        );
        assert!(
            with_stock("stock = { RSA2048 = 2000000 }")
                .unwrap_err()
                .contains("at most")
        );
    }

    #[test]
    fn other_versions_are_refused() {
        let text = Template::new(Path::new("/x"), "127.0.0.1:1", "sqlite:///x/db", &[])
            .render()
            .replace("version = 1", "version = 2");
        assert!(Config::parse(&text).unwrap_err().contains("version = 2"));
    }

    #[test]
    fn trusted_proxies_are_addresses_compared_as_addresses() {
        let with = |proxies: &str| {
            let text = Template::new(Path::new("/x"), "127.0.0.1:1", "sqlite:///x/db", &[])
                .render()
                .replace(
                    "trusted_proxies = []",
                    &format!("trusted_proxies = {proxies}"),
                );
            Config::parse(&text)
        };
        let error = with(r#"["10.0.0.0/8"]"#).unwrap_err();
        assert!(
            error.contains("server.trusted_proxies") && error.contains("10.0.0.0/8"),
            "{error}"
        );
        let server = with(r#"["unix", "10.0.0.1"]"#).unwrap().server;
        let ip = |text: &str| text.parse::<std::net::IpAddr>().ok();
        assert!(server.trusted_proxies.contains(None));
        assert!(server.trusted_proxies.contains(ip("10.0.0.1")));
        assert!(server.trusted_proxies.contains(ip("::ffff:10.0.0.1")));
        assert!(!server.trusted_proxies.contains(ip("10.0.0.2")));
        assert!(!with("[]").unwrap().server.trusted_proxies.contains(None));
    }
}
