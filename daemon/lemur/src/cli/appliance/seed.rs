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
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
pub use syntax::Interface;
use zeroize::Zeroizing;

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
    /// The HSM the keys are made in.
    pub hsm: Hsm,
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
            hsm: Hsm::BuiltIn,
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

/// The HSM the appliance's keys (its CAs', the key-encryption key) are made in. Unlike the
/// other parts, a wrong `[hsm]` has no default to fall back to: keys made in another HSM than
/// the one asked for would stay there, so the appliance waits for a seed that is right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hsm {
    /// SoftHSM2's token on the data partition, initialised at the first boot with PINs the
    /// appliance makes (no `[hsm]` in the seed).
    BuiltIn,
    /// A token in a hardware or network HSM that its owner initialised.
    External(ExternalHsm),
    /// The seed's `[hsm]` is wrong (its problems are reported): no keys are made.
    Unusable,
}

/// A token the appliance logs in to but never initialises: its owner made it, with its PINs,
/// using the HSM vendor's tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalHsm {
    /// The vendor's PKCS#11 module, on the verified root.
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// The user PIN, when the seed still holds it: taken once into the appliance's encrypted
    /// credentials and removed from the seed (`lemur appliance credentials`).
    pub pin: Option<SeedPin>,
    /// Variables the module reads when it loads (a network HSM client's configuration file).
    pub environment: BTreeMap<String, String>,
    /// Addresses the daemon and provisioning may reach the HSM at (a network HSM); nothing
    /// but loopback otherwise.
    pub addresses: Vec<AddressRange>,
}

/// A PIN read from the seed, zeroized on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SeedPin(pub Zeroizing<String>);

impl fmt::Debug for SeedPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SeedPin(***)")
    }
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
    /// Nor does it say which HSM: none, rather than SoftHSM2 where a hardware one was meant.
    fn unusable(field: &str, reason: String) -> Self {
        Self {
            seed: Seed {
                hsm: Hsm::Unusable,
                ..Seed::default()
            },
            problems: vec![Problem {
                field: field.to_owned(),
                reason,
            }],
            defaults: vec!["defaults for everything", NO_HSM],
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

/// What the seed at `path` says of the HSM, read without reporting (lemur-seed.service reports
/// the seed's problems): the built-in token when there is no seed.
pub fn hsm_of(path: &Path, now: i64) -> Result<Hsm> {
    if !path.exists() {
        return Ok(Hsm::BuiltIn);
    }
    Ok(read(path, now)?.seed.hsm)
}

/// The note left in the seed where its `[hsm] pin` was.
const PIN_TAKEN: &str = "# pin: taken into the appliance's encrypted credentials and removed from this file;\n# write the token's user PIN here again to give the appliance a new one.\n";

/// Removes `[hsm] pin` from the seed at `path`, leaving the rest of the file (comments, order)
/// as it was and, where the layout has room for one, a note in its place: a PIN the appliance
/// has taken must not stay in clear on a partition any operating system reads. Whole or not at
/// all (a new file renamed over it), and only once the new text is known to read as the old
/// one did, less the PIN.
pub fn remove_pin(path: &Path) -> Result<()> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(Error::io(format!("reading {}", path.display())))?,
    );
    match seed_without_pin(&text)
        .map_err(|error| Error::invalid("seed", format!("{}: {error}", path.display())))?
    {
        Some(changed) => lemur_core::files::replace_private(path, changed.as_bytes(), None),
        None => Ok(()),
    }
}

/// The seed `text` without `[hsm] pin` (see [`remove_pin`]); `None` when it has none.
fn seed_without_pin(text: &str) -> std::result::Result<Option<Zeroizing<String>>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut expected: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    let taken = expected
        .get_mut("hsm")
        .and_then(toml::Value::as_table_mut)
        .and_then(|hsm| hsm.remove("pin"));
    if taken.is_none() {
        return Ok(None);
    }
    for noted in [true, false] {
        let candidate = Zeroizing::new(without_pin(text, noted)?);
        if toml::from_str::<toml::Table>(&candidate).is_ok_and(|read| read == expected) {
            return Ok(Some(candidate));
        }
    }
    Err("the PIN could not be removed without changing the rest: write the section as [hsm] with one key per line".into())
}

/// `text` without `[hsm] pin`; with `noted`, [`PIN_TAKEN`] and the comments above the PIN go
/// before what followed it (the next key of the section, the next section, or the end).
fn without_pin(text: &str, noted: bool) -> std::result::Result<String, String> {
    let mut document: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| e.to_string())?;
    let Some(hsm) = document
        .get_mut("hsm")
        .and_then(toml_edit::Item::as_table_like_mut)
    else {
        return Ok(text.to_owned());
    };
    let position = hsm.iter().position(|(key, _)| key == "pin");
    let above = hsm
        .get_key_value("pin")
        .and_then(|(key, _)| {
            key.leaf_decor()
                .prefix()
                .and_then(toml_edit::RawString::as_str)
        })
        .unwrap_or_default()
        .to_owned();
    if hsm.remove("pin").is_none() {
        return Ok(text.to_owned());
    }
    if !noted {
        return Ok(document.to_string());
    }
    let note = format!("{above}{PIN_TAKEN}");
    let next_key = position.and_then(|at| hsm.iter_mut().nth(at).map(|(key, _)| key));
    match next_key {
        Some(mut key) => {
            let prefix = key
                .leaf_decor()
                .prefix()
                .and_then(toml_edit::RawString::as_str)
                .unwrap_or_default()
                .to_owned();
            key.leaf_decor_mut().set_prefix(format!("{note}{prefix}"));
        }
        None => note_after_section(&mut document, &note),
    }
    Ok(document.to_string())
}

/// Puts `note` after the `[hsm]` section: before the next section, or at the end.
fn note_after_section(document: &mut toml_edit::DocumentMut, note: &str) {
    let next = document
        .as_table_mut()
        .iter_mut()
        .skip_while(|(key, _)| key.get() != "hsm")
        .nth(1)
        .and_then(|(_, item)| item.as_table_mut().map(toml_edit::Table::decor_mut));
    match next {
        Some(decor) => {
            let prefix = decor
                .prefix()
                .and_then(toml_edit::RawString::as_str)
                .unwrap_or_default()
                .to_owned();
            decor.set_prefix(format!("{note}{prefix}"));
        }
        None => {
            let trailing = document.trailing().as_str().unwrap_or_default().to_owned();
            document.set_trailing(format!("{trailing}{note}"));
        }
    }
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
        &[
            "hostname", "network", "time", "syslog", "admin", "ssh", "hsm",
        ],
    );
    let seed = Seed {
        hostname: hostname(&mut reader, root),
        network: network(&mut reader, root),
        ntp: ntp(&mut reader, root),
        syslog: syslog(&mut reader, root, now),
        admin_email: admin_email(&mut reader, root),
        ssh: ssh(&mut reader, root),
        hsm: hsm(&mut reader, root),
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
        Some(reader.required_checked(table, "interface", syntax::interface))
    } else {
        None
    };
    let address = reader.required_checked(table, "address", syntax::interface_address);
    let gateway = reader.checked(table, "gateway", syntax::ip);
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
        let target = reader.required_checked(table, "target", syntax::target);
        let name = reader.checked(table, "name", syntax::dns_name);
        let ca = reader.required_checked(table, "ca", |text| syntax::ca_certificates(text, now));
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

/// What the boot does instead when the seed does not say rightly which HSM to use.
const NO_HSM: &str = "no HSM: provisioning waits for a seed whose [hsm] is right";

fn hsm(reader: &mut Reader, root: Table<'_>) -> Hsm {
    if !root.has("hsm") {
        return Hsm::BuiltIn;
    }
    let before = reader.problems.len();
    let external = reader
        .section(
            root,
            "hsm",
            &["module", "token", "pin", "environment", "addresses"],
        )
        .and_then(|table| external_hsm(reader, table));
    match external {
        Some(hsm) if reader.problems.len() == before => Hsm::External(hsm),
        _ => {
            reader.defaults.push(NO_HSM);
            Hsm::Unusable
        }
    }
}

fn external_hsm(reader: &mut Reader, table: Table<'_>) -> Option<ExternalHsm> {
    let module = reader.required_checked(table, "module", syntax::module);
    let token = reader.required_checked(table, "token", syntax::token_label);
    let pin = table
        .has("pin")
        .then(|| reader.checked(table, "pin", syntax::pin));
    let environment = module_environment(reader, table);
    let addresses = if table.has("addresses") {
        reader.list(table, "addresses", syntax::address_range)
    } else {
        Some(Vec::new())
    };
    Some(ExternalHsm {
        module: module?,
        token: token?,
        pin: match pin {
            Some(checked) => Some(SeedPin(checked?)),
            None => None,
        },
        environment: environment?,
        addresses: addresses?,
    })
}

/// `[hsm] environment`, a table of strings, each name and value checked.
fn module_environment(reader: &mut Reader, table: Table<'_>) -> Option<BTreeMap<String, String>> {
    let Some(value) = table.get("environment") else {
        return Some(BTreeMap::new());
    };
    let toml::Value::Table(entries) = value else {
        reader.problem(
            table.field("environment"),
            "must be a table of strings, { NAME = \"value\" }",
        );
        return None;
    };
    let mut checked = Some(BTreeMap::new());
    for (name, value) in entries {
        let field = format!("{}.{name}", table.field("environment"));
        let name = reader.check(field.clone(), syntax::environment_name(name));
        let value = match value {
            toml::Value::String(text) => reader.check(field, syntax::environment_value(text)),
            _ => {
                reader.problem(field, "must be a string, in quotes");
                None
            }
        };
        match (name, value, checked.as_mut()) {
            (Some(name), Some(value), Some(map)) => {
                map.insert(name, value);
            }
            _ => checked = None,
        }
    }
    checked
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `seed` without its PIN: it must read as before less the PIN, and hold no trace of it.
    fn taken(seed: &str) -> String {
        let changed = seed_without_pin(seed).unwrap().expect("a PIN to take");
        assert!(!changed.contains("2468"), "{}", *changed);
        changed.to_string()
    }

    #[test]
    fn the_pin_leaves_a_note_where_it_was_and_the_rest_as_it_was() {
        let changed = taken(
            "hostname = \"h\"\n\n[hsm]\nmodule = \"/usr/lib/v.so\"\n# the PIN\npin = \"2468\"\ntoken = \"t\"\n",
        );
        assert_eq!(
            changed,
            format!(
                "hostname = \"h\"\n\n[hsm]\nmodule = \"/usr/lib/v.so\"\n# the PIN\n{PIN_TAKEN}token = \"t\"\n"
            )
        );
    }

    #[test]
    fn a_pin_last_in_its_section_leaves_the_note_before_the_next_one_or_at_the_end() {
        let changed =
            taken("[hsm]\nmodule = \"/usr/lib/v.so\"\npin = \"2468\"\n\n[ssh]\nenabled = false\n");
        assert!(
            changed.contains(&format!("{PIN_TAKEN}\n[ssh]")),
            "{changed}"
        );
        let changed = taken("[hsm]\nmodule = \"/usr/lib/v.so\"\npin = \"2468\"\n");
        assert!(changed.ends_with(PIN_TAKEN), "{changed}");
    }

    #[test]
    fn inline_and_dotted_sections_lose_the_pin_and_still_read() {
        for seed in [
            "hsm = { module = \"/usr/lib/v.so\", pin = \"2468\", token = \"t\" }\n[ssh]\nenabled = false\n",
            "hsm.module = \"/usr/lib/v.so\"\nhsm.pin = \"2468\"\nhsm.token = \"t\"\n",
            "[hsm]\nenvironment.X = \"1\"\npin = \"2468\"\nenvironment.Y = \"2\"\n",
            "\u{feff}[hsm]\npin = '2468' # the PIN\n",
        ] {
            let changed = taken(seed);
            assert!(
                toml::from_str::<toml::Table>(&changed).is_ok(),
                "{seed:?} became {changed:?}"
            );
        }
    }

    #[test]
    fn a_seed_without_a_pin_is_left_alone() {
        assert!(
            seed_without_pin("[hsm]\nmodule = \"/usr/lib/v.so\"\n")
                .unwrap()
                .is_none()
        );
        assert!(seed_without_pin("hostname = \"h\"\n").unwrap().is_none());
    }
}
