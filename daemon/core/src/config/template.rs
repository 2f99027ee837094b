//! A new configuration file's text, as `lemur create_config`, `lemur dev` and `lemur appliance
//! provision` write it: every key, commented, with what the command chose and the defaults for
//! the rest. Every value is written by the `toml` crate, never pasted into the text, because some
//! come from outside (a seed file's email address, a path).

use super::{
    BackupsConfig, CONFIG_VERSION, CREDENTIALS_PREFIX, Defaults, FrontendConfig, HSM_PIN,
    TOKEN_SECRET, UpgradesConfig,
};
use std::path::Path;

/// The token label a new configuration names unless told another.
pub const DEFAULT_TOKEN: &str = "lemur";

/// `value` as TOML writes it (a string quoted and escaped, a list or an inline table).
fn toml_value(value: impl Into<toml::Value>) -> String {
    value.into().to_string()
}

/// A path as a TOML string (a path that is not UTF-8 is written lossily, and then names a file
/// that does not exist: the daemon says so when it starts).
fn path_value(path: &Path) -> String {
    toml_value(path.to_string_lossy().into_owned())
}

/// Where a new configuration says its generated secrets are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretsIn {
    /// Files in the state directory's `secrets/` (`lemur create_config`, `lemur dev`).
    StateDir,
    /// Systemd credentials, `$CREDENTIALS_DIRECTORY/NAME`: the appliance keeps them only
    /// encrypted, and systemd decrypts them for the daemon's unit.
    Credentials,
}

/// A new configuration: every key, commented, with secrets as file paths. What commands that
/// write one choose is here; everything else is the defaults.
#[derive(Debug, Clone)]
pub struct Template<'a> {
    /// `state_dir`.
    pub state_dir: &'a Path,
    /// `server.listen`.
    pub listen: &'a str,
    /// `database.url`.
    pub database_url: &'a str,
    /// `hsm.environment`.
    pub hsm_environment: &'a [(&'a str, &'a str)],
    /// `hsm.module`; SoftHSM2's, found on the machine, when absent.
    pub hsm_module: Option<&'a Path>,
    /// `hsm.token`.
    pub hsm_token: &'a str,
    /// Where `hsm.pin_file` and `auth.token_secret_file` point.
    pub secrets: SecretsIn,
    /// `server.trusted_proxies`.
    pub trusted_proxies: &'a [&'a str],
    /// `defaults.security_team_email`; the built-in default when absent.
    pub security_team_email: Option<&'a str>,
    /// `[frontend]`; written as a commented example when absent.
    pub frontend: Option<&'a FrontendConfig>,
    /// `[upgrades]`; written as a commented example when absent.
    pub upgrades: Option<&'a UpgradesConfig>,
    /// `[backups]`; written as a commented example when absent.
    pub backups: Option<&'a BackupsConfig>,
    /// `keys.stock` of RSA-2048 keys; none when 0.
    pub stocked_rsa_keys: usize,
}

impl<'a> Template<'a> {
    /// What `lemur create_config` writes: secrets in the state directory, no proxy trusted, no
    /// front end.
    pub fn new(
        state_dir: &'a Path,
        listen: &'a str,
        database_url: &'a str,
        hsm_environment: &'a [(&'a str, &'a str)],
    ) -> Self {
        Self {
            state_dir,
            listen,
            database_url,
            hsm_environment,
            hsm_module: None,
            hsm_token: DEFAULT_TOKEN,
            secrets: SecretsIn::StateDir,
            trusted_proxies: &[],
            security_team_email: None,
            frontend: None,
            upgrades: None,
            backups: None,
            stocked_rsa_keys: 0,
        }
    }

    /// Where the configuration names the secret `name`.
    fn secret(&self, name: &str) -> String {
        match self.secrets {
            SecretsIn::StateDir => path_value(&self.state_dir.join("secrets").join(name)),
            SecretsIn::Credentials => toml_value(format!("{CREDENTIALS_PREFIX}/{name}")),
        }
    }

    /// The `[frontend]` table, or its commented example.
    fn frontend(&self) -> String {
        match self.frontend {
            Some(frontend) => format!(
                "[frontend]\nauthority = {}\nnames = {}\ncertificate = {}\nprivate_key = {}\nowner = {}\nkey_type = {}\nvalidity_days = {}\n",
                toml_value(frontend.authority.as_str()),
                toml_value(frontend.names.clone()),
                path_value(&frontend.certificate),
                path_value(&frontend.private_key),
                toml_value(frontend.owner.as_str()),
                toml_value(frontend.key_type.as_str()),
                frontend.validity_days,
            ),
            None => "# [frontend]\n# authority = \"appliance\"\n# names = [\"lemur.example.com\", \"192.0.2.10\"]\n# certificate = \"/var/lib/lemur/frontend/chain.pem\"\n# private_key = \"/var/lib/lemur/frontend/key.pem\"\n# validity_days = 90\n".to_owned(),
        }
    }

    /// The `[upgrades]` table, or its commented example.
    fn upgrades(&self) -> String {
        match self.upgrades {
            Some(upgrades) => format!(
                "[upgrades]\nkey = {}\nspool = {}\nmax_bytes = {}\nstatus = {}\n",
                path_value(&upgrades.key),
                path_value(&upgrades.spool),
                upgrades.max_bytes,
                path_value(&upgrades.status),
            ),
            None => "# [upgrades]\n# key = \"/usr/share/lemur-hsm/upgrade-key.pem\"\n# spool = \"/var/lib/lemur/upgrade\"\n# status = \"/var/lib/lemur-upgrade/status.json\"\n".to_owned(),
        }
    }

    /// The `[backups]` table, or its commented example.
    fn backups(&self) -> String {
        match self.backups {
            Some(backups) => format!(
                "[backups]\nsocket = {}\nrestore_socket = {}\nrestore_status = {}\n",
                path_value(&backups.socket),
                path_value(&backups.restore_socket),
                path_value(&backups.restore_status)
            ),
            None => "# [backups]\n# socket = \"/run/lemur-backup.sock\"\n\
                     # restore_socket = \"/run/lemur-restore.sock\"\n\
                     # restore_status = \"/var/lib/lemur-restore/status.json\"\n"
                .to_owned(),
        }
    }

    /// The configuration's text. Every value is written by the `toml` crate, quoted and escaped
    /// as TOML wants it, so that no value (a path, an email address from a seed file) can end
    /// its string or its line early and add keys of its own.
    pub fn render(&self) -> String {
        let state = path_value(self.state_dir);
        let listen = toml_value(self.listen);
        let database_url = toml_value(self.database_url);
        let suffixes = toml_value(crate::ca::suffixes::DEBIAN_LIST);
        let environment: toml::Table = self
            .hsm_environment
            .iter()
            .map(|(name, value)| ((*name).to_owned(), toml::Value::from(*value)))
            .collect();
        let environment = toml_value(environment);
        let module = match self.hsm_module {
            Some(module) => format!("module = {}", path_value(module)),
            None => "# module = \"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so\"".to_owned(),
        };
        let token = toml_value(self.hsm_token);
        let (pin_file, token_secret_file) = (self.secret(HSM_PIN), self.secret(TOKEN_SECRET));
        let trusted_proxies = toml_value(self.trusted_proxies.to_vec());
        let security_team_email = toml_value(
            self.security_team_email
                .map_or_else(|| Defaults::default().security_team_email, str::to_owned),
        );
        let frontend = self.frontend();
        let upgrades = self.upgrades();
        let backups = self.backups();
        let stock = match self.stocked_rsa_keys {
            0 => "{}".to_owned(),
            count => format!("{{ RSA2048 = {count} }}"),
        };
        format!(
            r#"# Lemur-HSM configuration. Secrets are never written here: each *_file key names a file
# (0600, owned by the lemur user; in production a systemd credential).
version = {CONFIG_VERSION}

# Where the daemon keeps its state (the SQLite database lives here by default).
state_dir = {state}

[server]
# "127.0.0.1:8000", or "unix:/run/lemur/lemur.sock" behind the bundled nginx.
listen = {listen}
# Serve HTTPS directly (no nginx in front): PEM chain and key (0600).
# tls_certificate = "/etc/lemur/tls/chain.pem"
# tls_private_key = "/etc/lemur/tls/key.pem"
# Peers whose X-Forwarded-For (last entry) names the client, e.g. ["unix"] behind the bundled nginx.
trusted_proxies = {trusted_proxies}
# Seconds a request body may take to arrive, and requests served at once.
request_timeout_secs = 60
max_in_flight_requests = 512
# Seconds a connection may take to send its headers (also the keep-alive idle limit), and
# connections open at once (more wait in the kernel's backlog; keep under `ulimit -n`).
header_timeout_secs = 30
max_connections = 768
# Connections open at once from one address (not counting trusted proxies).
max_connections_per_client = 64

[database]
# sqlite:///path/lemur.db (embedded default) or postgres://lemur@db.example.com/lemur (scale-out).
url = {database_url}
# password_file = "/etc/lemur/db-password"
# Connections the requests share; the certificate writer holds one more of its own.
max_connections = 8
# Seconds a request waits for a connection before answering 503 (retry later).
acquire_timeout_secs = 5
# PostgreSQL on another machine is reached over TLS with the server's certificate and name
# verified (sslmode=verify-full), against the system's CAs or this file:
# tls_ca_file = "/etc/lemur/db-ca.pem"
# allow_unverified_tls = false

[hsm]
# PKCS#11 module; SoftHSM2's Debian path when absent.
{module}
token = {token}
pin_file = {pin_file}
# pool_size = 2            # HSM sessions; default: number of CPUs (one more with a [keys] stock)
kek_label = "lemur-kek"
checkout_timeout_secs = 30
# Environment the PKCS#11 module reads when it loads, set by every lemur command before it opens
# the token, e.g. {{ SOFTHSM2_CONF = "/etc/softhsm/softhsm2.conf" }}.
environment = {environment}

[auth]
token_secret_file = {token_secret_file}
token_lifetime_minutes = 60

[defaults]
country = "US"
state = "California"
location = "Los Gatos"
organization = "Example"
organizational_unit = "Operations"
security_team_email = {security_team_email}
validity_days = 365

[entropy]
# Seconds between re-runs of the SP 800-90B health tests on the kernel CRNG and the HSM RNG. Key
# generation and issuance are refused while the latest run failed.
recheck_interval_secs = 600
# Hardware RNG devices to health-test as well, e.g. ["/dev/hwrng"].
devices = []

[keys]
# Keys generated in the HSM ahead of demand, per key type, for certificates issued without a
# CSR: held in the daemon's memory only (wiped when used or at exit), each given to one
# certificate. RSA keys take the token a tenth of a second and more each. Size this to the
# bursts you expect; {{}} turns it off.
ready = {{ RSA2048 = 32 }}
# More keys generated ahead, sealed under the KEK in the database: the memory pool above refills
# from them, they outlast restarts and upgrades, and every daemon on the database shares them.
# Made one at a time at the lowest CPU priority, from idle time only (an RSA-2048 key is about
# 1.3 KB stored). Size this to the largest burst you expect, e.g. a re-issue of every certificate
# with a server-made key after an incident: {{ RSA2048 = 10000 }}.
stock = {stock}

# The certificate nginx serves, issued by one of this appliance's authorities and issued again
# once a third of its validity is left (systemd/lemur-frontend.path then reloads nginx: it
# watches /var/lib/lemur/frontend/chain.pem, so change it there too if you change the path).
{frontend}
# Upgrades of the appliance image (POST /api/1/appliance/upgrade, administrators only): a bundle
# signed with the release key is checked, then left in the spool directory for root's
# lemur-upgrade.service to write into the inactive root slot. Only the appliance image has this.
{upgrades}
# Backups of the appliance (POST /api/1/appliance/backup, administrators only): root's
# lemur-backup.socket makes the archive, credentials included, which the daemon may not read
# itself, and the daemon hands it on. Restores (POST /api/1/appliance/restore) go the other way:
# the daemon hands the archive to root's lemur-restore.socket, which checks it, stops the daemon,
# restores and starts it again, and writes how it went to restore_status. Only the appliance
# image has this.
{backups}
[metrics]
# Client addresses or networks ("10.0.0.0/8") that may read /metrics (Prometheus text); the
# bundled nginx also limits /metrics to loopback. [] turns it off.
allow = ["127.0.0.1", "::1"]

[names]
# The public suffix list (Debian's publicsuffix package), against which CA/Browser Forum
# compliant authorities check names: a registered TLD, no wildcard over a public suffix.
public_suffix_list = {suffixes}
# Roles that may mark domains sensitive and issue for them, besides admin.
sensitive_domain_roles = []
# Domains anyone but admin and global_cert_issuer may issue for; any when empty.
allowed_domains = []
"#
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn an_appliance_configuration_names_credentials_its_front_end_and_email() {
        let frontend = FrontendConfig::new(
            "appliance",
            vec!["lemur.example.com".into(), "192.0.2.10".into()],
            Path::new("/var/lib/lemur/frontend"),
        );
        let template = Template {
            secrets: SecretsIn::Credentials,
            trusted_proxies: &["unix"],
            security_team_email: Some("pki@example.com"),
            frontend: Some(&frontend),
            ..Template::new(
                Path::new("/var/lib/lemur"),
                "unix:/run/lemur/lemur.sock",
                "sqlite:///var/lib/lemur/lemur.db",
                &[],
            )
        };
        let config = Config::parse(&template.render()).unwrap();
        assert_eq!(
            (config.hsm.pin_file, config.auth.token_secret_file),
            (
                PathBuf::from("$CREDENTIALS_DIRECTORY/hsm-pin"),
                PathBuf::from("$CREDENTIALS_DIRECTORY/token-secret")
            )
        );
        assert!(config.server.trusted_proxies.contains(None));
        assert_eq!(config.defaults.security_team_email, "pki@example.com");
        let written = config.frontend.unwrap();
        assert_eq!(
            (written.names, written.certificate, written.private_key),
            (frontend.names, frontend.certificate, frontend.private_key)
        );
    }

    #[test]
    fn no_value_can_add_keys_of_its_own() {
        // A quote, a newline, a backslash and a TOML table header in every value written.
        let hostile = "x\"\nversion = 2\n[hsm]\nmodule = '/tmp/evil.so'\\";
        let state_dir = PathBuf::from(format!("/var/lib/{hostile}"));
        let frontend = FrontendConfig::new(
            hostile,
            vec![hostile.to_owned()],
            &state_dir.join("frontend"),
        );
        let environment = [("LD_PRELOAD\"", hostile)];
        let template = Template {
            trusted_proxies: &[hostile],
            security_team_email: Some(hostile),
            frontend: Some(&frontend),
            ..Template::new(&state_dir, hostile, hostile, &environment)
        };
        let hsm_module = state_dir.join("module.so");
        let text = template.render();
        let without_module: toml::Table = toml::from_str(&text).unwrap();
        assert!(
            !without_module["hsm"]
                .as_table()
                .unwrap()
                .contains_key("module")
        );
        let text = Template {
            hsm_module: Some(&hsm_module),
            hsm_token: hostile,
            ..template
        }
        .render();
        let table: toml::Table = toml::from_str(&text).unwrap();
        let value = |path: &[&str]| {
            let mut value = &table[path[0]];
            for key in &path[1..] {
                value = &value[key];
            }
            value.clone()
        };
        assert_eq!(
            value(&["version"]).as_integer(),
            Some(CONFIG_VERSION.into())
        );
        assert_eq!(
            value(&["hsm", "module"]).as_str(),
            Some(hsm_module.to_str().unwrap())
        );
        assert_eq!(
            value(&["state_dir"]).as_str(),
            Some(state_dir.to_str().unwrap())
        );
        for path in [
            &["server", "listen"][..],
            &["database", "url"],
            &["hsm", "token"],
            &["hsm", "environment", "LD_PRELOAD\""],
            &["defaults", "security_team_email"],
            &["frontend", "authority"],
        ] {
            assert_eq!(value(path).as_str(), Some(hostile), "{path:?}");
        }
        for path in [&["server", "trusted_proxies"][..], &["frontend", "names"]] {
            assert_eq!(value(path)[0].as_str(), Some(hostile), "{path:?}");
        }
    }
}
