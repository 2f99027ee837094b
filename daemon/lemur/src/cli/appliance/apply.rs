//! `lemur appliance apply-seed`: the seed's network, time, host name, remote syslog and ssh
//! settings as the files the system's services read, written at every boot before the network
//! comes up. The root file system is read-only, so they go under the run directory (`/run`),
//! which those services read besides `/etc`; each boot writes them afresh from the seed, and a
//! file whose content did not change is left alone.
//!
//! Nothing here stops at the first failure: the network file goes first (an appliance that is
//! reachable can be fixed), every other setting is still tried after one fails, and all that
//! went wrong is reported before the command exits non-zero. What the seed got wrong, and what
//! could not be written, is also put on the console's login screen (an agetty issue file), so
//! that it is seen at every boot until it is fixed, not only in the journal.

use super::seed::{self, ExternalHsm, Hsm, Interface, Network, Reading, StaticNetwork, Syslog};
use lemur_core::files::{ensure_private_dir, replace_if_changed};
use lemur_core::{Error, Result, clock};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The appliance's own files under the run directory: root's, apart from `/run/lemur`, which
/// belongs to the daemon's user (rsyslog and sshd must not read what that user could change).
pub const APPLIANCE_DIR: &str = "lemur-appliance";

/// The shipped rsyslog drop-in, whose site values the seed's fill in.
const RSYSLOG_DROP_IN: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../rsyslog/lemur-remote.conf"
));

/// Where the kernel keeps the (transient) host name.
const KERNEL_HOSTNAME: &str = "/proc/sys/kernel/hostname";

/// What `lemur appliance apply-seed` is given.
pub struct Options<'a> {
    /// The seed file.
    pub seed: &'a Path,
    /// Where the settings go (`/run`).
    pub run_dir: &'a Path,
    /// Whether to set the kernel's host name as well.
    pub set_hostname: bool,
    /// The console warning (an agetty issue file), written when something is wrong.
    pub issue_file: Option<&'a Path>,
    /// Whether to have systemd load the units again when a drop-in written here changed.
    pub reload_units: bool,
}

/// The drop-ins, under the run directory, that open to a network HSM's addresses the sandbox
/// of each unit that opens the token: the daemon's (loopback only otherwise), and the entropy
/// check's and provisioning's (no network at all otherwise).
const HSM_DROP_INS: [(&str, &str); 3] = [
    ("systemd/system/lemur.service.d/50-lemur-hsm.conf", ""),
    (
        "systemd/system/lemur-entropy.service.d/50-lemur-hsm.conf",
        NO_NETWORK_REACH,
    ),
    (
        "systemd/system/lemur-provision.service.d/50-lemur-hsm.conf",
        NO_NETWORK_REACH,
    ),
];

/// What a unit with no network at all adds to reach a network HSM.
const NO_NETWORK_REACH: &str =
    "PrivateNetwork=no\nRestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n";

/// `lemur appliance apply-seed`.
pub fn apply(options: &Options<'_>) -> Result<()> {
    let reading = seed::load(options.seed, clock::system().unix());
    // Absolute, for the paths written into the files (rsyslog's CA file).
    let run_dir = std::path::absolute(options.run_dir).map_err(Error::io(format!(
        "resolving {}",
        options.run_dir.display()
    )))?;
    let mut failures = Vec::new();
    let mut units_changed = false;
    for step in steps(&reading, &run_dir) {
        let (unit, result) = match step {
            Step::Directory(dir) => (false, public_dir(&dir).map(|()| false)),
            Step::File(path, Ok(Some(content))) => (is_unit(&path), write(&path, &content)),
            Step::File(path, Ok(None)) => (is_unit(&path), remove(&path)),
            Step::File(_, Err(error)) => (false, Err(error)),
        };
        units_changed |= unit && result.as_ref().is_ok_and(|changed| *changed);
        note(&mut failures, result.map(drop));
    }
    if units_changed && options.reload_units {
        note(&mut failures, reload_units());
    }
    if options.set_hostname {
        note(&mut failures, set_kernel_hostname(&reading.seed.hostname));
    }
    if let Some(issue_file) = options.issue_file {
        let result = console_warning(&reading, &failures, issue_file);
        note(&mut failures, result);
    }
    match failures.len() {
        0 => Ok(()),
        count => Err(Error::io("applying the seed")(std::io::Error::other(
            format!(
                "{count} setting(s) could not be written (each is above); the others were: fix what is named and reboot"
            ),
        ))),
    }
}

/// Whether `path` is a unit's drop-in, which systemd reads only when it loads the units.
fn is_unit(path: &Path) -> bool {
    HSM_DROP_INS
        .iter()
        .any(|(drop_in, _)| path.ends_with(drop_in))
}

/// `systemctl daemon-reload`, so that the drop-ins written take effect for the units not
/// started yet (the entropy check, provisioning and the daemon start after this); then
/// `network-online.target`, which they now want, queued too: a unit's new `Wants=` does not
/// join the boot's transaction, which was made before.
fn reload_units() -> Result<()> {
    systemctl(&["daemon-reload"])?;
    systemctl(&["start", "--no-block", "network-online.target"])?;
    println!("loaded the units again for the HSM's addresses");
    Ok(())
}

/// `systemctl ARGS`, which must succeed.
fn systemctl(arguments: &[&str]) -> Result<()> {
    let context = format!("running systemctl {}", arguments.join(" "));
    let status = std::process::Command::new("systemctl")
        .args(arguments)
        .status()
        .map_err(Error::io(context.clone()))?;
    if !status.success() {
        return Err(Error::io(context)(std::io::Error::other(format!(
            "it failed ({status})"
        ))));
    }
    Ok(())
}

/// Reports a failed step at once (stderr: the journal and the console) and keeps it for the
/// end.
fn note(failures: &mut Vec<String>, result: Result<()>) {
    if let Err(error) = result {
        eprintln!("lemur: {error}");
        failures.push(error.to_string());
    }
}

/// One thing `apply-seed` makes.
enum Step {
    /// A directory the services read (0755).
    Directory(PathBuf),
    /// A file with its content, or `None` when it must not exist.
    File(PathBuf, Result<Option<String>>),
}

/// Everything the seed decides, in the order it is made: the network first.
fn steps(reading: &Reading, run_dir: &Path) -> Vec<Step> {
    let seed = &reading.seed;
    let dir = run_dir.join(APPLIANCE_DIR);
    let rsyslog_ca = dir.join("rsyslog-remote-ca.pem");
    let rsyslog = seed
        .syslog
        .as_ref()
        .map(|syslog| rsyslog_drop_in(syslog, &rsyslog_ca))
        .transpose();
    let ssh_keys = seed.ssh.as_ref().map(|ssh| {
        let mut keys = ssh.authorized_keys.join("\n");
        keys.push('\n');
        keys
    });
    vec![
        Step::File(
            run_dir.join("systemd/network/10-lemur.network"),
            Ok(Some(networkd(&seed.network))),
        ),
        Step::File(
            run_dir.join("systemd/timesyncd.conf.d/lemur.conf"),
            Ok(Some(timesyncd(&seed.ntp))),
        ),
        Step::Directory(dir.clone()),
        Step::File(
            dir.join("hostname"),
            Ok(Some(format!("{}\n", seed.hostname))),
        ),
        Step::File(dir.join("rsyslog-remote.conf"), rsyslog),
        Step::File(rsyslog_ca, Ok(seed.syslog.as_ref().map(|s| s.ca.clone()))),
        Step::File(
            dir.join("ssh-enabled"),
            Ok(ssh_keys.as_ref().map(|_| String::new())),
        ),
        Step::File(dir.join("authorized_keys"), Ok(ssh_keys.clone())),
        Step::File(
            dir.join("firewall-ssh.nft"),
            Ok(ssh_keys.map(|_| format!("{GENERATED}{SSH_RULE}"))),
        ),
    ]
    .into_iter()
    .chain(HSM_DROP_INS.iter().map(|(drop_in, reach)| {
        Step::File(
            run_dir.join(drop_in),
            Ok(network_hsm(&seed.hsm).map(|allow| hsm_drop_in(&allow, reach))),
        )
    }))
    .collect()
}

/// The addresses of a network HSM, as `IPAddressAllow=` takes them, when the seed names one.
fn network_hsm(hsm: &Hsm) -> Option<String> {
    match hsm {
        Hsm::External(ExternalHsm { addresses, .. }) if !addresses.is_empty() => Some(
            addresses
                .iter()
                .map(|range| format!("{}/{}", range.ip(), range.prefix()))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => None,
    }
}

/// A unit drop-in that lets it reach the HSM at `allow` once the network is up.
fn hsm_drop_in(allow: &str, reach: &str) -> String {
    format!(
        "{GENERATED}[Unit]\nWants=network-online.target\nAfter=network-online.target\n\n[Service]\n{reach}IPAddressAllow={allow}\n"
    )
}

/// The firewall rule that opens ssh's port, which nftables.conf includes from the run
/// directory.
const SSH_RULE: &str =
    "add rule inet filter input tcp dport 22 accept comment \"ssh, enabled by the seed\"\n";

const GENERATED: &str = "# Written by `lemur appliance apply-seed` from lemur-appliance.toml at every boot: edit the seed.\n";

/// systemd-networkd's settings for every Ethernet interface, or the one the static address
/// names (a machine with several must not put one address on all). mDNS is on so that the appliance
/// answers to `HOSTNAME.local`, a name its HTTPS certificate carries when its host name has
/// no domain. A DHCP server's host name is not taken: the seed's names the appliance, and is the
/// one its certificate carries. The DHCP client is known by its MAC address, which stays when the
/// machine-id does not.
fn networkd(network: &Network) -> String {
    let matched = match network {
        Network::Static(StaticNetwork {
            interface: Some(Interface::Name(name)),
            ..
        }) => format!("Name={name}"),
        Network::Static(StaticNetwork {
            interface: Some(Interface::Mac(mac)),
            ..
        }) => format!("MACAddress={mac}"),
        _ => "Name=en* eth*".to_owned(),
    };
    let mut text = format!("{GENERATED}[Match]\n{matched}\n\n[Network]\nMulticastDNS=yes\n");
    match network {
        Network::Dhcp => {
            text.push_str("DHCP=yes\n\n[DHCPv4]\nUseHostname=no\nClientIdentifier=mac\n")
        }
        Network::Static(fixed) => {
            let address = &fixed.address;
            text.push_str(&format!("Address={}/{}\n", address.ip(), address.prefix()));
            if let Some(gateway) = fixed.gateway {
                text.push_str(&format!("Gateway={gateway}\n"));
            }
            for server in &fixed.dns {
                text.push_str(&format!("DNS={server}\n"));
            }
        }
    }
    text
}

/// systemd-timesyncd's servers (those DHCP offers are asked as well).
fn timesyncd(servers: &[String]) -> String {
    format!("{GENERATED}[Time]\nNTP={}\n", servers.join(" "))
}

/// The shipped drop-in (`rsyslog/lemur-remote.conf`) with the seed's server, name and CA file in
/// place of the site values; each must be found exactly once, or the shipped file has changed
/// under this code.
fn rsyslog_drop_in(syslog: &Syslog, ca_file: &Path) -> Result<String> {
    let port = syslog.port.to_string();
    let ca_file = ca_file.display().to_string();
    let mut text = format!("{GENERATED}{RSYSLOG_DROP_IN}");
    for (key, shipped, ours) in [
        ("target", "logs.example.net", syslog.host.as_str()),
        ("port", "6514", &port),
        (
            "StreamDriverPermittedPeers",
            "logs.example.net",
            &syslog.name,
        ),
        (
            "StreamDriver.CAFile",
            "/etc/rsyslog.d/lemur-remote-ca.pem",
            &ca_file,
        ),
    ] {
        let from = format!(r#"{key}="{shipped}""#);
        if text.matches(&from).count() != 1 {
            return Err(Error::Config {
                path: PathBuf::from("rsyslog/lemur-remote.conf"),
                reason: format!("the shipped drop-in no longer holds {from} once"),
            });
        }
        text = text.replace(&from, &format!(r#"{key}="{ours}""#));
    }
    Ok(text)
}

/// The console warning: the seed's problems with the defaults used instead, and the settings
/// that could not be written; removed when there is nothing to say. Root's, for agetty
/// (which reads `/run/issue.d`), and public: it holds no secret.
fn console_warning(reading: &Reading, failures: &[String], issue_file: &Path) -> Result<()> {
    if reading.problems.is_empty() && failures.is_empty() {
        return remove(issue_file).map(drop);
    }
    let mut text = String::from("\n");
    if !reading.problems.is_empty() {
        text.push_str(
            "WARNING: the seed file lemur-appliance.toml (on the EFI partition) has problems:\n",
        );
        for problem in &reading.problems {
            text.push_str(&format!("  {}: {}\n", problem.field, problem.reason));
        }
        text.push_str(&format!(
            "  This boot uses instead: {}.\n",
            reading.defaults.join("; ")
        ));
    }
    if !failures.is_empty() {
        text.push_str("WARNING: these settings could not be written at this boot:\n");
        for failure in failures {
            text.push_str(&format!("  {failure}\n"));
        }
    }
    text.push_str(
        "  Fix the seed (`lemur appliance seed check FILE` names every problem) and reboot;\n  the journal has the details: journalctl -b -u lemur-seed\n",
    );
    if let Some(dir) = issue_file.parent() {
        ensure_private_dir(dir)?;
    }
    write(issue_file, &issue_text(&text)).map(drop)
}

/// `text` as agetty shows it literally: it expands backslash escapes in issue files, so each
/// backslash is doubled, and a control character (an escape sequence to the terminal) becomes
/// `?`. The seed's values reach this text only as the reasons quote them.
pub(super) fn issue_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\\' => "\\\\".to_owned(),
            '\n' => "\n".to_owned(),
            c if c.is_control() => "?".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// A directory the system's services read: made when missing, and open to all (0755).
fn public_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(Error::io(format!("opening {}", dir.display())))
}

/// Writes `content` (0644) when it changed; whether it did.
fn write(path: &Path, content: &str) -> Result<bool> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(Error::io(format!("creating {}", parent.display())))?;
    }
    let changed = replace_if_changed(path, content.as_bytes(), 0o644)?;
    if changed {
        println!("wrote {}", path.display());
    }
    Ok(changed)
}

/// Removes `path` if it exists; whether it did.
fn remove(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => {
            println!("removed {}", path.display());
            Ok(true)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(Error::io(format!("removing {}", path.display()))(error)),
    }
}

/// Sets the kernel's host name, which systemd calls the transient one: written directly rather
/// than through `hostnamectl`, because this runs before D-Bus and systemd-hostnamed are up, and
/// the network must see the name from its first DHCP request.
fn set_kernel_hostname(hostname: &str) -> Result<()> {
    let current = std::fs::read_to_string(KERNEL_HOSTNAME).unwrap_or_default();
    if current.trim_end() != hostname {
        std::fs::write(KERNEL_HOSTNAME, hostname)
            .map_err(Error::io(format!("setting the host name to {hostname}")))?;
        println!("set the host name to {hostname}");
    }
    Ok(())
}
