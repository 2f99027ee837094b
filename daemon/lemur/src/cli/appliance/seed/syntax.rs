//! The syntax of each value the seed holds. Everything generated from the seed (systemd-networkd
//! and rsyslog files, the certificate's names, the daemon's configuration) is built from values
//! that passed these checks, so no value can carry a quote, a newline or a directive into them.

use base64::Engine;
use lemur_core::ca::x509;
use lemur_core::config::AddressRange;
use std::net::IpAddr;

/// The longest host name Linux keeps (`HOST_NAME_MAX`).
const HOSTNAME_MAX: usize = 64;
/// The longest DNS name.
const DNS_NAME_MAX: usize = 253;
/// Syslog over TLS (RFC 5425).
const SYSLOG_TLS_PORT: u16 = 6514;

/// Key types OpenSSH accepts for `authorized_keys` (DSA no longer).
const SSH_KEY_TYPES: [&str; 7] = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// A host name as RFC 1123 has it (letters, digits and hyphens in dot-separated labels of 1 to
/// 63 characters, no hyphen at either end, a last label not all digits), at most `max`
/// characters; lower-cased, without a final dot.
fn host_name(text: &str, max: usize) -> Result<String, String> {
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > max {
        return Err(format!(
            "{text:?} is {} characters long, more than {max}",
            name.len()
        ));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(format!("{text:?} has an empty label (two dots in a row?)"));
        }
        if label.len() > 63 {
            return Err(format!("{text:?}: a label is longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!(
                "{text:?} may hold only letters, digits, hyphens and dots"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("{text:?}: a label starts or ends with a hyphen"));
        }
    }
    if name
        .rsplit('.')
        .next()
        .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "{text:?} is no host name (its last label is a number)"
        ));
    }
    Ok(name)
}

/// The appliance's own host name.
pub(super) fn hostname(text: &str) -> Result<String, String> {
    host_name(text, HOSTNAME_MAX)
}

/// Another machine's DNS name.
pub(super) fn dns_name(text: &str) -> Result<String, String> {
    host_name(text, DNS_NAME_MAX)
}

/// An IP address.
pub(super) fn ip(text: &str) -> Result<IpAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an IP address"))
}

/// The network interface a static address goes on: its MAC address (`52:54:00:12:34:56`,
/// lower-cased), or its name as the kernel gives it (`enp1s0`: at most 15 letters, digits and
/// `-_.`, not a pattern).
pub(super) fn interface(text: &str) -> Result<Interface, String> {
    let octets: Vec<&str> = text.split(':').collect();
    if octets.len() == 6 {
        return if octets
            .iter()
            .all(|o| o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            Ok(Interface::Mac(text.to_ascii_lowercase()))
        } else {
            Err(format!(
                "{text:?} is not a MAC address (six pairs of hex digits)"
            ))
        };
    }
    let plain = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if text.is_empty() || text.len() > 15 || !plain || text == "." || text == ".." {
        return Err(format!(
            "{text:?} is neither an interface name (at most 15 letters, digits and -_.) nor a MAC address"
        ));
    }
    Ok(Interface::Name(text.to_owned()))
}

/// A network interface, as `[network] interface` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interface {
    /// By its kernel name.
    Name(String),
    /// By its MAC address.
    Mac(String),
}

/// A server named by its DNS name or its IP address.
pub(super) fn server(text: &str) -> Result<String, String> {
    match text.parse::<IpAddr>() {
        Ok(ip) => Ok(ip.to_string()),
        Err(_) => dns_name(text),
    }
}

/// The appliance's static address with its prefix length (`192.0.2.10/24`): one an interface
/// can have, not its network's own address or broadcast address.
pub(super) fn interface_address(text: &str) -> Result<AddressRange, String> {
    if !text.contains('/') {
        return Err(format!(
            "{text:?} needs its prefix length, as in 192.0.2.10/24"
        ));
    }
    let address: AddressRange = text.parse()?;
    let ip = address.ip();
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || address.prefix() == 0 {
        return Err(format!("{text:?} is no address for this machine"));
    }
    if let IpAddr::V4(v4) = ip
        && address.prefix() <= 30
    {
        let host_bits = u32::MAX >> address.prefix();
        let host = u32::from(v4) & host_bits;
        if host == 0 || host == host_bits {
            return Err(format!(
                "{text:?} is its network's own address or its broadcast address"
            ));
        }
    }
    Ok(address)
}

/// The default gateway must be reachable on the appliance's network: inside it, or an IPv6
/// link-local address (as routers announce themselves).
pub(super) fn gateway(address: &AddressRange, gateway: IpAddr) -> Result<(), String> {
    let network = format!("{}/{}", address.ip(), address.prefix());
    if gateway == address.ip() {
        return Err(format!("{gateway} is the appliance's own address"));
    }
    let link_local = matches!(gateway, IpAddr::V6(v6) if v6.is_unicast_link_local());
    if address.contains(gateway) || (link_local && address.ip().is_ipv6()) {
        Ok(())
    } else {
        Err(format!("{gateway} is outside the network of {network}"))
    }
}

/// The remote syslog server, `host:port` (`[2001:db8::1]:6514` for an IPv6 address; port 6514
/// when left out).
pub(super) fn target(text: &str) -> Result<(String, u16), String> {
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("{text:?} opens a [ it does not close"))?;
            let v6 = host
                .parse::<std::net::Ipv6Addr>()
                .map_err(|_| format!("{host:?} in brackets is not an IPv6 address"))?;
            let port = match after {
                "" => None,
                after => Some(after.strip_prefix(':').ok_or_else(|| {
                    format!("{text:?}: the port follows the address and a colon")
                })?),
            };
            (v6.to_string(), port)
        }
        None if text.matches(':').count() > 1 => {
            return Err(format!(
                "{text:?}: an IPv6 address goes in brackets, the port after them: [2001:db8::1]:6514"
            ));
        }
        None => match text.split_once(':') {
            Some((host, port)) => (server(host)?, Some(port)),
            None => (server(text)?, None),
        },
    };
    let port = match port {
        None => SYSLOG_TLS_PORT,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|port| *port > 0)
            .ok_or_else(|| format!("{port:?} is not a port number"))?,
    };
    Ok((host, port))
}

/// The CA certificates that vouch for the remote syslog server (PEM): each a CA certificate,
/// none expired at `now`; written again as plain PEM, whatever text came around them.
pub(super) fn ca_certificates(text: &str, now: i64) -> Result<String, String> {
    let reason = |error: lemur_core::Error| match error {
        lemur_core::Error::Validation { reason, .. } => reason,
        other => other.to_string(),
    };
    let certificates = x509::pem_certificates(text, "ca").map_err(reason)?;
    if certificates.is_empty() {
        return Err("holds no certificate: paste the server's CA certificate (PEM)".into());
    }
    let mut pem = String::new();
    for der in certificates {
        let certificate = x509::parse(&der, "ca").map_err(reason)?;
        if !certificate.is_ca {
            return Err(format!(
                "{:?} is not a CA certificate: give the CA that issued the server's certificate",
                certificate.subject
            ));
        }
        if certificate.not_after < now {
            let days = (now - certificate.not_after) / 86_400;
            return Err(format!(
                "{:?} expired {days} day(s) ago: forwarding to the remote syslog server is OFF, since TLS to it cannot work, until the seed holds its current CA",
                certificate.subject
            ));
        }
        pem.push_str(&x509::to_pem("CERTIFICATE", &der));
    }
    Ok(pem)
}

/// An email address: a plain local part, `@`, a domain with a dot.
pub(super) fn email(text: &str) -> Result<String, String> {
    let (local, domain) = text
        .rsplit_once('@')
        .ok_or_else(|| format!("{text:?} is not an email address (no @)"))?;
    let plain = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .split('.')
            .all(|part| !part.is_empty() && part.chars().all(plain));
    if !local_ok {
        return Err(format!(
            "{text:?}: the part before @ may hold only letters, digits, dots and !#$%&'*+/=?^_`{{|}}~-"
        ));
    }
    let domain = dns_name(domain)?;
    if !domain.contains('.') {
        return Err(format!("{text:?}: the domain after @ needs a dot"));
    }
    Ok(format!("{local}@{domain}"))
}

/// A public key line for `authorized_keys`: type, base64 key data of that type, an optional
/// comment; no options in front.
pub(super) fn ssh_key(text: &str) -> Result<String, String> {
    if text.contains(['\n', '\r']) {
        return Err("holds more than one line: give each key as its own list item".into());
    }
    if text.contains(char::is_control) {
        return Err("holds a control character: paste the key as ssh-keygen printed it".into());
    }
    let mut words = text.split_whitespace();
    let kind = words.next().ok_or("is empty")?;
    if !SSH_KEY_TYPES.contains(&kind) {
        return Err(format!(
            "starts with {kind:?}, not a key type ({}); options before the key are not supported",
            SSH_KEY_TYPES.join(", ")
        ));
    }
    let data = words.next().ok_or("has no key data after its type")?;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|_| "its key data is not base64".to_owned())?;
    let mut embedded = (kind.len() as u32).to_be_bytes().to_vec();
    embedded.extend_from_slice(kind.as_bytes());
    if !blob.starts_with(&embedded) {
        return Err(format!("its key data is not a {kind} key"));
    }
    Ok(text.trim().to_owned())
}

/// The longest token label PKCS#11 has (`CK_TOKEN_INFO.label`, 32 bytes, space-padded).
const TOKEN_LABEL_MAX: usize = 32;
/// The longest PIN taken: no HSM asks for more, and a longer one is a paste gone wrong.
const PIN_MAX: usize = 255;
/// The longest value of a module's environment variable (a path, a host list).
const ENVIRONMENT_VALUE_MAX: usize = 4096;

/// A PKCS#11 module: an absolute path under `/usr`, the verified root file system, since the
/// writable data partition is mounted `noexec` and code loaded from it would escape
/// dm-verity; a shared object (`.so`), with no `..` and nothing a configuration file could
/// misread.
pub(super) fn module(text: &str) -> Result<std::path::PathBuf, String> {
    let path = std::path::Path::new(text);
    if !text.starts_with("/usr/") {
        return Err(format!(
            "{text:?} is not under /usr/: only a module on the verified root can be loaded (build an image with the vendor's package: LEMUR_IMAGE_DEBS, see README.md)"
        ));
    }
    if path
        .components()
        .any(|part| matches!(part, std::path::Component::ParentDir))
    {
        return Err(format!("{text:?} holds \"..\": give the module's own path"));
    }
    if !text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-_.+".contains(&b))
    {
        return Err(format!("{text:?} may hold only letters, digits and /-_.+"));
    }
    if !text.ends_with(".so") && !text.contains(".so.") {
        return Err(format!(
            "{text:?} is no shared object (.so): give the vendor's PKCS#11 library"
        ));
    }
    Ok(path.to_owned())
}

/// A token label as PKCS#11 keeps it: 1 to 32 bytes of UTF-8, no control character, no
/// spaces at either end (the token pads its label with them, so they would never match).
pub(super) fn token_label(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("is empty: give the label the token was initialised with".into());
    }
    if text.len() > TOKEN_LABEL_MAX {
        return Err(format!(
            "is {} bytes long, more than a token label holds ({TOKEN_LABEL_MAX})",
            text.len()
        ));
    }
    if text.contains(char::is_control) {
        return Err("holds a control character".into());
    }
    if text.trim() != text {
        return Err(format!(
            "{text:?} starts or ends with a space, which a token label never does"
        ));
    }
    Ok(text.to_owned())
}

/// A user PIN: 1 to 255 bytes, one line. Never echoed back in a problem.
pub(super) fn pin(text: &str) -> Result<zeroize::Zeroizing<String>, String> {
    if text.is_empty() {
        return Err("is empty".into());
    }
    if text.len() > PIN_MAX {
        return Err(format!("is longer than {PIN_MAX} bytes"));
    }
    if text.contains(char::is_control) {
        return Err("holds a control character (a line break?)".into());
    }
    Ok(zeroize::Zeroizing::new(text.to_owned()))
}

/// Variables the module's may not be, by prefix: the dynamic loader's and the C library's
/// (which would load or run other code than the module), systemd's hand-over to the process
/// (its credentials, notification and socket), and the daemon's own settings.
const RESERVED_PREFIXES: [&str; 11] = [
    "LD_",
    "GLIBC_",
    "MALLOC_",
    "LC_",
    "SYSTEMD_",
    "LISTEN_",
    "WATCHDOG_",
    "LEMUR_",
    "RUST_",
    "OPENSSL_",
    "SSL_",
];

/// Variables the module's may not be, by name (as [`RESERVED_PREFIXES`], and the search paths,
/// resolver and proxy settings every library in the process reads).
const RESERVED_NAMES: [&str; 16] = [
    "GCONV_PATH",
    "LOCPATH",
    "NLSPATH",
    "HOSTALIASES",
    "RES_OPTIONS",
    "LOCALDOMAIN",
    "PATH",
    "HOME",
    "TMPDIR",
    "TZ",
    "TZDIR",
    "LANG",
    "LANGUAGE",
    "NOTIFY_SOCKET",
    "CREDENTIALS_DIRECTORY",
    "INVOCATION_ID",
];

/// The name of a variable the module reads (`ChrystokiConfigurationPath`): a shell-style name,
/// none the process and its other libraries read (see [`RESERVED_PREFIXES`]), and no proxy
/// setting.
pub(super) fn environment_name(name: &str) -> Result<String, String> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!(
            "{name:?} is no variable name (letters, digits and _, not starting with a digit)"
        ));
    }
    let upper = name.to_ascii_uppercase();
    let reserved = RESERVED_PREFIXES
        .iter()
        .any(|prefix| upper.starts_with(prefix))
        || RESERVED_NAMES.contains(&upper.as_str())
        || upper.ends_with("_PROXY");
    if reserved {
        return Err(format!(
            "{name:?} is read by the system, its libraries or the daemon, not by the module alone: it is not taken"
        ));
    }
    Ok(name.to_owned())
}

/// The value of a module's variable: one line, no control character.
pub(super) fn environment_value(text: &str) -> Result<String, String> {
    if text.contains(char::is_control) {
        return Err("holds a control character".into());
    }
    if text.len() > ENVIRONMENT_VALUE_MAX {
        return Err(format!("is longer than {ENVIRONMENT_VALUE_MAX} bytes"));
    }
    Ok(text.to_owned())
}

/// An address or network (`10.0.0.5`, `10.0.0.0/24`) the daemon may reach.
pub(super) fn address_range(text: &str) -> Result<AddressRange, String> {
    text.parse()
}
