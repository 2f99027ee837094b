//! The seed file, `lemur-appliance.toml`: what the operator tells the appliance before its first
//! boot, edited on the FAT EFI system partition from any machine. A bad seed never stops a boot:
//! every problem is reported under its field's name, and each part of the seed that has one is
//! replaced by a safe default on its own (DHCP, the host name `lemur-hsm`, Debian's NTP pool, no
//! remote syslog, no ssh), so the appliance always comes up reachable enough to be fixed.

mod reader;
mod syntax;

use lemur_core::config::AddressRange;
use lemur_core::{Error, Result};
use reader::{Reader, Table};
use std::net::IpAddr;
use std::path::Path;
pub use syntax::Interface;

/// The host name when the seed gives none, or a bad one.
const DEFAULT_HOSTNAME: &str = "lemur-hsm";

/// Debian's NTP pool, systemd-timesyncd's default on Debian.
const DEBIAN_NTP_POOL: [&str; 4] = [
    "0.debian.pool.ntp.org",
    "1.debian.pool.ntp.org",
    "2.debian.pool.ntp.org",
    "3.debian.pool.ntp.org",
];

/// A seed larger than this is no seed (a CA certificate and a few keys take a few kilobytes).
const MAX_SEED_BYTES: u64 = 1 << 20;

/// What the seed asks for, with defaults where it says nothing or something wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    /// The host name, lower-case.
    pub hostname: String,
    /// How the appliance gets its address.
    pub network: Network,
    /// NTP servers.
    pub ntp: Vec<String>,
    /// Where the journal is forwarded; nowhere when absent.
    pub syslog: Option<Syslog>,
    /// The admin user's email address; the configuration's default when absent.
    pub admin_email: Option<String>,
    /// Who may log in over ssh; ssh stays off when absent.
    pub ssh: Option<Ssh>,
}

impl Default for Seed {
    fn default() -> Self {
        Self {
            hostname: DEFAULT_HOSTNAME.to_owned(),
            network: Network::Dhcp,
            ntp: debian_pool(),
            syslog: None,
            admin_email: None,
            ssh: None,
        }
    }
}

fn debian_pool() -> Vec<String> {
    DEBIAN_NTP_POOL.iter().map(|s| (*s).to_owned()).collect()
}

/// How the appliance gets its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// DHCP (and IPv6 router advertisements) on every Ethernet interface.
    Dhcp,
    /// A fixed address.
    Static(StaticNetwork),
}

/// A fixed address, its gateway and name servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticNetwork {
    /// The interface it goes on; every Ethernet interface when absent (a machine with one).
    pub interface: Option<Interface>,
    /// The address and prefix length.
    pub address: AddressRange,
    /// The default gateway.
    pub gateway: Option<IpAddr>,
    /// Name servers.
    pub dns: Vec<IpAddr>,
}

/// The remote syslog server the journal is forwarded to over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syslog {
    /// Its DNS name or IP address.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The name its certificate must carry.
    pub name: String,
    /// The CA certificates it must chain to, and no other (PEM).
    pub ca: String,
}

/// ssh access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssh {
    /// `authorized_keys` lines.
    pub authorized_keys: Vec<String>,
}

/// A problem with one field of the seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field's full name (`network.gateway`, `ssh.authorized_keys[1]`).
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A seed as read: what it asks for (defaults where it is wrong), its problems, and the defaults
/// used instead of the parts that had them.
#[derive(Debug, Clone)]
pub struct Reading {
    /// What to apply.
    pub seed: Seed,
    /// Every problem found.
    pub problems: Vec<Problem>,
    /// The defaults used instead of wrong parts (`DHCP`, `no remote syslog`).
    pub defaults: Vec<&'static str>,
}

impl Reading {
    /// A seed that cannot be read at all: every part its default.
    fn unusable(field: &str, reason: String) -> Self {
        Self {
            seed: Seed::default(),
            problems: vec![Problem {
                field: field.to_owned(),
                reason,
            }],
            defaults: vec!["defaults for everything"],
        }
    }

    /// Tells the console and the journal (stderr, under systemd) what was wrong with the seed at
    /// `path` and what is used instead.
    fn report(&self, path: &Path) {
        for problem in &self.problems {
            eprintln!(
                "lemur: {}: {}: {}",
                path.display(),
                problem.field,
                problem.reason
            );
        }
        if !self.defaults.is_empty() {
            eprintln!(
                "lemur: {}: using instead: {}",
                path.display(),
                self.defaults.join("; ")
            );
        }
    }
}

/// Reads and checks the seed at `path` (`now` for certificate expiry); fails only when the file
/// cannot be read.
pub fn read(path: &Path, now: i64) -> Result<Reading> {
    let context = format!("reading {}", path.display());
    let size = std::fs::metadata(path)
        .map_err(Error::io(context.clone()))?
        .len();
    if size > MAX_SEED_BYTES {
        return Ok(Reading::unusable(
            "file",
            format!("is {size} bytes long, more than a seed may be ({MAX_SEED_BYTES})"),
        ));
    }
    let bytes = std::fs::read(path).map_err(Error::io(context))?;
    Ok(match String::from_utf8(bytes) {
        Ok(text) => parse(&text, now),
        Err(_) => Reading::unusable("file", "is not UTF-8 text".into()),
    })
}

/// The seed at `path` as a boot applies it: its problems reported, defaults for everything when
/// it is missing or unreadable.
pub fn load(path: &Path, now: i64) -> Reading {
    if !path.exists() {
        eprintln!(
            "lemur: {}: no seed file; using the defaults",
            path.display()
        );
        return Reading {
            seed: Seed::default(),
            problems: Vec::new(),
            defaults: Vec::new(),
        };
    }
    let reading = read(path, now)
        .unwrap_or_else(|error| Reading::unusable("file", format!("cannot be read: {error}")));
    reading.report(path);
    reading
}

/// Parses and checks seed text (a byte-order mark, as Windows editors write, is ignored).
fn parse(text: &str, now: i64) -> Reading {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let root = match toml::from_str::<toml::Table>(text) {
        Ok(root) => root,
        Err(error) => return Reading::unusable("file", syntax_error(text, &error)),
    };
    let root = Table::root(&root);
    let mut reader = Reader::default();
    reader.known_keys(
        root,
        &["hostname", "network", "time", "syslog", "admin", "ssh"],
    );
    let seed = Seed {
        hostname: hostname(&mut reader, root),
        network: network(&mut reader, root),
        ntp: ntp(&mut reader, root),
        syslog: syslog(&mut reader, root, now),
        admin_email: admin_email(&mut reader, root),
        ssh: ssh(&mut reader, root),
    };
    Reading {
        seed,
        problems: reader.problems,
        defaults: reader.defaults,
    }
}

/// A TOML syntax error with where it is (line and column, from 1).
fn syntax_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', "; ");
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |at| at + 1) + 1;
            format!("TOML syntax error at line {line}, column {column}: {message}")
        }
        None => format!("TOML syntax error: {message}"),
    }
}

fn hostname(reader: &mut Reader, root: Table<'_>) -> String {
    reader.part(
        DEFAULT_HOSTNAME.to_owned(),
        "host name lemur-hsm",
        |reader| {
            let text = reader.string(root, "hostname")?;
            reader.check(root.field("hostname"), syntax::hostname(text))
        },
    )
}

fn network(reader: &mut Reader, root: Table<'_>) -> Network {
    reader.part(Network::Dhcp, "DHCP", |reader| {
        let table = reader.section(
            root,
            "network",
            &["mode", "interface", "address", "gateway", "dns"],
        )?;
        match reader.required_string(table, "mode")? {
            "dhcp" => {
                for key in ["interface", "address", "gateway", "dns"] {
                    if table.has(key) {
                        reader.problem(table.field(key), "is only for mode = \"static\"");
                    }
                }
                Some(Network::Dhcp)
            }
            "static" => static_network(reader, table).map(Network::Static),
            other => {
                reader.problem(
                    table.field("mode"),
                    format!("{other:?} is neither \"dhcp\" nor \"static\""),
                );
                None
            }
        }
    })
}

fn static_network(reader: &mut Reader, table: Table<'_>) -> Option<StaticNetwork> {
    let interface = if table.has("interface") {
        Some(
            reader
                .required_string(table, "interface")
                .and_then(|text| reader.check(table.field("interface"), syntax::interface(text))),
        )
    } else {
        None
    };
    let address = reader
        .required_string(table, "address")
        .and_then(|text| reader.check(table.field("address"), syntax::interface_address(text)));
    let gateway = reader
        .string(table, "gateway")
        .and_then(|text| reader.check(table.field("gateway"), syntax::ip(text)));
    let dns = if table.has("dns") {
        reader.list(table, "dns", syntax::ip)
    } else {
        Some(Vec::new())
    };
    let address = address?;
    if let Some(gateway) = gateway {
        reader.check(table.field("gateway"), syntax::gateway(&address, gateway))?;
    }
    Some(StaticNetwork {
        interface: match interface {
            Some(checked) => Some(checked?),
            None => None,
        },
        address,
        gateway,
        dns: dns?,
    })
}

fn ntp(reader: &mut Reader, root: Table<'_>) -> Vec<String> {
    reader.part(debian_pool(), "Debian's NTP pool", |reader| {
        let table = reader.section(root, "time", &["ntp"])?;
        let servers = reader.list(table, "ntp", syntax::server)?;
        if servers.is_empty() {
            reader.problem(
                table.field("ntp"),
                "is empty: leave it out for Debian's NTP pool",
            );
            return None;
        }
        Some(servers)
    })
}

fn syslog(reader: &mut Reader, root: Table<'_>, now: i64) -> Option<Syslog> {
    reader.part(None, "no remote syslog", |reader| {
        let table = reader.section(root, "syslog", &["target", "name", "ca"])?;
        let target = reader
            .required_string(table, "target")
            .and_then(|text| reader.check(table.field("target"), syntax::target(text)));
        let name = reader
            .string(table, "name")
            .and_then(|text| reader.check(table.field("name"), syntax::dns_name(text)));
        let ca = reader
            .required_string(table, "ca")
            .and_then(|text| reader.check(table.field("ca"), syntax::ca_certificates(text, now)));
        let (host, port) = target?;
        let name = match name {
            Some(name) => name,
            None if host.parse::<IpAddr>().is_ok() => {
                reader.problem(
                    table.field("name"),
                    "is needed when the target is an IP address: the DNS name the server's certificate carries",
                );
                return None;
            }
            None => host.clone(),
        };
        Some(Some(Syslog {
            host,
            port,
            name,
            ca: ca?,
        }))
    })
}

fn admin_email(reader: &mut Reader, root: Table<'_>) -> Option<String> {
    reader.part(None, "the configuration's default admin email", |reader| {
        let table = reader.section(root, "admin", &["email"])?;
        let email = reader.required_string(table, "email")?;
        reader
            .check(table.field("email"), syntax::email(email))
            .map(Some)
    })
}

fn ssh(reader: &mut Reader, root: Table<'_>) -> Option<Ssh> {
    reader.part(None, "ssh off", |reader| {
        let table = reader.section(root, "ssh", &["enabled", "authorized_keys"])?;
        let enabled = reader.boolean(table, "enabled").unwrap_or(false);
        let keys = if table.has("authorized_keys") {
            reader.list(table, "authorized_keys", syntax::ssh_key)?
        } else {
            Vec::new()
        };
        if !enabled {
            return Some(None);
        }
        if keys.is_empty() {
            reader.problem(
                table.field("authorized_keys"),
                "is empty while ssh is enabled: nobody could log in",
            );
            return None;
        }
        Some(Some(Ssh {
            authorized_keys: keys,
        }))
    })
}
